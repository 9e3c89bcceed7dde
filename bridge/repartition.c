/* SPDX-License-Identifier: Apache-2.0 */
/* repartition.c - moving the agents to a larger layout (see repartition.h;
 * docs/bridge.md, "Adding partitions", has the procedure and why each step
 * comes where it does). */
#include "repartition.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "agent_archive.h"
#include "agent_table.h"
#include "err.h"
#include "kafka_conf.h"
#include "lake.h"
#include "lake_s3.h"
#include "lake_store.h"
#include "layout.h"
#include "log.h"
#include "now.h"
#include "partition_state.h"
#include "reading.h"
#include "seqset.h"

#define KAFKA_TIMEOUT_MS 10000  /* one metadata, offsets or group request */
#define GROUP_GRACE_MS 3000     /* beyond session_timeout_ms, for a stopped member to expire */
#define GROUP_POLL_MS 1000
#define NAMED_MAX 8             /* partitions or members named in one message */
#define OWNER "repartition"     /* the checkpoints' owner */

/* ---- pure parts --------------------------------------------------------- */

enum ts_repartition_fate ts_repartition_fate(const char *agent, int32_t p, int32_t n, int32_t m,
                                             int32_t *target)
{
    size_t len = strlen(agent);
    *target = ts_layout_partition(agent, len, m);
    if (ts_layout_partition(agent, len, n) != p)
        return TS_REPARTITION_STALE;
    return *target == p ? TS_REPARTITION_STAYS : TS_REPARTITION_MOVES;
}

