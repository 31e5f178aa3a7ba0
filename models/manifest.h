/* Model manifests: what a model folder says it is (models/<name>/manifest.json).
 *
 *   struct mdl_manifest m;
 *   if (mdl_manifest_load(&m, "repo/chexnet-demo/manifest.json", "chexnet-demo") < 0)
 *       log("skipping model: %s", eng_errmsg());   // "repo/chexnet-demo/manifest.json: 'family' missing"
 *   ... m.family, m.labels[i], m.demo ...
 *   mdl_manifest_free(&m);
 *
 * Required: "family" (string). Optional with defaults: "version" ("1"), "task" (""),
 * "labels" (list of strings, none), "demo" (false), "provenance" (anything), "batching"
 * ({"max_batch_size", "max_queue_delay_us", "max_queue_size"}, 0 = server default).
 * Family-specific fields stay in `json` for the family's loader to read.
 */
#ifndef SALIENT_MODELS_MANIFEST_H
#define SALIENT_MODELS_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>

#define MDL_NAME_MAX 128

struct mdl_batching {
    int max_batch_size;     /* 0: server default */
    int max_queue_delay_us; /* 0: server default */
    int max_queue_size;     /* 0: server default */
};

struct mdl_manifest {
    char name[MDL_NAME_MAX];   /* the model's folder name */
    char family[64];
    char version[32];
    char task[64];
    bool demo;
    int nlabels;
    const char **labels;       /* borrowed from json, nlabels entries */
    struct mdl_batching batching;
    json_t *json;              /* the whole manifest, owned */
};

/* Parse path; name is the model's name (its folder). Returns 0, or -1 with a message that
 * starts with path and names the bad field. On success the caller frees with
 * mdl_manifest_free; on failure nothing needs freeing. */
int mdl_manifest_load(struct mdl_manifest *m, const char *path, const char *name);

/* The same from JSON text already in memory (len bytes); `origin` names it in messages. */
int mdl_manifest_parse(struct mdl_manifest *m, const char *text, size_t len, const char *origin,
                       const char *name);

void mdl_manifest_free(struct mdl_manifest *m);

/* True if name is usable as a model name in a URL path: [A-Za-z0-9._-], 1..127 chars, not
 * starting with '.'. */
bool mdl_name_valid(const char *name);

#endif
