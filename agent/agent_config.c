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
    {"gpio", TS_HAL_GPIO}, {"sim", TS_HAL_SIM}, {NULL, 0}};
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
    {"host", TS_CFG_STRING, OFF(M, host), .flags = TS_CFG_REQUIRED, .doc = "broker address"},
    {"port", TS_CFG_INT, NOSIZE(M, port), 1, 65535, "1883", .doc = "broker port (8883 for TLS)"},
    {"client_id", TS_CFG_ID, OFF(M, client_id),
     .doc = "MQTT client id of the persistent session; default turnstile-agent-<id>"},
    {"username", TS_CFG_STRING, OFF(M, username), .doc = "user name"},
    {"password", TS_CFG_STRING, OFF(M, password), .doc = "password (keep the file 0600)"},
    {"ca_file", TS_CFG_STRING, OFF(M, ca_file), .doc = "CA certificate: setting it turns TLS on"},
    {"cert_file", TS_CFG_STRING, OFF(M, cert_file), .doc = "client certificate (TLS client auth)"},
    {"key_file", TS_CFG_STRING, OFF(M, key_file), .doc = "client key (TLS client auth)"},
    {"tls_insecure", TS_CFG_BOOL, NOSIZE(M, tls_insecure), .def = "false",
     .doc = "do not check the broker's host name against its certificate (never in production)"},
    {"keepalive_s", TS_CFG_INT, NOSIZE(M, keepalive_s), 5, 3600, "30", .doc = "MQTT keepalive"},
    {"reconnect_min_ms", TS_CFG_INT, NOSIZE(M, reconnect_min_ms), 100, 3600000, "1000",
     .doc = "first reconnect delay; doubles up to reconnect_max_ms"},
    {"reconnect_max_ms", TS_CFG_INT, NOSIZE(M, reconnect_max_ms), 100, 3600000, "60000",
     .doc = "longest reconnect delay"},
    {"max_inflight", TS_CFG_INT, NOSIZE(M, max_inflight), 1, 65000, "100",
     .doc = "readings published and not yet acknowledged by the broker (drain speed)"},
    {"ack_timeout_ms", TS_CFG_INT, NOSIZE(M, ack_timeout_ms), 1000, 86400000, "30000",
     .doc = "re-publish from the acknowledged sequence if the acknowledgement does not advance"},
    {"ack", TS_CFG_ENUM, NOSIZE(M, ack_mode), .def = "end-to-end", .choices = ack_modes,
     .doc = "end-to-end: rows leave the store when the bridge acknowledges them on the ack topic; "
            "puback: when the broker acknowledges them (sites without the bridge)"},
};
#undef M

