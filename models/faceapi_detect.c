/* faceapi_detect.c: face-api's box decoding, NMS, crops, landmark post-processing and alignment, in its own (double) arithmetic. */
#include "models/faceapi_detect.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine/error.h"
#include "models/faceapi_nets.h"

/* TinyFaceDetector's BOX_ANCHORS (in grid cells). */
static const double tiny_anchors[MDL_FA_TINY_ANCHORS][2] = {
    {1.603231, 2.094468}, {6.041143, 7.080126}, {2.882459, 3.518061}, {4.266906, 5.178857}, {9.041765, 10.66308},
};

/* Box.rescale(Dimensions.reverse()) then Box.rescale(Dimensions): face-api's relative round trip. */
static double round_trip(double v, double dim)
{
    return v * (1.0 / dim) * dim;
}

/* computeReshapedDimensions: the image scaled so its longer side is input_size, rounded as
 * JavaScript's Math.round (half up). */
static void reshaped(int img_w, int img_h, int input_size, double *rw, double *rh)
{
    double scale = (double)input_size / (double)(img_w > img_h ? img_w : img_h);
    *rw = floor((double)img_w * scale + 0.5);
    *rh = floor((double)img_h * scale + 0.5);
}

struct cand {
    float score;
    int idx;
};

/* Best first; equal scores in index order (Array.prototype.sort is stable). A total order, so
 * any sort gives face-api's. */
static bool cand_before(const struct cand *x, const struct cand *y)
{
    return x->score != y->score ? x->score > y->score : x->idx < y->idx;
}

/* Heapsort by cand_before: in place, no allocation (glibc's qsort may malloc). */
static void cand_sort(struct cand *c, int n)
{
    for (int start = n / 2 - 1, end = n;; ) {
        int root;
        if (start >= 0) {
            root = start--;
        } else {
            if (--end <= 0)
                return;
            struct cand t = c[0];
            c[0] = c[end], c[end] = t;
            root = 0;
        }
        /* sift down: the heap keeps the candidate that sorts last on top */
        for (int child; (child = 2 * root + 1) < end; root = child) {
            if (child + 1 < end && cand_before(&c[child], &c[child + 1]))
                child++;
            if (!cand_before(&c[root], &c[child]))
                break;
            struct cand t = c[root];
            c[root] = c[child], c[child] = t;
        }
    }
}

/* ssdMobilenetv1/nonMaxSuppression's IOU on (ymin, xmin, ymax, xmax) boxes. */
static double ssd_iou(const float *a, const float *b)
{
    double ay0 = fmin(a[0], a[2]), ax0 = fmin(a[1], a[3]), ay1 = fmax(a[0], a[2]), ax1 = fmax(a[1], a[3]);
    double by0 = fmin(b[0], b[2]), bx0 = fmin(b[1], b[3]), by1 = fmax(b[0], b[2]), bx1 = fmax(b[1], b[3]);
    double area_a = (ay1 - ay0) * (ax1 - ax0), area_b = (by1 - by0) * (bx1 - bx0);
    if (area_a <= 0 || area_b <= 0)
        return 0.0;
    double iy0 = fmax(ay0, by0), ix0 = fmax(ax0, bx0), iy1 = fmin(ay1, by1), ix1 = fmin(ax1, bx1);
    double inter = fmax(iy1 - iy0, 0.0) * fmax(ix1 - ix0, 0.0);
    return inter / (area_a + area_b - inter);
}

