/* core/host_net: the network members of the host table (ABI 1.1): HTTP listeners and routes,
 * outbound requests for polling inputs, datagram listeners, and emit from a reader thread.
 * Everything an instance holds here is released when it stops, before destroy.
 * Thread: the loop thread, except host_emit_foreign(). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent.h"
#include "net/client/httpc.h"
#include "net/dgram/dgram.h"
#include "net/server/httpd.h"
#include "record/batch.h"
#include "self/log.h"

/* ---- HTTP routes ---------------------------------------------------------------------------- */

struct route_ctx {
    struct route_ctx *next;
    struct rmr_instance *ins;
    struct httpd *srv;
    rmr_route_cb cb;
    void *arg;
};

static void on_route(void *arg, httpd_req *req)
{
    struct route_ctx *rc = arg;
    struct rmr_instance *ins = rc->ins;
    counter_add(ins, "http_requests", NULL, NULL, 1);
    if (ins->phase != PHASE_STARTED) {
        static const char body[] = "{\"error\":\"the input is stopping\"}";
        httpd_respond(req, 503, NULL, 0, "application/json", body, sizeof body - 1);
        return;
    }
    rc->cb(ins, rc->arg, req);
}

/* Every listener, the shared one and plugins' own, takes the [agent] http_* limits. */
static struct httpd_limits listener_limits(const struct agent_config *ac)
{
    return (struct httpd_limits){
        .max_header_bytes = ac->http_max_header_bytes,
        .max_body_bytes = ac->http_max_body_bytes,
        .max_decoded_bytes = ac->http_max_decoded_bytes,
        .header_timeout_ms = (uint64_t)ac->http_header_timeout_ms,
        .body_timeout_ms = (uint64_t)ac->http_body_timeout_ms,
        .idle_timeout_ms = (uint64_t)ac->http_idle_timeout_ms,
        .max_connections = (uint32_t)ac->http_max_connections,
    };
}

/* The bound-address form of what a plugin asked for, so "8126", "localhost:8126" and
 * "127.0.0.1:8126" find the same listener (httpd_address() reports "127.0.0.1:8126", and
 * "0.0.0.0:8126" for ":8126" and "*:8126"). */
static void canonical_address(const char *in, char *out, size_t len)
{
    size_t n = strspn(in, "0123456789");
    if (n > 0 && in[n] == '\0')
        snprintf(out, len, "127.0.0.1:%s", in);
    else if (strncasecmp(in, "localhost:", 10) == 0)
        snprintf(out, len, "127.0.0.1:%s", in + 10);
    else if (in[0] == ':')
        snprintf(out, len, "0.0.0.0%s", in);
    else if (strncmp(in, "*:", 2) == 0)
        snprintf(out, len, "0.0.0.0%s", in + 1);
    else
        snprintf(out, len, "%s", in);
}

static struct httpd *listener_find(struct agent *a, const char *address)
{
    char want[300];
    canonical_address(address, want, sizeof want);
    for (struct listener *l = a->listeners; l != NULL; l = l->next)
        if (strcmp(httpd_address(l->srv), want) == 0)
            return l->srv;
    return NULL;
}

/* Open an instance's own listener: "8126" means 127.0.0.1:8126, as Datadog's default. */
int host_http_listener(rmr_instance_t *ins, const char *address, rmr_listener_t **out)
{
    struct agent *a = ins->agent;
    *out = NULL;
    if (address == NULL || address[0] == '\0') {
        if (a->shared == NULL)
            return RMR_ENOTSUP;
        *out = (rmr_listener_t *)a->shared;
        return 0;
    }
    struct httpd *found = listener_find(a, address);
    if (found != NULL) {
        *out = (rmr_listener_t *)found;
        return 0;
    }
    struct httpd_limits lim = listener_limits(&a->cfg.agent);
    struct listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return RMR_ENOMEM;
    char err[256];
    int rc = httpd_open(&a->loop, address, &lim, &host_api, &l->srv, err, sizeof err);
    if (rc < 0) {
        log_write(RMR_LOG_ERROR, ins->ci->name, "%s", err);
        free(l);
        return rc;
    }
    l->owner = ins;
    l->next = a->listeners;
    a->listeners = l;
    log_write(RMR_LOG_INFO, ins->ci->name, "listening for HTTP on %s", httpd_address(l->srv));
    *out = (rmr_listener_t *)l->srv;
    return 0;
}

