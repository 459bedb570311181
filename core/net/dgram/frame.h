/* core/net/dgram: framing of a unixstream byte stream (DogStatsD's Unix stream transport,
 * datadog-go statsd/uds.go): each message is a 4-byte little-endian length, then that many
 * bytes. Pure, no libuv, so the fuzz target runs the same code as the listener.
 * Thread: any; no state. */
#ifndef REMORA_CORE_NET_DGRAM_FRAME_H
#define REMORA_CORE_NET_DGRAM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define DGRAM_FRAME_HEADER 4u

/* Looks at the start of what is left of a stream: buf holds len bytes (borrowed, not
 * NUL-terminated). Returns 1 and sets *frame_len when a whole frame is there (its message is
 * the frame_len bytes at buf + DGRAM_FRAME_HEADER; the next frame starts after them); 0 when
 * more bytes are needed; RMR_E2BIG when the length is over max, after which the stream cannot
 * be framed any more. A frame of length 0 is whole (and empty). */
int dgram_frame_next(const char *buf, size_t len, uint32_t max, uint32_t *frame_len);

#endif
