/* SPDX-License-Identifier: Apache-2.0 */
/* http_source.c - the http backend: a gate controller that serves its
 * counters as JSON over HTTP(S) (docs/http.md).
 *
 * One GET of cfg->url per poll (at turnstile 0's read), each turnstile's
 * counters taken from that document by JSON Pointer at its own read. The response is
 * untrusted: its size, the nesting of its JSON and the time it takes are
 * bounded by the device's config, and a value that is not an integer in
 * 0..the counter's width is refused with the reason in src->why. The call
 * blocks the device's own poll thread for at most timeout_ms (libcurl's
 * easy interface with CURLOPT_TIMEOUT_MS); every other device has a thread
 * of its own. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "hal_private.h"
#include "log.h"
#include "now.h"

#define TOKEN_MAX 4096        /* bytes of a bearer token */

struct http_state {
    CURL *curl;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    char *body;               /* max_response_bytes + 1 */
    size_t len;
    bool too_big;
    bool fresh;               /* the next request opens a new connection */
    struct json_object *root; /* the current poll's document; NULL: none */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct ts_source *src = arg;
    struct http_state *st = src->data;
    size_t bytes = size * n;

    if (bytes > (size_t)src->cfg->max_response_bytes - st->len) {
        st->too_big = true;
        return 0;             /* libcurl stops: CURLE_WRITE_ERROR */
    }
    memcpy(st->body + st->len, data, bytes);
    st->len += bytes;
    return bytes;
}

/* The bearer token from token_file or token_env into buf; "" when neither is set. */
static int read_token(const struct ts_device_cfg *cfg, char *buf, size_t size)
{
    buf[0] = 0;
    if (cfg->token_file[0]) {
        int fd = open(cfg->token_file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
            TS_LOG(TS_LOG_ERR, "device %s: token_file %s: %s", cfg->name, cfg->token_file,
                   strerror(errno));
            return TS_ECONFIG;
        }
        ssize_t n = read(fd, buf, size - 1);
        char extra;
        bool more = n == (ssize_t)size - 1 && read(fd, &extra, 1) > 0;
        close(fd);
        if (n < 0 || more) {
            TS_LOG(TS_LOG_ERR, "device %s: token_file %s: %s", cfg->name, cfg->token_file,
                   n < 0 ? strerror(errno) : "longer than 4095 bytes");
            return TS_ECONFIG;
        }
        buf[n] = 0;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = 0;
    } else if (cfg->token_env[0]) {
        const char *v = getenv(cfg->token_env);
        if (!v || !*v) {
            TS_LOG(TS_LOG_ERR, "device %s: token_env: %s is not set", cfg->name, cfg->token_env);
            return TS_ECONFIG;
        }
        if (strlen(v) >= size) {
            TS_LOG(TS_LOG_ERR, "device %s: token_env: %s is longer than 4095 bytes", cfg->name,
                   cfg->token_env);
            return TS_ECONFIG;
        }
        snprintf(buf, size, "%s", v);
    } else {
        return TS_OK;
    }
    /* a header line: printable ASCII only, never a line break */
    for (const char *p = buf; *p; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            TS_LOG(TS_LOG_ERR, "device %s: the bearer token holds a byte that is not printable "
                   "ASCII", cfg->name);
            return TS_ECONFIG;
        }
    }
    if (!buf[0]) {
        TS_LOG(TS_LOG_ERR, "device %s: the bearer token is empty", cfg->name);
        return TS_ECONFIG;
    }
    return TS_OK;
}

static void http_destroy(struct ts_source *src)
{
    struct http_state *st = src->data;

    if (!st)
        return;
    if (st->curl)
        curl_easy_cleanup(st->curl);
    curl_slist_free_all(st->headers);
    free(st->body);
    json_object_put(st->root);
    free(st);
    src->data = NULL;
}

static int add_header(struct http_state *st, const char *line)
{
    struct curl_slist *l = curl_slist_append(st->headers, line);
    if (!l)
        return TS_ENOMEM;
    st->headers = l;
    return TS_OK;
}

