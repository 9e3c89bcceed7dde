/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "reading.h"

struct parse_state {
    const struct ts_cfg_schema *schema;
    void *user;
    struct ts_cfg_file *file;
    const char *data;                     /* the whole file, len bytes */
    size_t len, pos;
    int line;
    const struct ts_cfg_section *section; /* current section kind */
    void *instance;                       /* current section's struct */
    size_t section_first;                 /* its header's index in file->origins */
    size_t n_sections;
    char section_text[256];
    bool *seen_singleton;
    bool skip;                            /* the current section's header was refused:
                                             its keys are ignored, not reported */
};

void ts_config_escape(char *dst, size_t size, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    if (size == 0)
        return;
    for (; *src; src++) {
        unsigned char c = (unsigned char)*src;
        bool plain = c >= 0x20 && c < 0x7f;
        if (n + (plain ? 1 : 4) >= size)
            break;
        if (plain) {
            dst[n++] = (char)c;
        } else {
            dst[n++] = '\\';
            dst[n++] = 'x';
            dst[n++] = hex[c >> 4];
            dst[n++] = hex[c & 15];
        }
    }
    dst[n] = '\0';
}

#define ERROR_TEXT_MAX 512 /* an error line, escaped */

/* Keeps one error line (escaped: no error line carries a raw byte from the
 * file), or counts it once TS_CFG_ERRORS_MAX are kept. */
static void record(struct ts_cfg_file *file, int line, const char *raw)
{
    char text[ERROR_TEXT_MAX];
    char *copy;

    if (file->n_errors == TS_CFG_ERRORS_MAX) {
        file->n_more++;
        return;
    }
    if (!file->errors && !(file->errors = calloc(TS_CFG_ERRORS_MAX, sizeof *file->errors))) {
        file->n_more++;
        return;
    }
    ts_config_escape(text, sizeof text, raw);
    if (!(copy = strdup(text))) {
        file->n_more++;
        return;
    }
    file->errors[file->n_errors++] = (struct ts_cfg_error){line, copy};
}

static void vrecord_at(struct ts_cfg_file *file, const char *path, int line, const char *fmt,
                       va_list ap) __attribute__((format(printf, 4, 0)));

static void vrecord_at(struct ts_cfg_file *file, const char *path, int line, const char *fmt,
                       va_list ap)
{
    char reason[ERROR_TEXT_MAX], raw[2 * ERROR_TEXT_MAX];

    if (file->n_errors == TS_CFG_ERRORS_MAX) { /* counted, not even formatted */
        file->n_more++;
        return;
    }
    vsnprintf(reason, sizeof reason, fmt, ap);
    if (line > 0)
        snprintf(raw, sizeof raw, "%s:%d: %s", path, line, reason);
    else
        snprintf(raw, sizeof raw, "%s: %s", path, reason);
    record(file, line, raw);
}

void ts_config_error_at(struct ts_cfg_file *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vrecord_at(file, file->path, line, fmt, ap);
    va_end(ap);
}

