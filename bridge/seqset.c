/* SPDX-License-Identifier: Apache-2.0 */
/* seqset.c - sets of sequence numbers per agent (see seqset.h).
 *
 * Invariants of a set, with r = buf + off:
 *   r[0].lo - 1 > contiguous, r[k].lo <= r[k].hi, r[k+1].lo - 1 > r[k].hi.
 * Numbers are compared as "lo - 1 > x" rather than "lo > x + 1" so that
 * nothing overflows at UINT64_MAX (every lo is >= 1). */
#include "seqset.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "err.h"
#include "reading.h"

#define FIRST_CAP 8

static struct ts_seqrange *ranges(const struct ts_seqset *s)
{
    return s->buf + s->off; /* only called with s->buf != NULL */
}

void ts_seqset_init(struct ts_seqset *s, uint64_t floor)
{
    *s = (struct ts_seqset){.contiguous = floor, .max_ranges = TS_SEQSET_MAX_RANGES};
}

void ts_seqset_free(struct ts_seqset *s)
{
    if (!s)
        return;
    free(s->buf);
    s->buf = NULL;
    s->off = s->n = s->cap = 0;
}

int ts_seqset_set_max_ranges(struct ts_seqset *s, size_t max)
{
    if (max == 0 || max < s->n)
        return TS_EINVAL;
    s->max_ranges = max;
    return TS_OK;
}

uint64_t ts_seqset_contiguous(const struct ts_seqset *s)
{
    return s->contiguous;
}

size_t ts_seqset_ranges(const struct ts_seqset *s)
{
    return s->n;
}

struct ts_seqrange ts_seqset_range(const struct ts_seqset *s, size_t i)
{
    assert(i < s->n);
    return ranges(s)[i];
}

/* First index in [from, n) whose range reaches x - 1 or beyond (hi >= x - 1),
 * i.e. the first range that overlaps, touches or lies above a number x >= 1. */
static size_t first_reaching(const struct ts_seqrange *r, size_t from, size_t n, uint64_t x)
{
    size_t lo = from, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].hi >= x - 1)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* First index in [from, n) whose range lies above x and does not touch it
 * (lo - 1 > x). */
static size_t first_beyond(const struct ts_seqrange *r, size_t from, size_t n, uint64_t x)
{
    size_t lo = from, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].lo - 1 > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

bool ts_seqset_contains(const struct ts_seqset *s, uint64_t seq)
{
    if (seq <= s->contiguous)
        return true;
    if (s->n == 0)
        return false;
    const struct ts_seqrange *r = ranges(s);
    /* the first range with lo > seq; the one before it is the candidate */
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].lo > seq)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo > 0 && seq <= r[lo - 1].hi;
}

bool ts_seqset_contains_any(const struct ts_seqset *s, uint64_t lo, uint64_t hi)
{
    if (lo == 0)
        lo = 1;
    if (lo > hi)
        return false;
    if (lo <= s->contiguous)
        return true;
    if (s->n == 0)
        return false;
    const struct ts_seqrange *r = ranges(s);
    /* the first range that ends at lo or above: it overlaps iff it starts by hi */
    size_t a = 0, b = s->n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (r[mid].hi >= lo)
            b = mid;
        else
            a = mid + 1;
    }
    return a < s->n && r[a].lo <= hi;
}

/* Removes ranges [i, j), moving whichever side is shorter. */
static void remove_ranges(struct ts_seqset *s, size_t i, size_t j)
{
    size_t k = j - i;
    if (k == 0)
        return;
    struct ts_seqrange *r = ranges(s);
    if (i < s->n - j) {
        memmove(r + k, r, i * sizeof *r);
        s->off += k;
    } else {
        memmove(r + i, r + j, (s->n - j) * sizeof *r);
    }
    s->n -= k;
    if (s->n == 0)
        s->off = 0;
}

