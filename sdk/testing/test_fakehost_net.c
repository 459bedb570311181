/* The fake host's network services (ABI 1.1), driven through a small input defined here:
 * routes answered now and later (from a timer), the server's own 404/405/503 answers and the
 * headers an answer keeps; fetches answered on the next advance from a served table, a file
 * or a responder, with timeouts, E2BIG and cancellation at stop; datagram listeners with
 * batching and truncation; and what an instance holds released when it stops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakehost.h"
#include "tap.h"

/* ---- the test input ----------------------------------------------------------------------- */

struct nt_config {
    const char *http_address; /* an own listener, else the shared one */
    const char *fetch_url;    /* fetched once in start() */
    int64_t fetch_timeout_ms;
    uint64_t fetch_max_bytes;
    const char *listen; /* a datagram listener */
    int64_t max_datagram;
    int64_t batch;
    int32_t slow_stop; /* stop() finishes 10 ms later, from a timer */
};

static const struct rmr_option nt_options[] = {
    RMR_OPT_STR("http_address", NULL, 0, struct nt_config, http_address, "own listener"),
    RMR_OPT_STR("fetch_url", NULL, 0, struct nt_config, fetch_url, "fetched in start"),
    RMR_OPT_TIME("fetch_timeout", "0s", 0, struct nt_config, fetch_timeout_ms, "fetch timeout"),
    RMR_OPT_BYTES("fetch_max_bytes", "0", 0, struct nt_config, fetch_max_bytes, "fetch cap"),
    RMR_OPT_STR("listen", NULL, 0, struct nt_config, listen, "datagram address"),
    RMR_OPT_INTEGER("max_datagram", "0", 0, struct nt_config, max_datagram, "datagram cap"),
    RMR_OPT_INTEGER("batch", "0", 0, struct nt_config, batch, "datagrams per call"),
    RMR_OPT_BOOLEAN("slow_stop", "false", 0, struct nt_config, slow_stop, "stop later"),
    RMR_OPT_END,
};

/* One request answered later: the answer's body is made now, sent when the timer fires. */
struct nt_later {
    struct nt_later *next;
    struct nt_state *st;
    rmr_http_req_t *req;
    rmr_timer_t *timer;
    char body[128];
};

/* What the handlers saw, for the test to check. */
struct nt_state {
    const struct nt_config *cfg;
    rmr_listener_t *listener;
    rmr_dgram_sock_t *sock;
    rmr_timer_t *stop_timer;
    char seen_method[16];
    char seen_path[64];
    char seen_query[64];
    char seen_ctype[64];
    char seen_remote[32];
    char seen_accept[64];
    int body_nul_ended;
    int small_info_rc;
    int small_info_left_remote; /* a short struct_size left remote alone */
    int last_respond_rc;
    int fetch_calls;
    int fetch_status;
    int fetch_error;
    int64_t fetch_retry_after_ms;
    size_t fetch_len;
    int dgram_calls;
    struct nt_later *laters; /* answers not sent yet */
};

static void emit_metric(rmr_instance_t *ins, const char *name, double value, const char *tagk,
                        const char *tagv)
{
    rmr_batch_t *b = rmr_batch_new(ins, NULL);
    struct rmr_tag tag = {RMR_STR(tagk), RMR_STR(tagv)};
    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = RMR_METRIC_GAUGE,
        .name = RMR_STR(name),
        .value = value,
        .tags = &tag,
        .ntags = tagk != NULL ? 1 : 0,
    };
    rmr_metric_add(b, &m);
    rmr_emit(ins, b);
}

