/* SPDX-License-Identifier: Apache-2.0 */
/* webhook_body.c - a webhook request's body cut into readings (see webhook_body.h). */
#include "webhook_body.h"

#include <stdbool.h>
#include <string.h>

size_t ts_webhook_csv_lines(const char *s, size_t n, struct ts_webhook_line *out, size_t max)
{
    size_t k = 0, i = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - s) : n, len = end - i;
        if (len && s[i + len - 1] == '\r')
            len--;
        if (len) {
            if (k == max)
                return max + 1;
            out[k++] = (struct ts_webhook_line){s + i, len};
        }
        i = end + 1;
    }
    return k;
}

static const char *skip_ws(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    return s;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A JSON string at *sp (after its opening quote), decoded into *dp (no
 * longer than its text). NULL: *sp past the closing quote; else why not. */
static const char *json_string(const char **sp, const char *end, char **dp)
{
    const char *s = *sp;
    char *d = *dp;
    while (s < end && *s != '"') {
        unsigned char c = (unsigned char)*s++;
        if (c < 0x20)
            return "a control character in a string";
        if (c != '\\') {
            *d++ = (char)c;
            continue;
        }
        if (s >= end)
            break;
        switch (*s++) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '/': *d++ = '/'; break;
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'u': {
            if (end - s < 4)
                return "a short \\u escape";
            int v = 0;
            for (int i = 0; i < 4; i++) {
                int h = hexval(s[i]);
                if (h < 0)
                    return "a bad \\u escape";
                v = v * 16 + h;
            }
            s += 4;
            if (v >= 0xd800 && v <= 0xdfff)
                return "a \\u surrogate (write the character as UTF-8)";
            /* at most 3 bytes of UTF-8 for 6 bytes of text */
            if (v < 0x80) {
                *d++ = (char)v;
            } else if (v < 0x800) {
                *d++ = (char)(0xc0 | (v >> 6));
                *d++ = (char)(0x80 | (v & 0x3f));
            } else {
                *d++ = (char)(0xe0 | (v >> 12));
                *d++ = (char)(0x80 | ((v >> 6) & 0x3f));
                *d++ = (char)(0x80 | (v & 0x3f));
            }
            break;
        }
        default:
            return "a bad escape in a string";
        }
    }
    if (s >= end)
        return "a string without its closing quote";
    *sp = s + 1;
    *dp = d;
    return NULL;
}

size_t ts_webhook_json_lines(const char *s, size_t n, char *dec, struct ts_webhook_line *out, size_t max,
                         const char **why)
{
    const char *end = s + n;
    char *d = dec;
    size_t k = 0;
    bool object = false;
    s = skip_ws(s, end);
    if (s < end && *s == '{') {
        object = true;
        s = skip_ws(s + 1, end);
        char *key = d;
        if (s >= end || *s != '"') {
            *why = "expected {\"readings\": [...]}";
            return (size_t)-1;
        }
        s++;
        if ((*why = json_string(&s, end, &d)) != NULL)
            return (size_t)-1;
        if ((size_t)(d - key) != 8 || memcmp(key, "readings", 8) != 0) {
            *why = "the object's only key is \"readings\"";
            return (size_t)-1;
        }
        d = key;
        s = skip_ws(s, end);
        if (s >= end || *s != ':') {
            *why = "expected ':' after \"readings\"";
            return (size_t)-1;
        }
        s = skip_ws(s + 1, end);
    }
    if (s >= end || *s != '[') {
        *why = "expected an array of readings (strings)";
        return (size_t)-1;
    }
    s = skip_ws(s + 1, end);
    if (s < end && *s == ']') {
        s++;
    } else {
        for (;;) {
            if (s >= end || *s != '"') {
                *why = "every reading is a string (its CSV line)";
                return (size_t)-1;
            }
            s++;
            char *start = d;
            if ((*why = json_string(&s, end, &d)) != NULL)
                return (size_t)-1;
            if (k == max)
                return max + 1;
            out[k++] = (struct ts_webhook_line){start, (size_t)(d - start)};
            s = skip_ws(s, end);
            if (s < end && *s == ',') {
                s = skip_ws(s + 1, end);
                continue;
            }
            if (s < end && *s == ']') {
                s++;
                break;
            }
            *why = "expected ',' or ']' in the array";
            return (size_t)-1;
        }
    }
    s = skip_ws(s, end);
    if (object) {
        if (s >= end || *s != '}') {
            *why = "expected '}' after the array";
            return (size_t)-1;
        }
        s = skip_ws(s + 1, end);
    }
    if (s != end) {
        *why = "text after the JSON value";
        return (size_t)-1;
    }
    return k;
}

