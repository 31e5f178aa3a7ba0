/* api_v1.c: the simple JSON API: list models, predict from JSON (base64 / data: URI), a raw
 * image body, or a multipart form. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/attention.h"
#include "server/base64.h"
#include "server/faces.h"
#include "server/infer.h"
#include "server/multipart.h"
#include "server/routes.h"

#define MAX_INSTANCES 256

/* ---- model listing --------------------------------------------------------------------- */

/* The public description of a loaded model (or of a name that is not loaded). New reference. */
static json_t *describe(const char *name, const struct srv_model *sm, const char *reason)
{
    if (!sm)
        return json_pack("{s:s, s:s, s:s}", "name", name, "state", "UNAVAILABLE", "reason", reason);
    const struct mdl_model *m = sm->m;
    const struct srv_batch_opts *bo = srv_batcher_opts(sm->batcher);
    json_t *labels = json_array();
    for (int i = 0; i < m->manifest.nlabels; i++)
        json_array_append_new(labels, json_string(m->manifest.labels[i]));
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:o, s:[I,I,I], s:i, s:i, s:i, s:O}", "name", name, "version",
                     m->manifest.version, "family", m->manifest.family, "task", m->manifest.task, "demo",
                     m->manifest.demo, "state", "READY", "labels", labels, "input", (json_int_t)m->in_h,
                     (json_int_t)m->in_w, (json_int_t)m->in_c, "max_batch_size", bo->max_batch,
                     "max_queue_delay_us", bo->max_delay_us, "max_queue_size", bo->max_queue, "manifest",
                     m->manifest.json);
}

struct listing {
    struct srv_registry *r;
    json_t *list;
};

static void list_one(void *user, const char *name, struct srv_slot_stats *st, const struct srv_model *sm)
{
    struct listing *l = user;
    (void)st;
    char reason[512] = "";
    if (!sm) {
        /* A name seen once but gone from the repository is not listed. */
        return;
    }
    json_array_append_new(l->list, describe(name, sm, reason));
}

void srv_v1_models(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    (void)args;
    /* Loaded models first (from the registry), then what the index says is unavailable. */
    struct listing l = {q->srv->registry, json_array()};
    srv_registry_foreach(q->srv->registry, list_one, &l);
    json_t *index = srv_registry_index(q->srv->registry);
    size_t i;
    json_t *e;
    json_array_foreach(index, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "state")), "READY") != 0)
            json_array_append_new(l.list, describe(json_string_value(json_object_get(e, "name")), NULL,
                                                   json_string_value(json_object_get(e, "reason"))));
    }
    json_decref(index);
    srv_reply_json(q, 200, json_pack("{s:o}", "models", l.list));
}

void srv_v1_model(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    struct srv_model *sm = srv_registry_acquire(q->srv->registry, args[0]);
    char reason[512];
    enum srv_model_state st = srv_registry_state(q->srv->registry, args[0], reason, sizeof reason);
    if (!sm && st == SRV_MODEL_UNKNOWN) {
        srv_reply_error(q, 404, "no model named '%s' (see GET /v1/models)", args[0]);
        return;
    }
    snprintf(q->model, sizeof q->model, "%s", args[0]);
    srv_reply_json(q, 200, describe(args[0], sm, reason));
    srv_model_release(sm);
}

/* ---- predict --------------------------------------------------------------------------- */

/* The media type of a Content-Type value, lower-cased, without parameters. */
static void media_type(const char *ct, char *out, size_t len)
{
    size_t n = 0;
    while (*ct == ' ')
        ct++;
    for (; ct[n] && ct[n] != ';' && ct[n] != ' ' && n + 1 < len; n++)
        out[n] = (char)((ct[n] >= 'A' && ct[n] <= 'Z') ? ct[n] + 32 : ct[n]);
    out[n] = '\0';
}

