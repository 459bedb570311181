/* The request adapter without sockets: events, pipelining, every split of the input, chunked
 * bodies, limits, malformed requests and HTTP/1.0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/error.h>

#include "net/server/http_req.h"
#include "tap.h"

#define MAX_REQS 16

struct result {
    char reqs[MAX_REQS][2048];
    int n;
    int headers;
    int error_status;
    const char *error_reason;
};

static void summarize(struct http_request *r, char *out, size_t outlen)
{
    size_t off = (size_t)snprintf(out, outlen, "%s %s?%s|", r->method, r->path, r->query);
    for (uint32_t i = 0; i < r->nheaders && off < outlen; i++)
        off += (size_t)snprintf(out + off, outlen - off, "%s=%s;", r->headers[i].name,
                                r->headers[i].value);
    if (off < outlen)
        snprintf(out + off, outlen - off, "|ka=%d|%s", r->keep_alive,
                 r->body != NULL ? (const char *)r->body : "(null)");
}

/* Feeds data in slices of step bytes (0: all at once), acting on events as the server does. */
static void drive_split(const struct http_reqp_limits *lim, const char *data, size_t len,
                        const size_t *cuts, size_t ncuts, struct result *res)
{
    memset(res, 0, sizeof *res);
    struct http_reqp *p = http_reqp_new(lim);
    size_t start = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        size_t pos = start;
        while (pos < end) {
            size_t used = 99;
            enum http_reqp_event ev = http_reqp_feed(p, data + pos, end - pos, &used);
            pos += used;
            if (ev == HTTP_REQP_MORE)
                break;
            if (ev == HTTP_REQP_HEADERS) {
                res->headers++;
                continue;
            }
            if (ev == HTTP_REQP_ERROR) {
                res->error_status = http_reqp_error_status(p);
                res->error_reason = http_reqp_error_reason(p);
                http_reqp_free(p);
                return;
            }
            struct http_request *r = http_reqp_take(p);
            if (res->n < MAX_REQS)
                summarize(r, res->reqs[res->n++], sizeof res->reqs[0]);
            http_request_free(r);
        }
        start = end;
    }
    http_reqp_free(p);
}

static void drive(const struct http_reqp_limits *lim, const char *data, size_t step,
                  struct result *res)
{
    size_t len = strlen(data);
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    size_t n = 0;
    if (step > 0)
        for (size_t at = step; at < len; at += step)
            cuts[n++] = at;
    drive_split(lim, data, len, cuts, n, res);
    free(cuts);
}

static int same(const struct result *a, const struct result *b)
{
    if (a->n != b->n || a->error_status != b->error_status || a->headers != b->headers)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->reqs[i], b->reqs[i]) != 0)
            return 0;
    return 1;
}

static const char pipelined[] =
    "GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Dup: one\r\nx-dup: two\r\n\r\n"
    "POST /v1/write HTTP/1.1\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
    "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nTrailer-X: t\r\n\r\n";

