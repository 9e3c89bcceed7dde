/* SPDX-License-Identifier: Apache-2.0 */
#include "clock.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>

#include "log.h"

struct fake {
    bool active, synced;
    int64_t offset_ms, read_at;
};

/* Reads TS_CLOCK_FAKE at most once a second; false when not set. */
static bool fake_clock(struct fake *out)
{
    static struct fake cached;
    static bool looked;
    static char cached_path[256];
    const char *path = getenv("TS_CLOCK_FAKE");
    int64_t now = ts_mono_ms();

    if (looked && now - cached.read_at < 1000 && strcmp(path ? path : "", cached_path) == 0) {
        *out = cached;
        return cached.active;
    }
    looked = true;
    cached.read_at = now;
    cached.active = false;
    snprintf(cached_path, sizeof cached_path, "%s", path ? path : "");
    if (path) {
        FILE *f = fopen(path, "r");
        int synced;
        long long offset;
        if (f && fscanf(f, "%d %lld", &synced, &offset) == 2) {
            cached.active = true;
            cached.synced = synced != 0;
            cached.offset_ms = offset;
        }
        if (f)
            fclose(f);
    }
    *out = cached;
    return cached.active;
}

int64_t ts_clock_wall_ms(void)
{
    struct fake f;
    int64_t wall = ts_wall_ms();
    return fake_clock(&f) ? wall + f.offset_ms : wall;
}

bool ts_clock_trusted(enum ts_clock_policy policy)
{
    struct fake f;
    if (fake_clock(&f))
        return policy == TS_CLOCK_TRUST || f.synced;
    if (policy == TS_CLOCK_TRUST)
        return true;
    struct timex t = {0};
    int state = adjtimex(&t);
    if (state == -1) {
        /* e.g. EPERM from a seccomp filter without clock_adjtime: readings
         * would be held for ever with nothing to say why */
        static bool told;
        if (!told)
            TS_LOG(TS_LOG_ERR, "clock: adjtimex: %s: the clock counts as not synchronised and "
                   "readings are held (allow adjtimex/clock_adjtime, or set clock = trust)",
                   strerror(errno));
        told = true;
        return false;
    }
    return state != TIME_ERROR && !(t.status & STA_UNSYNC);
}

int64_t ts_clock_stamp(int64_t mono_ms)
{
    return ts_clock_wall_ms() - (ts_mono_ms() - mono_ms);
}
