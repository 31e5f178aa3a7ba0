/* test_decode_image.c: JPEG and PNG decoding on images made here with libpng and TurboJPEG, and a table of bad ones. */
#include <check.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <turbojpeg.h>

#include "server/decode_image.h"
#include "tests/unit/fixture.h"

/* ---- byte buffers ---- */

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void buf_put(struct buf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        ck_assert_ptr_nonnull(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* ---- PNG writer ---- */

static void png_write_mem(png_structp png, png_bytep data, size_t n)
{
    buf_put(png_get_io_ptr(png), data, n);
}

static void png_flush_mem(png_structp png)
{
    (void)png;
}

/* Raw sample k of pixel (x, y) for a bit depth: a pattern that reaches 0 and the maximum. */
static unsigned sample(int x, int y, int k, int depth)
{
    unsigned maxv = (1u << depth) - 1;
    uint32_t v = (uint32_t)(x * 7 + y * 13 + k * 5 + x * y) * 2654435761u;
    if (depth == 16)
        return (v >> 16) ^ (x == 0 ? 0xffffu : 0);
    return (v >> 24) % (maxv + 1);
}

static void palette_rgb(unsigned i, uint8_t rgb[3])
{
    rgb[0] = (uint8_t)(i * 37 + 11), rgb[1] = (uint8_t)(i * 91 + 3), rgb[2] = (uint8_t)(255 - i * 53);
}

/* A w x h PNG of the given colour type, depth and interlace, with a tRNS chunk if asked. */
static struct buf make_png(int w, int h, int type, int depth, int interlace, int trns)
{
    struct buf out = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert_ptr_nonnull(info);
    int ns = type == PNG_COLOR_TYPE_GRAY ? 1 : type == PNG_COLOR_TYPE_GA ? 2 : type == PNG_COLOR_TYPE_RGB ? 3
             : type == PNG_COLOR_TYPE_RGBA ? 4 : 1;
    int bps = depth == 16 ? 2 : 1; /* bytes per sample as we hand rows to libpng (packed by it) */
    uint8_t *px = calloc((size_t)w * h * ns * bps, 1);
    png_bytep *rows = calloc((size_t)h, sizeof *rows);
    ck_assert(px && rows);
    volatile int failed = 0;
    if (setjmp(png_jmpbuf(png))) {
        failed = 1;
        goto done;
    }
    png_set_write_fn(png, &out, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        int np = 1 << depth;
        for (int i = 0; i < np; i++) {
            uint8_t rgb[3];
            palette_rgb((unsigned)i, rgb);
            pal[i] = (png_color){rgb[0], rgb[1], rgb[2]};
        }
        png_set_PLTE(png, info, pal, np);
        if (trns) {
            png_byte alpha[4] = {0, 64, 128, 200};
            png_set_tRNS(png, info, alpha, 4 < np ? 4 : np, NULL);
        }
    } else if (trns) {
        png_color_16 key = {0, (png_uint_16)sample(0, 0, 0, depth), (png_uint_16)sample(0, 0, 1, depth),
                            (png_uint_16)sample(0, 0, 2, depth), (png_uint_16)sample(0, 0, 0, depth)};
        png_set_tRNS(png, info, NULL, 0, &key);
    }
    png_write_info(png, info);
    if (depth < 8)
        png_set_packing(png);
    for (int y = 0; y < h; y++) {
        rows[y] = px + (size_t)y * w * ns * bps;
        for (int x = 0; x < w; x++)
            for (int k = 0; k < ns; k++) {
                unsigned v = type == PNG_COLOR_TYPE_PALETTE ? (unsigned)(x + 2 * y) % (1u << depth) : sample(x, y, k, depth);
                uint8_t *d = rows[y] + ((size_t)x * ns + k) * bps;
                if (bps == 2)
                    d[0] = (uint8_t)(v >> 8), d[1] = (uint8_t)v;
                else
                    d[0] = (uint8_t)v;
            }
    }
    png_write_image(png, rows);
    png_write_end(png, info);
done:
    png_destroy_write_struct(&png, &info);
    free(px);
    free(rows);
    ck_assert_msg(!failed, "libpng could not write the test image");
    return out;
}

/* What the decoder must give for make_png's image: gray stays gray, alpha and tRNS dropped,
 * low depths scaled to 0..255, 16 bits keep the high byte. */
static void png_expected(int x, int y, int type, int depth, uint8_t *px, int *channels)
{
    if (type == PNG_COLOR_TYPE_PALETTE) {
        palette_rgb((unsigned)(x + 2 * y) % (1u << depth), px);
        *channels = 3;
        return;
    }
    *channels = (type & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    for (int k = 0; k < *channels; k++) {
        unsigned v = sample(x, y, k, depth);
        px[k] = (uint8_t)(depth == 16 ? v >> 8 : depth == 8 ? v : v * 255 / ((1u << depth) - 1));
    }
}

/* ---- JPEG writer ---- */

static struct buf make_jpeg(const uint8_t *px, int w, int h, int pf, int subsamp, int quality, int flags)
{
    tjhandle tj = tjInitCompress();
    ck_assert_ptr_nonnull(tj);
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    int rc = tjCompress2(tj, px, w, 0, h, pf, &jpg, &n, subsamp, quality, flags);
    ck_assert_msg(rc == 0, "tjCompress2: %s", tjGetErrorStr2(tj));
    struct buf out = {0};
    buf_put(&out, jpg, n);
    tjFree(jpg);
    tjDestroy(tj);
    return out;
}

/* A smooth RGB test card (JPEG keeps it within a few levels). */
static uint8_t *rgb_card(int w, int h)
{
    uint8_t *px = malloc((size_t)w * h * 3);
    ck_assert_ptr_nonnull(px);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / (w - 1));
            p[1] = (uint8_t)(y * 255 / (h - 1));
            p[2] = (uint8_t)(128 + (x - y) / 2);
        }
    return px;
}

/* Max and mean absolute difference between a decoded image and w x h x ch reference pixels. */
static void compare(const struct srv_image *img, const uint8_t *want, int ch, int *maxd, double *meand)
{
    long sum = 0;
    *maxd = 0;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width * ch; x++) {
            int d = abs((int)img->data[(size_t)y * img->stride + x] - (int)want[((size_t)y * img->width) * ch + x]);
            sum += d;
            if (d > *maxd)
                *maxd = d;
        }
    *meand = (double)sum / ((double)img->width * img->height * ch);
}

