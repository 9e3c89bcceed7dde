/* SPDX-License-Identifier: Apache-2.0 */
/* http_listener.c - the monitoring listener over libmicrohttpd (see http_listener.h). */
#include "http_listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "now.h"

struct ts_http {
    struct MHD_Daemon *d;
    const struct ts_http_route *routes;
    size_t n;
    void *ctx;
    pthread_mutex_t lock;
    const struct ts_http_post *post;  /* guarded by lock */
    int answering;            /* guarded by lock: resumed requests whose answer is not sent */
    bool client_certs;        /* TLS with tls_client_ca_file: client certificates verified */
    char *tls_key, *tls_cert, *tls_trust; /* PEM texts, kept while the daemon runs */
};

#define PEM_MAX (1024 * 1024) /* a certificate, key or CA file at most */

#define DRAIN_MS 2000         /* ts_http_free waits this long at most for resumed answers */

/* A POST request of the route: its body as it arrives. */
struct upload {
    struct ts_http *h;
    struct MHD_Connection *conn;
    const struct ts_http_post *post;
    void *req;                /* the route's; end() due when begun */
    bool begun;
    bool answered;            /* a response is queued: the rest is not read */
    char *buf;                /* max_body + 1 bytes, allocated as the body grows */
    size_t len, cap;
    long long start;          /* monotonic ms at begin */
    bool suspended;           /* finish said pending: waits for ts_http_resume */
    bool resumed;             /* counted in h->answering until the request ends */
    int status;               /* set by ts_http_resume */
    char *reply;
    size_t reply_len;
};

int ts_http_parse_listen(const char *listen, struct sockaddr_storage *ss, char *why,
                         size_t why_size)
{
    struct sockaddr_storage tmp;
    char host[64];
    const char *colon = strrchr(listen, ':');
    if (!ss)
        ss = &tmp;
    memset(ss, 0, sizeof *ss);
    if (!colon || colon == listen)
        return ts_fail(why, why_size, TS_EINVAL, "'%s' is not ADDRESS:PORT", listen);
    size_t hl = (size_t)(colon - listen);
    const char *h = listen;
    bool v6 = listen[0] == '[';
    if (v6) {
        if (hl < 3 || listen[hl - 1] != ']')
            return ts_fail(why, why_size, TS_EINVAL, "'%s': an IPv6 address goes in [ ]", listen);
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host)
        return ts_fail(why, why_size, TS_EINVAL, "'%s': the address is too long", listen);
    memcpy(host, h, hl);
    host[hl] = 0;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || errno || port < 1 || port > 65535)
        return ts_fail(why, why_size, TS_EINVAL, "'%s': the port must be 1 to 65535", listen);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return ts_fail(why, why_size, TS_EINVAL, "'%s' is not an IPv6 address", host);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return ts_fail(why, why_size, TS_EINVAL, "'%s' is not an IPv4 address (a name is "
                           "not resolved; IPv6 goes in [ ])", host);
    }
    return TS_OK;
}

/* libmicrohttpd's own messages (a refused connection, a request too big):
 * at debug level, so that a hostile client cannot fill the log. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    TS_LOG(TS_LOG_DEBUG, "http: %s", line);
}

/* An answer with body (taken: freed here) and one more header (name NULL: none). */
static enum MHD_Result reply_with(struct MHD_Connection *c, unsigned status, const char *type,
                                  char *body, size_t len, const char *name, const char *value)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (name)
        MHD_add_response_header(r, name, value);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len, bool allow)
{
    return reply_with(c, status, type, body, len, allow ? MHD_HTTP_HEADER_ALLOW : NULL,
                      "GET, HEAD");
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg, bool allow)
{
    char *b = strdup(msg);
    return reply(c, status, "text/plain; charset=utf-8", b, b ? strlen(b) : 0, allow);
}

static enum MHD_Result answer(struct MHD_Connection *c, struct upload *u, int status, char *body,
                              size_t len)
{
    u->answered = true;
    if (!body)
        len = 0;
    /* 401 names the scheme; 503 says when to come back */
    return reply_with(c, (unsigned)status, u->post->content_type, body, len,
                      status == 401 ? MHD_HTTP_HEADER_WWW_AUTHENTICATE
                      : status == 503 ? MHD_HTTP_HEADER_RETRY_AFTER : NULL,
                      status == 401 ? "Bearer" : "1");
}

/* The CN of the client certificate of c's TLS session into cn, if the client
 * presented one and it verifies against tls_client_ca_file (signature chain,
 * validity dates); else false. Nothing a client sends is trusted before that. */
static bool client_cn(struct MHD_Connection *c, char *cn, size_t size)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session)
        return false;
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned status = 0, n = 0;
    if (gnutls_certificate_verify_peers2(s, &status) != GNUTLS_E_SUCCESS || status != 0)
        return false;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
    if (!peers || n == 0)
        return false;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) != GNUTLS_E_SUCCESS)
        return false;
    size_t len = size;
    bool ok = gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) == GNUTLS_E_SUCCESS &&
              gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &len) ==
                  GNUTLS_E_SUCCESS &&
              len < size && strlen(cn) == len;   /* no NUL inside the name */
    gnutls_x509_crt_deinit(crt);
    return ok;
}

