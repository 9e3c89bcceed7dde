/* SPDX-License-Identifier: Apache-2.0 */
/* common/topics: the wire names as they were written by hand before (the same
 * bytes), and the agent-topic parser as strict as ever (a trust boundary). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "topics.h"

static void names_on_the_wire(void **state)
{
    (void)state;
    char buf[TS_TOPIC_AGENT_MAX];
    assert_int_equal(ts_topic_agent(buf, sizeof buf, "59st", "ctrl-59st.01", TS_TOPIC_READINGS), TS_OK);
    assert_string_equal(buf, "turnstile/v1/59st/ctrl-59st.01/readings");
    assert_int_equal(ts_topic_agent(buf, sizeof buf, "s", "a", TS_TOPIC_ACK), TS_OK);
    assert_string_equal(buf, "turnstile/v1/s/a/ack");
    assert_int_equal(ts_topic_agent(buf, sizeof buf, "s", "a", TS_TOPIC_STATUS), TS_OK);
    assert_string_equal(buf, "turnstile/v1/s/a/status");
    assert_int_equal(ts_topic_agent(buf, sizeof buf, "s", "a", TS_TOPIC_STATE), TS_OK);
    assert_string_equal(buf, "turnstile/v1/s/a/state");
    assert_int_equal(ts_topic_station(buf, sizeof buf, "59st", TS_TOPIC_WINDOW), TS_OK);
    assert_string_equal(buf, "turnstile/v1/59st/window");
    assert_int_equal(ts_topic_bridge(buf, sizeof buf, "b1", TS_TOPIC_STATUS), TS_OK);
    assert_string_equal(buf, "turnstile/bridge/b1/status");
    assert_string_equal(TS_TOPIC_FILTER(TS_TOPIC_READINGS), "turnstile/v1/+/+/readings");
    assert_string_equal(TS_TOPIC_FILTER(TS_TOPIC_STATUS), "turnstile/v1/+/+/status");
    assert_string_equal(TS_TOPIC_FILTER(TS_TOPIC_STATE), "turnstile/v1/+/+/state");
    assert_string_equal(TS_HEADER_MQTT_TOPIC, "mqtt_topic");

    /* the longest valid ids fit; one byte less of room does not */
    char id[TS_ID_MAX];
    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    assert_int_equal(ts_topic_agent(buf, sizeof buf, id, id, TS_TOPIC_READINGS), TS_OK);
    size_t n = strlen(buf);
    assert_true(n < sizeof buf);
    assert_int_equal(ts_topic_agent(buf, n + 1, id, id, TS_TOPIC_READINGS), TS_OK);
    assert_int_equal(ts_topic_agent(buf, n, id, id, TS_TOPIC_READINGS), TS_EINVAL);
}

static void parse_is_strict(void **state)
{
    (void)state;
    char st[TS_ID_MAX], ag[TS_ID_MAX];
    assert_true(ts_topic_agent_parse("turnstile/v1/59st/ctrl-59st.01/readings", TS_TOPIC_READINGS,
                                     st, ag));
    assert_string_equal(st, "59st");
    assert_string_equal(ag, "ctrl-59st.01");
    assert_true(ts_topic_agent_parse("turnstile/v1/s/a/state", TS_TOPIC_STATE, NULL, NULL));

    char longid[TS_ID_MAX + 1], topic[3 * TS_ID_MAX];
    memset(longid, 'x', TS_ID_MAX);
    longid[TS_ID_MAX] = '\0';   /* one byte too long */
    snprintf(topic, sizeof topic, "turnstile/v1/%s/a/readings", longid);
    static const char *bad[] = {
        NULL, "", "turnstile/v1/", "turnstile/v1/s/a", "turnstile/v1/s/a/", "turnstile/v1/s/a/ack",
        "turnstile/v1/s/a/readings/", "turnstile/v1/s/a/readingsx", "turnstile/v1//a/readings",
        "turnstile/v1/s//readings", "turnstile/v1/s/a/b/readings", "turnstile/v2/s/a/readings",
        "Turnstile/v1/s/a/readings", "/turnstile/v1/s/a/readings", "turnstile/v1/s t/a/readings",
        "turnstile/v1/s/+/readings", "turnstile/v1/#/a/readings", "turnstile/v1/s/a\n/readings",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        assert_false(ts_topic_agent_parse(bad[k], TS_TOPIC_READINGS, st, ag));
    assert_false(ts_topic_agent_parse(topic, TS_TOPIC_READINGS, st, ag));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_on_the_wire),
        cmocka_unit_test(parse_is_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
