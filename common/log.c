/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "now.h"

int ts_log_level = TS_LOG_INFO;

static const char *const level_names[8] = {
    [TS_LOG_ERR] = "error", [TS_LOG_WARNING] = "warning", [TS_LOG_NOTICE] = "notice",
    [TS_LOG_INFO] = "info", [TS_LOG_DEBUG] = "debug",
};

int ts_log_level_parse(const char *name)
{
    for (int i = 0; i < 8; i++)
        if (level_names[i] && strcasecmp(level_names[i], name) == 0)
            return i;
    return -1;
}

static int journal;
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;

static void detect_journal(void) { journal = getenv("JOURNAL_STREAM") != NULL; }

void ts_log_write(int level, const char *fmt, ...)
{
    char line[2048];
    size_t n;
    va_list ap;

    pthread_once(&journal_once, detect_journal);
    if (level < TS_LOG_ERR)
        level = TS_LOG_ERR;
    if (level > TS_LOG_DEBUG)
        level = TS_LOG_DEBUG;
    if (journal) {
        n = (size_t)snprintf(line, sizeof line, "<%d>", level);
    } else {
        int64_t ms = ts_wall_ms();
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ %s: ", (int)(ms % 1000),
                              level_names[level]);
    }
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += (size_t)m;
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
