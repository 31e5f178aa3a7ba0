/* Face answers: one face as DESIGN.md's JSON object, and POST /v1/faces:verify.
 *
 *   json_t *f = srv_face_json(&face);   // {"box", "score", "landmarks"?, "age"?, "gender"?, "expression"?, "descriptor"?}
 */
#ifndef SALIENT_SERVER_FACES_H
#define SALIENT_SERVER_FACES_H

#include <jansson.h>

#include "models/faceapi.h"

/* New reference: the fields face->has says were computed, in image pixels. */
json_t *srv_face_json(const struct mdl_face *face);

#endif
