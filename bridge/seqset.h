/* SPDX-License-Identifier: Apache-2.0 */
/* seqset.h - which sequence numbers of each agent the bridge has seen.
 *
 * A reading "<agent_id>:<seq>" with MERGED_FROM m stands for the numbers
 * m..seq (docs/reading-format.md). Per agent the set gives duplicate removal
 * (a reading whose seq was seen is a duplicate) and the acknowledgement
 * (ts_seqset_contiguous: every number 1..N seen). Why and how the bridge
 * uses them: docs/bridge.md.
 *
 * A set holds contiguous plus at most max_ranges disjoint ranges above it
 * (16 bytes each). An add that would need one more range returns TS_EFULL
 * and records nothing; the aggregator then counts the reading as held and
 * drops it (no dead letter, no retry of its own): the ack stays below it, so
 * the agent keeps the row and re-sends it later (docs/mqtt.md).
 *
 * A reading whose seq is new but whose merged range covers a number already
 * seen is refused (TS_ECONFLICT, nothing changes): an agent merges only
 * readings it never published, so first come wins (docs/bridge.md,
 * "MERGED_FROM"). ts_seqset_add takes any range.
 *
 * Text form (the manifest, docs/lake.md), canonical and strict:
 *   set    = number [ ";" range *( "," range ) ]
 *   range  = number | number "-" number        lo alone when lo == hi, else lo < hi
 *   number = "0" | [1-9][0-9]*                 fits in 64 bits
 * the first number is contiguous, the ranges ascend, each starts above
 * contiguous + 1 and above the previous range's hi + 1 ("0", "1200",
 * "1200;1205-1290,1300"); encode(decode(t)) == t for every accepted t.
 *
 * Not thread-safe: one thread uses a set or a table. */
#ifndef TS_SEQSET_H
#define TS_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hashtab.h"

#define TS_SEQSET_MAX_RANGES 4096 /* default bound on ranges per set (64 KiB) */

struct ts_seqrange {
    uint64_t lo, hi; /* lo <= hi */
};

/* One agent's numbers. The fields are private: use the functions below. */
struct ts_seqset {
    uint64_t contiguous;      /* every number 1..contiguous is in the set */
    struct ts_seqrange *buf;  /* ranges live at buf[off .. off + n) */
    size_t off, n, cap;
    size_t max_ranges;
    int64_t touched_ms;       /* the caller's: when the agent was last seen (0 after init;
                                 not part of the text form) */
    uint64_t epoch;           /* the caller's bookkeeping (0 after init; not in the text) */
    uint64_t batch;           /* the caller's too (0 after init; not in the text) */
    uint32_t batch_slot;
};

/* Starts an empty set whose numbers 1..floor count as seen (floor 0: none;
 * an agent told to start its numbering at F + 1 has floor F), with
 * max_ranges = TS_SEQSET_MAX_RANGES. Allocates nothing. */
void ts_seqset_init(struct ts_seqset *s, uint64_t floor);

/* Frees the ranges; NULL-safe. s may be initialized again afterwards. */
void ts_seqset_free(struct ts_seqset *s);

/* Sets the bound on ranges (>= 1). TS_EINVAL if max is 0 or below the
 * ranges the set holds now. */
int ts_seqset_set_max_ranges(struct ts_seqset *s, size_t max);

/* True if seq was seen (seq <= contiguous or inside a range). */
bool ts_seqset_contains(const struct ts_seqset *s, uint64_t seq);

/* True if any number of lo..hi was seen (false if lo > hi; 0 is never seen). */
bool ts_seqset_contains_any(const struct ts_seqset *s, uint64_t lo, uint64_t hi);

/* Adds the numbers lo..hi (1 <= lo <= hi), joining ranges and advancing
 * contiguous when the lowest range touches it. *added (may be NULL) gets how
 * many of them were new (0 if all were seen). TS_EINVAL for lo == 0 or
 * lo > hi; TS_EFULL if a new range would exceed max_ranges; TS_ENOMEM. On
 * any error the set is unchanged and *added is 0. */
int ts_seqset_add(struct ts_seqset *s, uint64_t lo, uint64_t hi, uint64_t *added);

/* The highest N with every number 1..N seen: the acknowledgement. */
uint64_t ts_seqset_contiguous(const struct ts_seqset *s);

/* How many ranges lie above contiguous (the gaps outstanding). */
size_t ts_seqset_ranges(const struct ts_seqset *s);

/* Range i (0 <= i < ts_seqset_ranges(s)), in ascending order. */
struct ts_seqrange ts_seqset_range(const struct ts_seqset *s, size_t i);

/* A buffer size (with the NUL) that always holds the text form of s. */
size_t ts_seqset_encode_size(const struct ts_seqset *s);

/* Writes the text form of s into buf (NUL-terminated). Returns its length,
 * or -TS_EFULL if buf is too small (buf then holds "" if size > 0). */
