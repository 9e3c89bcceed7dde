/* SPDX-License-Identifier: Apache-2.0 */
/* count_sub.c - counts readings at an MQTT subscriber until it has all of them.
 *
 * Subscribes (QoS 1, clean session, MQTT 3.1.1) to TOPIC and parses each
 * message as a reading line: the ID field (the 12th CSV field,
 * "<agent_id>:<seq>") gives its sequence number. It counts distinct
 * sequence numbers 1..N (a bitmap), duplicates, and other messages (no
 * parsable ID, or a seq outside 1..N), and stops when it has all N
 * distinct ones. It prints "ready" on stdout once the broker has
 * acknowledged the subscription (start the publisher after that), and at
 * the end the time from the first message to the one that completed the
 * set, and readings/s over that time:
 *   RESULT distinct=N duplicates=D other=O elapsed_s=E rate=R cpu_s=C
 * (C: its own user+sys CPU seconds, from the connection on)
 * Exit status 0 when all N arrived; 1 (with the same line, as far as it
 * got) when no message came for --idle seconds after the first one, or
 * --timeout seconds passed in all; 2 on a usage or connection error.
 *
 * Usage: count-sub -p PORT [-H HOST] -t TOPIC -n N [--timeout S] [--idle S]
 * (defaults: 127.0.0.1, timeout 3600 s, idle 60 s). */
#include <getopt.h>
#include <mosquitto.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static uint8_t *seen;     /* bitmap of seq 1..n */
static uint64_t n, distinct, dups, other, total;
static double t_first, t_done, t_last_msg;
static bool subscribed, done;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The seq of the ID field (12th), "<agent>:<seq>"; 0 if there is none. */
static uint64_t parse_seq(const char *p, int len)
{
    int i = 0, commas = 0;
    while (i < len && commas < 11)
        if (p[i++] == ',')
            commas++;
    if (commas < 11)
        return 0;
    int end = i;
    while (end < len && p[end] != ',')
        end++;
    int colon = -1;
    for (int k = i; k < end; k++)
        if (p[k] == ':')
            colon = k;
    if (colon < 0 || colon + 1 >= end || end - colon - 1 > 19)
        return 0;
    uint64_t v = 0;
    for (int k = colon + 1; k < end; k++) {
        if (p[k] < '0' || p[k] > '9')
            return 0;
        v = v * 10 + (uint64_t)(p[k] - '0');
    }
    return v;
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    const char *topic = obj;
    if (rc != 0) {
        fprintf(stderr, "count-sub: connection refused: %s\n", mosquitto_connack_string(rc));
        exit(2);
    }
    if (mosquitto_subscribe(m, NULL, topic, 1) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "count-sub: cannot subscribe to %s\n", topic);
        exit(2);
    }
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int qos_count,
                         const int *granted)
{
    if (qos_count < 1 || granted[0] != 1) {
        fprintf(stderr, "count-sub: subscription not granted at QoS 1 (%d)\n",
                qos_count ? granted[0] : -1);
        exit(2);
    }
    subscribed = true;
    printf("ready\n");
    fflush(stdout);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    double t = now_s();
    if (total++ == 0)
        t_first = t;
    t_last_msg = t;
    uint64_t s = parse_seq(msg->payload, msg->payloadlen);
    if (s < 1 || s > n) {
        other++;
        return;
    }
    uint8_t bit = (uint8_t)(1u << ((s - 1) & 7));
    if (seen[(s - 1) >> 3] & bit) {
        dups++;
        return;
    }
    seen[(s - 1) >> 3] |= bit;
    if (++distinct == n) {
        t_done = t;
        done = true;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: count-sub -p PORT [-H HOST] -t TOPIC -n N [--timeout S] [--idle S]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'}, {"port", required_argument, NULL, 'p'},
        {"topic", required_argument, NULL, 't'}, {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 'T'}, {"idle", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1", *topic = NULL;
    int port = 0, o;
    double timeout = 3600, idle = 60;

    while ((o = getopt_long(argc, argv, "H:p:t:n:T:I:h", opts, NULL)) != -1) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 't': topic = optarg; break;
        case 'n': n = strtoull(optarg, NULL, 10); break;
        case 'T': timeout = atof(optarg); break;
        case 'I': idle = atof(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!topic || port < 1 || n < 1 || optind != argc) {
        usage(stderr);
        return 2;
    }
    seen = calloc((size_t)(n + 7) / 8, 1);
    if (!seen)
        return 2;
    mosquitto_lib_init();
    char id[64];
    snprintf(id, sizeof id, "count-sub-%ld", (long)getpid());
    struct mosquitto *m = mosquitto_new(id, true, (void *)topic);
    if (!m)
        return 2;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_message_callback_set(m, on_message);
    int rc = mosquitto_connect(m, host, port, 60);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "count-sub: cannot connect to %s:%d: %s\n", host, port,
                mosquitto_strerror(rc));
        return 2;
    }
    double start = now_s();
    const char *why = NULL;
    while (!done) {
        rc = mosquitto_loop(m, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            why = mosquitto_strerror(rc);
            break;
        }
        double t = now_s();
        if (t - start > timeout) {
            why = "timeout";
            break;
        }
        if (total && t - t_last_msg > idle) {
            why = "no message for --idle seconds";
            break;
        }
    }
    double el = (done ? t_done : t_last_msg) - t_first;
    if (!total)
        el = 0;
    if (why)
        fprintf(stderr, "count-sub: stopped (%s) with %llu of %llu readings\n", why,
                (unsigned long long)distinct, (unsigned long long)n);
    fprintf(stderr, "count-sub: %llu distinct readings, %llu duplicates, %llu other messages "
            "in %.3f s from the first message: %.0f readings/s\n",
            (unsigned long long)distinct, (unsigned long long)dups, (unsigned long long)other, el,
            el > 0 ? (double)distinct / el : 0.0);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("RESULT distinct=%llu duplicates=%llu other=%llu elapsed_s=%.3f rate=%.0f cpu_s=%.2f\n",
           (unsigned long long)distinct, (unsigned long long)dups, (unsigned long long)other, el,
           el > 0 ? (double)distinct / el : 0.0, cpu);
    fflush(stdout);
    if (done)
        mosquitto_disconnect(m);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    free(seen);
    return done ? 0 : 1;
}
