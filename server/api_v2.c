/* api_v2.c: the Open Inference Protocol v2 (KServe) and Triton's model-repository extension. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "server/attention.h"
#include "server/base64.h"
#include "server/faces.h"
#include "server/infer.h"
#include "server/routes.h"

#define MAX_INPUTS 256

void srv_v2_server(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    (void)args;
    srv_reply_json(q, 200,
                   json_pack("{s:s, s:s, s:[s, s, s]}", "name", "salient", "version", PACKAGE_VERSION, "extensions",
                             "model_repository", "attention_maps", "simple_json_v1"));
}

void srv_v2_live(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    (void)args;
    srv_reply_json(q, 200, json_pack("{s:b}", "live", 1));
}

void srv_v2_ready(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    (void)args;
    bool ready = !atomic_load(&q->srv->draining) && srv_registry_all_ready(q->srv->registry);
    srv_reply_json(q, ready ? 200 : 503, json_pack("{s:b}", "ready", ready));
}

/* The model (a new reference) for args {name[, version]}, or NULL having answered 404/503. */
static struct srv_model *model_arg(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX], bool want_loaded)
{
    snprintf(q->model, sizeof q->model, "%s", args[0]);
    struct srv_model *sm = srv_registry_acquire(q->srv->registry, args[0]);
    char reason[512];
    enum srv_model_state st = srv_registry_state(q->srv->registry, args[0], reason, sizeof reason);
    if (!sm && st == SRV_MODEL_UNKNOWN) {
        q->model[0] = '\0';
        srv_reply_error(q, 404, "no model named '%s' (see GET /v1/models)", args[0]);
        return NULL;
    }
    if (sm && args[1][0] && strcmp(args[1], sm->m->manifest.version) != 0) {
        srv_reply_error(q, 404, "model '%s' has no version '%s' (serving version '%s')", args[0], args[1],
                        sm->m->manifest.version);
        srv_model_release(sm);
        return NULL;
    }
    if (!sm && want_loaded)
        srv_reply_error(q, 503, "model '%s' is not loaded: %s", args[0], reason);
    return sm;
}

void srv_v2_model(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    struct srv_model *sm = model_arg(q, args, true);
    if (!sm)
        return;
    const struct mdl_model *m = sm->m;
    json_t *labels = json_array();
    for (int i = 0; i < m->manifest.nlabels; i++)
        json_array_append_new(labels, json_string(m->manifest.labels[i]));
    int mb = srv_batcher_opts(sm->batcher)->max_batch;
    json_t *outputs = json_array();
    if (mdl_model_takes_images(m)) {
        json_array_append_new(outputs, json_pack("{s:s, s:s, s:[i]}", "name", "faces", "datatype", "BYTES", "shape", -1));
    } else {
        if (m->manifest.nlabels > 0)
            json_array_append_new(outputs, json_pack("{s:s, s:s, s:[i, i]}", "name", "probs", "datatype", "FP32",
                                                     "shape", -1, m->manifest.nlabels));
        json_array_append_new(outputs, json_pack("{s:s, s:s, s:[i, I]}", "name", "logits", "datatype", "FP32",
                                                 "shape", -1, (json_int_t)m->nout));
    }
    json_t *body = json_pack(
        "{s:s, s:[s], s:s, s:[{s:s, s:s, s:[i]}], s:o, s:{s:o, s:b, s:s, s:s, s:i, s:[I, I, I]}}", "name",
        m->manifest.name, "versions", m->manifest.version, "platform", "salient", "inputs", "name", "image",
        "datatype", "BYTES", "shape", -1, "outputs", outputs, "parameters", "labels", labels, "demo",
        m->manifest.demo, "family", m->manifest.family, "task", m->manifest.task, "max_batch_size", mb,
        "input_size", (json_int_t)m->in_h, (json_int_t)m->in_w, (json_int_t)m->in_c);
    srv_reply_json(q, 200, body);
    srv_model_release(sm);
}

void srv_v2_model_ready(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    struct srv_model *sm = model_arg(q, args, false);
    if (!sm) {
        if (!q->status) /* known but not loaded */
            srv_reply_json(q, 503, json_pack("{s:s, s:b}", "name", args[0], "ready", 0));
        return;
    }
    srv_reply_json(q, 200, json_pack("{s:s, s:b}", "name", args[0], "ready", 1));
    srv_model_release(sm);
}

/* ---- infer ----------------------------------------------------------------------------- */

static json_t *tensor_json(const char *name, const float *data, int64_t rows, int64_t cols)
{
    json_t *d = json_array();
    for (int64_t i = 0; i < rows * cols; i++)
        json_array_append_new(d, json_real((double)data[i]));
    return json_pack("{s:s, s:s, s:[I, I], s:o}", "name", name, "datatype", "FP32", "shape", (json_int_t)rows,
                     (json_int_t)cols, "data", d);
}

