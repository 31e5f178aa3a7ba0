/* repository.c: finding the models of a model repository directory. */
#include "models/repository.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/error.h"

static int add_problem(struct mdl_repository *r, const char *msg)
{
    char **p = realloc(r->problems, (size_t)(r->nproblems + 1) * sizeof *p);
    if (!p)
        return -1;
    r->problems = p;
    r->problems[r->nproblems] = strdup(msg);
    if (!r->problems[r->nproblems])
        return -1;
    r->nproblems++;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct mdl_manifest *)a)->name, ((const struct mdl_manifest *)b)->name);
}

int mdl_repository_scan(struct mdl_repository *r, const char *path)
{
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    DIR *d = opendir(path);
    if (!d)
        return eng_error("model repository '%s' is not a readable directory", path);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char dir[2048], file[2300];
        struct stat st;
        snprintf(dir, sizeof dir, "%s/%s", path, e->d_name);
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        snprintf(file, sizeof file, "%s/manifest.json", dir);
        struct mdl_manifest m;
        if (mdl_manifest_load(&m, file, e->d_name) < 0) {
            if (add_problem(r, eng_errmsg()) < 0)
                goto oom;
            continue;
        }
        struct mdl_manifest *grown = realloc(r->models, (size_t)(r->nmodels + 1) * sizeof *grown);
        if (!grown) {
            mdl_manifest_free(&m);
            goto oom;
        }
        r->models = grown;
        r->models[r->nmodels++] = m;
    }
    closedir(d);
    if (r->nmodels > 1)
        qsort(r->models, (size_t)r->nmodels, sizeof *r->models, by_name);
    return 0;
oom:
    closedir(d);
    return eng_error("model repository '%s': out of memory", path);
}

void mdl_repository_free(struct mdl_repository *r)
{
    for (int i = 0; i < r->nmodels; i++)
        mdl_manifest_free(&r->models[i]);
    for (int i = 0; i < r->nproblems; i++)
        free(r->problems[i]);
    free(r->models);
    free(r->problems);
    memset(r, 0, sizeof *r);
}

const struct mdl_manifest *mdl_repository_find(const struct mdl_repository *r, const char *name)
{
    for (int i = 0; i < r->nmodels; i++)
        if (strcmp(r->models[i].name, name) == 0)
            return &r->models[i];
    return NULL;
}