int ts_seqset_encode(const struct ts_seqset *s, char *buf, size_t size);

/* Parses len bytes of text form (no NUL or newline needed or allowed) into
 * s, which must have been initialized: on success s holds exactly the parsed
 * numbers and keeps its max_ranges. TS_EPARSE for anything but the
 * canonical form above, TS_EFULL for more ranges than max_ranges, TS_ENOMEM.
 * On error s is unchanged. */
int ts_seqset_decode(struct ts_seqset *s, const char *text, size_t len);

/* The table: one set per agent id, in a hash table that owns copies of the
 * ids. The fields are private. A set's address stays the same for the life
 * of the table (entries are allocated one by one), so a caller may keep the
 * pointer that ts_seqsets_get returned. */
struct ts_seqsets_entry;
struct ts_seqsets {
    struct ts_hashtab index;         /* id -> struct ts_seqsets_entry * */
    size_t max_ranges;               /* given to every new set */
};

/* Starts an empty table; new sets get max_ranges (0: TS_SEQSET_MAX_RANGES).
 * Allocates nothing. */
void ts_seqsets_init(struct ts_seqsets *t, size_t max_ranges);

/* Frees every set and id; NULL-safe. t may be initialized again. */
void ts_seqsets_free(struct ts_seqsets *t);

/* Number of agents. */
size_t ts_seqsets_count(const struct ts_seqsets *t);

/* The set of agent, or NULL if the table has none. */
struct ts_seqset *ts_seqsets_find(const struct ts_seqsets *t, const char *agent);

/* The set of agent, created (floor 0) if the table has none: *set is owned
 * by the table. The id is copied; it must pass ts_id_ok (letters, digits,
 * '.', '_', '-') and be shorter than TS_ID_MAX, else TS_EINVAL. TS_ENOMEM.
 * An agent that starts its numbering at F + 1 is set up with
 * ts_seqset_add(set, 1, F) (harmless if the set is already past F). */
int ts_seqsets_get(struct ts_seqsets *t, const char *agent, struct ts_seqset **set);

/* Iterates the agents in no particular order: start with *cursor = 0; each
 * call stores the next agent's id (owned by the table) and set and returns
 * true, or returns false at the end. The sets may be changed during an
 * iteration; agents must not be added (ts_seqsets_get of a new id, decode). */
bool ts_seqsets_next(const struct ts_seqsets *t, size_t *cursor, const char **agent,
                     struct ts_seqset **set);

/* The text form of the whole table: one line "agent_id<TAB>set\n" per
 * agent, in ascending byte order of the ids (so a manifest is reproducible).
 * *text is malloc'ed and NUL-terminated (the caller frees it), *len its
 * length without the NUL (len may be NULL). TS_ENOMEM. */
int ts_seqsets_encode(const struct ts_seqsets *t, char **text, size_t *len);

/* Replaces the contents of t (initialized) by the parsed table. Strict:
 * every line, including the last, ends with '\n'; ids as for
 * ts_seqsets_get, each at most once; sets as for ts_seqset_decode, bounded by
 * t's max_ranges. Empty text: an empty table. TS_EPARSE (or TS_EFULL), with
 * the 1-based number of the offending line in *line (may be NULL; 0 if no
 * line is at fault); TS_ENOMEM. On error t is unchanged. */
int ts_seqsets_decode(struct ts_seqsets *t, const char *text, size_t len, size_t *line);

/* ts_seqset_accept on one set: the agent's set, found or made by the
 * caller. Same results, except TS_EINVAL for a bad agent id (no id here). */
int ts_seqset_accept_in(struct ts_seqset *set, uint64_t merged_from, uint64_t seq,
                        bool *duplicate);

/* Removes agent from the table and moves its set into *out (the caller's to
 * free with ts_seqset_free); pointers to that set from ts_seqsets_get are no
 * longer valid, others are. false (and *out untouched) if the table has no
 * such agent. Must not be called during an iteration. */
bool ts_seqsets_take(struct ts_seqsets *t, const char *agent, struct ts_seqset *out);

/* The one call per reading: agent's reading seq standing for the numbers
 * merged_from..seq. *duplicate is set true iff seq was already seen (then
 * nothing changes: drop the reading); otherwise merged_from..seq are added
 * (agent created if new) and *duplicate is false. TS_EINVAL for seq == 0,
 * merged_from == 0, merged_from > seq or a bad agent id (nothing created);
 * TS_ECONFLICT if seq is new but a number of merged_from..seq-1 was seen
 * (nothing changes: refuse the reading, see above); TS_EFULL (the reading
 * was not recorded, see above); TS_ENOMEM.
 * *duplicate is false on every error. */
int ts_seqset_accept(struct ts_seqsets *t, const char *agent, uint64_t merged_from, uint64_t seq,
                     bool *duplicate);

#endif
