/* SPDX-License-Identifier: Apache-2.0 */
#include "now.h"

static struct timespec read_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts;
}

int64_t ts_mono_ms(void)
{
    struct timespec ts = read_clock(CLOCK_MONOTONIC);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ts_mono_us(void)
{
    struct timespec ts = read_clock(CLOCK_MONOTONIC);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t ts_mono_ns(void)
{
    struct timespec ts = read_clock(CLOCK_MONOTONIC);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t ts_wall_ms(void)
{
    struct timespec ts = read_clock(CLOCK_REALTIME);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec ts_mono_deadline(int64_t ms)
{
    struct timespec ts = read_clock(CLOCK_MONOTONIC);
    int64_t nsec = (int64_t)ts.tv_nsec + (ms % 1000) * 1000000;
    int64_t sec = (int64_t)ts.tv_sec + ms / 1000;
    if (nsec >= 1000000000) {
        sec++;
        nsec -= 1000000000;
    } else if (nsec < 0) {
        sec--;
        nsec += 1000000000;
    }
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)nsec;
    return ts;
}

bool ts_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms)
{
    int64_t left = deadline_ms - ts_mono_ms();
    if (left <= 0)
        return false;
    struct timespec ts = ts_mono_deadline(left);
    pthread_cond_timedwait(cond, lock, &ts);
    return true;
}
