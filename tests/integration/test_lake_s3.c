/* SPDX-License-Identifier: Apache-2.0 */
/* test_lake_s3.c - the object lake's S3 client (bridge/lake_s3.c) against a
 * real S3 API server, S3Proxy, directly and through s3_fault_proxy.py (server
 * errors, resets, lost answers, oversized and endless answers), and against a
 * port where nothing listens. Run by test_lake_s3.sh, which starts both and
 * passes them in the environment:
 *   TS_S3_ENDPOINT        S3Proxy (bucket "lake" exists)
 *   TS_S3_FAULT_ENDPOINT  the fault proxy in front of it
 *   TS_S3_PLAN            the proxy's plan file (what it does to the next requests)
 *   TS_S3_DOWN_ENDPOINT   nothing listens there
 *   TS_S3_KEY_ID_FILE, TS_S3_SECRET_FILE   the credentials */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "lake_s3.h"

static char key_id[256], secret[256];

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "%s is not set (run test_lake_s3.sh)\n", name);
        exit(2);
    }
    return v;
}

static struct ts_s3_cfg cfg_for(const char *endpoint, const char *url)
{
    return (struct ts_s3_cfg){
        .url = url, .endpoint = endpoint, .region = "us-east-1", .path_style = true,
        .key_id = key_id, .secret = secret, .timeout_ms = 30000, .connect_timeout_ms = 2000,
        .max_attempts = 4, .backoff_ms = 10, .backoff_max_ms = 80, .part_size = 5u << 20,
        .max_object = 16u << 20, .max_list = 100000};
}

static struct ts_s3 *open_at(const char *endpoint, const char *url)
{
    struct ts_s3_cfg cfg = cfg_for(endpoint, url);
    struct ts_s3 *s3 = NULL;
    char why[256] = "";
    int err = ts_s3_open(&cfg, &s3, why, sizeof why);
    if (err)
        fprintf(stderr, "open: %s\n", why);
    assert_int_equal(err, TS_OK);
    return s3;
}

static void plan(const char *words)
{
    FILE *f = fopen(env("TS_S3_PLAN"), "w");
    assert_non_null(f);
    fputs(words, f);
    fclose(f);
}

