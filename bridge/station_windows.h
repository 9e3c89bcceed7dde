/* SPDX-License-Identifier: Apache-2.0 */
/* station_windows.h - each station's latest closed window, for dashboards.
 *
 * The aggregator's rows name a turnstile (CA, UNIT, SCP ...) but not the
 * station controller it came from; readings arrive on
 * turnstile/v1/<station_id>/<agent_id>/readings. This module learns, from
 * the readings, which station_id each turnstile belongs to, keeps for every
 * station the on-time rows of its newest closed window, and hands each
 * station that got a newer window a JSON summary to publish, retained, on
 * turnstile/v1/<station_id>/window (docs/dashboard.md):
 *
 *   {"station_id":"R051","window_start_ms":1685160000000,
 *    "window_end_ms":1685160300000,"date":"05/27/2023","time":"00:05:00",
 *    "turnstiles":[{"ca":"A002","unit":"R051","scp":"02-00-00",
 *      "station":"59 ST","linename":"NQR456W","division":"BMT",
 *      "desc":"REGULAR","entries":12,"exits":8}, ...]}
 *
 * Rows of a window older than the one held are ignored, late rows too (the
 * lake has them; a dashboard shows the newest window). Memory: one entry per
 * turnstile (52 bytes, up to 104 with the array's slack, and 32 to 64 bytes
 * of common/hashtab index), plus the rows of
 * one window per station (about 230 bytes a row), bounded: a turnstile or a
 * station beyond the limits (ts_station_windows_set_limits) makes the module
 * forget everything it learnt (and give back its memory), and learn it again
 * from the next readings; rows beyond max_turnstiles in all are left out of
 * the summaries (which are best effort). At the default limits: at most
 * about 6 MiB of table and 15 MiB of rows.
 *
 * Not thread-safe: it belongs to the aggregator's thread. */
#ifndef TS_STATION_WINDOWS_H
#define TS_STATION_WINDOWS_H

#include <stddef.h>

#include "reading.h"
#include "window.h"

struct ts_station_windows;

#define TS_STATION_WINDOWS_MAX_TURNSTILES (1u << 16)  /* default limits (NYC: 5,043) */
#define TS_STATION_WINDOWS_MAX_STATIONS 4096

typedef void (*ts_station_publish_fn)(const char *topic, const char *json, size_t len, void *ctx);

int ts_station_windows_new(struct ts_station_windows **out);
void ts_station_windows_free(struct ts_station_windows *sw);

/* The bounds on turnstiles and stations remembered (>= 1; a station lookup
 * is a scan: keep max_stations to thousands). Forgets what was learnt: call
 * it before the first reading. */
void ts_station_windows_set_limits(struct ts_station_windows *sw, size_t max_turnstiles,
                                   size_t max_stations);

/* How many times the bounds made it forget everything. */
uint64_t ts_station_windows_resets(const struct ts_station_windows *sw);

/* Notes that r's turnstile belongs to station_id (a ts_id_ok id). Cheap
 * when already known. TS_OK, TS_EINVAL, TS_ENOMEM. */
int ts_station_windows_learn(struct ts_station_windows *sw, const struct ts_reading *r,
                             const char *station_id);

/* Takes one row the windows emitted (late rows and rows of unknown
 * turnstiles are ignored). */
void ts_station_windows_row(struct ts_station_windows *sw, const struct ts_window_row *row);

/* Calls publish for every station whose window changed since the last
 * call (JSON above; topic and json are lent for the call). */
void ts_station_windows_flush(struct ts_station_windows *sw, ts_station_publish_fn publish,
                              void *ctx);

#endif
