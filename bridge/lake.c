/* SPDX-License-Identifier: Apache-2.0 */
/* lake.c - the data lake writer (lake.h; docs/lake.md has the protocol and
 * why each step comes where it does). This file decides what is done when;
 * every file operation goes through a store (lake_store.h) on paths
 * relative to the root. Temporaries carry this writer's tag
 * (<owner>-<pid>-<random>), so two writers of one partition never write the
 * same file, and the checkpoint records the tag, so recovery knows which
 * temporaries it names. */
#include "lake.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "err.h"
#include "log.h"
#include "lake_store.h"
#include "reading.h"

#define MAGIC "ts-lake-checkpoint 1"
#define GEN_MAX 999999999999ULL /* 12 digits */
#define TOPIC_MAX 249           /* Kafka's limit */
#define NAME_MAX_LEN 64         /* table, owner */
#define PATH_LEN LAKE_PATH_LEN  /* every relative path built here fits (bounds above) */
#define CRC_LINE 15             /* "crc32 xxxxxxxx\n" */
#define SEQ_MAX 999999999U      /* files of one (date, late) in one generation: at most 9
                                   digits, so a name's last 12-digit group is its generation */
#define HEADER "CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n"

struct pending { /* one data file of the next generation */
    char date[11];  /* YYYY-MM-DD */
    bool late;
    uint32_t seq;   /* 0: ...-<gen>.csv.gz, else ...-<gen>-<seq>.csv.gz */
    int fd;         /* the gzFile's (gzclose closes it); -1 once finished */
    gzFile gz;      /* NULL once finished: complete, fsynced and closed */
    uint64_t used;  /* when it last got a row (lake->tick) */
    uint64_t rows, entries, exits;
};

struct stray { /* a temporary of a later generation, found at open */
    uint64_t gen;
    char *path;     /* relative to the root */
};

struct ts_lake {
    char table[NAME_MAX_LEN + 1], owner[NAME_MAX_LEN + 1], topic[TOPIC_MAX + 1];
    int32_t partition;
    bool row_number;
    int level, keep;
    char tag[NAME_MAX_LEN + 32]; /* this writer's part of temporary names */
    char mdir[NAME_MAX_LEN + TOPIC_MAX + 24]; /* <table>/_manifest/<topic>-<partition> */
    const struct ts_lake_store *st; /* where the files live (lake_store.h) */
    void *sd;                    /* its data, this lake's alone; NULL until open */
    uint64_t generation;         /* of the last checkpoint */
    int64_t offset_next;
    bool dead;                   /* a commit failed or lost: only close is left */
    int write_err;               /* a write failed: sticky until discard */
    struct pending *files;       /* the next generation's files, in creation order */
    size_t nfiles, cap;
    size_t *open;                /* indexes into files of those still open */
    size_t nopen, max_open;
    size_t max_files;            /* ts_lake_commit_due from this many files */
    uint64_t tick;
    uint64_t pending_rows;
    struct stray *strays;
    size_t nstrays;
};

/* ---- names ---- */

/* The partition key of the date directories. Not "date": Hive, Spark, Trino
 * and DuckDB compare names without case, and the files have a DATE column
 * (docs/lake.md, "Layout"). Bridges before it wrote "date=": recovery still
 * reads checkpoints naming such files, rolls them forward where they are and
 * sweeps those directories too (LEGACY_KEY). */
#define PART_KEY "event_date"
#define LEGACY_KEY "date"

/* <table>/<key>=<date>/<part|late>-<topic>-<p>-<gen>[-<seq>].csv.gz (seq 0:
 * without), or its temporary .<that name>.<tag>.tmp when tag is not NULL;
 * key PART_KEY, or LEGACY_KEY for files an older bridge named. */
static void data_path_key(const struct ts_lake *l, char *buf, bool legacy, const char *date,
                          bool late, uint64_t gen, uint32_t seq, const char *tag)
{
    char s[16] = "";
    if (seq)
        snprintf(s, sizeof s, "-%" PRIu32, seq);
    snprintf(buf, PATH_LEN, "%s/%s=%s/%s%s-%s-%" PRId32 "-%012" PRIu64 "%s.csv.gz%s%s%s",
             l->table, legacy ? LEGACY_KEY : PART_KEY, date, tag ? "." : "",
             late ? "late" : "part", l->topic, l->partition, gen, s, tag ? "." : "",
             tag ? tag : "", tag ? ".tmp" : "");
}

static void data_path(const struct ts_lake *l, char *buf, const char *date, bool late,
                      uint64_t gen, uint32_t seq, const char *tag)
{
    data_path_key(l, buf, false, date, late, gen, seq, tag);
}

