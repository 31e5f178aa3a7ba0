/* Spatial padding of NHWC tensors: constant, reflect and replicate, as torch's F.pad.
 *
 *   struct eng_pad2d p = {.top = 3, .bottom = 3, .left = 3, .right = 3, .mode = ENG_PAD_REFLECT};
 *   // y is [N, H + top + bottom, W + left + right, C]
 *   if (eng_pad2d(ctx, &p, &x, &y) < 0) return -1;
 *
 * The four amounts are independent, so TF 'SAME' convolutions (face-api) get their asymmetric
 * padding here. Modes follow torch: reflect mirrors without repeating the edge (pad < size),
 * replicate repeats the edge (any amount), constant fills with value. x and y may be channel
 * slices of wider buffers; they must not overlap.
 */
#ifndef SALIENT_ENGINE_PAD_H
#define SALIENT_ENGINE_PAD_H

#include "engine/ctx.h"
#include "engine/tensor.h"

enum eng_pad_mode {
    ENG_PAD_CONSTANT = 0,
    ENG_PAD_REFLECT,
    ENG_PAD_REPLICATE,
};

struct eng_pad2d {
    int top, bottom, left, right; /* cells added on each side, >= 0 */
    enum eng_pad_mode mode;
    float value;                  /* ENG_PAD_CONSTANT only */
};

/* y = x padded on H and W by p. x is [N,H,W,C], y [N,H+top+bottom,W+left+right,C]. Returns 0,
 * or -1 with a message naming the tensors if a shape does not fit, an amount is negative, or
 * a reflect amount is not smaller than the side it mirrors (y is then untouched). */
int eng_pad2d(const struct eng_ctx *ctx, const struct eng_pad2d *p, const struct eng_tensor *x,
              struct eng_tensor *y);

/* Parse "constant" (or "zeros"), "reflect", "replicate". Returns 0, or -1 with a message. */
int eng_pad_parse(const char *s, enum eng_pad_mode *out);

#endif
