/* overlay.c: viridis-coloured attention maps blended over the input image, encoded as PNG (libpng). */
#include "config.h"
#include "server/overlay.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* Viridis at nine evenly spaced stops (matplotlib's table sampled at 0, 1/8, ..., 1);
 * linear interpolation between them stays within a few levels of the full 256-entry table. */
static const uint8_t stops[9][3] = {
    {68, 1, 84},    {71, 44, 122},  {59, 81, 139},   {44, 113, 142}, {33, 144, 141},
    {39, 173, 129}, {92, 200, 99},  {170, 220, 50},  {253, 231, 37},
};

void srv_viridis(float v, uint8_t rgb[3])
{
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    float t = v * 8.0f;
    int i = (int)t;
    if (i >= 8)
        i = 7;
    float f = t - (float)i;
    for (int c = 0; c < 3; c++)
        rgb[c] = (uint8_t)((1.0f - f) * stops[i][c] + f * stops[i + 1][c] + 0.5f);
}

/* Bilinear sample of map at (u, v) in map cells (cell centres at integer + 0.5). */
static float sample(const float *map, int gh, int gw, double u, double v)
{
    double x = u - 0.5, y = v - 0.5;
    x = x < 0 ? 0 : x > gw - 1 ? gw - 1 : x;
    y = y < 0 ? 0 : y > gh - 1 ? gh - 1 : y;
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < gw ? x0 + 1 : x0, y1 = y0 + 1 < gh ? y0 + 1 : y0;
    double fx = x - x0, fy = y - y0;
    double top = map[y0 * gw + x0] * (1 - fx) + map[y0 * gw + x1] * fx;
    double bot = map[y1 * gw + x0] * (1 - fx) + map[y1 * gw + x1] * fx;
    return (float)(top * (1 - fy) + bot * fy);
}

struct membuf {
    uint8_t *data;
    size_t len, cap;
    int failed;
};

static void write_mem(png_structp png, png_bytep data, png_size_t n)
{
    struct membuf *b = png_get_io_ptr(png);
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

static void flush_mem(png_structp png)
{
    (void)png;
}

uint8_t *srv_overlay_png(const struct srv_image *img, const float *map, int gh, int gw, const double box[4],
                         size_t *len)
{
    const int whole[4] = {0, 0, img->width, img->height};
    return srv_overlay_png_rect(img, map, gh, gw, box, whole, len);
}

uint8_t *srv_overlay_png_rect(const struct srv_image *img, const float *map, int gh, int gw, const double box[4],
                              const int rect[4], size_t *len)
{
    if (rect[0] < 0 || rect[1] < 0 || rect[2] < 1 || rect[3] < 1 || rect[0] + rect[2] > img->width ||
        rect[1] + rect[3] > img->height)
        return NULL;
    int w = rect[2], h = rect[3];
    uint8_t *rgb = malloc((size_t)w * (size_t)h * 3);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    struct membuf out = {0};
    if (!rgb || !rows)
        goto fail;
    for (int y = 0; y < h; y++) {
        const uint8_t *src = img->data + (size_t)(y + rect[1]) * img->stride + (size_t)rect[0] * (size_t)img->channels;
        uint8_t *dst = rgb + (size_t)y * (size_t)w * 3;
        double v = (y + rect[1] + 0.5 - box[1]) / box[3] * gh;
        for (int x = 0; x < w; x++) {
            uint8_t px[3];
            for (int c = 0; c < 3; c++)
                px[c] = img->channels == 1 ? src[x] : src[x * 3 + c];
            double u = (x + rect[0] + 0.5 - box[0]) / box[2] * gw;
            float a = 0;
            if (u >= 0 && u < gw && v >= 0 && v < gh)
                a = sample(map, gh, gw, u, v);
            if (a > 0) {
                uint8_t col[3];
                srv_viridis(a, col);
                float alpha = 0.6f * (a > 1 ? 1 : a);
                for (int c = 0; c < 3; c++)
                    px[c] = (uint8_t)((1.0f - alpha) * px[c] + alpha * col[c] + 0.5f);
            }
            memcpy(dst + x * 3, px, 3);
        }
        rows[y] = dst;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        goto fail;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        goto fail;
    }
    png_set_write_fn(png, &out, write_mem, flush_mem);
    /* Fast compression: these are answers, not archives. */
    png_set_compression_level(png, 3);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (out.failed)
        goto fail;
    free(rgb);
    free(rows);
    *len = out.len;
    return out.data;
fail:
    free(rgb);
    free(rows);
    free(out.data);
    return NULL;
}