#define D ts_device_cfg
static const struct ts_cfg_key device_keys[] = {
    {"kind", TS_CFG_ENUM, NOSIZE(D, kind), .choices = kinds, .flags = TS_CFG_REQUIRED,
     .doc = "modbus-tcp, modbus-rtu, gpio or sim"},
    {"host", TS_CFG_STRING, OFF(D, host), .doc = "modbus-tcp: address of the gate controller"},
    {"port", TS_CFG_INT, NOSIZE(D, port), 1, 65535, "502", .doc = "modbus-tcp: TCP port"},
    {"serial_port", TS_CFG_STRING, OFF(D, serial_port),
     .doc = "modbus-rtu: serial device; devices on the same port share one serialized poller"},
    {"baud", TS_CFG_INT, NOSIZE(D, baud), 300, 921600, "19200", .doc = "modbus-rtu: baud rate"},
    {"parity", TS_CFG_CHAR, NOSIZE(D, parity), .def = "N", .chars = "NEO",
     .doc = "modbus-rtu: N, E or O"},
    {"data_bits", TS_CFG_INT, NOSIZE(D, data_bits), 5, 8, "8", .doc = "modbus-rtu: data bits"},
    {"stop_bits", TS_CFG_INT, NOSIZE(D, stop_bits), 1, 2, "1", .doc = "modbus-rtu: stop bits"},
    {"frame_delay_ms", TS_CFG_INT, NOSIZE(D, frame_delay_ms), 0, 10000, "5",
     .doc = "modbus-rtu: silence between frames on the line"},
    {"slave_id", TS_CFG_INT, NOSIZE(D, slave_id), 0, 247, "1", .doc = "Modbus unit / slave id"},
    {"response_timeout_ms", TS_CFG_INT, NOSIZE(D, response_timeout_ms), 10, 60000, "500",
     .doc = "Modbus: how long to wait for the first byte of a response"},
    {"byte_timeout_ms", TS_CFG_INT, NOSIZE(D, byte_timeout_ms), 0, 10000, "100",
     .doc = "Modbus: longest silence between bytes of one response"},
    {"retries", TS_CFG_INT, NOSIZE(D, retries), 0, 10, "1",
     .doc = "Modbus: extra attempts of a failed read before it counts as a fault"},
    {"backoff_min_ms", TS_CFG_INT, NOSIZE(D, backoff_min_ms), 10, 3600000, "1000",
     .doc = "first back-off after a fault; doubles up to backoff_max_ms"},
    {"backoff_max_ms", TS_CFG_INT, NOSIZE(D, backoff_max_ms), 10, 3600000, "30000",
     .doc = "longest back-off after repeated faults"},
    {"chip", TS_CFG_STRING, OFF(D, chip), .doc = "gpio: gpiochip name, path or label"},
    {"debounce_us", TS_CFG_INT, NOSIZE(D, debounce_us), 0, 1000000, "10000",
     .doc = "gpio: edges closer than this to the last accepted one are contact bounce"},
    {"mta_file", TS_CFG_STRING, OFF(D, mta_file), .doc = "sim: MTA turnstile file to replay"},
    {"speed", TS_CFG_DOUBLE, NOSIZE(D, speed), 0.001, 1e7, "60",
     .doc = "sim: simulated seconds per real second"},
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
     .doc = "Modbus: holding or input registers"},
    {"entries_address", TS_CFG_INT, NOSIZE(T, entries_address), 0, 65535,
     .doc = "Modbus: first register of the entries counter"},
    {"exits_address", TS_CFG_INT, NOSIZE(T, exits_address), 0, 65535,
     .doc = "Modbus: first register of the exits counter"},
    {"width", TS_CFG_ENUM, NOSIZE(T, width), .def = "32", .choices = widths,
     .doc = "counter width in bits: 16, 32 or 64 (wrap-around happens here)"},
    {"order", TS_CFG_ENUM, NOSIZE(T, order), .def = "ABCD", .choices = orders,
     .doc = "word and byte order: ABCD, CDAB, BADC, DCBA (64-bit aliases accepted)"},
    {"entry_line", TS_CFG_INT, NOSIZE(T, entry_line), 0, 1023,
     .doc = "gpio: line offset of the entry pulse input"},
    {"exit_line", TS_CFG_INT, NOSIZE(T, exit_line), 0, 1023,
     .doc = "gpio: line offset of the exit pulse input"},
    {"edge", TS_CFG_ENUM, NOSIZE(T, edge), .def = "rising", .choices = edges,
     .doc = "gpio: which edge is a person: rising, falling or both"},
    {"active_low", TS_CFG_BOOL, NOSIZE(T, active_low), .def = "false",
     .doc = "gpio: the input is active low"},
    {"bias", TS_CFG_ENUM, NOSIZE(T, bias), .def = "as-is", .choices = biases,
     .doc = "gpio: as-is, disable, pull-up or pull-down (where the kernel supports it)"},
    {"direction", TS_CFG_ENUM, NOSIZE(T, direction), .def = "auto", .choices = directions,
     .doc = "counter direction: up, down, or auto (detected from the data)"},
    {"max_rate_per_min", TS_CFG_DOUBLE, NOSIZE(T, max_rate_per_min), 0, 1e7, "0",
     .doc = "plausible people per minute; 0: the [agent] default"},
    {"rebase_after", TS_CFG_INT, NOSIZE(T, rebase_after), 2, 100, "3",
     .doc = "readings in a row, each a plausible count from the last, that confirm a new counter level"},
};
#undef T

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
                    TS_NAME_MAX, "A source of gate counters.", add_device},
    [SEC_TURNSTILE] = {"turnstile", 1, turnstile_keys, N(turnstile_keys),
                       offsetof(struct ts_turnstile_cfg, name), TS_NAME_MAX,
                       "One turnstile gate: its identity and where its counters are.",
                       add_turnstile},
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

#define BAD(inst, sec, name, key, ...)                                                  \
    do {                                                                               \
        char text_[96];                                                                \
        snprintf(text_, sizeof text_, "%s%s%s", sec, *(name) ? " " : "", name);                             \
        ts_config_error(&cfg->file, inst, text_, key, err, errsize, __VA_ARGS__);      \
        return TS_ECONFIG;                                                             \
    } while (0)

static int set_in(const struct ts_agent_cfg *cfg, const void *inst, const char *key)
{
    return ts_config_line(&cfg->file, inst, key) != 0;
}

