/* tfjs.c: a validating reader for TF.js weights manifests and their .bin shards. */
#include "engine/tfjs.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/error.h"
#include "engine/safetensors.h" /* eng_f16_to_f32 */
#include "engine/tensor.h"      /* eng_dims_str */

/* Shard bytes are copied straight into host floats and integers. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tfjs.c assumes a little-endian host"
#endif

/* A manifest is a few kB of JSON; anything this large is not one. */
#define TFJS_MANIFEST_MAX ((size_t)64 << 20)

enum tfjs_store { TFJS_F32, TFJS_I32, TFJS_Q_U8, TFJS_Q_U16, TFJS_Q_F16 };

struct tfjs_weight {
    struct eng_tfjs_info info;
    bool is_int;                /* int32 weight: dequantised values are rounded, as TF.js does */
    enum tfjs_store store;      /* how its bytes are stored in the shard */
    double scale, min;          /* uint8 / uint16 quantisation */
    const unsigned char *bytes; /* into its group's buffer */
};

struct eng_tfjs {
    char *path;                       /* owned */
    json_t *manifest;                 /* owned; weight names borrow from it */
    int n;
    struct tfjs_weight *weights;      /* n, in manifest order */
    const struct tfjs_weight **by_name; /* n, sorted by name */
    int ngroups;
    unsigned char **groups;           /* ngroups, each its shards concatenated (owned) */
};

/* Read a whole regular file of at most max bytes into a malloc'd buffer (*len its size). */
static unsigned char *read_file(const char *path, size_t max, size_t *len, int *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        *err = errno;
    else if (!S_ISREG(st.st_mode))
        *err = EISDIR;
    else if ((unsigned long long)st.st_size > max)
        *err = EFBIG;
    if (*err) {
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        *err = ENOMEM;
        close(fd);
        return NULL;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *err = r < 0 ? errno : EIO; /* shrank under us */
            free(buf);
            close(fd);
            return NULL;
        }
        got += (size_t)r;
    }
    close(fd);
    *len = size;
    return buf;
}

/* A shard path must stay inside the manifest's folder. */
static bool path_escapes(const char *p)
{
    if (p[0] == '/' || p[0] == '\0')
        return true;
    for (const char *s = p; *s;) {
        size_t n = strcspn(s, "/");
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return true;
        s += n;
        if (*s == '/')
            s++;
    }
    return false;
}

static size_t store_size(enum tfjs_store s)
{
    return s == TFJS_Q_U8 ? 1 : s == TFJS_Q_U16 || s == TFJS_Q_F16 ? 2 : 4;
}

static int by_name(const void *a, const void *b)
{
    const struct tfjs_weight *const *x = a, *const *y = b;
    return strcmp((*x)->info.name, (*y)->info.name);
}

/* Parse one weight entry; *bytes gets its size in the shard stream. */
static int parse_weight(struct eng_tfjs *w, int g, json_t *v, struct tfjs_weight *wt, size_t *bytes)
{
    const char *path = w->path;
    json_t *jn = json_object_get(v, "name");
    if (!json_is_object(v) || !json_is_string(jn))
        return eng_error("%s: group %d: a weight is not an object with a string \"name\"", path, g);
    const char *name = json_string_value(jn);
    wt->info.name = name;

    const char *ds = json_string_value(json_object_get(v, "dtype"));
    if (!ds)
        return eng_error("%s: weight '%s': dtype missing or not a string", path, name);
    if (strcmp(ds, "float32") == 0)
        wt->is_int = false, wt->store = TFJS_F32;
    else if (strcmp(ds, "int32") == 0)
        wt->is_int = true, wt->store = TFJS_I32;
    else
        return eng_error("%s: weight '%s': unknown dtype '%.32s' (float32 and int32 are read)", path, name, ds);

    json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return eng_error("%s: weight '%s': bad shape: missing or not a list", path, name);
    if (json_array_size(js) > ENG_TFJS_MAX_DIMS)
        return eng_error("%s: weight '%s': bad shape: %zu dimensions, at most %d supported", path, name,
                         json_array_size(js), ENG_TFJS_MAX_DIMS);
    wt->info.ndim = (int)json_array_size(js);
    /* each dim below 2^31 and the product checked, so nelem * 4 cannot wrap either */
    int64_t nelem = 1;
    for (int i = 0; i < wt->info.ndim; i++) {
        json_t *d = json_array_get(js, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > INT32_MAX)
            return eng_error("%s: weight '%s': bad shape: entry %d is not an integer in [0, 2^31)", path, name, i);
        int64_t dim = (int64_t)json_integer_value(d);
        wt->info.shape[i] = dim;
        if (dim != 0 && nelem > ((int64_t)1 << 40) / dim)
            return eng_error("%s: weight '%s': bad shape: too many elements", path, name);
        nelem *= dim;
    }
    wt->info.nelem = nelem;

    json_t *q = json_object_get(v, "quantization");
    if (q && !json_is_null(q)) {
        const char *qs = json_string_value(json_object_get(q, "dtype"));
        if (!json_is_object(q) || !qs)
            return eng_error("%s: weight '%s': quantization is not an object with a string dtype", path, name);
        if (strcmp(qs, "uint8") == 0)
            wt->store = TFJS_Q_U8;
        else if (strcmp(qs, "uint16") == 0)
            wt->store = TFJS_Q_U16;
        else if (strcmp(qs, "float16") == 0 && !wt->is_int)
            wt->store = TFJS_Q_F16;
        else
            return eng_error("%s: weight '%s': unknown quantization dtype '%.32s'", path, name, qs);
        if (wt->store != TFJS_Q_F16) {
            json_t *sc = json_object_get(q, "scale"), *mn = json_object_get(q, "min");
            if (!json_is_number(sc) || !json_is_number(mn))
                return eng_error("%s: weight '%s': %s quantization needs numeric scale and min", path, name, qs);
            wt->scale = json_number_value(sc);
            wt->min = json_number_value(mn);
            if (!isfinite(wt->scale) || !isfinite(wt->min))
                return eng_error("%s: weight '%s': quantization scale or min is not finite", path, name);
        }
    }
    *bytes = (size_t)nelem * store_size(wt->store);
    return 0;
}

