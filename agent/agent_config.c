/* SPDX-License-Identifier: Apache-2.0 */
#include "agent_config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define OFF(type, field) offsetof(struct type, field), sizeof(((struct type *)0)->field)
#define NOSIZE(type, field) offsetof(struct type, field), 0

static const struct ts_cfg_choice kinds[] = {
    {"modbus-tcp", TS_HAL_MODBUS_TCP}, {"modbus-rtu", TS_HAL_MODBUS_RTU},
    {"gpio", TS_HAL_GPIO}, {"sim", TS_HAL_SIM}, {"http", TS_HAL_HTTP}, {NULL, 0}};
static const struct ts_cfg_choice reg_types[] = {
    {"holding", TS_REG_HOLDING}, {"input", TS_REG_INPUT}, {NULL, 0}};
static const struct ts_cfg_choice widths[] = {{"16", 16}, {"32", 32}, {"64", 64}, {NULL, 0}};
static const struct ts_cfg_choice orders[] = {
    {"ABCD", TS_ORDER_ABCD}, {"CDAB", TS_ORDER_CDAB}, {"BADC", TS_ORDER_BADC},
    {"DCBA", TS_ORDER_DCBA}, {"ABCDEFGH", TS_ORDER_ABCD}, {"GHEFCDAB", TS_ORDER_CDAB},
    {"BADCFEHG", TS_ORDER_BADC}, {"HGFEDCBA", TS_ORDER_DCBA}, {NULL, 0}};
static const struct ts_cfg_choice directions[] = {
    {"up", TS_DIR_UP}, {"down", TS_DIR_DOWN}, {"auto", TS_DIR_AUTO}, {NULL, 0}};
static const struct ts_cfg_choice edges[] = {
    {"rising", TS_EDGE_RISING}, {"falling", TS_EDGE_FALLING}, {"both", TS_EDGE_BOTH}, {NULL, 0}};
static const struct ts_cfg_choice biases[] = {
    {"as-is", TS_BIAS_AS_IS}, {"disable", TS_BIAS_DISABLE}, {"pull-up", TS_BIAS_PULL_UP},
    {"pull-down", TS_BIAS_PULL_DOWN}, {NULL, 0}};
static const struct ts_cfg_choice clocks[] = {
    {"wait-sync", TS_CLOCK_WAIT_SYNC}, {"trust", TS_CLOCK_TRUST}, {NULL, 0}};
static const struct ts_cfg_choice syncs[] = {{"normal", 0}, {"full", 1}, {NULL, 0}};
static const struct ts_cfg_choice ack_modes[] = {
    {"end-to-end", TS_ACK_END_TO_END}, {"puback", TS_ACK_PUBACK}, {NULL, 0}};
static const struct ts_cfg_choice log_levels[] = {
    {"error", 3}, {"warning", 4}, {"notice", 5}, {"info", 6}, {"debug", 7}, {NULL, 0}};

#define S ts_agent_settings
static const struct ts_cfg_key agent_keys[] = {
    {"id", TS_CFG_ID, OFF(S, agent_id), .flags = TS_CFG_REQUIRED,
     .doc = "this agent's id, unique across the fleet (letters, digits, . _ -)"},
    {"station_id", TS_CFG_ID, OFF(S, station_id), .flags = TS_CFG_REQUIRED,
     .doc = "station this controller belongs to (letters, digits, . _ -)"},
    {"timezone", TS_CFG_STRING, OFF(S, timezone), .def = "America/New_York",
     .doc = "time zone of DATE, TIME and TIMESTAMP (as in the MTA files)"},
    {"poll_interval_ms", TS_CFG_INT, NOSIZE(S, poll_interval_ms), 100, 3600000, "1000",
     .doc = "how often every turnstile is read"},
    {"recovered_after_polls", TS_CFG_INT, NOSIZE(S, recovered_after_polls), 2, 1000000, "3",
     .doc = "a reading after this many missed polls is marked RECOVR AUD"},
    {"log_level", TS_CFG_ENUM, NOSIZE(S, log_level), .def = "info", .choices = log_levels,
     .doc = "error, warning, notice, info or debug"},
    {"max_rate_per_min", TS_CFG_DOUBLE, NOSIZE(S, max_rate_per_min), 1, 1e7, "120",
     .doc = "default plausible people per minute per turnstile; above it a delta is withheld as a glitch"},
    {"clock", TS_CFG_ENUM, NOSIZE(S, clock), .def = "wait-sync", .choices = clocks,
     .doc = "wait-sync: hold readings until the kernel says the clock is synchronised (NTP); "
            "trust: the wall clock is always right"},
    {"state_interval_ms", TS_CFG_INT, NOSIZE(S, state_interval_ms), 200, 3600000, "5000",
     .doc = "how often the retained state topic (dashboards) is refreshed at most"},
    {"anomaly_warn_s", TS_CFG_INT, NOSIZE(S, anomaly_warn_s), 0, 604800, "900",
     .doc = "warn (log, state topic) when every reading of a turnstile's counter that moved was an "
            "anomaly that counted nobody for this many seconds (a wrong word order or width); 0: never"},
    {"ca", TS_CFG_FIELD, OFF(S, ca), .doc = "default C/A (control area) of the turnstiles"},
    {"unit", TS_CFG_FIELD, OFF(S, unit), .doc = "default UNIT (remote unit) of the turnstiles"},
    {"station", TS_CFG_FIELD, OFF(S, station), .doc = "default STATION name of the turnstiles"},
    {"linename", TS_CFG_FIELD, OFF(S, linename), .doc = "default LINENAME of the turnstiles"},
    {"division", TS_CFG_FIELD, OFF(S, division), .doc = "default DIVISION of the turnstiles"},
};
#undef S

