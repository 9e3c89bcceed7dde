/* SPDX-License-Identifier: Apache-2.0 */
/* turnstile-sim: a Modbus gate simulator replaying MTA turnstile data.
 * Command line and the stdin control commands; serving is in sim_server.c. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "mta_file.h"
#include "sim_server.h"

#define MAX_STATIONS 64
#define MAX_FAULTS 64
#define MAX_PER_SLAVE 4500
#define GENERATE_DAYS 366
#define DEFAULT_START "2023-05-27 00:00:00" /* the MTA week in shared/data */

static const char usage_text[] =
    "Usage: turnstile-sim (--tcp HOST:PORT | --rtu DEVICE [serial options])\n"
    "                     [--mta FILE [--station NAME]... | --generate [--seed N]]\n"
    "                     [--slaves 1,2,3] [--turnstiles N] [--speed X] [--start TIME]\n"
    "                     [--width 16|32|64] [--order ABCD|CDAB|BADC|DCBA]\n"
    "                     [--fault COMMAND]... [--verbose] [--log-level LEVEL]\n"
    "                     [--agent-config FILE]\n"
    "\n"
    "A Modbus server (libmodbus) serving turnstile counters replayed from an MTA\n"
    "turnstile file, or generated, at an accelerated clock.\n"
    "\n"
    "  --agent-config FILE  once listening, write the turnstile-agent [device] and\n"
    "                       [turnstile] sections that poll this simulator to FILE\n"
    "  --agent-serial-port PATH  RTU: the serial_port written there, the end of the line\n"
    "                       the agent opens (default DEVICE, with a comment to change it)\n"
    "Link:\n"
    "  --tcp HOST:PORT      Modbus TCP; HOST empty = all addresses, PORT 0 = any\n"
    "                       free port ([::1]:502 for IPv6)\n"
    "  --rtu DEVICE         Modbus RTU on a serial line (e.g. one end of a socat pty pair)\n"
    "  --baud N             19200 (50 to 4000000)   --parity N|E|O   N\n"
    "  --data-bits 7|8      8          --stop-bits 1|2  1\n"
    "Traffic:\n"
    "  --mta FILE           MTA turnstile file (.csv.gz or .csv)\n"
    "  --station NAME       only turnstiles of this STATION (repeatable)\n"
    "  --generate           synthetic traffic (the default without --mta)\n"
    "  --seed N             seed of the synthetic traffic (1; 0 to 2^64-1)\n"
    "  --slaves LIST        Modbus unit ids served, comma-separated (1)\n"
    "  --turnstiles N|all   turnstiles per slave (4; 1 to 4500); slave i gets the next N\n"
    "                       turnstiles of the file, in file order; all: every matching\n"
    "                       turnstile of the file, spread over the slaves\n"
    "  --speed X            simulated seconds per real second (1; 0.001 to 1e7)\n"
    "  --start TIME         'YYYY-MM-DD HH:MM:SS', New York time; default: the file's\n"
    "                       first reading (generated: " DEFAULT_START ")\n"
    "  --max-rate X         replay: largest plausible rise, people/min (60; 0.001 to 1e7)\n"
    "Register map (per slave; W = --width, R = W/16):\n"
    "  turnstile k: entries at k*2*R, exits at k*2*R+R, in --order (ABCD)\n"
    "  the same values in holding (FC 3) and input (FC 4) registers, masked to W bits\n"
    "  holding 9000..9003: number of turnstiles, W, order (0 ABCD 1 CDAB 2 BADC\n"
    "  3 DCBA), registers per turnstile\n"
    "Faults (--fault 'COMMAND' at start, or one command per line on stdin; each\n"
    "stdin command is answered with one line 'ok ...' or 'error ...'):\n"
    "  set SLAVE K ENTRIES EXITS   counters show these values, then keep counting\n"
    "  reset SLAVE K VALUE [EXITS] counters reset to VALUE (exits to EXITS or VALUE)\n"
    "  reverse SLAVE K [on|off]    counters count downward (on) or upward again\n"
    "  glitch SLAVE K VALUE [N]    entries register reads VALUE for the next N reads (1)\n"
    "  silent SLAVE on|off         no answer at all (the client times out)\n"
    "  exception SLAVE CODE|off    answer every request with exception CODE (1..11)\n"
    "  slow SLAVE MS|off           delay every answer by MS milliseconds\n"
    "  pause | resume              stop or restart the simulated clock\n"
    "  get SLAVE K                 -> ok get SLAVE K ENTRIES EXITS (values served now)\n"
    "  time                        -> ok time MS (simulated UTC epoch ms)\n"
    "  list                        one 'turnstile SLAVE K C/A UNIT SCP STATION' line each\n"
    "  quit                        exit\n"
    "  K is the turnstile index within the slave, from 0.\n"
    "Other:\n"
    "  --verbose            log every request\n"
    "  --log-level LEVEL    error, warning, notice, info (default), debug\n"
    "  --help, --version\n"
    "On start, prints 'listening tcp PORT' or 'listening rtu DEVICE' on stdout.\n";

