/* SPDX-License-Identifier: Apache-2.0 */
/* The repartition tool's lake half (bridge/repartition.h) on a real lake:
 * the pure parts (an agent's fate, the source partitions, the union of
 * closed-window records), then whole runs from 4 partitions to 8 and to 6
 * over agents in memory and in archives, copies an interrupted run left,
 * open windows and partitions that already have checkpoints, checked
 * against a model: every agent ends up exactly once, in its partition under
 * the new count, with its set; the windows' rows are in the lake once; later
 * readings of a flushed window are late. The run is stopped after every
 * durable step (and killed with SIGKILL at random moments) and run again:
 * the result is the same. Refusals (not drained, a recheck that fails, fewer
 * partitions, no layout) change nothing that counts.
 *
 * `test_repartition s3` runs the stopped and killed runs on an object lake
 * ([lake] url) on a real S3 API server instead: TS_S3_ENDPOINT,
 * TS_S3_KEY_ID_FILE and TS_S3_SECRET_FILE name it and its bucket "lake"
 * (tests/integration/test_repartition_s3.sh starts S3Proxy), and a run on
 * another host, whose own layout file still says the old count, is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "agent_archive.h"
#include "bridge_config.h"
#include "err.h"
#include "lake.h"
#include "lake_s3.h"
#include "lake_store.h"
#include "layout.h"
#include "log.h"
#include "partition_state.h"
#include "reading.h"
#include "repartition.h"
#include "seqset.h"
#include "window.h"

#define TOPIC "turnstile.readings"
#define MAXP 16
#define T0 1685160000000LL /* 2023-05-27 04:00 UTC */
#define WINDOW_MS 60000

static uint64_t rng_state = 11;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static char base[64];     /* removed by the teardown */
static struct ts_bridge_cfg cfg;
static bool s3_mode;      /* the lakes are on the bucket (argv[1] "s3") */
static char key_id[256], secret[256];

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "%s is not set (run test_repartition_s3.sh)\n", name);
        exit(2);
    }
    return v;
}

/* A client on url (s3://lake/...). */
static struct ts_s3 *s3_client(const char *url)
{
    struct ts_s3_cfg c = {.url = url, .endpoint = env("TS_S3_ENDPOINT"), .region = "us-east-1",
                          .path_style = true, .key_id = key_id, .secret = secret,
                          .timeout_ms = 30000, .connect_timeout_ms = 2000, .max_attempts = 4,
                          .backoff_ms = 10, .backoff_max_ms = 80, .part_size = 5u << 20,
                          .max_object = 64u << 20, .max_list = 100000};
    struct ts_s3 *s3 = NULL;
    char why[256] = "";
    if (ts_s3_open(&c, &s3, why, sizeof why) != TS_OK)
        fail_msg("s3 open: %s", why);
    return s3;
}

/* The bucket's prefix of the run's lakes: s3://lake/<base's name>. */
static const char *run_url(void)
{
    static char url[128];
    snprintf(url, sizeof url, "s3://lake/%s", strrchr(base, '/') + 1);
    return url;
}

static int setup(void **state)
{
    snprintf(base, sizeof base, "/tmp/ts-repartition.XXXXXX");
    assert_non_null(mkdtemp(base));
    ts_bridge_cfg_defaults(&cfg);
    cfg.has_lake = true;
    snprintf(cfg.lake.table, sizeof cfg.lake.table, "turnstile");
    snprintf(cfg.kafka.readings_topic, sizeof cfg.kafka.readings_topic, TOPIC);
    cfg.lake.window_s = WINDOW_MS / 1000;
    cfg.lake.slide_s = 0;
    cfg.lake.lateness_s = -1;
    cfg.lake.idle_s = 0;
    if (s3_mode) {
        snprintf(cfg.lake.endpoint, sizeof cfg.lake.endpoint, "%s", env("TS_S3_ENDPOINT"));
        snprintf(cfg.lake.region, sizeof cfg.lake.region, "us-east-1");
        cfg.lake.path_style = true;
        snprintf(cfg.lake.key_id_file, sizeof cfg.lake.key_id_file, "%s",
                 env("TS_S3_KEY_ID_FILE"));
        snprintf(cfg.lake.secret_file, sizeof cfg.lake.secret_file, "%s",
                 env("TS_S3_SECRET_FILE"));
        cfg.lake.conditional_writes = false; /* S3Proxy 2.6.0 ignores If-None-Match */
        cfg.lake.s3_max_attempts = 4;
        cfg.lake.s3_backoff_ms = 10;
        cfg.lake.s3_backoff_max_ms = 80;
    }
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    return system(cmd);
}

/* The lake called name: the directory base/name, or on the object lake
 * the bucket's <run>/name with base/name as its spool (layout, marker). */
static void use_lake(const char *name)
{
    snprintf(cfg.lake.path, sizeof cfg.lake.path, "%s/%s", base, name);
    if (s3_mode)
        snprintf(cfg.lake.url, sizeof cfg.lake.url, "%s/%s", run_url(), name);
}

