/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_config.c - libFuzzer target for the config engine (common/config.c,
 * inih underneath) against a real schema: turnstile-agent's key tables and
 * validation (agent/agent_config.c), the richest one (named sections, every
 * key type).
 *
 * The input is the whole config file: arbitrary bytes, written to a memfd and
 * loaded through its /proc/self/fd path as the agent loads its file. Beyond
 * "no crash, no leak, no undefined behaviour" it checks:
 *   - the result is TS_OK or TS_ECONFIG;
 *   - every error (err, and each one the file keeps) is one line of printable
 *     ASCII (0x20..0x7e) that starts with the file name and ':', then either
 *     a line number within the input's lines (1 for an empty input) and ':',
 *     or ' ' (a whole-file message);
 *   - TS_ECONFIG keeps 1 to TS_CFG_ERRORS_MAX errors (more only counted), in
 *     the order of their lines, err the first of them; TS_OK keeps none;
 *   - "line longer than 199 characters" names a line that is longer, "holds a
 *     NUL byte" one that holds a NUL; an input with such a line is never
 *     accepted (a line is never split or cut);
 *   - an accepted config: every key and section header comes from the line
 *     its origin names (that line holds the key's name, or a '['), the
 *     integer keys lie in their ranges, text keys hold no control character.
 * Any violation abort()s, which libFuzzer reports as a crash. Built and run by
 * tests/fuzz/run.sh config. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent_config.h"
#include "err.h"
#include "hal.h"

#define LINE_MAX_CHARS 199 /* inih's 200-byte buffer, less its NUL */

static int fd = -1;
static char path[64];

static const uint8_t *in;
static size_t in_size;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_config: %s\n  detail: %s\n  input (%zu bytes): ", what,
            detail ? detail : "(none)", in_size);
    for (size_t i = 0; i < in_size && i < 600; i++)
        fputc(in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '.', stderr);
    fputc('\n', stderr);
    abort();
}

/* Line `n` (from 1) of the input: start and length without "\n" or "\r\n",
 * nor the UTF-8 byte order mark that may open line 1 (the engine skips it). */
static int input_line(size_t n, const uint8_t **start, size_t *len)
{
    const uint8_t *p = in, *end = in + in_size;
    for (size_t i = 1; i < n; i++) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return 0;
        p = nl + 1;
    }
    if (p == end && n > 1 && end[-1] == '\n')
        return 0;
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    *start = p;
    *len = (size_t)((nl ? nl : end) - p);
    if (*len && p[*len - 1] == '\r')
        (*len)--;
    if (n == 1 && *len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        *start += 3;
        *len -= 3;
    }
    return 1;
}

static size_t count_lines(void)
{
    size_t n = 0;
    for (size_t i = 0; i < in_size; i++)
        n += in[i] == '\n';
    return n + (in_size > 0 && in[in_size - 1] != '\n');
}

static int line_holds(size_t line, const char *needle)
{
    const uint8_t *s;
    size_t len, k = strlen(needle);
    if (!input_line(line, &s, &len))
        return 0;
    for (size_t i = 0; i + k <= len; i++)
        if (memcmp(s + i, needle, k) == 0)
            return 1;
    return 0;
}

