/* test_resize.c: engine/resize against torch F.interpolate and a transcription of tfjs resizeBilinear. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/resize.h"
#include "tests/unit/fixture.h"

static struct fx fx;

/* Runs one fixture case with nthreads threads into a channel slice of a wider buffer when
 * `strided`, so both the contiguous and the strided vertical pass are checked. */
static void run_case(int i, int nthreads, bool strided)
{
    json_t *c = fx_case(&fx, i);
    struct eng_tensor x, want;
    float *xb = fx_load(&fx, c, "x", &x), *wb = fx_load(&fx, c, "y", &want);
    enum eng_resize_mode mode;
    ck_assert_msg(eng_resize_mode_parse(fx_str(c, "mode"), &mode) == 0, "%s", eng_errmsg());
    bool aa = fx_bool(c, "antialias");
    int64_t out[2];
    ck_assert_int_eq(fx_ints(c, "out", out, 2), 2);
    int64_t n = x.ne[0], ch = x.ne[3], extra = strided ? 5 : 0;

    float *yb = malloc(sizeof(float) * (size_t)(n * out[0] * out[1] * (ch + extra)));
    ck_assert_ptr_nonnull(yb);
    struct eng_tensor wide = eng_tensor_make("wide", yb, 4, (int64_t[]){n, out[0], out[1], ch + extra});
    struct eng_tensor y = eng_tensor_slice(&wide, 3, extra ? 2 : 0, ch);

    struct eng_ctx ctx;
    size_t need = eng_resize_scratch_bytes(mode, aa, n, x.ne[1], x.ne[2], ch, out[0], out[1]);
    ck_assert(eng_ctx_init(&ctx, nthreads, need) == 0);
    ck_assert_msg(eng_resize(&ctx, mode, aa, &x, &y) == 0, "%s: %s", fx_name(c), eng_errmsg());
    ck_assert_uint_eq(ctx.scratch.used, 0);
    ck_assert_uint_le(ctx.scratch.peak, need);
    char op[48];
    snprintf(op, sizeof op, "%s%s", fx_str(c, "mode"), aa ? "_aa" : "");
    /* Torch and we both accumulate in float in the same order; 1e-5 of the largest value. */
    fx_check(op, c, &y, &want, 1e-5);
    eng_ctx_free(&ctx);
    free(yb);
    free(xb);
    free(wb);
}

START_TEST(resize_case)
{
    run_case(_i, 1, false);
}
END_TEST

START_TEST(resize_case_threads_strided)
{
    run_case(_i, 3, true);
}
END_TEST

START_TEST(resize_errors)
{
    float xb[2 * 4 * 4 * 3], yb[2 * 3 * 3 * 3], zb[2 * 3 * 3 * 2];
    memset(xb, 0, sizeof xb);
    struct eng_tensor x = eng_tensor_make("img", xb, 4, (int64_t[]){2, 4, 4, 3});
    struct eng_tensor y = eng_tensor_make("out", yb, 4, (int64_t[]){2, 3, 3, 3});
    struct eng_tensor z = eng_tensor_make("out2c", zb, 4, (int64_t[]){2, 3, 3, 2});
    struct eng_ctx ctx;
    ck_assert(eng_ctx_init(&ctx, 2, 1 << 16) == 0);

    ck_assert_int_eq(eng_resize(&ctx, ENG_RESIZE_BILINEAR, false, &x, &z), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "out2c"));
    ck_assert_int_eq(eng_resize(&ctx, ENG_RESIZE_TF_BILINEAR, true, &x, &y), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "antialias"));
    ck_assert_int_eq(eng_resize(&ctx, ENG_RESIZE_BILINEAR, false, &x, &x), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "aliases"));
    struct eng_tensor flat = eng_tensor_make("flat", xb, 3, (int64_t[]){4, 4, 3});
    ck_assert_int_eq(eng_resize(&ctx, ENG_RESIZE_BICUBIC, false, &flat, &y), -1);
    enum eng_resize_mode m;
    ck_assert_int_eq(eng_resize_mode_parse("nearest", &m), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "nearest"));
    ck_assert_uint_eq(eng_resize_scratch_bytes(ENG_RESIZE_BILINEAR, false, 2, 0, 4, 3, 3, 3), 0);
    eng_ctx_free(&ctx);

    /* Scratch one cache line short of what the sizing function asks for: a clean -1, nothing leaked. */
    size_t need = eng_resize_scratch_bytes(ENG_RESIZE_BICUBIC, true, 2, 4, 4, 3, 3, 3);
    ck_assert(eng_ctx_init(&ctx, 1, need - ENG_ARENA_ALIGN) == 0);
    ck_assert_int_eq(eng_resize(&ctx, ENG_RESIZE_BICUBIC, true, &x, &y), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "scratch"));
    ck_assert_uint_eq(ctx.scratch.used, 0);
    eng_ctx_free(&ctx);
}
END_TEST

int main(void)
{
    TCase *tc = fx_begin(&fx, "resize");
    tcase_add_loop_test(tc, resize_case, 0, fx_ncases(&fx));
    tcase_add_loop_test(tc, resize_case_threads_strided, 0, fx_ncases(&fx));
    tcase_add_test(tc, resize_errors);
    return fx_finish(&fx, tc);
}
