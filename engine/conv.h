/* 2-D convolution over NHWC activations: weights packed for GEMM at load, bias and activation fused.
 *
 *   // torchvision resnet stem: Conv2d(3, 64, 7, stride=2, padding=3, bias=False) + BN + ReLU
 *   struct eng_conv_params p = eng_conv_torch(3, 64, 7, 2, 3, 1, 1);
 *   p.act = ENG_ACT_RELU;
 *   struct eng_conv conv;
 *   if (eng_conv_init_oihw(&conv, "conv1", &p, w_oihw, NULL) < 0 ||
 *       eng_conv_fold_bn(&conv, gamma, beta, mean, var, 1e-5f) < 0) die(eng_errmsg());
 *   eng_conv_drop_unpacked(&conv);                                  // keep only the packed copies
 *   int64_t oh, ow;
 *   eng_conv_out_size(&conv, 224, 224, &oh, &ow);                  // 112 x 112
 *   // size ctx scratch with eng_conv2d_scratch_bytes(&conv, (int64_t[]){n, 224, 224, 3}, nthreads)
 *   if (eng_conv2d(&ctx, &conv, &x, &y) < 0) die(eng_errmsg());    // y [n, oh, ow, 64], preallocated
 *   eng_conv_free(&conv);
 *
 * Four paths, chosen per call:
 *  - 1x1, stride 1, no padding, one group: a single GEMM from x straight into y, no copy. With
 *    x a channel prefix and y a channel slice of one wide buffer (both via their row stride,
 *    eng_tensor_ld), DenseNet's concatenation costs nothing.
 *  - 3x3, stride 1, one group: Winograd F(4x4, 3x3) with weights transformed at load
 *    (engine/winograd.h), 2.25 instead of 9 multiply-adds per output and channel pair, where
 *    the map has enough tiles (eng_winograd_use: batch 1's 7x7 maps take im2col, batch 8's
 *    Winograd; scratch is sized for both).
 *  - depthwise (groups == cin, cout a multiple of cin): a direct loop over channels.
 *  - everything else: im2col of a tile of output pixels into per-thread scratch, one GEMM per
 *    tile and group, bias and activation applied while the tile is still in cache.
 * Weights arrive in torch layout (OIHW) or TF layout (HWIO; for a depthwise layer TF's
 * [kh, kw, cin, multiplier] has the same bytes as HWIO [kh, kw, 1, cout]).
 */
#ifndef SALIENT_ENGINE_CONV_H
#define SALIENT_ENGINE_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/activation.h"
#include "engine/ctx.h"
#include "engine/eltwise.h"
#include "engine/sgemm.h"
#include "engine/tensor.h"

struct eng_conv_params {
    int cin, cout;                  /* channels over all groups */
    int kh, kw;
    int stride_h, stride_w;         /* >= 1 */
    int dil_h, dil_w;               /* >= 1 */
    int groups;                     /* >= 1, divides cin and cout */
    bool pad_same;                  /* TF "SAME": pads computed from the input size at each call,
                                       odd total padding goes to the bottom/right; pad_* ignored */
    int pad_t, pad_b, pad_l, pad_r; /* explicit zero padding (torch's padding=p is all four = p) */
    enum eng_act act;               /* epilogue after bias */
    float act_param;
};

struct eng_conv {
    char name[ENG_NAME_MAX];
    struct eng_conv_params p;
    bool depthwise; /* groups == cin, cout = cin * multiplier: packed and run differently */
    /* owned. General: per group g a GEMM B matrix [kh*kw*cin_g x cout_g] at g*kh*kw*cin_g*cout_g,
     * row (ky*kw + kx)*cin_g + ci, so an im2col row is runs of contiguous NHWC channels.
     * Depthwise: [kh*kw x cout], channels innermost, for the per-channel loop. */
    float *w;
    float *bias; /* owned, cout floats, or NULL */
    float *wino; /* owned, or NULL: for a stride-1 3x3 layer, the weights Winograd-transformed
                  * [36][cin][cout] (engine/winograd.h), used when the map is large enough;
                  * NULL when wino_pw holds them instead */
    struct eng_packed_b *wino_pw; /* owned, or NULL: the same 36 matrices packed for
                                   * engine/sgemm.h (where it runs), wino then freed */
    struct eng_packed_b pw; /* owned: w packed for engine/sgemm.h (one group, when
                             * eng_sgemm_enabled()), used by the 1x1 and im2col paths; else empty */
};

/* Parameters of torch's Conv2d(cin, cout, k, stride, padding, dilation, groups): square kernel,
 * symmetric padding, no activation. */
struct eng_conv_params eng_conv_torch(int cin, int cout, int k, int stride, int padding, int dilation, int groups);

