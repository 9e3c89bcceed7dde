/* SPDX-License-Identifier: Apache-2.0 */
/* The tally's saved state (docs/store.md, "The state blob"): blobs written
 * by the code of earlier commits (tests/unit/fixtures/tally) restore every
 * field and the next poll counts the right people; format 3 round-trips,
 * skips the fields it does not know and leaves the ones it does not find at
 * their initial value; broken and hostile blobs are refused whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "agent_config.h"
#include "clock.h"
#include "err.h"
#include "tally.h"

static char fixtures[1024];

static void *read_file(const char *name, size_t *len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    void *b = malloc(1 << 16);
    *len = fread(b, 1, 1 << 16, f);
    fclose(f);
    return b;
}

static void load(struct ts_agent_cfg *cfg)
{
    char path[1200], err[512];
    snprintf(path, sizeof path, "%s/tally.conf", fixtures);
    int rc = ts_agent_cfg_load(path, cfg, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, TS_OK);
    assert_int_equal(cfg->n_turnstiles, 8);
}

/* What make_tally_blobs printed of a counter, in its order. */
struct want_counter {
    int have_prev;
    uint64_t prev;
    int64_t prev_time_ms, up_votes, down_votes;
    int have_held;
    uint64_t held;
    int64_t held_time_ms;
    unsigned run_len;
    uint64_t run_first, run_last;
    int64_t run_first_time_ms, run_last_time_ms;
    uint64_t run_people;
    uint32_t run_flags;
    uint64_t n[6]; /* wrap, reset, glitch, signed, downward, rebased */
};

struct want {
    int64_t last_ms;
    uint64_t last_entries, last_exits;
    int holding;
    uint64_t hold_entries, hold_exits;
    uint32_t hold_flags;
    struct want_counter entries, exits;
};

/* tests/unit/fixtures/tally/v2-0a1bd3f.txt */
static const struct want want_v2[8] = {
    {0, 0, 0, 0, 0, 0, 0,
     {0, 0u, 0, 0, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}},
     {0, 0u, 0, 0, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}}},
    {1780001060000, 1000, 2000, 0, 0, 0, 0,
     {1, 1000u, 1780001060000, 0, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}},
     {1, 2000u, 1780001060000, 0, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}}},
    {1780001360000, 5035, 9015, 0, 0, 0, 0,
     {1, 5035u, 1780001360000, 5, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}},
     {1, 9015u, 1780001360000, 5, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}}},
    {1780001120000, 3995, 4002, 0, 0, 0, 0,
     {1, 4000u, 1780001060000, 0, 1, 1, 3995u, 1780001120000, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 1, 0}},
     {1, 4002u, 1780001120000, 1, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}}},
    {1780001360000, 70012, 51, 0, 0, 0, 0,
     {1, 105u, 1780001120000, 4, 0, 0, 0u, 0, 4, 70000u, 70012u, 1780001180000, 1780001360000, 12u, 0x0, {0, 0, 4, 0, 0, 0}},
     {1, 51u, 1780001360000, 1, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}}},
    {1780001360000, 315, 605, 0, 0, 0, 0,
     {1, 315u, 1780001360000, 5, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}},
     {1, 605u, 1780001360000, 5, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}}},
    {1780001360000, 14, 264, 0, 0, 0, 0,
     {1, 14u, 1780001360000, 5, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {1, 0, 0, 0, 0, 0}},
     {1, 264u, 1780001360000, 5, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {1, 0, 0, 0, 0, 0}}},
    {1780001240000, 30, 35, 1, 4, 2, 0x0,
     {1, 30u, 1780001360000, 5, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}},
     {1, 35u, 1780001360000, 5, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}}},
};

/* v1-06f0e0e.txt differs in t7 only: no held reading, all six polls counted */
static struct want want_v1_t7 = {
    1780001360000, 30, 35, 0, 0, 0, 0,
    {1, 30u, 1780001360000, 5, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}},
    {1, 35u, 1780001360000, 5, 0, 0, 0u, 0, 0, 0u, 0u, 0, 0, 0u, 0x0, {0, 0, 0, 0, 0, 0}}};