struct options {
    struct ts_sim_cfg cfg;
    const char *mta_file;
    const char *stations[MAX_STATIONS];
    size_t n_stations;
    bool generate;
    uint64_t seed;
    int slave_ids[247];
    size_t n_slaves;
    size_t per_slave;         /* 0: all (--turnstiles all), set once loaded */
    const char *start;
    const char *faults[MAX_FAULTS];
    size_t n_faults;
    const char *agent_config; /* write [device]/[turnstile] sections here */
    const char *agent_serial_port; /* RTU: the line's end the agent opens; NULL: DEVICE */
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* ---- small parsers ------------------------------------------------------ */

/* The shared checks (common/cli.h): the whole text, within the range. */
static int parse_u64(const char *s, uint64_t *v)
{
    return ts_parse_u64(s, 0, UINT64_MAX, v, NULL, 0);
}

static int parse_int(const char *s, int min, int max, int *v)
{
    return ts_parse_int(s, min, max, v, NULL, 0);
}

static int parse_slaves(const char *s, struct options *o)
{
    char buf[1024], *save = NULL;

    snprintf(buf, sizeof buf, "%s", s);
    o->n_slaves = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->n_slaves == 247 || parse_int(t, 1, 247, &o->slave_ids[o->n_slaves]))
            return TS_EINVAL;
        o->n_slaves++;
    }
    return o->n_slaves ? TS_OK : TS_EINVAL;
}

/* HOST:PORT, [V6]:PORT, :PORT or PORT. */
static int parse_tcp(const char *s, struct ts_sim_cfg *cfg)
{
    const char *colon = strrchr(s, ':');
    const char *host = s;
    size_t hlen = colon ? (size_t)(colon - s) : 0;
    int port;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return TS_EINVAL;
        host = s + 1;
        hlen = (size_t)(rb - host);
        colon = rb + 1;
    }
    if (parse_int(colon ? colon + 1 : s, 0, 65535, &port) || hlen >= sizeof cfg->host)
        return TS_EINVAL;
    memcpy(cfg->host, host, hlen);
    cfg->host[hlen] = '\0';
    if (strcmp(cfg->host, "*") == 0)
        cfg->host[0] = '\0';
    snprintf(cfg->port, sizeof cfg->port, "%d", port);
    return TS_OK;
}

/* ---- control commands --------------------------------------------------- */

static int on_off(const char *s, bool *v)
{
    if (s && strcmp(s, "on") == 0)
        return *v = true, TS_OK;
    if (s && strcmp(s, "off") == 0)
        return *v = false, TS_OK;
    return TS_EINVAL;
}

/* "off" -> 0, else an integer in [min, max]. */
static int off_or_int(const char *s, long min, long max, int *v)
{
    if (s && strcmp(s, "off") == 0)
        return *v = 0, TS_OK;
    return parse_int(s, min, max, v);
}

static void list(struct ts_sim_server *srv, const struct options *o, FILE *out)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n_slaves; i++) {
        const struct ts_mta_turnstile *t;
        for (size_t k = 0; (t = ts_sim_turnstile(srv, o->slave_ids[i], k)); k++, n++)
            fprintf(out, "turnstile %d %zu %s %s %s %s\n", o->slave_ids[i], k, t->ca, t->unit,
                    t->scp, t->station);
    }
    fprintf(out, "ok list %zu\n", n);
}

/* Runs one control command and writes its answer line(s) to out. Returns 1
 * for quit, else 0. */