static void plan_is_used(void)
{
    char buf[256] = "";
    FILE *f = fopen(env("TS_S3_PLAN"), "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, "");
}

static void put_str(struct ts_s3 *s3, const char *key, const char *text)
{
    char why[512] = "";
    int err = ts_s3_put(s3, key, text, strlen(text), false, why, sizeof why);
    if (err)
        fprintf(stderr, "put %s: %s\n", key, why);
    assert_int_equal(err, TS_OK);
}

static void assert_object(struct ts_s3 *s3, const char *key, const char *text)
{
    char *got = NULL, why[512] = "";
    size_t len = 0;
    int err = ts_s3_get(s3, key, &got, &len, why, sizeof why);
    if (err)
        fprintf(stderr, "get %s: %s\n", key, why);
    assert_int_equal(err, TS_OK);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(got, text, len);
    free(got);
}

struct listing {
    char keys[16][128];
    uint64_t sizes[16];
    int n;
};

static int collect(void *arg, const char *key, uint64_t size)
{
    struct listing *l = arg;
    if (l->n == 16)
        return TS_EFULL;
    snprintf(l->keys[l->n], sizeof l->keys[l->n], "%s", key);
    l->sizes[l->n++] = size;
    return TS_OK;
}

/* PUT, GET, copy (the object lake's rename), DELETE and LIST with a prefix
 * in the url: keys come back relative to it, names with '=' survive the
 * signature. */
static void test_round_trip(void **state)
{
    (void)state;
    struct ts_s3 *s3 = open_at(env("TS_S3_ENDPOINT"), "s3://lake/rt/pre");
    char *got = NULL, why[512] = "";
    size_t len;
    put_str(s3, "turnstile/event_date=2023-06-03/.part-x.tmp", "a,b\n1,2\n");
    assert_object(s3, "turnstile/event_date=2023-06-03/.part-x.tmp", "a,b\n1,2\n");
    assert_int_equal(ts_s3_copy(s3, "turnstile/event_date=2023-06-03/.part-x.tmp",
                                "turnstile/event_date=2023-06-03/part-x.csv.gz", why, sizeof why),
                     TS_OK);
    assert_int_equal(ts_s3_delete(s3, "turnstile/event_date=2023-06-03/.part-x.tmp", why,
                                  sizeof why), TS_OK);
    assert_object(s3, "turnstile/event_date=2023-06-03/part-x.csv.gz", "a,b\n1,2\n");
    assert_int_equal(ts_s3_get(s3, "turnstile/event_date=2023-06-03/.part-x.tmp", &got, &len,
                               why, sizeof why), TS_ENOTFOUND);
    assert_null(got);
    assert_int_equal(ts_s3_copy(s3, "nope", "nope2", why, sizeof why), TS_ENOTFOUND);
    /* deleting what is not there is no error (a recovery may run twice) */
    assert_int_equal(ts_s3_delete(s3, "turnstile/nope", why, sizeof why), TS_OK);
    put_str(s3, "turnstile/_manifest/t-0/000000000001.ckpt", "one");
    put_str(s3, "turnstile/_manifest/t-0/000000000002.ckpt", "two!");
    put_str(s3, "turnstile/_manifest/t-1/000000000001.ckpt", "other partition");
    put_str(s3, "empty", "");
    assert_object(s3, "empty", "");
    struct listing l = {0};
    assert_int_equal(ts_s3_list(s3, "turnstile/_manifest/t-0/", collect, &l, why, sizeof why),
                     TS_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.keys[0], "turnstile/_manifest/t-0/000000000001.ckpt");
    assert_string_equal(l.keys[1], "turnstile/_manifest/t-0/000000000002.ckpt");
    assert_int_equal(l.sizes[1], 4);
    /* the url's prefix fences the listing: nothing of another prefix */
    struct ts_s3 *other = open_at(env("TS_S3_ENDPOINT"), "s3://lake/rt/pr");
    l = (struct listing){0};
    assert_int_equal(ts_s3_list(other, NULL, collect, &l, why, sizeof why), TS_OK);
    assert_int_equal(l.n, 0);
    ts_s3_close(other);
    /* bad keys never reach the server */
    assert_int_equal(ts_s3_put(s3, "../x", "", 0, false, why, sizeof why), TS_EINVAL);
    assert_int_equal(ts_s3_put(s3, "a b", "", 0, false, why, sizeof why), TS_EINVAL);
    assert_int_equal(ts_s3_put(s3, "/abs", "", 0, false, why, sizeof why), TS_EINVAL);
    assert_int_equal(ts_s3_put(s3, "a/./b", "", 0, false, why, sizeof why), TS_EINVAL);
    assert_int_equal(ts_s3_put(s3, "a/..", "", 0, false, why, sizeof why), TS_EINVAL);
    put_str(s3, "a/.hidden..tmp", "dots inside a name are fine");
    ts_s3_close(s3);
}

/* Virtual-host addressing: BUCKET.HOST/KEY reaches the same objects as
 * path-style HOST/BUCKET/KEY (S3Proxy with s3proxy.virtual-host=localhost). */
static void test_virtual_host(void **state)
{
    (void)state;
    struct ts_s3_cfg cfg = cfg_for(env("TS_S3_FAULT_ENDPOINT"), "s3://lake/vh");
    struct ts_s3 *vh = NULL, *path = open_at(env("TS_S3_ENDPOINT"), "s3://lake/vh");
    char why[512] = "", log[4096], line[512] = "";
    cfg.path_style = false;
    assert_int_equal(ts_s3_open(&cfg, &vh, why, sizeof why), TS_OK);
    plan("");
    put_str(vh, "event_date=2023-06-03/part-a.csv.gz", "virtual host");
    /* the proxy saw the key without the bucket in the path */
    snprintf(log, sizeof log, "%s.log", env("TS_S3_PLAN"));
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        ;
    fclose(f);
    assert_string_equal(line, "PUT /vh/event_date%3D2023-06-03/part-a.csv.gz fwd\n");
    assert_object(path, "event_date=2023-06-03/part-a.csv.gz", "virtual host");
    assert_int_equal(ts_s3_copy(vh, "event_date=2023-06-03/part-a.csv.gz", "b", why, sizeof why),
                     TS_OK);
    assert_object(path, "b", "virtual host");
    struct listing l = {0};
    assert_int_equal(ts_s3_list(vh, NULL, collect, &l, why, sizeof why), TS_OK);
    assert_int_equal(l.n, 2);
    ts_s3_close(vh);
    ts_s3_close(path);
}

/* A file over part_size goes up in parts (11 MiB: 5 + 5 + 1) and reads back
 * the same; max_object bounds what a GET takes. */
static void test_multipart(void **state)
{
    (void)state;
    struct ts_s3 *s3 = open_at(env("TS_S3_ENDPOINT"), "s3://lake/mp");
    char path[] = "/tmp/ts-s3-mp-XXXXXX", why[512] = "";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    size_t size = 11u << 20;
    char *data = malloc(size), *got = NULL;
    assert_non_null(data);
    uint32_t x = 12345;
    for (size_t i = 0; i < size; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (char)(x >> 16);
    }
    assert_int_equal(write(fd, data, size), (ssize_t)size);
    uint64_t before, after;
    struct timespec t0, t1, t2;
    ts_s3_counts(s3, &before, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int err = ts_s3_put_file(s3, "big.csv.gz", fd, why, sizeof why);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (err)
        fprintf(stderr, "put_file: %s\n", why);
    assert_int_equal(err, TS_OK);
    ts_s3_counts(s3, &after, NULL);
    assert_int_equal(after - before, 5); /* initiate, 3 parts, complete */
    size_t len = 0;
    assert_int_equal(ts_s3_get(s3, "big.csv.gz", &got, &len, why, sizeof why), TS_OK);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    /* a figure, not an assertion */
    printf("11 MiB: multipart upload %.0f ms, get %.0f ms\n",
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
           (double)(t2.tv_sec - t1.tv_sec) * 1e3 + (double)(t2.tv_nsec - t1.tv_nsec) / 1e6);
    assert_int_equal(len, size);
    assert_memory_equal(got, data, size);
    free(got);
    /* a small file: one PUT */
    assert_int_equal(ftruncate(fd, 1000), 0);
    ts_s3_counts(s3, &before, NULL);
    assert_int_equal(ts_s3_put_file(s3, "small.csv.gz", fd, why, sizeof why), TS_OK);
    ts_s3_counts(s3, &after, NULL);
    assert_int_equal(after - before, 1);
    assert_int_equal(ts_s3_get(s3, "small.csv.gz", &got, &len, why, sizeof why), TS_OK);
    assert_int_equal(len, 1000);
    assert_memory_equal(got, data, 1000);
    free(got);
    ts_s3_close(s3);
    struct ts_s3_cfg cfg = cfg_for(env("TS_S3_ENDPOINT"), "s3://lake/mp");
    cfg.max_object = 1u << 20;
    assert_int_equal(ts_s3_open(&cfg, &s3, why, sizeof why), TS_OK);
    assert_int_equal(ts_s3_get(s3, "big.csv.gz", &got, &len, why, sizeof why), TS_EFULL);
    assert_null(got);
    ts_s3_close(s3);
    close(fd);
    free(data);
}

/* Server errors and resets are retried with back-off, up to max_attempts;
 * then the error names the status and S3's code. */
static void test_retry(void **state)
{
    (void)state;
    struct ts_s3 *s3 = open_at(env("TS_S3_FAULT_ENDPOINT"), "s3://lake/retry");
    char why[512] = "";
    uint64_t req0, ret0, req, ret;

    ts_s3_counts(s3, &req0, &ret0);
    plan("503 500 reset");
    put_str(s3, "a", "after three failures");
    plan_is_used();
    ts_s3_counts(s3, &req, &ret);
    /* libcurl itself re-sends once on a kept-alive connection reset before
     * any answer: the reset is seen by the proxy, not always counted here */
    assert_in_range(req - req0, 3, 4);
    assert_in_range(ret - ret0, 2, 3);
    assert_object(s3, "a", "after three failures");

    plan("503 503 503 503 fwd");
    assert_int_equal(ts_s3_put(s3, "b", "x", 1, false, why, sizeof why), TS_EIO);
    assert_non_null(strstr(why, "HTTP 503 SlowDown"));
    assert_null(strstr(why, secret));
    char buf[16];
    FILE *f = fopen(env("TS_S3_PLAN"), "r");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof buf, f), 3); /* "fwd": the 5th was never sent */
    fclose(f);
    plan("");

    /* 4xx are final: no retry */
    ts_s3_counts(s3, &req0, NULL);
    plan("500 403");
    assert_int_equal(ts_s3_put(s3, "c", "x", 1, false, why, sizeof why), TS_EIO);
    ts_s3_counts(s3, &req, NULL);
    assert_int_equal(req - req0, 2);
    ts_s3_close(s3);
}

