/* synced_fs.c - LD_PRELOAD shim for the e2e power-cut fault: keeps, for every
 * file of one directory, a copy of its content as of its last fsync.
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
 * entry counts as synced with its first fsync.) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void shadow_copy(int fd)
{
    const char *dir = getenv("TS_E2E_SYNCED_DIR"), *shadow = getenv("TS_E2E_SHADOW_DIR");
    char link[64], path[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX], buf[65536];
    struct stat st;
    ssize_t n;
    size_t len;

    if (!dir || !shadow || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return;
    path[n] = '\0';
    len = strlen(dir);
    if (strncmp(path, dir, len) != 0 || path[len] != '/' || strchr(path + len + 1, '/'))
        return;
    snprintf(dst, sizeof dst, "%s/%s", shadow, path + len + 1);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", shadow, path + len + 1);
    int saved = errno;
    pthread_mutex_lock(&lock);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = in >= 0 && out >= 0;
    while (ok && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 || write(out, buf, (size_t)n) != n)
            ok = 0;
    }
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (ok)
        rename(tmp, dst);
    else
        unlink(tmp);
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
