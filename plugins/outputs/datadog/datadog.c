/* The datadog output: metrics, distributions, events and service checks to the Datadog intake
 * the way the Datadog Agent sends them (PROTOCOLS.md 9): series as /api/v2/series JSON (or
 * /api/v1/series JSON for older endpoints and VictoriaMetrics), distributions as protobuf
 * SketchPayloads to /api/beta/sketches, events one per request to /api/v1/events, service
 * checks as a JSON array to /api/v1/check_run. Like every output it only builds payloads; the
 * core's courier sends, retries 408/429/5xx and network errors (Retry-After honoured) and halts
 * on 401/403.
 *
 * The API key never enters a payload: each request carries the header
 * "DD-API-KEY: {secret:api_key}", which the courier fills in when it sends. The plugin itself
 * reads the key once, for the GET /api/v1/validate it makes at start, and never logs it.
 *
 * Limits are never exceeded: bodies are compressed here (not by the host on commit), so the
 * size on the wire is known exactly before a payload is committed; a body over its bound is
 * cut shorter in proportion and compressed again until it fits (README.md, "Limits"). Traces
 * and logs (a later issue) slot in as two more streams with their own endpoints and bounds. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>
#include <zstd.h>

#include <remora/plugin.h>

#include "numfmt/numfmt.h"
#include "pb.h"

#define DD_VERSION      "1.0.0"
#define DD_DEFAULT_SITE "datadoghq.com"
/* The Agent's serializer bounds (PROTOCOLS.md 9.2): v2 series ... */
#define DD_V2_MAX_POINTS     10000
#define DD_V2_MAX_RAW_BYTES  5242880
#define DD_V2_MAX_WIRE_BYTES 512000
/* ... and every other payload (v1 series, sketches, check runs, events): 4 MiB uncompressed,
 * 2.5 MB compressed (the lower reading of the Agent's "2.5 MB", below its 2.5 MiB). */
#define DD_MAX_RAW_BYTES  4194304
#define DD_MAX_WIRE_BYTES 2500000
/* The Agent's default zstd level for metrics payloads (serializer_zstd_compressor_level). */
#define DD_ZSTD_LEVEL 1

enum dd_compression { DD_ZSTD = 0, DD_GZIP = 1, DD_DEFLATE = 2, DD_NONE = 3 };
enum dd_api_version { DD_API_V2 = 0, DD_API_V1 = 1 };

struct dd_cfg {
    const char *api_key;
    const char *site;
    const char *url;
    int32_t api_version; /* enum dd_api_version */
    int32_t compression; /* enum dd_compression */
    int32_t validate;
};

struct dd_state {
    char *base;          /* scheme://host[:port][/path], no trailing '/' */
    char *base_logged;   /* base without user:password@ */
    char *ep_series;     /* base + /api/v2/series or /api/v1/series */
    char *ep_sketches;   /* base + /api/beta/sketches */
    char *ep_events;     /* base + /api/v1/events */
    char *ep_checks;     /* base + /api/v1/check_run */
    char *url_validate;  /* base + /api/v1/validate */
    char *headers;       /* DD-API-KEY placeholder and Content-Encoding: v2 series */
    char *headers_other; /* the same for every other payload */
    char *host;          /* the host of records without one; NULL on ECS Fargate */
    const char *api_key; /* borrowed from the config; only for the validate fetch */
    int v1;
    int validate;
    uint32_t compression;       /* enum dd_compression: v2 series */
    uint32_t compression_other; /* every other payload (zstd becomes deflate) */
};

static const struct rmr_option dd_options[] = {
    RMR_OPT_FULL("api_key", RMR_OPT_STRING, RMR_OPT_REQUIRED | RMR_OPT_SECRET | RMR_OPT_ENABLES,
                 NULL, "DD_API_KEY", 0, 0, struct dd_cfg, api_key,
                 "the Datadog API key, sent as the DD-API-KEY header"),
    RMR_OPT_FULL("site", RMR_OPT_STRING, 0, DD_DEFAULT_SITE, "DD_SITE", 0, 0, struct dd_cfg, site,
                 "the Datadog site: data goes to https://api.<site>"),
    RMR_OPT_FULL("url", RMR_OPT_STRING, 0, NULL, "DD_DD_URL,DD_URL", 0, 0, struct dd_cfg, url,
                 "overrides the intake's base URL (a proxy, a test intake, VictoriaMetrics' "
                 "http://host:8428/datadog)"),
    RMR_OPT_CHOICE("api_version", "v2", 0, "v2|v1", struct dd_cfg, api_version,
                   "series endpoint and JSON shape: /api/v2/series or /api/v1/series"),
    RMR_OPT_CHOICE("compression", "zstd", 0, "zstd|gzip|deflate|none", struct dd_cfg, compression,
                   "request body compression (Content-Encoding)"),
    RMR_OPT_BOOLEAN("validate", "true", 0, struct dd_cfg, validate,
                    "check the API key once at start with GET /api/v1/validate"),
    RMR_OPT_END,
};

static const char *const dd_schemas[] = {RMR_SCHEMA_DATADOG, NULL};

/* Content-Encoding values as Datadog's public API names them: zstd is "zstd1"
 * (MetricContentEncoding of /api/v2/series). The public API documents zstd for v2 series only (v1
 * series and events: deflate and gzip), so with compression = zstd every other payload goes
 * deflate, the encoding the Agent sent everything with for years. */
