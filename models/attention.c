/* attention.c: layer maps and class activation maps from the forward's taps (attention.h). */
#include "config.h"
#include "models/attention.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/error.h"
#include "engine/linear.h"
#include "engine/pooling.h"
#include "models/model.h"

static int find_tap(const struct mdl_model *m, const char *name)
{
    for (int i = 0; i < m->ntaps; i++)
        if (strcmp(m->taps[i], name) == 0)
            return i;
    return -1;
}

/* The grid of tap i: [n, h, w, c] maps, or [n, L, C] tokens of a square grid. */
static int tap_grid(const struct mdl_model *m, int i, int *h, int *w, int64_t *c)
{
    if (m->tap_ndim[i] == 4) {
        *h = (int)m->tap_ne[i][1];
        *w = (int)m->tap_ne[i][2];
        *c = m->tap_ne[i][3];
        return 0;
    }
    if (m->tap_ndim[i] == 3) {
        int g = (int)lround(sqrt((double)m->tap_ne[i][1]));
        if ((int64_t)g * g == m->tap_ne[i][1]) {
            *h = *w = g;
            *c = m->tap_ne[i][2];
            return 0;
        }
    }
    return -1;
}

static int tap_error(const struct mdl_model *m, const char *field, const char *name, const char *why)
{
    char list[512] = "";
    for (int i = 0; i < m->ntaps; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", m->taps[i]);
    }
    return eng_error("manifest attention.%s: '%s' %s (taps: %s)", field, name, why, list);
}

