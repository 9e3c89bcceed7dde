/* SPDX-License-Identifier: Apache-2.0 */
/* The data lake writer (bridge/lake.h): the data files as gunzip reads them,
 * the checkpoint and resume, conflicts between two owners, roll-forward,
 * stray temporaries, corrupted checkpoints, pruning, the bound on open
 * files (counted in /proc/self/fd, and under an RLIMIT_NOFILE that leaves
 * no more), a lake written by the writer of before that bound
 * (fixtures/lake-v1), and a child killed with SIGKILL at random moments:
 * after each kill, ts_lake_open must succeed, no visible file may be
 * unnamed by a checkpoint, and the visible rows must sum to exactly what
 * the last checkpoint's state says was committed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "err.h"
#include "lake.h"
#include "log.h"

#define TOPIC "readings"
#define PART 3
#define MDIR "turnstile/_manifest/readings-3"
#define D1 "turnstile/event_date=2023-06-03/"
#define D2 "turnstile/event_date=2023-06-04/"
#define OLD1 "turnstile/date=2023-06-03/" /* the partition key of before (lake-v1) */
#define OLD2 "turnstile/date=2023-06-04/"
#define HDR "CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n"

static char base[256]; /* this run's scratch directory */
static char root[300]; /* the lake root of the current test (not created) */
static int test_no;

/* ---- helpers ---- */

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char sub[1024];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state)
{
    snprintf(root, sizeof root, "%s/t%d/lake", base, ++test_no);
    return 0;
}

static int teardown(void **state)
{
    char dir[320];
    snprintf(dir, sizeof dir, "%s/t%d", base, test_no);
    rm_rf(dir);
    return 0;
}

static struct ts_lake_cfg config(bool row_number, int keep)
{
    return (struct ts_lake_cfg){.root = root, .table = "turnstile", .owner = "bridge-a",
                                .row_number = row_number, .compression_level = 6,
                                .keep_checkpoints = keep, .max_open_files = 64,
                                .max_checkpoint_files = 1000};
}

static struct ts_lake *open_ok(const struct ts_lake_cfg *cfg, struct ts_lake_resume *res)
{
    struct ts_lake *l = NULL;
    char why[512] = "";
    int rc = ts_lake_open(cfg, TOPIC, PART, &l, res, why, sizeof why);
    if (rc)
        fail_msg("ts_lake_open: %s: %s", ts_strerror(rc), why);
    assert_non_null(l);
    return l;
}

static struct ts_window_row row(const char *scp, const char *date, const char *time, uint64_t e,
                                uint64_t x, bool late)
{
    struct ts_window_row r = {.entries = e, .exits = x, .late = late};
    strcpy(r.ca, "A002");
    strcpy(r.unit, "R051");
    snprintf(r.scp, sizeof r.scp, "%s", scp);
    strcpy(r.station, "59 ST");
    strcpy(r.linename, "NQR456W");
    strcpy(r.division, "BMT");
    strcpy(r.desc, "REGULAR");
    snprintf(r.date, sizeof r.date, "%s", date);
    snprintf(r.time, sizeof r.time, "%s", time);
    return r;
}

static void write_ok(struct ts_lake *l, struct ts_window_row r)
{
    assert_int_equal(ts_lake_write_row(l, &r), TS_OK);
}

static void path_of(char *buf, size_t size, const char *rel)
{
    snprintf(buf, size, "%s/%s", root, rel);
}

static bool exists(const char *rel)
{
    char p[1024];
    path_of(p, sizeof p, rel);
    return access(p, F_OK) == 0;
}

/* The whole file, gunzipped (or as it is, if not gzip), NUL-terminated. */
static char *slurp(const char *path, size_t *len)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        fail_msg("cannot open %s", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int r;
    while ((r = gzread(gz, buf + n, (unsigned)(cap - n - 1))) > 0) {
        n += (size_t)r;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    assert_true(r == 0);
    assert_int_equal(gzclose(gz), Z_OK);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static void expect_file(const char *rel, const char *content)
{
    char p[1024];
    path_of(p, sizeof p, rel);
    char *got = slurp(p, NULL);
    assert_string_equal(got, content);
    free(got);
}

static char *checkpoint_text(uint64_t gen)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/" MDIR "/%012" PRIu64 ".ckpt", root, gen);
    return slurp(p, NULL);
}

/* Names in a directory of the lake, sorted, joined by ' '; hidden ones only
 * if hidden. */
static char *list(const char *rel, bool hidden)
{
    char p[1024], *names[256];
    size_t n = 0, len = 1;
    path_of(p, sizeof p, rel);
    DIR *d = opendir(p);
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (e->d_name[0] == '.') == hidden) {
            assert_true(n < 256);
            names[n++] = strdup(e->d_name);
            len += strlen(e->d_name) + 1;
        }
    closedir(d);
    for (size_t i = 1; i < n; i++) /* insertion sort */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    char *out = calloc(1, len);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, " ");
        strcat(out, names[i]);
        free(names[i]);
    }
    return out;
}

static void expect_list(const char *rel, bool hidden, const char *names)
{
    char *got = list(rel, hidden);
    assert_string_equal(got, names);
    free(got);
}

static void touch(const char *rel)
{
    char p[1024];
    path_of(p, sizeof p, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("junk", f);
    fclose(f);
}

static void rename_rel(const char *from, const char *to)
{
    char a[1024], b[1024];
    path_of(a, sizeof a, from);
    path_of(b, sizeof b, to);
    assert_int_equal(rename(a, b), 0);
}

static void commit_ok(struct ts_lake *l, int64_t offset, const char *state, size_t len,
                      uint64_t gen, unsigned files, uint64_t rows)
{
    struct ts_lake_commit_info info;
    assert_int_equal(ts_lake_commit(l, offset, state, len, &info), TS_OK);
    assert_int_equal(info.generation, gen);
    assert_int_equal(info.files, files);
    assert_int_equal(info.rows, rows);
    assert_int_equal(ts_lake_pending_rows(l), 0);
}

/* The writer tag a checkpoint records (its temporaries' suffix). */
static void writer_of(uint64_t gen, char *tag, size_t size)
{
    char *text = checkpoint_text(gen);
    const char *w = strstr(text, "\nwriter ");
    assert_non_null(w);
    w += 8;
    size_t n = strcspn(w, "\n");
    assert_true(n < size);
    memcpy(tag, w, n);
    tag[n] = '\0';
    free(text);
}

/* ---- tests ---- */

static void open_empty_root_then_checkpoint_only(void **state)
{
    struct ts_lake_cfg cfg = config(true, 5);
    struct ts_lake_resume res;
    struct ts_lake *l = open_ok(&cfg, &res); /* the root does not exist yet */
    assert_int_equal(res.generation, 0);
    assert_int_equal(res.offset_next, -1);
    assert_null(res.state);
    assert_int_equal(res.state_len, 0);
    assert_int_equal(res.rolled_forward, 0);
    assert_int_equal(res.removed_temporaries, 0);
    assert_true(exists(MDIR));
    expect_list(MDIR, false, "");

    commit_ok(l, 42, "s1", 2, 1, 0, 0);           /* no rows: offsets and state only */
    expect_list("turnstile", false, "_manifest"); /* no data directory */
    expect_list(MDIR, false, "000000000001.ckpt");
    expect_list(MDIR, true, "");
    char *text = checkpoint_text(1);
    assert_non_null(strstr(text, "ts-lake-checkpoint 1\ntopic readings\npartition 3\n"
                                 "generation 1\nowner bridge-a\nwriter bridge-a-"));
    assert_non_null(strstr(text, "\noffset_from -1\noffset_next 42\nstate 2\ns1\ncrc32 "));
    assert_null(strstr(text, "\nfile "));
    uLong crc = crc32(0, (const Bytef *)text, (uInt)(strlen(text) - 15));
    char want[32];
    snprintf(want, sizeof want, "crc32 %08lx\n", crc);
    assert_string_equal(text + strlen(text) - 15, want);
    free(text);
    ts_lake_close(l);

    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 1);
    assert_int_equal(res.offset_next, 42);
    assert_int_equal(res.state_len, 2);
    assert_memory_equal(res.state, "s1", 3); /* NUL-terminated */
    free(res.state);
    commit_ok(l, 50, NULL, 0, 2, 0, 0);
    text = checkpoint_text(2);
    assert_non_null(strstr(text, "\noffset_from 42\noffset_next 50\nstate 0\n\ncrc32 "));
    free(text);
    ts_lake_close(l);
    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 2);
    assert_int_equal(res.state_len, 0);
    free(res.state);
    ts_lake_close(l);
}

