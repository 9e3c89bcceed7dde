/* SPDX-License-Identifier: Apache-2.0 */
/* turnstile-agent: reads the gates, keeps every reading, publishes them. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "agent_config.h"
#include "cli.h"
#include "err.h"
#include "log.h"
#include "probe.h"

#define EX_USAGE_ 2
#define EX_CONFIG_ 78 /* sysexits.h EX_CONFIG: the unit's RestartPreventExitStatus */
#define DURATION_MAX_S 31536000 /* a year; without --duration the agent runs until stopped */

static volatile sig_atomic_t stop;

static void on_signal(int sig) { stop = sig; }

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: turnstile-agent [OPTIONS] -c FILE\n"
            "Reads turnstile gate counters (Modbus TCP/RTU, GPIO, simulator), keeps every\n"
            "reading in SQLite until it is acknowledged, and publishes it over MQTT; without\n"
            "an [mqtt] section it prints the readings as CSV lines (docs/reading-format.md).\n\n"
            "  -c, --config FILE     configuration file (see config/agent.conf.example)\n"
            "      --check-config    load and validate the configuration, then exit\n"
            "      --config-doc      print the documentation of every configuration key\n"
            "      --duration SEC    stop after SEC seconds, 0.001 to 31536000 (a year)\n"
            "                        (default: run until SIGTERM)\n"
            "      --print           print readings on stdout also when publishing\n"
            "      --probe           commissioning: read every device a few times, show the\n"
            "                        counters in every width and word order, name the\n"
            "                        plausible one (docs/commissioning.md); nothing is stored\n"
            "      --probe-samples N reads per device, 2 to 1000 (default 5)\n"
            "      --probe-interval-ms MS  between reads, 10 to 60000 (default 1000)\n"
            "      --quiet           do not print readings\n"
            "      --log-level LEVEL error, warning, notice, info, debug (default: the\n"
            "                        config's [agent] log_level, info)\n"
            "  -v, --verbose         log at debug level (--log-level debug)\n"
            "  -h, --help            this help\n"
            "      --version         print the version\n\n"
            "Signals: SIGTERM/SIGINT finish the poll cycle, flush, disconnect and exit 0.\n"
            "A changed configuration takes a restart (systemctl restart turnstile-agent):\n"
            "devices, the store and the MQTT session are all set up from it at start.\n"
            "Exit status: 0 ok, 2 usage error, 78 configuration error, 1 runtime failure;\n"
            "--probe: 3 a configured register map is implausible while another one is\n"
            "plausible, 4 a device could not be read at every sample, 5 a turnstile's\n"
            "counters are implausible in every register map (the first of 3, 4, 5 that applies).\n");
}

int main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_DOC, OPT_DURATION, OPT_QUIET, OPT_PRINT, OPT_VERSION, OPT_PROBE,
           OPT_PROBE_SAMPLES, OPT_PROBE_INTERVAL, OPT_LOG_LEVEL };
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, OPT_CHECK},
        {"config-doc", no_argument, NULL, OPT_DOC}, {"duration", required_argument, NULL, OPT_DURATION},
        {"quiet", no_argument, NULL, OPT_QUIET}, {"print", no_argument, NULL, OPT_PRINT},
        {"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION}, {"probe", no_argument, NULL, OPT_PROBE},
        {"probe-samples", required_argument, NULL, OPT_PROBE_SAMPLES},
        {"probe-interval-ms", required_argument, NULL, OPT_PROBE_INTERVAL},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL}, {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int check = 0, quiet = 0, print = 0, probe = 0, opt;
    int log_level = -1; /* -1: the config's [agent] log_level */
    struct ts_probe_opts probe_opts = {TS_PROBE_SAMPLES_DEFAULT, TS_PROBE_INTERVAL_DEFAULT_MS};
    struct ts_agent_opts opts = {0};
    char why[256];

    while ((opt = getopt_long(argc, argv, "c:vh", options, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case OPT_CHECK: check = 1; break;
        case OPT_DOC: ts_agent_cfg_doc(stdout); return 0;
        case OPT_DURATION:
            if (ts_parse_double(optarg, 0.001, DURATION_MAX_S, &opts.duration_s, why, sizeof why)) {
                fprintf(stderr, "turnstile-agent: --duration: %s\n", why);
                return EX_USAGE_;
            }
            break;
        case OPT_PROBE: probe = 1; break;
        case OPT_PROBE_SAMPLES:
            if (ts_parse_int(optarg, TS_PROBE_SAMPLES_MIN, TS_PROBE_SAMPLES_MAX, &probe_opts.samples,
                             why, sizeof why)) {
                fprintf(stderr, "turnstile-agent: --probe-samples: %s\n", why);
                return EX_USAGE_;
            }
            break;
        case OPT_PROBE_INTERVAL:
            if (ts_parse_int(optarg, TS_PROBE_INTERVAL_MIN_MS, TS_PROBE_INTERVAL_MAX_MS,
                             &probe_opts.interval_ms, why, sizeof why)) {
                fprintf(stderr, "turnstile-agent: --probe-interval-ms: %s\n", why);
                return EX_USAGE_;
            }
            break;
        case OPT_QUIET: quiet = 1; break;
        case OPT_PRINT: print = 1; break;
        case 'v': log_level = TS_LOG_DEBUG; break;
        case OPT_LOG_LEVEL:
            if ((log_level = ts_log_level_parse(optarg)) < 0) {
                ts_config_escape(why, sizeof why, optarg);
                fprintf(stderr, "turnstile-agent: --log-level: '%s' is not one of error, warning, "
                                "notice, info, debug\n", why);
                return EX_USAGE_;
            }
            break;
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
        ts_config_print_errors(&cfg.file, "turnstile-agent", stderr); /* every error, one a line */
        ts_agent_cfg_free(&cfg);
        return EX_CONFIG_;
    }
    if (check) {
        printf("%s: ok (%zu devices, %zu turnstiles)\n", path, cfg.n_devices, cfg.n_turnstiles);
        ts_agent_cfg_free(&cfg);
        return 0;
    }
    opts.print = !quiet && (print || !cfg.has_mqtt);
    ts_log_level = log_level >= 0 ? log_level : cfg.agent.log_level;
    setenv("TZ", cfg.agent.timezone, 1);
    tzset();

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (probe) {
        int status = ts_probe_run(&cfg, &probe_opts, stdout, &stop);
        ts_agent_cfg_free(&cfg);
        return status;
    }
    int rc = ts_agent_run(&cfg, &opts, &stop);
    if (rc != TS_OK)
        TS_LOG(TS_LOG_ERR, "agent failed: %s", ts_strerror(rc));
    ts_agent_cfg_free(&cfg);
    return rc == TS_OK ? 0 : 1;
}