int mdl_attention_init(struct mdl_model *m)
{
    struct mdl_attention *a = &m->attn;
    memset(a, 0, sizeof *a);
    json_t *obj = json_object_get(m->manifest.json, "attention");
    if (!obj || mdl_family_image_ops(m->family))
        return 0; /* families that take images keep their own maps (faceapi: per face) */
    if (!json_is_object(obj))
        return eng_error("manifest 'attention' must be an object");
    size_t off = 0;
    json_t *layers = json_object_get(obj, "layers");
    if (layers && !json_is_array(layers))
        return eng_error("manifest attention.layers must be a list of tap names");
    size_t i;
    json_t *v;
    json_array_foreach(layers, i, v)
    {
        const char *name = json_string_value(v);
        int t = name ? find_tap(m, name) : -1;
        int64_t c;
        if (!name)
            return eng_error("manifest attention.layers[%zu] must be a string", i);
        if (t < 0)
            return tap_error(m, "layers", name, "is not a tap of this model");
        if (a->nlayers == MDL_ATTN_MAX_LAYERS)
            return eng_error("manifest attention.layers: more than %d", MDL_ATTN_MAX_LAYERS);
        int l = a->nlayers++;
        if (tap_grid(m, t, &a->layer_h[l], &a->layer_w[l], &c) < 0)
            return tap_error(m, "layers", name, "is not a spatial map");
        a->layer_tap[l] = t;
        a->layer_off[l] = off;
        off += (size_t)a->layer_h[l] * (size_t)a->layer_w[l];
    }

    const char *cam = json_string_value(json_object_get(obj, "cam"));
    if (!cam || strcmp(cam, "none") == 0)
        a->cam = MDL_CAM_NONE;
    else if (strcmp(cam, "linear") == 0)
        a->cam = MDL_CAM_LINEAR;
    else if (strcmp(cam, "perturbation") == 0)
        a->cam = MDL_CAM_PERTURBATION;
    else if (strcmp(cam, "gradient") == 0)
        a->cam = MDL_CAM_GRADIENT;
    else
        return eng_error("manifest attention.cam must be \"linear\", \"gradient\", \"perturbation\" or \"none\", "
                         "got '%s'", cam);
    if (a->cam != MDL_CAM_NONE && m->manifest.nlabels == 0)
        return eng_error("manifest attention.cam needs labels");
    if (a->cam == MDL_CAM_LINEAR && !m->family->class_weights)
        return eng_error("manifest attention.cam \"linear\": family %s has no linear head", m->family->name);
    if (a->cam == MDL_CAM_PERTURBATION && !m->family->head_probs)
        return eng_error("manifest attention.cam \"perturbation\": family %s cannot run its head alone",
                         m->family->name);
    if (a->cam == MDL_CAM_GRADIENT && !m->family->head_grads)
        return eng_error("manifest attention.cam \"gradient\": family %s cannot differentiate its head",
                         m->family->name);

    /* The CAM's source maps: "features" (a tap name or a list), else the "features" tap if it
     * is a map, else the layers (quadrant_ae: its stitched backbone maps). */
    const char *pool = json_string_value(json_object_get(obj, "cam_pool"));
    a->quadrant_pool = pool ? strcmp(pool, "quadrants") == 0 : strcmp(m->family->name, "quadrant_ae") == 0;
    if (pool && !a->quadrant_pool && strcmp(pool, "global") != 0)
        return eng_error("manifest attention.cam_pool must be \"global\" or \"quadrants\", got '%s'", pool);
    if (a->cam != MDL_CAM_NONE) {
        const char *names[MDL_ATTN_MAX_SOURCES];
        int nnames = 0;
        json_t *f = json_object_get(obj, "features");
        int ft = find_tap(m, "features");
        int h, w;
        int64_t c;
        if (json_is_string(f)) {
            names[nnames++] = json_string_value(f);
        } else if (json_is_array(f)) {
            json_array_foreach(f, i, v)
            {
                if (!json_is_string(v) || nnames == MDL_ATTN_MAX_SOURCES)
                    return eng_error("manifest attention.features must be tap names (at most %d)",
                                     MDL_ATTN_MAX_SOURCES);
                names[nnames++] = json_string_value(v);
            }
        } else if (ft >= 0 && tap_grid(m, ft, &h, &w, &c) == 0) {
            names[nnames++] = "features";
        } else {
            /* quadrant_ae: its stitched backbone maps. Backbones whose maps have different grids
             * cannot be perturbed cell by cell together: no CAM then (the layer maps stay). */
            for (int l = 0; l < a->nlayers && nnames < MDL_ATTN_MAX_SOURCES; l++) {
                if (a->layer_h[l] != a->layer_h[0] || a->layer_w[l] != a->layer_w[0]) {
                    a->cam = MDL_CAM_NONE;
                    nnames = 0;
                    break;
                }
                names[nnames++] = m->taps[a->layer_tap[l]];
            }
            if (a->cam == MDL_CAM_NONE) {
                a->floats = off;
                return 0;
            }
        }
        if (nnames == 0)
            return eng_error("manifest attention: a CAM needs \"features\" (the last feature map)");
        if ((a->cam == MDL_CAM_LINEAR || a->cam == MDL_CAM_GRADIENT) && nnames != 1)
            return eng_error("manifest attention.cam \"%s\" takes one feature map",
                             a->cam == MDL_CAM_LINEAR ? "linear" : "gradient");
        if (a->cam == MDL_CAM_GRADIENT && a->quadrant_pool)
            return eng_error("manifest attention.cam \"gradient\" needs global pooling (cam_pool \"global\")");
        for (int s = 0; s < nnames; s++) {
            int t = find_tap(m, names[s]);
            if (t < 0)
                return tap_error(m, "features", names[s], "is not a tap of this model");
            if (tap_grid(m, t, &h, &w, &c) < 0)
                return tap_error(m, "features", names[s], "is not a spatial map");
            if (s > 0 && (h != a->cam_h || w != a->cam_w))
                return tap_error(m, "features", names[s], "has another grid than the first source");
            if (a->quadrant_pool && (h % 2 || w % 2))
                return tap_error(m, "features", names[s], "has an odd grid; quadrant pooling needs even");
            a->cam_h = h;
            a->cam_w = w;
            a->source_tap[s] = t;
            a->source_c[s] = c;
            a->source_off[s] = off;
            off += (size_t)h * (size_t)w * (size_t)c;
        }
        a->nsources = nnames;
        a->max_cams = m->manifest.nlabels;
        a->cams_off = off;
        off += (size_t)a->max_cams * (size_t)a->cam_h * (size_t)a->cam_w;
        /* Gradient CAMs differentiate the head from the activations its forward left (a few
         * thousand floats per image) rather than running it again. */
        int st = find_tap(m, "head");
        if (a->cam == MDL_CAM_GRADIENT && st >= 0 && m->tap_ndim[st] == 2) {
            a->state_tap = st;
            a->state_floats = m->tap_ne[st][1];
            a->state_off = off;
            off += (size_t)a->state_floats;
        }
    }
    a->floats = off;
    return 0;
}