/* Pack a torch-layout weight w [cout, cin/groups, kh, kw] and bias [cout] (or NULL) into conv.
 * Both are copied; the caller keeps them. Load time: allocates. Returns 0, or -1 with a
 * message naming the layer (bad geometry, out of memory), leaving conv empty (safe to free). */
int eng_conv_init_oihw(struct eng_conv *conv, const char *name, const struct eng_conv_params *p, const float *w,
                       const float *bias);

/* Same for a TF-layout weight w [kh, kw, cin/groups, cout]. */
int eng_conv_init_hwio(struct eng_conv *conv, const char *name, const struct eng_conv_params *p, const float *w,
                       const float *bias);

/* Release conv's packed weights and bias; conv is empty afterwards (freeing twice is harmless). */
void eng_conv_free(struct eng_conv *conv);

/* Fold an inference batch norm that follows the convolution into its weights and bias:
 * s = gamma / sqrt(var + eps), w *= s per output channel, b = (b - mean) * s + beta.
 * All arrays are cout floats; gamma NULL means 1, beta NULL means 0. Allocates a bias if conv
 * had none. Returns 0, or -1 with a message (var + eps <= 0, out of memory; conv unchanged). */
int eng_conv_fold_bn(struct eng_conv *conv, const float *gamma, const float *beta, const float *mean,
                     const float *var, float eps);

/* Free w where every path runs from a packed copy (pw; Winograd from its own): a model calls it
 * once its batch norms are folded, saving a copy of its weights (ResNet-50: ~100 MB). Leaves a
 * depthwise or grouped layer, or any layer where the packed GEMM does not run (OpenBLAS), as it
 * is. Only bench/bench_conv's OpenBLAS comparison needs w afterwards (it does not call this). */
void eng_conv_drop_unpacked(struct eng_conv *conv);

/* TF "SAME" padding along one axis: total = max((ceil(in/stride) - 1) * stride + (k - 1) *
 * dilation + 1 - in, 0), *before = total / 2, *after = total - *before. */
void eng_conv_same_padding(int64_t in, int k, int stride, int dilation, int *before, int *after);

/* Output size along one axis, floor((in + before + after - (k - 1) * dilation - 1) / stride) + 1;
 * 0 or less when the padded input is smaller than the dilated kernel. */
int64_t eng_conv_out_dim(int64_t in, int k, int stride, int dilation, int before, int after);

/* Output height and width of conv for an in_h x in_w input (resolving SAME padding). Returns 0,
 * or -1 with a message when the input is smaller than the kernel. */
int eng_conv_out_size(const struct eng_conv *conv, int64_t in_h, int64_t in_w, int64_t *out_h, int64_t *out_w);

/* Scratch bytes eng_conv2d needs for an input of shape x_ne = {N, H, W, C} on nthreads
 * threads (0 for the 1x1 and depthwise paths). Size ctx->scratch with at least this. */
size_t eng_conv2d_scratch_bytes(const struct eng_conv *conv, const int64_t *x_ne, int nthreads);

/* y = act(conv(x) + bias). x is [N, H, W, cin]; y must be preallocated as [N, oh, ow, cout]
 * (see eng_conv_out_size). Either may be a channel slice of a wider buffer (or any strided
 * view); y must not overlap x. Borrows ctx->scratch and gives it back. Returns 0, or -1 with a
 * message: shapes that do not fit (naming both), or scratch too small (the arena's message).
 * Overwrites y only. */
int eng_conv2d(struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_tensor *x, struct eng_tensor *y);

/* y = act(conv(x) + bias + res), conv's own activation replaced by act: ResNet's last
 * convolution of a block, its identity add and ReLU. res has y's shape (any strides) and must
 * not overlap y. A 1x1 convolution with no activation of its own on the packed GEMM does it in
 * the GEMM's store; otherwise eng_conv2d then eng_add. Returns 0, or -1 with a message. */
int eng_conv2d_res(struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_tensor *x,
                   const struct eng_tensor *res, enum eng_act act, float act_param, struct eng_tensor *y);

/* y = conv(pre(x)): pre (an eng_affine over x's cin channels, activation none or ReLU) applied
 * to the input first, DenseNet's norm1 + ReLU before each layer's 1x1 convolution. A 1x1
 * convolution on the packed GEMM applies it while packing x's rows (no pass over x; tmp is not
 * touched); otherwise eng_affine(x -> tmp) then eng_conv2d(tmp -> y), so tmp must have x's
 * shape. Returns 0, or -1 with a message. */
int eng_conv2d_pre(struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_affine *pre,
                   const struct eng_tensor *x, struct eng_tensor *tmp, struct eng_tensor *y);

#endif
