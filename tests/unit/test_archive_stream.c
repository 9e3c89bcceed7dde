/* SPDX-License-Identifier: Apache-2.0 */
/* Streaming over the archive of idle agents (bridge/agent_archive.h:
 * ts_archive_scan, ts_archive_merge), as the repartition tool uses them:
 * every line in order, merges with filters against an in-memory model,
 * conflicts, empty results and damaged inputs leave nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_archive.h"
#include "err.h"
#include "reading.h"
#include "seqset.h"

static uint64_t rng_state = 7;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static char dir[64];
static int dfd = -1;

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/ts-archive-stream.XXXXXX");
    assert_non_null(mkdtemp(dir));
    dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    return 0;
}

static int teardown(void **state)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(dfd, e->d_name, 0);
    if (d)
        closedir(d);
    close(dfd);
    rmdir(dir);
    return 0;
}

/* How many entries the directory holds (besides . and ..). */
static int entries(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

static void random_table(struct ts_seqsets *t, size_t n)
{
    static const char chars[] = "abcXYZ0189._-";
    char id[32];
    for (size_t i = 0; i < n; i++) {
        struct ts_seqset *set;
        size_t len = 1 + rnd() % 20;
        for (size_t k = 0; k < len; k++)
            id[k] = chars[rnd() % (sizeof chars - 1)];
        id[len] = '\0';
        assert_int_equal(ts_seqsets_get(t, id, &set), TS_OK);
        uint64_t c = rnd() % 1000000;
        if (c)
            assert_int_equal(ts_seqset_add(set, 1, c, NULL), TS_OK);
        for (int k = (int)(rnd() % 4); k > 0; k--) {
            uint64_t lo = c + 2 + rnd() % 1000;
            assert_int_equal(ts_seqset_add(set, lo, lo + rnd() % 5, NULL), TS_OK);
        }
    }
}

static struct ts_archive *write_open(const char *name, const struct ts_seqsets *t,
                                     struct ts_archive_ref *ref)
{
    char *text, why[256] = "";
    size_t len;
    struct ts_archive *a;
    assert_int_equal(ts_seqsets_encode(t, &text, &len), TS_OK);
    assert_int_equal(ts_archive_write(NULL, dfd, name, text, len, NULL, NULL, ref), TS_OK);
    free(text);
    int rc = ts_archive_open(dfd, ref, ts_archive_max_line(TS_SEQSET_MAX_RANGES), &a, why,
                             sizeof why);
    if (rc != TS_OK)
        fail_msg("open: %s", why);
    return a;
}

/* ts_archive_open checks crc, order and form: the merge's output passes. */
static struct ts_archive *open_checked(const struct ts_archive_ref *ref)
{
    char why[256] = "";
    struct ts_archive *a;
    int rc = ts_archive_open(dfd, ref, ts_archive_max_line(TS_SEQSET_MAX_RANGES), &a, why,
                             sizeof why);
    if (rc != TS_OK)
        fail_msg("open %s: %s", ref->name, why);
    return a;
}

/* Collects what a scan visits into a table, checking the order. */
struct collect {
    struct ts_seqsets t;
    char prev[TS_ID_MAX];
    size_t calls, stop_at;
};

static int collect(const char *agent, const char *set, size_t set_len, void *ctx)
{
    struct collect *c = ctx;
    struct ts_seqset *s;
    c->calls++;
    if (c->stop_at && c->calls == c->stop_at)
        return TS_EFULL;
    assert_true(strcmp(c->prev, agent) < 0);
    snprintf(c->prev, sizeof c->prev, "%s", agent);
    assert_int_equal(ts_seqsets_get(&c->t, agent, &s), TS_OK);
    assert_int_equal(ts_seqset_decode(s, set, set_len), TS_OK);
    return TS_OK;
}

static void assert_same_tables(const struct ts_seqsets *a, const struct ts_seqsets *b)
{
    char *x, *y;
    assert_int_equal(ts_seqsets_encode(a, &x, NULL), TS_OK);
    assert_int_equal(ts_seqsets_encode(b, &y, NULL), TS_OK);
    assert_string_equal(x, y);
    free(x);
    free(y);
}

static void scan_visits_every_line_in_order(void **state)
{
    struct ts_seqsets t;
    struct ts_archive_ref ref;
    ts_seqsets_init(&t, 0);
    random_table(&t, 3000);
    struct ts_archive *a = write_open("agents-000000000001-t.txt", &t, &ref);

    struct collect c = {.calls = 0};
    ts_seqsets_init(&c.t, 0);
    assert_int_equal(ts_archive_scan(a, collect, &c), TS_OK);
    assert_int_equal(c.calls, ts_seqsets_count(&t));
    assert_same_tables(&c.t, &t);
    ts_seqsets_free(&c.t);

    /* the visitor stops it with its own result */
    struct collect s = {.stop_at = 10};
    ts_seqsets_init(&s.t, 0);
    assert_int_equal(ts_archive_scan(a, collect, &s), TS_EFULL);
    assert_int_equal(s.calls, 10);
    ts_seqsets_free(&s.t);
    ts_archive_close(a);

    /* an empty archive, and none at all: no visit */
    struct ts_archive_ref none = {.name = ""};
    assert_int_equal(ts_archive_open(dfd, &none, 100, &a, NULL, 0), TS_OK);
    struct collect e = {.calls = 0};
    ts_seqsets_init(&e.t, 0);
    assert_int_equal(ts_archive_scan(a, collect, &e), TS_OK);
    assert_int_equal(ts_archive_scan(NULL, collect, &e), TS_OK);
    assert_int_equal(e.calls, 0);
    ts_seqsets_free(&e.t);
    ts_archive_close(a);
    ts_seqsets_free(&t);
}

static bool odd_first(const char *agent, void *ctx)
{
    if (ctx)
        (*(size_t *)ctx)++;
    return agent[0] & 1;
}

static bool even_first(const char *agent, void *ctx)
{
    return !(agent[0] & 1);
}

/* dst gets the agents of src that keep accepts. */
static void filtered(struct ts_seqsets *dst, const struct ts_seqsets *src,
                     bool (*keep)(const char *, void *))
{
    size_t cursor = 0;
    const char *agent;
    struct ts_seqset *set, *d;
    while (ts_seqsets_next(src, &cursor, &agent, &set)) {
        if (!keep(agent, NULL))
            continue;
        char text[256];
        int len = ts_seqset_encode(set, text, sizeof text);
        assert_true(len > 0);
        assert_int_equal(ts_seqsets_get(dst, agent, &d), TS_OK);
        assert_int_equal(ts_seqset_decode(d, text, (size_t)len), TS_OK);
    }
}

static void merge_with_filters_matches_a_model(void **state)
{
    struct ts_seqsets t1, t2, want, got;
    struct ts_archive_ref r1, r2, out;
    ts_seqsets_init(&t1, 0);
    ts_seqsets_init(&t2, 0);
    ts_seqsets_init(&want, 0);
    random_table(&t1, 3000);
    random_table(&t2, 3000); /* some ids on both sides: the filters part them */
    filtered(&want, &t1, odd_first);
    filtered(&want, &t2, even_first);
    struct ts_archive *a1 = write_open("agents-000000000001-t.txt", &t1, &r1);
    struct ts_archive *a2 = write_open("agents-000000000002-t.txt", &t2, &r2);

    size_t asked = 0;
    assert_int_equal(ts_archive_merge(a1, odd_first, &asked, a2, even_first, NULL, dfd,
                                      "agents-000000000003-t.txt", &out), TS_OK);
    assert_int_equal(asked, ts_seqsets_count(&t1)); /* every line of a1 was asked about once */
    assert_int_equal(out.agents, ts_seqsets_count(&want));
    struct ts_archive *m = open_checked(&out);
    struct collect c = {.calls = 0};
    ts_seqsets_init(&c.t, 0);
    assert_int_equal(ts_archive_scan(m, collect, &c), TS_OK);
    assert_same_tables(&c.t, &want);
    ts_seqsets_free(&c.t);
    ts_archive_close(m);

    /* a filter alone (b NULL), and the other way round (a NULL) */
    ts_seqsets_init(&got, 0);
    filtered(&got, &t1, odd_first);
    assert_int_equal(ts_archive_merge(a1, odd_first, NULL, NULL, NULL, NULL, dfd,
                                      "agents-000000000004-t.txt", &out), TS_OK);
    m = open_checked(&out);
    struct collect f = {.calls = 0};
    ts_seqsets_init(&f.t, 0);
    assert_int_equal(ts_archive_scan(m, collect, &f), TS_OK);
    assert_same_tables(&f.t, &got);
    ts_seqsets_free(&f.t);
    ts_archive_close(m);
    assert_int_equal(ts_archive_merge(NULL, NULL, NULL, a2, NULL, NULL, dfd,
                                      "agents-000000000005-t.txt", &out), TS_OK);
    assert_int_equal(out.agents, ts_seqsets_count(&t2));
    assert_int_equal(out.crc, r2.crc); /* every line of a2: the same file */

    /* the inputs are untouched */
    ts_archive_close(a1);
    ts_archive_close(a2);
    ts_archive_close(open_checked(&r1));
    ts_archive_close(open_checked(&r2));
    ts_seqsets_free(&got);
    ts_seqsets_free(&t1);
    ts_seqsets_free(&t2);
    ts_seqsets_free(&want);
}

static bool keep_none(const char *agent, void *ctx)
{
    return false;
}

static void conflicts_and_empty_results_leave_no_file(void **state)
{
    struct ts_seqsets t1, t2;
    struct ts_seqset *set;
    struct ts_archive_ref r1, r2, out;
    ts_seqsets_init(&t1, 0);
    ts_seqsets_init(&t2, 0);
    random_table(&t1, 100);
    random_table(&t2, 100);
    assert_int_equal(ts_seqsets_get(&t1, "both", &set), TS_OK);
    assert_int_equal(ts_seqsets_get(&t2, "both", &set), TS_OK);
    struct ts_archive *a1 = write_open("agents-000000000001-t.txt", &t1, &r1);
    struct ts_archive *a2 = write_open("agents-000000000002-t.txt", &t2, &r2);
    int before = entries();

    /* one agent on both sides: which one is the truth? refused */
    out.agents = 99;
    assert_int_equal(ts_archive_merge(a1, NULL, NULL, a2, NULL, NULL, dfd,
                                      "agents-000000000003-t.txt", &out), TS_ECONFLICT);
    assert_int_equal(out.agents, 0);
    assert_int_equal(entries(), before);

    /* nothing kept: no file, an empty reference */
    assert_int_equal(ts_archive_merge(a1, keep_none, NULL, a2, keep_none, NULL, dfd,
                                      "agents-000000000003-t.txt", &out), TS_OK);
    assert_string_equal(out.name, "");
    assert_int_equal(entries(), before);
    assert_int_equal(ts_archive_merge(NULL, NULL, NULL, NULL, NULL, NULL, dfd,
                                      "agents-000000000004-t.txt", &out), TS_OK);
    assert_string_equal(out.name, "");
    assert_int_equal(faccessat(dfd, "agents-000000000004-t.txt", F_OK, 0), -1);

    /* names that would reach out of the directory or hide */
    assert_int_equal(ts_archive_merge(a1, NULL, NULL, NULL, NULL, NULL, dfd, "../x", &out),
                     TS_EINVAL);
    assert_int_equal(ts_archive_merge(a1, NULL, NULL, NULL, NULL, NULL, dfd, ".x", &out),
                     TS_EINVAL);
    ts_archive_close(a1);
    ts_archive_close(a2);
    ts_seqsets_free(&t1);
    ts_seqsets_free(&t2);
}

static void damaged_inputs_are_refused(void **state)
{
    /* ts_archive_adopt checks the order of the ids as it indexes them */
    static const char bad[] = "b\t1\na\t2\n", good[] = "a\t1\nb\t2\n";
    int fd = openat(dfd, "agents-000000000001-t.txt", O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
    struct ts_archive_ref ref = {.name = "agents-000000000001-t.txt", .size = sizeof bad - 1,
                                 .agents = 2};
    struct ts_archive *a;
    assert_int_equal(ts_archive_adopt(dfd, &ref, 100, &a), TS_EPARSE);
    /* a file that changes under an adopted archive: the merge and the scan notice */
    assert_int_equal(pwrite(fd, good, sizeof good - 1, 0), (ssize_t)(sizeof good - 1));
    assert_int_equal(ts_archive_adopt(dfd, &ref, 100, &a), TS_OK);
    assert_int_equal(pwrite(fd, bad, sizeof bad - 1, 0), (ssize_t)(sizeof bad - 1));
    close(fd);
    struct ts_archive_ref out;
    assert_int_equal(ts_archive_merge(a, NULL, NULL, NULL, NULL, NULL, dfd,
                                      "agents-000000000002-t.txt", &out), TS_EPARSE);
    assert_int_equal(entries(), 1);
    struct collect c = {.calls = 0};
    ts_seqsets_init(&c.t, 0);
    assert_int_equal(ts_archive_scan(a, collect, &c), TS_EPARSE);
    ts_seqsets_free(&c.t);
    ts_archive_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(scan_visits_every_line_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(merge_with_filters_matches_a_model, setup, teardown),
        cmocka_unit_test_setup_teardown(conflicts_and_empty_results_leave_no_file, setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_inputs_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
