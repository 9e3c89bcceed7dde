/* SPDX-License-Identifier: Apache-2.0 */
/* The outbox (agent/outbox.h) with a real SQLite store and, for the
 * publishing half, a real mosquitto broker (broker.c): the test plays the
 * agent's main loop (put a cycle's readings, pump) without the agent's
 * poller and tally. Without a publisher: stdout is the consumer (printed
 * from the store, then deleted) or, without a store, the outbox numbers.
 * With one: every reading is marked published, sent and deleted once
 * acknowledged (PUBACK mode), also with cycles put between pumps; a new
 * store renumbers past the bridge's retained ack, refuses an absurd one
 * and publishes nothing meanwhile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "err.h"
#include "harness.h"
#include "log.h"
#include "outbox.h"

#define STATION "S-59st"
#define AGENT "ctrl-59st.01"

static int n_store;

static void make_cfg(struct ts_agent_cfg *cfg, bool store, int port, enum ts_ack_mode mode)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->agent.agent_id, sizeof cfg->agent.agent_id, "%s", AGENT);
    snprintf(cfg->agent.station_id, sizeof cfg->agent.station_id, "%s", STATION);
    cfg->has_store = store;
    snprintf(cfg->store.path, sizeof cfg->store.path, "%s/outbox-%d.db", temp_dir(), ++n_store);
    cfg->has_mqtt = port != 0;
    struct ts_mqtt_cfg *m = &cfg->mqtt;
    snprintf(m->link.host, sizeof m->link.host, "127.0.0.1");
    m->link.port = port;
    m->link.keepalive_s = 5;
    m->link.reconnect_min_ms = 100;
    m->link.reconnect_max_ms = 800;
    m->max_inflight = 20;
    m->ack_timeout_ms = 30000;
    m->ack_mode = mode;
}

static struct ts_outbox *open_outbox(const struct ts_agent_cfg *cfg, bool print)
{
    struct ts_outbox *o;
    char why[512] = "";
    int rc = ts_outbox_open(cfg, print, &o, why, sizeof why);
    if (rc)
        fprintf(stderr, "%s\n", why);
    assert_int_equal(rc, TS_OK);
    return o;
}

/* One poll cycle's n readings, the k-th of the test. */
static void put(struct ts_outbox *o, size_t n)
{
    static uint64_t k;
    struct ts_reading r[64];
    assert_true(n <= 64);
    for (size_t i = 0; i < n; i++, k++) {
        struct ts_reading x = {
            .ca = "A002", .unit = "R051", .scp = "02-00-00", .station = "59 ST",
            .linename = "NQR456W", .division = "BMT", .desc = "REGULAR",
            .entries = k % 7, .exits = k % 3, .agent_id = AGENT,
            .time_ms = 1685174400000LL + (int64_t)k * 1000, .entries_cum = 1000 + k,
            .exits_cum = 500 + k,
        };
        r[i] = x;
    }
    ts_outbox_put(o, r, n, "state", 5);
}

static struct ts_store_stats store(struct ts_outbox *o)
{
    struct ts_store_stats st;
    assert_true(ts_outbox_store_stats(o, &st));
    return st;
}

/* Runs the loop until cond holds; fails after 60 s (a loaded machine). */
#define PUMP_UNTIL(o, cond)                                               \
    do {                                                                  \
        long long d_ = mono_ms() + 60000;                                 \
        while (!(cond)) {                                                 \
            if (mono_ms() > d_)                                           \
                fail_msg("timed out waiting for %s", #cond);              \
            ts_outbox_pump(o);                                            \
            usleep(2000);                                                 \
        }                                                                 \
    } while (0)

static void publish_retained(const struct broker *b, const char *topic, const char *payload)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mosquitto_pub -h 127.0.0.1 -p %d -q 1 -r -t '%s' -m '%s'",
             b->port, topic, payload);
    assert_int_equal(system(cmd), 0);
}

static struct ts_publisher *start(const struct ts_agent_cfg *cfg, struct ts_outbox *o)
{
    struct ts_publisher *p;
    char err[512] = "";
    int rc = ts_publisher_new(&cfg->mqtt, STATION, AGENT, &p, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, TS_OK);
    ts_outbox_attach(o, p);
    assert_int_equal(ts_publisher_start(p, NULL), TS_OK);
    return p;
}

/* ---- without a publisher ---- */

static void stdout_is_the_consumer(void **state)
{
    (void)state;
    struct ts_agent_cfg cfg;
    make_cfg(&cfg, true, 0, TS_ACK_PUBACK);
    char out[300];
    snprintf(out, sizeof out, "%s/stdout", temp_dir());
    fflush(stdout);
    int saved = dup(1), fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    struct ts_outbox *o = open_outbox(&cfg, true);
    for (int c = 0; c < 3; c++)
        put(o, 50);
    ts_outbox_pump(o);   /* no publisher: nothing */
    struct ts_store_stats st = store(o);
    ts_outbox_close(o);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    assert_int_equal(st.rows, 0);
    assert_int_equal(st.acked, 150);
    assert_int_equal(st.publish_mark, 150);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char line[TS_READING_LINE_MAX + 2];
    uint64_t n = 0;
    while (fgets(line, sizeof line, f)) {
        char want[64];
        snprintf(want, sizeof want, "," AGENT ":%llu,", (unsigned long long)++n);
        if (!strstr(line, want))
            fail_msg("line %llu: %s", (unsigned long long)n, line);
    }
    fclose(f);
    assert_int_equal(n, 150);
}

