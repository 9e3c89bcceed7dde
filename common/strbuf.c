/* SPDX-License-Identifier: Apache-2.0 */
/* strbuf.c - a growing printf buffer with an upper bound (see strbuf.h). */
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>

#include "err.h"

void ts_strbuf_vprintf(struct ts_strbuf *b, const char *fmt, va_list ap)
{
    if (b->err)
        return;
    size_t max = b->max ? b->max : TS_STRBUF_DEFAULT_MAX;
    for (int i = 0; i < 2; i++) {
        va_list aq;
        va_copy(aq, ap);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, aq);
        va_end(aq);
        if (n < 0) {
            b->err = TS_EINVAL;
            break;
        }
        if (b->s && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        if ((size_t)n > max - b->len) {
            b->err = TS_EFULL;
            break;
        }
        size_t need = b->len + (size_t)n + 1, cap = need < max / 2 ? need * 2 : max + 1;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->err = TS_ENOMEM;
            break;
        }
        b->s = s;
        b->cap = cap;
    }
    if (b->s)
        b->s[b->len] = '\0'; /* a failed vsnprintf may have written past it */
}

void ts_strbuf_printf(struct ts_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ts_strbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

int ts_strbuf_take(struct ts_strbuf *b, char **s, size_t *len)
{
    int rc = b->err;
    if (!rc && !b->s) {
        b->s = malloc(1);
        if (b->s)
            b->s[0] = '\0';
        else
            rc = TS_ENOMEM;
    }
    if (rc) {
        ts_strbuf_free(b);
        *s = NULL;
        *len = 0;
        return rc;
    }
    *s = b->s;
    *len = b->len;
    b->s = NULL;
    b->len = b->cap = 0;
    return TS_OK;
}

void ts_strbuf_free(struct ts_strbuf *b)
{
    if (!b)
        return;
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
    b->err = TS_OK;
}
