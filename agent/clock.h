/* SPDX-License-Identifier: Apache-2.0 */
/* clock.h - when the wall clock can be trusted, and stamping by it.
 *
 * A Raspberry Pi has no real-time clock: until NTP has synchronised, the
 * wall clock can be years off. The kernel says whether it is synchronised
 * (adjtimex: STA_UNSYNC clear and no TIME_ERROR); systemd-timesyncd, chrony
 * and ntpd all set it. Samples are taken with the monotonic clock; a sample
 * is stamped only when the wall clock is trusted, as
 *     wall_now - (mono_now - mono_sample),
 * so a clock step while a sample waits does not misdate it, and the order of
 * readings (their sequence numbers) never depends on the wall clock.
 *
 * The source is injectable for tests: with TS_CLOCK_FAKE=FILE in the
 * environment, FILE holds "synced offset_ms" (e.g. "0 -94608000000": not
 * synchronised, three years behind), re-read at most once a second, and the
 * wall clock is the real one plus the offset. */
#ifndef TS_CLOCK_H
#define TS_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "now.h"   /* ts_mono_ms: the clock samples are taken by */

enum ts_clock_policy {
    TS_CLOCK_WAIT_SYNC, /* hold readings until the kernel says synchronised */
    TS_CLOCK_TRUST,     /* the wall clock is always right (hosts synced otherwise) */
};

/* The wall clock (UTC epoch ms), fake offset included. */
int64_t ts_clock_wall_ms(void);

/* True if readings may be stamped now under policy. */
bool ts_clock_trusted(enum ts_clock_policy policy);

/* The wall time of a sample taken at mono_ms (see above). */
int64_t ts_clock_stamp(int64_t mono_ms);

#endif