static enum srv_decode_status decode(const struct buf *b, size_t max_pixels, struct srv_image *img, char *err,
                                     size_t errlen)
{
    return srv_decode_image(b->p, b->n, max_pixels, img, err, errlen);
}

/* ---- PNG: every colour type and depth ---- */

static const struct png_case {
    const char *name;
    int type, depth, interlace, trns;
} png_cases[] = {
    {"gray1", PNG_COLOR_TYPE_GRAY, 1, 0, 0},          {"gray2", PNG_COLOR_TYPE_GRAY, 2, 0, 0},
    {"gray4", PNG_COLOR_TYPE_GRAY, 4, 0, 0},          {"gray8", PNG_COLOR_TYPE_GRAY, 8, 0, 0},
    {"gray16", PNG_COLOR_TYPE_GRAY, 16, 0, 0},        {"gray8+tRNS", PNG_COLOR_TYPE_GRAY, 8, 0, 1},
    {"gray+alpha8", PNG_COLOR_TYPE_GA, 8, 0, 0},      {"gray+alpha16", PNG_COLOR_TYPE_GA, 16, 0, 0},
    {"rgb8", PNG_COLOR_TYPE_RGB, 8, 0, 0},            {"rgb16", PNG_COLOR_TYPE_RGB, 16, 0, 0},
    {"rgb8+tRNS", PNG_COLOR_TYPE_RGB, 8, 0, 1},       {"rgb16+tRNS", PNG_COLOR_TYPE_RGB, 16, 0, 1},
    {"rgba8", PNG_COLOR_TYPE_RGBA, 8, 0, 0},          {"rgba16", PNG_COLOR_TYPE_RGBA, 16, 0, 0},
    {"palette1", PNG_COLOR_TYPE_PALETTE, 1, 0, 0},    {"palette2", PNG_COLOR_TYPE_PALETTE, 2, 0, 0},
    {"palette4", PNG_COLOR_TYPE_PALETTE, 4, 0, 0},    {"palette8", PNG_COLOR_TYPE_PALETTE, 8, 0, 0},
    {"palette8+tRNS", PNG_COLOR_TYPE_PALETTE, 8, 0, 1}, {"palette2+tRNS", PNG_COLOR_TYPE_PALETTE, 2, 0, 1},
    {"gray1 interlaced", PNG_COLOR_TYPE_GRAY, 1, 1, 0}, {"gray16 interlaced", PNG_COLOR_TYPE_GRAY, 16, 1, 0},
    {"rgb8 interlaced", PNG_COLOR_TYPE_RGB, 8, 1, 0}, {"rgba16 interlaced", PNG_COLOR_TYPE_RGBA, 16, 1, 0},
    {"palette4 interlaced", PNG_COLOR_TYPE_PALETTE, 4, 1, 1}, {"gray+alpha8 interlaced", PNG_COLOR_TYPE_GA, 8, 1, 0},
};

