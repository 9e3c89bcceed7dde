#include "aggregator.h"

#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "now.h"
#include "lake.h"
#include "log.h"
#include "reading.h"
#include "seqset.h"
#include "station_windows.h"
#include "window.h"

#define BATCH_MAX 10000          /* messages between two window advances */
#define TIMER_MS 1000            /* windows advance at least this often */
#define PAUSE_AFTER_FAILURE_MS 5000
#define CONSUMER_BACKOFF_MIN_MS 1000   /* a failed consumer is replaced after this, */
#define CONSUMER_BACKOFF_MAX_MS 30000  /* doubling up to this while failures repeat */
#define CONSUMER_STABLE_MS 60000       /* a consumer that lived this long resets it */

/* One assigned partition. */
struct part {
    struct ts_aggregator *agg;
    int32_t partition;
    bool assigned;
    bool lost;                   /* another bridge committed its checkpoint */
    struct ts_lake *lake;
    struct ts_seqsets seen;
    struct ts_window_agg *win;
    int64_t next_offset;         /* offset after the last message taken */
    int64_t ckpt_offset;         /* offset_next of the last checkpoint */
    int64_t ckpt_ms;             /* when it was written */
    int64_t paused_until_ms;     /* 0: not paused */
    int64_t seek_to;             /* after a reload: messages are ignored until this offset
                                    comes (what was fetched before the seek); -1: none */
    bool dirty;                  /* state changed since the last checkpoint */
};

struct ts_aggregator {
    rd_kafka_t *rk;              /* NULL between a failed consumer and its successor */
    struct ts_bridge_kafka_cfg kafka; /* what a new consumer is made from */
    bool in_rebalance;           /* inside on_rebalance: no group offset commits */
    bool consumer_failed;        /* librdkafka raised a fatal error: replace rk */
    int64_t consumer_since_ms;   /* when rk was created */
    int64_t consumer_next_ms;    /* rk == NULL: when to create the next one */
    int consumer_backoff_ms;
    struct ts_ack *ack;
    struct ts_station_windows *stations; /* with ack: window summaries for dashboards */
    char topic[128];
    char owner[64];
    struct ts_lake_cfg lake_cfg;
    struct ts_bridge_lake_cfg lake;
    struct ts_window_cfg wcfg;
    struct part **parts;         /* by partition number */
    size_t n_parts;
    int64_t last_advance_ms;
    bool fatal;
    struct ts_aggregator_stats st;
};

/* --- partition state: checkpoint blob ------------------------------------ */

/* "ts-bridge-state 1\nseqsets N\n<N bytes>window M\n<M bytes>" */
static int state_encode(const struct part *p, char **out, size_t *out_len)
{
    char *sets = NULL, *win = NULL;
    size_t sets_len = 0, win_len = 0;
    int rc = ts_seqsets_encode(&p->seen, &sets, &sets_len);
    if (rc == TS_OK)
        rc = ts_window_encode(p->win, &win, &win_len);
    if (rc == TS_OK) {
        size_t cap = sets_len + win_len + 96;
        char *buf = malloc(cap);
        if (!buf) {
            rc = TS_ENOMEM;
        } else {
            int n = snprintf(buf, cap, "ts-bridge-state 1\nseqsets %zu\n", sets_len);
            memcpy(buf + n, sets, sets_len);
            size_t len = (size_t)n + sets_len;
            len += (size_t)snprintf(buf + len, cap - len, "window %zu\n", win_len);
            memcpy(buf + len, win, win_len);
            len += win_len;
            *out = buf;
            *out_len = len;
        }
    }
    free(sets);
    free(win);
    return rc;
}

/* Reads "<name> <len>\n" at *pos and returns the section's bytes. */
static const char *state_section(const char *buf, size_t len, size_t *pos, const char *name,
                                 size_t *sec_len)
{
    const char *p = buf + *pos, *end = buf + len;
    size_t nl = strlen(name);
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol || (size_t)(eol - p) <= nl + 1 || memcmp(p, name, nl) != 0 || p[nl] != ' ')
        return NULL;
    char *stop;
    unsigned long long n = strtoull(p + nl + 1, &stop, 10);
    if (stop != eol || n > (unsigned long long)(end - eol - 1))
        return NULL;
    *sec_len = (size_t)n;
    *pos = (size_t)(eol + 1 - buf) + (size_t)n;
    return eol + 1;
}

