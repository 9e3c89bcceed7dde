/* SPDX-License-Identifier: Apache-2.0 */
/* agent_config.h - turnstile-agent's configuration: tables and validation.
 *
 * Sections: [agent], [store] (the SQLite buffer), [mqtt] (the broker; needs
 * [store]), [device NAME] (one per gate controller, RS-485 slave, gpiochip,
 * simulator or HTTP/JSON controller), [turnstile NAME] (one per gate). Without [mqtt] the agent
 * prints its readings on standard output. The key tables in
 * agent_config.c are the single source of parsing, defaults, ranges and the
 * documentation printed by `turnstile-agent --config-doc`. */
#ifndef TS_AGENT_CONFIG_H
#define TS_AGENT_CONFIG_H

#include <stdio.h>

#include "clock.h"
#include "config.h"
#include "hal.h"
#include "publisher.h"
#include "store.h"

struct ts_agent_settings {
    char agent_id[TS_NAME_MAX];
    char station_id[TS_NAME_MAX];
    char timezone[TS_NAME_MAX];
    int poll_interval_ms;
    int recovered_after_polls;   /* gap (in missed polls) that makes a reading RECOVR AUD */
    int log_level;            /* TS_LOG_* */
    /* defaults for the turnstiles' identity fields */
    char ca[16], unit[16], station[64], linename[32], division[16];
    double max_rate_per_min;
    int clock;                /* enum ts_clock_policy */
    int state_interval_ms;
    int anomaly_warn_s;       /* warn after this long of anomalies only (tally.h); 0: never */
};

struct ts_agent_cfg {
    struct ts_agent_settings agent;
    struct ts_device_cfg **devices;       /* owned */
    size_t n_devices;
    struct ts_turnstile_cfg **turnstiles; /* owned */
    size_t n_turnstiles;
    bool has_store, has_mqtt;  /* [store] and [mqtt] present */
    struct ts_store_cfg store;
    struct ts_mqtt_cfg mqtt;
    struct ts_cfg_file file;
};

/* Loads and validates path into cfg (zeroed by the call). TS_OK, or
 * TS_ECONFIG with the first error (one line naming file, line and key) in
 * err and every error in cfg->file (ts_config_print_errors). cfg must be
 * freed with ts_agent_cfg_free in both cases. */
int ts_agent_cfg_load(const char *path, struct ts_agent_cfg *cfg, char *err, size_t errsize);
void ts_agent_cfg_free(struct ts_agent_cfg *cfg);

/* "modbus-tcp HOST:PORT slave N" and the like, for log lines and reports. */
void ts_device_describe(const struct ts_device_cfg *d, char *buf, size_t size);

/* Prints the documentation of every key (markdown). */
void ts_agent_cfg_doc(FILE *out);

#endif
