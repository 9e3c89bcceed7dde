/* SPDX-License-Identifier: Apache-2.0 */
/* bench_memory.c - what the aggregator's state costs, per agent and per open
 * window group: the figures docs/bridge.md ("Memory") states.
 *
 *   bench-memory [AGENTS] [GROUPS]     (defaults 100000 and 100000)
 *
 * Each case builds its structure the way the aggregator does and prints the
 * heap it holds (glibc mallinfo2: bytes in use, exact, allocator slack not
 * counted; mmap'ed blocks whole) and the growth of this process's RSS (what the kernel sees,
 * slack included), divided by the count:
 *   - agents in memory: AGENTS ids "r051-ctrl-NNNNNN" (16 characters, an
 *     id of the demo's form), one reading each (ts_seqsets_get +
 *     ts_seqset_accept_in), then the same with one gap each (a range above
 *     the acknowledged number), and the bytes each takes in a checkpoint's
 *     state (ts_seqsets_encode);
 *   - the archive (agent_archive.h): those agents written to it, bytes on
 *     disk per agent, the time of a rewrite per agent, and of a lookup that
 *     finds (an agent coming back) and one that misses (every new agent);
 *   - an agent table (agent_table.h) with max_agents 20000 taking AGENTS new
 *     agents with a checkpoint's prepare/finish every 5000: its heap stays
 *     at the bound;
 *   - open window groups (window.h): GROUPS distinct turnstiles in one open
 *     window, and the state bytes per group;
 *   - the acknowledger's table (ack.h, not connected) and station windows
 *     (station_windows.h): per agent and per turnstile.
 * Build with ./scripts/build --release (no sanitizers: their allocator
 * changes every figure); run by scripts/bench. Times are of this machine,
 * for orientation; the bytes do not depend on it. */
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ack.h"
#include "agent_archive.h"
#include "agent_table.h"
#include "err.h"
#include "log.h"
#include "reading.h"
#include "seqset.h"
#include "station_windows.h"
#include "window.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t heap(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;   /* chunks in use, and the big ones mmap'ed */
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

struct mark {
    size_t heap;
    long rss;
};

static struct mark mark(void)
{
    return (struct mark){heap(), rss_kib()};
}

static void per(const char *what, struct mark a, struct mark b, size_t n, const char *unit)
{
    printf("%-46s %8.1f bytes of heap, %8.1f of RSS per %s (%zu %ss)\n", what,
           ((double)b.heap - (double)a.heap) / (double)n,
           ((double)b.rss - (double)a.rss) * 1024.0 / (double)n, unit, n, unit);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench-memory: %s: %s\n", what, ts_strerror(rc));
    exit(1);
}

static void agent_id(char *id, size_t size, size_t i)
{
    snprintf(id, size, "r051-ctrl-%06zu", i);
}

/* ---- agents in memory, the checkpoint, the archive ---- */

