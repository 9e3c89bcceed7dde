/* SPDX-License-Identifier: Apache-2.0 */
/* modbus_link.h - one libmodbus context: a TCP connection or a serial line.
 *
 * Private to the Modbus backends. A TCP device owns its link; the slaves of
 * one RS-485 line share one link (looked up by serial port, reference
 * counted), and the poller polls them from one thread, so a link is never
 * used by two threads at once. */
#ifndef TS_MODBUS_LINK_H
#define TS_MODBUS_LINK_H

#include <modbus.h>
#include <stdint.h>

#include "hal.h"

struct ts_modbus_link;

/* Returns the link for cfg: a new one for TCP, the shared one of the serial
 * port for RTU. NULL on allocation failure. Release with ts_modbus_link_put. */
struct ts_modbus_link *ts_modbus_link_get(const struct ts_device_cfg *cfg);
void ts_modbus_link_put(struct ts_modbus_link *link);

/* Connects if not connected and selects cfg's slave id and timeouts, after
 * the inter-frame delay. Returns the context (lent) or NULL with *err set. */
modbus_t *ts_modbus_link_ready(struct ts_modbus_link *link, const struct ts_device_cfg *cfg, int *err);

/* Marks the end of a frame (for the inter-frame delay). */
void ts_modbus_link_done(struct ts_modbus_link *link);

/* Drops the connection; the next ts_modbus_link_ready reconnects. */
void ts_modbus_link_close(struct ts_modbus_link *link);

/* Maps errno after a failed libmodbus call to a ts_err code. Sets *reconnect
 * when the connection should be dropped. */
int ts_modbus_errno_to_err(int e, int *reconnect);

#endif