static void check_counter(const struct ts_counter *c, const struct want_counter *w,
                          const struct ts_turnstile_cfg *tc)
{
    /* the settings are today's config's, not the blob's */
    assert_int_equal(c->cfg.width, tc->width);
    assert_int_equal(c->cfg.direction, tc->direction);
    assert_int_equal(c->cfg.rebase_after, tc->rebase_after);
    assert_int_equal(c->have_prev, w->have_prev);
    assert_int_equal(c->prev, w->prev);
    assert_int_equal(c->prev_time_ms, w->prev_time_ms);
    assert_int_equal(c->up_votes, w->up_votes);
    assert_int_equal(c->down_votes, w->down_votes);
    assert_int_equal(c->have_held, w->have_held);
    assert_int_equal(c->held, w->held);
    assert_int_equal(c->held_time_ms, w->held_time_ms);
    assert_int_equal(c->run_len, w->run_len);
    assert_int_equal(c->run_first, w->run_first);
    assert_int_equal(c->run_last, w->run_last);
    assert_int_equal(c->run_first_time_ms, w->run_first_time_ms);
    assert_int_equal(c->run_last_time_ms, w->run_last_time_ms);
    assert_int_equal(c->run_people, w->run_people);
    assert_int_equal(c->run_flags, w->run_flags);
    assert_int_equal(c->n_wrap, w->n[0]);
    assert_int_equal(c->n_reset, w->n[1]);
    assert_int_equal(c->n_glitch, w->n[2]);
    assert_int_equal(c->n_signed, w->n[3]);
    assert_int_equal(c->n_downward, w->n[4]);
    assert_int_equal(c->n_rebased, w->n[5]);
}

static void check_state(const struct ts_tally *t, size_t i, const struct want *w)
{
    const struct ts_turnstile_state *st = &t->turnstiles[i];
    const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[i];
    assert_int_equal(st->last_ms, w->last_ms);
    assert_int_equal(st->last_entries, w->last_entries);
    assert_int_equal(st->last_exits, w->last_exits);
    assert_int_equal(st->holding, w->holding);
    assert_int_equal(st->hold_entries, w->hold_entries);
    assert_int_equal(st->hold_exits, w->hold_exits);
    assert_int_equal(st->hold_flags, w->hold_flags);
    assert_int_equal(st->hold_mono_ms, 0);
    assert_int_equal(st->gpio_base_entries, 0);
    assert_int_equal(st->counted_entries, 0);
    check_counter(&st->entries, &w->entries, tc);
    check_counter(&st->exits, &w->exits, tc);
}

static struct ts_reading poll1(struct ts_tally *t, size_t i, uint64_t e, uint64_t x, size_t want_n)
{
    struct ts_sample s = {.turnstile = i, .entries = e, .exits = x, .mono_ms = ts_mono_ms()};
    struct ts_reading out[TS_TALLY_MAX_OUT];
    assert_int_equal(ts_tally_sample(t, &s, true, out), want_n);
    if (want_n == 2) { /* the held reading comes first: 4 in, 2 out of the fixture */
        assert_int_equal(out[0].entries, 4);
        assert_int_equal(out[0].exits, 2);
        assert_true(out[0].flags & TS_FLAG_RECOVERED);
    }
    return out[want_n - 1];
}

/* The next poll after the restore counts what a run that never stopped
 * would have counted (a fresh baseline would count nobody, flagged first). */
