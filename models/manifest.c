/* manifest.c: reading and checking a model folder's manifest.json. */
#include "models/manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

bool mdl_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= MDL_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int copy_str(char *dst, size_t cap, json_t *obj, const char *key, const char *def, const char *origin)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (!def)
            return eng_error("%s: '%s' missing", origin, key);
        snprintf(dst, cap, "%s", def);
        return 0;
    }
    if (!json_is_string(v))
        return eng_error("%s: '%s' must be a string", origin, key);
    if (json_string_length(v) == 0 || json_string_length(v) >= cap)
        return eng_error("%s: '%s' must be 1 to %zu characters", origin, key, cap - 1);
    snprintf(dst, cap, "%s", json_string_value(v));
    return 0;
}

static int read_limit(json_t *batching, const char *key, int *out, const char *origin)
{
    json_t *v = json_object_get(batching, key);
    *out = 0;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100000000)
        return eng_error("%s: 'batching.%s' must be an integer from 1 to 100000000", origin, key);
    *out = (int)json_integer_value(v);
    return 0;
}

int mdl_manifest_parse(struct mdl_manifest *m, const char *text, size_t len, const char *origin,
                       const char *name)
{
    memset(m, 0, sizeof *m);
    if (!mdl_name_valid(name))
        return eng_error("%s: model name '%s' is not usable (letters, digits, '.', '_', '-'; not starting with '.')",
                         origin, name);
    snprintf(m->name, sizeof m->name, "%s", name);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return eng_error("%s: not JSON: %s (line %d, column %d)", origin, jerr.text, jerr.line, jerr.column);
    if (!json_is_object(root)) {
        json_decref(root);
        return eng_error("%s: must be a JSON object", origin);
    }
    m->json = root;
    if (copy_str(m->family, sizeof m->family, root, "family", NULL, origin) < 0 ||
        copy_str(m->version, sizeof m->version, root, "version", "1", origin) < 0 ||
        copy_str(m->task, sizeof m->task, root, "task", "", origin) < 0)
        goto fail;
    json_t *demo = json_object_get(root, "demo");
    if (demo && !json_is_boolean(demo)) {
        eng_error("%s: 'demo' must be true or false", origin);
        goto fail;
    }
    m->demo = json_is_true(demo);
    json_t *labels = json_object_get(root, "labels");
    if (labels) {
        if (!json_is_array(labels)) {
            eng_error("%s: 'labels' must be a list of strings", origin);
            goto fail;
        }
        m->nlabels = (int)json_array_size(labels);
        m->labels = calloc(m->nlabels ? (size_t)m->nlabels : 1, sizeof *m->labels);
        if (!m->labels) {
            eng_error("%s: out of memory", origin);
            goto fail;
        }
        for (int i = 0; i < m->nlabels; i++) {
            json_t *l = json_array_get(labels, (size_t)i);
            if (!json_is_string(l) || json_string_length(l) == 0) {
                eng_error("%s: 'labels[%d]' must be a non-empty string", origin, i);
                goto fail;
            }
            m->labels[i] = json_string_value(l);
        }
    }
    json_t *batching = json_object_get(root, "batching");
    if (batching) {
        if (!json_is_object(batching)) {
            eng_error("%s: 'batching' must be an object", origin);
            goto fail;
        }
        if (read_limit(batching, "max_batch_size", &m->batching.max_batch_size, origin) < 0 ||
            read_limit(batching, "max_queue_delay_us", &m->batching.max_queue_delay_us, origin) < 0 ||
            read_limit(batching, "max_queue_size", &m->batching.max_queue_size, origin) < 0)
            goto fail;
    }
    return 0;
fail:
    mdl_manifest_free(m);
    return -1;
}

int mdl_manifest_load(struct mdl_manifest *m, const char *path, const char *name)
{
    /* A manifest is a few kB; anything past 1 MiB is not one. */
    enum { MAX_MANIFEST = 1 << 20 };
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f)
        return eng_error("%s: cannot open", path);
    char *buf = malloc(MAX_MANIFEST + 1);
    if (!buf) {
        fclose(f);
        return eng_error("%s: out of memory", path);
    }
    size_t n = fread(buf, 1, MAX_MANIFEST + 1, f);
    int rerr = ferror(f);
    fclose(f);
    int rc;
    if (rerr)
        rc = eng_error("%s: read error", path);
    else if (n > MAX_MANIFEST)
        rc = eng_error("%s: larger than %d bytes", path, MAX_MANIFEST);
    else
        rc = mdl_manifest_parse(m, buf, n, path, name);
    free(buf);
    return rc;
}

void mdl_manifest_free(struct mdl_manifest *m)
{
    free(m->labels);
    json_decref(m->json);
    m->labels = NULL;
    m->json = NULL;
    m->nlabels = 0;
}
