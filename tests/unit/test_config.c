/* SPDX-License-Identifier: Apache-2.0 */
/* Config validation: every error of a bad config is one line naming file,
 * line and key; one load reports them all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_config.h"
#include "cli.h"
#include "err.h"

static char path[64], fifo[80];

static const char *const good_head =
    "[agent]\n"                         /* 1 */
    "id = ctrl-01\n"                    /* 2 */
    "station_id = R051\n"               /* 3 */
    "ca = A002\n"                       /* 4 */
    "unit = R051\n"                     /* 5 */
    "station = 59 ST\n"                 /* 6 */
    "linename = NQR456W\n"              /* 7 */
    "division = BMT\n"                  /* 8 */
    "\n"                                /* 9 */
    "[device gate]\n"                   /* 10 */
    "kind = modbus-tcp\n"               /* 11 */
    "host = 127.0.0.1\n"                /* 12 */
    "port = 1502\n"                     /* 13 */
    "\n"                                /* 14 */
    "[turnstile t1]\n"                  /* 15 */
    "device = gate\n"                   /* 16 */
    "scp = 02-00-00\n"                  /* 17 */
    "entries_address = 0\n"             /* 18 */
    "exits_address = 2\n";              /* 19 */

static void write_bytes(const char *file, const char *data, size_t len)
{
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_file(const char *text)
{
    write_bytes(path, text, strlen(text));
}

/* An error line holds only printable ASCII: no raw byte of the file reaches a terminal. */
static void assert_printable(const char *err)
{
    for (const char *c = err; *c; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) {
            fprintf(stderr, "raw byte 0x%02x in error line '%s'\n", (unsigned char)*c, err);
            fail();
        }
    }
}

/* Whether text holds every needle. */
static int holds_all(const char *text, const char *const needles[])
{
    for (int i = 0; needles[i]; i++)
        if (!strstr(text, needles[i]))
            return 0;
    return 1;
}

/* An error line: starts with the file name, one line of printable ASCII. */
static void assert_error_line(const char *file, const char *err)
{
    if (strncmp(err, file, strlen(file)) != 0) {
        fprintf(stderr, "error '%s' does not start with the file name\n", err);
        fail();
    }
    assert_null(strchr(err, '\n'));
    assert_printable(err);
}

/* Loads file; expects failure with an error holding every needle (err holds
 * the first error; every error found is in cfg.file). */
static void expect_file_error(const char *file, const char *const needles[])
{
    char err[512] = "";
    struct ts_agent_cfg cfg;
    int found = 0;

    int rc = ts_agent_cfg_load(file, &cfg, err, sizeof err);
    if (rc != TS_ECONFIG) {
        fprintf(stderr, "%s accepted (rc %d)\n", file, rc);
        fail();
    }
    assert_error_line(file, err);
    assert_true(cfg.file.n_errors > 0);
    assert_string_equal(err, cfg.file.errors[0].text);
    for (size_t i = 0; i < cfg.file.n_errors; i++) {
        assert_error_line(file, cfg.file.errors[i].text);
        found = found || holds_all(cfg.file.errors[i].text, needles);
    }
    if (!found) {
        fprintf(stderr, "no error holds every one of:");
        for (int i = 0; needles[i]; i++)
            fprintf(stderr, " '%s'", needles[i]);
        fprintf(stderr, "\nerrors:\n");
        for (size_t i = 0; i < cfg.file.n_errors; i++)
            fprintf(stderr, "  %s\n", cfg.file.errors[i].text);
    }
    ts_agent_cfg_free(&cfg);
    assert_true(found);
}

/* Loads head + tail; expects failure with an error holding every needle. */
static void expect_error(const char *head, const char *tail, const char *const needles[])
{
    char text[4096];

    int n = snprintf(text, sizeof text, "%s%s", head, tail);
    assert_true(n > 0 && (size_t)n < sizeof text);
    write_file(text);
    expect_file_error(path, needles);
}

/* As expect_error, and the first error (in err) is the one holding every needle. */
static void expect_first_error(const char *head, const char *tail, const char *const needles[])
{
    char text[4096], err[512] = "";
    struct ts_agent_cfg cfg;

    int n = snprintf(text, sizeof text, "%s%s", head, tail);
    assert_true(n > 0 && (size_t)n < sizeof text);
    write_file(text);
    assert_int_equal(ts_agent_cfg_load(path, &cfg, err, sizeof err), TS_ECONFIG);
    ts_agent_cfg_free(&cfg);
    assert_error_line(path, err);
    if (!holds_all(err, needles)) {
        fprintf(stderr, "the first error '%s' lacks one of the needles\n", err);
        fail();
    }
}

#define EXPECT(head, tail, ...) expect_error(head, tail, (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_FILE(file, ...) expect_file_error(file, (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_FIRST(head, tail, ...)                                                    \
    expect_first_error(head, tail, (const char *const[]){__VA_ARGS__, NULL})

