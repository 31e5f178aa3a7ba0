/* decode_image.c: JPEG (TurboJPEG) and PNG (libpng) bytes -> 8-bit gray or RGB pixels, bounded. */
#include "server/decode_image.h"

#include <limits.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

static enum srv_decode_status fail(enum srv_decode_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum srv_decode_status fail(enum srv_decode_status st, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* The pixel limit, checked on header values before anything is allocated. */
static enum srv_decode_status check_size(const char *fmt, uint64_t w, uint64_t h, size_t max_pixels, char *err,
                                         size_t errlen)
{
    if (w < 1 || h < 1)
        return fail(SRV_DECODE_CORRUPT, err, errlen, "%s is corrupt or truncated: its header gives %llux%llu pixels", fmt,
                    (unsigned long long)w, (unsigned long long)h);
    if (w * h > (uint64_t)max_pixels)
        return fail(SRV_DECODE_TOO_LARGE, err, errlen,
                    "image is %llux%llu pixels (%llu), more than the limit of %llu pixels", (unsigned long long)w,
                    (unsigned long long)h, (unsigned long long)(w * h), (unsigned long long)max_pixels);
    /* Buffers are indexed with size_t and TurboJPEG takes an int pitch: refuse what a 32-bit
     * build could not address even when the caller's limit allows it. */
    if (w > INT_MAX / 4 || h > INT_MAX || w * h > SIZE_MAX / 4)
        return fail(SRV_DECODE_TOO_LARGE, err, errlen, "image is %llux%llu pixels, too large to address",
                    (unsigned long long)w, (unsigned long long)h);
    return SRV_DECODE_OK;
}

/* ---- EXIF orientation ---- */

static unsigned rd16(const uint8_t *p, bool le)
{
    return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | (unsigned)p[1];
}

static uint32_t rd32(const uint8_t *p, bool le)
{
    return le ? (uint32_t)rd16(p, true) | (uint32_t)rd16(p + 2, true) << 16
              : (uint32_t)rd16(p, false) << 16 | (uint32_t)rd16(p + 2, false);
}

/* Orientation tag (0x0112) of IFD0 in the n bytes of a TIFF structure; 1 when absent or not
 * a SHORT in 1..8. Every offset is checked against n: the bytes are the client's. */
static int exif_orientation(const uint8_t *t, size_t n)
{
    if (n < 8)
        return 1;
    bool le;
    if (t[0] == 'I' && t[1] == 'I')
        le = true;
    else if (t[0] == 'M' && t[1] == 'M')
        le = false;
    else
        return 1;
    if (rd16(t + 2, le) != 42)
        return 1;
    uint32_t ifd = rd32(t + 4, le);
    if (ifd > n - 2)
        return 1;
    size_t count = rd16(t + ifd, le);
    size_t room = (n - ifd - 2) / 12;
    if (count > room)
        count = room;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *e = t + ifd + 2 + 12 * i;
        if (rd16(e, le) != 0x0112)
            continue;
        unsigned v = rd16(e + 8, le);
        if (rd16(e + 2, le) != 3 || rd32(e + 4, le) != 1 || v < 1 || v > 8)
            return 1;
        return (int)v;
    }
    return 1;
}

/* What the JPEG's marker segments before the first scan say: the frame size (SOFn) and the
 * EXIF orientation (the first APP1 "Exif" segment). Stops quietly at anything malformed;
 * libjpeg then gives the real error. */
struct jpeg_headers {
    bool have_sof;
    unsigned width, height;
    int orientation;
};

static void jpeg_scan(const uint8_t *p, size_t len, struct jpeg_headers *h)
{
    bool seen_exif = false;
    size_t i = 2; /* after SOI */
    h->have_sof = false;
    h->orientation = 1;
    while (i < len && p[i] == 0xFF) {
        while (i < len && p[i] == 0xFF) /* fill bytes */
            i++;
        if (i >= len)
            return;
        unsigned m = p[i++];
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) /* TEM, RSTn, SOI: no length */
            continue;
        if (m == 0xD9 || m == 0xDA) /* EOI, SOS: the headers are over */
            return;
        if (len - i < 2)
            return;
        size_t seg = rd16(p + i, false);
        if (seg < 2 || seg > len - i)
            return;
        const uint8_t *d = p + i + 2;
        size_t dlen = seg - 2;
        bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof && !h->have_sof && dlen >= 5) {
            h->height = rd16(d + 1, false);
            h->width = rd16(d + 3, false);
            h->have_sof = true;
        }
        if (m == 0xE1 && !seen_exif && dlen >= 6 && memcmp(d, "Exif\0\0", 6) == 0) {
            h->orientation = exif_orientation(d + 6, dlen - 6);
            seen_exif = true;
        }
        i += seg;
    }
}

