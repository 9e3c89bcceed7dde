/* SPDX-License-Identifier: Apache-2.0 */
/* test_lake_s3fence.c - the fence between two writers of one partition on the
 * object lake (bridge/lake.c on bridge/lake_s3store.c), against S3Proxy behind
 * s3_fault_proxy.py --conditional, which gives PUT with If-None-Match: * (and
 * GCS's x-goog-if-generation-match: 0) the semantics AWS documents: 412 if the
 * key exists.
 *
 * A race: two child processes (owners bridge-a and bridge-b, as two bridges
 * that both believe they own partition 0) open the lake at the same
 * generation, write the same offsets (rows n..n+11, ENTRIES the row's number,
 * EXITS 1 for a and 2 for b, on dates of their own so that both writers'
 * files could be visible at once), wait at a barrier and commit together.
 * Exactly one commit must succeed, the other must fail with TS_ECONFLICT;
 * then every row is visible exactly once and only the winner's (its EXITS),
 * no hidden object is left, and a lake opened again resumes from the
 * winner's offset and state. Four rounds, the last with goog_preconditions.
 * Then a writer stalled at a generation that the other has committed past
 * and pruned (keep_checkpoints 1): its PUT finds the key free, and the
 * listing after it must make it lose.
 * And the check of [lake] conditional_writes (ts_lake_s3store_probe) on
 * S3Proxy itself and through the proxy.
 * Run by test_lake_s3fence.sh: TS_S3_ENDPOINT (the proxy; bucket "lake"
 * exists), TS_S3_DIRECT (S3Proxy itself), TS_S3_KEY_ID_FILE,
 * TS_S3_SECRET_FILE, TS_SPOOL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "err.h"
#include "lake.h"
#include "lake_s3.h"
#include "lake_store.h"

#define BLOCK 12      /* rows a commit */
#define ROUNDS 4
#define MAX_ROWS (BLOCK * (ROUNDS + 4))

static char key_id[256], secret[256];

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "%s is not set (run test_lake_s3fence.sh)\n", name);
        exit(2);
    }
    return v;
}

static struct ts_s3 *s3_at(const char *endpoint, bool goog)
{
    struct ts_s3_cfg cfg = {
        .url = "s3://lake/f", .endpoint = endpoint, .region = "us-east-1",
        .path_style = true, .key_id = key_id, .secret = secret, .timeout_ms = 30000,
        .connect_timeout_ms = 2000, .max_attempts = 4, .backoff_ms = 10, .backoff_max_ms = 80,
        .part_size = 5u << 20, .max_object = 16u << 20, .max_list = 100000,
        .goog_preconditions = goog};
    struct ts_s3 *s3 = NULL;
    char why[256] = "";
    if (ts_s3_open(&cfg, &s3, why, sizeof why)) {
        fprintf(stderr, "s3 open: %s\n", why);
        exit(2);
    }
    return s3;
}

static struct ts_s3 *s3_open(bool goog) { return s3_at(env("TS_S3_ENDPOINT"), goog); }

static int open_lake(const char *table, const char *owner, bool goog, int keep,
                     struct ts_lake **lake, struct ts_lake_resume *resume)
{
    char why[256] = "", spool[512];
    void *sd = NULL;
    /* a spool of each owner's own, as on two machines */
    snprintf(spool, sizeof spool, "%s/%s", env("TS_SPOOL"), owner);
    struct ts_lake_cfg cfg = {
        .root = spool, .table = table, .owner = owner, .row_number = true,
        .compression_level = 1, .keep_checkpoints = keep, .max_open_files = 4,
        .max_checkpoint_files = 256};
    int err = ts_lake_s3store_open(s3_open(goog), spool, &sd, why, sizeof why);
    if (!err)
        err = ts_lake_open_store(&cfg, "readings", 0, &ts_lake_s3store, sd, lake, resume, why,
                                 sizeof why);
    if (err)
        fprintf(stderr, "lake open %s as %s: %s: %s\n", table, owner, ts_strerror(err), why);
    return err;
}

/* Row i of writer w (0: bridge-a, 1: bridge-b). */
static struct ts_window_row row_of(int i, int w)
{
    struct ts_window_row r = {.entries = (uint64_t)i, .exits = (uint64_t)w + 1};
    strcpy(r.ca, "A002");
    strcpy(r.unit, "R051");
    strcpy(r.scp, "02-00-00");
    strcpy(r.station, "59 ST");
    strcpy(r.linename, "NQR456W");
    strcpy(r.division, "BMT");
    strcpy(r.desc, "REGULAR");
    snprintf(r.date, sizeof r.date, "06/%02d/2023", 1 + 3 * w + i % 3);
    strcpy(r.time, "00:05:00");
    return r;
}

