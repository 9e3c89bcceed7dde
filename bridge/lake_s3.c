/* SPDX-License-Identifier: Apache-2.0 */
/* lake_s3.c - the object lake's S3 client (see lake_s3.h).
 *
 * One request is build_url + perform: perform runs the attempts (a fresh
 * upload position, response body and ETag each time), sleeps the back-off
 * between them and maps the last answer to an error. The signature is
 * libcurl's (CURLOPT_AWS_SIGV4, "aws:amz:REGION:s3"); the payload is sent
 * as UNSIGNED-PAYLOAD (x-amz-content-sha256), which S3 and GCS accept.
 * libcurl 7.88 signs the query string as written, so every query here is
 * built with its parameters in sorted order and fully percent-encoded, as
 * SigV4's canonical form wants. */
#include "lake_s3.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define KEY_MAX 900            /* bytes of a relative key (S3 allows 1024 with the prefix) */
#define PREFIX_MAX 100
#define ERR_BODY_MAX 4096      /* bytes of an error answer kept for the message */
#define SECRET_MAX 256
#define URL_MAX 12288
#define PARTS_MAX 10000        /* S3's limit of parts in one upload */

struct ts_s3 {
    CURL *curl;
    char *bucket, *prefix;     /* prefix "" or ending in '/' */
    char *base;                /* http[s]://host[:port][/bucket] : keys follow with '/' */
    char sigv4[96];
    char userpwd[SECRET_MAX * 2 + 2];
    char *token_header;        /* "x-amz-security-token: ..." or NULL */
    bool goog;                 /* conditional puts as GCS wants them */
    long timeout_ms, connect_timeout_ms, backoff_ms, backoff_max_ms;
    int max_attempts;
    size_t part_size, max_object, max_list;
    char *ca_file;
    uint64_t requests, retries;
    unsigned seed;             /* back-off jitter */
};

/* ---- one request ---- */

struct body {                  /* what is sent */
    const char *data;
    size_t len, pos;
};

struct answer {                /* what came back */
    char *data;
    size_t len, cap, max;
    bool over;
    char etag[128];
};

static size_t read_body(char *buf, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t k = size * n;
    if (k > b->len - b->pos)
        k = b->len - b->pos;
    memcpy(buf, b->data + b->pos, k);
    b->pos += k;
    return k;
}

static int seek_body(void *arg, curl_off_t offset, int origin)
{
    struct body *b = arg;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > b->len)
        return CURL_SEEKFUNC_CANTSEEK;
    b->pos = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t write_answer(char *buf, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t k = size * n;
    if (a->len + k > a->max) {
        a->over = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (a->len + k + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + k + 1)
            cap *= 2;
        char *d = realloc(a->data, cap);
        if (!d)
            return 0;
        a->data = d;
        a->cap = cap;
    }
    memcpy(a->data + a->len, buf, k);
    a->len += k;
    a->data[a->len] = '\0';
    return k;
}

static size_t header_answer(char *buf, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t k = size * n;
    if (k > 5 && !strncasecmp(buf, "etag:", 5)) {
        size_t i = 5, e = k;
        while (i < e && (buf[i] == ' ' || buf[i] == '\t'))
            i++;
        while (e > i && (buf[e - 1] == '\r' || buf[e - 1] == '\n' || buf[e - 1] == ' '))
            e--;
        if (e - i < sizeof a->etag) {
            memcpy(a->etag, buf + i, e - i);
            a->etag[e - i] = '\0';
        }
    }
    return k;
}

/* S3's <Code> of an error answer, or "". */
static void error_code(const struct answer *a, char *code, size_t size)
{
    const char *s = a->data ? strstr(a->data, "<Code>") : NULL;
    const char *e = s ? strstr(s + 6, "</Code>") : NULL;
    code[0] = '\0';
    if (e && (size_t)(e - s - 6) < size)
        snprintf(code, size, "%.*s", (int)(e - s - 6), s + 6);
}

static bool retryable_status(long status)
{
    return status == 500 || status == 502 || status == 503 || status == 504 || status == 429;
}

