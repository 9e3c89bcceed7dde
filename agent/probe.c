/* SPDX-License-Identifier: Apache-2.0 */
/* probe.c - commissioning: which register map gives plausible counters.
 * Rules, output and exit status: docs/commissioning.md. */
#include "probe.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "now.h"

/* ---- the judgement (pure) ------------------------------------------------ */

static uint64_t width_mask(unsigned width)
{
    return width >= 64 ? UINT64_MAX : (UINT64_C(1) << width) - 1;
}

/* L(dt) of hal/counter.c, with the counters' default min_plausible. */
static uint64_t plausible_step(double rate_per_min, int64_t dt_ms)
{
    return ts_counter_limit(rate_per_min > 0 ? rate_per_min : TS_COUNTER_DEFAULT_RATE,
                            TS_COUNTER_DEFAULT_MIN_PLAUSIBLE, dt_ms);
}

enum ts_probe_verdict ts_probe_judge(const struct ts_probe_rule *rule, const uint64_t *v,
                                     const int64_t *t_ms, size_t n, char *why, size_t why_size)
{
    uint64_t m = width_mask(rule->width);
    int way = rule->direction == TS_DIR_UP ? 1 : rule->direction == TS_DIR_DOWN ? -1 : 0;
    bool moved = false;

    ts_why(why, why_size, "%s", "");
    for (size_t i = 0; i < n; i++) {
        if (v[i] > m || v[i] >= TS_PROBE_ABSURD) {
            ts_why(why, why_size, "value %" PRIu64 " at sample %zu is absurd (2^40 or more)", v[i],
                   i + 1);
            return TS_PROBE_IMPLAUSIBLE;
        }
    }
    for (size_t i = 1; i < n; i++) {
        uint64_t up = (v[i] - v[i - 1]) & m, down = (v[i - 1] - v[i]) & m;
        int64_t dt = t_ms[i] - t_ms[i - 1];
        uint64_t lim = plausible_step(rule->max_rate_per_min, dt);
        int shorter = up <= down ? 1 : -1; /* the way the value went, the short way round */

        if (up == 0)
            continue;
        if (way == 0)
            way = shorter; /* auto: the first move sets the way for the rest */
        if ((way > 0 ? up : down) > lim) {
            ts_why(why, why_size, "%c%" PRIu64 " in %.3f s at sample %zu (plausible: %s to %" PRIu64 ")",
                   shorter > 0 ? '+' : '-', shorter > 0 ? up : down, (double)dt / 1000.0, i + 1,
                   way > 0 ? "up" : "down", lim);
            return TS_PROBE_IMPLAUSIBLE;
        }
        moved = true;
    }
    return moved ? TS_PROBE_MOVING : TS_PROBE_STILL;
}

/* The same reading by definition: at 16 bits ABCD = CDAB and BADC = DCBA. */
static bool equivalent(const struct ts_probe_interp *a, const struct ts_probe_interp *b)
{
    bool swapped_a = a->order == TS_ORDER_BADC || a->order == TS_ORDER_DCBA;
    bool swapped_b = b->order == TS_ORDER_BADC || b->order == TS_ORDER_DCBA;

    return a->width == b->width && (a->order == b->order || (a->width == 16 && swapped_a == swapped_b));
}

/* The move from `from` to `to`, the short way round modulo 2^width. */
static int64_t step_of(uint64_t from, uint64_t to, unsigned width)
{
    uint64_t m = width_mask(width), up = (to - from) & m, down = (from - to) & m;

    if (up <= down)
        return up > INT64_MAX ? INT64_MAX : (int64_t)up;
    return down > INT64_MAX ? -INT64_MAX : -(int64_t)down;
}

/* Interpretations a and b (decoded values va, vb: n entries then n exits)
 * count the same people: every move of both counters is the same. */
static bool same_counts(const struct ts_probe_interp *a, const uint64_t *va,
                        const struct ts_probe_interp *b, const uint64_t *vb, size_t n)
{
    for (size_t i = 1; i < 2 * n; i++)
        if (i != n && step_of(va[i - 1], va[i], a->width) != step_of(vb[i - 1], vb[i], b->width))
            return false;
    return true;
}