static struct ts_lake_cfg lake_cfg(void)
{
    return (struct ts_lake_cfg){.root = cfg.lake.path, .table = cfg.lake.table, .owner = "fx",
                                .row_number = true, .compression_level = 1,
                                .keep_checkpoints = 3, .max_open_files = 4,
                                .max_checkpoint_files = 256};
}

/* Partition p's lake, as the tool opens it. */
static int open_lake(int32_t p, struct ts_lake **lake, struct ts_lake_resume *res, char *why,
                     size_t why_size)
{
    struct ts_lake_cfg lc = lake_cfg();
    if (!s3_mode)
        return ts_lake_open(&lc, TOPIC, p, lake, res, why, why_size);
    void *sd;
    struct ts_s3 *s3 = s3_client(cfg.lake.url);
    int rc = ts_lake_s3store_open(s3, cfg.lake.path, &sd, why, why_size);
    if (rc == TS_OK)
        rc = ts_lake_open_store(&lc, TOPIC, p, &ts_lake_s3store, sd, lake, res, why, why_size);
    return rc;
}

static struct ts_window_agg *new_win(void)
{
    struct ts_window_cfg w;
    struct ts_window_agg *a;
    ts_window_cfg_default(&w);
    w.size_ms = WINDOW_MS;
    w.slide_ms = 0;
    w.lateness_ms = TS_WINDOW_LATENESS_DEFAULT;
    w.idle_ms = 0;
    assert_int_equal(ts_window_new(&w, &a, NULL, 0), TS_OK);
    return a;
}

static struct ts_reading reading(const char *scp, int64_t t, uint64_t e)
{
    struct ts_reading r = {.entries = e, .exits = 1, .time_ms = t, .seq = 1, .merged_from = 1};
    strcpy(r.ca, "A002");
    strcpy(r.unit, "R051");
    snprintf(r.scp, sizeof r.scp, "%s", scp);
    strcpy(r.station, "59 ST");
    strcpy(r.linename, "NQR456W");
    strcpy(r.division, "BMT");
    strcpy(r.desc, "REGULAR");
    strcpy(r.agent_id, "a1");
    return r;
}

/* ---- pure parts ---- */

static void fate_and_sources(void **state)
{
    char id[32];
    int32_t src[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "agent-%" PRIu64, rnd() % 1000000);
        int32_t n = 1 + (int32_t)(rnd() % 12), m = n + (int32_t)(rnd() % 13), t;
        int32_t p = ts_layout_partition(id, strlen(id), n), q = ts_layout_partition(id, strlen(id), m);
        enum ts_repartition_fate f = ts_repartition_fate(id, p, n, m, &t);
        assert_int_equal(t, q);
        assert_int_equal(f, p == q ? TS_REPARTITION_STAYS : TS_REPARTITION_MOVES);
        int32_t other = (p + 1 + (int32_t)(rnd() % (uint64_t)m)) % (m + 1);
        if (other != p)
            assert_int_equal(ts_repartition_fate(id, other, n, m, &t), TS_REPARTITION_STALE);
        /* where it comes from is among q's sources */
        size_t k = ts_repartition_sources(n, m, q, src, 64);
        assert_true(k <= 64);
        bool found = false;
        for (size_t j = 0; j < k; j++) {
            assert_true(src[j] >= 0 && src[j] < n && src[j] != q);
            assert_true(j == 0 || src[j] > src[j - 1]);
            found |= src[j] == p;
        }
        assert_true(found || p == q);
    }
    /* doubling: one source each, the partition below */
    assert_int_equal(ts_repartition_sources(4, 8, 5, src, 64), 1);
    assert_int_equal(src[0], 1);
    assert_int_equal(ts_repartition_sources(4, 8, 2, src, 64), 0);
    /* 4 -> 6: gcd 2, the partitions of q's parity */
    assert_int_equal(ts_repartition_sources(4, 6, 5, src, 64), 2);
    assert_int_equal(src[0], 1);
    assert_int_equal(src[1], 3);
    assert_int_equal(ts_repartition_sources(4, 6, 2, src, 64), 1);
    assert_int_equal(src[0], 0);
}

