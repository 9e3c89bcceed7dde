/* SPDX-License-Identifier: Apache-2.0 */
/* The bridge's per-agent sets of sequence numbers: duplicate removal and the
 * end-to-end acknowledgement (bridge/seqset.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "seqset.h"

/* ---- helpers ---- */

static uint64_t rng_state;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t n) /* 0 .. n-1 */
{
    return rnd() % n;
}

static uint64_t add1(struct ts_seqset *s, uint64_t seq)
{
    uint64_t added = 99;
    assert_int_equal(ts_seqset_add(s, seq, seq, &added), TS_OK);
    return added;
}

/* The set's text form, for comparing whole states. */
static char *text_of(const struct ts_seqset *s)
{
    size_t size = ts_seqset_encode_size(s);
    char *buf = malloc(size);
    assert_non_null(buf);
    assert_true(ts_seqset_encode(s, buf, size) >= 0);
    return buf;
}

static void assert_text(const struct ts_seqset *s, const char *want)
{
    char *got = text_of(s);
    assert_string_equal(got, want);
    free(got);
}

/* The invariants: ranges ascend, lo <= hi, none touches contiguous or its
 * neighbour. */
static void assert_well_formed(const struct ts_seqset *s)
{
    uint64_t prev = ts_seqset_contiguous(s);
    for (size_t i = 0; i < ts_seqset_ranges(s); i++) {
        struct ts_seqrange r = ts_seqset_range(s, i);
        assert_true(r.lo <= r.hi);
        assert_true(r.lo > prev && r.lo - prev >= 2);
        prev = r.hi;
    }
}

/* ---- the cases ---- */

static void in_order_advances_contiguous_without_ranges(void **state)
{
    struct ts_seqset s;
    ts_seqset_init(&s, 0);
    assert_int_equal(ts_seqset_contiguous(&s), 0);
    assert_false(ts_seqset_contains(&s, 1));
    for (uint64_t seq = 1; seq <= 10000; seq++) {
        assert_false(ts_seqset_contains(&s, seq));
        assert_int_equal(add1(&s, seq), 1);
        assert_int_equal(ts_seqset_contiguous(&s), seq);
        assert_int_equal(ts_seqset_ranges(&s), 0);
        assert_true(ts_seqset_contains(&s, seq));
        assert_false(ts_seqset_contains(&s, seq + 1));
    }
    /* peeking at a private field: the in-order path never allocated */
    assert_null(s.buf);
    ts_seqset_free(&s);
}

static void duplicates_count_once(void **state)
{
    struct ts_seqsets t;
    bool dup = true;
    ts_seqsets_init(&t, 0);
    for (uint64_t seq = 1; seq <= 10; seq++) {
        assert_int_equal(ts_seqset_accept(&t, "a1", seq, seq, &dup), TS_OK);
        assert_false(dup);
    }
    /* re-sends below contiguous */
    for (uint64_t seq = 1; seq <= 10; seq++) {
        assert_int_equal(ts_seqset_accept(&t, "a1", seq, seq, &dup), TS_OK);
        assert_true(dup);
    }
    /* re-sends above contiguous (inside a range) */
    assert_int_equal(ts_seqset_accept(&t, "a1", 15, 15, &dup), TS_OK);
    assert_false(dup);
    assert_int_equal(ts_seqset_accept(&t, "a1", 15, 15, &dup), TS_OK);
    assert_true(dup);
    struct ts_seqset *s = ts_seqsets_find(&t, "a1");
    assert_non_null(s);
    assert_int_equal(ts_seqset_contiguous(s), 10);
    assert_int_equal(ts_seqset_ranges(s), 1);
    /* add reports nothing new for numbers seen */
    uint64_t added = 99;
    assert_int_equal(ts_seqset_add(s, 3, 7, &added), TS_OK);
    assert_int_equal(added, 0);
    assert_int_equal(ts_seqset_add(s, 15, 15, &added), TS_OK);
    assert_int_equal(added, 0);
    assert_text(s, "10;15");
    ts_seqsets_free(&t);
}