static int state_decode(struct part *p, const char *buf, size_t len, char *why, size_t why_size)
{
    static const char magic[] = "ts-bridge-state 1\n";
    size_t pos = sizeof magic - 1, sets_len, win_len, line = 0;
    if (len < pos || memcmp(buf, magic, pos) != 0) {
        snprintf(why, why_size, "state does not start with '%.*s'", (int)pos - 1, magic);
        return TS_EPARSE;
    }
    const char *sets = state_section(buf, len, &pos, "seqsets", &sets_len);
    const char *win = sets ? state_section(buf, len, &pos, "window", &win_len) : NULL;
    if (!win || pos != len) {
        snprintf(why, why_size, "state sections malformed");
        return TS_EPARSE;
    }
    int rc = ts_seqsets_decode(&p->seen, sets, sets_len, &line);
    if (rc != TS_OK) {
        snprintf(why, why_size, "duplicate-removal state, line %zu: %s", line, ts_strerror(rc));
        return rc;
    }
    return ts_window_decode(p->win, win, win_len, ts_wall_ms(), why, why_size);
}

/* --- partition life ------------------------------------------------------ */

static void part_clear(struct part *p)
{
    ts_lake_close(p->lake);
    p->lake = NULL;
    ts_seqsets_free(&p->seen);
    ts_window_free(p->win);
    p->win = NULL;
}

/* (Re)loads the partition from the lake's latest checkpoint: *offset is where
 * to consume from. TS_OK, or an error that stops the bridge (a checkpoint it
 * cannot read: resuming without it would count twice or lose). */
static int part_load(struct ts_aggregator *agg, struct part *p, int64_t *offset)
{
    struct ts_lake_resume res = {0};
    char why[256] = "";
    int rc;

    part_clear(p);
    ts_seqsets_init(&p->seen, 0);
    rc = ts_window_new(&agg->wcfg, &p->win, why, sizeof why);
    if (rc == TS_OK)
        rc = ts_lake_open(&agg->lake_cfg, agg->topic, p->partition, &p->lake, &res, why, sizeof why);
    if (rc == TS_OK && res.state)
        rc = state_decode(p, res.state, res.state_len, why, sizeof why);
    if (rc != TS_OK) {
        TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": cannot resume from the lake: %s%s%s",
               p->partition, ts_strerror(rc), why[0] ? ": " : "", why);
        free(res.state);
        part_clear(p);
        return rc;
    }
    p->next_offset = p->ckpt_offset = res.offset_next;
    p->seek_to = -1;
    p->ckpt_ms = ts_wall_ms();
    p->dirty = false;
    p->lost = false;
    *offset = res.offset_next >= 0 ? res.offset_next : RD_KAFKA_OFFSET_BEGINNING;
    TS_LOG(TS_LOG_INFO,
           "aggregate: partition %" PRId32 ": resuming at %s%" PRId64 " (checkpoint %" PRIu64
           ", %zu agents; %u files rolled forward, %u temporaries removed)",
           p->partition, res.offset_next >= 0 ? "offset " : "the beginning ",
           res.offset_next >= 0 ? res.offset_next : 0, res.generation, ts_seqsets_count(&p->seen),
           res.rolled_forward, res.removed_temporaries);
    free(res.state);
    return TS_OK;
}

static struct part *part_get(struct ts_aggregator *agg, int32_t partition, bool create)
{
    if (partition < 0)
        return NULL;
    if ((size_t)partition >= agg->n_parts) {
        if (!create)
            return NULL;
        size_t n = (size_t)partition + 1;
        struct part **a = realloc(agg->parts, n * sizeof *a);
        if (!a)
            return NULL;
        for (size_t i = agg->n_parts; i < n; i++)
            a[i] = NULL;
        agg->parts = a;
        agg->n_parts = n;
    }
    if (!agg->parts[partition] && create) {
        struct part *p = calloc(1, sizeof *p);
        if (!p)
            return NULL;
        p->agg = agg;
        p->partition = partition;
        agg->parts[partition] = p;
    }
    return agg->parts[partition];
}

