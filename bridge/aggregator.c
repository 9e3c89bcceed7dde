/* SPDX-License-Identifier: Apache-2.0 */
#include "aggregator.h"

#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "agent_table.h"
#include "deadletter.h"
#include "err.h"
#include "kafka_conf.h"
#include "layout.h"
#include "now.h"
#include "lake.h"
#include "lake_s3.h"
#include "lake_store.h"
#include "partition_state.h"
#include "log.h"
#include "mqtt_link.h"
#include "reading.h"
#include "retention.h"
#include "seqset.h"
#include "station_windows.h"
#include "topics.h"
#include "verdict.h"
#include "window.h"

#define CHUNK 256                /* records an aggregating thread takes from its inbox at once */
#define STAGE 256                /* records the polling thread gathers for one before handing */
#define END_QUERY_MS 2000        /* ts_aggregator_at_end: a partition's end asked of Kafka */
#define STATION_ROWS 128         /* closed rows a worker gathers for the station windows */
#define TIMER_MS 1000            /* windows advance at least this often */
#define PAUSE_AFTER_FAILURE_MS 5000  /* the first pause after a failed checkpoint, */
#define PAUSE_MAX_MS 300000          /* doubling up to this while failures repeat */
#define RETENTION_ASK_MS 600000      /* the topic's retention.ms is asked again this often */
#define BACKLOG_LOG_MS 60000         /* a backlog near the retention: one line a minute */
#define CATCH_UP_MAX_MS 60000        /* ack_after = kafka: a retry reads at most this long
                                        before it tries to commit */
#define CONSUMER_BACKOFF_MIN_MS 1000   /* a failed consumer is replaced after this, */
#define CONSUMER_BACKOFF_MAX_MS 30000  /* doubling up to this while failures repeat */
#define CONSUMER_STABLE_MS 60000       /* a consumer that lived this long resets it */
#define POKE_WAIT_MS 5           /* a partition behind and nothing fetched for this long: */
#define POKE_BACKOFF_MAX_MS 1000 /* the fetcher is woken (fetcher_poke), again after a pause
                                    that doubles up to this while it brings nothing */
#define POKE_ANSWER_MS 100       /* ... and the poke's answer waited for this long at most */
#define DL_WAIT_MS 1000          /* a dead letter waits this long for room in the queue */
#define DL_CONFIRM_MS 500        /* before a checkpoint: dead letters confirmed within this */
#define DL_CONFIRM_FINAL_MS 10000 /* ... at revocation and shutdown */
#define REFUSED_LOG_MS 10000     /* refusals logged: at most REFUSED_LOG_LINES per window */
#define REFUSED_LOG_LINES 5
#define ACK_BATCH_MAX 1024       /* agents whose ack a batch collects before handing them over */
#define TOPIC_MAX (2 * TS_ID_MAX + 32) /* turnstile/v1/<station>/<agent>/readings */

struct worker;

/* One assigned partition: its state belongs to its worker (partition modulo
 * the thread count), or to the polling thread while the workers are held. */
struct part {
    struct ts_aggregator *agg;
    struct worker *w;            /* the aggregating thread that takes its records */
    int32_t partition;
    bool assigned;
    bool lost;                   /* another bridge committed its checkpoint */
    struct ts_lake *lake;
    struct ts_agent_table agents; /* the agents' sets: in memory, and archived */
    struct ts_window_agg *win;
    int64_t next_offset;         /* offset after the last message taken */
    int64_t start_offset;        /* the polling thread's: where its assignment started
                                    (negative: the partition's beginning) */
    int64_t end_offset;          /* ... its end when ts_aggregator_at_end first asked
                                    after the assignment; -1: not asked yet */
    int64_t ckpt_offset;         /* offset_next of the last checkpoint */
    int64_t ckpt_ms;             /* when it was written */
    int64_t paused_until_ms;     /* 0: not paused */
    int64_t reload_due_ms;       /* the object store was out of reach at a reload: the
                                    partition, paused and without a lake, is loaded
                                    again at this time (0: none) */
    _Atomic uint64_t gen;        /* the polling thread's: seeks it made of the partition;
                                    each record handed over carries it */
    uint64_t take_gen;           /* the worker's: records of an older gen were polled before
                                    its last seek (a reload) and are not taken */
    _Atomic int64_t seek_req;    /* a worker's reload: the offset the polling thread is to
                                    seek the partition to (seek_requests); -1: none */
    bool dirty;                  /* state changed since the last checkpoint */
    bool dl_pending;             /* dead letters sent since Kafka last confirmed them all:
                                    no checkpoint before they are confirmed (under dl_mu) */
    atomic_bool reload_wanted;   /* a dead letter of it was lost (another thread's flush
                                    found it): its worker reloads it */
    int64_t backlog_since_ms;    /* Kafka timestamp of the oldest record since the last
                                    checkpoint that Kafka still has; INT64_MIN: none */
    int64_t backlog_log_ms;      /* last "backlog nears the retention" line */
    int backlog_level;           /* ... and its level: 0 none, 1 warning, 2 error */
    int64_t expired_to;          /* offsets below this were counted as deleted by Kafka
                                    before a checkpoint took them (kept across reloads) */
    int64_t fill_from;           /* ack_after = kafka, after such a deletion: from this
                                    offset on, an agent's numbers up to its published ack
                                    that the partition never saw are passed (lost); -1 */
    unsigned fill_log_left;      /* fill_lost lines still to log for this deletion */
    bool retrying;               /* reloaded after a failure, no checkpoint since */
    int64_t catch_up_to;         /* ack_after = kafka, retrying: no commit before the
                                    partition is read up to this offset (-1: none) */
    int64_t resumed_ms;          /* when the pause after the failure ended */
    uint64_t failures_in_row;    /* checkpoints failed since the last that worked */
    int64_t failing_since_ms;    /* when the first of them failed */
    int pause_ms;                /* the next pause after a failure */
    char last_error[160];
    uint64_t epoch;              /* checkpoints made: agents touched in this epoch are in
                                    pending (ack_after = lake) */
    struct pending_ack *pending; /* ack_after = lake: agents to acknowledge at the checkpoint */
    size_t n_pending, cap_pending;
};

/* ack_after = kafka: an agent's ack noted in this batch, handed to ack.h
 * (a topic parsed, a mutex) once per agent at the end of the batch. */
struct batch_ack {
    char topic[TOPIC_MAX];
    uint64_t acked;
};

/* A record handed to a worker: its partition's gen when it was polled. */
struct handed {
    rd_kafka_message_t *m;
    uint64_t gen;
};

/* A record a worker takes and its verdict. */
struct slot {
    rd_kafka_message_t *m;       /* owned until taken (or dropped) */
    uint64_t gen;                /* its partition's gen when it was polled */
    bool learn;                  /* a new reading: its turnstile's station is learnt
                                    (station windows) once the chunk is taken */
    /* the verdict (what take needs, judged without any of the partition's state) */
    rd_kafka_headers_t *hdrs;    /* m's, parsed; NULL: none */
    const char *topic;           /* the mqtt_topic header (in hdrs); NULL: absent */
    size_t topic_len;
    int32_t want;                /* the partition of the key's agent in the layout */
    bool marker;                 /* no value, a refused_id header */
    bool judged;                 /* v holds the verdict (not misplaced, not a marker) */
    struct ts_verdict v;
};

/* An aggregating thread (docs/bridge.md, "Threads"): it judges and takes
 * the records of its partitions (partition modulo the thread count), in the
 * order polled, advances their windows and checkpoints them. The polling
 * thread hands it records through its inbox, and holds it (hold, held) to
 * rebalance, to read the figures, or to stop. */
struct worker {
    struct ts_aggregator *agg;
    size_t index;
    pthread_t tid;
    bool started;
    pthread_mutex_t mu;          /* guards the inbox and the flags below */
    pthread_cond_t work;         /* to the worker: records, hold, release, stop */
    pthread_cond_t done;         /* to the polling thread: room, idle, held */
    struct handed *inbox;        /* a ring of cap records */
    size_t cap, head, n_in;
    bool busy;                   /* taking records (outside mu) */
    bool hold, held, stop;
    bool room_wanted;            /* the polling thread waits for a half-empty inbox */
    bool idle_wanted;            /* ... for an empty inbox and the worker not busy */
    /* the polling thread's: records gathered for this worker, not yet handed */
    struct handed stage[STAGE];
    size_t n_stage;
    /* the worker's own (read by others only while it is held) */
    struct slot *slots;          /* CHUNK */
    struct ts_aggregator_stats st;
    struct batch_ack *acks;      /* ACK_BATCH_MAX: noted in this chunk (ack_note) */
    size_t n_acks;
    uint64_t ack_batch;          /* a set's batch_slot is valid while its batch equals this */
    bool agents_over;            /* a partition just passed [lake] max_agents: it
                                    checkpoints before the next record (agent_table.h) */
    struct ts_window_row *station_rows; /* STATION_ROWS: closed rows for the station
                                    windows, handed over under one lock (rows_to_stations) */
    size_t n_station_rows;
    int64_t last_advance_ms;
};

/* An agent whose acknowledgement waits for the next checkpoint. */
struct pending_ack {
    char station[TS_ID_MAX], agent[TS_ID_MAX];
};

struct ts_aggregator {
    rd_kafka_t *rk;              /* NULL between a failed consumer and its successor */
    struct ts_bridge_kafka_cfg kafka; /* what a new consumer is made from */
    bool in_rebalance;           /* inside on_rebalance: no group offset commits */
    atomic_bool consumer_failed; /* librdkafka raised a fatal error: replace rk */
    int64_t consumer_since_ms;   /* when rk was created */
    int64_t consumer_next_ms;    /* rk == NULL: when to create the next one */
    int consumer_backoff_ms;
    struct ts_ack *ack;
    struct ts_station_windows *stations; /* with ack: window summaries for dashboards */
    pthread_mutex_t stations_mu; /* ... shared by the workers */
    char topic[128];
    char owner[64];
    struct ts_lake_cfg lake_cfg;
    struct ts_bridge_lake_cfg lake;
    char s3_key_id[256], s3_secret[256]; /* [lake] url set: the credentials (wiped at free) */
    struct ts_window_cfg wcfg;
    struct ts_verdict_bounds bounds;
    struct ts_deadletter *dl;    /* refused records go there */
    pthread_mutex_t dl_mu;       /* guards dl, the parts' dl_pending and the four below */
    int64_t refused_log_start;   /* rate limit of the refusal log lines */
    unsigned refused_log_lines;
    uint64_t refused_log_left_out;
    int64_t dl_wait_log_ms;      /* last "checkpoint waits for dead letters" line */
    int64_t dl_busy_mono_ms;     /* when a flush last found dead letters unconfirmed */
    struct part **parts;         /* by partition number */
    size_t n_parts;
    int ack_after;               /* enum ts_ack_after */
    int32_t layout;              /* partitions the agents are spread over; 0: not known yet */
    int32_t topic_partitions;
    struct ts_retention *retention; /* polled by the polling thread, */
    _Atomic int64_t retention_ms;   /* ... which copies its answer here for the workers */
    atomic_bool fatal;
    struct ts_aggregator_stats st; /* the polling thread's figures (the workers' apart) */
    size_t batch_max;            /* records polled per call, and each worker's inbox */
    struct worker *workers;
    size_t n_workers;
    bool holding;                /* the workers are held (workers_hold) */
    atomic_bool seeks_pending;   /* a part's seek_req is set */
    int64_t poke_next_ms;        /* fetcher_poke: not before this (monotonic) */
    uint64_t assignments;        /* assignments the consumer received */
    int poke_backoff_ms;
};

