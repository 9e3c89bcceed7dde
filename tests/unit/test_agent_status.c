/* SPDX-License-Identifier: Apache-2.0 */
/* test_agent_status: the agents' figures read from their retained status and
 * state (bridge/agent_status.h), as /metrics renders them; hostile payloads
 * leave the figures as they were and are counted; the table is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent_status.h"
#include "err.h"

static const char status_doc[] =
    "{\"state\":\"online\",\"agent\":\"a1\",\"station\":\"S1\",\"version\":\"0.1.0\","
    "\"started\":\"2026-12-06T15:00:00Z\",\"devices\":1,\"turnstiles\":2,\"backlog\":24,"
    "\"merges\":3,\"merged_rows\":40,\"store_error\":\"\",\"acks_refused\":1,"
    "\"ack_refused\":\"99\",\"ack_error\":\"\"}";

static const char state_doc[] =
    "{\"agent\":\"a1\",\"station\":\"S1\",\"time\":\"2026-12-06T15:46:22Z\",\"clock\":\"synced\","
    "\"backlog\":24,\"warnings\":1,\"turnstiles\":[{\"name\":\"SIM/R000/00-00-00\",\"ca\":\"SIM\","
    "\"unit\":\"R000\",\"scp\":\"00-00-00\",\"station\":\"SIM \\\"Q\\\" \\u00e9\",\"entries\":3694395484,"
    "\"exits\":2414411872,\"entries_counted\":10,\"exits_counted\":4,\"time_ms\":1796571982567,"
    "\"anomaly_s\":930,\"anomaly\":\"glitch\",\"warning\":\"every reading\"},"
    "{\"name\":\"t2\",\"entries\":1,\"exits\":2,\"entries_counted\":5,\"exits_counted\":6}],"
    "\"devices\":[{\"name\":\"d1\",\"kind\":\"modbus-tcp\",\"link\":\"up\",\"polls\":12,"
    "\"errors\":2,\"timeouts\":1,\"exceptions\":0,\"crc_errors\":0,\"short_responses\":0,"
    "\"connect_errors\":3,\"last_error\":\"\",\"rtt_us\":310}],"
    "\"sent\":100,\"resent\":7,\"pubacks\":99,\"connects\":2,\"acked\":90,\"ack_age_s\":4}";

static char *render(struct ts_agent_status *s)
{
    struct ts_strbuf b = {0};
    assert_int_equal(ts_agent_status_render(s, &b), TS_OK);
    char *text;
    size_t len;
    assert_int_equal(ts_strbuf_take(&b, &text, &len), TS_OK);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void has(const char *text, const char *line)
{
    char want[300];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want)) {
        print_error("missing line: %s\n%s", line, text);
        fail();
    }
}

static void apply(struct ts_agent_status *s, const char *topic, const char *doc)
{
    ts_agent_status_apply(s, topic, doc, strlen(doc));
}

static void status_and_state_become_metrics(void **unused)
{
    struct ts_agent_status *s;
    char why[200];
    assert_int_equal(ts_agent_status_new(NULL, "b1", 10, &s, why, sizeof why), TS_OK);
    apply(s, "turnstile/v1/S1/a1/status", status_doc);
    apply(s, "turnstile/v1/S1/a1/state", state_doc);
    char *t = render(s);
    has(t, "turnstile_bridge_agents_known 1");
    has(t, "turnstile_agent_online{station=\"S1\",agent=\"a1\"} 1");
    has(t, "turnstile_agent_backlog{station=\"S1\",agent=\"a1\"} 24");
    has(t, "turnstile_agent_merged_rows_total{station=\"S1\",agent=\"a1\"} 40");
    has(t, "turnstile_agent_acks_refused_total{station=\"S1\",agent=\"a1\"} 1");
    has(t, "turnstile_agent_store_error{station=\"S1\",agent=\"a1\"} 0");
    has(t, "turnstile_agent_warnings{station=\"S1\",agent=\"a1\"} 1");
    has(t, "turnstile_agent_clock_synced{station=\"S1\",agent=\"a1\"} 1");
    has(t, "turnstile_agent_turnstiles{station=\"S1\",agent=\"a1\"} 2");
    has(t, "turnstile_agent_entries_counted_total{station=\"S1\",agent=\"a1\"} 15");
    has(t, "turnstile_agent_exits_counted_total{station=\"S1\",agent=\"a1\"} 10");
    has(t, "turnstile_agent_devices_up{station=\"S1\",agent=\"a1\"} 1");
    has(t, "turnstile_agent_device_polls_total{station=\"S1\",agent=\"a1\"} 12");
    has(t, "turnstile_agent_device_connect_errors_total{station=\"S1\",agent=\"a1\"} 3");
    has(t, "turnstile_agent_readings_sent_total{station=\"S1\",agent=\"a1\"} 100");
    has(t, "turnstile_agent_acked_seq{station=\"S1\",agent=\"a1\"} 90");
    has(t, "turnstile_agent_ack_age_seconds{station=\"S1\",agent=\"a1\"} 4");
    free(t);
    /* the last will: offline, the state's figures stay */
    apply(s, "turnstile/v1/S1/a1/status", "{\"state\":\"offline\",\"agent\":\"a1\",\"reason\":\"lost\"}");
    t = render(s);
    has(t, "turnstile_agent_online{station=\"S1\",agent=\"a1\"} 0");
    has(t, "turnstile_agent_readings_sent_total{station=\"S1\",agent=\"a1\"} 100");
    assert_null(strstr(t, "turnstile_agent_backlog{")); /* not in the latest status */
    free(t);
    /* the retained status cleared: the agent is gone */
    ts_agent_status_apply(s, "turnstile/v1/S1/a1/status", "", 0);
    t = render(s);
    assert_null(strstr(t, "agent=\"a1\""));
    free(t);
    ts_agent_status_free(s);
}

