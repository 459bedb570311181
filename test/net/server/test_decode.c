/* body_decode: golden round trips for each encoding, lists, caps (bombs included), corrupt and
 * truncated input. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include <remora/plugin.h>

#include "net/server/decode.h"
#include "tap.h"
#include "util/buf.h"

static const char text[] = "remora decodes bodies; remora decodes bodies; 0123456789\n";

/* Compresses with the agent's own compressor (gzip, zlib deflate, zstd with content size). */
static unsigned char *pack(uint32_t method, const void *in, size_t len, size_t *outlen)
{
    unsigned char *out = NULL;
    if (compress_buf(method, in, len, &out, outlen) < 0)
        return NULL;
    return out;
}

static unsigned char *raw_deflate(const void *in, size_t len, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&zs, (uLong)len);
    unsigned char *out = malloc(cap);
    zs.next_in = (unsigned char *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    deflate(&zs, Z_FINISH);
    *outlen = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

/* A zstd frame written by the streaming API, which does not know the size in advance. */
static unsigned char *zstd_stream(const void *in, size_t len, size_t *outlen)
{
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    size_t cap = ZSTD_compressBound(len) + 64;
    unsigned char *out = malloc(cap);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    ZSTD_outBuffer ob = {out, cap, 0};
    ZSTD_inBuffer ib = {in, len, 0};
    size_t left;
    do
        left = ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end);
    while (left != 0 && !ZSTD_isError(left));
    ZSTD_freeCCtx(cc);
    *outlen = ob.pos;
    return out;
}

static void check_text(const char *enc, const unsigned char *in, size_t len, const char *name)
{
    unsigned char *out = (unsigned char *)"x";
    size_t outlen = 99;
    int rc = body_decode(enc, in, len, 1 << 20, &out, &outlen);
    IS_INT(rc, 0, name);
    if (rc == 0) {
        IS_STRN((const char *)out, outlen, text, name);
        IS_INT(out[outlen], 0, "output is NUL-ended");
    }
    free(out);
}

static void identity(void)
{
    size_t n = strlen(text);
    check_text(NULL, (const unsigned char *)text, n, "NULL copies");
    check_text("identity", (const unsigned char *)text, n, "identity copies");
    check_text(" IDENTITY ", (const unsigned char *)text, n, "identity is case-insensitive");
    check_text("", (const unsigned char *)text, n, "an empty list copies");

    unsigned char *out;
    size_t outlen;
    IS_INT(body_decode(NULL, (const unsigned char *)text, n, n - 1, &out, &outlen), RMR_E2BIG,
           "identity over the cap is E2BIG");
    OK(out == NULL && outlen == 0, "failure leaves no output");
    IS_INT(body_decode(NULL, (const unsigned char *)"", 0, 0, &out, &outlen), 0,
           "an empty body copies under a zero cap");
    OK(out != NULL && outlen == 0 && out[0] == '\0', "an empty copy is an empty string");
    free(out);
}

static void each_encoding(void)
{
    size_t n = strlen(text), len;
    unsigned char *gz = pack(RMR_COMPRESS_GZIP, text, n, &len);
    check_text("gzip", gz, len, "gzip");
    check_text("x-gzip", gz, len, "x-gzip");
    check_text("GZip", gz, len, "gzip is case-insensitive");
    check_text("identity, gzip", gz, len, "identity in a list is skipped");

    /* Two members, as gzip -c a b > ab writes. */
    unsigned char *two = malloc(2 * len);
    memcpy(two, gz, len);
    memcpy(two + len, gz, len);
    unsigned char *out;
    size_t outlen;
    IS_INT(body_decode("gzip", two, 2 * len, 1 << 20, &out, &outlen), 0, "gzip members");
    IS_UINT(outlen, 2 * n, "both members are decoded");
    OK(outlen == 2 * n && memcmp(out + n, text, n) == 0, "the second member follows the first");
    free(out);
    free(two);

    unsigned char *zl = pack(RMR_COMPRESS_DEFLATE, text, n, &len);
    check_text("deflate", zl, len, "deflate with the zlib wrapper");
    free(zl);
    unsigned char *raw = raw_deflate(text, n, &len);
    check_text("deflate", raw, len, "raw deflate");
    free(raw);

    unsigned char *zs = pack(RMR_COMPRESS_ZSTD, text, n, &len);
    OK(ZSTD_getFrameContentSize(zs, len) == n, "compress_buf's zstd frame has a content size");
    check_text("zstd", zs, len, "zstd with content size");
    free(zs);
    zs = zstd_stream(text, n, &len);
    OK(ZSTD_getFrameContentSize(zs, len) == ZSTD_CONTENTSIZE_UNKNOWN,
       "the streamed frame has no content size");
    check_text("zstd", zs, len, "zstd without content size");

    /* Concatenated zstd frames decode as one stream, as zstd -d does. */
    unsigned char *zz = malloc(2 * len);
    memcpy(zz, zs, len);
    memcpy(zz + len, zs, len);
    IS_INT(body_decode("zstd", zz, 2 * len, 1 << 20, &out, &outlen), 0, "zstd frames");
    IS_UINT(outlen, 2 * n, "both frames are decoded");
    free(out);
    free(zz);
    free(zs);
    free(gz);

    /* Empty content, compressed. */
    gz = pack(RMR_COMPRESS_GZIP, "", 0, &len);
    IS_INT(body_decode("gzip", gz, len, 16, &out, &outlen), 0, "gzip of nothing");
    OK(out != NULL && outlen == 0 && out[0] == '\0', "decodes to an empty string");
    free(out);
    free(gz);
}

