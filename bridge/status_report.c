/* SPDX-License-Identifier: Apache-2.0 */
/* status_report.c - the bridge's status document and its problems (see status_report.h). */
#include "status_report.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "retention.h"
#include "strbuf.h"

/* put: ts_strbuf_printf, short for the long lines below */
#define put ts_strbuf_printf

/* A JSON string of text that holds only printable ASCII but may hold '"'
 * or '\\' (error messages). */
static void put_str(struct ts_strbuf *b, const char *v)
{
    put(b, "\"");
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (c == '"' || c == '\\')
            put(b, "\\%c", c);
        else
            put(b, "%c", c >= 0x20 && c < 0x7f ? c : '?');
    }
    put(b, "\"");
}

/* The problems, one sentence each. */
struct problems {
    struct ts_strbuf text;          /* joined by "; " for the log and systemd */
    struct ts_strbuf json;          /* a JSON array's items */
    unsigned n;
};

static void problem(struct problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct problems *p, const char *fmt, ...)
{
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    put(&p->text, "%s%s", p->n ? "; " : "", line);
    if (p->n)
        put(&p->json, ",");
    put_str(&p->json, line);
    p->n++;
}

static void find_problems(const struct ts_status_report *r, struct problems *pr)
{
    if (r->relay && r->relay->fatal)
        problem(pr, "relay: the Kafka producer had a fatal error: restart the bridge");
    if (r->relay && r->relay->layout && r->relay->topic_partitions &&
        r->relay->layout != r->relay->topic_partitions)
        problem(pr, "relay: the readings topic has %" PRId32 " partitions, the layout %" PRId32
                " (docs/bridge.md, Adding partitions)", r->relay->topic_partitions,
                r->relay->layout);
    if (!r->agg)
        return;
    if (r->agg->layout && r->agg->topic_partitions && r->agg->layout != r->agg->topic_partitions)
        problem(pr, "aggregate: the readings topic has %" PRId32 " partitions, the lake's layout %"
                PRId32 " (docs/bridge.md, Adding partitions)", r->agg->topic_partitions,
                r->agg->layout);
    if (r->agg->records_lost)
        problem(pr, "aggregate: %" PRIu64 " record(s) were deleted by Kafka before the lake took "
                "them: their readings are lost (ack_after = kafka; docs/bridge.md, Retention)",
                r->agg->records_lost);
    int64_t keep = r->agg->retention_ms;
    for (size_t i = 0; i < r->n_parts; i++) {
        const struct ts_aggregator_partition *p = &r->parts[i];
        if (p->failures_in_row)
            problem(pr, "partition %" PRId32 ": %" PRIu64 " checkpoint(s) failed in a row for %"
                    PRId64 " s (%s); nothing since offset %" PRId64 " is in the lake",
                    p->partition, p->failures_in_row, p->failing_ms / 1000, p->last_error,
                    p->checkpoint_offset);
        if (keep > 0 && p->backlog_age_ms >= keep / 2)
            problem(pr, "partition %" PRId32 ": its oldest record not in the lake is %" PRId64
                    " s old, %" PRId64 "%% of the topic's retention", p->partition,
                    p->backlog_age_ms / 1000, p->backlog_age_ms * 100 / keep);
    }
}

char *ts_status_report_json(const struct ts_status_report *r, char *problems, size_t size)
{
    struct ts_strbuf b = {0};
    struct problems pr = {0};

    find_problems(r, &pr);
    put(&b, "{\"state\":\"online\",\"bridge\":");
    put_str(&b, r->bridge_id);
    put(&b, ",\"version\":\"%s\",\"role\":\"%s\",\"health\":\"%s\",\"problems\":[%s]", TS_VERSION,
        r->role, pr.n ? "degraded" : "ok", pr.json.s ? pr.json.s : "");
    if (r->relay) {
        const struct ts_relay_stats *s = r->relay;
        put(&b, ",\"relay\":{\"connected\":%s,\"received\":%" PRIu64 ",\"in_kafka\":%" PRIu64
            ",\"dead_letters\":%" PRIu64 ",\"markers\":%" PRIu64 ",\"queued\":%zu,\"layout\":%"
            PRId32 ",\"topic_partitions\":%" PRId32 "}", s->connected ? "true" : "false",
            s->received, s->delivered, s->dead_letters, s->markers, s->queued, s->layout,
            s->topic_partitions);
    }
    if (r->agg) {
        const struct ts_aggregator_stats *s = r->agg;
        put(&b, ",\"aggregate\":{\"readings\":%" PRIu64 ",\"duplicates\":%" PRIu64
            ",\"dead_lettered\":%" PRIu64 ",\"passed\":%" PRIu64 ",\"records_expired\":%" PRIu64
            ",\"records_lost\":%" PRIu64 ",\"numbers_lost\":%" PRIu64
            ",\"agents\":%" PRIu64 ",\"archived\":%" PRIu64 ",\"layout\":%" PRId32
            ",\"topic_partitions\":%" PRId32 ",\"consumer_failures\":%" PRIu64
            ",\"checkpoint_failures\":%" PRIu64 ",\"retention_s\":", s->readings,
            s->duplicates, s->invalid, s->passed, s->records_expired, s->records_lost,
            s->numbers_lost, s->agents, s->archived, s->layout, s->topic_partitions,
            s->consumer_failures, s->commit_failures);
        if (s->retention_ms == TS_RETENTION_UNKNOWN)
            put(&b, "null");
        else
            put(&b, "%" PRId64, s->retention_ms < 0 ? -1 : s->retention_ms / 1000);
        put(&b, ",\"partitions\":[");
        for (size_t i = 0; i < r->n_parts; i++) {
            const struct ts_aggregator_partition *p = &r->parts[i];
            put(&b, "%s{\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"checkpoint_offset\":%"
                PRId64 ",\"checkpoint_age_s\":%" PRId64 ",\"backlog_age_s\":%" PRId64
                ",\"failures_in_row\":%" PRIu64 ",\"failing_s\":%" PRId64 ",\"last_error\":",
                i ? "," : "", p->partition, p->next_offset, p->checkpoint_offset,
                p->checkpoint_age_ms / 1000, p->backlog_age_ms / 1000, p->failures_in_row,
                p->failing_ms / 1000);
            put_str(&b, p->last_error);
            put(&b, ",\"agents\":%zu,\"archived\":%" PRIu64 ",\"paused\":%s}", p->agents,
                p->archived, p->paused ? "true" : "false");
        }
        put(&b, "]}");
    }
    if (r->ack)
        put(&b, ",\"acks\":{\"connected\":%s,\"agents\":%" PRIu64 ",\"published\":%" PRIu64 "}",
            r->ack->connected ? "true" : "false", r->ack->agents, r->ack->published);
    put(&b, "}");
    snprintf(problems, size, "%s", pr.text.s ? pr.text.s : "");
    ts_strbuf_free(&pr.text);
    ts_strbuf_free(&pr.json);
    char *json;
    size_t len;
    return ts_strbuf_take(&b, &json, &len) == TS_OK ? json : NULL;
}
