/* SPDX-License-Identifier: Apache-2.0 */
/* publisher.c - readings, status and state over one ts_mqtt_link.
 *
 * One lock (p->lock) guards everything the caller's thread and the link's
 * network thread share. Lock order: p->lock, then libmosquitto's internal
 * locks (mosquitto_publish is called with p->lock held so that a PUBACK
 * cannot arrive before its mid is recorded). The link calls the hooks
 * without its own locks held, and libmosquitto calls on_publish, on_message
 * and on_subscribe (our published, message, subscribed) without its message
 * locks, so they may take p->lock. */
#include "publisher.h"

#include <errno.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ack_bound.h"
#include "decimal.h"
#include "err.h"
#include "log.h"
#include "mqtt_link.h"
#include "now.h"
#include "topics.h"

#define TOPIC_MAX 192
#define JSON_MAX 256
#define LOOP_MS 1000          /* the link's longest mosquitto_loop turn */
#define REFUSED_LOG_MS 60000  /* a refused ack is logged (error) at most this often */

/* A QoS 1 message handed to libmosquitto, in publish order. */
struct flight {
    int mid;                  /* 0: nothing in flight (a reading skipped) */
    bool done;                /* PUBACKed */
    bool reading;             /* else status/state */
    uint64_t hi;              /* readings: seq (covers everything since the previous one) */
};

struct ts_publisher {
    struct ts_mqtt_cfg cfg;
    char station_id[TS_ID_MAX], agent_id[TS_ID_MAX];
    char client_id[128];
    char t_readings[TOPIC_MAX], t_status[TOPIC_MAX], t_state[TOPIC_MAX], t_ack[TOPIC_MAX];
    char will_json[JSON_MAX];     /* also the clean-shutdown status, with "reason" changed */
    char offline_json[JSON_MAX];
    struct ts_mqtt_link *link;
    struct mosquitto *mosq;       /* the link's client */
    bool started;

    pthread_mutex_t lock;
    pthread_cond_t cond;          /* in-flight drained, or disconnected */
    /* guarded by lock: */
    bool connected;               /* the link announced a session, no disconnect since */
    char *status_json;            /* birth: the latest status body */
    char *state_json;             /* last state body published */
    long long state_ms;           /* when (0: never) */
    uint64_t cursor;              /* sending continues after this seq */
    struct ts_ack_bound ab;       /* acked, the highest seq handed to libmosquitto (sent),
                                     what earlier runs may have published: ack_bound.h */
    bool refusing;                /* the latest ack was refused (logged once per episode) */
    long long refused_log_ms;     /* when a refusal was last logged (0: never) */
    bool ack_heard;               /* end-to-end: this connection knows the bridge's ack */
    int sub_mid;                  /* the ack subscription's message id */
    long long suback_ms;          /* when it was granted (0: not yet) */
    long long progress_ms;        /* last time acked advanced or sending restarted */
    int ack_wait_ms;              /* the ack timeout now: ack_timeout_ms, doubled after each
                                     re-send that brought no progress, up to ACK_WAIT_MAX_X x */
    struct flight *fl;            /* ring, fl_len entries from fl_head */
    size_t fl_head, fl_len, fl_cap;
    size_t inflight;              /* entries not done */
    struct ts_publisher_stats st;

    void (*wake)(void *ctx);      /* set before start, then read-only */
    void *wake_ctx;
};

#define ACK_GRACE_MS 500 /* after the SUBACK, how long a retained ack may take to come */
#define ACK_WAIT_MAX_X 16 /* the ack timeout backs off to at most 16 x ack_timeout_ms */

/* ---- in-flight ring (lock held) ---- */

static int fl_reserve(struct ts_publisher *p)
{
    if (p->fl_len < p->fl_cap)
        return TS_OK;
    size_t cap = p->fl_cap ? p->fl_cap * 2 : 64;
    struct flight *n = malloc(cap * sizeof *n);
    if (!n)
        return TS_ENOMEM;
    for (size_t i = 0; i < p->fl_len; i++)
        n[i] = p->fl[(p->fl_head + i) % p->fl_cap];
    free(p->fl);
    p->fl = n;
    p->fl_cap = cap;
    p->fl_head = 0;
    return 0;
}