static void emit_row(const struct ts_window_row *row, void *ctx)
{
    struct part *p = ctx;
    if (p->lost || !p->lake)
        return;
    p->agg->st.rows++;
    p->agg->st.late_rows += row->late;
    if (p->agg->stations)
        ts_station_windows_row(p->agg->stations, row);
    if (ts_lake_write_row(p->lake, row) != TS_OK)
        p->dirty = true; /* the commit will fail and reload (the error is sticky) */
}

static void publish_window(const char *topic, const char *json, size_t len, void *ctx)
{
    ts_ack_publish_retained(ctx, topic, json, len);
}

/* Commits the checkpoint's offset to the group: progress (lag) for operators
 * only, the lake is the truth. Asynchronous, its result ignored (librdkafka
 * logs a failure). Never from the rebalance callback: a revocation after the
 * group session was lost (librdkafka resets the member id) would commit with
 * an id the coordinator no longer knows, and with static membership the
 * coordinator answers FENCED_INSTANCE_ID, which librdkafka 2.0 makes a fatal
 * error of the whole consumer (docs/bridge.md). The next owner's first
 * checkpoint commits the offset instead. */
static void monitoring_commit(struct ts_aggregator *agg, const struct part *p)
{
    if (p->next_offset < 0 || agg->in_rebalance || !agg->rk || agg->consumer_failed)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, agg->topic, p->partition)->offset = p->next_offset;
    rd_kafka_commit(agg->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Writes the partition's checkpoint. */
static void part_commit(struct ts_aggregator *agg, struct part *p)
{
    struct ts_lake_commit_info info = {0};
    char *state = NULL;
    size_t len = 0;

    if (p->lost || !p->lake)
        return;
    int rc = state_encode(p, &state, &len);
    if (rc == TS_OK)
        rc = ts_lake_commit(p->lake, p->next_offset, state, len, &info);
    free(state);
    if (rc == TS_OK) {
        agg->st.checkpoints++;
        agg->st.files += info.files;
        p->ckpt_offset = p->next_offset;
        p->ckpt_ms = ts_wall_ms();
        p->dirty = false;
        monitoring_commit(agg, p);
        if (agg->stations && info.rows)
            ts_station_windows_flush(agg->stations, publish_window, agg->ack);
        TS_LOG(TS_LOG_DEBUG, "aggregate: partition %" PRId32 ": checkpoint %" PRIu64
               " at offset %" PRId64 ", %u files, %" PRIu64 " rows",
               p->partition, info.generation, p->next_offset, info.files, info.rows);
        return;
    }
    if (rc == TS_ECONFLICT) {
        TS_LOG(TS_LOG_WARNING, "aggregate: partition %" PRId32 ": another bridge committed a "
               "checkpoint of it: dropping it until the group reassigns it", p->partition);
        agg->st.conflicts++;
        p->lost = true;
        part_clear(p);
        return;
    }
    agg->st.commit_failures++;
    TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": checkpoint failed (%s%s%s): resuming "
           "from the last one in %d s", p->partition, ts_strerror(rc), rc == TS_ESYS ? ": " : "",
           rc == TS_ESYS ? strerror(errno) : "", PAUSE_AFTER_FAILURE_MS / 1000);
    int64_t offset, high;
    if (part_load(agg, p, &offset) != TS_OK) {
        agg->fatal = true;
        return;
    }
    /* no checkpoint yet: seek to the first offset there is, by number, so
     * that what was fetched before the seek can be told apart */
    if (offset < 0 && rd_kafka_query_watermark_offsets(agg->rk, agg->topic, p->partition, &offset,
                                                       &high, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": cannot find its first offset",
               p->partition);
        agg->fatal = true;
        return;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, agg->topic, p->partition)->offset = offset;
    rd_kafka_pause_partitions(agg->rk, l);
    rd_kafka_error_t *e = rd_kafka_seek_partitions(agg->rk, l, 5000);
    if (e) {
        TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": seek: %s", p->partition,
               rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        agg->fatal = true;
    }
    rd_kafka_topic_partition_list_destroy(l);
    p->paused_until_ms = ts_wall_ms() + PAUSE_AFTER_FAILURE_MS;
}

/* --- rebalancing --------------------------------------------------------- */

static void rebalance(struct ts_aggregator *agg, rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *list);

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    struct ts_aggregator *agg = opaque;

    agg->in_rebalance = true;
    rebalance(agg, rk, err, list);
    agg->in_rebalance = false;
}

