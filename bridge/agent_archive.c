/* agent_archive.c - the positions of idle agents on disk (see agent_archive.h).
 *
 * The lookup is a binary search over byte offsets that keeps one invariant:
 * the line sought, if present, starts in [lo, hi). Each step finds the first
 * line start at or after the middle (the byte after a '\n'), reads only that
 * line's id, and moves lo past it or hi down to it; only the line found is
 * read whole. Reads go through a small chunk (most lines are tens of bytes)
 * and a line buffer of max_line bytes for the rare long set. */
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

struct ts_archive {
    int fd;                   /* -1: empty archive */
    struct ts_archive_ref ref;
    size_t max_line;
    char *line;               /* max_line + 1 bytes */
};

static void set_why(char *why, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t size, const char *fmt, ...)
{
    if (!why || !size)
        return;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
    errno = saved;
}

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

/* ---- open: check size, crc and form ---- */

int ts_archive_open(int dirfd, const struct ts_archive_ref *ref, size_t max_line,
                    struct ts_archive **out, char *why, size_t why_size)
{
    *out = NULL;
    struct ts_archive *a = calloc(1, sizeof *a);
    if (!a || !(a->line = malloc(max_line + 1))) {
        free(a);
        return TS_ENOMEM;
    }
    a->fd = -1;
    a->ref = *ref;
    a->max_line = max_line;
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
        set_why(why, why_size, "archive %s: %s", ref->name, strerror(errno));
        ts_archive_close(a);
        return TS_ESYS;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != ref->size) {
        set_why(why, why_size, "archive %s: %lld bytes, the checkpoint says %" PRIu64,
                ref->name, (long long)st.st_size, ref->size);
        ts_archive_close(a);
        return TS_EPARSE;
    }
    /* one pass: crc, ascending ids, line lengths, sets that decode */
    uLong crc = crc32_z(0, Z_NULL, 0);
    char prev[TS_ID_MAX] = "";
    uint64_t off = 0, lines = 0;
    size_t have = 0;             /* bytes of the current line in a->line */
    char chunk[CHUNK];
    struct ts_seqset scratch;
    ts_seqset_init(&scratch, 0);
    ts_seqset_set_max_ranges(&scratch, SIZE_MAX);
    while (rc == TS_OK && off < ref->size) {
        ssize_t n = read_at(a->fd, chunk, sizeof chunk, off);
        if (n <= 0) {
            set_why(why, why_size, "archive %s: %s", ref->name, n < 0 ? strerror(errno) : "short");
            rc = n < 0 ? TS_ESYS : TS_EPARSE;
            break;
        }
        crc = crc32_z(crc, (const Bytef *)chunk, (size_t)n);
        off += (uint64_t)n;
        for (ssize_t i = 0; i < n && rc == TS_OK; i++) {
            if (have == max_line) {
                set_why(why, why_size, "archive %s: line %" PRIu64 " longer than %zu bytes",
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
                set_why(why, why_size, "archive %s: line %" PRIu64 " is not a set in order",
                        ref->name, lines);
                rc = TS_EPARSE;
                break;
            }
            memcpy(prev, id, il + 1);
            have = 0;
        }
    }
    ts_seqset_free(&scratch);
    if (rc == TS_OK && have) {
        set_why(why, why_size, "archive %s: the last line has no newline", ref->name);
        rc = TS_EPARSE;
    }
    if (rc == TS_OK && (crc != ref->crc || lines != ref->agents)) {
        set_why(why, why_size, "archive %s: crc %08lx and %" PRIu64 " agents, the checkpoint says "
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

int ts_archive_adopt(int dirfd, const struct ts_archive_ref *ref, size_t max_line,
                     struct ts_archive **out)
{
    *out = NULL;
    struct ts_archive *a = calloc(1, sizeof *a);
    if (!a || !(a->line = malloc(max_line + 1))) {
        free(a);
        return TS_ENOMEM;
    }
    a->fd = -1;
    a->ref = *ref;
    a->max_line = max_line;
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
    }
    *out = a;
    return TS_OK;
}

const struct ts_archive_ref *ts_archive_ref(const struct ts_archive *a)
{
    return &a->ref;
}

/* ---- lookup ---- */

/* The first line start at or after off (off itself if it starts a line). */
static int line_start(struct ts_archive *a, uint64_t off, uint64_t *start)
{
    if (off == 0) {
        *start = 0;
        return TS_OK;
    }
    uint64_t pos = off - 1, limit = off - 1 + a->max_line;
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
    if (pos >= a->ref.size) {
        *start = a->ref.size;
        return TS_OK;
    }
    return TS_EPARSE;
}

int ts_archive_find(struct ts_archive *a, const char *agent, struct ts_seqset *set)
{
    uint64_t lo = 0, hi = a->ref.size;
    char head[TS_ID_MAX + 1];

    if (a->fd < 0)
        return TS_ENOTFOUND;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, s;
        int rc = line_start(a, mid, &s);
        if (rc != TS_OK)
            return rc;
        if (s >= hi) {
            hi = mid;
            continue;
        }
        ssize_t n = read_at(a->fd, head, sizeof head, s);
        if (n < 0)
            return TS_ESYS;
        size_t il = id_len(head, (size_t)n);
        if (!il)
            return TS_EPARSE;
        head[il] = '\0';
        int cmp = strcmp(head, agent);
        if (cmp < 0) {
            lo = s + 1;
        } else if (cmp > 0) {
            hi = s;
        } else {
            /* the whole line, then its set */
            size_t want = a->ref.size - s < a->max_line ? (size_t)(a->ref.size - s) : a->max_line;
            n = read_at(a->fd, a->line, want, s);
            if (n < 0)
                return TS_ESYS;
            char *nl = memchr(a->line, '\n', (size_t)n);
            if (!nl)
                return TS_EPARSE;
            return ts_seqset_decode(set, a->line + il + 1, (size_t)(nl - a->line) - il - 1);
        }
    }
    return TS_ENOTFOUND;
}

/* ---- writing ---- */

/* A reader of the lines of an archive, in order, with pread. */
struct lines {
    const struct ts_archive *a;
    uint64_t off;
    char *buf;                /* max_line + 1 */
    size_t len;               /* the current line (with its newline); 0 at the end */
    char id[TS_ID_MAX];
};

static int lines_next(struct lines *r)
{
    r->len = 0;
    if (!r->a || r->a->fd < 0 || r->off >= r->a->ref.size)
        return TS_OK;
    size_t want = r->a->ref.size - r->off < r->a->max_line ? (size_t)(r->a->ref.size - r->off)
                                                            : r->a->max_line;
    ssize_t n = read_at(r->a->fd, r->buf, want, r->off);
    if (n < 0)
        return TS_ESYS;
    char *nl = memchr(r->buf, '\n', (size_t)n);
    size_t il = nl ? id_len(r->buf, (size_t)(nl - r->buf)) : 0;
    if (!il)
        return TS_EPARSE;
    char prev[TS_ID_MAX];
    memcpy(prev, r->id, sizeof prev);
    memcpy(r->id, r->buf, il);
    r->id[il] = '\0';
    if (prev[0] && strcmp(prev, r->id) >= 0)
        return TS_EPARSE;
    r->len = (size_t)(nl - r->buf) + 1;
    r->off += r->len;
    return TS_OK;
}

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
    if (old && old->fd >= 0 && !(r.buf = malloc(old->max_line + 1)))
        return TS_ENOMEM;
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
                rc = put(&o, r.buf, r.len);
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
    if (fflush(o.f) != 0 || (o.lines && fsync(fileno(o.f)) != 0))
        rc = rc ? rc : TS_ESYS;
    if (fclose(o.f) != 0)
        rc = rc ? rc : TS_ESYS;
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
    if (rc != TS_OK)
        return rc;
    if (o.lines) {
        snprintf(ref->name, sizeof ref->name, "%s", name);
        ref->size = o.size;
        ref->crc = (uint32_t)o.crc;
        ref->agents = o.lines;
    }
    return TS_OK;
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
    if (!(r.buf = malloc(a->max_line + 1)))
        return TS_ENOMEM;
    while ((rc = lines_next(&r)) == TS_OK && r.len) {
        size_t il = strlen(r.id); /* the line is "id<TAB>set\n" */
        if ((rc = visit(r.id, r.buf + il + 1, r.len - il - 2, ctx)) != TS_OK)
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
    if ((a && a->fd >= 0 && !(ra.buf = malloc(a->max_line + 1))) ||
        (b && b->fd >= 0 && !(rb.buf = malloc(b->max_line + 1)))) {
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
            if ((rc = put(&o, ra.buf, ra.len)) == TS_OK)
                rc = lines_next_kept(&ra, keep_a, ctx_a);
        } else {
            if ((rc = put(&o, rb.buf, rb.len)) == TS_OK)
                rc = lines_next_kept(&rb, keep_b, ctx_b);
        }
    }
    free(ra.buf);
    free(rb.buf);
    if (fflush(o.f) != 0 || (o.lines && fsync(fileno(o.f)) != 0))
        rc = rc ? rc : TS_ESYS;
    if (fclose(o.f) != 0)
        rc = rc ? rc : TS_ESYS;
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
    if (rc != TS_OK)
        return rc;
    if (o.lines) {
        snprintf(ref->name, sizeof ref->name, "%s", name);
        ref->size = o.size;
        ref->crc = (uint32_t)o.crc;
        ref->agents = o.lines;
    }
    return TS_OK;
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

unsigned ts_archive_prune(int dirfd, uint64_t upto, const char *keep)
{
    unsigned removed = 0;
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    uint64_t gen;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    rewinddir(d);
    while ((e = readdir(d))) {
        if (!archive_gen(e->d_name, &gen) || gen > upto)
            continue;
        if (keep && keep[0] && !strcmp(e->d_name, keep))
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
    free(a);
}