static void windows_union_closes_what_any_closed(void **state)
{
    struct ts_window_agg *a = new_win(), *b = new_win(), *u = new_win(), *open = new_win();
    struct ts_reading r;
    /* a: windows T0 and T0+1min open, then flushed; b: T0+5min, advanced past */
    r = reading("x1", T0 + 1000, 3);
    assert_int_equal(ts_window_add(a, &r, 0, 0), TS_OK);
    r = reading("x1", T0 + WINDOW_MS + 1000, 3);
    assert_int_equal(ts_window_add(a, &r, 0, 0), TS_OK);
    assert_int_equal(ts_window_flush_all(a, NULL, NULL), 2);
    r = reading("x2", T0 + 5 * WINDOW_MS, 4);
    assert_int_equal(ts_window_add(b, &r, 0, 0), TS_OK);
    r = reading("x2", T0 + 8 * WINDOW_MS, 4);
    assert_int_equal(ts_window_add(b, &r, 0, 0), TS_OK);
    ts_window_advance(b, 0, NULL, NULL); /* the first closes by the watermark */
    assert_int_equal(ts_window_flush_all(b, NULL, NULL), 1);
    struct ts_window_agg *src[2] = {a, b};
    char why[256] = "";
    assert_int_equal(ts_repartition_windows_union(u, src, 2, why, sizeof why), TS_OK);

    struct ts_window_stats st;
    int64_t late_at[] = {T0 + 2000, T0 + WINDOW_MS + 5, T0 + 5 * WINDOW_MS + 9,
                         T0 + 8 * WINDOW_MS + 9, T0 + 3 * WINDOW_MS};
    for (size_t i = 0; i < sizeof late_at / sizeof late_at[0]; i++) {
        r = reading("y", late_at[i], 1);
        assert_int_equal(ts_window_add(u, &r, 0, 0), TS_OK);
        ts_window_stats(u, &st);
        assert_int_equal(st.late_readings, i + 1); /* closed in a or b (or below b's frontier) */
    }
    r = reading("y", T0 + 9 * WINDOW_MS, 1);
    assert_int_equal(ts_window_add(u, &r, 0, 0), TS_OK);
    ts_window_stats(u, &st);
    assert_int_equal(st.late_readings, 5); /* a window nobody closed: on time */

    /* a source with open windows is refused */
    r = reading("z", T0, 1);
    assert_int_equal(ts_window_add(open, &r, 0, 0), TS_OK);
    struct ts_window_agg *bad[1] = {open}, *fresh = new_win();
    assert_int_equal(ts_repartition_windows_union(fresh, bad, 1, why, sizeof why), TS_EINVAL);
    assert_non_null(strstr(why, "not flushed"));
    ts_window_free(a);
    ts_window_free(b);
    ts_window_free(u);
    ts_window_free(open);
    ts_window_free(fresh);
}

/* ---- a lake to repartition, and its model ---- */

struct agent {
    char id[24];
    char truth[96];           /* its set's text where the layout puts it */
    bool real;                /* false: only a stale copy exists (nobody's truth) */
};

struct fixture {
    int32_t n, m;
    int64_t low[MAXP], high[MAXP];
    struct agent *agents;
    size_t n_agents;
    uint64_t entries;         /* people in the open windows */
};

static void set_text(char *out, size_t size, uint64_t c, uint64_t gap)
{
    if (gap)
        snprintf(out, size, "%" PRIu64 ";%" PRIu64 "-%" PRIu64, c, c + 2 + gap, c + 4 + gap);
    else
        snprintf(out, size, "%" PRIu64, c);
}

static void put(struct ts_seqsets *t, const char *agent, const char *text)
{
    struct ts_seqset *s;
    assert_int_equal(ts_seqsets_get(t, agent, &s), TS_OK);
    assert_int_equal(ts_seqset_decode(s, text, strlen(text)), TS_OK);
}

/* Builds a lake with n partitions' worth of agents, under a layout of n,
 * for a topic of m partitions. */
