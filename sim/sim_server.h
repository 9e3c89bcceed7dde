/* SPDX-License-Identifier: Apache-2.0 */
/* sim_server.h - the gate simulator: replayed counters served over Modbus.
 *
 * A server holds one or more slaves (Modbus unit ids), each with its own
 * turnstiles, and answers Modbus TCP clients or one Modbus RTU line with
 * libmodbus. Counter values come from ts_replay_at at a simulated clock
 * (start + elapsed real time * speed) and pass through run-time faults
 * (set/reset, reverse, glitch, silence, exceptions, slowness).
 *
 * Register map, for width W bits (16, 32, 64) and R = W/16 registers:
 *   turnstile k: entries at k*2*R, exits at k*2*R + R, encoded with
 *   ts_encode_regs in the configured word order; the same values in holding
 *   (FC 3) and input (FC 4) registers; values masked to W bits.
 *   holding 9000: number of turnstiles, 9001: W, 9002: word order
 *   (0 ABCD, 1 CDAB, 2 BADC, 3 DCBA), 9003: registers per turnstile (2*R).
 * Anything else: exception 2 (illegal data address); functions other than
 * 3, 4 and 0x11 (report slave id): exception 1 (illegal function).
 *
 * Threads: TCP runs an accept thread and one thread per client; RTU runs one
 * thread for the line. The ts_sim_* operations may be called from any thread. */
#ifndef TS_SIM_SERVER_H
#define TS_SIM_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "mta_file.h"
#include "replay.h"

#define TS_SIM_INFO_ADDRESS 9000
#define TS_SIM_INFO_REGS 4

enum ts_sim_transport { TS_SIM_TCP, TS_SIM_RTU };

struct ts_sim_slave_cfg {
    int id;                   /* Modbus unit id, 1..247 */
    const struct ts_mta_turnstile *const *turnstiles; /* lent, see ts_sim_cfg */
    size_t n_turnstiles;
};

struct ts_sim_cfg {
    enum ts_sim_transport transport;
    /* tcp: host "" = all addresses; port "0" = any free port */
    char host[256];
    char port[16];
    /* rtu */
    char device[256];
    int baud;
    char parity;              /* 'N', 'E', 'O' */
    int data_bits, stop_bits;
    /* register map */
    unsigned width;           /* 16, 32, 64 */
    enum ts_word_order order;
    /* clock */
    double speed;             /* simulated seconds per real second, > 0 */
    int64_t start_ms;         /* simulated UTC epoch ms at start */
    struct ts_replay_cfg replay;
    bool verbose;             /* log every request */
    /* Lent: the slave table is copied, but the turnstiles it points to must
     * outlive the server. */
    const struct ts_sim_slave_cfg *slaves;
    size_t n_slaves;
};

struct ts_sim_server;

/* Validates cfg and binds the TCP port or opens the serial line; no thread
 * runs yet. On failure returns TS_EINVAL/TS_ECONFIG (bad cfg), TS_ECONNECT
 * (cannot listen or open the device) or TS_ENOMEM, with a sentence in err. */
int ts_sim_server_new(const struct ts_sim_cfg *cfg, struct ts_sim_server **out, char *err,
                      size_t errlen);

/* Starts the clock and the serving threads. TS_OK or TS_ESYS. */
int ts_sim_server_start(struct ts_sim_server *s);

/* The bound TCP port (useful with port 0); 0 for RTU. */
int ts_sim_server_port(const struct ts_sim_server *s);

/* Stops the threads, closes the link, frees s. NULL-safe. */
void ts_sim_server_free(struct ts_sim_server *s);

/* Run-time control. slave is the Modbus unit id, k the turnstile index
 * within that slave (0-based). TS_OK, TS_ENOTFOUND (no such slave or
 * turnstile) or TS_EINVAL. */

/* Both counters show these values from now on and keep counting from them. */
int ts_sim_set(struct ts_sim_server *s, int slave, size_t k, uint64_t entries, uint64_t exits);
/* The counters count downward (on) or upward again (off) from their current values. */
int ts_sim_reverse(struct ts_sim_server *s, int slave, size_t k, bool on);
/* The entries register shows value for the next `reads` reads covering it. */
int ts_sim_glitch(struct ts_sim_server *s, int slave, size_t k, uint64_t value, unsigned reads);
/* No answer at all. */
int ts_sim_silent(struct ts_sim_server *s, int slave, bool on);
/* Answer every request with Modbus exception code (1..11); 0: off. */
int ts_sim_exception(struct ts_sim_server *s, int slave, int code);
/* Delay every answer by ms; 0: off. */
int ts_sim_slow(struct ts_sim_server *s, int slave, int ms);
/* Stops or restarts the simulated clock. */
void ts_sim_pause(struct ts_sim_server *s, bool paused);
/* The values the slave serves now (masked to the width, glitches aside). */
int ts_sim_get(struct ts_sim_server *s, int slave, size_t k, uint64_t *entries, uint64_t *exits);
/* The turnstile k of slave, or NULL. Borrowed. */
const struct ts_mta_turnstile *ts_sim_turnstile(const struct ts_sim_server *s, int slave, size_t k);
/* The simulated time now, UTC epoch ms. */
int64_t ts_sim_now_ms(struct ts_sim_server *s);

#endif
