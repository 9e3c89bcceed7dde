/* SPDX-License-Identifier: Apache-2.0 */
/* window.c - event-time windowed aggregation (see window.h, docs/windows.md).
 *
 * Data structures:
 * - identities (CA..DIVISION, DESC) are interned once into a flat array of
 *   zero-padded records and referred to by index; an open-addressing table
 *   (linear probing) finds them by hash;
 * - groups (identity, local day, window start, late bit) live in a pool
 *   with a free list, and in an open-addressing table of pool indices
 *   (linear probing, backward-shift deletion), so that the steady state
 *   allocates nothing;
 * - open windows are a small array sorted by start, each with a singly
 *   linked list of its groups in order of creation;
 * - late groups are one linked list in order of creation, sorted by window
 *   start (stable merge sort on the list, no allocation) when emitted;
 * - the closed-window record: every window whose end <= frontier is closed,
 *   plus a sorted array of the starts of windows closed ahead of the
 *   frontier (idle fallback, memory bound, flush). Its capacity is reserved
 *   when a window opens, so closing never allocates. */
#include "window.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civil.h"
#include "decimal.h"
#include "err.h"

#define NIL UINT32_MAX
#define DAY_MS 86400000LL
#define MAX_SIZE_MS (7 * DAY_MS)
#define MAX_LATENESS_MS (30 * DAY_MS)
#define STATE_MAGIC "ts-window-state 1"

enum close_reason { OPEN = 0, BY_WATERMARK, BY_IDLE, BY_MEMORY, BY_FLUSH };

struct ident { /* zero-padded so that records compare and hash as bytes */
    char ca[16], unit[16], scp[16], station[64], linename[32], division[16], desc[16];
};

struct group {
    int64_t start;            /* window start */
    uint64_t entries, exits;
    uint64_t hash;
    uint32_t ident;
    int32_t day;              /* station-local days since 1970-01-01 */
    int32_t offset_s;         /* of the first reading: gives TIME */
    uint32_t next;            /* window list, late list or free list */
    uint8_t late;
};

struct window {
    int64_t start;
    int64_t last_update_ms;   /* processing time of the last reading added */
    uint32_t head, tail;      /* its groups, in order of creation */
    size_t n;
    enum close_reason reason; /* set during advance */
};

struct ts_window_agg {
    struct ts_window_cfg cfg; /* slide_ms and lateness_ms resolved */

    struct ident *idents;
    uint64_t *ident_hash;
    size_t n_idents, cap_idents;
    uint32_t *itab;           /* ident indices, NIL = empty */
    size_t itab_mask;

    struct group *pool;
    size_t n_pool, cap_pool, n_live;
    uint32_t free_head;
    uint32_t *gtab;           /* group indices, NIL = empty */
    size_t gtab_mask;

    struct window *wins;      /* open windows, sorted by start */
    size_t n_wins, cap_wins, n_open_groups;

    uint32_t late_head, late_tail;
    size_t n_late;

    int64_t frontier;         /* windows with end <= frontier are closed */
    int64_t *closed;          /* starts of windows closed ahead of it, sorted */
    size_t n_closed, cap_closed;

    bool has_event;
    int64_t max_event_ms;     /* highest reading time added */
    int64_t wm_moved_ms;      /* processing time max_event_ms last rose */

    struct ts_window_stats st;
};

/* ---- small helpers ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

/* MM/DD/YYYY; days are within years 1969..9999 by the range checks */
static void format_date(int64_t day, char out[11])
{
    int64_t y;
    unsigned m, d;
    ts_civil_from_days(day, &y, &m, &d);
    put2(out, m);
    out[2] = '/';
    put2(out + 3, d);
    out[5] = '/';
    put2(out + 6, (unsigned)(y / 100));
    put2(out + 8, (unsigned)(y % 100));
    out[10] = '\0';
}