/* Inserts a range at index i, within max_ranges. The array works as a
 * deque: near the front the head moves down into the room before it; else
 * the tail moves up, after compacting (when a quarter or more of the room
 * is before the head, or the bound forbids growing) or growing. So ranges
 * that open at the top and close at the bottom (a sliding window of gaps)
 * cost O(1) amortized. */
static int insert_range(struct ts_seqset *s, size_t i, struct ts_seqrange add)
{
    struct ts_seqrange *r;

    if (s->n >= s->max_ranges)
        return TS_EFULL;
    if (s->off > 0 && i < s->n - i) {
        r = ranges(s);
        memmove(r - 1, r, i * sizeof *r);
        s->off--;
        r[i - 1] = add;
        s->n++;
        return TS_OK;
    }
    if (s->off + s->n == s->cap) {
        if (s->off > 0 && (s->off >= s->n / 4 || s->cap >= s->max_ranges)) {
            memmove(s->buf, s->buf + s->off, s->n * sizeof *s->buf);
            s->off = 0;
        } else {
            size_t cap = s->cap ? s->cap * 2 : FIRST_CAP;
            if (cap > s->max_ranges)
                cap = s->max_ranges; /* still > cap: n < max_ranges */
            if (cap > SIZE_MAX / sizeof *s->buf)
                return TS_ENOMEM;
            struct ts_seqrange *p = realloc(s->buf, cap * sizeof *p);
            if (!p)
                return TS_ENOMEM;
            s->buf = p;
            s->cap = cap;
        }
    }
    r = ranges(s);
    memmove(r + i + 1, r + i, (s->n - i) * sizeof *r);
    r[i] = add;
    s->n++;
    return TS_OK;
}

int ts_seqset_add(struct ts_seqset *s, uint64_t lo, uint64_t hi, uint64_t *added)
{
    if (added)
        *added = 0;
    if (lo == 0 || lo > hi)
        return TS_EINVAL;
    if (hi <= s->contiguous)
        return TS_OK; /* all seen */
    uint64_t a = lo <= s->contiguous ? s->contiguous + 1 : lo; /* no overflow: contiguous < hi */
    bool touches = a - 1 == s->contiguous;

    if (s->n == 0) { /* the common case: in order, nothing outstanding */
        if (touches) {
            s->contiguous = hi;
        } else {
            int err = insert_range(s, 0, (struct ts_seqrange){a, hi});
            if (err)
                return err;
        }
        if (added)
            *added = hi - a + 1;
        return TS_OK;
    }

    struct ts_seqrange *r = ranges(s);
    /* ranges [i, j) overlap or touch [a, hi] and join it; when [a, hi]
     * touches contiguous, i is 0 (every range lies above contiguous + 1) */
    size_t i = touches ? 0 : first_reaching(r, 0, s->n, a);
    size_t j = i == s->n || r[i].lo - 1 > hi ? i : first_beyond(r, i + 1, s->n, hi);
    uint64_t covered = 0, newlo = a, newhi = hi;
    for (size_t k = i; k < j; k++) {
        uint64_t olo = r[k].lo > a ? r[k].lo : a;
        uint64_t ohi = r[k].hi < hi ? r[k].hi : hi;
        if (olo <= ohi)
            covered += ohi - olo + 1;
    }
    if (j > i) {
        if (r[i].lo < newlo)
            newlo = r[i].lo;
        if (r[j - 1].hi > newhi)
            newhi = r[j - 1].hi;
    }

    if (touches) {
        s->contiguous = newhi;
        remove_ranges(s, 0, j);
    } else if (j == i) {
        int err = insert_range(s, i, (struct ts_seqrange){newlo, newhi});
        if (err)
            return err;
    } else {
        r[i] = (struct ts_seqrange){newlo, newhi};
        remove_ranges(s, i + 1, j);
    }
    if (added)
        *added = hi - a + 1 - covered;
    return TS_OK;
}

/* ---- text form ---- */

