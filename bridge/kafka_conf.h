/* SPDX-License-Identifier: Apache-2.0 */
/* kafka_conf.h - librdkafka properties passed through from [kafka] (TLS, SASL...).
 *
 * A [kafka] key "rdkafka.NAME = VALUE" sets librdkafka property NAME on every
 * Kafka client the bridge makes (relay producer, aggregator consumer,
 * dead-letter producer, --repartition's client). A value kept out of the
 * config file: "rdkafka.NAME_file = PATH" (the file's content, trailing line
 * breaks removed) or "rdkafka.NAME_env = VARIABLE". Properties the bridge
 * sets itself or relies on (client and group ids, commits, idempotence,
 * isolation, transactions...) are refused. docs/kafka.md, "Secured Kafka".
 *
 * Secrets (values from a file or the environment, and the values of
 * properties whose name holds password, secret, key.pem, oauthbearer.config)
 * never appear in an error message, and ts_kafka_log masks them in
 * librdkafka's log lines: they are registered process-wide when read. */
#ifndef TS_KAFKA_CONF_H
#define TS_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#define TS_KAFKA_PREFIX "rdkafka."
#define TS_KAFKA_PROPS_MAX 64        /* pass-through properties per config */
#define TS_KAFKA_SECRET_MAX 65536    /* bytes of a value read from a file */

struct ts_kafka_prop {
    char name[128];   /* the librdkafka property */
    char key[160];    /* the config key as written (rdkafka.sasl.password_file) */
    char *value;      /* owned */
    int line;         /* config line */
    bool secret;
};

struct ts_kafka_props {
    struct ts_kafka_prop *v; /* owned, n entries */
    size_t n;
};

/* Takes config key (with its "rdkafka." prefix) = value from line: checks
 * the name, reads a _file or _env value, refuses an owned property or a
 * property set twice. NULL, or a reason (never holding a secret) in why. */
const char *ts_kafka_props_add(struct ts_kafka_props *p, const char *key, const char *value,
                               int line, char *why, size_t whysize);

/* Frees the values (wiped first). NULL-safe; p is empty afterwards. */
void ts_kafka_props_free(struct ts_kafka_props *p);

/* Sets one property on conf. TS_OK, or TS_ECONFIG with librdkafka's reason
 * (secrets masked) in why. */
int ts_kafka_prop_set(rd_kafka_conf_t *conf, const struct ts_kafka_prop *prop, char *why,
                      size_t whysize);

/* Sets every property on conf (after the client's own settings). TS_OK, or
 * TS_ECONFIG with "[kafka] KEY (line N): reason" in why. conf stays the
 * caller's. */
int ts_kafka_conf_apply(rd_kafka_conf_t *conf, const struct ts_kafka_props *p, char *why,
                        size_t whysize);

/* --check-config: creates (and destroys at once) a client with the
 * properties and no brokers, so that librdkafka checks what only a client
 * checks (certificate and key files, SASL mechanism, combinations). TS_OK,
 * or TS_ECONFIG with librdkafka's reason (secrets masked) in why and in
 * *line the line of the property it names (0: none named). Call only after
 * every ts_kafka_prop_set succeeded. */
int ts_kafka_props_trial(const struct ts_kafka_props *p, int *line, char *why, size_t whysize);

/* Copies src into dst (size > 0, always terminated) with every registered
 * secret replaced by "(secret)". */
void ts_kafka_redact(char *dst, size_t size, const char *src);

/* A librdkafka log line into TS_LOG at level (TS_LOG_*) as "PREFIX FAC: BUF",
 * secrets masked: for the clients' log callbacks. */
void ts_kafka_log(int level, const char *prefix, const char *fac, const char *buf);

#endif
