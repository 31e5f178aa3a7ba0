/* test_faceapi.c: the faceapi family's own pieces without weights: face-api's padding + resize from pixels, box decoding and both NMS variants, crops, alignment, options, bad manifests. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/resize.h"
#include "models/faceapi.h"
#include "models/faceapi_detect.h"
#include "models/faceapi_image.h"
#include "models/faceapi_nets.h"
#include "models/model.h"
#include "tests/unit/fixture.h"

static char tmpdir[] = "/tmp/salient-faceapi-XXXXXX";

/* ---- padToSquare + resizeBilinear, read from pixels ---- */

/* The reference: build the padded square as face-api does (tf.concat of zeros), then the
 * engine's tf_bilinear resize. */
static void reference_sample(const struct mdl_image *img, const struct mdl_fa_rect *r, bool centre, int side,
                             float *dst)
{
    int sq = r->w > r->h ? r->w : r->h, diff = abs(r->w - r->h);
    int after = centre ? (int)floor(diff * 0.5 + 0.5) : diff, before = diff - after;
    int top = r->w > r->h ? before : 0, left = r->h > r->w ? before : 0;
    float *pad = calloc((size_t)sq * sq * 3, sizeof(float));
    ck_assert_ptr_nonnull(pad);
    for (int y = 0; y < r->h; y++)
        for (int x = 0; x < r->w; x++)
            for (int c = 0; c < 3; c++) {
                const uint8_t *p = img->data + (size_t)(r->y + y) * img->stride + (size_t)(r->x + x) * img->channels;
                pad[((size_t)(top + y) * sq + left + x) * 3 + c] = p[img->channels == 3 ? c : 0];
            }
    struct eng_ctx ctx;
    ck_assert_int_eq(eng_ctx_init(&ctx, 1, eng_resize_scratch_bytes(ENG_RESIZE_TF_BILINEAR, false, 1, sq, sq, 3, side, side)), 0);
    struct eng_tensor x = eng_tensor_make("padded", pad, 4, (int64_t[]){1, sq, sq, 3});
    struct eng_tensor y = eng_tensor_make("resized", dst, 4, (int64_t[]){1, side, side, 3});
    ck_assert_msg(eng_resize(&ctx, ENG_RESIZE_TF_BILINEAR, false, &x, &y) == 0, "%s", eng_errmsg());
    eng_ctx_free(&ctx);
    free(pad);
}

static const struct {
    int channels, x, y, w, h;
    bool centre;
    int side;
} sample_cases[] = {
    {3, 0, 0, 37, 23, false, 16},  /* detector: landscape, padded below, downscaled */
    {3, 0, 0, 23, 37, false, 64},  /* portrait, padded right, upscaled */
    {3, 5, 3, 20, 13, true, 112},  /* a face crop: centred, odd difference */
    {3, 2, 1, 12, 19, true, 7},    /* centred the other way */
    {1, 4, 4, 9, 9, true, 9},      /* gray, square, same size: a copy */
    {3, 1, 2, 30, 20, true, 150},
};

START_TEST(sample_matches_padded_resize)
{
    int W = 37, H = 37;
    uint8_t *pix = malloc((size_t)W * H * 3);
    ck_assert_ptr_nonnull(pix);
    unsigned s = 12345;
    for (int i = 0; i < W * H * 3; i++)
        pix[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 24);
    int ch = sample_cases[_i].channels;
    struct mdl_image img = {W, H, ch, pix, (size_t)W * ch};
    struct mdl_fa_rect r = {sample_cases[_i].x, sample_cases[_i].y, sample_cases[_i].w, sample_cases[_i].h};
    int side = sample_cases[_i].side;
    float *got = malloc((size_t)side * side * 3 * sizeof(float)), *want = malloc((size_t)side * side * 3 * sizeof(float));
    ck_assert(got && want);
    struct eng_ctx ctx;
    ck_assert_int_eq(eng_ctx_init(&ctx, 3, 0), 0);
    mdl_fa_sample(&ctx, &img, &r, sample_cases[_i].centre, side, got);
    eng_ctx_free(&ctx);
    reference_sample(&img, &r, sample_cases[_i].centre, side, want);
    double worst = 0;
    for (int i = 0; i < side * side * 3; i++)
        worst = fmax(worst, fabs((double)got[i] - want[i]));
    ck_assert_msg(worst <= 1e-4, "case %d: max |err| %g", _i, worst);
    free(got), free(want), free(pix);
}
END_TEST

/* ---- SSD decoding and NMS ---- */

