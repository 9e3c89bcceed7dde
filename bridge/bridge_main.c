/* SPDX-License-Identifier: Apache-2.0 */
/* turnstile-bridge: MQTT to Kafka (relay), Kafka to the lake (aggregate). */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#ifdef TS_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "ack.h"
#include "aggregator.h"
#include "bridge_config.h"
#include "cli.h"
#include "bridge_status.h"
#include "err.h"
#include "layout.h"
#include "now.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "webhook.h"
#include "repartition.h"
#include "status_report.h"

#define EX_USAGE_ 2
#define EX_CONFIG_ 78 /* sysexits.h EX_CONFIG: the unit's RestartPreventExitStatus */
#define EX_TEMPFAIL_ 75 /* sysexits.h EX_TEMPFAIL: --repartition refused, not safe now */
#define FLUSH_MS 10000
#define DURATION_MAX_S 31536000 /* a year; without --duration the bridge runs until stopped */

static volatile sig_atomic_t stop;

static void on_signal(int sig) { stop = sig; }

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: turnstile-bridge [OPTIONS] -c FILE\n"
            "Relays the agents' readings from MQTT into Kafka, and aggregates them from Kafka\n"
            "into event-time windows written to the data lake, exactly once; publishes each\n"
            "agent's end-to-end acknowledgement (docs/bridge.md).\n\n"
            "  -c, --config FILE     configuration file (see config/bridge.conf.example)\n"
            "      --role ROLE       relay, aggregate or all (overrides [bridge] role)\n"
            "      --check-config    load and validate the configuration, then exit\n"
            "      --repartition     offline: move the agents to the partitions added to the\n"
            "                        readings topic (docs/bridge.md, \"Adding partitions\")\n"
            "      --config-doc      print the documentation of every configuration key\n"
            "      --duration SEC    stop after SEC seconds, 0.001 to 31536000 (a year)\n"
            "                        (default: run until SIGTERM)\n"
            "      --until-end       role aggregate: stop once the readings topic is read up\n"
            "                        to the end each partition had when assigned, after its\n"
            "                        final checkpoints (a catch-up run; Spark's availableNow)\n"
            "  -v, --verbose         log at debug level\n"
            "  -h, --help            this help\n"
            "      --version         print the version\n\n"
            "Signals: SIGTERM/SIGINT checkpoint, flush what is queued for Kafka and exit 0.\n"
            "Exit status: 0 ok, 2 usage error, 78 configuration error, 1 runtime failure,\n"
            "75 --repartition refused (not safe now: the message says what to do).\n");
}

#define MAX_PARTS 4096 /* partitions shown in the status */
static struct ts_aggregator_partition part_buf[MAX_PARTS]; /* the main thread's */

/* The progress line (log, systemd STATUS) and the retained status document
 * (bridge_status.h). A problem an operator must act on goes first. */
/* The figures of the roles that run, for the status and the metrics. */
static void gather(const struct ts_bridge_cfg *cfg, const char *role, struct ts_relay *relay,
                   struct ts_aggregator *agg, struct ts_ack *ack, struct ts_relay_stats *rs,
                   struct ts_aggregator_stats *as, struct ts_ack_stats *ks,
                   struct ts_aggregator_partition *parts, struct ts_status_report *rep)
{
    *rep = (struct ts_status_report){.bridge_id = cfg->bridge.id, .role = role};
    if (relay) {
        ts_relay_stats(relay, rs);
        rep->relay = rs;
    }
    if (agg) {
        ts_aggregator_stats(agg, as);
        rep->agg = as;
        rep->parts = parts;
        rep->n_parts = ts_aggregator_partitions(agg, parts, MAX_PARTS);
        if (rep->n_parts > MAX_PARTS)
            rep->n_parts = MAX_PARTS;
    }
    if (ack) {
        ts_ack_stats(ack, ks);
        rep->ack = ks;
    }
}

