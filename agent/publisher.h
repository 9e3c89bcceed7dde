/* SPDX-License-Identifier: Apache-2.0 */
/* publisher.h - readings, status and state over MQTT (libmosquitto).
 *
 * QoS 1 with a persistent session (fixed client id, clean session off), MQTT
 * v3.1.1, TLS and username/password from config, keepalive, reconnect with
 * back-off. The network thread is the publisher's own, driving
 * mosquitto_loop (mosquitto_threaded_set): libmosquitto's
 * mosquitto_loop_start/loop_forever stops retrying for good after a TLS
 * error, a DNS failure or an auth error, and its reconnect delays are whole
 * seconds. Any failure is logged with its reason and retried:
 * reconnect_min_ms, then doubling up to reconnect_max_ms, reset by a
 * successful connection. Topics, with
 * P = "turnstile/v1/<station_id>/<agent_id>" (both ids: letters, digits,
 * '.', '_', '-'; see docs/mqtt.md for the payloads):
 *   P/readings  each reading's CSV line (reading.h), QoS 1, in sequence order
 *   P/status    retained JSON, QoS 1: birth on every connect (the latest
 *               ts_publisher_status body, else the birth_json), last will
 *               {"state":"offline",...,"reason":"lost"} set before connecting,
 *               {"state":"offline",...,"reason":"shutdown"} on ts_publisher_free
 *               (unless the caller's last status already said offline)
 *   P/state     retained JSON for dashboards (ts_publisher_state)
 *   P/ack       subscribed (QoS 1, end-to-end mode only): the highest sequence
 *               N such that every reading 1..N is durably in Kafka, published
 *               (retained) by the bridge as plain ASCII decimal digits, e.g.
 *               "1234". Anything else is logged, counted in bad_acks and
 *               ignored; so is a value not above the current one. An ack is
 *               believed only as far as this agent may have published
 *               (ack_bound.h): one above that is ignored, counted in
 *               acks_refused and logged at error level once per episode;
 *               one above the numbers of a store that never published is
 *               offered to the caller for renumbering
 *               (ts_publisher_renumber_ack).
 *
 * The caller (the agent's main loop) owns the store; the publisher never
 * touches it. It asks the caller for readings through ts_publisher_next_seq
 * / ts_publisher_send and reports acknowledgements through
 * ts_publisher_acked. In end-to-end mode the acknowledgement is the ack
 * topic; in puback mode it is the highest sequence such that every
 * published reading up to it got its PUBACK. If the acknowledgement does not
 * advance past what was sent within ack_timeout_ms, or after a reconnect,
 * sending restarts from acked + 1 (readings may arrive twice; the bridge
 * removes duplicates by ID). Readings leave in seq order; a re-send goes
 * through the backlog in order again. A reading accounts for every sequence
 * number after the previous reading sent (merged numbers, see reading.h).
 * The window: at most max_inflight QoS 1 messages (readings and status/state)
 * handed to libmosquitto and not yet PUBACKed; libmosquitto's own limit
 * (MOSQ_OPT_SEND_MAXIMUM) is set to the same value. Messages in flight when
 * the connection drops stay in libmosquitto and are re-sent by it after the
 * reconnect (they keep their window slots until PUBACKed).
 *
 * Threads: every ts_publisher_* call is made from one thread (the caller's);
 * libmosquitto's callbacks run on the publisher's network thread and only
 * touch state guarded by the publisher's lock. */
#ifndef TS_PUBLISHER_H
#define TS_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reading.h"

enum ts_ack_mode { TS_ACK_END_TO_END, TS_ACK_PUBACK };

struct ts_mqtt_cfg {
    char host[256];
    int port;
    char client_id[128];      /* "" : "turnstile-agent-<agent_id>" */
    char username[128], password[128];
    char ca_file[256], cert_file[256], key_file[256]; /* TLS when ca_file is set */
    bool tls_insecure;        /* do not check the server's host name (tests) */
    int keepalive_s;
    int reconnect_min_ms, reconnect_max_ms;
    int max_inflight;         /* readings published and not yet PUBACKed */
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
 * argument), TS_ECONFIG (a cfg value out of range, an unreadable TLS file),
 * TS_ENOMEM. cfg ranges: port 1..65535, keepalive_s 5..65535,
 * 1 <= reconnect_min_ms <= reconnect_max_ms, max_inflight 1..65535,
 * ack_timeout_ms >= 1, state_interval_ms >= 0; cert_file and key_file
 * together and only with ca_file; password only with username. */
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
