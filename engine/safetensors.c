/* safetensors.c: a validating, memory-mapped safetensors reader. */
#include "engine/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/error.h"
#include "engine/tensor.h" /* eng_dims_str */

/* Tensor bytes are copied straight into host floats and integers. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

struct eng_st_file {
    char *path;                         /* owned */
    void *map;                          /* whole file, read-only */
    size_t map_len;
    bool mapped;                        /* map is ours to munmap (eng_st_open), not borrowed */
    const unsigned char *data;          /* start of the data section, inside map */
    size_t data_len;
    json_t *header;                     /* owned; tensor names and metadata borrow from it */
    json_t *metadata;                   /* borrowed from header, or NULL */
    int n;
    struct eng_st_info *infos;          /* n, by begin offset */
    const struct eng_st_info **by_name; /* n, by name, for bsearch */
};

static const struct {
    const char *name;
    size_t size;
} eng_dtypes[] = {
    [ENG_DTYPE_F32] = {"F32", 4}, [ENG_DTYPE_F16] = {"F16", 2}, [ENG_DTYPE_BF16] = {"BF16", 2},
    [ENG_DTYPE_F64] = {"F64", 8}, [ENG_DTYPE_I64] = {"I64", 8}, [ENG_DTYPE_I32] = {"I32", 4},
    [ENG_DTYPE_I16] = {"I16", 2}, [ENG_DTYPE_I8] = {"I8", 1},   [ENG_DTYPE_U8] = {"U8", 1},
    [ENG_DTYPE_BOOL] = {"BOOL", 1},
};
#define ENG_NDTYPES ((int)(sizeof eng_dtypes / sizeof eng_dtypes[0]))

const char *eng_dtype_name(enum eng_dtype t)
{
    if ((int)t < 0 || (int)t >= ENG_NDTYPES)
        return "?";
    return eng_dtypes[t].name;
}

