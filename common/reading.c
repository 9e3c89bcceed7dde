/* SPDX-License-Identifier: Apache-2.0 */
#include "reading.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "civil.h"
#include "decimal.h"
#include "err.h"
#include "flags.h"

/* Length of the UTF-8 sequence at s (1..4), or 0 if it is not valid UTF-8
 * (overlong forms, surrogates and code points above U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s, uint32_t *cp)
{
    size_t n;
    uint32_t c = s[0], min;

    if (c < 0x80)
        return *cp = c, 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, c &= 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, c &= 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, c &= 0x07, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0; /* also stops at the terminating NUL */
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

size_t ts_field_char(const char *s, const char **why)
{
    static const char *dummy;
    uint32_t c = 0;
    size_t n = utf8_len((const unsigned char *)s, &c);

    if (!why)
        why = &dummy;
    *why = NULL;
    if (n == 0)
        *why = "is not valid UTF-8";
    else if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
        *why = c == '\n' || c == '\r' ? "holds a line break" : "holds a control character";
    else if (c == ',')
        *why = "holds a comma";
    else if (c == '"')
        *why = "holds a double quote";
    return n ? n : 1;
}

const char *ts_field_why(const char *s)
{
    const char *why = NULL;

    if (!s || !*s)
        return "is empty";
    while (*s && !why) {
        /* printable ASCII but ',' and '"': what ts_field_char accepts in one byte */
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7f && c != ',' && c != '"')
            s++;
        else
            s += ts_field_char(s, &why);
    }
    return why;
}

int ts_field_ok(const char *s)
{
    return ts_field_why(s) == NULL;
}

int ts_id_ok(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return 0;
    return 1;
}

int ts_reading_format(const struct ts_reading *r, char *buf, size_t size)
{
    const char *fields[] = {r->ca, r->unit, r->scp, r->station, r->linename, r->division,
                            r->desc, r->agent_id};
    char date[48], tod[16], stamp[32], flags[128];
    struct tm tm;
    time_t secs = (time_t)(r->time_ms / 1000 - (r->time_ms % 1000 < 0));

    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!ts_field_ok(fields[i]))
            return -TS_EINVAL;
    if (!ts_id_ok(r->agent_id))
        return -TS_EINVAL;
    localtime_r(&secs, &tm);
    /* MM-DD-YY is the reference schema's DATE; TIMESTAMP carries the full year */
    snprintf(date, sizeof date, "%02d-%02d-%02d", tm.tm_mon + 1, tm.tm_mday, tm.tm_year % 100);
    strftime(tod, sizeof tod, "%H:%M:%S", &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    ts_flags_format(r->flags, flags, sizeof flags);

    int n = snprintf(buf, size,
                     "%s,%s,%s,%s,%s,%s,%s,%s,%s,%llu,%llu,%s:%llu,%s,%lld,%llu,%llu,%s,%llu",
                     r->ca, r->unit, r->scp, r->station, r->linename, r->division, date, tod,
                     r->desc, (unsigned long long)r->entries, (unsigned long long)r->exits,
                     r->agent_id, (unsigned long long)r->seq, stamp, (long long)r->time_ms,
                     (unsigned long long)r->entries_cum, (unsigned long long)r->exits_cum, flags,
                     (unsigned long long)(r->merged_from ? r->merged_from : r->seq));
    if (n < 0 || (size_t)n >= size)
        return -TS_EFULL;
    return n;
}

/* --- parsing ------------------------------------------------------------ */

static int copy_field(char *dst, size_t size, const char *src, size_t len)
{
    if (len == 0 || len >= size)
        return 0;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return ts_field_ok(dst);
}

static int parse_i64(const char *s, size_t len, int64_t *out)
{
    uint64_t v;
    int neg = len > 0 && s[0] == '-';
    if (!ts_decimal_u64(s + neg, len - (size_t)neg, &v) || v > (uint64_t)INT64_MAX)
        return 0;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 1;
}

/* Checks s (len chars) against a pattern where 'D' is a digit and any other
 * character must match itself. */
static int matches(const char *s, size_t len, const char *pattern)
{
    for (size_t i = 0; i < len; i++) {
        if (!pattern[i] || (pattern[i] == 'D' ? (unsigned)((unsigned char)s[i] - '0') > 9
                                              : s[i] != pattern[i]))
            return 0;
    }
    return pattern[len] == '\0'; /* len == strlen(pattern) */
}

static int two(const char *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }

static int date_ok(int month, int day) { return month >= 1 && month <= 12 && day >= 1 && day <= 31; }
static int time_ok(const char *s) { return two(s) <= 23 && two(s + 3) <= 59 && two(s + 6) <= 60; }