static void data_files_with_row_number(void **state)
{
    struct ts_lake_cfg cfg = config(true, 5);
    struct ts_lake_resume res;
    struct ts_lake *l = open_ok(&cfg, &res);

    write_ok(l, row("02-00-00", "06/03/2023", "00:05:00", 12, 7, false));
    write_ok(l, row("02-00-01", "06/04/2023", "00:10:00", 3, 4, false));
    write_ok(l, row("02-00-01", "06/03/2023", "00:05:00", 0, 4000000000000ULL, false));
    write_ok(l, row("02-00-00", "06/03/2023", "00:00:00", 5, 1, true));
    assert_int_equal(ts_lake_pending_rows(l), 4);
    /* nothing visible before the commit: only hidden temporaries */
    expect_list(D1, false, "");
    expect_list(D2, false, "");
    char *tmps = list(D1, true);
    assert_non_null(strstr(tmps, ".late-readings-3-000000000001.csv.gz.bridge-a-"));
    assert_non_null(strstr(tmps, ".part-readings-3-000000000001.csv.gz.bridge-a-"));
    free(tmps);
    expect_list(MDIR, false, "");

    commit_ok(l, 100, "st", 2, 1, 3, 4);
    expect_list(D1, false, "late-readings-3-000000000001.csv.gz part-readings-3-000000000001.csv.gz");
    expect_list(D2, false, "part-readings-3-000000000001.csv.gz");
    expect_list(D1, true, "");
    expect_list(D2, true, "");
    expect_file(D1 "part-readings-3-000000000001.csv.gz",
                "," HDR
                "0,A002,R051,02-00-00,59 ST,NQR456W,BMT,06/03/2023,00:05:00,REGULAR,12,7\n"
                "1,A002,R051,02-00-01,59 ST,NQR456W,BMT,06/03/2023,00:05:00,REGULAR,0,"
                "4000000000000\n");
    expect_file(D1 "late-readings-3-000000000001.csv.gz",
                "," HDR "0,A002,R051,02-00-00,59 ST,NQR456W,BMT,06/03/2023,00:00:00,REGULAR,5,1\n");
    expect_file(D2 "part-readings-3-000000000001.csv.gz",
                "," HDR "0,A002,R051,02-00-01,59 ST,NQR456W,BMT,06/04/2023,00:10:00,REGULAR,3,4\n");
    char *text = checkpoint_text(1);
    assert_non_null(strstr(text, "\nfile " D1 "part-readings-3-000000000001.csv.gz rows 2 "
                                 "entries 12 exits 4000000000007 late 0\n"));
    assert_non_null(strstr(text, "\nfile " D1 "late-readings-3-000000000001.csv.gz rows 1 "
                                 "entries 5 exits 1 late 1\n"));
    assert_non_null(strstr(text, "\nfile " D2 "part-readings-3-000000000001.csv.gz rows 1 "
                                 "entries 3 exits 4 late 0\n"));
    free(text);

    /* the next commit: new files, row numbers from 0 again */
    write_ok(l, row("02-00-02", "06/03/2023", "00:15:00", 1, 2, false));
    write_ok(l, row("02-00-03", "06/03/2023", "00:15:00", 3, 4, false));
    commit_ok(l, 102, "st", 2, 2, 1, 2);
    expect_list(D1, false, "late-readings-3-000000000001.csv.gz part-readings-3-000000000001.csv.gz "
                           "part-readings-3-000000000002.csv.gz");
    expect_file(D1 "part-readings-3-000000000002.csv.gz",
                "," HDR
                "0,A002,R051,02-00-02,59 ST,NQR456W,BMT,06/03/2023,00:15:00,REGULAR,1,2\n"
                "1,A002,R051,02-00-03,59 ST,NQR456W,BMT,06/03/2023,00:15:00,REGULAR,3,4\n");
    ts_lake_close(l);
}

static void data_files_without_row_number(void **state)
{
    struct ts_lake_cfg cfg = config(false, 5);
    struct ts_lake_resume res;
    struct ts_lake *l = open_ok(&cfg, &res);
    write_ok(l, row("02-00-00", "12/31/2023", "23:55:00", 1, 2, false));
    write_ok(l, row("02-00-01", "12/31/2023", "00:00:00", 3, 4, false));
    write_ok(l, row("02-00-00", "01/01/2024", "00:05:00", 5, 6, true));
    commit_ok(l, 3, "x", 1, 1, 2, 3);
    expect_file("turnstile/event_date=2023-12-31/part-readings-3-000000000001.csv.gz",
                HDR "A002,R051,02-00-00,59 ST,NQR456W,BMT,12/31/2023,23:55:00,REGULAR,1,2\n"
                    "A002,R051,02-00-01,59 ST,NQR456W,BMT,12/31/2023,00:00:00,REGULAR,3,4\n");
    expect_file("turnstile/event_date=2024-01-01/late-readings-3-000000000001.csv.gz",
                HDR "A002,R051,02-00-00,59 ST,NQR456W,BMT,01/01/2024,00:05:00,REGULAR,5,6\n");
    expect_list("turnstile/event_date=2024-01-01", false, "late-readings-3-000000000001.csv.gz");
    ts_lake_close(l);
}

static void resumes_latest_generation_offset_and_state(void **state)
{
    struct ts_lake_cfg cfg = config(true, 10);
    struct ts_lake_resume res;
    /* binary state: NULs, newlines, and a line that looks like the crc */
    static const char s1[] = "a\0b\n\ncrc32 00000000\n\0";
    static const char s2[] = "\n\0\0state 3\nfile x rows 1\n\xff\x80";
    struct ts_lake *l = open_ok(&cfg, &res);
    commit_ok(l, 10, s1, sizeof s1 - 1, 1, 0, 0);
    write_ok(l, row("02-00-00", "06/03/2023", "00:05:00", 1, 1, false));
    commit_ok(l, 11, s2, sizeof s2 - 1, 2, 1, 1);
    ts_lake_close(l);

    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 2);
    assert_int_equal(res.offset_next, 11);
    assert_int_equal(res.state_len, sizeof s2 - 1);
    assert_memory_equal(res.state, s2, sizeof s2); /* and the NUL after it */
    free(res.state);
    write_ok(l, row("02-00-00", "06/03/2023", "00:10:00", 1, 1, false));
    commit_ok(l, 12, s1, sizeof s1 - 1, 3, 1, 1);
    ts_lake_close(l);

    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 3);
    assert_int_equal(res.offset_next, 12);
    assert_int_equal(res.state_len, sizeof s1 - 1);
    assert_memory_equal(res.state, s1, sizeof s1 - 1);
    free(res.state);
    /* rows written and closed without a commit leave nothing behind */
    write_ok(l, row("02-00-00", "06/03/2023", "00:15:00", 1, 1, false));
    ts_lake_close(l);
    expect_list(D1, true, "");
    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 3);
    assert_int_equal(res.removed_temporaries, 0);
    free(res.state);
    ts_lake_close(l);
}

static void second_owner_of_a_generation_gets_conflict(void **state)
{
    struct ts_lake_cfg cfg = config(true, 5);
    struct ts_lake_cfg cfg_b = cfg;
    struct ts_lake_resume res;
    cfg_b.owner = "bridge-b";
    struct ts_lake *a = open_ok(&cfg, &res);
    commit_ok(a, 5, "a0", 2, 1, 0, 0);
    struct ts_lake *b = open_ok(&cfg_b, &res); /* both at generation 1 now */
    assert_int_equal(res.generation, 1);
    free(res.state);

    write_ok(a, row("02-00-00", "06/03/2023", "00:05:00", 1, 2, false));
    write_ok(b, row("02-00-09", "06/03/2023", "00:05:00", 9, 9, false));
    write_ok(b, row("02-00-09", "06/04/2023", "00:05:00", 9, 9, true));
    char *tmps = list(D1, true); /* each writer's own temporary */
    assert_non_null(strstr(tmps, ".part-readings-3-000000000002.csv.gz.bridge-a-"));
    assert_non_null(strstr(tmps, ".part-readings-3-000000000002.csv.gz.bridge-b-"));
    free(tmps);

    commit_ok(a, 6, "a1", 2, 2, 1, 1);
    struct ts_lake_commit_info info = {.generation = 99};
    assert_int_equal(ts_lake_commit(b, 7, "b1", 2, &info), TS_ECONFLICT);
    assert_int_equal(info.generation, 0);
    /* b's files never became visible, and its temporaries are gone */
    expect_list(D1, false, "part-readings-3-000000000002.csv.gz");
    expect_list(D1, true, "");
    expect_list(D2, false, "");
    expect_list(D2, true, "");
    expect_list(MDIR, true, "");
    expect_file(D1 "part-readings-3-000000000002.csv.gz",
                "," HDR "0,A002,R051,02-00-00,59 ST,NQR456W,BMT,06/03/2023,00:05:00,REGULAR,1,2\n");
    /* the lost lake refuses more work */
    struct ts_window_row r = row("02-00-09", "06/03/2023", "00:05:00", 9, 9, false);
    assert_int_equal(ts_lake_write_row(b, &r), TS_EINVAL);
    assert_int_equal(ts_lake_commit(b, 8, NULL, 0, NULL), TS_EINVAL);
    ts_lake_close(b);

    commit_ok(a, 8, "a2", 2, 3, 0, 0); /* the winner goes on */
    ts_lake_close(a);
    struct ts_lake *c = open_ok(&cfg_b, &res);
    assert_int_equal(res.generation, 3);
    assert_int_equal(res.offset_next, 8);
    assert_memory_equal(res.state, "a2", 2);
    free(res.state);
    char *text = checkpoint_text(2);
    assert_non_null(strstr(text, "\nowner bridge-a\n"));
    free(text);
    ts_lake_close(c);
}