int ts_probe_decide(const struct ts_turnstile_cfg *t, const struct ts_probe_sample *s, size_t n,
                    int regs, struct ts_probe_decision *out)
{
    uint64_t *v;                  /* per interpretation: n entries, then n exits */
    int64_t *tm;
    bool changed = false, any_moving = false;

    memset(out, 0, sizeof *out);
    if (n < TS_PROBE_SAMPLES_MIN || n > TS_PROBE_SAMPLES_MAX || (regs != 1 && regs != 2 && regs != 4) ||
        (t->width != 16 && t->width != 32 && t->width != 64) || (unsigned)t->order > TS_ORDER_DCBA ||
        regs < ts_width_regs(t->width))
        return TS_EINVAL;
    v = calloc(TS_PROBE_INTERP_MAX * 2 * n, sizeof *v);
    tm = calloc(n, sizeof *tm);
    if (!v || !tm) {
        free(v);
        free(tm);
        return TS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        tm[i] = s[i].t_ms;
        changed |= memcmp(s[i].entries, s[0].entries, (size_t)regs * 2) != 0 ||
                   memcmp(s[i].exits, s[0].exits, (size_t)regs * 2) != 0;
    }
    for (unsigned width = 16; width <= 64 && ts_width_regs(width) <= regs; width *= 2) {
        for (int o = TS_ORDER_ABCD; o <= TS_ORDER_DCBA; o++) {
            struct ts_probe_interp *in = &out->interp[out->n_interp];
            struct ts_probe_rule rule = {width, t->direction, t->max_rate_per_min};
            uint64_t *e = v + out->n_interp * 2 * n, *x = e + n;
            enum ts_probe_verdict ve, vx;
            char why_e[sizeof in->why - 16], why_x[sizeof in->why - 16];

            in->width = width;
            in->order = (enum ts_word_order)o;
            in->configured = width == t->width && in->order == t->order;
            if (in->configured)
                out->configured = out->n_interp;
            for (size_t i = 0; i < n; i++) {
                e[i] = ts_decode_regs(s[i].entries, width, in->order);
                x[i] = ts_decode_regs(s[i].exits, width, in->order);
            }
            in->entries_first = e[0];
            in->entries_last = e[n - 1];
            in->exits_first = x[0];
            in->exits_last = x[n - 1];
            ve = ts_probe_judge(&rule, e, tm, n, why_e, sizeof why_e);
            vx = ts_probe_judge(&rule, x, tm, n, why_x, sizeof why_x);
            if (ve == TS_PROBE_IMPLAUSIBLE || vx == TS_PROBE_IMPLAUSIBLE) {
                in->verdict = TS_PROBE_IMPLAUSIBLE;
                snprintf(in->why, sizeof in->why, "%s: %s", ve == TS_PROBE_IMPLAUSIBLE ? "entries" : "exits",
                         ve == TS_PROBE_IMPLAUSIBLE ? why_e : why_x);
            } else {
                in->verdict = ve == TS_PROBE_MOVING || vx == TS_PROBE_MOVING ? TS_PROBE_MOVING
                                                                            : TS_PROBE_STILL;
            }
            any_moving |= in->verdict == TS_PROBE_MOVING;
            out->n_interp++;
        }
    }

    /* The plausible ones: those that counted; if no register changed at all,
     * the still ones. The one to name: the widest plausible one, when all
     * plausible ones count the same people (moving) or read the same (still). */
    size_t first = TS_PROBE_INTERP_MAX;
    bool agree = true;
    for (size_t i = 0; i < out->n_interp; i++) {
        struct ts_probe_interp *in = &out->interp[i];
        in->plausible = any_moving ? in->verdict == TS_PROBE_MOVING
                                   : !changed && in->verdict == TS_PROBE_STILL;
        if (!in->plausible)
            continue;
        if (first == TS_PROBE_INTERP_MAX)
            first = i;
        else if (any_moving ? !same_counts(&out->interp[first], v + first * 2 * n, in, v + i * 2 * n, n)
                            : !equivalent(&out->interp[first], in))
            agree = false;
        if (agree)
            out->named = i; /* widths ascend: the last is the widest */
    }
    out->has_named = first != TS_PROBE_INTERP_MAX && agree;
    free(v);
    free(tm);

    const struct ts_probe_interp *c = &out->interp[out->configured];
    if (c->plausible)
        out->outcome = out->has_named ? TS_PROBE_RIGHT : TS_PROBE_UNDECIDED;
    else if (first != TS_PROBE_INTERP_MAX)
        out->outcome = TS_PROBE_WRONG;
    else
        out->outcome = c->verdict == TS_PROBE_STILL ? TS_PROBE_UNDECIDED : TS_PROBE_NONE;
    return TS_OK;
}

