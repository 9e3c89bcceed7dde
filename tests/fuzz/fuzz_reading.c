/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_reading.c - libFuzzer target for the reading codec (common/reading.c).
 *
 * The input is an MQTT payload: arbitrary bytes. It is copied into a
 * NUL-terminated buffer (the parser takes a C string, so bytes after an
 * embedded NUL are not seen) and given to ts_reading_parse. If it parses,
 * the round trip must hold: ts_reading_format succeeds into a
 * TS_READING_LINE_MAX buffer, and parsing that output gives an identical
 * struct. The fast path ts_reading_parse_line, given the bytes as they
 * are (NULs included), must accept only what ts_reading_parse accepts in
 * 18 fields, with the same struct and UTC offset. Any violation abort()s, which libFuzzer reports as a crash.
 * Built and run by tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "reading.h"

static void fail(const char *what, const char *line, const char *out, const char *why)
{
    fprintf(stderr, "fuzz_reading: %s\n  input:  %s\n  output: %s\n  why:    %s\n", what, line,
            out ? out : "(none)", why ? why : "(none)");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    struct ts_reading r, r2;
    const char *why = NULL;
    char out[TS_READING_LINE_MAX];

    if (!line)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';

    struct ts_reading fast;
    int64_t local = 0;
    int fast_rc = ts_reading_parse_line((const char *)data, size, &fast, &local);
    int rc = ts_reading_parse(line, &r, &why);
    if (fast_rc == TS_OK) {
        int32_t off = 0;
        if (rc != TS_OK || memchr(data, '\0', size) || memcmp(&fast, &r, sizeof r) != 0)
            fail("the fast path accepted what parse refuses or reads otherwise", line, NULL, why);
        if (ts_reading_utc_offset(line, &r, &off) == TS_OK &&
            off != local - (r.time_ms / 1000 - (r.time_ms % 1000 < 0)))
            fail("the fast path's local time is not the UTC offset's", line, NULL, NULL);
    }
    if (rc != TS_OK) {
        if (rc != TS_EPARSE || !why)
            fail("parse failed without TS_EPARSE and a reason", line, NULL, why);
        free(line);
        return 0;
    }
    int n = ts_reading_format(&r, out, sizeof out);
    if (n < 0)
        fail("a parsed reading does not format", line, NULL, ts_strerror(-n));
    if ((size_t)n != strlen(out))
        fail("format returned a wrong length", line, out, NULL);
    why = NULL;
    if (ts_reading_parse(out, &r2, &why) != TS_OK)
        fail("formatted output does not parse", line, out, why);
    /* both structs were memset by the parser, so padding compares equal too */
    if (memcmp(&r, &r2, sizeof r) != 0)
        fail("round trip changed the reading", line, out, NULL);
    free(line);
    return 0;
}
