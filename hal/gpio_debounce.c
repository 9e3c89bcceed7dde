/* SPDX-License-Identifier: Apache-2.0 */
#include "gpio_debounce.h"

#include <string.h>

void ts_debounce_init(struct ts_debounce *d, const struct ts_debounce_cfg *cfg,
                      int physical_level)
{
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    d->level = physical_level < 0 ? -1 : (physical_level != 0) != cfg->active_low;
    d->quiet_ns = UINT64_MAX;  /* the first edge is never locked out */
}

unsigned ts_debounce_edge(struct ts_debounce *d, bool rising, uint64_t time_ns)
{
    uint64_t elapsed = 0;

    /* Time passed since the previous edge; unknown (so: long) after the
     * clock stepped back. */
    if (d->have_prev) {
        if (time_ns >= d->prev_ns) {
            elapsed = time_ns - d->prev_ns;
        } else {
            elapsed = UINT64_MAX;
            d->clock_steps++;
        }
    }
    d->have_prev = true;
    d->prev_ns = time_ns;
    d->quiet_ns = elapsed > UINT64_MAX - d->quiet_ns ? UINT64_MAX : d->quiet_ns + elapsed;

    int level = rising != d->cfg.active_low;
    if (level == d->level || d->quiet_ns < (uint64_t)d->cfg.debounce_us * 1000u) {
        d->ignored++;
        return 0;
    }
    d->level = level;
    d->quiet_ns = 0;
    d->accepted++;

    bool counted = d->cfg.edge == TS_EDGE_BOTH ||
                   (d->cfg.edge == TS_EDGE_RISING) == (level == 1);
    d->count += counted;
    return counted;
}