static int put_doc(void *ctx, const char *topic, const char *json)
{
    return ts_bridge_status_put(ctx, topic, json);
}

static void status(const struct ts_bridge_cfg *cfg, const char *role, struct ts_relay *relay,
                   struct ts_aggregator *agg, struct ts_ack *ack, struct ts_bridge_status *bs,
                   struct ts_metrics *metrics, struct ts_webhook *webhook)
{
    char line[768] = "", problems[1024];
    size_t n = 0;
    struct ts_relay_stats rs;
    struct ts_aggregator_stats as;
    struct ts_ack_stats ks;
    struct ts_status_report rep;

    gather(cfg, role, relay, agg, ack, &rs, &as, &ks, part_buf, &rep);
    if (metrics)
        ts_metrics_update(metrics, &rep);
    if (relay) {
        n += (size_t)snprintf(line + n, sizeof line - n,
                              "relay: %s, %" PRIu64 " received, %" PRIu64 " in Kafka, %" PRIu64
                              " dead letters, %zu queued; ",
                              rs.connected ? "connected" : "disconnected", rs.received,
                              rs.delivered, rs.dead_letters, rs.queued);
    }
    if (agg) {
        n += (size_t)snprintf(line + n, sizeof line - n,
                              "aggregate: %u partitions, %" PRIu64 " agents (%" PRIu64
                              " with gaps, %" PRIu64 " archived), %" PRIu64 " readings, %" PRIu64
                              " duplicates, %" PRIu64 " dead-lettered, %" PRIu64 " passed, %"
                              PRIu64 " rows (%" PRIu64 " late), %" PRIu64 " files, %" PRIu64
                              " checkpoints, %" PRIu64 " consumer failures; ",
                              as.partitions, as.agents, as.agents_with_gaps, as.archived,
                              as.readings, as.duplicates, as.invalid, as.passed, as.rows,
                              as.late_rows, as.files, as.checkpoints, as.consumer_failures);
    }
    if (ack) {
        n += (size_t)snprintf(line + n, sizeof line - n, "acks: %" PRIu64 " agents, %" PRIu64
                              " published", ks.agents, ks.published);
    }
    char *json = ts_status_report_json(&rep, problems, sizeof problems);
    if (metrics)
        ts_metrics_set_problems(metrics, problems);
    if (json && bs)
        ts_bridge_status_set(bs, json);
    free(json);
    /* each webhook source's retained status and state, as an agent's (webhook.h) */
    int wrc = webhook && bs ? ts_webhook_source_docs(webhook, ts_wall_ms(), put_doc, bs) : TS_OK;
    if (wrc != TS_OK)
        TS_LOG(TS_LOG_WARNING, "webhook: a source's status cannot be published: %s",
               ts_strerror(wrc));
    if (problems[0]) {
        TS_LOG(TS_LOG_WARNING, "DEGRADED: %s", problems);
        sd_notifyf(0, "STATUS=DEGRADED: %s; %s", problems, line);
    } else {
        TS_LOG(TS_LOG_INFO, "%s", line);
        sd_notifyf(0, "STATUS=%s", line);
    }
}

/* The layout the relay places readings by: [kafka] readings_partitions,
 * which must agree with the lake's layout when there is one (layout.h). */
static int relay_layout(const struct ts_bridge_cfg *cfg, int32_t *layout, char *why,
                        size_t why_size)
{
    int32_t n;
    char lwhy[300] = "";
    if (!cfg->has_lake)
        return TS_OK;
    int rc = ts_layout_read(cfg->lake.path, cfg->lake.table, cfg->kafka.readings_topic, &n, lwhy,
                            sizeof lwhy);
    if (rc == TS_ENOTFOUND)
        return TS_OK;
    if (rc != TS_OK)
        return ts_fail(why, why_size, rc, "the lake's layout: %s", lwhy);
    if (*layout && *layout != n)
        return ts_fail(why, why_size, TS_ECONFIG, "[kafka] readings_partitions is %" PRId32
                       " but the lake's layout spreads the agents over %" PRId32 " partitions "
                       "(docs/bridge.md, \"Adding partitions\")", *layout, n);
    *layout = n;
    return TS_OK;
}

