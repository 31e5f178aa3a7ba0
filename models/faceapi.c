/* faceapi.c: the faceapi family: its manifest, the seven networks, the face pipeline (detect -> crop -> heads) and verification. */
#include "models/faceapi.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "models/faceapi_detect.h"
#include "models/faceapi_image.h"
#include "models/faceapi_nets.h"
#include "models/families.h"

const char *const mdl_face_expression_labels[MDL_FACE_EXPRESSIONS] = {"neutral", "happy",     "sad",      "angry",
                                                                      "fearful", "disgusted", "surprised"};
const char *const mdl_face_gender_labels[2] = {"female", "male"};
const char *const mdl_face_net_names[MDL_FACE_NNETS] = {
    "ssd_mobilenetv1", "tiny_face_detector", "face_landmark_68", "face_landmark_68_tiny",
    "face_recognition", "face_expression", "age_gender",
};

/* face-api's own file names: <name>_model-weights_manifest.json. */
static const char *const default_weights[MDL_FACE_NNETS] = {
    "ssd_mobilenetv1_model-weights_manifest.json",  "tiny_face_detector_model-weights_manifest.json",
    "face_landmark_68_model-weights_manifest.json", "face_landmark_68_tiny_model-weights_manifest.json",
    "face_recognition_model-weights_manifest.json", "face_expression_model-weights_manifest.json",
    "age_gender_model-weights_manifest.json",
};

const char *const mdl_face_cam_labels[MDL_FACE_CAMS] = {"neutral", "happy",   "sad",    "angry", "fearful",
                                                        "disgusted", "surprised", "female", "male", "age"};
#define CAM_FEMALE 7
#define CAM_MALE 8
#define CAM_AGE 9

/* The taps a manifest's attention layers may name: the nets that see the aligned crop. */
static const struct {
    enum mdl_face_net net;
    const char *tap;
} map_taps[] = {
    {MDL_FACE_NET_EXPRESSION, "dense0"},     {MDL_FACE_NET_EXPRESSION, "dense1"},
    {MDL_FACE_NET_EXPRESSION, "dense2"},     {MDL_FACE_NET_EXPRESSION, "dense3"},
    {MDL_FACE_NET_AGE_GENDER, "entry_flow"}, {MDL_FACE_NET_AGE_GENDER, "middle_flow"},
    {MDL_FACE_NET_AGE_GENDER, "exit_flow"},
};
#define NMAP_TAPS (int)(sizeof map_taps / sizeof map_taps[0])
/* The maps the CAMs read: the last map before each head's average pool. */
#define EXPRESSION_CAM_TAP "dense3"
#define AGE_GENDER_CAM_TAP "exit_flow"

static const char *const task_names[4] = {"landmarks", "age_gender", "expression", "descriptor"};

#define DEFAULT_MAX_FACES 100
#define DEFAULT_HEAD_BATCH 16
#define MAX_HEAD_BATCH 256
#define DEFAULT_INPUT_SIZE 416
#define DEFAULT_MAX_INPUT_SIZE 608
#define MAX_INPUT_SIZE 2048
#define SSD_IOU 0.5f  /* SsdMobilenetv1.locateFaces */
#define TINY_IOU 0.4f /* TinyFaceDetector's IOU_THRESHOLD */
#define DEFAULT_SCORE 0.5f

struct fa_model {
    struct mdl_fa_net net[MDL_FACE_NNETS];
    struct mdl_face_opts defaults; /* as the manifest says; iou_threshold 0 = the detector's */
    int max_faces;                 /* per image */
    int head_batch;                /* faces per head forward */
    int max_input_size;            /* tiny detector */
    float verify_threshold;
    bool has_attention;            /* the manifest names maps */
    struct mdl_face_attention attn;
    int layer_tap[MDL_ATTN_MAX_LAYERS]; /* index into map_taps */
};

/* One face on its way through the heads. */
struct fa_job {
    const struct mdl_image *img;
    struct mdl_face *face;
    unsigned want;                /* tasks asked for this face */
    bool tiny_landmarks;
    struct mdl_fa_box det;        /* detection box, face-api's doubles */
    struct mdl_fa_rect det_crop;  /* what the landmark net sees */
    bool det_ok;
    struct mdl_fa_rect crop;      /* the aligned crop age/gender and expression see */
    bool aligned_ok;
    struct mdl_fa_rect dlib_crop; /* the dlib-aligned crop the recognition net sees */
    bool dlib_ok;
    struct mdl_face_maps *maps;   /* with opts.attention, else NULL */
};

static const struct fa_model *fa_of(const struct mdl_model *m)
{
    return m->family == &mdl_family_faceapi ? m->impl : NULL;
}

/* ---- options ---- */

int mdl_face_tasks_parse(const char *list, unsigned *tasks)
{
    unsigned t = 0;
    const char *s = list;
    if (strcmp(list, "all") == 0) {
        *tasks = MDL_FACE_TASKS_ALL;
        return 0;
    }
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        int k;
        for (k = 0; k < 4; k++)
            if (strlen(task_names[k]) == len && strncmp(s, task_names[k], len) == 0)
                break;
        if (k == 4)
            return eng_error("unknown face task '%.*s' (known: landmarks, age_gender, expression, descriptor)",
                             (int)(len > 64 ? 64 : len), s);
        t |= 1u << k;
        s += len + (e ? 1 : 0);
    }
    *tasks = t;
    return 0;
}

int mdl_face_detector_parse(const char *s, enum mdl_face_detector *d)
{
    if (strcmp(s, "ssd_mobilenetv1") == 0 || strcmp(s, "ssd") == 0)
        *d = MDL_FACE_SSD;
    else if (strcmp(s, "tiny_face_detector") == 0 || strcmp(s, "tiny") == 0)
        *d = MDL_FACE_TINY;
    else
        return eng_error("unknown face detector '%.64s' (known: ssd_mobilenetv1, tiny_face_detector)", s);
    return 0;
}

