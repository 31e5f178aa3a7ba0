/* One HTTP request as the route handlers see it, and how they answer it.
 *
 * http.c owns the libmicrohttpd side: it collects the body (up to --max-body-bytes), checks
 * the API key and CORS, picks the handler from the path, and writes the log line. A handler
 * either answers at once:
 *
 *   static void get_thing(struct srv_req *q) { srv_reply_json(q, 200, json_pack(...)); }
 *
 * or hands work to a model's batcher and answers later (infer.c does this for every route that
 * runs a model):
 *
 *   q->resume = build_answer;          // runs on an HTTP thread once the work is done
 *   srv_req_suspend(q);                // before submitting, so a fast worker cannot race it
 *   if (srv_batcher_submit(b, job) < 0) { srv_reply_error(q, 503, ...); srv_req_wake(q); }
 *   // worker: job->done -> srv_req_wake(q)
 *
 * Answers are JSON; errors are {"error": "..."} with the status saying whose fault it was.
 */
#ifndef SALIENT_SERVER_REQUEST_H
#define SALIENT_SERVER_REQUEST_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/options.h"
#include "server/registry.h"

struct MHD_Connection;

/* What every handler may use: settings, models, server-wide counters. */
struct srv_server {
    const struct srv_options *o;
    struct srv_registry *registry;
    atomic_int draining;          /* SIGTERM seen: not ready, finishing */
    atomic_int inflight;          /* requests between headers and their answer */
    atomic_uint_fast64_t http_requests[SRV_NSTATUS + 1]; /* every route, by status */
    atomic_int connections;       /* open client connections (the --max-connections cap) */
    atomic_uint_fast64_t connections_refused; /* closed at accept: --max-connections reached */
    atomic_uint_fast64_t uploads_cut;         /* closed: body slower than --connection-timeout */
    uint64_t started_us;
};

struct srv_req {
    struct srv_server *srv;
    struct MHD_Connection *conn;
    const char *method;        /* "GET", "POST", ... */
    const char *url;           /* path, without the query */
    const char *content_type;  /* the header's value, or "" */
    const uint8_t *body;       /* the whole body (not NUL-terminated), body_len bytes */
    size_t body_len;
    bool loopback;             /* the client is 127.0.0.0/8 or ::1 */
    uint64_t t0_us;

    /* For the log line and /metrics: the model this request was for, the batch it ran in. */
    char model[128];
    int batch;

    /* The answer, set by srv_reply_*. */
    unsigned status;
    char *reply;               /* owned */
    size_t reply_len;
    const char *reply_type;    /* Content-Type */
    int retry_after;           /* seconds, for 503 / 429; 0 none */
    const char *allow;         /* Allow header for 405 */

    /* Deferred answers. */
    void (*resume)(struct srv_req *q); /* called on an HTTP thread after srv_req_wake */
    void (*cleanup)(struct srv_req *q); /* called when the request ends, answered or not */
    void *state;               /* the handler's */
    bool suspended;
};

/* Answer with a JSON body (stolen; NULL means out of memory -> 500). */
void srv_reply_json(struct srv_req *q, unsigned status, json_t *body);
/* Answer {"error": "<formatted>"}. */
void srv_reply_error(struct srv_req *q, unsigned status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Answer with text (stolen, malloc'd) of a given content type. */
void srv_reply_text(struct srv_req *q, unsigned status, const char *content_type, char *text, size_t len);

/* A request header's value, or NULL. */
const char *srv_req_header(struct srv_req *q, const char *name);
/* A query-string argument's value, or NULL. */
const char *srv_req_query(struct srv_req *q, const char *name);

/* Park the connection until srv_req_wake (see above). Call on the HTTP thread in a handler. */
void srv_req_suspend(struct srv_req *q);
/* From any thread: the deferred work is done; q->resume runs next on an HTTP thread. */
void srv_req_wake(struct srv_req *q);

#endif
