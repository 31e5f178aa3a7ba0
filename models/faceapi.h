/* The faceapi family: face-api's networks on its own TF.js weights, and the face pipeline
 * detect -> crop -> landmarks, age/gender, expression, descriptor, as @vladmandic/face-api does it.
 *
 * A faceapi model takes decoded images, not a preprocessed tensor: crops come from the original
 * pixels. The server's side of it, all of it:
 *
 *   // start-up, as for every model
 *   struct mdl_model *m = mdl_model_load("build/model-repo/faces", "faces", 0);
 *   bool faces = mdl_model_takes_images(m);          // true: use mdl_model_run_images, not mdl_model_run
 *   struct mdl_runner r;                             // one per worker
 *   mdl_runner_init(&r, m, 2);
 *
 *   // HTTP thread, per instance: decode (server/decode_image.h), then the request's options
 *   struct mdl_face_opts o;
 *   mdl_face_opts_default(m, &o);                    // the manifest's defaults
 *   o.score_threshold = 0.6f;                        // "parameters": {"score_threshold": 0.6, ...}
 *   if (mdl_face_tasks_parse("landmarks,descriptor", &o.tasks) < 0 ||   // "tasks": [...] joined by ','
 *       mdl_face_opts_check(m, &o) < 0)
 *       return reply_error(400, eng_errmsg());        // "score_threshold 1.5 is outside (0, 1)"
 *
 *   // worker: a batch of n <= m->max_batch images, each with its own options
 *   struct mdl_image img[n] = {{w, h, channels, pixels, stride}, ...};
 *   struct mdl_face_opts opts[n] = {...};
 *   struct mdl_faces out[n] = {{0}};                 // .faces NULL: results live in r's arena
 *   if (mdl_model_run_images(m, &r, img, opts, n, out) < 0)   // until r's next run
 *       return reply_error(500, eng_errmsg());         // (opts were checked on the HTTP thread)
 *   for (int i = 0; i < n; i++)                      // n == 0 faces is a valid answer: []
 *       for (int k = 0; k < out[i].n; k++) render(&out[i].faces[k]);   // best score first
 *   // render: tools/salient_faces.c's face_json writes DESIGN.md's "faces" objects
 *   // ({"box", "score", "landmarks", "age", "gender", "expression", "descriptor"})
 *
 * The pixels must stay alive until the run returns (keep the decoded srv_image in the request's
 * state instead of a preprocessed tensor: m->in_h, in_w are 0 for this family and its manifest
 * has no "preprocess"). Results are copied or rendered before the runner's next run.
 *
 *   // POST /v1/faces:verify
 *   struct mdl_face_verify v;
 *   if (mdl_face_verify(m, &r, &img_a, &img_b, &o, 0.0f, &v) < 0)  // 0: face-api's threshold 0.6
 *       return reply_error(500, eng_errmsg());
 *   if (!v.found[0] || !v.found[1]) ... 422 "no face found in image a|b"
 *   reply {"distance": v.distance, "same_person": v.same_person, "threshold": v.threshold,
 *          "faces": [v.face[0] box+score, v.face[1] box+score]}
 *
 * Or give each image a buffer of your own (then results outlive the runner's next run):
 *   struct mdl_face buf[100]; out[i] = (struct mdl_faces){.faces = buf, .cap = 100};
 *
 * What a face holds (struct mdl_face): the detection box and score always; landmarks, age and
 * gender, expression and descriptor when the task was asked for (`has` says which). The heads
 * run on face-api's aligned crops (age/gender and expression: the box around the 68 landmarks
 * padded by 20 %; descriptor: its dlib-style box), so the landmark net runs whenever any head
 * is asked for, even if landmarks are not reported.
 * A face whose aligned crop falls outside the image gets no head results (has == 0), where
 * face-api would drop it silently.
 *
 * Networks (manifest "weights", face-api's own file names and tensor names):
 *   ssd_mobilenetv1         512 x 512, MobileNetV1 + 6 box predictors, 5118 anchors
 *   tiny_face_detector      input a multiple of 32 (default 416), 5 anchors on a 32-px grid
 *   face_landmark_68        112, 4 dense blocks -> 136 (68 x, y)
 *   face_landmark_68_tiny   112, 3 dense blocks -> 136
 *   face_recognition        150, dlib's ResNet-34-like net -> 128-D descriptor
 *   face_expression         112, 4 dense blocks -> 7 (softmax)
 *   age_gender              112, TinyXception -> age, (male, female) softmax
 * mdl_face_net_run runs one of them on a tensor (the parity test's per-network check).
 */