static void fl_push(struct ts_publisher *p, struct flight f)
{
    p->fl[(p->fl_head + p->fl_len) % p->fl_cap] = f;
    p->fl_len++;
    if (!f.done)
        p->inflight++;
}

/* After ab.acked moved up from was: sending goes on after it, the ack
 * timeout starts over. */
static void acked_moved(struct ts_publisher *p, uint64_t was)
{
    if (p->ab.acked <= was)
        return;
    if (p->cursor < p->ab.acked)
        p->cursor = p->ab.acked;
    p->progress_ms = ts_mono_ms();
    p->ack_wait_ms = p->cfg.ack_timeout_ms;
}

/* Believes v (a PUBACK, the store's floor): ts_ack_bound_floor. */
static void set_acked(struct ts_publisher *p, uint64_t v)
{
    uint64_t was = p->ab.acked;
    ts_ack_bound_floor(&p->ab, v);
    acked_moved(p, was);
}

/* Drops the done entries at the head. In puback mode each popped reading
 * moves acked: every reading published before it was PUBACKed too, and
 * each pass sends contiguously from acked + 1, so everything up to its seq
 * reached the broker. */
static void fl_pop_done(struct ts_publisher *p)
{
    while (p->fl_len && p->fl[p->fl_head].done) {
        const struct flight *f = &p->fl[p->fl_head];
        if (f->reading && p->cfg.ack_mode == TS_ACK_PUBACK)
            set_acked(p, f->hi);
        p->fl_head = (p->fl_head + 1) % p->fl_cap;
        p->fl_len--;
    }
}

/* Publishes a retained QoS 1 control message (status, state); lock held. */
static int publish_control(struct ts_publisher *p, const char *topic, const char *json)
{
    int mid = 0;
    if (fl_reserve(p))
        return MOSQ_ERR_NOMEM;
    int rc = mosquitto_publish(p->mosq, &mid, topic, (int)strlen(json), json, 1, true);
    if (rc == MOSQ_ERR_SUCCESS)
        fl_push(p, (struct flight){.mid = mid});
    else
        TS_LOG(TS_LOG_WARNING, "mqtt: publishing %s failed: %s", topic, mosquitto_strerror(rc));
    return rc;
}

/* ---- the link's hooks (network thread) ---- */

/* A session is up: re-send after acked, the birth, the ack subscription. */
static void on_connected(void *ctx, bool session_present)
{
    struct ts_publisher *p = ctx;

    pthread_mutex_lock(&p->lock);
    p->connected = true;
    p->st.connects++;
    if (p->cursor > p->ab.acked) {
        TS_LOG(TS_LOG_INFO,
               "mqtt: reconnected: re-sending after %" PRIu64 " (sent up to %" PRIu64 ")",
               p->ab.acked, p->cursor);
        p->cursor = p->ab.acked;
        p->st.restarts++;
    }
    p->progress_ms = ts_mono_ms();
    publish_control(p, p->t_status, p->status_json);
    p->ack_heard = p->cfg.ack_mode != TS_ACK_END_TO_END;
    p->suback_ms = 0;
    if (p->cfg.ack_mode == TS_ACK_END_TO_END) {
        int src = mosquitto_subscribe(p->mosq, &p->sub_mid, p->t_ack, 1);
        if (src != MOSQ_ERR_SUCCESS)
            TS_LOG(TS_LOG_WARNING, "mqtt: subscribing to %s failed: %s", p->t_ack,
                   mosquitto_strerror(src));
    }
    pthread_mutex_unlock(&p->lock);
    if (p->wake)
        p->wake(p->wake_ctx);
}

static void on_subscribed(void *ctx, int mid, int qos_count, const int *granted)
{
    struct ts_publisher *p = ctx;

    pthread_mutex_lock(&p->lock);
    if (mid == p->sub_mid)
        p->suback_ms = ts_mono_ms();
    pthread_mutex_unlock(&p->lock);
    if (p->wake)
        p->wake(p->wake_ctx);
}

