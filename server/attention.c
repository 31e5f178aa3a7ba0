/* attention.c: attention maps and overlays as JSON (see attention.h). */
#include "config.h"
#include "server/attention.h"

#include <stdio.h>
#include <stdlib.h>

#include "models/preprocess.h"
#include "server/base64.h"
#include "server/overlay.h"

static json_t *floats(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_real((double)v[i]));
    return a;
}

/* {"of": what, "png": base64} of map (lying on box) over the part rect of img, or NULL (OOM). */
static json_t *overlay_rect(const struct srv_image *img, const double box[4], const int rect[4], const char *what,
                            const float *map, int gh, int gw)
{
    size_t len, blen;
    uint8_t *png = srv_overlay_png_rect(img, map, gh, gw, box, rect, &len);
    char *b64 = png ? srv_base64_encode(png, len, &blen) : NULL;
    free(png);
    if (!b64)
        return NULL;
    json_t *o = json_pack("{s:s, s:s}", "of", what, "png", b64);
    free(b64);
    return o;
}

/* The same over the whole of image i, where the preprocessing put the network's input. */
static json_t *overlay(const struct srv_infer *inf, int i, const char *what, const float *map, int gh, int gw)
{
    const struct srv_image *img = &inf->decoded[i];
    double box[4];
    const int whole[4] = {0, 0, img->width, img->height};
    if (mdl_preprocess_region(&inf->m->pre, img->width, img->height, box) < 0)
        return NULL;
    return overlay_rect(img, box, whole, what, map, gh, gw);
}

static json_t *layer_json(const char *name, int gh, int gw, float weight, const float *map)
{
    return json_pack("{s:s, s:[i, i], s:f, s:o}", "name", name, "grid", gh, gw, "weight", (double)weight, "map",
                     floats(map, (size_t)gh * (size_t)gw));
}

/* A CAM as reported: min-max normalised into norm (gh * gw floats), its raw range kept. */
static json_t *cam_json(const char *label, int gh, int gw, const float *cam, float *norm)
{
    size_t cells = (size_t)gh * (size_t)gw;
    float lo = cam[0], hi = cam[0];
    for (size_t c = 0; c < cells; c++) {
        lo = cam[c] < lo ? cam[c] : lo;
        hi = cam[c] > hi ? cam[c] : hi;
    }
    for (size_t c = 0; c < cells; c++)
        norm[c] = hi > lo ? (cam[c] - lo) / (hi - lo) : 0.0f;
    return json_pack("{s:s, s:[i, i], s:[f, f], s:o}", "label", label, "grid", gh, gw, "range", (double)lo, (double)hi,
                     "map", floats(norm, cells));
}

/* {"layers", "cam", "overlays"} from its parts (each stolen; NULL: left out). */
static json_t *attention_object(json_t *layers, json_t *cams, json_t *overlays)
{
    json_t *obj = json_object();
    if (layers)
        json_object_set_new(obj, "layers", layers);
    if (cams)
        json_object_set_new(obj, "cam", cams);
    if (overlays)
        json_object_set_new(obj, "overlays", overlays);
    return obj;
}

json_t *srv_attention_json(const struct srv_infer *inf, int i)
{
    const struct mdl_model *m = inf->m;
    const struct mdl_attention *at = &m->attn;
    const struct mdl_attn_image *a = &inf->att[i];
    bool png = inf->params.attention == SRV_ATTENTION_PNG && inf->decoded;
    json_t *layers = json_array(), *cams = json_array(), *overlays = json_array();
    char what[256];
    for (int s = 0; s < inf->nlayers; s++) {
        int l = inf->layers[s];
        const float *map = mdl_attn_layer_map(m, a, l);
        int gh = at->layer_h[l], gw = at->layer_w[l];
        const char *name = m->taps[at->layer_tap[l]];
        json_array_append_new(layers, layer_json(name, gh, gw, a->weight[l], map));
        if (png) {
            snprintf(what, sizeof what, "attention/%s", name);
            json_t *o = overlay(inf, i, what, map, gh, gw);
            if (o)
                json_array_append_new(overlays, o);
        }
    }
    int gh = at->cam_h, gw = at->cam_w;
    size_t cells = (size_t)gh * (size_t)gw;
    float *norm = malloc((cells ? cells : 1) * sizeof(float));
    for (int s = 0; norm && s < a->nlabels; s++) {
        const char *label = m->manifest.labels[a->labels[s]];
        json_array_append_new(cams, cam_json(label, gh, gw, mdl_attn_cam(m, a, s), norm));
        if (png) {
            snprintf(what, sizeof what, "cam/%s", label);
            json_t *o = overlay(inf, i, what, norm, gh, gw);
            if (o)
                json_array_append_new(overlays, o);
        }
    }
    free(norm);
    if (!inf->nlayers) {
        json_decref(layers);
        layers = NULL;
    }
    if (at->cam == MDL_CAM_NONE) {
        json_decref(cams);
        cams = NULL;
    }
    if (!png) {
        json_decref(overlays);
        overlays = NULL;
    }
    return attention_object(layers, cams, overlays);
}

