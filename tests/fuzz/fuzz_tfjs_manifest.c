/* fuzz_tfjs_manifest: a TF.js weights manifest and its shards, "<manifest JSON>\0<shard bytes>":
 * the JSON goes to model-weights_manifest.json, the bytes after the first NUL are split in two
 * halves, a.bin and b.bin, in the same folder (a manifest may name either, both, or files that
 * are not there). eng_tfjs_open reads them; every weight is then read (dequantised) into a
 * buffer of exactly its element count. */
#include <stdlib.h>
#include <string.h>

#include "engine/tfjs.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reading a weight allocates its element count; the shards bound it, but keep each exec fast. */
#define MAX_READ ((int64_t)1 << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t mlen = nul ? (size_t)(nul - data) : size;
    size_t slen = nul ? size - mlen - 1 : 0;
    char path[512], shard[512];
    fuzz_write_file("model-weights_manifest.json", data, mlen, path, sizeof path);
    fuzz_write_file("a.bin", nul ? nul + 1 : data, slen / 2, shard, sizeof shard);
    fuzz_write_file("b.bin", nul ? nul + 1 + slen / 2 : data, slen - slen / 2, shard, sizeof shard);

    struct eng_tfjs *w = eng_tfjs_open(path);
    if (!w)
        return 0;
    int n = eng_tfjs_count(w);
    FUZZ_CHECK(n >= 0 && eng_tfjs_at(w, n) == NULL && eng_tfjs_at(w, -1) == NULL);
    for (int i = 0; i < n; i++) {
        const struct eng_tfjs_info *t = eng_tfjs_at(w, i);
        FUZZ_CHECK(t != NULL && t->name != NULL && t->ndim >= 0 && t->ndim <= ENG_TFJS_MAX_DIMS && t->nelem >= 0);
        FUZZ_CHECK(eng_tfjs_find(w, t->name) == t);
        if (t->nelem > MAX_READ)
            continue;
        float *dst = malloc(t->nelem ? (size_t)t->nelem * sizeof *dst : 1);
        FUZZ_CHECK(dst != NULL);
        FUZZ_CHECK(eng_tfjs_read(w, t->name, t->ndim, t->shape, dst) == 0);
        free(dst);
    }
    eng_tfjs_close(w);
    return 0;
}