static void out_of_order_gaps_fill_later(void **state)
{
    struct ts_seqset s;
    ts_seqset_init(&s, 0);
    assert_int_equal(add1(&s, 1), 1);
    assert_int_equal(add1(&s, 3), 1);
    assert_int_equal(add1(&s, 5), 1);
    assert_int_equal(add1(&s, 7), 1);
    assert_int_equal(ts_seqset_contiguous(&s), 1);
    assert_int_equal(ts_seqset_ranges(&s), 3);
    assert_text(&s, "1;3,5,7");
    assert_false(ts_seqset_contains(&s, 2));
    assert_true(ts_seqset_contains(&s, 3));
    assert_false(ts_seqset_contains(&s, 8));

    assert_int_equal(add1(&s, 2), 1); /* fills the lowest gap: joins 3 */
    assert_int_equal(ts_seqset_contiguous(&s), 3);
    assert_text(&s, "3;5,7");
    assert_int_equal(add1(&s, 6), 1); /* joins two ranges */
    assert_text(&s, "3;5-7");
    assert_int_equal(add1(&s, 4), 1);
    assert_int_equal(ts_seqset_contiguous(&s), 7);
    assert_int_equal(ts_seqset_ranges(&s), 0);

    /* backwards: one range growing down until 8 arrives */
    for (uint64_t seq = 100; seq > 8; seq--) {
        assert_int_equal(add1(&s, seq), 1);
        assert_int_equal(ts_seqset_contiguous(&s), 7);
        assert_int_equal(ts_seqset_ranges(&s), 1);
    }
    assert_int_equal(add1(&s, 8), 1);
    assert_int_equal(ts_seqset_contiguous(&s), 100);
    assert_int_equal(ts_seqset_ranges(&s), 0);

    /* a range that overlaps several, partly seen */
    uint64_t added;
    assert_int_equal(add1(&s, 110), 1);
    assert_int_equal(ts_seqset_add(&s, 120, 125, &added), TS_OK);
    assert_int_equal(ts_seqset_add(&s, 130, 130, &added), TS_OK);
    assert_text(&s, "100;110,120-125,130");
    assert_int_equal(ts_seqset_add(&s, 105, 128, &added), TS_OK);
    assert_int_equal(added, 24 - 1 - 6);
    assert_text(&s, "100;105-128,130");
    assert_int_equal(ts_seqset_add(&s, 90, 140, &added), TS_OK);
    assert_int_equal(added, 140 - 100 - 24 - 1);
    assert_text(&s, "140");
    ts_seqset_free(&s);
}

static void merged_ranges_cover_their_numbers(void **state)
{
    struct ts_seqsets t;
    struct ts_seqset *s;
    bool dup;
    ts_seqsets_init(&t, 0);

    /* readings 5 (merged_from 3), 1, 2, 6, then 4 */
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 3, 5, &dup), TS_OK);
    assert_false(dup);
    s = ts_seqsets_find(&t, "gate.7");
    assert_non_null(s);
    assert_int_equal(ts_seqset_contiguous(s), 0);
    assert_text(s, "0;3-5");
    assert_true(ts_seqset_contains(s, 3));
    assert_true(ts_seqset_contains(s, 4));
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 1, 1, &dup), TS_OK);
    assert_false(dup);
    assert_int_equal(ts_seqset_contiguous(s), 1);
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 2, 2, &dup), TS_OK);
    assert_false(dup);
    assert_int_equal(ts_seqset_contiguous(s), 5); /* 2 joins 3..5 */
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 6, 6, &dup), TS_OK);
    assert_false(dup);
    assert_int_equal(ts_seqset_contiguous(s), 6);
    /* 4 was merged into 5: it can never be published on its own; if it
     * arrives anyway it is a duplicate (its people are in reading 5) */
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 4, 4, &dup), TS_OK);
    assert_true(dup);
    assert_int_equal(ts_seqset_contiguous(s), 6);

    /* a merged reading that fills several gaps at once */
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 9, 9, &dup), TS_OK);
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 12, 12, &dup), TS_OK);
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 20, 20, &dup), TS_OK);
    assert_text(s, "6;9,12,20");
    uint64_t added;
    assert_int_equal(ts_seqset_add(s, 7, 15, &added), TS_OK);
    assert_int_equal(added, 9 - 2);
    assert_text(s, "15;20");

    /* a merged reading whose seq was seen is a duplicate, whole */
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 16, 20, &dup), TS_OK);
    assert_true(dup);
    assert_text(s, "15;20");

    /* a merged range can only cover numbers never seen (the agent merges
     * only what it never published): a new seq whose range overlaps seen
     * numbers is refused, whole, and changes nothing */
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 15, 17, &dup), TS_ECONFLICT); /* 15 <= ack */
    assert_false(dup);
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 18, 22, &dup), TS_ECONFLICT); /* 20 seen */
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 1, 30, &dup), TS_ECONFLICT);
    assert_text(s, "15;20");
    assert_true(ts_seqset_contains_any(s, 18, 22));
    assert_true(ts_seqset_contains_any(s, 20, 20));
    assert_true(ts_seqset_contains_any(s, 0, 1));
    assert_false(ts_seqset_contains_any(s, 16, 19));
    assert_false(ts_seqset_contains_any(s, 21, UINT64_MAX));
    assert_false(ts_seqset_contains_any(s, 19, 18));
    assert_false(ts_seqset_contains_any(s, 0, 0));
    /* touching seen numbers is not overlapping them */
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 16, 19, &dup), TS_OK);
    assert_false(dup);
    assert_text(s, "20");
    assert_int_equal(ts_seqset_accept(&t, "gate.7", 21, 25, &dup), TS_OK);
    assert_text(s, "25");

    /* bad numbers create nothing */
    assert_int_equal(ts_seqset_accept(&t, "new", 1, 0, &dup), TS_EINVAL);
    assert_int_equal(ts_seqset_accept(&t, "new", 0, 3, &dup), TS_EINVAL);
    assert_int_equal(ts_seqset_accept(&t, "new", 4, 3, &dup), TS_EINVAL);
    assert_int_equal(ts_seqset_accept(&t, "bad id", 1, 1, &dup), TS_EINVAL);
    assert_false(dup);
    assert_null(ts_seqsets_find(&t, "new"));
    assert_int_equal(ts_seqsets_count(&t), 1);
    ts_seqsets_free(&t);
}

