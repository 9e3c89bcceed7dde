/* SPDX-License-Identifier: Apache-2.0 */
#include "kafka_conf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

/* Properties the bridge sets itself or relies on for its guarantees
 * (docs/kafka.md, "Secured Kafka"), aliases included: refused, with what to
 * use instead. */
static const struct {
    const char *name, *why;
} owned[] = {
    {"bootstrap.servers", "set [kafka] brokers"},
    {"metadata.broker.list", "set [kafka] brokers"},
    {"client.id", "the bridge names its clients after [bridge] id"},
    {"group.id", "set [kafka] group_id"},
    {"group.instance.id", "the bridge's static membership uses [bridge] id"},
    {"session.timeout.ms", "set [kafka] session_timeout_ms"},
    {"linger.ms", "set [kafka] linger_ms"},
    {"queue.buffering.max.ms", "set [kafka] linger_ms"},
    {"queue.buffering.max.messages", "set [kafka] queue_max_messages"},
    {"compression.type", "set [kafka] compression"},
    {"compression.codec", "set [kafka] compression"},
    {"enable.auto.commit", "the lake's checkpoints commit the offsets"},
    {"auto.commit.enable", "the lake's checkpoints commit the offsets"},
    {"enable.auto.offset.store", "the lake's checkpoints commit the offsets"},
    {"offset.store.method", "the lake's checkpoints commit the offsets"},
    {"auto.offset.reset", "a partition without a checkpoint is read from its beginning"},
    {"isolation.level", "the aggregator reads committed records only"},
    {"enable.partition.eof", "the aggregator does not handle end-of-partition events"},
    {"partition.assignment.strategy", "the aggregators' group assigns ranges"},
    {"acks", "the bridge produces with acks=all"},
    {"request.required.acks", "the bridge produces with acks=all"},
    {"enable.idempotence", "the relay's producer is idempotent (no duplicate, no reordering)"},
    {"enable.gapless.guarantee", "the relay handles a fatal producer error itself"},
    {"message.timeout.ms", "the bridge waits for Kafka for ever (no reading is dropped)"},
    {"delivery.timeout.ms", "the bridge waits for Kafka for ever (no reading is dropped)"},
    {"message.send.max.retries", "the bridge's producers retry for ever"},
    {"retries", "the bridge's producers retry for ever"},
    {"partitioner", "the relay places readings by agent (the lake's layout)"},
    {"transactional.id", "the bridge does not use transactions"},
    {"transaction.timeout.ms", "the bridge does not use transactions"},
    {"log.queue", "librdkafka's logs go to the bridge's log"},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- secrets: registered when read, masked in log lines ---- */

static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;
static char *secrets[TS_KAFKA_PROPS_MAX * 4];
static size_t n_secrets;

static void wipe(char *s)
{
    if (s) {
        volatile char *v = s;
        while (*v)
            *v++ = 0;
    }
}

/* A copy of value joins the registry. TS_OK or TS_ENOMEM (full: the value is
 * then refused, never shown unmasked). */
static int secret_register(const char *value)
{
    int rc = TS_OK;
    if (!*value)
        return TS_OK;
    pthread_mutex_lock(&secrets_lock);
    char *copy = n_secrets < N(secrets) ? strdup(value) : NULL;
    if (copy)
        secrets[n_secrets++] = copy;
    else
        rc = TS_ENOMEM;
    pthread_mutex_unlock(&secrets_lock);
    return rc;
}

static void secret_unregister(const char *value)
{
    pthread_mutex_lock(&secrets_lock);
    for (size_t i = 0; i < n_secrets; i++)
        if (strcmp(secrets[i], value) == 0) {
            wipe(secrets[i]);
            free(secrets[i]);
            secrets[i] = secrets[--n_secrets];
            break;
        }
    pthread_mutex_unlock(&secrets_lock);
}

void ts_kafka_redact(char *dst, size_t size, const char *src)
{
    static const char mask[] = "(secret)";
    size_t n = 0;

    if (size == 0)
        return;
    pthread_mutex_lock(&secrets_lock);
    while (*src && n + 1 < size) {
        size_t len = 0;
        for (size_t i = 0; i < n_secrets && !len; i++)
            if (strncmp(src, secrets[i], strlen(secrets[i])) == 0)
                len = strlen(secrets[i]);
        if (len) {
            size_t m = sizeof mask - 1 < size - 1 - n ? sizeof mask - 1 : size - 1 - n;
            memcpy(dst + n, mask, m);
            n += m;
            src += len;
        } else {
            dst[n++] = *src++;
        }
    }
    pthread_mutex_unlock(&secrets_lock);
    dst[n] = '\0';
}

void ts_kafka_log(int level, const char *prefix, const char *fac, const char *buf)
{
    char clean[2048];
    if (level > ts_log_level)
        return;
    ts_kafka_redact(clean, sizeof clean, buf);
    ts_log_write(level, "%s %s: %s", prefix, fac, clean);
}

/* ---- properties ---- */

static bool secret_name(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") || strstr(name, "key.pem") ||
           strstr(name, "oauthbearer.config");
}

static bool name_ok(const char *name)
{
    if (!*name)
        return false;
    for (const char *c = name; *c; c++)
        if (!islower((unsigned char)*c) && !isdigit((unsigned char)*c) && *c != '.' && *c != '_')
            return false;
    return true;
}

static bool env_name_ok(const char *v)
{
    if (!isalpha((unsigned char)*v) && *v != '_')
        return false;
    for (; *v; v++)
        if (!isalnum((unsigned char)*v) && *v != '_')
            return false;
    return true;
}

/* The content of the regular file path (at most TS_KAFKA_SECRET_MAX bytes,
 * no NUL byte, trailing line breaks removed) in *out (malloc'ed). NULL or a
 * reason. Opens without blocking (a FIFO) and checks the type on the fd. */
static const char *read_secret(const char *path, char **out, char *why, size_t whysize)
{
    struct stat sb;
    char *buf = NULL;
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

    *out = NULL;
    if (fd < 0) {
        snprintf(why, whysize, "cannot open '%s': %s", path, strerror(errno));
        return why;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, whysize, "'%s' is not a regular file", path);
        goto fail;
    }
    if (sb.st_size > TS_KAFKA_SECRET_MAX) {
        snprintf(why, whysize, "'%s' is larger than %d bytes", path, TS_KAFKA_SECRET_MAX);
        goto fail;
    }
    if (!(buf = malloc(TS_KAFKA_SECRET_MAX + 1))) {
        snprintf(why, whysize, "out of memory");
        goto fail;
    }
    for (;;) { /* one byte past the limit tells a file that grew */
        ssize_t got = read(fd, buf + n, TS_KAFKA_SECRET_MAX + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(why, whysize, "cannot read '%s': %s", path, strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > TS_KAFKA_SECRET_MAX) {
            snprintf(why, whysize, "'%s' is larger than %d bytes", path, TS_KAFKA_SECRET_MAX);
            goto fail;
        }
    }
    if (memchr(buf, '\0', n)) {
        snprintf(why, whysize, "'%s' holds a NUL byte", path);
        goto fail;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        snprintf(why, whysize, "'%s' is empty", path);
        goto fail;
    }
    close(fd);
    char *fit = realloc(buf, n + 1); /* a password is far smaller than the limit */
    *out = fit ? fit : buf;
    return NULL;
fail:
    if (buf) {
        memset(buf, 0, n);
        free(buf);
    }
    close(fd);
    return why;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t l = strlen(suffix);
    return len > l && strcmp(s + len - l, suffix) == 0;
}

const char *ts_kafka_props_add(struct ts_kafka_props *p, const char *key, const char *value,
                               int line, char *why, size_t whysize)
{
    const size_t plen = strlen(TS_KAFKA_PREFIX);
    char name[sizeof p->v->name];
    enum { INLINE, FILE_, ENV } from = INLINE;

    if (strncmp(key, TS_KAFKA_PREFIX, plen) != 0 || strlen(key) >= sizeof p->v->key)
        return "not a librdkafka property (rdkafka.NAME)";
    size_t len = strlen(key + plen);
    if (ends_with(key + plen, len, "_file"))
        from = FILE_, len -= 5;
    else if (ends_with(key + plen, len, "_env"))
        from = ENV, len -= 4;
    if (len >= sizeof name)
        return "not a librdkafka property (too long)";
    memcpy(name, key + plen, len);
    name[len] = '\0';
    if (!name_ok(name))
        return "not a librdkafka property (lower-case letters, digits, '.' and '_')";
    for (size_t i = 0; i < N(owned); i++)
        if (strcmp(name, owned[i].name) == 0) {
            snprintf(why, whysize, "the bridge sets %s itself: %s", name, owned[i].why);
            return why;
        }
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i].name, name) == 0) {
            snprintf(why, whysize, "%s set twice (first on line %d)", name, p->v[i].line);
            return why;
        }
    if (p->n == TS_KAFKA_PROPS_MAX) {
        snprintf(why, whysize, "more than %d librdkafka properties", TS_KAFKA_PROPS_MAX);
        return why;
    }

    char *v = NULL;
    if (from == FILE_) {
        if (read_secret(value, &v, why, whysize))
            return why;
    } else if (from == ENV) {
        if (!env_name_ok(value))
            return "not an environment variable name (letters, digits and '_')";
        const char *e = getenv(value);
        if (!e || !*e) {
            snprintf(why, whysize, "environment variable %s is %s", value, e ? "empty" : "not set");
            return why;
        }
        v = strdup(e);
    } else {
        for (const char *c = value; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                return "holds a control character";
        v = strdup(value);
    }
    if (!v)
        return "out of memory";
    struct ts_kafka_prop *grown = realloc(p->v, (p->n + 1) * sizeof *grown);
    bool secret = from != INLINE || secret_name(name);
    if (!grown || (secret && secret_register(v) != TS_OK)) {
        if (grown)
            p->v = grown;
        wipe(v);
        free(v);
        return "out of memory";
    }
    p->v = grown;
    struct ts_kafka_prop *prop = &p->v[p->n++];
    memset(prop, 0, sizeof *prop);
    memcpy(prop->name, name, len + 1);
    snprintf(prop->key, sizeof prop->key, "%s", key);
    prop->value = v;
    prop->line = line;
    prop->secret = secret;
    return NULL;
}

