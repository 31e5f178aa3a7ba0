/* test_conv.c: eng_conv2d against PyTorch (fixtures/gen_conv.py) on every path, plus its error paths;
 * the fused entry points (eng_conv2d_res, eng_conv2d_pre) against the unfused ops they replace. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conv.h"
#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/profile.h"
#include "engine/winograd.h"
#include "tests/unit/fixture.h"

static struct fx fx;

/* Values outside the views the conv may touch; any change means it wrote out of bounds. */
#define SENTINEL 555.0f
#define X_JUNK 1.0e30f

/* Each case runs on one thread and on three (uneven splits). */
static const int thread_counts[] = {1, 3};
#define NTHREAD_COUNTS ((int)(sizeof thread_counts / sizeof thread_counts[0]))

static struct eng_conv_params params_of(json_t *c)
{
    struct eng_conv_params p = {0};
    int64_t pads[4];
    ck_assert_int_eq(fx_ints(c, "pads", pads, 4), 4);
    p.cin = fx_int(c, "cin");
    p.cout = fx_int(c, "cout");
    p.kh = fx_int(c, "kh");
    p.kw = fx_int(c, "kw");
    p.stride_h = fx_int(c, "sh");
    p.stride_w = fx_int(c, "sw");
    p.dil_h = fx_int(c, "dh");
    p.dil_w = fx_int(c, "dw");
    p.groups = fx_int(c, "groups");
    p.pad_same = fx_bool(c, "same");
    p.pad_t = (int)pads[0];
    p.pad_b = (int)pads[1];
    p.pad_l = (int)pads[2];
    p.pad_r = (int)pads[3];
    ck_assert_msg(eng_act_parse(fx_str(c, "act"), &p.act) == 0, "%s", eng_errmsg());
    return p;
}

static const char *path_name(const struct eng_conv *conv)
{
    const struct eng_conv_params *p = &conv->p;
    if (conv->depthwise)
        return "conv2d depthwise";
    if (p->kh == 1 && p->kw == 1 && p->stride_h == 1 && p->stride_w == 1 && p->groups == 1 && !p->pad_t &&
        !p->pad_b && !p->pad_l && !p->pad_r)
        return "conv2d 1x1 gemm";
    return "conv2d im2col";
}

/* A [n, h + dh, w + dw, c + dc] buffer filled with fill, and the [n, h, w, c] view of it at
 * spatial offset (oy, ox) and channel offset oc. */
static float *wide_buffer(const int64_t *ne, int64_t dh, int64_t dw, int64_t dc, int64_t oy, int64_t ox, int64_t oc,
                          float fill, struct eng_tensor *view, struct eng_tensor *whole)
{
    int64_t wne[4] = {ne[0], ne[1] + dh, ne[2] + dw, ne[3] + dc};
    size_t n = (size_t)(wne[0] * wne[1] * wne[2] * wne[3]);
    float *buf = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = fill;
    *whole = eng_tensor_make("wide", buf, 4, wne);
    struct eng_tensor v = eng_tensor_slice(whole, 1, oy, ne[1]);
    v = eng_tensor_slice(&v, 2, ox, ne[2]);
    v = eng_tensor_slice(&v, 3, oc, ne[3]);
    *view = v;
    return buf;
}

/* Count elements of whole outside view that no longer hold fill. */
static int64_t touched_outside(const struct eng_tensor *whole, const struct eng_tensor *view, float fill)
{
    int64_t n = 0;
    const char *lo = (const char *)view->data;
    for (int64_t b = 0; b < whole->ne[0]; b++)
        for (int64_t y = 0; y < whole->ne[1]; y++)
            for (int64_t x = 0; x < whole->ne[2]; x++)
                for (int64_t c = 0; c < whole->ne[3]; c++) {
                    const float *p = eng_tensor_at(whole, (int64_t[]){b, y, x, c});
                    /* Inside the view iff the offset from its origin decomposes into its index ranges. */
                    ptrdiff_t off = (const char *)p - lo;
                    bool inside = false;
                    if (off >= 0) {
                        size_t o = (size_t)off;
                        int64_t ib = (int64_t)(o / view->nb[0]);
                        o %= view->nb[0];
                        int64_t iy = (int64_t)(o / view->nb[1]);
                        o %= view->nb[1];
                        int64_t ix = (int64_t)(o / view->nb[2]);
                        o %= view->nb[2];
                        int64_t ic = (int64_t)(o / view->nb[3]);
                        inside = ib < view->ne[0] && iy < view->ne[1] && ix < view->ne[2] && ic < view->ne[3];
                    }
                    if (!inside && *p != fill)
                        n++;
                }
    return n;
}

