#include "util/buf.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include <remora/plugin.h>

void dbuf_init(struct dbuf *b, size_t limit)
{
    memset(b, 0, sizeof *b);
    b->limit = limit;
}

void dbuf_release(struct dbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int dbuf_reserve(struct dbuf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return RMR_ENOMEM;
    size_t need = b->len + extra;
    if (b->limit != 0 && need > b->limit)
        return RMR_ENOMEM;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return RMR_ENOMEM;
        cap *= 2;
    }
    unsigned char *d = realloc(b->data, cap);
    if (d == NULL)
        return RMR_ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int dbuf_append(struct dbuf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    int rc = dbuf_reserve(b, len);
    if (rc < 0)
        return rc;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes are not valid UTF-8
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && s[1] < 0xa0)
            return 0; /* overlong */
        if (c == 0xed && s[1] >= 0xa0)
            return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && s[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xf4 && s[1] >= 0x90)
            return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

int dbuf_json_str(struct dbuf *b, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    /* Worst case every byte becomes \ufffd (6 bytes), plus the quotes. */
    if (len > (SIZE_MAX - 2) / 6)
        return RMR_ENOMEM;
    int rc = dbuf_reserve(b, len * 6 + 2);
    if (rc < 0)
        return rc;
    unsigned char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = c;
            i++;
            continue;
        }
        switch (c) {
        case '"':
            *o++ = '\\';
            *o++ = '"';
            i++;
            continue;
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            i++;
            continue;
        case '\b':
            *o++ = '\\';
            *o++ = 'b';
            i++;
            continue;
        case '\f':
            *o++ = '\\';
            *o++ = 'f';
            i++;
            continue;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            i++;
            continue;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            i++;
            continue;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            i++;
            continue;
        default: break;
        }
        if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o += 4;
            *o++ = (unsigned char)hex[c >> 4];
            *o++ = (unsigned char)hex[c & 15];
            i++;
            continue;
        }
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0) {
            memcpy(o, "\\ufffd", 6);
            o += 6;
            i++;
            continue;
        }
        memcpy(o, s + i, n);
        o += n;
        i += n;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

static int deflate_buf(int window_bits, const void *in, size_t len, unsigned char **out,
                       size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return RMR_ENOMEM;
    uLong bound = deflateBound(&zs, (uLong)len) + 32;
    unsigned char *buf = malloc(bound);
    if (buf == NULL) {
        deflateEnd(&zs);
        return RMR_ENOMEM;
    }
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = buf;
    zs.avail_out = (uInt)bound;
    int zr = deflate(&zs, Z_FINISH);
    size_t n = zs.total_out;
    deflateEnd(&zs);
    if (zr != Z_STREAM_END) {
        free(buf);
        return RMR_EIO;
    }
    *out = buf;
    *outlen = n;
    return 0;
}

int compress_buf(uint32_t method, const void *in, size_t len, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    switch ((enum rmr_compression)method) {
    case RMR_COMPRESS_NONE: {
        unsigned char *buf = malloc(len ? len : 1);
        if (buf == NULL)
            return RMR_ENOMEM;
        if (len)
            memcpy(buf, in, len);
        *out = buf;
        *outlen = len;
        return 0;
    }
    case RMR_COMPRESS_GZIP:
        if (len > UINT32_MAX)
            return RMR_EINVAL;
        return deflate_buf(15 + 16, in, len, out, outlen);
    case RMR_COMPRESS_DEFLATE:
        if (len > UINT32_MAX)
            return RMR_EINVAL;
        return deflate_buf(15, in, len, out, outlen);
    case RMR_COMPRESS_ZSTD: {
        size_t bound = ZSTD_compressBound(len);
        unsigned char *buf = malloc(bound ? bound : 1);
        if (buf == NULL)
            return RMR_ENOMEM;
        size_t n = ZSTD_compress(buf, bound, in, len, 3);
        if (ZSTD_isError(n)) {
            free(buf);
            return RMR_EIO;
        }
        *out = buf;
        *outlen = n;
        return 0;
    }
    }
    return RMR_EINVAL;
}