#define ST ts_store_cfg
static const struct ts_cfg_key store_keys[] = {
    {"path", TS_CFG_STRING, OFF(ST, path), .def = "/var/lib/turnstile/agent.db",
     .doc = "the SQLite file (WAL mode) holding every reading until it is acknowledged"},
    {"max_rows", TS_CFG_INT64, NOSIZE(ST, max_rows), 1000, 1e12, "2000000",
     .doc = "retention: past this many readings the oldest unpublished ones are merged per turnstile"},
    {"max_bytes", TS_CFG_INT64, NOSIZE(ST, max_bytes), 65536, 1e15, "536870912",
     .doc = "retention: past this file size the oldest unpublished readings are merged per turnstile"},
    {"merge_batch", TS_CFG_INT, NOSIZE(ST, merge_batch), 10, 1000000, "1000",
     .doc = "readings merged in one pass when retention is full"},
    {"synchronous", TS_CFG_ENUM, NOSIZE(ST, synchronous_full), .def = "full", .choices = syncs,
     .doc = "full: every commit survives a power cut; normal: faster, may lose the last commits"},
};
#undef ST

#define M ts_mqtt_cfg
static const struct ts_cfg_key mqtt_keys[] = {
    TS_MQTT_LINK_KEYS(ts_mqtt_cfg, link,
                      "MQTT client id of the persistent session; default turnstile-agent-<id>",
                      "60000"),
    {"max_inflight", TS_CFG_INT, NOSIZE(M, max_inflight), 1, TS_PUBLISHER_INFLIGHT_MAX, "100",
     .doc = "readings published and not yet acknowledged by the broker (drain speed)"},
    {"ack_timeout_ms", TS_CFG_INT, NOSIZE(M, ack_timeout_ms), 1000, 86400000, "30000",
     .doc = "re-publish from the acknowledged sequence if the acknowledgement does not advance"},
    {"ack", TS_CFG_ENUM, NOSIZE(M, ack_mode), .def = "end-to-end", .choices = ack_modes,
     .doc = "end-to-end: rows leave the store when the bridge acknowledges them on the ack topic; "
            "puback: when the broker acknowledges them (sites without the bridge)"},
};
#undef M

/* The kinds of device a key is for (the keys' `kinds`): a device's own, and
 * its turnstiles' (which take their device's kind). */
#define TCP TS_CFG_KIND(TS_HAL_MODBUS_TCP)
#define RTU TS_CFG_KIND(TS_HAL_MODBUS_RTU)
#define MODBUS (TCP | RTU)
#define GPIO TS_CFG_KIND(TS_HAL_GPIO)
#define SIM TS_CFG_KIND(TS_HAL_SIM)
#define HTTP TS_CFG_KIND(TS_HAL_HTTP)

