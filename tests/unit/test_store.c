/* SPDX-License-Identifier: Apache-2.0 */
/* The store-and-forward buffer (agent/store.c): nothing counted is ever
 * lost, sequence numbers are never reused, merges conserve totals and keep
 * merged_from exact, a full disk holds readings in memory in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "flags.h"
#include "log.h"
#include "store.h"

#define AGENT "ctrl-59st.01"
#define NT 4 /* turnstiles in the generated readings */

static char path[128];
static int counter;

/* What make() generated, per turnstile: the cumulative registers are real
 * counters (base + running sum of the deltas), and each reading's entries
 * register value is remembered with its time. */
#define CUM_IN0 1000000
#define CUM_OUT0 2000000
#define MAXGEN 8192
static uint64_t cum_in[NT], cum_out[NT], gen_cum[NT][MAXGEN];
static int64_t gen_time[NT][MAXGEN];
static size_t gen_n[NT];

static int setup(void **state)
{
    snprintf(path, sizeof path, "/tmp/ts-store-test-%d-%d.db", (int)getpid(), counter++);
    memset(cum_in, 0, sizeof cum_in);
    memset(cum_out, 0, sizeof cum_out);
    memset(gen_n, 0, sizeof gen_n);
    return 0;
}

static void remove_files(void)
{
    char p[160];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static int teardown(void **state)
{
    remove_files();
    return 0;
}

static struct ts_store *open_store(int64_t max_rows, int64_t max_bytes, int batch)
{
    struct ts_store_cfg cfg = {.max_rows = max_rows, .max_bytes = max_bytes,
                               .merge_batch = batch, .synchronous_full = 0};
    struct ts_store *s = NULL;
    char err[512] = "";
    snprintf(cfg.path, sizeof cfg.path, "%s", path);
    int rc = ts_store_open(&cfg, AGENT, &s, err, sizeof err);
    if (rc != TS_OK)
        fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, TS_OK);
    assert_non_null(s);
    return s;
}

/* A reading of turnstile t (0..NT-1); i makes every one distinct. */
static struct ts_reading make(int t, uint64_t i, uint64_t entries, uint64_t exits)
{
    struct ts_reading r;
    memset(&r, 0, sizeof r);
    strcpy(r.ca, "A002");
    strcpy(r.unit, "R051");
    snprintf(r.scp, sizeof r.scp, "02-00-%02d", t);
    strcpy(r.station, "59 ST");
    strcpy(r.linename, "NQR456W");
    strcpy(r.division, "BMT");
    strcpy(r.desc, "REGULAR");
    strcpy(r.agent_id, AGENT);
    r.entries = entries;
    r.exits = exits;
    r.time_ms = 1685174400000LL + (int64_t)i * 1000; /* tells the order back */
    cum_in[t] += entries;
    cum_out[t] += exits;
    r.entries_cum = CUM_IN0 + cum_in[t];
    r.exits_cum = CUM_OUT0 + cum_out[t];
    assert_true(gen_n[t] < MAXGEN);
    gen_cum[t][gen_n[t]] = r.entries_cum;
    gen_time[t][gen_n[t]++] = r.time_ms;
    r.seq = 999; /* the tally's number: the store renumbers */
    return r;
}

static int turnstile_of(const struct ts_reading *r) { return atoi(r->scp + 6); }

/* Fetches everything stored (seq > after). Caller frees. */
static struct ts_reading *fetch_all(struct ts_store *s, uint64_t after, size_t *n)
{
    struct ts_store_stats st;
    ts_store_get_stats(s, &st);
    size_t cap = st.rows + 1;
    struct ts_reading *out = calloc(cap, sizeof *out);
    assert_non_null(out);
    assert_int_equal(ts_store_fetch(s, after, out, cap, n), TS_OK);
    assert_int_equal(*n, st.rows);
    return out;
}

/* The merged_from rule: the intervals [merged_from, seq] of the stored rows,
 * in seq order, cover first..last with no gap and no overlap. */
static void check_coverage(const struct ts_reading *r, size_t n, uint64_t first)
{
    uint64_t expect = first;
    for (size_t i = 0; i < n; i++) {
        if (r[i].merged_from != expect || r[i].merged_from > r[i].seq) {
            fprintf(stderr, "row %zu: seq %llu merged_from %llu, expected merged_from %llu\n", i,
                    (unsigned long long)r[i].seq, (unsigned long long)r[i].merged_from,
                    (unsigned long long)expect);
            fail();
        }
        if (r[i].merged_from != r[i].seq)
            assert_true(r[i].flags & TS_FLAG_MERGED);
        expect = r[i].seq + 1;
    }
}