static void answer_later(rmr_instance_t *ins, void *arg)
{
    struct nt_later *l = arg;
    struct rmr_http_header h = {"X-Later", "yes"};
    l->st->last_respond_rc =
        rmr_http_respond(l->req, 200, &h, 1, "text/plain", l->body, strlen(l->body));
    for (struct nt_later **pp = &l->st->laters; *pp != NULL; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    rmr_timer_stop(l->timer);
    free(l);
}

/* POST /v1/echo: answers "echo:BODY" 5 ms later. */
static void on_echo(rmr_instance_t *ins, void *arg, rmr_http_req_t *req)
{
    struct nt_state *st = arg;
    struct rmr_http_req_info info = {.struct_size = sizeof info};
    rmr_http_req_info(req, &info);
    struct nt_later *l = calloc(1, sizeof *l);
    l->st = st;
    l->req = req;
    snprintf(l->body, sizeof l->body, "echo:%.*s", (int)info.body_len, info.body);
    l->next = st->laters;
    st->laters = l;
    rmr_timer_start(ins, 5, 0, answer_later, l, &l->timer);
}

/* GET /v1/sync: records what it saw and answers at once. */
static void on_sync(rmr_instance_t *ins, void *arg, rmr_http_req_t *req)
{
    struct nt_state *st = arg;
    struct rmr_http_req_info info = {.struct_size = sizeof info};
    rmr_http_req_info(req, &info);
    snprintf(st->seen_method, sizeof st->seen_method, "%s", info.method);
    snprintf(st->seen_path, sizeof st->seen_path, "%s", info.path);
    snprintf(st->seen_query, sizeof st->seen_query, "%s", info.query);
    snprintf(st->seen_ctype, sizeof st->seen_ctype, "%s",
             info.content_type ? info.content_type : "(none)");
    snprintf(st->seen_remote, sizeof st->seen_remote, "%s", info.remote);
    const char *accept = rmr_http_req_header(req, "ACCEPT");
    snprintf(st->seen_accept, sizeof st->seen_accept, "%s", accept ? accept : "(none)");
    st->body_nul_ended = info.body[info.body_len] == '\0';
    struct rmr_http_req_info small;
    memset(&small, 0, sizeof small);
    small.struct_size = (uint32_t)offsetof(struct rmr_http_req_info, remote);
    small.remote = "untouched";
    st->small_info_rc = rmr_http_req_info(req, &small);
    st->small_info_left_remote = strcmp(small.remote, "untouched") == 0;
    struct rmr_http_header hs[] = {
        {"X-Seen", "1"},
        {"Content-Length", "999"}, /* the server's own: dropped */
        {"Bad Name", "x"},         /* not a token: dropped */
        {"Content-Type", "text/html"},
    };
    static const char body[] = "{\"ok\":true}";
    st->last_respond_rc =
        rmr_http_respond(req, 200, hs, 4, "application/json", body, sizeof body - 1);
}

/* /v1/status/NNN (a prefix route): answers NNN; /v1/status/503r with its own Retry-After. */
static void on_status(rmr_instance_t *ins, void *arg, rmr_http_req_t *req)
{
    struct nt_state *st = arg;
    struct rmr_http_req_info info = {.struct_size = sizeof info};
    rmr_http_req_info(req, &info);
    const char *last = strrchr(info.path, '/');
    int status = atoi(last + 1);
    struct rmr_http_header h = {"Retry-After", "7"};
    int own = strchr(last, 'r') != NULL;
    st->last_respond_rc = rmr_http_respond(req, status != 0 ? status : 200, own ? &h : NULL,
                                           own ? 1 : 0, "text/plain", "s", 1);
}

static void on_fetch(rmr_instance_t *ins, void *arg, const struct rmr_response *resp)
{
    struct nt_state *st = arg;
    st->fetch_calls++;
    st->fetch_status = resp->status;
    st->fetch_error = resp->error;
    st->fetch_retry_after_ms = resp->retry_after_ms;
    st->fetch_len = resp->body_len;
    if (resp->error == 0 || resp->error == RMR_E2BIG) {
        char status[16];
        snprintf(status, sizeof status, "%d", resp->status);
        emit_metric(ins, "nt.fetch.bytes", (double)resp->body_len, "status", status);
    }
}

static void on_dgrams(rmr_instance_t *ins, void *arg, const struct rmr_dgram *msgs, uint32_t count)
{
    struct nt_state *st = arg;
    st->dgram_calls++;
    for (uint32_t i = 0; i < count; i++)
        emit_metric(ins, "nt.dgram.bytes", msgs[i].len, "truncated",
                    msgs[i].flags & RMR_DGRAM_TRUNCATED ? "yes" : "no");
}

/* The state of the instance created last, for the test to read what the handlers saw. */
static struct nt_state *nt_last;

static int nt_create(rmr_instance_t *ins, const void *config, void **state)
{
    struct nt_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->cfg = config;
    *state = st;
    nt_last = st;
    return 0;
}

static int nt_start(rmr_instance_t *ins, void *state)
{
    struct nt_state *st = state;
    const struct nt_config *c = st->cfg;
    int rc;
    if (!RMR_HOST_HAS(ins, dgram_close))
        return RMR_ENOTSUP;
    if ((rc = rmr_http_listener(ins, c->http_address, &st->listener)) < 0 ||
        (rc = rmr_http_route(ins, st->listener, "POST", "/v1/echo", 0, on_echo, st)) < 0 ||
        (rc = rmr_http_route(ins, st->listener, "GET", "/v1/sync", 0, on_sync, st)) < 0 ||
        (rc = rmr_http_route(ins, st->listener, NULL, "/v1/status/", RMR_ROUTE_PREFIX, on_status,
                             st)) < 0)
        return rc;
    if (c->fetch_url != NULL) {
        struct rmr_http_header h[] = {{"Accept", "application/json"}, {"X-Token", "t0k"}};
        struct rmr_fetch_spec spec = {
            .struct_size = sizeof spec,
            .nheaders = 2,
            .url = c->fetch_url,
            .headers = h,
            .timeout_ms = (uint32_t)c->fetch_timeout_ms,
            .max_response_bytes = (size_t)c->fetch_max_bytes,
        };
        if ((rc = rmr_http_fetch(ins, &spec, on_fetch, st)) < 0)
            return rc;
    }
    if (c->listen != NULL) {
        struct rmr_dgram_spec spec = {
            .struct_size = sizeof spec,
            .address = c->listen,
            .rcvbuf_bytes = 1 << 20,
            .max_datagram = (uint32_t)c->max_datagram,
            .batch = (uint32_t)c->batch,
        };
        if ((rc = rmr_dgram_listen(ins, &spec, on_dgrams, st, &st->sock)) < 0)
            return rc;
        char addr[128];
        rmr_dgram_address(st->sock, addr, sizeof addr);
        rmr_log(ins, RMR_LOG_INFO, "listening on '%s'", addr);
    }
    return 0;
}

static void stop_later(rmr_instance_t *ins, void *arg)
{
    rmr_stop_done(ins);
}

static int nt_stop(rmr_instance_t *ins, void *state)
{
    struct nt_state *st = state;
    if (!st->cfg->slow_stop)
        return 0;
    rmr_timer_start(ins, 10, 0, stop_later, st, &st->stop_timer);
    return RMR_EINPROGRESS;
}

static void nt_destroy(rmr_instance_t *ins, void *state)
{
    struct nt_state *st = state;
    rmr_log(ins, RMR_LOG_INFO, "destroyed after %d fetch callbacks, the last error %d",
            st->fetch_calls, st->fetch_error);
    /* Deliberately does not answer what it holds: the fake host reports that. */
    while (st->laters != NULL) {
        struct nt_later *l = st->laters;
        st->laters = l->next;
        rmr_timer_stop(l->timer);
        free(l);
    }
    if (nt_last == st)
        nt_last = NULL;
    free(st);
}

static const struct rmr_plugin nt_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "nettest",
    .version = "1.0.0",
    .description = "test input for the fake host's network services",
    .options = nt_options,
    .config_size = sizeof(struct nt_config),
    .create = nt_create,
    .start = nt_start,
    .stop = nt_stop,
    .destroy = nt_destroy,
};

