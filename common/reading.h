/* SPDX-License-Identifier: Apache-2.0 */
/* reading.h - the reading record and its CSV wire form.
 *
 * The wire form is one CSV line whose first 13 fields are the reference
 * pipeline's schema, in order:
 *   CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS,ID,TIMESTAMP
 * DATE is MM-DD-YY, TIME HH:MM:SS, TIMESTAMP YYYY-MM-DD HH:MM:SS, all in the
 * station's time zone (the process's TZ). ENTRIES and EXITS are deltas. ID is
 * "<agent_id>:<seq>". Extension fields follow:
 *   14 EPOCH_MS       UTC epoch milliseconds of the reading
 *   15 ENTRIES_CUM    cumulative entries register value
 *   16 EXITS_CUM      cumulative exits register value
 *   17 FLAGS          anomaly flags, names joined by '|' (see flags.h)
 *   18 MERGED_FROM    first sequence number this reading accounts for: the
 *                     numbers from it up to SEQ that were not published
 *                     separately were merged into this one (store full);
 *                     equal to SEQ for an ordinary reading
 * No field may hold a comma, a double quote, a control character (line
 * breaks included) or bytes that are not UTF-8 (ts_field_ok): config loading
 * rejects such names, and the codec refuses them. An apostrophe is fine. */
#ifndef TS_READING_H
#define TS_READING_H

#include <stddef.h>
#include <stdint.h>

#define TS_READING_FIELDS 18
#define TS_READING_LINE_MAX 512
#define TS_ID_MAX 64
/* The highest sequence number an agent uses: 2^53 - 1, exact as a
 * JavaScript number (dashboards), and centuries at a million readings a
 * second. The store never numbers past it; the bridge refuses IDs above it. */
#define TS_SEQ_MAX ((UINT64_C(1) << 53) - 1)

struct ts_reading {
    char ca[16], unit[16], scp[16], station[64], linename[32], division[16];
    char desc[16];            /* "REGULAR" or "RECOVR AUD" */
    uint64_t entries, exits;  /* deltas (people) */
    char agent_id[TS_ID_MAX];
    uint64_t seq;             /* agent's sequence number, from 1 */
    int64_t time_ms;          /* UTC epoch milliseconds */
    uint64_t entries_cum, exits_cum;
    uint32_t flags;           /* TS_FLAG_* */
    uint64_t merged_from;     /* <= seq; see MERGED_FROM above */
};

/* Formats r into buf (NUL-terminated, no trailing newline). Returns the
 * length, or -TS_EINVAL if a field holds a forbidden character, or
 * -TS_EFULL if buf is too small. */
int ts_reading_format(const struct ts_reading *r, char *buf, size_t size);

/* Parses one line (no newline) into r. TS_OK, or TS_EPARSE with a reason
 * (a static string) in *why. Checks field count, numbers, the formats of
 * DATE/TIME/TIMESTAMP, the ID form and the extension fields. */
int ts_reading_parse(const char *line, struct ts_reading *r, const char **why);

/* ts_reading_parse's fast path for the agent's 18-field form: line is len
 * bytes (no NUL needed), read once, the fields copied and the numbers parsed
 * as they are met. TS_OK: line has 18 fields, ts_reading_parse accepts it
 * and gives the same *r, and *local_s (may be NULL) is its TIMESTAMP read as
 * UTC (seconds; UTC offset = *local_s - EPOCH_MS / 1000, floored). TS_EPARSE
 * (no reason): not a reading, or one it leaves to ts_reading_parse (13
 * fields, bytes beyond printable ASCII, 20-digit numbers, a negative
 * EPOCH_MS, times within a day of 1900 or 9999): call that for the verdict.
 * It never accepts what ts_reading_parse refuses. */
int ts_reading_parse_line(const char *line, size_t len, struct ts_reading *r, int64_t *local_s);

/* The station's offset from UTC (local = UTC + offset) at the reading's time,
 * from line (which parsed into r, 18-field form): its TIMESTAMP is local,
 * its EPOCH_MS is UTC. TS_OK, or TS_EPARSE if the offset is more than 18 h
 * (ISO 8601's bound) or line is not in the 18-field form. */
int ts_reading_utc_offset(const char *line, const struct ts_reading *r, int32_t *offset_s);

/* A name (CA..DIVISION, DESC): non-empty valid UTF-8 without a comma, a
 * double quote or a control character (C0, DEL, C1; line breaks are C0).
 * Such a field goes into the reference CSV unquoted and into JSON with only
 * the backslash to escape. The apostrophe is allowed (B'WAY-LAFAYETTE).
 * ts_field_ok: true if s is one. ts_field_why: NULL if it is, else a static
 * phrase saying why not ("holds a comma"). */
int ts_field_ok(const char *s);
const char *ts_field_why(const char *s);

/* Judges the character at s (non-empty string): returns its length in bytes
 * (1 for a byte that is not valid UTF-8) and sets *why (may be NULL) to NULL
 * if a name may hold it, else to a static phrase as ts_field_why's. */
size_t ts_field_char(const char *s, const char **why);

/* True if s uses only letters, digits, '.', '_' and '-' (agent/station ids). */
int ts_id_ok(const char *s);

#endif
