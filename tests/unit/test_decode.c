/* SPDX-License-Identifier: Apache-2.0 */
/* test_decode.c - register decode/encode for every width and word order,
 * against register vectors written out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "decode.h"
#include "err.h"

struct vector {
    unsigned width;
    enum ts_word_order order;
    uint64_t value;
    uint16_t regs[4];
};

/* Written by hand: bytes of the value, most significant first, are
 * 12 34 56 78 (32 bits) and 01 23 45 67 89 AB CD EF (64 bits). */
static const struct vector vectors[] = {
    /* 16 bits: only the byte swap matters */
    {16, TS_ORDER_ABCD, 0x1234, {0x1234}},
    {16, TS_ORDER_CDAB, 0x1234, {0x1234}},
    {16, TS_ORDER_BADC, 0x1234, {0x3412}},
    {16, TS_ORDER_DCBA, 0x1234, {0x3412}},
    /* 32 bits */
    {32, TS_ORDER_ABCD, 0x12345678, {0x1234, 0x5678}},
    {32, TS_ORDER_CDAB, 0x12345678, {0x5678, 0x1234}},
    {32, TS_ORDER_BADC, 0x12345678, {0x3412, 0x7856}},
    {32, TS_ORDER_DCBA, 0x12345678, {0x7856, 0x3412}},
    /* 64 bits (ABCDEFGH, GHEFCDAB, BADCFEHG, HGFEDCBA) */
    {64, TS_ORDER_ABCD, UINT64_C(0x0123456789ABCDEF), {0x0123, 0x4567, 0x89AB, 0xCDEF}},
    {64, TS_ORDER_CDAB, UINT64_C(0x0123456789ABCDEF), {0xCDEF, 0x89AB, 0x4567, 0x0123}},
    {64, TS_ORDER_BADC, UINT64_C(0x0123456789ABCDEF), {0x2301, 0x6745, 0xAB89, 0xEFCD}},
    {64, TS_ORDER_DCBA, UINT64_C(0x0123456789ABCDEF), {0xEFCD, 0xAB89, 0x6745, 0x2301}},
    /* the largest ENTRIES value of the MTA week, 2147178400 = 0x7FFB57A0 */
    {32, TS_ORDER_ABCD, 2147178400u, {0x7FFB, 0x57A0}},
    {32, TS_ORDER_CDAB, 2147178400u, {0x57A0, 0x7FFB}},
    {32, TS_ORDER_BADC, 2147178400u, {0xFB7F, 0xA057}},
    {32, TS_ORDER_DCBA, 2147178400u, {0xA057, 0xFB7F}},
    /* top bit set: decoded unsigned, never sign-extended */
    {16, TS_ORDER_ABCD, 0xFFFE, {0xFFFE}},
    {32, TS_ORDER_ABCD, 0x80000001u, {0x8000, 0x0001}},
    {32, TS_ORDER_DCBA, 0x80000001u, {0x0100, 0x0080}},
    {64, TS_ORDER_CDAB, UINT64_C(0xFFFFFFFF00000000), {0x0000, 0x0000, 0xFFFF, 0xFFFF}},
};
#define N_VECTORS (sizeof vectors / sizeof vectors[0])

static void test_decode_vectors(void **state)
{
    for (size_t i = 0; i < N_VECTORS; i++) {
        const struct vector *v = &vectors[i];

        assert_int_equal(ts_decode_regs(v->regs, v->width, v->order), v->value);
    }
}

static void test_encode_vectors(void **state)
{
    for (size_t i = 0; i < N_VECTORS; i++) {
        const struct vector *v = &vectors[i];
        uint16_t regs[5] = {0xAAAA, 0xAAAA, 0xAAAA, 0xAAAA, 0xAAAA};
        int n = ts_width_regs(v->width);

        ts_encode_regs(v->value, v->width, v->order, regs);
        assert_memory_equal(regs, v->regs, (size_t)n * sizeof regs[0]);
        assert_int_equal(regs[n], 0xAAAA); /* nothing written past width/16 registers */
    }
}

static void test_width_regs(void **state)
{
    assert_int_equal(ts_width_regs(16), 1);
    assert_int_equal(ts_width_regs(32), 2);
    assert_int_equal(ts_width_regs(64), 4);
}

