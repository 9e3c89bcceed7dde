/* SPDX-License-Identifier: Apache-2.0 */
/* Crash safety of the store (agent/store.c), the way SQLite tests its own:
 * a child appends poll cycles in a loop, with retention merging and the
 * publish mark moving, and is killed with SIGKILL at random moments. After
 * each kill the file must be intact, the numbers must tile with no gap but
 * merged_from holes, next_seq must be above every stored number, and the
 * saved state (the total of entries appended so far, written in the same
 * transaction) must equal the entries stored: nothing counted is lost or
 * counted twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "store.h"

#define AGENT "crash-test.01"
#define NT 5
#define KILLS 100
#define KILLS_MAX 1000

static char path[128];

struct saved {
    uint64_t total_entries; /* every entry appended so far */
    uint64_t cycles;
};

static void remove_files(void)
{
    char p[160];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static struct ts_store_cfg config(int round)
{
    struct ts_store_cfg cfg = {.max_rows = 150, .merge_batch = 40,
                               .synchronous_full = round % 2};
    snprintf(cfg.path, sizeof cfg.path, "%s", path);
    return cfg;
}

/* The child: appends cycles for ever, continuing from the saved state;
 * writes one byte to ready once the store is open. */
static void child(int round, int ready)
{
    struct ts_store_cfg cfg = config(round);
    struct ts_store *s;
    struct saved sv = {0};
    char err[512];
    size_t len = 0;
    unsigned seed = (unsigned)getpid();

    ts_log_level = TS_LOG_ERR;
    if (ts_store_open(&cfg, AGENT, &s, err, sizeof err) != TS_OK) {
        fprintf(stderr, "child: %s\n", err);
        _exit(2);
    }
    if (ts_store_load_state(s, &sv, sizeof sv, &len) != TS_OK || (len && len != sizeof sv))
        _exit(3);
    if (write(ready, "r", 1) != 1)
        _exit(6);
    close(ready);
    for (;;) {
        struct ts_reading r[NT];
        memset(r, 0, sizeof r);
        for (int t = 0; t < NT; t++) {
            strcpy(r[t].ca, "N329");
            strcpy(r[t].unit, "R201");
            snprintf(r[t].scp, sizeof r[t].scp, "00-03-%02d", t);
            strcpy(r[t].station, "WOODHAVEN BLVD");
            strcpy(r[t].linename, "MR");
            strcpy(r[t].division, "IND");
            strcpy(r[t].desc, "REGULAR");
            r[t].time_ms = 1685174400000LL + (int64_t)sv.cycles * 1000;
            r[t].entries = (uint64_t)(rand_r(&seed) % 40);
            r[t].exits = (uint64_t)(rand_r(&seed) % 40);
            sv.total_entries += r[t].entries;
        }
        sv.cycles++;
        if (ts_store_append(s, r, NT, &sv, sizeof sv) != TS_OK)
            _exit(4);
        if (sv.cycles % 7 == 0) {
            struct ts_store_stats st;
            ts_store_get_stats(s, &st);
            if (st.next_seq > NT * 3 + 1 &&
                ts_store_mark_published(s, st.next_seq - 1 - NT * 3) != TS_OK)
                _exit(5);
        }
    }
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The checks after a kill, on the file as the killed child left it. */
static void check_file(uint64_t *cycles, uint64_t *rows, uint64_t *merges)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    struct saved sv = {0};

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);

    /* the intervals [merged_from, seq] tile 1..max(seq): no acks here */
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT seq, merged_from FROM readings ORDER BY seq",
                                        -1, &st, NULL), SQLITE_OK);
    int64_t expect = 1, max_seq = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0), from = sqlite3_column_int64(st, 1);
        if (from != expect || from > seq) {
            fprintf(stderr, "seq %lld merged_from %lld, expected merged_from %lld\n",
                    (long long)seq, (long long)from, (long long)expect);
            fail();
        }
        expect = seq + 1;
        max_seq = seq;
    }
    sqlite3_finalize(st);
    int64_t next_seq = query_int(db, "SELECT next_seq FROM meta");
    assert_true(next_seq > max_seq);
    assert_true(next_seq >= 1);

    /* the state saved with the last committed cycle matches the readings */
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT blob FROM state", -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        assert_int_equal(sqlite3_column_bytes(st, 0), sizeof sv);
        memcpy(&sv, sqlite3_column_blob(st, 0), sizeof sv);
    }
    sqlite3_finalize(st);
    int64_t sum = query_int(db, "SELECT ifnull(sum(entries), 0) FROM readings");
    assert_int_equal(sum, (int64_t)sv.total_entries);
    /* every cycle committed has its NT readings, merged or not */
    assert_int_equal(next_seq - 1, (int64_t)(sv.cycles * NT));
    *cycles = sv.cycles;
    *rows = (uint64_t)query_int(db, "SELECT count(*) FROM readings");
    *merges = (uint64_t)query_int(db, "SELECT merges FROM meta");
    sqlite3_close(db);
}

static void sigkill_at_random_moments_loses_nothing_committed(void **state)
{
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    uint64_t cycles = 0, last_cycles = 0, rows = 0, merges = 0;
    int progressed = 0;

    fprintf(stderr, "seed %u\n", seed);
    /* At least KILLS rounds; more (up to KILLS_MAX) while the store has not
     * yet committed 10 times between kills or merged once: a slow machine
     * (qemu, load) gets through less in the same milliseconds, so a round
     * that commits nothing widens the next kill's window (up to 400 ms). A
     * store that never commits or merges still fails, at KILLS_MAX. */
    long window = 13;
    int round;
    for (round = 0; round < KILLS || ((progressed < 10 || merges == 0) && round < KILLS_MAX);
         round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child(round, fds[1]);
        }
        close(fds[1]);
        /* One round in five kills the child at once (while it opens the
         * store, recovering the WAL); the others 0..12 ms after it is
         * ready, and the first one 50 ms, to get retention going. */
        long ms = rand_r(&seed) % window;
        if (round == 0 || rand_r(&seed) % 5) {
            char c;
            if (read(fds[0], &c, 1) != 1)
                fail_msg("the child did not start (round %d)", round);
            ms = round == 0 ? 50 : ms;
        } else {
            ms %= 3;
        }
        close(fds[0]);
        struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&d, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status)) {
            fprintf(stderr, "child exited by itself: status %d\n", WEXITSTATUS(status));
            fail();
        }
        check_file(&cycles, &rows, &merges);
        assert_true(cycles >= last_cycles); /* committed cycles never go back */
        progressed += cycles > last_cycles;
        window = cycles > last_cycles ? 13 : (window * 2 > 400 ? 400 : window * 2);
        last_cycles = cycles;

        /* and the store opens, numbering on from next_seq */
        struct ts_store_cfg cfg = config(round);
        struct ts_store *s = NULL;
        struct ts_store_stats st;
        char err[512];
        assert_int_equal(ts_store_open(&cfg, AGENT, &s, err, sizeof err), TS_OK);
        ts_store_get_stats(s, &st);
        assert_int_equal(st.next_seq, cycles * NT + 1);
        assert_int_equal(st.rows, rows);
        ts_store_close(s);
    }
    fprintf(stderr, "%llu cycles committed over %d kills, %llu rows kept, %llu merges\n",
            (unsigned long long)cycles, round, (unsigned long long)rows,
            (unsigned long long)merges);
    assert_true(progressed >= 10);
    assert_true(merges > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sigkill_at_random_moments_loses_nothing_committed),
    };
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/ts-store-crash-%d.db", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
    remove_files();
    ts_log_level = TS_LOG_ERR;
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    remove_files();
    return rc;
}
