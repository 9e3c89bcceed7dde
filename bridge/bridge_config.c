/* SPDX-License-Identifier: Apache-2.0 */
#include "bridge_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http_listener.h"
#include "lake_s3.h"
#include "log.h"
#include "reading.h"
#include "window.h"

#define OFF(type, field) offsetof(struct type, field), sizeof(((struct type *)0)->field)
#define NOSIZE(type, field) offsetof(struct type, field), 0
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct ts_cfg_choice roles[] = {
    {"all", TS_ROLE_ALL}, {"relay", TS_ROLE_RELAY}, {"aggregate", TS_ROLE_AGGREGATE}, {NULL, 0}};
static const struct ts_cfg_choice ack_afters[] = {
    {"kafka", TS_ACK_AFTER_KAFKA}, {"lake", TS_ACK_AFTER_LAKE}, {NULL, 0}};
static const struct ts_cfg_choice log_levels[] = {
    {"error", 3}, {"warning", 4}, {"notice", 5}, {"info", 6}, {"debug", 7}, {NULL, 0}};

#define B ts_bridge_settings
static const struct ts_cfg_key bridge_keys[] = {
    {"id", TS_CFG_ID, OFF(B, id), .flags = TS_CFG_REQUIRED,
     .doc = "this bridge's name, unique among the bridges (client ids, checkpoint owner)"},
    {"role", TS_CFG_ENUM, NOSIZE(B, role), .def = "all", .choices = roles,
     .doc = "relay (MQTT to Kafka), aggregate (Kafka to the lake, and the acks) or all; "
            "--role overrides"},
    {"log_level", TS_CFG_ENUM, NOSIZE(B, log_level), .def = "info", .choices = log_levels,
     .doc = "error, warning, notice, info or debug"},
    {"status_interval_ms", TS_CFG_INT, NOSIZE(B, status_interval_ms), 100, 3600000, "10000",
     .doc = "how often a progress line is logged (and sent to systemd as STATUS)"},
    /* event-time bounds (docs/bridge.md, "Event time has limits") */
    {"max_event_age_s", TS_CFG_INT64, NOSIZE(B, max_event_age_s), 0, 3153600000.0, "7776000",
     .doc = "a reading older than this (by the bridge's clock) goes to the dead-letter topic, "
            "not the lake; default 90 days (an agent's backlog after a long outage); 0: no bound"},
    {"max_event_ahead_s", TS_CFG_INT64, NOSIZE(B, max_event_ahead_s), 0, 31536000, "120",
     .doc = "a reading stamped further ahead of the bridge's clock goes to the dead-letter topic "
            "(a clock fault: it would move the windows' watermark); 0: no bound"},
    {"ack_after", TS_CFG_ENUM, NOSIZE(B, ack_after), .def = "kafka", .choices = ack_afters,
     .doc = "kafka: an agent's readings are acknowledged (and deleted by the agent) once they "
            "are in Kafka; lake: only once a lake checkpoint holds them (a lake stuck longer "
            "than the topic's retention then loses nothing; the agents keep more)"},
};
#undef B

#define M ts_bridge_mqtt_cfg
static const struct ts_cfg_key mqtt_keys[] = {
    TS_MQTT_LINK_KEYS(ts_bridge_mqtt_cfg, link,
                      "client id of the relay's persistent session (the acknowledger adds -ack); "
                      "default turnstile-bridge-<id>", "30000"),
    {"share_group", TS_CFG_ID, OFF(M, share_group),
     .doc = "subscribe as $share/<group>/... so that several relays split the readings; "
            "empty: every relay gets every reading"},
    {"ack_interval_ms", TS_CFG_INT, NOSIZE(M, ack_interval_ms), 10, 600000, "500",
     .doc = "an agent's acknowledgement is published at most this often"},
};
#undef M