/* An owner stalled while another took the partition, committed and pruned
 * past it: link(2) would succeed on the pruned generation, so the newer
 * checkpoint must be what stops it. */
static void stalled_owner_loses_to_a_pruned_generation(void **state)
{
    struct ts_lake_cfg cfg = config(true, 1);
    struct ts_lake_cfg cfg_b = cfg;
    struct ts_lake_resume res;
    cfg_b.owner = "bridge-b";
    struct ts_lake *a = open_ok(&cfg, &res);
    commit_ok(a, 1, "a1", 2, 1, 0, 0);
    struct ts_lake *b = open_ok(&cfg_b, &res);
    free(res.state);
    for (int g = 2; g <= 4; g++) {
        write_ok(b, row("02-00-00", "06/03/2023", "00:05:00", 1, 1, false));
        commit_ok(b, g, "b", 1, (uint64_t)g, 1, 1);
    }
    expect_list(MDIR, false, "000000000004.ckpt"); /* 2 is gone */
    write_ok(a, row("02-00-09", "06/03/2023", "00:05:00", 9, 9, false));
    assert_int_equal(ts_lake_commit(a, 2, "a2", 2, NULL), TS_ECONFLICT);
    ts_lake_close(a);
    expect_list(MDIR, false, "000000000004.ckpt");
    expect_list(MDIR, true, "");
    expect_list(D1, false, "part-readings-3-000000000002.csv.gz part-readings-3-000000000003.csv.gz "
                           "part-readings-3-000000000004.csv.gz");
    expect_list(D1, true, "");
    expect_file(D1 "part-readings-3-000000000002.csv.gz",
                "," HDR "0,A002,R051,02-00-00,59 ST,NQR456W,BMT,06/03/2023,00:05:00,REGULAR,1,1\n");
    commit_ok(b, 5, "b", 1, 5, 0, 0);
    ts_lake_close(b);
}

/* The state a crash after the checkpoint's link and before the renames
 * leaves: made by undoing the renames of a real commit. */
static void crash_between_link_and_rename_rolls_forward(void **state)
{
    struct ts_lake_cfg cfg = config(true, 5);
    struct ts_lake_resume res;
    char tag[128], tmp1[512], tmp2[512];
    struct ts_lake *l = open_ok(&cfg, &res);
    write_ok(l, row("02-00-00", "06/03/2023", "00:05:00", 1, 2, false));
    commit_ok(l, 1, "g1", 2, 1, 1, 1);
    write_ok(l, row("02-00-00", "06/03/2023", "00:10:00", 3, 4, false));
    write_ok(l, row("02-00-00", "06/04/2023", "00:10:00", 5, 6, true));
    commit_ok(l, 3, "g2", 2, 2, 2, 2);
    ts_lake_close(l);
    char *p2 = NULL, *l2 = NULL, path[1024];
    path_of(path, sizeof path, D1 "part-readings-3-000000000002.csv.gz");
    p2 = slurp(path, NULL);
    path_of(path, sizeof path, D2 "late-readings-3-000000000002.csv.gz");
    l2 = slurp(path, NULL);

    writer_of(2, tag, sizeof tag);
    snprintf(tmp1, sizeof tmp1, D1 ".part-readings-3-000000000002.csv.gz.%s.tmp", tag);
    snprintf(tmp2, sizeof tmp2, D2 ".late-readings-3-000000000002.csv.gz.%s.tmp", tag);
    rename_rel(D1 "part-readings-3-000000000002.csv.gz", tmp1);
    rename_rel(D2 "late-readings-3-000000000002.csv.gz", tmp2);
    touch(MDIR "/.tmp-000000000002-bridge-a-1-00000000"); /* its checkpoint's temporary */

    /* a file named by the checkpoint missing under both names: TS_EPARSE,
     * and nothing renamed or deleted */
    char hold[600];
    snprintf(hold, sizeof hold, "%s.held", tmp2);
    rename_rel(tmp2, hold);
    struct ts_lake *bad = NULL;
    char why[512] = "";
    assert_int_equal(ts_lake_open(&cfg, TOPIC, PART, &bad, &res, why, sizeof why), TS_EPARSE);
    assert_null(bad);
    assert_null(res.state);
    assert_non_null(strstr(why, "late-readings-3-000000000002.csv.gz, which is missing"));
    assert_true(exists(tmp1));
    assert_false(exists(D1 "part-readings-3-000000000002.csv.gz"));
    assert_true(exists(MDIR "/.tmp-000000000002-bridge-a-1-00000000"));
    rename_rel(hold, tmp2);

    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 2);
    assert_int_equal(res.offset_next, 3);
    assert_memory_equal(res.state, "g2", 2);
    assert_int_equal(res.rolled_forward, 2);
    assert_int_equal(res.removed_temporaries, 1);
    free(res.state);
    expect_list(D1, false, "part-readings-3-000000000001.csv.gz part-readings-3-000000000002.csv.gz");
    expect_list(D2, false, "late-readings-3-000000000002.csv.gz");
    expect_list(D1, true, "");
    expect_list(D2, true, "");
    expect_list(MDIR, true, "");
    expect_file(D1 "part-readings-3-000000000002.csv.gz", p2);
    expect_file(D2 "late-readings-3-000000000002.csv.gz", l2);
    free(p2);
    free(l2);
    /* and it goes on from there */
    write_ok(l, row("02-00-00", "06/03/2023", "00:15:00", 1, 1, false));
    commit_ok(l, 4, "g3", 2, 3, 1, 1);
    ts_lake_close(l);
}

/* A writer killed before its checkpoint leaves temporaries of the next
 * generation; they are kept by ts_lake_open (their writer might be alive)
 * and deleted once this lake has committed that generation. Temporaries of
 * generations already committed are deleted at once; other partitions' are
 * never touched. */
static void stray_temporaries(void **state)
{
    struct ts_lake_cfg cfg = config(true, 5);
    struct ts_lake_resume res;
    struct ts_lake *l = open_ok(&cfg, &res);
    write_ok(l, row("02-00-00", "06/03/2023", "00:05:00", 1, 2, false));
    commit_ok(l, 1, "g1", 2, 1, 1, 1);
    ts_lake_close(l);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ts_lake *k = NULL;
        struct ts_lake_resume r;
        struct ts_window_row w = row("02-00-07", "06/03/2023", "00:10:00", 7, 7, false);
        if (ts_lake_open(&cfg, TOPIC, PART, &k, &r, NULL, 0) || ts_lake_write_row(k, &w))
            _exit(2);
        w.late = true;
        if (ts_lake_write_row(k, &w))
            _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    char *left = list(D1, true);
    assert_non_null(strstr(left, ".late-readings-3-000000000002.csv.gz.bridge-a-"));
    assert_non_null(strstr(left, ".part-readings-3-000000000002.csv.gz.bridge-a-"));
    free(left);

    char d2[1024];
    path_of(d2, sizeof d2, D2);
    assert_int_equal(mkdir(d2, 0755), 0);
    touch(D1 ".part-readings-3-000000000001.csv.gz.bridge-z-1-00000000.tmp");  /* lost gen 1 */
    touch(D2 ".late-readings-3-000000000001.csv.gz.bridge-z-1-00000000.tmp");
    touch(MDIR "/.tmp-000000000001-bridge-z-1-00000000");
    touch(D1 ".part-readings-4-000000000001.csv.gz.bridge-z-1-00000000.tmp");  /* partition 4 */
    touch(D1 ".part-readings-3-0-000000000001.csv.gz.bridge-z-1-00000000.tmp"); /* readings-3 */
    touch(D1 ".part-readings-3-000000000001.csv.gz");                         /* not a temporary */

    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 1);
    assert_int_equal(res.removed_temporaries, 3);
    free(res.state);
    expect_list(MDIR, true, "");
    expect_list(D2, true, "");
    left = list(D1, true);
    assert_non_null(strstr(left, ".part-readings-3-000000000002.csv.gz.bridge-a-")); /* kept */
    free(left);
    assert_false(exists(D1 ".part-readings-3-000000000001.csv.gz.bridge-z-1-00000000.tmp"));
    assert_true(exists(D1 ".part-readings-4-000000000001.csv.gz.bridge-z-1-00000000.tmp"));
    assert_true(exists(D1 ".part-readings-3-0-000000000001.csv.gz.bridge-z-1-00000000.tmp"));
    assert_true(exists(D1 ".part-readings-3-000000000001.csv.gz"));

    commit_ok(l, 2, "g2", 2, 2, 0, 0); /* generation 2 is ours: its strays go */
    expect_list(D1, true, ".part-readings-3-0-000000000001.csv.gz.bridge-z-1-00000000.tmp "
                          ".part-readings-3-000000000001.csv.gz "
                          ".part-readings-4-000000000001.csv.gz.bridge-z-1-00000000.tmp");
    expect_list(D1, false, "part-readings-3-000000000001.csv.gz");
    ts_lake_close(l);
}