#define D ts_device_cfg
static const struct ts_cfg_key device_keys[] = {
    {"kind", TS_CFG_ENUM, NOSIZE(D, kind), .choices = kinds, .flags = TS_CFG_REQUIRED,
     .doc = "modbus-tcp, modbus-rtu, gpio, sim or http"},
    {"host", TS_CFG_STRING, OFF(D, host), .kinds = TCP,
     .doc = "modbus-tcp: address of the gate controller"},
    {"port", TS_CFG_INT, NOSIZE(D, port), 1, 65535, "502", .kinds = TCP,
     .doc = "modbus-tcp: TCP port"},
    {"serial_port", TS_CFG_STRING, OFF(D, serial_port), .kinds = RTU,
     .doc = "modbus-rtu: serial device; devices on the same port share one serialized poller"},
    {"baud", TS_CFG_INT, NOSIZE(D, baud), 300, 921600, "19200", .kinds = RTU,
     .doc = "modbus-rtu: baud rate"},
    {"parity", TS_CFG_CHAR, NOSIZE(D, parity), .def = "N", .chars = "NEO", .kinds = RTU,
     .doc = "modbus-rtu: N, E or O"},
    {"data_bits", TS_CFG_INT, NOSIZE(D, data_bits), 5, 8, "8", .kinds = RTU,
     .doc = "modbus-rtu: data bits"},
    {"stop_bits", TS_CFG_INT, NOSIZE(D, stop_bits), 1, 2, "1", .kinds = RTU,
     .doc = "modbus-rtu: stop bits"},
    {"frame_delay_ms", TS_CFG_INT, NOSIZE(D, frame_delay_ms), 0, 10000, "5", .kinds = RTU,
     .doc = "modbus-rtu: silence between frames on the line"},
    {"slave_id", TS_CFG_INT, NOSIZE(D, slave_id), 0, 247, "1", .kinds = MODBUS,
     .doc = "Modbus unit / slave id"},
    {"response_timeout_ms", TS_CFG_INT, NOSIZE(D, response_timeout_ms), 10, 60000, "500",
     .kinds = MODBUS,
     .doc = "Modbus: how long to wait for the first byte of a response"},
    {"byte_timeout_ms", TS_CFG_INT, NOSIZE(D, byte_timeout_ms), 0, 10000, "100", .kinds = MODBUS,
     .doc = "Modbus: longest silence between bytes of one response"},
    {"retries", TS_CFG_INT, NOSIZE(D, retries), 0, 10, "1", .kinds = MODBUS,
     .doc = "Modbus: extra attempts of a failed read before it counts as a fault"},
    {"backoff_min_ms", TS_CFG_INT, NOSIZE(D, backoff_min_ms), 10, 3600000, "1000",
     .doc = "first back-off after a fault; doubles up to backoff_max_ms"},
    {"backoff_max_ms", TS_CFG_INT, NOSIZE(D, backoff_max_ms), 10, 3600000, "30000",
     .doc = "longest back-off after repeated faults"},
    {"chip", TS_CFG_STRING, OFF(D, chip), .kinds = GPIO,
     .doc = "gpio: gpiochip name, path or label"},
    {"debounce_us", TS_CFG_INT, NOSIZE(D, debounce_us), 0, 1000000, "10000", .kinds = GPIO,
     .doc = "gpio: edges closer than this to the last accepted one are contact bounce"},
    {"mta_file", TS_CFG_STRING, OFF(D, mta_file), .kinds = SIM,
     .doc = "sim: MTA turnstile file to replay"},
    {"speed", TS_CFG_DOUBLE, NOSIZE(D, speed), 0.001, 1e7, "60", .kinds = SIM,
     .doc = "sim: simulated seconds per real second"},
    {"url", TS_CFG_STRING, OFF(D, url), .kinds = HTTP,
     .doc = "http: the http:// or https:// URL whose JSON document holds the counters (one GET a poll)"},
    {"timeout_ms", TS_CFG_INT, NOSIZE(D, timeout_ms), 100, 60000, "2000", .kinds = HTTP,
     .doc = "http: longest time of one request, connect to last byte; past it the poll is a timeout fault"},
    {"connect_timeout_ms", TS_CFG_INT, NOSIZE(D, connect_timeout_ms), 100, 60000, "1000",
     .kinds = HTTP, .doc = "http: longest time to connect (TCP and TLS); at most timeout_ms"},
    {"max_response_bytes", TS_CFG_INT, NOSIZE(D, max_response_bytes), 64, 16777216, "65536",
     .kinds = HTTP, .doc = "http: a larger response body is refused as a fault"},
    {"max_json_depth", TS_CFG_INT, NOSIZE(D, max_json_depth), 2, 64, "16", .kinds = HTTP,
     .doc = "http: JSON nested deeper than this is refused as a fault"},
    {"token_file", TS_CFG_STRING, OFF(D, token_file), .kinds = HTTP,
     .doc = "http: file holding a bearer token sent as `Authorization: Bearer` (keep it 0600); read at start"},
    {"token_env", TS_CFG_STRING, OFF(D, token_env), .kinds = HTTP,
     .doc = "http: environment variable holding the bearer token (instead of token_file)"},
    {"ca_file", TS_CFG_STRING, OFF(D, ca_file), .kinds = HTTP,
     .doc = "http: CA certificates that verify an https server; default the system's"},
};
#undef D