static const char *const encoding_names[] = {
    [DD_ZSTD] = "zstd1", [DD_GZIP] = "gzip", [DD_DEFLATE] = "deflate", [DD_NONE] = NULL};

static char *encoding_headers(uint32_t compression)
{
    const char *enc = encoding_names[compression];
    char headers[96];
    if (enc != NULL)
        snprintf(headers, sizeof headers,
                 "DD-API-KEY: {secret:api_key}\r\nContent-Encoding: %s\r\n", enc);
    else
        snprintf(headers, sizeof headers, "DD-API-KEY: {secret:api_key}\r\n");
    return strdup(headers);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void state_free(struct dd_state *st)
{
    if (st == NULL)
        return;
    free(st->base);
    free(st->base_logged);
    free(st->ep_series);
    free(st->ep_sketches);
    free(st->ep_events);
    free(st->ep_checks);
    free(st->url_validate);
    free(st->headers);
    free(st->headers_other);
    free(st->host);
    free(st);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s != NULL) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

static int is_true(const char *v)
{
    return v != NULL && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
                         strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0);
}

/* On ECS Fargate the Agent reports no host: the task's tags identify the resource. */
static int on_fargate(void)
{
    const char *env = getenv("AWS_EXECUTION_ENV");
    return (env != NULL && strcmp(env, "AWS_ECS_FARGATE") == 0) || is_true(getenv("ECS_FARGATE"));
}

/* The base URL: url when given (a trailing '/' dropped), else https://api.<site>. */
static int make_base(rmr_instance_t *ins, const struct dd_cfg *cfg, struct dd_state *st)
{
    const char *url = cfg->url != NULL && cfg->url[0] != '\0' ? cfg->url : NULL;
    if (url == NULL) {
        const char *site = cfg->site != NULL && cfg->site[0] != '\0' ? cfg->site : DD_DEFAULT_SITE;
        for (const char *c = site; *c != '\0'; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '-')) {
                rmr_log(ins, RMR_LOG_ERROR,
                        "invalid 'site' '%s': expected a domain such as datadoghq.eu", site);
                return RMR_ECONFIG;
            }
        st->base = join("https://api.", site);
        st->base_logged = st->base != NULL ? strdup(st->base) : NULL;
        return st->base != NULL && st->base_logged != NULL ? 0 : RMR_ENOMEM;
    }
    size_t skip = strncmp(url, "http://", 7) == 0 ? 7 : strncmp(url, "https://", 8) == 0 ? 8 : 0;
    if (skip == 0 || url[skip] == '\0' || url[skip] == '/') {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'url': expected an http:// or https:// URL");
        return RMR_ECONFIG;
    }
    if (strstr(url, "{secret:") != NULL || strpbrk(url, " \t\r\n?#") != NULL) {
        rmr_log(ins, RMR_LOG_ERROR,
                "invalid 'url': it holds a space, a query, a fragment or '{secret:'");
        return RMR_ECONFIG;
    }
    size_t len = strlen(url);
    while (len > skip && url[len - 1] == '/')
        len--;
    if ((st->base = strndup(url, len)) == NULL)
        return RMR_ENOMEM;
    /* Only scheme://host[:port][/path] is logged: user:password@ stays out. */
    const char *host = url + skip;
    const char *slash = strchr(host, '/');
    const char *at = memchr(host, '@', (size_t)((slash != NULL ? slash : url + len) - host));
    if (at == NULL) {
        st->base_logged = strdup(st->base);
    } else if ((st->base_logged = malloc(len + 1)) != NULL) {
        memcpy(st->base_logged, url, skip);
        memcpy(st->base_logged + skip, at + 1, len - (size_t)(at + 1 - url));
        st->base_logged[skip + len - (size_t)(at + 1 - url)] = '\0';
    }
    return st->base_logged != NULL ? 0 : RMR_ENOMEM;
}

static int dd_create(rmr_instance_t *ins, const void *config, void **state)
{
    const struct dd_cfg *cfg = config;
    if (cfg->api_key == NULL || cfg->api_key[0] == '\0') {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'api_key': it is empty (set DD_API_KEY)");
        return RMR_ECONFIG;
    }
    for (const unsigned char *c = (const unsigned char *)cfg->api_key; *c != '\0'; c++)
        if (*c <= ' ' || *c == 0x7f) {
            /* The courier refuses a header with a line break; a space is a pasting mistake.
             * Either way the key itself is never shown. */
            rmr_log(ins, RMR_LOG_ERROR,
                    "invalid 'api_key': it holds a space or a control character");
            return RMR_ECONFIG;
        }
    struct dd_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    int rc = make_base(ins, cfg, st);
    if (rc < 0)
        goto fail;
    st->v1 = cfg->api_version == DD_API_V1;
    st->compression_other =
        cfg->compression == DD_ZSTD ? (uint32_t)DD_DEFLATE : (uint32_t)cfg->compression;
    st->compression =
        cfg->api_version == DD_API_V1 ? st->compression_other : (uint32_t)cfg->compression;
    st->validate = cfg->validate != 0;
    st->api_key = cfg->api_key;
    st->ep_series = join(st->base, st->v1 ? "/api/v1/series" : "/api/v2/series");
    st->ep_sketches = join(st->base, "/api/beta/sketches");
    st->ep_events = join(st->base, "/api/v1/events");
    st->ep_checks = join(st->base, "/api/v1/check_run");
    st->url_validate = join(st->base, "/api/v1/validate");
    st->headers = encoding_headers(st->compression);
    st->headers_other = encoding_headers(st->compression_other);
    if (!on_fargate()) {
        const char *h = rmr_hostname(ins);
        if (h != NULL && h[0] != '\0' && (st->host = strdup(h)) == NULL)
            rc = RMR_ENOMEM;
    }
    if (rc < 0 || st->ep_series == NULL || st->ep_sketches == NULL || st->ep_events == NULL ||
        st->ep_checks == NULL || st->url_validate == NULL || st->headers == NULL ||
        st->headers_other == NULL) {
        rc = RMR_ENOMEM;
        goto fail;
    }
    *state = st;
    return 0;
fail:
    state_free(st);
    return rc;
}

