/* Fuzzes unixstream framing (core/net/dgram/frame.c) the way the listener uses it: the first
 * two bytes choose max (1..512) and a read size (1..256); the rest is the stream. Framed in
 * one piece and framed through a buffer of max + 4 bytes fed read by read (append, take every
 * whole frame, move the partial one to the front), the frames must be the same and the same
 * error must end both; a read must always have room. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <remora/error.h>

#include "net/dgram/frame.h"

#define MAX_INPUT  (64 * 1024)
#define MAX_FRAMES (MAX_INPUT / DGRAM_FRAME_HEADER + 1) /* every frame takes 4 bytes at least */

struct frames {
    size_t off[MAX_FRAMES];
    uint32_t len[MAX_FRAMES];
    uint32_t n;
    int error;
};

static void one_piece(const char *s, size_t len, uint32_t max, struct frames *f)
{
    size_t at = 0;
    f->n = 0;
    f->error = 0;
    for (;;) {
        uint32_t n = 0;
        int rc = dgram_frame_next(s + at, len - at, max, &n);
        if (rc <= 0) {
            f->error = rc;
            return;
        }
        if (n > max || at + DGRAM_FRAME_HEADER + n > len || f->n == MAX_FRAMES)
            abort();
        f->off[f->n] = at + DGRAM_FRAME_HEADER;
        f->len[f->n++] = n;
        at += DGRAM_FRAME_HEADER + n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > MAX_INPUT)
        return 0;
    uint32_t max = 1 + (uint32_t)data[0] * 2;
    size_t step = 1 + data[1];
    const char *s = (const char *)data + 2;
    size_t len = size - 2;
    static struct frames whole;
    one_piece(s, len, max, &whole);

    size_t cap = (size_t)max + DGRAM_FRAME_HEADER;
    char *buf = malloc(cap);
    if (buf == NULL)
        return 0;
    size_t fill = 0, fed = 0, streamed = 0; /* streamed: stream offset of buf[0] */
    uint32_t got = 0;
    int error = 0;
    while (fed < len && error == 0) {
        size_t room = cap - fill;
        if (room == 0)
            abort(); /* a whole frame always fits: the listener would read 0 and see EOF */
        size_t n = len - fed < step ? len - fed : step;
        n = n < room ? n : room;
        memcpy(buf + fill, s + fed, n);
        fill += n;
        fed += n;
        size_t off = 0;
        for (;;) {
            uint32_t flen = 0;
            int rc = dgram_frame_next(buf + off, fill - off, max, &flen);
            if (rc == 0)
                break;
            if (rc < 0) {
                error = rc;
                break;
            }
            if (got >= whole.n || whole.off[got] != streamed + off + DGRAM_FRAME_HEADER ||
                whole.len[got] != flen ||
                memcmp(buf + off + DGRAM_FRAME_HEADER, s + whole.off[got], flen) != 0)
                abort();
            got++;
            off += DGRAM_FRAME_HEADER + flen;
        }
        memmove(buf, buf + off, fill - off);
        fill -= off;
        streamed += off;
    }
    free(buf);
    /* The stream read whole ends as the one-piece framing does. */
    if (got != whole.n || error != whole.error)
        abort();
    return 0;
}
