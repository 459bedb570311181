/* The http output: records as JSON lines (NDJSON) POSTed to a URL, optionally
 * gzip- or zstd-compressed, with extra headers and a bearer token, in the manner of Fluent
 * Bit's out_http. Like every output it only builds payloads; the core's courier sends them,
 * retries with backoff, splits on 413 (the body is one record per line) and halts on 401/403.
 * The token never enters a payload: the headers carry a "{secret:bearer_token}" placeholder
 * that the courier fills in when it sends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/plugin.h>

#include "ndjson/ndjson.h"

enum http_compression { HTTP_COMPRESS_NONE = 0, HTTP_COMPRESS_GZIP = 1, HTTP_COMPRESS_ZSTD = 2 };

struct http_cfg {
    const char *url;
    int32_t compression; /* enum http_compression */
    struct rmr_strlist headers;
    const char *bearer_token;
    uint64_t max_payload_bytes;
};

struct http_state {
    char *url;
    char *headers;        /* "Name: value\r\n" lines, the token as a placeholder */
    uint32_t compression; /* enum rmr_compression */
    size_t max_payload_bytes;
};

static const struct rmr_option http_options[] = {
    RMR_OPT_STR("url", NULL, RMR_OPT_REQUIRED, struct http_cfg, url,
                "where records are POSTed: http://host:port/path or https://..."),
    RMR_OPT_CHOICE("compression", "none", 0, "none|gzip|zstd", struct http_cfg, compression,
                   "compress request bodies (Content-Encoding)"),
    RMR_OPT_STRLIST("headers", NULL, 0, struct http_cfg, headers,
                    "extra request headers, 'Name: value' separated by commas"),
    RMR_OPT_STR("bearer_token", NULL, RMR_OPT_SECRET, struct http_cfg, bearer_token,
                "sent as 'Authorization: Bearer TOKEN'; added when sending, never queued"),
    RMR_OPT_FULL("max_payload_bytes", RMR_OPT_SIZE, 0, "1MiB", NULL, 1024, 268435456.0,
                 struct http_cfg, max_payload_bytes,
                 "a request body holds at most this many bytes before compression"),
    RMR_OPT_END,
};

static const char *const http_schemas[] = {RMR_SCHEMA_DATADOG, RMR_SCHEMA_GUANCE,
                                           RMR_SCHEMA_ELASTIC, NULL};

/* ---- lifecycle ------------------------------------------------------------------------- */

static int valid_header(rmr_instance_t *ins, const char *h)
{
    const char *colon = strchr(h, ':');
    if (colon == NULL || colon == h || strpbrk(h, "\r\n") != NULL) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'headers': '%s' is not 'Name: value'", h);
        return 0;
    }
    for (const char *c = h; c < colon; c++)
        if (*c <= ' ' || *c >= 127) {
            rmr_log(ins, RMR_LOG_ERROR,
                    "invalid 'headers': the name in '%s' has a space or "
                    "control byte",
                    h);
            return 0;
        }
    if (strstr(h, "{secret:") != NULL) {
        rmr_log(ins, RMR_LOG_ERROR,
                "invalid 'headers': '{secret:' is reserved; use "
                "bearer_token for a token");
        return 0;
    }
    return 1;
}

static int http_create(rmr_instance_t *ins, const void *config, void **state)
{
    const struct http_cfg *cfg = config;
    if (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'url': '%s' is not an http:// or https:// URL",
                cfg->url);
        return RMR_ECONFIG;
    }
    if (strstr(cfg->url, "{secret:") != NULL) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'url': '{secret:' is reserved");
        return RMR_ECONFIG;
    }
    size_t hlen = 1;
    for (uint32_t i = 0; i < cfg->headers.count; i++) {
        if (!valid_header(ins, cfg->headers.items[i]))
            return RMR_ECONFIG;
        hlen += strlen(cfg->headers.items[i]) + 2;
    }
    int token = cfg->bearer_token != NULL && cfg->bearer_token[0] != '\0';
    static const char auth[] = "Authorization: Bearer {secret:bearer_token}\r\n";
    if (token)
        hlen += sizeof auth;

    struct http_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->url = strdup(cfg->url);
    st->headers = malloc(hlen);
    if (st->url == NULL || st->headers == NULL) {
        free(st->url);
        free(st->headers);
        free(st);
        return RMR_ENOMEM;
    }
    st->headers[0] = '\0';
    for (uint32_t i = 0; i < cfg->headers.count; i++) {
        strcat(st->headers, cfg->headers.items[i]);
        strcat(st->headers, "\r\n");
    }
    if (token)
        strcat(st->headers, auth);
    switch ((enum http_compression)cfg->compression) {
    case HTTP_COMPRESS_NONE: st->compression = RMR_COMPRESS_NONE; break;
    case HTTP_COMPRESS_GZIP: st->compression = RMR_COMPRESS_GZIP; break;
    case HTTP_COMPRESS_ZSTD: st->compression = RMR_COMPRESS_ZSTD; break;
    }
    st->max_payload_bytes = (size_t)cfg->max_payload_bytes;
    *state = st;
    return 0;
}

