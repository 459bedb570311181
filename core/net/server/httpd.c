/* core/net/server/httpd: the HTTP/1.1 server on libuv. Each connection owns an http_reqp, one
 * timer and at most one request in flight: when a request is complete, reading stops and the
 * bytes already read wait in the connection's held buffer until the answer is written, so
 * pipelined requests are answered in order and a client cannot queue unbounded work.
 *
 * Reads land in one buffer per server (the loop thread runs one read callback at a time);
 * only bytes that cannot be parsed yet are copied, so an idle connection holds no buffer.
 * Encoded bodies are decoded on libuv's thread pool so a large body never stalls the loop.
 *
 * The connection's timer has one job at a time: header_timeout from accept to the first byte
 * and from a request's first byte to its last header (408), body_timeout to the last body byte
 * (408), idle_timeout between keep-alive requests and for a client that does not read its
 * answers, and a short linger after the last answer, while the rest of the client's bytes are
 * read and dropped so the answer is not lost to a reset.
 *
 * Lifetimes: a connection is freed when both its handles are closed; a request is freed by
 * httpd_respond() only, or by the decode callback when its connection went away meanwhile, so
 * a handler may keep it past httpd_close(). The server is freed when its listener and every
 * connection are closed. Thread: the loop thread. */
#include "net/server/httpd.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <remora/error.h>

#include "net/server/decode.h"
#include "net/server/http_req.h"
#include "util/httptext.h"

#define DEF_MAX_HEADER_BYTES            ((size_t)64 << 10)
#define DEF_MAX_BODY_BYTES              ((size_t)64 << 20)
#define DEF_MAX_DECODED_BYTES           ((size_t)256 << 20)
#define DEF_HEADER_TIMEOUT_MS           10000
#define DEF_BODY_TIMEOUT_MS             60000
#define DEF_IDLE_TIMEOUT_MS             120000
#define DEF_MAX_CONNECTIONS             1024

#define READ_BUF_BYTES                  ((size_t)64 << 10)
#define WRITE_QUEUE_BYTES               ((size_t)1 << 20) /* answers a client has not read: stop parsing */
#define LINGER_MS                       2000
#define LINGER_BYTES                    ((size_t)1 << 20)
#define ADDR_LEN                        64

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct route {
    char *method; /* NULL: any */
    char *path;
    size_t path_len;
    uint32_t flags;
    httpd_handler fn;
    void *arg;
    const void *owner;
};

enum conn_phase {
    PHASE_IDLE,    /* between requests */
    PHASE_HEADERS, /* a request's first byte came; its headers are incomplete */
    PHASE_BODY,    /* its body is arriving */
    PHASE_HANDLER, /* it is being decoded or is with its handler */
    PHASE_LINGER,  /* the last answer is written: dropping what the client still sends */
};

enum timer_mode {
    TM_NONE,
    TM_FIRST,  /* accepted, nothing received yet: header_timeout */
    TM_IDLE,   /* keep-alive between requests: idle_timeout, closed silently */
    TM_HEADER, /* header_timeout: 408 */
    TM_BODY,   /* body_timeout: 408 */
    TM_WRITE,  /* answers not read by the client: idle_timeout, closed */
    TM_LINGER, /* the last answer and the drain after it */
};

enum req_state {
    REQ_DECODING, /* on the thread pool; freed by the decode callback if the client went */
    REQ_HANDLER,  /* with a handler (or answered by the server); freed by httpd_respond */
};

struct conn {
    struct conn *prev;
    struct conn *next;
    struct httpd *s;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    struct http_reqp *p;
    struct rmr_http_req *req; /* in flight, or NULL */
    enum conn_phase phase;
    enum timer_mode tmode;
    unsigned char *held; /* read, not parsed yet */
    size_t held_off;
    size_t held_len;
    size_t lingered;
    uint32_t writes;
    int handles;
    int feeding;
    unsigned closing : 1;
    unsigned reading : 1;
    unsigned done : 1; /* the last request was parsed: the connection ends after its answer */
    unsigned close_after_write : 1;
    char remote[ADDR_LEN];
};

struct rmr_http_req {
    struct rmr_handle h;
    struct conn *conn; /* NULL once the connection is gone */
    struct http_request *r;
    const void *owner;
    enum req_state state;
    int head;
    const char *encoding;
    unsigned char *decoded;
    size_t decoded_len;
    int decode_rc;
    size_t max_decoded;
    uv_work_t work;
    char remote[ADDR_LEN];
};

