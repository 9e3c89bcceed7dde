/* SPDX-License-Identifier: Apache-2.0 */
/* lake.h - the data lake writer: one Kafka partition's aggregated rows as
 * gzip CSV files, made visible exactly once by a manifest of checkpoints.
 * docs/lake.md has the layout, the file and checkpoint formats, the commit
 * protocol and why each step comes where it does, recovery, the object lake
 * and which guarantee rests on what.
 *
 * Contract: rows written (ts_lake_write_row) stay pending under hidden
 * names until ts_lake_commit makes them, the caller's Kafka offset and its
 * state (opaque bytes) durable and visible at once; a commit that fails
 * makes nothing new visible (or is rolled forward by the next open). A
 * visible data file is always named by a committed checkpoint, and a row
 * is in one visible file only. Two writers of one partition (two bridges
 * that both believe they own it) cannot both commit a generation: the loser
 * gets TS_ECONFLICT and nothing of its becomes visible (on an object store,
 * only if it honours conditional writes: lake_store.h). ts_lake_open
 * recovers after a crash and says where to resume; the checkpoint, not
 * Kafka's committed offset, is the truth.
 *
 * ts_lake_open's lake is the directory cfg->root on a POSIX filesystem
 * (atomic link(2) and rename(2), fsync of a directory makes its entries
 * durable); lake_store.h opens one on an object store. At most
 * cfg->max_open_files data files are open per lake (max_open_files + 3 fds
 * on POSIX).
 * Names: table and owner are 1 to 64 of [A-Za-z0-9._-] (table not starting
 * with '.' or '_'), topic 1 to 249 of them (Kafka's own rule).
 *
 * Not thread-safe: one partition's lake belongs to one thread. Lakes of
 * different partitions may share a root, in one process or several. */
#ifndef TS_LAKE_H
#define TS_LAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "window.h"

struct ts_lake_cfg {
    const char *root;         /* lake root directory (created if missing) */
    const char *table;        /* e.g. "turnstile" */
    const char *owner;        /* this bridge's id, recorded in checkpoints */
    bool row_number;          /* leading row-number column */
    int compression_level;    /* gzip 1..9 */
    int keep_checkpoints;     /* >= 1 */
    int max_open_files;       /* >= 1: data files open at once; with the bound reached,
                                 a row of another (date, late) finishes the least recently
                                 used file (it stays pending) */
    int max_checkpoint_files; /* >= 1: ts_lake_commit_due from this many pending files */
};

/* What ts_lake_open found: where to resume. */
struct ts_lake_resume {
    uint64_t generation;      /* of the latest checkpoint; 0 if none */
    int64_t offset_next;      /* -1 if no checkpoint: start from the beginning */
    char *state;              /* malloc'ed copy of its state, NUL-terminated (caller
                                 frees); NULL if there is no checkpoint */
    size_t state_len;
    unsigned rolled_forward;  /* data files renamed during recovery */
    unsigned removed_temporaries; /* hidden temporaries of this partition deleted (those
                                     of the next generation are deleted later: ts_lake_open) */
};

struct ts_lake_commit_info {
    uint64_t generation;      /* of the checkpoint just written */
    unsigned files;           /* data files made visible */
    uint64_t rows;            /* rows in them */
};

struct ts_lake;

/* Opens the partition's lake and recovers: finds the latest checkpoint,
 * makes visible the data files it names that are still temporaries, deletes
 * the partition's temporaries that nobody can commit any more (those of the
 * next generation only once this lake has committed it: they may be a live
 * writer's), and reports where to resume in *resume. It reads every date
 * directory of the table once. TS_OK; TS_EINVAL (bad cfg, a
 * name out of the rules above, partition < 0); TS_EPARSE (the latest
 * checkpoint is unreadable, fails its crc, is not this partition's, or a
 * file it names is missing under both names: nothing is renamed or deleted,
 * the caller must not go on, why says which); TS_ESYS (errno kept);
 * TS_ENOMEM. On failure *out is NULL and resume->state NULL. why may be
 * NULL. */
int ts_lake_open(const struct ts_lake_cfg *cfg, const char *topic, int32_t partition,
                 struct ts_lake **out, struct ts_lake_resume *resume, char *why,
                 size_t why_size);