/* --- partition life ------------------------------------------------------ */

static void part_clear(struct part *p)
{
    ts_agent_table_close(&p->agents); /* before the lake: it lends the directory */
    ts_lake_close(p->lake);
    p->lake = NULL;
    ts_window_free(p->win);
    p->win = NULL;
    p->n_pending = 0;
}


/* The partition's lake: the POSIX directory [lake] path, or with url set the
 * object lake on the bucket (one S3 connection per partition's lake, its
 * spool in path). Errors as ts_lake_open's. */
static int lake_open(struct ts_aggregator *agg, int32_t partition, struct ts_lake **lake,
                     struct ts_lake_resume *res, char *why, size_t why_size)
{
    const struct ts_bridge_lake_cfg *l = &agg->lake;
    if (!l->url[0])
        return ts_lake_open(&agg->lake_cfg, agg->topic, partition, lake, res, why, why_size);
    struct ts_s3_cfg c;
    ts_bridge_lake_s3_cfg(l, agg->s3_key_id, agg->s3_secret, &c);
    struct ts_s3 *s3 = NULL;
    void *sd = NULL;
    int rc = ts_s3_open(&c, &s3, why, why_size);
    if (rc == TS_OK && l->conditional_writes &&
        (rc = ts_lake_s3store_probe(s3, l->table, why, why_size)) != TS_OK)
        ts_s3_close(s3);
    if (rc == TS_OK)
        rc = ts_lake_s3store_open(s3, l->path, &sd, why, why_size);
    if (rc == TS_OK)
        rc = ts_lake_open_store(&agg->lake_cfg, agg->topic, partition, &ts_lake_s3store, sd, lake,
                                res, why, why_size);
    return rc;
}
/* (Re)loads the partition from the lake's latest checkpoint: *offset is where
 * to consume from. TS_OK, or an error that stops the bridge (a checkpoint it
 * cannot read: resuming without it would count twice or lose). */
static int part_load(struct ts_aggregator *agg, struct part *p, int64_t *offset)
{
    struct ts_lake_resume res = {0};
    char why[256] = "";
    int rc;

    struct ts_seqsets sets;
    struct ts_archive_ref archive = {0};

    part_clear(p);
    ts_seqsets_init(&sets, 0);
    rc = ts_window_new(&agg->wcfg, &p->win, why, sizeof why);
    if (rc == TS_OK)
        rc = lake_open(agg, p->partition, &p->lake, &res, why, sizeof why);
    if (rc == TS_OK && res.state)
        rc = ts_partition_state_decode(res.state, res.state_len, &sets, p->win, ts_wall_ms(),
                                       &archive, why, sizeof why);
    if (rc == TS_OK)
        rc = ts_agent_table_open_lake(&p->agents, p->lake, &archive,
                                      (size_t)agg->lake.max_agents,
                                      agg->lake.agent_idle_s * 1000, why, sizeof why);
    if (rc == TS_OK) {
        /* the sets of the checkpoint are the agents in memory, last seen now */
        ts_seqsets_free(&p->agents.hot);
        p->agents.hot = sets;
        ts_seqsets_init(&sets, 0);
        size_t cursor = 0;
        const char *agent;
        struct ts_seqset *set;
        int64_t now = ts_wall_ms();
        while (ts_seqsets_next(&p->agents.hot, &cursor, &agent, &set))
            set->touched_ms = now;
    }
    ts_seqsets_free(&sets);
    if (rc != TS_OK) {
        TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": cannot resume from the lake: %s%s%s",
               p->partition, ts_strerror(rc), why[0] ? ": " : "", why);
        free(res.state);
        part_clear(p);
        return rc;
    }
    p->next_offset = p->ckpt_offset = res.offset_next;
    p->backlog_since_ms = INT64_MIN;
    p->fill_from = -1;
    p->catch_up_to = -1;
    p->ckpt_ms = ts_wall_ms();
    p->dirty = false;
    p->lost = false;
    *offset = res.offset_next >= 0 ? res.offset_next : RD_KAFKA_OFFSET_BEGINNING;
    TS_LOG(TS_LOG_INFO,
           "aggregate: partition %" PRId32 ": resuming at %s%" PRId64 " (checkpoint %" PRIu64
           ", %zu agents in memory, %" PRIu64 " archived; %u files rolled forward, %u "
           "temporaries removed)",
           p->partition, res.offset_next >= 0 ? "offset " : "the beginning ",
           res.offset_next >= 0 ? res.offset_next : 0, res.generation,
           ts_seqsets_count(&p->agents.hot), archive.agents, res.rolled_forward,
           res.removed_temporaries);
    free(res.state);
    return TS_OK;
}

/* The aggregating thread of a partition. */
static struct worker *worker_of(struct ts_aggregator *agg, int32_t partition)
{
    return &agg->workers[(size_t)partition % agg->n_workers];
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
        p->w = worker_of(agg, partition);
        p->partition = partition;
        p->seek_req = -1;
        p->backlog_since_ms = INT64_MIN; /* none yet (part_reload keeps it across a load) */
        agg->parts[partition] = p;
    }
    return agg->parts[partition];
}

/* The closed rows the worker gathered, to the station windows (one lock for
 * them all: two workers closing the same windows at once contended for it
 * row by row). */
static void rows_to_stations(struct worker *w)
{
    if (!w->n_station_rows)
        return;
    pthread_mutex_lock(&w->agg->stations_mu);
    for (size_t i = 0; i < w->n_station_rows; i++)
        ts_station_windows_row(w->agg->stations, &w->station_rows[i]);
    pthread_mutex_unlock(&w->agg->stations_mu);
    w->n_station_rows = 0;
}

static void emit_row(const struct ts_window_row *row, void *ctx)
{
    struct part *p = ctx;
    struct ts_aggregator *agg = p->agg;
    if (p->lost || !p->lake)
        return;
    p->w->st.rows++;
    p->w->st.late_rows += row->late;
    if (agg->stations && !row->late) { /* (late rows are not summarised) */
        if (p->w->n_station_rows == STATION_ROWS)
            rows_to_stations(p->w);
        p->w->station_rows[p->w->n_station_rows++] = *row;
    }
    if (ts_lake_write_row(p->lake, row) != TS_OK)
        p->dirty = true; /* the commit will fail and reload (the error is sticky) */
}

static void publish_window(const char *topic, const char *json, size_t len, void *ctx)
{
    ts_ack_publish_retained(ctx, topic, json, len);
}

/* part_load's rc: the object store out of reach or failing (its client's
 * attempts spent: no answer, or 5xx answers), not a lake that cannot be
 * resumed from (a damaged checkpoint stops the bridge). */
static bool store_failed(const struct ts_aggregator *agg, int rc)
{
    return agg->lake.url[0] && (rc == TS_ESYS || rc == TS_EIO);
}

/* No lake to resume from while the store fails (store_failed): the
 * partition, paused by the caller, is loaded again after a pause that doubles
 * (advance); nothing since its last checkpoint was acknowledged from the
 * lake, and Kafka keeps it. */
static void part_await_store(struct part *p)
{
    if (p->pause_ms < PAUSE_AFTER_FAILURE_MS)
        p->pause_ms = PAUSE_AFTER_FAILURE_MS;
    TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": the object store is out of reach; "
           "loading the partition again in %d s", p->partition, p->pause_ms / 1000);
    p->reload_due_ms = ts_wall_ms() + p->pause_ms;
    p->pause_ms = p->pause_ms > PAUSE_MAX_MS / 2 ? PAUSE_MAX_MS : p->pause_ms * 2;
}

static void part_pause(struct ts_aggregator *agg, int32_t partition)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, agg->topic, partition);
    rd_kafka_pause_partitions(agg->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

static _Thread_local bool tl_worker; /* this thread is an aggregating thread */

/* The polling thread's: Kafka seeks the partition to offset; the records
 * polled from now on carry the next gen. Asynchronous: librdkafka moves the
 * partition's version barrier in the call, so nothing fetched before it is
 * polled after it. (2.0.2 waits for a synchronous seek a thousandth of the
 * timeout asked, confluentinc/librdkafka#4230: 5 ms for 5 s, and a busy
 * machine timed out.) */
static void part_seek(struct ts_aggregator *agg, struct part *p, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, agg->topic,
                                                                       p->partition);
    tp->offset = offset;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(agg->rk, l, 0);
    if (e || (tp->err && tp->err != RD_KAFKA_RESP_ERR__IN_PROGRESS)) {
        TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": seek: %s", p->partition,
               e ? rd_kafka_error_string(e) : rd_kafka_err2str(tp->err));
        if (e)
            rd_kafka_error_destroy(e);
        agg->fatal = true;
    }
    rd_kafka_topic_partition_list_destroy(l);
    atomic_fetch_add(&p->gen, 1);
}

/* Re-reads the partition from its last checkpoint (after a failed commit or
 * dead letters that could not be sent): its state is reloaded, Kafka seeks
 * back and the partition pauses for PAUSE_AFTER_FAILURE_MS. */