#define T ts_turnstile_cfg
static const struct ts_cfg_key turnstile_keys[] = {
    {"device", TS_CFG_STRING, OFF(T, device), .flags = TS_CFG_REQUIRED,
     .doc = "name of the [device] that serves this turnstile"},
    {"ca", TS_CFG_FIELD, OFF(T, ca), .doc = "C/A (control area); default from [agent]"},
    {"unit", TS_CFG_FIELD, OFF(T, unit), .doc = "UNIT (remote unit); default from [agent]"},
    {"scp", TS_CFG_FIELD, OFF(T, scp), .flags = TS_CFG_REQUIRED,
     .doc = "SCP (subunit channel position): the turnstile"},
    {"station", TS_CFG_FIELD, OFF(T, station), .doc = "STATION; default from [agent]"},
    {"linename", TS_CFG_FIELD, OFF(T, linename), .doc = "LINENAME; default from [agent]"},
    {"division", TS_CFG_FIELD, OFF(T, division), .doc = "DIVISION; default from [agent]"},
    {"register_type", TS_CFG_ENUM, NOSIZE(T, reg_type), .def = "holding", .choices = reg_types,
     .kinds = MODBUS,
     .doc = "Modbus: holding or input registers"},
    {"entries_address", TS_CFG_INT, NOSIZE(T, entries_address), 0, 65535, .kinds = MODBUS,
     .doc = "Modbus: first register of the entries counter"},
    {"exits_address", TS_CFG_INT, NOSIZE(T, exits_address), 0, 65535, .kinds = MODBUS,
     .doc = "Modbus: first register of the exits counter"},
    {"width", TS_CFG_ENUM, NOSIZE(T, width), .def = "32", .choices = widths,
     .kinds = MODBUS | SIM | HTTP,
     .doc = "counter width in bits: 16, 32 or 64 (wrap-around happens here); http: default 64, "
            "a value past it is refused (64: past 2^63 - 1)"},
    {"order", TS_CFG_ENUM, NOSIZE(T, order), .def = "ABCD", .choices = orders, .kinds = MODBUS,
     .doc = "word and byte order: ABCD, CDAB, BADC, DCBA (64-bit aliases accepted)"},
    {"entries_path", TS_CFG_STRING, OFF(T, entries_path), .kinds = HTTP,
     .doc = "http: JSON Pointer (RFC 6901) of the entries counter in the response, e.g. /gates/0/in"},
    {"exits_path", TS_CFG_STRING, OFF(T, exits_path), .kinds = HTTP,
     .doc = "http: JSON Pointer (RFC 6901) of the exits counter in the response"},
    {"entry_line", TS_CFG_INT, NOSIZE(T, entry_line), 0, 1023, .kinds = GPIO,
     .doc = "gpio: line offset of the entry pulse input"},
    {"exit_line", TS_CFG_INT, NOSIZE(T, exit_line), 0, 1023, .kinds = GPIO,
     .doc = "gpio: line offset of the exit pulse input"},
    {"edge", TS_CFG_ENUM, NOSIZE(T, edge), .def = "rising", .choices = edges, .kinds = GPIO,
     .doc = "gpio: which edge is a person: rising, falling or both"},
    {"active_low", TS_CFG_BOOL, NOSIZE(T, active_low), .def = "false", .kinds = GPIO,
     .doc = "gpio: the input is active low"},
    {"bias", TS_CFG_ENUM, NOSIZE(T, bias), .def = "as-is", .choices = biases, .kinds = GPIO,
     .doc = "gpio: as-is, disable, pull-up or pull-down (where the kernel supports it)"},
    {"direction", TS_CFG_ENUM, NOSIZE(T, direction), .def = "auto", .choices = directions,
     .kinds = MODBUS | SIM | HTTP,
     .doc = "counter direction: up, down, or auto (detected from the data)"},
    {"max_rate_per_min", TS_CFG_DOUBLE, NOSIZE(T, max_rate_per_min), 0, 1e7, "0",
     .doc = "plausible people per minute; 0: the [agent] default"},
    {"rebase_after", TS_CFG_INT, NOSIZE(T, rebase_after), 2, 100, "3",
     .doc = "readings in a row, each a plausible count from the last, that confirm a new counter level (spanning at least rebase_after - 1 minutes)"},
};
#undef T
#undef TCP
#undef RTU
#undef MODBUS
#undef GPIO
#undef SIM
#undef HTTP

static void *add_agent(void *user, char *err, size_t errsize)
{
    struct ts_agent_cfg *cfg = user;
    return &cfg->agent;
}