static int check_device(struct ts_agent_cfg *cfg, size_t i, char *err, size_t errsize)
{
    struct ts_device_cfg *d = cfg->devices[i];
    static const struct { enum ts_hal_kind kind; const char *key; } needs[] = {
        {TS_HAL_MODBUS_TCP, "host"}, {TS_HAL_MODBUS_RTU, "serial_port"},
        {TS_HAL_GPIO, "chip"}, {TS_HAL_SIM, "mta_file"}};

    for (size_t k = 0; k < N(needs); k++)
        if (d->kind == needs[k].kind && !set_in(cfg, d, needs[k].key))
            BAD(d, "device", d->name, needs[k].key, "required for kind %s",
                ts_hal_kind_name(d->kind));
    if (d->backoff_max_ms < d->backoff_min_ms)
        BAD(d, "device", d->name, "backoff_max_ms", "must not be below backoff_min_ms (%d)",
            d->backoff_min_ms);
    for (size_t j = 0; j < i; j++) {
        const struct ts_device_cfg *o = cfg->devices[j];
        if (strcmp(o->name, d->name) == 0)
            BAD(d, "device", d->name, NULL, "duplicate device name (first on line %d)",
                ts_config_line(&cfg->file, o, NULL));
        if (d->kind == TS_HAL_MODBUS_RTU && o->kind == TS_HAL_MODBUS_RTU &&
            strcmp(d->serial_port, o->serial_port) == 0) {
            if (d->slave_id == o->slave_id)
                BAD(d, "device", d->name, "slave_id", "slave %d on %s is also device '%s'",
                    d->slave_id, d->serial_port, o->name);
            if (d->baud != o->baud || d->parity != o->parity || d->data_bits != o->data_bits ||
                d->stop_bits != o->stop_bits)
                BAD(d, "device", d->name, "baud",
                    "line settings differ from device '%s' on the same serial port", o->name);
        }
    }
    return TS_OK;
}

static int check_register_map(struct ts_agent_cfg *cfg, struct ts_turnstile_cfg *t, char *err,
                              size_t errsize)
{
    int regs = ts_width_regs(t->width);
    if (!set_in(cfg, t, "entries_address"))
        BAD(t, "turnstile", t->name, "entries_address", "required for a Modbus device");
    if (!set_in(cfg, t, "exits_address"))
        BAD(t, "turnstile", t->name, "exits_address", "required for a Modbus device");
    if (t->entries_address + regs > 65536)
        BAD(t, "turnstile", t->name, "entries_address", "%d registers from %d pass 65535", regs,
            t->entries_address);
    if (t->exits_address + regs > 65536)
        BAD(t, "turnstile", t->name, "exits_address", "%d registers from %d pass 65535", regs,
            t->exits_address);
    if (abs(t->entries_address - t->exits_address) < regs)
        BAD(t, "turnstile", t->name, "exits_address",
            "overlaps the entries counter (%d bit counters take %d registers)", (int)t->width, regs);
    return TS_OK;
}

