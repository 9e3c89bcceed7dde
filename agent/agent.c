/* SPDX-License-Identifier: Apache-2.0 */
#include "agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "poller.h"
#include "publisher.h"
#include "state_json.h"
#include "store.h"
#include "tally.h"

#define BATCH 256                 /* samples taken per loop turn */
#define STATUS_INTERVAL_MS 60000  /* retained status (backlog) refresh */
#define CLOCK_LOG_INTERVAL_MS 60000
#define RENUMBER_LOG_INTERVAL_MS 60000 /* a refused renumbering is logged this often */
#define RENUMBER_RETRY_MS 5000         /* a renumbering the store failed is retried this often */

struct agent {
    const struct ts_agent_cfg *cfg;
    const struct ts_agent_opts *opts;
    struct ts_poller *poller;
    struct ts_tally tally;
    struct ts_store *store;          /* NULL without [store] */
    struct ts_publisher *pub;        /* NULL without [mqtt] */
    struct ts_device_stats *devices; /* scratch for the state JSON */
    struct ts_reading *readings;     /* scratch: BATCH * TS_TALLY_MAX_OUT */
    uint64_t print_seq;              /* numbering without a store */
    uint64_t n_readings, n_anomalies;
    int64_t started_ms, last_state_ms, last_status_ms, last_clock_log_ms, last_watchdog_ms;
    int64_t last_ack_ms;
    uint64_t state_acked;            /* the ack as the last state saw it */
    int64_t ack_moved_ms;            /* when it last moved (or nothing waited) */
    uint64_t watchdog_usec;
    int store_error;                 /* as last reported in the status */
    uint64_t renumber_refused;       /* the ack the store was not renumbered past (0: none) */
    const char *renumber_why;        /* why, while renumber_refused */
    uint64_t renumber_refusals;      /* distinct values refused */
    uint64_t renumber_last;          /* the last of them */
    int64_t renumber_log_ms;         /* last error line about it */
    int64_t renumber_try_ms;         /* last attempt the store failed */
    uint64_t status_refused;         /* acks refused, as last reported in the status */
    const char *status_ack_error;    /* ack_error, as last reported in the status */
    bool trusted, ready;
};

/* The store's figures, or NULL without a store. */
static const struct ts_store_stats *store_stats(struct agent *a, struct ts_store_stats *st)
{
    if (!a->store)
        return NULL;
    ts_store_get_stats(a->store, st);
    return st;
}

static uint64_t backlog(struct agent *a)
{
    struct ts_store_stats st;
    if (!a->store)
        return 0;
    ts_store_get_stats(a->store, &st);
    return st.rows + st.pending_memory;
}

static void print_readings(struct agent *a, struct ts_reading *r, size_t n)
{
    char line[TS_READING_LINE_MAX];
    for (size_t i = 0; i < n; i++) {
        if (ts_reading_format(&r[i], line, sizeof line) < 0) {
            TS_LOG(TS_LOG_ERR, "cannot format reading %llu", (unsigned long long)r[i].seq);
            continue;
        }
        puts(line);
    }
    if (n)
        fflush(stdout);
}

/* Keeps the readings: store them (numbered there) or number them here. */
static void keep(struct agent *a, struct ts_reading *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        a->n_readings++;
        a->n_anomalies += (r[i].flags & ~(uint32_t)TS_FLAG_FIRST) != 0;
    }
    if (!a->store) {
        for (size_t i = 0; i < n; i++)
            r[i].seq = r[i].merged_from = ++a->print_seq;
        if (a->opts->print)
            print_readings(a, r, n);
        return;
    }
    size_t len = 0;
    const void *state = ts_tally_save(&a->tally, &len);
    ts_store_append(a->store, r, n, state, state ? len : 0); /* errors: held in memory, logged */
    if (a->opts->print && !a->pub) {
        /* stdout is the consumer: print what is stored, then let it go */
        struct ts_reading out[64];
        size_t got;
        struct ts_store_stats st;
        ts_store_get_stats(a->store, &st);
        while (ts_store_fetch(a->store, st.acked, out, 64, &got) == TS_OK && got > 0 &&
               ts_store_mark_published(a->store, out[got - 1].seq) == TS_OK) {
            print_readings(a, out, got);
            ts_store_ack(a->store, out[got - 1].seq);
            st.acked = out[got - 1].seq;
        }
    }
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