/* An error about the whole file, naming it as given (file->path may be cut). */
static void file_error(struct ts_cfg_file *file, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void file_error(struct ts_cfg_file *file, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vrecord_at(file, path, 0, fmt, ap);
    va_end(ap);
}

static void fail(struct parse_state *st, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An error on the current line, in the current section, about key (NULL:
 * about the section header). */
static void fail(struct parse_state *st, const char *key, const char *fmt, ...)
{
    char reason[ERROR_TEXT_MAX];
    va_list ap;

    if (st->file->n_errors == TS_CFG_ERRORS_MAX) { /* counted, not even formatted */
        st->file->n_more++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    ts_config_error_at(st->file, st->line, "%s%s%s%s%s%s", st->section_text[0] ? "[" : "",
                       st->section_text, st->section_text[0] ? "] " : "", key ? key : "",
                       key ? ": " : "", reason);
}

/* An error about the line itself, not about a key of the current section. */
static void fail_line(struct parse_state *st, const char *reason)
{
    ts_config_error_at(st->file, st->line, "%s", reason);
}

/* The current section's keys are ignored from here to the next header. */
static void skip_section(struct parse_state *st)
{
    st->section = NULL;
    st->instance = NULL;
    st->skip = true;
}

/* Section headers by instance: file->heads indexes them (common/hashtab,
 * at most TS_CFG_SECTIONS_MAX) so that a lookup costs a hash and a walk
 * over one section's keys. */
static uint64_t head_hash(const void *instance)
{
    return ts_hash_bytes(TS_HASH_INIT, &instance, sizeof instance);
}

struct head_key {
    const struct ts_cfg_file *file;
    const void *instance;
};

static bool same_instance(uintptr_t origin, const void *key)
{
    const struct head_key *k = key;
    return k->file->origins[origin].instance == k->instance;
}

static int add_origin(struct ts_cfg_file *file, const void *instance, const char *key, int line,
                      int bad)
{
    if (file->n_origins == file->cap_origins) {
        size_t cap = file->cap_origins ? file->cap_origins * 2 : 64;
        struct ts_cfg_origin *o = realloc(file->origins, cap * sizeof *o);
        if (!o)
            return TS_ENOMEM;
        file->origins = o;
        file->cap_origins = cap;
    }
    if (!key) { /* a header: index it (at most TS_CFG_SECTIONS_MAX of them) */
        int err = ts_hashtab_add(&file->heads, head_hash(instance), file->n_origins);
        if (err)
            return err; /* TS_EFULL cannot happen: the sections are bounded */
    }
    file->origins[file->n_origins++] = (struct ts_cfg_origin){instance, key, line, bad};
    return TS_OK;
}

/* Index of instance's header in file->origins, or n_origins if none. Its
 * keys follow it (no section is opened twice). */
static size_t find_head(const struct ts_cfg_file *file, const void *instance)
{
    uintptr_t i;
    return ts_hashtab_find(&file->heads, head_hash(instance), same_instance,
                           &(struct head_key){file, instance}, &i)
               ? i
               : file->n_origins;
}

static const struct ts_cfg_origin *find_origin(const struct ts_cfg_file *file,
                                               const void *instance, const char *key)
{
    size_t i = find_head(file, instance);
    if (i == file->n_origins || !key)
        return i == file->n_origins ? NULL : &file->origins[i];
    for (i++; i < file->n_origins && file->origins[i].key; i++)
        if (strcmp(key, file->origins[i].key) == 0)
            return &file->origins[i];
    return NULL;
}

int ts_config_line(const struct ts_cfg_file *file, const void *instance, const char *key)
{
    const struct ts_cfg_origin *o = find_origin(file, instance, key);
    return o ? o->line : 0;
}

int ts_config_bad(const struct ts_cfg_file *file, const void *instance, const char *key)
{
    const struct ts_cfg_origin *o = find_origin(file, instance, key);
    return o && o->bad;
}

static void verror(struct ts_cfg_file *file, int line, const char *section, const char *key,
                   const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void verror(struct ts_cfg_file *file, int line, const char *section, const char *key,
                   const char *fmt, va_list ap)
{
    char reason[ERROR_TEXT_MAX];

    vsnprintf(reason, sizeof reason, fmt, ap);
    ts_config_error_at(file, line, "[%s] %s%s%s", section, key ? key : "", key ? ": " : "", reason);
}

void ts_config_error(struct ts_cfg_file *file, const void *instance, const char *section,
                     const char *key, const char *fmt, ...)
{
    int line = key ? ts_config_line(file, instance, key) : 0;
    va_list ap;

    if (line == 0)
        line = ts_config_line(file, instance, NULL);
    va_start(ap, fmt);
    verror(file, line, section, key, fmt, ap);
    va_end(ap);
}

void ts_config_file_free(struct ts_cfg_file *file)
{
    if (!file)
        return;
    free(file->origins);
    for (size_t i = 0; i < file->n_errors; i++)
        free(file->errors[i].text);
    free(file->errors);
    ts_hashtab_free(&file->heads);
    file->origins = NULL;
    file->errors = NULL;
    file->n_origins = file->cap_origins = file->n_errors = file->n_more = 0;
}

/* Errors about the whole file (line 0) go after those about a line. */
static int sort_line(const struct ts_cfg_error *e)
{
    return e->line > 0 ? e->line : INT_MAX;
}

int ts_config_finish(struct ts_cfg_file *file, char *err, size_t errsize)
{
    /* insertion sort: stable (one line's errors keep their order), and n <= 100 */
    for (size_t i = 1; i < file->n_errors; i++) {
        struct ts_cfg_error e = file->errors[i];
        size_t j = i;
        for (; j > 0 && sort_line(&file->errors[j - 1]) > sort_line(&e); j--)
            file->errors[j] = file->errors[j - 1];
        file->errors[j] = e;
    }
    if (file->n_errors > 0) {
        if (errsize > 0)
            snprintf(err, errsize, "%s", file->errors[0].text);
        return TS_ECONFIG;
    }
    if (file->n_more > 0) {
        char path[ERROR_TEXT_MAX / 2];
        ts_config_escape(path, sizeof path, file->path);
        if (errsize > 0)
            snprintf(err, errsize, "%s: %zu errors (out of memory to show them)", path,
                     file->n_more);
        return TS_ECONFIG;
    }
    return TS_OK;
}

size_t ts_config_print_errors(const struct ts_cfg_file *file, const char *prog, FILE *out)
{
    size_t n = 0;

    for (; n < file->n_errors; n++)
        fprintf(out, "%s: %s\n", prog, file->errors[n].text);
    if (file->n_more > 0) {
        char path[ERROR_TEXT_MAX / 2];
        ts_config_escape(path, sizeof path, file->path);
        fprintf(out, "%s: %s: ... and %zu more error%s\n", prog, path, file->n_more,
                file->n_more == 1 ? "" : "s");
        n++;
    }
    return n;
}

/* --- suggestions ------------------------------------------------------------ */

#define CLOSE_MAX 48 /* longest word a suggestion is looked for (keys are shorter) */

static int fold(int c)
{
    return c == '-' ? '_' : tolower(c);
}

/* Edits from a to b: insert, delete, replace, swap of two neighbours (the
 * optimal string alignment distance), with case and '-'/'_' aside. Both
 * at most CLOSE_MAX characters. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t rows[3][CLOSE_MAX + 1];
    size_t *before = rows[0], *prev = rows[1], *cur = rows[2];

    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            int ai = fold((unsigned char)a[i - 1]), bj = fold((unsigned char)b[j - 1]);
            size_t d = prev[j - 1] + (ai != bj);
            if (prev[j] + 1 < d)
                d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            if (i > 1 && j > 1 && ai == fold((unsigned char)b[j - 2]) &&
                fold((unsigned char)a[i - 2]) == bj && before[j - 2] + 1 < d)
                d = before[j - 2] + 1;
            cur[j] = d;
        }
        size_t *t = before;
        before = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

/* The closest of n names (the first `const char *` of each element of
 * table, stride bytes apart) to word, within a few edits for word's length
 * (1 up to 5 characters, 2 up to 10, else 3; none under 3 characters); NULL
 * if none is that close. The first of equally close names wins. */
static const char *closest(const char *word, const void *table, size_t n, size_t stride)
{
    size_t lw = strlen(word), best = SIZE_MAX;
    size_t limit = lw < 3 ? 0 : lw <= 5 ? 1 : lw <= 10 ? 2 : 3;
    const char *found = NULL;

    if (limit == 0 || lw > CLOSE_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *name = *(const char *const *)((const char *)table + i * stride);
        size_t ln = strlen(name);
        if (ln > CLOSE_MAX || (ln > lw ? ln - lw : lw - ln) > limit)
            continue;
        size_t d = edit_distance(word, lw, name, ln);
        if (d <= limit && d < best) {
            best = d;
            found = name;
        }
    }
    return found;
}

/* --- values --------------------------------------------------------------- */

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, 1;
        if (strcasecmp(v, no[i]) == 0)
            return *out = false, 1;
    }
    return 0;
}

/* An integer: decimal, or hexadecimal after "0x" (a register address as a
 * device manual gives it); never octal, so "010" is ten. The whole text must
 * be the number: no blanks, no trailing characters. 1 if it is one. */
static int parse_integer(const char *text, long long *out)
{
    const char *digits = text + (*text == '-' || *text == '+');
    int base = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X') ? 16 : 10;
    char *end;

    if (base == 16 ? !isxdigit((unsigned char)digits[2]) : !isdigit((unsigned char)digits[0]))
        return 0; /* also refuses "", "-", "0x", a blank or a second sign */
    errno = 0;
    *out = strtoll(text, &end, base);
    return errno == 0 && end != text && *end == '\0';
}

/* Stores value into instance per key. Returns NULL or a reason. */
static const char *set_value(const struct ts_cfg_key *k, void *instance, const char *value,
                             char *why, size_t whysize)
{
    char *dst = (char *)instance + k->offset;
    char *end;

    if (strstr(value, " #") || strstr(value, "\t#"))
        return "holds ' #': inline comments start with ';' (a '#' comments whole lines only)";

    switch (k->type) {
    case TS_CFG_STRING:
    case TS_CFG_FIELD:
    case TS_CFG_ID:
        if (strlen(value) >= k->size) {
            snprintf(why, whysize, "longer than %zu characters", k->size - 1);
            return why;
        }
        for (const char *c = value; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                return "holds a control character";
        if (k->type == TS_CFG_FIELD && !ts_field_ok(value)) {
            snprintf(why, whysize, "%s (a name is a CSV field: no comma, double quote or "
                     "control character)", ts_field_why(value));
            return why;
        }
        if (k->type == TS_CFG_ID && !ts_id_ok(value))
            return "may hold only letters, digits, '.', '_' and '-'";
        strcpy(dst, value);
        return NULL;
    case TS_CFG_INT:
    case TS_CFG_INT64: {
        long long v;
        if (!parse_integer(value, &v)) {
            snprintf(why, whysize, "'%s' is not an integer", value);
            return why;
        }
        /* the tables keep INT ranges within int and INT64 ranges below 2^53
         * (exact as doubles); the int bounds guard against a table mistake */
        if ((double)v < k->min || (double)v > k->max ||
            (k->type == TS_CFG_INT && (v < INT_MIN || v > INT_MAX))) {
            snprintf(why, whysize, "%lld is out of range [%.0f, %.0f]", v, k->min, k->max);
            return why;
        }
        if (k->type == TS_CFG_INT)
            *(int *)dst = (int)v; /* the range fits an int: the tables say so */
        else
            *(int64_t *)dst = (int64_t)v;
        return NULL;
    }
    case TS_CFG_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v)) {
            snprintf(why, whysize, "'%s' is not a number", value);
            return why;
        }
        if (v < k->min || v > k->max) {
            snprintf(why, whysize, "%g is out of range [%g, %g]", v, k->min, k->max);
            return why;
        }
        *(double *)dst = v;
        return NULL;
    }
    case TS_CFG_BOOL:
        if (!parse_bool(value, (bool *)dst)) {
            snprintf(why, whysize, "'%s' is not true or false", value);
            return why;
        }
        return NULL;
    case TS_CFG_ENUM: {
        size_t n = 0;
        for (const struct ts_cfg_choice *c = k->choices; c->name; c++) {
            if (strcasecmp(c->name, value) == 0) {
                *(int *)dst = c->value;
                return NULL;
            }
        }
        n = (size_t)snprintf(why, whysize, "'%s' is not one of", value);
        for (const struct ts_cfg_choice *c = k->choices; c->name && n < whysize; c++)
            n += (size_t)snprintf(why + n, whysize - n, " %s", c->name);
        return why;
    }
    case TS_CFG_CHAR:
        if (strlen(value) != 1 || !strchr(k->chars, toupper((unsigned char)value[0]))) {
            snprintf(why, whysize, "'%s' is not one of the letters %s", value, k->chars);
            return why;
        }
        *dst = (char)toupper((unsigned char)value[0]);
        return NULL;
    }
    return "unsupported type";
}