static int run_command(struct ts_sim_server *srv, const struct options *o, char *line, FILE *out)
{
    char *a[8] = {0}, *save = NULL;
    int n = 0, slave = 0, v = 0, rc = TS_EINVAL;
    uint64_t e = 0, x = 0, k = 0;
    bool on = true;

    for (char *t = strtok_r(line, " \t\r\n", &save); t && n < 8; t = strtok_r(NULL, " \t\r\n", &save))
        a[n++] = t;
    if (n == 0)
        return 0;
    if (n >= 2 && parse_int(a[1], 0, 255, &slave) != TS_OK)
        return fprintf(out, "error bad slave id '%s'\n", a[1]), 0;
    if (n >= 3 && strcmp(a[0], "silent") && strcmp(a[0], "exception") && strcmp(a[0], "slow") &&
        parse_u64(a[2], &k) != TS_OK)
        return fprintf(out, "error bad turnstile index '%s'\n", a[2]), 0;

    if (strcmp(a[0], "quit") == 0 && n == 1) {
        fprintf(out, "ok quit\n");
        return 1;
    } else if (strcmp(a[0], "pause") == 0 && n == 1) {
        ts_sim_pause(srv, true);
        rc = TS_OK;
    } else if (strcmp(a[0], "resume") == 0 && n == 1) {
        ts_sim_pause(srv, false);
        rc = TS_OK;
    } else if (strcmp(a[0], "time") == 0 && n == 1) {
        return fprintf(out, "ok time %lld\n", (long long)ts_sim_now_ms(srv)), 0;
    } else if (strcmp(a[0], "list") == 0 && n == 1) {
        return list(srv, o, out), 0;
    } else if (strcmp(a[0], "get") == 0 && n == 3) {
        rc = ts_sim_get(srv, slave, k, &e, &x);
        if (rc == TS_OK)
            return fprintf(out, "ok get %d %llu %llu %llu\n", slave, (unsigned long long)k,
                           (unsigned long long)e, (unsigned long long)x), 0;
    } else if (strcmp(a[0], "set") == 0 && n == 5) {
        if (!parse_u64(a[3], &e) && !parse_u64(a[4], &x))
            rc = ts_sim_set(srv, slave, k, e, x);
    } else if (strcmp(a[0], "reset") == 0 && (n == 4 || n == 5)) {
        if (!parse_u64(a[3], &e) && !parse_u64(n == 5 ? a[4] : a[3], &x))
            rc = ts_sim_set(srv, slave, k, e, x);
    } else if (strcmp(a[0], "reverse") == 0 && (n == 3 || n == 4)) {
        if (n == 3 || !on_off(a[3], &on))
            rc = ts_sim_reverse(srv, slave, k, on);
    } else if (strcmp(a[0], "glitch") == 0 && (n == 4 || n == 5)) {
        v = 1;
        if (!parse_u64(a[3], &e) && (n == 4 || !parse_int(a[4], 1, 1000000, &v)))
            rc = ts_sim_glitch(srv, slave, k, e, (unsigned)v);
    } else if (strcmp(a[0], "silent") == 0 && n == 3) {
        if (!on_off(a[2], &on))
            rc = ts_sim_silent(srv, slave, on);
    } else if (strcmp(a[0], "exception") == 0 && n == 3) {
        if (!off_or_int(a[2], 1, 11, &v))
            rc = ts_sim_exception(srv, slave, v);
    } else if (strcmp(a[0], "slow") == 0 && n == 3) {
        if (!off_or_int(a[2], 1, 600000, &v))
            rc = ts_sim_slow(srv, slave, v);
    } else {
        return fprintf(out, "error unknown command or wrong arguments: %s (see --help)\n", a[0]), 0;
    }
    if (rc == TS_ENOTFOUND && !ts_sim_turnstile(srv, slave, 0))
        fprintf(out, "error no slave %d\n", slave);
    else if (rc == TS_ENOTFOUND)
        fprintf(out, "error no turnstile %llu on slave %d\n", (unsigned long long)k, slave);
    else if (rc != TS_OK)
        fprintf(out, "error bad arguments to %s\n", a[0]);
    else {
        fprintf(out, "ok");
        for (int i = 0; i < n; i++)
            fprintf(out, " %s", a[i]);
        fprintf(out, "\n");
    }
    return 0;
}

