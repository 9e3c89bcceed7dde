/* SPDX-License-Identifier: Apache-2.0 */
/* broker.h - a real mosquitto broker for C integration tests.
 *
 * broker_start runs /usr/sbin/mosquitto (never the system's service) with a
 * config of its own in a fresh temporary directory: a plain listener on a
 * free 127.0.0.1 port, optionally a TLS listener on a second free port
 * (a CA, a server certificate for 127.0.0.1/localhost and a client
 * certificate are generated there with the openssl command line), optionally
 * a password file (mosquitto_passwd) with anonymous access refused, and
 * persistence in the directory, so that broker_restart keeps sessions and
 * queued messages. Ports are picked by binding port 0; if mosquitto then
 * fails to bind (another process took the port), new ports are tried.
 *
 * The broker is killed when the test process dies (PR_SET_PDEATHSIG).
 * Everything returns 0 on success, -1 on failure with a line on stderr. */
#ifndef TS_BROKER_H
#define TS_BROKER_H

#include <stdbool.h>
#include <sys/types.h>

struct broker_opts {
    bool tls;                 /* also a TLS listener (tls_port) */
    bool require_cert;        /* the TLS listener demands a client certificate */
    const char *username;     /* with password: password file, no anonymous */
    const char *password;
    const char *extra_conf;   /* raw lines appended to mosquitto.conf, or NULL */
};

struct broker {
    pid_t pid;                /* 0 while not running */
    int port;                 /* plain MQTT on 127.0.0.1 */
    int tls_port;             /* MQTT over TLS on 127.0.0.1; 0 without TLS */
    char dir[128];            /* config, log, persistence, certificates */
    char conf[256];           /* dir/mosquitto.conf */
    char log[256];            /* dir/mosquitto.log (the broker's own log) */
    char out[256];            /* dir/mosquitto.out (its stdout and stderr) */
    char ca_file[256];        /* dir/ca.crt: the CA that signed both certs */
    char client_cert[256];    /* dir/client.crt */
    char client_key[256];     /* dir/client.key */
    char other_ca_file[256];  /* dir/other-ca.crt: a CA the broker does not use */
    struct broker_opts opts;  /* strings not copied: keep them alive */
};

/* Creates the directory (and certificates), writes the config, starts the
 * broker and waits until every listener accepts connections. */
int broker_start(struct broker *b, const struct broker_opts *opts);

/* SIGTERM (mosquitto saves its persistence file), waits for the exit. */
int broker_stop(struct broker *b);

/* SIGKILL: a crash; only what the last autosave wrote survives. */
int broker_kill(struct broker *b);

/* Starts the broker again on the same ports with the same directory, and
 * waits until it accepts connections. */
int broker_restart(struct broker *b);

/* Waits until the listeners accept TCP connections (and the broker still
 * runs). */
int broker_wait_ready(struct broker *b, int timeout_ms);

/* Stops the broker if it runs and removes its directory. */
void broker_cleanup(struct broker *b);

/* Prints the last lines of the broker's log to stderr (on test failure). */
void broker_dump_log(const struct broker *b, int lines);

#endif
