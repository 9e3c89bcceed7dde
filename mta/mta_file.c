/* SPDX-License-Identifier: Apache-2.0 */
#include "mta_file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "civil.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "reading.h"

#define LINE_MAX_LEN 4096     /* a record, with its line breaks and the NUL */
#define N_COLS 11             /* without the pandas index column */

/* ---- New York time ------------------------------------------------------ */

/* 0 = Sunday. */
static int weekday(int64_t days)
{
    int64_t w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
    return (int)(w < 0 ? w + 7 : w);
}

/* Day of month of the n-th Sunday of y-m. */
static int nth_sunday(int y, int m, int n)
{
    int first = 1 + (7 - weekday(ts_days_from_civil(y, m, 1))) % 7;
    return first + 7 * (n - 1);
}

int64_t ts_mta_ny_to_ms(int year, int month, int day, int hour, int min, int sec)
{
    int64_t local = ts_days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec;
    /* Daylight time runs from 03:00 local on the second Sunday of March
     * (02:00-03:00 does not exist; read as standard time) to 02:00 local
     * daylight time on the first Sunday of November. */
    int64_t on = ts_days_from_civil(year, 3, nth_sunday(year, 3, 2)) * 86400 + 3 * 3600;
    int64_t off = ts_days_from_civil(year, 11, nth_sunday(year, 11, 1)) * 86400 + 2 * 3600;
    int offset_h = (local >= on && local < off) ? 4 : 5;
    return (local + offset_h * 3600) * 1000;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

/* Reads min_digits..max_digits decimal digits into *v; NULL if too few. */
static const char *parse_uint(const char *s, int min_digits, int max_digits, int *v)
{
    int n = 0, x = 0;
    while (n < max_digits && s[n] >= '0' && s[n] <= '9') {
        x = x * 10 + (s[n] - '0');
        n++;
    }
    if (n < min_digits)
        return NULL;
    *v = x;
    return s + n;
}

static int valid_civil(int y, int mo, int d, int h, int mi, int s)
{
    return y >= 1970 && y <= 9999 && mo >= 1 && mo <= 12 && d >= 1 &&
           d <= days_in_month(y, mo) && h >= 0 && h <= 23 && mi >= 0 && mi <= 59 && s >= 0 &&
           s <= 59;
}

int ts_mta_parse_time(const char *date, const char *time, int64_t *ms)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    const char *p;

    if (!time || !ms)
        return TS_EINVAL;
    if (date) {
        p = parse_uint(date, 1, 2, &mo);
        if (!p || *p++ != '/' || !(p = parse_uint(p, 1, 2, &d)) || *p++ != '/' ||
            !(p = parse_uint(p, 4, 4, &y)) || *p)
            return TS_EINVAL;
        p = time;
    } else {
        p = parse_uint(time, 4, 4, &y);
        if (!p || *p++ != '-' || !(p = parse_uint(p, 1, 2, &mo)) || *p++ != '-' ||
            !(p = parse_uint(p, 1, 2, &d)) || (*p != ' ' && *p != 'T'))
            return TS_EINVAL;
        p++;
    }
    p = parse_uint(p, 1, 2, &h);
    if (!p || *p++ != ':' || !(p = parse_uint(p, 2, 2, &mi)) || *p++ != ':' ||
        !(p = parse_uint(p, 2, 2, &s)) || *p)
        return TS_EINVAL;
    if (!valid_civil(y, mo, d, h, mi, s))
        return TS_EINVAL;
    *ms = ts_mta_ny_to_ms(y, mo, d, h, mi, s);
    return TS_OK;
}

/* ---- data set ----------------------------------------------------------- */

void ts_mta_free(struct ts_mta_data *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_turnstiles; i++)
        free(d->turnstiles[i].readings);
    free(d->turnstiles);
    free(d);
}

const struct ts_mta_turnstile *ts_mta_find(const struct ts_mta_data *d, const char *ca,
                                           const char *unit, const char *scp)
{
    if (!d)
        return NULL;
    for (size_t i = 0; i < d->n_turnstiles; i++) {
        const struct ts_mta_turnstile *t = &d->turnstiles[i];
        if (strcmp(t->ca, ca) == 0 && strcmp(t->unit, unit) == 0 && strcmp(t->scp, scp) == 0)
            return t;
    }
    return NULL;
}