/* The fields of a checked "YYYY-MM-DD HH:MM:SS". */
static struct tm timestamp_tm(const char *ts)
{
    struct tm tm = {0};
    tm.tm_year = atoi(ts) - 1900;
    tm.tm_mon = two(ts + 5) - 1;
    tm.tm_mday = two(ts + 8);
    tm.tm_hour = two(ts + 11);
    tm.tm_min = two(ts + 14);
    tm.tm_sec = two(ts + 17);
    return tm;
}

/* timegm(tm) for tm_mon 0..11, by arithmetic (the proleptic Gregorian
 * calendar, as glibc's; days, hours, minutes and seconds out of their range
 * carry over the same way): timegm costs a hundred times more. */
static int64_t utc_seconds(const struct tm *tm)
{
    int64_t days = ts_days_from_civil((int64_t)tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday);
    return days * 86400 + (int64_t)tm->tm_hour * 3600 + (int64_t)tm->tm_min * 60 + tm->tm_sec;
}

/* True if time_ms formats as a local date with a four-digit year. */
static int year_writable(int64_t time_ms)
{
    struct tm tm;
    if (time_ms < -2208988800000LL || time_ms > 253402300799000LL) /* 1900..9999 UTC */
        return 0;
    /* a day inside those bounds: no time zone is a day away from UTC */
    if (time_ms >= -2208988800000LL + 86400000 && time_ms <= 253402300799000LL - 86400000)
        return 1;
    time_t secs = (time_t)(time_ms / 1000 - (time_ms % 1000 < 0));
    if (!localtime_r(&secs, &tm))
        return 0;
    return tm.tm_year >= 0 && tm.tm_year <= 9999 - 1900;
}

int ts_reading_parse(const char *line, struct ts_reading *r, const char **why)
{
    const char *start[TS_READING_FIELDS + 1];
    size_t len[TS_READING_FIELDS + 1];
    int n = 0;
    const char *p = line;
    static const char *dummy;

    if (!why)
        why = &dummy;
    memset(r, 0, sizeof *r);
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        if (n == TS_READING_FIELDS) {
            *why = "too many fields";
            return TS_EPARSE;
        }
        start[n] = p;
        len[n++] = l;
        if (!comma)
            break;
        p = comma + 1;
    }
    if (n < 13) {
        *why = "fewer than 13 fields";
        return TS_EPARSE;
    }
    if (n != 13 && n != TS_READING_FIELDS) {
        *why = "extension fields incomplete";
        return TS_EPARSE;
    }
    if (!copy_field(r->ca, sizeof r->ca, start[0], len[0]) ||
        !copy_field(r->unit, sizeof r->unit, start[1], len[1]) ||
        !copy_field(r->scp, sizeof r->scp, start[2], len[2]) ||
        !copy_field(r->station, sizeof r->station, start[3], len[3]) ||
        !copy_field(r->linename, sizeof r->linename, start[4], len[4]) ||
        !copy_field(r->division, sizeof r->division, start[5], len[5])) {
        *why = "bad identifier field (CA..DIVISION)";
        return TS_EPARSE;
    }
    const char *d = start[6], *t = start[7], *ts = start[12];
    if (!matches(d, len[6], "DD-DD-DD") || !date_ok(two(d), two(d + 3))) {
        *why = "DATE is not MM-DD-YY";
        return TS_EPARSE;
    }
    if (!matches(t, len[7], "DD:DD:DD") || !time_ok(t)) {
        *why = "TIME is not HH:MM:SS";
        return TS_EPARSE;
    }
    if (!copy_field(r->desc, sizeof r->desc, start[8], len[8]) ||
        (strcmp(r->desc, "REGULAR") != 0 && strcmp(r->desc, "RECOVR AUD") != 0)) {
        *why = "DESC is not REGULAR or RECOVR AUD";
        return TS_EPARSE;
    }
    if (!ts_decimal_u64(start[9], len[9], &r->entries) ||
        !ts_decimal_u64(start[10], len[10], &r->exits) || r->entries > INT32_MAX || r->exits > INT32_MAX) {
        *why = "ENTRIES/EXITS not a number in range";
        return TS_EPARSE;
    }
    const char *colon = memchr(start[11], ':', len[11]);
    size_t idlen = colon ? (size_t)(colon - start[11]) : 0;
    if (!colon || !copy_field(r->agent_id, sizeof r->agent_id, start[11], idlen) ||
        !ts_id_ok(r->agent_id) ||
        !ts_decimal_u64(colon + 1, len[11] - idlen - 1, &r->seq) || r->seq == 0) {
        *why = "ID is not AGENT:SEQ";
        return TS_EPARSE;
    }
    if (!matches(ts, len[12], "DDDD-DD-DD DD:DD:DD") || !date_ok(two(ts + 5), two(ts + 8)) ||
        !time_ok(ts + 11) || two(ts + 2) != two(d + 6) || two(ts + 5) != two(d) ||
        two(ts + 8) != two(d + 3) || memcmp(ts + 11, t, 8) != 0) {
        *why = "TIMESTAMP is not YYYY-MM-DD HH:MM:SS matching DATE and TIME";
        return TS_EPARSE;
    }
    if (atoi(ts) < 1900) {
        *why = "TIMESTAMP year before 1900";
        return TS_EPARSE;
    }
    if (n == 13) {
        r->merged_from = r->seq;
        /* reference form: recover the time from TIMESTAMP in the local zone */
        struct tm tm = timestamp_tm(ts);
        tm.tm_isdst = -1;
        r->time_ms = (int64_t)mktime(&tm) * 1000;
        return TS_OK;
    }
    if (!parse_i64(start[13], len[13], &r->time_ms) ||
        !ts_decimal_u64(start[14], len[14], &r->entries_cum) ||
        !ts_decimal_u64(start[15], len[15], &r->exits_cum)) {
        *why = "extension fields EPOCH_MS/ENTRIES_CUM/EXITS_CUM not numbers";
        return TS_EPARSE;
    }
    if (!year_writable(r->time_ms)) {
        *why = "EPOCH_MS is not a time between the years 1900 and 9999";
        return TS_EPARSE;
    }
    char flags[128];
    if (len[16] >= sizeof flags) {
        *why = "FLAGS too long";
        return TS_EPARSE;
    }
    memcpy(flags, start[16], len[16]);
    flags[len[16]] = '\0';
    if (ts_flags_parse(flags, &r->flags) != TS_OK) {
        *why = "unknown flag in FLAGS";
        return TS_EPARSE;
    }
    if (!ts_decimal_u64(start[17], len[17], &r->merged_from) || r->merged_from == 0 ||
        r->merged_from > r->seq) {
        *why = "MERGED_FROM is not a sequence number up to SEQ";
        return TS_EPARSE;
    }
    return TS_OK;
}