int mdl_fa_ssd_detect(struct eng_arena *act, const float *raw, int img_w, int img_h, float score_thr, float iou_thr,
                      int max_out, struct mdl_fa_box *boxes, float *scores)
{
    const float *bx = raw, *sc = raw + (size_t)MDL_FA_SSD_ANCHORS * 4;
    size_t mark = eng_arena_mark(act);
    struct cand *c = eng_arena_alloc(act, MDL_FA_SSD_ANCHORS * sizeof *c);
    int *sel = eng_arena_alloc(act, MDL_FA_SSD_ANCHORS * sizeof *sel);
    if (!c || !sel) {
        eng_arena_rewind(act, mark);
        return -1;
    }
    int nc = 0, ns = 0;
    for (int i = 0; i < MDL_FA_SSD_ANCHORS; i++)
        if ((double)sc[i] > (double)score_thr)
            c[nc++] = (struct cand){sc[i], i};
    cand_sort(c, nc);
    int limit = max_out < MDL_FA_SSD_ANCHORS ? max_out : MDL_FA_SSD_ANCHORS;
    for (int i = 0; i < nc && ns < limit; i++) {
        bool keep = true;
        for (int j = ns - 1; j >= 0 && keep; j--)
            keep = !(ssd_iou(bx + (size_t)c[i].idx * 4, bx + (size_t)sel[j] * 4) > (double)iou_thr);
        if (keep)
            sel[ns++] = c[i].idx;
    }
    /* locateFaces: clip to [0, 1] of the padded square, scale to the unpadded part, then to pixels */
    double rw, rh;
    reshaped(img_w, img_h, MDL_FA_SSD_SIDE, &rw, &rh);
    double pad_x = MDL_FA_SSD_SIDE / rw, pad_y = MDL_FA_SSD_SIDE / rh;
    for (int k = 0; k < ns; k++) {
        const float *b = bx + (size_t)sel[k] * 4;
        double top = fmax(0.0, (double)b[0]) * pad_y, bottom = fmin(1.0, (double)b[2]) * pad_y;
        double left = fmax(0.0, (double)b[1]) * pad_x, right = fmin(1.0, (double)b[3]) * pad_x;
        boxes[k] = (struct mdl_fa_box){left * img_w, top * img_h, (right - left) * img_w, (bottom - top) * img_h};
        scores[k] = sc[sel[k]];
    }
    eng_arena_rewind(act, mark);
    return ns;
}

static double sigmoid(double v)
{
    return 1.0 / (1.0 + exp(-v));
}

/* ops/iou on two boxes. */
static double box_iou(const struct mdl_fa_box *a, const struct mdl_fa_box *b)
{
    double w = fmax(0.0, fmin(a->x + a->w, b->x + b->w) - fmax(a->x, b->x));
    double h = fmax(0.0, fmin(a->y + a->h, b->y + b->h) - fmax(a->y, b->y));
    double inter = w * h;
    return inter / (a->w * a->h + b->w * b->h - inter);
}

