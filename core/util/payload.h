/* core/util/payload: the request body an output's encode() builds through the host table.
 * Both host tables (the agent's, core/pipeline.c, and the fake host's) use this one
 * implementation, so a plugin's encoder sees the same behaviour in its unit tests as in the
 * agent. Thread: whichever thread runs encode(); a payload is never shared. */
#ifndef REMORA_CORE_PAYLOAD_H
#define REMORA_CORE_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <remora/plugin.h>

#include "util/buf.h"

/* A payload's uncompressed body is bounded so one runaway encoder cannot take the process's
 * memory; outputs split well below this. */
#define PAYLOAD_LIMIT_BYTES ((size_t)256 << 20)

struct rmr_payload {
    struct rmr_handle h;          /* first: the SDK reaches the host table through it */
    rmr_encoder_t *enc;           /* the host's encoder handle (each host defines its own) */
    struct rmr_payload_spec spec; /* endpoint and content_type point at the copies below */
    char *endpoint;
    char *content_type;
    char *headers; /* ABI 1.1 spec.headers, copied */
    struct dbuf body;
};

/* Starts a payload whose handle reaches host. spec is copied (a smaller, older spec leaves
 * the members it does not know zero). Returns owned, or NULL on a bad spec or no memory. */
rmr_payload_t *payload_open(const struct rmr_host_api *host, rmr_encoder_t *enc,
                            const struct rmr_payload_spec *spec);
/* The host table's payload_write, payload_json_str, payload_len and payload_discard. */
int payload_write(rmr_payload_t *p, const void *data, size_t len);
int payload_json_str(rmr_payload_t *p, const char *s, size_t len);
size_t payload_len(const rmr_payload_t *p);
void payload_discard(rmr_payload_t *p);

/* Hands over the copy of spec.headers (NULL when none); the caller frees it. */
char *payload_take_headers(rmr_payload_t *p);
/* Lines in the payload's body so far (a last line without '\n' counts). */
uint32_t payload_lines(const rmr_payload_t *p);
/* A copy of headers with every "{lines}" replaced by nlines (RMR_PAYLOAD_LINES payloads: a
 * count header stays right after a 413 split). Returns owned, or NULL when out of memory;
 * headers NULL gives NULL. */
char *headers_with_lines(const char *headers, uint32_t nlines);

/* Compresses the body as the spec asked and hands the result over: *endpoint, *content_type
 * (NULL when none) and *body become the caller's (free()); p is freed. Consumes p on failure
 * too, leaving the outputs NULL. Errors: those of compress_buf(). */
int payload_seal(rmr_payload_t *p, char **endpoint, char **content_type, unsigned char **body,
                 size_t *len);

#endif