static int setup(void **state)
{
    snprintf(path, sizeof path, "/tmp/ts-config-test-%d.conf", (int)getpid());
    snprintf(fifo, sizeof fifo, "/tmp/ts-config-test-%d.fifo", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    unlink(path);
    unlink(fifo);
    return 0;
}

static void good_config_loads_with_defaults(void **state)
{
    struct ts_agent_cfg cfg;
    char err[512] = "";

    write_file(good_head);
    assert_int_equal(ts_agent_cfg_load(path, &cfg, err, sizeof err), TS_OK);
    assert_int_equal(cfg.n_devices, 1);
    assert_int_equal(cfg.n_turnstiles, 1);
    const struct ts_turnstile_cfg *t = cfg.turnstiles[0];
    assert_string_equal(t->station, "59 ST"); /* default from [agent] */
    assert_int_equal(t->width, 32);
    assert_int_equal(t->order, TS_ORDER_ABCD);
    assert_int_equal(t->direction, TS_DIR_AUTO);
    assert_true(t->max_rate_per_min > 0);
    assert_int_equal(cfg.devices[0]->response_timeout_ms, 500);
    assert_int_equal(cfg.devices[0]->slave_id, 1);
    assert_int_equal(cfg.agent.poll_interval_ms, 1000);
    ts_agent_cfg_free(&cfg);
}

static void missing_file(void **state)
{
    struct ts_agent_cfg cfg;
    char err[512];
    assert_int_equal(ts_agent_cfg_load("/nonexistent/agent.conf", &cfg, err, sizeof err), TS_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/agent.conf"));
    ts_agent_cfg_free(&cfg);
}

static void unknown_key(void **state)
{
    EXPECT(good_head, "colour = red\n", ":20:", "[turnstile t1]", "colour", "unknown key");
}

static void value_out_of_range(void **state)
{
    EXPECT(good_head, "[device d2]\nkind = modbus-tcp\nhost = h\nport = 70000\n", ":23:", "port",
           "out of range");
    EXPECT(good_head, "width = 24\n", ":20:", "width", "24");
    EXPECT(good_head, "order = ABDC\n", ":20:", "order");
    EXPECT(good_head, "direction = sideways\n", ":20:", "direction");
    EXPECT(good_head, "max_rate_per_min = fast\n", ":20:", "max_rate_per_min", "not a number");
    EXPECT(good_head, "linename = 7   # the flushing line\n", ":20:", "linename", "inline comments");
}

static void duplicate_turnstile(void **state)
{
    EXPECT(good_head, "[turnstile t1]\ndevice = gate\nscp = 02-00-01\nentries_address = 4\nexits_address = 6\n",
           ":20:", "t1", "duplicate");
    EXPECT(good_head, "[turnstile t2]\ndevice = gate\nscp = 02-00-00\nentries_address = 4\nexits_address = 6\n",
           ":22:", "scp", "duplicate turnstile A002/R051/02-00-00");
}

static void bad_register_map(void **state)
{
    EXPECT(good_head, "[turnstile t2]\ndevice = gate\nscp = 02-00-01\nentries_address = 4\nexits_address = 5\n",
           ":24:", "exits_address", "overlaps");
    EXPECT(good_head, "[turnstile t2]\ndevice = gate\nscp = 02-00-01\nexits_address = 8\n", "[turnstile t2]",
           "entries_address", "required");
    EXPECT(good_head, "[turnstile t2]\ndevice = gate\nscp = 02-00-01\nwidth = 64\nentries_address = 65534\nexits_address = 0\n",
           ":24:", "entries_address", "65535");
}

static void unknown_device(void **state)
{
    EXPECT(good_head, "[turnstile t2]\ndevice = nowhere\nscp = 02-00-01\nentries_address = 4\nexits_address = 6\n",
           ":21:", "device", "no [device nowhere]");
}

static void identifiers_that_would_break_the_csv(void **state)
{
    EXPECT(good_head, "station = 59 ST, BKLYN\n", ":20:", "station", "comma");
    EXPECT("[agent]\nid = ctrl/01\n", "", ":2:", "id", "letters, digits");
    EXPECT(good_head, "ca = \"A002\"\n", ":20:", "ca", "quote");
}

static void structure_errors(void **state)
{
    EXPECT("", "id = x\n[agent]\n", ":1:", "id", "outside");
    EXPECT(good_head, "[gate x]\n", ":20:", "unknown section");
    EXPECT(good_head, "[device]\n", ":20:", "needs a name");
    EXPECT(good_head, "scp = 02-00-09\n", ":20:", "scp", "set twice", "line 17");
    EXPECT(good_head, "this is not ini\n", ":20:", "syntax");
    EXPECT("[agent]\nid = a\n", "", "station_id", "required");
    EXPECT(good_head, "[device gate]\nkind = modbus-tcp\nhost = x\n", ":20:", "duplicate device");
    EXPECT(good_head, "[device rtu]\nkind = modbus-rtu\n", "[device rtu]", "serial_port", "required");
    EXPECT(good_head, "[turnstile t2]\ndevice = gate\nentries_address = 4\nexits_address = 6\n",
           "[turnstile t2]", "scp", "required");
}

static void rtu_line_conflicts(void **state)
{
    EXPECT(good_head,
           "[device s1]\nkind = modbus-rtu\nserial_port = /dev/ttyS9\nslave_id = 3\n"
           "[device s2]\nkind = modbus-rtu\nserial_port = /dev/ttyS9\nslave_id = 3\n",
           ":27:", "slave_id", "slave 3");
    EXPECT(good_head,
           "[device s1]\nkind = modbus-rtu\nserial_port = /dev/ttyS9\nslave_id = 3\n"
           "[device s2]\nkind = modbus-rtu\nserial_port = /dev/ttyS9\nslave_id = 4\nbaud = 9600\n",
           ":28:", "baud", "line settings");
}

static void bad_timezone(void **state)
{
    EXPECT(good_head, "[agent]\n", ":20:", "appears twice");
    char head[2048];
    snprintf(head, sizeof head, "%s", good_head);
    char *p = strstr(head, "division = BMT\n");
    memcpy(p, "timezone=Mars/X", 15);
    EXPECT(head, "", ":8:", "timezone", "Mars/X");
}

static void gpio_lines(void **state)
{
    const char *gpio = "[device pins]\nkind = gpio\nchip = gpiochip0\n"
                       "[turnstile g1]\ndevice = pins\nscp = 01-00-00\nentry_line = 4\nexit_line = 5\n";
    char head[2048];
    snprintf(head, sizeof head, "%s%s", good_head, gpio);
    EXPECT(head, "[turnstile g2]\ndevice = pins\nscp = 01-00-01\nentry_line = 5\nexit_line = 6\n",
           "[turnstile g2]", "entry_line", "line 5");
    EXPECT(head, "[turnstile g2]\ndevice = pins\nscp = 01-00-01\nentry_line = 7\nexit_line = 7\n",
           "exit_line", "same line");
}


/* --- hostile and odd files (issue 11) -------------------------------------- */

/* good_head with `line` inserted as line 2, inside [agent]. */
static void head_with_line_2(char *out, size_t size, const char *line)
{
    snprintf(out, size, "[agent]\n%s\n%s", line, good_head + strlen("[agent]\n"));
}

static void load_ok(const char *text, struct ts_agent_cfg *cfg)
{
    char err[512] = "";
    write_file(text);
    int rc = ts_agent_cfg_load(path, cfg, err, sizeof err);
    if (rc != TS_OK) {
        fprintf(stderr, "refused: %s\n", err);
        fail();
    }
}

/* Loads text, expects TS_ECONFIG; cfg keeps the errors (free it). */
static void load_errors(const char *text, struct ts_agent_cfg *cfg)
{
    char err[512] = "";
    write_file(text);
    assert_int_equal(ts_agent_cfg_load(path, cfg, err, sizeof err), TS_ECONFIG);
    assert_true(cfg->file.n_errors > 0);
    assert_string_equal(err, cfg->file.errors[0].text);
}

/* The errors of cfg are exactly `expected` (substrings), in that order. */
static void assert_errors(const struct ts_agent_cfg *cfg, const char *const expected[])
{
    size_t n = 0;
    int ok = 1;

    while (expected[n])
        n++;
    ok = cfg->file.n_errors == n && cfg->file.n_more == 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = strstr(cfg->file.errors[i].text, expected[i]) != NULL;
    if (!ok) {
        fprintf(stderr, "expected %zu errors:\n", n);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "  ...%s...\n", expected[i]);
        fprintf(stderr, "got %zu (and %zu more):\n", cfg->file.n_errors, cfg->file.n_more);
        for (size_t i = 0; i < cfg->file.n_errors; i++)
            fprintf(stderr, "  %s\n", cfg->file.errors[i].text);
        fail();
    }
    for (size_t i = 0; i < cfg->file.n_errors; i++)
        assert_error_line(path, cfg->file.errors[i].text);
}

#define ASSERT_ERRORS(cfg, ...) assert_errors(cfg, (const char *const[]){__VA_ARGS__, NULL})

/* Before: inih's reader took 199 bytes at a time, so the tail of a longer
 * comment was parsed as a line of its own and this key was applied. */
static void long_comment_is_an_error_not_split(void **state)
{
    char comment[301], text[4096];
    memset(comment, 'x', 300);
    comment[0] = '#';
    comment[300] = '\0';
    const char key[] = "poll_interval_ms = 250 ;";
    memcpy(comment + 199, key, strlen(key)); /* from column 200 on */
    head_with_line_2(text, sizeof text, comment);
    EXPECT(text, "", ":2: line longer than 199 characters");
    /* with an out-of-range value the tail named the wrong line, too */
    memcpy(comment + 199, "poll_interval_ms = 1 ;", 22);
    head_with_line_2(text, sizeof text, comment);
    EXPECT(text, "", ":2: line longer than 199 characters");
}

static void long_value_is_an_error(void **state)
{
    char line[260], text[4096];
    snprintf(line, sizeof line, "station = %0249d", 7);
    head_with_line_2(text, sizeof text, line);
    EXPECT(text, "", ":2: line longer than 199 characters");
    char tail[300];
    snprintf(tail, sizeof tail, "\n\n[device long]\nkind = modbus-tcp\nhost = 10.0.0.1 ; %0200d\n", 0);
    EXPECT(good_head, tail, ":24: line longer than 199 characters");
    /* and the only error: the key on the line counts as set (no "host: required"), and a
     * header too long for a line leaves its keys out (not given to the section before) */
    struct ts_agent_cfg cfg;
    snprintf(text, sizeof text, "%s\n\n[device long]\nkind = modbus-tcp\nhost = 10.0.0.1 ; %0200d\n"
             "[device %0200d]\nkind = gpio\n", good_head, 0, 0);
    load_errors(text, &cfg);
    ASSERT_ERRORS(&cfg, ":24: line longer than 199 characters", ":25: line longer than 199 characters");
    ts_agent_cfg_free(&cfg);
}

/* The longest line that fits (199 characters, also before CRLF) is whole,
 * and the lines after it keep their numbers. Before: fgets stopped at the
 * full buffer and read the line's end as one more (empty) line. */
static void longest_line_is_whole_and_later_lines_keep_their_numbers(void **state)
{
    char comment[200], text[4096], crlf[4096];
    memset(comment, 'c', 199);
    comment[0] = ';';
    comment[199] = '\0';
    snprintf(text, sizeof text, "%s%s\n", good_head, comment); /* line 20 */
    EXPECT(text, "colour = red\n", ":21:", "[turnstile t1] colour: unknown key");
    struct ts_agent_cfg cfg;
    load_ok(text, &cfg);
    ts_agent_cfg_free(&cfg);

    /* the same with CRLF line ends, and a 198-character line before its CR */
    size_t n = 0;
    for (const char *c = good_head; *c; c++) {
        if (*c == '\n')
            crlf[n++] = '\r';
        crlf[n++] = *c;
    }
    snprintf(crlf + n, sizeof crlf - n, "%.198s\r\n%s\r\ncolour = red\r\n", comment, comment);
    EXPECT(crlf, "", ":22:", "colour", "unknown key");
    comment[199 - 1] = 'c';
    char two_hundred[4096];
    snprintf(two_hundred, sizeof two_hundred, "%s%sc\n", good_head, comment);
    EXPECT(two_hundred, "", ":20: line longer than 199 characters");
}

/* The first error in the file is the first reported (err), and the errors
 * after it are reported too, each on its own line. Before: inih went on past
 * a syntax error, and a later bad key named its own line; then (issue 12)
 * only the first error was reported. */
static void first_error_comes_first(void **state)
{
    EXPECT_FIRST(good_head, "this is not ini\ncolour = red\n", ":20:", "syntax error");
    EXPECT(good_head, "this is not ini\ncolour = red\n", ":21:", "colour: unknown key");
    EXPECT_FIRST(good_head, "[turnstile t2\ndevice = gate\n", ":20:", "without ']'");
    EXPECT_FIRST(good_head, "= 5\ncolour = red\n", ":20:", "key name is missing");
    EXPECT(good_head, "= 5\ncolour = red\n", ":21:", "colour: unknown key");
}

/* --- every error at once (issue 12) ---------------------------------------- */


/* One file, errors of every sort: each is reported with its line, in the
 * order of the lines, and nothing else (no error follows from another). */
static void every_error_is_reported(void **state)
{
    char text[4096], comment[201];
    memset(comment, 'c', 200);
    comment[0] = '#';
    comment[200] = '\0';
    snprintf(text, sizeof text,
             "[agent]\n"                   /* 1 */
             "id = ctrl-01\n"              /* 2 */
             "station_id = R051\n"         /* 3 */
             "pol_interval_ms = 500\n"     /* 4: unknown key, a close one */
             "ca = A002\n"                 /* 5 */
             "unit = R051\n"               /* 6 */
             "station = 59 ST\n"           /* 7 */
             "linename = NQR456W\n"        /* 8 */
             "division = BMT\n"            /* 9 */
             "log_level = loud\n"          /* 10: not a choice */
             "this is not ini\n"           /* 11: syntax */
             "[device gate]\n"             /* 12 */
             "kind = modbus-tcp\n"         /* 13 */
             "host = 127.0.0.1\n"          /* 14 */
             "baud = 9600\n"               /* 15: a modbus-rtu key */
             "port = 70000\n"              /* 16: out of range */
             "[turnstile t1]\n"            /* 17 */
             "device = gate\n"             /* 18 */
             "scp = 02-00-00\n"            /* 19 */
             "entries_address = 0\n"       /* 20 */
             "exits_address = 1\n"         /* 21: overlaps */
             "scp = 02-00-01\n"            /* 22: set twice */
             "[turnstile t2]\n"            /* 23 */
             "device = nowhere\n"          /* 24: no such device */
             "scp = 02-00-02\n"            /* 25 */
             "%s\n"                        /* 26: too long */
             "colour = red\n"              /* 27: unknown key, none close */
             "[gate g]\n"                  /* 28: unknown section kind */
             "host = x\n",                 /* 29: (in a refused section: not reported) */
             comment);
    struct ts_agent_cfg cfg;
    load_errors(text, &cfg);
    ASSERT_ERRORS(&cfg, ":4: [agent] pol_interval_ms: unknown key; did you mean 'poll_interval_ms'?",
                  ":10: [agent] log_level: 'loud' is not one of",
                  ":11: syntax error",
                  ":15: [device gate] baud: means nothing for kind modbus-tcp (only for modbus-rtu)",
                  ":16: [device gate] port: 70000 is out of range",
                  ":21: [turnstile t1] exits_address: overlaps the entries counter",
                  ":22: [turnstile t1] scp: set twice (first on line 19)",
                  ":24: [turnstile t2] device: no [device nowhere]",
                  ":26: line longer than 199 characters",
                  ":27: [turnstile t2] colour: unknown key",
                  ":28: [gate g] unknown section kind 'gate'");
    assert_null(strstr(cfg.file.errors[9].text, "did you mean"));
    assert_null(strstr(cfg.file.errors[10].text, "did you mean"));
    ts_agent_cfg_free(&cfg);
}

/* A refused value counts as set, and checks that would use it are skipped:
 * one error each, not a cascade of false ones. */
static void a_refused_value_is_one_error(void **state)
{
    struct ts_agent_cfg cfg;
    char text[4096];

    /* a bad kind: no "host required", no "means nothing for" */
    snprintf(text, sizeof text, "%s[device d2]\nkind = modbus\nhost = h\nbaud = 9600\n", good_head);
    load_errors(text, &cfg);
    ASSERT_ERRORS(&cfg, ":21: [device d2] kind: 'modbus' is not one of");
    ts_agent_cfg_free(&cfg);
    /* a bad width or address: no overlap, no "required" */
    snprintf(text, sizeof text, "%swidth = 48\n[turnstile t2]\ndevice = gate\nscp = 02-00-01\n"
             "entries_address = -4\nexits_address = 0\n", good_head);
    load_errors(text, &cfg);
    ASSERT_ERRORS(&cfg, ":20: [turnstile t1] width: '48' is not one of",
                  ":24: [turnstile t2] entries_address: -4 is out of range");
    ts_agent_cfg_free(&cfg);
    /* a bad device name in a turnstile: no "no [device ...]" */
    snprintf(text, sizeof text, "%s[turnstile t2]\ndevice = ga\x01te\nscp = 02-00-01\n"
             "entries_address = 4\nexits_address = 6\n", good_head);
    load_errors(text, &cfg);
    ASSERT_ERRORS(&cfg, ":21: [turnstile t2] device: holds a control character");
    ts_agent_cfg_free(&cfg);
    /* a bad identity in [agent]: not "missing" in every turnstile */
    snprintf(text, sizeof text, "%s", good_head);
    memcpy(strstr(text, "station = 59 ST"), "station = 59,ST", 15);
    load_errors(text, &cfg);
    ASSERT_ERRORS(&cfg, ":6: [agent] station: holds a comma");
    ts_agent_cfg_free(&cfg);
}

/* --- keys for some kinds of device only ----------------------------------- */

enum { K_TCP = 1, K_RTU = 2, K_GPIO = 4, K_SIM = 8, K_HTTP = 16, K_MODBUS = K_TCP | K_RTU };
static const struct {
    const char *name;
    unsigned bit;
    const char *device_lines;    /* kind and its required key */
    const char *turnstile_lines; /* what a turnstile of it needs */
} device_kinds[] = {
    {"modbus-tcp", K_TCP, "kind = modbus-tcp\nhost = h\n", "entries_address = 0\nexits_address = 8\n"},
    {"modbus-rtu", K_RTU, "kind = modbus-rtu\nserial_port = /dev/ttyS0\n",
     "entries_address = 0\nexits_address = 8\n"},
    {"gpio", K_GPIO, "kind = gpio\nchip = gpiochip0\n", "entry_line = 1\nexit_line = 2\n"},
    {"sim", K_SIM, "kind = sim\nmta_file = /tmp/week.csv\n", ""},
    {"http", K_HTTP, "kind = http\nurl = https://127.0.0.1/c\n", "entries_path = /a\nexits_path = /b\n"},
};
static const struct {
    const char *key, *value;
    unsigned kinds;
} device_keys[] = {
    {"host", "h", K_TCP}, {"port", "502", K_TCP}, {"serial_port", "/dev/ttyS0", K_RTU},
    {"baud", "9600", K_RTU}, {"parity", "E", K_RTU}, {"data_bits", "8", K_RTU},
    {"stop_bits", "1", K_RTU}, {"frame_delay_ms", "5", K_RTU}, {"slave_id", "3", K_MODBUS},
    {"response_timeout_ms", "500", K_MODBUS}, {"byte_timeout_ms", "100", K_MODBUS},
    {"retries", "1", K_MODBUS}, {"chip", "gpiochip0", K_GPIO}, {"debounce_us", "100", K_GPIO},
    {"mta_file", "/tmp/week.csv", K_SIM}, {"speed", "60", K_SIM},
    {"url", "https://h/c", K_HTTP}, {"timeout_ms", "3000", K_HTTP},
    {"connect_timeout_ms", "500", K_HTTP}, {"max_response_bytes", "1024", K_HTTP},
    {"max_json_depth", "4", K_HTTP}, {"token_file", "/etc/t", K_HTTP}, {"token_env", "TOK", K_HTTP},
    {"ca_file", "/etc/ca.pem", K_HTTP},
    {"backoff_min_ms", "1000", K_TCP | K_RTU | K_GPIO | K_SIM | K_HTTP},
}, turnstile_keys[] = {
    {"register_type", "input", K_MODBUS}, {"entries_address", "0", K_MODBUS},
    {"exits_address", "2", K_MODBUS}, {"order", "CDAB", K_MODBUS}, {"width", "64", K_MODBUS | K_SIM | K_HTTP},
    {"direction", "down", K_MODBUS | K_SIM | K_HTTP}, {"entries_path", "/x", K_HTTP},
    {"exits_path", "/y", K_HTTP}, {"entry_line", "1", K_GPIO},
    {"exit_line", "2", K_GPIO}, {"edge", "both", K_GPIO}, {"active_low", "true", K_GPIO},
    {"bias", "pull-up", K_GPIO}, {"max_rate_per_min", "60", K_MODBUS | K_GPIO | K_SIM | K_HTTP},
};

/* The http kind's own checks (docs/http.md): the URL's scheme, ca_file only
 * for https, one source of the token, a name for token_env, the connect
 * timeout within the whole one, JSON Pointers; a counter of 64 bits unless
 * set. */
static void http_keys_are_checked(void **state)
{
    struct ts_agent_cfg cfg;
    char text[4096];
    const char *head = "[agent]\nid = a1\nstation_id = S1\nca = A002\nunit = R051\n"
                       "station = 59 ST\nlinename = NQR456W\ndivision = BMT\n\n";

    snprintf(text, sizeof text, "%s[device g]\nkind = http\nurl = https://10.0.0.1/c\n"
             "token_env = GATE_TOKEN\nca_file = /etc/ca.pem\n[turnstile t]\ndevice = g\n"
             "scp = 01-00-00\nentries_path = /gates/0/in\nexits_path = /gates/0/out\n"
             "[turnstile u]\ndevice = g\nscp = 01-00-01\nentries_path = /gates/1/in\n"
             "exits_path = /gates/1/out\nwidth = 32\n", head);
    load_ok(text, &cfg);
    assert_int_equal(cfg.devices[0]->kind, TS_HAL_HTTP);
    assert_string_equal(cfg.turnstiles[0]->entries_path, "/gates/0/in");
    assert_int_equal(cfg.turnstiles[0]->width, 64);
    assert_int_equal(cfg.turnstiles[1]->width, 32);
    assert_int_equal(cfg.devices[0]->timeout_ms, 2000);
    assert_int_equal(cfg.devices[0]->max_response_bytes, 65536);
    assert_int_equal(cfg.devices[0]->max_json_depth, 16);
    ts_agent_cfg_free(&cfg);

    snprintf(text, sizeof text, "%s[device g]\nkind = http\nurl = ftp://10.0.0.1/c\n"
             "[device h]\nkind = http\nurl = http://10.0.0.1/c\nca_file = /etc/ca.pem\n"
             "token_file = /etc/t\ntoken_env = T\ntimeout_ms = 500\nconnect_timeout_ms = 900\n"
             "[device i]\nkind = http\nurl = http://h/\ntoken_env = 9X\nmax_json_depth = 100\n"
             "[device j]\nkind = http\n"
             "[turnstile t]\ndevice = h\nscp = 01-00-00\nentries_path = gates.0.in\n",
             head);
    load_errors(text, &cfg);
    ASSERT_ERRORS(&cfg, ":12: [device g] url: must begin with http:// or https://",
                  ":16: [device h] ca_file: only for an https:// url",
                  ":18: [device h] token_env: token_file and token_env exclude each other",
                  ":20: [device h] connect_timeout_ms: must not be above timeout_ms (500)",
                  ":24: [device i] token_env: not an environment variable name",
                  ":25: [device i] max_json_depth: 100 is out of range",
                  ":26: [device j] url: required for kind http",
                  ":28: [turnstile t] exits_path: required for an http device",
                  ":31: [turnstile t] entries_path: a JSON Pointer begins with /");
    ts_agent_cfg_free(&cfg);
}

/* "[agent]...[device x]\n<kind lines><device extra>[turnstile t]\n...<turnstile extra>" */
static int kind_config(char *text, size_t size, size_t k, const char *device_extra,
                       const char *turnstile_extra)
{
    int n = snprintf(text, size, "%.*s[device x]\n%s%s[turnstile t]\ndevice = x\nscp = 01-00-00\n%s%s",
                     (int)(strstr(good_head, "\n\n") + 2 - good_head), good_head,
                     device_kinds[k].device_lines, device_extra, device_kinds[k].turnstile_lines,
                     turnstile_extra);
    assert_true(n > 0 && (size_t)n < size);
    int lines = 0;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    return lines; /* the number of the last line */
}

/* A key is accepted in a device (or a turnstile of a device) of a kind it is
 * for, and is an error naming its line in one of every other kind. Before:
 * every key was accepted in every device (`host` on a gpio device). */
static void keys_for_another_kind_are_errors(void **state)
{
    char text[4096], line[160], expected[256];
    struct ts_agent_cfg cfg;

    for (size_t k = 0; k < sizeof device_kinds / sizeof device_kinds[0]; k++) {
        const char *kind = device_kinds[k].name;
        for (size_t i = 0; i < sizeof device_keys / sizeof device_keys[0]; i++) {
            if (strstr(device_kinds[k].device_lines, device_keys[i].key))
                continue; /* the kind's own required key */
            snprintf(line, sizeof line, "%s = %s\n", device_keys[i].key, device_keys[i].value);
            int last = kind_config(text, sizeof text, k, line, "");
            int at = last - 3 - (int)(strchr(device_kinds[k].turnstile_lines, '\n') != NULL) -
                     (int)(strstr(device_kinds[k].turnstile_lines, "\nexit") != NULL);
            if (device_keys[i].kinds & device_kinds[k].bit) {
                load_ok(text, &cfg);
            } else {
                snprintf(expected, sizeof expected, ":%d: [device x] %s: means nothing for kind %s (only for",
                         at, device_keys[i].key, kind);
                load_errors(text, &cfg);
                ASSERT_ERRORS(&cfg, expected);
            }
            ts_agent_cfg_free(&cfg);
        }
        for (size_t i = 0; i < sizeof turnstile_keys / sizeof turnstile_keys[0]; i++) {
            if (strstr(device_kinds[k].turnstile_lines, turnstile_keys[i].key))
                continue; /* already there */
            snprintf(line, sizeof line, "%s = %s\n", turnstile_keys[i].key, turnstile_keys[i].value);
            int last = kind_config(text, sizeof text, k, "", line);
            if (turnstile_keys[i].kinds & device_kinds[k].bit) {
                load_ok(text, &cfg);
            } else {
                snprintf(expected, sizeof expected,
                         ":%d: [turnstile t] %s: means nothing for a turnstile of %s device 'x' (only for",
                         last, turnstile_keys[i].key, kind);
                load_errors(text, &cfg);
                ASSERT_ERRORS(&cfg, expected);
            }
            ts_agent_cfg_free(&cfg);
        }
    }
    /* the wording names every kind the key is for */
    kind_config(text, sizeof text, 2, "slave_id = 3\nhost = h\n", "width = 16\n");
    load_errors(text, &cfg);
    ASSERT_ERRORS(&cfg, "slave_id: means nothing for kind gpio (only for modbus-tcp and modbus-rtu)",
                  "host: means nothing for kind gpio (only for modbus-tcp)",
                  "width: means nothing for a turnstile of gpio device 'x' (only for modbus-tcp, "
                  "modbus-rtu, sim and http)");
    ts_agent_cfg_free(&cfg);
}

/* --- suggestions ----------------------------------------------------------- */

static void unknown_keys_suggest_a_close_one(void **state)
{
    char text[4096];
    const struct { const char *line, *expected; } close[] = {
        {"pol_interval_ms = 500", "pol_interval_ms: unknown key; did you mean 'poll_interval_ms'?"},
        {"Poll-Interval-MS = 500", "Poll-Interval-MS: unknown key; did you mean 'poll_interval_ms'?"},
        {"staion = 59 ST", "staion: unknown key; did you mean 'station'?"},
        {"recovred_after_pols = 3", "unknown key; did you mean 'recovered_after_polls'?"},
        {"tiemzone = UTC", "tiemzone: unknown key; did you mean 'timezone'?"},
    };
    for (size_t i = 0; i < sizeof close / sizeof close[0]; i++) {
        head_with_line_2(text, sizeof text, close[i].line);
        EXPECT(text, "", ":2: [agent] ", close[i].expected);
    }
    EXPECT(good_head, "[device d2]\nkind = modbus-tcp\nhots = h\n", ":22:",
           "[device d2] hots: unknown key; did you mean 'host'?");
    EXPECT(good_head, "[device d2]\nkind = modbus-rtu\nserial_port = /dev/ttyS1\nstop_bit = 1\n",
           ":23:", "stop_bit: unknown key; did you mean 'stop_bits'?");
    EXPECT(good_head, "exit_adress = 4\n", ":20:", "exit_adress: unknown key; did you mean 'exits_address'?");
    EXPECT(good_head, "[devcie d2]\n", ":20:", "unknown section kind 'devcie'; did you mean 'device'?");

    /* far from every key: no suggestion */
    const char *far[] = {"colour = red", "interval = 5", "ip = 10.0.0.1", "x = 1",
                         "poll = 1000", "hostname = h", "zzzzzzzzzzzzzzzz = 1"};
    for (size_t i = 0; i < sizeof far / sizeof far[0]; i++) {
        struct ts_agent_cfg cfg;
        char key[32];
        head_with_line_2(text, sizeof text, far[i]);
        load_errors(text, &cfg);
        snprintf(key, sizeof key, "%.*s", (int)(strchr(far[i], ' ') - far[i]), far[i]);
        char expected[96];
        snprintf(expected, sizeof expected, ":2: [agent] %s: unknown key", key);
        ASSERT_ERRORS(&cfg, expected);
        if (strstr(cfg.file.errors[0].text, "did you mean")) {
            fprintf(stderr, "a far-off suggestion: %s\n", cfg.file.errors[0].text);
            fail();
        }
        ts_agent_cfg_free(&cfg);
    }
    EXPECT(good_head, "[colour x]\n", ":20:", "unknown section kind 'colour'");
    struct ts_agent_cfg cfg;
    snprintf(text, sizeof text, "%s[colour x]\n", good_head);
    load_errors(text, &cfg);
    assert_null(strstr(cfg.file.errors[0].text, "did you mean"));
    ts_agent_cfg_free(&cfg);

    /* the key it suggests counts as set until the section sets it: the typo is the one
     * error (no "required"), and setting the key after it is not "set twice" */
    snprintf(text, sizeof text, "%s[turnstile t2]\ndevice = gate\nscp = 02-00-01\nentries_adress = 4\n"
             "exits_address = 6\n[device d2]\nkind = modbus-tcp\nhots = h\nhost = h\nhots = i\n", good_head);
    load_errors(text, &cfg);
    ASSERT_ERRORS(&cfg, ":23: [turnstile t2] entries_adress: unknown key; did you mean 'entries_address'?",
                  ":27: [device d2] hots: unknown key; did you mean 'host'?",
                  ":29: [device d2] hots: unknown key; did you mean 'host'?");
    assert_string_equal(cfg.devices[1]->host, "h");
    ts_agent_cfg_free(&cfg);

    /* a key of another section says where it belongs */
    EXPECT(good_head, "baud = 9600\n", ":20:", "[turnstile t1] baud: unknown key; it belongs in [device NAME]");
    head_with_line_2(text, sizeof text, "host = h");
    EXPECT(text, "", ":2:", "[agent] host: unknown key; it belongs in [mqtt] or [device NAME]");
}

/* --- the cap ------------------------------------------------------------------ */

/* At most TS_CFG_ERRORS_MAX errors are kept; the rest are counted and the
 * report says how many. A file of a million bad lines neither prints a
 * million lines nor keeps them. */
static void errors_are_capped(void **state)
{
    size_t cap = strlen(good_head) + 150 * 32, n;
    char *text = malloc(cap);
    struct ts_agent_cfg cfg;
    assert_non_null(text);
    n = (size_t)snprintf(text, cap, "%s", good_head);
    for (int i = 0; i < 150; i++)
        n += (size_t)snprintf(text + n, cap - n, "colour%d = red\n", i);
    load_errors(text, &cfg);
    free(text);
    assert_int_equal(cfg.file.n_errors, TS_CFG_ERRORS_MAX);
    assert_int_equal(cfg.file.n_more, 150 - TS_CFG_ERRORS_MAX);
    assert_non_null(strstr(cfg.file.errors[0].text, ":20: [turnstile t1] colour0: unknown key"));
    assert_non_null(strstr(cfg.file.errors[99].text, ":119: [turnstile t1] colour99: unknown key"));

    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    assert_non_null(f);
    assert_int_equal(ts_config_print_errors(&cfg.file, "turnstile-agent", f), TS_CFG_ERRORS_MAX + 1);
    fclose(f);
    ts_agent_cfg_free(&cfg);
    size_t lines = 0;
    for (size_t i = 0; i < out_len; i++)
        lines += out[i] == '\n';
    assert_int_equal(lines, TS_CFG_ERRORS_MAX + 1);
    assert_true(strncmp(out, "turnstile-agent: /tmp/ts-config-test-", 37) == 0);
    char last[128];
    snprintf(last, sizeof last, "\nturnstile-agent: %s: ... and 50 more errors\n", path);
    assert_non_null(strstr(out, last));
    assert_true(out_len > strlen(last) && strcmp(out + out_len - strlen(last), last) == 0);
    free(out);

    /* the largest file read, every line an error */
    size_t len = TS_CFG_FILE_MAX;
    char *big = malloc(len);
    assert_non_null(big);
    for (size_t i = 0; i < len; i += 2)
        memcpy(big + i, "x\n", 2);
    write_bytes(path, big, len);
    free(big);
    char err[512];
    assert_int_equal(ts_agent_cfg_load(path, &cfg, err, sizeof err), TS_ECONFIG);
    assert_int_equal(cfg.file.n_errors, TS_CFG_ERRORS_MAX);
    /* every line, then "[agent] section is missing" and "no [turnstile] section" */
    assert_int_equal(cfg.file.n_errors + cfg.file.n_more, len / 2 + 2);
    assert_non_null(strstr(err, ":1: syntax error"));
    ts_agent_cfg_free(&cfg);
}

static void sections_take_nothing_after_the_header(void **state)
{
    EXPECT("[agent] id = a1\n", "", ":1:", "text after the section header");
    struct ts_agent_cfg cfg;
    char text[4096];
    snprintf(text, sizeof text, "[agent] ; the agent\n%s", good_head + strlen("[agent]\n"));
    load_ok(text, &cfg);
    assert_string_equal(cfg.agent.agent_id, "ctrl-01");
    ts_agent_cfg_free(&cfg);
}

/* Indented keys are keys. Before: inih took an indented line after a key as
 * a continuation of that key's value ("set twice"). */
static void indented_keys_are_keys(void **state)
{
    char text[4096];
    struct ts_agent_cfg cfg;
    snprintf(text, sizeof text, "[agent]\n  id = ctrl-01\n\tstation_id = R051\n%s",
             strstr(good_head, "ca = "));
    load_ok(text, &cfg);
    assert_string_equal(cfg.agent.station_id, "R051");
    ts_agent_cfg_free(&cfg);
}

static void byte_order_mark_is_skipped(void **state)
{
    char text[4096];
    struct ts_agent_cfg cfg;
    snprintf(text, sizeof text, "\xEF\xBB\xBF%s", good_head);
    load_ok(text, &cfg);
    assert_string_equal(cfg.agent.agent_id, "ctrl-01");
    ts_agent_cfg_free(&cfg);
}

/* Before: fgets read past the NUL, inih saw only "id = ctrl-01" and the rest
 * of the line vanished. */
static void nul_byte_is_an_error(void **state)
{
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof text, "%s", good_head);
    memcpy(text + n, "ca = A0\0 poll_interval_ms = 250\n", 32);
    write_bytes(path, text, n + 32);
    EXPECT_FILE(path, ":20: holds a NUL byte");
}