START_TEST(conv_case)
{
    json_t *c = fx_case(&fx, _i);
    struct eng_tensor x, want, w, b, t;
    float *xb = fx_load(&fx, c, "x", &x), *yb = fx_load(&fx, c, "y", &want), *wb = NULL, *bb = NULL;
    struct eng_conv_params p = params_of(c);
    bool hwio = fx_bool(c, "hwio");
    wb = fx_load(&fx, c, hwio ? "w_hwio" : "w", &w);
    if (fx_bool(c, "bias"))
        bb = fx_load(&fx, c, "b", &b);
    struct eng_conv conv;
    int rc = hwio ? eng_conv_init_hwio(&conv, fx_name(c), &p, w.data, bb)
                  : eng_conv_init_oihw(&conv, fx_name(c), &p, w.data, bb);
    ck_assert_msg(rc == 0, "%s", eng_errmsg());
    if (fx_bool(c, "bn")) {
        float *bn[4];
        static const char *keys[4] = {"gamma", "beta", "mean", "var"};
        for (int i = 0; i < 4; i++)
            bn[i] = fx_load(&fx, c, keys[i], &t);
        ck_assert_msg(eng_conv_fold_bn(&conv, bn[0], bn[1], bn[2], bn[3], (float)fx_num(c, "eps")) == 0, "%s",
                      eng_errmsg());
        for (int i = 0; i < 4; i++)
            free(bn[i]);
    }
    if (p.pad_same) {
        int64_t sp[4];
        int t0, b0, l0, r0;
        fx_ints(c, "same_pads", sp, 4);
        eng_conv_same_padding(x.ne[1], p.kh, p.stride_h, p.dil_h, &t0, &b0);
        eng_conv_same_padding(x.ne[2], p.kw, p.stride_w, p.dil_w, &l0, &r0);
        ck_assert_msg(t0 == sp[0] && b0 == sp[1] && l0 == sp[2] && r0 == sp[3],
                      "%s: SAME pads %d,%d,%d,%d, torch %lld,%lld,%lld,%lld", fx_name(c), t0, b0, l0, r0,
                      (long long)sp[0], (long long)sp[1], (long long)sp[2], (long long)sp[3]);
    }
    int64_t oh, ow;
    ck_assert_msg(eng_conv_out_size(&conv, x.ne[1], x.ne[2], &oh, &ow) == 0, "%s", eng_errmsg());
    ck_assert_msg(oh == want.ne[1] && ow == want.ne[2], "%s: out size %lldx%lld, torch %lldx%lld", fx_name(c),
                  (long long)oh, (long long)ow, (long long)want.ne[1], (long long)want.ne[2]);

    int wide = fx_int(c, "wide");
    for (int ti = 0; ti < NTHREAD_COUNTS; ti++) {
        int nth = thread_counts[ti];
        struct eng_tensor xv = x, yv, xw, yw;
        float *xwide = NULL, *ywide;
        if (wide) {
            /* x: a channel prefix of a buffer 5 channels wider (and, for wide=2, a window inside a
             * larger image); junk around it must never be read. */
            int64_t s = wide == 2;
            xwide = wide_buffer(x.ne, 2 * s, 3 * s, 5, s, 2 * s, 0, X_JUNK, &xv, &xw);
            ck_assert_int_eq(eng_tensor_copy(&xv, &x), 0);
        }
        int64_t s = wide == 2;
        ywide = wide_buffer(want.ne, wide ? 3 * s : 0, wide ? 2 * s : 0, wide ? 7 : 0, wide ? 2 * s : 0, s,
                            wide ? 3 : 0, SENTINEL, &yv, &yw);
        struct eng_ctx ctx;
        ck_assert_int_eq(eng_ctx_init(&ctx, nth, eng_conv2d_scratch_bytes(&conv, xv.ne, nth)), 0);
        ck_assert_msg(eng_conv2d(&ctx, &conv, &xv, &yv) == 0, "%s (%d threads): %s", fx_name(c), nth, eng_errmsg());
        ck_assert_int_eq(ctx.scratch.used, 0); /* scratch given back */
        fx_check(path_name(&conv), c, &yv, &want, 1e-5);
        ck_assert_msg(touched_outside(&yw, &yv, SENTINEL) == 0, "%s: wrote outside the output view", fx_name(c));
        eng_ctx_free(&ctx);
        free(xwide);
        free(ywide);
    }
    eng_conv_free(&conv);
    free(xb);
    free(yb);
    free(wb);
    free(bb);
}
END_TEST