static void part_reload(struct ts_aggregator *agg, struct part *p)
{
    int64_t offset, high;
    /* the same checkpoint: its oldest record not in the lake stays the same
     * (the backlog's age must not drop to nothing during the pause) */
    int64_t backlog_since = p->backlog_since_ms;
    int rc = part_load(agg, p, &offset);
    if (store_failed(agg, rc)) {
        part_pause(agg, p->partition);
        part_await_store(p);
        p->backlog_since_ms = backlog_since;
        return;
    }
    if (rc != TS_OK) {
        agg->fatal = true;
        return;
    }
    p->backlog_since_ms = backlog_since;
    p->retrying = true;
    pthread_mutex_lock(&agg->dl_mu);
    p->dl_pending = false; /* what is sent again is counted anew */
    pthread_mutex_unlock(&agg->dl_mu);
    /* no checkpoint yet: seek to the first offset there is, by number, so
     * that what was fetched before the seek can be told apart */
    if (offset < 0 && rd_kafka_query_watermark_offsets(agg->rk, agg->topic, p->partition, &offset,
                                                       &high, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": cannot find its first offset",
               p->partition);
        agg->fatal = true;
        return;
    }
    part_pause(agg, p->partition);
    /* what the polling thread polled before the seek is not taken: a
     * worker asks it to seek (at its next poll; it then counts the seek in
     * gen); the polling thread itself (the workers held) seeks at once */
    p->take_gen = atomic_load(&p->gen) + 1;
    if (tl_worker) {
        atomic_store(&p->seek_req, offset);
        atomic_store(&agg->seeks_pending, true);
    } else {
        part_seek(agg, p, offset);
    }
    if (p->pause_ms < PAUSE_AFTER_FAILURE_MS)
        p->pause_ms = PAUSE_AFTER_FAILURE_MS;
    p->paused_until_ms = ts_wall_ms() + p->pause_ms;
    p->pause_ms = p->pause_ms > PAUSE_MAX_MS / 2 ? PAUSE_MAX_MS : p->pause_ms * 2;
}

/* Before a checkpoint passes a dead-lettered record, Kafka must have its
 * dead letter. true: confirmed (or none pending), commit; false: not now.
 * Under dl_mu. */
static bool dead_letters_confirmed_locked(struct ts_aggregator *agg, struct part *p,
                                          int confirm_ms)
{
    if (atomic_load(&p->reload_wanted))
        return false; /* one of its dead letters was lost: it reloads (advance) */
    if (!p->dl_pending)
        return true;
    if (confirm_ms == DL_CONFIRM_MS && ts_mono_ms() - agg->dl_busy_mono_ms < TIMER_MS)
        return false; /* one bounded wait per turn, not one per partition */
    int rc = ts_deadletter_flush(agg->dl, confirm_ms);
    if (rc == TS_OK) { /* every dead letter sent so far, whichever partition sent it */
        for (size_t i = 0; i < agg->n_parts; i++)
            if (agg->parts[i])
                agg->parts[i]->dl_pending = false;
        return true;
    }
    if (rc == TS_EBUSY) {
        agg->dl_busy_mono_ms = ts_mono_ms();
        int64_t now = ts_wall_ms();
        if (now - agg->dl_wait_log_ms >= REFUSED_LOG_MS) {
            agg->dl_wait_log_ms = now;
            uint64_t sent, confirmed, failed;
            int queued;
            ts_deadletter_counts(agg->dl, &sent, &confirmed, &failed, &queued);
            TS_LOG(TS_LOG_WARNING, "aggregate: partition %" PRId32 ": checkpoint put off: %d "
                   "dead letter(s) not confirmed by Kafka within %d ms; trying again",
                   p->partition, queued, confirm_ms);
        }
        return false;
    }
    /* a dead letter was lost: every partition that sent one since the last
     * confirmation reads its records again from its checkpoint (its worker
     * reloads it: advance) */
    for (size_t i = 0; i < agg->n_parts; i++) {
        struct part *q = agg->parts[i];
        if (q && q->dl_pending)
            atomic_store(&q->reload_wanted, true);
    }
    return false;
}

static bool dead_letters_confirmed(struct ts_aggregator *agg, struct part *p, int confirm_ms)
{
    pthread_mutex_lock(&agg->dl_mu);
    bool ok = dead_letters_confirmed_locked(agg, p, confirm_ms);
    pthread_mutex_unlock(&agg->dl_mu);
    return ok;
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

/* ack_after = lake: the agents touched since the last checkpoint are
 * acknowledged now that one holds their readings. */
static void ack_pending(struct ts_aggregator *agg, struct part *p)
{
    char topic[TS_TOPIC_AGENT_MAX];
    for (size_t i = 0; i < p->n_pending; i++) {
        struct ts_seqset *set = ts_agent_table_peek(&p->agents, p->pending[i].agent);
        if (!set)
            continue;
        (void)ts_topic_agent(topic, sizeof topic, p->pending[i].station, p->pending[i].agent,
                             TS_TOPIC_READINGS);
        ts_ack_set(agg->ack, topic, ts_seqset_contiguous(set));
    }
    p->n_pending = 0;
}

/* A checkpoint failed: loudly, and the partition reads again from the last
 * one after a pause that doubles while failures repeat. */
static void commit_failed(struct ts_aggregator *agg, struct part *p, const char *what)
{
    int64_t now = ts_wall_ms();
    p->w->st.commit_failures++;
    if (!p->failures_in_row++)
        p->failing_since_ms = now;
    snprintf(p->last_error, sizeof p->last_error, "%s", what);
    int pause = p->pause_ms < PAUSE_AFTER_FAILURE_MS ? PAUSE_AFTER_FAILURE_MS : p->pause_ms;
    TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": checkpoint failed (%s), %" PRIu64
           " in a row for %" PRId64 " s: nothing since offset %" PRId64 " is in the lake; "
           "resuming from the last checkpoint in %d s", p->partition, what, p->failures_in_row,
           (now - p->failing_since_ms) / 1000, p->ckpt_offset, pause / 1000);
    part_reload(agg, p);
}

/* Writes the partition's checkpoint, once its dead letters are confirmed
 * (waiting up to confirm_ms for them). */
static void part_commit(struct ts_aggregator *agg, struct part *p, int confirm_ms)
{
    struct ts_lake_commit_info info = {0};
    struct ts_archive_ref archive;
    char *state = NULL, what[160];
    size_t len = 0;

    if (p->lost || !p->lake)
        return;
    if (!dead_letters_confirmed(agg, p, confirm_ms))
        return;
    uint64_t gen = ts_lake_generation(p->lake) + 1;
    int rc = ts_agent_table_prepare(&p->agents, ts_wall_ms(), gen, ts_lake_writer_tag(p->lake),
                                    &archive);
    if (rc != TS_OK) {
        snprintf(what, sizeof what, "writing the agents' archive: %s%s%s", ts_strerror(rc),
                 rc == TS_ESYS ? ": " : "", rc == TS_ESYS ? strerror(errno) : "");
        ts_agent_table_finish(&p->agents, false, gen);
        commit_failed(agg, p, what);
        return;
    }
    rc = ts_partition_state_encode(&p->agents.hot, p->win, &archive, &state, &len);
    if (rc == TS_OK)
        rc = ts_lake_commit(p->lake, p->next_offset, state, len, &info);
    int saved = errno;
    free(state);
    if (rc == TS_OK) {
        if (agg->ack_after == TS_ACK_AFTER_LAKE && agg->ack)
            ack_pending(agg, p);
        ts_agent_table_finish(&p->agents, true, gen);
        p->epoch++;
        p->w->st.checkpoints++;
        p->w->st.files += info.files;
        if (p->failures_in_row)
            TS_LOG(TS_LOG_NOTICE, "aggregate: partition %" PRId32 ": checkpoints work again after "
                   "%" PRIu64 " failures in %" PRId64 " s", p->partition, p->failures_in_row,
                   (ts_wall_ms() - p->failing_since_ms) / 1000);
        p->failures_in_row = 0;
        p->pause_ms = 0;
        p->retrying = false;
        p->catch_up_to = -1;
        p->backlog_level = 0;
        p->last_error[0] = '\0';
        p->ckpt_offset = p->next_offset;
        p->ckpt_ms = ts_wall_ms();
        p->backlog_since_ms = INT64_MIN;
        p->dirty = false;
        monitoring_commit(agg, p);
        if (agg->stations && info.rows) {
            pthread_mutex_lock(&agg->stations_mu);
            ts_station_windows_flush(agg->stations, publish_window, agg->ack);
            pthread_mutex_unlock(&agg->stations_mu);
        }
        TS_LOG(TS_LOG_DEBUG, "aggregate: partition %" PRId32 ": checkpoint %" PRIu64
               " at offset %" PRId64 ", %u files, %" PRIu64 " rows",
               p->partition, info.generation, p->next_offset, info.files, info.rows);
        return;
    }
    ts_agent_table_finish(&p->agents, false, gen);
    if (rc == TS_ECONFLICT) {
        TS_LOG(TS_LOG_WARNING, "aggregate: partition %" PRId32 ": another bridge committed a "
               "checkpoint of it: dropping it until the group reassigns it", p->partition);
        p->w->st.conflicts++;
        p->lost = true;
        part_clear(p);
        return;
    }
    snprintf(what, sizeof what, "%s%s%s", ts_strerror(rc), rc == TS_ESYS ? ": " : "",
             rc == TS_ESYS ? strerror(saved) : "");
    commit_failed(agg, p, what);
}

/* --- rebalancing --------------------------------------------------------- */

/* The topic's partition count from the cluster; 0 if it cannot be had. */
static int32_t topic_partitions(struct ts_aggregator *agg, rd_kafka_t *rk)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, agg->topic, NULL);
    int32_t n = 0;
    if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return n;
}

/* At each assignment: the layout the agents are spread over (layout.h),
 * made from the topic's count by the first aggregator, and what the topic
 * has now. false: no layout can be had (the partitions are not taken). */
static bool check_layout(struct ts_aggregator *agg, rd_kafka_t *rk)
{
    char why[300] = "";
    int32_t n = topic_partitions(agg, rk);
    if (n > 0)
        agg->topic_partitions = n;
    if (agg->layout <= 0) {
        int rc = n > 0 ? ts_layout_create(agg->lake.path, agg->lake.table, agg->topic, n,
                                          &agg->layout, why, sizeof why)
                       : ts_layout_read(agg->lake.path, agg->lake.table, agg->topic, &agg->layout,
                                        why, sizeof why);
        if (rc != TS_OK) {
            TS_LOG(TS_LOG_ERR, "aggregate: no layout of %s's partitions (%s%s%s): taking none",
                   agg->topic, ts_strerror(rc), why[0] ? ": " : "", why);
            agg->layout = 0;
            return false;
        }
        TS_LOG(TS_LOG_INFO, "aggregate: the agents are spread over %" PRId32 " partitions of %s "
               "(the lake's layout)", agg->layout, agg->topic);
    }
    if (n > 0 && n != agg->layout)
        TS_LOG(TS_LOG_ERR, "aggregate: %s has %" PRId32 " partitions but the lake's layout %"
               PRId32 ": %s (docs/bridge.md, \"Adding partitions\")", agg->topic, n, agg->layout,
               n > agg->layout ? "partitions beyond the layout stay unused and their records are "
                                 "dead-lettered until turnstile-bridge --repartition"
                               : "the relays cannot place readings");
    return true;
}

