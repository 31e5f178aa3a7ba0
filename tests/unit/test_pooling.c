/* test_pooling.c: max/avg/global/adaptive pooling against PyTorch (fixtures/gen_pooling.py). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/pooling.h"
#include "tests/unit/fixture.h"

static struct fx fx;
static struct eng_ctx ctx1, ctx3;

static void pool_params(json_t *c, struct eng_pool2d *p)
{
    int64_t k[2], s[2], pad[4], d[2];
    ck_assert_int_eq(fx_ints(c, "k", k, 2), 2);
    ck_assert_int_eq(fx_ints(c, "s", s, 2), 2);
    ck_assert_int_eq(fx_ints(c, "p", pad, 4), 4);
    ck_assert_int_eq(fx_ints(c, "d", d, 2), 2);
    memset(p, 0, sizeof *p);
    p->kh = (int)k[0], p->kw = (int)k[1];
    p->sh = (int)s[0], p->sw = (int)s[1];
    p->pad_t = (int)pad[0], p->pad_b = (int)pad[1], p->pad_l = (int)pad[2], p->pad_r = (int)pad[3];
    p->dh = (int)d[0], p->dw = (int)d[1];
    p->ceil_mode = fx_bool(c, "ceil");
    p->exclude_pad = fx_bool(c, "exclude_pad");
    p->tf_same = fx_bool(c, "tf_same");
}

START_TEST(pool_case)
{
    json_t *c = fx_case(&fx, _i);
    const char *op = fx_str(c, "op");
    bool slice = fx_bool(c, "slice");
    int64_t pre = slice ? 3 : 0, post = slice ? 5 : 0;
    struct eng_tensor x0, want, x, y;
    float *xb0 = fx_load(&fx, c, "x", &x0), *wb = fx_load(&fx, c, "y", &want);
    int64_t nx, ny;
    float *xb = fx_widen(&x0, pre, post, true, &x, &nx);
    const struct eng_ctx *ctxs[2] = {&ctx1, &ctx3};
    for (int t = 0; t < 2; t++) {
        float *yb = fx_widen(&want, pre, post, false, &y, &ny);
        char name[64];
        int rc;
        if (strcmp(op, "max") == 0 || strcmp(op, "avg") == 0) {
            struct eng_pool2d p;
            pool_params(c, &p);
            int64_t oh, ow;
            ck_assert_msg(eng_pool2d_out(&p, x.ne[1], x.ne[2], &oh, &ow) == 0, "%s", eng_errmsg());
            ck_assert_msg(oh == want.ne[1] && ow == want.ne[2], "%s: output %lldx%lld, torch %lldx%lld",
                          fx_name(c), (long long)oh, (long long)ow, (long long)want.ne[1], (long long)want.ne[2]);
            rc = op[0] == 'm' ? eng_max_pool2d(ctxs[t], &p, &x, &y) : eng_avg_pool2d(ctxs[t], &p, &x, &y);
            snprintf(name, sizeof name, "%s%s", op[0] == 'm' ? "max_pool2d" : "avg_pool2d",
                     p.tf_same ? "_tf_same" : "");
        } else if (strcmp(op, "adaptive") == 0) {
            rc = eng_adaptive_avg_pool2d(ctxs[t], &x, &y);
            snprintf(name, sizeof name, "adaptive_avg_pool2d");
        } else {
            ck_assert_int_eq(fx_int(c, "out_ndim"), want.ndim);
            rc = eng_global_avg_pool(ctxs[t], &x, &y);
            snprintf(name, sizeof name, "global_avg_pool");
        }
        ck_assert_msg(rc == 0, "%s: %s", fx_name(c), eng_errmsg());
        fx_check(name, c, &y, &want, 1e-5);
        if (slice)
            fx_check_guards(name, c, yb, ny, pre, want.ne[want.ndim - 1], post);
        free(yb);
    }
    free(xb);
    free(xb0);
    free(wb);
}
END_TEST

/* The max must skip padded cells even when every real value is negative. */
START_TEST(max_padding_never_wins)
{
    float xb[2 * 2], yb[2 * 2];
    for (int i = 0; i < 4; i++)
        xb[i] = -5.0f - (float)i;
    struct eng_tensor x = eng_tensor_make("x", xb, 4, (int64_t[]){1, 2, 2, 1});
    struct eng_tensor y = eng_tensor_make("y", yb, 4, (int64_t[]){1, 2, 2, 1});
    struct eng_pool2d p = eng_pool2d_make(3, 1, 1);
    ck_assert_int_eq(eng_max_pool2d(&ctx1, &p, &x, &y), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(yb[i], -5.0f);
    /* torch propagates NaN through a max; a plain comparison would drop it. */
    xb[3] = NAN;
    ck_assert_int_eq(eng_max_pool2d(&ctx1, &p, &x, &y), 0);
    for (int i = 0; i < 4; i++)
        ck_assert(isnan(yb[i]));
}
END_TEST

START_TEST(out_shapes)
{
    int64_t oh, ow;
    struct eng_pool2d stem = eng_pool2d_make(3, 2, 1);
    ck_assert_int_eq(eng_pool2d_out(&stem, 112, 111, &oh, &ow), 0);
    ck_assert_int_eq(oh, 56);
    ck_assert_int_eq(ow, 56);
    struct eng_pool2d tf = eng_pool2d_tf_same(3, 2);
    ck_assert_int_eq(eng_pool2d_out(&tf, 112, 111, &oh, &ow), 0);
    ck_assert_int_eq(oh, 56);
    ck_assert_int_eq(ow, 56);
    struct eng_pool2d tr = eng_pool2d_make(2, 0, 0); /* stride 0: the window */
    ck_assert_int_eq(eng_pool2d_out(&tr, 13, 11, &oh, &ow), 0);
    ck_assert_int_eq(oh, 6);
    ck_assert_int_eq(ow, 5);
}
END_TEST

START_TEST(errors)
{
    float xb[2 * 5 * 5 * 3], yb[2 * 5 * 5 * 3];
    memset(xb, 0, sizeof xb);
    struct eng_tensor x = eng_tensor_make("feat", xb, 4, (int64_t[]){2, 5, 5, 3});
    struct eng_pool2d p = eng_pool2d_make(3, 2, 1);

    struct eng_tensor bad = eng_tensor_make("pooled", yb, 4, (int64_t[]){2, 4, 3, 3});
    ck_assert_int_eq(eng_max_pool2d(&ctx1, &p, &x, &bad), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "'pooled' has shape [2,4,3,3], expected [2,3,3,3]"));
    bad = eng_tensor_make("pooled", yb, 4, (int64_t[]){2, 3, 3, 4});
    ck_assert_int_eq(eng_avg_pool2d(&ctx1, &p, &x, &bad), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "expected [2,3,3,3]"));

    struct eng_tensor y = eng_tensor_make("pooled", yb, 4, (int64_t[]){2, 3, 3, 3});
    struct eng_pool2d wide = eng_pool2d_make(3, 2, 2); /* torch: pad at most half the window */
    ck_assert_int_eq(eng_max_pool2d(&ctx1, &wide, &x, &y), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "padding"));
    struct eng_pool2d big = eng_pool2d_make(7, 1, 0); /* window larger than the input */
    ck_assert_int_eq(eng_avg_pool2d(&ctx1, &big, &x, &y), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "smaller than the window"));
    struct eng_pool2d dil = eng_pool2d_make(2, 1, 0);
    dil.dh = dil.dw = 2;
    ck_assert_int_eq(eng_avg_pool2d(&ctx1, &dil, &x, &y), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "dilation"));
    struct eng_pool2d zero = {0};
    ck_assert_int_eq(eng_pool2d_out(&zero, 5, 5, &(int64_t){0}, &(int64_t){0}), -1);

    struct eng_tensor flat = eng_tensor_make("flat", xb, 2, (int64_t[]){2, 75});
    ck_assert_int_eq(eng_max_pool2d(&ctx1, &p, &flat, &y), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "'flat' has shape [2,75], expected [N,H,W,C]"));

    struct eng_tensor g = eng_tensor_make("g", yb, 2, (int64_t[]){2, 4});
    ck_assert_int_eq(eng_global_avg_pool(&ctx1, &x, &g), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "'g' [2,4]"));
    g = eng_tensor_make("g", yb, 4, (int64_t[]){2, 2, 1, 3});
    ck_assert_int_eq(eng_global_avg_pool(&ctx1, &x, &g), -1);

    struct eng_tensor a = eng_tensor_make("a", yb, 4, (int64_t[]){1, 3, 3, 3});
    ck_assert_int_eq(eng_adaptive_avg_pool2d(&ctx1, &x, &a), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "adaptive_avg_pool2d: output 'a' [1,3,3,3]"));
    a = eng_tensor_make("a", yb, 4, (int64_t[]){2, 0, 3, 3});
    ck_assert_int_eq(eng_adaptive_avg_pool2d(&ctx1, &x, &a), -1);
}
END_TEST

int main(void)
{
    TCase *tc = fx_begin(&fx, "pooling");
    fx_ctx_pair(&ctx1, &ctx3);
    tcase_add_loop_test(tc, pool_case, 0, fx_ncases(&fx));
    tcase_add_test(tc, max_padding_never_wins);
    tcase_add_test(tc, out_shapes);
    tcase_add_test(tc, errors);
    int rc = fx_finish(&fx, tc);
    eng_ctx_free(&ctx1);
    eng_ctx_free(&ctx3);
    return rc;
}