static void build(struct fixture *fx, const char *name, int32_t n, int32_t m, size_t agents)
{
    struct ts_seqsets hot[MAXP], arch[MAXP];
    struct ts_window_agg *win[MAXP];
    bool ckpt[MAXP];
    char text[96];

    use_lake(name);
    memset(fx, 0, sizeof *fx);
    fx->n = n;
    fx->m = m;
    fx->agents = calloc(agents, sizeof *fx->agents);
    fx->n_agents = agents;
    for (int32_t p = 0; p < m; p++) {
        ts_seqsets_init(&hot[p], 0);
        ts_seqsets_init(&arch[p], 0);
        win[p] = new_win();
        ckpt[p] = p < n || p % 2 == 1; /* some new partitions were taken by aggregators */
        fx->low[p] = p < n ? 0 : 3;
        fx->high[p] = p < n ? 100 + p : ckpt[p] ? 7 : 3;
    }
    for (size_t i = 0; i < agents; i++) {
        struct agent *a = &fx->agents[i];
        snprintf(a->id, sizeof a->id, "ag-%u-%u", (unsigned)(i % 1000000), (unsigned)(rnd() % 100000));
        int32_t owner = ts_layout_partition(a->id, strlen(a->id), n);
        uint64_t c = 1 + rnd() % 100000, gap = rnd() % 3 ? 0 : 1 + rnd() % 50;
        set_text(a->truth, sizeof a->truth, c, gap);
        a->real = rnd() % 40 != 0;
        unsigned where = (unsigned)(rnd() % 10);
        if (a->real) {
            if (where < 6) {
                put(&hot[owner], a->id, a->truth);
                if (where == 0) { /* also archived, with an older set: memory is the truth */
                    set_text(text, sizeof text, c > 5 ? c - 5 : 0, 0);
                    put(&arch[owner], a->id, text);
                }
            } else {
                put(&arch[owner], a->id, a->truth);
            }
        }
        if (!a->real || rnd() % 20 == 0) {
            /* a copy where the layout does not put it (an interrupted run's, or the
             * only one: nobody's truth) */
            int32_t p = (owner + 1 + (int32_t)(rnd() % (uint64_t)(m - 1))) % m;
            if (!ckpt[p])
                p = owner == 0 ? 1 : 0;
            set_text(text, sizeof text, c + 1000, 0);
            put(rnd() % 2 ? &hot[p] : &arch[p], a->id, text);
        }
    }
    /* open windows in the old partitions */
    for (int32_t p = 0; p < n; p++)
        for (int k = 0; k < 4; k++) {
            char scp[16];
            snprintf(scp, sizeof scp, "%02d-%02d", p, k);
            for (int j = 0; j < 3; j++) {
                uint64_t e = 1 + rnd() % 20;
                struct ts_reading r = reading(scp, T0 + j * 30000 + k * 1000, e);
                assert_int_equal(ts_window_add(win[p], &r, -4 * 3600, 0), TS_OK);
                fx->entries += e;
            }
        }
    for (int32_t p = 0; p < m; p++) {
        if (ckpt[p]) {
            struct ts_lake *lake;
            struct ts_lake_resume res;
            struct ts_archive_ref ref = {.name = ""};
            char an[TS_ARCHIVE_NAME_MAX], *t, *state;
            size_t len;
            assert_int_equal(open_lake(p, &lake, &res, NULL, 0), TS_OK);
            assert_int_equal(ts_seqsets_encode(&arch[p], &t, &len), TS_OK);
            assert_int_equal(ts_archive_name(1, "fx", an, sizeof an), TS_OK);
            assert_int_equal(ts_archive_write(NULL, ts_lake_manifest_fd(lake), an, t, len, NULL,
                                              NULL, &ref), TS_OK);
            if (ref.name[0]) /* in the store before the checkpoint names it */
                assert_int_equal(ts_lake_side_publish(lake, ref.name), TS_OK);
            free(t);
            assert_int_equal(ts_partition_state_encode(&hot[p], win[p], &ref, &state, &len), TS_OK);
            assert_int_equal(ts_lake_commit(lake, fx->high[p], state, len, NULL), TS_OK);
            free(state);
            ts_lake_close(lake);
        }
        ts_seqsets_free(&hot[p]);
        ts_seqsets_free(&arch[p]);
        ts_window_free(win[p]);
    }
    int32_t actual;
    assert_int_equal(ts_layout_create(cfg.lake.path, cfg.lake.table, TOPIC, n, &actual, NULL, 0),
                     TS_OK);
}

static void fixture_free(struct fixture *fx)
{
    free(fx->agents);
    fx->agents = NULL;
}

/* The keys under a prefix of the run's bucket prefix. */
struct keys {
    char (*v)[LAKE_PATH_LEN];
    size_t n, cap;
};

static int add_key(void *arg, const char *key, uint64_t size)
{
    struct keys *k = arg;
    (void)size;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 64;
        k->v = realloc(k->v, k->cap * sizeof *k->v);
        assert_non_null(k->v);
    }
    snprintf(k->v[k->n++], sizeof *k->v, "%s", key);
    return 0;
}

static void list_keys(struct ts_s3 *s3, const char *prefix, struct keys *k)
{
    char why[256] = "";
    k->n = 0;
    if (ts_s3_list(s3, prefix, add_key, k, why, sizeof why) != TS_OK)
        fail_msg("listing %s: %s", prefix, why);
}

/* A copy of lake from into to, and the config on it (on the object lake,
 * the bucket's objects too, server-side). */
static void copy_lake(const char *from, const char *to)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/%s' && cp -a '%s/%s' '%s/%s'", base, to, base, from,
             base, to);
    assert_int_equal(system(cmd), 0);
    use_lake(to);
    if (!s3_mode)
        return;
    struct ts_s3 *s3 = s3_client(run_url());
    struct keys k = {0};
    char prefix[80], dst[LAKE_PATH_LEN + 80], why[256] = "";
    snprintf(prefix, sizeof prefix, "%s/", to);
    list_keys(s3, prefix, &k);
    for (size_t i = 0; i < k.n; i++)
        if (ts_s3_delete(s3, k.v[i], why, sizeof why) != TS_OK)
            fail_msg("deleting %s: %s", k.v[i], why);
    snprintf(prefix, sizeof prefix, "%s/", from);
    list_keys(s3, prefix, &k);
    for (size_t i = 0; i < k.n; i++) {
        snprintf(dst, sizeof dst, "%s/%s", to, k.v[i] + strlen(prefix));
        if (ts_s3_copy(s3, k.v[i], dst, why, sizeof why) != TS_OK)
            fail_msg("copying %s: %s", k.v[i], why);
    }
    free(k.v);
    ts_s3_close(s3);
}

/* ---- what the lake holds after a run ---- */

struct found {
    char id[24];
    char text[96];
    int32_t p;
};

static int cmp_found(const void *a, const void *b)
{
    return strcmp(((const struct found *)a)->id, ((const struct found *)b)->id);
}

struct gather {
    struct found *v;
    size_t n, cap;
    int32_t p;
    const struct ts_seqsets *hot;
};