/* Per turnstile: sums of entries and exits; seq order agrees with time. */
static void sums(const struct ts_reading *r, size_t n, uint64_t in[NT], uint64_t out[NT])
{
    int64_t last_time[NT] = {0};
    memset(in, 0, NT * sizeof *in);
    memset(out, 0, NT * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        int t = turnstile_of(&r[i]);
        in[t] += r[i].entries;
        out[t] += r[i].exits;
        assert_true(r[i].time_ms >= last_time[t]);
        last_time[t] = r[i].time_ms;
    }
}

/* Every row (merged or not) carries the time and cumulative values of the
 * latest reading it accounts for: its deltas are exactly the rise of the
 * registers since the previous row of its turnstile, and its time is the
 * one of the reading that had its register value. For stores holding every
 * reading since the first (no acks) and deltas >= 1 (distinct values). */
static void check_latest_kept(const struct ts_reading *r, size_t n)
{
    uint64_t prev_in[NT], prev_out[NT];
    for (int t = 0; t < NT; t++) {
        prev_in[t] = CUM_IN0;
        prev_out[t] = CUM_OUT0;
    }
    for (size_t i = 0; i < n; i++) {
        int t = turnstile_of(&r[i]);
        assert_int_equal(r[i].entries_cum - prev_in[t], r[i].entries);
        assert_int_equal(r[i].exits_cum - prev_out[t], r[i].exits);
        prev_in[t] = r[i].entries_cum;
        prev_out[t] = r[i].exits_cum;
        size_t j = 0;
        while (j < gen_n[t] && gen_cum[t][j] != r[i].entries_cum)
            j++;
        assert_true(j < gen_n[t]);
        assert_int_equal(r[i].time_ms, gen_time[t][j]);
    }
}

static sqlite3 *raw_open(void)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* --- round trip ---------------------------------------------------------- */

static void round_trip_keeps_every_field(void **state)
{
    struct ts_store *s = open_store(0, 0, 0);
    struct ts_reading in[2], out[4];
    size_t n = 0;

    in[0] = make(1, 1, 9, 5);
    in[1] = make(2, 2, 2147483647, 0);
    /* strncpy pads with NULs: the records compare as bytes */
    strncpy(in[1].ca, "R999", sizeof in[1].ca);
    strncpy(in[1].unit, "R1", sizeof in[1].unit);
    strncpy(in[1].scp, "00-00-01", sizeof in[1].scp);
    strncpy(in[1].station, "TIMES SQ-42 ST", sizeof in[1].station);
    strncpy(in[1].linename, "1237ACENQRSW", sizeof in[1].linename);
    strncpy(in[1].division, "IRT", sizeof in[1].division);
    strncpy(in[1].desc, "RECOVR AUD", sizeof in[1].desc);
    in[1].flags = TS_FLAG_RESET | TS_FLAG_GLITCH | TS_FLAG_RECOVERED | TS_FLAG_REBASED;
    in[1].time_ms = -1234; /* before 1970: signed */
    in[1].entries_cum = UINT64_MAX - 3; /* above INT64_MAX: the bit pattern survives */
    in[1].exits_cum = 0x8000000000000000ULL;
    memset(in[1].agent_id, 0, sizeof in[1].agent_id); /* the store stamps its id */

    assert_int_equal(ts_store_append(s, in, 2, NULL, 0), TS_OK);
    assert_int_equal(in[0].seq, 1);
    assert_int_equal(in[0].merged_from, 1);
    assert_int_equal(in[1].seq, 2);
    assert_int_equal(in[1].merged_from, 2);
    assert_string_equal(in[1].agent_id, AGENT);

    memset(out, 0xa5, sizeof out);
    assert_int_equal(ts_store_fetch(s, 0, out, 4, &n), TS_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(&out[0], &in[0], sizeof in[0]);
    assert_memory_equal(&out[1], &in[1], sizeof in[1]);

    /* after: only seq > 1; max bounds the count */
    assert_int_equal(ts_store_fetch(s, 1, out, 4, &n), TS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].seq, 2);
    assert_int_equal(ts_store_fetch(s, 0, out, 1, &n), TS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].seq, 1);

    /* and after a reopen */
    ts_store_close(s);
    s = open_store(0, 0, 0);
    memset(out, 0x5a, sizeof out);
    assert_int_equal(ts_store_fetch(s, 0, out, 4, &n), TS_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(&out[0], &in[0], sizeof in[0]);
    assert_memory_equal(&out[1], &in[1], sizeof in[1]);
    ts_store_close(s);
}

/* --- sequence numbers ---------------------------------------------------- */

