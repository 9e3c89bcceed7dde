/* turnstile-agent: polls the gates, turns counters into readings, emits them. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent_config.h"
#include "err.h"
#include "log.h"
#include "poller.h"
#include "reading.h"
#include "tally.h"

#define EX_USAGE_ 2
#define EX_CONFIG_ 78 /* sysexits.h EX_CONFIG: systemd units stop restarting on it */

static volatile sig_atomic_t stop;

static void on_signal(int sig) { stop = sig; }

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: turnstile-agent [OPTIONS] -c FILE\n"
            "Reads turnstile gate counters (Modbus TCP/RTU, GPIO, simulator) and emits one\n"
            "reading per turnstile per poll as a CSV line (see docs/reading-format.md).\n\n"
            "  -c, --config FILE     configuration file (see config/agent.conf.example)\n"
            "      --check-config    load and validate the configuration, then exit\n"
            "      --config-doc      print the documentation of every configuration key\n"
            "      --duration SEC    stop after SEC seconds (default: run until SIGTERM)\n"
            "      --quiet           do not print readings on standard output\n"
            "  -v, --verbose         log at debug level\n"
            "  -h, --help            this help\n"
            "      --version         print the version\n\n"
            "Exit status: 0 ok, 2 usage error, 78 configuration error, 1 runtime failure.\n");
}

static void log_device_summary(const struct ts_agent_cfg *cfg, struct ts_poller *poller)
{
    for (size_t i = 0; i < cfg->n_devices; i++) {
        struct ts_device_stats st;
        ts_poller_device_stats(poller, i, &st);
        TS_LOG(TS_LOG_INFO,
               "device %s: %llu polls, %llu faults (timeouts %llu, exceptions %llu, crc %llu, "
               "short %llu, connect %llu), last rtt %lld us",
               cfg->devices[i]->name, (unsigned long long)st.polls, (unsigned long long)st.errors,
               (unsigned long long)st.timeouts, (unsigned long long)st.exceptions,
               (unsigned long long)st.crc_errors, (unsigned long long)st.short_responses,
               (unsigned long long)st.connect_errors, (long long)st.last_rtt_us);
    }
}

static int run(const struct ts_agent_cfg *cfg, double duration, int quiet)
{
    struct ts_poller *poller = NULL;
    struct ts_tally tally;
    struct ts_sample samples[256];
    char line[TS_READING_LINE_MAX];
    struct timespec start, now;
    uint64_t readings = 0, anomalies = 0;
    int rc;

    if ((rc = ts_tally_init(&tally, cfg, 1)) != TS_OK)
        return rc;
    if ((rc = ts_poller_new(cfg, &poller)) != TS_OK || (rc = ts_poller_start(poller)) != TS_OK) {
        ts_poller_free(poller);
        ts_tally_free(&tally);
        return rc;
    }
    TS_LOG(TS_LOG_INFO, "agent %s (station %s) polling %zu turnstiles on %zu devices every %d ms",
           cfg->agent.agent_id, cfg->agent.station_id, cfg->n_turnstiles, cfg->n_devices,
           cfg->agent.poll_interval_ms);
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!stop) {
        size_t n = ts_poller_take(poller, samples, sizeof samples / sizeof samples[0], 200);
        for (size_t i = 0; i < n; i++) {
            struct ts_reading r;
            ts_tally_sample(&tally, &samples[i], &r);
            readings++;
            anomalies += (r.flags & ~(uint32_t)TS_FLAG_FIRST) != 0;
            if (quiet)
                continue;
            if (ts_reading_format(&r, line, sizeof line) < 0) {
                TS_LOG(TS_LOG_ERR, "cannot format reading %llu", (unsigned long long)r.seq);
                continue;
            }
            puts(line);
        }
        if (n)
            fflush(stdout);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (duration > 0 &&
            (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9 >= duration)
            break;
    }
    ts_poller_stop(poller);
    TS_LOG(TS_LOG_INFO, "stopping: %llu readings, %llu with anomalies", (unsigned long long)readings,
           (unsigned long long)anomalies);
    log_device_summary(cfg, poller);
    ts_poller_free(poller);
    ts_tally_free(&tally);
    return TS_OK;
}

int main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_DOC, OPT_DURATION, OPT_QUIET, OPT_VERSION };
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, OPT_CHECK},
        {"config-doc", no_argument, NULL, OPT_DOC}, {"duration", required_argument, NULL, OPT_DURATION},
        {"quiet", no_argument, NULL, OPT_QUIET}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int check = 0, quiet = 0, verbose = 0, opt;
    double duration = 0;
    char *end;

    while ((opt = getopt_long(argc, argv, "c:vh", options, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case OPT_CHECK: check = 1; break;
        case OPT_DOC: ts_agent_cfg_doc(stdout); return 0;
        case OPT_DURATION:
            duration = strtod(optarg, &end);
            if (*end || duration <= 0) {
                fprintf(stderr, "turnstile-agent: --duration: '%s' is not a positive number\n", optarg);
                return EX_USAGE_;
            }
            break;
        case OPT_QUIET: quiet = 1; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        case OPT_VERSION: printf("turnstile-agent %s\n", TS_VERSION); return 0;
        default: usage(stderr); return EX_USAGE_;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return EX_USAGE_;
    }

    struct ts_agent_cfg cfg;
    char err[512];
    if (ts_agent_cfg_load(path, &cfg, err, sizeof err) != TS_OK) {
        fprintf(stderr, "turnstile-agent: %s\n", err);
        ts_agent_cfg_free(&cfg);
        return EX_CONFIG_;
    }
    if (check) {
        printf("%s: ok (%zu devices, %zu turnstiles)\n", path, cfg.n_devices, cfg.n_turnstiles);
        ts_agent_cfg_free(&cfg);
        return 0;
    }
    ts_log_level = verbose ? TS_LOG_DEBUG : cfg.agent.log_level;
    setenv("TZ", cfg.agent.timezone, 1);
    tzset();

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = run(&cfg, duration, quiet);
    if (rc != TS_OK)
        TS_LOG(TS_LOG_ERR, "agent failed: %s", ts_strerror(rc));
    ts_agent_cfg_free(&cfg);
    return rc == TS_OK ? 0 : 1;
}
