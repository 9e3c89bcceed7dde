/* SPDX-License-Identifier: Apache-2.0 */
/* relay.c - the agents' readings from MQTT into Kafka (see relay.h).
 *
 * Threads. The MQTT link's network thread (mqtt_link.c) runs on_message:
 * each message is checked and handed to librdkafka (rd_kafka_producev, the
 * payload copied) before the callback returns. A second thread (dr_main)
 * serves librdkafka's callbacks with rd_kafka_poll: delivery reports, errors,
 * and the rate-limited log summaries. r->lock guards the counters and the
 * flags the three threads share (the caller's thread reads the stats and
 * stops); r->cond wakes a message callback waiting for room in the queue
 * (signalled by delivery reports and by the stop). No lock is held while
 * calling librdkafka or logging.
 *
 * On RD_KAFKA_RESP_ERR__QUEUE_FULL on_message waits on r->cond (100 ms at a
 * time) and retries, so the network thread reads nothing meanwhile; dead
 * letters take the same path (capped at DEAD_LETTER_MAX bytes). That the
 * PUBACK of libmosquitto 2.0.11's threaded client is written only after
 * on_message returned, what a crash at each point loses, and why a message
 * abandoned at stop must not be PUBACKed (clean_stop): docs/bridge.md,
 * "Back-pressure" and "When the PUBACK goes out". */
#include "relay.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "kafka_conf.h"
#include "layout.h"
#include "now.h"
#include "topics.h"
#include "log.h"
#include "mqtt_link.h"
#include "reading.h"
#include "verdict.h"

#define FILTER TS_TOPIC_FILTER(TS_TOPIC_READINGS)
#define LOOP_MS 250               /* network loop turn: how soon a stop is seen */
#define POLL_MS 100               /* delivery thread: rd_kafka_poll timeout */
#define WAIT_MS 100               /* a full-queue wait re-tries at least this often */
#define RATE_WINDOW_MS 10000      /* rate-limited log lines: per window ... */
#define RATE_LINES 5              /* ... at most this many, then a summary */
#define DEAD_LETTER_MAX 65536     /* bytes of an invalid payload kept */

/* At most `lines` lines per RATE_WINDOW_MS, then one line saying how many
 * were left out. */
struct ratelog {
    long long start;
    unsigned lines, max;
    uint64_t suppressed;
};

struct ts_relay {
    struct ts_bridge_kafka_cfg kcfg;
    _Atomic int32_t layout;   /* partitions the agents are spread over (layout.h); 0: take the
                                 topic's count at the first reading */
    _Atomic int32_t topic_partitions; /* the topic's count, as librdkafka last saw it */
    _Atomic int layout_warned;
    struct ts_verdict_bounds bounds;
    char client_id[160];
    char filter[sizeof FILTER + 80];
    struct ts_mqtt_link *link;
    rd_kafka_t *rk;
    rd_kafka_topic_t *t_readings, *t_dead;
    pthread_t dr_thread;
    bool dr_started;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* guarded by lock: */
    bool stop;                /* stopping: waits give up */
    bool dr_stop;
    bool fatal;               /* librdkafka raised a fatal error */
    bool abandoned;           /* a message taken from MQTT was not produced at stop */
    bool closing;             /* purging at the end: delivery reports not logged */
    int waiting;              /* message callbacks waiting for room */
    bool full;                /* a back-pressure episode is on */
    long long full_since;
    struct ts_relay_stats st;
    struct ratelog bad_log, err_log, full_log;
};

/* A message's opaque tells what it is: NULL a reading, &dead_letter_mark a
 * dead letter, &marker_mark a marker, else a struct marker: a dead letter
 * whose marker is produced once Kafka confirmed it (verdict.h, POLICY;
 * policy set), and/or a message whose producer waits for its delivery
 * report (done set: ts_relay_produce). */
static char dead_letter_mark, marker_mark;

struct marker {
    bool policy;              /* a POLICY dead letter: its marker follows */
    bool dead;                /* a dead letter (else a reading) */
    void (*done)(void *arg, int err); /* ts_relay_produce's caller, or NULL */
    void *done_arg;
    char topic[2 * TS_ID_MAX + 32];
    char key[TS_ID_MAX];
    char reason[TS_VERDICT_REASON_MAX];
    char id[TS_ID_MAX + 24];  /* "<agent>:<seq>" */
    char from[24];            /* MERGED_FROM */
};


/* ---- rate-limited logging (lock held) ---- */

/* An event: true if it may be logged. *summary: lines left out in the
 * window that just ended (0: none), for the caller to report. */
