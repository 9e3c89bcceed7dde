/* SPDX-License-Identifier: Apache-2.0 */
/* outbox.h - the readings between the tally and the publisher.
 *
 * The outbox owns the store (when the config has one) and speaks its
 * protocol with the publisher (docs/store.md, docs/mqtt.md): fetch after
 * what was sent, mark published, send, with no append in between; delete
 * what the acknowledgement covers, in batches (each delete is a commit);
 * renumber a new store past an acknowledgement the bridge already holds, or
 * refuse an absurd one and publish nothing meanwhile. Without a publisher
 * the readings are numbered (and printed, with print) here or, with a
 * store, printed from it and deleted once printed.
 *
 * One thread: every call from the agent's main loop. */
#ifndef TS_OUTBOX_H
#define TS_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_config.h"
#include "publisher.h"
#include "reading.h"
#include "state_json.h"
#include "store.h"

struct ts_outbox;

/* Opens the outbox and, if cfg->has_store, the store (errors as
 * ts_store_open, with a sentence in why). cfg is lent and must outlive the
 * outbox. print: readings go to stdout while no publisher is attached. */
int ts_outbox_open(const struct ts_agent_cfg *cfg, bool print, struct ts_outbox **out,
                   char *why, size_t why_size);

/* The saved tally state, as ts_store_load_state; without a store TS_OK and
 * *len 0. */
int ts_outbox_load_state(struct ts_outbox *o, void *buf, size_t cap, size_t *len);

/* Lends the publisher (it must outlive every later call but
 * ts_outbox_close) and tells it what the store acknowledged and may have
 * published. Call before ts_publisher_start. */
void ts_outbox_attach(struct ts_outbox *o, struct ts_publisher *pub);

/* Keeps a poll cycle's readings with the tally's state (state, len: lent;
 * NULL: unchanged): appended to the store, which numbers them (a full disk
 * holds them in memory, logged), or numbered here without a store. r's seq
 * fields are set (0 while held in memory). */
void ts_outbox_put(struct ts_outbox *o, struct ts_reading *r, size_t n, const void *state,
                   size_t len);

/* One turn of the publishing protocol: retries what the store holds in
 * memory, renumbers if the publisher asks, deletes what is acknowledged,
 * sends what the window has room for. Nothing without a publisher. */
void ts_outbox_pump(struct ts_outbox *o);

/* The store's figures: true and *st filled, or false (no store). */
bool ts_outbox_store_stats(struct ts_outbox *o, struct ts_store_stats *st);

/* Readings kept and not yet acknowledged (0 without a store). */
uint64_t ts_outbox_backlog(struct ts_outbox *o);

/* What the status says about acknowledgements: the publisher's refusals
 * (above what was published) and the outbox's (renumbering). error is a
 * static string. All zero without a publisher. */
struct ts_ack_status ts_outbox_ack_status(struct ts_outbox *o);

/* At shutdown, before ts_publisher_free: a last pump, up to 2 s for what is
 * in flight to be acknowledged, and the store deletes what was. */
void ts_outbox_settle(struct ts_outbox *o);

/* Writes what the store holds in memory if it can, logs the store's figures
 * and closes it. NULL-safe. */
void ts_outbox_close(struct ts_outbox *o);

#endif
