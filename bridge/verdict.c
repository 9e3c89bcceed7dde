/* SPDX-License-Identifier: Apache-2.0 */
/* verdict.c - is this message a valid reading? (see verdict.h) */
#include "verdict.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "topics.h"
#include "window.h"

#define TOPIC_MAX (2 * TS_ID_MAX + 32) /* turnstile/v1/<station>/<agent>/readings fits */
#define SHOWN_MAX 48                   /* bytes of a foreign string quoted in a reason */

static void say(struct ts_verdict *v, enum ts_verdict_class cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(struct ts_verdict *v, enum ts_verdict_class cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
    v->cls = cls;
}

/* A reason sentence (cut to TS_VERDICT_REASON_MAX - 1 bytes). */
static void put(char *reason, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, TS_VERDICT_REASON_MAX, fmt, ap);
    va_end(ap);
}

/* s (len bytes, any) as printable ASCII, non-printable bytes as \xNN, at
 * most SHOWN_MAX bytes of it then "...". */
static void shown(const void *s, size_t len, char *out, size_t size)
{
    const unsigned char *p = s;
    size_t n = 0;
    for (size_t i = 0; i < len && i < SHOWN_MAX && n + 5 < size; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            out[n++] = (char)p[i];
        else
            n += (size_t)snprintf(out + n, size - n, "\\x%02x", p[i]);
    }
    if (len > SHOWN_MAX && n + 4 < size) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* The topic (len bytes) as a C string in buf; false if it holds a NUL or
 * does not fit (then it is not a readings topic anyway). */
static bool topic_copy(const char *topic, size_t len, char buf[TOPIC_MAX])
{
    if (len >= TOPIC_MAX || memchr(topic, '\0', len))
        return false;
    memcpy(buf, topic, len);
    buf[len] = '\0';
    return true;
}

static void utc_text(int64_t ms, char *out, size_t size)
{
    struct tm tm;
    time_t secs = (time_t)(ms / 1000 - (ms % 1000 < 0));
    if (!gmtime_r(&secs, &tm) || !strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, size, "%" PRId64 " ms", ms);
}

static bool id_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* The readings topic's ids into station and agent (zeroed by the caller)
 * and the agent's length: what topic_copy and ts_topic_agent_parse accept,
 * for ids of ASCII letters, digits, '.', '_' and '-'. */
static bool topic_fast(const char *topic, size_t len, char *station, char *agent,
                       size_t *agent_len)
{
    static const char prefix[] = TS_TOPIC_PREFIX;
    char *ids[2] = {station, agent};
    size_t n = 0;

    if (len >= TOPIC_MAX || len < sizeof prefix - 1 || memcmp(topic, prefix, sizeof prefix - 1))
        return false;
    const char *p = topic + sizeof prefix - 1, *end = topic + len;
    for (int i = 0; i < 2; i++, p++) {
        for (n = 0; p < end && *p != '/'; p++) {
            if (!id_byte((unsigned char)*p) || n + 1 >= TS_ID_MAX)
                return false;
            ids[i][n++] = *p;
        }
        if (n == 0 || p == end)
            return false;
    }
    *agent_len = n;
    return end - p == 8 && memcmp(p, "readings", 8) == 0;
}

/* The verdict of a reading that every check accepts, in one pass over the
 * topic and the payload (ts_reading_parse_line): true and *v as
 * ts_verdict_judge gives it. false: anything else, or a reading the fast
 * path leaves to the full one (non-ASCII names, the 13-field form, ...);
 * ts_verdict_judge then judges it from the start and says why. */
static bool judge_fast(const struct ts_verdict_msg *m, const struct ts_verdict_bounds *b,
                       struct ts_verdict *v)
{
    size_t agent_len = 0;
    int64_t local = 0;

    memset(v, 0, sizeof *v);
    if (!m->topic || m->retained || !m->payload || m->len == 0 || m->len >= TS_READING_LINE_MAX ||
        !topic_fast(m->topic, m->topic_len, v->station, v->agent, &agent_len))
        return false;
    if (m->key && (m->key_len != agent_len || memcmp(m->key, v->agent, agent_len) != 0))
        return false;
    /* no NUL and no line break on success: no byte below 0x20 parses */
    if (ts_reading_parse_line(m->payload, m->len, &v->r, &local) != TS_OK ||
        strcmp(v->r.agent_id, v->agent) != 0 || v->r.seq > TS_SEQ_MAX)
        return false;
    int64_t t = v->r.time_ms, off = local - (t / 1000 - (t % 1000 < 0)), now = m->now_ms;
    if (off < -18 * 3600 || off > 18 * 3600 || t < 0 || t > TS_WINDOW_TIME_MAX)
        return false;
    if (b && b->max_age_ms > 0 && now > t && (uint64_t)now - (uint64_t)t > (uint64_t)b->max_age_ms)
        return false;
    if (b && b->max_ahead_ms > 0 && t > now &&
        (uint64_t)t - (uint64_t)now > (uint64_t)b->max_ahead_ms)
        return false;
    v->utc_offset_s = (int32_t)off;
    v->cls = TS_VERDICT_READING;
    return true;
}

enum ts_verdict_class ts_verdict_judge(const struct ts_verdict_msg *m,
                                       const struct ts_verdict_bounds *b, struct ts_verdict *v)
{
    /* most records are readings that pass: judged in one pass */
    if (judge_fast(m, b, v))
        return v->cls;
    return ts_verdict_judge_full(m, b, v);
}

enum ts_verdict_class ts_verdict_judge_full(const struct ts_verdict_msg *m,
                                            const struct ts_verdict_bounds *b,
                                            struct ts_verdict *v)
{
    char topic[TOPIC_MAX], line[TS_READING_LINE_MAX], text[4 * SHOWN_MAX + 8];
    const char *why = NULL;

    memset(v, 0, sizeof *v);
    /* who: the topic, and the key that must name the same agent */
    if (!m->topic) {
        say(v, TS_VERDICT_MALFORMED, "no mqtt_topic header");
        return v->cls;
    }
    if (!topic_copy(m->topic, m->topic_len, topic) ||
        !ts_topic_agent_parse(topic, TS_TOPIC_READINGS, v->station, v->agent)) {
        v->station[0] = v->agent[0] = '\0';
        say(v, TS_VERDICT_MALFORMED,
            "topic is not turnstile/v1/<station_id>/<agent_id>/readings with valid ids");
        return v->cls;
    }
    if (m->key && (m->key_len != strlen(v->agent) || memcmp(m->key, v->agent, m->key_len) != 0)) {
        shown(m->key, m->key_len, text, sizeof text);
        say(v, TS_VERDICT_MALFORMED, "Kafka key '%s' is not the topic's agent '%s'", text,
            v->agent);
        return v->cls;
    }
    /* (the partition check goes here: the record's partition is the one its
     * key maps to) */
    if (m->retained) {
        say(v, TS_VERDICT_MALFORMED, "a retained message is not a reading (the broker would "
            "deliver it again on every subscription)");
        return v->cls;
    }
    /* what: one complete reading of that agent */
    size_t len = m->payload ? m->len : 0;
    if (len == 0) {
        say(v, TS_VERDICT_MALFORMED, "empty payload");
        return v->cls;
    }
    if (len >= TS_READING_LINE_MAX) {
        say(v, TS_VERDICT_MALFORMED, "payload of %zu bytes, longer than a reading line can be (%d)",
            len, TS_READING_LINE_MAX - 1);
        return v->cls;
    }
    if (memchr(m->payload, '\0', len)) {
        say(v, TS_VERDICT_MALFORMED, "payload holds a NUL byte");
        return v->cls;
    }
    if (memchr(m->payload, '\n', len) || memchr(m->payload, '\r', len)) {
        say(v, TS_VERDICT_MALFORMED, "payload holds a line break");
        return v->cls;
    }
    memcpy(line, m->payload, len);
    line[len] = '\0';
    if (ts_reading_parse(line, &v->r, &why) != TS_OK) {
        say(v, TS_VERDICT_MALFORMED, "not a reading: %s", why ? why : "unknown");
        return v->cls;
    }
    size_t commas = 0;
    for (size_t i = 0; i < len; i++)
        commas += line[i] == ',';
    if (commas + 1 != TS_READING_FIELDS) {
        say(v, TS_VERDICT_MALFORMED, "not a reading: %zu fields, the agent sends %d "
            "(EPOCH_MS..MERGED_FROM missing)", commas + 1, TS_READING_FIELDS);
        return v->cls;
    }
    if (strcmp(v->r.agent_id, v->agent) != 0) {
        say(v, TS_VERDICT_MALFORMED, "ID names agent '%s', the topic agent '%s'", v->r.agent_id,
            v->agent);
        return v->cls;
    }
    if (v->r.seq > TS_SEQ_MAX) {
        say(v, TS_VERDICT_MALFORMED, "ID's sequence number %" PRIu64 " is above 2^53 - 1, the "
            "highest an agent uses", v->r.seq);
        return v->cls;
    }
    /* the agent's own reading: what the bridge's rules refuse is POLICY */
    int64_t t = v->r.time_ms;
    if (ts_reading_utc_offset(line, &v->r, &v->utc_offset_s) != TS_OK) {
        say(v, TS_VERDICT_POLICY, "TIMESTAMP and EPOCH_MS are more than 18 h apart (no station "
            "time zone is)");
        return v->cls;
    }
    if (t < 0 || t > TS_WINDOW_TIME_MAX) {
        say(v, TS_VERDICT_POLICY, "EPOCH_MS %" PRId64 " is not a time the lake can hold "
            "(1970-01-01 to 9998-12-31 UTC)", t);
        return v->cls;
    }
    /* differences as unsigned: exact for every now_ms (t is 0..TS_WINDOW_TIME_MAX) */
    int64_t now = m->now_ms;
    if (b && b->max_age_ms > 0 && now > t && (uint64_t)now - (uint64_t)t > (uint64_t)b->max_age_ms) {
        utc_text(t, text, sizeof text);
        say(v, TS_VERDICT_POLICY, "reading time %s is %" PRIu64 " s before the bridge's clock, "
            "more than max_event_age_s %" PRId64, text, ((uint64_t)now - (uint64_t)t) / 1000,
            b->max_age_ms / 1000);
        return v->cls;
    }
    if (b && b->max_ahead_ms > 0 && t > now &&
        (uint64_t)t - (uint64_t)now > (uint64_t)b->max_ahead_ms) {
        utc_text(t, text, sizeof text);
        say(v, TS_VERDICT_POLICY, "reading time %s is %" PRIu64 " s ahead of the bridge's clock, "
            "more than max_event_ahead_s %" PRId64, text, ((uint64_t)t - (uint64_t)now) / 1000,
            b->max_ahead_ms / 1000);
        return v->cls;
    }
    v->cls = TS_VERDICT_READING;
    return v->cls;
}

/* A decimal sequence number 1.. of exactly len digits. */
static bool seq_parse(const char *s, size_t len, uint64_t *out)
{
    uint64_t x = 0;
    if (len == 0 || len > 20 || s[0] == '0')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *out = x;
    return true;
}

bool ts_verdict_marker(const char *topic, size_t topic_len, const void *key, size_t key_len,
                       const char *id, size_t id_len, const char *from, size_t from_len,
                       char agent[TS_ID_MAX], uint64_t *merged_from, uint64_t *seq,
                       char reason[TS_VERDICT_REASON_MAX])
{
    char t[TOPIC_MAX], text[4 * SHOWN_MAX + 8];
    const char *colon = id ? memchr(id, ':', id_len) : NULL;

    reason[0] = '\0';
    if (!topic || !topic_copy(topic, topic_len, t) ||
        !ts_topic_agent_parse(t, TS_TOPIC_READINGS, NULL, agent)) {
        put(reason, "marker: %s",
                 topic ? "mqtt_topic is not turnstile/v1/<station_id>/<agent_id>/readings "
                         "with valid ids" : "no mqtt_topic header");
        return false;
    }
    if (!key || key_len != strlen(agent) || memcmp(key, agent, key_len) != 0) {
        shown(key ? key : "", key ? key_len : 0, text, sizeof text);
        put(reason, "marker: Kafka key '%s' is not the topic's "
                 "agent '%s'", text, agent);
        return false;
    }
    if (!colon || (size_t)(colon - id) != strlen(agent) || memcmp(id, agent, strlen(agent)) != 0 ||
        !seq_parse(colon + 1, id_len - (size_t)(colon - id) - 1, seq)) {
        shown(id ? id : "", id ? id_len : 0, text, sizeof text);
        put(reason, "marker: %s '%s' is not '%s:<seq>'",
                 TS_MARKER_HEADER_ID, text, agent);
        return false;
    }
    if (*seq > TS_SEQ_MAX) {
        put(reason, "marker: %s's sequence number is above 2^53 - 1", TS_MARKER_HEADER_ID);
        return false;
    }
    if (!from || !seq_parse(from, from_len, merged_from) || *merged_from > *seq) {
        shown(from ? from : "", from ? from_len : 0, text, sizeof text);
        put(reason, "marker: %s '%s' is not a sequence number "
                 "up to %" PRIu64, TS_MARKER_HEADER_FROM, text, *seq);
        return false;
    }
    return true;
}
