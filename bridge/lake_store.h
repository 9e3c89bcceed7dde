/* SPDX-License-Identifier: Apache-2.0 */
/* lake_store.h - where the lake writer's files live: a backend table, private
 * to lake.c and its backends (lake_posix.c, lake_s3store.c).
 *
 * lake.c decides what is written when (the commit protocol, recovery); a
 * backend only does one operation on one path. Paths are relative to the
 * lake's root ("<table>/event_date=.../..." or "<table>/_manifest/..."),
 * at most LAKE_PATH_LEN bytes with the NUL, built and checked by lake.c.
 * Every call returns TS_OK or a TS_E* code; TS_ESYS keeps errno (ENOENT for
 * a path that does not exist). Strings passed in are lent for the call.
 *
 * A backend's data (void *sd) belongs to one struct ts_lake, so lakes of
 * different partitions share nothing and may live in different threads. */
#ifndef TS_LAKE_STORE_H
#define TS_LAKE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lake.h"

#define LAKE_PATH_LEN 640

struct ts_lake_store {
    const char *name; /* "posix", "s3" */
    /* A directory (its parent exists); TS_OK if it exists already. Once
     * created, its entry is durable. */
    int (*make_dir)(void *sd, const char *path);
    /* The entries of a directory made durable (the renames, links and
     * creations in it so far). */
    int (*sync_dir)(void *sd, const char *path);
    /* Calls each(arg, name) for every name in the directory (any order,
     * "." and ".." may come too); stops at the first non-zero, which it
     * returns (with errno as each left it). TS_ESYS with ENOENT or ENOTDIR
     * if path is not a directory. */
    int (*list)(void *sd, const char *path, int (*each)(void *arg, const char *name), void *arg);
    /* False with errno ENOENT (or ENOTDIR) if path does not exist, with
     * another errno if it could not tell (a store out of reach). */
    bool (*exists)(void *sd, const char *path);
    /* The whole file in *out (malloc'ed, the caller frees; one spare byte
     * after *len). */
    int (*read)(void *sd, const char *path, char **out, size_t *len);
    /* A new pending data file under its hidden name (replaced if it
     * exists): *fd to write it, the caller's to close. */
    int (*create)(void *sd, const char *path, int *fd);
    /* The pending file at path is complete; fd (the caller's dup of the
     * one it wrote through, closed here in every case) is positioned
     * anywhere. Makes its content durable under path (still hidden). */
    int (*seal)(void *sd, const char *path, int fd);
    /* Publishes len bytes at path only if nothing is there, atomically
     * against another writer of path: TS_ECONFLICT if something else is (a
     * retried attempt that had in fact worked is TS_OK). The fence between
     * two owners of a partition rests on this (POSIX: link(2); S3: a
     * conditional PUT, as good as the store's If-None-Match). tmp is a name
     * of this writer's own beside it, which the backend may use on the way
     * and removes. Durable on TS_OK (the directory's entry aside: sync_dir). */
    int (*put_new)(void *sd, const char *tmp, const char *path, const char *data, size_t len);
    /* from's content under the name to (replacing it), from gone. */
    int (*rename)(void *sd, const char *from, const char *to);
    /* TS_ESYS with ENOENT if it does not exist. */
    int (*remove)(void *sd, const char *path);
    /* The manifest directory's fd, open for the lake's life, or -1: where
     * its side files (the agents' archive) are read and written as local
     * files. */
    int (*manifest_fd)(void *sd);
    /* The side files of a store whose manifest is not a local directory
     * (NULL on POSIX, where it is: the three below then do nothing).
     * side_open: a local directory for mdir's side files is made (its
     * parents too) and kept open; manifest_fd gives it from then on.
     * side_fetch: the object at path (<mdir>/<name>) into that directory as
     * name, replacing a copy there (TS_ESYS with ENOENT if the store has
     * none). side_publish: the complete file name in that directory to the
     * object path, durable on TS_OK; the name is one writer's, so nothing
     * else writes it. */
    int (*side_open)(void *sd, const char *mdir);
    int (*side_fetch)(void *sd, const char *path);
    int (*side_publish)(void *sd, const char *path);
    /* Frees sd; NULL-safe. */
    void (*close)(void *sd);
};

extern const struct ts_lake_store ts_lake_posix;

/* The POSIX backend on the directory root (mkdir -p, each directory created
 * made durable), with mdir ("<table>/_manifest/<topic>-<partition>") and its
 * parents created and mdir kept open: 2 fds for the lake's life. *sd for the
 * table's calls; TS_OK, TS_ESYS (why says which path), TS_ENOMEM. */
int ts_lake_posix_open(const char *root, const char *table, const char *mdir, void **sd,
                       char *why, size_t why_size);

/* The object store (lake_s3store.c, library tslakes3, which needs libcurl):
 * keys under the client's url prefix, pending files spooled in the local
 * directory spool (created if missing; one spool file per pending file
 * until it is uploaded; those that a crashed process left are deleted
 * here). Takes over s3 (lake_s3.h) in every case; *sd for
 * ts_lake_open_store. TS_OK, TS_EINVAL, TS_ESYS, TS_ENOMEM. */
struct ts_s3;
extern const struct ts_lake_store ts_lake_s3store;
int ts_lake_s3store_open(struct ts_s3 *s3, const char *spool, void **sd, char *why,
                         size_t why_size);

/* Whether the store behind s3 honours conditional writes (the fence between
 * two owners of a partition rests on it: docs/lake.md): puts a hidden
 * object under <table>/_manifest/ twice with If-None-Match (or GCS's
 * header), then deletes it. TS_OK if the second put was refused;
 * TS_ECONFIG if it was accepted (why says so); the client's errors
 * otherwise (a store out of reach). s3 is lent. */
int ts_lake_s3store_probe(struct ts_s3 *s3, const char *table, char *why, size_t why_size);

/* ts_lake_open (lake.h) on the store st with its data sd (from the store's
 * own open), which the lake takes over in every case (freed by
 * ts_lake_close, or here on failure). cfg->root must still be a path: what
 * it means is the store's business. Errors as ts_lake_open's. */
int ts_lake_open_store(const struct ts_lake_cfg *cfg, const char *topic, int32_t partition,
                       const struct ts_lake_store *st, void *sd, struct ts_lake **out,
                       struct ts_lake_resume *resume, char *why, size_t why_size);

#endif
