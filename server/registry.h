/* The served models: what the repository holds, which are loaded, and safe reloads.
 *
 *   struct srv_registry *r = srv_registry_open(&opts);     // scans and loads every model
 *   struct srv_model *sm = srv_registry_acquire(r, "chexnet-demo");
 *   if (!sm) -> 404 (or 503 if it exists but is not loaded: srv_registry_state says which)
 *   ... srv_batcher_submit(sm->batcher, job) ...
 *   srv_model_release(sm);                                  // when the request is answered
 *   srv_registry_close(r);
 *
 * A loaded version of a model (struct srv_model) is reference-counted: each request holds a
 * reference from routing until its answer is sent. A reload builds the new version completely
 * (weights, arenas, workers) before swapping it in, so a failed reload leaves the old one
 * serving and a good one swaps without failing anything in flight: requests that hold the old
 * version finish on it, and the last release stops its workers and frees it. Releases happen on
 * HTTP or control threads, never on a worker (a worker cannot join itself).
 *
 * Per-name statistics (struct srv_slot) outlive reloads, so /metrics counters only grow.
 */
#ifndef SALIENT_SERVER_REGISTRY_H
#define SALIENT_SERVER_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "models/model.h"
#include "server/batcher.h"
#include "server/options.h"

/* HTTP statuses counted per model in /metrics. */
#define SRV_STATUS_CODES {200, 400, 401, 403, 404, 405, 413, 415, 422, 429, 500, 503, 504}
#define SRV_NSTATUS 13

struct srv_slot_stats {
    atomic_uint_fast64_t requests[SRV_NSTATUS + 1]; /* by status, last: any other */
    atomic_uint_fast64_t request_us;                /* summed over answered requests */
    atomic_uint_fast64_t preprocess_us;             /* decode + preprocess, summed */
    struct srv_batch_stats batch;                   /* filled by the batchers */
};

struct srv_slot;

struct srv_model {
    struct mdl_model *m;            /* owned */
    struct srv_batcher *batcher;    /* owned */
    struct srv_slot *slot;          /* the name it serves under */
    atomic_int refs;
};

enum srv_model_state {
    SRV_MODEL_UNKNOWN,     /* not in the repository */
    SRV_MODEL_READY,
    SRV_MODEL_UNAVAILABLE, /* in the repository, not loaded (failed, or unloaded) */
};

struct srv_registry; /* opaque */

/* Scan o->model_repo and load every model (logging each to stderr; a model that fails is
 * kept as UNAVAILABLE with its reason). NULL with a message only when the repository cannot
 * be read at all. */
struct srv_registry *srv_registry_open(const struct srv_options *o);
void srv_registry_close(struct srv_registry *r);

/* The loaded version of name with a new reference, or NULL (see srv_registry_state). */
struct srv_model *srv_registry_acquire(struct srv_registry *r, const char *name);
void srv_model_release(struct srv_model *sm);

/* Whether name is in the repository and loaded; reason (may be NULL) gets why not. */
enum srv_model_state srv_registry_state(struct srv_registry *r, const char *name, char *reason, size_t len);

/* The statistics of name (in the repository at some point), or NULL. Never freed before close. */
struct srv_slot_stats *srv_registry_stats(struct srv_registry *r, const char *name);

/* Load (or reload) name from the repository. Returns 0, or -1 with a message (eng_errmsg):
 * not in the repository (*notfound set), bad manifest or weights (the old version keeps
 * serving). Control operations are serialised. */
int srv_registry_load(struct srv_registry *r, const char *name, bool *notfound);

/* Stop serving name (requests in flight finish). -1 with a message if it is not loaded. */
int srv_registry_unload(struct srv_registry *r, const char *name);

/* Rescan the repository: [{"name", "version", "state": "READY"|"UNAVAILABLE", "reason"}],
 * sorted by name. New reference. */
json_t *srv_registry_index(struct srv_registry *r);

/* True when every model found in the repository is loaded. */
bool srv_registry_all_ready(struct srv_registry *r);

/* Call fn for each name known, with its stats and loaded version (NULL if not loaded; the
 * reference is only valid during the call). */
void srv_registry_foreach(struct srv_registry *r,
                          void (*fn)(void *user, const char *name, struct srv_slot_stats *st,
                                     const struct srv_model *sm),
                          void *user);

/* Index of status in SRV_STATUS_CODES, or SRV_NSTATUS for any other. */
int srv_status_index(unsigned status);

#endif