static void lists(void)
{
    size_t n = strlen(text), l1, l2;
    /* Applied gzip first, then zstd: "gzip, zstd" is undone right to left. */
    unsigned char *gz = pack(RMR_COMPRESS_GZIP, text, n, &l1);
    unsigned char *both = pack(RMR_COMPRESS_ZSTD, gz, l1, &l2);
    check_text("gzip, zstd", both, l2, "gzip, zstd undone right to left");
    check_text("gzip,zstd", both, l2, "without blanks");
    check_text(" gzip ,\tzstd ,", both, l2, "blanks and an empty member");
    unsigned char *out;
    size_t outlen;
    IS_INT(body_decode("zstd, gzip", both, l2, 1 << 20, &out, &outlen), RMR_EPARSE,
           "the wrong order is corrupt data");
    free(both);

    unsigned char *dz = pack(RMR_COMPRESS_DEFLATE, gz, l1, &l2);
    check_text("x-gzip, deflate", dz, l2, "gzip then deflate");
    free(dz);

    IS_INT(body_decode("br", gz, l1, 1 << 20, &out, &outlen), RMR_ENOTSUP, "br is not supported");
    IS_INT(body_decode("gzip, compress", gz, l1, 1 << 20, &out, &outlen), RMR_ENOTSUP,
           "an unknown member anywhere is ENOTSUP");
    IS_INT(body_decode("gzipx", gz, l1, 1 << 20, &out, &outlen), RMR_ENOTSUP, "names match whole");
    IS_INT(
        body_decode("gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip", gz, l1, 1 << 20, &out, &outlen),
        RMR_ENOTSUP, "more than eight codings are refused");
    OK(out == NULL, "nothing is returned on failure");
    free(gz);
}

static void caps(void)
{
    size_t big = (size_t)10 << 20, len;
    unsigned char *zeros = calloc(1, big);
    unsigned char *out;
    size_t outlen;

    unsigned char *bomb = pack(RMR_COMPRESS_GZIP, zeros, big, &len);
    OK(len < 20000, "10 MiB of zeros gzip to a few KiB");
    IS_INT(body_decode("gzip", bomb, len, 1 << 20, &out, &outlen), RMR_E2BIG,
           "gzip bomb over a 1 MiB cap is E2BIG");
    OK(out == NULL, "no output from a bomb");
    IS_INT(body_decode("gzip", bomb, len, big, &out, &outlen), 0, "the same under a 10 MiB cap");
    IS_UINT(outlen, big, "all of it");
    free(out);
    IS_INT(body_decode("gzip", bomb, len, big - 1, &out, &outlen), RMR_E2BIG,
           "one byte under the size is E2BIG");
    free(bomb);

    bomb = pack(RMR_COMPRESS_DEFLATE, zeros, big, &len);
    IS_INT(body_decode("deflate", bomb, len, 1 << 20, &out, &outlen), RMR_E2BIG,
           "deflate bomb is E2BIG");
    free(bomb);
    bomb = raw_deflate(zeros, big, &len);
    IS_INT(body_decode("deflate", bomb, len, 1 << 20, &out, &outlen), RMR_E2BIG,
           "raw deflate bomb is E2BIG");
    free(bomb);
    bomb = pack(RMR_COMPRESS_ZSTD, zeros, big, &len);
    IS_INT(body_decode("zstd", bomb, len, 1 << 20, &out, &outlen), RMR_E2BIG,
           "zstd bomb with a content size is E2BIG");
    free(bomb);
    bomb = zstd_stream(zeros, big, &len);
    IS_INT(body_decode("zstd", bomb, len, 1 << 20, &out, &outlen), RMR_E2BIG,
           "zstd bomb without a content size is E2BIG");
    free(bomb);

    /* A zstd frame header that asks for a 1 GiB window. */
    static const unsigned char huge_window[] = {0x28,    0xb5, 0x2f, 0xfd, 0x00,
                                                20 << 3, 0x01, 0x00, 0x00};
    IS_INT(body_decode("zstd", huge_window, sizeof huge_window, 1 << 20, &out, &outlen), RMR_E2BIG,
           "a zstd window beyond the bound is E2BIG");

    /* The cap holds at exactly the size. */
    size_t n = strlen(text);
    bomb = pack(RMR_COMPRESS_ZSTD, text, n, &len);
    IS_INT(body_decode("zstd", bomb, len, n, &out, &outlen), 0, "zstd at exactly the cap");
    free(out);
    IS_INT(body_decode("zstd", bomb, len, n - 1, &out, &outlen), RMR_E2BIG,
           "zstd one byte over the cap");
    free(bomb);
    free(zeros);
}