static void on_validate(rmr_instance_t *ins, void *arg, const struct rmr_response *resp)
{
    struct dd_state *st = arg;
    if (resp->status == 200) {
        rmr_log(ins, RMR_LOG_INFO, "API key is valid ('%s/api/v1/validate')", st->base_logged);
    } else if (resp->status == 403) {
        rmr_log(ins, RMR_LOG_ERROR,
                "API key refused by '%s/api/v1/validate' (HTTP 403): delivery halted, data kept "
                "queued until a probe is accepted; check DD_API_KEY and DD_SITE",
                st->base_logged);
        if (RMR_HOST_HAS(ins, output_halt))
            rmr_output_halt(ins, "the API key was refused by /api/v1/validate (HTTP 403)");
    } else if (resp->status == 0 && resp->error == RMR_ECANCELED) {
        return; /* stopping */
    } else if (resp->status == 0) {
        rmr_log(ins, RMR_LOG_WARN, "cannot validate the API key at '%s/api/v1/validate': %s",
                st->base_logged, rmr_strerror(resp->error));
    } else {
        rmr_log(ins, RMR_LOG_WARN, "cannot validate the API key at '%s/api/v1/validate': HTTP %d",
                st->base_logged, (int)resp->status);
    }
}

static int dd_start(rmr_instance_t *ins, void *state)
{
    struct dd_state *st = state;
    rmr_log(ins, RMR_LOG_INFO, "sending %s series, sketches, events and service checks to '%s'",
            st->v1 ? "v1" : "v2", st->base_logged);
    if (!st->validate)
        return 0;
    if (!RMR_HOST_HAS(ins, http_fetch)) {
        rmr_log(ins, RMR_LOG_WARN, "cannot validate the API key: the host has no HTTP client");
        return 0;
    }
    struct rmr_http_header h = {"DD-API-KEY", st->api_key};
    struct rmr_fetch_spec spec = {
        .struct_size = sizeof spec,
        .nheaders = 1,
        .method = "GET",
        .url = st->url_validate,
        .headers = &h,
        .timeout_ms = 10000,
        .max_response_bytes = 64 * 1024,
    };
    int rc = rmr_http_fetch(ins, &spec, on_validate, st);
    if (rc < 0)
        rmr_log(ins, RMR_LOG_WARN, "cannot validate the API key: %s", rmr_strerror(rc));
    return 0;
}

static void dd_destroy(rmr_instance_t *ins, void *state)
{
    (void)ins;
    state_free(state);
}

/* ---- JSON ------------------------------------------------------------------------------------ */

/* The inside of a JSON string (RFC 8259): \" \\ \b \f \n \r \t, other control bytes as
 * \u00XX, invalid UTF-8 as \ufffd, valid UTF-8 unchanged (as the host's rmr_payload_json_str). */
static void json_esc(struct dd_buf *b, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0, i = 0;
    if (len == 0)
        return;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            run++;
            i++;
            continue;
        }
        size_t n = c < 0x80 ? 1 : dd_utf8_seq(s + i, len - i);
        if (c >= 0x80 && n > 0) {
            run += n;
            i += n;
            continue;
        }
        ddbuf_put(b, s + i - run, run);
        run = 0;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        switch (c) {
        case '"': ddbuf_puts(b, "\\\""); break;
        case '\\': ddbuf_puts(b, "\\\\"); break;
        case '\b': ddbuf_puts(b, "\\b"); break;
        case '\f': ddbuf_puts(b, "\\f"); break;
        case '\n': ddbuf_puts(b, "\\n"); break;
        case '\r': ddbuf_puts(b, "\\r"); break;
        case '\t': ddbuf_puts(b, "\\t"); break;
        default:
            if (c < 0x20)
                ddbuf_put(b, esc, sizeof esc);
            else
                ddbuf_puts(b, "\\ufffd"); /* not UTF-8 */
        }
        i++;
    }
    ddbuf_put(b, s + len - run, run);
}

static void json_str(struct dd_buf *b, const char *s, size_t len)
{
    ddbuf_put(b, "\"", 1);
    json_esc(b, s, len);
    ddbuf_put(b, "\"", 1);
}

static void json_rstr(struct dd_buf *b, struct rmr_str s)
{
    json_str(b, s.ptr, s.len);
}

/* Only finite values reach here. */
static void json_double(struct dd_buf *b, double d)
{
    char tmp[NUMFMT_DOUBLE_MAX];
    ddbuf_put(b, tmp, numfmt_double(tmp, sizeof tmp, d));
}

static void json_int(struct dd_buf *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    ddbuf_put(b, tmp, (size_t)n);
}