static void agents(size_t n, const char *dir, int dfd)
{
    char id[TS_ID_MAX];
    struct ts_seqsets t;
    struct ts_seqset *set;
    bool dup;

    ts_seqsets_init(&t, 0);
    struct mark m0 = mark();
    for (size_t i = 0; i < n; i++) {
        agent_id(id, sizeof id, i);
        int rc = ts_seqsets_get(&t, id, &set);
        if (rc == TS_OK)
            rc = ts_seqset_accept_in(set, 1, 1, &dup);
        if (rc != TS_OK)
            die("seqsets", rc);
    }
    struct mark m1 = mark();
    per("agent in memory, one reading", m0, m1, n, "agent");
    char *text;
    size_t len;
    int rc = ts_seqsets_encode(&t, &text, &len);
    if (rc != TS_OK)
        die("encode", rc);
    printf("%-46s %8.1f bytes per agent\n", "  in a checkpoint's state", (double)len / (double)n);
    free(text);
    /* one gap each: reading 3 before 2 */
    for (size_t i = 0; i < n; i++) {
        agent_id(id, sizeof id, i);
        set = ts_seqsets_find(&t, id);
        if ((rc = ts_seqset_accept_in(set, 3, 3, &dup)) != TS_OK)
            die("gap", rc);
    }
    struct mark m2 = mark();
    per("  one gap more (a range above the ack)", m1, m2, n, "agent");

    /* the archive: written from the table's text form (one reading each) */
    ts_seqsets_free(&t);
    ts_seqsets_init(&t, 0);
    for (size_t i = 0; i < n; i++) {
        agent_id(id, sizeof id, i);
        if ((rc = ts_seqsets_get(&t, id, &set)) != TS_OK ||
            (rc = ts_seqset_accept_in(set, 1, 1, &dup)) != TS_OK)
            die("seqsets", rc);
    }
    if ((rc = ts_seqsets_encode(&t, &text, &len)) != TS_OK)
        die("encode", rc);
    ts_seqsets_free(&t);
    struct ts_archive_ref ref;
    struct ts_archive *a;
    char why[256] = "";
    double t0 = now_s();
    if ((rc = ts_archive_write(NULL, dfd, "agents-000000000001-bench.txt", text, len, NULL, NULL,
                               &ref)) != TS_OK)
        die("archive write", rc);
    double t1 = now_s();
    free(text);
    size_t h0 = heap();
    if ((rc = ts_archive_open(dfd, &ref, ts_archive_max_line(TS_SEQSET_MAX_RANGES), &a, why,
                              sizeof why)) != TS_OK)
        die(why, rc);
    double t2 = now_s();
    size_t held = heap() - h0;
    printf("%-46s %8.1f bytes on disk per agent (%" PRIu64 " bytes, %" PRIu64 " agents)\n",
           "agent in the archive", (double)ref.size / (double)ref.agents, ref.size, ref.agents);
    printf("%-46s %8.2f bytes of heap per agent: the open archive holds %.1f KiB (a line buffer "
           "of %.1f KiB, its index the rest)\n", "", (double)(held - (ts_archive_max_line(
           TS_SEQSET_MAX_RANGES) + 1)) / (double)ref.agents, held / 1024.0,
           (ts_archive_max_line(TS_SEQSET_MAX_RANGES) + 1) / 1024.0);
    printf("%-46s %8.3f us per agent to write (fsync included), %.3f to check at open\n", "",
           (t1 - t0) * 1e6 / (double)n, (t2 - t1) * 1e6 / (double)n);
    /* a rewrite merging 1% new agents into it, as a checkpoint that moves agents out does */
    struct ts_seqsets add;
    ts_seqsets_init(&add, 0);
    for (size_t i = 0; i < n / 100 + 1; i++) {
        snprintf(id, sizeof id, "r051-ctrl-%06zux", i * 97 % n);
        if ((rc = ts_seqsets_get(&add, id, &set)) != TS_OK ||
            (rc = ts_seqset_accept_in(set, 1, 1, &dup)) != TS_OK)
            die("seqsets", rc);
    }
    if ((rc = ts_seqsets_encode(&add, &text, &len)) != TS_OK)
        die("encode", rc);
    struct ts_archive_ref ref2;
    t0 = now_s();
    if ((rc = ts_archive_write(a, dfd, "agents-000000000002-bench.txt", text, len, NULL, NULL,
                               &ref2)) != TS_OK)
        die("archive rewrite", rc);
    t1 = now_s();
    free(text);
    ts_seqsets_free(&add);
    printf("%-46s %8.3f us per archived agent (%.1f ms for %" PRIu64 ")\n",
           "  a rewrite (a checkpoint that moves agents out)", (t1 - t0) * 1e6 / (double)ref.agents,
           (t1 - t0) * 1e3, ref.agents);
    /* lookups: hits in a scattered order, misses of ids between and beyond */
    size_t k = n < 100000 ? n : 100000;
    struct ts_seqset got;
    ts_seqset_init(&got, 0);
    t0 = now_s();
    for (size_t i = 0; i < k; i++) {
        agent_id(id, sizeof id, i * 7919 % n);
        if ((rc = ts_archive_find(a, id, &got)) != TS_OK)
            die("find", rc);
    }
    t1 = now_s();
    for (size_t i = 0; i < k; i++) {
        snprintf(id, sizeof id, "r051-ctrl-%06zuz", i * 7919 % n);
        if ((rc = ts_archive_find(a, id, &got)) != TS_ENOTFOUND)
            die("miss", rc);
    }
    t2 = now_s();
    ts_seqset_free(&got);
    printf("%-46s %8.2f us a hit (an agent coming back), %.2f us a miss (a new agent)\n",
           "  a lookup", (t1 - t0) * 1e6 / (double)k, (t2 - t1) * 1e6 / (double)k);
    ts_archive_close(a);
    unlinkat(dfd, "agents-000000000001-bench.txt", 0);
    unlinkat(dfd, "agents-000000000002-bench.txt", 0);
    (void)dir;
}

