/* SPDX-License-Identifier: Apache-2.0 */
/* ack_bound: which acknowledgements the agent believes (agent/ack_bound.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "ack_bound.h"
#include "store.h"

/* A running agent: an ack above what it handed to MQTT is refused and
 * changes nothing; the bridge's ack that comes later is taken. */
static void running_agent_refuses_above_sent(void **state)
{
    struct ts_ack_bound b;
    ts_ack_bound_init(&b, 0, 0);
    for (uint64_t s = 1; s <= 20; s++)
        ts_ack_bound_sent(&b, s);
    assert_int_equal(ts_ack_bound_limit(&b), 20);
    assert_int_equal(ts_ack_bound_heard(&b, 120), TS_ACK_REFUSED);
    assert_int_equal(b.acked, 0);
    assert_int_equal(b.renumber, 0);
    assert_int_equal(ts_ack_bound_heard(&b, UINT64_MAX), TS_ACK_REFUSED);
    assert_int_equal(ts_ack_bound_heard(&b, 21), TS_ACK_REFUSED);
    assert_int_equal(ts_ack_bound_heard(&b, 20), TS_ACK_TAKEN);
    assert_int_equal(b.acked, 20);
    assert_int_equal(ts_ack_bound_heard(&b, 15), TS_ACK_OLD);
    assert_int_equal(ts_ack_bound_heard(&b, 20), TS_ACK_OLD);
    assert_int_equal(b.acked, 20);
    /* the refused value is believed once it is no longer above sent */
    for (uint64_t s = 21; s <= 130; s++)
        ts_ack_bound_sent(&b, s);
    assert_int_equal(b.acked, 20);
    assert_int_equal(ts_ack_bound_heard(&b, 120), TS_ACK_TAKEN);
    assert_int_equal(b.acked, 120);
}

/* After a restart: the store deleted up to 7, its publish mark is 30 (up to
 * the look-ahead above what the last run sent). The bridge's retained 10 is
 * not refused, and believed as far as this run re-sends. */
static void restart_believes_as_far_as_resent(void **state)
{
    struct ts_ack_bound b;
    ts_ack_bound_init(&b, 7, 30);
    assert_false(ts_ack_bound_fresh(&b));
    assert_int_equal(ts_ack_bound_limit(&b), 30);
    assert_int_equal(ts_ack_bound_heard(&b, 10), TS_ACK_TAKEN);
    assert_int_equal(b.acked, 7);
    ts_ack_bound_sent(&b, 8);
    assert_int_equal(b.acked, 8);
    ts_ack_bound_sent(&b, 9);
    ts_ack_bound_sent(&b, 10);
    assert_int_equal(b.acked, 10);
    ts_ack_bound_sent(&b, 11);
    assert_int_equal(b.acked, 10);
    assert_int_equal(ts_ack_bound_heard(&b, 31), TS_ACK_REFUSED);
    /* a forged 30 (the last run may have sent only 20): never above sent */
    assert_int_equal(ts_ack_bound_heard(&b, 30), TS_ACK_TAKEN);
    assert_int_equal(b.acked, 11);
    for (uint64_t s = 12; s <= 40; s++) {
        ts_ack_bound_sent(&b, s);
        assert_int_equal(b.acked, s < 30 ? s : 30);
    }
    assert_int_equal(ts_ack_bound_limit(&b), 40);
    /* a re-send from acked + 1 goes through numbers sent before */
    ts_ack_bound_sent(&b, 31);
    assert_int_equal(b.sent, 40);
    assert_int_equal(b.acked, 30);
}

/* A store that never published: an ack above its numbers is a renumbering,
 * the highest sane one; an absurd one and the next replace it. */