static void back_off(struct ts_s3 *s3, int attempt)
{
    long ms = s3->backoff_ms;
    for (int i = 1; i < attempt && ms < s3->backoff_max_ms; i++)
        ms *= 2;
    if (ms > s3->backoff_max_ms)
        ms = s3->backoff_max_ms;
    ms = ms / 2 + (long)(rand_r(&s3->seed) % (unsigned)(ms / 2 + 1));
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

enum method { GET, PUT, POST, DELETE };

/* Runs the request with retries. *status is the last HTTP status (0: no
 * answer). Returns TS_OK when a final answer came (any status: the caller
 * judges it), TS_ECONNECT when no attempt got one, TS_EFULL when an answer
 * was over a->max, TS_EIO when the last of the attempts was a 5xx. */
static int perform(struct ts_s3 *s3, enum method m, const char *url, struct curl_slist *hdrs,
                   const struct body *send, struct answer *a, long *status, char *why,
                   size_t why_size)
{
    char errbuf[CURL_ERROR_SIZE];
    CURL *c = s3->curl;
    CURLcode rc = CURLE_OK;
    *status = 0;
    for (int attempt = 1; attempt <= s3->max_attempts; attempt++) {
        struct body b = send ? *send : (struct body){0};
        size_t max = a->max;
        free(a->data);
        *a = (struct answer){.max = max};
        errbuf[0] = '\0';
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s3->sigv4);
        curl_easy_setopt(c, CURLOPT_USERPWD, s3->userpwd);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s3->timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s3->connect_timeout_ms);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_answer);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_answer);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
        if (s3->ca_file)
            curl_easy_setopt(c, CURLOPT_CAINFO, s3->ca_file);
        switch (m) {
        case GET:
            break;
        case DELETE:
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
            break;
        case PUT:
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, read_body);
            curl_easy_setopt(c, CURLOPT_READDATA, &b);
            curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_body);
            curl_easy_setopt(c, CURLOPT_SEEKDATA, &b);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)b.len);
            break;
        case POST:
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, b.data ? b.data : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b.len);
            break;
        }
        s3->requests++;
        rc = curl_easy_perform(c);
        *status = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        if (a->over)
            return ts_fail(why, why_size, TS_EFULL, "%s: answer over %zu bytes", url, a->max);
        if (rc == CURLE_OUT_OF_MEMORY ||
            (rc == CURLE_WRITE_ERROR && !a->over))
            return ts_fail(why, why_size, TS_ENOMEM, "%s: out of memory", url);
        if (rc == CURLE_OK && !retryable_status(*status))
            return TS_OK;
        if (attempt < s3->max_attempts) {
            s3->retries++;
            TS_LOG(TS_LOG_INFO, "s3: %s: %s, attempt %d of %d", url,
                   rc ? (errbuf[0] ? errbuf : curl_easy_strerror(rc)) : "server error",
                   attempt, s3->max_attempts);
            back_off(s3, attempt);
        }
    }
    if (rc != CURLE_OK)
        return ts_fail(why, why_size, TS_ECONNECT, "%s: %s (%d attempts)", url,
                       errbuf[0] ? errbuf : curl_easy_strerror(rc), s3->max_attempts);
    char code[64];
    error_code(a, code, sizeof code);
    return ts_fail(why, why_size, TS_EIO, "%s: HTTP %ld %s (%d attempts)", url, *status, code,
                   s3->max_attempts);
}

/* Maps a final answer: 2xx TS_OK, 404 TS_ENOTFOUND, 412 TS_ECONFLICT, else TS_EIO. */
static int judge(const char *what, long status, const struct answer *a, char *why,
                 size_t why_size)
{
    char code[64];
    if (status >= 200 && status < 300)
        return TS_OK;
    error_code(a, code, sizeof code);
    int err = status == 404 ? TS_ENOTFOUND : status == 412 ? TS_ECONFLICT : TS_EIO;
    return ts_fail(why, why_size, err, "%s: HTTP %ld%s%s", what, status, code[0] ? " " : "", code);
}

/* ---- names ---- */

