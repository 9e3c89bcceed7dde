/* SPDX-License-Identifier: Apache-2.0 */
/* http_listener.c - the monitoring listener over libmicrohttpd (see http_listener.h). */
#include "http_listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"

struct ts_http {
    struct MHD_Daemon *d;
    const struct ts_http_route *routes;
    size_t n;
    void *ctx;
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

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len, bool allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg, bool allow)
{
    char *b = strdup(msg);
    return reply(c, status, "text/plain; charset=utf-8", b, b ? strlen(b) : 0, allow);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct ts_http *h = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
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
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->max_request_bytes,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_END);
    if (!h->d) {
        int e = errno;
        free(h);
        errno = e;
        return ts_fail(why, why_size, TS_ESYS, "http: cannot listen on %s: %s", cfg->listen,
                       e ? strerror(e) : "libmicrohttpd refused to start");
    }
    *out = h;
    return TS_OK;
}

void ts_http_free(struct ts_http *h)
{
    if (!h)
        return;
    if (h->d)
        MHD_stop_daemon(h->d);
    free(h);
}
