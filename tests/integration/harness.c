/* SPDX-License-Identifier: Apache-2.0 */
#include "harness.h"

#include "now.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int proc_start(struct proc *p, char *const argv[])
{
    int in[2], out[2];

    memset(p, 0, sizeof *p);
    if (pipe(in) || pipe(out))
        return -1;
    p->pid = fork();
    if (p->pid < 0)
        return -1;
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->in = in[1];
    p->out = out[0];
    fcntl(p->out, F_SETFL, O_NONBLOCK);
    return 0;
}

long long mono_ms(void)
{
    return ts_mono_ms();
}

int proc_read_line(struct proc *p, char *line, size_t size, int timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;

    for (;;) {
        char *nl = memchr(p->buf, '\n', p->len);
        if (nl) {
            size_t n = (size_t)(nl - p->buf);
            snprintf(line, size, "%.*s", (int)n, p->buf);
            memmove(p->buf, nl + 1, p->len - n - 1);
            p->len -= n + 1;
            return 1;
        }
        long long left = deadline - mono_ms();
        if (left <= 0 || p->len == sizeof p->buf)
            return 0;
        struct pollfd pfd = {p->out, POLLIN, 0};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        ssize_t r = read(p->out, p->buf + p->len, sizeof p->buf - p->len);
        if (r == 0)
            return 0;
        if (r > 0)
            p->len += (size_t)r;
    }
}

int proc_expect(struct proc *p, const char *prefix, char *line, size_t size, int timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    while (mono_ms() < deadline) {
        if (!proc_read_line(p, line, size, (int)(deadline - mono_ms())))
            return 0;
        if (strncmp(line, prefix, strlen(prefix)) == 0)
            return 1;
    }
    return 0;
}

int proc_command(struct proc *p, const char *fmt, ...)
{
    char cmd[256], line[512];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd - 1)
        return 0;
    cmd[n++] = '\n';
    if (write(p->in, cmd, (size_t)n) != n)
        return 0;
    long long deadline = mono_ms() + 5000;
    while (mono_ms() < deadline) {
        if (!proc_read_line(p, line, sizeof line, 5000))
            return 0;
        if (strncmp(line, "ok", 2) == 0)
            return 1;
        if (strncmp(line, "error", 5) == 0) {
            fprintf(stderr, "command '%.*s' failed: %s\n", n - 1, cmd, line);
            return 0;
        }
    }
    return 0;
}

int proc_stop(struct proc *p)
{
    int status = -1;

    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid)
            goto reaped;
        usleep(10000);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
reaped:
    close(p->in);
    close(p->out);
    p->pid = 0;
    return status;
}

const char *bin_path(const char *name)
{
    static char path[4][512];
    static int next;
    const char *dir = getenv("TS_BIN_DIR");
    char *buf = path[next++ % 4];
    snprintf(buf, sizeof path[0], "%s/%s", dir ? dir : "build/bin", name);
    return buf;
}

const char *temp_dir(void)
{
    static char dir[] = "/tmp/ts-test-XXXXXX";
    static int made;
    if (!made && mkdtemp(dir))
        made = 1;
    return dir;
}

int sim_start_tcp(struct proc *p, const char *const extra[])
{
    char *argv[64];
    char line[256];
    int n = 0, port;

    argv[n++] = (char *)bin_path("turnstile-sim");
    argv[n++] = "--tcp";
    argv[n++] = "127.0.0.1:0";
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    if (proc_start(p, argv))
        return -1;
    if (!proc_expect(p, "listening tcp ", line, sizeof line, 20000) ||
        sscanf(line, "listening tcp %d", &port) != 1) {
        proc_stop(p);
        return -1;
    }
    return port;
}

int socat_start(struct proc *p, const char *dir)
{
    char a[512], b[512];
    struct stat st;

    snprintf(a, sizeof a, "pty,raw,echo=0,link=%s/a", dir);
    snprintf(b, sizeof b, "pty,raw,echo=0,link=%s/b", dir);
    char *argv[] = {"/usr/bin/socat", a, b, NULL};
    if (proc_start(p, argv))
        return -1;
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    for (int i = 0; i < 500; i++) {
        if (stat(a, &st) == 0 && stat(b, &st) == 0)
            return 0;
        usleep(10000);
    }
    proc_stop(p);
    return -1;
}
