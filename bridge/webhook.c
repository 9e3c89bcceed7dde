/* SPDX-License-Identifier: Apache-2.0 */
/* webhook.c - readings POSTed by other systems (see webhook.h).
 *
 * A request's life: begin (the token names the source; a place among
 * max_requests is taken) -> finish (the body cut into readings, each judged
 * and handed to the relay; the request then waits on w->waiting, its
 * connection suspended) -> answered by the last delivery report, or by the
 * timer thread at request_timeout_ms, or by ts_webhook_stop -> end (the
 * place is given back). A request is counted by references: one for the
 * connection, one per message in librdkafka's queue (a report arriving after
 * the answer, Kafka slower than the timeout, finds it), one while on the
 * waiting list; the last frees it. w->lock guards the counters, the places,
 * the list, stopping and the requests' figures. */
#include "webhook.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "now.h"
#include "strbuf.h"
#include "topics.h"
#include "verdict.h"
#include "webhook_body.h"

#define TOKEN_MIN 16
#define TOKEN_MAX 256
#define ERRORS_SHOWN 20       /* refusals listed in an answer */

struct source {
    char name[TS_ID_MAX];
    char station[TS_ID_MAX];
    char topic[TS_TOPIC_AGENT_MAX];
    unsigned char token[TOKEN_MAX]; /* zero-padded */
    size_t token_len;                  /* 0: no token (cert_cn only) */
    char cert_cn[64];         /* "": no client certificate names it */
    /* guarded by w->lock: */
    uint64_t readings, invalid, requests;
    int64_t last_ms;          /* wall clock of its last authorized request (0: none) */
};

struct ts_webhook {
    struct ts_bridge_webhook_cfg cfg;
    char bridge_id[TS_ID_MAX];
    struct ts_relay *relay;
    struct ts_http_post route;
    struct ts_verdict_bounds bounds;
    struct source *src;
    size_t n_src;
    pthread_mutex_t lock;
    pthread_cond_t cond;      /* wakes the timer thread */
    pthread_t timer;          /* answers the requests past their deadline */
    bool timer_started;
    /* guarded by lock: */
    bool stop;
    struct request *waiting;  /* requests waiting for Kafka (a list) */
    int busy;                 /* requests past begin */
    struct ts_webhook_stats st;
};

enum body_kind { BODY_CSV, BODY_JSON, BODY_OTHER };

struct request {
    struct ts_webhook *w;
    struct source *src;
    enum body_kind kind;
    int refs;                 /* guarded by w->lock */
    /* guarded by w->lock: */
    size_t pending, confirmed, failed;
    struct ts_http_pending *reply; /* waiting for its answer (on w->waiting) */
    long long deadline;       /* mono ms: then 503 */
    struct request *prev, *next;
    /* set by finish before it waits, read-only then: */
    size_t count, produced, refused;
    int rc;                   /* of producing */
    char *errs;               /* the refusals' JSON, malloc'ed */
};

/* ---- answers ---- */

#define put ts_strbuf_printf

