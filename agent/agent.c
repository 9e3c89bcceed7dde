/* SPDX-License-Identifier: Apache-2.0 */
#include "agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "outbox.h"
#include "poller.h"
#include "publisher.h"
#include "state_json.h"
#include "tally.h"

#define BATCH 256                 /* samples taken per loop turn */
#define STATUS_INTERVAL_MS 60000  /* retained status (backlog) refresh */
#define CLOCK_LOG_INTERVAL_MS 60000

struct agent {
    const struct ts_agent_cfg *cfg;
    const struct ts_agent_opts *opts;
    struct ts_poller *poller;
    struct ts_tally tally;
    struct ts_outbox *outbox;        /* the store and the protocol with the publisher */
    struct ts_publisher *pub;        /* NULL without [mqtt] */
    struct ts_device_stats *devices; /* scratch for the state JSON */
    struct ts_reading *readings;     /* scratch: BATCH * TS_TALLY_MAX_OUT */
    uint64_t n_readings, n_anomalies;
    int64_t started_ms, last_state_ms, last_status_ms, last_clock_log_ms, last_watchdog_ms;
    uint64_t state_acked;            /* the ack as the last state saw it */
    int64_t ack_moved_ms;            /* when it last moved (or nothing waited) */
    uint64_t watchdog_usec;
    int store_error;                 /* as last reported in the status */
    uint64_t status_refused;         /* acks refused, as last reported in the status */
    const char *status_ack_error;    /* ack_error, as last reported in the status */
    bool trusted, ready;
};

/* The store's figures, or NULL without a store. */
static const struct ts_store_stats *store_stats(struct agent *a, struct ts_store_stats *st)
{
    return ts_outbox_store_stats(a->outbox, st) ? st : NULL;
}

/* Keeps the readings: counted, then the outbox's (stored, numbered). */
static void keep(struct agent *a, struct ts_reading *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        a->n_readings++;
        a->n_anomalies += (r[i].flags & ~(uint32_t)TS_FLAG_FIRST) != 0;
    }
    size_t len = 0;
    const void *state = ts_tally_save(&a->tally, &len);
    ts_outbox_put(a->outbox, r, n, state, len);
}

static void take_samples(struct agent *a, const struct ts_sample *s, size_t n)
{
    size_t out = 0;

    for (size_t i = 0; i < n; i++) {
        out += ts_tally_sample(&a->tally, &s[i], a->trusted, a->readings + out);
    }
    /* while the clock is not trusted the samples only change the state
     * (counters and held readings): store it, or a crash would lose them */
    if (out || (n && !a->trusted))
        keep(a, a->readings, out);
}

static void check_clock(struct agent *a, int64_t now)
{
    bool trusted = ts_clock_trusted((enum ts_clock_policy)a->cfg->agent.clock);

    if (trusted && !a->trusted && a->started_ms)
        TS_LOG(TS_LOG_NOTICE, "the clock is synchronised: releasing held readings");
    a->trusted = trusted;
    if (!trusted && now - a->last_clock_log_ms >= CLOCK_LOG_INTERVAL_MS) {
        TS_LOG(TS_LOG_WARNING, "the clock is not synchronised (NTP): holding the readings of %zu "
                               "turnstiles until it is", a->tally.n_held);
        a->last_clock_log_ms = now;
    }
    while (trusted && a->tally.n_held) {
        size_t n = ts_tally_release(&a->tally, a->readings, BATCH * TS_TALLY_MAX_OUT);
        if (!n)
            break;
        keep(a, a->readings, n);
    }
}

