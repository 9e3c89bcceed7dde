#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "reading.h"

struct parse_state {
    const struct ts_cfg_schema *schema;
    void *user;
    struct ts_cfg_file *file;
    FILE *fp;
    int line;
    const struct ts_cfg_section *section; /* current section kind */
    void *instance;                       /* current section's struct */
    char section_text[128];
    bool *seen_singleton;
    char *err;
    size_t errsize;
    bool failed;
};

static void fail(struct parse_state *st, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct parse_state *st, const char *key, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (st->failed)
        return;
    st->failed = true;
    if (st->section_text[0])
        n = snprintf(st->err, st->errsize, "%s:%d: [%s] %s%s", st->file->path, st->line,
                     st->section_text, key ? key : "", key ? ": " : "");
    else
        n = snprintf(st->err, st->errsize, "%s:%d: %s%s", st->file->path, st->line,
                     key ? key : "", key ? ": " : "");
    if (n < 0 || (size_t)n >= st->errsize)
        return;
    va_start(ap, fmt);
    vsnprintf(st->err + n, st->errsize - (size_t)n, fmt, ap);
    va_end(ap);
}

static int add_origin(struct ts_cfg_file *file, const void *instance, const char *key, int line)
{
    if (file->n_origins == file->cap_origins) {
        size_t cap = file->cap_origins ? file->cap_origins * 2 : 64;
        struct ts_cfg_origin *o = realloc(file->origins, cap * sizeof *o);
        if (!o)
            return TS_ENOMEM;
        file->origins = o;
        file->cap_origins = cap;
    }
    file->origins[file->n_origins++] = (struct ts_cfg_origin){instance, key, line};
    return TS_OK;
}

int ts_config_line(const struct ts_cfg_file *file, const void *instance, const char *key)
{
    for (size_t i = 0; i < file->n_origins; i++) {
        const struct ts_cfg_origin *o = &file->origins[i];
        if (o->instance == instance &&
            ((key == NULL && o->key == NULL) || (key && o->key && strcmp(key, o->key) == 0)))
            return o->line;
    }
    return 0;
}

void ts_config_error(const struct ts_cfg_file *file, const void *instance, const char *section,
                     const char *key, char *err, size_t errsize, const char *fmt, ...)
{
    int line = key ? ts_config_line(file, instance, key) : 0;
    va_list ap;

    if (line == 0)
        line = ts_config_line(file, instance, NULL);
    int n = snprintf(err, errsize, "%s:%d: [%s] %s%s", file->path, line, section,
                     key ? key : "", key ? ": " : "");
    if (n < 0 || (size_t)n >= errsize)
        return;
    va_start(ap, fmt);
    vsnprintf(err + n, errsize - (size_t)n, fmt, ap);
    va_end(ap);
}

