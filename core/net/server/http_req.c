/* core/net/server/http_req: the request adapter over http-parser 2.9. The parser is paused in
 * on_headers_complete and on_message_complete, so each feed stops at a HEADERS or REQUEST event
 * and the caller decides when the next bytes are parsed (pipelining, 100-continue, 413).
 *
 * While headers arrive, the URL, names and values are appended to one string buffer of the
 * parser (reused across requests); when they are complete, the request is built in a single
 * allocation: the struct, the header array and a copy of the strings. The body goes to a
 * buffer of its own that the request takes over.
 *
 * Header bytes are counted here, not through http_parser_set_max_header_size(), which is a
 * process-wide setting: a feed is cut at max_header_bytes + 1 while headers are incomplete,
 * so an endless header costs at most the limit. */
#include "net/server/http_req.h"

#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <remora/error.h>

#include "util/buf.h"

/* Where header strings go: one entry per header, offsets into the string buffer. */
struct hent {
    size_t name_off;
    size_t name_len;
    size_t val_off;
    size_t val_len;
};

/* A joined value of a repeated header, computed on the first lookup. */
struct join {
    struct join *next;
    const char *name;
    char *value;
};

/* A request as handed out: the public struct first. */
struct req_priv {
    struct http_request r;
    struct join *joins;
};

enum elem {
    ELEM_NONE,
    ELEM_URL,
    ELEM_FIELD,
    ELEM_VALUE,
};

enum pstate {
    PS_IDLE,  /* between requests */
    PS_HEAD,  /* a request started; its headers are incomplete */
    PS_BODY,  /* headers done (HEADERS was returned); the body is arriving */
    PS_READY, /* complete; waiting for http_reqp_take() */
    PS_ERROR,
};

struct http_reqp {
    http_parser parser;
    struct http_reqp_limits lim;
    enum pstate state;
    enum http_reqp_event paused_for;
    size_t head_bytes;
    struct dbuf strs;
    struct hent *ents;
    uint32_t nents;
    uint32_t cap_ents;
    enum elem cur;
    size_t url_off;
    size_t url_len;
    int64_t content_length;
    struct req_priv *req;
    struct dbuf body;
    int err_status;
    const char *err_reason;
};

#define DEFAULT_MAX_HEADER ((size_t)64 << 10)
#define DEFAULT_MAX_BODY   ((size_t)64 << 20)

static int fail(struct http_reqp *p, int status, const char *reason)
{
    if (p->err_status == 0) {
        p->err_status = status;
        p->err_reason = reason;
    }
    p->state = PS_ERROR;
    return -1;
}

/* ---- building ------------------------------------------------------------------------------ */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Ends the string being appended: a NUL after it, trailing blanks of a value dropped. */
static int finish_elem(struct http_reqp *p)
{
    switch (p->cur) {
    case ELEM_NONE: return 0;
    case ELEM_URL: break;
    case ELEM_FIELD:
        /* A name without a value callback: give it an empty value. */
        if (dbuf_append(&p->strs, "", 1) < 0)
            return -1;
        p->ents[p->nents - 1].val_off = p->strs.len;
        p->ents[p->nents - 1].val_len = 0;
        break;
    case ELEM_VALUE: {
        struct hent *e = &p->ents[p->nents - 1];
        while (e->val_len > 0 && is_ows((char)p->strs.data[e->val_off + e->val_len - 1]))
            e->val_len--;
        p->strs.len = e->val_off + e->val_len;
        break;
    }
    }
    p->cur = ELEM_NONE;
    return dbuf_append(&p->strs, "", 1);
}