/* Before: each of these hung for ever (fopen of a FIFO waits for a writer;
 * /dev/zero never ends) or, for a directory, read nothing. */
static void only_regular_files_are_read(void **state)
{
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    alarm(20); /* a hang is a failure (SIGALRM ends the test), never a stuck suite */
    EXPECT_FILE("/dev/zero", "/dev/zero: is a character device, not a regular file");
    EXPECT_FILE(fifo, ": is a FIFO, not a regular file");
    EXPECT_FILE("/tmp", "/tmp: is a directory, not a regular file");
    alarm(0);
    unlink(fifo);
}

static void file_size_and_sections_are_bounded(void **state)
{
    size_t len = TS_CFG_FILE_MAX + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, '#', len);
    for (size_t i = 100; i < len; i += 100)
        big[i] = '\n';
    write_bytes(path, big, len);
    EXPECT_FILE(path, ": larger than 1048576 bytes");
    free(big);

    size_t cap = (TS_CFG_SECTIONS_MAX + 2) * 20, n = 0;
    char *many = malloc(cap);
    assert_non_null(many);
    for (int i = 0; i <= TS_CFG_SECTIONS_MAX; i++)
        n += (size_t)snprintf(many + n, cap - n, "[device d%d]\n", i);
    write_bytes(path, many, n);
    EXPECT_FILE(path, ":1025: [device d1024] more than 1024 sections");
    free(many);
}

