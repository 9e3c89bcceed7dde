/* SPDX-License-Identifier: Apache-2.0 */
/* The rdkafka.* pass-through of [kafka] (bridge/kafka_conf.h): names,
 * refused properties, secrets from files and the environment, librdkafka's
 * own checks with file, line and key, and secrets kept out of every error
 * message and log line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge_config.h"
#include "err.h"
#include "kafka_conf.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/ts-kafka-conf.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static void write_file(const char *name, const char *data, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static const char *add(struct ts_kafka_props *p, const char *key, const char *value, char *why)
{
    return ts_kafka_props_add(p, key, value, 7, why, 200);
}

static void names_and_owned_properties(void **state)
{
    struct ts_kafka_props p = {0};
    char why[200];

    assert_null(add(&p, "rdkafka.security.protocol", "SASL_SSL", why));
    assert_int_equal(p.n, 1);
    assert_string_equal(p.v[0].name, "security.protocol");
    assert_string_equal(p.v[0].value, "SASL_SSL");
    assert_false(p.v[0].secret);
    assert_int_equal(p.v[0].line, 7);
    /* a second setting of one property, also through another form */
    const char *r = add(&p, "rdkafka.security.protocol_env", "HOME", why);
    assert_non_null(r);
    assert_non_null(strstr(r, "set twice (first on line 7)"));
    /* what the bridge owns: refused, naming what to use instead */
    static const char *const owned[] = {"enable.auto.commit", "enable.idempotence",
                                        "isolation.level", "group.id", "transactional.id",
                                        "bootstrap.servers", "client.id", "acks"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "rdkafka.%s", owned[i]);
        r = add(&p, key, "x", why);
        assert_non_null(r);
        assert_non_null(strstr(r, "the bridge sets"));
    }
    r = add(&p, "rdkafka.group.id_file", "/nonexistent", why); /* refused before reading */
    assert_non_null(strstr(r, "the bridge sets group.id itself"));
    assert_non_null(add(&p, "rdkafka.Bad Name", "x", why));
    assert_non_null(add(&p, "rdkafka.", "x", why));
    assert_non_null(add(&p, "rdkafka.debug", "a\tb", why)); /* control character */
    assert_int_equal(p.n, 1);
    ts_kafka_props_free(&p);
    assert_int_equal(p.n, 0);
    ts_kafka_props_free(&p); /* again: nothing */
}

static void secrets_from_files_and_environment(void **state)
{
    struct ts_kafka_props p = {0};
    char why[200], path[128], out[200];

    write_file("pw", "pw-from-file\r\n\n", 15);
    snprintf(path, sizeof path, "%s/pw", dir);
    assert_null(add(&p, "rdkafka.sasl.password_file", path, why));
    assert_string_equal(p.v[0].name, "sasl.password");
    assert_string_equal(p.v[0].value, "pw-from-file"); /* line breaks at the end removed */
    assert_true(p.v[0].secret);
    setenv("TS_TEST_KAFKA_USER", "user-from-env", 1);
    assert_null(add(&p, "rdkafka.sasl.username_env", "TS_TEST_KAFKA_USER", why));
    assert_string_equal(p.v[1].value, "user-from-env");
    assert_true(p.v[1].secret); /* from the environment: masked too */
    assert_null(add(&p, "rdkafka.ssl.key.password", "inline-key-pw", why));
    assert_true(p.v[2].secret); /* its name says so */

    ts_kafka_redact(out, sizeof out, "a pw-from-file b user-from-env c inline-key-pw d");
    assert_string_equal(out, "a (secret) b (secret) c (secret) d");
    ts_kafka_redact(out, 12, "pw-from-file and more");
    assert_string_equal(out, "(secret) an");

    /* what cannot be read is an error that names the file or variable */
    const char *r = add(&p, "rdkafka.ssl.keystore.password_file", "/nonexistent/pw", why);
    assert_non_null(strstr(r, "cannot open '/nonexistent/pw'"));
    r = add(&p, "rdkafka.ssl.keystore.password_file", dir, why);
    assert_non_null(strstr(r, "not a regular file"));
    write_file("empty", "\n", 1);
    snprintf(path, sizeof path, "%s/empty", dir);
    assert_non_null(strstr(add(&p, "rdkafka.ssl.keystore.password_file", path, why), "is empty"));
    write_file("nul", "ab\0cd", 5);
    snprintf(path, sizeof path, "%s/nul", dir);
    assert_non_null(strstr(add(&p, "rdkafka.ssl.keystore.password_file", path, why), "NUL"));
    char *big = calloc(1, TS_KAFKA_SECRET_MAX + 2);
    memset(big, 'x', TS_KAFKA_SECRET_MAX + 1);
    write_file("big", big, TS_KAFKA_SECRET_MAX + 1);
    free(big);
    snprintf(path, sizeof path, "%s/big", dir);
    assert_non_null(strstr(add(&p, "rdkafka.ssl.keystore.password_file", path, why), "larger"));
    unsetenv("TS_TEST_KAFKA_UNSET");
    r = add(&p, "rdkafka.ssl.keystore.password_env", "TS_TEST_KAFKA_UNSET", why);
    assert_non_null(strstr(r, "TS_TEST_KAFKA_UNSET is not set"));
    assert_non_null(add(&p, "rdkafka.ssl.keystore.password_env", "NOT-A-NAME", why));
    assert_int_equal(p.n, 3);

    ts_kafka_props_free(&p); /* the secrets are forgotten with their config */
    ts_kafka_redact(out, sizeof out, "a pw-from-file b");
    assert_string_equal(out, "a pw-from-file b");
    unsetenv("TS_TEST_KAFKA_USER");
}