const char *mdl_face_detector_name(enum mdl_face_detector d)
{
    return d == MDL_FACE_TINY ? "tiny_face_detector" : "ssd_mobilenetv1";
}

int mdl_face_net_parse(const char *s, enum mdl_face_net *net)
{
    for (int i = 0; i < MDL_FACE_NNETS; i++)
        if (strcmp(s, mdl_face_net_names[i]) == 0) {
            *net = (enum mdl_face_net)i;
            return 0;
        }
    return eng_error("unknown face network '%.64s' (known: ssd_mobilenetv1, tiny_face_detector, face_landmark_68, "
                     "face_landmark_68_tiny, face_recognition, face_expression, age_gender)",
                     s);
}

static int check_opts(const struct fa_model *fa, struct mdl_face_opts *o)
{
    if (o->detector != MDL_FACE_SSD && o->detector != MDL_FACE_TINY)
        return eng_error("unknown face detector %d", (int)o->detector);
    enum mdl_face_net det = o->detector == MDL_FACE_SSD ? MDL_FACE_NET_SSD : MDL_FACE_NET_TINY;
    if (!fa->net[det].loaded)
        return eng_error("this model has no %s weights", mdl_face_net_names[det]);
    if (o->input_size == 0)
        o->input_size = fa->defaults.input_size;
    if (o->detector == MDL_FACE_TINY && (o->input_size % 32 || o->input_size < 32 || o->input_size > fa->max_input_size))
        return eng_error("input_size %d is not a multiple of 32 in 32..%d", o->input_size, fa->max_input_size);
    if (o->score_threshold == 0)
        o->score_threshold = fa->defaults.score_threshold;
    if (!(o->score_threshold > 0 && o->score_threshold < 1))
        return eng_error("score_threshold %g is outside (0, 1)", (double)o->score_threshold);
    if (o->iou_threshold == 0)
        o->iou_threshold = fa->defaults.iou_threshold ? fa->defaults.iou_threshold
                           : o->detector == MDL_FACE_SSD ? SSD_IOU
                                                         : TINY_IOU;
    if (!(o->iou_threshold > 0 && o->iou_threshold <= 1))
        return eng_error("iou_threshold %g is outside (0, 1]", (double)o->iou_threshold);
    if (o->max_faces == 0)
        o->max_faces = fa->max_faces;
    if (o->max_faces < 1 || o->max_faces > fa->max_faces)
        return eng_error("max_faces %d is outside 1..%d", o->max_faces, fa->max_faces);
    if (o->tasks & ~MDL_FACE_TASKS_ALL)
        return eng_error("unknown face task bits 0x%x", o->tasks);
    if (o->attention && !fa->has_attention)
        return eng_error("this face model has no attention maps (its manifest has no \"attention\")");
    static const enum mdl_face_net need[4] = {MDL_FACE_NET_LANDMARKS, MDL_FACE_NET_AGE_GENDER, MDL_FACE_NET_EXPRESSION,
                                              MDL_FACE_NET_RECOGNITION};
    enum mdl_face_net lm = o->tiny_landmarks ? MDL_FACE_NET_LANDMARKS_TINY : MDL_FACE_NET_LANDMARKS;
    if (o->tasks && !fa->net[lm].loaded)
        return eng_error("this model has no %s weights (needed to align faces)", mdl_face_net_names[lm]);
    for (int k = 1; k < 4; k++)
        if ((o->tasks & (1u << k)) && !fa->net[need[k]].loaded)
            return eng_error("task %s needs %s weights, which this model has not", task_names[k],
                             mdl_face_net_names[need[k]]);
    return 0;
}

void mdl_face_opts_default(const struct mdl_model *m, struct mdl_face_opts *o)
{
    const struct fa_model *fa = fa_of(m);
    if (fa)
        *o = fa->defaults;
    else
        *o = (struct mdl_face_opts){.detector = MDL_FACE_SSD, .tasks = MDL_FACE_TASKS_ALL};
}

int mdl_face_opts_check(const struct mdl_model *m, struct mdl_face_opts *o)
{
    const struct fa_model *fa = fa_of(m);
    if (!fa)
        return eng_error("model '%s' is not a face model (family %s)", m->manifest.name, m->family->name);
    return check_opts(fa, o);
}

int mdl_face_max_faces(const struct mdl_model *m)
{
    const struct fa_model *fa = fa_of(m);
    return fa ? fa->max_faces : 0;
}

int mdl_face_head_batch(const struct mdl_model *m)
{
    const struct fa_model *fa = fa_of(m);
    return fa ? fa->head_batch : 0;
}

bool mdl_face_has_net(const struct mdl_model *m, enum mdl_face_net net)
{
    const struct fa_model *fa = fa_of(m);
    return fa && (int)net >= 0 && net < MDL_FACE_NNETS && fa->net[net].loaded;
}

float mdl_face_distance(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < MDL_FACE_DESCRIPTOR; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return (float)sqrt(s);
}

/* ---- load ---- */

/* Optional integer manifest field in lo..hi. */
static int get_int(json_t *j, const char *key, int def, int lo, int hi, int *out)
{
    json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return eng_error("'%s' must be an integer in %d..%d", key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

/* Optional number manifest field in (lo, hi]. */
static int get_num(json_t *j, const char *key, float def, double lo, double hi, float *out)
{
    json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v) || !(json_number_value(v) > lo && json_number_value(v) <= hi))
        return eng_error("'%s' must be a number in (%g, %g]", key, lo, hi);
    *out = (float)json_number_value(v);
    return 0;
}

