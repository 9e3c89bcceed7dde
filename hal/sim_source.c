/* SPDX-License-Identifier: Apache-2.0 */
/* sim_source.c - the built-in simulator backend (kind = sim): replays an MTA
 * turnstile file in process, no Modbus. Simulated time = cfg->sim_start_ms
 * (0: the file's first reading) + real time since the first open (or read)
 * * cfg->speed. Turnstiles are matched by C/A, UNIT and SCP. */
#include <stdlib.h>
#include <time.h>

#include "err.h"
#include "hal_private.h"
#include "log.h"
#include "mta_file.h"
#include "now.h"
#include "replay.h"

struct sim_state {
    struct ts_mta_data *data;
    const struct ts_mta_turnstile **map; /* per src->turnstiles[i], borrowed from data */
    int64_t start_ms;         /* simulated time at t0 */
    int64_t t0_ns;            /* real (monotonic) time of the first open */
    int started;
};

static void sim_destroy(struct ts_source *src)
{
    struct sim_state *st = src->data;

    if (!st)
        return;
    free(st->map);
    ts_mta_free(st->data);
    free(st);
    src->data = NULL;
}

/* Loads only the configured turnstiles; TS_ENOTFOUND names the first missing one. */
static int load(struct ts_source *src, struct sim_state *st)
{
    const struct ts_device_cfg *cfg = src->cfg;
    struct ts_mta_key *keys = calloc(src->n_turnstiles ? src->n_turnstiles : 1, sizeof *keys);
    struct ts_mta_filter filter = {.keys = keys, .n_keys = src->n_turnstiles};
    char err[512];
    int rc;

    if (!keys)
        return TS_ENOMEM;
    for (size_t i = 0; i < src->n_turnstiles; i++)
        keys[i] = (struct ts_mta_key){src->turnstiles[i]->ca, src->turnstiles[i]->unit,
                                      src->turnstiles[i]->scp};
    rc = ts_mta_load(cfg->mta_file, &filter, &st->data, err, sizeof err);
    free(keys);
    if (rc) {
        TS_LOG(TS_LOG_ERR, "device %s: %s", cfg->name, err);
        return rc;
    }
    ts_replay_prepare(st->data);
    for (size_t i = 0; i < src->n_turnstiles; i++) {
        const struct ts_turnstile_cfg *t = src->turnstiles[i];
        st->map[i] = ts_mta_find(st->data, t->ca, t->unit, t->scp);
        if (!st->map[i]) {
            TS_LOG(TS_LOG_ERR, "device %s: turnstile %s (%s/%s/%s) is not in %s", cfg->name,
                   t->name, t->ca, t->unit, t->scp, cfg->mta_file);
            return TS_ENOTFOUND;
        }
    }
    return TS_OK;
}

static int sim_create(struct ts_source *src)
{
    struct sim_state *st;
    int rc;

    if (!(src->cfg->speed > 0)) {
        TS_LOG(TS_LOG_ERR, "device %s: speed must be > 0", src->cfg->name);
        return TS_ECONFIG;
    }
    st = calloc(1, sizeof *st);
    if (!st)
        return TS_ENOMEM;
    src->data = st;
    st->map = calloc(src->n_turnstiles ? src->n_turnstiles : 1, sizeof *st->map);
    if (!st->map)
        return TS_ENOMEM; /* the caller's destroy frees st */
    if ((rc = load(src, st)) != TS_OK)
        return rc;
    st->start_ms = src->cfg->sim_start_ms ? src->cfg->sim_start_ms : st->data->file_first_ms;
    TS_LOG(TS_LOG_INFO, "device %s: replaying %zu turnstiles of %s from %lld ms at speed %g",
           src->cfg->name, src->n_turnstiles, src->cfg->mta_file, (long long)st->start_ms,
           src->cfg->speed);
    return TS_OK;
}

static void start_clock(struct sim_state *st)
{
    if (!st->started) {
        st->t0_ns = ts_mono_ns();
        st->started = 1;
    }
}

static int sim_open(struct ts_source *src)
{
    start_clock(src->data);
    return TS_OK;
}

static int sim_read(struct ts_source *src, size_t i, uint64_t *entries, uint64_t *exits)
{
    struct sim_state *st = src->data;
    unsigned width = src->turnstiles[i]->width;
    double real_ms;

    if (i >= src->n_turnstiles)
        return TS_EINVAL;
    start_clock(st);
    real_ms = (double)(ts_mono_ns() - st->t0_ns) / 1e6;
    ts_replay_at(st->map[i], st->start_ms + (int64_t)(real_ms * src->cfg->speed), NULL, entries,
                 exits);
    if (width == 16 || width == 32) { /* what a register of that width would hold */
        *entries &= (UINT64_C(1) << width) - 1;
        *exits &= (UINT64_C(1) << width) - 1;
    }
    return TS_OK;
}

const struct ts_hal_backend ts_backend_sim = {
    .name = "sim",
    .create = sim_create,
    .open = sim_open,
    .read = sim_read,
    .destroy = sim_destroy,
};