size_t ts_seqset_encode_size(const struct ts_seqset *s)
{
    /* 20 digits + NUL, then per range ",lo-hi": 1 + 20 + 1 + 20 */
    return 21 + s->n * 42;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

int ts_seqset_encode(const struct ts_seqset *s, char *buf, size_t size)
{
    char num[48];
    size_t len = 0;
    const struct ts_seqrange *r = s->n ? ranges(s) : NULL;

    for (size_t k = 0; k <= s->n; k++) {
        char *p = num;
        if (k == 0) {
            p = put_u64(p, s->contiguous);
        } else {
            *p++ = k == 1 ? ';' : ',';
            p = put_u64(p, r[k - 1].lo);
            if (r[k - 1].hi != r[k - 1].lo) {
                *p++ = '-';
                p = put_u64(p, r[k - 1].hi);
            }
        }
        size_t n = (size_t)(p - num);
        if (len + n >= size || len + n > (size_t)INT32_MAX) {
            if (size)
                buf[0] = '\0';
            return -TS_EFULL;
        }
        memcpy(buf + len, num, n);
        len += n;
    }
    buf[len] = '\0';
    return (int)len;
}

/* A canonical decimal number at *p (< end): "0" or no leading zero, fits 64
 * bits. Advances *p. */
static bool parse_u64(const char **p, const char *end, uint64_t *v)
{
    const char *q = *p;
    while (q < end && *q >= '0' && *q <= '9')
        q++;
    size_t n = (size_t)(q - *p);
    if ((n > 1 && **p == '0') || !ts_decimal_u64(*p, n, v))
        return false;
    *p = q;
    return true;
}

/* Parses and checks the text; fills out[] (if not NULL) and counts the
 * ranges in *n. */
static int parse_set(const char *text, size_t len, uint64_t *contiguous, struct ts_seqrange *out,
                     size_t *n)
{
    const char *p = text, *end = text + len;
    uint64_t prev;

    *n = 0;
    if (!parse_u64(&p, end, contiguous))
        return TS_EPARSE;
    if (p == end)
        return TS_OK;
    if (*p++ != ';')
        return TS_EPARSE;
    prev = *contiguous;
    for (;;) {
        uint64_t lo, hi;
        if (!parse_u64(&p, end, &lo))
            return TS_EPARSE;
        hi = lo;
        if (p < end && *p == '-') {
            p++;
            if (!parse_u64(&p, end, &hi) || hi <= lo)
                return TS_EPARSE;
        }
        if (lo <= prev || lo - prev < 2) /* above prev + 1, without overflow */
            return TS_EPARSE;
        if (out)
            out[*n] = (struct ts_seqrange){lo, hi};
        (*n)++;
        prev = hi;
        if (p == end)
            return TS_OK;
        if (*p++ != ',')
            return TS_EPARSE;
    }
}

int ts_seqset_decode(struct ts_seqset *s, const char *text, size_t len)
{
    uint64_t contiguous;
    size_t n;
    int err = parse_set(text, len, &contiguous, NULL, &n);
    if (err)
        return err;
    if (n > s->max_ranges)
        return TS_EFULL;
    struct ts_seqrange *buf = NULL;
    if (n) {
        buf = malloc(n * sizeof *buf);
        if (!buf)
            return TS_ENOMEM;
        parse_set(text, len, &contiguous, buf, &n);
    }
    free(s->buf);
    s->contiguous = contiguous;
    s->buf = buf;
    s->off = 0;
    s->n = s->cap = n;
    return TS_OK;
}

/* ---- the table ---- */

struct ts_seqsets_entry {
    struct ts_seqset set;
    char agent[]; /* NUL-terminated copy of the id */
};

static uint64_t hash_id(const char *s) { return ts_hash_str(TS_HASH_INIT, s); }

static bool same_id(uintptr_t entry, const void *agent)
{
    return strcmp(((const struct ts_seqsets_entry *)entry)->agent, agent) == 0;
}

static struct ts_seqsets_entry *lookup(const struct ts_seqsets *t, const char *agent, uint64_t h)
{
    uintptr_t e;
    return ts_hashtab_find(&t->index, h, same_id, agent, &e) ? (struct ts_seqsets_entry *)e
                                                             : NULL;
}

static bool id_ok(const char *agent)
{
    return agent && strnlen(agent, TS_ID_MAX) < TS_ID_MAX && ts_id_ok(agent);
}

void ts_seqsets_init(struct ts_seqsets *t, size_t max_ranges)
{
    *t = (struct ts_seqsets){.max_ranges = max_ranges ? max_ranges : TS_SEQSET_MAX_RANGES};
    ts_hashtab_init(&t->index, TS_HASHTAB_MAX);
}

void ts_seqsets_free(struct ts_seqsets *t)
{
    if (!t)
        return;
    size_t cursor = 0;
    uintptr_t v;
    while (ts_hashtab_next(&t->index, &cursor, &v)) {
        struct ts_seqsets_entry *e = (struct ts_seqsets_entry *)v;
        ts_seqset_free(&e->set);
        free(e);
    }
    ts_hashtab_free(&t->index);
}

size_t ts_seqsets_count(const struct ts_seqsets *t)
{
    return ts_hashtab_count(&t->index);
}

struct ts_seqset *ts_seqsets_find(const struct ts_seqsets *t, const char *agent)
{
    if (!agent)
        return NULL;
    struct ts_seqsets_entry *e = lookup(t, agent, hash_id(agent));
    return e ? &e->set : NULL;
}

static int get(struct ts_seqsets *t, const char *agent, struct ts_seqset **set, bool *created)
{
    *set = NULL;
    *created = false;
    if (!id_ok(agent))
        return TS_EINVAL;
    uint64_t h = hash_id(agent);
    struct ts_seqsets_entry *e = lookup(t, agent, h);
    if (e) {
        *set = &e->set;
        return TS_OK;
    }
    size_t len = strlen(agent);
    e = malloc(sizeof *e + len + 1);
    if (!e)
        return TS_ENOMEM;
    int err = ts_hashtab_add(&t->index, h, (uintptr_t)e);
    if (err) {
        free(e);
        return err == TS_EFULL ? TS_ENOMEM : err; /* TS_HASHTAB_MAX agents: memory ran out first */
    }
    ts_seqset_init(&e->set, 0);
    e->set.max_ranges = t->max_ranges;
    memcpy(e->agent, agent, len + 1);
    *set = &e->set;
    *created = true;
    return TS_OK;
}

int ts_seqsets_get(struct ts_seqsets *t, const char *agent, struct ts_seqset **set)
{
    bool created;
    return get(t, agent, set, &created);
}

bool ts_seqsets_next(const struct ts_seqsets *t, size_t *cursor, const char **agent,
                     struct ts_seqset **set)
{
    uintptr_t v;
    if (!ts_hashtab_next(&t->index, cursor, &v))
        return false;
    struct ts_seqsets_entry *e = (struct ts_seqsets_entry *)v;
    *agent = e->agent;
    *set = &e->set;
    return true;
}

static int by_agent(const void *a, const void *b)
{
    const struct ts_seqsets_entry *x = *(const struct ts_seqsets_entry *const *)a;
    const struct ts_seqsets_entry *y = *(const struct ts_seqsets_entry *const *)b;
    return strcmp(x->agent, y->agent);
}

int ts_seqsets_encode(const struct ts_seqsets *t, char **text, size_t *len)
{
    struct ts_seqsets_entry **sorted = NULL;
    size_t size = 1, n = 0;

    *text = NULL;
    if (len)
        *len = 0;
    size_t count = ts_hashtab_count(&t->index), cursor = 0;
    uintptr_t v;
    if (count) {
        sorted = malloc(count * sizeof *sorted);
        if (!sorted)
            return TS_ENOMEM;
    }
    while (ts_hashtab_next(&t->index, &cursor, &v)) {
        struct ts_seqsets_entry *e = (struct ts_seqsets_entry *)v;
        sorted[n++] = e;
        size += strlen(e->agent) + 1 + ts_seqset_encode_size(&e->set) + 1;
    }
    if (n)
        qsort(sorted, n, sizeof *sorted, by_agent);
    char *out = malloc(size);
    if (!out) {
        free(sorted);
        return TS_ENOMEM;
    }
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        size_t idlen = strlen(sorted[i]->agent);
        memcpy(out + used, sorted[i]->agent, idlen);
        used += idlen;
        out[used++] = '\t';
        int w = ts_seqset_encode(&sorted[i]->set, out + used, size - used);
        assert(w >= 0); /* size was computed from ts_seqset_encode_size */
        used += (size_t)w;
        out[used++] = '\n';
    }
    out[used] = '\0';
    free(sorted);
    *text = out;
    if (len)
        *len = used;
    return TS_OK;
}

