/* SPDX-License-Identifier: Apache-2.0 */
/* The tally: samples to readings, holding them while the clock cannot be
 * trusted, and its saved state (counters, GPIO counts) across a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent_config.h"
#include "clock.h"
#include "err.h"
#include "state_json.h"
#include "tally.h"

static char conf_path[64], clock_path[64];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void load2(struct ts_agent_cfg *cfg, const char *kind_lines, const char *t0, const char *t1)
{
    char text[2048], err[512];
    snprintf(text, sizeof text,
             "[agent]\nid = a1\nstation_id = S1\nca = A002\nunit = R051\nstation = 59 ST\n"
             "linename = NQR456W\ndivision = BMT\npoll_interval_ms = 1000\n"
             "[device d]\n%s\n[turnstile t0]\ndevice = d\nscp = 02-00-00\n%s\n"
             "[turnstile t1]\ndevice = d\nscp = 02-00-01\n%s\n",
             kind_lines, t0, t1);
    write_text(conf_path, text);
    int rc = ts_agent_cfg_load(conf_path, cfg, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, TS_OK);
}

static void load(struct ts_agent_cfg *cfg, const char *kind_lines, const char *turnstile_lines)
{
    load2(cfg, kind_lines, turnstile_lines, turnstile_lines);
}

static const char *modbus = "kind = modbus-tcp\nhost = 127.0.0.1";
static const char *regs = "entries_address = 0\nexits_address = 2";

static struct ts_sample sample(size_t t, uint64_t e, uint64_t x, int64_t mono)
{
    return (struct ts_sample){.turnstile = t, .entries = e, .exits = x, .mono_ms = mono};
}

static int setup(void **state)
{
    snprintf(conf_path, sizeof conf_path, "/tmp/ts-tally-%d.conf", (int)getpid());
    snprintf(clock_path, sizeof clock_path, "/tmp/ts-tally-%d.clock", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    unlink(conf_path);
    unlink(clock_path);
    return 0;
}

static void counts_and_stamps(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t;
    struct ts_reading out[TS_TALLY_MAX_OUT];
    int64_t now = ts_mono_ms();

    load(&cfg, modbus, regs);
    assert_int_equal(ts_tally_init(&t, &cfg), TS_OK);
    struct ts_sample s = sample(0, 1000, 500, now - 1000);
    assert_int_equal(ts_tally_sample(&t, &s, true, out), 1);
    assert_true(out[0].flags & TS_FLAG_FIRST);
    int64_t wall = ts_clock_wall_ms();
    assert_true(out[0].time_ms <= wall - 990 && out[0].time_ms >= wall - 1100);
    s = sample(0, 1007, 503, now);
    assert_int_equal(ts_tally_sample(&t, &s, true, out), 1);
    assert_int_equal(out[0].entries, 7);
    assert_int_equal(out[0].exits, 3);
    assert_string_equal(out[0].desc, "REGULAR");
    assert_string_equal(out[0].scp, "02-00-00");
    assert_string_equal(out[0].agent_id, "a1");
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

static void holds_while_the_clock_is_not_trusted(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t;
    struct ts_reading out[16];
    int64_t now = ts_mono_ms();

    load(&cfg, modbus, regs);
    assert_int_equal(ts_tally_init(&t, &cfg), TS_OK);
    /* ten polls while unsynchronised: nothing comes out */
    for (int i = 0; i < 10; i++) {
        /* one person in a second, and one out every other second */
        struct ts_sample s = sample(0, 1000 + (uint64_t)i, 500 + (uint64_t)i / 2, now - 10000 + i * 1000);
        assert_int_equal(ts_tally_sample(&t, &s, false, out), 0);
    }
    assert_int_equal(t.n_held, 1);
    /* synchronised: one held reading comes out with everybody of the period:
     * the first sample was the baseline, 9 in and 4 out since */
    size_t n = ts_tally_release(&t, out, 16);
    assert_int_equal(n, 1);
    assert_true(out[0].flags & TS_FLAG_FIRST);
    assert_true(out[0].flags & TS_FLAG_RECOVERED);
    assert_int_equal(out[0].entries, 9);
    assert_int_equal(out[0].exits, 4);
    assert_int_equal(out[0].entries_cum, 1009);
    assert_int_equal(out[0].exits_cum, 504);
    assert_string_equal(out[0].desc, "RECOVR AUD");
    /* stamped from the monotonic clock of the latest sample, 1 s ago (each
     * stamp reads the wall and monotonic clocks at millisecond resolution) */
    assert_in_range(ts_clock_wall_ms() - out[0].time_ms, 990, 1500);
    assert_int_equal(t.n_held, 0);
    /* a held sample is released before a new one of the same turnstile */
    struct ts_sample s = sample(1, 70, 80, now - 500);
    assert_int_equal(ts_tally_sample(&t, &s, false, out), 0);
    s = sample(1, 75, 81, now);
    assert_int_equal(ts_tally_sample(&t, &s, true, out), 2);
    assert_true(out[0].flags & TS_FLAG_FIRST);
    assert_int_equal(out[1].entries, 5);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