static bool ratelog_take(struct ratelog *rl, long long now, uint64_t *summary)
{
    *summary = 0;
    if (now - rl->start >= RATE_WINDOW_MS) {
        *summary = rl->suppressed;
        rl->start = now;
        rl->lines = 0;
        rl->suppressed = 0;
    }
    if (rl->lines < rl->max) {
        rl->lines++;
        return true;
    }
    rl->suppressed++;
    return false;
}

/* The summary of a window that ended with no event after it. */
static uint64_t ratelog_due(struct ratelog *rl, long long now)
{
    if (!rl->suppressed || now - rl->start < RATE_WINDOW_MS)
        return 0;
    uint64_t n = rl->suppressed;
    rl->start = now;
    rl->lines = 0;
    rl->suppressed = 0;
    return n;
}

/* ---- librdkafka callbacks ---- */

static void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    int l = level <= 3 ? TS_LOG_ERR : level == 4 ? TS_LOG_WARNING : level == 5 ? TS_LOG_NOTICE
          : level == 6 ? TS_LOG_INFO : TS_LOG_DEBUG;
    ts_kafka_log(l, "relay: kafka: librdkafka:", fac, buf);   /* secrets masked */
}

static void kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct ts_relay *r = opaque;
    char clean[512];

    ts_kafka_redact(clean, sizeof clean, reason); /* librdkafka's words: secrets masked */
    reason = clean;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, clean, sizeof clean);
        ts_kafka_redact(buf, sizeof buf, clean);
        pthread_mutex_lock(&r->lock);
        r->fatal = true;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        TS_LOG(TS_LOG_ERR,
               "relay: kafka: FATAL producer error %s: %s; the relay takes no more readings "
               "(restart the bridge; the agents re-send what is not acknowledged)",
               rd_kafka_err2name(orig), buf);
    } else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        TS_LOG(TS_LOG_WARNING, "relay: kafka: all brokers are down (%s); readings wait in the "
               "producer queue (%d now)", reason, rd_kafka_outq_len(rk));
    } else {
        TS_LOG(TS_LOG_DEBUG, "relay: kafka: %s: %s", rd_kafka_err2name(err), reason);
    }
}

/* Field i (0-based) of a CSV value, for the log; "?" if absent. */
static void csv_field(const void *value, size_t len, int i, char *out, size_t size)
{
    const char *s = value, *end = s + len;
    for (; i > 0 && s < end; s++)
        if (*s == ',')
            i--;
    size_t n = 0;
    while (s < end && *s != ',' && n + 1 < size)
        out[n++] = (*s >= 0x20 && *s < 0x7f) ? *s++ : (s++, '?');
    out[n] = '\0';
    if (!n)
        snprintf(out, size, "?");
}

/* Hands a marker to librdkafka without waiting (this runs in the delivery
 * thread, which must not wait for room it alone makes). A marker that does
 * not fit is only logged: the agent re-sends the reading after its
 * ack_timeout_ms, and the relay dead-letters it and tries again. */
static void produce_marker(struct ts_relay *r, const struct marker *mk)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        r->rk, RD_KAFKA_V_RKT(r->t_readings), RD_KAFKA_V_KEY(mk->key, strlen(mk->key)),
        RD_KAFKA_V_VALUE(NULL, 0), RD_KAFKA_V_HEADER(TS_HEADER_MQTT_TOPIC, mk->topic, -1),
        RD_KAFKA_V_HEADER("reason", mk->reason, -1),
        RD_KAFKA_V_HEADER(TS_MARKER_HEADER_ID, mk->id, -1),
        RD_KAFKA_V_HEADER(TS_MARKER_HEADER_FROM, mk->from, -1), RD_KAFKA_V_OPAQUE(&marker_mark),
        RD_KAFKA_V_END);
    uint64_t summary = 0;
    pthread_mutex_lock(&r->lock);
    bool log = false;
    if (!err)
        r->st.markers++;
    else
        log = ratelog_take(&r->err_log, ts_mono_ms(), &summary);
    pthread_mutex_unlock(&r->lock);
    if (log)
        TS_LOG(TS_LOG_ERR, "relay: kafka: the marker of %s (refused: %s) was not produced: %s; "
               "the agent will send the reading again", mk->id, mk->reason, rd_kafka_err2str(err));
}