static void next_poll_counts(struct ts_tally *t, bool v2)
{
    struct ts_reading r = poll1(t, 0, 77, 88, 1);
    assert_true(r.flags & TS_FLAG_FIRST); /* never read before */
    r = poll1(t, 1, 1010, 2004, 1);
    assert_int_equal(r.entries, 10);
    assert_int_equal(r.exits, 4);
    assert_false(r.flags & TS_FLAG_FIRST);
    r = poll1(t, 2, 5042, 9018, 1);
    assert_int_equal(r.entries, 7);
    assert_int_equal(r.exits, 3);
    /* t3: up again from the held 3995 to 4001: the held value was a dip,
     * the baseline 4000 counts 1 */
    r = poll1(t, 3, 4001, 4004, 1);
    assert_int_equal(r.exits, 2);
    assert_int_equal(r.entries, 1);
    /* t4: the fifth reading of the run confirms it: its 12 people and these 4 */
    r = poll1(t, 4, 70016, 51, 1);
    assert_true(r.flags & TS_FLAG_REBASED);
    assert_int_equal(r.entries, 16);
    r = poll1(t, 5, 318, 606, 1);
    assert_int_equal(r.entries, 3);
    assert_int_equal(r.exits, 1);
    r = poll1(t, 6, 18, 364, 1);
    assert_int_equal(r.entries, 4);
    assert_int_equal(r.exits, 100);
    r = poll1(t, 7, 32, 36, v2 ? 2 : 1);
    assert_int_equal(r.entries, 2);
    assert_int_equal(r.exits, 1);
    assert_int_equal(t->n_held, 0);
}

