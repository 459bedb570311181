/* core/util/httptext: the HTTP rules the agent's server and the fake host must agree on, in
 * one place (no libuv): what a header name, method or field value may hold, how a request
 * picks its route, and which answer headers a handler may set.
 * Thread: any. */
#ifndef REMORA_CORE_HTTPTEXT_H
#define REMORA_CORE_HTTPTEXT_H

#include <stddef.h>
#include <stdint.h>

#include <remora/plugin.h>

/* 1 when s is a non-empty token: visible ASCII without delimiters. */
int http_is_token(const char *s);
/* 1 when s holds no control bytes but HTAB (no CR or LF: no header injection). */
int http_is_field_value(const char *s);

/* Picking a route: feed every route to http_route_consider(); the best one is the most
 * specific (an exact path beats a prefix, a longer prefix a shorter one, a route for the
 * method one for any method). */
struct http_route_match {
    long best_score;
    int path_seen; /* some route has the path, maybe for another method */
    int reserved_;
    char *allow; /* the path's other methods, "GET, POST", for a 405's Allow header */
    size_t allow_len;
    size_t allow_cap;
};

void http_route_match_init(struct http_route_match *m, char *allow, size_t allow_cap);
/* Considers a route (method NULL: any; flags RMR_ROUTE_PREFIX) for a request. Returns 1 when
 * it is the best so far. */
int http_route_consider(struct http_route_match *m, const char *route_method,
                        const char *route_path, size_t route_len, uint32_t flags,
                        const char *method, const char *path, size_t path_len);
/* 200 when a route was found, 405 when only other methods have the path, else 404. */
int http_route_status(const struct http_route_match *m, int found);

/* 1 when a handler's answer header is written as given: a valid name and value, and none of
 * the headers the server writes itself (Content-Length, Connection, Transfer-Encoding, and
 * Content-Type when the answer has one). */
int http_answer_header_kept(const struct rmr_http_header *h, const char *content_type);
/* 1 when the server adds "Retry-After: 1": a 429 or 503 without a valid Retry-After. */
int http_answer_adds_retry_after(int status, const struct rmr_http_header *headers,
                                 uint32_t nheaders);

#endif