/* The bridge acknowledges numbers this store never published (want, from
 * ts_publisher_renumber_ack): the store is new (a replaced controller, a lost
 * SD card). Never reuse a number the bridge has seen: the readings move up
 * past it. An absurd value (the numbers would pass TS_SEQ_MAX) is refused,
 * loudly, and nothing is published meanwhile: the readings stay in the
 * store until a sane ack replaces it or the retained ack is cleared. True
 * when renumbered. */
static bool renumber(struct agent *a, uint64_t want, const struct ts_store_stats *st)
{
    /* after the move the stored numbers run from want + 1 to at most
     * want + (next_seq - 1 - acked): no overflow, not past TS_SEQ_MAX */
    uint64_t in_use = st->next_seq - 1 - st->acked;
    bool sane = want <= TS_SEQ_MAX && in_use <= TS_SEQ_MAX - want;
    const char *why = "implausible acknowledgement: not renumbering";
    int rc = TS_EINVAL;
    int64_t now = ts_mono_ms();
    if (sane) {
        if (st->pending_memory)
            return false; /* renumbered once the readings held in memory are written */
        if (want == a->renumber_refused && now - a->renumber_try_ms < RENUMBER_RETRY_MS)
            return false; /* the store failed just now */
        rc = ts_store_renumber(a->store, want + 1);
        if (rc == TS_OK) {
            ts_publisher_set_floor(a->pub, want);
            if (a->renumber_refused)
                TS_LOG(TS_LOG_NOTICE, "the acknowledgement is %llu now: renumbered past it, "
                       "publishing again", (unsigned long long)want);
            a->renumber_refused = 0;
            a->renumber_why = NULL;
            return true;
        }
        why = "cannot renumber";
        a->renumber_try_ms = now;
    }
    bool due = want != a->renumber_refused || now - a->renumber_log_ms >= RENUMBER_LOG_INTERVAL_MS;
    if (want != a->renumber_refused) {
        a->renumber_refusals++;
        a->renumber_last = want;
    }
    a->renumber_refused = want;
    a->renumber_why = why;
    if (due) {
        if (!sane)
            TS_LOG(TS_LOG_ERR, "the acknowledgement on turnstile/v1/%s/%s/ack is %llu, above "
                   "anything this new store can number past (%llu is the highest sequence "
                   "number an agent uses): not renumbering, publishing nothing, keeping every "
                   "reading; publish the bridge's real value there (retained) or clear it",
                   a->cfg->agent.station_id, a->cfg->agent.agent_id, (unsigned long long)want,
                   (unsigned long long)TS_SEQ_MAX);
        else
            TS_LOG(TS_LOG_ERR, "the bridge acknowledges %llu for this new store but it cannot "
                   "be renumbered past it (%s%s): publishing nothing, keeping every reading",
                   (unsigned long long)want, st->publish_mark ? "its publish mark is not 0, "
                   "although nothing was sent: " : "", ts_strerror(rc));
        a->renumber_log_ms = now;
    }
    return false;
}

static void drain(struct agent *a)
{
    struct ts_reading out[128];
    size_t room, got;

    if (!a->pub || !a->store)
        return;
    ts_store_retry(a->store);
    struct ts_store_stats st;
    ts_store_get_stats(a->store, &st);
    uint64_t want = ts_publisher_renumber_ack(a->pub);
    if (want) {
        if (!renumber(a, want, &st))
            return;
        ts_store_get_stats(a->store, &st);
    } else if (a->renumber_refused) {
        TS_LOG(TS_LOG_NOTICE, "the retained acknowledgement %llu is gone: publishing",
               (unsigned long long)a->renumber_refused);
        a->renumber_refused = 0;
        a->renumber_why = NULL;
    }
    /* never above what this agent may have published: the publisher's rule */
    uint64_t acked = ts_publisher_acked(a->pub);
    if (acked > st.acked) {
        /* deleting is not urgent: batch it, each delete is a commit */
        int64_t now = ts_mono_ms();
        if (acked - st.acked >= (uint64_t)a->cfg->mqtt.max_inflight || now - a->last_ack_ms >= 500) {
            ts_store_ack(a->store, acked);
            a->last_ack_ms = now;
        }
    }
    for (int turns = 0; turns < 64; turns++) {
        uint64_t after = ts_publisher_next_seq(a->pub, &room);
        if (room == 0)
            break;
        if (room > sizeof out / sizeof out[0])
            room = sizeof out / sizeof out[0];
        if (ts_store_fetch(a->store, after, out, room, &got) != TS_OK || got == 0)
            break;
        /* never publish what a merge could still touch: the mark goes ahead
         * in steps of several windows, so that it costs few commits */
        uint64_t last = out[got - 1].seq;
        if (last > st.publish_mark) {
            uint64_t ahead = last + 8 * (uint64_t)a->cfg->mqtt.max_inflight;
            if (ahead > st.next_seq - 1)
                ahead = st.next_seq - 1;
            if (ts_store_mark_published(a->store, ahead > last ? ahead : last) != TS_OK)
                break;
            st.publish_mark = ahead > last ? ahead : last;
        }
        if (ts_publisher_send(a->pub, out, got) < got)
            break;
    }
}