static bool key_ok(const char *k)
{
    size_t n = k ? strnlen(k, KEY_MAX + 1) : 0;
    if (n == 0 || n > KEY_MAX || k[0] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '=' || c == '/'))
            return false;
        if (c == '/' && k[i + 1] == '/')
            return false;
        /* no "." or ".." segment: a server or proxy may resolve them */
        if ((i == 0 || k[i - 1] == '/') && c == '.' &&
            (k[i + 1] == '/' || !k[i + 1] || (k[i + 1] == '.' && (k[i + 2] == '/' || !k[i + 2]))))
            return false;
    }
    return true;
}

/* Percent-encodes s into out as SigV4 wants (unreserved bytes kept; '/'
 * kept if keep_slash). */
static void encode(char *out, size_t size, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s && n + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
}

/* BASE/PREFIXKEY[?QUERY] */
static void build_url(const struct ts_s3 *s3, char *url, const char *key, const char *query)
{
    char full[PREFIX_MAX + KEY_MAX + 2], enc[3 * sizeof full];
    snprintf(full, sizeof full, "%s%s", s3->prefix, key ? key : "");
    encode(enc, sizeof enc, full, true);
    snprintf(url, URL_MAX, "%s/%s%s%s", s3->base, enc, query ? "?" : "", query ? query : "");
}

static struct curl_slist *headers(const struct ts_s3 *s3, const char *extra1, const char *extra2)
{
    struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD"), *t;
    /* libcurl signs every header it is given: the token is part of the signature */
    if (h && s3->token_header && (t = curl_slist_append(h, s3->token_header)))
        h = t;
    /* no "Expect: 100-continue" round trip before each upload */
    if (h && (t = curl_slist_append(h, "Expect:")))
        h = t;
    if (h && extra1 && (t = curl_slist_append(h, extra1)))
        h = t;
    if (h && extra2 && (t = curl_slist_append(h, extra2)))
        h = t;
    return h;
}

/* ---- the API ---- */

static int read_secret(const char *file, const char *env, const char *what, char *out,
                       size_t size, char *why, size_t why_size)
{
    if (file && *file) {
        FILE *f = fopen(file, "re");
        if (!f)
            return ts_fail(why, why_size, TS_ECONFIG, "%s: %s: %s", what, file, strerror(errno));
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, f);
        fclose(f);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        int err = TS_OK;
        if (n <= 0)
            err = ts_fail(why, why_size, TS_ECONFIG, "%s: %s is empty", what, file);
        else if ((size_t)n >= size)
            err = ts_fail(why, why_size, TS_ECONFIG, "%s: %s is too long", what, file);
        else
            memcpy(out, line, (size_t)n + 1);
        if (line) {
            explicit_bzero(line, cap);
            free(line);
        }
        return err;
    }
    const char *v = getenv(env);
    if (!v || !*v)
        return ts_fail(why, why_size, TS_ECONFIG, "%s: no file given and %s is not set", what,
                       env);
    if (strlen(v) >= size)
        return ts_fail(why, why_size, TS_ECONFIG, "%s: %s is too long", what, env);
    strcpy(out, v);
    return TS_OK;
}

int ts_s3_credentials(const char *key_id_file, const char *secret_file, char *key_id,
                      size_t key_id_size, char *secret, size_t secret_size, char *why,
                      size_t why_size)
{
    int err = read_secret(key_id_file, "AWS_ACCESS_KEY_ID", "access key id", key_id,
                          key_id_size, why, why_size);
    if (!err)
        err = read_secret(secret_file, "AWS_SECRET_ACCESS_KEY", "secret access key", secret,
                          secret_size, why, why_size);
    for (const char *p = key_id; !err && *p; p++)
        if (*p == ':' || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            err = ts_fail(why, why_size, TS_ECONFIG, "access key id: not printable ASCII");
    return err;
}

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool bucket_ok(const char *b, size_t n)
{
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' ||
              b[i] == '-'))
            return false;
    return b[0] != '.' && b[0] != '-';
}