static void rebalance(struct ts_aggregator *agg, rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *list)
{
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < list->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &list->elems[i];
            struct part *p = part_get(agg, tp->partition, true);
            int64_t offset = RD_KAFKA_OFFSET_BEGINNING;
            if (!p || part_load(agg, p, &offset) != TS_OK) {
                agg->fatal = true;
                continue;
            }
            p->assigned = true;
            p->paused_until_ms = 0;
            tp->offset = offset;
            agg->st.partitions++;
        }
        rd_kafka_assign(rk, list);
        return;
    }
    /* revoked (or lost): checkpoint what we have so that the next owner
     * resumes exactly here, then forget the partition */
    for (int i = 0; i < list->cnt; i++) {
        struct part *p = part_get(agg, list->elems[i].partition, false);
        if (!p || !p->assigned)
            continue;
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && p->dirty)
            part_commit(agg, p);
        part_clear(p);
        p->assigned = false;
        agg->st.partitions--;
    }
    rd_kafka_assign(rk, NULL);
}

/* --- consuming ----------------------------------------------------------- */

static void consumer_fatal(struct ts_aggregator *agg);
static void consumer_drop(struct ts_aggregator *agg);
static bool consumer_replace(struct ts_aggregator *agg, int timeout_ms);

static void take(struct ts_aggregator *agg, const rd_kafka_message_t *m, int64_t now)
{
    struct part *p = part_get(agg, m->partition, false);
    char line[TS_READING_LINE_MAX];
    struct ts_reading r;
    const char *why = NULL;
    int32_t offset_s;

    agg->st.consumed++;
    if (!p || !p->assigned || p->lost || !p->lake)
        return;
    if (p->seek_to >= 0) {
        if (m->offset != p->seek_to)
            return; /* fetched before the seek back to the checkpoint */
        p->seek_to = -1;
    }
    if (m->offset < p->next_offset)
        return; /* already taken */
    p->next_offset = m->offset + 1;
    p->dirty = true;
    if (!m->payload || m->len == 0 || m->len >= sizeof line || memchr(m->payload, '\0', m->len)) {
        agg->st.invalid++;
        return;
    }
    memcpy(line, m->payload, m->len);
    line[m->len] = '\0';
    if (ts_reading_parse(line, &r, &why) != TS_OK ||
        ts_reading_utc_offset(line, &r, &offset_s) != TS_OK || r.time_ms < 0 ||
        r.time_ms > TS_WINDOW_TIME_MAX) {
        if (agg->st.invalid++ < 10)
            TS_LOG(TS_LOG_WARNING, "aggregate: partition %" PRId32 " offset %" PRId64
                   ": not a reading (%s), skipped", m->partition, m->offset,
                   why ? why : "time or offset out of range");
        return;
    }
    bool dup = false;
    int rc = ts_seqset_accept(&p->seen, r.agent_id, r.merged_from, r.seq, &dup);
    if (rc == TS_EFULL) {
        if (agg->st.held++ < 10)
            TS_LOG(TS_LOG_WARNING, "aggregate: agent %s: too many gaps in its sequence; reading "
                   "%" PRIu64 " skipped until they fill (the agent re-sends it)", r.agent_id, r.seq);
        return;
    }
    if (rc != TS_OK) {
        agg->st.invalid++;
        return;
    }
    if (dup) {
        agg->st.duplicates++;
        return;
    }
    rc = ts_window_add(p->win, &r, offset_s, now);
    if (rc != TS_OK) {
        /* only TS_ENOMEM is possible here (inputs were checked): the set
         * already holds the reading, so the partition must be reloaded */
        TS_LOG(TS_LOG_ERR, "aggregate: cannot add a reading: %s", ts_strerror(rc));
        agg->fatal = true;
        return;
    }
    agg->st.readings++;
    if (agg->ack) {
        const void *topic = NULL;
        size_t topic_len = 0;
        rd_kafka_headers_t *hdrs = NULL;
        char t[256];
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(hdrs, "mqtt_topic", &topic, &topic_len) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            topic && topic_len < sizeof t) {
            memcpy(t, topic, topic_len);
            t[topic_len] = '\0';
            struct ts_seqset *set = ts_seqsets_find(&p->seen, r.agent_id);
            if (set)
                ts_ack_set(agg->ack, t, ts_seqset_contiguous(set));
            /* turnstile/v1/<station_id>/... : which station the turnstile is at */
            char *station = t + sizeof "turnstile/v1/" - 1, *slash;
            if (topic_len > sizeof "turnstile/v1/" && strncmp(t, "turnstile/v1/", 13) == 0 &&
                (slash = strchr(station, '/'))) {
                *slash = '\0';
                ts_station_windows_learn(agg->stations, &r, station);
            }
        }
    }
}

