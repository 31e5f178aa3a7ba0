/* Attention overlays: a map blended over the image it explains, as a PNG a browser shows.
 *
 *   double box[4];                                   // where the map lies on the image
 *   mdl_preprocess_region(&m->pre, img.width, img.height, box);
 *   size_t len;
 *   uint8_t *png = srv_overlay_png(&img, map, gh, gw, box, &len);   // malloc'd, NULL on OOM
 *
 * The map (gh x gw, values in [0, 1], row-major) is upsampled bilinearly (cell centres, as
 * align_corners=False) onto the box, coloured with viridis and blended with weight 0.6 x value:
 * where the map is 0, and outside the box, the output pixel is the input pixel exactly. The PNG
 * is 8-bit RGB at the input image's size (gray inputs are expanded to RGB).
 */
#ifndef SALIENT_SERVER_OVERLAY_H
#define SALIENT_SERVER_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

#include "server/decode_image.h"

uint8_t *srv_overlay_png(const struct srv_image *img, const float *map, int gh, int gw, const double box[4],
                         size_t *len);

/* The same over the part rect (x, y, width, height; inside the image) of img only: a PNG of that
 * size (a face crop). box is still in the image's pixels. NULL on OOM or a rect outside. */
uint8_t *srv_overlay_png_rect(const struct srv_image *img, const float *map, int gh, int gw, const double box[4],
                              const int rect[4], size_t *len);

/* Viridis colour of v in [0, 1] (clamped) into rgb[3]. */
void srv_viridis(float v, uint8_t rgb[3]);

#endif
