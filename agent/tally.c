/* SPDX-License-Identifier: Apache-2.0 */
#include "tally.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "clock.h"
#include "err.h"
#include "log.h"

#define UNKNOWN_ELAPSED_MS (24 * 3600 * 1000LL)

static void counter_cfg(const struct ts_turnstile_cfg *tc, struct ts_counter_cfg *cc)
{
    *cc = (struct ts_counter_cfg){.width = tc->width, .direction = tc->direction,
                                  .max_rate_per_min = tc->max_rate_per_min,
                                  .rebase_after = tc->rebase_after > 0 ? (unsigned)tc->rebase_after : 0};
}

int ts_tally_init(struct ts_tally *t, const struct ts_agent_cfg *cfg)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->turnstiles = calloc(cfg->n_turnstiles ? cfg->n_turnstiles : 1, sizeof *t->turnstiles);
    if (!t->turnstiles)
        return TS_ENOMEM;
    for (size_t i = 0; i < cfg->n_turnstiles; i++) {
        struct ts_counter_cfg cc;
        counter_cfg(cfg->turnstiles[i], &cc);
        ts_counter_init(&t->turnstiles[i].entries, &cc);
        ts_counter_init(&t->turnstiles[i].exits, &cc);
    }
    return TS_OK;
}

void ts_tally_free(struct ts_tally *t)
{
    if (!t)
        return;
    free(t->turnstiles);
    free(t->blob);
    t->turnstiles = NULL;
    t->blob = NULL;
}

/* --- saving and restoring ------------------------------------------------ *
 *
 * Format 3 (docs/store.md, "The state blob"), every integer little-endian:
 *   header  magic u32 "TSTL", version u32 = 3, n u32 records,
 *           crc32 u32 (zlib) of everything after the header
 *   record  length u32 of its fields, then the fields
 *   field   tag u16, length u16, value: a number as 8 bytes (integers
 *           zero- or sign-extended, doubles as IEEE 754 bits), a string as
 *           its bytes
 * A reader skips the fields whose tag it does not know; a field it knows
 * and does not find keeps its value of ts_tally_init. Adding a field to the
 * state is one line in a table below (a new tag, never a reused one).
 * Formats 1 and 2 (native structs, written up to 0a1bd3f) are still read. */

#define BLOB_MAGIC 0x4c545354u /* "TSTL" as a little-endian u32 */
#define BLOB_VERSION 3
#define HEADER_SIZE 16
#define SIGNED_LIMIT (INT64_C(1) << 53) /* times (ms) and votes: no overflow in their sums */

enum kind { K_BOOL, K_UNSIGNED, K_SIGNED, K_DOUBLE };

struct field {
    uint16_t tag;
    uint8_t kind, size;
    uint16_t offset;
};

/* The kind of a member, checked at compile time: a type without a kind here
 * is an error, not a silent byte copy. */
#define KIND_OF(x)                                                                                 \
    _Generic((x), bool: K_BOOL, unsigned char: K_UNSIGNED, unsigned short: K_UNSIGNED,             \
             unsigned int: K_UNSIGNED, unsigned long: K_UNSIGNED, unsigned long long: K_UNSIGNED,  \
             signed char: K_SIGNED, short: K_SIGNED, int: K_SIGNED, long: K_SIGNED,                \
             long long: K_SIGNED, double: K_DOUBLE)
#define FIELD(tag, type, member)                                                                   \
    {(tag), KIND_OF(((type *)0)->member), sizeof(((type *)0)->member), offsetof(type, member)}

/* Identity of a record (strings). */
enum { TAG_CA = 1, TAG_UNIT = 2, TAG_SCP = 3 };
/* A counter's fields take tag TAG_ENTRIES + t or TAG_EXITS + t, t < 0x100. */
#define TAG_ENTRIES 0x100
#define TAG_EXITS 0x200

