/* test_gemm.c: the threaded GEMM against torch, with padded leading dimensions; the packed GEMM
 * (engine/sgemm.h) and its fused prologue/epilogue against a double-precision reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/gemm.h"
#include "engine/linear.h"
#include "engine/sgemm.h"
#include "tests/unit/fixture.h"

static struct fx fx;

/* Copy a rows x cols matrix into a buffer with leading dimension ld > cols, so the engine
 * must honour ld (as it does for channel slices). */
static float *padded(const float *src, int64_t rows, int64_t cols, int64_t ld)
{
    float *p = malloc((size_t)(rows * ld) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    for (int64_t i = 0; i < rows * ld; i++)
        p[i] = -1e30f; /* poison: a read past cols shows up as a huge error */
    for (int64_t r = 0; r < rows; r++)
        memcpy(p + r * ld, src + r * cols, (size_t)cols * sizeof(float));
    return p;
}

static void run_case(int i, int nthreads, int pad)
{
    json_t *c = fx_case(&fx, i);
    int64_t m = fx_int(c, "m"), n = fx_int(c, "n"), k = fx_int(c, "k");
    bool ta = fx_bool(c, "trans_a"), tb = fx_bool(c, "trans_b");
    struct eng_tensor a, b, c0, y;
    float *ab = fx_load(&fx, c, "a", &a), *bb = fx_load(&fx, c, "b", &b);
    float *cb = fx_load(&fx, c, "c", &c0), *yb = fx_load(&fx, c, "y", &y);
    int64_t ar = a.ne[0], ac = a.ne[1], br = b.ne[0], bc = b.ne[1];
    float *ap = padded(ab, ar, ac, ac + pad), *bp = padded(bb, br, bc, bc + pad), *cp = padded(cb, m, n, n + pad);
    struct eng_ctx ctx;
    ck_assert_int_eq(eng_ctx_init(&ctx, nthreads, 0), 0);
    eng_gemm(&ctx, ta, tb, m, n, k, (float)fx_num(c, "alpha"), ap, ac + pad, bp, bc + pad, (float)fx_num(c, "beta"),
             cp, n + pad);
    struct eng_tensor got = eng_tensor_make("c", cp, 2, (int64_t[]){m, n});
    got.nb[0] = (size_t)(n + pad) * sizeof(float);
    fx_check(nthreads > 1 ? "gemm (2 threads)" : "gemm (1 thread)", c, &got, &y, 1e-5);
    /* The padding columns of C must be untouched. */
    for (int64_t r = 0; r < m; r++)
        for (int64_t q = n; q < n + pad; q++)
            ck_assert_msg(cp[r * (n + pad) + q] == -1e30f, "gemm wrote past n at row %lld", (long long)r);
    eng_ctx_free(&ctx);
    free(ap), free(bp), free(cp), free(ab), free(bb), free(cb), free(yb);
}

START_TEST(gemm_one_thread) { run_case(_i, 1, 0); }
END_TEST
START_TEST(gemm_two_threads_padded) { run_case(_i, 2, 3); }
END_TEST

/* --- the packed GEMM: odd shapes, padded leading dimensions, column ranges, fused ops --- */

struct pk_case {
    int64_t m, n, k, lda_pad, ldc_pad, c0, c1; /* c1 0: n */
    bool bias, res, pro;                       /* pro: A -> relu(A * scale + shift) */
    enum eng_act act;
};

/* Shapes straddle the blocking: MR 6, NR 16, MC 144, KC 256 (K blocks near-equal). */
static const struct pk_case pk_cases[] = {
    {1, 1, 1, 0, 0, 0, 0, false, false, false, ENG_ACT_NONE},
    {5, 17, 3, 2, 1, 0, 0, true, false, false, ENG_ACT_RELU},
    {6, 16, 256, 0, 0, 0, 0, true, true, false, ENG_ACT_RELU},
    {7, 33, 257, 3, 5, 0, 0, true, true, false, ENG_ACT_NONE},
    {13, 48, 600, 1, 0, 16, 40, true, false, false, ENG_ACT_RELU6},
    {150, 70, 520, 5, 3, 0, 0, true, true, false, ENG_ACT_RELU},
    {149, 31, 1000, 0, 2, 16, 0, false, true, true, ENG_ACT_GELU},
    {300, 64, 147, 1, 0, 0, 0, true, false, true, ENG_ACT_NONE},
    {37, 130, 64, 0, 7, 32, 129, true, true, true, ENG_ACT_RELU},
    /* last row tiles of 2, 3 and 4 rows (kernel_tail), A read in place */
    {50, 300, 40, 1, 2, 0, 0, true, true, false, ENG_ACT_RELU6},
    {99, 32, 20, 0, 0, 0, 0, false, false, false, ENG_ACT_GELU},
    {196, 64, 300, 2, 1, 0, 0, true, true, false, ENG_ACT_RELU},
    /* long and narrow, A in place over several row and K blocks (the next A block prefetched) */
    {400, 48, 600, 3, 0, 0, 0, true, true, false, ENG_ACT_RELU},
};

static float urand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *rand_buf(int64_t count, unsigned *seed)
{
    float *p = malloc((size_t)(count > 0 ? count : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    for (int64_t i = 0; i < count; i++)
        p[i] = urand(seed);
    return p;
}

static double ref_act(enum eng_act act, double v)
{
    switch (act) {
    case ENG_ACT_RELU:
        return v > 0 ? v : 0;
    case ENG_ACT_RELU6:
        return v < 0 ? 0 : v > 6 ? 6 : v;
    case ENG_ACT_GELU:
        return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    default:
        return v;
    }
}

/* Reference for C[i][j] and the scale of the sum (sum of |terms|) it is judged against. */
static double pk_ref(const struct pk_case *t, const float *a, int64_t lda, const float *b, const float *sc,
                     const float *sh, const float *bias, const float *res, int64_t ldr, int64_t i, int64_t j,
                     double *scale)
{
    double acc = 0, mag = 0;
    for (int64_t p = 0; p < t->k; p++) {
        double x = a[i * lda + p];
        if (t->pro) {
            x = x * sc[p] + sh[p];
            x = x > 0 ? x : 0;
        }
        acc += x * b[p * t->n + j];
        mag += fabs(x * b[p * t->n + j]);
    }
    if (bias)
        acc += bias[j], mag += fabs(bias[j]);
    if (res)
        acc += res[i * ldr + j], mag += fabs(res[i * ldr + j]);
    *scale = mag + 1e-3;
    return ref_act(t->act, acc);
}

/* Checks C's columns [c0, c1) against the reference and that everything else kept its poison. */
static double pk_check(const struct pk_case *t, const char *what, const float *c, int64_t ldc, int64_t c0, int64_t c1,
                       const float *a, int64_t lda, const float *b, const float *sc, const float *sh,
                       const float *bias, const float *res, int64_t ldr)
{
    double worst = 0;
    for (int64_t i = 0; i < t->m; i++)
        for (int64_t j = 0; j < ldc; j++) {
            float got = c[i * ldc + j];
            if (j < c0 || j >= c1) {
                ck_assert_msg(got == -1e30f, "%s m=%lld n=%lld k=%lld: wrote C[%lld][%lld] outside columns [%lld,%lld)",
                              what, (long long)t->m, (long long)t->n, (long long)t->k, (long long)i, (long long)j,
                              (long long)c0, (long long)c1);
                continue;
            }
            double scale, want = pk_ref(t, a, lda, b, sc, sh, bias, res, ldr, i, j, &scale);
            double err = fabs(got - want) / scale;
            if (err > worst)
                worst = err;
            ck_assert_msg(err < 2e-6, "%s m=%lld n=%lld k=%lld: C[%lld][%lld] = %g, want %g (error %.2e of the sum's "
                          "magnitude)", what, (long long)t->m, (long long)t->n, (long long)t->k, (long long)i,
                          (long long)j, (double)got, want, err);
        }
    return worst;
}

START_TEST(packed_gemm)
{
    if (!eng_sgemm_enabled()) {
        printf("packed gemm: skipped, this CPU has no AVX2+FMA (or SALIENT_GEMM=openblas)\n");
        return;
    }
    const struct pk_case *t = &pk_cases[_i];
    unsigned seed = 1234u + (unsigned)_i;
    int64_t lda = t->k + t->lda_pad, ldc = t->n + t->ldc_pad, c1 = t->c1 ? t->c1 : t->n;
    float *a = rand_buf(t->m * lda, &seed), *b = rand_buf(t->k * t->n, &seed);
    float *bias = t->bias ? rand_buf(t->n, &seed) : NULL, *res = t->res ? rand_buf(t->m * ldc, &seed) : NULL;
    float *sc = rand_buf(t->k, &seed), *sh = rand_buf(t->k, &seed);
    float *c = malloc((size_t)(t->m * ldc) * sizeof(float));
    ck_assert_ptr_nonnull(c);
    for (int64_t i = 0; i < t->m * ldc; i++)
        c[i] = -1e30f;
    struct eng_packed_b pb;
    ck_assert_int_eq(eng_pack_b(&pb, "test", b, t->n, t->k, t->n), 0);
    struct eng_sgemm_ops op = {.a_scale = t->pro ? sc : NULL, .a_shift = t->pro ? sh : NULL, .a_relu = t->pro,
                               .bias = bias, .res = res, .ldr = ldc, .act = t->act};
    eng_sgemm_packed(t->m, a, lda, &pb, t->c0, c1, c, ldc, &op);
    double e1 = pk_check(t, "packed gemm", c, ldc, t->c0, c1, a, lda, b, op.a_scale, op.a_shift, bias, res, ldc);

    /* The same through the threaded row GEMM, all columns, y a channel slice of a wider buffer. */
    for (int64_t i = 0; i < t->m * ldc; i++)
        c[i] = -1e30f;
    struct eng_tensor x = eng_tensor_make("x", a, 2, (int64_t[]){t->m, t->k});
    x.nb[0] = (size_t)lda * sizeof(float);
    struct eng_tensor y = eng_tensor_make("y", c, 2, (int64_t[]){t->m, t->n});
    y.nb[0] = (size_t)ldc * sizeof(float);
    struct eng_tensor r = res ? eng_tensor_make("res", res, 2, (int64_t[]){t->m, t->n}) : x;
    r.nb[0] = (size_t)ldc * sizeof(float);
    struct eng_ctx ctx;
    ck_assert_int_eq(eng_ctx_init(&ctx, 2, 0), 0);
    op.res = NULL;
    ck_assert_int_eq(eng_rows_gemm_packed(&ctx, &x, &pb, &op, res ? &r : NULL, &y), 0);
    double e2 = pk_check(t, "rows gemm packed (2 threads)", c, ldc, 0, t->n, a, lda, b, op.a_scale, op.a_shift,
                         bias, res, ldc);
    printf("packed gemm %lldx%lldx%lld: max error %.2e / %.2e of the sum's magnitude (direct / 2 threads)\n",
           (long long)t->m, (long long)t->n, (long long)t->k, e1, e2);

    /* A shape that does not fit the packed weights is refused with a message. */
    struct eng_tensor bad = eng_tensor_make("bad", a, 2, (int64_t[]){t->m, t->k > 1 ? t->k - 1 : 2});
    ck_assert_int_eq(eng_rows_gemm_packed(&ctx, &bad, &pb, &op, NULL, &y), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "packed weights"));
    eng_ctx_free(&ctx);
    eng_packed_b_free(&pb);
    eng_packed_b_free(&pb);
    free(a), free(b), free(bias), free(res), free(sc), free(sh), free(c);
}
END_TEST

/* eng_sgemm_packed_runs (a convolution's kernel rows read in place) against eng_sgemm_packed on
 * the same rows gathered into a plain matrix (an im2col) and the same weight rows packed on
 * their own: the sums run in the same order, so the results must be identical, in full tiles,
 * a last tile of 1-5 rows and a last panel narrower than 16 columns. */
static const struct runs_case {
    int64_t m, lda, run, nruns, a_run, k0, kb, n;
    bool bias, res;
    enum eng_act act;
} runs_cases[] = {
    {23, 6, 21, 7, 672, 0, 147, 64, true, false, ENG_ACT_RELU}, /* a 7x7 stride-2 stem over 3 channels */
    {8, 3, 9, 2, 40, 9, 27, 20, false, true, ENG_ACT_RELU6},    /* the lower two of three kernel rows */
    {12, 12, 12, 4, 700, 0, 48, 96, true, true, ENG_ACT_GELU},  /* 4x4 stride-4 patches */
    {5, 4, 8, 3, 50, 8, 40, 17, true, false, ENG_ACT_NONE},     /* rows past the first tile only */
};

START_TEST(packed_runs)
{
    if (!eng_sgemm_enabled()) {
        printf("packed runs: skipped, this CPU has no AVX2+FMA (or SALIENT_GEMM=openblas)\n");
        return;
    }
    const struct runs_case *t = &runs_cases[_i];
    unsigned seed = 77u + (unsigned)_i;
    int64_t k = t->run * t->nruns;
    int64_t span = (t->nruns - 1) * t->a_run + (t->m - 1) * t->lda + t->run;
    float *a = rand_buf(span, &seed), *b = rand_buf(t->kb * t->n, &seed);
    float *bias = t->bias ? rand_buf(t->n, &seed) : NULL, *res = t->res ? rand_buf(t->m * t->n, &seed) : NULL;
    float *g = malloc((size_t)(t->m * k) * sizeof(float)), *c1 = malloc((size_t)(t->m * t->n) * sizeof(float));
    float *c2 = malloc((size_t)(t->m * t->n) * sizeof(float));
    ck_assert(g && c1 && c2);
    for (int64_t i = 0; i < t->m; i++)
        for (int64_t q = 0; q < t->nruns; q++)
            memcpy(g + i * k + q * t->run, a + q * t->a_run + i * t->lda, (size_t)t->run * sizeof(float));
    struct eng_packed_b whole, sub;
    ck_assert_int_eq(eng_pack_b(&whole, "whole", b, t->n, t->kb, t->n), 0);
    ck_assert_int_eq(eng_pack_b(&sub, "sub", b + t->k0 * t->n, t->n, k, t->n), 0);
    struct eng_sgemm_ops op = {.bias = bias, .res = res, .ldr = t->n, .act = t->act};
    eng_sgemm_packed_runs(t->m, a, t->lda, t->run, t->nruns, t->a_run, &whole, t->k0, c1, t->n, &op);
    eng_sgemm_packed(t->m, g, k, &sub, 0, t->n, c2, t->n, &op);
    for (int64_t i = 0; i < t->m * t->n; i++)
        ck_assert_msg(c1[i] == c2[i] || (c1[i] != c1[i] && c2[i] != c2[i]),
                      "runs case %d: C[%lld][%lld] = %.9g in runs, %.9g gathered", _i, (long long)(i / t->n),
                      (long long)(i % t->n), (double)c1[i], (double)c2[i]);
    eng_packed_b_free(&whole);
    eng_packed_b_free(&sub);
    free(a), free(b), free(bias), free(res), free(g), free(c1), free(c2);
}
END_TEST

int main(void)
{
    TCase *tc = fx_begin(&fx, "gemm");
    tcase_add_loop_test(tc, gemm_one_thread, 0, fx_ncases(&fx));
    tcase_add_loop_test(tc, gemm_two_threads_padded, 0, fx_ncases(&fx));
    tcase_add_loop_test(tc, packed_gemm, 0, (int)(sizeof pk_cases / sizeof pk_cases[0]));
    tcase_add_loop_test(tc, packed_runs, 0, (int)(sizeof runs_cases / sizeof runs_cases[0]));
    return fx_finish(&fx, tc);
}