static void kafka_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct ts_relay *r = opaque;
    bool marker = m->_private == &marker_mark;
    struct marker *pending = m->_private && !marker && m->_private != &dead_letter_mark
                                 ? m->_private : NULL;
    bool dead = m->_private == &dead_letter_mark || (pending && pending->dead);
    long long now = ts_mono_ms();
    uint64_t summary = 0;
    bool log = false, closing;

    pthread_mutex_lock(&r->lock);
    closing = r->closing;
    if (!m->err) {
        if (!dead && !marker)
            r->st.delivered++;
    } else if (r->closing && (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                              m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)) {
        /* dropped at stop: counted by ts_relay_free */
    } else {
        r->st.delivery_errors++;
        log = ratelog_take(&r->err_log, now, &summary);
    }
    if (r->waiting)
        pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);

    /* a POLICY dead letter is in Kafka: now its marker lets the ack pass */
    if (pending && pending->policy && !m->err && !closing)
        produce_marker(r, pending);
    if (pending && pending->done)
        pending->done(pending->done_arg, m->err ? TS_EIO : TS_OK);
    free(pending);
    if (summary)
        TS_LOG(TS_LOG_ERR, "relay: kafka: %" PRIu64 " more delivery error(s) in the last %d s "
               "not logged", summary, RATE_WINDOW_MS / 1000);
    if (!log)
        return;
    const char *topic = rd_kafka_topic_name(m->rkt);
    const char *hint = m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                       m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                           ? " (create the topic: the relay does not)" : "";
    if (marker) {
        TS_LOG(TS_LOG_ERR, "relay: kafka: a marker was not delivered to %s: %s%s; the agent will "
               "send its reading again", topic, rd_kafka_err2str(m->err), hint);
    } else if (dead) {
        TS_LOG(TS_LOG_ERR, "relay: kafka: a dead letter was not delivered to %s: %s%s", topic,
               rd_kafka_err2str(m->err), hint);
    } else {
        char id[TS_ID_MAX + 24];
        csv_field(m->payload, m->len, 11, id, sizeof id);
        TS_LOG(TS_LOG_ERR,
               "relay: kafka: reading %s was not delivered to %s: %s%s; no acknowledgement "
               "covers it, its agent will send it again", id, topic, rd_kafka_err2str(m->err),
               hint);
    }
}

/* ---- MQTT side ---- */

/* Hands one message to librdkafka (reason NULL: a reading stamped now_ms,
 * else a dead letter whose opaque is mark), waiting while the queue is full.
 * false: not produced (stopping, a fatal error, or refused: logged); mark
 * then stays the caller's. */