float eng_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        /* inf, or NaN with its payload kept */
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        /* Subnormal half: every one is a normal float; shift the leading 1 into place. */
        int e = 127 - 15 + 1;
        while (!(mant & 0x400)) {
            mant <<= 1;
            e--;
        }
        bits = sign | ((uint32_t)e << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float eng_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static int by_offset(const void *a, const void *b)
{
    const struct eng_st_info *x = a, *y = b;
    const unsigned char *px = x->data, *py = y->data;
    if (px != py)
        return px < py ? -1 : 1;
    /* empty tensors first, so a tensor's end is the largest at its offset */
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int by_name(const void *a, const void *b)
{
    const struct eng_st_info *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Read one header entry into info (name already set). */
static int parse_entry(struct eng_st_file *f, json_t *v, struct eng_st_info *info)
{
    const char *path = f->path, *name = info->name;
    if (!json_is_object(v))
        return eng_error("%s: tensor '%s': header entry is not an object", path, name);

    json_t *jd = json_object_get(v, "dtype");
    if (!json_is_string(jd))
        return eng_error("%s: tensor '%s': dtype missing or not a string", path, name);
    const char *ds = json_string_value(jd);
    int dt = -1;
    for (int i = 0; i < ENG_NDTYPES; i++)
        if (strcmp(ds, eng_dtypes[i].name) == 0)
            dt = i;
    if (dt < 0)
        return eng_error("%s: tensor '%s': unknown dtype '%.32s'", path, name, ds);
    info->dtype = (enum eng_dtype)dt;

    json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return eng_error("%s: tensor '%s': shape missing or not a list", path, name);
    if (json_array_size(js) > ENG_ST_MAX_DIMS)
        return eng_error("%s: tensor '%s': shape has %zu dimensions, at most %d supported", path, name,
                         json_array_size(js), ENG_ST_MAX_DIMS);
    info->ndim = (int)json_array_size(js);
    /* Element count in size_t, checked at every step so a hostile shape cannot wrap. */
    size_t nelem = 1;
    bool overflow = false;
    for (int i = 0; i < info->ndim; i++) {
        json_t *d = json_array_get(js, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return eng_error("%s: tensor '%s': shape entry %d is not a non-negative integer", path, name, i);
        json_int_t dim = json_integer_value(d);
        info->shape[i] = (int64_t)dim;
        if ((unsigned long long)dim > SIZE_MAX)
            overflow = true;
        else if (dim != 0 && nelem > SIZE_MAX / (size_t)dim)
            overflow = true;
        else
            nelem *= (size_t)dim;
    }
    char sbuf[160];
    /* a zero dimension makes any product 0, whatever overflowed before it */
    for (int i = 0; i < info->ndim; i++)
        if (info->shape[i] == 0)
            overflow = false, nelem = 0;
    size_t esize = eng_dtypes[dt].size;
    if (overflow || nelem > SIZE_MAX / esize)
        return eng_error("%s: tensor '%s': shape %s is too large", path, name,
                         eng_dims_str(info->ndim, info->shape, sbuf, sizeof sbuf));
    size_t need = nelem * esize;

    json_t *jo = json_object_get(v, "data_offsets");
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(jb) || !json_is_integer(je) ||
        json_integer_value(jb) < 0 || json_integer_value(je) < 0)
        return eng_error("%s: tensor '%s': data_offsets is not a list of two non-negative integers", path, name);
    unsigned long long begin = (unsigned long long)json_integer_value(jb);
    unsigned long long end = (unsigned long long)json_integer_value(je);
    if (begin > end)
        return eng_error("%s: tensor '%s': data_offsets [%llu,%llu] begin after end", path, name, begin, end);
    if (end > f->data_len)
        return eng_error("%s: tensor '%s': data offsets outside the file: [%llu,%llu], data section is %zu bytes",
                         path, name, begin, end, f->data_len);
    if (end - begin != need)
        return eng_error("%s: tensor '%s': %s shape %s needs %zu bytes, data_offsets give %llu", path, name,
                         ds, eng_dims_str(info->ndim, info->shape, sbuf, sizeof sbuf), need, end - begin);
    info->data = f->data + begin;
    info->nbytes = need;
    return 0;
}

static int parse_metadata(struct eng_st_file *f, json_t *m)
{
    if (!json_is_object(m))
        return eng_error("%s: __metadata__ is not an object", f->path);
    const char *key;
    json_t *val;
    json_object_foreach(m, key, val) {
        if (!json_is_string(val))
            return eng_error("%s: __metadata__ '%s' is not a string", f->path, key);
    }
    f->metadata = m;
    return 0;
}

static int parse_header(struct eng_st_file *f, const unsigned char *hdr, size_t len)
{
    json_error_t jerr;
    f->header = json_loadb((const char *)hdr, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!f->header)
        return eng_error("%s: header not JSON: %s (at byte %d)", f->path, jerr.text, jerr.position);
    if (!json_is_object(f->header))
        return eng_error("%s: header JSON is not an object", f->path);

    size_t count = json_object_size(f->header);
    json_t *meta = json_object_get(f->header, "__metadata__");
    if (meta) {
        if (parse_metadata(f, meta) < 0)
            return -1;
        count--;
    }
    /* count < header length, so this neither overflows nor exceeds int in practice; check anyway */
    if (count > (size_t)INT32_MAX)
        return eng_error("%s: header lists too many tensors (%zu)", f->path, count);
    if (count) {
        f->infos = calloc(count, sizeof *f->infos);
        f->by_name = calloc(count, sizeof *f->by_name);
        if (!f->infos || !f->by_name)
            return eng_error("%s: out of memory for %zu tensor entries", f->path, count);
    }

    const char *key;
    json_t *val;
    int n = 0;
    json_object_foreach(f->header, key, val) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        struct eng_st_info *info = &f->infos[n];
        info->name = key;
        if (parse_entry(f, val, info) < 0)
            return -1;
        n++;
    }
    f->n = n;
    /* A header with no tensors leaves infos NULL: qsort's pointer must not be NULL even for 0
     * elements (found by tests/fuzz/fuzz_safetensors under UBSan). */
    if (n == 0)
        return 0;

    qsort(f->infos, (size_t)n, sizeof *f->infos, by_offset);
    /* Sorted by begin: a non-empty tensor overlaps an earlier one iff it starts before the
     * furthest end seen so far. Empty tensors occupy no bytes and overlap nothing. */
    const struct eng_st_info *reach = NULL;
    for (int i = 0; i < n; i++) {
        const struct eng_st_info *t = &f->infos[i];
        if (t->nbytes == 0)
            continue;
        const unsigned char *b = t->data;
        if (reach && b < (const unsigned char *)reach->data + reach->nbytes)
            return eng_error("%s: tensors '%s' and '%s' overlap", f->path, reach->name, t->name);
        if (!reach || b + t->nbytes > (const unsigned char *)reach->data + reach->nbytes)
            reach = t;
    }

    for (int i = 0; i < n; i++)
        f->by_name[i] = &f->infos[i];
    qsort(f->by_name, (size_t)n, sizeof *f->by_name, by_name);
    return 0;
}

/* The header length, the header and the data section of f->map (map_len >= 8 bytes). */
static int parse_file(struct eng_st_file *f)
{
    const unsigned char *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen > f->map_len - 8)
        return eng_error("%s: header length %llu past end of file (%zu bytes)", f->path, (unsigned long long)hlen,
                         f->map_len);
    f->data = p + 8 + hlen;
    f->data_len = f->map_len - 8 - (size_t)hlen;
    return parse_header(f, p + 8, (size_t)hlen);
}

struct eng_st_file *eng_st_open(const char *path)
{
    struct eng_st_file *f = calloc(1, sizeof *f);
    if (!f) {
        eng_error("%s: out of memory", path);
        return NULL;
    }
    f->path = strdup(path);
    if (!f->path) {
        eng_error("%s: out of memory", path);
        free(f);
        return NULL;
    }

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        eng_error("%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        eng_error("%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        eng_error("%s: not a regular file", path);
        close(fd);
        goto fail;
    }
    if (st.st_size < 8) {
        eng_error("%s: truncated: %lld bytes, too short for the 8-byte header length", path,
                  (long long)st.st_size);
        close(fd);
        goto fail;
    }
    if ((unsigned long long)st.st_size > SIZE_MAX) {
        eng_error("%s: file too large to map", path);
        close(fd);
        goto fail;
    }
    f->map_len = (size_t)st.st_size;
    f->map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        eng_error("%s: cannot map %zu bytes: %s", path, f->map_len, strerror(errno));
        goto fail;
    }
    f->mapped = true;
    if (parse_file(f) < 0)
        goto fail;
    return f;

fail:
    eng_st_close(f);
    return NULL;
}

