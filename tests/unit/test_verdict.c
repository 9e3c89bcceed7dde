/* SPDX-License-Identifier: Apache-2.0 */
/* test_verdict.c - the one decision on what a valid reading is (bridge/verdict.c):
 * every check, accepted and refused with its reason and class, the event-time
 * bounds at their edges, the key/topic/ID combinations, and markers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "err.h"
#include "reading.h"
#include "verdict.h"
#include "window.h"

#define T0 1685160000000LL /* 2023-05-27T04:00:00Z */
#define DAY_MS 86400000LL

#define TOPIC "turnstile/v1/S1/ag-1/readings"

/* A valid 18-field line of agent ag-1 (UTC), number seq, at time_ms. */
static const char *line_at(int64_t time_ms, uint64_t seq, uint64_t merged_from)
{
    static char buf[TS_READING_LINE_MAX];
    struct ts_reading r = {.ca = "A002", .unit = "R051", .scp = "02-00-00", .station = "59 ST",
                           .linename = "NQR456W", .division = "BMT", .desc = "REGULAR",
                           .entries = 3, .exits = 1, .agent_id = "ag-1", .seq = seq,
                           .time_ms = time_ms, .entries_cum = 10, .exits_cum = 5,
                           .merged_from = merged_from};
    assert_true(ts_reading_format(&r, buf, sizeof buf) > 0);
    return buf;
}

/* The relay's view: topic, payload, not retained, no key. */
static struct ts_verdict_msg relay_msg(const char *topic, const char *payload, int64_t now)
{
    return (struct ts_verdict_msg){.topic = topic, .topic_len = topic ? strlen(topic) : 0,
                                   .payload = payload, .len = payload ? strlen(payload) : 0,
                                   .now_ms = now};
}

static const struct ts_verdict_bounds BOUNDS = {.max_age_ms = 90 * DAY_MS, .max_ahead_ms = 120000};

static void printable(const char *s)
{
    assert_true(s[0] != '\0');
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            fail_msg("reason holds byte 0x%02x", (unsigned char)*s);
}

/* Judges m and checks the class and that the reason contains `reason`; the
 * checks in order (ts_verdict_judge_full, without the one-pass path) must
 * say the same. */
static void expect(const struct ts_verdict_msg *m, enum ts_verdict_class cls, const char *reason)
{
    struct ts_verdict v, full;
    enum ts_verdict_class got = ts_verdict_judge(m, &BOUNDS, &v);
    if (got != cls || v.cls != cls)
        fail_msg("class %d, expected %d (reason '%s')", got, cls, v.reason);
    assert_int_equal(ts_verdict_judge_full(m, &BOUNDS, &full), cls);
    assert_string_equal(full.reason, v.reason);
    assert_string_equal(full.station, v.station);
    assert_string_equal(full.agent, v.agent);
    assert_memory_equal(&full.r, &v.r, sizeof v.r);
    assert_int_equal(full.utc_offset_s, v.utc_offset_s);
    if (cls == TS_VERDICT_READING) {
        assert_string_equal(v.reason, "");
        return;
    }
    printable(v.reason);
    if (!strstr(v.reason, reason))
        fail_msg("reason '%s' does not say '%s'", v.reason, reason);
}

static void a_valid_reading_is_accepted(void **state)
{
    struct ts_verdict v;
    struct ts_verdict_msg m = relay_msg(TOPIC, line_at(T0, 42, 40), T0 + 1000);
    assert_int_equal(ts_verdict_judge(&m, &BOUNDS, &v), TS_VERDICT_READING);
    assert_string_equal(v.station, "S1");
    assert_string_equal(v.agent, "ag-1");
    assert_string_equal(v.r.agent_id, "ag-1");
    assert_int_equal(v.r.seq, 42);
    assert_int_equal(v.r.merged_from, 40);
    assert_int_equal(v.r.time_ms, T0);
    assert_int_equal(v.utc_offset_s, 0);
    /* the payload needs no NUL: the length bounds it */
    char buf[TS_READING_LINE_MAX + 8];
    size_t n = strlen(m.payload);
    memcpy(buf, m.payload, n);
    memcpy(buf + n, "garbage", 8);
    m.payload = buf;
    m.len = n;
    expect(&m, TS_VERDICT_READING, NULL);
    /* a station 4 h behind UTC: the offset comes from TIMESTAMP vs EPOCH_MS */
    m = relay_msg(TOPIC, "A002,R051,02-00-00,59 ST,NQR456W,BMT,05-27-23,00:00:00,REGULAR,1,0,"
                         "ag-1:7,2023-05-27 00:00:00,1685160000000,1,0,,7", T0);
    assert_int_equal(ts_verdict_judge(&m, &BOUNDS, &v), TS_VERDICT_READING);
    assert_int_equal(v.utc_offset_s, -4 * 3600);
}

