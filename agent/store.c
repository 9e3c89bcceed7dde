/* SPDX-License-Identifier: Apache-2.0 */
/* store.c - the agent's SQLite store-and-forward buffer (store.h).
 *
 * The schema, the transactions, retention and the crash-safety argument are
 * in docs/store.md. In short: every write is one BEGIN IMMEDIATE ... COMMIT;
 * the in-memory copies of what the database holds (next_seq, row count,
 * counters, the turnstile id cache) change only after COMMIT succeeded, so a
 * failed transaction leaves the store exactly as it was. */
#include "store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "hashtab.h"
#include "flags.h"
#include "log.h"
#include "now.h"

#define STORE_SCHEMA_VERSION 1
#define STORE_APPLICATION_ID 0x54534731 /* "TSG1": a turnstile-edge agent store */
#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_DEFAULT_BATCH 1000
#define STORE_MEMORY_MAX 100000         /* readings held in memory before merging */
#define STORE_WAL_LIMIT (4 * 1024 * 1024) /* WAL truncated to this after a checkpoint */
#define DESC_RECOVERED "RECOVR AUD"

static const char *const schema_sql =
    "CREATE TABLE meta ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " agent_id TEXT NOT NULL,"
    " next_seq INTEGER NOT NULL CHECK (next_seq >= 1),"
    " publish_mark INTEGER NOT NULL DEFAULT 0,"
    " acked INTEGER NOT NULL DEFAULT 0,"
    " merges INTEGER NOT NULL DEFAULT 0,"
    " merged_rows INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE turnstiles ("
    " tid INTEGER PRIMARY KEY,"
    " ca TEXT NOT NULL, unit TEXT NOT NULL, scp TEXT NOT NULL,"
    " station TEXT NOT NULL, linename TEXT NOT NULL, division TEXT NOT NULL,"
    " UNIQUE (ca, unit, scp, station, linename, division));"
    "CREATE TABLE readings ("
    " seq INTEGER PRIMARY KEY,"
    " merged_from INTEGER NOT NULL,"
    " tid INTEGER NOT NULL REFERENCES turnstiles (tid),"
    " descr TEXT NOT NULL,"
    " entries INTEGER NOT NULL, exits INTEGER NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " entries_cum INTEGER NOT NULL, exits_cum INTEGER NOT NULL,"
    " flags INTEGER NOT NULL,"
    " CHECK (merged_from BETWEEN 1 AND seq));"
    "CREATE TABLE state ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " blob BLOB NOT NULL);";

enum stmt_id {
    ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
    ST_NEXT_SEQ, ST_TID_GET, ST_TID_PUT, ST_INSERT, ST_META_APPEND, ST_STATE_PUT, ST_STATE_GET,
    ST_FETCH, ST_ACK, ST_META_ACKED, ST_META_MARK,
    ST_MERGE_SELECT, ST_MERGE_DELETE, ST_META_MERGES,
    ST_PAGE_COUNT, ST_FREELIST,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_NEXT_SEQ] = "SELECT next_seq FROM meta WHERE id = 1",
    [ST_TID_GET] = "SELECT tid FROM turnstiles WHERE ca = ?1 AND unit = ?2 AND scp = ?3"
                   " AND station = ?4 AND linename = ?5 AND division = ?6",
    [ST_TID_PUT] = "INSERT INTO turnstiles (ca, unit, scp, station, linename, division)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_INSERT] = "INSERT INTO readings (seq, merged_from, tid, descr, entries, exits, time_ms,"
                  " entries_cum, exits_cum, flags) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_META_APPEND] = "UPDATE meta SET next_seq = ?1, merges = ?2, merged_rows = ?3 WHERE id = 1",
    [ST_STATE_PUT] = "INSERT OR REPLACE INTO state (id, blob) VALUES (1, ?1)",
    [ST_STATE_GET] = "SELECT blob FROM state WHERE id = 1",
    [ST_FETCH] = "SELECT r.seq, r.merged_from, t.ca, t.unit, t.scp, t.station, t.linename,"
                 " t.division, r.descr, r.entries, r.exits, r.time_ms, r.entries_cum,"
                 " r.exits_cum, r.flags FROM readings r JOIN turnstiles t ON t.tid = r.tid"
                 " WHERE r.seq > ?1 ORDER BY r.seq LIMIT ?2",
    [ST_ACK] = "DELETE FROM readings WHERE seq <= ?1",
    [ST_META_ACKED] = "UPDATE meta SET acked = ?1 WHERE id = 1",
    [ST_META_MARK] = "UPDATE meta SET publish_mark = ?1 WHERE id = 1",
    [ST_MERGE_SELECT] = "SELECT seq, merged_from, tid, descr, entries, exits, time_ms,"
                        " entries_cum, exits_cum, flags FROM readings WHERE seq > ?1"
                        " ORDER BY seq LIMIT ?2",
    [ST_MERGE_DELETE] = "DELETE FROM readings WHERE seq BETWEEN ?1 AND ?2",
    [ST_META_MERGES] = "UPDATE meta SET merges = ?1, merged_rows = ?2 WHERE id = 1",
    [ST_PAGE_COUNT] = "PRAGMA page_count",
    [ST_FREELIST] = "PRAGMA freelist_count",
};

/* A turnstile's identity: the six text fields of a reading, zero-padded so
 * that keys compare and hash as bytes. */
struct tkey {
    char ca[16], unit[16], scp[16], station[64], linename[32], division[16];
};

struct tid_entry {
    struct tkey key;
    int64_t tid;
};

/* The tid cache's bound: past it the database answers (an agent's turnstiles
 * are configured: tens, not thousands). */
#define TID_CACHE_MAX 65536

struct ts_store {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    struct ts_store_cfg cfg;
    char agent_id[TS_ID_MAX];
    int64_t page_size;
    int merge_batch;

    /* mirrors of the database, changed only after a COMMIT */
    uint64_t next_seq, publish_mark, acked, merges, merged_rows;
    uint64_t rows;

    /* turnstile -> tid cache: entries found through common/hashtab */
    struct tid_entry *tids;
    size_t tid_cap, tid_n;
    struct ts_hashtab tid_index; /* key -> its number in tids */

    /* readings held in memory while writing fails, oldest first, unnumbered */
    struct ts_reading *held;
    size_t n_held, cap_held, memory_max;
    unsigned char *held_state;
    size_t held_state_len;
    bool held_state_set;

