/* SPDX-License-Identifier: Apache-2.0 */
/* window.h - event-time windowed aggregation of readings (pure logic, no I/O).
 *
 * Replaces the reference Spark Structured Streaming job
 *   withWatermark("TIMESTAMP", "5 minutes")
 *   .groupBy(window("TIMESTAMP", size, slide), "A/C","UNIT","SCP","LINENAME",
 *            "DIVISION","STATION","DATE","DESC")
 *   .agg(sum ENTRIES, sum EXITS)
 * with one difference that matters: late data is never dropped. A reading
 * whose window was already closed goes out as an additional row for the same
 * (key, window), marked late, at the next ts_window_advance, so that sums over
 * every row ever emitted equal the sums of the input, exactly.
 *
 * In short (docs/windows.md has the precise rules):
 * - Windows are half-open [start, start + size) in UTC epoch milliseconds,
 *   start = k * slide (aligned to the epoch, as Spark's window()). Tumbling
 *   when slide is 0 (slide = size). A reading at time t belongs to every
 *   window with start <= t < start + size.
 * - Group key: CA, UNIT, SCP, STATION, LINENAME, DIVISION, DESC, the reading's
 *   station-local DATE (from its time and utc_offset_s), window start.
 * - Watermark: the highest reading time added minus lateness_ms. One
 *   aggregator has one watermark (see docs/windows.md for per-partition use).
 * - ts_window_advance closes, in window-end order: windows whose end <= the
 *   watermark; windows idle for idle_ms of processing time while the
 *   watermark was not moving either; and, past max_open open groups, the
 *   oldest windows (memory bound). Then it emits the pending late rows.
 * - A window once closed stays closed (a frontier plus a short sorted list of
 *   windows closed ahead of it); this record is part of the encoded state.
 *
 * Not thread-safe: one aggregator belongs to one thread. */
#ifndef TS_WINDOW_H
#define TS_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reading.h"

#define TS_WINDOW_LATENESS_DEFAULT (-1) /* lateness_ms: one window (size_ms) */
#define TS_WINDOW_MAX_PER_READING 256   /* bound on ceil(size / slide) */
#define TS_WINDOW_TIME_MAX 253370764799999LL /* reading times: 0 .. 9998-12-31T23:59:59.999Z */
#define TS_WINDOW_OFFSET_MAX (18 * 3600)     /* |utc_offset_s| bound (ISO 8601) */

struct ts_window_cfg {
    int64_t size_ms;     /* window length: 1 s .. 7 days, a multiple of 1000 */
    int64_t slide_ms;    /* 0 = tumbling; else 0 < slide <= size, multiple of 1000 */
    int64_t lateness_ms; /* watermark = max event time - lateness; 0 .. 30 days,
                            or TS_WINDOW_LATENESS_DEFAULT for size_ms */
    int64_t idle_ms;     /* processing-time fallback, 0 = off: a window still
                            open is closed once idle_ms passed since both its
                            last update and the last rise of the max event time */
    size_t max_open;     /* memory bound in open groups (rows held), 0 = none:
                            past it, advance closes the oldest windows early */
};

/* One output row. Lent to the callback for the duration of the call. */
struct ts_window_row {
    char ca[16], unit[16], scp[16], station[64], linename[32], division[16];
    char desc[16];
    char date[11];            /* MM/DD/YYYY: the group's station-local date */
    char time[9];             /* HH:MM:SS: station-local time of the window end */
    int64_t window_start_ms;  /* UTC epoch ms; the window is [start, end) */
    int64_t window_end_ms;
    int32_t utc_offset_s;     /* offset used for TIME (the group's first reading's) */
    uint64_t entries, exits;  /* sums */
    bool late;                /* readings that arrived after the window closed */
};

typedef void (*ts_window_emit_fn)(const struct ts_window_row *row, void *ctx);

