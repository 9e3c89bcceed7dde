/* SPDX-License-Identifier: Apache-2.0 */
#include "poller.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "now.h"

#define QUEUE_MAX 65536       /* samples; past this the oldest are dropped and counted */

struct device {
    const struct ts_device_cfg *cfg; /* lent, from the agent's config */
    struct ts_source *src;
    const struct ts_turnstile_cfg **turnstiles; /* owned array of lent pointers */
    size_t *index;            /* turnstile index into cfg->turnstiles, per source turnstile */
    size_t n;                 /* the source's turnstiles */
    int64_t next_try_ms;      /* monotonic; 0: now */
    int backoff_ms;
    bool open;
    struct ts_device_stats stats; /* the bus thread's own */
    struct ts_device_stats shown; /* copy of stats for other threads, under lock */
};

struct bus {
    struct ts_poller *poller;
    char key[TS_PATH_MAX + 16];
    size_t *devices;          /* indexes into poller->devices */
    size_t n_devices;
    pthread_t thread;
    bool started;
};

struct ts_poller {
    const struct ts_agent_cfg *cfg;
    struct device *devices;   /* one per cfg->devices */
    struct bus *buses;
    size_t n_buses;
    pthread_mutex_t lock;     /* guards queue, stats copies and running */
    pthread_cond_t samples;   /* samples queued, or stop: wakes the taker */
    pthread_cond_t stopping;  /* stop: wakes the bus threads */
    struct ts_sample *queue;
    size_t q_head, q_len;
    uint64_t dropped;
    bool running;
    bool woken;               /* ts_poller_wake since the last take */
};

static void push(struct ts_poller *p, const struct ts_sample *s)
{
    pthread_mutex_lock(&p->lock);
    if (p->q_len == QUEUE_MAX) {
        p->q_head = (p->q_head + 1) % QUEUE_MAX;
        p->q_len--;
        if (p->dropped++ == 0)
            TS_LOG(TS_LOG_ERR, "sample queue full: the main loop is not keeping up");
    }
    p->queue[(p->q_head + p->q_len++) % QUEUE_MAX] = *s;
    pthread_cond_signal(&p->samples);
    pthread_mutex_unlock(&p->lock);
}

static void count_fault(struct ts_device_stats *st, int err)
{
    st->errors++;
    st->last_error = err;
    switch (err) {
    case TS_ETIMEOUT: st->timeouts++; break;
    case TS_ECRC: st->crc_errors++; break;
    case TS_ESHORT: st->short_responses++; break;
    case TS_ECONNECT: st->connect_errors++; break;
    default:
        if (err > TS_EDEVICE_BASE)
            st->exceptions++;
        break;
    }
}

static void fault(struct ts_poller *p, struct device *dev, int err, const char *turnstile)
{
    const struct ts_device_cfg *cfg = dev->cfg;
    char what[TS_PATH_MAX + 64];
    struct ts_device_stats *st = &dev->stats;

    count_fault(st, err);
    st->last_rtt_us = ts_source_rtt_us(dev->src);
    st->link = TS_LINK_BACKOFF;
    pthread_mutex_lock(&p->lock);
    dev->shown = *st;
    pthread_mutex_unlock(&p->lock);
    dev->backoff_ms = dev->backoff_ms ? dev->backoff_ms * 2 : cfg->backoff_min_ms;
    if (dev->backoff_ms > cfg->backoff_max_ms)
        dev->backoff_ms = cfg->backoff_max_ms;
    dev->next_try_ms = ts_mono_ms() + dev->backoff_ms;
    ts_source_close(dev->src);
    dev->open = false;
    ts_device_describe(cfg, what, sizeof what);
    const char *why = ts_source_why(dev->src);
    TS_LOG(TS_LOG_WARNING, "device %s (%s)%s%s: %s%s%s; backing off %d ms (%llu faults)",
           cfg->name, what, turnstile ? ": turnstile " : "", turnstile ? turnstile : "",
           ts_strerror(err), *why ? ": " : "", why, dev->backoff_ms,
           (unsigned long long)st->errors);
}