static void on_disconnected(void *ctx)
{
    struct ts_publisher *p = ctx;

    pthread_mutex_lock(&p->lock);
    p->connected = false;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void on_published(void *ctx, int mid)
{
    struct ts_publisher *p = ctx;

    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->fl_len; i++) {
        struct flight *f = &p->fl[(p->fl_head + i) % p->fl_cap];
        if (!f->done && f->mid == mid) {
            f->done = true;
            p->inflight--;
            if (f->reading)
                p->st.pubacks++;
            break;
        }
    }
    fl_pop_done(p);
    if (p->inflight == 0)
        pthread_cond_broadcast(&p->cond);
    /* wake the caller once half the window is free, not on every PUBACK */
    bool wake = p->inflight <= (size_t)p->cfg.max_inflight / 2;
    pthread_mutex_unlock(&p->lock);
    if (wake && p->wake)
        p->wake(p->wake_ctx);
}

void ts_publisher_set_wake(struct ts_publisher *p, void (*fn)(void *ctx), void *ctx)
{
    p->wake = fn;
    p->wake_ctx = ctx;
}

static void on_message(void *ctx, const struct mosquitto_message *msg)
{
    struct ts_publisher *p = ctx;
    uint64_t v;

    if (!msg->topic || strcmp(msg->topic, p->t_ack) != 0)
        return;
    if (msg->payloadlen == 0) {
        TS_LOG(TS_LOG_INFO, "mqtt: empty message on %s (retained ack cleared): ignored", p->t_ack);
        pthread_mutex_lock(&p->lock);
        ts_ack_bound_cleared(&p->ab);   /* no renumbering past a value that is gone */
        p->refusing = false;
        pthread_mutex_unlock(&p->lock);
        if (p->wake)
            p->wake(p->wake_ctx);
        return;
    }
    /* the ack payload: decimal digits only, 1 to 20 of them, no overflow */
    if (!ts_decimal_u64(msg->payload, (size_t)msg->payloadlen, &v)) {
        char shown[48];
        int n = msg->payloadlen < 40 ? msg->payloadlen : 40;
        const unsigned char *s = msg->payload;
        for (int i = 0; i < n; i++)
            shown[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
        shown[n] = '\0';
        pthread_mutex_lock(&p->lock);
        p->st.bad_acks++;
        pthread_mutex_unlock(&p->lock);
        TS_LOG(TS_LOG_WARNING,
               "mqtt: malformed acknowledgement on %s ignored: '%s%s' "
               "(want a decimal sequence number)",
               p->t_ack, shown, msg->payloadlen > n ? "..." : "");
        return;
    }
    pthread_mutex_lock(&p->lock);
    uint64_t was = p->ab.acked;
    enum ts_ack_verdict verdict = ts_ack_bound_heard(&p->ab, v);
    acked_moved(p, was);
    p->ack_heard = true;
    uint64_t limit = ts_ack_bound_limit(&p->ab);
    bool log_refused = false;
    if (verdict == TS_ACK_REFUSED) {
        /* A retained forged ack comes again on every reconnect: one error
         * line per episode (until an ack is believed again), at most one a
         * minute; each one is counted and shown in the status. */
        long long now = ts_mono_ms();
        p->st.acks_refused++;
        p->st.ack_refused_last = v;
        if (!p->refusing && (!p->refused_log_ms || now - p->refused_log_ms >= REFUSED_LOG_MS)) {
            log_refused = true;
            p->refused_log_ms = now;
        }
        p->refusing = true;
    } else {
        p->refusing = false;
    }
    pthread_mutex_unlock(&p->lock);
    if (p->wake)
        p->wake(p->wake_ctx);
    if (log_refused)
        TS_LOG(TS_LOG_ERR, "mqtt: acknowledgement %" PRIu64 " on %s is above anything this agent "
               "may have published (%" PRIu64 "): ignored, nothing deleted (a forged or "
               "misdirected ack, or another agent with id %s?); further ones are counted in "
               "the status", v, p->t_ack, limit, p->agent_id);
    else if (verdict == TS_ACK_OLD)
        TS_LOG(TS_LOG_DEBUG, "mqtt: acknowledgement %" PRIu64 " not above %" PRIu64 ": ignored",
               v, was);
    else if (verdict == TS_ACK_REFUSED)
        TS_LOG(TS_LOG_DEBUG, "mqtt: acknowledgement %" PRIu64 " above %" PRIu64 ": refused", v,
               limit);
}

/* ---- public ---- */

int ts_publisher_new(const struct ts_mqtt_cfg *cfg, const char *station_id, const char *agent_id,
                     struct ts_publisher **out, char *err, size_t errsize)
{
    if (out)
        *out = NULL;
    if (!cfg || !station_id || !agent_id || !out)
        return ts_fail(err, errsize, TS_EINVAL, "%s", "mqtt: missing argument");
    if (!ts_id_ok(station_id) || strlen(station_id) >= TS_ID_MAX)
        return ts_fail(err, errsize, TS_EINVAL,
                    "mqtt: station id '%s': use letters, digits, '.', '_' and '-' only",
                    station_id);
    if (!ts_id_ok(agent_id) || strlen(agent_id) >= TS_ID_MAX)
        return ts_fail(err, errsize, TS_EINVAL,
                    "mqtt: agent id '%s': use letters, digits, '.', '_' and '-' only", agent_id);

    const char *bad = NULL;
    if (cfg->max_inflight < 1 || cfg->max_inflight > TS_PUBLISHER_INFLIGHT_MAX)
        bad = "max_inflight: out of range";
    else if (cfg->ack_timeout_ms < 1)
        bad = "ack_timeout_ms: must be positive";
    else if (cfg->state_interval_ms < 0)
        bad = "state_interval_ms: negative";
    else if (cfg->ack_mode != TS_ACK_END_TO_END && cfg->ack_mode != TS_ACK_PUBACK)
        bad = "ack_mode: unknown";
    if (bad)
        return ts_fail(err, errsize, TS_ECONFIG, "mqtt: %s", bad);

    struct ts_publisher *p = calloc(1, sizeof *p);
    if (!p)
        return ts_fail(err, errsize, TS_ENOMEM, "%s", "mqtt: out of memory");
    p->cfg = *cfg;
    p->ack_wait_ms = cfg->ack_timeout_ms;
    snprintf(p->station_id, sizeof p->station_id, "%s", station_id);
    snprintf(p->agent_id, sizeof p->agent_id, "%s", agent_id);
    (void)ts_topic_agent(p->t_readings, TOPIC_MAX, station_id, agent_id, TS_TOPIC_READINGS);
    (void)ts_topic_agent(p->t_status, TOPIC_MAX, station_id, agent_id, TS_TOPIC_STATUS);
    (void)ts_topic_agent(p->t_state, TOPIC_MAX, station_id, agent_id, TS_TOPIC_STATE);
    (void)ts_topic_agent(p->t_ack, TOPIC_MAX, station_id, agent_id, TS_TOPIC_ACK);
    snprintf(p->will_json, JSON_MAX,
             "{\"state\":\"offline\",\"agent\":\"%s\",\"station\":\"%s\",\"reason\":\"lost\"}",
             agent_id, station_id);
    snprintf(p->offline_json, JSON_MAX,
             "{\"state\":\"offline\",\"agent\":\"%s\",\"station\":\"%s\",\"reason\":\"shutdown\"}",
             agent_id, station_id);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);

    /* a persistent session (clean session off): the broker keeps the ack
     * subscription and what was published to it while the agent was away */
    static const struct ts_mqtt_link_ops ops = {
        .connected = on_connected, .disconnected = on_disconnected, .message = on_message,
        .published = on_published, .subscribed = on_subscribed};
    int rc = ts_mqtt_client_id(&cfg->link, "turnstile-agent-", agent_id, "", p->client_id,
                               sizeof p->client_id);
    if (rc == TS_OK)
        rc = ts_mqtt_link_new(&cfg->link, "", p->client_id, false, LOOP_MS, &ops, p, &p->link, err,
                              errsize);
    else
        ts_why(err, errsize, "%s", "mqtt: client_id: too long");
    if (rc == TS_OK) {
        p->mosq = ts_mqtt_link_client(p->link);
        mosquitto_int_option(p->mosq, MOSQ_OPT_SEND_MAXIMUM, cfg->max_inflight);
        if (ts_mqtt_link_set_will(p->link, p->t_status, p->will_json) != TS_OK)
            rc = ts_fail(err, errsize, TS_ECONFIG, "%s", "mqtt: will: refused by libmosquitto");
    }
    if (rc != TS_OK) {
        ts_publisher_free(p, 0);
        return rc;
    }
    *out = p;
    return TS_OK;
}

