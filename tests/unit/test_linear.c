/* test_linear.c: eng_linear, eng_matmul and eng_bmm against PyTorch (fixtures/gen_linear.py), and their errors. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/linear.h"
#include "tests/unit/fixture.h"

static struct fx fx;

#define SENTINEL 555.0f

static const int thread_counts[] = {1, 3};
#define NTHREAD_COUNTS ((int)(sizeof thread_counts / sizeof thread_counts[0]))

/* An operand placed in a bigger buffer filled with SENTINEL; free buf, check view. */
struct placed {
    float *buf;
    struct eng_tensor view;
    int64_t cols, lo, hi; /* buffer row length, and the columns [lo, hi) the view may use */
    int64_t total;        /* floats in buf */
};

/* wide 0: contiguous copy; 1: columns [off, off + n) of rows extra floats longer; 2 (4-D
 * [B, H, N, d] only): head view into [B, N, H*d + extra], as a fused qkv buffer holds heads. */
static struct placed place(const struct eng_tensor *t, int wide, int64_t extra, int64_t off, bool copy)
{
    struct placed p = {0};
    int nd = t->ndim;
    int64_t ne[ENG_MAX_DIMS];
    memcpy(ne, t->ne, sizeof ne);
    if (wide == 2) {
        ck_assert_int_eq(nd, 4);
        int64_t b = ne[0], h = ne[1], n = ne[2], d = ne[3];
        p.cols = h * d + extra;
        p.lo = 0;
        p.hi = h * d;
        p.total = b * n * p.cols;
        p.buf = malloc((size_t)p.total * sizeof(float));
        ck_assert_ptr_nonnull(p.buf);
        p.view = eng_tensor_make(t->name, p.buf, 4, ne);
        p.view.nb[0] = (size_t)(n * p.cols) * sizeof(float);
        p.view.nb[1] = (size_t)d * sizeof(float);
        p.view.nb[2] = (size_t)p.cols * sizeof(float);
    } else {
        int64_t w = wide ? extra : 0;
        ne[nd - 1] += w;
        p.cols = ne[nd - 1];
        p.lo = wide ? off : 0;
        p.hi = p.lo + t->ne[nd - 1];
        p.total = eng_tensor_nelem(t) / t->ne[nd - 1] * p.cols;
        p.buf = malloc((size_t)p.total * sizeof(float));
        ck_assert_ptr_nonnull(p.buf);
        struct eng_tensor whole = eng_tensor_make(t->name, p.buf, nd, ne);
        p.view = eng_tensor_slice(&whole, nd - 1, p.lo, t->ne[nd - 1]);
    }
    for (int64_t i = 0; i < p.total; i++)
        p.buf[i] = SENTINEL;
    if (copy)
        ck_assert_int_eq(eng_tensor_copy(&p.view, t), 0);
    return p;
}

static int64_t touched_outside(const struct placed *p)
{
    int64_t n = 0;
    for (int64_t i = 0; i < p->total; i++) {
        int64_t col = i % p->cols;
        if ((col < p->lo || col >= p->hi) && p->buf[i] != SENTINEL)
            n++;
    }
    return n;
}

