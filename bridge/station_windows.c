/* SPDX-License-Identifier: Apache-2.0 */
#include "station_windows.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hashtab.h"
#include "topics.h"

/* A turnstile: CA, UNIT, SCP (each < 16 bytes) -> its station's index. */
struct turnstile {
    char ca[16], unit[16], scp[16];
    uint32_t station;
};

struct station {
    char id[TS_ID_MAX];
    int64_t start_ms;              /* newest window held; INT64_MIN: none */
    struct ts_window_row *rows;
    size_t n_rows, cap_rows;
    bool dirty;
};

struct ts_station_windows {
    struct turnstile *ts;          /* the turnstiles learnt, at most max_turnstiles */
    size_t n_ts, cap_ts;
    struct ts_hashtab index;       /* (ca, unit, scp) -> its number in ts */
    size_t max_turnstiles, max_stations;
    size_t rows_held;              /* rows over all stations (bounded by max_turnstiles) */
    uint64_t resets;
    struct station *stations;
    size_t n_stations, cap_stations;
    char *json;                    /* the flush buffer */
    size_t json_cap;
};

static uint64_t hash3(const char *a, const char *b, const char *c)
{
    uint64_t h = ts_hash_bytes(ts_hash_str(TS_HASH_INIT, a), "\xff", 1);
    h = ts_hash_bytes(ts_hash_str(h, b), "\xff", 1);
    return ts_hash_bytes(ts_hash_str(h, c), "\xff", 1);
}

struct key {
    const struct turnstile *ts;
    const char *ca, *unit, *scp;
};

static bool same(uintptr_t i, const void *key)
{
    const struct key *k = key;
    const struct turnstile *t = &k->ts[i];
    return !strcmp(t->ca, k->ca) && !strcmp(t->unit, k->unit) && !strcmp(t->scp, k->scp);
}

static struct turnstile *lookup(const struct ts_station_windows *sw, uint64_t h, const char *ca,
                                const char *unit, const char *scp)
{
    uintptr_t i;
    return ts_hashtab_find(&sw->index, h, same, &(struct key){sw->ts, ca, unit, scp}, &i)
               ? &sw->ts[i]
               : NULL;
}

#define INITIAL_CAP 512

int ts_station_windows_new(struct ts_station_windows **out)
{
    struct ts_station_windows *sw = calloc(1, sizeof *sw);
    if (!sw)
        return TS_ENOMEM;
    sw->max_turnstiles = TS_STATION_WINDOWS_MAX_TURNSTILES;
    sw->max_stations = TS_STATION_WINDOWS_MAX_STATIONS;
    ts_hashtab_init(&sw->index, sw->max_turnstiles);
    *out = sw;
    return TS_OK;
}

static void reset(struct ts_station_windows *sw);

void ts_station_windows_set_limits(struct ts_station_windows *sw, size_t max_turnstiles,
                                   size_t max_stations)
{
    sw->max_turnstiles = max_turnstiles ? max_turnstiles : 1;
    sw->max_stations = max_stations ? max_stations : 1;
    reset(sw);   /* the index is bounded by max_turnstiles: made again */
    sw->resets = 0;
}

uint64_t ts_station_windows_resets(const struct ts_station_windows *sw)
{
    return sw->resets;
}

/* Forgets every turnstile and station (their rows too): past the bounds,
 * what was learnt is learnt again from the next readings. */
static void reset(struct ts_station_windows *sw)
{
    for (size_t i = 0; i < sw->n_stations; i++)
        free(sw->stations[i].rows);
    sw->n_stations = 0;
    sw->rows_held = 0;
    /* the table shrinks back to nothing: what input made it grow to is
     * given back, not kept for ever */
    if (sw->cap_ts > INITIAL_CAP) {
        free(sw->ts);
        sw->ts = NULL;
        sw->cap_ts = 0;
    }
    sw->n_ts = 0;
    ts_hashtab_free(&sw->index);
    ts_hashtab_init(&sw->index, sw->max_turnstiles);
    sw->resets++;
}

