/* SPDX-License-Identifier: Apache-2.0 */
/* ack.c - the end-to-end acknowledgements, published retained (see ack.h).
 *
 * A table, by ack topic, of {latest value set, value last published, when}.
 * ts_ack_set only records (any thread, under a->lock). Everything is
 * published from the link's network thread: its tick (every LOOP_MS) sends
 * what changed and whose ack_interval_ms passed, so a burst of sets for one
 * agent within the interval costs one message; its connected hook sends
 * every known value again, after the messages libmosquitto re-queues from
 * the previous connection (mqtt_link.h), so the newest value is the last
 * one the broker retains. a->lock is taken before libmosquitto's locks
 * (mosquitto_publish under it); libmosquitto runs on_publish without them.
 *
 * The table is bounded (ts_ack_limits): an entry whose value went out on
 * the current connection and has not changed for idle_ms is forgotten (the
 * broker retains the value; a later ts_ack_set publishes it again), and past
 * max_agents entries the ones published longest ago go first; a sweep does
 * this every SWEEP_MS. An entry costs about 230 bytes (bench-memory). */
#include "ack.h"

#include <errno.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "hashtab.h"
#include "now.h"
#include "topics.h"
#include "log.h"
#include "mqtt_link.h"
#include "reading.h"

#define LOOP_MS 100
#define SWEEP_MS 1000             /* how often the table is checked against its bounds */
#define TOPIC_MAX TS_TOPIC_AGENT_MAX

struct entry {
    char topic[TOPIC_MAX];    /* turnstile/v1/<station>/<agent>/ack */
    uint64_t latest;          /* highest value set */
    uint64_t published;       /* value last handed to libmosquitto (0: none) */
    long long pub_ms;         /* when (0: never) */
    bool gone;                /* sweep: to be forgotten */
};

struct ts_ack {
    struct ts_mqtt_link *link;
    int interval_ms;
    char client_id[160];

    pthread_mutex_t lock;
    pthread_cond_t cond;      /* flushing: pending or inflight went down */
    /* guarded by lock: */
    struct ts_hashtab index;  /* topic -> struct entry * */
    struct entry **all;       /* every entry, in order of arrival */
    size_t n, cap;
    size_t npending;          /* entries with latest != published */
    bool up;                  /* the link announced a session (and we re-published) */
    long long up_ms;          /* when it did */
    long long idle_ms;        /* ts_ack_limits; 0: none */
    size_t max_agents;        /* ts_ack_limits; 0: none */
    long long sweep_ms;       /* the last sweep */
    uint64_t expired;         /* entries forgotten */
    bool flush;               /* closing: publish what is pending now */
    size_t inflight;          /* published, PUBACK not seen */
    uint64_t published;
};


/* ---- the table (lock held) ---- */

static uint64_t hash(const char *topic) { return ts_hash_str(TS_HASH_INIT, topic); }

static bool same_topic(uintptr_t e, const void *topic)
{
    return !strcmp(((const struct entry *)e)->topic, topic);
}

static struct entry *find(struct ts_ack *a, const char *topic, uint64_t h)
{
    uintptr_t e;
    return ts_hashtab_find(&a->index, h, same_topic, topic, &e) ? (struct entry *)e : NULL;
}

/* The index of every entry of a->all, made again (after a sweep: what a
 * flood of agents made it grow to is given back); lock held. */
static void reindex(struct ts_ack *a)
{
    struct ts_hashtab fresh;
    ts_hashtab_init(&fresh, TS_HASHTAB_MAX);
    for (size_t i = 0; i < a->n; i++)
        if (ts_hashtab_add(&fresh, hash(a->all[i]->topic), (uintptr_t)a->all[i]) != TS_OK) {
            ts_hashtab_free(&fresh); /* out of memory: the old index stays */
            return;
        }
    ts_hashtab_free(&a->index);
    a->index = fresh;
}