START_TEST(linear_case)
{
    json_t *c = fx_case(&fx, _i);
    const char *op = fx_str(c, "op");
    int wide = fx_int(c, "wide");
    struct eng_tensor want, x, w, b, a;
    float *yb = fx_load(&fx, c, "y", &want);
    for (int ti = 0; ti < NTHREAD_COUNTS; ti++) {
        struct eng_ctx ctx;
        ck_assert_int_eq(eng_ctx_init(&ctx, thread_counts[ti], 0), 0);
        struct placed py = place(&want, wide, 7, 3, false);
        if (strcmp(op, "linear") == 0) {
            float *xb = fx_load(&fx, c, "x", &x), *wb = fx_load(&fx, c, "w", &w), *bb = NULL;
            if (fx_bool(c, "bias"))
                bb = fx_load(&fx, c, "b", &b);
            enum eng_act act;
            ck_assert_int_eq(eng_act_parse(fx_str(c, "act"), &act), 0);
            struct eng_linear l;
            ck_assert_msg(eng_linear_init(&l, fx_name(c), w.ne[1], w.ne[0], wb, bb, act, 0.0f) == 0, "%s",
                          eng_errmsg());
            if (ti % 2) { /* as Swin's blocks load them: the packed copy alone where it runs */
                eng_linear_drop_unpacked(&l);
                ck_assert(l.pw.p ? l.w == NULL : l.w != NULL);
            }
            struct placed px = place(&x, wide, 5, 0, true);
            ck_assert_msg(eng_linear(&ctx, &l, &px.view, &py.view) == 0, "%s", eng_errmsg());
            fx_check("linear", c, &py.view, &want, 1e-5);
            eng_linear_free(&l);
            free(px.buf);
            free(xb);
            free(wb);
            free(bb);
        } else {
            float *ab = fx_load(&fx, c, "a", &a), *bb = fx_load(&fx, c, "b", &b);
            bool ta = fx_bool(c, "ta"), tb = fx_bool(c, "tb");
            float alpha = (float)fx_num(c, "alpha");
            struct placed pa = place(&a, wide, 5, 0, true);
            /* b stays contiguous for column-slice cases; head views apply to every operand. */
            struct placed pb = place(&b, wide == 2 ? 2 : 0, 3, 0, true);
            int rc = strcmp(op, "bmm") == 0 ? eng_bmm(&ctx, &pa.view, ta, &pb.view, tb, alpha, &py.view)
                                            : eng_matmul(&ctx, &pa.view, ta, &pb.view, tb, alpha, &py.view);
            ck_assert_msg(rc == 0, "%s", eng_errmsg());
            fx_check(op, c, &py.view, &want, 1e-5);
            free(pa.buf);
            free(pb.buf);
            free(ab);
            free(bb);
        }
        ck_assert_msg(touched_outside(&py) == 0, "%s: wrote outside the output view", fx_name(c));
        free(py.buf);
        eng_ctx_free(&ctx);
    }
    free(yb);
}
END_TEST

START_TEST(linear_errors)
{
    static float w[6 * 4], buf[256], out[256];
    struct eng_linear l;
    struct eng_ctx ctx;
    ck_assert_int_eq(eng_ctx_init(&ctx, 2, 0), 0);
    ck_assert_int_eq(eng_linear_init(&l, "bad", 0, 6, w, NULL, ENG_ACT_NONE, 0.0f), -1);
    ck_assert_msg(strstr(eng_errmsg(), "'bad'"), "message: %s", eng_errmsg());
    eng_linear_free(&l);
    ck_assert_int_eq(eng_linear_init(&l, "fc", 4, 6, w, NULL, ENG_ACT_NONE, 0.0f), 0);

    struct eng_tensor x = eng_tensor_make("x", buf, 2, (int64_t[]){3, 5});
    struct eng_tensor y = eng_tensor_make("y", out, 2, (int64_t[]){3, 6});
    ck_assert_int_eq(eng_linear(&ctx, &l, &x, &y), -1);
    ck_assert_msg(strstr(eng_errmsg(), "'fc'") && strstr(eng_errmsg(), "[3,5]") && strstr(eng_errmsg(), "[3,6]"),
                  "message: %s", eng_errmsg());
    x = eng_tensor_make("x", buf, 3, (int64_t[]){2, 3, 4});
    y = eng_tensor_make("y", out, 3, (int64_t[]){2, 4, 6});
    ck_assert_int_eq(eng_linear(&ctx, &l, &x, &y), -1);
    y = eng_tensor_make("y", out, 2, (int64_t[]){6, 6});
    ck_assert_int_eq(eng_linear(&ctx, &l, &x, &y), -1);
    /* The row GEMM only needs equal row counts. */
    ck_assert_int_eq(eng_rows_gemm(&ctx, &x, l.w, 6, NULL, ENG_ACT_NONE, 0.0f, &y), 0);
    y = eng_tensor_make("y", out, 2, (int64_t[]){5, 6});
    ck_assert_int_eq(eng_rows_gemm(&ctx, &x, l.w, 6, NULL, ENG_ACT_NONE, 0.0f, &y), -1);
    ck_assert_msg(strstr(eng_errmsg(), "6 rows") && strstr(eng_errmsg(), "5"), "message: %s", eng_errmsg());
    eng_linear_free(&l);
    eng_linear_free(&l);
    eng_ctx_free(&ctx);
}
END_TEST

