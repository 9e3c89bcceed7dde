/* SPDX-License-Identifier: Apache-2.0 */
/* test_lake_s3store.c - the lake (bridge/lake.c) on an S3 bucket
 * (bridge/lake_s3store.c) against a real S3 API server, S3Proxy, at the
 * lake's API: ts_lake_open_store, ts_lake_write_row, ts_lake_commit.
 *
 * A writer (a child process) writes rows 0..ROWS-1 (ENTRIES is the row's
 * number), commits every COMMIT_EVERY rows with offset_next the next row and
 * the state "rows <offset_next>", resuming from what open reports. A crash is
 * the child's _exit right after its Kth store operation (upload, checkpoint
 * put, copy, delete, listing...), then a writer that crashes at its own Kth
 * operation again (during recovery when K is small), then one that finishes.
 * Then every visible data object is read and gunzipped: each row exactly
 * once, nothing hidden left, the last checkpoint's state "rows ROWS".
 * "outage DIR": a commit while S3Proxy is down, then reopened once it is
 * back (driven by test_lake_s3store.sh through files in DIR).
 * Run by test_lake_s3store.sh, which starts S3Proxy and passes:
 *   TS_S3_ENDPOINT (bucket "lake" exists), TS_S3_KEY_ID_FILE, TS_S3_SECRET_FILE,
 *   TS_SPOOL (a scratch directory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "agent_archive.h"
#include "err.h"
#include "lake.h"
#include "lake_s3.h"
#include "lake_store.h"

#define ROWS 48
#define COMMIT_EVERY 12
#define DATES 3

static char key_id[256], secret[256];

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "%s is not set (run test_lake_s3store.sh)\n", name);
        exit(2);
    }
    return v;
}

static struct ts_s3 *s3_open(void)
{
    struct ts_s3_cfg cfg = {
        .url = "s3://lake/t", .endpoint = env("TS_S3_ENDPOINT"), .region = "us-east-1",
        .path_style = true, .key_id = key_id, .secret = secret, .timeout_ms = 30000,
        .connect_timeout_ms = 2000, .max_attempts = 4, .backoff_ms = 10, .backoff_max_ms = 80,
        .part_size = 5u << 20, .max_object = 16u << 20, .max_list = 100000};
    struct ts_s3 *s3 = NULL;
    char why[256] = "";
    if (ts_s3_open(&cfg, &s3, why, sizeof why)) {
        fprintf(stderr, "s3 open: %s\n", why);
        exit(2);
    }
    return s3;
}

/* ---- a store that crashes the process after its Kth operation ---- */

static long ops, crash_after; /* this process's: the writer is a child */
static bool crash_after_checkpoint; /* _exit right after the first checkpoint's put */
static int fail_exists;             /* exists answers "could not tell" (EIO) this many times */

static void step(void)
{
    if (crash_after && ++ops == crash_after)
        _exit(3);
}

#define S (ts_lake_s3store)
static int c_make_dir(void *sd, const char *p) { int e = S.make_dir(sd, p); step(); return e; }
static int c_sync_dir(void *sd, const char *p) { int e = S.sync_dir(sd, p); step(); return e; }
static int c_list(void *sd, const char *p, int (*each)(void *, const char *), void *arg)
{
    int e = S.list(sd, p, each, arg);
    step();
    return e;
}
static bool c_exists(void *sd, const char *p)
{
    if (fail_exists > 0) {
        fail_exists--;
        errno = EIO;
        return false;
    }
    bool e = S.exists(sd, p);
    step();
    return e;
}
static int c_read(void *sd, const char *p, char **o, size_t *l)
{
    int e = S.read(sd, p, o, l);
    step();
    return e;
}
static int c_create(void *sd, const char *p, int *fd) { int e = S.create(sd, p, fd); step(); return e; }
static int c_seal(void *sd, const char *p, int fd) { int e = S.seal(sd, p, fd); step(); return e; }
static int c_put_new(void *sd, const char *t, const char *p, const char *d, size_t l)
{
    int e = S.put_new(sd, t, p, d, l);
    if (crash_after_checkpoint)
        _exit(3);
    step();
    return e;
}
static int c_rename(void *sd, const char *f, const char *t) { int e = S.rename(sd, f, t); step(); return e; }
static int c_remove(void *sd, const char *p) { int e = S.remove(sd, p); step(); return e; }
static int c_manifest_fd(void *sd) { return S.manifest_fd(sd); }
static void c_close(void *sd) { S.close(sd); }

