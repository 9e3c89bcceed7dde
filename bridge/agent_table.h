/* SPDX-License-Identifier: Apache-2.0 */
/* agent_table.h - one partition's agents: in memory while active, archived
 * on disk once idle, never forgotten.
 *
 * Each agent's duplicate-removal set (seqset.h) is what keeps its re-sent
 * readings from counting twice and what its acknowledgement is computed
 * from, so an agent's position must survive however long it stays away.
 * The table holds the sets of active agents in memory; at each checkpoint
 * the agents not seen for idle_ms, and beyond max_agents the least recently
 * seen, move to the partition's archive (agent_archive.h: on disk, found
 * through a sparse index) and come back from it when they are seen again
 * (bytes per agent in memory and on disk: docs/bridge.md, bench-memory). A table past max_agents asks for a checkpoint at
 * once (ts_agent_table_over), so memory is bounded by max_agents (plus the
 * agents of one batch of consumed records while a checkpoint is put off),
 * whatever the number of agent ids the input names; the checkpoint's state
 * holds only the agents in memory.
 *
 * A checkpoint goes: ts_agent_table_prepare (the leaving agents are taken
 * out of memory and a new archive holding them is written), the caller
 * encodes its state (naming the new archive) and commits it, then
 * ts_agent_table_finish. Not thread-safe: the partition's thread. */
#ifndef TS_AGENT_TABLE_H
#define TS_AGENT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_archive.h"
#include "seqset.h"

struct ts_agent_table_stats {
    size_t in_memory;         /* agents in memory now */
    uint64_t archived;        /* agents in the current archive */
    uint64_t moved_out;       /* agents moved to the archive */
    uint64_t brought_back;    /* agents found in the archive and brought back */
};

struct ts_agent_table {
    struct ts_seqsets hot;    /* the agents in memory (their touched_ms: last seen) */
    /* the rest is private */
    int dirfd;                /* the partition's manifest directory (lent) */
    struct ts_lake *lake;     /* lent, or NULL: dirfd is all there is */
    size_t max_agents;
    int64_t idle_ms;
    struct ts_archive *archive;   /* the current archive (maybe empty) */
    struct ts_archive *next;      /* written by prepare, current after finish */
    struct ts_seqsets leaving;    /* taken out by prepare */
    uint64_t moved_out, brought_back;
};

/* Opens the table over the archive ref names (in dirfd, lent: it must stay
 * open), with no agent in memory: the caller decodes its checkpoint's sets
 * into t->hot (ts_seqsets_decode) afterwards. max_agents >= 1; idle_ms 0:
 * no idle bound. TS_OK, or an error of ts_archive_open with why. */
int ts_agent_table_open(struct ts_agent_table *t, int dirfd, const struct ts_archive_ref *ref,
                        size_t max_agents, int64_t idle_ms, char *why, size_t why_size);

/* The same on the lake's manifest directory (ts_lake_manifest_fd; lake
 * lent, it must stay open): on the object lake that directory holds local
 * copies, so the archive ref names is fetched from the store first, each
 * new archive is published to the store before prepare returns, and finish
 * prunes the store too (lake.h, ts_lake_side_*; on the POSIX lake the same
 * as ts_agent_table_open). Errors as ts_agent_table_open's; a missing
 * archive is TS_ESYS with ENOENT. */
struct ts_lake;
int ts_agent_table_open_lake(struct ts_agent_table *t, struct ts_lake *lake,
                             const struct ts_archive_ref *ref, size_t max_agents, int64_t idle_ms,
                             char *why, size_t why_size);

/* Frees everything; t may be opened again. Safe on a zeroed struct. */
void ts_agent_table_close(struct ts_agent_table *t);

/* The set of agent: in memory, brought back from the archive, or new
 * (*found false) -- owned by the table, valid until prepare. Its touched_ms
 * is the caller's to set. TS_OK; TS_EINVAL (a bad id); TS_ENOMEM; TS_EPARSE,
 * TS_EFULL or TS_ESYS (the archive cannot be read: the partition must not
 * go on). */
int ts_agent_table_get(struct ts_agent_table *t, const char *agent, struct ts_seqset **set,
                       bool *found);

/* The set of agent if it is in memory or leaving at the checkpoint being
 * made, else NULL. */
struct ts_seqset *ts_agent_table_peek(struct ts_agent_table *t, const char *agent);

/* True when more agents are in memory than max_agents: the caller should
 * checkpoint now (prepare moves the least recently seen out), not wait for
 * its interval, so that memory stays bounded by max_agents whatever the
 * rate of new agent ids. */
bool ts_agent_table_over(const struct ts_agent_table *t);

/* Takes out of memory the agents not seen since now_ms - idle_ms and, past
 * max_agents, the least recently seen down to 3/4 of it, and writes the
 * archive the next checkpoint (generation gen, writer tag tag) names into
 * *ref (the current one when nobody leaves), published to the lake's store
 * if opened on a lake. TS_OK; TS_ESYS, TS_ENOMEM, TS_EPARSE, and the
 * store's errors (nothing changed: the checkpoint must not be made). */
int ts_agent_table_prepare(struct ts_agent_table *t, int64_t now_ms, uint64_t gen,
                           const char *tag, struct ts_archive_ref *ref);

/* After the checkpoint: committed, the new archive (if prepare wrote one)
 * becomes the current one, and the older archives are deleted except the one
 * it replaces (the checkpoints before this one name it: an operator may
 * fall back to them), with the leftovers of failed checkpoints;
 * not committed, the table is left as prepare made it (the caller reloads
 * the partition). The leaving agents' sets are freed either way. */
void ts_agent_table_finish(struct ts_agent_table *t, bool committed, uint64_t gen);

/* Deletes the archives ts_archive_prune(dirfd, upto, keep) deletes, and on
 * lake (NULL: none) the same names in its store (ts_lake_side_prune): what
 * finish does after a checkpoint, and --repartition after its own. */
void ts_agent_archives_prune(int dirfd, struct ts_lake *lake, uint64_t upto, const char *keep);

void ts_agent_table_stats(const struct ts_agent_table *t, struct ts_agent_table_stats *st);

#endif
