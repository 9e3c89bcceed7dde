/* SPDX-License-Identifier: Apache-2.0 */
/* min_pub.c - the least a libmosquitto publisher can do: lines from memory, QoS 1, a window.
 *
 * Loads FILE (one message a line, e.g. the reading lines fill-store
 * --lines writes) into memory, connects (MQTT 3.1.1, clean session,
 * TCP_NODELAY, MOSQ_OPT_SEND_MAXIMUM = W, as the agent does) and publishes
 * every line to TOPIC at QoS 1 with at most W messages not yet PUBACKed:
 * W at the CONNACK, then one more for each PUBACK, from libmosquitto's
 * callbacks in its one network thread (mosquitto_loop_forever). The window
 * keeps far below the 65,535 MQTT packet ids. It disconnects when the last
 * PUBACK has arrived and prints:
 *   RESULT published=N elapsed_s=E rate=R cpu_s=C
 * (E: from the CONNACK to the last PUBACK; C: its user+sys CPU seconds, the
 * loading of FILE included).
 *
 * Usage: min-pub -p PORT [-H HOST] -t TOPIC -f FILE [-w W]   (W default 100) */
#include <getopt.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static char *buf;
static size_t *off, n_lines, next, acked, inflight, window = 100;
static const char *topic;
static double t_start, t_end;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(struct mosquitto *m)
{
    while (inflight < window && next < n_lines) {
        size_t len = off[next + 1] - off[next] - 1; /* without the '\n' */
        int rc = mosquitto_publish(m, NULL, topic, (int)len, buf + off[next], 1, false);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "min-pub: publish: %s\n", mosquitto_strerror(rc));
            return; /* retried on the next PUBACK or reconnect */
        }
        next++;
        inflight++;
    }
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    if (rc != 0) {
        fprintf(stderr, "min-pub: connection refused: %s\n", mosquitto_connack_string(rc));
        exit(2);
    }
    if (!t_start)
        t_start = now_s();
    fill(m);
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    inflight--;
    if (++acked == n_lines) {
        t_end = now_s();
        mosquitto_disconnect(m);
        return;
    }
    fill(m);
}

static int load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)size + 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "min-pub: cannot read %s\n", path);
        fclose(f);
        return -1;
    }
    fclose(f);
    if (size && buf[size - 1] != '\n')
        buf[size++] = '\n';
    size_t cap = 1024;
    off = malloc(cap * sizeof *off);
    off[0] = 0;
    for (long i = 0; i < size; i++) {
        if (buf[i] != '\n')
            continue;
        if (n_lines + 2 > cap) {
            cap *= 2;
            off = realloc(off, cap * sizeof *off);
            if (!off)
                return -1;
        }
        off[++n_lines] = (size_t)i + 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *file = NULL;
    int port = 0, o;

    while ((o = getopt(argc, argv, "H:p:t:f:w:h")) != -1) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 't': topic = optarg; break;
        case 'f': file = optarg; break;
        case 'w': window = (size_t)atol(optarg); break;
        default:
            fprintf(o == 'h' ? stdout : stderr,
                    "usage: min-pub -p PORT [-H HOST] -t TOPIC -f FILE [-w W]\n");
            return o == 'h' ? 0 : 2;
        }
    }
    if (!topic || !file || port < 1 || window < 1 || window > 65535) {
        fprintf(stderr, "usage: min-pub -p PORT [-H HOST] -t TOPIC -f FILE [-w W (1..65535)]\n");
        return 2;
    }
    if (load(file) || n_lines == 0) {
        fprintf(stderr, "min-pub: nothing to publish in %s\n", file);
        return 2;
    }
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(NULL, true, NULL);
    if (!m)
        return 2;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, (int)window);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_publish_callback_set(m, on_publish);
    int rc = mosquitto_connect(m, host, port, 60);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "min-pub: cannot connect to %s:%d: %s\n", host, port,
                mosquitto_strerror(rc));
        return 2;
    }
    rc = mosquitto_loop_forever(m, -1, 1);
    if (acked != n_lines) {
        fprintf(stderr, "min-pub: stopped after %zu of %zu PUBACKs: %s\n", acked, n_lines,
                mosquitto_strerror(rc));
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double el = t_end - t_start;
    printf("RESULT published=%zu elapsed_s=%.3f rate=%.0f cpu_s=%.2f\n", n_lines, el,
           el > 0 ? (double)n_lines / el : 0.0, cpu);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    free(buf);
    free(off);
    return 0;
}