static void check_error(const char *err, size_t lines)
{
    size_t plen = strlen(path);
    if (!err[0])
        fail("TS_ECONFIG without a message", NULL);
    for (const char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            fail("a raw byte in the error line", err);
    if (strncmp(err, path, plen) != 0 || err[plen] != ':')
        fail("the error does not start with the file name and ':'", err);
    const char *p = err + plen + 1;
    if (*p == ' ')
        return; /* about the whole file: "no [turnstile] section" */
    char *end;
    unsigned long line = strtoul(p, &end, 10);
    if (end == p || *end != ':' || p[0] == '0')
        fail("no line number after the file name", err);
    if (line < 1 || line > (lines ? lines : 1))
        fail("the line number is not a line of the input", err);
    /* the reader's own errors are the whole rest of the line (no section, no key) */
    if (strcmp(end + 1, " line longer than 199 characters") == 0) {
        const uint8_t *s;
        size_t len;
        if (!input_line(line, &s, &len) || len <= LINE_MAX_CHARS)
            fail("'line longer than' names a line that is not", err);
    }
    if (strcmp(end + 1, " holds a NUL byte (not a text file?)") == 0) {
        const uint8_t *s;
        size_t len;
        if (!input_line(line, &s, &len) || !memchr(s, '\0', len))
            fail("'NUL byte' names a line without one", err);
    }
}

/* Line of an error ("path:LINE: ..."), 0 for a whole-file one. */
static int error_line(const char *e)
{
    const char *p = e + strlen(path) + 1;
    return *p == ' ' ? 0 : atoi(p);
}

/* Every error kept, as check_error; at most TS_CFG_ERRORS_MAX, sorted by
 * line (whole-file ones last), err the first. */
static void check_errors(const struct ts_cfg_file *file, const char *err, size_t lines)
{
    if (file->n_errors == 0 || file->n_errors > TS_CFG_ERRORS_MAX)
        fail("TS_ECONFIG keeps no error, or more than TS_CFG_ERRORS_MAX", err);
    if (strcmp(err, file->errors[0].text) != 0)
        fail("err is not the first error kept", err);
    for (size_t i = 0; i < file->n_errors; i++) {
        check_error(file->errors[i].text, lines);
        if (error_line(file->errors[i].text) != file->errors[i].line)
            fail("an error's line is not the one its text names", file->errors[i].text);
        if (i > 0) {
            int a = file->errors[i - 1].line, b = file->errors[i].line;
            if ((a == 0 && b != 0) || (b != 0 && a > b))
                fail("errors out of line order", file->errors[i].text);
        }
    }
}

static void check_text(const char *field, size_t size, const char *name)
{
    if (strnlen(field, size) == size)
        fail("a text key is not terminated", name);
    for (const char *c = field; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            fail("a control character in an accepted text key", name);
}

static void check_accepted(const struct ts_agent_cfg *cfg, size_t lines)
{
    const uint8_t *s;
    size_t len;

    for (size_t i = 1; input_line(i, &s, &len); i++) {
        char what[32];
        snprintf(what, sizeof what, "line %zu", i);
        if (len > LINE_MAX_CHARS)
            fail("accepted an input with a line longer than 199 characters", what);
        if (memchr(s, '\0', len))
            fail("accepted an input with a NUL byte", what);
    }
    for (size_t i = 0; i < cfg->file.n_origins; i++) {
        const struct ts_cfg_origin *o = &cfg->file.origins[i];
        char what[160];
        snprintf(what, sizeof what, "key %s on line %d", o->key ? o->key : "(header)", o->line);
        if (o->line < 1 || (size_t)o->line > lines)
            fail("an origin outside the input's lines", what);
        if (!line_holds((size_t)o->line, o->key ? o->key : "["))
            fail("an origin names a line that does not hold it", what);
    }
    const struct ts_agent_settings *a = &cfg->agent;
    if (a->poll_interval_ms < 100 || a->poll_interval_ms > 3600000)
        fail("poll_interval_ms out of its range", NULL);
    check_text(a->timezone, sizeof a->timezone, "timezone");
    if (cfg->has_mqtt) {
        const struct ts_mqtt_cfg *m = &cfg->mqtt;
        if (m->link.port < 1 || m->link.port > 65535)
            fail("mqtt port out of its range", NULL);
        check_text(m->link.host, sizeof m->link.host, "mqtt host");
        check_text(m->link.username, sizeof m->link.username, "mqtt username");
        check_text(m->link.password, sizeof m->link.password, "mqtt password");
        check_text(m->link.ca_file, sizeof m->link.ca_file, "mqtt ca_file");
    }
    if (cfg->has_store)
        check_text(cfg->store.path, sizeof cfg->store.path, "store path");
    if (cfg->n_turnstiles == 0)
        fail("accepted without a turnstile", NULL);
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const struct ts_device_cfg *d = cfg->devices[i];
        if (d->port < 1 || d->port > 65535 || d->slave_id < 0 || d->slave_id > 247)
            fail("device port or slave_id out of its range", d->name);
        check_text(d->host, sizeof d->host, "device host");
        check_text(d->serial_port, sizeof d->serial_port, "device serial_port");
    }
    for (size_t i = 0; i < cfg->n_turnstiles; i++) {
        const struct ts_turnstile_cfg *t = cfg->turnstiles[i];
        if (t->device_index >= cfg->n_devices)
            fail("a turnstile without its device", t->name);
        if (t->entries_address < 0 || t->entries_address > 65535)
            fail("entries_address out of its range", t->name);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fd = memfd_create("fuzz_config.conf", MFD_CLOEXEC);
    if (fd < 0) {
        perror("fuzz_config: memfd_create");
        exit(1);
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ts_agent_cfg cfg;
    char err[512] = "";

    in = data;
    in_size = size;
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz_config: writing the memfd");
        abort();
    }
    size_t lines = count_lines();
    int rc = ts_agent_cfg_load(path, &cfg, err, sizeof err);
    if (rc == TS_ECONFIG) {
        check_error(err, lines);
        check_errors(&cfg.file, err, lines);
    } else if (rc == TS_OK) {
        if (cfg.file.n_errors || cfg.file.n_more)
            fail("accepted with errors", NULL);
        check_accepted(&cfg, lines);
    } else {
        fail("neither TS_OK nor TS_ECONFIG", ts_strerror(rc));
    }
    ts_agent_cfg_free(&cfg);
    return 0;
}
