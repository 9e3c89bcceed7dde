/* SPDX-License-Identifier: Apache-2.0 */
/* agent_table.c - a partition's agents in memory and in the archive (see agent_table.h). */
#include "agent_table.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "lake.h"

static size_t max_line(void)
{
    return ts_archive_max_line(TS_SEQSET_MAX_RANGES);
}

int ts_agent_table_open(struct ts_agent_table *t, int dirfd, const struct ts_archive_ref *ref,
                        size_t max_agents, int64_t idle_ms, char *why, size_t why_size)
{
    memset(t, 0, sizeof *t);
    ts_seqsets_init(&t->hot, 0);
    ts_seqsets_init(&t->leaving, 0);
    t->dirfd = dirfd;
    t->max_agents = max_agents ? max_agents : 1;
    t->idle_ms = idle_ms > 0 ? idle_ms : 0;
    return ts_archive_open(dirfd, ref, max_line(), &t->archive, why, why_size);
}

int ts_agent_table_open_lake(struct ts_agent_table *t, struct ts_lake *lake,
                             const struct ts_archive_ref *ref, size_t max_agents, int64_t idle_ms,
                             char *why, size_t why_size)
{
    int rc = ref->name[0] ? ts_lake_side_fetch(lake, ref->name) : TS_OK;
    if (rc != TS_OK) {
        int saved = errno;
        memset(t, 0, sizeof *t);
        ts_seqsets_init(&t->hot, 0);
        ts_seqsets_init(&t->leaving, 0);
        ts_why(why, why_size, "archive %s: fetching it from the lake: %s", ref->name,
               rc == TS_ESYS ? strerror(saved) : ts_strerror(rc));
        errno = saved;
        return rc;
    }
    rc = ts_agent_table_open(t, ts_lake_manifest_fd(lake), ref, max_agents, idle_ms, why,
                             why_size);
    t->lake = lake;
    return rc;
}

void ts_agent_table_close(struct ts_agent_table *t)
{
    ts_seqsets_free(&t->hot);
    ts_seqsets_free(&t->leaving);
    ts_archive_close(t->archive);
    ts_archive_close(t->next);
    t->archive = t->next = NULL;
}

int ts_agent_table_get(struct ts_agent_table *t, const char *agent, struct ts_seqset **set,
                       bool *found)
{
    *found = true;
    if ((*set = ts_seqsets_find(&t->hot, agent)))
        return TS_OK;
    struct ts_seqset back;
    ts_seqset_init(&back, 0);
    int rc = t->archive ? ts_archive_find(t->archive, agent, &back) : TS_ENOTFOUND;
    if (rc != TS_OK && rc != TS_ENOTFOUND) {
        ts_seqset_free(&back);
        return rc;
    }
    *found = rc == TS_OK;
    if ((rc = ts_seqsets_get(&t->hot, agent, set)) != TS_OK) {
        ts_seqset_free(&back);
        return rc;
    }
    if (*found) {
        size_t max = (*set)->max_ranges;
        ts_seqset_free(*set);
        **set = back;              /* the archived numbers, in memory again */
        (*set)->max_ranges = max;
        (*set)->touched_ms = 0;
        t->brought_back++;
    }
    return TS_OK;
}

struct ts_seqset *ts_agent_table_peek(struct ts_agent_table *t, const char *agent)
{
    struct ts_seqset *s = ts_seqsets_find(&t->hot, agent);
    return s ? s : ts_seqsets_find(&t->leaving, agent);
}

bool ts_agent_table_over(const struct ts_agent_table *t)
{
    return ts_seqsets_count(&t->hot) > t->max_agents;
}

struct cand {
    int64_t touched_ms;
    const char *agent;
};

static int by_touched(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    return x->touched_ms < y->touched_ms ? -1 : x->touched_ms > y->touched_ms;
}

/* keep_out of ts_archive_write: an archived agent that is in memory again */
static bool in_memory(const char *agent, void *ctx)
{
    return ts_seqsets_find(ctx, agent) != NULL;
}