static void seq_persists_across_reopen_and_is_never_reused(void **state)
{
    struct ts_store *s = open_store(0, 0, 0);
    struct ts_store_stats st;
    struct ts_reading r[3];
    size_t n;

    for (int i = 0; i < 3; i++)
        r[i] = make(i, (uint64_t)i, 1, 1);
    assert_int_equal(ts_store_append(s, r, 3, NULL, 0), TS_OK);
    assert_int_equal(r[2].seq, 3);
    ts_store_close(s);

    s = open_store(0, 0, 0);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.next_seq, 4);
    assert_int_equal(st.rows, 3);
    r[0] = make(0, 3, 1, 1);
    assert_int_equal(ts_store_append(s, r, 1, NULL, 0), TS_OK);
    assert_int_equal(r[0].seq, 4);

    /* everything acknowledged: the table is empty, the numbers go on */
    assert_int_equal(ts_store_mark_published(s, 4), TS_OK);
    assert_int_equal(ts_store_ack(s, 4), TS_OK);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.rows, 0);
    ts_store_close(s);

    s = open_store(0, 0, 0);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.next_seq, 5);
    assert_int_equal(st.acked, 4);
    r[0] = make(0, 4, 1, 1);
    assert_int_equal(ts_store_append(s, r, 1, NULL, 0), TS_OK);
    assert_int_equal(r[0].seq, 5);
    struct ts_reading *all = fetch_all(s, 0, &n);
    assert_int_equal(n, 1);
    assert_int_equal(all[0].seq, 5);
    free(all);
    ts_store_close(s);
}

/* --- state ------------------------------------------------------------------- */

static void state_round_trip(void **state)
{
    struct ts_store *s = open_store(0, 0, 0);
    struct ts_reading r = make(0, 0, 3, 4);
    char buf[64];
    size_t len = 99;

    assert_int_equal(ts_store_load_state(s, buf, sizeof buf, &len), TS_OK);
    assert_int_equal(len, 0);

    assert_int_equal(ts_store_append(s, &r, 1, "counters-1", 10), TS_OK);
    ts_store_close(s);
    s = open_store(0, 0, 0);
    assert_int_equal(ts_store_load_state(s, buf, sizeof buf, &len), TS_OK);
    assert_int_equal(len, 10);
    assert_memory_equal(buf, "counters-1", 10);

    /* too small a buffer: TS_EFULL and the size needed */
    assert_int_equal(ts_store_load_state(s, buf, 4, &len), TS_EFULL);
    assert_int_equal(len, 10);

    /* NULL state: left as it is */
    r = make(0, 1, 1, 1);
    assert_int_equal(ts_store_append(s, &r, 1, NULL, 0), TS_OK);
    assert_int_equal(ts_store_load_state(s, buf, sizeof buf, &len), TS_OK);
    assert_int_equal(len, 10);

    /* state alone (no reading), then an empty state */
    assert_int_equal(ts_store_append(s, NULL, 0, "counters-22", 11), TS_OK);
    assert_int_equal(ts_store_load_state(s, buf, sizeof buf, &len), TS_OK);
    assert_int_equal(len, 11);
    assert_memory_equal(buf, "counters-22", 11);
    assert_int_equal(ts_store_append(s, NULL, 0, "", 0), TS_OK);
    assert_int_equal(ts_store_load_state(s, buf, sizeof buf, &len), TS_OK);
    assert_int_equal(len, 0);
    ts_store_close(s);
}

/* --- acknowledgement and the publish mark -------------------------------- */

static void ack_deletes_up_to_and_is_clamped_to_the_publish_mark(void **state)
{
    struct ts_store *s = open_store(0, 0, 0);
    struct ts_store_stats st;
    struct ts_reading r[10], out[10];
    size_t n;

    for (int i = 0; i < 10; i++)
        r[i] = make(i % NT, (uint64_t)i, 1, 0);
    assert_int_equal(ts_store_append(s, r, 10, NULL, 0), TS_OK);
    assert_int_equal(ts_store_mark_published(s, 6), TS_OK);
    assert_int_equal(ts_store_mark_published(s, 3), TS_OK); /* never lowered */

    assert_int_equal(ts_store_ack(s, 4), TS_OK);
    assert_int_equal(ts_store_fetch(s, 0, out, 10, &n), TS_OK);
    assert_int_equal(n, 6);
    assert_int_equal(out[0].seq, 5);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.rows, 6);
    assert_int_equal(st.acked, 4);

    /* past the mark (6): only up to the mark */
    assert_int_equal(ts_store_ack(s, 9), TS_OK);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.rows, 4);
    assert_int_equal(st.acked, 6);
    assert_int_equal(ts_store_ack(s, 2), TS_OK); /* lower: nothing */
    ts_store_get_stats(s, &st);
    assert_int_equal(st.acked, 6);
    ts_store_close(s);

    /* mark and acked persist */
    s = open_store(0, 0, 0);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.acked, 6);
    assert_int_equal(st.rows, 4);
    assert_int_equal(ts_store_ack(s, 10), TS_OK); /* the mark is still 6 */
    ts_store_get_stats(s, &st);
    assert_int_equal(st.rows, 4);
    assert_int_equal(ts_store_mark_published(s, 10), TS_OK);
    assert_int_equal(ts_store_ack(s, 10), TS_OK);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.rows, 0);
    assert_int_equal(st.acked, 10);
    ts_store_close(s);
}