START_TEST(png_kinds)
{
    const struct png_case *c = &png_cases[_i];
    const int w = 37, h = 21; /* odd sizes: partial bytes at low depths, every Adam7 pass non-empty */
    struct buf b = make_png(w, h, c->type, c->depth, c->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                            c->trns);
    struct srv_image img;
    char err[256];
    enum srv_decode_status st = decode(&b, 0, &img, err, sizeof err);
    ck_assert_msg(st == SRV_DECODE_OK, "%s: status %s: %s", c->name, srv_decode_status_name(st), err);
    ck_assert_int_eq(img.width, w);
    ck_assert_int_eq(img.height, h);
    int ch;
    uint8_t want[3];
    png_expected(0, 0, c->type, c->depth, want, &ch);
    ck_assert_msg(img.channels == ch, "%s: %d channels, expected %d", c->name, img.channels, ch);
    ck_assert_uint_eq(img.stride, (size_t)w * ch);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            png_expected(x, y, c->type, c->depth, want, &ch);
            for (int k = 0; k < ch; k++) {
                int got = img.data[(size_t)y * img.stride + (size_t)x * ch + k];
                ck_assert_msg(got == want[k], "%s: pixel (%d,%d) channel %d is %d, expected %d", c->name, x, y, k, got,
                              want[k]);
            }
        }
    srv_image_free(&img);
    ck_assert_ptr_null(img.data);
    free(b.p);
}
END_TEST

/* ---- JPEG: baseline, progressive, gray, CMYK ---- */

static const struct jpeg_case {
    const char *name;
    int pf, subsamp, quality, flags;
    int want_channels, tol_max;
} jpeg_cases[] = {
    {"rgb baseline 4:4:4", TJPF_RGB, TJSAMP_444, 95, 0, 3, 8},
    {"rgb baseline 4:2:0", TJPF_RGB, TJSAMP_420, 90, 0, 3, 12},
    {"rgb progressive 4:2:0", TJPF_RGB, TJSAMP_420, 90, TJFLAG_PROGRESSIVE, 3, 12},
    {"rgb progressive 4:4:4", TJPF_RGB, TJSAMP_444, 95, TJFLAG_PROGRESSIVE, 3, 8},
    {"gray baseline", TJPF_GRAY, TJSAMP_GRAY, 95, 0, 1, 6},
    {"gray progressive", TJPF_GRAY, TJSAMP_GRAY, 95, TJFLAG_PROGRESSIVE, 1, 6},
    {"cmyk (ycck)", TJPF_CMYK, TJSAMP_444, 95, 0, 3, 12},
    {"cmyk progressive", TJPF_CMYK, TJSAMP_444, 95, TJFLAG_PROGRESSIVE, 3, 12},
};

START_TEST(jpeg_kinds)
{
    const struct jpeg_case *c = &jpeg_cases[_i];
    const int w = 61, h = 43;
    uint8_t *rgb = rgb_card(w, h);
    size_t n = (size_t)w * h;
    uint8_t *src = malloc(n * 4), *want = malloc(n * 3);
    ck_assert(src && want);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = rgb + 3 * i;
        if (c->pf == TJPF_GRAY) {
            src[i] = want[i] = p[0];
        } else if (c->pf == TJPF_CMYK) {
            /* Stored (Adobe-inverted) CMYK with K varying: RGB = C * K / 255 per channel. */
            uint8_t k = (uint8_t)(255 - (i % (size_t)w) / 2);
            src[4 * i] = p[0], src[4 * i + 1] = p[1], src[4 * i + 2] = p[2], src[4 * i + 3] = k;
            for (int j = 0; j < 3; j++)
                want[3 * i + j] = (uint8_t)((p[j] * k + 127) / 255);
        } else {
            memcpy(src + 3 * i, p, 3), memcpy(want + 3 * i, p, 3);
        }
    }
    struct buf b = make_jpeg(src, w, h, c->pf, c->subsamp, c->quality, c->flags);
    struct srv_image img;
    char err[256];
    enum srv_decode_status st = decode(&b, 0, &img, err, sizeof err);
    ck_assert_msg(st == SRV_DECODE_OK, "%s: status %s: %s", c->name, srv_decode_status_name(st), err);
    ck_assert_int_eq(img.width, w);
    ck_assert_int_eq(img.height, h);
    ck_assert_int_eq(img.channels, c->want_channels);
    ck_assert_uint_eq(img.stride, (size_t)w * c->want_channels);
    int maxd;
    double meand;
    compare(&img, want, c->want_channels, &maxd, &meand);
    ck_assert_msg(maxd <= c->tol_max && meand < 2.0, "%s: max |diff| %d (allowed %d), mean %.2f", c->name, maxd,
                  c->tol_max, meand);
    srv_image_free(&img);
    free(b.p), free(rgb), free(src), free(want);
}
END_TEST