static int parse_manifest(struct fa_model *fa, json_t *j)
{
    struct mdl_face_opts *d = &fa->defaults;
    *d = (struct mdl_face_opts){.detector = MDL_FACE_SSD, .tasks = MDL_FACE_TASKS_ALL};
    if (get_int(j, "max_faces", DEFAULT_MAX_FACES, 1, MDL_FACE_MAX_FACES, &fa->max_faces) < 0 ||
        get_int(j, "head_batch", DEFAULT_HEAD_BATCH, 1, MAX_HEAD_BATCH, &fa->head_batch) < 0 ||
        get_int(j, "max_input_size", DEFAULT_MAX_INPUT_SIZE, 32, MAX_INPUT_SIZE, &fa->max_input_size) < 0 ||
        get_int(j, "input_size", DEFAULT_INPUT_SIZE, 32, fa->max_input_size, &d->input_size) < 0 ||
        get_num(j, "score_threshold", DEFAULT_SCORE, 0.0, 0.999999, &d->score_threshold) < 0 ||
        get_num(j, "verify_threshold", MDL_FACE_VERIFY_THRESHOLD, 0.0, 1e6, &fa->verify_threshold) < 0)
        return -1;
    if (json_object_get(j, "iou_threshold") &&
        get_num(j, "iou_threshold", 0.0f, 0.0, 1.0, &d->iou_threshold) < 0)
        return -1;
    if (fa->max_input_size % 32 || d->input_size % 32)
        return eng_error("'input_size' and 'max_input_size' must be multiples of 32");
    d->max_faces = fa->max_faces;
    json_t *v = json_object_get(j, "detector");
    if (v && (!json_is_string(v) || mdl_face_detector_parse(json_string_value(v), &d->detector) < 0))
        return eng_error("'detector' must be \"ssd_mobilenetv1\" or \"tiny_face_detector\"");
    v = json_object_get(j, "landmarks");
    if (v) {
        if (!json_is_string(v) || (strcmp(json_string_value(v), "full") && strcmp(json_string_value(v), "tiny")))
            return eng_error("'landmarks' must be \"full\" or \"tiny\"");
        d->tiny_landmarks = strcmp(json_string_value(v), "tiny") == 0;
    }
    v = json_object_get(j, "tasks");
    if (v) {
        if (!json_is_array(v))
            return eng_error("'tasks' must be a list of landmarks, age_gender, expression, descriptor");
        d->tasks = 0;
        size_t i;
        json_t *t;
        json_array_foreach(v, i, t)
        {
            unsigned bits;
            if (!json_is_string(t) || strchr(json_string_value(t), ',') ||
                mdl_face_tasks_parse(json_string_value(t), &bits) < 0)
                return eng_error("'tasks' must be a list of landmarks, age_gender, expression, descriptor");
            d->tasks |= bits;
        }
    }
    return 0;
}

/* The manifest's "attention": {"layers": ["face_expression/dense3", ...], "cam": "linear" | "none"}.
 * Grids come from the dry run (fa_dry_run). */
static int parse_attention(struct fa_model *fa, json_t *j)
{
    json_t *obj = json_object_get(j, "attention");
    struct mdl_face_attention *a = &fa->attn;
    memset(a, 0, sizeof *a);
    if (!obj)
        return 0;
    if (!json_is_object(obj))
        return eng_error("'attention' must be an object {\"layers\": [...], \"cam\": \"linear\" | \"none\"}");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "layers") && strcmp(key, "cam"))
            return eng_error("attention.%s: unknown field (a face model takes layers and cam)", key);
    }
    json_t *layers = json_object_get(obj, "layers");
    if (layers && !json_is_array(layers))
        return eng_error("attention.layers must be a list of tap names");
    size_t i;
    json_array_foreach(layers, i, v)
    {
        const char *name = json_string_value(v);
        int t = 0;
        char full[64] = "";
        for (; name && t < NMAP_TAPS; t++) {
            snprintf(full, sizeof full, "%s/%s", mdl_face_net_names[map_taps[t].net], map_taps[t].tap);
            if (strcmp(full, name) == 0)
                break;
        }
        if (!name || t == NMAP_TAPS)
            return eng_error("attention.layers[%zu] must be one of face_expression/dense0..dense3, "
                             "age_gender/entry_flow, age_gender/middle_flow, age_gender/exit_flow "
                             "(the nets that see the aligned face crop)", i);
        if (!fa->net[map_taps[t].net].loaded)
            return eng_error("attention.layers: '%s' needs %s weights, which this model has not", name,
                             mdl_face_net_names[map_taps[t].net]);
        if (a->nlayers == MDL_ATTN_MAX_LAYERS)
            return eng_error("attention.layers: more than %d", MDL_ATTN_MAX_LAYERS);
        fa->layer_tap[a->nlayers] = t;
        snprintf(a->layer[a->nlayers++], sizeof a->layer[0], "%s", full);
    }
    v = json_object_get(obj, "cam");
    if (v && (!json_is_string(v) || (strcmp(json_string_value(v), "linear") && strcmp(json_string_value(v), "none"))))
        return eng_error("attention.cam must be \"linear\" (exact: both heads are average pool + linear) or \"none\"");
    a->cam = !v || strcmp(json_string_value(v), "linear") == 0;
    for (int k = 0; k < MDL_FACE_CAMS; k++)
        a->has_cam[k] = a->cam && fa->net[k < CAM_FEMALE ? MDL_FACE_NET_EXPRESSION : MDL_FACE_NET_AGE_GENDER].loaded;
    fa->has_attention = a->nlayers > 0 || a->cam;
    return 0;
}

const struct mdl_face_attention *mdl_face_attention(const struct mdl_model *m)
{
    const struct fa_model *fa = fa_of(m);
    return fa && fa->has_attention ? &fa->attn : NULL;
}

static void fa_free(struct mdl_model *m)
{
    struct fa_model *fa = m->impl;
    if (!fa)
        return;
    for (int i = 0; i < MDL_FACE_NNETS; i++)
        if (fa->net[i].loaded)
            mdl_fa_net_free(&fa->net[i]);
    free(fa);
    m->impl = NULL;
}

