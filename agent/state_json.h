/* SPDX-License-Identifier: Apache-2.0 */
/* state_json.h - the retained JSON documents for dashboards and operators.
 *
 * status: {"state":"online","agent":...,"station":...,"version":...,
 *          "started":"<ISO UTC>","devices":N,"turnstiles":N,"backlog":N,
 *          "merges":N,"merged_rows":N,"store_error":""|"disk full"|"I/O error",
 *          "acks_refused":N,"ack_refused":"<seq>"|"","ack_error":""|"<what>"}
 *          (backlog: readings stored and not yet acknowledged, including those
 *          held in memory while the disk is full; merges: retention merges;
 *          acks_refused: acknowledgements not believed, ack_refused the last
 *          of them as a string (exact in JavaScript whatever its size),
 *          ack_error what is wrong with the acknowledgement now)
 * state:  {"agent":...,"station":...,"time":"<ISO UTC>","clock":"synced"|"unsynced",
 *          "backlog":N,"warnings":N (turnstiles warning),"turnstiles":[{"name","ca",
 *          "unit","scp","station","entries","exits" (register values),
 *          "entries_counted","exits_counted" (people since the agent started),
 *          "time_ms","anomaly_s" (the anomaly run, tally.h; 0: none),
 *          "anomaly" (its flags),"warning" ("" or a sentence)}...],
 *          "devices":[{"name","kind","link":"up"|"down"|"backoff","polls","errors",
 *          "timeouts","exceptions","crc_errors","short_responses",
 *          "connect_errors","last_error","rtt_us"}...],
 *          "sent","resent","pubacks","connects","acked","ack_age_s"} (struct
 *          ts_state_mqtt; for Prometheus through the bridge, docs/monitoring.md)
 * Strings are escaped; the caller frees the result. */
#ifndef TS_STATE_JSON_H
#define TS_STATE_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "agent_config.h"
#include "hal.h"
#include "store.h"
#include "tally.h"

/* What the status says about acknowledgements (docs/mqtt.md). */
struct ts_ack_status {
    uint64_t refused;         /* acknowledgements refused since start */
    uint64_t refused_last;    /* the last one (0: none) */
    const char *error;        /* what is wrong now; NULL or "": nothing */
};

/* The agent's retained status (README, docs/mqtt.md): state "online" or "offline"; reason
 * (NULL: none) follows state, "shutdown" for a clean stop. store: NULL without a store; ack:
 * NULL without MQTT (zeros). Returns a malloc'd string the caller frees; NULL: no memory. */
char *ts_status_json(const struct ts_agent_cfg *cfg, const char *state, const char *reason,
                     int64_t started_ms, const struct ts_store_stats *store,
                     const struct ts_ack_status *ack);

/* The publishing figures of the state (docs/mqtt.md, "State"). */
struct ts_state_mqtt {
    uint64_t sent, resent;    /* readings handed to MQTT since start, of which re-sends */
    uint64_t pubacks;         /* readings the broker PUBACKed since start */
    uint64_t connects;        /* MQTT sessions made since start */
    uint64_t acked;           /* highest reading number acknowledged */
    int64_t ack_age_s;        /* how long readings have waited with the ack unmoved (0: none) */
};

/* mqtt: NULL without MQTT (the fields are left out). */
char *ts_state_json(const struct ts_agent_cfg *cfg, const struct ts_tally *tally,
                    const struct ts_device_stats *devices,
                    bool clock_synced, uint64_t backlog, const struct ts_state_mqtt *mqtt);

#endif