void ts_kafka_props_free(struct ts_kafka_props *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].secret)
            secret_unregister(p->v[i].value);
        wipe(p->v[i].value);
        free(p->v[i].value);
    }
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

int ts_kafka_prop_set(rd_kafka_conf_t *conf, const struct ts_kafka_prop *prop, char *why,
                      size_t whysize)
{
    char err[512];
    if (rd_kafka_conf_set(conf, prop->name, prop->value, err, sizeof err) == RD_KAFKA_CONF_OK)
        return TS_OK;
    ts_kafka_redact(why, whysize, err);
    return TS_ECONFIG;
}

int ts_kafka_conf_apply(rd_kafka_conf_t *conf, const struct ts_kafka_props *p, char *why,
                        size_t whysize)
{
    char err[400];
    for (size_t i = 0; p && i < p->n; i++)
        if (ts_kafka_prop_set(conf, &p->v[i], err, sizeof err) != TS_OK)
            return ts_fail(why, whysize, TS_ECONFIG, "[kafka] %s (line %d): librdkafka: %s",
                           p->v[i].key, p->v[i].line, err);
    return TS_OK;
}

static void trial_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf; /* a client that lives a moment: quiet */
}

int ts_kafka_props_trial(const struct ts_kafka_props *p, int *line, char *why, size_t whysize)
{
    static const rd_kafka_type_t types[] = {RD_KAFKA_PRODUCER, RD_KAFKA_CONSUMER};
    char err[512];

    *line = 0;
    for (size_t t = 0; t < N(types); t++) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (!conf)
            return ts_fail(why, whysize, TS_ENOMEM, "out of memory");
        /* no kinit run for a check (GSSAPI): unless set, key refresh off */
        bool relogin = false;
        for (size_t i = 0; i < p->n; i++)
            relogin = relogin || strcmp(p->v[i].name, "sasl.kerberos.min.time.before.relogin") == 0;
        if (!relogin)
            rd_kafka_conf_set(conf, "sasl.kerberos.min.time.before.relogin", "0", err, sizeof err);
        for (size_t i = 0; i < p->n; i++)
            rd_kafka_conf_set(conf, p->v[i].name, p->v[i].value, err, sizeof err);
        rd_kafka_conf_set_log_cb(conf, trial_log);
        err[0] = '\0';
        rd_kafka_t *rk = rd_kafka_new(types[t], conf, err, sizeof err);
        if (rk) {
            rd_kafka_destroy(rk);
            continue;
        }
        rd_kafka_conf_destroy(conf);
        size_t best = 0;
        for (size_t i = 0; i < p->n; i++) /* the longest property name the reason holds */
            if (strstr(err, p->v[i].name) && strlen(p->v[i].name) > best) {
                best = strlen(p->v[i].name);
                *line = p->v[i].line;
            }
        ts_kafka_redact(why, whysize, err[0] ? err : "librdkafka refuses this configuration");
        return TS_ECONFIG;
    }
    return TS_OK;
}