static void corrupted_latest_checkpoint_is_a_parse_error(void **state)
{
    struct ts_lake_cfg cfg = config(true, 5);
    struct ts_lake_resume res;
    char ck[1024], why[512];
    struct ts_lake *l = open_ok(&cfg, &res);
    write_ok(l, row("02-00-00", "06/03/2023", "00:05:00", 1, 2, false));
    commit_ok(l, 1, "g1", 2, 1, 1, 1);
    write_ok(l, row("02-00-00", "06/03/2023", "00:10:00", 1, 2, false));
    commit_ok(l, 2, "state two", 9, 2, 1, 1);
    ts_lake_close(l);
    touch(D1 ".part-readings-3-000000000001.csv.gz.bridge-z-1-00000000.tmp");

    path_of(ck, sizeof ck, MDIR "/000000000002.ckpt");
    size_t len;
    char *good = slurp(ck, &len);
    const char *state_at = strstr(good, "state two");
    assert_non_null(state_at);
    for (int i = 0; i < 6; i++) {
        char *bad = malloc(len);
        size_t n = len;
        const char *what = "crc32 mismatch";
        memcpy(bad, good, len);
        switch (i) {
        case 0: bad[40] ^= 0x20; break;                           /* a header byte */
        case 1: bad[state_at - good + 6] = 'T'; break;            /* a state byte */
        case 2: bad[len - 2] = bad[len - 2] == '0' ? '1' : '0'; break; /* the crc */
        case 3: n = len / 2; what = "truncated"; break;
        case 4: n = len - 1; what = "truncated"; break;           /* the last newline */
        case 5: n = 0; what = "truncated"; break;
        }
        FILE *f = fopen(ck, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(bad, 1, n, f), n);
        fclose(f);
        free(bad);
        struct ts_lake *x = NULL;
        why[0] = '\0';
        assert_int_equal(ts_lake_open(&cfg, TOPIC, PART, &x, &res, why, sizeof why), TS_EPARSE);
        assert_null(x);
        assert_null(res.state);
        if (!strstr(why, what) || !strstr(why, "000000000002.ckpt"))
            fail_msg("case %d: %s", i, why);
        /* nothing deleted */
        assert_true(exists(D1 ".part-readings-3-000000000001.csv.gz.bridge-z-1-00000000.tmp"));
        expect_list(D1, false, "part-readings-3-000000000001.csv.gz part-readings-3-000000000002.csv.gz");
        expect_list(MDIR, false, "000000000001.ckpt 000000000002.ckpt");
    }
    FILE *f = fopen(ck, "w");
    assert_int_equal(fwrite(good, 1, len, f), len);
    fclose(f);
    free(good);
    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 2);
    assert_memory_equal(res.state, "state two", 9);
    assert_int_equal(res.removed_temporaries, 1);
    free(res.state);
    ts_lake_close(l);
}

static void keeps_the_last_checkpoints(void **state)
{
    struct ts_lake_cfg cfg = config(true, 3);
    struct ts_lake_resume res;
    struct ts_lake *l = open_ok(&cfg, &res);
    commit_ok(l, 1, NULL, 0, 1, 0, 0);
    commit_ok(l, 2, NULL, 0, 2, 0, 0);
    commit_ok(l, 3, NULL, 0, 3, 0, 0);
    expect_list(MDIR, false, "000000000001.ckpt 000000000002.ckpt 000000000003.ckpt");
    for (int g = 4; g <= 6; g++) {
        write_ok(l, row("02-00-00", "06/03/2023", "00:05:00", 1, 2, false));
        commit_ok(l, g, NULL, 0, (uint64_t)g, 1, 1);
    }
    expect_list(MDIR, false, "000000000004.ckpt 000000000005.ckpt 000000000006.ckpt");
    expect_list(MDIR, true, "");
    /* pruning touches checkpoints only, never data */
    expect_list(D1, false, "part-readings-3-000000000004.csv.gz part-readings-3-000000000005.csv.gz "
                           "part-readings-3-000000000006.csv.gz");
    ts_lake_close(l);
    cfg.keep_checkpoints = 1;
    l = open_ok(&cfg, &res);
    free(res.state);
    commit_ok(l, 7, NULL, 0, 7, 0, 0);
    expect_list(MDIR, false, "000000000007.ckpt");
    ts_lake_close(l);
}

static void rejects_bad_arguments(void **state)
{
    struct ts_lake_cfg cfg = config(true, 3);
    struct ts_lake_resume res;
    struct ts_lake *l = (struct ts_lake *)&res; /* not NULL: a failed open must clear it */
    char why[256];
    const char *topics[] = {"a/b", "", "a b", "../x"};
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        assert_int_equal(ts_lake_open(&cfg, topics[i], 0, &l, &res, why, sizeof why), TS_EINVAL);
        assert_null(l);
        assert_non_null(strstr(why, "topic"));
    }
    assert_int_equal(ts_lake_open(&cfg, TOPIC, -1, &l, &res, why, sizeof why), TS_EINVAL);
    assert_non_null(strstr(why, "partition"));
    struct ts_lake_cfg bad = cfg;
    bad.compression_level = 0;
    assert_int_equal(ts_lake_open(&bad, TOPIC, 0, &l, &res, NULL, 0), TS_EINVAL);
    bad = cfg;
    bad.keep_checkpoints = 0;
    assert_int_equal(ts_lake_open(&bad, TOPIC, 0, &l, &res, NULL, 0), TS_EINVAL);
    bad = cfg;
    bad.table = "_hidden";
    assert_int_equal(ts_lake_open(&bad, TOPIC, 0, &l, &res, NULL, 0), TS_EINVAL);
    bad = cfg;
    bad.owner = "a/b";
    assert_int_equal(ts_lake_open(&bad, TOPIC, 0, &l, &res, NULL, 0), TS_EINVAL);
    assert_false(exists("")); /* nothing created */

    l = open_ok(&cfg, &res);
    struct ts_window_row good = row("02-00-00", "06/03/2023", "00:05:00", 1, 1, false);
    struct ts_window_row bad_rows[10];
    size_t nbad = 0;
    const char *dates[] = {"2023-06-03", "6/3/2023", "13/01/2023", "06/32/2023", "06/00/2023",
                           "06-03-2023", ""};
    for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++)
        bad_rows[nbad++] = row("02-00-00", dates[i], "00:05:00", 1, 1, false);
    bad_rows[nbad++] = row("02-00-00", "06/03/2023", "0:05:00", 1, 1, false);
    bad_rows[nbad++] = row("02,00", "06/03/2023", "00:05:00", 1, 1, false);
    bad_rows[nbad] = good;
    strcpy(bad_rows[nbad++].station, "A\"B");
    ts_log_level = 0; /* the lake logs each failed write */
    for (size_t i = 0; i < nbad; i++) {
        write_ok(l, good);
        assert_int_equal(ts_lake_write_row(l, &bad_rows[i]), TS_EINVAL);
        /* sticky: the caller's state would count a row the files lack */
        assert_int_equal(ts_lake_write_row(l, &good), TS_EINVAL);
        assert_int_equal(ts_lake_commit(l, 5, NULL, 0, NULL), TS_EINVAL);
        ts_lake_discard(l);
        assert_int_equal(ts_lake_pending_rows(l), 0);
        expect_list(D1, true, "");
    }
    ts_log_level = TS_LOG_ERR;
    expect_list(MDIR, false, "");
    assert_int_equal(ts_lake_commit(l, -2, NULL, 0, NULL), TS_EINVAL);
    /* none of that hurt the lake */
    write_ok(l, row("02-00-00", "06/03/2023", "00:05:00", 1, 1, false));
    commit_ok(l, 0, NULL, 0, 1, 1, 1);
    /* discard drops pending rows and their files */
    write_ok(l, row("02-00-00", "06/04/2023", "00:05:00", 1, 1, false));
    ts_lake_discard(l);
    assert_int_equal(ts_lake_pending_rows(l), 0);
    expect_list(D2, true, "");
    commit_ok(l, 1, NULL, 0, 2, 0, 0);
    expect_list(D2, false, "");
    ts_lake_close(l);
    ts_lake_close(NULL);
}

