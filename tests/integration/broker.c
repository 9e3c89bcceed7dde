/* SPDX-License-Identifier: Apache-2.0 */
#include "broker.h"

#include "now.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MOSQUITTO "/usr/sbin/mosquitto"
#define MOSQUITTO_PASSWD "/usr/bin/mosquitto_passwd"

/* In a forked child: stdout and stderr appended to path, stdin /dev/null. */
static void child_stdio(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int null = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    if (null >= 0)
        dup2(null, 0);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Runs argv (argv[0] looked up in PATH) with stdout and stderr appended to
 * dir/commands.log; 0 if it exited with status 0. */
static int run(const char *dir, char *const argv[])
{
    char logpath[320];
    int status;

    snprintf(logpath, sizeof logpath, "%s/commands.log", dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        child_stdio(logpath);
        execvp(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "broker: '%s %s' failed (status %d), see %s\n", argv[0],
                argv[1] ? argv[1] : "", status, logpath);
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static const char openssl_cnf[] =
    "[req]\n"
    "distinguished_name = dn\n"
    "[dn]\n"
    "[v3_ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[v3_server]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = IP:127.0.0.1,DNS:localhost\n"
    "[v3_client]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = clientAuth\n";

/* dir/NAME.key and dir/NAME.crt: a self-signed CA. */
static int make_ca(const char *dir, const char *cnf, const char *name, const char *cn)
{
    char key[320], crt[320], subj[128];
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    snprintf(crt, sizeof crt, "%s/%s.crt", dir, name);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    char *argv[] = {"openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", subj, "-config", (char *)cnf, "-extensions",
                    "v3_ca", NULL};
    return run(dir, argv);
}

/* dir/NAME.key and dir/NAME.crt signed by dir/ca.crt with extensions ext. */
static int make_cert(const char *dir, const char *cnf, const char *name, const char *cn,
                     const char *ext, const char *serial)
{
    char key[320], csr[320], crt[320], ca[320], cakey[320], subj[128];
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    snprintf(csr, sizeof csr, "%s/%s.csr", dir, name);
    snprintf(crt, sizeof crt, "%s/%s.crt", dir, name);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", dir);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    char *req[] = {"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr,
                   "-subj", subj, "-config", (char *)cnf, NULL};
    char *sign[] = {"openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey,
                    "-set_serial", (char *)serial, "-out", crt, "-days", "2", "-extfile",
                    (char *)cnf, "-extensions", (char *)ext, NULL};
    return run(dir, req) || run(dir, sign) ? -1 : 0;
}

static int make_certs(struct broker *b)
{
    char cnf[320];
    snprintf(cnf, sizeof cnf, "%s/openssl.cnf", b->dir);
    if (write_file(cnf, openssl_cnf))
        return -1;
    if (make_ca(b->dir, cnf, "ca", "turnstile test CA") ||
        make_ca(b->dir, cnf, "other-ca", "untrusted test CA") ||
        make_cert(b->dir, cnf, "server", "127.0.0.1", "v3_server", "2") ||
        make_cert(b->dir, cnf, "client", "turnstile-test-client", "v3_client", "3"))
        return -1;
    return 0;
}

/* A port nobody listens on now: bind port 0, read it, close. keep, if not
 * negative, is a socket held open meanwhile so that two calls differ. */
static int free_port(int *keep)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len)) {
        close(fd);
        return -1;
    }
    if (keep)
        *keep = fd;
    else
        close(fd);
    return ntohs(a.sin_port);
}

static int write_conf(struct broker *b)
{
    FILE *f = fopen(b->conf, "w");
    if (!f)
        return -1;
    fprintf(f, "# written by tests/integration/broker.c\n"
               "user root\n"
               "per_listener_settings false\n"
               "persistence true\n"
               "persistence_location %s/\n"
               "persistence_file mosquitto.db\n"
               "log_dest file %s\n"
               "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
               "connection_messages true\n"
               "log_timestamp_format %%H:%%M:%%S\n"
               "max_queued_messages 100000\n",
            b->dir, b->log);
    if (b->opts.username)
        fprintf(f, "allow_anonymous false\npassword_file %s/passwd\n", b->dir);
    else
        fprintf(f, "allow_anonymous true\n");
    if (b->opts.extra_conf)
        fprintf(f, "%s\n", b->opts.extra_conf);
    fprintf(f, "listener %d 127.0.0.1\n", b->port);
    if (b->opts.tls)
        fprintf(f, "listener %d 127.0.0.1\ncafile %s\ncertfile %s/server.crt\n"
                   "keyfile %s/server.key\nrequire_certificate %s\n",
                b->tls_port, b->ca_file, b->dir, b->dir, b->opts.require_cert ? "true" : "false");
    return fclose(f) ? -1 : 0;
}

static int spawn(struct broker *b)
{
    const char *out = b->out;
    pid_t parent = getpid();

    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        child_stdio(out);
        execl(MOSQUITTO, "mosquitto", "-c", b->conf, (char *)NULL);
        _exit(127);
    }
    b->pid = pid;
    return 0;
}

static void dump_tail(const char *path, int lines);