/* The POST route: headers (first call), body chunks, end of body. */
static enum MHD_Result on_post(struct ts_http *h, struct MHD_Connection *c,
                               const struct ts_http_post *post, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    struct upload *u = *con_cls;
    char *body = NULL;
    size_t len = 0;
    if (!u) {
        if (!(u = calloc(1, sizeof *u)))
            return MHD_NO;
        u->post = post;
        u->h = h;
        u->conn = c;
        u->start = ts_mono_ms();
        *con_cls = u;   /* freed by on_completed */
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_CONTENT_TYPE);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        long long clen = -1;
        if (cl) {
            char *end;
            errno = 0;
            clen = strtoll(cl, &end, 10);
            if (errno || *end || end == cl || clen < 0)
                clen = (long long)post->max_body + 1;   /* libmicrohttpd refuses it anyway */
        }
        char cn[256];
        bool have_cn = h->client_certs && client_cn(c, cn, sizeof cn);
        int status = post->begin(post->ctx, auth, have_cn ? cn : NULL, type, clen, &u->req, &body,
                                 &len);
        if (status)
            return answer(c, u, status, body, len);
        u->begun = true;
        if (clen > (long long)post->max_body) {
            char msg[96];
            snprintf(msg, sizeof msg, "the body is longer than %zu bytes\n", post->max_body);
            return answer(c, u, MHD_HTTP_CONTENT_TOO_LARGE, strdup(msg), strlen(msg));
        }
        return MHD_YES;
    }
    if (u->suspended) {   /* resumed by ts_http_resume: its answer */
        u->suspended = false;
        char *b = u->reply;
        u->reply = NULL;
        return answer(c, u, u->status, b, u->reply_len);
    }
    if (u->answered) {   /* the rest of a refused body: dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ts_mono_ms() - u->start > post->max_ms) {
            TS_LOG(TS_LOG_DEBUG, "http: POST %s: the body took longer than %lld ms: closed",
                   post->path, post->max_ms);
            return MHD_NO;   /* too slow: the connection is closed */
        }
        if (n > post->max_body - u->len) {
            TS_LOG(TS_LOG_DEBUG, "http: POST %s: the body is longer than %zu bytes: closed",
                   post->path, post->max_body);
            return MHD_NO;   /* no Content-Length and too long: closed */
        }
        if (u->len + n + 1 > u->cap) {
            size_t cap = u->cap ? u->cap : 4096;
            while (cap < u->len + n + 1)
                cap *= 2;
            if (cap > post->max_body + 1)
                cap = post->max_body + 1;
            char *b = realloc(u->buf, cap);
            if (!b)
                return MHD_NO;
            u->buf = b;
            u->cap = cap;
        }
        memcpy(u->buf + u->len, upload_data, n);
        u->len += n;
        return MHD_YES;
    }
    if (!u->buf && !(u->buf = calloc(1, 1)))
        return MHD_NO;
    u->buf[u->len] = 0;
    int status = post->finish(post->ctx, u->req, u->buf, u->len, (struct ts_http_pending *)u,
                              &body, &len);
    if (status == 0) {   /* answered later: ts_http_resume */
        u->suspended = true;
        MHD_suspend_connection(c);
        return MHD_YES;
    }
    return answer(c, u, status, body, len);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct upload *u = *con_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (!u)
        return;
    if (u->resumed) {
        pthread_mutex_lock(&u->h->lock);
        u->h->answering--;
        pthread_mutex_unlock(&u->h->lock);
    }
    if (u->begun)
        u->post->end(u->post->ctx, u->req);
    free(u->reply);
    free(u->buf);
    free(u);
    *con_cls = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct ts_http *h = cls;
    (void)version;
    if (*con_cls)
        return on_post(h, c, ((struct upload *)*con_cls)->post, upload_data, upload_data_size,
                       con_cls);
    if (!strcmp(method, MHD_HTTP_METHOD_POST)) {
        pthread_mutex_lock(&h->lock);
        const struct ts_http_post *post = h->post;
        pthread_mutex_unlock(&h->lock);
        if (post && !strcmp(url, post->path))
            return on_post(h, c, post, upload_data, upload_data_size, con_cls);
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n", true);
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(url, h->routes[i].path) != 0)
            continue;
        char *body = NULL;
        size_t len = 0;
        int status = h->routes[i].handler(h->ctx, &body, &len);
        if (!body)
            len = 0;
        return reply(c, (unsigned)status, h->routes[i].content_type, body, len, false);
    }
    return text(c, MHD_HTTP_NOT_FOUND, "not found\n", false);
}

