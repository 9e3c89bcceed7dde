/* Config validation: every bad config gets one line naming file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_config.h"
#include "err.h"

static char path[64];

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

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Loads head + tail; expects failure with an error holding every needle. */
static void expect_error(const char *head, const char *tail, const char *const needles[])
{
    char text[4096], err[512] = "";
    struct ts_agent_cfg cfg;

    snprintf(text, sizeof text, "%s%s", head, tail);
    write_file(text);
    int rc = ts_agent_cfg_load(path, &cfg, err, sizeof err);
    ts_agent_cfg_free(&cfg);
    if (rc != TS_ECONFIG) {
        fprintf(stderr, "accepted:\n%s\n", text);
        fail();
    }
    assert_non_null(strstr(err, path));
    for (int i = 0; needles[i]; i++) {
        if (!strstr(err, needles[i])) {
            fprintf(stderr, "error '%s' lacks '%s'\n", err, needles[i]);
            fail();
        }
    }
    assert_null(strchr(err, '\n'));
}

#define EXPECT(head, tail, ...) expect_error(head, tail, (const char *const[]){__VA_ARGS__, NULL})

static int setup(void **state)
{
    snprintf(path, sizeof path, "/tmp/ts-config-test-%d.conf", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    unlink(path);
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