/* ["k:v","bare",...]: Datadog's tag strings. */
static void json_tags(struct dd_buf *b, const struct rmr_tag *tags, uint32_t n)
{
    ddbuf_put(b, "[", 1);
    for (uint32_t i = 0; i < n; i++) {
        ddbuf_puts(b, i > 0 ? ",\"" : "\"");
        json_esc(b, tags[i].key.ptr, tags[i].key.len);
        if (tags[i].value.len > 0) {
            ddbuf_put(b, ":", 1);
            json_esc(b, tags[i].value.ptr, tags[i].value.len);
        }
        ddbuf_put(b, "\"", 1);
    }
    ddbuf_put(b, "]", 1);
}

static int64_t seconds(int64_t time_ns)
{
    /* Floor division; written so INT64_MIN does not overflow. */
    int64_t q = time_ns / 1000000000;
    return time_ns % 1000000000 < 0 ? q - 1 : q;
}

/* Datadog's unit names for the UCUM-style units records carry ("By" -> "byte"). A rate's
 * "/s" is implied by the series type. */
static const struct {
    const char *ucum, *dd;
} unit_map[] = {
    {"%", "percent"},      {"By", "byte"},        {"By/s", "byte"},
    {"KiBy", "kibibyte"},  {"MiBy", "mebibyte"},  {"GiBy", "gibibyte"},
    {"kBy", "kilobyte"},   {"MBy", "megabyte"},   {"GBy", "gigabyte"},
    {"bit", "bit"},        {"bit/s", "bit"},      {"s", "second"},
    {"ms", "millisecond"}, {"us", "microsecond"}, {"ns", "nanosecond"},
    {"min", "minute"},     {"h", "hour"},         {"d", "day"},
    {"ns/s", "nanocore"},  {"Hz", "hertz"},       {"Cel", "degree celsius"},
};

/* Writes the Datadog unit of u into out (cap bytes); 0 when it has none. "{page}/s" becomes
 * "page"; a unit already spelled as Datadog's (lowercase letters and '_') goes as it is; any
 * other is left out rather than sent as a unit Datadog does not know. */
static size_t dd_unit(struct rmr_str u, char *out, size_t cap)
{
    if (u.len == 0 || u.len >= cap)
        return 0;
    for (size_t i = 0; i < sizeof unit_map / sizeof unit_map[0]; i++)
        if (strlen(unit_map[i].ucum) == u.len && memcmp(unit_map[i].ucum, u.ptr, u.len) == 0) {
            size_t n = strlen(unit_map[i].dd);
            memcpy(out, unit_map[i].dd, n);
            return n;
        }
    const char *p = u.ptr;
    size_t n = u.len;
    if (n > 2 && p[n - 2] == '/' && p[n - 1] == 's')
        n -= 2;
    if (n > 2 && p[0] == '{' && p[n - 1] == '}') {
        p++;
        n -= 2;
    }
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || p[i] == '_'))
            return 0;
    memcpy(out, p, n);
    return n;
}

/* ---- streams: records cut into pieces, pieces packed into bounded payloads ------------------ */

/* One piece of a body: a series (one point), a sketch, a service check. */
struct piece {
    size_t off;
    size_t len;
    uint32_t nrecords; /* records it completes: 1, or 0 for a multi-field record's later series */
};

/* A kind of payload: where it goes, how its pieces join, its bounds, and its pieces. */
struct stream {
    const char *endpoint;
    const char *content_type;
    const char *open, *sep, *close; /* "{\"series\":[", ",", "]}"; "" for protobuf */
    uint32_t record_kind;
    uint32_t compression; /* enum dd_compression */
    const char *headers;  /* DD-API-KEY and the Content-Encoding of compression */
    uint32_t max_pieces;  /* points for v2 series; 0: no bound */
    size_t max_raw;       /* bytes before compression */
    size_t max_wire;      /* bytes as sent */
    struct dd_buf text;   /* the pieces, back to back */
    struct piece *v;
    size_t n, cap;
};

struct out {
    rmr_encoder_t *enc;
    const struct dd_state *st;
    ZSTD_CCtx *zc;
    struct dd_buf body;       /* a payload before compression */
    struct dd_buf wire;       /* the same compressed */
    struct dd_buf sub1, sub2; /* nested protobuf messages; a multi-field series' name */
    struct stream series, sketches, checks;
    struct stream events; /* its settings only: an event goes alone, built in body */
};