static void poll_device(struct ts_poller *p, struct device *dev)
{
    struct ts_device_stats *st = &dev->stats;
    int err;

    if (dev->next_try_ms && ts_mono_ms() < dev->next_try_ms)
        return;
    if (!dev->open) {
        if ((err = ts_source_open(dev->src)) != TS_OK)
            return fault(p, dev, err, NULL);
        dev->open = true;
    }
    for (size_t i = 0; i < dev->n; i++) {
        struct ts_sample s = {.turnstile = dev->index[i]};
        err = ts_source_read(dev->src, i, &s.entries, &s.exits);
        if (err != TS_OK)
            return fault(p, dev, err, dev->turnstiles[i]->name);
        s.mono_ms = ts_mono_ms();
        push(p, &s);
    }
    st->polls++;
    st->last_rtt_us = ts_source_rtt_us(dev->src);
    if (st->link != TS_LINK_UP) {
        char what[TS_PATH_MAX + 64];
        ts_device_describe(dev->cfg, what, sizeof what);
        TS_LOG(st->errors ? TS_LOG_NOTICE : TS_LOG_INFO, "device %s (%s): link up",
               dev->cfg->name, what);
    }
    st->link = TS_LINK_UP;
    pthread_mutex_lock(&p->lock);
    dev->shown = *st;
    pthread_mutex_unlock(&p->lock);
    dev->backoff_ms = 0;
    dev->next_try_ms = 0;
}

static void *bus_main(void *arg)
{
    struct bus *bus = arg;
    struct ts_poller *p = bus->poller;
    int64_t interval = p->cfg->agent.poll_interval_ms;
    int64_t next = ts_mono_ms();

    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool running = p->running;
        pthread_mutex_unlock(&p->lock);
        if (!running)
            break;
        for (size_t i = 0; i < bus->n_devices; i++)
            poll_device(p, &p->devices[bus->devices[i]]);
        next += interval;
        int64_t now = ts_mono_ms();
        if (next < now)
            next = now; /* overran: poll again at once, but do not burst to catch up */
        /* sleep until next, woken early by stop */
        struct timespec until = ts_mono_deadline(next - now);
        pthread_mutex_lock(&p->lock);
        while (p->running && pthread_cond_timedwait(&p->stopping, &p->lock, &until) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

static struct bus *bus_for(struct ts_poller *p, const char *key)
{
    for (size_t i = 0; i < p->n_buses; i++)
        if (strcmp(p->buses[i].key, key) == 0)
            return &p->buses[i];
    struct bus *b = &p->buses[p->n_buses++];
    snprintf(b->key, sizeof b->key, "%s", key);
    b->poller = p;
    return b;
}

int ts_poller_new(const struct ts_agent_cfg *cfg, struct ts_poller **out)
{
    struct ts_poller *p = calloc(1, sizeof *p);
    int rc = TS_ENOMEM;

    *out = NULL;
    if (!p)
        return TS_ENOMEM;
    p->cfg = cfg;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->samples, &ca);
    pthread_cond_init(&p->stopping, &ca);
    pthread_condattr_destroy(&ca);
    p->queue = calloc(QUEUE_MAX, sizeof *p->queue);
    p->devices = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof *p->devices);
    p->buses = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof *p->buses);
    if (!p->queue || !p->devices || !p->buses)
        goto fail;
    for (size_t d = 0; d < cfg->n_devices; d++) {
        struct device *dev = &p->devices[d];
        size_t n = 0;
        dev->cfg = cfg->devices[d];
        dev->turnstiles = calloc(cfg->n_turnstiles, sizeof *dev->turnstiles);
        dev->index = calloc(cfg->n_turnstiles, sizeof *dev->index);
        if (!dev->turnstiles || !dev->index)
            goto fail;
        for (size_t t = 0; t < cfg->n_turnstiles; t++) {
            if (cfg->turnstiles[t]->device_index == d) {
                dev->index[n] = t;
                dev->turnstiles[n++] = cfg->turnstiles[t];
            }
        }
        if (n == 0) {
            TS_LOG(TS_LOG_WARNING, "device %s serves no turnstile: not polled", cfg->devices[d]->name);
            continue;
        }
        dev->n = n;
        rc = ts_source_new(cfg->devices[d], dev->turnstiles, n, &dev->src);
        if (rc != TS_OK) {
            TS_LOG(TS_LOG_ERR, "device %s: %s", cfg->devices[d]->name, ts_strerror(rc));
            goto fail;
        }
        char key[TS_PATH_MAX + 16];
        ts_hal_bus_key(cfg->devices[d], key, sizeof key);
        struct bus *b = bus_for(p, key);
        size_t *devs = realloc(b->devices, (b->n_devices + 1) * sizeof *devs);
        if (!devs) {
            rc = TS_ENOMEM;
            goto fail;
        }
        b->devices = devs;
        b->devices[b->n_devices++] = d;
    }
    *out = p;
    return TS_OK;