/* ---- EXIF orientation ---- */

/* A JPEG of 32x16 with four flat 16x8 quadrants (8x8-block aligned, so JPEG keeps them flat),
 * with an APP1 Exif segment carrying `orientation` inserted after SOI. */
enum { RED, GREEN, BLUE, WHITE };
static const uint8_t quad_rgb[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};

static void put16(uint8_t *p, unsigned v, int le)
{
    if (le)
        p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
    else
        p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v, int le)
{
    put16(p + (le ? 0 : 2), v & 0xffff, le), put16(p + (le ? 2 : 0), v >> 16, le);
}

/* TIFF header + IFD0 with ImageWidth then Orientation (type SHORT unless type given). */
static size_t make_tiff(uint8_t *t, int le, unsigned orientation, unsigned type, unsigned claimed_entries)
{
    memcpy(t, le ? "II" : "MM", 2);
    put16(t + 2, 42, le);
    put32(t + 4, 8, le);
    put16(t + 8, claimed_entries, le);
    uint8_t *e = t + 10;
    put16(e, 0x0100, le), put16(e + 2, 4, le), put32(e + 4, 1, le), put32(e + 8, 32, le);
    e += 12;
    put16(e, 0x0112, le), put16(e + 2, type, le), put32(e + 4, 1, le), put32(e + 8, 0, le);
    put16(e + 8, orientation, le);
    e += 12;
    put32(e, 0, le); /* no next IFD */
    return (size_t)(e + 4 - t);
}

static struct buf jpeg_with_tiff(const uint8_t *tiff, size_t tlen)
{
    const int w = 32, h = 16;
    uint8_t px[32 * 16 * 3];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memcpy(px + (y * w + x) * 3, quad_rgb[(y >= 8) * 2 + (x >= 16)], 3);
    struct buf j = make_jpeg(px, w, h, TJPF_RGB, TJSAMP_444, 100, 0);
    struct buf out = {0};
    buf_put(&out, j.p, 2); /* SOI */
    uint8_t seg[4 + 6];
    seg[0] = 0xFF, seg[1] = 0xE1;
    put16(seg + 2, (unsigned)(2 + 6 + tlen), 0);
    memcpy(seg + 4, "Exif\0\0", 6);
    buf_put(&out, seg, sizeof seg);
    buf_put(&out, tiff, tlen);
    buf_put(&out, j.p + 2, j.n - 2);
    free(j.p);
    return out;
}

static int quadrant_at(const struct srv_image *img, int x, int y)
{
    const uint8_t *p = img->data + (size_t)y * img->stride + (size_t)x * 3;
    for (int q = 0; q < 4; q++)
        if (abs(p[0] - quad_rgb[q][0]) < 24 && abs(p[1] - quad_rgb[q][1]) < 24 && abs(p[2] - quad_rgb[q][2]) < 24)
            return q;
    return -1;
}

/* Quadrant colours seen at the displayed top-left, top-right, bottom-left, bottom-right for
 * each orientation (the stored image is RED GREEN / BLUE WHITE), as PIL's exif_transpose. */
