/* SPDX-License-Identifier: Apache-2.0 */
/* bridge_config.h - turnstile-bridge's configuration: structs, tables, validation.
 *
 * Sections: [bridge] (identity, role), [mqtt] (the central broker: readings in,
 * acknowledgements out), [kafka] (brokers and topics), [lake] (where the
 * aggregated files go, and the windows), [http] (the monitoring listener:
 * /metrics and /healthz; off without the section), [webhook] and
 * [webhook_source NAME] (readings POSTed to that listener: webhook.h; off
 * without the section); [kafka] also passes
 * rdkafka.* keys to librdkafka (kafka_conf.h). The key tables in bridge_config.c are
 * the single source of parsing, defaults, ranges and the documentation printed
 * by `turnstile-bridge --config-doc`. Modules take the struct of their
 * section; none of them reads the file. */
#ifndef TS_BRIDGE_CONFIG_H
#define TS_BRIDGE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "kafka_conf.h"
#include "mqtt_cfg.h"

enum ts_bridge_role { TS_ROLE_ALL = 0, TS_ROLE_RELAY = 1, TS_ROLE_AGGREGATE = 2 };

/* When the bridge acknowledges an agent's readings (docs/bridge.md, "Acknowledgements"):
 * once they are in Kafka (the agent deletes them then: a lake stuck for longer than the
 * topic's retention loses them), or once a lake checkpoint holds them. */
enum ts_ack_after { TS_ACK_AFTER_KAFKA = 0, TS_ACK_AFTER_LAKE = 1 };

struct ts_bridge_settings {
    char id[64];              /* this bridge's name: client ids, checkpoint owner */
    int role;                 /* enum ts_bridge_role; --role overrides */
    int log_level;            /* TS_LOG_* */
    int status_interval_ms;   /* progress line in the log (and sd_notify STATUS) */
    /* event-time bounds of a reading, relative to the bridge's clock (verdict.h);
     * 0: no bound */
    int64_t max_event_age_s;
    int64_t max_event_ahead_s;
    int ack_after;            /* enum ts_ack_after: when an agent's reading is acknowledged */
};

/* The broker, as seen by the relay (subscriber), the acknowledger and the
 * other links: each one's client id is ts_mqtt_client_id(&link,
 * TS_BRIDGE_CLIENT_PREFIX, id, "" or "-ack", ...). */
#define TS_BRIDGE_CLIENT_PREFIX "turnstile-bridge-"
struct ts_bridge_mqtt_cfg {
    struct ts_mqtt_link_cfg link; /* the connection (mqtt_cfg.h) */
    char share_group[64];     /* "" : plain subscription; else $share/<group>/... */
    int ack_interval_ms;      /* an agent's ack is re-published at most this often */
};

struct ts_bridge_kafka_cfg {
    char brokers[512];        /* bootstrap.servers */
    char readings_topic[128]; /* default turnstile.readings */
    char deadletter_topic[128]; /* default turnstile.deadletter */
    char group_id[128];       /* consumer group of the aggregators */
    int queue_max_messages;   /* producer queue bound: back-pressure beyond it */
    int linger_ms;            /* producer batching delay */
    char compression[16];     /* none, gzip, snappy, lz4, zstd */
    int session_timeout_ms;   /* consumer group session */
    int readings_partitions;  /* the layout the relay places readings by; 0: the lake's */
    struct ts_kafka_props props; /* rdkafka.* keys, set on every client (kafka_conf.h);
                                    owned by the ts_bridge_cfg, copies of this struct
                                    only borrow them */
};

struct ts_bridge_lake_cfg {
    char path[256];           /* lake root */
    char table[64];           /* files under <path>/<table>/event_date=YYYY-MM-DD/ */
    bool row_number;          /* leading unnamed row-number column, as the
                                 reference files (false: leave it out) */
    int compression_level;    /* gzip 1..9 */
    int window_s, slide_s;    /* slide 0: tumbling */
    int lateness_s;           /* -1: one window */
    int idle_s;               /* processing-time fallback, 0: off */
    int max_open_groups;      /* memory bound of the windows, per partition */
    int checkpoint_interval_ms; /* at most this long between checkpoints */
    int keep_checkpoints;     /* checkpoint records kept per partition */
    int max_open_files;       /* data files open at once per partition */
    int max_checkpoint_files; /* a partition checkpoints early from this many pending files */
    int max_agents;           /* agents' sets kept in memory per partition; beyond, archived */
    int64_t agent_idle_s;     /* an agent not seen for this long is archived */
    int batch_records;        /* Kafka records taken per batch (aggregator.c) */
    int threads;              /* aggregating threads, each with its partitions (aggregator.h) */
    /* the object lake (docs/lake.md, "Object storage"): url set, path is the local spool */
    char url[256];            /* "" (POSIX lake at path) or s3://BUCKET[/PREFIX] */
    char endpoint[256];       /* "": AWS (https://s3.REGION.amazonaws.com) */
    char region[64];
    bool path_style;
    char key_id_file[256], secret_file[256]; /* both or neither ("": environment) */
    bool goog_preconditions;
    bool conditional_writes;  /* checked at each partition's open (ts_lake_s3store_probe) */
    char ca_file[256];
    int s3_timeout_ms, s3_connect_timeout_ms, s3_max_attempts, s3_backoff_ms, s3_backoff_max_ms;
};