/* ---- helpers ------------------------------------------------------------------------------- */

static rmr_instance_t *make(struct rmr_fakehost *fh, const char *conf, int start)
{
    char err[256];
    rmr_instance_t *ins = NULL;
    int rc = rmr_fakehost_create(fh, &nt_plugin, conf, &ins, err, sizeof err);
    if (rc != 0) {
        printf("# create failed: %s (%s)\n", rmr_strerror(rc), err);
        return NULL;
    }
    if (start && (rc = rmr_fakehost_start(fh, ins)) != 0)
        printf("# start failed: %s\n", rmr_strerror(rc));
    return ins;
}

/* The value and tag value of metric 0 of emitted batch i, as "value tag". */
static char *metric_at(struct rmr_fakehost *fh, uint32_t i)
{
    const rmr_batch_t *b = rmr_fakehost_emitted(fh, i);
    struct rmr_metric m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    if (b == NULL || rmr_metric_get(b, 0, &m) != 0)
        return strdup("(none)");
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s %g %.*s", (int)m.name.len, m.name.ptr, m.value,
             m.ntags ? (int)m.tags[0].value.len : 0, m.ntags ? m.tags[0].value.ptr : "");
    return strdup(buf);
}

#define IS_METRIC(fh, i, want, name)                                                               \
    do {                                                                                           \
        char *s_ = metric_at((fh), (i));                                                           \
        IS_STR(s_, (want), (name));                                                                \
        free(s_);                                                                                  \
    } while (0)

static void noop_route(rmr_instance_t *ins, void *arg, rmr_http_req_t *req)
{
    rmr_http_respond(req, 204, NULL, 0, NULL, NULL, 0);
}

static void noop_dgrams(rmr_instance_t *ins, void *arg, const struct rmr_dgram *msgs,
                        uint32_t count)
{
}

