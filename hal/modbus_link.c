/* SPDX-License-Identifier: Apache-2.0 */
#include "modbus_link.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "now.h"

struct ts_modbus_link {
    modbus_t *ctx;
    int connected;
    int refs;
    char port[TS_PATH_MAX];     /* serial port for shared RTU links, "" for TCP */
    int64_t last_frame_ns;
    struct ts_modbus_link *next; /* registry of shared RTU links */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ts_modbus_link *registry;

static modbus_t *new_context(const struct ts_device_cfg *cfg)
{
    if (cfg->kind == TS_HAL_MODBUS_TCP) {
        char port[16];
        snprintf(port, sizeof port, "%d", cfg->port);
        return modbus_new_tcp_pi(cfg->host, port);
    }
    return modbus_new_rtu(cfg->serial_port, cfg->baud, cfg->parity, cfg->data_bits, cfg->stop_bits);
}

struct ts_modbus_link *ts_modbus_link_get(const struct ts_device_cfg *cfg)
{
    struct ts_modbus_link *link = NULL;
    int shared = cfg->kind == TS_HAL_MODBUS_RTU;

    pthread_mutex_lock(&registry_lock);
    for (link = shared ? registry : NULL; link; link = link->next)
        if (strcmp(link->port, cfg->serial_port) == 0)
            break;
    if (link) {
        link->refs++;
    } else if ((link = calloc(1, sizeof *link))) {
        link->ctx = new_context(cfg);
        if (!link->ctx) {
            TS_LOG(TS_LOG_ERR, "device %s: cannot create Modbus context: %s", cfg->name,
                   modbus_strerror(errno));
            free(link);
            link = NULL;
        } else {
            link->refs = 1;
            if (shared) {
                snprintf(link->port, sizeof link->port, "%s", cfg->serial_port);
                link->next = registry;
                registry = link;
            }
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return link;
}

void ts_modbus_link_put(struct ts_modbus_link *link)
{
    if (!link)
        return;
    pthread_mutex_lock(&registry_lock);
    if (--link->refs > 0) {
        pthread_mutex_unlock(&registry_lock);
        return;
    }
    for (struct ts_modbus_link **p = &registry; *p; p = &(*p)->next) {
        if (*p == link) {
            *p = link->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    ts_modbus_link_close(link);
    modbus_free(link->ctx);
    free(link);
}

static void set_timeout(modbus_t *ctx, int ms, int (*set)(modbus_t *, uint32_t, uint32_t))
{
    set(ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
}

modbus_t *ts_modbus_link_ready(struct ts_modbus_link *link, const struct ts_device_cfg *cfg, int *err)
{
    set_timeout(link->ctx, cfg->response_timeout_ms, modbus_set_response_timeout);
    if (cfg->byte_timeout_ms > 0)
        set_timeout(link->ctx, cfg->byte_timeout_ms, modbus_set_byte_timeout);
    else
        modbus_set_byte_timeout(link->ctx, 0, 0); /* libmodbus: 0,0 disables it */
    if (!link->connected) {
        if (modbus_connect(link->ctx) == -1) {
            TS_LOG(TS_LOG_DEBUG, "device %s: connect: %s", cfg->name, modbus_strerror(errno));
            *err = TS_ECONNECT;
            return NULL;
        }
        link->connected = 1;
        link->last_frame_ns = ts_mono_ns();
    }
    if (modbus_set_slave(link->ctx, cfg->slave_id) == -1) {
        *err = TS_EINVAL;
        return NULL;
    }
    if (cfg->kind == TS_HAL_MODBUS_RTU && cfg->frame_delay_ms > 0) {
        int64_t wait = link->last_frame_ns + (int64_t)cfg->frame_delay_ms * 1000000 - ts_mono_ns();
        if (wait > 0) {
            struct timespec ts = {wait / 1000000000, wait % 1000000000};
            while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
                ;
        }
    }
    return link->ctx;
}

void ts_modbus_link_done(struct ts_modbus_link *link)
{
    link->last_frame_ns = ts_mono_ns();
}

void ts_modbus_link_close(struct ts_modbus_link *link)
{
    if (link && link->connected) {
        modbus_close(link->ctx);
        link->connected = 0;
    }
}

int ts_modbus_errno_to_err(int e, int *reconnect)
{
    *reconnect = 0;
    if (e > MODBUS_ENOBASE && e < MODBUS_ENOBASE + 64) {
        int code = e - MODBUS_ENOBASE;
        if (e == EMBBADCRC) {
            *reconnect = 1; /* the line may be out of step: start clean */
            return TS_ECRC;
        }
        if (e == EMBBADDATA || e == EMBBADEXC || e == EMBUNKEXC || e == EMBMDATA ||
            e == EMBBADSLAVE) {
            *reconnect = 1;
            return TS_ESHORT;
        }
        if (code >= 1 && code <= 11)
            return TS_EDEVICE_BASE + code;
        *reconnect = 1;
        return TS_EIO;
    }
    if (e == ETIMEDOUT) {
        *reconnect = 1; /* a late answer must not be taken for the next one */
        return TS_ETIMEOUT;
    }
    *reconnect = 1;
    return TS_EIO;
}
