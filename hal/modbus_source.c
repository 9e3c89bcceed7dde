/* SPDX-License-Identifier: Apache-2.0 */
/* modbus_source.c - the modbus-tcp and modbus-rtu backends. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "err.h"
#include "hal_private.h"
#include "log.h"
#include "modbus_link.h"
#include "now.h"

static int modbus_create(struct ts_source *src)
{
    src->data = ts_modbus_link_get(src->cfg);
    return src->data ? TS_OK : TS_ENOMEM;
}

static void modbus_destroy(struct ts_source *src)
{
    ts_modbus_link_put(src->data);
    src->data = NULL;
}

static int modbus_open(struct ts_source *src)
{
    int err = TS_OK;
    return ts_modbus_link_ready(src->data, src->cfg, &err) ? TS_OK : err;
}

static void modbus_close_link(struct ts_source *src)
{
    /* Slaves of one RS-485 line share the port: one slave's fault must not
     * close it under the others; the line is flushed by the failing read. */
    if (src->data && src->cfg->kind == TS_HAL_MODBUS_TCP)
        ts_modbus_link_close(src->data);
}

/* Reads `count` registers at addr into regs, once. */
static int read_once(struct ts_source *src, const struct ts_turnstile_cfg *t, int addr, int count,
                     uint16_t *regs)
{
    int err = TS_OK, reconnect;
    modbus_t *ctx = ts_modbus_link_ready(src->data, src->cfg, &err);
    int n;

    if (!ctx)
        return err;
    n = t->reg_type == TS_REG_INPUT ? modbus_read_input_registers(ctx, addr, count, regs)
                                    : modbus_read_registers(ctx, addr, count, regs);
    ts_modbus_link_done(src->data);
    if (n == count)
        return TS_OK;
    if (n >= 0)
        return TS_ESHORT;
    err = ts_modbus_errno_to_err(errno, &reconnect);
    if (reconnect) {
        if (src->cfg->kind == TS_HAL_MODBUS_RTU && err != TS_EIO)
            modbus_flush(ctx);
        else
            ts_modbus_link_close(src->data);
    }
    return err;
}

static int read_regs(struct ts_source *src, const struct ts_turnstile_cfg *t, int addr, int count,
                     uint16_t *regs)
{
    int err = TS_OK;
    for (int attempt = 0; attempt <= src->cfg->retries; attempt++) {
        err = read_once(src, t, addr, count, regs);
        /* an exception is the device's answer: asking again will not change it */
        if (err == TS_OK || err > TS_EDEVICE_BASE)
            break;
    }
    return err;
}

static int modbus_read_counters(struct ts_source *src, size_t i, uint64_t *entries, uint64_t *exits)
{
    const struct ts_turnstile_cfg *t = src->turnstiles[i];
    int n = ts_width_regs(t->width);
    uint16_t regs[8];
    int64_t start = ts_mono_us();
    int err;

    if (t->exits_address == t->entries_address + n) {
        err = read_regs(src, t, t->entries_address, 2 * n, regs);
    } else {
        err = read_regs(src, t, t->entries_address, n, regs);
        if (err == TS_OK)
            err = read_regs(src, t, t->exits_address, n, regs + n);
    }
    if (err != TS_OK)
        return err;
    src->last_rtt_us = ts_mono_us() - start;
    *entries = ts_decode_regs(regs, t->width, t->order);
    *exits = ts_decode_regs(regs + n, t->width, t->order);
    return TS_OK;
}

static int modbus_read_raw(struct ts_source *src, size_t i, int addr, int count, uint16_t *regs)
{
    return read_regs(src, src->turnstiles[i], addr, count, regs);
}

const struct ts_hal_backend ts_backend_modbus_tcp = {
    .name = "modbus-tcp",
    .create = modbus_create,
    .open = modbus_open,
    .read = modbus_read_counters,
    .read_regs = modbus_read_raw,
    .close = modbus_close_link,
    .destroy = modbus_destroy,
};

const struct ts_hal_backend ts_backend_modbus_rtu = {
    .name = "modbus-rtu",
    .create = modbus_create,
    .open = modbus_open,
    .read = modbus_read_counters,
    .read_regs = modbus_read_raw,
    .close = modbus_close_link,
    .destroy = modbus_destroy,
};