static int http_start(rmr_instance_t *ins, void *state)
{
    const struct http_state *st = state;
    rmr_log(ins, RMR_LOG_INFO, "posting records to %s", st->url);
    return 0;
}

static int http_stop(rmr_instance_t *ins, void *state)
{
    return 0;
}

static void http_destroy(rmr_instance_t *ins, void *state)
{
    struct http_state *st = state;
    if (st == NULL)
        return;
    free(st->url);
    free(st->headers);
    free(st);
}

/* ---- encode ------------------------------------------------------------------------------- */

struct out {
    rmr_encoder_t *enc;
    const struct http_state *st;
    struct rmr_payload_spec spec;
    rmr_payload_t *p;
    uint32_t nrecords;
};

static int close_payload(struct out *o)
{
    int rc = 0;
    if (o->p == NULL)
        return 0;
    if (o->nrecords == 0) {
        rmr_payload_discard(o->p);
    } else {
        rc = rmr_payload_commit(o->p, o->nrecords);
    }
    o->p = NULL;
    o->nrecords = 0;
    return rc;
}

static int open_payload(struct out *o)
{
    if ((o->p = rmr_payload_new(o->enc, &o->spec)) == NULL)
        return RMR_ENOMEM;
    o->nrecords = 0;
    return 0;
}

/* Payloads carry one record kind each, so drops and back-pressure are counted per kind. */
static int http_encode(rmr_encoder_t *enc, void *state, const rmr_batch_t *const *batches,
                       uint32_t nbatches)
{
    const struct http_state *st = state;
    struct out o = {.enc = enc, .st = st};
    o.spec = (struct rmr_payload_spec){
        .struct_size = sizeof o.spec,
        .compression = st->compression,
        .endpoint = st->url,
        .content_type = "application/x-ndjson",
        .flags = RMR_PAYLOAD_LINES,
        .headers = st->headers[0] != '\0' ? st->headers : NULL,
    };
    int rc = 0;
    uint32_t present = 0;
    for (uint32_t bi = 0; bi < nbatches; bi++)
        for (uint32_t i = 0, n = rmr_batch_count(batches[bi]); i < n; i++) {
            uint32_t k = rmr_record_kind(batches[bi], i);
            if (k >= RMR_REC_METRIC && k <= RMR_REC_KIND_MAX)
                present |= RMR_REC_BIT(k);
            else
                rmr_encoder_drop(enc, k, "unsupported_kind", 1);
        }
    for (uint32_t kind = RMR_REC_METRIC; kind <= RMR_REC_KIND_MAX; kind++) {
        if (!(present & RMR_REC_BIT(kind)))
            continue;
        o.spec.record_kind = kind;
        for (uint32_t bi = 0; bi < nbatches; bi++) {
            const rmr_batch_t *b = batches[bi];
            for (uint32_t i = 0, n = rmr_batch_count(b); i < n; i++) {
                if (rmr_record_kind(b, i) != kind)
                    continue;
                if (o.p == NULL && (rc = open_payload(&o)) < 0)
                    goto fail;
                int wrote = ndjson_record(o.p, enc, b, i);
                if (wrote < 0) {
                    rc = wrote;
                    goto fail;
                }
                o.nrecords += (uint32_t)wrote;
                if (rmr_payload_len(o.p) >= st->max_payload_bytes && (rc = close_payload(&o)) < 0)
                    goto fail;
            }
        }
        if ((rc = close_payload(&o)) < 0)
            goto fail;
    }
    return 0;
fail:
    rmr_payload_discard(o.p);
    return rc;
}

static const struct rmr_plugin http_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_OUTPUT,
    .name = "http",
    .version = "1.0.0",
    .description = "POSTs records as JSON lines to a URL",
    .options = http_options,
    .config_size = sizeof(struct http_cfg),
    .accepts = RMR_REC_ALL,
    .schemas = http_schemas,
    .create = http_create,
    .start = http_start,
    .stop = http_stop,
    .destroy = http_destroy,
    .encode = http_encode,
};

RMR_PLUGIN_DEFINE(http_plugin)
