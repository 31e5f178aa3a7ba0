/* preprocess.c: 8-bit pixels -> normalised NHWC floats, step for step as torchvision does it. */
#include "models/preprocess.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/error.h"
#include "engine/tensor.h"

static int read_pair(json_t *obj, const char *key, int *h, int *w, const char *origin)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *h = *w = (int)json_integer_value(v);
    } else if (json_is_array(v) && json_array_size(v) == 2 && json_is_integer(json_array_get(v, 0)) &&
               json_is_integer(json_array_get(v, 1))) {
        *h = (int)json_integer_value(json_array_get(v, 0));
        *w = (int)json_integer_value(json_array_get(v, 1));
    } else {
        return eng_error("%s: 'preprocess.%s' must be an integer or [height, width]", origin, key);
    }
    if (*h < 1 || *w < 1 || *h > 8192 || *w > 8192)
        return eng_error("%s: 'preprocess.%s' must be 1..8192", origin, key);
    return 0;
}

static int read_floats(json_t *obj, const char *key, float *out, int n, const char *origin)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_array(v) || (int)json_array_size(v) != n)
        return eng_error("%s: 'preprocess.%s' must be a list of %d numbers", origin, key, n);
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_number(e))
            return eng_error("%s: 'preprocess.%s[%d]' must be a number", origin, key, i);
        out[i] = (float)json_number_value(e);
    }
    return 0;
}

int mdl_preprocess_parse(struct mdl_preprocess *p, json_t *obj, const char *origin)
{
    memset(p, 0, sizeof *p);
    p->channels = 3;
    p->interp = ENG_RESIZE_BILINEAR;
    p->antialias = true;
    p->lo = 0.0f;
    p->hi = 1.0f;
    for (int c = 0; c < 3; c++) {
        p->mean[c] = 0.0f;
        p->std[c] = 1.0f;
    }
    if (!obj)
        return eng_error("%s: 'preprocess' missing (the input size comes from it)", origin);
    if (!json_is_object(obj))
        return eng_error("%s: 'preprocess' must be an object", origin);
    const char *known[] = {"channels", "crop_square", "resize", "resize_shorter", "interpolation", "antialias",
                           "center_crop", "range", "mean", "std"};
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        size_t i;
        for (i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strcmp(key, known[i]) == 0)
                break;
        if (i == sizeof known / sizeof known[0])
            return eng_error("%s: 'preprocess.%s' is not a known step", origin, key);
    }
    json_t *v = json_object_get(obj, "channels");
    if (v) {
        if (!json_is_integer(v) || (json_integer_value(v) != 1 && json_integer_value(v) != 3))
            return eng_error("%s: 'preprocess.channels' must be 1 or 3", origin);
        p->channels = (int)json_integer_value(v);
    }
    v = json_object_get(obj, "crop_square");
    if (v && !json_is_boolean(v))
        return eng_error("%s: 'preprocess.crop_square' must be true or false", origin);
    p->crop_square = json_is_true(v);
    v = json_object_get(obj, "antialias");
    if (v && !json_is_boolean(v))
        return eng_error("%s: 'preprocess.antialias' must be true or false", origin);
    if (v)
        p->antialias = json_is_true(v);
    v = json_object_get(obj, "interpolation");
    if (v) {
        const char *s = json_string_value(v);
        if (!s || (strcmp(s, "bilinear") != 0 && strcmp(s, "bicubic") != 0))
            return eng_error("%s: 'preprocess.interpolation' must be \"bilinear\" or \"bicubic\"", origin);
        p->interp = strcmp(s, "bicubic") == 0 ? ENG_RESIZE_BICUBIC : ENG_RESIZE_BILINEAR;
    }
    if (read_pair(obj, "resize", &p->resize_h, &p->resize_w, origin) < 0 ||
        read_pair(obj, "center_crop", &p->crop_h, &p->crop_w, origin) < 0)
        return -1;
    v = json_object_get(obj, "resize_shorter");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 8192)
            return eng_error("%s: 'preprocess.resize_shorter' must be an integer 1..8192", origin);
        if (p->resize_h)
            return eng_error("%s: 'preprocess' has both 'resize' and 'resize_shorter'", origin);
        p->resize_shorter = (int)json_integer_value(v);
    }
    float range[2] = {0.0f, 1.0f};
    if (read_floats(obj, "range", range, 2, origin) < 0 || read_floats(obj, "mean", p->mean, p->channels, origin) < 0 ||
        read_floats(obj, "std", p->std, p->channels, origin) < 0)
        return -1;
    p->lo = range[0];
    p->hi = range[1];
    for (int c = 0; c < p->channels; c++)
        if (!(p->std[c] > 0.0f))
            return eng_error("%s: 'preprocess.std[%d]' must be > 0", origin, c);
    if (p->crop_h) {
        p->out_h = p->crop_h;
        p->out_w = p->crop_w;
    } else if (p->resize_h) {
        p->out_h = p->resize_h;
        p->out_w = p->resize_w;
    } else if (p->resize_shorter && p->crop_square) {
        p->out_h = p->out_w = p->resize_shorter;
    } else {
        return eng_error("%s: 'preprocess' must fix the input size: 'resize' [h, w], 'center_crop', or "
                         "'crop_square' with 'resize_shorter'",
                         origin);
    }
    return 0;
}