#define K ts_bridge_kafka_cfg
static const struct ts_cfg_key kafka_keys[] = {
    {"brokers", TS_CFG_STRING, OFF(K, brokers), .flags = TS_CFG_REQUIRED,
     .doc = "bootstrap servers, host:port[,host:port...]"},
    {"readings_topic", TS_CFG_STRING, OFF(K, readings_topic), .def = "turnstile.readings",
     .doc = "topic of the valid readings (keyed by agent id)"},
    {"deadletter_topic", TS_CFG_STRING, OFF(K, deadletter_topic), .def = "turnstile.deadletter",
     .doc = "topic of the payloads that are not readings (headers: reason, mqtt_topic)"},
    {"group_id", TS_CFG_STRING, OFF(K, group_id), .def = "turnstile-bridge",
     .doc = "consumer group of the aggregators: bridges in one group split the partitions"},
    {"queue_max_messages", TS_CFG_INT, NOSIZE(K, queue_max_messages), 1000, 10000000, "100000",
     .doc = "readings queued for Kafka at most; beyond it the relay stops taking from MQTT"},
    {"linger_ms", TS_CFG_INT, NOSIZE(K, linger_ms), 0, 60000, "20",
     .doc = "how long the producer waits to fill a batch"},
    {"compression", TS_CFG_STRING, OFF(K, compression), .def = "lz4",
     .doc = "none, gzip, snappy, lz4 or zstd"},
    {"session_timeout_ms", TS_CFG_INT, NOSIZE(K, session_timeout_ms), 6000, 300000, "30000",
     .doc = "consumer group session: a bridge silent this long loses its partitions"},
    {"readings_partitions", TS_CFG_INT, NOSIZE(K, readings_partitions), 0, 100000, "0",
     .doc = "the partitions readings are spread over (by agent id); 0: the lake's layout, or the "
            "topic's count at the first reading. Set it on relay-only bridges (docs/bridge.md, "
            "\"Adding partitions\")"},
};
#undef K

