/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_server.h"

#include <errno.h>
#include <fcntl.h>
#include <modbus.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "now.h"

#define MAX_CLIENTS 64
#define POLL_MS 200
#define MAP_REGS (TS_SIM_INFO_ADDRESS + TS_SIM_INFO_REGS)

/* served = reversed ? offset - raw : raw + offset (mod 2^64), then masked */
struct xform {
    bool reversed;
    uint64_t offset;
};

struct gate {
    const struct ts_mta_turnstile *ts;
    struct xform entries, exits;
    uint64_t glitch_value;
    unsigned glitch_reads;    /* reads left that show glitch_value */
};

struct slave {
    int id;
    struct gate *gates;
    size_t n;
    bool silent;
    int exception;            /* 0: off */
    int slow_ms;              /* 0: off */
};

struct client {
    struct ts_sim_server *srv;
    pthread_t thread;
    int fd;
    bool used;
    atomic_bool done;
};

struct ts_sim_server {
    struct ts_sim_cfg cfg;    /* cfg.slaves not used after new */
    struct slave *slaves;
    size_t n_slaves;
    int regs;                 /* registers per counter: width / 16 */
    pthread_mutex_t lock;     /* slaves, gates and the clock */
    int64_t base_sim_ms;      /* simulated time at base_real_ns */
    int64_t base_real_ns;     /* ts_mono_ns */
    bool paused, running;
    modbus_t *line;           /* rtu: owns the serial port */
    int listen_fd;            /* tcp */
    int port;
    pthread_t thread;         /* accept loop or rtu line */
    bool thread_started;
    atomic_bool stop;
    struct client clients[MAX_CLIENTS];
};

/* ---- state -------------------------------------------------------------- */

static int64_t now_locked(const struct ts_sim_server *s)
{
    if (s->paused || !s->running)
        return s->base_sim_ms;
    double real_ms = (double)(ts_mono_ns() - s->base_real_ns) / 1e6;
    return s->base_sim_ms + (int64_t)(real_ms * s->cfg.speed);
}

static uint64_t mask(const struct ts_sim_server *s, uint64_t v)
{
    return s->cfg.width >= 64 ? v : v & ((UINT64_C(1) << s->cfg.width) - 1);
}

static uint64_t apply(const struct xform *x, uint64_t raw)
{
    return x->reversed ? x->offset - raw : raw + x->offset;
}

/* Makes x serve `value` for the current raw value, reversed or not. */
static void rebase(struct xform *x, uint64_t raw, uint64_t value, bool reversed)
{
    x->reversed = reversed;
    x->offset = reversed ? value + raw : value - raw;
}

static void raw_values(const struct ts_sim_server *s, const struct gate *g, int64_t t,
                       uint64_t *e, uint64_t *x)
{
    ts_replay_at(g->ts, t, &s->cfg.replay, e, x);
}

static struct slave *find_slave(const struct ts_sim_server *s, int id)
{
    for (size_t i = 0; i < s->n_slaves; i++)
        if (s->slaves[i].id == id)
            return &s->slaves[i];
    return NULL;
}

static struct gate *find_gate(const struct ts_sim_server *s, int id, size_t k)
{
    struct slave *sl = find_slave(s, id);
    return sl && k < sl->n ? &sl->gates[k] : NULL;
}

int64_t ts_sim_now_ms(struct ts_sim_server *s)
{
    pthread_mutex_lock(&s->lock);
    int64_t t = now_locked(s);
    pthread_mutex_unlock(&s->lock);
    return t;
}

void ts_sim_pause(struct ts_sim_server *s, bool paused)
{
    pthread_mutex_lock(&s->lock);
    if (paused && !s->paused) {
        s->base_sim_ms = now_locked(s);
        s->paused = true;
    } else if (!paused && s->paused) {
        s->base_real_ns = ts_mono_ns();
        s->paused = false;
    }
    pthread_mutex_unlock(&s->lock);
}

