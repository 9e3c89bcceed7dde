/* SPDX-License-Identifier: Apache-2.0 */
/* hashtab.h - the one hash table: an index from 64-bit hashes to values
 * (open addressing, linear probing, load at most 1/2).
 *
 * The table keeps, per entry, its hash and a value (an index or a pointer,
 * as uintptr_t); the keys stay with the caller, who hashes them
 * (ts_hash_str, ts_hash_bytes) and compares them in ts_hashtab_find's eq.
 * The table owns its slots only: it never frees or dereferences a value.
 * It holds at most max entries (given at init, from configuration or a
 * fixed bound, never from input): it grows by doubling from 16 slots up to
 * 2 * max (rounded up to a power of two), and an add past max is TS_EFULL.
 * Every walk stops at an empty slot, and there always is one. Not
 * thread-safe: the caller locks. */
#ifndef TS_HASHTAB_H
#define TS_HASHTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TS_HASH_INIT UINT64_C(14695981039346656037) /* FNV-1a 64 offset basis */
#define TS_HASHTAB_MAX ((size_t)1 << 30)           /* the largest max */

/* FNV-1a of n bytes / of a NUL-terminated string, continuing from h (start
 * from TS_HASH_INIT; hash a separator between the parts of a key). */
static inline uint64_t ts_hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * UINT64_C(1099511628211);
    return h;
}

static inline uint64_t ts_hash_str(uint64_t h, const char *s)
{
    for (const unsigned char *b = (const unsigned char *)s; *b; b++)
        h = (h ^ *b) * UINT64_C(1099511628211);
    return h;
}

struct ts_hashtab_slot {
    uint64_t hash; /* 0: empty (a hash of 0 is stored as 1) */
    uintptr_t value;
};

/* The fields are private. */
struct ts_hashtab {
    struct ts_hashtab_slot *slots; /* cap slots, cap 0 or a power of two */
    size_t cap, count, max;
};

/* An empty table of at most max entries (1..TS_HASHTAB_MAX; outside that,
 * clamped into it). Allocates nothing. */
void ts_hashtab_init(struct ts_hashtab *t, size_t max);

/* Frees the slots; NULL-safe. The values are the caller's. The table is
 * empty afterwards (same max) and may be used again. */
void ts_hashtab_free(struct ts_hashtab *t);

/* Forgets every entry and gives the memory back (as ts_hashtab_free). */
static inline void ts_hashtab_clear(struct ts_hashtab *t) { ts_hashtab_free(t); }

static inline size_t ts_hashtab_count(const struct ts_hashtab *t) { return t->count; }

/* Adds an entry (hash, value). The caller has made sure that its key is not
 * in the table (ts_hashtab_find): a second add of a key makes a second
 * entry. TS_EFULL when the table holds max entries, TS_ENOMEM; on error the
 * table is unchanged. */
int ts_hashtab_add(struct ts_hashtab *t, uint64_t hash, uintptr_t value);

/* Removes the entry (hash, value); false if there is none. Other entries
 * stay findable (backward shift, no tombstones). */
bool ts_hashtab_remove(struct ts_hashtab *t, uint64_t hash, uintptr_t value);

/* eq: does value's key equal key? Called only on entries of the same hash. */
typedef bool ts_hashtab_eq(uintptr_t value, const void *key);

/* The value of key (hash: its hash) in *value: true, or false if absent.
 * Inline, so that a constant eq is inlined into the probe loop. */
static inline bool ts_hashtab_find(const struct ts_hashtab *t, uint64_t hash, ts_hashtab_eq *eq,
                                   const void *key, uintptr_t *value)
{
    if (!t->cap)
        return false;
    hash += !hash;
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)hash & mask; t->slots[i].hash; i = (i + 1) & mask)
        if (t->slots[i].hash == hash && eq(t->slots[i].value, key)) {
            *value = t->slots[i].value;
            return true;
        }
    return false;
}

/* Iterates the entries in no particular order: start with *cursor = 0;
 * each call stores the next value and returns true, or returns false at the
 * end. No add or remove during an iteration. */
bool ts_hashtab_next(const struct ts_hashtab *t, size_t *cursor, uintptr_t *value);

#endif
