/* SPDX-License-Identifier: Apache-2.0 */
/* The acknowledger (bridge/ack.c) against a real mosquitto (broker.c). A
 * libmosquitto subscriber of the test reads turnstile/v1/+/+/ack: the
 * retained values a fresh subscription gets, and the messages a live one
 * counts. Checked: the ack topic made from the readings topic, retained
 * decimal payloads, values never going down, a burst of sets within
 * ack_interval_ms coalesced into one message (counted, not timed), the
 * pending value published by ts_ack_free, every value published again after
 * the broker lost everything (SIGKILL, persistence file removed), TLS with
 * a client certificate and a password, and concurrent ts_ack_set from
 * several threads for many agents, and the table's bounds (ts_ack_limits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ack.h"
#include "broker.h"
#include "err.h"
#include "harness.h"
#include "log.h"
#include "mqtt_sub.h"

#define WAIT_MS 20000         /* generous deadline of every wait: never a measure */

/* ---- the test's subscriber (mqtt_sub.h): every ack ---- */

#define ACKS "turnstile/v1/+/+/ack"

/* Messages on topic so far; the last payload into last (if not NULL). */
static size_t sub_on(struct sub *s, const char *topic, char *last, size_t size)
{
    size_t k = 0;
    if (last)
        last[0] = '\0';
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->msgs[i].topic, topic)) {
            k++;
            if (last)
                snprintf(last, size, "%s", s->msgs[i].payload);
        }
    pthread_mutex_unlock(&s->lock);
    return k;
}

/* Waits until topic's last payload is want. */
static bool sub_wait_value(struct sub *s, const char *topic, const char *want)
{
    char last[64];
    long long deadline = mono_ms() + WAIT_MS;
    do {
        sub_on(s, topic, last, sizeof last);
        if (!strcmp(last, want))
            return true;
        usleep(10000);
    } while (mono_ms() < deadline);
    fprintf(stderr, "%s: last value '%s', want '%s'\n", topic, last, want);
    return false;
}

/* A fresh subscription until topic's last value is want (retained or
 * live): the broker has it. */
static void wait_broker_has(int port, const char *topic, const char *want)
{
    struct sub s;
    sub_start(&s, port, NULL, ACKS, true);
    assert_true(sub_wait_value(&s, topic, want));
    sub_stop(&s);
}

/* A fresh subscription: the retained value of topic ("" if none) once the
 * subscription holds `count` messages in all. */
static void retained_values(int port, size_t count, const char *topic, char *out, size_t size)
{
    struct sub s;
    sub_start(&s, port, NULL, ACKS, true);
    long long deadline = mono_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&s.lock);
        size_t n = s.n;
        pthread_mutex_unlock(&s.lock);
        if (n >= count)
            break;
        assert_true(mono_ms() < deadline);
        usleep(10000);
    }
    assert_int_equal(sub_on(&s, topic, out, size), 1);
    pthread_mutex_lock(&s.lock);
    for (size_t i = 0; i < s.n; i++)
        assert_true(s.msgs[i].retain);
    pthread_mutex_unlock(&s.lock);
    sub_stop(&s);
}

/* ---- the acknowledger ---- */

static struct ts_bridge_mqtt_cfg base_cfg(int port, int interval_ms)
{
    struct ts_bridge_mqtt_cfg c = {
        .link = {.host = "127.0.0.1", .port = port, .keepalive_s = 30, .reconnect_min_ms = 100,
                 .reconnect_max_ms = 400},
        .ack_interval_ms = interval_ms,
    };
    return c;
}

static struct ts_ack *ack_start(int port, int interval_ms)
{
    struct ts_bridge_mqtt_cfg cfg = base_cfg(port, interval_ms);
    struct ts_ack *a = NULL;
    char why[256];
    assert_int_equal(ts_ack_new(&cfg, "b1", &a, why, sizeof why), TS_OK);
    assert_int_equal(ts_ack_start(a), TS_OK);
    return a;
}