/* Sequence numbers: up to 2^53 - 1, what an agent can use (TS_SEQ_MAX). */
static void sequence_numbers_up_to_2_53(void **state)
{
    struct ts_verdict_msg m = relay_msg(TOPIC, line_at(T0, TS_SEQ_MAX, TS_SEQ_MAX), T0);
    expect(&m, TS_VERDICT_READING, NULL);
    m = relay_msg(TOPIC, line_at(T0, TS_SEQ_MAX + 1, TS_SEQ_MAX + 1), T0);
    expect(&m, TS_VERDICT_MALFORMED, "above 2^53 - 1");
    m = relay_msg(TOPIC, line_at(T0, UINT64_MAX, 1), T0);
    expect(&m, TS_VERDICT_MALFORMED, "above 2^53 - 1");
}

static void the_topic_names_station_and_agent(void **state)
{
    const char *line = line_at(T0, 1, 1);
    static const char *const bad[] = {
        "turnstile/v1/S1/ag-1/ack",         "turnstile/v1/S1/ag-1/readings/x",
        "turnstile/v2/S1/ag-1/readings",    "turnstile/v1/S 1/ag-1/readings",
        "turnstile/v1//ag-1/readings",      "turnstile/v1/S1/ag,1/readings",
        "turnstile/v1/S1/readings",         "",
        "turnstile/v1/+/ag-1/readings",     "/turnstile/v1/S1/ag-1/readings",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ts_verdict v;
        struct ts_verdict_msg m = relay_msg(bad[i], line, T0);
        if (ts_verdict_judge(&m, &BOUNDS, &v) != TS_VERDICT_MALFORMED ||
            !strstr(v.reason, "topic is not turnstile/v1/<station_id>/<agent_id>/readings"))
            fail_msg("topic '%s' accepted or wrong reason '%s'", bad[i], v.reason);
        assert_string_equal(v.agent, "");
        assert_string_equal(v.station, "");
    }
    /* a header (no NUL at its end) with a NUL inside, or far too long */
    struct ts_verdict_msg m = relay_msg(TOPIC, line, T0);
    char nul[64];
    memcpy(nul, "turnstile/v1/S1/ag-1\0/readings", 30);
    m.topic = nul;
    m.topic_len = 30;
    expect(&m, TS_VERDICT_MALFORMED, "topic is not");
    char longer[400];
    snprintf(longer, sizeof longer, "turnstile/v1/%0200d/ag-1/readings", 1);
    m = relay_msg(longer, line, T0);
    expect(&m, TS_VERDICT_MALFORMED, "topic is not");
    /* an id of 63 characters fits, 64 does not */
    char id63[64], t63[128], t64[128];
    memset(id63, 's', 63);
    id63[63] = '\0';
    snprintf(t63, sizeof t63, "turnstile/v1/%s/ag-1/readings", id63);
    snprintf(t64, sizeof t64, "turnstile/v1/%ss/ag-1/readings", id63);
    m = relay_msg(t63, line, T0);
    expect(&m, TS_VERDICT_READING, NULL);
    m = relay_msg(t64, line, T0);
    expect(&m, TS_VERDICT_MALFORMED, "topic is not");
    /* the header is missing (a record produced around the relay) */
    m = relay_msg(NULL, line, T0);
    expect(&m, TS_VERDICT_MALFORMED, "no mqtt_topic header");
}