static bool produce(struct ts_relay *r, const struct mosquitto_message *msg, const char *key,
                    const char *reason, int64_t now_ms, void *mark)
{
    bool waited = false;
    int len = msg->payloadlen > 0 ? msg->payloadlen : 0;
    char truncated[24] = "";

    if (reason && len > DEAD_LETTER_MAX) {
        snprintf(truncated, sizeof truncated, "%d", len);
        len = DEAD_LETTER_MAX;
    }
    for (;;) {
        rd_kafka_resp_err_t err;
        if (!reason)
            err = rd_kafka_producev(
                r->rk, RD_KAFKA_V_RKT(r->t_readings), RD_KAFKA_V_KEY(key, strlen(key)),
                RD_KAFKA_V_VALUE(msg->payload, (size_t)len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                /* the aggregator judges it against this time again */
                RD_KAFKA_V_TIMESTAMP(now_ms),
                RD_KAFKA_V_HEADER(TS_HEADER_MQTT_TOPIC, msg->topic, -1), RD_KAFKA_V_END);
        else if (truncated[0])
            err = rd_kafka_producev(
                r->rk, RD_KAFKA_V_RKT(r->t_dead), RD_KAFKA_V_KEY(key, strlen(key)),
                RD_KAFKA_V_VALUE(len ? msg->payload : NULL, (size_t)len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("reason", reason, -1),
                RD_KAFKA_V_HEADER(TS_HEADER_MQTT_TOPIC, msg->topic, -1),
                RD_KAFKA_V_HEADER("truncated_from", truncated, -1),
                RD_KAFKA_V_OPAQUE(mark), RD_KAFKA_V_END);
        else
            err = rd_kafka_producev(
                r->rk, RD_KAFKA_V_RKT(r->t_dead), RD_KAFKA_V_KEY(key, strlen(key)),
                RD_KAFKA_V_VALUE(len ? msg->payload : NULL, (size_t)len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("reason", reason, -1),
                RD_KAFKA_V_HEADER(TS_HEADER_MQTT_TOPIC, msg->topic, -1),
                RD_KAFKA_V_OPAQUE(mark), RD_KAFKA_V_END);

        long long now = ts_mono_ms();
        uint64_t summary = 0;
        pthread_mutex_lock(&r->lock);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (reason) {
                r->st.dead_letters++;
                r->st.dead_letters_policy += mark != &dead_letter_mark;
            } else
                r->st.produced++;
            long long held = r->full && waited ? now - r->full_since : -1;
            if (waited)
                r->full = false;
            pthread_mutex_unlock(&r->lock);
            if (held >= 1000)
                TS_LOG(TS_LOG_INFO, "relay: Kafka producer queue has room again after %lld ms",
                       held);
            return true;
        }
        if (err == RD_KAFKA_RESP_ERR__FATAL)
            r->fatal = true;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL && err != RD_KAFKA_RESP_ERR__FATAL) {
            bool log = ratelog_take(&r->err_log, now, &summary);
            pthread_mutex_unlock(&r->lock);
            if (log)
                TS_LOG(TS_LOG_ERR, "relay: kafka: %s refused by librdkafka for %s: %s",
                       reason ? "a dead letter" : "a reading", msg->topic,
                       rd_kafka_err2str(err));
            return false;
        }
        bool log = false;
        if (!waited) {
            waited = true;
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                r->st.backpressure_waits++;
                if (!r->full) {
                    r->full = true;
                    r->full_since = now;
                    log = ratelog_take(&r->full_log, now, &summary);
                }
            }
        }
        if (r->stop) {
            r->abandoned = true;
            pthread_mutex_unlock(&r->lock);
            return false;
        }
        uint64_t waits = r->st.backpressure_waits;
        r->waiting++;
        struct timespec ts = ts_mono_deadline(WAIT_MS);
        if (log) {   /* say it before waiting, without the lock */
            pthread_mutex_unlock(&r->lock);
            TS_LOG(TS_LOG_NOTICE,
                   "relay: Kafka producer queue full (%d messages, queue_max_messages %d): "
                   "taking no more MQTT messages until Kafka confirms some (%" PRIu64
                   " waits so far%s)", rd_kafka_outq_len(r->rk), r->kcfg.queue_max_messages,
                   waits, summary ? ", more episodes not logged" : "");
            pthread_mutex_lock(&r->lock);
        }
        if (r->fatal) {   /* a dead producer takes nothing more: wait for the stop */
            while (!r->stop)
                pthread_cond_wait(&r->cond, &r->lock);
        } else if (!r->stop) {
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        r->waiting--;
        pthread_mutex_unlock(&r->lock);
    }
}

static void relay_message(void *ctx, const struct mosquitto_message *msg)
{
    struct ts_relay *r = ctx;
    struct ts_verdict v;
    int64_t wall = ts_wall_ms();

    pthread_mutex_lock(&r->lock);
    r->st.received++;
    pthread_mutex_unlock(&r->lock);

    struct ts_verdict_msg vm = {
        .topic = msg->topic, .topic_len = msg->topic ? strlen(msg->topic) : 0,
        .payload = msg->payload, .len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0,
        .retained = msg->retain, .now_ms = wall};
    if (ts_verdict_judge(&vm, &r->bounds, &v) == TS_VERDICT_READING) {
        produce(r, msg, v.agent, NULL, wall, NULL);
        return;
    }
    /* dead letter: keyed by the topic's agent when there is one ("" else);
     * the agent's own reading refused by policy gets a marker once its dead
     * letter is in Kafka, so that the agent's ack passes its numbers */
    const char *why = v.reason;
    struct marker *mk = NULL;
    if (v.cls == TS_VERDICT_POLICY && (mk = calloc(1, sizeof *mk)) != NULL) {
        mk->policy = mk->dead = true;
        snprintf(mk->topic, sizeof mk->topic, "%s", msg->topic);
        snprintf(mk->key, sizeof mk->key, "%s", v.agent);
        snprintf(mk->reason, sizeof mk->reason, "%s", v.reason);
        snprintf(mk->id, sizeof mk->id, "%s:%" PRIu64, v.agent, v.r.seq);
        snprintf(mk->from, sizeof mk->from, "%" PRIu64, v.r.merged_from);
    }
    long long now = ts_mono_ms();
    uint64_t summary;
    pthread_mutex_lock(&r->lock);
    bool log = ratelog_take(&r->bad_log, now, &summary);
    pthread_mutex_unlock(&r->lock);
    if (summary)
        TS_LOG(TS_LOG_WARNING, "relay: %" PRIu64 " more invalid message(s) in the last %d s not "
               "logged (all in %s)", summary, RATE_WINDOW_MS / 1000, r->kcfg.deadletter_topic);
    if (log) {
        char shown[44];   /* the first 40 bytes, printable */
        int n = msg->payloadlen < 40 ? (msg->payloadlen > 0 ? msg->payloadlen : 0) : 40;
        const unsigned char *p = msg->payload;
        for (int i = 0; i < n; i++)
            shown[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
        snprintf(shown + n, sizeof shown - (size_t)n, "%s", msg->payloadlen > n ? "..." : "");
        TS_LOG(TS_LOG_WARNING, "relay: invalid message on %s (%d bytes: '%s'): %s; sent "
               "to %s%s", msg->topic, msg->payloadlen, shown, why, r->kcfg.deadletter_topic,
               v.cls == TS_VERDICT_POLICY ? " (the agent's ack passes it)" : "");
    }
    if (!produce(r, msg, v.agent, why, wall, mk ? (void *)mk : &dead_letter_mark))
        free(mk);
}

int ts_relay_produce(struct ts_relay *r, const char *topic, const void *payload, size_t len,
                     const struct ts_verdict *v, int64_t now_ms, void (*done)(void *arg, int err),
                     void *arg)
{
    struct marker *mk = calloc(1, sizeof *mk);
    if (!mk)
        return TS_ENOMEM;
    mk->dead = v->cls != TS_VERDICT_READING;
    mk->policy = v->cls == TS_VERDICT_POLICY;
    mk->done = done;
    mk->done_arg = arg;
    if (mk->policy) {
        snprintf(mk->topic, sizeof mk->topic, "%s", topic);
        snprintf(mk->key, sizeof mk->key, "%s", v->agent);
        snprintf(mk->reason, sizeof mk->reason, "%s", v->reason);
        snprintf(mk->id, sizeof mk->id, "%s:%" PRIu64, v->agent, v->r.seq);
        snprintf(mk->from, sizeof mk->from, "%" PRIu64, v->r.merged_from);
    }
    pthread_mutex_lock(&r->lock);
    bool stopped = r->stop || r->fatal;
    pthread_mutex_unlock(&r->lock);
    if (stopped) {
        free(mk);
        return TS_EIO;
    }
    char truncated[24] = "";
    if (mk->dead && len > DEAD_LETTER_MAX) {
        snprintf(truncated, sizeof truncated, "%zu", len);
        len = DEAD_LETTER_MAX;
    }
    const char *key = v->agent;
    rd_kafka_resp_err_t err;
    if (!mk->dead)
        err = rd_kafka_producev(
            r->rk, RD_KAFKA_V_RKT(r->t_readings), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_TIMESTAMP(now_ms), RD_KAFKA_V_HEADER(TS_HEADER_MQTT_TOPIC, topic, -1),
            RD_KAFKA_V_OPAQUE(mk), RD_KAFKA_V_END);
    else if (truncated[0])
        err = rd_kafka_producev(
            r->rk, RD_KAFKA_V_RKT(r->t_dead), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(len ? (void *)payload : NULL, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("reason", v->reason, -1),
            RD_KAFKA_V_HEADER(TS_HEADER_MQTT_TOPIC, topic, -1),
            RD_KAFKA_V_HEADER("truncated_from", truncated, -1), RD_KAFKA_V_OPAQUE(mk),
            RD_KAFKA_V_END);
    else
        err = rd_kafka_producev(
            r->rk, RD_KAFKA_V_RKT(r->t_dead), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(len ? (void *)payload : NULL, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("reason", v->reason, -1),
            RD_KAFKA_V_HEADER(TS_HEADER_MQTT_TOPIC, topic, -1), RD_KAFKA_V_OPAQUE(mk),
            RD_KAFKA_V_END);
    bool dead = mk->dead, policy = mk->policy;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        free(mk);
        pthread_mutex_lock(&r->lock);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            r->st.backpressure_waits++;
        if (err == RD_KAFKA_RESP_ERR__FATAL)
            r->fatal = true;
        pthread_mutex_unlock(&r->lock);
        return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? TS_EBUSY : TS_EIO;
    }
    pthread_mutex_lock(&r->lock);   /* mk is the delivery thread's from here */
    if (dead) {
        r->st.dead_letters++;
        r->st.dead_letters_policy += policy;
    } else {
        r->st.produced++;
    }
    pthread_mutex_unlock(&r->lock);
    return TS_OK;
}

static void relay_connected(void *ctx, bool session_present)
{
    struct ts_relay *r = ctx;
    int rc = mosquitto_subscribe(ts_mqtt_link_client(r->link), NULL, r->filter, 1);
    if (rc != MOSQ_ERR_SUCCESS)
        TS_LOG(TS_LOG_WARNING, "relay: mqtt: subscribing to %s failed: %s", r->filter,
               mosquitto_strerror(rc));
}

static void relay_subscribed(void *ctx, int mid, int n, const int *granted)
{
    struct ts_relay *r = ctx;
    if (n >= 1 && granted[0] == 1)
        TS_LOG(TS_LOG_INFO, "relay: mqtt: subscribed to %s (QoS 1)", r->filter);
    else
        TS_LOG(TS_LOG_ERR, "relay: mqtt: the broker granted %s QoS %d instead of 1%s", r->filter,
               n >= 1 ? granted[0] : -1,
               n >= 1 && granted[0] == 0x80 ? " (refused: check the broker's ACL)" : "");
}

static bool relay_clean_stop(void *ctx)
{
    struct ts_relay *r = ctx;
    pthread_mutex_lock(&r->lock);
    bool clean = !r->abandoned;
    pthread_mutex_unlock(&r->lock);
    return clean;
}

/* ---- the delivery thread ---- */

static void *dr_main(void *arg)
{
    struct ts_relay *r = arg;

    for (;;) {
        rd_kafka_poll(r->rk, POLL_MS);
        long long now = ts_mono_ms();
        pthread_mutex_lock(&r->lock);
        bool stop = r->dr_stop;
        uint64_t bad = ratelog_due(&r->bad_log, now), errs = ratelog_due(&r->err_log, now);
        pthread_mutex_unlock(&r->lock);
        if (bad)
            TS_LOG(TS_LOG_WARNING, "relay: %" PRIu64 " more invalid message(s) in the last %d s "
                   "not logged (all in %s)", bad, RATE_WINDOW_MS / 1000, r->kcfg.deadletter_topic);
        if (errs)
            TS_LOG(TS_LOG_ERR, "relay: kafka: %" PRIu64 " more delivery error(s) in the last %d s "
                   "not logged", errs, RATE_WINDOW_MS / 1000);
        if (stop)
            return NULL;
    }
}

/* ---- placing readings: the lake's layout, not the topic's count ---- */

/* librdkafka's partitioner for the readings topic: the agent's partition
 * among the layout's N (layout.h), whatever the topic's count now is, so that
 * partitions added to the topic move no agent. A topic with fewer partitions
 * than the layout cannot hold the agents where they belong: the reading is
 * refused (delivery error; its agent sends it again). Runs in the producing
 * thread or in librdkafka's; touches only atomics. */
static int32_t place(const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
                     int32_t partition_cnt, void *rkt_opaque, void *msg_opaque)
{
    struct ts_relay *r = rkt_opaque;
    int32_t n = atomic_load(&r->layout), zero = 0;
    atomic_store(&r->topic_partitions, partition_cnt);
    if (n == 0 && atomic_compare_exchange_strong(&r->layout, &zero, partition_cnt)) {
        n = partition_cnt;
        TS_LOG(TS_LOG_NOTICE, "relay: readings are placed over the %" PRId32 " partitions "
               "%s has now (no layout known yet: docs/bridge.md, \"Adding partitions\")", n,
               rd_kafka_topic_name(rkt));
    } else if (n == 0) {
        n = atomic_load(&r->layout);
    }
    if (partition_cnt != n && !atomic_exchange(&r->layout_warned, 1))
        TS_LOG(TS_LOG_ERR, "relay: %s has %" PRId32 " partitions, the layout %" PRId32 ": %s "
               "(docs/bridge.md, \"Adding partitions\")", rd_kafka_topic_name(rkt), partition_cnt, n,
               partition_cnt > n ? "readings stay on the layout's partitions until the bridges are "
                                   "repartitioned (turnstile-bridge --repartition)"
                                 : "readings cannot be placed and are refused");
    if (partition_cnt < n)
        return RD_KAFKA_PARTITION_UA;
    return ts_layout_partition(key, keylen, n);
}

/* ---- public ---- */

static int kset(rd_kafka_conf_t *conf, const char *name, const char *value, char *why,
                size_t why_size)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK)
        return ts_fail(why, why_size, TS_ECONFIG, "relay: kafka: %s = '%s' refused: %s", name, value,
                    err);
    return TS_OK;
}

int ts_relay_new(const struct ts_bridge_mqtt_cfg *mqtt, const struct ts_bridge_kafka_cfg *kafka,
                 const struct ts_bridge_settings *bridge, int32_t layout, struct ts_relay **out,
                 char *why, size_t why_size)
{
    if (out)
        *out = NULL;
    if (!mqtt || !kafka || !bridge || !out)
        return ts_fail(why, why_size, TS_EINVAL, "%s", "relay: missing argument");
    const char *bad = NULL;
    if (!kafka->brokers[0])
        bad = "[kafka] brokers: empty";
    else if (!kafka->readings_topic[0])
        bad = "[kafka] readings_topic: empty";
    else if (!kafka->deadletter_topic[0])
        bad = "[kafka] deadletter_topic: empty";
    else if (!strcmp(kafka->readings_topic, kafka->deadletter_topic))
        bad = "[kafka] deadletter_topic: the same as readings_topic";
    else if (kafka->queue_max_messages < 1)
        bad = "[kafka] queue_max_messages: must be positive";
    else if (kafka->linger_ms < 0)
        bad = "[kafka] linger_ms: negative";
    else if (strpbrk(mqtt->share_group, "/+#"))
        bad = "[mqtt] share_group: must not hold '/', '+' or '#'";
    if (bad)
        return ts_fail(why, why_size, TS_ECONFIG, "relay: %s", bad);

    struct ts_relay *r = calloc(1, sizeof *r);
    if (!r)
        return ts_fail(why, why_size, TS_ENOMEM, "%s", "relay: out of memory");
    r->kcfg = *kafka;
    atomic_init(&r->layout, layout > 0 ? layout : 0);
    atomic_init(&r->topic_partitions, 0);
    atomic_init(&r->layout_warned, 0);
    r->bounds = (struct ts_verdict_bounds){.max_age_ms = bridge->max_event_age_s * 1000,
                                           .max_ahead_ms = bridge->max_event_ahead_s * 1000};
    r->bad_log.max = RATE_LINES;
    r->err_log.max = RATE_LINES;
    r->full_log.max = 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (mqtt->share_group[0])
        snprintf(r->filter, sizeof r->filter, "$share/%s/%s", mqtt->share_group, FILTER);
    else
        snprintf(r->filter, sizeof r->filter, "%s", FILTER);

    int rc = ts_mqtt_client_id(&mqtt->link, TS_BRIDGE_CLIENT_PREFIX, bridge->id, "", r->client_id,
                               sizeof r->client_id);
    if (rc) {
        ts_relay_free(r, 0);
        return ts_fail(why, why_size, TS_ECONFIG, "relay: mqtt: client id too long");
    }

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        ts_relay_free(r, 0);
        return ts_fail(why, why_size, TS_ENOMEM, "%s", "relay: out of memory");
    }
    char qmax[24], linger[24];
    snprintf(qmax, sizeof qmax, "%d", kafka->queue_max_messages);
    snprintf(linger, sizeof linger, "%d", kafka->linger_ms);
    const char *props[][2] = {
        {"bootstrap.servers", kafka->brokers},
        {"client.id", r->client_id},
        {"acks", "all"},
        {"enable.idempotence", "true"},
        {"message.timeout.ms", "0"},          /* infinite: wait for Kafka for ever */
        {"queue.buffering.max.messages", qmax},
        {"linger.ms", linger},
        {"compression.type", kafka->compression[0] ? kafka->compression : "none"},
        {"log.connection.close", "false"},    /* idle connections closed by the broker */
        /* partitions added to the topic are noticed (and reported) within a minute */
        {"topic.metadata.refresh.interval.ms", "60000"},
    };
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
        if ((rc = kset(conf, props[i][0], props[i][1], why, why_size)) != TS_OK) {
            rd_kafka_conf_destroy(conf);
            ts_relay_free(r, 0);
            return rc;
        }
    if ((rc = ts_kafka_conf_apply(conf, &kafka->props, why, why_size)) != TS_OK) { /* rdkafka.* */
        rd_kafka_conf_destroy(conf);
        ts_relay_free(r, 0);
        return rc;
    }
    rd_kafka_conf_set_opaque(conf, r);
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_delivered);
    rd_kafka_conf_set_error_cb(conf, kafka_error);
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    char err[512];
    r->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);   /* owns conf if it works */
    if (!r->rk) {
        rd_kafka_conf_destroy(conf);
        ts_relay_free(r, 0);
        return ts_fail(why, why_size, TS_ECONFIG, "relay: kafka: cannot create the producer: %s",
                    err);
    }
    rd_kafka_topic_conf_t *tconf = rd_kafka_topic_conf_new();
    if (tconf) {
        rd_kafka_topic_conf_set_partitioner_cb(tconf, place);
        rd_kafka_topic_conf_set_opaque(tconf, r);
    }
    r->t_readings = tconf ? rd_kafka_topic_new(r->rk, kafka->readings_topic, tconf) : NULL;
    if (!r->t_readings && tconf)
        rd_kafka_topic_conf_destroy(tconf);
    r->t_dead = rd_kafka_topic_new(r->rk, kafka->deadletter_topic, NULL);
    if (!r->t_readings || !r->t_dead) {
        const char *e = rd_kafka_err2str(rd_kafka_last_error());
        ts_relay_free(r, 0);
        return ts_fail(why, why_size, TS_ECONFIG, "relay: kafka: topic handle: %s", e);
    }

    static const struct ts_mqtt_link_ops ops = {
        .connected = relay_connected,
        .message = relay_message,
        .subscribed = relay_subscribed,
        .clean_stop = relay_clean_stop,
    };
    /* One relay: a persistent session, so that the broker queues readings
     * while it is away. Several relays in a share group: a clean session, so
     * that the broker hands readings only to the relays that are connected
     * (mosquitto 2.0 keeps giving an absent member with a persistent session
     * its share); what was in flight to a relay that died is re-sent by the
     * agents (no end-to-end ack covers it). */
    rc = ts_mqtt_link_new(&mqtt->link, "relay", r->client_id, mqtt->share_group[0] != 0, LOOP_MS,
                          &ops, r, &r->link, why, why_size);
    if (rc) {
        ts_relay_free(r, 0);
        return rc;
    }
    /* the relay only writes PUBACKs: let the kernel coalesce them (the
     * readings' way into Kafka does not wait for them) */
    ts_mqtt_link_set_nodelay(r->link, false);
    *out = r;
    return TS_OK;
}