static void floor_above_1_counts_as_seen(void **state)
{
    struct ts_seqset s;
    ts_seqset_init(&s, 1000);
    assert_int_equal(ts_seqset_contiguous(&s), 1000);
    assert_true(ts_seqset_contains(&s, 1));
    assert_true(ts_seqset_contains(&s, 1000));
    assert_false(ts_seqset_contains(&s, 1001));
    assert_int_equal(add1(&s, 500), 0);
    assert_int_equal(add1(&s, 1002), 1);
    assert_text(&s, "1000;1002");
    assert_int_equal(add1(&s, 1001), 1);
    assert_int_equal(ts_seqset_contiguous(&s), 1002);
    ts_seqset_free(&s);

    /* in a table: the agent is set up with add(1, floor) */
    struct ts_seqsets t;
    struct ts_seqset *set;
    bool dup;
    ts_seqsets_init(&t, 0);
    assert_int_equal(ts_seqsets_get(&t, "b2", &set), TS_OK);
    uint64_t added;
    assert_int_equal(ts_seqset_add(set, 1, 1000, &added), TS_OK);
    assert_int_equal(added, 1000);
    assert_int_equal(ts_seqset_accept(&t, "b2", 1001, 1001, &dup), TS_OK);
    assert_false(dup);
    assert_int_equal(ts_seqset_contiguous(set), 1001);
    assert_int_equal(ts_seqset_accept(&t, "b2", 999, 999, &dup), TS_OK);
    assert_true(dup);
    /* raising the floor again is harmless */
    assert_int_equal(ts_seqset_add(set, 1, 1000, &added), TS_OK);
    assert_int_equal(added, 0);
    assert_int_equal(ts_seqset_contiguous(set), 1001);
    ts_seqsets_free(&t);
}

static void extreme_numbers_do_not_overflow(void **state)
{
    struct ts_seqset s;
    uint64_t added;
    ts_seqset_init(&s, 0);
    assert_int_equal(ts_seqset_add(&s, 0, 5, &added), TS_EINVAL);
    assert_int_equal(ts_seqset_add(&s, 6, 5, &added), TS_EINVAL);
    assert_int_equal(ts_seqset_add(&s, UINT64_MAX, UINT64_MAX, &added), TS_OK);
    assert_int_equal(added, 1);
    assert_true(ts_seqset_contains(&s, UINT64_MAX));
    assert_false(ts_seqset_contains(&s, UINT64_MAX - 1));
    assert_int_equal(ts_seqset_add(&s, UINT64_MAX - 3, UINT64_MAX, &added), TS_OK);
    assert_int_equal(added, 3);
    assert_text(&s, "0;18446744073709551612-18446744073709551615");
    assert_int_equal(ts_seqset_add(&s, 1, UINT64_MAX, &added), TS_OK);
    assert_int_equal(added, UINT64_MAX - 4);
    assert_int_equal(ts_seqset_contiguous(&s), UINT64_MAX);
    assert_int_equal(ts_seqset_ranges(&s), 0);
    assert_int_equal(ts_seqset_add(&s, UINT64_MAX, UINT64_MAX, &added), TS_OK);
    assert_int_equal(added, 0);
    ts_seqset_free(&s);

    ts_seqset_init(&s, 0);
    assert_int_equal(ts_seqset_add(&s, 1, UINT64_MAX, &added), TS_OK);
    assert_int_equal(added, UINT64_MAX);
    ts_seqset_free(&s);
}

/* ---- randomized, against a bitmap ---- */

#define DOMAIN 6000

struct model {
    unsigned char seen[DOMAIN + 2];
    uint64_t contiguous;
};

static uint64_t model_add(struct model *m, uint64_t lo, uint64_t hi)
{
    uint64_t added = 0;
    for (uint64_t x = lo; x <= hi; x++)
        if (!m->seen[x]) {
            m->seen[x] = 1;
            added++;
        }
    while (m->seen[m->contiguous + 1])
        m->contiguous++;
    return added;
}

static void check_against(const struct ts_seqset *s, const struct model *m, uint64_t lo,
                          uint64_t hi, unsigned long long seed, size_t step, bool full)
{
    uint64_t probes[16] = {lo, hi, lo - 1, hi + 1, m->contiguous, m->contiguous + 1};
    for (size_t k = 6; k < 16; k++)
        probes[k] = 1 + below(DOMAIN);
    if (ts_seqset_contiguous(s) != m->contiguous)
        fail_msg("seed %llu step %zu: contiguous %llu, model %llu", seed, step,
                 (unsigned long long)ts_seqset_contiguous(s), (unsigned long long)m->contiguous);
    for (size_t k = 0; k < 16; k++) {
        uint64_t x = probes[k];
        if (x >= 1 && x <= DOMAIN && ts_seqset_contains(s, x) != (bool)m->seen[x])
            fail_msg("seed %llu step %zu: contains(%llu) disagrees", seed, step,
                     (unsigned long long)x);
    }
    if (!full)
        return;
    assert_well_formed(s);
    for (uint64_t x = 1; x <= DOMAIN; x++)
        if (ts_seqset_contains(s, x) != (bool)m->seen[x])
            fail_msg("seed %llu step %zu: contains(%llu) disagrees", seed, step,
                     (unsigned long long)x);
}