static int fa_load(struct mdl_model *m)
{
    struct fa_model *fa = calloc(1, sizeof *fa);
    if (!fa)
        return eng_error("out of memory");
    m->impl = fa;
    json_t *j = m->manifest.json;
    if (parse_manifest(fa, j) < 0)
        goto fail;
    /* "weights": {net: file or null}; absent: all seven under face-api's names */
    json_t *w = json_object_get(j, "weights");
    if (w && !json_is_object(w)) {
        eng_error("'weights' must be an object {network: weights manifest file}");
        goto fail;
    }
    if (w) {
        const char *key;
        json_t *v;
        json_object_foreach(w, key, v)
        {
            enum mdl_face_net net;
            if (mdl_face_net_parse(key, &net) < 0)
                goto fail;
            if (!json_is_string(v) && !json_is_null(v)) {
                eng_error("'weights.%s' must be a file name or null", key);
                goto fail;
            }
        }
    }
    for (int i = 0; i < MDL_FACE_NNETS; i++) {
        const char *file = default_weights[i];
        if (w) {
            json_t *v = json_object_get(w, mdl_face_net_names[i]);
            file = json_is_string(v) ? json_string_value(v) : NULL;
        }
        if (!file)
            continue;
        if (strchr(file, '/')) {
            eng_error("'weights.%s': '%s' must be a file in the model's folder", mdl_face_net_names[i], file);
            goto fail;
        }
        char path[2200];
        snprintf(path, sizeof path, "%s/%s", m->dir, file);
        if (mdl_fa_net_load(&fa->net[i], (enum mdl_face_net)i, path) < 0)
            goto fail;
    }
    if (parse_attention(fa, j) < 0)
        goto fail;
    struct mdl_face_opts d = fa->defaults;
    if (check_opts(fa, &d) < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", eng_errmsg());
        eng_error("the manifest's defaults: %s", msg);
        goto fail;
    }
    m->in_h = m->in_w = 0; /* any image size */
    m->in_c = 3;
    m->nout = 0;
    return 0;
fail:
    fa_free(m);
    return -1;
}

/* ---- the pipeline ---- */

/* What a batch of n images keeps for its whole run: the options, the faces (those the caller gave
 * no buffer for), the jobs and a job list for the heads. Same calls in the dry run and a real
 * one, so the measured peak covers every batch. */
struct fa_batch {
    struct mdl_face_opts *opts;
    struct fa_job *jobs;
    struct fa_job **list;
    int njobs;
};

static int batch_alloc(struct eng_arena *act, int n, int total_faces, struct fa_batch *b)
{
    b->opts = eng_arena_alloc(act, (size_t)n * sizeof *b->opts);
    b->jobs = eng_arena_alloc(act, (size_t)(total_faces ? total_faces : 1) * sizeof *b->jobs);
    b->list = eng_arena_alloc(act, (size_t)(total_faces ? total_faces : 1) * sizeof *b->list);
    b->njobs = 0;
    return b->opts && b->jobs && b->list ? 0 : -1;
}

/* Detect on one image (NULL: dry run on zeros at the detector's largest input) into boxes and
 * scores (cap entries). Returns the count or -1. */
static int detect(const struct fa_model *fa, struct eng_ctx *ctx, struct eng_arena *act, const struct mdl_image *img,
                  const struct mdl_face_opts *o, struct mdl_fa_box *boxes, float *scores, int cap)
{
    enum mdl_face_net kind = o->detector == MDL_FACE_SSD ? MDL_FACE_NET_SSD : MDL_FACE_NET_TINY;
    int side = kind == MDL_FACE_NET_SSD ? MDL_FA_SSD_SIDE : o->input_size;
    size_t mark = eng_arena_mark(act);
    int found = -1;
    float *x = eng_arena_floats(act, (size_t)side * side * 3);
    float *raw = eng_arena_floats(act, (size_t)mdl_face_net_outputs(kind, side));
    if (!x || !raw)
        goto out;
    int w = img ? img->width : side, h = img ? img->height : side;
    if (img) {
        struct mdl_fa_rect whole = {0, 0, w, h};
        mdl_fa_sample(ctx, img, &whole, false, side, x);
    } else {
        /* not zeros: the SSD skips rows of zeros (face-api's padding), the dry run must not */
        for (size_t i = 0; i < (size_t)side * side * 3; i++)
            x[i] = 128.0f;
    }
    struct eng_tensor t = eng_tensor_make("input", x, 4, (int64_t[]){1, side, side, 3});
    if (mdl_fa_net_forward(&fa->net[kind], ctx, act, &t, raw, NULL) < 0)
        goto out;
    found = kind == MDL_FACE_NET_SSD
                ? mdl_fa_ssd_detect(act, raw, w, h, o->score_threshold, o->iou_threshold, cap, boxes, scores)
                : mdl_fa_tiny_detect(act, raw, side, w, h, o->score_threshold, o->iou_threshold, cap, boxes, scores);
out:
    eng_arena_rewind(act, mark);
    return found;
}

/* ---- attention maps, from the heads' taps ---- */

/* What a head forward's tap callback needs: the rows' map buffers, or (dry run) where to record
 * the grids. */
struct fa_taps {
    const struct fa_model *fa;
    enum mdl_face_net kind;
    struct mdl_face_maps **maps;       /* per row (NULL: that face wants none) */
    struct mdl_face_attention *record; /* dry run: record the grids here instead */
    int cnt;
};

/* One CAM: label k is row `row` of the linear layer lin applied to the map. */
static void cam_rows(struct fa_taps *T, int k, const struct eng_linear *lin, int row, const struct eng_tensor *t)
{
    const struct mdl_face_attention *a = &T->fa->attn;
    int h = (int)t->ne[1], w = (int)t->ne[2];
    if (T->record) {
        T->record->cam_h[k] = h, T->record->cam_w[k] = w;
        return;
    }
    for (int r = 0; r < T->cnt; r++)
        if (T->maps[r]) {
            mdl_attn_linear_map(t, r, h, w, lin->w + row, (size_t)lin->out, lin->bias ? lin->bias[row] : 0.0f,
                                T->maps[r]->buf + a->cam_off[k]);
            T->maps[r]->cams |= 1u << k;
        }
}

