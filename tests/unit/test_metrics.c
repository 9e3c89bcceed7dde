/* SPDX-License-Identifier: Apache-2.0 */
/* test_metrics: /healthz's rules and /metrics' figures from the main loop's
 * snapshots (bridge/metrics.h), without the listener ([http] listen "").
 * The stall rules wait for [http] stall_s = 1 s to pass by sleeping longer:
 * what is checked is the state after it, not a duration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "bridge_config.h"
#include "err.h"
#include "metrics.h"

static struct ts_bridge_cfg cfg;

static struct ts_metrics *new_metrics(const char *role)
{
    ts_bridge_cfg_defaults(&cfg);
    snprintf(cfg.bridge.id, sizeof cfg.bridge.id, "b1");
    cfg.http.listen[0] = 0;
    cfg.http.agents = false;
    cfg.http.stall_s = 1;
    struct ts_metrics *m;
    char why[200];
    assert_int_equal(ts_metrics_new(&cfg, role, &m, why, sizeof why), TS_OK);
    return m;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* /healthz: the status, and the body into text */
static int health(struct ts_metrics *m, char *text, size_t size)
{
    char *body;
    size_t len;
    int status = ts_metrics_health(m, &body, &len);
    assert_non_null(body);
    snprintf(text, size, "%.*s", (int)len, body);
    free(body);
    return status;
}

static void has(const char *text, const char *what)
{
    if (!strstr(text, what)) {
        print_error("missing: %s\nin:\n%s\n", what, text);
        fail();
    }
}

static void no_snapshot_is_unhealthy(void **unused)
{
    struct ts_metrics *m = new_metrics("relay");
    char t[2000];
    assert_int_equal(health(m, t, sizeof t), 503);
    has(t, "the main loop has not reported");
    ts_metrics_free(m);
}

static void relay_stall_and_recovery(void **unused)
{
    struct ts_metrics *m = new_metrics("relay");
    struct ts_relay_stats rs = {.connected = true, .delivered = 10, .queued = 0};
    struct ts_status_report r = {.bridge_id = "b1", .role = "relay", .relay = &rs};
    char t[2000];
    ts_metrics_update(m, &r);
    assert_int_equal(health(m, t, sizeof t), 200);
    has(t, "ok");
    /* readings wait, Kafka confirms nothing */
    rs.queued = 5;
    ts_metrics_update(m, &r);
    assert_int_equal(health(m, t, sizeof t), 200);
    pause_ms(1100);
    ts_metrics_update(m, &r);
    assert_int_equal(health(m, t, sizeof t), 503);
    has(t, "relay: Kafka has confirmed nothing for ");
    has(t, " s while 5 readings wait");
    /* it confirms again */
    rs.delivered = 11;
    ts_metrics_update(m, &r);
    assert_int_equal(health(m, t, sizeof t), 200);
    /* MQTT gone, a fatal producer */
    rs.connected = false;
    rs.fatal = true;
    ts_metrics_update(m, &r);
    assert_int_equal(health(m, t, sizeof t), 503);
    has(t, "relay: not connected to the MQTT broker");
    has(t, "relay: the Kafka producer had a fatal error");
    ts_metrics_free(m);
}

static void aggregate_partitions(void **unused)
{
    struct ts_metrics *m = new_metrics("aggregate");
    struct ts_aggregator_stats as = {.partitions = 0};
    struct ts_ack_stats ks = {.connected = true};
    struct ts_aggregator_partition parts[3] = {
        {.partition = 2, .next_offset = 5, .high_offset = 5, .checkpoint_offset = 5},
        {.partition = 5, .next_offset = 7, .high_offset = 9, .checkpoint_offset = 7},
    };
    struct ts_status_report r = {.bridge_id = "b1", .role = "aggregate", .agg = &as,
                                 .parts = parts, .n_parts = 0, .ack = &ks};
    char t[4000];
    ts_metrics_update(m, &r);
    assert_int_equal(health(m, t, sizeof t), 503);
    has(t, "aggregate: no partition of the readings topic is assigned to this bridge");
    /* two partitions: 5 has records to read */
    r.n_parts = 2;
    ts_metrics_update(m, &r);
    assert_int_equal(health(m, t, sizeof t), 200);
    pause_ms(1100);
    /* a partition assigned before both (its marks must not take theirs) */
    parts[2] = parts[1];
    parts[1] = parts[0];
    parts[0] = (struct ts_aggregator_partition){.partition = 0, .next_offset = 1,
                                                .high_offset = 1};
    r.n_parts = 3;
    ts_metrics_update(m, &r);
    assert_int_equal(health(m, t, sizeof t), 503);
    has(t, "partition 5: 2 records to read and nothing taken for ");
    assert_null(strstr(t, "partition 0:"));
    assert_null(strstr(t, "partition 2:"));
    char *body;
    size_t len;
    assert_int_equal(ts_metrics_render(m, &body, &len), 200);
    has(body, "\nturnstile_bridge_partition_lag{partition=\"5\"} 2\n");
    has(body, "\nturnstile_bridge_partition_lag{partition=\"2\"} 0\n");
    has(body, "\nturnstile_bridge_healthy 0\n");
    has(body, "\nturnstile_bridge_info{bridge=\"b1\",version=\"" TS_VERSION "\",role=\"aggregate\"} 1\n");
    has(body, "\nturnstile_bridge_dead_letters_total{stage=\"aggregate\",reason=\"refused\"} 0\n");
    assert_null(strstr(body, "relay_")); /* no relay: no relay families */
    free(body);
    /* it moves */
    parts[2].next_offset = 8;
    ts_metrics_update(m, &r);
    assert_int_equal(health(m, t, sizeof t), 200);
    /* a failing checkpoint; the acknowledger disconnected */
    parts[1].failures_in_row = 2;
    snprintf(parts[1].last_error, sizeof parts[1].last_error, "No space left on device");
    ks.connected = false;
    ts_metrics_update(m, &r);
    assert_int_equal(health(m, t, sizeof t), 503);
    has(t, "partition 2: 2 checkpoint(s) failed in a row (No space left on device)");
    has(t, "acks: not connected to the MQTT broker");
    ts_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_snapshot_is_unhealthy),
        cmocka_unit_test(relay_stall_and_recovery),
        cmocka_unit_test(aggregate_partitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
