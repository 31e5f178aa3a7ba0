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

/* {"of": what, "png": base64} of map over image i, or NULL (no image kept, or OOM). */
static json_t *overlay(const struct srv_infer *inf, int i, const char *what, const float *map, int gh, int gw)
{
    const struct srv_image *img = &inf->decoded[i];
    double box[4];
    if (mdl_preprocess_region(&inf->m->pre, img->width, img->height, box) < 0)
        return NULL;
    size_t len, blen;
    uint8_t *png = srv_overlay_png(img, map, gh, gw, box, &len);
    char *b64 = png ? srv_base64_encode(png, len, &blen) : NULL;
    free(png);
    if (!b64)
        return NULL;
    json_t *o = json_pack("{s:s, s:s}", "of", what, "png", b64);
    free(b64);
    return o;
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
        json_array_append_new(layers, json_pack("{s:s, s:[i, i], s:f, s:o}", "name", name, "grid", gh, gw, "weight",
                                                (double)a->weight[l], "map", floats(map, (size_t)gh * (size_t)gw)));
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
        const float *cam = mdl_attn_cam(m, a, s);
        float lo = cam[0], hi = cam[0];
        for (size_t c = 0; c < cells; c++) {
            lo = cam[c] < lo ? cam[c] : lo;
            hi = cam[c] > hi ? cam[c] : hi;
        }
        for (size_t c = 0; c < cells; c++)
            norm[c] = hi > lo ? (cam[c] - lo) / (hi - lo) : 0.0f;
        const char *label = m->manifest.labels[a->labels[s]];
        json_array_append_new(cams, json_pack("{s:s, s:[i, i], s:[f, f], s:o}", "label", label, "grid", gh, gw,
                                              "range", (double)lo, (double)hi, "map", floats(norm, cells)));
        if (png) {
            snprintf(what, sizeof what, "cam/%s", label);
            json_t *o = overlay(inf, i, what, norm, gh, gw);
            if (o)
                json_array_append_new(overlays, o);
        }
    }
    free(norm);
    json_t *obj = json_object();
    if (inf->nlayers)
        json_object_set_new(obj, "layers", layers);
    else
        json_decref(layers);
    if (at->cam != MDL_CAM_NONE)
        json_object_set_new(obj, "cam", cams);
    else
        json_decref(cams);
    if (png)
        json_object_set_new(obj, "overlays", overlays);
    else
        json_decref(overlays);
    return obj;
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
