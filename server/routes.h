/* The route handlers, one file per API, and the table http.c dispatches with.
 *
 * Patterns are literal paths where "{}" stands for one path argument made of [A-Za-z0-9._-]
 * (a model name or version); the matched arguments are in q-independent `args`.
 */
#ifndef SALIENT_SERVER_ROUTES_H
#define SALIENT_SERVER_ROUTES_H

#include "server/request.h"

#define SRV_MAX_ARGS 3
#define SRV_ARG_MAX 128

typedef void (*srv_handler)(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);

/* api_v2.c: Open Inference Protocol v2 and Triton's repository extension. */
void srv_v2_server(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);
void srv_v2_live(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);
void srv_v2_ready(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);
void srv_v2_model(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);
void srv_v2_model_ready(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);
void srv_v2_infer(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);
void srv_v2_repo_index(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);
void srv_v2_repo_load(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);
void srv_v2_repo_unload(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);

/* api_v1.c: the simple JSON API for curl and frontends. */
void srv_v1_models(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);
void srv_v1_model(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);
void srv_v1_predict(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);

/* faces.c: face verification. */
void srv_v1_verify(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);

/* metrics.c: Prometheus text. */
void srv_metrics(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);

/* openapi.c: the OpenAPI description of every endpoint. */
void srv_openapi(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);

/* static.c: the demo frontend from --web-root (GET / and /static/<file>). */
void srv_static(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX]);

#endif