/* Decode one base64 (or data: URI) string into imgs[i]. 0, or -1 having answered 400. */
static int image_from_string(struct srv_req *q, json_t *v, struct srv_image_in *img, const char *field)
{
    snprintf(img->field, sizeof img->field, "%s", field);
    if (!json_is_string(v)) {
        srv_reply_error(q, 400, "%s must be a string: the image as base64 or a data: URI", field);
        return -1;
    }
    uint8_t *bytes;
    size_t len;
    char err[256];
    if (srv_base64_decode(json_string_value(v), json_string_length(v), &bytes, &len, NULL, 0, err, sizeof err) <
        0) {
        srv_reply_error(q, 400, "%s: %s", field, err);
        return -1;
    }
    img->data = bytes;
    img->len = len;
    img->owned = true;
    return 0;
}

/* {"image": ...} or {"instances": [{"image": ...} | "<base64>", ...]}, optional "parameters". */
static int from_json(struct srv_req *q, struct srv_image_in **out, int *nout, struct srv_params *p)
{
    json_error_t je;
    json_t *root = json_loadb((const char *)q->body, q->body_len, 0, &je);
    if (!root) {
        srv_reply_error(q, 400, "body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return -1;
    }
    int rc = -1;
    struct srv_image_in *imgs = NULL;
    int n = 0;
    if (!json_is_object(root)) {
        srv_reply_error(q, 400, "body must be a JSON object with \"image\" or \"instances\"");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "image") && strcmp(key, "instances") && strcmp(key, "parameters")) {
            srv_reply_error(q, 400, "unknown field '%s' (expected \"image\" or \"instances\", and \"parameters\")",
                            key);
            goto done;
        }
    }
    json_t *image = json_object_get(root, "image");
    json_t *instances = json_object_get(root, "instances");
    if (image && instances) {
        srv_reply_error(q, 400, "give either \"image\" or \"instances\", not both");
        goto done;
    }
    if (!image && !instances) {
        srv_reply_error(q, 400, "missing \"image\" (base64 or data: URI) or \"instances\"");
        goto done;
    }
    if (srv_params_parse(q, json_object_get(root, "parameters"), p) < 0)
        goto done;
    if (instances && !json_is_array(instances)) {
        srv_reply_error(q, 400, "\"instances\" must be a list of {\"image\": ...}");
        goto done;
    }
    size_t count = image ? 1 : json_array_size(instances);
    if (count == 0) {
        srv_reply_error(q, 400, "\"instances\" is empty");
        goto done;
    }
    if (count > MAX_INSTANCES) {
        srv_reply_error(q, 400, "%zu instances in one request; at most %d", count, MAX_INSTANCES);
        goto done;
    }
    imgs = calloc(count, sizeof *imgs);
    if (!imgs) {
        srv_reply_error(q, 500, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < count; i++, n++) {
        char field[SRV_FIELD_MAX];
        json_t *src = image;
        if (!image) {
            json_t *inst = json_array_get(instances, i);
            if (json_is_object(inst)) {
                src = json_object_get(inst, "image");
                snprintf(field, sizeof field, "instances[%zu].image", i);
                if (!src) {
                    srv_reply_error(q, 400, "instances[%zu] has no \"image\"", i);
                    goto done;
                }
            } else {
                src = inst;
                snprintf(field, sizeof field, "instances[%zu]", i);
            }
        } else {
            snprintf(field, sizeof field, "image");
        }
        if (image_from_string(q, src, &imgs[i], field) < 0)
            goto done;
    }
    *out = imgs;
    *nout = n;
    imgs = NULL;
    rc = 0;
done:
    srv_images_free(imgs, n);
    json_decref(root);
    return rc;
}

static int multipart_images(struct srv_req *q, const struct srv_part *parts, int nparts, struct srv_image_in *imgs,
                            struct srv_params *p);

/* curl -F image=@x.png [-F image=@y.jpg] [-F 'parameters={"top_k":3}'] */
static int from_multipart(struct srv_req *q, struct srv_image_in **out, int *nout, struct srv_params *p)
{
    struct srv_part *parts = calloc(MAX_INSTANCES + 1, sizeof *parts);
    int nparts = 0;
    char err[256];
    if (!parts) {
        srv_reply_error(q, 500, "out of memory");
        return -1;
    }
    if (srv_multipart_parse(q->body, q->body_len, q->content_type, parts, MAX_INSTANCES + 1, &nparts, err,
                            sizeof err) < 0) {
        srv_reply_error(q, 400, "%s", err);
        free(parts);
        return -1;
    }
    struct srv_image_in *imgs = calloc((size_t)nparts + 1, sizeof *imgs);
    if (!imgs) {
        srv_reply_error(q, 500, "out of memory");
        free(parts);
        return -1;
    }
    int rc = multipart_images(q, parts, nparts, imgs, p);
    free(parts);
    if (rc < 0) {
        free(imgs);
        return -1;
    }
    *out = imgs;
    *nout = rc;
    return 0;
}