/* Pointer to element (y, x, 0) of row r of t, a tap whose grid is w wide. */
static const float *cell(const struct eng_tensor *t, int64_t r, int y, int x, int w)
{
    const char *base = (const char *)t->data + (size_t)r * t->nb[0];
    if (t->ndim == 4)
        return (const float *)(base + (size_t)y * t->nb[1] + (size_t)x * t->nb[2]);
    return (const float *)(base + (size_t)(y * w + x) * t->nb[1]);
}

void mdl_attn_energy(const struct eng_tensor *t, int64_t r, int h, int w, float *map)
{
    int64_t C = t->ne[t->ndim - 1];
    size_t cstride = t->nb[t->ndim - 1] / sizeof(float);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const float *p = cell(t, r, y, x, w);
            double s = 0;
            for (int64_t c = 0; c < C; c++)
                s += (double)p[c * (int64_t)cstride] * p[c * (int64_t)cstride];
            map[y * w + x] = (float)(s / (double)C);
        }
}

void mdl_attn_linear_map(const struct eng_tensor *t, int64_t r, int h, int w, const float *wk, size_t wstride,
                         float bias, float *cam)
{
    int64_t C = t->ne[t->ndim - 1];
    size_t cstride = t->nb[t->ndim - 1] / sizeof(float);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const float *p = cell(t, r, y, x, w);
            double acc = bias;
            for (int64_t c = 0; c < C; c++)
                acc += (double)wk[(size_t)c * wstride] * p[c * (int64_t)cstride];
            cam[y * w + x] = (float)acc;
        }
}

void mdl_attn_tap(const struct mdl_model *m, struct mdl_attn_image *a, const char *name, const struct eng_tensor *t,
                  int64_t r)
{
    const struct mdl_attention *at = &m->attn;
    int ti = find_tap(m, name);
    if (ti < 0 || !a->buf)
        return;
    int64_t C = t->ne[t->ndim - 1];
    size_t cstride = t->nb[t->ndim - 1] / sizeof(float);
    if (a->want_layers)
        for (int l = 0; l < at->nlayers; l++)
            if (at->layer_tap[l] == ti)
                mdl_attn_energy(t, r, at->layer_h[l], at->layer_w[l], a->buf + at->layer_off[l]);
    if (a->nlabels > 0 && at->state_floats > 0 && at->state_tap == ti)
        memcpy(a->buf + at->state_off, (const char *)t->data + (size_t)r * t->nb[0],
               sizeof(float) * (size_t)at->state_floats);
    if (a->nlabels > 0)
        for (int s = 0; s < at->nsources; s++) {
            if (at->source_tap[s] != ti)
                continue;
            float *dst = a->buf + at->source_off[s];
            for (int y = 0; y < at->cam_h; y++)
                for (int x = 0; x < at->cam_w; x++) {
                    const float *p = cell(t, r, y, x, at->cam_w);
                    for (int64_t c = 0; c < C; c++)
                        *dst++ = p[c * (int64_t)cstride];
                }
        }
}

void mdl_attn_normalise(float *const *maps, const int *cells, int n, float *weight)
{
    double total = 0;
    for (int l = 0; l < n; l++) {
        float *map = maps[l];
        float lo = map[0], hi = map[0];
        double sum = 0;
        for (int i = 0; i < cells[l]; i++) {
            lo = map[i] < lo ? map[i] : lo;
            hi = map[i] > hi ? map[i] : hi;
            sum += map[i];
        }
        double mean = sum / (double)cells[l];
        weight[l] = mean > 0 ? (float)(hi / mean - 1.0) : 0.0f;
        total += weight[l];
        float range = hi - lo;
        for (int i = 0; i < cells[l]; i++)
            map[i] = range > 0 ? (map[i] - lo) / range : 0.0f;
    }
    for (int l = 0; l < n; l++)
        weight[l] = total > 0 ? (float)(weight[l] / total) : 1.0f / (float)n;
}

