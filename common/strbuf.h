/* SPDX-License-Identifier: Apache-2.0 */
/* strbuf.h - a growing printf buffer with an upper bound.
 *
 * `struct ts_strbuf b = TS_STRBUF_INIT(max);` then ts_strbuf_printf() as often
 * as needed: the text stays NUL-terminated in b.s. The first failure sticks
 * (b.err: TS_ENOMEM when malloc failed, TS_EFULL when the text would pass max
 * bytes, TS_EINVAL for a bad format) and later calls do nothing, so a caller
 * checks once at the end. The buffer owns b.s: ts_strbuf_take() hands it over,
 * ts_strbuf_free() releases it. A zeroed struct has the default bound. */
#ifndef TS_STRBUF_H
#define TS_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

/* The bound of a zeroed struct: the text may hold this many bytes. */
#define TS_STRBUF_DEFAULT_MAX ((size_t)64 << 20)

struct ts_strbuf {
    char *s;     /* NULL until something was put; owned */
    size_t len;  /* bytes of text, the NUL not counted */
    size_t cap;  /* bytes allocated */
    size_t max;  /* the text's bound in bytes (0: TS_STRBUF_DEFAULT_MAX) */
    int err;     /* TS_OK or the first failure */
};

#define TS_STRBUF_INIT(max_bytes) {NULL, 0, 0, (max_bytes), 0}

/* Appends the formatted text, or sets b->err and leaves the text as it was. */
void ts_strbuf_printf(struct ts_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ts_strbuf_vprintf(struct ts_strbuf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Hands the text over: on TS_OK *s is the caller's to free() (an empty text
 * is "", never NULL) and *len its length; on failure (b->err) the text is
 * freed, *s is NULL and *len 0. The buffer is empty afterwards either way. */
int ts_strbuf_take(struct ts_strbuf *b, char **s, size_t *len);

/* Frees the text and empties the buffer; keeps max. NULL-safe. */
void ts_strbuf_free(struct ts_strbuf *b);

#endif
