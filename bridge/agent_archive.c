/* SPDX-License-Identifier: Apache-2.0 */
/* agent_archive.c - the positions of idle agents on disk (see agent_archive.h).
 *
 * A lookup goes through a sparse index held in memory: the id and offset of
 * the first line starting at or after every INDEX_EVERY bytes of the file
 * (built by the pass that checks the file at open, or by a pass over a file
 * this process has just written). The last entry whose id is not above the
 * agent sought names the only stretch of the file that can hold it, about
 * INDEX_EVERY bytes, which is read at once and compared line by line; only
 * the line found is read whole (a line buffer of max_line bytes for the rare
 * long set). A lookup, found or not (the miss is what every new agent
 * costs), is thus one or two preads, whatever the archive's size (3 to 4 us,
 * bench-memory; a bisection over the file with preads took 44); the index
 * costs about 1/80 of the file's size (an entry, 12 bytes and an id, per
 * 4 KiB, with the arrays' slack).
 *
 * A rewrite reads the old archive in order through a buffer of max_line +
 * READ_AHEAD bytes: one pread for thousands of short lines. */
#include "agent_archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "err.h"
#include "reading.h"

#define CHUNK 4096
#define INDEX_EVERY 4096      /* one index entry per this many bytes of the file */
#define SCAN 8192             /* a lookup reads this much at once */
#define READ_AHEAD 65536      /* the rewrite's reads */

struct ts_archive {
    int fd;                   /* -1: empty archive */
    struct ts_archive_ref ref;
    size_t max_line;
    char *line;               /* max_line + 1 bytes */
    char scan[SCAN];
    /* the index: entry k is the line at ix_off[k] with the id at
     * ix_ids + ix_id[k]; ix_off ascends, and so do the ids */
    uint64_t *ix_off;
    uint32_t *ix_id;
    char *ix_ids;
    size_t ix_n, ix_cap, ix_ids_len, ix_ids_cap;
};

size_t ts_archive_max_line(size_t max_ranges)
{
    /* id, tab, contiguous, ';', then per range "lo-hi," with 20 digits each */
    return TS_ID_MAX + 1 + 20 + 1 + max_ranges * (20 + 1 + 20 + 1) + 1;
}

int ts_archive_name(uint64_t gen, const char *tag, char *name, size_t size)
{
    int n = snprintf(name, size, "agents-%012" PRIu64 "-%s.txt", gen, tag);
    return n > 0 && (size_t)n < size && (size_t)n < TS_ARCHIVE_NAME_MAX && ts_id_ok(tag)
               ? TS_OK : TS_EINVAL;
}