static void small_conv(struct eng_conv *conv, struct eng_conv_params *p)
{
    static float w[4 * 3 * 3 * 3];
    for (int i = 0; i < (int)(sizeof w / sizeof w[0]); i++)
        w[i] = (float)(i % 7) - 3.0f;
    *p = eng_conv_torch(3, 4, 3, 1, 1, 1, 1);
    ck_assert_int_eq(eng_conv_init_oihw(conv, "err.conv", p, w, NULL), 0);
}

static float *filled(int64_t count, unsigned seed)
{
    float *p = malloc((size_t)count * sizeof(float));
    ck_assert_ptr_nonnull(p);
    for (int64_t i = 0; i < count; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return p;
}

static double max_rel_diff(const float *a, const float *b, int64_t count)
{
    double worst = 0;
    for (int64_t i = 0; i < count; i++) {
        double d = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
        worst = d > worst ? d : worst;
    }
    return worst;
}

/* eng_conv2d_res == eng_conv2d + eng_add and eng_conv2d_pre == eng_affine + eng_conv2d, for a
 * 1x1 convolution (fused in the packed GEMM where the CPU has it) and a 3x3 one (never fused),
 * x a channel prefix of a wider buffer as in DenseNet. */
START_TEST(fused_entry_points)
{
    int k = _i ? 3 : 1;
    const int64_t n = 2, h = 5, w = 7, cin = 40, cwide = 48, cout = 37;
    struct eng_conv_params p = eng_conv_torch((int)cin, (int)cout, k, 1, k / 2, 1, 1);
    float *wt = filled(cout * cin * k * k, 1), *bias = filled(cout, 2), *xb = filled(n * h * w * cwide, 3);
    float *rb = filled(n * h * w * cout, 4), *sc = filled(cin, 5), *sh = filled(cin, 6);
    float *tb = filled(n * h * w * cin, 7), *yb = filled(n * h * w * cout, 8), *zb = filled(n * h * w * cout, 9);
    struct eng_conv conv;
    ck_assert_int_eq(eng_conv_init_oihw(&conv, "fused", &p, wt, bias), 0);
    struct eng_ctx ctx;
    ck_assert_int_eq(eng_ctx_init(&ctx, 2, eng_conv2d_scratch_bytes(&conv, (int64_t[]){n, h, w, cin}, 2)), 0);
    struct eng_tensor xw = eng_tensor_make("x", xb, 4, (int64_t[]){n, h, w, cwide});
    struct eng_tensor x = eng_tensor_slice(&xw, 3, 0, cin);
    struct eng_tensor r = eng_tensor_make("res", rb, 4, (int64_t[]){n, h, w, cout});
    struct eng_tensor t = eng_tensor_make("tmp", tb, 4, (int64_t[]){n, h, w, cin});
    struct eng_tensor y = eng_tensor_make("y", yb, 4, (int64_t[]){n, h, w, cout});
    struct eng_tensor z = eng_tensor_make("z", zb, 4, (int64_t[]){n, h, w, cout});
    int64_t ny = n * h * w * cout;

    ck_assert_int_eq(eng_conv2d_res(&ctx, &conv, &x, &r, ENG_ACT_RELU, 0.0f, &y), 0);
    ck_assert_int_eq(eng_conv2d(&ctx, &conv, &x, &z), 0);
    ck_assert_int_eq(eng_add(&ctx, ENG_ACT_RELU, 0.0f, &z, &r, &z), 0);
    double e_res = max_rel_diff(yb, zb, ny);
    ck_assert_msg(e_res < 1e-6, "%dx%d eng_conv2d_res differs from conv + add by %g", k, k, e_res);

    struct eng_affine pre = {cin, sc, sh, ENG_ACT_RELU, 0.0f};
    ck_assert_int_eq(eng_conv2d_pre(&ctx, &conv, &pre, &x, &t, &y), 0);
    ck_assert_int_eq(eng_affine(&ctx, &pre, &x, &t), 0);
    ck_assert_int_eq(eng_conv2d(&ctx, &conv, &t, &z), 0);
    double e_pre = max_rel_diff(yb, zb, ny);
    ck_assert_msg(e_pre < 1e-6, "%dx%d eng_conv2d_pre differs from affine + conv by %g", k, k, e_pre);
    printf("fused %dx%d: conv+residual %.2e, affine+conv %.2e (largest relative difference)\n", k, k, e_res, e_pre);

    pre.channels = cin - 1;
    ck_assert_int_eq(eng_conv2d_pre(&ctx, &conv, &pre, &x, &t, &y), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "affine has 39 channels"));
    struct eng_tensor rbad = eng_tensor_make("res", rb, 4, (int64_t[]){n, h, w - 1, cout});
    ck_assert_int_eq(eng_conv2d_res(&ctx, &conv, &x, &rbad, ENG_ACT_RELU, 0.0f, &y), -1);
    eng_ctx_free(&ctx);
    eng_conv_free(&conv);
    free(wt), free(bias), free(xb), free(rb), free(sc), free(sh), free(tb), free(yb), free(zb);
}
END_TEST