int ts_reading_utc_offset(const char *line, const struct ts_reading *r, int32_t *offset_s)
{
    const char *ts = line;
    for (int commas = 0; commas < 12; ts++) {
        if (!*ts)
            return TS_EPARSE;
        if (*ts == ',')
            commas++;
    }
    if (!matches(ts, 19, "DDDD-DD-DD DD:DD:DD") || ts[19] != ',')
        return TS_EPARSE;
    struct tm tm = timestamp_tm(ts);
    int64_t local = tm.tm_mon >= 0 && tm.tm_mon <= 11 ? utc_seconds(&tm) : (int64_t)timegm(&tm);
    int64_t utc = r->time_ms / 1000 - (r->time_ms % 1000 < 0);
    int64_t off = local - utc;
    if (off < -18 * 3600 || off > 18 * 3600)
        return TS_EPARSE;
    *offset_s = (int32_t)off;
    return TS_OK;
}

/* --- the agent's form in one pass (ts_reading_parse_line) --------------- */

/* Bytes by what they may be in the agent's form: NAME_BYTE, printable ASCII
 * but ',' and '"' (what ts_field_ok accepts in one byte); ID_BYTE, what
 * ts_id_ok accepts (ASCII letters, digits, '.', '_', '-'). */
enum { NAME_BYTE = 1, ID_BYTE = 2 };
static const unsigned char byte_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 3, 3, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1,
    1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 3,
    1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* A name's bytes up to the next ',' (required) into dst: printable ASCII but
 * '"' (what ts_field_ok accepts in one byte; other bytes are left to
 * ts_reading_parse), 1..size-1 of them. The byte after the comma, or NULL. */
static const char *name_to(const char *p, const char *end, char *dst, size_t size)
{
    size_t n = 0;
    for (;; p++) {
        if (p == end)
            return NULL;
        unsigned char c = (unsigned char)*p;
        if (!(byte_class[c] & NAME_BYTE) || n + 1 >= size) {
            if (c != ',')
                return NULL;
            break;
        }
        dst[n++] = (char)c;
    }
    if (n == 0)
        return NULL;
    dst[n] = '\0';
    return p + 1;
}

/* 1 to 19 digits (below 10^19: no overflow) up to stop (required; '\0': the
 * end). The byte after stop, or NULL. */
static const char *digits_to(const char *p, const char *end, char stop, uint64_t *out)
{
    const char *from = p;
    uint64_t v = 0;
    for (; p < end; p++) {
        unsigned d = (unsigned)((unsigned char)*p - '0');
        if (d > 9)
            break;
        v = v * 10 + d;
    }
    size_t n = (size_t)(p - from);
    if (n == 0 || n > 19)
        return NULL;
    if (stop) {
        if (p == end || *p != stop)
            return NULL;
        p++;
    } else if (p != end) {
        return NULL;
    }
    *out = v;
    return p;
}