static void ssd_box(float *raw, int i, float ymin, float xmin, float ymax, float xmax, float score)
{
    raw[i * 4] = ymin, raw[i * 4 + 1] = xmin, raw[i * 4 + 2] = ymax, raw[i * 4 + 3] = xmax;
    raw[MDL_FA_SSD_ANCHORS * 4 + i] = score;
}

START_TEST(ssd_nms_and_scaling)
{
    float *raw = calloc((size_t)MDL_FA_SSD_ANCHORS * 5, sizeof(float));
    ck_assert_ptr_nonnull(raw);
    ssd_box(raw, 10, 0.1f, 0.2f, 0.3f, 0.4f, 0.9f);   /* kept */
    ssd_box(raw, 20, 0.11f, 0.21f, 0.31f, 0.41f, 0.8f); /* IoU ~0.8 with the first: dropped */
    ssd_box(raw, 30, -0.1f, 0.6f, 0.2f, 1.2f, 0.6f);  /* disjoint, clipped to [0, 1] */
    ssd_box(raw, 40, 0.5f, 0.5f, 0.6f, 0.6f, 0.5f);   /* not above the threshold */
    struct eng_arena a;
    ck_assert_int_eq(eng_arena_init(&a, "work", 1 << 20), 0);
    struct mdl_fa_box boxes[4];
    float scores[4];
    /* 1000 x 500: reshaped to 512 x 256, so y doubles (the bottom half of the square is padding) */
    int n = mdl_fa_ssd_detect(&a, raw, 1000, 500, 0.5f, 0.5f, 4, boxes, scores);
    ck_assert_int_eq(n, 2);
    ck_assert_float_eq_tol(scores[0], 0.9f, 1e-7);
    ck_assert_double_eq_tol(boxes[0].x, 0.2f * 1000.0, 1e-3);
    ck_assert_double_eq_tol(boxes[0].y, 0.1f * 2.0 * 500.0, 1e-3);
    ck_assert_double_eq_tol(boxes[0].w, (0.4f - 0.2f) * 1000.0, 1e-3);
    ck_assert_double_eq_tol(boxes[0].h, (0.3f - 0.1f) * 2.0 * 500.0, 1e-3);
    ck_assert_float_eq_tol(scores[1], 0.6f, 1e-7);
    ck_assert_double_eq_tol(boxes[1].y, 0.0, 1e-9);                   /* ymin clipped at 0 */
    ck_assert_double_eq_tol(boxes[1].w, (1.0 - 0.6f) * 1000.0, 1e-3); /* xmax clipped at 1 */
    /* a looser IoU keeps the overlapping one; max_out cuts the list */
    ck_assert_int_eq(mdl_fa_ssd_detect(&a, raw, 1000, 500, 0.5f, 0.9f, 4, boxes, scores), 3);
    ck_assert_int_eq(mdl_fa_ssd_detect(&a, raw, 1000, 500, 0.5f, 0.5f, 1, boxes, scores), 1);
    ck_assert_int_eq(a.used, 0); /* work space given back */
    /* many candidates, NMS off: every one comes back, best first (the sort) */
    unsigned r = 7;
    for (int i = 0; i < MDL_FA_SSD_ANCHORS; i++)
        ssd_box(raw, i, 0.0f, 0.0f, 0.0f, 0.0f, (float)((r = r * 1103515245u + 12345u) >> 20) / 4096.0f);
    static struct mdl_fa_box many[MDL_FA_SSD_ANCHORS];
    static float many_scores[MDL_FA_SSD_ANCHORS];
    int kept = mdl_fa_ssd_detect(&a, raw, 100, 100, 0.001f, 1.0f, MDL_FA_SSD_ANCHORS, many, many_scores);
    int above = 0;
    for (int i = 0; i < MDL_FA_SSD_ANCHORS; i++)
        above += raw[MDL_FA_SSD_ANCHORS * 4 + i] > 0.001f;
    ck_assert_int_eq(kept, above);
    for (int i = 1; i < kept; i++)
        ck_assert_msg(many_scores[i - 1] >= many_scores[i], "not sorted at %d", i);
    eng_arena_free(&a);
    free(raw);
}
END_TEST

/* ---- tiny detector decoding and NMS ---- */