/* ---- the agent table at its bound ---- */

static void table(size_t n, int dfd)
{
    const size_t max = 20000, every = 5000;
    struct ts_agent_table t;
    struct ts_archive_ref none = {0}, ref;
    char why[256] = "", id[TS_ID_MAX];
    bool dup, found;
    size_t peak = 0;
    uint64_t gen = 1;

    struct mark m0 = mark();
    int rc = ts_agent_table_open(&t, dfd, &none, max, 0, why, sizeof why);
    if (rc != TS_OK)
        die(why, rc);
    double t0 = now_s(), tp = 0;
    for (size_t i = 0; i < n; i++) {
        struct ts_seqset *set;
        agent_id(id, sizeof id, i);
        if ((rc = ts_agent_table_get(&t, id, &set, &found)) != TS_OK ||
            (rc = ts_seqset_accept_in(set, 1, 1, &dup)) != TS_OK)
            die("table get", rc);
        set->touched_ms = (int64_t)i;
        if ((i + 1) % every == 0) {
            double a = now_s();
            if ((rc = ts_agent_table_prepare(&t, (int64_t)i, gen, "bench", &ref)) != TS_OK)
                die("prepare", rc);
            ts_agent_table_finish(&t, true, gen++);
            tp += now_s() - a;
            size_t h = heap() - m0.heap;
            peak = h > peak ? h : peak;
        }
    }
    double t1 = now_s();
    struct ts_agent_table_stats st;
    ts_agent_table_stats(&t, &st);
    struct mark m1 = mark();
    printf("agent table, max_agents %zu, %zu new agents, a checkpoint every %zu:\n", max, n, every);
    printf("%-46s %zu in memory, %" PRIu64 " archived; heap %.1f MiB at the end, %.1f MiB at "
           "most after a checkpoint (%.0f bytes per agent in memory)\n", "", st.in_memory,
           st.archived, (double)(m1.heap - m0.heap) / 1048576.0, (double)peak / 1048576.0,
           (double)(m1.heap - m0.heap) / (double)st.in_memory);
    printf("%-46s %.2f us per new agent (lookup included), of which %.2f in checkpoints' "
           "archive rewrites\n", "", (t1 - t0) * 1e6 / (double)n, tp * 1e6 / (double)n);
    ts_agent_table_close(&t);
    ts_archive_prune(dfd, gen, NULL);
}

/* ---- open window groups ---- */

static void windows(size_t g)
{
    struct ts_window_cfg cfg;
    struct ts_window_agg *w;
    char why[256] = "";
    ts_window_cfg_default(&cfg);
    cfg.max_open = 0;
    struct mark m0 = mark();
    int rc = ts_window_new(&cfg, &w, why, sizeof why);
    if (rc != TS_OK)
        die(why, rc);
    struct ts_reading r;
    memset(&r, 0, sizeof r);
    snprintf(r.ca, sizeof r.ca, "A002");
    snprintf(r.unit, sizeof r.unit, "R051");
    snprintf(r.station, sizeof r.station, "59 ST");
    snprintf(r.linename, sizeof r.linename, "NQR456W");
    snprintf(r.division, sizeof r.division, "BMT");
    snprintf(r.desc, sizeof r.desc, "REGULAR");
    r.time_ms = 1685160000000LL + 1000;
    r.entries = 3;
    r.exits = 1;
    for (size_t i = 0; i < g; i++) {
        snprintf(r.scp, sizeof r.scp, "%02zu-%02zu-%02zu", i / 10000 % 100, i / 100 % 100, i % 100);
        snprintf(r.unit, sizeof r.unit, "R%03zu", i / 1000000);
        if ((rc = ts_window_add(w, &r, -4 * 3600, 0)) != TS_OK)
            die("window add", rc);
    }
    struct mark m1 = mark();
    per("open window group (a turnstile in a window)", m0, m1, g, "group");
    char *text;
    size_t len;
    if ((rc = ts_window_encode(w, &text, &len)) != TS_OK)
        die("window encode", rc);
    printf("%-46s %8.1f bytes per group\n", "  in a checkpoint's state", (double)len / (double)g);
    fflush(stdout);
    free(text);
    ts_window_free(w);
}