static void finish_layers(const struct mdl_attention *at, struct mdl_attn_image *a)
{
    float *maps[MDL_ATTN_MAX_LAYERS];
    int cells[MDL_ATTN_MAX_LAYERS];
    for (int l = 0; l < at->nlayers; l++) {
        maps[l] = a->buf + at->layer_off[l];
        cells[l] = at->layer_h[l] * at->layer_w[l];
    }
    mdl_attn_normalise(maps, cells, at->nlayers, a->weight);
}

static int cam_linear(const struct mdl_model *m, struct mdl_runner *r, struct mdl_attn_image *a)
{
    const struct mdl_attention *at = &m->attn;
    int64_t C = at->source_c[0];
    const float *src = a->buf + at->source_off[0];
    float *w = eng_arena_floats(&r->act, (size_t)C);
    if (!w)
        return -1;
    int cells = at->cam_h * at->cam_w;
    struct eng_tensor f = eng_tensor_make("features", (float *)src, 4, (int64_t[]){1, at->cam_h, at->cam_w, C});
    for (int s = 0; s < a->nlabels; s++) {
        float b = 0;
        if (m->family->class_weights(m, a->labels[s], w, &b) < 0)
            return -1;
        mdl_attn_linear_map(&f, 0, at->cam_h, at->cam_w, w, 1, b, a->buf + at->cams_off + (size_t)s * (size_t)cells);
    }
    return 0;
}

static float taper(int d)
{
    return d == 0 ? 1.0f : d == 1 ? 0.5f : 0.0f;
}

/* The perturbed copies of image a's source maps, one row per cell, into rows (cells x F, zeroed). */
static void perturbed_rows(const struct mdl_attention *at, const struct mdl_attn_image *a, int64_t per_quadrant,
                           int64_t F, float *rows)
{
    int h = at->cam_h, w = at->cam_w;
    int qh = at->quadrant_pool ? h / 2 : h, qw = at->quadrant_pool ? w / 2 : w;
    float inv = 1.0f / (float)(qh * qw);
    for (int cy = 0; cy < h; cy++)
        for (int cx = 0; cx < w; cx++) {
            float *row = rows + (size_t)(cy * w + cx) * (size_t)F;
            /* Only the 3x3 neighbourhood has non-zero weight. */
            for (int y = cy - 1; y <= cy + 1; y++)
                for (int x = cx - 1; x <= cx + 1; x++) {
                    if (y < 0 || y >= h || x < 0 || x >= w)
                        continue;
                    float k = taper(y > cy ? y - cy : cy - y) * taper(x > cx ? x - cx : cx - x) * inv;
                    int quad = at->quadrant_pool ? (y >= qh) * 2 + (x >= qw) : 0;
                    int64_t off = quad * per_quadrant;
                    for (int s = 0; s < at->nsources; s++) {
                        int64_t C = at->source_c[s];
                        const float *f = a->buf + at->source_off[s] + (size_t)(y * w + x) * (size_t)C;
                        float *dst = row + off;
                        for (int64_t c = 0; c < C; c++)
                            dst[c] += k * f[c];
                        off += C;
                    }
                }
        }
}

/* Perturbation CAMs of g images asking for the same labels (imgs[0]->labels), all their cells
 * through the head as one batch: one call per label's weights instead of one per image. */
static int cam_perturbation(const struct mdl_model *m, struct mdl_runner *r, struct mdl_attn_image *const *imgs,
                            int g)
{
    const struct mdl_attention *at = &m->attn;
    int cells = at->cam_h * at->cam_w, nl = imgs[0]->nlabels;
    int64_t per_quadrant = 0;
    for (int s = 0; s < at->nsources; s++)
        per_quadrant += at->source_c[s];
    int64_t F = at->quadrant_pool ? 4 * per_quadrant : per_quadrant;
    size_t rows = (size_t)g * (size_t)cells, mark = eng_arena_mark(&r->act);
    float *pd = eng_arena_floats(&r->act, rows * (size_t)F);
    float *probs = eng_arena_floats(&r->act, rows * (size_t)nl);
    int rc = -1;
    if (!pd || !probs)
        goto out;
    struct eng_tensor pooled = eng_tensor_make("perturbed features", pd, 2, (int64_t[]){(int64_t)rows, F});
    memset(pd, 0, sizeof(float) * rows * (size_t)F);
    for (int i = 0; i < g; i++)
        perturbed_rows(at, imgs[i], per_quadrant, F, pd + (size_t)i * (size_t)cells * (size_t)F);
    /* Only the asked labels: SwinCheX runs one MLP per label. */
    if (m->family->head_probs(m, &r->ctx, &r->act, &pooled, imgs[0]->labels, nl, probs) < 0)
        goto out;
    for (int i = 0; i < g; i++)
        for (int s = 0; s < nl; s++) {
            float *cam = imgs[i]->buf + at->cams_off + (size_t)s * (size_t)cells;
            const float *p = probs + (size_t)i * (size_t)cells * (size_t)nl;
            for (int c = 0; c < cells; c++)
                cam[c] = p[(size_t)c * (size_t)nl + (size_t)s];
        }
    rc = 0;
out:
    eng_arena_rewind(&r->act, mark);
    return rc;
}