static void hostile_payloads_change_nothing(void **unused)
{
    struct ts_agent_status *s;
    char why[200];
    assert_int_equal(ts_agent_status_new(NULL, "b1", 10, &s, why, sizeof why), TS_OK);
    apply(s, "turnstile/v1/S1/a1/state", state_doc);
    static const char *const bad[] = {
        "{", "{\"sent\":", "{\"sent\":1", "{\"sent\":1}x", "[1,2]", "\"x\"", "{\"sent\":1e999}",
        "{\"sent\":--1}", "{\"turnstiles\":[{\"entries_counted\":\"5\"}]}",
        "{\"clock\":\"synced\\", "{\"a\":\"\x01\"}", "{\"devices\":{\"link\":\"up\"}}",
        "{\"sent\":1,}", "{sent:1}", "{\"sent\":tru}", "{\"sent\":0x10}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        apply(s, "turnstile/v1/S1/a1/state", bad[i]);
    /* a NUL inside a number */
    ts_agent_status_apply(s, "turnstile/v1/S1/a1/state", "{\"sent\":1\0}", 11);
    /* nested 10,000 deep */
    size_t n = 10000;
    char *deep = malloc(2 * n + 20);
    assert_non_null(deep);
    strcpy(deep, "{\"x\":");
    memset(deep + 5, '[', n);
    memset(deep + 5 + n, ']', n);
    strcpy(deep + 5 + 2 * n, "}");
    apply(s, "turnstile/v1/S1/a1/state", deep);
    free(deep);
    /* 2 MiB */
    size_t big = 2 * 1024 * 1024;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = 0;
    apply(s, "turnstile/v1/S1/a1/state", huge);
    free(huge);
    /* topics that are not an agent's status or state are ignored */
    apply(s, "turnstile/v1/S1/a1/readings", "{\"sent\":5}");
    apply(s, "turnstile/v1/S 1/a1/state", "{\"sent\":5}");
    apply(s, "turnstile/v1/S1/a1/state/x", "{\"sent\":5}");
    char *t = render(s);
    has(t, "turnstile_agent_readings_sent_total{station=\"S1\",agent=\"a1\"} 100");
    has(t, "turnstile_bridge_agent_documents_bad_total 19");
    has(t, "turnstile_bridge_agent_documents_total 20"); /* the topics refused are not read */
    has(t, "turnstile_bridge_agents_known 1");
    free(t);
    ts_agent_status_free(s);
}

static void agents_are_bounded(void **unused)
{
    struct ts_agent_status *s;
    char why[200];
    assert_int_equal(ts_agent_status_new(NULL, "b1", 3, &s, why, sizeof why), TS_OK);
    char topic[100];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 1000; i++) {
            snprintf(topic, sizeof topic, "turnstile/v1/S%d/a%d/status", i % 7, i);
            apply(s, topic, "{\"state\":\"online\",\"backlog\":1}");
        }
    char *t = render(s);
    has(t, "turnstile_bridge_agents_known 3");
    has(t, "turnstile_bridge_agent_documents_left_out_total 1994");
    has(t, "turnstile_agent_online{station=\"S2\",agent=\"a2\"} 1");
    assert_null(strstr(t, "agent=\"a3\""));
    free(t);
    ts_agent_status_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_and_state_become_metrics),
        cmocka_unit_test(hostile_payloads_change_nothing),
        cmocka_unit_test(agents_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