static int on_message_begin(http_parser *hp)
{
    struct http_reqp *p = hp->data;
    p->state = PS_HEAD;
    p->strs.len = 0;
    p->nents = 0;
    p->cur = ELEM_NONE;
    p->url_off = p->url_len = 0;
    p->content_length = -1;
    dbuf_release(&p->body);
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct http_reqp *p = hp->data;
    if (p->cur != ELEM_URL) {
        if (finish_elem(p) < 0)
            return fail(p, 431, "header_too_large");
        p->cur = ELEM_URL;
        p->url_off = p->strs.len;
    }
    if (dbuf_append(&p->strs, at, len) < 0)
        return fail(p, 431, "header_too_large");
    p->url_len += len;
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct http_reqp *p = hp->data;
    if (p->state != PS_HEAD)
        return 0; /* trailers of a chunked body: bounded by http-parser, not kept */
    if (p->cur != ELEM_FIELD) {
        if (finish_elem(p) < 0)
            return fail(p, 431, "header_too_large");
        if (p->nents == p->cap_ents) {
            uint32_t cap = p->cap_ents ? p->cap_ents * 2 : 16;
            struct hent *e = realloc(p->ents, cap * sizeof *e);
            if (e == NULL)
                return fail(p, 503, "no_memory");
            p->ents = e;
            p->cap_ents = cap;
        }
        struct hent *e = &p->ents[p->nents++];
        e->name_off = p->strs.len;
        e->name_len = 0;
        e->val_off = e->val_len = 0;
        p->cur = ELEM_FIELD;
    }
    size_t at_off = p->strs.len;
    if (dbuf_append(&p->strs, at, len) < 0)
        return fail(p, 431, "header_too_large");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p->strs.data[at_off + i];
        if (c >= 'A' && c <= 'Z')
            p->strs.data[at_off + i] = (unsigned char)(c + ('a' - 'A'));
    }
    p->ents[p->nents - 1].name_len += len;
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct http_reqp *p = hp->data;
    if (p->state != PS_HEAD)
        return 0;
    if (p->cur != ELEM_VALUE) {
        if (p->cur != ELEM_FIELD)
            return fail(p, 400, "malformed"); /* http-parser never does this */
        if (dbuf_append(&p->strs, "", 1) < 0)
            return fail(p, 431, "header_too_large");
        p->ents[p->nents - 1].val_off = p->strs.len;
        p->cur = ELEM_VALUE;
    }
    if (dbuf_append(&p->strs, at, len) < 0)
        return fail(p, 431, "header_too_large");
    p->ents[p->nents - 1].val_len += len;
    return 0;
}

static const char *ent_name(const struct http_reqp *p, const struct hent *e)
{
    return (const char *)p->strs.data + e->name_off;
}

static const char *ent_value(const struct http_reqp *p, const struct hent *e)
{
    return (const char *)p->strs.data + e->val_off;
}

/* Transfer-Encoding: exactly one "chunked" is what http-parser frames; other codings are not
 * implemented here, and a request whose framing we cannot trust is refused. */
static int transfer_encoding_ok(const struct http_reqp *p)
{
    int seen = 0;
    for (uint32_t i = 0; i < p->nents; i++) {
        const struct hent *e = &p->ents[i];
        if (strcmp(ent_name(p, e), "transfer-encoding") != 0)
            continue;
        const char *v = ent_value(p, e);
        if (seen++ > 0 || strcasecmp(v, "chunked") != 0)
            return 0;
    }
    return 1;
}

static int prefix_ci(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && strncasecmp(s, prefix, k) == 0;
}

/* Splits the request target into path and query: origin form as is, absolute form
 * ("http://host/p?q") by its path, a fragment dropped. */
static void split_target(const char *u, size_t n, const char **path, size_t *path_len,
                         const char **query, size_t *query_len)
{
    const char *hash = memchr(u, '#', n);
    if (hash != NULL)
        n = (size_t)(hash - u);
    if (n > 0 && u[0] != '/') {
        size_t skip = prefix_ci(u, n, "http://") ? 7 : prefix_ci(u, n, "https://") ? 8 : 0;
        if (skip > 0) {
            size_t i = skip;
            while (i < n && u[i] != '/' && u[i] != '?')
                i++;
            u += i;
            n -= i;
        }
    }
    const char *q = memchr(u, '?', n);
    *path = u;
    *path_len = q != NULL ? (size_t)(q - u) : n;
    *query = q != NULL ? q + 1 : "";
    *query_len = q != NULL ? n - *path_len - 1 : 0;
    if (*path_len == 0) {
        *path = "/";
        *path_len = 1;
    }
}

