/* SPDX-License-Identifier: Apache-2.0 */
/* agent_status.h - every agent's figures, from its retained status and
 * state on MQTT, for /metrics (metrics.h, docs/monitoring.md).
 *
 * Its own MQTT link (client id "<client id>-metrics", clean session)
 * subscribes to turnstile/v1/+/+/status and turnstile/v1/+/+/state (QoS 0;
 * the broker sends the retained ones at once). Each payload is untrusted
 * JSON (docs/mqtt.md's documents): at most 1 MiB, nested at most 8 deep,
 * read for the numbers it names; anything else in it is ignored and a
 * payload that does not parse is counted and leaves the agent's figures as
 * they were. Agents are told apart by the topic's ids (the broker's ACL
 * ties them to the agent's account), at most max_agents of them (the
 * documents of the others are counted); an empty retained status hides one. Thread-safe. */
#ifndef TS_AGENT_STATUS_H
#define TS_AGENT_STATUS_H

#include <stddef.h>

#include "bridge_config.h"
#include "strbuf.h"

struct ts_agent_status;

/* Creates the reader and starts its link. TS_OK; TS_ECONFIG, TS_ENOMEM,
 * TS_ESYS with a sentence in why. */
int ts_agent_status_new(const struct ts_bridge_mqtt_cfg *mqtt, const char *bridge_id,
                        int max_agents, struct ts_agent_status **out, char *why,
                        size_t why_size);

/* Applies one message (topic, payload of len bytes) as if it came from the
 * broker: for tests. */
void ts_agent_status_apply(struct ts_agent_status *s, const char *topic, const void *payload,
                           size_t len);

/* Appends the agents' families in the Prometheus text format to out; returns
 * out->err (TS_OK, or its first failure: TS_ENOMEM, TS_EFULL). */
int ts_agent_status_render(struct ts_agent_status *s, struct ts_strbuf *out);

/* Stops the link and frees; NULL-safe. */
void ts_agent_status_free(struct ts_agent_status *s);

#endif