/* What the status says about acknowledgements: the publisher's refusals
 * (above what was published) and this loop's (renumbering). */
static struct ts_ack_status ack_status(struct agent *a)
{
    struct ts_ack_status s = {.error = ""};
    struct ts_publisher_stats ps;
    if (!a->pub)
        return s;
    ts_publisher_get_stats(a->pub, &ps);
    s.refused = ps.acks_refused + a->renumber_refusals;
    /* a store renumbers only before it publishes, and refuses after */
    s.refused_last = ps.acks_refused ? ps.ack_refused_last : a->renumber_last;
    if (a->renumber_refused)
        s.error = a->renumber_why;
    else if (ps.ack_refusing)
        s.error = "acknowledgement above what was published: ignored";
    return s;
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
    uint64_t waiting = backlog(a);
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
    struct ts_ack_status ack = ack_status(a);
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
                 (unsigned long long)a->n_readings, (unsigned long long)backlog(a),
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
    if (cfg->has_store) {
        if ((rc = ts_store_open(&cfg->store, cfg->agent.agent_id, &a->store, err, sizeof err))) {
            TS_LOG(TS_LOG_ERR, "%s", err);
            return rc;
        }
        /* a format-3 record is about 600 bytes; room for fields to come */
        size_t cap = 64 + cfg->n_turnstiles * 4096, len = 0;
        void *blob = malloc(cap);
        rc = blob ? ts_store_load_state(a->store, blob, cap, &len) : TS_ENOMEM;
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
        struct ts_store_stats st;
        ts_store_get_stats(a->store, &st);
        /* believed at start: what the store deleted; acks up to what earlier
         * runs may have published are not refused (docs/mqtt.md) */
        ts_publisher_set_floor(a->pub, st.acked);
        ts_publisher_set_published(a->pub, st.publish_mark);
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
        drain(a);
        /* let what is in flight be acknowledged, so the store keeps only the rest */
        for (int i = 0; i < 40; i++) {
            struct ts_publisher_stats ps;
            ts_publisher_get_stats(a->pub, &ps);
            if (!ps.connected || ps.inflight == 0)
                break;
            struct timespec pause = {0, 50 * 1000000L};
            nanosleep(&pause, NULL);
        }
        uint64_t acked = ts_publisher_acked(a->pub);
        struct ts_store_stats st;
        ts_store_get_stats(a->store, &st);
        if (acked > st.acked && acked <= st.publish_mark)
            ts_store_ack(a->store, acked);
        struct ts_ack_status ack = ack_status(a);
        char *status = ts_status_json(a->cfg, "offline", "shutdown", a->started_ms, store_stats(a, &st), &ack);
        if (status)
            ts_publisher_status(a->pub, status);
        free(status);
    }
    ts_publisher_free(a->pub, 3000);
    ts_poller_free(a->poller);
    if (a->store) {
        struct ts_store_stats st;
        ts_store_retry(a->store);
        ts_store_get_stats(a->store, &st);
        TS_LOG(TS_LOG_INFO, "store: %llu readings kept (%llu in memory), %llu merges",
               (unsigned long long)st.rows, (unsigned long long)st.pending_memory,
               (unsigned long long)st.merges);
    }
    ts_store_close(a->store);
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
        drain(&a);
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
