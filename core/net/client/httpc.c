/* core/net/client: libcurl's multi interface on the libuv loop. See httpc.h.
 *
 * How the two meet: curl says which sockets to watch (socket_cb) and when to call it back
 * (timer_cb). We watch each socket with a uv_poll_t and keep one uv_timer_t; when either fires
 * we hand the event to curl_multi_socket_action() and then collect finished transfers with
 * curl_multi_info_read() (drain). User callbacks run only from drain, so never from inside
 * httpc_send() nor from inside a curl callback, where curl forbids calling it back. */
#include "net/client/httpc.h"

#include "net/client/curl_api.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <remora/error.h>

#ifndef REMORA_VERSION
#define REMORA_VERSION "0.0.0"
#endif

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_TIMEOUT_MS         30000
#define DEFAULT_MAX_RESPONSE_BYTES ((size_t)16 << 20)
/* Keeps body_cap = max + 1 and its doubling clear of SIZE_MAX. */
#define MAX_RESPONSE_BYTES_CAP (SIZE_MAX / 4)
/* The first allocation for a body whose length the server did not announce. */
#define BODY_INITIAL_BYTES 4096
/* A longer Content-Type is not a media type we act on; it is not reported. */
#define MAX_CONTENT_TYPE_BYTES 1024
#define MAX_METHOD_BYTES       32
/* RFC 9111 section 1.2.2: a delta-seconds too large to represent counts as 2^31 seconds. */
#define RETRY_AFTER_MAX_S 2147483648LL

/* One socket curl asked us to watch. Freed only in its close callback, after uv_close(). */
struct sock {
    uv_poll_t poll;
    struct httpc *c;
    curl_socket_t fd;
    struct sock *prev, *next; /* c->socks: watched and not closing */
};

struct httpc_xfer {
    struct httpc *c;
    CURL *easy;
    struct curl_slist *headers;
    httpc_done done;
    void *arg;
    struct httpc_xfer *prev, *next; /* c->xfers: in flight */
    uint64_t start_ns;
    size_t max_body_bytes;
    char *body;
    size_t body_len;
    size_t body_cap;
    char *content_type;
    int64_t retry_after_ms;
    int headers_done; /* the blank line ending the current response's headers was seen */
    int too_big;      /* the body went over max_body_bytes */
    int no_memory;    /* the body could not be stored */
    int completing;   /* done is running: cancelling is a no-op */
    char errbuf[CURL_ERROR_SIZE];
};

struct httpc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char *ca_file;
    char *user_agent;
    int insecure;
    uint64_t connect_timeout_ms;
    struct httpc_xfer *xfers;
    struct sock *socks;
    uint32_t active;
    uint32_t open_handles; /* uv handles whose close callback has not run yet */
    int dispatching;       /* drain is running: teardown waits for it */
    int freeing;           /* httpc_free was called */
    int torn_down;         /* the multi is gone; c goes with its last uv handle */
};

/* libcurl's process-wide initialisation. These are the module's only globals: curl keeps
 * process-wide state (TLS library, resolver) whatever we do, and pthread_once needs them. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;
static const struct curl_api *cu; /* set once by global_init */
static const char *load_why;

static void global_init(void)
{
    cu = curl_api_get(&load_why);
    if (cu != NULL)
        global_rc = cu->global_init(CURL_GLOBAL_DEFAULT);
}

const char *httpc_load_error(void)
{
    return cu == NULL ? load_why : NULL;
}

void httpc_global_cleanup(void)
{
    if (global_rc == CURLE_OK) {
        cu->global_cleanup();
        global_rc = CURLE_FAILED_INIT;
    }
}

/* ---- small helpers ------------------------------------------------------------------------ */

static char ascii_lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Case-insensitive comparison of p[0..n) with the lower-case literal lit. */
static int name_is(const char *p, size_t n, const char *lit)
{
    if (strlen(lit) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(p[i]) != lit[i])
            return 0;
    return 1;
}

static int is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

