/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_verdict.c - libFuzzer target for the bridge's verdict (bridge/verdict.c).
 *
 * The input is one message as the relay or the aggregator meets it, framed:
 *   byte 0   flags: 1 retained, 2 a key is given, 4 no topic (NULL),
 *            8 event-time bounds (90 days back, 120 s ahead; else none),
 *            16 now_ms from the input (else 2026-06-01), 32 a marker instead
 *   byte 1   topic length, byte 2 key length
 *   [8 bytes now_ms, little endian, with flag 16]
 *   topic bytes, key bytes, then the payload (the rest; for a marker:
 *   refused_id, a space, refused_from).
 * Invariants (abort() on violation, which libFuzzer reports as a crash):
 *   accepted: the reason is empty; the reading formats and parses back to the
 *     same struct; the topic is turnstile/v1/<station>/<agent>/readings with
 *     the verdict's ids, the ID's agent is that agent, and so is the key when
 *     given; not retained; the time is within 0..TS_WINDOW_TIME_MAX and the
 *     bounds around now_ms; the UTC offset within 18 h;
 *   POLICY: the same identities hold (the agent's own reading);
 *   refused: a non-empty reason of printable ASCII;
 *   a marker accepted: key and ID name the topic's agent, 1 <= from <= seq;
 *   ts_verdict_judge (with its one-pass path) and ts_verdict_judge_full (the
 *     checks in order) give the same class, reason, ids, reading and offset.
 * Built and run by tests/fuzz/run.sh verdict. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "reading.h"
#include "verdict.h"
#include "window.h"

#define NOW_DEFAULT 1780272000000LL /* 2026-06-01T00:00:00Z */

static void fail(const char *what, const struct ts_verdict *v)
{
    fprintf(stderr, "fuzz_verdict: %s (class %d, reason '%s', agent '%s')\n", what,
            v ? (int)v->cls : -1, v ? v->reason : "", v ? v->agent : "");
    abort();
}

static void reason_ok(const char *reason, const struct ts_verdict *v)
{
    if (!reason[0])
        fail("a refusal without a reason", v);
    for (const char *p = reason; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            fail("a reason with a byte that is not printable", v);
}

/* The identities of the agent's own reading. */
static void identities(const struct ts_verdict_msg *m, const struct ts_verdict *v)
{
    char want[256];
    if (m->retained)
        fail("a retained message passed", v);
    if (strcmp(v->r.agent_id, v->agent) != 0)
        fail("the ID's agent is not the topic's", v);
    int n = snprintf(want, sizeof want, "turnstile/v1/%s/%s/readings", v->station, v->agent);
    if (!m->topic || (size_t)n != m->topic_len || memcmp(want, m->topic, m->topic_len) != 0)
        fail("the topic is not the verdict's station and agent", v);
    if (m->key && (m->key_len != strlen(v->agent) || memcmp(m->key, v->agent, m->key_len) != 0))
        fail("the key is not the agent", v);
}

static void accepted(const struct ts_verdict_msg *m, const struct ts_verdict_bounds *b,
                     const struct ts_verdict *v)
{
    char out[TS_READING_LINE_MAX];
    struct ts_reading back;
    const char *why = NULL;

    if (v->reason[0])
        fail("an accepted reading with a reason", v);
    identities(m, v);
    int n = ts_reading_format(&v->r, out, sizeof out);
    if (n < 0)
        fail("an accepted reading does not format", v);
    if (ts_reading_parse(out, &back, &why) != TS_OK || memcmp(&back, &v->r, sizeof back) != 0)
        fail("an accepted reading does not parse back the same", v);
    int64_t t = v->r.time_ms;
    if (t < 0 || t > TS_WINDOW_TIME_MAX)
        fail("an accepted time outside the lake's range", v);
    /* in __int128 to be exact for any now_ms */
    __int128 now = m->now_ms;
    if (b && b->max_age_ms && (__int128)t < now - b->max_age_ms)
        fail("an accepted reading older than max_age", v);
    if (b && b->max_ahead_ms && (__int128)t > now + b->max_ahead_ms)
        fail("an accepted reading further ahead than max_ahead", v);
    if (v->utc_offset_s < -18 * 3600 || v->utc_offset_s > 18 * 3600)
        fail("an accepted UTC offset beyond 18 h", v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t flags = data[0];
    size_t topic_len = data[1], key_len = data[2], pos = 3;
    int64_t now = NOW_DEFAULT;
    if (flags & 16) {
        if (size < pos + 8)
            return 0;
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--)
            u = u << 8 | data[pos + (size_t)i];
        memcpy(&now, &u, sizeof now);
        pos += 8;
    }
    if (size < pos + topic_len + key_len)
        return 0;
    /* each piece in its own allocation, so that ASan sees any overread */
    char *topic = malloc(topic_len + 1), *key = malloc(key_len + 1);
    size_t len = size - pos - topic_len - key_len;
    char *payload = malloc(len + 1);
    if (!topic || !key || !payload)
        abort();
    memcpy(topic, data + pos, topic_len);
    memcpy(key, data + pos + topic_len, key_len);
    memcpy(payload, data + pos + topic_len + key_len, len);

    if (flags & 32) {
        char agent[TS_ID_MAX], reason[TS_VERDICT_REASON_MAX];
        uint64_t from = 0, seq = 0;
        char *space = memchr(payload, ' ', len);
        size_t id_len = space ? (size_t)(space - payload) : len;
        const char *fr = space ? space + 1 : NULL;
        size_t fr_len = space ? len - id_len - 1 : 0;
        if (ts_verdict_marker(flags & 4 ? NULL : topic, topic_len, flags & 2 ? key : NULL,
                              key_len, payload, id_len, fr, fr_len, agent, &from, &seq, reason)) {
            if (reason[0] || !(flags & 2) || key_len != strlen(agent) ||
                memcmp(key, agent, key_len) != 0 || id_len <= strlen(agent) ||
                memcmp(payload, agent, strlen(agent)) != 0 || from < 1 || from > seq)
                fail("a marker accepted against its rules", NULL);
        } else {
            reason_ok(reason, NULL);
        }
    } else {
        struct ts_verdict_bounds bounds = {.max_age_ms = 90 * 86400000LL, .max_ahead_ms = 120000};
        struct ts_verdict_msg m = {
            .topic = flags & 4 ? NULL : topic, .topic_len = topic_len,
            .payload = payload, .len = len, .retained = flags & 1,
            .key = flags & 2 ? key : NULL, .key_len = key_len, .now_ms = now};
        const struct ts_verdict_bounds *b = flags & 8 ? &bounds : NULL;
        struct ts_verdict v;
        enum ts_verdict_class cls = ts_verdict_judge(&m, b, &v);
        if (cls != v.cls)
            fail("the returned class is not the verdict's", &v);
        struct ts_verdict full;
        if (ts_verdict_judge_full(&m, b, &full) != cls || strcmp(full.reason, v.reason) != 0 ||
            strcmp(full.station, v.station) != 0 || strcmp(full.agent, v.agent) != 0 ||
            memcmp(&full.r, &v.r, sizeof full.r) != 0 || full.utc_offset_s != v.utc_offset_s)
            fail("the one-pass verdict is not the checks' in order", &v);
        if (cls == TS_VERDICT_READING) {
            accepted(&m, b, &v);
        } else if (cls == TS_VERDICT_POLICY || cls == TS_VERDICT_MALFORMED) {
            reason_ok(v.reason, &v);
            if (cls == TS_VERDICT_POLICY)
                identities(&m, &v);
        } else {
            fail("an unknown class", &v);
        }
    }
    free(topic);
    free(key);
    free(payload);
    return 0;
}
