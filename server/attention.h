/* Attention maps in answers: the v1 "attention" object of one prediction and the v2 extra
 * outputs (docs/API.md, "Attention maps").
 *
 *   json_t *a = srv_attention_json(inf, i);       // {"layers": [...], "cam": [...], "overlays": [...]}
 *   srv_attention_v2_outputs(inf, outputs);      // appends attention/<layer>, cam/<label> tensors
 *   json_t *fa = srv_face_attention_json(inf, i, &face);   // one face's, face models
 */
#ifndef SALIENT_SERVER_ATTENTION_H
#define SALIENT_SERVER_ATTENTION_H

#include <jansson.h>

#include "server/infer.h"

/* Image i's maps (and PNG overlays when asked for). New reference; NULL on OOM. */
json_t *srv_attention_json(const struct srv_infer *inf, int i);

/* Append the batch's maps to a v2 "outputs" array as FP32 tensors [n, h, w]: layer maps
 * (normalised to [0, 1]) named attention/<layer>, CAMs (raw) named cam/<label>. */
void srv_attention_v2_outputs(const struct srv_infer *inf, json_t *outputs);

/* A face's maps (face model, params.attention set): {"layers", "cam", "overlays"} as for an image,
 * the overlays over the face's crop (mdl_face.crop, at its size in image i). New reference. */
json_t *srv_face_attention_json(const struct srv_infer *inf, int i, const struct mdl_face *f);

/* Every face's maps as v2 FP32 outputs [h, w]: image<i>/face<k>/attention/<layer> (normalised) and
 * image<i>/face<k>/cam/<label> (raw), face k in the order of image i's faces. */
void srv_face_attention_v2_outputs(const struct srv_infer *inf, json_t *outputs);

#endif
