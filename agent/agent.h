/* SPDX-License-Identifier: Apache-2.0 */
/* agent.h - turnstile-agent's main loop: poller -> tally -> store -> publisher.
 *
 * Every poll cycle's samples become readings, appended to the store in one
 * transaction with the counter state; the publisher drains the store in
 * sequence order within its window; the acknowledgement deletes rows. The
 * loop also keeps the retained state and status topics fresh and pings the
 * systemd watchdog. Without [mqtt] the readings are printed on stdout (and,
 * with a [store], deleted once printed). */
#ifndef TS_AGENT_H
#define TS_AGENT_H

#include <signal.h>
#include <stdbool.h>

#include "agent_config.h"

struct ts_agent_opts {
    double duration_s;        /* stop after this long; 0: until *stop */
    bool print;               /* print readings on stdout (the default without [mqtt]) */
};

/* Runs until *stop becomes non-zero (a signal handler sets it) or the
 * duration passes: then finishes the cycle, flushes, disconnects cleanly.
 * Returns TS_OK or the error that made it impossible to start. */
int ts_agent_run(const struct ts_agent_cfg *cfg, const struct ts_agent_opts *opts,
                 volatile sig_atomic_t *stop);

#endif