static void face_tap(void *user, const char *name, const struct eng_tensor *t)
{
    struct fa_taps *T = user;
    const struct fa_model *fa = T->fa;
    const struct mdl_face_attention *a = &fa->attn;
    if (t->ndim != 4)
        return;
    int h = (int)t->ne[1], w = (int)t->ne[2];
    for (int l = 0; l < a->nlayers; l++) {
        int tp = fa->layer_tap[l];
        if (map_taps[tp].net != T->kind || strcmp(map_taps[tp].tap, name) != 0)
            continue;
        if (T->record) {
            T->record->layer_h[l] = h, T->record->layer_w[l] = w;
            continue;
        }
        for (int r = 0; r < T->cnt; r++)
            if (T->maps[r]) {
                mdl_attn_energy(t, r, h, w, T->maps[r]->buf + a->layer_off[l]);
                T->maps[r]->layers |= 1u << l;
            }
    }
    if (!a->cam)
        return;
    if (T->kind == MDL_FACE_NET_EXPRESSION && strcmp(name, EXPRESSION_CAM_TAP) == 0) {
        for (int k = 0; k < MDL_FACE_EXPRESSIONS; k++)
            cam_rows(T, k, &fa->net[MDL_FACE_NET_EXPRESSION].u.dense.fc, k, t);
    } else if (T->kind == MDL_FACE_NET_AGE_GENDER && strcmp(name, AGE_GENDER_CAM_TAP) == 0) {
        const struct mdl_fa_xception *xc = &fa->net[MDL_FACE_NET_AGE_GENDER].u.xc;
        cam_rows(T, CAM_MALE, &xc->gender, 0, t); /* face-api's gender logits: male, female */
        cam_rows(T, CAM_FEMALE, &xc->gender, 1, t);
        cam_rows(T, CAM_AGE, &xc->age, 0, t);
    }
}

/* Normalise the layer maps a face got and weigh them among themselves. */
static void finish_maps(const struct mdl_face_attention *a, struct mdl_face_maps *mp)
{
    float *maps[MDL_ATTN_MAX_LAYERS] = {0}, w[MDL_ATTN_MAX_LAYERS] = {0};
    int cells[MDL_ATTN_MAX_LAYERS] = {0}, idx[MDL_ATTN_MAX_LAYERS] = {0}, n = 0;
    for (int l = 0; l < a->nlayers; l++)
        if (mp->layers & (1u << l)) {
            maps[n] = mp->buf + a->layer_off[l];
            cells[n] = a->layer_h[l] * a->layer_w[l];
            idx[n++] = l;
        }
    mdl_attn_normalise(maps, cells, n, w);
    memset(mp->weight, 0, sizeof mp->weight);
    for (int i = 0; i < n; i++)
        mp->weight[idx[i]] = w[i];
}

/* The square the heads' 112 x 112 input covers: crop r padded centred, as mdl_fa_sample pads it. */
static void map_box(const struct mdl_fa_rect *r, float box[4])
{
    int side = r->w > r->h ? r->w : r->h, before = (side - (r->w < r->h ? r->w : r->h)) / 2;
    box[0] = (float)(r->x - (r->h > r->w ? before : 0));
    box[1] = (float)(r->y - (r->w > r->h ? before : 0));
    box[2] = box[3] = (float)side;
}

