/* fuzz_base64: srv_base64_decode on any bytes (a JSON string's contents), with and without a
 * media type buffer; what decodes must re-encode and decode to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "server/base64.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = (char *)fuzz_copy(data, size, 0);
    uint8_t *out = (uint8_t *)"x";
    size_t outlen = 1;
    char mime[16], err[256];
    /* A small media type buffer so "does not fit" is reachable. */
    int rc = srv_base64_decode(text, size, &out, &outlen, mime, sizeof mime, err, sizeof err);
    if (rc < 0) {
        FUZZ_CHECK(rc == -1 && out == NULL && outlen == 0 && mime[0] == '\0');
        FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof err);
    } else {
        FUZZ_CHECK(rc == 0 && out != NULL && outlen >= 1 && outlen <= size / 4 * 3 + 2);
        FUZZ_CHECK(strlen(mime) < sizeof mime);
        size_t elen = 0;
        char *enc = srv_base64_encode(out, outlen, &elen);
        FUZZ_CHECK(enc != NULL && elen == strlen(enc) && elen == (outlen + 2) / 3 * 4);
        uint8_t *again;
        size_t alen;
        FUZZ_CHECK(srv_base64_decode(enc, elen, &again, &alen, NULL, 0, NULL, 0) == 0);
        FUZZ_CHECK(alen == outlen && memcmp(again, out, outlen) == 0);
        free(again);
        free(enc);
        free(out);
    }
    /* No media type buffer, no error buffer: the same verdict. */
    uint8_t *out2;
    size_t len2;
    int rc2 = srv_base64_decode(text, size, &out2, &len2, NULL, 0, NULL, 0);
    FUZZ_CHECK(rc2 == rc || (rc < 0 && strstr(err, "too long") != NULL));
    if (rc2 == 0)
        free(out2);
    free(text);
    return 0;
}