static int webhook_metrics(void *ctx, char **text, size_t *len)
{
    return ts_webhook_metrics(ctx, text, len);
}

static int run(const struct ts_bridge_cfg *cfg, int role, double duration_s, bool until_end)
{
    struct ts_relay *relay = NULL;
    struct ts_ack *ack = NULL;
    struct ts_aggregator *agg = NULL;
    struct ts_bridge_status *bs = NULL;
    struct ts_metrics *metrics = NULL;
    struct ts_webhook *webhook = NULL;
    const char *role_name = role == TS_ROLE_RELAY ? "relay" : role == TS_ROLE_AGGREGATE ? "aggregate"
                                                                                      : "all";
    char why[512] = "";
    int rc = TS_OK;
    uint64_t watchdog_usec = 0;

    int32_t layout = cfg->kafka.readings_partitions;
    if (role != TS_ROLE_AGGREGATE)
        rc = relay_layout(cfg, &layout, why, sizeof why);
    if (rc == TS_OK && role != TS_ROLE_AGGREGATE) {
        rc = ts_relay_new(&cfg->mqtt, &cfg->kafka, &cfg->bridge, layout, &relay, why, sizeof why);
        if (rc == TS_OK)
            rc = ts_relay_start(relay);
    }
    if (rc == TS_OK) {
        rc = ts_bridge_status_new(&cfg->mqtt, cfg->bridge.id, &bs, why, sizeof why);
        if (rc == TS_OK)
            rc = ts_bridge_status_start(bs);
    }
    if (rc == TS_OK && role != TS_ROLE_RELAY) {
        rc = ts_ack_new(&cfg->mqtt, cfg->bridge.id, &ack, why, sizeof why);
        if (rc == TS_OK)
            rc = ts_ack_start(ack);
        if (rc == TS_OK)
            rc = ts_aggregator_new(cfg, ack, &agg, why, sizeof why);
    }
    if (rc == TS_OK && cfg->has_http)
        rc = ts_metrics_new(cfg, role_name, &metrics, why, sizeof why);
    if (rc == TS_OK && cfg->has_webhook && !relay)
        TS_LOG(TS_LOG_NOTICE, "webhook: off: this bridge runs no relay (role aggregate)");
    else if (rc == TS_OK && cfg->has_webhook && metrics && ts_metrics_http(metrics)) {
        /* POSTed readings go through the relay's producer (webhook.h) */
        rc = ts_webhook_new(cfg, relay, &webhook, why, sizeof why);
        if (rc == TS_OK) {
            ts_metrics_set_extra(metrics, webhook_metrics, webhook);
            ts_http_set_post(ts_metrics_http(metrics), ts_webhook_route(webhook));
        }
    }
    if (rc != TS_OK) {
        TS_LOG(TS_LOG_ERR, "cannot start: %s%s%s", ts_strerror(rc), why[0] ? ": " : "", why);
        ts_metrics_free(metrics);
        ts_aggregator_free(agg);
        ts_ack_free(ack, 0);
        ts_relay_free(relay, 0);
        ts_webhook_free(webhook);
        ts_bridge_status_free(bs, NULL, 0);
        return rc;
    }
#ifdef TS_JEMALLOC
    const char *je_version = NULL;
    size_t je_len = sizeof je_version;
    if (mallctl("version", &je_version, &je_len, NULL, 0) == 0 && je_version)
        TS_LOG(TS_LOG_INFO, "allocator: jemalloc %.20s", je_version);
#endif
    TS_LOG(TS_LOG_NOTICE, "turnstile-bridge %s: %s started (readings %s, lake %s)", TS_VERSION,
           role == TS_ROLE_RELAY ? "relay" : role == TS_ROLE_AGGREGATE ? "aggregate" : "relay and aggregate",
           cfg->kafka.readings_topic, agg ? cfg->lake.path : "-");
    sd_notify(0, "READY=1");
    if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
        watchdog_usec = 0;

    int64_t start = ts_mono_ms(), last_status = start, last_watchdog = start;
    int64_t last_metrics = start - TS_METRICS_REFRESH_MS;
    while (!stop) {
        if (agg) {
            if ((rc = ts_aggregator_poll(agg, 100)) != TS_OK)
                break;
        } else {
            struct timespec ts = {0, 100 * 1000000};
            nanosleep(&ts, NULL);
        }
        if (relay) {
            struct ts_relay_stats rs;
            ts_relay_stats(relay, &rs);
            if (rs.fatal) { /* the producer cannot go on: let systemd restart us */
                rc = TS_EIO;
                break;
            }
        }
        int64_t now = ts_mono_ms();
        if (watchdog_usec && (now - last_watchdog) * 2000 >= (int64_t)watchdog_usec) {
            sd_notify(0, "WATCHDOG=1");
            last_watchdog = now;
        }
        if (now - last_status >= cfg->bridge.status_interval_ms) {
            status(cfg, role_name, relay, agg, ack, bs, metrics, webhook);
            last_status = last_metrics = now;
        } else if (metrics && now - last_metrics >= TS_METRICS_REFRESH_MS) {
            /* the figures for /metrics and /healthz, between polls: nothing per reading */
            struct ts_relay_stats rs;
            struct ts_aggregator_stats as;
            struct ts_ack_stats ks;
            struct ts_status_report rep;
            gather(cfg, role_name, relay, agg, ack, &rs, &as, &ks, part_buf, &rep);
            ts_metrics_update(metrics, &rep);
            last_metrics = now;
        }
        if (duration_s > 0 && now - start >= (int64_t)(duration_s * 1000))
            break;
        if (until_end && ts_aggregator_at_end(agg)) {
            TS_LOG(TS_LOG_NOTICE, "aggregate: every partition is read up to its end (--until-end)");
            status(cfg, role_name, relay, agg, ack, bs, metrics, webhook);
            break;
        }
    }
    sd_notify(0, "STOPPING=1");
    TS_LOG(TS_LOG_NOTICE, "stopping%s", rc == TS_OK ? "" : " after a fatal error");
    ts_webhook_stop(webhook);         /* waiting POSTs answered 503 at once */
    ts_metrics_free(metrics);         /* first: it reads the figures of the others */
    ts_relay_free(relay, FLUSH_MS);   /* nothing new enters Kafka */
    ts_webhook_free(webhook);         /* after the relay's last delivery reports */
    ts_aggregator_free(agg);          /* final checkpoints */
    status(cfg, role_name, NULL, NULL, ack, NULL, NULL, NULL);
    ts_ack_free(ack, FLUSH_MS);       /* last: the acks of the final checkpoints */
    char offline[200];
    snprintf(offline, sizeof offline, "{\"state\":\"offline\",\"bridge\":\"%s\",\"reason\":\"%s\"}",
             cfg->bridge.id, rc == TS_OK ? "shutdown" : "failure");
    ts_bridge_status_free(bs, offline, 2000);
    return rc;
}