static void rebalance(struct ts_aggregator *agg, rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *list);
static bool workers_hold(struct ts_aggregator *agg, bool drain);
static void workers_release(struct ts_aggregator *agg);

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    struct ts_aggregator *agg = opaque;

    bool held = workers_hold(agg, true); /* what was polled before the rebalance, first */
    agg->in_rebalance = true;
    rebalance(agg, rk, err, list);
    agg->in_rebalance = false;
    if (held)
        workers_release(agg);
}

static void rebalance(struct ts_aggregator *agg, rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *list)
{
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && !check_layout(agg, rk)) {
        agg->fatal = true;
        rd_kafka_assign(rk, NULL);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        bool awaiting = false;
        for (int i = 0; i < list->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &list->elems[i];
            struct part *p = part_get(agg, tp->partition, true);
            int64_t offset = RD_KAFKA_OFFSET_BEGINNING;
            int rc = p ? part_load(agg, p, &offset) : TS_ENOMEM;
            if (rc != TS_OK && !store_failed(agg, rc)) {
                agg->fatal = true;
                continue;
            }
            p->assigned = true;
            p->paused_until_ms = 0;
            p->reload_due_ms = 0;
            atomic_store(&p->reload_wanted, false);
            atomic_store(&p->seek_req, -1); /* what was asked of the last owner */
            p->take_gen = atomic_load(&p->gen);
            p->failures_in_row = 0;
            p->pause_ms = 0;
            p->retrying = false;
            p->backlog_level = 0;
            p->expired_to = -1;
            p->start_offset = offset;
            p->end_offset = -1;
            tp->offset = offset;
            if (rc != TS_OK) { /* the store fails: assigned, paused, loaded again later */
                part_await_store(p);
                awaiting = true;
            }
            agg->st.partitions++;
        }
        agg->assignments++;
        if (agg->ack) /* the acknowledger's table: the agents these partitions may hold */
            ts_ack_limits(agg->ack, agg->lake.agent_idle_s * 1000,
                          (size_t)agg->lake.max_agents * (agg->st.partitions ? agg->st.partitions : 1));
        /* librdkafka keeps a partition paused by the application (a reload's
         * pause) through its revocation and a later assignment: resumed here,
         * before, or it would never be fetched again */
        rd_kafka_resume_partitions(rk, list);
        rd_kafka_assign(rk, list);
        for (int i = 0; awaiting && i < list->cnt; i++) {
            struct part *p = part_get(agg, list->elems[i].partition, false);
            if (p && p->assigned && !p->lake)
                part_pause(agg, p->partition);
        }
        return;
    }
    /* revoked (or lost): checkpoint what we have so that the next owner
     * resumes exactly here, then forget the partition */
    for (int i = 0; i < list->cnt; i++) {
        struct part *p = part_get(agg, list->elems[i].partition, false);
        if (!p || !p->assigned)
            continue;
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && p->dirty)
            part_commit(agg, p, DL_CONFIRM_FINAL_MS);
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

/* A header's bytes (the last of that name); NULL if absent. */
static const char *header(rd_kafka_headers_t *hdrs, const char *name, size_t *len)
{
    const void *v = NULL;
    *len = 0;
    if (!hdrs || rd_kafka_header_get_last(hdrs, name, &v, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return v ? v : "";
}

/* A record the verdict refused: to the dead-letter topic, never counted,
 * never acknowledged; its offset is passed by the next checkpoint once Kafka
 * confirmed the dead letter. */
static void refuse(struct ts_aggregator *agg, struct part *p, const rd_kafka_message_t *m,
                   const char *topic, size_t topic_len, const char *reason)
{
    int64_t now = ts_mono_ms();
    p->w->st.invalid++;
    pthread_mutex_lock(&agg->dl_mu);
    if (now - agg->refused_log_start >= REFUSED_LOG_MS) {
        if (agg->refused_log_left_out)
            TS_LOG(TS_LOG_WARNING, "aggregate: %" PRIu64 " more refused record(s) in the last "
                   "%d s not logged (all in the dead-letter topic)", agg->refused_log_left_out,
                   REFUSED_LOG_MS / 1000);
        agg->refused_log_start = now;
        agg->refused_log_lines = 0;
        agg->refused_log_left_out = 0;
    }
    if (agg->refused_log_lines < REFUSED_LOG_LINES) {
        agg->refused_log_lines++;
        TS_LOG(TS_LOG_WARNING, "aggregate: partition %" PRId32 " offset %" PRId64 ": %s; sent to "
               "the dead-letter topic", m->partition, m->offset, reason);
    } else {
        agg->refused_log_left_out++;
    }
    struct ts_deadletter_rec rec = {
        .key = m->key, .key_len = m->key_len, .value = m->payload, .len = m->len,
        .reason = reason, .mqtt_topic = topic, .mqtt_topic_len = topic_len,
        .source_topic = agg->topic, .partition = m->partition, .offset = m->offset};
    int rc = ts_deadletter_send(agg->dl, &rec, DL_WAIT_MS);
    if (rc == TS_OK)
        p->dl_pending = true;
    pthread_mutex_unlock(&agg->dl_mu);
    if (rc == TS_OK)
        return;
    /* cannot dead-letter it now (Kafka away and the queue full): read the
     * partition again from its checkpoint, this record included */
    TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": a dead letter cannot be queued (%s): "
           "resuming from the last checkpoint in %d s", m->partition, ts_strerror(rc),
           PAUSE_AFTER_FAILURE_MS / 1000);
    part_reload(agg, p);
}

/* Hands the acks the worker noted in this chunk to ack.h. */
static void acks_flush(struct worker *w)
{
    for (size_t i = 0; i < w->n_acks; i++)
        ts_ack_set(w->agg->ack, w->acks[i].topic, w->acks[i].acked);
    w->n_acks = 0;
    w->ack_batch++;
}

/* The agent of set (readings on topic) is acknowledged up to acked: noted
 * for the end of the batch (acks_flush); at once when it cannot be noted. */
static void ack_note(struct worker *w, struct ts_seqset *set, const char *topic, uint64_t acked)
{
    if (set->batch == w->ack_batch && set->batch_slot < w->n_acks &&
        strcmp(w->acks[set->batch_slot].topic, topic) == 0) {
        if (acked > w->acks[set->batch_slot].acked)
            w->acks[set->batch_slot].acked = acked;
        return;
    }
    size_t len = strlen(topic);
    if (w->n_acks == ACK_BATCH_MAX)
        acks_flush(w);
    if (len >= TOPIC_MAX) {
        ts_ack_set(w->agg->ack, topic, acked);
        return;
    }
    struct batch_ack *a = &w->acks[w->n_acks];
    memcpy(a->topic, topic, len + 1);
    a->acked = acked;
    set->batch = w->ack_batch;
    set->batch_slot = (uint32_t)w->n_acks++;
}

/* The agent's numbers are in its set (or were already: a duplicate): its
 * ack now (ack_after = kafka) or at the next checkpoint (lake). A duplicate
 * acknowledges too: an agent re-sending what was seen may have missed its
 * ack (ack.h forgets agents idle for long). */
static void after_seen(struct ts_aggregator *agg, struct part *p, const char *topic,
                       const char *station, const char *agent, struct ts_seqset *set)
{
    if (!agg->ack)
        return;
    if (agg->ack_after == TS_ACK_AFTER_KAFKA) {
        ack_note(p->w, set, topic, ts_seqset_contiguous(set));
    } else if (set->epoch != p->epoch + 1) {
        /* first time since the last checkpoint: acknowledged by the next */
        char st[TS_ID_MAX];
        if (!station && !ts_topic_agent_parse(topic, TS_TOPIC_READINGS, st, NULL))
            return;
        if (p->n_pending == p->cap_pending) {
            size_t cap = p->cap_pending ? p->cap_pending * 2 : 64;
            struct pending_ack *a = realloc(p->pending, cap * sizeof *a);
            if (!a)
                return; /* acknowledged when it is seen again */
            p->pending = a;
            p->cap_pending = cap;
        }
        struct pending_ack *a = &p->pending[p->n_pending++];
        snprintf(a->station, sizeof a->station, "%s", station ? station : st);
        snprintf(a->agent, sizeof a->agent, "%s", agent);
        set->epoch = p->epoch + 1;
    }
}

/* The agent's set, from memory or its archive; NULL when the archive cannot
 * be read (the partition stops: agg->fatal) or memory is out. */
static struct ts_seqset *agent_set(struct ts_aggregator *agg, struct part *p, const char *agent,
                                   int64_t now)
{
    struct ts_seqset *set;
    bool found;
    size_t before = ts_seqsets_count(&p->agents.hot), max = (size_t)agg->lake.max_agents;
    int rc = ts_agent_table_get(&p->agents, agent, &set, &found);
    if (rc == TS_OK) {
        set->touched_ms = now;
        /* the agent that passes max_agents ends the batch: the partition
         * checkpoints at once (worker_take), moving the least recently seen
         * out, so that a flood of new ids does not wait for the interval */
        if (before == max && ts_seqsets_count(&p->agents.hot) == max + 1)
            p->w->agents_over = true;
        return set;
    }
    if (rc != TS_EINVAL) {
        TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": agent %s: its archived position "
               "cannot be read (%s): stopping", p->partition, agent, ts_strerror(rc));
        agg->fatal = true;
    }
    return NULL;
}

/* Its place in the layout (layout.h): a record in another partition than its
 * key's was produced around the relay, and would be counted a second time
 * by another partition's duplicate removal. NULL, or the reason. */