static const int orient_want[9][4] = {
    {0},
    {RED, GREEN, BLUE, WHITE},   /* 1 as stored */
    {GREEN, RED, WHITE, BLUE},   /* 2 mirrored left-right */
    {WHITE, BLUE, GREEN, RED},   /* 3 rotated 180 */
    {BLUE, WHITE, RED, GREEN},   /* 4 mirrored top-bottom */
    {RED, BLUE, GREEN, WHITE},   /* 5 transposed */
    {BLUE, RED, WHITE, GREEN},   /* 6 needs 90 degrees clockwise */
    {WHITE, GREEN, BLUE, RED},   /* 7 transversed */
    {GREEN, WHITE, RED, BLUE},   /* 8 needs 90 degrees counter-clockwise */
};

START_TEST(exif_orientations)
{
    int o = _i / 2 + 1, le = _i % 2;
    uint8_t tiff[64];
    size_t tlen = make_tiff(tiff, le, (unsigned)o, 3, 2);
    struct buf b = jpeg_with_tiff(tiff, tlen);
    struct srv_image img;
    char err[256];
    enum srv_decode_status st = decode(&b, 0, &img, err, sizeof err);
    ck_assert_msg(st == SRV_DECODE_OK, "orientation %d: %s", o, err);
    int ww = o >= 5 ? 16 : 32, wh = o >= 5 ? 32 : 16;
    ck_assert_msg(img.width == ww && img.height == wh, "orientation %d (%s): %dx%d, expected %dx%d", o,
                  le ? "II" : "MM", img.width, img.height, ww, wh);
    ck_assert_uint_eq(img.stride, (size_t)ww * 3);
    int got[4] = {quadrant_at(&img, 2, 2), quadrant_at(&img, ww - 3, 2), quadrant_at(&img, 2, wh - 3),
                  quadrant_at(&img, ww - 3, wh - 3)};
    for (int k = 0; k < 4; k++)
        ck_assert_msg(got[k] == orient_want[o][k], "orientation %d (%s): corner %d shows quadrant %d, expected %d", o,
                      le ? "II" : "MM", k, got[k], orient_want[o][k]);
    /* The corner pixels themselves: a transform off by one row or column would move them. */
    ck_assert_int_eq(quadrant_at(&img, 0, 0), orient_want[o][0]);
    ck_assert_int_eq(quadrant_at(&img, ww - 1, wh - 1), orient_want[o][3]);
    srv_image_free(&img);
    free(b.p);
}
END_TEST