int ts_seqsets_decode(struct ts_seqsets *t, const char *text, size_t len, size_t *line)
{
    struct ts_seqsets fresh;
    const char *p = text, *end = text + len;
    size_t lineno = 0;
    int err = TS_OK;

    if (line)
        *line = 0;
    ts_seqsets_init(&fresh, t->max_ranges);
    while (p < end) {
        lineno++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *tab = nl ? memchr(p, '\t', (size_t)(nl - p)) : NULL;
        char agent[TS_ID_MAX];
        if (!tab || (size_t)(tab - p) >= sizeof agent || memchr(p, '\0', (size_t)(tab - p))) {
            err = TS_EPARSE;
            break;
        }
        memcpy(agent, p, (size_t)(tab - p));
        agent[tab - p] = '\0';
        if (!id_ok(agent)) {
            err = TS_EPARSE;
            break;
        }
        struct ts_seqset *set;
        bool created;
        err = get(&fresh, agent, &set, &created);
        if (!err && !created)
            err = TS_EPARSE; /* the same agent twice */
        if (!err)
            err = ts_seqset_decode(set, tab + 1, (size_t)(nl - tab - 1));
        if (err)
            break;
        p = nl + 1;
    }
    if (err) {
        if (line && err != TS_ENOMEM)
            *line = lineno;
        ts_seqsets_free(&fresh);
        return err;
    }
    ts_seqsets_free(t);
    *t = fresh;
    return TS_OK;
}

