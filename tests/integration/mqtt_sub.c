/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_sub.c - the tests' MQTT subscriber (see mqtt_sub.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mqtt_sub.h"

#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 20000         /* generous deadline of every wait: never a measure */

static void sub_on_connect(struct mosquitto *m, void *obj, int rc)
{
    struct sub *s = obj;
    if (rc == 0)
        mosquitto_subscribe(m, NULL, s->filter, 1);
}

static void sub_on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *qos)
{
    struct sub *s = obj;
    pthread_mutex_lock(&s->lock);
    s->subscribed = true;
    pthread_mutex_unlock(&s->lock);
}

static void sub_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    struct sub *s = obj;
    pthread_mutex_lock(&s->lock);
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->msgs = realloc(s->msgs, s->cap * sizeof *s->msgs);
        assert_non_null(s->msgs);
    }
    struct msg *d = &s->msgs[s->n++];
    d->topic = strdup(msg->topic);
    d->payload = calloc(1, (size_t)msg->payloadlen + 1);
    memcpy(d->payload, msg->payload, (size_t)msg->payloadlen);
    d->retain = msg->retain;
    pthread_mutex_unlock(&s->lock);
}

void sub_start(struct sub *s, int port, const char *id, const char *filter, bool clean)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    snprintf(s->filter, sizeof s->filter, "%s", filter);
    s->m = mosquitto_new(id, clean, s);
    assert_non_null(s->m);
    mosquitto_int_option(s->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(s->m, sub_on_connect);
    mosquitto_subscribe_callback_set(s->m, sub_on_subscribe);
    mosquitto_message_callback_set(s->m, sub_on_message);
    mosquitto_reconnect_delay_set(s->m, 1, 1, false);
    assert_int_equal(mosquitto_connect(s->m, "127.0.0.1", port, 30), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_loop_start(s->m), MOSQ_ERR_SUCCESS);
    long long deadline = mono_ms() + WAIT_MS;
    for (bool ok = false; !ok; usleep(5000)) {
        pthread_mutex_lock(&s->lock);
        ok = s->subscribed;
        pthread_mutex_unlock(&s->lock);
        assert_true(ok || mono_ms() < deadline);
    }
}

void sub_stop(struct sub *s)
{
    mosquitto_disconnect(s->m);
    mosquitto_loop_stop(s->m, false);
    mosquitto_destroy(s->m);
    for (size_t i = 0; i < s->n; i++) {
        free(s->msgs[i].topic);
        free(s->msgs[i].payload);
    }
    free(s->msgs);
    pthread_mutex_destroy(&s->lock);
}

void sub_publish(struct sub *s, const char *topic, const char *payload, bool retain)
{
    long long deadline = mono_ms() + WAIT_MS;
    int rc;
    while ((rc = mosquitto_publish(s->m, NULL, topic, (int)strlen(payload), payload, 1,
                                   retain)) == MOSQ_ERR_NO_CONN && mono_ms() < deadline)
        usleep(20000);
    assert_int_equal(rc, MOSQ_ERR_SUCCESS);
}
