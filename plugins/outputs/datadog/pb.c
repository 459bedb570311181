#include "pb.h"

#include <stdlib.h>
#include <string.h>

void ddbuf_reset(struct dd_buf *b)
{
    b->len = 0;
    b->oom = 0;
}

void ddbuf_release(struct dd_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void ddbuf_put(struct dd_buf *b, const void *data, size_t len)
{
    if (b->oom || len == 0)
        return;
    if (len > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (d == NULL) {
            b->oom = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void ddbuf_puts(struct dd_buf *b, const char *s)
{
    ddbuf_put(b, s, strlen(s));
}

size_t ddpb_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void ddpb_varint(struct dd_buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (unsigned char)v;
    ddbuf_put(b, tmp, n);
}

void ddpb_key(struct dd_buf *b, uint32_t field, uint32_t wire)
{
    ddpb_varint(b, ((uint64_t)field << 3) | wire);
}

void ddpb_int64(struct dd_buf *b, uint32_t field, int64_t v)
{
    ddpb_key(b, field, PB_VARINT);
    ddpb_varint(b, (uint64_t)v);
}

void ddpb_double(struct dd_buf *b, uint32_t field, double v)
{
    uint64_t u;
    unsigned char le[8];
    memcpy(&u, &v, sizeof u);
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(u >> (8 * i));
    ddpb_key(b, field, PB_FIXED64);
    ddbuf_put(b, le, sizeof le);
}

void ddpb_bytes(struct dd_buf *b, uint32_t field, const void *data, size_t len)
{
    ddpb_key(b, field, PB_LEN);
    ddpb_varint(b, len);
    ddbuf_put(b, data, len);
}

size_t dd_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
            return 0; /* overlong, surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
            return 0; /* overlong, above U+10FFFF */
        return 4;
    }
    return 0;
}

static size_t repaired_len(const unsigned char *s, size_t len)
{
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        size_t n = dd_utf8_seq(s + i, len - i);
        out += n > 0 ? n : 3;
        i += n > 0 ? n : 1;
    }
    return out;
}

static void put_repaired(struct dd_buf *b, const unsigned char *s, size_t len)
{
    static const unsigned char fffd[3] = {0xef, 0xbf, 0xbd};
    for (size_t i = 0; i < len;) {
        size_t n = dd_utf8_seq(s + i, len - i);
        ddbuf_put(b, n > 0 ? s + i : fffd, n > 0 ? n : sizeof fffd);
        i += n > 0 ? n : 1;
    }
}

void ddpb_string(struct dd_buf *b, uint32_t field, const char *s, size_t len)
{
    ddpb_string2(b, field, s, len, NULL, 0);
}

void ddpb_string2(struct dd_buf *b, uint32_t field, const char *a, size_t alen, const char *c,
                  size_t clen)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)c;
    size_t xl = alen > 0 ? repaired_len(x, alen) : 0;
    size_t yl = clen > 0 ? repaired_len(y, clen) : 0;
    ddpb_key(b, field, PB_LEN);
    ddpb_varint(b, xl + (clen > 0 ? 1 + yl : 0));
    if (alen > 0)
        put_repaired(b, x, alen);
    if (clen > 0) {
        ddbuf_put(b, ":", 1);
        put_repaired(b, y, clen);
    }
}

/* sint32 is zigzag-encoded: 0, -1, 1, -2 ... become 0, 1, 2, 3 ... */
static uint32_t zigzag32(int32_t v)
{
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

void ddpb_packed_sint32(struct dd_buf *b, uint32_t field, const int32_t *v, uint32_t n)
{
    if (n == 0)
        return;
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++)
        len += ddpb_varint_size(zigzag32(v[i]));
    ddpb_key(b, field, PB_LEN);
    ddpb_varint(b, len);
    for (uint32_t i = 0; i < n; i++)
        ddpb_varint(b, zigzag32(v[i]));
}

void ddpb_packed_uint32(struct dd_buf *b, uint32_t field, const uint32_t *v, uint32_t n)
{
    if (n == 0)
        return;
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++)
        len += ddpb_varint_size(v[i]);
    ddpb_key(b, field, PB_LEN);
    ddpb_varint(b, len);
    for (uint32_t i = 0; i < n; i++)
        ddpb_varint(b, v[i]);
}
