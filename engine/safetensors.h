/* safetensors reader: memory-mapped, every offset, shape and dtype validated before use.
 *
 *   struct eng_st_file *f = eng_st_open("repo/chexnet/model.safetensors");
 *   if (!f) die(eng_errmsg());      // "repo/chexnet/model.safetensors: header length 9999 past end of file (812 bytes)"
 *   float w[64 * 3 * 7 * 7];
 *   if (eng_st_read(f, "features.conv0.weight", 4, (int64_t[]){64, 3, 7, 7}, w) < 0)
 *       die(eng_errmsg());          // "...: tensor 'features.conv0.weight' has shape [64,1,7,7], expected [64,3,7,7]"
 *   eng_st_close(f);
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data; offsets are relative to the end of the header. F32, F16 and BF16 are read
 * (converted to fp32); other known dtypes are listed but refused by eng_st_read.
 */
#ifndef SALIENT_ENGINE_SAFETENSORS_H
#define SALIENT_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ENG_ST_MAX_DIMS 8

enum eng_dtype {
    ENG_DTYPE_F32 = 0,
    ENG_DTYPE_F16,
    ENG_DTYPE_BF16,
    ENG_DTYPE_F64,
    ENG_DTYPE_I64,
    ENG_DTYPE_I32,
    ENG_DTYPE_I16,
    ENG_DTYPE_I8,
    ENG_DTYPE_U8,
    ENG_DTYPE_BOOL,
};

struct eng_st_info {
    const char *name;    /* borrowed from the file handle */
    enum eng_dtype dtype;
    int ndim;
    int64_t shape[ENG_ST_MAX_DIMS];
    const void *data;    /* into the mapping; not necessarily aligned */
    size_t nbytes;
};

struct eng_st_file; /* opaque */

/* Map and validate path. NULL with a message naming the file (and tensor) on any problem:
 * truncated file, header length past the end, header not JSON, unknown dtype, shape that does
 * not match the byte length, offsets outside the data or overlapping. Caller closes. */
struct eng_st_file *eng_st_open(const char *path);
/* The same checks on len bytes already in memory (tests, fuzzing); name stands for the path in
 * messages and eng_st_path. buf is borrowed: it must stay unchanged until eng_st_close, and
 * tensor data points into it. */
struct eng_st_file *eng_st_open_mem(const void *buf, size_t len, const char *name);
void eng_st_close(struct eng_st_file *f);

const char *eng_st_path(const struct eng_st_file *f);
int eng_st_count(const struct eng_st_file *f);
/* i in [0, count): tensors in data-offset order. Borrowed, valid until close. */
const struct eng_st_info *eng_st_at(const struct eng_st_file *f, int i);
/* NULL (no message set) if there is no such tensor. */
const struct eng_st_info *eng_st_find(const struct eng_st_file *f, const char *name);
/* A string value of "__metadata__", or NULL. Borrowed, valid until close. */
const char *eng_st_metadata(const struct eng_st_file *f, const char *key);

/* Copy tensor name into dst as fp32, checking it exists, is F32/F16/BF16 and has exactly
 * the given shape (ndim dims). Returns 0, or -1 with a message naming file, tensor, the shape
 * found and the shape expected. */
int eng_st_read(const struct eng_st_file *f, const char *name, int ndim, const int64_t *shape, float *dst);

/* Copy any F32/F16/BF16 tensor into dst (capacity cap floats) whatever its shape; the
 * element count is stored in *n. Returns 0 or -1 with a message. */
int eng_st_read_any(const struct eng_st_file *f, const char *name, float *dst, size_t cap, size_t *n);

/* "F32" etc. */
const char *eng_dtype_name(enum eng_dtype t);

/* IEEE half and bfloat16 to fp32. */
float eng_f16_to_f32(uint16_t h);
float eng_bf16_to_f32(uint16_t h);

#endif