static char *put(char **cursor, const char *s, size_t n)
{
    char *dst = *cursor;
    memcpy(dst, s, n);
    dst[n] = '\0';
    *cursor += n + 1;
    return dst;
}

/* Builds the request from the strings gathered so far, in one allocation. */
static struct req_priv *build_request(struct http_reqp *p)
{
    const char *method = http_method_str((enum http_method)p->parser.method);
    const char *url = (const char *)p->strs.data + p->url_off;
    const char *path, *query;
    size_t path_len, query_len, method_len = strlen(method);
    split_target(url, p->url_len, &path, &path_len, &query, &query_len);

    size_t head = (sizeof(struct req_priv) + 15) & ~(size_t)15;
    size_t size = head + (size_t)p->nents * sizeof(struct http_header) + method_len + 1 + path_len +
                  1 + query_len + 1 + p->strs.len;
    struct req_priv *rp = malloc(size);
    if (rp == NULL)
        return NULL;
    memset(rp, 0, sizeof *rp);
    struct http_request *r = &rp->r;
    r->headers = (struct http_header *)(void *)((char *)rp + head);
    char *cursor = (char *)(r->headers + p->nents);
    r->method = put(&cursor, method, method_len);
    r->path = put(&cursor, path, path_len);
    r->query = put(&cursor, query, query_len);
    char *strs = cursor;
    if (p->strs.len > 0)
        memcpy(strs, p->strs.data, p->strs.len);
    for (uint32_t i = 0; i < p->nents; i++) {
        r->headers[i].name = strs + p->ents[i].name_off;
        r->headers[i].value = strs + p->ents[i].val_off;
    }
    r->nheaders = p->nents;
    r->keep_alive = http_should_keep_alive(&p->parser) != 0;
    const char *expect = http_request_header(r, "expect");
    /* RFC 9110 section 10.1.1: an HTTP/1.0 client's expectation is ignored. */
    r->expect_continue = expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
                         p->parser.http_major == 1 && p->parser.http_minor >= 1;
    return rp;
}

