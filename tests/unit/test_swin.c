/* test_swin.c: engine/swin against torchvision 0.14's ShiftedWindowAttention, PatchMerging and SwinTransformerBlock. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/activation.h"
#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/gemm.h"
#include "engine/swin.h"
#include "tests/unit/fixture.h"

static struct fx fx;

static void init_attn(json_t *c, struct eng_swin_attn *a, float **bufs)
{
    struct eng_tensor t;
    int64_t win[2], shift[2];
    ck_assert_int_eq(fx_ints(c, "window", win, 2), 2);
    ck_assert_int_eq(fx_ints(c, "shift", shift, 2), 2);
    bufs[0] = fx_load(&fx, c, "qkv_w", &t);
    bufs[1] = fx_load(&fx, c, "qkv_b", &t);
    bufs[2] = fx_load(&fx, c, "proj_w", &t);
    bufs[3] = fx_load(&fx, c, "proj_b", &t);
    bufs[4] = fx_load(&fx, c, "table", &t);
    ck_assert_msg(eng_swin_attn_init(a, fx_int(c, "dim"), fx_int(c, "heads"), (int)win[0], (int)win[1],
                                     (int)shift[0], (int)shift[1], bufs[0], bufs[1], bufs[2], bufs[3],
                                     bufs[4]) == 0,
                  "%s", eng_errmsg());
}

static void free_bufs(float **bufs, int n)
{
    for (int i = 0; i < n; i++)
        free(bufs[i]);
}

/* A copy of t in a fresh contiguous buffer (caller frees .data). */
static struct eng_tensor clone(const struct eng_tensor *t, const char *name)
{
    float *d = malloc(sizeof(float) * (size_t)eng_tensor_nelem(t));
    ck_assert_ptr_nonnull(d);
    struct eng_tensor c = eng_tensor_make(name, d, t->ndim, t->ne);
    ck_assert(eng_tensor_copy(&c, t) == 0);
    return c;
}

/* torch.nn.LayerNorm over the innermost dimension, rows of a contiguous tensor; the reference
 * composition for the block test. */
static void layer_norm_rows(float *dst, const float *src, int64_t rows, int64_t n, const float *g, const float *b)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *x = src + r * n;
        float *y = dst + r * n;
        double s = 0, ss = 0;
        for (int64_t i = 0; i < n; i++)
            s += x[i];
        double mean = s / (double)n;
        for (int64_t i = 0; i < n; i++)
            ss += (x[i] - mean) * (x[i] - mean);
        float rstd = 1.0f / sqrtf((float)(ss / (double)n) + 1e-5f);
        for (int64_t i = 0; i < n; i++)
            y[i] = (x[i] * rstd - rstd * (float)mean) * g[i] + b[i];
    }
}

static void run_attn(json_t *c, int nthreads)
{
    struct eng_swin_attn a;
    float *bufs[7];
    init_attn(c, &a, bufs);
    struct eng_tensor x, want;
    bufs[5] = fx_load(&fx, c, "x", &x);
    bufs[6] = fx_load(&fx, c, "y", &want);

    if (fx_has(&fx, c, "index")) {
        struct eng_tensor idx;
        float *ib = fx_load(&fx, c, "index", &idx);
        int64_t t = (int64_t)a.win_h * a.win_w, *mine = malloc(sizeof(int64_t) * (size_t)(t * t));
        ck_assert_int_eq(eng_tensor_nelem(&idx), t * t);
        eng_swin_relative_position_index(a.win_h, a.win_w, mine);
        for (int64_t i = 0; i < t * t; i++)
            ck_assert_msg(mine[i] == (int64_t)ib[i], "relative_position_index[%lld] = %lld, torchvision %g",
                          (long long)i, (long long)mine[i], ib[i]);
        free(mine);
        free(ib);
    }

    struct eng_ctx ctx;
    size_t need = eng_swin_attn_scratch_bytes(&a, nthreads, x.ne[0], x.ne[1], x.ne[2]);
    ck_assert(eng_ctx_init(&ctx, nthreads, need) == 0);
    struct eng_tensor got = clone(&x, "attn_out");
    memset(got.data, 0xff, sizeof(float) * (size_t)eng_tensor_nelem(&got)); /* NaN: every pixel must be written */
    ck_assert_msg(eng_swin_window_attention(&ctx, &a, &x, &got, false) == 0, "%s", eng_errmsg());
    ck_assert_uint_eq(ctx.scratch.used, 0);
    /* Softmax over 49 scores and a 96-wide reduction, all in float like torch: 1e-5 holds. */
    fx_check("window_attention", c, &got, &want, 1e-5);

    /* The residual form in place: x <- x + attn(x). */
    struct eng_tensor res = clone(&x, "residual");
    ck_assert_msg(eng_swin_window_attention(&ctx, &a, &res, &res, true) == 0, "%s", eng_errmsg());
    for (int64_t i = 0; i < eng_tensor_nelem(&want); i++)
        want.data[i] += x.data[i];
    fx_check("window_attention+res", c, &res, &want, 1e-5);

    free(res.data);
    free(got.data);
    eng_ctx_free(&ctx);
    eng_swin_attn_free(&a);
    free_bufs(bufs, 7);
}

