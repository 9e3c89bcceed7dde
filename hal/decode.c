/* SPDX-License-Identifier: Apache-2.0 */
#include "decode.h"

#include <strings.h>

#include "err.h"

static uint16_t swap16(uint16_t v) { return (uint16_t)((v >> 8) | (v << 8)); }

static int lsw_first(enum ts_word_order o) { return o == TS_ORDER_CDAB || o == TS_ORDER_DCBA; }
static int bytes_swapped(enum ts_word_order o) { return o == TS_ORDER_BADC || o == TS_ORDER_DCBA; }

uint64_t ts_decode_regs(const uint16_t *regs, unsigned width, enum ts_word_order order)
{
    int n = ts_width_regs(width);
    uint64_t v = 0;

    for (int i = 0; i < n; i++) {
        /* i counts words from the most significant one */
        uint16_t w = regs[lsw_first(order) ? n - 1 - i : i];
        if (bytes_swapped(order))
            w = swap16(w);
        v = (v << 16) | w;
    }
    return v;
}

void ts_encode_regs(uint64_t value, unsigned width, enum ts_word_order order, uint16_t *regs)
{
    int n = ts_width_regs(width);

    for (int i = n - 1; i >= 0; i--) {
        uint16_t w = (uint16_t)(value & 0xFFFF);
        value >>= 16;
        if (bytes_swapped(order))
            w = swap16(w);
        regs[lsw_first(order) ? n - 1 - i : i] = w;
    }
}

static const struct {
    const char *name32, *name64;
} order_names[] = {
    [TS_ORDER_ABCD] = {"ABCD", "ABCDEFGH"},
    [TS_ORDER_CDAB] = {"CDAB", "GHEFCDAB"},
    [TS_ORDER_BADC] = {"BADC", "BADCFEHG"},
    [TS_ORDER_DCBA] = {"DCBA", "HGFEDCBA"},
};

int ts_word_order_parse(const char *name, enum ts_word_order *out)
{
    for (unsigned i = 0; i < sizeof order_names / sizeof order_names[0]; i++) {
        if (strcasecmp(name, order_names[i].name32) == 0 ||
            strcasecmp(name, order_names[i].name64) == 0) {
            *out = (enum ts_word_order)i;
            return TS_OK;
        }
    }
    return TS_EINVAL;
}

const char *ts_word_order_name(enum ts_word_order order)
{
    return order <= TS_ORDER_DCBA ? order_names[order].name32 : "?";
}
