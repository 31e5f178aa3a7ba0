/* The HTTP front: the libmicrohttpd daemon serving the routes in routes.h.
 *
 *   struct srv_http *h = srv_http_start(&opts, registry);  // NULL + message (port in use, ...)
 *   ... wait for SIGTERM ...
 *   srv_http_drain(h, opts.exit_timeout);   // not ready, no new connections, finish accepted work
 *   srv_http_stop(h);
 *
 * libmicrohttpd's threads (--http-threads) read bodies, decode and preprocess images; a request
 * that runs a model is parked (suspended) while the model's batcher works and resumed with
 * its answer, so no HTTP thread ever waits on inference (request.h).
 */
#ifndef SALIENT_SERVER_HTTP_H
#define SALIENT_SERVER_HTTP_H

#include "server/options.h"
#include "server/registry.h"

struct srv_http; /* opaque */

/* Listen on o->host:o->port serving registry's models (both borrowed until stop).
 * NULL with a message (eng_errmsg) if the address cannot be used. */
struct srv_http *srv_http_start(const struct srv_options *o, struct srv_registry *registry);

/* The port actually bound (differs from the option when that was 0). */
int srv_http_port(const struct srv_http *h);

/* Begin shutdown: readiness answers 503, the listening socket closes, answers carry
 * "Connection: close"; wait up to timeout_s for every accepted request to be answered.
 * Returns 0 when all were, -1 on timeout. */
int srv_http_drain(struct srv_http *h, int timeout_s);

/* Close every connection and free h. Call after srv_http_drain returned 0. */
void srv_http_stop(struct srv_http *h);

#endif