static int piece_add(struct stream *s, size_t off, uint32_t nrecords)
{
    if (s->text.oom)
        return RMR_ENOMEM;
    if (s->n == s->cap) {
        size_t cap = s->cap > 0 ? s->cap * 2 : 256;
        struct piece *v = realloc(s->v, cap * sizeof *v);
        if (v == NULL)
            return RMR_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (struct piece){off, s->text.len - off, nrecords};
    return 0;
}

/* Compresses o->body into o->wire (enum dd_compression); with none, copies. */
static int compress_body(struct out *o, uint32_t compression)
{
    const struct dd_buf *in = &o->body;
    struct dd_buf *w = &o->wire;
    ddbuf_reset(w);
    switch ((enum dd_compression)compression) {
    case DD_NONE: ddbuf_put(w, in->data, in->len); return w->oom ? RMR_ENOMEM : 0;
    case DD_ZSTD: {
        if (o->zc == NULL && (o->zc = ZSTD_createCCtx()) == NULL)
            return RMR_ENOMEM;
        size_t bound = ZSTD_compressBound(in->len);
        if (bound > w->cap) {
            unsigned char *d = realloc(w->data, bound);
            if (d == NULL)
                return RMR_ENOMEM;
            w->data = d;
            w->cap = bound;
        }
        size_t n = ZSTD_compressCCtx(o->zc, w->data, w->cap, in->data, in->len, DD_ZSTD_LEVEL);
        if (ZSTD_isError(n))
            return RMR_EIO;
        w->len = n;
        return 0;
    }
    case DD_GZIP:
    case DD_DEFLATE: {
        z_stream z;
        memset(&z, 0, sizeof z);
        int bits = compression == DD_GZIP ? 15 + 16 : 15;
        if (in->len > UINT32_MAX || deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, bits, 8,
                                                 Z_DEFAULT_STRATEGY) != Z_OK)
            return RMR_ENOMEM;
        size_t bound = deflateBound(&z, (uLong)in->len) + 32;
        if (bound > w->cap) {
            unsigned char *d = realloc(w->data, bound);
            if (d == NULL) {
                deflateEnd(&z);
                return RMR_ENOMEM;
            }
            w->data = d;
            w->cap = bound;
        }
        z.next_in = in->data;
        z.avail_in = (uInt)in->len;
        z.next_out = w->data;
        z.avail_out = (uInt)w->cap;
        int zr = deflate(&z, Z_FINISH);
        w->len = z.total_out;
        deflateEnd(&z);
        return zr == Z_STREAM_END ? 0 : RMR_EIO;
    }
    }
    return RMR_EINVAL;
}

/* Compresses o->body and commits it when it fits max_wire. Returns 1 when committed, 0 when
 * too large (*wire_len says by how much), or an error. */
static int send_body(struct out *o, const struct stream *s, uint32_t nrecords, size_t *wire_len)
{
    if (o->body.oom)
        return RMR_ENOMEM;
    int rc = compress_body(o, s->compression);
    if (rc < 0)
        return rc;
    *wire_len = o->wire.len;
    if (o->wire.len > s->max_wire)
        return 0;
    struct rmr_payload_spec spec = {
        .struct_size = sizeof spec,
        .compression = RMR_COMPRESS_NONE, /* done above, so its size is known */
        .endpoint = s->endpoint,
        .content_type = s->content_type,
        .record_kind = s->record_kind,
        .headers = s->headers,
    };
    rmr_payload_t *p = rmr_payload_new(o->enc, &spec);
    if (p == NULL)
        return RMR_ENOMEM;
    if ((rc = rmr_payload_write(p, o->wire.data, o->wire.len)) < 0) {
        rmr_payload_discard(p);
        return rc;
    }
    rc = rmr_payload_commit(p, nrecords);
    return rc < 0 ? rc : 1;
}

static size_t range_raw(const struct stream *s, size_t i, size_t j)
{
    size_t n = strlen(s->open) + strlen(s->close);
    for (size_t k = i; k < j; k++)
        n += s->v[k].len + (k > i ? strlen(s->sep) : 0);
    return n;
}

static uint32_t range_records(const struct stream *s, size_t i, size_t j)
{
    uint32_t n = 0;
    for (size_t k = i; k < j; k++)
        n += s->v[k].nrecords;
    return n;
}

static void build_range(struct out *o, const struct stream *s, size_t i, size_t j)
{
    ddbuf_reset(&o->body);
    ddbuf_puts(&o->body, s->open);
    for (size_t k = i; k < j; k++) {
        if (k > i)
            ddbuf_puts(&o->body, s->sep);
        ddbuf_put(&o->body, s->text.data + s->v[k].off, s->v[k].len);
    }
    ddbuf_puts(&o->body, s->close);
}

/* Packs the stream's pieces into payloads, in order: each takes as many pieces as the piece
 * and raw-byte bounds allow; when the compressed body is over max_wire, the range is cut in
 * proportion (a little below, so the next try usually fits) and compressed again. A piece
 * that alone passes a bound is dropped and counted as too_large. */
static int stream_flush(struct out *o, struct stream *s)
{
    size_t seplen = strlen(s->sep);
    size_t i = 0;
    while (i < s->n) {
        if (range_raw(s, i, i + 1) > s->max_raw) {
            /* A multi-field record's later series (nrecords 0) were counted with its first. */
            if (s->v[i].nrecords > 0)
                rmr_encoder_drop(o->enc, s->record_kind, "too_large", s->v[i].nrecords);
            i++;
            continue;
        }
        size_t j = i + 1, raw = range_raw(s, i, i + 1);
        while (j < s->n && (s->max_pieces == 0 || j - i < s->max_pieces) &&
               raw + seplen + s->v[j].len <= s->max_raw) {
            raw += seplen + s->v[j].len;
            j++;
        }
        for (;;) {
            build_range(o, s, i, j);
            size_t wire_len = 0;
            int rc = send_body(o, s, range_records(s, i, j), &wire_len);
            if (rc < 0)
                return rc;
            if (rc == 1)
                break;
            if (j - i == 1) {
                if (s->v[i].nrecords > 0)
                    rmr_encoder_drop(o->enc, s->record_kind, "too_large", s->v[i].nrecords);
                break;
            }
            size_t n = j - i;
            size_t keep = (size_t)((double)n * ((double)s->max_wire / (double)wire_len) * 0.97);
            if (keep >= n)
                keep = n - 1;
            if (keep < 1)
                keep = 1;
            j = i + keep;
        }
        i = j;
    }
    s->n = 0;
    ddbuf_reset(&s->text);
    return 0;
}

static void stream_release(struct stream *s)
{
    ddbuf_release(&s->text);
    free(s->v);
}