int ts_agent_table_prepare(struct ts_agent_table *t, int64_t now_ms, uint64_t gen,
                           const char *tag, struct ts_archive_ref *ref)
{
    size_t n = ts_seqsets_count(&t->hot), k = 0, cursor = 0, goal = n;
    const char *agent;
    struct ts_seqset *set;

    *ref = *ts_archive_ref(t->archive);
    ts_seqsets_free(&t->leaving);
    ts_seqsets_init(&t->leaving, 0);
    /* no archive directory (a store with no manifest fd; the object lake
     * has one now, in its spool): nobody leaves memory, and past max_agents
     * the checkpoint stops (never an agent's state lost, which would count
     * its readings twice) */
    if (t->dirfd < 0)
        return n > t->max_agents ? TS_EFULL : TS_OK;
    if (!n)
        return TS_OK;
    if (n > t->max_agents)
        goal = t->max_agents - t->max_agents / 4;
    struct cand *c = malloc(n * sizeof *c);
    if (!c)
        return TS_ENOMEM;
    while (ts_seqsets_next(&t->hot, &cursor, &agent, &set))
        c[k++] = (struct cand){set->touched_ms, agent};
    qsort(c, k, sizeof *c, by_touched);
    size_t out = 0;
    while (out < k && (n - out > goal || (t->idle_ms && c[out].touched_ms < now_ms - t->idle_ms)))
        out++;
    if (!out) {
        free(c);
        return TS_OK;
    }
    /* the leaving agents' sets, copied into a table of their own (sorted
     * text for the archive); they leave memory only once it is written */
    int rc = TS_OK;
    for (size_t i = 0; i < out && rc == TS_OK; i++) {
        struct ts_seqset *dst;
        size_t sz = ts_seqset_encode_size(ts_seqsets_find(&t->hot, c[i].agent));
        char *text = malloc(sz);
        rc = text ? ts_seqsets_get(&t->leaving, c[i].agent, &dst) : TS_ENOMEM;
        if (rc == TS_OK) {
            int len = ts_seqset_encode(ts_seqsets_find(&t->hot, c[i].agent), text, sz);
            ts_seqset_set_max_ranges(dst, SIZE_MAX);
            rc = len < 0 ? TS_ENOMEM : ts_seqset_decode(dst, text, (size_t)len);
        }
        free(text);
    }
    char name[TS_ARCHIVE_NAME_MAX], *add = NULL;
    size_t add_len = 0;
    if (rc == TS_OK)
        rc = ts_archive_name(gen, tag, name, sizeof name);
    if (rc == TS_OK)
        rc = ts_seqsets_encode(&t->leaving, &add, &add_len);
    /* archived agents back in memory (and not leaving) are the checkpoint's */
    struct ts_seqsets staying = t->hot;
    if (rc == TS_OK)
        rc = ts_archive_write(t->archive, t->dirfd, name, add, add_len, in_memory, &staying, ref);
    free(add);
    /* in the store before any checkpoint can name it (the object lake) */
    if (rc == TS_OK && t->lake && ref->name[0] &&
        (rc = ts_lake_side_publish(t->lake, ref->name)) != TS_OK) {
        int saved = errno;
        unlinkat(t->dirfd, ref->name, 0);
        errno = saved;
    }
    if (rc == TS_OK)
        rc = ts_archive_adopt(t->dirfd, ref, max_line(), &t->next);
    if (rc != TS_OK) {
        free(c);
        ts_seqsets_free(&t->leaving);
        ts_seqsets_init(&t->leaving, 0);
        *ref = *ts_archive_ref(t->archive);
        return rc;
    }
    for (size_t i = 0; i < out; i++) {
        struct ts_seqset gone;
        if (ts_seqsets_take(&t->hot, c[i].agent, &gone))
            ts_seqset_free(&gone);
    }
    t->moved_out += out;
    free(c);
    return TS_OK;
}

struct prune {
    uint64_t upto;
    const char *keep;
};

static bool prunable(const char *name, void *ctx)
{
    const struct prune *pr = ctx;
    return ts_archive_prunable(name, pr->upto, pr->keep);
}

void ts_agent_archives_prune(int dirfd, struct ts_lake *lake, uint64_t upto, const char *keep)
{
    ts_archive_prune(dirfd, upto, keep);
    if (lake) {
        struct prune pr = {upto, keep};
        ts_lake_side_prune(lake, prunable, &pr);
    }
}

void ts_agent_table_finish(struct ts_agent_table *t, bool committed, uint64_t gen)
{
    ts_seqsets_free(&t->leaving);
    ts_seqsets_init(&t->leaving, 0);
    if (committed && t->next) {
        /* archives of generations up to the one it replaces, that one
         * excepted (the checkpoints before this one name it), go; with no
         * rewrite there is nothing new to delete */
        uint64_t prev = ts_archive_generation(t->archive);
        ts_archive_close(t->archive);
        t->archive = t->next;
        t->next = NULL;
        uint64_t upto = prev ? prev - 1 : gen;
        const char *keep = ts_archive_ref(t->archive)->name;
        ts_agent_archives_prune(t->dirfd, t->lake, upto, keep);
    }
    ts_archive_close(t->next);
    t->next = NULL;
}

void ts_agent_table_stats(const struct ts_agent_table *t, struct ts_agent_table_stats *st)
{
    st->in_memory = ts_seqsets_count(&t->hot);
    st->archived = t->archive ? ts_archive_ref(t->archive)->agents : 0;
    st->moved_out = t->moved_out;
    st->brought_back = t->brought_back;
}