/* Gradient CAMs of g images asking for the same labels (imgs[0]->labels): each image's pooled
 * features z and its head's activations back through the head (family head_grads, all g rows at
 * once), then per image one product of its centred cells F(i, j) - z [cells, C] with its labels'
 * gradients [nl, C]^T, plus each label's score: CAM(i, j) = s + g . (F(i, j) - z). Centred, the
 * float products do not cancel against g . z. */
static int cam_gradient(const struct mdl_model *m, struct mdl_runner *r, struct mdl_attn_image *const *imgs, int g)
{
    const struct mdl_attention *at = &m->attn;
    int cells = at->cam_h * at->cam_w, nl = imgs[0]->nlabels;
    int64_t C = at->source_c[0];
    size_t mark = eng_arena_mark(&r->act);
    float *z = eng_arena_floats(&r->act, (size_t)g * (size_t)C);
    float *scores = eng_arena_floats(&r->act, (size_t)g * (size_t)nl);
    float *grads = eng_arena_floats(&r->act, (size_t)g * (size_t)nl * (size_t)C);
    float *prod = eng_arena_floats(&r->act, (size_t)cells * (size_t)nl);
    float *centred = eng_arena_floats(&r->act, (size_t)cells * (size_t)C);
    float *state = eng_arena_floats(&r->act, (size_t)g * (size_t)(at->state_floats ? at->state_floats : 1));
    int rc = -1;
    if (!z || !scores || !grads || !prod || !centred || !state)
        goto out;
    for (int i = 0; i < g; i++)
        memcpy(state + (size_t)i * (size_t)at->state_floats, imgs[i]->buf + at->state_off,
               sizeof(float) * (size_t)at->state_floats);
    struct eng_tensor st;
    if (at->state_floats)
        st = eng_tensor_make("head activations", state, 2, (int64_t[]){g, at->state_floats});
    /* Every product here has one row per image (or per cell of one image): on the calling thread.
     * Waking the pool for each of the many small GEMMs costs more CPU than it saves (measured:
     * every label's CAMs +4% of a batch this way, +18% with the pool). The scratch arena is
     * shared; ops hand back what they borrow. */
    struct eng_ctx one = r->ctx;
    one.nthreads = 1;
    /* z: each image's features pooled by the op the network pools them with. */
    for (int i = 0; i < g; i++) {
        struct eng_tensor fi = eng_tensor_make("features", imgs[i]->buf + at->source_off[0], 4,
                                               (int64_t[]){1, at->cam_h, at->cam_w, C});
        struct eng_tensor zi = eng_tensor_make("pooled features", z + (size_t)i * (size_t)C, 2, (int64_t[]){1, C});
        if (eng_global_avg_pool(&one, &fi, &zi) < 0)
            goto out;
    }
    struct eng_tensor pooled = eng_tensor_make("pooled features", z, 2, (int64_t[]){g, C});
    if (m->family->head_grads(m, &one, &r->act, &pooled, at->state_floats ? &st : NULL, imgs[0]->labels, nl,
                              scores, grads) < 0)
        goto out;
    struct eng_tensor p = eng_tensor_make("gradient CAM products", prod, 2, (int64_t[]){cells, nl});
    struct eng_tensor f = eng_tensor_make("centred features", centred, 2, (int64_t[]){cells, C});
    for (int i = 0; i < g; i++) {
        const float *src = imgs[i]->buf + at->source_off[0], *zi = z + (size_t)i * (size_t)C;
        for (int k = 0; k < cells; k++)
            for (int64_t c = 0; c < C; c++)
                centred[(size_t)k * (size_t)C + (size_t)c] = src[(size_t)k * (size_t)C + (size_t)c] - zi[c];
        struct eng_tensor gt = eng_tensor_make("label gradients", grads + (size_t)i * (size_t)nl * (size_t)C, 2,
                                               (int64_t[]){nl, C});
        if (eng_matmul(&one, &f, false, &gt, true, 1.0f, &p) < 0)
            goto out;
        for (int s = 0; s < nl; s++) {
            float *cam = imgs[i]->buf + at->cams_off + (size_t)s * (size_t)cells;
            for (int k = 0; k < cells; k++)
                cam[k] = scores[i * nl + s] + prod[(size_t)k * (size_t)nl + (size_t)s];
        }
    }
    rc = 0;
out:
    eng_arena_rewind(&r->act, mark);
    return rc;
}