static const char *misplaced(struct ts_aggregator *agg, const struct slot *s, char *why,
                             size_t size)
{
    const rd_kafka_message_t *m = s->m;
    int32_t want = s->want;
    if (want == m->partition)
        return NULL;
    snprintf(why, size, "record in partition %" PRId32 ", but its key's agent belongs to partition "
             "%" PRId32 " of the layout's %" PRId32, m->partition, want, agg->layout);
    return why;
}

/* The partition goes on at offset, above next_offset: offsets are dense (no
 * transactions), so Kafka deleted the records between before a checkpoint
 * took them (retention, or by hand). Each deleted offset is counted once,
 * however often the partition is reloaded from the same checkpoint. With
 * ack_after = kafka those readings are lost: the agents were told to delete
 * them. With lake they were never acknowledged: the agents send them again. */
static void records_deleted(struct ts_aggregator *agg, struct part *p, int64_t offset)
{
    int64_t from = p->next_offset > p->expired_to ? p->next_offset : p->expired_to;
    p->backlog_since_ms = INT64_MIN; /* the oldest record Kafka still has is this one */
    if (agg->ack_after == TS_ACK_AFTER_KAFKA && agg->ack) {
        /* agents re-send only above what they were told; from the partition's
         * end on, their numbers below are gone for good (fill_lost) */
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(agg->rk, agg->topic, p->partition, &lo, &hi) !=
                RD_KAFKA_RESP_ERR_NO_ERROR || hi <= offset)
            hi = offset + 1;
        p->fill_from = hi;
        p->fill_log_left = 5;
    }
    if (offset <= from)
        return; /* counted before */
    uint64_t gone = (uint64_t)(offset - from);
    p->expired_to = offset;
    p->w->st.records_expired += gone;
    if (agg->ack_after == TS_ACK_AFTER_KAFKA) {
        p->w->st.records_lost += gone;
        TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": %" PRIu64 " record(s), offsets %"
               PRId64 "..%" PRId64 ", were deleted by Kafka before a lake checkpoint held them: "
               "their readings are lost (ack_after = kafka: the agents no longer hold them; the "
               "topic's retention is shorter than the lake was stuck, docs/bridge.md, "
               "\"Retention\")", p->partition, gone, from, offset - 1);
    } else {
        TS_LOG(TS_LOG_WARNING, "aggregate: partition %" PRId32 ": %" PRIu64 " record(s), offsets %"
               PRId64 "..%" PRId64 ", were deleted by Kafka before a lake checkpoint held them: "
               "nothing is lost (ack_after = lake: the agents still hold those readings and send "
               "them again)", p->partition, gone, from, offset - 1);
    }
}

/* ack_after = kafka, after records_deleted: the agent's numbers up to what
 * it was told (its published ack) that this partition never saw were in
 * the deleted records; the agent deleted them and never sends them again,
 * so they are passed (not counted) or its ack would stop below them for
 * good. Only for records written after the deletion was seen (fill_from):
 * by then the agent has had its ack for a while; and never at or above
 * merged_from, the lowest number the agent still sends in this record. */
static void fill_lost(struct ts_aggregator *agg, struct part *p, const rd_kafka_message_t *m,
                      const char *topic, const char *agent, struct ts_seqset *set,
                      uint64_t merged_from)
{
    if (p->fill_from < 0 || m->offset < p->fill_from || !agg->ack || !merged_from)
        return;
    acks_flush(p->w); /* what the agent was told includes this chunk's acks */
    uint64_t told = ts_ack_get(agg->ack, topic);
    uint64_t to = told < merged_from ? told : merged_from - 1;
    uint64_t from = ts_seqset_contiguous(set) + 1, added = 0;
    if (to < from || ts_seqset_add(set, from, to, &added) != TS_OK || !added)
        return;
    p->w->st.numbers_lost += added;
    if (!p->fill_log_left)
        return; /* the status counts them all (numbers_lost) */
    p->fill_log_left--;
    TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": agent %s: %" PRIu64 " reading number(s) "
           "in %" PRIu64 "..%" PRIu64 " were in records Kafka deleted and the agent no longer "
           "holds them (acknowledged up to %" PRIu64 "): passed as lost%s", p->partition, agent,
           added, from, to, told, p->fill_log_left ? "" : " (more agents are not logged)");
}

/* A marker (verdict.h): the agent's reading refused by policy at the relay,
 * whose dead letter Kafka has. Its numbers count as seen, its people as
 * nothing, so that the agent's ack passes them. */
static void take_marker(struct ts_aggregator *agg, struct part *p, const rd_kafka_message_t *m,
                        rd_kafka_headers_t *hdrs, const char *topic, size_t topic_len)
{
    char agent[TS_ID_MAX], reason[TS_VERDICT_REASON_MAX], t[2 * TS_ID_MAX + 32];
    uint64_t from, seq;
    size_t id_len, from_len;
    const char *id = header(hdrs, TS_MARKER_HEADER_ID, &id_len);
    const char *fr = header(hdrs, TS_MARKER_HEADER_FROM, &from_len);
    if (!ts_verdict_marker(topic, topic_len, m->key ? m->key : "", m->key ? m->key_len : 0, id,
                           id_len, fr, from_len, agent, &from, &seq, reason)) {
        refuse(agg, p, m, topic, topic_len, reason);
        return;
    }
    bool dup = false;
    memcpy(t, topic, topic_len); /* checked by ts_verdict_marker: it fits */
    t[topic_len] = '\0';
    struct ts_seqset *set = agent_set(agg, p, agent, ts_wall_ms());
    if (!set)
        return;
    fill_lost(agg, p, m, t, agent, set, from);
    int rc = ts_seqset_accept_in(set, from, seq, &dup);
    if (rc == TS_EFULL) {
        p->w->st.held++;
        return; /* the agent re-sends, the relay marks it again */
    }
    if (rc == TS_ECONFLICT) {
        snprintf(reason, sizeof reason, "marker: %s %" PRIu64 "..%" PRIu64 " covers numbers "
                 "already seen", agent, from, seq);
        refuse(agg, p, m, topic, topic_len, reason);
        return;
    }
    if (rc != TS_OK) {
        refuse(agg, p, m, topic, topic_len, "marker: not accepted by the duplicate removal");
        return;
    }
    if (dup)
        p->w->st.duplicates++;
    else
        p->w->st.passed++;
    after_seen(agg, p, t, NULL, agent, set);
}

/* The reference time a record is judged against: the time the relay judged
 * it (the record's timestamp), so that a reading that waited in Kafka is not
 * refused for its wait; never later than this clock, nor earlier than its
 * age bound allows. */
static int64_t judge_time(const struct ts_aggregator *agg, const rd_kafka_message_t *m,
                          int64_t now)
{
    rd_kafka_timestamp_type_t tstype;
    int64_t ref = rd_kafka_message_timestamp(m, &tstype);
    if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ref < 0 || ref > now)
        ref = now;
    if (agg->bounds.max_age_ms > 0 && ref < now - agg->bounds.max_age_ms)
        ref = now - agg->bounds.max_age_ms;
    return ref;
}

/* Judges s->m: its headers, its place in the layout, marker or reading and
 * the verdict. Reads only s, agg->layout and agg->bounds (which change only
 * while no batch is being judged): either thread may call it. */