/* A 3x3 layer whose path depends on the batch (engine/winograd.h: im2col for one image,
 * Winograd for eight): scratch measured on a sizing run at the larger batch, as the model
 * runners size it (the arena's peak), must cover the smaller one, and the two paths agree. */
START_TEST(batch_dependent_path)
{
    /* DenseNet-121's denseblock3 3x3 (128 -> 32 at 14x14): its batch-1 im2col tile (192 rows of
     * 1152) needs more scratch than its batch-8 Winograd blocks. */
    const int64_t h = 14, w = 14, c = 128, co = 32, big = 8;
    struct eng_conv_params p = eng_conv_torch((int)c, (int)co, 3, 1, 1, 1, 1);
    p.act = ENG_ACT_RELU;
    float *wt = filled(co * c * 9, 11), *bias = filled(co, 12), *img = filled(h * w * c, 13);
    float *xb = malloc((size_t)(big * h * w * c) * sizeof(float));
    float *yb = malloc((size_t)(big * h * w * co) * sizeof(float)), *y1 = malloc((size_t)(h * w * co) * sizeof(float));
    ck_assert(xb && yb && y1);
    for (int64_t i = 0; i < co * c * 9; i++)
        wt[i] /= 34.0f; /* ~ 1 / sqrt(fan-in), as trained weights are */
    for (int64_t b = 0; b < big; b++)
        memcpy(xb + b * h * w * c, img, (size_t)(h * w * c) * sizeof(float));
    float *g = filled(4 * co, 14);
    for (int64_t i = 0; i < co; i++)
        g[3 * co + i] = 0.5f + 0.25f * g[3 * co + i]; /* var in [0.25, 0.75] */
    /* As models load it: batch norm folded, then the unpacked weights dropped. kept: the same
     * layer with them, run on the im2col path at batch 1, must give the same bits. */
    struct eng_conv conv, kept;
    ck_assert_int_eq(eng_conv_init_oihw(&conv, "batch.path", &p, wt, bias), 0);
    ck_assert_int_eq(eng_conv_init_oihw(&kept, "batch.kept", &p, wt, bias), 0);
    eng_conv_drop_unpacked(&conv);
    ck_assert_int_eq(eng_conv_fold_bn(&conv, g, g + co, g + 2 * co, g + 3 * co, 1e-5f), 0);
    ck_assert_int_eq(eng_conv_fold_bn(&kept, g, g + co, g + 2 * co, g + 3 * co, 1e-5f), 0);
    ck_assert(kept.w && (conv.pw.p ? !conv.w : conv.w != NULL));
    if (conv.pw.p && conv.wino_pw) /* the packed GEMM runs here: the choice is real */
        ck_assert(!eng_winograd_use(&conv, 1, h, w) && eng_winograd_use(&conv, big, h, w));
    else
        printf("batch_dependent_path: no packed GEMM on this CPU; both batches take the same path\n");
    struct eng_tensor xs = eng_tensor_make("x", xb, 4, (int64_t[]){big, h, w, c});
    struct eng_tensor ys = eng_tensor_make("y", yb, 4, (int64_t[]){big, h, w, co});
    struct eng_ctx probe, ctx;
    ck_assert_int_eq(eng_ctx_init(&probe, 1, (size_t)64 << 20), 0);
    ck_assert_msg(eng_conv2d(&probe, &conv, &xs, &ys) == 0, "%s", eng_errmsg());
    ck_assert_int_eq(eng_ctx_init(&ctx, 1, probe.scratch.peak), 0);
    struct eng_tensor x1 = eng_tensor_make("x", xb, 4, (int64_t[]){1, h, w, c});
    struct eng_tensor yt = eng_tensor_make("y", y1, 4, (int64_t[]){1, h, w, co});
    ck_assert_msg(eng_conv2d(&ctx, &conv, &x1, &yt) == 0, "batch 1 in the scratch of batch %lld: %s", (long long)big,
                  eng_errmsg());
    float *yk = malloc((size_t)(h * w * co) * sizeof(float));
    ck_assert_ptr_nonnull(yk);
    struct eng_tensor ykt = eng_tensor_make("y", yk, 4, (int64_t[]){1, h, w, co});
    ck_assert_msg(eng_conv2d(&ctx, &kept, &x1, &ykt) == 0, "%s", eng_errmsg());
    ck_assert_msg(memcmp(yk, y1, (size_t)(h * w * co) * sizeof(float)) == 0,
                  "folding after dropping the unpacked weights changed the output");
    free(yk);
    double d = max_rel_diff(y1, yb + (big - 1) * h * w * co, h * w * co);
    printf("batch_dependent_path: batch 1 vs batch %lld, largest relative difference %.2e\n", (long long)big, d);
    ck_assert_msg(d < 2e-5, "batch 1 (im2col) and batch %lld (Winograd) differ by %g", (long long)big, d);
    eng_ctx_free(&probe);
    eng_ctx_free(&ctx);
    eng_conv_free(&conv);
    eng_conv_free(&kept);
    free(wt), free(bias), free(img), free(xb), free(yb), free(y1), free(g);
}
END_TEST

