/* SPDX-License-Identifier: Apache-2.0 */
/* The object lake's [lake] keys (bridge/bridge_config.c): url, endpoint,
 * credentials only as files or the environment, the client's retry
 * settings; each bad value named with its file, line and key; the object
 * lake with agents idle past agent_idle_s archived (on the store), as the
 * POSIX lake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge_config.h"
#include "err.h"

static char dir[64], path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ts-lake-conf.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/bridge.conf", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return rmdir(dir);
}

/* Loads [bridge] [mqtt] [kafka] and a [lake] of the given lines (from line
 * 7); the errors stay in cfg (the caller frees). */
static int load(const char *lake, struct ts_bridge_cfg *cfg, char *err, size_t errsize)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[bridge]\nid = b1\n[mqtt]\nhost = 127.0.0.1\n[kafka]\nbrokers = 127.0.0.1:9092\n"
               "[lake]\npath = /var/lib/turnstile/lake\n%s", lake);
    assert_int_equal(fclose(f), 0);
    return ts_bridge_cfg_load(path, cfg, err, errsize);
}

static bool has_error(const struct ts_bridge_cfg *cfg, const char *text)
{
    for (size_t i = 0; i < cfg->file.n_errors; i++)
        if (strstr(cfg->file.errors[i].text, text))
            return true;
    return false;
}

/* the POSIX lake: the defaults, and the S3-only keys refused without url */
static void posix_lake_defaults(void **state)
{
    (void)state;
    struct ts_bridge_cfg cfg;
    char err[512];

    assert_int_equal(load("", &cfg, err, sizeof err), TS_OK);
    assert_string_equal(cfg.lake.url, "");
    assert_string_equal(cfg.lake.region, "us-east-1");
    assert_false(cfg.lake.path_style);
    assert_int_equal(cfg.lake.s3_max_attempts, 6);
    assert_int_equal(cfg.lake.s3_backoff_ms, 200);
    assert_int_equal(cfg.lake.s3_backoff_max_ms, 10000);
    assert_int_equal(cfg.lake.s3_timeout_ms, 60000);
    ts_bridge_cfg_free(&cfg);

    assert_int_equal(load("endpoint = http://127.0.0.1:9000\nsecret_file = /etc/s\n", &cfg, err,
                          sizeof err),
                     TS_ECONFIG);
    assert_true(has_error(&cfg, "bridge.conf:9: [lake] endpoint: only with url"));
    assert_true(has_error(&cfg, "bridge.conf:10: [lake] secret_file: only with url"));
    ts_bridge_cfg_free(&cfg);
}

/* every bad value named, none of them taken */
static void s3_keys_checked(void **state)
{
    (void)state;
    static const char *const bad_urls[] = {
        "http://bucket/p", "s3://", "s3://ab", "s3://Bucket/p", "s3://bucket//p", "s3://bucket/./p",
        "s3://bucket/a/../p", "s3://bucket/p q", "s3://bucket/p?x=1",
        "s3://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    struct ts_bridge_cfg cfg;
    char err[512], text[512];

    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        snprintf(text, sizeof text, "url = %s\n", bad_urls[i]);
        assert_int_equal(load(text, &cfg, err, sizeof err), TS_ECONFIG);
        if (!has_error(&cfg, "bridge.conf:9: [lake] url: must be s3://BUCKET[/PREFIX]"))
            fail_msg("%s taken: %s", bad_urls[i], err);
        ts_bridge_cfg_free(&cfg);
    }

    assert_int_equal(load("url = s3://bucket/p\nendpoint = ftp://host\nkey_id_file = /etc/k\n"
                          "s3_backoff_ms = 500\ns3_backoff_max_ms = 100\ns3_max_attempts = 0\n",
                          &cfg, err, sizeof err),
                     TS_ECONFIG);
    assert_true(has_error(&cfg, "bridge.conf:10: [lake] endpoint: must start with http:// or https://"));
    assert_true(has_error(&cfg, "[lake] secret_file: key_id_file and secret_file go together"));
    assert_true(has_error(&cfg, "bridge.conf:13: [lake] s3_backoff_max_ms: must not be below"));
    assert_true(has_error(&cfg, "bridge.conf:14: [lake] s3_max_attempts"));
    ts_bridge_cfg_free(&cfg);
}

/* a good object lake's keys all taken, with agent_idle_s at its default or
 * set: the agents' archive is on the object store too (it used to be
 * refused unless agent_idle_s = 0) */
static void s3_lake_taken(void **state)
{
    (void)state;
    struct ts_bridge_cfg cfg;
    char err[512];
    static const char good[] = "url = s3://turnstile-lake.eu/lake/v1\n"
                               "endpoint = http://127.0.0.1:9000\nregion = auto\n"
                               "path_style = true\nkey_id_file = /etc/k\nsecret_file = /etc/s\n"
                               "goog_preconditions = true\n";
    char text[512];

    snprintf(text, sizeof text, "%sagent_idle_s = 0\n", good);
    assert_int_equal(load(text, &cfg, err, sizeof err), TS_OK);
    assert_string_equal(cfg.lake.url, "s3://turnstile-lake.eu/lake/v1");
    assert_string_equal(cfg.lake.endpoint, "http://127.0.0.1:9000");
    assert_string_equal(cfg.lake.region, "auto");
    assert_true(cfg.lake.path_style);
    assert_true(cfg.lake.goog_preconditions);
    assert_string_equal(cfg.lake.key_id_file, "/etc/k");
    assert_string_equal(cfg.lake.secret_file, "/etc/s");
    ts_bridge_cfg_free(&cfg);

    assert_int_equal(load(good, &cfg, err, sizeof err), TS_OK);
    assert_int_equal(cfg.lake.agent_idle_s, 86400);
    ts_bridge_cfg_free(&cfg);

    snprintf(text, sizeof text, "%sagent_idle_s = 60\n", good);
    assert_int_equal(load(text, &cfg, err, sizeof err), TS_OK);
    assert_int_equal(cfg.lake.agent_idle_s, 60);
    ts_bridge_cfg_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(posix_lake_defaults),
        cmocka_unit_test(s3_keys_checked),
        cmocka_unit_test(s3_lake_taken),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
