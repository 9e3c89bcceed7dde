/* SPDX-License-Identifier: Apache-2.0 */
/* The archive of idle agents' positions (bridge/agent_archive.h): lookups
 * by binary search on disk against an in-memory model, merges, the checks
 * at open, pruning. */
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
#include "agent_table.h"
#include "err.h"
#include "partition_state.h"
#include "reading.h"
#include "seqset.h"

static uint64_t rng_state = 42;

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
    snprintf(dir, sizeof dir, "/tmp/ts-archive.XXXXXX");
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
        if (e->d_name[0] != '.' || (e->d_name[1] && strcmp(e->d_name, "..")))
            unlinkat(dfd, e->d_name, 0);
    if (d)
        closedir(d);
    close(dfd);
    rmdir(dir);
    return 0;
}

/* A random id of letters, digits, '.', '_', '-' (1 to 20 characters). */
static void random_id(char *id)
{
    static const char chars[] = "abcXYZ0189._-";
    size_t n = 1 + rnd() % 20;
    for (size_t i = 0; i < n; i++)
        id[i] = chars[rnd() % (sizeof chars - 1)];
    id[n] = '\0';
}

/* Fills t with n random agents (ranges with some gaps). */
static void random_table(struct ts_seqsets *t, size_t n)
{
    char id[32];
    for (size_t i = 0; i < n; i++) {
        struct ts_seqset *set;
        random_id(id);
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

static char *set_text(const struct ts_seqset *s)
{
    size_t size = ts_seqset_encode_size(s);
    char *buf = malloc(size);
    assert_non_null(buf);
    assert_true(ts_seqset_encode(s, buf, size) >= 0);
    return buf;
}

/* Every agent of model is found with its set; absent ones are not. */
static void assert_matches(struct ts_archive *a, const struct ts_seqsets *model,
                           const struct ts_seqsets *absent)
{
    size_t cursor = 0;
    const char *agent;
    struct ts_seqset *want;
    while (ts_seqsets_next(model, &cursor, &agent, &want)) {
        struct ts_seqset got;
        ts_seqset_init(&got, 0);
        assert_int_equal(ts_archive_find(a, agent, &got), TS_OK);
        char *x = set_text(want), *y = set_text(&got);
        assert_string_equal(x, y);
        free(x);
        free(y);
        ts_seqset_free(&got);
    }
    cursor = 0;
    while (absent && ts_seqsets_next(absent, &cursor, &agent, &want)) {
        if (ts_seqsets_find(model, agent))
            continue;
        struct ts_seqset got;
        ts_seqset_init(&got, 0);
        assert_int_equal(ts_archive_find(a, agent, &got), TS_ENOTFOUND);
        ts_seqset_free(&got);
    }
}

static struct ts_archive *write_open(const struct ts_archive *old, const char *name,
                                     const struct ts_seqsets *add,
                                     bool (*keep_out)(const char *, void *), void *ctx,
                                     struct ts_archive_ref *ref)
{
    char *text;
    size_t len;
    struct ts_archive *a;
    assert_int_equal(ts_seqsets_encode(add, &text, &len), TS_OK);
    assert_int_equal(ts_archive_write(old, dfd, name, text, len, keep_out, ctx, ref), TS_OK);
    free(text);
    char why[256] = "";
    int rc = ts_archive_open(dfd, ref, ts_archive_max_line(TS_SEQSET_MAX_RANGES), &a, why,
                             sizeof why);
    if (rc != TS_OK)
        fail_msg("open: %s", why);
    return a;
}

static void lookups_match_a_model(void **state)
{
    struct ts_seqsets model, absent;
    struct ts_archive_ref ref;
    ts_seqsets_init(&model, 0);
    ts_seqsets_init(&absent, 0);
    random_table(&model, 3000);
    random_table(&absent, 3000);
    /* neighbours of present ids in byte order: prefixes and extensions */
    size_t cursor = 0;
    const char *agent;
    struct ts_seqset *set;
    char id[TS_ID_MAX];
    for (int i = 0; ts_seqsets_next(&model, &cursor, &agent, &set) && i < 200; i++) {
        snprintf(id, sizeof id, "%s0", agent);
        ts_seqsets_get(&absent, id, &set);
        if (strlen(agent) > 1) {
            snprintf(id, sizeof id, "%.*s", (int)strlen(agent) - 1, agent);
            ts_seqsets_get(&absent, id, &set);
        }
    }
    struct ts_archive *a = write_open(NULL, "agents-000000000001-t.txt", &model, NULL, NULL, &ref);
    assert_int_equal(ref.agents, ts_seqsets_count(&model));
    assert_matches(a, &model, &absent);
    ts_archive_close(a);
    ts_seqsets_free(&model);
    ts_seqsets_free(&absent);
}

static bool odd_first_char(const char *agent, void *ctx)
{
    (void)ctx;
    return agent[0] & 1;
}

static void merge_replaces_and_leaves_out(void **state)
{
    struct ts_seqsets first, second, want;
    struct ts_archive_ref r1, r2;
    ts_seqsets_init(&first, 0);
    ts_seqsets_init(&second, 0);
    ts_seqsets_init(&want, 0);
    random_table(&first, 2000);
    /* the second batch: new agents, and some of the first with new sets */
    random_table(&second, 500);
    size_t cursor = 0;
    const char *agent;
    struct ts_seqset *set, *s2;
    for (int i = 0; ts_seqsets_next(&first, &cursor, &agent, &set); i++)
        if (i % 3 == 0) {
            assert_int_equal(ts_seqsets_get(&second, agent, &s2), TS_OK);
            assert_int_equal(ts_seqset_add(s2, 1, 5000000 + (uint64_t)i, NULL), TS_OK);
        }
    /* the model: first minus the odd ones (back in memory), then second on top */
    cursor = 0;
    while (ts_seqsets_next(&first, &cursor, &agent, &set))
        if (!odd_first_char(agent, NULL)) {
            assert_int_equal(ts_seqsets_get(&want, agent, &s2), TS_OK);
            char *t = set_text(set);
            assert_int_equal(ts_seqset_decode(s2, t, strlen(t)), TS_OK);
            free(t);
        }
    cursor = 0;
    while (ts_seqsets_next(&second, &cursor, &agent, &set)) {
        assert_int_equal(ts_seqsets_get(&want, agent, &s2), TS_OK);
        char *t = set_text(set);
        assert_int_equal(ts_seqset_decode(s2, t, strlen(t)), TS_OK);
        free(t);
    }
    struct ts_archive *a1 = write_open(NULL, "agents-000000000001-t.txt", &first, NULL, NULL, &r1);
    struct ts_archive *a2 =
        write_open(a1, "agents-000000000002-t.txt", &second, odd_first_char, NULL, &r2);
    assert_int_equal(r2.agents, ts_seqsets_count(&want));
    assert_matches(a2, &want, &first);
    /* the old one is untouched */
    assert_matches(a1, &first, NULL);
    ts_archive_close(a1);
    ts_archive_close(a2);
    ts_seqsets_free(&first);
    ts_seqsets_free(&second);
    ts_seqsets_free(&want);
}

static void long_lines_and_edges(void **state)
{
    struct ts_seqsets t;
    struct ts_seqset *set;
    struct ts_archive_ref ref;
    ts_seqsets_init(&t, 0);
    /* an agent with the most ranges a set may hold, between two short ones */
    assert_int_equal(ts_seqsets_get(&t, "m", &set), TS_OK);
    for (uint64_t k = 0; k < TS_SEQSET_MAX_RANGES; k++)
        assert_int_equal(ts_seqset_add(set, UINT64_MAX - 3 * (k + 1), UINT64_MAX - 3 * (k + 1) + 1,
                                       NULL), TS_OK);
    assert_int_equal(ts_seqsets_get(&t, "a", &set), TS_OK);
    assert_int_equal(ts_seqsets_get(&t, "z", &set), TS_OK);
    assert_int_equal(ts_seqset_add(set, 1, UINT64_MAX, NULL), TS_OK);
    struct ts_archive *a = write_open(NULL, "agents-000000000003-t.txt", &t, NULL, NULL, &ref);
    assert_matches(a, &t, NULL);
    struct ts_seqset got;
    ts_seqset_init(&got, 0);
    assert_int_equal(ts_archive_find(a, "0", &got), TS_ENOTFOUND);
    assert_int_equal(ts_archive_find(a, "zz", &got), TS_ENOTFOUND);
    assert_int_equal(ts_archive_find(a, "l", &got), TS_ENOTFOUND);
    /* a set smaller than the line's ranges refuses it */
    ts_seqset_set_max_ranges(&got, 10);
    assert_int_equal(ts_archive_find(a, "m", &got), TS_EFULL);
    ts_seqset_free(&got);
    ts_archive_close(a);

    /* nothing at all: no file, an empty archive */
    struct ts_seqsets none;
    ts_seqsets_init(&none, 0);
    assert_int_equal(ts_archive_write(NULL, dfd, "agents-000000000004-t.txt", "", 0, NULL, NULL,
                                      &ref), TS_OK);
    assert_string_equal(ref.name, "");
    assert_int_equal(faccessat(dfd, "agents-000000000004-t.txt", F_OK, 0), -1);
    assert_int_equal(ts_archive_open(dfd, &ref, 100, &a, NULL, 0), TS_OK);
    ts_seqset_init(&got, 0);
    assert_int_equal(ts_archive_find(a, "a", &got), TS_ENOTFOUND);
    ts_archive_close(a);
    ts_seqsets_free(&none);
    ts_seqsets_free(&t);
}

/* A rewrite reads the old archive through a buffer refilled many times:
 * an archive of several buffers' worth, with sets of the most ranges among
 * short lines (one across a refill), merged with new agents; then every
 * agent is found with its set, and lookups of absent ids miss. */
static void big_merge_with_long_lines(void **state)
{
    struct ts_seqsets first, second, want, absent;
    struct ts_seqset *set, *s2;
    struct ts_archive_ref r1, r2;
    const char *agent;
    ts_seqsets_init(&first, 0);
    ts_seqsets_init(&second, 0);
    ts_seqsets_init(&want, 0);
    ts_seqsets_init(&absent, 0);
    random_table(&first, 20000);
    static const char *const longs[] = {"0", "a", "b-long", "c", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"};
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        assert_int_equal(ts_seqsets_get(&first, longs[i], &set), TS_OK);
        for (uint64_t k = 0; k < TS_SEQSET_MAX_RANGES; k++)
            assert_int_equal(ts_seqset_add(set, 1000 + 3 * k + i % 2, 1000 + 3 * k + i % 2, NULL),
                             TS_OK);
    }
    random_table(&second, 300);
    random_table(&absent, 2000);
    size_t cursor = 0;
    while (ts_seqsets_next(&first, &cursor, &agent, &set)) {
        assert_int_equal(ts_seqsets_get(&want, agent, &s2), TS_OK);
        char *t = set_text(set);
        assert_int_equal(ts_seqset_decode(s2, t, strlen(t)), TS_OK);
        free(t);
    }
    cursor = 0;
    while (ts_seqsets_next(&second, &cursor, &agent, &set)) {
        assert_int_equal(ts_seqsets_get(&want, agent, &s2), TS_OK);
        char *t = set_text(set);
        assert_int_equal(ts_seqset_decode(s2, t, strlen(t)), TS_OK);
        free(t);
    }
    struct ts_archive *a1 = write_open(NULL, "agents-000000000001-t.txt", &first, NULL, NULL, &r1);
    assert_true(r1.size > 3 * (ts_archive_max_line(TS_SEQSET_MAX_RANGES) + 65536));
    assert_matches(a1, &first, &absent);
    struct ts_archive *a2 = write_open(a1, "agents-000000000002-t.txt", &second, NULL, NULL, &r2);
    assert_int_equal(r2.agents, ts_seqsets_count(&want));
    assert_matches(a2, &want, &absent);
    ts_archive_close(a1);
    ts_archive_close(a2);
    ts_seqsets_free(&first);
    ts_seqsets_free(&second);
    ts_seqsets_free(&want);
    ts_seqsets_free(&absent);
}

/* A checkpoint's state names its archive (partition_state.h) and a restart
 * reads the name back: the tag of a real writer ("<owner>-<pid>-<hex>").
 * The name's ".txt" was read as part of the tag, so every restart of a
 * partition with an archive failed ("the archive line is malformed"). */
static void state_names_the_archive(void **state)
{
    struct ts_seqsets t, back;
    struct ts_seqset *set;
    struct ts_archive_ref ref, got;
    struct ts_window_cfg cfg;
    struct ts_window_agg *w, *w2;
    char name[TS_ARCHIVE_NAME_MAX], *text, why[256] = "";
    size_t len;
    ts_seqsets_init(&t, 0);
    ts_seqsets_init(&back, 0);
    assert_int_equal(ts_seqsets_get(&t, "r051-ctrl-01", &set), TS_OK);
    assert_int_equal(ts_seqset_add(set, 1, 42, NULL), TS_OK);
    assert_int_equal(ts_archive_name(229, "b1-13069-594c9935", name, sizeof name), TS_OK);
    struct ts_archive *a = write_open(NULL, name, &t, NULL, NULL, &ref);
    ts_window_cfg_default(&cfg);
    assert_int_equal(ts_window_new(&cfg, &w, why, sizeof why), TS_OK);
    assert_int_equal(ts_window_new(&cfg, &w2, why, sizeof why), TS_OK);
    assert_int_equal(ts_partition_state_encode(&t, w, &ref, &text, &len), TS_OK);
    int rc = ts_partition_state_decode(text, len, &back, w2, 0, &got, why, sizeof why);
    if (rc != TS_OK)
        fail_msg("decode: %s", why);
    assert_string_equal(got.name, "agents-000000000229-b1-13069-594c9935.txt");
    assert_int_equal(got.size, ref.size);
    assert_int_equal(got.crc, ref.crc);
    assert_int_equal(got.agents, 1);
    assert_int_equal(ts_seqsets_count(&back), 1);
    /* names that are not an archive's are refused: the same state with
     * another name on its archive line */
    static const char *const bad[] = {"agents-000000000229-b1.txt/../x.txt", "agents-229-b1.txt",
                                      "agents-000000000229-b1", "agents-000000000229-.txt",
                                      "agents-000000000229-b1.csv", "../agents-000000000229-b1.txt"};
    const char *line = strstr(text, "archive ") + 8, *rest = strchr(line, ' ');
    char good[TS_ARCHIVE_NAME_MAX];
    snprintf(good, sizeof good, "%s", got.name);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0] + 1; i++) {
        char *st = malloc(len + 128);
        const char *nm = i < sizeof bad / sizeof bad[0] ? bad[i] : good;
        int n = snprintf(st, len + 128, "%.*s%s%.*s", (int)(line - text), text, nm,
                         (int)(text + len - rest), rest);
        ts_window_free(w2);
        assert_int_equal(ts_window_new(&cfg, &w2, why, sizeof why), TS_OK);
        rc = ts_partition_state_decode(st, (size_t)n, &back, w2, 0, &got, why, sizeof why);
        /* the last one, the right name again: accepted (the others fail for their name) */
        assert_int_equal(rc, i < sizeof bad / sizeof bad[0] ? TS_EPARSE : TS_OK);
        if (rc != TS_OK)
            assert_non_null(strstr(why, "archive line"));
        free(st);
    }
    free(text);
    ts_window_free(w);
    ts_window_free(w2);
    ts_archive_close(a);
    ts_seqsets_free(&t);
    ts_seqsets_free(&back);
}