int mdl_fa_tiny_detect(struct eng_arena *act, const float *raw, int input_size, int img_w, int img_h,
                       float score_thr, float iou_thr, int max_out, struct mdl_fa_box *boxes, float *scores)
{
    int g = input_size / 32, ncells = g * g * MDL_FA_TINY_ANCHORS;
    size_t mark = eng_arena_mark(act);
    struct cand *c = eng_arena_alloc(act, (size_t)ncells * sizeof *c);
    struct mdl_fa_box *rel = eng_arena_alloc(act, (size_t)ncells * sizeof *rel);
    if (!c || !rel) {
        eng_arena_rewind(act, mark);
        return -1;
    }
    double rw, rh;
    reshaped(img_w, img_h, input_size, &rw, &rh);
    double in = fmax(rw, rh), cx = in / rw, cy = in / rh;
    int nc = 0;
    for (int row = 0; row < g; row++)
        for (int col = 0; col < g; col++)
            for (int a = 0; a < MDL_FA_TINY_ANCHORS; a++) {
                const float *e = raw + ((size_t)(row * g + col) * MDL_FA_TINY_ANCHORS + a) * 5;
                double score = sigmoid(e[4]);
                if (!(score > (double)score_thr))
                    continue;
                double ctx = ((col + sigmoid(e[0])) / g) * cx, cty = ((row + sigmoid(e[1])) / g) * cy;
                double w = ((exp(e[2]) * tiny_anchors[a][0]) / g) * cx, h = ((exp(e[3]) * tiny_anchors[a][1]) / g) * cy;
                double x = ctx - w / 2, y = cty - h / 2;
                /* new BoundingBox(x, y, x + w, y + h) keeps width as right - left */
                rel[nc] = (struct mdl_fa_box){x, y, (x + w) - x, (y + h) - y};
                c[nc] = (struct cand){(float)score, nc};
                nc++;
            }
    /* face-api sorts ascending (stably) and pops the last: best first, equal scores latest first. */
    for (int i = 0; i < nc; i++)
        c[i].idx = nc - 1 - c[i].idx;
    cand_sort(c, nc);
    for (int i = 0; i < nc; i++)
        c[i].idx = nc - 1 - c[i].idx;
    /* scores as doubles: the float kept in cand only orders them; recompute exactly below */
    int ns = 0;
    bool *dead = (bool *)eng_arena_alloc(act, (size_t)(nc ? nc : 1));
    if (!dead) {
        eng_arena_rewind(act, mark);
        return -1;
    }
    for (int i = 0; i < nc; i++)
        dead[i] = false;
    for (int i = 0; i < nc; i++) {
        if (dead[i])
            continue;
        int cur = c[i].idx;
        if (ns < max_out) {
            const struct mdl_fa_box *b = &rel[cur];
            /* ObjectDetection: relative * image, then FaceDetection: that round trip once more */
            boxes[ns] = (struct mdl_fa_box){round_trip(b->x * img_w, img_w), round_trip(b->y * img_h, img_h),
                                            round_trip(b->w * img_w, img_w), round_trip(b->h * img_h, img_h)};
            scores[ns] = c[i].score;
            ns++;
        }
        struct mdl_fa_box a = {rel[cur].x * input_size, rel[cur].y * input_size, rel[cur].w * input_size,
                               rel[cur].h * input_size};
        for (int j = i + 1; j < nc; j++) {
            if (dead[j])
                continue;
            const struct mdl_fa_box *o = &rel[c[j].idx];
            struct mdl_fa_box b = {o->x * input_size, o->y * input_size, o->w * input_size, o->h * input_size};
            if (!(box_iou(&a, &b) <= (double)iou_thr))
                dead[j] = true;
        }
    }
    eng_arena_rewind(act, mark);
    return ns;
}

/* Box.clipAtImageBorders, then floor() of each of x, y, width, height. */
static bool clip_floor(double x, double y, double w, double h, int img_w, int img_h, struct mdl_fa_rect *crop)
{
    double right = x + w, bottom = y + h;
    double cx = fmax(x, 0.0), cy = fmax(y, 0.0);
    double cw = fmin(right - cx, img_w - cx), ch = fmin(bottom - cy, img_h - cy);
    double fx = floor(cx), fy = floor(cy), fw = floor(cw), fh = floor(ch);
    if (!(fw > 0 && fh > 0) || fx >= img_w || fy >= img_h)
        return false;
    crop->x = (int)fx, crop->y = (int)fy;
    /* floor can leave x + w one past the edge when x was fractional; slice3d would then refuse */
    crop->w = (int)fmin(fw, img_w - fx), crop->h = (int)fmin(fh, img_h - fy);
    return true;
}

bool mdl_fa_crop(const struct mdl_fa_box *box, int img_w, int img_h, struct mdl_fa_rect *crop)
{
    /* det.forSize(imgWidth, imgHeight).box */
    return clip_floor(round_trip(box->x, img_w), round_trip(box->y, img_h), round_trip(box->w, img_w),
                      round_trip(box->h, img_h), img_w, img_h, crop);
}

bool mdl_fa_crop_rect(const struct mdl_fa_box *box, int img_w, int img_h, struct mdl_fa_rect *crop)
{
    return clip_floor(box->x, box->y, box->w, box->h, img_w, img_h, crop);
}