/* One head forward over cnt jobs (dry: cnt zero inputs), results into the jobs' faces. */
static int head_chunk(const struct fa_model *fa, struct eng_ctx *ctx, struct eng_arena *act, enum mdl_face_net kind,
                      struct fa_job **jobs, int cnt, bool dry, struct mdl_face_attention *record)
{
    int side = kind == MDL_FACE_NET_RECOGNITION ? MDL_FA_RECOGNITION_SIDE : MDL_FA_HEAD_SIDE;
    int64_t per = mdl_face_net_outputs(kind, side);
    size_t px = (size_t)side * side * 3, mark = eng_arena_mark(act);
    int rc = -1;
    float *x = eng_arena_floats(act, (size_t)cnt * px), *raw = eng_arena_floats(act, (size_t)(cnt * per));
    struct mdl_face_maps **maps = eng_arena_alloc(act, (size_t)cnt * sizeof *maps);
    if (!x || !raw || !maps)
        goto out;
    struct fa_taps T = {fa, kind, maps, record, cnt};
    bool any_maps = record != NULL;
    for (int k = 0; k < cnt && !dry; k++) {
        maps[k] = jobs[k]->maps;
        any_maps |= maps[k] != NULL;
    }
    struct mdl_output taps = {.tap = face_tap, .tap_user = &T};
    bool landmarks = kind == MDL_FACE_NET_LANDMARKS || kind == MDL_FACE_NET_LANDMARKS_TINY;
    for (int k = 0; k < cnt; k++) {
        if (dry)
            memset(x + k * px, 0, px * sizeof(float));
        else
            mdl_fa_sample(ctx, jobs[k]->img,
                          landmarks                             ? &jobs[k]->det_crop
                          : kind == MDL_FACE_NET_RECOGNITION ? &jobs[k]->dlib_crop
                                                                : &jobs[k]->crop,
                          true, side, x + k * px);
    }
    struct eng_tensor t = eng_tensor_make("faces", x, 4, (int64_t[]){cnt, side, side, 3});
    if (mdl_fa_net_forward(&fa->net[kind], ctx, act, &t, raw, any_maps && fa->has_attention ? &taps : NULL) < 0)
        goto out;
    for (int k = 0; k < cnt && !dry; k++) {
        struct fa_job *j = jobs[k];
        struct mdl_face *f = j->face;
        const float *o = raw + k * per;
        switch (kind) {
        case MDL_FACE_NET_LANDMARKS:
        case MDL_FACE_NET_LANDMARKS_TINY: {
            double pts[MDL_FACE_LANDMARKS][2];
            mdl_fa_landmarks(o, &j->det_crop, &j->det, pts);
            if (j->want & MDL_FACE_TASK_LANDMARKS) {
                for (int i = 0; i < MDL_FACE_LANDMARKS; i++)
                    f->landmarks[i][0] = (float)pts[i][0], f->landmarks[i][1] = (float)pts[i][1];
                f->has |= MDL_FACE_TASK_LANDMARKS;
            }
            struct mdl_fa_box aligned;
            mdl_fa_align(pts, j->img->width, j->img->height, &aligned);
            j->aligned_ok = mdl_fa_crop(&aligned, j->img->width, j->img->height, &j->crop);
            if (j->aligned_ok) {
                f->crop[0] = j->crop.x, f->crop[1] = j->crop.y, f->crop[2] = j->crop.w, f->crop[3] = j->crop.h;
                map_box(&j->crop, f->map_box);
            }
            mdl_fa_align_dlib(pts, j->det_crop.w, j->det_crop.h, &aligned);
            j->dlib_ok = mdl_fa_crop_rect(&aligned, j->img->width, j->img->height, &j->dlib_crop);
            break;
        }
        case MDL_FACE_NET_AGE_GENDER: {
            f->age = o[0];
            bool male = o[1] > 0.5f; /* predictAgeAndGender: probMale > 0.5 */
            f->gender = male ? MDL_FACE_MALE : MDL_FACE_FEMALE;
            f->gender_score = male ? o[1] : 1.0f - o[1];
            f->has |= MDL_FACE_TASK_AGE_GENDER;
            break;
        }
        case MDL_FACE_NET_EXPRESSION:
            memcpy(f->expression, o, sizeof f->expression);
            f->has |= MDL_FACE_TASK_EXPRESSION;
            break;
        case MDL_FACE_NET_RECOGNITION:
            memcpy(f->descriptor, o, sizeof f->descriptor);
            f->has |= MDL_FACE_TASK_DESCRIPTOR;
            break;
        default: break;
        }
    }
    rc = 0;
out:
    eng_arena_rewind(act, mark);
    return rc;
}

/* Run kind over every face that needs it, head_batch faces at a time. */
static int run_head(const struct fa_model *fa, struct eng_ctx *ctx, struct eng_arena *act, struct fa_batch *b,
                    enum mdl_face_net kind)
{
    int cnt = 0;
    for (int i = 0; i < b->njobs; i++) {
        struct fa_job *j = &b->jobs[i];
        bool take;
        switch (kind) {
        case MDL_FACE_NET_LANDMARKS: take = j->want && j->det_ok && !j->tiny_landmarks; break;
        case MDL_FACE_NET_LANDMARKS_TINY: take = j->want && j->det_ok && j->tiny_landmarks; break;
        case MDL_FACE_NET_AGE_GENDER: take = j->aligned_ok && (j->want & MDL_FACE_TASK_AGE_GENDER); break;
        case MDL_FACE_NET_EXPRESSION: take = j->aligned_ok && (j->want & MDL_FACE_TASK_EXPRESSION); break;
        case MDL_FACE_NET_RECOGNITION: take = j->dlib_ok && (j->want & MDL_FACE_TASK_DESCRIPTOR); break;
        default: take = false; break;
        }
        if (take)
            b->list[cnt++] = j;
    }
    for (int s = 0; s < cnt; s += fa->head_batch) {
        int k = cnt - s < fa->head_batch ? cnt - s : fa->head_batch;
        if (head_chunk(fa, ctx, act, kind, b->list + s, k, false, NULL) < 0)
            return -1;
    }
    return 0;
}

static int check_image(const struct mdl_image *img)
{
    if (!img->data || img->width < 1 || img->height < 1 || (img->channels != 1 && img->channels != 3) ||
        img->stride < (size_t)img->width * (size_t)img->channels)
        return eng_error("a face model takes 8-bit gray or RGB pixels (got %dx%d, %d channels)", img->width,
                         img->height, img->channels);
    return 0;
}

