/* SPDX-License-Identifier: Apache-2.0 */
/* hal.h - a source of gate counters.
 *
 * A device (a Modbus TCP gate controller, one slave on an RS-485 line, a
 * gpiochip, the built-in simulator, a controller with an HTTP/JSON API)
 * serves the counters of one or more turnstiles. Callers go through
 * ts_source_*; each kind is a backend behind them, a const table of function
 * pointers private to hal/ (hal_private.h).
 *
 * hal/ knows nothing of MQTT, SQLite or the reading record: it returns raw
 * cumulative register values; counter.h turns them into people. */
#ifndef TS_HAL_H
#define TS_HAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "counter.h"
#include "decode.h"

#define TS_NAME_MAX 64
#define TS_PATH_MAX 256

enum ts_hal_kind { TS_HAL_MODBUS_TCP, TS_HAL_MODBUS_RTU, TS_HAL_GPIO, TS_HAL_SIM, TS_HAL_HTTP };
enum ts_reg_type { TS_REG_HOLDING, TS_REG_INPUT };
enum ts_gpio_edge { TS_EDGE_RISING, TS_EDGE_FALLING, TS_EDGE_BOTH };
enum ts_gpio_bias { TS_BIAS_AS_IS, TS_BIAS_DISABLE, TS_BIAS_PULL_UP, TS_BIAS_PULL_DOWN };

/* One device, as configured. */
struct ts_device_cfg {
    char name[TS_NAME_MAX];
    enum ts_hal_kind kind;
    /* modbus-tcp */
    char host[TS_PATH_MAX];
    int port;
    /* modbus-rtu */
    char serial_port[TS_PATH_MAX];
    int baud;
    char parity;              /* 'N', 'E' or 'O' */
    int data_bits, stop_bits;
    int frame_delay_ms;       /* silence between frames on the line */
    /* modbus (both) */
    int slave_id;
    int response_timeout_ms, byte_timeout_ms;
    int retries;              /* extra attempts per read before a fault */
    int backoff_min_ms, backoff_max_ms;
    /* gpio */
    char chip[TS_PATH_MAX];   /* "gpiochip0" or "/dev/gpiochip0" */
    int debounce_us;
    /* sim */
    char mta_file[TS_PATH_MAX];
    double speed;             /* simulated seconds per real second */
    int64_t sim_start_ms;     /* simulated time at start; 0: start of the file */
    /* http (docs/http.md) */
    char url[TS_PATH_MAX];
    int timeout_ms;           /* one request, connect to last byte */
    int connect_timeout_ms;
    int max_response_bytes;
    int max_json_depth;
    char token_file[TS_PATH_MAX]; /* bearer token from this file, or */
    char token_env[TS_NAME_MAX];  /* from this environment variable */
    char ca_file[TS_PATH_MAX];    /* https: CA certificates; "": the system's */
};

/* One turnstile, as configured. */
struct ts_turnstile_cfg {
    char name[TS_NAME_MAX];
    char device[TS_NAME_MAX];
    size_t device_index;      /* resolved by config loading */
    /* reading identity (MTA columns) */
    char ca[16], unit[16], scp[16], station[64], linename[32], division[16];
    /* modbus register map */
    enum ts_reg_type reg_type;
    int entries_address, exits_address;
    unsigned width;           /* 16, 32, 64 */
    enum ts_word_order order;
    /* http: JSON Pointers (RFC 6901) of the counters in the response */
    char entries_path[128], exits_path[128];
    /* gpio */
    int entry_line, exit_line;
    enum ts_gpio_edge edge;
    bool active_low;
    enum ts_gpio_bias bias;
    /* counter semantics */
    enum ts_direction direction;
    double max_rate_per_min;
    int rebase_after;         /* readings that confirm a new counter level */
};

/* Per-device health, for logs and the status/state topics (kept by the
 * poller). */
enum ts_link_state { TS_LINK_DOWN, TS_LINK_UP, TS_LINK_BACKOFF };
struct ts_device_stats {
    enum ts_link_state link;
    uint64_t polls, errors;
    uint64_t timeouts, exceptions, crc_errors, short_responses, connect_errors;
    int last_error;           /* ts_err of the last fault, 0 if none */
    int64_t last_rtt_us;      /* round-trip time of the last good read */
};

struct ts_source;   /* opaque: hal_private.h, for the backends */

/* Devices with the same bus key must be polled one after the other by one
 * thread (the slaves of one RS-485 line); every other device has a key of its
 * own. Writes the key into buf. */
void ts_hal_bus_key(const struct ts_device_cfg *cfg, char *buf, size_t size);

/* A source: the device cfg serving turnstiles[0..n) (all lent, must outlive
 * it). Every call but new and free runs on one thread at a time (the
 * device's poll thread).
 *
 * new: TS_OK with *out set, or an error with nothing allocated.
 * free: closes and frees; NULL-safe.
 * open: opens the link (connect, open the port, request the lines); TS_OK
 *   at once for a kind without a link.
 * read: the cumulative counters of turnstile i (index into turnstiles):
 *   TS_OK, or the fault (TS_ETIMEOUT, TS_ECONNECT, TS_EPARSE, ...,
 *   TS_EDEVICE_BASE + a Modbus exception); TS_EINVAL when i is out of range.
 *   After a fault the caller closes the source and opens it again later.
 * close: drops the link; open may follow. Safe when not open. */
int ts_source_new(const struct ts_device_cfg *cfg, const struct ts_turnstile_cfg *const *turnstiles,
                  size_t n, struct ts_source **out);
void ts_source_free(struct ts_source *src);
int ts_source_open(struct ts_source *src);
int ts_source_read(struct ts_source *src, size_t i, uint64_t *entries, uint64_t *exits);
void ts_source_close(struct ts_source *src);

/* Why the last fault happened, in words ("" when the kind says no more than
 * its error code); lent, valid until the next call on src. */
const char *ts_source_why(const struct ts_source *src);

/* Round-trip time of the last good read in microseconds; 0 where the kind
 * has no round trip (gpio, sim). */
int64_t ts_source_rtt_us(const struct ts_source *src);

/* Raw registers for commissioning (agent/probe.c): count (1..TS_RAW_REGS_MAX)
 * registers from addr as turnstile i's register type, undecoded, into regs
 * (lent, count words). TS_OK, the read's error, or TS_EINVAL when the source
 * has no registers or count is out of range. */
#define TS_RAW_REGS_MAX 8
int ts_source_read_regs(struct ts_source *src, size_t i, int addr, int count, uint16_t *regs);
const char *ts_hal_kind_name(enum ts_hal_kind kind);
int ts_hal_kind_parse(const char *name, enum ts_hal_kind *out);

#endif