/* Rewrite img as displayed under EXIF orientation o (2..8), as PIL's exif_transpose: output
 * pixel (x, y) comes from source (ax*x + bx*y + cx, ay*x + by*y + cy). Returns 0, or -1 when
 * out of memory (img unchanged). */
static int apply_orientation(struct srv_image *img, int o)
{
    int w = img->width, h = img->height, c = img->channels;
    static const int map[9][6] = {
        /* ax bx cx(W-1?) ay by cy(H-1?) */
        {0}, {1, 0, 0, 0, 1, 0},  {-1, 0, 1, 0, 1, 0},  {-1, 0, 1, 0, -1, 1}, {1, 0, 0, 0, -1, 1},
        {0, 1, 0, 1, 0, 0},       {0, 1, 0, -1, 0, 1},  {0, -1, 1, -1, 0, 1}, {0, -1, 1, 1, 0, 0},
    };
    const int *a = map[o];
    int ow = o >= 5 ? h : w, oh = o >= 5 ? w : h;
    size_t ostride = (size_t)ow * (size_t)c;
    uint8_t *dst = malloc(ostride * (size_t)oh);
    if (!dst)
        return -1;
    /* Walk the source with signed byte steps: per output column and per output row. */
    ptrdiff_t sx = (ptrdiff_t)c, sy = (ptrdiff_t)img->stride;
    ptrdiff_t step_x = a[0] * sx + a[3] * sy, step_y = a[1] * sx + a[4] * sy;
    ptrdiff_t origin = (ptrdiff_t)(a[2] ? w - 1 : 0) * sx + (ptrdiff_t)(a[5] ? h - 1 : 0) * sy;
    for (int y = 0; y < oh; y++) {
        const uint8_t *s = img->data + origin + step_y * y;
        uint8_t *d = dst + (size_t)y * ostride;
        if (c == 1) {
            for (int x = 0; x < ow; x++, s += step_x)
                d[x] = *s;
        } else {
            for (int x = 0; x < ow; x++, s += step_x, d += 3)
                d[0] = s[0], d[1] = s[1], d[2] = s[2];
        }
    }
    free(img->data);
    img->data = dst;
    img->width = ow;
    img->height = oh;
    img->stride = ostride;
    return 0;
}

/* ---- JPEG ---- */

