/* SPDX-License-Identifier: Apache-2.0 */
/* hal.c - the device kinds by name, and the bus a device is polled on. No
 * backend here: config parsing links this without any device library. */
#include "hal.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

static const char *const kinds[] = {
    [TS_HAL_MODBUS_TCP] = "modbus-tcp",
    [TS_HAL_MODBUS_RTU] = "modbus-rtu",
    [TS_HAL_GPIO] = "gpio",
    [TS_HAL_SIM] = "sim",
    [TS_HAL_HTTP] = "http",
};

const char *ts_hal_kind_name(enum ts_hal_kind kind)
{
    return (unsigned)kind < sizeof kinds / sizeof kinds[0] ? kinds[kind] : "?";
}

int ts_hal_kind_parse(const char *name, enum ts_hal_kind *out)
{
    for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(kinds[i], name) == 0) {
            *out = (enum ts_hal_kind)i;
            return TS_OK;
        }
    }
    return TS_EINVAL;
}

void ts_hal_bus_key(const struct ts_device_cfg *cfg, char *buf, size_t size)
{
    if (cfg->kind == TS_HAL_MODBUS_RTU)
        snprintf(buf, size, "rtu:%s", cfg->serial_port);
    else
        snprintf(buf, size, "%s:%s", ts_hal_kind_name(cfg->kind), cfg->name);
}