#ifndef SALIENT_MODELS_FACEAPI_H
#define SALIENT_MODELS_FACEAPI_H

#include <stdbool.h>
#include <stdint.h>

#include "models/model.h"
#include "models/preprocess.h"

#define MDL_FACE_LANDMARKS 68
#define MDL_FACE_EXPRESSIONS 7
#define MDL_FACE_DESCRIPTOR 128
#define MDL_FACE_MAX_FACES 1000  /* the most a manifest may allow per image */
#define MDL_FACE_VERIFY_THRESHOLD 0.6f /* face-api's FaceMatcher default */

/* face-api's order: neutral, happy, sad, angry, fearful, disgusted, surprised. */
extern const char *const mdl_face_expression_labels[MDL_FACE_EXPRESSIONS];

enum mdl_face_gender { MDL_FACE_FEMALE = 0, MDL_FACE_MALE = 1 };
extern const char *const mdl_face_gender_labels[2]; /* "female", "male" */

/* Tasks (bits of mdl_face_opts.tasks and mdl_face.has). Detection always runs. */
#define MDL_FACE_TASK_LANDMARKS (1u << 0)
#define MDL_FACE_TASK_AGE_GENDER (1u << 1)
#define MDL_FACE_TASK_EXPRESSION (1u << 2)
#define MDL_FACE_TASK_DESCRIPTOR (1u << 3)
#define MDL_FACE_TASKS_ALL 0xfu

enum mdl_face_detector {
    MDL_FACE_SSD = 0, /* "ssd_mobilenetv1": face-api's default, slower, finds small faces */
    MDL_FACE_TINY,    /* "tiny_face_detector" */
};

/* Per-image options. Start from mdl_face_opts_default; a zero field means the default. */
struct mdl_face_opts {
    enum mdl_face_detector detector;
    int input_size;        /* tiny detector's input side, a multiple of 32 up to the manifest's
                              max_input_size (0: manifest, 416); SSD is always 512 */
    float score_threshold; /* keep faces scoring above this, in (0, 1) (0: 0.5) */
    float iou_threshold;   /* NMS drops a box overlapping a kept one by more, in (0, 1]
                              (0: the detector's, SSD 0.5, tiny 0.4) */
    int max_faces;         /* 1..the manifest's max_faces (0: that max, 100 by default) */
    unsigned tasks;        /* MDL_FACE_TASK_* bits; 0 is detection only */
    bool tiny_landmarks;   /* FaceLandmark68TinyNet instead of FaceLandmark68Net */
    bool attention;        /* per face, the manifest's layer maps and CAMs (mdl_face_attention); needs
                              mdl_faces.maps buffers; a face gets those of the nets its tasks ran */
};

/* ---- attention maps per face (docs/MODELS.md, "Attention maps", Faces) ----
 *
 * The manifest's "attention": {"layers": [...], "cam": "linear" | "none"} names taps of the nets
 * that run on a face's aligned crop: face_expression/dense0..dense3 (FaceFeatureExtractor's dense
 * blocks, 56, 28, 14, 7 cells a side) and age_gender/entry_flow, middle_flow, exit_flow
 * (TinyXception). Layer maps are attention.h's (mean over channels of A^2, min-max normalised,
 * weights over the layers the face got). CAMs are exact, both heads being global average pool +
 * linear: the expression fc's row for each of the 7 expressions on face_expression/dense3, and the
 * age and gender fcs on age_gender/exit_flow ("female", "male": the gender logits; "age": the
 * regression, whose mean over cells is the predicted age). They are computed from the taps of the
 * heads' own forward, not by a second pass. */
#define MDL_FACE_CAMS 10 /* mdl_face_cam_labels */
extern const char *const mdl_face_cam_labels[MDL_FACE_CAMS]; /* the 7 expressions, "female", "male", "age" */