struct httpd {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct httpd_limits lim;
    const struct rmr_host_api *host;
    struct route *routes;
    uint32_t nroutes;
    uint32_t cap_routes;
    struct conn *conns;
    struct httpd_stats stats;
    int closing;
    int listener_open;
    char address[ADDR_LEN];
    char rbuf[READ_BUF_BYTES];
};

struct wreq {
    uv_write_t w;
    struct conn *c;
    size_t len;
    char data[];
};

static void conn_close(struct conn *c);
static void conn_pump(struct conn *c);
static int respond(struct rmr_http_req *req, int status, const struct rmr_http_header *headers,
                   uint32_t nheaders, const char *content_type, const void *body, size_t len,
                   int force_close);

/* ---- small helpers --------------------------------------------------------------------------- */

static void put_err(char *err, size_t errlen, const char *a, const char *b, const char *c)
{
    if (err == NULL || errlen == 0)
        return;
    size_t off = 0;
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        const char *s = parts[i] != NULL ? parts[i] : "";
        size_t n = strlen(s);
        if (n > errlen - 1 - off)
            n = errlen - 1 - off;
        memcpy(err + off, s, n);
        off += n;
    }
    err[off] = '\0';
}

static size_t put_uint(char *dst, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}

/* "127.0.0.1:1234" or "[::1]:1234". */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    out[0] = '\0';
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)ss;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    } else {
        put_err(out, outlen, "unix", NULL, NULL);
        return;
    }
    char pbuf[8];
    pbuf[0] = ':';
    pbuf[1 + put_uint(pbuf + 1, port)] = '\0';
    if (ss->ss_family == AF_INET6) {
        char b[INET6_ADDRSTRLEN + 2];
        put_err(b, sizeof b, "[", ip, "]");
        put_err(out, outlen, b, pbuf, NULL);
    } else {
        put_err(out, outlen, ip, pbuf, NULL);
    }
}

/* "127.0.0.1:9529", "[::1]:9529", "localhost:9529", ":9529" or "*:9529" (every address), or a
 * bare port "9529" (127.0.0.1). Names other than localhost are refused: no blocking DNS. */
static int parse_address(const char *address, struct sockaddr_storage *ss)
{
    char host[ADDR_LEN];
    const char *port;
    size_t hlen;
    int v6 = 0;
    if (address == NULL || address[0] == '\0')
        return RMR_EINVAL;
    if (address[0] == '[') {
        const char *end = strchr(address, ']');
        if (end == NULL || end[1] != ':')
            return RMR_EINVAL;
        hlen = (size_t)(end - address - 1);
        memcpy(host, address + 1, hlen < sizeof host ? hlen : 0);
        port = end + 2;
        v6 = 1;
    } else {
        const char *colon = strrchr(address, ':');
        if (colon == NULL) {
            hlen = 9;
            port = address;
            memcpy(host, "127.0.0.1", 9);
        } else {
            hlen = (size_t)(colon - address);
            port = colon + 1;
            if (memchr(address, ':', hlen) != NULL)
                return RMR_EINVAL; /* IPv6 needs brackets */
            if (hlen < sizeof host)
                memcpy(host, address, hlen);
        }
    }
    if (hlen >= sizeof host)
        return RMR_EINVAL;
    host[hlen] = '\0';
    uint32_t pnum = 0;
    size_t ndigits = 0;
    for (const char *d = port; *d != '\0'; d++, ndigits++) {
        if (*d < '0' || *d > '9' || ndigits >= 5)
            return RMR_EINVAL;
        pnum = pnum * 10 + (uint32_t)(*d - '0');
    }
    if (ndigits == 0 || pnum > 65535)
        return RMR_EINVAL;
    memset(ss, 0, sizeof *ss);
    if (v6)
        return uv_ip6_addr(host, (int)pnum, (struct sockaddr_in6 *)(void *)ss) == 0 ? 0
                                                                                    : RMR_EINVAL;
    const char *ip = host;
    if (hlen == 0 || strcmp(host, "*") == 0)
        ip = "0.0.0.0";
    else if (strcasecmp(host, "localhost") == 0)
        ip = "127.0.0.1";
    return uv_ip4_addr(ip, (int)pnum, (struct sockaddr_in *)(void *)ss) == 0 ? 0 : RMR_EINVAL;
}