static struct entry *add(struct ts_ack *a, const char *topic, uint64_t h)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        struct entry **all = realloc(a->all, cap * sizeof *all);
        if (!all)
            return NULL;
        a->all = all;
        a->cap = cap;
    }
    struct entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    if (ts_hashtab_add(&a->index, h, (uintptr_t)e) != TS_OK) {
        free(e);
        return NULL;
    }
    snprintf(e->topic, sizeof e->topic, "%s", topic);
    a->all[a->n++] = e;
    return e;
}

static int by_pub_ms(const void *x, const void *y)
{
    long long p = (*(struct entry *const *)x)->pub_ms, q = (*(struct entry *const *)y)->pub_ms;
    return p < q ? -1 : p > q;
}

/* An entry whose value went out on this connection (its PUBACK long since
 * came, or the reconnect re-publishes it) and is not waiting to go out. */
static bool settled(const struct ts_ack *a, const struct entry *e)
{
    return a->up && e->pub_ms && e->pub_ms >= a->up_ms && e->published == e->latest;
}

/* Frees the entries marked gone, in one pass, and makes the index again
 * (and shrinks the array when it is mostly empty); lock held. */
static void forget_marked(struct ts_ack *a)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->all[i]->gone) {
            ts_hashtab_remove(&a->index, hash(a->all[i]->topic), (uintptr_t)a->all[i]);
            free(a->all[i]);
            a->expired++;
        } else {
            a->all[k++] = a->all[i];
        }
    }
    a->n = k;
    if (a->cap > 256 && a->n < a->cap / 4) {
        size_t cap = a->cap / 2;
        struct entry **all = realloc(a->all, cap * sizeof *all);
        if (all) {
            a->all = all;
            a->cap = cap;
        }
    }
    reindex(a);
}

/* Applies the bounds of ts_ack_limits; lock held, network thread. Marks
 * what goes, then frees it in one pass: O(n log n) however many go (one
 * forget at a time, each searching the array, was quadratic: seconds under
 * the lock after a flood of new agents). */
static void sweep(struct ts_ack *a, long long now)
{
    size_t gone = 0;
    if (a->idle_ms > 0)
        for (size_t i = 0; i < a->n; i++) {
            struct entry *e = a->all[i];
            if (settled(a, e) && now - e->pub_ms >= a->idle_ms) {
                e->gone = true;
                gone++;
            }
        }
    if (a->max_agents && a->n - gone > a->max_agents) {
        /* the settled ones published longest ago, down to 3/4 of the bound
         * so that this does not run on every sweep */
        size_t nc = 0, goal = a->max_agents - a->max_agents / 4;
        struct entry **c = malloc(a->n * sizeof *c);
        if (c) {
            for (size_t i = 0; i < a->n; i++)
                if (!a->all[i]->gone && settled(a, a->all[i]))
                    c[nc++] = a->all[i];
            qsort(c, nc, sizeof *c, by_pub_ms);
            for (size_t k = 0; k < nc && a->n - gone > goal; k++) {
                c[k]->gone = true;
                gone++;
            }
            free(c);
        }
    }
    if (gone)
        forget_marked(a);
}

/* Publishes e's latest value, retained, QoS 1; lock held, network thread. */
static void publish(struct ts_ack *a, struct entry *e, long long now)
{
    char payload[24];
    int mid = 0;
    int len = snprintf(payload, sizeof payload, "%" PRIu64, e->latest);
    int rc = mosquitto_publish(ts_mqtt_link_client(a->link), &mid, e->topic, len, payload, 1, true);
    if (rc != MOSQ_ERR_SUCCESS) {
        TS_LOG(rc == MOSQ_ERR_NO_CONN ? TS_LOG_DEBUG : TS_LOG_WARNING,
               "ack: publishing %s = %s failed: %s (kept for later)", e->topic, payload,
               mosquitto_strerror(rc));
        return;
    }
    if (e->published != e->latest)
        a->npending--;
    e->published = e->latest;
    e->pub_ms = now;
    a->inflight++;
    a->published++;
    TS_LOG(TS_LOG_DEBUG, "ack: %s = %s", e->topic, payload);
}

/* ---- link hooks (network thread) ---- */

