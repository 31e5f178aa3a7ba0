/* Tensors: fp32 data with element counts and byte strides side by side.
 *
 *   float buf[2 * 7 * 7 * 64];
 *   struct eng_tensor x = eng_tensor_make("x", buf, 4, (int64_t[]){2, 7, 7, 64});
 *   struct eng_tensor slice = eng_tensor_slice(&x, 3, 32, 16);  // channels [32, 48), no copy
 *
 * Dimensions are listed outermost first, as PyTorch lists them. Activations are NHWC:
 * ne = {N, H, W, C}. Keeping channels innermost lets a 1x1 convolution be one GEMM over
 * N*H*W rows, and lets DenseNet's concatenation be a channel slice of one buffer: a GEMM
 * writes into it with ldc = the buffer's channel count (nb[2] / sizeof(float)), and the next
 * layer reads the channel prefix with the same leading dimension. No copies.
 *
 * A tensor never owns its data: data points into an arena, a mapped checkpoint or a caller's
 * buffer. Only the innermost dimension must be contiguous (nb[ndim-1] == sizeof(float)).
 */
#ifndef SALIENT_ENGINE_TENSOR_H
#define SALIENT_ENGINE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENG_MAX_DIMS 4
#define ENG_NAME_MAX 96

struct eng_tensor {
    char name[ENG_NAME_MAX];
    int ndim;
    int64_t ne[ENG_MAX_DIMS]; /* elements per dimension, outermost first; unused dims are 1 */
    size_t nb[ENG_MAX_DIMS];  /* stride in bytes per dimension; nb[ndim-1] == sizeof(float) */
    float *data;              /* borrowed */
};

/* A contiguous tensor over data (not copied, not owned). ndim in 1..4. */
struct eng_tensor eng_tensor_make(const char *name, float *data, int ndim, const int64_t *ne);

/* Number of elements. */
int64_t eng_tensor_nelem(const struct eng_tensor *t);

/* True if the tensor has no gaps between its elements. */
bool eng_tensor_is_contiguous(const struct eng_tensor *t);

/* A view of elements [start, start+len) along dimension dim; shares data. The caller
 * guarantees the range is inside the tensor (asserted). */
struct eng_tensor eng_tensor_slice(const struct eng_tensor *t, int dim, int64_t start, int64_t len);

/* Pointer to the element at index idx (ndim indices, outermost first). */
float *eng_tensor_at(const struct eng_tensor *t, const int64_t *idx);

/* Leading dimension, in floats, of a tensor viewed as rows of its innermost dimension:
 * nb[ndim-2] / sizeof(float). For NHWC activations this is the buffer's channel count. */
int64_t eng_tensor_ld(const struct eng_tensor *t);

/* Rows of t viewed as rows of its innermost dimension: the product of the outer dimensions
 * (1 for a 1-D tensor, 0 if an outer dimension is empty). */
int64_t eng_tensor_nrows(const struct eng_tensor *t);

/* Row r (0 <= r < eng_tensor_nrows(t)) of t viewed as rows of its innermost dimension, rows
 * numbered as in a contiguous tensor of t's shape; any outer strides. One division per outer
 * dimension: call it once per row, never per element. The pointer borrows t->data. */
float *eng_tensor_row(const struct eng_tensor *t, int64_t r);

/* True if a and b have the same ndim and ne. */
bool eng_tensor_same_shape(const struct eng_tensor *a, const struct eng_tensor *b);

/* "[2,7,7,64]" into buf (always terminated; ending "..." if it does not fit). Returns buf. */
const char *eng_shape_str(const struct eng_tensor *t, char *buf, size_t len);

/* The same for a bare list of ndim dimensions (a checkpoint header's shape; ndim may be 0). */
const char *eng_dims_str(int ndim, const int64_t *ne, char *buf, size_t len);

/* Copy src into dst element by element (shapes must match; either may be strided).
 * Returns 0, or -1 with a message naming both tensors if the shapes differ. */
int eng_tensor_copy(struct eng_tensor *dst, const struct eng_tensor *src);

#endif
