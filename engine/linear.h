/* Fully connected layers and matrix products: linear, matmul, batched matmul.
 *
 *   struct eng_linear fc;
 *   // torch nn.Linear(768, 384): weight [384, 768], bias [384]; GELU fused after the bias
 *   if (eng_linear_init(&fc, "head.fc1", 768, 384, w, b, ENG_ACT_GELU, 0.0f) < 0) die(eng_errmsg());
 *   // x [B, 49, 768] -> y [B, 49, 384]; x and y may be column slices of wider buffers
 *   if (eng_linear(&ctx, &fc, &x, &y) < 0) die(eng_errmsg());
 *   eng_linear_free(&fc);
 *
 *   // Swin attention, per (window, head): S = Q K^T * scale, then O = softmax(S) V
 *   eng_bmm(&ctx, &q, false, &k, true, scale, &s);
 *   eng_softmax(&ctx, &s);
 *   eng_bmm(&ctx, &s, false, &v, false, 1.0f, &o);
 *
 * A tensor here is viewed as rows of its innermost dimension (features); every leading
 * dimension is a row dimension, so an NHWC activation is N*H*W rows of C. Rows need not be
 * evenly spaced: a view sliced along an outer dimension is walked in runs of evenly spaced
 * rows, one GEMM per run. Only eng_linear_init allocates; the forward calls borrow nothing.
 */
#ifndef SALIENT_ENGINE_LINEAR_H
#define SALIENT_ENGINE_LINEAR_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/activation.h"
#include "engine/ctx.h"
#include "engine/sgemm.h"
#include "engine/tensor.h"

struct eng_linear {
    char name[ENG_NAME_MAX];
    int64_t in, out;   /* features */
    float *w;          /* owned: W^T, [in x out] row-major, so a GEMM's B is contiguous per row;
                        * NULL after eng_linear_drop_unpacked */
    float *bias;       /* owned, out floats, or NULL */
    enum eng_act act;  /* epilogue after the bias */
    float act_param;
    struct eng_packed_b pw; /* owned: w packed for engine/sgemm.h where it runs (eng_linear and
                             * Swin's attention use it then), else empty */
};

/* Pack a torch-layout weight w [out, in] (and bias [out] or NULL) into l; w and bias are
 * copied, the caller keeps them. Load time: allocates. Returns 0, or -1 with a message (bad
 * sizes, out of memory), leaving l empty (safe to free). */
int eng_linear_init(struct eng_linear *l, const char *name, int64_t in, int64_t out, const float *w,
                    const float *bias, enum eng_act act, float act_param);

/* Release l's packed weights; l is empty afterwards (freeing twice is harmless). */
void eng_linear_free(struct eng_linear *l);

/* Free w where the packed copy runs every product (a layer whose weights nobody reads back:
 * not a head whose weights make class activation maps). Otherwise leaves l as it is. */
void eng_linear_drop_unpacked(struct eng_linear *l);

/* y = act(x W^T + b). x is [..., in], y is [..., out] with the same leading dimensions; both
 * may be strided views (y may be a column slice of a wider buffer). y must not overlap x.
 * Returns 0, or -1 with a message naming the layer and both shapes. Overwrites y only. */
int eng_linear(const struct eng_ctx *ctx, const struct eng_linear *l, const struct eng_tensor *x,
               struct eng_tensor *y);

/* The row GEMM underneath eng_linear and 1x1 convolutions: y = act(x B + bias) where B is
 * [k x n] row-major with leading dimension ldb, k = x's innermost size, n = y's innermost
 * size; x and y need only hold the same number of rows (their leading shapes may differ).
 * bias (n floats) may be NULL. Returns 0, or -1 with a message naming x and y. */
int eng_rows_gemm(const struct eng_ctx *ctx, const struct eng_tensor *x, const float *b, int64_t ldb,
                  const float *bias, enum eng_act act, float act_param, struct eng_tensor *y);

/* The same with B packed at load (engine/sgemm.h, requires eng_sgemm_enabled()): y = op(x B),
 * op's prologue applied to x and its bias and act to the product; res (a tensor with y's rows
 * and columns, not overlapping y) or NULL is added before act (op->res is ignored). op may be
 * NULL. Returns 0, or -1 with a message naming x and y. */
int eng_rows_gemm_packed(const struct eng_ctx *ctx, const struct eng_tensor *x, const struct eng_packed_b *pb,
                         const struct eng_sgemm_ops *op, const struct eng_tensor *res, struct eng_tensor *y);

/* Rows r, r+1, ... of t (viewed as rows of its innermost dimension, r < rows) that are evenly
 * spaced: returns how many (>= 1), with *row the first and *ld their spacing in floats. For a
 * contiguous tensor or a channel slice of one, that is every row from r on. */
int64_t eng_row_run(const struct eng_tensor *t, int64_t r, float **row, int64_t *ld);

/* The fused epilogue on rows x cols floats, rows ld apart: add bias (cols floats, or NULL) to
 * every row, then apply act. Calling thread only. */
void eng_bias_act_rows(float *y, int64_t rows, int64_t cols, int64_t ld, const float *bias, enum eng_act act,
                       float act_param);

/* c = alpha * op(a) op(b) for 2-D tensors, op(t) = t or t^T; each may be a column slice of a
 * wider buffer. c must not overlap a or b. Returns 0, or -1 with a message giving the three
 * shapes when they do not fit. Overwrites c only. */
int eng_matmul(const struct eng_ctx *ctx, const struct eng_tensor *a, bool trans_a, const struct eng_tensor *b,
               bool trans_b, float alpha, struct eng_tensor *c);

/* c[i] = alpha * op(a[i]) op(b[i]) for every index i over the leading (batch) dimensions of
 * 3-D or 4-D tensors; all three have the same batch dimensions (b may instead have batch
 * dimensions of size 1 everywhere, i.e. be shared). Batch strides are free, so heads can be
 * a view into a fused qkv buffer without a copy. The batch is split across threads. Returns
 * 0, or -1 with a message giving the three shapes. Overwrites c only. */
int eng_bmm(const struct eng_ctx *ctx, const struct eng_tensor *a, bool trans_a, const struct eng_tensor *b,
            bool trans_b, float alpha, struct eng_tensor *c);

#endif