/* ---- the I/O --------------------------------------------------------------- */

struct pts {                      /* one turnstile under probe */
    const struct ts_turnstile_cfg *cfg;
    size_t src_index;             /* index within its device's source */
    int max_regs, regs;           /* registers per counter to try; regs: 0 until a read worked */
    struct ts_probe_sample *s;    /* the good reads (Modbus: raw registers) */
    uint64_t *ve, *vx;            /* the good reads (gpio, sim: counter values) */
    size_t n;
};

struct pdev {
    const struct ts_device_cfg *cfg;
    struct ts_source *src;
    const struct ts_turnstile_cfg **tcfg; /* the source's turnstiles (owned array) */
    struct pts **ts;              /* lent, into probe.ts */
    size_t n;
    int create_err;
    bool open;
    size_t ok, failed;            /* samples read in full, samples with a fault */
    int first_err;
    size_t first_err_sample;
};

struct pbus {
    struct probe *p;
    char key[TS_PATH_MAX + 16];
    size_t *devs;
    size_t n;
    pthread_t thread;
    bool started;
};

struct probe {
    const struct ts_agent_cfg *cfg;
    const struct ts_probe_opts *opts;
    volatile sig_atomic_t *stop;
    int64_t start_ms;
    struct pts *ts;               /* one per cfg->turnstiles */
    struct pdev *devs;            /* one per cfg->devices */
    struct pbus *buses;
    size_t n_buses;
};

static bool is_modbus(const struct ts_device_cfg *d)
{
    return d->kind == TS_HAL_MODBUS_TCP || d->kind == TS_HAL_MODBUS_RTU;
}

/* Sleeps until the monotonic time until_ms, or until *stop. */
static void wait_until(int64_t until_ms, volatile sig_atomic_t *stop)
{
    int64_t left;

    while (!*stop && (left = until_ms - ts_mono_ms()) > 0) {
        if (left > 100)
            left = 100;
        struct timespec ts = {0, (long)left * 1000000};
        nanosleep(&ts, NULL);
    }
}

static int read_pair(struct pdev *d, struct pts *t, int regs, struct ts_probe_sample *s)
{
    int rc = ts_source_read_regs(d->src, t->src_index, t->cfg->entries_address, regs, s->entries);
    return rc ? rc : ts_source_read_regs(d->src, t->src_index, t->cfg->exits_address, regs, s->exits);
}

/* Reads turnstile t once into its next sample. The first read that works
 * settles how many registers a counter gets: the widest the map leaves room
 * for, narrower while the device refuses, down to the configured width. */
static int read_turnstile(struct pdev *d, struct pts *t)
{
    struct ts_probe_sample *s = &t->s[t->n];
    int rc;

    memset(s, 0, sizeof *s);
    s->t_ms = ts_mono_ms();
    if (!is_modbus(d->cfg)) {
        rc = ts_source_read(d->src, t->src_index, &t->ve[t->n], &t->vx[t->n]);
    } else if (t->regs) {
        rc = read_pair(d, t, t->regs, s);
    } else {
        int conf = ts_width_regs(t->cfg->width);
        rc = TS_EINVAL;
        for (int r = t->max_regs; r >= conf; r /= 2) {
            if ((rc = read_pair(d, t, r, s)) == TS_OK) {
                t->regs = r;
                break;
            }
            TS_LOG(TS_LOG_DEBUG, "probe: turnstile %s: %d registers per counter: %s", t->cfg->name,
                   r, ts_strerror(rc));
            /* no answer at all: the configured count decides, one read more at most */
            if (rc < TS_EDEVICE_BASE && r / 2 > conf)
                r = conf * 2;
        }
    }
    if (rc == TS_OK)
        t->n++;
    return rc;
}

static void fail_sample(struct pdev *d, int err, size_t sample)
{
    if (d->failed++ == 0) {
        d->first_err = err;
        d->first_err_sample = sample;
    }
}