static void key_topic_and_id_name_one_agent(void **state)
{
    struct ts_verdict v;
    const char *a_line = line_at(T0, 5, 5); /* ID ag-1:5 */
    struct ts_verdict_msg m = relay_msg(TOPIC, a_line, T0);
    /* key = topic agent = ID agent */
    m.key = "ag-1";
    m.key_len = 4;
    expect(&m, TS_VERDICT_READING, NULL);
    /* key B, header B, ID A: the table's record produced around the relay */
    m = relay_msg("turnstile/v1/S1/ag-2/readings", a_line, T0);
    m.key = "ag-2";
    m.key_len = 4;
    assert_int_equal(ts_verdict_judge(&m, &BOUNDS, &v), TS_VERDICT_MALFORMED);
    assert_string_equal(v.reason, "ID names agent 'ag-1', the topic agent 'ag-2'");
    assert_string_equal(v.agent, "ag-2");
    /* key B, header A, ID A */
    m = relay_msg(TOPIC, a_line, T0);
    m.key = "ag-2";
    m.key_len = 4;
    assert_int_equal(ts_verdict_judge(&m, &BOUNDS, &v), TS_VERDICT_MALFORMED);
    assert_string_equal(v.reason, "Kafka key 'ag-2' is not the topic's agent 'ag-1'");
    /* key A, header B, ID A */
    m = relay_msg("turnstile/v1/S1/ag-2/readings", a_line, T0);
    m.key = "ag-1";
    m.key_len = 4;
    expect(&m, TS_VERDICT_MALFORMED, "Kafka key 'ag-1' is not the topic's agent 'ag-2'");
    /* a key that is a prefix, longer, empty (a record without a key), or binary */
    m = relay_msg(TOPIC, a_line, T0);
    m.key = "ag-";
    m.key_len = 3;
    expect(&m, TS_VERDICT_MALFORMED, "Kafka key 'ag-'");
    m.key = "ag-1x";
    m.key_len = 5;
    expect(&m, TS_VERDICT_MALFORMED, "Kafka key 'ag-1x'");
    m.key = "";
    m.key_len = 0;
    expect(&m, TS_VERDICT_MALFORMED, "Kafka key ''");
    m.key = "ag-1\0\n\xff";
    m.key_len = 7;
    expect(&m, TS_VERDICT_MALFORMED, "Kafka key 'ag-1\\x00\\x0a\\xff'");
    char big[300];
    memset(big, 'k', sizeof big);
    m.key = big;
    m.key_len = sizeof big;
    expect(&m, TS_VERDICT_MALFORMED, "kkk...' is not the topic's agent");
    /* without a key (the relay) the topic and the ID must still agree */
    m = relay_msg("turnstile/v1/S1/ag-2/readings", a_line, T0);
    expect(&m, TS_VERDICT_MALFORMED, "ID names agent 'ag-1', the topic agent 'ag-2'");
}

static void retained_is_refused(void **state)
{
    struct ts_verdict v;
    struct ts_verdict_msg m = relay_msg(TOPIC, line_at(T0, 50, 1), T0);
    m.retained = true;
    assert_int_equal(ts_verdict_judge(&m, &BOUNDS, &v), TS_VERDICT_MALFORMED);
    assert_non_null(strstr(v.reason, "retained"));
    assert_string_equal(v.agent, "ag-1");
}