START_TEST(tiny_decode_and_nms)
{
    int side = 64, g = 2; /* 2 x 2 cells, 5 anchors, (x, y, w, h, score) */
    float raw[2 * 2 * 5 * 5];
    for (int i = 0; i < 100; i++)
        raw[i] = i % 5 == 4 ? -10.0f : 0.0f; /* every score sigmoid(-10) */
    float *a0 = raw + ((0 * g + 1) * 5 + 0) * 5; /* row 0, col 1, anchor 0 */
    a0[0] = 0.5f, a0[1] = -0.25f, a0[2] = 0.1f, a0[3] = -0.2f, a0[4] = 3.0f;
    float *a1 = raw + ((0 * g + 1) * 5 + 2) * 5; /* same cell, anchor 2 scaled to about the same box */
    a1[0] = 0.5f, a1[1] = -0.25f, a1[2] = (float)log(1.603231 * exp(0.1) / 2.882459);
    a1[3] = (float)log(2.094468 * exp(-0.2) / 3.518061), a1[4] = 2.0f;
    struct eng_arena a;
    ck_assert_int_eq(eng_arena_init(&a, "work", 1 << 16), 0);
    struct mdl_fa_box boxes[4];
    float scores[4];
    int n = mdl_fa_tiny_detect(&a, raw, side, 640, 480, 0.5f, 0.4f, 4, boxes, scores);
    ck_assert_int_eq(n, 1);
    double sig = 1.0 / (1.0 + exp(-3.0));
    ck_assert_float_eq_tol(scores[0], (float)sig, 1e-6);
    /* face-api: ctX = (col + sigmoid(x)) / cells * correction, w = exp(w) * anchor / cells * correction */
    double rw = 64, rh = 48, cx = 64 / rw, cy = 64 / rh;
    double ctx = ((1 + 1 / (1 + exp(-0.5))) / g) * cx, cty = ((0 + 1 / (1 + exp(0.25))) / g) * cy;
    double w = ((exp((double)0.1f) * 1.603231) / g) * cx, h = ((exp((double)-0.2f) * 2.094468) / g) * cy;
    ck_assert_double_eq_tol(boxes[0].x, (ctx - w / 2) * 640, 1e-6);
    ck_assert_double_eq_tol(boxes[0].y, (cty - h / 2) * 480, 1e-6);
    ck_assert_double_eq_tol(boxes[0].w, w * 640, 1e-6);
    ck_assert_double_eq_tol(boxes[0].h, h * 480, 1e-6);
    ck_assert_int_eq(mdl_fa_tiny_detect(&a, raw, side, 640, 480, 0.5f, 1.0f, 4, boxes, scores), 2);
    ck_assert_int_eq(mdl_fa_tiny_detect(&a, raw, side, 640, 480, 0.99f, 0.4f, 4, boxes, scores), 0);
    eng_arena_free(&a);
}
END_TEST

/* ---- crops and alignment ---- */

START_TEST(crops)
{
    struct mdl_fa_rect r;
    struct mdl_fa_box b = {-10.5, 20.7, 50.2, 30.9};
    ck_assert(mdl_fa_crop(&b, 100, 40, &r));
    /* clipped to the image (x 0, height up to the bottom), then each number floored */
    ck_assert_int_eq(r.x, 0);
    ck_assert_int_eq(r.y, 20);
    ck_assert_int_eq(r.w, 39);
    ck_assert_int_eq(r.h, 19);
    struct mdl_fa_box out = {120, 5, 10, 10};
    ck_assert(!mdl_fa_crop(&out, 100, 40, &r));
    struct mdl_fa_box thin = {10, 10, 0.5, 10};
    ck_assert(!mdl_fa_crop(&thin, 100, 40, &r));
}
END_TEST

START_TEST(alignment)
{
    double pts[MDL_FACE_LANDMARKS][2];
    for (int i = 0; i < MDL_FACE_LANDMARKS; i++)
        pts[i][0] = 100 + (i % 10) * 5, pts[i][1] = 200 + (i / 10) * 8; /* x 100..145, y 200..248 */
    struct mdl_fa_box a;
    mdl_fa_align(pts, 1000, 1000, &a);
    /* min box 45 x 48, padded by 20 % (half each side) */
    ck_assert_double_eq_tol(a.x, 100 - 4.5, 1e-9);
    ck_assert_double_eq_tol(a.y, 200 - 4.8, 1e-9);
    ck_assert_double_eq_tol(a.w, 54, 1e-9);
    ck_assert_double_eq_tol(a.h, 57.6, 1e-9);
    /* dlib: eyes 36..47 and mouth 48..67 */
    for (int i = 36; i < 42; i++)
        pts[i][0] = 100, pts[i][1] = 100;
    for (int i = 42; i < 48; i++)
        pts[i][0] = 140, pts[i][1] = 100;
    for (int i = 48; i < 68; i++)
        pts[i][0] = 120, pts[i][1] = 145;
    mdl_fa_align_dlib(pts, 300, 300, &a);
    double d = sqrt(20.0 * 20 + 45.0 * 45), size = floor(d / 0.45);
    double cx = (100 + 140 + 120) / 3.0, cy = (100 + 100 + 145) / 3.0;
    ck_assert_double_eq(a.w, size);
    ck_assert_double_eq(a.x, floor(cx - 0.5 * size));
    ck_assert_double_eq(a.y, floor(cy - 0.43 * size));
}
END_TEST