int host_http_route(rmr_instance_t *ins, rmr_listener_t *listener, const char *method,
                    const char *path, uint32_t flags, rmr_route_cb cb, void *arg)
{
    struct agent *a = ins->agent;
    struct httpd *srv = listener != NULL ? (struct httpd *)listener : a->shared;
    if (srv == NULL)
        return RMR_ENOTSUP;
    if (path == NULL || path[0] != '/' || cb == NULL)
        return RMR_EINVAL;
    struct route_ctx *rc = calloc(1, sizeof *rc);
    if (rc == NULL)
        return RMR_ENOMEM;
    rc->ins = ins;
    rc->srv = srv;
    rc->cb = cb;
    rc->arg = arg;
    int r = httpd_route(srv, method, path, flags, on_route, rc, ins);
    if (r < 0) {
        if (r == RMR_EEXIST)
            log_write(RMR_LOG_ERROR, ins->ci->name, "the route %s %s on %s is taken",
                      method ? method : "*", path, httpd_address(srv));
        free(rc);
        return r;
    }
    rc->next = ins->routes;
    ins->routes = rc;
    return 0;
}

int host_http_req_info(rmr_http_req_t *req, struct rmr_http_req_info *out)
{
    return httpd_req_info(req, out);
}

const char *host_http_req_header(rmr_http_req_t *req, const char *name)
{
    return httpd_req_header(req, name);
}

int host_http_respond(rmr_http_req_t *req, int status, const struct rmr_http_header *headers,
                      uint32_t nheaders, const char *content_type, const void *body, size_t len)
{
    return httpd_respond(req, status, headers, nheaders, content_type, body, len);
}

/* ---- outbound requests ------------------------------------------------------------------- */

/* The client is made on first use: loading libcurl and its TLS library costs a few
 * milliseconds and megabytes that an agent writing to files or stdout never needs. */
struct httpc *host_http_client(struct agent *a)
{
    if (a->http != NULL)
        return a->http;
    const struct agent_config *ac = &a->cfg.agent;
    struct httpc_opts ho = {
        .ca_file = ac->ca_file,
        .insecure = ac->tls_insecure,
        .user_agent = "remora/" REMORA_VERSION,
        .connect_timeout_ms = (uint64_t)ac->connect_timeout_ms,
    };
    int rc = httpc_new(&a->loop, &ho, &a->http);
    if (rc < 0) {
        const char *why = httpc_load_error();
        log_error("cannot start the HTTP client: %s", why != NULL ? why : rmr_strerror(rc));
        a->http = NULL;
    }
    return a->http;
}

struct fetch_ctx {
    struct fetch_ctx *next;
    struct rmr_instance *ins;
    struct httpc_xfer *xfer;
    rmr_fetch_cb cb;
    void *arg;
    char **headers;
    char *url;
    void *body;
};

static void fetch_free(struct fetch_ctx *f)
{
    httpc_headers_free(f->headers);
    free(f->url);
    free(f->body);
    free(f);
}

static void fetch_unlink(struct fetch_ctx *f)
{
    for (struct fetch_ctx **pp = &f->ins->fetches; *pp != NULL; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            return;
        }
}

static void on_fetch(void *arg, const struct httpc_response *r)
{
    struct fetch_ctx *f = arg;
    fetch_unlink(f);
    char code[16];
    snprintf(code, sizeof code, "%d", r->status);
    counter_add(f->ins, "http_fetches", r->status > 0 ? code : "error", NULL, 1);
    struct rmr_response resp = {
        .struct_size = sizeof resp,
        .status = r->status,
        .error = r->error,
        .retry_after_ms = r->retry_after_ms,
        .body = r->body != NULL ? r->body : "",
        .body_len = r->body_len,
    };
    f->cb(f->ins, f->arg, &resp);
    fetch_free(f);
}