/* Bytes that are not printable ASCII are shown as \xNN in the error line:
 * keys, values, section names and the file name. */
static void control_bytes_are_escaped(void **state)
{
    EXPECT(good_head, "col\x01our\x1b[2J = red\n", ":20:", "[turnstile t1] col\\x01our\\x1b[2J: unknown key");
    EXPECT(good_head, "\xff\xfe = 1\n", ":20:", "\\xff\\xfe: unknown key");
    EXPECT(good_head, "width = 4\x08\x08" "32\n", ":20:", "width: '4\\x08\\x0832' is not one of");
    EXPECT(good_head, "[device a\x1b[31m\x07]\n", ":20:", "[device a\\x1b[31m\\x07] bad section name 'a\\x1b[31m\\x07'");
    EXPECT(good_head, "[gate\x7f x]\n", ":20:", "unknown section kind 'gate\\x7f'");
    /* a text value may not hold a control character at all (it would reach logs and sockets) */
    EXPECT(good_head, "[device g2]\nkind = modbus-tcp\nhost = evil\x1b[31m\n", ":22:", "host",
           "control character");

    char odd[80];
    snprintf(odd, sizeof odd, "/tmp/ts-config-test-%d-\x1b[31m\xe9.conf", (int)getpid());
    char text[4096];
    snprintf(text, sizeof text, "%scolour = red\n", good_head);
    write_bytes(odd, text, strlen(text));
    char err[512] = "";
    struct ts_agent_cfg cfg;
    assert_int_equal(ts_agent_cfg_load(odd, &cfg, err, sizeof err), TS_ECONFIG);
    ts_agent_cfg_free(&cfg);
    unlink(odd);
    assert_printable(err);
    assert_non_null(strstr(err, "-\\x1b[31m\\xe9.conf:20: [turnstile t1] colour: unknown key"));
}