static const struct ts_lake_store crashing = {
    .name = "crashing s3", .make_dir = c_make_dir, .sync_dir = c_sync_dir, .list = c_list,
    .exists = c_exists, .read = c_read, .create = c_create, .seal = c_seal,
    .put_new = c_put_new, .rename = c_rename, .remove = c_remove,
    .manifest_fd = c_manifest_fd, .close = c_close};

/* ---- the writer ---- */

static struct ts_window_row row_of(int i)
{
    struct ts_window_row r = {.entries = (uint64_t)i, .exits = 1, .late = i % 5 == 0};
    strcpy(r.ca, "A002");
    strcpy(r.unit, "R051");
    strcpy(r.scp, "02-00-00");
    strcpy(r.station, "59 ST");
    strcpy(r.linename, "NQR456W");
    strcpy(r.division, "BMT");
    strcpy(r.desc, "REGULAR");
    snprintf(r.date, sizeof r.date, "06/%02d/2023", 1 + i % DATES);
    strcpy(r.time, "00:05:00");
    return r;
}

static const struct ts_lake_cfg lake_cfg = {
    .root = NULL, .table = NULL, .owner = "bridge-a", .row_number = true,
    .compression_level = 1, .keep_checkpoints = 2,
    .max_open_files = 2, /* rows of 3 dates x 2 take turns: files sealed early, -<seq> files */
    .max_checkpoint_files = 256};

/* Opens table on the bucket; prints why on failure. */
static int open_lake(const char *table, const struct ts_lake_store *st, struct ts_lake **lake,
                     struct ts_lake_resume *resume)
{
    char why[256] = "";
    void *sd = NULL;
    struct ts_lake_cfg cfg = lake_cfg;
    cfg.root = env("TS_SPOOL");
    cfg.table = table;
    int err = ts_lake_s3store_open(s3_open(), cfg.root, &sd, why, sizeof why);
    if (!err)
        err = ts_lake_open_store(&cfg, "readings", 0, st, sd, lake, resume, why, sizeof why);
    if (err)
        fprintf(stderr, "lake open %s: %s: %s\n", table, ts_strerror(err), why);
    return err;
}