/* The images and parameters of parsed form parts: the number of images, or -1 having answered. */
static int multipart_images(struct srv_req *q, const struct srv_part *parts, int nparts, struct srv_image_in *imgs,
                            struct srv_params *p)
{
    int n = 0;
    memset(p, 0, sizeof *p);
    for (int i = 0; i < nparts; i++) {
        if (strcmp(parts[i].name, "parameters") == 0) {
            json_error_t je;
            json_t *obj = json_loadb((const char *)parts[i].data, parts[i].len, 0, &je);
            if (!obj) {
                srv_reply_error(q, 400, "form field 'parameters' is not valid JSON: %s", je.text);
                return -1;
            }
            int rc = srv_params_parse(q, obj, p);
            json_decref(obj);
            if (rc < 0)
                return -1;
        } else if (strcmp(parts[i].name, "image") == 0 || strcmp(parts[i].name, "images") == 0) {
            imgs[n].data = parts[i].data;
            imgs[n].len = parts[i].len;
            snprintf(imgs[n].field, sizeof imgs[n].field, "form field '%.6s' #%d", parts[i].name, n + 1);
            n++;
        } else {
            srv_reply_error(q, 400, "unknown form field '%s' (expected 'image' and optionally 'parameters')",
                            parts[i].name);
            return -1;
        }
    }
    if (n == 0) {
        srv_reply_error(q, 400, "the form has no 'image' field (curl -F image=@xray.png)");
        return -1;
    }
    return n;
}

struct scored {
    int index;
    float score;
};

static int by_score_desc(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->index - y->index;
}

/* [{"label", "score"}, ...] best first, top_k of them (0: all). New reference. */
static json_t *labels_json(const struct mdl_model *m, const float *probs, int top_k)
{
    int nl = m->manifest.nlabels;
    struct scored s[nl > 0 ? nl : 1];
    for (int k = 0; k < nl; k++)
        s[k] = (struct scored){k, probs[k]};
    qsort(s, (size_t)nl, sizeof s[0], by_score_desc);
    int keep = top_k > 0 && top_k < nl ? top_k : nl;
    json_t *labels = json_array();
    for (int k = 0; k < keep; k++)
        json_array_append_new(labels, json_pack("{s:s, s:f}", "label", m->manifest.labels[s[k].index], "score",
                                                (double)s[k].score));
    return labels;
}

static void v1_answer(struct srv_infer *inf)
{
    const struct mdl_model *m = inf->m;
    json_t *body = srv_model_header(m);
    json_t *preds = json_array();
    json_t *timing = srv_infer_timing(inf);
    for (int i = 0; i < inf->n; i++) {
        json_t *p = json_object();
        if (inf->faces) {
            json_t *fs = json_array();
            for (int k = 0; k < inf->faces[i].n; k++) {
                json_t *f = srv_face_json(&inf->faces[i].faces[k]);
                if (inf->face_attention)
                    json_object_set_new(f, "attention", srv_face_attention_json(inf, i, &inf->faces[i].faces[k]));
                json_array_append_new(fs, f);
            }
            json_object_set_new(p, "faces", fs);
        } else if (m->manifest.nlabels > 0)
            json_object_set_new(
                p, "labels",
                labels_json(m, inf->probs + (size_t)i * (size_t)m->manifest.nlabels, inf->params.top_k));
        if (inf->att)
            json_object_set_new(p, "attention", srv_attention_json(inf, i));
        json_object_set(p, "timing_ms", timing);
        json_array_append_new(preds, p);
    }
    json_decref(timing);
    json_object_set_new(body, "predictions", preds);
    srv_reply_json(inf->q, 200, body);
}