void ts_station_windows_free(struct ts_station_windows *sw)
{
    if (!sw)
        return;
    for (size_t i = 0; i < sw->n_stations; i++)
        free(sw->stations[i].rows);
    free(sw->stations);
    free(sw->ts);
    ts_hashtab_free(&sw->index);
    free(sw->json);
    free(sw);
}

static bool station_known(const struct ts_station_windows *sw, const char *id)
{
    for (size_t i = 0; i < sw->n_stations; i++)
        if (strcmp(sw->stations[i].id, id) == 0)
            return true;
    return false;
}

static long station_index(struct ts_station_windows *sw, const char *id)
{
    for (size_t i = 0; i < sw->n_stations; i++)
        if (strcmp(sw->stations[i].id, id) == 0)
            return (long)i;
    if (sw->n_stations == sw->cap_stations) {
        size_t cap = sw->cap_stations ? sw->cap_stations * 2 : 16;
        struct station *s = realloc(sw->stations, cap * sizeof *s);
        if (!s)
            return -1;
        sw->stations = s;
        sw->cap_stations = cap;
    }
    struct station *s = &sw->stations[sw->n_stations];
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    s->start_ms = INT64_MIN;
    return (long)sw->n_stations++;
}

int ts_station_windows_learn(struct ts_station_windows *sw, const struct ts_reading *r,
                             const char *station_id)
{
    if (!ts_id_ok(station_id) || strlen(station_id) >= TS_ID_MAX || !r->ca[0])
        return TS_EINVAL;
    uint64_t h = hash3(r->ca, r->unit, r->scp);
    struct turnstile *t = lookup(sw, h, r->ca, r->unit, r->scp);
    if (t && strcmp(sw->stations[t->station].id, station_id) == 0)
        return TS_OK; /* the common case: known, same station */
    if ((!t && sw->n_ts >= sw->max_turnstiles) ||
        (sw->n_stations >= sw->max_stations && !station_known(sw, station_id))) {
        reset(sw);
        t = NULL;
    }
    long st = station_index(sw, station_id);
    if (st < 0)
        return TS_ENOMEM;
    if (!t) {
        if (sw->n_ts == sw->cap_ts) {
            size_t cap = sw->cap_ts ? sw->cap_ts * 2 : 64;
            if (cap > sw->max_turnstiles)
                cap = sw->max_turnstiles;
            struct turnstile *ts = realloc(sw->ts, cap * sizeof *ts);
            if (!ts)
                return TS_ENOMEM;
            sw->ts = ts;
            sw->cap_ts = cap;
        }
        if (ts_hashtab_add(&sw->index, h, sw->n_ts) != TS_OK)
            return TS_ENOMEM; /* not TS_EFULL: n_ts < max_turnstiles */
        t = &sw->ts[sw->n_ts++];
        memcpy(t->ca, r->ca, sizeof t->ca);
        memcpy(t->unit, r->unit, sizeof t->unit);
        memcpy(t->scp, r->scp, sizeof t->scp);
    }
    t->station = (uint32_t)st; /* a turnstile moved to another controller */
    return TS_OK;
}

void ts_station_windows_row(struct ts_station_windows *sw, const struct ts_window_row *row)
{
    if (row->late)
        return;
    const struct turnstile *t =
        lookup(sw, hash3(row->ca, row->unit, row->scp), row->ca, row->unit, row->scp);
    if (!t)
        return;
    struct station *s = &sw->stations[t->station];
    if (row->window_start_ms < s->start_ms)
        return;
    if (row->window_start_ms > s->start_ms) {
        s->start_ms = row->window_start_ms;
        sw->rows_held -= s->n_rows;
        s->n_rows = 0;
        if (s->cap_rows > 64) { /* a window that had many rows gives them back */
            free(s->rows);
            s->rows = NULL;
            s->cap_rows = 0;
        }
    }
    if (sw->rows_held >= sw->max_turnstiles)
        return; /* more rows than turnstiles (groups that differ by more than the turnstile):
                   the summary is best effort, memory stays bounded */
    if (s->n_rows == s->cap_rows) {
        size_t cap = s->cap_rows ? s->cap_rows * 2 : 16;
        struct ts_window_row *rows = realloc(s->rows, cap * sizeof *rows);
        if (!rows)
            return; /* a dashboard summary is best effort */
        s->rows = rows;
        s->cap_rows = cap;
    }
    s->rows[s->n_rows++] = *row;
    sw->rows_held++;
    s->dirty = true;
}

