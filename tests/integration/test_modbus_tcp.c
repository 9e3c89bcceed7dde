/* SPDX-License-Identifier: Apache-2.0 */
/* The HAL's Modbus TCP backend against a real libmodbus server (turnstile-sim),
 * with each fault injected. */
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

/* Writes a config for devices on the given ports (one device per port, two
 * turnstiles each) and loads it. */
static void load_config(struct ts_agent_cfg *cfg, const int *ports, int n, unsigned width,
                        const char *order, const char *extra_device)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/tcp-%d.conf", temp_dir(), ports[0]);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[agent]\nid = test-agent\nstation_id = S1\nca = A002\nunit = R051\n"
               "station = 59 ST\nlinename = NQR456W\ndivision = BMT\npoll_interval_ms = 100\n");
    int regs = (int)width / 16;
    for (int d = 0; d < n; d++) {
        fprintf(f, "[device dev%d]\nkind = modbus-tcp\nhost = 127.0.0.1\nport = %d\n"
                   "response_timeout_ms = 300\nbyte_timeout_ms = 100\nretries = 0\n"
                   "backoff_min_ms = 200\nbackoff_max_ms = 400\n%s",
                d, ports[d], extra_device ? extra_device : "");
        for (int k = 0; k < 2; k++)
            fprintf(f, "[turnstile d%dt%d]\ndevice = dev%d\nscp = 0%d-00-0%d\nentries_address = %d\n"
                       "exits_address = %d\nwidth = %u\norder = %s\n",
                    d, k, d, d, k, k * 2 * regs, k * 2 * regs + regs, width, order);
    }
    fclose(f);
    int rc = ts_agent_cfg_load(path, cfg, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, TS_OK);
}

static struct ts_source *open_source(const struct ts_agent_cfg *cfg, size_t d)
{
    static const struct ts_turnstile_cfg *ts[8];
    size_t n = 0;
    struct ts_source *src;
    for (size_t i = 0; i < cfg->n_turnstiles; i++)
        if (cfg->turnstiles[i]->device_index == d)
            ts[n++] = cfg->turnstiles[i];
    assert_int_equal(ts_source_new(cfg->devices[d], ts, n, &src), TS_OK);
    return src;
}

static void decodes_every_width_and_order(void **state)
{
    static const char *const orders[] = {"ABCD", "CDAB", "BADC", "DCBA"};
    static const unsigned widths[] = {16, 32, 64};
    const uint64_t values[2][2] = {{0x0123456789ABCDEFull, 0x1122334455667788ull},
                                   {2147178400ull, 65535ull}};

    for (int w = 0; w < 3; w++) {
        for (int o = 0; o < 4; o++) {
            char wbuf[8];
            struct proc sim;
            struct ts_agent_cfg cfg;
            snprintf(wbuf, sizeof wbuf, "%u", widths[w]);
            const char *args[] = {"--generate", "--turnstiles", "2", "--width", wbuf,
                                  "--order", orders[o], NULL};
            int port = sim_start_tcp(&sim, args);
            assert_true(port > 0);
            assert_true(proc_command(&sim, "pause"));
            for (int k = 0; k < 2; k++)
                assert_true(proc_command(&sim, "set 1 %d %llu %llu", k,
                                         (unsigned long long)values[k][0],
                                         (unsigned long long)values[k][1]));
            load_config(&cfg, &port, 1, widths[w], orders[o], NULL);
            struct ts_source *src = open_source(&cfg, 0);
            uint64_t mask = widths[w] == 64 ? UINT64_MAX : (1ull << widths[w]) - 1;
            for (int k = 0; k < 2; k++) {
                uint64_t e = 0, x = 0;
                assert_int_equal(ts_source_read(src, (size_t)k, &e, &x), TS_OK);
                if (e != (values[k][0] & mask) || x != (values[k][1] & mask)) {
                    fprintf(stderr, "width %u order %s turnstile %d: got %llx %llx\n", widths[w],
                            orders[o], k, (unsigned long long)e, (unsigned long long)x);
                    fail();
                }
            }
            ts_source_free(src);
            ts_agent_cfg_free(&cfg);
            proc_stop(&sim);
        }
    }
}