static void *add_store(void *user, char *err, size_t errsize)
{
    struct ts_agent_cfg *cfg = user;
    cfg->has_store = true;
    return &cfg->store;
}

static void *add_mqtt(void *user, char *err, size_t errsize)
{
    struct ts_agent_cfg *cfg = user;
    cfg->has_mqtt = true;
    return &cfg->mqtt;
}

static void *grow(void ***array, size_t *n, size_t size, char *err, size_t errsize)
{
    void **a = realloc(*array, (*n + 1) * sizeof *a);
    if (!a)
        return snprintf(err, errsize, "out of memory"), NULL;
    *array = a;
    a[*n] = calloc(1, size);
    if (!a[*n])
        return snprintf(err, errsize, "out of memory"), NULL;
    return a[(*n)++];
}

static void *add_device(void *user, char *err, size_t errsize)
{
    struct ts_agent_cfg *cfg = user;
    return grow((void ***)&cfg->devices, &cfg->n_devices, sizeof(struct ts_device_cfg), err, errsize);
}

static void *add_turnstile(void *user, char *err, size_t errsize)
{
    struct ts_agent_cfg *cfg = user;
    return grow((void ***)&cfg->turnstiles, &cfg->n_turnstiles, sizeof(struct ts_turnstile_cfg),
                err, errsize);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))
enum { SEC_AGENT, SEC_STORE, SEC_MQTT, SEC_DEVICE, SEC_TURNSTILE };
static const struct ts_cfg_section sections[] = {
    [SEC_AGENT] = {"agent", 0, agent_keys, N(agent_keys), 0, 0,
                   "The agent itself: identity, polling, defaults.", add_agent},
    [SEC_STORE] = {"store", 0, store_keys, N(store_keys), 0, 0,
                   "The SQLite buffer: every reading stays here until acknowledged.", add_store},
    [SEC_MQTT] = {"mqtt", 0, mqtt_keys, N(mqtt_keys), 0, 0,
                  "The MQTT broker the readings go to. Without it readings are printed.", add_mqtt},
    [SEC_DEVICE] = {"device", 1, device_keys, N(device_keys), offsetof(struct ts_device_cfg, name),
                    TS_NAME_MAX, "A source of gate counters.", add_device, .kinds = kinds,
                    .kinds_doc = "A key for some kinds only is an error in a device of another "
                                 "kind."},
    [SEC_TURNSTILE] = {"turnstile", 1, turnstile_keys, N(turnstile_keys),
                       offsetof(struct ts_turnstile_cfg, name), TS_NAME_MAX,
                       "One turnstile gate: its identity and where its counters are.",
                       add_turnstile, .kinds = kinds,
                       .kinds_doc = "A key for some kinds only is an error in a turnstile whose "
                                    "device is of another kind."},
};
static const struct ts_cfg_schema schema = {sections, N(sections)};

void ts_agent_cfg_doc(FILE *out) { ts_config_doc(&schema, out); }

void ts_agent_cfg_free(struct ts_agent_cfg *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_devices; i++)
        free(cfg->devices[i]);
    for (size_t i = 0; i < cfg->n_turnstiles; i++)
        free(cfg->turnstiles[i]);
    free(cfg->devices);
    free(cfg->turnstiles);
    ts_config_file_free(&cfg->file);
    memset(cfg, 0, sizeof *cfg);
}

/* --- validation ---------------------------------------------------------- */

/* Every check records its error in cfg->file and goes on, so that one load
 * reports every error; a check that would use a refused value (the key
 * counts as set, the struct holds its default) is skipped. */
#define BAD(inst, sec, name, key, ...)                                                  \
    do {                                                                               \
        char text_[96];                                                                \
        snprintf(text_, sizeof text_, "%s%s%s", sec, *(name) ? " " : "", name);        \
        ts_config_error(&cfg->file, inst, text_, key, __VA_ARGS__);                    \
    } while (0)

static int set_in(const struct ts_agent_cfg *cfg, const void *inst, const char *key)
{
    return ts_config_line(&cfg->file, inst, key) != 0;
}

static int bad(const struct ts_agent_cfg *cfg, const void *inst, const char *key)
{
    return ts_config_bad(&cfg->file, inst, key);
}

/* The key was set to a value that was accepted. */
static int good(const struct ts_agent_cfg *cfg, const void *inst, const char *key)
{
    return set_in(cfg, inst, key) && !bad(cfg, inst, key);
}

/* None of the keys (a NULL-terminated list) holds a refused value. */
static int none_bad(const struct ts_agent_cfg *cfg, const void *inst, const char *const *keys)
{
    for (; *keys; keys++)
        if (bad(cfg, inst, *keys))
            return 0;
    return 1;
}