    int last_error;      /* TS_EFULL / TS_EIO while writes fail */
    bool retention_stuck; /* over the bound and nothing can be merged (logged once) */
    bool merge_failed;    /* a merge pass failed to write (logged once) */
    bool ack_clamped;     /* an ack went past the publish mark (logged once) */
    bool state_synced;    /* a counter state was committed with a sync by this process */
};

/* --- small helpers ----------------------------------------------------- */

static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;
    memcpy(dst, src ? src : "", n);
    memset(dst + n, 0, size - n);
}

#define COPY(dst, src) copy_str((dst), sizeof(dst), (src))

static void key_of(const struct ts_reading *r, struct tkey *k)
{
    COPY(k->ca, r->ca);
    COPY(k->unit, r->unit);
    COPY(k->scp, r->scp);
    COPY(k->station, r->station);
    COPY(k->linename, r->linename);
    COPY(k->division, r->division);
}

static uint64_t key_hash(const struct tkey *k) { return ts_hash_bytes(TS_HASH_INIT, k, sizeof *k); }

static int64_t u2i(uint64_t v) { return v > INT64_MAX ? INT64_MAX : (int64_t)v; }

/* SQLite result code to the project's convention. Any failure to write is
 * TS_EIO unless the disk (or the page limit) is full. */
static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW:
        return TS_OK;
    case SQLITE_FULL:
        return TS_EFULL;
    default:
        return TS_EIO;
    }
}