/* Reads exactly len bytes at off (short only at the end of the file). */
static ssize_t read_at(int fd, char *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* "id<TAB>..." at the start of p (len bytes): the id's length, or 0 if the
 * bytes do not start with a valid id followed by a tab. */
static size_t id_len(const char *p, size_t len)
{
    const char *tab = memchr(p, '\t', len < TS_ID_MAX ? len : TS_ID_MAX);
    if (!tab || tab == p)
        return 0;
    char id[TS_ID_MAX];
    memcpy(id, p, (size_t)(tab - p));
    id[tab - p] = '\0';
    return ts_id_ok(id) ? (size_t)(tab - p) : 0;
}

/* Notes the line at off with id (il bytes) in the index if it is the first
 * line at least INDEX_EVERY bytes past the last entry. TS_OK or TS_ENOMEM. */
static int index_line(struct ts_archive *a, uint64_t off, const char *id, size_t il)
{
    if (a->ix_n && off < a->ix_off[a->ix_n - 1] + INDEX_EVERY)
        return TS_OK;
    if (a->ix_n == a->ix_cap) {
        size_t cap = a->ix_cap ? a->ix_cap * 2 : 16;
        uint64_t *o = realloc(a->ix_off, cap * sizeof *o);
        if (!o)
            return TS_ENOMEM;
        a->ix_off = o;
        uint32_t *i = realloc(a->ix_id, cap * sizeof *i);
        if (!i)
            return TS_ENOMEM;
        a->ix_id = i;
        a->ix_cap = cap;
    }
    if (a->ix_ids_len + il + 1 > a->ix_ids_cap) {
        size_t cap = a->ix_ids_cap ? a->ix_ids_cap * 2 : 1024;
        while (cap < a->ix_ids_len + il + 1)
            cap *= 2;
        if (cap > UINT32_MAX)
            return TS_ENOMEM;
        char *ids = realloc(a->ix_ids, cap);
        if (!ids)
            return TS_ENOMEM;
        a->ix_ids = ids;
        a->ix_ids_cap = cap;
    }
    a->ix_off[a->ix_n] = off;
    a->ix_id[a->ix_n] = (uint32_t)a->ix_ids_len;
    memcpy(a->ix_ids + a->ix_ids_len, id, il);
    a->ix_ids[a->ix_ids_len + il] = '\0';
    a->ix_ids_len += il + 1;
    a->ix_n++;
    return TS_OK;
}

/* ---- open: check size, crc and form ---- */

/* A new archive of ref with no file yet (fd -1) and its line buffer; NULL:
 * out of memory. */
static struct ts_archive *archive_new(const struct ts_archive_ref *ref, size_t max_line)
{
    struct ts_archive *a = calloc(1, sizeof *a);
    if (!a || !(a->line = malloc(max_line + 1))) {
        free(a);
        return NULL;
    }
    a->fd = -1;
    a->ref = *ref;
    a->max_line = max_line;
    return a;
}

int ts_archive_open(int dirfd, const struct ts_archive_ref *ref, size_t max_line,
                    struct ts_archive **out, char *why, size_t why_size)
{
    *out = NULL;
    struct ts_archive *a = archive_new(ref, max_line);
    if (!a)
        return TS_ENOMEM;
    if (!ref->name[0]) {
        a->ref.size = a->ref.agents = 0;
        a->ref.crc = 0;
        *out = a;
        return TS_OK;
    }
    int rc = TS_OK;
    struct stat st;
    a->fd = openat(dirfd, ref->name, O_RDONLY | O_CLOEXEC);
    if (a->fd < 0 || fstat(a->fd, &st) != 0) {
        ts_why(why, why_size, "archive %s: %s", ref->name, strerror(errno));
        ts_archive_close(a);
        return TS_ESYS;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != ref->size) {
        ts_why(why, why_size, "archive %s: %lld bytes, the checkpoint says %" PRIu64,
               ref->name, (long long)st.st_size, ref->size);
        ts_archive_close(a);
        return TS_EPARSE;
    }
    /* one pass: crc, ascending ids, line lengths, sets that decode */
    uLong crc = crc32_z(0, Z_NULL, 0);
    char prev[TS_ID_MAX] = "";
    uint64_t off = 0, lines = 0, line_off = 0;
    size_t have = 0;             /* bytes of the current line in a->line */
    char chunk[CHUNK];
    struct ts_seqset scratch;
    ts_seqset_init(&scratch, 0);
    ts_seqset_set_max_ranges(&scratch, SIZE_MAX);
    while (rc == TS_OK && off < ref->size) {
        ssize_t n = read_at(a->fd, chunk, sizeof chunk, off);
        if (n <= 0) {
            ts_why(why, why_size, "archive %s: %s", ref->name, n < 0 ? strerror(errno) : "short");
            rc = n < 0 ? TS_ESYS : TS_EPARSE;
            break;
        }
        crc = crc32_z(crc, (const Bytef *)chunk, (size_t)n);
        off += (uint64_t)n;
        for (ssize_t i = 0; i < n && rc == TS_OK; i++) {
            if (have == max_line) {
                ts_why(why, why_size, "archive %s: line %" PRIu64 " longer than %zu bytes",
                       ref->name, lines + 1, max_line);
                rc = TS_EPARSE;
                break;
            }
            a->line[have++] = chunk[i];
            if (chunk[i] != '\n')
                continue;
            size_t il = id_len(a->line, have);
            char id[TS_ID_MAX];
            lines++;
            if (il) {
                memcpy(id, a->line, il);
                id[il] = '\0';
            }
            if (!il || (lines > 1 && strcmp(prev, id) >= 0) ||
                ts_seqset_decode(&scratch, a->line + il + 1, have - il - 2) != TS_OK) {
                ts_why(why, why_size, "archive %s: line %" PRIu64 " is not a set in order",
                       ref->name, lines);
                rc = TS_EPARSE;
                break;
            }
            if (index_line(a, line_off, id, il) != TS_OK) {
                rc = TS_ENOMEM;
                break;
            }
            memcpy(prev, id, il + 1);
            line_off += have;
            have = 0;
        }
    }
    ts_seqset_free(&scratch);
    if (rc == TS_OK && have) {
        ts_why(why, why_size, "archive %s: the last line has no newline", ref->name);
        rc = TS_EPARSE;
    }
    if (rc == TS_OK && (crc != ref->crc || lines != ref->agents)) {
        ts_why(why, why_size, "archive %s: crc %08lx and %" PRIu64 " agents, the checkpoint says "
               "%08" PRIx32 " and %" PRIu64, ref->name, crc, lines, ref->crc, ref->agents);
        rc = TS_EPARSE;
    }
    if (rc != TS_OK) {
        ts_archive_close(a);
        return rc;
    }
    *out = a;
    return TS_OK;
}

/* A reader of the lines of an archive, in order, through a buffer of
 * max_line + READ_AHEAD bytes refilled with pread (one read for many short
 * lines, however long a line may be). */
struct lines {
    const struct ts_archive *a;
    uint64_t pos;             /* file offset of the next byte to read into buf */
    char *buf;
    size_t cap, start, end;   /* unread bytes: buf[start .. end) */
    const char *line;         /* the current line (with its newline); len 0 at the end */
    size_t len;
    uint64_t line_off;        /* its offset in the file */
    char id[TS_ID_MAX];
};

static int lines_next(struct lines *r)
{
    r->len = 0;
    if (!r->a || r->a->fd < 0)
        return TS_OK;
    for (;;) {
        char *p = r->buf + r->start, *nl = memchr(p, '\n', r->end - r->start);
        if (nl) {
            size_t il = id_len(p, (size_t)(nl - p));
            if (!il)
                return TS_EPARSE;
            char prev[TS_ID_MAX];
            memcpy(prev, r->id, sizeof prev);
            memcpy(r->id, p, il);
            r->id[il] = '\0';
            if (prev[0] && strcmp(prev, r->id) >= 0)
                return TS_EPARSE;
            r->line = p;
            r->len = (size_t)(nl - p) + 1;
            r->line_off = r->pos - r->end + (uint64_t)(p - r->buf);
            r->start += r->len;
            return TS_OK;
        }
        if (r->end - r->start >= r->a->max_line)
            return TS_EPARSE;  /* a line longer than any set */
        if (r->pos >= r->a->ref.size)
            return r->end > r->start ? TS_EPARSE : TS_OK;  /* the end (no newline?) */
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
        uint64_t left = r->a->ref.size - r->pos;
        size_t room = r->cap - r->end;
        ssize_t n = read_at(r->a->fd, r->buf + r->end, left < room ? (size_t)left : room, r->pos);
        if (n < 0)
            return TS_ESYS;
        if (n == 0)
            return TS_EPARSE;  /* shorter than its size: changed under us */
        r->end += (size_t)n;
        r->pos += (uint64_t)n;
    }
}

int ts_archive_adopt(int dirfd, const struct ts_archive_ref *ref, size_t max_line,
                     struct ts_archive **out)
{
    *out = NULL;
    struct ts_archive *a = archive_new(ref, max_line);
    if (!a)
        return TS_ENOMEM;
    if (ref->name[0]) {
        struct stat st;
        a->fd = openat(dirfd, ref->name, O_RDONLY | O_CLOEXEC);
        if (a->fd < 0 || fstat(a->fd, &st) != 0) {
            ts_archive_close(a);
            return TS_ESYS;
        }
        if ((uint64_t)st.st_size != ref->size) {
            ts_archive_close(a);
            return TS_EPARSE;
        }
        /* one pass in order for the index (the ids are checked on the way) */
        struct lines r = {.a = a, .cap = max_line + READ_AHEAD};
        int rc = (r.buf = malloc(r.cap)) ? lines_next(&r) : TS_ENOMEM;
        while (rc == TS_OK && r.len) {
            rc = index_line(a, r.line_off, r.id, strlen(r.id));
            if (rc == TS_OK)
                rc = lines_next(&r);
        }
        free(r.buf);
        if (rc != TS_OK) {
            ts_archive_close(a);
            return rc;
        }
    }
    *out = a;
    return TS_OK;
}

const struct ts_archive_ref *ts_archive_ref(const struct ts_archive *a)
{
    return &a->ref;
}

/* ---- lookup ---- */

/* The first line start after off, for a line longer than a read. */
static int next_line(struct ts_archive *a, uint64_t off, uint64_t *start)
{
    uint64_t pos = off, limit = off + a->max_line;
    char chunk[CHUNK];
    while (pos < a->ref.size && pos < limit) {
        ssize_t n = read_at(a->fd, chunk, sizeof chunk, pos);
        if (n < 0)
            return TS_ESYS;
        if (n == 0)
            break;
        char *nl = memchr(chunk, '\n', (size_t)n);
        if (nl) {
            *start = pos + (uint64_t)(nl - chunk) + 1;
            return TS_OK;
        }
        pos += (uint64_t)n;
    }
    return TS_EPARSE;         /* no newline within max_line: changed under us */
}

/* The line at s whose id is il bytes long: its set into *set. */
static int read_line(struct ts_archive *a, uint64_t s, size_t il, struct ts_seqset *set)
{
    uint64_t left = a->ref.size - s;
    size_t want = left < CHUNK ? (size_t)left : CHUNK;
    ssize_t n = read_at(a->fd, a->line, want, s);
    if (n < 0)
        return TS_ESYS;
    char *nl = memchr(a->line, '\n', (size_t)n);
    if (!nl && (size_t)n == CHUNK) {    /* a long set: the whole line */
        want = left < a->max_line ? (size_t)left : a->max_line;
        if ((n = read_at(a->fd, a->line, want, s)) < 0)
            return TS_ESYS;
        nl = memchr(a->line, '\n', (size_t)n);
    }
    if (!nl || (size_t)(nl - a->line) < il + 1)
        return TS_EPARSE;
    return ts_seqset_decode(set, a->line + il + 1, (size_t)(nl - a->line) - il - 1);
}

int ts_archive_find(struct ts_archive *a, const char *agent, struct ts_seqset *set)
{
    if (a->fd < 0 || !a->ix_n || strlen(agent) >= TS_ID_MAX)
        return TS_ENOTFOUND;
    /* the last entry whose id is not above agent */
    size_t lo = 0, hi = a->ix_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(a->ix_ids + a->ix_id[mid], agent) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return TS_ENOTFOUND;  /* below the first id */
    uint64_t pos = a->ix_off[lo - 1], to = lo < a->ix_n ? a->ix_off[lo] : a->ref.size;
    /* the lines starting in [pos, to), in order */
    while (pos < to) {
        uint64_t left = a->ref.size - pos;
        ssize_t n = read_at(a->fd, a->scan, left < SCAN ? (size_t)left : SCAN, pos);
        if (n <= 0)
            return n < 0 ? TS_ESYS : TS_EPARSE;
        const char *p = a->scan, *end = a->scan + n;
        uint64_t next = pos;  /* where the next read starts */
        while (p < end) {
            uint64_t at = pos + (uint64_t)(p - a->scan);
            next = at;
            if (at >= to)
                return TS_ENOTFOUND;
            /* the id up to its tab (checked when the file was opened) */
            size_t rest = (size_t)(end - p);
            const char *tab = memchr(p, '\t', rest < TS_ID_MAX ? rest : TS_ID_MAX);
            size_t il = tab ? (size_t)(tab - p) : 0;
            if (!il) {
                if (p == a->scan || (size_t)(end - p) > TS_ID_MAX)
                    return TS_EPARSE;
                break;        /* the id runs past this read: read again from here */
            }
            int cmp = strncmp(p, agent, il);
            if (cmp == 0 && agent[il] != '\0')
                cmp = -1;     /* p's id is a prefix of agent: it sorts first */
            if (cmp == 0)
                return read_line(a, at, il, set);
            if (cmp > 0)
                return TS_ENOTFOUND;
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) {        /* a line longer than the read */
                int rc = next_line(a, at, &next);
                if (rc != TS_OK)
                    return rc;
                break;
            }
            p = nl + 1;
            next = pos + (uint64_t)(p - a->scan);
        }
        if (next <= pos)
            return TS_EPARSE; /* no progress: cannot happen with a sound file */
        pos = next;
    }
    return TS_ENOTFOUND;
}

