/* Model repository: a directory with one folder per model, each holding manifest.json.
 *
 *   struct mdl_repository r;
 *   mdl_repository_scan(&r, "build/model-repo");     // -1 only if the directory is unreadable
 *   for (int i = 0; i < r.nmodels; i++) puts(r.models[i].name);
 *   for (int i = 0; i < r.nproblems; i++) log("%s", r.problems[i]);   // bad folders, skipped
 *   mdl_repository_free(&r);
 *
 * One bad model never hides the others: its folder is skipped with a message in `problems`.
 */
#ifndef SALIENT_MODELS_REPOSITORY_H
#define SALIENT_MODELS_REPOSITORY_H

#include "models/manifest.h"

struct mdl_repository {
    char path[1024];
    int nmodels;
    struct mdl_manifest *models; /* owned, sorted by name */
    int nproblems;
    char **problems;             /* owned messages, one per skipped folder */
};

/* Read every <path>/<name>/manifest.json. Returns 0 (even with problems), or -1 with a
 * message if path is not a readable directory; the caller frees with mdl_repository_free
 * in both cases. */
int mdl_repository_scan(struct mdl_repository *r, const char *path);
void mdl_repository_free(struct mdl_repository *r);

/* The model called name, or NULL. Borrowed. */
const struct mdl_manifest *mdl_repository_find(const struct mdl_repository *r, const char *name);

#endif
