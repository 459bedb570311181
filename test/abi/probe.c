/* A test plugin compiled several ways (test/abi/meson.build): against the frozen 1.0 headers,
 * with a descriptor claiming another ABI major or a newer minor, and as an output with a
 * required key and a secret. It emits gauge "abi.probe" every interval. */
#include <stdlib.h>
#include <string.h>

#include <remora/plugin.h>

#ifndef PROBE_NAME
#define PROBE_NAME "abi_probe"
#endif
#ifndef PROBE_ABI_MAJOR
#define PROBE_ABI_MAJOR RMR_ABI_MAJOR
#endif
#ifndef PROBE_ABI_MINOR
#define PROBE_ABI_MINOR RMR_ABI_MINOR
#endif

struct probe_cfg {
    int64_t interval_ms;
    const char *path;
    const char *token;
};

struct probe {
    const struct probe_cfg *cfg;
    rmr_timer_t *timer;
};

static int probe_create(rmr_instance_t *ins, const void *config, void **state)
{
    struct probe *p = calloc(1, sizeof *p);
    if (p == NULL)
        return RMR_ENOMEM;
    p->cfg = config;
    *state = p;
    return 0;
}

static void tick(rmr_instance_t *ins, void *arg)
{
    rmr_batch_t *b = rmr_batch_new(ins, NULL);
    if (b == NULL)
        return;
    struct rmr_tag tag = {RMR_STR("plugin"), RMR_STR(PROBE_NAME)};
    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = RMR_METRIC_GAUGE,
        .name = RMR_STR("abi.probe"),
        .value = 1,
        .tags = &tag,
        .ntags = 1,
    };
    if (rmr_metric_add(b, &m) != 0) {
        rmr_batch_free(b);
        return;
    }
    (void)rmr_emit(ins, b);
}

static int probe_start(rmr_instance_t *ins, void *state)
{
    struct probe *p = state;
    if (p->cfg->interval_ms == 0)
        return 0;
    return rmr_timer_start(ins, (uint64_t)p->cfg->interval_ms, (uint64_t)p->cfg->interval_ms, tick,
                           p, &p->timer);
}

static int probe_stop(rmr_instance_t *ins, void *state)
{
    struct probe *p = state;
    rmr_timer_stop(p->timer);
    p->timer = NULL;
    return 0;
}

static void probe_destroy(rmr_instance_t *ins, void *state)
{
    free(state);
}

/* The output flavour writes "name value" lines to the file named by its required path. */
__attribute__((unused)) static int probe_encode(rmr_encoder_t *enc, void *state,
                                                const rmr_batch_t *const *batches, uint32_t n)
{
    const struct probe *p = state;
    char endpoint[4096] = "file:";
    strncat(endpoint, p->cfg->path, sizeof endpoint - 6);
    struct rmr_payload_spec spec = {.struct_size = sizeof spec, .endpoint = endpoint};
    rmr_payload_t *out = rmr_payload_new(enc, &spec);
    if (out == NULL)
        return RMR_ENOMEM;
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t r = 0; r < rmr_batch_count(batches[i]); r++) {
            struct rmr_metric m = {.struct_size = sizeof m};
            if (rmr_metric_get(batches[i], r, &m) != 0)
                continue;
            rmr_payload_write(out, m.name.ptr, m.name.len);
            rmr_payload_puts(out, "\n");
            count++;
        }
    }
    return rmr_payload_commit(out, count);
}

#ifdef PROBE_OUTPUT
static const struct rmr_option probe_options[] = {
    RMR_OPT_STR("path", NULL, RMR_OPT_REQUIRED, struct probe_cfg, path, "file to write"),
    RMR_OPT_STR("token", "", RMR_OPT_SECRET, struct probe_cfg, token, "a secret"),
    RMR_OPT_END,
};
#else
static const struct rmr_option probe_options[] = {
    RMR_OPT_TIME("interval", "1s", 0, struct probe_cfg, interval_ms, "how often to emit"),
    RMR_OPT_END,
};
#endif

static const struct rmr_plugin probe_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = PROBE_ABI_MAJOR,
    .abi_minor = PROBE_ABI_MINOR,
#ifdef PROBE_OUTPUT
    .kind = RMR_KIND_OUTPUT,
    .accepts = RMR_REC_BIT(RMR_REC_METRIC),
    .encode = probe_encode,
#else
    .kind = RMR_KIND_INPUT,
#endif
    .name = PROBE_NAME,
    .version = "1.0.0",
    .description = "a plugin for the ABI tests",
    .options = probe_options,
    .config_size = sizeof(struct probe_cfg),
    .create = probe_create,
    .start = probe_start,
    .stop = probe_stop,
    .destroy = probe_destroy,
};

RMR_PLUGIN_DEFINE(probe_plugin)