static void publish_state(struct agent *a, int64_t now, bool force)
{
    /* a warning raised or cleared is published at once */
    force = force || a->tally.warnings_changed;
    if (!a->pub || (!force && now - a->last_state_ms < a->cfg->agent.state_interval_ms))
        return;
    a->tally.warnings_changed = false;
    for (size_t i = 0; i < a->cfg->n_devices; i++)
        ts_poller_device_stats(a->poller, i, &a->devices[i]);
    struct ts_publisher_stats ps;
    ts_publisher_get_stats(a->pub, &ps);
    uint64_t waiting = ts_outbox_backlog(a->outbox);
    if (!waiting || ps.acked != a->state_acked || !a->ack_moved_ms)
        a->ack_moved_ms = now;
    a->state_acked = ps.acked;
    struct ts_state_mqtt sm = {.sent = ps.sent, .resent = ps.resent, .pubacks = ps.pubacks,
                               .connects = ps.connects, .acked = ps.acked,
                               .ack_age_s = (now - a->ack_moved_ms) / 1000};
    char *json = ts_state_json(a->cfg, &a->tally, a->devices, a->trusted, waiting, &sm);
    if (json)
        ts_publisher_state(a->pub, json, true);
    free(json);
    a->last_state_ms = now;
    struct ts_store_stats sst;
    const struct ts_store_stats *ss = store_stats(a, &sst);
    int store_error = ss ? ss->last_error : 0;
    struct ts_ack_status ack = ts_outbox_ack_status(a->outbox);
    /* a disk-full condition, a refused ack are reported at once */
    if (now - a->last_status_ms >= STATUS_INTERVAL_MS || store_error != a->store_error ||
        ack.refused != a->status_refused ||
        strcmp(ack.error, a->status_ack_error ? a->status_ack_error : "") != 0) {
        a->store_error = store_error;
        a->status_refused = ack.refused;
        a->status_ack_error = ack.error;
        char *status = ts_status_json(a->cfg, "online", NULL, a->started_ms, ss, &ack);
        if (status)
            ts_publisher_status(a->pub, status);
        free(status);
        a->last_status_ms = now;
    }
}

static void notify_systemd(struct agent *a, int64_t now)
{
    if (!a->ready) {
        sd_notify(0, "READY=1");
        a->ready = true;
    }
    if (a->watchdog_usec && (now - a->last_watchdog_ms) * 2000 >= (int64_t)a->watchdog_usec) {
        char status[160];
        snprintf(status, sizeof status, "STATUS=%llu readings, backlog %llu%s%s",
                 (unsigned long long)a->n_readings,
                 (unsigned long long)ts_outbox_backlog(a->outbox),
                 a->trusted ? "" : ", clock not synchronised: holding readings",
                 a->tally.n_warned ? ", turnstiles counting only anomalies (see the log)" : "");
        sd_notify(0, "WATCHDOG=1");
        sd_notify(0, status);
        a->last_watchdog_ms = now;
    }
}

/* The publisher's network thread: room in the window, or an ack. */
static void wake_main_loop(void *poller) { ts_poller_wake(poller); }

static int setup(struct agent *a)
{
    const struct ts_agent_cfg *cfg = a->cfg;
    char err[512];
    int rc;

    a->devices = calloc(cfg->n_devices + 1, sizeof *a->devices);
    a->readings = calloc(BATCH * TS_TALLY_MAX_OUT, sizeof *a->readings);
    if (!a->devices || !a->readings)
        return TS_ENOMEM;
    if ((rc = ts_tally_init(&a->tally, cfg)) != TS_OK)
        return rc;
    if ((rc = ts_outbox_open(cfg, a->opts->print, &a->outbox, err, sizeof err))) {
        TS_LOG(TS_LOG_ERR, "%s", err);
        return rc;
    }
    if (cfg->has_store) {
        /* a format-3 record is about 600 bytes; room for fields to come */
        size_t cap = 64 + cfg->n_turnstiles * 4096, len = 0;
        void *blob = malloc(cap);
        rc = blob ? ts_outbox_load_state(a->outbox, blob, cap, &len) : TS_ENOMEM;
        if (rc == TS_OK && len)
            ts_tally_restore(&a->tally, blob, len);
        else if (rc)
            TS_LOG(TS_LOG_WARNING, "saved counter state not read (%zu bytes: %s): starting from "
                   "fresh baselines", len, ts_strerror(rc));
        free(blob);
    }
    if ((rc = ts_poller_new(cfg, &a->poller)) != TS_OK)
        return rc;
    if (cfg->has_mqtt) {
        if ((rc = ts_publisher_new(&cfg->mqtt, cfg->agent.station_id, cfg->agent.agent_id, &a->pub,
                                   err, sizeof err))) {
            TS_LOG(TS_LOG_ERR, "%s", err);
            return rc;
        }
        ts_outbox_attach(a->outbox, a->pub);
        struct ts_store_stats st;
        ts_publisher_set_wake(a->pub, wake_main_loop, a->poller);
        char *birth = ts_status_json(cfg, "online", NULL, a->started_ms, store_stats(a, &st), NULL);
        rc = birth ? ts_publisher_start(a->pub, birth) : TS_ENOMEM;
        free(birth);
        if (rc)
            return rc;
    }
    if ((rc = ts_poller_start(a->poller)) != TS_OK)
        return rc;
    if (sd_watchdog_enabled(0, &a->watchdog_usec) <= 0)
        a->watchdog_usec = 0;
    return TS_OK;
}