struct op {
    uint64_t lo, hi;
};

/* An agent's stream: readings covering floor+1..DOMAIN, some merged, plus
 * re-sends, shuffled fully or locally. hostile: some of the re-sends are
 * replaced by numbers inside merged ranges (which a genuine agent never
 * publishes) and by merged ranges over published numbers. */
static size_t agent_stream(struct op *ops, size_t max, uint64_t floor, bool local, bool hostile)
{
    size_t n = 0;
    for (uint64_t seq = floor + 1; seq <= DOMAIN && n < max; seq++) {
        uint64_t mf = seq;
        if (below(10) == 0) {
            uint64_t len = below(8);
            if (seq + len <= DOMAIN)
                seq += len;
        }
        ops[n++] = (struct op){mf, seq};
    }
    size_t readings = n;
    while (n < max && n < readings + readings / 4) {
        struct op o = ops[below(readings)];
        if (hostile && o.lo < o.hi && below(2)) { /* a number inside a merged range */
            uint64_t x = o.lo + below(o.hi - o.lo);
            o.lo = o.hi = x;
        } else if (hostile && o.lo == o.hi && o.lo > 1 && below(4) == 0) {
            o.lo -= 1 + below(o.lo - 1 < 5 ? o.lo - 1 : 5); /* a range over published numbers */
        }
        ops[n++] = o;
    }
    if (local) {
        for (size_t i = 0; i + 1 < n; i++) { /* displace each by up to 64 places */
            size_t j = i + (size_t)below(n - i < 64 ? n - i : 64);
            struct op tmp = ops[i];
            ops[i] = ops[j];
            ops[j] = tmp;
        }
    } else {
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)below(i + 1);
            struct op tmp = ops[i];
            ops[i] = ops[j];
            ops[j] = tmp;
        }
    }
    return n;
}

static size_t random_intervals(struct op *ops, size_t max)
{
    for (size_t i = 0; i < max; i++) {
        uint64_t lo = 1 + below(DOMAIN);
        uint64_t w = below(4) ? below(3) : below(40);
        uint64_t hi = lo + w > DOMAIN ? DOMAIN : lo + w;
        ops[i] = (struct op){lo, hi};
    }
    return max;
}

static void randomized_against_a_bitmap(void **state)
{
    enum { ROUNDS = 18, OPS = 9000 };
    struct op *ops = malloc(OPS * sizeof *ops);
    struct model *m = malloc(sizeof *m);
    size_t total = 0;
    assert_non_null(ops);
    assert_non_null(m);

    for (unsigned long long round = 0; round < ROUNDS; round++) {
        unsigned long long seed = 0x5e95e7ULL + round;
        rng_state = seed;
        uint64_t floor = round % 2 ? 1 + below(50) : 0;
        int kind = (int)(round % 3); /* 0 agent full shuffle, 1 agent local, 2 intervals */
        bool hostile = (round / 3) % 2 == 1;
        size_t n = kind == 2 ? random_intervals(ops, OPS)
                             : agent_stream(ops, OPS, floor, kind, hostile);
        size_t conflicts = 0;

        struct ts_seqset s;
        struct ts_seqsets t;
        struct ts_seqset *ts;
        memset(m, 0, sizeof *m);
        m->contiguous = floor;
        for (uint64_t x = 1; x <= floor; x++)
            m->seen[x] = 1;
        ts_seqset_init(&s, floor);
        assert_int_equal(ts_seqset_set_max_ranges(&s, DOMAIN), TS_OK);
        ts_seqsets_init(&t, DOMAIN);
        assert_int_equal(ts_seqsets_get(&t, "rnd", &ts), TS_OK);
        if (floor)
            assert_int_equal(ts_seqset_add(ts, 1, floor, NULL), TS_OK);

        for (size_t i = 0; i < n; i++, total++) {
            uint64_t lo = ops[i].lo, hi = ops[i].hi, added = 99;
            if (kind == 2) {
                uint64_t want = model_add(m, lo, hi);
                assert_int_equal(ts_seqset_add(&s, lo, hi, &added), TS_OK);
                if (added != want)
                    fail_msg("seed %llu step %zu: add(%llu, %llu) added %llu, model %llu", seed,
                             i, (unsigned long long)lo, (unsigned long long)hi,
                             (unsigned long long)added, (unsigned long long)want);
            } else {
                /* the bridge's rule, by hand on s and through accept on t:
                 * seq seen: a duplicate; else a number of lo..hi-1 seen: refused */
                bool want_dup = m->seen[hi], dup = !want_dup, want_any = false;
                for (uint64_t x = lo; x < hi; x++)
                    want_any |= m->seen[x];
                bool want_conflict = !want_dup && want_any;
                int rc = ts_seqset_accept(&t, "rnd", lo, hi, &dup);
                if (rc != (want_conflict ? TS_ECONFLICT : TS_OK) || dup != want_dup ||
                    ts_seqset_contains(&s, hi) != want_dup ||
                    ts_seqset_contains_any(&s, lo, hi - 1) != want_any)
                    fail_msg("seed %llu step %zu: accept(%llu, %llu) = %d dup %d, model dup %d "
                             "conflict %d", seed, i, (unsigned long long)lo,
                             (unsigned long long)hi, rc, dup, want_dup, want_conflict);
                conflicts += want_conflict;
                if (!want_dup && !want_conflict) {
                    uint64_t want = model_add(m, lo, hi);
                    assert_int_equal(ts_seqset_add(&s, lo, hi, &added), TS_OK);
                    if (added != want)
                        fail_msg("seed %llu step %zu: add(%llu, %llu) added %llu, model %llu",
                                 seed, i, (unsigned long long)lo, (unsigned long long)hi,
                                 (unsigned long long)added, (unsigned long long)want);
                }
                assert_int_equal(ts_seqset_contiguous(ts), m->contiguous);
            }
            check_against(&s, m, lo, hi, seed, i, i % 64 == 0 || i + 1 == n);
        }
        if (kind != 2 && !hostile) { /* every number arrived: the acknowledgement covers all */
            assert_int_equal(conflicts, 0);
            assert_int_equal(ts_seqset_contiguous(&s), DOMAIN);
            assert_int_equal(ts_seqset_ranges(&s), 0);
        }
        if (hostile && kind == 0 && conflicts == 0) /* (locally shuffled, re-sends come last) */
            fail_msg("seed %llu: a hostile stream met no merged range over seen numbers", seed);
        char *a = text_of(&s), *b = text_of(ts);
        if (kind != 2)
            assert_string_equal(a, b);
        /* the text form round-trips whatever the random state */
        struct ts_seqset back;
        ts_seqset_init(&back, 0);
        assert_int_equal(ts_seqset_set_max_ranges(&back, DOMAIN), TS_OK);
        assert_int_equal(ts_seqset_decode(&back, a, strlen(a)), TS_OK);
        check_against(&back, m, 1, 1, seed, n, true);
        free(a);
        free(b);
        ts_seqset_free(&back);
        ts_seqset_free(&s);
        ts_seqsets_free(&t);
    }
    assert_true(total >= 100000);
    free(ops);
    free(m);
}

