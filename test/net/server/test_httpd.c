/* The server on a real loop: this thread runs the loop with httpd_open on 127.0.0.1:0 while a
 * client thread with blocking sockets plays each scenario and checks statuses and bodies. The
 * loop thread never asserts while a client runs; what handlers saw is checked afterwards. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <remora/plugin.h>

#include "net/server/httpd.h"
#include "tap.h"
#include "util/buf.h"

/* ---- the loop side ----------------------------------------------------------------------- */

struct ctx {
    uv_loop_t loop;
    uv_async_t done;
    int finished;
    struct httpd *s;
    int port;
    void (*client)(struct ctx *x);
    /* what handlers saw */
    int in_flight;
    int max_in_flight;
    httpd_req *held;
    int info_ok;
    char remote[64];
    char client_addr[64];
    int owner_ok;
};

static struct ctx X;

struct later {
    uv_timer_t t;
    httpd_req *req;
    char body[64];
};

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_fire(uv_timer_t *t)
{
    struct later *l = t->data;
    X.in_flight--;
    httpd_respond(l->req, 200, NULL, 0, "text/plain", l->body, strlen(l->body));
    uv_close((uv_handle_t *)&l->t, later_closed);
}

static void answer_later(httpd_req *req, uint64_t ms, const char *body)
{
    struct later *l = calloc(1, sizeof *l);
    l->req = req;
    snprintf(l->body, sizeof l->body, "%s", body);
    uv_timer_init(&X.loop, &l->t);
    l->t.data = l;
    if (++X.in_flight > X.max_in_flight)
        X.max_in_flight = X.in_flight;
    uv_timer_start(&l->t, later_fire, ms, 0);
}

static void h_hello(void *arg, httpd_req *req)
{
    httpd_respond(req, 200, NULL, 0, "text/plain", "hello", 5);
}

/* Echoes the (decoded) body, with the path and query in a header. */
static void h_echo(void *arg, httpd_req *req)
{
    struct rmr_http_req_info info = {.struct_size = sizeof info};
    httpd_req_info(req, &info);
    char pq[512];
    snprintf(pq, sizeof pq, "%s?%s", info.path, info.query);
    struct rmr_http_header h[] = {{"X-Path", pq}, {"Bad\r\nName", "x"}, {"X-Bad", "a\r\nb"}};
    httpd_respond(req, 200, h, 3, "application/octet-stream", info.body, info.body_len);
}

static void h_async(void *arg, httpd_req *req)
{
    answer_later(req, 20, "later");
}

/* /delay?ms=N&tag=T answers T after N ms. */
static void h_delay(void *arg, httpd_req *req)
{
    struct rmr_http_req_info info = {.struct_size = sizeof info};
    httpd_req_info(req, &info);
    unsigned ms = 0;
    char tag[32] = "";
    sscanf(info.query, "ms=%u&tag=%31s", &ms, tag);
    answer_later(req, ms, tag);
}

static void h_prefix(void *arg, httpd_req *req)
{
    struct rmr_http_req_info info = {.struct_size = sizeof info};
    httpd_req_info(req, &info);
    X.owner_ok = httpd_req_owner(req) == &X.owner_ok;
    httpd_respond(req, 200, NULL, 0, "text/plain", info.path, strlen(info.path));
}

static void h_busy(void *arg, httpd_req *req)
{
    int status = (int)(intptr_t)arg;
    struct rmr_http_header h = {"retry-after", "7"};
    httpd_respond(req, status, &h, status == 429, NULL, "busy", 4);
}

static void h_big(void *arg, httpd_req *req)
{
    static char big[200000];
    memset(big, 'b', sizeof big);
    httpd_respond(req, 200, NULL, 0, "text/plain", big, sizeof big);
}

static void h_hold(void *arg, httpd_req *req)
{
    X.held = req;
}

