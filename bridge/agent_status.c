/* SPDX-License-Identifier: Apache-2.0 */
/* agent_status.c - the agents' figures from their retained status and state (see agent_status.h).
 *
 * s->lock guards the table; the link's network thread writes it, the
 * listener's thread renders it. The table: records in an array (insertion
 * order, the order of the scrape), found through common/hashtab.h's index
 * of at most max_agents entries. */
#include "agent_status.h"

#include <inttypes.h>
#include <math.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hashtab.h"
#include "log.h"
#include "mqtt_link.h"
#include "now.h"
#include "topics.h"

#define PAYLOAD_MAX (1024 * 1024)
#define DEPTH_MAX 8
#define LOOP_MS 200

/* The numbers read, by field (NaN: not in the latest document). */
enum {
    F_ONLINE, F_BACKLOG, F_MERGES, F_MERGED_ROWS, F_ACKS_REFUSED, F_STORE_ERROR, /* status */
    F_WARNINGS, F_CLOCK_SYNCED, F_ENTRIES, F_EXITS, F_TURNSTILES,                 /* state */
    F_DEVICES, F_DEVICES_UP, F_POLLS, F_ERRORS, F_TIMEOUTS, F_CRC, F_CONNECT_ERRORS,
    F_SENT, F_RESENT, F_ACKED, F_ACK_AGE, F_STATE_BACKLOG,
    F_N
};

struct rec {
    char station[TS_ID_MAX], agent[TS_ID_MAX];
    bool used;                /* false: removed (its slot in the index stays) */
    double f[F_N];
    int64_t status_ms, state_ms; /* wall time the latest document came */
};

struct ts_agent_status {
    struct ts_mqtt_link *link;
    char client_id[160];
    size_t max;
    pthread_mutex_t lock;
    /* guarded by lock: */
    struct rec *recs;
    size_t n, cap;
    struct ts_hashtab index;  /* (station, agent) -> rec number */
    uint64_t left_out, bad_payloads, messages;
};

/* --- the table -------------------------------------------------------- */

static uint64_t hash(const char *station, const char *agent)
{
    return ts_hash_str(ts_hash_bytes(ts_hash_str(TS_HASH_INIT, station), "/", 1), agent);
}

struct key {
    const struct ts_agent_status *s;
    const char *station, *agent;
};

static bool same(uintptr_t rec, const void *key)
{
    const struct key *k = key;
    const struct rec *r = &k->s->recs[rec];
    return !strcmp(r->station, k->station) && !strcmp(r->agent, k->agent);
}

/* lock held; NULL: not there and (create false, or no room) */
static struct rec *find(struct ts_agent_status *s, const char *station, const char *agent,
                        bool create)
{
    uint64_t h = hash(station, agent);
    uintptr_t k;
    if (ts_hashtab_find(&s->index, h, same, &(struct key){s, station, agent}, &k))
        return &s->recs[k];
    if (!create)
        return NULL;
    if (s->n >= s->max) {
        s->left_out++;
        return NULL;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        if (cap > s->max)
            cap = s->max;
        struct rec *nr = realloc(s->recs, cap * sizeof *nr);
        if (!nr)
            return NULL;
        s->recs = nr;
        s->cap = cap;
    }
    struct rec *r = &s->recs[s->n];
    memset(r, 0, sizeof *r);
    snprintf(r->station, sizeof r->station, "%s", station);
    snprintf(r->agent, sizeof r->agent, "%s", agent);
    for (int f = 0; f < F_N; f++)
        r->f[f] = NAN;
    if (ts_hashtab_add(&s->index, h, s->n) != TS_OK)
        return NULL;
    s->n++;
    return r;
}

/* --- a small JSON reader: numbers (and a few strings) by name ------------ */

struct jp {
    const char *p, *end;
    bool bad;
};