/* getCenterPoint: the sum in order, divided by the count. */
static void centre(const double pts[][2], int from, int to, double *cx, double *cy)
{
    double x = 0, y = 0;
    for (int i = from; i < to; i++)
        x += pts[i][0], y += pts[i][1];
    *cx = x / (to - from), *cy = y / (to - from);
}

void mdl_fa_align_dlib(const double pts[MDL_FACE_LANDMARKS][2], int crop_w, int crop_h, struct mdl_fa_box *box)
{
    double c[3][2]; /* left eye 36..41, right eye 42..47, mouth 48..67 */
    centre(pts, 36, 42, &c[0][0], &c[0][1]);
    centre(pts, 42, 48, &c[1][0], &c[1][1]);
    centre(pts, 48, 68, &c[2][0], &c[2][1]);
    double d0 = sqrt((c[2][0] - c[0][0]) * (c[2][0] - c[0][0]) + (c[2][1] - c[0][1]) * (c[2][1] - c[0][1]));
    double d1 = sqrt((c[2][0] - c[1][0]) * (c[2][0] - c[1][0]) + (c[2][1] - c[1][1]) * (c[2][1] - c[1][1]));
    double size = floor(((d0 + d1) / 2) / 0.45); /* relScale */
    double rx, ry;
    centre((const double(*)[2])c, 0, 3, &rx, &ry);
    double x = floor(fmax(0.0, rx - 0.5 * size)), y = floor(fmax(0.0, ry - 0.43 * size)); /* relX, relY */
    box->x = x, box->y = y;
    box->w = fmin(size, crop_w + x), box->h = fmin(size, crop_h + y);
}

void mdl_fa_landmarks(const float *raw, const struct mdl_fa_rect *crop, const struct mdl_fa_box *det,
                      double pts[MDL_FACE_LANDMARKS][2])
{
    /* postProcess: the crop was padded to a centred square and resized to 112; face-api
     * undoes it with the unrounded scaled size (float32 tensors) */
    double scale = (double)MDL_FA_HEAD_SIDE / (double)(crop->w > crop->h ? crop->w : crop->h);
    double sw = crop->w * scale, sh = crop->h * scale;
    float pad_x = (float)(sw < sh ? fabs(sw - sh) / 2 : 0.0), pad_y = (float)(sh < sw ? fabs(sw - sh) / 2 : 0.0);
    float fw = (float)sw, fh = (float)sh, side = (float)MDL_FA_HEAD_SIDE;
    for (int i = 0; i < MDL_FACE_LANDMARKS; i++) {
        float rx = (raw[2 * i] * side - pad_x) / fw, ry = (raw[2 * i + 1] * side - pad_y) / fh;
        /* FaceLandmarks: relative * crop size, shifted by the detection box's corner */
        pts[i][0] = (double)rx * crop->w + det->x;
        pts[i][1] = (double)ry * crop->h + det->y;
    }
}

void mdl_fa_align(const double pts[MDL_FACE_LANDMARKS][2], int img_w, int img_h, struct mdl_fa_box *aligned)
{
    /* minBbox (its maxima start at 0, as face-api's do) */
    double minx = INFINITY, miny = INFINITY, maxx = 0, maxy = 0;
    for (int i = 0; i < MDL_FACE_LANDMARKS; i++) {
        if (pts[i][0] < minx)
            minx = pts[i][0];
        if (pts[i][1] < miny)
            miny = pts[i][1];
        if (maxx < pts[i][0])
            maxx = pts[i][0];
        if (maxy < pts[i][1])
            maxy = pts[i][1];
    }
    double w = maxx - minx, h = maxy - miny;
    double px = w * 0.2, py = h * 0.2; /* alignMinBbox(minBoxPadding = 0.2) */
    double x = minx - px / 2, y = miny - py / 2;
    w += px, h += py;
    /* new FaceDetection(score, rect.rescale(imageDims.reverse()), imageDims) */
    aligned->x = round_trip(x, img_w);
    aligned->y = round_trip(y, img_h);
    aligned->w = round_trip(w, img_w);
    aligned->h = round_trip(h, img_h);
}
