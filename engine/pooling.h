/* Pooling over NHWC activations: max, average, global average and adaptive average.
 *
 *   struct eng_pool2d stem = eng_pool2d_make(3, 2, 1);          // torch MaxPool2d(3, 2, 1)
 *   if (eng_max_pool2d(ctx, &stem, &x, &y) < 0) return -1;       // y is [N, OH, OW, C]
 *   struct eng_pool2d tf = eng_pool2d_tf_same(3, 2);             // tf.nn.max_pool(.., 'SAME')
 *   eng_global_avg_pool(ctx, &feat, &pooled);                    // [N,H,W,C] -> [N,C] or [N,1,1,C]
 *   eng_adaptive_avg_pool2d(ctx, &feat, &y7);                    // output size is y7's H and W
 *
 * Semantics are PyTorch's (max_pool2d, avg_pool2d, adaptive_avg_pool2d) so torchvision
 * checkpoints reproduce exactly: padded cells never win a max; with ceil_mode a window that
 * would start in the right/bottom padding is dropped; an average counts the padded cells
 * unless exclude_pad is set. The caller computes the output shape with eng_pool2d_out() and
 * passes a y of that shape; x and y may be channel slices of wider buffers (any strides, the
 * channel dimension contiguous) but must not overlap.
 *
 * TF 'SAME' (face-api) is the same machinery with the padding derived from the input size at
 * every call: out = ceil(in / stride), the extra cell (if any) goes at the bottom/right, and
 * averages exclude the padding as TensorFlow does.
 */
#ifndef SALIENT_ENGINE_POOLING_H
#define SALIENT_ENGINE_POOLING_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/ctx.h"
#include "engine/tensor.h"

struct eng_pool2d {
    int kh, kw;                       /* window */
    int sh, sw;                       /* stride; 0 means the window size (torch's default) */
    int pad_t, pad_b, pad_l, pad_r;   /* implicit padding, each at most half the window */
    int dh, dw;                       /* dilation, max pool only; 0 means 1 */
    bool ceil_mode;                   /* round the output size up (torch ceil_mode=True) */
    bool exclude_pad;                 /* avg: divide by the real cells only (count_include_pad=False) */
    bool tf_same;                     /* TF 'SAME': pad_* and ceil_mode ignored, padding excluded */
};

/* Square window k, stride s (0: k), symmetric padding p; floor mode, padding counted in
 * averages: the defaults of torch's MaxPool2d / AvgPool2d. */
struct eng_pool2d eng_pool2d_make(int k, int s, int p);

/* TF padding='SAME' with a square window k and stride s; averages exclude the padding. */
struct eng_pool2d eng_pool2d_tf_same(int k, int s);

/* Output height and width of p over an input of in_h x in_w. Returns 0, or -1 with a message
 * when the parameters are invalid (non-positive window or stride, padding over half the
 * window, input smaller than the dilated window). */
int eng_pool2d_out(const struct eng_pool2d *p, int64_t in_h, int64_t in_w, int64_t *out_h, int64_t *out_w);

/* y = max over each window of x. x is [N,H,W,C], y is [N,OH,OW,C] as eng_pool2d_out() says.
 * Returns 0, or -1 with a message naming the tensors on invalid parameters or shapes (y is
 * then untouched). NaN in a window propagates, as in torch. */
int eng_max_pool2d(const struct eng_ctx *ctx, const struct eng_pool2d *p, const struct eng_tensor *x,
                   struct eng_tensor *y);

/* y = mean over each window of x (dilation must be 1). Same shapes and errors as max. */
int eng_avg_pool2d(const struct eng_ctx *ctx, const struct eng_pool2d *p, const struct eng_tensor *x,
                   struct eng_tensor *y);

/* Mean over H and W: x [N,H,W,C] -> y [N,1,1,C] or [N,C]. Accumulates in double, so large
 * maps lose nothing. Returns 0, or -1 with a message on a shape mismatch. */
int eng_global_avg_pool(const struct eng_ctx *ctx, const struct eng_tensor *x, struct eng_tensor *y);

/* torch adaptive_avg_pool2d to y's spatial size: output cell i averages input rows
 * [floor(i*H/OH), ceil((i+1)*H/OH)) (likewise for columns). x [N,H,W,C], y [N,OH,OW,C] with
 * OH, OW >= 1 (they may exceed H, W). Returns 0, or -1 with a message on a shape mismatch. */
int eng_adaptive_avg_pool2d(const struct eng_ctx *ctx, const struct eng_tensor *x, struct eng_tensor *y);

#endif