static int on_headers_complete(http_parser *hp)
{
    struct http_reqp *p = hp->data;
    if (p->state != PS_HEAD)
        return fail(p, 400, "malformed");
    if (finish_elem(p) < 0)
        return fail(p, 431, "header_too_large");
    if (hp->http_major == 0)
        return fail(p, 400, "malformed"); /* HTTP/0.9: we could not answer it */
    if (hp->http_major > 1)
        return fail(p, 505, "version_not_supported");
    if (!transfer_encoding_ok(p))
        return fail(p, 501, "unsupported_transfer_encoding");
    p->content_length = -1;
    if ((hp->flags & F_CHUNKED) == 0 && (hp->flags & F_CONTENTLENGTH) != 0) {
        if (hp->content_length > (uint64_t)p->lim.max_body_bytes)
            return fail(p, 413, "body_too_large");
        p->content_length = (int64_t)hp->content_length;
    }
    p->req = build_request(p);
    if (p->req == NULL)
        return fail(p, 503, "no_memory");
    p->state = PS_BODY;
    p->paused_for = HTTP_REQP_HEADERS;
    http_parser_pause(hp, 1);
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct http_reqp *p = hp->data;
    if (p->state != PS_BODY)
        return fail(p, 400, "malformed");
    if (len > p->lim.max_body_bytes - p->body.len)
        return fail(p, 413, "body_too_large");
    /* A declared length up to 64 KiB is reserved at once; longer bodies grow as they come. */
    if (p->body.cap == 0 && p->content_length > 0 && p->content_length <= 65536 &&
        dbuf_reserve(&p->body, (size_t)p->content_length + 1) < 0)
        return fail(p, 503, "no_memory");
    if (dbuf_append(&p->body, at, len) < 0)
        return fail(p, 503, "no_memory");
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct http_reqp *p = hp->data;
    if (p->state != PS_BODY || p->req == NULL)
        return fail(p, 400, "malformed");
    struct http_request *r = &p->req->r;
    if (p->body.len > 0) {
        if (dbuf_append(&p->body, "", 1) < 0)
            return fail(p, 503, "no_memory");
        r->body = p->body.data;
        r->body_len = p->body.len - 1;
        dbuf_init(&p->body, 0);
    }
    /* An upgrade (or CONNECT) is not followed: the connection ends after the answer. */
    r->keep_alive = http_should_keep_alive(hp) != 0 && !hp->upgrade;
    p->state = PS_READY;
    p->paused_for = HTTP_REQP_REQUEST;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the parser ------------------------------------------------------------------------------ */

struct http_reqp *http_reqp_new(const struct http_reqp_limits *limits)
{
    struct http_reqp *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->lim.max_header_bytes = DEFAULT_MAX_HEADER;
    p->lim.max_body_bytes = DEFAULT_MAX_BODY;
    if (limits != NULL && limits->max_header_bytes > 0)
        p->lim.max_header_bytes = limits->max_header_bytes;
    if (limits != NULL && limits->max_body_bytes > 0)
        p->lim.max_body_bytes = limits->max_body_bytes;
    /* Strings take at most one byte per header byte plus a NUL per element. */
    size_t strs_limit =
        p->lim.max_header_bytes < SIZE_MAX / 2 - 64 ? p->lim.max_header_bytes * 2 + 64 : SIZE_MAX;
    dbuf_init(&p->strs, strs_limit);
    dbuf_init(&p->body, 0);
    http_parser_init(&p->parser, HTTP_REQUEST);
    p->parser.data = p;
    p->state = PS_IDLE;
    p->content_length = -1;
    return p;
}

void http_reqp_free(struct http_reqp *p)
{
    if (p == NULL)
        return;
    if (p->req != NULL)
        http_request_free(&p->req->r);
    dbuf_release(&p->strs);
    dbuf_release(&p->body);
    free(p->ents);
    free(p);
}

static int map_errno(enum http_errno e, const char **reason)
{
    switch (e) {
    case HPE_HEADER_OVERFLOW: *reason = "header_too_large"; return 431;
    case HPE_INVALID_TRANSFER_ENCODING: *reason = "unsupported_transfer_encoding"; return 501;
    case HPE_OK:
    case HPE_CB_message_begin:
    case HPE_CB_url:
    case HPE_CB_header_field:
    case HPE_CB_header_value:
    case HPE_CB_headers_complete:
    case HPE_CB_body:
    case HPE_CB_message_complete:
    case HPE_CB_status:
    case HPE_CB_chunk_header:
    case HPE_CB_chunk_complete:
    case HPE_INVALID_EOF_STATE:
    case HPE_CLOSED_CONNECTION:
    case HPE_INVALID_VERSION:
    case HPE_INVALID_STATUS:
    case HPE_INVALID_METHOD:
    case HPE_INVALID_URL:
    case HPE_INVALID_HOST:
    case HPE_INVALID_PORT:
    case HPE_INVALID_PATH:
    case HPE_INVALID_QUERY_STRING:
    case HPE_INVALID_FRAGMENT:
    case HPE_LF_EXPECTED:
    case HPE_INVALID_HEADER_TOKEN:
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_UNEXPECTED_CONTENT_LENGTH:
    case HPE_INVALID_CHUNK_SIZE:
    case HPE_INVALID_CONSTANT:
    case HPE_INVALID_INTERNAL_STATE:
    case HPE_STRICT:
    case HPE_PAUSED:
    case HPE_UNKNOWN: break;
    }
    *reason = "malformed";
    return 400;
}

enum http_reqp_event http_reqp_feed(struct http_reqp *p, const char *data, size_t len, size_t *used)
{
    *used = 0;
    switch (p->state) {
    case PS_ERROR: return HTTP_REQP_ERROR;
    case PS_READY: return HTTP_REQP_REQUEST; /* not taken yet */
    case PS_IDLE:
    case PS_HEAD:
    case PS_BODY: break;
    }
    if (len == 0)
        return HTTP_REQP_MORE; /* http-parser reads a zero length as the end of the stream */
    size_t n = len;
    int heading = p->state != PS_BODY;
    if (heading && n > p->lim.max_header_bytes - p->head_bytes + 1)
        n = p->lim.max_header_bytes - p->head_bytes + 1;
    p->paused_for = HTTP_REQP_MORE;
    http_parser_pause(&p->parser, 0);
    size_t done = http_parser_execute(&p->parser, &settings, data, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&p->parser);
    *used = done;
    if (heading)
        p->head_bytes += done;
    if (e == HPE_PAUSED && p->state != PS_ERROR) {
        if (p->paused_for == HTTP_REQP_HEADERS) {
            /* The LF that ends the headers is consumed with the next feed, but it counts. */
            if (p->head_bytes + 1 > p->lim.max_header_bytes) {
                fail(p, 431, "header_too_large");
                return HTTP_REQP_ERROR;
            }
            return HTTP_REQP_HEADERS;
        }
        p->head_bytes = 0;
        return HTTP_REQP_REQUEST;
    }
    if (e != HPE_OK || p->state == PS_ERROR) {
        if (p->err_status == 0)
            p->err_status = map_errno(e, &p->err_reason);
        p->state = PS_ERROR;
        return HTTP_REQP_ERROR;
    }
    if (heading && p->head_bytes > p->lim.max_header_bytes) {
        fail(p, 431, "header_too_large");
        return HTTP_REQP_ERROR;
    }
    return HTTP_REQP_MORE;
}

int64_t http_reqp_content_length(const struct http_reqp *p)
{
    return p->state == PS_BODY || p->state == PS_READY ? p->content_length : -1;
}

struct http_request *http_reqp_peek(struct http_reqp *p)
{
    if ((p->state == PS_BODY || p->state == PS_READY) && p->req != NULL)
        return &p->req->r;
    return NULL;
}

struct http_request *http_reqp_take(struct http_reqp *p)
{
    if (p->state != PS_READY || p->req == NULL)
        return NULL;
    struct http_request *r = &p->req->r;
    p->req = NULL;
    p->state = PS_IDLE;
    return r;
}

int http_reqp_error_status(const struct http_reqp *p)
{
    return p->state == PS_ERROR ? p->err_status : 0;
}

const char *http_reqp_error_reason(const struct http_reqp *p)
{
    return p->state == PS_ERROR ? p->err_reason : NULL;
}

int http_reqp_in_request(const struct http_reqp *p)
{
    return p->state == PS_HEAD || p->state == PS_BODY;
}

/* ---- requests ---------------------------------------------------------------------------- */

void http_request_free(struct http_request *r)
{
    if (r == NULL)
        return;
    struct req_priv *rp = (struct req_priv *)r;
    for (struct join *j = rp->joins; j != NULL;) {
        struct join *next = j->next;
        free(j->value);
        free(j);
        j = next;
    }
    free(r->body);
    free(rp);
}

const char *http_request_header(struct http_request *r, const char *name)
{
    if (r == NULL || name == NULL)
        return NULL;
    uint32_t first = 0;
    size_t count = 0, total = 0;
    for (uint32_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) != 0)
            continue;
        if (count++ == 0)
            first = i;
        total += strlen(r->headers[i].value) + 2;
    }
    if (count == 0)
        return NULL;
    if (count == 1)
        return r->headers[first].value;
    struct req_priv *rp = (struct req_priv *)r;
    for (struct join *j = rp->joins; j != NULL; j = j->next)
        if (strcasecmp(j->name, name) == 0)
            return j->value;
    struct join *j = malloc(sizeof *j);
    char *v = malloc(total - 1);
    if (j == NULL || v == NULL) {
        free(j);
        free(v);
        return r->headers[first].value; /* out of memory: better than none */
    }
    size_t off = 0;
    for (uint32_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) != 0)
            continue;
        if (off > 0) {
            memcpy(v + off, ", ", 2);
            off += 2;
        }
        size_t n = strlen(r->headers[i].value);
        memcpy(v + off, r->headers[i].value, n);
        off += n;
    }
    v[off] = '\0';
    j->name = r->headers[first].name;
    j->value = v;
    j->next = rp->joins;
    rp->joins = j;
    return v;
}
