/* SPDX-License-Identifier: Apache-2.0 */
/* deadletter.c - the aggregator's dead letters (see deadletter.h). */
#include "deadletter.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kafka_conf.h"
#include "log.h"
#include "now.h"
#include "topics.h"

#define VALUE_MAX 65536   /* bytes of a refused value kept, as the relay */
#define WAIT_STEP_MS 50

struct ts_deadletter {
    rd_kafka_t *rk;
    rd_kafka_topic_t *topic;
    uint64_t sent, confirmed, failed;
    uint64_t failed_unreported;   /* failures since the last TS_EIO */
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct ts_deadletter *d = opaque;
    if (!m->err) {
        d->confirmed++;
        return;
    }
    d->failed++;
    d->failed_unreported++;
    if (d->failed <= 10 || (d->failed & (d->failed - 1)) == 0) /* 1..10, then powers of 2 */
        TS_LOG(TS_LOG_ERR, "aggregate: a dead letter was not delivered to %s: %s (%" PRIu64
               " so far); its partition is read again from its checkpoint",
               rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err), d->failed);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    ts_kafka_log(level <= 3 ? TS_LOG_ERR : level == 4 ? TS_LOG_WARNING : TS_LOG_DEBUG,
                 "aggregate: dead letters: librdkafka", fac, buf);
}

int ts_deadletter_new(const struct ts_bridge_kafka_cfg *kafka, const char *client_id,
                      struct ts_deadletter **out, char *why, size_t why_size)
{
    char err[256];
    *out = NULL;
    struct ts_deadletter *d = calloc(1, sizeof *d);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!d || !conf) {
        free(d);
        if (conf)
            rd_kafka_conf_destroy(conf);
        return ts_fail(why, why_size, TS_ENOMEM, "%s", "dead letters: out of memory");
    }
    /* at least once is enough (copies are told apart by their source_*
     * headers): no idempotence, so no fatal producer error either */
    const char *props[][2] = {
        {"bootstrap.servers", kafka->brokers},
        {"client.id", client_id},
        {"acks", "all"},
        {"message.timeout.ms", "0"},        /* wait for Kafka for ever */
        {"linger.ms", "5"},
        {"log.connection.close", "false"},
    };
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], err, sizeof err) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            free(d);
            return ts_fail(why, why_size, TS_ECONFIG, "dead letters: kafka: %s = '%s': %s",
                           props[i][0], props[i][1], err);
        }
    if (ts_kafka_conf_apply(conf, &kafka->props, err, sizeof err) != TS_OK) { /* rdkafka.* */
        rd_kafka_conf_destroy(conf);
        free(d);
        return ts_fail(why, why_size, TS_ECONFIG, "dead letters: kafka: %s", err);
    }
    rd_kafka_conf_set_opaque(conf, d);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, on_log);
    d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!d->rk) {
        rd_kafka_conf_destroy(conf);
        free(d);
        return ts_fail(why, why_size, TS_ECONFIG, "dead letters: kafka producer: %s", err);
    }
    d->topic = rd_kafka_topic_new(d->rk, kafka->deadletter_topic, NULL);
    if (!d->topic) {
        rd_kafka_destroy(d->rk);
        free(d);
        return ts_fail(why, why_size, TS_ECONFIG, "dead letters: topic %s: %s",
                       kafka->deadletter_topic, rd_kafka_err2str(rd_kafka_last_error()));
    }
    *out = d;
    return TS_OK;
}

int ts_deadletter_send(struct ts_deadletter *d, const struct ts_deadletter_rec *rec, int wait_ms)
{
    char part[16], off[24], truncated[24];
    size_t len = rec->value ? rec->len : 0;
    snprintf(part, sizeof part, "%" PRId32, rec->partition);
    snprintf(off, sizeof off, "%" PRId64, rec->offset);
    snprintf(truncated, sizeof truncated, "%zu", len);
    bool cut = len > VALUE_MAX;
    if (cut)
        len = VALUE_MAX;

    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    rd_kafka_header_add(h, "reason", -1, rec->reason, -1);
    if (rec->mqtt_topic)
        rd_kafka_header_add(h, TS_HEADER_MQTT_TOPIC, -1, rec->mqtt_topic, (ssize_t)rec->mqtt_topic_len);
    rd_kafka_header_add(h, "source_topic", -1, rec->source_topic, -1);
    rd_kafka_header_add(h, "source_partition", -1, part, -1);
    rd_kafka_header_add(h, "source_offset", -1, off, -1);
    if (cut)
        rd_kafka_header_add(h, "truncated_from", -1, truncated, -1);

    int64_t end = ts_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            d->rk, RD_KAFKA_V_RKT(d->topic), RD_KAFKA_V_KEY(rec->key, rec->key ? rec->key_len : 0),
            RD_KAFKA_V_VALUE(len ? (void *)rec->value : NULL, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (!err) { /* the headers belong to the message now */
            d->sent++;
            return TS_OK;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || ts_mono_ms() >= end) {
            rd_kafka_headers_destroy(h);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                return TS_EBUSY;
            TS_LOG(TS_LOG_ERR, "aggregate: a dead letter was refused by librdkafka: %s",
                   rd_kafka_err2str(err));
            return TS_EIO;
        }
        rd_kafka_poll(d->rk, WAIT_STEP_MS); /* delivery reports make room */
    }
}

void ts_deadletter_poll(struct ts_deadletter *d)
{
    rd_kafka_poll(d->rk, 0);
}

int ts_deadletter_flush(struct ts_deadletter *d, int timeout_ms)
{
    if (d->sent != d->confirmed + d->failed)
        rd_kafka_flush(d->rk, timeout_ms > 0 ? timeout_ms : 0);
    else
        rd_kafka_poll(d->rk, 0);
    if (d->failed_unreported) {
        d->failed_unreported = 0;
        return TS_EIO;
    }
    return d->sent == d->confirmed + d->failed ? TS_OK : TS_EBUSY;
}

void ts_deadletter_counts(const struct ts_deadletter *d, uint64_t *sent, uint64_t *confirmed,
                          uint64_t *failed, int *queued)
{
    *sent = d->sent;
    *confirmed = d->confirmed;
    *failed = d->failed;
    *queued = (int)(d->sent - d->confirmed - d->failed);
}

void ts_deadletter_free(struct ts_deadletter *d, int flush_ms)
{
    if (!d)
        return;
    if (ts_deadletter_flush(d, flush_ms) == TS_EBUSY)
        TS_LOG(TS_LOG_WARNING, "aggregate: %" PRIu64 " dead letter(s) not confirmed within %d ms "
               "are dropped here; their records are dead-lettered again when their partition "
               "resumes from its checkpoint", d->sent - d->confirmed - d->failed, flush_ms);
    rd_kafka_purge(d->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 100 && rd_kafka_outq_len(d->rk) > 0; i++)
        rd_kafka_poll(d->rk, 10);
    rd_kafka_topic_destroy(d->topic);
    rd_kafka_destroy(d->rk);
    free(d);
}

struct rd_kafka_s *ts_deadletter_client(struct ts_deadletter *d)
{
    return d->rk;
}