/* --- retention ------------------------------------------------------------ */

/* Appends cycles of NT readings (one per turnstile, pseudo-random deltas)
 * to s, adding to the totals. Returns the last index used. */
static uint64_t append_cycles(struct ts_store *s, uint64_t i, int cycles, uint64_t in[NT],
                              uint64_t out[NT], unsigned *seed, int expect)
{
    for (int c = 0; c < cycles; c++) {
        struct ts_reading r[NT];
        for (int t = 0; t < NT; t++, i++) {
            r[t] = make(t, i, 1 + (uint64_t)(rand_r(seed) % 50), 1 + (uint64_t)(rand_r(seed) % 30));
            if (rand_r(seed) % 17 == 0) {
                r[t].flags |= TS_FLAG_RECOVERED;
                strcpy(r[t].desc, "RECOVR AUD");
            }
            in[t] += r[t].entries;
            out[t] += r[t].exits;
        }
        assert_int_equal(ts_store_append(s, r, NT, &i, sizeof i), expect);
    }
    return i;
}

static void check_totals(struct ts_store *s, uint64_t after, const uint64_t in[NT],
                         const uint64_t out[NT])
{
    size_t n;
    uint64_t got_in[NT], got_out[NT];
    struct ts_reading *all = fetch_all(s, after, &n);
    sums(all, n, got_in, got_out);
    for (int t = 0; t < NT; t++) {
        assert_int_equal(got_in[t], in[t]);
        assert_int_equal(got_out[t], out[t]);
    }
    free(all);
}

static void retention_by_rows_merges_conserving_totals(void **state)
{
    struct ts_store *s = open_store(100, 0, 40);
    struct ts_store_stats st;
    uint64_t in[NT] = {0}, out[NT] = {0}, i = 0;
    unsigned seed = 1;
    size_t n, n_pub;

    /* 15 cycles, then the first 60 are published: they must stay as they are */
    i = append_cycles(s, i, 15, in, out, &seed, TS_OK);
    assert_int_equal(ts_store_mark_published(s, 60), TS_OK);
    struct ts_reading *published = fetch_all(s, 0, &n_pub);
    assert_int_equal(n_pub, 60);

    for (int c = 0; c < 200; c++) {
        i = append_cycles(s, i, 1, in, out, &seed, TS_OK);
        ts_store_get_stats(s, &st);
        assert_true(st.rows <= 100);
    }
    ts_store_get_stats(s, &st);
    assert_true(st.merges > 0);
    assert_int_equal(st.merged_rows, i - st.rows);
    assert_int_equal(st.next_seq, i + 1);

    struct ts_reading *all = fetch_all(s, 0, &n);
    assert_memory_equal(all, published, 60 * sizeof *all); /* untouched */
    check_coverage(all, n, 1);
    check_latest_kept(all, n);
    check_totals(s, 0, in, out);
    int merged = 0, recovered = 0;
    for (size_t k = 60; k < n; k++) {
        if (all[k].flags & TS_FLAG_MERGED) {
            merged++;
            recovered += strcmp(all[k].desc, "RECOVR AUD") == 0;
            assert_true(strcmp(all[k].desc, "RECOVR AUD") != 0 ||
                        (all[k].flags & TS_FLAG_RECOVERED));
        }
    }
    assert_true(merged > 0);
    assert_true(recovered > 0);
    free(all);
    free(published);

    /* persisted counters */
    ts_store_close(s);
    s = open_store(100, 0, 40);
    struct ts_store_stats st2;
    ts_store_get_stats(s, &st2);
    assert_int_equal(st2.merges, st.merges);
    assert_int_equal(st2.merged_rows, st.merged_rows);
    ts_store_close(s);
}