/* Waits until the acknowledger is connected, has nothing pending and has
 * published at least `published` messages. */
static void ack_wait(struct ts_ack *a, uint64_t published)
{
    struct ts_ack_stats st;
    long long deadline = mono_ms() + WAIT_MS;
    for (;;) {
        ts_ack_stats(a, &st);
        if (st.connected && st.pending == 0 && st.published >= published)
            return;
        if (mono_ms() > deadline) {
            fprintf(stderr, "ack: connected %d, pending %" PRIu64 ", published %" PRIu64
                    " (want %" PRIu64 ")\n", st.connected, st.pending, st.published, published);
            fail();
        }
        usleep(10000);
    }
}

#define R(st, ag) "turnstile/v1/" st "/" ag "/readings"
#define A(st, ag) "turnstile/v1/" st "/" ag "/ack"

static void rejects_bad_topics_and_config(void **state)
{
    struct ts_bridge_mqtt_cfg cfg = base_cfg(1883, 100);
    struct ts_ack *a = NULL;
    char why[256];

    cfg.ack_interval_ms = -1;
    assert_int_equal(ts_ack_new(&cfg, "b1", &a, why, sizeof why), TS_ECONFIG);
    assert_null(a);
    cfg = base_cfg(1883, 100);
    snprintf(cfg.link.ca_file, sizeof cfg.link.ca_file, "/nonexistent/ca.crt");
    assert_int_equal(ts_ack_new(&cfg, "b1", &a, why, sizeof why), TS_ECONFIG);
    assert_non_null(strstr(why, "ca_file"));
    cfg = base_cfg(1883, 100);
    cfg.link.keepalive_s = 3601;   /* the table's range, as the agent's (issue 16) */
    assert_int_equal(ts_ack_new(&cfg, "b1", &a, why, sizeof why), TS_ECONFIG);
    assert_non_null(strstr(why, "ack: mqtt: keepalive_s"));
    cfg = base_cfg(1883, 100);
    assert_int_equal(ts_ack_new(&cfg, "b1", &a, why, sizeof why), TS_OK);
    static const char *const bad[] = {
        "turnstile/v1/S1/a1/status", "turnstile/v1/S1/a+1/readings", "turnstile/v1/S1/readings",
        "turnstile/v2/S1/a1/readings", "turnstile/v1/S1/a1/readings/x", "turnstile/v1//a1/readings",
        "turnstile/v1/S 1/a1/readings", "", "readings",
        "turnstile/v1/S1/a123456789012345678901234567890123456789012345678901234567890123"
        "4/readings",   /* an agent id of 65 characters */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ts_ack_set(a, bad[i], 5), TS_EINVAL);
    assert_int_equal(ts_ack_set(a, R("S1", "a1"), 5), TS_OK);
    struct ts_ack_stats st;
    ts_ack_stats(a, &st);
    assert_int_equal(st.agents, 1);
    assert_int_equal(st.pending, 1);
    assert_int_equal(st.published, 0);
    assert_false(st.connected);
    ts_ack_free(a, 0);   /* never started */
    ts_ack_free(NULL, 0);
}