/* A counter reset while the clock is not trusted is seen as it happens
 * (found by tests/e2e: holding only the first and latest samples counted
 * 1000 -> ... -> 7 as a reset to 7, losing the 10 before it). */
static void reset_during_the_hold_counts_everybody(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t;
    struct ts_reading out[16];
    int64_t now = ts_mono_ms();
    uint64_t regs_seen[][2] = {{1000, 500}, {1010, 505}, {0, 0}, {7, 3}};

    load(&cfg, modbus, regs);
    assert_int_equal(ts_tally_init(&t, &cfg), TS_OK);
    for (int i = 0; i < 4; i++) {
        struct ts_sample s = sample(0, regs_seen[i][0], regs_seen[i][1], now - 4000 + i * 1000);
        assert_int_equal(ts_tally_sample(&t, &s, false, out), 0);
    }
    assert_int_equal(ts_tally_release(&t, out, 16), 1);
    assert_int_equal(out[0].entries, 17);
    assert_int_equal(out[0].exits, 8);
    assert_true(out[0].flags & TS_FLAG_RESET);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

/* What was counted while the clock was not trusted is in the saved state: a
 * crash (the agent stores the state after each poll) loses nobody. */
static void the_hold_survives_a_crash(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t, again;
    struct ts_reading out[16];
    int64_t now = ts_mono_ms();
    size_t len;

    load(&cfg, modbus, regs);
    assert_int_equal(ts_tally_init(&t, &cfg), TS_OK);
    struct ts_sample s = sample(0, 1000, 500, now - 3000);
    ts_tally_sample(&t, &s, false, out);
    s = sample(0, 1010, 505, now - 2000);
    ts_tally_sample(&t, &s, false, out);
    const void *blob = ts_tally_save(&t, &len);
    assert_non_null(blob);
    assert_int_equal(ts_tally_init(&again, &cfg), TS_OK);
    assert_int_equal(ts_tally_restore(&again, blob, len), TS_OK);
    assert_int_equal(again.n_held, 1);
    s = sample(0, 1017, 508, now - 1000);
    assert_int_equal(ts_tally_sample(&again, &s, false, out), 0);
    assert_int_equal(ts_tally_release(&again, out, 16), 1);
    assert_int_equal(out[0].entries, 17);
    assert_int_equal(out[0].exits, 8);
    assert_int_equal(out[0].entries_cum, 1017);
    ts_tally_free(&t);
    ts_tally_free(&again);
    ts_agent_cfg_free(&cfg);
}

/* The clock goes wrong (three years behind, unsynchronised) after readings
 * stamped right: the counters judge the next samples by the monotonic time
 * since, not by the wrong clock, so a plausible rise still counts (found by
 * the e2e soak: with the wrong clock every rise above 10 looked like a
 * glitch, and the jump before the rebase was lost). */
static void a_clock_step_back_does_not_make_glitches(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t;
    struct ts_reading out[16];
    int64_t now = ts_mono_ms();

    load(&cfg, modbus, regs);
    assert_int_equal(ts_tally_init(&t, &cfg), TS_OK);
    struct ts_sample s = sample(0, 1000, 500, now - 12000);
    assert_int_equal(ts_tally_sample(&t, &s, true, out), 1);
    write_text(clock_path, "0 -94608000000\n");
    setenv("TS_CLOCK_FAKE", clock_path, 1);
    /* 10 s later: +20 in, +20 out, 120 people/min, the configured maximum */
    s = sample(0, 1020, 520, now - 2000);
    assert_int_equal(ts_tally_sample(&t, &s, false, out), 0);
    unsetenv("TS_CLOCK_FAKE");
    assert_int_equal(ts_tally_release(&t, out, 16), 1);
    assert_int_equal(out[0].entries, 20);
    assert_int_equal(out[0].exits, 20);
    assert_false(out[0].flags & TS_FLAG_GLITCH);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

static void state_survives_a_restart(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t, again;
    struct ts_reading out[TS_TALLY_MAX_OUT];
    int64_t now = ts_mono_ms();
    size_t len;

    load(&cfg, modbus, regs);
    assert_int_equal(ts_tally_init(&t, &cfg), TS_OK);
    struct ts_sample s = sample(0, 1000, 500, now - 2000);
    ts_tally_sample(&t, &s, true, out);
    s = sample(0, 1010, 505, now - 1000);
    ts_tally_sample(&t, &s, true, out);
    const void *blob = ts_tally_save(&t, &len);
    assert_non_null(blob);
    void *copy = malloc(len);
    memcpy(copy, blob, len);

    assert_int_equal(ts_tally_init(&again, &cfg), TS_OK);
    assert_int_equal(ts_tally_restore(&again, copy, len), TS_OK);
    s = sample(0, 1013, 509, now);
    assert_int_equal(ts_tally_sample(&again, &s, true, out), 1);
    assert_int_equal(out[0].entries, 3); /* not a first reading: the baseline survived */
    assert_int_equal(out[0].exits, 4);
    assert_false(out[0].flags & TS_FLAG_FIRST);
    /* a blob of another shape is refused, not misread */
    ((unsigned char *)copy)[4] ^= 0xff;
    struct ts_tally fresh;
    assert_int_equal(ts_tally_init(&fresh, &cfg), TS_OK);
    assert_int_equal(ts_tally_restore(&fresh, copy, len), TS_EPARSE);
    free(copy);
    ts_tally_free(&fresh);
    ts_tally_free(&again);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

static void gpio_counts_carry_over_a_restart(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t, again;
    struct ts_reading out[TS_TALLY_MAX_OUT];
    int64_t now = ts_mono_ms();
    size_t len;

    load2(&cfg, "kind = gpio\nchip = gpiochip0", "entry_line = 1\nexit_line = 2",
          "entry_line = 3\nexit_line = 4");
    assert_int_equal(ts_tally_init(&t, &cfg), TS_OK);
    struct ts_sample s = sample(0, 0, 0, now - 2000);
    ts_tally_sample(&t, &s, true, out);
    s = sample(0, 8, 5, now - 1000); /* 8 in, 5 out since the backend started */
    ts_tally_sample(&t, &s, true, out);
    assert_int_equal(out[0].entries, 8);
    const void *blob = ts_tally_save(&t, &len);
    void *copy = malloc(len);
    memcpy(copy, blob, len);

    /* restart: the GPIO backend counts from 0 again */
    assert_int_equal(ts_tally_init(&again, &cfg), TS_OK);
    assert_int_equal(ts_tally_restore(&again, copy, len), TS_OK);
    s = sample(0, 3, 1, now);
    assert_int_equal(ts_tally_sample(&again, &s, true, out), 1);
    assert_int_equal(out[0].entries, 3);
    assert_int_equal(out[0].exits, 1);
    assert_int_equal(out[0].entries_cum, 11);
    assert_int_equal(out[0].exits_cum, 6);
    assert_false(out[0].flags & TS_FLAG_RESET);
    free(copy);
    ts_tally_free(&again);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

/* A register read in the wrong word order (CDAB of an ABCD counter): every
 * person moves the value by 65536, every reading that moved is a glitch
 * that counts nobody. */
static uint64_t swapped(uint64_t v)
{
    return ((v & 0xffff) << 16) | (v >> 16 & 0xffff);
}

static char *state_json(const struct ts_agent_cfg *cfg, const struct ts_tally *t)
{
    struct ts_device_stats devices[2];
    memset(devices, 0, sizeof devices);
    char *json = ts_state_json(cfg, t, devices, true, 0, NULL);
    assert_non_null(json);
    return json;
}

static void a_turnstile_counting_only_anomalies_warns(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t;
    struct ts_reading out[TS_TALLY_MAX_OUT];
    int64_t base = ts_mono_ms() - 1000000;

    load2(&cfg, modbus, regs, regs);
    cfg.agent.anomaly_warn_s = 60;
    assert_int_equal(ts_tally_init(&t, &cfg), TS_OK);
    /* t0 in the wrong word order, one person every 10 s; t1 right. The
     * first reading is a baseline, not an anomaly; then 6 glitches span 50 s */
    for (int k = 0; k <= 6; k++) {
        struct ts_sample s = sample(0, swapped(1000 + (uint64_t)k), 500, base + k * 10000);
        assert_int_equal(ts_tally_sample(&t, &s, true, out), 1);
        assert_int_equal(out[0].entries, 0);
        if (k)
            assert_true(out[0].flags & TS_FLAG_GLITCH);
        s = sample(1, 1000 + (uint64_t)k, 500, base + k * 10000);
        ts_tally_sample(&t, &s, true, out);
    }
    assert_false(t.turnstiles[0].warned);
    assert_int_equal(ts_tally_anomaly_s(&t, 0, NULL, NULL), 50);
    assert_int_equal(ts_tally_anomaly_s(&t, 1, NULL, NULL), 0);
    assert_false(t.warnings_changed);
    /* an hour without anybody: readings that do not move neither warn nor
     * clear (the first ones are still flagged glitch: the run goes on) */
    for (int k = 7; k < 20; k++) {
        struct ts_sample s = sample(0, swapped(1006), 500, base + 50000 + k * 300000);
        ts_tally_sample(&t, &s, true, out);
        assert_int_equal(out[0].entries, 0);
    }
    assert_false(t.turnstiles[0].warned);
    assert_int_equal(ts_tally_anomaly_s(&t, 0, NULL, NULL), 50);
    /* one more person, 60 s of anomalies with the hour between... the run
     * is measured from its first anomaly: the warning comes now */
    int64_t at = base + 50000 + 20 * 300000;
    struct ts_sample s = sample(0, swapped(1007), 500, at);
    ts_tally_sample(&t, &s, true, out);
    assert_true(t.turnstiles[0].warned);
    assert_int_equal(t.n_warned, 1);
    assert_true(t.warnings_changed);
    const char *counter;
    uint32_t flags;
    assert_true(ts_tally_anomaly_s(&t, 0, &counter, &flags) >= 60);
    assert_string_equal(counter, "entries");
    assert_int_equal(flags, TS_FLAG_GLITCH);
    char *json = state_json(&cfg, &t);
    assert_non_null(strstr(json, "\"warnings\":1,"));
    assert_non_null(strstr(json, "\"anomaly\":\"glitch\",\"warning\":\"every reading of entries that "
                                 "moved for "));
    assert_non_null(strstr(json, "word order"));
    assert_non_null(strstr(json, "\"anomaly_s\":0,\"anomaly\":\"\",\"warning\":\"\"}")); /* t1 */
    free(json);
    /* once per episode: more glitches do not raise it again */
    t.warnings_changed = false;
    s = sample(0, swapped(1008), 500, at + 10000);
    ts_tally_sample(&t, &s, true, out);
    assert_false(t.warnings_changed);
    assert_int_equal(t.n_warned, 1);
    /* fixed (the config corrected, the agent restarted on the same state):
     * a reading that counts ends the episode */
    s = sample(0, 1010, 500, at + 20000);
    ts_tally_sample(&t, &s, true, out); /* a glitch again: from the swapped baseline */
    for (int k = 1; k <= 3; k++) { /* the new level is confirmed (rebase_after readings over
                                    * rebase_after - 1 minutes, docs/counters.md): it counts */
        s = sample(0, 1010 + (uint64_t)k, 500, at + 20000 + k * 60000);
        ts_tally_sample(&t, &s, true, out);
    }
    assert_true(out[0].entries > 0);
    assert_false(t.turnstiles[0].warned);
    assert_int_equal(t.n_warned, 0);
    assert_true(t.warnings_changed);
    assert_int_equal(ts_tally_anomaly_s(&t, 0, NULL, NULL), 0);
    json = state_json(&cfg, &t);
    assert_non_null(strstr(json, "\"warnings\":0,"));
    assert_null(strstr(json, "word order"));
    free(json);
    ts_tally_free(&t);
    ts_agent_cfg_free(&cfg);
}

/* anomaly_warn_s = 0: never; and held samples (clock not trusted) count too */
static void the_anomaly_warning_can_be_off(void **state)
{
    struct ts_agent_cfg cfg;
    struct ts_tally t;
    struct ts_reading out[TS_TALLY_MAX_OUT];
    int64_t base = ts_mono_ms() - 1000000;

    for (int on = 0; on < 2; on++) {
        load(&cfg, modbus, regs);
        assert_int_equal(cfg.agent.anomaly_warn_s, 900); /* the default */
        cfg.agent.anomaly_warn_s = on ? 30 : 0;
        assert_int_equal(ts_tally_init(&t, &cfg), TS_OK);
        for (int k = 0; k <= 10; k++) {
            struct ts_sample s = sample(0, 500, swapped(2000 + (uint64_t)k), base + k * 10000);
            ts_tally_sample(&t, &s, false, out);
        }
        assert_int_equal(t.n_warned, on ? 1 : 0);
        assert_int_equal(ts_tally_anomaly_s(&t, 0, NULL, NULL), 90);
        ts_tally_free(&t);
        ts_agent_cfg_free(&cfg);
    }
}

static void fake_clock_file(void **state)
{
    write_text(clock_path, "0 -94608000000\n");
    setenv("TS_CLOCK_FAKE", clock_path, 1);
    int64_t real = ts_clock_wall_ms() ; /* first read caches the file */
    assert_false(ts_clock_trusted(TS_CLOCK_WAIT_SYNC));
    assert_true(ts_clock_trusted(TS_CLOCK_TRUST));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    assert_true(real < wall - 94608000000LL + 1000);
    unsetenv("TS_CLOCK_FAKE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_and_stamps),
        cmocka_unit_test(holds_while_the_clock_is_not_trusted),
        cmocka_unit_test(reset_during_the_hold_counts_everybody),
        cmocka_unit_test(the_hold_survives_a_crash),
        cmocka_unit_test(a_clock_step_back_does_not_make_glitches),
        cmocka_unit_test(state_survives_a_restart),
        cmocka_unit_test(gpio_counts_carry_over_a_restart),
        cmocka_unit_test(a_turnstile_counting_only_anomalies_warns),
        cmocka_unit_test(the_anomaly_warning_can_be_off),
        cmocka_unit_test(fake_clock_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
