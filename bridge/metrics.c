/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.c - /metrics and /healthz from the main loop's snapshots (see metrics.h).
 *
 * m->lock guards the snapshot and the progress marks; the main thread writes
 * them (ts_metrics_update), the listener's thread reads them (render,
 * health). Progress marks: when the relay's confirmed count last moved (or
 * its queue was empty), and per partition when its offset last moved (or it
 * had nothing to read). */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_status.h"
#include "err.h"
#include "http_listener.h"
#include "log.h"
#include "now.h"
#include "retention.h"
#include "strbuf.h"

#define MAX_PARTS 4096 /* partitions shown (as the status) */

struct part_mark {
    int32_t partition;
    int64_t offset;
    int64_t since_ms;         /* mono: offset unchanged (with records to read) since */
};

struct ts_metrics {
    const struct ts_bridge_cfg *cfg;
    const char *role;
    struct ts_http *http;
    struct ts_agent_status *agents; /* NULL: [http] agents = false */
    int (*extra)(void *ctx, char **text, size_t *len); /* guarded by lock: the webhook's */
    void *extra_ctx;
    pthread_mutex_t lock;
    /* guarded by lock: */
    bool set;
    int64_t taken_ms;         /* mono, of the snapshot */
    bool has_relay, has_agg, has_ack;
    struct ts_relay_stats relay;
    struct ts_aggregator_stats agg;
    struct ts_ack_stats ack;
    struct ts_aggregator_partition *parts;
    size_t n_parts;
    struct part_mark *marks;  /* as parts, same order */
    struct part_mark *old;    /* scratch: the marks of the previous snapshot */
    bool degraded;            /* the status report has problems */
    uint64_t relay_delivered;
    int64_t relay_since_ms;   /* mono: delivered unchanged with readings queued since */
};

/* --- text building -------------------------------------------------------- */

/* put: ts_strbuf_printf, short for the long lines below */
#define put ts_strbuf_printf

/* The body handed to the HTTP listener, or 500 when the text failed. */
static int finish(struct ts_strbuf *b, int status, char **body, size_t *len)
{
    return ts_strbuf_take(b, body, len) == TS_OK ? status : 500;
}

