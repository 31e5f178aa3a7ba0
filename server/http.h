/* The HTTP front: libmicrohttpd daemon, routing, JSON responses, one log line per request.
 *
 *   struct srv_http *h = srv_http_start(&opts, nmodels);   // NULL + message (port in use, ...)
 *   ... wait for SIGTERM ...
 *   srv_http_stop(h);
 *
 * Routes today: GET /v2 (server metadata), /v2/health/live, /v2/health/ready; anything else
 * is a JSON 404 (or 405 for a known path with another method). The inference routes arrive
 * with the server issue (docs/API.md).
 */
#ifndef SALIENT_SERVER_HTTP_H
#define SALIENT_SERVER_HTTP_H

#include "server/options.h"

struct srv_http; /* opaque */

/* Start listening on o->host:o->port, serving nmodels loaded models.
 * Returns NULL with a message (eng_errmsg) if the address cannot be used. */
struct srv_http *srv_http_start(const struct srv_options *o, int nmodels);

/* The port actually bound (differs from the option when that was 0). */
int srv_http_port(const struct srv_http *h);

/* Mark the server not ready (health/ready answers 503) ahead of a shutdown. */
void srv_http_set_ready(struct srv_http *h, int ready);

/* Stop accepting, finish what is in flight, free everything. */
void srv_http_stop(struct srv_http *h);

#endif