/* ---- records to pieces ---------------------------------------------------------------------- */

/* The record's host, else the agent's (none on Fargate). */
static struct rmr_str host_of(const struct out *o, struct rmr_str own)
{
    return own.len > 0 ? own : rmr_str_c(o->st->host);
}

/* One series: a v2 or v1 JSON object with one point. kind is enum rmr_metric_type. */
static int series_piece(struct out *o, struct rmr_str name, uint32_t type, double value,
                        const struct rmr_metric *m, uint32_t nrecords)
{
    struct stream *s = &o->series;
    struct dd_buf *b = &s->text;
    size_t off = b->len;
    int64_t interval = 0;
    if (type == RMR_METRIC_COUNT || type == RMR_METRIC_RATE) {
        interval = (m->interval_ms + 500) / 1000;
        if (interval < 1)
            interval = 1;
    }
    struct rmr_str host = host_of(o, m->host);
    ddbuf_puts(b, "{\"metric\":");
    json_rstr(b, name);
    if (o->st->v1) {
        ddbuf_puts(b, ",\"points\":[[");
        json_int(b, seconds(m->time_ns));
        ddbuf_puts(b, ",");
        json_double(b, value);
        ddbuf_puts(b, "]],\"type\":");
        ddbuf_puts(b, type == RMR_METRIC_COUNT  ? "\"count\""
                      : type == RMR_METRIC_RATE ? "\"rate\""
                                                : "\"gauge\"");
        if (interval > 0) {
            ddbuf_puts(b, ",\"interval\":");
            json_int(b, interval);
        }
        if (host.len > 0) {
            ddbuf_puts(b, ",\"host\":");
            json_rstr(b, host);
        }
        ddbuf_puts(b, ",\"tags\":");
        json_tags(b, m->tags, m->ntags);
        ddbuf_puts(b, "}");
        return piece_add(s, off, nrecords);
    }
    ddbuf_puts(b, ",\"type\":");
    ddbuf_puts(b, type == RMR_METRIC_COUNT ? "1" : type == RMR_METRIC_RATE ? "2" : "3");
    if (interval > 0) {
        ddbuf_puts(b, ",\"interval\":");
        json_int(b, interval);
    }
    ddbuf_puts(b, ",\"points\":[{\"timestamp\":");
    json_int(b, seconds(m->time_ns));
    ddbuf_puts(b, ",\"value\":");
    json_double(b, value);
    ddbuf_puts(b, "}]");
    if (host.len > 0) {
        ddbuf_puts(b, ",\"resources\":[{\"name\":");
        json_rstr(b, host);
        ddbuf_puts(b, ",\"type\":\"host\"}]");
    }
    ddbuf_puts(b, ",\"tags\":");
    json_tags(b, m->tags, m->ntags);
    char unit[64];
    size_t ulen = dd_unit(m->unit, unit, sizeof unit);
    if (ulen > 0) {
        ddbuf_puts(b, ",\"unit\":");
        json_str(b, unit, ulen);
    }
    ddbuf_puts(b, "}");
    return piece_add(s, off, nrecords);
}

static int field_number(const struct rmr_field *f, double *out)
{
    switch ((enum rmr_value_type)f->value.type) {
    case RMR_VAL_DOUBLE: *out = f->value.v.d; return 1;
    case RMR_VAL_INT: *out = (double)f->value.v.i; return 1;
    case RMR_VAL_UINT: *out = (double)f->value.v.u; return 1;
    case RMR_VAL_NONE:
    case RMR_VAL_STR:
    case RMR_VAL_BOOL: break;
    }
    return 0;
}

/* A multi-field point: one gauge per numeric field, named <name>.<field>. */
static int multi_field(struct out *o, const struct rmr_metric *m)
{
    uint32_t written = 0, non_finite = 0;
    for (uint32_t i = 0; i < m->nfields; i++) {
        double v;
        if (!field_number(&m->fields[i], &v))
            continue;
        if (!isfinite(v)) {
            non_finite++;
            continue;
        }
        struct dd_buf *nb = &o->sub1;
        ddbuf_reset(nb);
        ddbuf_put(nb, m->name.ptr, m->name.len);
        ddbuf_put(nb, ".", 1);
        ddbuf_put(nb, m->fields[i].key.ptr, m->fields[i].key.len);
        if (nb->oom)
            return RMR_ENOMEM;
        int rc = series_piece(o, rmr_str_n((const char *)nb->data, nb->len), RMR_METRIC_GAUGE, v, m,
                              written == 0);
        if (rc < 0)
            return rc;
        written++;
    }
    if (written == 0)
        rmr_encoder_drop(o->enc, RMR_REC_METRIC, non_finite > 0 ? "non_finite" : "no_fields", 1);
    return 0;
}

/* A distribution: one Sketch with one Dogsketch, appended to the sketches stream as field 1
 * of a SketchPayload (so the pieces concatenated are the payload). */