/* ---- the acknowledger's table and station windows ---- */

static void acks_and_stations(size_t n)
{
    struct ts_bridge_mqtt_cfg mqtt = {.link = {.host = "127.0.0.1", .port = 1, .keepalive_s = 30,
                                               .reconnect_min_ms = 100, .reconnect_max_ms = 400},
                                      .ack_interval_ms = 1000};
    struct ts_ack *ack;
    char why[256] = "", topic[160];
    struct mark m0 = mark();
    int rc = ts_ack_new(&mqtt, "bench", &ack, why, sizeof why);
    if (rc != TS_OK)
        die(why, rc);
    struct mark m1 = mark();
    for (size_t i = 0; i < n; i++) {
        snprintf(topic, sizeof topic, "turnstile/v1/S%03zu/r051-ctrl-%06zu/readings", i % 400, i);
        if ((rc = ts_ack_set(ack, topic, 1)) != TS_OK)
            die("ack set", rc);
    }
    struct mark m2 = mark();
    per("acknowledger's table (ack.h)", m1, m2, n, "agent");
    ts_ack_free(ack, 0);
    (void)m0;

    struct ts_station_windows *sw;
    if ((rc = ts_station_windows_new(&sw)) != TS_OK)
        die("station windows", rc);
    size_t k = n < TS_STATION_WINDOWS_MAX_TURNSTILES ? n : TS_STATION_WINDOWS_MAX_TURNSTILES;
    struct ts_reading r;
    memset(&r, 0, sizeof r);
    snprintf(r.ca, sizeof r.ca, "A002");
    struct mark m3 = mark();
    for (size_t i = 0; i < k; i++) {
        snprintf(r.unit, sizeof r.unit, "R%03zu", i / 10000);
        snprintf(r.scp, sizeof r.scp, "%02zu-%02zu-%02zu", i / 10000 % 100, i / 100 % 100, i % 100);
        snprintf(topic, sizeof topic, "S%03zu", i % 400);
        if ((rc = ts_station_windows_learn(sw, &r, topic)) != TS_OK)
            die("station learn", rc);
    }
    struct mark m4 = mark();
    per("station windows, a turnstile learnt", m3, m4, k, "turnstile");
    ts_station_windows_free(sw);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t g = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
    char dir[] = "/tmp/ts-bench-memory.XXXXXX";
    if (n < 100 || g < 1 || !mkdtemp(dir)) {
        fprintf(stderr, "usage: bench-memory [AGENTS >= 100] [GROUPS >= 1]\n");
        return 2;
    }
    ts_log_level = TS_LOG_WARNING;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    printf("bench-memory: %zu agents, %zu window groups (heap: bytes malloc'ed; RSS: the "
           "process's growth)\n", n, g);
    /* each case in a child of its own, so that its RSS starts from the same
     * point and nothing freed by an earlier case is reused */
    bool ok = true;
    for (int c = 0; c < 4; c++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            switch (c) {
            case 0: agents(n, dir, dfd); break;
            case 1: table(n, dfd); break;
            case 2: windows(g); break;
            default: acks_and_stations(n); break;
            }
            fflush(stdout);
            _exit(0);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            ok = false;
            break;
        }
    }
    ts_archive_prune(dfd, UINT64_MAX, NULL);  /* what a failed case left */
    close(dfd);
    rmdir(dir);
    return ok ? 0 : 1;
}
