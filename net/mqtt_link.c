/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_link.c - one libmosquitto client and the thread that keeps it
 * connected (see mqtt_link.h); the agent's publisher and the bridge's relay,
 * acknowledger, status and metrics readers each own one.
 *
 * l->lock guards the state the network thread and the owner's thread share
 * (stop, connected, ...); libmosquitto's callbacks take it, and no hook is
 * called with it held. l->errlock is a leaf lock for the last error line
 * libmosquitto logged (on_log may run with libmosquitto's locks held). The
 * client is in threaded mode (mosquitto_threaded_set): hooks and other
 * threads may publish while the network thread is in mosquitto_loop; what
 * they queue is written by the loop's next write phase. */
#include "mqtt_link.h"

#include <errno.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "now.h"
#include "log.h"

#define STOP_FLUSH_MS 2000    /* time for DISCONNECT (and what is queued before it) */
#define CLIENT_ID_MAX 160

struct ts_mqtt_link {
    struct ts_mqtt_link_cfg cfg;
    char name[24];                /* log prefix: "relay: mqtt", or "mqtt" */
    char client_id[CLIENT_ID_MAX];
    int loop_ms;
    struct ts_mqtt_link_ops ops;
    void *ctx;
    struct mosquitto *mosq;
    pthread_t thread;
    bool started, joined;

    pthread_mutex_t lock;
    pthread_cond_t cond;          /* stop requested */
    /* guarded by lock: */
    bool stop;
    bool disconnect_queued;       /* by ts_mqtt_link_stop: the thread does not send its own */
    bool connected;               /* CONNACK accepted, no disconnect since */
    bool session_up;              /* this attempt got a CONNACK 0 */
    bool fresh;                   /* a CONNACK the thread has not announced yet */
    bool session_present;
    int refused;                  /* CONNACK code of this attempt's refusal, 0: none */
    uint64_t connects;
    uint64_t connect_failures;

    pthread_mutex_t errlock;
    char lib_error[256];
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc;

static void lib_init(void)
{
    lib_rc = mosquitto_lib_init();
}

/* ---- libmosquitto callbacks (network thread) ---- */

static void on_log(struct mosquitto *m, void *obj, int level, const char *str)
{
    struct ts_mqtt_link *l = obj;
    int lv;

    switch (level) {
    case MOSQ_LOG_ERR: lv = TS_LOG_ERR; break;
    case MOSQ_LOG_WARNING: lv = TS_LOG_WARNING; break;
    case MOSQ_LOG_NOTICE: lv = TS_LOG_NOTICE; break;
    case MOSQ_LOG_INFO: lv = TS_LOG_INFO; break;
    default: lv = TS_LOG_DEBUG; break;
    }
    if (level == MOSQ_LOG_ERR) {
        pthread_mutex_lock(&l->errlock);
        snprintf(l->lib_error, sizeof l->lib_error, "%s", str);
        pthread_mutex_unlock(&l->errlock);
    }
    TS_LOG(lv, "%s: libmosquitto: %s", l->name, str);
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags)
{
    struct ts_mqtt_link *l = obj;

    pthread_mutex_lock(&l->lock);
    if (rc != 0) {
        l->refused = rc;      /* net_main logs the failure */
        pthread_mutex_unlock(&l->lock);
        return;
    }
    l->connected = true;
    l->session_up = true;
    l->fresh = true;
    l->session_present = flags & 1;
    l->connects++;
    pthread_mutex_unlock(&l->lock);
    TS_LOG(TS_LOG_NOTICE, "%s: connected to %s:%d as %s (%s)", l->name, l->cfg.host,
           l->cfg.port, l->client_id, (flags & 1) ? "session resumed" : "new session");
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    struct ts_mqtt_link *l = obj;

    pthread_mutex_lock(&l->lock);
    bool was = l->connected;
    l->connected = false;
    pthread_mutex_unlock(&l->lock);
    if (!was)
        return;
    if (rc == MOSQ_ERR_SUCCESS)
        TS_LOG(TS_LOG_INFO, "%s: disconnected from %s:%d", l->name, l->cfg.host,
               l->cfg.port);
    else
        TS_LOG(TS_LOG_WARNING, "%s: connection to %s:%d lost: %s; reconnecting", l->name,
               l->cfg.host, l->cfg.port, mosquitto_strerror(rc));
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    struct ts_mqtt_link *l = obj;
    if (l->ops.published)
        l->ops.published(l->ctx, mid);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    struct ts_mqtt_link *l = obj;
    if (l->ops.message)
        l->ops.message(l->ctx, msg);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted)
{
    struct ts_mqtt_link *l = obj;
    if (l->ops.subscribed)
        l->ops.subscribed(l->ctx, mid, n, granted);
}

/* ---- the network thread ---- */

/* Waits up to ms unless stop is requested; lock held. Returns stop. */
static bool wait_locked(struct ts_mqtt_link *l, long long ms)
{
    struct timespec ts = ts_mono_deadline(ms);
    while (!l->stop && pthread_cond_timedwait(&l->cond, &l->lock, &ts) != ETIMEDOUT)
        ;
    return l->stop;
}

static void connect_failed(struct ts_mqtt_link *l, int rc, int err, unsigned attempt, int wait_ms)
{
    char why[400], lib[256];

    pthread_mutex_lock(&l->errlock);
    snprintf(lib, sizeof lib, "%s", l->lib_error);
    pthread_mutex_unlock(&l->errlock);
    pthread_mutex_lock(&l->lock);
    int refused = l->refused;
    l->connect_failures++;
    pthread_mutex_unlock(&l->lock);

    if (refused)
        snprintf(why, sizeof why, "refused by the broker: %s%s", mosquitto_connack_string(refused),
                 refused == 4 || refused == 5 ? " (check username and password)" : "");
    else if (rc == MOSQ_ERR_ERRNO)
        snprintf(why, sizeof why, "%s", strerror(err));
    else if (rc == MOSQ_ERR_TLS || rc == MOSQ_ERR_TLS_HANDSHAKE)
        snprintf(why, sizeof why, "TLS failed: %s (check ca_file, cert_file, key_file and the "
                 "broker's certificate)", lib[0] ? lib : mosquitto_strerror(rc));
    else if (rc == MOSQ_ERR_EAI)
        snprintf(why, sizeof why, "cannot resolve host name '%s'", l->cfg.host);
    else
        snprintf(why, sizeof why, "%s%s%s", mosquitto_strerror(rc), lib[0] ? ": " : "", lib);
    TS_LOG(attempt == 1 ? TS_LOG_ERR : TS_LOG_WARNING,
           "%s: cannot connect to %s:%d (attempt %u): %s; retrying in %d ms", l->name,
           l->cfg.host, l->cfg.port, attempt, why, wait_ms);
}

/* Tells the owner about a session that came or went during the last turn;
 * *announced: the owner was told "connected" and not "disconnected" since. */
static void announce(struct ts_mqtt_link *l, bool *announced)
{
    pthread_mutex_lock(&l->lock);
    bool c = l->connected, fresh = l->fresh, sp = l->session_present;
    l->fresh = false;
    pthread_mutex_unlock(&l->lock);
    if (*announced && (!c || fresh)) {
        *announced = false;
        if (l->ops.disconnected)
            l->ops.disconnected(l->ctx);
    }
    if (c && fresh) {
        *announced = true;
        if (l->ops.connected)
            l->ops.connected(l->ctx, sp);
    }
}

static void *net_main(void *arg)
{
    struct ts_mqtt_link *l = arg;
    const int min = l->cfg.reconnect_min_ms, max = l->cfg.reconnect_max_ms;
    int backoff = min;        /* the wait after the next failure */
    int wait = 0;             /* before the next attempt */
    unsigned attempt = 0;     /* failed attempts in a row */
    bool first = true, need_connect = true, stop = false, announced = false;

    while (!stop) {
        if (need_connect) {
            pthread_mutex_lock(&l->lock);
            if (wait > 0 && wait_locked(l, wait)) {
                pthread_mutex_unlock(&l->lock);
                break;
            }
            stop = l->stop;
            l->session_up = false;
            l->refused = 0;
            pthread_mutex_unlock(&l->lock);
            if (stop)
                break;
            pthread_mutex_lock(&l->errlock);
            l->lib_error[0] = '\0';
            pthread_mutex_unlock(&l->errlock);

            int rc = first ? mosquitto_connect_async(l->mosq, l->cfg.host, l->cfg.port,
                                                     l->cfg.keepalive_s)
                           : mosquitto_reconnect_async(l->mosq);
            int err = errno;
            first = false;
            if (rc != MOSQ_ERR_SUCCESS) {
                wait = backoff;
                backoff = backoff > max / 2 ? max : backoff * 2;
                connect_failed(l, rc, err, ++attempt, wait);
                continue;
            }
            need_connect = false;
        }

        int rc = mosquitto_loop(l->mosq, l->loop_ms, 1);
        int err = errno;
        pthread_mutex_lock(&l->lock);
        stop = l->stop;
        bool up = l->session_up;
        bool was = l->connected;
        if (rc != MOSQ_ERR_SUCCESS) {
            l->connected = false;
            l->session_up = false;
        }
        pthread_mutex_unlock(&l->lock);
        announce(l, &announced);
        if (l->ops.tick)
            l->ops.tick(l->ctx);
        if (up) {
            attempt = 0;
            backoff = min;
        }
        if (rc == MOSQ_ERR_SUCCESS || stop)
            continue;
        need_connect = true;
        wait = backoff;
        backoff = backoff > max / 2 ? max : backoff * 2;
        if (!up)
            connect_failed(l, rc, err, ++attempt, wait);
        else if (was)   /* on_disconnect did not say it */
            TS_LOG(TS_LOG_WARNING, "%s: connection to %s:%d lost: %s; reconnecting",
                   l->name, l->cfg.host, l->cfg.port,
                   rc == MOSQ_ERR_ERRNO ? strerror(err) : mosquitto_strerror(rc));
    }

    /* Stopping: no hook runs in libmosquitto any more unless we loop. */
    bool clean = l->ops.clean_stop ? l->ops.clean_stop(l->ctx) : true;
    pthread_mutex_lock(&l->lock);
    bool c = l->connected, queued = l->disconnect_queued;
    pthread_mutex_unlock(&l->lock);
    if (c && clean && (queued || mosquitto_disconnect(l->mosq) == MOSQ_ERR_SUCCESS)) {
        long long deadline = ts_mono_ms() + STOP_FLUSH_MS;
        while (ts_mono_ms() < deadline) {
            pthread_mutex_lock(&l->lock);
            c = l->connected;
            pthread_mutex_unlock(&l->lock);
            if (!c || mosquitto_loop(l->mosq, 100, 1) != MOSQ_ERR_SUCCESS)
                break;
        }
    } else if (c) {
        TS_LOG(TS_LOG_INFO, "%s: closing the connection without DISCONNECT", l->name);
    }
    pthread_mutex_lock(&l->lock);
    l->connected = false;
    pthread_mutex_unlock(&l->lock);
    if (announced && l->ops.disconnected)
        l->ops.disconnected(l->ctx);
    return NULL;
}

/* ---- public ---- */

int ts_mqtt_link_new(const struct ts_mqtt_link_cfg *cfg, const char *name, const char *client_id,
                     bool clean_session, int loop_ms, const struct ts_mqtt_link_ops *ops,
                     void *ctx, struct ts_mqtt_link **out, char *why, size_t why_size)
{
    char pfx[24], bad[400];

    if (out)
        *out = NULL;
    if (!cfg || !name || !client_id || !out)
        return ts_fail(why, why_size, TS_EINVAL, "%s", "mqtt: missing argument");
    snprintf(pfx, sizeof pfx, "%s%smqtt", name, name[0] ? ": " : "");
    if (ts_mqtt_link_cfg_valid(cfg, bad, sizeof bad) != TS_OK)
        return ts_fail(why, why_size, TS_ECONFIG, "%s: %s", pfx, bad);
    if (!client_id[0] || strlen(client_id) >= CLIENT_ID_MAX)
        return ts_fail(why, why_size, TS_ECONFIG, "%s: client_id: empty or too long", pfx);

    pthread_once(&lib_once, lib_init);
    if (lib_rc != MOSQ_ERR_SUCCESS)
        return ts_fail(why, why_size, TS_ECONFIG, "%s: mosquitto_lib_init: %s", pfx,
                    mosquitto_strerror(lib_rc));

    struct ts_mqtt_link *l = calloc(1, sizeof *l);
    if (!l)
        return ts_fail(why, why_size, TS_ENOMEM, "%s: out of memory", pfx);
    l->cfg = *cfg;
    snprintf(l->name, sizeof l->name, "%s", pfx);
    snprintf(l->client_id, sizeof l->client_id, "%s", client_id);
    l->loop_ms = loop_ms > 0 ? loop_ms : 1000;
    if (ops)
        l->ops = *ops;
    l->ctx = ctx;

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->lock, NULL);
    pthread_mutex_init(&l->errlock, NULL);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);

    int rc;
    l->mosq = mosquitto_new(l->client_id, clean_session, l);
    if (!l->mosq) {
        int e = errno;
        ts_mqtt_link_free(l);
        return ts_fail(why, why_size, e == ENOMEM ? TS_ENOMEM : TS_ECONFIG,
                    "%s: cannot create the client: %s", pfx,
                    e == ENOMEM ? "out of memory" : "invalid client id");
    }
    mosquitto_threaded_set(l->mosq, true);
    mosquitto_int_option(l->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(l->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    if (cfg->username[0] &&
        (rc = mosquitto_username_pw_set(l->mosq, cfg->username,
                                        cfg->password[0] ? cfg->password : NULL))) {
        ts_mqtt_link_free(l);
        return ts_fail(why, why_size, TS_ECONFIG, "%s: username/password: %s", pfx,
                    mosquitto_strerror(rc));
    }
    if (cfg->ca_file[0]) {
        rc = mosquitto_tls_set(l->mosq, cfg->ca_file, NULL,
                               cfg->cert_file[0] ? cfg->cert_file : NULL,
                               cfg->key_file[0] ? cfg->key_file : NULL, NULL);
        if (!rc)
            rc = mosquitto_tls_opts_set(l->mosq, 1, NULL, NULL);   /* SSL_VERIFY_PEER */
        if (!rc)
            rc = mosquitto_tls_insecure_set(l->mosq, cfg->tls_insecure);
        if (rc) {
            ts_mqtt_link_free(l);
            return ts_fail(why, why_size, TS_ECONFIG,
                        "%s: TLS settings refused by libmosquitto: %s", pfx,
                        mosquitto_strerror(rc));
        }
    }
    mosquitto_connect_with_flags_callback_set(l->mosq, on_connect);
    mosquitto_disconnect_callback_set(l->mosq, on_disconnect);
    mosquitto_publish_callback_set(l->mosq, on_publish);
    mosquitto_message_callback_set(l->mosq, on_message);
    mosquitto_subscribe_callback_set(l->mosq, on_subscribe);
    mosquitto_log_callback_set(l->mosq, on_log);
    *out = l;
    return TS_OK;
}

void ts_mqtt_link_set_nodelay(struct ts_mqtt_link *l, bool on)
{
    mosquitto_int_option(l->mosq, MOSQ_OPT_TCP_NODELAY, on ? 1 : 0);
}

int ts_mqtt_link_set_will(struct ts_mqtt_link *l, const char *topic, const char *payload)
{
    int rc = mosquitto_will_set(l->mosq, topic, (int)strlen(payload), payload, 1, true);
    return rc == MOSQ_ERR_SUCCESS ? TS_OK : TS_EINVAL;
}

int ts_mqtt_link_start(struct ts_mqtt_link *l)
{
    if (!l || l->started)
        return TS_EINVAL;
    int rc = pthread_create(&l->thread, NULL, net_main, l);
    if (rc) {
        errno = rc;
        TS_LOG(TS_LOG_ERR, "%s: cannot start the network thread: %s", l->name, strerror(rc));
        return TS_ESYS;
    }
    l->started = true;
    TS_LOG(TS_LOG_INFO, "%s: connecting to %s:%d%s as %s", l->name, l->cfg.host,
           l->cfg.port, l->cfg.ca_file[0] ? " (TLS)" : "", l->client_id);
    return TS_OK;
}

struct mosquitto *ts_mqtt_link_client(struct ts_mqtt_link *l)
{
    return l->mosq;
}

bool ts_mqtt_link_connected(struct ts_mqtt_link *l)
{
    pthread_mutex_lock(&l->lock);
    bool c = l->connected;
    pthread_mutex_unlock(&l->lock);
    return c;
}

uint64_t ts_mqtt_link_connects(struct ts_mqtt_link *l)
{
    pthread_mutex_lock(&l->lock);
    uint64_t n = l->connects;
    pthread_mutex_unlock(&l->lock);
    return n;
}

uint64_t ts_mqtt_link_connect_failures(struct ts_mqtt_link *l)
{
    pthread_mutex_lock(&l->lock);
    uint64_t n = l->connect_failures;
    pthread_mutex_unlock(&l->lock);
    return n;
}

void ts_mqtt_link_stop(struct ts_mqtt_link *l)
{
    if (!l || !l->started || l->joined)
        return;
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    bool wake = l->connected && !l->ops.clean_stop;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    /* The thread may wait in mosquitto_loop for up to loop_ms. Without a
     * clean_stop hook it sends DISCONNECT: queued from here instead, it wakes
     * the loop (threaded mode), and the stop takes a round trip. (Not under
     * l->lock: libmosquitto takes its own locks, and its callbacks take ours.) */
    if (wake && mosquitto_disconnect(l->mosq) == MOSQ_ERR_SUCCESS) {
        pthread_mutex_lock(&l->lock);
        l->disconnect_queued = true;
        pthread_mutex_unlock(&l->lock);
    }
    pthread_join(l->thread, NULL);
    l->joined = true;
}

void ts_mqtt_link_free(struct ts_mqtt_link *l)
{
    if (!l)
        return;
    ts_mqtt_link_stop(l);
    if (l->mosq)
        mosquitto_destroy(l->mosq);
    pthread_mutex_destroy(&l->lock);
    pthread_mutex_destroy(&l->errlock);
    pthread_cond_destroy(&l->cond);
    free(l);
}
