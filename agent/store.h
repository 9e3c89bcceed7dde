/* SPDX-License-Identifier: Apache-2.0 */
/* store.h - every reading kept in SQLite until the acknowledgement covers it.
 *
 * One SQLite file (WAL mode) per agent. Each poll cycle's readings are
 * appended in one transaction together with the agent's state (the counter
 * states and GPIO counts, an opaque blob owned by the tally), so that after a
 * crash the state and the readings agree and the next delta counts every
 * person the lost cycle would have counted. The store hands out the sequence
 * numbers: persistent, from 1, never reused, also after a crash, never above
 * TS_SEQ_MAX (2^53 - 1; ts_store_renumber refuses to go past it).
 *
 * A row leaves the store only through ts_store_ack (the acknowledgement
 * covers it) or a merge (retention full): when the store holds more than
 * max_rows rows or max_bytes bytes, the oldest readings that were never
 * published are merged, one reading per turnstile (deltas summed, the later
 * time and cumulative values kept, flags OR-ed plus TS_FLAG_MERGED), so
 * totals are conserved. Merged readings keep sequence numbers from the range
 * they replace; the first one's merged_from says which numbers were merged
 * away (see reading.h), so the bridge's acknowledgement can pass the hole.
 * A row that may have been published (seq <= the publish mark, which
 * ts_store_mark_published persists before publishing) is never merged.
 *
 * Disk full (SQLITE_FULL) or an I/O error: append keeps the readings in
 * memory (in order, not yet numbered), returns TS_EFULL or TS_EIO, and
 * writes them on a later append or ts_store_retry once space returns.
 * Nothing is dropped: past 100,000 held readings the oldest half is merged
 * per turnstile in memory, conserving totals. Not thread-safe: one thread
 * uses a store. Schema, transactions and the crash-safety argument:
 * docs/store.md.
 *
 * The caller's publishing loop: fetch(acked or last sent, ...), then
 * mark_published(last seq fetched), then publish; no append in between
 * (an append may merge unpublished rows, which a fetched copy would then
 * no longer match). */
#ifndef TS_STORE_H
#define TS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "reading.h"


struct ts_store_cfg {
    char path[256];
    int64_t max_rows;         /* retention bound in rows; 0: none */
    int64_t max_bytes;        /* retention bound in bytes of the file; 0: none */
    int merge_batch;          /* oldest unpublished rows merged per pass; 0 or 1: 1000 */
    int synchronous_full;     /* PRAGMA synchronous=FULL (1) or NORMAL (0) */
};

struct ts_store_stats {
    uint64_t rows;            /* readings held (backlog) */
    uint64_t bytes;           /* size of the database: pages in use * page size */
    uint64_t next_seq;
    uint64_t acked;           /* highest acknowledged seq */
    uint64_t publish_mark;    /* highest seq that may have been published */
    uint64_t merges;          /* merge passes (on disk and in memory) */
    uint64_t merged_rows;     /* rows removed by merges (on disk and in memory) */
    uint64_t pending_memory;  /* readings held in memory (disk full) */
    int last_error;           /* TS_EFULL / TS_EIO while writing fails, else 0 */
};

struct ts_store;

/* Opens (creating if needed) the store for agent_id. A store written by
 * another agent id is refused (TS_ECONFIG) so that ids are never mixed.
 * TS_OK with *out, or an error with err filled. */
int ts_store_open(const struct ts_store_cfg *cfg, const char *agent_id, struct ts_store **out,
                  char *err, size_t errsize);
void ts_store_close(struct ts_store *s); /* NULL-safe */

/* Loads the saved agent state into buf (cap bytes). *len = 0 if none. The
 * state held in memory (disk full) if any, else the stored one. TS_EFULL if
 * cap is too small, with *len the size needed. */
int ts_store_load_state(struct ts_store *s, void *buf, size_t cap, size_t *len);

/* Numbers the readings (seq, and merged_from = seq), appends them and saves
 * state (len bytes, copied) in one transaction. state NULL: the saved state
 * is left as it is. Sets each r[i].agent_id to the store's agent id (the
 * store owns the ID "<agent_id>:<seq>"). Readings held in memory are
 * written first, in their own transaction, so order is kept. On
 * TS_EFULL/TS_EIO the readings and state are kept in memory and written
 * later: the caller goes on as if it had succeeded, and must not reuse the
 * seq fields of r (set to 0 then; they are assigned when written). After a
 * write, applies retention (merges; a merge that fails to write is logged
 * and does not fail the append). TS_ENOMEM only if even holding fails. */
int ts_store_append(struct ts_store *s, struct ts_reading *r, size_t n, const void *state,
                    size_t len);

/* Writes what is held in memory, if anything. TS_OK when nothing is left. */
int ts_store_retry(struct ts_store *s);

/* Copies up to max stored readings with seq > after, in seq order. Every
 * field is restored as appended (agent_id is the store's). Readings held
 * in memory are not returned: they have no seq yet. */
int ts_store_fetch(struct ts_store *s, uint64_t after, struct ts_reading *out, size_t max,
                   size_t *n);

/* Persists that readings up to seq may be published from now on. Never
 * lowered (a lower seq is a no-op). Synced to disk even with
 * synchronous_full = 0, so that every reading up to the mark survives a
 * power cut and no number that may have been published is ever reused. */
int ts_store_mark_published(struct ts_store *s, uint64_t seq);

/* Deletes readings with seq <= upto (the acknowledgement covers them).
 * Clamped to the publish mark: an acknowledgement cannot cover a reading
 * that was never published (e.g. a retained ack from a deleted store), so
 * it never deletes one (logged once). */
int ts_store_ack(struct ts_store *s, uint64_t upto);

/* Moves every stored reading up so that the oldest gets sequence number
 * `first` (and next_seq and acked follow). Only for a store that has never
 * published anything (publish mark 0, nothing held in memory): the agent
 * calls it when the bridge already acknowledges numbers up to first - 1 for
 * this agent id (a replaced controller or a lost store), so that no number
 * the bridge has seen is used again. TS_EINVAL otherwise, and when the
 * numbers would pass TS_SEQ_MAX (next_seq - 1 after the move). */
int ts_store_renumber(struct ts_store *s, uint64_t first);

void ts_store_get_stats(struct ts_store *s, struct ts_store_stats *out);

/* Test hooks (tests/unit/test_store.c), not for the agent.
 * ts_store_test_max_pages: PRAGMA max_page_count on this connection, to
 * simulate a full disk (SQLite never sets it below the current size; *now,
 * if not NULL, gets the limit in force). ts_store_test_memory_max: the
 * bound of the in-memory backlog (0: the default 100,000). */
int ts_store_test_max_pages(struct ts_store *s, uint64_t pages, uint64_t *now);
void ts_store_test_memory_max(struct ts_store *s, size_t n);

#endif
