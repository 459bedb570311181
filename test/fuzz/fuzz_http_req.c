/* Fuzzes the request adapter: the first byte picks the limits, the second seeds the slice
 * sizes, the rest is the byte stream of one connection. Every event is acted on as the server
 * does (peek at HEADERS, take and free at REQUEST), and the adapter's promises are checked:
 * it never uses more than it was given, MORE means everything was used, a request's strings
 * and body are NUL-ended, and errors carry a status and a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/server/http_req.h"

static void check_request(struct http_request *r)
{
    if (r->method == NULL || r->path == NULL || r->query == NULL || r->path[0] == '\0')
        abort();
    if ((r->body == NULL) != (r->body_len == 0))
        abort();
    if (r->body != NULL && r->body[r->body_len] != '\0')
        abort();
    for (uint32_t i = 0; i < r->nheaders; i++) {
        for (const char *n = r->headers[i].name; *n != '\0'; n++)
            if (*n >= 'A' && *n <= 'Z')
                abort(); /* names are lowercased */
        const char *v = http_request_header(r, r->headers[i].name);
        if (v == NULL)
            abort();
        (void)strlen(v);
    }
    (void)http_request_header(r, "content-encoding");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct http_reqp_limits lim = {0, 0};
    if (data[0] & 1)
        lim.max_header_bytes = 64 + (size_t)(data[0] >> 1) * 8;
    if (data[0] & 2)
        lim.max_body_bytes = 1 + (size_t)(data[0] >> 2) * 16;
    uint32_t rng = 0x9e3779b9u ^ data[1];
    const char *in = (const char *)data + 2;
    size_t len = size - 2, off = 0;
    struct http_reqp *p = http_reqp_new(&lim);
    if (p == NULL)
        return 0;
    int stop = 0;
    while (off < len && !stop) {
        rng = rng * 1103515245u + 12345u;
        size_t slice = (rng >> 16) % 4 == 0 ? len - off : 1 + (rng >> 16) % 64;
        if (slice > len - off)
            slice = len - off;
        size_t pos = 0;
        int spins = 0;
        while (pos < slice && !stop) {
            size_t used = 0;
            enum http_reqp_event ev = http_reqp_feed(p, in + off + pos, slice - pos, &used);
            if (used > slice - pos)
                abort();
            pos += used;
            spins = used == 0 ? spins + 1 : 0;
            if (spins > 3)
                abort(); /* no progress: the adapter would spin the server */
            switch (ev) {
            case HTTP_REQP_MORE:
                if (pos != slice)
                    abort();
                break;
            case HTTP_REQP_HEADERS: {
                struct http_request *r = http_reqp_peek(p);
                if (r == NULL || !http_reqp_in_request(p))
                    abort();
                int64_t cl = http_reqp_content_length(p);
                if (cl > 0 && lim.max_body_bytes > 0 && (uint64_t)cl > lim.max_body_bytes)
                    abort();
                (void)http_request_header(r, "expect");
                break;
            }
            case HTTP_REQP_REQUEST: {
                struct http_request *r = http_reqp_take(p);
                if (r == NULL)
                    abort();
                check_request(r);
                http_request_free(r);
                break;
            }
            case HTTP_REQP_ERROR:
                if (http_reqp_error_status(p) < 400 || http_reqp_error_reason(p) == NULL)
                    abort();
                stop = 1;
                break;
            }
        }
        off += pos;
    }
    http_reqp_free(p);
    return 0;
}
