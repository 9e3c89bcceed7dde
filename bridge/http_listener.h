/* SPDX-License-Identifier: Apache-2.0 */
/* http_listener.h - the bridge's monitoring listener: a small HTTP/1.1
 * server (libmicrohttpd) that answers GET and HEAD of a few fixed paths.
 *
 * Bounds ([http], bridge_config.h): max_connections at once (more wait in
 * the kernel's listen queue), timeout_s per idle or slow connection,
 * max_request_bytes of memory per connection (a longer request line or
 * headers get 414 or 431). Any other method gets 405, any other path 404;
 * a request body is never read. Handlers run on the listener's own thread,
 * one request at a time. docs/monitoring.md. */
#ifndef TS_HTTP_LISTENER_H
#define TS_HTTP_LISTENER_H

#include <stddef.h>
#include <sys/socket.h>

#include "bridge_config.h"

/* A path's handler: returns the HTTP status and sets *body to a malloc'ed
 * text of *len bytes (the listener frees it; NULL with *len 0: empty). */
typedef int (*ts_http_handler)(void *ctx, char **body, size_t *len);

struct ts_http_route {
    const char *path;         /* exact, e.g. "/metrics" (a query string is ignored) */
    const char *content_type;
    ts_http_handler handler;
};

struct ts_http;

/* Parses "A.B.C.D:PORT" or "[IPv6]:PORT" (numeric, port 1..65535) into *ss
 * (may be NULL: only check). TS_OK or TS_EINVAL with a sentence in why. */
int ts_http_parse_listen(const char *listen, struct sockaddr_storage *ss, char *why,
                         size_t why_size);

/* Binds cfg->listen and starts serving routes (n of them; the array and ctx
 * are lent and must outlive the listener). TS_OK; TS_ECONFIG (bad address),
 * TS_ESYS (cannot bind: errno) with a sentence in why. */
int ts_http_new(const struct ts_bridge_http_cfg *cfg, const struct ts_http_route *routes,
                size_t n, void *ctx, struct ts_http **out, char *why, size_t why_size);

/* Stops serving (no handler runs after it returns) and frees; NULL-safe. */
void ts_http_free(struct ts_http *h);

#endif