/* Runs a prepared statement that returns no row we need; resets it. */
static int run(struct ts_store *s, enum stmt_id id)
{
    sqlite3_stmt *st = s->st[id];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int64_t query_int(struct ts_store *s, enum stmt_id id, int64_t fallback)
{
    sqlite3_stmt *st = s->st[id];
    int64_t v = fallback;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return v;
}

static int tx_begin(struct ts_store *s) { return run(s, ST_BEGIN); }
static int tx_commit(struct ts_store *s) { return run(s, ST_COMMIT); }

/* SQLite may already have rolled back on SQLITE_FULL / SQLITE_IOERR. */
static void tx_rollback(struct ts_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        run(s, ST_ROLLBACK);
}

static uint64_t used_bytes(struct ts_store *s)
{
    int64_t pages = query_int(s, ST_PAGE_COUNT, 0), free_pages = query_int(s, ST_FREELIST, 0);
    return pages > free_pages ? (uint64_t)(pages - free_pages) * (uint64_t)s->page_size : 0;
}

/* --- turnstile ids ----------------------------------------------------- */

static void tid_cache_clear(struct ts_store *s)
{
    ts_hashtab_free(&s->tid_index);
    s->tid_n = 0;
}

struct tid_key {
    const struct tid_entry *tids;
    const struct tkey *k;
};

static bool same_key(uintptr_t i, const void *key)
{
    const struct tid_key *q = key;
    return memcmp(&q->tids[i].key, q->k, sizeof *q->k) == 0;
}

/* The cached tid of k, or 0. */
static int64_t tid_cache_get(const struct ts_store *s, const struct tkey *k, uint64_t h)
{
    uintptr_t i;
    return ts_hashtab_find(&s->tid_index, h, same_key, &(struct tid_key){s->tids, k}, &i)
               ? s->tids[i].tid
               : 0;
}

/* k is not cached (tid_cache_get). */
static void tid_cache_put(struct ts_store *s, const struct tkey *k, uint64_t h, int64_t tid)
{
    if (s->tid_n == s->tid_cap) {
        size_t cap = s->tid_cap ? s->tid_cap * 2 : 64;
        struct tid_entry *tids = realloc(s->tids, cap * sizeof *tids);
        if (!tids)
            return; /* a cache: the database still answers */
        s->tids = tids;
        s->tid_cap = cap;
    }
    if (ts_hashtab_add(&s->tid_index, h, s->tid_n) != TS_OK)
        return; /* TS_EFULL, TS_ENOMEM: likewise */
    s->tids[s->tid_n++] = (struct tid_entry){*k, tid};
}

static void bind_key(sqlite3_stmt *st, const struct tkey *k)
{
    sqlite3_bind_text(st, 1, k->ca, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->unit, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, k->scp, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, k->station, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, k->linename, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, k->division, -1, SQLITE_STATIC);
}

/* The tid of r's turnstile, inserting it if new. Inside a transaction: a
 * tid inserted here is cached too, so the caller clears the cache if the
 * transaction does not commit. */
static int tid_for(struct ts_store *s, const struct ts_reading *r, int64_t *tid)
{
    struct tkey k;
    key_of(r, &k);
    uint64_t h = key_hash(&k);
    if ((*tid = tid_cache_get(s, &k, h)))
        return SQLITE_OK;
    sqlite3_stmt *st = s->st[ST_TID_GET];
    bind_key(st, &k);
    int rc = sqlite3_step(st);
    *tid = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    if (!*tid) {
        bind_key(s->st[ST_TID_PUT], &k);
        if ((rc = run(s, ST_TID_PUT)) != SQLITE_OK)
            return rc;
        *tid = sqlite3_last_insert_rowid(s->db);
    }
    tid_cache_put(s, &k, h, *tid);
    return SQLITE_OK;
}

/* --- writing readings -------------------------------------------------- */

struct row {
    int64_t seq, merged_from, tid, time_ms;
    uint64_t entries, exits, entries_cum, exits_cum;
    uint32_t flags;
    char desc[16];
};

static int insert_row(struct ts_store *s, const struct row *w)
{
    sqlite3_stmt *st = s->st[ST_INSERT];
    sqlite3_bind_int64(st, 1, w->seq);
    sqlite3_bind_int64(st, 2, w->merged_from);
    sqlite3_bind_int64(st, 3, w->tid);
    sqlite3_bind_text(st, 4, w->desc, -1, SQLITE_STATIC);
    /* uint64 values are stored as their int64 bit pattern (read back as uint64) */
    sqlite3_bind_int64(st, 5, (int64_t)w->entries);
    sqlite3_bind_int64(st, 6, (int64_t)w->exits);
    sqlite3_bind_int64(st, 7, w->time_ms);
    sqlite3_bind_int64(st, 8, (int64_t)w->entries_cum);
    sqlite3_bind_int64(st, 9, (int64_t)w->exits_cum);
    sqlite3_bind_int64(st, 10, (int64_t)w->flags);
    return run(s, ST_INSERT);
}

static int save_counters(struct ts_store *s, uint64_t next_seq)
{
    sqlite3_stmt *st = s->st[ST_META_APPEND];
    sqlite3_bind_int64(st, 1, u2i(next_seq));
    sqlite3_bind_int64(st, 2, u2i(s->merges));
    sqlite3_bind_int64(st, 3, u2i(s->merged_rows));
    return run(s, ST_META_APPEND);
}

/* One transaction: r[0..n) numbered from next_seq (read in the same
 * transaction) and inserted, next_seq persisted, the state replaced (if
 * has_state). On success the readings' seq and merged_from are set; on
 * failure nothing changed. */
static int write_batch(struct ts_store *s, struct ts_reading *r, size_t n, bool has_state,
                       const void *state, size_t len)
{
    /* The first counter state this process stores is synced whatever
     * cfg.synchronous_full says. Under NORMAL a power cut rolls the store back
     * to its last sync; before any publish mark (a new store, the clock not yet
     * synchronised, no broker) that is no state at all, and the next start
     * takes a new baseline: the people since the first one would be lost, not
     * recounted (docs/store.md, "Power cut"). One fsync per start. */
    bool sync_once = has_state && !s->state_synced && !s->cfg.synchronous_full;
    if (sync_once)
        sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    int rc = tx_begin(s);
    int64_t stored = rc == SQLITE_OK ? query_int(s, ST_NEXT_SEQ, 0) : 0;

    if (rc == SQLITE_OK && stored < 1)
        rc = SQLITE_CORRUPT; /* the meta row is gone or unreadable */
    if (rc == SQLITE_OK && (uint64_t)stored != s->next_seq) {
        /* only another process writing this file can do that */
        TS_LOG(TS_LOG_ERR, "store %s: next_seq is %lld on disk, %llu here: is another agent "
               "using this file? numbering from the disk's", s->cfg.path, (long long)stored,
               (unsigned long long)s->next_seq);
        if ((uint64_t)stored > s->next_seq)
            s->next_seq = (uint64_t)stored;
    }
    uint64_t seq = s->next_seq;

    for (size_t i = 0; rc == SQLITE_OK && i < n; i++, seq++) {
        struct row w = {.seq = (int64_t)seq, .merged_from = (int64_t)seq,
                        .time_ms = r[i].time_ms, .entries = r[i].entries, .exits = r[i].exits,
                        .entries_cum = r[i].entries_cum, .exits_cum = r[i].exits_cum,
                        .flags = r[i].flags};
        COPY(w.desc, r[i].desc);
        rc = tid_for(s, &r[i], &w.tid);
        if (rc == SQLITE_OK)
            rc = insert_row(s, &w);
    }
    if (rc == SQLITE_OK)
        rc = save_counters(s, seq);
    if (rc == SQLITE_OK && has_state) {
        sqlite3_stmt *st = s->st[ST_STATE_PUT];
        if (len)
            sqlite3_bind_blob(st, 1, state, (int)len, SQLITE_STATIC);
        else
            sqlite3_bind_zeroblob(st, 1, 0);
        rc = run(s, ST_STATE_PUT);
    }
    if (rc == SQLITE_OK)
        rc = tx_commit(s);
    if (sync_once)
        sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    if (rc == SQLITE_OK && has_state)
        s->state_synced = true; /* or every commit syncs (synchronous = full) */
    if (rc != SQLITE_OK) {
        const char *msg = sqlite3_errmsg(s->db);
        TS_LOG(TS_LOG_DEBUG, "store %s: append of %zu readings failed: %s", s->cfg.path, n, msg);
        tx_rollback(s);
        tid_cache_clear(s); /* it may name turnstile rows that were rolled back */
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        r[i].seq = s->next_seq + i;
        r[i].merged_from = r[i].seq;
    }
    s->next_seq = seq;
    s->rows += n;
    return SQLITE_OK;
}

/* --- retention: merging -------------------------------------------------- */

struct group {
    int64_t tid, last_seq, time_ms;
    uint64_t entries, exits, entries_cum, exits_cum;
    uint32_t flags;
    bool recovered;
    char desc[16];
};

static int cmp_row_tid(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_group_last(const void *a, const void *b)
{
    const struct group *x = a, *y = b;
    return x->last_seq < y->last_seq ? -1 : x->last_seq > y->last_seq;
}

/* Loads up to window rows with seq > the publish mark, oldest first. */
static int load_rows(struct ts_store *s, size_t window, struct row **out, size_t *k)
{
    sqlite3_stmt *st = s->st[ST_MERGE_SELECT];
    struct row *rows = malloc(window * sizeof *rows);
    int rc;

    *k = 0;
    if (!rows)
        return SQLITE_NOMEM;
    sqlite3_bind_int64(st, 1, u2i(s->publish_mark));
    sqlite3_bind_int64(st, 2, (int64_t)window);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *k < window) {
        struct row *w = &rows[(*k)++];
        w->seq = sqlite3_column_int64(st, 0);
        w->merged_from = sqlite3_column_int64(st, 1);
        w->tid = sqlite3_column_int64(st, 2);
        COPY(w->desc, (const char *)sqlite3_column_text(st, 3));
        w->entries = (uint64_t)sqlite3_column_int64(st, 4);
        w->exits = (uint64_t)sqlite3_column_int64(st, 5);
        w->time_ms = sqlite3_column_int64(st, 6);
        w->entries_cum = (uint64_t)sqlite3_column_int64(st, 7);
        w->exits_cum = (uint64_t)sqlite3_column_int64(st, 8);
        w->flags = (uint32_t)sqlite3_column_int64(st, 9);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        free(rows);
        return rc;
    }
    *out = rows;
    return SQLITE_OK;
}

/* Groups rows[0..k) (sorted by seq) by turnstile. Returns the number of
 * groups, in the order of their last reading; rows are reordered. */
static size_t group_rows(struct row *rows, size_t k, struct group *g)
{
    size_t n = 0;
    qsort(rows, k, sizeof *rows, cmp_row_tid);
    for (size_t i = 0; i < k; i++) {
        const struct row *w = &rows[i];
        if (i == 0 || w->tid != rows[i - 1].tid) {
            memset(&g[n], 0, sizeof g[n]);
            g[n++].tid = w->tid;
        }
        struct group *cur = &g[n - 1];
        cur->entries += w->entries;
        cur->exits += w->exits;
        cur->flags |= w->flags;
        cur->recovered |= strcmp(w->desc, DESC_RECOVERED) == 0;
        /* rows of a group are in seq order: the last one is the latest */
        cur->last_seq = w->seq;
        cur->time_ms = w->time_ms;
        cur->entries_cum = w->entries_cum;
        cur->exits_cum = w->exits_cum;
        COPY(cur->desc, w->desc);
    }
    qsort(g, n, sizeof *g, cmp_group_last);
    return n;
}

/* One merge pass, in one transaction: the oldest merge_batch rows above
 * the publish mark become one row per turnstile (see docs/store.md). If
 * that window holds no two rows of one turnstile, the window is doubled
 * until it does or it holds every unpublished row. *merged = rows removed. */
static int merge_pass(struct ts_store *s, uint64_t *merged)
{
    size_t window = (size_t)s->merge_batch;
    struct row *rows = NULL;
    struct group *g = NULL;
    int64_t *seqs = NULL;
    size_t k = 0, n = 0;
    int rc;

    *merged = 0;
    if ((rc = tx_begin(s)) != SQLITE_OK)
        return rc;
    for (;;) {
        if ((rc = load_rows(s, window, &rows, &k)) != SQLITE_OK)
            goto out;
        if (k < 2)
            goto out;
        free(seqs);
        free(g);
        seqs = malloc(k * sizeof *seqs);
        g = malloc(k * sizeof *g);
        if (!seqs || !g) {
            rc = SQLITE_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < k; i++)
            seqs[i] = rows[i].seq;
        n = group_rows(rows, k, g);
        if (n < k || k < window || window >= (size_t)s->rows)
            break;
        free(rows);
        rows = NULL;
        window *= 2;
    }
    if (n == k)
        goto out; /* every unpublished row is its turnstile's only one */

    /* rows[] is sorted by tid now; seqs[] keeps the seq order. The range
     * seqs[0]..seqs[k-1] holds exactly these k rows (consecutive above the
     * mark). The n new rows take its n highest numbers, in the order of
     * their last reading; the first accounts for every number below it. */
    int64_t first_merged_from = INT64_MAX;
    for (size_t i = 0; i < k; i++)
        if (rows[i].merged_from < first_merged_from)
            first_merged_from = rows[i].merged_from;
    sqlite3_bind_int64(s->st[ST_MERGE_DELETE], 1, seqs[0]);
    sqlite3_bind_int64(s->st[ST_MERGE_DELETE], 2, seqs[k - 1]);
    if ((rc = run(s, ST_MERGE_DELETE)) != SQLITE_OK)
        goto out;
    if ((size_t)sqlite3_changes(s->db) != k) {
        rc = SQLITE_CORRUPT; /* cannot happen: the range was read in this transaction */
        goto out;
    }
    int64_t prev = 0;
    for (size_t j = 0; j < n && rc == SQLITE_OK; j++) {
        struct row w = {.seq = seqs[k - n + j], .tid = g[j].tid, .time_ms = g[j].time_ms,
                        .entries = g[j].entries, .exits = g[j].exits,
                        .entries_cum = g[j].entries_cum, .exits_cum = g[j].exits_cum,
                        .flags = g[j].flags | TS_FLAG_MERGED};
        /* The numbers above the first new row are consecutive (only the
         * first row of a window can carry a hole), so prev + 1 == seq: the
         * rule "merged_from = own seq" of store.h, stated so that it can
         * never leave a gap. */
        w.merged_from = j == 0 ? first_merged_from : prev + 1;
        COPY(w.desc, g[j].recovered ? DESC_RECOVERED : g[j].desc);
        prev = w.seq;
        rc = insert_row(s, &w);
    }
    if (rc != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(s->st[ST_META_MERGES], 1, u2i(s->merges + 1));
    sqlite3_bind_int64(s->st[ST_META_MERGES], 2, u2i(s->merged_rows + (k - n)));
    if ((rc = run(s, ST_META_MERGES)) != SQLITE_OK)
        goto out;
    if ((rc = tx_commit(s)) != SQLITE_OK)
        goto out;
    s->merges++;
    s->merged_rows += k - n;
    s->rows -= k - n;
    *merged = k - n;
    TS_LOG(TS_LOG_INFO, "store %s: retention: merged %zu readings (seq %lld..%lld) into %zu",
           s->cfg.path, k, (long long)seqs[0], (long long)seqs[k - 1], n);
out:
    if (rc != SQLITE_OK && !s->merge_failed) {
        TS_LOG(TS_LOG_WARNING, "store %s: retention: merge failed (%s); the store keeps growing",
               s->cfg.path, sqlite3_errmsg(s->db));
        s->merge_failed = true;
    } else if (rc == SQLITE_OK && *merged && s->merge_failed) {
        s->merge_failed = false;
    }
    tx_rollback(s); /* no-op after COMMIT; ends the read-only case too */
    free(rows);
    free(seqs);
    free(g);
    return rc;
}

static bool over_bound(struct ts_store *s)
{
    if (s->cfg.max_rows > 0 && s->rows > (uint64_t)s->cfg.max_rows)
        return true;
    return s->cfg.max_bytes > 0 && used_bytes(s) > (uint64_t)s->cfg.max_bytes;
}

/* After an append: merge while over the bound and something can be merged. */
static void retention(struct ts_store *s)
{
    uint64_t merged = 1;
    bool over;

    while ((over = over_bound(s)) && merged)
        if (merge_pass(s, &merged) != SQLITE_OK)
            return;
    if (over && !s->retention_stuck) {
        TS_LOG(TS_LOG_WARNING,
               "store %s: retention bound exceeded (%llu rows, %llu bytes) and nothing left to "
               "merge (every reading above the publish mark %llu is its turnstile's only one); "
               "keeping every reading, the store grows",
               s->cfg.path, (unsigned long long)s->rows, (unsigned long long)used_bytes(s),
               (unsigned long long)s->publish_mark);
        s->retention_stuck = true;
    } else if (!over && s->retention_stuck) {
        TS_LOG(TS_LOG_NOTICE, "store %s: back within the retention bound (%llu rows)",
               s->cfg.path, (unsigned long long)s->rows);
        s->retention_stuck = false;
    }
}

/* --- the in-memory backlog ----------------------------------------------- */

struct held_group {
    struct tkey key;
    size_t first, last; /* indexes into held */
};

static int cmp_hgroup_key(const void *a, const void *b)
{
    const struct held_group *x = a, *y = b;
    int c = memcmp(&x->key, &y->key, sizeof x->key);
    if (c)
        return c;
    return x->last < y->last ? -1 : x->last > y->last;
}

static int cmp_hgroup_last(const void *a, const void *b)
{
    const struct held_group *x = a, *y = b;
    return x->last < y->last ? -1 : x->last > y->last;
}

/* Merges held[0..m) into one reading per turnstile, in the order of their
 * last reading, keeping held[m..) after them. Returns readings removed. */
static size_t merge_held_prefix(struct ts_store *s, size_t m)
{
    struct held_group *hg = malloc(m * sizeof *hg);
    struct ts_reading *out = malloc(m * sizeof *out);
    size_t n = 0;

    if (!hg || !out) {
        free(hg);
        free(out);
        return 0;
    }
    for (size_t i = 0; i < m; i++) {
        key_of(&s->held[i], &hg[i].key);
        hg[i].first = hg[i].last = i;
    }
    qsort(hg, m, sizeof *hg, cmp_hgroup_key);
    /* collapse equal keys: each group's readings are in held order */
    for (size_t i = 0; i < m; i++) {
        const struct ts_reading *r = &s->held[hg[i].last];
        if (n && memcmp(&hg[n - 1].key, &hg[i].key, sizeof hg[i].key) == 0) {
            struct ts_reading *cur = &out[n - 1];
            uint64_t e = cur->entries + r->entries, x = cur->exits + r->exits;
            uint32_t f = cur->flags | r->flags;
            bool rec = strcmp(cur->desc, DESC_RECOVERED) == 0 ||
                       strcmp(r->desc, DESC_RECOVERED) == 0;
            *cur = *r; /* the later reading: time and cumulative values */
            cur->entries = e;
            cur->exits = x;
            cur->flags = f | TS_FLAG_MERGED;
            if (rec)
                COPY(cur->desc, DESC_RECOVERED);
            hg[n - 1].last = hg[i].last;
        } else {
            hg[n] = hg[i];
            out[n++] = *r;
        }
    }
    if (n < m) {
        /* order the merged readings by their last reading; out[] is parallel to hg[] */
        for (size_t i = 0; i < n; i++)
            hg[i].first = i;
        qsort(hg, n, sizeof *hg, cmp_hgroup_last);
        for (size_t i = 0; i < n; i++)
            s->held[i] = out[hg[i].first];
        memmove(&s->held[n], &s->held[m], (s->n_held - m) * sizeof *s->held);
        s->n_held -= m - n;
    }
    free(hg);
    free(out);
    return m - n;
}

/* Keeps the in-memory backlog bounded: merges its oldest half (or all of
 * it) per turnstile, conserving totals. */
static void bound_held(struct ts_store *s)
{
    if (s->n_held <= s->memory_max)
        return;
    size_t removed = merge_held_prefix(s, s->n_held / 2);
    if (!removed)
        removed = merge_held_prefix(s, s->n_held);
    if (removed) {
        s->merges++;
        s->merged_rows += removed;
        TS_LOG(TS_LOG_WARNING, "store %s: memory backlog over %zu readings: merged %zu away "
               "(totals kept), %zu held", s->cfg.path, s->memory_max, removed, s->n_held);
    }
}

/* Appends copies of r[0..n) and the state to the in-memory backlog. */
static int hold(struct ts_store *s, struct ts_reading *r, size_t n, const void *state,
                size_t len)
{
    if (s->n_held + n > s->cap_held) {
        size_t cap = s->cap_held ? s->cap_held : 256;
        while (cap < s->n_held + n)
            cap *= 2;
        struct ts_reading *p = realloc(s->held, cap * sizeof *p);
        if (!p)
            return TS_ENOMEM;
        s->held = p;
        s->cap_held = cap;
    }
    if (state) {
        unsigned char *p = malloc(len ? len : 1);
        if (!p)
            return TS_ENOMEM;
        memcpy(p, state, len);
        free(s->held_state);
        s->held_state = p;
        s->held_state_len = len;
        s->held_state_set = true;
    }
    for (size_t i = 0; i < n; i++) {
        r[i].seq = 0; /* numbered when written */
        r[i].merged_from = 0;
        s->held[s->n_held++] = r[i];
    }
    bound_held(s);
    return TS_OK;
}

static void note_failure(struct ts_store *s, int rc)
{
    int err = map_rc(rc);
    if (!s->last_error)
        TS_LOG(TS_LOG_ERR, "store %s: cannot write (%s: %s): holding readings in memory, in "
               "order, until writing works again", s->cfg.path, ts_strerror(err),
               sqlite3_errstr(rc));
    s->last_error = err;
}

/* Writes the backlog (one transaction, with the latest held state). */
static int flush_held(struct ts_store *s)
{
    if (!s->n_held && !s->held_state_set)
        return SQLITE_OK;
    size_t n = s->n_held;
    int rc = write_batch(s, s->held, n, s->held_state_set, s->held_state, s->held_state_len);
    if (rc != SQLITE_OK)
        return rc;
    TS_LOG(TS_LOG_NOTICE, "store %s: writing again: %zu readings held in memory written "
           "(seq %llu..%llu)", s->cfg.path, n, (unsigned long long)(s->next_seq - n),
           (unsigned long long)(s->next_seq - 1));
    s->n_held = 0;
    free(s->held_state);
    s->held_state = NULL;
    s->held_state_len = 0;
    s->held_state_set = false;
    s->last_error = 0;
    return SQLITE_OK;
}

/* --- the interface ------------------------------------------------------- */

static int exec(struct ts_store *s, const char *sql)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL);
}