static void format_time(int64_t local_ms, char out[9])
{
    int64_t s = floor_div(local_ms, 1000) - floor_div(local_ms, DAY_MS) * 86400;
    put2(out, (unsigned)(s / 3600));
    out[2] = ':';
    put2(out + 3, (unsigned)(s / 60 % 60));
    out[5] = ':';
    put2(out + 6, (unsigned)(s % 60));
    out[8] = '\0';
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t ident_hash_of(const struct ident *id)
{
    const unsigned char *p = (const unsigned char *)id;
    uint64_t h = 0x243f6a8885a308d3ULL;
    for (size_t i = 0; i + 8 <= sizeof *id; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    return mix64(h);
}

static uint64_t group_hash(uint32_t ident, int32_t day, int64_t start, int late)
{
    uint64_t a = ((uint64_t)ident << 32) | (uint32_t)day;
    return mix64(a * 0x9e3779b97f4a7c15ULL ^ mix64((uint64_t)start) ^ (uint64_t)late);
}


static void *grow(void *p, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : first;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c * elem);
    if (q)
        *cap = c;
    return q;
}

/* ---- configuration ---- */

void ts_window_cfg_default(struct ts_window_cfg *cfg)
{
    *cfg = (struct ts_window_cfg){
        .size_ms = 5 * 60 * 1000,
        .slide_ms = 0,
        .lateness_ms = TS_WINDOW_LATENESS_DEFAULT,
        .idle_ms = 10 * 60 * 1000,
        .max_open = (size_t)1 << 20,
    };
}

int ts_window_cfg_check(const struct ts_window_cfg *cfg, char *why, size_t why_size)
{
    if (cfg->size_ms < 1000 || cfg->size_ms > MAX_SIZE_MS || cfg->size_ms % 1000) {
        ts_why(why, why_size, "window size %" PRId64 " ms: must be whole seconds, 1 s to 7 days",
               cfg->size_ms);
        return TS_EINVAL;
    }
    if (cfg->slide_ms < 0 || cfg->slide_ms > cfg->size_ms || cfg->slide_ms % 1000) {
        ts_why(why, why_size,
               "window slide %" PRId64 " ms: must be 0 (tumbling) or whole seconds up to the size",
               cfg->slide_ms);
        return TS_EINVAL;
    }
    int64_t slide = cfg->slide_ms ? cfg->slide_ms : cfg->size_ms;
    if ((cfg->size_ms + slide - 1) / slide > TS_WINDOW_MAX_PER_READING) {
        ts_why(why, why_size, "window size / slide is over %d windows per reading",
               TS_WINDOW_MAX_PER_READING);
        return TS_EINVAL;
    }
    if ((cfg->lateness_ms < 0 && cfg->lateness_ms != TS_WINDOW_LATENESS_DEFAULT) ||
        cfg->lateness_ms > MAX_LATENESS_MS) {
        ts_why(why, why_size, "allowed lateness %" PRId64 " ms: must be 0 to 30 days",
               cfg->lateness_ms);
        return TS_EINVAL;
    }
    if (cfg->idle_ms < 0) {
        ts_why(why, why_size, "idle timeout %" PRId64 " ms: must be >= 0 (0 = off)",
               cfg->idle_ms);
        return TS_EINVAL;
    }
    return TS_OK;
}

/* ---- construction ---- */

static void reset_state(struct ts_window_agg *a)
{
    a->n_idents = 0;
    if (a->itab)
        memset(a->itab, 0xff, (a->itab_mask + 1) * sizeof *a->itab);
    a->n_pool = a->n_live = 0;
    a->free_head = NIL;
    if (a->gtab)
        memset(a->gtab, 0xff, (a->gtab_mask + 1) * sizeof *a->gtab);
    a->n_wins = a->n_open_groups = 0;
    a->late_head = a->late_tail = NIL;
    a->n_late = 0;
    a->frontier = INT64_MIN;
    a->n_closed = 0;
    a->has_event = false;
    a->max_event_ms = INT64_MIN;
    a->wm_moved_ms = INT64_MIN;
}

int ts_window_new(const struct ts_window_cfg *cfg, struct ts_window_agg **out, char *why,
                  size_t why_size)
{
    int rc = ts_window_cfg_check(cfg, why, why_size);
    if (rc)
        return rc;
    struct ts_window_agg *a = calloc(1, sizeof *a);
    if (!a)
        return TS_ENOMEM;
    a->cfg = *cfg;
    if (!a->cfg.slide_ms)
        a->cfg.slide_ms = a->cfg.size_ms;
    if (a->cfg.lateness_ms == TS_WINDOW_LATENESS_DEFAULT)
        a->cfg.lateness_ms = a->cfg.size_ms;
    a->itab_mask = 255;
    a->gtab_mask = 1023;
    a->itab = malloc((a->itab_mask + 1) * sizeof *a->itab);
    a->gtab = malloc((a->gtab_mask + 1) * sizeof *a->gtab);
    if (!a->itab || !a->gtab) {
        ts_window_free(a);
        return TS_ENOMEM;
    }
    reset_state(a);
    *out = a;
    return TS_OK;
}

void ts_window_free(struct ts_window_agg *a)
{
    if (!a)
        return;
    free(a->idents);
    free(a->ident_hash);
    free(a->itab);
    free(a->pool);
    free(a->gtab);
    free(a->wins);
    free(a->closed);
    free(a);
}

/* ---- identities ---- */

static int ident_from_reading(struct ident *id, const struct ts_reading *r)
{
    struct {
        char *dst;
        const char *src;
        size_t size;
    } f[] = {
        {id->ca, r->ca, sizeof id->ca},
        {id->unit, r->unit, sizeof id->unit},
        {id->scp, r->scp, sizeof id->scp},
        {id->station, r->station, sizeof id->station},
        {id->linename, r->linename, sizeof id->linename},
        {id->division, r->division, sizeof id->division},
        {id->desc, r->desc, sizeof id->desc},
    };
    memset(id, 0, sizeof *id);
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        size_t n = strnlen(f[i].src, f[i].size);
        if (n == f[i].size)
            return TS_EINVAL;
        memcpy(f[i].dst, f[i].src, n);
    }
    return TS_OK;
}