static int fa_run_images(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                         const struct mdl_image *images, const struct mdl_face_opts *opts, int n, struct mdl_faces *out)
{
    const struct fa_model *fa = m->impl;
    struct fa_batch b;
    int total = 0, in_arena = 0;
    /* Everything the caller can get wrong is checked before any work. */
    for (int i = 0; i < n; i++) {
        struct mdl_face_opts o = opts ? opts[i] : fa->defaults;
        if (check_opts(fa, &o) < 0 || check_image(&images[i]) < 0) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", eng_errmsg());
            return n > 1 ? eng_error("image %d: %s", i, msg) : eng_error("%s", msg);
        }
        if (out[i].faces && out[i].cap < 1)
            return eng_error("image %d: a result buffer of %d faces", i, out[i].cap);
        if (o.attention && !out[i].maps)
            return eng_error("image %d: attention maps asked for without a buffer for them", i);
        int cap = out[i].faces && out[i].cap < o.max_faces ? out[i].cap : o.max_faces;
        total += cap;
        in_arena += out[i].faces ? 0 : cap;
    }
    if (batch_alloc(act, n, total, &b) < 0)
        return -1;
    struct mdl_face *pool = eng_arena_alloc(act, (size_t)(in_arena ? in_arena : 1) * sizeof *pool);
    if (!pool)
        return -1;
    for (int i = 0; i < n; i++) {
        b.opts[i] = opts ? opts[i] : fa->defaults;
        (void)check_opts(fa, &b.opts[i]); /* passed above; this fills the defaults in */
        const struct mdl_face_opts *o = &b.opts[i];
        int cap = out[i].faces && out[i].cap < o->max_faces ? out[i].cap : o->max_faces;
        if (!out[i].faces) {
            out[i].faces = pool;
            out[i].cap = cap;
            pool += cap;
        }
        out[i].n = 0;
        size_t mark = eng_arena_mark(act);
        struct mdl_fa_box *boxes = eng_arena_alloc(act, (size_t)cap * sizeof *boxes);
        float *scores = eng_arena_floats(act, (size_t)cap);
        int found = boxes && scores ? detect(fa, ctx, act, &images[i], o, boxes, scores, cap) : -1;
        for (int k = 0; k < found; k++) {
            struct mdl_face *f = &out[i].faces[k];
            memset(f, 0, sizeof *f);
            f->x = (float)boxes[k].x, f->y = (float)boxes[k].y;
            f->width = (float)boxes[k].w, f->height = (float)boxes[k].h;
            f->score = scores[k];
            struct fa_job *j = &b.jobs[b.njobs++];
            *j = (struct fa_job){.img = &images[i], .face = f, .want = o->tasks, .tiny_landmarks = o->tiny_landmarks,
                                 .det = boxes[k]};
            if (o->attention) {
                f->maps.buf = out[i].maps + (size_t)k * fa->attn.floats;
                j->maps = &f->maps;
            }
            j->det_ok = mdl_fa_crop(&j->det, images[i].width, images[i].height, &j->det_crop);
        }
        eng_arena_rewind(act, mark);
        if (found < 0)
            return -1;
        out[i].n = found;
    }
    /* Landmarks first: the other heads crop around them. */
    static const enum mdl_face_net order[] = {MDL_FACE_NET_LANDMARKS, MDL_FACE_NET_LANDMARKS_TINY,
                                              MDL_FACE_NET_AGE_GENDER, MDL_FACE_NET_EXPRESSION,
                                              MDL_FACE_NET_RECOGNITION};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        if (fa->net[order[k]].loaded && run_head(fa, ctx, act, &b, order[k]) < 0)
            return -1;
    for (int i = 0; i < b.njobs; i++)
        if (b.jobs[i].maps)
            finish_maps(&fa->attn, b.jobs[i].maps);
    return 0;
}

/* The largest batch: max_batch images of max_faces faces each, every detector at its largest
 * input, every head at a full chunk. */
static int fa_dry_run(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act)
{
    struct fa_model *fa = m->impl; /* the dry run records the maps' grids */
    int n = m->max_batch, total = n * fa->max_faces;
    struct fa_batch b;
    if (batch_alloc(act, n, total, &b) < 0 || !eng_arena_alloc(act, (size_t)total * sizeof(struct mdl_face)))
        return -1;
    size_t mark = eng_arena_mark(act);
    struct mdl_fa_box *boxes = eng_arena_alloc(act, (size_t)fa->max_faces * sizeof *boxes);
    float *scores = eng_arena_floats(act, (size_t)fa->max_faces);
    if (!boxes || !scores)
        return -1;
    for (int d = 0; d < 2; d++) {
        struct mdl_face_opts o = fa->defaults;
        o.detector = d == 0 ? MDL_FACE_SSD : MDL_FACE_TINY;
        o.input_size = fa->max_input_size;
        if (!fa->net[d == 0 ? MDL_FACE_NET_SSD : MDL_FACE_NET_TINY].loaded)
            continue;
        if (check_opts(fa, &o) < 0 || detect(fa, ctx, act, NULL, &o, boxes, scores, fa->max_faces) < 0)
            return -1;
    }
    eng_arena_rewind(act, mark);
    struct mdl_face_attention *a = &fa->attn;
    for (int k = MDL_FACE_NET_LANDMARKS; k < MDL_FACE_NNETS; k++)
        if (fa->net[k].loaded &&
            head_chunk(fa, ctx, act, (enum mdl_face_net)k, b.list, fa->head_batch, true, fa->has_attention ? a : NULL) < 0)
            return -1;
    /* Lay out a face's buffer from the grids the taps showed. */
    size_t off = 0;
    for (int l = 0; l < a->nlayers; l++) {
        if (a->layer_h[l] < 1)
            return eng_error("attention layer '%s': its net offered no such map", a->layer[l]);
        a->layer_off[l] = off;
        off += (size_t)a->layer_h[l] * (size_t)a->layer_w[l];
    }
    for (int k = 0; k < MDL_FACE_CAMS; k++)
        if (a->has_cam[k]) {
            a->cam_off[k] = off;
            off += (size_t)a->cam_h[k] * (size_t)a->cam_w[k];
        }
    a->floats = off;
    return 0;
}

const struct mdl_family mdl_family_faceapi = {.name = "faceapi", .load = fa_load, .free = fa_free};
const struct mdl_image_ops mdl_faceapi_image_ops = {fa_run_images, fa_dry_run};

/* ---- verification and single networks ---- */

