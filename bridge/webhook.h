/* SPDX-License-Identifier: Apache-2.0 */
/* webhook.h - readings POSTed by other systems, into the relay's producer
 * (docs/bridge.md, "Webhooks").
 *
 * POST /v1/readings on the [http] listener (http_listener.h), with
 * "Authorization: Bearer <token>" of one [webhook_source NAME] (compared in
 * constant time with every source's; none matches: 401), or, without that
 * header, a client certificate (TLS, verified by [http] tls_client_ca_file)
 * whose CN is a source's cert_cn (none: 401). The body is one
 * reading per line in the reading format (docs/reading-format.md; the
 * 18-field line an agent publishes; Content-Type text/csv, text/plain or
 * none), or JSON (application/json): {"readings": ["<line>", ...]} or a
 * bare array of lines. Each reading is judged by ts_verdict_judge as if the
 * source had published it on turnstile/v1/<station>/<NAME>/readings, and
 * handed to the relay (ts_relay_produce): readings to the readings topic,
 * refusals to the dead-letter topic with their reason, exactly as the
 * relay's own. The answer waits until Kafka confirmed every one:
 *   200  every reading is in Kafka;
 *   422  some were refused (their index and reason in the answer), the
 *        others are in Kafka;
 *   400  the body is not readings (bad JSON, no reading): nothing taken;
 *   401  no or a wrong token, no or a wrong certificate; 413 body or readings beyond the bounds;
 *   415  another Content-Type;
 *   503  too many requests at once, the producer queue full, Kafka did not
 *        confirm within request_timeout_ms, or the bridge stops: send the
 *        same readings again; the aggregator counts each ID once.
 * Answers are JSON: {"accepted":N,"refused":N,"errors":[{"index":I,
 * "reason":"..."}...]} (at most 20 errors listed) or {"error":"..."}.
 *
 * Threads: the route's callbacks run on the listener's thread and never
 * wait: a request whose readings are in librdkafka's queue is suspended
 * (http_listener.h) and answered by the relay's delivery thread (the last
 * report), by the webhook's timer thread (request_timeout_ms) or by
 * ts_webhook_stop. At most [webhook] max_requests are past begin at once. */
#ifndef TS_WEBHOOK_H
#define TS_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "bridge_config.h"
#include "http_listener.h"
#include "relay.h"

#define TS_WEBHOOK_PATH "/v1/readings"

struct ts_webhook_stats {
    uint64_t requests;        /* requests that passed authentication */
    uint64_t unauthorized;    /* 401 */
    uint64_t refused;         /* 400, 413, 415: the body was not taken */
    uint64_t busy;            /* 503: too many at once, queue full, stopping */
    uint64_t timeouts;        /* 503: Kafka did not confirm in time */
    uint64_t readings;        /* readings confirmed by Kafka */
    uint64_t invalid;         /* readings refused (dead letters) */
};

struct ts_webhook;

/* Creates the webhook of cfg ([webhook], [webhook_source]) over relay (lent:
 * it must outlive every request, see ts_webhook_free). Reads every
 * source's token (token_file or token_env). TS_OK; TS_ECONFIG (a token that
 * cannot be read or is not 16..256 printable characters), TS_ENOMEM, with a
 * sentence in why. */
int ts_webhook_new(const struct ts_bridge_cfg *cfg, struct ts_relay *relay,
                   struct ts_webhook **out, char *why, size_t why_size);

/* The POST route to hand to ts_http_set_post (owned by w). */
const struct ts_http_post *ts_webhook_route(struct ts_webhook *w);

void ts_webhook_stats(struct ts_webhook *w, struct ts_webhook_stats *st);

/* Prometheus text of the webhook's counters, per source (malloc'ed into
 * *text, *len bytes). TS_OK or TS_ENOMEM. */
int ts_webhook_metrics(struct ts_webhook *w, char **text, size_t *len);

/* The retained documents a source would publish if it were an agent
 * (docs/bridge.md, "A webhook source as a controller"), for every source that made an
 * authorized request since the bridge started: put_doc(ctx, topic, json)
 * with turnstile/v1/<station>/<NAME>/status ("online" while its last
 * request is at most [webhook] online_s before now_ms, wall ms; else
 * "offline", reason "idle") and .../state (its figures). Lent strings.
 * Returns the first put_doc failure, TS_OK if none. */
int ts_webhook_source_docs(struct ts_webhook *w, int64_t now_ms,
                           int (*put_doc)(void *ctx, const char *topic, const char *json),
                           void *ctx);

/* Stops taking requests: the waiting ones are answered 503 at once, new ones
 * 503. Call it before the listener stops (it waits for its handlers). */
void ts_webhook_stop(struct ts_webhook *w);

/* Frees; call it after the listener and the relay are freed (their last
 * callbacks refer to w). NULL-safe. */
void ts_webhook_free(struct ts_webhook *w);

#endif