static void advance_all(struct ts_aggregator *agg, int64_t now, bool force_commit)
{
    for (size_t i = 0; i < agg->n_parts; i++) {
        struct part *p = agg->parts[i];
        if (!p || !p->assigned || p->lost || !p->lake)
            continue;
        if (p->paused_until_ms && now < p->paused_until_ms)
            continue; /* reloaded after a failed commit: waits before trying again */
        if (ts_window_advance(p->win, now, emit_row, p) > 0)
            p->dirty = true;
        if (p->dirty && (force_commit || now - p->ckpt_ms >= agg->lake.checkpoint_interval_ms))
            part_commit(agg, p);
        if (p->paused_until_ms && now >= p->paused_until_ms) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, agg->topic, p->partition);
            rd_kafka_resume_partitions(agg->rk, l);
            rd_kafka_topic_partition_list_destroy(l);
            p->paused_until_ms = 0;
        }
    }
    agg->last_advance_ms = now;
}

int ts_aggregator_poll(struct ts_aggregator *agg, int timeout_ms)
{
    int64_t start = ts_wall_ms(), now = start;
    int n = 0;

    if (!agg->rk && !consumer_replace(agg, timeout_ms))
        return TS_OK; /* waited for the next consumer */
    while (n < BATCH_MAX && !agg->fatal && !agg->consumer_failed) {
        int wait = n == 0 ? timeout_ms : 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(agg->rk, wait);
        if (!m)
            break;
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__FATAL)
                consumer_fatal(agg);
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                TS_LOG(TS_LOG_WARNING, "aggregate: Kafka: %s", rd_kafka_message_errstr(m));
        } else {
            if (n == 0)
                now = ts_wall_ms();
            take(agg, m, now);
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    if (agg->consumer_failed)
        consumer_drop(agg);
    now = ts_wall_ms();
    if (n > 0 || now - agg->last_advance_ms >= TIMER_MS)
        advance_all(agg, now, false);
    return agg->fatal ? TS_EIO : TS_OK;
}

/* --- life ---------------------------------------------------------------- */

static int set_prop(rd_kafka_conf_t *conf, const char *name, const char *value, char *why,
                    size_t why_size)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
        snprintf(why, why_size, "kafka: %s=%s: %s", name, value, err);
        return TS_ECONFIG;
    }
    return TS_OK;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    TS_LOG(level <= 3 ? TS_LOG_ERR : level == 4 ? TS_LOG_WARNING : TS_LOG_DEBUG,
           "aggregate: librdkafka %s: %s", fac, buf);
}

/* Creates the consumer (agg->rk) from agg->kafka and subscribes. TS_OK, or
 * TS_ECONFIG with a sentence in why. */
