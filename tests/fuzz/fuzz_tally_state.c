/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_tally_state.c - libFuzzer target for the tally's saved counter state
 * (agent/tally.c, ts_tally_restore; docs/store.md, "The state blob"): the
 * blob comes from a file on the controller's SD card, which may be damaged
 * or written by another version.
 *
 * The input is the blob. One that starts like format 3 ("TSTL", version 3)
 * gets its CRC-32 set right first, so that the fuzzer reaches the structure
 * behind the checksum. Beyond "no crash, no leak, no undefined behaviour"
 * (the restored values then go through the counters: UBSan sees any
 * overflow a value let in would cause) it checks:
 *   - the result is TS_OK or TS_EPARSE;
 *   - a refused blob changes nothing (every turnstile as ts_tally_init left it);
 *   - an accepted one round-trips: saved, restored into a fresh tally and
 *     saved again, the bytes are the same.
 * Any violation abort()s. Built and run by tests/fuzz/run.sh tally_state. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "agent_config.h"
#include "clock.h"
#include "err.h"
#include "hal.h"
#include "log.h"
#include "tally.h"

/* the identities of tests/unit/fixtures/tally (its blobs are the seeds),
 * with other widths and directions, and a GPIO turnstile */
static const char conf[] =
    "[agent]\nid = f\nstation_id = S\nca = A002\nunit = R051\nstation = 59 ST\n"
    "linename = N\ndivision = BMT\nanomaly_warn_s = 1\n"
    "[device d]\nkind = modbus-tcp\nhost = 127.0.0.1\n"
    "[device g]\nkind = gpio\nchip = gpiochip0\n"
    "[turnstile a]\ndevice = d\nscp = 02-00-01\nentries_address = 0\nexits_address = 2\nwidth = 16\n"
    "[turnstile b]\ndevice = d\nscp = 02-00-03\nentries_address = 4\nexits_address = 6\ndirection = auto\n"
    "[turnstile c]\ndevice = d\nscp = 02-00-04\nentries_address = 8\nexits_address = 12\n"
    "width = 64\nrebase_after = 2\ndirection = down\n"
    "[turnstile e]\ndevice = g\nscp = 02-00-07\nentry_line = 1\nexit_line = 2\n";

static struct ts_agent_cfg cfg;

static void setup(void)
{
    char path[64], err[512];
    int fd = memfd_create("tally-state.conf", 0);
    if (fd < 0 || write(fd, conf, sizeof conf - 1) != (ssize_t)(sizeof conf - 1))
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (ts_agent_cfg_load(path, &cfg, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    ts_log_level = TS_LOG_ERR; /* a warning per refused blob is the point, not news */
}

static uint32_t le32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    struct ts_tally t, again;
    size_t len, len2;

    if (!ready) {
        setup();
        ready = true;
    }
    uint8_t *blob = malloc(size ? size : 1); /* exactly size: ASan sees an over-read */
    memcpy(blob, data, size);
    if (size >= 16 && !memcmp(blob, "TSTL", 4) && le32(blob + 4) == 3) {
        uint32_t crc = (uint32_t)crc32(0, blob + 16, (uInt)(size - 16));
        for (int i = 0; i < 4; i++)
            blob[12 + i] = (uint8_t)(crc >> (8 * i));
    }
    if (ts_tally_init(&t, &cfg))
        abort();
    int rc = ts_tally_restore(&t, blob, size);
    if (rc != TS_OK && rc != TS_EPARSE)
        abort();
    if (rc != TS_OK || size == 0) {
        for (size_t i = 0; i < cfg.n_turnstiles; i++)
            if (t.turnstiles[i].entries.have_prev || t.turnstiles[i].exits.run_len ||
                t.turnstiles[i].last_ms || t.turnstiles[i].holding)
                abort();
        if (t.n_held)
            abort();
    } else {
        const void *b = ts_tally_save(&t, &len);
        void *copy = malloc(len);
        memcpy(copy, b, len);
        if (ts_tally_init(&again, &cfg) || ts_tally_restore(&again, copy, len) != TS_OK)
            abort();
        const void *b2 = ts_tally_save(&again, &len2);
        if (len2 != len || memcmp(b2, copy, len))
            abort();
        free(copy);
        ts_tally_free(&again);
        /* the restored values through the counters: a held sample, then
         * trusted ones, from below, at and above the last values */
        int64_t mono = ts_mono_ms();
        struct ts_reading out[8];
        for (size_t i = 0; i < cfg.n_turnstiles; i++) {
            const struct ts_turnstile_state *st = &t.turnstiles[i];
            uint64_t raws[] = {st->last_entries + 1, 0, st->last_exits - 1, UINT64_MAX};
            for (size_t k = 0; k < sizeof raws / sizeof raws[0]; k++) {
                struct ts_sample s = {.turnstile = i, .entries = raws[k], .exits = raws[3 - k],
                                      .mono_ms = mono + (int64_t)k * 1000};
                ts_tally_sample(&t, &s, k != 0, out);
            }
        }
        while (ts_tally_release(&t, out, 8) == 8)
            ;
    }
    ts_tally_free(&t);
    free(blob);
    return 0;
}