static void trim_ows(const char **p, size_t *n)
{
    while (*n > 0 && is_ows((*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && is_ows((*p)[*n - 1]))
        (*n)--;
}

/* RFC 9110 tchar. */
static int is_tchar(char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static long clamp_long(uint64_t v)
{
    return v > (uint64_t)LONG_MAX ? LONG_MAX : (long)v;
}

/* ---- Retry-After ---------------------------------------------------------------------------- */

/* Reads exactly n decimal digits. */
static int read_digits(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int year, int mon)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return mon == 1 && leap ? 29 : days[mon];
}

/* IMF-fixdate, RFC 9110 section 5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT", exactly 29 bytes. */
static int parse_imf_fixdate(const char *p, size_t n, int64_t *out)
{
    static const char day_names[] = "MonTueWedThuFriSatSun";
    static const char month_names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (n != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' ||
        p[19] != ':' || p[22] != ':' || p[25] != ' ' || memcmp(p + 26, "GMT", 3) != 0)
        return -1;
    int wday = -1, mon = -1;
    for (int i = 0; i < 7; i++)
        if (memcmp(p, day_names + 3 * i, 3) == 0)
            wday = i;
    for (int i = 0; i < 12; i++)
        if (memcmp(p + 8, month_names + 3 * i, 3) == 0)
            mon = i;
    int mday, year, hour, min, sec;
    if (wday < 0 || mon < 0 || read_digits(p + 5, 2, &mday) < 0 ||
        read_digits(p + 12, 4, &year) < 0 || read_digits(p + 17, 2, &hour) < 0 ||
        read_digits(p + 20, 2, &min) < 0 || read_digits(p + 23, 2, &sec) < 0)
        return -1;
    /* 60 is a leap second; timegm() carries it into the next minute. */
    if (mday < 1 || mday > days_in_month(year, mon) || hour > 23 || min > 59 || sec > 60)
        return -1;
    struct tm tm = {
        .tm_year = year - 1900,
        .tm_mon = mon,
        .tm_mday = mday,
        .tm_hour = hour,
        .tm_min = min,
        .tm_sec = sec,
    };
    *out = (int64_t)timegm(&tm);
    return 0;
}

static int64_t retry_after_parse(const char *p, size_t n, int64_t now_unix_s)
{
    trim_ows(&p, &n);
    if (n == 0)
        return -1;
    size_t digits = 0;
    while (digits < n && p[digits] >= '0' && p[digits] <= '9')
        digits++;
    if (digits == n) {
        int64_t s = 0;
        for (size_t i = 0; i < n && s < RETRY_AFTER_MAX_S; i++)
            s = s * 10 + (p[i] - '0');
        return (s < RETRY_AFTER_MAX_S ? s : RETRY_AFTER_MAX_S) * 1000;
    }
    int64_t t;
    if (parse_imf_fixdate(p, n, &t) < 0)
        return -1;
    if (t <= now_unix_s)
        return 0;
    /* t is within four-digit years, so t - RETRY_AFTER_MAX_S cannot overflow. */
    if (now_unix_s < t - RETRY_AFTER_MAX_S)
        return RETRY_AFTER_MAX_S * 1000;
    return (t - now_unix_s) * 1000;
}

int64_t httpc_retry_after_ms(const char *value, int64_t now_unix_s)
{
    if (value == NULL)
        return -1;
    return retry_after_parse(value, strlen(value), now_unix_s);
}

/* ---- sockets and the timer ------------------------------------------------------------------ */

static void drain(struct httpc *c);

static void maybe_free(struct httpc *c)
{
    if (c->torn_down && c->open_handles == 0) {
        free(c->ca_file);
        free(c->user_agent);
        free(c);
    }
}

static void on_sock_closed(uv_handle_t *h)
{
    struct sock *s = h->data;
    struct httpc *c = s->c;
    free(s);
    c->open_handles--;
    maybe_free(c);
}

static void sock_close(struct sock *s)
{
    struct httpc *c = s->c;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    /* uv_close() stops the watcher now, before curl closes the descriptor; s is freed in the
     * close callback, so a poll event already queued for it never sees freed memory. */
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static struct sock *sock_open(struct httpc *c, curl_socket_t fd)
{
    struct sock *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    int rc = uv_poll_init_socket(c->loop, &s->poll, fd);
    if (rc == UV_EEXIST) {
        /* A watcher is still registered for this descriptor number: curl closed a socket
         * without CURL_POLL_REMOVE and the number came back for a new one. The old watcher is
         * stale; close it and watch the new socket. */
        for (struct sock *old = c->socks; old != NULL; old = old->next)
            if (old->fd == fd) {
                sock_close(old);
                rc = uv_poll_init_socket(c->loop, &s->poll, fd);
                break;
            }
    }
    if (rc < 0) {
        free(s);
        return NULL;
    }
    s->poll.data = s;
    s->c = c;
    s->fd = fd;
    s->next = c->socks;
    if (c->socks != NULL)
        c->socks->prev = s;
    c->socks = s;
    c->open_handles++;
    return s;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock *s = h->data;
    struct httpc *c = s->c;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    int running;
    /* s may be closed by curl's socket_cb inside this call; it is not touched afterwards. */
    cu->multi_socket_action(c->multi, s->fd, flags, &running);
    drain(c);
}

/* CURLMOPT_SOCKETFUNCTION. Never returns -1: curl 7.88 marks the whole multi handle dead on
 * it. A socket we cannot watch (no memory) leaves its transfer to its timeout. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct httpc *c = userp;
    struct sock *s = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            cu->multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = sock_open(c, fd);
        if (s == NULL)
            return 0;
        cu->multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    if (events != 0)
        uv_poll_start(&s->poll, events, on_poll);
    else
        uv_poll_stop(&s->poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    struct httpc *c = t->data;
    int running;
    cu->multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(c);
}

/* CURLMOPT_TIMERFUNCTION. Even a 0 ms timeout goes through the uv timer, so curl is never
 * called back from inside its own callback (or from inside httpc_send). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct httpc *c = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct httpc *c = h->data;
    c->open_handles--;
    maybe_free(c);
}

/* ---- transfers ------------------------------------------------------------------------------ */

static void xfer_free(struct httpc_xfer *x)
{
    if (x == NULL)
        return;
    if (x->easy != NULL)
        cu->easy_cleanup(x->easy);
    cu->slist_free_all(x->headers); /* after the easy handle, which points into it */
    free(x->body);
    free(x->content_type);
    free(x);
}

static void xfer_link(struct httpc_xfer *x)
{
    struct httpc *c = x->c;
    x->prev = NULL;
    x->next = c->xfers;
    if (c->xfers != NULL)
        c->xfers->prev = x;
    c->xfers = x;
    c->active++;
}

static void xfer_unlink(struct httpc_xfer *x)
{
    struct httpc *c = x->c;
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        c->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    c->active--;
}

static int body_reserve(struct httpc_xfer *x, size_t need)
{
    if (need <= x->body_cap)
        return 0;
    size_t cap = x->body_cap != 0 ? x->body_cap : BODY_INITIAL_BYTES;
    while (cap < need)
        cap *= 2;
    if (cap > x->max_body_bytes + 1)
        cap = x->max_body_bytes + 1;
    char *b = realloc(x->body, cap);
    if (b == NULL)
        return RMR_ENOMEM;
    x->body = b;
    x->body_cap = cap;
    return 0;
}

/* CURLOPT_WRITEFUNCTION: the final response's body. Keeps what fits under the bound and
 * stops the transfer beyond it. */
static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
    struct httpc_xfer *x = userdata;
    size_t len = size * n; /* curl documents size as always 1 */
    if (x->body == NULL) {
        /* Size the buffer once when the server announced the length (still under the bound). */
        curl_off_t announced = -1;
        if (cu->easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) == CURLE_OK &&
            announced > 0 && (uint64_t)announced <= x->max_body_bytes &&
            body_reserve(x, (size_t)announced + 1) < 0) {
            x->no_memory = 1;
            return 0;
        }
    }
    size_t room = x->max_body_bytes - x->body_len;
    size_t take = len < room ? len : room;
    if (take > 0) {
        if (body_reserve(x, x->body_len + take + 1) < 0) {
            x->no_memory = 1;
            return 0;
        }
        memcpy(x->body + x->body_len, data, take);
        x->body_len += take;
    }
    if (take < len) {
        x->too_big = 1;
        return 0;
    }
    return len;
}

/* CURLOPT_HEADERFUNCTION: one header line at a time, CRLF included, not NUL-ended. Keeps
 * Content-Type and Retry-After of the final response: a status line starts over (after a
 * 100 Continue, say) and lines after the blank one are trailers, which are ignored. */
static size_t on_header(char *data, size_t size, size_t n, void *userdata)
{
    struct httpc_xfer *x = userdata;
    size_t len = size * n;
    size_t end = len;
    while (end > 0 && (data[end - 1] == '\r' || data[end - 1] == '\n'))
        end--;
    if (end >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        free(x->content_type);
        x->content_type = NULL;
        x->retry_after_ms = -1;
        x->headers_done = 0;
        return len;
    }
    if (end == 0) {
        x->headers_done = 1;
        return len;
    }
    if (x->headers_done)
        return len;
    const char *colon = memchr(data, ':', end);
    if (colon == NULL)
        return len;
    size_t name_len = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t v_len = end - name_len - 1;
    trim_ows(&v, &v_len);
    if (name_is(data, name_len, "content-type")) {
        free(x->content_type);
        x->content_type = NULL;
        if (v_len <= MAX_CONTENT_TYPE_BYTES)
            x->content_type = strndup(v, v_len); /* NULL under no memory: reported absent */
    } else if (name_is(data, name_len, "retry-after")) {
        /* The wall clock, because an HTTP date is wall-clock time. */
        x->retry_after_ms = retry_after_parse(v, v_len, (int64_t)time(NULL));
    }
    return len;
}

static int map_error(const struct httpc_xfer *x, CURLcode r)
{
    /* if-chains, not a switch: CURLcode has a hundred values and -Wswitch-enum wants them
     * all listed. */
    if (r == CURLE_OK)
        return 0;
    if (x->too_big || r == CURLE_FILESIZE_EXCEEDED)
        return RMR_E2BIG;
    if (r == CURLE_OPERATION_TIMEDOUT)
        return RMR_ETIMEDOUT;
    if (r == CURLE_COULDNT_CONNECT)
        return RMR_ECONNREFUSED;
    /* A proxy that answers CONNECT with an error shows as a receive error in curl 7.88; the
     * connection was not reset, the tunnel was refused (curl's text gives the status). */
    long connect_code = 0;
    if (cu->easy_getinfo(x->easy, CURLINFO_HTTP_CONNECTCODE, &connect_code) == CURLE_OK &&
        connect_code >= 300)
        return RMR_EIO;
    /* PARTIAL_FILE: the peer closed before the announced length arrived. */
    if (r == CURLE_RECV_ERROR || r == CURLE_SEND_ERROR || r == CURLE_GOT_NOTHING ||
        r == CURLE_PARTIAL_FILE)
        return RMR_ECONNRESET;
    return RMR_EIO;
}

static const char *error_text(struct httpc_xfer *x, CURLcode r)
{
    if (x->too_big)
        snprintf(x->errbuf, sizeof x->errbuf, "response body larger than %zu bytes",
                 x->max_body_bytes);
    else if (x->no_memory)
        snprintf(x->errbuf, sizeof x->errbuf, "out of memory for the response body");
    else if (x->errbuf[0] == '\0')
        snprintf(x->errbuf, sizeof x->errbuf, "%s", cu->easy_strerror(r));
    return x->errbuf;
}

static void complete(struct httpc_xfer *x, CURLcode result)
{
    struct httpc *c = x->c;
    long status = 0;
    cu->easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    cu->multi_remove_handle(c->multi, x->easy);
    xfer_unlink(x);
    x->completing = 1;

    struct httpc_response resp = {.retry_after_ms = -1, .body = ""};
    resp.error = map_error(x, result);
    if (resp.error == 0 || resp.error == RMR_E2BIG) {
        resp.status = (int)status;
        resp.retry_after_ms = x->retry_after_ms;
        resp.content_type = x->content_type;
    }
    if (resp.error != 0)
        resp.error_text = error_text(x, result);
    if (x->body != NULL) {
        x->body[x->body_len] = '\0'; /* body_reserve kept a byte for it */
        resp.body = x->body;
        resp.body_len = x->body_len;
    }
    resp.duration_us = (uv_hrtime() - x->start_ns) / 1000;
    x->done(x->arg, &resp);
    xfer_free(x);
}

/* Hands every finished transfer to its done callback. A done may send, cancel or free the
 * client: curl_multi_remove_handle() drops a cancelled transfer's pending message, and a
 * free waits here until the callback has returned. */
static void drain(struct httpc *c)
{
    CURLMsg *m;
    int left;
    c->dispatching++;
    while (!c->freeing && (m = cu->multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURLcode result = m->data.result;
        void *priv = NULL;
        cu->easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        complete(priv, result);
    }
    c->dispatching--;
    if (c->freeing && c->dispatching == 0 && !c->torn_down) {
        cu->multi_cleanup(c->multi);
        c->multi = NULL;
        while (c->socks != NULL)
            sock_close(c->socks);
        c->torn_down = 1;
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    }
}

/* ---- requests ------------------------------------------------------------------------------- */

static int check_url(const char *url)
{
    CURLU *u = cu->url();
    if (u == NULL)
        return RMR_ENOMEM;
    char *scheme = NULL;
    CURLUcode uc = cu->url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OK)
        uc = cu->url_get(u, CURLUPART_SCHEME, &scheme, 0);
    int rc;
    if (uc == CURLUE_OUT_OF_MEMORY)
        rc = RMR_ENOMEM;
    else if (uc != CURLUE_OK)
        rc = RMR_EINVAL;
    else
        rc = strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0 ? 0 : RMR_EINVAL;
    cu->free(scheme);
    cu->url_cleanup(u);
    return rc;
}

static int check_request(const struct httpc_request *req)
{
    if (req->url == NULL)
        return RMR_EINVAL;
    if (req->method != NULL) {
        size_t n = strlen(req->method);
        if (n == 0 || n > MAX_METHOD_BYTES)
            return RMR_EINVAL;
        for (size_t i = 0; i < n; i++)
            if (!is_tchar(req->method[i]))
                return RMR_EINVAL;
    }
    if (req->headers != NULL)
        for (const char *const *h = req->headers; *h != NULL; h++) {
            const char *colon = strchr(*h, ':');
            if (colon == NULL || colon == *h || strpbrk(*h, "\r\n") != NULL)
                return RMR_EINVAL;
        }
    if (req->body == NULL && req->body_len != 0)
        return RMR_EINVAL;
    if ((uint64_t)req->body_len > (uint64_t)INT64_MAX)
        return RMR_EINVAL;
    return check_url(req->url);
}

static int build_headers(struct httpc_xfer *x, const struct httpc_request *req)
{
    int has_expect = 0;
    if (req->headers != NULL)
        for (const char *const *h = req->headers; *h != NULL; h++) {
            struct curl_slist *l = cu->slist_append(x->headers, *h);
            if (l == NULL)
                return RMR_ENOMEM;
            x->headers = l;
            has_expect |= name_is(*h, (size_t)(strchr(*h, ':') - *h), "expect");
        }
    if (!has_expect) {
        /* curl sends "Expect: 100-continue" before large bodies and waits up to a second for
         * the go-ahead; collectors do not need the round trip. */
        struct curl_slist *l = cu->slist_append(x->headers, "Expect:");
        if (l == NULL)
            return RMR_ENOMEM;
        x->headers = l;
    }
    return 0;
}

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        CURLcode e_ = cu->easy_setopt(h, opt, val);                                                \
        if (e_ != CURLE_OK)                                                                        \
            return e_;                                                                             \
    } while (0)