/* ---- writing ---- */

struct out {
    FILE *f;
    uLong crc;
    uint64_t size, lines;
};

static int put(struct out *o, const char *line, size_t len)
{
    if (fwrite(line, 1, len, o->f) != len)
        return TS_ESYS;
    o->crc = crc32_z(o->crc, (const Bytef *)line, len);
    o->size += len;
    o->lines++;
    return TS_OK;
}

/* Flushes, syncs (when it holds a line) and closes o's file: rc, or TS_ESYS
 * if rc was TS_OK and one of them failed. The caller renames or removes. */
static int out_close(struct out *o, int rc)
{
    if (fflush(o->f) != 0 || (o->lines && fsync(fileno(o->f)) != 0))
        rc = rc ? rc : TS_ESYS;
    if (fclose(o->f) != 0)
        rc = rc ? rc : TS_ESYS;
    return rc;
}

/* The reference of the file o wrote under name (none when it is empty). */
static void out_ref(const struct out *o, const char *name, struct ts_archive_ref *ref)
{
    if (o->lines) {
        snprintf(ref->name, sizeof ref->name, "%s", name);
        ref->size = o->size;
        ref->crc = (uint32_t)o->crc;
        ref->agents = o->lines;
    }
}

int ts_archive_write(const struct ts_archive *old, int dirfd, const char *name, const char *add,
                     size_t add_len, bool (*keep_out)(const char *agent, void *ctx), void *ctx,
                     struct ts_archive_ref *ref)
{
    char tmp[TS_ARCHIVE_NAME_MAX + 8];
    struct lines r = {.a = old};
    struct out o = {.crc = crc32_z(0, Z_NULL, 0)};
    const char *p = add, *end = add + add_len;
    char add_id[TS_ID_MAX] = "", last_add[TS_ID_MAX] = "";
    int rc = TS_OK;

