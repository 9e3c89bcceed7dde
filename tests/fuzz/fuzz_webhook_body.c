/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_webhook_body.c - libFuzzer target for a webhook body cut into readings
 * (bridge/webhook_body.c): the input is a request's body, read both as CSV
 * and as JSON (a block of exactly its size: ASan sees any read past it).
 * Invariants (abort() on violation):
 *   CSV: at most max + 1; every line lies within the body, is not empty and
 *     holds no '\n' (one '\r' before the '\n' is dropped; another stays, and
 *     the verdict refuses the line);
 *   JSON: refused with a reason, or at most max + 1 lines, each within the
 *     decoded buffer (no longer than the body);
 *   the input is never written to.
 * Built and run by tests/fuzz/run.sh webhook_body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook_body.h"

#define MAX 16

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_webhook_body: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ts_webhook_line out[MAX];
    char *body = malloc(size ? size : 1), *copy = malloc(size ? size : 1),
         *dec = malloc(size ? size : 1);
    if (!body || !copy || !dec)
        return 0;
    memcpy(body, data, size);
    memcpy(copy, data, size);

    size_t k = ts_webhook_csv_lines(body, size, out, MAX);
    if (k > MAX + 1)
        fail("csv: more lines than max + 1");
    for (size_t i = 0; i < k && i < MAX; i++) {
        const struct ts_webhook_line *l = &out[i];
        if (l->p < body || l->n == 0 || l->p + l->n > body + size)
            fail("csv: a line outside the body, or empty");
        if (memchr(l->p, '\n', l->n))
            fail("csv: a line holds a '\\n'");
    }

    const char *why = NULL;
    k = ts_webhook_json_lines(body, size, dec, out, MAX, &why);
    if (k == (size_t)-1) {
        if (!why || !*why)
            fail("json: refused without a reason");
    } else {
        if (k > MAX + 1)
            fail("json: more lines than max + 1");
        for (size_t i = 0; i < k && i < MAX; i++)
            if (out[i].p < dec || out[i].p + out[i].n > dec + size)
                fail("json: a line outside the decoded buffer");
    }
    if (memcmp(body, copy, size) != 0)
        fail("the body was written to");
    free(body);
    free(copy);
    free(dec);
    return 0;
}
