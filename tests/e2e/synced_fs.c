/* SPDX-License-Identifier: Apache-2.0 */
/* synced_fs.c - LD_PRELOAD shim for the e2e power-cut fault: keeps, for every
 * file of one directory, a copy of its content as of its last fsync, counts
 * what was written since, and cuts the power itself when told to.
 *
 * TS_E2E_SYNCED_DIR=DIR  the directory watched (the agent's store)
 * TS_E2E_SHADOW_DIR=DIR  where the copies go (same file names)
 *
 * At each fsync(2) / fdatasync(2) of a regular file under DIR, the call is made
 * as usual, then the file's whole content is copied to the shadow directory
 * (temporary + rename, under a lock). A power cut is then simulated by
 * SIGKILLing the process and replacing DIR's files by their shadow copies
 * (files never synced are deleted, SQLite's -shm index always): what survives
 * is exactly what was synced, every write since each file's last sync is
 * discarded. (Coarser than a disk: no write reordering, and a file's directory
 * entry counts as synced with its first fsync.)
 *
 * The shim also counts, per file, the bytes written (write, pwrite, pwrite64)
 * since its last sync, and the SQLite transactions committed to a "-wal" file
 * since its last sync (a commit is the frame whose 24-byte header, written on
 * its own, has a nonzero "database size after commit"; it is complete once the
 * frame's page follows). The cut is armed by creating SHADOW/.cut holding a
 * number N (read again at every check, so it may be lowered while armed): when
 * a write to the WAL is about to start with N or more commits
 * unsynced (and none half written), the shim writes "commits C bytes B" to
 * SHADOW/.cut-done and SIGKILLs the process instead. So the cut lands after a
 * known number of committed, unsynced transactions, the ones that
 * `synchronous = NORMAL` allows to vanish, and never inside a commit that would
 * have synced. */
/* The shim defines pwrite and pwrite64 both: with a 64-bit off_t on a 32-bit
 * target (armhf) the headers would rename the first to the second. */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FILES 8

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);

static struct {
    char name[NAME_MAX + 1];
    unsigned long long unsynced; /* bytes written since the last sync */
    unsigned long long commits;  /* "-wal": commits since the last sync */
} files[MAX_FILES];
static int commit_fd = -1; /* a commit frame's header was just written to it */

static void resolve(void)
{
    if (!real_write)
        real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (!real_pwrite)
        real_pwrite = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    if (!real_pwrite64)
        real_pwrite64 =
            (ssize_t(*)(int, const void *, size_t, off64_t))dlsym(RTLD_NEXT, "pwrite64");
}

/* the file name under DIR of fd, or NULL when fd is not a regular file there */
static const char *watched(int fd, char *path, size_t size)
{
    const char *dir = getenv("TS_E2E_SYNCED_DIR");
    char link[64];
    struct stat st;
    ssize_t n;
    size_t len;

    if (!dir || !getenv("TS_E2E_SHADOW_DIR") || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return NULL;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, size - 1);
    if (n <= 0)
        return NULL;
    path[n] = '\0';
    len = strlen(dir);
    if (strncmp(path, dir, len) != 0 || path[len] != '/' || strchr(path + len + 1, '/'))
        return NULL;
    return path + len + 1;
}

static int slot(const char *name)
{
    for (int i = 0; i < MAX_FILES; i++) {
        if (files[i].name[0] && strcmp(files[i].name, name) == 0)
            return i;
    }
    for (int i = 0; i < MAX_FILES; i++) {
        if (!files[i].name[0]) {
            snprintf(files[i].name, sizeof files[i].name, "%s", name);
            return i;
        }
    }
    return -1;
}

static int is_wal(const char *name)
{
    size_t len = strlen(name);
    return len > 4 && strcmp(name + len - 4, "-wal") == 0;
}