static int pragma_int(struct ts_store *s, const char *sql, int64_t *v)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Creates the schema if the file is new; checks it is ours otherwise. */
static int prepare_schema(struct ts_store *s, const char *agent_id, char *err, size_t errsize)
{
    const char *path = s->cfg.path;
    int64_t version = 0, app = 0, objects = 0;
    int rc = exec(s, "BEGIN IMMEDIATE");

    if (rc == SQLITE_OK)
        rc = pragma_int(s, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
        rc = pragma_int(s, "PRAGMA application_id", &app);
    if (rc == SQLITE_OK)
        rc = pragma_int(s, "SELECT count(*) FROM sqlite_schema", &objects);
    if (rc != SQLITE_OK)
        goto fail;
    if (version == 0 && app == 0 && objects == 0) {
        char sql[256];
        rc = exec(s, schema_sql);
        snprintf(sql, sizeof sql,
                 "PRAGMA application_id = %d; PRAGMA user_version = %d;",
                 STORE_APPLICATION_ID, STORE_SCHEMA_VERSION);
        if (rc == SQLITE_OK)
            rc = exec(s, sql);
        if (rc == SQLITE_OK) {
            sqlite3_stmt *st;
            rc = sqlite3_prepare_v2(s->db, "INSERT INTO meta (id, agent_id, next_seq, created_ms)"
                                    " VALUES (1, ?1, 1, ?2)", -1, &st, NULL);
            if (rc == SQLITE_OK) {
                sqlite3_bind_text(st, 1, agent_id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, ts_wall_ms());
                rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
                sqlite3_finalize(st);
            }
        }
        if (rc != SQLITE_OK)
            goto fail;
        TS_LOG(TS_LOG_NOTICE, "store %s: created for agent %s", path, agent_id);
    } else if (app != STORE_APPLICATION_ID) {
        exec(s, "ROLLBACK");
        ts_why(err, errsize, "store %s: not a turnstile-agent store (application_id 0x%llx); "
                "refusing to touch it: choose another store path", path, (unsigned long long)app);
        return TS_ECONFIG;
    } else if (version != STORE_SCHEMA_VERSION) {
        exec(s, "ROLLBACK");
        ts_why(err, errsize, "store %s: schema version %lld, this agent knows version %d: "
                "written by %s agent; refusing to touch it", path, (long long)version,
                STORE_SCHEMA_VERSION, version > STORE_SCHEMA_VERSION ? "a newer" : "an older");
        return TS_ECONFIG;
    }
    if ((rc = exec(s, "COMMIT")) != SQLITE_OK)
        goto fail;
    return TS_OK;
fail:
    ts_why(err, errsize, "store %s: cannot initialise: %s", path, sqlite3_errmsg(s->db));
    if (!sqlite3_get_autocommit(s->db))
        exec(s, "ROLLBACK");
    return (rc & 0xff) == SQLITE_NOTADB ? TS_ECONFIG : map_rc(rc);
}

static int load_meta(struct ts_store *s, const char *agent_id, char *err, size_t errsize)
{
    const char *path = s->cfg.path;
    sqlite3_stmt *st;
    int64_t max_seq = 0, count = 0;
    int rc = sqlite3_prepare_v2(s->db, "SELECT agent_id, next_seq, publish_mark, acked, merges,"
                                " merged_rows FROM meta WHERE id = 1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE) {
            ts_why(err, errsize, "store %s: damaged: no meta row; refusing to touch it", path);
            return TS_ECONFIG;
        }
        goto fail;
    }
    const char *owner = (const char *)sqlite3_column_text(st, 0);
    if (!owner || strcmp(owner, agent_id) != 0) {
        ts_why(err, errsize, "store %s was written by agent '%s', this agent is '%s': sequence "
                "numbers of two agents must never mix; give this agent its own store path "
                "(or restore its agent id)", path, owner ? owner : "", agent_id);
        sqlite3_finalize(st);
        return TS_ECONFIG;
    }
    s->next_seq = (uint64_t)sqlite3_column_int64(st, 1);
    s->publish_mark = (uint64_t)sqlite3_column_int64(st, 2);
    s->acked = (uint64_t)sqlite3_column_int64(st, 3);
    s->merges = (uint64_t)sqlite3_column_int64(st, 4);
    s->merged_rows = (uint64_t)sqlite3_column_int64(st, 5);
    sqlite3_finalize(st);
    if ((rc = pragma_int(s, "SELECT count(*) FROM readings", &count)) != SQLITE_OK ||
        (rc = pragma_int(s, "SELECT ifnull(max(seq), 0) FROM readings", &max_seq)) != SQLITE_OK)
        goto fail;
    s->rows = (uint64_t)count;
    if ((uint64_t)max_seq >= s->next_seq) {
        /* cannot happen (both change in one transaction); never reuse a number */
        TS_LOG(TS_LOG_ERR, "store %s: next_seq %llu not above the highest stored %lld; "
               "continuing from %lld", path, (unsigned long long)s->next_seq,
               (long long)max_seq, (long long)max_seq + 1);
        s->next_seq = (uint64_t)max_seq + 1;
    }
    return TS_OK;
fail:
    ts_why(err, errsize, "store %s: cannot read: %s", path, sqlite3_errmsg(s->db));
    return map_rc(rc);
}

