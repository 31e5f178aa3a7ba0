/* test_pad.c: constant, reflect and replicate padding against torch F.pad (fixtures/gen_pad.py). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/pad.h"
#include "tests/unit/fixture.h"

static struct fx fx;
static struct eng_ctx ctx1, ctx3;

START_TEST(pad_case)
{
    json_t *c = fx_case(&fx, _i);
    bool slice = fx_bool(c, "slice");
    int64_t pre = slice ? 3 : 0, post = slice ? 5 : 0, pads[4], nx, ny;
    struct eng_tensor x0, want, x, y;
    float *xb0 = fx_load(&fx, c, "x", &x0), *wb = fx_load(&fx, c, "y", &want);
    float *xb = fx_widen(&x0, pre, post, true, &x, &nx);
    ck_assert_int_eq(fx_ints(c, "pad", pads, 4), 4);
    struct eng_pad2d p = {(int)pads[0], (int)pads[1], (int)pads[2], (int)pads[3], ENG_PAD_CONSTANT,
                          (float)fx_num(c, "value")};
    ck_assert_msg(eng_pad_parse(fx_str(c, "mode"), &p.mode) == 0, "%s", eng_errmsg());
    const struct eng_ctx *ctxs[2] = {&ctx1, &ctx3};
    for (int t = 0; t < 2; t++) {
        float *yb = fx_widen(&want, pre, post, false, &y, &ny);
        ck_assert_msg(eng_pad2d(ctxs[t], &p, &x, &y) == 0, "%s: %s", fx_name(c), eng_errmsg());
        char op[32];
        snprintf(op, sizeof op, "pad2d_%s", fx_str(c, "mode"));
        fx_check(op, c, &y, &want, 0.0); /* a copy: exact */
        if (slice)
            fx_check_guards(op, c, yb, ny, pre, want.ne[3], post);
        free(yb);
    }
    free(xb);
    free(xb0);
    free(wb);
}
END_TEST

START_TEST(errors)
{
    float xb[2 * 3 * 4 * 5], yb[2 * 9 * 9 * 5];
    memset(xb, 0, sizeof xb);
    struct eng_tensor x = eng_tensor_make("feat", xb, 4, (int64_t[]){2, 3, 4, 5});
    struct eng_tensor y = eng_tensor_make("padded", yb, 4, (int64_t[]){2, 5, 6, 5});
    struct eng_pad2d p = {1, 1, 1, 1, ENG_PAD_REFLECT, 0.0f};
    ck_assert_int_eq(eng_pad2d(&ctx1, &p, &x, &y), 0);

    struct eng_tensor bad = eng_tensor_make("padded", yb, 4, (int64_t[]){2, 5, 7, 5});
    ck_assert_int_eq(eng_pad2d(&ctx1, &p, &x, &bad), -1);
    ck_assert_str_eq(eng_errmsg(),
                     "pad2d: output 'padded' has shape [2,5,7,5], expected [2,5,6,5] for input 'feat' [2,3,4,5]");

    struct eng_pad2d r = {3, 0, 0, 0, ENG_PAD_REFLECT, 0.0f}; /* torch: pad must be < 3 */
    bad = eng_tensor_make("padded", yb, 4, (int64_t[]){2, 6, 4, 5});
    ck_assert_int_eq(eng_pad2d(&ctx1, &r, &x, &bad), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "must be smaller than the side it mirrors"));
    r.mode = ENG_PAD_REPLICATE; /* replicate has no such limit */
    ck_assert_int_eq(eng_pad2d(&ctx1, &r, &x, &bad), 0);

    struct eng_pad2d neg = {0, 0, -1, 0, ENG_PAD_CONSTANT, 0.0f};
    bad = eng_tensor_make("padded", yb, 4, (int64_t[]){2, 3, 3, 5});
    ck_assert_int_eq(eng_pad2d(&ctx1, &neg, &x, &bad), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "negative padding"));

    struct eng_tensor flat = eng_tensor_make("flat", xb, 2, (int64_t[]){6, 20});
    ck_assert_int_eq(eng_pad2d(&ctx1, &p, &flat, &y), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "expected [N,H,W,C]"));

    enum eng_pad_mode m;
    ck_assert_int_eq(eng_pad_parse("zeros", &m), 0);
    ck_assert_int_eq(m, ENG_PAD_CONSTANT);
    ck_assert_int_eq(eng_pad_parse("circular", &m), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "'circular'"));
    ck_assert_int_eq(eng_pad_parse(NULL, &m), -1);
}
END_TEST

int main(void)
{
    TCase *tc = fx_begin(&fx, "pad");
    fx_ctx_pair(&ctx1, &ctx3);
    tcase_add_loop_test(tc, pad_case, 0, fx_ncases(&fx));
    tcase_add_test(tc, errors);
    int rc = fx_finish(&fx, tc);
    eng_ctx_free(&ctx1);
    eng_ctx_free(&ctx3);
    return rc;
}