fail:
    ts_poller_free(p);
    return rc;
}

int ts_poller_start(struct ts_poller *p)
{
    p->running = true;
    for (size_t i = 0; i < p->n_buses; i++) {
        int e = pthread_create(&p->buses[i].thread, NULL, bus_main, &p->buses[i]);
        if (e) {
            errno = e;
            ts_poller_stop(p);
            return TS_ESYS;
        }
        p->buses[i].started = true;
    }
    return TS_OK;
}

size_t ts_poller_take(struct ts_poller *p, struct ts_sample *out, size_t max, int timeout_ms)
{
    struct timespec until = ts_mono_deadline(timeout_ms);
    size_t n = 0;

    pthread_mutex_lock(&p->lock);
    while (p->q_len == 0 && p->running && !p->woken &&
           pthread_cond_timedwait(&p->samples, &p->lock, &until) != ETIMEDOUT)
        ;
    p->woken = false;
    while (n < max && p->q_len > 0) {
        out[n++] = p->queue[p->q_head];
        p->q_head = (p->q_head + 1) % QUEUE_MAX;
        p->q_len--;
    }
    pthread_mutex_unlock(&p->lock);
    return n;
}

void ts_poller_wake(struct ts_poller *p)
{
    pthread_mutex_lock(&p->lock);
    p->woken = true;
    pthread_cond_signal(&p->samples);
    pthread_mutex_unlock(&p->lock);
}

void ts_poller_device_stats(struct ts_poller *p, size_t i, struct ts_device_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&p->lock);
    if (i < p->cfg->n_devices)
        *out = p->devices[i].shown;
    pthread_mutex_unlock(&p->lock);
}

void ts_poller_stop(struct ts_poller *p)
{
    pthread_mutex_lock(&p->lock);
    p->running = false;
    pthread_cond_broadcast(&p->samples);
    pthread_cond_broadcast(&p->stopping);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->n_buses; i++) {
        if (p->buses[i].started)
            pthread_join(p->buses[i].thread, NULL);
        p->buses[i].started = false;
    }
}

void ts_poller_free(struct ts_poller *p)
{
    if (!p)
        return;
    ts_poller_stop(p);
    for (size_t d = 0; p->devices && d < p->cfg->n_devices; d++) {
        ts_source_free(p->devices[d].src);
        free(p->devices[d].turnstiles);
        free(p->devices[d].index);
    }
    for (size_t i = 0; i < p->n_buses; i++)
        free(p->buses[i].devices);
    free(p->buses);
    free(p->devices);
    free(p->queue);
    pthread_cond_destroy(&p->samples);
    pthread_cond_destroy(&p->stopping);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