static void add_found(struct gather *g, const char *id, const char *text, size_t len)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 256;
        g->v = realloc(g->v, g->cap * sizeof *g->v);
        assert_non_null(g->v);
    }
    struct found *f = &g->v[g->n++];
    snprintf(f->id, sizeof f->id, "%s", id);
    snprintf(f->text, sizeof f->text, "%.*s", (int)len, text);
    f->p = g->p;
}

static int gather_line(const char *agent, const char *set, size_t set_len, void *ctx)
{
    struct gather *g = ctx;
    if (!ts_seqsets_find(g->hot, agent)) /* memory is the truth */
        add_found(g, agent, set, set_len);
    return TS_OK;
}

static uint64_t gz_entries(const char *file)
{
    char line[512];
    uint64_t sum = 0;
    gzFile gz = gzopen(file, "rb");
    assert_non_null(gz);
    assert_non_null(gzgets(gz, line, sizeof line)); /* the header */
    while (gzgets(gz, line, sizeof line)) {
        char *field = line;
        for (int k = 0; k < 10; k++) /* N,CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC */
            field = strchr(field, ',') + 1;
        sum += strtoull(field, NULL, 10);
    }
    gzclose(gz);
    return sum;
}

/* The object lake's: its visible data files fetched one by one. */
static uint64_t s3_lake_entries(void)
{
    struct ts_s3 *s3 = s3_client(cfg.lake.url);
    struct keys k = {0};
    uint64_t sum = 0;
    char file[300], why[256] = "";
    snprintf(file, sizeof file, "%s/fetched.csv.gz", base);
    list_keys(s3, "turnstile/event_date=", &k);
    for (size_t i = 0; i < k.n; i++) {
        const char *name = strrchr(k.v[i], '/') + 1;
        if (name[0] == '.' || !strstr(name, ".csv.gz")) /* hidden: as on POSIX */
            continue;
        char *data;
        size_t len;
        if (ts_s3_get(s3, k.v[i], &data, &len, why, sizeof why) != TS_OK)
            fail_msg("getting %s: %s", k.v[i], why);
        FILE *f = fopen(file, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        fclose(f);
        free(data);
        sum += gz_entries(file);
    }
    free(k.v);
    ts_s3_close(s3);
    return sum;
}

/* The sum of ENTRIES over the visible data files. */
static uint64_t lake_entries(void)
{
    char path[1024];
    uint64_t sum = 0;
    if (s3_mode)
        return s3_lake_entries();
    snprintf(path, sizeof path, "%s/turnstile", cfg.lake.path);
    DIR *d = opendir(path), *dd;
    struct dirent *e, *f;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "event_date=", 11))
            continue;
        snprintf(path, sizeof path, "%s/turnstile/%s", cfg.lake.path, e->d_name);
        dd = opendir(path);
        while (dd && (f = readdir(dd))) {
            if (f->d_name[0] == '.' || !strstr(f->d_name, ".csv.gz"))
                continue;
            char file[1400];
            snprintf(file, sizeof file, "%s/%s", path, f->d_name);
            sum += gz_entries(file);
        }
        if (dd)
            closedir(dd);
    }
    if (d)
        closedir(d);
    return sum;
}

/* Every real agent exactly once, in its partition under m, with its set;
 * windows flushed once; every checkpoint at its partition's end. */
