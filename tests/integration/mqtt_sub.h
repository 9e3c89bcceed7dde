/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_sub.h - the tests' own MQTT subscriber (plain libmosquitto, not the
 * code under test): records every message it receives, under its lock.
 * Failures are cmocka assertions. */
#ifndef TS_TEST_MQTT_SUB_H
#define TS_TEST_MQTT_SUB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct msg {
    char *topic, *payload;    /* owned, NUL-terminated */
    bool retain;
};

struct sub {
    struct mosquitto *m;
    pthread_mutex_t lock;     /* guards everything below */
    bool subscribed;
    char filter[160];
    struct msg *msgs;
    size_t n, cap;
};

/* Connects to 127.0.0.1:port as id (NULL: a random one), subscribes to
 * filter (QoS 1) on every connection and waits for the SUBACK. clean:
 * clean session (false: a persistent one). Reconnects after 1 s. */
void sub_start(struct sub *s, int port, const char *id, const char *filter, bool clean);

/* Disconnects and frees what was recorded. */
void sub_stop(struct sub *s);

/* Publishes (QoS 1); waits for the client to reconnect first if needed. */
void sub_publish(struct sub *s, const char *topic, const char *payload, bool retain);

#endif