static int map_uv_error(int uverr)
{
    switch (uverr) {
    case UV_EADDRINUSE: return RMR_EADDRINUSE;
    case UV_EACCES:
    case UV_EPERM: return RMR_EACCES;
    case UV_ENOMEM: return RMR_ENOMEM;
    case UV_EADDRNOTAVAIL:
    case UV_EINVAL:
    case UV_EAFNOSUPPORT: return RMR_EINVAL;
    default: return RMR_EIO;
    }
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: break;
    }
    switch (status / 100) {
    case 2: return "Success";
    case 3: return "Redirection";
    case 4: return "Client Error";
    default: return "Server Error";
    }
}

static void count_response(struct httpd *s, int status)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        s->stats.responses[cls]++;
}

/* ---- the connection's timer and reading ------------------------------------------------------ */

static void on_timer(uv_timer_t *t);

static void timer_set(struct conn *c, enum timer_mode mode, uint64_t ms)
{
    c->tmode = mode;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void timer_stop(struct conn *c)
{
    c->tmode = TM_NONE;
    uv_timer_stop(&c->timer);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void read_start(struct conn *c)
{
    if (c->reading || c->closing)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_close(c);
        return;
    }
    c->reading = 1;
}

static void read_stop(struct conn *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
}

static int write_blocked(struct conn *c)
{
    return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_QUEUE_BYTES;
}

static int can_parse(struct conn *c)
{
    return !c->closing && !c->done && c->req == NULL && c->phase != PHASE_LINGER &&
           !write_blocked(c);
}

static void drop_held(struct conn *c)
{
    free(c->held);
    c->held = NULL;
    c->held_off = c->held_len = 0;
}

/* ---- writing -------------------------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    struct conn *c = container_of(sr, struct conn, shutdown);
    if (c->closing)
        return;
    if (status < 0)
        conn_close(c);
}

/* The last answer is out: send FIN, then read and drop until EOF, a limit or a timer, so the
 * client reads the answer instead of a reset caused by its unread bytes. */
static void conn_linger(struct conn *c)
{
    c->phase = PHASE_LINGER;
    drop_held(c);
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    timer_set(c, TM_LINGER, LINGER_MS);
    read_start(c);
}

static void on_write(uv_write_t *w, int status)
{
    struct wreq *wr = container_of(w, struct wreq, w);
    struct conn *c = wr->c;
    free(wr);
    c->writes--;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after_write) {
        if (c->writes == 0 && c->phase != PHASE_LINGER)
            conn_linger(c);
        return;
    }
    conn_pump(c); /* parsing may have waited for the client to read its answers */
}

static struct wreq *wreq_new(size_t len)
{
    if (len > SIZE_MAX - sizeof(struct wreq))
        return NULL;
    struct wreq *w = malloc(sizeof *w + len);
    if (w != NULL)
        w->len = 0;
    return w;
}