/* ---- the memory bound ---- */

static void memory_bound_refuses_new_ranges_only(void **state)
{
    struct ts_seqset s;
    uint64_t added;
    ts_seqset_init(&s, 0);
    assert_int_equal(ts_seqset_set_max_ranges(&s, 4), TS_OK);
    assert_int_equal(add1(&s, 3), 1);
    assert_int_equal(add1(&s, 5), 1);
    assert_int_equal(add1(&s, 7), 1);
    assert_int_equal(add1(&s, 9), 1);
    assert_int_equal(ts_seqset_set_max_ranges(&s, 3), TS_EINVAL);
    assert_int_equal(ts_seqset_set_max_ranges(&s, 0), TS_EINVAL);
    /* a fifth range: refused, nothing changed */
    added = 99;
    assert_int_equal(ts_seqset_add(&s, 11, 11, &added), TS_EFULL);
    assert_int_equal(added, 0);
    assert_false(ts_seqset_contains(&s, 11));
    assert_text(&s, "0;3,5,7,9");
    assert_int_equal(ts_seqset_add(&s, 20, 30, &added), TS_EFULL);
    assert_text(&s, "0;3,5,7,9");
    /* extending or joining ranges and advancing contiguous still work */
    assert_int_equal(add1(&s, 10), 1);
    assert_text(&s, "0;3,5,7,9-10");
    assert_int_equal(ts_seqset_add(&s, 6, 6, &added), TS_OK);
    assert_text(&s, "0;3,5-7,9-10");
    assert_int_equal(add1(&s, 8), 1);
    assert_text(&s, "0;3,5-10");
    assert_int_equal(add1(&s, 1), 1);
    assert_text(&s, "1;3,5-10");
    assert_int_equal(add1(&s, 12), 1); /* room again */
    assert_int_equal(add1(&s, 14), 1);
    assert_int_equal(ts_seqset_add(&s, 16, 16, &added), TS_EFULL);
    assert_text(&s, "1;3,5-10,12,14");
    ts_seqset_free(&s);

    /* through accept: the reading is not recorded, and is accepted on retry */
    struct ts_seqsets t;
    struct ts_seqset *set;
    bool dup = true;
    ts_seqsets_init(&t, 2);
    assert_int_equal(ts_seqset_accept(&t, "c3", 2, 2, &dup), TS_OK);
    assert_int_equal(ts_seqset_accept(&t, "c3", 4, 4, &dup), TS_OK);
    assert_int_equal(ts_seqset_accept(&t, "c3", 6, 6, &dup), TS_EFULL);
    assert_false(dup);
    set = ts_seqsets_find(&t, "c3");
    assert_false(ts_seqset_contains(set, 6));
    assert_int_equal(ts_seqset_accept(&t, "c3", 1, 1, &dup), TS_OK);
    assert_int_equal(ts_seqset_accept(&t, "c3", 6, 6, &dup), TS_OK); /* the retry */
    assert_false(dup);
    assert_text(set, "2;4,6");
    ts_seqsets_free(&t);

    /* the default bound */
    ts_seqset_init(&s, 0);
    for (uint64_t k = 1; k <= TS_SEQSET_MAX_RANGES; k++)
        assert_int_equal(add1(&s, 2 * k), 1);
    assert_int_equal(ts_seqset_ranges(&s), TS_SEQSET_MAX_RANGES);
    assert_int_equal(ts_seqset_add(&s, 2 * TS_SEQSET_MAX_RANGES + 2,
                                   2 * TS_SEQSET_MAX_RANGES + 2, &added), TS_EFULL);
    assert_int_equal(ts_seqset_add(&s, 2 * TS_SEQSET_MAX_RANGES + 1,
                                   2 * TS_SEQSET_MAX_RANGES + 1, &added), TS_OK);
    assert_int_equal(add1(&s, 1), 1); /* joins 2: one range fewer */
    assert_int_equal(ts_seqset_contiguous(&s), 2);
    assert_int_equal(ts_seqset_ranges(&s), TS_SEQSET_MAX_RANGES - 1);
    /* filling every gap from below drains the ranges one by one */
    for (uint64_t k = 2; k <= TS_SEQSET_MAX_RANGES; k++) {
        assert_int_equal(add1(&s, 2 * k - 1), 1);
        assert_int_equal(ts_seqset_contiguous(&s), 2 * k + (k == TS_SEQSET_MAX_RANGES));
    }
    assert_int_equal(ts_seqset_contiguous(&s), 2 * TS_SEQSET_MAX_RANGES + 1);
    assert_int_equal(ts_seqset_ranges(&s), 0);
    ts_seqset_free(&s);
}