static void damaged_files_are_refused(void **state)
{
    struct ts_seqsets t;
    struct ts_archive_ref ref, bad;
    struct ts_archive *a;
    char why[256];
    ts_seqsets_init(&t, 0);
    random_table(&t, 50);
    a = write_open(NULL, "agents-000000000005-t.txt", &t, NULL, NULL, &ref);
    ts_archive_close(a);
    size_t max = ts_archive_max_line(TS_SEQSET_MAX_RANGES);

    bad = ref;
    bad.crc ^= 1;
    assert_int_equal(ts_archive_open(dfd, &bad, max, &a, why, sizeof why), TS_EPARSE);
    assert_non_null(strstr(why, "crc"));
    bad = ref;
    bad.size++;
    assert_int_equal(ts_archive_open(dfd, &bad, max, &a, why, sizeof why), TS_EPARSE);
    bad = ref;
    bad.agents++;
    assert_int_equal(ts_archive_open(dfd, &bad, max, &a, why, sizeof why), TS_EPARSE);
    snprintf(bad.name, sizeof bad.name, "agents-000000000099-t.txt");
    assert_int_equal(ts_archive_open(dfd, &bad, max, &a, why, sizeof why), TS_ESYS);

    /* a byte changed in place: the crc says so */
    int fd = openat(dfd, ref.name, O_RDWR);
    assert_true(fd >= 0);
    char c;
    assert_int_equal(pread(fd, &c, 1, 3), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, 3), 1);
    close(fd);
    assert_int_equal(ts_archive_open(dfd, &ref, max, &a, why, sizeof why), TS_EPARSE);

    /* lines out of order are refused when writing */
    static const char unsorted[] = "b\t1\na\t2\n";
    assert_int_equal(ts_archive_write(NULL, dfd, "agents-000000000006-t.txt", unsorted,
                                      sizeof unsorted - 1, NULL, NULL, &bad), TS_EPARSE);
    assert_int_equal(faccessat(dfd, "agents-000000000006-t.txt", F_OK, 0), -1);
    assert_int_equal(faccessat(dfd, ".agents-000000000006-t.txt.tmp", F_OK, 0), -1);
    static const char noid[] = "\t1\n";
    assert_int_equal(ts_archive_write(NULL, dfd, "agents-000000000006-t.txt", noid,
                                      sizeof noid - 1, NULL, NULL, &bad), TS_EPARSE);
    ts_seqsets_free(&t);
}

