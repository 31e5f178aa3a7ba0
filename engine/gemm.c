/* gemm.c: cblas_sgemm split across the engine's threads. */
#include "engine/gemm.h"

#include <cblas.h>

struct gemm_job {
    bool ta, tb;
    int64_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int64_t lda, ldb, ldc;
    bool split_n;
};

void eng_gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
                (blasint)ldc);
}

static void gemm_part(void *arg, int ith, int nth)
{
    const struct gemm_job *j = arg;
    int64_t b0, b1;
    if (!j->split_n) {
        eng_split(j->m, ith, nth, &b0, &b1);
        /* Row r of op(A) starts at a + r*lda, or at column r (a + r) when A is transposed. */
        const float *a = j->ta ? j->a + b0 : j->a + b0 * j->lda;
        eng_gemm_serial(j->ta, j->tb, b1 - b0, j->n, j->k, j->alpha, a, j->lda, j->b, j->ldb, j->beta,
                        j->c + b0 * j->ldc, j->ldc);
    } else {
        eng_split(j->n, ith, nth, &b0, &b1);
        const float *b = j->tb ? j->b + b0 * j->ldb : j->b + b0;
        eng_gemm_serial(j->ta, j->tb, j->m, b1 - b0, j->k, j->alpha, j->a, j->lda, b, j->ldb, j->beta,
                        j->c + b0, j->ldc);
    }
}

void eng_gemm(const struct eng_ctx *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
              float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
              int64_t ldc)
{
    struct gemm_job j = {trans_a, trans_b, m, n, k, alpha, beta, a, b, c, lda, ldb, ldc, false};
    int nth = ctx->nthreads;
    /* More columns than rows: split the columns, so each thread packs only its share of B (and
     * below ~16 rows per thread OpenBLAS's micro-kernels would idle anyway). */
    j.split_n = n > m;
    int64_t along = j.split_n ? n : m;
    int64_t flops = m * n * k;
    int tasks = flops < (int64_t)1 << 18 ? 1 : (int)(along < nth ? along : nth);
    eng_parallel(ctx, tasks, gemm_part, &j);
}
