/* fuzz_manifest: a model folder's manifest.json through mdl_manifest_parse; what parses must
 * have a family, terminated fields and as many labels as it says. The text also goes through
 * mdl_name_valid, which judges folder names. */
#include <stdlib.h>
#include <string.h>

#include "models/manifest.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = (char *)fuzz_copy(data, size, 1);
    struct mdl_manifest m;
    if (mdl_manifest_parse(&m, text, size, "fuzz/manifest.json", "fuzz-model") == 0) {
        FUZZ_CHECK(m.family[0] && memchr(m.family, 0, sizeof m.family));
        FUZZ_CHECK(memchr(m.version, 0, sizeof m.version) && memchr(m.task, 0, sizeof m.task));
        FUZZ_CHECK(strcmp(m.name, "fuzz-model") == 0 && m.json != NULL && m.nlabels >= 0);
        for (int i = 0; i < m.nlabels; i++)
            FUZZ_CHECK(m.labels[i] != NULL && m.labels[i][0] != '\0');
        FUZZ_CHECK(m.batching.max_batch_size >= 0 && m.batching.max_queue_delay_us >= 0 &&
                   m.batching.max_queue_size >= 0);
        mdl_manifest_free(&m);
    }
    if (mdl_name_valid(text)) {
        size_t n = strlen(text);
        FUZZ_CHECK(n >= 1 && n < MDL_NAME_MAX && text[0] != '.');
    }
    free(text);
    return 0;
}
