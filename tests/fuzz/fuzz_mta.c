/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_mta.c - libFuzzer target for the MTA file loader (mta/mta_file.c).
 *
 * The input is a whole MTA turnstile file: arbitrary bytes, written to a
 * temporary file (plain; zlib reads it transparently) and given to
 * ts_mta_load. Invariants: a refusal is TS_EPARSE with a message that names
 * the file and holds no control byte; a data set holds only names the chain
 * carries (ts_field_ok, no blank around them, no ';' or '#' after a blank,
 * no ']' in C/A, UNIT or SCP: what turnstile-sim writes into an agent
 * config), distinct keys, readings sorted by time, n_rows their total, and
 * first_ms..last_ms within file_first_ms..file_last_ms. Any violation
 * abort()s. Built and run by tests/fuzz/run.sh mta. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "mta_file.h"
#include "reading.h"

static char path[64];

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_mta: %s: %s\n", what, detail ? detail : "");
    abort();
}

static void check_name(const char *s, bool key)
{
    size_t n = strlen(s);
    if (!ts_field_ok(s))
        fail("a name the chain cannot carry", s);
    if (s[0] == ' ' || s[n - 1] == ' ')
        fail("a name with a blank around it", s);
    for (size_t i = 1; i < n; i++)
        if ((s[i] == ';' || s[i] == '#') && s[i - 1] == ' ')
            fail("a name with a comment for the agent config", s);
    if (key && strchr(s, ']'))
        fail("a key with ']'", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ts_mta_data *d = NULL;
    char err[512] = "";

    if (!path[0]) {
        ts_log_level = TS_LOG_ERR; /* the loader's notices about renamed names */
        snprintf(path, sizeof path, "/tmp/fuzz_mta_%d.csv", (int)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        fail("cannot write", path);
    int rc = ts_mta_load(path, NULL, &d, err, sizeof err);
    unlink(path);
    if (rc != TS_OK) {
        if (rc != TS_EPARSE || d)
            fail("a refusal that is not TS_EPARSE without a data set", err);
        if (strncmp(err, path, strlen(path)) != 0)
            fail("a message that does not name the file", err);
        for (const char *p = err; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                fail("a control byte in the message", err);
        return 0;
    }
    size_t rows = 0;
    for (size_t i = 0; i < d->n_turnstiles; i++) {
        const struct ts_mta_turnstile *t = &d->turnstiles[i];
        check_name(t->ca, true);
        check_name(t->unit, true);
        check_name(t->scp, true);
        check_name(t->station, false);
        check_name(t->linename, false);
        check_name(t->division, false);
        if (ts_mta_find(d, t->ca, t->unit, t->scp) != t)
            fail("two turnstiles with one key", t->ca);
        for (size_t k = 0; k < t->n_readings; k++) {
            if (k && t->readings[k - 1].time_ms > t->readings[k].time_ms)
                fail("readings not sorted", t->scp);
            if (t->readings[k].time_ms < d->first_ms || t->readings[k].time_ms > d->last_ms)
                fail("a reading outside first_ms..last_ms", t->scp);
        }
        rows += t->n_readings;
    }
    if (rows != d->n_rows)
        fail("n_rows is not the readings' total", "");
    if (rows && (d->first_ms < d->file_first_ms || d->last_ms > d->file_last_ms))
        fail("kept readings outside the file's range", "");
    ts_mta_free(d);
    return 0;
}
