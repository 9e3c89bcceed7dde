/* Config validation: every bad config gets one line naming file, line and key. */
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

/* Loads file; expects failure with an error holding every needle. */
static void expect_file_error(const char *file, const char *const needles[])
{
    char err[512] = "";
    struct ts_agent_cfg cfg;

    int rc = ts_agent_cfg_load(file, &cfg, err, sizeof err);
    ts_agent_cfg_free(&cfg);
    if (rc != TS_ECONFIG) {
        fprintf(stderr, "%s accepted (rc %d)\n", file, rc);
        fail();
    }
    if (strncmp(err, file, strlen(file)) != 0) {
        fprintf(stderr, "error '%s' does not start with the file name\n", err);
        fail();
    }
    for (int i = 0; needles[i]; i++) {
        if (!strstr(err, needles[i])) {
            fprintf(stderr, "error '%s' lacks '%s'\n", err, needles[i]);
            fail();
        }
    }
    assert_null(strchr(err, '\n'));
    assert_printable(err);
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

#define EXPECT(head, tail, ...) expect_error(head, tail, (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_FILE(file, ...) expect_file_error(file, (const char *const[]){__VA_ARGS__, NULL})

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

/* The first error in the file is the one reported. Before: inih went on past
 * a syntax error, and a later bad key named its own line. */
static void first_error_wins(void **state)
{
    EXPECT(good_head, "this is not ini\ncolour = red\n", ":20:", "syntax error");
    EXPECT(good_head, "[turnstile t2\ndevice = gate\n", ":20:", "without ']'");
    EXPECT(good_head, "= 5\ncolour = red\n", ":20:", "key name is missing");
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
        cmocka_unit_test(first_error_wins),
        cmocka_unit_test(sections_take_nothing_after_the_header),
        cmocka_unit_test(indented_keys_are_keys),
        cmocka_unit_test(byte_order_mark_is_skipped),
        cmocka_unit_test(nul_byte_is_an_error),
        cmocka_unit_test(only_regular_files_are_read),
        cmocka_unit_test(file_size_and_sections_are_bounded),
        cmocka_unit_test(control_bytes_are_escaped),
        cmocka_unit_test(numbers),
        cmocka_unit_test(command_line_numbers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
