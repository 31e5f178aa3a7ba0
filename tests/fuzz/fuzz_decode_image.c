/* fuzz_decode_image: srv_decode_image on any bytes (JPEG via libjpeg-turbo, PNG via libpng, our
 * EXIF orientation parser and transforms). A decoded image must be exactly as large as it says
 * (every pixel byte is read, so ASan sees a short buffer); a failure must leave nothing to free
 * and say why. libjpeg-turbo and libpng themselves are not instrumented: this finds bugs in our
 * use of them and in our own code, not in theirs. */
#include <stdlib.h>
#include <string.h>

#include "server/decode_image.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small enough that a header claiming a large image is refused before it costs seconds. */
#define MAX_PIXELS ((size_t)1 << 20)

static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fuzz_copy(data, size, 0);
    struct srv_image img;
    char err[256];
    enum srv_decode_status st = srv_decode_image(buf, size, MAX_PIXELS, &img, err, sizeof err);
    int http = srv_decode_http_status(st);
    FUZZ_CHECK(srv_decode_status_name(st) != NULL);
    if (st == SRV_DECODE_OK) {
        FUZZ_CHECK(http == 200);
        FUZZ_CHECK(img.width >= 1 && img.height >= 1 && (size_t)img.width * (size_t)img.height <= MAX_PIXELS);
        FUZZ_CHECK(img.channels == 1 || img.channels == 3);
        FUZZ_CHECK(img.stride == (size_t)img.width * (size_t)img.channels && img.data != NULL);
        unsigned sum = 0;
        for (size_t i = 0; i < img.stride * (size_t)img.height; i++)
            sum += img.data[i];
        sink = sum; /* so the loads stay */
        srv_image_free(&img);
        FUZZ_CHECK(img.data == NULL);
    } else {
        FUZZ_CHECK(http == 400 || http == 413 || http == 415 || (st == SRV_DECODE_NOMEM && http == 500));
        FUZZ_CHECK(img.data == NULL && img.width == 0 && img.height == 0);
        FUZZ_CHECK(err[0] != '\0' && memchr(err, 0, sizeof err));
    }
    free(buf);
    return 0;
}