static void ack_connected(void *ctx, bool session_present)
{
    struct ts_ack *a = ctx;
    long long now = ts_mono_ms();
    size_t n = 0;

    pthread_mutex_lock(&a->lock);
    a->up = true;
    a->up_ms = now;
    for (size_t i = 0; i < a->n; i++)
        if (a->all[i]->latest) {
            publish(a, a->all[i], now);
            n++;
        }
    pthread_mutex_unlock(&a->lock);
    if (n)
        TS_LOG(TS_LOG_INFO, "ack: connected: re-published %zu acknowledgement(s)", n);
}

static void ack_disconnected(void *ctx)
{
    struct ts_ack *a = ctx;
    pthread_mutex_lock(&a->lock);
    a->up = false;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static void ack_published(void *ctx, int mid)
{
    struct ts_ack *a = ctx;
    pthread_mutex_lock(&a->lock);
    if (a->inflight)
        a->inflight--;
    if (!a->inflight)
        pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static void ack_tick(void *ctx)
{
    struct ts_ack *a = ctx;
    long long now = ts_mono_ms();

    pthread_mutex_lock(&a->lock);
    if (a->up && a->npending) {
        for (size_t i = 0; i < a->n && a->npending; i++) {
            struct entry *e = a->all[i];
            if (e->published != e->latest &&
                (a->flush || !e->pub_ms || now - e->pub_ms >= a->interval_ms))
                publish(a, e, now);
        }
        if (!a->npending)
            pthread_cond_broadcast(&a->cond);
    }
    if ((a->idle_ms || a->max_agents) && now - a->sweep_ms >= SWEEP_MS) {
        sweep(a, now);
        a->sweep_ms = now;
    }
    pthread_mutex_unlock(&a->lock);
}

/* ---- public ---- */

int ts_ack_new(const struct ts_bridge_mqtt_cfg *mqtt, const char *bridge_id, struct ts_ack **out,
               char *why, size_t why_size)
{
    if (out)
        *out = NULL;
    if (!mqtt || !bridge_id || !out)
        return ts_fail(why, why_size, TS_EINVAL, "%s", "ack: missing argument");
    if (mqtt->ack_interval_ms < 0)
        return ts_fail(why, why_size, TS_ECONFIG, "%s", "ack: [mqtt] ack_interval_ms: negative");

    struct ts_ack *a = calloc(1, sizeof *a);
    if (!a)
        return ts_fail(why, why_size, TS_ENOMEM, "%s", "ack: out of memory");
    a->interval_ms = mqtt->ack_interval_ms;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    ts_hashtab_init(&a->index, TS_HASHTAB_MAX); /* bounded by the sweeps (ts_ack_limits) */
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);

    if (ts_mqtt_client_id(&mqtt->link, TS_BRIDGE_CLIENT_PREFIX, bridge_id, "-ack", a->client_id,
                          sizeof a->client_id)) {
        ts_ack_free(a, 0);
        return ts_fail(why, why_size, TS_ECONFIG, "%s", "ack: mqtt: client id too long");
    }
    static const struct ts_mqtt_link_ops ops = {
        .connected = ack_connected,
        .disconnected = ack_disconnected,
        .published = ack_published,
        .tick = ack_tick,
    };
    int rc = ts_mqtt_link_new(&mqtt->link, "ack", a->client_id, true, LOOP_MS, &ops, a, &a->link,
                              why, why_size);
    if (rc) {
        ts_ack_free(a, 0);
        return rc;
    }
    *out = a;
    return TS_OK;
}

int ts_ack_start(struct ts_ack *a)
{
    if (!a)
        return TS_EINVAL;
    return ts_mqtt_link_start(a->link);
}

int ts_ack_set(struct ts_ack *a, const char *readings_topic, uint64_t acked)
{
    char station[TS_ID_MAX], agent[TS_ID_MAX], topic[TOPIC_MAX];

    if (!a || !ts_topic_agent_parse(readings_topic, TS_TOPIC_READINGS, station, agent))
        return TS_EINVAL;
    if (!acked)
        return TS_OK;   /* nothing acknowledged yet */
    (void)ts_topic_agent(topic, sizeof topic, station, agent, TS_TOPIC_ACK);
    uint64_t h = hash(topic);
    pthread_mutex_lock(&a->lock);
    struct entry *e = find(a, topic, h);
    if (!e && !(e = add(a, topic, h))) {
        pthread_mutex_unlock(&a->lock);
        return TS_ENOMEM;
    }
    if (acked > e->latest) {
        if (e->published == e->latest)
            a->npending++;
        e->latest = acked;
    } else if (acked < e->latest) {
        TS_LOG(TS_LOG_DEBUG, "ack: %s: %" PRIu64 " below %" PRIu64 " ignored", topic, acked,
               e->latest);
    }
    pthread_mutex_unlock(&a->lock);
    return TS_OK;
}

uint64_t ts_ack_get(struct ts_ack *a, const char *readings_topic)
{
    char station[TS_ID_MAX], agent[TS_ID_MAX], topic[TOPIC_MAX];
    uint64_t v = 0;

    if (!a || !ts_topic_agent_parse(readings_topic, TS_TOPIC_READINGS, station, agent))
        return 0;
    (void)ts_topic_agent(topic, sizeof topic, station, agent, TS_TOPIC_ACK);
    pthread_mutex_lock(&a->lock);
    struct entry *e = find(a, topic, hash(topic));
    if (e)
        v = e->latest;
    pthread_mutex_unlock(&a->lock);
    return v;
}

int ts_ack_publish_retained(struct ts_ack *a, const char *topic, const char *payload, size_t len)
{
    int mid = 0;
    if (!a || !topic || !payload || len > INT32_MAX)
        return TS_EINVAL;
    pthread_mutex_lock(&a->lock);
    if (!a->up) {
        pthread_mutex_unlock(&a->lock);
        return TS_ECONNECT;
    }
    int rc = mosquitto_publish(ts_mqtt_link_client(a->link), &mid, topic, (int)len, payload, 1, true);
    if (rc == MOSQ_ERR_SUCCESS)
        a->inflight++;
    pthread_mutex_unlock(&a->lock);
    if (rc != MOSQ_ERR_SUCCESS) {
        TS_LOG(TS_LOG_DEBUG, "ack: publishing %s failed: %s", topic, mosquitto_strerror(rc));
        return TS_ECONNECT;
    }
    return TS_OK;
}

void ts_ack_limits(struct ts_ack *a, int64_t idle_ms, size_t max_agents)
{
    pthread_mutex_lock(&a->lock);
    a->idle_ms = idle_ms > 0 ? idle_ms : 0;
    a->max_agents = max_agents;
    pthread_mutex_unlock(&a->lock);
}

void ts_ack_stats(struct ts_ack *a, struct ts_ack_stats *st)
{
    pthread_mutex_lock(&a->lock);
    st->expired = a->expired;
    st->published = a->published;
    st->agents = a->n;
    st->pending = a->npending;
    pthread_mutex_unlock(&a->lock);
    st->connected = ts_mqtt_link_connected(a->link);
}

void ts_ack_free(struct ts_ack *a, int flush_ms)
{
    if (!a)
        return;
    if (a->link) {
        pthread_mutex_lock(&a->lock);
        a->flush = true;
        int64_t deadline = ts_mono_ms() + (flush_ms > 0 ? flush_ms : 0);
        while (a->up && (a->npending || a->inflight) &&
               ts_cond_wait_until(&a->cond, &a->lock, deadline))
            ;
        if (a->npending || a->inflight)
            TS_LOG(TS_LOG_INFO, "ack: closing with %zu acknowledgement(s) not published and %zu "
                   "not confirmed by the broker (the agents keep those readings a little longer)",
                   a->npending, a->inflight);
        pthread_mutex_unlock(&a->lock);
        ts_mqtt_link_free(a->link);
    }
    for (size_t i = 0; i < a->n; i++)
        free(a->all[i]);
    free(a->all);
    ts_hashtab_free(&a->index);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free(a);
}