/* ---- the text form ---- */

static void encode_decode_round_trip(void **state)
{
    const char *good[] = {
        "0", "7", "1200", "1200;1205-1290,1300", "0;2", "0;2-3,5,7-100000",
        "18446744073709551615", "0;18446744073709551615",
        "0;2-18446744073709551615", "5;18446744073709551613,18446744073709551615",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct ts_seqset s;
        ts_seqset_init(&s, 0);
        if (ts_seqset_decode(&s, good[i], strlen(good[i])) != TS_OK)
            fail_msg("decode refused \"%s\"", good[i]);
        assert_well_formed(&s);
        assert_text(&s, good[i]);
        /* and what decoded still works */
        uint64_t c = ts_seqset_contiguous(&s);
        if (c < UINT64_MAX && !ts_seqset_contains(&s, c + 1))
            assert_int_equal(add1(&s, c + 1), 1);
        assert_well_formed(&s);
        ts_seqset_free(&s);
    }

    struct ts_seqset s;
    ts_seqset_init(&s, 0);
    add1(&s, 1);
    add1(&s, 3);
    assert_int_equal(ts_seqset_add(&s, 10, 19, NULL), TS_OK);
    char buf[64];
    assert_int_equal(ts_seqset_encode(&s, buf, sizeof buf), 9);
    assert_string_equal(buf, "1;3,10-19");
    assert_int_equal(ts_seqset_encode(&s, buf, 9), -TS_EFULL);
    assert_string_equal(buf, "");
    assert_int_equal(ts_seqset_encode(&s, buf, 10), 9);
    assert_true(ts_seqset_encode_size(&s) >= 10);
    ts_seqset_free(&s);
}

static void decode_rejects_malformed(void **state)
{
    const char *bad[] = {
        "", ";", "12;", "12;;14", "12;13", "12;12", "12;5", "12;14-14", "12;20-15",
        "12;14-20,21", "12;14-20,18-25", "12;30,20", "12;14-20,20", "012", "00", "-1", "+1",
        " 12", "12 ", "12;14-", "12;-14", "12;14,", "12,14", "12;14--20", "12;a", "12\n",
        "12;14-20 ", "18446744073709551616", "0;2-18446744073709551616",
        "99999999999999999999", "12;014", "12;14-020", "0x10", "12;14\t",
        "18446744073709551615;1", "18446744073709551614;18446744073709551615",
    };
    struct ts_seqset s;
    ts_seqset_init(&s, 0);
    assert_int_equal(ts_seqset_decode(&s, "5;7-9", 5), TS_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ts_seqset_decode(&s, bad[i], strlen(bad[i])) != TS_EPARSE)
            fail_msg("decode accepted \"%s\"", bad[i]);
        assert_text(&s, "5;7-9"); /* unchanged */
    }
    /* a NUL inside the given length */
    assert_int_equal(ts_seqset_decode(&s, "12\0;14", 6), TS_EPARSE);
    /* the length bounds the text: "12;14" read as "12" */
    assert_int_equal(ts_seqset_decode(&s, "12;14", 2), TS_OK);
    assert_text(&s, "12");
    /* more ranges than the set may hold */
    assert_int_equal(ts_seqset_set_max_ranges(&s, 2), TS_OK);
    assert_int_equal(ts_seqset_decode(&s, "1;3,5,7", 7), TS_EFULL);
    assert_text(&s, "12");
    assert_int_equal(ts_seqset_decode(&s, "1;3,5", 5), TS_OK);
    assert_int_equal(ts_seqset_add(&s, 7, 7, NULL), TS_EFULL); /* the bound is kept */
    ts_seqset_free(&s);
}

