/* faces.c: faces in answers, and face verification (POST /v1/faces:verify). */
#include "config.h"
#include "server/faces.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base64.h"
#include "server/infer.h"
#include "server/multipart.h"
#include "server/routes.h"

json_t *srv_face_json(const struct mdl_face *f)
{
    json_t *o = json_pack("{s:{s:f, s:f, s:f, s:f}, s:f}", "box", "x", (double)f->x, "y", (double)f->y, "width",
                          (double)f->width, "height", (double)f->height, "score", (double)f->score);
    if (f->has & MDL_FACE_TASK_LANDMARKS) {
        json_t *pts = json_array();
        for (int i = 0; i < MDL_FACE_LANDMARKS; i++)
            json_array_append_new(pts, json_pack("[f, f]", (double)f->landmarks[i][0], (double)f->landmarks[i][1]));
        json_object_set_new(o, "landmarks", pts);
    }
    if (f->has & MDL_FACE_TASK_AGE_GENDER) {
        json_object_set_new(o, "age", json_real(f->age));
        json_object_set_new(o, "gender", json_pack("{s:s, s:f}", "label", mdl_face_gender_labels[f->gender], "score",
                                                   (double)f->gender_score));
    }
    if (f->has & MDL_FACE_TASK_EXPRESSION) {
        json_t *scores = json_object();
        int best = 0;
        for (int i = 0; i < MDL_FACE_EXPRESSIONS; i++) {
            json_object_set_new(scores, mdl_face_expression_labels[i], json_real(f->expression[i]));
            best = f->expression[i] > f->expression[best] ? i : best;
        }
        json_object_set_new(o, "expression",
                            json_pack("{s:s, s:o}", "label", mdl_face_expression_labels[best], "scores", scores));
    }
    if (f->has & MDL_FACE_TASK_DESCRIPTOR) {
        json_t *d = json_array();
        for (int i = 0; i < MDL_FACE_DESCRIPTOR; i++)
            json_array_append_new(d, json_real(f->descriptor[i]));
        json_object_set_new(o, "descriptor", d);
    }
    return o;
}

/* ---- verify ---------------------------------------------------------------------------- */

/* The best face of image i that has a descriptor, or NULL. */
static const struct mdl_face *best_face(const struct srv_infer *inf, int i)
{
    const struct mdl_faces *fs = &inf->faces[i];
    for (int k = 0; k < fs->n; k++) /* best score first */
        if (fs->faces[k].has & MDL_FACE_TASK_DESCRIPTOR)
            return &fs->faces[k];
    return NULL;
}

static void verify_answer(struct srv_infer *inf)
{
    float threshold = inf->params.verify_threshold;
    const struct mdl_face *a = best_face(inf, 0), *b = best_face(inf, 1);
    if (!a || !b) {
        srv_reply_error(inf->q, 422, "no face found in image %d (%s): nothing to compare", a ? 2 : 1,
                        inf->imgs[a ? 1 : 0].field);
        return;
    }
    float d = mdl_face_distance(a->descriptor, b->descriptor);
    json_t *body = srv_model_header(inf->m);
    json_t *faces = json_array();
    for (int i = 0; i < 2; i++) {
        const struct mdl_face *f = i ? b : a;
        json_array_append_new(faces, json_pack("{s:{s:f, s:f, s:f, s:f}, s:f}", "box", "x", (double)f->x, "y",
                                               (double)f->y, "width", (double)f->width, "height", (double)f->height,
                                               "score", (double)f->score));
    }
    json_object_set_new(body, "distance", json_real(d));
    json_object_set_new(body, "threshold", json_real(threshold));
    json_object_set_new(body, "same_person", json_boolean(d < threshold));
    json_object_set_new(body, "faces", faces);
    json_object_set_new(body, "timing_ms", srv_infer_timing(inf));
    srv_reply_json(inf->q, 200, body);
}

/* {"images": ["<base64>", "<base64>"], "model": "faces", "threshold": 0.6, "parameters": {...}}
 * or a form with two 'image' fields (and optionally 'threshold'). */