static void verify(const struct fixture *fx)
{
    int32_t n = 0;
    assert_int_equal(ts_layout_read(cfg.lake.path, cfg.lake.table, TOPIC, &n, NULL, 0), TS_OK);
    assert_int_equal(n, fx->m);
    assert_false(ts_repartition_unfinished(cfg.lake.path, cfg.lake.table, TOPIC));
    struct gather g = {0};
    for (int32_t p = 0; p < fx->m; p++) {
        struct ts_lake *lake;
        struct ts_lake_resume res;
        char why[256] = "";
        assert_int_equal(open_lake(p, &lake, &res, why, sizeof why), TS_OK);
        if (!res.state) {
            ts_lake_close(lake);
            continue;
        }
        assert_int_equal(res.offset_next, fx->high[p]);
        struct ts_seqsets hot;
        struct ts_window_agg *win = new_win();
        struct ts_archive_ref ref;
        struct ts_archive *arch;
        ts_seqsets_init(&hot, 0);
        int rc = ts_partition_state_decode(res.state, res.state_len, &hot, win, 0, &ref, why,
                                           sizeof why);
        if (rc != TS_OK)
            fail_msg("partition %d: %s", (int)p, why);
        if (ref.name[0]) /* the object lake: from the store (on POSIX: nothing) */
            assert_int_equal(ts_lake_side_fetch(lake, ref.name), TS_OK);
        assert_int_equal(ts_archive_open(ts_lake_manifest_fd(lake), &ref,
                                         ts_archive_max_line(TS_SEQSET_MAX_RANGES), &arch, why,
                                         sizeof why), TS_OK);
        struct ts_window_stats st;
        ts_window_stats(win, &st);
        assert_int_equal(st.open_groups + st.late_groups, 0);
        g.p = p;
        g.hot = &hot;
        size_t cursor = 0;
        const char *agent;
        struct ts_seqset *set;
        while (ts_seqsets_next(&hot, &cursor, &agent, &set)) {
            char text[96];
            int len = ts_seqset_encode(set, text, sizeof text);
            add_found(&g, agent, text, (size_t)len);
        }
        assert_int_equal(ts_archive_scan(arch, gather_line, &g), TS_OK);
        ts_archive_close(arch);
        ts_window_free(win);
        ts_seqsets_free(&hot);
        free(res.state);
        ts_lake_close(lake);
    }
    qsort(g.v, g.n, sizeof *g.v, cmp_found);
    size_t real = 0;
    for (size_t i = 0; i < fx->n_agents; i++) {
        const struct agent *a = &fx->agents[i];
        struct found key, *f;
        snprintf(key.id, sizeof key.id, "%s", a->id);
        f = bsearch(&key, g.v, g.n, sizeof *g.v, cmp_found);
        if (!a->real) {
            if (f)
                fail_msg("agent %s: only a stale copy existed, found in partition %d", a->id,
                         (int)f->p);
            continue;
        }
        real++;
        if (!f)
            fail_msg("agent %s: lost", a->id);
        if (f->p != ts_layout_partition(a->id, strlen(a->id), fx->m))
            fail_msg("agent %s: in partition %d, not %d", a->id, (int)f->p,
                     (int)ts_layout_partition(a->id, strlen(a->id), fx->m));
        if (strcmp(f->text, a->truth))
            fail_msg("agent %s: set %s, its truth %s", a->id, f->text, a->truth);
    }
    for (size_t i = 1; i < g.n; i++)
        if (!strcmp(g.v[i].id, g.v[i - 1].id))
            fail_msg("agent %s: in partitions %d and %d", g.v[i].id, (int)g.v[i - 1].p,
                     (int)g.v[i].p);
    assert_int_equal(g.n, real);
    free(g.v);
    assert_int_equal(lake_entries(), fx->entries);
}

/* ---- runs ---- */

struct stopper {
    unsigned steps, stop_at;  /* stop after step stop_at (0: never) */
    bool layout;              /* the layout was replaced */
    bool done;                /* the run was complete (its last step) */
    int recheck_rc;
};

static int on_step(void *ctx, const char *what)
{
    struct stopper *s = ctx;
    s->layout |= !strcmp(what, "layout");
    s->done |= !strcmp(what, "done");
    return ++s->steps == s->stop_at ? TS_EIO : TS_OK;
}

static int on_recheck(void *ctx, char *why, size_t why_size)
{
    struct stopper *s = ctx;
    if (s->recheck_rc != TS_OK)
        snprintf(why, why_size, "a relay is running");
    return s->recheck_rc;
}

static int run(const struct fixture *fx, int32_t m, struct stopper *s,
               struct ts_repartition_report *rep, char *why, size_t why_size)
{
    struct ts_repartition_args a = {.cfg = &cfg, .m = m, .low = fx->low, .high = fx->high,
                                    .recheck = on_recheck, .step = on_step, .ctx = s};
    return ts_repartition_lake(&a, rep, why, why_size);
}

static void run_ok(const struct fixture *fx, struct ts_repartition_report *rep)
{
    struct stopper s = {0};
    char why[1024] = "";
    int rc = run(fx, fx->m, &s, rep, why, sizeof why);
    if (rc != TS_OK)
        fail_msg("run: %s: %s", ts_strerror(rc), why);
}

/* A run, then every run stopped after step k and run again. */
static void stopped_anywhere(int32_t n, int32_t m, size_t agents)
{
    struct fixture fx;
    struct ts_repartition_report rep;
    build(&fx, "template", n, m, agents);

    copy_lake("template", "whole");
    struct stopper count = {0};
    char why[1024] = "";
    assert_int_equal(run(&fx, m, &count, &rep, why, sizeof why), TS_OK);
    verify(&fx);
    assert_int_equal(rep.from, n);
    assert_int_equal(rep.to, m);
    assert_true(rep.moved > 0 && rep.moved_archived > 0);
    assert_true(rep.stale > 0);
    assert_int_equal(rep.flushed, (unsigned)n);
    assert_false(rep.nothing);
    unsigned steps = count.steps;
    /* again: nothing to do */
    run_ok(&fx, &rep);
    assert_true(rep.nothing);
    verify(&fx);

    for (unsigned k = 1; k < steps; k++) {
        copy_lake("template", "stopped");
        struct stopper s = {.stop_at = k};
        assert_int_equal(run(&fx, m, &s, &rep, why, sizeof why), TS_EIO);
        /* sometimes stopped a second time, a step or two into the next run */
        bool layout = s.layout, done = false;
        if (k % 3 == 0) {
            struct stopper s2 = {.stop_at = 1 + k % 2};
            int rc = run(&fx, m, &s2, &rep, why, sizeof why);
            assert_true(rc == TS_EIO || rc == TS_OK);
            layout |= s2.layout;
            done = s2.done;
        }
        run_ok(&fx, &rep);
        if (rep.unfinished == done)
            fail_msg("k %u of %u: the new run %s an unfinished run", k, steps,
                     done ? "found" : "did not find");
        /* after the layout a new run only removes old copies; before, it copies again */
        assert_true(layout ? rep.moved == 0 : rep.moved > 0);
        verify(&fx);
    }
    fixture_free(&fx);
}