static int consumer_new(struct ts_aggregator *agg, char *why, size_t why_size)
{
    char num[32], err[256];
    int rc;

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(num, sizeof num, "%d", agg->kafka.session_timeout_ms);
    if ((rc = set_prop(conf, "bootstrap.servers", agg->kafka.brokers, why, why_size)) ||
        (rc = set_prop(conf, "group.id", agg->kafka.group_id, why, why_size)) ||
        (rc = set_prop(conf, "client.id", agg->owner, why, why_size)) ||
        /* static membership: a restarted bridge gets its partitions back at
         * once, without a rebalance of the whole group */
        (rc = set_prop(conf, "group.instance.id", agg->owner, why, why_size)) ||
        (rc = set_prop(conf, "enable.auto.commit", "false", why, why_size)) ||
        (rc = set_prop(conf, "enable.auto.offset.store", "false", why, why_size)) ||
        (rc = set_prop(conf, "auto.offset.reset", "earliest", why, why_size)) ||
        (rc = set_prop(conf, "partition.assignment.strategy", "range", why, why_size)) ||
        (rc = set_prop(conf, "session.timeout.ms", num, why, why_size)) ||
        (rc = set_prop(conf, "isolation.level", "read_committed", why, why_size)) ||
        /* librdkafka before 2.1 stops fetching a partition for a whole second
         * (rd_kafka_max_block_ms) once its local queue passes these bounds
         * (confluentinc/librdkafka#2879): keep the bounds above what the
         * aggregator takes in a second, or it idles two thirds of the time */
        (rc = set_prop(conf, "queued.min.messages", "1000000", why, why_size)) ||
        (rc = set_prop(conf, "queued.max.messages.kbytes", "262144", why, why_size))) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_opaque(conf, agg);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_log_cb(conf, on_log);
    agg->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!agg->rk) {
        snprintf(why, why_size, "kafka consumer: %s", err);
        rd_kafka_conf_destroy(conf);
        return TS_ECONFIG;
    }
    rd_kafka_poll_set_consumer(agg->rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, agg->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(agg->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(why, why_size, "kafka subscribe %s: %s", agg->topic, rd_kafka_err2str(e));
        rd_kafka_destroy(agg->rk);
        agg->rk = NULL;
        return TS_ECONFIG;
    }
    agg->consumer_since_ms = ts_wall_ms();
    return TS_OK;
}

/* librdkafka raised a fatal error: the consumer is unusable for good (in
 * 2.0.2 it joins no group, turns every assignment into an unassignment,
 * refuses commits, reconnects no broker). The usual cause is static
 * membership: a request with a member id the coordinator has replaced is
 * answered FENCED_INSTANCE_ID (docs/bridge.md). */
static void consumer_fatal(struct ts_aggregator *agg)
{
    char reason[256] = "";
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(agg->rk, reason, sizeof reason);
    int64_t now = ts_wall_ms();
    unsigned parts = 0;

    for (size_t i = 0; i < agg->n_parts; i++)
        parts += agg->parts[i] && agg->parts[i]->assigned;
    if (now - agg->consumer_since_ms >= CONSUMER_STABLE_MS || agg->consumer_backoff_ms == 0)
        agg->consumer_backoff_ms = CONSUMER_BACKOFF_MIN_MS;
    else if ((agg->consumer_backoff_ms *= 2) > CONSUMER_BACKOFF_MAX_MS)
        agg->consumer_backoff_ms = CONSUMER_BACKOFF_MAX_MS;
    agg->consumer_failed = true;
    agg->st.consumer_failures++;
    TS_LOG(TS_LOG_ERR, "aggregate: consumer failed for good (fatal Kafka error %s: %s): dropping "
           "its %u partition(s) without a checkpoint (each resumes from its last one), a new "
           "consumer in %d ms; the relay goes on", rd_kafka_err2name(orig), reason, parts,
           agg->consumer_backoff_ms);
}

/* Forgets the partitions of a failed consumer and destroys it. Their state
 * since the last checkpoint is dropped, never checkpointed: the consumer
 * that fetched it may no longer own them (the group may have handed them to
 * another bridge), and their lake checkpoint already holds everything
 * needed to resume, exactly as after a crash. */
