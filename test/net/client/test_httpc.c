/* core/net/client: the HTTP client against servers in this process: a canned HTTP/1.1
 * responder and a fake proxy on the client's own loop, and (with OpenSSL) a TLS responder on
 * a thread with certificates made at start. Nothing leaves 127.0.0.1. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <remora/error.h>

#include "net/client/httpc.h"
#include "tap.h"

#ifdef HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

static uv_loop_t loop_storage;
static uv_loop_t *loop = &loop_storage;
/* Set around httpc_send(): a done callback that sees it set ran re-entrantly. */
static int in_send;
static int reentrant_calls;

/* ---- a slow DNS ------------------------------------------------------------------------------ */

/* Lookups of this name take SLOW_DNS_MS and fail, as with an unreachable DNS server. The
 * executable's getaddrinfo() takes precedence over libc's for curl's resolver thread. */
#define SLOW_DNS_HOST "slow-dns.invalid"
#define SLOW_DNS_MS   800
static int slow_started, slow_finished; /* __atomic */

int getaddrinfo(const char *restrict node, const char *restrict service,
                const struct addrinfo *restrict hints, struct addrinfo **restrict res)
{
    if (node != NULL && strcmp(node, SLOW_DNS_HOST) == 0) {
        __atomic_add_fetch(&slow_started, 1, __ATOMIC_SEQ_CST);
        struct timespec ts = {0, SLOW_DNS_MS * 1000000L};
        nanosleep(&ts, NULL);
        __atomic_add_fetch(&slow_finished, 1, __ATOMIC_SEQ_CST);
        return EAI_NONAME;
    }
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))dlsym(
            RTLD_NEXT, "getaddrinfo");
    return real(node, service, hints, res);
}

/* ---- the canned server ---------------------------------------------------------------------- */

struct conn;

struct srv {
    uv_tcp_t tcp;
    int port;
    int is_proxy; /* answers "via proxy" instead of "hello" */
    int accepts;
    int requests;
    char last_line[512]; /* the last request line */
    char *last_head;     /* the last request's head, NUL-ended */
    char *last_body;
    size_t last_body_len;
    size_t big_bytes; /* the body length of /big */
    struct conn *conns;
};

struct conn {
    uv_tcp_t tcp;
    struct srv *srv;
    char *buf;
    size_t len, cap;
    int closing;
    struct conn *prev, *next;
};

struct wreq {
    uv_write_t w;
    struct conn *k;
    int close_after;
    char data[];
};

static void conn_closed(uv_handle_t *h)
{
    struct conn *k = h->data;
    free(k->buf);
    free(k);
}

static void conn_unlink(struct conn *k)
{
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        k->srv->conns = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
}

static void conn_close(struct conn *k, int reset)
{
    if (k->closing)
        return;
    k->closing = 1;
    conn_unlink(k);
    if (reset)
        uv_tcp_close_reset(&k->tcp, conn_closed);
    else
        uv_close((uv_handle_t *)&k->tcp, conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
    struct wreq *r = (struct wreq *)w;
    (void)status;
    if (r->close_after)
        conn_close(r->k, 0);
    free(r);
}

static void send_raw(struct conn *k, const char *a, size_t alen, const char *b, size_t blen,
                     int close_after)
{
    struct wreq *r = malloc(sizeof *r + alen + blen);
    if (r == NULL)
        abort();
    r->k = k;
    r->close_after = close_after;
    memcpy(r->data, a, alen);
    if (blen > 0)
        memcpy(r->data + alen, b, blen);
    uv_buf_t buf = uv_buf_init(r->data, (unsigned)(alen + blen));
    if (uv_write(&r->w, (uv_stream_t *)&k->tcp, &buf, 1, on_written) < 0) {
        free(r);
        conn_close(k, 0);
    }
}

static void respond(struct conn *k, const char *status, const char *headers, const char *body,
                    size_t body_len, int head_only, int close_after)
{
    char head[1024];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                     body_len, headers);
    send_raw(k, head, (size_t)n, body, head_only ? 0 : body_len, close_after);
}

static size_t content_length(const char *head)
{
    const char *p = strcasestr(head, "\r\ncontent-length:");
    return p != NULL ? strtoul(p + 17, NULL, 10) : 0;
}

static void route(struct conn *k)
{
    struct srv *s = k->srv;
    char method[16], target[256];
    if (sscanf(s->last_line, "%15s %255s", method, target) != 2) {
        respond(k, "400 Bad Request", "", "", 0, 0, 1);
        return;
    }
    /* A proxy gets the absolute form: answer for its path. */
    const char *path = target;
    if (strncmp(target, "http://", 7) == 0) {
        path = strchr(target + 7, '/');
        if (path == NULL)
            path = "/";
    }
    int head_only = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "CONNECT") == 0) {
        respond(k, "403 Forbidden", "", "", 0, 0, 1);
    } else if (strcmp(path, "/ok") == 0) {
        const char *body = s->is_proxy ? "via proxy" : "hello";
        respond(k, "200 OK", "Content-Type: text/plain\r\n", body, strlen(body), head_only, 0);
    } else if (strcmp(path, "/ok-then-close") == 0) {
        /* Keep-alive as far as the client knows, then closed while idle. */
        respond(k, "200 OK", "", "bye", 3, head_only, 1);
    } else if (strcmp(path, "/503") == 0) {
        respond(k, "503 Service Unavailable", "Retry-After: 7\r\nContent-Type: text/plain\r\n",
                "busy", 4, head_only, 0);
    } else if (strcmp(path, "/retry-date") == 0) {
        char hdr[96], date[64];
        time_t t = time(NULL) + 60;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        snprintf(hdr, sizeof hdr, "Retry-After: %s\r\n", date);
        respond(k, "503 Service Unavailable", hdr, "", 0, head_only, 0);
    } else if (strcmp(path, "/close") == 0) {
        conn_close(k, 0);
    } else if (strcmp(path, "/rst") == 0) {
        conn_close(k, 1);
    } else if (strcmp(path, "/hang") == 0) {
        /* never answers */
    } else if (strcmp(path, "/big") == 0) {
        char *body = malloc(s->big_bytes);
        memset(body, 'x', s->big_bytes);
        respond(k, "200 OK", "Content-Type: text/plain\r\n", body, s->big_bytes, head_only, 0);
        free(body);
    } else if (strcmp(path, "/echo") == 0) {
        respond(k, "200 OK", "Content-Type: application/octet-stream\r\n", s->last_body,
                s->last_body_len, head_only, 0);
    } else if (strcmp(path, "/continue") == 0) {
        static const char r[] = "HTTP/1.1 100 Continue\r\nContent-Type: interim/bogus\r\n"
                                "Retry-After: 99\r\n\r\n"
                                "HTTP/1.1 200 OK\r\nContent-Type: text/final\r\n"
                                "Content-Length: 2\r\n\r\nok";
        send_raw(k, r, sizeof r - 1, NULL, 0, 0);
    } else if (strcmp(path, "/chunked") == 0) {
        static const char r[] = "HTTP/1.1 200 OK\r\nContent-Type: text/chunked\r\n"
                                "Transfer-Encoding: chunked\r\nTrailer: Content-Type\r\n\r\n"
                                "5\r\nhello\r\n0\r\nContent-Type: trailer/bogus\r\n"
                                "Retry-After: 5\r\n\r\n";
        send_raw(k, r, sizeof r - 1, NULL, 0, 0);
    } else if (strcmp(path, "/partial") == 0) {
        static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
        send_raw(k, r, sizeof r - 1, NULL, 0, 1);
    } else {
        respond(k, "404 Not Found", "", "", 0, head_only, 0);
    }
}