static void sample_device(struct pdev *d, size_t sample)
{
    int rc = TS_OK;

    if (!d->src)
        return fail_sample(d, d->create_err, sample);
    if (!d->open) {
        if ((rc = ts_source_open(d->src)) != TS_OK)
            return fail_sample(d, rc, sample);
        d->open = true;
    }
    for (size_t i = 0; i < d->n; i++) {
        if ((rc = read_turnstile(d, d->ts[i])) != TS_OK) {
            TS_LOG(TS_LOG_DEBUG, "probe: device %s turnstile %s sample %zu: %s", d->cfg->name,
                   d->ts[i]->cfg->name, sample + 1, ts_strerror(rc));
            /* the rest of the device waits for the next sample: one fault, one timeout */
            ts_source_close(d->src);
            d->open = false;
            return fail_sample(d, rc, sample);
        }
    }
    d->ok++;
}

static void *bus_main(void *arg)
{
    struct pbus *b = arg;
    struct probe *p = b->p;

    for (int s = 0; s < p->opts->samples && !*p->stop; s++) {
        wait_until(p->start_ms + (int64_t)s * p->opts->interval_ms, p->stop);
        if (*p->stop)
            break;
        for (size_t i = 0; i < b->n; i++)
            sample_device(&p->devs[b->devs[i]], (size_t)s);
    }
    return NULL;
}

static int setup(struct probe *p)
{
    const struct ts_agent_cfg *cfg = p->cfg;
    size_t samples = (size_t)p->opts->samples;

    p->ts = calloc(cfg->n_turnstiles ? cfg->n_turnstiles : 1, sizeof *p->ts);
    p->devs = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof *p->devs);
    p->buses = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof *p->buses);
    if (!p->ts || !p->devs || !p->buses)
        return TS_ENOMEM;
    for (size_t i = 0; i < cfg->n_turnstiles; i++) {
        struct pts *t = &p->ts[i];
        const struct ts_turnstile_cfg *tc = cfg->turnstiles[i];
        int conf = ts_width_regs(tc->width);
        int gap = abs(tc->exits_address - tc->entries_address);
        int hi = tc->exits_address > tc->entries_address ? tc->exits_address : tc->entries_address;

        t->cfg = tc;
        t->max_regs = 4;
        while (t->max_regs > conf && (t->max_regs > gap || hi + t->max_regs > 65536))
            t->max_regs /= 2;
        t->s = calloc(samples, sizeof *t->s);
        t->ve = calloc(samples, sizeof *t->ve);
        t->vx = calloc(samples, sizeof *t->vx);
        if (!t->s || !t->ve || !t->vx)
            return TS_ENOMEM;
    }
    for (size_t d = 0; d < cfg->n_devices; d++) {
        struct pdev *dev = &p->devs[d];
        dev->cfg = cfg->devices[d];
        dev->tcfg = calloc(cfg->n_turnstiles ? cfg->n_turnstiles : 1, sizeof *dev->tcfg);
        dev->ts = calloc(cfg->n_turnstiles ? cfg->n_turnstiles : 1, sizeof *dev->ts);
        if (!dev->tcfg || !dev->ts)
            return TS_ENOMEM;
        for (size_t i = 0; i < cfg->n_turnstiles; i++) {
            if (cfg->turnstiles[i]->device_index == d) {
                p->ts[i].src_index = dev->n;
                dev->ts[dev->n] = &p->ts[i];
                dev->tcfg[dev->n++] = cfg->turnstiles[i];
            }
        }
        if (dev->n == 0)
            continue; /* serves no turnstile: nothing to probe */
        dev->create_err = ts_source_new(dev->cfg, dev->tcfg, dev->n, &dev->src);
        char key[TS_PATH_MAX + 16];
        size_t b;
        ts_hal_bus_key(dev->cfg, key, sizeof key);
        for (b = 0; b < p->n_buses && strcmp(p->buses[b].key, key) != 0; b++)
            ;
        if (b == p->n_buses) {
            p->n_buses++;
            p->buses[b].p = p;
            snprintf(p->buses[b].key, sizeof p->buses[b].key, "%s", key);
            p->buses[b].devs = calloc(cfg->n_devices, sizeof *p->buses[b].devs);
            if (!p->buses[b].devs)
                return TS_ENOMEM;
        }
        p->buses[b].devs[p->buses[b].n++] = d;
    }
    return TS_OK;
}

static void teardown(struct probe *p)
{
    for (size_t d = 0; p->devs && d < p->cfg->n_devices; d++) {
        ts_source_free(p->devs[d].src); /* closes it */
        free(p->devs[d].tcfg);
        free(p->devs[d].ts);
    }
    for (size_t i = 0; p->ts && i < p->cfg->n_turnstiles; i++) {
        free(p->ts[i].s);
        free(p->ts[i].ve);
        free(p->ts[i].vx);
    }
    for (size_t b = 0; p->buses && b < p->n_buses; b++)
        free(p->buses[b].devs);
    free(p->ts);
    free(p->devs);
    free(p->buses);
}