static void conn_write(struct conn *c, struct wreq *w)
{
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    w->c = c;
    if (c->closing || uv_write(&w->w, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        free(w);
        conn_close(c);
        return;
    }
    c->writes++;
    c->s->stats.bytes_out += w->len;
}

static void put(struct wreq *w, const char *s, size_t n)
{
    memcpy(w->data + w->len, s, n);
    w->len += n;
}

static void puts_(struct wreq *w, const char *s)
{
    put(w, s, strlen(s));
}

/* Builds a whole answer in one buffer. Headers with invalid names or values are dropped: a
 * handler's bug must not let a client's bytes split the response. */
static struct wreq *build_response(int status, const struct rmr_http_header *headers,
                                   uint32_t nheaders, const char *content_type, const void *body,
                                   size_t len, int keep_alive, int head)
{
    const char *reason = reason_phrase(status);
    int no_body = status == 204 || status == 304;
    int send_body = !no_body && !head && len > 0;
    if (content_type != NULL && !http_is_field_value(content_type))
        content_type = NULL;
    int retry_after = http_answer_adds_retry_after(status, headers, nheaders);
    size_t size = 64 + strlen(reason) + 64 + 64;
    if (content_type != NULL)
        size += strlen(content_type) + 20;
    for (uint32_t i = 0; i < nheaders; i++) {
        if (!http_answer_header_kept(&headers[i], content_type))
            continue;
        size_t n = strlen(headers[i].name) + strlen(headers[i].value) + 4;
        if (n > SIZE_MAX / 4 - size)
            return NULL;
        size += n;
    }
    size += 20;
    if (send_body) {
        if (len > UINT32_MAX - size)
            return NULL; /* uv_buf_t counts in unsigned int */
        size += len;
    }
    struct wreq *w = wreq_new(size);
    if (w == NULL)
        return NULL;
    puts_(w, "HTTP/1.1 ");
    w->len += put_uint(w->data + w->len, (uint64_t)status);
    puts_(w, " ");
    puts_(w, reason);
    puts_(w, "\r\n");
    if (content_type != NULL && !no_body) {
        puts_(w, "Content-Type: ");
        puts_(w, content_type);
        puts_(w, "\r\n");
    }
    if (!no_body) {
        puts_(w, "Content-Length: ");
        w->len += put_uint(w->data + w->len, (uint64_t)len);
        puts_(w, "\r\n");
    }
    puts_(w, keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    for (uint32_t i = 0; i < nheaders; i++) {
        if (!http_answer_header_kept(&headers[i], content_type))
            continue;
        puts_(w, headers[i].name);
        puts_(w, ": ");
        puts_(w, headers[i].value);
        puts_(w, "\r\n");
    }
    if (retry_after)
        puts_(w, "Retry-After: 1\r\n");
    puts_(w, "\r\n");
    if (send_body)
        put(w, body, len);
    return w;
}

/* An answer the server gives on its own (parse errors, timeouts), then the connection ends. */
static void conn_error(struct conn *c, int status, const char *reason)
{
    struct httpd *s = c->s;
    switch (status) {
    case 400: s->stats.bad_requests++; break;
    case 408: s->stats.timeouts++; break;
    case 413: s->stats.too_large++; break;
    case 431: s->stats.headers_too_large++; break;
    default: break;
    }
    char body[96];
    put_err(body, sizeof body, "{\"error\":\"", reason, "\"}");
    struct wreq *w = build_response(status, NULL, 0, "application/json", body, strlen(body), 0, 0);
    c->done = 1;
    c->close_after_write = 1;
    read_stop(c);
    if (c->feeding == 0)
        drop_held(c); /* else conn_feed() may still be reading it; conn_pump() drops it */
    if (w == NULL) {
        conn_close(c);
        return;
    }
    count_response(s, status);
    timer_set(c, TM_LINGER, LINGER_MS);
    conn_write(c, w);
}

/* ---- requests ------------------------------------------------------------------------------- */

static void req_free(struct rmr_http_req *req)
{
    http_request_free(req->r);
    free(req->decoded);
    free(req);
}

/* The best route for method and path, or NULL with *status 404 or 405 (and allow filled). */
static const struct route *route_find(const struct httpd *s, const char *method, const char *path,
                                      int *status, char *allow, size_t allowlen)
{
    const struct route *best = NULL;
    struct http_route_match m;
    http_route_match_init(&m, allow, allowlen);
    size_t plen = strlen(path);
    for (uint32_t i = 0; i < s->nroutes; i++) {
        const struct route *rt = &s->routes[i];
        if (http_route_consider(&m, rt->method, rt->path, rt->path_len, rt->flags, method, path,
                                plen))
            best = rt;
    }
    *status = http_route_status(&m, best != NULL);
    return best;
}

static void call_handler(struct rmr_http_req *req)
{
    struct conn *c = req->conn;
    struct httpd *s = c->s;
    char allow[128];
    int status;
    const struct route *rt =
        route_find(s, req->r->method, req->r->path, &status, allow, sizeof allow);
    req->state = REQ_HANDLER;
    if (rt == NULL) {
        if (status == 405) {
            static const char body[] = "{\"error\":\"method not allowed\"}";
            struct rmr_http_header h = {"Allow", allow};
            respond(req, 405, &h, allow[0] != '\0', "application/json", body, sizeof body - 1, 0);
        } else {
            static const char body[] = "{\"error\":\"not found\"}";
            respond(req, 404, NULL, 0, "application/json", body, sizeof body - 1, 0);
        }
        return;
    }
    req->owner = rt->owner;
    httpd_handler fn = rt->fn;
    void *arg = rt->arg;
    fn(arg, req);
}

static void decode_work(uv_work_t *w)
{
    struct rmr_http_req *req = container_of(w, struct rmr_http_req, work);
    req->decode_rc = body_decode(req->encoding, req->r->body, req->r->body_len, req->max_decoded,
                                 &req->decoded, &req->decoded_len);
}

static void decode_done(uv_work_t *w, int status)
{
    struct rmr_http_req *req = container_of(w, struct rmr_http_req, work);
    struct conn *c = req->conn;
    if (c == NULL) {
        req_free(req); /* the client or the server went away meanwhile */
        return;
    }
    struct httpd *s = c->s;
    int rc = status < 0 ? RMR_ENOMEM : req->decode_rc;
    req->state = REQ_HANDLER;
    if (rc == 0) {
        call_handler(req);
        return;
    }
    static const char too_large[] = "{\"error\":\"decoded_body_too_large\"}";
    static const char corrupt[] = "{\"error\":\"malformed_body\"}";
    static const char unsupported[] = "{\"error\":\"unsupported_content_encoding\"}";
    static const char no_memory[] = "{\"error\":\"no_memory\"}";
    switch (rc) {
    case RMR_E2BIG:
        s->stats.too_large++;
        respond(req, 413, NULL, 0, "application/json", too_large, sizeof too_large - 1, 1);
        break;
    case RMR_EPARSE:
        s->stats.bad_requests++;
        respond(req, 400, NULL, 0, "application/json", corrupt, sizeof corrupt - 1, 1);
        break;
    case RMR_ENOTSUP:
        respond(req, 415, NULL, 0, "application/json", unsupported, sizeof unsupported - 1, 0);
        break;
    default:
        respond(req, 503, NULL, 0, "application/json", no_memory, sizeof no_memory - 1, 0);
        break;
    }
}

/* A whole request came: hand it to its route, after undoing its Content-Encoding. */
static void on_request(struct conn *c)
{
    struct httpd *s = c->s;
    struct http_request *r = http_reqp_take(c->p);
    timer_stop(c);
    if (r == NULL) {
        conn_error(c, 400, "malformed");
        return;
    }
    s->stats.requests++;
    struct rmr_http_req *req = calloc(1, sizeof *req);
    if (req == NULL) {
        http_request_free(r);
        conn_error(c, 503, "no_memory");
        return;
    }
    req->h.host = s->host;
    req->conn = c;
    req->r = r;
    req->head = strcmp(r->method, "HEAD") == 0;
    memcpy(req->remote, c->remote, sizeof req->remote);
    c->req = req;
    c->phase = PHASE_HANDLER;
    if (!r->keep_alive)
        c->done = 1;
    const char *enc = http_request_header(r, "content-encoding");
    if (enc == NULL || r->body_len == 0 || strcasecmp(enc, "identity") == 0) {
        req->state = REQ_HANDLER;
        call_handler(req);
        return;
    }
    /* 404 and 405 need no decoding. */
    char allow[8];
    int status;
    if (route_find(s, r->method, r->path, &status, allow, sizeof allow) == NULL) {
        req->state = REQ_HANDLER;
        call_handler(req);
        return;
    }
    req->state = REQ_DECODING;
    req->encoding = enc;
    req->max_decoded = s->lim.max_decoded_bytes;
    if (uv_queue_work(s->loop, &req->work, decode_work, decode_done) < 0) {
        req->decode_rc = RMR_ENOMEM;
        decode_done(&req->work, 0);
    }
}

static void on_headers(struct conn *c)
{
    c->phase = PHASE_BODY;
    timer_set(c, TM_BODY, c->s->lim.body_timeout_ms);
    struct http_request *r = http_reqp_peek(c->p);
    if (r == NULL || !r->expect_continue || http_reqp_content_length(c->p) == 0)
        return;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct wreq *w = wreq_new(sizeof cont - 1);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    put(w, cont, sizeof cont - 1);
    count_response(c->s, 100);
    conn_write(c, w);
}

static void on_parse_error(struct conn *c)
{
    const char *reason = http_reqp_error_reason(c->p);
    conn_error(c, http_reqp_error_status(c->p), reason != NULL ? reason : "malformed");
}

/* Parses data until it is used up or a request must be answered first; returns what was
 * used. Handlers that answer at once are handled in the loop, without recursion. */
static size_t conn_feed(struct conn *c, const char *data, size_t len)
{
    size_t off = 0;
    c->feeding++;
    while (off < len && can_parse(c)) {
        size_t used = 0;
        enum http_reqp_event ev = http_reqp_feed(c->p, data + off, len - off, &used);
        off += used;
        if (c->phase == PHASE_IDLE && http_reqp_in_request(c->p)) {
            c->phase = PHASE_HEADERS;
            timer_set(c, TM_HEADER, c->s->lim.header_timeout_ms);
        }
        switch (ev) {
        case HTTP_REQP_MORE:
            if (used == 0)
                off = len; /* cannot happen; never spin */
            break;
        case HTTP_REQP_HEADERS: on_headers(c); break;
        case HTTP_REQP_REQUEST: on_request(c); break;
        case HTTP_REQP_ERROR: on_parse_error(c); break;
        }
    }
    c->feeding--;
    return off;
}

static int hold(struct conn *c, const char *data, size_t len)
{
    size_t have = c->held_len - c->held_off;
    unsigned char *h = malloc(have + len);
    if (h == NULL)
        return RMR_ENOMEM;
    if (have > 0)
        memcpy(h, c->held + c->held_off, have);
    memcpy(h + have, data, len);
    free(c->held);
    c->held = h;
    c->held_off = 0;
    c->held_len = have + len;
    return 0;
}

/* Moves the connection on: parses held bytes if it may, then reads or waits, with the timer
 * that fits. Does nothing while conn_feed() is on the stack: that loop carries on itself. */
static void conn_pump(struct conn *c)
{
    if (c->closing || c->feeding > 0 || c->phase == PHASE_LINGER)
        return;
    if (c->held_off < c->held_len && can_parse(c)) {
        size_t used = conn_feed(c, (const char *)c->held + c->held_off, c->held_len - c->held_off);
        if (c->closing || c->phase == PHASE_LINGER)
            return;
        c->held_off += used;
        if (c->held_off == c->held_len || c->done)
            drop_held(c);
    }
    if (c->done) {
        read_stop(c);
        return;
    }
    if (!can_parse(c) || c->held_off < c->held_len) {
        read_stop(c);
        if (c->req == NULL && write_blocked(c) && c->tmode != TM_WRITE)
            timer_set(c, TM_WRITE, c->s->lim.idle_timeout_ms);
        return;
    }
    if (c->phase == PHASE_IDLE && c->tmode != TM_FIRST && c->tmode != TM_IDLE)
        timer_set(c, TM_IDLE, c->s->lim.idle_timeout_ms);
    read_start(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    buf->base = c->s->rbuf;
    buf->len = sizeof c->s->rbuf;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        /* EOF or an error. Reading happens only when no request is in flight, so there is
         * nobody to answer: a half-sent request is dropped with the connection. After EOF the
         * answers still being written are finished first (the client may have half-closed). */
        if (nread == UV_EOF && c->writes > 0 && c->phase != PHASE_LINGER) {
            c->done = 1;
            c->close_after_write = 1;
            read_stop(c);
            drop_held(c);
            timer_set(c, TM_WRITE, c->s->lim.idle_timeout_ms);
            return;
        }
        conn_close(c);
        return;
    }
    c->s->stats.bytes_in += (uint64_t)nread;
    if (c->phase == PHASE_LINGER) {
        c->lingered += (size_t)nread;
        if (c->lingered > LINGER_BYTES)
            conn_close(c);
        return;
    }
    size_t len = (size_t)nread;
    size_t used = conn_feed(c, buf->base, len);
    if (c->closing || c->phase == PHASE_LINGER)
        return;
    if (used < len && !c->done && hold(c, buf->base + used, len - used) < 0) {
        conn_close(c);
        return;
    }
    conn_pump(c);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct httpd *s = c->s;
    enum timer_mode mode = c->tmode;
    c->tmode = TM_NONE;
    switch (mode) {
    case TM_NONE: break;
    case TM_IDLE:
    case TM_LINGER: conn_close(c); break;
    case TM_FIRST:
    case TM_WRITE:
        s->stats.timeouts++;
        conn_close(c);
        break;
    case TM_HEADER:
    case TM_BODY: conn_error(c, 408, "timeout"); break;
    }
}

/* ---- connections -------------------------------------------------------------------------- */

static void server_maybe_free(struct httpd *s)
{
    if (!s->closing || s->listener_open || s->conns != NULL)
        return;
    for (uint32_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].path);
    }
    free(s->routes);
    free(s);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles > 0)
        return;
    struct httpd *s = c->s;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->stats.connections_open--;
    http_reqp_free(c->p);
    free(c->held);
    free(c);
    server_maybe_free(s);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->reading = 0;
    c->tmode = TM_NONE;
    if (c->req != NULL) {
        c->req->conn = NULL; /* the request stays valid for whoever holds it */
        c->req = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_rejected_closed(uv_handle_t *h)
{
    free(h);
}

/* Takes a connection off the backlog and closes it at once (over max_connections, or no
 * memory for it). */
static void reject_connection(struct httpd *s, uv_stream_t *server)
{
    uv_tcp_t *t = malloc(sizeof *t);
    if (t == NULL)
        return;
    uv_tcp_init(s->loop, t);
    uv_accept(server, (uv_stream_t *)t);
    s->stats.connections_rejected++;
    uv_close((uv_handle_t *)t, on_rejected_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct httpd *s = container_of(server, struct httpd, listener);
    if (status < 0 || s->closing)
        return;
    if (s->stats.connections_open >= s->lim.max_connections) {
        reject_connection(s, server);
        return;
    }
    struct http_reqp_limits pl = {s->lim.max_header_bytes, s->lim.max_body_bytes};
    struct conn *c = calloc(1, sizeof *c);
    struct http_reqp *p = c != NULL ? http_reqp_new(&pl) : NULL;
    if (p == NULL) {
        free(c);
        reject_connection(s, server);
        return;
    }
    c->s = s;
    c->p = p;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->stats.connections_open++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    s->stats.connections_accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0)
        format_addr(&ss, c->remote, sizeof c->remote);
    else
        put_err(c->remote, sizeof c->remote, "unknown", NULL, NULL);
    timer_set(c, TM_FIRST, s->lim.header_timeout_ms);
    read_start(c);
}

/* ---- the server ----------------------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h)
{
    struct httpd *s = container_of(h, struct httpd, listener);
    s->listener_open = 0;
    server_maybe_free(s);
}

int httpd_open(uv_loop_t *loop, const char *address, const struct httpd_limits *limits,
               const struct rmr_host_api *host, struct httpd **out, char *err, size_t errlen)
{
    *out = NULL;
    put_err(err, errlen, NULL, NULL, NULL);
    struct sockaddr_storage ss;
    if (loop == NULL || parse_address(address, &ss) < 0) {
        put_err(err, errlen, "cannot listen on '", address != NULL ? address : "",
                "': expected ip:port, [ipv6]:port, localhost:port or a port");
        return RMR_EINVAL;
    }
    struct httpd *s = calloc(1, sizeof *s);
    if (s == NULL) {
        put_err(err, errlen, "cannot listen on ", address, ": out of memory");
        return RMR_ENOMEM;
    }
    s->loop = loop;
    s->host = host;
    if (limits != NULL)
        s->lim = *limits;
    if (s->lim.max_header_bytes == 0)
        s->lim.max_header_bytes = DEF_MAX_HEADER_BYTES;
    if (s->lim.max_body_bytes == 0)
        s->lim.max_body_bytes = DEF_MAX_BODY_BYTES;
    if (s->lim.max_decoded_bytes == 0)
        s->lim.max_decoded_bytes = DEF_MAX_DECODED_BYTES;
    if (s->lim.header_timeout_ms == 0)
        s->lim.header_timeout_ms = DEF_HEADER_TIMEOUT_MS;
    if (s->lim.body_timeout_ms == 0)
        s->lim.body_timeout_ms = DEF_BODY_TIMEOUT_MS;
    if (s->lim.idle_timeout_ms == 0)
        s->lim.idle_timeout_ms = DEF_IDLE_TIMEOUT_MS;
    if (s->lim.max_connections == 0)
        s->lim.max_connections = DEF_MAX_CONNECTIONS;
    int rc = uv_tcp_init(loop, &s->listener);
    if (rc < 0) {
        free(s);
        put_err(err, errlen, "cannot listen on ", address, ": cannot create a socket");
        return map_uv_error(rc);
    }
    s->listener_open = 1;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen);
    if (rc < 0) {
        put_err(err, errlen, "cannot listen on ", address, ": ");
        size_t n = err != NULL ? strlen(err) : 0;
        if (err != NULL && n < errlen)
            put_err(err + n, errlen - n, uv_strerror(rc), NULL, NULL);
        s->closing = 1;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed); /* frees s */
        return map_uv_error(rc);
    }
    format_addr(&bound, s->address, sizeof s->address);
    *out = s;
    return 0;
}