static void corrupt(void)
{
    size_t n = strlen(text), len;
    unsigned char *out;
    size_t outlen;
    unsigned char *gz = pack(RMR_COMPRESS_GZIP, text, n, &len);

    IS_INT(body_decode("gzip", gz, len - 4, 1 << 20, &out, &outlen), RMR_EPARSE,
           "gzip without its size trailer is EPARSE");
    IS_INT(body_decode("gzip", gz, len / 2, 1 << 20, &out, &outlen), RMR_EPARSE,
           "gzip cut in half is EPARSE");
    IS_INT(body_decode("gzip", gz, 0, 1 << 20, &out, &outlen), RMR_EPARSE, "empty gzip is EPARSE");
    unsigned char *bad = malloc(len + 3);
    memcpy(bad, gz, len);
    bad[len - 6] ^= 0x55; /* inside the CRC */
    IS_INT(body_decode("gzip", bad, len, 1 << 20, &out, &outlen), RMR_EPARSE,
           "a wrong CRC is EPARSE");
    memcpy(bad, gz, len);
    memcpy(bad + len, "xyz", 3);
    IS_INT(body_decode("gzip", bad, len + 3, 1 << 20, &out, &outlen), RMR_EPARSE,
           "garbage after the last member is EPARSE");
    memset(bad + len, 0, 3);
    IS_INT(body_decode("gzip", bad, len + 3, 1 << 20, &out, &outlen), RMR_EPARSE,
           "zero padding after the last member is EPARSE");
    free(bad);
    IS_INT(body_decode("zstd", gz, len, 1 << 20, &out, &outlen), RMR_EPARSE,
           "gzip called zstd is EPARSE");
    IS_INT(body_decode("deflate", (const unsigned char *)text, n, 1 << 20, &out, &outlen),
           RMR_EPARSE, "plain text called deflate is EPARSE");
    free(gz);

    unsigned char *zl = pack(RMR_COMPRESS_DEFLATE, text, n, &len);
    IS_INT(body_decode("deflate", zl, len - 2, 1 << 20, &out, &outlen), RMR_EPARSE,
           "zlib without its checksum is EPARSE");
    free(zl);
    unsigned char *raw = raw_deflate(text, n, &len);
    IS_INT(body_decode("deflate", raw, len - 1, 1 << 20, &out, &outlen), RMR_EPARSE,
           "truncated raw deflate is EPARSE");
    free(raw);

    unsigned char *zs = zstd_stream(text, n, &len);
    IS_INT(body_decode("zstd", zs, len - 1, 1 << 20, &out, &outlen), RMR_EPARSE,
           "truncated zstd is EPARSE");
    IS_INT(body_decode("zstd", zs, 4, 1 << 20, &out, &outlen), RMR_EPARSE,
           "a zstd magic alone is EPARSE");
    IS_INT(body_decode("zstd", zs, 0, 1 << 20, &out, &outlen), RMR_EPARSE, "empty zstd is EPARSE");
    free(zs);
}

int main(void)
{
    identity();
    each_encoding();
    lists();
    caps();
    corrupt();
    return tap_done();
}