int ts_publisher_start(struct ts_publisher *p, const char *birth_json)
{
    char def[JSON_MAX];

    if (!p || p->started)
        return TS_EINVAL;
    if (!birth_json) {
        snprintf(def, sizeof def, "{\"state\":\"online\",\"agent\":\"%s\",\"station\":\"%s\"}",
                 p->agent_id, p->station_id);
        birth_json = def;
    }
    char *copy = strdup(birth_json);
    if (!copy)
        return TS_ENOMEM;
    pthread_mutex_lock(&p->lock);
    free(p->status_json);
    p->status_json = copy;
    pthread_mutex_unlock(&p->lock);
    int rc = ts_mqtt_link_start(p->link);
    if (rc != TS_OK)
        return rc;
    p->started = true;
    TS_LOG(TS_LOG_INFO, "mqtt: topics turnstile/v1/%s/%s/...", p->station_id, p->agent_id);
    return TS_OK;
}

uint64_t ts_publisher_next_seq(struct ts_publisher *p, size_t *room)
{
    pthread_mutex_lock(&p->lock);
    long long now = ts_mono_ms();
    if (p->connected && p->ab.acked < p->ab.sent && now - p->progress_ms >= p->ack_wait_ms) {
        TS_LOG(TS_LOG_WARNING,
               "mqtt: no acknowledgement past %" PRIu64 " within %d ms (sent up to %" PRIu64
               "): re-sending what follows it",
               p->ab.acked, p->ack_wait_ms, p->ab.sent);
        p->cursor = p->ab.acked;
        p->st.restarts++;
        p->progress_ms = now;
        /* while the bridge is down (or Kafka, behind it), each round re-sends
         * the whole backlog: back off so that an outage costs a few rounds,
         * not one per ack_timeout_ms */
        if (p->ack_wait_ms <= p->cfg.ack_timeout_ms * (ACK_WAIT_MAX_X / 2))
            p->ack_wait_ms *= 2;
    }
    if (p->cursor < p->ab.acked)
        p->cursor = p->ab.acked;
    /* Before sending on a connection, learn the bridge's retained ack: a new
     * store must not reuse numbers the bridge has seen (the caller renumbers,
     * ts_publisher_renumber_ack; nothing is sent until it has). */
    if (!p->ack_heard && p->suback_ms && now - p->suback_ms >= ACK_GRACE_MS)
        p->ack_heard = true;
    size_t max = (size_t)p->cfg.max_inflight;
    if (room)
        *room = p->connected && p->ack_heard && !p->ab.renumber && p->inflight < max
                    ? max - p->inflight : 0;
    uint64_t after = p->cursor;
    pthread_mutex_unlock(&p->lock);
    return after;
}