/* --config-doc's ranges are written as a value would be in the file: integers in plain
 * digits, never 3.6e+06 (issue 15), fractions as they are. */
static void doc_ranges(void **state)
{
    (void)state;
    struct demo {
        int i;
        long long big;
        double d;
    };
    static const struct ts_cfg_key keys[] = {
        {"i", TS_CFG_INT, offsetof(struct demo, i), sizeof(int), 100, 3600000, "1000", NULL, NULL, 0, "an int", 0},
        {"big", TS_CFG_INT64, offsetof(struct demo, big), sizeof(long long), -1e15, 1e15, "0", NULL, NULL, 0, "an int64", 0},
        {"d", TS_CFG_DOUBLE, offsetof(struct demo, d), sizeof(double), 0.001, 1e7, "1", NULL, NULL, 0, "a double", 0},
    };
    static const struct ts_cfg_section sections[] = {{"x", 0, keys, 3, 0, 0, "a section", NULL, NULL, NULL, NULL, NULL, NULL}};
    static const struct ts_cfg_schema schema = {sections, 1};
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    ts_config_doc(&schema, f);
    fclose(f);
    assert_non_null(strstr(out, "| `i` | integer | 100 .. 3600000 | 1000 |"));
    assert_non_null(strstr(out, " | -1000000000000000 .. 1000000000000000 | 0 |"));
    assert_non_null(strstr(out, "| `d` | number | 0.001 .. 10000000 | 1 |"));
    free(out);

    /* the agent's own table: no exponent anywhere */
    f = open_memstream(&out, &len);
    assert_non_null(f);
    ts_agent_cfg_doc(f);
    fclose(f);
    assert_null(strstr(out, "e+"));
    assert_non_null(strstr(out, "| `poll_interval_ms` | integer | 100 .. 3600000 |"));
    free(out);
}