static void retained_and_monotone(void **state)
{
    struct broker b;
    char v[64];
    assert_int_equal(broker_start(&b, NULL), 0);
    struct ts_ack *a = ack_start(b.port, 10);
    /* set before the connection: published once connected */
    assert_int_equal(ts_ack_set(a, R("S1", "a1"), 5), TS_OK);
    assert_int_equal(ts_ack_set(a, R("S1", "a2"), 7), TS_OK);
    assert_int_equal(ts_ack_set(a, R("S-2", "ctrl-59st.01"), 18446744073709551615ULL), TS_OK);
    assert_int_equal(ts_ack_set(a, R("S1", "a3"), 0), TS_OK);   /* nothing acked: no message */
    ack_wait(a, 3);
    wait_broker_has(b.port, A("S1", "a1"), "5");
    wait_broker_has(b.port, A("S1", "a2"), "7");
    wait_broker_has(b.port, A("S-2", "ctrl-59st.01"), "18446744073709551615");

    retained_values(b.port, 3, A("S1", "a1"), v, sizeof v);
    assert_string_equal(v, "5");
    retained_values(b.port, 3, A("S1", "a2"), v, sizeof v);
    assert_string_equal(v, "7");
    retained_values(b.port, 3, A("S-2", "ctrl-59st.01"), v, sizeof v);
    assert_string_equal(v, "18446744073709551615");

    /* a live subscriber sees the next value */
    struct sub s;
    sub_start(&s, b.port, NULL, ACKS, true);
    assert_true(sub_wait_value(&s, A("S1", "a1"), "5"));   /* the retained one */
    assert_int_equal(ts_ack_set(a, R("S1", "a1"), 12), TS_OK);
    assert_true(sub_wait_value(&s, A("S1", "a1"), "12"));

    /* lower or equal values change nothing: nothing pending, nothing sent */
    struct ts_ack_stats st, st2;
    ack_wait(a, 4);
    ts_ack_stats(a, &st);
    assert_int_equal(ts_ack_set(a, R("S1", "a1"), 3), TS_OK);
    assert_int_equal(ts_ack_set(a, R("S1", "a1"), 12), TS_OK);
    assert_int_equal(ts_ack_set(a, R("S1", "a1"), 11), TS_OK);
    ts_ack_stats(a, &st2);
    assert_int_equal(st2.pending, 0);
    assert_int_equal(st2.published, st.published);
    assert_int_equal(st2.agents, 3);
    assert_int_equal(ts_ack_set(a, R("S1", "a1"), 13), TS_OK);
    assert_true(sub_wait_value(&s, A("S1", "a1"), "13"));
    char last[64];
    assert_int_equal(sub_on(&s, A("S1", "a1"), last, sizeof last), 3);   /* 5, 12, 13 */

    ts_ack_free(a, 2000);
    retained_values(b.port, 3, A("S1", "a1"), v, sizeof v);
    assert_string_equal(v, "13");
    sub_stop(&s);
    broker_cleanup(&b);
}

static void rate_limit_coalesces(void **state)
{
    struct broker b;
    char last[64];
    assert_int_equal(broker_start(&b, NULL), 0);
    struct sub s;
    sub_start(&s, b.port, NULL, ACKS, true);
    /* an interval far longer than the test: the second value of an agent
     * waits for ts_ack_free */
    struct ts_ack *a = ack_start(b.port, 600000);
    assert_int_equal(ts_ack_set(a, R("S1", "a1"), 1), TS_OK);
    ack_wait(a, 1);
    for (uint64_t v = 2; v <= 50; v++)
        assert_int_equal(ts_ack_set(a, R("S1", "a1"), v), TS_OK);
    assert_int_equal(ts_ack_set(a, R("S1", "a2"), 1), TS_OK);   /* another agent: not held */
    assert_true(sub_wait_value(&s, A("S1", "a2"), "1"));
    struct ts_ack_stats st;
    ts_ack_stats(a, &st);
    assert_int_equal(st.published, 2);
    assert_int_equal(st.pending, 1);
    assert_int_equal(st.agents, 2);

    ts_ack_free(a, 5000);   /* publishes the pending 50 */
    assert_true(sub_wait_value(&s, A("S1", "a1"), "50"));
    assert_int_equal(sub_on(&s, A("S1", "a1"), last, sizeof last), 2);   /* 1 and 50 only */
    assert_int_equal(sub_on(&s, A("S1", "a2"), last, sizeof last), 1);
    sub_stop(&s);
    broker_cleanup(&b);
}

