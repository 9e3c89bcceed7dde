/* SPDX-License-Identifier: Apache-2.0 */
/* hashtab.c - the one hash table (see hashtab.h). */
#include "hashtab.h"

#include <stdlib.h>

#include "err.h"

#define MIN_CAP 16

void ts_hashtab_init(struct ts_hashtab *t, size_t max)
{
    *t = (struct ts_hashtab){.max = max < 1 ? 1 : max > TS_HASHTAB_MAX ? TS_HASHTAB_MAX : max};
}

void ts_hashtab_free(struct ts_hashtab *t)
{
    if (!t)
        return;
    free(t->slots);
    t->slots = NULL;
    t->cap = t->count = 0;
}

/* Puts (hash, value) in the first empty slot from hash's home; hash != 0
 * and an empty slot exists. */
static void put(struct ts_hashtab_slot *slots, size_t cap, uint64_t hash, uintptr_t value)
{
    size_t i = (size_t)hash & (cap - 1);
    while (slots[i].hash)
        i = (i + 1) & (cap - 1);
    slots[i] = (struct ts_hashtab_slot){hash, value};
}

static int grow(struct ts_hashtab *t)
{
    size_t cap = t->cap ? t->cap * 2 : MIN_CAP;
    struct ts_hashtab_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return TS_ENOMEM;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].hash)
            put(slots, cap, t->slots[i].hash, t->slots[i].value);
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return TS_OK;
}

int ts_hashtab_add(struct ts_hashtab *t, uint64_t hash, uintptr_t value)
{
    if (t->count >= t->max)
        return TS_EFULL;
    if ((t->count + 1) * 2 > t->cap) { /* load at most 1/2: an empty slot stays */
        int err = grow(t);
        if (err)
            return err;
    }
    put(t->slots, t->cap, hash + !hash, value);
    t->count++;
    return TS_OK;
}

bool ts_hashtab_remove(struct ts_hashtab *t, uint64_t hash, uintptr_t value)
{
    if (!t->cap)
        return false;
    hash += !hash;
    size_t mask = t->cap - 1, i = (size_t)hash & mask;
    while (t->slots[i].hash && (t->slots[i].hash != hash || t->slots[i].value != value))
        i = (i + 1) & mask;
    if (!t->slots[i].hash)
        return false;
    /* backward shift: move up each later entry of the run whose home is not
     * in (i, j], so that no walk meets a hole before its entry */
    for (size_t j = (i + 1) & mask; t->slots[j].hash; j = (j + 1) & mask) {
        size_t home = (size_t)t->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i] = (struct ts_hashtab_slot){0, 0};
    t->count--;
    return true;
}

bool ts_hashtab_next(const struct ts_hashtab *t, size_t *cursor, uintptr_t *value)
{
    for (; *cursor < t->cap; (*cursor)++)
        if (t->slots[*cursor].hash) {
            *value = t->slots[(*cursor)++].value;
            return true;
        }
    return false;
}