static int http_create(struct ts_source *src)
{
    const struct ts_device_cfg *cfg = src->cfg;
    struct http_state *st;
    char token[TOKEN_MAX], auth[TOKEN_MAX + 32];
    int rc;

    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        TS_LOG(TS_LOG_ERR, "device %s: libcurl: %s", cfg->name, curl_easy_strerror(curl_init_rc));
        return TS_EIO;
    }
    if (cfg->max_response_bytes < 1 || cfg->max_json_depth < 1)
        return TS_ECONFIG;
    if (!(st = calloc(1, sizeof *st)))
        return TS_ENOMEM;
    src->data = st;
    st->body = malloc((size_t)cfg->max_response_bytes + 1);
    st->curl = curl_easy_init();
    if (!st->body || !st->curl)
        return TS_ENOMEM;     /* the caller's destroy frees st */
    if ((rc = read_token(cfg, token, sizeof token)) != TS_OK)
        return rc;
    if ((rc = add_header(st, "Accept: application/json")) != TS_OK)
        return rc;
    if (token[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        rc = add_header(st, auth);
        memset(token, 0, sizeof token);
        memset(auth, 0, sizeof auth);
        if (rc != TS_OK)
            return rc;
    }
    CURL *c = st->curl;
    CURLcode e = CURLE_OK;
#define SET(opt, val)                                                                      \
    do {                                                                                   \
        if (e == CURLE_OK)                                                                 \
            e = curl_easy_setopt(c, opt, val);                                             \
    } while (0)
    SET(CURLOPT_URL, cfg->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);  /* threads: no SIGALRM for resolver timeouts */
    SET(CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->max_response_bytes);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, src);
    SET(CURLOPT_HTTPHEADER, st->headers);
    SET(CURLOPT_ERRORBUFFER, st->errbuf);
    SET(CURLOPT_USERAGENT, "turnstile-agent/" TS_VERSION);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    if (cfg->ca_file[0])
        SET(CURLOPT_CAINFO, cfg->ca_file);
#undef SET
    if (e != CURLE_OK) {
        TS_LOG(TS_LOG_ERR, "device %s: libcurl: %s", cfg->name, curl_easy_strerror(e));
        return e == CURLE_UNSUPPORTED_PROTOCOL ? TS_ECONFIG : TS_EIO;
    }
    return TS_OK;
}

static void http_close(struct ts_source *src)
{
    struct http_state *st = src->data;

    if (st) {
        st->fresh = true;     /* after a fault, never reuse the old connection */
        json_object_put(st->root);
        st->root = NULL;
    }
}

/* One value of turnstile t at pointer path in root: an integer 0..the counter's width. */
static int take(struct ts_source *src, struct json_object *root, const struct ts_turnstile_cfg *t,
                const char *what, const char *path, uint64_t *out)
{
    struct json_object *v = NULL;
    uint64_t max = t->width < 64 ? (UINT64_C(1) << t->width) - 1 : (uint64_t)INT64_MAX;

    if (json_pointer_get(root, path, &v) != 0 || !v) {
        snprintf(src->why, sizeof src->why, "no %s at %s in the response", what, path);
        return TS_EPARSE;
    }
    if (!json_object_is_type(v, json_type_int)) {
        snprintf(src->why, sizeof src->why, "%s at %s is a %s, not an integer", what, path,
                 json_type_to_name(json_object_get_type(v)));
        return TS_EPARSE;
    }
    if (json_object_get_int64(v) < 0) {
        snprintf(src->why, sizeof src->why, "%s at %s is negative (%lld)", what, path,
                 (long long)json_object_get_int64(v));
        return TS_EPARSE;
    }
    uint64_t u = json_object_get_uint64(v); /* saturates past 2^64 - 1 */
    if (u > max) {
        snprintf(src->why, sizeof src->why, "%s at %s is %s%llu, more than a %u-bit counter holds",
                 what, path, u == UINT64_MAX ? "at least " : "", (unsigned long long)u, t->width);
        return TS_EPARSE;
    }
    *out = u;
    return TS_OK;
}