static void new_store_renumbers(void **state)
{
    struct ts_ack_bound b;
    ts_ack_bound_init(&b, 0, 0);
    assert_true(ts_ack_bound_fresh(&b));
    assert_int_equal(ts_ack_bound_heard(&b, 50), TS_ACK_RENUMBER);
    assert_int_equal(b.renumber, 50);
    assert_int_equal(b.acked, 0);
    assert_int_equal(ts_ack_bound_heard(&b, 40), TS_ACK_RENUMBER);
    assert_int_equal(b.renumber, 50);   /* a late lower one: the highest counts */
    assert_int_equal(ts_ack_bound_heard(&b, UINT64_MAX), TS_ACK_RENUMBER);
    assert_int_equal(b.renumber, UINT64_MAX);
    assert_int_equal(ts_ack_bound_heard(&b, TS_SEQ_MAX + 1), TS_ACK_RENUMBER);
    assert_int_equal(b.renumber, TS_SEQ_MAX + 1);
    assert_int_equal(ts_ack_bound_heard(&b, 60), TS_ACK_RENUMBER);
    assert_int_equal(b.renumber, 60);   /* corrected by the operator */
    ts_ack_bound_floor(&b, 60);         /* the caller renumbered past it */
    assert_int_equal(b.renumber, 0);
    assert_int_equal(b.acked, 60);
    assert_true(ts_ack_bound_fresh(&b));
    assert_int_equal(ts_ack_bound_heard(&b, 60), TS_ACK_OLD);
    assert_int_equal(ts_ack_bound_heard(&b, 70), TS_ACK_RENUMBER);  /* still nothing sent */
    ts_ack_bound_floor(&b, 70);
    ts_ack_bound_sent(&b, 71);
    assert_false(ts_ack_bound_fresh(&b));
    assert_int_equal(ts_ack_bound_heard(&b, 100), TS_ACK_REFUSED);
    assert_int_equal(b.renumber, 0);
    assert_int_equal(ts_ack_bound_heard(&b, 71), TS_ACK_TAKEN);
    assert_int_equal(b.acked, 71);
}

/* An absurd retained ack, then a sane one at or below the store's numbers,
 * or the retained ack cleared: nothing to renumber any more. */
static void absurd_renumber_replaced_or_cleared(void **state)
{
    struct ts_ack_bound b;
    ts_ack_bound_init(&b, 5, 0);
    assert_int_equal(ts_ack_bound_heard(&b, UINT64_MAX), TS_ACK_RENUMBER);
    assert_int_equal(ts_ack_bound_heard(&b, 3), TS_ACK_OLD);
    assert_int_equal(b.renumber, 0);
    assert_int_equal(ts_ack_bound_heard(&b, UINT64_MAX), TS_ACK_RENUMBER);
    ts_ack_bound_cleared(&b);
    assert_int_equal(b.renumber, 0);
    assert_int_equal(b.acked, 5);
    /* a store that turns out to have published is not renumbered */
    assert_int_equal(ts_ack_bound_heard(&b, 50), TS_ACK_RENUMBER);
    ts_ack_bound_published(&b, 10);
    assert_int_equal(b.renumber, 0);
    assert_int_equal(ts_ack_bound_heard(&b, 50), TS_ACK_REFUSED);
}

/* Whatever is heard, acked never passes what was sent or floored. */
static void acked_never_passes_sent(void **state)
{
    srand(11);
    for (int run = 0; run < 200; run++) {
        struct ts_ack_bound b;
        uint64_t floor = (uint64_t)(rand() % 50), before = floor + (uint64_t)(rand() % 100);
        ts_ack_bound_init(&b, floor, before);
        uint64_t sent = floor;
        for (int step = 0; step < 500; step++) {
            int what = rand() % 10;
            if (what < 5) {
                ts_ack_bound_sent(&b, ++sent);
            } else if (what < 9) {
                uint64_t v = (uint64_t)(rand() % 800);
                if (rand() % 50 == 0)
                    v = UINT64_MAX - (uint64_t)(rand() % 3);
                uint64_t was = b.acked;
                enum ts_ack_verdict d = ts_ack_bound_heard(&b, v);
                if (d == TS_ACK_REFUSED || d == TS_ACK_OLD)
                    assert_int_equal(b.acked, was);
            } else {
                sent = floor;   /* a re-send round from acked + 1 (cursor back) */
                if (b.acked > sent)
                    sent = b.acked;
            }
            uint64_t top = b.sent > floor ? b.sent : floor;
            assert_true(b.acked <= top);
            assert_true(b.acked >= floor);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(running_agent_refuses_above_sent),
        cmocka_unit_test(restart_believes_as_far_as_resent),
        cmocka_unit_test(new_store_renumbers),
        cmocka_unit_test(absurd_renumber_replaced_or_cleared),
        cmocka_unit_test(acked_never_passes_sent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