static void judge_slot(const struct ts_aggregator *agg, struct slot *s, int64_t now)
{
    const rd_kafka_message_t *m = s->m;
    size_t id_len;

    if (rd_kafka_message_headers(m, &s->hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        s->hdrs = NULL;
    s->topic = header(s->hdrs, TS_HEADER_MQTT_TOPIC, &s->topic_len);
    s->want = agg->layout > 0 && m->key ? ts_layout_partition(m->key, m->key_len, agg->layout)
                                        : m->partition;
    s->marker = (!m->payload || m->len == 0) && header(s->hdrs, TS_MARKER_HEADER_ID, &id_len);
    s->judged = s->want == m->partition && !s->marker;
    if (!s->judged)
        return;
    struct ts_verdict_msg vm = {
        .topic = s->topic, .topic_len = s->topic_len, .payload = m->payload, .len = m->len,
        .key = m->key ? m->key : "", .key_len = m->key ? m->key_len : 0,
        .now_ms = judge_time(agg, m, now)};
    ts_verdict_judge(&vm, &agg->bounds, &s->v);
}

static void take(struct worker *w, struct slot *s, int64_t now)
{
    struct ts_aggregator *agg = w->agg;
    const rd_kafka_message_t *m = s->m;
    struct part *p = part_get(agg, m->partition, false);

    w->st.consumed++;
    if (!p || !p->assigned || p->lost || !p->lake)
        return;
    if (s->gen < p->take_gen)
        return; /* polled before the seek back to the checkpoint */
    if (m->offset < p->next_offset)
        return; /* already taken */
    if (p->next_offset >= 0 && m->offset > p->next_offset)
        records_deleted(agg, p, m->offset);
    p->next_offset = m->offset + 1;
    p->dirty = true;
    rd_kafka_timestamp_type_t tstype;
    int64_t ref = rd_kafka_message_timestamp(m, &tstype);
    if (p->backlog_since_ms == INT64_MIN)
        p->backlog_since_ms = tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ref < 0 ? now : ref;
    const char *topic = s->topic;
    size_t topic_len = s->topic_len;
    char where[TS_VERDICT_REASON_MAX];
    const char *why_misplaced = misplaced(agg, s, where, sizeof where);
    if (why_misplaced) {
        refuse(agg, p, m, topic, topic_len, why_misplaced);
        return;
    }
    if (s->marker) {
        take_marker(agg, p, m, s->hdrs, topic, topic_len);
        return;
    }
    if (s->v.cls != TS_VERDICT_READING) {
        /* POLICY too: only the relay's marker, after its dead letter, passes
         * the agent's numbers (a record produced around the relay is never
         * acknowledged) */
        refuse(agg, p, m, topic, topic_len, s->v.reason);
        return;
    }
    const struct ts_reading *r = &s->v.r;
    bool dup = false;
    char t[2 * TS_ID_MAX + 32];
    memcpy(t, topic, topic_len); /* checked by the verdict: it fits */
    t[topic_len] = '\0';
    struct ts_seqset *set = agent_set(agg, p, r->agent_id, now);
    if (!set)
        return;
    fill_lost(agg, p, m, t, r->agent_id, set, r->merged_from);
    int rc = ts_seqset_accept_in(set, r->merged_from, r->seq, &dup);
    if (rc == TS_EFULL) {
        if (w->st.held++ < 10)
            TS_LOG(TS_LOG_WARNING, "aggregate: agent %s: too many gaps in its sequence; reading "
                   "%" PRIu64 " skipped until they fill (the agent re-sends it)", r->agent_id,
                   r->seq);
        return;
    }
    if (rc == TS_ECONFLICT) {
        char reason[TS_VERDICT_REASON_MAX];
        snprintf(reason, sizeof reason, "MERGED_FROM %" PRIu64 " of %s:%" PRIu64 " covers numbers "
                 "already seen (an agent merges only readings it never published)",
                 r->merged_from, r->agent_id, r->seq);
        refuse(agg, p, m, topic, topic_len, reason);
        return;
    }
    if (rc != TS_OK) {
        refuse(agg, p, m, topic, topic_len, "not accepted by the duplicate removal");
        return;
    }
    if (dup) {
        w->st.duplicates++;
        after_seen(agg, p, t, s->v.station, r->agent_id, set);
        return;
    }
    rc = ts_window_add(p->win, r, s->v.utc_offset_s, now);
    if (rc != TS_OK) {
        /* only TS_ENOMEM is possible here (inputs were checked): the set
         * already holds the reading, so the partition must be reloaded */
        TS_LOG(TS_LOG_ERR, "aggregate: cannot add a reading: %s", ts_strerror(rc));
        agg->fatal = true;
        return;
    }
    w->st.readings++;
    s->learn = agg->stations != NULL;
    after_seen(agg, p, t, s->v.station, r->agent_id, set);
}

/* Kafka deletes records older than the topic's retention.ms: a partition
 * whose lake is stuck must say so well before its backlog gets there
 * (ack_after = kafka: the agents no longer hold those readings). */
static void watch_backlog(struct ts_aggregator *agg, struct part *p, int64_t now)
{
    int64_t keep = atomic_load_explicit(&agg->retention_ms, memory_order_relaxed);
    if (keep <= 0 || p->backlog_since_ms == INT64_MIN)
        return;
    int64_t age = now - p->backlog_since_ms;
    int level = age >= keep / 4 * 3 ? 2 : age >= keep / 2 ? 1 : 0;
    /* a line a minute, and at once when it gets worse */
    if (!level || (level <= p->backlog_level && now - p->backlog_log_ms < BACKLOG_LOG_MS))
        return;
    p->backlog_log_ms = now;
    p->backlog_level = level;
    TS_LOG(level == 2 ? TS_LOG_ERR : TS_LOG_WARNING,
           "aggregate: partition %" PRId32 ": its oldest record not yet in the lake is %" PRId64
           " s old, %" PRId64 "%% of the topic's retention (%" PRId64 " s): %s",
           p->partition, age / 1000, age * 100 / keep, keep / 1000,
           agg->ack_after == TS_ACK_AFTER_KAFKA
               ? "if the lake stays stuck past it, Kafka deletes readings the agents no longer hold"
               : "if the lake stays stuck past it, the agents send those readings again");
}

/* The pause after a failure is over. ack_after = kafka: the acks come from
 * what the partition reads, so a retry first reads up to the partition's end
 * as it is now (catching_up), acknowledging what the agents sent meanwhile,
 * before it tries to commit; otherwise a lake that stays stuck would let
 * each retry read one batch, and the agents' stores would grow. */
static void part_resume(struct ts_aggregator *agg, struct part *p, int64_t now)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, agg->topic, p->partition);
    rd_kafka_resume_partitions(agg->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    p->paused_until_ms = 0;
    p->resumed_ms = now;
    p->catch_up_to = -1;
    int64_t lo, hi;
    if (agg->ack_after == TS_ACK_AFTER_KAFKA && p->retrying &&
        rd_kafka_query_watermark_offsets(agg->rk, agg->topic, p->partition, &lo, &hi, 1000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR)
        p->catch_up_to = hi;
}

/* A retrying partition of ack_after = kafka that has not read up to
 * catch_up_to yet (bounded by CATCH_UP_MAX_MS and by the lake's own limit on
 * pending files). */
static bool catching_up(struct ts_aggregator *agg, struct part *p, int64_t now)
{
    return p->catch_up_to >= 0 && p->next_offset < p->catch_up_to &&
           now - p->resumed_ms < CATCH_UP_MAX_MS && !ts_lake_commit_due(p->lake);
}

/* Advances the windows of the worker's partitions, checkpoints those due
 * (all with force_commit), reloads those whose dead letter was lost and
 * those whose store was out of reach. */
static void advance(struct worker *w, int64_t now, bool force_commit)
{
    struct ts_aggregator *agg = w->agg;
    for (size_t i = w->index; i < agg->n_parts; i += agg->n_workers) {
        struct part *p = agg->parts[i];
        if (!p || !p->assigned || p->lost)
            continue;
        if (p->lake && atomic_exchange(&p->reload_wanted, false)) {
            TS_LOG(TS_LOG_ERR, "aggregate: partition %" PRId32 ": a dead letter was not "
                   "delivered: resuming from the last checkpoint in %d s", p->partition,
                   PAUSE_AFTER_FAILURE_MS / 1000);
            part_reload(agg, p);
        }
        if (!p->lake && p->reload_due_ms && now >= p->reload_due_ms) {
            p->reload_due_ms = 0;
            part_reload(agg, p); /* the object store was out of reach: try again */
            if (p->lake)
                p->paused_until_ms = now; /* reached it: read again at once, the pause
                                             was served while it was away */
        }
        if (!p->lake)
            continue;
        watch_backlog(agg, p, now);
        if (p->paused_until_ms && now < p->paused_until_ms)
            continue; /* reloaded after a failed commit: waits before trying again */
        if (p->paused_until_ms)
            part_resume(agg, p, now);
        if (ts_window_advance(p->win, now, emit_row, p) > 0)
            p->dirty = true;
        rows_to_stations(w); /* before a checkpoint publishes the station windows */
        if (p->dirty && (force_commit || now - p->ckpt_ms >= agg->lake.checkpoint_interval_ms ||
                         ts_lake_commit_due(p->lake) || ts_agent_table_over(&p->agents)) &&
            (force_commit || ts_agent_table_over(&p->agents) || !catching_up(agg, p, now)))
            part_commit(agg, p, force_commit ? DL_CONFIRM_FINAL_MS : DL_CONFIRM_MS);
    }
    w->last_advance_ms = now;
}

/* --- the aggregating threads ------------------------------------------- */

/* The stations of the chunk's new readings (station windows), under one
 * lock for the chunk. */
static void learn_stations(struct worker *w, size_t n)
{
    struct ts_aggregator *agg = w->agg;
    size_t i = 0;
    while (i < n && !w->slots[i].learn)
        i++;
    if (i == n)
        return;
    pthread_mutex_lock(&agg->stations_mu);
    for (; i < n; i++)
        if (w->slots[i].learn)
            ts_station_windows_learn(agg->stations, &w->slots[i].v.r, w->slots[i].v.station);
    pthread_mutex_unlock(&agg->stations_mu);
}

/* Judges and takes the n records in w->slots, in order, then frees them;
 * advances after them (and on the timer). Outside w->mu. */
static void worker_take(struct worker *w, size_t n)
{
    struct ts_aggregator *agg = w->agg;
    int64_t now = ts_wall_ms();
    size_t taken = 0;
    for (size_t i = 0; i < n && !agg->fatal; i++) {
        struct slot *sl = &w->slots[i];
        sl->learn = false;
        judge_slot(agg, sl, now);
        take(w, sl, now);
        taken++;
        if (w->agents_over) { /* the partition checkpoints before the next record,
                                 moving the least recently seen agents out */
            w->agents_over = false;
            acks_flush(w);
            advance(w, ts_wall_ms(), false);
        }
    }
    if (agg->stations)
        learn_stations(w, taken);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_destroy(w->slots[i].m); /* a fatal error drops the rest */
        w->slots[i].m = NULL;
    }
    acks_flush(w);
    now = ts_wall_ms();
    if (!agg->fatal && (taken > 0 || now - w->last_advance_ms >= TIMER_MS))
        advance(w, now, false);
}

/* Waits on cv for at most ms milliseconds (cv uses CLOCK_MONOTONIC). */
static void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];

    tl_worker = true;
    snprintf(name, sizeof name, "ts:agg%zu", w->index % 100); /* for top -H and perf */
    prctl(PR_SET_NAME, name, 0, 0, 0);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (w->hold && !w->stop) {
            w->held = true;
            pthread_cond_broadcast(&w->done);
            while (w->hold && !w->stop)
                pthread_cond_wait(&w->work, &w->mu);
            w->held = false;
            continue;
        }
        if (w->stop)
            break;
        if (w->n_in == 0) {
            int64_t left = w->last_advance_ms + TIMER_MS - ts_wall_ms();
            if (left > 0) {
                cond_wait_ms(&w->work, &w->mu, left < TIMER_MS ? left : TIMER_MS);
                continue;
            }
        }
        size_t n = w->n_in < CHUNK ? w->n_in : CHUNK;
        for (size_t i = 0; i < n; i++) {
            w->slots[i].m = w->inbox[(w->head + i) % w->cap].m;
            w->slots[i].gen = w->inbox[(w->head + i) % w->cap].gen;
        }
        w->head = (w->head + n) % w->cap;
        w->n_in -= n;
        w->busy = true;
        if (w->room_wanted && w->n_in <= w->cap / 2) {
            w->room_wanted = false; /* woken once half is free, not for each chunk */
            pthread_cond_broadcast(&w->done);
        }
        pthread_mutex_unlock(&w->mu);
        worker_take(w, n);
        pthread_mutex_lock(&w->mu);
        w->busy = false;
        if (w->idle_wanted && w->n_in == 0)
            pthread_cond_broadcast(&w->done);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Hands the records gathered for w to its inbox; a full inbox is waited on
 * until half of it is free (a wake-up per chunk taken costs more than the
 * chunk's hand-over on two cores). */
static void hand_over(struct worker *w)
{
    size_t i = 0;
    pthread_mutex_lock(&w->mu);
    while (i < w->n_stage) {
        if (w->n_in == w->cap) {
            w->room_wanted = true;
            while (w->n_in > w->cap / 2)
                pthread_cond_wait(&w->done, &w->mu);
        }
        for (; i < w->n_stage && w->n_in < w->cap; i++)
            w->inbox[(w->head + w->n_in++) % w->cap] = w->stage[i];
        pthread_cond_signal(&w->work);
    }
    pthread_mutex_unlock(&w->mu);
    w->n_stage = 0;
}

/* Holds every worker: each finishes its chunk and waits; with drain, each
 * first takes every record handed to it. The polling thread then owns all
 * state until workers_release. false if they were held already (by a caller
 * up the stack: it releases them). */
static bool workers_hold(struct ts_aggregator *agg, bool drain)
{
    if (agg->holding)
        return false;
    for (size_t i = 0; i < agg->n_workers; i++)
        if (agg->workers[i].n_stage)
            hand_over(&agg->workers[i]);
    for (size_t i = 0; i < agg->n_workers; i++) {
        struct worker *w = &agg->workers[i];
        pthread_mutex_lock(&w->mu);
        w->idle_wanted = drain;
        while (drain && (w->n_in || w->busy))
            pthread_cond_wait(&w->done, &w->mu);
        w->idle_wanted = false;
        w->hold = true;
        pthread_cond_signal(&w->work);
        while (w->started && !w->held)
            pthread_cond_wait(&w->done, &w->mu);
        pthread_mutex_unlock(&w->mu);
    }
    agg->holding = true;
    return true;
}

static void workers_release(struct ts_aggregator *agg)
{
    for (size_t i = 0; i < agg->n_workers; i++) {
        struct worker *w = &agg->workers[i];
        pthread_mutex_lock(&w->mu);
        w->hold = false;
        pthread_cond_signal(&w->work);
        pthread_mutex_unlock(&w->mu);
    }
    agg->holding = false;
}

/* librdkafka 2.0.2 stops fetching the partitions whose local queue holds
 * queued.min.messages (or queued.max.messages.kbytes), and decides again
 * only when their broker's thread wakes: on its next response, an op, or a
 * second later (confluentinc/librdkafka#2879; fetch.queue.backoff.ms came in
 * 2.2.0). An aggregator that empties the queue faster than that waited for
 * the rest of the second: in bench/aggregate.sh half of the run's time. So
 * when the queue is empty and a partition is behind (the high watermark
 * librdkafka last fetched is above what was polled), a request to that
 * partition's leader (ListOffsets, answered from the broker's memory) wakes
 * its broker thread, which fetches at once. Pokes that bring nothing back
 * off (POKE_BACKOFF_MAX_MS): a paused partition stays behind for minutes. */
static void fetcher_poke(struct ts_aggregator *agg)
{
    int64_t now = ts_mono_ms();
    if (now < agg->poke_next_ms)
        return;
    for (size_t i = 0; i < agg->n_parts; i++) {
        const struct part *p = agg->parts[i];
        int64_t lo, hi;
        if (!p || !p->assigned ||
            rd_kafka_get_watermark_offsets(agg->rk, agg->topic, p->partition, &lo, &hi) !=
                RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, agg->topic, p->partition);
        bool behind = rd_kafka_position(agg->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                      l->elems[0].offset >= 0 && l->elems[0].offset < hi;
        rd_kafka_topic_partition_list_destroy(l);
        if (behind) {
            /* the request wakes the thread as it is queued: the answer is
             * only waited for a little (a leader out of reach) */
            (void)rd_kafka_query_watermark_offsets(agg->rk, agg->topic, p->partition, &lo, &hi,
                                                   POKE_ANSWER_MS);
            agg->poke_backoff_ms = agg->poke_backoff_ms ? agg->poke_backoff_ms * 2 : POKE_WAIT_MS;
            if (agg->poke_backoff_ms > POKE_BACKOFF_MAX_MS)
                agg->poke_backoff_ms = POKE_BACKOFF_MAX_MS;
            agg->poke_next_ms = ts_mono_ms() + agg->poke_backoff_ms;
            return; /* one a turn: a leader's thread fetches all its partitions */
        }
    }
}

/* The seeks the workers asked for (part_reload), in the polling thread:
 * nothing polled after one is older than its gen. */
static void seek_requests(struct ts_aggregator *agg)
{
    for (size_t i = 0; i < agg->n_parts; i++) {
        struct part *p = agg->parts[i];
        int64_t offset = p ? atomic_exchange(&p->seek_req, -1) : -1;
        if (offset >= 0 && p->assigned)
            part_seek(agg, p, offset);
    }
}

int ts_aggregator_poll(struct ts_aggregator *agg, int timeout_ms)
{
    size_t polled = 0;
    bool fatal_error = false;

    if (!agg->rk && !consumer_replace(agg, timeout_ms))
        return TS_OK; /* waited for the next consumer */
    if (atomic_exchange(&agg->seeks_pending, false))
        seek_requests(agg);
    /* a rebalance inside rd_kafka_consumer_poll has the workers take what
     * was polled before it first (on_rebalance) */
    while (polled < agg->batch_max && !agg->fatal && !agg->consumer_failed) {
        int wait = polled > 0 ? 0 : timeout_ms < POKE_WAIT_MS ? timeout_ms : POKE_WAIT_MS;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(agg->rk, wait);
        if (!m && polled == 0 && timeout_ms > wait) {
            fetcher_poke(agg); /* the queue ran dry: is the fetcher asleep? */
            m = rd_kafka_consumer_poll(agg->rk, timeout_ms - wait);
        }
        if (m)
            agg->poke_backoff_ms = 0;
        if (!m)
            break;
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__FATAL)
                fatal_error = true; /* after the records before it */
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                TS_LOG(TS_LOG_WARNING, "aggregate: Kafka: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (fatal_error)
                break;
            continue;
        }
        struct worker *w = worker_of(agg, m->partition);
        const struct part *p = part_get(agg, m->partition, false);
        w->stage[w->n_stage++] = (struct handed){m, p ? atomic_load(&p->gen) : 0};
        if (w->n_stage == STAGE)
            hand_over(w);
        polled++;
    }
    for (size_t i = 0; i < agg->n_workers; i++)
        if (agg->workers[i].n_stage)
            hand_over(&agg->workers[i]);
    if (fatal_error)
        consumer_fatal(agg);
    if (agg->consumer_failed)
        consumer_drop(agg);
    pthread_mutex_lock(&agg->dl_mu);
    ts_deadletter_poll(agg->dl);
    pthread_mutex_unlock(&agg->dl_mu);
    if (agg->retention) {
        ts_retention_poll(agg->retention, ts_mono_ms());
        atomic_store_explicit(&agg->retention_ms, ts_retention_ms(agg->retention),
                              memory_order_relaxed);
    }
    return agg->fatal ? TS_EIO : TS_OK;
}

bool ts_aggregator_at_end(struct ts_aggregator *agg)
{
    if (!agg->rk || agg->consumer_failed || !agg->assignments)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < agg->n_parts; i++) {
        struct part *p = agg->parts[i];
        if (!p || !p->assigned)
            continue;
        if (p->end_offset < 0) {
            int64_t lo, hi;
            if (rd_kafka_query_watermark_offsets(agg->rk, agg->topic, p->partition, &lo, &hi,
                                                 END_QUERY_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
                return false; /* asked again at the next call */
            p->end_offset = hi;
            if (p->start_offset < lo)
                p->start_offset = lo; /* from the beginning, or past records Kafka deleted */
        }
        n += p->end_offset > p->start_offset;
    }
    if (n == 0)
        return true;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < agg->n_parts; i++) {
        const struct part *p = agg->parts[i];
        if (p && p->assigned && p->end_offset > p->start_offset)
            rd_kafka_topic_partition_list_add(l, agg->topic, p->partition)->offset =
                p->end_offset;
    }
    /* rd_kafka_position overwrites each offset: the end is kept in a copy */
    rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_copy(l);
    bool at_end = rd_kafka_position(agg->rk, pos) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; at_end && i < l->cnt; i++)
        at_end = pos->elems[i].offset >= l->elems[i].offset; /* (invalid: nothing polled yet) */
    rd_kafka_topic_partition_list_destroy(pos);
    rd_kafka_topic_partition_list_destroy(l);
    if (at_end && workers_hold(agg, true)) /* what was polled is taken: in the figures */
        workers_release(agg);
    return at_end;
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
    ts_kafka_log(level <= 3 ? TS_LOG_ERR : level == 4 ? TS_LOG_WARNING : TS_LOG_DEBUG,
                 "aggregate: librdkafka", fac, buf);
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
        /* partitions added to the topic are noticed (and reported) within a minute */
        (rc = set_prop(conf, "topic.metadata.refresh.interval.ms", "60000", why, why_size)) ||
        /* librdkafka before 2.2 stops fetching a partition once its local
         * queue passes these bounds, for up to a second (fetcher_poke);
         * each queued message costs about 550 bytes of memory (measured;
         * 1,000,000 held 600 MiB): 250,000 (about 140 MiB) keeps the bridge
         * under 256 MiB (docs/bridge.md, "Memory") */
        (rc = set_prop(conf, "queued.min.messages", "250000", why, why_size)) ||
        (rc = set_prop(conf, "queued.max.messages.kbytes", "131072", why, why_size)) ||
        (rc = ts_kafka_conf_apply(conf, &agg->kafka.props, why, why_size))) { /* rdkafka.* */
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
    bool held = workers_hold(agg, true); /* its records go before it does */
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
    if (held)
        workers_release(agg);
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

/* Starts n aggregating threads (agg->workers), each with an inbox of cap
 * records. TS_OK, TS_ENOMEM or TS_ESYS (those started are stopped by
 * workers_stop). */
static int workers_start(struct ts_aggregator *agg, size_t n, size_t cap)
{
    pthread_condattr_t ca;
    if (!(agg->workers = calloc(n, sizeof *agg->workers)))
        return TS_ENOMEM;
    agg->n_workers = n;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (size_t i = 0; i < n; i++) {
        struct worker *w = &agg->workers[i];
        w->agg = agg;
        w->index = i;
        w->cap = cap;
        w->last_advance_ms = ts_wall_ms();
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->work, &ca);
        pthread_cond_init(&w->done, NULL);
    }
    pthread_condattr_destroy(&ca);
    for (size_t i = 0; i < n; i++) {
        struct worker *w = &agg->workers[i];
        if (!(w->inbox = calloc(cap, sizeof *w->inbox)) ||
            !(w->slots = calloc(CHUNK, sizeof *w->slots)) ||
            !(w->acks = malloc(ACK_BATCH_MAX * sizeof *w->acks)) ||
            !(w->station_rows = malloc(STATION_ROWS * sizeof *w->station_rows)))
            return TS_ENOMEM;
        w->st.watermark_ms = INT64_MIN;
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0)
            return TS_ESYS;
        w->started = true;
    }
    return TS_OK;
}