    memset(ref, 0, sizeof *ref);
    if (strlen(name) >= sizeof ref->name || strchr(name, '/'))
        return TS_EINVAL;
    snprintf(tmp, sizeof tmp, ".%s.tmp", name);
    if (old && old->fd >= 0) {
        r.cap = old->max_line + READ_AHEAD;
        if (!(r.buf = malloc(r.cap)))
            return TS_ENOMEM;
    }
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || !(o.f = fdopen(fd, "w"))) {
        if (fd >= 0)
            close(fd);
        free(r.buf);
        return TS_ESYS;
    }
    setvbuf(o.f, NULL, _IOFBF, 1 << 16);
    rc = lines_next(&r);
    const char *nl = NULL;
    size_t al = 0;
    /* the next line of add: [p, nl] with its id in add_id; p == end: none */
    for (bool need_add = true, done = false; rc == TS_OK && !done;) {
        if (need_add) {
            need_add = false;
            add_id[0] = '\0';
            if (p < end) {
                nl = memchr(p, '\n', (size_t)(end - p));
                al = nl ? id_len(p, (size_t)(nl - p)) : 0;
                if (!al) {
                    rc = TS_EPARSE;
                    break;
                }
                memcpy(add_id, p, al);
                add_id[al] = '\0';
                if (last_add[0] && strcmp(last_add, add_id) >= 0) {
                    rc = TS_EPARSE;
                    break;
                }
                memcpy(last_add, add_id, sizeof last_add);
            }
        }
        bool have_old = r.len > 0, have_add = add_id[0] != '\0';
        if (!have_old && !have_add) {
            done = true;
        } else if (have_old && (!have_add || strcmp(r.id, add_id) < 0)) {
            if (!keep_out || !keep_out(r.id, ctx))
                rc = put(&o, r.line, r.len);
            if (rc == TS_OK)
                rc = lines_next(&r);
        } else {
            if (have_old && strcmp(r.id, add_id) == 0)
                rc = lines_next(&r); /* the newer line replaces it */
            if (rc == TS_OK)
                rc = put(&o, p, (size_t)(nl - p) + 1);
            p = nl + 1;
            need_add = true;
        }
    }
    free(r.buf);
    int saved = errno;
    rc = out_close(&o, rc);
    if (rc == TS_OK && o.lines) {
        if (renameat(dirfd, tmp, dirfd, name) != 0 || fsync(dirfd) != 0)
            rc = TS_ESYS;
    }
    if (rc != TS_OK || !o.lines) {
        saved = errno;
        unlinkat(dirfd, tmp, 0);
        if (rc != TS_OK)
            unlinkat(dirfd, name, 0);
        errno = saved;
    }
    if (rc == TS_OK)
        out_ref(&o, name, ref);
    return rc;
}