static int ident_fields_ok(const struct ident *id)
{
    return ts_field_ok(id->ca) && ts_field_ok(id->unit) && ts_field_ok(id->scp) &&
           ts_field_ok(id->station) && ts_field_ok(id->linename) && ts_field_ok(id->division) &&
           ts_field_ok(id->desc);
}

static uint32_t ident_find(const struct ts_window_agg *a, const struct ident *id, uint64_t h,
                           size_t *slot)
{
    size_t i = h & a->itab_mask;
    for (; a->itab[i] != NIL; i = (i + 1) & a->itab_mask) {
        uint32_t k = a->itab[i];
        if (a->ident_hash[k] == h && memcmp(&a->idents[k], id, sizeof *id) == 0)
            return k;
    }
    *slot = i;
    return NIL;
}

static int itab_grow(struct ts_window_agg *a)
{
    size_t cap = (a->itab_mask + 1) * 2;
    uint32_t *t = malloc(cap * sizeof *t);
    if (!t)
        return TS_ENOMEM;
    memset(t, 0xff, cap * sizeof *t);
    for (uint32_t k = 0; k < a->n_idents; k++) {
        size_t i = a->ident_hash[k] & (cap - 1);
        while (t[i] != NIL)
            i = (i + 1) & (cap - 1);
        t[i] = k;
    }
    free(a->itab);
    a->itab = t;
    a->itab_mask = cap - 1;
    return TS_OK;
}

/* Index of id, interning it if new. TS_EINVAL for a bad field, TS_ENOMEM. */
static int ident_intern(struct ts_window_agg *a, const struct ident *id, uint32_t *out)
{
    uint64_t h = ident_hash_of(id);
    size_t slot;
    uint32_t k = ident_find(a, id, h, &slot);
    if (k != NIL) {
        *out = k;
        return TS_OK;
    }
    if (!ident_fields_ok(id))
        return TS_EINVAL;
    if (a->n_idents >= NIL - 1)
        return TS_ENOMEM;
    if ((a->n_idents + 1) * 2 > a->itab_mask + 1) {
        if (itab_grow(a))
            return TS_ENOMEM;
        ident_find(a, id, h, &slot);
    }
    size_t cap = a->cap_idents;
    struct ident *ids = grow(a->idents, &cap, a->n_idents + 1, sizeof *ids, 64);
    if (!ids)
        return TS_ENOMEM;
    a->idents = ids;
    size_t cap2 = a->cap_idents;
    uint64_t *hs = grow(a->ident_hash, &cap2, a->n_idents + 1, sizeof *hs, 64);
    if (!hs)
        return TS_ENOMEM;
    a->ident_hash = hs;
    a->cap_idents = cap < cap2 ? cap : cap2;
    k = (uint32_t)a->n_idents++;
    a->idents[k] = *id;
    a->ident_hash[k] = h;
    a->itab[slot] = k;
    *out = k;
    return TS_OK;
}

/* ---- groups ---- */

static uint32_t group_find(const struct ts_window_agg *a, uint32_t ident, int32_t day,
                           int64_t start, int late, uint64_t h)
{
    for (size_t i = h & a->gtab_mask; a->gtab[i] != NIL; i = (i + 1) & a->gtab_mask) {
        const struct group *g = &a->pool[a->gtab[i]];
        if (g->hash == h && g->start == start && g->ident == ident && g->day == day &&
            g->late == late)
            return a->gtab[i];
    }
    return NIL;
}

static void gtab_put(uint32_t *t, size_t mask, const struct group *pool, uint32_t gi)
{
    size_t i = pool[gi].hash & mask;
    while (t[i] != NIL)
        i = (i + 1) & mask;
    t[i] = gi;
}

static void gtab_remove(struct ts_window_agg *a, uint32_t gi)
{
    size_t mask = a->gtab_mask, i = a->pool[gi].hash & mask;
    while (a->gtab[i] != gi)
        i = (i + 1) & mask;
    /* backward-shift deletion: pull later entries of the run into the hole
     * unless their home slot lies cyclically in (hole, j] */
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        if (a->gtab[j] == NIL)
            break;
        size_t home = a->pool[a->gtab[j]].hash & mask;
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            a->gtab[i] = a->gtab[j];
            i = j;
        }
    }
    a->gtab[i] = NIL;
}