void srv_attention_v2_outputs(const struct srv_infer *inf, json_t *outputs)
{
    const struct mdl_model *m = inf->m;
    const struct mdl_attention *at = &m->attn;
    char name[256];
    for (int s = 0; s < inf->nlayers; s++) {
        int l = inf->layers[s];
        size_t cells = (size_t)at->layer_h[l] * (size_t)at->layer_w[l];
        json_t *data = json_array();
        for (int i = 0; i < inf->n; i++) {
            const float *map = mdl_attn_layer_map(m, &inf->att[i], l);
            for (size_t c = 0; c < cells; c++)
                json_array_append_new(data, json_real((double)map[c]));
        }
        snprintf(name, sizeof name, "attention/%s", m->taps[at->layer_tap[l]]);
        json_array_append_new(outputs, json_pack("{s:s, s:s, s:[i, i, i], s:o}", "name", name, "datatype", "FP32",
                                                 "shape", inf->n, at->layer_h[l], at->layer_w[l], "data", data));
    }
    /* v2 asks every image for the same labels (cam_labels, or all), so slot s is one label. */
    size_t cells = (size_t)at->cam_h * (size_t)at->cam_w;
    for (int s = 0; s < inf->ncams; s++) {
        json_t *data = json_array();
        for (int i = 0; i < inf->n; i++) {
            const float *cam = mdl_attn_cam(m, &inf->att[i], s);
            for (size_t c = 0; c < cells; c++)
                json_array_append_new(data, json_real((double)cam[c]));
        }
        snprintf(name, sizeof name, "cam/%s", m->manifest.labels[inf->att[0].labels[s]]);
        json_array_append_new(outputs, json_pack("{s:s, s:s, s:[i, i, i], s:o}", "name", name, "datatype", "FP32",
                                                 "shape", inf->n, at->cam_h, at->cam_w, "data", data));
    }
}

/* ---- faces: maps per face ---- */

/* The CAM labels face f reports: the request's, or its best expression (else its gender). */
static int face_cam_labels(const struct srv_infer *inf, const struct mdl_face *f, int *labels)
{
    int n = 0;
    if (inf->nface_cams) {
        for (int s = 0; s < inf->nface_cams; s++)
            if (f->maps.cams & (1u << inf->face_cams[s]))
                labels[n++] = inf->face_cams[s];
        return n;
    }
    if (inf->params.cam_all) {
        for (int k = 0; k < MDL_FACE_CAMS; k++)
            if (f->maps.cams & (1u << k))
                labels[n++] = k;
        return n;
    }
    if (f->has & MDL_FACE_TASK_EXPRESSION) {
        int best = 0;
        for (int k = 1; k < MDL_FACE_EXPRESSIONS; k++)
            best = f->expression[k] > f->expression[best] ? k : best;
        if (f->maps.cams & (1u << best))
            labels[n++] = best;
    } else if (f->has & MDL_FACE_TASK_AGE_GENDER) {
        int k = f->gender == MDL_FACE_MALE ? 8 : 7; /* mdl_face_cam_labels: "female", "male" */
        if (f->maps.cams & (1u << k))
            labels[n++] = k;
    }
    return n;
}