static void retention_by_bytes_merges_conserving_totals(void **state)
{
    const int64_t max_bytes = 64 * 1024;
    struct ts_store *s = open_store(0, max_bytes, 200);
    struct ts_store_stats st;
    uint64_t in[NT] = {0}, out[NT] = {0}, i = 0;
    unsigned seed = 2;
    size_t n, n_pub;

    i = append_cycles(s, i, 25, in, out, &seed, TS_OK);
    assert_int_equal(ts_store_mark_published(s, 100), TS_OK);
    struct ts_reading *published = fetch_all(s, 0, &n_pub);

    for (int c = 0; c < 1000; c++) {
        i = append_cycles(s, i, 1, in, out, &seed, TS_OK);
        ts_store_get_stats(s, &st);
        assert_true(st.bytes <= (uint64_t)max_bytes);
    }
    ts_store_get_stats(s, &st);
    assert_true(st.merges > 0);
    assert_true(st.rows < i);
    struct ts_reading *all = fetch_all(s, 0, &n);
    assert_memory_equal(all, published, n_pub * sizeof *all);
    check_coverage(all, n, 1);
    check_latest_kept(all, n);
    check_totals(s, 0, in, out);
    free(all);
    free(published);
    ts_store_close(s);
}

/* Nothing above the mark: the store keeps growing, never drops. */
static void retention_never_merges_published_rows(void **state)
{
    struct ts_store *s = open_store(10, 0, 5);
    struct ts_store_stats st;
    uint64_t in[NT] = {0}, out[NT] = {0}, i = 0;
    unsigned seed = 3;

    for (int c = 0; c < 20; c++) {
        i = append_cycles(s, i, 1, in, out, &seed, TS_OK);
        assert_int_equal(ts_store_mark_published(s, i), TS_OK);
    }
    ts_store_get_stats(s, &st);
    assert_int_equal(st.rows, 80);
    assert_int_equal(st.merges, 0);
    size_t n;
    struct ts_reading *all = fetch_all(s, 0, &n);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(all[k].seq, k + 1);
        assert_int_equal(all[k].flags & TS_FLAG_MERGED, 0);
    }
    free(all);
    /* one unpublished reading per turnstile: still nothing to merge */
    i = append_cycles(s, i, 1, in, out, &seed, TS_OK);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.rows, 84);
    /* a second cycle: those can be merged (down to one per turnstile), the
     * published ones still not */
    i = append_cycles(s, i, 1, in, out, &seed, TS_OK);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.rows, 84);
    assert_true(st.merges >= 1);
    all = fetch_all(s, 0, &n);
    for (size_t k = 0; k < 80; k++) {
        assert_int_equal(all[k].seq, k + 1);
        assert_int_equal(all[k].flags & TS_FLAG_MERGED, 0);
    }
    check_coverage(all, n, 1);
    assert_int_equal(all[83].seq, 88);
    free(all);
    check_totals(s, 0, in, out);
    ts_store_close(s);
}

/* Random appends, marks and acks under a tight bound: after every step the
 * intervals [merged_from, seq] tile acked+1 .. last seq exactly, and the
 * totals still stored plus those acknowledged are what was appended. */
static void merged_from_covers_every_seq(void **state)
{
    struct ts_store *s = open_store(40, 0, 16);
    struct ts_store_stats st;
    uint64_t in[NT] = {0}, out[NT] = {0}, acked_in[NT] = {0}, acked_out[NT] = {0};
    unsigned seed = 4;
    uint64_t i = 0, mark = 0;

    for (int step = 0; step < 400; step++) {
        int op = rand_r(&seed) % 10;
        ts_store_get_stats(s, &st);
        if (op < 7) {
            /* a cycle with a random subset of turnstiles */
            struct ts_reading r[NT];
            size_t m = 0;
            for (int t = 0; t < NT; t++, i++) {
                if (rand_r(&seed) % 3 == 0)
                    continue;
                r[m] = make(t, i, (uint64_t)(rand_r(&seed) % 20), (uint64_t)(rand_r(&seed) % 20));
                in[t] += r[m].entries;
                out[t] += r[m].exits;
                m++;
            }
            assert_int_equal(ts_store_append(s, r, m, NULL, 0), TS_OK);
        } else if (op < 9) {
            uint64_t top = st.next_seq - 1;
            if (top > mark) {
                mark += (uint64_t)rand_r(&seed) % (top - mark + 1);
                assert_int_equal(ts_store_mark_published(s, mark), TS_OK);
            }
        } else if (mark > st.acked) {
            uint64_t upto = st.acked + 1 + (uint64_t)rand_r(&seed) % (mark - st.acked);
            size_t n;
            struct ts_reading *all = fetch_all(s, 0, &n);
            /* the bridge acks only whole readings it got: upto ends a row */
            for (size_t k = 0; k < n; k++)
                if (all[k].merged_from <= upto && upto <= all[k].seq)
                    upto = all[k].seq <= mark ? all[k].seq : all[k].merged_from - 1;
            for (size_t k = 0; k < n && all[k].seq <= upto; k++) {
                acked_in[turnstile_of(&all[k])] += all[k].entries;
                acked_out[turnstile_of(&all[k])] += all[k].exits;
            }
            free(all);
            assert_int_equal(ts_store_ack(s, upto), TS_OK);
        }
        ts_store_get_stats(s, &st);
        size_t n;
        uint64_t got_in[NT], got_out[NT];
        struct ts_reading *all = fetch_all(s, 0, &n);
        check_coverage(all, n, st.acked + 1);
        sums(all, n, got_in, got_out);
        for (int t = 0; t < NT; t++) {
            assert_int_equal(got_in[t] + acked_in[t], in[t]);
            assert_int_equal(got_out[t] + acked_out[t], out[t]);
        }
        if (n)
            assert_true(all[n - 1].seq < st.next_seq);
        free(all);
    }
    ts_store_get_stats(s, &st);
    assert_true(st.merges > 5);
    assert_true(st.acked > 0);
    ts_store_close(s);
}