static void payload_checks(void **state)
{
    char buf[1024];
    struct ts_verdict_msg m = relay_msg(TOPIC, "", T0);
    expect(&m, TS_VERDICT_MALFORMED, "empty payload");
    m.payload = NULL;
    m.len = 5; /* no payload whatever the length says */
    expect(&m, TS_VERDICT_MALFORMED, "empty payload");
    memset(buf, 'x', sizeof buf);
    m.payload = buf;
    m.len = TS_READING_LINE_MAX;
    expect(&m, TS_VERDICT_MALFORMED, "payload of 512 bytes, longer than a reading line can be (511)");
    m.len = TS_READING_LINE_MAX - 1;
    expect(&m, TS_VERDICT_MALFORMED, "not a reading: fewer than 13 fields");
    snprintf(buf, sizeof buf, "%s", line_at(T0, 3, 3));
    size_t n = strlen(buf);
    m.len = n;
    expect(&m, TS_VERDICT_READING, NULL);
    buf[4] = '\0';
    expect(&m, TS_VERDICT_MALFORMED, "payload holds a NUL byte");
    buf[4] = '\n';
    expect(&m, TS_VERDICT_MALFORMED, "payload holds a line break");
    buf[4] = '\r';
    expect(&m, TS_VERDICT_MALFORMED, "payload holds a line break");
    snprintf(buf, sizeof buf, "%s,,,", line_at(T0, 3, 3));
    m = relay_msg(TOPIC, buf, T0);
    expect(&m, TS_VERDICT_MALFORMED, "not a reading: too many fields");
    m = relay_msg(TOPIC, "A002,R051,02-00-00,59 ST,NQR", T0);
    expect(&m, TS_VERDICT_MALFORMED, "not a reading: fewer than 13 fields");
    m = relay_msg(TOPIC, "A002,R051,02-00-00,59 ST,NQR456W,BMT,05-27-23,04:00:00,REGULAR,9,5,"
                         "ag-1:103,2023-05-27 04:00:00", T0);
    expect(&m, TS_VERDICT_MALFORMED,
           "not a reading: 13 fields, the agent sends 18 (EPOCH_MS..MERGED_FROM missing)");
    m = relay_msg(TOPIC, "A002,R051,02-00-00,59 ST,NQR456W,BMT,13-27-23,04:00:00,REGULAR,9,5,"
                         "ag-1:103,2023-05-27 04:00:00,1685160000000,1,0,,103", T0);
    expect(&m, TS_VERDICT_MALFORMED, "not a reading: DATE is not MM-DD-YY");
    /* MERGED_FROM above SEQ: the parser's rule */
    m = relay_msg(TOPIC, "A002,R051,02-00-00,59 ST,NQR456W,BMT,05-27-23,04:00:00,REGULAR,9,5,"
                         "ag-1:103,2023-05-27 04:00:00,1685160000000,1,0,,104", T0);
    expect(&m, TS_VERDICT_MALFORMED, "MERGED_FROM");
}

/* The agent's own, complete reading, refused by a rule of the bridge. */
static void policy_refusals(void **state)
{
    struct ts_verdict v;
    /* EPOCH_MS = -1: the relay used to accept it, the aggregator skipped it */
    struct ts_verdict_msg m = relay_msg(
        TOPIC, "A002,R051,02-00-00,59 ST,NQR456W,BMT,12-31-69,23:59:59,REGULAR,1,0,ag-1:9,"
               "1969-12-31 23:59:59,-1,1,0,,8", T0);
    assert_int_equal(ts_verdict_judge(&m, NULL, &v), TS_VERDICT_POLICY);
    assert_non_null(strstr(v.reason, "EPOCH_MS -1 is not a time the lake can hold"));
    assert_string_equal(v.agent, "ag-1");
    assert_int_equal(v.r.seq, 9);
    assert_int_equal(v.r.merged_from, 8);
    /* after the last time the lake can write (9998-12-31); a 32-bit time_t
     * (armhf) cannot hold times past 2038 at all */
    m = relay_msg(TOPIC, "A002,R051,02-00-00,59 ST,NQR456W,BMT,06-01-99,00:00:00,REGULAR,1,0,"
                         "ag-1:9,9999-06-01 00:00:00,253383811200000,1,0,,9", T0);
    if (sizeof(time_t) >= 8) {
        assert_int_equal(ts_verdict_judge(&m, NULL, &v), TS_VERDICT_POLICY);
        assert_non_null(strstr(v.reason, "EPOCH_MS 253383811200000 is not a time the lake"));
    } else { /* refused all the same (by the UTC offset check: timegm overflows) */
        assert_int_not_equal(ts_verdict_judge(&m, NULL, &v), TS_VERDICT_READING);
    }
    /* TIMESTAMP 19 h from EPOCH_MS */
    m = relay_msg(TOPIC, "A002,R051,02-00-00,59 ST,NQR456W,BMT,05-27-23,23:00:00,REGULAR,1,0,"
                         "ag-1:9,2023-05-27 23:00:00,1685160000000,1,0,,9", T0);
    assert_int_equal(ts_verdict_judge(&m, NULL, &v), TS_VERDICT_POLICY);
    assert_non_null(strstr(v.reason, "more than 18 h apart"));
    /* 18 h is still a time zone */
    m = relay_msg(TOPIC, "A002,R051,02-00-00,59 ST,NQR456W,BMT,05-27-23,22:00:00,REGULAR,1,0,"
                         "ag-1:9,2023-05-27 22:00:00,1685160000000,1,0,,9", T0);
    assert_int_equal(ts_verdict_judge(&m, NULL, &v), TS_VERDICT_READING);
    assert_int_equal(v.utc_offset_s, 18 * 3600);
}