static void check_http(struct ts_agent_cfg *cfg, struct ts_device_cfg *d)
{
    if (good(cfg, d, "url") && strncmp(d->url, "http://", 7) != 0 &&
        strncmp(d->url, "https://", 8) != 0)
        BAD(d, "device", d->name, "url", "must begin with http:// or https://");
    if (good(cfg, d, "ca_file") && good(cfg, d, "url") && strncmp(d->url, "https://", 8) != 0)
        BAD(d, "device", d->name, "ca_file", "only for an https:// url");
    if (set_in(cfg, d, "token_file") && set_in(cfg, d, "token_env"))
        BAD(d, "device", d->name, "token_env", "token_file and token_env exclude each other");
    if (good(cfg, d, "token_env")) {
        const char *c = d->token_env;
        while (*c == '_' || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
               (c > d->token_env && *c >= '0' && *c <= '9'))
            c++;
        if (*c || !d->token_env[0])
            BAD(d, "device", d->name, "token_env", "not an environment variable name");
    }
    if (d->connect_timeout_ms > d->timeout_ms && !bad(cfg, d, "connect_timeout_ms") &&
        !bad(cfg, d, "timeout_ms"))
        BAD(d, "device", d->name, "connect_timeout_ms", "must not be above timeout_ms (%d)",
            d->timeout_ms);
}

static void check_device(struct ts_agent_cfg *cfg, size_t i)
{
    struct ts_device_cfg *d = cfg->devices[i];
    static const struct { enum ts_hal_kind kind; const char *key; } needs[] = {
        {TS_HAL_MODBUS_TCP, "host"}, {TS_HAL_MODBUS_RTU, "serial_port"},
        {TS_HAL_GPIO, "chip"}, {TS_HAL_SIM, "mta_file"}, {TS_HAL_HTTP, "url"}};
    static const char *const line_keys[] = {"serial_port", "slave_id", "baud", "parity",
                                            "data_bits", "stop_bits", NULL};
    int kind_ok = good(cfg, d, "kind");

    if (kind_ok) {
        char what[64];
        for (size_t k = 0; k < N(needs); k++)
            if (d->kind == needs[k].kind && !set_in(cfg, d, needs[k].key))
                BAD(d, "device", d->name, needs[k].key, "required for kind %s",
                    ts_hal_kind_name(d->kind));
        snprintf(what, sizeof what, "kind %s", ts_hal_kind_name(d->kind));
        ts_config_check_kind(&cfg->file, &sections[SEC_DEVICE], d, (int)d->kind, what);
        if (d->kind == TS_HAL_HTTP)
            check_http(cfg, d);
    }
    if (d->backoff_max_ms < d->backoff_min_ms && !bad(cfg, d, "backoff_min_ms") &&
        !bad(cfg, d, "backoff_max_ms"))
        BAD(d, "device", d->name, "backoff_max_ms", "must not be below backoff_min_ms (%d)",
            d->backoff_min_ms);
    int dup = 0, slave = 0, line = 0; /* each reported once per device */
    int rtu = kind_ok && d->kind == TS_HAL_MODBUS_RTU && none_bad(cfg, d, line_keys);
    for (size_t j = 0; j < i; j++) {
        const struct ts_device_cfg *o = cfg->devices[j];
        if (!dup && strcmp(o->name, d->name) == 0) {
            BAD(d, "device", d->name, NULL, "duplicate device name (first on line %d)",
                ts_config_line(&cfg->file, o, NULL));
            dup = 1;
        }
        if (rtu && !(slave && line) && o->kind == TS_HAL_MODBUS_RTU &&
            strcmp(d->serial_port, o->serial_port) == 0 && good(cfg, o, "kind") &&
            none_bad(cfg, o, line_keys)) {
            if (!slave && d->slave_id == o->slave_id) {
                BAD(d, "device", d->name, "slave_id", "slave %d on %s is also device '%s'",
                    d->slave_id, d->serial_port, o->name);
                slave = 1;
            }
            if (!line && (d->baud != o->baud || d->parity != o->parity ||
                          d->data_bits != o->data_bits || d->stop_bits != o->stop_bits)) {
                BAD(d, "device", d->name, "baud",
                    "line settings differ from device '%s' on the same serial port", o->name);
                line = 1;
            }
        }
    }
}

