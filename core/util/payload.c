#include "util/payload.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rmr_payload_t *payload_open(const struct rmr_host_api *host, rmr_encoder_t *enc,
                            const struct rmr_payload_spec *spec)
{
    if (spec == NULL || spec->endpoint == NULL || spec->struct_size < sizeof(uint32_t))
        return NULL;
    struct rmr_payload *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->h.host = host;
    p->enc = enc;
    size_t n = spec->struct_size < sizeof p->spec ? spec->struct_size : sizeof p->spec;
    memcpy(&p->spec, spec, n);
    p->spec.struct_size = (uint32_t)sizeof p->spec;
    p->endpoint = strdup(spec->endpoint);
    p->content_type = p->spec.content_type != NULL ? strdup(p->spec.content_type) : NULL;
    p->headers = p->spec.headers != NULL ? strdup(p->spec.headers) : NULL;
    if (p->endpoint == NULL || (p->spec.content_type != NULL && p->content_type == NULL) ||
        (p->spec.headers != NULL && p->headers == NULL)) {
        free(p->endpoint);
        free(p->content_type);
        free(p->headers);
        free(p);
        return NULL;
    }
    p->spec.endpoint = p->endpoint;
    p->spec.content_type = p->content_type;
    p->spec.headers = p->headers;
    dbuf_init(&p->body, PAYLOAD_LIMIT_BYTES);
    return p;
}

int payload_write(rmr_payload_t *p, const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return RMR_EINVAL;
    return dbuf_append(&p->body, data, len);
}

int payload_json_str(rmr_payload_t *p, const char *s, size_t len)
{
    if (s == NULL && len > 0)
        return RMR_EINVAL;
    return dbuf_json_str(&p->body, s != NULL ? s : "", len);
}

size_t payload_len(const rmr_payload_t *p)
{
    return p->body.len;
}

void payload_discard(rmr_payload_t *p)
{
    if (p == NULL)
        return;
    dbuf_release(&p->body);
    free(p->endpoint);
    free(p->content_type);
    free(p->headers);
    free(p);
}

uint32_t payload_lines(const rmr_payload_t *p)
{
    const unsigned char *b = p->body.data;
    size_t len = p->body.len;
    uint32_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += b[i] == '\n';
    if (len > 0 && b[len - 1] != '\n')
        n++;
    return n;
}

char *headers_with_lines(const char *headers, uint32_t nlines)
{
    static const char mark[] = "{lines}";
    if (headers == NULL)
        return NULL;
    char num[16];
    int nlen = snprintf(num, sizeof num, "%" PRIu32, nlines);
    size_t count = 0;
    for (const char *s = strstr(headers, mark); s != NULL; s = strstr(s + 1, mark))
        count++;
    size_t len = strlen(headers) + count * (size_t)nlen + 1;
    char *out = malloc(len);
    if (out == NULL)
        return NULL;
    char *o = out;
    for (const char *s = headers;;) {
        const char *m = strstr(s, mark);
        if (m == NULL) {
            memcpy(o, s, strlen(s) + 1);
            break;
        }
        memcpy(o, s, (size_t)(m - s));
        o += m - s;
        memcpy(o, num, (size_t)nlen);
        o += nlen;
        s = m + sizeof mark - 1;
    }
    return out;
}

char *payload_take_headers(rmr_payload_t *p)
{
    char *h = p->headers;
    p->headers = NULL;
    p->spec.headers = NULL;
    return h;
}

int payload_seal(rmr_payload_t *p, char **endpoint, char **content_type, unsigned char **body,
                 size_t *len)
{
    *endpoint = NULL;
    *content_type = NULL;
    int rc;
    if (p->spec.compression == RMR_COMPRESS_NONE && p->body.data != NULL) {
        /* Uncompressed: the body itself is handed over, trimmed, rather than copied. */
        unsigned char *data = realloc(p->body.data, p->body.len ? p->body.len : 1);
        *body = data != NULL ? data : p->body.data;
        *len = p->body.len;
        p->body.data = NULL;
        p->body.len = p->body.cap = 0;
        rc = 0;
    } else {
        rc = compress_buf(p->spec.compression, p->body.data, p->body.len, body, len);
    }
    if (rc == 0) {
        *endpoint = p->endpoint;
        *content_type = p->content_type;
        p->endpoint = NULL;
        p->content_type = NULL;
    }
    payload_discard(p);
    return rc;
}
