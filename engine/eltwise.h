/* Elementwise ops on tensors of equal shape: add (with a fused activation), multiply, scale,
 * per-channel affine, and concatenation as a copy.
 *
 *   eng_add(ctx, ENG_ACT_RELU, 0.0f, &out, &identity, &out);    // ResNet: out = relu(out + identity)
 *   struct eng_affine bn = {c, scale, shift, ENG_ACT_RELU, 0.0f};
 *   eng_affine(ctx, &bn, &x, &y);                                // DenseNet: relu(norm(x)), one pass
 *   eng_concat(ctx, 3, (struct eng_tensor[]){a, b}, 2, &y);      // channels of a, then of b
 *
 * Every op walks its tensors as rows of the innermost dimension, so any tensor may be a view
 * (a channel slice of a wider NHWC buffer, any outer strides); the innermost dimension is
 * contiguous as everywhere in the engine. The output may be one of the inputs (same data and
 * strides: in place), but must not partially overlap one. Work is split over ctx's threads by
 * rows; small tensors run on the calling thread.
 */
#ifndef SALIENT_ENGINE_ELTWISE_H
#define SALIENT_ENGINE_ELTWISE_H

#include <stdint.h>

#include "engine/activation.h"
#include "engine/ctx.h"
#include "engine/tensor.h"

/* y = act(a + b). Returns 0, or -1 with a message naming the tensors if the shapes differ
 * (y is then untouched). */
int eng_add(const struct eng_ctx *ctx, enum eng_act act, float act_param, const struct eng_tensor *a,
            const struct eng_tensor *b, struct eng_tensor *y);

/* y = a * b elementwise. Errors as eng_add. */
int eng_mul(const struct eng_ctx *ctx, const struct eng_tensor *a, const struct eng_tensor *b, struct eng_tensor *y);

/* y = s * x. Errors as eng_add. */
int eng_scale(const struct eng_ctx *ctx, float s, const struct eng_tensor *x, struct eng_tensor *y);

/* Per-channel affine map over the innermost dimension c: y = act(x * scale[c] + shift[c]).
 * This is inference batch norm once eng_batch_norm_init() (norm.h) has folded its statistics,
 * and a bias add when scale is NULL. */
struct eng_affine {
    int64_t channels;   /* must equal the innermost dimension of x */
    const float *scale; /* channels floats, borrowed; NULL means 1 */
    const float *shift; /* channels floats, borrowed; NULL means 0 */
    enum eng_act act;   /* applied after the affine map, in the same pass */
    float act_param;
};

/* Apply p to x into y (y may be x). Returns 0, or -1 with a message if x and y differ in shape
 * or x's innermost dimension is not p->channels. */
int eng_affine(const struct eng_ctx *ctx, const struct eng_affine *p, const struct eng_tensor *x,
               struct eng_tensor *y);

/* Copy the n tensors xs into y one after another along dimension dim (torch.cat). All have
 * y's rank and y's size in every other dimension, and their sizes along dim sum to y's. A part
 * that already is the matching slice of y (a zero-copy producer wrote it in place) is skipped.
 * Returns 0, or -1 with a message naming the first tensor that does not fit (y is then
 * untouched). */
int eng_concat(const struct eng_ctx *ctx, int dim, const struct eng_tensor *xs, int n, struct eng_tensor *y);

/* eng_concat along the innermost (channel) dimension. */
int eng_concat_channels(const struct eng_ctx *ctx, const struct eng_tensor *xs, int n, struct eng_tensor *y);

#endif