static void v2_answer(struct srv_infer *inf)
{
    const struct mdl_model *m = inf->m;
    json_t *outputs = json_array();
    if (inf->faces) {
        /* One JSON document per image: its faces as v1 gives them. */
        json_t *data = json_array();
        for (int i = 0; i < inf->n; i++) {
            json_t *fs = json_array();
            for (int k = 0; k < inf->faces[i].n; k++)
                json_array_append_new(fs, srv_face_json(&inf->faces[i].faces[k]));
            char *text = json_dumps(fs, JSON_COMPACT | JSON_REAL_PRECISION(7));
            json_decref(fs);
            json_array_append_new(data, json_string(text ? text : "[]"));
            free(text);
        }
        json_array_append_new(outputs, json_pack("{s:s, s:s, s:[i], s:o}", "name", "faces", "datatype", "BYTES",
                                                 "shape", inf->n, "data", data));
    } else {
        if (m->manifest.nlabels > 0)
            json_array_append_new(outputs, tensor_json("probs", inf->probs, inf->n, m->manifest.nlabels));
        json_array_append_new(outputs, tensor_json("logits", inf->logits, inf->n, m->nout));
    }
    if (inf->att)
        srv_attention_v2_outputs(inf, outputs);
    if (inf->face_attention)
        srv_face_attention_v2_outputs(inf, outputs);
    json_t *body = json_pack("{s:s, s:s, s:{s:b, s:o}, s:o}", "model_name", m->manifest.name, "model_version",
                             m->manifest.version, "parameters", "demo", m->manifest.demo, "timing_ms",
                             srv_infer_timing(inf), "outputs", outputs);
    srv_reply_json(inf->q, 200, body);
}

void srv_v2_infer(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    if (args[1][0]) {
        /* /versions/{v}/infer: only the version being served may answer, as for metadata. */
        struct srv_model *sm = model_arg(q, args, true);
        if (!sm)
            return;
        srv_model_release(sm);
    }
    snprintf(q->model, sizeof q->model, "%s", args[0]);
    json_error_t je;
    json_t *root = json_loadb((const char *)q->body, q->body_len, 0, &je);
    if (!root) {
        srv_reply_error(q, 400, "body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return;
    }
    struct srv_image_in *imgs = NULL;
    int n = 0;
    json_t *inputs = json_object_get(root, "inputs");
    if (!json_is_object(root) || !json_is_array(inputs) || json_array_size(inputs) != 1) {
        srv_reply_error(q, 400, "body must be {\"inputs\": [{\"name\": \"image\", \"datatype\": \"BYTES\", "
                                "\"shape\": [N], \"data\": [\"<base64>\", ...]}]}");
        goto fail;
    }
    json_t *in = json_array_get(inputs, 0);
    const char *dt = json_string_value(json_object_get(in, "datatype"));
    json_t *shape = json_object_get(in, "shape");
    json_t *data = json_object_get(in, "data");
    if (!json_is_object(in) || !json_is_string(json_object_get(in, "name"))) {
        srv_reply_error(q, 400, "inputs[0] must be an object with a \"name\"");
        goto fail;
    }
    if (!dt || strcmp(dt, "BYTES") != 0) {
        srv_reply_error(q, 400, "inputs[0].datatype must be \"BYTES\" (encoded images), got %s%s%s", dt ? "\"" : "",
                        dt ? dt : "nothing", dt ? "\"" : "");
        goto fail;
    }
    if (!json_is_array(data) || json_array_size(data) == 0) {
        srv_reply_error(q, 400, "inputs[0].data must be a non-empty list of base64 strings");
        goto fail;
    }
    size_t count = json_array_size(data);
    if (!json_is_array(shape) || json_array_size(shape) < 1 || !json_is_integer(json_array_get(shape, 0)) ||
        (size_t)json_integer_value(json_array_get(shape, 0)) != count) {
        srv_reply_error(q, 400, "inputs[0].shape must be [%zu], the number of images in data", count);
        goto fail;
    }
    if (count > MAX_INPUTS) {
        srv_reply_error(q, 400, "%zu images in one request; at most %d", count, MAX_INPUTS);
        goto fail;
    }
    struct srv_params p;
    if (srv_params_parse(q, json_object_get(root, "parameters"), &p) < 0)
        goto fail;
    /* A v2 tensor holds one label for the whole batch: default to every label's CAM. */
    p.cam_all = true;
    imgs = calloc(count, sizeof *imgs);
    if (!imgs) {
        srv_reply_error(q, 500, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < count; i++, n++) {
        json_t *v = json_array_get(data, i);
        char err[256];
        uint8_t *bytes;
        size_t len;
        snprintf(imgs[i].field, sizeof imgs[i].field, "inputs[0].data[%zu]", i);
        if (!json_is_string(v)) {
            srv_reply_error(q, 400, "%s must be a base64 string", imgs[i].field);
            goto fail;
        }
        if (srv_base64_decode(json_string_value(v), json_string_length(v), &bytes, &len, NULL, 0, err,
                              sizeof err) < 0) {
            srv_reply_error(q, 400, "%s: %s", imgs[i].field, err);
            goto fail;
        }
        imgs[i].data = bytes;
        imgs[i].len = len;
        imgs[i].owned = true;
    }
    json_decref(root);
    srv_infer_start(q, args[0], imgs, n, &p, v2_answer);
    return;
fail:
    srv_images_free(imgs, n);
    json_decref(root);
}

/* ---- repository ------------------------------------------------------------------------ */

void srv_v2_repo_index(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    (void)args;
    srv_reply_json(q, 200, srv_registry_index(q->srv->registry));
}

void srv_v2_repo_load(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    bool notfound;
    snprintf(q->model, sizeof q->model, "%s", args[0]);
    if (srv_registry_load(q->srv->registry, args[0], &notfound) < 0) {
        if (notfound)
            q->model[0] = '\0';
        srv_reply_error(q, notfound ? 404 : 400, "%s", eng_errmsg());
        return;
    }
    srv_reply_json(q, 200, json_pack("{s:s, s:s}", "name", args[0], "state", "READY"));
}

void srv_v2_repo_unload(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    snprintf(q->model, sizeof q->model, "%s", args[0]);
    if (srv_registry_unload(q->srv->registry, args[0]) < 0) {
        srv_reply_error(q, 400, "%s", eng_errmsg());
        return;
    }
    srv_reply_json(q, 200, json_pack("{s:s, s:s}", "name", args[0], "state", "UNAVAILABLE"));
}