/* Malformed EXIF is ignored (orientation 1), never trusted or read out of bounds. */
START_TEST(exif_malformed)
{
    static const struct {
        const char *name;
        unsigned orientation, type, entries;
        size_t cut; /* bytes of TIFF kept (0: all) */
    } cases[] = {
        {"orientation 9", 9, 3, 2, 0},         {"orientation 0", 0, 3, 2, 0},
        {"orientation as LONG", 6, 4, 2, 0},   {"entry count past the end", 9, 3, 60000, 0},
        {"IFD cut before the tag", 6, 3, 2, 20}, {"TIFF header only", 6, 3, 2, 8},
        {"TIFF cut to 3 bytes", 6, 3, 2, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t tiff[64];
        size_t tlen = make_tiff(tiff, 1, cases[i].orientation, cases[i].type, cases[i].entries);
        if (cases[i].cut)
            tlen = cases[i].cut;
        struct buf b = jpeg_with_tiff(tiff, tlen);
        struct srv_image img;
        char err[256];
        enum srv_decode_status st = decode(&b, 0, &img, err, sizeof err);
        ck_assert_msg(st == SRV_DECODE_OK, "%s: %s", cases[i].name, err);
        ck_assert_msg(img.width == 32 && img.height == 16, "%s: %dx%d", cases[i].name, img.width, img.height);
        ck_assert_int_eq(quadrant_at(&img, 0, 0), RED);
        srv_image_free(&img);
        free(b.p);
    }
    /* A bad TIFF byte order mark. */
    uint8_t tiff[64];
    size_t tlen = make_tiff(tiff, 1, 6, 3, 2);
    tiff[0] = 'X';
    struct buf b = jpeg_with_tiff(tiff, tlen);
    struct srv_image img;
    ck_assert_int_eq(decode(&b, 0, &img, NULL, 0), SRV_DECODE_OK);
    ck_assert_int_eq(img.width, 32);
    srv_image_free(&img);
    free(b.p);
}
END_TEST

/* ---- bad input ---- */

static struct buf small_png(void)
{
    return make_png(16, 16, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_NONE, 0);
}

static struct buf small_jpeg(void)
{
    uint8_t *rgb = rgb_card(64, 48);
    struct buf b = make_jpeg(rgb, 64, 48, TJPF_RGB, TJSAMP_420, 90, 0);
    free(rgb);
    return b;
}

static struct buf bytes_of(const char *s, size_t n)
{
    struct buf b = {0};
    buf_put(&b, s, n);
    return b;
}

/* Patch the PNG's IHDR size (and its CRC, so only the size is wrong). */
static void png_set_size(struct buf *b, uint32_t w, uint32_t h)
{
    ck_assert(b->n > 33 && memcmp(b->p + 12, "IHDR", 4) == 0);
    put_be32(b->p + 16, w);
    put_be32(b->p + 20, h);
    put_be32(b->p + 29, crc32_of(b->p + 12, 17));
}

/* Patch the JPEG's SOF0 size. */
static void jpeg_set_size(struct buf *b, unsigned w, unsigned h)
{
    for (size_t i = 2; i + 9 < b->n;) {
        ck_assert_int_eq(b->p[i], 0xFF);
        unsigned m = b->p[i + 1], len = (unsigned)b->p[i + 2] << 8 | b->p[i + 3];
        if (m == 0xC0 || m == 0xC2) {
            b->p[i + 5] = (uint8_t)(h >> 8), b->p[i + 6] = (uint8_t)h;
            b->p[i + 7] = (uint8_t)(w >> 8), b->p[i + 8] = (uint8_t)w;
            return;
        }
        i += 2 + len;
    }
    ck_abort_msg("no SOF0 in the test JPEG");
}

static struct buf bad_empty(void) { return (struct buf){0}; }
static struct buf bad_text(void) { return bytes_of("{\"image\": \"hello\"}", 18); }
static struct buf bad_gif(void) { return bytes_of("GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14); }
static struct buf bad_webp(void) { return bytes_of("RIFF\x10\x00\x00\x00WEBPVP8 ", 16); }
static struct buf bad_one_byte(void) { return bytes_of("\xff", 1); }
static struct buf bad_png_sig_only(void) { return bytes_of("\x89PNG\r\n\x1a\n", 8); }
static struct buf bad_png_half(void)
{
    struct buf b = small_png();
    b.n /= 2;
    return b;
}
static struct buf bad_png_in_ihdr(void)
{
    struct buf b = small_png();
    b.n = 20;
    return b;
}
static struct buf bad_png_no_iend_data(void)
{
    struct buf b = small_png();
    b.n -= 12 + 8; /* IEND and the end of the last IDAT */
    return b;
}
static struct buf bad_png_crc(void)
{
    struct buf b = small_png();
    b.p[29] ^= 0x55;
    return b;
}
static struct buf bad_png_huge(void)
{
    struct buf b = small_png();
    png_set_size(&b, 100000, 100000);
    return b;
}
static struct buf bad_png_zero_width(void)
{
    struct buf b = small_png();
    png_set_size(&b, 0, 16);
    return b;
}
static struct buf bad_png_garbage_idat(void)
{
    struct buf b = small_png();
    /* IHDR ends at 33; the first IDAT's data starts at 41: scramble it, fix nothing. */
    for (size_t i = 43; i < 60 && i < b.n; i++)
        b.p[i] ^= 0xA5;
    return b;
}
/* Cut in the middle of the entropy-coded data (after SOS). */
static struct buf bad_jpeg_half(void)
{
    struct buf b = small_jpeg();
    for (size_t i = 2; i + 4 < b.n;) {
        ck_assert_int_eq(b.p[i], 0xFF);
        if (b.p[i + 1] == 0xDA) {
            b.n = i + (b.n - i) / 2;
            return b;
        }
        i += 2 + ((size_t)b.p[i + 2] << 8 | b.p[i + 3]);
    }
    ck_abort_msg("no SOS in the test JPEG");
    return b;
}
static struct buf bad_jpeg_headers_only(void)
{
    struct buf b = small_jpeg();
    b.n = 4;
    return b;
}
static struct buf bad_jpeg_garbage(void) { return bytes_of("\xff\xd8\xff\x00garbage garbage", 19); }
static struct buf bad_jpeg_huge(void)
{
    struct buf b = small_jpeg();
    jpeg_set_size(&b, 60000, 60000);
    return b;
}
/* Past libjpeg's own 65500 limit: refused as too large even when our limit allows it. */
static struct buf bad_jpeg_max(void)
{
    struct buf b = small_jpeg();
    jpeg_set_size(&b, 65535, 65535);
    return b;
}
static struct buf bad_jpeg_zero_height(void)
{
    struct buf b = small_jpeg();
    jpeg_set_size(&b, 64, 0);
    return b;
}

static const struct bad_case {
    const char *name;
    struct buf (*make)(void);
    size_t max_pixels;
    enum srv_decode_status want;
    const char *msg;
    int http;
} bad_cases[] = {
    {"empty buffer", bad_empty, 0, SRV_DECODE_EMPTY, "empty", 400},
    {"JSON text", bad_text, 0, SRV_DECODE_UNSUPPORTED, "not a JPEG or PNG", 415},
    {"GIF", bad_gif, 0, SRV_DECODE_UNSUPPORTED, "GIF images are not supported", 415},
    {"WebP", bad_webp, 0, SRV_DECODE_UNSUPPORTED, "WebP", 415},
    {"one byte", bad_one_byte, 0, SRV_DECODE_UNSUPPORTED, "not a JPEG or PNG", 415},
    {"PNG signature only", bad_png_sig_only, 0, SRV_DECODE_CORRUPT, "PNG is corrupt or truncated", 400},
    {"PNG cut in IHDR", bad_png_in_ihdr, 0, SRV_DECODE_CORRUPT, "truncated", 400},
    {"PNG cut in half", bad_png_half, 0, SRV_DECODE_CORRUPT, "truncated", 400},
    {"PNG cut in the last IDAT", bad_png_no_iend_data, 0, SRV_DECODE_CORRUPT, "PNG is corrupt", 400},
    {"PNG with a bad IHDR CRC", bad_png_crc, 0, SRV_DECODE_CORRUPT, "CRC", 400},
    {"PNG with scrambled IDAT", bad_png_garbage_idat, 0, SRV_DECODE_CORRUPT, "PNG is corrupt", 400},
    {"PNG of 0x16", bad_png_zero_width, 0, SRV_DECODE_CORRUPT, "PNG is corrupt", 400},
    {"PNG claiming 100000x100000", bad_png_huge, 0, SRV_DECODE_TOO_LARGE,
     "image is 100000x100000 pixels (10000000000), more than the limit of 50000000 pixels", 413},
    {"PNG of 16x16 over a 255-pixel limit", small_png, 255, SRV_DECODE_TOO_LARGE, "16x16 pixels (256)", 413},
    {"PNG of 16x16 at a 256-pixel limit", small_png, 256, SRV_DECODE_OK, NULL, 200},
    {"JPEG cut in half", bad_jpeg_half, 0, SRV_DECODE_CORRUPT, "Premature end", 400},
    {"JPEG of 4 bytes", bad_jpeg_headers_only, 0, SRV_DECODE_CORRUPT, "JPEG is corrupt or truncated", 400},
    {"JPEG magic then garbage", bad_jpeg_garbage, 0, SRV_DECODE_CORRUPT, "JPEG is corrupt or truncated", 400},
    {"JPEG claiming 60000x60000", bad_jpeg_huge, 0, SRV_DECODE_TOO_LARGE, "60000x60000 pixels", 413},
    {"JPEG claiming 65535x65535, no limit", bad_jpeg_max, SIZE_MAX / 8, SRV_DECODE_TOO_LARGE, "65500", 413},
    {"JPEG of 64x0", bad_jpeg_zero_height, 0, SRV_DECODE_CORRUPT, "its header gives 64x0 pixels", 400},
    {"JPEG of 64x48 over a 3071-pixel limit", small_jpeg, 3071, SRV_DECODE_TOO_LARGE, "64x48 pixels (3072)", 413},
    {"JPEG of 64x48 at a 3072-pixel limit", small_jpeg, 3072, SRV_DECODE_OK, NULL, 200},
};

START_TEST(bad_input)
{
    const struct bad_case *c = &bad_cases[_i];
    struct buf b = c->make();
    struct srv_image img;
    memset(&img, 0x5a, sizeof img); /* must be zeroed on failure */
    char err[256];
    enum srv_decode_status st = decode(&b, c->max_pixels, &img, err, sizeof err);
    ck_assert_msg(st == c->want, "%s: status %s, expected %s (%s)", c->name, srv_decode_status_name(st),
                  srv_decode_status_name(c->want), err);
    ck_assert_int_eq(srv_decode_http_status(st), c->http);
    if (c->msg)
        ck_assert_msg(strstr(err, c->msg) != NULL, "%s: message '%s' lacks '%s'", c->name, err, c->msg);
    if (st == SRV_DECODE_OK) {
        ck_assert_ptr_nonnull(img.data);
        srv_image_free(&img);
    } else {
        ck_assert_ptr_null(img.data);
        ck_assert_int_eq(img.width, 0);
    }
    free(b.p);
}
END_TEST

/* A JPEG with stray bytes between two segments: libjpeg warns, Pillow decodes it, so do we. */
START_TEST(jpeg_extraneous_bytes)
{
    struct buf j = small_jpeg();
    size_t app0 = 2 + 2 + ((size_t)j.p[4] << 8 | j.p[5]); /* end of the APP0 segment */
    ck_assert_int_eq(j.p[2], 0xFF);
    ck_assert_int_eq(j.p[3], 0xE0);
    struct buf b = {0};
    buf_put(&b, j.p, app0);
    buf_put(&b, "\x00\x01\x02", 3);
    buf_put(&b, j.p + app0, j.n - app0);
    struct srv_image img;
    char err[256];
    enum srv_decode_status st = decode(&b, 0, &img, err, sizeof err);
    ck_assert_msg(st == SRV_DECODE_OK, "%s", err);
    ck_assert_int_eq(img.width, 64);
    ck_assert_int_eq(img.height, 48);
    srv_image_free(&img);
    free(b.p), free(j.p);
}
END_TEST

/* 1x1 decodes (the model decides whether it is big enough), in both formats. */
/* A 47-byte PNG whose header claims 1 x 50,000,000 gray pixels (within the default limit) and
 * whose data ends at once: refused as corrupt, without touching more memory than the pixel
 * buffer the limit allows. decode_png used to fill an array of 50M row pointers first: 400 MB
 * resident (8 bytes per pixel for a 1-pixel-wide image) for 47 bytes of input. */
START_TEST(png_tall_truncated)
{
    static const unsigned char tall[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
        0x00, 0x00, 0x00, 0x01, 0x02, 0xfa, 0xf0, 0x80, 0x08, 0x00, 0x00, 0x00, 0x00, 0xcb, 0xb1, 0x46,
        0xf5, 0x00, 0x00, 0x00, 0x02, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x62, 0xa4, 0x91, 0x2b,
    };
    struct srv_image img;
    char err[256];
    ck_assert_int_eq(srv_decode_image(tall, sizeof tall, 0, &img, err, sizeof err), SRV_DECODE_CORRUPT);
    struct rusage ru;
    ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
    ck_assert_msg(ru.ru_maxrss < 200 * 1024, "peak RSS %ld KB after decoding a 47-byte PNG", ru.ru_maxrss);
}
END_TEST

START_TEST(one_pixel)
{
    struct buf p = make_png(1, 1, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7, 0);
    uint8_t px[3] = {10, 200, 30};
    struct buf j = make_jpeg(px, 1, 1, TJPF_RGB, TJSAMP_444, 100, 0);
    struct srv_image img;
    char err[256];
    ck_assert_msg(decode(&p, 0, &img, err, sizeof err) == SRV_DECODE_OK, "%s", err);
    ck_assert(img.width == 1 && img.height == 1 && img.channels == 3);
    srv_image_free(&img);
    ck_assert_msg(decode(&j, 1, &img, err, sizeof err) == SRV_DECODE_OK, "%s", err);
    ck_assert(img.width == 1 && img.height == 1 && img.channels == 3);
    ck_assert(abs(img.data[0] - 10) <= 3 && abs(img.data[1] - 200) <= 3 && abs(img.data[2] - 30) <= 3);
    srv_image_free(&img);
    free(p.p), free(j.p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("decode_image");
    TCase *tc = tcase_create("png");
    tcase_add_loop_test(tc, png_kinds, 0, (int)(sizeof png_cases / sizeof png_cases[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("jpeg");
    tcase_add_loop_test(tc, jpeg_kinds, 0, (int)(sizeof jpeg_cases / sizeof jpeg_cases[0]));
    tcase_add_loop_test(tc, exif_orientations, 0, 16);
    tcase_add_test(tc, exif_malformed);
    tcase_add_test(tc, jpeg_extraneous_bytes);
    tcase_add_test(tc, one_pixel);
    tcase_add_test(tc, png_tall_truncated);
    suite_add_tcase(s, tc);
    tc = tcase_create("bad");
    tcase_add_loop_test(tc, bad_input, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    suite_add_tcase(s, tc);
    return fx_run(s);
}