START_TEST(error_shapes)
{
    struct eng_conv conv;
    struct eng_conv_params p;
    small_conv(&conv, &p);
    static float xb[2 * 6 * 6 * 4], yb[2 * 7 * 6 * 4];
    struct eng_ctx ctx;
    ck_assert_int_eq(eng_ctx_init(&ctx, 2, 1 << 20), 0);

    struct eng_tensor x = eng_tensor_make("x", xb, 4, (int64_t[]){2, 6, 6, 3});
    struct eng_tensor y = eng_tensor_make("y", yb, 4, (int64_t[]){2, 7, 6, 4});
    ck_assert_int_eq(eng_conv2d(&ctx, &conv, &x, &y), -1);
    ck_assert_msg(strstr(eng_errmsg(), "[2,7,6,4]") && strstr(eng_errmsg(), "expected [2,6,6,4]") &&
                      strstr(eng_errmsg(), "[2,6,6,3]"),
                  "message: %s", eng_errmsg());

    struct eng_tensor x4 = eng_tensor_make("x4", xb, 4, (int64_t[]){2, 6, 6, 4});
    y = eng_tensor_make("y", yb, 4, (int64_t[]){2, 6, 6, 4});
    ck_assert_int_eq(eng_conv2d(&ctx, &conv, &x4, &y), -1);
    ck_assert_msg(strstr(eng_errmsg(), "x4") && strstr(eng_errmsg(), "[N,H,W,3]"), "message: %s", eng_errmsg());

    struct eng_tensor x3 = eng_tensor_make("x3", xb, 3, (int64_t[]){6, 6, 3});
    ck_assert_int_eq(eng_conv2d(&ctx, &conv, &x3, &y), -1);

    /* Scratch too small: the arena's message comes through. */
    struct eng_ctx tiny;
    ck_assert_int_eq(eng_ctx_init(&tiny, 1, 256), 0);
    ck_assert_int_eq(eng_conv2d(&tiny, &conv, &x, &y), -1);
    ck_assert_msg(strstr(eng_errmsg(), "too small") && strstr(eng_errmsg(), "err.conv"), "message: %s",
                  eng_errmsg());
    ck_assert_int_eq(tiny.scratch.used, 0);
    eng_ctx_free(&tiny);
    eng_ctx_free(&ctx);
    eng_conv_free(&conv);
    eng_conv_free(&conv); /* twice is harmless */
}
END_TEST

