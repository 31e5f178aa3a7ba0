/* The input face-api builds for a network from pixels: a region, padded to a square, resized.
 *
 *   struct mdl_fa_rect whole = {0, 0, img.width, img.height};
 *   mdl_fa_sample(ctx, &img, &whole, false, 512, x);     // SSD: padded bottom/right
 *   mdl_fa_sample(ctx, &img, &crop, true, 112, x);       // a face: padded on both sides
 *
 * face-api (NetInput.toBatchTensor on an image tensor): padToSquare (zeros after the image, or
 * split around it with the smaller half before), then tf.image.resizeBilinear (align_corners
 * false, half_pixel_centers false) unless the square already has the size. Here the padded square
 * is never built: each output pixel reads the (at most four) source pixels it needs, a padded one
 * being zero, so a 50-megapixel photo costs no buffer. Gray images are read as R = G = B.
 * Internal to the faceapi family.
 */
#ifndef SALIENT_MODELS_FACEAPI_IMAGE_H
#define SALIENT_MODELS_FACEAPI_IMAGE_H

#include <stdbool.h>

#include "engine/ctx.h"
#include "models/faceapi_detect.h"
#include "models/preprocess.h"

/* Sample region r of img (inside it, non-empty) padded to a square (centred, else after the
 * image) at side x side into dst (side * side * 3 floats, RGB, 0..255). Rows split over ctx's
 * threads. */
void mdl_fa_sample(const struct eng_ctx *ctx, const struct mdl_image *img, const struct mdl_fa_rect *r, bool centre,
                   int side, float *dst);

#endif
