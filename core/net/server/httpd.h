/* core/net/server: the agent's HTTP/1.1 server. One httpd is one listening socket (the shared
 * listener on [agent] http_listen, or a plugin's own, such as ddtrace's 8126) with its routes.
 * Keep-alive, pipelining (one request answered at a time, in order), chunked bodies,
 * Content-Encoding gzip/deflate/zstd request bodies decoded under a cap, and limits that answer
 * 431, 413, 408 and close idle or slow clients. Handlers answer asynchronously.
 * Thread: the loop thread, all of it. */
#ifndef REMORA_CORE_NET_HTTPD_H
#define REMORA_CORE_NET_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <remora/plugin.h>

/* Limits; zero members take the defaults in parentheses. */
struct httpd_limits {
    size_t max_header_bytes;    /* request line + headers (64 KiB) -> 431 */
    size_t max_body_bytes;      /* body as received, before decoding (64 MiB) -> 413 */
    size_t max_decoded_bytes;   /* body after Content-Encoding is undone (256 MiB) -> 413 */
    uint64_t header_timeout_ms; /* first byte of a request to its last header (10 s) -> 408 */
    uint64_t body_timeout_ms;   /* last header to the last body byte (60 s) -> 408 */
    uint64_t idle_timeout_ms;   /* keep-alive connection with no request (120 s) -> closed */
    uint32_t max_connections;   /* open connections (1024); more are accepted and closed */
    uint32_t reserved_;
};

struct httpd;

/* A received request. Starts with the SDK handle so plugins reach the host table through it;
 * the rest is private to the server. Valid until httpd_respond(). */
struct rmr_http_req;
typedef struct rmr_http_req httpd_req;

typedef void (*httpd_handler)(void *arg, httpd_req *req);

/* Counters of one server, read by /metrics and /v1/status. */
struct httpd_stats {
    uint64_t connections_accepted;
    uint64_t connections_rejected; /* over max_connections */
    uint64_t connections_open;
    uint64_t requests;
    uint64_t responses[6];      /* by class: [1] 1xx ... [5] 5xx; [0] unused */
    uint64_t bad_requests;      /* 400: malformed */
    uint64_t too_large;         /* 413: body or decoded body over its limit */
    uint64_t headers_too_large; /* 431 */
    uint64_t timeouts;          /* 408 or a slow client cut */
    uint64_t bytes_in;
    uint64_t bytes_out;
};

/* Binds address ("127.0.0.1:9529", "[::1]:9529", "0.0.0.0:8126"; port 0 picks a free port)
 * and listens. host is stamped into every request's handle (NULL in tests that use the
 * httpd_req_* functions only). On failure writes one sentence into err. Errors:
 * RMR_EADDRINUSE, RMR_EACCES, RMR_EINVAL (unparsable address), RMR_ENOMEM.
 * Also accepted: "localhost:9529" (127.0.0.1), ":9529" or "*:9529" (0.0.0.0) and a bare port
 * "9529" (127.0.0.1); other host names are refused (no blocking DNS). address, limits and err
 * are borrowed; *out is owned by the caller until httpd_close(). A failed bind releases its
 * memory in a close callback: the loop must run once more before uv_loop_close(). */
int httpd_open(uv_loop_t *loop, const char *address, const struct httpd_limits *limits,
               const struct rmr_host_api *host, struct httpd **out, char *err, size_t errlen);
/* The bound address as "127.0.0.1:40123" (with the real port when 0 was asked). */
const char *httpd_address(const struct httpd *s);
/* Routes method (NULL: any) + path to fn; RMR_ROUTE_PREFIX matches path and below. owner
 * groups routes for httpd_unroute(). Errors: RMR_EEXIST (same method and path), RMR_ENOMEM.
 * Unrouted paths get 404, a routed path with another method 405. */
int httpd_route(struct httpd *s, const char *method, const char *path, uint32_t flags,
                httpd_handler fn, void *arg, const void *owner);
/* Removes owner's routes; requests they hold stay valid until answered. */
void httpd_unroute(struct httpd *s, const void *owner);
const struct httpd_stats *httpd_stats(const struct httpd *s);
/* Stops listening, closes every connection (requests held by handlers stay valid and their
 * answers are discarded) and frees s once libuv has closed its handles. NULL is a no-op.
 * Encoded bodies being decoded on the thread pool are freed when their work completes. */
void httpd_close(struct httpd *s);

/* Requests. Strings are NUL-ended and borrowed until the request is answered. */
int httpd_req_info(httpd_req *req, struct rmr_http_req_info *out);
/* Case-insensitive; repeated headers are joined with ", ". NULL when absent. */
const char *httpd_req_header(httpd_req *req, const char *name);
/* The owner passed to httpd_route for the route that matched. */
const void *httpd_req_owner(const httpd_req *req);
/* Answers and releases req (also when the client has gone: the answer is discarded).
 * Adds Content-Length, Connection and, for 429 and 503 without one, "Retry-After: 1".
 * Returns 0, or RMR_ECONNRESET when the client had gone (its connection was closed by the
 * server: an error, a timeout, httpd_close(); also after httpd_close() freed s).
 * headers, content_type and body are borrowed for the call (copied). Headers with invalid
 * names or values, and Content-Length, Connection and Transfer-Encoding, are dropped; a
 * status outside 200..599 is sent as 500; 204 and 304 and answers to HEAD carry no body.
 * Reading stops while a request is with its handler, so a client that goes away meanwhile is
 * noticed when the answer is written, not before. Call exactly once per request. */
int httpd_respond(httpd_req *req, int status, const struct rmr_http_header *headers,
                  uint32_t nheaders, const char *content_type, const void *body, size_t len);

#endif