/* Makes room for n more groups (pool, table) without failing afterwards. */
static int reserve_groups(struct ts_window_agg *a, size_t n)
{
    size_t free_n = a->n_pool - a->n_live; /* entries on the free list */
    if (free_n < n) {
        size_t need = a->n_pool + (n - free_n);
        if (need >= NIL)
            return TS_ENOMEM;
        struct group *p = grow(a->pool, &a->cap_pool, need, sizeof *p, 1024);
        if (!p)
            return TS_ENOMEM;
        a->pool = p;
    }
    if ((a->n_live + n) * 2 > a->gtab_mask + 1) {
        size_t cap = a->gtab_mask + 1;
        while ((a->n_live + n) * 2 > cap)
            cap *= 2;
        uint32_t *t = malloc(cap * sizeof *t);
        if (!t)
            return TS_ENOMEM;
        memset(t, 0xff, cap * sizeof *t);
        for (size_t i = 0; i <= a->gtab_mask; i++)
            if (a->gtab[i] != NIL)
                gtab_put(t, cap - 1, a->pool, a->gtab[i]);
        free(a->gtab);
        a->gtab = t;
        a->gtab_mask = cap - 1;
    }
    return TS_OK;
}

/* Only after reserve_groups. */
static uint32_t group_new(struct ts_window_agg *a, uint32_t ident, int32_t day, int64_t start,
                          int late, int32_t offset_s, uint64_t h)
{
    uint32_t gi;
    if (a->free_head != NIL) {
        gi = a->free_head;
        a->free_head = a->pool[gi].next;
    } else {
        gi = (uint32_t)a->n_pool++;
    }
    a->pool[gi] = (struct group){.start = start, .hash = h, .ident = ident, .day = day,
                                 .offset_s = offset_s, .next = NIL, .late = (uint8_t)late};
    a->n_live++;
    gtab_put(a->gtab, a->gtab_mask, a->pool, gi);
    return gi;
}

static void group_free(struct ts_window_agg *a, uint32_t gi)
{
    gtab_remove(a, gi);
    a->pool[gi].next = a->free_head;
    a->free_head = gi;
    a->n_live--;
}

/* ---- windows and the closed record ---- */

