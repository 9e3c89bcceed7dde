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
    char *err;
    size_t errsize;
    bool failed;
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

/* Formats into err, escaped: no error line carries a raw byte from the file. */
static void set_error(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errsize, const char *fmt, ...)
{
    char raw[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    ts_config_escape(err, errsize, raw);
}

static void fail(struct parse_state *st, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct parse_state *st, const char *key, const char *fmt, ...)
{
    char reason[512];
    va_list ap;

    if (st->failed)
        return;
    st->failed = true;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    set_error(st->err, st->errsize, "%s:%d: %s%s%s%s%s%s", st->file->path, st->line,
              st->section_text[0] ? "[" : "", st->section_text, st->section_text[0] ? "] " : "",
              key ? key : "", key ? ": " : "", reason);
}

/* An error about the line itself, not about a key of the current section. */
static void fail_line(struct parse_state *st, const char *reason)
{
    st->section_text[0] = '\0';
    fail(st, NULL, "%s", reason);
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
    char reason[512];
    va_list ap;

    if (line == 0)
        line = ts_config_line(file, instance, NULL);
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    set_error(err, errsize, "%s:%d: [%s] %s%s%s", file->path, line, section, key ? key : "",
              key ? ": " : "", reason);
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
    if (++st->n_sections > TS_CFG_SECTIONS_MAX)
        return fail(st, NULL, "more than %d sections", TS_CFG_SECTIONS_MAX);
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
    st->section_first = st->file->n_origins;
    if (add_origin(st->file, st->instance, NULL, st->line))
        fail(st, NULL, "out of memory");
}

/* Line where key was set in the current section; 0 if not yet. A section's
 * keys follow its header in file->origins (no section is opened twice), so
 * this looks at no more than the section's own keys. */
static int line_in_section(const struct parse_state *st, const char *key)
{
    for (size_t i = st->section_first; i < st->file->n_origins; i++) {
        const struct ts_cfg_origin *o = &st->file->origins[i];
        if (o->key && strcmp(o->key, key) == 0)
            return o->line;
    }
    return 0;
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
    int first = line_in_section(st, k->name);
    if (first) {
        fail(st, name, "set twice (first on line %d)", first);
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
 * starts the section of a header: so that the first error is the one
 * reported, on its own line. */
static void check_line(struct parse_state *st, char *p)
{
    if (*p == '\0' || *p == ';' || *p == '#')
        return; /* blank or comment */
    if (*p != '[') {
        const char *eq = find_chars_or_comment(p, "=:");
        if (*eq != '=' && *eq != ':')
            return fail_line(st, "syntax error (expected [section] or key = value)");
        if (eq == p)
            return fail_line(st, "syntax error (a key name is missing before '=')");
        return; /* inih calls on_key */
    }
    const char *close = find_chars_or_comment(p + 1, "]");
    if (*close != ']')
        return fail_line(st, "syntax error (a section header without ']')");
    const char *after = close + 1;
    while (isspace((unsigned char)*after))
        after++;
    if (*after && *after != ';' && *after != '#')
        return fail_line(st, "syntax error (text after the section header)");

    char text[256]; /* a line is shorter */
    const char *t = p + 1, *e = close;
    while (isspace((unsigned char)*t))
        t++;
    while (e > t && isspace((unsigned char)e[-1]))
        e--;
    snprintf(text, sizeof text, "%.*s", (int)(e - t), t);
    start_section(st, text);
}

/* inih reader: hands over one whole line of the file at a time (never a
 * part of one: a line that does not fit inih's buffer is an error), counts
 * lines and starts sections, so errors name the right line. */
static char *read_line(char *buf, int size, void *stream)
{
    struct parse_state *st = stream;

    if (st->failed || st->pos >= st->len)
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
        return NULL;
    }
    if (size < 2 || n > (size_t)size - 1) {
        char why[64];
        snprintf(why, sizeof why, "line longer than %d characters", size - 1);
        fail_line(st, why);
        return NULL;
    }
    while (n > 0 && isspace((unsigned char)*p)) {
        p++; /* leading blanks: no inih continuation lines */
        n--;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    check_line(st, buf);
    return st->failed ? NULL : buf;
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
static int read_file(const char *path, char **data, size_t *len, char *err, size_t errsize)
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
        set_error(err, errsize, "%s: cannot open: %s", path, strerror(errno));
        return TS_ECONFIG;
    }
    if (fstat(fd, &sb) != 0) {
        set_error(err, errsize, "%s: cannot read: %s", path, strerror(errno));
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
            set_error(err, errsize, "%s: cannot read: %s", path, strerror(errno));
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
    set_error(err, errsize, "%s: out of memory", path);
    goto fail;
not_regular:
    set_error(err, errsize, "%s: is %s, not a regular file", path, file_kind(sb.st_mode));
    goto fail;
too_big:
    set_error(err, errsize, "%s: larger than %d bytes (a configuration is small)", path,
              TS_CFG_FILE_MAX);
fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    return TS_ECONFIG;
}

int ts_config_load(const char *path, const struct ts_cfg_schema *schema, void *user,
                   struct ts_cfg_file *file, char *err, size_t errsize)
{
    struct parse_state st = {.schema = schema, .user = user, .file = file, .err = err,
                             .errsize = errsize};
    bool seen[16] = {false};
    char *data;

    if (schema->n_sections > 16)
        return TS_EINVAL;
    memset(file, 0, sizeof *file);
    snprintf(file->path, sizeof file->path, "%s", path);
    st.seen_singleton = seen;
    if (read_file(path, &data, &st.len, err, errsize) != TS_OK)
        return TS_ECONFIG;
    st.data = data;
    int rc = ini_parse_stream(read_line, &st, on_key, &st);
    free(data);
    if (st.failed)
        return TS_ECONFIG;
    if (rc != 0) { /* check_line should have caught it first */
        st.line = rc > 0 ? rc : st.line;
        fail_line(&st, "syntax error (expected [section] or key = value)");
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