/* Applies the --fault commands; the answers go to the log. */
static int apply_faults(struct ts_sim_server *srv, const struct options *o)
{
    for (size_t i = 0; i < o->n_faults; i++) {
        char line[512], answer[512] = "";
        FILE *mem = fmemopen(answer, sizeof answer - 1, "w");
        if (!mem)
            return TS_ENOMEM;
        snprintf(line, sizeof line, "%s", o->faults[i]);
        run_command(srv, o, line, mem);
        fclose(mem);
        answer[strcspn(answer, "\n")] = '\0';
        if (strncmp(answer, "ok", 2) != 0) {
            TS_LOG(TS_LOG_ERR, "--fault '%s': %s", o->faults[i], answer);
            return TS_EINVAL;
        }
        TS_LOG(TS_LOG_INFO, "fault at start: %s", answer + 3);
    }
    return TS_OK;
}

/* Writes the agent config sections that poll this simulator: one [device]
 * per slave, one [turnstile] per served turnstile, with the register map. */
static int write_agent_config(struct ts_sim_server *srv, const struct options *o)
{
    FILE *f = fopen(o->agent_config, "w");
    int regs = (int)o->cfg.width / 16;

    if (!f) {
        TS_LOG(TS_LOG_ERR, "--agent-config %s: %s", o->agent_config, strerror(errno));
        return TS_ESYS;
    }
    fprintf(f, "# written by turnstile-sim --agent-config: polls this simulator\n");
    char name[64];
    for (size_t i = 0; i < o->n_slaves; i++) {
        int id = o->slave_ids[i];
        if (o->cfg.transport == TS_SIM_TCP)
            snprintf(name, sizeof name, "sim-%d-slave-%d", ts_sim_server_port(srv), id);
        else
            snprintf(name, sizeof name, "sim-slave-%d", id);
        fprintf(f, "\n[device %s]\n", name);
        if (o->cfg.transport == TS_SIM_TCP)
            fprintf(f, "kind = modbus-tcp\nhost = %s\nport = %d\n",
                    o->cfg.host[0] ? o->cfg.host : "127.0.0.1", ts_sim_server_port(srv));
        else {
            /* in the agent's config '#' after a value is part of it: the
             * comment goes on a line of its own */
            if (!o->agent_serial_port)
                fprintf(f, "; the simulator serves %s: set serial_port to the other end of "
                           "the line\n", o->cfg.device);
            fprintf(f, "kind = modbus-rtu\nserial_port = %s\n"
                       "baud = %d\nparity = %c\ndata_bits = %d\nstop_bits = %d\n",
                    o->agent_serial_port ? o->agent_serial_port : o->cfg.device, o->cfg.baud,
                    o->cfg.parity, o->cfg.data_bits, o->cfg.stop_bits);
        }
        fprintf(f, "slave_id = %d\n", id);
        const struct ts_mta_turnstile *t;
        for (size_t k = 0; (t = ts_sim_turnstile(srv, id, k)); k++)
            fprintf(f, "\n[turnstile %s/%s/%s]\ndevice = %s\nca = %s\nunit = %s\n"
                       "scp = %s\nstation = %s\nlinename = %s\ndivision = %s\n"
                       "entries_address = %zu\nexits_address = %zu\nwidth = %u\norder = %s\n",
                    t->ca, t->unit, t->scp, name, t->ca, t->unit, t->scp, t->station, t->linename,
                    t->division, k * 2 * (size_t)regs, k * 2 * (size_t)regs + (size_t)regs,
                    o->cfg.width, ts_word_order_name(o->cfg.order));
    }
    return fclose(f) == 0 ? TS_OK : TS_ESYS;
}

/* ---- main --------------------------------------------------------------- */