int ts_relay_start(struct ts_relay *r)
{
    if (!r || r->dr_started)
        return TS_EINVAL;
    int rc = pthread_create(&r->dr_thread, NULL, dr_main, r);
    if (rc) {
        TS_LOG(TS_LOG_ERR, "relay: cannot start the delivery thread: %s", strerror(rc));
        return TS_ESYS;
    }
    r->dr_started = true;
    if ((rc = ts_mqtt_link_start(r->link)) != TS_OK)
        return rc;
    TS_LOG(TS_LOG_INFO, "relay: %s -> kafka %s (topic %s, dead letters %s)", r->filter,
           r->kcfg.brokers, r->kcfg.readings_topic, r->kcfg.deadletter_topic);
    return TS_OK;
}

void ts_relay_stats(struct ts_relay *r, struct ts_relay_stats *st)
{
    pthread_mutex_lock(&r->lock);
    *st = r->st;
    st->fatal = r->fatal;
    pthread_mutex_unlock(&r->lock);
    st->connected = ts_mqtt_link_connected(r->link);
    st->connects = ts_mqtt_link_connects(r->link);
    st->queued = (size_t)rd_kafka_outq_len(r->rk);
    st->layout = atomic_load(&r->layout);
    st->topic_partitions = atomic_load(&r->topic_partitions);
}