START_TEST(error_geometry)
{
    static float w[7 * 7 * 4 * 4], xb[3 * 3 * 4], yb[64];
    struct eng_conv conv;
    struct eng_conv_params p = eng_conv_torch(4, 6, 3, 1, 1, 1, 4); /* 4 groups do not divide 6 */
    ck_assert_int_eq(eng_conv_init_oihw(&conv, "bad.groups", &p, w, NULL), -1);
    ck_assert_msg(strstr(eng_errmsg(), "bad.groups") && strstr(eng_errmsg(), "groups 4"), "message: %s",
                  eng_errmsg());
    eng_conv_free(&conv);
    p = eng_conv_torch(4, 4, 3, 0, 1, 1, 1);
    ck_assert_int_eq(eng_conv_init_hwio(&conv, "bad.stride", &p, w, NULL), -1);
    eng_conv_free(&conv);

    /* 7x7 unpadded kernel over a 3x3 input. */
    p = eng_conv_torch(4, 4, 7, 1, 0, 1, 1);
    ck_assert_int_eq(eng_conv_init_oihw(&conv, "big.kernel", &p, w, NULL), 0);
    int64_t oh, ow;
    ck_assert_int_eq(eng_conv_out_size(&conv, 3, 3, &oh, &ow), -1);
    ck_assert_msg(strstr(eng_errmsg(), "smaller than its 7x7 kernel"), "message: %s", eng_errmsg());
    struct eng_ctx ctx;
    ck_assert_int_eq(eng_ctx_init(&ctx, 1, 1 << 16), 0);
    struct eng_tensor x = eng_tensor_make("x", xb, 4, (int64_t[]){1, 3, 3, 4});
    struct eng_tensor y = eng_tensor_make("y", yb, 4, (int64_t[]){1, 1, 1, 4});
    ck_assert_int_eq(eng_conv2d(&ctx, &conv, &x, &y), -1);
    ck_assert_uint_eq(eng_conv2d_scratch_bytes(&conv, x.ne, 1), 0);

    /* A batch norm with a non-positive variance is refused and leaves the conv as it was. */
    float ones[4] = {1, 1, 1, 1}, zeros[4] = {0}, var[4] = {1, 1, -2, 1};
    float w0 = conv.w[0];
    ck_assert_int_eq(eng_conv_fold_bn(&conv, ones, zeros, zeros, var, 1e-5f), -1);
    ck_assert_msg(strstr(eng_errmsg(), "channel 2"), "message: %s", eng_errmsg());
    ck_assert(conv.bias == NULL && conv.w[0] == w0);
    eng_ctx_free(&ctx);
    eng_conv_free(&conv);
}
END_TEST