#define L ts_bridge_lake_cfg
static const struct ts_cfg_key lake_keys[] = {
    {"path", TS_CFG_STRING, OFF(L, path), .flags = TS_CFG_REQUIRED,
     .doc = "the lake's root directory (a local POSIX file system: see docs/lake.md)"},
    {"table", TS_CFG_ID, OFF(L, table), .def = "turnstile",
     .doc = "files go under <path>/<table>/event_date=YYYY-MM-DD/"},
    {"row_number", TS_CFG_BOOL, NOSIZE(L, row_number), .def = "true",
     .doc = "write the reference files' leading unnamed row-number column"},
    {"compression_level", TS_CFG_INT, NOSIZE(L, compression_level), 1, 9, "6",
     .doc = "gzip level of the files"},
    {"window_s", TS_CFG_INT, NOSIZE(L, window_s), 1, 7 * 86400, "300",
     .doc = "window length (the reference job: 5 minutes)"},
    {"slide_s", TS_CFG_INT, NOSIZE(L, slide_s), 0, 7 * 86400, "0",
     .doc = "0: tumbling windows; else sliding windows starting every slide_s"},
    {"lateness_s", TS_CFG_INT, NOSIZE(L, lateness_s), -1, 30 * 86400, "-1",
     .doc = "watermark = highest event time - lateness_s; -1: one window"},
    {"idle_s", TS_CFG_INT, NOSIZE(L, idle_s), 0, 30 * 86400, "600",
     .doc = "a window nobody adds to while event time stands still closes after this; 0: never"},
    {"max_open_groups", TS_CFG_INT, NOSIZE(L, max_open_groups), 0, 100000000, "262144",
     .doc = "memory bound per partition, in (turnstile, window) groups of about 400 bytes: past "
            "it the oldest windows close early; size it to the turnstiles times the windows open "
            "at once, with a margin; 0: none (input then bounds it)"},
    {"checkpoint_interval_ms", TS_CFG_INT, NOSIZE(L, checkpoint_interval_ms), 100, 3600000, "5000",
     .doc = "files and offsets are committed at least this often while readings flow"},
    {"keep_checkpoints", TS_CFG_INT, NOSIZE(L, keep_checkpoints), 1, 100000, "100",
     .doc = "checkpoint records kept per partition in <path>/<table>/_manifest/"},
    {"max_open_files", TS_CFG_INT, NOSIZE(L, max_open_files), 1, 100000, "16",
     .doc = "data files open at once per partition (one fd and 90 to 400 KiB of memory "
            "each); past it the least recently used is finished and its date's next rows go "
            "to another file. LimitNOFILE must cover partitions x (max_open_files + 3)"},
    {"max_checkpoint_files", TS_CFG_INT, NOSIZE(L, max_checkpoint_files), 1, 1000000, "256",
     .doc = "a partition checkpoints as soon as this many data files are pending, without "
            "waiting for checkpoint_interval_ms"},
    {"max_agents", TS_CFG_INT, NOSIZE(L, max_agents), 1, 100000000, "20000",
     .doc = "agents whose duplicate-removal state a partition keeps in memory (about 250 bytes "
            "each); beyond, the least recently seen move to its archive (beside the "
            "checkpoints, on disk or in the bucket)"},
    {"agent_idle_s", TS_CFG_INT64, NOSIZE(L, agent_idle_s), 0, 3153600000.0, "86400",
     .doc = "an agent not seen for this long moves to its partition's archive (its "
            "position is kept; it comes back when seen again); 0: only max_agents moves them"},
    {"batch_records", TS_CFG_INT, NOSIZE(L, batch_records), 1, 100000, "10000",
     .doc = "Kafka records the aggregator polls from its consumer at a time, and the records "
            "each aggregating thread's inbox holds (about 550 bytes each, librdkafka's; "
            "docs/bridge.md, \"Memory\")"},
    {"threads", TS_CFG_INT, NOSIZE(L, threads), 1, 64, "2",
     .doc = "aggregating threads: each judges and takes the records of its partitions "
            "(partition modulo threads), advances their windows and checkpoints them, while "
            "the main thread polls Kafka (docs/bridge.md, \"Threads\"); about the cores the "
            "bridge may use, at most the partitions it is assigned"},
    /* the object lake (docs/lake.md, "Object storage") */
    {"url", TS_CFG_STRING, OFF(L, url),
     .doc = "empty: the lake is the POSIX directory path; s3://BUCKET[/PREFIX]: the lake is "
            "on an S3-compatible bucket and path is the local spool of the files being written "
            "and of the local copies of the agents' archives (docs/lake.md, \"Object "
            "storage\")"},
    {"endpoint", TS_CFG_STRING, OFF(L, endpoint),
     .doc = "http[s]://HOST[:PORT] of the S3 API; empty: AWS, https://s3.<region>.amazonaws.com; "
            "Google Cloud Storage: https://storage.googleapis.com"},
    {"region", TS_CFG_STRING, OFF(L, region), .def = "us-east-1",
     .doc = "the bucket's region, signed into each request (GCS: auto)"},
    {"path_style", TS_CFG_BOOL, NOSIZE(L, path_style), .def = "false",
     .doc = "ENDPOINT/BUCKET/KEY addressing (S3Proxy, MinIO); false: BUCKET.HOST/KEY"},
    {"key_id_file", TS_CFG_STRING, OFF(L, key_id_file),
     .doc = "file whose first line is the access key id (with secret_file); empty: "
            "AWS_ACCESS_KEY_ID from the environment. Never the key itself"},
    {"secret_file", TS_CFG_STRING, OFF(L, secret_file),
     .doc = "file whose first line is the secret access key (GCS: the HMAC key's secret); "
            "empty: AWS_SECRET_ACCESS_KEY from the environment"},
    {"goog_preconditions", TS_CFG_BOOL, NOSIZE(L, goog_preconditions), .def = "false",
     .doc = "Google Cloud Storage: a conditional write sends x-goog-if-generation-match: 0 "
            "instead of If-None-Match: *"},
    {"conditional_writes", TS_CFG_BOOL, NOSIZE(L, conditional_writes), .def = "true",
     .doc = "the store refuses a conditional write of an existing key (AWS S3, GCS, MinIO): "
            "checked when a partition is opened, which fails if it does not; two bridges that "
            "both believe they own a partition cannot both commit. false: run on a store "
            "without them (S3Proxy 2.6.0), leaving a window where both can (docs/lake.md)"},
    {"ca_file", TS_CFG_STRING, OFF(L, ca_file),
     .doc = "CA certificates to trust for an https endpoint; empty: the system's"},
    {"s3_timeout_ms", TS_CFG_INT, NOSIZE(L, s3_timeout_ms), 100, 3600000, "60000",
     .doc = "one S3 request, start to end"},
    {"s3_connect_timeout_ms", TS_CFG_INT, NOSIZE(L, s3_connect_timeout_ms), 100, 600000, "10000",
     .doc = "connecting to the endpoint"},
    {"s3_max_attempts", TS_CFG_INT, NOSIZE(L, s3_max_attempts), 1, 100, "6",
     .doc = "attempts of one request on a transport error or HTTP 429/500/502/503/504"},
    {"s3_backoff_ms", TS_CFG_INT, NOSIZE(L, s3_backoff_ms), 1, 600000, "200",
     .doc = "first back-off between attempts (doubled each time, a random half to whole)"},
    {"s3_backoff_max_ms", TS_CFG_INT, NOSIZE(L, s3_backoff_max_ms), 1, 3600000, "10000",
     .doc = "longest back-off between attempts (at least s3_backoff_ms)"},
};
#undef L

