/* SPDX-License-Identifier: Apache-2.0 */
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
 * 0x20..0x7e are shown as \xNN. Loading goes on past an error, so that one
 * run reports every error of the file (at most TS_CFG_ERRORS_MAX of them are
 * kept, the rest only counted), sorted by line; an unknown key names the
 * closest key of its section when one is close. A section kind may have
 * kinds (a device's `kind`): a key limited to some of them is an error in a
 * section of another kind (ts_config_check_kind).
 *
 * Input limits (docs: README "Configuration"): only a regular file is read
 * (a FIFO, device, directory or socket is refused without blocking), of at
 * most TS_CFG_FILE_MAX bytes and TS_CFG_SECTIONS_MAX sections; a line holds
 * at most 199 characters (inih's 200-byte line buffer; a longer one is an
 * error, never split), no NUL byte; leading blanks are ignored (no
 * continuation lines). Integers are decimal, or hexadecimal with 0x. A NUL
 * byte, too many sections or a file that cannot be read stop the reading
 * (file->stopped): the rest would only add noise. */
#ifndef TS_CONFIG_H
#define TS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "hashtab.h"

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
#define TS_CFG_KIND(v) (1u << (v)) /* a key's `kinds` bit for the kind of value v (0..31) */

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
    unsigned kinds;           /* TS_CFG_KIND bits of the section's kinds it applies to; 0: all */
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
    /* Kinds the keys' `kinds` name (terminated by {NULL, 0}), NULL: none; and
     * a sentence for the docs saying what decides a section's kind. */
    const struct ts_cfg_choice *kinds;
    const char *kinds_doc;
    /* Keys outside the table that start with pass_prefix (e.g. "rdkafka."):
     * handed whole to pass(instance, key, value, line, why, whysize), which
     * keeps them (NULL) or refuses them (a reason, reported on that line).
     * NULL: no such keys. pass_doc: one line of the docs for them. */
    const char *pass_prefix;
    const char *(*pass)(void *instance, const char *key, const char *value, int line, char *why,
                        size_t whysize);
    const char *pass_doc;
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
    int bad;                  /* 0; 1: the value was refused; TS_CFG_GUESSED: not set,
                                 but an unknown key close to it was. Either way an
                                 error says so, the key counts as set and the struct
                                 keeps its default */
};

#define TS_CFG_GUESSED 2

#define TS_CFG_FILE_MAX (1024 * 1024) /* bytes: a config is small */
#define TS_CFG_SECTIONS_MAX 1024      /* sections per file: an agent polls far fewer turnstiles */
#define TS_CFG_ERRORS_MAX 100         /* errors kept per file; the rest are only counted */

struct ts_cfg_error {
    int line;                 /* 0: about the whole file */
    char *text;               /* owned: "file:line: [section] key: reason", printable ASCII */
};

struct ts_cfg_file {
    char path[256];
    struct ts_cfg_origin *origins; /* owned; freed by ts_config_file_free */
    size_t n_origins, cap_origins;
    struct ts_hashtab heads;       /* owned: an index of the section headers in origins */
    struct ts_cfg_error *errors;   /* owned: the first TS_CFG_ERRORS_MAX errors found */
    size_t n_errors;
    size_t n_more;                 /* errors found beyond those (or not stored: no memory) */
    int stopped;                   /* reading stopped before the end of the file */
};

/* Parses path against schema into the sections user's add() hands out, and
 * records where every value came from and every error in file. TS_OK, or
 * TS_ECONFIG: errors are in file (file->stopped if the reading stopped early;
 * else the program's checks may add more). The caller ends with
 * ts_config_finish and frees file with ts_config_file_free in both cases. */
int ts_config_load(const char *path, const struct ts_cfg_schema *schema, void *user,
                   struct ts_cfg_file *file);

/* Line where key (NULL: the section header) of instance was set; 0 if not.
 * A key whose value was refused counts as set. */
int ts_config_line(const struct ts_cfg_file *file, const void *instance, const char *key);

/* 1 if key of instance was set to a value that was refused, or stands in
 * for an unknown key close to it (already an error): checks that use its
 * value skip it rather than add a false error. */
int ts_config_bad(const struct ts_cfg_file *file, const void *instance, const char *key);

/* Records an error naming file, the line of key (NULL: of the section
 * header) of instance, section ("device d1") and key. */
void ts_config_error(struct ts_cfg_file *file, const void *instance, const char *section,
                     const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Records an error "file:line: reason" ("file: reason" for line 0). */
void ts_config_error_at(struct ts_cfg_file *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records an error for every TS_CFG_REQUIRED key of instance (a section of
 * kind `section`) that was not set. TS_OK, or TS_ECONFIG if one was missing. */
int ts_config_require(struct ts_cfg_file *file, const struct ts_cfg_section *section,
                      const void *instance);

/* Records an error for every key set in instance (a section of kind
 * `section`, which has kinds) whose `kinds` leave out kind (a value of
 * section->kinds), worded "KEY: does not apply to WHAT (only to K1, K2)".
 * TS_OK, or TS_ECONFIG if there was one. */
int ts_config_check_kind(struct ts_cfg_file *file, const struct ts_cfg_section *section,
                         const void *instance, int kind, const char *what);

/* Ends a load: sorts the errors by line (errors about the whole file last).
 * TS_OK if there is none; else TS_ECONFIG with the first in err. */
int ts_config_finish(struct ts_cfg_file *file, char *err, size_t errsize);

/* Writes every error kept in file to out, one a line, each after "PROG: ",
 * and "PROG: FILE: ... and N more errors" when some were only counted.
 * Returns the number of lines written. */
size_t ts_config_print_errors(const struct ts_cfg_file *file, const char *prog, FILE *out);

/* Sets every key of section that has a default in instance (what an empty
 * section gives): for a section that is absent from the file. TS_OK, or
 * TS_ECONFIG if a built-in default does not parse (a bug in the table). */
int ts_config_defaults(const struct ts_cfg_section *section, void *instance);

void ts_config_file_free(struct ts_cfg_file *file);

/* Copies src into dst (size > 0, always terminated) with every byte outside
 * printable ASCII (0x20..0x7e) written as \xNN, cut before an escape that
 * does not fit: for error lines that echo file names, keys and values. */
void ts_config_escape(char *dst, size_t size, const char *src);

/* Writes the documentation of every section and key (markdown) to out: for
 * a section with kinds, which kinds each key applies to. */
void ts_config_doc(const struct ts_cfg_schema *schema, FILE *out);

#endif
