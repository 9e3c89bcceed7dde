/* config.h - one table drives the config file.
 *
 * The file is INI (parsed by inih): singleton sections "[agent]" and named
 * sections "[device NAME]". Each section kind has a table of keys: name,
 * type, where the value lands in the section's struct, range, default and a
 * one-line description. The same table parses, range-checks, fills defaults
 * and prints the documentation (ts_config_doc), so the docs cannot drift.
 *
 * Every error names the file, the line and the key, e.g.
 *   agent.conf:12: [turnstile t1] width: must be one of 16, 32, 64
 * and holds only printable ASCII: bytes from the file (or its name) outside
 * 0x20..0x7e are shown as \xNN.
 *
 * Input limits (docs: README "Configuration"): only a regular file is read
 * (a FIFO, device, directory or socket is refused without blocking), of at
 * most TS_CFG_FILE_MAX bytes and TS_CFG_SECTIONS_MAX sections; a line holds
 * at most 199 characters (inih's 200-byte line buffer; a longer one is an
 * error, never split), no NUL byte; leading blanks are ignored (no
 * continuation lines). Integers are decimal, or hexadecimal with 0x. */
#ifndef TS_CONFIG_H
#define TS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum ts_cfg_type {
    TS_CFG_STRING, /* char[size]: text without control characters (UTF-8 passes) */
    TS_CFG_FIELD,  /* char[size]: a CSV-safe field (no comma, quote, line break) */
    TS_CFG_ID,     /* char[size]: letters, digits, '.', '_', '-' */
    TS_CFG_INT,    /* int, within [min, max] */
    TS_CFG_INT64,  /* int64_t, within [min, max] */
    TS_CFG_DOUBLE, /* double, within [min, max] */
    TS_CFG_BOOL,   /* bool: true/false, yes/no, on/off, 1/0 */
    TS_CFG_ENUM,   /* int (or enum): one of `choices` */
    TS_CFG_CHAR,   /* char: one of the characters in `chars` */
};

struct ts_cfg_choice {
    const char *name;
    int value;
};

#define TS_CFG_REQUIRED 1u /* must be set in every section of this kind */

struct ts_cfg_key {
    const char *name;
    enum ts_cfg_type type;
    size_t offset, size;      /* into the section's struct (size for strings) */
    double min, max;          /* INT and DOUBLE */
    const char *def;          /* default, as it would be written; NULL: none */
    const struct ts_cfg_choice *choices; /* ENUM, terminated by {NULL, 0} */
    const char *chars;        /* CHAR */
    unsigned flags;           /* TS_CFG_REQUIRED */
    const char *doc;          /* one line */
};

struct ts_cfg_section {
    const char *kind;         /* "agent", "device", "turnstile" */
    int named;                /* [kind NAME] (1) or [kind] (0) */
    const struct ts_cfg_key *keys;
    size_t n_keys;
    size_t name_offset, name_size; /* named sections: where NAME lands */
    const char *doc;
    /* Returns the zeroed struct for a new section (the engine fills defaults
     * and values), or NULL with a reason in err. Storage stays the caller's. */
    void *(*add)(void *user, char *err, size_t errsize);
};

struct ts_cfg_schema {
    const struct ts_cfg_section *sections;
    size_t n_sections;
};

/* Where a value came from: used to name the line of a later validation error. */
struct ts_cfg_origin {
    const void *instance;     /* the section's struct */
    const char *key;          /* key name (from the table); NULL for the header */
    int line;
};

#define TS_CFG_FILE_MAX (1024 * 1024) /* bytes: a config is small */
#define TS_CFG_SECTIONS_MAX 1024      /* sections per file: an agent polls far fewer turnstiles */

struct ts_cfg_file {
    char path[256];
    struct ts_cfg_origin *origins; /* owned; freed by ts_config_file_free */
    size_t n_origins, cap_origins;
};

/* Parses path against schema. TS_OK, or TS_ECONFIG with one line in err
 * ("file:line: [section] key: reason"; "file: reason" when the file cannot
 * be read). file receives the origins. */
int ts_config_load(const char *path, const struct ts_cfg_schema *schema, void *user,
                   struct ts_cfg_file *file, char *err, size_t errsize);

/* Line where key (NULL: the section header) of instance was set; 0 if not. */
int ts_config_line(const struct ts_cfg_file *file, const void *instance, const char *key);

/* Formats a validation error naming file, line and key into err. */
void ts_config_error(const struct ts_cfg_file *file, const void *instance, const char *section,
                     const char *key, char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* Checks that every TS_CFG_REQUIRED key of instance (a section of kind
 * `section`) was set. TS_OK, or TS_ECONFIG with the error in err. */
int ts_config_require(const struct ts_cfg_file *file, const struct ts_cfg_section *section,
                      const void *instance, char *err, size_t errsize);

/* Sets every key of section that has a default in instance (what an empty
 * section gives): for a section that is absent from the file. TS_OK, or
 * TS_ECONFIG if a built-in default does not parse (a bug in the table). */
int ts_config_defaults(const struct ts_cfg_section *section, void *instance);

void ts_config_file_free(struct ts_cfg_file *file);

/* Copies src into dst (size > 0, always terminated) with every byte outside
 * printable ASCII (0x20..0x7e) written as \xNN, cut before an escape that
 * does not fit: for error lines that echo file names, keys and values. */
void ts_config_escape(char *dst, size_t size, const char *src);

/* Writes the documentation of every section and key (markdown) to out. */
void ts_config_doc(const struct ts_cfg_schema *schema, FILE *out);

#endif