/* Stops the workers (after workers_hold with drain: their inboxes are
 * empty) and frees them. */
static void workers_stop(struct ts_aggregator *agg)
{
    for (size_t i = 0; i < agg->n_workers; i++) {
        struct worker *w = &agg->workers[i];
        if (!w->started)
            continue;
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->work);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->tid, NULL);
    }
    for (size_t i = 0; i < agg->n_workers; i++) {
        struct worker *w = &agg->workers[i];
        for (size_t k = 0; k < w->n_in; k++) /* none after a drain */
            rd_kafka_message_destroy(w->inbox[(w->head + k) % w->cap].m);
        pthread_cond_destroy(&w->done);
        pthread_cond_destroy(&w->work);
        pthread_mutex_destroy(&w->mu);
        free(w->inbox);
        free(w->slots);
        free(w->acks);
        free(w->station_rows);
    }
    free(agg->workers);
    agg->workers = NULL;
    agg->n_workers = 0;
}

int ts_aggregator_new(const struct ts_bridge_cfg *cfg, struct ts_ack *ack,
                      struct ts_aggregator **out, char *why, size_t why_size)
{
    struct ts_aggregator *agg = calloc(1, sizeof *agg);
    int rc;

    if (!agg)
        return TS_ENOMEM;
    pthread_mutex_init(&agg->dl_mu, NULL);
    pthread_mutex_init(&agg->stations_mu, NULL);
    agg->retention_ms = TS_RETENTION_UNKNOWN;
    agg->ack = ack;
    snprintf(agg->topic, sizeof agg->topic, "%s", cfg->kafka.readings_topic);
    snprintf(agg->owner, sizeof agg->owner, "%s", cfg->bridge.id);
    agg->lake = cfg->lake;
    agg->kafka = cfg->kafka;
    agg->lake_cfg = (struct ts_lake_cfg){.root = agg->lake.path, .table = agg->lake.table,
                                         .owner = agg->owner, .row_number = agg->lake.row_number,
                                         .compression_level = agg->lake.compression_level,
                                         .keep_checkpoints = agg->lake.keep_checkpoints,
                                         .max_open_files = agg->lake.max_open_files,
                                         .max_checkpoint_files = agg->lake.max_checkpoint_files};
    agg->st.watermark_ms = INT64_MIN;
    ts_window_cfg_default(&agg->wcfg);
    agg->wcfg.size_ms = (int64_t)cfg->lake.window_s * 1000;
    agg->wcfg.slide_ms = (int64_t)cfg->lake.slide_s * 1000;
    agg->wcfg.lateness_ms = cfg->lake.lateness_s < 0 ? TS_WINDOW_LATENESS_DEFAULT
                                                     : (int64_t)cfg->lake.lateness_s * 1000;
    agg->wcfg.idle_ms = (int64_t)cfg->lake.idle_s * 1000;
    agg->wcfg.max_open = (size_t)cfg->lake.max_open_groups;
    agg->bounds = (struct ts_verdict_bounds){.max_age_ms = cfg->bridge.max_event_age_s * 1000,
                                             .max_ahead_ms = cfg->bridge.max_event_ahead_s * 1000};
    agg->ack_after = cfg->bridge.ack_after;
    if (agg->lake.url[0] &&
        (rc = ts_s3_credentials(agg->lake.key_id_file[0] ? agg->lake.key_id_file : NULL,
                                agg->lake.secret_file[0] ? agg->lake.secret_file : NULL,
                                agg->s3_key_id, sizeof agg->s3_key_id, agg->s3_secret,
                                sizeof agg->s3_secret, why, why_size)) != TS_OK) {
        free(agg);
        return rc;
    }
    if (ts_layout_read(agg->lake.path, agg->lake.table, agg->topic, &agg->layout, why,
                       why_size) == TS_EPARSE) {
        free(agg);
        return TS_EPARSE;
    }
    if ((rc = ts_window_cfg_check(&agg->wcfg, why, why_size)) != TS_OK) {
        free(agg);
        return TS_ECONFIG;
    }
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
    char dl_id[sizeof agg->owner + 16];
    snprintf(dl_id, sizeof dl_id, "%s-deadletter", agg->owner);
    if ((rc = ts_deadletter_new(&cfg->kafka, dl_id, &agg->dl, why, why_size)) != TS_OK) {
        rd_kafka_consumer_close(agg->rk);
        rd_kafka_destroy(agg->rk);
        ts_station_windows_free(agg->stations);
        free(agg);
        return rc;
    }
    /* on the dead-letter producer's handle: it outlives a replaced consumer */
    if (ts_retention_new(ts_deadletter_client(agg->dl), agg->topic, RETENTION_ASK_MS,
                         &agg->retention) != TS_OK)
        TS_LOG(TS_LOG_WARNING, "aggregate: out of memory: the topic's retention is not watched");
    agg->batch_max = cfg->lake.batch_records > 0 ? (size_t)cfg->lake.batch_records : 1;
    size_t threads = cfg->lake.threads > 0 ? (size_t)cfg->lake.threads : 1;
    if ((rc = workers_start(agg, threads, agg->batch_max)) != TS_OK) {
        snprintf(why, why_size, "cannot start %zu aggregating threads with inboxes of %zu "
                 "records: %s", threads, agg->batch_max, ts_strerror(rc));
        agg->fatal = true; /* no final checkpoint: nothing was taken */
        ts_aggregator_free(agg);
        return rc;
    }
    *out = agg;
    return TS_OK;
}

