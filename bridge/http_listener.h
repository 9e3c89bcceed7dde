/* SPDX-License-Identifier: Apache-2.0 */
/* http_listener.h - the bridge's HTTP listener: a small HTTP/1.1 server
 * (libmicrohttpd) that answers GET and HEAD of a few fixed paths (the
 * monitoring: docs/monitoring.md) and, once a POST route is set, POST of one
 * path (the webhook: webhook.h). HTTPS instead with [http] tls_cert_file
 * (GnuTLS, libmicrohttpd's), client certificates asked for with
 * tls_client_ca_file.
 *
 * Bounds ([http], bridge_config.h): max_connections at once (more wait in
 * the kernel's listen queue), timeout_s per idle or slow connection,
 * max_request_bytes of memory per connection (a longer request line or
 * headers get 414 or 431). Any other method gets 405, any other path 404;
 * the body of any request but the POST route's is never read. Handlers run
 * on the listener's own thread, one request at a time, and must not block:
 * a POST that waits (for Kafka) is suspended and answered later
 * (ts_http_resume), so it never holds up a scrape. */
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

/* A POST request whose answer comes later (finish returned 0). */
struct ts_http_pending;

/* The POST route (one per listener). Its callbacks run on the listener's
 * thread and must not block.
 *   begin: the request line and headers are in (authorization: the
 *     Authorization header or NULL; client_cn: the common name of the client
 *     certificate the TLS handshake presented and [http] tls_client_ca_file
 *     verified, or NULL; content_length: -1 if not given).
 *     Returns 0 to read the body (*req: the route's state for this request,
 *     handed to the calls below), or an HTTP status with *body (malloc'ed,
 *     the listener frees it; may be NULL) as the answer: the body is not read.
 *   finish: the whole body (lent for the call, at most max_body bytes;
 *     NUL-terminated at data[n]) is in: returns the status and sets *body;
 *     or returns 0: the request waits (its connection suspended, taking no
 *     time of the listener's and free of timeout_s) until the route calls
 *     ts_http_resume(pending, ...) exactly once, from any thread, before end
 *     can come (the route must do it before the listener is freed).
 *   end: the request is over (answered, or the client went away, or the
 *     body was too long or too slow); called once for every begin that
 *     returned 0; releases req.
 * The body must arrive within max_ms of begin: a slower one gets its
 * connection closed; a longer one than max_body gets 413. */
struct ts_http_post {
    const char *path;
    const char *content_type;  /* of the answers */
    size_t max_body;
    long long max_ms;
    void *ctx;
    int (*begin)(void *ctx, const char *authorization, const char *client_cn,
                 const char *content_type, long long content_length, void **req, char **body,
                 size_t *len);
    int (*finish)(void *ctx, void *req, const char *data, size_t n,
                  struct ts_http_pending *pending, char **body, size_t *len);
    void (*end)(void *ctx, void *req);
};

/* Parses "A.B.C.D:PORT" or "[IPv6]:PORT" (numeric, port 1..65535) into *ss
 * (may be NULL: only check). TS_OK or TS_EINVAL with a sentence in why. */
int ts_http_parse_listen(const char *listen, struct sockaddr_storage *ss, char *why,
                         size_t why_size);

/* Binds cfg->listen and starts serving routes (n of them; the array and ctx
 * are lent and must outlive the listener). TS_OK; TS_ECONFIG (bad address),
 * TS_ESYS (cannot bind: errno) with a sentence in why. With cfg->tls_cert_file
 * it speaks HTTPS only (the files are read here: TS_ECONFIG if one cannot be
 * read), and with tls_client_ca_file it asks every client for a certificate
 * (optional: one without is served, its client_cn is NULL). */
int ts_http_new(const struct ts_bridge_http_cfg *cfg, const struct ts_http_route *routes,
                size_t n, void *ctx, struct ts_http **out, char *why, size_t why_size);

/* Sets (post lent; it must outlive the listener) or, with NULL, clears the
 * POST route; without one POST gets 405. Thread-safe; a request already
 * begun keeps the route it began with (clear it only once the route's own
 * requests are answered, see webhook.h). */
void ts_http_set_post(struct ts_http *h, const struct ts_http_post *post);

/* The answer of a request finish left waiting: status and body (malloc'ed,
 * taken; may be NULL). Any thread; once per pending request. */
void ts_http_resume(struct ts_http_pending *pending, int status, char *body, size_t len);

/* Stops serving (no handler runs after it returns) and frees; NULL-safe.
 * No request may be waiting (see finish); answers resumed just before are
 * sent first (up to 2 s). */
void ts_http_free(struct ts_http *h);

#endif