static void run_merge(json_t *c, int nthreads)
{
    struct eng_tensor x, gw, nw, nb, rw, want;
    float *bufs[6] = {fx_load(&fx, c, "x", &x),       fx_load(&fx, c, "gather", &gw),
                      fx_load(&fx, c, "norm_w", &nw), fx_load(&fx, c, "norm_b", &nb),
                      fx_load(&fx, c, "red_w", &rw),  fx_load(&fx, c, "y", &want)};
    struct eng_swin_merge m;
    ck_assert_msg(eng_swin_merge_init(&m, fx_int(c, "dim"), nw.data, nb.data, rw.data) == 0, "%s", eng_errmsg());
    struct eng_ctx ctx;
    size_t need = eng_swin_merge_scratch_bytes(&m, x.ne[0], x.ne[1], x.ne[2]);
    ck_assert(eng_ctx_init(&ctx, nthreads, need) == 0);

    struct eng_tensor g = clone(&gw, "gathered");
    ck_assert_msg(eng_swin_patch_gather(&ctx, &x, &g) == 0, "%s", eng_errmsg());
    fx_check("patch_gather", c, &g, &gw, 0.0); /* a copy: exact */

    /* Into a channel slice of a wider buffer, as a concatenating caller would. */
    int64_t c2 = want.ne[3];
    float *wide = malloc(sizeof(float) * (size_t)(want.ne[0] * want.ne[1] * want.ne[2] * (c2 + 3)));
    ck_assert_ptr_nonnull(wide);
    struct eng_tensor wt = eng_tensor_make("wide", wide, 4, (int64_t[]){want.ne[0], want.ne[1], want.ne[2], c2 + 3});
    struct eng_tensor y = eng_tensor_slice(&wt, 3, 1, c2);
    ck_assert_msg(eng_swin_patch_merge(&ctx, &m, &x, &y) == 0, "%s", eng_errmsg());
    ck_assert_uint_eq(ctx.scratch.used, 0);
    /* LayerNorm then a 4C-wide dot product: float rounding well inside 1e-5. */
    fx_check("patch_merge", c, &y, &want, 1e-5);

    free(wide);
    free(g.data);
    eng_ctx_free(&ctx);
    eng_swin_merge_free(&m);
    free_bufs(bufs, 6);
}

