/* GEMM: row-major single-precision matrix products on the context's threads.
 *
 *   // C[M x N] = A[M x K] * B[K x N]   (row-major, leading dimensions in floats)
 *   eng_gemm(ctx, false, false, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
 *
 * The work is split across ctx->nthreads along M (or along N when M is too short to feed
 * every thread), and each part is one cblas_sgemm with OpenBLAS fixed at one thread (see
 * ctx.h). A leading dimension larger than the row lets C be a channel slice of a wider NHWC
 * buffer, which is how DenseNet's concatenation costs nothing.
 */
#ifndef SALIENT_ENGINE_GEMM_H
#define SALIENT_ENGINE_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/ctx.h"

/* C = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T; all row-major. */
void eng_gemm(const struct eng_ctx *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
              float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
              int64_t ldc);

/* The same product on the calling thread only (for kernels already inside eng_parallel). */
void eng_gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

#endif