/* --- refusals ----------------------------------------------------------------- */

/* A store that never published moves its readings past an ack the bridge
 * already holds for this agent id, but never past TS_SEQ_MAX (2^53 - 1): an
 * ack of 2^64 - 1 wrapped acked + 1 to 0, and 2^53 would leave numbers a
 * JavaScript dashboard cannot tell apart. Refused: nothing changes. */
static void renumber_moves_past_the_ack_within_seq_max(void **state)
{
    struct ts_store *s = open_store(0, 0, 0);
    struct ts_reading r[10];
    for (int i = 0; i < 10; i++)
        r[i] = make(i % NT, (uint64_t)i, 1, 0);
    assert_int_equal(ts_store_append(s, r, 10, NULL, 0), TS_OK);
    struct ts_store_stats st;

    assert_int_equal(ts_store_renumber(s, 0), TS_EINVAL);
    assert_int_equal(ts_store_renumber(s, UINT64_MAX), TS_EINVAL);
    assert_int_equal(ts_store_renumber(s, TS_SEQ_MAX + 1), TS_EINVAL);
    assert_int_equal(ts_store_renumber(s, TS_SEQ_MAX - 8), TS_EINVAL); /* 10 need ..MAX+1 */
    ts_store_get_stats(s, &st);
    assert_int_equal(st.next_seq, 11);
    assert_int_equal(st.acked, 0);

    /* the numbers end exactly at TS_SEQ_MAX: allowed */
    assert_int_equal(ts_store_renumber(s, TS_SEQ_MAX - 9), TS_OK);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.next_seq, TS_SEQ_MAX + 1);
    assert_int_equal(st.acked, TS_SEQ_MAX - 10);
    size_t n;
    struct ts_reading *got = fetch_all(s, 0, &n);
    assert_int_equal(n, 10);
    assert_int_equal(got[0].seq, TS_SEQ_MAX - 9);
    assert_int_equal(got[9].seq, TS_SEQ_MAX);
    check_coverage(got, n, TS_SEQ_MAX - 9);
    free(got);
    ts_store_close(s);
    remove_files();

    /* an ordinary renumbering; then, once the store may have published, none */
    s = open_store(0, 0, 0);
    for (int i = 0; i < 10; i++)
        r[i] = make(i % NT, (uint64_t)i, 1, 0);
    assert_int_equal(ts_store_append(s, r, 10, NULL, 0), TS_OK);
    assert_int_equal(ts_store_renumber(s, 5001), TS_OK);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.acked, 5000);
    assert_int_equal(st.next_seq, 5011);
    assert_int_equal(ts_store_renumber(s, 3000), TS_OK);   /* already above: nothing */
    ts_store_get_stats(s, &st);
    assert_int_equal(st.next_seq, 5011);
    assert_int_equal(ts_store_mark_published(s, 5005), TS_OK);
    assert_int_equal(ts_store_renumber(s, 9001), TS_EINVAL);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.next_seq, 5011);
    ts_store_close(s);
}

