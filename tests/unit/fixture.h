/* Test fixtures: PyTorch-made inputs and expected outputs, and the comparison that prints
 * the worst error per op.
 *
 *   static struct fx fx;
 *   START_TEST(conv_case) {
 *       json_t *c = fx_case(&fx, _i);                       // table row _i
 *       struct eng_tensor x, want;
 *       float *xb = fx_load(&fx, c, "x", &x), *wb = fx_load(&fx, c, "y", &want);
 *       ... run the op into got ...
 *       fx_check("conv2d", c, &got, &want, 1e-5);
 *       free(xb); free(wb);
 *   } END_TEST
 *   int main(void) {
 *       TCase *tc = fx_begin(&fx, "conv");                   // tests/unit/fixtures/conv.safetensors
 *       tcase_add_loop_test(tc, conv_case, 0, fx_ncases(&fx));
 *       return fx_finish(&fx, tc);
 *   }
 *
 * A fixture file is safetensors: tensors named "<case>/<key>" (NHWC activations, torch-layout
 * weights) and __metadata__["cases"], a JSON list of {"name": ..., params...}: the case table
 * lives in the Python generator (tests/unit/fixtures/gen_<module>.py), once.
 */
#ifndef SALIENT_TESTS_FIXTURE_H
#define SALIENT_TESTS_FIXTURE_H

#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/ctx.h"
#include "engine/safetensors.h"
#include "engine/tensor.h"

struct fx {
    char module[64];
    struct eng_st_file *file;
    json_t *cases; /* owned */
};

/* Open $SALIENT_FIXTURES/<module>.safetensors (default tests/unit/fixtures); exits the test
 * program with a message if it is missing or malformed. */
void fx_open(struct fx *fx, const char *module);
void fx_close(struct fx *fx);
int fx_ncases(const struct fx *fx);
/* Case i (borrowed). */
json_t *fx_case(const struct fx *fx, int i);
const char *fx_name(json_t *c);
/* Parameters of a case; a missing key fails the test (no silent defaults). */
int fx_int(json_t *c, const char *key);
double fx_num(json_t *c, const char *key);
const char *fx_str(json_t *c, const char *key);
bool fx_bool(json_t *c, const char *key);
/* Like fx_int but returns def when absent. */
int fx_int_or(json_t *c, const char *key, int def);
/* Integer list param into out (at most cap); returns its length. */
int fx_ints(json_t *c, const char *key, int64_t *out, int cap);

/* Load tensor "<case>/<key>" as a contiguous fp32 tensor; returns the malloc'd buffer (caller
 * frees), fails the test if absent. */
float *fx_load(const struct fx *fx, json_t *c, const char *key, struct eng_tensor *t);
/* True if "<case>/<key>" exists. */
bool fx_has(const struct fx *fx, json_t *c, const char *key);

/* Compare got with want (shapes equal; got may be strided): the max abs difference must be
 * <= tol * max(1, max|want|). Records the worst error per op for fx_run's report; fails the
 * test with op, case, index and both values otherwise. Returns the max abs difference. */
double fx_check(const char *op, json_t *c, const struct eng_tensor *got, const struct eng_tensor *want,
                double tol);

/* Guarded outputs: a kernel under test reads from and writes into a channel slice of a wider,
 * NaN-filled buffer, so one that ignores the row stride, writes outside its slice or leaves an
 * output cell unwritten shows up in fx_check_guards or fx_check.
 *
 *   int64_t n;
 *   struct eng_tensor y;
 *   float *yb = fx_widen(&want, 3, 5, false, &y, &n);   // channels [3, 3+C) of C+8, rest NaN
 *   ... run the op into y, fx_check(..., &y, &want, tol) ...
 *   fx_check_guards("op", c, yb, n, 3, want.ne[want.ndim - 1], 5);
 *   free(yb);
 *
 * fx_widen returns a malloc'd buffer (caller frees) of t's shape with pre + post extra
 * innermost elements, all NaN; *view is the slice of t's shape inside it, holding a copy of t
 * when copy is set; *total gets the buffer's element count. Fails the test if out of memory. */
float *fx_widen(const struct eng_tensor *t, int64_t pre, int64_t post, bool copy, struct eng_tensor *view,
                int64_t *total);
/* Fail the test, naming op and case, if any of buf's n floats outside the slice (rows of
 * pre + ch + post, slice at [pre, pre + ch)) is not NaN any more. */
void fx_check_guards(const char *op, json_t *c, const float *buf, int64_t n, int64_t pre, int64_t ch,
                     int64_t post);

/* Scratch files for reader tests. fx_tmpdir_make turns tmpl ("/tmp/name-XXXXXX", modified
 * in place) into a new directory or exits the program; fx_tmpdir_remove deletes it and
 * everything under it (a warning on stderr if it cannot). */
void fx_tmpdir_make(char *tmpl);
void fx_tmpdir_remove(const char *dir);
/* Write n bytes to dir/name (replacing it); the path goes into path (cap bytes). Fails the
 * test if the file cannot be written whole. */
void fx_write_file(const char *dir, const char *name, const void *bytes, size_t n, char *path, size_t cap);
/* The last engine error (eng_errmsg) must start with path and contain want; fails the test
 * with the message otherwise. */
void fx_assert_error(const char *path, const char *want);

/* An op test's main in two calls: fx_begin opens the module's fixture (as fx_open, exiting
 * if it is bad) and returns a fresh "torch" test case for the caller to fill; fx_finish runs
 * it as the module's suite (fx_run), closes the fixture and returns main's exit status. */
TCase *fx_begin(struct fx *fx, const char *module);
int fx_finish(struct fx *fx, TCase *tc);
/* The contexts the op tests compare: ctx1 on one thread, ctx3 on three (uneven splits), no
 * scratch. Exits the program with a message if either cannot be made; free with eng_ctx_free. */
void fx_ctx_pair(struct eng_ctx *ctx1, struct eng_ctx *ctx3);

/* A suite with one test case. */
Suite *suite_with(TCase *tc, const char *name);
/* Run in-process (so the worst-error table survives), print "worst |err| per op", return
 * the exit status for main. */
int fx_run(Suite *s);

#endif
