/* SPDX-License-Identifier: Apache-2.0 */
/* relay_pub.c - many simulated agents publishing readings at QoS 1 (bench/relay.sh).
 *
 * C clients (default 100) in one process and one thread, each an agent with
 * its own libmosquitto client (MQTT 3.1.1, clean session, TCP_NODELAY,
 * MOSQ_OPT_SEND_MAXIMUM = W), its own TCP connection and its own topic
 * turnstile/v1/<station>/<agent>/readings. Together they publish N readings
 * (client i gets N / C, the first N % C one more), at QoS 1 with at most W
 * per client not yet PUBACKed: W each once all are connected, then one more
 * for each PUBACK. One poll() serves every socket (mosquitto_loop_read and
 * _write on the ready ones, mosquitto_loop_misc once a second).
 *
 * The readings are what an agent sends: the 18-field line of ts_reading_format
 * (common/reading.h), station time zone America/New_York, agent ids
 * "bench-agent-NNN" (the ID's agent is the topic's agent), 16 turnstiles an
 * agent, one reading per turnstile and minute, seq 1, 2, ... per agent. All
 * lines are formatted before connecting, so the publishing loop does MQTT
 * only.
 *
 * Output, stdout:
 *   connected T0       all C CONNACKs in; T0 (CLOCK_REALTIME, seconds) is when
 *                      the first PUBLISH goes out
 *   RESULT published=N clients=C window=W start=T0 end=T1 elapsed_s=E rate=R cpu_s=S bytes=B
 * (T1: the last PUBACK; E = T1 - T0; S: its user+sys CPU seconds, the
 * formatting included; B: payload bytes in all). Exit status 0 when every
 * reading was PUBACKed, 1 when a connection was lost or --timeout passed,
 * 2 on a usage or connection error.
 *
 * Usage: relay-pub -p PORT [-H HOST] -n N [-c CLIENTS] [-w W] [-s STATIONS] [--timeout S]
 * (defaults: 127.0.0.1, 100 clients, W 100, 10 stations, timeout 3600 s) */
#include <getopt.h>
#include <mosquitto.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "reading.h"

#define TURNSTILES 16

struct client {
    struct mosquitto *m;
    char topic[160];
    char *buf;               /* the lines, back to back, no separator */
    uint32_t *off;           /* line k is buf[off[k] .. off[k + 1]) */
    size_t n, next, acked, inflight;
    bool connected;
};

static struct client *cl;
static size_t n_clients, window = 100, total_acked, total_n, connected;
static bool started, failed;

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(struct client *c)
{
    while (c->inflight < window && c->next < c->n) {
        int rc = mosquitto_publish(c->m, NULL, c->topic, (int)(c->off[c->next + 1] - c->off[c->next]),
                                   c->buf + c->off[c->next], 1, false);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "relay-pub: %s: publish: %s\n", c->topic, mosquitto_strerror(rc));
            failed = true;
            return;
        }
        c->next++;
        c->inflight++;
    }
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    struct client *c = obj;
    if (rc != 0) {
        fprintf(stderr, "relay-pub: %s: connection refused: %s\n", c->topic,
                mosquitto_connack_string(rc));
        exit(2);
    }
    if (c->connected) { /* a re-connection: not expected on loopback */
        fprintf(stderr, "relay-pub: %s: connected again\n", c->topic);
        failed = true;
        return;
    }
    c->connected = true;
    connected++;
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    struct client *c = obj;
    c->inflight--;
    c->acked++;
    total_acked++;
    fill(c);
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    struct client *c = obj;
    if (rc != 0) {
        fprintf(stderr, "relay-pub: %s: connection lost: %s\n", c->topic, mosquitto_strerror(rc));
        failed = true;
    }
}