/* ---- streaming: scan and merge (the repartition tool, repartition.h) ---- */

int ts_archive_scan(const struct ts_archive *a,
                    int (*visit)(const char *agent, const char *set, size_t set_len, void *ctx),
                    void *ctx)
{
    struct lines r = {.a = a};
    int rc;

    if (!a || a->fd < 0)
        return TS_OK;
    r.cap = a->max_line + READ_AHEAD;
    if (!(r.buf = malloc(r.cap)))
        return TS_ENOMEM;
    while ((rc = lines_next(&r)) == TS_OK && r.len) {
        size_t il = strlen(r.id); /* the line is "id<TAB>set\n" */
        if ((rc = visit(r.id, r.line + il + 1, r.len - il - 2, ctx)) != TS_OK)
            break;
    }
    free(r.buf);
    return rc;
}

/* The next line of r that keep accepts (r->len 0: none left). */
static int lines_next_kept(struct lines *r, bool (*keep)(const char *agent, void *ctx), void *ctx)
{
    int rc;
    while ((rc = lines_next(r)) == TS_OK && r->len && keep && !keep(r->id, ctx))
        ;
    return rc;
}

int ts_archive_merge(const struct ts_archive *a, bool (*keep_a)(const char *agent, void *ctx),
                     void *ctx_a, const struct ts_archive *b,
                     bool (*keep_b)(const char *agent, void *ctx), void *ctx_b, int dirfd,
                     const char *name, struct ts_archive_ref *ref)
{
    char tmp[TS_ARCHIVE_NAME_MAX + 8];
    struct lines ra = {.a = a}, rb = {.a = b};
    struct out o = {.crc = crc32_z(0, Z_NULL, 0)};
    int rc = TS_OK, fd;
    bool renamed = false;

    memset(ref, 0, sizeof *ref);
    if (!name[0] || name[0] == '.' || strlen(name) >= sizeof ref->name || strchr(name, '/'))
        return TS_EINVAL;
    ra.cap = a ? a->max_line + READ_AHEAD : 0;
    rb.cap = b ? b->max_line + READ_AHEAD : 0;
    if ((a && a->fd >= 0 && !(ra.buf = malloc(ra.cap))) ||
        (b && b->fd >= 0 && !(rb.buf = malloc(rb.cap)))) {
        free(ra.buf);
        return TS_ENOMEM;
    }
    snprintf(tmp, sizeof tmp, ".%s.tmp", name);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || !(o.f = fdopen(fd, "w"))) {
        int saved = errno;
        if (fd >= 0) {
            close(fd);
            unlinkat(dirfd, tmp, 0);
        }
        free(ra.buf);
        free(rb.buf);
        errno = saved;
        return TS_ESYS;
    }
    setvbuf(o.f, NULL, _IOFBF, 1 << 16);
    rc = lines_next_kept(&ra, keep_a, ctx_a);
    if (rc == TS_OK)
        rc = lines_next_kept(&rb, keep_b, ctx_b);
    while (rc == TS_OK && (ra.len || rb.len)) {
        int cmp = !ra.len ? 1 : !rb.len ? -1 : strcmp(ra.id, rb.id);
        if (cmp == 0) {
            rc = TS_ECONFLICT; /* one agent on both sides: which one is the truth? */
            break;
        }
        if (cmp < 0) {
            if ((rc = put(&o, ra.line, ra.len)) == TS_OK)
                rc = lines_next_kept(&ra, keep_a, ctx_a);
        } else {
            if ((rc = put(&o, rb.line, rb.len)) == TS_OK)
                rc = lines_next_kept(&rb, keep_b, ctx_b);
        }
    }
    free(ra.buf);
    free(rb.buf);
    rc = out_close(&o, rc);
    if (rc == TS_OK && o.lines) {
        if (renameat(dirfd, tmp, dirfd, name) != 0) {
            rc = TS_ESYS;
        } else {
            renamed = true;
            if (fsync(dirfd) != 0)
                rc = TS_ESYS;
        }
    }
    if (rc != TS_OK || !o.lines) {
        int saved = errno;
        unlinkat(dirfd, tmp, 0);
        if (rc != TS_OK && renamed)
            unlinkat(dirfd, name, 0);
        errno = saved;
    }
    if (rc == TS_OK)
        out_ref(&o, name, ref);
    return rc;
}