static void check_register_map(struct ts_agent_cfg *cfg, struct ts_turnstile_cfg *t)
{
    int regs = ts_width_regs(t->width);
    int width_ok = !bad(cfg, t, "width");
    int entries_ok = good(cfg, t, "entries_address"), exits_ok = good(cfg, t, "exits_address");

    if (!set_in(cfg, t, "entries_address"))
        BAD(t, "turnstile", t->name, "entries_address", "required for a Modbus device");
    if (!set_in(cfg, t, "exits_address"))
        BAD(t, "turnstile", t->name, "exits_address", "required for a Modbus device");
    if (!width_ok)
        return;
    if (entries_ok && t->entries_address + regs > 65536)
        BAD(t, "turnstile", t->name, "entries_address", "%d registers from %d pass 65535", regs,
            t->entries_address);
    if (exits_ok && t->exits_address + regs > 65536)
        BAD(t, "turnstile", t->name, "exits_address", "%d registers from %d pass 65535", regs,
            t->exits_address);
    if (entries_ok && exits_ok && abs(t->entries_address - t->exits_address) < regs)
        BAD(t, "turnstile", t->name, "exits_address",
            "overlaps the entries counter (%d bit counters take %d registers)", (int)t->width, regs);
}

static void check_turnstile(struct ts_agent_cfg *cfg, size_t i)
{
    struct ts_turnstile_cfg *t = cfg->turnstiles[i];
    const struct ts_agent_settings *a = &cfg->agent;
    struct { char *dst; size_t size; const char *def; const char *key; } ids[] = {
        {t->ca, sizeof t->ca, a->ca, "ca"}, {t->unit, sizeof t->unit, a->unit, "unit"},
        {t->station, sizeof t->station, a->station, "station"},
        {t->linename, sizeof t->linename, a->linename, "linename"},
        {t->division, sizeof t->division, a->division, "division"}};
    static const char *const id_keys[] = {"ca", "unit", "scp", NULL};
    static const char *const line_keys[] = {"entry_line", "exit_line", NULL};
    const struct ts_device_cfg *dev = NULL;
    size_t d = cfg->n_devices;

    for (size_t k = 0; k < N(ids); k++) {
        if (!ids[k].dst[0])
            snprintf(ids[k].dst, ids[k].size, "%s", ids[k].def);
        if (!ids[k].dst[0] && !bad(cfg, t, ids[k].key) && !bad(cfg, a, ids[k].key))
            BAD(t, "turnstile", t->name, ids[k].key, "missing (set it here or in [agent])");
    }
    if (good(cfg, t, "device")) { /* else "required" or the refused value said it */
        for (d = 0; d < cfg->n_devices; d++)
            if (strcmp(cfg->devices[d]->name, t->device) == 0)
                break;
        if (d == cfg->n_devices)
            BAD(t, "turnstile", t->name, "device", "no [device %s]", t->device);
        else
            dev = cfg->devices[d];
    }
    t->device_index = d;
    if (t->max_rate_per_min <= 0)
        t->max_rate_per_min = a->max_rate_per_min;

    int gpio = 0;
    if (dev && good(cfg, dev, "kind")) {
        char what[96];
        snprintf(what, sizeof what, "a turnstile of %s device '%s'", ts_hal_kind_name(dev->kind),
                 dev->name);
        ts_config_check_kind(&cfg->file, &sections[SEC_TURNSTILE], t, (int)dev->kind, what);
        if (dev->kind == TS_HAL_MODBUS_TCP || dev->kind == TS_HAL_MODBUS_RTU) {
            check_register_map(cfg, t);
        } else if (dev->kind == TS_HAL_GPIO) {
            if (!set_in(cfg, t, "entry_line"))
                BAD(t, "turnstile", t->name, "entry_line", "required for a gpio device");
            if (!set_in(cfg, t, "exit_line"))
                BAD(t, "turnstile", t->name, "exit_line", "required for a gpio device");
            gpio = good(cfg, t, "entry_line") && good(cfg, t, "exit_line");
            if (gpio && t->entry_line == t->exit_line)
                BAD(t, "turnstile", t->name, "exit_line", "same line as entry_line");
        } else if (dev->kind == TS_HAL_HTTP) {
            static const char *const paths[] = {"entries_path", "exits_path"};
            const char *vals[] = {t->entries_path, t->exits_path};
            for (int k = 0; k < 2; k++) {
                if (!set_in(cfg, t, paths[k]))
                    BAD(t, "turnstile", t->name, paths[k], "required for an http device");
                else if (good(cfg, t, paths[k]) && vals[k][0] != '/')
                    BAD(t, "turnstile", t->name, paths[k],
                        "a JSON Pointer begins with / (e.g. /gates/0/in)");
            }
            if (!set_in(cfg, t, "width"))
                t->width = 64;
        }
    }
    if (dev && dev->kind == TS_HAL_GPIO) {
        t->width = 64;
        t->direction = TS_DIR_UP;
    }
    int dup = 0, same_id = 0, shared = 0; /* each reported once per turnstile */
    int id_ok = none_bad(cfg, t, id_keys) && t->ca[0] && t->unit[0] && t->scp[0];
    for (size_t j = 0; j < i; j++) {
        const struct ts_turnstile_cfg *o = cfg->turnstiles[j];
        if (!dup && strcmp(o->name, t->name) == 0) {
            BAD(t, "turnstile", t->name, NULL, "duplicate turnstile (first on line %d)",
                ts_config_line(&cfg->file, o, NULL));
            dup = 1;
        }
        if (!same_id && id_ok && none_bad(cfg, o, id_keys) && !strcmp(o->ca, t->ca) &&
            !strcmp(o->unit, t->unit) && !strcmp(o->scp, t->scp)) {
            BAD(t, "turnstile", t->name, "scp", "duplicate turnstile %s/%s/%s (also '%s')", t->ca,
                t->unit, t->scp, o->name);
            same_id = 1;
        }
        if (!gpio || shared || o->device_index != d || !none_bad(cfg, o, line_keys))
            continue;
        int lines[] = {o->entry_line, o->exit_line};
        for (int l = 0; l < 2 && !shared; l++) {
            if (lines[l] == t->entry_line || lines[l] == t->exit_line) {
                BAD(t, "turnstile", t->name, "entry_line", "line %d is also used by '%s'",
                    lines[l], o->name);
                shared = 1;
            }
        }
    }
}