static void basics(void)
{
    struct http_reqp *p = http_reqp_new(NULL);
    const char *req = "GET /path/%7Euser?q=a%20b&z HTTP/1.1\r\nHost: example\r\n"
                      "X-Spaced:   padded value  \t\r\nX-Empty:\r\nExpect: 100-Continue\r\n\r\n";
    size_t len = strlen(req), used;
    OK(!http_reqp_in_request(p), "not in a request before bytes");
    IS_INT(http_reqp_feed(p, req, 2, &used), HTTP_REQP_MORE, "two bytes: more");
    IS_UINT(used, 2, "both used");
    OK(http_reqp_in_request(p), "in a request after its first byte");
    OK(http_reqp_peek(p) == NULL, "nothing to peek before the headers");
    IS_INT(http_reqp_feed(p, req + 2, len - 2, &used), HTTP_REQP_HEADERS, "headers");
    OK(used < len - 2, "stops at the headers");
    struct http_request *r = http_reqp_peek(p);
    IS_STR(r->method, "GET", "method");
    IS_STR(r->path, "/path/%7Euser", "percent-encoding kept, query cut");
    IS_STR(r->query, "q=a%20b&z", "query");
    IS_INT(http_reqp_content_length(p), -1, "no content length");
    IS_STR(http_request_header(r, "X-SPACED"), "padded value", "blanks around a value trimmed");
    IS_STR(http_request_header(r, "x-empty"), "", "an empty value");
    IS_STR(r->headers[0].name, "host", "names are lowercased");
    OK(r->expect_continue, "Expect: 100-continue");
    OK(http_request_header(r, "absent") == NULL, "absent header is NULL");
    OK(http_reqp_take(p) == NULL, "nothing to take before REQUEST");
    size_t off = 2 + used;
    IS_INT(http_reqp_feed(p, req + off, len - off, &used), HTTP_REQP_REQUEST, "request");
    IS_UINT(off + used, len, "every byte used");
    IS_INT(http_reqp_feed(p, "GET", 3, &used), HTTP_REQP_REQUEST, "untaken request stays");
    IS_UINT(used, 0, "and uses nothing");
    r = http_reqp_take(p);
    OK(r != NULL && r->keep_alive, "HTTP/1.1 keeps alive");
    OK(r->body == NULL && r->body_len == 0, "no body");
    OK(!http_reqp_in_request(p), "not in a request once taken");
    http_request_free(r);
    http_reqp_free(p);
    http_reqp_free(NULL);
    http_request_free(NULL);

    p = http_reqp_new(NULL);
    req = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    IS_INT(http_reqp_feed(p, req, strlen(req), &used), HTTP_REQP_HEADERS, "HTTP/1.0 headers");
    OK(!http_reqp_peek(p)->expect_continue, "an HTTP/1.0 client's Expect is ignored");
    IS_INT(http_reqp_content_length(p), 1, "its content length");
    http_reqp_free(p);
}

static void pipelining(void)
{
    struct result whole, split;
    drive(NULL, pipelined, 0, &whole);
    IS_INT(whole.n, 3, "three pipelined requests");
    IS_INT(whole.headers, 3, "three HEADERS events");
    IS_INT(whole.error_status, 0, "no error");
    IS_STR(whole.reqs[0], "GET /a?x=1|host=h;x-dup=one;x-dup=two;|ka=1|(null)", "first");
    IS_STR(whole.reqs[1], "POST /v1/write?|content-length=5;content-type=text/plain;|ka=1|hello",
           "second, with a body");
    IS_STR(whole.reqs[2], "POST /c?|transfer-encoding=chunked;|ka=1|abcdefg",
           "third, chunked, trailer dropped");

    drive(NULL, pipelined, 1, &split);
    OK(same(&whole, &split), "byte by byte gives the same requests");
    size_t len = strlen(pipelined);
    int bad = 0;
    for (size_t i = 1; i < len; i++) {
        drive_split(NULL, pipelined, len, &i, 1, &split);
        bad += !same(&whole, &split);
        for (size_t j = i + 1; j < len; j += 7) {
            size_t cuts[2] = {i, j};
            drive_split(NULL, pipelined, len, cuts, 2, &split);
            bad += !same(&whole, &split);
        }
    }
    IS_INT(bad, 0, "every split in two and three gives the same requests");

    /* Leading blank lines between requests are tolerated, as RFC 9112 allows. */
    drive(NULL, "\r\nGET / HTTP/1.1\r\n\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", 0, &whole);
    IS_INT(whole.n, 2, "blank lines before requests");
}

static void joined(void)
{
    struct http_reqp *p = http_reqp_new(NULL);
    const char *req = "GET / HTTP/1.1\r\nAccept: a\r\nX: 1\r\naccept: b\r\nACCEPT: c\r\n\r\n";
    size_t used, off = 0, len = strlen(req);
    enum http_reqp_event ev;
    while ((ev = http_reqp_feed(p, req + off, len - off, &used)) != HTTP_REQP_REQUEST)
        off += used;
    struct http_request *r = http_reqp_take(p);
    const char *v = http_request_header(r, "Accept");
    IS_STR(v, "a, b, c", "repeated headers joined with \", \"");
    OK(http_request_header(r, "accept") == v, "joined once, then reused");
    IS_STR(http_request_header(r, "x"), "1", "single header");
    http_request_free(r);
    http_reqp_free(p);
}