static int sketch_piece(struct out *o, const struct rmr_metric *m)
{
    const struct rmr_sketch *k = m->sketch;
    if (k == NULL || k->count <= 0) {
        rmr_encoder_drop(o->enc, RMR_REC_METRIC, "empty_sketch", 1);
        return 0;
    }
    if (!isfinite(k->min) || !isfinite(k->max) || !isfinite(k->sum)) {
        rmr_encoder_drop(o->enc, RMR_REC_METRIC, "non_finite", 1);
        return 0;
    }
    struct dd_buf *d = &o->sub1, *sk = &o->sub2;
    ddbuf_reset(d);
    ddbuf_reset(sk);
    /* Dogsketch: ts=1, cnt=2, min=3, max=4, avg=5, sum=6, k=7 (sint32), n=8 (uint32). */
    ddpb_int64(d, 1, seconds(m->time_ns));
    ddpb_int64(d, 2, k->count);
    ddpb_double(d, 3, k->min);
    ddpb_double(d, 4, k->max);
    ddpb_double(d, 5, k->sum / (double)k->count);
    ddpb_double(d, 6, k->sum);
    ddpb_packed_sint32(d, 7, k->keys, k->nbins);
    ddpb_packed_uint32(d, 8, k->counts, k->nbins);
    /* Sketch: metric=1, host=2, tags=4, dogsketches=7. */
    ddpb_string(sk, 1, m->name.ptr, m->name.len);
    struct rmr_str host = host_of(o, m->host);
    if (host.len > 0)
        ddpb_string(sk, 2, host.ptr, host.len);
    for (uint32_t i = 0; i < m->ntags; i++)
        ddpb_string2(sk, 4, m->tags[i].key.ptr, m->tags[i].key.len, m->tags[i].value.ptr,
                     m->tags[i].value.len);
    ddpb_bytes(sk, 7, d->data, d->len);
    if (d->oom || sk->oom)
        return RMR_ENOMEM;
    struct stream *s = &o->sketches;
    size_t off = s->text.len;
    ddpb_bytes(&s->text, 1, sk->data, sk->len);
    return piece_add(s, off, 1);
}

static int encode_metric(struct out *o, const rmr_batch_t *b, uint32_t i)
{
    struct rmr_metric m = {.struct_size = sizeof m};
    if (rmr_metric_get(b, i, &m) < 0)
        return 0;
    if (m.name.len == 0) {
        rmr_encoder_drop(o->enc, RMR_REC_METRIC, "no_name", 1);
        return 0;
    }
    if (m.nfields > 0)
        return multi_field(o, &m);
    switch ((enum rmr_metric_type)m.type) {
    case RMR_METRIC_DISTRIBUTION: return sketch_piece(o, &m);
    case RMR_METRIC_GAUGE:
    case RMR_METRIC_COUNT:
    case RMR_METRIC_RATE:
        if (!isfinite(m.value)) {
            rmr_encoder_drop(o->enc, RMR_REC_METRIC, "non_finite", 1);
            return 0;
        }
        return series_piece(o, m.name, m.type, m.value, &m, 1);
    }
    rmr_encoder_drop(o->enc, RMR_REC_METRIC, "unsupported_type", 1);
    return 0;
}

static int encode_check(struct out *o, const rmr_batch_t *b, uint32_t i)
{
    struct rmr_check c = {.struct_size = sizeof c};
    if (rmr_check_get(b, i, &c) < 0)
        return 0;
    if (c.name.len == 0) {
        rmr_encoder_drop(o->enc, RMR_REC_CHECK, "no_name", 1);
        return 0;
    }
    struct stream *s = &o->checks;
    struct dd_buf *t = &s->text;
    size_t off = t->len;
    ddbuf_puts(t, "{\"check\":");
    json_rstr(t, c.name);
    ddbuf_puts(t, ",\"host_name\":");
    json_rstr(t, host_of(o, c.host));
    ddbuf_puts(t, ",\"timestamp\":");
    json_int(t, seconds(c.time_ns));
    ddbuf_puts(t, ",\"status\":");
    json_int(t, c.status <= RMR_CHECK_UNKNOWN ? c.status : RMR_CHECK_UNKNOWN);
    ddbuf_puts(t, ",\"message\":");
    json_rstr(t, c.message);
    ddbuf_puts(t, ",\"tags\":");
    json_tags(t, c.tags, c.ntags);
    ddbuf_puts(t, "}");
    return piece_add(s, off, 1);
}

/* An event goes alone: /api/v1/events takes one per request. */
static int encode_event(struct out *o, const rmr_batch_t *b, uint32_t i)
{
    struct rmr_event e = {.struct_size = sizeof e};
    if (rmr_event_get(b, i, &e) < 0)
        return 0;
    if (e.title.len == 0) {
        rmr_encoder_drop(o->enc, RMR_REC_EVENT, "no_title", 1);
        return 0;
    }
    struct dd_buf *t = &o->body;
    ddbuf_reset(t);
    ddbuf_puts(t, "{\"title\":");
    json_rstr(t, e.title);
    ddbuf_puts(t, ",\"text\":");
    json_rstr(t, e.text);
    ddbuf_puts(t, ",\"date_happened\":");
    json_int(t, seconds(e.time_ns));
    ddbuf_puts(t,
               e.priority == RMR_EVENT_LOW ? ",\"priority\":\"low\"" : ",\"priority\":\"normal\"");
    struct rmr_str host = host_of(o, e.host);
    if (host.len > 0) {
        ddbuf_puts(t, ",\"host\":");
        json_rstr(t, host);
    }
    if (e.ntags > 0) {
        ddbuf_puts(t, ",\"tags\":");
        json_tags(t, e.tags, e.ntags);
    }
    if (e.alert_type.len > 0) {
        ddbuf_puts(t, ",\"alert_type\":");
        json_rstr(t, e.alert_type);
    }
    if (e.aggregation_key.len > 0) {
        ddbuf_puts(t, ",\"aggregation_key\":");
        json_rstr(t, e.aggregation_key);
    }
    if (e.source_type.len > 0) {
        ddbuf_puts(t, ",\"source_type_name\":");
        json_rstr(t, e.source_type);
    }
    ddbuf_puts(t, "}");
    if (t->oom)
        return RMR_ENOMEM;
    size_t wire_len = 0;
    int rc = t->len > DD_MAX_RAW_BYTES ? 0 : send_body(o, &o->events, 1, &wire_len);
    if (rc == 0)
        rmr_encoder_drop(o->enc, RMR_REC_EVENT, "too_large", 1);
    return rc < 0 ? rc : 0;
}