size_t mdl_preprocess_floats(const struct mdl_preprocess *p)
{
    return (size_t)p->out_h * (size_t)p->out_w * (size_t)p->channels;
}

/* The plan for one image: the square crop, the resize target and the centre crop offsets. */
struct pre_plan {
    int x0, y0, w0, h0; /* region of the source after crop_square */
    int rh, rw;         /* after resize (== w0/h0 when none) */
    int cy, cx;         /* centre crop offsets inside the resized image */
};

static int plan(const struct mdl_preprocess *p, int width, int height, struct pre_plan *q)
{
    q->x0 = q->y0 = 0;
    q->w0 = width;
    q->h0 = height;
    if (p->crop_square) {
        /* torchxrayvision XRayCenterCrop: floor division, as in Python. */
        int s = width < height ? width : height;
        q->y0 = height / 2 - s / 2;
        q->x0 = width / 2 - s / 2;
        q->w0 = q->h0 = s;
    }
    q->rh = q->h0;
    q->rw = q->w0;
    if (p->resize_h) {
        q->rh = p->resize_h;
        q->rw = p->resize_w;
    } else if (p->resize_shorter) {
        /* torchvision's _compute_resized_output_size: the long side is int(size * long / short). */
        int s = p->resize_shorter;
        if (q->w0 <= q->h0) {
            q->rw = s;
            q->rh = (int)((double)s * q->h0 / q->w0);
        } else {
            q->rh = s;
            q->rw = (int)((double)s * q->w0 / q->h0);
        }
    }
    q->cy = q->cx = 0;
    if (p->crop_h) {
        if (q->rh < p->crop_h || q->rw < p->crop_w)
            return eng_error("image of %dx%d is %dx%d after resizing, smaller than the %dx%d centre crop", width,
                             height, q->rw, q->rh, p->crop_w, p->crop_h);
        /* torchvision: int(round((in - out) / 2.0)), Python's round half to even. */
        q->cy = (int)nearbyint((q->rh - p->crop_h) / 2.0);
        q->cx = (int)nearbyint((q->rw - p->crop_w) / 2.0);
    }
    return 0;
}

int mdl_preprocess_region(const struct mdl_preprocess *p, int width, int height, double box[4])
{
    struct pre_plan q;
    if (width < 1 || height < 1 || plan(p, width, height, &q) < 0)
        return -1;
    /* The network sees out_w x out_h pixels of the resized image starting at (cx, cy); a
     * resized pixel spans w0 / rw source pixels. */
    double sx = (double)q.w0 / q.rw, sy = (double)q.h0 / q.rh;
    int ow = p->crop_w ? p->crop_w : q.rw, oh = p->crop_h ? p->crop_h : q.rh;
    box[0] = q.x0 + q.cx * sx;
    box[1] = q.y0 + q.cy * sy;
    box[2] = ow * sx;
    box[3] = oh * sy;
    return 0;
}