static void versions(void)
{
    struct result res;
    drive(NULL, "GET / HTTP/1.0\r\n\r\n", 0, &res);
    IS_STR(res.reqs[0], "GET /?||ka=0|(null)", "HTTP/1.0 closes");
    drive(NULL, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, &res);
    IS_STR(res.reqs[0], "GET /?|connection=keep-alive;|ka=1|(null)",
           "HTTP/1.0 with keep-alive stays");
    drive(NULL, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0, &res);
    IS_STR(res.reqs[0], "GET /?|connection=close;|ka=0|(null)", "HTTP/1.1 with close closes");
    drive(NULL, "GET http://example.com:8080/a%20b/c?x=1#frag HTTP/1.1\r\n\r\n", 0, &res);
    IS_STR(res.reqs[0], "GET /a%20b/c?x=1||ka=1|(null)", "absolute form: its path");
    drive(NULL, "GET HTTPS://example.com HTTP/1.1\r\n\r\n", 0, &res);
    IS_STR(res.reqs[0], "GET /?||ka=1|(null)", "absolute form without a path is /");
    drive(NULL, "OPTIONS * HTTP/1.1\r\n\r\n", 0, &res);
    IS_STR(res.reqs[0], "OPTIONS *?||ka=1|(null)", "asterisk form");
    drive(NULL, "GET / HTTP/2.0\r\n\r\n", 0, &res);
    IS_INT(res.error_status, 505, "HTTP/2.0 framing is 505");
    drive(NULL, "GET /\r\n\r\n", 0, &res);
    IS_INT(res.error_status, 400, "HTTP/0.9 is 400");
    drive(NULL, "CONNECT host:443 HTTP/1.1\r\n\r\n", 0, &res);
    IS_STR(res.reqs[0], "CONNECT host:443?||ka=0|(null)", "CONNECT is answered, then closed");
}

/* "GET / HTTP/1.1\r\nX: aaaa...\r\n\r\n" with a header block of exactly total bytes. */
static char *request_of(size_t total)
{
    const char *head = "GET / HTTP/1.1\r\nX: ";
    size_t fixed = strlen(head) + 4;
    char *s = malloc(total + 1);
    strcpy(s, head);
    memset(s + strlen(head), 'a', total - fixed);
    memcpy(s + total - 4, "\r\n\r\n", 5);
    return s;
}