/* called with the lock held, before a write to the "-wal" file of slot i */
static void maybe_cut(int i)
{
    const char *shadow = getenv("TS_E2E_SHADOW_DIR");
    char path[PATH_MAX], line[128];
    unsigned long long bytes = 0;
    long cut_at = 0;

    if (!files[i].commits || commit_fd >= 0)
        return; /* nothing committed since the last sync, or a commit half written */
    /* read each time: the harness may lower N while armed */
    snprintf(path, sizeof path, "%s/.cut", shadow);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    if (fscanf(f, "%ld", &cut_at) != 1 || cut_at < 1)
        cut_at = 1;
    fclose(f);
    if (files[i].commits < (unsigned long long)cut_at)
        return;
    for (int k = 0; k < MAX_FILES; k++)
        bytes += files[k].unsynced;
    snprintf(path, sizeof path, "%s/.cut-done", shadow);
    int n = snprintf(line, sizeof line, "commits %llu bytes %llu\n", files[i].commits, bytes);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (real_write(fd, line, (size_t)n) != n)
            n = -1;
        close(fd);
    }
    kill(getpid(), SIGKILL);
}

/* before a write to fd: the power goes off here if the cut is due. The cut is
 * checked when the transaction after the N-th unsynced commit starts writing,
 * so a commit that syncs (synchronous = FULL) is never cut between its write
 * and its sync: that would count it unsynced although nobody saw it succeed. */
static const char *before(int fd, char *path, size_t size)
{
    const char *name = watched(fd, path, size);
    if (name && is_wal(name)) {
        pthread_mutex_lock(&lock);
        int i = slot(name);
        if (i >= 0)
            maybe_cut(i);
        pthread_mutex_unlock(&lock);
    }
    return name;
}

/* a write of n bytes to the file name (fd) succeeded: count it */
static void wrote(int fd, const char *name, const void *buf, ssize_t n)
{
    if (n <= 0 || !name)
        return;
    pthread_mutex_lock(&lock);
    int i = slot(name);
    if (i >= 0) {
        files[i].unsynced += (unsigned long long)n;
        if (is_wal(name)) {
            const unsigned char *h = buf;
            if (commit_fd == fd && n != 24) {
                /* the page of a commit frame: the transaction is in the WAL */
                commit_fd = -1;
                files[i].commits++;
            } else if (n == 24 && (h[4] | h[5] | h[6] | h[7])) {
                commit_fd = fd; /* frame header, "database size after commit" set */
            }
        }
    }
    pthread_mutex_unlock(&lock);
}

ssize_t write(int fd, const void *buf, size_t count)
{
    char path[PATH_MAX];
    resolve();
    const char *name = before(fd, path, sizeof path);
    ssize_t n = real_write(fd, buf, count);
    int saved = errno;
    wrote(fd, name, buf, n);
    errno = saved;
    return n;
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off)
{
    char path[PATH_MAX];
    resolve();
    const char *name = before(fd, path, sizeof path);
    ssize_t n = real_pwrite(fd, buf, count, off);
    int saved = errno;
    wrote(fd, name, buf, n);
    errno = saved;
    return n;
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t off)
{
    char path[PATH_MAX];
    resolve();
    const char *name = before(fd, path, sizeof path);
    ssize_t n = real_pwrite64(fd, buf, count, off);
    int saved = errno;
    wrote(fd, name, buf, n);
    errno = saved;
    return n;
}

static void shadow_copy(int fd)
{
    const char *shadow = getenv("TS_E2E_SHADOW_DIR");
    char path[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX], buf[65536];
    const char *name;
    ssize_t n;

    if (!(name = watched(fd, path, sizeof path)))
        return;
    resolve();
    snprintf(dst, sizeof dst, "%s/%s", shadow, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", shadow, name);
    int saved = errno;
    pthread_mutex_lock(&lock);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = in >= 0 && out >= 0;
    while (ok && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 || real_write(out, buf, (size_t)n) != n)
            ok = 0;
    }
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (ok) {
        rename(tmp, dst);
        int i = slot(name);
        if (i >= 0)
            files[i].unsynced = files[i].commits = 0;
    } else {
        unlink(tmp);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int rc = real(fd);
    if (rc == 0)
        shadow_copy(fd);
    return rc;
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int rc = real(fd);
    if (rc == 0)
        shadow_copy(fd);
    return rc;
}