/* A JSON string of printable ASCII (reasons are: verdict.h). */
static void put_json_string(struct ts_strbuf *b, const char *s)
{
    put(b, "\"");
    for (; *s; s++)
        if (*s == '"' || *s == '\\')
            put(b, "\\%c", *s);
        else if ((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f)
            put(b, "%c", *s);
    put(b, "\"");
}

static int fail(int status, char **body, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int status, char **body, size_t *len, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct ts_strbuf b = {0};
    put(&b, "{\"error\":");
    put_json_string(&b, msg);
    put(&b, "}\n");
    ts_strbuf_take(&b, body, len);
    return status;
}

/* ---- requests ---- */

static void request_unref(struct request *q)
{
    struct ts_webhook *w = q->w;
    pthread_mutex_lock(&w->lock);
    bool last = --q->refs == 0;
    pthread_mutex_unlock(&w->lock);
    if (last) {
        free(q->errs);
        free(q);
    }
}

/* Takes q off the waiting list (lock held): its reply handle, NULL if it
 * was answered already. The list's reference passes to the caller, who
 * answers (respond) and then drops it. */
static struct ts_http_pending *take(struct ts_webhook *w, struct request *q)
{
    struct ts_http_pending *r = q->reply;
    if (!r)
        return NULL;
    q->reply = NULL;
    if (q->prev)
        q->prev->next = q->next;
    else
        w->waiting = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    return r;
}

static int answer(struct ts_webhook *w, struct request *q, bool timer, char **body, size_t *len);

/* Answers a request taken off the list, then drops the list's reference. */
static void respond(struct ts_webhook *w, struct request *q, struct ts_http_pending *r, bool timer)
{
    char *body = NULL;
    size_t len = 0;
    int status = answer(w, q, timer, &body, &len);
    ts_http_resume(r, status, body, len);
    request_unref(q);
}

/* A delivery report (the relay's delivery thread): of a reading or of a
 * dead letter. */
static void delivered(struct request *q, int err, bool dead)
{
    struct ts_webhook *w = q->w;
    pthread_mutex_lock(&w->lock);
    q->pending--;
    if (err) {
        q->failed++;
    } else {
        q->confirmed++;
        if (dead) {
            w->st.invalid++;
            q->src->invalid++;
        } else {
            w->st.readings++;
            q->src->readings++;
        }
    }
    struct ts_http_pending *r = q->pending == 0 ? take(w, q) : NULL;
    pthread_mutex_unlock(&w->lock);
    if (r)
        respond(w, q, r, false);
    request_unref(q);
}

static void on_reading(void *arg, int err) { delivered(arg, err, false); }
static void on_dead(void *arg, int err) { delivered(arg, err, true); }

/* Constant time in the token's bytes: every source is compared, every byte
 * of TOKEN_MAX. */
static struct source *find_source(struct ts_webhook *w, const char *auth)
{
    static const char bearer[] = "Bearer ";
    unsigned char given[TOKEN_MAX] = {0};
    size_t n;
    if (!auth || strncasecmp(auth, bearer, sizeof bearer - 1) != 0)
        return NULL;
    auth += sizeof bearer - 1;
    while (*auth == ' ')
        auth++;
    n = strlen(auth);
    while (n && (auth[n - 1] == ' ' || auth[n - 1] == '\t'))
        n--;
    if (n == 0 || n > TOKEN_MAX)
        return NULL;
    memcpy(given, auth, n);
    struct source *found = NULL;
    for (size_t i = 0; i < w->n_src; i++) {
        volatile unsigned char diff = (unsigned char)(n != w->src[i].token_len);
        for (size_t j = 0; j < TOKEN_MAX; j++)
            diff |= (unsigned char)(given[j] ^ w->src[i].token[j]);
        if (diff == 0)
            found = &w->src[i];
    }
    return found;
}

static bool type_is(const char *type, const char *want)
{
    size_t n = strlen(want);
    return type && strncasecmp(type, want, n) == 0 &&
           (type[n] == 0 || type[n] == ';' || type[n] == ' ');
}

/* The source whose cert_cn is cn (verified by the listener), or NULL. */
static struct source *find_source_by_cn(struct ts_webhook *w, const char *cn)
{
    for (size_t i = 0; cn && i < w->n_src; i++)
        if (w->src[i].cert_cn[0] && !strcmp(w->src[i].cert_cn, cn))
            return &w->src[i];
    return NULL;
}

static int wh_begin(void *ctx, const char *authorization, const char *client_cn,
                    const char *content_type, long long content_length, void **req, char **body,
                    size_t *len)
{
    struct ts_webhook *w = ctx;
    (void)content_length;   /* the listener bounds it */
    /* a token, when given, decides; without one, a verified client certificate */
    struct source *src = authorization ? find_source(w, authorization)
                                       : find_source_by_cn(w, client_cn);
    pthread_mutex_lock(&w->lock);
    if (!src) {
        w->st.unauthorized++;
        pthread_mutex_unlock(&w->lock);
        return fail(401, body, len, "%s", authorization ? "the token is not a source's"
                                          : client_cn ? "the client certificate is not a source's"
                                                      : "Authorization: Bearer TOKEN or a "
                                                        "source's client certificate is needed");
    }
    if (w->stop || w->busy >= w->cfg.max_requests) {
        bool stop = w->stop;
        w->st.busy++;
        pthread_mutex_unlock(&w->lock);
        return fail(503, body, len, stop ? "the bridge is stopping: send again later"
                                         : "too many requests at once (max_requests %d): send again later",
                    w->cfg.max_requests);
    }
    struct request *q = calloc(1, sizeof *q);
    if (!q) {
        pthread_mutex_unlock(&w->lock);
        return fail(503, body, len, "out of memory");
    }
    q->w = w;
    q->src = src;
    q->refs = 1;
    q->kind = type_is(content_type, "application/json") ? BODY_JSON
            : !content_type || type_is(content_type, "text/csv") ||
                      type_is(content_type, "text/plain") ? BODY_CSV : BODY_OTHER;
    w->busy++;
    w->st.requests++;
    src->requests++;
    src->last_ms = ts_wall_ms();
    pthread_mutex_unlock(&w->lock);
    *req = q;
    return 0;
}

static void wh_end(void *ctx, void *req)
{
    struct ts_webhook *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->busy--;
    pthread_mutex_unlock(&w->lock);
    request_unref(req);
}

static void count_refused(struct ts_webhook *w)
{
    pthread_mutex_lock(&w->lock);
    w->st.refused++;
    pthread_mutex_unlock(&w->lock);
}

/* Hands every line to the relay, in order; refusals listed in errs. Stops
 * at the first that the relay does not take (TS_EBUSY, TS_EIO, TS_ENOMEM). */
static int produce_all(struct ts_webhook *w, struct request *q, const struct ts_webhook_line *lines,
                       size_t count, size_t *produced, size_t *refused, struct ts_strbuf *errs)
{
    struct ts_verdict *v = malloc(sizeof *v);
    if (!v)
        return TS_ENOMEM;
    int rc = TS_OK;
    for (size_t i = 0; i < count; i++) {
        int64_t wall = ts_wall_ms();
        struct ts_verdict_msg m = {.topic = q->src->topic, .topic_len = strlen(q->src->topic),
                                   .payload = lines[i].p, .len = lines[i].n, .now_ms = wall};
        enum ts_verdict_class cls = ts_verdict_judge(&m, &w->bounds, v);
        pthread_mutex_lock(&w->lock);   /* the report may come before producev returns */
        q->refs++;
        q->pending++;
        pthread_mutex_unlock(&w->lock);
        rc = ts_relay_produce(w->relay, q->src->topic, lines[i].p, lines[i].n, v, wall,
                              cls == TS_VERDICT_READING ? on_reading : on_dead, q);
        if (rc != TS_OK) {
            pthread_mutex_lock(&w->lock);
            q->refs--;
            q->pending--;
            pthread_mutex_unlock(&w->lock);
            break;
        }
        (*produced)++;
        if (cls != TS_VERDICT_READING) {
            if (++*refused <= ERRORS_SHOWN) {
                put(errs, "%s{\"index\":%zu,\"reason\":", *refused > 1 ? "," : "", i);
                put_json_string(errs, v->reason);
                put(errs, "}");
            }
        }
    }
    free(v);
    return rc;
}

static int wh_finish(void *ctx, void *req, const char *data, size_t n,
                     struct ts_http_pending *pending, char **body, size_t *len)
{
    struct ts_webhook *w = ctx;
    struct request *q = req;
    size_t max = (size_t)w->cfg.max_readings, count;
    const char *why = NULL;

    if (q->kind == BODY_OTHER) {
        count_refused(w);
        return fail(415, body, len, "Content-Type: text/csv (a reading a line) or "
                                    "application/json ({\"readings\": [\"line\", ...]})");
    }
    struct ts_webhook_line *lines = malloc((max + 1) * sizeof *lines);
    char *dec = q->kind == BODY_JSON ? malloc(n + 1) : NULL;
    if (!lines || (q->kind == BODY_JSON && !dec)) {
        free(lines);
        free(dec);
        return fail(503, body, len, "out of memory");
    }
    count = q->kind == BODY_JSON ? ts_webhook_json_lines(data, n, dec, lines, max, &why)
                                 : ts_webhook_csv_lines(data, n, lines, max);
    if (count == (size_t)-1 || count == 0 || count > max) {
        free(lines);
        free(dec);
        count_refused(w);
        if (count == (size_t)-1)
            return fail(400, body, len, "not readings in JSON: %s", why);
        if (count == 0)
            return fail(400, body, len, "no reading in the body");
        return fail(413, body, len, "more than max_readings (%zu) readings: none taken", max);
    }

    struct ts_strbuf errs = {0};
    size_t produced = 0, refused = 0;
    int rc = produce_all(w, q, lines, count, &produced, &refused, &errs);
    free(lines);
    free(dec);
    q->count = count;
    q->produced = produced;
    q->refused = refused;
    q->rc = rc;
    size_t errs_len;
    ts_strbuf_take(&errs, &q->errs, &errs_len);   /* NULL if it failed */

    /* answered by the last delivery report, the timer or the stop */
    pthread_mutex_lock(&w->lock);
    if (q->pending && !w->stop) {
        q->reply = pending;
        q->deadline = ts_mono_ms() + w->cfg.request_timeout_ms;
        q->refs++;   /* the list's */
        q->next = w->waiting;
        if (w->waiting)
            w->waiting->prev = q;
        w->waiting = q;
        pthread_mutex_unlock(&w->lock);
        return 0;
    }
    pthread_mutex_unlock(&w->lock);
    return answer(w, q, false, body, len);
}

/* The answer of a request whose readings were produced (q's fields set by
 * finish), once every report came, or at its deadline (timer), or at the
 * stop. */
static int answer(struct ts_webhook *w, struct request *q, bool timer, char **body, size_t *len)
{
    pthread_mutex_lock(&w->lock);
    size_t pending = q->pending, failed = q->failed, confirmed = q->confirmed;
    bool stop = w->stop;
    if (pending || failed || q->rc != TS_OK) {
        if (pending && timer && !stop && q->rc == TS_OK)
            w->st.timeouts++;
        else
            w->st.busy++;
    }
    pthread_mutex_unlock(&w->lock);

    if (q->rc != TS_OK)
        return fail(503, body, len, "%s after %zu of %zu readings: send them again (each is "
                    "counted once)", q->rc == TS_EBUSY ? "the Kafka producer queue is full"
                    : q->rc == TS_ENOMEM ? "out of memory" : "the relay stops", q->produced,
                    q->count);
    if (pending || failed)
        return fail(503, body, len, "Kafka has not confirmed %zu of %zu readings%s: send them "
                    "again (each is counted once)", pending + failed, q->count,
                    stop ? " (the bridge stops)" : pending ? " in time" : "");
    struct ts_strbuf b = {0};
    put(&b, "{\"accepted\":%zu,\"refused\":%zu", confirmed - q->refused, q->refused);
    if (q->refused)
        put(&b, ",\"errors\":[%s]", q->errs ? q->errs : "");
    put(&b, "}\n");
    ts_strbuf_take(&b, body, len);
    return q->refused ? 422 : 200;
}

/* ---- the timer: requests past their deadline ---- */

static void *timer_main(void *arg)
{
    struct ts_webhook *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec ts = ts_mono_deadline(100);
        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
        long long now = ts_mono_ms();
        struct request *q = w->waiting;
        while (q && !w->stop) {
            struct request *next = q->next;
            if (q->deadline <= now) {
                struct ts_http_pending *r = take(w, q);
                pthread_mutex_unlock(&w->lock);
                respond(w, q, r, true);
                pthread_mutex_lock(&w->lock);
                next = w->waiting;   /* the list may have changed meanwhile */
                now = ts_mono_ms();
            }
            q = next;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- tokens ---- */

static int load_token(const struct ts_bridge_webhook_source *c, struct source *s, char *why,
                      size_t why_size)
{
    char text[TOKEN_MAX + 2] = "";
    if (!c->token_file[0] && !c->token_env[0])
        return TS_OK;   /* authenticated by its client certificate only */
    if (c->token_file[0]) {
        FILE *f = fopen(c->token_file, "re");
        if (!f)
            return ts_fail(why, why_size, TS_ECONFIG, "[webhook_source %s] token_file %s: %s",
                           c->name, c->token_file, strerror(errno));
        if (!fgets(text, sizeof text, f))
            text[0] = 0;
        fclose(f);
    } else {
        const char *e = getenv(c->token_env);
        if (!e)
            return ts_fail(why, why_size, TS_ECONFIG, "[webhook_source %s] token_env: %s is not "
                           "set", c->name, c->token_env);
        snprintf(text, sizeof text, "%s", e);
    }
    size_t n = strcspn(text, "\r\n");
    text[n] = 0;
    bool ok = n >= TOKEN_MIN && n <= TOKEN_MAX;
    for (size_t i = 0; i < n; i++)
        ok = ok && text[i] > 0x20 && text[i] < 0x7f;
    if (!ok)
        return ts_fail(why, why_size, TS_ECONFIG, "[webhook_source %s] the token must be %d to "
                       "%d printable characters without blanks", c->name, TOKEN_MIN, TOKEN_MAX);
    memcpy(s->token, text, n);
    s->token_len = n;
    memset(text, 0, sizeof text);
    return TS_OK;
}

/* ---- public ---- */

int ts_webhook_new(const struct ts_bridge_cfg *cfg, struct ts_relay *relay,
                   struct ts_webhook **out, char *why, size_t why_size)
{
    *out = NULL;
    struct ts_webhook *w = calloc(1, sizeof *w);
    if (!w || !(w->src = calloc(cfg->n_sources ? cfg->n_sources : 1, sizeof *w->src))) {
        free(w);
        return ts_fail(why, why_size, TS_ENOMEM, "webhook: out of memory");
    }
    w->cfg = cfg->webhook;
    snprintf(w->bridge_id, sizeof w->bridge_id, "%s", cfg->bridge.id);
    w->relay = relay;
    w->bounds = (struct ts_verdict_bounds){.max_age_ms = cfg->bridge.max_event_age_s * 1000,
                                           .max_ahead_ms = cfg->bridge.max_event_ahead_s * 1000};
    w->n_src = cfg->n_sources;
    for (size_t i = 0; i < cfg->n_sources; i++) {
        const struct ts_bridge_webhook_source *c = cfg->sources[i];
        struct source *s = &w->src[i];
        snprintf(s->name, sizeof s->name, "%s", c->name);
        snprintf(s->station, sizeof s->station, "%s", c->station);
        snprintf(s->cert_cn, sizeof s->cert_cn, "%s", c->cert_cn);
        int rc = ts_topic_agent(s->topic, sizeof s->topic, c->station, c->name, TS_TOPIC_READINGS);
        if (rc == TS_OK)
            rc = load_token(c, s, why, why_size);
        else
            ts_fail(why, why_size, rc, "[webhook_source %s]: the topic is too long", c->name);
        if (rc != TS_OK) {
            free(w->src);
            free(w);
            return rc;
        }
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    w->route = (struct ts_http_post){
        .path = TS_WEBHOOK_PATH, .content_type = "application/json",
        .max_body = (size_t)w->cfg.max_body_bytes, .max_ms = w->cfg.request_timeout_ms,
        .ctx = w, .begin = wh_begin, .finish = wh_finish, .end = wh_end};
    int e = pthread_create(&w->timer, NULL, timer_main, w);
    if (e) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w->src);
        free(w);
        return ts_fail(why, why_size, TS_ESYS, "webhook: cannot start its thread: %s",
                       strerror(e));
    }
    w->timer_started = true;
    TS_LOG(TS_LOG_INFO, "webhook: POST %s from %zu source(s)", TS_WEBHOOK_PATH, w->n_src);
    *out = w;
    return TS_OK;
}

const struct ts_http_post *ts_webhook_route(struct ts_webhook *w) { return &w->route; }

void ts_webhook_stats(struct ts_webhook *w, struct ts_webhook_stats *st)
{
    pthread_mutex_lock(&w->lock);
    *st = w->st;
    pthread_mutex_unlock(&w->lock);
}

int ts_webhook_metrics(struct ts_webhook *w, char **text, size_t *len)
{
    struct ts_strbuf b = {0};
    pthread_mutex_lock(&w->lock);
    const struct ts_webhook_stats *st = &w->st;
    put(&b, "# HELP turnstile_bridge_webhook_requests_total Webhook requests by outcome.\n"
            "# TYPE turnstile_bridge_webhook_requests_total counter\n");
    const struct { const char *k; uint64_t v; } out[] = {
        {"authorized", st->requests}, {"unauthorized", st->unauthorized},
        {"refused", st->refused}, {"busy", st->busy}, {"timeout", st->timeouts}};
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        put(&b, "turnstile_bridge_webhook_requests_total{outcome=\"%s\"} %" PRIu64 "\n",
            out[i].k, out[i].v);
    put(&b, "# HELP turnstile_bridge_webhook_readings_total Readings POSTed by each webhook "
            "source that Kafka confirmed, by verdict (refused: dead letters).\n"
            "# TYPE turnstile_bridge_webhook_readings_total counter\n");
    for (size_t i = 0; i < w->n_src; i++) {
        const struct source *s = &w->src[i];
        put(&b, "turnstile_bridge_webhook_readings_total{station=\"%s\",agent=\"%s\","
                "verdict=\"valid\"} %" PRIu64 "\n", s->station, s->name, s->readings);
        put(&b, "turnstile_bridge_webhook_readings_total{station=\"%s\",agent=\"%s\","
                "verdict=\"refused\"} %" PRIu64 "\n", s->station, s->name, s->invalid);
    }
    put(&b, "# HELP turnstile_bridge_webhook_last_request_seconds When each webhook source last "
            "POSTed with its token, Unix time (absent: not since the bridge started).\n"
            "# TYPE turnstile_bridge_webhook_last_request_seconds gauge\n");
    for (size_t i = 0; i < w->n_src; i++)
        if (w->src[i].last_ms)
            put(&b, "turnstile_bridge_webhook_last_request_seconds{station=\"%s\",agent=\"%s\"} "
                    "%.3f\n", w->src[i].station, w->src[i].name, (double)w->src[i].last_ms / 1000.0);
    pthread_mutex_unlock(&w->lock);
    return ts_strbuf_take(&b, text, len);
}

static void iso_time(int64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int ts_webhook_source_docs(struct ts_webhook *w, int64_t now_ms,
                           int (*put_doc)(void *ctx, const char *topic, const char *json),
                           void *ctx)
{
    int rc = TS_OK;
    for (size_t i = 0; i < w->n_src; i++) {
        const struct source *s = &w->src[i];
        pthread_mutex_lock(&w->lock);
        int64_t last = s->last_ms;
        uint64_t requests = s->requests, readings = s->readings, invalid = s->invalid;
        pthread_mutex_unlock(&w->lock);
        if (!last)
            continue;   /* not heard from since this bridge started: nothing to say */
        char when[32], topic[TS_TOPIC_AGENT_MAX], status[400], state[400];
        iso_time(last, when, sizeof when);
        bool online = now_ms - last <= (int64_t)w->cfg.online_s * 1000;
        /* names: ids (letters, digits, . _ -), nothing to escape */
        snprintf(status, sizeof status, "{\"state\":\"%s\",%s\"agent\":\"%s\",\"station\":\"%s\","
                 "\"source\":\"webhook\",\"bridge\":\"%s\",\"last_request\":\"%s\","
                 "\"online_s\":%d}", online ? "online" : "offline",
                 online ? "" : "\"reason\":\"idle\",", s->name, s->station, w->bridge_id, when,
                 w->cfg.online_s);
        snprintf(state, sizeof state, "{\"agent\":\"%s\",\"station\":\"%s\",\"time\":\"%s\","
                 "\"source\":\"webhook\",\"requests\":%" PRIu64 ",\"sent\":%" PRIu64
                 ",\"refused\":%" PRIu64 "}", s->name, s->station, when, requests, readings,
                 invalid);
        int r = ts_topic_agent(topic, sizeof topic, s->station, s->name, TS_TOPIC_STATUS);
        if (r == TS_OK)
            r = put_doc(ctx, topic, status);
        if (r == TS_OK)
            r = ts_topic_agent(topic, sizeof topic, s->station, s->name, TS_TOPIC_STATE);
        if (r == TS_OK)
            r = put_doc(ctx, topic, state);
        if (r != TS_OK && rc == TS_OK)
            rc = r;
    }
    return rc;
}

void ts_webhook_stop(struct ts_webhook *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (w->timer_started)
        pthread_join(w->timer, NULL);
    w->timer_started = false;
    /* every waiting request answered now: the listener stops next */
    for (;;) {
        pthread_mutex_lock(&w->lock);
        struct request *q = w->waiting;
        struct ts_http_pending *r = q ? take(w, q) : NULL;
        pthread_mutex_unlock(&w->lock);
        if (!q)
            break;
        respond(w, q, r, false);
    }
}

void ts_webhook_free(struct ts_webhook *w)
{
    if (!w)
        return;
    ts_webhook_stop(w);   /* if not done yet */
    TS_LOG(TS_LOG_INFO, "webhook: stopped: %" PRIu64 " requests, %" PRIu64 " readings in Kafka, "
           "%" PRIu64 " refused readings, %" PRIu64 " unauthorized, %" PRIu64 " timeouts",
           w->st.requests, w->st.readings, w->st.invalid, w->st.unauthorized, w->st.timeouts);
    memset(w->src, 0, w->n_src * sizeof *w->src);   /* the tokens */
    free(w->src);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}