/* ---- the bound on open files ---- */

#define BOUND 4      /* max_open_files of these tests */
#define NDATES 40

/* Open fds of this process (the listing's own left out). */
static int count_fds(int *highest)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0, hi = -1;
    assert_non_null(d);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != dirfd(d)) {
            n++;
            hi = fd > hi ? fd : hi;
        }
    }
    closedir(d);
    if (highest)
        *highest = hi;
    return n;
}

/* The generation, seq and late bit in a data file's name (final or
 * temporary); false if it is not one of readings-3's. */
static bool name_parts(const char *name, uint64_t *gen, unsigned *seq, bool *late)
{
    const char *p = name + (name[0] == '.');
    char digits[16], rest[256];
    int n = 0;
    if (strncmp(p, "part-readings-3-", 16) && strncmp(p, "late-readings-3-", 16))
        return false;
    *late = p[0] == 'l';
    *seq = 0;
    if (sscanf(p + 16, "%15[0-9]%n", digits, &n) != 1 || strlen(digits) != 12)
        return false;
    *gen = strtoull(digits, NULL, 10);
    p += 16 + n;
    if (*p == '-') {
        if (sscanf(p + 1, "%9[0-9]%n", digits, &n) != 1 || digits[0] == '0')
            return false;
        *seq = (unsigned)atoi(digits);
        p += 1 + n;
    }
    return sscanf(p, "%255s", rest) == 1 && !strncmp(rest, ".csv.gz", 7);
}

struct want { /* a row written, identified by its ENTRIES */
    char date[11]; /* MM/DD/YYYY */
    bool late, seen;
};

static void date_of(int d, char out[11])
{
    char buf[32];
    snprintf(buf, sizeof buf, "%02d/%02d/2023", 1 + d / 28, 1 + d % 28);
    memcpy(out, buf, 11);
}

/* Writes row number *n (ENTRIES = *n) for date d; then the lake holds at
 * most its bound of data files open, plus its two directories. */
static void write_counted(struct ts_lake *l, struct want *w, size_t *n, int d, bool late,
                          int base_fds)
{
    char date[11];
    date_of(d, date);
    write_ok(l, row("00-00-00", date, "00:05:00", *n, 2 * *n, late));
    snprintf(w[*n].date, sizeof w[*n].date, "%s", date);
    w[*n].late = late;
    w[*n].seen = false;
    (*n)++;
    int now = count_fds(NULL);
    if (now > base_fds + 2 + BOUND)
        fail_msg("%d fds open after row %zu (the lake may hold %d)", now - base_fds, *n - 1,
                 2 + BOUND);
}

/* Every checkpoint's file lines, the files visible and their rows: every
 * row written is in exactly one visible file, in its date's directory and
 * its late bit's file, and every file's rows and sums are its line's. */
static void check_rows(uint64_t latest, struct want *w, size_t n)
{
    char p[1024], dir[600];
    size_t named = 0, visible = 0;
    for (size_t i = 0; i < n; i++)
        w[i].seen = false;
    for (uint64_t g = 1; g <= latest; g++) {
        char *text = checkpoint_text(g);
        for (char *f = strstr(text, "\nfile "); f && f < strstr(text, "\nstate ");
             f = strstr(f + 1, "\nfile ")) {
            char path[600], *slash;
            uint64_t rows, entries, exits, fgen;
            unsigned seq;
            int late;
            bool name_late;
            if (sscanf(f, "\nfile %599s rows %" SCNu64 " entries %" SCNu64 " exits %" SCNu64
                       " late %d", path, &rows, &entries, &exits, &late) != 5)
                fail_msg("checkpoint %" PRIu64 ": bad file line", g);
            named++;
            slash = strrchr(path, '/');
            if (!name_parts(slash + 1, &fgen, &seq, &name_late) || fgen != g ||
                name_late != (late == 1))
                fail_msg("checkpoint %" PRIu64 " names %s", g, path);
            if (!exists(path))
                fail_msg("%s, named by checkpoint %" PRIu64 ", is not visible", path, g);
            path_of(p, sizeof p, path);
            char *data = slurp(p, NULL);
            assert_memory_equal(data, "," HDR, strlen(HDR) + 1);
            uint64_t r = 0, e_sum = 0, x_sum = 0;
            for (char *line = data + strlen(HDR) + 1; *line; line = strchr(line, '\n') + 1) {
                uint64_t num, e, x;
                char date[11];
                if (sscanf(line, "%" SCNu64 ",A002,R051,00-00-00,59 ST,NQR456W,BMT,%10[0-9/],"
                                 "00:05:00,REGULAR,%" SCNu64 ",%" SCNu64, &num, date, &e, &x) != 4)
                    fail_msg("%s: bad row %.60s", path, line);
                assert_int_equal(num, r); /* numbered from 0 in each file */
                if (e >= n || w[e].seen || strcmp(w[e].date, date) || w[e].late != (late == 1) ||
                    x != 2 * e)
                    fail_msg("%s: row %" PRIu64 " is not one written once to this file", path, e);
                snprintf(dir, sizeof dir, "/event_date=%.4s-%.2s-%.2s/", date + 6, date, date + 3);
                assert_non_null(strstr(path, dir));
                w[e].seen = true;
                r++;
                e_sum += e;
                x_sum += x;
            }
            free(data);
            assert_int_equal(r, rows);
            assert_int_equal(e_sum, entries);
            assert_int_equal(x_sum, exits);
        }
        free(text);
    }
    for (size_t i = 0; i < n; i++)
        if (!w[i].seen)
            fail_msg("row %zu (%s, late %d) is in no visible file", i, w[i].date, w[i].late);
    /* nothing visible that no checkpoint names, no temporary of a committed generation */
    path_of(p, sizeof p, "turnstile");
    DIR *t = opendir(p);
    struct dirent *e;
    assert_non_null(t);
    while ((e = readdir(t))) {
        if (strncmp(e->d_name, "event_date=", 11))
            continue;
        snprintf(dir, sizeof dir, "%s/turnstile/%s", root, e->d_name);
        DIR *dd = opendir(dir);
        struct dirent *f;
        assert_non_null(dd);
        while ((f = readdir(dd))) {
            uint64_t g;
            unsigned seq;
            bool late;
            if (!name_parts(f->d_name, &g, &seq, &late))
                continue;
            if (f->d_name[0] == '.' && g <= latest)
                fail_msg("%s/%s: a temporary of a committed generation", e->d_name, f->d_name);
            visible += f->d_name[0] != '.';
        }
        closedir(dd);
    }
    closedir(t);
    assert_int_equal(visible, named);
}

/* Rows for 40 dates with max_open_files 4: on-time rows date by date, late
 * rows back again, on-time again, then five dates round robin (every row
 * then finds its file finished). The lake never holds more than 4 data
 * files open; every row lands in exactly one visible file; a date gets
 * -1, -2, ... files; roll-forward and stray temporaries handle those. */
