/* test_gemm.c: the threaded GEMM against torch, with padded leading dimensions. */
#include <stdlib.h>
#include <string.h>

#include "engine/gemm.h"
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

int main(void)
{
    TCase *tc = fx_begin(&fx, "gemm");
    tcase_add_loop_test(tc, gemm_one_thread, 0, fx_ncases(&fx));
    tcase_add_loop_test(tc, gemm_two_threads_padded, 0, fx_ncases(&fx));
    return fx_finish(&fx, tc);
}