void srv_v1_predict(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    const char *model = args[0];
    snprintf(q->model, sizeof q->model, "%s", model);
    char mt[64];
    media_type(q->content_type, mt, sizeof mt);
    struct srv_image_in *imgs = NULL;
    int n = 0;
    struct srv_params p;
    memset(&p, 0, sizeof p);
    if (q->body_len == 0) {
        srv_reply_error(q, 400, "empty body: send JSON {\"image\": \"<base64>\"}, a JPEG/PNG body, or a form "
                                "with an 'image' field");
        return;
    }
    /* curl -d / --data-binary sends application/x-www-form-urlencoded unless told otherwise:
     * take such a body by what it is (JSON, or an image's magic bytes). */
    if (strcmp(mt, "application/x-www-form-urlencoded") == 0 || strcmp(mt, "text/plain") == 0) {
        size_t k = 0;
        while (k < q->body_len && (q->body[k] == ' ' || q->body[k] == '\n' || q->body[k] == '\r' || q->body[k] == '\t'))
            k++;
        if (k < q->body_len && q->body[k] == '{')
            snprintf(mt, sizeof mt, "application/json");
        else if (q->body_len >= 3 && q->body[0] == 0xff && q->body[1] == 0xd8 && q->body[2] == 0xff)
            snprintf(mt, sizeof mt, "image/jpeg");
        else if (q->body_len >= 8 && memcmp(q->body, "\x89PNG\r\n\x1a\n", 8) == 0)
            snprintf(mt, sizeof mt, "image/png");
    }
    if (strcmp(mt, "application/json") == 0 || mt[0] == '\0') {
        if (from_json(q, &imgs, &n, &p) < 0)
            return;
    } else if (srv_is_multipart(q->content_type)) {
        if (from_multipart(q, &imgs, &n, &p) < 0)
            return;
    } else if (strcmp(mt, "image/jpeg") == 0 || strcmp(mt, "image/png") == 0 ||
               strcmp(mt, "application/octet-stream") == 0) {
        imgs = calloc(1, sizeof *imgs);
        if (!imgs) {
            srv_reply_error(q, 500, "out of memory");
            return;
        }
        imgs[0] = (struct srv_image_in){.data = q->body, .len = q->body_len};
        snprintf(imgs[0].field, sizeof imgs[0].field, "body (%.24s)", mt);
        n = 1;
        /* Query-string parameters for raw bodies: ?top_k=3&attention=maps&tasks=landmarks,age_gender.
         * Numbers and true/false are taken as JSON, lists split at commas, the rest as strings. */
        json_t *obj = json_object();
        static const char *const names[] = {"top_k",          "attention",     "attention_layers", "cam_labels",
                                            "detector",       "score_threshold", "iou_threshold",  "max_faces",
                                            "input_size",     "tasks",         "tiny_landmarks"};
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            const char *v = srv_req_query(q, names[k]);
            if (!v)
                continue;
            json_t *val;
            if (strcmp(names[k], "attention_layers") == 0 || strcmp(names[k], "cam_labels") == 0 ||
                strcmp(names[k], "tasks") == 0) {
                val = json_array();
                for (const char *t = v; *t;) {
                    size_t len = strcspn(t, ",");
                    json_array_append_new(val, json_stringn(t, len));
                    t += len + (t[len] == ',');
                }
            } else {
                val = json_loads(v, JSON_DECODE_ANY, NULL);
                if (!val || json_is_object(val) || json_is_array(val)) {
                    json_decref(val);
                    val = json_string(v);
                }
            }
            json_object_set_new(obj, names[k], val);
        }
        int rc = srv_params_parse(q, obj, &p);
        json_decref(obj);
        if (rc < 0) {
            srv_images_free(imgs, n);
            return;
        }
    } else {
        srv_reply_error(q, 415,
                        "unsupported Content-Type '%s': send application/json, image/jpeg, image/png or "
                        "multipart/form-data",
                        mt);
        return;
    }
    srv_infer_start(q, model, imgs, n, &p, v1_answer);
}