static void limits(void)
{
    struct http_reqp_limits lim = {.max_header_bytes = 256, .max_body_bytes = 1000};
    struct result res;
    char *exact = request_of(256), *over = request_of(257);
    drive(&lim, exact, 0, &res);
    IS_INT(res.n, 1, "a header block of exactly the limit passes");
    drive(&lim, exact, 1, &res);
    IS_INT(res.n, 1, "also byte by byte");
    drive(&lim, over, 0, &res);
    IS_INT(res.error_status, 431, "one byte over is 431");
    IS_STR(res.error_reason, "header_too_large", "reason header_too_large");
    drive(&lim, over, 1, &res);
    IS_INT(res.error_status, 431, "also byte by byte");
    free(exact);
    free(over);

    /* An endless header is cut at the limit, not parsed to its end. */
    struct http_reqp *p = http_reqp_new(&lim);
    char big[4096];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    size_t used;
    IS_INT(http_reqp_feed(p, big, sizeof big, &used), HTTP_REQP_ERROR, "endless header");
    OK(used <= 257, "cut within the limit");
    IS_INT(http_reqp_error_status(p), 431, "as 431");
    IS_INT(http_reqp_feed(p, big, sizeof big, &used), HTTP_REQP_ERROR, "errors stick");
    IS_UINT(used, 0, "nothing used after an error");
    http_reqp_free(p);

    /* Blank lines forever are also header bytes. */
    char crlf[600];
    for (size_t i = 0; i < sizeof crlf; i += 2)
        memcpy(crlf + i, "\r\n", 2);
    p = http_reqp_new(&lim);
    IS_INT(http_reqp_feed(p, crlf, sizeof crlf, &used), HTTP_REQP_ERROR,
           "endless blank lines are 431");
    http_reqp_free(p);

    /* A declared body over the limit fails at HEADERS time, before any body byte. */
    p = http_reqp_new(&lim);
    const char *decl = "POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n";
    IS_INT(http_reqp_feed(p, decl, strlen(decl), &used), HTTP_REQP_ERROR,
           "Content-Length over max_body");
    IS_INT(http_reqp_error_status(p), 413, "is 413");
    IS_STR(http_reqp_error_reason(p), "body_too_large", "reason body_too_large");
    http_reqp_free(p);
    drive(&lim, "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 0, &res);
    IS_INT(res.error_status, 400, "an overflowing Content-Length is 400");

    p = http_reqp_new(&lim);
    decl = "POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\n";
    IS_INT(http_reqp_feed(p, decl, strlen(decl), &used), HTTP_REQP_HEADERS,
           "Content-Length at max_body");
    IS_INT(http_reqp_content_length(p), 1000, "content length is told");
    http_reqp_free(p);

    /* Chunked bodies are counted as they come. */
    char chunked[4096];
    size_t off = (size_t)snprintf(chunked, sizeof chunked,
                                  "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 10; i++) {
        off += (size_t)snprintf(chunked + off, sizeof chunked - off, "64\r\n");
        memset(chunked + off, 'b', 100);
        off += 100;
        off += (size_t)snprintf(chunked + off, sizeof chunked - off, "\r\n");
    }
    size_t at_limit = off;
    snprintf(chunked + off, sizeof chunked - off, "0\r\n\r\n");
    drive(&lim, chunked, 0, &res);
    IS_INT(res.n, 1, "chunked body of exactly max_body");
    IS_UINT(strlen(res.reqs[0]), strlen("POST /?|transfer-encoding=chunked;|ka=1|") + 1000,
            "all of it");
    snprintf(chunked + at_limit, sizeof chunked - at_limit, "1\r\nc\r\n0\r\n\r\n");
    drive(&lim, chunked, 0, &res);
    IS_INT(res.error_status, 413, "one chunked byte more is 413");
    drive(&lim, chunked, 3, &res);
    IS_INT(res.error_status, 413, "also in slices");
}

static void malformed(void)
{
    static const struct {
        const char *req;
        int status;
        const char *name;
    } cases[] = {
        {"GARBAGE\r\n\r\n", 400, "not a request line"},
        {"\x01\x02\x03\x04", 400, "binary"},
        {"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400, "header without a colon"},
        {"GET / HTTP/1.1\r\nX\x01Y: v\r\n\r\n", 400, "control byte in a name"},
        {"GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400, "control byte in a value"},
        {"GET /a b HTTP/1.1\r\n\r\n", 400, "space in the target"},
        {"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, "Content-Length not a number"},
        {"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400,
         "two Content-Length headers"},
        {"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
         "Content-Length with chunked"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "gzip transfer coding"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "gzip then chunked"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad chunk size"},
        {"GET / HTTP/1.1\nHost: h\r\n\r\n", 0, "bare LF line ends are accepted"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct result res;
        drive(NULL, cases[i].req, 0, &res);
        IS_INT(res.error_status, cases[i].status, cases[i].name);
        if (cases[i].status == 400)
            IS_STR(res.error_reason, "malformed", "reason malformed");
    }
}

static void big_body(void)
{
    size_t n = 100000;
    char *req = malloc(n + 100);
    int h = snprintf(req, 100, "PUT /big HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", n);
    for (size_t i = 0; i < n; i++)
        req[h + (int)i] = (char)('a' + i % 26);
    req[(size_t)h + n] = '\0';
    struct http_reqp *p = http_reqp_new(NULL);
    size_t off = 0, total = (size_t)h + n, used;
    struct http_request *r = NULL;
    while (off < total && r == NULL) {
        size_t step = total - off < 1000 ? total - off : 1000;
        size_t pos = 0;
        while (pos < step) {
            enum http_reqp_event ev = http_reqp_feed(p, req + off + pos, step - pos, &used);
            pos += used;
            if (ev == HTTP_REQP_REQUEST) {
                r = http_reqp_take(p);
                break;
            }
            if (ev == HTTP_REQP_MORE || ev == HTTP_REQP_ERROR)
                break;
        }
        off += pos;
    }
    OK(r != NULL && r->body_len == n, "a 100 kB body in 1 kB slices");
    OK(r != NULL && memcmp(r->body, req + h, n) == 0 && r->body[n] == '\0',
       "bytes intact, NUL-ended");
    http_request_free(r);
    http_reqp_free(p);
    free(req);
}

int main(void)
{
    basics();
    pipelining();
    joined();
    versions();
    limits();
    malformed();
    big_body();
    return tap_done();
}