void srv_v1_verify(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    (void)args;
    struct srv_params p;
    memset(&p, 0, sizeof p);
    struct srv_image_in *imgs = calloc(2, sizeof *imgs);
    char model[SRV_ARG_MAX] = "faces";
    double threshold = MDL_FACE_VERIFY_THRESHOLD;
    json_t *root = NULL;
    int n = 0;
    if (!imgs) {
        srv_reply_error(q, 500, "out of memory");
        return;
    }
    if (srv_is_multipart(q->content_type)) {
        struct srv_part parts[4];
        int np = 0;
        char err[256];
        if (srv_multipart_parse(q->body, q->body_len, q->content_type, parts, 4, &np, err, sizeof err) < 0) {
            srv_reply_error(q, 400, "%s", err);
            goto fail;
        }
        for (int i = 0; i < np; i++) {
            if (strcmp(parts[i].name, "image") == 0 && n < 2) {
                imgs[n] = (struct srv_image_in){.data = parts[i].data, .len = parts[i].len};
                snprintf(imgs[n].field, sizeof imgs[n].field, "form field 'image' #%d", n + 1);
                n++;
            } else if (strcmp(parts[i].name, "threshold") == 0) {
                char num[32];
                snprintf(num, sizeof num, "%.*s", (int)(parts[i].len < 31 ? parts[i].len : 31),
                         (const char *)parts[i].data);
                char *end;
                threshold = strtod(num, &end);
                if (*end || end == num) {
                    srv_reply_error(q, 400, "form field 'threshold' must be a number");
                    goto fail;
                }
            } else {
                srv_reply_error(q, 400, "unexpected form field '%s' (send two 'image' fields, optionally 'threshold')",
                                parts[i].name);
                goto fail;
            }
        }
    } else {
        json_error_t je;
        root = json_loadb((const char *)q->body, q->body_len, 0, &je);
        if (!root || !json_is_object(root)) {
            srv_reply_error(q, 400, "body must be JSON {\"images\": [\"<base64>\", \"<base64>\"]}%s%s",
                            root ? "" : ": ", root ? "" : je.text);
            goto fail;
        }
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v)
        {
            if (strcmp(key, "images") && strcmp(key, "model") && strcmp(key, "threshold") && strcmp(key, "parameters")) {
                srv_reply_error(q, 400, "unknown field '%s' (expected images, model, threshold, parameters)", key);
                goto fail;
            }
        }
        json_t *list = json_object_get(root, "images");
        if (!json_is_array(list) || json_array_size(list) != 2) {
            srv_reply_error(q, 400, "\"images\" must be a list of exactly two base64 images");
            goto fail;
        }
        for (; n < 2; n++) {
            json_t *s = json_array_get(list, (size_t)n);
            snprintf(imgs[n].field, sizeof imgs[n].field, "images[%d]", n);
            uint8_t *bytes;
            size_t len;
            char err[256];
            if (!json_is_string(s) || srv_base64_decode(json_string_value(s), json_string_length(s), &bytes, &len,
                                                        NULL, 0, err, sizeof err) < 0) {
                srv_reply_error(q, 400, "%s: %s", imgs[n].field, json_is_string(s) ? err : "must be a base64 string");
                goto fail;
            }
            imgs[n].data = bytes;
            imgs[n].len = len;
            imgs[n].owned = true;
        }
        json_t *m = json_object_get(root, "model"), *t = json_object_get(root, "threshold");
        if (m && (!json_is_string(m) || json_string_length(m) >= sizeof model)) {
            srv_reply_error(q, 400, "\"model\" must be a model name");
            goto fail;
        }
        if (m)
            snprintf(model, sizeof model, "%s", json_string_value(m));
        if (t && !json_is_number(t)) {
            srv_reply_error(q, 400, "\"threshold\" must be a number");
            goto fail;
        }
        if (t)
            threshold = json_number_value(t);
        if (srv_params_parse(q, json_object_get(root, "parameters"), &p) < 0)
            goto fail;
    }
    if (n != 2) {
        srv_reply_error(q, 400, "face verification takes exactly two images, got %d", n);
        goto fail;
    }
    if (!(threshold > 0 && threshold < 10)) {
        srv_reply_error(q, 400, "\"threshold\" must be a distance in (0, 10), face-api's default is 0.6");
        goto fail;
    }
    if (p.attention != SRV_ATTENTION_NONE || p.top_k) {
        srv_reply_error(q, 400, "face verification takes only face parameters (detector, score_threshold, ...)");
        goto fail;
    }
    /* Only the descriptor is needed (the landmark net runs for its alignment anyway). */
    p.face.tasks = MDL_FACE_TASK_DESCRIPTOR;
    p.face_set |= SRV_FACE_TASKS;
    p.verify_threshold = (float)threshold;
    json_decref(root);
    srv_infer_start(q, model, imgs, 2, &p, verify_answer);
    return;
fail:
    json_decref(root);
    srv_images_free(imgs, n);
}