static void h_info(void *arg, httpd_req *req)
{
    struct rmr_http_req_info full = {.struct_size = sizeof full};
    int rc = httpd_req_info(req, &full);
    /* An older plugin's smaller struct: members beyond it stay untouched. */
    struct rmr_http_req_info old;
    memset(&old, 0x5a, sizeof old);
    old.struct_size = (uint32_t)offsetof(struct rmr_http_req_info, query);
    httpd_req_info(req, &old);
    unsigned char sentinel[sizeof(void *)];
    memset(sentinel, 0x5a, sizeof sentinel);
    struct rmr_http_req_info tiny = {.struct_size = 4};
    X.info_ok = rc == 0 && strcmp(full.method, "POST") == 0 && strcmp(full.path, "/info") == 0 &&
                strcmp(full.query, "a=1") == 0 && full.content_type != NULL &&
                strcmp(full.content_type, "text/x-test") == 0 && full.body_len == 3 &&
                strcmp(full.body, "abc") == 0 && strcmp(old.method, "POST") == 0 &&
                strcmp(old.path, "/info") == 0 &&
                memcmp(&old.query, sentinel, sizeof sentinel) == 0 &&
                httpd_req_info(req, &tiny) == RMR_EINVAL;
    snprintf(X.remote, sizeof X.remote, "%s", full.remote);
    const char *multi = httpd_req_header(req, "X-MULTI");
    httpd_respond(req, 200, NULL, 0, "text/plain", multi ? multi : "-", multi ? strlen(multi) : 1);
}

static void on_done(uv_async_t *a)
{
    X.finished = 1;
}

static void *client_main(void *arg)
{
    struct ctx *x = arg;
    x->client(x);
    uv_async_send(&x->done);
    return NULL;
}

/* Runs one client scenario in a thread while this thread runs the loop. */
static void run(void (*client)(struct ctx *x))
{
    pthread_t th;
    X.finished = 0;
    X.client = client;
    pthread_create(&th, NULL, client_main, &X);
    while (!X.finished)
        uv_run(&X.loop, UV_RUN_ONCE);
    pthread_join(th, NULL);
}

static void noop_timer(uv_timer_t *t)
{
}