const char *httpd_address(const struct httpd *s)
{
    return s->address;
}

int httpd_route(struct httpd *s, const char *method, const char *path, uint32_t flags,
                httpd_handler fn, void *arg, const void *owner)
{
    if (s == NULL || path == NULL || path[0] != '/' || fn == NULL)
        return RMR_EINVAL;
    for (uint32_t i = 0; i < s->nroutes; i++) {
        const struct route *rt = &s->routes[i];
        int same_method = (rt->method == NULL && method == NULL) ||
                          (rt->method != NULL && method != NULL && strcmp(rt->method, method) == 0);
        if (same_method && strcmp(rt->path, path) == 0)
            return RMR_EEXIST;
    }
    if (s->nroutes == s->cap_routes) {
        uint32_t cap = s->cap_routes ? s->cap_routes * 2 : 8;
        struct route *r = realloc(s->routes, cap * sizeof *r);
        if (r == NULL)
            return RMR_ENOMEM;
        s->routes = r;
        s->cap_routes = cap;
    }
    struct route *rt = &s->routes[s->nroutes];
    memset(rt, 0, sizeof *rt);
    rt->path = strdup(path);
    rt->method = method != NULL ? strdup(method) : NULL;
    if (rt->path == NULL || (method != NULL && rt->method == NULL)) {
        free(rt->path);
        free(rt->method);
        return RMR_ENOMEM;
    }
    rt->path_len = strlen(path);
    rt->flags = flags;
    rt->fn = fn;
    rt->arg = arg;
    rt->owner = owner;
    s->nroutes++;
    return 0;
}