static void ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool eat(struct jp *j, char c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* A string into out (size bytes, cut; escapes other than \" \\ \/ kept as
 * '?'); false on a malformed one. */
static bool str(struct jp *j, char *out, size_t size)
{
    size_t n = 0;
    ws(j);
    if (j->p >= j->end || *j->p != '"')
        return false;
    for (j->p++; j->p < j->end; j->p++) {
        char c = *j->p;
        if (c == '"') {
            j->p++;
            if (size)
                out[n < size ? n : size - 1] = 0;
            return true;
        }
        if ((unsigned char)c < 0x20)
            return false;
        if (c == '\\') {
            if (++j->p >= j->end)
                return false;
            c = *j->p;
            if (c == 'u') {
                if (j->end - j->p < 5)
                    return false;
                j->p += 4;
                c = '?';
            } else if (c != '"' && c != '\\' && c != '/') {
                c = '?';
            }
        }
        if (n + 1 < size)
            out[n++] = c;
    }
    return false;
}

enum jtype { J_BAD, J_NUM, J_STR, J_BOOL, J_NULL, J_OBJ, J_ARR };

struct jval {
    enum jtype t;
    double num;
    char s[32];
};

static bool skip(struct jp *j, int depth);

/* A scalar into v, or J_OBJ / J_ARR with the opening bracket left unread. */
static void scalar(struct jp *j, struct jval *v)
{
    ws(j);
    v->t = J_BAD;
    if (j->p >= j->end)
        return;
    char c = *j->p;
    if (c == '{') {
        v->t = J_OBJ;
    } else if (c == '[') {
        v->t = J_ARR;
    } else if (c == '"') {
        v->t = str(j, v->s, sizeof v->s) ? J_STR : J_BAD;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        char tmp[40];
        size_t n = 0;
        while (j->p < j->end && n + 1 < sizeof tmp && *j->p && strchr("0123456789+-.eE", *j->p))
            tmp[n++] = *j->p++;
        tmp[n] = 0;
        char *e;
        v->num = strtod(tmp, &e);
        v->t = *e || !n || !isfinite(v->num) ? J_BAD : J_NUM;
    } else {
        static const struct { const char *w; enum jtype t; double v; } words[] = {
            {"true", J_BOOL, 1}, {"false", J_BOOL, 0}, {"null", J_NULL, 0}};
        for (size_t i = 0; i < 3; i++) {
            size_t l = strlen(words[i].w);
            if ((size_t)(j->end - j->p) >= l && !memcmp(j->p, words[i].w, l)) {
                j->p += l;
                v->t = words[i].t;
                v->num = words[i].v;
                break;
            }
        }
    }
}

/* Reads (and drops) any value. */
static bool skip(struct jp *j, int depth)
{
    struct jval v;
    scalar(j, &v);
    if (v.t == J_BAD)
        return false;
    if (v.t != J_OBJ && v.t != J_ARR)
        return true;
    if (depth >= DEPTH_MAX)
        return false;
    bool obj = v.t == J_OBJ;
    j->p++;
    if (eat(j, obj ? '}' : ']'))
        return true;
    do {
        if (obj) {
            char k[8];
            if (!str(j, k, sizeof k) || !eat(j, ':'))
                return false;
        }
        if (!skip(j, depth + 1))
            return false;
    } while (eat(j, ','));
    return eat(j, obj ? '}' : ']');
}

/* The members of an object (its '{' next): fn(ctx, key, j) reads each value
 * (returns false on a malformed one). */
static bool members(struct jp *j, int depth, bool (*fn)(void *, const char *, struct jp *, int),
                    void *ctx)
{
    if (depth >= DEPTH_MAX || !eat(j, '{'))
        return false;
    if (eat(j, '}'))
        return true;
    do {
        char k[32];
        if (!str(j, k, sizeof k) || !eat(j, ':') || !fn(ctx, k, j, depth + 1))
            return false;
    } while (eat(j, ','));
    return eat(j, '}');
}

/* The objects of an array (its '[' next), each through members(fn). */
static bool objects(struct jp *j, int depth, bool (*fn)(void *, const char *, struct jp *, int),
                    void *ctx)
{
    if (depth >= DEPTH_MAX || !eat(j, '['))
        return false;
    if (eat(j, ']'))
        return true;
    do {
        ws(j);
        if (j->p < j->end && *j->p == '{') {
            if (!members(j, depth + 1, fn, ctx))
                return false;
        } else if (!skip(j, depth + 1)) {
            return false;
        }
    } while (eat(j, ','));
    return eat(j, ']');
}

struct doc {
    double f[F_N];
};

static const struct {
    const char *key;
    int field;
} status_nums[] = {{"backlog", F_BACKLOG}, {"merges", F_MERGES}, {"merged_rows", F_MERGED_ROWS},
                   {"acks_refused", F_ACKS_REFUSED}},
  state_nums[] = {{"backlog", F_STATE_BACKLOG}, {"warnings", F_WARNINGS}, {"sent", F_SENT},
                  {"resent", F_RESENT}, {"acked", F_ACKED}, {"ack_age_s", F_ACK_AGE}},
  turnstile_nums[] = {{"entries_counted", F_ENTRIES}, {"exits_counted", F_EXITS}},
  device_nums[] = {{"polls", F_POLLS}, {"errors", F_ERRORS}, {"timeouts", F_TIMEOUTS},
                   {"crc_errors", F_CRC}, {"connect_errors", F_CONNECT_ERRORS}};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void add(struct doc *d, int f, double v)
{
    d->f[f] = isnan(d->f[f]) ? v : d->f[f] + v;
}

static bool turnstile_member(void *ctx, const char *k, struct jp *j, int depth)
{
    struct doc *d = ctx;
    struct jval v;
    for (size_t i = 0; i < N(turnstile_nums); i++)
        if (!strcmp(k, turnstile_nums[i].key)) {
            scalar(j, &v);
            if (v.t == J_NUM && v.num >= 0)
                add(d, turnstile_nums[i].field, v.num);
            return v.t == J_NUM || v.t == J_NULL;
        }
    if (!strcmp(k, "name"))
        add(d, F_TURNSTILES, 1);
    return skip(j, depth);
}

static bool device_member(void *ctx, const char *k, struct jp *j, int depth)
{
    struct doc *d = ctx;
    struct jval v;
    for (size_t i = 0; i < N(device_nums); i++)
        if (!strcmp(k, device_nums[i].key)) {
            scalar(j, &v);
            if (v.t == J_NUM && v.num >= 0)
                add(d, device_nums[i].field, v.num);
            return v.t == J_NUM || v.t == J_NULL;
        }
    if (!strcmp(k, "link")) {
        scalar(j, &v);
        add(d, F_DEVICES, 1);
        add(d, F_DEVICES_UP, v.t == J_STR && !strcmp(v.s, "up"));
        return v.t == J_STR;
    }
    return skip(j, depth);
}

static bool num_member(struct doc *d, const char *k, struct jp *j, int depth, bool *done,
                       const char *key, int field)
{
    if (strcmp(k, key))
        return false;
    struct jval v;
    scalar(j, &v);
    if (v.t == J_NUM && v.num >= 0)
        d->f[field] = v.num;
    *done = v.t == J_NUM || v.t == J_NULL;
    return true;
}

static bool status_member(void *ctx, const char *k, struct jp *j, int depth)
{
    struct doc *d = ctx;
    bool ok;
    struct jval v;
    for (size_t i = 0; i < N(status_nums); i++)
        if (num_member(d, k, j, depth, &ok, status_nums[i].key, status_nums[i].field))
            return ok;
    if (!strcmp(k, "state") || !strcmp(k, "store_error")) {
        scalar(j, &v);
        if (v.t != J_STR)
            return false;
        if (!strcmp(k, "state"))
            d->f[F_ONLINE] = !strcmp(v.s, "online");
        else
            d->f[F_STORE_ERROR] = v.s[0] != 0;
        return true;
    }
    return skip(j, depth);
}

static bool state_member(void *ctx, const char *k, struct jp *j, int depth)
{
    struct doc *d = ctx;
    bool ok;
    struct jval v;
    for (size_t i = 0; i < N(state_nums); i++)
        if (num_member(d, k, j, depth, &ok, state_nums[i].key, state_nums[i].field))
            return ok;
    if (!strcmp(k, "clock")) {
        scalar(j, &v);
        d->f[F_CLOCK_SYNCED] = v.t == J_STR && !strcmp(v.s, "synced");
        return v.t == J_STR;
    }
    if (!strcmp(k, "turnstiles")) {
        d->f[F_ENTRIES] = d->f[F_EXITS] = d->f[F_TURNSTILES] = 0;
        return objects(j, depth, turnstile_member, d);
    }
    if (!strcmp(k, "devices")) {
        for (int f = F_DEVICES; f <= F_CONNECT_ERRORS; f++)
            d->f[f] = 0;
        return objects(j, depth, device_member, d);
    }
    return skip(j, depth);
}

/* --- messages ------------------------------------------------------------ */

void ts_agent_status_apply(struct ts_agent_status *s, const char *topic, const void *payload,
                           size_t len)
{
    char station[TS_ID_MAX], agent[TS_ID_MAX];
    bool is_state = false;
    if (!ts_topic_agent_parse(topic, TS_TOPIC_STATUS, station, agent)) {
        if (!ts_topic_agent_parse(topic, TS_TOPIC_STATE, station, agent))
            return;
        is_state = true;
    }
    struct doc d;
    for (int f = 0; f < F_N; f++)
        d.f[f] = NAN;
    bool ok = len > 0 && len <= PAYLOAD_MAX;
    if (ok) {
        struct jp j = {payload, (const char *)payload + len, false};
        ok = members(&j, 0, is_state ? state_member : status_member, &d);
        ws(&j);
        ok = ok && j.p == j.end;
    }
    int64_t now = ts_wall_ms();
    pthread_mutex_lock(&s->lock);
    s->messages++;
    if (len == 0) { /* a retained document cleared: the agent is gone */
        struct rec *r = find(s, station, agent, false);
        if (r && !is_state)
            r->used = false;
    } else if (!ok) {
        s->bad_payloads++;
    } else {
        struct rec *r = find(s, station, agent, true);
        if (r) {
            r->used = true;
            int lo = is_state ? F_WARNINGS : 0, hi = is_state ? F_N : F_WARNINGS;
            for (int f = lo; f < hi; f++)
                r->f[f] = d.f[f];
            *(is_state ? &r->state_ms : &r->status_ms) = now;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

static void on_message(void *ctx, const struct mosquitto_message *msg)
{
    ts_agent_status_apply(ctx, msg->topic, msg->payload,
                          msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0);
}

static void on_connected(void *ctx, bool session_present)
{
    struct ts_agent_status *s = ctx;
    char *subs[] = {TS_TOPIC_FILTER(TS_TOPIC_STATUS), TS_TOPIC_FILTER(TS_TOPIC_STATE)};
    int rc = mosquitto_subscribe_multiple(ts_mqtt_link_client(s->link), NULL, 2, subs, 0, 0,
                                          NULL);
    if (rc != MOSQ_ERR_SUCCESS)
        TS_LOG(TS_LOG_WARNING, "metrics: mqtt: cannot subscribe to the agents' status: %s",
               mosquitto_strerror(rc));
}

/* --- rendering ----------------------------------------------------------- */

/* put: ts_strbuf_printf, short for the long lines below */
#define put ts_strbuf_printf

#define P "turnstile_agent_"

static const struct {
    int field;
    const char *name, *type, *help;
} fams[] = {
    {F_ONLINE, P "online", "gauge", "1 while the agent's retained status says online"},
    {F_BACKLOG, P "backlog", "gauge", "readings stored and not yet acknowledged (status)"},
    {F_MERGES, P "merges_total", "counter", "retention merges of the store since start"},
    {F_MERGED_ROWS, P "merged_rows_total", "counter", "rows the merges removed"},
    {F_ACKS_REFUSED, P "acks_refused_total", "counter",
     "acknowledgements the agent refused (above what it published)"},
    {F_STORE_ERROR, P "store_error", "gauge", "1 while the store cannot write (disk full, I/O)"},
    {F_WARNINGS, P "warnings", "gauge", "turnstiles with an anomaly warning now"},
    {F_CLOCK_SYNCED, P "clock_synced", "gauge", "1 when the clock is synchronised"},
    {F_TURNSTILES, P "turnstiles", "gauge", "turnstiles in the state"},
    {F_ENTRIES, P "entries_counted_total", "counter",
     "people counted entering since the agent started, all its turnstiles"},
    {F_EXITS, P "exits_counted_total", "counter",
     "people counted leaving since the agent started, all its turnstiles"},
    {F_DEVICES, P "devices", "gauge", "devices the agent polls"},
    {F_DEVICES_UP, P "devices_up", "gauge", "of which with the link up"},
    {F_POLLS, P "device_polls_total", "counter", "polls of all its devices since start"},
    {F_ERRORS, P "device_errors_total", "counter", "failed polls since start"},
    {F_TIMEOUTS, P "device_timeouts_total", "counter", "polls that timed out"},
    {F_CRC, P "device_crc_errors_total", "counter", "frames with a bad CRC (RS-485)"},
    {F_CONNECT_ERRORS, P "device_connect_errors_total", "counter", "failed connections"},
    {F_SENT, P "readings_sent_total", "counter",
     "readings handed to MQTT since start (re-sends included)"},
    {F_RESENT, P "readings_resent_total", "counter", "of which re-sends"},
    {F_ACKED, P "acked_seq", "gauge", "highest reading number acknowledged end to end"},
    {F_ACK_AGE, P "ack_age_seconds", "gauge",
     "age of the oldest reading not acknowledged (0: none waits)"},
};

int ts_agent_status_render(struct ts_agent_status *s, struct ts_strbuf *o)
{
    int64_t now = ts_wall_ms();
    pthread_mutex_lock(&s->lock);
    put(o, "# HELP turnstile_bridge_agents_known agents whose retained status or state this "
            "bridge read\n# TYPE turnstile_bridge_agents_known gauge\n"
            "turnstile_bridge_agents_known %zu\n", s->n);
    put(o, "# HELP turnstile_bridge_agent_documents_left_out_total documents of agents "
            "left out of /metrics: the table was full ([http] max_agents)\n"
            "# TYPE turnstile_bridge_agent_documents_left_out_total counter\n"
            "turnstile_bridge_agent_documents_left_out_total %" PRIu64 "\n", s->left_out);
    put(o, "# HELP turnstile_bridge_agent_documents_total agents' status and state documents "
            "read\n# TYPE turnstile_bridge_agent_documents_total counter\n"
            "turnstile_bridge_agent_documents_total %" PRIu64 "\n", s->messages);
    put(o, "# HELP turnstile_bridge_agent_documents_bad_total agents' status or state "
            "documents that did not parse\n# TYPE turnstile_bridge_agent_documents_bad_total "
            "counter\nturnstile_bridge_agent_documents_bad_total %" PRIu64 "\n", s->bad_payloads);
    for (size_t f = 0; f < N(fams); f++) {
        put(o, "# HELP %s %s\n# TYPE %s %s\n", fams[f].name, fams[f].help, fams[f].name,
            fams[f].type);
        for (size_t i = 0; i < s->n; i++) {
            const struct rec *r = &s->recs[i];
            if (r->used && !isnan(r->f[fams[f].field]))
                put(o, "%s{station=\"%s\",agent=\"%s\"} %.17g\n", fams[f].name, r->station,
                    r->agent, r->f[fams[f].field]);
        }
    }
    put(o, "# HELP " P "state_age_seconds time since the agent's last state document came\n"
            "# TYPE " P "state_age_seconds gauge\n");
    for (size_t i = 0; i < s->n; i++) {
        const struct rec *r = &s->recs[i];
        if (r->used && r->state_ms)
            put(o, P "state_age_seconds{station=\"%s\",agent=\"%s\"} %.3f\n", r->station,
                r->agent, (double)(now - r->state_ms) / 1000.0);
    }
    pthread_mutex_unlock(&s->lock);
    return o->err;
}

/* --- life -------------------------------------------------------------------- */

int ts_agent_status_new(const struct ts_bridge_mqtt_cfg *mqtt, const char *bridge_id,
                        int max_agents, struct ts_agent_status **out, char *why,
                        size_t why_size)
{
    *out = NULL;
    struct ts_agent_status *s = calloc(1, sizeof *s);
    if (!s)
        return ts_fail(why, why_size, TS_ENOMEM, "%s", "metrics: out of memory");
    pthread_mutex_init(&s->lock, NULL);
    s->max = max_agents > 0 ? (size_t)max_agents : 1;
    ts_hashtab_init(&s->index, s->max);
    if (!mqtt) { /* tests: no link */
        *out = s;
        return TS_OK;
    }
    if (ts_mqtt_client_id(&mqtt->link, TS_BRIDGE_CLIENT_PREFIX, bridge_id, "-metrics", s->client_id,
                          sizeof s->client_id)) {
        ts_agent_status_free(s);
        return ts_fail(why, why_size, TS_ECONFIG, "%s", "metrics: mqtt: client id too long");
    }
    static const struct ts_mqtt_link_ops ops = {.connected = on_connected, .message = on_message};
    int rc = ts_mqtt_link_new(&mqtt->link, "metrics", s->client_id, true, LOOP_MS, &ops, s,
                              &s->link, why, why_size);
    if (rc == TS_OK)
        rc = ts_mqtt_link_start(s->link);
    if (rc != TS_OK) {
        ts_agent_status_free(s);
        return rc == TS_OK ? TS_ESYS : rc;
    }
    *out = s;
    return TS_OK;
}

void ts_agent_status_free(struct ts_agent_status *s)
{
    if (!s)
        return;
    ts_mqtt_link_free(s->link);
    pthread_mutex_destroy(&s->lock);
    free(s->recs);
    ts_hashtab_free(&s->index);
    free(s);
}
