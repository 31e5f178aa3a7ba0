/* Attention maps in answers: the v1 "attention" object of one prediction and the v2 extra
 * outputs (docs/API.md, "Attention maps").
 *
 *   json_t *a = srv_attention_json(inf, i);       // {"layers": [...], "cam": [...], "overlays": [...]}
 *   srv_attention_v2_outputs(inf, outputs);      // appends attention/<layer>, cam/<label> tensors
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

#endif