static void four_to_eight_stopped_anywhere(void **state)
{
    stopped_anywhere(4, 8, s3_mode ? 400 : 1500);
}

static void four_to_six_stopped_anywhere(void **state)
{
    stopped_anywhere(4, 6, 1500);
}

static void killed_at_random_moments(void **state)
{
    struct fixture fx;
    struct ts_repartition_report rep;
    int runs = s3_mode ? 3 : 12;
    build(&fx, "template", 4, 8, s3_mode ? 600 : 3000);
    copy_lake("template", "timed");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_ok(&fx, &rep);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long whole_us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
    unsigned killed = 0;
    for (int i = 0; i < runs; i++) {
        copy_lake("template", "killed");
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct stopper s = {0};
            char why[256];
            _exit(run(&fx, 8, &s, &rep, why, sizeof why) == TS_OK ? 0 : 1);
        }
        usleep((useconds_t)(rnd() % (uint64_t)(whole_us + 1)));
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        killed += WIFSIGNALED(status);
        assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
        run_ok(&fx, &rep);
        verify(&fx);
    }
    print_message("killed %u of %d runs (a whole run: %ld ms)\n", killed, runs, whole_us / 1000);
    fixture_free(&fx);
}

/* The object lake: bridges on several hosts each keep the layout in their own
 * path. A run on a host whose file still says 4 after another host moved the
 * agents to 8 would take the moved agents for copies an interrupted run left
 * and drop them: it is refused (the bucket's copy of the layout says 8), and
 * nothing changes. Once the file is copied, there is nothing to do. */
static void another_host_is_refused(void **state)
{
    struct fixture fx;
    struct ts_repartition_report rep;
    struct stopper s = {0};
    char why[1024] = "";
    build(&fx, "hosts", 4, 8, 300);
    run_ok(&fx, &rep);
    verify(&fx);
    /* the bucket's copy */
    struct ts_s3 *s3 = s3_client(cfg.lake.url);
    char *text;
    size_t len;
    assert_int_equal(ts_s3_get(s3, "turnstile/_manifest/" TOPIC ".layout", &text, &len, why,
                               sizeof why), TS_OK);
    assert_non_null(strstr(text, "\npartitions 8\n"));
    free(text);
    ts_s3_close(s3);
    /* another host: the same bucket, its own path with the old layout */
    assert_int_equal(ts_layout_replace(cfg.lake.path, cfg.lake.table, TOPIC, 4, NULL, 0), TS_OK);
    assert_int_equal(run(&fx, 8, &s, &rep, why, sizeof why), TS_EBUSY);
    assert_non_null(strstr(why, "ran on another host"));
    assert_int_equal(s.steps, 0);
    assert_int_equal(ts_layout_replace(cfg.lake.path, cfg.lake.table, TOPIC, 8, NULL, 0), TS_OK);
    verify(&fx); /* nothing was dropped */
    run_ok(&fx, &rep);
    assert_true(rep.nothing);
    fixture_free(&fx);
}

/* The generations of the partitions' checkpoints. */
static void generations(int32_t m, uint64_t *gen)
{
    for (int32_t p = 0; p < m; p++) {
        struct ts_lake *lake;
        struct ts_lake_resume res;
        assert_int_equal(open_lake(p, &lake, &res, NULL, 0), TS_OK);
        gen[p] = res.generation;
        free(res.state);
        ts_lake_close(lake);
    }
}