static void teardown(struct agent *a)
{
    if (a->poller)
        ts_poller_stop(a->poller); /* freed after the publisher: its thread wakes the poller */
    if (a->pub) {
        ts_outbox_settle(a->outbox);
        struct ts_store_stats st;
        struct ts_ack_status ack = ts_outbox_ack_status(a->outbox);
        char *status = ts_status_json(a->cfg, "offline", "shutdown", a->started_ms, store_stats(a, &st), &ack);
        if (status)
            ts_publisher_status(a->pub, status);
        free(status);
    }
    ts_publisher_free(a->pub, 3000);
    ts_poller_free(a->poller);
    ts_outbox_close(a->outbox);
    ts_tally_free(&a->tally);
    free(a->devices);
    free(a->readings);
}

int ts_agent_run(const struct ts_agent_cfg *cfg, const struct ts_agent_opts *opts,
                 volatile sig_atomic_t *stop)
{
    struct agent a = {.cfg = cfg, .opts = opts};
    struct ts_sample samples[BATCH];
    int rc;

    a.started_ms = ts_clock_wall_ms();
    a.trusted = ts_clock_trusted((enum ts_clock_policy)cfg->agent.clock);
    if ((rc = setup(&a)) != TS_OK) {
        teardown(&a);
        return rc;
    }
    TS_LOG(TS_LOG_INFO, "agent %s (station %s) polling %zu turnstiles on %zu devices every %d ms%s",
           cfg->agent.agent_id, cfg->agent.station_id, cfg->n_turnstiles, cfg->n_devices,
           cfg->agent.poll_interval_ms, a.pub ? ", publishing over MQTT" : "");
    int64_t start = ts_mono_ms();
    for (;;) {
        size_t n = ts_poller_take(a.poller, samples, BATCH, 100);
        int64_t now = ts_mono_ms();
        check_clock(&a, now);
        take_samples(&a, samples, n);
        ts_outbox_pump(a.outbox);
        publish_state(&a, now, false);
        notify_systemd(&a, now);
        if (*stop || (opts->duration_s > 0 && (double)(now - start) >= opts->duration_s * 1000))
            break;
    }
    sd_notify(0, "STOPPING=1");
    /* finish the cycle: what was read before the stop is still a reading */
    ts_poller_stop(a.poller);
    for (size_t n; (n = ts_poller_take(a.poller, samples, BATCH, 0));)
        take_samples(&a, samples, n);
    publish_state(&a, ts_mono_ms(), true);
    TS_LOG(TS_LOG_INFO, "stopping: %llu readings, %llu with anomalies",
           (unsigned long long)a.n_readings, (unsigned long long)a.n_anomalies);
    for (size_t i = 0; i < cfg->n_devices; i++) {
        struct ts_device_stats st;
        ts_poller_device_stats(a.poller, i, &st);
        TS_LOG(TS_LOG_INFO,
               "device %s: %llu polls, %llu faults (timeouts %llu, exceptions %llu, crc %llu, "
               "short %llu, connect %llu), last rtt %lld us",
               cfg->devices[i]->name, (unsigned long long)st.polls, (unsigned long long)st.errors,
               (unsigned long long)st.timeouts, (unsigned long long)st.exceptions,
               (unsigned long long)st.crc_errors, (unsigned long long)st.short_responses,
               (unsigned long long)st.connect_errors, (long long)st.last_rtt_us);
    }
    teardown(&a);
    return TS_OK;
}
