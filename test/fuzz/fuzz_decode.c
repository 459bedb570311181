/* Fuzzes body_decode: every encoding (and a few lists) on the same bytes under a 256 KiB cap.
 * Success means a NUL-ended output within the cap; failure means one of the documented codes
 * and no output. */
#include <stdint.h>
#include <stdlib.h>

#include <remora/error.h>

#include "net/server/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const encodings[] = {
        NULL, "identity", "gzip", "x-gzip", "deflate", "zstd", "gzip, zstd", "deflate,gzip", "br",
    };
    const size_t cap = (size_t)256 << 10;
    for (size_t i = 0; i < sizeof encodings / sizeof encodings[0]; i++) {
        unsigned char *out = (unsigned char *)1;
        size_t outlen = 1;
        int rc = body_decode(encodings[i], data, size, cap, &out, &outlen);
        if (rc == 0) {
            if (out == NULL || outlen > cap || out[outlen] != '\0')
                abort();
            free(out);
        } else {
            if (out != NULL || outlen != 0)
                abort();
            if (rc != RMR_E2BIG && rc != RMR_EPARSE && rc != RMR_ENOTSUP && rc != RMR_ENOMEM)
                abort();
        }
    }
    return 0;
}