/* Lets the loop run for ms (closes, timers). */
static void spin(uint64_t ms)
{
    uint64_t end = uv_hrtime() + ms * 1000000;
    uv_timer_t t;
    uv_timer_init(&X.loop, &t);
    while (uv_hrtime() < end) {
        uv_update_time(&X.loop);
        uv_timer_start(&t, noop_timer, 5, 0);
        uv_run(&X.loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&X.loop, UV_RUN_NOWAIT);
}

/* ---- the client side --------------------------------------------------------------------- */

struct cl {
    int fd;
    size_t len;
    char buf[1 << 18];
};

struct resp {
    int status;
    char head[4096];
    size_t body_len;
    char body[1 << 18];
};

static struct cl *cl_open(int port)
{
    struct cl *c = calloc(1, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0)
        perror("connect");
    return c;
}

static void cl_close(struct cl *c)
{
    close(c->fd);
    free(c);
}

static int cl_send(struct cl *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int cl_sends(struct cl *c, const char *s)
{
    return cl_send(c, s, strlen(s));
}

static int cl_fill(struct cl *c)
{
    if (c->len == sizeof c->buf)
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    return 0;
}

static const char *find_header(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':')
            return p + 2 + n + 2;
    return NULL;
}

/* Reads one response (head, then Content-Length bytes unless head_only). 0 or -1. */
static int cl_response(struct cl *c, struct resp *r, int head_only)
{
    memset(r, 0, offsetof(struct resp, body));
    char *end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        if (cl_fill(c) < 0)
            return -1;
    size_t hlen = (size_t)(end - c->buf) + 4;
    if (hlen >= sizeof r->head)
        return -1;
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    const char *cl = find_header(r->head, "Content-Length");
    size_t blen = cl != NULL && !head_only ? strtoul(cl, NULL, 10) : 0;
    if (blen >= sizeof r->body)
        return -1;
    while (c->len < hlen + blen)
        if (cl_fill(c) < 0)
            return -1;
    memcpy(r->body, c->buf + hlen, blen);
    r->body[blen] = '\0';
    r->body_len = blen;
    memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
    c->len -= hlen + blen;
    return 0;
}

/* 1 when the server closed the connection (EOF or reset) with nothing more to read. */
static int cl_closed(struct cl *c)
{
    char b[64];
    ssize_t n = recv(c->fd, b, sizeof b, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static int request(struct cl *c, const char *req, struct resp *r)
{
    if (cl_sends(c, req) < 0)
        return -1;
    return cl_response(c, r, 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- scenarios --------------------------------------------------------------------------- */

static struct resp R;

static void c_routes(struct ctx *x)
{
    struct cl *c = cl_open(x->port);
    IS_INT(request(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0, "GET /hello answered");
    IS_INT(R.status, 200, "200");
    IS_STR(R.body, "hello", "body hello");
    CONTAINS(R.head, "HTTP/1.1 200 OK\r\n", "status line with reason phrase");
    CONTAINS(R.head, "Content-Type: text/plain\r\n", "Content-Type");
    CONTAINS(R.head, "Content-Length: 5\r\n", "Content-Length");
    CONTAINS(R.head, "Connection: keep-alive\r\n", "keep-alive");

    request(c, "GET /nope HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 404, "unrouted path: 404");
    IS_STR(R.body, "{\"error\":\"not found\"}", "404 JSON body");
    CONTAINS(R.head, "Connection: keep-alive", "404 keeps the connection");
    request(c, "DELETE /hello HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 405, "other method: 405");
    CONTAINS(R.head, "Allow: GET, HEAD\r\n", "405 says what is allowed");
    request(c, "GET /prefix/a/b%20c?q HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 200, "prefix route matches below it");
    IS_STR(R.body, "/prefix/a/b%20c", "path kept encoded");
    request(c, "GET /prefix HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 200, "prefix route matches itself without the slash");
    request(c, "GET /prefixx HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 404, "but not a longer name");
    request(c, "GET /prefix/exact HTTP/1.1\r\n\r\n", &R);
    IS_STR(R.body, "busy", "an exact route beats a prefix");
    request(c, "POST /any HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &R);
    IS_INT(R.status, 200, "a route for any method");

    request(c, "GET /async HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 200, "asynchronous answer from a timer");
    IS_STR(R.body, "later", "its body");

    request(c, "GET /busy503 HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 503, "503");
    CONTAINS(R.head, "Retry-After: 1\r\n", "503 gets Retry-After: 1");
    request(c, "GET /busy429 HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 429, "429");
    CONTAINS(R.head, "retry-after: 7\r\n", "the handler's Retry-After is kept");
    OK(strstr(R.head, "Retry-After: 1") == NULL, "and not doubled");

    cl_sends(c, "HEAD /hello HTTP/1.1\r\n\r\n");
    cl_response(c, &R, 1);
    IS_INT(R.status, 200, "HEAD");
    CONTAINS(R.head, "Content-Length: 5\r\n", "HEAD tells the length");

    request(c,
            "POST /info?a=1 HTTP/1.1\r\nContent-Type: text/x-test\r\nX-Multi: a\r\n"
            "Content-Length: 3\r\nx-multi: b\r\n\r\nabc",
            &R);
    IS_STR(R.body, "a, b", "repeated headers joined for the handler (and HEAD had no body)");

    request(c, "GET /echo HTTP/1.1\r\n\r\n", &R);
    OK(strstr(R.head, "Bad") == NULL && strstr(R.head, "X-Bad") == NULL,
       "invalid handler headers are dropped");
    CONTAINS(R.head, "X-Path: /echo?\r\n", "valid ones are sent");
    cl_close(c);
}

static void c_keepalive(struct ctx *x)
{
    struct cl *c = cl_open(x->port);
    int good = 0;
    char req[128];
    for (int i = 0; i < 1000; i++) {
        snprintf(req, sizeof req, "GET /echo?i=%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        char want[64];
        snprintf(want, sizeof want, "X-Path: /echo?i=%d\r\n", i);
        good += request(c, req, &R) == 0 && R.status == 200 && strstr(R.head, want) != NULL;
    }
    IS_INT(good, 1000, "1000 keep-alive requests on one connection");
    cl_close(c);
}

static void c_pipeline(struct ctx *x)
{
    struct cl *c = cl_open(x->port);
    cl_sends(c, "GET /delay?ms=40&tag=first HTTP/1.1\r\n\r\n"
                "GET /delay?ms=1&tag=second HTTP/1.1\r\n\r\n"
                "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nthird"
                "GET /delay?ms=10&tag=fourth HTTP/1.1\r\n\r\n"
                "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n"
                "GET /hello HTTP/1.1\r\n\r\n");
    const char *want[] = {"first", "second", "third", "fourth", "hello"};
    int good = 0;
    for (int i = 0; i < 5; i++)
        good += cl_response(c, &R, 0) == 0 && strcmp(R.body, want[i]) == 0;
    IS_INT(good, 5, "pipelined requests answered in order");
    CONTAINS(R.head, "Connection: close", "the close request is answered with close");
    OK(cl_closed(c), "and nothing after it is answered");
    cl_close(c);
}

static void c_encodings(struct ctx *x)
{
    char text[10000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 23);
    unsigned char *gz;
    size_t gzlen;
    compress_buf(RMR_COMPRESS_GZIP, text, sizeof text, &gz, &gzlen);
    struct cl *c = cl_open(x->port);
    char head[256];
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: %zu\r\n\r\n", gzlen);
    cl_sends(c, head);
    cl_send(c, gz, gzlen);
    IS_INT(cl_response(c, &R, 0), 0, "gzip body answered");
    IS_INT(R.status, 200, "200");
    OK(R.body_len == sizeof text && memcmp(R.body, text, sizeof text) == 0,
       "the handler got the decoded body");
    free(gz);

    unsigned char *zs;
    size_t zslen;
    compress_buf(RMR_COMPRESS_ZSTD, text, sizeof text, &zs, &zslen);
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nContent-Encoding: zstd\r\nTransfer-Encoding: chunked\r\n\r\n"
             "%zx\r\n",
             zslen);
    cl_sends(c, head);
    cl_send(c, zs, zslen);
    cl_sends(c, "\r\n0\r\n\r\n");
    cl_response(c, &R, 0);
    OK(R.status == 200 && R.body_len == sizeof text, "chunked zstd body decoded");
    free(zs);

    request(c, "POST /echo HTTP/1.1\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx", &R);
    IS_INT(R.status, 415, "unknown encoding: 415");
    request(c, "POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nok", &R);
    IS_STR(R.body, "ok", "the connection goes on after 415");
    request(c, "POST /echo HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 7\r\n\r\nnotgzip",
            &R);
    IS_INT(R.status, 400, "corrupt gzip: 400");
    CONTAINS(R.head, "Connection: close", "and the connection closes");
    OK(cl_closed(c), "closed");
    cl_close(c);

    /* 4 MiB of zeros is a few KiB of gzip; decoded it is over the 1 MiB cap. */
    size_t big = (size_t)4 << 20;
    char *zeros = calloc(1, big);
    compress_buf(RMR_COMPRESS_GZIP, zeros, big, &gz, &gzlen);
    c = cl_open(x->port);
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: %zu\r\n\r\n", gzlen);
    cl_sends(c, head);
    cl_send(c, gz, gzlen);
    cl_response(c, &R, 0);
    IS_INT(R.status, 413, "gzip bomb: 413");
    OK(cl_closed(c), "and the connection closes");
    cl_close(c);
    free(gz);
    free(zeros);
}

static void c_limits(struct ctx *x)
{
    struct cl *c = cl_open(x->port);
    double t0 = now_s();
    cl_sends(c, "POST /echo HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n0123456789");
    IS_INT(cl_response(c, &R, 0), 0, "large Content-Length answered");
    IS_INT(R.status, 413, "at once with 413");
    OK(now_s() - t0 < 1.0, "without waiting for the body");
    CONTAINS(R.head, "Connection: close", "Connection: close");
    OK(cl_closed(c), "and closed");
    cl_close(c);

    c = cl_open(x->port);
    cl_sends(c, "POST /echo HTTP/1.1\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n");
    cl_response(c, &R, 0);
    IS_INT(R.status, 413, "Expect with a large body: 413, no 100");
    cl_close(c);

    c = cl_open(x->port);
    cl_sends(c, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    cl_response(c, &R, 0);
    IS_INT(R.status, 100, "Expect: 100-continue gets 100 Continue");
    IS_STR(R.head, "HTTP/1.1 100 Continue\r\n\r\n", "exactly");
    cl_sends(c, "body");
    cl_response(c, &R, 0);
    IS_INT(R.status, 200, "then the answer");
    IS_STR(R.body, "body", "to the body sent after 100");
    cl_close(c);

    c = cl_open(x->port);
    char big[3000];
    memset(big, 'h', sizeof big);
    memcpy(big, "GET /hello HTTP/1.1\r\nX-Big: ", 28);
    memcpy(big + sizeof big - 5, "\r\n\r\n", 5);
    cl_sends(c, big);
    cl_response(c, &R, 0);
    IS_INT(R.status, 431, "headers over max_header_bytes: 431");
    IS_STR(R.body, "{\"error\":\"header_too_large\"}", "431 body");
    OK(cl_closed(c), "and closed");
    cl_close(c);

    c = cl_open(x->port);
    cl_sends(c, "GET / HTTP/1.1\r\nNo colon\r\n\r\n");
    cl_response(c, &R, 0);
    IS_INT(R.status, 400, "malformed: 400");
    OK(cl_closed(c), "and closed");
    cl_close(c);

    c = cl_open(x->port);
    cl_sends(c, "GET /hello HTTP/1.0\r\n\r\n");
    cl_response(c, &R, 0);
    IS_INT(R.status, 200, "HTTP/1.0 answered");
    CONTAINS(R.head, "Connection: close", "HTTP/1.0 closes");
    OK(cl_closed(c), "closed");
    cl_close(c);

    c = cl_open(x->port);
    request(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &R);
    CONTAINS(R.head, "Connection: keep-alive", "HTTP/1.0 with keep-alive stays");
    request(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &R);
    IS_INT(R.status, 200, "and answers again");
    cl_close(c);
}

static void c_timeouts(struct ctx *x)
{
    /* Slowloris: one byte every 50 ms, cut after the 300 ms header timeout. */
    struct cl *c = cl_open(x->port);
    const char *slow =
        "GET /hello HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    double t0 = now_s();
    for (const char *p = slow; *p != '\0' && now_s() - t0 < 3; p++) {
        if (send(c->fd, p, 1, MSG_NOSIGNAL) != 1)
            break;
        sleep_ms(50);
        if (memmem(c->buf, c->len, "\r\n\r\n", 4) != NULL)
            break;
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, MSG_DONTWAIT);
        if (n > 0)
            c->len += (size_t)n;
        if (n == 0)
            break;
    }
    IS_INT(cl_response(c, &R, 0), 0, "slowloris answered");
    double took = now_s() - t0;
    IS_INT(R.status, 408, "slowloris gets 408 while it still sends");
    OK(took > 0.25 && took < 2.5, "near the header timeout, not at the end of its bytes");
    OK(cl_closed(c), "and is closed");
    cl_close(c);

    c = cl_open(x->port);
    t0 = now_s();
    cl_sends(c, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    cl_response(c, &R, 0);
    IS_INT(R.status, 408, "a body that stops: 408");
    OK(now_s() - t0 > 0.25, "after the body timeout");
    cl_close(c);

    /* Idle keep-alive connections are closed silently. */
    c = cl_open(x->port);
    request(c, "GET /hello HTTP/1.1\r\n\r\n", &R);
    t0 = now_s();
    OK(cl_closed(c), "an idle keep-alive connection is closed");
    took = now_s() - t0;
    OK(took > 0.3 && took < 2, "after the idle timeout");
    IS_UINT(c->len, 0, "without a word");
    cl_close(c);

    /* A connection that never sends is not kept either. */
    c = cl_open(x->port);
    t0 = now_s();
    OK(cl_closed(c), "a silent connection is closed");
    OK(now_s() - t0 < 2, "after the header timeout");
    cl_close(c);
}

static void c_info(struct ctx *x)
{
    struct cl *c = cl_open(x->port);
    request(c,
            "POST /info?a=1 HTTP/1.1\r\nContent-Type: text/x-test\r\nContent-Length: 3\r\n\r\nabc",
            &R);
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    getsockname(c->fd, (struct sockaddr *)&me, &len);
    snprintf(x->client_addr, sizeof x->client_addr, "127.0.0.1:%u", ntohs(me.sin_port));
    cl_close(c);
}

/* Mangled requests on many connections: whatever comes, the server answers or closes, and
 * then still serves a good request. */
static void c_garbage(struct ctx *x)
{
    static const char *const seeds[] = {
        "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Encoding: gzip\r\n\r\nhello",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "GET /delay?ms=1&tag=x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
    };
    uint32_t rng = 12345;
    int answered_or_closed = 0;
    for (int i = 0; i < 60; i++) {
        char buf[512];
        const char *seed = seeds[i % 4];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        for (int k = 0; k < 1 + i % 5; k++) {
            rng = rng * 1103515245u + 12345u;
            buf[(rng >> 8) % len] = (char)(rng >> 20);
        }
        rng = rng * 1103515245u + 12345u;
        if (i % 3 == 0)
            len -= (rng >> 8) % len; /* truncated too */
        struct cl *c = cl_open(x->port);
        struct timeval tv = {2, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        cl_send(c, buf, len);
        cl_send(c, buf, len); /* pipelined twice */
        char sink[4096];
        ssize_t n;
        while ((n = recv(c->fd, sink, sizeof sink, 0)) > 0)
            ;
        answered_or_closed += n == 0 || (n < 0 && errno == ECONNRESET);
        cl_close(c);
    }
    IS_INT(answered_or_closed, 60, "mangled requests are answered or closed, never left hanging");
    struct cl *c = cl_open(x->port);
    request(c, "GET /hello HTTP/1.1\r\n\r\n", &R);
    IS_STR(R.body, "hello", "the server still serves after them");
    cl_close(c);
}

/* A client that pipelines requests for big answers and never reads: the server stops parsing
 * once about a MiB of answers waits, and closes the connection after the idle timeout. */
static void c_no_reader(struct ctx *x)
{
    struct cl *c = cl_open(x->port);
    int rcv = 64 << 10;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    for (int i = 0; i < 60; i++)
        cl_sends(c, "GET /big HTTP/1.1\r\n\r\n");
    sleep_ms(1200);
    int answers = 0;
    while (cl_response(c, &R, 0) == 0 && R.status == 200)
        answers++;
    OK(answers < 60, "not every answer was produced for a client that does not read");
    printf("# %d answers of 60 were written\n", answers);
    cl_close(c);
}

static void c_unrouted(struct ctx *x)
{
    struct cl *c = cl_open(x->port);
    request(c, "GET /prefix/a HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 404, "after httpd_unroute the owner's prefix route is gone");
    request(c, "GET /prefix/exact HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 200, "other owners' routes stay");
    cl_close(c);
}

static void c_hold(struct ctx *x)
{
    struct cl *c = cl_open(x->port);
    cl_sends(c, "GET /hold HTTP/1.1\r\n\r\n");
    sleep_ms(100);
    cl_close(c);
}

static void c_maxconn(struct ctx *x)
{
    struct cl *a = cl_open(x->port), *b = cl_open(x->port);
    request(a, "GET /hello HTTP/1.1\r\n\r\n", &R);
    int ok = R.status == 200;
    request(b, "GET /hello HTTP/1.1\r\n\r\n", &R);
    ok += R.status == 200;
    IS_INT(ok, 2, "two connections at max_connections 2");
    struct cl *c = cl_open(x->port);
    cl_sends(c, "GET /hello HTTP/1.1\r\n\r\n");
    OK(cl_closed(c), "a third is accepted and closed");
    cl_close(c);
    request(a, "GET /hello HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 200, "the first still works");
    cl_close(a);
    sleep_ms(100);
    c = cl_open(x->port);
    request(c, "GET /hello HTTP/1.1\r\n\r\n", &R);
    IS_INT(R.status, 200, "a new one is served once one closed");
    cl_close(c);
    cl_close(b);
}

/* ---- main -------------------------------------------------------------------------------- */

static void open_errors(void)
{
    char err[256];
    struct httpd *s = (struct httpd *)&err;
    IS_INT(httpd_open(&X.loop, "nope", NULL, NULL, &s, err, sizeof err), RMR_EINVAL,
           "a name is refused");
    OK(s == NULL, "out is NULL on failure");
    CONTAINS(err, "cannot listen on 'nope'", "the sentence names the address");
    const char *bad[] = {"1.2.3.4.5:80", "127.0.0.1:70000", "127.0.0.1:",     "[::1]",
                         "::1:80",       "127.0.0.1:8a",    "example.com:80", ""};
    int refused = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused += httpd_open(&X.loop, bad[i], NULL, NULL, &s, err, sizeof err) == RMR_EINVAL;
    IS_INT(refused, (int)(sizeof bad / sizeof bad[0]), "unparsable addresses are EINVAL");

    char addr[64];
    snprintf(addr, sizeof addr, "%s", httpd_address(X.s));
    IS_INT(httpd_open(&X.loop, addr, NULL, NULL, &s, err, sizeof err), RMR_EADDRINUSE,
           "a taken address is EADDRINUSE");
    char want[128];
    snprintf(want, sizeof want, "cannot listen on %s: address already in use", addr);
    IS_STR(err, want, "with one sentence");

    IS_INT(httpd_open(&X.loop, "localhost:0", NULL, NULL, &s, err, sizeof err), 0, "localhost");
    OK(strncmp(httpd_address(s), "127.0.0.1:", 10) == 0, "is 127.0.0.1");
    httpd_close(s);
    int rc = httpd_open(&X.loop, "[::1]:0", NULL, NULL, &s, err, sizeof err);
    if (rc == 0) {
        OK(strncmp(httpd_address(s), "[::1]:", 6) == 0, "[::1] is bracketed");
        httpd_close(s);
    } else {
        OK(1, "# skip no IPv6 loopback here");
    }
    uv_run(&X.loop, UV_RUN_NOWAIT);

    IS_INT(httpd_route(X.s, "GET", "/hello", 0, h_hello, NULL, NULL), RMR_EEXIST,
           "a route twice is EEXIST");
    IS_INT(httpd_route(X.s, "GET", "hello", 0, h_hello, NULL, NULL), RMR_EINVAL,
           "a path without a slash is EINVAL");
}

int main(void)
{
    uv_loop_init(&X.loop);
    uv_async_init(&X.loop, &X.done, on_done);
    struct httpd_limits lim = {
        .max_header_bytes = 2048,
        .max_body_bytes = 64 << 10,
        .max_decoded_bytes = 1 << 20,
        .header_timeout_ms = 300,
        .body_timeout_ms = 300,
        .idle_timeout_ms = 400,
        .max_connections = 64,
    };
    char err[256];
    IS_INT(httpd_open(&X.loop, "127.0.0.1:0", &lim, NULL, &X.s, err, sizeof err), 0,
           "listening on 127.0.0.1:0");
    const char *addr = httpd_address(X.s);
    X.port = atoi(strrchr(addr, ':') + 1);
    OK(X.port > 0, "a real port is reported");
    const void *owner = &X.owner_ok;
    httpd_route(X.s, "GET", "/hello", 0, h_hello, NULL, NULL);
    httpd_route(X.s, "HEAD", "/hello", 0, h_hello, NULL, NULL);
    httpd_route(X.s, NULL, "/echo", 0, h_echo, NULL, NULL);
    httpd_route(X.s, NULL, "/any", 0, h_hello, NULL, NULL);
    httpd_route(X.s, "GET", "/async", 0, h_async, NULL, NULL);
    httpd_route(X.s, "GET", "/delay", 0, h_delay, NULL, NULL);
    httpd_route(X.s, "GET", "/prefix/", RMR_ROUTE_PREFIX, h_prefix, NULL, owner);
    httpd_route(X.s, "GET", "/prefix/exact", 0, h_busy, (void *)(intptr_t)200, NULL);
    httpd_route(X.s, "GET", "/busy503", 0, h_busy, (void *)(intptr_t)503, NULL);
    httpd_route(X.s, "GET", "/busy429", 0, h_busy, (void *)(intptr_t)429, NULL);
    httpd_route(X.s, "GET", "/hold", 0, h_hold, NULL, NULL);
    httpd_route(X.s, "GET", "/big", 0, h_big, NULL, NULL);
    httpd_route(X.s, "POST", "/info", 0, h_info, NULL, NULL);

    open_errors();
    run(c_routes);
    OK(X.owner_ok, "the handler sees its route's owner");
    run(c_info);
    OK(X.info_ok, "request info: method, path, query, content type, body, older sizes");
    IS_STR(X.remote, X.client_addr, "remote is ip:port of the client");
    run(c_keepalive);
    X.max_in_flight = 0;
    run(c_pipeline);
    IS_INT(X.max_in_flight, 1, "one request in flight per connection");
    run(c_encodings);
    run(c_limits);
    run(c_timeouts);

    const struct httpd_stats *st = httpd_stats(X.s);
    OK(st->requests > 1000, "requests counted");
    OK(st->responses[2] > 1000, "2xx counted");
    OK(st->responses[1] == 1, "one 100 Continue");
    OK(st->responses[4] >= 10, "4xx counted");
    OK(st->bad_requests == 2, "bad_requests: corrupt gzip and malformed");
    OK(st->too_large == 3, "too_large: two Content-Lengths and a bomb");
    OK(st->headers_too_large == 1, "headers_too_large");
    OK(st->timeouts >= 3, "timeouts: slowloris, slow body, silent connection");
    OK(st->bytes_in > 40000 && st->bytes_out > 100000, "bytes counted");

    uint64_t timeouts = st->timeouts;
    run(c_no_reader);
    OK(st->timeouts == timeouts + 1, "the client that does not read is cut as slow");
    run(c_garbage);

    /* unroute: the prefix route's owner goes, its path is 404 now */
    httpd_unroute(X.s, owner);
    run(c_unrouted);

    /* A request held by its handler outlives its connection and the server. */
    run(c_hold);
    OK(X.held != NULL, "the handler holds a request");
    spin(50);
    httpd_close(X.s);
    spin(20);
    IS_INT(httpd_respond(X.held, 200, NULL, 0, NULL, "late", 4), RMR_ECONNRESET,
           "answering after httpd_close is ECONNRESET and frees the request");

    /* max_connections on a server of its own */
    lim.max_connections = 2;
    IS_INT(httpd_open(&X.loop, "127.0.0.1:0", &lim, NULL, &X.s, err, sizeof err), 0,
           "second server");
    X.port = atoi(strrchr(httpd_address(X.s), ':') + 1);
    httpd_route(X.s, "GET", "/hello", 0, h_hello, NULL, NULL);
    run(c_maxconn);
    IS_UINT(httpd_stats(X.s)->connections_rejected, 1, "one connection rejected");
    IS_UINT(httpd_stats(X.s)->connections_accepted, 3, "three accepted");
    httpd_close(X.s);

    uv_close((uv_handle_t *)&X.done, NULL);
    spin(50);
    uv_run(&X.loop, UV_RUN_DEFAULT);
    IS_INT(uv_loop_close(&X.loop), 0, "every handle closed");
    return tap_done();
}