/* librdkafka refuses a value it names in its reason: the secret stays out */
static void refused_secret_not_in_the_error(void **state)
{
    struct ts_kafka_props p = {0};
    char why[400];

    setenv("TS_TEST_KAFKA_PROTO", "hunter2-not-a-protocol", 1);
    assert_null(add(&p, "rdkafka.security.protocol_env", "TS_TEST_KAFKA_PROTO", why));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(ts_kafka_conf_apply(conf, &p, why, sizeof why), TS_ECONFIG);
    rd_kafka_conf_destroy(conf);
    assert_non_null(strstr(why, "[kafka] rdkafka.security.protocol_env (line 7)"));
    assert_non_null(strstr(why, "(secret)"));
    assert_null(strstr(why, "hunter2"));
    ts_kafka_props_free(&p);
    unsetenv("TS_TEST_KAFKA_PROTO");
}

/* --check-config: librdkafka checks every value (file, line, key), then a
 * client made with them checks what only a client checks */
static void config_checked_by_librdkafka(void **state)
{
    struct ts_bridge_cfg cfg;
    char path[128], err[512], ca[128];
    static const char head[] = "[bridge]\nid = b1\n[mqtt]\nhost = 127.0.0.1\n"
                               "[kafka]\nbrokers = 127.0.0.1:9092\n";
    char text[1024];

    snprintf(path, sizeof path, "%s/bridge.conf", dir);
    snprintf(text, sizeof text, "%srdkafka.no.such.property = 1\nrdkafka.socket.timeout.ms = soon\n"
             "rdkafka.enable.auto.commit = true\nrdkafka.debug = broker,security\n", head);
    write_file("bridge.conf", text, strlen(text));
    assert_int_equal(ts_bridge_cfg_load(path, &cfg, err, sizeof err), TS_ECONFIG);
    assert_int_equal(cfg.file.n_errors, 3);
    assert_non_null(strstr(cfg.file.errors[0].text, "bridge.conf:7: [kafka] rdkafka.no.such.property: "
                                                    "librdkafka: No such configuration property"));
    assert_non_null(strstr(cfg.file.errors[1].text, "bridge.conf:8: [kafka] rdkafka.socket.timeout.ms: "
                                                    "librdkafka: Invalid value"));
    assert_non_null(strstr(cfg.file.errors[2].text, "bridge.conf:9: [kafka] rdkafka.enable.auto.commit: "
                                                    "the bridge sets"));
    ts_bridge_cfg_free(&cfg);

    /* values librdkafka takes, but a client cannot start with: a CA file that is not there */
    snprintf(ca, sizeof ca, "%s/no-ca.pem", dir);
    snprintf(text, sizeof text, "%srdkafka.security.protocol = SSL\nrdkafka.ssl.ca.location = %s\n",
             head, ca);
    write_file("bridge.conf", text, strlen(text));
    assert_int_equal(ts_bridge_cfg_load(path, &cfg, err, sizeof err), TS_ECONFIG);
    assert_non_null(strstr(err, "bridge.conf:8: [kafka] librdkafka: ssl.ca.location failed"));
    ts_bridge_cfg_free(&cfg);

    /* all good: the props reach the struct */
    snprintf(text, sizeof text, "%srdkafka.security.protocol = SASL_PLAINTEXT\n"
             "rdkafka.sasl.mechanism = SCRAM-SHA-512\nrdkafka.sasl.username = u\n"
             "rdkafka.sasl.password = p\n", head);
    write_file("bridge.conf", text, strlen(text));
    assert_int_equal(ts_bridge_cfg_load(path, &cfg, err, sizeof err), TS_OK);
    assert_int_equal(cfg.kafka.props.n, 4);
    assert_string_equal(cfg.kafka.props.v[3].name, "sasl.password");
    ts_bridge_cfg_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_and_owned_properties),
        cmocka_unit_test(secrets_from_files_and_environment),
        cmocka_unit_test(refused_secret_not_in_the_error),
        cmocka_unit_test(config_checked_by_librdkafka),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
