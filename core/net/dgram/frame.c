/* core/net/dgram: unixstream framing. See frame.h. */
#include "net/dgram/frame.h"

#include <remora/error.h>

int dgram_frame_next(const char *buf, size_t len, uint32_t max, uint32_t *frame_len)
{
    if (len < DGRAM_FRAME_HEADER)
        return 0;
    const unsigned char *u = (const unsigned char *)buf;
    uint32_t n = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    if (n > max)
        return RMR_E2BIG;
    /* Compared as len - header < n, which cannot overflow: len >= header here. */
    if (len - DGRAM_FRAME_HEADER < (size_t)n)
        return 0;
    *frame_len = n;
    return 1;
}