int main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_DOC, OPT_DURATION, OPT_ROLE, OPT_VERSION, OPT_REPARTITION,
           OPT_UNTIL_END };
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"role", required_argument, NULL, OPT_ROLE},
        {"check-config", no_argument, NULL, OPT_CHECK}, {"config-doc", no_argument, NULL, OPT_DOC},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"until-end", no_argument, NULL, OPT_UNTIL_END},
        {"repartition", no_argument, NULL, OPT_REPARTITION},
        {"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION}, {NULL, 0, NULL, 0}};
    const char *path = NULL, *role_name = NULL;
    int check = 0, verbose = 0, repartition = 0, until_end = 0, opt, role;
    double duration_s = 0;
    char why[256];

    while ((opt = getopt_long(argc, argv, "c:vh", options, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case OPT_ROLE: role_name = optarg; break;
        case OPT_CHECK: check = 1; break;
        case OPT_REPARTITION: repartition = 1; break;
        case OPT_UNTIL_END: until_end = 1; break;
        case OPT_DOC: ts_bridge_cfg_doc(stdout); return 0;
        case OPT_DURATION:
            if (ts_parse_double(optarg, 0.001, DURATION_MAX_S, &duration_s, why, sizeof why)) {
                fprintf(stderr, "turnstile-bridge: --duration: %s\n", why);
                return EX_USAGE_;
            }
            break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        case OPT_VERSION: printf("turnstile-bridge %s\n", TS_VERSION); return 0;
        default: usage(stderr); return EX_USAGE_;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return EX_USAGE_;
    }

    struct ts_bridge_cfg cfg;
    char err[512];
    if (ts_bridge_cfg_load(path, &cfg, err, sizeof err) != TS_OK) {
        ts_config_print_errors(&cfg.file, "turnstile-bridge", stderr); /* every error, one a line */
        ts_bridge_cfg_free(&cfg);
        return EX_CONFIG_;
    }
    role = cfg.bridge.role;
    if (role_name) {
        if (!strcmp(role_name, "all")) role = TS_ROLE_ALL;
        else if (!strcmp(role_name, "relay")) role = TS_ROLE_RELAY;
        else if (!strcmp(role_name, "aggregate")) role = TS_ROLE_AGGREGATE;
        else {
            fprintf(stderr, "turnstile-bridge: --role: '%s' is not relay, aggregate or all\n",
                    role_name);
            ts_bridge_cfg_free(&cfg);
            return EX_USAGE_;
        }
    }
    if ((role != TS_ROLE_RELAY || repartition) && !cfg.has_lake) {
        fprintf(stderr, "turnstile-bridge: %s: %s needs a [lake] section\n", path,
                repartition ? "--repartition" : role == TS_ROLE_ALL ? "the all role"
                                                                    : "the aggregate role");
        ts_bridge_cfg_free(&cfg);
        return EX_CONFIG_;
    }
    if (until_end && (role != TS_ROLE_AGGREGATE || repartition)) {
        fprintf(stderr, "turnstile-bridge: --until-end: only with the aggregate role%s\n",
                repartition ? ", not with --repartition" : " (--role aggregate)");
        ts_bridge_cfg_free(&cfg);
        return EX_USAGE_;
    }
    if (check) {
        printf("%s: ok (role %s)\n", path,
               role == TS_ROLE_RELAY ? "relay" : role == TS_ROLE_AGGREGATE ? "aggregate" : "all");
        ts_bridge_cfg_free(&cfg);
        return 0;
    }
    ts_log_level = verbose ? TS_LOG_DEBUG : cfg.bridge.log_level;

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (repartition) { /* offline: no relay, no aggregator (repartition.h) */
        char rwhy[1024] = "";
        int rc = ts_repartition_run(&cfg, stdout, rwhy, sizeof rwhy);
        if (rc != TS_OK)
            fprintf(stderr, "turnstile-bridge: --repartition %s: %s\n",
                    rc == TS_EBUSY ? "refused" : "failed", rwhy[0] ? rwhy : ts_strerror(rc));
        ts_bridge_cfg_free(&cfg);
        return rc == TS_OK ? 0 : rc == TS_EBUSY ? EX_TEMPFAIL_ : 1;
    }
    int rc = run(&cfg, role, duration_s, until_end);
    ts_bridge_cfg_free(&cfg);
    return rc == TS_OK ? 0 : 1;
}