/* ---- the report ------------------------------------------------------------ */

static const char *dir_name(enum ts_direction d)
{
    return d == TS_DIR_UP ? "up" : d == TS_DIR_DOWN ? "down" : "auto";
}

static void print_device(FILE *out, const struct probe *p, const struct pdev *d)
{
    char what[TS_PATH_MAX + 64];
    size_t tried = d->ok + d->failed;

    ts_device_describe(d->cfg, what, sizeof what);
    if (d->n == 0)
        fprintf(out, "device %s (%s): serves no turnstile, not probed\n", d->cfg->name, what);
    else if (d->failed == 0)
        fprintf(out, "device %s (%s): read at %zu of %zu samples\n", d->cfg->name, what, d->ok, tried);
    else
        fprintf(out, "device %s (%s): unreadable at %zu of %zu samples: %s (first at sample %zu)\n",
                d->cfg->name, what, d->failed, tried, ts_strerror(d->first_err),
                d->first_err_sample + 1);
    (void)p;
}

static void format_range(char *buf, size_t size, uint64_t first, uint64_t last)
{
    snprintf(buf, size, "%" PRIu64 "..%" PRIu64, first, last);
}

static void format_regs(char *buf, size_t size, const uint16_t *r, int n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%04x", i ? " " : "", r[i]);
}

static void print_interp(char *buf, size_t size, const struct ts_probe_interp *in)
{
    snprintf(buf, size, "width %u order %s", in->width, ts_word_order_name(in->order));
}

/* "width 32 order ABCD, width 32 order CDAB": the plausible ones. */
static void list_plausible(char *buf, size_t size, const struct ts_probe_decision *d, bool but_configured)
{
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < d->n_interp && len < size; i++) {
        if (!d->interp[i].plausible || (but_configured && i == d->configured))
            continue;
        char one[48];
        print_interp(one, sizeof one, &d->interp[i]);
        len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "", one);
    }
}