static const char *const owners[2] = {"bridge-a", "bridge-b"};

/* Opens, writes the next BLOCK rows from where the lake resumes, commits.
 * Returns 0 if w committed, 1 on TS_ECONFLICT, 2 on anything else. */
static int write_block(const char *table, int w, bool goog, int keep, int ready, int go)
{
    struct ts_lake *lake = NULL;
    struct ts_lake_resume res;
    char state[64];
    if (open_lake(table, owners[w], goog, keep, &lake, &res))
        return 2;
    int64_t n = res.offset_next < 0 ? 0 : res.offset_next;
    free(res.state);
    for (int64_t i = n; i < n + BLOCK; i++) {
        struct ts_window_row r = row_of((int)i, w);
        if (ts_lake_write_row(lake, &r)) {
            fprintf(stderr, "%s: write failed\n", owners[w]);
            return 2;
        }
    }
    if (ready >= 0) { /* the barrier: both have their files uploaded-to-be, then commit */
        char c = 'r', g;
        if (write(ready, &c, 1) != 1 || read(go, &g, 1) != 0)
            return 2;
    }
    snprintf(state, sizeof state, "rows %" PRId64 " by %s", n + BLOCK, owners[w]);
    int err = ts_lake_commit(lake, n + BLOCK, state, strlen(state), NULL);
    if (err && err != TS_ECONFLICT)
        fprintf(stderr, "%s: commit: %s\n", owners[w], ts_strerror(err));
    ts_lake_close(lake);
    return err == TS_OK ? 0 : err == TS_ECONFLICT ? 1 : 2;
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

/* Each row's ENTRIES (its number) counted in seen, its EXITS in exits. */
static void gunzip_rows(const char *gz, size_t len, unsigned *seen, unsigned *exits,
                        const char *key)
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
    for (line++; *line; line = strchr(line, '\n') + 1) {
        char *nl = strchr(line, '\n'), *c = nl;
        assert_non_null(nl);
        int commas = 0;
        while (c > line && commas < 2)
            if (*--c == ',')
                commas++;
        char *end = NULL;
        unsigned long v = strtoul(c + 1, &end, 10);
        assert_true(v < MAX_ROWS);
        seen[v]++;
        exits[v] = (unsigned)strtoul(end + 1, NULL, 10);
    }
}

/* rows 0..n-1 visible once each, row i's EXITS those of winner[i / BLOCK];
 * nothing hidden; a lake opened again resumes at n with the last winner's
 * state. */
static void check_bucket(const char *table, int n, const int *winner)
{
    struct ts_s3 *s3 = s3_open(false);
    struct keys k = {0};
    char prefix[64], why[256] = "";
    unsigned seen[MAX_ROWS] = {0}, exits[MAX_ROWS] = {0};
    size_t hidden = 0;

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
            gunzip_rows(data, len, seen, exits, k.v[i]);
            free(data);
        }
        free(k.v[i]);
    }
    free(k.v);
    ts_s3_close(s3);
    for (int i = 0; i < MAX_ROWS; i++) {
        if (seen[i] != (i < n ? 1u : 0u))
            fail_msg("%s: row %d visible %u times (%d rows committed)", table, i, seen[i], n);
        if (i < n && exits[i] != (unsigned)winner[i / BLOCK] + 1)
            fail_msg("%s: row %d is %s's, but %s committed it", table, i,
                     owners[exits[i] == 2], owners[winner[i / BLOCK]]);
    }
    assert_int_equal(hidden, 0);

    struct ts_lake *lake = NULL;
    struct ts_lake_resume res;
    char state[64];
    assert_int_equal(open_lake(table, "reader", false, 2, &lake, &res), TS_OK);
    snprintf(state, sizeof state, "rows %d by %s", n, owners[winner[n / BLOCK - 1]]);
    assert_int_equal(res.offset_next, n);
    assert_string_equal(res.state, state);
    free(res.state);
    ts_lake_close(lake);
}

/* ---- tests ---- */

/* Both writers commit the same generation at once: one wins, one gets
 * TS_ECONFLICT, and nothing of the loser's is visible. */
