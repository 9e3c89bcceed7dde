/* SPDX-License-Identifier: Apache-2.0 */
/* gpio_source.c - the GPIO backend: turnstiles that give one pulse per person
 * on an entry line and an exit line of a gpiochip.
 *
 * open requests every wired line for both edges and starts one thread per
 * source; the thread waits for edge events, feeds them to the line's
 * debouncer (gpio_debounce.h) and so keeps the counts, which read copies out
 * under a lock. Counts start at 0 when the source is created and carry over
 * a close and re-open after a fault (edges while closed are not seen); the
 * caller adds its own persisted base across restarts. All libgpiod calls of the project are in the "libgpiod
 * shim" section below, so that a libgpiod 2 variant can be added there,
 * chosen at compile time by TS_GPIOD_API (docs/gpio.md). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gpio_debounce.h"
#include "hal_private.h"
#include "log.h"

#ifndef TS_GPIOD_API
#define TS_GPIOD_API 1
#endif

#define GPIO_MAX_LINES 64     /* one wait covers at most this many lines */
#define GPIO_WAIT_MS 100      /* the thread checks for stop this often */
#define GPIO_EVENT_BATCH 64
#define GPIO_CONSUMER "turnstile-edge"

/* One edge event of line `line` (index in request order). */
struct gpio_event {
    size_t line;
    bool rising;              /* physical: the line went high */
    uint64_t time_ns;
};

/* ---- libgpiod shim --------------------------------------------------------
 * io_open:    opens the chip (name, path, label or number). TS_OK or error.
 * io_request: requests the next line (index = number of earlier requests)
 *             for both edges, without active-low (the debouncer inverts);
 *             *level gets its physical level, -1 if unknown.
 * io_wait:    waits up to timeout_ms, stores up to n events. Returns their
 *             number (0 on timeout) or -1 with errno set.
 * io_close:   releases the lines and closes the chip. NULL-safe. */
#if TS_GPIOD_API == 1
#include <gpiod.h>

struct gpio_io {
    struct gpiod_chip *chip;
    struct gpiod_line_bulk bulk;  /* requested lines, in request order */
};

static int io_open(struct gpio_io **out, const char *dev, const char *chip)
{
    struct gpio_io *io = calloc(1, sizeof *io);
    if (!io)
        return TS_ENOMEM;
    io->chip = gpiod_chip_open_lookup(chip);
    if (!io->chip) {
        int e = errno;
        TS_LOG(TS_LOG_ERR, "gpio %s: cannot open chip \"%s\": %s", dev, chip, strerror(e));
        free(io);
        errno = e;
        return TS_ECONNECT;
    }
    gpiod_line_bulk_init(&io->bulk);
    *out = io;
    return TS_OK;
}

static int io_request(struct gpio_io *io, const char *dev, const char *chip,
                      unsigned offset, enum ts_gpio_bias bias, int *level)
{
    static const int bias_flags[] = {
        [TS_BIAS_AS_IS] = 0,
        [TS_BIAS_DISABLE] = GPIOD_LINE_REQUEST_FLAG_BIAS_DISABLE,
        [TS_BIAS_PULL_UP] = GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_UP,
        [TS_BIAS_PULL_DOWN] = GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_DOWN,
    };
    int flags = (unsigned)bias < sizeof bias_flags / sizeof bias_flags[0] ? bias_flags[bias] : 0;

    struct gpiod_line *line = gpiod_chip_get_line(io->chip, offset);
    if (!line) {
        TS_LOG(TS_LOG_ERR, "gpio %s: chip %s has no line %u (it has %u lines)", dev, chip,
               offset, gpiod_chip_num_lines(io->chip));
        return TS_ECONFIG;
    }
    int rv = gpiod_line_request_both_edges_events_flags(line, GPIO_CONSUMER, flags);
    if (rv < 0 && flags && (errno == EINVAL || errno == EOPNOTSUPP)) {
        TS_LOG(TS_LOG_WARNING, "gpio %s: chip %s line %u: bias not supported here (%s);"
               " requesting without bias, fit an external resistor", dev, chip, offset,
               strerror(errno));
        rv = gpiod_line_request_both_edges_events_flags(line, GPIO_CONSUMER, 0);
    }
    if (rv < 0) {
        int e = errno;
        const char *user = gpiod_line_consumer(line);
        TS_LOG(TS_LOG_ERR, "gpio %s: chip %s line %u: cannot request for events: %s%s%s", dev,
               chip, offset, strerror(e), e == EBUSY && user ? ", used by " : "",
               e == EBUSY && user ? user : "");
        errno = e;
        return TS_ECONNECT;
    }
    gpiod_line_bulk_add(&io->bulk, line);
    *level = gpiod_line_get_value(line);
    if (*level < 0)
        TS_LOG(TS_LOG_WARNING, "gpio %s: chip %s line %u: cannot read level: %s", dev, chip,
               offset, strerror(errno));
    return TS_OK;
}

