/* SPDX-License-Identifier: Apache-2.0 */
/* bridge_status.c - the bridge's retained status on MQTT (see bridge_status.h).
 *
 * The caller's thread sets the document under st->lock; the link's network
 * thread publishes it from its tick when it changed, and from its connected
 * hook. st->lock is taken before libmosquitto's locks. */
#include "bridge_status.h"

#include <mosquitto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "mqtt_link.h"
#include "now.h"
#include "topics.h"

#define LOOP_MS 200
#define TOPIC_MAX 160
#define EXTRA_MAX 1024        /* other documents (two per webhook source) */

/* Another retained document (ts_bridge_status_put). */
struct extra {
    char topic[TOPIC_MAX];
    char *json;
    bool dirty;
};

struct ts_bridge_status {
    struct ts_mqtt_link *link;
    char topic[TOPIC_MAX];
    char client_id[160];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* guarded by lock: */
    char *json;               /* the newest document */
    bool dirty;               /* not published since it changed */
    struct extra *extras;     /* n_extras of them, in the order first put */
    size_t n_extras;
    bool up;
    int inflight;
};

/* lock held: json on topic, retained; true once libmosquitto took it */
static bool publish_one(struct ts_bridge_status *st, const char *topic, const char *json)
{
    int rc = mosquitto_publish(ts_mqtt_link_client(st->link), NULL, topic, (int)strlen(json),
                               json, 1, true);
    if (rc != MOSQ_ERR_SUCCESS)
        return false;
    st->inflight++;
    return true;
}

/* lock held: the status if dirty, then the other documents that are */
static void publish(struct ts_bridge_status *st)
{
    if (!st->up)
        return;
    if (st->json && st->dirty && publish_one(st, st->topic, st->json))
        st->dirty = false;
    for (size_t i = 0; i < st->n_extras; i++)
        if (st->extras[i].dirty && publish_one(st, st->extras[i].topic, st->extras[i].json))
            st->extras[i].dirty = false;
}

static void on_connected(void *ctx, bool session_present)
{
    struct ts_bridge_status *st = ctx;
    pthread_mutex_lock(&st->lock);
    st->up = true;
    st->inflight = 0;
    st->dirty = true;   /* everything again: the broker may have lost its retained ones */
    for (size_t i = 0; i < st->n_extras; i++)
        st->extras[i].dirty = true;
    publish(st);
    pthread_mutex_unlock(&st->lock);
}

