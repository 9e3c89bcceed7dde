/* SPDX-License-Identifier: Apache-2.0 */
/* cli.h - numbers on the command line (and the simulator's control lines).
 *
 * The whole text must be one number within [min, max]: not empty, no blanks,
 * no trailing characters. Integers are decimal; doubles are decimal, finite
 * (no nan, inf, hex floats) and must not overflow or underflow. Each returns
 * TS_OK with *out set, or TS_EINVAL with *out untouched and, if why is not
 * NULL, a sentence in why naming the value (non-printable bytes as \xNN) and
 * the range: "'1e300' is out of range [0.001, 31536000]". The programs
 * print it after the option's name and exit 2. */
#ifndef TS_CLI_H
#define TS_CLI_H

#include <stddef.h>
#include <stdint.h>

int ts_parse_double(const char *text, double min, double max, double *out, char *why,
                    size_t why_size);
int ts_parse_int(const char *text, int min, int max, int *out, char *why, size_t why_size);
int ts_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out, char *why,
                 size_t why_size);

#endif