int host_http_fetch(rmr_instance_t *ins, const struct rmr_fetch_spec *spec, rmr_fetch_cb cb,
                    void *arg)
{
    struct agent *a = ins->agent;
    if (spec == NULL || spec->struct_size < offsetof(struct rmr_fetch_spec, max_response_bytes) ||
        spec->url == NULL || cb == NULL)
        return RMR_EINVAL;
    if (host_http_client(a) == NULL)
        return RMR_ENOTSUP;
    struct fetch_ctx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return RMR_ENOMEM;
    f->ins = ins;
    f->cb = cb;
    f->arg = arg;
    f->url = strdup(spec->url);
    f->headers = calloc((size_t)spec->nheaders + 1, sizeof *f->headers);
    if (f->url == NULL || f->headers == NULL)
        goto nomem;
    for (uint32_t i = 0; i < spec->nheaders; i++) {
        const struct rmr_http_header *h = &spec->headers[i];
        if (h->name == NULL || h->value == NULL || strpbrk(h->name, "\r\n:") != NULL ||
            strpbrk(h->value, "\r\n") != NULL) {
            fetch_free(f);
            return RMR_EINVAL;
        }
        if (asprintf(&f->headers[i], "%s: %s", h->name, h->value) < 0) {
            f->headers[i] = NULL;
            goto nomem;
        }
    }
    if (spec->body != NULL && spec->body_len > 0) {
        f->body = malloc(spec->body_len);
        if (f->body == NULL)
            goto nomem;
        memcpy(f->body, spec->body, spec->body_len);
    }
    size_t max = 0;
    if (spec->struct_size >= offsetof(struct rmr_fetch_spec, max_response_bytes) + sizeof(size_t))
        max = spec->max_response_bytes;
    struct httpc_request req = {
        .method = spec->method,
        .url = f->url,
        .headers = (const char *const *)f->headers,
        .body = f->body,
        .body_len = f->body != NULL ? spec->body_len : 0,
        .timeout_ms = spec->timeout_ms ? spec->timeout_ms : 10000,
        .connect_timeout_ms = spec->connect_timeout_ms,
        .max_response_bytes = max,
    };
    f->next = ins->fetches;
    ins->fetches = f;
    int rc = httpc_send(a->http, &req, on_fetch, f, &f->xfer);
    if (rc < 0) {
        fetch_unlink(f);
        fetch_free(f);
        return rc;
    }
    return 0;
nomem:
    fetch_free(f);
    return RMR_ENOMEM;
}

/* ---- datagram listeners ----------------------------------------------------------------- */

struct rmr_dgram_sock {
    struct rmr_handle h; /* first: the SDK reaches the host table through it */
    struct rmr_dgram_sock *next;
    struct rmr_instance *ins;
    struct dgram *d;
    rmr_dgram_cb cb;
    void *arg;
};

static void on_dgrams(void *arg, const struct rmr_dgram *msgs, uint32_t count)
{
    struct rmr_dgram_sock *s = arg;
    s->cb(s->ins, s->arg, msgs, count);
}

int host_dgram_listen(rmr_instance_t *ins, const struct rmr_dgram_spec *spec, rmr_dgram_cb cb,
                      void *arg, rmr_dgram_sock_t **out)
{
    if (spec == NULL || spec->address == NULL || cb == NULL || out == NULL ||
        spec->struct_size < sizeof(struct rmr_dgram_spec))
        return RMR_EINVAL;
    struct rmr_dgram_sock *s = calloc(1, sizeof *s);
    if (s == NULL)
        return RMR_ENOMEM;
    s->h.host = &host_api;
    s->ins = ins;
    s->cb = cb;
    s->arg = arg;
    struct dgram_opts o = {
        .address = spec->address,
        .rcvbuf_bytes = spec->rcvbuf_bytes,
        .max_datagram = spec->max_datagram,
        .batch = spec->batch,
        .own_thread = (spec->flags & RMR_DGRAM_OWN_THREAD) != 0,
    };
    char err[256];
    int rc = dgram_open(&ins->agent->loop, &o, on_dgrams, s, &s->d, err, sizeof err);
    if (rc < 0) {
        log_write(RMR_LOG_ERROR, ins->ci->name, "%s", err);
        free(s);
        return rc;
    }
    /* What the kernel granted (Linux doubles a request for its bookkeeping and reports the
     * doubled value), so the buffer in use shows in the log even at the default; the
     * address stays the last word of the "listening" line, which tools read. */
    struct dgram_stats st;
    dgram_stats(s->d, &st);
    if (spec->rcvbuf_bytes != 0)
        log_write(RMR_LOG_INFO, ins->ci->name,
                  "receive buffer of '%s': %llu bytes asked, SO_RCVBUF reads %llu",
                  dgram_address(s->d), (unsigned long long)spec->rcvbuf_bytes,
                  (unsigned long long)st.rcvbuf_granted);
    else
        log_write(RMR_LOG_INFO, ins->ci->name,
                  "receive buffer of '%s': the kernel's default, SO_RCVBUF reads %llu",
                  dgram_address(s->d), (unsigned long long)st.rcvbuf_granted);
    log_write(RMR_LOG_INFO, ins->ci->name, "listening for datagrams on %s", dgram_address(s->d));
    s->next = ins->dgrams;
    ins->dgrams = s;
    *out = s;
    return 0;
}