void ts_config_file_free(struct ts_cfg_file *file)
{
    if (!file)
        return;
    free(file->origins);
    file->origins = NULL;
    file->n_origins = file->cap_origins = 0;
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
        if (k->type == TS_CFG_FIELD && !ts_field_ok(value))
            return "must be non-empty without comma, quote or line break";
        if (k->type == TS_CFG_ID && !ts_id_ok(value))
            return "may hold only letters, digits, '.', '_' and '-'";
        strcpy(dst, value);
        return NULL;
    case TS_CFG_INT:
    case TS_CFG_INT64: {
        errno = 0;
        long long v = strtoll(value, &end, 0);
        if (errno || end == value || *end) {
            snprintf(why, whysize, "'%s' is not an integer", value);
            return why;
        }
        if ((double)v < k->min || (double)v > k->max) {
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

static void start_section(struct parse_state *st, char *text)
{
    char *name = text;
    size_t kind_len;

    while (*name && !isspace((unsigned char)*name))
        name++;
    kind_len = (size_t)(name - text);
    while (isspace((unsigned char)*name))
        name++;
    snprintf(st->section_text, sizeof st->section_text, "%s", text);
    st->section = NULL;
    st->instance = NULL;
    for (size_t i = 0; i < st->schema->n_sections; i++) {
        const struct ts_cfg_section *s = &st->schema->sections[i];
        if (strlen(s->kind) == kind_len && strncmp(s->kind, text, kind_len) == 0) {
            st->section = s;
            if (s->named && !*name)
                return fail(st, NULL, "section needs a name: [%s NAME]", s->kind);
            if (!s->named && *name)
                return fail(st, NULL, "section [%s] takes no name", s->kind);
            if (!s->named && st->seen_singleton[i])
                return fail(st, NULL, "section [%s] appears twice", s->kind);
            st->seen_singleton[i] = true;
            break;
        }
    }
    if (!st->section)
        return fail(st, NULL, "unknown section kind '%.*s'", (int)kind_len, text);

    char why[160] = "";
    st->instance = st->section->add(st->user, why, sizeof why);
    if (!st->instance)
        return fail(st, NULL, "%s", why[0] ? why : "cannot add section");
    if (st->section->named) {
        if (strlen(name) >= st->section->name_size || !ts_field_ok(name))
            return fail(st, NULL, "bad section name '%s'", name);
        strcpy((char *)st->instance + st->section->name_offset, name);
    }
    for (size_t i = 0; i < st->section->n_keys; i++) {
        const struct ts_cfg_key *k = &st->section->keys[i];
        if (k->def && set_value(k, st->instance, k->def, why, sizeof why))
            return fail(st, k->name, "bad built-in default '%s'", k->def);
    }
    if (add_origin(st->file, st->instance, NULL, st->line))
        fail(st, NULL, "out of memory");
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parse_state *st = user;
    const struct ts_cfg_key *k = NULL;
    char why[200];

    (void)section;
    if (st->failed)
        return 0;
    if (!st->instance) {
        fail(st, name, "key outside of any section");
        return 0;
    }
    for (size_t i = 0; i < st->section->n_keys; i++)
        if (strcmp(st->section->keys[i].name, name) == 0)
            k = &st->section->keys[i];
    if (!k) {
        fail(st, name, "unknown key");
        return 0;
    }
    if (ts_config_line(st->file, st->instance, k->name)) {
        fail(st, name, "set twice (first on line %d)", ts_config_line(st->file, st->instance, k->name));
        return 0;
    }
    const char *reason = set_value(k, st->instance, value, why, sizeof why);
    if (reason) {
        fail(st, name, "%s", reason);
        return 0;
    }
    if (add_origin(st->file, st->instance, k->name, st->line)) {
        fail(st, name, "out of memory");
        return 0;
    }
    return 1;
}

/* inih reader: counts lines and starts sections, so errors can name lines. */
static char *read_line(char *buf, int size, void *stream)
{
    struct parse_state *st = stream;

    if (st->failed || !fgets(buf, size, st->fp))
        return NULL;
    st->line++;
    char *p = buf;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '[') {
        char *close = strchr(p, ']');
        if (close) {
            char text[128];
            char *t = p + 1;
            while (isspace((unsigned char)*t))
                t++;
            char *e = close;
            while (e > t && isspace((unsigned char)e[-1]))
                e--;
            snprintf(text, sizeof text, "%.*s", (int)(e - t), t);
            start_section(st, text);
        }
    }
    return buf;
}

int ts_config_load(const char *path, const struct ts_cfg_schema *schema, void *user,
                   struct ts_cfg_file *file, char *err, size_t errsize)
{
    struct parse_state st = {.schema = schema, .user = user, .file = file, .err = err,
                             .errsize = errsize};
    bool seen[16] = {false};

    if (schema->n_sections > 16)
        return TS_EINVAL;
    memset(file, 0, sizeof *file);
    snprintf(file->path, sizeof file->path, "%s", path);
    st.seen_singleton = seen;
    st.fp = fopen(path, "r");
    if (!st.fp) {
        snprintf(err, errsize, "%s: cannot open: %s", path, strerror(errno));
        return TS_ECONFIG;
    }
    int rc = ini_parse_stream(read_line, &st, on_key, &st);
    fclose(st.fp);
    if (st.failed)
        return TS_ECONFIG;
    if (rc != 0) {
        st.line = rc > 0 ? rc : st.line;
        st.section_text[0] = '\0';
        fail(&st, NULL, "syntax error (expected [section] or key = value)");
        return TS_ECONFIG;
    }
    return TS_OK;
}

int ts_config_require(const struct ts_cfg_file *file, const struct ts_cfg_section *section,
                      const void *instance, char *err, size_t errsize)
{
    for (size_t i = 0; i < section->n_keys; i++) {
        const struct ts_cfg_key *k = &section->keys[i];
        if ((k->flags & TS_CFG_REQUIRED) && !ts_config_line(file, instance, k->name)) {
            const char *name = section->named ? (const char *)instance + section->name_offset : "";
            char text[160];
            snprintf(text, sizeof text, "%s%s%s", section->kind, *name ? " " : "", name);
            ts_config_error(file, instance, text, k->name, err, errsize, "required key is missing");
            return TS_ECONFIG;
        }
    }
    return TS_OK;
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

void ts_config_doc(const struct ts_cfg_schema *schema, FILE *out)
{
    for (size_t s = 0; s < schema->n_sections; s++) {
        const struct ts_cfg_section *sec = &schema->sections[s];
        fprintf(out, "### [%s%s]\n\n%s\n\n| key | type | range / choices | default | meaning |\n"
                     "|---|---|---|---|---|\n", sec->kind, sec->named ? " NAME" : "", sec->doc);
        for (size_t i = 0; i < sec->n_keys; i++) {
            const struct ts_cfg_key *k = &sec->keys[i];
            char range[160] = "";
            size_t n = 0;
            if (k->type == TS_CFG_INT || k->type == TS_CFG_INT64 || k->type == TS_CFG_DOUBLE)
                snprintf(range, sizeof range, "%g .. %g", k->min, k->max);
            else if (k->type == TS_CFG_ENUM)
                for (const struct ts_cfg_choice *c = k->choices; c->name && n < sizeof range; c++)
                    n += (size_t)snprintf(range + n, sizeof range - n, "%s%s", n ? ", " : "", c->name);
            else if (k->type == TS_CFG_CHAR)
                snprintf(range, sizeof range, "%s", k->chars);
            fprintf(out, "| `%s` | %s | %s | %s | %s |\n", k->name, type_name(k), range,
                    (k->flags & TS_CFG_REQUIRED) ? "**required**" : (k->def ? k->def : ""), k->doc);
        }
        fputs("\n", out);
    }
}