int ts_reading_parse_line(const char *line, size_t len, struct ts_reading *r, int64_t *local_s)
{
    const char *p = line, *end = line + len;
    uint64_t u;

    memset(r, 0, sizeof *r);
    if (!(p = name_to(p, end, r->ca, sizeof r->ca)) ||
        !(p = name_to(p, end, r->unit, sizeof r->unit)) ||
        !(p = name_to(p, end, r->scp, sizeof r->scp)) ||
        !(p = name_to(p, end, r->station, sizeof r->station)) ||
        !(p = name_to(p, end, r->linename, sizeof r->linename)) ||
        !(p = name_to(p, end, r->division, sizeof r->division)))
        return TS_EPARSE;
    /* DATE,TIME, (18 bytes) */
    const char *d = p, *t = p + 9;
    if (end - p < 18 || !matches(d, 8, "DD-DD-DD") || d[8] != ',' || !date_ok(two(d), two(d + 3)) ||
        !matches(t, 8, "DD:DD:DD") || t[8] != ',' || !time_ok(t))
        return TS_EPARSE;
    p += 18;
    if (end - p > 8 && memcmp(p, "REGULAR,", 8) == 0) {
        memcpy(r->desc, "REGULAR", 8);
        p += 8;
    } else if (end - p > 11 && memcmp(p, "RECOVR AUD,", 11) == 0) {
        memcpy(r->desc, "RECOVR AUD", 11);
        p += 11;
    } else {
        return TS_EPARSE;
    }
    if (!(p = digits_to(p, end, ',', &r->entries)) || r->entries > INT32_MAX ||
        !(p = digits_to(p, end, ',', &r->exits)) || r->exits > INT32_MAX)
        return TS_EPARSE;
    /* ID: AGENT:SEQ */
    size_t n = 0;
    for (; p < end && *p != ':'; p++) {
        if (!(byte_class[(unsigned char)*p] & ID_BYTE) || n + 1 >= sizeof r->agent_id)
            return TS_EPARSE;
        r->agent_id[n++] = *p;
    }
    if (n == 0 || p == end)
        return TS_EPARSE;
    r->agent_id[n] = '\0';
    if (!(p = digits_to(p + 1, end, ',', &r->seq)) || r->seq == 0)
        return TS_EPARSE;
    /* TIMESTAMP, (20 bytes) */
    const char *ts = p;
    if (end - p < 20 || !matches(ts, 19, "DDDD-DD-DD DD:DD:DD") || ts[19] != ',' ||
        !date_ok(two(ts + 5), two(ts + 8)) || !time_ok(ts + 11) || two(ts + 2) != two(d + 6) ||
        two(ts + 5) != two(d) || two(ts + 8) != two(d + 3) || memcmp(ts + 11, t, 8) != 0)
        return TS_EPARSE;
    int year = two(ts) * 100 + two(ts + 2);
    if (year < 1900)
        return TS_EPARSE;
    p += 20;
    if (!(p = digits_to(p, end, ',', &u)) || u > (uint64_t)INT64_MAX)
        return TS_EPARSE;
    r->time_ms = (int64_t)u;
    /* within a day of 1900/9999 UTC: left to ts_reading_parse (localtime_r) */
    if (r->time_ms < -2208988800000LL + 86400000 || r->time_ms > 253402300799000LL - 86400000)
        return TS_EPARSE;
    if (!(p = digits_to(p, end, ',', &r->entries_cum)) ||
        !(p = digits_to(p, end, ',', &r->exits_cum)))
        return TS_EPARSE;
    const char *flags = p; /* names and '|', or 0x hex: no NUL, no space */
    for (; p < end && *p != ','; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return TS_EPARSE;
    if (p == end)
        return TS_EPARSE;
    if (p > flags) {
        char f[128];
        if ((size_t)(p - flags) >= sizeof f)
            return TS_EPARSE;
        memcpy(f, flags, (size_t)(p - flags));
        f[p - flags] = '\0';
        if (ts_flags_parse(f, &r->flags) != TS_OK)
            return TS_EPARSE;
    }
    if (!digits_to(p + 1, end, '\0', &r->merged_from) || r->merged_from == 0 ||
        r->merged_from > r->seq)
        return TS_EPARSE;
    if (local_s) {
        struct tm tm = {0};
        tm.tm_year = year - 1900;
        tm.tm_mon = two(ts + 5) - 1;
        tm.tm_mday = two(ts + 8);
        tm.tm_hour = two(ts + 11);
        tm.tm_min = two(ts + 14);
        tm.tm_sec = two(ts + 17);
        *local_s = utc_seconds(&tm);
    }
    return TS_OK;
}
