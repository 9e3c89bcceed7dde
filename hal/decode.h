/* SPDX-License-Identifier: Apache-2.0 */
/* decode.h - turning Modbus registers into counter values and back.
 *
 * A counter is 16, 32 or 64 bits wide, stored in width/16 consecutive
 * registers. The order names the byte layout for 32 bits and generalises to
 * 64 bits (the 64-bit names are accepted as aliases):
 *   ABCD (ABCDEFGH) most significant register first, big-endian bytes (Modbus)
 *   CDAB (GHEFCDAB) least significant register first, big-endian bytes
 *   BADC (BADCFEHG) most significant register first, bytes swapped
 *   DCBA (HGFEDCBA) least significant register first, bytes swapped
 * For 16 bits only the byte swap matters: ABCD = CDAB, BADC = DCBA. */
#ifndef TS_DECODE_H
#define TS_DECODE_H

#include <stdint.h>

enum ts_word_order { TS_ORDER_ABCD, TS_ORDER_CDAB, TS_ORDER_BADC, TS_ORDER_DCBA };

/* Number of registers a counter of `width` bits occupies (1, 2 or 4). */
static inline int ts_width_regs(unsigned width) { return (int)(width / 16); }

/* Decodes width/16 registers from regs. width is 16, 32 or 64. */
uint64_t ts_decode_regs(const uint16_t *regs, unsigned width, enum ts_word_order order);

/* Encodes the low `width` bits of value into width/16 registers at regs. */
void ts_encode_regs(uint64_t value, unsigned width, enum ts_word_order order, uint16_t *regs);

/* Parses an order name (case-insensitive, 32- or 64-bit form). 0 or TS_EINVAL. */
int ts_word_order_parse(const char *name, enum ts_word_order *out);
const char *ts_word_order_name(enum ts_word_order order);

#endif
