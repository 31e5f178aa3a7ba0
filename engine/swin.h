/* Swin Transformer ops matching torchvision 0.14: shifted-window attention and patch merging.
 *
 *   struct eng_swin_attn at;           // once, at load (weights in torch layout, copied)
 *   if (eng_swin_attn_init(&at, 96, 3, 7, 7, 3, 3, qkv_w, qkv_b, proj_w, proj_b, rel_table) < 0)
 *       die(eng_errmsg());
 *   size_t need = eng_swin_attn_scratch_bytes(&at, ctx->nthreads, n, h, w);   // size ctx scratch
 *   // per forward pass: x is norm1(input); y += attention (the block's residual)
 *   if (eng_swin_window_attention(ctx, &at, &xn, &x, true) < 0) die(eng_errmsg());
 *   eng_swin_attn_free(&at);
 *
 *   struct eng_swin_merge pm;          // PatchMerging: gather 2x2, LayerNorm(4C), Linear(4C -> 2C)
 *   eng_swin_merge_init(&pm, 96, norm_w, norm_b, reduction_w);
 *   eng_swin_patch_merge(ctx, &pm, &x, &y);             // [N,H,W,96] -> [N,ceil(H/2),ceil(W/2),192]
 *
 * Tensors are NHWC, as torchvision's Swin keeps them ([B, H, W, C]) between blocks.
 * Window attention follows torchvision's shifted_window_attention step by step: zero-pad H and W
 * to multiples of the window, drop the shift in a dimension the window covers entirely, roll by
 * -shift, partition into windows, qkv, q * head_dim^-0.5, q k^T + relative position bias
 * (+ -100 between tokens from different regions of a shifted map), softmax, A v, proj, reverse.
 * Padded tokens take part in attention exactly as in torchvision (they are zeros before qkv,
 * so they carry the qkv bias); only the real positions are written back.
 */
#ifndef SALIENT_ENGINE_SWIN_H
#define SALIENT_ENGINE_SWIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/ctx.h"
#include "engine/linear.h"
#include "engine/tensor.h"

/* One ShiftedWindowAttention (attn.* of a SwinTransformerBlock), prepared at load. */
struct eng_swin_attn {
    int64_t dim, heads, head_dim;
    int win_h, win_w;     /* window size (7, 7 for swin_t) */
    int shift_h, shift_w; /* requested shift; zeroed per call where the window covers the map */
    struct eng_linear qkv;  /* dim -> 3*dim, packed by eng_linear_init; bias NULL if the checkpoint had none */
    struct eng_linear proj; /* dim -> dim; bias NULL if the checkpoint had none */
    float *bias;          /* [heads, T, T], T = win_h*win_w: the bias table gathered through the
                           * relative position index once, so a forward pass just adds it; owned */
};

/* Copy and repack one attention module's weights (torch layouts):
 *   qkv_w [3*dim, dim], qkv_b [3*dim] or NULL, proj_w [dim, dim], proj_b [dim] or NULL,
 *   rel_table [(2*win_h-1)*(2*win_w-1), heads] (relative_position_bias_table).
 * shift_h/shift_w in [0, win) (torchvision uses win/2 on odd blocks, 0 on even ones).
 * Allocates (load time); free with eng_swin_attn_free. Returns 0, or -1 with a message
 * (dim not divisible by heads, bad window or shift, out of memory); nothing to free then. */
int eng_swin_attn_init(struct eng_swin_attn *a, int64_t dim, int64_t heads, int win_h, int win_w, int shift_h,
                       int shift_w, const float *qkv_w, const float *qkv_b, const float *proj_w,
                       const float *proj_b, const float *rel_table);
void eng_swin_attn_free(struct eng_swin_attn *a);

/* torchvision's relative_position_index for a win_h x win_w window: index[p*T + q] (T =
 * win_h*win_w, p and q row-major token numbers) selects the bias-table row for query p, key q. */
void eng_swin_relative_position_index(int win_h, int win_w, int64_t *index);

/* Scratch eng_swin_window_attention borrows for an [n, h, w, dim] input on nthreads threads. */
size_t eng_swin_attn_scratch_bytes(const struct eng_swin_attn *a, int nthreads, int64_t n, int64_t h, int64_t w);

/* Shifted-window multi-head self-attention of x [N, H, W, dim] (already layer-normed) into
 * y [N, H, W, dim]; with accumulate, the result is added to y (the block's residual) instead
 * of overwriting it. y may be x itself (each window is read whole before it is written).
 * Both may be strided (innermost contiguous). Borrows scratch from ctx (see
 * eng_swin_attn_scratch_bytes) and gives it back. Returns 0, or -1 with a message naming the
 * tensor when a shape is wrong or the scratch is too small (y untouched then). Writes y only. */
int eng_swin_window_attention(struct eng_ctx *ctx, const struct eng_swin_attn *a, const struct eng_tensor *x,
                              struct eng_tensor *y, bool accumulate);

/* PatchMerging (torchvision v1: norm over 4C, then reduction), prepared at load. */
struct eng_swin_merge {
    int64_t dim;   /* input channels C; output has 2C */
    float eps;             /* LayerNorm eps, 1e-5 as torch's default */
    float *norm_w;         /* [4C]; owned */
    float *norm_b;         /* [4C]; owned */
    struct eng_linear red; /* reduction: 4C -> 2C, no bias */
};

/* Copy norm.weight [4C], norm.bias [4C] and reduction.weight [2C, 4C] (torch layout). Allocates;
 * free with eng_swin_merge_free. Returns 0, or -1 with a message (nothing to free then). */
int eng_swin_merge_init(struct eng_swin_merge *m, int64_t dim, const float *norm_w, const float *norm_b,
                        const float *red_w);
void eng_swin_merge_free(struct eng_swin_merge *m);

/* The gather alone (torchvision's _patch_merging_pad): y[n,i,j] = concat(x[2i,2j], x[2i+1,2j],
 * x[2i,2j+1], x[2i+1,2j+1]) with zeros past an odd edge. x [N,H,W,C] -> y [N,ceil(H/2),ceil(W/2),4C].
 * Returns 0, or -1 with a message if the shapes disagree. Writes y only; y must not overlap x. */
int eng_swin_patch_gather(const struct eng_ctx *ctx, const struct eng_tensor *x, struct eng_tensor *y);

/* Scratch eng_swin_patch_merge borrows for an [n, h, w, dim] input. */
size_t eng_swin_merge_scratch_bytes(const struct eng_swin_merge *m, int64_t n, int64_t h, int64_t w);

/* The whole PatchMerging: x [N,H,W,C] -> y [N,ceil(H/2),ceil(W/2),2C]. y's pixels must be
 * evenly spaced rows (contiguous, or a channel slice of a wider buffer). The norm and the
 * reduction are eng_layer_norm and eng_linear over the gathered pixels. Borrows scratch from ctx. Returns 0, or -1 with a message naming
 * the tensor (shape, layout, scratch too small). Writes y only; y must not overlap x. */
int eng_swin_patch_merge(struct eng_ctx *ctx, const struct eng_swin_merge *m, const struct eng_tensor *x,
                         struct eng_tensor *y);

#endif