/* ---- the table ---- */

static void table_of_1000_agents(void **state)
{
    enum { AGENTS = 1000 };
    struct ts_seqsets t;
    struct ts_seqset *first, *set;
    char id[32];
    bool dup;
    ts_seqsets_init(&t, 0);

    assert_int_equal(ts_seqsets_get(&t, "agent-0000", &first), TS_OK);
    for (int k = 0; k < AGENTS; k++) {
        snprintf(id, sizeof id, "agent-%04d", k);
        uint64_t last = (uint64_t)(k % 50) + 1;
        for (uint64_t seq = 1; seq <= last; seq++) {
            assert_int_equal(ts_seqset_accept(&t, id, seq, seq, &dup), TS_OK);
            assert_false(dup);
        }
        if (k % 2) /* a gap outstanding */
            assert_int_equal(ts_seqset_accept(&t, id, last + 2, last + 3, &dup), TS_OK);
        assert_int_equal(ts_seqset_accept(&t, id, 1, 1, &dup), TS_OK);
        assert_true(dup);
    }
    assert_int_equal(ts_seqsets_count(&t), AGENTS);
    /* the address of a set survives the table's growth */
    assert_ptr_equal(ts_seqsets_find(&t, "agent-0000"), first);
    assert_int_equal(ts_seqsets_get(&t, "agent-0000", &set), TS_OK);
    assert_ptr_equal(set, first);
    assert_int_equal(ts_seqsets_count(&t), AGENTS);

    for (int k = 0; k < AGENTS; k++) {
        snprintf(id, sizeof id, "agent-%04d", k);
        set = ts_seqsets_find(&t, id);
        assert_non_null(set);
        assert_int_equal(ts_seqset_contiguous(set), (uint64_t)(k % 50) + 1);
        assert_int_equal(ts_seqset_ranges(set), (size_t)(k % 2));
    }
    assert_null(ts_seqsets_find(&t, "agent-1000"));
    assert_null(ts_seqsets_find(&t, "agent-000"));

    /* iteration visits every agent once */
    unsigned char *visited = calloc(AGENTS, 1);
    size_t cursor = 0, n = 0;
    const char *agent;
    assert_non_null(visited);
    while (ts_seqsets_next(&t, &cursor, &agent, &set)) {
        int k = atoi(agent + 6);
        assert_true(k >= 0 && k < AGENTS);
        assert_false(visited[k]);
        visited[k] = 1;
        assert_ptr_equal(ts_seqsets_find(&t, agent), set);
        n++;
    }
    assert_int_equal(n, AGENTS);
    assert_false(ts_seqsets_next(&t, &cursor, &agent, &set));
    free(visited);

    /* the manifest: sorted lines, round trip */
    char *text, *again;
    size_t len, len2, line = 99;
    assert_int_equal(ts_seqsets_encode(&t, &text, &len), TS_OK);
    assert_int_equal(strlen(text), len);
    assert_memory_equal(text, "agent-0000\t1\nagent-0001\t2;4-5\nagent-0002\t3\n", 43);
    struct ts_seqsets back;
    ts_seqsets_init(&back, 0);
    assert_int_equal(ts_seqsets_decode(&back, text, len, &line), TS_OK);
    assert_int_equal(line, 0);
    assert_int_equal(ts_seqsets_count(&back), AGENTS);
    assert_int_equal(ts_seqsets_encode(&back, &again, &len2), TS_OK);
    assert_int_equal(len2, len);
    assert_string_equal(again, text);
    set = ts_seqsets_find(&back, "agent-0999");
    assert_non_null(set);
    assert_true(ts_seqset_contains(set, 52));
    assert_false(ts_seqset_contains(set, 51));
    free(again);
    free(text);
    ts_seqsets_free(&back);

    /* bad ids */
    assert_int_equal(ts_seqsets_get(&t, "", &set), TS_EINVAL);
    assert_null(set);
    assert_int_equal(ts_seqsets_get(&t, "a b", &set), TS_EINVAL);
    assert_int_equal(ts_seqsets_get(&t, "a\tb", &set), TS_EINVAL);
    assert_int_equal(ts_seqsets_get(&t, "a:b", &set), TS_EINVAL);
    char longid[80];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(ts_seqsets_get(&t, longid, &set), TS_EINVAL);
    longid[63] = '\0'; /* 63 characters: the longest id */
    assert_int_equal(ts_seqsets_get(&t, longid, &set), TS_OK);
    assert_int_equal(ts_seqsets_count(&t), AGENTS + 1);
    ts_seqsets_free(&t);
    ts_seqsets_free(&t); /* free leaves an empty table */
    assert_int_equal(ts_seqsets_count(&t), 0);
}