int ts_store_open(const struct ts_store_cfg *cfg, const char *agent_id, struct ts_store **out,
                  char *err, size_t errsize)
{
    struct ts_store *s;
    char mode[16] = "";
    int rc, ret;

    ts_why(err, errsize, "%s", "");
    if (!cfg || !agent_id || !out || !cfg->path[0] || cfg->max_rows < 0 || cfg->max_bytes < 0 ||
        cfg->merge_batch < 0 || !ts_id_ok(agent_id) || strlen(agent_id) >= TS_ID_MAX) {
        ts_why(err, errsize, "store %s: invalid configuration (path, agent id, bounds >= 0)",
                cfg ? cfg->path : "(null)");
        return TS_EINVAL;
    }
    *out = NULL;
    if (!(s = calloc(1, sizeof *s))) {
        ts_why(err, errsize, "store %s: out of memory", cfg->path);
        return TS_ENOMEM;
    }
    ts_hashtab_init(&s->tid_index, TID_CACHE_MAX);
    s->cfg = *cfg;
    s->cfg.path[sizeof s->cfg.path - 1] = '\0';
    COPY(s->agent_id, agent_id);
    s->merge_batch = cfg->merge_batch >= 2 ? cfg->merge_batch : STORE_DEFAULT_BATCH;
    s->memory_max = STORE_MEMORY_MAX;

    rc = sqlite3_open_v2(s->cfg.path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        ts_why(err, errsize, "store %s: cannot open: %s", s->cfg.path,
                s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        ret = map_rc(rc);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);

    /* journal_mode answers with the mode in force; anything but wal is an error */
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            COPY(mode, (const char *)sqlite3_column_text(st, 0));
            rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK || strcmp(mode, "wal") != 0) {
        ts_why(err, errsize, "store %s: cannot use WAL mode: %s", s->cfg.path,
                rc != SQLITE_OK ? sqlite3_errmsg(s->db) : mode);
        ret = (rc & 0xff) == SQLITE_NOTADB ? TS_ECONFIG : rc != SQLITE_OK ? map_rc(rc) : TS_EIO;
        if (ret == TS_ECONFIG)
            ts_why(err, errsize, "store %s: not an SQLite database: refusing to touch it; "
                    "choose another store path", s->cfg.path);
        goto fail;
    }
    char sql[128];
    snprintf(sql, sizeof sql, "PRAGMA synchronous = %s; PRAGMA journal_size_limit = %d;",
             cfg->synchronous_full ? "FULL" : "NORMAL", STORE_WAL_LIMIT);
    if ((rc = exec(s, sql)) != SQLITE_OK) {
        ts_why(err, errsize, "store %s: %s", s->cfg.path, sqlite3_errmsg(s->db));
        ret = map_rc(rc);
        goto fail;
    }
    if ((ret = prepare_schema(s, agent_id, err, errsize)) != TS_OK)
        goto fail;
    if ((ret = load_meta(s, agent_id, err, errsize)) != TS_OK)
        goto fail;
    pragma_int(s, "PRAGMA page_size", &s->page_size);
    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                                NULL);
        if (rc != SQLITE_OK) {
            ts_why(err, errsize, "store %s: cannot prepare statement %d: %s", s->cfg.path, i,
                    sqlite3_errmsg(s->db));
            ret = map_rc(rc);
            goto fail;
        }
    }
    TS_LOG(TS_LOG_INFO, "store %s: opened: %llu readings, next seq %llu, acked %llu, "
           "publish mark %llu, synchronous %s", s->cfg.path, (unsigned long long)s->rows,
           (unsigned long long)s->next_seq, (unsigned long long)s->acked,
           (unsigned long long)s->publish_mark, cfg->synchronous_full ? "full" : "normal");
    *out = s;
    return TS_OK;