/* Prints a Modbus turnstile's table and verdict; returns its exit status. */
static int report_modbus(FILE *out, const struct probe *p, const struct pts *t, const struct pdev *dev)
{
    const struct ts_turnstile_cfg *tc = t->cfg;
    struct ts_probe_decision d;
    char conf[48], list[512];

    fprintf(out, "  sample  time_s  entries_regs         exits_regs\n");
    for (size_t i = 0; i < t->n; i++) {
        char e[32], x[32];
        format_regs(e, sizeof e, t->s[i].entries, t->regs);
        format_regs(x, sizeof x, t->s[i].exits, t->regs);
        fprintf(out, "  %6zu %7.3f  %-20s %s\n", i + 1, (double)(t->s[i].t_ms - p->start_ms) / 1000.0,
                e, x);
    }
    if (t->n < TS_PROBE_SAMPLES_MIN || ts_probe_decide(tc, t->s, t->n, t->regs, &d) != TS_OK) {
        fprintf(out, "verdict %s: unreadable: device %s: %s (read at %zu of %zu samples)\n", tc->name,
                dev->cfg->name, dev->failed ? ts_strerror(dev->first_err) : "too few samples", t->n,
                dev->ok + dev->failed);
        return TS_PROBE_EXIT_UNREADABLE;
    }
    fprintf(out, "  width order verdict      entries (first..last)      exits (first..last)        notes\n");
    for (size_t i = 0; i < d.n_interp; i++) {
        const struct ts_probe_interp *in = &d.interp[i];
        char e[48], x[48], row[512];
        size_t len;
        format_range(e, sizeof e, in->entries_first, in->entries_last);
        format_range(x, sizeof x, in->exits_first, in->exits_last);
        snprintf(row, sizeof row, "  %-5u %-5s %-12s %-26s %-26s %s%s%s%s%s", in->width,
                 ts_word_order_name(in->order),
                 in->verdict == TS_PROBE_MOVING ? "moving"
                 : in->verdict == TS_PROBE_STILL ? "still" : "implausible",
                 e, x, in->plausible ? "plausible" : "", in->plausible && in->configured ? ", " : "",
                 in->configured ? "configured" : "", in->why[0] && in->configured ? ": " : "", in->why);
        for (len = strlen(row); len > 0 && row[len - 1] == ' '; len--)
            row[len - 1] = 0;
        fprintf(out, "%s\n", row);
    }
    const struct ts_probe_interp *c = &d.interp[d.configured];
    print_interp(conf, sizeof conf, c);
    switch (d.outcome) {
    case TS_PROBE_RIGHT:
        fprintf(out, "verdict %s: right: %s (configured) gives plausible counters%s\n", tc->name, conf,
                c->verdict == TS_PROBE_STILL ? ", though they did not move" : "");
        return TS_PROBE_EXIT_OK;
    case TS_PROBE_UNDECIDED:
        list_plausible(list, sizeof list, &d, true);
        fprintf(out, "verdict %s: undecided: %s (configured) is %s%s%s; %s\n", tc->name, conf,
                c->plausible ? "plausible" : "still", list[0] ? ", so is " : "", list,
                c->verdict == TS_PROBE_STILL
                    ? "the counters did not move: probe again while people pass"
                    : "nothing in these samples tells them apart: probe again, longer");
        return TS_PROBE_EXIT_OK;
    case TS_PROBE_WRONG:
        list_plausible(list, sizeof list, &d, false);
        fprintf(out, "verdict %s: wrong: %s (configured) is %s%s; plausible: %s", tc->name, conf,
                c->verdict == TS_PROBE_STILL ? "still while others count" : "implausible: ",
                c->verdict == TS_PROBE_STILL ? "" : c->why, list);
        if (d.has_named)
            fprintf(out, "; set width = %u and order = %s in [turnstile %s]", d.interp[d.named].width,
                    ts_word_order_name(d.interp[d.named].order), tc->name);
        fprintf(out, "\n");
        return TS_PROBE_EXIT_WRONG;
    case TS_PROBE_NONE:
        fprintf(out, "verdict %s: implausible: no width and order gives plausible counters (%s: %s);"
                     " check entries_address, exits_address, register_type, direction and"
                     " max_rate_per_min\n", tc->name, conf, c->why);
        return TS_PROBE_EXIT_IMPLAUSIBLE;
    }
    return TS_PROBE_EXIT_OK;
}

/* gpio and sim: counter values, no register map to check. */
static int report_values(FILE *out, const struct probe *p, const struct pts *t, const struct pdev *dev)
{
    const struct ts_turnstile_cfg *tc = t->cfg;
    int64_t tm[TS_PROBE_SAMPLES_MAX];
    char why_e[160], why_x[160];

    fprintf(out, "  sample  time_s  entries              exits\n");
    for (size_t i = 0; i < t->n; i++) {
        tm[i] = t->s[i].t_ms;
        fprintf(out, "  %6zu %7.3f  %-20" PRIu64 " %" PRIu64 "\n", i + 1,
                (double)(t->s[i].t_ms - p->start_ms) / 1000.0, t->ve[i], t->vx[i]);
    }
    if (t->n < TS_PROBE_SAMPLES_MIN) {
        fprintf(out, "verdict %s: unreadable: device %s: %s (read at %zu of %zu samples)\n", tc->name,
                dev->cfg->name, dev->failed ? ts_strerror(dev->first_err) : "too few samples", t->n,
                dev->ok + dev->failed);
        return TS_PROBE_EXIT_UNREADABLE;
    }
    if (dev->cfg->kind == TS_HAL_GPIO) {
        fprintf(out, "verdict %s: pulses: %" PRIu64 " entries, %" PRIu64 " exits in %.3f s"
                     " (gpio: no register map to check)\n", tc->name, t->ve[t->n - 1],
                t->vx[t->n - 1], (double)(t->s[t->n - 1].t_ms - t->s[0].t_ms) / 1000.0);
        return TS_PROBE_EXIT_OK;
    }
    struct ts_probe_rule rule = {tc->width, tc->direction, tc->max_rate_per_min};
    enum ts_probe_verdict ve = ts_probe_judge(&rule, t->ve, tm, t->n, why_e, sizeof why_e);
    enum ts_probe_verdict vx = ts_probe_judge(&rule, t->vx, tm, t->n, why_x, sizeof why_x);
    if (ve == TS_PROBE_IMPLAUSIBLE || vx == TS_PROBE_IMPLAUSIBLE) {
        fprintf(out, "verdict %s: implausible: %s: %s (sim: no register map to check)\n", tc->name,
                ve == TS_PROBE_IMPLAUSIBLE ? "entries" : "exits",
                ve == TS_PROBE_IMPLAUSIBLE ? why_e : why_x);
        return TS_PROBE_EXIT_IMPLAUSIBLE;
    }
    fprintf(out, "verdict %s: right: the simulated counters are plausible%s (sim: no register map"
                 " to check)\n", tc->name,
            ve == TS_PROBE_STILL && vx == TS_PROBE_STILL ? ", though they did not move" : "");
    return TS_PROBE_EXIT_OK;
}