static void refusals_change_nothing_that_counts(void **state)
{
    struct fixture fx;
    struct ts_repartition_report rep;
    struct stopper s = {0};
    char why[1024] = "";
    uint64_t before[MAXP] = {0}, after[MAXP] = {0};
    int32_t n;
    build(&fx, "refuse", 4, 8, 300);
    generations(8, before);

    /* a partition not drained: records after its checkpoint */
    fx.high[2] += 5;
    assert_int_equal(run(&fx, 8, &s, &rep, why, sizeof why), TS_EBUSY);
    assert_non_null(strstr(why, "2 (5 record(s) from offset 102)"));
    fx.high[2] -= 5;
    /* a new partition no aggregator took that holds records */
    fx.high[6] += 1;
    assert_int_equal(run(&fx, 8, &s, &rep, why, sizeof why), TS_EBUSY);
    assert_non_null(strstr(why, "6 (1 record(s) from offset 3)"));
    fx.high[6] -= 1;
    /* a checkpoint beyond the end */
    fx.high[1] -= 50;
    assert_int_equal(run(&fx, 8, &s, &rep, why, sizeof why), TS_EINVAL);
    fx.high[1] += 50;
    generations(8, after);
    assert_memory_equal(before, after, sizeof before);
    assert_int_equal(ts_layout_read(cfg.lake.path, cfg.lake.table, TOPIC, &n, NULL, 0), TS_OK);
    assert_int_equal(n, 4);
    assert_false(ts_repartition_unfinished(cfg.lake.path, cfg.lake.table, TOPIC));

    /* fewer partitions than the layout; the same count: nothing to do */
    assert_int_equal(run(&fx, 3, &s, &rep, why, sizeof why), TS_EINVAL);
    assert_non_null(strstr(why, "fewer"));
    struct fixture same = fx;
    same.m = 4;
    assert_int_equal(run(&same, 4, &s, &rep, why, sizeof why), TS_OK);
    assert_true(rep.nothing);
    generations(8, after);
    assert_memory_equal(before, after, sizeof before);

    /* records after a checkpoint that the topic's retention deleted: nothing
     * is left to take, so the partition counts as drained (and ends at 150) */
    fx.low[1] = fx.high[1] = 150;

    /* the recheck before the layout changes fails (a relay came back): the
     * layout stays; what was copied counts for nothing; a new run finishes */
    s.recheck_rc = TS_EBUSY;
    assert_int_equal(run(&fx, 8, &s, &rep, why, sizeof why), TS_EBUSY);
    assert_non_null(strstr(why, "a relay is running"));
    assert_int_equal(ts_layout_read(cfg.lake.path, cfg.lake.table, TOPIC, &n, NULL, 0), TS_OK);
    assert_int_equal(n, 4);
    assert_true(ts_repartition_unfinished(cfg.lake.path, cfg.lake.table, TOPIC));
    s.recheck_rc = TS_OK;
    assert_int_equal(run(&fx, 8, &s, &rep, why, sizeof why), TS_OK);
    verify(&fx);

    /* no layout: no aggregator ever ran there */
    use_lake("empty");
    assert_int_equal(run(&fx, 8, &s, &rep, why, sizeof why), TS_ENOTFOUND);
    assert_non_null(strstr(why, "no layout"));
    fixture_free(&fx);
}

/* After the move, the agents' next readings of a window that was open in
 * their old partition are late rows in the new one. */
static void later_readings_of_flushed_windows_are_late(void **state)
{
    struct fixture fx;
    struct ts_repartition_report rep;
    build(&fx, "late", 4, 8, 200);
    run_ok(&fx, &rep);
    for (int32_t q = 4; q < 8; q++) {
        struct ts_lake *lake;
        struct ts_lake_resume res;
        assert_int_equal(open_lake(q, &lake, &res, NULL, 0), TS_OK);
        struct ts_seqsets hot;
        struct ts_window_agg *win = new_win();
        struct ts_archive_ref ref;
        struct ts_window_stats st;
        ts_seqsets_init(&hot, 0);
        assert_int_equal(ts_partition_state_decode(res.state, res.state_len, &hot, win, 0, &ref,
                                                   NULL, 0), TS_OK);
        struct ts_reading r = reading("99-99", T0 + 45000, 1); /* a window partition q-4 had open */
        assert_int_equal(ts_window_add(win, &r, -4 * 3600, 0), TS_OK);
        ts_window_stats(win, &st);
        assert_int_equal(st.late_readings, 1);
        r = reading("99-99", T0 + 10 * WINDOW_MS, 1); /* one nobody had */
        assert_int_equal(ts_window_add(win, &r, -4 * 3600, 0), TS_OK);
        ts_window_stats(win, &st);
        assert_int_equal(st.late_readings, 1);
        ts_window_free(win);
        ts_seqsets_free(&hot);
        free(res.state);
        ts_lake_close(lake);
    }
    fixture_free(&fx);
}

int main(int argc, char **argv)
{
    ts_log_level = TS_LOG_WARNING; /* the tool's progress lines: not here */
    if (argc > 1 && !strcmp(argv[1], "s3")) {
        char why[256] = "";
        s3_mode = true;
        if (ts_s3_credentials(env("TS_S3_KEY_ID_FILE"), env("TS_S3_SECRET_FILE"), key_id,
                              sizeof key_id, secret, sizeof secret, why, sizeof why) != TS_OK) {
            fprintf(stderr, "credentials: %s\n", why);
            return 2;
        }
        /* the object lake: stopped after every step, killed at random */
        const struct CMUnitTest s3[] = {
            cmocka_unit_test_setup_teardown(four_to_eight_stopped_anywhere, setup, teardown),
            cmocka_unit_test_setup_teardown(killed_at_random_moments, setup, teardown),
            cmocka_unit_test_setup_teardown(another_host_is_refused, setup, teardown),
        };
        return cmocka_run_group_tests_name("test_repartition s3", s3, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fate_and_sources),
        cmocka_unit_test(windows_union_closes_what_any_closed),
        cmocka_unit_test_setup_teardown(four_to_eight_stopped_anywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(four_to_six_stopped_anywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(killed_at_random_moments, setup, teardown),
        cmocka_unit_test_setup_teardown(refusals_change_nothing_that_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(later_readings_of_flushed_windows_are_late, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
