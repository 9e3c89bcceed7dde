/* SPDX-License-Identifier: Apache-2.0 */
/* flags.h - anomaly flags carried on a reading.
 *
 * Set by the counter logic (hal/counter.c) and the store, written on the wire
 * by the reading codec (reading.h) as names joined by '|'. The bit values and
 * the names are part of the wire form. */
#ifndef TS_FLAGS_H
#define TS_FLAGS_H

#include <stdint.h>

/* Anomaly flags carried on a reading (bit values are part of the wire form). */
enum ts_flag {
    TS_FLAG_FIRST     = 1u << 0, /* first reading: baseline only, delta 0 */
    TS_FLAG_WRAP      = 1u << 1, /* counter wrapped at its register width */
    TS_FLAG_RESET     = 1u << 2, /* counter reset to a small value (counted from 0) */
    TS_FLAG_DOWNWARD  = 1u << 3, /* counted downward, or held (auto, vote open) */
    TS_FLAG_GLITCH    = 1u << 4, /* implausible jump: delta withheld (0) */
    TS_FLAG_SIGNED    = 1u << 5, /* value fixed for wrong signedness */
    TS_FLAG_RECOVERED = 1u << 6, /* reading after a gap in polling (RECOVR AUD) */
    TS_FLAG_MERGED    = 1u << 7, /* several readings merged (store full) */
    TS_FLAG_REBASED   = 1u << 8, /* a new level was accepted as baseline */
};

/* Writes a comma-free flag list ("wrap|reset") into buf; "" for none. Bits
 * without a name are written in hex ("0x200"). Truncated to fit size. */
void ts_flags_format(uint32_t flags, char *buf, unsigned size);

/* Parses what ts_flags_format writes. TS_OK or TS_EINVAL (unknown name). */
int ts_flags_parse(const char *s, uint32_t *flags);

#endif