#define C(tag, member) FIELD(tag, struct ts_counter, member)
static const struct field counter_fields[] = {
    C(1, have_prev), C(2, prev), C(3, prev_time_ms), C(4, up_votes), C(5, down_votes),
    C(6, have_held), C(7, held), C(8, held_time_ms), C(9, run_len), C(10, run_first),
    C(11, run_last), C(12, run_first_time_ms), C(13, run_last_time_ms), C(14, run_people),
    C(15, run_flags), C(16, n_wrap), C(17, n_reset), C(18, n_glitch), C(19, n_signed),
    C(20, n_downward), C(21, n_rebased),
    /* next: 22. The counter's cfg is not saved: it comes from today's config. */
};
#undef C
/* A tripwire for the next field of struct ts_counter (the same size on
 * amd64, arm64 and armhf): a field not in the table above is not saved,
 * and resets at every restart. */
_Static_assert(sizeof(struct ts_counter) == 200,
               "struct ts_counter changed: add its new field to counter_fields in agent/tally.c "
               "(the next tag; or say there why it is not saved), then update this size");

#define S(tag, member) FIELD(tag, struct ts_turnstile_state, member)
static const struct field turnstile_fields[] = {
    S(0x10, last_ms), S(0x11, last_entries), S(0x12, last_exits), S(0x13, holding),
    S(0x14, hold_entries), S(0x15, hold_exits), S(0x16, hold_flags),
    /* next: 0x17. Not saved: what belongs to one run (counted_*, ref_*,
     * hold_mono_ms, gpio_base_* which restore derives, the anomaly run). */
};
#undef S

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void put_le(unsigned char *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The member of base described by f, as its 8-byte wire value. */
static uint64_t field_get(const struct field *f, const void *base)
{
    const unsigned char *p = (const unsigned char *)base + f->offset;
    if (f->kind == K_DOUBLE) {
        double d;
        uint64_t v;
        memcpy(&d, p, sizeof d);
        memcpy(&v, &d, sizeof v);
        return v;
    }
    if (f->kind == K_BOOL)
        return *(const bool *)(const void *)p ? 1 : 0;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    switch (f->size) {
    case 1: memcpy(&u8, p, 1); u64 = u8; break;
    case 2: memcpy(&u16, p, 2); u64 = u16; break;
    case 4: memcpy(&u32, p, 4); u64 = u32; break;
    default: memcpy(&u64, p, 8); break;
    }
    if (f->kind == K_SIGNED && f->size < 8 && (u64 >> (8 * f->size - 1)) & 1)
        u64 |= UINT64_MAX << (8 * f->size); /* sign-extended */
    return u64;
}

/* Stores the wire value v into base's member; false if it does not fit (a
 * bool other than 0/1, an integer out of the member's range, a signed one
 * beyond +-2^53, a double that is not finite). */
static bool field_set(const struct field *f, void *base, uint64_t v)
{
    unsigned char *p = (unsigned char *)base + f->offset;
    switch (f->kind) {
    case K_BOOL:
        if (v > 1)
            return false;
        *(bool *)(void *)p = v != 0;
        return true;
    case K_DOUBLE: {
        double d;
        memcpy(&d, &v, sizeof d);
        if (!isfinite(d))
            return false;
        memcpy(p, &d, sizeof d);
        return true;
    }
    case K_SIGNED: {
        int64_t s = (int64_t)v;
        if (s < -SIGNED_LIMIT || s > SIGNED_LIMIT)
            return false;
        if (f->size < 8 && (s < -(INT64_C(1) << (8 * f->size - 1)) ||
                            s >= (INT64_C(1) << (8 * f->size - 1))))
            return false;
        break;
    }
    default:
        if (f->size < 8 && v >> (8 * f->size))
            return false;
    }
    uint8_t u8 = (uint8_t)v;
    uint16_t u16 = (uint16_t)v;
    uint32_t u32 = (uint32_t)v;
    switch (f->size) {
    case 1: memcpy(p, &u8, 1); break;
    case 2: memcpy(p, &u16, 2); break;
    case 4: memcpy(p, &u32, 4); break;
    default: memcpy(p, &v, 8); break;
    }
    return true;
}

/* Writes one field at b; returns its size. */
static size_t put_number(unsigned char *b, uint16_t tag, uint64_t v)
{
    put_le(b, tag, 2);
    put_le(b + 2, 8, 2);
    put_le(b + 4, v, 8);
    return 12;
}

static size_t put_text(unsigned char *b, uint16_t tag, const char *text)
{
    size_t n = strlen(text);
    put_le(b, tag, 2);
    put_le(b + 2, n, 2);
    memcpy(b + 4, text, n);
    return 4 + n;
}

/* The size of turnstile i's record, as put_record writes it. */
static size_t record_size(const struct ts_tally *t, size_t i)
{
    const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[i];
    return 4 + 3 * 4 + strlen(tc->ca) + strlen(tc->unit) + strlen(tc->scp) +
           12 * (N_OF(turnstile_fields) + 2 * N_OF(counter_fields));
}

/* Writes turnstile i's record at b; returns its size. */
static size_t put_record(const struct ts_tally *t, size_t i, unsigned char *b)
{
    const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[i];
    const struct ts_turnstile_state *st = &t->turnstiles[i];
    size_t n = 4;
#define AT (b + n)
    n += put_text(AT, TAG_CA, tc->ca);
    n += put_text(AT, TAG_UNIT, tc->unit);
    n += put_text(AT, TAG_SCP, tc->scp);
    for (size_t k = 0; k < N_OF(turnstile_fields); k++)
        n += put_number(AT, turnstile_fields[k].tag, field_get(&turnstile_fields[k], st));
    for (size_t k = 0; k < N_OF(counter_fields); k++) {
        const struct field *f = &counter_fields[k];
        n += put_number(AT, (uint16_t)(TAG_ENTRIES + f->tag), field_get(f, &st->entries));
        n += put_number(AT, (uint16_t)(TAG_EXITS + f->tag), field_get(f, &st->exits));
    }
#undef AT
    put_le(b, n - 4, 4);
    return n;
}

const void *ts_tally_save(struct ts_tally *t, size_t *len)
{
    size_t n = t->cfg->n_turnstiles, need = HEADER_SIZE;

    for (size_t i = 0; i < n; i++)
        need += record_size(t, i);
    if (need > t->blob_cap) {
        void *b = realloc(t->blob, need);
        if (!b)
            return NULL;
        t->blob = b;
        t->blob_cap = need;
    }
    unsigned char *b = t->blob;
    size_t at = HEADER_SIZE;
    for (size_t i = 0; i < n; i++)
        at += put_record(t, i, b + at);
    if (at != need) /* record_size and put_record disagree: a bug, never a short blob */
        abort();
    put_le(b, BLOB_MAGIC, 4);
    put_le(b + 4, BLOB_VERSION, 4);
    put_le(b + 8, n, 4);
    put_le(b + 12, crc32(0, b + HEADER_SIZE, (uInt)(need - HEADER_SIZE)), 4);
    *len = need;
    return t->blob;
}

/* turnstile i's state as ts_tally_init leaves it */
static void fresh_state(const struct ts_tally *t, size_t i, struct ts_turnstile_state *st)
{
    struct ts_counter_cfg cc;
    memset(st, 0, sizeof *st);
    counter_cfg(t->cfg->turnstiles[i], &cc);
    ts_counter_init(&st->entries, &cc);
    ts_counter_init(&st->exits, &cc);
}

/* The configured turnstile with this identity, or -1. */
static long find_turnstile(const struct ts_tally *t, const char *ca, size_t ca_len,
                           const char *unit, size_t unit_len, const char *scp, size_t scp_len)
{
    for (size_t i = 0; i < t->cfg->n_turnstiles; i++) {
        const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[i];
        if (strlen(tc->ca) == ca_len && !memcmp(tc->ca, ca, ca_len) &&
            strlen(tc->unit) == unit_len && !memcmp(tc->unit, unit, unit_len) &&
            strlen(tc->scp) == scp_len && !memcmp(tc->scp, scp, scp_len))
            return (long)i;
    }
    return -1;
}

/* Takes over a restored state for turnstile i (the counters' settings
 * stay today's: they are not part of the state). */
static void adopt(struct ts_tally *t, size_t i, const struct ts_turnstile_state *saved)
{
    struct ts_turnstile_state *st = &t->turnstiles[i];
    struct ts_counter_cfg keep_e = st->entries.cfg, keep_x = st->exits.cfg;

    /* what belongs to the run (counted, timeline, anomaly run) starts
     * afresh, as after ts_tally_init */
    t->n_held -= st->holding;
    t->n_warned -= st->warned;
    *st = *saved;
    st->entries.cfg = keep_e;
    st->exits.cfg = keep_x;
    st->hold_mono_ms = 0; /* stamped when released */
    if (st->holding) {
        t->n_held++;
    } else {
        st->hold_entries = st->hold_exits = 0;
        st->hold_flags = 0;
    }
    if (t->cfg->devices[t->cfg->turnstiles[i]->device_index]->kind == TS_HAL_GPIO) {
        st->gpio_base_entries = st->last_entries;
        st->gpio_base_exits = st->last_exits;
    }
}

/* Looks the tag up in the tables: the field and the struct it lands in. */
static const struct field *known_field(uint16_t tag, struct ts_turnstile_state *st, void **base)
{
    const struct field *table = turnstile_fields;
    size_t n = N_OF(turnstile_fields);
    if (tag >= TAG_ENTRIES && tag < TAG_EXITS + 0x100) {
        *base = tag < TAG_EXITS ? (void *)&st->entries : (void *)&st->exits;
        tag &= 0xff;
        table = counter_fields;
        n = N_OF(counter_fields);
    } else {
        *base = st;
    }
    for (size_t k = 0; k < n; k++)
        if (table[k].tag == tag)
            return &table[k];
    return NULL;
}

/* Walks a format-3 blob: checks every byte of it, and if apply, restores
 * the records of configured turnstiles. NULL if well formed, else what is
 * wrong. */
static const char *walk_v3(struct ts_tally *t, const unsigned char *b, size_t len, bool apply,
                           size_t *restored)
{
    uint32_t n = (uint32_t)get_le(b + 8, 4);
    size_t at = HEADER_SIZE;

    if (n > (len - HEADER_SIZE) / 4)
        return "more records than bytes";
    for (uint32_t k = 0; k < n; k++) {
        if (len - at < 4)
            return "truncated record";
        size_t rlen = (size_t)get_le(b + at, 4), end;
        at += 4;
        if (rlen > len - at)
            return "a record longer than the blob";
        end = at + rlen;
        /* first the identity, to start from that turnstile's fresh state */
        const char *id[3] = {NULL, NULL, NULL};
        size_t id_len[3] = {0, 0, 0};
        for (size_t p = at; p < end;) {
            if (end - p < 4)
                return "truncated field";
            uint16_t tag = (uint16_t)get_le(b + p, 2), flen = (uint16_t)get_le(b + p + 2, 2);
            if (flen > end - p - 4)
                return "a field longer than its record";
            if (tag >= TAG_CA && tag <= TAG_SCP) {
                if (flen >= sizeof t->cfg->turnstiles[0]->ca || memchr(b + p + 4, 0, flen))
                    return "an identity field too long or with a NUL";
                id[tag - TAG_CA] = (const char *)b + p + 4;
                id_len[tag - TAG_CA] = flen;
            }
            p += 4 + (size_t)flen;
        }
        if (!id[0] || !id[1] || !id[2])
            return "a record without its turnstile's identity";
        long i = find_turnstile(t, id[0], id_len[0], id[1], id_len[1], id[2], id_len[2]);
        struct ts_turnstile_state st;
        if (i >= 0)
            fresh_state(t, (size_t)i, &st);
        else
            memset(&st, 0, sizeof st); /* checked all the same */
        for (size_t p = at; p < end;) {
            uint16_t tag = (uint16_t)get_le(b + p, 2), flen = (uint16_t)get_le(b + p + 2, 2);
            void *base;
            const struct field *f = known_field(tag, &st, &base);
            if (f) {
                if (flen != 8)
                    return "a number field whose length is not 8";
                if (!field_set(f, base, get_le(b + p + 4, 8)))
                    return "a value out of its field's range";
            }
            p += 4 + (size_t)flen; /* unknown tags: a newer writer's, skipped */
        }
        if (apply && i >= 0) {
            adopt(t, (size_t)i, &st);
            (*restored)++;
        }
        at = end;
    }
    return at == len ? NULL : "bytes after the last record";
}

/* Formats 1 and 2: struct blob_record_v1 (+ v2's tail) in the native
 * layout, the counter as struct ts_counter was from 6a62445 to 0a1bd3f.
 * Frozen copies here, so that a change of struct ts_counter does not
 * change how they read. Its bools are unsigned chars here (the same size
 * and alignment): a byte from the file that is neither 0 nor 1 must be
 * refused, not loaded as a bool (found by fuzz_tally_state). */
struct legacy_counter {
    struct {
        unsigned width;
        int direction;
        double max_rate_per_min;
        uint64_t min_plausible;
        unsigned rebase_after;
    } cfg;
    unsigned char have_prev;
    uint64_t prev;
    int64_t prev_time_ms;
    int64_t up_votes, down_votes;
    unsigned char have_held;
    uint64_t held;
    int64_t held_time_ms;
    unsigned run_len;
    uint64_t run_first, run_last;
    int64_t run_first_time_ms, run_last_time_ms;
    uint64_t run_people;
    uint32_t run_flags;
    uint64_t n_wrap, n_reset, n_glitch, n_signed, n_downward, n_rebased;
};

struct legacy_header {
    uint32_t magic, version, n, record_size;
};

struct legacy_record_v1 {
    char ca[16], unit[16], scp[16];
    struct legacy_counter entries, exits;
    int64_t last_ms;
    uint64_t last_entries, last_exits;
};

struct legacy_record_v2 {
    struct legacy_record_v1 v1;
    uint64_t hold_entries, hold_exits;
    uint32_t hold_flags;
    uint32_t holding;
};

/* A legacy counter into today's, through the same checks as format 3. */
static bool legacy_counter(const struct legacy_counter *o, struct ts_counter *c)
{
    /* the legacy members in the order of counter_fields */
    const uint64_t v[] = {
        o->have_prev, o->prev, (uint64_t)o->prev_time_ms, (uint64_t)o->up_votes,
        (uint64_t)o->down_votes, o->have_held, o->held, (uint64_t)o->held_time_ms, o->run_len,
        o->run_first, o->run_last, (uint64_t)o->run_first_time_ms, (uint64_t)o->run_last_time_ms,
        o->run_people, o->run_flags, o->n_wrap, o->n_reset, o->n_glitch, o->n_signed,
        o->n_downward, o->n_rebased};
    for (size_t k = 0; k < N_OF(v); k++)
        if (!field_set(&counter_fields[k], c, v[k]))
            return false;
    return true;
}

static const char *walk_legacy(struct ts_tally *t, const unsigned char *b, size_t len, bool apply,
                               size_t *restored)
{
    struct legacy_header h;
    memcpy(&h, b, sizeof h);
    size_t rsize = h.version == 1 ? sizeof(struct legacy_record_v1) : sizeof(struct legacy_record_v2);

    if (h.record_size != rsize)
        return "records of another size (another architecture, or a build that changed them)";
    if (h.n > (len - sizeof h) / rsize || len != sizeof h + (size_t)h.n * rsize)
        return "a length that does not match its records";
    for (uint32_t k = 0; k < h.n; k++) {
        struct legacy_record_v2 r;
        memset(&r, 0, sizeof r);
        memcpy(&r, b + sizeof h + k * rsize, rsize);
        if (!memchr(r.v1.ca, 0, sizeof r.v1.ca) || !memchr(r.v1.unit, 0, sizeof r.v1.unit) ||
            !memchr(r.v1.scp, 0, sizeof r.v1.scp))
            return "an identity without its end";
        long i = find_turnstile(t, r.v1.ca, strlen(r.v1.ca), r.v1.unit, strlen(r.v1.unit),
                                r.v1.scp, strlen(r.v1.scp));
        struct ts_turnstile_state st;
        if (i >= 0)
            fresh_state(t, (size_t)i, &st);
        else
            memset(&st, 0, sizeof st);
        const uint64_t v[] = {(uint64_t)r.v1.last_ms, r.v1.last_entries, r.v1.last_exits,
                              r.holding != 0, r.hold_entries, r.hold_exits, r.hold_flags};
        for (size_t f = 0; f < N_OF(v); f++)
            if (!field_set(&turnstile_fields[f], &st, v[f]))
                return "a value out of its field's range";
        if (!legacy_counter(&r.v1.entries, &st.entries) || !legacy_counter(&r.v1.exits, &st.exits))
            return "a value out of its field's range";
        if (apply && i >= 0) {
            adopt(t, (size_t)i, &st);
            (*restored)++;
        }
    }
    return NULL;
}

int ts_tally_restore(struct ts_tally *t, const void *blob, size_t len)
{
    const unsigned char *b = blob;
    const char *bad = NULL;
    size_t restored = 0;
    struct legacy_header h;
    bool v3;

    if (len == 0)
        return TS_OK;
    if (len < HEADER_SIZE) {
        bad = "shorter than its header";
        goto refused;
    }
    memcpy(&h, b, sizeof h);
    v3 = get_le(b, 4) == BLOB_MAGIC && get_le(b + 4, 4) == BLOB_VERSION;
    if (!v3 && !(h.magic == BLOB_MAGIC && (h.version == 1 || h.version == 2))) {
        bad = get_le(b, 4) == BLOB_MAGIC || h.magic == BLOB_MAGIC ? "a format this agent does not know"
                                                                  : "not a counter state";
        goto refused;
    }
    if (v3 && crc32(0, b + HEADER_SIZE, (uInt)(len - HEADER_SIZE)) != get_le(b + 12, 4)) {
        bad = "checksum mismatch";
        goto refused;
    }
    /* all or nothing: the whole blob is checked before anything is taken */
    bad = v3 ? walk_v3(t, b, len, false, &restored) : walk_legacy(t, b, len, false, &restored);
    if (bad)
        goto refused;
    if (v3)
        walk_v3(t, b, len, true, &restored);
    else
        walk_legacy(t, b, len, true, &restored);
    TS_LOG(TS_LOG_INFO, "restored the counters of %zu of %zu turnstiles (saved state format %u)",
           restored, t->cfg->n_turnstiles, v3 ? BLOB_VERSION : h.version);
    return TS_OK;
refused:
    TS_LOG(TS_LOG_WARNING, "saved counter state refused (%zu bytes: %s): starting from fresh "
                           "baselines (the first reading of each turnstile counts nobody)",
           len, bad);
    return TS_EPARSE;
}

/* --- readings ------------------------------------------------------------ */

#define COPY(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

/* --- the anomaly warning -------------------------------------------------- */

#define ANOMALY_FLAGS (TS_FLAG_GLITCH | TS_FLAG_DOWNWARD)
static const char *const counter_name[2] = {"entries", "exits"};

int64_t ts_tally_anomaly_s(const struct ts_tally *t, size_t i, const char **counter,
                           uint32_t *flags)
{
    const struct ts_turnstile_state *st = &t->turnstiles[i];
    int64_t best = -1;
    int which = 0;
    for (int c = 0; c < 2; c++) {
        const struct ts_anomaly_run *r = &st->anomaly[c];
        if (r->first_mono_ms && r->last_mono_ms - r->first_mono_ms > best) {
            best = r->last_mono_ms - r->first_mono_ms;
            which = c;
        }
    }
    if (counter)
        *counter = counter_name[which];
    if (flags)
        *flags = best < 0 ? 0 : st->anomaly[which].flags;
    return best < 0 ? 0 : best / 1000;
}

/* Follows counter c of turnstile i after a reading that counted delta with
 * flags (moved: its register changed since the last reading); warns when
 * its anomaly run passes anomaly_warn_s, says when the turnstile counts
 * again. A register that did not move neither extends nor ends the run
 * (the counters flag it glitch while a glitch run goes on). */
static void watch(struct ts_tally *t, size_t i, int c, bool moved, uint64_t delta, uint32_t flags,
                  int64_t mono_ms)
{
    struct ts_turnstile_state *st = &t->turnstiles[i];
    struct ts_anomaly_run *r = &st->anomaly[c];
    const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[i];
    int64_t limit_ms = (int64_t)t->cfg->agent.anomaly_warn_s * 1000;

    if (delta > 0) {
        int64_t lasted_s = r->first_mono_ms ? (r->last_mono_ms - r->first_mono_ms) / 1000 : 0;
        memset(r, 0, sizeof *r);
        const struct ts_anomaly_run *other = &st->anomaly[!c];
        if (st->warned && !(other->first_mono_ms &&
                            other->last_mono_ms - other->first_mono_ms >= limit_ms)) {
            st->warned = false;
            t->n_warned--;
            t->warnings_changed = true;
            TS_LOG(TS_LOG_INFO, "turnstile %s (%s %s %s): %s counts again after %lld s of anomalies",
                   tc->name, tc->ca, tc->unit, tc->scp, counter_name[c], (long long)lasted_s);
        }
        return;
    }
    if (!moved || !(flags & ANOMALY_FLAGS))
        return; /* no move, a first reading, a rebase that counted nobody: neutral */
    if (!r->first_mono_ms)
        r->first_mono_ms = mono_ms ? mono_ms : 1;
    r->last_mono_ms = mono_ms > r->first_mono_ms ? mono_ms : r->first_mono_ms;
    r->flags |= flags & ANOMALY_FLAGS;
    if (limit_ms > 0 && !st->warned && r->last_mono_ms - r->first_mono_ms >= limit_ms) {
        char names[64];
        ts_flags_format(r->flags, names, sizeof names);
        st->warned = true;
        t->n_warned++;
        t->warnings_changed = true;
        TS_LOG(TS_LOG_WARNING,
               "turnstile %s (%s %s %s): every reading of %s that moved in the last %lld s was an "
               "anomaly (%s) and counted nobody: the register map is likely wrong (word order, "
               "width, address); `turnstile-agent --probe -c FILE` shows the registers in every "
               "order", tc->name, tc->ca, tc->unit, tc->scp, counter_name[c],
               (long long)((r->last_mono_ms - r->first_mono_ms) / 1000), names);
    }
}

/* Runs one sample through the turnstile's counters at time_ms: the people
 * since the previous sample into *entries, *exits; anomalies into *flags. */
static void count(struct ts_tally *t, const struct ts_sample *s, int64_t time_ms,
                  uint64_t *entries, uint64_t *exits, uint32_t *flags)
{
    struct ts_turnstile_state *st = &t->turnstiles[s->turnstile];
    uint64_t e = s->entries + st->gpio_base_entries, x = s->exits + st->gpio_base_exits;

    uint32_t fe = 0, fx = 0;
    *entries = ts_counter_step(&st->entries, e, time_ms, &fe);
    *exits = ts_counter_step(&st->exits, x, time_ms, &fx);
    *flags |= fe | fx;
    watch(t, s->turnstile, 0, e != st->last_entries, *entries, fe, s->mono_ms);
    watch(t, s->turnstile, 1, x != st->last_exits, *exits, fx, s->mono_ms);
    st->counted_entries += *entries;
    st->counted_exits += *exits;
    st->last_entries = e;
    st->last_exits = x;
    st->ref_time_ms = time_ms;
    st->ref_mono_ms = s->mono_ms;
}

/* Fills r with turnstile i's identity and st's latest cumulative values. */
static void identity(struct ts_tally *t, size_t i, int64_t time_ms, struct ts_reading *r)
{
    const struct ts_turnstile_cfg *tc = t->cfg->turnstiles[i];
    const struct ts_turnstile_state *st = &t->turnstiles[i];

    memset(r, 0, sizeof *r);
    COPY(r->ca, tc->ca);
    COPY(r->unit, tc->unit);
    COPY(r->scp, tc->scp);
    COPY(r->station, tc->station);
    COPY(r->linename, tc->linename);
    COPY(r->division, tc->division);
    COPY(r->agent_id, t->cfg->agent.agent_id);
    r->time_ms = time_ms;
    r->entries_cum = st->last_entries;
    r->exits_cum = st->last_exits;
}

/* Closes a reading: RECOVR AUD after a gap, the time of the last one. */
static void finish(struct ts_tally *t, size_t i, struct ts_reading *r)
{
    struct ts_turnstile_state *st = &t->turnstiles[i];
    int64_t gap_ms = (int64_t)t->cfg->agent.poll_interval_ms * t->cfg->agent.recovered_after_polls;

    if (st->last_ms && r->time_ms - st->last_ms > gap_ms)
        r->flags |= TS_FLAG_RECOVERED;
    COPY(r->desc, (r->flags & TS_FLAG_RECOVERED) ? "RECOVR AUD" : "REGULAR");
    st->last_ms = r->time_ms;
}

/* Writes turnstile i's held reading into out (if it holds one); returns 0 or 1. */
static size_t release_turnstile(struct ts_tally *t, size_t i, struct ts_reading *out)
{
    struct ts_turnstile_state *st = &t->turnstiles[i];

    if (!st->holding)
        return 0;
    identity(t, i, ts_clock_stamp(st->hold_mono_ms ? st->hold_mono_ms : ts_mono_ms()), out);
    out->entries = st->hold_entries;
    out->exits = st->hold_exits;
    out->flags = st->hold_flags | TS_FLAG_RECOVERED;
    finish(t, i, out);
    st->holding = false;
    st->hold_entries = st->hold_exits = 0;
    st->hold_flags = 0;
    t->n_held--;
    return 1;
}

size_t ts_tally_sample(struct ts_tally *t, const struct ts_sample *s, bool trusted,
                       struct ts_reading *out)
{
    struct ts_turnstile_state *st = &t->turnstiles[s->turnstile];
    uint64_t e, x;
    uint32_t flags = 0;

    if (!trusted) {
        /* counted now, stamped later. The counters' rate checks need times
         * consistent with the previous ones, which an untrusted clock (years
         * behind, then stepped) does not give: within a run the monotonic
         * clock extends the timeline; after a restart the time elapsed since
         * the last counted sample is unknown, and is taken as a day (a jump
         * then counts unless implausible even for a day) */
        int64_t time_ms;
        if (st->ref_mono_ms)
            time_ms = st->ref_time_ms + (s->mono_ms - st->ref_mono_ms);
        else if (st->entries.have_prev || st->exits.have_prev)
            time_ms = (st->entries.prev_time_ms > st->exits.prev_time_ms ? st->entries.prev_time_ms
                                                                         : st->exits.prev_time_ms) +
                      UNKNOWN_ELAPSED_MS;
        else
            time_ms = ts_clock_stamp(s->mono_ms);
        count(t, s, time_ms, &e, &x, &flags);
        if (!st->holding) {
            st->holding = true;
            t->n_held++;
        }
        st->hold_entries += e;
        st->hold_exits += x;
        st->hold_flags |= flags;
        st->hold_mono_ms = s->mono_ms;
        return 0;
    }
    size_t n = release_turnstile(t, s->turnstile, out);
    int64_t time_ms = ts_clock_stamp(s->mono_ms);
    count(t, s, time_ms, &e, &x, &flags);
    identity(t, s->turnstile, time_ms, &out[n]);
    out[n].entries = e;
    out[n].exits = x;
    out[n].flags = flags;
    finish(t, s->turnstile, &out[n]);
    return n + 1;
}

size_t ts_tally_release(struct ts_tally *t, struct ts_reading *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < t->cfg->n_turnstiles && t->n_held && n < max; i++)
        n += release_turnstile(t, i, out + n);
    return n;
}
