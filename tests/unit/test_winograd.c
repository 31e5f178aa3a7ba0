/* test_winograd.c: the Winograd F(4x4,3x3) path of eng_conv2d against a direct convolution in double. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conv.h"
#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/winograd.h"
#include "tests/unit/fixture.h"

/* n, h, w, cin, cout, pad (-1: TF SAME), act, bias, batch norm folded, threads, output channel
 * slice offset (0: dense output). Sizes cover whole and partial 4x4 tiles, partial 8-channel
 * chunks, a map too small for Winograd (im2col then), the threads sharing blocks (few tiles, or
 * transformed weights over 1 MB; several blocks) and each owning blocks (small weights). */
static const struct wcase {
    int n, h, w, cin, cout, pad;
    enum eng_act act;
    int bias, bn, threads, slice;
} cases[] = {
    {1, 8, 8, 8, 8, 1, ENG_ACT_NONE, 0, 0, 1, 0},
    {1, 9, 7, 12, 20, 1, ENG_ACT_RELU, 1, 0, 1, 0},
    {2, 14, 14, 64, 32, 1, ENG_ACT_RELU, 1, 1, 2, 0},
    {1, 56, 56, 16, 24, 1, ENG_ACT_RELU, 1, 1, 2, 0},
    {3, 28, 28, 32, 16, 1, ENG_ACT_NONE, 1, 0, 3, 40},
    {1, 7, 7, 40, 48, 1, ENG_ACT_GELU, 1, 0, 2, 0},
    {2, 10, 13, 9, 11, 0, ENG_ACT_RELU6, 1, 0, 2, 0},
    {1, 11, 11, 8, 16, -1, ENG_ACT_RELU, 0, 1, 2, 8},
    {1, 2, 2, 8, 8, 1, ENG_ACT_NONE, 1, 0, 2, 0},
    {1, 14, 14, 64, 32, 1, ENG_ACT_RELU, 1, 0, 2, 0},   /* small U, 16 tiles: shared */
    {1, 20, 20, 96, 96, 1, ENG_ACT_RELU, 1, 1, 2, 0},   /* U over 1 MB: shared, one block */
    {2, 72, 72, 96, 80, 1, ENG_ACT_NONE, 1, 0, 3, 16},  /* shared, 648 tiles in three blocks */
};

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static double act_ref(enum eng_act a, double v)
{
    switch (a) {
    case ENG_ACT_RELU:
        return v < 0 ? 0 : v;
    case ENG_ACT_RELU6:
        return v < 0 ? 0 : (v > 6 ? 6 : v);
    case ENG_ACT_GELU:
        return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    default:
        return v;
    }
}

