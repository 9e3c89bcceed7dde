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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_partitions_as_librdkafka),
        cmocka_unit_test_setup_teardown(created_once_read_checked_replaced, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
