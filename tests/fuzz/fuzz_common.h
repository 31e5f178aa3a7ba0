/* What the libFuzzer harnesses share: exact-size copies of an input (so ASan sees the first
 * byte read past it), a scratch folder for readers that take paths, and a server with an empty
 * model repository that route handlers answer from.
 *
 *   int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
 *   {
 *       uint8_t *body = fuzz_copy(data, size);
 *       fuzz_route(srv_v1_predict, "application/json", body, size);   // aborts on a 500
 *       free(body);
 *       return 0;
 *   }
 *
 * A harness reports a broken invariant with FUZZ_CHECK, which aborts: libFuzzer saves the
 * input as a crash, like a sanitizer report.
 */
#ifndef SALIENT_TESTS_FUZZ_COMMON_H
#define SALIENT_TESTS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "server/routes.h"

#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond))                                                                       \
            fuzz_fail(__FILE__, __LINE__, #cond);                                          \
    } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *what);

/* A malloc'd copy of size bytes (never NULL; aborts when out of memory), plus a NUL after them
 * when nul is nonzero (for APIs that take C strings). Caller frees. */
uint8_t *fuzz_copy(const uint8_t *data, size_t size, int nul);

/* This process's scratch folder (created on first use under $TMPDIR, removed at exit), with a
 * trailing '/'. */
const char *fuzz_scratch_dir(void);

/* Replace file name in the scratch folder with len bytes; its full path is written to path
 * (cap bytes). Aborts on an I/O error: that is the machine, not the input. */
void fuzz_write_file(const char *name, const void *data, size_t len, char *path, size_t cap);

/* Run handler on a POST with this Content-Type and body for model "m" of a server that has no
 * models, as http.c would, then check the answer: a status was set, it is not 500 (500 is for
 * our bugs only), and the body is a JSON object with an "error" string (every request ends in
 * an error here: if nothing else, 404 for the unknown model). Returns the status. */
unsigned fuzz_route(srv_handler handler, const char *content_type, const uint8_t *body, size_t len);

#endif
