/* The file output: every record as one JSON object per line (NDJSON), to standard output or
 * appended to a file. It is remora's embedded default output, so it accepts every record kind
 * and every schema: whatever an input emits can be seen. The line format is documented in
 * README.md and is kept stable (field order included) because people grep and parse it.
 *
 * Like every output this only builds payloads; the host's delivery writes them, so encode()
 * never touches the file itself. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <remora/plugin.h>

#include "ndjson/ndjson.h"

/* Payloads are committed per batch, or sooner once they reach this size, so one huge batch
 * does not become one huge write. */
#define FILE_PAYLOAD_BYTES ((size_t)1 << 20)

enum file_compression { FILE_COMPRESS_NONE = 0, FILE_COMPRESS_GZIP = 1, FILE_COMPRESS_ZSTD = 2 };

struct file_cfg {
    const char *path;
    int32_t compression; /* enum file_compression: index into "none|gzip|zstd" */
};

struct file_state {
    char *endpoint;       /* "file:-" or "file:<path>" */
    uint32_t compression; /* enum rmr_compression */
};

static const struct rmr_option file_options[] = {
    RMR_OPT_STR("path", "-", 0, struct file_cfg, path,
                "file the lines are appended to; '-' is standard output"),
    RMR_OPT_CHOICE("compression", "none", 0, "none|gzip|zstd", struct file_cfg, compression,
                   "compress what is written to a file (concatenated gzip members or zstd "
                   "frames, which gunzip and zstdcat read whole)"),
    RMR_OPT_END,
};

static const char *const file_schemas[] = {RMR_SCHEMA_DATADOG, RMR_SCHEMA_GUANCE,
                                           RMR_SCHEMA_ELASTIC, NULL};

/* ---- lifecycle ------------------------------------------------------------------------- */

static int file_create(rmr_instance_t *ins, const void *config, void **state)
{
    const struct file_cfg *cfg = config;
    struct file_state *st = NULL;
    const char *path = cfg->path != NULL ? cfg->path : "-";
    int rc;

    if (path[0] == '\0') {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'path': empty; use '-' for standard output");
        rc = RMR_ECONFIG;
        goto fail;
    }
    uint32_t method = RMR_COMPRESS_NONE;
    switch ((enum file_compression)cfg->compression) {
    case FILE_COMPRESS_NONE: method = RMR_COMPRESS_NONE; break;
    case FILE_COMPRESS_GZIP: method = RMR_COMPRESS_GZIP; break;
    case FILE_COMPRESS_ZSTD: method = RMR_COMPRESS_ZSTD; break;
    }
    /* Compressed bytes on a terminal or a log collector's pipe help nobody. */
    if (method != RMR_COMPRESS_NONE && strcmp(path, "-") == 0) {
        rmr_log(ins, RMR_LOG_ERROR,
                "invalid 'compression': it applies to files only; set 'path' to a file");
        rc = RMR_ECONFIG;
        goto fail;
    }
    if ((st = calloc(1, sizeof *st)) == NULL) {
        rc = RMR_ENOMEM;
        goto fail;
    }
    size_t n = strlen(path) + sizeof "file:";
    if ((st->endpoint = malloc(n)) == NULL) {
        rc = RMR_ENOMEM;
        goto fail;
    }
    snprintf(st->endpoint, n, "file:%s", path);
    st->compression = method;
    *state = st;
    return 0;

fail:
    if (st != NULL)
        free(st->endpoint);
    free(st);
    return rc;
}

static int file_start(rmr_instance_t *ins, void *state)
{
    return 0;
}

/* Nothing is buffered between encode() calls, so there is nothing to flush. */
static int file_stop(rmr_instance_t *ins, void *state)
{
    return 0;
}

static void file_destroy(rmr_instance_t *ins, void *state)
{
    struct file_state *st = state;
    if (st == NULL)
        return;
    free(st->endpoint);
    free(st);
}

/* ---- encode ------------------------------------------------------------------------------- */

static int commit(rmr_payload_t **p, uint32_t *nrecords)
{
    int rc = 0;
    if (*nrecords > 0)
        rc = rmr_payload_commit(*p, *nrecords);
    else
        rmr_payload_discard(*p);
    *p = NULL;
    *nrecords = 0;
    return rc;
}

static int file_encode(rmr_encoder_t *enc, void *state, const rmr_batch_t *const *batches,
                       uint32_t nbatches)
{
    const struct file_state *st = state;
    const struct rmr_payload_spec spec = {
        .struct_size = sizeof spec,
        .compression = st->compression,
        .endpoint = st->endpoint,
        .content_type = "application/x-ndjson",
        .record_kind = 0,
    };
    struct {
        rmr_payload_t *p;
    } w = {NULL};
    uint32_t nrecords = 0;
    int rc = 0;

    for (uint32_t bi = 0; bi < nbatches; bi++) {
        const rmr_batch_t *b = batches[bi];
        uint32_t n = rmr_batch_count(b);
        for (uint32_t i = 0; i < n; i++) {
            if (w.p == NULL && (w.p = rmr_payload_new(enc, &spec)) == NULL) {
                rc = RMR_ENOMEM;
                goto fail;
            }
            int wrote = ndjson_record(w.p, enc, b, i);
            if (wrote < 0) {
                rc = wrote;
                goto fail;
            }
            nrecords += (uint32_t)wrote;
            if (rmr_payload_len(w.p) >= FILE_PAYLOAD_BYTES && (rc = commit(&w.p, &nrecords)) < 0)
                goto fail;
        }
        if (w.p != NULL && (rc = commit(&w.p, &nrecords)) < 0)
            goto fail;
    }
    return 0;

fail:
    rmr_payload_discard(w.p);
    return rc;
}

static const struct rmr_plugin file_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_OUTPUT,
    .name = "file",
    .version = "1.0.0",
    .description = "writes every record as a JSON line to standard output or a file",
    .options = file_options,
    .config_size = sizeof(struct file_cfg),
    .accepts = RMR_REC_ALL,
    .schemas = file_schemas,
    .create = file_create,
    .start = file_start,
    .stop = file_stop,
    .destroy = file_destroy,
    .encode = file_encode,
};

RMR_PLUGIN_DEFINE(file_plugin)
