/* SPDX-License-Identifier: Apache-2.0 */
/* The MQTT publisher against a real mosquitto broker (broker.c). The test
 * plays the agent's main loop: it holds an array of readings (seq = index
 * + 1), asks ts_publisher_next_seq what to send, sends it, and "deletes" up
 * to ts_publisher_acked. Its own libmosquitto client subscribes with a
 * persistent session and checks what arrives, and publishes acks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "err.h"
#include "harness.h"
#include "log.h"
#include "mqtt_sub.h"
#include "publisher.h"
#include "reading.h"

#define STATION "S-59st"
#define AGENT "ctrl-59st.01"
#define PREFIX "turnstile/v1/" STATION "/" AGENT
#define NMAX 4000

/* ---- the test's subscriber (mqtt_sub.h) ---- */

/* The seqs of the readings received so far, in order of arrival (each line
 * must parse); returns how many. */
static size_t sub_seqs(struct sub *s, uint64_t *out, size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n && k < max; i++) {
        if (strcmp(s->msgs[i].topic, PREFIX "/readings") != 0)
            continue;
        struct ts_reading r;
        const char *why = NULL;
        if (ts_reading_parse(s->msgs[i].payload, &r, &why) != TS_OK) {
            fprintf(stderr, "bad line '%s': %s\n", s->msgs[i].payload, why);
            pthread_mutex_unlock(&s->lock);
            fail();
        }
        out[k++] = r.seq;
    }
    pthread_mutex_unlock(&s->lock);
    return k;
}

/* How many of 1..n arrived at least `times` times. */
static size_t sub_covered(struct sub *s, size_t n, unsigned times)
{
    static uint64_t seqs[8 * NMAX];
    static unsigned count[NMAX + 1];
    size_t k = sub_seqs(s, seqs, sizeof seqs / sizeof seqs[0]), got = 0;
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < k; i++)
        if (seqs[i] >= 1 && seqs[i] <= n)
            count[seqs[i]]++;
    for (size_t i = 1; i <= n; i++)
        got += count[i] >= times;
    return got;
}

/* The last payload on topic ("" if none), copied into buf. */
static const char *sub_last(struct sub *s, const char *topic, char *buf, size_t size)
{
    buf[0] = '\0';
    pthread_mutex_lock(&s->lock);
    for (size_t i = s->n; i-- > 0;)
        if (strcmp(s->msgs[i].topic, topic) == 0) {
            snprintf(buf, size, "%s", s->msgs[i].payload);
            break;
        }
    pthread_mutex_unlock(&s->lock);
    return buf;
}

static size_t sub_count(struct sub *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- the caller's role ---- */

static struct ts_reading R[NMAX];

static void make_readings(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ts_reading r = {
            .ca = "A002", .unit = "R051", .scp = "02-00-00", .station = "59 ST",
            .linename = "NQR456W", .division = "BMT", .desc = "REGULAR",
            .entries = i % 7, .exits = i % 3, .agent_id = AGENT, .seq = i + 1,
            .time_ms = 1685174400000LL + (int64_t)i * 1000, .entries_cum = 1000 + i,
            .exits_cum = 500 + i, .merged_from = i + 1,
        };
        R[i] = r;
    }
}

struct caller {
    struct ts_publisher *p;
    size_t n;                 /* readings R[0..n-1] exist */
    size_t batch;             /* at most this many per turn */
    uint64_t deleted;         /* deleted up to (the acked value seen) */
};

/* One turn of the agent's loop. */
static void pump(struct caller *c)
{
    size_t room;
    uint64_t after = ts_publisher_next_seq(c->p, &room);
    assert_true(after >= c->deleted);     /* never asks for deleted readings */
    if (room > c->batch)
        room = c->batch;
    if (after < c->n && room) {
        size_t k = c->n - after < room ? c->n - after : room;
        ts_publisher_send(c->p, R + after, k);
    }
    uint64_t acked = ts_publisher_acked(c->p);
    assert_true(acked >= c->deleted);     /* monotonic */
    c->deleted = acked;
}

static struct ts_publisher_stats stats(struct ts_publisher *p)
{
    struct ts_publisher_stats st;
    ts_publisher_get_stats(p, &st);
    return st;
}

static void tick(struct caller *c)
{
    if (c)
        pump(c);
    usleep(2000);
}

static void pump_for(struct caller *c, int ms)
{
    long long deadline = mono_ms() + ms;
    while (mono_ms() < deadline)
        tick(c);
}

/* Runs the caller's loop (if c) until cond holds or ms pass; until_ok
 * tells which. EXPECT fails the test on time-out. */
static bool until_ok;
#define UNTIL(c, cond, ms)                                \
    do {                                                  \
        long long d_ = mono_ms() + (ms);                  \
        while (!(until_ok = (cond)) && mono_ms() < d_)    \
            tick(c);                                      \
    } while (0)