/* Exactly 12 digits at s, not all zero. */
static bool gen12(const char *s, uint64_t *gen)
{
    uint64_t v = 0;
    for (int i = 0; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *gen = v;
    return v > 0;
}

/* At s: nothing (seq 0), or "-<seq>" with seq 1..SEQ_MAX without leading
 * zeros. Returns what follows, NULL if it is neither. */
static const char *seq_part(const char *s, uint32_t *seq)
{
    uint32_t v = 0;
    *seq = 0;
    if (*s != '-')
        return s;
    if (*++s < '1' || *s > '9')
        return NULL;
    for (int i = 0; *s >= '0' && *s <= '9'; s++, i++) {
        if (i == 9)
            return NULL;
        v = v * 10 + (uint32_t)(*s - '0');
    }
    *seq = v;
    return s;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* This partition's data temporary:
 * .<part|late>-<topic>-<p>-<gen>[-<seq>].csv.gz.<tag>.tmp */
static bool data_temp_name(const struct ts_lake *l, const char *name, uint64_t *gen)
{
    char prefix[TOPIC_MAX + 32];
    uint32_t seq;
    int n = snprintf(prefix, sizeof prefix, "-%s-%" PRId32 "-", l->topic, l->partition);
    if (name[0] != '.' || (strncmp(name + 1, "part", 4) && strncmp(name + 1, "late", 4)) ||
        strncmp(name + 5, prefix, (size_t)n))
        return false;
    name += 5 + n;
    if (!gen12(name, gen))
        return false;
    const char *rest = seq_part(name + 12, &seq);
    return rest && strncmp(rest, ".csv.gz.", 8) == 0 && ends_with(rest, ".tmp");
}

/* ---- the checkpoint record ---- */

/* The record in *text (malloc'ed; *len bytes). */
static int build_checkpoint(const struct ts_lake *l, uint64_t gen, int64_t offset_next,
                            const char *state, size_t state_len, char **text, size_t *len)
{
    struct timespec now;
    char path[PATH_LEN];
    FILE *f = open_memstream(text, len);

    if (!f)
        return TS_ENOMEM;
    clock_gettime(CLOCK_REALTIME, &now);
    fprintf(f, MAGIC "\ntopic %s\npartition %" PRId32 "\ngeneration %" PRIu64 "\nowner %s\n"
            "writer %s\ncreated_ms %" PRId64 "\noffset_from %" PRId64 "\noffset_next %" PRId64 "\n",
            l->topic, l->partition, gen, l->owner, l->tag,
            (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, l->offset_next, offset_next);
    for (size_t i = 0; i < l->nfiles; i++) {
        const struct pending *p = &l->files[i];
        data_path(l, path, p->date, p->late, gen, p->seq, NULL);
        fprintf(f, "file %s rows %" PRIu64 " entries %" PRIu64 " exits %" PRIu64 " late %d\n",
                path, p->rows, p->entries, p->exits, p->late);
    }
    fprintf(f, "state %zu\n", state_len);
    if (state_len)
        fwrite(state, 1, state_len, f);
    fputc('\n', f);
    int bad = fflush(f) != 0 || ferror(f);
    if (!bad)
        fprintf(f, "crc32 %08lx\n", crc32_z(0, (const Bytef *)*text, *len));
    bad |= fclose(f) != 0;
    if (bad) {
        free(*text);
        *text = NULL;
        return TS_ENOMEM;
    }
    return TS_OK;
}

struct named { /* a data file a checkpoint names */
    char date[11];
    bool legacy; /* under LEGACY_KEY=: written by a bridge of before PART_KEY */
    bool late;
    uint32_t seq;
};

struct checkpoint {
    int64_t offset_next;
    char writer[NAME_MAX_LEN + 32];
    struct named *files;
    size_t nfiles;
    const char *state; /* into the text */
    size_t state_len;
};

/* A file line's path, checked against the name this partition and
 * generation would give it. */
static bool named_ok(const struct ts_lake *l, uint64_t gen, const char *path, int late,
                     struct named *f)
{
    char expect[PATH_LEN];
    size_t tl = strlen(l->table), kl;
    if (strlen(path) < tl + 1 || path[tl] != '/' || late < 0 || late > 1)
        return false;
    if (!strncmp(path + tl + 1, PART_KEY "=", sizeof PART_KEY))
        f->legacy = false, kl = sizeof PART_KEY;
    else if (!strncmp(path + tl + 1, LEGACY_KEY "=", sizeof LEGACY_KEY))
        f->legacy = true, kl = sizeof LEGACY_KEY;
    else
        return false;
    if (strlen(path) < tl + 1 + kl + 10)
        return false;
    memcpy(f->date, path + tl + 1 + kl, 10);
    f->date[10] = '\0';
    f->late = late;
    if (strchr(f->date, '/'))
        return false;
    /* the name without a seq up to ".csv.gz", then "" or "-<seq>" */
    data_path_key(l, expect, f->legacy, f->date, f->late, gen, 0, NULL);
    size_t base = strlen(expect) - 7;
    const char *rest = strncmp(path, expect, base) ? NULL : seq_part(path + base, &f->seq);
    if (!rest || strcmp(rest, ".csv.gz"))
        return false;
    data_path_key(l, expect, f->legacy, f->date, f->late, gen, f->seq, NULL);
    return strcmp(path, expect) == 0;
}

/* Checks the crc, then parses the lines (lenient about spaces: the crc
 * guards against damage). text[len] must be writable: the header is
 * NUL-terminated in place. c->state points into text. */
static int parse_checkpoint(const struct ts_lake *l, uint64_t gen, char *text, size_t len,
                            struct checkpoint *c, const char **what)
{
    char topic[TOPIC_MAX + 1], path[PATH_LEN];
    unsigned long crc;
    uint64_t g, rows, sums[2];
    int64_t skip;
    int32_t part;
    int late, n = 0;

    *c = (struct checkpoint){0};
    *what = "truncated (no crc32 line)";
    text[len] = '\0';
    if (len < CRC_LINE + 1 || sscanf(text + len - CRC_LINE, "crc32 %8lx%n", &crc, &n) != 1 ||
        n != CRC_LINE - 1 || text[len - 1] != '\n')
        return TS_EPARSE;
    char *end = text + len - CRC_LINE;
    *what = "crc32 mismatch";
    if (crc != crc32_z(0, (const Bytef *)text, (size_t)(end - text)))
        return TS_EPARSE;

    /* the header is the lines before the first "state" line */
    *what = "bad header";
    char *st = text;
    while (st < end && strncmp(st, "state ", 6)) {
        char *nl = memchr(st, '\n', (size_t)(end - st));
        if (!nl)
            return TS_EPARSE;
        st = nl + 1;
    }
    n = 0;
    if (st == end || sscanf(st, "state %zu%n", &c->state_len, &n) != 1 || st[n] != '\n')
        return TS_EPARSE;
    c->state = st + n + 1; /* then the state, '\n', the crc line */
    if (c->state >= end || c->state_len != (size_t)(end - c->state) - 1 || end[-1] != '\n')
        return TS_EPARSE;
    *st = '\0';
    n = 0;
    if (sscanf(text, MAGIC "\ntopic %249s\npartition %" SCNd32 "\ngeneration %" SCNu64
               "\nowner %*s\nwriter %95s\ncreated_ms %" SCNd64 "\noffset_from %" SCNd64
               "\noffset_next %" SCNd64 "%n", topic, &part, &g, c->writer, &skip, &skip,
               &c->offset_next, &n) != 7 || !n)
        return TS_EPARSE;
    if (strcmp(topic, l->topic) || part != l->partition || g != gen) {
        *what = "not this partition's or generation's";
        return TS_EPARSE;
    }
    if (!ts_id_ok(c->writer) || c->offset_next < -1)
        return TS_EPARSE;
    size_t cap = 0;
    for (char *p = text + n; strcmp(p, "\n"); p += n) {
        n = 0;
        *what = "bad file line";
        if (sscanf(p, "\nfile %639s rows %" SCNu64 " entries %" SCNu64 " exits %" SCNu64
                   " late %d%n", path, &rows, &sums[0], &sums[1], &late, &n) != 5 || !n)
            return TS_EPARSE;
        if (c->nfiles == cap) {
            cap = cap ? cap * 2 : 8;
            struct named *f = realloc(c->files, cap * sizeof *f);
            if (!f)
                return TS_ENOMEM;
            c->files = f;
        }
        if (!named_ok(l, gen, path, late, &c->files[c->nfiles++]))
            return TS_EPARSE;
    }
    return TS_OK;
}

/* ---- recovery ---- */

/* A checkpoint's name: <12 digits>.ckpt */
static bool ckpt_name(const char *name, uint64_t *g)
{
    return strlen(name) == 17 && gen12(name, g) && !strcmp(name + 12, ".ckpt");
}

static int highest(void *arg, const char *name)
{
    uint64_t g, *latest = arg;
    if (ckpt_name(name, &g) && g > *latest)
        *latest = g;
    return TS_OK;
}

/* The highest generation with a checkpoint in the manifest, 0 if none. */
static int latest_generation(const struct ts_lake *l, uint64_t *latest)
{
    *latest = 0;
    return l->st->list(l->sd, l->mdir, highest, latest);
}

/* Renames the temporaries the checkpoint names to their final names; TS_EPARSE
 * (nothing renamed) if one is missing under both names. */
static int roll_forward(struct ts_lake *l, uint64_t gen, const struct checkpoint *c,
                        unsigned *renamed, char *why, size_t why_size)
{
    char fin[PATH_LEN], tmp[PATH_LEN];
    for (int pass = 0; pass < 2; pass++) { /* check everything, then rename */
        for (size_t i = 0; i < c->nfiles; i++) {
            const struct named *f = &c->files[i];
            /* an older bridge's file may since have been moved to PART_KEY= (docs/lake.md,
             * "Upgrading from date= directories"); its temporary is where it wrote it */
            data_path(l, fin, f->date, f->late, gen, f->seq, NULL);
            if (f->legacy && l->st->exists(l->sd, fin))
                continue;
            data_path_key(l, fin, f->legacy, f->date, f->late, gen, f->seq, NULL);
            data_path_key(l, tmp, f->legacy, f->date, f->late, gen, f->seq, c->writer);
            if (l->st->exists(l->sd, fin))
                continue;
            if (pass == 0 && !l->st->exists(l->sd, tmp)) {
                if (errno != ENOENT && errno != ENOTDIR) { /* could not tell: no damage */
                    ts_why(why, why_size, "checking %s: %s", tmp, strerror(errno));
                    return TS_ESYS;
                }
                ts_why(why, why_size, "checkpoint %012" PRIu64 " names %s, which is missing", gen,
                       fin);
                return TS_EPARSE;
            }
            if (pass == 1) {
                /* ENOENT with the final name there: its writer renamed it meanwhile */
                if (l->st->rename(l->sd, tmp, fin) &&
                    (errno != ENOENT || !l->st->exists(l->sd, fin))) {
                    ts_why(why, why_size, "rename %s: %s", tmp, strerror(errno));
                    return TS_ESYS;
                }
                (*renamed)++;
                snprintf(tmp, sizeof tmp, "%s/%s=%s", l->table,
                         f->legacy ? LEGACY_KEY : PART_KEY, f->date);
                if (l->st->sync_dir(l->sd, tmp)) {
                    ts_why(why, why_size, "fsync %s: %s", tmp, strerror(errno));
                    return TS_ESYS;
                }
            }
        }
    }
    return TS_OK;
}

/* Deletes (gen <= latest) or remembers (later) one stray temporary. */
static int stray(struct ts_lake *l, const char *dir, const char *name, uint64_t gen,
                 uint64_t latest, unsigned *removed)
{
    char path[PATH_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (gen <= latest) {
        if (l->st->remove(l->sd, path) && errno != ENOENT)
            return TS_ESYS;
        (*removed)++;
        return TS_OK;
    }
    struct stray *s = realloc(l->strays, (l->nstrays + 1) * sizeof *s);
    if (!s)
        return TS_ENOMEM;
    l->strays = s;
    s += l->nstrays;
    if (!(s->path = strdup(path)))
        return TS_ENOMEM;
    s->gen = gen;
    l->nstrays++;
    return TS_OK;
}

struct sweeping {
    struct ts_lake *l;
    const char *dir;
    bool manifest;
    uint64_t latest;
    unsigned *removed;
};

/* One name of a directory being swept: this partition's checkpoint
 * temporary (.tmp-<gen>-<tag>) in the manifest, data temporary in a date
 * directory. */
static int sweep_name(void *arg, const char *name)
{
    struct sweeping *w = arg;
    uint64_t gen;
    bool match = w->manifest ? !strncmp(name, ".tmp-", 5) && gen12(name + 5, &gen) &&
                                   name[17] == '-'
                             : data_temp_name(w->l, name, &gen);
    return match ? stray(w->l, w->dir, name, gen, w->latest, w->removed) : TS_OK;
}

/* A name of the table's directory: a date directory is swept (an older
 * bridge's temporaries are in LEGACY_KEY= directories). */
static int sweep_date_dir(void *arg, const char *name)
{
    const struct sweeping *w = arg;
    char dir[PATH_LEN];
    if ((strncmp(name, PART_KEY "=", sizeof PART_KEY) || strlen(name) != sizeof PART_KEY + 10) &&
        (strncmp(name, LEGACY_KEY "=", sizeof LEGACY_KEY) ||
         strlen(name) != sizeof LEGACY_KEY + 10))
        return TS_OK;
    snprintf(dir, sizeof dir, "%s/%s", w->l->table, name);
    struct sweeping in = {w->l, dir, false, w->latest, w->removed};
    int err = w->l->st->list(w->l->sd, dir, sweep_name, &in);
    return err == TS_ESYS && (errno == ENOENT || errno == ENOTDIR) ? TS_OK : err;
}

static int sweep(struct ts_lake *l, uint64_t latest, unsigned *removed, char *why,
                 size_t why_size)
{
    struct sweeping w = {l, l->mdir, true, latest, removed};
    int err = l->st->list(l->sd, l->mdir, sweep_name, &w);
    if (!err)
        err = l->st->list(l->sd, l->table, sweep_date_dir, &w);
    if (err == TS_ESYS)
        ts_why(why, why_size, "removing temporaries under %s: %s", l->table, strerror(errno));
    return err;
}

static int recover(struct ts_lake *l, struct ts_lake_resume *resume, char *why, size_t why_size)
{
    uint64_t latest = 0;
    char name[32], path[PATH_LEN];
    char *text = NULL;
    size_t len = 0;
    int err = TS_OK;

    /* a writer may prune the checkpoint found between listing and reading it */
    for (int attempt = 0; attempt < 3; attempt++) {
        if (latest_generation(l, &latest)) {
            ts_why(why, why_size, "listing %s: %s", l->mdir, strerror(errno));
            return TS_ESYS;
        }
        if (latest == 0)
            break;
        snprintf(name, sizeof name, "%012" PRIu64 ".ckpt", latest);
        snprintf(path, sizeof path, "%s/%s", l->mdir, name);
        err = l->st->read(l->sd, path, &text, &len);
        if (err != TS_ESYS || errno != ENOENT)
            break;
    }
    if (err) {
        ts_why(why, why_size, "reading %s/%s: %s", l->mdir, name, strerror(errno));
        return err;
    }
    if (latest) {
        struct checkpoint c;
        const char *what;
        err = parse_checkpoint(l, latest, text, len, &c, &what);
        if (err == TS_EPARSE)
            ts_why(why, why_size, "%s/%s: %s", l->mdir, name, what);
        if (!err)
            err = roll_forward(l, latest, &c, &resume->rolled_forward, why, why_size);
        if (!err) {
            l->offset_next = c.offset_next;
            resume->state_len = c.state_len;
            resume->state = malloc(c.state_len + 1); /* NUL-terminated for text states */
            if (resume->state) {
                memcpy(resume->state, c.state, c.state_len);
                resume->state[c.state_len] = '\0';
            } else {
                err = TS_ENOMEM;
            }
        }
        free(c.files);
        free(text);
        if (err)
            return err;
    }
    l->generation = latest;
    err = sweep(l, latest, &resume->removed_temporaries, why, why_size);
    if (err)
        return err;
    resume->generation = latest;
    resume->offset_next = l->offset_next;
    if (resume->rolled_forward || resume->removed_temporaries)
        TS_LOG(TS_LOG_NOTICE, "lake %s: checkpoint %012" PRIu64 " rolled forward (%u files), %u "
               "temporaries removed", l->mdir, latest, resume->rolled_forward,
               resume->removed_temporaries);
    return TS_OK;
}

/* ---- the API ---- */

static bool name_ok(const char *s, size_t max)
{
    return s && strnlen(s, max + 1) <= max && ts_id_ok(s);
}

static int check_cfg(const struct ts_lake_cfg *cfg, const char *topic, int32_t partition,
                     char *why, size_t why_size)
{
    const char *bad = NULL;
    if (!cfg || !cfg->root || !*cfg->root || strlen(cfg->root) >= PATH_MAX - PATH_LEN)
        bad = "root: must be a directory path";
    else if (!name_ok(cfg->table, NAME_MAX_LEN) || cfg->table[0] == '.' || cfg->table[0] == '_')
        bad = "table: 1 to 64 of [A-Za-z0-9._-], not starting with '.' or '_'";
    else if (!name_ok(cfg->owner, NAME_MAX_LEN))
        bad = "owner: 1 to 64 of [A-Za-z0-9._-]";
    else if (cfg->compression_level < 1 || cfg->compression_level > 9)
        bad = "compression level: 1 to 9";
    else if (cfg->keep_checkpoints < 1)
        bad = "checkpoints to keep: at least 1";
    else if (cfg->max_open_files < 1)
        bad = "max open files: at least 1";
    else if (cfg->max_checkpoint_files < 1)
        bad = "max checkpoint files: at least 1";
    else if (!name_ok(topic, TOPIC_MAX))
        bad = "topic: 1 to 249 of [A-Za-z0-9._-]";
    else if (partition < 0)
        bad = "partition: must be >= 0";
    if (!bad)
        return TS_OK;
    ts_why(why, why_size, "lake %s", bad);
    return TS_EINVAL;
}

/* st NULL: the POSIX store on cfg->root. Else sd is st's, taken over in
 * every case. */
static int lake_open(const struct ts_lake_cfg *cfg, const char *topic, int32_t partition,
                     const struct ts_lake_store *st, void *sd, struct ts_lake **out,
                     struct ts_lake_resume *resume, char *why, size_t why_size)
{
    uint32_t rnd;

    if (resume)
        *resume = (struct ts_lake_resume){.offset_next = -1};
    if (out)
        *out = NULL;
    int err = TS_EINVAL;
    if (!out || !resume)
        ts_why(why, why_size, "lake: out and resume are required");
    else
        err = check_cfg(cfg, topic, partition, why, why_size);
    struct ts_lake *l = err ? NULL : calloc(1, sizeof *l);
    if (!l) {
        if (st)
            st->close(sd);
        return err ? err : TS_ENOMEM;
    }
    strcpy(l->table, cfg->table);
    strcpy(l->owner, cfg->owner);
    strcpy(l->topic, topic);
    l->partition = partition;
    l->row_number = cfg->row_number;
    l->level = cfg->compression_level;
    l->keep = cfg->keep_checkpoints;
    l->max_open = (size_t)cfg->max_open_files;
    l->max_files = (size_t)cfg->max_checkpoint_files;
    if (st) {
        l->st = st;
        l->sd = sd;
    }
    if (!(l->open = calloc(l->max_open, sizeof *l->open))) {
        ts_lake_close(l);
        return TS_ENOMEM;
    }
    l->offset_next = -1;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rnd = (uint32_t)ts.tv_nsec ^ (uint32_t)(uintptr_t)l;
    }
    snprintf(l->tag, sizeof l->tag, "%s-%ld-%08" PRIx32, l->owner, (long)getpid(), rnd);
    snprintf(l->mdir, sizeof l->mdir, "%s/_manifest/%s-%" PRId32, l->table, topic, partition);

    if (!st) {
        l->st = &ts_lake_posix;
        err = ts_lake_posix_open(cfg->root, l->table, l->mdir, &l->sd, why, why_size);
    }
    if (!err && l->st->side_open && (err = l->st->side_open(l->sd, l->mdir)) != TS_OK)
        ts_why(why, why_size, "lake: the local directory of %s's side files: %s", l->mdir,
               strerror(errno));
    if (!err)
        err = recover(l, resume, why, why_size);
    if (err) {
        int saved = errno;
        free(resume->state);
        *resume = (struct ts_lake_resume){.offset_next = -1};
        ts_lake_close(l);
        errno = saved;
        if (err == TS_ENOMEM)
            ts_why(why, why_size, "lake: out of memory");
        return err;
    }
    *out = l;
    return TS_OK;
}

int ts_lake_open(const struct ts_lake_cfg *cfg, const char *topic, int32_t partition,
                 struct ts_lake **out, struct ts_lake_resume *resume, char *why, size_t why_size)
{
    return lake_open(cfg, topic, partition, NULL, NULL, out, resume, why, why_size);
}

int ts_lake_open_store(const struct ts_lake_cfg *cfg, const char *topic, int32_t partition,
                       const struct ts_lake_store *st, void *sd, struct ts_lake **out,
                       struct ts_lake_resume *resume, char *why, size_t why_size)
{
    if (!st) {
        ts_why(why, why_size, "lake: no store");
        if (resume)
            *resume = (struct ts_lake_resume){.offset_next = -1};
        if (out)
            *out = NULL;
        return TS_EINVAL;
    }
    return lake_open(cfg, topic, partition, st, sd, out, resume, why, why_size);
}

static bool us_date(const char *d, char iso[11])
{
    for (int i = 0; i < 10; i++)
        if ((i == 2 || i == 5) ? d[i] != '/' : (d[i] < '0' || d[i] > '9'))
            return false;
    int month = (d[0] - '0') * 10 + d[1] - '0', day = (d[3] - '0') * 10 + d[4] - '0';
    if (d[10] || month < 1 || month > 12 || day < 1 || day > 31)
        return false;
    /* YYYY-MM-DD by hand: once a row, and snprintf cost a row's line */
    memcpy(iso, d + 6, 4);
    iso[4] = '-';
    memcpy(iso + 5, d, 2);
    iso[7] = '-';
    memcpy(iso + 8, d + 3, 2);
    iso[10] = '\0';
    return true;
}

static bool row_ok(const struct ts_window_row *r)
{
    const char *f[] = {r->ca, r->unit, r->scp, r->station, r->linename, r->division, r->desc};
    const size_t size[] = {sizeof r->ca, sizeof r->unit, sizeof r->scp, sizeof r->station,
                           sizeof r->linename, sizeof r->division, sizeof r->desc};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (strnlen(f[i], size[i]) == size[i] || !ts_field_ok(f[i]))
            return false;
    for (int i = 0; i < 8; i++)
        if ((i == 2 || i == 5) ? r->time[i] != ':' : (r->time[i] < '0' || r->time[i] > '9'))
            return false;
    return r->time[8] == '\0';
}

static int gz_put(gzFile gz, const char *s, size_t n)
{
    int zerr;
    if (gzwrite(gz, s, (unsigned)n) == (int)n)
        return TS_OK;
    gzerror(gz, &zerr);
    if (zerr == Z_MEM_ERROR)
        return TS_ENOMEM;
    if (zerr != Z_ERRNO)
        errno = EIO;
    return TS_ESYS;
}

/* Step 1 for one file, also done early to keep within max_open_files:
 * the gzip stream completed, the data made durable (the store's seal: an
 * fsync on POSIX), the fd closed. The gzFile owns the fd, so a dup of it
 * outlives gzclose for the seal. The file stays pending (its rows are
 * counted); only ts_lake_commit publishes it. */
static int finish_file(struct ts_lake *l, size_t slot)
{
    char tmp[PATH_LEN];
    struct pending *f = &l->files[l->open[slot]];
    int err = TS_OK, fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0), dup_errno = errno;
    int zrc = gzclose(f->gz);
    f->gz = NULL;
    f->fd = -1;
    l->open[slot] = l->open[--l->nopen];
    if (zrc != Z_OK) {
        if (zrc != Z_ERRNO)
            errno = zrc == Z_MEM_ERROR ? ENOMEM : EIO;
        err = TS_ESYS;
    } else if (fd < 0) {
        errno = dup_errno;
        err = TS_ESYS;
    } else {
        data_path(l, tmp, f->date, f->late, l->generation + 1, f->seq, l->tag);
        err = l->st->seal(l->sd, tmp, fd);
        fd = -1; /* closed by seal */
    }
    int saved = errno;
    if (fd >= 0)
        close(fd);
    errno = saved;
    return err;
}

/* Creates the next temporary for (date, late) of the next generation: its
 * first, or the one after a file of that pair finished early. At the
 * bound, the open file that got a row least recently is finished first. */
static int add_pending(struct ts_lake *l, const char *date, bool late, struct pending **out)
{
    char dir[PATH_LEN], tmp[PATH_LEN], mode[8];
    uint32_t seq = 0;

    for (size_t i = l->nfiles; i-- > 0;) {
        if (l->files[i].late == late && !strcmp(l->files[i].date, date)) {
            if (l->files[i].seq == SEQ_MAX)
                return TS_EFULL; /* only if the caller ignores ts_lake_commit_due */
            seq = l->files[i].seq + 1;
            break;
        }
    }
    if (l->nfiles == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        struct pending *f = realloc(l->files, cap * sizeof *f);
        if (!f)
            return TS_ENOMEM;
        l->files = f;
        l->cap = cap;
    }
    if (l->nopen == l->max_open) {
        size_t lru = 0;
        for (size_t i = 1; i < l->nopen; i++)
            if (l->files[l->open[i]].used < l->files[l->open[lru]].used)
                lru = i;
        int err = finish_file(l, lru);
        if (err)
            return err;
    }
    snprintf(dir, sizeof dir, "%s/" PART_KEY "=%s", l->table, date);
    int fd, err = l->st->make_dir(l->sd, dir);
    if (err)
        return err;
    data_path(l, tmp, date, late, l->generation + 1, seq, l->tag);
    if ((err = l->st->create(l->sd, tmp, &fd)))
        return err;
    snprintf(mode, sizeof mode, "wb%d", l->level);
    gzFile gz = gzdopen(fd, mode);
    if (!gz) {
        int saved = errno;
        close(fd);
        l->st->remove(l->sd, tmp);
        errno = saved;
        return TS_ENOMEM;
    }
    gzbuffer(gz, 64 * 1024);
    struct pending *f = &l->files[l->nfiles];
    *f = (struct pending){.late = late, .seq = seq, .fd = fd, .gz = gz};
    memcpy(f->date, date, sizeof f->date);
    l->open[l->nopen++] = l->nfiles++;
    *out = f;
    return gz_put(gz, l->row_number ? "," HEADER : HEADER,
                  strlen(HEADER) + (l->row_number ? 1 : 0));
}

/* Any failure is sticky (a row the caller's state counts as written is not
 * in the files): later writes and commits return it until a discard. */
static int write_failed(struct ts_lake *l, int err)
{
    int saved = errno;
    if (!l->write_err)
        TS_LOG(TS_LOG_ERR, "lake %s: writing a row failed: %s%s%s", l->mdir, ts_strerror(err),
               err == TS_ESYS ? ": " : "", err == TS_ESYS ? strerror(saved) : "");
    l->write_err = err;
    errno = saved;
    return err;
}

/* v in decimal then end at out (at least 21 bytes); the bytes written. */
static int put_u64(char *out, uint64_t v, char end)
{
    char tmp[20];
    int n = 0, k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (k)
        out[n++] = tmp[--k];
    out[n++] = end;
    return n;
}

int ts_lake_write_row(struct ts_lake *l, const struct ts_window_row *row)
{
    char date[11], line[512];
    struct pending *f = NULL;
    int n = 0;

    if (l->dead)
        return TS_EINVAL;
    if (l->write_err)
        return l->write_err;
    if (!row_ok(row) || !us_date(row->date, date))
        return write_failed(l, TS_EINVAL);
    for (size_t i = 0; i < l->nopen && !f; i++) {
        struct pending *o = &l->files[l->open[i]];
        if (o->late == row->late && !strcmp(o->date, date))
            f = o;
    }
    if (!f) {
        int err = add_pending(l, date, row->late, &f);
        if (err)
            return write_failed(l, err);
    }
    /* [ROW,]CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS
     * by hand (snprintf was most of a row's cost): the names are at most
     * 15 + 15 + 15 + 63 + 31 + 15 + 15 bytes (row_ok), DATE 10, TIME 8, the
     * numbers 20 each: 292 bytes at most with the commas and the newline */
    const char *fields[] = {row->ca, row->unit, row->scp, row->station, row->linename,
                            row->division, row->date, row->time, row->desc};
    if (l->row_number)
        n = put_u64(line, f->rows, ',');
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        size_t len = strlen(fields[i]);
        memcpy(line + n, fields[i], len);
        n += (int)len;
        line[n++] = ',';
    }
    n += put_u64(line + n, row->entries, ',');
    n += put_u64(line + n, row->exits, '\n');
    int err = gz_put(f->gz, line, (size_t)n);
    if (err)
        return write_failed(l, err);
    f->used = ++l->tick;
    f->rows++;
    f->entries += row->entries;
    f->exits += row->exits;
    l->pending_rows++;
    return TS_OK;
}

uint64_t ts_lake_pending_rows(const struct ts_lake *l)
{
    return l->pending_rows;
}

bool ts_lake_commit_due(const struct ts_lake *l)
{
    return l->nfiles >= l->max_files;
}

int ts_lake_manifest_fd(const struct ts_lake *l)
{
    return l->st->manifest_fd(l->sd);
}

/* "<mdir>/<name>" for a side file's name (one segment, not "." or ".."). */
static int side_path(const struct ts_lake *l, const char *name, char *path, size_t size)
{
    if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return TS_EINVAL;
    int n = snprintf(path, size, "%s/%s", l->mdir, name);
    return n > 0 && (size_t)n < size ? TS_OK : TS_EINVAL;
}

int ts_lake_side_fetch(struct ts_lake *l, const char *name)
{
    char path[LAKE_PATH_LEN];
    if (!l->st->side_fetch)
        return TS_OK;
    int err = side_path(l, name, path, sizeof path);
    return err ? err : l->st->side_fetch(l->sd, path);
}

int ts_lake_side_publish(struct ts_lake *l, const char *name)
{
    char path[LAKE_PATH_LEN];
    if (!l->st->side_publish)
        return TS_OK;
    int err = side_path(l, name, path, sizeof path);
    return err ? err : l->st->side_publish(l->sd, path);
}

struct side_pruning {
    struct ts_lake *l;
    bool (*drop)(const char *name, void *ctx);
    void *ctx;
    unsigned removed;
};

static int side_prune_name(void *arg, const char *name)
{
    struct side_pruning *p = arg;
    char path[LAKE_PATH_LEN];
    if (p->drop(name, p->ctx) && side_path(p->l, name, path, sizeof path) == TS_OK &&
        p->l->st->remove(p->l->sd, path) == TS_OK)
        p->removed++;
    return 0;
}

unsigned ts_lake_side_prune(struct ts_lake *l, bool (*drop)(const char *name, void *ctx),
                            void *ctx)
{
    struct side_pruning p = {l, drop, ctx, 0};
    if (!l->st->side_fetch)
        return 0;
    l->st->list(l->sd, l->mdir, side_prune_name, &p);
    return p.removed;
}

const char *ts_lake_writer_tag(const struct ts_lake *l)
{
    return l->tag;
}

uint64_t ts_lake_generation(const struct ts_lake *l)
{
    return l->generation;
}

/* Closes what is open of the pending files; deletes them if unlink. */
static void drop_pending(struct ts_lake *l, bool unlink)
{
    char tmp[PATH_LEN];
    int saved = errno;
    for (size_t i = 0; i < l->nfiles; i++) {
        struct pending *f = &l->files[i];
        if (f->gz)
            gzclose(f->gz);
        if (unlink) {
            data_path(l, tmp, f->date, f->late, l->generation + 1, f->seq, l->tag);
            l->st->remove(l->sd, tmp);
        }
    }
    l->nfiles = 0;
    l->nopen = 0;
    l->pending_rows = 0;
    l->write_err = 0;
    errno = saved;
}

void ts_lake_discard(struct ts_lake *l)
{
    if (l)
        drop_pending(l, true);
}

static int by_date(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* fsync of each date directory of the pending files, once. */
static int sync_dirs(const struct ts_lake *l)
{
    char dir[PATH_LEN];
    const char **dates = malloc((l->nfiles ? l->nfiles : 1) * sizeof *dates);
    int err = TS_OK;

    if (!dates) {
        errno = ENOMEM;
        return TS_ESYS;
    }
    for (size_t i = 0; i < l->nfiles; i++)
        dates[i] = l->files[i].date;
    qsort(dates, l->nfiles, sizeof *dates, by_date);
    for (size_t i = 0; i < l->nfiles && !err; i++) {
        if (i && !strcmp(dates[i], dates[i - 1]))
            continue;
        snprintf(dir, sizeof dir, "%s/" PART_KEY "=%s", l->table, dates[i]);
        if (l->st->sync_dir(l->sd, dir))
            err = TS_ESYS;
    }
    int saved = errno;
    free(dates);
    errno = saved;
    return err;
}

/* Step 1: each data file complete and durable under its temporary name
 * (those finished early already are). */
static int finish_files(struct ts_lake *l)
{
    while (l->nopen) {
        int err = finish_file(l, l->nopen - 1);
        if (err)
            return err;
    }
    return sync_dirs(l);
}

/* Step 2: the checkpoint published if its name is free (put_new), then the
 * manifest made durable. *linked tells whether it was published (from then
 * on the commit can only be rolled forward). put_new refuses a generation
 * that exists, but not one another owner has committed and already pruned:
 * so a newer generation also means we lost (the latest is never pruned),
 * and ours is taken back before anything is made visible. */
static int publish(struct ts_lake *l, uint64_t gen, const char *text, size_t len, bool *linked)
{
    char tmp[PATH_LEN], fin[PATH_LEN];

    snprintf(tmp, sizeof tmp, "%s/.tmp-%012" PRIu64 "-%s", l->mdir, gen, l->tag);
    snprintf(fin, sizeof fin, "%s/%012" PRIu64 ".ckpt", l->mdir, gen);
    int err = l->st->put_new(l->sd, tmp, fin, text, len);
    if (err)
        return err;
    uint64_t latest;
    int rc = latest_generation(l, &latest);
    if (!rc && latest > gen) {
        l->st->remove(l->sd, fin);
        return TS_ECONFLICT;
    }
    *linked = true;
    return rc || l->st->sync_dir(l->sd, l->mdir) ? TS_ESYS : TS_OK;
}

/* Step 3: the data files under their final names, durably. */
static int make_visible(struct ts_lake *l, uint64_t gen)
{
    char tmp[PATH_LEN], fin[PATH_LEN];
    for (size_t i = 0; i < l->nfiles; i++) {
        const struct pending *f = &l->files[i];
        data_path(l, tmp, f->date, f->late, gen, f->seq, l->tag);
        data_path(l, fin, f->date, f->late, gen, f->seq, NULL);
        /* ENOENT with the final name there: a recovering ts_lake_open was faster */
        if (l->st->rename(l->sd, tmp, fin) && (errno != ENOENT || !l->st->exists(l->sd, fin)))
            return TS_ESYS;
    }
    return sync_dirs(l);
}

struct pruning {
    struct ts_lake *l;
    uint64_t upto;
};

static int prune_name(void *arg, const char *name)
{
    const struct pruning *p = arg;
    char path[PATH_LEN];
    uint64_t g;
    if (ckpt_name(name, &g) && g <= p->upto) {
        snprintf(path, sizeof path, "%s/%s", p->l->mdir, name);
        p->l->st->remove(p->l->sd, path);
    }
    return TS_OK;
}

/* Step 4: checkpoints older than the last keep, and the strays found at
 * open whose generation is now committed. Failures only leave garbage. */
static void prune(struct ts_lake *l, uint64_t gen)
{
    size_t kept = 0;

    if (gen > (uint64_t)l->keep) {
        struct pruning p = {l, gen - (uint64_t)l->keep};
        l->st->list(l->sd, l->mdir, prune_name, &p);
    }
    for (size_t i = 0; i < l->nstrays; i++) {
        struct stray *s = &l->strays[i];
        if (s->gen <= gen) {
            l->st->remove(l->sd, s->path);
            free(s->path);
        } else {
            l->strays[kept++] = *s;
        }
    }
    l->nstrays = kept;
}

int ts_lake_commit(struct ts_lake *l, int64_t offset_next, const char *state, size_t state_len,
                   struct ts_lake_commit_info *info)
{
    char *text = NULL;
    size_t len = 0;
    bool linked = false;
    uint64_t gen = l->generation + 1;
    unsigned files = (unsigned)l->nfiles;
    uint64_t rows = l->pending_rows;

    if (info)
        *info = (struct ts_lake_commit_info){0};
    if (l->dead || offset_next < -1 || (state_len && !state) || gen > GEN_MAX)
        return TS_EINVAL;
    if (l->write_err)
        return l->write_err;
    l->dead = true; /* until it succeeds */
    int err = finish_files(l);
    if (!err)
        err = build_checkpoint(l, gen, offset_next, state, state_len, &text, &len);
    if (!err)
        err = publish(l, gen, text, len, &linked);
    free(text);
    if (!err)
        err = make_visible(l, gen);
    int saved = errno;
    if (err == TS_ECONFLICT) {
        drop_pending(l, true);
        TS_LOG(TS_LOG_WARNING, "lake %s: checkpoint %012" PRIu64 " or a newer one exists: the "
               "partition has another owner", l->mdir, gen);
    } else if (err) {
        TS_LOG(TS_LOG_ERR, "lake %s: commit of %012" PRIu64 " failed %s the checkpoint: %s",
               l->mdir, gen, linked ? "after" : "before", strerror(errno));
    }
    if (linked) {
        drop_pending(l, false); /* they are the checkpoint's now */
        l->generation = gen;
    }
    errno = saved;
    if (err)
        return err;
    prune(l, gen);
    l->offset_next = offset_next;
    l->dead = false;
    if (info)
        *info = (struct ts_lake_commit_info){.generation = gen, .files = files, .rows = rows};
    return TS_OK;
}

void ts_lake_close(struct ts_lake *l)
{
    if (!l)
        return;
    int saved = errno;
    if (l->sd)
        drop_pending(l, true);
    for (size_t i = 0; i < l->nstrays; i++)
        free(l->strays[i].path);
    free(l->strays);
    free(l->files);
    free(l->open);
    if (l->sd)
        l->st->close(l->sd);
    free(l);
    errno = saved;
}
