/* core/net/server/decode: Content-Encoding undone under a cap. The output grows geometrically
 * from a small start and never past cap + 1 bytes, whatever a header or a frame claims, so a
 * 1 KiB bomb costs at most cap bytes of memory before it is refused with RMR_E2BIG.
 *
 * Choices: gzip accepts concatenated members (RFC 1952 section 2.2, as gzip -d does) but any
 * bytes after the last member that do not form a member are RMR_EPARSE, including zero
 * padding. deflate is zlib-wrapped (RFC 9110) but raw deflate, which some clients send, is
 * accepted: it is tried when the zlib header is absent or the zlib stream fails to decode.
 * zstd frames may be concatenated; the window a frame may ask for is bounded by the cap.
 * A list of more than MAX_CODINGS encodings is RMR_ENOTSUP. */
#include "net/server/decode.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <remora/error.h>

#define MAX_CODINGS 8
#define FIRST_ALLOC 4096
#define ZCHUNK      ((size_t)1 << 30) /* zlib counts in uInt */

enum coding {
    CODING_GZIP,
    CODING_DEFLATE,
    CODING_ZSTD,
};

/* The decoded bytes: at most limit (cap + 1) of them, so reaching limit means "over cap". */
struct obuf {
    unsigned char *data;
    size_t len;
    size_t alloc;
    size_t limit;
};

static int obuf_init(struct obuf *o, size_t cap, size_t inlen)
{
    o->len = 0;
    o->limit = cap + 1;
    size_t first = inlen < SIZE_MAX / 4 ? inlen * 4 : SIZE_MAX;
    if (first < FIRST_ALLOC)
        first = FIRST_ALLOC;
    if (first > o->limit)
        first = o->limit;
    o->data = malloc(first);
    o->alloc = o->data != NULL ? first : 0;
    return o->data != NULL ? 0 : RMR_ENOMEM;
}

/* Makes room for more output; RMR_E2BIG once more than cap bytes came out. */
static int obuf_grow(struct obuf *o)
{
    if (o->len < o->alloc)
        return 0;
    if (o->len >= o->limit)
        return RMR_E2BIG;
    size_t next = o->alloc <= o->limit / 2 ? o->alloc * 2 : o->limit;
    unsigned char *d = realloc(o->data, next);
    if (d == NULL)
        return RMR_ENOMEM;
    o->data = d;
    o->alloc = next;
    return 0;
}

/* Hands the bytes over NUL-ended. */
static int obuf_finish(struct obuf *o, unsigned char **out, size_t *outlen)
{
    if (o->len >= o->limit)
        return RMR_E2BIG; /* the stream ended on the sentinel byte: cap + 1 bytes */
    if (o->len == o->alloc) {
        unsigned char *d = realloc(o->data, o->len + 1);
        if (d == NULL)
            return RMR_ENOMEM;
        o->data = d;
        o->alloc = o->len + 1;
    }
    o->data[o->len] = '\0';
    *out = o->data;
    *outlen = o->len;
    o->data = NULL;
    return 0;
}

static int inflate_all(const unsigned char *in, size_t len, int window_bits, int members,
                       size_t cap, unsigned char **out, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, window_bits) != Z_OK)
        return RMR_ENOMEM;
    struct obuf o;
    int rc = obuf_init(&o, cap, len);
    size_t in_off = 0;
    int finished = 0;
    while (rc == 0 && !finished) {
        if (zs.avail_in == 0 && in_off < len) {
            size_t n = len - in_off < ZCHUNK ? len - in_off : ZCHUNK;
            zs.next_in = (unsigned char *)(uintptr_t)(in + in_off);
            zs.avail_in = (uInt)n;
            in_off += n;
        }
        rc = obuf_grow(&o);
        if (rc < 0)
            break;
        size_t room = o.alloc - o.len < ZCHUNK ? o.alloc - o.len : ZCHUNK;
        zs.next_out = o.data + o.len;
        zs.avail_out = (uInt)room;
        int zr = inflate(&zs, Z_NO_FLUSH);
        o.len += room - zs.avail_out;
        int input_done = zs.avail_in == 0 && in_off == len;
        switch (zr) {
        case Z_STREAM_END:
            if (input_done) {
                rc = obuf_finish(&o, out, outlen);
                finished = 1;
                break;
            }
            /* More bytes: another gzip member, or garbage that inflate will refuse. */
            if (!members || inflateReset(&zs) != Z_OK)
                rc = RMR_EPARSE;
            break;
        case Z_OK: break;
        case Z_BUF_ERROR:
            /* No progress: with output room left, the input ran out before the end. */
            if (zs.avail_out != 0 && input_done)
                rc = RMR_EPARSE;
            break;
        case Z_MEM_ERROR: rc = RMR_ENOMEM; break;
        default: rc = RMR_EPARSE; break;
        }
    }
    inflateEnd(&zs);
    free(o.data);
    return rc;
}

/* A zlib header: CM 8, a window of at most 32 KiB, and the check bits (RFC 1950). */
static int zlib_header(const unsigned char *in, size_t len)
{
    return len >= 2 && (in[0] & 0x0f) == 8 && (in[0] >> 4) <= 7 &&
           ((unsigned)in[0] << 8 | in[1]) % 31 == 0;
}

