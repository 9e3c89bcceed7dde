/* SPDX-License-Identifier: Apache-2.0 */
/* webhook_body.h - a webhook request's body (webhook.h) cut into readings,
 * without judging them (the verdict does). Pure: no I/O, no allocation; the
 * body is untrusted and any bytes are handled in one pass.
 *
 * CSV: one reading a line, split at '\n', a '\r' before it dropped, blank
 * lines skipped. JSON: {"readings": ["<line>", ...]} or a bare array of
 * strings, whitespace between tokens; strings with the JSON escapes (\uXXXX
 * of a surrogate refused: the text is UTF-8); nothing else (no other key,
 * no nesting, no text after). */
#ifndef TS_WEBHOOK_BODY_H
#define TS_WEBHOOK_BODY_H

#include <stddef.h>

/* A reading's bytes, within the body or the decoded JSON (not NUL-terminated). */
struct ts_webhook_line {
    const char *p;
    size_t n;
};

/* The lines of a CSV body into out (room for max). Returns the count, or
 * max + 1 when there are more (the rest not cut). */
size_t ts_webhook_csv_lines(const char *s, size_t n, struct ts_webhook_line *out, size_t max);

/* The strings of a JSON body into out (room for max), decoded into dec (room
 * for n bytes; the lines point into it). Returns the count, max + 1 when
 * there are more, or (size_t)-1 with *why a static sentence. */
size_t ts_webhook_json_lines(const char *s, size_t n, char *dec, struct ts_webhook_line *out,
                             size_t max, const char **why);

#endif