/* ---- names and options ---- */

START_TEST(names)
{
    unsigned t;
    ck_assert_int_eq(mdl_face_tasks_parse("landmarks,descriptor", &t), 0);
    ck_assert_uint_eq(t, MDL_FACE_TASK_LANDMARKS | MDL_FACE_TASK_DESCRIPTOR);
    ck_assert_int_eq(mdl_face_tasks_parse("", &t), 0);
    ck_assert_uint_eq(t, 0);
    ck_assert_int_eq(mdl_face_tasks_parse("all", &t), 0);
    ck_assert_uint_eq(t, MDL_FACE_TASKS_ALL);
    ck_assert_int_eq(mdl_face_tasks_parse("landmarks,emotion", &t), -1);
    ck_assert_msg(strstr(eng_errmsg(), "'emotion'"), "%s", eng_errmsg());
    enum mdl_face_detector d;
    ck_assert_int_eq(mdl_face_detector_parse("tiny", &d), 0);
    ck_assert_int_eq(d, MDL_FACE_TINY);
    ck_assert_int_eq(mdl_face_detector_parse("yolo", &d), -1);
    enum mdl_face_net net;
    ck_assert_int_eq(mdl_face_net_parse("face_recognition", &net), 0);
    ck_assert_int_eq(net, MDL_FACE_NET_RECOGNITION);
    ck_assert_int_eq(mdl_face_net_outputs(MDL_FACE_NET_TINY, 416), 13 * 13 * 25);
    float a[MDL_FACE_DESCRIPTOR] = {0}, b[MDL_FACE_DESCRIPTOR] = {0};
    a[0] = 3, b[5] = 4;
    ck_assert_float_eq_tol(mdl_face_distance(a, b), 5.0f, 1e-6);
}
END_TEST

/* A faceapi model folder whose manifest is bad: load fails with the reason. */
static const struct {
    const char *manifest, *want;
} bad_cases[] = {
    {"{\"family\": \"faceapi\", \"weights\": {\"face_expression\": \"missing-weights_manifest.json\"}}",
     "missing-weights_manifest.json"},
    {"{\"family\": \"faceapi\", \"weights\": {}}", "no ssd_mobilenetv1 weights"},
    {"{\"family\": \"faceapi\", \"weights\": {\"yolo\": \"x.json\"}}", "unknown face network 'yolo'"},
    {"{\"family\": \"faceapi\", \"max_faces\": 0}", "'max_faces' must be an integer in 1..1000"},
    {"{\"family\": \"faceapi\", \"detector\": \"yolo\"}", "'detector' must be"},
    {"{\"family\": \"faceapi\", \"tasks\": [\"landmarks\", \"emotion\"]}", "'tasks' must be a list"},
    {"{\"family\": \"faceapi\", \"input_size\": 400}", "multiples of 32"},
};

START_TEST(bad_manifest)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/bad%d", tmpdir, _i);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    fx_write_file(dir, "manifest.json", bad_cases[_i].manifest, strlen(bad_cases[_i].manifest), path, sizeof path);
    struct mdl_model *m = mdl_model_load(dir, "faces", 1);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(eng_errmsg(), bad_cases[_i].want) && strncmp(eng_errmsg(), "model 'faces': ", 15) == 0,
                  "case %d: %s", _i, eng_errmsg());
}
END_TEST

int main(void)
{
    fx_tmpdir_make(tmpdir);
    TCase *tc = tcase_create("faceapi");
    tcase_add_loop_test(tc, sample_matches_padded_resize, 0, (int)(sizeof sample_cases / sizeof sample_cases[0]));
    tcase_add_test(tc, ssd_nms_and_scaling);
    tcase_add_test(tc, tiny_decode_and_nms);
    tcase_add_test(tc, crops);
    tcase_add_test(tc, alignment);
    tcase_add_test(tc, names);
    tcase_add_loop_test(tc, bad_manifest, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    int rc = fx_run(suite_with(tc, "faceapi"));
    fx_tmpdir_remove(tmpdir);
    return rc;
}