static int io_wait(struct gpio_io *io, int timeout_ms, struct gpio_event *ev, size_t n)
{
    struct timespec timeout = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };
    struct gpiod_line_bulk ready;
    struct gpiod_line_event buf[GPIO_EVENT_BATCH];
    size_t got = 0;

    gpiod_line_bulk_init(&ready);
    int rv = gpiod_line_event_wait_bulk(&io->bulk, &timeout, &ready);
    if (rv <= 0)
        return rv;
    for (unsigned r = 0; r < ready.num_lines && got < n; r++) {
        size_t k = 0;
        while (k < io->bulk.num_lines && io->bulk.lines[k] != ready.lines[r])
            k++;
        size_t want = n - got < GPIO_EVENT_BATCH ? n - got : GPIO_EVENT_BATCH;
        int m = gpiod_line_event_read_multiple(ready.lines[r], buf, (unsigned)want);
        if (m < 0)
            return -1;
        for (int j = 0; j < m; j++)
            ev[got++] = (struct gpio_event){
                .line = k,
                .rising = buf[j].event_type == GPIOD_LINE_EVENT_RISING_EDGE,
                .time_ns = (uint64_t)buf[j].ts.tv_sec * 1000000000u + (uint64_t)buf[j].ts.tv_nsec,
            };
    }
    return (int)got;
}

static void io_close(struct gpio_io *io)
{
    if (!io)
        return;
    if (io->bulk.num_lines)
        gpiod_line_release_bulk(&io->bulk);
    gpiod_chip_close(io->chip);
    free(io);
}

#else
#error "TS_GPIOD_API: only the libgpiod 1.x API (1) is implemented; docs/gpio.md says how to add 2"
#endif
/* ---- end of libgpiod shim ---- */

struct gpio_line {
    size_t turnstile;         /* index into src->turnstiles */
    bool exit;                /* exit line, else entry line */
    unsigned offset;
    struct ts_debounce db;    /* guarded by lock while the thread runs */
    uint64_t base;            /* counted in earlier opens of this source */
};

struct gpio_state {
    struct gpio_io *io;       /* NULL while closed */
    pthread_t thread;
    bool running;             /* thread started */
    atomic_bool stop;
    pthread_mutex_t lock;     /* guards lines[].db and fault */
    int fault;                /* ts_err the thread stopped on, 0 if none */
    size_t n_lines;
    struct gpio_line lines[]; /* n_lines */
};

static void *gpio_thread(void *arg)
{
    struct ts_source *src = arg;
    struct gpio_state *g = src->data;
    struct gpio_event ev[GPIO_EVENT_BATCH];

    while (!atomic_load(&g->stop)) {
        int n = io_wait(g->io, GPIO_WAIT_MS, ev, GPIO_EVENT_BATCH);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            TS_LOG(TS_LOG_ERR, "gpio %s: chip %s: reading events failed: %s", src->cfg->name,
                   src->cfg->chip, strerror(errno));
            pthread_mutex_lock(&g->lock);
            g->fault = TS_EIO;
            pthread_mutex_unlock(&g->lock);
            break;
        }
        pthread_mutex_lock(&g->lock);
        for (int j = 0; j < n; j++)
            ts_debounce_edge(&g->lines[ev[j].line].db, ev[j].rising, ev[j].time_ns);
        pthread_mutex_unlock(&g->lock);
    }
    return NULL;
}

/* Adds line `offset` of turnstile t unless it is not wired (< 0). */
static int add_line(const struct ts_source *src, struct gpio_state *g, size_t t, bool exit,
                    int offset)
{
    const char *dev = src->cfg->name, *name = src->turnstiles[t]->name;
    if (offset < 0)
        return TS_OK;
    if (g->n_lines == GPIO_MAX_LINES) {
        TS_LOG(TS_LOG_ERR, "gpio %s: more than %d lines on one device", dev, GPIO_MAX_LINES);
        return TS_ECONFIG;
    }
    for (size_t k = 0; k < g->n_lines; k++) {
        if (g->lines[k].offset == (unsigned)offset) {
            TS_LOG(TS_LOG_ERR, "gpio %s: turnstile %s: line %d is already used by turnstile %s",
                   dev, name, offset, src->turnstiles[g->lines[k].turnstile]->name);
            return TS_ECONFIG;
        }
    }
    g->lines[g->n_lines++] = (struct gpio_line){ .turnstile = t, .exit = exit,
                                                 .offset = (unsigned)offset };
    return TS_OK;
}

static void gpio_destroy(struct ts_source *src);

