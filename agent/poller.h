/* SPDX-License-Identifier: Apache-2.0 */
/* poller.h - reads every device on its own schedule, never letting one
 * device stall another.
 *
 * One thread per bus: a Modbus TCP device, a gpiochip or the simulator is a
 * bus of its own; the slaves of one RS-485 line share one bus, so one thread
 * polls them one after the other (never two pollers on one tty). A device
 * fault is logged with the device and the reason, counted, and backed off
 * (doubling from backoff_min_ms to backoff_max_ms); the other devices on the
 * bus go on. Samples are queued for the main thread. */
#ifndef TS_POLLER_H
#define TS_POLLER_H

#include <stddef.h>
#include <stdint.h>

#include "agent_config.h"
#include "hal.h"

struct ts_sample {
    size_t turnstile;         /* index into cfg->turnstiles */
    uint64_t entries, exits;  /* raw cumulative register values */
    int64_t mono_ms;          /* monotonic clock of the read (clock.h stamps it) */
};

struct ts_poller;

/* Creates the sources of every device of cfg (lent; must outlive the poller).
 * TS_OK with *out set, or an error (logged) with nothing allocated. */
int ts_poller_new(const struct ts_agent_cfg *cfg, struct ts_poller **out);

/* Starts the bus threads. */
int ts_poller_start(struct ts_poller *p);

/* Moves up to max queued samples into out, waiting up to timeout_ms for the
 * first one. Returns the number moved. Samples keep their poll order. */
size_t ts_poller_take(struct ts_poller *p, struct ts_sample *out, size_t max, int timeout_ms);

/* Makes a waiting ts_poller_take return early (from any thread). */
void ts_poller_wake(struct ts_poller *p);

/* Copies the health of device i (index into cfg->devices). */
void ts_poller_device_stats(struct ts_poller *p, size_t i, struct ts_device_stats *out);

/* Stops and joins the threads. Safe to call twice. */
void ts_poller_stop(struct ts_poller *p);

/* Stops if needed and frees everything. NULL-safe. */
void ts_poller_free(struct ts_poller *p);

#endif
