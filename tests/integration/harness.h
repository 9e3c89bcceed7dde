/* SPDX-License-Identifier: Apache-2.0 */
/* harness.h - starting real peers (turnstile-sim, socat) from C tests.
 *
 * A child gets a pipe on stdin (for commands) and one on stdout (for lines).
 * Children are killed by proc_stop and, as a safety net, when the test
 * process dies (PR_SET_PDEATHSIG). */
#ifndef TS_HARNESS_H
#define TS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

struct proc {
    pid_t pid;
    int in, out;              /* our ends: write commands, read lines */
    char buf[8192];
    size_t len;
};

/* Starts argv[0] (a path) with argv. Returns 0 or -1. */
int proc_start(struct proc *p, char *const argv[]);

/* Reads one line (without newline) into line, waiting up to timeout_ms.
 * Returns 1 on a line, 0 on timeout or end of file. */
int proc_read_line(struct proc *p, char *line, size_t size, int timeout_ms);

/* Reads lines until one starts with prefix; copies it into line. 1 or 0. */
int proc_expect(struct proc *p, const char *prefix, char *line, size_t size, int timeout_ms);

/* Writes a command line to the child's stdin and waits for its "ok" or
 * "error" answer. Returns 1 for ok, 0 otherwise. */
int proc_command(struct proc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* SIGTERM, then SIGKILL after a second; reaps. Returns the exit status or -1. */
int proc_stop(struct proc *p);

/* Monotonic clock in milliseconds (ts_mono_ms, common/now.h). */
long long mono_ms(void);

/* Path of a built program: $TS_BIN_DIR/name. */
const char *bin_path(const char *name);

/* A fresh temporary directory (removed by the test's own cleanup). */
const char *temp_dir(void);

/* Starts "turnstile-sim" with extra arguments (NULL-terminated) on TCP
 * 127.0.0.1 with a free port; returns the port, or -1. */
int sim_start_tcp(struct proc *p, const char *const extra[]);

/* Starts a socat pty pair with links dir/a and dir/b; waits for both. */
int socat_start(struct proc *p, const char *dir);

#endif