/* Index of the first open window with start >= s. */
static size_t win_lower(const struct ts_window_agg *a, int64_t s)
{
    size_t lo = 0, hi = a->n_wins;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->wins[mid].start < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t closed_lower(const struct ts_window_agg *a, int64_t s)
{
    size_t lo = 0, hi = a->n_closed;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->closed[mid] < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool window_closed(const struct ts_window_agg *a, int64_t start)
{
    if (a->frontier != INT64_MIN && start + a->cfg.size_ms <= a->frontier)
        return true;
    size_t i = closed_lower(a, start);
    return i < a->n_closed && a->closed[i] == start;
}

/* Capacity was reserved when the window opened. */
static void closed_insert(struct ts_window_agg *a, int64_t start)
{
    size_t i = closed_lower(a, start);
    if (i < a->n_closed && a->closed[i] == start)
        return;
    memmove(a->closed + i + 1, a->closed + i, (a->n_closed - i) * sizeof *a->closed);
    a->closed[i] = start;
    a->n_closed++;
}

/* Makes room for n more open windows, each of which may later be closed
 * ahead of the frontier. */
static int reserve_windows(struct ts_window_agg *a, size_t n)
{
    struct window *w = grow(a->wins, &a->cap_wins, a->n_wins + n, sizeof *w, 16);
    if (!w)
        return TS_ENOMEM;
    a->wins = w;
    int64_t *c = grow(a->closed, &a->cap_closed, a->n_closed + a->n_wins + n, sizeof *c, 16);
    if (!c)
        return TS_ENOMEM;
    a->closed = c;
    return TS_OK;
}

/* The open window starting at start, opened if absent (after reserve_windows). */
static struct window *window_get(struct ts_window_agg *a, int64_t start, int64_t now_ms)
{
    size_t i = win_lower(a, start);
    if (i < a->n_wins && a->wins[i].start == start)
        return &a->wins[i];
    memmove(a->wins + i + 1, a->wins + i, (a->n_wins - i) * sizeof *a->wins);
    a->wins[i] = (struct window){.start = start, .last_update_ms = now_ms, .head = NIL,
                                 .tail = NIL};
    a->n_wins++;
    return &a->wins[i];
}

/* Adds to the group (ident, day, start, late), creating it. Capacity reserved. */
static void accumulate(struct ts_window_agg *a, uint32_t ident, int32_t day, int64_t start,
                       bool late, int32_t offset_s, uint64_t entries, uint64_t exits,
                       int64_t now_ms)
{
    uint64_t h = group_hash(ident, day, start, late);
    uint32_t gi = group_find(a, ident, day, start, late, h);
    struct window *w = NULL;
    if (!late) {
        w = window_get(a, start, now_ms);
        w->last_update_ms = now_ms;
    }
    if (gi == NIL) {
        gi = group_new(a, ident, day, start, late, offset_s, h);
        uint32_t *head = late ? &a->late_head : &w->head, *tail = late ? &a->late_tail : &w->tail;
        if (*tail == NIL)
            *head = gi;
        else
            a->pool[*tail].next = gi;
        *tail = gi;
        if (late) {
            a->n_late++;
        } else {
            w->n++;
            a->n_open_groups++;
        }
    }
    a->pool[gi].entries += entries;
    a->pool[gi].exits += exits;
}

/* ---- adding ---- */

int ts_window_add(struct ts_window_agg *a, const struct ts_reading *r, int32_t utc_offset_s,
                  int64_t now_ms)
{
    int64_t t = r->time_ms;
    if (t < 0 || t > TS_WINDOW_TIME_MAX || utc_offset_s < -TS_WINDOW_OFFSET_MAX ||
        utc_offset_s > TS_WINDOW_OFFSET_MAX)
        return TS_EINVAL;
    struct ident id;
    if (ident_from_reading(&id, r))
        return TS_EINVAL;
    uint32_t ident;
    int rc = ident_intern(a, &id, &ident);
    if (rc)
        return rc;
    int32_t day = (int32_t)floor_div(t + (int64_t)utc_offset_s * 1000, DAY_MS);

    /* the windows [k*slide, k*slide + size) holding t, latest first */
    const int64_t size = a->cfg.size_ms, slide = a->cfg.slide_ms;
    int64_t first = floor_div(t, slide) * slide;
    size_t n = 0;
    for (int64_t s = first; s + size > t; s -= slide)
        n++;
    if ((rc = reserve_groups(a, n)) || (rc = reserve_windows(a, n)))
        return rc;

    /* nothing below fails */
    for (int64_t s = first; s + size > t; s -= slide) {
        bool late = window_closed(a, s);
        accumulate(a, ident, day, s, late, utc_offset_s, r->entries, r->exits, now_ms);
        if (late)
            a->st.late_readings++;
    }
    if (!a->has_event || t > a->max_event_ms) {
        a->has_event = true;
        a->max_event_ms = t;
        a->wm_moved_ms = now_ms;
    }
    a->st.readings++;
    return TS_OK;
}

/* ---- emitting ---- */

static void emit_group(struct ts_window_agg *a, const struct group *g, ts_window_emit_fn emit,
                       void *ctx)
{
    const struct ident *id = &a->idents[g->ident];
    struct ts_window_row row;
    memcpy(row.ca, id->ca, sizeof row.ca);
    memcpy(row.unit, id->unit, sizeof row.unit);
    memcpy(row.scp, id->scp, sizeof row.scp);
    memcpy(row.station, id->station, sizeof row.station);
    memcpy(row.linename, id->linename, sizeof row.linename);
    memcpy(row.division, id->division, sizeof row.division);
    memcpy(row.desc, id->desc, sizeof row.desc);
    row.window_start_ms = g->start;
    row.window_end_ms = g->start + a->cfg.size_ms;
    row.utc_offset_s = g->offset_s;
    format_date(g->day, row.date);
    format_time(row.window_end_ms + (int64_t)g->offset_s * 1000, row.time);
    row.entries = g->entries;
    row.exits = g->exits;
    row.late = g->late;
    a->st.rows++;
    if (g->late)
        a->st.late_rows++;
    if (emit)
        emit(&row, ctx);
}

/* Stable merge sort of a group list by window start. */
static uint32_t sort_by_start(struct group *pool, uint32_t head, size_t n)
{
    if (n < 2)
        return head;
    uint32_t mid = head;
    for (size_t i = 1; i < n / 2; i++)
        mid = pool[mid].next;
    uint32_t right = pool[mid].next;
    pool[mid].next = NIL;
    uint32_t l = sort_by_start(pool, head, n / 2), r = sort_by_start(pool, right, n - n / 2);
    uint32_t out = NIL, *tail = &out;
    while (l != NIL && r != NIL) {
        uint32_t *take = pool[r].start < pool[l].start ? &r : &l;
        *tail = *take;
        tail = &pool[*take].next;
        *take = pool[*take].next;
    }
    *tail = l != NIL ? l : r;
    return out;
}

static size_t emit_closed_and_late(struct ts_window_agg *a, ts_window_emit_fn emit, void *ctx)
{
    size_t rows = 0, kept = 0;
    int64_t wm = ts_window_watermark(a);
    int64_t frontier = wm > a->frontier ? wm : a->frontier;
    for (size_t i = 0; i < a->n_wins; i++) {
        struct window *w = &a->wins[i];
        if (w->reason == OPEN) {
            a->wins[kept++] = *w;
            continue;
        }
        switch (w->reason) {
        case BY_WATERMARK: a->st.closed_watermark++; break;
        case BY_IDLE: a->st.closed_idle++; break;
        case BY_MEMORY: a->st.closed_memory++; break;
        default: a->st.closed_flush++; break;
        }
        for (uint32_t gi = w->head, next; gi != NIL; gi = next) {
            next = a->pool[gi].next;
            emit_group(a, &a->pool[gi], emit, ctx);
            group_free(a, gi);
            rows++;
        }
        a->n_open_groups -= w->n;
        if (frontier == INT64_MIN || w->start + a->cfg.size_ms > frontier)
            closed_insert(a, w->start);
    }
    a->n_wins = kept;

    /* the frontier moves to the watermark; forget what it now covers */
    a->frontier = frontier;
    size_t drop = 0;
    while (drop < a->n_closed && frontier != INT64_MIN &&
           a->closed[drop] + a->cfg.size_ms <= frontier)
        drop++;
    if (drop) {
        memmove(a->closed, a->closed + drop, (a->n_closed - drop) * sizeof *a->closed);
        a->n_closed -= drop;
    }

    uint32_t gi = sort_by_start(a->pool, a->late_head, a->n_late);
    for (uint32_t next; gi != NIL; gi = next) {
        next = a->pool[gi].next;
        emit_group(a, &a->pool[gi], emit, ctx);
        group_free(a, gi);
        rows++;
    }
    a->late_head = a->late_tail = NIL;
    a->n_late = 0;
    return rows;
}

size_t ts_window_advance(struct ts_window_agg *a, int64_t now_ms, ts_window_emit_fn emit,
                         void *ctx)
{
    int64_t wm = ts_window_watermark(a);
    size_t remaining = a->n_open_groups;
    for (size_t i = 0; i < a->n_wins; i++) {
        struct window *w = &a->wins[i];
        int64_t quiet = w->last_update_ms > a->wm_moved_ms ? w->last_update_ms : a->wm_moved_ms;
        w->reason = OPEN;
        if (wm != INT64_MIN && w->start + a->cfg.size_ms <= wm)
            w->reason = BY_WATERMARK;
        else if (a->cfg.idle_ms > 0 && now_ms >= quiet &&
                 (uint64_t)now_ms - (uint64_t)quiet >= (uint64_t)a->cfg.idle_ms)
            w->reason = BY_IDLE;
        if (w->reason != OPEN)
            remaining -= w->n;
    }
    for (size_t i = 0; a->cfg.max_open && remaining > a->cfg.max_open && i < a->n_wins; i++) {
        if (a->wins[i].reason == OPEN) {
            a->wins[i].reason = BY_MEMORY;
            remaining -= a->wins[i].n;
        }
    }
    return emit_closed_and_late(a, emit, ctx);
}

size_t ts_window_flush_all(struct ts_window_agg *a, ts_window_emit_fn emit, void *ctx)
{
    for (size_t i = 0; i < a->n_wins; i++)
        a->wins[i].reason = BY_FLUSH;
    return emit_closed_and_late(a, emit, ctx);
}

int64_t ts_window_watermark(const struct ts_window_agg *a)
{
    return a->has_event ? a->max_event_ms - a->cfg.lateness_ms : INT64_MIN;
}

void ts_window_stats(const struct ts_window_agg *a, struct ts_window_stats *st)
{
    *st = a->st;
    st->open_windows = a->n_wins;
    st->open_groups = a->n_open_groups;
    st->late_groups = a->n_late;
}

/* ---- state as text ---- */

struct buf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bprintf(struct buf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static void encode_group(struct buf *b, const struct ts_window_agg *a, const struct group *g)
{
    const struct ident *id = &a->idents[g->ident];
    int64_t y;
    unsigned m, d;
    ts_civil_from_days(g->day, &y, &m, &d);
    bprintf(b, "group %" PRId64 " %d %" PRId32 " %04" PRId64 "-%02u-%02u %" PRIu64 " %" PRIu64
               " %s,%s,%s,%s,%s,%s,%s\n",
            g->start, g->late, g->offset_s, y, m, d, g->entries, g->exits, id->ca, id->unit,
            id->scp, id->station, id->linename, id->division, id->desc);
}

int ts_window_encode(const struct ts_window_agg *a, char **text, size_t *len)
{
    struct buf b = {.p = malloc(4096), .cap = 4096};
    if (!b.p)
        return TS_ENOMEM;
    b.p[0] = '\0';
    bprintf(&b, "%s\nsize_ms %" PRId64 "\nslide_ms %" PRId64 "\n", STATE_MAGIC, a->cfg.size_ms,
            a->cfg.slide_ms);
    if (a->has_event)
        bprintf(&b, "max_event_ms %" PRId64 "\n", a->max_event_ms);
    else
        bprintf(&b, "max_event_ms none\n");
    if (a->frontier != INT64_MIN)
        bprintf(&b, "frontier_ms %" PRId64 "\n", a->frontier);
    else
        bprintf(&b, "frontier_ms none\n");
    for (size_t i = 0; i < a->n_closed; i++)
        bprintf(&b, "closed %" PRId64 "\n", a->closed[i]);
    for (size_t i = 0; i < a->n_wins; i++)
        for (uint32_t gi = a->wins[i].head; gi != NIL; gi = a->pool[gi].next)
            encode_group(&b, a, &a->pool[gi]);
    for (uint32_t gi = a->late_head; gi != NIL; gi = a->pool[gi].next)
        encode_group(&b, a, &a->pool[gi]);
    bprintf(&b, "end\n");
    if (b.failed) {
        free(b.p);
        return TS_ENOMEM;
    }
    *text = b.p;
    *len = b.len;
    return TS_OK;
}

/* Parses a decimal int64 that must fill [s, e). */
static bool parse_i64(const char *s, const char *e, int64_t *out)
{
    bool neg = s < e && *s == '-';
    if (neg)
        s++;
    if (s == e || e - s > 19)
        return false;
    uint64_t v = 0;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v > (uint64_t)INT64_MAX + neg)
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool parse_u64(const char *s, const char *e, uint64_t *out)
{
    return s <= e && ts_decimal_u64(s, (size_t)(e - s), out);
}

/* The next space-separated token of [*p, e); false if none. */
static bool token(const char **p, const char *e, const char **ts, const char **te)
{
    const char *s = *p;
    if (s >= e)
        return false;
    const char *t = memchr(s, ' ', (size_t)(e - s));
    *ts = s;
    *te = t ? t : e;
    *p = t ? t + 1 : e;
    return *te > *ts;
}

/* "key value" line: value into *v (none allowed if none_ok: *has = false). */
static bool parse_kv(const char *s, const char *e, const char *key, bool none_ok, int64_t *v,
                     bool *has)
{
    size_t kl = strlen(key);
    if ((size_t)(e - s) <= kl + 1 || memcmp(s, key, kl) != 0 || s[kl] != ' ')
        return false;
    s += kl + 1;
    if (none_ok && e - s == 4 && memcmp(s, "none", 4) == 0) {
        *has = false;
        return true;
    }
    if (has)
        *has = true;
    return parse_i64(s, e, v);
}

static bool parse_date(const char *s, const char *e, int32_t *day)
{
    int64_t y, m, d;
    if (e - s != 10 || s[4] != '-' || s[7] != '-' || !parse_i64(s, s + 4, &y) ||
        !parse_i64(s + 5, s + 7, &m) || !parse_i64(s + 8, s + 10, &d) || y < 1969 || m < 1 ||
        m > 12 || d < 1 || d > 31)
        return false;
    int64_t z = ts_days_from_civil(y, m, d);
    int64_t y2;
    unsigned m2, d2;
    ts_civil_from_days(z, &y2, &m2, &d2);
    if (y2 != y || m2 != m || d2 != d)
        return false; /* 02-30 and the like */
    *day = (int32_t)z;
    return true;
}

static bool parse_ident(const char *s, const char *e, struct ident *id)
{
    char *dst[] = {id->ca, id->unit, id->scp, id->station, id->linename, id->division, id->desc};
    size_t size[] = {sizeof id->ca,       sizeof id->unit,     sizeof id->scp, sizeof id->station,
                     sizeof id->linename, sizeof id->division, sizeof id->desc};
    memset(id, 0, sizeof *id);
    for (size_t i = 0; i < 7; i++) {
        const char *c = i < 6 ? memchr(s, ',', (size_t)(e - s)) : NULL;
        const char *fe = c ? c : e;
        if (i < 6 && !c)
            return false;
        if ((size_t)(fe - s) >= size[i])
            return false;
        memcpy(dst[i], s, (size_t)(fe - s));
        s = fe + (c ? 1 : 0);
    }
    return ident_fields_ok(id);
}

static int decode_group(struct ts_window_agg *a, const char *s, const char *e, int64_t now_ms,
                        const char **reason)
{
    const char *ts, *te;
    int64_t start, late, off;
    uint64_t entries, exits;
    int32_t day;
    struct ident id;
    *reason = "malformed group";
    if (!token(&s, e, &ts, &te) || !parse_i64(ts, te, &start) || !token(&s, e, &ts, &te) ||
        !parse_i64(ts, te, &late) || (late != 0 && late != 1) || !token(&s, e, &ts, &te) ||
        !parse_i64(ts, te, &off) || off < -TS_WINDOW_OFFSET_MAX || off > TS_WINDOW_OFFSET_MAX ||
        !token(&s, e, &ts, &te) || !parse_date(ts, te, &day) || !token(&s, e, &ts, &te) ||
        !parse_u64(ts, te, &entries) || !token(&s, e, &ts, &te) || !parse_u64(ts, te, &exits) ||
        !parse_ident(s, e, &id))
        return TS_EPARSE;
    if (start < -a->cfg.size_ms || start > TS_WINDOW_TIME_MAX || start % a->cfg.slide_ms) {
        *reason = "window start not aligned to the slide, or out of range";
        return TS_EINVAL;
    }
    if (window_closed(a, start) != (late == 1)) {
        *reason = late ? "late group of a window not closed" : "open group of a closed window";
        return TS_EINVAL;
    }
    uint32_t ident;
    int rc = ident_intern(a, &id, &ident);
    if (rc) {
        *reason = rc == TS_ENOMEM ? "out of memory" : "bad identity field";
        return rc;
    }
    if (group_find(a, ident, day, start, (int)late, group_hash(ident, day, start, (int)late)) !=
        NIL) {
        *reason = "duplicate group";
        return TS_EINVAL;
    }
    if (reserve_groups(a, 1) || reserve_windows(a, 1)) {
        *reason = "out of memory";
        return TS_ENOMEM;
    }
    accumulate(a, ident, day, start, late, (int32_t)off, entries, exits, now_ms);
    return TS_OK;
}

int ts_window_decode(struct ts_window_agg *a, const char *text, size_t len, int64_t now_ms,
                     char *why, size_t why_size)
{
    if (a->has_event || a->n_idents || a->n_live || a->frontier != INT64_MIN || a->n_closed) {
        ts_why(why, why_size, "window state: the aggregator is not fresh");
        return TS_EINVAL;
    }
    const char *p = text, *end = text + len;
    size_t line = 0;
    int step = 0, rc = TS_EPARSE;
    const char *reason = "unexpected line";
    bool has, done = false;
    int64_t v;
    while (p < end && !done) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *s = p, *e = nl ? nl : end;
        p = nl ? nl + 1 : end;
        line++;
        rc = TS_EPARSE;
        reason = "unexpected line";
        switch (step) {
        case 0:
            if ((size_t)(e - s) != strlen(STATE_MAGIC) || memcmp(s, STATE_MAGIC, (size_t)(e - s))) {
                reason = "not a window state (version line)";
                goto fail;
            }
            step++;
            continue;
        case 1:
            if (!parse_kv(s, e, "size_ms", false, &v, NULL))
                goto fail;
            if (v != a->cfg.size_ms) {
                rc = TS_EINVAL;
                reason = "saved with another window size";
                goto fail;
            }
            step++;
            continue;
        case 2:
            if (!parse_kv(s, e, "slide_ms", false, &v, NULL))
                goto fail;
            if (v != a->cfg.slide_ms) {
                rc = TS_EINVAL;
                reason = "saved with another window slide";
                goto fail;
            }
            step++;
            continue;
        case 3:
            if (!parse_kv(s, e, "max_event_ms", true, &v, &has) ||
                (has && (v < 0 || v > TS_WINDOW_TIME_MAX)))
                goto fail;
            a->has_event = has;
            a->max_event_ms = has ? v : INT64_MIN;
            a->wm_moved_ms = now_ms;
            step++;
            continue;
        case 4:
            if (!parse_kv(s, e, "frontier_ms", true, &v, &has) ||
                (has && (v < -MAX_LATENESS_MS || v > TS_WINDOW_TIME_MAX)))
                goto fail;
            a->frontier = has ? v : INT64_MIN;
            step++;
            continue;
        default:
            break;
        }
        if (e - s > 7 && memcmp(s, "closed ", 7) == 0 && step == 5) {
            if (!parse_i64(s + 7, e, &v) || v % a->cfg.slide_ms ||
                (a->frontier != INT64_MIN && v + a->cfg.size_ms <= a->frontier) ||
                v > TS_WINDOW_TIME_MAX || (a->n_closed && v <= a->closed[a->n_closed - 1])) {
                reason = "bad closed window (unaligned, covered by the frontier or unsorted)";
                goto fail;
            }
            int64_t *c = grow(a->closed, &a->cap_closed, a->n_closed + 1, sizeof *c, 16);
            if (!c) {
                rc = TS_ENOMEM;
                reason = "out of memory";
                goto fail;
            }
            a->closed = c;
            a->closed[a->n_closed++] = v;
        } else if (e - s > 6 && memcmp(s, "group ", 6) == 0) {
            step = 6;
            if ((rc = decode_group(a, s + 6, e, now_ms, &reason)))
                goto fail;
        } else if (e - s == 3 && memcmp(s, "end", 3) == 0) {
            done = true;
        } else {
            goto fail;
        }
    }
    if (!done) {
        reason = "truncated (no end line)";
        rc = TS_EPARSE;
        goto fail;
    }
    if (p != end) {
        line++;
        reason = "text after the end line";
        rc = TS_EPARSE;
        goto fail;
    }
    return TS_OK;
fail:
    ts_why(why, why_size, "window state line %zu: %s", line, reason);
    reset_state(a);
    return rc;
}