static int check_turnstile(struct ts_agent_cfg *cfg, size_t i, char *err, size_t errsize)
{
    struct ts_turnstile_cfg *t = cfg->turnstiles[i];
    const struct ts_agent_settings *a = &cfg->agent;
    struct { char *dst; size_t size; const char *def; const char *key; } ids[] = {
        {t->ca, sizeof t->ca, a->ca, "ca"}, {t->unit, sizeof t->unit, a->unit, "unit"},
        {t->station, sizeof t->station, a->station, "station"},
        {t->linename, sizeof t->linename, a->linename, "linename"},
        {t->division, sizeof t->division, a->division, "division"}};
    size_t d;

    for (size_t k = 0; k < N(ids); k++) {
        if (!ids[k].dst[0])
            snprintf(ids[k].dst, ids[k].size, "%s", ids[k].def);
        if (!ids[k].dst[0])
            BAD(t, "turnstile", t->name, ids[k].key, "missing (set it here or in [agent])");
    }
    for (d = 0; d < cfg->n_devices; d++)
        if (strcmp(cfg->devices[d]->name, t->device) == 0)
            break;
    if (d == cfg->n_devices)
        BAD(t, "turnstile", t->name, "device", "no [device %s]", t->device);
    t->device_index = d;
    if (t->max_rate_per_min <= 0)
        t->max_rate_per_min = a->max_rate_per_min;

    const struct ts_device_cfg *dev = cfg->devices[d];
    if (dev->kind == TS_HAL_MODBUS_TCP || dev->kind == TS_HAL_MODBUS_RTU) {
        int rc = check_register_map(cfg, t, err, errsize);
        if (rc)
            return rc;
    } else if (dev->kind == TS_HAL_GPIO) {
        if (!set_in(cfg, t, "entry_line"))
            BAD(t, "turnstile", t->name, "entry_line", "required for a gpio device");
        if (!set_in(cfg, t, "exit_line"))
            BAD(t, "turnstile", t->name, "exit_line", "required for a gpio device");
        if (t->entry_line == t->exit_line)
            BAD(t, "turnstile", t->name, "exit_line", "same line as entry_line");
        t->width = 64;
        t->direction = TS_DIR_UP;
    }
    for (size_t j = 0; j < i; j++) {
        const struct ts_turnstile_cfg *o = cfg->turnstiles[j];
        if (strcmp(o->name, t->name) == 0)
            BAD(t, "turnstile", t->name, NULL, "duplicate turnstile (first on line %d)",
                ts_config_line(&cfg->file, o, NULL));
        if (!strcmp(o->ca, t->ca) && !strcmp(o->unit, t->unit) && !strcmp(o->scp, t->scp))
            BAD(t, "turnstile", t->name, "scp", "duplicate turnstile %s/%s/%s (also '%s')", t->ca,
                t->unit, t->scp, o->name);
        if (o->device_index != d)
            continue;
        if (dev->kind == TS_HAL_GPIO) {
            int lines[] = {o->entry_line, o->exit_line};
            for (int l = 0; l < 2; l++)
                if (lines[l] == t->entry_line || lines[l] == t->exit_line)
                    BAD(t, "turnstile", t->name, "entry_line", "line %d is also used by '%s'",
                        lines[l], o->name);
        }
    }
    return TS_OK;
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
    int rc;

    memset(cfg, 0, sizeof *cfg);
    rc = ts_config_load(path, &schema, cfg, &cfg->file, err, errsize);
    if (rc)
        return rc;
    if (!ts_config_line(&cfg->file, &cfg->agent, NULL)) {
        snprintf(err, errsize, "%s:1: [agent] section is missing", path);
        return TS_ECONFIG;
    }
    if ((rc = ts_config_require(&cfg->file, &sections[SEC_AGENT], &cfg->agent, err, errsize)))
        return rc;
    if (strcmp(cfg->agent.timezone, "UTC") != 0 && (strstr(cfg->agent.timezone, "..") ||
        !zone_exists(cfg->agent.timezone)))
        BAD(&cfg->agent, "agent", "", "timezone", "unknown time zone '%s' (see /usr/share/zoneinfo)",
            cfg->agent.timezone);
    if (cfg->has_mqtt) {
        if ((rc = ts_config_require(&cfg->file, &sections[SEC_MQTT], &cfg->mqtt, err, errsize)))
            return rc;
        if (!cfg->has_store)
            BAD(&cfg->mqtt, "mqtt", "", NULL, "needs a [store] section: published readings must be kept until acknowledged");
        if (cfg->mqtt.reconnect_max_ms < cfg->mqtt.reconnect_min_ms)
            BAD(&cfg->mqtt, "mqtt", "", "reconnect_max_ms", "must not be below reconnect_min_ms");
        if ((cfg->mqtt.cert_file[0] != 0) != (cfg->mqtt.key_file[0] != 0))
            BAD(&cfg->mqtt, "mqtt", "", cfg->mqtt.cert_file[0] ? "cert_file" : "key_file",
                "cert_file and key_file go together");
        if (cfg->mqtt.cert_file[0] && !cfg->mqtt.ca_file[0])
            BAD(&cfg->mqtt, "mqtt", "", "cert_file", "needs ca_file (TLS)");
        cfg->mqtt.state_interval_ms = cfg->agent.state_interval_ms;
    }
    if (cfg->n_turnstiles == 0) {
        snprintf(err, errsize, "%s: no [turnstile] section: nothing to poll", path);
        return TS_ECONFIG;
    }
    for (size_t i = 0; i < cfg->n_devices; i++) {
        if ((rc = ts_config_require(&cfg->file, &sections[SEC_DEVICE], cfg->devices[i], err, errsize)) ||
            (rc = check_device(cfg, i, err, errsize)))
            return rc;
    }
    for (size_t i = 0; i < cfg->n_turnstiles; i++) {
        if ((rc = ts_config_require(&cfg->file, &sections[SEC_TURNSTILE], cfg->turnstiles[i], err,
                                    errsize)) ||
            (rc = check_turnstile(cfg, i, err, errsize)))
            return rc;
    }
    return TS_OK;
}
