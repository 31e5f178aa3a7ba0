/* fuzz_safetensors: a whole .safetensors file through eng_st_open_mem (the checks eng_st_open
 * runs on a mapped file, on a buffer ASan can guard), then every tensor: found by name, and the
 * float ones read into a buffer of exactly their element count. */
#include <stdlib.h>
#include <string.h>

#include "engine/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fuzz_copy(data, size, 0);
    struct eng_st_file *f = eng_st_open_mem(buf, size, "fuzz.safetensors");
    if (!f) {
        free(buf);
        return 0;
    }
    (void)eng_st_metadata(f, "format");
    int n = eng_st_count(f);
    FUZZ_CHECK(n >= 0 && eng_st_at(f, n) == NULL && eng_st_at(f, -1) == NULL);
    for (int i = 0; i < n; i++) {
        const struct eng_st_info *t = eng_st_at(f, i);
        FUZZ_CHECK(t != NULL && t->name != NULL && t->ndim >= 0 && t->ndim <= ENG_ST_MAX_DIMS);
        FUZZ_CHECK((const uint8_t *)t->data >= buf && t->nbytes <= size &&
                   (size_t)((const uint8_t *)t->data - buf) <= size - t->nbytes);
        const struct eng_st_info *byname = eng_st_find(f, t->name);
        FUZZ_CHECK(byname != NULL && strcmp(byname->name, t->name) == 0);
        if (t->dtype != ENG_DTYPE_F32 && t->dtype != ENG_DTYPE_F16 && t->dtype != ENG_DTYPE_BF16)
            continue;
        size_t esize = t->dtype == ENG_DTYPE_F32 ? 4 : 2, count = t->nbytes / esize;
        float *dst = malloc(count ? count * sizeof *dst : 1);
        FUZZ_CHECK(dst != NULL);
        size_t got = 0;
        FUZZ_CHECK(eng_st_read_any(f, t->name, dst, count, &got) == 0 && got == count);
        if (count) /* one element short must be refused, not overrun */
            FUZZ_CHECK(eng_st_read_any(f, t->name, dst, count - 1, &got) < 0);
        FUZZ_CHECK(eng_st_read(f, t->name, t->ndim, t->shape, dst) == 0);
        free(dst);
    }
    eng_st_close(f);
    free(buf);
    return 0;
}
