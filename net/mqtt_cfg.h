/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_cfg.h - the broker connection both programs configure in [mqtt].
 *
 * One struct (ts_mqtt_link_cfg), one key-table fragment (TS_MQTT_LINK_KEYS)
 * that the agent's and the bridge's [mqtt] tables both include, one check of
 * what the keys cannot say alone (ts_mqtt_link_cfg_check), and one range for
 * each number: the table's, which ts_mqtt_link_new checks again. The keys and
 * what they do: docs/mqtt.md ("Connection", "TLS"). */
#ifndef TS_MQTT_CFG_H
#define TS_MQTT_CFG_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define TS_MQTT_KEEPALIVE_MIN 5
#define TS_MQTT_KEEPALIVE_MAX 3600
#define TS_MQTT_RECONNECT_MIN_MS 100
#define TS_MQTT_RECONNECT_MAX_MS 3600000

struct ts_mqtt_link_cfg {
    char host[256];
    int port;                 /* 1..65535 */
    char client_id[128];      /* "": the program's default (ts_mqtt_client_id) */
    char username[128], password[128];   /* password only with username */
    char ca_file[256], cert_file[256], key_file[256]; /* TLS when ca_file is set;
                                                          cert and key together */
    bool tls_insecure;        /* do not check the server's host name (tests) */
    int keepalive_s;          /* TS_MQTT_KEEPALIVE_MIN..MAX */
    int reconnect_min_ms, reconnect_max_ms; /* TS_MQTT_RECONNECT_MIN_MS..MAX_MS, min <= max */
};

/* The link's keys for a program's [mqtt] table, in the order of the docs:
 * T is the section's struct (struct T), F its ts_mqtt_link_cfg member. The
 * programs differ in client_id's doc and reconnect_max_ms's default. */
#define TS_MQTT_LINK_KEY_(T, F, field) offsetof(struct T, F.field), sizeof(((struct T *)0)->F.field)
#define TS_MQTT_LINK_NUM_(T, F, field) offsetof(struct T, F.field), 0
#define TS_MQTT_LINK_KEYS(T, F, client_id_doc, reconnect_max_def)                                 \
    {"host", TS_CFG_STRING, TS_MQTT_LINK_KEY_(T, F, host), .flags = TS_CFG_REQUIRED,            \
     .doc = "broker address"},                                                                  \
    {"port", TS_CFG_INT, TS_MQTT_LINK_NUM_(T, F, port), 1, 65535, "1883",                      \
     .doc = "broker port (8883 for TLS)"},                                                      \
    {"client_id", TS_CFG_ID, TS_MQTT_LINK_KEY_(T, F, client_id), .doc = client_id_doc},        \
    {"username", TS_CFG_STRING, TS_MQTT_LINK_KEY_(T, F, username), .doc = "user name"},        \
    {"password", TS_CFG_STRING, TS_MQTT_LINK_KEY_(T, F, password),                             \
     .doc = "password (keep the file 0600)"},                                                   \
    {"ca_file", TS_CFG_STRING, TS_MQTT_LINK_KEY_(T, F, ca_file),                               \
     .doc = "CA certificate: setting it turns TLS on"},                                         \
    {"cert_file", TS_CFG_STRING, TS_MQTT_LINK_KEY_(T, F, cert_file),                           \
     .doc = "client certificate (TLS client auth)"},                                            \
    {"key_file", TS_CFG_STRING, TS_MQTT_LINK_KEY_(T, F, key_file),                             \
     .doc = "client key (TLS client auth)"},                                                    \
    {"tls_insecure", TS_CFG_BOOL, TS_MQTT_LINK_NUM_(T, F, tls_insecure), .def = "false",       \
     .doc = "do not check the broker's host name against its certificate (never in production)"}, \
    {"keepalive_s", TS_CFG_INT, TS_MQTT_LINK_NUM_(T, F, keepalive_s), TS_MQTT_KEEPALIVE_MIN,   \
     TS_MQTT_KEEPALIVE_MAX, "30", .doc = "MQTT keepalive"},                                     \
    {"reconnect_min_ms", TS_CFG_INT, TS_MQTT_LINK_NUM_(T, F, reconnect_min_ms),                \
     TS_MQTT_RECONNECT_MIN_MS, TS_MQTT_RECONNECT_MAX_MS, "1000",                               \
     .doc = "first reconnect delay; doubles up to reconnect_max_ms"},                           \
    {"reconnect_max_ms", TS_CFG_INT, TS_MQTT_LINK_NUM_(T, F, reconnect_max_ms),                \
     TS_MQTT_RECONNECT_MIN_MS, TS_MQTT_RECONNECT_MAX_MS, reconnect_max_def,                    \
     .doc = "longest reconnect delay"}

/* Records in file (section "mqtt" of instance inst, holding m) what the
 * table cannot see: reconnect_max_ms below reconnect_min_ms, cert_file
 * without key_file or the reverse, cert_file without ca_file, password
 * without username. Keys whose value was refused are not used. */
void ts_mqtt_link_cfg_check(struct ts_cfg_file *file, const void *inst,
                            const struct ts_mqtt_link_cfg *m);

/* What the link checks again at run time (ts_mqtt_link_new): the ranges
 * above, host set, the combinations ts_mqtt_link_cfg_check names, and
 * the TLS files readable. TS_OK, or TS_ECONFIG with "KEY: reason" in why. */
int ts_mqtt_link_cfg_valid(const struct ts_mqtt_link_cfg *m, char *why, size_t why_size);

/* The client id: cfg->client_id, or "<def_prefix><id>", then suffix ("" or
 * "-ack"...). TS_OK or TS_EINVAL (does not fit in size). */
int ts_mqtt_client_id(const struct ts_mqtt_link_cfg *cfg, const char *def_prefix, const char *id,
                      const char *suffix, char *buf, size_t size);

#endif