static CURLcode configure(struct httpc_xfer *x, const struct httpc_request *req)
{
    const struct httpc *c = x->c;
    CURL *h = x->easy;
    SET(CURLOPT_PRIVATE, (void *)x);
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* Without it curl 7.88 joins a resolver thread still in getaddrinfo() when a transfer
     * times out or is cancelled, blocking the loop for as long as DNS takes. With it the
     * thread is detached and frees its own state when the lookup returns. */
    SET(CURLOPT_QUICK_EXIT, 1L);
#endif
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_TIMEOUT_MS, clamp_long(req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS));
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        clamp_long(req->connect_timeout_ms ? req->connect_timeout_ms : c->connect_timeout_ms));
    SET(CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
    if (c->ca_file != NULL)
        SET(CURLOPT_CAINFO, c->ca_file);
    SET(CURLOPT_USERAGENT, c->user_agent);
    /* A proxy's CONNECT answer is not the response; do not show it to on_header. */
    SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)x);
    SET(CURLOPT_HTTPHEADER, x->headers);

    int has_body = req->body != NULL;
    const char *m = req->method != NULL ? req->method : has_body ? "POST" : "GET";
    int is_get = strcmp(m, "GET") == 0, is_post = strcmp(m, "POST") == 0;
    if (strcmp(m, "HEAD") == 0 && !has_body) {
        /* A custom "HEAD" would make curl wait for a body the server never sends. */
        SET(CURLOPT_NOBODY, 1L);
    } else if (has_body || is_post || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
        /* Borrowed, not copied (CURLOPT_COPYPOSTFIELDS would copy): the caller keeps the body
         * until done. An empty body still gets "Content-Length: 0". */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_POSTFIELDS, has_body ? req->body : "");
        if (!is_post)
            SET(CURLOPT_CUSTOMREQUEST, m);
    } else if (!is_get) {
        SET(CURLOPT_CUSTOMREQUEST, m);
    }
    return CURLE_OK;
}