int mdl_face_verify(const struct mdl_model *m, struct mdl_runner *r, const struct mdl_image *a,
                    const struct mdl_image *b, const struct mdl_face_opts *opts, float threshold,
                    struct mdl_face_verify *out)
{
    const struct fa_model *fa = fa_of(m);
    if (!fa)
        return eng_error("model '%s' is not a face model (family %s)", m->manifest.name, m->family->name);
    if (isnan(threshold) || isinf(threshold))
        return eng_error("threshold must be a finite number");
    struct mdl_face_opts o = opts ? *opts : fa->defaults;
    o.tasks = MDL_FACE_TASK_DESCRIPTOR;
    o.max_faces = 1; /* both NMS variants keep the best-scoring box first */
    if (check_opts(fa, &o) < 0)
        return -1;
    memset(out, 0, sizeof *out);
    out->threshold = threshold > 0 ? threshold : fa->verify_threshold;
    out->distance = NAN;
    struct mdl_image imgs[2] = {*a, *b};
    struct mdl_face_opts os[2] = {o, o};
    struct mdl_faces res[2] = {{&out->face[0], 1, 0, NULL}, {&out->face[1], 1, 0, NULL}};
    if (m->max_batch >= 2) {
        if (mdl_model_run_images(m, r, imgs, os, 2, res) < 0)
            return -1;
    } else if (mdl_model_run_images(m, r, &imgs[0], &os[0], 1, &res[0]) < 0 ||
               mdl_model_run_images(m, r, &imgs[1], &os[1], 1, &res[1]) < 0) {
        return -1;
    }
    for (int i = 0; i < 2; i++)
        out->found[i] = res[i].n > 0 && (out->face[i].has & MDL_FACE_TASK_DESCRIPTOR);
    if (out->found[0] && out->found[1]) {
        out->distance = mdl_face_distance(out->face[0].descriptor, out->face[1].descriptor);
        out->same_person = out->distance < out->threshold;
    }
    return 0;
}

int mdl_face_net_side(const struct mdl_model *m, enum mdl_face_net net, int input_size)
{
    switch (net) {
    case MDL_FACE_NET_SSD: return MDL_FA_SSD_SIDE;
    case MDL_FACE_NET_TINY: {
        const struct fa_model *fa = fa_of(m);
        return input_size ? input_size : fa ? fa->defaults.input_size : DEFAULT_INPUT_SIZE;
    }
    case MDL_FACE_NET_RECOGNITION: return MDL_FA_RECOGNITION_SIDE;
    default: return MDL_FA_HEAD_SIDE;
    }
}

int64_t mdl_face_net_outputs(enum mdl_face_net net, int side)
{
    switch (net) {
    case MDL_FACE_NET_SSD: return (int64_t)MDL_FA_SSD_ANCHORS * 5;
    case MDL_FACE_NET_TINY: return (int64_t)(side / 32) * (side / 32) * MDL_FA_TINY_ANCHORS * 5;
    case MDL_FACE_NET_LANDMARKS:
    case MDL_FACE_NET_LANDMARKS_TINY: return 2 * MDL_FACE_LANDMARKS;
    case MDL_FACE_NET_RECOGNITION: return MDL_FACE_DESCRIPTOR;
    case MDL_FACE_NET_EXPRESSION: return MDL_FACE_EXPRESSIONS;
    case MDL_FACE_NET_AGE_GENDER: return 3;
    default: return 0;
    }
}

static int net_run(const struct mdl_model *m, struct mdl_runner *r, enum mdl_face_net net, const float *x, int n,
                   int side, float *out, struct mdl_face_maps *maps)
{
    const struct fa_model *fa = fa_of(m);
    if (!fa)
        return eng_error("model '%s' is not a face model (family %s)", m->manifest.name, m->family->name);
    if ((int)net < 0 || net >= MDL_FACE_NNETS || !fa->net[net].loaded)
        return eng_error("model '%s' has no face network %d", m->manifest.name, (int)net);
    bool detector = net == MDL_FACE_NET_SSD || net == MDL_FACE_NET_TINY;
    if (n < 1 || (!detector && n > fa->head_batch))
        return eng_error("%s: %d images, allowed 1..%d", mdl_face_net_names[net], n, detector ? INT32_MAX : fa->head_batch);
    if (net == MDL_FACE_NET_TINY ? side % 32 || side < 32 || side > fa->max_input_size
                                 : side != mdl_face_net_side(m, net, 0))
        return eng_error("%s: input side %d is not what it takes", mdl_face_net_names[net], side);
    if (maps && (!fa->has_attention || (net != MDL_FACE_NET_EXPRESSION && net != MDL_FACE_NET_AGE_GENDER)))
        return eng_error("%s: no attention maps (the manifest's maps are of face_expression and age_gender)",
                         mdl_face_net_names[net]);
    eng_arena_reset(&r->act);
    eng_arena_reset(&r->ctx.scratch);
    size_t px = (size_t)side * side * 3;
    int64_t per = mdl_face_net_outputs(net, side);
    int step = detector ? 1 : n;
    struct mdl_face_maps *rows[MAX_HEAD_BATCH];
    struct fa_taps T = {fa, net, rows, NULL, n};
    struct mdl_output taps = {.tap = face_tap, .tap_user = &T};
    for (int i = 0; maps && i < n; i++) {
        rows[i] = &maps[i];
        maps[i].layers = maps[i].cams = 0;
    }
    for (int i = 0; i < n; i += step) {
        size_t mark = eng_arena_mark(&r->act);
        float *buf = eng_arena_floats(&r->act, (size_t)step * px);
        if (!buf)
            return -1;
        memcpy(buf, x + (size_t)i * px, (size_t)step * px * sizeof(float));
        struct eng_tensor t = eng_tensor_make("input", buf, 4, (int64_t[]){step, side, side, 3});
        if (mdl_fa_net_forward(&fa->net[net], &r->ctx, &r->act, &t, out + (size_t)i * (size_t)per, maps ? &taps : NULL) <
            0)
            return -1;
        eng_arena_rewind(&r->act, mark);
    }
    for (int i = 0; maps && i < n; i++)
        finish_maps(&fa->attn, &maps[i]);
    return 0;
}

int mdl_face_net_run(const struct mdl_model *m, struct mdl_runner *r, enum mdl_face_net net, const float *x, int n,
                     int side, float *out)
{
    return net_run(m, r, net, x, n, side, out, NULL);
}

int mdl_face_net_run_maps(const struct mdl_model *m, struct mdl_runner *r, enum mdl_face_net net, const float *x,
                          int n, int side, float *out, struct mdl_face_maps *maps)
{
    if (!maps)
        return eng_error("mdl_face_net_run_maps: no maps");
    return net_run(m, r, net, x, n, side, out, maps);
}
