/* SPDX-License-Identifier: Apache-2.0 */
/* civil.h - proleptic Gregorian dates and days since 1970-01-01 (Howard
 * Hinnant's algorithms), for any year; no time zone, no range checks: the
 * caller validates month (1..12) and day (1..31) first. */
#ifndef TS_CIVIL_H
#define TS_CIVIL_H

#include <stdint.h>

/* Days from 1970-01-01 to y-m-d (negative before). */
int64_t ts_days_from_civil(int64_t y, int64_t m, int64_t d);

/* The date of day z since 1970-01-01: the inverse of the above. */
void ts_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

#endif