static void agent_id_mismatch_is_refused(void **state)
{
    struct ts_store *s = open_store(0, 0, 0), *other = NULL;
    struct ts_reading r = make(0, 0, 1, 1);
    struct ts_store_cfg cfg = {0};
    char err[512] = "";

    assert_int_equal(ts_store_append(s, &r, 1, NULL, 0), TS_OK);
    ts_store_close(s);
    snprintf(cfg.path, sizeof cfg.path, "%s", path);
    assert_int_equal(ts_store_open(&cfg, "ctrl-other", &other, err, sizeof err), TS_ECONFIG);
    assert_null(other);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "'" AGENT "'"));
    assert_non_null(strstr(err, "'ctrl-other'"));
    /* and the file is untouched */
    s = open_store(0, 0, 0);
    struct ts_store_stats st;
    ts_store_get_stats(s, &st);
    assert_int_equal(st.rows, 1);
    ts_store_close(s);
}

static void foreign_files_are_refused(void **state)
{
    struct ts_store *s = NULL;
    struct ts_store_cfg cfg = {0};
    char err[512] = "";
    snprintf(cfg.path, sizeof cfg.path, "%s", path);

    /* not SQLite */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int k = 0; k < 200; k++)
        fputs("this is not a database at all\n", f);
    fclose(f);
    assert_int_equal(ts_store_open(&cfg, AGENT, &s, err, sizeof err), TS_ECONFIG);
    assert_null(s);
    assert_non_null(strstr(err, path));
    remove_files();

    /* SQLite, but someone else's */
    sqlite3 *db = raw_open();
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(ts_store_open(&cfg, AGENT, &s, err, sizeof err), TS_ECONFIG);
    assert_non_null(strstr(err, "not a turnstile-agent store"));
    remove_files();

    /* ours, from a newer schema */
    s = open_store(0, 0, 0);
    ts_store_close(s);
    s = NULL;
    db = raw_open();
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 2", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(ts_store_open(&cfg, AGENT, &s, err, sizeof err), TS_ECONFIG);
    assert_non_null(strstr(err, "newer"));

    /* bad arguments */
    assert_int_equal(ts_store_open(&cfg, "bad id", &s, err, sizeof err), TS_EINVAL);
    cfg.path[0] = '\0';
    assert_int_equal(ts_store_open(&cfg, AGENT, &s, err, sizeof err), TS_EINVAL);
}

/* --- disk full ------------------------------------------------------------------- */

/* Fills the page budget: appends cycles until TS_EFULL. Returns the index. */
static uint64_t fill_until_full(struct ts_store *s, uint64_t i, uint64_t in[NT],
                                uint64_t out[NT], unsigned *seed)
{
    uint64_t now = 0;
    assert_int_equal(ts_store_test_max_pages(s, 1, &now), TS_OK);
    assert_true(now > 1); /* never below the current size */
    for (int c = 0; c < 100000; c++) {
        struct ts_reading r[NT];
        for (int t = 0; t < NT; t++, i++) {
            r[t] = make(t, i, 1 + (uint64_t)(rand_r(seed) % 50), 1 + (uint64_t)(rand_r(seed) % 30));
            in[t] += r[t].entries;
            out[t] += r[t].exits;
        }
        int rc = ts_store_append(s, r, NT, &i, sizeof i);
        if (rc == TS_EFULL) {
            for (int t = 0; t < NT; t++)
                assert_int_equal(r[t].seq, 0);
            return i;
        }
        assert_int_equal(rc, TS_OK);
    }
    fail_msg("the page limit never filled");
    return i;
}

static void check_contiguous_in_order(struct ts_store *s, uint64_t total)
{
    size_t n;
    struct ts_reading *all = fetch_all(s, 0, &n);
    assert_int_equal(n, total);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(all[k].seq, k + 1);
        assert_int_equal(all[k].merged_from, k + 1);
        assert_int_equal(all[k].time_ms, 1685174400000LL + (int64_t)k * 1000); /* order */
    }
    free(all);
}