fail:
    ts_store_close(s);
    return ret;
}

void ts_store_close(struct ts_store *s)
{
    if (!s)
        return;
    if (s->db && s->st[ST_COUNT - 1] && (s->n_held || s->held_state_set)) {
        if (flush_held(s) != SQLITE_OK)
            TS_LOG(TS_LOG_ERR, "store %s: closing with %zu readings held in memory that could "
                   "not be written: they are lost, and so is the state that counted them (the "
                   "next start counts those people again from the gates' registers)",
                   s->cfg.path, s->n_held);
    }
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    free(s->tids);
    ts_hashtab_free(&s->tid_index);
    free(s->held);
    free(s->held_state);
    free(s);
}

int ts_store_load_state(struct ts_store *s, void *buf, size_t cap, size_t *len)
{
    if (!s || !len || (cap && !buf))
        return TS_EINVAL;
    *len = 0;
    if (s->held_state_set) {
        *len = s->held_state_len;
        if (s->held_state_len > cap)
            return TS_EFULL;
        memcpy(buf, s->held_state, s->held_state_len);
        return TS_OK;
    }
    sqlite3_stmt *st = s->st[ST_STATE_GET];
    int rc = sqlite3_step(st), ret = TS_OK;
    if (rc == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        const void *p = sqlite3_column_blob(st, 0);
        *len = n;
        if (n > cap)
            ret = TS_EFULL;
        else if (n)
            memcpy(buf, p, n);
    } else if (rc != SQLITE_DONE) {
        ret = map_rc(rc);
    }
    sqlite3_reset(st);
    return ret;
}