struct mdl_face_attention {
    int nlayers;
    char layer[MDL_ATTN_MAX_LAYERS][64];        /* "face_expression/dense3" */
    int layer_h[MDL_ATTN_MAX_LAYERS], layer_w[MDL_ATTN_MAX_LAYERS];
    size_t layer_off[MDL_ATTN_MAX_LAYERS];      /* floats from the start of a face's buffer */
    bool cam;                                   /* "cam": "linear" */
    bool has_cam[MDL_FACE_CAMS];                /* the label's net is loaded */
    int cam_h[MDL_FACE_CAMS], cam_w[MDL_FACE_CAMS];
    size_t cam_off[MDL_FACE_CAMS];
    size_t floats;                              /* per face */
};

/* m's face maps, or NULL when its manifest names none (or m is not a face model). */
const struct mdl_face_attention *mdl_face_attention(const struct mdl_model *m);

/* One face's maps: layer l at buf + layer_off[l] (in [0, 1]), CAM k at buf + cam_off[k] (raw: logit
 * or years). */
struct mdl_face_maps {
    float *buf;                          /* in: mdl_face_attention(m)->floats floats, or NULL */
    unsigned layers;                     /* out: bit l, layer l was computed */
    unsigned cams;                       /* out: bit k, CAM k was computed */
    float weight[MDL_ATTN_MAX_LAYERS];   /* out: layer l's share among the computed ones */
};

/* One face, coordinates in the image's pixels (x right, y down, origin at the top-left corner
 * of the top-left pixel), exactly face-api's numbers. */
struct mdl_face {
    float x, y, width, height;  /* detection box; may reach past the image's edges */
    float score;                /* detector's score */
    unsigned has;               /* MDL_FACE_TASK_* bits filled below */
    float landmarks[MDL_FACE_LANDMARKS][2];    /* x, y; face-api's order (jaw 0-16, brows, nose, eyes, mouth) */
    float age;                  /* years */
    enum mdl_face_gender gender;
    float gender_score;         /* probability of `gender`, >= 0.5 */
    float expression[MDL_FACE_EXPRESSIONS];    /* probabilities, mdl_face_expression_labels order */
    float descriptor[MDL_FACE_DESCRIPTOR];     /* compare with mdl_face_distance */
    int crop[4];                /* x, y, width, height: the aligned crop age/gender and expression see
                                   (inside the image; valid when they ran) */
    float map_box[4];           /* x, y, side, side: the square the heads' maps cover (the crop padded
                                   centred to a square, as face-api pads it), image pixels */
    struct mdl_face_maps maps;  /* with opts.attention */
};

/* One image's answer. */
struct mdl_faces {
    struct mdl_face *faces; /* in: NULL, or a caller's array of cap entries; out: where the faces
                               are (for NULL, the runner's arena, valid until that runner's next
                               run). In and out: set it again before every run. */
    int cap;                /* in: entries at faces (max_faces is cut to it); out: the capacity */
    int n;                  /* out: faces found, best score first; 0 is a valid answer */
    float *maps;            /* in, with opts.attention: cap * mdl_face_attention(m)->floats floats,
                               face k's maps at k * floats (set it again before every run) */
};

/* The manifest's defaults for m (a faceapi model). */
void mdl_face_opts_default(const struct mdl_model *m, struct mdl_face_opts *o);

/* Check o against m (what the request may ask): thresholds in range, input_size a multiple of
 * 32 within the manifest's max, max_faces within the manifest's, the networks the tasks need
 * present in the model. Fills zero fields with their defaults. Returns 0, or -1 with a message
 * fit for a 400 answer. */
int mdl_face_opts_check(const struct mdl_model *m, struct mdl_face_opts *o);

/* "landmarks,age_gender,expression,descriptor" (any subset, comma separated, "" for none, "all")
 * -> bits. Returns 0, or -1 with a message naming the unknown task. */
int mdl_face_tasks_parse(const char *list, unsigned *tasks);