static void disk_full_holds_readings_in_memory_then_retry_writes_them(void **state)
{
    struct ts_store *s = open_store(0, 0, 0);
    struct ts_store_stats st;
    uint64_t in[NT] = {0}, out[NT] = {0}, i = 0, saved;
    unsigned seed = 5;
    char buf[16];
    size_t len;

    i = append_cycles(s, i, 3, in, out, &seed, TS_OK);
    i = fill_until_full(s, i, in, out, &seed);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.last_error, TS_EFULL);
    assert_int_equal(st.pending_memory, NT);
    uint64_t stored = st.rows;
    assert_int_equal(st.next_seq, stored + 1);

    /* the state on disk is the one of the last written cycle (same transaction) */
    sqlite3 *db = raw_open();
    assert_int_equal(raw_int(db, "SELECT count(*) FROM readings"), (int64_t)stored);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT blob FROM state", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_bytes(q, 0), sizeof saved);
    memcpy(&saved, sqlite3_column_blob(q, 0), sizeof saved);
    sqlite3_finalize(q);
    sqlite3_close(db);
    assert_int_equal(saved, stored);
    /* load_state gives the latest, held one */
    assert_int_equal(ts_store_load_state(s, buf, sizeof buf, &len), TS_OK);
    assert_int_equal(len, sizeof i);
    memcpy(&saved, buf, sizeof saved);
    assert_int_equal(saved, i);

    /* more cycles while full: held, in order; retry fails too */
    i = append_cycles(s, i, 5, in, out, &seed, TS_EFULL);
    assert_int_equal(ts_store_retry(s), TS_EFULL);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.pending_memory, 6 * NT);
    assert_int_equal(st.rows, stored);
    size_t n;
    struct ts_reading *all = fetch_all(s, 0, &n); /* only what is stored */
    assert_int_equal(n, stored);
    free(all);

    /* space returns: retry writes them, in order, numbered on */
    assert_int_equal(ts_store_test_max_pages(s, 1u << 30, NULL), TS_OK);
    assert_int_equal(ts_store_retry(s), TS_OK);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.pending_memory, 0);
    assert_int_equal(st.last_error, 0);
    assert_int_equal(st.rows, i);
    check_contiguous_in_order(s, i);
    check_totals(s, 0, in, out);
    assert_int_equal(ts_store_retry(s), TS_OK); /* nothing left */
    ts_store_close(s);

    s = open_store(0, 0, 0);
    assert_int_equal(ts_store_load_state(s, buf, sizeof buf, &len), TS_OK);
    memcpy(&saved, buf, sizeof saved);
    assert_int_equal(saved, i);
    ts_store_close(s);
}

static void disk_full_next_append_writes_held_first(void **state)
{
    struct ts_store *s = open_store(0, 0, 0);
    struct ts_store_stats st;
    uint64_t in[NT] = {0}, out[NT] = {0}, i = 0;
    unsigned seed = 6;

    i = fill_until_full(s, i, in, out, &seed);
    i = append_cycles(s, i, 2, in, out, &seed, TS_EFULL);
    assert_int_equal(ts_store_test_max_pages(s, 1u << 30, NULL), TS_OK);
    i = append_cycles(s, i, 1, in, out, &seed, TS_OK);
    ts_store_get_stats(s, &st);
    assert_int_equal(st.pending_memory, 0);
    check_contiguous_in_order(s, i);
    check_totals(s, 0, in, out);
    ts_store_close(s);
}

static void memory_backlog_is_bounded_and_conserves_totals(void **state)
{
    struct ts_store *s = open_store(0, 0, 0);
    struct ts_store_stats st;
    uint64_t in[NT] = {0}, out[NT] = {0}, i = 0;
    unsigned seed = 7;

    ts_store_test_memory_max(s, 50);
    i = append_cycles(s, i, 2, in, out, &seed, TS_OK);
    i = fill_until_full(s, i, in, out, &seed);
    ts_store_get_stats(s, &st);
    uint64_t stored = st.rows;
    i = append_cycles(s, i, 100, in, out, &seed, TS_EFULL);
    ts_store_get_stats(s, &st);
    assert_true(st.pending_memory <= 50);
    assert_true(st.merges > 0);

    assert_int_equal(ts_store_test_max_pages(s, 1u << 30, NULL), TS_OK);
    assert_int_equal(ts_store_retry(s), TS_OK);
    size_t n;
    struct ts_reading *all = fetch_all(s, 0, &n);
    assert_true(n < i);
    check_coverage(all, n, 1); /* merged in memory: no holes in the numbers */
    check_latest_kept(all, n);
    check_totals(s, 0, in, out);
    int merged = 0;
    for (size_t k = stored; k < n; k++)
        merged += (all[k].flags & TS_FLAG_MERGED) != 0;
    assert_true(merged > 0);
    free(all);
    ts_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(round_trip_keeps_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(seq_persists_across_reopen_and_is_never_reused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(state_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(ack_deletes_up_to_and_is_clamped_to_the_publish_mark,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(retention_by_rows_merges_conserving_totals, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(retention_by_bytes_merges_conserving_totals, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(retention_never_merges_published_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(merged_from_covers_every_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(renumber_moves_past_the_ack_within_seq_max, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(agent_id_mismatch_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(foreign_files_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(disk_full_holds_readings_in_memory_then_retry_writes_them,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(disk_full_next_append_writes_held_first, setup, teardown),
        cmocka_unit_test_setup_teardown(memory_backlog_is_bounded_and_conserves_totals, setup,
                                        teardown),
    };
    ts_log_level = TS_LOG_ERR; /* the store logs every condition; keep the run readable */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