/* If-None-Match: a 412 is TS_ECONFLICT (another writer has the key); a put
 * whose first attempt wrote but lost its answer, retried into a 412, finds
 * its own bytes and succeeds; other bytes there stay a conflict. */
static void test_conditional(void **state)
{
    (void)state;
    struct ts_s3 *s3 = open_at(env("TS_S3_FAULT_ENDPOINT"), "s3://lake/cond");
    char why[512] = "";

    plan("412");
    assert_int_equal(ts_s3_put(s3, "ck", "mine", 4, true, why, sizeof why), TS_ECONFLICT);
    plan("fwd503 412");
    assert_int_equal(ts_s3_put(s3, "ck", "mine", 4, true, why, sizeof why), TS_OK);
    plan_is_used();
    assert_object(s3, "ck", "mine");
    /* someone else's bytes: still a conflict */
    plan("503 412");
    assert_int_equal(ts_s3_put(s3, "ck", "ours", 4, true, why, sizeof why), TS_ECONFLICT);
    ts_s3_close(s3);
}

/* The last request the fault proxy saw, as its log line. */
static void last_request(char *line, size_t size)
{
    char log[4096];
    snprintf(log, sizeof log, "%s.log", env("TS_S3_PLAN"));
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    line[0] = '\0';
    while (fgets(line, (int)size, f))
        ;
    fclose(f);
}

