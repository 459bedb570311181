/* core/net/server: the request adapter. Turns bytes from a connection into requests with
 * http-parser (Debian's libhttp-parser), under limits, with no sockets involved, so the server
 * and the fuzz target drive the same code. One parser per connection.
 * Thread: whichever thread owns the connection. */
#ifndef REMORA_CORE_NET_HTTP_REQ_H
#define REMORA_CORE_NET_HTTP_REQ_H

#include <stddef.h>
#include <stdint.h>

struct http_header {
    char *name; /* lowercased */
    char *value;
};

/* One complete request. Owned by the parser until http_reqp_take() hands it over. */
struct http_request {
    char *method;
    char *path;  /* without the query */
    char *query; /* "" when none */
    struct http_header *headers;
    uint32_t nheaders;
    int keep_alive;      /* after this request, per HTTP/1.0 and 1.1 rules */
    int expect_continue; /* "Expect: 100-continue" (HTTP/1.1 and later only) */
    unsigned char *body; /* as received (chunks joined), NUL-ended; NULL when empty */
    size_t body_len;
};

void http_request_free(struct http_request *r);
/* Case-insensitive lookup; repeated headers come back joined with ", " (computed once). */
const char *http_request_header(struct http_request *r, const char *name);

struct http_reqp_limits {
    size_t max_header_bytes;
    size_t max_body_bytes;
};

/* What feeding bytes produced. */
enum http_reqp_event {
    HTTP_REQP_MORE = 0,    /* everything consumed; feed more */
    HTTP_REQP_HEADERS = 1, /* headers of a request are complete (body may follow) */
    HTTP_REQP_REQUEST = 2, /* a whole request is ready: take it; bytes may remain */
    HTTP_REQP_ERROR = 3,   /* the connection must be answered with error_status and closed */
};

struct http_reqp;

struct http_reqp *http_reqp_new(const struct http_reqp_limits *limits);
void http_reqp_free(struct http_reqp *p);
/* Feeds up to len bytes; *used tells how many were consumed. Stops after each HEADERS and
 * REQUEST event so the caller can act (answer 100-continue or 413, hold pipelined bytes until
 * the request is answered). After ERROR, nothing more is accepted. The caller feeds the bytes
 * after *used again: HEADERS leaves the headers' last LF unconsumed (http-parser's pause), and
 * while a REQUEST is not taken, feeding returns REQUEST again and uses nothing. A request with
 * keep_alive 0 is the connection's last: the caller should not feed what follows it. */
enum http_reqp_event http_reqp_feed(struct http_reqp *p, const char *data, size_t len,
                                    size_t *used);
/* After HEADERS: the declared Content-Length, or -1 (chunked or none). */
int64_t http_reqp_content_length(const struct http_reqp *p);
/* After HEADERS: the request so far (method, path, headers; no body yet). Borrowed. */
struct http_request *http_reqp_peek(struct http_reqp *p);
/* After REQUEST: hands the request over; the parser is ready for the next one. */
struct http_request *http_reqp_take(struct http_reqp *p);
/* After ERROR: 400, 413, 431, 501 (unsupported Transfer-Encoding) ... and a reason word for
 * counters and logs ("malformed", "header_too_large", "body_too_large"). Also 505
 * "version_not_supported" (HTTP/2 and later framing) and 503 "no_memory". */
int http_reqp_error_status(const struct http_reqp *p);
const char *http_reqp_error_reason(const struct http_reqp *p);
/* 1 when a request has started but is not complete (for the 408 decision on timeout). */
int http_reqp_in_request(const struct http_reqp *p);

#endif