/* SwinTransformerBlock composed from the op: x + attn(norm1 x), then + mlp(norm2 .). */
static void run_block(json_t *c, int nthreads)
{
    struct eng_swin_attn a;
    float *bufs[16];
    init_attn(c, &a, bufs);
    struct eng_tensor x, want, t;
    bufs[5] = fx_load(&fx, c, "x", &x);
    bufs[6] = fx_load(&fx, c, "y", &want);
    float *n1w = bufs[7] = fx_load(&fx, c, "norm1_w", &t), *n1b = bufs[8] = fx_load(&fx, c, "norm1_b", &t);
    float *n2w = bufs[9] = fx_load(&fx, c, "norm2_w", &t), *n2b = bufs[10] = fx_load(&fx, c, "norm2_b", &t);
    float *f1w = bufs[11] = fx_load(&fx, c, "fc1_w", &t), *f1b = bufs[12] = fx_load(&fx, c, "fc1_b", &t);
    float *f2w = bufs[13] = fx_load(&fx, c, "fc2_w", &t), *f2b = bufs[14] = fx_load(&fx, c, "fc2_b", &t);
    int64_t dim = x.ne[3], hid = fx_int(c, "hidden"), rows = x.ne[0] * x.ne[1] * x.ne[2];

    struct eng_ctx ctx;
    ck_assert(eng_ctx_init(&ctx, nthreads, eng_swin_attn_scratch_bytes(&a, nthreads, x.ne[0], x.ne[1], x.ne[2])) ==
              0);
    struct eng_tensor cur = clone(&x, "block"), xn = clone(&x, "normed");
    float *h = bufs[15] = malloc(sizeof(float) * (size_t)(rows * hid));
    ck_assert_ptr_nonnull(h);

    layer_norm_rows(xn.data, cur.data, rows, dim, n1w, n1b);
    ck_assert_msg(eng_swin_window_attention(&ctx, &a, &xn, &cur, true) == 0, "%s", eng_errmsg());
    layer_norm_rows(xn.data, cur.data, rows, dim, n2w, n2b);
    for (int64_t r = 0; r < rows; r++)
        memcpy(h + r * hid, f1b, sizeof(float) * (size_t)hid);
    eng_gemm(&ctx, false, true, rows, hid, dim, 1.0f, xn.data, dim, f1w, dim, 1.0f, h, hid);
    eng_act_rows(ENG_ACT_GELU, 0.0f, h, rows, hid, hid);
    for (int64_t r = 0; r < rows; r++)
        memcpy(xn.data + r * dim, f2b, sizeof(float) * (size_t)dim);
    eng_gemm(&ctx, false, true, rows, dim, hid, 1.0f, h, hid, f2w, hid, 1.0f, xn.data, dim);
    for (int64_t i = 0; i < rows * dim; i++)
        cur.data[i] += xn.data[i];
    /* Two layer norms, attention and a 4x MLP chained: still 1e-5 of the largest value. */
    fx_check("swin_block", c, &cur, &want, 1e-5);

    free(cur.data);
    free(xn.data);
    eng_ctx_free(&ctx);
    eng_swin_attn_free(&a);
    free_bufs(bufs, 16);
}

static void run_case(int i, int nthreads)
{
    json_t *c = fx_case(&fx, i);
    const char *op = fx_str(c, "op");
    if (strcmp(op, "attn") == 0)
        run_attn(c, nthreads);
    else if (strcmp(op, "merge") == 0)
        run_merge(c, nthreads);
    else if (strcmp(op, "block") == 0)
        run_block(c, nthreads);
    else
        ck_abort_msg("case %s: unknown op '%s'", fx_name(c), op);
}

START_TEST(swin_case)
{
    run_case(_i, 1);
}
END_TEST

START_TEST(swin_case_threads)
{
    run_case(_i, 3);
}
END_TEST

