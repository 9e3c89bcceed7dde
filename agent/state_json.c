/* SPDX-License-Identifier: Apache-2.0 */
#include "state_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "flags.h"
#include "now.h"
#include "strbuf.h"

/* put: ts_strbuf_printf, short for the long lines below */
#define put ts_strbuf_printf

static void put_string(struct ts_strbuf *b, const char *key, const char *value)
{
    put(b, "\"%s\":\"", key);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(b, "\\%c", *p);
        else if (*p < 0x20)
            put(b, "\\u%04x", *p);
        else
            put(b, "%c", *p);
    }
    put(b, "\"");
}

static char *finish(struct ts_strbuf *b)
{
    char *s;
    size_t len;
    return ts_strbuf_take(b, &s, &len) == TS_OK ? s : NULL;
}

static void iso_time(int64_t ms, char *out, size_t size)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *ts_status_json(const struct ts_agent_cfg *cfg, const char *state, const char *reason,
                     int64_t started_ms, const struct ts_store_stats *store,
                     const struct ts_ack_status *ack)
{
    struct ts_strbuf b = {0};
    char started[32];

    iso_time(started_ms, started, sizeof started);
    put(&b, "{");
    put_string(&b, "state", state);
    put(&b, ",");
    if (reason) {
        put_string(&b, "reason", reason);
        put(&b, ",");
    }
    put_string(&b, "agent", cfg->agent.agent_id);
    put(&b, ",");
    put_string(&b, "station", cfg->agent.station_id);
    put(&b, ",");
    put_string(&b, "version", TS_VERSION);
    put(&b, ",");
    put_string(&b, "started", started);
    struct ts_store_stats none = {0};
    if (!store)
        store = &none;
    put(&b, ",\"devices\":%zu,\"turnstiles\":%zu,\"backlog\":%llu,\"merges\":%llu,"
            "\"merged_rows\":%llu,", cfg->n_devices, cfg->n_turnstiles,
        (unsigned long long)(store->rows + store->pending_memory), (unsigned long long)store->merges,
        (unsigned long long)store->merged_rows);
    put_string(&b, "store_error", store->last_error ? ts_strerror(store->last_error) : "");
    struct ts_ack_status no_ack = {0};
    if (!ack)
        ack = &no_ack;
    char last[24] = "";
    if (ack->refused_last)
        snprintf(last, sizeof last, "%llu", (unsigned long long)ack->refused_last);
    put(&b, ",\"acks_refused\":%llu,", (unsigned long long)ack->refused);
    put_string(&b, "ack_refused", last);
    put(&b, ",");
    put_string(&b, "ack_error", ack->error ? ack->error : "");
    put(&b, "}");
    return finish(&b);
}

static const char *link_name(enum ts_link_state s)
{
    return s == TS_LINK_UP ? "up" : s == TS_LINK_BACKOFF ? "backoff" : "down";
}

char *ts_state_json(const struct ts_agent_cfg *cfg, const struct ts_tally *tally,
                    const struct ts_device_stats *devices,
                    bool clock_synced, uint64_t backlog, const struct ts_state_mqtt *mqtt)
{
    struct ts_strbuf b = {0};
    char now[32];

    iso_time(ts_wall_ms(), now, sizeof now);
    put(&b, "{");
    put_string(&b, "agent", cfg->agent.agent_id);
    put(&b, ",");
    put_string(&b, "station", cfg->agent.station_id);
    put(&b, ",");
    put_string(&b, "time", now);
    put(&b, ",\"clock\":\"%s\",\"backlog\":%llu,\"warnings\":%zu,\"turnstiles\":[",
        clock_synced ? "synced" : "unsynced", (unsigned long long)backlog, tally->n_warned);
    for (size_t i = 0; i < cfg->n_turnstiles; i++) {
        const struct ts_turnstile_cfg *t = cfg->turnstiles[i];
        const struct ts_turnstile_state *st = &tally->turnstiles[i];
        put(&b, "%s{", i ? "," : "");
        put_string(&b, "name", t->name);
        put(&b, ",");
        put_string(&b, "ca", t->ca);
        put(&b, ",");
        put_string(&b, "unit", t->unit);
        put(&b, ",");
        put_string(&b, "scp", t->scp);
        put(&b, ",");
        put_string(&b, "station", t->station);
        put(&b, ",\"entries\":%llu,\"exits\":%llu,\"entries_counted\":%llu,\"exits_counted\":%llu,"
                "\"time_ms\":%lld,",
            (unsigned long long)st->last_entries, (unsigned long long)st->last_exits,
            (unsigned long long)st->counted_entries, (unsigned long long)st->counted_exits,
            (long long)st->last_ms);
        const char *counter;
        uint32_t flags;
        char names[64], warning[256] = "";
        int64_t secs = ts_tally_anomaly_s(tally, i, &counter, &flags);
        ts_flags_format(flags, names, sizeof names);
        if (st->warned)
            snprintf(warning, sizeof warning,
                     "every reading of %s that moved for %lld s was an anomaly (%s) and counted "
                     "nobody: a wrong word order or width is the usual cause (turnstile-agent --probe)",
                     counter, (long long)secs, names);
        put(&b, "\"anomaly_s\":%lld,", (long long)secs);
        put_string(&b, "anomaly", names);
        put(&b, ",");
        put_string(&b, "warning", warning);
        put(&b, "}");
    }
    put(&b, "],\"devices\":[");
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const struct ts_device_stats *d = &devices[i];
        put(&b, "%s{", i ? "," : "");
        put_string(&b, "name", cfg->devices[i]->name);
        put(&b, ",");
        put_string(&b, "kind", ts_hal_kind_name(cfg->devices[i]->kind));
        put(&b, ",");
        put_string(&b, "link", link_name(d->link));
        put(&b, ",\"polls\":%llu,\"errors\":%llu,\"timeouts\":%llu,\"exceptions\":%llu,"
                "\"crc_errors\":%llu,\"short_responses\":%llu,\"connect_errors\":%llu,",
            (unsigned long long)d->polls, (unsigned long long)d->errors,
            (unsigned long long)d->timeouts, (unsigned long long)d->exceptions,
            (unsigned long long)d->crc_errors, (unsigned long long)d->short_responses,
            (unsigned long long)d->connect_errors);
        put_string(&b, "last_error", d->last_error ? ts_strerror(d->last_error) : "");
        put(&b, ",\"rtt_us\":%lld}", (long long)d->last_rtt_us);
    }
    put(&b, "]");
    if (mqtt)
        put(&b, ",\"sent\":%llu,\"resent\":%llu,\"pubacks\":%llu,\"connects\":%llu,"
                "\"acked\":%llu,\"ack_age_s\":%lld",
            (unsigned long long)mqtt->sent, (unsigned long long)mqtt->resent,
            (unsigned long long)mqtt->pubacks, (unsigned long long)mqtt->connects,
            (unsigned long long)mqtt->acked, (long long)mqtt->ack_age_s);
    put(&b, "}");
    return finish(&b);
}