/* Appends to the flush buffer; false when out of memory. */
static bool put(struct ts_station_windows *sw, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool put(struct ts_station_windows *sw, size_t *len, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sw->json + *len, sw->json_cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return false;
        if ((size_t)n < sw->json_cap - *len) {
            *len += (size_t)n;
            return true;
        }
        size_t cap = (sw->json_cap + (size_t)n + 1) * 2;
        char *j = realloc(sw->json, cap);
        if (!j)
            return false;
        sw->json = j;
        sw->json_cap = cap;
    }
}

/* A JSON string of an identity field: ts_field_ok excludes double quotes
 * and control characters and wants valid UTF-8, so only the backslash needs
 * escaping (an apostrophe needs none). */
static bool put_str(struct ts_station_windows *sw, size_t *len, const char *key, const char *v)
{
    if (!put(sw, len, "\"%s\":\"", key))
        return false;
    /* the value's bytes, backslashes doubled: at most 2 per byte, plus '"' and NUL */
    size_t n = strlen(v);
    if (sw->json_cap - *len < 2 * n + 2) {
        size_t cap = (sw->json_cap + 2 * n + 2) * 2;
        char *j = realloc(sw->json, cap);
        if (!j)
            return false;
        sw->json = j;
        sw->json_cap = cap;
    }
    char *o = sw->json + *len;
    for (; *v; v++) {
        if (*v == '\\')
            *o++ = '\\';
        *o++ = *v;
    }
    *o++ = '"';
    *o = '\0';
    *len = (size_t)(o - sw->json);
    return true;
}

void ts_station_windows_flush(struct ts_station_windows *sw, ts_station_publish_fn publish,
                              void *ctx)
{
    if (!sw->json) {
        sw->json_cap = 4096;
        if (!(sw->json = malloc(sw->json_cap)))
            return;
    }
    for (size_t i = 0; i < sw->n_stations; i++) {
        struct station *s = &sw->stations[i];
        if (!s->dirty || !s->n_rows)
            continue;
        s->dirty = false;
        const struct ts_window_row *first = &s->rows[0];
        size_t len = 0;
        bool ok = put(sw, &len,
                      "{\"station_id\":\"%s\",\"window_start_ms\":%" PRId64
                      ",\"window_end_ms\":%" PRId64 ",\"date\":\"%s\",\"time\":\"%s\","
                      "\"turnstiles\":[",
                      s->id, first->window_start_ms, first->window_end_ms, first->date,
                      first->time);
        for (size_t k = 0; ok && k < s->n_rows; k++) {
            const struct ts_window_row *r = &s->rows[k];
            ok = put(sw, &len, "%s{", k ? "," : "") && put_str(sw, &len, "ca", r->ca) &&
                 put(sw, &len, ",") && put_str(sw, &len, "unit", r->unit) &&
                 put(sw, &len, ",") && put_str(sw, &len, "scp", r->scp) &&
                 put(sw, &len, ",") && put_str(sw, &len, "station", r->station) &&
                 put(sw, &len, ",") && put_str(sw, &len, "linename", r->linename) &&
                 put(sw, &len, ",") && put_str(sw, &len, "division", r->division) &&
                 put(sw, &len, ",") && put_str(sw, &len, "desc", r->desc) &&
                 put(sw, &len, ",\"entries\":%" PRIu64 ",\"exits\":%" PRIu64 "}", r->entries,
                     r->exits);
        }
        if (!ok || !put(sw, &len, "]}"))
            continue;
        char topic[TS_ID_MAX + 32];
        (void)ts_topic_station(topic, sizeof topic, s->id, TS_TOPIC_WINDOW);
        publish(topic, sw->json, len, ctx);
    }
}