/* Read group g's shards into one buffer and place its weights on it. */
static int load_group(struct eng_tfjs *w, int g, json_t *group, const char *dir, int *nw)
{
    const char *path = w->path;
    json_t *paths = json_object_get(group, "paths"), *weights = json_object_get(group, "weights");
    if (!json_is_object(group) || !json_is_array(paths) || !json_is_array(weights))
        return eng_error("%s: group %d is not an object with \"paths\" and \"weights\" lists", path, g);

    size_t need = 0;
    int first = *nw;
    for (size_t i = 0; i < json_array_size(weights); i++) {
        size_t bytes = 0;
        if (parse_weight(w, g, json_array_get(weights, i), &w->weights[*nw], &bytes) < 0)
            return -1;
        if (need + bytes < need)
            return eng_error("%s: group %d: weights too large", path, g);
        need += bytes;
        (*nw)++;
    }

    /* Shards: one byte stream, read whole; a shard longer than needed is tolerated as TF.js does. */
    size_t np = json_array_size(paths), total = 0;
    unsigned char **parts = calloc(np ? np : 1, sizeof *parts);
    size_t *lens = calloc(np ? np : 1, sizeof *lens);
    int rc = -1;
    if (!parts || !lens) {
        eng_error("%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < np; i++) {
        const char *shard = json_string_value(json_array_get(paths, i));
        if (!shard) {
            eng_error("%s: group %d: paths[%zu] is not a string", path, g, i);
            goto out;
        }
        if (path_escapes(shard)) {
            eng_error("%s: shard '%s' named by manifest is not a file name inside the manifest's folder", path,
                      shard);
            goto out;
        }
        char full[4096];
        int len = snprintf(full, sizeof full, "%s%s", dir, shard);
        if (len < 0 || (size_t)len >= sizeof full) {
            eng_error("%s: shard '%.64s...' path too long", path, shard);
            goto out;
        }
        int err = 0;
        parts[i] = read_file(full, SIZE_MAX - total, &lens[i], &err);
        if (!parts[i]) {
            if (err == ENOENT)
                eng_error("%s: shard '%s' named by manifest not found", path, shard);
            else
                eng_error("%s: shard '%s': cannot read: %s", path, shard, strerror(err));
            goto out;
        }
        total += lens[i];
    }
    if (total < need) {
        eng_error("%s: shard(s) of group %d hold %zu bytes, weights need %zu", path, g, total, need);
        goto out;
    }
    unsigned char *buf = malloc(total ? total : 1);
    if (!buf) {
        eng_error("%s: out of memory for %zu bytes of group %d", path, total, g);
        goto out;
    }
    w->groups[g] = buf;
    for (size_t i = 0, at = 0; i < np; i++) {
        if (lens[i])
            memcpy(buf + at, parts[i], lens[i]);
        at += lens[i];
    }
    size_t at = 0;
    for (int i = first; i < *nw; i++) {
        struct tfjs_weight *wt = &w->weights[i];
        wt->bytes = buf + at;
        at += (size_t)wt->info.nelem * store_size(wt->store);
    }
    rc = 0;
out:
    if (parts)
        for (size_t i = 0; i < np; i++)
            free(parts[i]);
    free(parts);
    free(lens);
    return rc;
}

struct eng_tfjs *eng_tfjs_open(const char *manifest_path)
{
    struct eng_tfjs *w = calloc(1, sizeof *w);
    char *dir = NULL;
    unsigned char *text = NULL;
    if (!w || !(w->path = strdup(manifest_path))) {
        eng_error("%s: out of memory", manifest_path);
        free(w);
        return NULL;
    }
    const char *path = w->path;

    size_t len = 0;
    int err = 0;
    text = read_file(path, TFJS_MANIFEST_MAX, &len, &err);
    if (!text) {
        if (err == ENOENT)
            eng_error("%s: manifest not found", path);
        else
            eng_error("%s: cannot read manifest: %s", path, strerror(err));
        goto fail;
    }
    json_error_t jerr;
    w->manifest = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!w->manifest) {
        eng_error("%s: manifest not JSON: %s (line %d)", path, jerr.text, jerr.line);
        goto fail;
    }
    if (!json_is_array(w->manifest)) {
        eng_error("%s: manifest is not a list of weight groups", path);
        goto fail;
    }

    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    dir = malloc(dlen + 1);
    if (!dir) {
        eng_error("%s: out of memory", path);
        goto fail;
    }
    memcpy(dir, path, dlen);
    dir[dlen] = '\0';

    size_t ng = json_array_size(w->manifest), nweights = 0;
    for (size_t g = 0; g < ng; g++)
        nweights += json_array_size(json_object_get(json_array_get(w->manifest, g), "weights"));
    /* both bounded by the manifest's size, itself bounded */
    w->groups = calloc(ng ? ng : 1, sizeof *w->groups);
    w->weights = calloc(nweights ? nweights : 1, sizeof *w->weights);
    w->by_name = calloc(nweights ? nweights : 1, sizeof *w->by_name);
    if (!w->groups || !w->weights || !w->by_name) {
        eng_error("%s: out of memory", path);
        goto fail;
    }
    w->ngroups = (int)ng;
    int nw = 0;
    for (size_t g = 0; g < ng; g++)
        if (load_group(w, (int)g, json_array_get(w->manifest, g), dir, &nw) < 0)
            goto fail;
    w->n = nw;

    for (int i = 0; i < nw; i++)
        w->by_name[i] = &w->weights[i];
    qsort(w->by_name, (size_t)nw, sizeof *w->by_name, by_name);
    for (int i = 1; i < nw; i++)
        if (strcmp(w->by_name[i - 1]->info.name, w->by_name[i]->info.name) == 0) {
            eng_error("%s: weight '%s' listed twice", path, w->by_name[i]->info.name);
            goto fail;
        }
    free(dir);
    free(text);
    return w;

fail:
    free(dir);
    free(text);
    eng_tfjs_close(w);
    return NULL;
}