static int check_cfg(const struct ts_s3_cfg *c, char *why, size_t why_size)
{
    const char *bad = NULL;
    if (!c || !c->url || strncmp(c->url, "s3://", 5))
        bad = "url: must be s3://BUCKET[/PREFIX]";
    else if (!c->region || !*c->region || strlen(c->region) > 32 || strchr(c->region, ':'))
        bad = "region: 1 to 32 characters";
    else if (c->endpoint && *c->endpoint && strncmp(c->endpoint, "http://", 7) &&
             strncmp(c->endpoint, "https://", 8))
        bad = "endpoint: must be http://HOST[:PORT] or https://HOST[:PORT]";
    else if (c->endpoint && strlen(c->endpoint) > 512)
        bad = "endpoint: too long";
    else if (!c->key_id || !*c->key_id || strlen(c->key_id) >= SECRET_MAX || !c->secret ||
             !*c->secret || strlen(c->secret) >= SECRET_MAX)
        bad = "credentials: key id and secret required (at most 255 bytes each)";
    else if (c->session_token && (strlen(c->session_token) > 4096 ||
                                  strpbrk(c->session_token, "\r\n")))
        bad = "session token: at most 4096 bytes, one line";
    else if (c->timeout_ms < 100 || c->connect_timeout_ms < 100)
        bad = "timeouts: at least 100 ms";
    else if (c->max_attempts < 1 || c->max_attempts > 100)
        bad = "attempts: 1 to 100";
    else if (c->backoff_ms < 1 || c->backoff_max_ms < c->backoff_ms)
        bad = "back-off: at least 1 ms, the maximum at least the first";
    else if (c->part_size < 5u << 20 || c->part_size > 1u << 30)
        bad = "part size: 5 MiB to 1 GiB";
    else if (c->max_object < 1 || c->max_list < 1)
        bad = "bounds: at least 1";
    if (bad)
        return ts_fail(why, why_size, TS_ECONFIG, "s3 %s", bad);
    const char *b = c->url + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    if (!bucket_ok(b, bl))
        return ts_fail(why, why_size, TS_ECONFIG, "s3 url: bucket must be 3 to 63 of [a-z0-9.-]");
    if (slash && slash[1] && (strlen(slash + 1) >= PREFIX_MAX || !key_ok(slash + 1)))
        return ts_fail(why, why_size, TS_ECONFIG,
                       "s3 url: prefix must be up to 99 of [A-Za-z0-9._=/-], no '//'");
    return TS_OK;
}

int ts_s3_open(const struct ts_s3_cfg *cfg, struct ts_s3 **out, char *why, size_t why_size)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    char host[600];

    if (!out)
        return TS_EINVAL;
    *out = NULL;
    int err = check_cfg(cfg, why, why_size);
    if (err)
        return err;
    pthread_once(&once, global_init);
    struct ts_s3 *s3 = calloc(1, sizeof *s3);
    if (!s3)
        return TS_ENOMEM;
    const char *b = cfg->url + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    s3->bucket = strndup(b, bl);
    const char *p = slash ? slash + 1 : "";
    size_t pl = strlen(p);
    while (pl && p[pl - 1] == '/')
        pl--;
    s3->prefix = malloc(pl + 2);
    if (s3->prefix)
        snprintf(s3->prefix, pl + 2, "%.*s%s", (int)pl, p, pl ? "/" : "");
    if (cfg->endpoint && *cfg->endpoint)
        snprintf(host, sizeof host, "%s", cfg->endpoint);
    else
        snprintf(host, sizeof host, "https://s3.%s.amazonaws.com", cfg->region);
    size_t hl = strlen(host);
    while (hl && host[hl - 1] == '/')
        host[--hl] = '\0';
    size_t need = hl + bl + 3;
    s3->base = malloc(need);
    if (s3->base && s3->bucket) {
        if (cfg->path_style) {
            snprintf(s3->base, need, "%s/%s", host, s3->bucket);
        } else { /* scheme://bucket.host[:port] */
            char *h = strstr(host, "://") + 3;
            snprintf(s3->base, need, "%.*s%s.%s", (int)(h - host), host, s3->bucket, h);
        }
    }
    snprintf(s3->sigv4, sizeof s3->sigv4, "aws:amz:%s:s3", cfg->region);
    snprintf(s3->userpwd, sizeof s3->userpwd, "%s:%s", cfg->key_id, cfg->secret);
    s3->timeout_ms = cfg->timeout_ms;
    s3->connect_timeout_ms = cfg->connect_timeout_ms;
    s3->max_attempts = cfg->max_attempts;
    s3->backoff_ms = cfg->backoff_ms;
    s3->backoff_max_ms = cfg->backoff_max_ms;
    s3->part_size = cfg->part_size;
    s3->max_object = cfg->max_object;
    s3->max_list = cfg->max_list;
    if (cfg->ca_file)
        s3->ca_file = strdup(cfg->ca_file);
    s3->goog = cfg->goog_preconditions;
    if (cfg->session_token && *cfg->session_token) {
        size_t tl = strlen(cfg->session_token) + 32;
        if ((s3->token_header = malloc(tl)))
            snprintf(s3->token_header, tl, "x-amz-security-token: %s", cfg->session_token);
    }
    if (getrandom(&s3->seed, sizeof s3->seed, GRND_NONBLOCK) != (ssize_t)sizeof s3->seed)
        s3->seed = (unsigned)(uintptr_t)s3 ^ (unsigned)time(NULL);
    s3->curl = curl_easy_init();
    if (!s3->bucket || !s3->prefix || !s3->base || !s3->curl || (cfg->ca_file && !s3->ca_file) ||
        (cfg->session_token && *cfg->session_token && !s3->token_header)) {
        ts_s3_close(s3);
        return TS_ENOMEM;
    }
    *out = s3;
    return TS_OK;
}

