/* TF.js weights reader: a *-weights_manifest.json and the .bin shards it names.
 *
 *   struct eng_tfjs *w = eng_tfjs_open("repo/faces/tiny_face_detector_model-weights_manifest.json");
 *   if (!w) die(eng_errmsg());   // "...: shard 'tiny_face_detector_model.bin' is 1024 bytes, manifest needs 193321"
 *   float k[3 * 3 * 3 * 16];
 *   eng_tfjs_read(w, "conv0/filters", 4, (int64_t[]){3, 3, 3, 16}, k);
 *   eng_tfjs_close(w);
 *
 * The manifest is a JSON list of groups {"paths": [shard files], "weights": [{"name",
 * "shape", "dtype", "quantization": {"dtype": "uint8", "scale", "min"}}]}; a group's shards
 * are one byte stream, its weights laid end to end in manifest order. float32 weights are
 * read as they are; uint8/uint16-quantised ones are dequantised as q * scale + min; int32 is
 * converted. Shapes keep TF's order (filters are HWIO).
 */
#ifndef SALIENT_ENGINE_TFJS_H
#define SALIENT_ENGINE_TFJS_H

#include <stddef.h>
#include <stdint.h>

#define ENG_TFJS_MAX_DIMS 8

struct eng_tfjs_info {
    const char *name; /* borrowed */
    int ndim;
    int64_t shape[ENG_TFJS_MAX_DIMS];
    int64_t nelem;
};

struct eng_tfjs; /* opaque */

/* Read and validate the manifest and all its shards (relative to the manifest's folder).
 * NULL with a message naming the file and weight on any problem: manifest not JSON or not
 * the expected structure, a missing shard, shards shorter than the weights need, an unknown
 * dtype or quantisation. Caller closes. */
struct eng_tfjs *eng_tfjs_open(const char *manifest_path);
void eng_tfjs_close(struct eng_tfjs *w);

int eng_tfjs_count(const struct eng_tfjs *w);
const struct eng_tfjs_info *eng_tfjs_at(const struct eng_tfjs *w, int i);
const struct eng_tfjs_info *eng_tfjs_find(const struct eng_tfjs *w, const char *name);

/* Copy (dequantising) weight name into dst as fp32, checking it exists and has exactly the
 * given shape. Returns 0, or -1 with a message naming manifest, weight and both shapes. */
int eng_tfjs_read(const struct eng_tfjs *w, const char *name, int ndim, const int64_t *shape, float *dst);

#endif
