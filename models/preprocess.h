/* Preprocessing: decoded 8-bit pixels -> the network's input tensor, as the manifest says.
 *
 *   struct mdl_preprocess p;
 *   if (mdl_preprocess_parse(&p, manifest_json_obj, "m.json") < 0) die(eng_errmsg());
 *   struct mdl_image img = {w, h, 3, pixels, w * 3};
 *   float *in = malloc(mdl_preprocess_floats(&p) * sizeof(float));
 *   mdl_preprocess_run(&ctx, &p, &img, in);          // in: [out_h, out_w, channels] NHWC
 *
 * The steps, in torchvision's order, each optional:
 *   channels      1 (gray: mean of R, G, B as torchxrayvision does) or 3 (gray replicated)
 *   crop_square   centre-crop to a square first (torchxrayvision's XRayCenterCrop)
 *   resize        [h, w], or resize_shorter: N (torchvision Resize(N): shorter side to N,
 *                 the other int(N * long / short)); interpolation "bilinear" | "bicubic",
 *                 antialias true|false (torchvision's Resize on tensors: antialias=True)
 *   center_crop   [h, w] (torchvision CenterCrop: offsets round((in - out) / 2))
 *   range         [lo, hi]: pixel p in 0..255 becomes lo + (hi - lo) * p / 255
 *                 (default [0, 1] as ToTensor; torchxrayvision: [-1024, 1024])
 *   mean, std     per channel: (x - mean) / std (ImageNet: [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
 * Manifest: "preprocess": {"channels": 3, "resize_shorter": 256, "interpolation": "bilinear",
 *   "antialias": true, "center_crop": [224, 224], "mean": [...], "std": [...]}.
 */
#ifndef SALIENT_MODELS_PREPROCESS_H
#define SALIENT_MODELS_PREPROCESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/ctx.h"
#include "engine/resize.h"

/* Decoded pixels, 8 bits per sample, rows `stride` bytes apart; channels 1 (gray) or 3 (RGB). */
struct mdl_image {
    int width, height, channels;
    const uint8_t *data;
    size_t stride;
};

struct mdl_preprocess {
    int channels;                 /* 1 or 3 */
    bool crop_square;
    int resize_h, resize_w;       /* 0: no fixed resize */
    int resize_shorter;           /* 0: none */
    enum eng_resize_mode interp;
    bool antialias;
    int crop_h, crop_w;           /* 0: no centre crop */
    float lo, hi;
    float mean[3], std[3];
    int out_h, out_w;             /* the tensor this produces (fixed: needs resize or crop) */
};

/* Parse obj (the manifest's "preprocess" object; NULL means all defaults, which is an error
 * because the output size would be unknown). Returns 0 or -1 with a message naming origin. */
int mdl_preprocess_parse(struct mdl_preprocess *p, json_t *obj, const char *origin);

/* Floats of one preprocessed image: out_h * out_w * channels. */
size_t mdl_preprocess_floats(const struct mdl_preprocess *p);

/* The part of a width x height image the network input shows, as {x, y, w, h} in source pixels
 * (fractional where a resize maps a crop boundary between pixels): where a map over the
 * network input belongs on the original image. Returns 0, or -1 if the image is too small. */
int mdl_preprocess_region(const struct mdl_preprocess *p, int width, int height, double box[4]);

/* Workspace the run needs for an image of w x h, to size ctx->scratch. */
size_t mdl_preprocess_scratch_bytes(const struct mdl_preprocess *p, int width, int height);

/* Turn img into out_h x out_w x channels floats at dst. Uses ctx's scratch (sized with
 * mdl_preprocess_scratch_bytes). Returns 0, or -1 with a message (image too small to crop,
 * unsupported channel count, scratch too small). */
int mdl_preprocess_run(struct eng_ctx *ctx, const struct mdl_preprocess *p, const struct mdl_image *img,
                       float *dst);

#endif
