/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.h - what the bridge tells Prometheus: /metrics (the text
 * exposition format 0.0.4) and /healthz, over the [http] listener
 * (http_listener.h). docs/monitoring.md lists every metric and the rules of
 * /healthz.
 *
 * The main loop hands over a snapshot of the figures it already keeps
 * (ts_metrics_update: the stats of the relay, aggregator and acknowledger,
 * as for the status report); a scrape renders the newest snapshot under a
 * lock on the listener's thread, so nothing is added to the readings' path.
 * /healthz is 200 "ok" while the roles the bridge runs make progress, else
 * 503 with the reasons, one a line:
 *   - no snapshot for 3 * TS_METRICS_REFRESH_MS + 5 s (the main loop is stuck);
 *   - relay: not connected to MQTT; the producer's fatal error; readings
 *     wait for Kafka and none was confirmed for [http] stall_s;
 *   - aggregate: no partition assigned; a partition's checkpoints fail; a
 *     partition with records to read has not moved for stall_s; the
 *     acknowledger is not connected to MQTT. */
#ifndef TS_METRICS_H
#define TS_METRICS_H

#include "bridge_config.h"
#include "status_report.h"

#define TS_METRICS_REFRESH_MS 1000 /* the main loop's snapshots, at most this far apart */

struct ts_metrics;

/* Starts the listener of cfg->http (cfg and role lent; they must outlive
 * the metrics; listen "": no listener, for tests). TS_OK; TS_ECONFIG, TS_ESYS, TS_ENOMEM with a sentence in why. */
int ts_metrics_new(const struct ts_bridge_cfg *cfg, const char *role, struct ts_metrics **out,
                   char *why, size_t why_size);

/* Takes a copy of r's figures (the pointers in r are only read during the
 * call). Main thread. */
void ts_metrics_update(struct ts_metrics *m, const struct ts_status_report *r);

/* The problems of the status report (status_report.h; "" when none), as
 * the main loop last found them: turnstile_bridge_status_degraded. */
void ts_metrics_set_problems(struct ts_metrics *m, const char *problems);

/* The texts the listener serves (malloc'ed, the caller frees; NULL: out of
 * memory); return the HTTP status. For tests and the handlers. */
int ts_metrics_render(struct ts_metrics *m, char **body, size_t *len);
int ts_metrics_health(struct ts_metrics *m, char **body, size_t *len);

/* Stops the listener and frees; NULL-safe. */
void ts_metrics_free(struct ts_metrics *m);

/* The listener, for another route (the webhook's POST); NULL without one. */
struct ts_http *ts_metrics_http(struct ts_metrics *m);

/* Text appended to every /metrics: fn(ctx, ...) returns TS_OK with a malloc'ed
 * text (freed here) or an error; runs on the listener's threads. fn and ctx
 * must outlive the metrics (or be cleared with NULL first). */
void ts_metrics_set_extra(struct ts_metrics *m, int (*fn)(void *ctx, char **text, size_t *len),
                          void *ctx);

#endif