/* Google Cloud Storage's precondition instead of If-None-Match, a 412 from
 * it a conflict the same; temporary credentials' token sent. S3Proxy 2.6.0
 * refuses x-amz-security-token (501 "Unknown header"), so the proxy answers
 * that request itself: the header is seen sent, not checked by a server. */
static void test_gcs_and_token(void **state)
{
    (void)state;
    struct ts_s3_cfg cfg = cfg_for(env("TS_S3_FAULT_ENDPOINT"), "s3://lake/gcs");
    struct ts_s3 *s3 = NULL;
    char why[512] = "", line[512];
    cfg.goog_preconditions = true;
    assert_int_equal(ts_s3_open(&cfg, &s3, why, sizeof why), TS_OK);
    plan("");
    assert_int_equal(ts_s3_put(s3, "ck", "g", 1, true, why, sizeof why), TS_OK);
    last_request(line, sizeof line);
    assert_string_equal(line, "PUT /lake/gcs/ck fwd x-goog-if-generation-match=0\n");
    assert_object(s3, "ck", "g");
    plan("412");
    assert_int_equal(ts_s3_put(s3, "ck", "h", 1, true, why, sizeof why), TS_ECONFLICT);
    ts_s3_close(s3);
    /* the default: If-None-Match, no token */
    s3 = open_at(env("TS_S3_FAULT_ENDPOINT"), "s3://lake/gcs");
    plan("");
    assert_int_equal(ts_s3_put(s3, "ck2", "g", 1, true, why, sizeof why), TS_OK);
    last_request(line, sizeof line);
    assert_string_equal(line, "PUT /lake/gcs/ck2 fwd If-None-Match=*\n");
    ts_s3_close(s3);
    cfg = cfg_for(env("TS_S3_FAULT_ENDPOINT"), "s3://lake/gcs");
    cfg.session_token = "FwoGZXIvYXdzEXAMPLETOKEN";
    assert_int_equal(ts_s3_open(&cfg, &s3, why, sizeof why), TS_OK);
    plan("200");
    assert_int_equal(ts_s3_put(s3, "tok", "t", 1, false, why, sizeof why), TS_OK);
    last_request(line, sizeof line);
    assert_string_equal(line, "PUT /lake/gcs/tok 200 x-amz-security-token\n");
    plan("403");
    assert_int_equal(ts_s3_put(s3, "tok", "t", 1, false, why, sizeof why), TS_EIO);
    assert_null(strstr(why, "EXAMPLETOKEN"));
    ts_s3_close(s3);
    cfg.session_token = "two\nlines";
    assert_int_equal(ts_s3_open(&cfg, &s3, why, sizeof why), TS_ECONFIG);
}