static void republished_after_broker_loss(void **state)
{
    struct broker b;
    char v[64], path[300];
    assert_int_equal(broker_start(&b, NULL), 0);
    struct ts_ack *a = ack_start(b.port, 10);
    assert_int_equal(ts_ack_set(a, R("S1", "a1"), 10), TS_OK);
    assert_int_equal(ts_ack_set(a, R("S1", "a2"), 20), TS_OK);
    ack_wait(a, 2);

    /* a crash that loses every retained message */
    assert_int_equal(broker_kill(&b), 0);
    snprintf(path, sizeof path, "%s/mosquitto.db", b.dir);
    unlink(path);
    assert_int_equal(ts_ack_set(a, R("S1", "a1"), 11), TS_OK);   /* while it is away */
    assert_int_equal(broker_restart(&b), 0);
    ack_wait(a, 4);   /* both again (a1 with its new value) */
    wait_broker_has(b.port, A("S1", "a1"), "11");
    wait_broker_has(b.port, A("S1", "a2"), "20");

    retained_values(b.port, 2, A("S1", "a1"), v, sizeof v);
    assert_string_equal(v, "11");
    retained_values(b.port, 2, A("S1", "a2"), v, sizeof v);
    assert_string_equal(v, "20");
    ts_ack_free(a, 2000);
    broker_cleanup(&b);
}

/* TLS with a client certificate, and a password: the shared link code */
static void tls_and_password(void **state)
{
    struct broker b;
    struct broker_opts o = {.tls = true, .require_cert = true, .username = "bridge",
                            .password = "pw"};
    assert_int_equal(broker_start(&b, &o), 0);
    struct ts_bridge_mqtt_cfg cfg = base_cfg(b.tls_port, 10);
    snprintf(cfg.link.ca_file, sizeof cfg.link.ca_file, "%s", b.ca_file);
    snprintf(cfg.link.cert_file, sizeof cfg.link.cert_file, "%s", b.client_cert);
    snprintf(cfg.link.key_file, sizeof cfg.link.key_file, "%s", b.client_key);
    snprintf(cfg.link.username, sizeof cfg.link.username, "bridge");
    snprintf(cfg.link.password, sizeof cfg.link.password, "pw");
    struct ts_ack *a = NULL;
    char why[256];
    assert_int_equal(ts_ack_new(&cfg, "b1", &a, why, sizeof why), TS_OK);
    assert_int_equal(ts_ack_start(a), TS_OK);
    assert_int_equal(ts_ack_set(a, R("S1", "a1"), 42), TS_OK);
    ack_wait(a, 1);
    ts_ack_free(a, 2000);
    broker_cleanup(&b);
}

/* ---- several threads, many agents ---- */

#define AGENTS 500
#define THREADS 4

struct setter {
    struct ts_ack *a;
    int t;
};

static void *setter_main(void *arg)
{
    struct setter *s = arg;
    char topic[96];
    for (uint64_t v = 1; v <= 20; v++)
        for (int i = 0; i < AGENTS; i++) {
            snprintf(topic, sizeof topic, "turnstile/v1/S%d/a%d/readings", i % 7, i);
            /* thread t sets v * 10 + t: the highest is 200 + THREADS - 1 */
            if (ts_ack_set(s->a, topic, v * 10 + (uint64_t)s->t) != TS_OK)
                return (void *)1;
        }
    return NULL;
}

