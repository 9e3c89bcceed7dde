/* SPDX-License-Identifier: Apache-2.0 */
/* lake_posix.c - the lake on a local POSIX filesystem (lake_store.h): every
 * path relative to a directory fd on the root (the *at calls); durability by
 * fsync of files and directories; the checkpoint published with link(2), the
 * atomic create-if-absent of a file with content (docs/lake.md, "Commit"). */
#include "lake_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

struct posix {
    int rootfd, mfd;
};

static int fsync_dir(int at, const char *path)
{
    int fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return TS_ESYS;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc ? TS_ESYS : TS_OK;
}

/* mkdirat, then fsync of the parent if the directory was created, so that
 * its entry is as durable as what goes in it. */
static int make_dir(int at, const char *path)
{
    char parent[PATH_MAX];
    if (mkdirat(at, path, 0755) != 0)
        return errno == EEXIST ? TS_OK : TS_ESYS;
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash)
        return fsync_dir(at, ".");
    if (slash == parent)
        slash++;
    *slash = '\0';
    return fsync_dir(at, parent);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return TS_ESYS;
        p += w;
        n -= (size_t)w;
    }
    return TS_OK;
}

static bool same_file(int at, const char *a, const char *b)
{
    struct stat x, y;
    return fstatat(at, a, &x, 0) == 0 && fstatat(at, b, &y, 0) == 0 && x.st_dev == y.st_dev &&
           x.st_ino == y.st_ino;
}

static int px_make_dir(void *sd, const char *path)
{
    return make_dir(((struct posix *)sd)->rootfd, path);
}

static int px_sync_dir(void *sd, const char *path)
{
    return fsync_dir(((struct posix *)sd)->rootfd, path);
}

static int px_list(void *sd, const char *path, int (*each)(void *arg, const char *name), void *arg)
{
    struct dirent *e;
    int err = TS_OK, fd = openat(((struct posix *)sd)->rootfd, path,
                                 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return TS_ESYS;
    DIR *d = fdopendir(fd);
    if (!d) {
        int saved = errno;
        close(fd);
        errno = saved;
        return TS_ESYS;
    }
    while (!err && (e = readdir(d)))
        err = each(arg, e->d_name);
    int saved = errno;
    closedir(d);
    errno = saved;
    return err;
}

static bool px_exists(void *sd, const char *path)
{
    return faccessat(((struct posix *)sd)->rootfd, path, F_OK, 0) == 0;
}

static int px_read(void *sd, const char *path, char **out, size_t *len)
{
    struct stat st;
    int err = TS_OK, fd = openat(((struct posix *)sd)->rootfd, path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    size_t got = 0;

    if (fd < 0)
        return TS_ESYS;
    if (fstat(fd, &st) != 0)
        err = TS_ESYS;
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        err = TS_ENOMEM;
    while (!err && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno != EINTR)
            err = TS_ESYS;
        else if (r == 0)
            break; /* shorter than fstat said: parsed as it is */
        else if (r > 0)
            got += (size_t)r;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    if (err) {
        free(buf);
        return err;
    }
    *out = buf;
    *len = got;
    return TS_OK;
}

static int px_create(void *sd, const char *path, int *fd)
{
    *fd = openat(((struct posix *)sd)->rootfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                 0644);
    return *fd < 0 ? TS_ESYS : TS_OK;
}

static int px_seal(void *sd, const char *path, int fd)
{
    (void)sd;
    (void)path;
    int err = fsync(fd) != 0 ? TS_ESYS : TS_OK;
    int saved = errno;
    close(fd);
    errno = saved;
    return err;
}

/* Written aside, fsynced, then linked: link fails with EEXIST if the name
 * exists, unless NFS retransmitted a LINK that had worked (the same inode). */
static int px_put_new(void *sd, const char *tmp, const char *path, const char *data, size_t len)
{
    int at = ((struct posix *)sd)->rootfd, err = TS_OK;
    int fd = openat(at, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return TS_ESYS;
    if (write_all(fd, data, len) || fsync(fd))
        err = TS_ESYS;
    int saved = errno;
    if (close(fd) && !err) {
        err = TS_ESYS;
        saved = errno;
    }
    if (!err && linkat(at, tmp, at, path, 0) != 0) {
        saved = errno;
        if (saved != EEXIST)
            err = TS_ESYS;
        else if (!same_file(at, tmp, path))
            err = TS_ECONFLICT;
    }
    unlinkat(at, tmp, 0);
    errno = saved;
    return err;
}

static int px_rename(void *sd, const char *from, const char *to)
{
    int at = ((struct posix *)sd)->rootfd;
    return renameat(at, from, at, to) != 0 ? TS_ESYS : TS_OK;
}

static int px_remove(void *sd, const char *path)
{
    return unlinkat(((struct posix *)sd)->rootfd, path, 0) != 0 ? TS_ESYS : TS_OK;
}

static int px_manifest_fd(void *sd)
{
    return ((struct posix *)sd)->mfd;
}

static void px_close(void *sd)
{
    struct posix *p = sd;
    if (!p)
        return;
    int saved = errno;
    if (p->mfd >= 0)
        close(p->mfd);
    if (p->rootfd >= 0)
        close(p->rootfd);
    free(p);
    errno = saved;
}

const struct ts_lake_store ts_lake_posix = {
    .name = "posix",
    .make_dir = px_make_dir,
    .sync_dir = px_sync_dir,
    .list = px_list,
    .exists = px_exists,
    .read = px_read,
    .create = px_create,
    .seal = px_seal,
    .put_new = px_put_new,
    .rename = px_rename,
    .remove = px_remove,
    .manifest_fd = px_manifest_fd,
    .close = px_close,
};

int ts_lake_posix_open(const char *root, const char *table, const char *mdir, void **sd,
                       char *why, size_t why_size)
{
    char path[PATH_MAX];
    int err = TS_OK;
    struct posix *p = malloc(sizeof *p);

    *sd = NULL;
    if (!p)
        return TS_ENOMEM;
    p->rootfd = p->mfd = -1;
    snprintf(path, sizeof path, "%s", root);
    for (char *c = path + 1; !err && *c; c++) {
        if (*c == '/') {
            *c = '\0';
            err = make_dir(AT_FDCWD, path);
            *c = '/';
        }
    }
    if (!err)
        err = make_dir(AT_FDCWD, path);
    if (err) {
        ts_why(why, why_size, "creating %s: %s", path, strerror(errno));
        px_close(p);
        return err;
    }
    if ((p->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        ts_why(why, why_size, "opening %s: %s", root, strerror(errno));
        px_close(p);
        return TS_ESYS;
    }
    snprintf(path, sizeof path, "%s/_manifest", table);
    if (make_dir(p->rootfd, table) || make_dir(p->rootfd, path) || make_dir(p->rootfd, mdir) ||
        (p->mfd = openat(p->rootfd, mdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        ts_why(why, why_size, "creating %s/%s: %s", root, mdir, strerror(errno));
        px_close(p);
        return TS_ESYS;
    }
    *sd = p;
    return TS_OK;
}