/* A PUT of len bytes with the given extra headers; the ETag in etag (may be NULL). */
static int put_bytes(struct ts_s3 *s3, const char *key, const char *query, const void *data,
                     size_t len, const char *h1, char *etag, size_t etag_size, char *why,
                     size_t why_size)
{
    char url[URL_MAX];
    struct answer a = {.max = ERR_BODY_MAX};
    long status;
    struct curl_slist *h = headers(s3, h1, NULL);
    if (!h)
        return TS_ENOMEM;
    build_url(s3, url, key, query);
    struct body b = {.data = data, .len = len};
    int err = perform(s3, PUT, url, h, &b, &a, &status, why, why_size);
    if (!err)
        err = judge(url, status, &a, why, why_size);
    if (!err && etag)
        snprintf(etag, etag_size, "%s", a.etag);
    curl_slist_free_all(h);
    free(a.data);
    return err;
}

int ts_s3_put(struct ts_s3 *s3, const char *key, const void *data, size_t len,
              bool if_none_match, char *why, size_t why_size)
{
    if (!s3 || !key_ok(key) || (len && !data))
        return ts_fail(why, why_size, TS_EINVAL, "s3 put: bad key or data");
    uint64_t before = s3->requests;
    const char *cond = s3->goog ? "x-goog-if-generation-match: 0" : "If-None-Match: *";
    int err = put_bytes(s3, key, NULL, data, len, if_none_match ? cond : NULL, NULL, 0, why,
                        why_size);
    if (err == TS_ECONFLICT && s3->requests - before > 1) {
        /* an earlier attempt may have written it and lost the answer: ours if the bytes are */
        char *got = NULL;
        size_t got_len = 0;
        if (!ts_s3_get(s3, key, &got, &got_len, NULL, 0) && got_len == len &&
            !memcmp(got, data, len))
            err = TS_OK;
        free(got);
    }
    return err;
}