int ts_config_defaults(const struct ts_cfg_section *section, void *instance)
{
    char why[160];
    for (size_t i = 0; i < section->n_keys; i++) {
        const struct ts_cfg_key *k = &section->keys[i];
        if (k->def && set_value(k, instance, k->def, why, sizeof why))
            return TS_ECONFIG;
    }
    return TS_OK;
}

/* --- sections ---------------------------------------------------------- */

_Static_assert(offsetof(struct ts_cfg_key, name) == 0, "closest() reads a key's name first");
_Static_assert(offsetof(struct ts_cfg_section, kind) == 0, "closest() reads a section's kind first");

/* Starts the section of header text ("kind" or "kind NAME"). A refused
 * header makes the engine ignore the section's keys (skip_section): they
 * would only repeat the error. */
static void start_section(struct parse_state *st, char *text)
{
    char *name = text;
    size_t kind_len, index = 0;
    const struct ts_cfg_section *s = NULL;

    while (*name && !isspace((unsigned char)*name))
        name++;
    kind_len = (size_t)(name - text);
    while (isspace((unsigned char)*name))
        name++;
    snprintf(st->section_text, sizeof st->section_text, "%s", text);
    skip_section(st);
    if (++st->n_sections > TS_CFG_SECTIONS_MAX) {
        fail(st, NULL, "more than %d sections", TS_CFG_SECTIONS_MAX);
        st->file->stopped = 1;
        return;
    }
    for (size_t i = 0; i < st->schema->n_sections && !s; i++) {
        const struct ts_cfg_section *c = &st->schema->sections[i];
        if (strlen(c->kind) == kind_len && strncmp(c->kind, text, kind_len) == 0)
            s = c, index = i;
    }
    if (!s) {
        char kind[64];
        snprintf(kind, sizeof kind, "%.*s", (int)kind_len, text);
        const char *near = closest(kind, st->schema->sections, st->schema->n_sections,
                                   sizeof *st->schema->sections);
        return fail(st, NULL, "unknown section kind '%.*s'%s%s%s", (int)kind_len, text,
                    near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
    }
    if (s->named && !*name)
        return fail(st, NULL, "section needs a name: [%s NAME]", s->kind);
    if (!s->named && st->seen_singleton[index])
        return fail(st, NULL, "section [%s] appears twice", s->kind);
    if (s->named && (strlen(name) >= s->name_size || !ts_field_ok(name)))
        return fail(st, NULL, "bad section name '%s'", name);
    if (!s->named && *name) /* reported; its keys are still read (they are the section's) */
        fail(st, NULL, "section [%s] takes no name", s->kind);
    st->seen_singleton[index] = true;

    char why[160] = "";
    void *instance = s->add(st->user, why, sizeof why);
    if (!instance) {
        fail(st, NULL, "%s", why[0] ? why : "cannot add section");
        st->file->stopped = 1; /* out of memory */
        return;
    }
    if (s->named)
        strcpy((char *)instance + s->name_offset, name);
    for (size_t i = 0; i < s->n_keys; i++) {
        const struct ts_cfg_key *k = &s->keys[i];
        if (k->def && set_value(k, instance, k->def, why, sizeof why))
            fail(st, k->name, "bad built-in default '%s'", k->def);
    }
    st->section_first = st->file->n_origins;
    if (add_origin(st->file, instance, NULL, st->line, 0)) {
        fail(st, NULL, "out of memory");
        st->file->stopped = 1;
        return;
    }
    st->section = s;
    st->instance = instance;
    st->skip = false;
}

/* Origin of key in the current section; NULL if not set yet. A section's
 * keys follow its header in file->origins (no section is opened twice), so
 * this looks at no more than the section's own keys. */
static struct ts_cfg_origin *in_section(const struct parse_state *st, const char *key)
{
    for (size_t i = st->section_first; i < st->file->n_origins; i++) {
        struct ts_cfg_origin *o = &st->file->origins[i];
        if (o->key && strcmp(o->key, key) == 0)
            return o;
    }
    return NULL;
}

/* "unknown key", with the closest key of the section if one is close, or
 * else the sections that have a key of that name. */
static void unknown_key(struct parse_state *st, const char *name)
{
    const struct ts_cfg_section *sec = st->section;
    if (st->file->n_errors == TS_CFG_ERRORS_MAX) /* counted, no suggestion looked for */
        return fail(st, name, "unknown key");
    const char *near = closest(name, sec->keys, sec->n_keys, sizeof *sec->keys);
    char where[200] = "";
    size_t n = 0;

    if (near) {
        /* near counts as set (TS_CFG_GUESSED) until the section sets it: the
         * mistyped line is the error, not also a "required" near */
        if (!in_section(st, near) &&
            add_origin(st->file, st->instance, near, st->line, TS_CFG_GUESSED))
            st->file->stopped = 1; /* out of memory */
        return fail(st, name, "unknown key; did you mean '%s'?", near);
    }
    for (size_t i = 0; i < st->schema->n_sections && n < sizeof where; i++) {
        const struct ts_cfg_section *s = &st->schema->sections[i];
        for (size_t j = 0; j < s->n_keys && s != sec; j++) {
            if (strcmp(s->keys[j].name, name) == 0) {
                n += (size_t)snprintf(where + n, sizeof where - n, "%s[%s%s]", n ? " or " : "",
                                      s->kind, s->named ? " NAME" : "");
                break;
            }
        }
    }
    fail(st, name, "unknown key%s%s", n ? "; it belongs in " : "", where);
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parse_state *st = user;
    const struct ts_cfg_key *k = NULL;
    char why[200];

    (void)section;
    if (st->file->stopped)
        return 1;
    if (!st->instance) {
        if (!st->skip)
            fail(st, name, "key outside of any section");
        return 1;
    }
    for (size_t i = 0; i < st->section->n_keys; i++)
        if (strcmp(st->section->keys[i].name, name) == 0)
            k = &st->section->keys[i];
    if (!k && st->section->pass_prefix &&
        strncmp(name, st->section->pass_prefix, strlen(st->section->pass_prefix)) == 0) {
        const char *reason = strstr(value, " #") || strstr(value, "\t#")
            ? "holds ' #': inline comments start with ';' (a '#' comments whole lines only)"
            : st->section->pass(st->instance, name, value, st->line, why, sizeof why);
        if (reason)
            fail(st, name, "%s", reason);
        return 1;
    }
    if (!k) {
        unknown_key(st, name);
        return 1;
    }
    struct ts_cfg_origin *first = in_section(st, k->name);
    if (first && first->bad != TS_CFG_GUESSED) {
        fail(st, name, "set twice (first on line %d)", first->line);
        return 1;
    }
    const char *reason = set_value(k, st->instance, value, why, sizeof why);
    if (reason)
        fail(st, name, "%s", reason);
    /* a refused value counts as set: no "required" error, no "set twice" later */
    if (first) { /* it stood in for a mistyped key: now it is set */
        first->line = st->line;
        first->bad = reason != NULL;
    } else if (add_origin(st->file, st->instance, k->name, st->line, reason != NULL)) {
        fail(st, name, "out of memory");
        st->file->stopped = 1;
    }
    return 1;
}

/* inih's syntax rule for the end of a section name or a key: the first of
 * `chars`, or an inline comment (';' after a blank), or the end. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
    bool was_space = false;
    while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* Checks one line (leading blanks already gone) as inih will read it, and
 * starts the section of a header: so that every error is reported on its
 * own line. Returns whether inih is to see the line (a refused one is
 * blanked: its error is already recorded). */
static bool check_line(struct parse_state *st, char *p)
{
    if (*p == '\0' || *p == ';' || *p == '#')
        return true; /* blank or comment */
    if (*p != '[') {
        const char *eq = find_chars_or_comment(p, "=:");
        if (*eq != '=' && *eq != ':')
            return fail_line(st, "syntax error (expected [section] or key = value)"), false;
        if (eq == p)
            return fail_line(st, "syntax error (a key name is missing before '=')"), false;
        return true; /* inih calls on_key */
    }
    const char *close = find_chars_or_comment(p + 1, "]");
    if (*close != ']') {
        fail_line(st, "syntax error (a section header without ']')");
        skip_section(st);
        return false;
    }
    const char *after = close + 1;
    while (isspace((unsigned char)*after))
        after++;
    if (*after && *after != ';' && *after != '#') /* reported; the header is still read */
        fail_line(st, "syntax error (text after the section header)");

    char text[256]; /* a line is shorter */
    const char *t = p + 1, *e = close;
    while (isspace((unsigned char)*t))
        t++;
    while (e > t && isspace((unsigned char)e[-1]))
        e--;
    snprintf(text, sizeof text, "%.*s", (int)(e - t), t);
    start_section(st, text);
    p[close + 1 - p] = '\0'; /* inih sees the header alone */
    return true;
}

/* The key of a refused long line (p, n characters, blanks gone), if it is
 * one of the current section's: it counts as set, with a refused value, so
 * that no "required" error follows from the line. buf (size bytes) is
 * scratch. */
static void mark_long_key(struct parse_state *st, const char *p, size_t n, char *buf, int size)
{
    if (!st->instance || n == 0 || *p == '[' || *p == ';' || *p == '#')
        return;
    n = n < (size_t)size - 1 ? n : (size_t)size - 1; /* a key that fits is in there */
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *end = (char *)find_chars_or_comment(buf, "=:");
    if (*end != '=' && *end != ':')
        return;
    while (end > buf && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    for (size_t i = 0; i < st->section->n_keys; i++) {
        const struct ts_cfg_key *k = &st->section->keys[i];
        if (strcmp(k->name, buf) == 0 && !in_section(st, k->name) &&
            add_origin(st->file, st->instance, k->name, st->line, 1))
            st->file->stopped = 1; /* out of memory */
    }
}

/* inih reader: hands over one whole line of the file at a time (never a
 * part of one: a line that does not fit inih's buffer is an error), counts
 * lines and starts sections, so errors name the right line. A refused line
 * goes to inih blank; a NUL byte stops the reading (not a text file). */
static char *read_line(char *buf, int size, void *stream)
{
    struct parse_state *st = stream;

    if (st->file->stopped || st->pos >= st->len)
        return NULL;
    const char *p = st->data + st->pos;
    const char *nl = memchr(p, '\n', st->len - st->pos);
    size_t n = nl ? (size_t)(nl - p) : st->len - st->pos;

    st->pos += n + (nl != NULL);
    st->line++;
    if (n > 0 && p[n - 1] == '\r')
        n--; /* CRLF */
    if (st->line == 1 && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3; /* a UTF-8 byte order mark */
        n -= 3;
    }
    if (memchr(p, '\0', n)) {
        fail_line(st, "holds a NUL byte (not a text file?)");
        st->file->stopped = 1;
        return NULL;
    }
    if (size < 2 || n > (size_t)size - 1) {
        char why[64];
        snprintf(why, sizeof why, "line longer than %d characters", size - 1);
        fail_line(st, why);
        while (n > 0 && isspace((unsigned char)*p))
            p++, n--;
        if (n > 0 && *p == '[')
            skip_section(st); /* a header: its keys are not the previous section's */
        mark_long_key(st, p, n, buf, size);
        buf[0] = '\0';
        return buf;
    }
    while (n > 0 && isspace((unsigned char)*p)) {
        p++; /* leading blanks: no inih continuation lines */
        n--;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (!check_line(st, buf))
        buf[0] = '\0';
    return buf;
}

static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO" : S_ISCHR(mode) ? "a character device"
         : S_ISBLK(mode) ? "a block device" : S_ISSOCK(mode) ? "a socket" : "not a regular file";
}

/* Reads the regular file path (at most TS_CFG_FILE_MAX bytes) into *data
 * (malloc'ed, the caller frees it). Opens without blocking (a FIFO), checks
 * the type before opening (a device is never opened) and again on the
 * descriptor it reads from. */
static int read_file(struct ts_cfg_file *file, const char *path, char **data, size_t *len)
{
    struct stat sb;
    int fd = -1;
    char *buf = NULL;
    size_t n = 0;

    *data = NULL;
    *len = 0;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        goto not_regular;
    fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        file_error(file, path, "cannot open: %s", strerror(errno));
        return TS_ECONFIG;
    }
    if (fstat(fd, &sb) != 0) {
        file_error(file, path, "cannot read: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode))
        goto not_regular;
    if (sb.st_size > TS_CFG_FILE_MAX)
        goto too_big;
    /* room for one byte more than the size (or the limit) tells a file that grew */
    size_t cap = (size_t)sb.st_size + 1;
    buf = malloc(cap);
    if (!buf)
        goto no_memory;
    for (;;) {
        if (n == cap) {
            char *more;
            cap = cap > TS_CFG_FILE_MAX / 2 ? TS_CFG_FILE_MAX + 1 : cap * 2;
            if (!(more = realloc(buf, cap)))
                goto no_memory;
            buf = more;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            file_error(file, path, "cannot read: %s", strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > TS_CFG_FILE_MAX)
            goto too_big;
    }
    close(fd);
    *data = buf;
    *len = n;
    return TS_OK;

no_memory:
    file_error(file, path, "out of memory");
    goto fail;
not_regular:
    file_error(file, path, "is %s, not a regular file", file_kind(sb.st_mode));
    goto fail;
too_big:
    file_error(file, path, "larger than %d bytes (a configuration is small)", TS_CFG_FILE_MAX);
fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    return TS_ECONFIG;
}

int ts_config_load(const char *path, const struct ts_cfg_schema *schema, void *user,
                   struct ts_cfg_file *file)
{
    struct parse_state st = {.schema = schema, .user = user, .file = file};
    bool seen[16] = {false};
    char *data;

    memset(file, 0, sizeof *file);
    ts_hashtab_init(&file->heads, TS_CFG_SECTIONS_MAX);
    snprintf(file->path, sizeof file->path, "%s", path);
    if (schema->n_sections > 16) {
        file_error(file, path, "too many section kinds (a bug in the table)");
        file->stopped = 1;
        return TS_ECONFIG;
    }
    st.seen_singleton = seen;
    if (read_file(file, path, &data, &st.len) != TS_OK) {
        file->stopped = 1;
        return TS_ECONFIG;
    }
    st.data = data;
    int rc = ini_parse_stream(read_line, &st, on_key, &st);
    free(data);
    if (rc < 0) {
        file_error(file, path, "out of memory");
        file->stopped = 1;
    } else if (rc > 0) {
        /* a line inih refused that check_line let through: not expected */
        bool named = false;
        for (size_t i = 0; i < file->n_errors; i++)
            named = named || file->errors[i].line == rc;
        if (!named)
            ts_config_error_at(file, rc, "syntax error (expected [section] or key = value)");
    }
    return file->n_errors || file->n_more ? TS_ECONFIG : TS_OK;
}

/* "kind" or "kind NAME" of instance, a section of kind section. */
static void section_text(const struct ts_cfg_section *section, const void *instance, char *text,
                         size_t size)
{
    const char *name = section->named ? (const char *)instance + section->name_offset : "";
    snprintf(text, size, "%s%s%s", section->kind, *name ? " " : "", name);
}

int ts_config_require(struct ts_cfg_file *file, const struct ts_cfg_section *section,
                      const void *instance)
{
    int rc = TS_OK;
    for (size_t i = 0; i < section->n_keys; i++) {
        const struct ts_cfg_key *k = &section->keys[i];
        if ((k->flags & TS_CFG_REQUIRED) && !ts_config_line(file, instance, k->name)) {
            char text[160];
            section_text(section, instance, text, sizeof text);
            ts_config_error(file, instance, text, k->name, "required key is missing");
            rc = TS_ECONFIG;
        }
    }
    return rc;
}

/* The names of the kinds in mask into text: "modbus-tcp, modbus-rtu and
 * sim" in prose, else "modbus-tcp, modbus-rtu, sim". */
static void kind_names(const struct ts_cfg_choice *kinds, unsigned mask, bool prose, char *text,
                       size_t size)
{
    size_t n = 0, count = 0, total = 0;

    text[0] = '\0';
    for (const struct ts_cfg_choice *c = kinds; c->name; c++)
        total += c->value >= 0 && c->value < 32 && (mask & TS_CFG_KIND(c->value));
    for (const struct ts_cfg_choice *c = kinds; c->name && n < size; c++) {
        if (c->value < 0 || c->value >= 32 || !(mask & TS_CFG_KIND(c->value)))
            continue;
        count++;
        n += (size_t)snprintf(text + n, size - n, "%s%s",
                              count == 1 ? "" : prose && count == total ? " and " : ", ", c->name);
    }
}

int ts_config_check_kind(struct ts_cfg_file *file, const struct ts_cfg_section *section,
                         const void *instance, int kind, const char *what)
{
    int rc = TS_OK;
    char text[160], only[160];

    if (!section->kinds || kind < 0 || kind >= 32)
        return TS_OK;
    section_text(section, instance, text, sizeof text);
    size_t i = find_head(file, instance);
    for (i += i < file->n_origins; i < file->n_origins && file->origins[i].key; i++) {
        const struct ts_cfg_origin *o = &file->origins[i];
        for (size_t j = 0; j < section->n_keys; j++) {
            const struct ts_cfg_key *k = &section->keys[j];
            if (k->name != o->key || !k->kinds || (k->kinds & TS_CFG_KIND(kind)) ||
                o->bad == TS_CFG_GUESSED)
                continue;
            kind_names(section->kinds, k->kinds, true, only, sizeof only);
            ts_config_error_at(file, o->line, "[%s] %s: means nothing for %s (only for %s)", text,
                               k->name, what, only);
            rc = TS_ECONFIG;
        }
    }
    return rc;
}

static const char *type_name(const struct ts_cfg_key *k)
{
    switch (k->type) {
    case TS_CFG_STRING: return "text";
    case TS_CFG_FIELD: return "field";
    case TS_CFG_ID: return "id";
    case TS_CFG_INT:
    case TS_CFG_INT64: return "integer";
    case TS_CFG_DOUBLE: return "number";
    case TS_CFG_BOOL: return "boolean";
    case TS_CFG_ENUM: return "choice";
    case TS_CFG_CHAR: return "letter";
    }
    return "?";
}

/* A range's bound as it would be written in the file: an integral value in plain digits
 * (3600000, never 3.6e+06), a fraction with up to 15 significant digits (0.001). */
static void doc_number(char *out, size_t size, double v)
{
    if (v > -9.2e18 && v < 9.2e18 && v == (double)(long long)v)
        snprintf(out, size, "%lld", (long long)v);
    else
        snprintf(out, size, "%.15g", v);
}

void ts_config_doc(const struct ts_cfg_schema *schema, FILE *out)
{
    for (size_t s = 0; s < schema->n_sections; s++) {
        const struct ts_cfg_section *sec = &schema->sections[s];
        fprintf(out, "### [%s%s]\n\n%s\n\n", sec->kind, sec->named ? " NAME" : "", sec->doc);
        if (sec->kinds)
            fprintf(out, "%s\n\n| key | type | range / choices | default | kinds | meaning |\n"
                         "|---|---|---|---|---|---|\n", sec->kinds_doc ? sec->kinds_doc : "");
        else
            fputs("| key | type | range / choices | default | meaning |\n|---|---|---|---|---|\n", out);
        for (size_t i = 0; i < sec->n_keys; i++) {
            const struct ts_cfg_key *k = &sec->keys[i];
            char range[160] = "", kinds[160] = "all";
            size_t n = 0;
            if (k->type == TS_CFG_INT || k->type == TS_CFG_INT64 || k->type == TS_CFG_DOUBLE) {
                char lo[32], hi[32];
                doc_number(lo, sizeof lo, k->min);
                doc_number(hi, sizeof hi, k->max);
                snprintf(range, sizeof range, "%s .. %s", lo, hi);
            }
            else if (k->type == TS_CFG_ENUM)
                for (const struct ts_cfg_choice *c = k->choices; c->name && n < sizeof range; c++)
                    n += (size_t)snprintf(range + n, sizeof range - n, "%s%s", n ? ", " : "", c->name);
            else if (k->type == TS_CFG_CHAR)
                snprintf(range, sizeof range, "%s", k->chars);
            fprintf(out, "| `%s` | %s | %s | %s | ", k->name, type_name(k), range,
                    (k->flags & TS_CFG_REQUIRED) ? "**required**" : (k->def ? k->def : ""));
            if (sec->kinds) {
                if (k->kinds)
                    kind_names(sec->kinds, k->kinds, false, kinds, sizeof kinds);
                fprintf(out, "%s | ", kinds);
            }
            fprintf(out, "%s |\n", k->doc);
        }
        if (sec->pass_prefix)
            fprintf(out, "| `%s*` | text | | | %s%s |\n", sec->pass_prefix,
                    sec->kinds ? "all | " : "", sec->pass_doc ? sec->pass_doc : "");
        fputs("\n", out);
    }
}