/* Appends one row to the open pending file for its date (and late bit),
 * creating a temporary when there is none (first use, or that file was
 * finished to keep within max_open_files). TS_OK; TS_EINVAL (a DATE that
 * is not MM/DD/YYYY, a TIME not HH:MM:SS, an identity field empty,
 * unterminated or holding a comma, quote or control character; or the lake
 * is dead after a failed commit); TS_ESYS; TS_ENOMEM; TS_EFULL (999999999
 * files of one date pending: only a caller that ignores ts_lake_commit_due
 * gets there). Any failure is sticky, since the caller has counted the row
 * as written: later writes and ts_lake_commit return the same error
 * without doing anything, until ts_lake_discard drops every pending row
 * (then resume from the last checkpoint), or the lake is closed. */
int ts_lake_write_row(struct ts_lake *lake, const struct ts_window_row *row);

/* Rows pending since the last commit. */
uint64_t ts_lake_pending_rows(const struct ts_lake *lake);

/* True once cfg->max_checkpoint_files data files are pending (open or
 * finished early): commit at the next point where the state is
 * consistent (after the window advance that wrote them), rather than at
 * the usual interval, so that no checkpoint names thousands of files. */
bool ts_lake_commit_due(const struct ts_lake *lake);

/* The partition's manifest directory, open for the lake's life (side files
 * of its checkpoints are read and written there as local files:
 * agent_archive.h; on the object lake it is a local copy in the spool, and
 * the ts_lake_side_* calls below carry them to and from the store); the
 * writer's tag in the
 * names of its temporaries (letters, digits, '.', '_', '-'); the generation
 * of the last checkpoint (0: none), so the next commit writes this + 1. */
int ts_lake_manifest_fd(const struct ts_lake *lake);
const char *ts_lake_writer_tag(const struct ts_lake *lake);
uint64_t ts_lake_generation(const struct ts_lake *lake);

/* Side files of the checkpoints (the agents' archive), name a file name
 * (no '/') in ts_lake_manifest_fd's directory. On the POSIX lake that
 * directory is the manifest itself and these do nothing (TS_OK, 0).
 * fetch: the store's name into the directory (TS_ESYS with ENOENT if the
 * store has none). publish: the complete file name in the directory into
 * the store, durable on TS_OK: before a checkpoint names it. prune: deletes
 * from the store the side files drop(name, ctx) accepts (the directory's
 * are the caller's to delete); failures only leave garbage; returns how
 * many. TS_EINVAL (a bad name), TS_ESYS (errno kept), TS_EFULL, TS_ENOMEM. */
int ts_lake_side_fetch(struct ts_lake *lake, const char *name);
int ts_lake_side_publish(struct ts_lake *lake, const char *name);
unsigned ts_lake_side_prune(struct ts_lake *lake, bool (*drop)(const char *name, void *ctx),
                            void *ctx);

/* Commits (docs/lake.md, "Commit") the pending rows with offset_next (>= -1) and the caller's
 * state (state_len bytes, copied; state may be NULL if state_len is 0).
 * May be called with no pending rows (a checkpoint of offsets and state
 * only). TS_OK and *info (may be NULL; zeroed on failure); TS_EINVAL (bad
 * arguments or a dead lake: nothing done); a failed write's sticky error
 * (nothing done); TS_ECONFLICT (this generation or a newer one exists: the
 * partition has another owner; the pending files are deleted); TS_ESYS,
 * TS_ENOMEM (nothing new is visible, unless the failure came after step 2,
 * in which case the next ts_lake_open rolls forward). After any failure but
 * bad arguments, close the lake (a commit that failed by itself leaves it
 * dead) and open it again to learn where to resume: the failed commit's
 * checkpoint if it was written, else the one before. */
int ts_lake_commit(struct ts_lake *lake, int64_t offset_next, const char *state, size_t state_len,
                   struct ts_lake_commit_info *info);

/* Deletes the pending temporaries (rows since the last commit) and clears
 * a failed write's error. NULL-safe. */
void ts_lake_discard(struct ts_lake *lake);

/* Discards pending rows and frees; NULL-safe. */
void ts_lake_close(struct ts_lake *lake);

#endif