/* The body as a JSON document into st->root, or the reason it is not one. */
static int parse(struct ts_source *src, struct http_state *st)
{
    struct json_tokener *tok = json_tokener_new_ex(src->cfg->max_json_depth);
    struct json_object *root = NULL;
    int rc = TS_OK;

    if (!tok)
        return TS_ENOMEM;
    const char *nul = memchr(st->body, 0, st->len);
    if (nul) {
        snprintf(src->why, sizeof src->why, "not JSON (a NUL byte at byte %zu of %zu)",
                 (size_t)(nul - st->body), st->len);
        rc = TS_EPARSE;
        goto out;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT); /* also: nothing after the document */
    root = json_tokener_parse_ex(tok, st->body, (int)st->len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (!root || je != json_tokener_success) {
        if (je == json_tokener_error_depth)
            snprintf(src->why, sizeof src->why, "JSON nested deeper than max_json_depth (%d)",
                     src->cfg->max_json_depth);
        else
            snprintf(src->why, sizeof src->why, "not JSON (%s at byte %zu of %zu)",
                     je == json_tokener_continue ? "unexpected end"
                                                 : json_tokener_error_desc(je),
                     end, st->len);
        rc = TS_EPARSE;
        goto out;
    }
    st->root = root;
    root = NULL;
out:
    json_object_put(root);
    json_tokener_free(tok);
    return rc;
}

static int fetch(struct ts_source *src, struct http_state *st)
{
    const struct ts_device_cfg *cfg = src->cfg;
    int64_t start = ts_mono_us();
    long status = 0;

    json_object_put(st->root);
    st->root = NULL;
    st->len = 0;
    st->too_big = false;
    st->errbuf[0] = 0;
    curl_easy_setopt(st->curl, CURLOPT_FRESH_CONNECT, st->fresh ? 1L : 0L);
    st->fresh = false;
    CURLcode e = curl_easy_perform(st->curl);
    if (e != CURLE_OK) {
        const char *detail = st->errbuf[0] ? st->errbuf : curl_easy_strerror(e);
        st->fresh = true;
        switch (e) {
        case CURLE_OPERATION_TIMEDOUT:
            snprintf(src->why, sizeof src->why, "no whole response within timeout_ms (%d): %.120s",
                     cfg->timeout_ms, detail);
            return TS_ETIMEOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
            snprintf(src->why, sizeof src->why, "%.180s", detail);
            return TS_ECONNECT;
        case CURLE_WRITE_ERROR:
        case CURLE_FILESIZE_EXCEEDED:
            if (st->too_big || e == CURLE_FILESIZE_EXCEEDED) {
                snprintf(src->why, sizeof src->why,
                         "response larger than max_response_bytes (%d)", cfg->max_response_bytes);
                return TS_EFULL;
            }
            /* fall through */
        default:
            snprintf(src->why, sizeof src->why, "%.180s", detail);
            return TS_EIO;
        }
    }
    curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        snprintf(src->why, sizeof src->why, "HTTP status %ld", status);
        return TS_EIO;
    }
    src->last_rtt_us = ts_mono_us() - start;
    return parse(src, st);
}

static int http_read(struct ts_source *src, size_t i, uint64_t *entries, uint64_t *exits)
{
    struct http_state *st = src->data;
    const struct ts_turnstile_cfg *t = src->turnstiles[i];
    int rc;

    if ((i == 0 || !st->root) && (rc = fetch(src, st)) != TS_OK)
        return rc;    /* one request per poll, at its first turnstile */
    rc = take(src, st->root, t, "entries", t->entries_path, entries);
    return rc != TS_OK ? rc : take(src, st->root, t, "exits", t->exits_path, exits);
}

const struct ts_hal_backend ts_backend_http = {
    .name = "http",
    .create = http_create,
    .close = http_close,
    .read = http_read,
    .destroy = http_destroy,
};