#define EXPECT(c, cond, ms)                               \
    do {                                                  \
        UNTIL(c, cond, ms);                               \
        if (!until_ok)                                    \
            fail_msg("timed out waiting for %s", #cond);  \
    } while (0)

static struct ts_mqtt_cfg base_cfg(int port, enum ts_ack_mode mode)
{
    struct ts_mqtt_cfg c;
    memset(&c, 0, sizeof c);
    snprintf(c.link.host, sizeof c.link.host, "127.0.0.1");
    c.link.port = port;
    c.link.keepalive_s = 5;
    c.link.reconnect_min_ms = 100;
    c.link.reconnect_max_ms = 800;
    c.max_inflight = 50;
    c.ack_timeout_ms = 30000;
    c.ack_mode = mode;
    c.state_interval_ms = 0;
    return c;
}

static struct ts_publisher *new_publisher(const struct ts_mqtt_cfg *cfg)
{
    struct ts_publisher *p;
    char err[512] = "";
    int rc = ts_publisher_new(cfg, STATION, AGENT, &p, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, TS_OK);
    return p;
}

static struct ts_publisher *start_publisher(const struct ts_mqtt_cfg *cfg)
{
    struct ts_publisher *p = new_publisher(cfg);
    assert_int_equal(ts_publisher_start(p, NULL), TS_OK);
    return p;
}

/* ---- stderr capture (to check what the log says) ---- */

struct capture {
    int saved;
    char path[64];
};

static void capture_start(struct capture *c)
{
    snprintf(c->path, sizeof c->path, "/tmp/ts-pub-log-XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    c->saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Restores stderr, echoes what was captured and returns it (free it). */
static char *capture_end(struct capture *c)
{
    dup2(c->saved, 2);
    close(c->saved);
    FILE *f = fopen(c->path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    unlink(c->path);
    fprintf(stderr, "--- captured log\n%.*s---\n", (int)n, buf);
    return buf;
}

/* ---- (a) normal flow ---- */

static void readings_arrive_once_in_order(void **state)
{
    static uint64_t seqs[2 * NMAX];
    struct broker b;
    struct sub s;
    assert_int_equal(broker_start(&b, NULL), 0);
    sub_start(&s, b.port, "test-sub-a", PREFIX "/readings", false);
    struct ts_mqtt_cfg cfg = base_cfg(b.port, TS_ACK_END_TO_END);
    struct caller c = {.p = start_publisher(&cfg), .n = 1000, .batch = 1000};
    make_readings(c.n);

    EXPECT(&c, sub_covered(&s, 1000, 1) == 1000, 20000);
    pump_for(&c, 200);   /* any duplicate would show up now */
    size_t k = sub_seqs(&s, seqs, 2 * NMAX);
    assert_int_equal(k, 1000);
    for (size_t i = 0; i < k; i++)
        assert_int_equal(seqs[i], i + 1);
    EXPECT(&c, stats(c.p).pubacks == 1000, 5000);
    struct ts_publisher_stats st = stats(c.p);
    assert_int_equal(st.sent, 1000);
    assert_int_equal(st.resent, 0);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.highest_sent, 1000);
    assert_int_equal(st.acked, 0);   /* end-to-end: nobody acknowledged */
    ts_publisher_free(c.p, 2000);
    sub_stop(&s);
    broker_cleanup(&b);
}

/* ---- (b) broker down for 2 s while sending ---- */

static void broker_restart_loses_nothing(void **state)
{
    static uint64_t seqs[8 * NMAX];
    static bool seen[NMAX + 1];
    const size_t n = 2000;
    struct broker b;
    struct sub s;
    assert_int_equal(broker_start(&b, NULL), 0);
    sub_start(&s, b.port, "test-sub-b", PREFIX "/readings", false);
    struct ts_mqtt_cfg cfg = base_cfg(b.port, TS_ACK_PUBACK);
    cfg.ack_timeout_ms = 5000;
    struct caller c = {.p = start_publisher(&cfg), .n = n, .batch = 10};
    make_readings(n);

    EXPECT(&c, stats(c.p).sent >= 300, 10000);
    assert_int_equal(broker_stop(&b), 0);
    pump_for(&c, 2000);
    assert_false(stats(c.p).connected);
    assert_int_equal(broker_restart(&b), 0);
    UNTIL(&c, sub_covered(&s, n, 1) == n && c.deleted == n, 30000);
    if (!until_ok) {
        fprintf(stderr, "covered %zu of %zu, acked %llu\n", sub_covered(&s, n, 1), n,
                (unsigned long long)c.deleted);
        broker_dump_log(&b, 30);
        fail();
    }
    /* every reading arrived; first arrivals in seq order */
    size_t k = sub_seqs(&s, seqs, sizeof seqs / sizeof seqs[0]);
    uint64_t last_first = 0;
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < k; i++) {
        assert_true(seqs[i] >= 1 && seqs[i] <= n);
        if (seen[seqs[i]])
            continue;
        seen[seqs[i]] = true;
        assert_true(seqs[i] > last_first);
        last_first = seqs[i];
    }
    struct ts_publisher_stats st = stats(c.p);
    fprintf(stderr, "broker restart: %zu messages for %zu readings, %llu restarts, %llu resent\n",
            k, n, (unsigned long long)st.restarts, (unsigned long long)st.resent);
    assert_true(st.connects >= 2);

    /* A crash (SIGKILL) and a restart on the same port: reconnects. */
    assert_int_equal(broker_kill(&b), 0);
    assert_int_equal(broker_restart(&b), 0);
    EXPECT(&c, stats(c.p).connects >= st.connects + 1, 10000);
    ts_publisher_free(c.p, 2000);
    sub_stop(&s);
    broker_cleanup(&b);
}

/* ---- (c) end-to-end acknowledgement ---- */

static void end_to_end_ack_topic(void **state)
{
    struct broker b;
    struct sub s;
    assert_int_equal(broker_start(&b, NULL), 0);
    sub_start(&s, b.port, "test-sub-c", PREFIX "/#", false);
    struct ts_mqtt_cfg cfg = base_cfg(b.port, TS_ACK_END_TO_END);
    struct caller c = {.p = start_publisher(&cfg), .n = 10, .batch = 10};
    make_readings(c.n);

    EXPECT(&c, stats(c.p).highest_sent == 10, 5000);
    sub_publish(&s, PREFIX "/ack", "7", true);
    EXPECT(&c, ts_publisher_acked(c.p) == 7, 3000);
    sub_publish(&s, PREFIX "/ack", "10", true);
    EXPECT(&c, ts_publisher_acked(c.p) == 10, 3000);

    struct capture cap;
    capture_start(&cap);
    sub_publish(&s, PREFIX "/ack", "abc", false);
    sub_publish(&s, PREFIX "/ack", "-1", false);
    sub_publish(&s, PREFIX "/ack", "12x", false);
    sub_publish(&s, PREFIX "/ack", "5", false);   /* lower: ignored, not malformed */
    UNTIL(&c, stats(c.p).bad_acks == 3, 3000);
    bool three = until_ok;
    pump_for(&c, 300);
    char *log = capture_end(&cap);
    assert_true(three);
    assert_non_null(strstr(log, "malformed acknowledgement"));
    assert_non_null(strstr(log, "'12x'"));
    free(log);
    assert_int_equal(stats(c.p).bad_acks, 3);
    assert_int_equal(ts_publisher_acked(c.p), 10);
    ts_publisher_free(c.p, 2000);

    /* A restarted agent (its store deleted up to 10, its publish mark 10)
     * gets the retained acknowledgement at once and sends after it. */
    c.p = new_publisher(&cfg);
    ts_publisher_set_floor(c.p, 10);
    ts_publisher_set_published(c.p, 10);
    assert_int_equal(ts_publisher_start(c.p, NULL), TS_OK);
    EXPECT(&c, stats(c.p).connected, 5000);
    pump_for(&c, 800);   /* the retained ack's grace */
    assert_int_equal(ts_publisher_acked(c.p), 10);
    size_t room;
    assert_int_equal(ts_publisher_next_seq(c.p, &room), 10);
    assert_int_equal(stats(c.p).acks_refused, 0);
    ts_publisher_free(c.p, 2000);
    sub_stop(&s);
    broker_cleanup(&b);
}

/* How many times needle occurs in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

#define REFUSED_LINE "above anything this agent may have published"

/* ---- (c2) regression: an ack above what was published (issue 11, row 1) ---- */

/* A forged ack 100 above what the agent has published, retained, so that it
 * comes again on every reconnect: it moved the cursor and acked past it, and
 * the agent deleted readings it never published. Now: ignored, counted, one
 * error line; readings after the real ack are still sent; the bridge's ack
 * that comes later is taken. */
static void ack_above_published_is_refused(void **state)
{
    struct broker b;
    struct sub s;
    assert_int_equal(broker_start(&b, NULL), 0);
    sub_start(&s, b.port, "test-sub-c2", PREFIX "/readings", false);
    struct ts_mqtt_cfg cfg = base_cfg(b.port, TS_ACK_END_TO_END);
    struct caller c = {.p = start_publisher(&cfg), .n = 20, .batch = 20};
    make_readings(200);

    EXPECT(&c, sub_covered(&s, 20, 1) == 20, 5000);
    struct capture cap;
    capture_start(&cap);
    sub_publish(&s, PREFIX "/ack", "120", true);
    UNTIL(&c, stats(c.p).acks_refused == 1, 3000);
    bool refused1 = until_ok;
    struct ts_publisher_stats st = stats(c.p);
    /* the readings after it are produced and sent: the cursor did not jump */
    c.n = 100;
    UNTIL(&c, sub_covered(&s, 100, 1) == 100, 5000);
    bool sent_all = until_ok;
    /* again, and on a reconnect (the retained one): counted, not logged */
    sub_publish(&s, PREFIX "/ack", "120", false);
    UNTIL(&c, stats(c.p).acks_refused == 2, 3000);
    bool refused2 = until_ok;
    uint64_t connects = stats(c.p).connects;
    assert_int_equal(broker_stop(&b), 0);
    assert_int_equal(broker_restart(&b), 0);
    UNTIL(&c, stats(c.p).connects > connects && stats(c.p).acks_refused >= 3, 10000);
    bool refused3 = until_ok;
    struct ts_publisher_stats st3 = stats(c.p);
    /* the bridge's own ack comes later: taken */
    sub_publish(&s, PREFIX "/ack", "100", true);
    UNTIL(&c, ts_publisher_acked(c.p) == 100, 5000);
    bool taken = until_ok;
    struct ts_publisher_stats st4 = stats(c.p);
    char *log = capture_end(&cap);

    assert_true(refused1);
    assert_int_equal(st.acked, 0);          /* nothing believed, nothing deleted */
    assert_int_equal(st.ack_refused_last, 120);
    assert_true(st.ack_refusing);
    assert_true(sent_all);
    assert_true(refused2);
    assert_true(refused3);
    assert_int_equal(st3.acked, 0);
    assert_int_equal(st4.acked, 100);
    assert_true(taken);
    assert_false(st4.ack_refusing);
    assert_true(st4.acks_refused >= 3);
    assert_int_equal(count_of(log, REFUSED_LINE), 1);
    assert_non_null(strstr(log, "error: mqtt: acknowledgement 120 on " PREFIX "/ack"));
    free(log);
    ts_publisher_free(c.p, 2000);
    sub_stop(&s);
    broker_cleanup(&b);
}

/* ---- (c3) after a restart: what earlier runs may have published ---- */

/* The store deleted up to 7 (deletes are batched), its publish mark is 30,
 * the bridge's retained ack is 10: believed, without an error, as far as
 * this process re-sends (8, 9, 10), then as a whole. An ack above the mark
 * is refused even before anything is sent. */
static void restart_believes_what_earlier_runs_published(void **state)
{
    struct broker b;
    struct sub s;
    assert_int_equal(broker_start(&b, NULL), 0);
    sub_start(&s, b.port, "test-sub-c3", PREFIX "/readings", false);
    sub_publish(&s, PREFIX "/ack", "10", true);
    struct ts_mqtt_cfg cfg = base_cfg(b.port, TS_ACK_END_TO_END);
    make_readings(100);

    struct capture cap;
    capture_start(&cap);
    struct caller c = {.p = new_publisher(&cfg), .n = 7, .batch = 10, .deleted = 7};
    ts_publisher_set_floor(c.p, 7);
    ts_publisher_set_published(c.p, 30);
    assert_int_equal(ts_publisher_start(c.p, NULL), TS_OK);
    EXPECT(&c, stats(c.p).connected, 5000);
    pump_for(&c, 800);                 /* the retained 10 came; nothing to re-send yet */
    struct ts_publisher_stats st0 = stats(c.p);
    c.n = 9;                           /* 8 and 9 re-sent: believed as far as that */
    UNTIL(&c, sub_covered(&s, 9, 1) == 2, 5000);
    pump_for(&c, 200);
    uint64_t acked9 = ts_publisher_acked(c.p);
    c.n = 40;
    UNTIL(&c, ts_publisher_acked(c.p) == 10 && stats(c.p).highest_sent == 40, 5000);
    bool all10 = until_ok;
    ts_publisher_free(c.p, 2000);
    char *log = capture_end(&cap);
    assert_int_equal(st0.acked, 7);
    assert_int_equal(st0.acks_refused, 0);
    assert_int_equal(acked9, 9);
    assert_true(all10);
    assert_null(strstr(log, REFUSED_LINE));
    free(log);

    /* An ack above the mark (and above nothing sent) before the start. */
    sub_publish(&s, PREFIX "/ack", "31", true);
    capture_start(&cap);
    c = (struct caller){.p = new_publisher(&cfg), .n = 40, .batch = 10, .deleted = 10};
    ts_publisher_set_floor(c.p, 10);
    ts_publisher_set_published(c.p, 30);
    assert_int_equal(ts_publisher_start(c.p, NULL), TS_OK);
    /* (the session queued it too while no one was connected: twice) */
    UNTIL(&c, stats(c.p).acks_refused >= 1, 5000);
    bool refused = until_ok;
    UNTIL(&c, stats(c.p).highest_sent == 40, 5000);   /* 31 is not believed later either */
    struct ts_publisher_stats st1 = stats(c.p);
    ts_publisher_free(c.p, 2000);
    log = capture_end(&cap);
    assert_true(refused);
    assert_int_equal(st1.highest_sent, 40);
    assert_int_equal(st1.acked, 10);
    assert_int_equal(count_of(log, REFUSED_LINE), 1);
    free(log);
    sub_stop(&s);
    broker_cleanup(&b);
}

/* ---- (c4) a store that never published: renumbering past the bridge's ack ---- */

static void new_store_renumbers_past_the_ack(void **state)
{
    struct broker b;
    struct sub s;
    assert_int_equal(broker_start(&b, NULL), 0);
    sub_start(&s, b.port, "test-sub-c4", PREFIX "/readings", false);
    sub_publish(&s, PREFIX "/ack", "18446744073709551615", true);
    struct ts_mqtt_cfg cfg = base_cfg(b.port, TS_ACK_END_TO_END);
    make_readings(100);

    /* a new store: nothing published, its readings numbered 1..: the
     * publisher offers the ack and sends nothing until the caller acts */
    struct caller c = {.p = start_publisher(&cfg), .n = 100, .batch = 10};
    EXPECT(&c, ts_publisher_renumber_ack(c.p) == UINT64_MAX, 5000);
    pump_for(&c, 800);
    size_t room;
    ts_publisher_next_seq(c.p, &room);
    assert_int_equal(room, 0);
    assert_int_equal(stats(c.p).sent, 0);
    assert_int_equal(ts_publisher_acked(c.p), 0);
    /* the caller refuses an absurd value; a sane one replaces it */
    sub_publish(&s, PREFIX "/ack", "9007199254740992", true);   /* 2^53: absurd too */
    EXPECT(&c, ts_publisher_renumber_ack(c.p) == 9007199254740992ULL, 3000);
    sub_publish(&s, PREFIX "/ack", "50", true);
    EXPECT(&c, ts_publisher_renumber_ack(c.p) == 50, 3000);
    sub_publish(&s, PREFIX "/ack", "40", true);                 /* lower, sane: kept 50 */
    pump_for(&c, 300);
    assert_int_equal(ts_publisher_renumber_ack(c.p), 50);
    assert_int_equal(stats(c.p).sent, 0);
    ts_publisher_set_floor(c.p, 50);                            /* renumbered: 51.. */
    assert_int_equal(ts_publisher_renumber_ack(c.p), 0);
    EXPECT(&c, sub_covered(&s, 100, 1) == 50, 5000);
    assert_int_equal(sub_covered(&s, 50, 1), 0);
    assert_int_equal(stats(c.p).acks_refused, 0);
    /* once it published, an ack above it is refused, not a renumbering */
    sub_publish(&s, PREFIX "/ack", "300", true);
    EXPECT(&c, stats(c.p).acks_refused == 1, 3000);
    assert_int_equal(ts_publisher_renumber_ack(c.p), 0);
    ts_publisher_free(c.p, 2000);

    /* an absurd retained ack cleared by the operator: nothing to renumber */
    sub_publish(&s, PREFIX "/ack", "18446744073709551615", true);
    c = (struct caller){.p = start_publisher(&cfg), .n = 10, .batch = 10};
    EXPECT(&c, ts_publisher_renumber_ack(c.p) == UINT64_MAX, 5000);
    sub_publish(&s, PREFIX "/ack", "", true);
    EXPECT(&c, ts_publisher_renumber_ack(c.p) == 0 && stats(c.p).highest_sent == 10, 5000);
    ts_publisher_free(c.p, 2000);
    sub_stop(&s);
    broker_cleanup(&b);
}

/* ---- (d) no acknowledgement: re-send from acked + 1 ---- */

static void ack_timeout_resends(void **state)
{
    static uint64_t seqs[8 * NMAX];
    struct broker b;
    struct sub s;
    assert_int_equal(broker_start(&b, NULL), 0);
    sub_start(&s, b.port, "test-sub-d", PREFIX "/readings", false);
    struct ts_mqtt_cfg cfg = base_cfg(b.port, TS_ACK_END_TO_END);
    cfg.ack_timeout_ms = 500;
    struct caller c = {.p = start_publisher(&cfg), .n = 20, .batch = 20};
    make_readings(c.n);

    long long t0 = mono_ms();
    EXPECT(&c, sub_covered(&s, 20, 2) == 20, 5000);
    long long took = mono_ms() - t0;
    assert_true(took >= 400);   /* not before the timeout */
    struct ts_publisher_stats st = stats(c.p);
    assert_true(st.restarts >= 1);
    assert_true(st.resent >= 20);
    assert_int_equal(st.acked, 0);

    /* acked 10: the next re-send starts at 11 */
    size_t m0 = sub_seqs(&s, seqs, sizeof seqs / sizeof seqs[0]);
    uint64_t r0 = st.restarts;
    sub_publish(&s, PREFIX "/ack", "10", true);
    EXPECT(&c, ts_publisher_acked(c.p) == 10, 3000);
    EXPECT(&c, stats(c.p).restarts > r0 &&
                                   sub_seqs(&s, seqs, sizeof seqs / sizeof seqs[0]) >= m0 + 10,
                           3000);
    size_t m1 = sub_seqs(&s, seqs, sizeof seqs / sizeof seqs[0]);
    for (size_t i = m0; i < m1; i++)
        assert_true(seqs[i] >= 11);

    /* no progress: the timeout doubles each round (0.5, 1, 2 s ...), so
     * 3.2 s bring 2 rounds (0.5 + 1 = 1.5, then 3.5), not 6 */
    uint64_t r2 = stats(c.p).restarts;
    pump_for(&c, 3200);
    uint64_t rounds = stats(c.p).restarts - r2;
    fprintf(stderr, "re-send rounds in 3.2 s without progress: %llu\n", (unsigned long long)rounds);
    assert_in_range(rounds, 1, 3);

    /* everything acknowledged: no more re-sending */
    sub_publish(&s, PREFIX "/ack", "20", true);
    EXPECT(&c, ts_publisher_acked(c.p) == 20, 3000);
    uint64_t r1 = stats(c.p).restarts;
    pump_for(&c, 1200);
    assert_int_equal(stats(c.p).restarts, r1);
    ts_publisher_free(c.p, 2000);
    sub_stop(&s);
    broker_cleanup(&b);
}

/* ---- (e) puback mode ---- */

static void puback_mode_follows_pubacks(void **state)
{
    struct broker b;
    assert_int_equal(broker_start(&b, NULL), 0);
    struct ts_mqtt_cfg cfg = base_cfg(b.port, TS_ACK_PUBACK);
    cfg.max_inflight = 100;
    struct caller c = {.p = start_publisher(&cfg), .n = 50, .batch = 100};
    make_readings(100);
    EXPECT(NULL, stats(c.p).connected && stats(c.p).inflight == 0, 5000);

    /* A frozen broker reads nothing and PUBACKs nothing: acked stays. */
    assert_int_equal(kill(b.pid, SIGSTOP), 0);
    EXPECT(&c, stats(c.p).sent == 50, 3000);
    pump_for(&c, 300);
    struct ts_publisher_stats st = stats(c.p);
    assert_int_equal(st.acked, 0);
    assert_int_equal(st.pubacks, 0);
    assert_int_equal(st.inflight, 50);
    size_t room;
    ts_publisher_next_seq(c.p, &room);
    assert_int_equal(room, 50);   /* the window counts what is in flight */
    assert_int_equal(kill(b.pid, SIGCONT), 0);
    EXPECT(&c, c.deleted == 50, 5000);
    assert_int_equal(stats(c.p).pubacks, 50);

    c.n = 100;
    EXPECT(&c, c.deleted == 100, 5000);
    st = stats(c.p);
    assert_int_equal(st.pubacks, 100);
    assert_int_equal(st.sent, 100);
    assert_int_equal(st.inflight, 0);
    ts_publisher_free(c.p, 2000);
    broker_cleanup(&b);
}

/* ---- (f) TLS ---- */

static void tls_client_cert_and_untrusted_ca(void **state)
{
    struct broker b;
    struct broker_opts o = {.tls = true, .require_cert = true};
    assert_int_equal(broker_start(&b, &o), 0);
    struct ts_mqtt_cfg cfg = base_cfg(b.tls_port, TS_ACK_PUBACK);
    snprintf(cfg.link.ca_file, sizeof cfg.link.ca_file, "%s", b.ca_file);
    snprintf(cfg.link.cert_file, sizeof cfg.link.cert_file, "%s", b.client_cert);
    snprintf(cfg.link.key_file, sizeof cfg.link.key_file, "%s", b.client_key);
    struct caller c = {.p = start_publisher(&cfg), .n = 5, .batch = 5};
    make_readings(5);
    UNTIL(&c, c.deleted == 5, 5000);
    if (!until_ok) {
        broker_dump_log(&b, 20);
        fail();
    }
    ts_publisher_free(c.p, 2000);

    /* The server's certificate is not signed by the CA we trust. */
    snprintf(cfg.link.ca_file, sizeof cfg.link.ca_file, "%s", b.other_ca_file);
    struct capture cap;
    capture_start(&cap);
    c.p = start_publisher(&cfg);
    c.deleted = 0;
    UNTIL(&c, stats(c.p).connect_failures >= 3, 5000);
    bool failed3 = until_ok;
    struct ts_publisher_stats st = stats(c.p);
    ts_publisher_free(c.p, 500);
    char *log = capture_end(&cap);
    assert_true(failed3);
    assert_false(st.connected);
    assert_int_equal(st.connects, 0);
    assert_int_equal(st.sent, 0);
    assert_non_null(strstr(log, "TLS failed"));
    assert_non_null(strstr(log, "certificate verify failed"));
    free(log);

    /* A missing CA file is a config error at once. */
    struct ts_publisher *p = NULL;
    char err[512];
    snprintf(cfg.link.ca_file, sizeof cfg.link.ca_file, "%s/nope.crt", b.dir);
    assert_int_equal(ts_publisher_new(&cfg, STATION, AGENT, &p, err, sizeof err), TS_ECONFIG);
    assert_null(p);
    assert_non_null(strstr(err, "nope.crt"));
    broker_cleanup(&b);
}

/* ---- (g) wrong password ---- */

static void wrong_password_is_retried(void **state)
{
    struct broker b;
    struct broker_opts o = {.username = "agent", .password = "s3cret"};
    assert_int_equal(broker_start(&b, &o), 0);
    struct ts_mqtt_cfg cfg = base_cfg(b.port, TS_ACK_PUBACK);
    snprintf(cfg.link.username, sizeof cfg.link.username, "agent");
    snprintf(cfg.link.password, sizeof cfg.link.password, "wrong");

    struct capture cap;
    capture_start(&cap);
    struct ts_publisher *p = start_publisher(&cfg);
    UNTIL(NULL, stats(p).connect_failures >= 2, 5000);
    bool failed2 = until_ok;
    struct ts_publisher_stats st = stats(p);
    ts_publisher_free(p, 500);
    char *log = capture_end(&cap);
    assert_true(failed2);
    assert_false(st.connected);
    assert_int_equal(st.connects, 0);
    assert_non_null(strstr(log, "refused by the broker"));
    assert_non_null(strstr(log, "check username and password"));
    free(log);

    snprintf(cfg.link.password, sizeof cfg.link.password, "s3cret");
    struct caller c = {.p = start_publisher(&cfg), .n = 3, .batch = 3};
    make_readings(3);
    EXPECT(&c, c.deleted == 3, 5000);
    ts_publisher_free(c.p, 2000);
    broker_cleanup(&b);
}

/* ---- (h) status: birth, will, clean shutdown ---- */

static int child_publisher(int port)
{
    struct ts_mqtt_cfg cfg = base_cfg(port, TS_ACK_PUBACK);
    struct ts_publisher *p;
    char err[512];
    if (ts_publisher_new(&cfg, STATION, AGENT, &p, err, sizeof err)) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    ts_publisher_start(p, "{\"state\":\"online\",\"agent\":\"" AGENT "\",\"backlog\":0}");
    for (;;)
        pause();
}

static void status_birth_will_and_shutdown(void **state)
{
    char buf[512], port[16];
    struct broker b;
    struct sub s;
    assert_int_equal(broker_start(&b, NULL), 0);
    sub_start(&s, b.port, "test-sub-h", PREFIX "/status", false);

    snprintf(port, sizeof port, "%d", b.port);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/proc/self/exe", "test_publisher", "--child-publisher", port, (char *)NULL);
        _exit(127);
    }
    EXPECT(NULL, strstr(sub_last(&s, PREFIX "/status", buf, sizeof buf),
                                        "\"backlog\":0"), 10000);
    assert_non_null(strstr(buf, "\"state\":\"online\""));

    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    long long t0 = mono_ms();
    EXPECT(NULL, strstr(sub_last(&s, PREFIX "/status", buf, sizeof buf),
                                        "offline"), 7500);   /* keepalive 5 s * 1.5 */
    fprintf(stderr, "will after %lld ms: %s\n", mono_ms() - t0, buf);
    assert_string_equal(buf, "{\"state\":\"offline\",\"agent\":\"" AGENT "\",\"station\":\"" STATION
                             "\",\"reason\":\"lost\"}");

    /* Same client id in process: birth (default body), then a clean
     * shutdown publishes offline itself and no will follows. */
    struct ts_mqtt_cfg cfg = base_cfg(b.port, TS_ACK_PUBACK);
    struct ts_publisher *p = start_publisher(&cfg);
    EXPECT(NULL, strstr(sub_last(&s, PREFIX "/status", buf, sizeof buf),
                                        "online"), 5000);
    ts_publisher_status(p, "{\"state\":\"online\",\"backlog\":12}");
    EXPECT(NULL, strstr(sub_last(&s, PREFIX "/status", buf, sizeof buf),
                                        "\"backlog\":12"), 5000);
    ts_publisher_state(p, "{\"n\":1}", false);
    ts_publisher_free(p, 2000);
    EXPECT(NULL, strstr(sub_last(&s, PREFIX "/status", buf, sizeof buf), "shutdown"), 5000);
    size_t n0 = sub_count(&s);
    pump_for(NULL, 500);
    assert_int_equal(sub_count(&s), n0);   /* no will after a clean shutdown */

    /* The caller's own offline status stays the last word. */
    p = start_publisher(&cfg);
    EXPECT(NULL, stats(p).connected, 5000);
    ts_publisher_status(p, "{\"state\":\"offline\",\"backlog\":3}");
    ts_publisher_free(p, 2000);
    EXPECT(NULL, strstr(sub_last(&s, PREFIX "/status", buf, sizeof buf), "\"backlog\":3"), 5000);
    pump_for(NULL, 300);
    assert_string_equal(sub_last(&s, PREFIX "/status", buf, sizeof buf),
                        "{\"state\":\"offline\",\"backlog\":3}");
    sub_stop(&s);

    /* Retained: a new subscriber sees the last status and the state. */
    sub_start(&s, b.port, "test-sub-h2", PREFIX "/+", true);
    EXPECT(NULL, sub_count(&s) >= 2, 3000);
    assert_non_null(strstr(sub_last(&s, PREFIX "/status", buf, sizeof buf), "\"backlog\":3"));
    assert_string_equal(sub_last(&s, PREFIX "/state", buf, sizeof buf), "{\"n\":1}");
    sub_stop(&s);
    broker_cleanup(&b);
}

/* ---- config checks (no broker) ---- */

static void rejects_bad_ids_and_config(void **state)
{
    struct ts_mqtt_cfg cfg = base_cfg(1883, TS_ACK_PUBACK);
    struct ts_publisher *p = NULL;
    char err[512];

    assert_int_equal(ts_publisher_new(&cfg, "S/1", AGENT, &p, err, sizeof err), TS_EINVAL);
    assert_non_null(strstr(err, "station id"));
    assert_int_equal(ts_publisher_new(&cfg, STATION, "a+b", &p, err, sizeof err), TS_EINVAL);
    assert_int_equal(ts_publisher_new(&cfg, STATION, "", &p, err, sizeof err), TS_EINVAL);
    assert_null(p);
    cfg.max_inflight = 0;
    assert_int_equal(ts_publisher_new(&cfg, STATION, AGENT, &p, err, sizeof err), TS_ECONFIG);
    assert_non_null(strstr(err, "max_inflight"));
    cfg = base_cfg(1883, TS_ACK_PUBACK);
    snprintf(cfg.link.cert_file, sizeof cfg.link.cert_file, "/etc/hostname");
    assert_int_equal(ts_publisher_new(&cfg, STATION, AGENT, &p, err, sizeof err), TS_ECONFIG);
    /* one range for keepalive_s, the config table's (5..3600): the publisher
     * used to take up to 65535 (issue 16) */
    cfg = base_cfg(1883, TS_ACK_PUBACK);
    cfg.link.keepalive_s = TS_MQTT_KEEPALIVE_MAX + 1;
    assert_int_equal(ts_publisher_new(&cfg, STATION, AGENT, &p, err, sizeof err), TS_ECONFIG);
    assert_non_null(strstr(err, "mqtt: keepalive_s: not in 5..3600"));
    assert_null(p);
    cfg.link.keepalive_s = TS_MQTT_KEEPALIVE_MAX;
    assert_int_equal(ts_publisher_new(&cfg, STATION, AGENT, &p, err, sizeof err), TS_OK);
    ts_publisher_free(p, 0);
    p = NULL;
    cfg = base_cfg(1883, TS_ACK_PUBACK);
    cfg.max_inflight = TS_PUBLISHER_INFLIGHT_MAX + 1;   /* the table's 65000, not 65535 */
    assert_int_equal(ts_publisher_new(&cfg, STATION, AGENT, &p, err, sizeof err), TS_ECONFIG);
    cfg = base_cfg(1883, TS_ACK_PUBACK);
    assert_int_equal(ts_publisher_new(&cfg, STATION, AGENT, &p, err, sizeof err), TS_OK);
    ts_publisher_free(p, 0);   /* never started */
    ts_publisher_free(NULL, 0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child-publisher") == 0)
        return child_publisher(atoi(argv[2]));
    signal(SIGPIPE, SIG_IGN);
    mosquitto_lib_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rejects_bad_ids_and_config),
        cmocka_unit_test(readings_arrive_once_in_order),
        cmocka_unit_test(broker_restart_loses_nothing),
        cmocka_unit_test(end_to_end_ack_topic),
        cmocka_unit_test(ack_above_published_is_refused),
        cmocka_unit_test(restart_believes_what_earlier_runs_published),
        cmocka_unit_test(new_store_renumbers_past_the_ack),
        cmocka_unit_test(ack_timeout_resends),
        cmocka_unit_test(puback_mode_follows_pubacks),
        cmocka_unit_test(tls_client_cert_and_untrusted_ca),
        cmocka_unit_test(wrong_password_is_retried),
        cmocka_unit_test(status_birth_will_and_shutdown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mosquitto_lib_cleanup();
    return rc;
}