static bool has_word(const char *s, const char *word)
{
    size_t n = strlen(word);
    for (; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && (s[i] | 0x20) == (word[i] | 0x20))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

/* libjpeg reports missing or broken entropy-coded data as warnings and fills the rest with
 * grey; those are errors here. Other warnings (extraneous bytes before a marker, odd but
 * decodable streams) are accepted, as Pillow accepts them. */
static bool jpeg_warning_is_fatal(const char *msg)
{
    return has_word(msg, "premature end") || has_word(msg, "bad huffman") || has_word(msg, "bad arithmetic") ||
           has_word(msg, "corrupt jpeg data: found");
}

static enum srv_decode_status decode_jpeg(const uint8_t *p, size_t len, size_t max_pixels, struct srv_image *out,
                                          char *err, size_t errlen)
{
    struct jpeg_headers hd = {0};
    jpeg_scan(p, len, &hd);
    enum srv_decode_status st;
    if (hd.have_sof && (st = check_size("JPEG", hd.width, hd.height, max_pixels, err, errlen)) != SRV_DECODE_OK)
        return st;
    if (len > ULONG_MAX)
        return fail(SRV_DECODE_TOO_LARGE, err, errlen, "JPEG data is too long");
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return fail(SRV_DECODE_NOMEM, err, errlen, "cannot start the JPEG decoder: %s", tjGetErrorStr2(NULL));
    int w = 0, h = 0, subsamp = 0, cs = 0;
    /* Like tjDecompress2, the header reader returns -1 for mere warnings (stray bytes between
     * segments); those go on to the decode, which judges them. */
    if (tjDecompressHeader3(tj, p, (unsigned long)len, &w, &h, &subsamp, &cs) < 0 &&
        (tjGetErrorCode(tj) != TJERR_WARNING || jpeg_warning_is_fatal(tjGetErrorStr2(tj)))) {
        const char *msg = tjGetErrorStr2(tj);
        st = has_word(msg, "maximum supported image dimension") ? SRV_DECODE_TOO_LARGE
             : has_word(msg, "unsupported")                    ? SRV_DECODE_UNSUPPORTED
                                                                : SRV_DECODE_CORRUPT;
        fail(st, err, errlen, "%s: %s",
             st == SRV_DECODE_TOO_LARGE    ? "JPEG is too large"
             : st == SRV_DECODE_UNSUPPORTED ? "JPEG of a kind that cannot be decoded"
                                            : "JPEG is corrupt or truncated",
             msg);
        tjDestroy(tj);
        return st;
    }
    /* Data that ends inside the headers makes libjpeg see a fake EOI: success, no size. */
    if (w < 1 || h < 1) {
        tjDestroy(tj);
        return fail(SRV_DECODE_CORRUPT, err, errlen, "JPEG is corrupt or truncated: it ends before its first scan");
    }
    if ((st = check_size("JPEG", (uint64_t)w, (uint64_t)h, max_pixels, err, errlen)) != SRV_DECODE_OK) {
        tjDestroy(tj);
        return st;
    }
    int pf = TJPF_RGB, ch = 3;
    if (cs == TJCS_GRAY)
        pf = TJPF_GRAY, ch = 1;
    else if (cs == TJCS_CMYK || cs == TJCS_YCCK)
        pf = TJPF_CMYK, ch = 4;
    size_t stride = (size_t)w * (size_t)ch;
    uint8_t *px = malloc(stride * (size_t)h);
    if (!px) {
        tjDestroy(tj);
        return fail(SRV_DECODE_NOMEM, err, errlen, "out of memory for a %dx%d image", w, h);
    }
    if (tjDecompress2(tj, p, (unsigned long)len, px, w, (int)stride, h, pf, 0) < 0) {
        const char *msg = tjGetErrorStr2(tj);
        if (tjGetErrorCode(tj) != TJERR_WARNING || jpeg_warning_is_fatal(msg)) {
            fail(SRV_DECODE_CORRUPT, err, errlen, "JPEG is corrupt or truncated: %s", msg);
            free(px);
            tjDestroy(tj);
            return SRV_DECODE_CORRUPT;
        }
    }
    tjDestroy(tj);
    if (ch == 4) {
        /* Adobe (inverted) CMYK, as Pillow converts it: R = C * K / 255, rounded. In place:
         * pixel i's 3 output bytes never overrun pixel i's 4 input bytes. */
        for (size_t i = 0, n = (size_t)w * (size_t)h; i < n; i++) {
            unsigned c = px[4 * i], m = px[4 * i + 1], y = px[4 * i + 2], k = px[4 * i + 3];
            px[3 * i] = (uint8_t)((c * k + 127) / 255);
            px[3 * i + 1] = (uint8_t)((m * k + 127) / 255);
            px[3 * i + 2] = (uint8_t)((y * k + 127) / 255);
        }
        ch = 3;
        stride = (size_t)w * 3;
        uint8_t *shrunk = realloc(px, stride * (size_t)h);
        if (shrunk)
            px = shrunk;
    }
    *out = (struct srv_image){w, h, ch, px, stride};
    if (hd.orientation > 1 && apply_orientation(out, hd.orientation) < 0) {
        srv_image_free(out);
        return fail(SRV_DECODE_NOMEM, err, errlen, "out of memory rotating a %dx%d image", w, h);
    }
    return SRV_DECODE_OK;
}

/* ---- PNG ---- */

struct png_job {
    const uint8_t *buf;
    size_t len, off;
    char msg[160];
    /* Written between setjmp and a possible longjmp, so volatile (C11 7.13.2.1). */
    uint8_t *volatile pixels;
};

static void png_on_error(png_structp png, png_const_charp msg)
{
    struct png_job *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg; /* a bad ancillary chunk is dropped; nothing for the client to fix */
}

static void png_read_mem(png_structp png, png_bytep dst, size_t n)
{
    struct png_job *job = png_get_io_ptr(png);
    if (n > job->len - job->off)
        png_error(png, "data ends early (truncated)");
    memcpy(dst, job->buf + job->off, n);
    job->off += n;
}

static enum srv_decode_status decode_png(const uint8_t *p, size_t len, size_t max_pixels, struct srv_image *out,
                                         char *err, size_t errlen)
{
    struct png_job job = {.buf = p, .len = len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_on_error, png_on_warning);
    if (!png)
        return fail(SRV_DECODE_NOMEM, err, errlen, "cannot start the PNG decoder");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return fail(SRV_DECODE_NOMEM, err, errlen, "cannot start the PNG decoder");
    }
    volatile enum srv_decode_status st = SRV_DECODE_OK;
    if (setjmp(png_jmpbuf(png))) {
        if (st == SRV_DECODE_OK)
            st = fail(SRV_DECODE_CORRUPT, err, errlen, "PNG is corrupt or truncated: %s", job.msg);
        goto done;
    }
    /* Our own limit is the one that counts (checked below, before allocating); libpng's
     * default of 1e6 per side would otherwise turn "too large" into "corrupt". Ancillary
     * chunks (iCCP, zTXt) are bounded so a small file cannot inflate into a big one. */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)8 << 20);
    png_set_chunk_cache_max(png, 1000);
    png_set_read_fn(png, &job, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, type = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &type, &interlace, NULL, NULL);
    if ((st = check_size("PNG", w, h, max_pixels, err, errlen)) != SRV_DECODE_OK)
        goto done;
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16)
        png_set_strip_16(png);
    /* Expanding a palette turns its tRNS into alpha; gray and RGB tRNS are not expanded. */
    if ((type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    size_t stride = (size_t)w * (size_t)ch;
    if ((ch != 1 && ch != 3) || png_get_rowbytes(png, info) != stride) {
        st = fail(SRV_DECODE_CORRUPT, err, errlen, "PNG decodes to %d channels of %zu bytes per row (unexpected)", ch,
                  (size_t)png_get_rowbytes(png, info));
        goto done;
    }
    job.pixels = malloc(stride * (size_t)h);
    if (!job.pixels) {
        st = fail(SRV_DECODE_NOMEM, err, errlen, "out of memory for a %ux%u image", (unsigned)w, (unsigned)h);
        goto done;
    }
    /* Row by row, pass by pass (7 for Adam7), as png_read_image does, but without its array of
     * row pointers: 8 bytes per row, which for a 1-pixel-wide image is 8 times the pixel buffer
     * that max_pixels is meant to bound (a 1x50000000 gray PNG of a few hundred bytes asked for
     * 400 MB of pointers before libpng found its data missing). */
    for (int pass = 0; pass < passes; pass++)
        for (png_uint_32 y = 0; y < h; y++)
            png_read_row(png, job.pixels + (size_t)y * stride, NULL);
    /* Chunks after the image data (IEND, text) are not read: the pixels are complete. */
    *out = (struct srv_image){(int)w, (int)h, ch, job.pixels, stride};
    job.pixels = NULL;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(job.pixels);
    return st;
}

/* ---- dispatch ---- */

/* Formats told apart by their first bytes, so a refusal can say what was sent. */
static const char *other_format(const uint8_t *p, size_t len)
{
    static const struct {
        const char *magic;
        size_t n;
        const char *name;
    } known[] = {
        {"GIF8", 4, "GIF"},      {"BM", 2, "BMP"},         {"II*\0", 4, "TIFF"}, {"MM\0*", 4, "TIFF"},
        {"\0\0\0\x0cjP", 6, "JPEG 2000"}, {"\xff\x4f\xff\x51", 4, "JPEG 2000"}, {"%PDF", 4, "PDF"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (len >= known[i].n && memcmp(p, known[i].magic, known[i].n) == 0)
            return known[i].name;
    if (len >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return "WebP";
    if (len >= 12 && memcmp(p + 4, "ftyp", 4) == 0)
        return "HEIF/AVIF";
    if (len >= 132 && memcmp(p + 128, "DICM", 4) == 0)
        return "DICOM";
    return NULL;
}

enum srv_decode_status srv_decode_image(const void *buf, size_t len, size_t max_pixels, struct srv_image *out,
                                        char *err, size_t errlen)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *p = buf;
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    if (max_pixels == 0)
        max_pixels = SRV_DECODE_DEFAULT_MAX_PIXELS;
    if (!p || len == 0)
        return fail(SRV_DECODE_EMPTY, err, errlen, "image is empty (0 bytes)");
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
        return decode_jpeg(p, len, max_pixels, out, err, errlen);
    if (len >= 8 && memcmp(p, png_magic, 8) == 0)
        return decode_png(p, len, max_pixels, out, err, errlen);
    const char *name = other_format(p, len);
    if (name)
        return fail(SRV_DECODE_UNSUPPORTED, err, errlen, "%s images are not supported; send JPEG or PNG", name);
    return fail(SRV_DECODE_UNSUPPORTED, err, errlen, "not a JPEG or PNG image (%zu bytes of something else)", len);
}

void srv_image_free(struct srv_image *img)
{
    if (!img)
        return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

int srv_decode_http_status(enum srv_decode_status st)
{
    switch (st) {
    case SRV_DECODE_OK:
        return 200;
    case SRV_DECODE_EMPTY:
    case SRV_DECODE_CORRUPT:
        return 400;
    case SRV_DECODE_UNSUPPORTED:
        return 415;
    case SRV_DECODE_TOO_LARGE:
        return 413;
    case SRV_DECODE_NOMEM:
        break;
    }
    return 500;
}

const char *srv_decode_status_name(enum srv_decode_status st)
{
    switch (st) {
    case SRV_DECODE_OK:
        return "ok";
    case SRV_DECODE_EMPTY:
        return "empty";
    case SRV_DECODE_UNSUPPORTED:
        return "unsupported";
    case SRV_DECODE_CORRUPT:
        return "corrupt";
    case SRV_DECODE_TOO_LARGE:
        return "too_large";
    case SRV_DECODE_NOMEM:
        return "nomem";
    }
    return "unknown";
}