START_TEST(swin_errors)
{
    enum { C = 8, HEADS = 2, T = 49, TAB = 13 * 13 };
    static float qkv_w[3 * C * C], qkv_b[3 * C], proj_w[C * C], proj_b[C], table[TAB * HEADS];
    struct eng_swin_attn a;
    ck_assert_int_eq(eng_swin_attn_init(&a, C, 3, 7, 7, 0, 0, qkv_w, qkv_b, proj_w, proj_b, table), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "heads"));
    ck_assert_int_eq(eng_swin_attn_init(&a, C, HEADS, 7, 7, 7, 0, qkv_w, qkv_b, proj_w, proj_b, table), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "shift"));
    ck_assert_int_eq(eng_swin_attn_init(&a, C, HEADS, 7, 7, 3, 3, qkv_w, NULL, proj_w, NULL, table), 0);

    static float xb[2 * 9 * 9 * C], yb[2 * 9 * 9 * C];
    struct eng_tensor x = eng_tensor_make("tokens", xb, 4, (int64_t[]){2, 9, 9, C});
    struct eng_tensor y = eng_tensor_make("out", yb, 4, (int64_t[]){2, 9, 9, C});
    struct eng_tensor bad = eng_tensor_make("narrow", yb, 4, (int64_t[]){2, 9, 9, C / 2});
    struct eng_tensor small = eng_tensor_make("small", yb, 4, (int64_t[]){2, 9, 8, C});
    struct eng_ctx ctx;
    size_t need = eng_swin_attn_scratch_bytes(&a, 2, 2, 9, 9);
    ck_assert(eng_ctx_init(&ctx, 2, need - ENG_ARENA_ALIGN) == 0);
    ck_assert_int_eq(eng_swin_window_attention(&ctx, &a, &bad, &y, false), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "narrow"));
    ck_assert_int_eq(eng_swin_window_attention(&ctx, &a, &x, &small, false), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "small"));
    struct eng_tensor shifted = eng_tensor_slice(&x, 2, 1, 8);
    struct eng_tensor over = eng_tensor_slice(&x, 2, 0, 8);
    ck_assert_int_eq(eng_swin_window_attention(&ctx, &a, &shifted, &over, false), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "overlaps"));
    ck_assert_int_eq(eng_swin_window_attention(&ctx, &a, &x, &y, false), -1); /* scratch too small */
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "scratch"));
    ck_assert_uint_eq(ctx.scratch.used, 0);
    eng_ctx_free(&ctx);
    eng_swin_attn_free(&a);

    static float nw[4 * C], nb[4 * C], rw[8 * C * C];
    struct eng_swin_merge m;
    ck_assert_int_eq(eng_swin_merge_init(&m, 0, nw, nb, rw), -1);
    ck_assert_int_eq(eng_swin_merge_init(&m, C, nw, nb, rw), 0);
    ck_assert(eng_ctx_init(&ctx, 1, eng_swin_merge_scratch_bytes(&m, 2, 9, 9)) == 0);
    static float mb[2 * 6 * 6 * 4 * C];
    struct eng_tensor mo = eng_tensor_make("merged", mb, 4, (int64_t[]){2, 5, 5, 2 * C});
    struct eng_tensor mw = eng_tensor_make("merged_wrong", mb, 4, (int64_t[]){2, 4, 5, 2 * C});
    ck_assert_int_eq(eng_swin_patch_merge(&ctx, &m, &x, &mw), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "merged_wrong"));
    struct eng_tensor tall = eng_tensor_make("tall", mb, 4, (int64_t[]){2, 6, 6, 2 * C});
    struct eng_tensor gappy = eng_tensor_slice(&tall, 1, 0, 5);
    gappy = eng_tensor_slice(&gappy, 2, 0, 5); /* rows of 5 pixels in rows of 6: not evenly spaced */
    snprintf(gappy.name, sizeof gappy.name, "gappy");
    ck_assert_int_eq(eng_swin_patch_merge(&ctx, &m, &x, &gappy), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "evenly spaced"));
    struct eng_tensor tall4 = eng_tensor_make("tall4", mb, 4, (int64_t[]){2, 6, 6, 4 * C});
    struct eng_tensor gappy4 = eng_tensor_slice(&tall4, 1, 0, 5);
    gappy4 = eng_tensor_slice(&gappy4, 2, 0, 5);
    ck_assert_int_eq(eng_swin_patch_gather(&ctx, &x, &gappy4), 0); /* the gather alone takes any strides */
    struct eng_tensor g_bad = eng_tensor_make("gather_out", mb, 4, (int64_t[]){2, 5, 4, 4 * C});
    ck_assert_int_eq(eng_swin_patch_gather(&ctx, &x, &g_bad), -1);
    ck_assert_int_eq(eng_swin_patch_merge(&ctx, &m, &x, &mo), 0);
    eng_ctx_free(&ctx);
    ck_assert(eng_ctx_init(&ctx, 1, 0) == 0);
    ck_assert_int_eq(eng_swin_patch_merge(&ctx, &m, &x, &mo), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "scratch"));
    eng_ctx_free(&ctx);
    eng_swin_merge_free(&m);
}
END_TEST

int main(void)
{
    TCase *tc = fx_begin(&fx, "swin");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, swin_case, 0, fx_ncases(&fx));
    tcase_add_loop_test(tc, swin_case_threads, 0, fx_ncases(&fx));
    tcase_add_test(tc, swin_errors);
    return fx_finish(&fx, tc);
}
