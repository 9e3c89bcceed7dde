/* SPDX-License-Identifier: Apache-2.0 */
/* mta_file.h - an MTA turnstile data set in memory.
 *
 * Loads the MTA's weekly turnstile file (CSV, gzip or plain) as published:
 *   [index,]C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS
 * The first column may be spelled CA (recent files) or C/A; the leading index
 * column (pandas' re-save, usually unnamed) may be there or not. Header names
 * are compared without case and blanks around them; a UTF-8 byte order mark,
 * CR LF line ends and RFC 4180 quoted fields (commas, "" and line breaks
 * inside) are read. One record per turnstile (C/A + UNIT + SCP), each holding
 * its readings sorted by time. A record (line) is at most 4094 bytes.
 *
 * Names: every identity kept is one the whole chain carries unchanged
 * (ts_field_ok, and the agent config turnstile-sim writes). A field that is
 * not is renamed (each such character becomes '_', an empty STATION,
 * LINENAME or DIVISION "_"), counted in n_renamed and logged (the first
 * TS_MTA_RENAMED_LOGGED); its readings are all kept. Two keys of the file
 * that would become one are an error. docs/simulator.md has the rules.
 *
 * Times: DATE (MM/DD/YYYY) and TIME (HH:MM:SS) are New York local time. They
 * are converted to UTC epoch milliseconds by ts_mta_ny_to_ms, which applies
 * the US daylight saving rules in force since 2007 itself (no TZ, no mktime,
 * so it is thread-safe and does not depend on the host's zoneinfo). */
#ifndef TS_MTA_FILE_H
#define TS_MTA_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ts_mta_reading {
    int64_t time_ms;          /* UTC epoch ms */
    uint64_t entries, exits;  /* cumulative register values, as in the file */
    bool recovered;           /* DESC "RECOVR AUD" */
};

struct ts_mta_turnstile {
    char ca[16], unit[16], scp[16], station[64], linename[32], division[16];
    struct ts_mta_reading *readings; /* sorted by time_ms, owned by the data set */
    size_t n_readings;
    /* entries, exits: +1 counts up, -1 down in the file; 0 not known yet.
     * Filled by ts_replay_prepare (mta/replay.h), left 0 by the loader. */
    signed char replay_dir[2];
};

struct ts_mta_data {
    struct ts_mta_turnstile *turnstiles; /* in order of first appearance */
    size_t n_turnstiles;
    size_t n_rows;            /* rows kept */
    int64_t first_ms, last_ms;           /* over the kept readings */
    int64_t file_first_ms, file_last_ms; /* over every row of the file */
    size_t n_renamed;         /* kept turnstiles whose names had to change (below) */
};

/* Notice lines the loader logs about renamed turnstiles, at most. */
#define TS_MTA_RENAMED_LOGGED 10

/* Identifies one turnstile. */
struct ts_mta_key {
    const char *ca, *unit, *scp;
};

/* What to keep; every member optional (zero = keep all). Pointers are lent
 * for the duration of the load call only. */
struct ts_mta_filter {
    const char *const *stations; /* keep only these STATION names (exact, as kept) */
    size_t n_stations;
    const struct ts_mta_key *keys; /* keep only these turnstiles */
    size_t n_keys;
    size_t max_turnstiles;    /* keep the first N turnstiles that pass */
};

/* Loads path. On success *out owns a new data set (free with ts_mta_free).
 * On failure returns TS_ESYS (cannot open or read; errno set), TS_EPARSE
 * (a header that is not the schema, a malformed row, a NUL byte, a record
 * too long, bad gzip data) or TS_ENOMEM, and writes a sentence naming the
 * file and line into err (may be NULL; the file's bytes escaped). filter may
 * be NULL. A file with a header and no data rows is valid (0 turnstiles). */
int ts_mta_load(const char *path, const struct ts_mta_filter *filter,
                struct ts_mta_data **out, char *err, size_t errlen);

/* Generates n synthetic turnstiles with hourly readings over `days` days
 * from start_ms, deterministic for a given seed: a daily profile with
 * morning and evening peaks, quieter weekends, per-turnstile base values and
 * busyness. Identities: C/A "SIM", UNIT "R000", SCP "00-KK-KK" (k), STATION
 * "SIMULATED". TS_OK, TS_EINVAL or TS_ENOMEM. */
int ts_mta_generate(size_t n, uint64_t seed, int64_t start_ms, int days,
                    struct ts_mta_data **out);

/* Frees d and everything it owns. NULL-safe. */
void ts_mta_free(struct ts_mta_data *d);

/* The turnstile with that identity, or NULL. Borrowed from d. */
const struct ts_mta_turnstile *ts_mta_find(const struct ts_mta_data *d, const char *ca,
                                           const char *unit, const char *scp);

/* New York local civil time to UTC epoch ms (US rules since 2007). A time in
 * the skipped spring-forward hour is read as standard time (02:30 -> 03:30
 * EDT); a time in the repeated fall-back hour as its first (daylight)
 * occurrence, as mktime with tm_isdst = -1 does on glibc. */
int64_t ts_mta_ny_to_ms(int year, int month, int day, int hour, int min, int sec);

/* Parses "MM/DD/YYYY" + "HH:MM:SS" (the file's form) or, with date NULL,
 * "YYYY-MM-DD HH:MM:SS" in time (the command-line form), as New York time.
 * TS_OK or TS_EINVAL. */
int ts_mta_parse_time(const char *date, const char *time, int64_t *ms);

#endif
