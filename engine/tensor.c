/* tensor.c: shapes, strides, views and copies of fp32 tensors. */
#include "engine/tensor.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "engine/error.h"

struct eng_tensor eng_tensor_make(const char *name, float *data, int ndim, const int64_t *ne)
{
    struct eng_tensor t;
    assert(ndim >= 1 && ndim <= ENG_MAX_DIMS);
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name ? name : "");
    t.ndim = ndim;
    t.data = data;
    for (int d = 0; d < ENG_MAX_DIMS; d++)
        t.ne[d] = d < ndim ? ne[d] : 1;
    size_t stride = sizeof(float);
    for (int d = ndim - 1; d >= 0; d--) {
        t.nb[d] = stride;
        stride *= (size_t)t.ne[d];
    }
    for (int d = ndim; d < ENG_MAX_DIMS; d++)
        t.nb[d] = sizeof(float);
    return t;
}

int64_t eng_tensor_nelem(const struct eng_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->ne[d];
    return n;
}

bool eng_tensor_is_contiguous(const struct eng_tensor *t)
{
    size_t stride = sizeof(float);
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->ne[d] != 1 && t->nb[d] != stride)
            return false;
        stride *= (size_t)t->ne[d];
    }
    return true;
}

struct eng_tensor eng_tensor_slice(const struct eng_tensor *t, int dim, int64_t start, int64_t len)
{
    assert(dim >= 0 && dim < t->ndim);
    assert(start >= 0 && len >= 0 && start + len <= t->ne[dim]);
    struct eng_tensor v = *t;
    v.ne[dim] = len;
    v.data = (float *)((char *)t->data + (size_t)start * t->nb[dim]);
    return v;
}

float *eng_tensor_at(const struct eng_tensor *t, const int64_t *idx)
{
    char *p = (char *)t->data;
    for (int d = 0; d < t->ndim; d++) {
        assert(idx[d] >= 0 && idx[d] < t->ne[d]);
        p += (size_t)idx[d] * t->nb[d];
    }
    return (float *)p;
}

int64_t eng_tensor_ld(const struct eng_tensor *t)
{
    if (t->ndim < 2)
        return t->ne[0];
    return (int64_t)(t->nb[t->ndim - 2] / sizeof(float));
}

int64_t eng_tensor_nrows(const struct eng_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim - 1; d++)
        n *= t->ne[d];
    return n;
}

float *eng_tensor_row(const struct eng_tensor *t, int64_t r)
{
    char *p = (char *)t->data;
    for (int d = t->ndim - 2; d >= 0; d--) {
        p += (size_t)(r % t->ne[d]) * t->nb[d];
        r /= t->ne[d];
    }
    return (float *)p;
}

bool eng_tensor_same_shape(const struct eng_tensor *a, const struct eng_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->ne[d] != b->ne[d])
            return false;
    return true;
}

const char *eng_shape_str(const struct eng_tensor *t, char *buf, size_t len)
{
    return eng_dims_str(t->ndim, t->ne, buf, len);
}

const char *eng_dims_str(int ndim, const int64_t *ne, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    size_t at = 0;
    int w = snprintf(buf, len, "[");
    at = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < ndim && at < len; i++) {
        w = snprintf(buf + at, len - at, "%s%lld", i ? "," : "", (long long)ne[i]);
        if (w < 0)
            break;
        at += (size_t)w;
    }
    if (at < len)
        snprintf(buf + at, len - at, "]");
    else if (len > 4)
        memcpy(buf + len - 4, "...", 4);
    return buf;
}

int eng_tensor_copy(struct eng_tensor *dst, const struct eng_tensor *src)
{
    if (!eng_tensor_same_shape(dst, src)) {
        char a[64], b[64];
        return eng_error("copy: tensor '%s' has shape %s, '%s' has %s", src->name,
                         eng_shape_str(src, a, sizeof a), dst->name, eng_shape_str(dst, b, sizeof b));
    }
    int64_t ne[ENG_MAX_DIMS] = {1, 1, 1, 1};
    size_t sb[ENG_MAX_DIMS] = {0}, db[ENG_MAX_DIMS] = {0};
    /* Right-align into 4 dims so one loop nest handles every rank. */
    int off = ENG_MAX_DIMS - src->ndim;
    for (int d = 0; d < src->ndim; d++) {
        ne[off + d] = src->ne[d];
        sb[off + d] = src->nb[d];
        db[off + d] = dst->nb[d];
    }
    size_t row = (size_t)ne[3] * sizeof(float);
    for (int64_t i0 = 0; i0 < ne[0]; i0++)
        for (int64_t i1 = 0; i1 < ne[1]; i1++)
            for (int64_t i2 = 0; i2 < ne[2]; i2++) {
                const char *s = (const char *)src->data + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
                char *q = (char *)dst->data + i0 * db[0] + i1 * db[1] + i2 * db[2];
                memmove(q, s, row);
            }
    return 0;
}