/* A hostile server: an answer over the bound, a listing truncated forever. */
static void test_hostile(void **state)
{
    (void)state;
    struct ts_s3_cfg cfg = cfg_for(env("TS_S3_FAULT_ENDPOINT"), "s3://lake/host");
    struct ts_s3 *s3 = NULL;
    char why[512] = "", *got = NULL;
    size_t len;
    cfg.max_object = 1u << 20;
    cfg.max_list = 2;
    assert_int_equal(ts_s3_open(&cfg, &s3, why, sizeof why), TS_OK);
    plan("big");
    assert_int_equal(ts_s3_get(s3, "x", &got, &len, why, sizeof why), TS_EFULL);
    plan("trunc trunc"); /* the same token twice */
    struct listing l = {0};
    assert_int_equal(ts_s3_list(s3, "p/", collect, &l, why, sizeof why), TS_ESHORT);
    plan("");
    put_str(s3, "p/1", "1");
    put_str(s3, "p/2", "2");
    put_str(s3, "p/3", "3");
    l = (struct listing){0};
    assert_int_equal(ts_s3_list(s3, "p/", collect, &l, why, sizeof why), TS_EFULL);
    ts_s3_close(s3);
}

/* Nothing listens: every attempt fails at once, then TS_ECONNECT, in about
 * the back-off's time (no timed assertion: the figure is printed). */
