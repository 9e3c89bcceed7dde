/* SPDX-License-Identifier: Apache-2.0 */
/* publisher.h - the agent's readings, status and state over MQTT.
 *
 * Built on one ts_mqtt_link (net/mqtt_link.h: connection, back-off, TLS);
 * the publisher keeps the flight window and the acknowledgements. Topics
 * (topics.h), with P = turnstile/v1/<station_id>/<agent_id>: P/readings
 * (QoS 1, in sequence order), P/status (retained: the birth on every
 * connect, the last will "lost", "shutdown" on ts_publisher_free), P/state
 * (retained) and P/ack (subscribed in end-to-end mode). Payloads, which
 * acks are believed (ack_bound.h), re-sending and the window: docs/mqtt.md.
 *
 * The caller owns the store; the publisher never touches it: it asks for
 * readings through ts_publisher_next_seq / ts_publisher_send and reports
 * the acknowledgement through ts_publisher_acked. If the acknowledgement
 * does not advance within ack_timeout_ms (backed off), or after a
 * reconnect, sending restarts after it (duplicates are possible).
 *
 * Threads: every ts_publisher_* call from one thread (the caller's); the
 * link's hooks run on its network thread and take the publisher's lock. */
#ifndef TS_PUBLISHER_H
#define TS_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt_cfg.h"
#include "reading.h"

enum ts_ack_mode { TS_ACK_END_TO_END, TS_ACK_PUBACK };

#define TS_PUBLISHER_INFLIGHT_MAX 65000   /* max_inflight's range is 1..this */

struct ts_mqtt_cfg {
    struct ts_mqtt_link_cfg link; /* the connection (mqtt_cfg.h); client_id "":
                                     "turnstile-agent-<agent_id>" */
    int max_inflight;         /* QoS 1 messages handed over and not yet PUBACKed */
    int ack_timeout_ms;       /* re-publish from acked+1 if no progress */
    enum ts_ack_mode ack_mode;
    int state_interval_ms;    /* P/state at most this often */
};

struct ts_publisher_stats {
    bool connected;
    uint64_t sent;            /* readings handed to libmosquitto (re-sends included) */
    uint64_t resent;          /* of which seq had been sent before */
    uint64_t pubacks;         /* readings PUBACKed */
    uint64_t connects;        /* successful connections (CONNACK accepted) */
    uint64_t connect_failures; /* failed attempts (refused, TLS, network) */
    uint64_t acked;           /* highest acknowledged seq */
    uint64_t bad_acks;        /* malformed ack payloads ignored */
    uint64_t restarts;        /* times sending restarted from acked + 1 */
    uint64_t highest_sent;    /* highest seq handed to libmosquitto by this process */
    size_t inflight;          /* QoS 1 messages not yet PUBACKed */
    uint64_t acks_refused;    /* acks above anything this agent may have published */
    uint64_t ack_refused_last; /* the last of them (0: none) */
    bool ack_refusing;        /* the latest ack heard was one of them */
    uint64_t renumber_ack;    /* ts_publisher_renumber_ack */
};

struct ts_publisher;

/* Creates the client (lent strings are copied). station_id and agent_id make
 * the topic prefix. Does not connect yet. TS_OK, or with a sentence in err:
 * TS_EINVAL (an id with other characters than ts_id_ok allows, NULL
 * argument), TS_ECONFIG (cfg->link refused by ts_mqtt_link_cfg_valid,
 * max_inflight not in 1..TS_PUBLISHER_INFLIGHT_MAX, ack_timeout_ms < 1,
 * state_interval_ms < 0), TS_ENOMEM. */
int ts_publisher_new(const struct ts_mqtt_cfg *cfg, const char *station_id, const char *agent_id,
                     struct ts_publisher **out, char *err, size_t errsize);

/* Starts the network thread, which connects (retried with back-off for
 * ever). birth_json is the body of the birth message (copied); NULL:
 * {"state":"online","agent":"<agent_id>","station":"<station_id>"}.
 * TS_OK, TS_EINVAL if already started, TS_ENOMEM, TS_ESYS. */
int ts_publisher_start(struct ts_publisher *p, const char *birth_json);

/* The sequence after which the caller should fetch readings to send, and
 * how many may be sent now (0 when disconnected or the window is full).
 * Also where the ack timeout is checked: call it regularly (each loop). */
uint64_t ts_publisher_next_seq(struct ts_publisher *p, size_t *room);

/* Publishes readings (in seq order, continuing from next_seq; readings at or
 * below it are skipped) to P/readings, QoS 1, not retained, at most the
 * room next_seq gave. Returns how many were handed to libmosquitto (fewer
 * than n when the window filled up or the connection dropped). A reading
 * that cannot be formatted is logged and passed over. r is only read. */
size_t ts_publisher_send(struct ts_publisher *p, const struct ts_reading *r, size_t n);

/* The highest acknowledged seq (0: none yet); the caller deletes up to it.
 * Never above what this process handed to libmosquitto, except for the
 * floor. */
uint64_t ts_publisher_acked(struct ts_publisher *p);

/* Tells the publisher the lowest seq still stored minus one (believed as
 * acknowledged): at start, so that a fresh agent does not wait for acks of
 * readings it no longer holds, and after a renumbering. */
void ts_publisher_set_floor(struct ts_publisher *p, uint64_t acked_upto);

/* Tells the publisher, at start, the highest seq that earlier runs may have
 * published (the store's publish mark): acks up to it are not refused, and
 * believed as far as this process re-sends. Not called, or 0: the store
 * never published. */
void ts_publisher_set_published(struct ts_publisher *p, uint64_t upto);

/* 0, or an ack above the numbers of a store that never published (nothing
 * sent yet, ts_publisher_set_published 0): the bridge has seen numbers up
 * to it (a replaced store). Nothing is sent while it is not 0; the caller
 * moves its readings past it and calls ts_publisher_set_floor(it), or
 * refuses an absurd value (above TS_SEQ_MAX, store.h) and waits: a later
 * sane ack or a cleared retained ack replaces it. */
uint64_t ts_publisher_renumber_ack(struct ts_publisher *p);

/* Publishes the retained state JSON (QoS 1, P/state) if it changed and
 * state_interval_ms passed since the last one (force: now, changed or
 * not). Nothing while disconnected (the next call after the reconnect
 * publishes). json is copied. */
void ts_publisher_state(struct ts_publisher *p, const char *json, bool force);

/* Publishes the retained status json (e.g. backlog size changed) if
 * connected, and keeps it (copied) as the birth for later reconnects. */
void ts_publisher_status(struct ts_publisher *p, const char *json);

void ts_publisher_get_stats(struct ts_publisher *p, struct ts_publisher_stats *out);

/* fn(ctx) is called on the network thread whenever the caller may have
 * something to do: the window got room (PUBACK), an acknowledgement came, a
 * connection came up. It must be quick and must not call back into the
 * publisher (e.g. signal a condition variable). Set it before start. */
void ts_publisher_set_wake(struct ts_publisher *p, void (*fn)(void *ctx), void *ctx);

/* Publishes status offline (clean shutdown) if connected, unless the last
 * ts_publisher_status body already holds "state":"offline" (then that one
 * stays the retained status); waits up to timeout_ms for in-flight
 * messages (while connected), disconnects (no will), stops the network
 * thread (up to ~3 s more when the broker does not answer) and frees.
 * NULL-safe. */
void ts_publisher_free(struct ts_publisher *p, int timeout_ms);

#endif