size_t mdl_preprocess_scratch_bytes(const struct mdl_preprocess *p, int width, int height)
{
    struct pre_plan q;
    if (width < 1 || height < 1 || plan(p, width, height, &q) < 0)
        return 0;
    size_t c = (size_t)p->channels, align = 2 * ENG_ARENA_ALIGN;
    size_t src = (size_t)q.w0 * q.h0 * c * sizeof(float) + align;
    size_t dst = (size_t)q.rw * q.rh * c * sizeof(float) + align;
    size_t rs = eng_resize_scratch_bytes(p->interp, p->antialias, 1, q.h0, q.w0, (int64_t)c, q.rh, q.rw) + align;
    return src + dst + rs;
}

int mdl_preprocess_run(struct eng_ctx *ctx, const struct mdl_preprocess *p, const struct mdl_image *img,
                       float *dst)
{
    if (img->channels != 1 && img->channels != 3)
        return eng_error("image has %d channels; expected 1 (gray) or 3 (RGB)", img->channels);
    if (img->width < 1 || img->height < 1)
        return eng_error("image is empty (%dx%d)", img->width, img->height);
    struct pre_plan q;
    if (plan(p, img->width, img->height, &q) < 0)
        return -1;
    int c = p->channels;
    size_t mark = eng_arena_mark(&ctx->scratch);
    float *src = eng_arena_floats(&ctx->scratch, (size_t)q.w0 * q.h0 * c);
    if (!src)
        return -1;
    /* Pixels to floats in 0..255, converting the channel count: gray is replicated, RGB to
     * gray is the plain mean of R, G and B (torchxrayvision's img.mean(2)). */
    for (int y = 0; y < q.h0; y++) {
        const uint8_t *row = img->data + (size_t)(y + q.y0) * img->stride + (size_t)q.x0 * img->channels;
        float *o = src + (size_t)y * q.w0 * c;
        for (int x = 0; x < q.w0; x++) {
            const uint8_t *px = row + (size_t)x * img->channels;
            if (img->channels == c) {
                for (int k = 0; k < c; k++)
                    o[x * c + k] = px[k];
            } else if (c == 3) {
                o[x * 3] = o[x * 3 + 1] = o[x * 3 + 2] = px[0];
            } else {
                o[x] = ((float)px[0] + (float)px[1] + (float)px[2]) / 3.0f;
            }
        }
    }
    struct eng_tensor a = eng_tensor_make("pixels", src, 4, (int64_t[]){1, q.h0, q.w0, c});
    struct eng_tensor r = a;
    if (q.rh != q.h0 || q.rw != q.w0) {
        float *rbuf = eng_arena_floats(&ctx->scratch, (size_t)q.rw * q.rh * c);
        if (!rbuf) {
            eng_arena_rewind(&ctx->scratch, mark);
            return -1;
        }
        r = eng_tensor_make("resized", rbuf, 4, (int64_t[]){1, q.rh, q.rw, c});
        if (eng_resize(ctx, p->interp, p->antialias, &a, &r) < 0) {
            eng_arena_rewind(&ctx->scratch, mark);
            return -1;
        }
    }
    /* Centre crop, range and normalisation in one pass: v = lo + (hi - lo) * p / 255, then
     * (v - mean) / std. */
    float k = (p->hi - p->lo) / 255.0f;
    for (int y = 0; y < p->out_h; y++) {
        const float *in = r.data + ((size_t)(y + q.cy) * q.rw + (size_t)q.cx) * c;
        float *o = dst + (size_t)y * p->out_w * c;
        for (int x = 0; x < p->out_w; x++)
            for (int ch = 0; ch < c; ch++)
                o[x * c + ch] = (p->lo + k * in[x * c + ch] - p->mean[ch]) / p->std[ch];
    }
    eng_arena_rewind(&ctx->scratch, mark);
    return 0;
}