/* "ssd_mobilenetv1" (or "ssd"), "tiny_face_detector" (or "tiny"). Returns 0, or -1 with a message. */
int mdl_face_detector_parse(const char *s, enum mdl_face_detector *d);
const char *mdl_face_detector_name(enum mdl_face_detector d);

/* Euclidean distance of two descriptors (face-api's euclideanDistance). */
float mdl_face_distance(const float *a, const float *b);

/* Face verification: the best (highest-scoring) face of each image, their descriptor distance,
 * and same_person = distance < threshold (threshold <= 0: MDL_FACE_VERIFY_THRESHOLD). */
struct mdl_face_verify {
    bool found[2];          /* a face was found in image a / b */
    struct mdl_face face[2];/* the best face of each (valid where found) */
    float distance;         /* NAN unless both were found */
    float threshold;
    bool same_person;
};

/* Run a and b (both detected with opts, whose tasks are replaced by the descriptor) and compare.
 * opts may be NULL (defaults). No face in an image is not an error: found[] says so. Resets the
 * runner's arenas. Returns 0, or -1 with a message (bad options, model not faceapi). */
int mdl_face_verify(const struct mdl_model *m, struct mdl_runner *r, const struct mdl_image *a,
                    const struct mdl_image *b, const struct mdl_face_opts *opts, float threshold,
                    struct mdl_face_verify *out);

/* ---- single networks (tests, benchmarks) ---- */

enum mdl_face_net {
    MDL_FACE_NET_SSD = 0,
    MDL_FACE_NET_TINY,
    MDL_FACE_NET_LANDMARKS,
    MDL_FACE_NET_LANDMARKS_TINY,
    MDL_FACE_NET_RECOGNITION,
    MDL_FACE_NET_EXPRESSION,
    MDL_FACE_NET_AGE_GENDER,
    MDL_FACE_NNETS
};

/* face-api's names: "ssd_mobilenetv1", "tiny_face_detector", "face_landmark_68",
 * "face_landmark_68_tiny", "face_recognition", "face_expression", "age_gender". */
extern const char *const mdl_face_net_names[MDL_FACE_NNETS];
int mdl_face_net_parse(const char *s, enum mdl_face_net *net);

/* The square input side of net (tiny detector: input_size, 0 for the manifest's default). */
int mdl_face_net_side(const struct mdl_model *m, enum mdl_face_net net, int input_size);

/* Floats per image mdl_face_net_run writes for net at input side `side`:
 *   ssd_mobilenetv1      5118 x 5: decoded boxes (ymin, xmin, ymax, xmax, relative), then 5118 scores
 *   tiny_face_detector   (side/32)^2 x 25: the raw output grid, NHWC (5 anchors x (x, y, w, h, score))
 *   face_landmark_68*    136: the raw output (x0, y0, x1, ...), relative to the 112 x 112 input
 *   face_recognition     128: the descriptor
 *   face_expression      7: probabilities
 *   age_gender           3: age, p(male), p(female) */
int64_t mdl_face_net_outputs(enum mdl_face_net net, int side);

/* Run net on x, n images of side x side x 3 floats (NHWC, RGB, 0..255: what face-api's
 * toBatchTensor gives the net, before the net's own mean and scale), into out (n x
 * mdl_face_net_outputs floats). n is at most the model's head batch for the heads and any
 * number for the detectors (run one at a time). Resets the runner's arenas. Returns 0, or -1
 * with a message (network not loaded, bad side). */
int mdl_face_net_run(const struct mdl_model *m, struct mdl_runner *r, enum mdl_face_net net, const float *x, int n,
                     int side, float *out);

/* The same for a head (face_expression, age_gender) and its face maps: maps[n] (buffers set)
 * get the manifest's layers of that net and its CAMs, as the pipeline computes them. */
int mdl_face_net_run_maps(const struct mdl_model *m, struct mdl_runner *r, enum mdl_face_net net, const float *x,
                          int n, int side, float *out, struct mdl_face_maps *maps);

/* The model's limits, from its manifest. */
int mdl_face_max_faces(const struct mdl_model *m);
int mdl_face_head_batch(const struct mdl_model *m);
bool mdl_face_has_net(const struct mdl_model *m, enum mdl_face_net net);

#endif
