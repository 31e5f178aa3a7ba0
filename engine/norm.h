/* Normalisation: layer norm over the innermost dimension, and inference batch norm folded
 * into a per-channel affine map.
 *
 *   struct eng_layer_norm ln = {768, weight, bias, 1e-5f};       // torch nn.LayerNorm(768)
 *   if (eng_layer_norm(ctx, &ln, &tokens, &tokens) < 0) return -1;
 *
 *   // at load time, once: scale and shift are the caller's (e.g. model arena) buffers
 *   struct eng_affine bn;
 *   if (eng_batch_norm_init(&bn, 64, gamma, beta, mean, var, 1e-5f, scale, shift) < 0) return -1;
 *   bn.act = ENG_ACT_RELU;                                        // DenseNet's norm -> relu
 *   eng_affine(ctx, &bn, &x, &y);                                 // one pass per forward
 *
 * Layer norm works on any rank (Swin tokens [N,L,C], NHWC maps normalised per pixel) and any
 * outer strides; it is threaded over rows. Batch norm before a convolution is better folded
 * into that convolution's weights at load; eng_affine is for the norms that cannot be
 * folded (DenseNet's pre-activation norms follow a concatenation, not a convolution).
 */
#ifndef SALIENT_ENGINE_NORM_H
#define SALIENT_ENGINE_NORM_H

#include <stdint.h>

#include "engine/ctx.h"
#include "engine/eltwise.h"
#include "engine/tensor.h"

struct eng_layer_norm {
    int64_t dim;         /* the normalised (innermost) size */
    const float *weight; /* dim floats, borrowed; NULL means 1 (elementwise_affine=False) */
    const float *bias;   /* dim floats, borrowed; NULL means 0 */
    float eps;           /* added to the biased variance, as torch does */
};

/* y = (x - mean) / sqrt(var + eps) * weight + bias over each row of x's innermost dimension;
 * y may be x. Returns 0, or -1 with a message naming the tensors if x and y differ in shape
 * or the innermost dimension is not ln->dim (y is then untouched). */
int eng_layer_norm(const struct eng_ctx *ctx, const struct eng_layer_norm *ln, const struct eng_tensor *x,
                   struct eng_tensor *y);

/* Fold inference batch norm (torch BatchNorm2d in eval mode) into bn: writes
 * scale[c] = gamma[c] / sqrt(var[c] + eps) and shift[c] = beta[c] - mean[c] * scale[c] into
 * the caller's arrays of `channels` floats, and points bn at them (bn borrows them: keep them
 * alive as long as bn) with act = ENG_ACT_NONE. gamma and beta may be NULL (affine=False).
 * Returns 0, or -1 with a message naming the channel if var + eps is not positive and finite. */
int eng_batch_norm_init(struct eng_affine *bn, int64_t channels, const float *gamma, const float *beta,
                        const float *mean, const float *var, float eps, float *scale, float *shift);

#endif