int ts_store_append(struct ts_store *s, struct ts_reading *r, size_t n, const void *state,
                    size_t len)
{
    int rc;

    if (!s || (n && !r) || (len && !state) || len > (size_t)INT32_MAX)
        return TS_EINVAL;
    for (size_t i = 0; i < n; i++)
        COPY(r[i].agent_id, s->agent_id);
    /* what is held goes first, so that order is kept; then the new ones */
    rc = flush_held(s);
    if (rc == SQLITE_OK && (n || state))
        rc = write_batch(s, r, n, state != NULL, state, len);
    if (rc != SQLITE_OK) {
        note_failure(s, rc);
        int h = hold(s, r, n, state, len);
        if (h != TS_OK) {
            TS_LOG(TS_LOG_ERR, "store %s: out of memory: %zu readings lost", s->cfg.path, n);
            return h;
        }
        return s->last_error;
    }
    retention(s);
    return TS_OK;
}

int ts_store_retry(struct ts_store *s)
{
    if (!s)
        return TS_EINVAL;
    if (!s->n_held && !s->held_state_set)
        return TS_OK;
    int rc = flush_held(s);
    if (rc != SQLITE_OK) {
        note_failure(s, rc);
        return s->last_error;
    }
    retention(s);
    return TS_OK;
}

int ts_store_fetch(struct ts_store *s, uint64_t after, struct ts_reading *out, size_t max,
                   size_t *n)
{
    if (!s || !n || (max && !out))
        return TS_EINVAL;
    *n = 0;
    if (!max)
        return TS_OK;
    sqlite3_stmt *st = s->st[ST_FETCH];
    int rc = SQLITE_DONE;
    sqlite3_bind_int64(st, 1, u2i(after));
    sqlite3_bind_int64(st, 2, u2i(max));
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ts_reading *r = &out[(*n)++];
        memset(r, 0, sizeof *r);
        r->seq = (uint64_t)sqlite3_column_int64(st, 0);
        r->merged_from = (uint64_t)sqlite3_column_int64(st, 1);
        COPY(r->ca, (const char *)sqlite3_column_text(st, 2));
        COPY(r->unit, (const char *)sqlite3_column_text(st, 3));
        COPY(r->scp, (const char *)sqlite3_column_text(st, 4));
        COPY(r->station, (const char *)sqlite3_column_text(st, 5));
        COPY(r->linename, (const char *)sqlite3_column_text(st, 6));
        COPY(r->division, (const char *)sqlite3_column_text(st, 7));
        COPY(r->desc, (const char *)sqlite3_column_text(st, 8));
        r->entries = (uint64_t)sqlite3_column_int64(st, 9);
        r->exits = (uint64_t)sqlite3_column_int64(st, 10);
        r->time_ms = sqlite3_column_int64(st, 11);
        r->entries_cum = (uint64_t)sqlite3_column_int64(st, 12);
        r->exits_cum = (uint64_t)sqlite3_column_int64(st, 13);
        r->flags = (uint32_t)sqlite3_column_int64(st, 14);
        COPY(r->agent_id, s->agent_id);
    }
    if (*n < max && rc != SQLITE_DONE) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        *n = 0;
        return map_rc(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return TS_OK;
}