static void open_files_stay_within_the_bound(void **state)
{
    struct ts_lake_cfg cfg = config(true, 100);
    struct ts_lake_resume res;
    struct ts_lake_commit_info info;
    static struct want w[200];
    size_t n = 0;
    char tag[128], date[11];

    cfg.max_open_files = BOUND;
    int fds = count_fds(NULL);
    struct ts_lake *l = open_ok(&cfg, &res);
    assert_int_equal(count_fds(NULL), fds + 2); /* the root and the manifest */
    for (int d = 0; d < NDATES; d++)
        write_counted(l, w, &n, d, false, fds);
    for (int d = NDATES - 1; d >= 0; d--)
        write_counted(l, w, &n, d, true, fds);
    for (int d = 0; d < NDATES; d++)
        write_counted(l, w, &n, d, false, fds);
    for (int round = 0; round < 3; round++)
        for (int d = 0; d < 5; d++)
            write_counted(l, w, &n, d, false, fds);
    assert_int_equal(ts_lake_commit(l, 7, "s", 1, &info), TS_OK);
    assert_int_equal(info.generation, 1);
    assert_int_equal(info.rows, n);
    assert_int_equal(info.files, 3 * NDATES + 15);
    assert_int_equal(count_fds(NULL), fds + 2);
    check_rows(1, w, n);
    /* date 0: its first file, the one after pass three, three of the round robin */
    expect_list("turnstile/event_date=2023-01-01", false,
                "late-readings-3-000000000001.csv.gz part-readings-3-000000000001-1.csv.gz "
                "part-readings-3-000000000001-2.csv.gz part-readings-3-000000000001-3.csv.gz "
                "part-readings-3-000000000001-4.csv.gz part-readings-3-000000000001.csv.gz");
    expect_list("turnstile/event_date=2023-02-12", false,
                "late-readings-3-000000000001.csv.gz part-readings-3-000000000001-1.csv.gz "
                "part-readings-3-000000000001.csv.gz");
    char *text = checkpoint_text(1);
    assert_non_null(strstr(text, "\nfile turnstile/event_date=2023-01-01/part-readings-3-000000000001-3"
                                 ".csv.gz rows 1 entries 125 exits 250 late 0\n"));
    free(text);
    ts_lake_close(l);

    /* a crash between the checkpoint's link and the renames: all 135 roll forward */
    writer_of(1, tag, sizeof tag);
    for (int d = 0; d < NDATES; d++) {
        char fin[256], tmp[512];
        int k_max = d < 5 ? 4 : 1;
        date_of(d, date);
        for (int k = -1; k <= k_max; k++) {
            char sfx[16] = "";
            if (k > 0)
                snprintf(sfx, sizeof sfx, "-%d", k);
            snprintf(fin, sizeof fin, "turnstile/event_date=%.4s-%.2s-%.2s/%s-readings-3-000000000001%s"
                     ".csv.gz", date + 6, date, date + 3, k < 0 ? "late" : "part", sfx);
            snprintf(tmp, sizeof tmp, "turnstile/event_date=%.4s-%.2s-%.2s/.%s.%s.tmp", date + 6, date,
                     date + 3, strrchr(fin, '/') + 1, tag);
            rename_rel(fin, tmp);
        }
    }
    expect_list("turnstile/event_date=2023-01-01", false, "");
    /* strays: of generation 1 (deleted at open), of 2 (kept until 2 is committed), and
     * names that are not this writer's form (never touched) */
    touch("turnstile/event_date=2023-01-01/.part-readings-3-000000000001-7.csv.gz.bridge-z-1-0.tmp");
    touch("turnstile/event_date=2023-01-02/.late-readings-3-000000000002-3.csv.gz.bridge-z-1-0.tmp");
    touch("turnstile/event_date=2023-01-02/.part-readings-3-000000000001-0.csv.gz.bridge-z-1-0.tmp");
    touch("turnstile/event_date=2023-01-02/.part-readings-3-000000000001-01.csv.gz.bridge-z-1-0.tmp");
    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 1);
    assert_int_equal(res.offset_next, 7);
    assert_int_equal(res.rolled_forward, 3 * NDATES + 15);
    assert_int_equal(res.removed_temporaries, 1);
    free(res.state);
    check_rows(1, w, n);
    assert_true(exists("turnstile/event_date=2023-01-02/.late-readings-3-000000000002-3.csv.gz.bridge-z-1-0.tmp"));

    /* the next generation starts each date without a seq again */
    n = 0;
    write_counted(l, w, &n, 0, false, fds);
    write_counted(l, w, &n, 1, true, fds);
    assert_int_equal(ts_lake_commit(l, 8, "t", 1, &info), TS_OK);
    assert_int_equal(info.files, 2);
    assert_true(exists("turnstile/event_date=2023-01-01/part-readings-3-000000000002.csv.gz"));
    assert_true(exists("turnstile/event_date=2023-01-02/late-readings-3-000000000002.csv.gz"));
    assert_false(exists("turnstile/event_date=2023-01-02/.late-readings-3-000000000002-3.csv.gz.bridge-z-1-0.tmp"));
    assert_true(exists("turnstile/event_date=2023-01-02/.part-readings-3-000000000001-0.csv.gz.bridge-z-1-0.tmp"));
    assert_true(exists("turnstile/event_date=2023-01-02/.part-readings-3-000000000001-01.csv.gz.bridge-z-1-0.tmp"));
    ts_lake_close(l);
    assert_int_equal(count_fds(NULL), fds);
}

/* The same rows in a child whose RLIMIT_NOFILE leaves the lake exactly its
 * bound plus its two directories plus the one fd it may take within a call:
 * every write and the commit succeed. */
