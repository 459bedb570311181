/* An example output: writes each metric as a line "name value" to a payload whose endpoint is
 * the option "path" (default "file:-", standard output; "file:/var/log/m.txt" appends to a
 * file). It accepts metrics only; the host counts records of other kinds as dropped before
 * encode() runs, so encode() just skips them.
 *
 * Like every output it only builds payloads; the host writes them, so encode() does no I/O. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/plugin.h>

struct sc_cfg {
    const char *path; /* the payload endpoint */
};

struct sc_state {
    const char *endpoint; /* borrowed from the config, valid until destroy */
};

static const struct rmr_option sc_options[] = {
    RMR_OPT_STR("path", "file:-", 0, struct sc_cfg, path,
                "where lines go: file:- (standard output) or file:PATH"),
    RMR_OPT_END,
};

static int sc_create(rmr_instance_t *ins, const void *config, void **state)
{
    const struct sc_cfg *cfg = config;
    if (cfg->path == NULL || strncmp(cfg->path, "file:", 5) != 0 || cfg->path[5] == '\0') {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'path': expected file:- or file:PATH");
        return RMR_ECONFIG;
    }
    struct sc_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->endpoint = cfg->path;
    *state = st;
    return 0;
}

static void sc_destroy(rmr_instance_t *ins, void *state)
{
    (void)ins;
    free(state);
}

/* Writes a metric name with spaces and control bytes replaced by '_', so that one metric is
 * always exactly one "name value" line. */
static int write_name(rmr_payload_t *p, struct rmr_str name)
{
    uint32_t start = 0;
    for (uint32_t i = 0; i < name.len; i++) {
        unsigned char c = (unsigned char)name.ptr[i];
        if (c > ' ' && c != 0x7f)
            continue;
        int rc = rmr_payload_write(p, name.ptr + start, i - start);
        if (rc == 0)
            rc = rmr_payload_write(p, "_", 1);
        if (rc < 0)
            return rc;
        start = i + 1;
    }
    return rmr_payload_write(p, name.ptr + start, name.len - start);
}

static int sc_encode(rmr_encoder_t *enc, void *state, const rmr_batch_t *const *batches,
                     uint32_t nbatches)
{
    const struct sc_state *st = state;
    struct rmr_payload_spec spec = {
        .struct_size = sizeof spec,
        .compression = RMR_COMPRESS_NONE,
        .endpoint = st->endpoint,
        .content_type = "text/plain",
        .record_kind = RMR_REC_METRIC,
    };
    rmr_payload_t *p = rmr_payload_new(enc, &spec);
    if (p == NULL)
        return RMR_ENOMEM;
    uint32_t lines = 0;
    int rc = 0;
    for (uint32_t b = 0; b < nbatches; b++) {
        uint32_t n = rmr_batch_count(batches[b]);
        for (uint32_t i = 0; i < n; i++) {
            if (rmr_record_kind(batches[b], i) != RMR_REC_METRIC)
                continue;
            struct rmr_metric m;
            memset(&m, 0, sizeof m);
            m.struct_size = sizeof m;
            if ((rc = rmr_metric_get(batches[b], i, &m)) < 0)
                goto fail;
            /* Multi-field points and distributions carry no single value to print. */
            if (m.nfields > 0 || m.type == RMR_METRIC_DISTRIBUTION) {
                rmr_encoder_drop(enc, RMR_REC_METRIC, "no_single_value", 1);
                continue;
            }
            if (!isfinite(m.value)) {
                rmr_encoder_drop(enc, RMR_REC_METRIC, "non_finite", 1);
                continue;
            }
            char num[40];
            int len = snprintf(num, sizeof num, " %.17g\n", m.value);
            if ((rc = write_name(p, m.name)) < 0 ||
                (rc = rmr_payload_write(p, num, (size_t)len)) < 0)
                goto fail;
            lines++;
        }
    }
    if (lines == 0) {
        rmr_payload_discard(p);
        return 0;
    }
    return rmr_payload_commit(p, lines);

fail:
    rmr_payload_discard(p);
    return rc;
}

static const struct rmr_plugin sc_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_OUTPUT,
    .name = "stdout_counter",
    .version = "1.0.0",
    .description = "writes metrics as 'name value' lines",
    .options = sc_options,
    .config_size = sizeof(struct sc_cfg),
    .accepts = RMR_REC_BIT(RMR_REC_METRIC),
    .schemas = NULL, /* schema-less batches only */
    .create = sc_create,
    .destroy = sc_destroy,
    .encode = sc_encode,
};

RMR_PLUGIN_DEFINE(sc_plugin)