static int zone_exists(const char *zone)
{
    char path[TS_PATH_MAX];
    const char *dir = getenv("TZDIR");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "/usr/share/zoneinfo", zone);
    return zone[0] != '/' && access(path, R_OK) == 0;
}

int ts_agent_cfg_load(const char *path, struct ts_agent_cfg *cfg, char *err, size_t errsize)
{
    struct ts_cfg_file *file = &cfg->file;

    memset(cfg, 0, sizeof *cfg);
    ts_config_load(path, &schema, cfg, file);
    if (file->stopped) /* the rest of the file was not read: checks would only add noise */
        return ts_config_finish(file, err, errsize);
    if (!ts_config_line(file, &cfg->agent, NULL)) {
        ts_config_error_at(file, 1, "[agent] section is missing");
    } else {
        ts_config_require(file, &sections[SEC_AGENT], &cfg->agent);
        if (strcmp(cfg->agent.timezone, "UTC") != 0 && !bad(cfg, &cfg->agent, "timezone") &&
            (strstr(cfg->agent.timezone, "..") || !zone_exists(cfg->agent.timezone)))
            BAD(&cfg->agent, "agent", "", "timezone",
                "unknown time zone '%s' (see /usr/share/zoneinfo)", cfg->agent.timezone);
    }
    if (cfg->has_mqtt) {
        struct ts_mqtt_cfg *m = &cfg->mqtt;
        ts_config_require(file, &sections[SEC_MQTT], m);
        if (!cfg->has_store)
            BAD(m, "mqtt", "", NULL,
                "needs a [store] section: published readings must be kept until acknowledged");
        ts_mqtt_link_cfg_check(file, m, &m->link);
        m->state_interval_ms = cfg->agent.state_interval_ms;
    }
    if (cfg->n_turnstiles == 0)
        ts_config_error_at(file, 0, "no [turnstile] section: nothing to poll");
    for (size_t i = 0; i < cfg->n_devices; i++) {
        ts_config_require(file, &sections[SEC_DEVICE], cfg->devices[i]);
        check_device(cfg, i);
    }
    for (size_t i = 0; i < cfg->n_turnstiles; i++) {
        ts_config_require(file, &sections[SEC_TURNSTILE], cfg->turnstiles[i]);
        check_turnstile(cfg, i);
    }
    return ts_config_finish(file, err, errsize);
}

void ts_device_describe(const struct ts_device_cfg *d, char *buf, size_t size)
{
    switch (d->kind) {
    case TS_HAL_MODBUS_TCP:
        snprintf(buf, size, "modbus-tcp %s:%d slave %d", d->host, d->port, d->slave_id);
        break;
    case TS_HAL_MODBUS_RTU:
        snprintf(buf, size, "modbus-rtu %s slave %d", d->serial_port, d->slave_id);
        break;
    case TS_HAL_GPIO:
        snprintf(buf, size, "gpio %s", d->chip);
        break;
    case TS_HAL_SIM:
        snprintf(buf, size, "sim %s", d->mta_file);
        break;
    case TS_HAL_HTTP:
        snprintf(buf, size, "http %s", d->url);
        break;
    }
}