static void rows_for_many_dates_under_a_tight_fd_limit(void **state)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ts_lake_cfg cfg = config(true, 100);
        struct ts_lake_resume res;
        struct ts_lake *l = NULL;
        int hi;
        for (int fd = 3; count_fds(&hi) > 3 && fd <= hi; fd++)
            close(fd); /* what an earlier failed test left open */
        int used = count_fds(&hi);
        rlim_t limit = (rlim_t)used + BOUND + 3;
        struct rlimit rl = {limit, limit};
        if (hi >= used) /* fds 0..used-1: the limit is then exact */
            _exit(10);
        cfg.max_open_files = BOUND;
        ts_log_level = 0;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            _exit(11);
        if (ts_lake_open(&cfg, TOPIC, PART, &l, &res, NULL, 0) != TS_OK)
            _exit(12);
        for (int pass = 0; pass < 3; pass++) {
            for (int d = 0; d < NDATES; d++) {
                char date[11];
                date_of(d, date);
                struct ts_window_row r = row("00-00-00", date, "00:05:00", 1, 1, pass == 1);
                if (ts_lake_write_row(l, &r) != TS_OK)
                    _exit(13);
            }
        }
        if (ts_lake_commit(l, 1, NULL, 0, NULL) != TS_OK)
            _exit(14);
        ts_lake_close(l);
        if (ts_lake_open(&cfg, TOPIC, PART, &l, &res, NULL, 0) != TS_OK || res.generation != 1)
            _exit(15);
        ts_lake_close(l);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the child failed: status %d (10: fds not contiguous; 13: a write, 14: the "
                 "commit)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void commit_due_at_max_checkpoint_files(void **state)
{
    struct ts_lake_cfg cfg = config(true, 100);
    struct ts_lake_resume res;
    cfg.max_open_files = 1;
    cfg.max_checkpoint_files = 3;
    struct ts_lake *l = open_ok(&cfg, &res);
    assert_false(ts_lake_commit_due(l));
    write_ok(l, row("02-00-00", "06/03/2023", "00:05:00", 1, 1, false));
    write_ok(l, row("02-00-00", "06/03/2023", "00:10:00", 1, 1, false));
    write_ok(l, row("02-00-00", "06/04/2023", "00:05:00", 1, 1, false));
    assert_false(ts_lake_commit_due(l)); /* two files */
    write_ok(l, row("02-00-00", "06/03/2023", "00:15:00", 1, 1, false));
    assert_true(ts_lake_commit_due(l)); /* 06/03's second file */
    commit_ok(l, 4, NULL, 0, 1, 3, 4);
    assert_false(ts_lake_commit_due(l));
    expect_list(D1, false, "part-readings-3-000000000001-1.csv.gz part-readings-3-000000000001.csv.gz");
    expect_file(D1 "part-readings-3-000000000001-1.csv.gz",
                "," HDR "0,A002,R051,02-00-00,59 ST,NQR456W,BMT,06/03/2023,00:15:00,REGULAR,1,1\n");
    ts_lake_close(l);
    cfg.max_open_files = 0;
    struct ts_lake *x = NULL;
    assert_int_equal(ts_lake_open(&cfg, TOPIC, PART, &x, &res, NULL, 0), TS_EINVAL);
    cfg.max_open_files = 1;
    cfg.max_checkpoint_files = 0;
    assert_int_equal(ts_lake_open(&cfg, TOPIC, PART, &x, &res, NULL, 0), TS_EINVAL);
}

/* A checkpoint made by hand, with a valid crc, naming one file. */
static void write_checkpoint(uint64_t gen, const char *file)
{
    char text[2048], p[1024];
    int n = snprintf(text, sizeof text,
                     "ts-lake-checkpoint 1\ntopic readings\npartition 3\ngeneration %" PRIu64
                     "\nowner x\nwriter bridge-x-1-00000000\ncreated_ms 0\noffset_from -1\n"
                     "offset_next 5\nfile %s rows 1 entries 1 exits 1 late 0\nstate 0\n\n",
                     gen, file);
    n += snprintf(text + n, sizeof text - (size_t)n, "crc32 %08lx\n",
                  crc32(0, (const Bytef *)text, (uInt)n));
    snprintf(p, sizeof p, "%s/" MDIR "/%012" PRIu64 ".ckpt", root, gen);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
}

/* The seq of a name in a checkpoint: 1 to 999999999, no leading zero;
 * anything else is a parse error, and nothing is renamed or deleted. */
static void file_names_in_checkpoints_are_strict(void **state)
{
    struct ts_lake_cfg cfg = config(true, 100);
    struct ts_lake_resume res;
    struct ts_lake *l = open_ok(&cfg, &res);
    ts_lake_close(l);
    const char *bad[] = {"-0", "-01", "-1000000000", "-1x", "-", "--1", "-1-1", ".1", "-+1",
                         "- 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[256], why[512] = "";
        snprintf(path, sizeof path, D1 "part-readings-3-000000000001%s.csv.gz", bad[i]);
        write_checkpoint(1, path);
        assert_int_equal(ts_lake_open(&cfg, TOPIC, PART, &l, &res, why, sizeof why), TS_EPARSE);
        if (!strstr(why, "bad file line"))
            fail_msg("%s: %s", path, why);
    }
    /* the largest seq, with its temporary there: rolled forward */
    write_checkpoint(1, D1 "part-readings-3-000000000001-999999999.csv.gz");
    char d1[1024];
    path_of(d1, sizeof d1, D1);
    assert_int_equal(mkdir(d1, 0755), 0);
    touch(D1 ".part-readings-3-000000000001-999999999.csv.gz.bridge-x-1-00000000.tmp");
    l = open_ok(&cfg, &res);
    assert_int_equal(res.rolled_forward, 1);
    free(res.state);
    ts_lake_close(l);
    expect_list(D1, false, "part-readings-3-000000000001-999999999.csv.gz");
}

/* ---- a lake written by the writer of before the bound ---- */

static void copy_tree(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *e;
    if (!d)
        fail_msg("cannot open %s", from);
    assert_int_equal(mkdir(to, 0755), 0);
    while ((e = readdir(d))) {
        char a[1024], b[1024];
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        assert_int_equal(stat(a, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            copy_tree(a, b);
            continue;
        }
        FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
        char buf[4096];
        size_t k;
        assert_non_null(in);
        assert_non_null(out);
        while ((k = fread(buf, 1, sizeof buf, in)) > 0)
            assert_int_equal(fwrite(buf, 1, k, out), k);
        fclose(in);
        assert_int_equal(fclose(out), 0);
    }
    closedir(d);
}

/* tests/unit/fixtures/lake-v1 (see its README): two checkpoints and a
 * killed writer's temporary, by lake.c as it was before -<seq> names. */
static void reads_a_lake_written_before_the_open_file_bound(void **state)
{
    static const char s2[] = "v1 state two\n\0\nend";
    struct ts_lake_cfg cfg = config(true, 100);
    struct ts_lake_resume res;
    char fixture[1024], tag[128], dir[400];
    const char *slash = strrchr(__FILE__, '/');

    snprintf(fixture, sizeof fixture, "%.*s/fixtures/lake-v1", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".");
    snprintf(dir, sizeof dir, "%s/t%d", base, test_no);
    assert_int_equal(mkdir(dir, 0755), 0);
    copy_tree(fixture, root);
    cfg.owner = "bridge-v2";
    cfg.max_open_files = 1;

    struct ts_lake *l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 2);
    assert_int_equal(res.offset_next, 20);
    assert_int_equal(res.state_len, sizeof s2 - 1);
    assert_memory_equal(res.state, s2, sizeof s2);
    assert_int_equal(res.rolled_forward, 0);
    assert_int_equal(res.removed_temporaries, 0); /* generation 3's: maybe a live writer's */
    free(res.state);
    ts_lake_close(l);
    expect_file(OLD1 "part-readings-3-000000000002.csv.gz",
                "," HDR "0,A002,R051,02-00-00,59 ST,NQR456W,BMT,06/03/2023,00:10:00,REGULAR,20,30\n");

    /* its latest checkpoint rolled forward, in the date= directories it names */
    writer_of(2, tag, sizeof tag);
    const char *names[] = {OLD1 "part-readings-3-000000000002.csv.gz",
                           OLD1 "late-readings-3-000000000002.csv.gz",
                           OLD2 "part-readings-3-000000000002.csv.gz"};
    for (size_t i = 0; i < 3; i++) {
        char tmp[512];
        const char *name = strrchr(names[i], '/') + 1;
        snprintf(tmp, sizeof tmp, "%.*s.%s.%s.tmp", (int)(name - names[i]), names[i], name, tag);
        rename_rel(names[i], tmp);
    }
    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 2);
    assert_int_equal(res.rolled_forward, 3);
    assert_memory_equal(res.state, s2, sizeof s2);
    free(res.state);
    expect_list(OLD1, false, "late-readings-3-000000000002.csv.gz part-readings-3-000000000001.csv.gz "
                             "part-readings-3-000000000002.csv.gz");
    ts_lake_close(l);

    /* an operator moved the old files to event_date= (docs/lake.md, "Upgrading from date=
     * directories"): the checkpoint naming them under date= still opens */
    char to[1024];
    path_of(to, sizeof to, D2);
    assert_int_equal(mkdir(to, 0755), 0);
    rename_rel(OLD2 "part-readings-3-000000000002.csv.gz", D2 "part-readings-3-000000000002.csv.gz");
    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 2);
    assert_int_equal(res.rolled_forward, 0);
    free(res.state);

    /* and carries on under event_date=: one file open, so 06/03 gets a second file */
    write_ok(l, row("02-00-00", "06/03/2023", "00:15:00", 1, 2, false));
    write_ok(l, row("02-00-00", "06/04/2023", "00:15:00", 3, 4, false));
    write_ok(l, row("02-00-00", "06/03/2023", "00:20:00", 5, 6, false));
    commit_ok(l, 23, "v2", 2, 3, 3, 3);
    expect_list(OLD1, false, "late-readings-3-000000000002.csv.gz part-readings-3-000000000001.csv.gz "
                             "part-readings-3-000000000002.csv.gz");
    expect_list(D1, false, "part-readings-3-000000000003-1.csv.gz part-readings-3-000000000003.csv.gz");
    expect_list(D2, false, "part-readings-3-000000000002.csv.gz part-readings-3-000000000003.csv.gz");
    expect_list(OLD2, false, "");
    expect_list(OLD2, true, ""); /* the killed v1 writer's temporary of generation 3 is gone */
    expect_file(D1 "part-readings-3-000000000003-1.csv.gz",
                "," HDR "0,A002,R051,02-00-00,59 ST,NQR456W,BMT,06/03/2023,00:20:00,REGULAR,5,6\n");
    ts_lake_close(l);
    l = open_ok(&cfg, &res);
    assert_int_equal(res.generation, 3);
    assert_int_equal(res.offset_next, 23);
    free(res.state);
    ts_lake_close(l);
}

/* ---- crash test ---- */

#define KILLS 200
#define CRASH_DATES 5 /* with 2 files open at most: files finished early, -<seq> names */
static const char *const crash_dates[CRASH_DATES] = {"06/01/2023", "06/02/2023", "06/03/2023",
                                                     "06/04/2023", "06/05/2023"};
static uint64_t seq_files_seen; /* visible files with a -<seq> name checked */

struct totals {
    uint64_t rows, entries;
};

/* The state: the totals committed so far, then binary junk. */
static size_t encode_state(const struct totals *t, char *buf, size_t size)
{
    int n = snprintf(buf, size, "rows %" PRIu64 " entries %" PRIu64 "\n", t->rows, t->entries);
    memcpy(buf + n, "\0\n\0junk", 8);
    return (size_t)n + 8;
}

static bool decode_state(const char *s, size_t len, struct totals *t)
{
    char tail[8];
    if (!s || len < 8 || memcmp(s + len - 8, "\0\n\0junk", 8))
        return false;
    return sscanf(s, "rows %" SCNu64 " entries %" SCNu64 "%c", &t->rows, &t->entries, tail) == 3 &&
           tail[0] == '\n';
}

/* The child: commits random rows for ever, continuing from the state. */
static void crash_child(int ready)
{
    struct ts_lake_cfg cfg = config(true, 1000000); /* keep every checkpoint */
    struct ts_lake_resume res;
    struct ts_lake *l = NULL;
    struct totals t = {0};
    unsigned seed = (unsigned)getpid();
    char state[128];

    cfg.compression_level = 1;
    cfg.max_open_files = 2;
    if (ts_lake_open(&cfg, TOPIC, PART, &l, &res, NULL, 0) != TS_OK)
        _exit(2);
    if (res.generation && !decode_state(res.state, res.state_len, &t))
        _exit(3);
    free(res.state);
    if (write(ready, "r", 1) != 1)
        _exit(4);
    close(ready);
    for (;;) {
        /* three dates in turn from a random one: with 2 files open, a fourth row
         * comes back to a finished file (a -<seq> file) unless a late row broke the turn */
        unsigned k = (unsigned)rand_r(&seed) % 9, first = (unsigned)rand_r(&seed) % CRASH_DATES;
        for (unsigned i = 0; i < k; i++) {
            char scp[16];
            snprintf(scp, sizeof scp, "00-00-%02u", i);
            uint64_t e = (uint64_t)(rand_r(&seed) % 50);
            struct ts_window_row r = row(scp, crash_dates[(first + i % 3) % CRASH_DATES],
                                         "00:05:00", e, 1, rand_r(&seed) % 6 == 0);
            if (ts_lake_write_row(l, &r) != TS_OK)
                _exit(5);
            t.rows++;
            t.entries += e;
        }
        size_t n = encode_state(&t, state, sizeof state);
        if (ts_lake_commit(l, (int64_t)t.rows, state, n, NULL) != TS_OK)
            _exit(6);
    }
}

struct named_file {
    char path[160];
    uint64_t rows, entries;
    bool seen; /* its content was checked */
};