/* # HELP and # TYPE of a family */
static void family(struct ts_strbuf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void u64(struct ts_strbuf *b, const char *name, const char *type, const char *help,
                uint64_t v)
{
    family(b, name, type, help);
    put(b, "%s %" PRIu64 "\n", name, v);
}

static void secs(struct ts_strbuf *b, const char *name, const char *help, int64_t ms)
{
    family(b, name, "gauge", help);
    put(b, "%s %.3f\n", name, (double)ms / 1000.0);
}

/* --- the snapshot ------------------------------------------------------- */

void ts_metrics_update(struct ts_metrics *m, const struct ts_status_report *r)
{
    int64_t now = ts_mono_ms();
    size_t n = r->agg ? r->n_parts : 0;
    if (n > MAX_PARTS)
        n = MAX_PARTS;
    pthread_mutex_lock(&m->lock);
    m->has_relay = r->relay != NULL;
    m->has_agg = r->agg != NULL;
    m->has_ack = r->ack != NULL;
    if (r->relay) {
        if (!m->set || r->relay->delivered != m->relay_delivered || r->relay->queued == 0)
            m->relay_since_ms = now;
        m->relay = *r->relay;
        m->relay_delivered = r->relay->delivered;
    }
    if (r->agg)
        m->agg = *r->agg;
    if (r->ack)
        m->ack = *r->ack;
    /* the progress marks: both lists ascending by partition */
    struct part_mark *old = m->marks;
    size_t n_old = m->n_parts, j = 0;
    m->marks = m->old;
    m->old = old;
    for (size_t i = 0; i < n; i++) {
        const struct ts_aggregator_partition *p = &r->parts[i];
        while (j < n_old && old[j].partition < p->partition)
            j++;
        bool known = j < n_old && old[j].partition == p->partition;
        bool waiting = p->high_offset >= 0 && p->next_offset >= 0 &&
                       p->high_offset > p->next_offset;
        int64_t since = known && waiting && old[j].offset == p->next_offset ? old[j].since_ms
                                                                             : now;
        m->parts[i] = *p;
        m->marks[i] = (struct part_mark){p->partition, p->next_offset, since};
    }
    m->n_parts = n;
    m->taken_ms = now;
    m->set = true;
    pthread_mutex_unlock(&m->lock);
}

void ts_metrics_set_problems(struct ts_metrics *m, const char *problems)
{
    pthread_mutex_lock(&m->lock);
    m->degraded = problems[0] != 0;
    pthread_mutex_unlock(&m->lock);
}

/* --- /healthz ------------------------------------------------------------- */

/* lock held */
static void problems(struct ts_metrics *m, struct ts_strbuf *b, int64_t now)
{
    int64_t stall = (int64_t)m->cfg->http.stall_s * 1000;
    if (!m->set || now - m->taken_ms > 3 * TS_METRICS_REFRESH_MS + 5000) {
        put(b, "the main loop has not reported for %" PRId64 " s\n",
            m->set ? (now - m->taken_ms) / 1000 : 0);
        return;
    }
    if (m->has_relay) {
        if (m->relay.fatal)
            put(b, "relay: the Kafka producer had a fatal error\n");
        if (!m->relay.connected)
            put(b, "relay: not connected to the MQTT broker\n");
        if (m->relay.queued && now - m->relay_since_ms >= stall)
            put(b, "relay: Kafka has confirmed nothing for %" PRId64 " s while %zu readings "
                "wait\n", (now - m->relay_since_ms) / 1000, m->relay.queued);
    }
    if (m->has_agg) {
        if (!m->n_parts)
            put(b, "aggregate: no partition of the readings topic is assigned to this bridge\n");
        for (size_t i = 0; i < m->n_parts; i++) {
            const struct ts_aggregator_partition *p = &m->parts[i];
            if (p->failures_in_row)
                put(b, "partition %" PRId32 ": %" PRIu64 " checkpoint(s) failed in a row (%s)\n",
                    p->partition, p->failures_in_row, p->last_error);
            if (now - m->marks[i].since_ms >= stall)
                put(b, "partition %" PRId32 ": %" PRId64 " records to read and nothing taken "
                    "for %" PRId64 " s\n", p->partition, p->high_offset - p->next_offset,
                    (now - m->marks[i].since_ms) / 1000);
        }
    }
    if (m->has_ack && !m->ack.connected)
        put(b, "acks: not connected to the MQTT broker\n");
}

int ts_metrics_health(struct ts_metrics *m, char **body, size_t *len)
{
    struct ts_strbuf b = {0};
    pthread_mutex_lock(&m->lock);
    problems(m, &b, ts_mono_ms());
    pthread_mutex_unlock(&m->lock);
    if (!b.err && b.len)
        return finish(&b, 503, body, len);
    put(&b, "ok\n");
    return finish(&b, 200, body, len);
}

/* --- /metrics ------------------------------------------------------------- */

#define P "turnstile_bridge_"

/* lock held */
static void render_relay(struct ts_metrics *m, struct ts_strbuf *b, int64_t now)
{
    const struct ts_relay_stats *s = &m->relay;
    u64(b, P "relay_connected", "gauge", "1 while the relay's MQTT session is up", s->connected);
    u64(b, P "relay_received_total", "counter", "MQTT messages the relay took", s->received);
    u64(b, P "relay_produced_total", "counter", "valid readings handed to the Kafka producer",
        s->produced);
    u64(b, P "relay_delivered_total", "counter", "readings Kafka confirmed (acks=all)",
        s->delivered);
    u64(b, P "relay_markers_total", "counter",
        "markers produced for readings refused by policy", s->markers);
    u64(b, P "relay_delivery_errors_total", "counter", "delivery reports with an error",
        s->delivery_errors);
    u64(b, P "relay_backpressure_waits_total", "counter",
        "times the producer queue was full and the relay stopped taking from MQTT",
        s->backpressure_waits);
    u64(b, P "relay_connects_total", "counter", "MQTT sessions the relay made", s->connects);
    u64(b, P "relay_queued", "gauge", "messages waiting in the producer queue", s->queued);
    secs(b, P "relay_stalled_seconds",
         "how long readings have waited with nothing confirmed by Kafka (0: not stalled)",
         s->queued ? now - m->relay_since_ms : 0);
    u64(b, P "relay_fatal", "gauge", "1 after the producer's fatal error", s->fatal);
}

static void dead_letters(struct ts_metrics *m, struct ts_strbuf *b)
{
    family(b, P "dead_letters_total", "counter",
           "messages sent to the dead-letter topic, by where and why they were refused "
           "(malformed: not a reading of its topic; policy: the agent's own reading refused, "
           "e.g. out of the event-time bounds; refused: judged again by the aggregator)");
    if (m->has_relay) {
        put(b, P "dead_letters_total{stage=\"relay\",reason=\"malformed\"} %" PRIu64 "\n",
            m->relay.dead_letters - m->relay.dead_letters_policy);
        put(b, P "dead_letters_total{stage=\"relay\",reason=\"policy\"} %" PRIu64 "\n",
            m->relay.dead_letters_policy);
    }
    if (m->has_agg)
        put(b, P "dead_letters_total{stage=\"aggregate\",reason=\"refused\"} %" PRIu64 "\n",
            m->agg.invalid);
}

/* lock held */
static void render_agg(struct ts_metrics *m, struct ts_strbuf *b, int64_t now)
{
    const struct ts_aggregator_stats *s = &m->agg;
    u64(b, P "consumed_total", "counter", "Kafka records the aggregator took", s->consumed);
    u64(b, P "readings_total", "counter", "new readings added to the windows", s->readings);
    u64(b, P "duplicates_total", "counter", "readings dropped: their number was seen before",
        s->duplicates);
    u64(b, P "passed_total", "counter", "markers taken: numbers passed by the ack, not counted",
        s->passed);
    u64(b, P "held_total", "counter", "records skipped because an agent's set was full",
        s->held);
    u64(b, P "rows_total", "counter", "rows written to the lake (committed or pending)",
        s->rows);
    u64(b, P "late_rows_total", "counter", "of which late rows (after their window was written)",
        s->late_rows);
    u64(b, P "files_total", "counter", "lake data files made visible", s->files);
    u64(b, P "checkpoints_total", "counter", "lake checkpoints committed", s->checkpoints);
    u64(b, P "checkpoint_failures_total", "counter", "lake checkpoints that failed",
        s->commit_failures);
    u64(b, P "conflicts_total", "counter", "partitions taken over by another bridge",
        s->conflicts);
    u64(b, P "consumer_failures_total", "counter", "fatal consumer errors (consumer replaced)",
        s->consumer_failures);
    u64(b, P "records_expired_total", "counter",
        "records Kafka deleted before a checkpoint took them", s->records_expired);
    u64(b, P "records_lost_total", "counter",
        "of which lost (ack_after = kafka): their readings are not in the lake", s->records_lost);
    u64(b, P "numbers_lost_total", "counter", "agents' reading numbers passed in those records",
        s->numbers_lost);
    u64(b, P "partitions", "gauge", "partitions of the readings topic assigned to this bridge",
        s->partitions);
    u64(b, P "agents", "gauge", "agents seen in the assigned partitions, in memory", s->agents);
    u64(b, P "agents_with_gaps", "gauge",
        "of which some reading above the acknowledged one is missing", s->agents_with_gaps);
    u64(b, P "agents_archived", "gauge", "agents in the assigned partitions' archives on disk",
        s->archived);
    u64(b, P "agents_moved_out_total", "counter", "agents moved to an archive", s->moved_out);
    u64(b, P "agents_brought_back_total", "counter", "agents brought back from an archive",
        s->brought_back);
    if (s->watermark_ms != INT64_MIN) {
        family(b, P "watermark_seconds", "gauge",
               "lowest event-time watermark of the assigned partitions, Unix time");
        put(b, P "watermark_seconds %.3f\n", (double)s->watermark_ms / 1000.0);
    }
    u64(b, P "layout_partitions", "gauge", "partitions the agents are spread over (the lake's "
        "layout; 0: unknown)", (uint64_t)(s->layout > 0 ? s->layout : 0));
    u64(b, P "topic_partitions", "gauge", "the readings topic's partitions at the last "
        "assignment", (uint64_t)(s->topic_partitions > 0 ? s->topic_partitions : 0));
    if (s->retention_ms != TS_RETENTION_UNKNOWN && s->retention_ms > 0)
        secs(b, P "topic_retention_seconds", "the readings topic's retention.ms",
             s->retention_ms);

    static const struct {
        const char *name, *type, *help;
    } pf[] = {
        {P "partition_offset", "gauge", "offset after the last record taken (-1: none yet)"},
        {P "partition_high_offset", "gauge", "the partition's end as last fetched (-1: unknown)"},
        {P "partition_lag", "gauge", "records in Kafka not taken yet (high offset - offset)"},
        {P "partition_checkpoint_offset", "gauge", "offset the last checkpoint resumes from"},
        {P "partition_checkpoint_age_seconds", "gauge", "time since the last checkpoint"},
        {P "partition_backlog_age_seconds", "gauge",
         "age of the oldest record taken that no checkpoint holds (0: none)"},
        {P "partition_checkpoint_failures_in_row", "gauge",
         "checkpoints failed since the last that worked"},
        {P "partition_agents", "gauge", "agents in memory"},
        {P "partition_agents_archived", "gauge", "agents in the partition's archive"},
        {P "partition_paused", "gauge", "1 while waiting to retry after a failed checkpoint"},
        {P "partition_stalled_seconds", "gauge",
         "how long records have waited with the offset unchanged (0: not stalled)"},
    };
    for (size_t f = 0; f < sizeof pf / sizeof pf[0]; f++) {
        family(b, pf[f].name, pf[f].type, pf[f].help);
        for (size_t i = 0; i < m->n_parts; i++) {
            const struct ts_aggregator_partition *p = &m->parts[i];
            put(b, "%s{partition=\"%" PRId32 "\"} ", pf[f].name, p->partition);
            switch (f) {
            case 0: put(b, "%" PRId64 "\n", p->next_offset); break;
            case 1: put(b, "%" PRId64 "\n", p->high_offset); break;
            case 2:
                put(b, "%" PRId64 "\n", p->high_offset >= 0 && p->high_offset > p->next_offset
                                            ? p->high_offset - (p->next_offset > 0 ? p->next_offset : 0)
                                            : 0);
                break;
            case 3: put(b, "%" PRId64 "\n", p->checkpoint_offset); break;
            case 4: put(b, "%.3f\n", (double)p->checkpoint_age_ms / 1000.0); break;
            case 5: put(b, "%.3f\n", (double)p->backlog_age_ms / 1000.0); break;
            case 6: put(b, "%" PRIu64 "\n", p->failures_in_row); break;
            case 7: put(b, "%zu\n", p->agents); break;
            case 8: put(b, "%" PRIu64 "\n", p->archived); break;
            case 9: put(b, "%d\n", p->paused ? 1 : 0); break;
            default: put(b, "%.3f\n", (double)(now - m->marks[i].since_ms) / 1000.0); break;
            }
        }
    }
}

/* lock held */
static void render_ack(struct ts_metrics *m, struct ts_strbuf *b)
{
    const struct ts_ack_stats *s = &m->ack;
    u64(b, P "acks_connected", "gauge", "1 while the acknowledger's MQTT session is up",
        s->connected);
    u64(b, P "acks_published_total", "counter", "acknowledgements published to the agents",
        s->published);
    u64(b, P "acks_agents", "gauge", "agents the acknowledger knows", s->agents);
    u64(b, P "acks_pending", "gauge", "agents whose newest acknowledgement is not published yet",
        s->pending);
    u64(b, P "acks_expired_total", "counter", "agents the acknowledger forgot (its bound)",
        s->expired);
}

int ts_metrics_render(struct ts_metrics *m, char **body, size_t *len)
{
    struct ts_strbuf b = {0}, why = {0};
    int64_t now = ts_mono_ms();
    pthread_mutex_lock(&m->lock);
    problems(m, &why, now);
    family(&b, P "info", "gauge", "this bridge: its name, version and role");
    put(&b, P "info{bridge=\"%s\",version=\"%s\",role=\"%s\"} 1\n", m->cfg->bridge.id,
        TS_VERSION, m->role);
    u64(&b, P "healthy", "gauge", "1 when /healthz says 200", why.len == 0 && !why.err);
    u64(&b, P "status_degraded", "gauge", "1 when the bridge's retained status says degraded "
        "(its problems need an operator: docs/bridge.md)", m->degraded);
    secs(&b, P "snapshot_age_seconds", "age of the figures served (the main loop's snapshot)",
         m->set ? now - m->taken_ms : 0);
    if (m->set) {
        if (m->has_relay)
            render_relay(m, &b, now);
        if (m->has_relay || m->has_agg)
            dead_letters(m, &b);
        if (m->has_agg)
            render_agg(m, &b, now);
        if (m->has_ack)
            render_ack(m, &b);
    }
    int (*extra_fn)(void *, char **, size_t *) = m->extra;
    void *extra_ctx = m->extra_ctx;
    pthread_mutex_unlock(&m->lock);
    ts_strbuf_free(&why);
    if (m->agents)
        ts_agent_status_render(m->agents, &b);
    char *extra = NULL;
    size_t extra_len = 0;
    if (extra_fn && extra_fn(extra_ctx, &extra, &extra_len) != TS_OK && b.err == TS_OK)
        b.err = TS_ENOMEM;
    if (extra)
        put(&b, "%.*s", (int)extra_len, extra);
    free(extra);
    return finish(&b, 200, body, len);
}

/* --- life ------------------------------------------------------------------ */

static int on_metrics(void *ctx, char **body, size_t *len)
{
    return ts_metrics_render(ctx, body, len);
}

static int on_health(void *ctx, char **body, size_t *len)
{
    return ts_metrics_health(ctx, body, len);
}

static const struct ts_http_route routes[] = {
    {"/metrics", "text/plain; version=0.0.4; charset=utf-8", on_metrics},
    {"/healthz", "text/plain; charset=utf-8", on_health},
};

int ts_metrics_new(const struct ts_bridge_cfg *cfg, const char *role, struct ts_metrics **out,
                   char *why, size_t why_size)
{
    *out = NULL;
    struct ts_metrics *m = calloc(1, sizeof *m);
    if (m) {
        m->parts = calloc(MAX_PARTS, sizeof *m->parts);
        m->marks = calloc(MAX_PARTS, sizeof *m->marks);
        m->old = calloc(MAX_PARTS, sizeof *m->old);
    }
    if (!m || !m->parts || !m->marks || !m->old) {
        if (m) {
            free(m->parts);
            free(m->marks);
            free(m->old);
        }
        free(m);
        return ts_fail(why, why_size, TS_ENOMEM, "%s", "metrics: out of memory");
    }
    m->cfg = cfg;
    m->role = role;
    pthread_mutex_init(&m->lock, NULL);
    int rc = TS_OK;
    if (cfg->http.agents)
        rc = ts_agent_status_new(&cfg->mqtt, cfg->bridge.id, cfg->http.max_agents, &m->agents,
                                 why, why_size);
    if (rc != TS_OK) {
        ts_metrics_free(m);
        return rc;
    }
    if (!cfg->http.listen[0]) { /* tests: no listener */
        *out = m;
        return TS_OK;
    }
    rc = ts_http_new(&cfg->http, routes, sizeof routes / sizeof routes[0], m, &m->http, why,
                     why_size);
    if (rc != TS_OK) {
        ts_metrics_free(m);
        return rc;
    }
    TS_LOG(TS_LOG_NOTICE, "http: serving /metrics and /healthz on %s", cfg->http.listen);
    *out = m;
    return TS_OK;
}

struct ts_http *ts_metrics_http(struct ts_metrics *m) { return m->http; }

void ts_metrics_set_extra(struct ts_metrics *m, int (*fn)(void *ctx, char **text, size_t *len),
                          void *ctx)
{
    pthread_mutex_lock(&m->lock);
    m->extra = fn;
    m->extra_ctx = ctx;
    pthread_mutex_unlock(&m->lock);
}

void ts_metrics_free(struct ts_metrics *m)
{
    if (!m)
        return;
    ts_http_free(m->http);
    ts_agent_status_free(m->agents);
    pthread_mutex_destroy(&m->lock);
    free(m->parts);
    free(m->marks);
    free(m->old);
    free(m);
}