struct eng_st_file *eng_st_open_mem(const void *buf, size_t len, const char *name)
{
    struct eng_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(name))) {
        eng_error("%s: out of memory", name);
        free(f);
        return NULL;
    }
    if (len < 8) {
        eng_error("%s: truncated: %zu bytes, too short for the 8-byte header length", name, len);
        eng_st_close(f);
        return NULL;
    }
    f->map = (void *)buf; /* borrowed, read only: never written, never unmapped */
    f->map_len = len;
    if (parse_file(f) < 0) {
        eng_st_close(f);
        return NULL;
    }
    return f;
}

void eng_st_close(struct eng_st_file *f)
{
    if (!f)
        return;
    if (f->mapped)
        munmap(f->map, f->map_len);
    json_decref(f->header);
    free(f->infos);
    free(f->by_name);
    free(f->path);
    free(f);
}

const char *eng_st_path(const struct eng_st_file *f)
{
    return f->path;
}

int eng_st_count(const struct eng_st_file *f)
{
    return f->n;
}

const struct eng_st_info *eng_st_at(const struct eng_st_file *f, int i)
{
    if (i < 0 || i >= f->n)
        return NULL;
    return &f->infos[i];
}

const struct eng_st_info *eng_st_find(const struct eng_st_file *f, const char *name)
{
    if (f->n == 0)
        return NULL;
    struct eng_st_info key = {.name = name};
    const struct eng_st_info *kp = &key;
    const struct eng_st_info **hit = bsearch(&kp, f->by_name, (size_t)f->n, sizeof *f->by_name, by_name);
    return hit ? *hit : NULL;
}

const char *eng_st_metadata(const struct eng_st_file *f, const char *key)
{
    return f->metadata ? json_string_value(json_object_get(f->metadata, key)) : NULL;
}

/* Find name and check it is a float dtype; NULL with a message otherwise. */
static const struct eng_st_info *find_float(const struct eng_st_file *f, const char *name)
{
    const struct eng_st_info *t = eng_st_find(f, name);
    if (!t) {
        eng_error("%s: no tensor '%s'", f->path, name);
        return NULL;
    }
    if (t->dtype != ENG_DTYPE_F32 && t->dtype != ENG_DTYPE_F16 && t->dtype != ENG_DTYPE_BF16) {
        eng_error("%s: tensor '%s' has dtype %s, expected F32, F16 or BF16", f->path, name,
                  eng_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

static void convert(const struct eng_st_info *t, float *dst)
{
    const unsigned char *src = t->data;
    size_t esize = eng_dtypes[t->dtype].size;
    size_t n = t->nbytes / esize;
    if (t->dtype == ENG_DTYPE_F32) {
        if (n)
            memcpy(dst, src, t->nbytes);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, sizeof h);
        dst[i] = t->dtype == ENG_DTYPE_F16 ? eng_f16_to_f32(h) : eng_bf16_to_f32(h);
    }
}

int eng_st_read(const struct eng_st_file *f, const char *name, int ndim, const int64_t *shape, float *dst)
{
    const struct eng_st_info *t = find_float(f, name);
    if (!t)
        return -1;
    bool same = ndim == t->ndim;
    for (int i = 0; same && i < ndim; i++)
        same = shape[i] == t->shape[i];
    if (!same) {
        char have[160], want[160];
        int wn = ndim < 0 ? 0 : ndim;
        return eng_error("%s: tensor '%s' has shape %s, expected %s", f->path, name,
                         eng_dims_str(t->ndim, t->shape, have, sizeof have), eng_dims_str(wn, shape, want, sizeof want));
    }
    convert(t, dst);
    return 0;
}

int eng_st_read_any(const struct eng_st_file *f, const char *name, float *dst, size_t cap, size_t *n)
{
    const struct eng_st_info *t = find_float(f, name);
    if (!t)
        return -1;
    size_t count = t->nbytes / eng_dtypes[t->dtype].size;
    if (count > cap) {
        char have[160];
        return eng_error("%s: tensor '%s' has shape %s (%zu elements), buffer holds %zu", f->path, name,
                         eng_dims_str(t->ndim, t->shape, have, sizeof have), count, cap);
    }
    convert(t, dst);
    *n = count;
    return 0;
}