static void table_decode_is_strict(void **state)
{
    struct {
        const char *text;
        size_t line;
        int err;
    } bad[] = {
        {"a\t1", 1, TS_EPARSE},                  /* no final newline */
        {"a\t1\nb\t2", 2, TS_EPARSE},
        {"a\t1\n\n", 2, TS_EPARSE},              /* empty line */
        {"a 1\n", 1, TS_EPARSE},                 /* no tab */
        {"\t1\n", 1, TS_EPARSE},                 /* no id */
        {"a b\t1\n", 1, TS_EPARSE},              /* bad id */
        {"a\t1\na\t2\n", 2, TS_EPARSE},          /* the same agent twice */
        {"a\t1\nb\t1;1\n", 2, TS_EPARSE},        /* bad set */
        {"a\t1\nb\t\n", 2, TS_EPARSE},
        {"a\t1\t\n", 1, TS_EPARSE},
        {"a\t1\r\n", 1, TS_EPARSE},
        {"a\t0;2,4,6\n", 1, TS_EFULL},           /* beyond the table's bound (2) */
    };
    struct ts_seqsets t;
    size_t line;
    ts_seqsets_init(&t, 2);
    const char *good = "x.1\t5;7\ny_2\t0\n";
    assert_int_equal(ts_seqsets_decode(&t, good, strlen(good), &line), TS_OK);
    assert_int_equal(ts_seqsets_count(&t), 2);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        line = 0;
        if (ts_seqsets_decode(&t, bad[i].text, strlen(bad[i].text), &line) != bad[i].err)
            fail_msg("table decode of case %zu: wrong result", i);
        assert_int_equal(line, bad[i].line);
        /* unchanged */
        char *text;
        assert_int_equal(ts_seqsets_encode(&t, &text, NULL), TS_OK);
        assert_string_equal(text, good);
        free(text);
    }
    /* a NUL inside an id */
    assert_int_equal(ts_seqsets_decode(&t, "ab\0c\t1\n", 7, &line), TS_EPARSE);
    /* empty text: an empty table */
    assert_int_equal(ts_seqsets_decode(&t, "", 0, NULL), TS_OK);
    assert_int_equal(ts_seqsets_count(&t), 0);
    char *text;
    size_t len = 9;
    assert_int_equal(ts_seqsets_encode(&t, &text, &len), TS_OK);
    assert_string_equal(text, "");
    assert_int_equal(len, 0);
    free(text);
    ts_seqsets_free(&t);
}

/* Taking agents out of the table (ts_seqsets_take): every other agent stays
 * findable whatever the probe chains, against a model of which are in. */
static void take_keeps_the_table_whole(void **state)
{
    enum { IDS = 3000 };
    static bool in[IDS];
    struct ts_seqsets t;
    char id[32];
    ts_seqsets_init(&t, 0);
    rng_state = 7;
    memset(in, 0, sizeof in);
    for (int round = 0; round < 60000; round++) {
        int k = (int)below(IDS);
        snprintf(id, sizeof id, "a%d", k);
        if (below(3) == 0) {
            struct ts_seqset got;
            bool was = ts_seqsets_take(&t, id, &got);
            assert_int_equal(was, in[k]);
            if (was) {
                assert_int_equal(ts_seqset_contiguous(&got), (uint64_t)k + 1);
                ts_seqset_free(&got);
            }
            in[k] = false;
        } else if (!in[k]) {
            struct ts_seqset *set;
            assert_int_equal(ts_seqsets_get(&t, id, &set), TS_OK);
            assert_int_equal(ts_seqset_add(set, 1, (uint64_t)k + 1, NULL), TS_OK);
            in[k] = true;
        }
        if (round % 997 == 0) {
            size_t n = 0;
            for (int j = 0; j < IDS; j++) {
                snprintf(id, sizeof id, "a%d", j);
                struct ts_seqset *set = ts_seqsets_find(&t, id);
                assert_int_equal(set != NULL, in[j]);
                if (set)
                    assert_int_equal(ts_seqset_contiguous(set), (uint64_t)j + 1);
                n += in[j];
            }
            assert_int_equal(ts_seqsets_count(&t), n);
        }
    }
    struct ts_seqset none;
    assert_false(ts_seqsets_take(&t, "nobody", &none));
    assert_false(ts_seqsets_take(&t, "bad id", &none));
    ts_seqsets_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_order_advances_contiguous_without_ranges),
        cmocka_unit_test(duplicates_count_once),
        cmocka_unit_test(out_of_order_gaps_fill_later),
        cmocka_unit_test(merged_ranges_cover_their_numbers),
        cmocka_unit_test(floor_above_1_counts_as_seen),
        cmocka_unit_test(extreme_numbers_do_not_overflow),
        cmocka_unit_test(randomized_against_a_bitmap),
        cmocka_unit_test(memory_bound_refuses_new_ranges_only),
        cmocka_unit_test(encode_decode_round_trip),
        cmocka_unit_test(take_keeps_the_table_whole),
        cmocka_unit_test(decode_rejects_malformed),
        cmocka_unit_test(table_of_1000_agents),
        cmocka_unit_test(table_decode_is_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