void eng_tfjs_close(struct eng_tfjs *w)
{
    if (!w)
        return;
    if (w->groups)
        for (int g = 0; g < w->ngroups; g++)
            free(w->groups[g]);
    free(w->groups);
    free(w->weights);
    free(w->by_name);
    json_decref(w->manifest);
    free(w->path);
    free(w);
}

int eng_tfjs_count(const struct eng_tfjs *w)
{
    return w->n;
}

const struct eng_tfjs_info *eng_tfjs_at(const struct eng_tfjs *w, int i)
{
    if (i < 0 || i >= w->n)
        return NULL;
    return &w->weights[i].info;
}

static const struct tfjs_weight *find(const struct eng_tfjs *w, const char *name)
{
    if (w->n == 0)
        return NULL;
    struct tfjs_weight key = {.info.name = name};
    const struct tfjs_weight *kp = &key;
    const struct tfjs_weight **hit = bsearch(&kp, w->by_name, (size_t)w->n, sizeof *w->by_name, by_name);
    return hit ? *hit : NULL;
}

const struct eng_tfjs_info *eng_tfjs_find(const struct eng_tfjs *w, const char *name)
{
    const struct tfjs_weight *wt = find(w, name);
    return wt ? &wt->info : NULL;
}

int eng_tfjs_read(const struct eng_tfjs *w, const char *name, int ndim, const int64_t *shape, float *dst)
{
    const struct tfjs_weight *wt = find(w, name);
    if (!wt)
        return eng_error("%s: no weight '%s'", w->path, name);
    bool same = ndim == wt->info.ndim;
    for (int i = 0; same && i < ndim; i++)
        same = shape[i] == wt->info.shape[i];
    if (!same) {
        char have[160], want[160];
        return eng_error("%s: weight '%s' has shape %s, expected %s", w->path, name,
                         eng_dims_str(wt->info.ndim, wt->info.shape, have, sizeof have),
                         eng_dims_str(ndim < 0 ? 0 : ndim, shape, want, sizeof want));
    }
    size_t n = (size_t)wt->info.nelem;
    const unsigned char *src = wt->bytes;
    switch (wt->store) {
    case TFJS_F32:
        if (n)
            memcpy(dst, src, n * sizeof(float));
        break;
    case TFJS_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case TFJS_Q_U8:
    case TFJS_Q_U16:
        /* TF.js computes q * scale + min in double, then stores into a Float32Array (or
         * Int32Array after Math.round); do the same so values match bit for bit. */
        for (size_t i = 0; i < n; i++) {
            uint16_t q16;
            double q;
            if (wt->store == TFJS_Q_U8) {
                q = src[i];
            } else {
                memcpy(&q16, src + 2 * i, 2);
                q = q16;
            }
            double v = q * wt->scale + wt->min;
            dst[i] = wt->is_int ? (float)floor(v + 0.5) : (float)v;
        }
        break;
    case TFJS_Q_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = eng_f16_to_f32(h);
        }
        break;
    }
    return 0;
}