void ts_relay_free(struct ts_relay *r, int flush_ms)
{
    if (!r)
        return;
    /* 1. no more messages: release a waiting callback, stop the link */
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    ts_mqtt_link_free(r->link);
    r->link = NULL;
    /* 2. the delivery thread; flush serves delivery reports itself */
    if (r->dr_started) {
        pthread_mutex_lock(&r->lock);
        r->dr_stop = true;
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->dr_thread, NULL);
    }
    /* 3. Kafka: wait up to flush_ms, then drop what is left */
    if (r->rk) {
        int before = rd_kafka_outq_len(r->rk);
        rd_kafka_flush(r->rk, flush_ms > 0 ? flush_ms : 0);
        int left = rd_kafka_outq_len(r->rk);
        if (left > 0)
            TS_LOG(TS_LOG_WARNING,
                   "relay: kafka: %d message(s) not confirmed within %d ms are dropped; no "
                   "acknowledgement covers them, their agents will send them again", left,
                   flush_ms);
        else if (before > 0)
            TS_LOG(TS_LOG_INFO, "relay: kafka: the %d queued message(s) are delivered", before);
        pthread_mutex_lock(&r->lock);
        r->closing = true;
        pthread_mutex_unlock(&r->lock);
        rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        /* serve every purged message's report (a pending marker is freed there) */
        for (int i = 0; i < 100 && rd_kafka_outq_len(r->rk) > 0; i++)
            rd_kafka_poll(r->rk, 10);
        rd_kafka_poll(r->rk, 0);
        if (r->t_readings)
            rd_kafka_topic_destroy(r->t_readings);
        if (r->t_dead)
            rd_kafka_topic_destroy(r->t_dead);
        rd_kafka_destroy(r->rk);
        TS_LOG(TS_LOG_INFO,
               "relay: stopped: %" PRIu64 " received, %" PRIu64 " produced, %" PRIu64
               " delivered, %" PRIu64 " dead letters (%" PRIu64 " markers), %" PRIu64
               " delivery errors, %" PRIu64 " back-pressure waits", r->st.received,
               r->st.produced, r->st.delivered, r->st.dead_letters, r->st.markers,
               r->st.delivery_errors, r->st.backpressure_waits);
    }
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}