/* Adds the workers' counters to the polling thread's. */
static void stats_add(struct ts_aggregator_stats *to, const struct ts_aggregator_stats *from)
{
    to->consumed += from->consumed;
    to->readings += from->readings;
    to->duplicates += from->duplicates;
    to->invalid += from->invalid;
    to->passed += from->passed;
    to->held += from->held;
    to->rows += from->rows;
    to->late_rows += from->late_rows;
    to->files += from->files;
    to->checkpoints += from->checkpoints;
    to->commit_failures += from->commit_failures;
    to->conflicts += from->conflicts;
    to->records_expired += from->records_expired;
    to->records_lost += from->records_lost;
    to->numbers_lost += from->numbers_lost;
}

void ts_aggregator_stats(struct ts_aggregator *agg, struct ts_aggregator_stats *st)
{
    bool held = workers_hold(agg, false);
    *st = agg->st;
    for (size_t i = 0; i < agg->n_workers; i++)
        stats_add(st, &agg->workers[i].st);
    st->watermark_ms = INT64_MIN;
    st->agents = st->agents_with_gaps = st->archived = 0;
    st->layout = agg->layout;
    st->topic_partitions = agg->topic_partitions;
    st->retention_ms = atomic_load_explicit(&agg->retention_ms, memory_order_relaxed);
    bool first = true;
    for (size_t i = 0; i < agg->n_parts; i++) {
        const struct part *p = agg->parts[i];
        if (!p || !p->assigned || !p->win)
            continue;
        size_t cursor = 0;
        const char *agent;
        struct ts_seqset *set;
        while (ts_seqsets_next(&p->agents.hot, &cursor, &agent, &set)) {
            st->agents++;
            st->agents_with_gaps += ts_seqset_ranges(set) > 0;
        }
        struct ts_agent_table_stats ts;
        ts_agent_table_stats(&p->agents, &ts);
        st->archived += ts.archived;
        int64_t w = ts_window_watermark(p->win);
        if (first || w < st->watermark_ms)
            st->watermark_ms = w;
        first = false;
    }
    if (held)
        workers_release(agg);
}

size_t ts_aggregator_partitions(struct ts_aggregator *agg, struct ts_aggregator_partition *out,
                                size_t max)
{
    size_t n = 0;
    int64_t now = ts_wall_ms();
    bool held = workers_hold(agg, false);
    for (size_t i = 0; i < agg->n_parts; i++) {
        const struct part *p = agg->parts[i];
        if (!p || !p->assigned)
            continue;
        if (n < max) {
            struct ts_aggregator_partition *o = &out[n];
            struct ts_agent_table_stats ts = {0};
            if (p->lake)
                ts_agent_table_stats(&p->agents, &ts);
            int64_t lo, hi = -1; /* cached by librdkafka: no request to the broker */
            if (!agg->rk || rd_kafka_get_watermark_offsets(agg->rk, agg->topic, p->partition,
                                                           &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
                hi = -1;
            *o = (struct ts_aggregator_partition){
                .partition = p->partition, .next_offset = p->next_offset, .high_offset = hi,
                .checkpoint_offset = p->ckpt_offset, .checkpoint_age_ms = now - p->ckpt_ms,
                .backlog_age_ms = p->backlog_since_ms == INT64_MIN ? 0 : now - p->backlog_since_ms,
                .failures_in_row = p->failures_in_row,
                .failing_ms = p->failures_in_row ? now - p->failing_since_ms : 0,
                .agents = ts.in_memory, .archived = ts.archived,
                .paused = p->paused_until_ms && now < p->paused_until_ms};
            snprintf(o->last_error, sizeof o->last_error, "%s", p->last_error);
        }
        n++;
    }
    if (held)
        workers_release(agg);
    return n;
}

void ts_aggregator_free(struct ts_aggregator *agg)
{
    if (!agg)
        return;
    /* the workers take what they were handed (or drop it after a fatal
     * error), then the polling thread owns everything */
    workers_hold(agg, true);
    int64_t now = ts_wall_ms();
    for (size_t i = 0; i < agg->n_workers && !agg->fatal; i++)
        advance(&agg->workers[i], now, true); /* a final checkpoint: windows stay open in
                                                 the state */
    if (agg->rk) {
        /* the revoke callback checkpoints and clears the partitions */
        rd_kafka_consumer_close(agg->rk);
        rd_kafka_destroy(agg->rk);
    }
    workers_stop(agg);
    ts_retention_free(agg->retention);
    for (size_t i = 0; i < agg->n_parts; i++) {
        if (agg->parts[i]) {
            part_clear(agg->parts[i]);
            free(agg->parts[i]->pending);
        }
        free(agg->parts[i]);
    }
    free(agg->parts);
    ts_station_windows_free(agg->stations);
    /* what is not confirmed now was not passed by any checkpoint */
    ts_deadletter_free(agg->dl, DL_CONFIRM_FINAL_MS);
    pthread_mutex_destroy(&agg->stations_mu);
    pthread_mutex_destroy(&agg->dl_mu);
    explicit_bzero(agg->s3_secret, sizeof agg->s3_secret);
    free(agg);
}
