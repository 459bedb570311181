/* A test input on the shared HTTP listener: POST /test/echo answers {"len":N,"lines":K} for
 * the decoded body, after ?delay=MS when asked (an asynchronous answer), and emits one log
 * record per body line; when emit answers RMR_EFULL it answers 429, as an HTTP input must.
 * With `listen` set it also serves the route on a listener of its own (as ddtrace on 8126). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/plugin.h>

struct echo_cfg {
    const char *listen;
};

struct echo_state {
    struct echo_cfg cfg;
};

static const struct rmr_option echo_options[] = {
    RMR_OPT_STR("listen", NULL, 0, struct echo_cfg, listen, "an own listener's address"),
    RMR_OPT_END,
};

struct pending {
    rmr_http_req_t *req;
    char body[96];
    rmr_timer_t *timer;
};

static void answer_later(rmr_instance_t *ins, void *arg)
{
    struct pending *p = arg;
    rmr_http_respond(p->req, 200, NULL, 0, "application/json", p->body, strlen(p->body));
    rmr_timer_stop(p->timer);
    free(p);
}

static void on_echo(rmr_instance_t *ins, void *arg, rmr_http_req_t *req)
{
    struct rmr_http_req_info info = {.struct_size = sizeof info};
    rmr_http_req_info(req, &info);
    size_t lines = 0;
    rmr_batch_t *b = rmr_batch_new(ins, NULL);
    const char *s = info.body, *end = info.body + info.body_len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl != NULL ? nl : end;
        if (e > s) {
            struct rmr_log l = {
                .struct_size = sizeof l,
                .message = {s, (size_t)(e - s)},
                .status = RMR_STR("info"),
            };
            rmr_log_add(b, &l);
            lines++;
        }
        s = e + 1;
    }
    if (rmr_emit(ins, b) == RMR_EFULL) {
        static const char full[] = "{\"error\":\"queue full\"}";
        rmr_http_respond(req, 429, NULL, 0, "application/json", full, sizeof full - 1);
        return;
    }
    char out[96];
    snprintf(out, sizeof out, "{\"len\":%zu,\"lines\":%zu}", info.body_len, lines);
    long delay = 0;
    if (strncmp(info.query, "delay=", 6) == 0)
        delay = strtol(info.query + 6, NULL, 10);
    if (delay <= 0) {
        struct rmr_http_header h = {"X-Echo", "yes"};
        rmr_http_respond(req, 200, &h, 1, "application/json", out, strlen(out));
        return;
    }
    struct pending *p = calloc(1, sizeof *p);
    p->req = req;
    snprintf(p->body, sizeof p->body, "%s", out);
    rmr_timer_start(ins, (uint64_t)delay, 0, answer_later, p, &p->timer);
}

static int echo_create(rmr_instance_t *ins, const void *config, void **state)
{
    struct echo_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->cfg = *(const struct echo_cfg *)config;
    *state = st;
    return 0;
}

static int echo_start(rmr_instance_t *ins, void *state)
{
    struct echo_state *st = state;
    int rc = rmr_http_route(ins, NULL, "POST", "/test/echo", 0, on_echo, st);
    if (rc == 0 && st->cfg.listen != NULL) {
        rmr_listener_t *own = NULL;
        rc = rmr_http_listener(ins, st->cfg.listen, &own);
        if (rc == 0)
            rc = rmr_http_route(ins, own, "POST", "/test/echo", 0, on_echo, st);
    }
    return rc;
}

static void echo_destroy(rmr_instance_t *ins, void *state)
{
    free(state);
}

static const struct rmr_plugin echo_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "echo",
    .version = "1.0.0",
    .description = "test input: POST /test/echo",
    .options = echo_options,
    .config_size = sizeof(struct echo_cfg),
    .create = echo_create,
    .start = echo_start,
    .destroy = echo_destroy,
};

RMR_PLUGIN_DEFINE(echo_plugin)