#define H ts_bridge_http_cfg
static const struct ts_cfg_key http_keys[] = {
    {"listen", TS_CFG_STRING, OFF(H, listen), .def = "127.0.0.1:9464",
     .doc = "address and port of the monitoring listener (/metrics, /healthz): an IPv4 or "
            "[IPv6] literal; 0.0.0.0 or [::] listen on every interface (no TLS, no "
            "authentication: keep it on a trusted network)"},
    {"max_connections", TS_CFG_INT, NOSIZE(H, max_connections), 1, 1024, "16",
     .doc = "connections served at once; more wait in the kernel's listen queue until one "
            "closes (timeout_s bounds how long an idle one holds its place)"},
    {"timeout_s", TS_CFG_INT, NOSIZE(H, timeout_s), 1, 300, "10",
     .doc = "a connection idle (or sending its request too slowly) for this long is closed"},
    {"max_request_bytes", TS_CFG_INT, NOSIZE(H, max_request_bytes), 4096, 1048576, "16384",
     .doc = "memory of a connection: a request line and headers longer than about half of it "
            "are refused (431 or 414)"},
    {"stall_s", TS_CFG_INT, NOSIZE(H, stall_s), 1, 86400, "60",
     .doc = "/healthz says 503 when readings wait for Kafka, or records in a partition, and "
            "nothing moved for this long"},
    {"agents", TS_CFG_BOOL, NOSIZE(H, agents), .def = "true",
     .doc = "read every agent's retained status and state (turnstile/v1/+/+/status, /state; "
            "the bridge's MQTT account needs read access) and serve their figures"},
    {"max_agents", TS_CFG_INT, NOSIZE(H, max_agents), 1, 1000000, "10000",
     .doc = "agents whose figures /metrics serves (about 350 bytes each, the first seen); the "
            "documents of others are counted in turnstile_bridge_agent_documents_left_out_total"},
    {"tls_cert_file", TS_CFG_STRING, OFF(H, tls_cert_file),
     .doc = "PEM certificate (its chain after it) of the listener: it speaks HTTPS only "
            "(/metrics too); empty: plain HTTP"},
    {"tls_key_file", TS_CFG_STRING, OFF(H, tls_key_file),
     .doc = "PEM private key of tls_cert_file, unencrypted (keep it 0600); read at start"},
    {"tls_client_ca_file", TS_CFG_STRING, OFF(H, tls_client_ca_file),
     .doc = "PEM CA certificates that verify client certificates: a client may present one, "
            "and a [webhook_source] with cert_cn is authenticated by it; empty: none asked"},
};
#undef H

#define W ts_bridge_webhook_cfg
static const struct ts_cfg_key webhook_keys[] = {
    {"max_body_bytes", TS_CFG_INT, NOSIZE(W, max_body_bytes), 1024, 64 * 1048576, "1048576",
     .doc = "a request's body at most (memory held per request); a longer one is refused (413) "
            "without being read whole"},
    {"max_readings", TS_CFG_INT, NOSIZE(W, max_readings), 1, 1000000, "5000",
     .doc = "readings one request may carry; more: the request is refused (413), none taken"},
    {"max_requests", TS_CFG_INT, NOSIZE(W, max_requests), 1, 1023, "4",
     .doc = "webhook requests served at once (beyond: 503 with Retry-After); must stay below "
            "[http] max_connections so that /metrics keeps a place"},
    {"request_timeout_ms", TS_CFG_INT, NOSIZE(W, request_timeout_ms), 100, 600000, "10000",
     .doc = "a request's body must arrive, and Kafka confirm its readings, within this: a slower "
            "body gets its connection closed, a slower Kafka a 503 (send again: readings are "
            "counted once by ID)"},
    {"online_s", TS_CFG_INT, NOSIZE(W, online_s), 1, 86400, "300",
     .doc = "a source shows online (its retained status, turnstile_agent_online, the dashboard) "
            "while its last authorized request is at most this old; then offline, reason idle"},
};
#undef W

#define S ts_bridge_webhook_source
static const struct ts_cfg_key source_keys[] = {
    {"station", TS_CFG_ID, OFF(S, station), .flags = TS_CFG_REQUIRED,
     .doc = "the station id of the source's readings (the section's NAME is their agent id: "
            "IDs NAME:SEQ; use a name no agent has)"},
    {"token_file", TS_CFG_STRING, OFF(S, token_file),
     .doc = "file whose first line is the source's bearer token (16 to 256 printable "
            "characters; keep it 0600)"},
    {"token_env", TS_CFG_ID, OFF(S, token_env),
     .doc = "or: environment variable that holds the token (at most one of token_file, "
            "token_env)"},
    {"cert_cn", TS_CFG_STRING, OFF(S, cert_cn),
     .doc = "or/and: the common name (CN) of the client certificate that authenticates the "
            "source, verified by [http] tls_client_ca_file; a token or cert_cn is needed"},
};
#undef S

static void *add_bridge(void *user, char *err, size_t errsize)
{
    return &((struct ts_bridge_cfg *)user)->bridge;
}

static void *add_mqtt(void *user, char *err, size_t errsize)
{
    return &((struct ts_bridge_cfg *)user)->mqtt;
}

static void *add_kafka(void *user, char *err, size_t errsize)
{
    return &((struct ts_bridge_cfg *)user)->kafka;
}