static void many_agents_from_threads(void **state)
{
    struct broker b;
    assert_int_equal(broker_start(&b, NULL), 0);
    struct ts_ack *a = ack_start(b.port, 50);
    pthread_t th[THREADS];
    struct setter st[THREADS];
    for (int t = 0; t < THREADS; t++) {
        st[t] = (struct setter){a, t};
        assert_int_equal(pthread_create(&th[t], NULL, setter_main, &st[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        void *ret;
        pthread_join(th[t], &ret);
        assert_null(ret);
    }
    ack_wait(a, AGENTS);
    struct ts_ack_stats s;
    ts_ack_stats(a, &s);
    assert_int_equal(s.agents, AGENTS);

    struct sub sub;
    sub_start(&sub, b.port, NULL, ACKS, true);
    char topic[96], last[64], want[32];
    snprintf(want, sizeof want, "%d", 200 + THREADS - 1);
    long long deadline = mono_ms() + WAIT_MS;
    for (int i = 0; i < AGENTS; i++) {
        snprintf(topic, sizeof topic, "turnstile/v1/S%d/a%d/ack", i % 7, i);
        while (sub_on(&sub, topic, last, sizeof last), strcmp(last, want) && mono_ms() < deadline)
            usleep(10000);
        if (strcmp(last, want) != 0)
            fprintf(stderr, "%s: '%s', want '%s'\n", topic, last, want);
        assert_string_equal(last, want);
    }
    sub_stop(&sub);
    ts_ack_free(a, 2000);
    broker_cleanup(&b);
}

/* The table is bounded: idle agents are forgotten after their value went
 * out, past max_agents the oldest go first, and a forgotten agent's next
 * value is published again. */
static void bounded_table_forgets_settled_agents(void **state)
{
    struct broker b;
    struct ts_ack_stats s;
    char topic[96];
    assert_int_equal(broker_start(&b, NULL), 0);

    /* 1. a bound on the count: 500 agents, at most 100 kept */
    struct ts_ack *a = ack_start(b.port, 10);
    ts_ack_limits(a, 0, 100);
    for (int i = 1; i <= 500; i++) {
        snprintf(topic, sizeof topic, "turnstile/v1/S/c%d/readings", i);
        assert_int_equal(ts_ack_set(a, topic, (uint64_t)i), TS_OK);
    }
    ack_wait(a, 500);
    long long deadline = mono_ms() + WAIT_MS;
    do {
        ts_ack_stats(a, &s);
        usleep(10000);
    } while (s.agents > 100 && mono_ms() < deadline);
    assert_true(s.agents <= 100);
    assert_true(s.expired >= 400);
    /* every value reached the broker all the same */
    wait_broker_has(b.port, "turnstile/v1/S/c1/ack", "1");
    wait_broker_has(b.port, "turnstile/v1/S/c500/ack", "500");
    ts_ack_free(a, 2000);

    /* 2. idle agents: forgotten once published; a later set publishes again
     * (even the same value: a forgotten agent re-sending its readings) */
    a = ack_start(b.port, 10);
    ts_ack_limits(a, 300, 0);
    assert_int_equal(ts_ack_set(a, R("S", "i1"), 7), TS_OK);
    ack_wait(a, 1);
    deadline = mono_ms() + WAIT_MS;
    do {
        ts_ack_stats(a, &s);
        usleep(10000);
    } while (s.agents > 0 && mono_ms() < deadline);
    assert_int_equal(s.agents, 0);
    assert_int_equal(s.expired, 1);
    struct sub sub;
    sub_start(&sub, b.port, NULL, ACKS, true);
    assert_true(sub_wait_value(&sub, A("S", "i1"), "7"));   /* retained */
    size_t before = sub_on(&sub, A("S", "i1"), NULL, 0);
    assert_int_equal(ts_ack_set(a, R("S", "i1"), 7), TS_OK);
    deadline = mono_ms() + WAIT_MS;
    while (sub_on(&sub, A("S", "i1"), NULL, 0) == before && mono_ms() < deadline)
        usleep(10000);
    assert_int_equal(sub_on(&sub, A("S", "i1"), NULL, 0), before + 1);
    sub_stop(&sub);
    ts_ack_free(a, 2000);
    broker_cleanup(&b);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    ts_log_level = getenv("TS_TEST_VERBOSE") ? TS_LOG_DEBUG : TS_LOG_WARNING;
    mosquitto_lib_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rejects_bad_topics_and_config),
        cmocka_unit_test(retained_and_monotone),
        cmocka_unit_test(rate_limit_coalesces),
        cmocka_unit_test(republished_after_broker_loss),
        cmocka_unit_test(tls_and_password),
        cmocka_unit_test(many_agents_from_threads),
        cmocka_unit_test(bounded_table_forgets_settled_agents),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mosquitto_lib_cleanup();
    return rc;
}
