/* SPDX-License-Identifier: Apache-2.0 */
/* The HAL's Modbus RTU backend over a real serial line: a socat pseudo-terminal
 * pair with turnstile-sim serving three slaves on one end and the agent's
 * poller on the other. One line, one poller thread, slaves one after another. */
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
#include "harness.h"
#include "poller.h"

static char line_a[300], line_b[300];

static int start_line(struct proc *socat, struct proc *sim)
{
    char buf[512];
    if (socat_start(socat, temp_dir()))
        return -1;
    char *argv[] = {(char *)bin_path("turnstile-sim"), "--rtu", line_a, "--baud", "38400",
                    "--slaves", "1,2,3", "--generate", "--turnstiles", "2", NULL};
    if (proc_start(sim, argv) || !proc_expect(sim, "listening rtu", buf, sizeof buf, 10000))
        return -1;
    return proc_command(sim, "pause") ? 0 : -1;
}

static void load_config(struct ts_agent_cfg *cfg)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/rtu.conf", temp_dir());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[agent]\nid = test-agent\nstation_id = S1\nca = A002\nunit = R051\n"
               "station = 59 ST\nlinename = NQR456W\ndivision = BMT\npoll_interval_ms = 100\n");
    for (int s = 1; s <= 3; s++) {
        fprintf(f, "[device slave%d]\nkind = modbus-rtu\nserial_port = %s\nbaud = 38400\n"
                   "slave_id = %d\nframe_delay_ms = 2\nresponse_timeout_ms = 200\n"
                   "retries = 0\nbackoff_min_ms = 300\nbackoff_max_ms = 600\n",
                s, line_b, s);
        for (int k = 0; k < 2; k++)
            fprintf(f, "[turnstile s%dt%d]\ndevice = slave%d\nscp = 0%d-00-0%d\n"
                       "entries_address = %d\nexits_address = %d\n",
                    s, k, s, s, k, k * 4, k * 4 + 2);
    }
    fclose(f);
    int rc = ts_agent_cfg_load(path, cfg, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, TS_OK);
}

struct seen {
    size_t count[3];
    uint64_t entries[6], exits[6];
};

static void collect(struct ts_poller *p, const struct ts_agent_cfg *cfg, int ms, struct seen *seen)
{
    struct ts_sample s[256];
    long long deadline = mono_ms() + ms;
    memset(seen, 0, sizeof *seen);
    while (mono_ms() < deadline) {
        size_t n = ts_poller_take(p, s, 256, 50);
        for (size_t i = 0; i < n; i++) {
            seen->count[cfg->turnstiles[s[i].turnstile]->device_index]++;
            seen->entries[s[i].turnstile] = s[i].entries;
            seen->exits[s[i].turnstile] = s[i].exits;
        }
    }
}

static void three_slaves_on_one_line(void **state)
{
    struct proc socat, sim;
    struct ts_agent_cfg cfg;
    struct ts_poller *p;
    struct ts_device_stats st;
    struct seen seen;

    snprintf(line_a, sizeof line_a, "%s/a", temp_dir());
    snprintf(line_b, sizeof line_b, "%s/b", temp_dir());
    assert_int_equal(start_line(&socat, &sim), 0);
    for (int s = 1; s <= 3; s++)
        for (int k = 0; k < 2; k++)
            assert_true(proc_command(&sim, "set %d %d %d %d", s, k, 1000 * s + k, 2000 * s + k));
    load_config(&cfg);
    assert_int_equal(ts_poller_new(&cfg, &p), TS_OK);
    assert_int_equal(ts_poller_start(p), TS_OK);

    /* every slave answers with its own registers */
    collect(p, &cfg, 1500, &seen);
    for (int s = 0; s < 3; s++) {
        assert_true(seen.count[s] >= 4);
        for (int k = 0; k < 2; k++) {
            assert_int_equal(seen.entries[s * 2 + k], 1000 * (s + 1) + k);
            assert_int_equal(seen.exits[s * 2 + k], 2000 * (s + 1) + k);
        }
    }

    /* a dead slave is backed off; its neighbours on the line go on */
    assert_true(proc_command(&sim, "silent 2 on"));
    assert_true(proc_command(&sim, "exception 3 4"));
    collect(p, &cfg, 2000, &seen);
    assert_true(seen.count[0] >= 8);
    ts_poller_device_stats(p, 1, &st);
    assert_true(st.timeouts >= 2);
    assert_int_equal(st.link, TS_LINK_BACKOFF);
    ts_poller_device_stats(p, 2, &st);
    assert_true(st.exceptions >= 2);
    assert_int_equal(st.last_error, TS_EDEVICE_BASE + 4);
    ts_poller_device_stats(p, 0, &st);
    assert_int_equal(st.link, TS_LINK_UP);

    assert_true(proc_command(&sim, "silent 2 off"));
    assert_true(proc_command(&sim, "exception 3 off"));
    collect(p, &cfg, 1500, &seen);
    assert_true(seen.count[1] >= 2 && seen.count[2] >= 2);

    /* the serial port goes away (USB adapter pulled): faults, no crash */
    proc_stop(&sim);
    proc_stop(&socat);
    collect(p, &cfg, 500, &seen); /* drop samples read before the line went */
    collect(p, &cfg, 1000, &seen);
    assert_int_equal(seen.count[0] + seen.count[1] + seen.count[2], 0);
    ts_poller_device_stats(p, 0, &st);
    assert_true(st.errors >= 1);
    assert_int_not_equal(st.link, TS_LINK_UP);

    /* ... and comes back: the line is reopened and every slave read again */
    assert_int_equal(start_line(&socat, &sim), 0);
    collect(p, &cfg, 2500, &seen);
    for (int s = 0; s < 3; s++)
        assert_true(seen.count[s] >= 2);

    ts_poller_free(p);
    ts_agent_cfg_free(&cfg);
    proc_stop(&sim);
    proc_stop(&socat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(three_slaves_on_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