/* A stream with the encoding of every payload but v2 series (set apart by the caller). */
static void stream_init(struct stream *s, const struct dd_state *st, const char *endpoint,
                        const char *content_type, const char *open, const char *sep,
                        const char *close, uint32_t kind, uint32_t max_pieces, size_t max_raw,
                        size_t max_wire)
{
    memset(s, 0, sizeof *s);
    s->compression = st->compression_other;
    s->headers = st->headers_other;
    s->endpoint = endpoint;
    s->content_type = content_type;
    s->open = open;
    s->sep = sep;
    s->close = close;
    s->record_kind = kind;
    s->max_pieces = max_pieces;
    s->max_raw = max_raw;
    s->max_wire = max_wire;
}

static int dd_encode(rmr_encoder_t *enc, void *state, const rmr_batch_t *const *batches,
                     uint32_t nbatches)
{
    const struct dd_state *st = state;
    struct out *o = calloc(1, sizeof *o);
    if (o == NULL)
        return RMR_ENOMEM;
    o->enc = enc;
    o->st = st;
    if (st->v1) {
        stream_init(&o->series, st, st->ep_series, "application/json", "{\"series\":[", ",", "]}",
                    RMR_REC_METRIC, 0, DD_MAX_RAW_BYTES, DD_MAX_WIRE_BYTES);
    } else {
        stream_init(&o->series, st, st->ep_series, "application/json", "{\"series\":[", ",", "]}",
                    RMR_REC_METRIC, DD_V2_MAX_POINTS, DD_V2_MAX_RAW_BYTES, DD_V2_MAX_WIRE_BYTES);
        o->series.compression = st->compression;
        o->series.headers = st->headers;
    }
    stream_init(&o->sketches, st, st->ep_sketches, "application/x-protobuf", "", "", "",
                RMR_REC_METRIC, 0, DD_MAX_RAW_BYTES, DD_MAX_WIRE_BYTES);
    stream_init(&o->checks, st, st->ep_checks, "application/json", "[", ",", "]", RMR_REC_CHECK, 0,
                DD_MAX_RAW_BYTES, DD_MAX_WIRE_BYTES);
    stream_init(&o->events, st, st->ep_events, "application/json", "", "", "", RMR_REC_EVENT, 0,
                DD_MAX_RAW_BYTES, DD_MAX_WIRE_BYTES);
    int rc = 0;
    for (uint32_t bi = 0; bi < nbatches && rc == 0; bi++) {
        const rmr_batch_t *b = batches[bi];
        for (uint32_t i = 0, n = rmr_batch_count(b); i < n && rc == 0; i++) {
            uint32_t kind = rmr_record_kind(b, i);
            switch ((enum rmr_record_kind)kind) {
            case RMR_REC_METRIC: rc = encode_metric(o, b, i); break;
            case RMR_REC_EVENT: rc = encode_event(o, b, i); break;
            case RMR_REC_CHECK: rc = encode_check(o, b, i); break;
            case RMR_REC_LOG:
            case RMR_REC_SPAN:
            case RMR_REC_OBJECT: rmr_encoder_drop(enc, kind, "unsupported_kind", 1); break;
            }
        }
    }
    if (rc == 0)
        rc = stream_flush(o, &o->series);
    if (rc == 0)
        rc = stream_flush(o, &o->sketches);
    if (rc == 0)
        rc = stream_flush(o, &o->checks);
    stream_release(&o->series);
    stream_release(&o->sketches);
    stream_release(&o->checks);
    stream_release(&o->events);
    ddbuf_release(&o->body);
    ddbuf_release(&o->wire);
    ddbuf_release(&o->sub1);
    ddbuf_release(&o->sub2);
    ZSTD_freeCCtx(o->zc);
    free(o);
    return rc;
}

static const struct rmr_plugin dd_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_OUTPUT,
    .name = "datadog",
    .version = DD_VERSION,
    .description = "sends metrics, distributions, events and service checks to Datadog",
    .options = dd_options,
    .config_size = sizeof(struct dd_cfg),
    .accepts =
        RMR_REC_BIT(RMR_REC_METRIC) | RMR_REC_BIT(RMR_REC_EVENT) | RMR_REC_BIT(RMR_REC_CHECK),
    .schemas = dd_schemas,
    .create = dd_create,
    .start = dd_start,
    .destroy = dd_destroy,
    .encode = dd_encode,
    /* Datadog's answers (PROTOCOLS.md 9.4) are the host's default table: 2xx ok; 401/403 the
     * key (halt, data kept); 413 a split the courier cannot make for these bodies (not
     * line-based), so a drop counted too_large (the encoder never builds one over the
     * bounds); 408, 429, 5xx and network errors retried; other 4xx bad data, dropped. */
    .classify = NULL,
};

RMR_PLUGIN_DEFINE(dd_plugin)