/* The whole of a PEM file, NUL-terminated, into *out (malloc'ed). */
static int read_pem(const char *key, const char *path, char **out, char *why, size_t why_size)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return ts_fail(why, why_size, TS_ECONFIG, "http: %s %s: %s", key, path, strerror(errno));
    char *b = malloc(PEM_MAX + 1);
    size_t n = b ? fread(b, 1, PEM_MAX + 1, f) : 0;
    bool err = ferror(f);
    fclose(f);
    if (!b)
        return ts_fail(why, why_size, TS_ENOMEM, "%s", "http: out of memory");
    if (err || n == 0 || n > PEM_MAX || !strstr(b, "-----BEGIN ")) {
        free(b);
        return ts_fail(why, why_size, TS_ECONFIG, "http: %s %s: %s", key, path,
                       err ? "cannot be read" : n > PEM_MAX ? "larger than 1 MiB"
                                                            : "not a PEM file");
    }
    b[n] = 0;
    *out = b;
    return TS_OK;
}

static void free_pems(struct ts_http *h)
{
    if (h->tls_key)   /* the private key does not stay in freed memory */
        memset(h->tls_key, 0, strlen(h->tls_key));
    free(h->tls_key);
    free(h->tls_cert);
    free(h->tls_trust);
}

int ts_http_new(const struct ts_bridge_http_cfg *cfg, const struct ts_http_route *routes,
                size_t n, void *ctx, struct ts_http **out, char *why, size_t why_size)
{
    struct sockaddr_storage ss;
    char pwhy[160];
    *out = NULL;
    if (ts_http_parse_listen(cfg->listen, &ss, pwhy, sizeof pwhy) != TS_OK)
        return ts_fail(why, why_size, TS_ECONFIG, "http: listen: %s", pwhy);
    struct ts_http *h = calloc(1, sizeof *h);
    if (!h)
        return ts_fail(why, why_size, TS_ENOMEM, "%s", "http: out of memory");
    h->routes = routes;
    h->n = n;
    h->ctx = ctx;
    pthread_mutex_init(&h->lock, NULL);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* TLS: the options come first in the list, MHD_OPTION_ARRAY ends the
     * TLS part (nothing when plain) */
    struct MHD_OptionItem tls[4] = {{MHD_OPTION_END, 0, NULL}};
    if (cfg->tls_cert_file[0]) {
        int rc = read_pem("tls_cert_file", cfg->tls_cert_file, &h->tls_cert, why, why_size);
        if (rc == TS_OK)
            rc = read_pem("tls_key_file", cfg->tls_key_file, &h->tls_key, why, why_size);
        if (rc == TS_OK && cfg->tls_client_ca_file[0])
            rc = read_pem("tls_client_ca_file", cfg->tls_client_ca_file, &h->tls_trust, why,
                          why_size);
        if (rc != TS_OK) {
            free_pems(h);
            pthread_mutex_destroy(&h->lock);
            free(h);
            return rc;
        }
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
        if (h->tls_trust) {
            tls[2] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, h->tls_trust};
            h->client_certs = true;
        }
    }
    errno = 0;
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h,
        MHD_OPTION_ARRAY, tls,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->max_request_bytes,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_END);
    if (!h->d) {
        int e = errno;
        bool tls_on = h->tls_cert != NULL;
        free_pems(h);
        pthread_mutex_destroy(&h->lock);
        free(h);
        errno = e;
        return ts_fail(why, why_size, TS_ESYS, "http: cannot listen on %s: %s", cfg->listen,
                       e ? strerror(e) : tls_on ? "libmicrohttpd refused to start (TLS: is "
                       "tls_key_file the key of tls_cert_file, are they PEM?)"
                                                : "libmicrohttpd refused to start");
    }
    *out = h;
    return TS_OK;
}

void ts_http_resume(struct ts_http_pending *p, int status, char *body, size_t len)
{
    struct upload *u = (struct upload *)p;
    u->status = status;
    u->reply = body;
    u->reply_len = body ? len : 0;
    u->resumed = true;
    pthread_mutex_lock(&u->h->lock);
    u->h->answering++;
    pthread_mutex_unlock(&u->h->lock);
    MHD_resume_connection(u->conn);   /* thread-safe: the listener's thread answers */
}

void ts_http_set_post(struct ts_http *h, const struct ts_http_post *post)
{
    pthread_mutex_lock(&h->lock);
    h->post = post;
    pthread_mutex_unlock(&h->lock);
}

void ts_http_free(struct ts_http *h)
{
    if (!h)
        return;
    /* answers resumed just before (the webhook's at its stop) are sent first */
    for (int i = 0; h->d && i < DRAIN_MS / 10; i++) {
        pthread_mutex_lock(&h->lock);
        int n = h->answering;
        pthread_mutex_unlock(&h->lock);
        if (n == 0)
            break;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    if (h->d)
        MHD_stop_daemon(h->d);
    free_pems(h);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
