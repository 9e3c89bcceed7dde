/* SPDX-License-Identifier: Apache-2.0 */
/* layout.c - the lake's record of the readings topic's partition count (see layout.h). */
#include "layout.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "err.h"

#define FILE_MAX 1024

int32_t ts_layout_partition(const char *agent, size_t agent_len, int32_t n)
{
    /* librdkafka's rd_kafka_msg_partitioner_consistent: crc32 of the key, mod n */
    uLong crc = crc32_z(crc32_z(0, Z_NULL, 0), (const Bytef *)agent, agent_len);
    return (int32_t)((uint32_t)crc % (uint32_t)n);
}

static int dir_path(const char *root, const char *table, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/%s/_manifest", root, table);
    return n > 0 && (size_t)n < size ? TS_OK : TS_EINVAL;
}

static int text_of(const char *topic, int32_t n, char *buf, size_t size)
{
    int len = snprintf(buf, size, "ts-lake-layout 1\ntopic %s\npartitions %" PRId32 "\n", topic, n);
    if (len < 0 || (size_t)len >= size)
        return -1;
    uLong crc = crc32_z(crc32_z(0, Z_NULL, 0), (const Bytef *)buf, (size_t)len);
    int more = snprintf(buf + len, size - (size_t)len, "crc32 %08lx\n", crc);
    if (more < 0 || (size_t)(len + more) >= size)
        return -1;
    return len + more;
}

int ts_layout_parse(const char *text, size_t len, const char *topic, int32_t *n)
{
    char want[FILE_MAX];
    int head = snprintf(want, sizeof want, "ts-lake-layout 1\ntopic %s\npartitions ", topic);
    int32_t v = 0;

    if (head < 0 || (size_t)head >= sizeof want || len <= (size_t)head || len >= FILE_MAX ||
        memcmp(text, want, (size_t)head) != 0)
        return TS_EPARSE;
    /* at most 6 digits (TS_LAYOUT_MAX_PARTITIONS); then the whole text, crc32 line and all,
     * must be the one written for topic and v, byte for byte */
    for (size_t i = (size_t)head; i < len && text[i] >= '0' && text[i] <= '9' &&
                                  v <= TS_LAYOUT_MAX_PARTITIONS; i++)
        v = v * 10 + (text[i] - '0');
    if (v < 1 || v > TS_LAYOUT_MAX_PARTITIONS ||
        text_of(topic, v, want, sizeof want) != (int)len || memcmp(want, text, len) != 0)
        return TS_EPARSE;
    *n = v;
    return TS_OK;
}

int ts_layout_read(const char *root, const char *table, const char *topic, int32_t *n, char *why,
                   size_t why_size)
{
    char path[PATH_MAX], buf[FILE_MAX];
    if (dir_path(root, table, path, sizeof path) ||
        strlen(path) + strlen(topic) + 9 >= sizeof path)
        return TS_EINVAL;
    strcat(path, "/");
    strcat(path, topic);
    strcat(path, ".layout");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return TS_ENOTFOUND;
        ts_why(why, why_size, "%s: %s", path, strerror(errno));
        return TS_ESYS;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ts_why(why, why_size, "%s: not a regular file", path);
        close(fd);
        return TS_EPARSE;
    }
    ssize_t len = read(fd, buf, FILE_MAX);
    int saved = errno;
    close(fd);
    if (len < 0) {
        errno = saved;
        ts_why(why, why_size, "%s: %s", path, strerror(errno));
        return TS_ESYS;
    }
    if (ts_layout_parse(buf, (size_t)len, topic, n) != TS_OK) {
        ts_why(why, why_size, "%s: not a layout of topic %s (damaged, or written by hand?)", path,
               topic);
        return TS_EPARSE;
    }
    return TS_OK;
}

/* Writes the layout text to a temporary in dir (dirfd), fsynced; its name in tmp. */
static int write_tmp(int dirfd, const char *topic, int32_t n, char *tmp, size_t size)
{
    char text[FILE_MAX];
    int len = text_of(topic, n, text, sizeof text);
    snprintf(tmp, size, ".%s.layout.%ld.tmp", topic, (long)getpid());
    int fd = len < 0 ? -1 : openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return TS_ESYS;
    int rc = write(fd, text, (size_t)len) == len && fsync(fd) == 0 ? TS_OK : TS_ESYS;
    int saved = errno;
    close(fd);
    if (rc)
        unlinkat(dirfd, tmp, 0);
    errno = saved;
    return rc;
}

/* Creates the directories of path (mkdir -p), then opens it. */
static int open_dir(const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
    return open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int ts_layout_create(const char *root, const char *table, const char *topic, int32_t n,
                     int32_t *actual, char *why, size_t why_size)
{
    char dir[PATH_MAX], tmp[PATH_MAX], fin[PATH_MAX];
    if (n < 1 || n > TS_LAYOUT_MAX_PARTITIONS || dir_path(root, table, dir, sizeof dir))
        return TS_EINVAL;
    int rc = ts_layout_read(root, table, topic, actual, why, why_size);
    if (rc != TS_ENOTFOUND)
        return rc;
    int dfd = open_dir(dir);
    if (dfd < 0) {
        ts_why(why, why_size, "%s: %s", dir, strerror(errno));
        return TS_ESYS;
    }
    snprintf(fin, sizeof fin, "%s.layout", topic);
    rc = write_tmp(dfd, topic, n, tmp, sizeof tmp);
    if (rc == TS_OK) {
        if (linkat(dfd, tmp, dfd, fin, 0) != 0 && errno != EEXIST)
            rc = TS_ESYS;
        unlinkat(dfd, tmp, 0);
        if (rc == TS_OK && fsync(dfd) != 0)
            rc = TS_ESYS;
    }
    if (rc)
        ts_why(why, why_size, "creating %s/%s: %s", dir, fin, strerror(errno));
    close(dfd);
    return rc ? rc : ts_layout_read(root, table, topic, actual, why, why_size);
}

int ts_layout_replace(const char *root, const char *table, const char *topic, int32_t n,
                      char *why, size_t why_size)
{
    char dir[PATH_MAX], tmp[PATH_MAX], fin[PATH_MAX];
    if (n < 1 || n > TS_LAYOUT_MAX_PARTITIONS || dir_path(root, table, dir, sizeof dir))
        return TS_EINVAL;
    int dfd = open_dir(dir);
    if (dfd < 0) {
        ts_why(why, why_size, "%s: %s", dir, strerror(errno));
        return TS_ESYS;
    }
    snprintf(fin, sizeof fin, "%s.layout", topic);
    int rc = write_tmp(dfd, topic, n, tmp, sizeof tmp);
    if (rc == TS_OK && (renameat(dfd, tmp, dfd, fin) != 0 || fsync(dfd) != 0))
        rc = TS_ESYS;
    if (rc) {
        ts_why(why, why_size, "writing %s/%s: %s", dir, fin, strerror(errno));
        unlinkat(dfd, tmp, 0);
    }
    close(dfd);
    return rc;
}
