/* test_norm.c: layer norm and folded batch norm against PyTorch (fixtures/gen_norm.py). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/norm.h"
#include "tests/unit/fixture.h"

static struct fx fx;
static struct eng_ctx ctx1, ctx3;

static float *load_opt(json_t *c, const char *key, bool present)
{
    struct eng_tensor t;
    return present ? fx_load(&fx, c, key, &t) : NULL;
}

START_TEST(norm_case)
{
    json_t *c = fx_case(&fx, _i);
    const char *op = fx_str(c, "op");
    bool slice = fx_bool(c, "slice"), inplace = fx_bool(c, "inplace"), affine = fx_bool(c, "affine");
    float eps = (float)fx_num(c, "eps");
    int64_t pre = slice ? 3 : 0, post = slice ? 5 : 0, nx, ny = 0;
    struct eng_tensor x0, want, x, y;
    float *xb0 = fx_load(&fx, c, "x", &x0), *wb = fx_load(&fx, c, "y", &want), *yb = NULL;
    float *xb = fx_widen(&x0, pre, post, true, &x, &nx);
    if (inplace)
        y = x;
    else
        yb = fx_widen(&want, pre, post, false, &y, &ny);
    int64_t ch = want.ne[want.ndim - 1];
    int rc;
    if (strcmp(op, "layer_norm") == 0) {
        float *w = load_opt(c, "weight", affine), *b = load_opt(c, "bias", affine);
        struct eng_layer_norm ln = {ch, w, b, eps};
        rc = eng_layer_norm(&ctx3, &ln, &x, &y);
        free(w);
        free(b);
    } else {
        float *g = load_opt(c, "gamma", affine), *b = load_opt(c, "beta", affine);
        float *m = load_opt(c, "mean", true), *v = load_opt(c, "var", true);
        float *scale = malloc((size_t)ch * sizeof(float)), *shift = malloc((size_t)ch * sizeof(float));
        ck_assert(scale && shift);
        struct eng_affine bn;
        ck_assert_msg(eng_batch_norm_init(&bn, ch, g, b, m, v, eps, scale, shift) == 0, "%s", eng_errmsg());
        ck_assert_int_eq(eng_act_parse(fx_str(c, "act"), &bn.act), 0);
        rc = eng_affine(&ctx3, &bn, &x, &y);
        free(g), free(b), free(m), free(v), free(scale), free(shift);
    }
    ck_assert_msg(rc == 0, "%s: %s", fx_name(c), eng_errmsg());
    fx_check(op, c, &y, &want, 1e-5);
    if (slice)
        fx_check_guards(op, c, inplace ? xb : yb, inplace ? nx : ny, pre, ch, post);
    free(xb);
    free(xb0);
    free(yb);
    free(wb);
}
END_TEST

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* Threads only split rows: a Swin-sized tensor must come out bit-identical on 1 and 3 threads. */
START_TEST(threads_match_serial)
{
    enum { ROWS = 2 * 56 * 7, D = 96, NE = ROWS * D };
    float *x = malloc(NE * sizeof(float)), *y1 = malloc(NE * sizeof(float)), *y3 = malloc(NE * sizeof(float));
    float w[D], b[D];
    ck_assert(x && y1 && y3);
    unsigned s = 11;
    for (int i = 0; i < NE; i++)
        x[i] = 3.0f * frand(&s);
    for (int i = 0; i < D; i++)
        w[i] = 1.0f + frand(&s), b[i] = frand(&s);
    struct eng_tensor tx = eng_tensor_make("x", x, 3, (int64_t[]){2, 56 * 7, D});
    struct eng_tensor t1 = eng_tensor_make("y1", y1, 3, (int64_t[]){2, 56 * 7, D});
    struct eng_tensor t3 = eng_tensor_make("y3", y3, 3, (int64_t[]){2, 56 * 7, D});
    struct eng_layer_norm ln = {D, w, b, 1e-5f};
    ck_assert_int_eq(eng_layer_norm(&ctx1, &ln, &tx, &t1), 0);
    ck_assert_int_eq(eng_layer_norm(&ctx3, &ln, &tx, &t3), 0);
    ck_assert(memcmp(y1, y3, NE * sizeof(float)) == 0);
    /* and each row is normalised: mean b-weighted, here checked without affine */
    struct eng_layer_norm plain = {D, NULL, NULL, 0.0f};
    ck_assert_int_eq(eng_layer_norm(&ctx3, &plain, &tx, &t3), 0);
    for (int r = 0; r < ROWS; r += 97) {
        double m = 0, v = 0;
        for (int i = 0; i < D; i++)
            m += y3[r * D + i];
        for (int i = 0; i < D; i++)
            v += (y3[r * D + i] - m / D) * (y3[r * D + i] - m / D);
        ck_assert_double_eq_tol(m / D, 0.0, 1e-6);
        ck_assert_double_eq_tol(v / D, 1.0, 1e-5);
    }
    free(x);
    free(y1);
    free(y3);
}
END_TEST

