/* A test polling input: GETs `url` every `interval` through the host's HTTP client and emits
 * one gauge "fetch.status" (the HTTP status, or the negative error code) tagged with the body
 * length, as a metadata-polling input would. */
#include <stdio.h>
#include <stdlib.h>

#include <remora/plugin.h>

struct fetch_cfg {
    const char *url;
    int64_t interval_ms;
    int64_t timeout_ms;
};

struct fetch_state {
    struct fetch_cfg cfg;
    rmr_timer_t *timer;
};

static const struct rmr_option fetch_options[] = {
    RMR_OPT_STR("url", NULL, RMR_OPT_REQUIRED, struct fetch_cfg, url, "what to GET"),
    RMR_OPT_TIME("interval", "200ms", 0, struct fetch_cfg, interval_ms, "how often"),
    RMR_OPT_TIME("timeout", "1s", 0, struct fetch_cfg, timeout_ms, "request timeout"),
    RMR_OPT_END,
};

static void on_answer(rmr_instance_t *ins, void *arg, const struct rmr_response *resp)
{
    if (resp->error == RMR_ECANCELED)
        return;
    char len[24];
    snprintf(len, sizeof len, "%zu", resp->body_len);
    struct rmr_tag tag = {RMR_STR("len"), rmr_str_c(len)};
    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = RMR_METRIC_GAUGE,
        .name = RMR_STR("fetch.status"),
        .value = resp->status > 0 ? resp->status : resp->error,
        .tags = &tag,
        .ntags = 1,
    };
    rmr_batch_t *b = rmr_batch_new(ins, NULL);
    rmr_metric_add(b, &m);
    rmr_emit(ins, b);
}

static void tick(rmr_instance_t *ins, void *arg)
{
    struct fetch_state *st = arg;
    struct rmr_http_header h = {"X-Test", "fetcher"};
    struct rmr_fetch_spec spec = {
        .struct_size = sizeof spec,
        .nheaders = 1,
        .url = st->cfg.url,
        .headers = &h,
        .timeout_ms = (uint32_t)st->cfg.timeout_ms,
    };
    int rc = rmr_http_fetch(ins, &spec, on_answer, st);
    if (rc < 0)
        rmr_log(ins, RMR_LOG_ERROR, "cannot fetch: %s", rmr_strerror(rc));
}

static int fetch_create(rmr_instance_t *ins, const void *config, void **state)
{
    struct fetch_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->cfg = *(const struct fetch_cfg *)config;
    *state = st;
    return 0;
}

static int fetch_start(rmr_instance_t *ins, void *state)
{
    struct fetch_state *st = state;
    return rmr_timer_start(ins, 1, (uint64_t)st->cfg.interval_ms, tick, st, &st->timer);
}

static int fetch_stop(rmr_instance_t *ins, void *state)
{
    struct fetch_state *st = state;
    rmr_timer_stop(st->timer);
    st->timer = NULL;
    return 0;
}

static void fetch_destroy(rmr_instance_t *ins, void *state)
{
    free(state);
}

static const struct rmr_plugin fetch_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "fetcher",
    .version = "1.0.0",
    .description = "test input: polls a URL",
    .options = fetch_options,
    .config_size = sizeof(struct fetch_cfg),
    .create = fetch_create,
    .start = fetch_start,
    .stop = fetch_stop,
    .destroy = fetch_destroy,
};

RMR_PLUGIN_DEFINE(fetch_plugin)
