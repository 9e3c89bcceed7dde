/* SPDX-License-Identifier: Apache-2.0 */
/* fill_store.c - fills agent stores with a backlog of readings, timing the appends.
 *
 * Loads an agent config (its agent id, turnstiles, [store] bounds and time
 * zone), then for each output file creates a fresh store with
 * ts_store_open and appends N readings to it the way the agent does: one
 * transaction per poll cycle, with one reading per configured turnstile
 * (64 in bench/drain.sh) and the tally's state blob (ts_tally_save of the
 * same config). The first file is written with synchronous = FULL, the
 * second (if given) with synchronous = NORMAL; each prints its append rate
 * in readings/s and transactions/s. With --lines FILE, the CSV lines the
 * agent will publish for these readings (ts_reading_format, seq and agent
 * id as stored) are written to FILE, one a line, for the baselines.
 *
 * Usage: fill-store -c AGENT.conf [-n N] [--lines FILE] FULL.db [NORMAL.db]
 * N defaults to 1000000. Existing output files (and their -wal/-shm) are
 * replaced. The readings: consecutive 1 s poll cycles ending now, small
 * pseudo-random deltas, cumulative registers that add up, desc REGULAR. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent_config.h"
#include "err.h"
#include "log.h"
#include "reading.h"
#include "store.h"
#include "tally.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void remove_db(const char *path)
{
    char p[300];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

#define COPY(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

/* Fills one store; returns 0 or 1 (message printed). */
static int fill(const struct ts_agent_cfg *cfg, const char *path, int full, long n, FILE *lines)
{
    struct ts_store_cfg sc = cfg->store;
    struct ts_store *s;
    struct ts_tally tally;
    char err[512], line[TS_READING_LINE_MAX];
    size_t nt = cfg->n_turnstiles;

    if (strlen(path) >= sizeof sc.path) {
        fprintf(stderr, "fill-store: path too long: %s\n", path);
        return 1;
    }
    COPY(sc.path, path);
    sc.synchronous_full = full;
    remove_db(path);
    if (ts_store_open(&sc, cfg->agent.agent_id, &s, err, sizeof err) != TS_OK) {
        fprintf(stderr, "fill-store: %s\n", err);
        return 1;
    }
    if (ts_tally_init(&tally, cfg) != TS_OK) {
        fprintf(stderr, "fill-store: ts_tally_init failed\n");
        ts_store_close(s);
        return 1;
    }
    struct ts_reading *r = calloc(nt, sizeof *r);
    uint64_t *ecum = calloc(nt, sizeof *ecum), *xcum = calloc(nt, sizeof *xcum);
    if (!r || !ecum || !xcum) {
        fprintf(stderr, "fill-store: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nt; i++) {
        ecum[i] = 1000000 + 1000 * i;
        xcum[i] = 2000000 + 1000 * i;
    }
    rng = 0x9E3779B97F4A7C15ull; /* the same readings in every file */
    long cycles = (n + (long)nt - 1) / (long)nt;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t t0_ms = ((int64_t)wall.tv_sec - cycles) * 1000;

    long done = 0, tx = 0;
    double t0 = now_s(), t_lines = 0; /* writing --lines is not part of the rate */
    for (long c = 0; done < n; c++) {
        size_t k = (size_t)(n - done) < nt ? (size_t)(n - done) : nt;
        for (size_t i = 0; i < k; i++) {
            const struct ts_turnstile_cfg *tc = cfg->turnstiles[i];
            struct ts_reading *x = &r[i];
            memset(x, 0, sizeof *x);
            COPY(x->ca, tc->ca);
            COPY(x->unit, tc->unit);
            COPY(x->scp, tc->scp);
            COPY(x->station, tc->station);
            COPY(x->linename, tc->linename);
            COPY(x->division, tc->division);
            COPY(x->desc, "REGULAR");
            uint64_t v = next_rand();
            x->entries = v % 6;
            x->exits = (v >> 8) % 4;
            ecum[i] += x->entries;
            xcum[i] += x->exits;
            x->entries_cum = ecum[i];
            x->exits_cum = xcum[i];
            x->time_ms = t0_ms + c * 1000 + (int64_t)i;
        }
        size_t len = 0;
        const void *state = ts_tally_save(&tally, &len);
        int rc = ts_store_append(s, r, k, state, state ? len : 0);
        if (rc != TS_OK) {
            fprintf(stderr, "fill-store: %s: append failed: %s\n", path, ts_strerror(rc));
            return 1;
        }
        tx++;
        done += (long)k;
        if (lines) {
            double tl = now_s();
            for (size_t i = 0; i < k; i++) {
                if (ts_reading_format(&r[i], line, sizeof line) < 0) {
                    fprintf(stderr, "fill-store: cannot format reading %llu\n",
                            (unsigned long long)r[i].seq);
                    return 1;
                }
                fputs(line, lines);
                fputc('\n', lines);
            }
            t_lines += now_s() - tl;
        }
    }
    double el = now_s() - t0 - t_lines;
    struct ts_store_stats st;
    ts_store_get_stats(s, &st);
    ts_store_close(s);
    ts_tally_free(&tally);
    free(r);
    free(ecum);
    free(xcum);
    if (st.rows != (uint64_t)n || st.merges) {
        fprintf(stderr, "fill-store: %s holds %llu rows after %llu merges, want %ld: raise "
                "[store] max_rows / max_bytes\n", path, (unsigned long long)st.rows,
                (unsigned long long)st.merges, n);
        return 1;
    }
    printf("append synchronous=%s: %ld readings in %ld transactions (%zu readings + state "
           "blob each) in %.3f s: %.0f readings/s, %.1f transactions/s (%s)\n",
           full ? "full" : "normal", n, tx, nt, el, (double)n / el, (double)tx / el, path);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"count", required_argument, NULL, 'n'},
        {"lines", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *conf = NULL, *lines_path = NULL;
    long n = 1000000;
    int o;

    while ((o = getopt_long(argc, argv, "c:n:l:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': conf = optarg; break;
        case 'n': n = strtol(optarg, NULL, 10); break;
        case 'l': lines_path = optarg; break;
        default:
            fprintf(o == 'h' ? stdout : stderr,
                    "usage: fill-store -c AGENT.conf [-n N] [--lines FILE] FULL.db [NORMAL.db]\n");
            return o == 'h' ? 0 : 2;
        }
    }
    if (!conf || n < 1 || optind >= argc || argc - optind > 2) {
        fprintf(stderr, "usage: fill-store -c AGENT.conf [-n N] [--lines FILE] FULL.db [NORMAL.db]\n");
        return 2;
    }
    struct ts_agent_cfg cfg;
    char err[512];
    if (ts_agent_cfg_load(conf, &cfg, err, sizeof err) != TS_OK) {
        fprintf(stderr, "fill-store: %s\n", err);
        ts_agent_cfg_free(&cfg);
        return 2;
    }
    if (!cfg.n_turnstiles) {
        fprintf(stderr, "fill-store: %s has no turnstile\n", conf);
        ts_agent_cfg_free(&cfg);
        return 2;
    }
    ts_log_level = TS_LOG_WARNING;
    setenv("TZ", cfg.agent.timezone, 1); /* DATE/TIME as the agent formats them */
    tzset();

    FILE *lines = NULL;
    if (lines_path && !(lines = fopen(lines_path, "w"))) {
        fprintf(stderr, "fill-store: %s: %s\n", lines_path, strerror(errno));
        ts_agent_cfg_free(&cfg);
        return 1;
    }
    int rc = fill(&cfg, argv[optind], 1, n, lines);
    if (lines && fclose(lines) != 0 && !rc) {
        fprintf(stderr, "fill-store: %s: %s\n", lines_path, strerror(errno));
        rc = 1;
    }
    if (!rc && argc - optind == 2)
        rc = fill(&cfg, argv[optind + 1], 0, n, NULL);
    ts_agent_cfg_free(&cfg);
    return rc;
}