static void prune_keeps_the_named_and_later_ones(void **state)
{
    static const char *const names[] = {
        "agents-000000000001-a.txt", "agents-000000000002-a.txt", "agents-000000000003-b.txt",
        ".agents-000000000002-a.txt.tmp", "agents-000000000004-c.txt", "000000000001.ckpt"};
    char name[64];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int fd = openat(dfd, names[i], O_WRONLY | O_CREAT, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
    assert_int_equal(ts_archive_prune(dfd, 3, "agents-000000000002-a.txt"), 3);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        bool kept = i == 1 || i == 4 || i == 5;
        assert_int_equal(faccessat(dfd, names[i], F_OK, 0) == 0, kept);
    }
    assert_int_equal(ts_archive_name(12, "b1-123-abcd", name, sizeof name), TS_OK);
    assert_string_equal(name, "agents-000000000012-b1-123-abcd.txt");
    assert_int_equal(ts_archive_name(12, "a/b", name, sizeof name), TS_EINVAL);
}

/* No archive directory (dirfd -1: a store with no manifest fd; the object
 * lake had none before its archive went to the bucket): nobody leaves memory,
 * idle or not, and past max_agents prepare refuses (TS_EFULL) rather than
 * drop an agent's state; nothing is written anywhere. */
static void no_archive_directory_keeps_everyone(void **state)
{
    (void)state;
    struct ts_agent_table t = {0};
    struct ts_archive_ref ref = {0}, out;
    struct ts_seqset *set;
    bool found;
    char why[160] = "", id[16];

    assert_int_equal(ts_agent_table_open(&t, -1, &ref, 4, 1000, why, sizeof why), TS_OK);
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "a%d", i);
        assert_int_equal(ts_agent_table_get(&t, id, &set, &found), TS_OK);
        set->touched_ms = 0; /* idle for long at now = 1e9 */
    }
    assert_int_equal(ts_agent_table_prepare(&t, 1000000000, 2, "w", &out), TS_OK);
    assert_int_equal(out.name[0], '\0');
    ts_agent_table_finish(&t, true, 2);
    assert_int_equal(ts_seqsets_count(&t.hot), 4);
    assert_int_equal(ts_agent_table_get(&t, "a4", &set, &found), TS_OK);
    set->touched_ms = 0;
    assert_true(ts_agent_table_over(&t));
    assert_int_equal(ts_agent_table_prepare(&t, 1000000000, 3, "w", &out), TS_EFULL);
    ts_agent_table_finish(&t, false, 3);
    assert_int_equal(ts_seqsets_count(&t.hot), 5);
    ts_agent_table_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(lookups_match_a_model, setup, teardown),
        cmocka_unit_test_setup_teardown(merge_replaces_and_leaves_out, setup, teardown),
        cmocka_unit_test_setup_teardown(long_lines_and_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(big_merge_with_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(state_names_the_archive, setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_files_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(prune_keeps_the_named_and_later_ones, setup, teardown),
        cmocka_unit_test(no_archive_directory_keeps_everyone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
