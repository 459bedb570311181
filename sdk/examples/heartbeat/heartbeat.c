/* An example input: emits the gauge example.heartbeat = 1 (tag source:example) every interval.
 *
 * Built only from the installed SDK, as a third party would build a plugin:
 *   cc -shared -fPIC $(pkg-config --cflags remora-sdk) -o heartbeat.so heartbeat.c
 * Everything the plugin needs comes through the handles the host passes in; it keeps no
 * mutable globals, so several instances ([input.heartbeat.a], [input.heartbeat.b]) coexist. */
#include <stdlib.h>

#include <remora/plugin.h>

struct hb_cfg {
    int64_t interval_ms; /* filled by the host from the "interval" option */
};

struct hb_state {
    int64_t interval_ms;
    rmr_timer_t *timer;
};

static const struct rmr_option hb_options[] = {
    RMR_OPT_TIME("interval", "1s", 0, struct hb_cfg, interval_ms, "how often to emit"),
    RMR_OPT_END,
};

static void hb_tick(rmr_instance_t *ins, void *arg)
{
    (void)arg; /* the state is not needed: each tick is independent */
    rmr_batch_t *b = rmr_batch_new(ins, NULL);
    if (b == NULL) {
        rmr_log(ins, RMR_LOG_WARN, "cannot emit 'example.heartbeat': out of memory");
        return;
    }
    struct rmr_tag tags[] = {{RMR_STR("source"), RMR_STR("example")}};
    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = RMR_METRIC_GAUGE,
        .name = RMR_STR("example.heartbeat"),
        .value = 1,
        .time_ns = rmr_now_ns(ins),
        .tags = tags,
        .ntags = 1,
    };
    int rc = rmr_metric_add(b, &m);
    if (rc < 0) {
        rmr_batch_free(b);
        rmr_log(ins, RMR_LOG_WARN, "cannot emit 'example.heartbeat': %s", rmr_strerror(rc));
        return;
    }
    /* rmr_emit takes the batch even when it fails; the host counts what it dropped. */
    rc = rmr_emit(ins, b);
    if (rc < 0)
        rmr_log(ins, RMR_LOG_WARN, "cannot emit 'example.heartbeat': %s", rmr_strerror(rc));
}

static int hb_create(rmr_instance_t *ins, const void *config, void **state)
{
    const struct hb_cfg *cfg = config;
    if (cfg->interval_ms <= 0) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'interval': it must be positive");
        return RMR_ECONFIG;
    }
    struct hb_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->interval_ms = cfg->interval_ms;
    *state = st;
    return 0;
}

static int hb_start(rmr_instance_t *ins, void *state)
{
    struct hb_state *st = state;
    return rmr_timer_start(ins, (uint64_t)st->interval_ms, (uint64_t)st->interval_ms, hb_tick, st,
                           &st->timer);
}

/* Nothing is buffered, so stopping is immediate. */
static int hb_stop(rmr_instance_t *ins, void *state)
{
    (void)ins;
    struct hb_state *st = state;
    rmr_timer_stop(st->timer);
    st->timer = NULL;
    return 0;
}

static void hb_destroy(rmr_instance_t *ins, void *state)
{
    (void)ins;
    struct hb_state *st = state;
    if (st == NULL)
        return;
    rmr_timer_stop(st->timer);
    free(st);
}

static const struct rmr_plugin hb_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "heartbeat",
    .version = "1.0.0",
    .description = "emits example.heartbeat every interval",
    .options = hb_options,
    .config_size = sizeof(struct hb_cfg),
    .create = hb_create,
    .start = hb_start,
    .stop = hb_stop,
    .destroy = hb_destroy,
};

RMR_PLUGIN_DEFINE(hb_plugin)