static void without_a_store_it_numbers(void **state)
{
    (void)state;
    struct ts_agent_cfg cfg;
    make_cfg(&cfg, false, 0, TS_ACK_PUBACK);
    struct ts_outbox *o = open_outbox(&cfg, false);
    struct ts_reading r[3] = {{.seq = 0}};
    ts_outbox_put(o, r, 3, NULL, 0);
    ts_outbox_put(o, r + 1, 2, NULL, 0);
    assert_int_equal(r[0].seq, 1);
    assert_int_equal(r[1].seq, 4);
    assert_int_equal(r[2].seq, 5);
    assert_int_equal(r[2].merged_from, 5);
    struct ts_store_stats st;
    assert_false(ts_outbox_store_stats(o, &st));
    assert_int_equal(ts_outbox_backlog(o), 0);
    size_t len = 9;
    assert_int_equal(ts_outbox_load_state(o, NULL, 0, &len), TS_OK);
    assert_int_equal(len, 0);
    struct ts_ack_status ack = ts_outbox_ack_status(o);
    assert_int_equal(ack.refused, 0);
    assert_string_equal(ack.error, "");
    ts_outbox_close(o);
}

/* ---- with a publisher and a real broker ---- */

static void every_reading_sent_and_deleted(void **state)
{
    (void)state;
    struct broker b;
    assert_int_equal(broker_start(&b, NULL), 0);
    struct ts_agent_cfg cfg;
    make_cfg(&cfg, true, b.port, TS_ACK_PUBACK);
    struct ts_outbox *o = open_outbox(&cfg, false);
    put(o, 40);   /* before the publisher: kept */
    struct ts_publisher *p = start(&cfg, o);
    /* cycles put between pumps, as the agent's loop does */
    for (int c = 0; c < 12; c++) {
        put(o, 40);
        for (int i = 0; i < 5; i++) {
            ts_outbox_pump(o);
            usleep(2000);
        }
    }
    PUMP_UNTIL(o, store(o).rows == 0);
    struct ts_store_stats st = store(o);
    assert_int_equal(st.acked, 520);
    assert_int_equal(st.publish_mark, 520);
    assert_int_equal(st.next_seq, 521);
    assert_int_equal(ts_outbox_backlog(o), 0);
    struct ts_publisher_stats ps;
    ts_publisher_get_stats(p, &ps);
    assert_int_equal(ps.highest_sent, 520);
    assert_int_equal(ts_outbox_ack_status(o).refused, 0);
    ts_outbox_settle(o);
    ts_publisher_free(p, 1000);
    ts_outbox_close(o);
    broker_cleanup(&b);
}

static void renumbers_past_the_retained_ack(void **state)
{
    (void)state;
    struct broker b;
    assert_int_equal(broker_start(&b, NULL), 0);
    const char *ack = "turnstile/v1/" STATION "/" AGENT "/ack";
    publish_retained(&b, ack, "18446744073709551615");   /* absurd: refused */
    struct ts_agent_cfg cfg;
    make_cfg(&cfg, true, b.port, TS_ACK_END_TO_END);
    struct ts_outbox *o = open_outbox(&cfg, false);
    put(o, 10);
    struct ts_publisher *p = start(&cfg, o);
    PUMP_UNTIL(o, ts_outbox_ack_status(o).refused == 1);
    struct ts_ack_status as = ts_outbox_ack_status(o);
    assert_string_equal(as.error, "implausible acknowledgement: not renumbering");
    assert_true(as.refused_last == UINT64_MAX);
    struct ts_publisher_stats ps;
    ts_publisher_get_stats(p, &ps);
    assert_int_equal(ps.sent, 0);
    assert_int_equal(store(o).rows, 10);
    assert_int_equal(store(o).publish_mark, 0);

    publish_retained(&b, ack, "500");   /* the bridge's real value */
    PUMP_UNTIL(o, store(o).next_seq == 511);
    as = ts_outbox_ack_status(o);
    assert_string_equal(as.error, "");
    assert_int_equal(as.refused, 1);
    PUMP_UNTIL(o, store(o).publish_mark >= 510);
    publish_retained(&b, ack, "510");
    PUMP_UNTIL(o, store(o).rows == 0);
    assert_int_equal(store(o).acked, 510);
    ts_outbox_settle(o);
    ts_publisher_free(p, 1000);
    ts_outbox_close(o);
    broker_cleanup(&b);
}

static int cleanup(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", temp_dir());
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stdout_is_the_consumer),
        cmocka_unit_test(without_a_store_it_numbers),
        cmocka_unit_test(every_reading_sent_and_deleted),
        cmocka_unit_test(renumbers_past_the_retained_ack),
    };
    return cmocka_run_group_tests(tests, NULL, cleanup);
}