static void consumer_drop(struct ts_aggregator *agg)
{
    for (size_t i = 0; i < agg->n_parts; i++) {
        struct part *p = agg->parts[i];
        if (!p || !p->assigned)
            continue;
        part_clear(p);
        p->assigned = false;
        p->lost = false;
        p->paused_until_ms = 0;
        agg->st.partitions--;
    }
    /* no consumer_close: no rebalance callback, no commit, no LeaveGroup */
    rd_kafka_destroy_flags(agg->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    agg->rk = NULL;
    agg->consumer_failed = false;
    agg->consumer_next_ms = ts_wall_ms() + agg->consumer_backoff_ms;
}

/* No consumer: makes the next one when its back-off is over, else sleeps
 * (at most timeout_ms). True if there is a consumer now. */
static bool consumer_replace(struct ts_aggregator *agg, int timeout_ms)
{
    char why[512] = "";
    int64_t now = ts_wall_ms();

    if (now >= agg->consumer_next_ms) {
        if (consumer_new(agg, why, sizeof why) == TS_OK) {
            TS_LOG(TS_LOG_NOTICE, "aggregate: new Kafka consumer (after %" PRIu64 " failure(s)): "
                   "joining group %s", agg->st.consumer_failures, agg->kafka.group_id);
            return true;
        }
        TS_LOG(TS_LOG_ERR, "aggregate: cannot make a new Kafka consumer: %s; trying again in %d ms",
               why, agg->consumer_backoff_ms);
        agg->consumer_next_ms = now + agg->consumer_backoff_ms;
    }
    int64_t left = agg->consumer_next_ms - now;
    if (left > timeout_ms)
        left = timeout_ms;
    if (left > 0) {
        struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

int ts_aggregator_new(const struct ts_bridge_cfg *cfg, struct ts_ack *ack,
                      struct ts_aggregator **out, char *why, size_t why_size)
{
    struct ts_aggregator *agg = calloc(1, sizeof *agg);
    int rc;

    if (!agg)
        return TS_ENOMEM;
    agg->ack = ack;
    snprintf(agg->topic, sizeof agg->topic, "%s", cfg->kafka.readings_topic);
    snprintf(agg->owner, sizeof agg->owner, "%s", cfg->bridge.id);
    agg->lake = cfg->lake;
    agg->lake_cfg = (struct ts_lake_cfg){.root = agg->lake.path, .table = agg->lake.table,
                                         .owner = agg->owner, .row_number = agg->lake.row_number,
                                         .compression_level = agg->lake.compression_level,
                                         .keep_checkpoints = agg->lake.keep_checkpoints};
    agg->st.watermark_ms = INT64_MIN;
    ts_window_cfg_default(&agg->wcfg);
    agg->wcfg.size_ms = (int64_t)cfg->lake.window_s * 1000;
    agg->wcfg.slide_ms = (int64_t)cfg->lake.slide_s * 1000;
    agg->wcfg.lateness_ms = cfg->lake.lateness_s < 0 ? TS_WINDOW_LATENESS_DEFAULT
                                                     : (int64_t)cfg->lake.lateness_s * 1000;
    agg->wcfg.idle_ms = (int64_t)cfg->lake.idle_s * 1000;
    agg->wcfg.max_open = (size_t)cfg->lake.max_open_groups;
    if ((rc = ts_window_cfg_check(&agg->wcfg, why, why_size)) != TS_OK) {
        free(agg);
        return TS_ECONFIG;
    }

    agg->kafka = cfg->kafka;
    if ((rc = consumer_new(agg, why, why_size)) != TS_OK) {
        free(agg);
        return rc;
    }
    if (ack && ts_station_windows_new(&agg->stations) != TS_OK) {
        rd_kafka_consumer_close(agg->rk);
        rd_kafka_destroy(agg->rk);
        free(agg);
        return TS_ENOMEM;
    }
    agg->last_advance_ms = ts_wall_ms();
    *out = agg;
    return TS_OK;
}

void ts_aggregator_stats(const struct ts_aggregator *agg, struct ts_aggregator_stats *st)
{
    *st = agg->st;
    st->watermark_ms = INT64_MIN;
    st->agents = st->agents_with_gaps = 0;
    bool first = true;
    for (size_t i = 0; i < agg->n_parts; i++) {
        const struct part *p = agg->parts[i];
        if (!p || !p->assigned || !p->win)
            continue;
        size_t cursor = 0;
        const char *agent;
        struct ts_seqset *set;
        while (ts_seqsets_next(&p->seen, &cursor, &agent, &set)) {
            st->agents++;
            st->agents_with_gaps += ts_seqset_ranges(set) > 0;
        }
        int64_t w = ts_window_watermark(p->win);
        if (first || w < st->watermark_ms)
            st->watermark_ms = w;
        first = false;
    }
}

void ts_aggregator_free(struct ts_aggregator *agg)
{
    if (!agg)
        return;
    if (!agg->fatal) /* a final checkpoint: windows stay open in the state */
        advance_all(agg, ts_wall_ms(), true);
    if (agg->rk) {
        rd_kafka_consumer_close(agg->rk); /* the revoke callback clears the partitions */
        rd_kafka_destroy(agg->rk);
    }
    for (size_t i = 0; i < agg->n_parts; i++) {
        if (agg->parts[i])
            part_clear(agg->parts[i]);
        free(agg->parts[i]);
    }
    free(agg->parts);
    ts_station_windows_free(agg->stations);
    free(agg);
}