/* ---- loading ------------------------------------------------------------ */

/* Loader state: the data set being built, reading capacities and a hash of
 * "ca,unit,scp" (as carried) -> turnstile index. */
struct loader {
    const char *path;
    unsigned long line_no;    /* physical lines read */
    unsigned long rec_line;   /* first line of the record being parsed */
    const struct ts_mta_filter *filter;
    struct ts_mta_data *d;
    size_t cap_turnstiles;
    size_t *cap_readings;
    struct raw_key *raw_keys; /* per turnstile: the file's key if the key was renamed */
    size_t *hash;             /* index + 1; 0 = empty */
    size_t hash_size;         /* power of two */
    char *err;
    size_t errlen;
    /* decision for the previous row's key (rows come grouped by turnstile) */
    char last_key[3 * 64];    /* as carried */
    char last_raw[LINE_MAX_LEN + 3]; /* as in the file (struct raw_key's form) */
    size_t last_raw_len;
    long last_index;          /* -1: rejected by the filter */
    bool any_row, any_kept;
};

/* C/A, UNIT and SCP as the file spells them (blanks around them dropped),
 * each with its NUL, in one block of len bytes; kept only for turnstiles
 * whose key was renamed. */
struct raw_key {
    char *bytes;
    size_t len;
};

static int fail(struct loader *l, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct loader *l, int rc, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (!l->err || l->errlen == 0)
        return rc;
    if (l->rec_line)
        n = (size_t)snprintf(l->err, l->errlen, "%s:%lu: ", l->path, l->rec_line);
    else
        n = (size_t)snprintf(l->err, l->errlen, "%s: ", l->path ? l->path : "(no path)");
    if (n < l->errlen) {
        va_start(ap, fmt);
        vsnprintf(l->err + n, l->errlen - n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The file's text for a message: printable, at most 40 bytes shown. */
static const char *shown(const char *s, char buf[48])
{
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%.40s%s", s, strlen(s) > 40 ? "..." : "");
    ts_config_escape(buf, 48, tmp);
    return buf;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void key_of(const struct ts_mta_turnstile *t, char *buf, size_t size)
{
    snprintf(buf, size, "%s,%s,%s", t->ca, t->unit, t->scp);
}

static void hash_put(size_t *tab, size_t size, const char *key, size_t index)
{
    size_t i = (size_t)fnv1a(key) & (size - 1);
    while (tab[i])
        i = (i + 1) & (size - 1);
    tab[i] = index + 1;
}

static long hash_get(const struct loader *l, const char *key)
{
    char k[64];

    if (!l->hash_size)
        return -1;
    for (size_t i = (size_t)fnv1a(key) & (l->hash_size - 1); l->hash[i];
         i = (i + 1) & (l->hash_size - 1)) {
        key_of(&l->d->turnstiles[l->hash[i] - 1], k, sizeof k);
        if (strcmp(k, key) == 0)
            return (long)(l->hash[i] - 1);
    }
    return -1;
}

/* Makes room for one more turnstile, keeping the hash at most half full. */
static int hash_grow(struct loader *l)
{
    char k[64];
    size_t size = l->hash_size ? l->hash_size * 2 : 1024;
    size_t *tab;

    if ((l->d->n_turnstiles + 1) * 2 <= l->hash_size)
        return TS_OK;
    tab = calloc(size, sizeof *tab);
    if (!tab)
        return TS_ENOMEM;
    for (size_t i = 0; i < l->d->n_turnstiles; i++) {
        key_of(&l->d->turnstiles[i], k, sizeof k);
        hash_put(tab, size, k, i);
    }
    free(l->hash);
    l->hash = tab;
    l->hash_size = size;
    return TS_OK;
}

/* f[0..5]: the identity as carried. */
static int filter_accepts(const struct loader *l, char f[6][64])
{
    const struct ts_mta_filter *flt = l->filter;
    bool ok;

    if (!flt)
        return 1;
    if (flt->max_turnstiles && l->d->n_turnstiles >= flt->max_turnstiles)
        return 0;
    if (flt->n_stations) {
        ok = false;
        for (size_t i = 0; i < flt->n_stations && !ok; i++)
            ok = strcmp(flt->stations[i], f[3]) == 0;
        if (!ok)
            return 0;
    }
    if (flt->n_keys) {
        ok = false;
        for (size_t i = 0; i < flt->n_keys && !ok; i++)
            ok = strcmp(flt->keys[i].ca, f[0]) == 0 && strcmp(flt->keys[i].unit, f[1]) == 0 &&
                 strcmp(flt->keys[i].scp, f[2]) == 0;
        if (!ok)
            return 0;
    }
    return 1;
}

/* ---- names -------------------------------------------------------------- */

static const char *const col_names[6] = {"C/A", "UNIT", "SCP", "STATION", "LINENAME",
                                         "DIVISION"};
static const size_t col_sizes[6] = {
    sizeof ((struct ts_mta_turnstile *)0)->ca,      sizeof ((struct ts_mta_turnstile *)0)->unit,
    sizeof ((struct ts_mta_turnstile *)0)->scp,     sizeof ((struct ts_mta_turnstile *)0)->station,
    sizeof ((struct ts_mta_turnstile *)0)->linename, sizeof ((struct ts_mta_turnstile *)0)->division};

/* Writes into dst (size bytes, at most 64) the name that carries the file's
 * field src (identity column col) through the whole chain unchanged: the
 * reading's CSV (ts_field_ok) and the agent config turnstile-sim writes (an
 * INI file). Blanks around it are dropped; each character a name may not
 * hold (comma, double quote, control character, a byte that is not UTF-8),
 * a ';' or '#' after a blank (a comment in the config) and, in C/A, UNIT and
 * SCP, a ']' (it would end the config's [turnstile CA/UNIT/SCP]) becomes
 * '_'; an empty STATION, LINENAME or DIVISION becomes "_". Returns TS_OK with
 * *why NULL (unchanged but for blanks) or the first reason it changed, or
 * TS_EPARSE with *why set when it is too long or an empty key. */
static int carry_name(const char *src, int col, char *dst, size_t size, const char **why)
{
    const char *end = src + strlen(src);
    size_t n = 0;

    *why = NULL;
    while (*src == ' ' || *src == '\t')
        src++;
    while (end > src && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (const char *p = src; p < end;) {
        const char *bad = NULL;
        size_t len = ts_field_char(p, &bad);
        if (len > (size_t)(end - p))
            len = 1, bad = "is not valid UTF-8";
        if (!bad && (*p == ';' || *p == '#') && n && dst[n - 1] == ' ')
            bad = "holds ';' or '#' after a blank (a comment in the agent's config)";
        if (!bad && *p == ']' && col < 3)
            bad = "holds ']' (it would end the agent config's section name)";
        if (n + (bad ? 1 : len) >= size) {
            *why = "is too long";
            return TS_EPARSE;
        }
        if (bad) {
            *why = *why ? *why : bad;
            dst[n++] = '_';
        } else {
            memcpy(dst + n, p, len);
            n += len;
        }
        p += len;
    }
    if (n == 0) {
        *why = "is empty";
        if (col < 3)
            return TS_EPARSE;
        dst[n++] = '_';
    }
    dst[n] = '\0';
    return TS_OK;
}

/* The block of a raw key (struct raw_key) for the row's fields, without
 * the blanks around them (as carry_name drops them); 0 if it does not fit. */
static size_t raw_key_of(char *const *f, char *buf, size_t size)
{
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        const char *p = f[i] + strspn(f[i], " \t");
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (n + len + 1 > size)
            return 0;
        memcpy(buf + n, p, len);
        buf[n + len] = '\0';
        n += len + 1;
    }
    return n;
}

/* Logs what was renamed in a new turnstile (the first few only). */
static void log_renamed(struct loader *l, char *const *f, char carried[6][64])
{
    char a[48], b[48];
    const char *why;
    char tmp[64];

    if (++l->d->n_renamed > TS_MTA_RENAMED_LOGGED)
        return;
    for (int i = 0; i < 6; i++) {
        if (carry_name(f[i], i, tmp, sizeof tmp, &why) || !why)
            continue;
        TS_LOG(TS_LOG_NOTICE, "%s:%lu: turnstile %s/%s/%s: %s '%s' %s: carried as '%s'%s",
               l->path, l->rec_line, carried[0], carried[1], carried[2], col_names[i],
               shown(f[i], a), why, shown(carried[i], b),
               l->d->n_renamed == TS_MTA_RENAMED_LOGGED ? " (no more such lines: see n_renamed)"
                                                        : "");
    }
}

/* Index of the turnstile for the row's identity fields f[0..5], creating it
 * if the filter accepts it; -1 if filtered out. */
static int turnstile_for(struct loader *l, char *const *f, long *index)
{
    char key[3 * 64], carried[6][64], raw[LINE_MAX_LEN + 3];
    struct ts_mta_turnstile *t;
    const char *why = NULL;
    bool renamed = false, key_renamed = false;
    size_t raw_len = raw_key_of(f, raw, sizeof raw);

    if (raw_len && raw_len == l->last_raw_len && memcmp(raw, l->last_raw, raw_len) == 0) {
        *index = l->last_index; /* the same key as the row before: decided already */
        return TS_OK;
    }
    for (int i = 0; i < 3; i++) {
        if (carry_name(f[i], i, carried[i], col_sizes[i], &why) == TS_EPARSE) {
            char a[48];
            return fail(l, TS_EPARSE, "%s '%s' %s (at most %zu bytes; C/A, UNIT and SCP may not "
                        "be empty)", col_names[i], shown(f[i], a), why, col_sizes[i] - 1);
        }
        key_renamed |= why != NULL;
    }
    renamed = key_renamed;
    snprintf(key, sizeof key, "%s,%s,%s", carried[0], carried[1], carried[2]);
    if (strcmp(key, l->last_key) == 0) {
        *index = l->last_index;
    } else {
        *index = hash_get(l, key);
    }
    if (*index >= 0 && (key_renamed || l->raw_keys[*index].bytes)) {
        /* two different keys in the file must not become one turnstile */
        const struct raw_key *rk = &l->raw_keys[*index];
        char theirs[3 * 64];
        size_t len = raw_len, tlen = rk->len;
        const char *tb = rk->bytes;
        if (!tb) {
            const struct ts_mta_turnstile *o = &l->d->turnstiles[*index];
            char *of[3] = {(char *)o->ca, (char *)o->unit, (char *)o->scp};
            tlen = raw_key_of(of, theirs, sizeof theirs);
            tb = theirs;
        }
        if (len != tlen || memcmp(raw, tb, len) != 0)
            return fail(l, TS_EPARSE, "turnstile %s: C/A/UNIT/SCP carried as another "
                        "turnstile's (a name that cannot be carried was renamed; docs/simulator.md)",
                        key);
    }
    if (*index < 0 && strcmp(key, l->last_key) != 0) {
        for (int i = 3; i < 6; i++)
            if (carry_name(f[i], i, carried[i], col_sizes[i], &why) == TS_EPARSE) {
                char a[48];
                return fail(l, TS_EPARSE, "%s '%s' %s (at most %zu bytes)", col_names[i],
                            shown(f[i], a), why, col_sizes[i] - 1);
            } else {
                renamed |= why != NULL;
            }
        if (filter_accepts(l, carried)) {
            if (hash_grow(l))
                return fail(l, TS_ENOMEM, "out of memory");
            if (l->d->n_turnstiles == l->cap_turnstiles) {
                size_t cap = l->cap_turnstiles ? l->cap_turnstiles * 2 : 256;
                void *p = realloc(l->d->turnstiles, cap * sizeof *l->d->turnstiles);
                void *q = p ? realloc(l->cap_readings, cap * sizeof *l->cap_readings) : NULL;
                void *r = q ? realloc(l->raw_keys, cap * sizeof *l->raw_keys) : NULL;
                if (p)
                    l->d->turnstiles = p;
                if (q)
                    l->cap_readings = q;
                if (!r)
                    return fail(l, TS_ENOMEM, "out of memory");
                l->raw_keys = r;
                l->cap_turnstiles = cap;
            }
            size_t i = l->d->n_turnstiles;
            t = &l->d->turnstiles[i];
            memset(t, 0, sizeof *t);
            l->cap_readings[i] = 0;
            l->raw_keys[i] = (struct raw_key){0};
            l->d->n_turnstiles++; /* counted first so that ts_mta_free sees it */
            memcpy(t->ca, carried[0], strlen(carried[0]) + 1);
            memcpy(t->unit, carried[1], strlen(carried[1]) + 1);
            memcpy(t->scp, carried[2], strlen(carried[2]) + 1);
            memcpy(t->station, carried[3], strlen(carried[3]) + 1);
            memcpy(t->linename, carried[4], strlen(carried[4]) + 1);
            memcpy(t->division, carried[5], strlen(carried[5]) + 1);
            if (key_renamed) {
                if (!(l->raw_keys[i].bytes = malloc(raw_len)))
                    return fail(l, TS_ENOMEM, "out of memory");
                memcpy(l->raw_keys[i].bytes, raw, raw_len);
                l->raw_keys[i].len = raw_len;
            }
            if (renamed)
                log_renamed(l, f, carried);
            hash_put(l->hash, l->hash_size, key, i);
            *index = (long)i;
        }
    }
    snprintf(l->last_key, sizeof l->last_key, "%s", key);
    l->last_index = *index;
    memcpy(l->last_raw, raw, raw_len);
    l->last_raw_len = raw_len;
    return TS_OK;
}

/* ---- records ------------------------------------------------------------ */

static int parse_count(const char *s, uint64_t *v)
{
    uint64_t x = 0;

    if (!*s)
        return TS_EPARSE;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > (UINT64_MAX - 9) / 10)
            return TS_EPARSE;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *v = x;
    return TS_OK;
}

/* True if the record s ends inside a quoted field (which may hold line
 * breaks): the same reading of quotes as split_csv's. */
static bool open_quote(const char *s)
{
    bool quoted = false, field_start = true;

    if (!strchr(s, '"'))
        return false;
    for (; *s; s++) {
        if (quoted) {
            if (*s == '"' && s[1] == '"')
                s++;
            else if (*s == '"')
                quoted = false;
        } else if (*s == ',') {
            field_start = true;
        } else if (*s == '"' && field_start) {
            quoted = true;
            field_start = false;
        } else if (*s != ' ' && *s != '\t') {
            field_start = false;
        }
    }
    return quoted;
}

/* Splits a CSV record (RFC 4180) in place into at most max fields; returns
 * their number (max + 1: more). A field in double quotes may hold commas,
 * line breaks and "" for a quote. Blanks around a field are not part of it
 * (inside the quotes they are). A quote inside an unquoted field is taken
 * as it is. -1 and *why for a quote that is not closed or text after one. */
static int split_csv(char *line, char **f, int max, const char **why)
{
    char *r = line, *w = line; /* read and write positions; w <= r */
    int n = 0;

    for (;;) {
        if (n == max)
            return max + 1;
        while (*r == ' ' || *r == '\t')
            r++;
        f[n++] = w;
        if (*r == '"') {
            for (r++;; r++) {
                if (*r == '\0') {
                    *why = "a quoted field is not closed";
                    return -1;
                }
                if (*r == '"' && *++r != '"')
                    break;
                *w++ = *r;
            }
            while (*r == ' ' || *r == '\t')
                r++;
            if (*r != ',' && *r != '\0') {
                *why = "text after the closing quote of a field";
                return -1;
            }
        } else {
            char *end = w;
            while (*r && *r != ',') {
                char c = *r++;
                *w++ = c;
                if (c != ' ' && c != '\t')
                    end = w;
            }
            w = end;
        }
        char sep = *r;
        *w++ = '\0';
        if (sep == '\0')
            return n;
        r++;
    }
}

static void trim_blanks(char *s)
{
    size_t n = strlen(s), b = strspn(s, " \t");
    while (n > b && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    memmove(s, s + b, n - b);
    s[n - b] = '\0';
}

/* Returns the column offset (0, or 1 with a leading index column) or -1
 * after fail(). Names are compared without case and blanks around them;
 * the first may be C/A or CA; the index column's name is not looked at. */
static int parse_header(struct loader *l, char *line)
{
    static const char *const names[N_COLS] = {"C/A",  "UNIT", "SCP",  "STATION",
                                              "LINENAME", "DIVISION", "DATE", "TIME",
                                              "DESC", "ENTRIES", "EXITS"};
    static const char want[] = "(want [index,]C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,"
                               "DESC,ENTRIES,EXITS; C/A may be CA)";
    char *f[N_COLS + 2], a[48];
    const char *why = NULL;
    int n = split_csv(line, f, N_COLS + 1, &why), off;

    if (n < 0)
        return fail(l, TS_EPARSE, "bad header: %s %s", why, want), -1;
    if (n != N_COLS && n != N_COLS + 1) {
        fail(l, TS_EPARSE, "bad header: %s%d columns %s", n > N_COLS + 1 ? "more than " : "",
             n > N_COLS + 1 ? N_COLS + 1 : n, want);
        return -1;
    }
    off = n - N_COLS;
    for (int i = 0; i < N_COLS; i++) {
        trim_blanks(f[i + off]); /* "EXITS   " in quotes */
        if (strcasecmp(f[i + off], names[i]) == 0 || (i == 0 && strcasecmp(f[off], "CA") == 0))
            continue;
        fail(l, TS_EPARSE, "bad header: column %d is '%s', not %s %s", i + off + 1,
             shown(f[i + off], a), names[i], want);
        return -1;
    }
    return off;
}

static int add_reading(struct loader *l, size_t ti, const struct ts_mta_reading *r)
{
    struct ts_mta_turnstile *t = &l->d->turnstiles[ti];

    if (t->n_readings == l->cap_readings[ti]) {
        size_t cap = t->n_readings ? t->n_readings * 2 : 64;
        void *p = realloc(t->readings, cap * sizeof *t->readings);
        if (!p)
            return fail(l, TS_ENOMEM, "out of memory");
        t->readings = p;
        l->cap_readings[ti] = cap;
    }
    t->readings[t->n_readings++] = *r;
    return TS_OK;
}

static int parse_row(struct loader *l, char *line, int off)
{
    char *f[N_COLS + 2], a[48], b[48];
    struct ts_mta_reading r = {0};
    long index = -1;
    const char *why = NULL;
    int n = split_csv(line, f, N_COLS + 1, &why), rc;

    if (n < 0)
        return fail(l, TS_EPARSE, "%s", why);
    if (n != N_COLS + off)
        return fail(l, TS_EPARSE, "expected %d columns, found %s%d", N_COLS + off,
                    n > N_COLS + 1 ? "more than " : "", n > N_COLS + 1 ? N_COLS + 1 : n);
    char **c = f + off;
    for (int i = 6; i < N_COLS; i++)
        trim_blanks(c[i]); /* unquoted fields are trimmed already */
    if (ts_mta_parse_time(c[6], c[7], &r.time_ms))
        return fail(l, TS_EPARSE, "bad DATE/TIME '%s %s' (want MM/DD/YYYY HH:MM:SS)",
                    shown(c[6], a), shown(c[7], b));
    if (parse_count(c[9], &r.entries) || parse_count(c[10], &r.exits))
        return fail(l, TS_EPARSE, "bad ENTRIES/EXITS '%s'/'%s' (want unsigned integers)",
                    shown(c[9], a), shown(c[10], b));
    if (!*c[8])
        return fail(l, TS_EPARSE, "empty DESC");
    r.recovered = strcmp(c[8], "RECOVR AUD") == 0;
    if (!l->any_row || r.time_ms < l->d->file_first_ms)
        l->d->file_first_ms = r.time_ms;
    if (!l->any_row || r.time_ms > l->d->file_last_ms)
        l->d->file_last_ms = r.time_ms;
    l->any_row = true;
    if ((rc = turnstile_for(l, c, &index)))
        return rc;
    if (index < 0)
        return TS_OK;
    if ((rc = add_reading(l, (size_t)index, &r)))
        return rc;
    l->d->n_rows++;
    if (!l->any_kept || r.time_ms < l->d->first_ms)
        l->d->first_ms = r.time_ms;
    if (!l->any_kept || r.time_ms > l->d->last_ms)
        l->d->last_ms = r.time_ms;
    l->any_kept = true;
    return TS_OK;
}

/* Stable merge sort of readings by time (files are normally sorted already). */
static void sort_readings(struct ts_mta_reading *r, struct ts_mta_reading *tmp, size_t n)
{
    size_t mid = n / 2, i = 0, j = mid, k = 0;

    if (n < 2)
        return;
    sort_readings(r, tmp, mid);
    sort_readings(r + mid, tmp, n - mid);
    while (i < mid && j < n)
        tmp[k++] = r[j].time_ms < r[i].time_ms ? r[j++] : r[i++];
    while (i < mid)
        tmp[k++] = r[i++];
    while (j < n)
        tmp[k++] = r[j++];
    memcpy(r, tmp, n * sizeof *r);
}

static int finish(struct loader *l)
{
    for (size_t i = 0; i < l->d->n_turnstiles; i++) {
        struct ts_mta_turnstile *t = &l->d->turnstiles[i];
        size_t k = 1;
        while (k < t->n_readings && t->readings[k - 1].time_ms <= t->readings[k].time_ms)
            k++;
        if (k < t->n_readings) {
            struct ts_mta_reading *tmp = malloc(t->n_readings * sizeof *tmp);
            if (!tmp)
                return fail(l, TS_ENOMEM, "out of memory");
            sort_readings(t->readings, tmp, t->n_readings);
            free(tmp);
        }
    }
    if (l->d->n_renamed > TS_MTA_RENAMED_LOGGED)
        TS_LOG(TS_LOG_NOTICE, "%s: %zu turnstiles renamed in all (names that cannot be carried)",
               l->path, l->d->n_renamed);
    return TS_OK;
}

/* Reads records (a line, or several when a quoted field holds line breaks)
 * of at most LINE_MAX_LEN - 2 bytes each: the header, then the rows. */
static int read_lines(struct loader *l, gzFile gz)
{
    int off = -1, rc, zerr;
    size_t len = 0;           /* of the record so far, lines before this one */
    z_off_t pos = gztell(gz);

    char *buf = malloc(LINE_MAX_LEN);
    if (!buf)
        return fail(l, TS_ENOMEM, "out of memory");
    for (;;) {
        if (!gzgets(gz, buf + len, (int)(LINE_MAX_LEN - len))) {
            gzerror(gz, &zerr);
            if (len && (zerr == Z_OK || zerr == Z_STREAM_END)) {
                rc = fail(l, TS_EPARSE, "a quoted field is not closed at the end of the file");
                goto out;
            }
            break;
        }
        size_t n = strlen(buf + len);
        z_off_t now = gztell(gz);
        l->line_no++;
        if (len == 0)
            l->rec_line = l->line_no;
        if (now >= 0 && pos >= 0 && (size_t)(now - pos) != n) {
            rc = fail(l, TS_EPARSE, "holds a NUL byte (not a text file?)");
            goto out;
        }
        pos = now;
        if (n && buf[len + n - 1] != '\n') {
            /* the last line, a truncated stream or a record too long */
            gzerror(gz, &zerr);
            if (zerr != Z_OK && zerr != Z_STREAM_END)
                break;
            if (len + n == LINE_MAX_LEN - 1 && !gzeof(gz)) {
                rc = fail(l, TS_EPARSE, "line longer than %d bytes", LINE_MAX_LEN - 2);
                goto out;
            }
        }
        if (l->line_no == 1 && strncmp(buf, "\xEF\xBB\xBF", 3) == 0) {
            memmove(buf, buf + 3, n - 2); /* a UTF-8 byte order mark */
            n -= 3;
        }
        n += len;
        while (n > len && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        char *line = buf;
        if (open_quote(line)) {
            if (n + 2 >= LINE_MAX_LEN) {
                rc = fail(l, TS_EPARSE, "line longer than %d bytes", LINE_MAX_LEN - 2);
                goto out;
            }
            buf[n++] = '\n';
            buf[n] = '\0';
            len = n;
            continue;
        }
        len = 0;
        if (line[strspn(line, " \t")] == '\0')
            continue; /* a blank line */
        if (off < 0) {
            if ((off = parse_header(l, line)) < 0) {
                rc = TS_EPARSE;
                goto out;
            }
            continue;
        }
        if ((rc = parse_row(l, line, off)))
            goto out;
    }
    const char *msg = gzerror(gz, &zerr);
    rc = TS_OK;
    if (zerr == Z_ERRNO)
        rc = fail(l, TS_ESYS, "read error: %s", strerror(errno));
    else if (zerr != Z_OK && zerr != Z_STREAM_END)
        rc = fail(l, TS_EPARSE, "bad gzip data: %s", msg);
    else if (off < 0) {
        l->rec_line = 0;
        rc = fail(l, TS_EPARSE, "empty file (no header)");
    }
out:
    free(buf);
    return rc;
}

int ts_mta_load(const char *path, const struct ts_mta_filter *filter,
                struct ts_mta_data **out, char *err, size_t errlen)
{
    struct loader l = {.path = path, .filter = filter, .err = err, .errlen = errlen,
                       .last_index = -1};
    gzFile gz;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (!path || !out)
        return fail(&l, TS_EINVAL, "invalid argument");
    *out = NULL;
    l.d = calloc(1, sizeof *l.d);
    if (!l.d)
        return fail(&l, TS_ENOMEM, "out of memory");
    errno = 0;
    gz = gzopen(path, "rb");
    if (!gz) {
        int e = errno ? errno : ENOMEM;
        ts_mta_free(l.d);
        fail(&l, TS_ESYS, "cannot open: %s", strerror(e));
        errno = e;
        return TS_ESYS;
    }
    gzbuffer(gz, 1 << 16);
    rc = read_lines(&l, gz);
    gzclose(gz);
    if (rc == TS_OK)
        rc = finish(&l);
    for (size_t i = 0; i < l.d->n_turnstiles; i++)
        free(l.raw_keys[i].bytes);
    free(l.raw_keys);
    free(l.hash);
    free(l.cap_readings);
    if (rc) {
        ts_mta_free(l.d);
        return rc;
    }
    *out = l.d;
    return TS_OK;
}

/* ---- synthetic data ----------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static double uniform(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * (double)(splitmix64(s) >> 11) / 9007199254740992.0;
}

/* People per hour through a busy turnstile, by hour of day. */
static const double profile_in[24] = {6,  3,  2,  2,  6,   30,  90,  160, 200, 130, 70, 60,
                                      65, 65, 70, 80, 100, 120, 100, 70,  45,  30, 20, 12};

int ts_mta_generate(size_t n, uint64_t seed, int64_t start_ms, int days,
                    struct ts_mta_data **out)
{
    struct ts_mta_data *d;
    size_t hours = (size_t)days * 24;

    if (!out || days < 1 || days > 3660 || n > 100000)
        return TS_EINVAL;
    *out = NULL;
    d = calloc(1, sizeof *d);
    if (!d || (n && !(d->turnstiles = calloc(n, sizeof *d->turnstiles)))) {
        free(d);
        return TS_ENOMEM;
    }
    d->n_turnstiles = n;
    for (size_t k = 0; k < n; k++) {
        struct ts_mta_turnstile *t = &d->turnstiles[k];
        uint64_t s = seed ^ (0xA5A5A5A5ull * (k + 1));
        uint64_t e = (uint64_t)uniform(&s, 0, 1 << 24), x = (uint64_t)uniform(&s, 0, 1 << 24);
        double busy = uniform(&s, 0.2, 1.5);
        int64_t hour0 = (start_ms / 3600000) % 24; /* UTC hour; shifted to NY below */

        snprintf(t->ca, sizeof t->ca, "SIM");
        snprintf(t->unit, sizeof t->unit, "R000");
        snprintf(t->scp, sizeof t->scp, "00-%02zu-%02zu", (k / 100) % 100, k % 100);
        snprintf(t->station, sizeof t->station, "SIMULATED");
        snprintf(t->linename, sizeof t->linename, "S");
        snprintf(t->division, sizeof t->division, "SIM");
        t->readings = malloc((hours + 1) * sizeof *t->readings);
        if (!t->readings) {
            ts_mta_free(d);
            return TS_ENOMEM;
        }
        t->n_readings = hours + 1;
        for (size_t h = 0; h <= hours; h++) {
            struct ts_mta_reading *r = &t->readings[h];
            int hod = (int)((hour0 + 24 - 5 + (int64_t)h) % 24); /* approx. NY hour */
            int dow = weekday((start_ms / 1000 + (int64_t)h * 3600 - 5 * 3600) / 86400);
            double wk = (dow == 0 || dow == 6) ? 0.55 : 1.0;
            r->time_ms = start_ms + (int64_t)h * 3600000;
            r->entries = e;
            r->exits = x;
            r->recovered = false;
            /* entries peak in the morning, exits in the evening */
            e += (uint64_t)(busy * wk * profile_in[hod] * uniform(&s, 0.8, 1.2));
            x += (uint64_t)(busy * wk * profile_in[(hod + 10) % 24] * uniform(&s, 0.8, 1.2));
        }
        d->n_rows += t->n_readings;
    }
    d->first_ms = d->file_first_ms = start_ms;
    d->last_ms = d->file_last_ms = start_ms + (int64_t)hours * 3600000;
    *out = d;
    return TS_OK;
}