START_TEST(errors)
{
    float xb[2 * 5 * 96], yb[2 * 5 * 96];
    memset(xb, 0, sizeof xb);
    struct eng_tensor x = eng_tensor_make("tokens", xb, 3, (int64_t[]){2, 5, 96});
    struct eng_tensor y = eng_tensor_make("out", yb, 3, (int64_t[]){2, 5, 96});
    struct eng_layer_norm ln = {768, NULL, NULL, 1e-5f};
    ck_assert_int_eq(eng_layer_norm(&ctx1, &ln, &x, &y), -1);
    ck_assert_str_eq(eng_errmsg(), "layer_norm over 768 features: 'tokens' has shape [2,5,96]");
    ln.dim = 96;
    struct eng_tensor bad = eng_tensor_make("out", yb, 3, (int64_t[]){2, 96, 5});
    ck_assert_int_eq(eng_layer_norm(&ctx1, &ln, &x, &bad), -1);
    ck_assert_str_eq(eng_errmsg(), "layer_norm: input 'tokens' has shape [2,5,96] but output 'out' has [2,96,5]");
    /* a constant row normalises to 0 (the variance is 0; eps keeps it finite) */
    ck_assert_int_eq(eng_layer_norm(&ctx1, &ln, &x, &y), 0);
    for (int i = 0; i < 2 * 5 * 96; i++)
        ck_assert_float_eq(yb[i], 0.0f);

    float mean[3] = {0, 0, 0}, var[3] = {1, -2, 1}, scale[3] = {7, 7, 7}, shift[3] = {7, 7, 7};
    struct eng_affine bn;
    ck_assert_int_eq(eng_batch_norm_init(&bn, 3, NULL, NULL, mean, var, 1e-5f, scale, shift), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "channel 1 has running_var -2"));
    ck_assert_float_eq(scale[0], 7.0f); /* untouched on error */
    var[1] = NAN;
    ck_assert_int_eq(eng_batch_norm_init(&bn, 3, NULL, NULL, mean, var, 1e-5f, scale, shift), -1);
    var[1] = 0.0f;
    ck_assert_int_eq(eng_batch_norm_init(&bn, 3, NULL, NULL, mean, var, 0.0f, scale, shift), -1);
    ck_assert_int_eq(eng_batch_norm_init(&bn, 3, NULL, NULL, mean, var, 1e-5f, scale, shift), 0);
    ck_assert_int_eq(bn.channels, 3);
    ck_assert_int_eq(bn.act, ENG_ACT_NONE);
    /* the folded map lands in eltwise: a channel-count mismatch is caught there */
    ck_assert_int_eq(eng_affine(&ctx1, &bn, &x, &y), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "expected 3 channels"));
}
END_TEST

int main(void)
{
    TCase *tc = fx_begin(&fx, "norm");
    fx_ctx_pair(&ctx1, &ctx3);
    tcase_add_loop_test(tc, norm_case, 0, fx_ncases(&fx));
    tcase_add_test(tc, threads_match_serial);
    tcase_add_test(tc, errors);
    int rc = fx_finish(&fx, tc);
    eng_ctx_free(&ctx1);
    eng_ctx_free(&ctx3);
    return rc;
}
