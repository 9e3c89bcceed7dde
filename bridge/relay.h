/* SPDX-License-Identifier: Apache-2.0 */
/* relay.h - MQTT to Kafka: the agents' readings into the readings topic.
 *
 * The relay subscribes (QoS 1) to turnstile/v1/+/+/readings with a persistent
 * session (clean_session false), or, when mqtt->share_group is set so that
 * several bridges split the stream, to $share/<group>/turnstile/v1/+/+/readings
 * with a clean session (docs/bridge.md says why). For each message:
 *   - ts_verdict_judge (verdict.h) decides, with the retain flag and the
 *     wall clock as reference time;
 *   - a valid reading is produced to kafka->readings_topic, key = agent id
 *     (one agent's readings stay in order in one partition: the layout's,
 *     see ts_relay_new), value = the
 *     payload unchanged, timestamp = the reference time (the aggregator
 *     judges against it again), header "mqtt_topic" = the MQTT topic (the
 *     aggregator derives the ack topic from it); the producer has acks=all,
 *     enable.idempotence=true and no message timeout (a message waits in the
 *     queue for as long as Kafka is away);
 *   - anything else goes to kafka->deadletter_topic, value = the payload as
 *     received (any bytes, the first 64 KiB), headers "reason" (a
 *     sentence) and "mqtt_topic", and is counted; it takes its place in the
 *     same producer queue as the readings, so invalid messages never stop
 *     the valid ones around them;
 *   - the agent's own reading refused by policy (TS_VERDICT_POLICY) gets,
 *     once Kafka confirmed its dead letter, a marker in the readings topic
 *     (same key, NULL value, headers mqtt_topic, reason, refused_id,
 *     refused_from) so that the agent's ack passes its numbers.
 * When librdkafka's queue is full (queue_max_messages) the relay takes no
 * more MQTT messages until it has room; nothing taken is dropped while the
 * process lives (back-pressure, the broker settings it needs and what a
 * crash loses: docs/bridge.md).
 *
 * Threads: libmosquitto's network loop runs in a thread the relay owns (the
 * message callback runs there); delivery reports are served by a second
 * thread. The functions below are called from one thread (the main loop). */
#ifndef TS_RELAY_H
#define TS_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge_config.h"
#include "verdict.h"

struct ts_relay_stats {
    bool connected;           /* MQTT session up */
    uint64_t received;        /* MQTT messages taken */
    uint64_t produced;        /* valid readings handed to librdkafka */
    uint64_t delivered;       /* of which Kafka confirmed (acks=all) */
    uint64_t dead_letters;    /* invalid messages sent to the dead-letter topic */
    uint64_t dead_letters_policy; /* of which refused by policy (TS_VERDICT_POLICY) */
    uint64_t markers;         /* markers produced: the agent's own readings refused by
                                 policy, whose dead letter Kafka confirmed (verdict.h) */
    uint64_t delivery_errors; /* delivery reports with an error (logged) */
    uint64_t backpressure_waits; /* times the queue was full */
    uint64_t connects;        /* MQTT connections made */
    size_t queued;            /* messages in librdkafka's queue now */
    int32_t layout;           /* partitions readings are placed over (0: none yet) */
    int32_t topic_partitions; /* the topic's count as last seen (0: not yet) */
    bool fatal;               /* librdkafka raised a fatal error: the producer is dead,
                                 the relay takes nothing more; exit non-zero and let
                                 the service manager restart the bridge */
};

struct ts_relay;

/* Creates the relay: the MQTT client (client id mqtt->client_id, or
 * "turnstile-bridge-<bridge->id>") and the Kafka producer (bridge's event-time
 * bounds go to the verdict). layout: the partitions the agents are spread
 * over (layout.h; readings are placed by it, whatever the topic's count),
 * or 0 to take the topic's count at the first reading. Does not connect
 * yet. TS_OK; TS_ECONFIG (a bad value, a TLS file that cannot be read, a
 * librdkafka property refused) or TS_ENOMEM, with a sentence in why. */
int ts_relay_new(const struct ts_bridge_mqtt_cfg *mqtt, const struct ts_bridge_kafka_cfg *kafka,
                 const struct ts_bridge_settings *bridge, int32_t layout, struct ts_relay **out,
                 char *why, size_t why_size);

/* Starts the threads; the MQTT connection is made and re-made (back-off
 * reconnect_min_ms .. reconnect_max_ms) for ever. TS_OK or TS_ESYS. */
int ts_relay_start(struct ts_relay *relay);

void ts_relay_stats(struct ts_relay *relay, struct ts_relay_stats *st);

/* One message from another channel than MQTT (the webhook, webhook.h), judged
 * by the caller (*v, from ts_verdict_judge with topic as its topic), handed
 * to the same producer as the relay's own: a reading to the readings topic
 * (key v->agent, timestamp now_ms, header mqtt_topic = topic), anything else
 * to the dead-letter topic (headers reason, mqtt_topic; a POLICY refusal's
 * marker follows its confirmation), counted with the relay's. Never waits:
 * TS_EBUSY when the producer queue is full, TS_EIO when the relay stops or
 * the producer is dead, TS_ENOMEM. On TS_OK, done(arg, err) (may be NULL) is
 * called once, on the delivery thread, with TS_OK once Kafka confirmed it
 * (acks=all) or TS_EIO if it was not delivered (including at ts_relay_free:
 * arg must live until then). payload and topic are copied. Thread-safe. */
int ts_relay_produce(struct ts_relay *relay, const char *topic, const void *payload, size_t len,
                     const struct ts_verdict *v, int64_t now_ms, void (*done)(void *arg, int err),
                     void *arg);

/* Stops taking messages (disconnects from MQTT), waits up to flush_ms for
 * Kafka to confirm what is queued (what is not confirmed then is logged as
 * left for the agents to re-send), and frees; NULL-safe. */
void ts_relay_free(struct ts_relay *relay, int flush_ms);

#endif