static const char *add_kafka_prop(void *instance, const char *key, const char *value, int line,
                                  char *why, size_t whysize)
{
    return ts_kafka_props_add(&((struct ts_bridge_kafka_cfg *)instance)->props, key, value, line,
                              why, whysize);
}

static void *add_lake(void *user, char *err, size_t errsize)
{
    struct ts_bridge_cfg *cfg = user;
    cfg->has_lake = true;
    return &cfg->lake;
}

static void *add_http(void *user, char *err, size_t errsize)
{
    struct ts_bridge_cfg *cfg = user;
    cfg->has_http = true;
    return &cfg->http;
}

static void *add_webhook(void *user, char *err, size_t errsize)
{
    struct ts_bridge_cfg *cfg = user;
    cfg->has_webhook = true;
    return &cfg->webhook;
}

static void *add_source(void *user, char *err, size_t errsize)
{
    struct ts_bridge_cfg *cfg = user;
    if (cfg->n_sources >= TS_WEBHOOK_SOURCES_MAX) {
        snprintf(err, errsize, "more than %d webhook sources", TS_WEBHOOK_SOURCES_MAX);
        return NULL;
    }
    struct ts_bridge_webhook_source *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    cfg->sources[cfg->n_sources++] = s;
    return s;
}

enum { SEC_BRIDGE, SEC_MQTT, SEC_KAFKA, SEC_LAKE, SEC_HTTP, SEC_WEBHOOK, SEC_SOURCE };
static const struct ts_cfg_section sections[] = {
    [SEC_BRIDGE] = {"bridge", 0, bridge_keys, N(bridge_keys), 0, 0,
                    "The bridge itself: name and role.", add_bridge},
    [SEC_MQTT] = {"mqtt", 0, mqtt_keys, N(mqtt_keys), 0, 0,
                  "The central MQTT broker: readings come from it, acknowledgements go to it.",
                  add_mqtt},
    [SEC_KAFKA] = {"kafka", 0, kafka_keys, N(kafka_keys), 0, 0,
                   "The Kafka cluster and its topics, and librdkafka properties for every "
                   "Kafka client of the bridge (TLS, SASL: docs/kafka.md, \"Secured Kafka\").",
                   add_kafka, .pass_prefix = TS_KAFKA_PREFIX, .pass = add_kafka_prop,
                   .pass_doc = "`rdkafka.NAME = VALUE` sets librdkafka property NAME (e.g. "
                               "rdkafka.security.protocol = SASL_SSL); `rdkafka.NAME_file = PATH` "
                               "reads the value from a file, `rdkafka.NAME_env = VARIABLE` from the "
                               "environment (secrets); properties the bridge sets are refused"},
    [SEC_LAKE] = {"lake", 0, lake_keys, N(lake_keys), 0, 0,
                  "The data lake and the windowed aggregation (roles aggregate and all).",
                  add_lake},
    [SEC_HTTP] = {"http", 0, http_keys, N(http_keys), 0, 0,
                  "Monitoring: Prometheus /metrics and /healthz over HTTP (docs/monitoring.md). "
                  "Without this section there is no listener.", add_http},
    [SEC_WEBHOOK] = {"webhook", 0, webhook_keys, N(webhook_keys), 0, 0,
                     "Readings POSTed to the [http] listener at /v1/readings by other systems "
                     "(docs/bridge.md, \"Webhooks\"); roles relay and all. Without this section "
                     "there is no webhook.", add_webhook},
    [SEC_SOURCE] = {"webhook_source", 1, source_keys, N(source_keys),
                    offsetof(struct ts_bridge_webhook_source, name), TS_ID_MAX,
                    "One system allowed to POST readings, with its bearer token.", add_source},
};
static const struct ts_cfg_schema schema = {sections, N(sections)};

void ts_bridge_cfg_doc(FILE *out) { ts_config_doc(&schema, out); }

void ts_bridge_cfg_defaults(struct ts_bridge_cfg *cfg)
{
    void *parts[] = {&cfg->bridge, &cfg->mqtt, &cfg->kafka, &cfg->lake, &cfg->http, &cfg->webhook};
    for (size_t i = 0; i < N(parts); i++)
        ts_config_defaults(&sections[i], parts[i]);
}

void ts_bridge_cfg_free(struct ts_bridge_cfg *cfg)
{
    if (!cfg)
        return;
    ts_kafka_props_free(&cfg->kafka.props);
    for (size_t i = 0; i < cfg->n_sources; i++)
        free(cfg->sources[i]);
    ts_config_file_free(&cfg->file);
    memset(cfg, 0, sizeof *cfg);
}

