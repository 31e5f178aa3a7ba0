/* faceapi_image.c: face-api's padToSquare + tf.image.resizeBilinear, read straight from 8-bit pixels. */
#include "models/faceapi_image.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>

#define SAMPLE_MAX_SIDE 2048

struct sample_job {
    const struct mdl_image *img;
    struct mdl_fa_rect r;
    int side;
    int xo[2][SAMPLE_MAX_SIDE]; /* per output column: byte offset in a row of the two source columns, -1 in the padding */
    float fx[SAMPLE_MAX_SIDE];
    int pad_t, square;
    double ratio;
    float *dst;
};

/* TF's resizeBilinear taps along one axis (align_corners false, half_pixel_centers false):
 * src = o * in / out, floor and ceil clamped to the input, lerp by the fraction. */
static void taps(double ratio, int in, int o, int *lo, int *hi, float *f)
{
    double s = ratio * (double)o, l = floor(s), h = ceil(s);
    if (l < 0)
        l = 0;
    if (h > in - 1)
        h = in - 1;
    *lo = (int)l, *hi = (int)h;
    *f = (float)(s - l);
}

static const uint8_t zero_pixel[3] = {0, 0, 0};

/* The source pixel at byte offset off of row, or the padding's zero pixel. */
static inline const uint8_t *pixel_at(const uint8_t *row, int off)
{
    return row && off >= 0 ? row + off : zero_pixel;
}

static void sample_rows(void *arg, int ith, int nth)
{
    struct sample_job *j = arg;
    const struct mdl_image *img = j->img;
    int64_t b, e;
    eng_split(j->side, ith, nth, &b, &e);
    for (int64_t oy = b; oy < e; oy++) {
        int y0, y1;
        float fy;
        taps(j->ratio, j->square, (int)oy, &y0, &y1, &fy);
        const uint8_t *rows[2];
        int ys[2] = {y0 - j->pad_t, y1 - j->pad_t};
        for (int k = 0; k < 2; k++)
            rows[k] = ys[k] >= 0 && ys[k] < j->r.h ? img->data + (size_t)(j->r.y + ys[k]) * img->stride : NULL;
        float *d = j->dst + (size_t)oy * (size_t)j->side * 3;
        int cstep = img->channels == 3 ? 1 : 0; /* gray: R = G = B */
        for (int ox = 0; ox < j->side; ox++, d += 3) {
            const uint8_t *tl = pixel_at(rows[0], j->xo[0][ox]), *tr = pixel_at(rows[0], j->xo[1][ox]);
            const uint8_t *bl = pixel_at(rows[1], j->xo[0][ox]), *br = pixel_at(rows[1], j->xo[1][ox]);
            float fx = j->fx[ox];
            for (int c = 0; c < 3; c++) {
                int k = c * cstep;
                float top = (float)tl[k] + ((float)tr[k] - (float)tl[k]) * fx;
                float bottom = (float)bl[k] + ((float)br[k] - (float)bl[k]) * fx;
                d[c] = top + (bottom - top) * fy;
            }
        }
    }
}

void mdl_fa_sample(const struct eng_ctx *ctx, const struct mdl_image *img, const struct mdl_fa_rect *r, bool centre,
                   int side, float *dst)
{
    assert(side > 0 && side <= SAMPLE_MAX_SIDE && r->w > 0 && r->h > 0);
    struct sample_job j;
    j.img = img, j.r = *r, j.side = side, j.dst = dst;
    int diff = r->h > r->w ? r->h - r->w : r->w - r->h;
    /* padToSquare: Math.round(diff * 0.5) after the image, the rest before (centred); all after otherwise */
    int before = centre ? diff / 2 : 0;
    int pad_l = r->h > r->w ? before : 0;
    j.pad_t = r->w > r->h ? before : 0;
    j.square = r->w > r->h ? r->w : r->h;
    j.ratio = (double)j.square / (double)side;
    for (int ox = 0; ox < side; ox++) {
        int x0, x1;
        taps(j.ratio, j.square, ox, &x0, &x1, &j.fx[ox]);
        int xs[2] = {x0 - pad_l, x1 - pad_l};
        for (int k = 0; k < 2; k++)
            j.xo[k][ox] = xs[k] >= 0 && xs[k] < r->w ? (r->x + xs[k]) * img->channels : -1;
    }
    eng_parallel(ctx, side, sample_rows, &j);
}