/* Integers are decimal or 0x hexadecimal, never octal; doubles are finite. */
static void numbers(void **state)
{
    char text[4096];
    struct ts_agent_cfg cfg;
    snprintf(text, sizeof text, "%s", good_head);
    char *port = strstr(text, "port = 1502");
    memcpy(port, "port = 0x5de", 12); /* 1502 */
    load_ok(text, &cfg);
    assert_int_equal(cfg.devices[0]->port, 1502);
    ts_agent_cfg_free(&cfg);
    memcpy(port, "port = 0010\n", 12); /* ten, not eight */
    load_ok(text, &cfg);
    assert_int_equal(cfg.devices[0]->port, 10);
    ts_agent_cfg_free(&cfg);

    EXPECT(good_head, "entries_address = 08\nexits_address = 0x0a\n", ":20:", "entries_address", "set twice");
    const char *bad_ints[] = {"", "0x", "x10", "1 2", "--1", "+-1", "1e3", "12abc", "0x1g",
                              "99999999999999999999", "2147483648"};
    for (size_t i = 0; i < sizeof bad_ints / sizeof bad_ints[0]; i++) {
        char tail[64];
        snprintf(tail, sizeof tail, "[device g%zu]\nkind = modbus-tcp\nhost = h\nport = %s\n", i,
                 bad_ints[i]);
        EXPECT(good_head, tail, ":23:", "port");
    }
    const char *bad_doubles[] = {"nan", "NaN", "inf", "-inf", "infinity", "1e999", "", "1.5x"};
    for (size_t i = 0; i < sizeof bad_doubles / sizeof bad_doubles[0]; i++) {
        char tail[64];
        snprintf(tail, sizeof tail, "max_rate_per_min = %s\n", bad_doubles[i]);
        EXPECT(good_head, tail, ":20:", "max_rate_per_min", "not a number");
    }
}