/* Every check records its error in cfg->file and goes on (one load reports
 * every error); a check that would use a refused value is skipped. */
#define BAD(inst, sec, key, ...) ts_config_error(&cfg->file, inst, sec, key, __VA_ARGS__)

static int bad(const struct ts_bridge_cfg *cfg, const void *inst, const char *key)
{
    return ts_config_bad(&cfg->file, inst, key);
}

/* Kafka topic names: letters, digits, '.', '_', '-', at most 249. */
static int topic_ok(const char *t)
{
    return ts_id_ok(t) && strlen(t) <= 249 && strcmp(t, ".") != 0 && strcmp(t, "..") != 0;
}

/* s3://BUCKET[/PREFIX]: bucket 3..63 of [a-z0-9.-], the prefix's characters
 * those the S3 client takes in keys, no empty, "." or ".." segment. */
static bool s3_url_ok(const char *u)
{
    if (strncmp(u, "s3://", 5) != 0)
        return false;
    u += 5;
    size_t b = strcspn(u, "/");
    if (b < 3 || b > 63 || strspn(u, "abcdefghijklmnopqrstuvwxyz0123456789.-") < b)
        return false;
    for (const char *seg = u + b; *seg == '/';) {
        seg++;
        size_t n = strcspn(seg, "/");
        if ((n == 0 && seg[0] != '\0') || (n == 1 && seg[0] == '.') ||
            (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        if (strspn(seg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._=-") < n)
            return false;
        seg += n;
    }
    return true;
}

/* The object lake's keys: values, pairs, and no secret in the file itself. */
static void check_lake_s3(struct ts_bridge_cfg *cfg)
{
    struct ts_bridge_lake_cfg *l = &cfg->lake;

    if (l->url[0] && !bad(cfg, l, "url") && !s3_url_ok(l->url))
        BAD(l, "lake", "url",
            "must be s3://BUCKET[/PREFIX] (bucket: 3 to 63 of a-z 0-9 . -; prefix: A-Z a-z 0-9 "
            ". _ = - in segments, no empty, '.' or '..' one)");
    if (l->endpoint[0] && !bad(cfg, l, "endpoint") && strncmp(l->endpoint, "http://", 7) != 0 &&
        strncmp(l->endpoint, "https://", 8) != 0)
        BAD(l, "lake", "endpoint", "must start with http:// or https://");
    if (!bad(cfg, l, "key_id_file") && !bad(cfg, l, "secret_file") &&
        !l->key_id_file[0] != !l->secret_file[0])
        BAD(l, "lake", l->key_id_file[0] ? "secret_file" : "key_id_file",
            "key_id_file and secret_file go together (neither: the environment's "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
    if (!bad(cfg, l, "s3_backoff_ms") && !bad(cfg, l, "s3_backoff_max_ms") &&
        l->s3_backoff_max_ms < l->s3_backoff_ms)
        BAD(l, "lake", "s3_backoff_max_ms", "must not be below s3_backoff_ms (%d)", l->s3_backoff_ms);
    if (!l->url[0]) {
        static const char *const s3_only[] = {"endpoint", "key_id_file", "secret_file",
                                              "ca_file", "conditional_writes", NULL};
        for (const char *const *k = s3_only; *k; k++)
            if (ts_config_line(&cfg->file, l, *k))
                BAD(l, "lake", *k, "only with url = s3://... (the object lake)");
    }
}

static void check_lake(struct ts_bridge_cfg *cfg)
{
    static const char *const window_keys[] = {"window_s", "slide_s", "lateness_s", "idle_s",
                                              "max_open_groups", NULL};
    struct ts_bridge_lake_cfg *l = &cfg->lake;
    struct ts_window_cfg w;
    char why[160];

    if (l->path[0] != '/' && !bad(cfg, l, "path") && ts_config_line(&cfg->file, l, "path"))
        BAD(l, "lake", "path", "must be an absolute path");
    if ((l->table[0] == '.' || l->table[0] == '_') && !bad(cfg, l, "table"))
        BAD(l, "lake", "table", "must not start with '.' or '_' (readers skip such names)");
    check_lake_s3(cfg);
    for (const char *const *k = window_keys; *k; k++)
        if (bad(cfg, l, *k))
            return;
    if (l->window_s > 0 && l->slide_s > l->window_s) {
        BAD(l, "lake", "slide_s", "must not exceed window_s (%d)", l->window_s);
        return;
    }
    ts_window_cfg_default(&w);
    w.size_ms = (int64_t)l->window_s * 1000;
    w.slide_ms = (int64_t)l->slide_s * 1000;
    w.lateness_ms = l->lateness_s < 0 ? TS_WINDOW_LATENESS_DEFAULT : (int64_t)l->lateness_s * 1000;
    w.idle_ms = (int64_t)l->idle_s * 1000;
    w.max_open = (size_t)l->max_open_groups;
    if (ts_window_cfg_check(&w, why, sizeof why) != TS_OK)
        BAD(l, "lake", l->slide_s ? "slide_s" : "window_s", "%s", why);
}

/* The rdkafka.* keys, checked by librdkafka itself: each one set on a
 * configuration (an error names its line and key), then, if all are taken, a
 * client made and destroyed at once with them (files, SASL, combinations). */
static void check_kafka_props(struct ts_bridge_cfg *cfg)
{
    const struct ts_kafka_props *p = &cfg->kafka.props;
    char why[400];
    int line, bad = 0;

    if (p->n == 0)
        return;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; i < p->n; i++)
        if (ts_kafka_prop_set(conf, &p->v[i], why, sizeof why) != TS_OK) {
            ts_config_error_at(&cfg->file, p->v[i].line, "[kafka] %s: librdkafka: %s",
                               p->v[i].key, why);
            bad = 1;
        }
    rd_kafka_conf_destroy(conf);
    if (bad || ts_kafka_props_trial(p, &line, why, sizeof why) == TS_OK)
        return;
    ts_config_error_at(&cfg->file, line ? line : ts_config_line(&cfg->file, &cfg->kafka, NULL),
                       "[kafka] librdkafka: %s", why);
}

static void check_kafka(struct ts_bridge_cfg *cfg)
{
    static const char *const compressions[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    struct ts_bridge_kafka_cfg *k = &cfg->kafka;
    int readings_ok = !bad(cfg, k, "readings_topic");
    int deadletter_ok = !bad(cfg, k, "deadletter_topic");

    if (readings_ok && !topic_ok(k->readings_topic)) {
        BAD(k, "kafka", "readings_topic", "'%s' is not a Kafka topic name (letters, digits, . _ -)",
            k->readings_topic);
        readings_ok = 0;
    }
    if (deadletter_ok && !topic_ok(k->deadletter_topic)) {
        BAD(k, "kafka", "deadletter_topic",
            "'%s' is not a Kafka topic name (letters, digits, . _ -)", k->deadletter_topic);
        deadletter_ok = 0;
    }
    if (readings_ok && deadletter_ok && strcmp(k->readings_topic, k->deadletter_topic) == 0)
        BAD(k, "kafka", "deadletter_topic", "must differ from readings_topic");
    size_t c;
    for (c = 0; c < N(compressions); c++)
        if (strcmp(k->compression, compressions[c]) == 0)
            break;
    if (c == N(compressions) && !bad(cfg, k, "compression"))
        BAD(k, "kafka", "compression", "'%s' is not one of none, gzip, snappy, lz4, zstd",
            k->compression);    check_kafka_props(cfg);
}

static void check_http(struct ts_bridge_cfg *cfg)
{
    struct ts_bridge_http_cfg *h = &cfg->http;
    char why[160];
    if (!bad(cfg, h, "listen") && ts_http_parse_listen(h->listen, NULL, why, sizeof why) != TS_OK)
        BAD(h, "http", "listen", "%s", why);
    if (h->tls_key_file[0] && !h->tls_cert_file[0] && !bad(cfg, h, "tls_key_file"))
        BAD(h, "http", "tls_key_file", "needs tls_cert_file");
    if (h->tls_cert_file[0] && !h->tls_key_file[0] && !bad(cfg, h, "tls_cert_file"))
        BAD(h, "http", "tls_cert_file", "needs tls_key_file (its private key)");
    if (h->tls_client_ca_file[0] && !h->tls_cert_file[0] && !bad(cfg, h, "tls_client_ca_file"))
        BAD(h, "http", "tls_client_ca_file", "client certificates need TLS: set tls_cert_file "
            "and tls_key_file");
}

static void check_webhook(struct ts_bridge_cfg *cfg)
{
    struct ts_bridge_webhook_cfg *w = &cfg->webhook;
    if (cfg->has_webhook && !cfg->has_http)
        BAD(w, "webhook", NULL, "needs an [http] section (the listener it is served on)");
    if (cfg->has_webhook && cfg->n_sources == 0)
        BAD(w, "webhook", NULL, "no [webhook_source NAME] section: nobody could POST");
    if (cfg->has_webhook && cfg->has_http && !bad(cfg, w, "max_requests") &&
        !bad(cfg, &cfg->http, "max_connections") && w->max_requests >= cfg->http.max_connections)
        BAD(w, "webhook", "max_requests", "must be below [http] max_connections (%d), so that "
            "/metrics keeps a place", cfg->http.max_connections);
    if (cfg->has_webhook && !bad(cfg, w, "max_readings") &&
        !bad(cfg, &cfg->kafka, "queue_max_messages") &&
        w->max_readings > cfg->kafka.queue_max_messages)
        BAD(w, "webhook", "max_readings", "must not exceed [kafka] queue_max_messages (%d)",
            cfg->kafka.queue_max_messages);
    for (size_t i = 0; i < cfg->n_sources; i++) {
        struct ts_bridge_webhook_source *s = cfg->sources[i];
        char sec[16 + sizeof s->name];
        snprintf(sec, sizeof sec, "webhook_source %s", s->name);
        if (!cfg->has_webhook)
            BAD(s, sec, NULL, "needs a [webhook] section");
        if (!ts_id_ok(s->name))
            BAD(s, sec, NULL, "the name is the source's agent id: letters, digits, '.', '_', '-'");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->sources[j]->name, s->name))
                BAD(s, sec, NULL, "a second source of this name");
        if (s->token_file[0] && s->token_env[0] && !bad(cfg, s, "token_file") &&
            !bad(cfg, s, "token_env"))
            BAD(s, sec, "token_env", "at most one of token_file and token_env");
        if (!s->token_file[0] && !s->token_env[0] && !s->cert_cn[0] &&
            !bad(cfg, s, "token_file") && !bad(cfg, s, "token_env") && !bad(cfg, s, "cert_cn"))
            BAD(s, sec, NULL, "needs token_file, token_env or cert_cn: nobody could POST as it");
        if (s->cert_cn[0] && !bad(cfg, s, "cert_cn")) {
            if (!cfg->http.tls_client_ca_file[0])
                BAD(s, sec, "cert_cn", "needs [http] tls_client_ca_file (the CAs that verify "
                    "client certificates)");
            for (size_t j = 0; j < i; j++)
                if (!strcmp(cfg->sources[j]->cert_cn, s->cert_cn))
                    BAD(s, sec, "cert_cn", "'%s' is also [webhook_source %s]'s", s->cert_cn,
                        cfg->sources[j]->name);
        }
        ts_config_require(&cfg->file, &sections[SEC_SOURCE], s);
    }
}

int ts_bridge_cfg_load(const char *path, struct ts_bridge_cfg *cfg, char *err, size_t errsize)
{
    struct ts_cfg_file *file = &cfg->file;

    memset(cfg, 0, sizeof *cfg);
    ts_config_load(path, &schema, cfg, file);
    if (file->stopped) /* the rest of the file was not read: checks would only add noise */
        return ts_config_finish(file, err, errsize);
    void *parts[] = {&cfg->bridge, &cfg->mqtt, &cfg->kafka};
    for (size_t i = 0; i < N(parts); i++) {
        if (!ts_config_line(file, parts[i], NULL))
            ts_config_error_at(file, 1, "[%s] section is missing", sections[i].kind);
        else
            ts_config_require(file, &sections[i], parts[i]);
    }
    if (ts_config_line(file, &cfg->mqtt, NULL))
        ts_mqtt_link_cfg_check(file, &cfg->mqtt, &cfg->mqtt.link);
    if (ts_config_line(file, &cfg->kafka, NULL))
        check_kafka(cfg);
    if (cfg->has_lake) {
        ts_config_require(file, &sections[SEC_LAKE], &cfg->lake);
        check_lake(cfg);
    } else {
        ts_config_defaults(&sections[SEC_LAKE], &cfg->lake);
    }
    if (cfg->has_http)
        check_http(cfg);
    else
        ts_config_defaults(&sections[SEC_HTTP], &cfg->http);
    if (!cfg->has_webhook)
        ts_config_defaults(&sections[SEC_WEBHOOK], &cfg->webhook);
    check_webhook(cfg);
    return ts_config_finish(file, err, errsize);
}

void ts_bridge_lake_s3_cfg(const struct ts_bridge_lake_cfg *l, const char *key_id,
                           const char *secret, struct ts_s3_cfg *out)
{
    *out = (struct ts_s3_cfg){.url = l->url, .endpoint = l->endpoint, .region = l->region,
                              .path_style = l->path_style, .key_id = key_id, .secret = secret,
                              .goog_preconditions = l->goog_preconditions,
                              .timeout_ms = l->s3_timeout_ms,
                              .connect_timeout_ms = l->s3_connect_timeout_ms,
                              .max_attempts = l->s3_max_attempts, .backoff_ms = l->s3_backoff_ms,
                              .backoff_max_ms = l->s3_backoff_max_ms, .part_size = 8u << 20,
                              .max_object = 64u << 20, .max_list = 1000000,
                              .ca_file = l->ca_file[0] ? l->ca_file : NULL};
}
