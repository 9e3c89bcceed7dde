/* SPDX-License-Identifier: Apache-2.0 */
/* bridge_status.h - the bridge's own retained status on MQTT.
 *
 * turnstile/bridge/<bridge id>/status, retained, QoS 1: a JSON document the
 * caller writes (bridge_main.c: relay, partitions, acks, and every problem
 * in words), published when it changes and again after every reconnect.
 * The last will says {"state":"offline","bridge":"<id>","reason":"lost"}.
 * Operators and the dashboard read it; the production ACL lets the
 * bridge's account write and the dashboard's read it (config/mosquitto/).
 * Its own MQTT connection (client id "<client id>-status", clean session),
 * so that a relay stalled by back-pressure does not silence it. Best
 * effort: nothing is queued while disconnected; the newest document goes
 * out on the next connection. */
#ifndef TS_BRIDGE_STATUS_H
#define TS_BRIDGE_STATUS_H

#include <stddef.h>

#include "bridge_config.h"

struct ts_bridge_status;

/* Creates the publisher (not connected). TS_OK, TS_ECONFIG, TS_ENOMEM with a
 * sentence in why. */
int ts_bridge_status_new(const struct ts_bridge_mqtt_cfg *mqtt, const char *bridge_id,
                         struct ts_bridge_status **out, char *why, size_t why_size);

int ts_bridge_status_start(struct ts_bridge_status *st);

/* The status topic of this bridge (lent). */
const char *ts_bridge_status_topic(const struct ts_bridge_status *st);

/* Sets the document (copied); published when it differs from the last one
 * published, or after a reconnect. Thread-safe. */
void ts_bridge_status_set(struct ts_bridge_status *st, const char *json);

/* Another retained document of the bridge on topic (the webhook sources'
 * status and state, webhook.h): json copied, published on this connection
 * when it differs from the last one put there, and again after every
 * reconnect. At most 1024 topics. TS_OK; TS_EINVAL (topic too long),
 * TS_EFULL (too many topics), TS_ENOMEM. Thread-safe. */
int ts_bridge_status_put(struct ts_bridge_status *st, const char *topic, const char *json);

/* Publishes last_json (NULL: none), waits up to flush_ms for it to be
 * confirmed, disconnects and frees; NULL-safe. */
void ts_bridge_status_free(struct ts_bridge_status *st, const char *last_json, int flush_ms);

#endif
