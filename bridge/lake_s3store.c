/* SPDX-License-Identifier: Apache-2.0 */
/* lake_s3store.c - the lake on an S3 bucket (lake_store.h; docs/lake.md,
 * "Object storage"). A path of the lake is the object's key under the
 * client's url prefix. A pending data file is written and compressed in a
 * local spool file, uploaded under its hidden temporary key when it is
 * sealed (multipart when large); the checkpoint is a conditional PUT
 * (If-None-Match: *); making a file visible is a server-side copy to its
 * final key and the delete of the temporary. Directories do not exist: a
 * listing is of the keys under "<path>/", each name once. */
#include "lake_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "lake_s3.h"
#include "log.h"

#define SPOOL_MAX 512
#define SPOOL_PREFIX ".lake-spool-"

struct spooled { /* a pending file not sealed yet */
    char *path;
    char file[SPOOL_MAX + 32];
};

struct s3store {
    struct ts_s3 *s3;
    char spool[SPOOL_MAX];
    struct spooled *files;
    size_t n, cap;
    int side_fd;             /* <spool>/<mdir>: the side files' local copies, or -1 */
    char why[256];
};

/* The client's error as the lake expects it: a missing key is TS_ESYS with
 * ENOENT; other failures keep their code, with errno EIO and why logged. */
static int s3_err(struct s3store *s, int err, const char *what, const char *path)
{
    if (err == TS_ENOTFOUND) {
        errno = ENOENT;
        return TS_ESYS;
    }
    if (err && err != TS_ECONFLICT) {
        TS_LOG(TS_LOG_WARNING, "lake s3: %s %s: %s", what, path, s->why);
        errno = err == TS_ENOMEM ? ENOMEM : EIO;
    }
    return err;
}

static struct spooled *spooled(struct s3store *s, const char *path)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->files[i].path, path))
            return &s->files[i];
    return NULL;
}

static void unspool(struct s3store *s, struct spooled *f)
{
    unlink(f->file);
    free(f->path);
    *f = s->files[--s->n];
}

static int s3_make_dir(void *sd, const char *path)
{
    (void)sd;
    (void)path;
    return TS_OK;
}

struct names {
    size_t prefix_len;
    char **v;
    size_t n, cap;
};

/* The first segment after the prefix, once (keys come sorted). */
static int collect(void *arg, const char *key, uint64_t size)
{
    struct names *ns = arg;
    (void)size;
    const char *name = key + ns->prefix_len;
    size_t len = strcspn(name, "/");
    if (ns->n && strlen(ns->v[ns->n - 1]) == len && !strncmp(ns->v[ns->n - 1], name, len))
        return TS_OK;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 16;
        char **v = realloc(ns->v, cap * sizeof *v);
        if (!v)
            return TS_ENOMEM;
        ns->v = v;
        ns->cap = cap;
    }
    if (!(ns->v[ns->n] = strndup(name, len)))
        return TS_ENOMEM;
    ns->n++;
    return TS_OK;
}

/* Listed whole before each is called: each may make requests of its own. */
static int s3_list(void *sd, const char *path, int (*each)(void *arg, const char *name), void *arg)
{
    struct s3store *s = sd;
    char prefix[LAKE_PATH_LEN + 2];
    struct names ns = {0};

    snprintf(prefix, sizeof prefix, "%s/", path);
    ns.prefix_len = strlen(prefix);
    int err = ts_s3_list(s->s3, prefix, collect, &ns, s->why, sizeof s->why);
    if (err == TS_ENOMEM)
        errno = ENOMEM;
    else if (err)
        err = s3_err(s, err, "list", prefix);
    for (size_t i = 0; i < ns.n; i++) {
        if (!err)
            err = each(arg, ns.v[i]);
        free(ns.v[i]);
    }
    int saved = errno;
    free(ns.v);
    errno = saved;
    return err;
}

static int is_it(void *arg, const char *key, uint64_t size)
{
    const char **want = arg;
    (void)size;
    if (!strcmp(key, want[0]))
        want[1] = key; /* found (only compared with NULL) */
    return TS_OK;
}

static bool s3_exists(void *sd, const char *path)
{
    struct s3store *s = sd;
    const char *want[2] = {path, NULL};
    int err = ts_s3_list(s->s3, path, is_it, want, s->why, sizeof s->why);
    if (err) {
        s3_err(s, err == TS_ENOTFOUND ? TS_EIO : err, "list", path); /* errno: could not tell */
        return false;
    }
    if (!want[1])
        errno = ENOENT;
    return want[1] != NULL;
}

static int s3_read(void *sd, const char *path, char **out, size_t *len)
{
    struct s3store *s = sd;
    return s3_err(s, ts_s3_get(s->s3, path, out, len, s->why, sizeof s->why), "get", path);
}