static void faults_are_reported_and_survived(void **state)
{
    struct proc sim;
    struct ts_agent_cfg cfg;
    const char *args[] = {"--generate", "--turnstiles", "2", NULL};
    uint64_t e, x;

    int port = sim_start_tcp(&sim, args);
    assert_true(port > 0);
    load_config(&cfg, &port, 1, 32, "ABCD", NULL);
    struct ts_source *src = open_source(&cfg, 0);
    assert_int_equal(ts_source_read(src, 0, &e, &x), TS_OK);

    /* a silent slave: the client times out */
    assert_true(proc_command(&sim, "silent 1 on"));
    assert_int_equal(ts_source_read(src, 0, &e, &x), TS_ETIMEOUT);
    assert_true(proc_command(&sim, "silent 1 off"));
    assert_int_equal(ts_source_read(src, 0, &e, &x), TS_OK);

    /* exception responses come back as device errors, not retried */
    assert_true(proc_command(&sim, "exception 1 2"));
    assert_int_equal(ts_source_read(src, 1, &e, &x), TS_EDEVICE_BASE + 2);
    assert_true(proc_command(&sim, "exception 1 4"));
    assert_int_equal(ts_source_read(src, 1, &e, &x), TS_EDEVICE_BASE + 4);
    assert_true(proc_command(&sim, "exception 1 off"));
    assert_int_equal(ts_source_read(src, 1, &e, &x), TS_OK);

    /* slow answers: within the timeout fine, past it a timeout */
    assert_true(proc_command(&sim, "slow 1 50"));
    assert_int_equal(ts_source_read(src, 0, &e, &x), TS_OK);
    assert_true(proc_command(&sim, "slow 1 700"));
    assert_int_equal(ts_source_read(src, 0, &e, &x), TS_ETIMEOUT);
    assert_true(proc_command(&sim, "slow 1 off"));
    usleep(800000); /* let the late answer pass */
    assert_int_equal(ts_source_read(src, 0, &e, &x), TS_OK);

    /* the server goes away: an error, never a crash; it comes back: reads again */
    proc_stop(&sim);
    int err = ts_source_read(src, 0, &e, &x);
    assert_true(err == TS_ECONNECT || err == TS_EIO);
    assert_int_equal(ts_source_read(src, 0, &e, &x), TS_ECONNECT);
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    char *argv[] = {(char *)bin_path("turnstile-sim"), "--tcp", listen, "--generate",
                    "--turnstiles", "2", NULL};
    char line[128];
    assert_int_equal(proc_start(&sim, argv), 0);
    assert_true(proc_expect(&sim, "listening tcp", line, sizeof line, 10000));
    assert_int_equal(ts_source_read(src, 0, &e, &x), TS_OK);

    ts_source_free(src);
    ts_agent_cfg_free(&cfg);
    proc_stop(&sim);
}

/* Counts samples per device over a while. */
static void count_samples(struct ts_poller *p, int ms, size_t *per_device, const struct ts_agent_cfg *cfg)
{
    struct ts_sample s[256];
    long long deadline = mono_ms() + ms;
    while (mono_ms() < deadline) {
        size_t n = ts_poller_take(p, s, 256, 50);
        for (size_t i = 0; i < n; i++)
            per_device[cfg->turnstiles[s[i].turnstile]->device_index]++;
    }
}

static void a_dead_device_does_not_stall_the_others(void **state)
{
    struct proc a, b;
    struct ts_agent_cfg cfg;
    struct ts_poller *p;
    const char *args[] = {"--generate", "--turnstiles", "2", NULL};
    int ports[2];

    ports[0] = sim_start_tcp(&a, args);
    ports[1] = sim_start_tcp(&b, args);
    assert_true(ports[0] > 0 && ports[1] > 0);
    assert_true(proc_command(&b, "silent 1 on"));
    load_config(&cfg, ports, 2, 32, "ABCD", NULL);
    assert_int_equal(ts_poller_new(&cfg, &p), TS_OK);
    assert_int_equal(ts_poller_start(p), TS_OK);

    size_t counts[2] = {0, 0};
    count_samples(p, 2000, counts, &cfg);
    /* 100 ms polls for 2 s: about 20 polls of 2 turnstiles; the silent device
     * costs a 300 ms timeout per try but polls on another thread */
    assert_true(counts[0] >= 20);
    assert_int_equal(counts[1], 0);
    struct ts_device_stats st;
    ts_poller_device_stats(p, 1, &st);
    assert_true(st.timeouts >= 2);
    assert_int_equal(st.link, TS_LINK_BACKOFF);
    ts_poller_device_stats(p, 0, &st);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.link, TS_LINK_UP);

    /* the slave answers again: it comes back within the back-off */
    assert_true(proc_command(&b, "silent 1 off"));
    counts[0] = counts[1] = 0;
    count_samples(p, 1500, counts, &cfg);
    assert_true(counts[1] >= 2);
    ts_poller_device_stats(p, 1, &st);
    assert_int_equal(st.link, TS_LINK_UP);

    ts_poller_free(p);
    ts_agent_cfg_free(&cfg);
    proc_stop(&a);
    proc_stop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decodes_every_width_and_order),
        cmocka_unit_test(faults_are_reported_and_survived),
        cmocka_unit_test(a_dead_device_does_not_stall_the_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