static int gpio_create(struct ts_source *src)
{
    const struct ts_device_cfg *cfg = src->cfg;
    struct gpio_state *g;
    int err = TS_OK;

    if (cfg->debounce_us < 0) {
        TS_LOG(TS_LOG_ERR, "gpio %s: debounce_us %d is negative", cfg->name, cfg->debounce_us);
        return TS_ECONFIG;
    }
    g = calloc(1, sizeof *g + 2 * src->n_turnstiles * sizeof g->lines[0]);
    if (!g)
        return TS_ENOMEM;
    if (pthread_mutex_init(&g->lock, NULL) != 0) {
        free(g);
        return TS_ESYS;
    }
    src->data = g;
    for (size_t t = 0; t < src->n_turnstiles && !err; t++) {
        const struct ts_turnstile_cfg *tc = src->turnstiles[t];
        if (tc->entry_line < 0 && tc->exit_line < 0) {
            TS_LOG(TS_LOG_ERR, "gpio %s: turnstile %s has neither entry_line nor exit_line",
                   cfg->name, tc->name);
            err = TS_ECONFIG;
        }
        if (!err)
            err = add_line(src, g, t, false, tc->entry_line);
        if (!err)
            err = add_line(src, g, t, true, tc->exit_line);
    }
    if (err)
        gpio_destroy(src);
    return err;
}

static void gpio_close(struct ts_source *src)
{
    struct gpio_state *g = src->data;
    if (!g || !g->io)
        return;
    if (g->running) {
        atomic_store(&g->stop, true);
        pthread_join(g->thread, NULL);
        g->running = false;
    }
    io_close(g->io);
    g->io = NULL;
    for (size_t k = 0; k < g->n_lines; k++) {
        const struct ts_debounce *db = &g->lines[k].db;
        TS_LOG(TS_LOG_INFO, "gpio %s: line %u closed: %llu counted, %llu ignored as bounce,"
               " %llu clock steps", src->cfg->name, g->lines[k].offset,
               (unsigned long long)db->count, (unsigned long long)db->ignored,
               (unsigned long long)db->clock_steps);
    }
}

static int gpio_open(struct ts_source *src)
{
    const struct ts_device_cfg *cfg = src->cfg;
    struct gpio_state *g = src->data;
    int err;

    if (!g)
        return TS_EINVAL;
    gpio_close(src);
    err = io_open(&g->io, cfg->name, cfg->chip);
    if (err)
        return err;
    for (size_t k = 0; k < g->n_lines; k++) {
        struct gpio_line *l = &g->lines[k];
        const struct ts_turnstile_cfg *tc = src->turnstiles[l->turnstile];
        struct ts_debounce_cfg dc = { .edge = tc->edge, .active_low = tc->active_low,
                                      .debounce_us = (uint32_t)cfg->debounce_us };
        int level;
        err = io_request(g->io, cfg->name, cfg->chip, l->offset, tc->bias, &level);
        if (err) {
            io_close(g->io);
            g->io = NULL;
            return err;
        }
        l->base += l->db.count;
        ts_debounce_init(&l->db, &dc, level);
        TS_LOG(TS_LOG_INFO, "gpio %s: chip %s line %u: %s of turnstile %s", cfg->name, cfg->chip,
               l->offset, l->exit ? "exits" : "entries", tc->name);
    }
    g->fault = TS_OK;
    atomic_store(&g->stop, false);
    err = pthread_create(&g->thread, NULL, gpio_thread, src);
    if (err) {
        TS_LOG(TS_LOG_ERR, "gpio %s: cannot start event thread: %s", cfg->name, strerror(err));
        io_close(g->io);
        g->io = NULL;
        errno = err;
        return TS_ESYS;
    }
    g->running = true;
    return TS_OK;
}

static int gpio_read(struct ts_source *src, size_t i, uint64_t *entries, uint64_t *exits)
{
    struct gpio_state *g = src->data;
    int err;

    if (!g || !g->io || i >= src->n_turnstiles)
        return TS_EINVAL;
    *entries = *exits = 0;
    pthread_mutex_lock(&g->lock);
    err = g->fault;
    for (size_t k = 0; k < g->n_lines && !err; k++)
        if (g->lines[k].turnstile == i)
            *(g->lines[k].exit ? exits : entries) = g->lines[k].base + g->lines[k].db.count;
    pthread_mutex_unlock(&g->lock);
    return err;
}

static void gpio_destroy(struct ts_source *src)
{
    struct gpio_state *g = src->data;
    if (!g)
        return;
    gpio_close(src);
    pthread_mutex_destroy(&g->lock);
    free(g);
    src->data = NULL;
}

const struct ts_hal_backend ts_backend_gpio = {
    .name = "gpio",
    .create = gpio_create,
    .open = gpio_open,
    .read = gpio_read,
    .close = gpio_close,
    .destroy = gpio_destroy,
};
