/* SPDX-License-Identifier: Apache-2.0 */
/* lake_s3.h - the S3 API client of the object lake (docs/lake.md, "Object
 * storage"): PUT (conditional with If-None-Match: *, multipart for large
 * files), GET, server-side copy, DELETE and ListObjectsV2 of one bucket under
 * one prefix, signed with AWS Signature V4 by libcurl (CURLOPT_AWS_SIGV4;
 * no SDK). AWS S3, Google Cloud Storage's XML API with HMAC keys, S3Proxy
 * and MinIO speak it.
 *
 * Every request is retried on a transport error (refused, reset, timed out)
 * and on HTTP 500, 502, 503, 504 and 429, at most cfg->max_attempts times,
 * with exponential back-off from cfg->backoff_ms to cfg->backoff_max_ms (a
 * random half to whole of each step). Other answers are final. Bodies read
 * are bounded (cfg->max_object bytes; a listing by cfg->max_list keys), so a
 * hostile server cannot make it allocate without bound or loop.
 *
 * Errors: TS_OK; TS_EINVAL (bad arguments); TS_ENOTFOUND (404: no such key);
 * TS_ECONFLICT (412: an If-None-Match put found the key there, written by
 * someone else); TS_EFULL (an answer over the bounds); TS_ECONNECT (no
 * answer in time, after every attempt); TS_EIO (any other HTTP error, or
 * 5xx on every attempt: why has the status and S3's error code); TS_ESHORT
 * (an answer that is not what S3 sends); TS_ESYS (reading the file of
 * ts_s3_put_file); TS_ENOMEM. why (may be NULL) never holds the secret.
 *
 * One struct ts_s3 is one connection (a curl easy handle kept alive) for one
 * thread; several may exist at once, in any threads. Keys are relative to the
 * url's prefix and are 1 to 900 bytes of [A-Za-z0-9._=/-]. */
#ifndef TS_LAKE_S3_H
#define TS_LAKE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ts_s3_cfg {
    const char *url;        /* s3://BUCKET[/PREFIX] (bucket: 3..63 of [a-z0-9.-]) */
    const char *endpoint;   /* http[s]://HOST[:PORT]; NULL or "": https://s3.REGION.amazonaws.com */
    const char *region;     /* e.g. "us-east-1" ("auto" for GCS works too) */
    bool path_style;        /* ENDPOINT/BUCKET/KEY, else BUCKET.HOST/KEY */
    const char *key_id;     /* the access key id and its secret (ts_s3_credentials) */
    const char *secret;
    const char *session_token; /* NULL, or temporary credentials' token (x-amz-security-token) */
    bool goog_preconditions; /* Google Cloud Storage: a conditional put sends
                                x-goog-if-generation-match: 0, not If-None-Match: * */
    long timeout_ms;        /* one request, start to end (>= 100) */
    long connect_timeout_ms; /* >= 100 */
    int max_attempts;       /* >= 1 */
    long backoff_ms;        /* first back-off (>= 1) */
    long backoff_max_ms;    /* >= backoff_ms */
    size_t part_size;       /* ts_s3_put_file: multipart above this (>= 5 MiB, S3's minimum) */
    size_t max_object;      /* bytes of one GET answer (>= 1) */
    size_t max_list;        /* keys of one listing (>= 1) */
    const char *ca_file;    /* NULL: the system's CAs */
};

struct ts_s3;

/* The credentials: key_id_file and secret_file (the first line of each, line
 * break removed) if given, else the environment's AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY (a session token, AWS_SESSION_TOKEN, is the
 * caller's to read). Copied into key_id and secret. TS_OK, TS_ECONFIG
 * (missing, empty, too long, unreadable: why says which, never the secret). */
int ts_s3_credentials(const char *key_id_file, const char *secret_file, char *key_id,
                      size_t key_id_size, char *secret, size_t secret_size, char *why,
                      size_t why_size);

/* Checks cfg and makes the client (no request yet). cfg's strings are copied.
 * TS_OK, TS_EINVAL or TS_ECONFIG (why says which), TS_ENOMEM. */
int ts_s3_open(const struct ts_s3_cfg *cfg, struct ts_s3 **out, char *why, size_t why_size);

/* Writes len bytes (data lent) to key. if_none_match: only if the key does
 * not exist (TS_ECONFLICT if it does; a retried put that finds its own bytes
 * there succeeds). Stores that ignore the header (S3Proxy 2.6.0) overwrite. */
int ts_s3_put(struct ts_s3 *s3, const char *key, const void *data, size_t len,
              bool if_none_match, char *why, size_t why_size);

/* Writes the whole file open at fd (read with pread from 0; fd lent) to key:
 * one PUT up to cfg->part_size bytes, else a multipart upload of parts of
 * part_size (aborted on failure, so no part stays billed). */
int ts_s3_put_file(struct ts_s3 *s3, const char *key, int fd, char *why, size_t why_size);

/* Reads key into *out (malloc'ed, NUL-terminated after *len bytes; caller
 * frees). TS_ENOTFOUND if it does not exist; TS_EFULL over cfg->max_object. */
int ts_s3_get(struct ts_s3 *s3, const char *key, char **out, size_t *len, char *why,
              size_t why_size);

/* Server-side copy of from to to (S3 has no rename). TS_ENOTFOUND if from is
 * missing. */
int ts_s3_copy(struct ts_s3 *s3, const char *from, const char *to, char *why, size_t why_size);

/* Deletes key; a key that does not exist is no error. */
int ts_s3_delete(struct ts_s3 *s3, const char *key, char *why, size_t why_size);

/* Calls each(arg, key, size) for every key under prefix (relative keys, in
 * the store's order: lexicographic for S3), page by page. each returning
 * non-zero stops the listing and is returned. TS_EFULL past cfg->max_list
 * keys. */
int ts_s3_list(struct ts_s3 *s3, const char *prefix,
               int (*each)(void *arg, const char *key, uint64_t size), void *arg, char *why,
               size_t why_size);

/* Requests made and retried since open (for tests and metrics). */
void ts_s3_counts(const struct ts_s3 *s3, uint64_t *requests, uint64_t *retries);

/* Frees; NULL-safe. The secret is wiped from memory first. */
void ts_s3_close(struct ts_s3 *s3);

#endif