static int s3_create(void *sd, const char *path, int *fd)
{
    struct s3store *s = sd;
    struct spooled *f = spooled(s, path);
    if (f)
        unspool(s, f);
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct spooled *v = realloc(s->files, cap * sizeof *v);
        if (!v)
            return TS_ENOMEM;
        s->files = v;
        s->cap = cap;
    }
    f = &s->files[s->n];
    snprintf(f->file, sizeof f->file, "%s/" SPOOL_PREFIX "XXXXXX", s->spool);
    if (!(f->path = strdup(path)))
        return TS_ENOMEM;
    if ((*fd = mkstemp(f->file)) < 0) {
        int saved = errno;
        free(f->path);
        errno = saved;
        return TS_ESYS;
    }
    fcntl(*fd, F_SETFD, FD_CLOEXEC);
    s->n++;
    return TS_OK;
}

/* Uploaded under its (hidden) key; the spool file goes either way: a
 * failure here fails the lake's write or commit, and the lake then deletes
 * the pending files. */
static int s3_seal(void *sd, const char *path, int fd)
{
    struct s3store *s = sd;
    int err = ts_s3_put_file(s->s3, path, fd, s->why, sizeof s->why);
    close(fd);
    struct spooled *f = spooled(s, path);
    if (f)
        unspool(s, f);
    return s3_err(s, err, "put", path);
}

/* The store refuses a second writer of path (If-None-Match: *); tmp is not
 * needed: a PUT is atomic. */
static int s3_put_new(void *sd, const char *tmp, const char *path, const char *data, size_t len)
{
    struct s3store *s = sd;
    (void)tmp;
    return s3_err(s, ts_s3_put(s->s3, path, data, len, true, s->why, sizeof s->why), "put",
                  path);
}

/* Copy, then delete: a crash between them leaves both, and recovery (which
 * finds the final key) or the sweep deletes the temporary. */
static int s3_rename(void *sd, const char *from, const char *to)
{
    struct s3store *s = sd;
    int err = s3_err(s, ts_s3_copy(s->s3, from, to, s->why, sizeof s->why), "copy", from);
    if (!err)
        err = s3_err(s, ts_s3_delete(s->s3, from, s->why, sizeof s->why), "delete", from);
    return err;
}

static int s3_remove(void *sd, const char *path)
{
    struct s3store *s = sd;
    struct spooled *f = spooled(s, path);
    if (f) { /* never uploaded */
        unspool(s, f);
        return TS_OK;
    }
    return s3_err(s, ts_s3_delete(s->s3, path, s->why, sizeof s->why), "delete", path);
}

static int s3_manifest_fd(void *sd)
{
    return ((struct s3store *)sd)->side_fd;
}