static void two_writers_race_for_a_generation(void **unused)
{
    (void)unused;
    int winner[ROUNDS + 1];
    for (int round = 0; round <= ROUNDS; round++) {
        bool goog = round == ROUNDS;
        int ready[2], go[2];
        pid_t pid[2];
        if (round == 0) { /* a first checkpoint by a alone: the race is for generation 2 on */
            assert_int_equal(write_block("f1", 0, false, 2, -1, -1), 0);
            winner[0] = 0;
            continue;
        }
        assert_int_equal(pipe(ready), 0);
        assert_int_equal(pipe(go), 0);
        for (int w = 0; w < 2; w++) {
            pid[w] = fork();
            assert_true(pid[w] >= 0);
            if (pid[w] == 0) {
                close(ready[0]);
                close(go[1]);
                _exit(write_block("f1", w, goog, 2, ready[1], go[0]));
            }
        }
        close(ready[1]);
        close(go[0]);
        char c[2];
        size_t got = 0;
        while (got < 2) { /* both opened at the same generation and wrote their rows */
            ssize_t r = read(ready[0], c + got, 2 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        close(go[1]); /* go: both reads return at once */
        close(ready[0]);
        int rc[2];
        for (int w = 0; w < 2; w++) {
            int st;
            while (waitpid(pid[w], &st, 0) < 0 && errno == EINTR)
                ;
            rc[w] = WIFEXITED(st) ? WEXITSTATUS(st) : 2;
        }
        assert_int_equal(got, 2);
        printf("round %d%s: bridge-a %s, bridge-b %s\n", round, goog ? " (GCS's header)" : "",
               rc[0] == 0 ? "committed" : rc[0] == 1 ? "TS_ECONFLICT" : "failed",
               rc[1] == 0 ? "committed" : rc[1] == 1 ? "TS_ECONFLICT" : "failed");
        if (!((rc[0] == 0 && rc[1] == 1) || (rc[0] == 1 && rc[1] == 0)))
            fail_msg("round %d: exactly one writer must commit and the other get TS_ECONFLICT",
                     round);
        winner[round] = rc[0] == 0 ? 0 : 1;
        check_bucket("f1", BLOCK * (round + 1), winner);
    }
}

/* b went past a's generation and pruned it (keep_checkpoints 1), so a's
 * conditional PUT finds the key free: the listing after it must stop a. */
static void a_stalled_writer_loses_to_a_pruned_generation(void **unused)
{
    (void)unused;
    int winner[4] = {0, 1, 1, 1};
    struct ts_lake *a = NULL;
    struct ts_lake_resume res;
    assert_int_equal(write_block("f2", 0, false, 1, -1, -1), 0); /* generation 1 */
    assert_int_equal(open_lake("f2", "bridge-a", false, 1, &a, &res), TS_OK);
    assert_int_equal(res.generation, 1);
    free(res.state);
    for (int g = 2; g <= 4; g++)
        assert_int_equal(write_block("f2", 1, false, 1, -1, -1), 0);
    for (int i = BLOCK; i < 2 * BLOCK; i++) {
        struct ts_window_row r = row_of(i, 0);
        assert_int_equal(ts_lake_write_row(a, &r), TS_OK);
    }
    assert_int_equal(ts_lake_commit(a, 2 * BLOCK, "rows 24 by bridge-a", 19, NULL), TS_ECONFLICT);
    ts_lake_close(a);
    check_bucket("f2", 4 * BLOCK, winner);
}

/* The bridge's check at a partition's open ([lake] conditional_writes):
 * S3Proxy itself accepts a second conditional put (TS_ECONFIG), the proxy
 * refuses it (TS_OK, with either header); no probe object is left. */
static void the_probe_tells_a_store_without_conditional_writes(void **unused)
{
    (void)unused;
    char why[512] = "";
    struct ts_s3 *s3 = s3_at(env("TS_S3_DIRECT"), false);
    assert_int_equal(ts_lake_s3store_probe(s3, "f3", why, sizeof why), TS_ECONFIG);
    printf("S3Proxy itself: %s\n", why);
    assert_non_null(strstr(why, "conditional_writes = no"));
    ts_s3_close(s3);
    for (int goog = 0; goog < 2; goog++) {
        s3 = s3_open(goog);
        why[0] = '\0';
        if (ts_lake_s3store_probe(s3, "f3", why, sizeof why) != TS_OK)
            fail_msg("the conditional proxy%s: %s", goog ? " (GCS's header)" : "", why);
        ts_s3_close(s3);
    }
    struct keys k = {0};
    s3 = s3_open(false);
    assert_int_equal(ts_s3_list(s3, "f3/", add_key, &k, why, sizeof why), TS_OK);
    for (size_t i = 0; i < k.n; i++) {
        fprintf(stderr, "left: %s\n", k.v[i]);
        free(k.v[i]);
    }
    free(k.v);
    assert_int_equal(k.n, 0);
    ts_s3_close(s3);
}

int main(void)
{
    char why[256];
    if (ts_s3_credentials(env("TS_S3_KEY_ID_FILE"), env("TS_S3_SECRET_FILE"), key_id,
                          sizeof key_id, secret, sizeof secret, why, sizeof why)) {
        fprintf(stderr, "credentials: %s\n", why);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_writers_race_for_a_generation),
        cmocka_unit_test(a_stalled_writer_loses_to_a_pruned_generation),
        cmocka_unit_test(the_probe_tells_a_store_without_conditional_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