size_t ts_publisher_send(struct ts_publisher *p, const struct ts_reading *r, size_t n)
{
    char line[TS_READING_LINE_MAX];
    size_t handed = 0;

    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < n && p->connected && p->inflight < (size_t)p->cfg.max_inflight; i++) {
        if (r[i].seq <= p->cursor)
            continue;   /* already sent in this pass, or acknowledged */
        if (fl_reserve(p))
            break;
        int len = ts_reading_format(&r[i], line, sizeof line);
        if (len < 0) {
            TS_LOG(TS_LOG_ERR, "mqtt: reading %" PRIu64 " cannot be formatted (%s): not published",
                   r[i].seq, ts_strerror(-len));
            p->cursor = r[i].seq;
            fl_push(p, (struct flight){.done = true, .reading = true, .hi = r[i].seq});
            fl_pop_done(p);
            continue;
        }
        int mid = 0;
        int rc = mosquitto_publish(p->mosq, &mid, p->t_readings, len, line, 1, false);
        if (rc != MOSQ_ERR_SUCCESS) {
            TS_LOG(rc == MOSQ_ERR_NO_CONN ? TS_LOG_DEBUG : TS_LOG_WARNING,
                   "mqtt: publishing reading %" PRIu64 " failed: %s", r[i].seq,
                   mosquitto_strerror(rc));
            break;
        }
        fl_push(p, (struct flight){.mid = mid, .reading = true, .hi = r[i].seq});
        if (p->ab.acked >= p->ab.sent)
            p->progress_ms = ts_mono_ms();   /* the first one waiting for an ack */
        if (r[i].seq <= p->ab.sent)
            p->st.resent++;
        uint64_t was = p->ab.acked;
        ts_ack_bound_sent(&p->ab, r[i].seq);   /* an ack held since a restart may cover it */
        acked_moved(p, was);
        p->st.sent++;
        p->cursor = r[i].seq;
        handed++;
    }
    pthread_mutex_unlock(&p->lock);
    return handed;
}

