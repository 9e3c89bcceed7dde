/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_link.h - one MQTT connection kept up for ever (libmosquitto).
 *
 * A link is one libmosquitto client (MQTT v3.1.1, TCP_NODELAY) with the
 * settings of [mqtt] (mqtt_cfg.h) and a network thread of its own that
 * connects, runs mosquitto_loop, and reconnects after any failure:
 * reconnect_min_ms, then twice as long each time up to reconnect_max_ms; a
 * CONNACK resets the delay. Every failed attempt is logged with its reason
 * (why not mosquitto_loop_forever: docs/mqtt.md, "Connection"). The agent's
 * publisher and the bridge's relay, acknowledger and readers each own one.
 *
 * The owner hears what happens through ts_mqtt_link_ops, every hook called
 * in the network thread, never with a lock of the link held; any may be NULL:
 *   - connected: a CONNACK accepted the session; called after the loop turn
 *     that received it, i.e. after libmosquitto re-queued what it still held
 *     from the previous connection (what the hook publishes goes out after
 *     it). Subscribe here: nothing is re-subscribed by the link.
 *   - disconnected: the connection announced by connected is gone.
 *   - message, published, subscribed: libmosquitto's on_message, on_publish
 *     and on_subscribe as they are (called inside mosquitto_loop); the
 *     message is lent for the call only.
 *   - tick: after every turn of the loop, at most loop_ms apart.
 *   - clean_stop: asked once when stopping; false closes the socket without
 *     the DISCONNECT (and what libmosquitto still has queued).
 * The hooks, and any thread, may mosquitto_publish and mosquitto_subscribe
 * on ts_mqtt_link_client(link) (threaded mode).
 *
 * Threads: ts_mqtt_link_new, _set_*, _start, _stop and _free from one thread
 * (the owner's); the others from any. */
#ifndef TS_MQTT_LINK_H
#define TS_MQTT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt_cfg.h"

struct mosquitto;
struct mosquitto_message;
struct ts_mqtt_link;

struct ts_mqtt_link_ops {
    void (*connected)(void *ctx, bool session_present);
    void (*disconnected)(void *ctx);
    void (*message)(void *ctx, const struct mosquitto_message *msg);
    void (*published)(void *ctx, int mid);
    void (*subscribed)(void *ctx, int mid, int qos_count, const int *granted);
    void (*tick)(void *ctx);
    bool (*clean_stop)(void *ctx);
};

/* Creates the client (not connected). name prefixes the log lines and
 * errors ("relay" gives "relay: mqtt: ...", "" gives "mqtt: ..."); client_id
 * (ts_mqtt_client_id) is used as is; clean_session false keeps the
 * session (subscriptions, queued QoS 1 messages) on the broker across
 * disconnects. loop_ms: the longest mosquitto_loop turn (the tick period).
 * ops is copied; ctx is passed to every hook. cfg is copied and checked
 * (ts_mqtt_link_cfg_valid). TS_OK; TS_EINVAL (NULL argument), TS_ECONFIG or
 * TS_ENOMEM with a sentence in why. */
int ts_mqtt_link_new(const struct ts_mqtt_link_cfg *cfg, const char *name, const char *client_id,
                     bool clean_session, int loop_ms, const struct ts_mqtt_link_ops *ops,
                     void *ctx, struct ts_mqtt_link **out, char *why, size_t why_size);

/* TCP_NODELAY on the link's socket (on by default): off lets the kernel
 * coalesce small writes, e.g. a subscriber's PUBACKs, which otherwise go out
 * one 4-byte segment each and wake the broker each time (bench/relay.sh:
 * the relay drains a backlog 27-43% faster without it). Before start. */
void ts_mqtt_link_set_nodelay(struct ts_mqtt_link *link, bool on);

/* The last will (retained, QoS 1) the broker publishes if the link is lost
 * without a DISCONNECT. Strings are copied. Before start. TS_OK, TS_EINVAL. */
int ts_mqtt_link_set_will(struct ts_mqtt_link *link, const char *topic, const char *payload);

/* Starts the network thread. TS_OK, TS_EINVAL (started already), TS_ESYS. */
int ts_mqtt_link_start(struct ts_mqtt_link *link);

/* The libmosquitto client, for publish and subscribe (it stays the link's). */
struct mosquitto *ts_mqtt_link_client(struct ts_mqtt_link *link);

/* A session is up (CONNACK accepted, no disconnect since). */
bool ts_mqtt_link_connected(struct ts_mqtt_link *link);

/* Sessions made so far; failed connection attempts so far. */
uint64_t ts_mqtt_link_connects(struct ts_mqtt_link *link);
uint64_t ts_mqtt_link_connect_failures(struct ts_mqtt_link *link);

/* Stops the network thread (within loop_ms): unless clean_stop says
 * otherwise, sends DISCONNECT after what is queued and waits up to 2 s for
 * it to go out. No hook is called after it returns. NULL-safe, idempotent. */
void ts_mqtt_link_stop(struct ts_mqtt_link *link);

/* Stops if needed and frees; NULL-safe. */
void ts_mqtt_link_free(struct ts_mqtt_link *link);

#endif