/* The command line's numbers (common/cli.h) follow the same rules. */
static void command_line_numbers(void **state)
{
    char why[200];
    double d = -7;
    int i = -7;
    uint64_t u = 7;

    const char *bad_doubles[] = {"", " 5", "5 ", "nan", "NAN", "nan(1)", "inf", "-inf", "Infinity",
                                 "0x10", "0x1p3", "1e", "1..2", "5x", "+", "-", ".", "e5", "1e999",
                                 "1e-400", "1e300", "-1", "0", "0.0009", "\x01"};
    for (size_t k = 0; k < sizeof bad_doubles / sizeof bad_doubles[0]; k++) {
        why[0] = '\0';
        assert_int_equal(ts_parse_double(bad_doubles[k], 0.001, 31536000, &d, why, sizeof why), TS_EINVAL);
        assert_true(d == -7);
        assert_true(why[0] != '\0');
        assert_printable(why);
    }
    assert_non_null(strstr((ts_parse_double("1e300", 0.001, 31536000, &d, why, sizeof why), why),
                           "'1e300' is out of range [0.001, 31536000]"));
    assert_non_null(strstr((ts_parse_double("\x1b[2J", 0, 1, &d, why, sizeof why), why), "\\x1b[2J"));
    assert_int_equal(ts_parse_double(NULL, 0, 1, &d, NULL, 0), TS_EINVAL);
    const struct { const char *text; double v; } good_doubles[] = {
        {"2", 2}, {"0.5", 0.5}, {".5", 0.5}, {"5.", 5}, {"+3", 3}, {"1e3", 1000}, {"1E-3", 0.001},
        {"31536000", 31536000}};
    for (size_t k = 0; k < sizeof good_doubles / sizeof good_doubles[0]; k++) {
        assert_int_equal(ts_parse_double(good_doubles[k].text, 0.001, 31536000, &d, why, sizeof why), TS_OK);
        assert_true(d == good_doubles[k].v);
    }

    const char *bad_ints[] = {"", " 1", "1 ", "0x10", "1e3", "1.0", "nan", "--1", "+-1", "5x",
                              "2147483648", "99999999999999999999", "-1", "9"};
    for (size_t k = 0; k < sizeof bad_ints / sizeof bad_ints[0]; k++) {
        assert_int_equal(ts_parse_int(bad_ints[k], 0, 8, &i, why, sizeof why), TS_EINVAL);
        assert_int_equal(i, -7);
    }
    assert_int_equal(ts_parse_int("010", 0, 100, &i, NULL, 0), TS_OK);
    assert_int_equal(i, 10);
    assert_int_equal(ts_parse_int("-2147483648", INT_MIN, INT_MAX, &i, NULL, 0), TS_OK);
    assert_int_equal(i, INT_MIN);

    const char *bad_u64s[] = {"", "-1", "+1", "-0", " 1", "18446744073709551616", "1e3", "0x1", "5x"};
    for (size_t k = 0; k < sizeof bad_u64s / sizeof bad_u64s[0]; k++) {
        assert_int_equal(ts_parse_u64(bad_u64s[k], 0, UINT64_MAX, &u, why, sizeof why), TS_EINVAL);
        assert_true(u == 7);
    }
    assert_int_equal(ts_parse_u64("18446744073709551615", 0, UINT64_MAX, &u, NULL, 0), TS_OK);
    assert_true(u == UINT64_MAX);
    assert_int_equal(ts_parse_u64("5", 6, 9, &u, NULL, 0), TS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_config_loads_with_defaults),
        cmocka_unit_test(missing_file),
        cmocka_unit_test(unknown_key),
        cmocka_unit_test(value_out_of_range),
        cmocka_unit_test(duplicate_turnstile),
        cmocka_unit_test(bad_register_map),
        cmocka_unit_test(unknown_device),
        cmocka_unit_test(identifiers_that_would_break_the_csv),
        cmocka_unit_test(structure_errors),
        cmocka_unit_test(rtu_line_conflicts),
        cmocka_unit_test(bad_timezone),
        cmocka_unit_test(gpio_lines),
        cmocka_unit_test(long_comment_is_an_error_not_split),
        cmocka_unit_test(long_value_is_an_error),
        cmocka_unit_test(longest_line_is_whole_and_later_lines_keep_their_numbers),
        cmocka_unit_test(first_error_comes_first),
        cmocka_unit_test(every_error_is_reported),
        cmocka_unit_test(a_refused_value_is_one_error),
        cmocka_unit_test(keys_for_another_kind_are_errors),
        cmocka_unit_test(http_keys_are_checked),
        cmocka_unit_test(unknown_keys_suggest_a_close_one),
        cmocka_unit_test(errors_are_capped),
        cmocka_unit_test(sections_take_nothing_after_the_header),
        cmocka_unit_test(indented_keys_are_keys),
        cmocka_unit_test(byte_order_mark_is_skipped),
        cmocka_unit_test(nul_byte_is_an_error),
        cmocka_unit_test(only_regular_files_are_read),
        cmocka_unit_test(file_size_and_sections_are_bounded),
        cmocka_unit_test(control_bytes_are_escaped),
        cmocka_unit_test(numbers),
        cmocka_unit_test(doc_ranges),
        cmocka_unit_test(command_line_numbers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