/* Up to n bytes at off from fd into buf; the count read. */
static ssize_t read_at(int fd, char *buf, size_t n, off_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* <tag>value</tag> of xml at or after *from into out; *from moved past it. */
static bool xml_value(const char *xml, const char **from, const char *tag, char *out, size_t size)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *s = strstr(from ? *from : xml, open);
    if (!s)
        return false;
    s += strlen(open);
    const char *e = strstr(s, close);
    if (!e || (size_t)(e - s) >= size)
        return false;
    /* the five XML entities; anything else is kept as it is */
    size_t n = 0;
    for (const char *p = s; p < e; p++) {
        static const struct { const char *ent; char c; } ents[] = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        size_t i = 0;
        if (*p == '&')
            for (; i < 5; i++)
                if (!strncmp(p, ents[i].ent, strlen(ents[i].ent)))
                    break;
        if (*p == '&' && i < 5) {
            out[n++] = ents[i].c;
            p += strlen(ents[i].ent) - 1;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    if (from)
        *from = e + strlen(close);
    return true;
}

static int abort_upload(struct ts_s3 *s3, const char *key, const char *upload)
{
    char url[URL_MAX], q[600], enc[512];
    struct answer a = {.max = ERR_BODY_MAX};
    long status;
    struct curl_slist *h = headers(s3, NULL, NULL);
    encode(enc, sizeof enc, upload, false);
    snprintf(q, sizeof q, "uploadId=%s", enc);
    build_url(s3, url, key, q);
    int err = h ? perform(s3, DELETE, url, h, NULL, &a, &status, NULL, 0) : TS_ENOMEM;
    curl_slist_free_all(h);
    free(a.data);
    return err;
}

static int multipart(struct ts_s3 *s3, const char *key, int fd, off_t size, char *why,
                     size_t why_size)
{
    char url[URL_MAX], upload[256], q[600], enc[512], (*etags)[128] = NULL;
    struct answer a = {.max = ERR_BODY_MAX};
    long status;
    size_t parts = (size_t)((size + (off_t)s3->part_size - 1) / (off_t)s3->part_size);
    char *buf = NULL;
    FILE *xml = NULL;
    char *text = NULL;
    size_t text_len = 0;

    if (parts > PARTS_MAX)
        return ts_fail(why, why_size, TS_EFULL, "s3 put %s: more than %d parts", key, PARTS_MAX);
    struct curl_slist *h = headers(s3, NULL, NULL);
    if (!h)
        return TS_ENOMEM;
    build_url(s3, url, key, "uploads=");
    struct body none = {.data = "", .len = 0};
    int err = perform(s3, POST, url, h, &none, &a, &status, why, why_size);
    if (!err)
        err = judge(url, status, &a, why, why_size);
    if (!err && (!a.data || !xml_value(a.data, NULL, "UploadId", upload, sizeof upload) ||
                 !upload[0]))
        err = ts_fail(why, why_size, TS_ESHORT, "%s: no UploadId in the answer", url);
    if (err)
        goto out;
    encode(enc, sizeof enc, upload, false);
    if (!(etags = calloc(parts, sizeof *etags)) || !(buf = malloc(s3->part_size))) {
        err = TS_ENOMEM;
        goto abort;
    }
    for (size_t i = 0; i < parts; i++) {
        ssize_t n = read_at(fd, buf, s3->part_size, (off_t)i * (off_t)s3->part_size);
        if (n < 0) {
            err = ts_fail(why, why_size, TS_ESYS, "s3 put %s: read: %s", key, strerror(errno));
            goto abort;
        }
        snprintf(q, sizeof q, "partNumber=%zu&uploadId=%s", i + 1, enc);
        err = put_bytes(s3, key, q, buf, (size_t)n, NULL, etags[i], sizeof etags[i], why,
                        why_size);
        if (!err && !etags[i][0])
            err = ts_fail(why, why_size, TS_ESHORT, "s3 put %s: part %zu without an ETag", key,
                          i + 1);
        if (err)
            goto abort;
    }
    if (!(xml = open_memstream(&text, &text_len))) {
        err = TS_ENOMEM;
        goto abort;
    }
    fputs("<CompleteMultipartUpload>", xml);
    for (size_t i = 0; i < parts; i++)
        fprintf(xml, "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1,
                etags[i]);
    fputs("</CompleteMultipartUpload>", xml);
    if (fclose(xml) != 0) {
        err = TS_ENOMEM;
        goto abort;
    }
    snprintf(q, sizeof q, "uploadId=%s", enc);
    build_url(s3, url, key, q);
    struct body body = {.data = text, .len = text_len};
    err = perform(s3, POST, url, h, &body, &a, &status, why, why_size);
    if (!err)
        err = judge(url, status, &a, why, why_size);
    /* S3 may answer 200 and then an error in the body */
    if (!err && a.data && strstr(a.data, "<Error>"))
        err = judge(url, 500, &a, why, why_size);
    if (!err)
        goto out;
abort:
    abort_upload(s3, key, upload);
out:
    curl_slist_free_all(h);
    free(a.data);
    free(etags);
    free(buf);
    free(text);
    return err;
}

int ts_s3_put_file(struct ts_s3 *s3, const char *key, int fd, char *why, size_t why_size)
{
    struct stat st;
    if (!s3 || !key_ok(key) || fd < 0)
        return ts_fail(why, why_size, TS_EINVAL, "s3 put: bad key or fd");
    if (fstat(fd, &st) != 0)
        return ts_fail(why, why_size, TS_ESYS, "s3 put %s: fstat: %s", key, strerror(errno));
    if ((uint64_t)st.st_size > s3->part_size)
        return multipart(s3, key, fd, st.st_size, why, why_size);
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return TS_ENOMEM;
    ssize_t n = read_at(fd, buf, (size_t)st.st_size, 0);
    int err = n < 0 ? ts_fail(why, why_size, TS_ESYS, "s3 put %s: read: %s", key,
                              strerror(errno))
                    : put_bytes(s3, key, NULL, buf, (size_t)n, NULL, NULL, 0, why, why_size);
    free(buf);
    return err;
}

int ts_s3_get(struct ts_s3 *s3, const char *key, char **out, size_t *len, char *why,
              size_t why_size)
{
    char url[URL_MAX];
    long status;
    if (!s3 || !key_ok(key) || !out || !len)
        return ts_fail(why, why_size, TS_EINVAL, "s3 get: bad key");
    *out = NULL;
    *len = 0;
    struct answer a = {.max = s3->max_object};
    struct curl_slist *h = headers(s3, NULL, NULL);
    if (!h)
        return TS_ENOMEM;
    build_url(s3, url, key, NULL);
    int err = perform(s3, GET, url, h, NULL, &a, &status, why, why_size);
    if (!err)
        err = judge(url, status, &a, why, why_size);
    curl_slist_free_all(h);
    if (!err && !a.data && !(a.data = calloc(1, 1)))
        err = TS_ENOMEM;
    if (err) {
        free(a.data);
        return err;
    }
    *out = a.data;
    *len = a.len;
    return TS_OK;
}

int ts_s3_copy(struct ts_s3 *s3, const char *from, const char *to, char *why, size_t why_size)
{
    char url[URL_MAX], src[3 * (PREFIX_MAX + KEY_MAX + 80)], full[PREFIX_MAX + KEY_MAX + 80];
    char hdr[sizeof src + 32];
    struct answer a = {.max = ERR_BODY_MAX};
    long status;
    if (!s3 || !key_ok(from) || !key_ok(to))
        return ts_fail(why, why_size, TS_EINVAL, "s3 copy: bad key");
    snprintf(full, sizeof full, "/%s/%s%s", s3->bucket, s3->prefix, from);
    encode(src, sizeof src, full, true);
    snprintf(hdr, sizeof hdr, "x-amz-copy-source: %s", src);
    struct curl_slist *h = headers(s3, hdr, NULL);
    if (!h)
        return TS_ENOMEM;
    build_url(s3, url, to, NULL);
    struct body none = {.data = "", .len = 0};
    int err = perform(s3, PUT, url, h, &none, &a, &status, why, why_size);
    if (!err)
        err = judge(url, status, &a, why, why_size);
    /* a copy may fail after its 200 too */
    if (!err && a.data && strstr(a.data, "<Error>"))
        err = judge(url, 500, &a, why, why_size);
    curl_slist_free_all(h);
    free(a.data);
    return err;
}

int ts_s3_delete(struct ts_s3 *s3, const char *key, char *why, size_t why_size)
{
    char url[URL_MAX];
    struct answer a = {.max = ERR_BODY_MAX};
    long status;
    if (!s3 || !key_ok(key))
        return ts_fail(why, why_size, TS_EINVAL, "s3 delete: bad key");
    struct curl_slist *h = headers(s3, NULL, NULL);
    if (!h)
        return TS_ENOMEM;
    build_url(s3, url, key, NULL);
    int err = perform(s3, DELETE, url, h, NULL, &a, &status, why, why_size);
    if (!err)
        err = judge(url, status, &a, why, why_size);
    if (err == TS_ENOTFOUND)
        err = TS_OK;
    curl_slist_free_all(h);
    free(a.data);
    return err;
}

int ts_s3_list(struct ts_s3 *s3, const char *prefix,
               int (*each)(void *arg, const char *key, uint64_t size), void *arg, char *why,
               size_t why_size)
{
    char url[URL_MAX], full[PREFIX_MAX + KEY_MAX + 2], enc[3 * sizeof full], q[8192];
    char token[1024] = "", tenc[3 * sizeof token], key[PREFIX_MAX + KEY_MAX + 2], num[32];
    size_t keys = 0, pl = strlen(s3 ? s3->prefix : "");
    long status;
    int err = TS_OK;

    if (!s3 || !each || (prefix && *prefix && !key_ok(prefix)))
        return ts_fail(why, why_size, TS_EINVAL, "s3 list: bad prefix");
    struct curl_slist *h = headers(s3, NULL, NULL);
    if (!h)
        return TS_ENOMEM;
    snprintf(full, sizeof full, "%s%s", s3->prefix, prefix ? prefix : "");
    encode(enc, sizeof enc, full, false);
    struct answer a = {.max = 16u << 20}; /* a page of 1,000 keys is about 300 KB */
    for (;;) {
        /* sorted: continuation-token, list-type, prefix */
        encode(tenc, sizeof tenc, token, false);
        snprintf(q, sizeof q, "%s%s%slist-type=2&prefix=%s", token[0] ? "continuation-token=" : "",
                 tenc, token[0] ? "&" : "", enc);
        snprintf(url, sizeof url, "%s/?%s", s3->base, q);
        err = perform(s3, GET, url, h, NULL, &a, &status, why, why_size);
        if (!err)
            err = judge(url, status, &a, why, why_size);
        if (err)
            break;
        if (!a.data || !strstr(a.data, "<ListBucketResult")) {
            err = ts_fail(why, why_size, TS_ESHORT, "%s: not a ListBucketResult", url);
            break;
        }
        const char *at = a.data;
        while (!err && xml_value(a.data, &at, "Key", key, sizeof key)) {
            uint64_t size = 0;
            const char *s = at;
            if (xml_value(a.data, &s, "Size", num, sizeof num))
                size = strtoull(num, NULL, 10);
            if (strncmp(key, full, strlen(full))) {
                err = ts_fail(why, why_size, TS_ESHORT, "%s: key %s outside the prefix", url, key);
                break;
            }
            if (++keys > s3->max_list) {
                err = ts_fail(why, why_size, TS_EFULL, "%s: more than %zu keys", url,
                              s3->max_list);
                break;
            }
            err = each(arg, key + pl, size);
        }
        if (err)
            break;
        char truncated[8] = "false", next[sizeof token] = "";
        xml_value(a.data, NULL, "IsTruncated", truncated, sizeof truncated);
        if (strcmp(truncated, "true"))
            break;
        if (!xml_value(a.data, NULL, "NextContinuationToken", next, sizeof next) || !next[0] ||
            !strcmp(next, token)) {
            err = ts_fail(why, why_size, TS_ESHORT, "%s: truncated without a new token", url);
            break;
        }
        strcpy(token, next);
    }
    curl_slist_free_all(h);
    free(a.data);
    return err;
}

void ts_s3_counts(const struct ts_s3 *s3, uint64_t *requests, uint64_t *retries)
{
    if (requests)
        *requests = s3->requests;
    if (retries)
        *retries = s3->retries;
}

void ts_s3_close(struct ts_s3 *s3)
{
    if (!s3)
        return;
    explicit_bzero(s3->userpwd, sizeof s3->userpwd);
    if (s3->token_header) {
        explicit_bzero(s3->token_header, strlen(s3->token_header));
        free(s3->token_header);
    }
    if (s3->curl)
        curl_easy_cleanup(s3->curl);
    free(s3->bucket);
    free(s3->prefix);
    free(s3->base);
    free(s3->ca_file);
    free(s3);
}