/* mkdir -p <spool>/<mdir>, opened. */
static int s3_side_open(void *sd, const char *mdir)
{
    struct s3store *s = sd;
    char dir[SPOOL_MAX + LAKE_PATH_LEN + 2];
    int n = snprintf(dir, sizeof dir, "%s/%s", s->spool, mdir);
    if (n < 0 || (size_t)n >= sizeof dir) {
        errno = ENAMETOOLONG;
        return TS_ESYS;
    }
    for (char *p = dir + strlen(s->spool) + 1;; p++) {
        if (*p != '/' && *p)
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return TS_ESYS;
        *p = c;
        if (!c)
            break;
    }
    if (s->side_fd >= 0)
        close(s->side_fd);
    s->side_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return s->side_fd < 0 ? TS_ESYS : TS_OK;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* GET (bounded by the client's max_object) into ".<name>.<pid>-<n>.fetch"
 * (this lake's own: two lakes of a partition in one spool never write one
 * file), renamed to name: a local copy, checked by whoever opens it (the
 * archive's size and crc), fetched again at every open, so not fsynced. */
static int s3_side_fetch(void *sd, const char *path)
{
    struct s3store *s = sd;
    const char *name = base_name(path);
    char tmp[LAKE_PATH_LEN + 64], *data = NULL;
    size_t len = 0;
    if (s->side_fd < 0) {
        errno = EBADF;
        return TS_ESYS;
    }
    int err = s3_err(s, ts_s3_get(s->s3, path, &data, &len, s->why, sizeof s->why), "get", path);
    if (err)
        return err;
    static unsigned fetches; /* lakes may live in several threads: only a name's part */
    snprintf(tmp, sizeof tmp, ".%s.%ld-%u-%p.fetch", name, (long)getpid(),
             __atomic_add_fetch(&fetches, 1, __ATOMIC_RELAXED), (void *)s);
    int fd = openat(s->side_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t done = 0;
    while (fd >= 0 && done < len) {
        ssize_t k = write(fd, data + done, len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        done += (size_t)k;
    }
    err = fd < 0 || done < len ? TS_ESYS : TS_OK;
    int saved = errno;
    free(data);
    if (fd >= 0 && close(fd) != 0 && !err) {
        saved = errno;
        err = TS_ESYS;
    }
    if (!err && renameat(s->side_fd, tmp, s->side_fd, name) != 0) {
        saved = errno;
        err = TS_ESYS;
    }
    if (err)
        unlinkat(s->side_fd, tmp, 0);
    errno = saved;
    return err;
}

/* The local file, uploaded as it is (multipart when large). Not above
 * SIDE_MAX: the store could not give it back (the client's GET is bounded
 * by the aggregator's max_object, the same 64 MiB). */
#define SIDE_MAX (64u << 20)
static int s3_side_publish(void *sd, const char *path)
{
    struct s3store *s = sd;
    struct stat st;
    if (s->side_fd < 0) {
        errno = EBADF;
        return TS_ESYS;
    }
    int fd = openat(s->side_fd, base_name(path), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        errno = saved;
        return TS_ESYS;
    }
    if ((uint64_t)st.st_size > SIDE_MAX) {
        close(fd);
        TS_LOG(TS_LOG_ERR, "lake s3: %s: %lld bytes, over the %u a side file may have",
               path, (long long)st.st_size, SIDE_MAX);
        errno = EFBIG;
        return TS_EFULL;
    }
    int err = ts_s3_put_file(s->s3, path, fd, s->why, sizeof s->why);
    close(fd);
    return s3_err(s, err, "put", path);
}

static void s3_close(void *sd)
{
    struct s3store *s = sd;
    if (!s)
        return;
    int saved = errno;
    while (s->n)
        unspool(s, &s->files[0]);
    free(s->files);
    if (s->side_fd >= 0)
        close(s->side_fd);
    ts_s3_close(s->s3);
    free(s);
    errno = saved;
}

const struct ts_lake_store ts_lake_s3store = {
    .name = "s3",
    .make_dir = s3_make_dir,
    .sync_dir = s3_make_dir, /* nothing to make durable: a PUT is */
    .list = s3_list,
    .exists = s3_exists,
    .read = s3_read,
    .create = s3_create,
    .seal = s3_seal,
    .put_new = s3_put_new,
    .rename = s3_rename,
    .remove = s3_remove,
    .manifest_fd = s3_manifest_fd,
    .side_open = s3_side_open,
    .side_fetch = s3_side_fetch,
    .side_publish = s3_side_publish,
    .close = s3_close,
};

int ts_lake_s3store_open(struct ts_s3 *s3, const char *spool, void **sd, char *why,
                         size_t why_size)
{
    struct s3store *s = NULL;

    *sd = NULL;
    if (!s3 || !spool || !*spool || strlen(spool) >= SPOOL_MAX) {
        ts_s3_close(s3);
        return ts_fail(why, why_size, TS_EINVAL, "lake s3: spool: a directory path");
    }
    if (mkdir(spool, 0700) != 0 && errno != EEXIST) {
        int saved = errno;
        ts_s3_close(s3);
        ts_why(why, why_size, "lake s3: creating spool %s: %s", spool, strerror(saved));
        errno = saved;
        return TS_ESYS;
    }
    /* spool files a crashed process left: a live writer's too, which is
     * fine, since a spool file is only ever read and written through its fd
     * once created (its space is freed when that fd is closed) */
    DIR *d = opendir(spool);
    struct dirent *e;
    char path[SPOOL_MAX + 300];
    while (d && (e = readdir(d))) {
        if (!strncmp(e->d_name, SPOOL_PREFIX, sizeof SPOOL_PREFIX - 1)) {
            snprintf(path, sizeof path, "%s/%s", spool, e->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
    if (!(s = calloc(1, sizeof *s))) {
        ts_s3_close(s3);
        return TS_ENOMEM;
    }
    s->s3 = s3;
    s->side_fd = -1;
    snprintf(s->spool, sizeof s->spool, "%s", spool);
    *sd = s;
    return TS_OK;
}

int ts_lake_s3store_probe(struct ts_s3 *s3, const char *table, char *why, size_t why_size)
{
    unsigned char r[8];
    char key[128];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return ts_fail(why, why_size, TS_ESYS, "conditional write probe: getrandom: %s",
                       strerror(errno));
    snprintf(key, sizeof key, "%s/_manifest/.probe-%02x%02x%02x%02x%02x%02x%02x%02x", table,
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
    /* the second put's bytes differ, so a 412 after a retry is not taken for its own */
    static const char one[] = "a probe of conditional writes: 1\n", two[] = "2\n";
    int err = ts_s3_put(s3, key, one, sizeof one - 1, true, why, why_size);
    if (!err) {
        err = ts_s3_put(s3, key, two, sizeof two - 1, true, why, why_size);
        if (err == TS_ECONFLICT)
            err = TS_OK; /* refused: the store honours it */
        else if (!err)
            err = ts_fail(why, why_size, TS_ECONFIG, "the store ignores conditional writes "
                          "(a second put of %s with %s was accepted): set [lake] "
                          "conditional_writes = no to run without the fence (docs/lake.md)",
                          key, "If-None-Match: * or x-goog-if-generation-match: 0");
        char ignored[64];
        ts_s3_delete(s3, key, ignored, sizeof ignored);
    }
    return err;
}