static int parse_args(int argc, char **argv, struct options *o)
{
    enum { O_BAUD = 256, O_PARITY, O_DATA, O_STOP, O_STATION, O_SEED, O_SLAVES, O_TURNSTILES,
           O_SPEED, O_START, O_WIDTH, O_ORDER, O_FAULT, O_RATE, O_LOGLEVEL, O_VERSION,
           O_AGENT_CONFIG, O_AGENT_SERIAL_PORT };
    static const struct option opts[] = {
        {"tcp", required_argument, NULL, 't'},       {"rtu", required_argument, NULL, 'r'},
        {"baud", required_argument, NULL, O_BAUD},    {"parity", required_argument, NULL, O_PARITY},
        {"data-bits", required_argument, NULL, O_DATA}, {"stop-bits", required_argument, NULL, O_STOP},
        {"mta", required_argument, NULL, 'm'},       {"station", required_argument, NULL, O_STATION},
        {"generate", no_argument, NULL, 'g'},        {"seed", required_argument, NULL, O_SEED},
        {"slaves", required_argument, NULL, O_SLAVES},
        {"turnstiles", required_argument, NULL, O_TURNSTILES},
        {"speed", required_argument, NULL, O_SPEED}, {"start", required_argument, NULL, O_START},
        {"width", required_argument, NULL, O_WIDTH}, {"order", required_argument, NULL, O_ORDER},
        {"fault", required_argument, NULL, O_FAULT}, {"max-rate", required_argument, NULL, O_RATE},
        {"verbose", no_argument, NULL, 'v'},         {"log-level", required_argument, NULL, O_LOGLEVEL},
        {"help", no_argument, NULL, 'h'},            {"version", no_argument, NULL, O_VERSION},
        {"agent-config", required_argument, NULL, O_AGENT_CONFIG},
        {"agent-serial-port", required_argument, NULL, O_AGENT_SERIAL_PORT},
        {NULL, 0, NULL, 0}};
    struct ts_sim_cfg *c = &o->cfg;
    bool link = false;
    int opt, n = 0;
    char why[256] = "";

    while ((opt = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
        const char *bad = NULL, *hint = "";
        why[0] = '\0';
        switch (opt) {
        case 't':
            c->transport = TS_SIM_TCP;
            link = true;
            if (parse_tcp(optarg, c))
                bad = "--tcp", hint = " (want HOST:PORT)";
            break;
        case 'r':
            c->transport = TS_SIM_RTU;
            link = true;
            if (strlen(optarg) >= sizeof c->device)
                bad = "--rtu";
            else
                snprintf(c->device, sizeof c->device, "%s", optarg);
            break;
        case O_BAUD:
            if (ts_parse_int(optarg, 50, 4000000, &c->baud, why, sizeof why))
                bad = "--baud";
            break;
        case O_PARITY:
            c->parity = optarg[0];
            if (strlen(optarg) != 1 || !strchr("NEO", optarg[0]))
                bad = "--parity", hint = " (N, E or O)";
            break;
        case O_DATA:
            if (ts_parse_int(optarg, 5, 8, &c->data_bits, why, sizeof why))
                bad = "--data-bits";
            break;
        case O_STOP:
            if (ts_parse_int(optarg, 1, 2, &c->stop_bits, why, sizeof why))
                bad = "--stop-bits";
            break;
        case 'm': o->mta_file = optarg; break;
        case O_STATION:
            if (o->n_stations == MAX_STATIONS)
                bad = "--station", hint = " (too many)";
            else
                o->stations[o->n_stations++] = optarg;
            break;
        case 'g': o->generate = true; break;
        case O_SEED:
            if (ts_parse_u64(optarg, 0, UINT64_MAX, &o->seed, why, sizeof why))
                bad = "--seed";
            break;
        case O_SLAVES: if (parse_slaves(optarg, o)) bad = "--slaves", hint = " (ids 1..247, comma-separated)"; break;
        case O_TURNSTILES:
            if (strcmp(optarg, "all") == 0)
                n = 0;
            else if (ts_parse_int(optarg, 1, MAX_PER_SLAVE, &n, why, sizeof why))
                bad = "--turnstiles";
            o->per_slave = (size_t)n;
            break;
        case O_SPEED:
            if (ts_parse_double(optarg, 0.001, 1e7, &c->speed, why, sizeof why))
                bad = "--speed";
            break;
        case O_START: o->start = optarg; break;
        case O_WIDTH:
            if (parse_int(optarg, 16, 64, &n) || (n != 16 && n != 32 && n != 64))
                bad = "--width", hint = " (16, 32 or 64)";
            c->width = (unsigned)n;
            break;
        case O_ORDER: if (ts_word_order_parse(optarg, &c->order)) bad = "--order"; break;
        case O_FAULT:
            if (o->n_faults == MAX_FAULTS)
                bad = "--fault", hint = " (too many)";
            else
                o->faults[o->n_faults++] = optarg;
            break;
        case O_RATE:
            if (ts_parse_double(optarg, 0.001, 1e7, &c->replay.max_rate_per_min, why, sizeof why))
                bad = "--max-rate";
            break;
        case 'v': c->verbose = true; break;
        case O_LOGLEVEL:
            if ((n = ts_log_level_parse(optarg)) < 0)
                bad = "--log-level";
            else
                ts_log_level = n;
            break;
        case O_AGENT_CONFIG: o->agent_config = optarg; break;
        case O_AGENT_SERIAL_PORT:
            /* written as a config value: one line, no ';' comment, no edge blanks */
            if (!*optarg || strpbrk(optarg, "\r\n;") || isspace((unsigned char)optarg[0]) ||
                isspace((unsigned char)optarg[strlen(optarg) - 1]))
                bad = "--agent-serial-port";
            else
                o->agent_serial_port = optarg;
            break;
        case 'h': fputs(usage_text, stdout); exit(0);
        case O_VERSION: printf("turnstile-sim %s\n", TS_VERSION); exit(0);
        default: return TS_EINVAL;
        }
        if (bad && why[0]) {
            fprintf(stderr, "turnstile-sim: %s: %s\n", bad, why);
            return TS_EINVAL;
        }
        if (bad) {
            ts_config_escape(why, sizeof why, optarg);
            fprintf(stderr, "turnstile-sim: %s: bad value '%s'%s\n", bad, why, hint);
            return TS_EINVAL;
        }
    }
    if (optind < argc)
        return fprintf(stderr, "turnstile-sim: unexpected argument '%s'\n", argv[optind]), TS_EINVAL;
    if (!link)
        return fprintf(stderr, "turnstile-sim: need --tcp HOST:PORT or --rtu DEVICE\n"), TS_EINVAL;
    if (o->mta_file && o->generate)
        return fprintf(stderr, "turnstile-sim: --mta and --generate exclude each other\n"), TS_EINVAL;
    if (!o->mta_file)
        o->generate = true;
    if (o->generate && o->per_slave == 0)
        return fprintf(stderr, "turnstile-sim: --turnstiles all needs --mta\n"), TS_EINVAL;
    return TS_OK;
}

/* Loads or generates the traffic; on success *data owns the turnstiles. */
static int load_traffic(struct options *o, struct ts_mta_data **data)
{
    size_t need = o->n_slaves * o->per_slave;
    char err[512];
    int64_t start = 0;
    int rc;

    if (o->start && ts_mta_parse_time(NULL, o->start, &start)) {
        TS_LOG(TS_LOG_ERR, "--start '%s': want 'YYYY-MM-DD HH:MM:SS'", o->start);
        return TS_EINVAL;
    }
    if (o->generate) {
        if (!o->start)
            ts_mta_parse_time(NULL, DEFAULT_START, &start);
        if ((rc = ts_mta_generate(need, o->seed, start, GENERATE_DAYS, data)))
            TS_LOG(TS_LOG_ERR, "cannot generate traffic: %s", ts_strerror(rc));
        else
            ts_replay_prepare(*data);
        o->cfg.start_ms = start;
        return rc;
    }
    struct ts_mta_filter f = {.stations = o->stations, .n_stations = o->n_stations,
                              .max_turnstiles = need};
    if ((rc = ts_mta_load(o->mta_file, &f, data, err, sizeof err))) {
        TS_LOG(TS_LOG_ERR, "%s", err);
        return rc;
    }
    if ((*data)->n_renamed)
        TS_LOG(TS_LOG_NOTICE, "%s: %zu turnstiles have names renamed to be carried (docs/simulator.md)",
               o->mta_file, (*data)->n_renamed);
    if (o->per_slave == 0) { /* --turnstiles all */
        size_t n = (*data)->n_turnstiles;
        o->per_slave = (n + o->n_slaves - 1) / o->n_slaves;
        if (n == 0 || o->per_slave > MAX_PER_SLAVE || (o->n_slaves - 1) * o->per_slave >= n) {
            TS_LOG(TS_LOG_ERR, "%s: %zu matching turnstiles do not spread over %zu slaves of 1 to "
                   "%d turnstiles each", o->mta_file, n, o->n_slaves, MAX_PER_SLAVE);
            ts_mta_free(*data);
            *data = NULL;
            return TS_ENOTFOUND;
        }
        need = n;
    }
    if ((*data)->n_turnstiles < need) {
        TS_LOG(TS_LOG_ERR, "%s: %zu matching turnstiles, need %zu (%zu slaves x %zu)", o->mta_file,
               (*data)->n_turnstiles, need, o->n_slaves, o->per_slave);
        ts_mta_free(*data);
        *data = NULL;
        return TS_ENOTFOUND;
    }
    ts_replay_prepare(*data);
    o->cfg.start_ms = o->start ? start : (*data)->file_first_ms;
    return TS_OK;
}

/* Reads control commands from stdin until quit or a signal. Reads with
 * read(2) into its own buffer, so that poll sees every line. */
static int serve_stdin(struct ts_sim_server *srv, const struct options *o)
{
    char buf[4096];
    size_t len = 0;
    bool open_in = true;

    while (!stop_signal) {
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&p, open_in ? 1 : 0, 500);
        if (r <= 0)
            continue;
        ssize_t got = read(STDIN_FILENO, buf + len, sizeof buf - 1 - len);
        if (got <= 0) {
            if (got < 0 && errno == EINTR)
                continue;
            open_in = false; /* stdin closed: keep serving until a signal */
            continue;
        }
        len += (size_t)got;
        buf[len] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            if (run_command(srv, o, line, stdout))
                return 0;
            fflush(stdout);
            line = nl + 1;
        }
        len = strlen(line);
        memmove(buf, line, len + 1);
        if (len == sizeof buf - 1) {
            printf("error line too long\n");
            len = 0;
        }
    }
    TS_LOG(TS_LOG_INFO, "signal %d, exiting", (int)stop_signal);
    return 0;
}