static bool same_labels(const struct mdl_attn_image *a, const struct mdl_attn_image *b)
{
    return a->nlabels == b->nlabels && memcmp(a->labels, b->labels, sizeof(int) * (size_t)a->nlabels) == 0;
}

int mdl_attn_finish_batch(const struct mdl_model *m, struct mdl_runner *r, struct mdl_attn_image *a, int n)
{
    const struct mdl_attention *at = &m->attn;
    bool cams = false;
    for (int i = 0; i < n; i++) {
        if (!a[i].buf)
            continue;
        if (a[i].want_layers)
            finish_layers(at, &a[i]);
        if (a[i].nlabels <= 0 || at->cam == MDL_CAM_NONE)
            continue;
        if (a[i].nlabels > at->max_cams)
            return eng_error("%d CAMs asked for, at most %d", a[i].nlabels, at->max_cams);
        for (int s = 0; s < a[i].nlabels; s++)
            if (a[i].labels[s] < 0 || a[i].labels[s] >= m->manifest.nlabels)
                return eng_error("CAM label %d out of range", a[i].labels[s]);
        cams = true;
    }
    if (!cams)
        return 0;
    /* The forward is over: its activations are dead, so the arenas are free to use. */
    eng_arena_reset(&r->act);
    eng_arena_reset(&r->ctx.scratch);
    if (at->cam == MDL_CAM_LINEAR) {
        for (int i = 0; i < n; i++)
            if (a[i].buf && a[i].nlabels > 0 && cam_linear(m, r, &a[i]) < 0)
                return -1;
        return 0;
    }
    /* Images asking for the same labels (every label, or the same best one) go through the head
     * together, as many as the arena holds (halving the group when it does not): perturbation
     * CAMs a row per cell, gradient CAMs a row per image. */
    struct mdl_attn_image *group[64];
    bool *done = eng_arena_alloc(&r->act, (size_t)n * sizeof *done);
    if (!done)
        return -1;
    memset(done, 0, (size_t)n * sizeof *done);
    for (int i = 0; i < n; i++) {
        if (done[i] || !a[i].buf || a[i].nlabels <= 0)
            continue;
        int g = 0;
        for (int j = i; j < n && g < 64; j++)
            if (!done[j] && a[j].buf && same_labels(&a[i], &a[j])) {
                group[g++] = &a[j];
                done[j] = true;
            }
        for (int s = 0; s < g;) {
            int k = g - s;
            while ((at->cam == MDL_CAM_GRADIENT ? cam_gradient : cam_perturbation)(m, r, group + s, k) < 0) {
                if (k == 1)
                    return -1;
                k /= 2; /* the arena holds fewer rows: smaller groups */
            }
            s += k;
        }
    }
    return 0;
}

int mdl_attn_finish(const struct mdl_model *m, struct mdl_runner *r, struct mdl_attn_image *a)
{
    return mdl_attn_finish_batch(m, r, a, 1);
}

const float *mdl_attn_layer_map(const struct mdl_model *m, const struct mdl_attn_image *a, int l)
{
    return a->buf + m->attn.layer_off[l];
}

const float *mdl_attn_cam(const struct mdl_model *m, const struct mdl_attn_image *a, int s)
{
    return a->buf + m->attn.cams_off + (size_t)s * (size_t)m->attn.cam_h * (size_t)m->attn.cam_w;
}