/* Answers each complete request in the buffer, in order (keep-alive). */
static void process(struct conn *k)
{
    struct srv *s = k->srv;
    while (!k->closing && k->len > 0) {
        if ((unsigned char)k->buf[0] == 0x16) {
            /* A TLS handshake record: answer in plain HTTP, as a plain server would. */
            static const char r[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                    "Connection: close\r\n\r\n";
            k->len = 0;
            send_raw(k, r, sizeof r - 1, NULL, 0, 1);
            return;
        }
        char *end = memmem(k->buf, k->len, "\r\n\r\n", 4);
        if (end == NULL)
            return;
        size_t head_len = (size_t)(end - k->buf) + 4;
        char *head = strndup(k->buf, head_len);
        size_t cl = content_length(head);
        if (k->len - head_len < cl) {
            free(head);
            return;
        }
        s->requests++;
        size_t line = (size_t)(strstr(head, "\r\n") - head);
        if (line >= sizeof s->last_line)
            line = sizeof s->last_line - 1;
        memcpy(s->last_line, head, line);
        s->last_line[line] = '\0';
        free(s->last_head);
        s->last_head = head;
        free(s->last_body);
        s->last_body = malloc(cl + 1);
        memcpy(s->last_body, k->buf + head_len, cl);
        s->last_body[cl] = '\0';
        s->last_body_len = cl;
        memmove(k->buf, k->buf + head_len + cl, k->len - head_len - cl);
        k->len -= head_len + cl;
        route(k);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *k = h->data;
    (void)suggested;
    if (k->cap - k->len < 65536) {
        k->cap = k->cap * 2 + 65536;
        k->buf = realloc(k->buf, k->cap);
        if (k->buf == NULL)
            abort();
    }
    *buf = uv_buf_init(k->buf + k->len, (unsigned)(k->cap - k->len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *k = st->data;
    (void)buf;
    if (nread < 0) {
        conn_close(k, 0);
        return;
    }
    k->len += (size_t)nread;
    process(k);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct srv *s = l->data;
    if (status < 0)
        return;
    struct conn *k = calloc(1, sizeof *k);
    k->srv = s;
    uv_tcp_init(loop, &k->tcp);
    k->tcp.data = k;
    if (uv_accept(l, (uv_stream_t *)&k->tcp) < 0) {
        uv_close((uv_handle_t *)&k->tcp, conn_closed);
        return;
    }
    s->accepts++;
    k->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = k;
    s->conns = k;
    uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
}

static struct srv *srv_open(int is_proxy)
{
    struct srv *s = calloc(1, sizeof *s);
    struct sockaddr_in sa;
    int len = sizeof sa;
    s->is_proxy = is_proxy;
    s->big_bytes = 100000;
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    if (uv_tcp_bind(&s->tcp, (const struct sockaddr *)&sa, 0) < 0 ||
        uv_listen((uv_stream_t *)&s->tcp, 128, on_connection) < 0 ||
        uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&sa, &len) < 0)
        abort();
    s->port = ntohs(sa.sin_port);
    return s;
}

static void srv_closed(uv_handle_t *h)
{
    struct srv *s = h->data;
    free(s->last_head);
    free(s->last_body);
    free(s);
}

static void srv_close(struct srv *s)
{
    while (s->conns != NULL)
        conn_close(s->conns, 0);
    uv_close((uv_handle_t *)&s->tcp, srv_closed);
}

static void url(char *buf, size_t cap, const char *scheme, int port, const char *path)
{
    snprintf(buf, cap, "%s://127.0.0.1:%d%s", scheme, port, path);
}

/* ---- running the loop ----------------------------------------------------------------------- */

static void on_guard(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

static void on_guard_closed(uv_handle_t *h)
{
    *(int *)h->data = 1;
}

static void guard_close(uv_timer_t *guard)
{
    int closed = 0;
    guard->data = &closed;
    uv_close((uv_handle_t *)guard, on_guard_closed);
    while (!closed)
        uv_run(loop, UV_RUN_NOWAIT);
}

/* Runs the loop until *flag is set; 0 when limit_ms passed first. */
static int run_until(const int *flag, uint64_t limit_ms)
{
    uv_timer_t guard;
    int expired = 0;
    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, limit_ms, 0);
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    guard_close(&guard);
    return !expired;
}

/* Runs the loop until no handle is left (the client and servers closed); 0 after 3 s. */
static int settle(void)
{
    uv_timer_t guard;
    int expired = 0;
    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, 3000, 0);
    uv_unref((uv_handle_t *)&guard);
    while (uv_loop_alive(loop) && !expired)
        uv_run(loop, UV_RUN_ONCE);
    guard_close(&guard);
    return !expired;
}

/* ---- requests ------------------------------------------------------------------------------- */

struct res {
    int done;
    int calls;
    int send_rc;
    int status;
    int error;
    int has_error_text;
    char error_text[512];
    int64_t retry_after_ms;
    char content_type[128];
    int has_content_type;
    char *body;
    size_t body_len;
    uint64_t duration_us;
};

static void res_release(struct res *o)
{
    free(o->body);
    memset(o, 0, sizeof *o);
}

static void on_done(void *arg, const struct httpc_response *r)
{
    struct res *o = arg;
    if (in_send)
        reentrant_calls++;
    o->calls++;
    o->done = 1;
    o->status = r->status;
    o->error = r->error;
    o->has_error_text = r->error_text != NULL;
    snprintf(o->error_text, sizeof o->error_text, "%s", r->error_text ? r->error_text : "");
    o->retry_after_ms = r->retry_after_ms;
    o->has_content_type = r->content_type != NULL;
    snprintf(o->content_type, sizeof o->content_type, "%s", r->content_type ? r->content_type : "");
    free(o->body);
    o->body = malloc(r->body_len + 1);
    memcpy(o->body, r->body, r->body_len + 1); /* the NUL too: it must be there */
    o->body_len = r->body_len;
    o->duration_us = r->duration_us;
}

static int send_req(struct httpc *c, const struct httpc_request *req, httpc_done done, void *arg,
                    struct httpc_xfer **x)
{
    in_send = 1;
    int rc = httpc_send(c, req, done, arg, x);
    in_send = 0;
    return rc;
}

/* Sends req and runs the loop until its done callback ran (5 s at most). */
static void fetch(struct httpc *c, const struct httpc_request *req, struct res *o)
{
    res_release(o);
    o->send_rc = send_req(c, req, on_done, o, NULL);
    if (o->send_rc < 0)
        return;
    run_until(&o->done, 5000);
}

static void get(struct httpc *c, const char *u, struct res *o)
{
    struct httpc_request req = {.url = u};
    fetch(c, &req, o);
}

static struct httpc *client(const struct httpc_opts *opts)
{
    struct httpc *c = NULL;
    if (httpc_new(loop, opts, &c) < 0)
        abort();
    return c;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_retry_after(void)
{
    /* 2015-10-21 07:27:00 UTC */
    const int64_t now = 1445412420;
    static const struct {
        const char *in;
        int64_t want;
    } cases[] = {
        {"7", 7000},
        {"0", 0},
        {" \t120 ", 120000},
        {"007", 7000},
        {"99999999999999999999999999", 2147483648000LL},
        {"Wed, 21 Oct 2015 07:28:00 GMT", 60000},
        {"Wed, 21 Oct 2015 07:27:00 GMT", 0},
        {"Tue, 20 Oct 2015 07:28:00 GMT", 0},
        {"Thu, 22 Oct 2015 07:27:00 GMT", 86400000},
        {" Wed, 21 Oct 2015 07:28:00 GMT\t", 60000},
        {"Thu, 29 Feb 2024 00:00:00 GMT", (1709164800LL - now) * 1000},
        {"Fri, 31 Dec 9999 23:59:59 GMT", 2147483648000LL},
        {"Wed, 21 Oct 2015 07:27:60 GMT", 60000},
        {"", -1},
        {"   ", -1},
        {"-1", -1},
        {"+5", -1},
        {"7s", -1},
        {"1.5", -1},
        {"0x10", -1},
        {"soon", -1},
        {"Wed, 21 Oct 2015 07:28:00 UTC", -1},
        {"Wed, 21 Oct 2015 07:28:00", -1},
        {"wed, 21 oct 2015 07:28:00 GMT", -1},
        {"Xyz, 21 Oct 2015 07:28:00 GMT", -1},
        {"Wed, 21 Foo 2015 07:28:00 GMT", -1},
        {"Wed, 32 Oct 2015 07:28:00 GMT", -1},
        {"Wed, 00 Oct 2015 07:28:00 GMT", -1},
        {"Wed, 31 Nov 2015 07:28:00 GMT", -1},
        {"Wed, 29 Feb 2023 07:28:00 GMT", -1},
        {"Wed, 21 Oct 2015 24:00:00 GMT", -1},
        {"Wed, 21 Oct 2015 07:60:00 GMT", -1},
        {"Wed, 21 Oct 2015 07:28:61 GMT", -1},
        {"Wed,21 Oct 2015 07:28:00 GMT ", -1},
        {"Wed, 21 Oct 15 07:28:00 GMT", -1},
        {"Wednesday, 21-Oct-15 07:28:00 GMT", -1},
        {"Wed Oct 21 07:28:00 2015", -1},
        {"Wed, 2a Oct 2015 07:28:00 GMT", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "retry-after \"%s\"", cases[i].in);
        IS_INT(httpc_retry_after_ms(cases[i].in, now), cases[i].want, name);
    }
    IS_INT(httpc_retry_after_ms(NULL, now), -1, "retry-after NULL");
}

static void test_invalid(void)
{
    struct httpc *c = client(NULL);
    static const char *const bad_header[] = {"X-A: 1\r\nX-Injected: 1", NULL};
    static const char *const no_colon[] = {"X-A 1", NULL};
    static const char *const empty_name[] = {": 1", NULL};
    static const struct {
        struct httpc_request req;
        const char *name;
    } cases[] = {
        {{.url = NULL}, "no URL"},
        {{.url = "ftp://127.0.0.1/x"}, "ftp scheme"},
        {{.url = "file:///etc/passwd"}, "file scheme"},
        {{.url = "gopher://127.0.0.1/"}, "gopher scheme"},
        {{.url = "127.0.0.1:80/x"}, "no scheme"},
        {{.url = "http://"}, "no host"},
        {{.url = "http://a b/"}, "a space in the host"},
        {{.url = ""}, "empty URL"},
        {{.url = "http://127.0.0.1/", .method = "GE T"}, "method with a space"},
        {{.url = "http://127.0.0.1/", .method = ""}, "empty method"},
        {{.url = "http://127.0.0.1/", .method = "GET\r\nX: y"}, "method with CRLF"},
        {{.url = "http://127.0.0.1/", .headers = bad_header}, "header with CRLF"},
        {{.url = "http://127.0.0.1/", .headers = no_colon}, "header without a colon"},
        {{.url = "http://127.0.0.1/", .headers = empty_name}, "header without a name"},
        {{.url = "http://127.0.0.1/", .body_len = 3}, "body_len without a body"},
    };
    struct res o = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct httpc_xfer *x = (struct httpc_xfer *)&o; /* must be reset to NULL */
        char name[96];
        snprintf(name, sizeof name, "send refuses %s with RMR_EINVAL", cases[i].name);
        IS_INT(send_req(c, &cases[i].req, on_done, &o, &x), RMR_EINVAL, name);
        OK(x == NULL, "and leaves *xfer NULL");
    }
    IS_INT(httpc_send(c, NULL, on_done, &o, NULL), RMR_EINVAL, "send refuses a NULL request");
    struct httpc_request ok = {.url = "HTTPS://127.0.0.1:1/x"};
    struct httpc_xfer *x = NULL;
    IS_INT(send_req(c, &ok, on_done, &o, &x), 0, "an upper-case scheme is accepted");
    IS_UINT(httpc_active(c), 1, "one request in flight");
    httpc_cancel(x);
    IS_UINT(httpc_active(c), 0, "none after cancelling it");
    httpc_cancel(NULL);
    httpc_free(NULL);
    struct httpc *none = (struct httpc *)&o;
    IS_INT(httpc_new(NULL, NULL, &none), RMR_EINVAL, "httpc_new refuses a NULL loop");
    OK(none == NULL, "and leaves *out NULL");
    run_until(&o.done, 50);
    IS_INT(o.calls, 0, "no done callback for refused or cancelled requests");
    res_release(&o);
    httpc_free(c);
    OK(settle(), "invalid: everything closed");
}

static void test_basic(void)
{
    struct srv *s = srv_open(0);
    struct httpc_opts opts = {.user_agent = "remora/test"};
    struct httpc *c = client(&opts);
    char u[128];
    struct res o = {0};

    url(u, sizeof u, "http", s->port, "/ok");
    get(c, u, &o);
    IS_INT(o.calls, 1, "GET: done ran once");
    IS_INT(o.error, 0, "GET: no error");
    IS_INT(o.status, 200, "GET: status 200");
    IS_STRN(o.body, o.body_len, "hello", "GET: body");
    IS_STR(o.content_type, "text/plain", "GET: content type");
    IS_INT(o.retry_after_ms, -1, "GET: no Retry-After");
    OK(!o.has_error_text, "GET: error_text NULL");
    OK(o.duration_us > 0 && o.duration_us < 2000000, "GET: duration measured");
    IS_STR(s->last_line, "GET /ok HTTP/1.1", "GET: request line");
    CONTAINS(s->last_head, "\r\nUser-Agent: remora/test\r\n", "GET: our user agent");
    OK(strcasestr(s->last_head, "accept-encoding") == NULL, "GET: no Accept-Encoding forced");

    url(u, sizeof u, "http", s->port, "/503");
    get(c, u, &o);
    IS_INT(o.status, 503, "503: status");
    IS_INT(o.error, 0, "503: an HTTP status is not an error");
    IS_INT(o.retry_after_ms, 7000, "503: Retry-After: 7 is 7000 ms");
    IS_STRN(o.body, o.body_len, "busy", "503: body");

    url(u, sizeof u, "http", s->port, "/retry-date");
    get(c, u, &o);
    OK(o.retry_after_ms > 58000 && o.retry_after_ms <= 60000,
       "503: Retry-After as an HTTP date a minute ahead");
    IS_INT(o.body_len, 0, "503: empty body");
    OK(o.body != NULL && o.body[0] == '\0', "503: the empty body is \"\"");

    url(u, sizeof u, "http", s->port, "/continue");
    get(c, u, &o);
    IS_INT(o.status, 200, "100 then 200: the final status");
    IS_STRN(o.body, o.body_len, "ok", "100 then 200: body");
    IS_STR(o.content_type, "text/final", "100 then 200: the final response's content type");
    IS_INT(o.retry_after_ms, -1, "100 then 200: the interim Retry-After is forgotten");

    url(u, sizeof u, "http", s->port, "/chunked");
    get(c, u, &o);
    IS_INT(o.status, 200, "chunked: status");
    IS_STRN(o.body, o.body_len, "hello", "chunked: body");
    IS_STR(o.content_type, "text/chunked", "chunked: trailers do not replace headers");
    IS_INT(o.retry_after_ms, -1, "chunked: a Retry-After trailer is ignored");

    url(u, sizeof u, "http", s->port, "/missing");
    get(c, u, &o);
    IS_INT(o.status, 404, "404: status");
    OK(!o.has_content_type, "404: content type NULL when absent");

    url(u, sizeof u, "http", s->port, "/big");
    get(c, u, &o);
    IS_INT(o.error, 0, "100000-byte body under the default bound");
    IS_UINT(o.body_len, 100000, "100000-byte body: length");
    OK(o.body_len == 100000 && o.body[0] == 'x' && o.body[99999] == 'x' && o.body[100000] == 0,
       "100000-byte body: content, NUL-ended");
    IS_INT(s->accepts, 1, "all of these on one connection");
    struct httpc_request big = {.url = u, .max_response_bytes = 1000};
    fetch(c, &big, &o);
    IS_INT(o.error, RMR_E2BIG, "body over max_response_bytes: RMR_E2BIG");
    IS_INT(o.status, 200, "RMR_E2BIG keeps the status");
    IS_UINT(o.body_len, 1000, "RMR_E2BIG: the first max_response_bytes bytes");
    IS_STR(o.error_text, "response body larger than 1000 bytes", "RMR_E2BIG: error text");
    struct httpc_request exact = {.url = u, .max_response_bytes = 100000};
    fetch(c, &exact, &o);
    IS_INT(o.error, 0, "a body of exactly max_response_bytes is fine");
    IS_INT(s->accepts, 2, "a body cut short costs its connection, and only that");
    res_release(&o);
    httpc_free(c);
    srv_close(s);
    OK(settle(), "basic: everything closed");
}

static void test_methods(void)
{
    struct srv *s = srv_open(0);
    struct httpc *c = client(NULL);
    char u[128];
    struct res o = {0};
    url(u, sizeof u, "http", s->port, "/echo");

    size_t n = 300000;
    unsigned char *body = malloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (unsigned char)(i * 7 % 251); /* zero bytes included */
    static const char *const hdrs[] = {"Content-Type: application/x-test", "X-Remora: yes", NULL};
    struct httpc_request post = {.url = u, .headers = hdrs, .body = body, .body_len = n};
    fetch(c, &post, &o);
    IS_INT(o.status, 200, "POST: status");
    IS_STR(s->last_line, "POST /echo HTTP/1.1", "POST: the method follows from the body");
    CONTAINS(s->last_head, "\r\nContent-Length: 300000\r\n", "POST: Content-Length");
    CONTAINS(s->last_head, "\r\nContent-Type: application/x-test\r\n", "POST: our Content-Type");
    CONTAINS(s->last_head, "\r\nX-Remora: yes\r\n", "POST: our header");
    OK(strcasestr(s->last_head, "\r\nexpect:") == NULL, "POST: no Expect: 100-continue");
    OK(s->last_body_len == n && memcmp(s->last_body, body, n) == 0, "POST: body arrived intact");
    OK(o.body_len == n && memcmp(o.body, body, n) == 0, "POST: echoed body read back intact");
    IS_STR(o.content_type, "application/octet-stream", "POST: response content type");

    static const char *const expect[] = {"Expect: 100-continue", NULL};
    struct httpc_request put = {
        .url = u, .method = "PUT", .body = "abc", .body_len = 3, .headers = expect};
    fetch(c, &put, &o);
    IS_STR(s->last_line, "PUT /echo HTTP/1.1", "PUT: method");
    IS_STRN(s->last_body, s->last_body_len, "abc", "PUT: body");
    CONTAINS(s->last_head, "\r\nExpect: 100-continue\r\n", "PUT: a caller's Expect is kept");

    struct httpc_request empty_post = {.url = u, .method = "POST"};
    fetch(c, &empty_post, &o);
    IS_STR(s->last_line, "POST /echo HTTP/1.1", "POST without a body: method");
    CONTAINS(s->last_head, "\r\nContent-Length: 0\r\n", "POST without a body: Content-Length 0");

    struct httpc_request del = {.url = u, .method = "DELETE"};
    fetch(c, &del, &o);
    IS_STR(s->last_line, "DELETE /echo HTTP/1.1", "DELETE: method");
    OK(strcasestr(s->last_head, "content-length") == NULL, "DELETE: no body");

    url(u, sizeof u, "http", s->port, "/ok");
    struct httpc_request head = {.url = u, .method = "HEAD"};
    fetch(c, &head, &o);
    IS_INT(o.error, 0, "HEAD: completes without waiting for a body");
    IS_INT(o.status, 200, "HEAD: status");
    IS_INT(o.body_len, 0, "HEAD: no body");
    IS_STR(s->last_line, "HEAD /ok HTTP/1.1", "HEAD: method");

    struct httpc_request get_explicit = {.url = u, .method = "GET"};
    fetch(c, &get_explicit, &o);
    IS_STR(s->last_line, "GET /ok HTTP/1.1", "explicit GET: method");
    IS_STRN(o.body, o.body_len, "hello", "explicit GET: body");

    free(body);
    res_release(&o);
    httpc_free(c);
    srv_close(s);
    OK(settle(), "methods: everything closed");
}

static int refusing_port(int *fd_out)
{
    /* Bound but not listening: a connect gets a reset at once. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        abort();
    *fd_out = fd;
    return ntohs(sa.sin_port);
}

/* A transfer that times out or is cancelled while its name is still being resolved ends at
 * once: the loop does not wait for the resolver thread. */
static void test_slow_dns(void)
{
    struct httpc *c = client(NULL);
    struct res o = {0};
    struct httpc_request req = {.url = "http://" SLOW_DNS_HOST "/", .timeout_ms = 100};
    uint64_t t0 = uv_hrtime();
    fetch(c, &req, &o);
    uint64_t waited_ms = (uv_hrtime() - t0) / 1000000;
    IS_INT(o.error, RMR_ETIMEDOUT, "slow DNS: RMR_ETIMEDOUT");
    OK(waited_ms < SLOW_DNS_MS / 2, "slow DNS: the timeout does not wait for the lookup");
    printf("# timeout 100 ms during a %d ms lookup: done after %llu ms\n", SLOW_DNS_MS,
           (unsigned long long)waited_ms);

    struct httpc_xfer *x = NULL;
    req.timeout_ms = 0;
    send_req(c, &req, on_done, &o, &x);
    int started = 0;
    for (int i = 0; i < 200 && __atomic_load_n(&slow_started, __ATOMIC_SEQ_CST) < 2; i++)
        run_until(&started, 5);
    IS_INT(__atomic_load_n(&slow_started, __ATOMIC_SEQ_CST), 2, "slow DNS: lookup under way");
    t0 = uv_hrtime();
    httpc_cancel(x);
    httpc_free(c);
    uint64_t cancel_ms = (uv_hrtime() - t0) / 1000000;
    OK(cancel_ms < SLOW_DNS_MS / 2, "slow DNS: cancel and free do not wait for the lookup");
    OK(settle(), "slow DNS: everything closed");
    /* The detached lookups free their state when they return; wait for that before exit so
     * the leak checker sees it. */
    while (__atomic_load_n(&slow_finished, __ATOMIC_SEQ_CST) < 2) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
    res_release(&o);
}

static void test_errors(void)
{
    struct srv *s = srv_open(0);
    struct httpc *c = client(NULL);
    char u[128];
    struct res o = {0};

    url(u, sizeof u, "http", s->port, "/hang");
    struct httpc_request hang = {.url = u, .timeout_ms = 200};
    uint64_t t0 = uv_hrtime();
    fetch(c, &hang, &o);
    uint64_t waited_ms = (uv_hrtime() - t0) / 1000000;
    IS_INT(o.error, RMR_ETIMEDOUT, "no answer: RMR_ETIMEDOUT");
    IS_INT(o.status, 0, "no answer: status 0");
    CONTAINS(o.error_text, "timed out", "no answer: curl's sentence");
    OK(o.duration_us >= 195000 && o.duration_us < 700000, "no answer: after about 200 ms");
    printf("# timeout 200 ms reported after %llu us (%llu ms waited)\n",
           (unsigned long long)o.duration_us, (unsigned long long)waited_ms);

    int fd;
    int port = refusing_port(&fd);
    url(u, sizeof u, "http", port, "/");
    get(c, u, &o);
    IS_INT(o.error, RMR_ECONNREFUSED, "closed port: RMR_ECONNREFUSED");
    IS_INT(o.status, 0, "closed port: status 0");
    OK(o.has_error_text && o.error_text[0] != '\0', "closed port: error text");
    close(fd);

    url(u, sizeof u, "http", s->port, "/close");
    get(c, u, &o);
    IS_INT(o.error, RMR_ECONNRESET, "closed without an answer: RMR_ECONNRESET");
    IS_INT(o.status, 0, "closed without an answer: status 0");

    url(u, sizeof u, "http", s->port, "/rst");
    get(c, u, &o);
    IS_INT(o.error, RMR_ECONNRESET, "reset: RMR_ECONNRESET");

    url(u, sizeof u, "http", s->port, "/partial");
    get(c, u, &o);
    IS_INT(o.error, RMR_ECONNRESET, "closed mid-body: RMR_ECONNRESET");
    IS_INT(o.status, 0, "closed mid-body: status 0");
    IS_INT(o.retry_after_ms, -1, "closed mid-body: no Retry-After");

    url(u, sizeof u, "https", s->port, "/ok");
    get(c, u, &o);
    IS_INT(o.error, RMR_EIO, "https to a plain HTTP port: RMR_EIO");
    IS_INT(o.status, 0, "https to a plain HTTP port: status 0");
    printf("# https to plain http: %s\n", o.error_text);

    /* A kept-alive connection the server closed while idle is not reused. */
    url(u, sizeof u, "http", s->port, "/ok-then-close");
    get(c, u, &o);
    IS_STRN(o.body, o.body_len, "bye", "idle close: the first answer");
    int accepts = s->accepts;
    for (int i = 0; i < 3; i++) {
        url(u, sizeof u, "http", s->port, i < 2 ? "/ok-then-close" : "/ok");
        get(c, u, &o);
        IS_INT(o.error, 0, "idle close: the next request on a new connection succeeds");
    }
    IS_INT(s->accepts - accepts, 3, "idle close: each on a new connection");

    /* The client still works after all of that. */
    url(u, sizeof u, "http", s->port, "/ok");
    get(c, u, &o);
    IS_INT(o.status, 200, "after the errors a request succeeds");

    res_release(&o);
    httpc_free(c);
    srv_close(s);
    OK(settle(), "errors: everything closed");
}

struct chain {
    struct httpc *c;
    const char *url;
    int left;
    int ok;
    int done;
};

static void on_chain(void *arg, const struct httpc_response *r)
{
    struct chain *ch = arg;
    if (in_send)
        reentrant_calls++;
    if (r->error == 0 && r->status == 200 && r->body_len == 5)
        ch->ok++;
    if (--ch->left == 0) {
        ch->done = 1;
        return;
    }
    struct httpc_request req = {.url = ch->url};
    if (send_req(ch->c, &req, on_chain, ch, NULL) < 0)
        ch->done = 1;
}

static void test_reuse(void)
{
    struct srv *s = srv_open(0);
    struct httpc *c = client(NULL);
    char u[128];
    url(u, sizeof u, "http", s->port, "/ok");
    struct chain ch = {.c = c, .url = u, .left = 100};
    struct httpc_request req = {.url = u};
    send_req(c, &req, on_chain, &ch, NULL);
    run_until(&ch.done, 5000);
    IS_INT(ch.ok, 100, "100 sequential requests, each sent from the last one's done");
    IS_INT(s->requests, 100, "the server answered 100");
    IS_INT(s->accepts, 1, "over one connection");

    /* Throughput on loopback with reuse (printed, not asserted). */
    const int n = 2000;
    ch = (struct chain){.c = c, .url = u, .left = n};
    uint64_t t0 = uv_hrtime();
    send_req(c, &req, on_chain, &ch, NULL);
    run_until(&ch.done, 20000);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    IS_INT(ch.ok, n, "2000 more sequential requests");
    IS_INT(s->accepts, 1, "still one connection");
    printf("# %d sequential requests on one connection: %.0f requests/s\n", n, n / secs);

    httpc_free(c);
    srv_close(s);
    OK(settle(), "reuse: everything closed");
}

struct fan {
    int want;
    int completed;
    int ok;
    int done;
    int calls[64];
};

struct fan_slot {
    struct fan *f;
    int i;
};

static void on_fan(void *arg, const struct httpc_response *r)
{
    struct fan_slot *sl = arg;
    struct fan *f = sl->f;
    f->calls[sl->i]++;
    if (r->error == 0 && r->status == 200)
        f->ok++;
    if (++f->completed == f->want)
        f->done = 1;
}

static void fan_out(struct httpc *c, const char *u, struct fan *f, struct fan_slot *slots, int n)
{
    memset(f, 0, sizeof *f);
    f->want = n;
    for (int i = 0; i < n; i++) {
        slots[i] = (struct fan_slot){f, i};
        struct httpc_request req = {.url = u};
        send_req(c, &req, on_fan, &slots[i], NULL);
    }
}

static void test_concurrent(void)
{
    struct srv *s = srv_open(0);
    struct httpc *c = client(NULL);
    char u[128];
    struct fan f;
    struct fan_slot slots[64];
    url(u, sizeof u, "http", s->port, "/ok");

    uint64_t t0 = uv_hrtime();
    fan_out(c, u, &f, slots, 50);
    IS_UINT(httpc_active(c), 50, "50 concurrent requests in flight");
    run_until(&f.done, 5000);
    uint64_t us = (uv_hrtime() - t0) / 1000;
    IS_INT(f.ok, 50, "50 concurrent requests all answered 200");
    int once = 1;
    for (int i = 0; i < 50; i++)
        once &= f.calls[i] == 1;
    OK(once, "each done ran exactly once");
    IS_UINT(httpc_active(c), 0, "none in flight afterwards");
    OK(s->accepts >= 1 && s->accepts <= 50, "at most one connection each");
    printf("# 50 concurrent requests in %llu us over %d connections\n", (unsigned long long)us,
           s->accepts);
    httpc_free(c);

    /* max_connections bounds the connections; the rest wait inside curl. */
    int before = s->accepts;
    struct httpc_opts opts = {.max_connections = 2};
    c = client(&opts);
    fan_out(c, u, &f, slots, 10);
    run_until(&f.done, 5000);
    IS_INT(f.ok, 10, "10 requests with max_connections 2 all answered");
    IS_INT(s->accepts - before, 2, "over 2 connections");
    httpc_free(c);
    srv_close(s);
    OK(settle(), "concurrent: everything closed");
}

struct canceller {
    struct httpc *c;
    struct httpc_xfer *victim;
    struct httpc_xfer *self;
    struct res res;
    int send_rc;
    int free_client;
};

static void on_done_cancel(void *arg, const struct httpc_response *r)
{
    struct canceller *k = arg;
    on_done(&k->res, r);
    httpc_cancel(k->victim); /* another request */
    httpc_cancel(k->self);   /* this one: a no-op */
    if (k->free_client) {
        httpc_free(k->c);
        struct httpc_request req = {.url = "http://127.0.0.1:1/"};
        k->send_rc = httpc_send(k->c, &req, on_done, NULL, NULL);
    }
}

static void test_cancel(void)
{
    struct srv *s = srv_open(0);
    struct httpc *c = client(NULL);
    char ok_url[128], hang_url[128];
    url(ok_url, sizeof ok_url, "http", s->port, "/ok");
    url(hang_url, sizeof hang_url, "http", s->port, "/hang");
    struct res a = {0}, b = {0};

    /* Cancel before the loop ran. */
    struct httpc_request hang = {.url = hang_url};
    struct httpc_xfer *x = NULL;
    IS_INT(send_req(c, &hang, on_done, &a, &x), 0, "cancel: sent");
    OK(x != NULL, "cancel: *xfer set");
    httpc_cancel(x);
    IS_UINT(httpc_active(c), 0, "cancel: none in flight");
    get(c, ok_url, &b);
    IS_INT(b.status, 200, "cancel: another request completes");
    IS_INT(a.calls, 0, "cancel: done of the cancelled request never ran");

    /* Cancel a request on the wire. */
    IS_INT(send_req(c, &hang, on_done, &a, &x), 0, "cancel on the wire: sent");
    int requests = s->requests;
    for (int i = 0; i < 100 && s->requests == requests; i++)
        uv_run(loop, UV_RUN_ONCE);
    IS_INT(s->requests, requests + 1, "cancel on the wire: the server has it");
    httpc_cancel(x);
    get(c, ok_url, &b);
    IS_INT(b.status, 200, "cancel on the wire: the next request completes");
    IS_INT(a.calls, 0, "cancel on the wire: no done");

    /* Cancel one request from another's done callback. */
    struct canceller k = {.c = c};
    struct httpc_request okr = {.url = ok_url};
    send_req(c, &hang, on_done, &a, &k.victim);
    send_req(c, &okr, on_done_cancel, &k, &k.self);
    run_until(&k.res.done, 5000);
    IS_INT(k.res.status, 200, "cancel from a done: that request completed");
    IS_UINT(httpc_active(c), 0, "cancel from a done: the other is gone");
    IS_INT(a.calls, 0, "cancel from a done: no done for it");

    /* httpc_free with requests in flight: no callbacks. */
    send_req(c, &hang, on_done, &a, NULL);
    send_req(c, &hang, on_done, &a, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    httpc_free(c);
    IS_INT(a.calls, 0, "free: no done for requests in flight");

    /* httpc_free from a done callback, with others in flight. */
    c = client(NULL);
    res_release(&k.res);
    k = (struct canceller){.c = c, .free_client = 1};
    send_req(c, &hang, on_done, &a, NULL);
    send_req(c, &okr, on_done_cancel, &k, &k.self);
    send_req(c, &hang, on_done, &a, NULL);
    run_until(&k.res.done, 5000);
    IS_INT(k.res.status, 200, "free from a done: that request completed");
    IS_INT(k.send_rc, RMR_ESTOPPED, "free from a done: sending afterwards is RMR_ESTOPPED");
    IS_INT(a.calls, 0, "free from a done: no done for the others");

    res_release(&a);
    res_release(&b);
    res_release(&k.res);
    srv_close(s);
    OK(settle(), "cancel: everything closed");
}

static const char *const proxy_vars[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                         "all_proxy",  "ALL_PROXY",  "no_proxy",    "NO_PROXY"};

static void clear_proxy_env(void)
{
    for (size_t i = 0; i < sizeof proxy_vars / sizeof proxy_vars[0]; i++)
        unsetenv(proxy_vars[i]);
}

static void test_proxy(void)
{
    struct srv *origin = srv_open(0);
    struct srv *proxy = srv_open(1);
    struct httpc *c = client(NULL);
    char u[128], proxy_url[64], want[160];
    struct res o = {0};
    url(u, sizeof u, "http", origin->port, "/ok");
    snprintf(proxy_url, sizeof proxy_url, "http://127.0.0.1:%d", proxy->port);

    clear_proxy_env();
    setenv("http_proxy", proxy_url, 1);
    get(c, u, &o);
    IS_STRN(o.body, o.body_len, "via proxy", "http_proxy: answered by the proxy");
    snprintf(want, sizeof want, "GET http://127.0.0.1:%d/ok HTTP/1.1", origin->port);
    IS_STR(proxy->last_line, want, "http_proxy: the proxy got the absolute form");
    IS_INT(origin->requests, 0, "http_proxy: the origin got nothing");

    setenv("no_proxy", "127.0.0.1", 1);
    get(c, u, &o);
    IS_STRN(o.body, o.body_len, "hello", "no_proxy: answered by the origin");
    IS_INT(proxy->requests, 1, "no_proxy: the proxy got nothing more");
    unsetenv("no_proxy");

    setenv("NO_PROXY", "127.0.0.1", 1);
    get(c, u, &o);
    IS_STRN(o.body, o.body_len, "hello", "NO_PROXY: answered by the origin");
    IS_INT(proxy->requests, 1, "NO_PROXY: the proxy got nothing more");

    clear_proxy_env();
    setenv("HTTP_PROXY", proxy_url, 1);
    get(c, u, &o);
    IS_STRN(o.body, o.body_len, "hello", "HTTP_PROXY (upper case) is ignored by curl");
    IS_INT(proxy->requests, 1, "HTTP_PROXY: the proxy got nothing");

    clear_proxy_env();
    setenv("HTTPS_PROXY", proxy_url, 1);
    get(c, "https://remora.invalid/x", &o);
    IS_STR(proxy->last_line, "CONNECT remora.invalid:443 HTTP/1.1",
           "HTTPS_PROXY: a tunnel asked of the proxy");
    IS_INT(o.error, RMR_EIO, "HTTPS_PROXY: the refused tunnel is RMR_EIO");
    IS_INT(o.status, 0, "HTTPS_PROXY: status 0 (the proxy's 403 is not the response)");
    CONTAINS(o.error_text, "403", "HTTPS_PROXY: curl's text names the proxy's status");
    printf("# refused CONNECT: %s (%s)\n", rmr_strerror(o.error), o.error_text);

    clear_proxy_env();
    setenv("https_proxy", proxy_url, 1);
    get(c, "https://remora.invalid/y", &o);
    IS_INT(proxy->requests, 3, "https_proxy: a tunnel asked of the proxy");

    clear_proxy_env();
    res_release(&o);
    httpc_free(c);
    srv_close(origin);
    srv_close(proxy);
    OK(settle(), "proxy: everything closed");
}

#ifdef HAVE_OPENSSL
struct tls_srv {
    int fd;
    int port;
    pthread_t th;
    SSL_CTX *ctx;
    int stop;   /* __atomic */
    int served; /* __atomic: requests answered after a handshake */
};

static void *tls_main(void *arg)
{
    struct tls_srv *t = arg;
    for (;;) {
        int fd = accept(t->fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (__atomic_load_n(&t->stop, __ATOMIC_SEQ_CST)) {
            close(fd);
            break;
        }
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL *ssl = SSL_new(t->ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            char buf[4096];
            size_t len = 0;
            int n;
            while (len < sizeof buf - 1 &&
                   (n = SSL_read(ssl, buf + len, (int)(sizeof buf - 1 - len))) > 0) {
                len += (size_t)n;
                buf[len] = '\0';
                if (strstr(buf, "\r\n\r\n") != NULL)
                    break;
            }
            static const char r[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                    "Content-Length: 3\r\nConnection: close\r\n\r\ntls";
            SSL_write(ssl, r, sizeof r - 1);
            __atomic_add_fetch(&t->served, 1, __ATOMIC_SEQ_CST);
            SSL_shutdown(ssl);
        }
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
    }
    return NULL;
}

/* A self-signed P-256 certificate for san, written as PEM to path. */
static int make_cert(const char *san, const char *path, EVP_PKEY **key_out, X509 **crt_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *crt = X509_new();
    if (key == NULL || crt == NULL)
        return -1;
    X509_set_version(crt, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
    X509_gmtime_adj(X509_getm_notBefore(crt), -3600);
    X509_gmtime_adj(X509_getm_notAfter(crt), 86400);
    X509_set_pubkey(crt, key);
    X509_NAME *name = X509_get_subject_name(crt);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"remora test", -1,
                               -1, 0);
    X509_set_issuer_name(crt, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, crt, crt, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    if (e == NULL || bc == NULL)
        return -1;
    X509_add_ext(crt, e, -1);
    X509_add_ext(crt, bc, -1);
    X509_EXTENSION_free(e);
    X509_EXTENSION_free(bc);
    if (X509_sign(crt, key, EVP_sha256()) == 0)
        return -1;
    FILE *f = fopen(path, "w");
    if (f == NULL || PEM_write_X509(f, crt) != 1)
        return -1;
    fclose(f);
    *key_out = key;
    *crt_out = crt;
    return 0;
}

static int tls_start(struct tls_srv *t, const char *san, const char *pem_path)
{
    EVP_PKEY *key;
    X509 *crt;
    memset(t, 0, sizeof *t);
    if (make_cert(san, pem_path, &key, &crt) < 0)
        return -1;
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (t->ctx == NULL || SSL_CTX_use_certificate(t->ctx, crt) != 1 ||
        SSL_CTX_use_PrivateKey(t->ctx, key) != 1)
        return -1;
    X509_free(crt);
    EVP_PKEY_free(key);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    t->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (t->fd < 0 || bind(t->fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(t->fd, 16) < 0 ||
        getsockname(t->fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    t->port = ntohs(sa.sin_port);
    return pthread_create(&t->th, NULL, tls_main, t) == 0 ? 0 : -1;
}

static void tls_stop(struct tls_srv *t)
{
    /* Wake the blocking accept() with a connection it will see the flag on. */
    __atomic_store_n(&t->stop, 1, __ATOMIC_SEQ_CST);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)t->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    connect(fd, (struct sockaddr *)&sa, sizeof sa);
    pthread_join(t->th, NULL);
    close(fd);
    close(t->fd);
    SSL_CTX_free(t->ctx);
}

static void test_tls(void)
{
    char dir[] = "/tmp/remora-httpc-XXXXXX";
    if (mkdtemp(dir) == NULL)
        abort();
    char good_pem[64], other_pem[64];
    snprintf(good_pem, sizeof good_pem, "%s/good.pem", dir);
    snprintf(other_pem, sizeof other_pem, "%s/other.pem", dir);
    struct tls_srv good, other;
    if (tls_start(&good, "IP:127.0.0.1", good_pem) < 0 ||
        tls_start(&other, "DNS:other.invalid", other_pem) < 0) {
        printf("# cannot start the TLS servers\n");
        abort();
    }
    char u[128];
    struct res o = {0};
    url(u, sizeof u, "https", good.port, "/");

    struct httpc *c = client(NULL);
    get(c, u, &o);
    IS_INT(o.error, RMR_EIO, "TLS, unknown CA: RMR_EIO");
    IS_INT(o.status, 0, "TLS, unknown CA: status 0");
    CONTAINS(o.error_text, "certificate", "TLS, unknown CA: curl names the certificate");
    printf("# unknown CA: %s\n", o.error_text);
    httpc_free(c);

    struct httpc_opts with_ca = {.ca_file = good_pem};
    c = client(&with_ca);
    get(c, u, &o);
    IS_INT(o.error, 0, "TLS, our CA file: no error");
    IS_INT(o.status, 200, "TLS, our CA file: status");
    IS_STRN(o.body, o.body_len, "tls", "TLS, our CA file: body");
    httpc_free(c);

    struct httpc_opts other_ca = {.ca_file = other_pem};
    c = client(&other_ca);
    url(u, sizeof u, "https", other.port, "/");
    get(c, u, &o);
    IS_INT(o.error, RMR_EIO, "TLS, a trusted certificate for another name: RMR_EIO");
    printf("# wrong name: %s\n", o.error_text);
    httpc_free(c);

    struct httpc_opts insecure = {.insecure = 1};
    c = client(&insecure);
    get(c, u, &o);
    IS_INT(o.status, 200, "TLS, insecure: any certificate is accepted");
    httpc_free(c);

    IS_INT(__atomic_load_n(&good.served, __ATOMIC_SEQ_CST), 1,
           "TLS: the good server answered once (not for the refused handshake)");
    tls_stop(&good);
    tls_stop(&other);
    unlink(good_pem);
    unlink(other_pem);
    rmdir(dir);
    res_release(&o);
    OK(settle(), "tls: everything closed");
}
#endif

int main(void)
{
    uint64_t t0 = uv_hrtime();
    /* As the agent does (agent.c): a test server writing to a client that has gone. */
    signal(SIGPIPE, SIG_IGN);
    /* The environment's proxies would route the tests' requests elsewhere. */
    clear_proxy_env();
    if (uv_loop_init(loop) < 0)
        return 1;
    test_retry_after();
    test_invalid();
    test_basic();
    test_methods();
    test_errors();
    test_slow_dns();
    test_reuse();
    test_concurrent();
    test_cancel();
    test_proxy();
#ifdef HAVE_OPENSSL
    test_tls();
#else
    printf("# no OpenSSL headers: TLS server tests skipped\n");
#endif
    IS_INT(reentrant_calls, 0, "no done callback ran inside httpc_send");
    IS_INT(uv_loop_close(loop), 0, "every handle closed");
    httpc_global_cleanup();
    printf("# whole suite: %llu ms\n", (unsigned long long)((uv_hrtime() - t0) / 1000000));
    return tap_done();
}
