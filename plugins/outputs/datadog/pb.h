/* plugins/outputs/datadog: a growable byte buffer and the few protobuf writers a SketchPayload
 * needs (varints, zigzag sint32, fixed64 doubles, length-delimited strings and messages, packed
 * repeated fields). No generated code and no library: the sketch is five scalar fields and two
 * packed arrays inside two nested messages, which these ~100 lines write directly (README.md
 * says why this rather than protobuf-c).
 *
 * A buffer remembers running out of memory (oom) instead of failing each append, so callers
 * write a whole message and check once. Single-threaded; each buffer has one owner.
 */
#ifndef REMORA_DATADOG_PB_H
#define REMORA_DATADOG_PB_H

#include <stddef.h>
#include <stdint.h>

struct dd_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
    int oom; /* an append failed: the contents are incomplete */
};

/* Protobuf wire types used here. */
enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_LEN = 2 };

/* Empties the buffer, keeping its memory; clears oom. */
void ddbuf_reset(struct dd_buf *b);
/* Frees the memory; the buffer is empty afterwards. */
void ddbuf_release(struct dd_buf *b);
/* Appends len bytes (data borrowed). Sets oom on failure. */
void ddbuf_put(struct dd_buf *b, const void *data, size_t len);
void ddbuf_puts(struct dd_buf *b, const char *s);

/* The number of bytes v takes as a varint (1..10). */
size_t ddpb_varint_size(uint64_t v);
void ddpb_varint(struct dd_buf *b, uint64_t v);
/* A field's key: (field << 3) | wire type. */
void ddpb_key(struct dd_buf *b, uint32_t field, uint32_t wire);
/* int64 and uint32 fields are varints (an int64 below 0 takes 10 bytes, as protobuf's). */
void ddpb_int64(struct dd_buf *b, uint32_t field, int64_t v);
void ddpb_double(struct dd_buf *b, uint32_t field, double v);
/* A length-delimited field: a nested message already written, or bytes. */
void ddpb_bytes(struct dd_buf *b, uint32_t field, const void *data, size_t len);
/* A string field: invalid UTF-8 sequences are written as U+FFFD, as proto3 strings must be
 * valid UTF-8 (and as the JSON writer does). */
void ddpb_string(struct dd_buf *b, uint32_t field, const char *s, size_t len);
/* A string field "a:c" (a Datadog tag), or "a" alone when clen is 0; repaired as above. */
void ddpb_string2(struct dd_buf *b, uint32_t field, const char *a, size_t alen, const char *c,
                  size_t clen);
/* Packed repeated sint32 (zigzag varints) and uint32 (varints); nothing when n is 0. */
void ddpb_packed_sint32(struct dd_buf *b, uint32_t field, const int32_t *v, uint32_t n);
void ddpb_packed_uint32(struct dd_buf *b, uint32_t field, const uint32_t *v, uint32_t n);

/* The length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes are not valid UTF-8
 * (overlong forms, surrogates and code points above U+10FFFF included). */
size_t dd_utf8_seq(const unsigned char *s, size_t n);

#endif
