/* SPDX-License-Identifier: Apache-2.0 */
/* bench_decode_delta.c - throughput of register decode + counter semantics.
 *
 * Loads the MTA week into memory, encodes each reading's ENTRIES and EXITS
 * as 32-bit CDAB registers, then replays all readings again and again for a
 * few seconds, three ways, and prints readings per second (a reading is one
 * turnstile's two registers):
 *   bare loop        touch the same registers, sum the words
 *   decode           ts_decode_regs on both registers
 *   decode + step    ts_decode_regs and ts_counter_step on both registers
 * Usage: bench-decode-delta [file.csv.gz] [seconds]   (default: $TS_MTA_FILE,
 * else /work/shared/data/mta/turnstile_230603.csv.gz; 3 seconds). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "civil.h"
#include "counter.h"
#include "decode.h"

#define ORDER TS_ORDER_CDAB

struct reading {
    uint16_t regs[4]; /* entries in [0..1], exits in [2..3] */
    int64_t t_ms;
    uint32_t turnstile;
};

static struct reading *readings;
static size_t n_readings, n_turnstiles;
static volatile uint64_t sink;

/* Reads the gzip CSV (,C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS). */
static int load(const char *path)
{
    gzFile gz = gzopen(path, "rb");
    char line[512], prev_key[64] = "";
    size_t cap = 0;

    if (!gz) {
        fprintf(stderr, "bench-decode-delta: cannot open %s\n", path);
        return -1;
    }
    gzgets(gz, line, sizeof line); /* header */
    while (gzgets(gz, line, sizeof line)) {
        char ca[16], unit[16], scp[16], key[64];
        int mo, d, y, h, mi, s;
        unsigned long long entries, exits;

        if (sscanf(line, "%*[^,],%15[^,],%15[^,],%15[^,],%*[^,],%*[^,],%*[^,],%d/%d/%d,%d:%d:%d,%*[^,],%llu,%llu",
                   ca, unit, scp, &mo, &d, &y, &h, &mi, &s, &entries, &exits) != 11) {
            fprintf(stderr, "bench-decode-delta: %s: malformed line: %s", path, line);
            gzclose(gz);
            return -1;
        }
        if (n_readings == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            readings = realloc(readings, cap * sizeof *readings);
            if (!readings) {
                gzclose(gz);
                return -1;
            }
        }
        snprintf(key, sizeof key, "%s/%s/%s", ca, unit, scp);
        if (strcmp(key, prev_key) != 0) { /* the file holds each turnstile in one block */
            n_turnstiles++;
            memcpy(prev_key, key, sizeof key);
        }
        struct reading *r = &readings[n_readings++];
        r->t_ms = (((ts_days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + s) * 1000;
        r->turnstile = (uint32_t)(n_turnstiles - 1);
        ts_encode_regs(entries, 32, ORDER, &r->regs[0]);
        ts_encode_regs(exits, 32, ORDER, &r->regs[2]);
    }
    gzclose(gz);
    return 0;
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pass_bare(struct ts_counter *c)
{
    uint64_t sum = 0;

    for (size_t i = 0; i < n_readings; i++) {
        const struct reading *r = &readings[i];
        sum += (uint64_t)r->regs[0] + r->regs[1] + r->regs[2] + r->regs[3] + (uint64_t)r->t_ms;
    }
    sink += sum;
}

static void pass_decode(struct ts_counter *c)
{
    uint64_t sum = 0;

    for (size_t i = 0; i < n_readings; i++) {
        const struct reading *r = &readings[i];
        sum += ts_decode_regs(&r->regs[0], 32, ORDER) + ts_decode_regs(&r->regs[2], 32, ORDER);
    }
    sink += sum;
}

static uint64_t people[2];

static void pass_decode_step(struct ts_counter *c)
{
    const struct ts_counter_cfg cfg = {.width = 32, .direction = TS_DIR_AUTO, .max_rate_per_min = 60};
    uint32_t flags = 0;

    for (size_t i = 0; i < 2 * n_turnstiles; i++)
        ts_counter_init(&c[i], &cfg);
    people[0] = people[1] = 0;
    for (size_t i = 0; i < n_readings; i++) {
        const struct reading *r = &readings[i];
        struct ts_counter *tc = &c[2 * r->turnstile];

        people[0] += ts_counter_step(&tc[0], ts_decode_regs(&r->regs[0], 32, ORDER), r->t_ms, &flags);
        people[1] += ts_counter_step(&tc[1], ts_decode_regs(&r->regs[2], 32, ORDER), r->t_ms, &flags);
    }
    sink += flags;
}

/* Runs pass() over all readings until `seconds` have gone by; readings/s. */
static double measure(void (*pass)(struct ts_counter *), struct ts_counter *c, double seconds, int *passes)
{
    double start = now(), elapsed;

    *passes = 0;
    do {
        pass(c);
        ++*passes;
        elapsed = now() - start;
    } while (elapsed < seconds);
    return (double)n_readings * *passes / elapsed;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : getenv("TS_MTA_FILE");
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    struct ts_counter *c;
    int passes;

    if (!path)
        path = "/work/shared/data/mta/turnstile_230603.csv.gz";
    if (load(path) != 0 || n_readings == 0)
        return 1;
    c = calloc(2 * n_turnstiles, sizeof *c);
    if (!c)
        return 1;
    printf("%zu readings of %zu turnstiles, 2 x 32-bit %s registers each\n", n_readings, n_turnstiles,
           ts_word_order_name(ORDER));

    double step = measure(pass_decode_step, c, seconds, &passes);
    printf("decode + step  %12.0f readings/s  (%d passes; %llu entries, %llu exits a pass)\n", step, passes,
           (unsigned long long)people[0], (unsigned long long)people[1]);
    double dec = measure(pass_decode, c, seconds / 3, &passes);
    printf("decode alone   %12.0f readings/s  (%d passes)\n", dec, passes);
    double bare = measure(pass_bare, c, seconds / 3, &passes);
    printf("bare loop      %12.0f readings/s  (%d passes)\n", bare, passes);
    printf("per reading: decode + step %.1f ns, decode %.1f ns, bare %.1f ns\n", 1e9 / step, 1e9 / dec,
           1e9 / bare);
    free(c);
    free(readings);
    return 0;
}