struct ckpt_seen { /* a checkpoint read once (checkpoints never change) */
    bool read;
    struct named_file *files;
    size_t n;
};

static struct ckpt_seen *ckpts;
static size_t nckpts;

static void read_checkpoints(uint64_t latest)
{
    if (latest >= nckpts) {
        size_t n = (size_t)latest + 64;
        ckpts = realloc(ckpts, n * sizeof *ckpts);
        memset(ckpts + nckpts, 0, (n - nckpts) * sizeof *ckpts);
        nckpts = n;
    }
    for (uint64_t g = 1; g <= latest; g++) {
        struct ckpt_seen *c = &ckpts[g];
        if (c->read)
            continue;
        char *text = checkpoint_text(g); /* all kept: it must exist */
        for (char *p = strstr(text, "\nfile "); p && p < strstr(text, "\nstate ");
             p = strstr(p + 1, "\nfile ")) {
            struct named_file f = {0};
            int late;
            if (sscanf(p, "\nfile %159s rows %" SCNu64 " entries %" SCNu64 " exits %*u late %d",
                       f.path, &f.rows, &f.entries, &late) != 4)
                fail_msg("bad file line in checkpoint %" PRIu64, g);
            c->files = realloc(c->files, (c->n + 1) * sizeof *c->files);
            c->files[c->n++] = f;
        }
        c->read = true;
        free(text);
    }
}

/* Checks one visible data file's content against its checkpoint's line. */
static void check_data_file(const char *dir, const char *name, uint64_t latest,
                            struct totals *sum)
{
    uint64_t g = 0;
    unsigned seq;
    bool late;
    if (!name_parts(name, &g, &seq, &late) || g == 0 || g > latest)
        fail_msg("visible file %s/%s: no checkpoint %" PRIu64 " names it", dir, name, g);
    char rel[200];
    int rel_len = snprintf(rel, sizeof rel, "turnstile/%s/%s", dir, name);
    assert_true(rel_len > 0 && (size_t)rel_len < sizeof rel);
    struct named_file *f = NULL;
    for (size_t i = 0; i < ckpts[g].n && !f; i++)
        if (!strcmp(ckpts[g].files[i].path, rel))
            f = &ckpts[g].files[i];
    if (!f)
        fail_msg("visible file %s is named by no checkpoint", rel);
    if (!f->seen) {
        char p[1024], *text;
        path_of(p, sizeof p, rel);
        text = slurp(p, NULL);
        assert_memory_equal(text, "," HDR, strlen(HDR) + 1);
        uint64_t rows = 0, entries = 0;
        char *line = text + strlen(HDR) + 1;
        while (*line) {
            uint64_t n, e;
            char date[11], ymd[11];
            if (sscanf(line, "%" SCNu64 ",A002,R051,00-00-%*2u,59 ST,NQR456W,BMT,%10[0-9/],"
                             "00:05:00,REGULAR,%" SCNu64 ",1",
                       &n, date, &e) != 3)
                fail_msg("%s: bad row %.60s", rel, line);
            assert_int_equal(n, rows); /* numbered from 0 */
            snprintf(ymd, sizeof ymd, "%.4s-%.2s-%.2s", date + 6, date, date + 3);
            assert_memory_equal(dir + strlen("event_date="), ymd, 10);
            rows++;
            entries += e;
            line = strchr(line, '\n');
            assert_non_null(line);
            line++;
        }
        free(text);
        assert_int_equal(rows, f->rows);
        assert_int_equal(entries, f->entries);
        f->seen = true;
        seq_files_seen += seq > 0;
    }
    sum->rows += f->rows;
    sum->entries += f->entries;
}

/* After a kill and a successful ts_lake_open. */
static void check_lake(uint64_t latest, const struct totals *committed)
{
    char p[1024];
    struct totals sum = {0};
    read_checkpoints(latest);
    for (size_t d = 0; d < CRASH_DATES; d++) {
        char dir[32];
        const char *us = crash_dates[d];
        snprintf(dir, sizeof dir, "event_date=%.4s-%.2s-%.2s", us + 6, us, us + 3);
        snprintf(p, sizeof p, "%s/turnstile/%s", root, dir);
        DIR *dd = opendir(p);
        if (!dd)
            continue;
        struct dirent *e;
        while ((e = readdir(dd))) {
            uint64_t g;
            unsigned seq;
            bool late;
            if (e->d_name[0] != '.')
                check_data_file(dir, e->d_name, latest, &sum);
            else if (name_parts(e->d_name, &g, &seq, &late) && g <= latest)
                fail_msg("%s/%s: a temporary of a committed generation left", dir, e->d_name);
        }
        closedir(dd);
    }
    assert_int_equal(sum.rows, committed->rows);
    assert_int_equal(sum.entries, committed->entries);
    for (size_t i = 0; latest && i < ckpts[latest].n; i++) /* all of the latest, visible */
        if (!exists(ckpts[latest].files[i].path))
            fail_msg("%s, named by the latest checkpoint, is not visible",
                     ckpts[latest].files[i].path);
    snprintf(p, sizeof p, "%s/" MDIR, root);
    DIR *m = opendir(p);
    struct dirent *e;
    assert_non_null(m);
    while ((e = readdir(m))) {
        uint64_t g;
        if (!strncmp(e->d_name, ".tmp-", 5) && sscanf(e->d_name + 5, "%12" SCNu64, &g) == 1 &&
            g <= latest)
            fail_msg("checkpoint temporary %s left", e->d_name);
    }
    closedir(m);
}

static void sigkill_at_random_moments_loses_and_duplicates_nothing(void **state)
{
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    struct ts_lake_cfg cfg = config(true, 1000000);
    uint64_t last_gen = 0, rolled = 0, removed = 0;
    unsigned rolled_runs = 0, progressed = 0;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    fprintf(stderr, "seed %u\n", seed);
    for (int round = 0; round < KILLS; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(fds[1]);
        }
        close(fds[1]);
        /* one round in six kills the child at once (while it recovers); the
         * others 0..25 ms after it is ready */
        long us = rand_r(&seed) % 25000;
        if (round < 2 || rand_r(&seed) % 6) {
            char c;
            if (read(fds[0], &c, 1) != 1)
                fail_msg("the child did not start (round %d)", round);
        } else {
            us %= 3000;
        }
        close(fds[0]);
        struct timespec d = {0, us * 1000};
        nanosleep(&d, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status))
            fail_msg("child exited by itself: status %d (round %d)", WEXITSTATUS(status), round);

        struct ts_lake_resume res;
        struct totals committed = {0};
        struct ts_lake *l = open_ok(&cfg, &res);
        if (res.generation) {
            assert_true(decode_state(res.state, res.state_len, &committed));
            assert_int_equal(res.offset_next, (int64_t)committed.rows);
        } else {
            assert_int_equal(res.offset_next, -1);
        }
        free(res.state);
        assert_true(res.generation >= last_gen);
        progressed += res.generation > last_gen;
        last_gen = res.generation;
        rolled += res.rolled_forward;
        rolled_runs += res.rolled_forward > 0;
        removed += res.removed_temporaries;
        check_lake(res.generation, &committed);
        ts_lake_close(l);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr,
            "%d kills in %.1f s: %" PRIu64 " generations committed, %u recoveries rolled forward "
            "%" PRIu64 " files, %" PRIu64 " temporaries removed; %" PRIu64 " -<seq> files\n",
            KILLS, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
            last_gen, rolled_runs, rolled, removed, seq_files_seen);
    assert_true(progressed >= 10); /* loose: a loaded machine slows the child */
    assert_true(seq_files_seen > 0);
    for (size_t i = 0; i < nckpts; i++)
        free(ckpts[i].files);
    free(ckpts);
    ckpts = NULL;
    nckpts = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_empty_root_then_checkpoint_only, setup, teardown),
        cmocka_unit_test_setup_teardown(data_files_with_row_number, setup, teardown),
        cmocka_unit_test_setup_teardown(data_files_without_row_number, setup, teardown),
        cmocka_unit_test_setup_teardown(resumes_latest_generation_offset_and_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(second_owner_of_a_generation_gets_conflict, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stalled_owner_loses_to_a_pruned_generation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(crash_between_link_and_rename_rolls_forward, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stray_temporaries, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupted_latest_checkpoint_is_a_parse_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(keeps_the_last_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(rejects_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(open_files_stay_within_the_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(rows_for_many_dates_under_a_tight_fd_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(commit_due_at_max_checkpoint_files, setup, teardown),
        cmocka_unit_test_setup_teardown(file_names_in_checkpoints_are_strict, setup, teardown),
        cmocka_unit_test_setup_teardown(reads_a_lake_written_before_the_open_file_bound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(sigkill_at_random_moments_loses_and_duplicates_nothing,
                                        setup, teardown),
    };
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/ts-lake-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    ts_log_level = TS_LOG_ERR;
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rm_rf(base);
    return rc;
}
