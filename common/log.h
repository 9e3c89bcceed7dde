/* SPDX-License-Identifier: Apache-2.0 */
/* log.h - the one logging macro.
 *
 * TS_LOG(level, fmt, ...) checks the level before formatting. Lines go to
 * stderr, prefixed with "<N>" when stderr is the systemd journal (so the
 * journal keeps the priority), otherwise with a time stamp and level name.
 * Thread-safe: one write(2) per line. */
#ifndef TS_LOG_H
#define TS_LOG_H

enum ts_log_level { TS_LOG_ERR = 3, TS_LOG_WARNING = 4, TS_LOG_NOTICE = 5,
                    TS_LOG_INFO = 6, TS_LOG_DEBUG = 7 };

extern int ts_log_level;

void ts_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses "error", "warning", "notice", "info", "debug"; -1 if unknown. */
int ts_log_level_parse(const char *name);

#define TS_LOG(level, ...)                                  \
    do {                                                    \
        if ((level) <= ts_log_level)                        \
            ts_log_write((level), __VA_ARGS__);             \
    } while (0)

#endif