static void on_disconnected(void *ctx)
{
    struct ts_bridge_status *st = ctx;
    pthread_mutex_lock(&st->lock);
    st->up = false;
    st->dirty = true;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

static void on_published(void *ctx, int mid)
{
    struct ts_bridge_status *st = ctx;
    pthread_mutex_lock(&st->lock);
    if (st->inflight > 0)
        st->inflight--;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

static void on_tick(void *ctx)
{
    struct ts_bridge_status *st = ctx;
    pthread_mutex_lock(&st->lock);
    publish(st);
    pthread_mutex_unlock(&st->lock);
}

int ts_bridge_status_new(const struct ts_bridge_mqtt_cfg *mqtt, const char *bridge_id,
                         struct ts_bridge_status **out, char *why, size_t why_size)
{
    *out = NULL;
    struct ts_bridge_status *st = calloc(1, sizeof *st);
    if (!st)
        return ts_fail(why, why_size, TS_ENOMEM, "%s", "status: out of memory");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, &ca);
    pthread_condattr_destroy(&ca);
    (void)ts_topic_bridge(st->topic, sizeof st->topic, bridge_id, TS_TOPIC_STATUS);
    if (ts_mqtt_client_id(&mqtt->link, TS_BRIDGE_CLIENT_PREFIX, bridge_id, "-status", st->client_id,
                          sizeof st->client_id)) {
        ts_bridge_status_free(st, NULL, 0);
        return ts_fail(why, why_size, TS_ECONFIG, "%s", "status: mqtt: client id too long");
    }
    static const struct ts_mqtt_link_ops ops = {
        .connected = on_connected,
        .disconnected = on_disconnected,
        .published = on_published,
        .tick = on_tick,
    };
    int rc = ts_mqtt_link_new(&mqtt->link, "status", st->client_id, true, LOOP_MS, &ops, st,
                              &st->link, why, why_size);
    if (rc) {
        ts_bridge_status_free(st, NULL, 0);
        return rc;
    }
    char will[160];
    snprintf(will, sizeof will, "{\"state\":\"offline\",\"bridge\":\"%s\",\"reason\":\"lost\"}",
             bridge_id);
    if (ts_mqtt_link_set_will(st->link, st->topic, will) != TS_OK) {
        ts_bridge_status_free(st, NULL, 0);
        return ts_fail(why, why_size, TS_ECONFIG, "%s", "status: mqtt: the last will is refused");
    }
    *out = st;
    return TS_OK;
}

int ts_bridge_status_start(struct ts_bridge_status *st)
{
    return ts_mqtt_link_start(st->link);
}

const char *ts_bridge_status_topic(const struct ts_bridge_status *st)
{
    return st->topic;
}

void ts_bridge_status_set(struct ts_bridge_status *st, const char *json)
{
    pthread_mutex_lock(&st->lock);
    if (!st->json || strcmp(st->json, json) != 0) {
        char *copy = strdup(json);
        if (copy) {
            free(st->json);
            st->json = copy;
            st->dirty = true;
        }
    }
    pthread_mutex_unlock(&st->lock);
}

int ts_bridge_status_put(struct ts_bridge_status *st, const char *topic, const char *json)
{
    if (strlen(topic) >= TOPIC_MAX)
        return TS_EINVAL;
    int rc = TS_OK;
    pthread_mutex_lock(&st->lock);
    struct extra *e = NULL;
    for (size_t i = 0; i < st->n_extras && !e; i++)
        if (!strcmp(st->extras[i].topic, topic))
            e = &st->extras[i];
    if (!e) {
        struct extra *n = st->n_extras < EXTRA_MAX
                              ? realloc(st->extras, (st->n_extras + 1) * sizeof *n) : NULL;
        if (!n) {
            rc = st->n_extras < EXTRA_MAX ? TS_ENOMEM : TS_EFULL;
        } else {
            st->extras = n;
            e = &n[st->n_extras++];
            memset(e, 0, sizeof *e);
            snprintf(e->topic, sizeof e->topic, "%s", topic);
        }
    }
    if (e && (!e->json || strcmp(e->json, json) != 0)) {
        char *copy = strdup(json);
        if (copy) {
            free(e->json);
            e->json = copy;
            e->dirty = true;
        } else {
            rc = TS_ENOMEM;
        }
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static bool any_dirty(const struct ts_bridge_status *st)
{
    bool d = st->dirty;
    for (size_t i = 0; i < st->n_extras && !d; i++)
        d = st->extras[i].dirty;
    return d;
}

void ts_bridge_status_free(struct ts_bridge_status *st, const char *last_json, int flush_ms)
{
    if (!st)
        return;
    if (st->link) {
        if (last_json)
            ts_bridge_status_set(st, last_json);
        pthread_mutex_lock(&st->lock);
        publish(st);
        int64_t deadline = ts_mono_ms() + flush_ms;
        while (st->up && (st->inflight > 0 || any_dirty(st)) &&
               ts_cond_wait_until(&st->cond, &st->lock, deadline))
            ;
        pthread_mutex_unlock(&st->lock);
        ts_mqtt_link_free(st->link);
    }
    free(st->json);
    for (size_t i = 0; i < st->n_extras; i++)
        free(st->extras[i].json);
    free(st->extras);
    pthread_mutex_destroy(&st->lock);
    pthread_cond_destroy(&st->cond);
    free(st);
}
