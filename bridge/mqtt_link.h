/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_link.h - the bridge's MQTT connection, and the topic forms it reads.
 *
 * A link is one libmosquitto client (MQTT v3.1.1) with the settings of
 * [mqtt] (host, port, credentials, TLS, keepalive) and a network thread of
 * its own that connects, runs mosquitto_loop, and reconnects after any
 * failure for ever: reconnect_min_ms, then twice as long each time up to
 * reconnect_max_ms; a CONNACK resets the delay. Every failed attempt is
 * logged with its reason. (libmosquitto's mosquitto_loop_forever gives up
 * for good after a TLS error, an unresolvable host or an auth error, and
 * counts its delays in whole seconds: see docs/mqtt.md.) The relay (a
 * subscriber with a persistent session) and the acknowledger (a publisher)
 * each own one.
 *
 * The owner is told what happens through ts_mqtt_link_ops, every hook
 * called in the network thread, never with a lock of the link held:
 *   - connected: a CONNACK accepted the session. Called after the
 *     mosquitto_loop turn that received it returned, i.e. after libmosquitto
 *     re-queued the QoS 1 messages it still held from the previous
 *     connection: what the hook publishes goes out after them (the newest
 *     retained value wins). Subscribe here: a link re-subscribes on every
 *     connection.
 *   - disconnected: the connection it announced is gone (or failed).
 *   - message, published, subscribed: libmosquitto's on_message,
 *     on_publish and on_subscribe, as they are. The message is lent for the
 *     call only.
 *   - tick: after every turn of the loop, at most loop_ms apart.
 *   - clean_stop: asked once when stopping; false closes the socket without
 *     writing what libmosquitto still has queued (e.g. the PUBACK of a
 *     message the owner did not take), instead of a DISCONNECT after it.
 * Any hook may be NULL. The hooks may call mosquitto_publish and
 * mosquitto_subscribe on ts_mqtt_link_client(link).
 *
 * Threads: ts_mqtt_link_new, _start, _stop and _free from one thread (the
 * owner's); ts_mqtt_link_connected and ts_mqtt_link_client from any. */
#ifndef TS_MQTT_LINK_H
#define TS_MQTT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge_config.h"
#include "reading.h"

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

/* Creates the client (not connected). name prefixes the log lines
 * ("relay", "ack"); client_id is used as is; clean_session false keeps the
 * session (subscriptions, queued QoS 1 messages) on the broker across
 * disconnects. loop_ms: the longest mosquitto_loop turn (the tick period).
 * ops is copied; ctx is passed to every hook. Checks the values it uses
 * (host, port, keepalive, back-off, credentials, TLS files readable).
 * TS_OK; TS_ECONFIG or TS_ENOMEM with a sentence in why. */
int ts_mqtt_link_new(const struct ts_bridge_mqtt_cfg *cfg, const char *name, const char *client_id,
                     bool clean_session, int loop_ms, const struct ts_mqtt_link_ops *ops,
                     void *ctx, struct ts_mqtt_link **out, char *why, size_t why_size);

/* Starts the network thread. TS_OK, TS_EINVAL (started already), TS_ESYS. */
/* TCP_NODELAY on the link's socket (on by default): off lets the kernel
 * coalesce small writes, e.g. a subscriber's PUBACKs, which otherwise go out
 * one 4-byte segment each and wake the broker each time (bench/relay.sh:
 * the relay drains a backlog 27-43% faster without it). Before start. */
void ts_mqtt_link_set_nodelay(struct ts_mqtt_link *link, bool on);

/* The last will (retained, QoS 1) the broker publishes if the link is lost
 * without a DISCONNECT. Strings are copied. Before start. TS_OK, TS_EINVAL. */
int ts_mqtt_link_set_will(struct ts_mqtt_link *link, const char *topic, const char *payload);

int ts_mqtt_link_start(struct ts_mqtt_link *link);

/* The libmosquitto client, for publish and subscribe (it stays the link's). */
struct mosquitto *ts_mqtt_link_client(struct ts_mqtt_link *link);

/* A session is up (CONNACK accepted, no disconnect since). */
bool ts_mqtt_link_connected(struct ts_mqtt_link *link);

/* Sessions made so far. */
uint64_t ts_mqtt_link_connects(struct ts_mqtt_link *link);

/* Stops the network thread (within loop_ms): unless clean_stop says
 * otherwise, sends DISCONNECT after what is queued and waits up to 2 s for
 * it to go out. No hook is called after it returns. NULL-safe, idempotent. */
void ts_mqtt_link_stop(struct ts_mqtt_link *link);

/* Stops if needed and frees; NULL-safe. */
void ts_mqtt_link_free(struct ts_mqtt_link *link);

/* The bridge's client id: cfg->client_id, or "turnstile-bridge-<bridge_id>",
 * followed by suffix ("" or "-ack"). TS_OK or TS_EINVAL (too long). */
int ts_mqtt_client_id(const struct ts_bridge_mqtt_cfg *cfg, const char *bridge_id,
                      const char *suffix, char *buf, size_t size);

#endif
