/* A test output for rmr_output_halt() (ABI 1.3): it halts itself at start, as an output whose
 * credentials a startup check refused would, then ships metrics as NDJSON lines
 * {"name":..,"value":..} to `url` once the courier's probe is accepted. */
#include <stdio.h>
#include <stdlib.h>

#include <remora/plugin.h>

struct haltout_cfg {
    const char *url;
};

static const struct rmr_option haltout_options[] = {
    RMR_OPT_STR("url", NULL, RMR_OPT_REQUIRED, struct haltout_cfg, url, "where lines go"),
    RMR_OPT_END,
};

static int haltout_create(rmr_instance_t *ins, const void *config, void **state)
{
    (void)ins;
    *state = (void *)config;
    return 0;
}

static int haltout_start(rmr_instance_t *ins, void *state)
{
    (void)state;
    if (!RMR_HOST_HAS(ins, output_halt))
        return RMR_ENOTSUP;
    return rmr_output_halt(ins, "told to halt at start");
}

static void haltout_destroy(rmr_instance_t *ins, void *state)
{
    (void)ins;
    (void)state;
}

static int haltout_encode(rmr_encoder_t *enc, void *state, const rmr_batch_t *const *batches,
                          uint32_t nbatches)
{
    const struct haltout_cfg *cfg = state;
    struct rmr_payload_spec spec = {
        .struct_size = sizeof spec,
        .endpoint = cfg->url,
        .content_type = "application/x-ndjson",
        .record_kind = RMR_REC_METRIC,
        .flags = RMR_PAYLOAD_LINES,
    };
    rmr_payload_t *p = rmr_payload_new(enc, &spec);
    if (p == NULL)
        return RMR_ENOMEM;
    uint32_t n = 0;
    for (uint32_t bi = 0; bi < nbatches; bi++) {
        for (uint32_t i = 0, c = rmr_batch_count(batches[bi]); i < c; i++) {
            struct rmr_metric m = {.struct_size = sizeof m};
            if (rmr_metric_get(batches[bi], i, &m) < 0)
                continue;
            char line[128];
            int len = snprintf(line, sizeof line, "{\"name\":\"%.*s\",\"value\":%.17g}\n",
                               (int)(m.name.len < 64 ? m.name.len : 64), m.name.ptr, m.value);
            rmr_payload_write(p, line, (size_t)len);
            n++;
        }
    }
    if (n == 0) {
        rmr_payload_discard(p);
        return 0;
    }
    return rmr_payload_commit(p, n);
}

static const struct rmr_plugin haltout_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_OUTPUT,
    .name = "haltout",
    .version = "1.0.0",
    .description = "test output: halts itself at start",
    .options = haltout_options,
    .config_size = sizeof(struct haltout_cfg),
    .accepts = RMR_REC_BIT(RMR_REC_METRIC),
    .create = haltout_create,
    .start = haltout_start,
    .destroy = haltout_destroy,
    .encode = haltout_encode,
};

RMR_PLUGIN_DEFINE(haltout_plugin)
