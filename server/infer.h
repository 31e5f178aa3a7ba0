/* Running a model for a request: decode and preprocess the images on the HTTP thread, queue
 * them on the model's batcher, answer once the batch has run.
 *
 *   struct srv_image_in imgs[2] = {{.data = a, .len = alen, .field = "instances[0].image"}, ...};
 *   struct srv_params p;
 *   if (srv_params_parse(q, json_object_get(body, "parameters"), &p) < 0) return;   // answered 400
 *   srv_infer_start(q, "chexnet-demo", imgs, 2, &p, v1_answer);   // answers errors itself
 *   ...
 *   static void v1_answer(struct srv_infer *inf) {   // on an HTTP thread, job finished OK
 *       ... inf->probs[i * nlabels + k], srv_infer_timing(inf) ...
 *       srv_reply_json(inf->q, 200, body);
 *   }
 *
 * Errors answered here, each naming the field: unknown model 404, model not loaded 503,
 * more images than the model's max_batch 400, bad images 400/413/415 (decode_image.h),
 * queue full 503 + Retry-After, timeout 504, forward failure 500.
 */
#ifndef SALIENT_SERVER_INFER_H
#define SALIENT_SERVER_INFER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "models/attention.h"
#include "models/faceapi.h"
#include "server/batcher.h"
#include "server/decode_image.h"
#include "server/registry.h"
#include "server/request.h"

#define SRV_FIELD_MAX 64

/* One encoded image from a request. */
struct srv_image_in {
    const uint8_t *data;
    size_t len;
    bool owned;                 /* data is malloc'd (decoded base64) and freed with the request */
    char field[SRV_FIELD_MAX];  /* where it came from, for error messages */
};

enum srv_attention { SRV_ATTENTION_NONE, SRV_ATTENTION_MAPS, SRV_ATTENTION_PNG };

#define SRV_MAX_LAYER_SEL 16
#define SRV_MAX_CAM_SEL 64

/* Request parameters, common to v1 and v2. */
struct srv_params {
    int top_k;                  /* labels to report, best first; 0: all */
    enum srv_attention attention;
    int nlayer_names;           /* "attention_layers"; 0: every layer the manifest names */
    char layer_names[SRV_MAX_LAYER_SEL][64];
    int ncam_names;             /* "cam_labels"; 0: the default below */
    char cam_names[SRV_MAX_CAM_SEL][128];
    bool cam_all;               /* default CAMs: every label (v2) rather than each image's best (v1) */
    /* Face models: what the request set (face_set bits), checked against the model later. */
    unsigned face_set;          /* SRV_FACE_* bits */
    struct mdl_face_opts face;  /* the values set */
    char face_first[32];        /* the first face parameter given, for "applies to face models only" */
    float verify_threshold;     /* POST /v1/faces:verify: same person below this distance */
};

#define SRV_FACE_DETECTOR (1u << 0)
#define SRV_FACE_SCORE (1u << 1)
#define SRV_FACE_IOU (1u << 2)
#define SRV_FACE_MAX_FACES (1u << 3)
#define SRV_FACE_INPUT_SIZE (1u << 4)
#define SRV_FACE_TASKS (1u << 5)
#define SRV_FACE_TINY_LANDMARKS (1u << 6)

struct srv_infer {
    struct srv_req *q;
    struct srv_model *sm;       /* reference held until the request ends */
    const struct mdl_model *m;
    int n;
    struct srv_image_in *imgs;  /* n, owned */
    struct srv_params params;
    float *input;               /* n preprocessed images */
    float *probs;               /* n * nlabels */
    float *logits;              /* n * nout */
    uint64_t preprocess_us;
    /* Attention (params.attention != NONE): per image state and maps, the chosen layers (indices
     * into m->attn) and CAM labels, and the decoded images for PNG overlays. */
    struct mdl_attn_image *att;
    float *att_buf;
    int nlayers, layers[SRV_MAX_LAYER_SEL];
    int ncams;                  /* CAMs per image */
    int *cam_labels;            /* n * ncams label indices */
    struct srv_image *decoded;  /* n, kept for overlays and for face models */
    /* Face models: the decoded images as views, their options, result lists and storage. */
    struct mdl_image *views;
    struct mdl_face_opts *face_opts;
    struct mdl_faces *faces;
    struct mdl_face *face_buf;
    /* Face models with attention: the faces' map buffers (n * max_faces faces), the layers
     * reported (layers[], nlayers: indices into mdl_face_attention's) and the CAM labels asked for
     * (indices into mdl_face_cam_labels; none: each face's best expression, v2 every label). */
    float *face_maps;
    bool face_attention;
    int nface_cams, face_cams[MDL_FACE_CAMS];
    struct srv_job job;
    void (*answer)(struct srv_infer *inf);
};

/* Parse "parameters" (may be NULL). Returns 0, or -1 having answered 400 naming the bad key. */
int srv_params_parse(struct srv_req *q, json_t *obj, struct srv_params *p);

/* Take imgs (n entries; ownership passes here even on error) and run them through model.
 * Returns 0 when queued (answer() builds the reply later), -1 when already answered. */
int srv_infer_start(struct srv_req *q, const char *model, struct srv_image_in *imgs, int n,
                    const struct srv_params *p, void (*answer)(struct srv_infer *inf));

/* {"queue": ms, "preprocess": ms, "compute": ms, "batch": images in the batch}. New reference. */
json_t *srv_infer_timing(const struct srv_infer *inf);

/* {"model", "version", "demo"} of inf's model, for every answer. New reference. */
json_t *srv_model_header(const struct mdl_model *m);

/* Free n images' owned bytes and the array. */
void srv_images_free(struct srv_image_in *imgs, int n);

#endif