int ts_store_mark_published(struct ts_store *s, uint64_t seq)
{
    if (!s)
        return TS_EINVAL;
    if (seq <= s->publish_mark)
        return TS_OK; /* monotonic: never lowered */
    /* Durable whatever cfg.synchronous_full says: a reading that may be
     * published must survive a power cut, with every commit before it (the
     * WAL is synced as a whole), so that no published number is reused. */
    if (!s->cfg.synchronous_full)
        exec(s, "PRAGMA synchronous = FULL");
    int rc = tx_begin(s);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s->st[ST_META_MARK], 1, u2i(seq));
        rc = run(s, ST_META_MARK);
    }
    if (rc == SQLITE_OK)
        rc = tx_commit(s);
    if (rc != SQLITE_OK) {
        TS_LOG(TS_LOG_WARNING, "store %s: cannot persist the publish mark %llu: %s",
               s->cfg.path, (unsigned long long)seq, sqlite3_errmsg(s->db));
        tx_rollback(s);
    }
    if (!s->cfg.synchronous_full)
        exec(s, "PRAGMA synchronous = NORMAL");
    if (rc != SQLITE_OK)
        return map_rc(rc);
    s->publish_mark = seq;
    return TS_OK;
}

int ts_store_renumber(struct ts_store *s, uint64_t first)
{
    if (!s || first == 0)
        return TS_EINVAL;
    if (s->publish_mark != 0 || s->n_held)
        return TS_EINVAL; /* something may be out there under the present numbers */
    int64_t lowest = 0;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT coalesce(min(seq), 0) FROM readings", -1, &q, NULL);
    if (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        lowest = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    uint64_t base = lowest ? (uint64_t)lowest : s->next_seq;
    if (first <= base)
        return TS_OK; /* already above */
    uint64_t d = first - base;
    if (first > TS_SEQ_MAX || s->next_seq - 1 > TS_SEQ_MAX - d)
        return TS_EINVAL; /* past the numbers an agent ever uses (the caller says so) */
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE TEMP TABLE shifted AS SELECT * FROM readings;"
             "DELETE FROM readings;"
             "INSERT INTO readings SELECT seq + %llu, merged_from + %llu, tid, descr, entries, exits,"
             " time_ms, entries_cum, exits_cum, flags FROM shifted;"
             "DROP TABLE shifted;"
             "UPDATE meta SET next_seq = next_seq + %llu, acked = %llu WHERE id = 1;",
             (unsigned long long)d, (unsigned long long)d, (unsigned long long)d,
             (unsigned long long)(first - 1));
    if ((rc = tx_begin(s)) == SQLITE_OK && (rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL)) == SQLITE_OK)
        rc = tx_commit(s);
    if (rc != SQLITE_OK) {
        TS_LOG(TS_LOG_ERR, "store %s: cannot renumber from %llu: %s", s->cfg.path,
               (unsigned long long)first, sqlite3_errmsg(s->db));
        tx_rollback(s);
        return map_rc(rc);
    }
    TS_LOG(TS_LOG_WARNING, "store %s: renumbered %llu unpublished readings to start at %llu",
           s->cfg.path, (unsigned long long)s->rows, (unsigned long long)first);
    s->next_seq += d;
    s->acked = first - 1;
    return TS_OK;
}

int ts_store_ack(struct ts_store *s, uint64_t upto)
{
    if (!s)
        return TS_EINVAL;
    if (upto > s->publish_mark) {
        /* an acknowledgement cannot cover a reading that was never published */
        if (!s->ack_clamped)
            TS_LOG(TS_LOG_WARNING, "store %s: acknowledgement %llu is past the publish mark "
                   "%llu (a bridge remembering another store?): deleting only up to the mark",
                   s->cfg.path, (unsigned long long)upto, (unsigned long long)s->publish_mark);
        s->ack_clamped = true;
        upto = s->publish_mark;
    }
    if (upto <= s->acked)
        return TS_OK;
    int rc = tx_begin(s);
    uint64_t deleted = 0;
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s->st[ST_ACK], 1, u2i(upto));
        rc = run(s, ST_ACK);
        deleted = (uint64_t)sqlite3_changes(s->db);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s->st[ST_META_ACKED], 1, u2i(upto));
        rc = run(s, ST_META_ACKED);
    }
    if (rc == SQLITE_OK)
        rc = tx_commit(s);
    if (rc != SQLITE_OK) {
        TS_LOG(TS_LOG_WARNING, "store %s: cannot delete acknowledged readings up to %llu: %s",
               s->cfg.path, (unsigned long long)upto, sqlite3_errmsg(s->db));
        tx_rollback(s);
        return map_rc(rc);
    }
    s->acked = upto;
    s->rows = s->rows > deleted ? s->rows - deleted : 0;
    if (s->retention_stuck && !over_bound(s)) {
        TS_LOG(TS_LOG_NOTICE, "store %s: back within the retention bound (%llu rows)",
               s->cfg.path, (unsigned long long)s->rows);
        s->retention_stuck = false;
    }
    return TS_OK;
}

void ts_store_get_stats(struct ts_store *s, struct ts_store_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    out->rows = s->rows;
    out->bytes = used_bytes(s);
    out->next_seq = s->next_seq;
    out->acked = s->acked;
    out->publish_mark = s->publish_mark;
    out->merges = s->merges;
    out->merged_rows = s->merged_rows;
    out->pending_memory = s->n_held;
    out->last_error = s->last_error;
}

/* --- test hooks ---------------------------------------------------------- */

int ts_store_test_max_pages(struct ts_store *s, uint64_t pages, uint64_t *now)
{
    char sql[64];
    int64_t v = 0;
    if (!s)
        return TS_EINVAL;
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)u2i(pages));
    int rc = pragma_int(s, sql, &v);
    if (now)
        *now = (uint64_t)v;
    return map_rc(rc);
}

void ts_store_test_memory_max(struct ts_store *s, size_t n)
{
    if (s)
        s->memory_max = n ? n : STORE_MEMORY_MAX;
}