/* The first of WRONG, UNREADABLE, IMPLAUSIBLE that occurs wins. */
static int worse(int a, int b)
{
    static const int rank[] = {[TS_PROBE_EXIT_OK] = 0, [TS_PROBE_EXIT_IMPLAUSIBLE] = 1,
                               [TS_PROBE_EXIT_UNREADABLE] = 2, [TS_PROBE_EXIT_WRONG] = 3};
    return rank[b] > rank[a] ? b : a;
}

int ts_probe_run(const struct ts_agent_cfg *cfg, const struct ts_probe_opts *opts, FILE *out,
                 volatile sig_atomic_t *stop)
{
    struct probe p = {.cfg = cfg, .opts = opts, .stop = stop};
    int rc, status = TS_PROBE_EXIT_OK;
    char range[64];

    if ((rc = setup(&p)) != TS_OK) {
        teardown(&p);
        TS_LOG(TS_LOG_ERR, "probe: %s", ts_strerror(rc));
        return 1;
    }
    fprintf(out, "probe: %d samples %d ms apart; devices %zu, turnstiles %zu\n", opts->samples,
            opts->interval_ms, cfg->n_devices, cfg->n_turnstiles);
    fflush(out);
    p.start_ms = ts_mono_ms();
    for (size_t b = 0; b < p.n_buses; b++) {
        int e = pthread_create(&p.buses[b].thread, NULL, bus_main, &p.buses[b]);
        if (e) { /* probe this bus here instead: slower, still bounded */
            bus_main(&p.buses[b]);
            continue;
        }
        p.buses[b].started = true;
    }
    for (size_t b = 0; b < p.n_buses; b++)
        if (p.buses[b].started)
            pthread_join(p.buses[b].thread, NULL);

    for (size_t d = 0; d < cfg->n_devices; d++) {
        print_device(out, &p, &p.devs[d]);
        if (p.devs[d].failed)
            status = worse(status, TS_PROBE_EXIT_UNREADABLE);
    }
    for (size_t i = 0; i < cfg->n_turnstiles; i++) {
        const struct pts *t = &p.ts[i];
        const struct pdev *dev = &p.devs[t->cfg->device_index];
        const struct ts_turnstile_cfg *tc = t->cfg;

        fprintf(out, "\nturnstile %s: device %s", tc->name, dev->cfg->name);
        if (is_modbus(dev->cfg)) {
            snprintf(range, sizeof range, "%d register%s", t->regs, t->regs == 1 ? "" : "s");
            fprintf(out, ", %s registers, entries at %d, exits at %d, read %s each;"
                         " configured width %u order %s",
                    tc->reg_type == TS_REG_INPUT ? "input" : "holding", tc->entries_address,
                    tc->exits_address, t->regs ? range : "no register", tc->width,
                    ts_word_order_name(tc->order));
        }
        fprintf(out, ", direction %s, max_rate_per_min %g\n", dir_name(tc->direction),
                tc->max_rate_per_min);
        status = worse(status, is_modbus(dev->cfg) ? report_modbus(out, &p, t, dev)
                                                   : report_values(out, &p, t, dev));
    }
    static const char *const meaning[] = {
        [TS_PROBE_EXIT_OK] = "every configured register map gives plausible counters or is undecided",
        [TS_PROBE_EXIT_WRONG] = "a configured register map is implausible while another one is plausible",
        [TS_PROBE_EXIT_UNREADABLE] = "a device could not be read at every sample",
        [TS_PROBE_EXIT_IMPLAUSIBLE] = "a turnstile's counters are implausible in every register map",
    };
    fprintf(out, "\nprobe: exit %d: %s%s\n", status, meaning[status],
            *stop ? " (stopped early by a signal)" : "");
    teardown(&p);
    return status;
}