struct ts_window_stats {
    size_t open_windows;      /* distinct open window starts */
    size_t open_groups;       /* (key, window) groups held in open windows */
    size_t late_groups;       /* late groups waiting for the next advance */
    uint64_t readings;        /* readings added */
    uint64_t late_readings;   /* (reading, window) pairs that went to a late group */
    uint64_t rows;            /* rows emitted, late ones included */
    uint64_t late_rows;       /* of which late */
    uint64_t closed_watermark, closed_idle, closed_memory, closed_flush; /* windows */
};

struct ts_window_agg; /* opaque */

/* Defaults: 5-minute tumbling windows, lateness one window, idle 10 minutes,
 * max_open 1 Mi groups. */
void ts_window_cfg_default(struct ts_window_cfg *cfg);

/* Checks cfg. TS_OK, or TS_EINVAL with a sentence in why (may be NULL). */
int ts_window_cfg_check(const struct ts_window_cfg *cfg, char *why, size_t why_size);

/* Creates an aggregator (cfg is copied). TS_OK, TS_EINVAL (why filled) or
 * TS_ENOMEM; *out is set only on success. */
int ts_window_new(const struct ts_window_cfg *cfg, struct ts_window_agg **out, char *why,
                  size_t why_size);

/* NULL-safe. Unemitted sums are lost: flush or encode first. */
void ts_window_free(struct ts_window_agg *agg);

/* Adds one reading to every window it belongs to: to the open group of each
 * window still open, to the late group of each window already closed.
 * utc_offset_s is the station's offset from UTC at the reading's time
 * (local = UTC + offset); now_ms is processing time (wall-clock epoch ms;
 * only differences matter). Nothing is emitted here.
 * TS_OK; TS_EINVAL if the time or offset is out of range or an identity
 * field is empty or holds a comma, quote or control character (nothing is
 * added); TS_ENOMEM (nothing is added). */
int ts_window_add(struct ts_window_agg *agg, const struct ts_reading *r, int32_t utc_offset_s,
                  int64_t now_ms);

/* Closes the windows that are due at processing time now_ms and emits their
 * rows in window-end order (within a window, in order of first reading),
 * then every pending late row (in window-end order). Returns the number of
 * rows emitted. Call it after each batch of readings and on a timer while
 * none arrive (the idle fallback and the memory bound act only here). emit
 * may be NULL (rows are dropped); it must not call into the aggregator;
 * emitted rows are gone from the aggregator. */
size_t ts_window_advance(struct ts_window_agg *agg, int64_t now_ms, ts_window_emit_fn emit,
                         void *ctx);

/* Closes every open window (for shutdown and tests; counted in
 * closed_flush) and emits as ts_window_advance does. Readings for those
 * windows added afterwards are late. Returns the number of rows emitted. */
size_t ts_window_flush_all(struct ts_window_agg *agg, ts_window_emit_fn emit, void *ctx);

/* The current watermark, INT64_MIN before the first reading. */
int64_t ts_window_watermark(const struct ts_window_agg *agg);

void ts_window_stats(const struct ts_window_agg *agg, struct ts_window_stats *st);

/* Serialises the state (open groups with their sums, pending late groups,
 * the highest event time, the closed-window record) as text, one record a
 * line, ending in "end\n". *text is malloc'd and the caller's (free()); *len
 * excludes the NUL. TS_OK or TS_ENOMEM. Processing times and stats are not
 * part of the state. */
int ts_window_encode(const struct ts_window_agg *agg, char **text, size_t *len);

/* Restores what ts_window_encode wrote into agg, which must be fresh (no
 * reading added). size_ms and slide must match agg's configuration;
 * lateness, idle_ms and max_open may differ. Processing-time idleness
 * restarts from now_ms (down time is not idleness). TS_OK; TS_EPARSE or
 * TS_EINVAL with a reason naming the line in why (agg is then left empty);
 * TS_ENOMEM. */
int ts_window_decode(struct ts_window_agg *agg, const char *text, size_t len, int64_t now_ms,
                     char *why, size_t why_size);

#endif
