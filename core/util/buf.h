/* core/util/buf: a growable byte buffer, JSON string quoting and body compression, shared by
 * the agent's host table and the fake host (no libuv). */
#ifndef REMORA_CORE_BUF_H
#define REMORA_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct dbuf {
    unsigned char *data;
    size_t len;
    size_t cap;
    size_t limit; /* 0: unbounded; appends beyond it fail with RMR_ENOMEM */
};

void dbuf_init(struct dbuf *b, size_t limit);
void dbuf_release(struct dbuf *b);
/* Ensures room for extra more bytes. Errors: RMR_ENOMEM (also on size overflow or limit). */
int dbuf_reserve(struct dbuf *b, size_t extra);
int dbuf_append(struct dbuf *b, const void *data, size_t len);
/* Appends s as a quoted JSON string (RFC 8259): \" \\ \b \f \n \r \t, other control bytes as
 * \u00XX, invalid UTF-8 sequences as \ufffd, valid UTF-8 unchanged. */
int dbuf_json_str(struct dbuf *b, const char *s, size_t len);

/* Compresses in with method (enum rmr_compression: none copies) into a new malloc'd buffer.
 * Errors: RMR_ENOMEM, RMR_EINVAL (unknown method), RMR_EIO (library failure). */
int compress_buf(uint32_t method, const void *in, size_t len, unsigned char **out, size_t *outlen);

#endif
