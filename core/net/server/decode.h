/* core/net/server: request body decoders for Content-Encoding gzip, x-gzip, deflate (zlib or
 * raw), zstd and identity, each under a cap on the decoded size, so a small bomb cannot expand
 * into memory. Also used by inputs that receive compressed bodies of their own framing.
 * Thread: any; no state. */
#ifndef REMORA_CORE_NET_DECODE_H
#define REMORA_CORE_NET_DECODE_H

#include <stddef.h>

/* Decodes in[0..len) per encoding (a Content-Encoding value; NULL or "identity": a copy;
 * a list such as "gzip, zstd" is undone right to left). On success *out is malloc'd, NUL-ended
 * (not counted in *outlen) and the caller frees it. Errors: RMR_E2BIG (decoded size over cap:
 * answer 413), RMR_EPARSE (corrupt data: 400), RMR_ENOTSUP (unknown encoding: 415),
 * RMR_ENOMEM. The cap applies to every step of a list; more than eight codings are
 * RMR_ENOTSUP. Concatenated gzip members and zstd frames are decoded as one stream; any other
 * bytes after the last one are RMR_EPARSE. On failure *out is NULL. */
int body_decode(const char *encoding, const unsigned char *in, size_t len, size_t cap,
                unsigned char **out, size_t *outlen);

#endif