/* [http]: the monitoring listener (http_listener.h, metrics.h, docs/monitoring.md). */
struct ts_bridge_http_cfg {
    char listen[80];          /* "ADDRESS:PORT", IPv4 or [IPv6] literal */
    int max_connections;      /* connections served at once; more wait in the listen queue */
    int timeout_s;            /* an idle or slow connection is closed after this */
    int max_request_bytes;    /* a request's line and headers at most (libmicrohttpd's
                                 per-connection memory); beyond, refused */
    int stall_s;              /* /healthz: no progress for this long while work waits */
    bool agents;              /* read the agents' retained status and state */
    int max_agents;           /* agents whose figures are kept (beyond: counted, left out) */
    char tls_cert_file[256];  /* PEM certificate (chain): the listener speaks HTTPS ("": HTTP) */
    char tls_key_file[256];   /* its PEM private key (with tls_cert_file) */
    char tls_client_ca_file[256]; /* PEM CAs verifying client certificates ("": none asked) */
};

/* [webhook]: POST /v1/readings on the [http] listener (webhook.h, docs/bridge.md,
 * "Webhooks"). Bounds of every request. */
struct ts_bridge_webhook_cfg {
    int max_body_bytes;       /* a request's body at most; beyond: 413 */
    int max_readings;         /* readings per request at most; beyond: 413 */
    int max_requests;         /* webhook requests served at once; beyond: 503 */
    int request_timeout_ms;   /* the body in and Kafka's confirmation within this; else the
                                 connection is closed (body) or 503 (Kafka) */
    int online_s;             /* a source is "online" while its last request is this recent */
};

/* [webhook_source NAME]: one system that POSTs readings. NAME is its agent id in
 * the readings (ID "<NAME>:<seq>"; an id no agent uses), station its station id:
 * its readings are judged as if published on turnstile/v1/<station>/<NAME>/readings. */
struct ts_bridge_webhook_source {
    char name[64];
    char station[64];
    char token_file[256];     /* the bearer token, from this file (first line) ... */
    char token_env[128];      /* ... or from this environment variable: at most one */
    char cert_cn[64];         /* or/and: the CN of its client certificate (CA-verified) */
};

#define TS_WEBHOOK_SOURCES_MAX 256

struct ts_bridge_cfg {
    struct ts_bridge_settings bridge;
    struct ts_bridge_mqtt_cfg mqtt;
    struct ts_bridge_kafka_cfg kafka;
    struct ts_bridge_lake_cfg lake;
    bool has_lake;            /* [lake] present (required for aggregate/all) */
    struct ts_bridge_http_cfg http;
    bool has_http;            /* [http] present: the listener runs */
    struct ts_bridge_webhook_cfg webhook;
    bool has_webhook;         /* [webhook] present: POST /v1/readings is served */
    struct ts_bridge_webhook_source *sources[TS_WEBHOOK_SOURCES_MAX]; /* owned */
    size_t n_sources;
    struct ts_cfg_file file;
};

/* Fills every section with its defaults (what an empty file gives). */
void ts_bridge_cfg_defaults(struct ts_bridge_cfg *cfg);

/* Loads and validates path into cfg (zeroed by the call). TS_OK, or
 * TS_ECONFIG with the first error (one line naming file, line and key) in
 * err and every error in cfg->file (ts_config_print_errors). cfg must be
 * freed with ts_bridge_cfg_free in both cases. */
int ts_bridge_cfg_load(const char *path, struct ts_bridge_cfg *cfg, char *err, size_t errsize);
void ts_bridge_cfg_free(struct ts_bridge_cfg *cfg);

/* Prints the documentation of every key (markdown). */
void ts_bridge_cfg_doc(FILE *out);

/* The object lake's S3 client settings (lake_s3.h) for [lake]'s keys and
 * the credentials, with the client's bounds the lake relies on (64 MiB an
 * object: the agents' archive; 8 MiB parts). l, key_id and secret are lent:
 * they must outlive the client's open. For the aggregator and --repartition. */
struct ts_s3_cfg;
void ts_bridge_lake_s3_cfg(const struct ts_bridge_lake_cfg *l, const char *key_id,
                           const char *secret, struct ts_s3_cfg *out);

#endif
