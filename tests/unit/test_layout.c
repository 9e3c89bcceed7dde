/* SPDX-License-Identifier: Apache-2.0 */
/* The lake's layout record (bridge/layout.h): the partition function is
 * librdkafka's, the file is created once, checked when read, replaced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "layout.h"

static char root[64];

static int setup(void **state)
{
    snprintf(root, sizeof root, "/tmp/ts-layout.XXXXXX");
    assert_non_null(mkdtemp(root));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd);
}

static void same_partitions_as_librdkafka(void **state)
{
    char key[32];
    for (int32_t n = 1; n <= 64; n++)
        for (int i = 0; i < 200; i++) {
            int len = snprintf(key, sizeof key, "agent-%d.x_%d", i, n);
            assert_int_equal(ts_layout_partition(key, (size_t)len, n),
                             rd_kafka_msg_partitioner_consistent(NULL, key, (size_t)len, n, NULL,
                                                                 NULL));
        }
}

static void created_once_read_checked_replaced(void **state)
{
    int32_t n = 0;
    char why[256] = "";
    assert_int_equal(ts_layout_read(root, "t", "turnstile.readings", &n, why, sizeof why),
                     TS_ENOTFOUND);
    assert_int_equal(ts_layout_create(root, "t", "turnstile.readings", 6, &n, why, sizeof why),
                     TS_OK);
    assert_int_equal(n, 6);
    /* a second bridge with another count gets the first one's */
    assert_int_equal(ts_layout_create(root, "t", "turnstile.readings", 12, &n, why, sizeof why),
                     TS_OK);
    assert_int_equal(n, 6);
    assert_int_equal(ts_layout_read(root, "t", "turnstile.readings", &n, why, sizeof why), TS_OK);
    assert_int_equal(n, 6);
    /* another topic has its own */
    assert_int_equal(ts_layout_read(root, "t", "other", &n, why, sizeof why), TS_ENOTFOUND);
    assert_int_equal(ts_layout_replace(root, "t", "turnstile.readings", 12, why, sizeof why), TS_OK);
    assert_int_equal(ts_layout_read(root, "t", "turnstile.readings", &n, why, sizeof why), TS_OK);
    assert_int_equal(n, 12);
    assert_int_equal(ts_layout_create(root, "t", "x", 0, &n, why, sizeof why), TS_EINVAL);
    assert_int_equal(ts_layout_replace(root, "t", "x", TS_LAYOUT_MAX_PARTITIONS + 1, why,
                                       sizeof why), TS_EINVAL);

    /* edited by hand: refused */
    char path[256], cmd[400];
    snprintf(path, sizeof path, "%s/t/_manifest/turnstile.readings.layout", root);
    snprintf(cmd, sizeof cmd, "sed -i 's/partitions 12/partitions 13/' '%s'", path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(ts_layout_read(root, "t", "turnstile.readings", &n, why, sizeof why),
                     TS_EPARSE);
    assert_non_null(strstr(why, "not a layout"));
    /* a directory in its place */
    assert_int_equal(unlink(path), 0);
    snprintf(cmd, sizeof cmd, "mkdir '%s'", path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(ts_layout_read(root, "t", "turnstile.readings", &n, why, sizeof why),
                     TS_EPARSE);
}

/* ts_layout_parse, on what a bucket or a hand may hold: only the exact text
 * ts_layout_create writes for the topic is a layout. */
static void parsed_exactly(void **state)
{
    (void)state;
    char text[256], bad[300], why[256];
    int32_t n = 0;

    /* the text a created layout file holds */
    assert_int_equal(ts_layout_create(root, "t", "turnstile.readings", 12, &n, why, sizeof why),
                     TS_OK);
    snprintf(bad, sizeof bad, "%s/t/_manifest/turnstile.readings.layout", root);
    FILE *f = fopen(bad, "r");
    assert_non_null(f);
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    n = 0;
    assert_int_equal(ts_layout_parse(text, len, "turnstile.readings", &n), TS_OK);
    assert_int_equal(n, 12);

    /* each refused, *n untouched */
    n = -1;
    assert_int_equal(ts_layout_parse(text, len, "other.topic", &n), TS_EPARSE);
    assert_int_equal(ts_layout_parse(text, len - 1, "turnstile.readings", &n), TS_EPARSE);
    assert_int_equal(ts_layout_parse("", 0, "turnstile.readings", &n), TS_EPARSE);
    /* another count under the old crc line */
    memcpy(bad, text, len);
    char *digits = strstr(bad, "partitions 12");
    assert_non_null(digits);
    digits[12] = '3';
    assert_int_equal(ts_layout_parse(bad, len, "turnstile.readings", &n), TS_EPARSE);
    /* trailing bytes, a NUL inside */
    memcpy(bad, text, len);
    memcpy(bad + len, "x", 1);
    assert_int_equal(ts_layout_parse(bad, len + 1, "turnstile.readings", &n), TS_EPARSE);
    memcpy(bad, text, len);
    bad[3] = '\0';
    assert_int_equal(ts_layout_parse(bad, len, "turnstile.readings", &n), TS_EPARSE);
    /* counts out of range or of too many digits: no overflow, refused */
    const char *counts[] = {"0", "100001", "99999999999999999999", "-4", "+4", " 4", "04"};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        int l = snprintf(bad, sizeof bad, "ts-lake-layout 1\ntopic turnstile.readings\n"
                         "partitions %s\ncrc32 00000000\n", counts[i]);
        assert_int_equal(ts_layout_parse(bad, (size_t)l, "turnstile.readings", &n), TS_EPARSE);
    }
    /* as long as a layout may be and longer */
    char big[2048];
    memset(big, '1', sizeof big);
    memcpy(big, text, len);
    assert_int_equal(ts_layout_parse(big, sizeof big, "turnstile.readings", &n), TS_EPARSE);
    assert_int_equal(n, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_partitions_as_librdkafka),
        cmocka_unit_test_setup_teardown(created_once_read_checked_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(parsed_exactly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