/* The largest window a zstd frame may demand: enough for what the zstd CLI writes at any level
 * (8 MiB), more when the cap allows more, never past zstd's own default limit. */
static int zstd_window_log(size_t cap)
{
    int wlog = 23;
    while (wlog < 27 && ((size_t)1 << wlog) < cap)
        wlog++;
    return wlog;
}

static int zstd_all(const unsigned char *in, size_t len, size_t cap, unsigned char **out,
                    size_t *outlen)
{
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    if (dc == NULL)
        return RMR_ENOMEM;
    struct obuf o;
    int rc = obuf_init(&o, cap, len);
    if (rc == 0 &&
        ZSTD_isError(ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, zstd_window_log(cap))))
        rc = RMR_ENOMEM;
    ZSTD_inBuffer ib = {in, len, 0};
    while (rc == 0) {
        rc = obuf_grow(&o);
        if (rc < 0)
            break;
        ZSTD_outBuffer ob = {o.data + o.len, o.alloc - o.len, 0};
        size_t zr = ZSTD_decompressStream(dc, &ob, &ib);
        o.len += ob.pos;
        if (ZSTD_isError(zr)) {
            /* zstd's error enum is foreign and grows: compared, not switched over. */
            ZSTD_ErrorCode code = ZSTD_getErrorCode(zr);
            if (code == ZSTD_error_frameParameter_windowTooLarge)
                rc = RMR_E2BIG;
            else if (code == ZSTD_error_memory_allocation)
                rc = RMR_ENOMEM;
            else
                rc = RMR_EPARSE;
            break;
        }
        if (ib.pos == ib.size) {
            if (zr == 0) {
                rc = obuf_finish(&o, out, outlen);
                break;
            }
            /* The frame wants more input and there is none: truncated. */
            if (ob.pos < ob.size)
                rc = RMR_EPARSE;
        }
    }
    ZSTD_freeDCtx(dc);
    free(o.data);
    return rc;
}

static int decode_one(enum coding c, const unsigned char *in, size_t len, size_t cap,
                      unsigned char **out, size_t *outlen)
{
    int rc;
    switch (c) {
    case CODING_GZIP: return inflate_all(in, len, 15 + 16, 1, cap, out, outlen);
    case CODING_DEFLATE:
        if (zlib_header(in, len)) {
            rc = inflate_all(in, len, 15, 0, cap, out, outlen);
            if (rc != RMR_EPARSE)
                return rc;
        }
        return inflate_all(in, len, -15, 0, cap, out, outlen);
    case CODING_ZSTD: return zstd_all(in, len, cap, out, outlen);
    }
    return RMR_ENOTSUP;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int token_is(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/* Reads the list into codings[] in order; identity and empty members are dropped. */
static int parse_list(const char *encoding, enum coding *codings, int *ncodings)
{
    *ncodings = 0;
    if (encoding == NULL)
        return 0;
    const char *p = encoding;
    for (;;) {
        while (is_ows(*p))
            p++;
        const char *start = p;
        while (*p != '\0' && *p != ',')
            p++;
        const char *end = p;
        while (end > start && is_ows(end[-1]))
            end--;
        size_t n = (size_t)(end - start);
        if (n > 0 && !token_is(start, n, "identity")) {
            enum coding c;
            if (token_is(start, n, "gzip") || token_is(start, n, "x-gzip"))
                c = CODING_GZIP;
            else if (token_is(start, n, "deflate"))
                c = CODING_DEFLATE;
            else if (token_is(start, n, "zstd"))
                c = CODING_ZSTD;
            else
                return RMR_ENOTSUP;
            if (*ncodings == MAX_CODINGS)
                return RMR_ENOTSUP;
            codings[(*ncodings)++] = c;
        }
        if (*p == '\0')
            return 0;
        p++; /* the comma */
    }
}

int body_decode(const char *encoding, const unsigned char *in, size_t len, size_t cap,
                unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (in == NULL && len > 0)
        return RMR_EINVAL;
    if (cap > SIZE_MAX - 2)
        cap = SIZE_MAX - 2; /* room for the cap + 1 sentinel byte and the NUL */
    enum coding codings[MAX_CODINGS];
    int n;
    int rc = parse_list(encoding, codings, &n);
    if (rc < 0)
        return rc;
    if (n == 0) {
        if (len > cap)
            return RMR_E2BIG;
        unsigned char *copy = malloc(len + 1);
        if (copy == NULL)
            return RMR_ENOMEM;
        if (len > 0)
            memcpy(copy, in, len);
        copy[len] = '\0';
        *out = copy;
        *outlen = len;
        return 0;
    }
    /* Undo the last coding applied first. */
    unsigned char *cur = NULL;
    size_t curlen = 0;
    for (int i = n - 1; i >= 0; i--) {
        unsigned char *next;
        size_t nextlen;
        rc = decode_one(codings[i], cur != NULL ? cur : in, cur != NULL ? curlen : len, cap, &next,
                        &nextlen);
        free(cur);
        if (rc < 0)
            return rc;
        cur = next;
        curlen = nextlen;
    }
    *out = cur;
    *outlen = curlen;
    return 0;
}