START_TEST(padding_helpers)
{
    static const struct {
        int64_t in;
        int k, s, d, before, after;
    } t[] = {
        {10, 3, 2, 1, 0, 1}, {9, 3, 1, 1, 1, 1}, {13, 5, 2, 1, 2, 2}, {224, 7, 2, 1, 2, 3},
        {1, 1, 1, 1, 0, 0},  {5, 3, 2, 2, 2, 2}, {8, 1, 2, 1, 0, 0},  {416, 3, 1, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int b, a;
        eng_conv_same_padding(t[i].in, t[i].k, t[i].s, t[i].d, &b, &a);
        ck_assert_msg(b == t[i].before && a == t[i].after, "in %lld k %d s %d d %d: %d,%d want %d,%d",
                      (long long)t[i].in, t[i].k, t[i].s, t[i].d, b, a, t[i].before, t[i].after);
        /* SAME always gives ceil(in / stride) outputs. */
        ck_assert_int_eq(eng_conv_out_dim(t[i].in, t[i].k, t[i].s, t[i].d, b, a), (t[i].in + t[i].s - 1) / t[i].s);
    }
    ck_assert_int_eq(eng_conv_out_dim(224, 7, 2, 1, 3, 3), 112);
    ck_assert_int_eq(eng_conv_out_dim(37, 7, 2, 1, 3, 3), 19);
    ck_assert_int_eq(eng_conv_out_dim(3, 7, 1, 1, 0, 0), 0);
}
END_TEST

/* A few-channel convolution reads its kernel rows in place from a contiguous input and goes
 * through im2col when the input is a channel slice of a wider buffer: the same sums in the same
 * order, so the two outputs are identical, on 1 and 3 threads. */
START_TEST(runs_and_strided_input)
{
    const int64_t n = 2, h = 13, w = 17, cin = 5, wide = 9, cout = 21;
    struct eng_conv_params p = eng_conv_torch((int)cin, (int)cout, 3, 2, 1, 1, 1);
    p.act = ENG_ACT_RELU;
    float *wt = filled(cout * cin * 9, 11), *bias = filled(cout, 12), *xb = filled(n * h * w * wide, 13);
    float *cb = malloc((size_t)(n * h * w * cin) * sizeof(float));
    ck_assert_ptr_nonnull(cb);
    struct eng_conv conv;
    ck_assert_int_eq(eng_conv_init_oihw(&conv, "few", &p, wt, bias), 0);
    struct eng_tensor xw = eng_tensor_make("xw", xb, 4, (int64_t[]){n, h, w, wide});
    struct eng_tensor xs = eng_tensor_slice(&xw, 3, 2, cin);
    struct eng_tensor xc = eng_tensor_make("xc", cb, 4, (int64_t[]){n, h, w, cin});
    ck_assert_int_eq(eng_tensor_copy(&xc, &xs), 0);
    int64_t oh, ow;
    ck_assert_int_eq(eng_conv_out_size(&conv, h, w, &oh, &ow), 0);
    int64_t ny = n * oh * ow * cout;
    float *y1 = malloc((size_t)ny * sizeof(float)), *y2 = malloc((size_t)ny * sizeof(float));
    ck_assert(y1 && y2);
    for (int ti = 0; ti < NTHREAD_COUNTS; ti++) {
        int nth = thread_counts[ti];
        struct eng_ctx ctx;
        ck_assert_int_eq(eng_ctx_init(&ctx, nth, eng_conv2d_scratch_bytes(&conv, xc.ne, nth)), 0);
        struct eng_tensor t1 = eng_tensor_make("y1", y1, 4, (int64_t[]){n, oh, ow, cout});
        struct eng_tensor t2 = eng_tensor_make("y2", y2, 4, (int64_t[]){n, oh, ow, cout});
        ck_assert_msg(eng_conv2d(&ctx, &conv, &xc, &t1) == 0, "%s", eng_errmsg());
        ck_assert_msg(eng_conv2d(&ctx, &conv, &xs, &t2) == 0, "%s", eng_errmsg());
        ck_assert_int_eq(ctx.scratch.used, 0);
        ck_assert_msg(memcmp(y1, y2, (size_t)ny * sizeof(float)) == 0,
                      "%d threads: contiguous and sliced inputs gave different outputs (largest difference %g)",
                      nth, max_rel_diff(y1, y2, ny));
        eng_ctx_free(&ctx);
    }
    eng_conv_free(&conv);
    free(wt), free(bias), free(xb), free(cb), free(y1), free(y2);
}
END_TEST

/* With a profile on the context, each entry point adds one sample per call under the layer's
 * name, kind and batch (fused calls once, not once more for the plain convolution inside), with
 * the call's FLOPs; the output is the same as without. */
START_TEST(profile_samples)
{
    const int64_t n = 2, h = 6, w = 5, cin = 8, cout = 12;
    struct eng_conv_params p3 = eng_conv_torch((int)cin, (int)cout, 3, 2, 1, 1, 1);
    struct eng_conv_params p1 = eng_conv_torch((int)cin, (int)cout, 1, 1, 0, 1, 1);
    float *wt = filled(cout * cin * 9, 1), *xb = filled(n * h * w * cin, 2), *rb = filled(n * h * w * cout, 3);
    float *yb = filled(n * h * w * cout, 4), *zb = filled(n * h * w * cout, 5);
    struct eng_conv c3, c1;
    ck_assert_int_eq(eng_conv_init_oihw(&c3, "down.conv", &p3, wt, NULL), 0);
    ck_assert_int_eq(eng_conv_init_oihw(&c1, "block.conv3", &p1, wt, NULL), 0);
    struct eng_ctx ctx;
    ck_assert_int_eq(eng_ctx_init(&ctx, 2, eng_conv2d_scratch_bytes(&c3, (int64_t[]){n, h, w, cin}, 2)), 0);
    struct eng_tensor x = eng_tensor_make("x", xb, 4, (int64_t[]){n, h, w, cin});
    struct eng_tensor r = eng_tensor_make("res", rb, 4, (int64_t[]){n, h, w, cout});
    struct eng_tensor y3 = eng_tensor_make("y", yb, 4, (int64_t[]){n, h / 2, (w + 1) / 2, cout});
    struct eng_tensor z3 = eng_tensor_make("z", zb, 4, (int64_t[]){n, h / 2, (w + 1) / 2, cout});
    struct eng_tensor y1 = eng_tensor_make("y", yb, 4, (int64_t[]){n, h, w, cout});
    ck_assert_int_eq(eng_conv2d(&ctx, &c3, &x, &z3), 0); /* without a profile */
    struct eng_profile *prof = eng_profile_new();
    ck_assert_ptr_nonnull(prof);
    ctx.prof = prof;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(eng_conv2d(&ctx, &c3, &x, &y3), 0);
    ck_assert_int_eq(eng_conv2d_res(&ctx, &c1, &x, &r, ENG_ACT_RELU, 0.0f, &y1), 0);
    ctx.prof = NULL;
    ck_assert_int_eq(eng_profile_count(prof), 2);
    const struct eng_profile_entry *e = eng_profile_entry(prof, 0);
    ck_assert_str_eq(e->name, "down.conv");
    ck_assert_str_eq(e->kind, "conv 3x3/2");
    ck_assert_int_eq(e->batch, n);
    ck_assert_int_eq(e->nsamples, 3);
    ck_assert(e->flops == 2.0 * n * (h / 2) * ((w + 1) / 2) * cout * cin * 9);
    ck_assert(eng_profile_median(e) > 0);
    e = eng_profile_entry(prof, 1);
    ck_assert_str_eq(e->name, "block.conv3");
    ck_assert_str_eq(e->kind, "conv 1x1/1");
    ck_assert_int_eq(e->nsamples, 1);
    eng_conv2d(&ctx, &c3, &x, &y3);
    ck_assert_int_eq(memcmp(yb, zb, (size_t)(n * (h / 2) * ((w + 1) / 2) * cout) * sizeof(float)), 0);
    eng_profile_free(prof);
    eng_ctx_free(&ctx);
    eng_conv_free(&c3);
    eng_conv_free(&c1);
    free(wt), free(xb), free(rb), free(yb), free(zb);
}
END_TEST

int main(void)
{
    TCase *tc = fx_begin(&fx, "conv");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, conv_case, 0, fx_ncases(&fx));
    tcase_add_loop_test(tc, fused_entry_points, 0, 2);
    tcase_add_test(tc, batch_dependent_path);
    tcase_add_test(tc, profile_samples);
    tcase_add_test(tc, runs_and_strided_input);
    tcase_add_test(tc, error_shapes);
    tcase_add_test(tc, error_geometry);
    tcase_add_test(tc, padding_helpers);
    return fx_finish(&fx, tc);
}