/* The readings of agent a (its n lines) into c. */
static int make_lines(struct client *c, unsigned a, unsigned stations)
{
    struct ts_reading r;
    uint64_t ent_cum[TURNSTILES], ex_cum[TURNSTILES];
    const int64_t base = 1685160000000LL; /* 2023-05-27 04:00Z */
    char line[TS_READING_LINE_MAX];
    size_t cap = c->n * 160 + 1;

    memset(&r, 0, sizeof r);
    for (unsigned t = 0; t < TURNSTILES; t++) {
        ent_cum[t] = 1000000u + 1000u * a + t;
        ex_cum[t] = 500000u + 1000u * a + t;
    }
    snprintf(r.ca, sizeof r.ca, "A%03u", a);
    snprintf(r.unit, sizeof r.unit, "R%03u", a);
    snprintf(r.station, sizeof r.station, "BENCH STATION %u", a % stations);
    snprintf(r.linename, sizeof r.linename, "NQR456W");
    snprintf(r.division, sizeof r.division, "BMT");
    snprintf(r.desc, sizeof r.desc, "REGULAR");
    snprintf(r.agent_id, sizeof r.agent_id, "bench-agent-%03u", a);
    snprintf(c->topic, sizeof c->topic, "turnstile/v1/BENCH-%02u/%s/readings", a % stations,
             r.agent_id);
    c->buf = malloc(cap);
    c->off = malloc((c->n + 1) * sizeof *c->off);
    if (!c->buf || !c->off)
        return -1;
    size_t used = 0;
    for (size_t k = 0; k < c->n; k++) {
        unsigned t = (unsigned)(k % TURNSTILES);
        snprintf(r.scp, sizeof r.scp, "00-00-%02u", t);
        r.seq = r.merged_from = k + 1;
        r.time_ms = base + (int64_t)(k / TURNSTILES) * 60000 + (int64_t)a * 100;
        r.entries = (k * 7 + a) % 13;
        r.exits = (k * 5 + a) % 11;
        ent_cum[t] += r.entries;
        ex_cum[t] += r.exits;
        r.entries_cum = ent_cum[t];
        r.exits_cum = ex_cum[t];
        int len = ts_reading_format(&r, line, sizeof line);
        if (len <= 0)
            return -1;
        if (used + (size_t)len > cap) {
            cap = cap * 2 + (size_t)len;
            char *b = realloc(c->buf, cap);
            if (!b)
                return -1;
            c->buf = b;
        }
        c->off[k] = (uint32_t)used;
        memcpy(c->buf + used, line, (size_t)len);
        used += (size_t)len;
    }
    c->off[c->n] = (uint32_t)used;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: relay-pub -p PORT [-H HOST] -n N [-c CLIENTS] [-w W] [-s STATIONS] "
               "[--timeout S]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'}, {"port", required_argument, NULL, 'p'},
        {"count", required_argument, NULL, 'n'}, {"clients", required_argument, NULL, 'c'},
        {"window", required_argument, NULL, 'w'}, {"stations", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 'T'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1";
    int port = 0, o;
    unsigned stations = 10;
    double timeout = 3600;

    n_clients = 100;
    while ((o = getopt_long(argc, argv, "H:p:n:c:w:s:T:h", opts, NULL)) != -1) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'n': total_n = strtoull(optarg, NULL, 10); break;
        case 'c': n_clients = strtoul(optarg, NULL, 10); break;
        case 'w': window = strtoul(optarg, NULL, 10); break;
        case 's': stations = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'T': timeout = atof(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (port < 1 || total_n < 1 || n_clients < 1 || n_clients > 1000 || window < 1 ||
        window > 65535 || stations < 1 || optind != argc || total_n / n_clients >= UINT32_MAX / 200) {
        usage(stderr);
        return 2;
    }
    setenv("TZ", "America/New_York", 1);
    tzset();
    cl = calloc(n_clients, sizeof *cl);
    struct pollfd *pfd = calloc(n_clients, sizeof *pfd);
    if (!cl || !pfd)
        return 2;
    uint64_t bytes = 0;
    for (size_t i = 0; i < n_clients; i++) {
        cl[i].n = total_n / n_clients + (i < total_n % n_clients);
        if (make_lines(&cl[i], (unsigned)i, stations)) {
            fprintf(stderr, "relay-pub: cannot format the readings\n");
            return 2;
        }
        bytes += cl[i].off[cl[i].n];
    }

    mosquitto_lib_init();
    for (size_t i = 0; i < n_clients; i++) {
        struct client *c = &cl[i];
        c->m = mosquitto_new(NULL, true, c);
        if (!c->m)
            return 2;
        mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
        mosquitto_int_option(c->m, MOSQ_OPT_SEND_MAXIMUM, (int)window);
        mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1);
        mosquitto_connect_callback_set(c->m, on_connect);
        mosquitto_publish_callback_set(c->m, on_publish);
        mosquitto_disconnect_callback_set(c->m, on_disconnect);
        int rc = mosquitto_connect(c->m, host, port, 60);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "relay-pub: cannot connect to %s:%d: %s\n", host, port,
                    mosquitto_strerror(rc));
            return 2;
        }
    }

    double t0 = 0, t1 = 0, deadline = now_real() + timeout, last_misc = 0;
    while (!failed && total_acked < total_n) {
        if (!started && connected == n_clients) {
            started = true;
            t0 = now_real();
            printf("connected %.6f\n", t0);
            fflush(stdout);
            for (size_t i = 0; i < n_clients; i++)
                fill(&cl[i]); /* written at once: not in a callback, not threaded */
        }
        for (size_t i = 0; i < n_clients; i++) {
            pfd[i].fd = mosquitto_socket(cl[i].m);
            pfd[i].events = (short)(POLLIN | (mosquitto_want_write(cl[i].m) ? POLLOUT : 0));
            pfd[i].revents = 0;
        }
        if (poll(pfd, (nfds_t)n_clients, 100) < 0)
            continue; /* EINTR */
        for (size_t i = 0; i < n_clients && !failed; i++) {
            struct mosquitto *m = cl[i].m;
            int rc = MOSQ_ERR_SUCCESS;
            if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
                rc = mosquitto_loop_read(m, 1);
            /* PUBLISHes queued by on_publish go out now, not at the next poll */
            if (rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(m))
                rc = mosquitto_loop_write(m, 1);
            if (rc != MOSQ_ERR_SUCCESS) {
                fprintf(stderr, "relay-pub: %s: %s\n", cl[i].topic, mosquitto_strerror(rc));
                failed = true;
            }
        }
        double t = now_real();
        if (t - last_misc >= 1.0) {
            for (size_t i = 0; i < n_clients; i++)
                mosquitto_loop_misc(cl[i].m);
            last_misc = t;
        }
        if (t > deadline) {
            fprintf(stderr, "relay-pub: timeout\n");
            failed = true;
        }
    }
    t1 = now_real();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    if (failed)
        fprintf(stderr, "relay-pub: stopped after %zu of %zu PUBACKs\n", total_acked, total_n);
    printf("RESULT published=%zu clients=%zu window=%zu start=%.6f end=%.6f elapsed_s=%.3f "
           "rate=%.0f cpu_s=%.2f bytes=%llu\n",
           total_acked, n_clients, window, t0, t1, t1 - t0,
           t1 > t0 ? (double)total_acked / (t1 - t0) : 0.0, cpu, (unsigned long long)bytes);
    fflush(stdout);
    for (size_t i = 0; i < n_clients; i++) {
        mosquitto_disconnect(cl[i].m);
        mosquitto_loop_write(cl[i].m, 1);
        mosquitto_destroy(cl[i].m);
        free(cl[i].buf);
        free(cl[i].off);
    }
    mosquitto_lib_cleanup();
    free(cl);
    free(pfd);
    return failed ? 1 : 0;
}