json_t *srv_face_attention_json(const struct srv_infer *inf, int i, const struct mdl_face *f)
{
    const struct mdl_face_attention *at = mdl_face_attention(inf->m);
    if (!at || !f->maps.buf)
        return json_object();
    bool png = inf->params.attention == SRV_ATTENTION_PNG && inf->decoded;
    const struct srv_image *img = png ? &inf->decoded[i] : NULL;
    double box[4] = {f->map_box[0], f->map_box[1], f->map_box[2], f->map_box[3]};
    json_t *layers = json_array(), *cams = json_array(), *overlays = json_array();
    char what[256];
    for (int s = 0; s < inf->nlayers; s++) {
        int l = inf->layers[s];
        if (!(f->maps.layers & (1u << l)))
            continue;
        const float *map = f->maps.buf + at->layer_off[l];
        json_array_append_new(layers, layer_json(at->layer[l], at->layer_h[l], at->layer_w[l], f->maps.weight[l], map));
        if (png) {
            snprintf(what, sizeof what, "attention/%s", at->layer[l]);
            json_t *o = overlay_rect(img, box, f->crop, what, map, at->layer_h[l], at->layer_w[l]);
            if (o)
                json_array_append_new(overlays, o);
        }
    }
    int labels[MDL_FACE_CAMS], n = at->cam ? face_cam_labels(inf, f, labels) : 0;
    for (int s = 0; s < n; s++) {
        int k = labels[s], gh = at->cam_h[k], gw = at->cam_w[k];
        float norm[64 * 64];
        if ((size_t)gh * (size_t)gw > sizeof norm / sizeof norm[0])
            continue;
        json_array_append_new(cams, cam_json(mdl_face_cam_labels[k], gh, gw, f->maps.buf + at->cam_off[k], norm));
        if (png) {
            snprintf(what, sizeof what, "cam/%s", mdl_face_cam_labels[k]);
            json_t *o = overlay_rect(img, box, f->crop, what, norm, gh, gw);
            if (o)
                json_array_append_new(overlays, o);
        }
    }
    if (!at->cam) {
        json_decref(cams);
        cams = NULL;
    }
    if (!png) {
        json_decref(overlays);
        overlays = NULL;
    }
    json_t *obj = attention_object(layers, cams, overlays);
    /* where the overlays and the maps lie in the image */
    json_object_set_new(obj, "crop", json_pack("{s:i, s:i, s:i, s:i}", "x", f->crop[0], "y", f->crop[1], "width",
                                               f->crop[2], "height", f->crop[3]));
    json_object_set_new(obj, "map_region", json_pack("{s:f, s:f, s:f}", "x", box[0], "y", box[1], "size", box[2]));
    return obj;
}

static json_t *map_output(const char *name, int gh, int gw, const float *map)
{
    return json_pack("{s:s, s:s, s:[i, i], s:o}", "name", name, "datatype", "FP32", "shape", gh, gw, "data",
                     floats(map, (size_t)gh * (size_t)gw));
}

void srv_face_attention_v2_outputs(const struct srv_infer *inf, json_t *outputs)
{
    const struct mdl_face_attention *at = mdl_face_attention(inf->m);
    char name[256];
    if (!at)
        return;
    for (int i = 0; i < inf->n; i++)
        for (int k = 0; k < inf->faces[i].n; k++) {
            const struct mdl_face *f = &inf->faces[i].faces[k];
            if (!f->maps.buf)
                continue;
            for (int s = 0; s < inf->nlayers; s++) {
                int l = inf->layers[s];
                if (!(f->maps.layers & (1u << l)))
                    continue;
                snprintf(name, sizeof name, "image%d/face%d/attention/%s", i, k, at->layer[l]);
                json_array_append_new(outputs,
                                      map_output(name, at->layer_h[l], at->layer_w[l], f->maps.buf + at->layer_off[l]));
            }
            int labels[MDL_FACE_CAMS], n = at->cam ? face_cam_labels(inf, f, labels) : 0;
            for (int s = 0; s < n; s++) {
                snprintf(name, sizeof name, "image%d/face%d/cam/%s", i, k, mdl_face_cam_labels[labels[s]]);
                json_array_append_new(outputs, map_output(name, at->cam_h[labels[s]], at->cam_w[labels[s]],
                                                          f->maps.buf + at->cam_off[labels[s]]));
            }
        }
}