/* "agents-<12 digits>-..." (a final name, or a temporary "." + it): the
 * generation. */
static bool archive_gen(const char *name, uint64_t *gen)
{
    if (name[0] == '.')
        name++;
    if (strncmp(name, "agents-", 7) != 0)
        return false;
    uint64_t g = 0;
    for (int i = 7; i < 19; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        g = g * 10 + (uint64_t)(name[i] - '0');
    }
    if (name[19] != '-')
        return false;
    *gen = g;
    return true;
}

uint64_t ts_archive_generation(const struct ts_archive *a)
{
    uint64_t gen = 0;
    return a && a->ref.name[0] && archive_gen(a->ref.name, &gen) ? gen : 0;
}

bool ts_archive_prunable(const char *name, uint64_t upto, const char *keep)
{
    uint64_t gen;
    return archive_gen(name, &gen) && gen <= upto && !(keep && keep[0] && !strcmp(name, keep));
}

unsigned ts_archive_prune(int dirfd, uint64_t upto, const char *keep)
{
    unsigned removed = 0;
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    rewinddir(d);
    while ((e = readdir(d))) {
        if (!ts_archive_prunable(e->d_name, upto, keep))
            continue;
        if (unlinkat(dirfd, e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

void ts_archive_close(struct ts_archive *a)
{
    if (!a)
        return;
    if (a->fd >= 0)
        close(a->fd);
    free(a->line);
    free(a->ix_off);
    free(a->ix_id);
    free(a->ix_ids);
    free(a);
}