START_TEST(winograd_case)
{
    const struct wcase *c = &cases[_i];
    unsigned seed = 1234u + (unsigned)_i;
    struct eng_conv_params p = eng_conv_torch(c->cin, c->cout, 3, 1, c->pad < 0 ? 0 : c->pad, 1, 1);
    p.pad_same = c->pad < 0;
    p.act = c->act;
    ck_assert(eng_winograd_eligible(&p));
    int64_t nw = (int64_t)c->cout * c->cin * 9;
    float *w = malloc(sizeof(float) * (size_t)nw), *bias = malloc(sizeof(float) * (size_t)c->cout);
    float *g = malloc(sizeof(float) * (size_t)c->cout * 4);
    ck_assert(w && bias && g);
    for (int64_t i = 0; i < nw; i++)
        w[i] = frand(&seed) / sqrtf((float)c->cin * 9.0f);
    for (int i = 0; i < c->cout; i++)
        bias[i] = 0.1f * frand(&seed);
    for (int i = 0; i < c->cout * 4; i++)
        g[i] = 0.5f + 0.25f * frand(&seed); /* gamma, beta, mean, var: var in [0.25, 0.75] */
    struct eng_conv conv;
    ck_assert_msg(eng_conv_init_oihw(&conv, "wino", &p, w, c->bias ? bias : NULL) == 0, "%s", eng_errmsg());
    ck_assert(conv.wino || conv.wino_pw);
    if (c->bn)
        ck_assert(eng_conv_fold_bn(&conv, g, g + c->cout, g + 2 * c->cout, g + 3 * c->cout, 1e-5f) == 0);

    int64_t oh, ow;
    ck_assert(eng_conv_out_size(&conv, c->h, c->w, &oh, &ow) == 0);
    int64_t nx = (int64_t)c->n * c->h * c->w * c->cin, ldy = c->cout + 2 * c->slice;
    int64_t ny = (int64_t)c->n * oh * ow * ldy;
    float *x = malloc(sizeof(float) * (size_t)nx), *ybuf = malloc(sizeof(float) * (size_t)ny);
    ck_assert(x && ybuf);
    for (int64_t i = 0; i < nx; i++)
        x[i] = frand(&seed);
    for (int64_t i = 0; i < ny; i++)
        ybuf[i] = 555.0f;
    struct eng_tensor xt = eng_tensor_make("x", x, 4, (int64_t[]){c->n, c->h, c->w, c->cin});
    struct eng_tensor yw = eng_tensor_make("y", ybuf, 4, (int64_t[]){c->n, oh, ow, ldy});
    struct eng_tensor yt = c->slice ? eng_tensor_slice(&yw, 3, c->slice, c->cout) : yw;

    struct eng_ctx ctx;
    ck_assert(eng_ctx_init(&ctx, c->threads, eng_conv2d_scratch_bytes(&conv, xt.ne, c->threads)) == 0);
    ck_assert_msg(eng_conv2d(&ctx, &conv, &xt, &yt) == 0, "%s", eng_errmsg());

    /* Reference: torch's conv (cross-correlation) in double from the original weights, with the
     * batch norm applied after it the way eng_conv_fold_bn describes. */
    int pt = c->pad, pl = c->pad;
    if (c->pad < 0) {
        int after;
        eng_conv_same_padding(c->h, 3, 1, 1, &pt, &after);
        eng_conv_same_padding(c->w, 3, 1, 1, &pl, &after);
    }
    double worst = 0.0;
    for (int b = 0; b < c->n; b++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                for (int oc = 0; oc < c->cout; oc++) {
                    double s = c->bias ? bias[oc] : 0.0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int64_t iy = oy - pt + ky, ix = ox - pl + kx;
                            if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w)
                                continue;
                            const float *xp = x + (((int64_t)b * c->h + iy) * c->w + ix) * c->cin;
                            for (int ci = 0; ci < c->cin; ci++)
                                s += (double)w[(((int64_t)oc * c->cin + ci) * 3 + ky) * 3 + kx] * xp[ci];
                        }
                    if (c->bn)
                        s = (s - g[2 * c->cout + oc]) * g[oc] / sqrt((double)g[3 * c->cout + oc] + 1e-5) +
                            g[c->cout + oc];
                    double want = act_ref(c->act, s);
                    double got = ybuf[(((int64_t)b * oh + oy) * ow + ox) * ldy + c->slice + oc];
                    double err = fabs(got - want) / (1.0 + fabs(want));
                    if (err > worst)
                        worst = err;
                }
    /* F(4,3)'s transforms cost some float precision; a wrong index costs O(1). */
    ck_assert_msg(worst < 2e-5, "case %d: max relative error %g", _i, worst);
    for (int64_t i = 0; i < ny; i++)
        if (c->slice && (i % ldy < c->slice || i % ldy >= c->slice + c->cout))
            ck_assert_msg(ybuf[i] == 555.0f, "case %d: wrote outside the output slice at %lld", _i, (long long)i);
    eng_ctx_free(&ctx);
    eng_conv_free(&conv);
    free(w), free(bias), free(g), free(x), free(ybuf);
}
END_TEST

START_TEST(winograd_eligibility)
{
    struct eng_conv_params p = eng_conv_torch(16, 16, 3, 1, 1, 1, 1);
    ck_assert(eng_winograd_eligible(&p));
    p.stride_h = p.stride_w = 2;
    ck_assert(!eng_winograd_eligible(&p));
    p = eng_conv_torch(16, 16, 3, 1, 2, 2, 1);
    ck_assert(!eng_winograd_eligible(&p)); /* dilated */
    p = eng_conv_torch(16, 16, 3, 1, 1, 1, 2);
    ck_assert(!eng_winograd_eligible(&p)); /* grouped */
    p = eng_conv_torch(3, 64, 3, 1, 1, 1, 1);
    ck_assert(!eng_winograd_eligible(&p)); /* 3 input channels: transforms would dominate */
    p = eng_conv_torch(16, 16, 5, 1, 2, 1, 1);
    ck_assert(!eng_winograd_eligible(&p));
}
END_TEST

int main(void)
{
    /* These cases test the transforms, down to maps of a tile or two where engine/winograd.h
     * would otherwise pick im2col: take Winograd wherever it is eligible. */
    setenv("SALIENT_WINOGRAD", "1", 1);
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, winograd_case, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, winograd_eligibility);
    return fx_run(suite_with(tc, "winograd"));
}