static void test_server_down(void **state)
{
    (void)state;
    struct ts_s3 *s3 = open_at(env("TS_S3_DOWN_ENDPOINT"), "s3://lake/down");
    char why[512] = "";
    uint64_t req, ret;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(ts_s3_put(s3, "x", "x", 1, false, why, sizeof why), TS_ECONNECT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ts_s3_counts(s3, &req, &ret);
    assert_int_equal(req, 4);
    assert_int_equal(ret, 3);
    printf("server down: 4 attempts in %.0f ms: %s\n",
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6, why);
    ts_s3_close(s3);
}

/* Wrong secret: 403 from the server, not retried, the secret never in why;
 * credentials from files and from the environment. */
static void test_credentials(void **state)
{
    (void)state;
    char id[256], sec[256], why[512] = "";
    struct ts_s3 *s3 = NULL;
    assert_int_equal(ts_s3_credentials(env("TS_S3_KEY_ID_FILE"), env("TS_S3_SECRET_FILE"), id,
                                       sizeof id, sec, sizeof sec, why, sizeof why), TS_OK);
    assert_string_equal(id, key_id);
    setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
    assert_int_equal(ts_s3_credentials(NULL, NULL, id, sizeof id, sec, sizeof sec, why,
                                       sizeof why), TS_OK);
    assert_string_equal(id, "ENVID");
    assert_string_equal(sec, "ENVSECRET");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    assert_int_equal(ts_s3_credentials(NULL, NULL, id, sizeof id, sec, sizeof sec, why,
                                       sizeof why), TS_ECONFIG);
    assert_int_equal(ts_s3_credentials("/nonexistent", NULL, id, sizeof id, sec, sizeof sec, why,
                                       sizeof why), TS_ECONFIG);
    struct ts_s3_cfg cfg = cfg_for(env("TS_S3_ENDPOINT"), "s3://lake/cred");
    cfg.secret = "WrongSecretValue123";
    assert_int_equal(ts_s3_open(&cfg, &s3, why, sizeof why), TS_OK);
    uint64_t req;
    assert_int_equal(ts_s3_put(s3, "x", "x", 1, false, why, sizeof why), TS_EIO);
    ts_s3_counts(s3, &req, NULL);
    assert_int_equal(req, 1);
    assert_non_null(strstr(why, "403"));
    assert_null(strstr(why, "WrongSecretValue123"));
    ts_s3_close(s3);
    /* bad configurations */
    cfg = cfg_for(env("TS_S3_ENDPOINT"), "s3://Lake_Upper/x");
    assert_int_equal(ts_s3_open(&cfg, &s3, why, sizeof why), TS_ECONFIG);
    cfg = cfg_for("ftp://127.0.0.1:1", "s3://lake");
    assert_int_equal(ts_s3_open(&cfg, &s3, why, sizeof why), TS_ECONFIG);
    cfg = cfg_for(env("TS_S3_ENDPOINT"), "s3://lake");
    cfg.part_size = 1u << 20;
    assert_int_equal(ts_s3_open(&cfg, &s3, why, sizeof why), TS_ECONFIG);
    cfg = cfg_for(env("TS_S3_ENDPOINT"), "s3://lake/a//b");
    assert_int_equal(ts_s3_open(&cfg, &s3, why, sizeof why), TS_ECONFIG);
}

/* "outage KEY TEXT": one put through a server that is down when it starts
 * (test_lake_s3.sh restarts it meanwhile), retried for up to 100 to 200 s;
 * prints the attempts. */
static int outage(const char *key, const char *text)
{
    struct ts_s3_cfg cfg = cfg_for(env("TS_S3_ENDPOINT"), "s3://lake/outage");
    struct ts_s3 *s3 = NULL;
    char why[512] = "";
    uint64_t req, ret;
    cfg.max_attempts = 100; /* 100 to 200 s: longer than a slow JVM start */
    cfg.backoff_ms = 200;
    cfg.backoff_max_ms = 2000;
    cfg.connect_timeout_ms = 1000;
    if (ts_s3_open(&cfg, &s3, why, sizeof why))
        return fprintf(stderr, "open: %s\n", why), 1;
    int err = ts_s3_put(s3, key, text, strlen(text), false, why, sizeof why);
    ts_s3_counts(s3, &req, &ret);
    printf("outage: %s after %" PRIu64 " attempts%s%s\n", err ? "failed" : "written", req,
           err ? ": " : "", err ? why : "");
    ts_s3_close(s3);
    return err ? 1 : 0;
}

int main(int argc, char **argv)
{
    char why[256];
    if (ts_s3_credentials(env("TS_S3_KEY_ID_FILE"), env("TS_S3_SECRET_FILE"), key_id,
                          sizeof key_id, secret, sizeof secret, why, sizeof why)) {
        fprintf(stderr, "%s\n", why);
        return 2;
    }
    if (argc == 4 && !strcmp(argv[1], "outage"))
        return outage(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_virtual_host),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_retry),       cmocka_unit_test(test_conditional),
        cmocka_unit_test(test_gcs_and_token),
        cmocka_unit_test(test_hostile),     cmocka_unit_test(test_server_down),
        cmocka_unit_test(test_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