void httpd_unroute(struct httpd *s, const void *owner)
{
    if (s == NULL)
        return;
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->nroutes; i++) {
        if (s->routes[i].owner == owner) {
            free(s->routes[i].method);
            free(s->routes[i].path);
            continue;
        }
        s->routes[k++] = s->routes[i];
    }
    s->nroutes = k;
}

const struct httpd_stats *httpd_stats(const struct httpd *s)
{
    return &s->stats;
}

void httpd_close(struct httpd *s)
{
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        conn_close(c);
}

/* ---- request accessors and answers ---------------------------------------------------------- */

int httpd_req_info(httpd_req *req, struct rmr_http_req_info *out)
{
    if (req == NULL || out == NULL ||
        out->struct_size < offsetof(struct rmr_http_req_info, reserved_) + sizeof out->reserved_)
        return RMR_EINVAL;
    const struct http_request *r = req->r;
    const char *body = req->decoded != NULL ? (const char *)req->decoded
                       : r->body != NULL    ? (const char *)r->body
                                            : "";
    size_t body_len = req->decoded != NULL ? req->decoded_len : r->body_len;
    size_t size = out->struct_size;
#define FITS(m) (size >= offsetof(struct rmr_http_req_info, m) + sizeof out->m)
    if (FITS(method))
        out->method = r->method;
    if (FITS(path))
        out->path = r->path;
    if (FITS(query))
        out->query = r->query;
    if (FITS(content_type))
        out->content_type = http_request_header(req->r, "content-type");
    if (FITS(body))
        out->body = body;
    if (FITS(body_len))
        out->body_len = body_len;
    if (FITS(remote))
        out->remote = req->remote;
#undef FITS
    return 0;
}