/* mosquitto said it could not bind. */
static bool port_taken(const struct broker *b)
{
    char buf[8192];
    const char *files[] = {b->out, b->log};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        if (strstr(buf, "Address already in use"))
            return true;
    }
    return false;
}

static int accepts(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* 0 ready, -1 timeout, -2 the broker exited (e.g. could not bind). */
static int wait_ready(struct broker *b, int timeout_ms)
{
    long long deadline = ts_mono_ms() + timeout_ms;
    int status;

    while (ts_mono_ms() < deadline) {
        if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
            b->pid = 0;
            return -2;
        }
        if (accepts(b->port) && (!b->opts.tls || accepts(b->tls_port)))
            return 0;
        sleep_ms(10);
    }
    return -1;
}

int broker_wait_ready(struct broker *b, int timeout_ms)
{
    if (b->pid <= 0)
        return -1;
    return wait_ready(b, timeout_ms) == 0 ? 0 : -1;
}

int broker_start(struct broker *b, const struct broker_opts *opts)
{
    static const struct broker_opts none;

    memset(b, 0, sizeof *b);
    b->opts = opts ? *opts : none;
    snprintf(b->dir, sizeof b->dir, "/tmp/ts-broker-XXXXXX");
    if (!mkdtemp(b->dir)) {
        perror("broker: mkdtemp");
        b->dir[0] = '\0';
        return -1;
    }
    snprintf(b->conf, sizeof b->conf, "%s/mosquitto.conf", b->dir);
    snprintf(b->log, sizeof b->log, "%s/mosquitto.log", b->dir);
    snprintf(b->out, sizeof b->out, "%s/mosquitto.out", b->dir);
    snprintf(b->ca_file, sizeof b->ca_file, "%s/ca.crt", b->dir);
    snprintf(b->client_cert, sizeof b->client_cert, "%s/client.crt", b->dir);
    snprintf(b->client_key, sizeof b->client_key, "%s/client.key", b->dir);
    snprintf(b->other_ca_file, sizeof b->other_ca_file, "%s/other-ca.crt", b->dir);

    if (b->opts.tls && make_certs(b))
        goto fail;
    if (b->opts.username) {
        char pw[320];
        snprintf(pw, sizeof pw, "%s/passwd", b->dir);
        if (write_file(pw, "") == -1)
            goto fail;
        char *argv[] = {MOSQUITTO_PASSWD, "-b", pw, (char *)b->opts.username,
                        (char *)(b->opts.password ? b->opts.password : ""), NULL};
        if (run(b->dir, argv))
            goto fail;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        int hold = -1;
        b->port = free_port(b->opts.tls ? &hold : NULL);
        b->tls_port = b->opts.tls ? free_port(NULL) : 0;
        if (hold >= 0)
            close(hold);
        if (b->port <= 0 || b->tls_port < 0 || write_conf(b) || spawn(b))
            goto fail;
        int rc = wait_ready(b, 10000);
        if (rc == 0)
            return 0;
        if (rc == -1 || !port_taken(b))
            break;
        fprintf(stderr, "broker: port taken, trying other ports\n");
    }
    fprintf(stderr, "broker: mosquitto did not start\n");
    dump_tail(b->out, 20);
    dump_tail(b->log, 20);
fail:
    broker_cleanup(b);
    return -1;
}

static int stop_with(struct broker *b, int sig)
{
    int status;

    if (b->pid <= 0)
        return -1;
    kill(b->pid, sig);
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(b->pid, &status, WNOHANG);
        if (r == b->pid || (r < 0 && errno == ECHILD)) {
            b->pid = 0;
            return 0;
        }
        sleep_ms(10);
    }
    kill(b->pid, SIGKILL);
    waitpid(b->pid, &status, 0);
    b->pid = 0;
    return sig == SIGKILL ? 0 : -1;
}

int broker_stop(struct broker *b)
{
    return stop_with(b, SIGTERM);
}

int broker_kill(struct broker *b)
{
    return stop_with(b, SIGKILL);
}

int broker_restart(struct broker *b)
{
    if (b->pid > 0)
        broker_stop(b);
    if (spawn(b))
        return -1;
    if (wait_ready(b, 10000)) {
        fprintf(stderr, "broker: restart on port %d failed, see %s\n", b->port, b->log);
        broker_dump_log(b, 20);
        return -1;
    }
    return 0;
}

/* The directory is flat: files only. */
static void remove_dir(const char *dir)
{
    char path[600];
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

void broker_cleanup(struct broker *b)
{
    if (b->pid > 0)
        broker_stop(b);
    if (strncmp(b->dir, "/tmp/ts-broker-", 15) == 0 && getenv("TS_KEEP_BROKER_DIR") == NULL)
        remove_dir(b->dir);
    b->dir[0] = '\0';
}

static void dump_tail(const char *path, int lines)
{
    char buf[16384];
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fseek(f, -(long)(sizeof buf - 1), SEEK_END))
        rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *start = buf + n;
    for (int seen = 0; start > buf; start--)
        if (start[-1] == '\n' && ++seen > lines)
            break;
    fprintf(stderr, "--- %s (last %d lines)\n%s", path, lines, start);
}

void broker_dump_log(const struct broker *b, int lines)
{
    dump_tail(b->log, lines);
}