int host_dgram_address(rmr_dgram_sock_t *s, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s", dgram_address(s->d));
    return n >= 0 && (size_t)n < len ? 0 : RMR_ENAMETOOLONG;
}

void host_dgram_close(rmr_dgram_sock_t *s)
{
    for (struct rmr_dgram_sock **pp = &s->ins->dgrams; *pp != NULL; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    dgram_close(s->d);
    free(s);
}

/* ---- the table's members and lifecycle --------------------------------------------------- */

void host_net_dgram_stats(struct rmr_instance *ins,
                          void (*fn)(void *arg, struct rmr_instance *ins, const char *address,
                                     const struct dgram_stats *st),
                          void *arg)
{
    for (struct rmr_dgram_sock *s = ins->dgrams; s != NULL; s = s->next) {
        struct dgram_stats st;
        dgram_stats(s->d, &st);
        fn(arg, ins, dgram_address(s->d), &st);
    }
}

static void on_lag(uv_timer_t *t)
{
    struct agent *a = t->data;
    uint64_t now = uv_now(&a->loop);
    uint64_t lag = now > a->lag_expected_ms ? now - a->lag_expected_ms : 0;
    a->lag_last_ms = lag;
    if (lag > a->lag_max_ms)
        a->lag_max_ms = lag;
    a->lag_sum_ms += lag;
    a->lag_samples++;
    a->lag_expected_ms = now + 500;
}

int host_net_start(struct agent *a)
{
    uv_timer_init(&a->loop, &a->lag_timer);
    a->lag_timer.data = a;
    a->lag_expected_ms = uv_now(&a->loop) + 500;
    uv_timer_start(&a->lag_timer, on_lag, 500, 500);
    uv_unref((uv_handle_t *)&a->lag_timer);

    const char *addr = a->cfg.agent.http_listen;
    if (addr == NULL || strcmp(addr, "off") == 0 || strcmp(addr, "none") == 0)
        return 0;
    struct httpd_limits lim = listener_limits(&a->cfg.agent);
    struct listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return RMR_ENOMEM;
    char err[256];
    int rc = httpd_open(&a->loop, addr, &lim, &host_api, &l->srv, err, sizeof err);
    if (rc < 0) {
        log_error("%s (set [agent] http_listen or ENV_HTTP_LISTEN to another address, or off)",
                  err);
        free(l);
        return rc;
    }
    a->shared = l->srv;
    a->listeners = l;
    if ((rc = status_routes(a, l->srv)) < 0)
        return rc;
    log_info("listening for HTTP on %s", httpd_address(l->srv));
    return 0;
}

void host_net_pause_inputs(struct agent *a, int on)
{
    for (uint32_t i = 0; i < a->ninstances; i++) {
        struct rmr_instance *ins = &a->instances[i];
        if (ins->kind != RMR_KIND_INPUT)
            continue;
        for (struct rmr_dgram_sock *s = ins->dgrams; s != NULL; s = s->next) {
            /* Without waiting for reader threads: this runs inside an emit, maybe one an
             * input makes while holding the lock its reader callback is waiting for. */
            if (on)
                dgram_pause_nowait(s->d);
            else
                dgram_resume(s->d);
        }
    }
}

void host_net_release_instance(struct rmr_instance *ins)
{
    struct agent *a = ins->agent;
    for (struct listener *l = a->listeners; l != NULL; l = l->next)
        httpd_unroute(l->srv, ins);
    while (ins->routes != NULL) {
        struct route_ctx *rc = ins->routes;
        ins->routes = rc->next;
        free(rc);
    }
    /* Requests in flight end with RMR_ECANCELED, so the instance can let go of their state. */
    while (ins->fetches != NULL) {
        struct fetch_ctx *f = ins->fetches;
        ins->fetches = f->next;
        httpc_cancel(f->xfer);
        struct rmr_response resp = {
            .struct_size = sizeof resp, .error = RMR_ECANCELED, .retry_after_ms = -1, .body = ""};
        f->cb(ins, f->arg, &resp);
        fetch_free(f);
    }
    while (ins->dgrams != NULL)
        host_dgram_close(ins->dgrams);
    /* Listeners the instance opened close with it. */
    for (struct listener **pp = &a->listeners; *pp != NULL;) {
        struct listener *l = *pp;
        if (l->owner == ins) {
            *pp = l->next;
            httpd_close(l->srv);
            free(l);
        } else {
            pp = &l->next;
        }
    }
}

void host_net_stop(struct agent *a)
{
    while (a->listeners != NULL) {
        struct listener *l = a->listeners;
        a->listeners = l->next;
        httpd_close(l->srv);
        free(l);
    }
    a->shared = NULL;
    if (a->lag_timer.data != NULL) {
        uv_timer_stop(&a->lag_timer);
        uv_close((uv_handle_t *)&a->lag_timer, NULL);
        a->lag_timer.data = NULL;
    }
    if (a->http != NULL) {
        httpc_free(a->http);
        a->http = NULL;
    }
}

/* ---- emit from a reader thread ------------------------------------------------------------ */

/* Batches emitted off the loop thread (RMR_DGRAM_OWN_THREAD callbacks) wait in the agent's
 * foreign queue until the loop picks them up; bounded so a stalled loop sheds load instead of
 * growing. */
static void on_foreign(uv_async_t *h)
{
    struct agent *a = h->data;
    struct foreign local[256];
    for (;;) {
        pthread_mutex_lock(&a->foreign_lock);
        uint32_t n = a->foreign_n < 256 ? a->foreign_n : 256;
        memcpy(local, a->foreign_q, n * sizeof *local);
        memmove(a->foreign_q, a->foreign_q + n, (a->foreign_n - n) * sizeof *local);
        a->foreign_n -= n;
        uint64_t dropped = a->foreign_dropped;
        a->foreign_dropped = 0;
        pthread_mutex_unlock(&a->foreign_lock);
        if (dropped > 0)
            log_warn("the loop fell behind reader threads; %llu batches were dropped",
                     (unsigned long long)dropped);
        if (n == 0)
            return;
        for (uint32_t i = 0; i < n; i++)
            (void)pipeline_emit(local[i].ins, local[i].b);
    }
}

int host_foreign_init(struct agent *a)
{
    pthread_mutex_init(&a->foreign_lock, NULL);
    a->foreign_q = calloc(FOREIGN_MAX, sizeof *a->foreign_q);
    if (a->foreign_q == NULL)
        return RMR_ENOMEM;
    int rc = uv_async_init(&a->loop, &a->foreign_async, on_foreign);
    if (rc < 0)
        return RMR_EIO;
    a->foreign_async.data = a;
    uv_unref((uv_handle_t *)&a->foreign_async);
    pthread_mutex_lock(&a->foreign_lock);
    a->foreign_open = 1;
    pthread_mutex_unlock(&a->foreign_lock);
    return 0;
}

void host_foreign_close(struct agent *a)
{
    if (a->foreign_q == NULL)
        return;
    pthread_mutex_lock(&a->foreign_lock);
    int was_open = a->foreign_open;
    a->foreign_open = 0;
    uint32_t n = a->foreign_n;
    a->foreign_n = 0;
    pthread_mutex_unlock(&a->foreign_lock);
    for (uint32_t i = 0; i < n; i++)
        batch_unref(a->foreign_q[i].b);
    if (was_open)
        uv_close((uv_handle_t *)&a->foreign_async, NULL);
}

int host_emit_foreign(struct rmr_instance *ins, struct rmr_batch *b)
{
    struct agent *a = ins->agent;
    pthread_mutex_lock(&a->foreign_lock);
    if (!a->foreign_open || a->foreign_n == FOREIGN_MAX) {
        a->foreign_dropped += a->foreign_open;
        pthread_mutex_unlock(&a->foreign_lock);
        batch_unref(b);
        return RMR_EFULL;
    }
    a->foreign_q[a->foreign_n++] = (struct foreign){ins, b};
    pthread_mutex_unlock(&a->foreign_lock);
    uv_async_send(&a->foreign_async);
    return 0;
}