int ts_seqset_accept_in(struct ts_seqset *set, uint64_t merged_from, uint64_t seq,
                        bool *duplicate)
{
    *duplicate = false;
    if (seq == 0 || merged_from == 0 || merged_from > seq)
        return TS_EINVAL;
    if (ts_seqset_contains(set, seq)) {
        *duplicate = true;
        return TS_OK;
    }
    if (merged_from < seq && ts_seqset_contains_any(set, merged_from, seq - 1))
        return TS_ECONFLICT; /* a merged range over numbers already seen */
    return ts_seqset_add(set, merged_from, seq, NULL);
}

int ts_seqset_accept(struct ts_seqsets *t, const char *agent, uint64_t merged_from, uint64_t seq,
                     bool *duplicate)
{
    struct ts_seqset *set;
    bool created;

    *duplicate = false;
    if (seq == 0 || merged_from == 0 || merged_from > seq)
        return TS_EINVAL;
    int err = get(t, agent, &set, &created);
    if (err)
        return err;
    return ts_seqset_accept_in(set, merged_from, seq, duplicate);
}

bool ts_seqsets_take(struct ts_seqsets *t, const char *agent, struct ts_seqset *out)
{
    if (!id_ok(agent))
        return false;
    uint64_t h = hash_id(agent);
    struct ts_seqsets_entry *e = lookup(t, agent, h);
    if (!e)
        return false;
    ts_hashtab_remove(&t->index, h, (uintptr_t)e);
    *out = e->set;
    free(e);
    return true;
}
