/* SPDX-License-Identifier: Apache-2.0 */
/* bench_aggregate.c - the aggregator (Kafka to the lake) at full speed.
 *
 *   bench-aggregate fill BOOTSTRAP TOPIC N [AGENTS TURNSTILES START_MS SEQ_FROM]
 *                                               produce N readings (100 agents,
 *                                               50 turnstiles each, one reading
 *                                               per turnstile and minute from
 *                                               2023-05-27 04:00Z, agent seqs
 *                                               from 1; the same input every
 *                                               time: tests/integration/
 *                                               test_bridge_lake_expected.sh)
 *   bench-aggregate consume BOOTSTRAP TOPIC N   baseline: a bare librdkafka
 *                                               consumer reading N messages
 *   bench-aggregate run BOOTSTRAP TOPIC N LAKE  turnstile-bridge's aggregator
 *                                               (ts_aggregator, no acks) until N
 *                                               readings are consumed, then its
 *                                               final checkpoint
 * Each mode prints one line: messages/s over the wall clock, CPU seconds of
 * the process (all threads), peak RSS. Run by bench/aggregate.sh. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "aggregator.h"
#include "bridge_config.h"
#include "err.h"
#include "log.h"
#include "reading.h"

#define AGENTS 100
#define PER_AGENT 50

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report(const char *what, uint64_t n, double secs)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("%-9s %" PRIu64 " messages in %.2f s: %.0f/s; CPU %.2f s (%.0f messages per CPU second); "
           "peak RSS %.1f MiB\n",
           what, n, secs, n / secs, cpu, n / cpu, ru.ru_maxrss / 1024.0);
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstrap, const char *const *props)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) != RD_KAFKA_CONF_OK)
        goto fail;
    for (; props && props[0]; props += 2)
        if (rd_kafka_conf_set(conf, props[0], props[1], err, sizeof err) != RD_KAFKA_CONF_OK)
            goto fail;
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (rk)
        return rk;
fail:
    fprintf(stderr, "bench-aggregate: %s\n", err);
    exit(1);
}

static int fill(const char *bootstrap, const char *topic, uint64_t n, unsigned agents,
                unsigned per_agent, int64_t base, uint64_t seq_from)
{
    static const char *const props[] = {"linger.ms", "50", "batch.num.messages", "10000",
                                        "queue.buffering.max.messages", "1000000",
                                        "compression.type", "lz4", "acks", "all",
                                        "enable.idempotence", "true", NULL};
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, bootstrap, props);
    uint64_t seq[AGENTS];
    char line[TS_READING_LINE_MAX], key[TS_ID_MAX];
    struct ts_reading r = {0};
    double t0 = now_s();

    for (unsigned a = 0; a < AGENTS; a++)
        seq[a] = seq_from - 1;

    setenv("TZ", "America/New_York", 1);
    tzset();
    for (uint64_t i = 0; i < n; i++) {
        unsigned a = (unsigned)(i % agents), t = (unsigned)(i / agents % per_agent);
        snprintf(r.ca, sizeof r.ca, "B%03u", a);
        snprintf(r.unit, sizeof r.unit, "R%03u", a);
        snprintf(r.scp, sizeof r.scp, "00-00-%02u", t % 100u);
        snprintf(r.station, sizeof r.station, "STATION %u", a);
        snprintf(r.linename, sizeof r.linename, "NQR");
        snprintf(r.division, sizeof r.division, "BMT");
        snprintf(r.desc, sizeof r.desc, "REGULAR");
        snprintf(r.agent_id, sizeof r.agent_id, "agent-%03u", a);
        r.seq = r.merged_from = ++seq[a];
        r.time_ms = base + (int64_t)(i / (agents * per_agent)) * 60000 + a * 10;
        r.entries = i % 7;
        r.exits = i % 5;
        r.entries_cum += r.entries;
        r.exits_cum += r.exits;
        int len = ts_reading_format(&r, line, sizeof line);
        snprintf(key, sizeof key, "%s", r.agent_id);
        char topic_hdr[128];
        snprintf(topic_hdr, sizeof topic_hdr, "turnstile/v1/S%03u/%s/readings", a, r.agent_id);
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                RD_KAFKA_V_VALUE(line, (size_t)len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_HEADER("mqtt_topic", topic_hdr, -1), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                break;
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "bench-aggregate: produce: %s\n", rd_kafka_err2str(e));
                return 1;
            }
            rd_kafka_poll(rk, 10);
        }
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 120000);
    report("fill", n, now_s() - t0);
    int left = rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    return left ? 1 : 0;
}

static int consume(const char *bootstrap, const char *topic, uint64_t n)
{
    static const char *const props[] = {"group.id", "bench-baseline", "auto.offset.reset",
                                        "earliest", "enable.auto.commit", "false", NULL};
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, bootstrap, props);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    uint64_t got = 0, bytes = 0;
    double t0 = 0;
    while (got < n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m)
            continue;
        if (!m->err) {
            if (got++ == 0)
                t0 = now_s();
            bytes += m->len;
        }
        rd_kafka_message_destroy(m);
    }
    report("consume", got, now_s() - t0);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return bytes ? 0 : 1;
}

static int run(const char *bootstrap, const char *topic, uint64_t n, const char *lake)
{
    struct ts_bridge_cfg cfg;
    struct ts_aggregator *agg = NULL;
    char why[256] = "";

    memset(&cfg, 0, sizeof cfg);
    ts_bridge_cfg_defaults(&cfg);
    snprintf(cfg.bridge.id, sizeof cfg.bridge.id, "bench");
    snprintf(cfg.kafka.brokers, sizeof cfg.kafka.brokers, "%s", bootstrap);
    snprintf(cfg.kafka.readings_topic, sizeof cfg.kafka.readings_topic, "%s", topic);
    snprintf(cfg.kafka.group_id, sizeof cfg.kafka.group_id, "bench-aggregate");
    snprintf(cfg.lake.path, sizeof cfg.lake.path, "%s", lake);
    cfg.has_lake = true;
    cfg.bridge.max_event_age_s = 0; /* the readings are from 2023 */
    ts_log_level = TS_LOG_WARNING;
    int rc = ts_aggregator_new(&cfg, NULL, &agg, why, sizeof why);
    if (rc != TS_OK) {
        fprintf(stderr, "bench-aggregate: %s: %s\n", ts_strerror(rc), why);
        return 1;
    }
    struct ts_aggregator_stats st = {0};
    double t0 = 0;
    while (st.consumed < n) {
        if (ts_aggregator_poll(agg, 1000) != TS_OK)
            return 1;
        ts_aggregator_stats(agg, &st);
        if (t0 == 0 && st.consumed > 0)
            t0 = now_s();
        if (getenv("BENCH_TRACE"))
            fprintf(stderr, "%.3f %" PRIu64 "\n", t0 ? now_s() - t0 : 0.0, st.consumed);
    }
    double consumed_s = now_s() - t0;
    ts_aggregator_free(agg); /* the final checkpoint is part of the work */
    double secs = now_s() - t0;
    printf("          consumed in %.2f s, final checkpoint and leaving the group %.2f s\n",
           consumed_s, secs - consumed_s);
    report("aggregate", st.consumed, secs);
    printf("          %" PRIu64 " readings, %" PRIu64 " duplicates, %" PRIu64 " rows, %" PRIu64
           " files, %" PRIu64 " checkpoints\n",
           st.readings, st.duplicates, st.rows, st.files, st.checkpoints);
    return st.readings == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "fill") == 0) {
        unsigned agents = argc >= 7 ? (unsigned)strtoul(argv[5], NULL, 10) : AGENTS;
        unsigned per_agent = argc >= 7 ? (unsigned)strtoul(argv[6], NULL, 10) : PER_AGENT;
        int64_t base = argc >= 8 ? strtoll(argv[7], NULL, 10) : 1685160000000LL; /* 04:00Z */
        uint64_t seq_from = argc >= 9 ? strtoull(argv[8], NULL, 10) : 1;
        if (agents < 1 || agents > AGENTS || per_agent < 1 || per_agent > 100 || seq_from < 1) {
            fprintf(stderr, "bench-aggregate: fill: 1..%d agents, 1..100 turnstiles, SEQ_FROM >= 1\n",
                    AGENTS);
            return 2;
        }
        return fill(argv[2], argv[3], strtoull(argv[4], NULL, 10), agents, per_agent, base,
                    seq_from);
    }
    if (argc >= 5 && strcmp(argv[1], "consume") == 0)
        return consume(argv[2], argv[3], strtoull(argv[4], NULL, 10));
    if (argc >= 6 && strcmp(argv[1], "run") == 0)
        return run(argv[2], argv[3], strtoull(argv[4], NULL, 10), argv[5]);
    fprintf(stderr, "usage: bench-aggregate fill|consume|run BOOTSTRAP TOPIC N [LAKE]\n");
    return 2;
}
