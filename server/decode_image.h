/* Image decoding: an in-memory JPEG or PNG (a client's bytes) -> 8-bit gray or RGB pixels.
 *
 *   struct srv_image img;
 *   char err[256];
 *   enum srv_decode_status st = srv_decode_image(body, body_len, 0, &img, err, sizeof err);
 *   if (st != SRV_DECODE_OK)
 *       return reply_error(srv_decode_http_status(st), err);   // 415 / 400 / 413 / 500
 *   struct mdl_image view = {img.width, img.height, img.channels, img.data, img.stride};
 *   ... mdl_preprocess_run(ctx, &pre, &view, dst) ...
 *   srv_image_free(&img);
 *
 * The format comes from the magic bytes, never from a Content-Type. Width x height is read
 * from the header (JPEG SOFn, PNG IHDR) and checked against max_pixels before any pixel is
 * decoded or any pixel buffer allocated.
 *
 * What comes out, and why:
 *   - Gray sources (gray JPEG, gray or gray+alpha PNG) stay 1 channel; everything else is
 *     3-channel RGB. Models convert (models/preprocess.c), so a gray X-ray is not tripled.
 *   - JPEG: baseline and progressive, decoded with libjpeg-turbo's default settings (accurate
 *     DCT, fancy upsampling), the ones Pillow uses, so the pixels equal PIL's. CMYK/YCCK JPEGs
 *     are taken as Adobe-style inverted CMYK (what Photoshop writes and Pillow assumes) and
 *     converted as Pillow does: R = C * K / 255 on the stored values. The EXIF Orientation
 *     tag (APP1 "Exif", IFD0 tag 0x0112, values 1..8; anything else means 1) is applied after
 *     decoding, as PIL's ImageOps.exif_transpose does.
 *   - PNG: every colour type and bit depth; 1/2/4-bit gray is scaled to 0..255, palettes are
 *     expanded, 16-bit samples keep their high byte (as Pillow does for 16-bit RGB),
 *     interlaced images are de-interlaced. Alpha and tRNS are dropped, not composited, which
 *     is what PIL's .convert("RGB") does: a transparent pixel keeps its stored colour.
 *   - A JPEG whose data ends early ("Premature end of JPEG file") or whose entropy-coded data
 *     is broken is an error, not a grey-filled picture; harmless libjpeg warnings
 *     (extraneous bytes before a marker) are accepted, as Pillow accepts them.
 *   - 1x1 is a valid image; whether it is big enough is the model's business.
 */
#ifndef SALIENT_SERVER_DECODE_IMAGE_H
#define SALIENT_SERVER_DECODE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* The default pixel limit: 50 megapixels. */
#define SRV_DECODE_DEFAULT_MAX_PIXELS ((size_t)50 * 1000 * 1000)

enum srv_decode_status {
    SRV_DECODE_OK = 0,
    SRV_DECODE_EMPTY,       /* zero bytes (400) */
    SRV_DECODE_UNSUPPORTED, /* not a JPEG or PNG: another format or not an image at all (415) */
    SRV_DECODE_CORRUPT,     /* a JPEG or PNG that is truncated or malformed (400) */
    SRV_DECODE_TOO_LARGE,   /* width x height over max_pixels (413) */
    SRV_DECODE_NOMEM,       /* our allocation failed (500) */
};

/* Decoded pixels, laid out as struct mdl_image (models/preprocess.h) expects: rows of
 * width * channels bytes, `stride` bytes apart, top row first. */
struct srv_image {
    int width, height;
    int channels;  /* 1 (gray) or 3 (RGB) */
    uint8_t *data; /* owned: malloc'd, freed by srv_image_free */
    size_t stride; /* bytes per row (== width * channels) */
};

/* Decode len bytes at buf (JPEG or PNG, told apart by their magic bytes). max_pixels 0 means
 * SRV_DECODE_DEFAULT_MAX_PIXELS. On SRV_DECODE_OK *out holds a new pixel buffer the caller
 * releases with srv_image_free. On any other status *out is zeroed (nothing to free) and err
 * (errlen bytes, always terminated; may be NULL when errlen is 0) holds a one-line message
 * fit for a client: it names the problem, never echoes image bytes. Thread-safe: no globals. */
enum srv_decode_status srv_decode_image(const void *buf, size_t len, size_t max_pixels, struct srv_image *out,
                                        char *err, size_t errlen);

/* Free img's pixels and zero it; safe on a zeroed image. */
void srv_image_free(struct srv_image *img);

/* The HTTP status a status maps to: 200, 400, 415, 413 or 500. */
int srv_decode_http_status(enum srv_decode_status st);

/* "ok", "empty", "unsupported", "corrupt", "too_large", "nomem". */
const char *srv_decode_status_name(enum srv_decode_status st);

#endif