static int32_t gcd(int32_t a, int32_t b)
{
    while (b) {
        int32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

size_t ts_repartition_sources(int32_t n, int32_t m, int32_t q, int32_t *out, size_t max)
{
    size_t k = 0;
    if (n < 1 || m < 1 || q < 0)
        return 0;
    int32_t g = gcd(n, m);
    for (int32_t p = q % g; p < n; p += g) {
        if (p == q)
            continue;
        if (k < max)
            out[k] = p;
        k++;
    }
    return k;
}

/* The closed-window records of several windows, being united. */
struct closed_rec {
    bool sized, has_event, has_frontier;
    int64_t size_ms, slide_ms, max_event, frontier;
    int64_t *closed;
    size_t n, cap;
};

static bool parse_i64(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *v = x;
    return true;
}

/* Adds w's record (docs/windows.md, "Saving the state": its encoded form). */
static int rec_add(struct closed_rec *c, const struct ts_window_agg *w, char *why, size_t why_size)
{
    struct ts_window_stats st;
    char *text, *save = NULL;
    size_t len;
    int rc = TS_OK;

    ts_window_stats(w, &st);
    if (st.open_groups || st.late_groups)
        return ts_fail(why, why_size, TS_EINVAL, "windows with %zu open and %zu late groups: "
                       "not flushed", st.open_groups, st.late_groups);
    if (ts_window_encode(w, &text, &len) != TS_OK)
        return TS_ENOMEM;
    for (char *line = strtok_r(text, "\n", &save); line && rc == TS_OK;
         line = strtok_r(NULL, "\n", &save)) {
        int64_t v = 0;
        char *arg = strchr(line, ' ');
        if (arg)
            *arg++ = '\0';
        bool none = arg && !strcmp(arg, "none");
        if (!strcmp(line, "ts-window-state") || !strcmp(line, "end")) {
            continue;
        } else if (!arg || (!none && !parse_i64(arg, &v))) {
            rc = TS_EINVAL;
        } else if (!strcmp(line, "size_ms") || !strcmp(line, "slide_ms")) {
            int64_t *f = line[1] == 'i' ? &c->size_ms : &c->slide_ms;
            if (none || (c->sized && *f != v))
                rc = TS_EINVAL;
            *f = v;
        } else if (!strcmp(line, "max_event_ms")) {
            if (!none && (!c->has_event || v > c->max_event))
                c->max_event = v, c->has_event = true;
        } else if (!strcmp(line, "frontier_ms")) {
            if (!none && (!c->has_frontier || v > c->frontier))
                c->frontier = v, c->has_frontier = true;
        } else if (!strcmp(line, "closed") && !none) {
            if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 16;
                int64_t *a = realloc(c->closed, cap * sizeof *a);
                if (!a) {
                    rc = TS_ENOMEM;
                    break;
                }
                c->closed = a;
                c->cap = cap;
            }
            c->closed[c->n++] = v;
        } else {
            rc = TS_EINVAL; /* a group: cannot be, it was flushed */
        }
    }
    free(text);
    if (rc == TS_OK && !c->sized)
        c->sized = true;
    if (rc == TS_EINVAL)
        ts_fail(why, why_size, rc, "windows of another size or slide, or not flushed");
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Writes the united record into dst (fresh). */
static int rec_build(struct closed_rec *c, struct ts_window_agg *dst, char *why, size_t why_size)
{
    if (!c->sized)
        return TS_OK; /* no source: dst stays fresh */
    size_t cap = 160 + c->n * 32, len = 0;
    char *text = malloc(cap);
    if (!text)
        return TS_ENOMEM;
    qsort(c->closed, c->n, sizeof *c->closed, cmp_i64);
    len += (size_t)snprintf(text + len, cap - len, "ts-window-state 1\nsize_ms %" PRId64
                            "\nslide_ms %" PRId64 "\n", c->size_ms, c->slide_ms);
    if (c->has_event)
        len += (size_t)snprintf(text + len, cap - len, "max_event_ms %" PRId64 "\n", c->max_event);
    else
        len += (size_t)snprintf(text + len, cap - len, "max_event_ms none\n");
    if (c->has_frontier)
        len += (size_t)snprintf(text + len, cap - len, "frontier_ms %" PRId64 "\n", c->frontier);
    else
        len += (size_t)snprintf(text + len, cap - len, "frontier_ms none\n");
    for (size_t i = 0; i < c->n; i++) {
        if (c->has_frontier && c->closed[i] + c->size_ms <= c->frontier)
            continue; /* covered by the frontier */
        if (i && c->closed[i] == c->closed[i - 1])
            continue;
        len += (size_t)snprintf(text + len, cap - len, "closed %" PRId64 "\n", c->closed[i]);
    }
    len += (size_t)snprintf(text + len, cap - len, "end\n");
    int rc = ts_window_decode(dst, text, len, ts_wall_ms(), why, why_size);
    free(text);
    return rc;
}

int ts_repartition_windows_union(struct ts_window_agg *dst, struct ts_window_agg *const *src,
                                 size_t n, char *why, size_t why_size)
{
    struct closed_rec c = {0};
    int rc = TS_OK;
    for (size_t i = 0; i < n && rc == TS_OK; i++)
        rc = rec_add(&c, src[i], why, why_size);
    if (rc == TS_OK)
        rc = rec_build(&c, dst, why, why_size);
    free(c.closed);
    return rc;
}

/* ---- the lake's half ---------------------------------------------------- */

/* What the tool knows of a partition: its latest checkpoint, then the plan. */
struct part {
    uint64_t gen;             /* of the latest checkpoint (0: none) */
    int64_t offset;           /* its offset_next (-1: none) */
    char *state;              /* its state (NULL: no checkpoint) */
    size_t state_len;
    bool groups;              /* open or late window groups */
    bool gains;               /* agents move in */
    bool loses;               /* agents move out */
    bool stale;               /* holds copies that are not its own under the layout in force */
};

struct run {
    const struct ts_repartition_args *a;
    const char *root, *table, *topic;
    struct ts_lake_cfg lcfg;
    struct ts_window_cfg wcfg;
    int32_t n, m;
    struct part *parts;
    int mfd;                  /* <root>/<table>/_manifest */
    bool s3;                  /* [lake] url: the partitions' lakes are on the bucket */
    char key_id[256], secret[256]; /* its credentials (the secret wiped at the end) */
    struct ts_repartition_report *rep;
    char *why;
    size_t why_size;
};

/* A partition's state, decoded. */
struct image {
    struct ts_seqsets hot;    /* its agents in memory */
    struct ts_window_agg *win;
    struct ts_archive_ref ref;
    int dirfd;                /* its manifest directory, if this image opened it (else -1) */
    struct ts_lake *lake;     /* the object lake: its lake, if this image opened it, to
                                 fetch the archive into its directory (else NULL) */
    struct ts_archive *arch;  /* its archive (NULL if not asked for) */
};

static int lake_begin(struct run *r, int32_t p, struct ts_lake **lake);

static void image_free(struct image *im)
{
    ts_seqsets_free(&im->hot);
    ts_window_free(im->win);
    ts_archive_close(im->arch);
    if (im->dirfd >= 0)
        close(im->dirfd);
    ts_lake_close(im->lake);
    im->win = NULL;
    im->arch = NULL;
    im->dirfd = -1;
    im->lake = NULL;
}

/* Decodes partition p's cached state; with archive, opens its archive too,
 * in lake's manifest directory, fetched from the store first on the object
 * lake (lake NULL: the image opens the partition's manifest directory, or on
 * the object lake the partition's lake, checked as lake_begin checks it). */
static int image_load(struct run *r, int32_t p, bool archive, struct ts_lake *lake,
                      struct image *im)
{
    int dirfd = lake ? ts_lake_manifest_fd(lake) : -1;
    const struct part *pt = &r->parts[p];
    memset(im, 0, sizeof *im);
    im->dirfd = -1;
    ts_seqsets_init(&im->hot, 0);
    int rc = ts_window_new(&r->wcfg, &im->win, r->why, r->why_size);
    if (rc == TS_OK && pt->state)
        rc = ts_partition_state_decode(pt->state, pt->state_len, &im->hot, im->win, ts_wall_ms(),
                                       &im->ref, r->why, r->why_size);
    if (rc == TS_OK && archive) {
        if (!lake && r->s3 && im->ref.name[0] && (rc = lake_begin(r, p, &im->lake)) == TS_OK) {
            lake = im->lake;
            dirfd = ts_lake_manifest_fd(lake);
        }
        if (rc == TS_OK && lake && im->ref.name[0] &&
            (rc = ts_lake_side_fetch(lake, im->ref.name)) != TS_OK)
            rc = ts_fail(r->why, r->why_size, rc, "archive %s: fetching it from the lake: %s",
                         im->ref.name, rc == TS_ESYS ? strerror(errno) : ts_strerror(rc));
        if (rc == TS_OK && dirfd < 0 && im->ref.name[0]) {
            char dir[300];
            snprintf(dir, sizeof dir, "%s-%" PRId32, r->topic, p);
            if ((im->dirfd = openat(r->mfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                rc = ts_fail(r->why, r->why_size, TS_ESYS, "%s: %s", dir, strerror(errno));
            dirfd = im->dirfd;
        }
        if (rc == TS_OK)
            rc = ts_archive_open(dirfd, &im->ref, ts_archive_max_line(TS_SEQSET_MAX_RANGES),
                                 &im->arch, r->why, r->why_size);
    }
    if (rc != TS_OK) {
        char ctx[300];
        snprintf(ctx, sizeof ctx, "%s", r->why);
        ts_fail(r->why, r->why_size, rc, "partition %" PRId32 "'s checkpoint: %s", p, ctx);
        image_free(im);
    }
    return rc;
}

/* Copies agent's set from src into dst. */
static int copy_set(struct ts_seqsets *dst, const char *agent, const struct ts_seqset *set)
{
    struct ts_seqset *d;
    size_t size = ts_seqset_encode_size(set);
    char *text = malloc(size);
    int rc = text ? ts_seqsets_get(dst, agent, &d) : TS_ENOMEM;
    if (rc == TS_OK) {
        int len = ts_seqset_encode(set, text, size);
        ts_seqset_set_max_ranges(d, SIZE_MAX);
        rc = len < 0 ? TS_ENOMEM : ts_seqset_decode(d, text, (size_t)len);
    }
    free(text);
    return rc;
}

/* The S3 client of the object lake, as the aggregator makes it. */
static struct ts_s3_cfg s3_cfg(const struct run *r)
{
    struct ts_s3_cfg c;
    ts_bridge_lake_s3_cfg(&r->a->cfg->lake, r->key_id, r->secret, &c);
    return c;
}

/* Partition p's lake: the POSIX directory [lake] path, or with url set the
 * object lake on the bucket through the store the aggregator opens it on
 * (aggregator.c's lake_open: one S3 connection per lake, its spool and side
 * files in path). Errors as ts_lake_open's. */
static int lake_open(struct run *r, int32_t p, struct ts_lake **lake, struct ts_lake_resume *res)
{
    if (!r->s3)
        return ts_lake_open(&r->lcfg, r->topic, p, lake, res, r->why, r->why_size);
    struct ts_s3_cfg c = s3_cfg(r);
    struct ts_s3 *s3 = NULL;
    void *sd = NULL;
    memset(res, 0, sizeof *res);
    *lake = NULL;
    int rc = ts_s3_open(&c, &s3, r->why, r->why_size);
    if (rc == TS_OK)
        rc = ts_lake_s3store_open(s3, r->a->cfg->lake.path, &sd, r->why, r->why_size);
    if (rc == TS_OK)
        rc = ts_lake_open_store(&r->lcfg, r->topic, p, &ts_lake_s3store, sd, lake, res, r->why,
                                r->why_size);
    return rc;
}

/* Opens partition p's lake to write its next checkpoint; TS_ECONFLICT if
 * its checkpoint is not the one the tool read. */
static int lake_begin(struct run *r, int32_t p, struct ts_lake **lake)
{
    struct ts_lake_resume res;
    int rc = lake_open(r, p, lake, &res);
    free(res.state);
    if (rc != TS_OK)
        return rc;
    if (res.generation != r->parts[p].gen) {
        ts_lake_close(*lake);
        *lake = NULL;
        return ts_fail(r->why, r->why_size, TS_ECONFLICT, "partition %" PRId32 ": its checkpoint "
                       "changed under the tool (generation %" PRIu64 ", read %" PRIu64 "): a "
                       "bridge is running. Stop it and run --repartition again", p,
                       res.generation, r->parts[p].gen);
    }
    return TS_OK;
}

/* Commits partition p's new state at the partition's end and closes the
 * lake; the tool's copy of the state follows. A new archive (ref) must be
 * in the store already (ts_lake_side_publish). */
static int lake_end(struct run *r, int32_t p, struct ts_lake *lake, const struct ts_seqsets *hot,
                    const struct ts_window_agg *win, const struct ts_archive_ref *ref)
{
    struct ts_lake_commit_info info;
    char *state = NULL;
    size_t len = 0;
    int rc = ts_partition_state_encode(hot, win, ref, &state, &len);
    if (rc == TS_OK)
        rc = ts_lake_commit(lake, r->a->high[p], state, len, &info);
    if (rc == TS_OK) {
        free(r->parts[p].state);
        r->parts[p].state = state;
        r->parts[p].state_len = len;
        r->parts[p].gen = info.generation;
        r->parts[p].offset = r->a->high[p];
        r->rep->checkpoints++;
        /* the archives it replaces, and intermediates of the merges (the
         * object lake's: the store's too; on POSIX that does nothing) */
        ts_agent_archives_prune(ts_lake_manifest_fd(lake), lake, info.generation, ref->name);
    } else {
        int saved = errno;
        free(state);
        ts_fail(r->why, r->why_size, rc, "partition %" PRId32 ": the checkpoint failed: %s%s%s", p,
                ts_strerror(rc), rc == TS_ESYS ? ": " : "", rc == TS_ESYS ? strerror(saved) : "");
    }
    ts_lake_close(lake);
    return rc;
}

/* After a durable step: "what" or "what p" (p >= 0). */
static int step(struct run *r, const char *what, int32_t p)
{
    char text[64];
    if (!r->a->step)
        return TS_OK;
    if (p >= 0)
        snprintf(text, sizeof text, "%s %" PRId32, what, p);
    else
        snprintf(text, sizeof text, "%s", what);
    int rc = r->a->step(r->a->ctx, text);
    if (rc != TS_OK)
        ts_fail(r->why, r->why_size, rc, "stopped after step '%s'", text);
    return rc;
}

/* ---- reading and planning ---- */

static int read_all(struct run *r)
{
    for (int32_t p = 0; p < r->m; p++) {
        struct ts_lake *lake;
        struct ts_lake_resume res;
        int rc = lake_open(r, p, &lake, &res);
        if (rc != TS_OK)
            return rc;
        ts_lake_close(lake);
        r->parts[p].gen = res.generation;
        r->parts[p].offset = res.offset_next;
        r->parts[p].state = res.state;
        r->parts[p].state_len = res.state_len;
    }
    return TS_OK;
}

/* Every partition drained: nothing left after its checkpoint. */
static int check_drained(struct run *r)
{
    char list[600] = "";
    size_t len = 0, named = 0, behind = 0;
    uint64_t records = 0;
    for (int32_t p = 0; p < r->m; p++) {
        const struct part *pt = &r->parts[p];
        int64_t from = pt->offset >= 0 ? pt->offset : r->a->low[p], end = r->a->high[p];
        if (pt->offset > end)
            return ts_fail(r->why, r->why_size, TS_EINVAL, "partition %" PRId32 ": the lake's "
                           "checkpoint is at offset %" PRId64 " but the partition ends at %"
                           PRId64 ": was the topic deleted and created again? Nothing done", p,
                           pt->offset, end);
        if (pt->offset >= 0 && pt->offset < r->a->low[p]) {
            /* deleted by the topic's retention before the lake took them: the
             * aggregator would have found the same (records_lost) */
            TS_LOG(TS_LOG_ERR, "repartition: partition %" PRId32 ": records %" PRId64 "..%"
                   PRId64 " were deleted by Kafka before the lake took them (retention)", p,
                   pt->offset, r->a->low[p] - 1);
            from = r->a->low[p];
        }
        if (from >= end)
            continue;
        behind++;
        records += (uint64_t)(end - from);
        if (named++ < NAMED_MAX)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%" PRId32 " (%" PRId64
                                    " record(s) from offset %" PRId64 ")", named > 1 ? ", " : "",
                                    p, end - from, from);
    }
    if (!behind)
        return TS_OK;
    return ts_fail(r->why, r->why_size, TS_EBUSY, "%zu partition(s) of %s hold records the lake "
                   "has not taken (%" PRIu64 " in all): %s%s. Stop the relays (readings wait in "
                   "mosquitto and the agents), start the aggregators and let them take everything, "
                   "stop them, then run --repartition again", behind, r->topic, records, list,
                   named > NAMED_MAX ? ", ..." : "");
}

struct plan_ctx {
    struct run *r;
    int32_t p;
    const struct ts_seqsets *hot;
};

static void plan_agent(struct run *r, int32_t p, const char *agent)
{
    int32_t t;
    switch (ts_repartition_fate(agent, p, r->n, r->m, &t)) {
    case TS_REPARTITION_STAYS:
        break;
    case TS_REPARTITION_MOVES:
        r->parts[t].gains = r->parts[p].loses = true;
        break;
    case TS_REPARTITION_STALE:
        r->parts[p].stale = true;
        break;
    }
}

static int plan_line(const char *agent, const char *set, size_t set_len, void *ctx)
{
    struct plan_ctx *c = ctx;
    (void)set;
    (void)set_len;
    if (!ts_seqsets_find(c->hot, agent)) /* in memory too: the memory is the truth */
        plan_agent(c->r, c->p, agent);
    return TS_OK;
}

static int plan(struct run *r)
{
    for (int32_t p = 0; p < r->m; p++) {
        struct image im;
        if (!r->parts[p].state)
            continue;
        int rc = image_load(r, p, true, NULL, &im);
        if (rc != TS_OK)
            return rc;
        struct ts_window_stats st;
        ts_window_stats(im.win, &st);
        r->parts[p].groups = st.open_groups || st.late_groups;
        size_t cursor = 0;
        const char *agent;
        struct ts_seqset *set;
        while (ts_seqsets_next(&im.hot, &cursor, &agent, &set))
            plan_agent(r, p, agent);
        struct plan_ctx c = {r, p, &im.hot};
        rc = ts_archive_scan(im.arch, plan_line, &c);
        image_free(&im);
        if (rc != TS_OK)
            return ts_fail(r->why, r->why_size, rc, "partition %" PRId32 ": reading its archive: "
                           "%s", p, ts_strerror(rc));
    }
    return TS_OK;
}

/* ---- A: flush the windows ---- */

struct flush_ctx {
    struct ts_lake *lake;
    int rc;
    uint64_t rows;
};

static void flush_row(const struct ts_window_row *row, void *ctx)
{
    struct flush_ctx *f = ctx;
    int rc = ts_lake_write_row(f->lake, row);
    if (rc != TS_OK && f->rc == TS_OK)
        f->rc = rc; /* sticky in the lake too: the commit fails */
    f->rows++;
}

static int flush_windows(struct run *r, int32_t p)
{
    struct ts_lake *lake;
    struct image im;
    int rc = lake_begin(r, p, &lake);
    if (rc != TS_OK)
        return rc;
    if ((rc = image_load(r, p, false, NULL, &im)) != TS_OK) {
        ts_lake_close(lake);
        return rc;
    }
    struct flush_ctx f = {lake, TS_OK, 0};
    ts_window_flush_all(im.win, flush_row, &f);
    rc = lake_end(r, p, lake, &im.hot, im.win, &im.ref);
    image_free(&im);
    if (rc == TS_OK) {
        r->rep->flushed++;
        r->rep->rows += f.rows;
        TS_LOG(TS_LOG_NOTICE, "repartition: partition %" PRId32 ": open windows flushed into the "
               "lake (%" PRIu64 " rows)", p, f.rows);
    }
    return rc;
}

/* ---- B: the agents move in ---- */

/* Filters of the archives' lines. */
struct keep_ctx {
    struct run *r;
    int32_t p;                /* the archive's partition */
    int32_t q;                /* the partition being written */
    const struct ts_seqsets *hot; /* the archive's partition's agents in memory */
    uint64_t kept, dropped;
};

/* q's own archive in B: the agents that are q's under n (not in memory: the
 * memory is the truth) */
static bool keep_own(const char *agent, void *ctx)
{
    struct keep_ctx *c = ctx;
    if (ts_seqsets_find(c->hot, agent))
        return false;
    if (ts_layout_partition(agent, strlen(agent), c->r->n) != c->p) {
        c->dropped++;
        return false;
    }
    c->kept++;
    return true;
}

/* a source's archive in B: the agents that are its own under n and q's
 * under m */
static bool keep_moving(const char *agent, void *ctx)
{
    struct keep_ctx *c = ctx;
    int32_t t;
    if (ts_seqsets_find(c->hot, agent) ||
        ts_repartition_fate(agent, c->p, c->r->n, c->r->m, &t) != TS_REPARTITION_MOVES ||
        t != c->q)
        return false;
    c->kept++;
    return true;
}

/* p's archive in D: the agents that are p's under m */
static bool keep_mine(const char *agent, void *ctx)
{
    struct keep_ctx *c = ctx;
    if (ts_seqsets_find(c->hot, agent))
        return false;
    if (ts_layout_partition(agent, strlen(agent), c->r->m) != c->p) {
        c->dropped++;
        return false;
    }
    c->kept++;
    return true;
}

/* One merge step into dirfd: the output is named after generation gen and
 * tag with suffix k; the previous output (*cur, if *ours) is deleted. */
static int merge_step(struct run *r, int dirfd, uint64_t gen, const char *tag, unsigned k,
                      struct ts_archive **cur, bool *ours,
                      bool (*keep_a)(const char *, void *), void *ctx_a,
                      const struct ts_archive *b, bool (*keep_b)(const char *, void *),
                      void *ctx_b)
{
    char t[TS_ARCHIVE_NAME_MAX], name[TS_ARCHIVE_NAME_MAX];
    struct ts_archive_ref ref;
    snprintf(t, sizeof t, "%s-%u", tag, k);
    int rc = ts_archive_name(gen, t, name, sizeof name);
    if (rc == TS_OK)
        rc = ts_archive_merge(*cur, keep_a, ctx_a, b, keep_b, ctx_b, dirfd, name, &ref);
    if (rc != TS_OK) {
        int saved = errno;
        return ts_fail(r->why, r->why_size, rc, "writing the archive %s: %s%s%s", name,
                       ts_strerror(rc), rc == TS_ESYS ? ": " : "",
                       rc == TS_ESYS ? strerror(saved) : "");
    }
    struct ts_archive *next;
    rc = ts_archive_adopt(dirfd, &ref, ts_archive_max_line(TS_SEQSET_MAX_RANGES), &next);
    if (rc != TS_OK) {
        if (ref.name[0])
            unlinkat(dirfd, ref.name, 0);
        return ts_fail(r->why, r->why_size, rc, "reopening %s", name);
    }
    if (*ours) { /* the previous step's output: merged into this one */
        unlinkat(dirfd, ts_archive_ref(*cur)->name, 0);
        ts_archive_close(*cur);
    }
    *ours = true;
    *cur = next;
    return TS_OK;
}

static int gain(struct run *r, int32_t q)
{
    struct ts_lake *lake;
    struct image own, src;
    struct ts_seqsets hot;
    struct closed_rec rec = {0};
    struct ts_window_agg *win = NULL;
    struct ts_archive *cur = NULL;
    bool ours = false;
    uint64_t in_hot = 0, in_arch = 0, stale = 0;
    int32_t shown = 0;
    char from[200] = "";
    size_t from_len = 0;

    int rc = lake_begin(r, q, &lake);
    if (rc != TS_OK)
        return rc;
    int dirfd = ts_lake_manifest_fd(lake);
    uint64_t gen = ts_lake_generation(lake) + 1;
    const char *tag = ts_lake_writer_tag(lake);
    unsigned k = 0;
    ts_seqsets_init(&hot, 0);
    if ((rc = image_load(r, q, true, lake, &own)) != TS_OK) {
        ts_lake_close(lake);
        return rc;
    }
    /* q's own agents under n stay (also those that leave it under m: D) */
    size_t cursor = 0;
    const char *agent;
    struct ts_seqset *set;
    while (rc == TS_OK && ts_seqsets_next(&own.hot, &cursor, &agent, &set)) {
        if (ts_layout_partition(agent, strlen(agent), r->n) == q)
            rc = copy_set(&hot, agent, set);
        else
            stale++;
    }
    struct keep_ctx own_ctx = {r, q, q, &own.hot, 0, 0};
    cur = own.arch;
    bool (*keep_cur)(const char *, void *) = keep_own;
    void *ctx_cur = &own_ctx;
    if (rc == TS_OK)
        rc = rec_add(&rec, own.win, r->why, r->why_size);
    /* the agents moving in, from each partition that may hold them under n */
    size_t n_src = ts_repartition_sources(r->n, r->m, q, NULL, 0);
    int32_t *sources = malloc((n_src ? n_src : 1) * sizeof *sources);
    if (!sources)
        rc = TS_ENOMEM;
    else
        ts_repartition_sources(r->n, r->m, q, sources, n_src);
    for (size_t i = 0; rc == TS_OK && i < n_src; i++) {
        int32_t p = sources[i];
        if (!r->parts[p].state)
            continue;
        if ((rc = image_load(r, p, true, NULL, &src)) != TS_OK)
            break;
        uint64_t hot_in = 0;
        cursor = 0;
        while (rc == TS_OK && ts_seqsets_next(&src.hot, &cursor, &agent, &set)) {
            int32_t t;
            if (ts_repartition_fate(agent, p, r->n, r->m, &t) == TS_REPARTITION_MOVES && t == q) {
                rc = copy_set(&hot, agent, set);
                hot_in++;
            }
        }
        struct keep_ctx src_ctx = {r, p, q, &src.hot, 0, 0};
        if (rc == TS_OK && ts_archive_ref(src.arch)->agents)
            rc = merge_step(r, dirfd, gen, tag, k++, &cur, &ours, keep_cur, ctx_cur, src.arch,
                            keep_moving, &src_ctx);
        if (rc == TS_OK && ours) {
            keep_cur = NULL;
            ctx_cur = NULL;
        }
        if (rc == TS_OK && hot_in + src_ctx.kept) {
            rc = rec_add(&rec, src.win, r->why, r->why_size);
            if (shown++ < NAMED_MAX)
                from_len += (size_t)snprintf(from + from_len, sizeof from - from_len, "%s%" PRId32,
                                             shown > 1 ? ", " : "", p);
        }
        in_hot += hot_in;
        in_arch += src_ctx.kept;
        image_free(&src);
    }
    if (rc == TS_OK && !ours) /* no source had an archive: q's own, filtered */
        rc = merge_step(r, dirfd, gen, tag, k++, &cur, &ours, keep_cur, ctx_cur, NULL, NULL,
                        NULL);
    if (rc == TS_OK)
        rc = ts_window_new(&r->wcfg, &win, r->why, r->why_size);
    if (rc == TS_OK)
        rc = rec_build(&rec, win, r->why, r->why_size);
    bool tried = rc == TS_OK; /* from here the archive may be named by a durable checkpoint */
    if (rc == TS_OK && ts_archive_ref(cur)->name[0] &&
        (rc = ts_lake_side_publish(lake, ts_archive_ref(cur)->name)) != TS_OK)
        ts_fail(r->why, r->why_size, rc, "partition %" PRId32 ": putting the archive %s in the "
                "lake: %s", q, ts_archive_ref(cur)->name,
                rc == TS_ESYS ? strerror(errno) : ts_strerror(rc));
    if (rc == TS_OK) {
        struct ts_archive_ref ref = *ts_archive_ref(cur);
        rc = lake_end(r, q, lake, &hot, win, &ref);
        lake = NULL;
    }
    stale += own_ctx.dropped;
    if (rc == TS_OK) {
        r->rep->moved += in_hot + in_arch;
        r->rep->moved_archived += in_arch;
        r->rep->stale += stale;
        r->rep->removed += stale;
        TS_LOG(TS_LOG_NOTICE, "repartition: partition %" PRId32 ": %" PRIu64 " agents copied in "
               "(%" PRIu64 " from archives) from partition(s) %s%s%s", q, in_hot + in_arch, in_arch,
               from[0] ? from : "-", shown > NAMED_MAX ? ", ..." : "",
               stale ? "; copies an interrupted run left removed" : "");
    }
    if (ours && rc != TS_OK && !tried) /* never named: garbage */
        unlinkat(dirfd, ts_archive_ref(cur)->name, 0);
    if (ours)
        ts_archive_close(cur);
    free(sources);
    ts_window_free(win);
    free(rec.closed);
    ts_seqsets_free(&hot);
    image_free(&own);
    ts_lake_close(lake);
    return rc;
}

/* ---- D: the agents that left are removed ---- */

static int drop(struct run *r, int32_t p)
{
    struct ts_lake *lake;
    struct image im;
    struct ts_seqsets hot;
    struct ts_archive *cur;
    bool ours = false;
    uint64_t dropped = 0;

    int rc = lake_begin(r, p, &lake);
    if (rc != TS_OK)
        return rc;
    int dirfd = ts_lake_manifest_fd(lake);
    ts_seqsets_init(&hot, 0);
    if ((rc = image_load(r, p, true, lake, &im)) != TS_OK) {
        ts_lake_close(lake);
        return rc;
    }
    size_t cursor = 0;
    const char *agent;
    struct ts_seqset *set;
    while (rc == TS_OK && ts_seqsets_next(&im.hot, &cursor, &agent, &set)) {
        if (ts_layout_partition(agent, strlen(agent), r->m) == p)
            rc = copy_set(&hot, agent, set);
        else
            dropped++;
    }
    struct keep_ctx c = {r, p, p, &im.hot, 0, 0};
    cur = im.arch;
    if (rc == TS_OK)
        rc = merge_step(r, dirfd, ts_lake_generation(lake) + 1, ts_lake_writer_tag(lake), 0, &cur,
                        &ours, keep_mine, &c, NULL, NULL, NULL);
    bool tried = rc == TS_OK; /* from here the archive may be named by a durable checkpoint */
    if (rc == TS_OK && ts_archive_ref(cur)->name[0] &&
        (rc = ts_lake_side_publish(lake, ts_archive_ref(cur)->name)) != TS_OK)
        ts_fail(r->why, r->why_size, rc, "partition %" PRId32 ": putting the archive %s in the "
                "lake: %s", p, ts_archive_ref(cur)->name,
                rc == TS_ESYS ? strerror(errno) : ts_strerror(rc));
    if (rc == TS_OK) {
        struct ts_archive_ref ref = *ts_archive_ref(cur);
        rc = lake_end(r, p, lake, &hot, im.win, &ref);
        lake = NULL;
    }
    dropped += c.dropped;
    if (rc == TS_OK) {
        r->rep->removed += dropped;
        if (r->rep->unfinished && r->rep->from == r->rep->to)
            r->rep->stale += dropped;
        TS_LOG(TS_LOG_NOTICE, "repartition: partition %" PRId32 ": %" PRIu64 " agents that are "
               "no longer its own removed", p, dropped);
    }
    if (ours && rc != TS_OK && !tried) /* never named: garbage */
        unlinkat(dirfd, ts_archive_ref(cur)->name, 0);
    if (ours)
        ts_archive_close(cur);
    ts_seqsets_free(&hot);
    image_free(&im);
    ts_lake_close(lake);
    return rc;
}

/* ---- the marker of a run under way, and the lock ---- */

static int marker_name(const char *topic, char *out, size_t size, const char *suffix)
{
    int n = snprintf(out, size, "%s.repartition%s", topic, suffix);
    return n > 0 && (size_t)n < size ? TS_OK : TS_EINVAL;
}

static int marker_write(struct run *r)
{
    char name[300], tmp[320], text[128];
    int len = snprintf(text, sizeof text, "ts-repartition 1\nfrom %" PRId32 "\nto %" PRId32 "\n",
                       r->n, r->m);
    if (marker_name(r->topic, name, sizeof name, "") ||
        marker_name(r->topic, tmp, sizeof tmp, ".tmp"))
        return TS_EINVAL;
    int fd = openat(r->mfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd >= 0 && write(fd, text, (size_t)len) == len && fsync(fd) == 0 ? TS_OK : TS_ESYS;
    if (fd >= 0)
        close(fd);
    if (rc == TS_OK && (renameat(r->mfd, tmp, r->mfd, name) != 0 || fsync(r->mfd) != 0))
        rc = TS_ESYS;
    if (rc != TS_OK)
        ts_fail(r->why, r->why_size, rc, "writing %s: %s", name, strerror(errno));
    return rc;
}

static int marker_remove(struct run *r)
{
    char name[300];
    if (marker_name(r->topic, name, sizeof name, ""))
        return TS_EINVAL;
    if ((unlinkat(r->mfd, name, 0) != 0 && errno != ENOENT) || fsync(r->mfd) != 0)
        return ts_fail(r->why, r->why_size, TS_ESYS, "removing %s: %s", name, strerror(errno));
    return TS_OK;
}

bool ts_repartition_unfinished(const char *root, const char *table, const char *topic)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s/_manifest/%s.repartition", root, table, topic);
    return n > 0 && (size_t)n < sizeof path && access(path, F_OK) == 0;
}

/* ---- the object lake: the layout's copy in the bucket ---- */

/* On the object lake the layout in force stays this host's file in path,
 * where the bridges of this host read it; each bridge host keeps its own
 * (docs/lake.md). So that a run on another host, whose file still says the
 * old count, cannot take the moved agents for an interrupted run's copies
 * and drop them, the tool puts a copy of its file in the bucket as
 * <table>/_manifest/<topic>.layout when it replaces it, and refuses to start
 * where the bucket's copy counts more partitions than this host's file.
 * sync: put this host's file; else: check. */
static int bucket_layout(struct run *r, bool sync)
{
    char key[600], path[PATH_MAX], local[512], *text = NULL;
    size_t len = 0;
    struct ts_s3 *s3 = NULL;
    struct ts_s3_cfg c = s3_cfg(r);
    int rc = ts_s3_open(&c, &s3, r->why, r->why_size);
    snprintf(key, sizeof key, "%s/_manifest/%s.layout", r->table, r->topic);
    if (rc == TS_OK && sync) {
        snprintf(path, sizeof path, "%s/%s/_manifest/%s.layout", r->root, r->table, r->topic);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t got = fd >= 0 ? read(fd, local, sizeof local) : -1;
        if (fd >= 0)
            close(fd);
        if (got <= 0 || (size_t)got == sizeof local)
            rc = ts_fail(r->why, r->why_size, TS_ESYS, "%s: %s", path,
                         got < 0 ? strerror(errno) : "not a layout");
        else
            rc = ts_s3_put(s3, key, local, (size_t)got, false, r->why, r->why_size);
        if (rc != TS_OK)
            ts_fail(r->why, r->why_size, rc, "putting the layout's copy %s in the bucket: %s",
                    key, r->why);
    } else if (rc == TS_OK) {
        int32_t copy = 0;
        rc = ts_s3_get(s3, key, &text, &len, r->why, r->why_size);
        if (rc == TS_ENOTFOUND) {
            rc = TS_OK; /* no run on this lake put one: this host's file is the layout */
        } else if (rc != TS_OK) {
            ts_fail(r->why, r->why_size, rc, "reading the layout's copy %s in the bucket: %s",
                    key, r->why);
        } else if (ts_layout_parse(text, len, r->topic, &copy) != TS_OK) {
            rc = ts_fail(r->why, r->why_size, TS_EPARSE, "the layout's copy %s in the bucket "
                         "is not a layout of topic %s (damaged, or written by hand?)", key,
                         r->topic);
        } else if (copy > r->n) {
            rc = ts_fail(r->why, r->why_size, TS_EBUSY, "the bucket's copy of the layout (%s) "
                         "spreads the agents over %" PRId32 " partitions, this host's file (%s/%s/"
                         "_manifest/%s.layout) over %" PRId32 ": --repartition ran on another "
                         "host. Copy that host's layout file here (and to every bridge host) "
                         "before starting the bridges; nothing done", key, copy, r->root,
                         r->table, r->topic, r->n);
        }
    }
    free(text);
    ts_s3_close(s3);
    return rc;
}

/* ---- the run ---- */

static int run_lake(struct run *r)
{
    int32_t n;
    int rc = ts_layout_read(r->root, r->table, r->topic, &n, r->why, r->why_size);
    if (rc == TS_ENOTFOUND)
        return ts_fail(r->why, r->why_size, rc, "the lake %s has no layout of %s yet: no "
                       "aggregator has run there (the first one records it); nothing to move",
                       r->root, r->topic);
    if (rc != TS_OK)
        return rc;
    r->n = n;
    r->rep->from = n;
    r->rep->to = r->m;
    if (r->m < n)
        return ts_fail(r->why, r->why_size, TS_EINVAL, "%s has %" PRId32 " partitions, fewer than "
                       "the lake's layout (%" PRId32 "): Kafka cannot remove partitions; was the "
                       "topic deleted and created again? Nothing done", r->topic, r->m, n);

    /* one run at a time */
    char path[PATH_MAX], name[300];
    snprintf(path, sizeof path, "%s/%s/_manifest", r->root, r->table);
    if ((r->mfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return ts_fail(r->why, r->why_size, TS_ESYS, "%s: %s", path, strerror(errno));
    if (marker_name(r->topic, name, sizeof name, ".lock"))
        return TS_EINVAL;
    int lock = openat(r->mfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock < 0)
        return ts_fail(r->why, r->why_size, TS_ESYS, "%s/%s: %s", path, name, strerror(errno));
    if (flock(lock, LOCK_EX | LOCK_NB) != 0) {
        close(lock);
        return ts_fail(r->why, r->why_size, TS_EBUSY, "another --repartition is running on %s",
                       path);
    }
    r->rep->unfinished = ts_repartition_unfinished(r->root, r->table, r->topic);
    if (n == r->m && !r->rep->unfinished) {
        r->rep->nothing = true;
        close(lock);
        return TS_OK;
    }
    if (r->rep->unfinished)
        TS_LOG(TS_LOG_NOTICE, "repartition: a run was interrupted: finishing it (layout %" PRId32
               ", %s has %" PRId32 " partitions)", n, r->topic, r->m);
    if (r->s3 && (rc = bucket_layout(r, false)) != TS_OK) {
        close(lock);
        return rc;
    }

    if ((rc = read_all(r)) == TS_OK && (rc = check_drained(r)) == TS_OK)
        rc = plan(r);
    if (rc == TS_OK && n < r->m) {
        if ((rc = marker_write(r)) == TS_OK)
            rc = step(r, "marker", -1);
        for (int32_t p = 0; rc == TS_OK && p < r->m; p++)
            if (r->parts[p].groups && (rc = flush_windows(r, p)) == TS_OK)
                rc = step(r, "flush", p);
        for (int32_t q = 0; rc == TS_OK && q < r->m; q++)
            if ((r->parts[q].gains || r->parts[q].stale) && (rc = gain(r, q)) == TS_OK)
                rc = step(r, "gain", q);
        if (rc == TS_OK && r->a->recheck) {
            char again[400] = "";
            if ((rc = r->a->recheck(r->a->ctx, again, sizeof again)) != TS_OK)
                ts_fail(r->why, r->why_size, rc, "%s. The layout is still %" PRId32 ": nothing "
                        "has moved (what was copied counts for nothing until then)", again, n);
        }
        if (rc == TS_OK) {
            rc = ts_layout_replace(r->root, r->table, r->topic, r->m, r->why, r->why_size);
            if (rc == TS_OK && r->s3)
                rc = bucket_layout(r, true);
            if (rc == TS_OK) {
                TS_LOG(TS_LOG_NOTICE, "repartition: the lake's layout of %s is now %" PRId32
                       " partitions (was %" PRId32 ")", r->topic, r->m, n);
                rc = step(r, "layout", -1);
            }
        }
    }
    /* an interrupted run may have stopped between the layout and its copy */
    if (rc == TS_OK && n == r->m && r->s3)
        rc = bucket_layout(r, true);
    /* D: each partition keeps only its own agents under m */
    for (int32_t p = 0; rc == TS_OK && p < r->m; p++) {
        bool needed = n < r->m ? r->parts[p].loses : r->parts[p].stale;
        if (needed && (rc = drop(r, p)) == TS_OK)
            rc = step(r, "drop", p);
    }
    if (rc == TS_OK && (rc = marker_remove(r)) == TS_OK)
        rc = step(r, "done", -1);
    close(lock);
    return rc;
}

int ts_repartition_lake(const struct ts_repartition_args *a, struct ts_repartition_report *rep,
                        char *why, size_t why_size)
{
    const struct ts_bridge_cfg *cfg = a->cfg;
    struct run r = {.a = a, .root = cfg->lake.path, .table = cfg->lake.table,
                    .topic = cfg->kafka.readings_topic, .m = a->m, .mfd = -1, .rep = rep,
                    .why = why, .why_size = why_size};
    memset(rep, 0, sizeof *rep);
    if (why && why_size)
        why[0] = '\0';
    if (a->m < 1 || a->m > TS_LAYOUT_MAX_PARTITIONS)
        return ts_fail(why, why_size, TS_EINVAL, "%" PRId32 " partitions", a->m);
    r.lcfg = (struct ts_lake_cfg){.root = cfg->lake.path, .table = cfg->lake.table,
                                  .owner = OWNER, .row_number = cfg->lake.row_number,
                                  .compression_level = cfg->lake.compression_level,
                                  .keep_checkpoints = cfg->lake.keep_checkpoints,
                                  .max_open_files = cfg->lake.max_open_files,
                                  .max_checkpoint_files = cfg->lake.max_checkpoint_files};
    /* the windows as the aggregator makes them (aggregator.c) */
    ts_window_cfg_default(&r.wcfg);
    r.wcfg.size_ms = (int64_t)cfg->lake.window_s * 1000;
    r.wcfg.slide_ms = (int64_t)cfg->lake.slide_s * 1000;
    r.wcfg.lateness_ms = cfg->lake.lateness_s < 0 ? TS_WINDOW_LATENESS_DEFAULT
                                                  : (int64_t)cfg->lake.lateness_s * 1000;
    r.wcfg.idle_ms = (int64_t)cfg->lake.idle_s * 1000;
    r.wcfg.max_open = (size_t)cfg->lake.max_open_groups;
    /* the object lake: its credentials, and whether the store fences two
     * writers (as each aggregator's lake checks it) before anything is written */
    int rc = TS_OK;
    if (cfg->lake.url[0]) {
        const struct ts_bridge_lake_cfg *l = &cfg->lake;
        r.s3 = true;
        rc = ts_s3_credentials(l->key_id_file[0] ? l->key_id_file : NULL,
                               l->secret_file[0] ? l->secret_file : NULL, r.key_id,
                               sizeof r.key_id, r.secret, sizeof r.secret, why, why_size);
        if (rc == TS_OK && l->conditional_writes) {
            struct ts_s3_cfg c = s3_cfg(&r);
            struct ts_s3 *s3 = NULL;
            if ((rc = ts_s3_open(&c, &s3, why, why_size)) == TS_OK)
                rc = ts_lake_s3store_probe(s3, l->table, why, why_size);
            ts_s3_close(s3);
        }
    }
    if (rc == TS_OK && !(r.parts = calloc((size_t)a->m, sizeof *r.parts)))
        rc = TS_ENOMEM;
    for (int32_t p = 0; rc == TS_OK && p < a->m; p++)
        r.parts[p].offset = -1;
    if (rc == TS_OK)
        rc = run_lake(&r);
    explicit_bzero(r.secret, sizeof r.secret);
    if (!r.parts)
        return rc;
    for (int32_t p = 0; p < a->m; p++)
        free(r.parts[p].state);
    free(r.parts);
    if (r.mfd >= 0)
        close(r.mfd);
    return rc;
}

/* ---- Kafka: the topic, its offsets, the consumer group ------------------ */

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    ts_kafka_log(level <= 3 ? TS_LOG_ERR : level == 4 ? TS_LOG_WARNING : TS_LOG_DEBUG,
                 "repartition: librdkafka", fac, buf);
}

static int kafka_new(const struct ts_bridge_cfg *cfg, rd_kafka_t **rk, char *why, size_t why_size)
{
    char err[256], id[160];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(id, sizeof id, "%s-repartition", cfg->bridge.id);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka.brokers, err, sizeof err) ||
        rd_kafka_conf_set(conf, "client.id", id, err, sizeof err) ||
        ts_kafka_conf_apply(conf, &cfg->kafka.props, err, sizeof err)) { /* rdkafka.* */
        rd_kafka_conf_destroy(conf);
        return ts_fail(why, why_size, TS_ECONFIG, "kafka: %s", err);
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    if (!(*rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err))) {
        rd_kafka_conf_destroy(conf);
        return ts_fail(why, why_size, TS_ECONFIG, "kafka: %s", err);
    }
    return TS_OK;
}

/* The topic's partition count; 0 if it cannot be had. */
static int32_t topic_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int32_t n = 0;
    if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return n;
}

/* The group's members now: TS_OK and *members (0: nobody consumes), their
 * names in list; TS_EIO (Kafka did not say) with why. */
static int group_members(rd_kafka_t *rk, const char *group, size_t *members, char *list,
                         size_t list_size, char *why, size_t why_size)
{
    char err[256] = "";
    const char *groups[1] = {group};
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    int rc = TS_EIO;

    *members = 0;
    list[0] = '\0';
    rd_kafka_AdminOptions_set_request_timeout(opt, KAFKA_TIMEOUT_MS, err, sizeof err);
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, KAFKA_TIMEOUT_MS + 5000);
    const rd_kafka_DescribeConsumerGroups_result_t *res =
        ev ? rd_kafka_event_DescribeConsumerGroups_result(ev) : NULL;
    size_t cnt = 0;
    const rd_kafka_ConsumerGroupDescription_t **g =
        res ? rd_kafka_DescribeConsumerGroups_result_groups(res, &cnt) : NULL;
    const rd_kafka_error_t *ge = cnt == 1 ? rd_kafka_ConsumerGroupDescription_error(g[0]) : NULL;
    if (!ev) {
        ts_fail(why, why_size, rc, "kafka: no answer to describing the consumer group %s", group);
    } else if (rd_kafka_event_error(ev)) {
        ts_fail(why, why_size, rc, "kafka: describing the consumer group %s: %s", group,
                rd_kafka_event_error_string(ev));
    } else if (cnt != 1) {
        ts_fail(why, why_size, rc, "kafka: describing the consumer group %s: no answer", group);
    } else if (ge && rd_kafka_error_code(ge) != RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
        ts_fail(why, why_size, rc, "kafka: describing the consumer group %s: %s", group,
                rd_kafka_error_string(ge));
    } else {
        rc = TS_OK; /* a group that does not exist has nobody */
        if (!ge) {
            size_t len = 0;
            *members = rd_kafka_ConsumerGroupDescription_member_count(g[0]);
            for (size_t i = 0; i < *members && i < NAMED_MAX; i++) {
                const rd_kafka_MemberDescription_t *mb =
                    rd_kafka_ConsumerGroupDescription_member(g[0], i);
                const char *inst = rd_kafka_MemberDescription_group_instance_id(mb);
                len += (size_t)snprintf(list + len, list_size - len, "%s%s on %s",
                                        i ? ", " : "", inst ? inst : rd_kafka_MemberDescription_client_id(mb),
                                        rd_kafka_MemberDescription_host(mb));
                if (len >= list_size)
                    break;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Waits up to wait_ms for the group to have no member. TS_OK; TS_EBUSY
 * (members remain: a bridge runs); TS_EIO. */
static int group_empty(rd_kafka_t *rk, const char *group, int64_t wait_ms, char *why,
                       size_t why_size)
{
    char list[600];
    size_t members;
    int64_t deadline = ts_mono_ms() + wait_ms;
    bool told = false;
    for (;;) {
        int rc = group_members(rk, group, &members, list, sizeof list, why, why_size);
        if (rc != TS_OK || members == 0)
            return rc;
        if (ts_mono_ms() >= deadline)
            return ts_fail(why, why_size, TS_EBUSY, "the consumer group %s has %zu member(s) (%s%s): "
                           "an aggregator is running. Stop the relays first (readings wait in "
                           "mosquitto and the agents), let the aggregators take everything, stop "
                           "them, then run --repartition again", group, members, list,
                           members > NAMED_MAX ? ", ..." : "");
        if (!told)
            TS_LOG(TS_LOG_NOTICE, "repartition: the consumer group %s has %zu member(s) (%s): "
                   "waiting up to %" PRId64 " s for them to go (a stopped bridge stays a member "
                   "until its session times out)", group, members, list, wait_ms / 1000);
        told = true;
        struct timespec ts = {GROUP_POLL_MS / 1000, (GROUP_POLL_MS % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

struct kafka_ctx {
    rd_kafka_t *rk;
    const struct ts_bridge_cfg *cfg;
    int32_t m;
    const int64_t *high;
};

/* Before the layout changes: still nobody in the group, no new record. */
static int recheck(void *ctx, char *why, size_t why_size)
{
    struct kafka_ctx *k = ctx;
    const char *topic = k->cfg->kafka.readings_topic;
    int rc = group_empty(k->rk, k->cfg->kafka.group_id, 0, why, why_size);
    if (rc != TS_OK)
        return rc;
    for (int32_t p = 0; p < k->m; p++) {
        int64_t low, high;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(k->rk, topic, p, &low, &high, KAFKA_TIMEOUT_MS);
        if (e)
            return ts_fail(why, why_size, TS_EIO, "kafka: the offsets of %s [%" PRId32 "]: %s",
                           topic, p, rd_kafka_err2str(e));
        if (high != k->high[p])
            return ts_fail(why, why_size, TS_EBUSY, "partition %" PRId32 " of %s received "
                           "records while the tool ran (its end went from %" PRId64 " to %" PRId64
                           "): a relay is running. Stop every relay, let the aggregators take "
                           "everything, stop them, then run --repartition again", p, topic,
                           k->high[p], high);
    }
    return TS_OK;
}

int ts_repartition_run(const struct ts_bridge_cfg *cfg, FILE *out, char *why, size_t why_size)
{
    const char *root = cfg->lake.path, *table = cfg->lake.table;
    const char *topic = cfg->kafka.readings_topic;
    struct ts_repartition_report rep;
    rd_kafka_t *rk = NULL;
    int64_t *low = NULL, *high = NULL;
    int32_t n, m;

    int rc = ts_layout_read(root, table, topic, &n, why, why_size);
    if (rc == TS_ENOTFOUND)
        return ts_fail(why, why_size, rc, "the lake %s has no layout of %s yet: no aggregator has "
                       "run there (the first one records it); nothing to move", root, topic);
    if (rc != TS_OK)
        return rc;
    if ((rc = kafka_new(cfg, &rk, why, why_size)) != TS_OK)
        return rc;
    if ((m = topic_partitions(rk, topic)) > TS_LAYOUT_MAX_PARTITIONS) {
        rc = ts_fail(why, why_size, TS_EINVAL, "%s has %" PRId32 " partitions, more than a "
                     "layout may have (%d)", topic, m, TS_LAYOUT_MAX_PARTITIONS);
        goto done;
    }
    if (m <= 0) {
        rc = ts_fail(why, why_size, TS_EIO, "kafka: cannot learn how many partitions %s has "
                     "(brokers %s)", topic, cfg->kafka.brokers);
        goto done;
    }
    bool unfinished = ts_repartition_unfinished(root, table, topic);
    if (m < n) {
        rc = ts_fail(why, why_size, TS_EINVAL, "%s has %" PRId32 " partitions, fewer than the "
                     "lake's layout (%" PRId32 "): Kafka cannot remove partitions; was the topic "
                     "deleted and created again? Nothing done", topic, m, n);
        goto done;
    }
    if (m == n && !unfinished) {
        fprintf(out, "nothing to do: the lake's layout already spreads the agents over the %"
                PRId32 " partitions of %s\n", m, topic);
        goto done;
    }
    TS_LOG(TS_LOG_NOTICE, "repartition: %s has %" PRId32 " partitions, the lake's layout %" PRId32
           "%s", topic, m, n, unfinished ? " (an interrupted run is to be finished)" : "");
    rc = group_empty(rk, cfg->kafka.group_id, cfg->kafka.session_timeout_ms + GROUP_GRACE_MS, why,
                     why_size);
    if (rc != TS_OK)
        goto done;
    low = calloc((size_t)m, sizeof *low);
    high = calloc((size_t)m, sizeof *high);
    if (!low || !high) {
        rc = TS_ENOMEM;
        goto done;
    }
    for (int32_t p = 0; p < m; p++) {
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, p, &low[p], &high[p], KAFKA_TIMEOUT_MS);
        if (e) {
            rc = ts_fail(why, why_size, TS_EIO, "kafka: the offsets of %s [%" PRId32 "]: %s",
                         topic, p, rd_kafka_err2str(e));
            goto done;
        }
    }
    struct kafka_ctx kc = {rk, cfg, m, high};
    struct ts_repartition_args args = {.cfg = cfg, .m = m, .low = low, .high = high,
                                       .recheck = recheck, .ctx = &kc};
    rc = ts_repartition_lake(&args, &rep, why, why_size);
    if (rc == TS_OK && rep.nothing)
        fprintf(out, "nothing to do: the lake's layout already spreads the agents over the %"
                PRId32 " partitions of %s\n", m, topic);
    else if (rc == TS_OK)
        fprintf(out, "%s: the agents are now spread over %" PRId32 " partitions (were %" PRId32
                ")%s: %" PRIu64 " agents moved (%" PRIu64 " from archives), %" PRIu64
                " old copies removed (%" PRIu64 " left by an interrupted run), open windows of %u "
                "partitions flushed (%" PRIu64 " rows), %u checkpoints written. Start the "
                "aggregators, then the relays (relay-only bridges with [kafka] "
                "readings_partitions set: change it to %" PRId32 " first)\n",
                topic, rep.to, rep.from, rep.unfinished ? ", an interrupted run finished" : "",
                rep.moved, rep.moved_archived, rep.removed, rep.stale, rep.flushed, rep.rows,
                rep.checkpoints, rep.to);
done:
    free(low);
    free(high);
    if (rk)
        rd_kafka_destroy(rk);
    return rc;
}