static void event_time_bounds_at_their_edges(void **state)
{
    const int64_t now = T0 + 365 * DAY_MS;
    struct ts_verdict v;
    struct ts_verdict_bounds b = {.max_age_ms = 90 * DAY_MS, .max_ahead_ms = 120000};
    struct {
        int64_t t;
        enum ts_verdict_class cls;
        const char *reason;
    } cases[] = {
        {now, TS_VERDICT_READING, NULL},
        {now - 90 * DAY_MS, TS_VERDICT_READING, NULL},
        {now - 90 * DAY_MS - 1000, TS_VERDICT_POLICY,
         "is 7776001 s before the bridge's clock, more than max_event_age_s 7776000"},
        {now - 90 * DAY_MS - 1, TS_VERDICT_POLICY, "is 7776000 s before"},
        {now + 120000, TS_VERDICT_READING, NULL},
        {now + 120001, TS_VERDICT_POLICY,
         "is 120 s ahead of the bridge's clock, more than max_event_ahead_s 120"},
        {now + 3 * 365 * DAY_MS, TS_VERDICT_POLICY, "ahead of the bridge's clock"},
        {now - 3 * 365 * DAY_MS, TS_VERDICT_POLICY, "before the bridge's clock"},
        {0, TS_VERDICT_POLICY, "reading time 1970-01-01T00:00:00Z is"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ts_verdict_msg m = relay_msg(TOPIC, line_at(cases[i].t, 1, 1), now);
        if (ts_verdict_judge(&m, &b, &v) != cases[i].cls ||
            (cases[i].reason && !strstr(v.reason, cases[i].reason)))
            fail_msg("case %zu: class %d reason '%s'", i, v.cls, v.reason);
    }
    /* 0: no bound, on either side; NULL bounds: none */
    struct ts_verdict_bounds none = {0, 0};
    struct ts_verdict_msg m = relay_msg(TOPIC, line_at(0, 1, 1), now);
    assert_int_equal(ts_verdict_judge(&m, &none, &v), TS_VERDICT_READING);
    assert_int_equal(ts_verdict_judge(&m, NULL, &v), TS_VERDICT_READING);
    if (sizeof(time_t) >= 8) { /* past 2038: see policy_refusals */
        m = relay_msg(TOPIC, line_at(TS_WINDOW_TIME_MAX, 1, 1), now);
        assert_int_equal(ts_verdict_judge(&m, &none, &v), TS_VERDICT_READING);
    }
    b.max_age_ms = 0;
    m = relay_msg(TOPIC, line_at(0, 1, 1), now);
    assert_int_equal(ts_verdict_judge(&m, &b, &v), TS_VERDICT_READING);
    b = (struct ts_verdict_bounds){.max_age_ms = DAY_MS, .max_ahead_ms = 0};
    if (sizeof(time_t) >= 8) {
        m = relay_msg(TOPIC, line_at(TS_WINDOW_TIME_MAX, 1, 1), now);
        assert_int_equal(ts_verdict_judge(&m, &b, &v), TS_VERDICT_READING);
    }
    /* any reference time, however absurd, gives an answer without overflow */
    int64_t nows[] = {INT64_MIN, -1, 0, INT64_MAX};
    for (size_t i = 0; i < 4; i++) {
        m = relay_msg(TOPIC, line_at(T0, 1, 1), nows[i]);
        assert_int_equal(ts_verdict_judge(&m, &BOUNDS, &v), TS_VERDICT_POLICY);
    }
    /* the bounds come after every identity check: a malformed message is
     * malformed whatever its time */
    m = relay_msg("turnstile/v1/S1/ag-2/readings", line_at(0, 1, 1), now);
    expect(&m, TS_VERDICT_MALFORMED, "ID names agent");
    m = relay_msg(TOPIC, line_at(0, 1, 1), now);
    m.retained = true;
    expect(&m, TS_VERDICT_MALFORMED, "retained");
}

static void markers(void **state)
{
    char agent[TS_ID_MAX], reason[TS_VERDICT_REASON_MAX];
    uint64_t from = 0, seq = 0;
#define MARK(topic, key, id, fr)                                                              \
    ts_verdict_marker(topic, topic ? strlen(topic) : 0, key, key ? strlen(key) : 0, id,      \
                      id ? strlen(id) : 0, fr, fr ? strlen(fr) : 0, agent, &from, &seq, reason)
    assert_true(MARK(TOPIC, "ag-1", "ag-1:57", "55"));
    assert_string_equal(agent, "ag-1");
    assert_int_equal(from, 55);
    assert_int_equal(seq, 57);
    assert_string_equal(reason, "");
    assert_true(MARK(TOPIC, "ag-1", "ag-1:57", "57"));
    static const struct {
        const char *topic, *key, *id, *from, *reason;
    } bad[] = {
        {NULL, "ag-1", "ag-1:57", "57", "no mqtt_topic header"},
        {"turnstile/v1/S1/ag-1/ack", "ag-1", "ag-1:57", "57", "mqtt_topic is not"},
        {"turnstile/v1/S1/ag-2/readings", "ag-1", "ag-1:57", "57", "Kafka key 'ag-1' is not"},
        {TOPIC, "ag-2", "ag-2:57", "57", "Kafka key 'ag-2' is not the topic's agent 'ag-1'"},
        {TOPIC, NULL, "ag-1:57", "57", "Kafka key ''"},
        {TOPIC, "ag-1", "ag-2:57", "57", "refused_id 'ag-2:57' is not 'ag-1:<seq>'"},
        {TOPIC, "ag-1", NULL, "57", "refused_id '' is not"},
        {TOPIC, "ag-1", "ag-1:0", "57", "refused_id 'ag-1:0'"},
        {TOPIC, "ag-1", "ag-1:057", "57", "refused_id"},
        {TOPIC, "ag-1", "ag-1:5x", "5", "refused_id"},
        {TOPIC, "ag-1", "ag-1:", "57", "refused_id"},
        {TOPIC, "ag-1", "ag-1:99999999999999999999", "1", "refused_id"},
        {TOPIC, "ag-1", "ag-1:57", "58", "refused_from '58' is not a sequence number up to 57"},
        {TOPIC, "ag-1", "ag-1:57", "0", "refused_from '0'"},
        {TOPIC, "ag-1", "ag-1:57", "", "refused_from ''"},
        {TOPIC, "ag-1", "ag-1:57", NULL, "refused_from ''"},
        {TOPIC, "ag-1", "ag-1:57", "-1", "refused_from '-1'"},
        {TOPIC, "ag-1", "ag-1:9007199254740992", "1", "above 2^53 - 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (MARK(bad[i].topic, bad[i].key, bad[i].id, bad[i].from) ||
            !strstr(reason, bad[i].reason))
            fail_msg("marker %zu accepted or reason '%s'", i, reason);
        printable(reason);
    }
#undef MARK
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_valid_reading_is_accepted),
        cmocka_unit_test(sequence_numbers_up_to_2_53),
        cmocka_unit_test(the_topic_names_station_and_agent),
        cmocka_unit_test(key_topic_and_id_name_one_agent),
        cmocka_unit_test(retained_is_refused),
        cmocka_unit_test(payload_checks),
        cmocka_unit_test(policy_refusals),
        cmocka_unit_test(event_time_bounds_at_their_edges),
        cmocka_unit_test(markers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