#undef SET

int httpc_send(struct httpc *c, const struct httpc_request *req, httpc_done done, void *arg,
               struct httpc_xfer **xfer)
{
    if (xfer != NULL)
        *xfer = NULL;
    if (c == NULL || req == NULL || done == NULL)
        return RMR_EINVAL;
    if (c->freeing)
        return RMR_ESTOPPED;
    int rc = check_request(req);
    if (rc < 0)
        return rc;

    struct httpc_xfer *x = calloc(1, sizeof *x);
    if (x == NULL)
        return RMR_ENOMEM;
    x->c = c;
    x->done = done;
    x->arg = arg;
    x->retry_after_ms = -1;
    x->max_body_bytes =
        req->max_response_bytes ? req->max_response_bytes : DEFAULT_MAX_RESPONSE_BYTES;
    if (x->max_body_bytes > MAX_RESPONSE_BYTES_CAP)
        x->max_body_bytes = MAX_RESPONSE_BYTES_CAP;
    rc = RMR_ENOMEM;
    x->easy = cu->easy_init();
    if (x->easy == NULL)
        goto fail;
    if ((rc = build_headers(x, req)) < 0)
        goto fail;
    CURLcode ce = configure(x, req);
    if (ce != CURLE_OK) {
        rc = ce == CURLE_OUT_OF_MEMORY ? RMR_ENOMEM : RMR_EINVAL;
        goto fail;
    }
    x->start_ns = uv_hrtime();
    /* Only arms curl's timer (timer_cb): nothing completes before we return. */
    CURLMcode mc = cu->multi_add_handle(c->multi, x->easy);
    if (mc != CURLM_OK) {
        rc = mc == CURLM_OUT_OF_MEMORY ? RMR_ENOMEM : RMR_EIO;
        goto fail;
    }
    xfer_link(x);
    if (xfer != NULL)
        *xfer = x;
    return 0;
fail:
    xfer_free(x);
    return rc;
}

