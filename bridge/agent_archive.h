/* SPDX-License-Identifier: Apache-2.0 */
/* agent_archive.h - the positions of idle agents, kept on disk, not in memory.
 *
 * The aggregator keeps each active agent's duplicate-removal set (seqset.h)
 * in memory. An agent idle for long, or the least recently seen one when too
 * many are in memory, moves to its partition's archive: one immutable text
 * file in the partition's manifest directory (lake.h), in the seqsets text
 * form ("agent_id<TAB>set\n", ascending byte order of the ids, seqset.h),
 * named after the checkpoint generation that first names it:
 *     agents-<generation, 12 digits>-<writer tag>.txt
 * A checkpoint names its archive with its size and crc32 (aggregator state),
 * so an archive is only trusted once ts_archive_open has checked both. On
 * the object lake the directory holds local copies of the bucket's objects
 * (agent_table.c carries them, lake.h's ts_lake_side_*); this module only
 * ever sees a local directory.
 *
 * A lookup reads one stretch of about 4 KiB of the file with pread(2),
 * found through a sparse index held in memory (the first id of every 4 KiB:
 * about 1/80 of the file's size, a quarter of a byte per archived agent), so
 * memory barely grows with the agents that went idle (plus one line buffer,
 * bounded by max_line, and 8 KiB). A new archive is written
 * by merging the current one with the agents leaving memory (their lines
 * replace older ones) and leaving out the agents that are back in memory
 * (their set is in the checkpoint's state, which is the truth for them):
 * written under a hidden temporary name, fsynced, renamed, the directory
 * fsynced; only then may a checkpoint name it. Archives no checkpoint names
 * any more are deleted by ts_archive_prune.
 *
 * Not thread-safe: an archive belongs to its partition's thread. */
#ifndef TS_AGENT_ARCHIVE_H
#define TS_AGENT_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "seqset.h"

#define TS_ARCHIVE_NAME_MAX 128

struct ts_archive;

/* What a checkpoint records of its archive. name "" : no archive (empty). */
struct ts_archive_ref {
    char name[TS_ARCHIVE_NAME_MAX];
    uint64_t size;
    uint32_t crc;             /* zlib crc32 of the whole file */
    uint64_t agents;          /* lines */
};

/* Opens the archive ref names in the directory dirfd (lent: kept open by
 * the caller for the archive's life), reading it once to check its size,
 * crc and form. ref->name "" gives an empty archive. max_line bounds one
 * line (id, tab, set, newline): see ts_archive_max_line. TS_OK; TS_EPARSE
 * (size, crc or a line does not check out: why says which); TS_ESYS (errno
 * kept); TS_ENOMEM. */
int ts_archive_open(int dirfd, const struct ts_archive_ref *ref, size_t max_line,
                    struct ts_archive **out, char *why, size_t why_size);

/* Opens an archive this process has just written (ts_archive_write gave
 * ref): its size and the order of its ids are checked (one pass, for the
 * index), not its crc and sets. TS_OK, TS_EPARSE, TS_ESYS, TS_ENOMEM. */
int ts_archive_adopt(int dirfd, const struct ts_archive_ref *ref, size_t max_line,
                     struct ts_archive **out);

/* The longest line a set with at most max_ranges ranges can take. */
size_t ts_archive_max_line(size_t max_ranges);

/* The reference it was opened with. */
const struct ts_archive_ref *ts_archive_ref(const struct ts_archive *a);

/* Looks agent up; when found, decodes its set into *set (initialized by the
 * caller; replaced on success). TS_OK, TS_ENOTFOUND, TS_EPARSE (the file
 * changed under us), TS_EFULL (more ranges than the set's max_ranges),
 * TS_ESYS, TS_ENOMEM. */
int ts_archive_find(struct ts_archive *a, const char *agent, struct ts_seqset *set);

/* Writes a new archive named name in dirfd: the lines of old (may be NULL:
 * none) merged with add (add_len bytes of seqsets text form, sorted, as
 * ts_seqsets_encode writes it; an agent in both takes add's line), leaving
 * out every old line whose agent keep_out(agent, ctx) says is back in
 * memory (keep_out may be NULL). *ref receives the new reference. An empty
 * result writes no file (ref->name ""). TS_OK; TS_EPARSE (add or old is
 * not in the sorted form); TS_ESYS; TS_ENOMEM. On failure nothing is left
 * under name (the temporary is removed). */
int ts_archive_write(const struct ts_archive *old, int dirfd, const char *name, const char *add,
                     size_t add_len, bool (*keep_out)(const char *agent, void *ctx), void *ctx,
                     struct ts_archive_ref *ref);

/* Calls visit(agent, set, set_len, ctx) for every line of a, in order of
 * the ids (set: the set's text form, without the newline and not
 * NUL-terminated; both lent for the call). Streams the file: memory is one
 * line of max_line. visit returns TS_OK to go on; anything else stops the
 * scan and is returned. TS_OK; TS_EPARSE (a line out of form or order: the
 * file changed under us); TS_ESYS; TS_ENOMEM. */
int ts_archive_scan(const struct ts_archive *a,
                    int (*visit)(const char *agent, const char *set, size_t set_len, void *ctx),
                    void *ctx);

/* Writes a new archive named name in dirfd: the lines of a that
 * keep_a(agent, ctx_a) accepts, merged in order with the lines of b that
 * keep_b(agent, ctx_b) accepts (a or b may be NULL: no lines; a NULL keep_*
 * accepts every line). Streams both: memory is two lines, whatever the
 * archives' sizes, so it also serves as a filter (b NULL). An agent
 * accepted from both is TS_ECONFLICT: the caller's filters must make the
 * two sides disjoint. *ref receives the new reference; an empty result
 * writes no file (ref->name ""). TS_OK; TS_ECONFLICT; TS_EPARSE (a line out
 * of form or order); TS_EINVAL (a bad name); TS_ESYS; TS_ENOMEM. On failure
 * nothing is left under name. */
int ts_archive_merge(const struct ts_archive *a, bool (*keep_a)(const char *agent, void *ctx),
                     void *ctx_a, const struct ts_archive *b,
                     bool (*keep_b)(const char *agent, void *ctx), void *ctx_b, int dirfd,
                     const char *name, struct ts_archive_ref *ref);

/* The file name for generation gen and writer tag (a name character set of
 * letters, digits, '.', '_', '-'): "agents-<gen>-<tag>.txt". TS_OK or
 * TS_EINVAL (too long). */
int ts_archive_name(uint64_t gen, const char *tag, char *name, size_t size);

/* The generation in the archive's name; 0 for an empty archive. */
uint64_t ts_archive_generation(const struct ts_archive *a);

/* Deletes the archives (and their temporaries) in dirfd of generations up to
 * upto except keep (a name, may be NULL or ""): no checkpoint can name them
 * any more. Later generations may be another bridge's that has not
 * committed yet: they are left. Failures only leave garbage. Returns how
 * many files were deleted. */
unsigned ts_archive_prune(int dirfd, uint64_t upto, const char *keep);

/* Whether ts_archive_prune(.., upto, keep) deletes a file of this name (the
 * object lake's store is pruned by the same rule). */
bool ts_archive_prunable(const char *name, uint64_t upto, const char *keep);

/* Closes; NULL-safe. */
void ts_archive_close(struct ts_archive *a);

#endif