static void test_encode_keeps_low_bits(void **state)
{
    uint16_t regs[4];

    ts_encode_regs(UINT64_C(0xDEADBEEF12345678), 32, TS_ORDER_ABCD, regs);
    assert_int_equal(regs[0], 0x1234);
    assert_int_equal(regs[1], 0x5678);
    assert_int_equal(ts_decode_regs(regs, 32, TS_ORDER_ABCD), 0x12345678);
    ts_encode_regs(0x12345, 16, TS_ORDER_BADC, regs);
    assert_int_equal(regs[0], 0x4523);
}

static void test_round_trip(void **state)
{
    static const unsigned widths[] = {16, 32, 64};
    uint64_t x = UINT64_C(0x9E3779B97F4A7C15);

    for (int w = 0; w < 3; w++) {
        uint64_t mask = widths[w] == 64 ? UINT64_MAX : (UINT64_C(1) << widths[w]) - 1;

        for (int o = TS_ORDER_ABCD; o <= TS_ORDER_DCBA; o++) {
            for (int i = 0; i < 1000; i++) {
                uint16_t regs[4];
                uint64_t v;

                x ^= x << 13; /* xorshift64 */
                x ^= x >> 7;
                x ^= x << 17;
                v = i < 4 ? (uint64_t[]){0, 1, mask, mask >> 1}[i] : x & mask;
                ts_encode_regs(v, widths[w], (enum ts_word_order)o, regs);
                assert_int_equal(ts_decode_regs(regs, widths[w], (enum ts_word_order)o), v);
            }
        }
    }
}

static void test_order_parse(void **state)
{
    static const struct {
        const char *name;
        enum ts_word_order order;
    } good[] = {
        {"ABCD", TS_ORDER_ABCD},     {"CDAB", TS_ORDER_CDAB},     {"BADC", TS_ORDER_BADC},
        {"DCBA", TS_ORDER_DCBA},     {"ABCDEFGH", TS_ORDER_ABCD}, {"GHEFCDAB", TS_ORDER_CDAB},
        {"BADCFEHG", TS_ORDER_BADC}, {"HGFEDCBA", TS_ORDER_DCBA}, {"abcd", TS_ORDER_ABCD},
        {"cdab", TS_ORDER_CDAB},     {"hgfedcba", TS_ORDER_DCBA}, {"BaDc", TS_ORDER_BADC},
    };
    static const char *const bad[] = {
        "", "ABC", "ABCDE", "ABDC", "DCAB", "ABCD ", " ABCD", "EFGHABCD", "ABCDEFG", "big", "1234",
    };
    enum ts_word_order o;

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        o = (enum ts_word_order)99;
        assert_int_equal(ts_word_order_parse(good[i].name, &o), TS_OK);
        assert_int_equal(o, good[i].order);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = TS_ORDER_BADC;
        assert_int_equal(ts_word_order_parse(bad[i], &o), TS_EINVAL);
        assert_int_equal(o, TS_ORDER_BADC); /* untouched on failure */
    }
}

static void test_order_name(void **state)
{
    enum ts_word_order o;

    assert_string_equal(ts_word_order_name(TS_ORDER_ABCD), "ABCD");
    assert_string_equal(ts_word_order_name(TS_ORDER_CDAB), "CDAB");
    assert_string_equal(ts_word_order_name(TS_ORDER_BADC), "BADC");
    assert_string_equal(ts_word_order_name(TS_ORDER_DCBA), "DCBA");
    assert_string_equal(ts_word_order_name((enum ts_word_order)4), "?");
    for (int i = TS_ORDER_ABCD; i <= TS_ORDER_DCBA; i++) {
        assert_int_equal(ts_word_order_parse(ts_word_order_name((enum ts_word_order)i), &o), TS_OK);
        assert_int_equal(o, i);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_vectors),
        cmocka_unit_test(test_encode_vectors),
        cmocka_unit_test(test_width_regs),
        cmocka_unit_test(test_encode_keeps_low_bits),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_order_parse),
        cmocka_unit_test(test_order_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