void httpc_cancel(struct httpc_xfer *x)
{
    if (x == NULL || x->completing)
        return;
    struct httpc *c = x->c;
    /* Also drops a finished transfer's message still queued for drain. */
    cu->multi_remove_handle(c->multi, x->easy);
    xfer_unlink(x);
    xfer_free(x);
}

uint32_t httpc_active(const struct httpc *c)
{
    return c != NULL ? c->active : 0;
}

/* ---- the client ----------------------------------------------------------------------------- */

int httpc_new(uv_loop_t *loop, const struct httpc_opts *opts, struct httpc **out)
{
    static const struct httpc_opts defaults;
    if (out != NULL)
        *out = NULL;
    if (loop == NULL || out == NULL)
        return RMR_EINVAL;
    if (opts == NULL)
        opts = &defaults;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return global_rc == CURLE_OUT_OF_MEMORY ? RMR_ENOMEM : RMR_EIO;

    struct httpc *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RMR_ENOMEM;
    c->loop = loop;
    c->insecure = opts->insecure != 0;
    c->connect_timeout_ms =
        opts->connect_timeout_ms ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    if (opts->ca_file != NULL && (c->ca_file = strdup(opts->ca_file)) == NULL)
        goto fail;
    c->user_agent = strdup(opts->user_agent != NULL ? opts->user_agent : "remora/" REMORA_VERSION);
    if (c->user_agent == NULL)
        goto fail;
    c->multi = cu->multi_init();
    if (c->multi == NULL)
        goto fail;
    cu->multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    cu->multi_setopt(c->multi, CURLMOPT_SOCKETDATA, (void *)c);
    cu->multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    cu->multi_setopt(c->multi, CURLMOPT_TIMERDATA, (void *)c);
    if (opts->max_connections != 0) {
        /* Transfers beyond the limit wait inside curl for a free connection. */
        cu->multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)opts->max_connections);
        cu->multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)opts->max_connections);
    }
    uv_timer_init(loop, &c->timer); /* cannot fail */
    c->timer.data = c;
    c->open_handles = 1;
    *out = c;
    return 0;
fail:
    free(c->user_agent);
    free(c->ca_file);
    free(c);
    return RMR_ENOMEM;
}

void httpc_free(struct httpc *c)
{
    if (c == NULL || c->freeing)
        return;
    c->freeing = 1;
    while (c->xfers != NULL)
        httpc_cancel(c->xfers);
    /* From inside a done callback drain finishes the job when the callback returns; else it
     * runs now, with nothing to deliver. */
    if (c->dispatching == 0)
        drain(c);
}

void httpc_headers_free(char **headers)
{
    if (headers == NULL)
        return;
    for (char **h = headers; *h != NULL; h++)
        free(*h);
    free(headers);
}