const char *httpd_req_header(httpd_req *req, const char *name)
{
    if (req == NULL || name == NULL)
        return NULL;
    return http_request_header(req->r, name);
}

const void *httpd_req_owner(const httpd_req *req)
{
    return req != NULL ? req->owner : NULL;
}

static int respond(struct rmr_http_req *req, int status, const struct rmr_http_header *headers,
                   uint32_t nheaders, const char *content_type, const void *body, size_t len,
                   int force_close)
{
    struct conn *c = req->conn;
    if (c == NULL) {
        req_free(req);
        return RMR_ECONNRESET;
    }
    struct httpd *s = c->s;
    if (status < 200 || status > 599)
        status = 500;
    if (body == NULL)
        len = 0;
    int keep_alive = req->r->keep_alive && !force_close && !c->done && !s->closing;
    struct wreq *w =
        build_response(status, headers, nheaders, content_type, body, len, keep_alive, req->head);
    if (w == NULL) {
        static const char oom[] = "{\"error\":\"no_memory\"}";
        status = 503;
        keep_alive = 0;
        w = build_response(status, NULL, 0, "application/json", oom, sizeof oom - 1, 0, req->head);
    }
    c->req = NULL;
    req_free(req);
    if (w == NULL) {
        conn_close(c);
        return 0;
    }
    count_response(s, status);
    if (!keep_alive) {
        c->done = 1;
        c->close_after_write = 1;
        read_stop(c);
        if (c->feeding == 0)
            drop_held(c);
        timer_set(c, TM_WRITE, s->lim.idle_timeout_ms);
        conn_write(c, w);
        return 0;
    }
    c->phase = PHASE_IDLE;
    conn_write(c, w);
    conn_pump(c);
    return 0;
}

int httpd_respond(httpd_req *req, int status, const struct rmr_http_header *headers,
                  uint32_t nheaders, const char *content_type, const void *body, size_t len)
{
    if (req == NULL)
        return RMR_EINVAL;
    return respond(req, status, headers, nheaders, content_type, body, len, 0);
}
