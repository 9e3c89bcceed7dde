/* SPDX-License-Identifier: Apache-2.0 */
/* now.h - the clocks, in milliseconds, and deadlines for timed waits. */
#ifndef TS_NOW_H
#define TS_NOW_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC: for intervals and timeouts. */
int64_t ts_mono_ms(void);

/* CLOCK_MONOTONIC in microseconds and nanoseconds, for finer intervals. */
int64_t ts_mono_us(void);
int64_t ts_mono_ns(void);

/* CLOCK_REALTIME: UTC epoch milliseconds. */
int64_t ts_wall_ms(void);

/* The CLOCK_MONOTONIC time ms milliseconds from now (a negative ms gives a
 * time already past), normalised, for pthread_cond_timedwait on a condition
 * variable whose clock is CLOCK_MONOTONIC. */
struct timespec ts_mono_deadline(int64_t ms);

/* With lock held, waits on cond (its clock CLOCK_MONOTONIC) until it is
 * signalled or ts_mono_ms() reaches deadline_ms; false, without waiting, if
 * deadline_ms has passed. The loop `while (CONDITION && ts_cond_wait_until(..))`
 * waits for CONDITION at most until the deadline. */
bool ts_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms);

#endif