uint64_t ts_publisher_acked(struct ts_publisher *p)
{
    pthread_mutex_lock(&p->lock);
    uint64_t a = p->ab.acked;
    pthread_mutex_unlock(&p->lock);
    return a;
}

uint64_t ts_publisher_renumber_ack(struct ts_publisher *p)
{
    pthread_mutex_lock(&p->lock);
    uint64_t a = p->ab.renumber;
    pthread_mutex_unlock(&p->lock);
    return a;
}

void ts_publisher_set_published(struct ts_publisher *p, uint64_t upto)
{
    pthread_mutex_lock(&p->lock);
    ts_ack_bound_published(&p->ab, upto);
    pthread_mutex_unlock(&p->lock);
}

void ts_publisher_set_floor(struct ts_publisher *p, uint64_t acked_upto)
{
    pthread_mutex_lock(&p->lock);
    set_acked(p, acked_upto);
    pthread_mutex_unlock(&p->lock);
}

void ts_publisher_state(struct ts_publisher *p, const char *json, bool force)
{
    pthread_mutex_lock(&p->lock);
    long long now = ts_mono_ms();
    bool due = force || ((!p->state_json || strcmp(p->state_json, json) != 0) &&
                         (!p->state_ms || now - p->state_ms >= p->cfg.state_interval_ms));
    if (p->connected && due) {
        char *copy = strdup(json);
        if (copy && publish_control(p, p->t_state, json) == MOSQ_ERR_SUCCESS) {
            free(p->state_json);
            p->state_json = copy;
            p->state_ms = now;
        } else {
            free(copy);
        }
    }
    pthread_mutex_unlock(&p->lock);
}

void ts_publisher_status(struct ts_publisher *p, const char *json)
{
    char *copy = strdup(json);
    pthread_mutex_lock(&p->lock);
    if (copy) {
        free(p->status_json);
        p->status_json = copy;
    }
    if (p->connected)
        publish_control(p, p->t_status, json);
    pthread_mutex_unlock(&p->lock);
}

void ts_publisher_get_stats(struct ts_publisher *p, struct ts_publisher_stats *out)
{
    uint64_t failures = ts_mqtt_link_connect_failures(p->link);
    pthread_mutex_lock(&p->lock);
    *out = p->st;
    out->connected = p->connected;
    out->connect_failures = failures;
    out->acked = p->ab.acked;
    out->inflight = p->inflight;
    out->highest_sent = p->ab.sent;
    out->ack_refusing = p->refusing;
    out->renumber_ack = p->ab.renumber;
    pthread_mutex_unlock(&p->lock);
}

void ts_publisher_free(struct ts_publisher *p, int timeout_ms)
{
    if (!p)
        return;
    if (p->started) {
        pthread_mutex_lock(&p->lock);
        /* the caller's own offline status, if it just published one, stays */
        bool said = p->status_json && strstr(p->status_json, "\"state\":\"offline\"");
        if (p->connected && !said)
            publish_control(p, p->t_status, p->offline_json);
        int64_t deadline = ts_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
        while (p->connected && p->inflight > 0 && ts_cond_wait_until(&p->cond, &p->lock, deadline))
            ;
        if (p->inflight)
            TS_LOG(TS_LOG_INFO, "mqtt: closing with %zu message(s) not acknowledged by the broker",
                   p->inflight);
        pthread_mutex_unlock(&p->lock);
        ts_mqtt_link_stop(p->link);   /* DISCONNECT (no will), up to ~2 s more */
    }
    ts_mqtt_link_free(p->link);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->fl);
    free(p->status_json);
    free(p->state_json);
    free(p);
}
