/* SPDX-License-Identifier: Apache-2.0 */
/* now.h - the clocks, in milliseconds. */
#ifndef TS_NOW_H
#define TS_NOW_H

#include <stdint.h>

/* CLOCK_MONOTONIC: for intervals and timeouts. */
int64_t ts_mono_ms(void);

/* CLOCK_REALTIME: UTC epoch milliseconds. */
int64_t ts_wall_ms(void);

#endif
