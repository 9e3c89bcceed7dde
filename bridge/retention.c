/* SPDX-License-Identifier: Apache-2.0 */
/* retention.c - the topic's retention.ms from DescribeConfigs (see retention.h). */
#include "retention.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"

#define REQUEST_TIMEOUT_MS 10000
#define RETRY_MS 30000            /* after a failed request */

struct ts_retention {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;      /* answers come here */
    char *topic;
    int64_t interval_ms;
    int64_t ms;               /* the answer */
    int64_t asked_ms;         /* when the request went out */
    int64_t next_ms;          /* when to ask next (INT64_MIN: at once) */
    bool out;                 /* a request is out */
    bool logged;              /* the value was logged once */
};

int ts_retention_new(rd_kafka_t *rk, const char *topic, int64_t interval_ms,
                     struct ts_retention **out)
{
    struct ts_retention *r = calloc(1, sizeof *r);
    if (!r || !(r->topic = strdup(topic)) || !(r->q = rd_kafka_queue_new(rk))) {
        if (r)
            free(r->topic);
        free(r);
        return TS_ENOMEM;
    }
    r->rk = rk;
    r->interval_ms = interval_ms;
    r->ms = TS_RETENTION_UNKNOWN;
    r->next_ms = INT64_MIN;
    *out = r;
    return TS_OK;
}

/* The value of retention.ms in one DescribeConfigs answer; false with a
 * reason when there is none. */
static bool answer_value(rd_kafka_event_t *ev, const char *topic, int64_t *ms, const char **why)
{
    const rd_kafka_DescribeConfigs_result_t *res = rd_kafka_event_DescribeConfigs_result(ev);
    if (!res) {
        *why = "not a DescribeConfigs answer";
        return false;
    }
    if (rd_kafka_event_error(ev)) {
        *why = rd_kafka_event_error_string(ev);
        return false;
    }
    size_t n = 0, nc = 0;
    const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(res, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rd_kafka_ConfigResource_name(rs[i]), topic) != 0)
            continue;
        if (rd_kafka_ConfigResource_error(rs[i])) {
            *why = rd_kafka_ConfigResource_error_string(rs[i]);
            return false;
        }
        const rd_kafka_ConfigEntry_t **cs = rd_kafka_ConfigResource_configs(rs[i], &nc);
        for (size_t k = 0; k < nc; k++) {
            const char *v = rd_kafka_ConfigEntry_value(cs[k]);
            if (strcmp(rd_kafka_ConfigEntry_name(cs[k]), "retention.ms") != 0 || !v)
                continue;
            char *end;
            long long x = strtoll(v, &end, 10);
            if (*end || end == v || x < -1 || x == 0) {
                *why = "retention.ms is not a number";
                return false;
            }
            *ms = x;
            return true;
        }
    }
    *why = "the answer names no retention.ms";
    return false;
}

void ts_retention_poll(struct ts_retention *r, int64_t now_ms)
{
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(r->q, 0))) {
        int64_t ms = 0;
        const char *why = "?";
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT) {
            r->out = false;
            r->next_ms = now_ms + RETRY_MS;
            if (answer_value(ev, r->topic, &ms, &why)) {
                r->next_ms = now_ms + r->interval_ms;
                if (!r->logged || ms != r->ms)
                    TS_LOG(TS_LOG_INFO, "aggregate: %s keeps its records %s%" PRId64 " ms%s",
                           r->topic, ms < 0 ? "for ever (retention.ms " : "for ", ms,
                           ms < 0 ? ")" : " (retention.ms)");
                r->ms = ms;
                r->logged = true;
            } else {
                TS_LOG(TS_LOG_WARNING, "aggregate: cannot learn the retention of %s: %s (asked "
                       "again later)", r->topic, why ? why : "?");
            }
        }
        rd_kafka_event_destroy(ev);
    }
    if (r->out && now_ms - r->asked_ms > 2 * REQUEST_TIMEOUT_MS)
        r->out = false;   /* an answer that never came: ask again */
    if (r->out || (r->next_ms != INT64_MIN && now_ms < r->next_ms))
        return;
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, r->topic);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(r->rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    if (res && opt) {
        char err[128];
        rd_kafka_AdminOptions_set_request_timeout(opt, REQUEST_TIMEOUT_MS, err, sizeof err);
        rd_kafka_DescribeConfigs(r->rk, &res, 1, opt, r->q);
        r->out = true;
        r->asked_ms = now_ms;
    }
    if (opt)
        rd_kafka_AdminOptions_destroy(opt);
    if (res)
        rd_kafka_ConfigResource_destroy(res);
}

int64_t ts_retention_ms(const struct ts_retention *r)
{
    return r->ms;
}

void ts_retention_free(struct ts_retention *r)
{
    if (!r)
        return;
    rd_kafka_queue_destroy(r->q);
    free(r->topic);
    free(r);
}
