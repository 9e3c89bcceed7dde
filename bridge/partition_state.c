/* SPDX-License-Identifier: Apache-2.0 */
/* partition_state.c - a partition's checkpoint state, as text (see partition_state.h). */
#include "partition_state.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "reading.h"

int ts_partition_state_encode(const struct ts_seqsets *sets, const struct ts_window_agg *win,
                              const struct ts_archive_ref *archive, char **out, size_t *out_len)
{
    char *s = NULL, *w = NULL, head[TS_ARCHIVE_NAME_MAX + 128];
    size_t s_len = 0, w_len = 0;
    int rc = ts_seqsets_encode(sets, &s, &s_len);
    if (rc == TS_OK)
        rc = ts_window_encode(win, &w, &w_len);
    if (rc == TS_OK) {
        bool none = !archive || !archive->name[0];
        int n = snprintf(head, sizeof head,
                         "ts-bridge-state 2\narchive %s %" PRIu64 " %08" PRIx32 " %" PRIu64
                         "\nseqsets %zu\n", none ? "-" : archive->name, none ? 0 : archive->size,
                         none ? 0 : archive->crc, none ? 0 : archive->agents, s_len);
        size_t cap = (size_t)n + s_len + w_len + 32;
        char *buf = malloc(cap);
        if (!buf) {
            rc = TS_ENOMEM;
        } else {
            memcpy(buf, head, (size_t)n);
            memcpy(buf + n, s, s_len);
            size_t len = (size_t)n + s_len;
            len += (size_t)snprintf(buf + len, cap - len, "window %zu\n", w_len);
            memcpy(buf + len, w, w_len);
            *out = buf;
            *out_len = len + w_len;
        }
    }
    free(s);
    free(w);
    return rc;
}

/* Reads "<name> <len>\n" at *pos and returns the section's bytes. */
static const char *section(const char *buf, size_t len, size_t *pos, const char *name,
                           size_t *sec_len)
{
    const char *p = buf + *pos, *end = buf + len;
    size_t nl = strlen(name);
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol || (size_t)(eol - p) <= nl + 1 || memcmp(p, name, nl) != 0 || p[nl] != ' ')
        return NULL;
    char *stop;
    unsigned long long n = strtoull(p + nl + 1, &stop, 10);
    if (stop != eol || n > (unsigned long long)(end - eol - 1))
        return NULL;
    *sec_len = (size_t)n;
    *pos = (size_t)(eol + 1 - buf) + (size_t)n;
    return eol + 1;
}

/* "archive <name|-> <size> <crc> <agents>\n" at *pos. */
static bool archive_line(const char *buf, size_t len, size_t *pos, struct ts_archive_ref *a)
{
    const char *p = buf + *pos, *eol = memchr(p, '\n', len - *pos);
    char line[TS_ARCHIVE_NAME_MAX + 96], name[TS_ARCHIVE_NAME_MAX], tail;
    unsigned long long size, agents;
    unsigned crc;
    if (!eol || (size_t)(eol - p) >= sizeof line)
        return false;
    memcpy(line, p, (size_t)(eol - p));
    line[eol - p] = '\0';
    if (sscanf(line, "archive %127s %llu %8x %llu%c", name, &size, &crc, &agents, &tail) != 4)
        return false;
    memset(a, 0, sizeof *a);
    if (strcmp(name, "-") != 0) {
        uint64_t gen;
        char tag[TS_ARCHIVE_NAME_MAX], check[TS_ARCHIVE_NAME_MAX];
        size_t tl;
        /* only a name ts_archive_name makes: nothing that reaches out of the
         * directory (the tag's characters take the ".txt" too: cut it) */
        if (sscanf(name, "agents-%12" SCNu64 "-%100[A-Za-z0-9._-]", &gen, tag) != 2 ||
            (tl = strlen(tag)) <= 4 || strcmp(tag + tl - 4, ".txt") != 0)
            return false;
        tag[tl - 4] = '\0';
        if (ts_archive_name(gen, tag, check, sizeof check) != TS_OK || strcmp(check, name) != 0)
            return false;
        snprintf(a->name, sizeof a->name, "%s", name);
        a->size = size;
        a->crc = crc;
        a->agents = agents;
    } else if (size || crc || agents) {
        return false;
    }
    *pos = (size_t)(eol + 1 - buf);
    return true;
}

int ts_partition_state_decode(const char *buf, size_t len, struct ts_seqsets *sets,
                              struct ts_window_agg *win, int64_t now_ms,
                              struct ts_archive_ref *archive, char *why, size_t why_size)
{
    static const char v1[] = "ts-bridge-state 1\n", v2[] = "ts-bridge-state 2\n";
    size_t pos = sizeof v1 - 1, s_len, w_len, line = 0;

    memset(archive, 0, sizeof *archive);
    if (len >= pos && memcmp(buf, v2, pos) == 0) {
        if (!archive_line(buf, len, &pos, archive)) {
            snprintf(why, why_size, "state: the archive line is malformed");
            return TS_EPARSE;
        }
    } else if (len < pos || memcmp(buf, v1, pos) != 0) {
        snprintf(why, why_size, "state does not start with 'ts-bridge-state 1' or 2");
        return TS_EPARSE;
    }
    const char *s = section(buf, len, &pos, "seqsets", &s_len);
    const char *w = s ? section(buf, len, &pos, "window", &w_len) : NULL;
    if (!w || pos != len) {
        snprintf(why, why_size, "state sections malformed");
        return TS_EPARSE;
    }
    int rc = ts_seqsets_decode(sets, s, s_len, &line);
    if (rc != TS_OK) {
        snprintf(why, why_size, "duplicate-removal state, line %zu: %s", line, ts_strerror(rc));
        return rc;
    }
    return ts_window_decode(win, w, w_len, now_ms, why, why_size);
}
