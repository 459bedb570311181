/* A test input: emits `count` gauges named "seq" whose values are 0, 1, 2 ... (and a tag
 * seq:N), `per_tick` of them every `interval`, so a receiver can check that every record
 * arrived, none twice missing. When emit answers RMR_EFULL (an output blocks) the same records
 * are offered again on the next tick, as an HTTP input's client would resend them. */
#include <stdio.h>
#include <stdlib.h>

#include <remora/plugin.h>

struct seq_cfg {
    int64_t count;
    int64_t per_tick;
    int64_t interval_ms;
};

struct seq_state {
    struct seq_cfg cfg;
    int64_t next;
    rmr_timer_t *timer;
};

static const struct rmr_option seq_options[] = {
    RMR_OPT_INTEGER("count", "1000", 0, struct seq_cfg, count, "records to emit in all"),
    RMR_OPT_INTEGER("per_tick", "100", 0, struct seq_cfg, per_tick, "records per tick"),
    RMR_OPT_TIME("interval", "50ms", 0, struct seq_cfg, interval_ms, "time between ticks"),
    RMR_OPT_END,
};

static void tick(rmr_instance_t *ins, void *arg)
{
    struct seq_state *st = arg;
    if (st->next >= st->cfg.count)
        return;
    rmr_batch_t *b = rmr_batch_new(ins, NULL);
    if (b == NULL)
        return;
    int64_t end = st->next + st->cfg.per_tick;
    if (end > st->cfg.count)
        end = st->cfg.count;
    for (int64_t i = st->next; i < end; i++) {
        char v[24];
        snprintf(v, sizeof v, "%lld", (long long)i);
        struct rmr_tag tag = {RMR_STR("seq"), rmr_str_c(v)};
        struct rmr_metric m = {
            .struct_size = sizeof m,
            .type = RMR_METRIC_GAUGE,
            .name = RMR_STR("seq"),
            .value = (double)i,
            .tags = &tag,
            .ntags = 1,
        };
        rmr_metric_add(b, &m);
    }
    if (rmr_emit(ins, b) == 0)
        st->next = end;
}

static int seq_create(rmr_instance_t *ins, const void *config, void **state)
{
    struct seq_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->cfg = *(const struct seq_cfg *)config;
    *state = st;
    return 0;
}

static int seq_start(rmr_instance_t *ins, void *state)
{
    struct seq_state *st = state;
    return rmr_timer_start(ins, 1, (uint64_t)st->cfg.interval_ms, tick, st, &st->timer);
}

static int seq_stop(rmr_instance_t *ins, void *state)
{
    struct seq_state *st = state;
    rmr_timer_stop(st->timer);
    st->timer = NULL;
    return 0;
}

static void seq_destroy(rmr_instance_t *ins, void *state)
{
    free(state);
}

static const struct rmr_plugin seq_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "seq",
    .version = "1.0.0",
    .description = "test input: numbered gauges",
    .options = seq_options,
    .config_size = sizeof(struct seq_cfg),
    .create = seq_create,
    .start = seq_start,
    .stop = seq_stop,
    .destroy = seq_destroy,
};

RMR_PLUGIN_DEFINE(seq_plugin)