int ts_sim_set(struct ts_sim_server *s, int slave, size_t k, uint64_t entries, uint64_t exits)
{
    uint64_t re, rx;
    int rc = TS_ENOTFOUND;

    pthread_mutex_lock(&s->lock);
    struct gate *g = find_gate(s, slave, k);
    if (g) {
        raw_values(s, g, now_locked(s), &re, &rx);
        rebase(&g->entries, re, entries, g->entries.reversed);
        rebase(&g->exits, rx, exits, g->exits.reversed);
        rc = TS_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int ts_sim_reverse(struct ts_sim_server *s, int slave, size_t k, bool on)
{
    uint64_t re, rx;
    int rc = TS_ENOTFOUND;

    pthread_mutex_lock(&s->lock);
    struct gate *g = find_gate(s, slave, k);
    if (g) {
        raw_values(s, g, now_locked(s), &re, &rx);
        rebase(&g->entries, re, apply(&g->entries, re), on);
        rebase(&g->exits, rx, apply(&g->exits, rx), on);
        rc = TS_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int ts_sim_glitch(struct ts_sim_server *s, int slave, size_t k, uint64_t value, unsigned reads)
{
    int rc = TS_ENOTFOUND;

    pthread_mutex_lock(&s->lock);
    struct gate *g = find_gate(s, slave, k);
    if (g) {
        g->glitch_value = value;
        g->glitch_reads = reads;
        rc = TS_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int ts_sim_get(struct ts_sim_server *s, int slave, size_t k, uint64_t *entries, uint64_t *exits)
{
    uint64_t re, rx;
    int rc = TS_ENOTFOUND;

    pthread_mutex_lock(&s->lock);
    struct gate *g = find_gate(s, slave, k);
    if (g) {
        raw_values(s, g, now_locked(s), &re, &rx);
        *entries = mask(s, apply(&g->entries, re));
        *exits = mask(s, apply(&g->exits, rx));
        rc = TS_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

const struct ts_mta_turnstile *ts_sim_turnstile(const struct ts_sim_server *s, int slave, size_t k)
{
    const struct gate *g = find_gate(s, slave, k);
    return g ? g->ts : NULL;
}

/* Sets one per-slave fault under the lock. */
static int slave_fault(struct ts_sim_server *s, int slave, int which, int value)
{
    int rc = TS_ENOTFOUND;

    pthread_mutex_lock(&s->lock);
    struct slave *sl = find_slave(s, slave);
    if (sl) {
        if (which == 0)
            sl->silent = value != 0;
        else if (which == 1)
            sl->exception = value;
        else
            sl->slow_ms = value;
        rc = TS_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int ts_sim_silent(struct ts_sim_server *s, int slave, bool on)
{
    return slave_fault(s, slave, 0, on);
}

int ts_sim_exception(struct ts_sim_server *s, int slave, int code)
{
    if (code < 0 || code >= MODBUS_EXCEPTION_MAX)
        return TS_EINVAL;
    return slave_fault(s, slave, 1, code);
}

int ts_sim_slow(struct ts_sim_server *s, int slave, int ms)
{
    if (ms < 0)
        return TS_EINVAL;
    return slave_fault(s, slave, 2, ms);
}

/* ---- serving ------------------------------------------------------------ */

/* Encodes into map the counters of sl that overlap [addr, addr + nb), and
 * the info block. Consumes glitches whose entries register is read. */
static void fill_locked(struct ts_sim_server *s, struct slave *sl, modbus_mapping_t *map,
                        int addr, int nb)
{
    int stride = 2 * s->regs;
    int64_t t = now_locked(s);
    uint16_t *info = map->tab_registers + TS_SIM_INFO_ADDRESS;

    for (size_t k = (size_t)(addr / stride); k < sl->n && (int)k * stride < addr + nb; k++) {
        struct gate *g = &sl->gates[k];
        int base = (int)k * stride;
        uint64_t re, rx, e, x;

        raw_values(s, g, t, &re, &rx);
        e = apply(&g->entries, re);
        x = apply(&g->exits, rx);
        if (g->glitch_reads && addr < base + s->regs && addr + nb > base) {
            e = g->glitch_value;
            g->glitch_reads--;
        }
        ts_encode_regs(mask(s, e), s->cfg.width, s->cfg.order, map->tab_registers + base);
        ts_encode_regs(mask(s, x), s->cfg.width, s->cfg.order,
                       map->tab_registers + base + s->regs);
        memcpy(map->tab_input_registers + base, map->tab_registers + base,
               (size_t)stride * sizeof(uint16_t));
    }
    info[0] = (uint16_t)sl->n;
    info[1] = (uint16_t)s->cfg.width;
    info[2] = (uint16_t)s->cfg.order;
    info[3] = (uint16_t)stride;
}

static bool range_ok(const struct ts_sim_server *s, const struct slave *sl, int fc, int addr,
                     int nb)
{
    int end = addr + nb;
    if (end <= (int)sl->n * 2 * s->regs)
        return true;
    return fc == MODBUS_FC_READ_HOLDING_REGISTERS && addr >= TS_SIM_INFO_ADDRESS &&
           end <= TS_SIM_INFO_ADDRESS + TS_SIM_INFO_REGS;
}

/* Sleeps ms milliseconds, waking early on stop. */
static void nap(struct ts_sim_server *s, int ms)
{
    while (ms > 0 && !atomic_load(&s->stop)) {
        int step = ms < 50 ? ms : 50;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* Answers one request (len bytes at req, checked by libmodbus or by
 * rtu_other_unit) on ctx, using map as scratch space. */
static void serve(struct ts_sim_server *s, modbus_t *ctx, modbus_mapping_t *map, const uint8_t *req,
                  int len)
{
    int hl = modbus_get_header_length(ctx);
    int unit = req[hl - 1], fc = req[hl];
    int addr = (req[hl + 1] << 8) | req[hl + 2], nb = (req[hl + 3] << 8) | req[hl + 4];
    bool rtu = s->cfg.transport == TS_SIM_RTU;
    struct slave *sl = find_slave(s, unit);
    bool silent;
    int exception, slow;

    if (!sl && !rtu && s->n_slaves == 1 && (unit == 0 || unit == 255))
        sl = &s->slaves[0]; /* the usual "this device" unit ids on TCP */
    if (s->cfg.verbose)
        TS_LOG(TS_LOG_INFO, "request unit %d function %d address %d count %d", unit, fc, addr, nb);
    if (!sl) {
        if (!rtu) /* a gateway's answer for an absent device */
            modbus_reply_exception(ctx, req, MODBUS_EXCEPTION_GATEWAY_TARGET);
        return;
    }
    pthread_mutex_lock(&s->lock);
    silent = sl->silent;
    exception = sl->exception;
    slow = sl->slow_ms;
    pthread_mutex_unlock(&s->lock);
    if (silent)
        return;
    if (slow)
        nap(s, slow);
    if (exception) {
        modbus_reply_exception(ctx, req, (unsigned)exception);
        return;
    }
    switch (fc) {
    case MODBUS_FC_READ_HOLDING_REGISTERS:
    case MODBUS_FC_READ_INPUT_REGISTERS:
        if (nb >= 1 && nb <= MODBUS_MAX_READ_REGISTERS && !range_ok(s, sl, fc, addr, nb)) {
            modbus_reply_exception(ctx, req, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
            return;
        }
        if (nb >= 1 && nb <= MODBUS_MAX_READ_REGISTERS) {
            pthread_mutex_lock(&s->lock);
            fill_locked(s, sl, map, addr, nb);
            pthread_mutex_unlock(&s->lock);
        }
        modbus_reply(ctx, req, len, map); /* libmodbus answers bad counts itself */
        return;
    case MODBUS_FC_REPORT_SLAVE_ID:
        modbus_reply(ctx, req, len, map);
        return;
    default:
        modbus_reply_exception(ctx, req, MODBUS_EXCEPTION_ILLEGAL_FUNCTION);
    }
}

/* ---- TCP ---------------------------------------------------------------- */

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct ts_sim_server *s = c->srv;
    uint8_t req[MODBUS_TCP_MAX_ADU_LENGTH];
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", 502); /* address unused: socket set below */
    modbus_mapping_t *map = modbus_mapping_new(0, 0, MAP_REGS, MAP_REGS);

    if (!ctx || !map) {
        TS_LOG(TS_LOG_ERR, "client: out of memory");
        close(c->fd);
    } else {
        modbus_set_socket(ctx, c->fd);
        while (!atomic_load(&s->stop)) {
            struct pollfd p = {.fd = c->fd, .events = POLLIN};
            int r = poll(&p, 1, POLL_MS);
            if (r < 0 && errno != EINTR)
                break;
            if (r <= 0)
                continue;
            int rc = modbus_receive(ctx, req);
            if (rc < 0) {
                /* closed by the client, or garbage we cannot resynchronise on */
                TS_LOG(TS_LOG_INFO, "client fd %d: %s, closing", c->fd,
                       errno == ECONNRESET ? "disconnected" : modbus_strerror(errno));
                break;
            }
            if (rc > 0)
                serve(s, ctx, map, req, rc);
        }
        modbus_close(ctx);
    }
    modbus_free(ctx);
    modbus_mapping_free(map);
    atomic_store(&c->done, true);
    return NULL;
}

static void reap_clients(struct ts_sim_server *s, bool all)
{
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &s->clients[i];
        if (c->used && (all || atomic_load(&c->done))) {
            pthread_join(c->thread, NULL);
            c->used = false;
        }
    }
}

static void accept_one(struct ts_sim_server *s)
{
    struct client *c = NULL;
    int fd = accept(s->listen_fd, NULL, NULL);

    if (fd < 0) {
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
            TS_LOG(TS_LOG_WARNING, "accept: %s", strerror(errno));
            nap(s, 100); /* EMFILE and the like: do not spin */
        }
        return;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    for (int i = 0; i < MAX_CLIENTS && !c; i++)
        if (!s->clients[i].used)
            c = &s->clients[i];
    if (!c) {
        TS_LOG(TS_LOG_WARNING, "too many clients (%d), refusing one", MAX_CLIENTS);
        close(fd);
        return;
    }
    c->srv = s;
    c->fd = fd;
    atomic_store(&c->done, false);
    if (pthread_create(&c->thread, NULL, client_main, c) != 0) {
        TS_LOG(TS_LOG_WARNING, "cannot start a client thread");
        close(fd);
        return;
    }
    c->used = true;
    TS_LOG(TS_LOG_INFO, "client connected (fd %d)", fd);
}

static void *accept_main(void *arg)
{
    struct ts_sim_server *s = arg;

    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->listen_fd, .events = POLLIN};
        reap_clients(s, false);
        if (poll(&p, 1, POLL_MS) > 0)
            accept_one(s);
    }
    reap_clients(s, true);
    return NULL;
}

static int listen_tcp(struct ts_sim_server *s, char *err, size_t errlen)
{
    struct sockaddr_storage a;
    socklen_t alen = sizeof a;
    modbus_t *ctx = modbus_new_tcp_pi(s->cfg.host[0] ? s->cfg.host : NULL, s->cfg.port);

    if (!ctx) {
        snprintf(err, errlen, "bad TCP address '%s:%s'", s->cfg.host, s->cfg.port);
        return TS_ECONFIG;
    }
    s->listen_fd = modbus_tcp_pi_listen(ctx, 16);
    modbus_free(ctx); /* the listening socket is ours, not the context's */
    if (s->listen_fd < 0) {
        snprintf(err, errlen, "cannot listen on '%s:%s': %s", s->cfg.host, s->cfg.port,
                 modbus_strerror(errno));
        return TS_ECONNECT;
    }
    if (getsockname(s->listen_fd, (struct sockaddr *)&a, &alen) == 0)
        s->port = ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                                : ((struct sockaddr_in *)&a)->sin_port);
    return TS_OK;
}

/* ---- RTU ---------------------------------------------------------------- */

/* CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), as sent: low byte first. */
static bool crc_ok(const uint8_t *f, int len)
{
    uint16_t crc = 0xFFFF;
    for (int i = 0; i < len - 2; i++) {
        crc ^= f[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return f[len - 2] == (crc & 0xFF) && f[len - 1] == (crc >> 8);
}

/* Length of an RTU request frame, from its function code (Modbus
 * Application Protocol 1.1b, the same rule libmodbus uses to read it). */
static int rtu_request_length(const uint8_t *f)
{
    int n;
    switch (f[1]) {
    case 0x01: case 0x02: case 0x03: case 0x04: case 0x05: case 0x06:
        n = 8;
        break;
    case 0x0F: case 0x10:
        n = 9 + f[6];
        break;
    case 0x16:
        n = 10;
        break;
    case 0x17:
        n = 13 + f[10];
        break;
    default:
        n = 4;
    }
    return n <= MODBUS_RTU_MAX_ADU_LENGTH ? n : 0;
}

/* A context that reads requests from the line. Its unit id is the first
 * slave's; libmodbus 3.1.6 has no way to accept several. */
static modbus_t *new_listener(struct ts_sim_server *s)
{
    modbus_t *l = modbus_new_rtu(s->cfg.device, s->cfg.baud, s->cfg.parity, s->cfg.data_bits,
                                 s->cfg.stop_bits);
    if (l) {
        modbus_set_socket(l, modbus_get_socket(s->line));
        modbus_set_slave(l, s->slaves[0].id);
    }
    return l;
}

/* libmodbus returned 0: it read a complete frame for another unit id, did
 * not check its CRC, and now expects that unit's answer as the next frame.
 * The simulator is alone on its line, so there is no such answer to skip:
 * start afresh with a new listener, and answer the frame if one of our
 * slaves is addressed and the CRC holds. */
static modbus_t *rtu_other_unit(struct ts_sim_server *s, modbus_t *l, modbus_mapping_t *map,
                                const uint8_t *req)
{
    int len = rtu_request_length(req);

    modbus_free(l);
    l = new_listener(s);
    if (!l)
        return NULL;
    if (find_slave(s, req[0]) && len > 0 && crc_ok(req, len))
        serve(s, l, map, req, len);
    else if (s->cfg.verbose)
        TS_LOG(TS_LOG_INFO, "frame for unit %d ignored", req[0]);
    return l;
}

static void *rtu_main(void *arg)
{
    struct ts_sim_server *s = arg;
    uint8_t req[MODBUS_RTU_MAX_ADU_LENGTH + 4];
    modbus_mapping_t *map = modbus_mapping_new(0, 0, MAP_REGS, MAP_REGS);
    modbus_t *l = new_listener(s);
    int fd = modbus_get_socket(s->line);
    bool down = false;

    while (map && l && !atomic_load(&s->stop)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, POLL_MS);
        if (r <= 0)
            continue;
        if (!(p.revents & POLLIN)) { /* hang-up: the other end is gone */
            if (!down)
                TS_LOG(TS_LOG_WARNING, "%s: line hung up, waiting", s->cfg.device);
            down = true;
            nap(s, POLL_MS);
            continue;
        }
        memset(req, 0, sizeof req);
        int rc = modbus_receive(l, req);
        if (rc > 0) {
            down = false;
            serve(s, l, map, req, rc);
        } else if (rc == 0) {
            down = false;
            l = rtu_other_unit(s, l, map, req);
        } else if (errno == ECONNRESET || errno == EIO || errno == EBADF) {
            if (!down)
                TS_LOG(TS_LOG_WARNING, "%s: %s, waiting", s->cfg.device, modbus_strerror(errno));
            down = true;
            nap(s, POLL_MS);
        } else {
            if (s->cfg.verbose)
                TS_LOG(TS_LOG_INFO, "bad frame: %s", modbus_strerror(errno));
            modbus_flush(l);
        }
    }
    if (!map || !l)
        TS_LOG(TS_LOG_ERR, "%s: out of memory, the line is no longer served", s->cfg.device);
    modbus_free(l);
    modbus_mapping_free(map);
    return NULL;
}

static int open_rtu(struct ts_sim_server *s, char *err, size_t errlen)
{
    s->line = modbus_new_rtu(s->cfg.device, s->cfg.baud, s->cfg.parity, s->cfg.data_bits,
                             s->cfg.stop_bits);
    if (!s->line) {
        snprintf(err, errlen, "bad serial settings for '%s': %s", s->cfg.device,
                 modbus_strerror(errno));
        return TS_ECONFIG;
    }
    if (modbus_connect(s->line) < 0) {
        snprintf(err, errlen, "cannot open '%s' at %d %d%c%d: %s", s->cfg.device, s->cfg.baud,
                 s->cfg.data_bits, s->cfg.parity, s->cfg.stop_bits, modbus_strerror(errno));
        modbus_free(s->line);
        s->line = NULL;
        return TS_ECONNECT;
    }
    return TS_OK;
}

/* ---- life cycle --------------------------------------------------------- */

static int check_cfg(const struct ts_sim_cfg *cfg, char *err, size_t errlen)
{
    if (cfg->width != 16 && cfg->width != 32 && cfg->width != 64)
        return snprintf(err, errlen, "width must be 16, 32 or 64"), TS_ECONFIG;
    if (cfg->order > TS_ORDER_DCBA)
        return snprintf(err, errlen, "bad word order"), TS_ECONFIG;
    if (!(cfg->speed > 0))
        return snprintf(err, errlen, "speed must be > 0"), TS_ECONFIG;
    if (cfg->n_slaves < 1 || cfg->n_slaves > 247)
        return snprintf(err, errlen, "need 1 to 247 slaves"), TS_ECONFIG;
    for (size_t i = 0; i < cfg->n_slaves; i++) {
        const struct ts_sim_slave_cfg *sc = &cfg->slaves[i];
        size_t max = TS_SIM_INFO_ADDRESS / (2 * cfg->width / 16);
        if (sc->id < 1 || sc->id > 247)
            return snprintf(err, errlen, "slave id %d out of 1..247", sc->id), TS_ECONFIG;
        for (size_t j = 0; j < i; j++)
            if (cfg->slaves[j].id == sc->id)
                return snprintf(err, errlen, "slave id %d given twice", sc->id), TS_ECONFIG;
        if (sc->n_turnstiles < 1 || sc->n_turnstiles > max)
            return snprintf(err, errlen, "slave %d: 1 to %zu turnstiles at width %u", sc->id, max,
                            cfg->width),
                   TS_ECONFIG;
        for (size_t k = 0; k < sc->n_turnstiles; k++)
            if (!sc->turnstiles[k])
                return snprintf(err, errlen, "slave %d: turnstile %zu missing", sc->id, k),
                       TS_EINVAL;
    }
    if (cfg->transport == TS_SIM_RTU && !cfg->device[0])
        return snprintf(err, errlen, "no serial device"), TS_ECONFIG;
    return TS_OK;
}

int ts_sim_server_new(const struct ts_sim_cfg *cfg, struct ts_sim_server **out, char *err,
                      size_t errlen)
{
    struct ts_sim_server *s;
    char dummy[8];
    int rc;

    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!cfg || !out)
        return TS_EINVAL;
    *out = NULL;
    if ((rc = check_cfg(cfg, err, errlen)))
        return rc;
    s = calloc(1, sizeof *s);
    if (!s || !(s->slaves = calloc(cfg->n_slaves, sizeof *s->slaves))) {
        free(s);
        return snprintf(err, errlen, "out of memory"), TS_ENOMEM;
    }
    s->cfg = *cfg;
    s->cfg.slaves = NULL;
    s->regs = ts_width_regs(cfg->width);
    s->listen_fd = -1;
    s->base_sim_ms = cfg->start_ms;
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->stop, false);
    s->n_slaves = cfg->n_slaves;
    for (size_t i = 0; i < cfg->n_slaves; i++) {
        struct slave *sl = &s->slaves[i];
        sl->id = cfg->slaves[i].id;
        sl->n = cfg->slaves[i].n_turnstiles;
        sl->gates = calloc(sl->n, sizeof *sl->gates);
        if (!sl->gates) {
            ts_sim_server_free(s);
            return snprintf(err, errlen, "out of memory"), TS_ENOMEM;
        }
        for (size_t k = 0; k < sl->n; k++)
            sl->gates[k].ts = cfg->slaves[i].turnstiles[k];
    }
    rc = cfg->transport == TS_SIM_TCP ? listen_tcp(s, err, errlen) : open_rtu(s, err, errlen);
    if (rc) {
        ts_sim_server_free(s);
        return rc;
    }
    *out = s;
    return TS_OK;
}

int ts_sim_server_start(struct ts_sim_server *s)
{
    sigset_t block, old;
    int rc;

    pthread_mutex_lock(&s->lock);
    s->base_real_ns = ts_mono_ns();
    s->running = true;
    pthread_mutex_unlock(&s->lock);
    /* the serving threads leave SIGINT/SIGTERM to the main thread */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = pthread_create(&s->thread, NULL, s->cfg.transport == TS_SIM_TCP ? accept_main : rtu_main,
                        s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        return TS_ESYS;
    }
    s->thread_started = true;
    return TS_OK;
}

int ts_sim_server_port(const struct ts_sim_server *s)
{
    return s->cfg.transport == TS_SIM_TCP ? s->port : 0;
}

void ts_sim_server_free(struct ts_sim_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, true);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->line) {
        modbus_close(s->line);
        modbus_free(s->line);
    }
    for (size_t i = 0; i < s->n_slaves; i++)
        free(s->slaves[i].gates);
    free(s->slaves);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