/* The writer's whole life: 0 done, 3 crashed, else a failure. */
static int writer(const char *table, long crash)
{
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        struct ts_lake *lake = NULL;
        struct ts_lake_resume resume;
        char state[32];
        ops = 0;
        crash_after = crash;
        if (open_lake(table, &crashing, &lake, &resume))
            _exit(1);
        int64_t next = resume.offset_next < 0 ? 0 : resume.offset_next;
        snprintf(state, sizeof state, "rows %" PRId64, next);
        if ((resume.state || next) && (!resume.state || strcmp(resume.state, state) ||
                                       next % COMMIT_EVERY)) {
            fprintf(stderr, "%s: resumed at %" PRId64 " with state %s\n", table, next,
                    resume.state ? resume.state : "(none)");
            _exit(1);
        }
        free(resume.state);
        for (int64_t i = next; i < ROWS; i++) {
            struct ts_window_row r = row_of((int)i);
            if (ts_lake_write_row(lake, &r))
                _exit(1);
            if ((i + 1) % COMMIT_EVERY == 0) {
                snprintf(state, sizeof state, "rows %" PRId64, i + 1);
                int err = ts_lake_commit(lake, i + 1, state, strlen(state), NULL);
                if (err) {
                    fprintf(stderr, "%s: commit at %" PRId64 ": %s\n", table, i + 1,
                            ts_strerror(err));
                    _exit(1);
                }
            }
        }
        ts_lake_close(lake);
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* ---- reading the bucket back ---- */

struct keys {
    char **v;
    size_t n;
};

static int add_key(void *arg, const char *key, uint64_t size)
{
    struct keys *k = arg;
    (void)size;
    k->v = realloc(k->v, (k->n + 1) * sizeof *k->v);
    assert_non_null(k->v);
    k->v[k->n++] = strdup(key);
    return TS_OK;
}

static void gunzip_rows(const char *gz, size_t len, unsigned *seen, const char *key)
{
    static char out[1 << 20];
    z_stream z = {.next_in = (Bytef *)gz, .avail_in = (uInt)len, .next_out = (Bytef *)out,
                  .avail_out = sizeof out - 1};
    assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
    int rc = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    if (rc != Z_STREAM_END)
        fail_msg("%s: not one complete gzip stream (%d)", key, rc);
    out[z.total_out] = '\0';
    char *line = strchr(out, '\n');
    assert_non_null(line);
    assert_memory_equal(out, ",CA,UNIT,SCP,STATION,", 21);
    for (line++; *line; line = strchr(line, '\n') + 1) {
        char *nl = strchr(line, '\n'), *c = nl;
        assert_non_null(nl);
        *nl = '\0';
        int commas = 0;
        while (c > line && commas < 2)
            if (*--c == ',')
                commas++;
        unsigned long v = strtoul(c + 1, NULL, 10);
        assert_true(v < ROWS);
        seen[v]++;
        *nl = '\n';
    }
}

/* Every row once in the visible objects; no hidden ones left; the latest
 * checkpoint's state. */
static void check_bucket(const char *table)
{
    struct ts_s3 *s3 = s3_open();
    struct keys k = {0};
    char prefix[64], why[256] = "";
    unsigned seen[ROWS] = {0};
    size_t visible = 0, hidden = 0;

    snprintf(prefix, sizeof prefix, "%s/", table);
    assert_int_equal(ts_s3_list(s3, prefix, add_key, &k, why, sizeof why), TS_OK);
    for (size_t i = 0; i < k.n; i++) {
        const char *base = strrchr(k.v[i], '/') + 1;
        if (base[0] == '.') {
            hidden++;
            fprintf(stderr, "%s: left: %s\n", table, k.v[i]);
        } else if (strstr(k.v[i], "/event_date=")) {
            char *data = NULL;
            size_t len = 0;
            assert_int_equal(ts_s3_get(s3, k.v[i], &data, &len, why, sizeof why), TS_OK);
            gunzip_rows(data, len, seen, k.v[i]);
            visible++;
            free(data);
        }
        free(k.v[i]);
    }
    free(k.v);
    ts_s3_close(s3);
    for (int i = 0; i < ROWS; i++)
        if (seen[i] != 1)
            fail_msg("%s: row %d seen %u times (%zu visible objects)", table, i, seen[i],
                     visible);
    assert_int_equal(hidden, 0);

    struct ts_lake *lake = NULL;
    struct ts_lake_resume resume;
    assert_int_equal(open_lake(table, &ts_lake_s3store, &lake, &resume), TS_OK);
    assert_int_equal(resume.offset_next, ROWS);
    assert_string_equal(resume.state, "rows 48");
    assert_int_equal(resume.generation, ROWS / COMMIT_EVERY);
    free(resume.state);
    ts_lake_close(lake);
}

/* Right after a crash, before any recovery: the visible rows are exactly
 * those the latest checkpoint in the bucket covers, but for files that
 * checkpoint names that are not copied yet (rows at most once, none past its
 * offset_next, none missing before the previous checkpoint's). */
static void check_crashed(const char *table)
{
    struct ts_s3 *s3 = s3_open();
    struct keys k = {0};
    char prefix[64], ckpt[128] = "", why[256] = "";
    unsigned seen[ROWS] = {0};
    long next = 0, from = 0;

    snprintf(prefix, sizeof prefix, "%s/", table);
    assert_int_equal(ts_s3_list(s3, prefix, add_key, &k, why, sizeof why), TS_OK);
    for (size_t i = 0; i < k.n; i++) {
        const char *base = strrchr(k.v[i], '/') + 1;
        if (strstr(k.v[i], "/_manifest/") && strstr(base, ".ckpt") && base[0] != '.' &&
            strcmp(k.v[i], ckpt) > 0)
            snprintf(ckpt, sizeof ckpt, "%s", k.v[i]);
    }
    if (ckpt[0]) {
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(ts_s3_get(s3, ckpt, &text, &len, why, sizeof why), TS_OK);
        const char *o = strstr(text, "\noffset_next ");
        const char *f = strstr(text, "\noffset_from ");
        assert_non_null(o);
        assert_non_null(f);
        next = atol(o + 13);
        from = atol(f + 13);
        free(text);
    }
    for (size_t i = 0; i < k.n; i++) {
        const char *base = strrchr(k.v[i], '/') + 1;
        if (base[0] != '.' && strstr(k.v[i], "/event_date=")) {
            char *data = NULL;
            size_t len = 0;
            assert_int_equal(ts_s3_get(s3, k.v[i], &data, &len, why, sizeof why), TS_OK);
            gunzip_rows(data, len, seen, k.v[i]);
            free(data);
        }
        free(k.v[i]);
    }
    free(k.v);
    ts_s3_close(s3);
    for (long i = 0; i < ROWS; i++)
        if (seen[i] > 1 || (i >= next && seen[i]) || (i < from && !seen[i]))
            fail_msg("%s after a crash: row %ld seen %u times; the latest checkpoint %s covers "
                     "rows from %ld to %ld", table, i, seen[i], ckpt[0] ? ckpt : "(none)", from,
                     next);
}

/* ---- tests ---- */

static void without_a_crash(void **unused)
{
    (void)unused;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(writer("t0", 0), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    check_bucket("t0");
    printf("no crash: %d rows, %d commits in %.2f s\n", ROWS, ROWS / COMMIT_EVERY,
           (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
}

/* A checkpoint damaged on the store (one byte: only its crc tells): open
 * fails with TS_EPARSE and deletes nothing, not even a stray temporary. */
static void a_damaged_checkpoint_stops_open(void **unused)
{
    (void)unused;
    const char *ckpt = "d1/_manifest/readings-0/000000000004.ckpt";
    const char *stray = "d1/event_date=2023-06-01/.part-readings-0-000000000002.csv.gz."
                        "bridge-b-1-00000000.tmp";
    struct keys before = {0}, after = {0};
    char *text = NULL, why[256] = "";
    size_t len = 0;

    assert_int_equal(writer("d1", 0), 0);
    struct ts_s3 *s3 = s3_open();
    assert_int_equal(ts_s3_get(s3, ckpt, &text, &len, why, sizeof why), TS_OK);
    char *owner = strstr(text, "\nowner bridge-a\n");
    assert_non_null(owner);
    owner[14] = 'b';
    assert_int_equal(ts_s3_put(s3, ckpt, text, len, false, why, sizeof why), TS_OK);
    assert_int_equal(ts_s3_put(s3, stray, "x", 1, false, why, sizeof why), TS_OK);
    assert_int_equal(ts_s3_list(s3, "d1/", add_key, &before, why, sizeof why), TS_OK);

    struct ts_lake *lake = NULL;
    struct ts_lake_resume resume;
    assert_int_equal(open_lake("d1", &ts_lake_s3store, &lake, &resume), TS_EPARSE);
    assert_null(lake);
    assert_null(resume.state);
    assert_int_equal(ts_s3_list(s3, "d1/", add_key, &after, why, sizeof why), TS_OK);
    assert_int_equal(after.n, before.n);
    for (size_t i = 0; i < before.n; i++) {
        assert_string_equal(after.v[i], before.v[i]);
        free(before.v[i]);
        free(after.v[i]);
    }
    free(before.v);
    free(after.v);
    free(text);
    ts_s3_close(s3);
}

/* The store out of reach while open checks the files the latest checkpoint
 * names (a crash left them to roll forward): TS_ESYS, not TS_EPARSE (which
 * would stop the partition for an operator), and the next open goes on. */
static void a_store_out_of_reach_at_open_is_no_damage(void **unused)
{
    (void)unused;
    struct ts_lake *lake = NULL;
    struct ts_lake_resume resume;

    crash_after_checkpoint = true; /* inherited by the writer */
    assert_int_equal(writer("u1", 0), 3);
    crash_after_checkpoint = false;
    fail_exists = 1000;
    assert_int_equal(open_lake("u1", &crashing, &lake, &resume), TS_ESYS);
    fail_exists = 0;
    assert_null(lake);
    assert_int_equal(writer("u1", 0), 0);
    check_bucket("u1");
}

/* ts_archive_prune's rule, as the agents' table prunes the store */
static bool gen_upto_1(const char *name, void *ctx)
{
    (void)ctx;
    return ts_archive_prunable(name, 1, NULL);
}

static void write_local(int dirfd, const char *name, const char *text)
{
    FILE *f = fdopen(openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* The side files of the checkpoints (the agents' archive, agent_table.c):
 * worked on in a local directory of the spool, published to and fetched
 * from the bucket beside the checkpoints, pruned there; a missing one is
 * ENOENT; names that leave the manifest and files the client could not
 * read back (over 64 MiB) are refused, nothing uploaded. */
static void side_files_go_through_the_store(void **unused)
{
    (void)unused;
    static const char a1[] = "agents-000000000001-w.txt", a2[] = "agents-000000000002-w.txt";
    struct ts_lake *lake = NULL;
    struct ts_lake_resume resume;
    char *text = NULL, why[256] = "";
    size_t len = 0;

    assert_int_equal(open_lake("s1", &ts_lake_s3store, &lake, &resume), TS_OK);
    free(resume.state);
    int dirfd = ts_lake_manifest_fd(lake);
    assert_true(dirfd >= 0);
    write_local(dirfd, a1, "r051-ctrl-01\t1200;1205-1290\n");
    write_local(dirfd, a2, "r051-ctrl-02\t7\n");
    assert_int_equal(ts_lake_side_publish(lake, a1), TS_OK);
    assert_int_equal(ts_lake_side_publish(lake, a2), TS_OK);
    struct ts_s3 *s3 = s3_open();
    assert_int_equal(ts_s3_get(s3, "s1/_manifest/readings-0/agents-000000000001-w.txt", &text,
                               &len, why, sizeof why), TS_OK);
    assert_string_equal(text, "r051-ctrl-01\t1200;1205-1290\n");
    free(text);

    /* fetched into an empty directory, as on another machine */
    assert_int_equal(unlinkat(dirfd, a1, 0), 0);
    assert_int_equal(ts_lake_side_fetch(lake, a1), TS_OK);
    char buf[64] = "";
    int fd = openat(dirfd, a1, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof buf - 1), 28);
    close(fd);
    assert_string_equal(buf, "r051-ctrl-01\t1200;1205-1290\n");
    errno = 0;
    assert_int_equal(ts_lake_side_fetch(lake, "agents-000000000009-w.txt"), TS_ESYS);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(ts_lake_side_fetch(lake, "../../x"), TS_EINVAL);
    assert_int_equal(ts_lake_side_publish(lake, ".."), TS_EINVAL);

    /* over what the client reads back: refused, not uploaded */
    static const char big[] = "agents-000000000003-w.txt";
    fd = openat(dirfd, big, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (64 << 20) + 1), 0);
    close(fd);
    assert_int_equal(ts_lake_side_publish(lake, big), TS_EFULL);
    assert_int_equal(ts_s3_get(s3, "s1/_manifest/readings-0/agents-000000000003-w.txt", &text,
                               &len, why, sizeof why), TS_ENOTFOUND);

    /* pruned in the store by the archive's rule; the checkpoint stays */
    assert_int_equal(ts_lake_commit(lake, 0, "rows 0", 6, NULL), TS_OK);
    assert_int_equal(ts_lake_side_prune(lake, gen_upto_1, NULL), 1);
    assert_int_equal(ts_s3_get(s3, "s1/_manifest/readings-0/agents-000000000001-w.txt", &text,
                               &len, why, sizeof why), TS_ENOTFOUND);
    assert_int_equal(ts_s3_get(s3, "s1/_manifest/readings-0/agents-000000000002-w.txt", &text,
                               &len, why, sizeof why), TS_OK);
    free(text);
    assert_int_equal(ts_s3_get(s3, "s1/_manifest/readings-0/000000000001.ckpt", &text, &len, why,
                               sizeof why), TS_OK);
    free(text);
    ts_s3_close(s3);
    ts_lake_close(lake);
}

/* A crash after every store operation K of a whole run (K = 1, 2, ...
 * until a run ends before it), twice, then a run to the end. */
static void crash_after_each_operation(void **unused)
{
    (void)unused;
    long k, crashes = 0, step_k = atol(getenv("TS_CRASH_STEP") ? getenv("TS_CRASH_STEP") : "9");
    char table[32];
    for (k = 1;; k += step_k > 0 ? step_k : 1) {
        snprintf(table, sizeof table, "c%ld", k);
        int rc = writer(table, k);
        if (rc == 0)
            break; /* the run had fewer operations */
        assert_int_equal(rc, 3);
        crashes++;
        check_crashed(table);
        rc = writer(table, k);
        assert_true(rc == 0 || rc == 3);
        if (rc == 3)
            check_crashed(table);
        assert_int_equal(writer(table, 0), 0);
        check_bucket(table);
    }
    /* the crashed writers' spool files went at the next open (the side
     * files' directories, <table>/_manifest/..., stay) */
    DIR *d = opendir(env("TS_SPOOL"));
    struct dirent *e;
    int left = 0;
    assert_non_null(d);
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, ".lake-spool-", 12))
            left++;
    closedir(d);
    assert_int_equal(left, 0);
    printf("crashes: %ld runs crashed after one of their first %ld store operations, each "
           "recovered: every row once\n", crashes, k - 1);
    assert_true(crashes > 20);
}

static bool wait_for(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    for (int i = 0; i < 2400; i++) { /* 120 s */
        if (access(path, F_OK) == 0)
            return true;
        usleep(50 * 1000);
    }
    fprintf(stderr, "outage: %s did not come\n", path);
    return false;
}

static void touch(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
}

/* "outage DIR": a commit while the server is down (test_lake_s3store.sh
 * kills it once DIR/ready exists and creates DIR/down) fails; the lake is
 * closed, and once the server is back (DIR/up) a writer reopens it and
 * goes to the end: every row once, nothing hidden left. 0 if so. */
static int outage(const char *dir)
{
    struct ts_lake *lake = NULL;
    struct ts_lake_resume resume;
    if (open_lake("o1", &ts_lake_s3store, &lake, &resume))
        return 1;
    free(resume.state);
    for (int i = 0; i < 2 * COMMIT_EVERY; i++) {
        struct ts_window_row r = row_of(i);
        if (ts_lake_write_row(lake, &r))
            return 1;
        if (i + 1 == COMMIT_EVERY &&
            ts_lake_commit(lake, COMMIT_EVERY, "rows 12", 7, NULL) != TS_OK)
            return 1;
    }
    touch(dir, "ready");
    if (!wait_for(dir, "down"))
        return 1;
    int err = ts_lake_commit(lake, 2 * COMMIT_EVERY, "rows 24", 7, NULL);
    printf("outage: the commit with the server down: %s\n", ts_strerror(err));
    ts_lake_close(lake);
    touch(dir, "failed");
    if (err == TS_OK || !wait_for(dir, "up"))
        return 1;
    if (writer("o1", 0) != 0)
        return 1;
    check_bucket("o1");
    printf("outage: reopened once the server was back: every row once\n");
    return 0;
}

int main(int argc, char **argv)
{
    char why[256];
    if (ts_s3_credentials(env("TS_S3_KEY_ID_FILE"), env("TS_S3_SECRET_FILE"), key_id,
                          sizeof key_id, secret, sizeof secret, why, sizeof why)) {
        fprintf(stderr, "credentials: %s\n", why);
        return 2;
    }
    if (argc == 3 && !strcmp(argv[1], "outage"))
        return outage(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(without_a_crash),
        cmocka_unit_test(a_damaged_checkpoint_stops_open),
        cmocka_unit_test(a_store_out_of_reach_at_open_is_no_damage),
        cmocka_unit_test(side_files_go_through_the_store),
        cmocka_unit_test(crash_after_each_operation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