static int noop_fetch_calls;
static void noop_fetch(rmr_instance_t *ins, void *arg, const struct rmr_response *resp)
{
    noop_fetch_calls++;
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

static void test_table(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = make(fh, "", 1);
    OK(ins != NULL && nt_last != NULL, "table: the instance starts (RMR_HOST_HAS sees 1.1)");
    OK(RMR_HOST_HAS(ins, http_listener) && RMR_HOST_HAS(ins, dgram_close),
       "table: every 1.1 member is there");
    IS_UINT(RMR__HOST(ins)->abi_minor, RMR_ABI_MINOR, "table: minor");
    rmr_fakehost_free(fh);
}

static void test_http_sync(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = make(fh, "", 1);
    struct nt_state *st = nt_last;
    struct rmr_fakehost_http_answer *a = NULL;
    struct rmr_http_header hs[] = {
        {"Accept", "text/plain"},
        {"Content-Type", "application/json"},
        {"accept", "application/json"},
    };
    int rc = rmr_fakehost_http_request(fh, NULL, "GET", "/v1/sync?x=1&y=2", hs, 3, "{}", 2, &a);
    IS_INT(rc, 0, "sync: answered during the call");
    IS_INT(a->status, 200, "sync: status");
    IS_STR(a->content_type, "application/json", "sync: content type");
    IS_STRN(a->body, a->len, "{\"ok\":true}", "sync: body");
    IS_INT(a->body[a->len], '\0', "sync: body NUL-ended");
    IS_STR(rmr_fakehost_http_answer_header(a, "x-seen"), "1", "sync: header, any case");
    IS_UINT(a->nheaders, 1, "sync: Content-Length, a bad name and Content-Type dropped");
    IS_INT(st->last_respond_rc, 0, "sync: respond returned 0");
    IS_STR(st->seen_method, "GET", "info: method");
    IS_STR(st->seen_path, "/v1/sync", "info: path without the query");
    IS_STR(st->seen_query, "x=1&y=2", "info: query");
    IS_STR(st->seen_ctype, "application/json", "info: content type");
    IS_STR(st->seen_remote, "127.0.0.1:54321", "info: remote");
    IS_STR(st->seen_accept, "text/plain, application/json", "header: repeated ones joined");
    OK(st->body_nul_ended, "info: body NUL-ended");
    IS_INT(st->small_info_rc, 0, "info: an older, shorter struct is filled");
    OK(st->small_info_left_remote, "info: a member past struct_size is left alone");
    IS_UINT(rmr_fakehost_counter(fh, ins, "http_requests", NULL), 1, "sync: http_requests");
    rmr_fakehost_http_answer_free(fh, a);
    rmr_fakehost_http_answer_free(fh, NULL);

    /* No query: "" as in the agent. */
    rc = rmr_fakehost_http_request(fh, NULL, "GET", "/v1/sync", NULL, 0, NULL, 0, &a);
    IS_INT(rc, 0, "sync: no query, no body");
    IS_STR(st->seen_query, "", "info: query empty when none");
    IS_STR(st->seen_ctype, "(none)", "info: content type NULL when absent");
    rmr_fakehost_free(fh); /* frees the answer too */
}

static void test_http_async(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = make(fh, "", 1);
    struct nt_state *st = nt_last;
    struct rmr_fakehost_http_answer *a = NULL, *b = NULL;
    int rc = rmr_fakehost_http_request(fh, NULL, "POST", "/v1/echo", NULL, 0, "hello", 5, &a);
    IS_INT(rc, RMR_EINPROGRESS, "async: kept by the plugin");
    OK(a != NULL && a->status == 0, "async: no status yet");
    IS_UINT(rmr_fakehost_http_pending(fh), 1, "async: one held");
    rmr_fakehost_advance(fh, 4);
    IS_INT(a->status, 0, "async: not before the plugin's timer");
    rmr_fakehost_advance(fh, 1);
    IS_INT(a->status, 200, "async: answered from the timer");
    IS_STRN(a->body, a->len, "echo:hello", "async: body");
    IS_STR(a->content_type, "text/plain", "async: content type");
    IS_STR(rmr_fakehost_http_answer_header(a, "X-Later"), "yes", "async: header");
    IS_UINT(rmr_fakehost_http_pending(fh), 0, "async: none held");

    /* A client that goes away: the plugin's answer is discarded with RMR_ECONNRESET. */
    rc = rmr_fakehost_http_request(fh, NULL, "POST", "/v1/echo", NULL, 0, "bye", 3, &b);
    IS_INT(rc, RMR_EINPROGRESS, "gone: kept by the plugin");
    rmr_fakehost_http_answer_free(fh, b);
    rmr_fakehost_advance(fh, 5);
    IS_INT(st->last_respond_rc, RMR_ECONNRESET, "gone: respond says the client went");
    IS_UINT(rmr_fakehost_http_pending(fh), 0, "gone: the request is released");
    rmr_fakehost_destroy(fh, ins);
    rmr_fakehost_free(fh);
}

static void test_http_server_answers(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = make(fh, "", 1);
    struct rmr_fakehost_http_answer *a = NULL;

    IS_INT(rmr_fakehost_http_request(fh, NULL, "GET", "/nope", NULL, 0, NULL, 0, &a), 0,
           "404: answered");
    IS_INT(a->status, 404, "404: status");
    IS_STRN(a->body, a->len, "{\"error\":\"not found\"}", "404: body");
    IS_STR(a->content_type, "application/json", "404: content type");

    rmr_fakehost_http_request(fh, NULL, "GET", "/v1/echo", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 405, "405: another method");
    IS_STR(rmr_fakehost_http_answer_header(a, "Allow"), "POST", "405: Allow");

    rmr_fakehost_http_request(fh, NULL, "HEAD", "/v1/status/200", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 200, "HEAD: any-method route");
    IS_UINT(a->len, 0, "HEAD: no body");
    IS_STR(a->content_type, "text/plain", "HEAD: content type kept");

    rmr_fakehost_http_request(fh, NULL, "GET", "/v1/status", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 200, "prefix: the directory itself");
    rmr_fakehost_http_request(fh, NULL, "GET", "/v1/statusx", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 404, "prefix: not a sibling");

    rmr_fakehost_http_request(fh, NULL, "POST", "/v1/status/429", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 429, "429: status");
    IS_STR(rmr_fakehost_http_answer_header(a, "retry-after"), "1", "429: Retry-After added");
    rmr_fakehost_http_request(fh, NULL, "POST", "/v1/status/503r", NULL, 0, NULL, 0, &a);
    IS_STR(rmr_fakehost_http_answer_header(a, "retry-after"), "7", "503: its own Retry-After");
    IS_UINT(a->nheaders, 1, "503: not a second one");
    rmr_fakehost_http_request(fh, NULL, "POST", "/v1/status/204", NULL, 0, NULL, 0, &a);
    OK(a->status == 204 && a->len == 0 && a->content_type == NULL, "204: no body, no type");
    rmr_fakehost_http_request(fh, NULL, "POST", "/v1/status/99", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 500, "status out of range: 500");

    /* Bad requests from the test itself. */
    struct rmr_http_header bad = {"Bad Name", "x"};
    IS_INT(rmr_fakehost_http_request(fh, NULL, "GET", "/v1/sync", &bad, 1, NULL, 0, &a), RMR_EINVAL,
           "request: a header name that is not a token");
    OK(a == NULL, "request: *out NULL on error");
    IS_INT(rmr_fakehost_http_request(fh, NULL, "GET", "v1/sync", NULL, 0, NULL, 0, &a), RMR_EINVAL,
           "request: a path without '/'");
    IS_INT(rmr_fakehost_http_request(fh, NULL, "G T", "/", NULL, 0, NULL, 0, &a), RMR_EINVAL,
           "request: a method that is not a token");
    IS_INT(rmr_fakehost_http_request(fh, NULL, "GET", "/", NULL, 0, NULL, 3, &a), RMR_EINVAL,
           "request: a length without a body");
    IS_INT(rmr_fakehost_http_request(fh, "127.0.0.1:9999", "GET", "/", NULL, 0, NULL, 0, &a),
           RMR_ECONNREFUSED, "request: nobody listens there");
    IS_INT(rmr_fakehost_http_request(fh, "127.0.0.1:9529", "GET", "/v1/sync", NULL, 0, NULL, 0, &a),
           0, "request: the shared listener by its address");
    IS_INT(a->status, 200, "request: ... reaches the plugin");

    /* The host functions' own checks. */
    IS_INT(rmr_http_route(ins, NULL, "POST", "/v1/echo", 0, noop_route, NULL), RMR_EEXIST,
           "route: the same method and path is taken");
    IS_INT(rmr_http_route(ins, NULL, NULL, "/v1/echo", 0, noop_route, NULL), 0,
           "route: any method on the same path is another route");
    IS_INT(rmr_http_route(ins, NULL, "GET", "v1", 0, noop_route, NULL), RMR_EINVAL,
           "route: a path without '/'");
    rmr_fakehost_http_request(fh, NULL, "GET", "/v1/echo", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 204, "route: the any-method route takes GET now");
    rmr_fakehost_http_request(fh, NULL, "POST", "/v1/echo", NULL, 0, "x", 1, &a);
    IS_INT(a->status, 0, "route: the method's own route still wins");
    rmr_fakehost_advance(fh, 5);
    IS_INT(a->status, 200, "route: ... and answers later");
    rmr_fakehost_free(fh);
}

static void test_http_listeners(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = make(fh, "http_address = 8126", 1);
    OK(ins != NULL, "own: starts on its own listener");
    rmr_listener_t *l1 = NULL, *l2 = NULL, *shared = NULL;
    IS_INT(rmr_http_listener(ins, "127.0.0.1:8126", &l1), 0, "own: asked again");
    IS_INT(rmr_http_listener(ins, "localhost:8126", &l2), 0, "own: by another name");
    OK(l1 != NULL && l1 == l2, "own: the same listener for the same address");
    IS_INT(rmr_http_listener(ins, NULL, &shared), 0, "own: the shared one");
    OK(shared != l1, "own: not the shared one");
    IS_INT(rmr_http_listener(ins, "somehost:80", &l2), RMR_EINVAL, "own: no name lookups");
    IS_INT(rmr_http_listener(ins, "::1:80", &l2), RMR_EINVAL, "own: IPv6 needs brackets");
    struct rmr_fakehost_http_answer *a = NULL;
    IS_INT(rmr_fakehost_http_request(fh, "8126", "GET", "/v1/sync", NULL, 0, NULL, 0, &a), 0,
           "own: reached by its address");
    IS_INT(a->status, 200, "own: routed there");
    rmr_fakehost_http_request(fh, NULL, "GET", "/v1/sync", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 404, "own: not on the shared listener");
    rmr_listener_t *l6 = NULL, *l6b = NULL;
    IS_INT(rmr_http_listener(ins, "[::1]:8127", &l6), 0, "own: IPv6");
    IS_INT(rmr_http_listener(ins, "[0:0::1]:8127", &l6b), 0, "own: IPv6 in another spelling");
    OK(l6 == l6b, "own: one listener for both");

    /* The shared listener moved and switched off. */
    IS_INT(rmr_fakehost_set_http_listen(fh, "bad host:1"), RMR_EINVAL, "listen: a bad address");
    IS_INT(rmr_fakehost_set_http_listen(fh, ":9000"), 0, "listen: moved");
    IS_INT(rmr_fakehost_http_request(fh, "0.0.0.0:9000", "GET", "/", NULL, 0, NULL, 0, &a), 0,
           "listen: reached at its new address");
    IS_INT(rmr_fakehost_set_http_listen(fh, "off"), 0, "listen: off");
    IS_INT(rmr_http_listener(ins, NULL, &shared), RMR_ENOTSUP, "listen: off: ENOTSUP");
    IS_INT(rmr_http_route(ins, NULL, "GET", "/x", 0, noop_route, NULL), RMR_ENOTSUP,
           "listen: off: no routes on it");
    IS_INT(rmr_fakehost_http_request(fh, NULL, "GET", "/", NULL, 0, NULL, 0, &a), RMR_ECONNREFUSED,
           "listen: off: nobody answers");

    /* The instance's own listener closes when it stops. */
    IS_INT(rmr_fakehost_stop(fh, ins), 0, "own: stopped");
    IS_INT(rmr_fakehost_http_request(fh, "8126", "GET", "/v1/sync", NULL, 0, NULL, 0, &a),
           RMR_ECONNREFUSED, "own: closed at stop");
    rmr_fakehost_free(fh);
}

static void test_http_lifecycle(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    struct rmr_fakehost_http_answer *a = NULL;
    rmr_instance_t *ins = make(fh, "slow_stop = true", 0);
    struct nt_state *st = nt_last;
    /* Routes made before start (here by the test) answer 503 until start succeeded. */
    IS_INT(rmr_http_route(ins, NULL, "GET", "/early", 0, noop_route, NULL), 0, "early: routed");
    rmr_fakehost_http_request(fh, NULL, "GET", "/early", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 503, "early: 503 before start");
    IS_STR(rmr_fakehost_http_answer_header(a, "Retry-After"), "1", "early: with Retry-After");
    IS_STRN(a->body, a->len, "{\"error\":\"the input is stopping\"}", "early: body");
    IS_INT(rmr_fakehost_start(fh, ins), 0, "early: started");
    rmr_fakehost_http_request(fh, NULL, "GET", "/early", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 204, "early: answered after start");

    /* Held across stop: still answerable; the routes answer 503 while stopping, 404 after. */
    struct rmr_fakehost_http_answer *held = NULL;
    rmr_fakehost_http_request(fh, NULL, "POST", "/v1/echo", NULL, 0, "z", 1, &held);
    IS_INT(rmr_fakehost_stop(fh, ins), RMR_EINPROGRESS, "stopping: in progress");
    rmr_fakehost_http_request(fh, NULL, "GET", "/v1/sync", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 503, "stopping: 503");
    rmr_fakehost_advance(fh, 10);
    OK(rmr_fakehost_stop_finished(fh, ins), "stopping: finished from its timer");
    IS_INT(held->status, 200, "stopping: the held request was answered");
    rmr_fakehost_http_request(fh, NULL, "GET", "/v1/sync", NULL, 0, NULL, 0, &a);
    IS_INT(a->status, 404, "stopped: the routes are gone");
    IS_INT(rmr_http_route(ins, NULL, "GET", "/late", 0, noop_route, NULL), RMR_ESTOPPED,
           "stopped: no new routes");
    IS_INT(st->last_respond_rc, 0, "stopping: its answer went out");
    rmr_fakehost_destroy(fh, ins);

    /* A request held past destroy is released by the fake host, and logged. */
    ins = make(fh, "", 1);
    rmr_fakehost_http_request(fh, NULL, "POST", "/v1/echo", NULL, 0, "q", 1, &a);
    rmr_fakehost_destroy(fh, ins); /* before the plugin's timer answers it */
    IS_UINT(rmr_fakehost_http_pending(fh), 0, "destroy: held requests released");
    IS_INT(a->status, 0, "destroy: never answered");
    CONTAINS(rmr_fakehost_log(fh, rmr_fakehost_log_count(fh) - 1),
             "ERROR fakehost: 'input.nettest' was destroyed holding 1 unanswered HTTP request",
             "destroy: logged");
    rmr_fakehost_free(fh);
}

/* ---- fetches ------------------------------------------------------------------------------- */

#define TASK_URL "http://169.254.170.2/v4/abc/task"

static void test_fetch_file(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    char path[] = "/tmp/remora-fakehost-XXXXXX";
    int fd = mkstemp(path);
    static const char fixture[] = "{\"Cluster\":\"c1\",\"TaskARN\":\"arn:task\"}\n";
    OK(fd >= 0 && write(fd, fixture, sizeof fixture - 1) == (ssize_t)(sizeof fixture - 1),
       "file: fixture written");
    close(fd);
    IS_INT(rmr_fakehost_fetch_serve_file(fh, "GET", TASK_URL, 200, path), 0, "file: served");
    IS_INT(rmr_fakehost_fetch_serve_file(fh, NULL, TASK_URL, 200, "/nonexistent/x"), RMR_ENOENT,
           "file: a missing file");
    unlink(path);

    rmr_instance_t *ins = make(fh, "fetch_url = " TASK_URL, 1);
    struct nt_state *st = nt_last;
    IS_UINT(rmr_fakehost_fetch_count(fh), 1, "fetch: made in start()");
    IS_INT(st->fetch_calls, 0, "fetch: its callback not inside rmr_http_fetch()");
    IS_UINT(rmr_fakehost_fetch_pending(fh), 1, "fetch: pending");
    const struct rmr_fakehost_fetch *f = rmr_fakehost_fetch(fh, 0);
    IS_STR(f->method, "GET", "fetch: method defaults to GET");
    IS_STR(f->url, TASK_URL, "fetch: url");
    IS_UINT(f->nheaders, 2, "fetch: headers");
    IS_STR(rmr_fakehost_fetch_header(f, "x-token"), "t0k", "fetch: header, any case");
    OK(f->ins == ins && f->body == NULL && f->done == 0, "fetch: who, no body, not done");
    rmr_fakehost_advance(fh, 0);
    IS_INT(st->fetch_calls, 1, "fetch: answered on advance(0)");
    IS_INT(st->fetch_status, 200, "fetch: status");
    IS_INT(st->fetch_retry_after_ms, -1, "fetch: no Retry-After");
    IS_UINT(st->fetch_len, sizeof fixture - 1, "fetch: the file's length");
    IS_UINT(rmr_fakehost_emitted_count(fh), 1, "fetch: the plugin emitted");
    IS_METRIC(fh, 0, "nt.fetch.bytes 38 200", "fetch: the metric of the body length");
    OK(f->done && f->status == 200 && f->error == 0, "fetch: the record says done, 200");
    IS_UINT(rmr_fakehost_counter(fh, ins, "http_fetches", "200"), 1, "fetch: http_fetches");
    rmr_fakehost_advance(fh, 1000);
    IS_INT(st->fetch_calls, 1, "fetch: answered once");
    rmr_fakehost_clear_fetches(fh);
    IS_UINT(rmr_fakehost_fetch_count(fh), 0, "fetch: cleared");
    rmr_fakehost_free(fh);
}

static void test_fetch_failures(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_fakehost_fetch_serve(fh, NULL, "http://x/500", 500, "oops", 4);
    rmr_fakehost_fetch_serve_error(fh, "GET", "http://x/slow", RMR_ETIMEDOUT);
    rmr_fakehost_fetch_serve(fh, "GET", "http://x/big", 200, "0123456789", 10);
    IS_INT(rmr_fakehost_fetch_serve_error(fh, NULL, "http://x/", 0), RMR_EINVAL,
           "serve_error: 0 is not an error");

    rmr_instance_t *ins = make(fh, "fetch_url = http://x/500", 1);
    struct nt_state *st = nt_last;
    rmr_fakehost_advance(fh, 0);
    OK(st->fetch_calls == 1 && st->fetch_status == 500 && st->fetch_error == 0, "500: given");
    IS_UINT(rmr_fakehost_counter(fh, ins, "http_fetches", "500"), 1, "500: counted");
    rmr_fakehost_destroy(fh, ins);

    ins = make(fh, "fetch_url = http://x/unserved", 1);
    st = nt_last;
    rmr_fakehost_advance(fh, 0);
    OK(st->fetch_calls == 1 && st->fetch_status == 0 && st->fetch_error == RMR_ECONNREFUSED,
       "unserved: connection refused");
    IS_UINT(rmr_fakehost_counter(fh, ins, "http_fetches", "error"), 1, "unserved: counted");
    rmr_fakehost_destroy(fh, ins);

    ins = make(fh, "fetch_url = http://x/slow\nfetch_timeout = 2s", 1);
    st = nt_last;
    rmr_fakehost_advance(fh, 1999);
    IS_INT(st->fetch_calls, 0, "timeout: not before the fetch's timeout");
    int64_t before = rmr_mono_ns(ins);
    rmr_fakehost_advance(fh, 5);
    OK(st->fetch_calls == 1 && st->fetch_error == RMR_ETIMEDOUT, "timeout: then RMR_ETIMEDOUT");
    IS_INT(rmr_mono_ns(ins) - before, 5000000, "timeout: the clock went on to the end");
    rmr_fakehost_destroy(fh, ins);

    ins = make(fh, "fetch_url = http://x/big\nfetch_max_bytes = 4", 1);
    st = nt_last;
    rmr_fakehost_advance(fh, 0);
    OK(st->fetch_error == RMR_E2BIG && st->fetch_status == 200 && st->fetch_len == 4,
       "E2BIG: status kept, body cut to the cap");
    rmr_fakehost_destroy(fh, ins);

    /* Cancelled at stop, before destroy, with the callback. */
    ins = make(fh, "fetch_url = http://x/slow", 1);
    st = nt_last;
    IS_INT(rmr_fakehost_stop(fh, ins), 0, "cancel: stopped");
    OK(st->fetch_calls == 1 && st->fetch_error == RMR_ECANCELED, "cancel: RMR_ECANCELED at stop");
    IS_UINT(rmr_fakehost_counter(fh, ins, "http_fetches", "error"), 0, "cancel: not counted");
    struct rmr_fetch_spec spec = {.struct_size = sizeof spec, .url = "http://x/500"};
    IS_INT(rmr_http_fetch(ins, &spec, noop_fetch, NULL), RMR_ESTOPPED, "cancel: no new fetches");
    rmr_fakehost_destroy(fh, ins);

    /* Cancelled at destroy when never stopped. */
    ins = make(fh, "fetch_url = http://x/slow", 1);
    rmr_fakehost_destroy(fh, ins);
    CONTAINS(rmr_fakehost_log(fh, rmr_fakehost_log_count(fh) - 1),
             "destroyed after 1 fetch callbacks, the last error -125",
             "cancel: at destroy, before destroy()");
    IS_UINT(rmr_fakehost_fetch_pending(fh), 0, "cancel: nothing pending");

    /* What the agent refuses is refused here. */
    ins = make(fh, "", 1);
    spec.url = "ftp://x/";
    IS_INT(rmr_http_fetch(ins, &spec, noop_fetch, NULL), RMR_EINVAL, "spec: not http(s)");
    spec.url = "http://x/";
    struct rmr_http_header bad = {"X-Bad", "a\r\nb"};
    spec.headers = &bad;
    spec.nheaders = 1;
    IS_INT(rmr_http_fetch(ins, &spec, noop_fetch, NULL), RMR_EINVAL, "spec: CR LF in a value");
    spec.nheaders = 0;
    spec.body = "payload";
    spec.body_len = 7;
    IS_INT(rmr_http_fetch(ins, &spec, noop_fetch, NULL), 0, "spec: with a body");
    const struct rmr_fakehost_fetch *f = rmr_fakehost_fetch(fh, rmr_fakehost_fetch_count(fh) - 1);
    IS_STR(f->method, "POST", "spec: POST with a body, as the agent's client");
    OK(f->body_len == 7 && memcmp(f->body, "payload", 7) == 0, "spec: body copied");
    rmr_fakehost_free(fh);
    IS_INT(noop_fetch_calls, 1, "spec: cancelled at the end, with its callback");
}

struct responder_state {
    int asked;
};

/* /v1/retry answers 429 with Retry-After on the second look; /held never; other URLs are left
 * to the table. */
static int respond(void *arg, const struct rmr_fakehost_fetch *f, struct rmr_response *resp)
{
    struct responder_state *rs = arg;
    rs->asked++;
    if (strcmp(f->url, "http://r/v1/retry") == 0) {
        if (rs->asked < 2)
            return RMR_EINPROGRESS;
        resp->status = 429;
        resp->retry_after_ms = 5000;
        resp->body = "slow down";
        resp->body_len = 9;
        return 0;
    }
    if (strcmp(f->url, "http://r/held") == 0)
        return RMR_EINPROGRESS;
    if (strcmp(f->url, "http://r/reset") == 0)
        return RMR_ECONNRESET;
    return RMR_ENOENT;
}

static void test_fetch_responder(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    struct responder_state rs = {0};
    rmr_fakehost_set_fetch_responder(fh, respond, &rs);
    rmr_fakehost_fetch_serve(fh, NULL, "http://r/table", 201, NULL, 0);

    rmr_instance_t *ins = make(fh, "fetch_url = http://r/v1/retry", 1);
    struct nt_state *st = nt_last;
    rmr_fakehost_advance(fh, 0);
    OK(rs.asked == 1 && st->fetch_calls == 0, "responder: not yet");
    rmr_fakehost_advance(fh, 0);
    OK(st->fetch_calls == 1 && st->fetch_status == 429 && st->fetch_retry_after_ms == 5000,
       "responder: 429 with Retry-After");
    IS_UINT(st->fetch_len, 9, "responder: body");
    rmr_fakehost_destroy(fh, ins);

    ins = make(fh, "fetch_url = http://r/table", 1);
    st = nt_last;
    rmr_fakehost_advance(fh, 0);
    OK(st->fetch_calls == 1 && st->fetch_status == 201 && st->fetch_len == 0,
       "responder: RMR_ENOENT falls back to the table");
    rmr_fakehost_destroy(fh, ins);

    ins = make(fh, "fetch_url = http://r/reset", 1);
    st = nt_last;
    rmr_fakehost_advance(fh, 0);
    OK(st->fetch_calls == 1 && st->fetch_error == RMR_ECONNRESET && st->fetch_status == 0,
       "responder: an error");
    rmr_fakehost_destroy(fh, ins);

    ins = make(fh, "fetch_url = http://r/held\nfetch_timeout = 100ms", 1);
    st = nt_last;
    rs.asked = 0;
    rmr_fakehost_advance(fh, 99);
    OK(st->fetch_calls == 0 && rs.asked == 1, "responder: held, asked once per moment");
    rmr_fakehost_advance(fh, 1);
    OK(st->fetch_calls == 1 && st->fetch_error == RMR_ETIMEDOUT,
       "responder: held past the timeout: RMR_ETIMEDOUT");
    rmr_fakehost_free(fh);
}

/* ---- datagrams ----------------------------------------------------------------------------- */

static void test_dgram(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = make(fh, "listen = udp://127.0.0.1:0\nmax_datagram = 8\nbatch = 2", 1);
    struct nt_state *st = nt_last;
    CONTAINS(rmr_fakehost_log(fh, rmr_fakehost_log_count(fh) - 1),
             "listening on 'udp://127.0.0.1:40000'", "dgram: port 0 gets a port");
    IS_UINT(rmr_fakehost_dgram_count(fh), 1, "dgram: one open");
    const struct rmr_dgram_spec *spec = rmr_fakehost_dgram_spec(fh, NULL);
    OK(spec != NULL && spec->rcvbuf_bytes == 1 << 20 && spec->batch == 2,
       "dgram: the spec as given");
    IS_STR(spec ? spec->address : NULL, "udp://127.0.0.1:0", "dgram: its address as given");
    struct rmr_dgram msgs[] = {
        {"a:1|c", 5, 0},
        {"b:2|c", 5, 0},
        {"long:123456|c", 14, 0},
    };
    IS_INT(rmr_fakehost_dgram_send(fh, NULL, msgs, 3), 0, "dgram: sent");
    IS_INT(st->dgram_calls, 2, "dgram: in arrays of batch");
    IS_UINT(rmr_fakehost_emitted_count(fh), 3, "dgram: one metric each");
    IS_METRIC(fh, 0, "nt.dgram.bytes 5 no", "dgram: first");
    IS_METRIC(fh, 2, "nt.dgram.bytes 8 yes", "dgram: longer than max_datagram: truncated");
    IS_INT(rmr_fakehost_dgram_send(fh, "udp://127.0.0.1:40000", msgs, 1), 0,
           "dgram: by the bound address");
    IS_INT(rmr_fakehost_dgram_send(fh, "127.0.0.1:40000", msgs, 1), 0,
           "dgram: by the address without scheme");
    IS_INT(rmr_fakehost_dgram_send(fh, "udp://127.0.0.1:40001", msgs, 1), RMR_ENOENT,
           "dgram: nobody listens there");
    struct rmr_dgram bad = {NULL, 3, 0};
    IS_INT(rmr_fakehost_dgram_send(fh, NULL, &bad, 1), RMR_EINVAL, "dgram: data NULL");

    /* The host functions, called by the test as a plugin would. */
    struct rmr_dgram_spec s2 = {.struct_size = sizeof s2, .address = "localhost:8125"};
    rmr_dgram_sock_t *sock = NULL, *sock2 = NULL;
    IS_INT(rmr_dgram_listen(ins, &s2, noop_dgrams, NULL, &sock), 0, "listen: another");
    char addr[64];
    IS_INT(rmr_dgram_address(sock, addr, sizeof addr), 0, "listen: its address");
    IS_STR(addr, "udp://127.0.0.1:8125", "listen: as the agent reports it");
    IS_INT(rmr_dgram_address(sock, addr, 4), RMR_ENAMETOOLONG, "listen: a short buffer");
    s2.address = "udp://127.0.0.1:8125";
    IS_INT(rmr_dgram_listen(ins, &s2, noop_dgrams, NULL, &sock2), RMR_EADDRINUSE,
           "listen: the address is taken");
    IS_INT(rmr_fakehost_dgram_send(fh, NULL, msgs, 1), RMR_EINVAL, "dgram: NULL is ambiguous");
    s2.address = "tcp://127.0.0.1:1";
    IS_INT(rmr_dgram_listen(ins, &s2, noop_dgrams, NULL, &sock2), RMR_EINVAL, "listen: scheme");
    s2.address = "unix:///run/x.sock";
    s2.batch = 2000;
    IS_INT(rmr_dgram_listen(ins, &s2, noop_dgrams, NULL, &sock2), RMR_EINVAL, "listen: batch");
    s2.batch = 0;
    IS_INT(rmr_dgram_listen(ins, &s2, noop_dgrams, NULL, &sock2), 0, "listen: unix");
    IS_INT(rmr_fakehost_dgram_send(fh, "unix:///run/x.sock", msgs, 1), 0, "dgram: unix");
    rmr_dgram_close(sock);
    rmr_dgram_close(NULL);
    IS_UINT(rmr_fakehost_dgram_count(fh), 2, "close: forgotten");
    IS_INT(rmr_fakehost_dgram_send(fh, "udp://127.0.0.1:8125", msgs, 1), RMR_ENOENT,
           "close: nothing reaches it");

    IS_INT(rmr_fakehost_stop(fh, ins), 0, "stop: stopped");
    IS_UINT(rmr_fakehost_dgram_count(fh), 0, "stop: its listeners closed");
    IS_INT(rmr_dgram_listen(ins, &s2, noop_dgrams, NULL, &sock2), RMR_ESTOPPED,
           "stop: no new listeners");
    rmr_fakehost_free(fh);
}

/* A callback that closes its own listener: the rest of the datagrams are dropped. */
static rmr_dgram_sock_t *self_closing;
static int self_closing_calls;
static void close_self(rmr_instance_t *ins, void *arg, const struct rmr_dgram *msgs, uint32_t count)
{
    self_closing_calls++;
    rmr_dgram_close(self_closing);
}

static void test_dgram_close_in_callback(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = make(fh, "", 1);
    struct rmr_dgram_spec spec = {
        .struct_size = sizeof spec, .address = "udp://[::1]:0", .batch = 1};
    IS_INT(rmr_dgram_listen(ins, &spec, close_self, NULL, &self_closing), 0, "self: listening");
    struct rmr_dgram msgs[] = {{"x", 1, 0}, {"y", 1, 0}, {"", 0, 0}};
    IS_INT(rmr_fakehost_dgram_send(fh, NULL, msgs, 3), 0, "self: sent");
    IS_INT(self_closing_calls, 1, "self: nothing after the close");
    IS_UINT(rmr_fakehost_dgram_count(fh), 0, "self: closed");
    rmr_fakehost_free(fh);
}

int main(void)
{
    test_table();
    test_http_sync();
    test_http_async();
    test_http_server_answers();
    test_http_listeners();
    test_http_lifecycle();
    test_fetch_file();
    test_fetch_failures();
    test_fetch_responder();
    test_dgram();
    test_dgram_close_in_callback();
    return tap_done();
}