static void restores_the_v1_fixture(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t;
    size_t len;
    void *blob = read_file("v1-06f0e0e.blob", &len);

    load(&cfg);
    assert_int_equal(ts_tally_init(&t, &cfg), TS_OK);
    assert_int_equal(ts_tally_restore(&t, blob, len), TS_OK);
    for (size_t i = 0; i < 8; i++)
        check_state(&t, i, i == 7 ? &want_v1_t7 : &want_v2[i]);
    assert_int_equal(t.n_held, 0);
    next_poll_counts(&t, false);
    free(blob);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

static void restores_the_v2_fixture(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t;
    size_t len;
    void *blob = read_file("v2-0a1bd3f.blob", &len);

    load(&cfg);
    assert_int_equal(ts_tally_init(&t, &cfg), TS_OK);
    assert_int_equal(ts_tally_restore(&t, blob, len), TS_OK);
    for (size_t i = 0; i < 8; i++)
        check_state(&t, i, &want_v2[i]);
    assert_int_equal(t.n_held, 1);
    next_poll_counts(&t, true);
    free(blob);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

/* --- format 3, taken apart and put together by the test ------------------ */

struct rec_field {
    uint16_t tag, len;
    const unsigned char *value;
};

static uint64_t le(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put(unsigned char *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void fix_crc(unsigned char *b, size_t len)
{
    put(b + 12, crc32(0, b + 16, (uInt)(len - 16)), 4);
}

/* Rewrites blob b (format 3) into out: in record `rec`, the field `drop` is
 * left out and `add` (if its tag is not 0) appended. Returns the length. */
static size_t rewrite(const unsigned char *b, size_t len, size_t rec, uint16_t drop,
                      const struct rec_field *add, unsigned char *out)
{
    uint32_t n = (uint32_t)le(b + 8, 4);
    size_t at = 16, o = 16;
    memcpy(out, b, 16);
    for (uint32_t k = 0; k < n; k++) {
        size_t rlen = (size_t)le(b + at, 4), end = at + 4 + rlen, start = o;
        o += 4;
        for (size_t p = at + 4; p < end;) {
            uint16_t tag = (uint16_t)le(b + p, 2), flen = (uint16_t)le(b + p + 2, 2);
            if (!(k == rec && tag == drop)) {
                memcpy(out + o, b + p, 4u + flen);
                o += 4u + flen;
            }
            p += 4u + flen;
        }
        if (k == rec && add && add->tag) {
            put(out + o, add->tag, 2);
            put(out + o + 2, add->len, 2);
            memcpy(out + o + 4, add->value, add->len);
            o += 4u + add->len;
        }
        put(out + start, o - start - 4, 4);
        at = end;
    }
    assert_int_equal(at, len);
    fix_crc(out, o);
    return o;
}

/* The offset of field `tag` of record `rec` (its tag bytes). */
static size_t field_at(const unsigned char *b, size_t rec, uint16_t tag)
{
    size_t at = 16;
    for (size_t k = 0;; k++) {
        size_t rlen = (size_t)le(b + at, 4), end = at + 4 + rlen;
        for (size_t p = at + 4; k == rec && p < end;) {
            if (le(b + p, 2) == tag)
                return p;
            p += 4 + (size_t)le(b + p + 2, 2);
        }
        assert_true(k < rec);
        at = end;
    }
}

/* A tally restored from the v2 fixture, and its state saved as format 3. */
static void from_fixture(struct ts_agent_cfg *cfg, struct ts_tally *t, unsigned char **blob,
                         size_t *len)
{
    size_t flen;
    void *fx = read_file("v2-0a1bd3f.blob", &flen);
    load(cfg);
    assert_int_equal(ts_tally_init(t, cfg), TS_OK);
    assert_int_equal(ts_tally_restore(t, fx, flen), TS_OK);
    free(fx);
    const void *b = ts_tally_save(t, len);
    assert_non_null(b);
    *blob = malloc(*len + 4096);
    memcpy(*blob, b, *len);
}

static void format3_round_trips(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t, again;
    unsigned char *blob;
    size_t len, len2;

    from_fixture(&cfg, &t, &blob, &len);
    assert_int_equal(le(blob, 4), 0x4c545354u); /* "TSTL" */
    assert_memory_equal(blob, "TSTL", 4);
    assert_int_equal(le(blob + 4, 4), 3);
    assert_int_equal(le(blob + 8, 4), 8);
    assert_int_equal(ts_tally_init(&again, &cfg), TS_OK);
    assert_int_equal(ts_tally_restore(&again, blob, len), TS_OK);
    for (size_t i = 0; i < 8; i++)
        check_state(&again, i, &want_v2[i]);
    /* and written again, the same bytes */
    const void *b2 = ts_tally_save(&again, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(b2, blob, len);
    next_poll_counts(&again, true);
    free(blob);
    ts_tally_free(&t);
    ts_tally_free(&again);
    ts_agent_cfg_free(&cfg);
}

/* A config that lost a turnstile and gained one: the others keep theirs. */
static void a_changed_config_keeps_the_turnstiles_that_stayed(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t, again;
    unsigned char *blob;
    size_t len;

    from_fixture(&cfg, &t, &blob, &len);
    /* record 2 (02-00-02) now names a turnstile that is not configured */
    size_t at = field_at(blob, 2, 3);
    assert_int_equal(le(blob + at + 2, 2), 8);
    memcpy(blob + at + 4, "09-09-09", 8);
    fix_crc(blob, len);
    assert_int_equal(ts_tally_init(&again, &cfg), TS_OK);
    assert_int_equal(ts_tally_restore(&again, blob, len), TS_OK);
    assert_false(again.turnstiles[2].entries.have_prev);
    check_state(&again, 4, &want_v2[4]);
    free(blob);
    ts_tally_free(&t);
    ts_tally_free(&again);
    ts_agent_cfg_free(&cfg);
}

/* A newer writer's fields are skipped, in the turnstile's and in a
 * counter's range of tags. */
static void an_unknown_newer_field_is_skipped(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t, again;
    unsigned char *blob, *out;
    size_t len;
    static const unsigned char odd[5] = {1, 2, 3, 4, 5};
    const struct rec_field fields[] = {{0x7777, 5, odd}, {0x1ff, 5, odd}, {0x2fe, 0, odd},
                                       {0x17, 5, odd}};

    from_fixture(&cfg, &t, &blob, &len);
    out = malloc(len + 64);
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        size_t n = rewrite(blob, len, 4, 0, &fields[k], out);
        assert_int_equal(n, len + 4 + fields[k].len);
        assert_int_equal(ts_tally_init(&again, &cfg), TS_OK);
        assert_int_equal(ts_tally_restore(&again, out, n), TS_OK);
        for (size_t i = 0; i < 8; i++)
            check_state(&again, i, &want_v2[i]);
        ts_tally_free(&again);
    }
    free(out);
    free(blob);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

/* A blob from before a field existed: the field takes its initial value
 * (not what the tally held before the restore). */
static void a_missing_field_takes_its_initial_value(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t, again;
    unsigned char *blob, *out;
    size_t len;

    from_fixture(&cfg, &t, &blob, &len);
    out = malloc(len);
    /* t6 without its entries' n_wrap (0x110) and t7 without holding (0x13) */
    size_t n = rewrite(blob, len, 6, 0x100 + 16, NULL, out);
    assert_int_equal(n, len - 12);
    assert_int_equal(ts_tally_init(&again, &cfg), TS_OK);
    again.turnstiles[6].entries.n_wrap = 99; /* not what init leaves */
    assert_int_equal(ts_tally_restore(&again, out, n), TS_OK);
    assert_int_equal(again.turnstiles[6].entries.n_wrap, 0);
    assert_int_equal(again.turnstiles[6].exits.n_wrap, 1);
    assert_int_equal(again.turnstiles[6].entries.prev, 14);
    ts_tally_free(&again);
    n = rewrite(blob, len, 7, 0x13, NULL, out);
    assert_int_equal(ts_tally_init(&again, &cfg), TS_OK);
    assert_int_equal(ts_tally_restore(&again, out, n), TS_OK);
    assert_false(again.turnstiles[7].holding);
    assert_int_equal(again.n_held, 0);
    assert_int_equal(again.turnstiles[7].hold_entries, 0);
    ts_tally_free(&again);
    free(out);
    free(blob);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

/* Restores b into a fresh tally: refused, and nothing of it taken. */
static void refused(const struct ts_agent_cfg *cfg, const void *b, size_t len)
{
    struct ts_tally t;
    assert_int_equal(ts_tally_init(&t, cfg), TS_OK);
    void *copy = malloc(len ? len : 1); /* exactly len: ASan sees any over-read */
    memcpy(copy, b, len);
    assert_int_equal(ts_tally_restore(&t, copy, len), TS_EPARSE);
    for (size_t i = 0; i < cfg->n_turnstiles; i++) {
        assert_false(t.turnstiles[i].entries.have_prev);
        assert_int_equal(t.turnstiles[i].last_ms, 0);
    }
    assert_int_equal(t.n_held, 0);
    free(copy);
    ts_tally_free(&t);
}

static void broken_blobs_are_refused(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t;
    unsigned char *blob, *b;
    size_t len, flen;

    from_fixture(&cfg, &t, &blob, &len);
    b = malloc(len + 4096);
    /* truncated anywhere */
    for (size_t cut = 1; cut < len; cut += cut < 64 ? 1 : 37)
        refused(&cfg, blob, cut);
    /* any byte changed: the checksum */
    for (size_t at = 0; at < len; at += at < 64 ? 1 : 29) {
        memcpy(b, blob, len);
        b[at] ^= 0x5a;
        refused(&cfg, b, len);
    }
    /* oversized: bytes after the last record, checksum made right */
    memcpy(b, blob, len);
    memset(b + len, 0, 4096);
    fix_crc(b, len + 4096);
    refused(&cfg, b, len + 4096);
    /* a format of the future, and something else entirely */
    memcpy(b, blob, len);
    put(b + 4, 4, 4);
    refused(&cfg, b, len);
    refused(&cfg, "hello, world, this is not a blob", 32);
    /* the legacy formats truncated, lengthened, lying about their records */
    void *fx = read_file("v2-0a1bd3f.blob", &flen);
    refused(&cfg, fx, flen - 1);
    refused(&cfg, fx, 15);
    memcpy(b, fx, flen);
    b[flen] = 0;
    refused(&cfg, b, flen + 1);
    memcpy(b, fx, flen);
    ((uint32_t *)(void *)b)[2] = 0xffffffffu; /* n */
    refused(&cfg, b, flen);
    memcpy(b, fx, flen);
    ((uint32_t *)(void *)b)[3] = 8; /* record_size */
    refused(&cfg, b, flen);
    memcpy(b, fx, flen);
    memset(b + 16, 'A', 16); /* a CA without its end */
    refused(&cfg, b, flen);
    /* a bool byte that is neither 0 nor 1 (t0's entries.have_prev: after
     * the identity's 48 bytes and the counter's 32 of settings) */
    memcpy(b, fx, flen);
    assert_int_equal(b[16 + 48 + 32], 0);
    b[16 + 48 + 32] = 7;
    refused(&cfg, b, flen);
    b[16 + 48 + 32] = 1; /* while 1 is taken */
    struct ts_tally one;
    assert_int_equal(ts_tally_init(&one, &cfg), TS_OK);
    assert_int_equal(ts_tally_restore(&one, b, flen), TS_OK);
    assert_true(one.turnstiles[0].entries.have_prev);
    ts_tally_free(&one);
    free(fx);
    free(b);
    free(blob);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

/* Well-formed and checksummed, but lying: crafted, not damaged. */
static void hostile_blobs_are_refused(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t;
    unsigned char *blob, *b;
    size_t len;

    from_fixture(&cfg, &t, &blob, &len);
    b = malloc(len + 4096);
#define AGAIN() (memcpy(b, blob, len))
    /* n huge, n one too many, n zero with records after it */
    AGAIN(); put(b + 8, 0xffffffffu, 4); fix_crc(b, len); refused(&cfg, b, len);
    AGAIN(); put(b + 8, 9, 4); fix_crc(b, len); refused(&cfg, b, len);
    AGAIN(); put(b + 8, 0, 4); fix_crc(b, len); refused(&cfg, b, len);
    /* a record's length: huge, past the end, one short */
    AGAIN(); put(b + 16, 0xffffffffu, 4); fix_crc(b, len); refused(&cfg, b, len);
    size_t r0 = (size_t)le(blob + 16, 4);
    AGAIN(); put(b + 16, len, 4); fix_crc(b, len); refused(&cfg, b, len);
    AGAIN(); put(b + 16, r0 - 1, 4); fix_crc(b, len); refused(&cfg, b, len);
    /* a field's length: past its record, and 4 on a number */
    size_t at = field_at(blob, 3, 0x100 + 2);
    AGAIN(); put(b + at + 2, 0xffff, 2); fix_crc(b, len); refused(&cfg, b, len);
    AGAIN(); put(b + at + 2, 4, 2); fix_crc(b, len); refused(&cfg, b, len);
    /* values a counter must never see: a bool of 2, a time past 2^53, a
     * vote of -2^62, a negative time */
    AGAIN(); put(b + field_at(blob, 3, 0x100 + 1) + 4, 2, 8); fix_crc(b, len); refused(&cfg, b, len);
    AGAIN(); put(b + field_at(blob, 3, 0x200 + 3) + 4, UINT64_C(1) << 60, 8); fix_crc(b, len);
    refused(&cfg, b, len);
    AGAIN(); put(b + field_at(blob, 3, 0x100 + 4) + 4, (uint64_t)(-(INT64_C(1) << 62)), 8);
    fix_crc(b, len); refused(&cfg, b, len);
    AGAIN(); put(b + field_at(blob, 3, 0x100 + 9) + 4, UINT64_C(1) << 32, 8); fix_crc(b, len);
    refused(&cfg, b, len); /* run_len is 32 bits */
    /* an identity too long, or missing */
    at = field_at(blob, 1, 3);
    AGAIN(); put(b + at + 2, 16 + 12, 2); fix_crc(b, len); /* swallows the next field */
    refused(&cfg, b, len);
    unsigned char *out = malloc(len);
    size_t n = rewrite(blob, len, 5, 1, NULL, out);
    refused(&cfg, out, n);
    free(out);
#undef AGAIN
    free(b);
    free(blob);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

int main(void)
{
    const char *slash = strrchr(__FILE__, '/');
    snprintf(fixtures, sizeof fixtures, "%.*s/fixtures/tally", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(restores_the_v1_fixture),
        cmocka_unit_test(restores_the_v2_fixture),
        cmocka_unit_test(format3_round_trips),
        cmocka_unit_test(a_changed_config_keeps_the_turnstiles_that_stayed),
        cmocka_unit_test(an_unknown_newer_field_is_skipped),
        cmocka_unit_test(a_missing_field_takes_its_initial_value),
        cmocka_unit_test(broken_blobs_are_refused),
        cmocka_unit_test(hostile_blobs_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
