/* Image resizing on NHWC fp32 tensors, matching PyTorch's F.interpolate and TF.js's resizeBilinear.
 *
 *   struct eng_tensor x = ...;                                    // [N, 512, 384, 3]
 *   float out[N * 224 * 224 * 3];
 *   struct eng_tensor y = eng_tensor_make("resized", out, 4, (int64_t[]){N, 224, 224, 3});
 *   size_t need = eng_resize_scratch_bytes(ENG_RESIZE_BILINEAR, true, N, 512, 384, 3, 224, 224);
 *   // ... ctx created with at least `need` bytes of scratch ...
 *   if (eng_resize(ctx, ENG_RESIZE_BILINEAR, true, &x, &y) < 0) die(eng_errmsg());
 *
 * The output size is y's H and W. Every mode is separable: per-axis tap tables (index and
 * weight per output pixel) are built for the call, a horizontal pass writes N x H_in x W_out x C
 * into scratch, and a vertical pass writes y. That is the order PyTorch accumulates in (it
 * interpolates along the width inside each row before combining rows), so results agree to a
 * few float ulps.
 *
 *   ENG_RESIZE_BILINEAR     torch mode='bilinear', align_corners=False. With antialias (what
 *                           torchvision's Resize does on tensors) a downscale widens the
 *                           triangle filter to the scale factor, like PIL; an upscale is the
 *                           same as without.
 *   ENG_RESIZE_BICUBIC      torch mode='bicubic', align_corners=False: Keys' kernel with
 *                           a = -0.75 and border indices clamped. With antialias torch (like
 *                           PIL) uses a = -0.5, taps outside the image dropped, weights
 *                           renormalised; we do the same.
 *   ENG_RESIZE_TF_BILINEAR  tf.image.resizeBilinear / tfjs resizeBilinear with
 *                           alignCorners=false, halfPixelCenters=false (what face-api uses):
 *                           src = dst * in/out, floor and ceil clamped to the image, lerp.
 *                           No antialias variant exists; asking for one is an error.
 */
#ifndef SALIENT_ENGINE_RESIZE_H
#define SALIENT_ENGINE_RESIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/ctx.h"
#include "engine/tensor.h"

enum eng_resize_mode {
    ENG_RESIZE_BILINEAR = 0,
    ENG_RESIZE_BICUBIC,
    ENG_RESIZE_TF_BILINEAR,
};

/* Scratch eng_resize borrows for these sizes (tap tables plus the intermediate image). */
size_t eng_resize_scratch_bytes(enum eng_resize_mode mode, bool antialias, int64_t n, int64_t h_in, int64_t w_in,
                                int64_t c, int64_t h_out, int64_t w_out);

/* Resize x [N, H_in, W_in, C] into y [N, H_out, W_out, C] (sizes taken from y). Both may be
 * strided (innermost contiguous) but must not overlap. Borrows scratch from ctx and gives it
 * back. Returns 0, or -1 with a message naming the tensors when the shapes disagree, a size is
 * zero, antialias is asked of TF_BILINEAR, or the scratch is too small (the arena's message).
 * Overwrites y only. */
int eng_resize(struct eng_ctx *ctx, enum eng_resize_mode mode, bool antialias, const struct eng_tensor *x,
               struct eng_tensor *y);

/* "bilinear", "bicubic", "tf_bilinear". Returns 0, or -1 with a message. */
int eng_resize_mode_parse(const char *s, enum eng_resize_mode *out);

#endif
