/* pad.c: constant, reflect and replicate padding of NHWC tensors on H and W. */
#include "engine/pad.h"

#include <stdbool.h>
#include <string.h>

#include "engine/error.h"

/* Below this many output elements one thread beats waking the others. */
#define PAD_SERIAL_ELEMS 32768

struct pad_job {
    const struct eng_pad2d *p;
    const struct eng_tensor *x;
    struct eng_tensor *y;
};

/* Source index of padded index i (already shifted by the leading pad) in [0, n), or -1 for a
 * constant cell. */
static inline int64_t src_index(enum eng_pad_mode mode, int64_t i, int64_t n)
{
    if (i >= 0 && i < n)
        return i;
    switch (mode) {
    case ENG_PAD_REFLECT:
        return i < 0 ? -i : 2 * (n - 1) - i;
    case ENG_PAD_REPLICATE:
        return i < 0 ? 0 : n - 1;
    case ENG_PAD_CONSTANT:
        break;
    }
    return -1;
}

static inline void fill(float *o, int64_t n, float v)
{
    for (int64_t k = 0; k < n; k++)
        o[k] = v;
}

static void pad_row(const struct pad_job *j, int64_t n, int64_t oi)
{
    const struct eng_pad2d *p = j->p;
    const struct eng_tensor *x = j->x;
    struct eng_tensor *y = j->y;
    int64_t c = x->ne[3], w = x->ne[2], ow = y->ne[2];
    char *yrow = (char *)y->data + n * y->nb[0] + oi * y->nb[1];
    int64_t ii = src_index(p->mode, oi - p->top, x->ne[1]);
    if (ii < 0) {
        for (int64_t oj = 0; oj < ow; oj++)
            fill((float *)(yrow + oj * y->nb[2]), c, p->value);
        return;
    }
    const char *xrow = (const char *)x->data + n * x->nb[0] + ii * x->nb[1];
    for (int64_t oj = 0; oj < ow; oj++) {
        float *o = (float *)(yrow + oj * y->nb[2]);
        if (oj == p->left && w > 0 && x->nb[2] == (size_t)c * sizeof(float) && y->nb[2] == x->nb[2]) {
            /* Dense rows: the interior is one copy. */
            memcpy(o, xrow, (size_t)(w * c) * sizeof(float));
            oj += w - 1;
            continue;
        }
        int64_t jj = src_index(p->mode, oj - p->left, w);
        if (jj < 0)
            fill(o, c, p->value);
        else
            memcpy(o, xrow + jj * x->nb[2], (size_t)c * sizeof(float));
    }
}

static void pad_part(void *arg, int ith, int nth)
{
    const struct pad_job *j = arg;
    int64_t r0, r1, oh = j->y->ne[1];
    eng_split(j->y->ne[0] * oh, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        pad_row(j, r / oh, r % oh);
}

int eng_pad2d(const struct eng_ctx *ctx, const struct eng_pad2d *p, const struct eng_tensor *x,
              struct eng_tensor *y)
{
    char a[64], b[64];
    if (x->ndim != 4)
        return eng_error("pad2d: input '%s' has shape %s, expected [N,H,W,C]", x->name, eng_shape_str(x, a, sizeof a));
    if (p->top < 0 || p->bottom < 0 || p->left < 0 || p->right < 0)
        return eng_error("pad2d of '%s': negative padding %d/%d/%d/%d (top/bottom/left/right)", x->name, p->top,
                         p->bottom, p->left, p->right);
    if (p->mode != ENG_PAD_CONSTANT && p->mode != ENG_PAD_REFLECT && p->mode != ENG_PAD_REPLICATE)
        return eng_error("pad2d of '%s': unknown mode %d", x->name, (int)p->mode);
    int64_t h = x->ne[1], w = x->ne[2];
    if (p->mode == ENG_PAD_REFLECT && (p->top >= h || p->bottom >= h || p->left >= w || p->right >= w))
        return eng_error("pad2d: reflect padding %d/%d/%d/%d (top/bottom/left/right) of '%s' %s must be smaller "
                         "than the side it mirrors",
                         p->top, p->bottom, p->left, p->right, x->name, eng_shape_str(x, a, sizeof a));
    if (p->mode != ENG_PAD_CONSTANT && (h < 1 || w < 1))
        return eng_error("pad2d: cannot %s-pad empty '%s' %s", p->mode == ENG_PAD_REFLECT ? "reflect" : "replicate",
                         x->name, eng_shape_str(x, a, sizeof a));
    int64_t oh = h + p->top + p->bottom, ow = w + p->left + p->right;
    if (y->ndim != 4 || y->ne[0] != x->ne[0] || y->ne[1] != oh || y->ne[2] != ow || y->ne[3] != x->ne[3])
        return eng_error("pad2d: output '%s' has shape %s, expected [%lld,%lld,%lld,%lld] for input '%s' %s", y->name,
                         eng_shape_str(y, a, sizeof a), (long long)x->ne[0], (long long)oh, (long long)ow,
                         (long long)x->ne[3], x->name, eng_shape_str(x, b, sizeof b));
    struct pad_job j = {p, x, y};
    int64_t rows = y->ne[0] * oh;
    int tasks = eng_tensor_nelem(y) < PAD_SERIAL_ELEMS ? 1 : (rows > 1024 ? 1024 : (int)rows);
    if (rows > 0)
        eng_parallel(ctx, tasks, pad_part, &j);
    return 0;
}

int eng_pad_parse(const char *s, enum eng_pad_mode *out)
{
    if (s && (strcmp(s, "constant") == 0 || strcmp(s, "zeros") == 0))
        *out = ENG_PAD_CONSTANT;
    else if (s && strcmp(s, "reflect") == 0)
        *out = ENG_PAD_REFLECT;
    else if (s && strcmp(s, "replicate") == 0)
        *out = ENG_PAD_REPLICATE;
    else
        return eng_error("unknown padding mode '%s' (expected constant, zeros, reflect, replicate)", s ? s : "(null)");
    return 0;
}
