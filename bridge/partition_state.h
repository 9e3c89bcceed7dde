/* SPDX-License-Identifier: Apache-2.0 */
/* partition_state.h - what a partition's checkpoint holds besides its files
 * and offsets: the agents' duplicate-removal sets and the open windows.
 *
 * Text, carried as the opaque state of a lake checkpoint (lake.h):
 *   ts-bridge-state 2
 *   archive <name or -> <size> <crc32, 8 hex digits> <agents>
 *   seqsets <byte count>
 *   <the sets in memory, seqset.h's table form>window <byte count>
 *   <the windows, window.h's form>
 * The archive line names the file of the agents that went idle
 * (agent_archive.h); "-" when there is none. Version 1, written before the
 * archive existed (no archive line), is still read.
 * Pure: no I/O. */
#ifndef TS_PARTITION_STATE_H
#define TS_PARTITION_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "agent_archive.h"
#include "seqset.h"
#include "window.h"

/* Writes the state of sets, win and archive (may be NULL: none) into a
 * malloc'ed *out of *len bytes (the caller frees). TS_OK or TS_ENOMEM. */
int ts_partition_state_encode(const struct ts_seqsets *sets, const struct ts_window_agg *win,
                              const struct ts_archive_ref *archive, char **out, size_t *len);

/* Reads len bytes of state into sets (replaced), win (fresh, as
 * ts_window_decode wants; now_ms is its processing time) and *archive
 * (name "" when none). TS_OK; TS_EPARSE, TS_EFULL or TS_ENOMEM with a
 * sentence in why. */
int ts_partition_state_decode(const char *buf, size_t len, struct ts_seqsets *sets,
                              struct ts_window_agg *win, int64_t now_ms,
                              struct ts_archive_ref *archive, char *why, size_t why_size);

#endif