START_TEST(matmul_errors)
{
    static float a[256], b[256], c[256];
    struct eng_ctx ctx;
    ck_assert_int_eq(eng_ctx_init(&ctx, 2, 0), 0);
    struct eng_tensor ta = eng_tensor_make("a", a, 2, (int64_t[]){4, 5});
    struct eng_tensor tb = eng_tensor_make("b", b, 2, (int64_t[]){4, 6});
    struct eng_tensor tc = eng_tensor_make("c", c, 2, (int64_t[]){4, 6});
    ck_assert_int_eq(eng_matmul(&ctx, &ta, false, &tb, false, 1.0f, &tc), -1);
    ck_assert_msg(strstr(eng_errmsg(), "[4,5]") && strstr(eng_errmsg(), "[4,6]"), "message: %s", eng_errmsg());
    tc = eng_tensor_make("c", c, 2, (int64_t[]){5, 6});
    ck_assert_int_eq(eng_matmul(&ctx, &ta, true, &tb, false, 1.0f, &tc), 0);
    ck_assert_int_eq(eng_matmul(&ctx, &ta, true, &tb, true, 1.0f, &tc), -1);
    ck_assert_msg(strstr(eng_errmsg(), "^T"), "message: %s", eng_errmsg());

    struct eng_tensor ba = eng_tensor_make("qa", a, 3, (int64_t[]){2, 4, 5});
    struct eng_tensor bb = eng_tensor_make("kb", b, 3, (int64_t[]){3, 5, 6});
    struct eng_tensor bc = eng_tensor_make("sc", c, 3, (int64_t[]){2, 4, 6});
    ck_assert_int_eq(eng_bmm(&ctx, &ba, false, &bb, false, 1.0f, &bc), -1); /* batch 2 vs 3 */
    ck_assert_msg(strstr(eng_errmsg(), "qa") && strstr(eng_errmsg(), "[3,5,6]"), "message: %s", eng_errmsg());
    bb = eng_tensor_make("kb", b, 3, (int64_t[]){2, 5, 6});
    ck_assert_int_eq(eng_bmm(&ctx, &ba, false, &bb, false, 1.0f, &bc), 0);
    ck_assert_int_eq(eng_bmm(&ctx, &ba, false, &bb, true, 1.0f, &bc), -1);
    struct eng_tensor b4 = eng_tensor_make("b4", b, 4, (int64_t[]){1, 2, 5, 6});
    ck_assert_int_eq(eng_bmm(&ctx, &ba, false, &b4, false, 1.0f, &bc), -1); /* ranks differ */
    ck_assert_int_eq(eng_bmm(&ctx, &ta, false, &tb, false, 1.0f, &tc), -1); /* 2-D is matmul's */
    eng_ctx_free(&ctx);
}
END_TEST

int main(void)
{
    TCase *tc = fx_begin(&fx, "linear");
    tcase_add_loop_test(tc, linear_case, 0, fx_ncases(&fx));
    tcase_add_test(tc, linear_errors);
    tcase_add_test(tc, matmul_errors);
    return fx_finish(&fx, tc);
}