int main(int argc, char **argv)
{
    struct options o = {.cfg = {.baud = 19200, .parity = 'N', .data_bits = 8, .stop_bits = 1,
                                .width = 32, .order = TS_ORDER_ABCD, .speed = 1.0},
                        .seed = 1, .slave_ids = {1}, .n_slaves = 1, .per_slave = 4};
    struct ts_mta_data *data = NULL;
    struct ts_sim_slave_cfg slaves[247];
    const struct ts_mta_turnstile **ptrs = NULL;
    struct ts_sim_server *srv = NULL;
    struct sigaction sa = {.sa_handler = on_signal};
    char err[512];
    int rc;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (parse_args(argc, argv, &o))
        return 2;
    if (load_traffic(&o, &data))
        return 1;
    ptrs = calloc(data->n_turnstiles, sizeof *ptrs);
    if (!ptrs) {
        ts_mta_free(data);
        return 1;
    }
    for (size_t i = 0; i < o.n_slaves; i++) {
        /* every slave has per_slave turnstiles; with --turnstiles all the last may have fewer */
        size_t mine = data->n_turnstiles - i * o.per_slave;
        mine = mine < o.per_slave ? mine : o.per_slave;
        slaves[i] = (struct ts_sim_slave_cfg){.id = o.slave_ids[i], .turnstiles = ptrs + i * o.per_slave,
                                             .n_turnstiles = mine};
        for (size_t k = 0; k < mine; k++) {
            const struct ts_mta_turnstile *t = &data->turnstiles[i * o.per_slave + k];
            ptrs[i * o.per_slave + k] = t;
            TS_LOG(TS_LOG_INFO, "slave %d turnstile %zu: %s/%s/%s %s", o.slave_ids[i], k, t->ca,
                   t->unit, t->scp, t->station);
        }
    }
    o.cfg.slaves = slaves;
    o.cfg.n_slaves = o.n_slaves;
    rc = ts_sim_server_new(&o.cfg, &srv, err, sizeof err);
    if (rc) {
        TS_LOG(TS_LOG_ERR, "%s", err);
    } else if ((rc = apply_faults(srv, &o)) == TS_OK &&
               (!o.agent_config || (rc = write_agent_config(srv, &o)) == TS_OK) &&
               (rc = ts_sim_server_start(srv)) != TS_OK) {
        TS_LOG(TS_LOG_ERR, "cannot start: %s", strerror(errno));
    }
    if (rc == TS_OK) {
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        char when[32];
        time_t t = (time_t)(o.cfg.start_ms / 1000);
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
        TS_LOG(TS_LOG_INFO, "%zu slaves x %zu turnstiles, width %u, order %s, speed %g, start %s",
               o.n_slaves, o.per_slave, o.cfg.width, ts_word_order_name(o.cfg.order), o.cfg.speed,
               when);
        if (o.cfg.transport == TS_SIM_TCP)
            printf("listening tcp %d\n", ts_sim_server_port(srv));
        else
            printf("listening rtu %s\n", o.cfg.device);
        fflush(stdout);
        rc = serve_stdin(srv, &o);
    }
    ts_sim_server_free(srv);
    free(ptrs);
    ts_mta_free(data);
    return rc ? 1 : 0;
}
