/* core/config: INI files (inih) + conf.d + environment, typed by option schemas. See config.h.
 *
 * Reading goes through inih's ini_parse_stream() with our own line reader, because the handler
 * of this inih build gets no line number and a long line would otherwise be split silently: the
 * reader counts lines, rejects lines longer than inih's buffer, tracks the current section
 * itself (so an empty section still counts) and tells the handler whether a line continues the
 * previous key. Everything the config points to lives in one struct cfg_store.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "config/config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <ini.h>

/* ---- the store ------------------------------------------------------------------------------ */

struct store_block {
    struct store_block *next;
    max_align_t data[];
};

struct cfg_store {
    struct store_block *blocks;
    /* Private to config_read/config_resolve: per entry of the config, the first line that
     * continued the entry's value (an indented line), 0 when none. Lets resolve reject
     * continuations for keys that are not lists or tags once the schema is known. */
    uint32_t *cont_lines;
    uint32_t ncont_lines;
};

struct cfg_store *cfg_store_new(void)
{
    return calloc(1, sizeof(struct cfg_store));
}

void cfg_store_free(struct cfg_store *store)
{
    if (store == NULL)
        return;
    struct store_block *b = store->blocks;
    while (b != NULL) {
        struct store_block *next = b->next;
        free(b);
        b = next;
    }
    free(store);
}

/* Zeroed, max_align_t-aligned memory owned by the store, or NULL when out of memory. */
static void *store_alloc(struct cfg_store *store, size_t size)
{
    if (size > SIZE_MAX - sizeof(struct store_block) - 1)
        return NULL;
    struct store_block *b = calloc(1, sizeof *b + (size ? size : 1));
    if (b == NULL)
        return NULL;
    b->next = store->blocks;
    store->blocks = b;
    return b->data;
}

/* Element-count allocation with overflow check. */
static void *store_array(struct cfg_store *store, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    return store_alloc(store, n * size);
}

static char *store_strndup(struct cfg_store *store, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *d = store_alloc(store, n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *cfg_store_strdup(struct cfg_store *store, const char *s)
{
    if (store == NULL || s == NULL)
        return NULL;
    return store_strndup(store, s, strlen(s));
}

/* ---- small helpers -------------------------------------------------------------------------- */

/* A bounded, always NUL-terminated text builder for messages; truncates silently. */
struct sbuf {
    char *buf;
    size_t cap;
    size_t len;
};

static void sb_init(struct sbuf *sb, char *buf, size_t cap)
{
    sb->buf = buf;
    sb->cap = buf != NULL ? cap : 0;
    sb->len = 0;
    if (sb->cap > 0)
        buf[0] = '\0';
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *sb, const char *fmt, ...)
{
    if (sb->cap == 0 || sb->len >= sb->cap - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sb->len += (size_t)n;
    if (sb->len >= sb->cap)
        sb->len = sb->cap - 1;
}

/* Appends a value for a message: at most 64 bytes, control bytes as '?'. */
static void sb_value(struct sbuf *sb, const char *v)
{
    char tmp[72];
    size_t i = 0;
    for (; v[i] != '\0' && i < 64; i++)
        tmp[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
    tmp[i] = '\0';
    sb_printf(sb, "'%s%s'", tmp, v[i] != '\0' ? "..." : "");
}

static const char *skip_ws(const char *s)
{
    while (*s != '\0' && isspace((unsigned char)*s))
        s++;
    return s;
}

/* Trims whitespace off both ends of [*b, *e). */
static void trim_span(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b))
        (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

/* Iterates a comma-separated list: sets [*b, *b + *n) to the next item, trimmed (possibly
 * empty). Returns 0 when the list is exhausted. */
static int next_item(const char **cur, const char **b, size_t *n)
{
    const char *p = *cur;
    if (p == NULL)
        return 0;
    const char *comma = strchr(p, ',');
    const char *e = comma != NULL ? comma : p + strlen(p);
    const char *s = p;
    trim_span(&s, &e);
    *b = s;
    *n = (size_t)(e - s);
    *cur = comma != NULL ? comma + 1 : NULL;
    return 1;
}

static int span_ieq(const char *a, size_t alen, const char *z)
{
    return strlen(z) == alen && strncasecmp(a, z, alen) == 0;
}

static void upper_into(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src[i] != '\0' && i + 1 < cap; i++)
        dst[i] = (char)toupper((unsigned char)src[i]);
    if (cap > 0)
        dst[i] = '\0';
}

static const char *kind_word(uint32_t kind)
{
    return kind == RMR_KIND_INPUT ? "input" : "output";
}

static const char *kind_upper(uint32_t kind)
{
    return kind == RMR_KIND_INPUT ? "INPUT" : "OUTPUT";
}

/* Growable array of fixed-size elements (malloc'd; moved into the store when final). */
static int grow(void **v, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    uint32_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > UINT32_MAX / 2)
            return RMR_ENOMEM;
        ncap *= 2;
    }
    if ((size_t)ncap > SIZE_MAX / elem)
        return RMR_ENOMEM;
    void *nv = realloc(*v, (size_t)ncap * elem);
    if (nv == NULL)
        return RMR_ENOMEM;
    *v = nv;
    *cap = ncap;
    return 0;
}

/* ---- option tables -------------------------------------------------------------------------- */

#define AGENT_OFF(m)  ((uint32_t)offsetof(struct agent_config, m))
#define COMMON_OFF(m) ((uint32_t)offsetof(struct instance_common, m))

const struct rmr_option agent_options[] = {
    {.name = "log_level",
     .type = RMR_OPT_ENUM,
     .def = "info",
     .choices = "error|warn|info|debug",
     .help = "Least severe level of the agent's own log.",
     .offset = AGENT_OFF(log_level)},
    {.name = "log_format",
     .type = RMR_OPT_ENUM,
     .def = "text",
     .choices = "text|json",
     .help = "Format of the agent's own log lines.",
     .offset = AGENT_OFF(log_format)},
    {.name = "plugin_dir",
     .type = RMR_OPT_STRING,
     .help = "Directory of plugin shared objects.",
     .offset = AGENT_OFF(plugin_dir)},
    {.name = "hostname",
     .type = RMR_OPT_STRING,
     .env = "DD_HOSTNAME,ENV_HOSTNAME",
     .help = "Host name reported with the data; default: gethostname().",
     .offset = AGENT_OFF(hostname)},
    {.name = "shutdown_grace",
     .type = RMR_OPT_DURATION,
     .def = "20s",
     .min = 0,
     .max = 600000,
     .help = "How long outputs drain after SIGTERM.",
     .offset = AGENT_OFF(shutdown_grace_ms)},
    {.name = "log_rate_limit",
     .type = RMR_OPT_DURATION,
     .def = "10s",
     .help = "Identical log lines are written at most once per this window.",
     .offset = AGENT_OFF(log_rate_limit_ms)},
    {.name = "tags",
     .type = RMR_OPT_TAGS,
     .help = "Tags added to every record.",
     .offset = AGENT_OFF(tags)},
    {.name = "enabled_inputs",
     .type = RMR_OPT_LIST,
     .env = "ENV_DEFAULT_ENABLED_INPUTS",
     .help = "When set, exactly the inputs that run (names or aliases).",
     .offset = AGENT_OFF(enabled_inputs)},
    {.name = "global_tags",
     .type = RMR_OPT_TAGS,
     .env = "ENV_GLOBAL_HOST_TAGS,ENV_GLOBAL_TAGS",
     .help = "Datakit global tags.",
     .offset = AGENT_OFF(global_tags)},
    {.name = "dd_tags",
     .type = RMR_OPT_TAGS,
     .env = "DD_TAGS",
     .help = "Datadog tags (separated by spaces or commas).",
     .offset = AGENT_OFF(dd_tags)},
    {.name = "dd_env",
     .type = RMR_OPT_STRING,
     .env = "DD_ENV",
     .help = "Datadog env tag.",
     .offset = AGENT_OFF(dd_env)},
    {.name = "dd_service",
     .type = RMR_OPT_STRING,
     .env = "DD_SERVICE",
     .help = "Datadog service tag.",
     .offset = AGENT_OFF(dd_service)},
    {.name = "dd_version",
     .type = RMR_OPT_STRING,
     .env = "DD_VERSION",
     .help = "Datadog version tag.",
     .offset = AGENT_OFF(dd_version)},
    {.name = "http_listen",
     .type = RMR_OPT_STRING,
     .def = "127.0.0.1:9529",
     .env = "ENV_HTTP_LISTEN",
     .help = "Address of the shared HTTP listener (routes of inputs, /metrics, /v1/status); "
             "off: none.",
     .offset = AGENT_OFF(http_listen)},
    {.name = "http_max_header_bytes",
     .type = RMR_OPT_SIZE,
     .def = "64KiB",
     .min = 1024,
     .max = 16777216.0,
     .help = "Request line and headers larger than this get 431.",
     .offset = AGENT_OFF(http_max_header_bytes)},
    {.name = "http_max_body_bytes",
     .type = RMR_OPT_SIZE,
     .def = "64MiB",
     .min = 1024,
     .max = 4294967296.0,
     .help = "Request bodies larger than this (as received) get 413.",
     .offset = AGENT_OFF(http_max_body_bytes)},
    {.name = "http_max_decoded_bytes",
     .type = RMR_OPT_SIZE,
     .def = "128MiB",
     .min = 1024,
     .max = 4294967296.0,
     .help = "Compressed request bodies that expand beyond this get 413.",
     .offset = AGENT_OFF(http_max_decoded_bytes)},
    {.name = "http_header_timeout",
     .type = RMR_OPT_DURATION,
     .def = "10s",
     .min = 10,
     .max = 600000,
     .help = "A request's headers must arrive within this, else 408 and the connection closes.",
     .offset = AGENT_OFF(http_header_timeout_ms)},
    {.name = "http_body_timeout",
     .type = RMR_OPT_DURATION,
     .def = "60s",
     .min = 10,
     .max = 3600000,
     .help = "A request's body must arrive within this after its headers, else 408.",
     .offset = AGENT_OFF(http_body_timeout_ms)},
    {.name = "http_idle_timeout",
     .type = RMR_OPT_DURATION,
     .def = "120s",
     .min = 10,
     .max = 3600000,
     .help = "Keep-alive connections idle this long are closed.",
     .offset = AGENT_OFF(http_idle_timeout_ms)},
    {.name = "http_max_connections",
     .type = RMR_OPT_INT,
     .def = "1024",
     .min = 1,
     .max = 1000000,
     .help = "Open connections per listener; more are closed at once.",
     .offset = AGENT_OFF(http_max_connections)},
    {.name = "ca_file",
     .type = RMR_OPT_STRING,
     .help = "CA bundle that verifies TLS servers; default: the system's.",
     .offset = AGENT_OFF(ca_file)},
    {.name = "tls_insecure",
     .type = RMR_OPT_BOOL,
     .def = "false",
     .help = "true skips TLS verification of servers (never in production).",
     .offset = AGENT_OFF(tls_insecure)},
    {.name = "connect_timeout",
     .type = RMR_OPT_DURATION,
     .def = "10s",
     .min = 10,
     .max = 600000,
     .help = "Outbound connections that take longer fail (and are retried).",
     .offset = AGENT_OFF(connect_timeout_ms)},
    RMR_OPT_END,
};

const struct rmr_option input_common_options[] = {
    {.name = "enabled",
     .type = RMR_OPT_BOOL,
     .def = "true",
     .help = "false keeps this configured instance off.",
     .offset = COMMON_OFF(enabled)},
    {.name = "tags",
     .type = RMR_OPT_TAGS,
     .help = "Extra tags on every record of this instance.",
     .offset = COMMON_OFF(tags)},
    RMR_OPT_END,
};

const struct rmr_option output_common_options[] = {
    {.name = "enabled",
     .type = RMR_OPT_BOOL,
     .def = "true",
     .help = "false keeps this configured instance off.",
     .offset = COMMON_OFF(enabled)},
    {.name = "batch_records",
     .type = RMR_OPT_INT,
     .def = "1000",
     .min = 1,
     .max = 1000000,
     .help = "Encode after this many records.",
     .offset = COMMON_OFF(batch_records)},
    {.name = "batch_bytes",
     .type = RMR_OPT_SIZE,
     .def = "1MiB",
     .min = 1024,
     .max = 268435456.0,
     .help = "Or after this many bytes.",
     .offset = COMMON_OFF(batch_bytes)},
    {.name = "batch_timeout",
     .type = RMR_OPT_DURATION,
     .def = "1s",
     .min = 10,
     .max = 600000,
     .help = "Or when the oldest batch is this old.",
     .offset = COMMON_OFF(batch_timeout_ms)},
    {.name = "queue_bytes",
     .type = RMR_OPT_SIZE,
     .def = "64MiB",
     .min = 65536,
     .max = 68719476736.0,
     .help = "Bound of payloads waiting for delivery.",
     .offset = COMMON_OFF(queue_bytes)},
    {.name = "when_full",
     .type = RMR_OPT_ENUM,
     .def = "auto",
     .choices = "auto|block|drop_oldest",
     .help = "With a full queue: block (inputs are refused, HTTP inputs answer 429) or "
             "drop_oldest; auto blocks logs and spans and drops the oldest metrics.",
     .offset = COMMON_OFF(when_full)},
    {.name = "max_in_flight",
     .type = RMR_OPT_INT,
     .def = "4",
     .min = 1,
     .max = 256,
     .help = "Requests sent at once.",
     .offset = COMMON_OFF(max_in_flight)},
    {.name = "request_timeout",
     .type = RMR_OPT_DURATION,
     .def = "30s",
     .min = 10,
     .max = 600000,
     .help = "A request that takes longer fails and is retried.",
     .offset = COMMON_OFF(request_timeout_ms)},
    {.name = "retry_initial",
     .type = RMR_OPT_DURATION,
     .def = "1s",
     .min = 1,
     .max = 600000,
     .help = "First retry waits up to this (full jitter); each retry doubles it.",
     .offset = COMMON_OFF(retry_initial_ms)},
    {.name = "retry_max",
     .type = RMR_OPT_DURATION,
     .def = "60s",
     .min = 1,
     .max = 3600000,
     .help = "Retries wait at most this (a longer Retry-After is capped at 10 times it).",
     .offset = COMMON_OFF(retry_max_ms)},
    {.name = "halt_probe",
     .type = RMR_OPT_DURATION,
     .def = "60s",
     .min = 10,
     .max = 3600000,
     .help = "A halted output (401/403) probes the backend this often, keeping its queue.",
     .offset = COMMON_OFF(halt_probe_ms)},
    RMR_OPT_END,
};

static const struct rmr_option *common_options(uint32_t kind)
{
    return kind == RMR_KIND_INPUT ? input_common_options : output_common_options;
}

static uint32_t count_options(const struct rmr_option *opts)
{
    uint32_t n = 0;
    while (opts != NULL && opts[n].name != NULL)
        n++;
    return n;
}

/* The size of the member an option type fills, 0 for an unknown type. */
static size_t option_size(uint32_t type)
{
    switch ((enum rmr_option_type)type) {
    case RMR_OPT_STRING: return sizeof(const char *);
    case RMR_OPT_INT: return sizeof(int64_t);
    case RMR_OPT_BOOL: return sizeof(int32_t);
    case RMR_OPT_DOUBLE: return sizeof(double);
    case RMR_OPT_SIZE: return sizeof(uint64_t);
    case RMR_OPT_DURATION: return sizeof(int64_t);
    case RMR_OPT_ENUM: return sizeof(int32_t);
    case RMR_OPT_LIST: return sizeof(struct rmr_strlist);
    case RMR_OPT_TAGS: return sizeof(struct rmr_taglist);
    }
    return 0;
}

/* ---- value parsing -------------------------------------------------------------------------- */

int config_parse_bool(const char *text, int32_t *out)
{
    static const struct {
        const char *word;
        int32_t value;
    } words[] = {{"true", 1}, {"false", 0}, {"on", 1}, {"off", 0},
                 {"yes", 1},  {"no", 0},    {"1", 1},  {"0", 0}};
    if (text == NULL)
        return RMR_EINVAL;
    const char *b = text;
    const char *e = text + strlen(text);
    trim_span(&b, &e);
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (span_ieq(b, (size_t)(e - b), words[i].word)) {
            *out = words[i].value;
            return 0;
        }
    }
    return RMR_EINVAL;
}

/* Parses digits[.digits] at *p into an integer part and a fraction frac / fdiv (fdiv a power
 * of ten up to 1e18; further fraction digits are ignored). Returns RMR_EINVAL without a digit,
 * RMR_ERANGE when the integer part overflows. */
static int parse_decimal(const char **p, uint64_t *ip, uint64_t *frac, uint64_t *fdiv)
{
    const char *s = *p;
    if (!isdigit((unsigned char)*s))
        return RMR_EINVAL;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return RMR_ERANGE;
        v = v * 10 + d;
    }
    uint64_t f = 0, div = 1;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return RMR_EINVAL;
        for (; isdigit((unsigned char)*s); s++) {
            if (div < 1000000000000000000ull) {
                f = f * 10 + (uint64_t)(*s - '0');
                div *= 10;
            }
        }
    }
    *p = s;
    *ip = v;
    *frac = f;
    *fdiv = div;
    return 0;
}

int config_parse_size(const char *text, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1ull << 10},
        {"kb", 1000ull},
        {"kib", 1ull << 10},
        {"m", 1ull << 20},
        {"mb", 1000000ull},
        {"mib", 1ull << 20},
        {"g", 1ull << 30},
        {"gb", 1000000000ull},
        {"gib", 1ull << 30},
        {"t", 1ull << 40},
        {"tb", 1000000000000ull},
        {"tib", 1ull << 40},
    };
    if (text == NULL)
        return RMR_EINVAL;
    const char *p = skip_ws(text);
    uint64_t ip, frac, fdiv;
    int rc = parse_decimal(&p, &ip, &frac, &fdiv);
    if (rc != 0)
        return rc;
    p = skip_ws(p);
    const char *u = p;
    while (isalpha((unsigned char)*p))
        p++;
    size_t ulen = (size_t)(p - u);
    if (*skip_ws(p) != '\0')
        return RMR_EINVAL;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!span_ieq(u, ulen, units[i].unit))
            continue;
        unsigned __int128 v =
            (unsigned __int128)ip * units[i].mult + (unsigned __int128)frac * units[i].mult / fdiv;
        if (v > UINT64_MAX)
            return RMR_ERANGE;
        *out = (uint64_t)v;
        return 0;
    }
    return RMR_EINVAL;
}

int config_parse_duration(const char *text, int64_t *out_ms)
{
    static const struct {
        const char *unit;
        uint64_t ns;
    } units[] = {
        {"ns", 1},
        {"us", 1000ull},
        {"\xc2\xb5s", 1000ull}, /* µs */
        {"ms", 1000000ull},
        {"s", 1000000000ull},
        {"m", 60000000000ull},
        {"h", 3600000000000ull},
        {"d", 86400000000000ull},
    };
    /* The largest total that still fits int64_t milliseconds. */
    const unsigned __int128 limit = (unsigned __int128)INT64_MAX * 1000000u;
    if (text == NULL)
        return RMR_EINVAL;
    const char *p = skip_ws(text);
    if (*p == '\0')
        return RMR_EINVAL;
    unsigned __int128 total = 0;
    for (int n = 0; *p != '\0'; n++) {
        uint64_t ip, frac, fdiv;
        int rc = parse_decimal(&p, &ip, &frac, &fdiv);
        if (rc != 0)
            return rc;
        p = skip_ws(p);
        const char *u = p;
        while (isalpha((unsigned char)*p) ||
               ((unsigned char)p[0] == 0xc2 && (unsigned char)p[1] == 0xb5))
            p += isalpha((unsigned char)*p) ? 1 : 2;
        size_t ulen = (size_t)(p - u);
        uint64_t unit_ns = 0;
        if (ulen == 0) {
            /* A bare number means seconds, but only as the whole value. */
            if (n != 0 || *skip_ws(p) != '\0')
                return RMR_EINVAL;
            unit_ns = 1000000000ull;
        }
        for (size_t i = 0; ulen > 0 && i < sizeof units / sizeof units[0]; i++)
            if (span_ieq(u, ulen, units[i].unit))
                unit_ns = units[i].ns;
        if (unit_ns == 0)
            return RMR_EINVAL;
        /* ip < 2^64, unit_ns < 2^47, total <= limit < 2^84: no overflow in 128 bits. */
        total += (unsigned __int128)ip * unit_ns + (unsigned __int128)frac * unit_ns / fdiv;
        if (total > limit)
            return RMR_ERANGE;
        p = skip_ws(p);
    }
    unsigned __int128 ms = total / 1000000u + (total % 1000000u != 0);
    if (ms > (unsigned __int128)INT64_MAX)
        return RMR_ERANGE;
    *out_ms = (int64_t)ms;
    return 0;
}

static int is_tag_sep(char c)
{
    return c == ',' || isspace((unsigned char)c);
}

int config_parse_tags(struct cfg_store *store, const char *text, struct rmr_taglist *out)
{
    out->tags = NULL;
    out->count = 0;
    if (text == NULL)
        return 0;
    size_t n = 0;
    for (const char *p = text; *p != '\0';) {
        while (*p != '\0' && is_tag_sep(*p))
            p++;
        if (*p == '\0')
            break;
        n++;
        while (*p != '\0' && !is_tag_sep(*p))
            p++;
    }
    if (n == 0)
        return 0;
    if (n > UINT32_MAX)
        return RMR_ERANGE;
    struct rmr_tag *tags = store_array(store, n, sizeof *tags);
    if (tags == NULL)
        return RMR_ENOMEM;
    size_t i = 0;
    for (const char *p = text; *p != '\0' && i < n;) {
        while (*p != '\0' && is_tag_sep(*p))
            p++;
        if (*p == '\0')
            break;
        const char *b = p;
        while (*p != '\0' && !is_tag_sep(*p))
            p++;
        size_t len = (size_t)(p - b);
        size_t klen = strcspn(b, ":=");
        if (klen > len)
            klen = len;
        if (klen == 0)
            return RMR_EINVAL;
        const char *v = klen < len ? b + klen + 1 : b + len;
        size_t vlen = (size_t)(b + len - v);
        char *k = store_strndup(store, b, klen);
        char *val = store_strndup(store, v, vlen);
        if (k == NULL || val == NULL)
            return RMR_ENOMEM;
        tags[i].key = rmr_str_n(k, klen);
        tags[i].value = rmr_str_n(val, vlen);
        i++;
    }
    out->tags = tags;
    out->count = (uint32_t)i;
    return 0;
}

static int parse_list(struct cfg_store *store, const char *text, struct rmr_strlist *out)
{
    out->items = NULL;
    out->count = 0;
    size_t n = 0;
    const char *cur = text, *b;
    size_t len;
    while (next_item(&cur, &b, &len))
        n += len > 0;
    if (n >= UINT32_MAX)
        return RMR_ERANGE;
    const char **items = store_array(store, n + 1, sizeof *items);
    if (items == NULL)
        return RMR_ENOMEM;
    size_t i = 0;
    cur = text;
    while (next_item(&cur, &b, &len)) {
        if (len == 0)
            continue;
        if ((items[i++] = store_strndup(store, b, len)) == NULL)
            return RMR_ENOMEM;
    }
    items[i] = NULL;
    out->items = items;
    out->count = (uint32_t)i;
    return 0;
}

static void format_size(char *buf, size_t cap, uint64_t v)
{
    static const char *const names[] = {"TiB", "GiB", "MiB", "KiB"};
    for (int i = 0; i < 4; i++) {
        uint64_t unit = 1ull << (10 * (4 - i));
        if (v != 0 && v % unit == 0) {
            snprintf(buf, cap, "%llu%s", (unsigned long long)(v / unit), names[i]);
            return;
        }
    }
    snprintf(buf, cap, "%llu", (unsigned long long)v);
}

static void format_duration(char *buf, size_t cap, int64_t ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(buf, cap, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    snprintf(buf, cap, "%lldms", (long long)ms);
}

/* Formats an option's range bound for messages, in the option's own units. */
static void format_bound(char *buf, size_t cap, uint32_t type, double v)
{
    if (type == RMR_OPT_SIZE)
        format_size(buf, cap, (uint64_t)v);
    else if (type == RMR_OPT_DURATION)
        format_duration(buf, cap, (int64_t)v);
    else
        snprintf(buf, cap, "%.15g", v);
}

static int out_of_range(const struct rmr_option *opt, double v, char *why, size_t whylen)
{
    if (!(opt->max > opt->min) || (v >= opt->min && v <= opt->max))
        return 0;
    char lo[48], hi[48];
    format_bound(lo, sizeof lo, opt->type, opt->min);
    format_bound(hi, sizeof hi, opt->type, opt->max);
    snprintf(why, whylen, "must be between %s and %s", lo, hi);
    return RMR_ERANGE;
}

int config_parse_value(struct cfg_store *store, const struct rmr_option *opt, const char *text,
                       void *dst, char *why, size_t whylen)
{
    char dummy[1];
    if (why == NULL || whylen == 0) {
        why = dummy;
        whylen = sizeof dummy;
    }
    why[0] = '\0';
    if (store == NULL || opt == NULL || text == NULL || dst == NULL) {
        snprintf(why, whylen, "no value");
        return RMR_EINVAL;
    }
    int rc;
    switch ((enum rmr_option_type)opt->type) {
    case RMR_OPT_STRING: {
        const char *s = cfg_store_strdup(store, text);
        if (s == NULL)
            return RMR_ENOMEM;
        memcpy(dst, &s, sizeof s);
        return 0;
    }
    case RMR_OPT_INT: {
        const char *b = skip_ws(text);
        char *end;
        errno = 0;
        long long v = strtoll(b, &end, 10);
        if (end == b || *skip_ws(end) != '\0') {
            snprintf(why, whylen, "expected an integer");
            return RMR_EINVAL;
        }
        if (errno == ERANGE) {
            snprintf(why, whylen, "integer out of range");
            return RMR_ERANGE;
        }
        if ((rc = out_of_range(opt, (double)v, why, whylen)) != 0)
            return rc;
        int64_t v64 = v;
        memcpy(dst, &v64, sizeof v64);
        return 0;
    }
    case RMR_OPT_BOOL: {
        int32_t v;
        if (config_parse_bool(text, &v) != 0) {
            snprintf(why, whylen, "expected true or false (or on/off, yes/no, 1/0)");
            return RMR_EINVAL;
        }
        memcpy(dst, &v, sizeof v);
        return 0;
    }
    case RMR_OPT_DOUBLE: {
        const char *b = skip_ws(text);
        char *end;
        errno = 0;
        double v = strtod(b, &end);
        if (end == b || *skip_ws(end) != '\0' || !isfinite(v)) {
            snprintf(why, whylen, "expected a number");
            return RMR_EINVAL;
        }
        if (errno == ERANGE && fabs(v) > 1.0) {
            snprintf(why, whylen, "number out of range");
            return RMR_ERANGE;
        }
        if ((rc = out_of_range(opt, v, why, whylen)) != 0)
            return rc;
        memcpy(dst, &v, sizeof v);
        return 0;
    }
    case RMR_OPT_SIZE: {
        uint64_t v;
        rc = config_parse_size(text, &v);
        if (rc == RMR_ERANGE) {
            snprintf(why, whylen, "size too large");
            return rc;
        }
        if (rc != 0) {
            snprintf(why, whylen, "expected a size like 512, 64KiB or 1GB");
            return RMR_EINVAL;
        }
        if ((rc = out_of_range(opt, (double)v, why, whylen)) != 0)
            return rc;
        memcpy(dst, &v, sizeof v);
        return 0;
    }
    case RMR_OPT_DURATION: {
        int64_t v;
        rc = config_parse_duration(text, &v);
        if (rc == RMR_ERANGE) {
            snprintf(why, whylen, "duration too large");
            return rc;
        }
        if (rc != 0) {
            snprintf(why, whylen, "expected a duration like 10s, 250ms or 1h30m");
            return RMR_EINVAL;
        }
        if ((rc = out_of_range(opt, (double)v, why, whylen)) != 0)
            return rc;
        memcpy(dst, &v, sizeof v);
        return 0;
    }
    case RMR_OPT_ENUM: {
        const char *b = text;
        const char *e = text + strlen(text);
        trim_span(&b, &e);
        int32_t index = 0;
        for (const char *c = opt->choices; c != NULL; index++) {
            const char *bar = strchr(c, '|');
            size_t clen = bar != NULL ? (size_t)(bar - c) : strlen(c);
            if (clen == (size_t)(e - b) && strncasecmp(c, b, clen) == 0) {
                memcpy(dst, &index, sizeof index);
                return 0;
            }
            c = bar != NULL ? bar + 1 : NULL;
        }
        snprintf(why, whylen, "expected one of %s", opt->choices ? opt->choices : "(none)");
        return RMR_EINVAL;
    }
    case RMR_OPT_LIST: {
        struct rmr_strlist l;
        if ((rc = parse_list(store, text, &l)) != 0)
            return rc;
        memcpy(dst, &l, sizeof l);
        return 0;
    }
    case RMR_OPT_TAGS: {
        struct rmr_taglist t;
        rc = config_parse_tags(store, text, &t);
        if (rc == RMR_EINVAL) {
            snprintf(why, whylen, "expected tags like k:v,k2:v2 or k=v k2=v2 (a tag has no key)");
            return rc;
        }
        if (rc != 0)
            return rc;
        memcpy(dst, &t, sizeof t);
        return 0;
    }
    }
    snprintf(why, whylen, "option type %u is not supported", opt->type);
    return RMR_EINVAL;
}

/* ---- nearest name --------------------------------------------------------------------------- */

#define NEAREST_MAX 128

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions), ignoring case.
 * Both lengths are at most NEAREST_MAX. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t rows[3][NEAREST_MAX + 1];
    size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        int ca = tolower((unsigned char)a[i - 1]);
        for (size_t j = 1; j <= lb; j++) {
            int cb = tolower((unsigned char)b[j - 1]);
            size_t cost = ca != cb;
            size_t d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            if (prev[j - 1] + cost < d)
                d = prev[j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && pp[j - 2] + 1 < d)
                d = pp[j - 2] + 1;
            cur[j] = d;
        }
        size_t *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *config_nearest(const char *word, const char *const *names)
{
    if (word == NULL || names == NULL)
        return NULL;
    size_t wl = strlen(word);
    if (wl == 0 || wl > NEAREST_MAX)
        return NULL;
    size_t limit = wl / 3 < 2 ? 2 : wl / 3;
    const char *best = NULL;
    size_t bestd = limit + 1;
    for (const char *const *n = names; *n != NULL; n++) {
        size_t nl = strlen(*n);
        if (nl > NEAREST_MAX || nl > wl + limit || wl > nl + limit)
            continue;
        size_t d = edit_distance(word, wl, *n, nl);
        if (d < bestd) {
            bestd = d;
            best = *n;
        }
    }
    return best;
}

/* ---- environment ---------------------------------------------------------------------------- */

static const char *env_getn(char *const *env, const char *name, size_t len)
{
    for (char *const *e = env; e != NULL && *e != NULL; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

/* ---- schema filling ------------------------------------------------------------------------- */

/* One option being filled: its effective text and where that came from. */
struct slot {
    const struct rmr_option *opt;
    void *base;       /* the struct the option's offset refers to */
    const char *text; /* borrowed: the option default, a store string or an env value */
    struct cfg_source src;
    const char *section; /* CFG_FILE: the section as written, for messages */
    uint32_t cont_line;  /* CFG_FILE: the first continuation line, 0 when none */
    uint32_t reserved_;
};

/* Appends the options of opts (filling base) to slots, with their defaults. */
static void slots_add(struct slot *slots, uint32_t *n, const struct rmr_option *opts, void *base)
{
    for (uint32_t i = 0; opts != NULL && opts[i].name != NULL; i++) {
        struct slot *s = &slots[(*n)++];
        memset(s, 0, sizeof *s);
        s->opt = &opts[i];
        s->base = base;
        s->text = opts[i].def;
        s->src.origin = CFG_DEFAULT;
    }
}

/* Sets every slot named key (a schema and the common options may share a key) from a source.
 * Returns how many slots matched. */
static uint32_t slots_set(struct slot *slots, uint32_t n, const char *key, size_t keylen,
                          const char *text, const struct cfg_source *src, const char *section,
                          uint32_t cont_line)
{
    uint32_t matched = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!span_ieq(key, keylen, slots[i].opt->name))
            continue;
        slots[i].text = text;
        slots[i].src = *src;
        slots[i].section = section;
        slots[i].cont_line = cont_line;
        matched++;
    }
    return matched;
}

/* Applies an option's ecosystem variables (rmr_option.env): for lists and tags every variable
 * that is set contributes, merged in the listed order; for other types the first one set wins. */
static int slot_apply_env(struct cfg_store *store, char *const *env, struct slot *s)
{
    const char *cur = s->opt->env, *b;
    size_t len, nset = 0, vlen = 0, nlen = 0;
    int merge = s->opt->type == RMR_OPT_LIST || s->opt->type == RMR_OPT_TAGS;
    while (next_item(&cur, &b, &len)) {
        const char *v = len > 0 ? env_getn(env, b, len) : NULL;
        if (v == NULL)
            continue;
        if (!merge) {
            char *name = store_strndup(store, b, len);
            if (name == NULL)
                return RMR_ENOMEM;
            s->text = v;
            s->src = (struct cfg_source){.origin = CFG_ENV, .env = name};
            s->section = NULL;
            s->cont_line = 0;
            return 0;
        }
        nset++;
        vlen += strlen(v) + 1;
        nlen += len + 1;
    }
    if (nset == 0)
        return 0;
    char *text = store_alloc(store, vlen);
    char *names = store_alloc(store, nlen);
    if (text == NULL || names == NULL)
        return RMR_ENOMEM;
    char *tp = text, *np = names;
    cur = s->opt->env;
    while (next_item(&cur, &b, &len)) {
        const char *v = len > 0 ? env_getn(env, b, len) : NULL;
        if (v == NULL)
            continue;
        if (tp != text)
            *tp++ = ',';
        if (np != names)
            *np++ = ',';
        size_t l = strlen(v);
        memcpy(tp, v, l);
        tp += l;
        memcpy(np, b, len);
        np += len;
    }
    *tp = '\0';
    *np = '\0';
    s->text = text;
    s->src = (struct cfg_source){.origin = CFG_ENV, .env = names};
    s->section = NULL;
    s->cont_line = 0;
    return 0;
}

static void sb_location(struct sbuf *sb, const struct cfg_source *src)
{
    if (src->origin == CFG_FILE && src->file != NULL)
        sb_printf(sb, "%s:%u: ", src->file, src->line);
    else if (src->origin == CFG_ENV && src->env != NULL)
        sb_printf(sb, "%s: ", src->env);
}

/* Names the section of a message: the section as written for file values, else the instance. */
static void sb_section(struct sbuf *sb, const char *section, const char *inst)
{
    const char *s = section != NULL ? section : inst;
    if (s != NULL)
        sb_printf(sb, "[%s] ", s);
}

/* Parses every slot's effective text into its member and records the settings.
 * inst: "input.dk" for messages, or NULL (config_fill); env_prefix: "REMORA_INPUT_DK_" for the
 * missing-key hint, or NULL. settings: n entries to fill, or NULL. */
static int slots_finish(struct slot *slots, uint32_t n, struct cfg_store *store, const char *inst,
                        const char *env_prefix, struct cfg_setting *settings, char *err,
                        size_t errlen)
{
    struct sbuf sb;
    sb_init(&sb, err, errlen);
    for (uint32_t i = 0; i < n; i++) {
        struct slot *s = &slots[i];
        const struct rmr_option *opt = s->opt;
        int listy = opt->type == RMR_OPT_LIST || opt->type == RMR_OPT_TAGS;
        if (s->src.origin == CFG_FILE && s->cont_line != 0 && !listy) {
            struct cfg_source at = s->src;
            at.line = s->cont_line;
            sb_location(&sb, &at);
            sb_section(&sb, s->section, inst);
            sb_printf(&sb,
                      "key '%s' cannot continue on an indented line; only lists and tags can "
                      "(an indented line continues the previous key)",
                      opt->name);
            return RMR_ECONFIG;
        }
        /* An empty string (a commented-in "hostname =", DD_VERSION="" in a task definition)
         * means the default, not "": NULL would otherwise become an empty host or path. */
        if (opt->type == RMR_OPT_STRING && s->text != NULL && s->text[0] == '\0')
            s->text = opt->def;
        int empty = s->text == NULL || *skip_ws(s->text) == '\0';
        if ((opt->flags & RMR_OPT_REQUIRED) && empty) {
            sb_section(&sb, NULL, inst);
            sb_printf(&sb, "missing required key '%s'", opt->name);
            if (env_prefix != NULL) {
                char up[128];
                upper_into(up, sizeof up, opt->name);
                sb_printf(&sb, " (set it in the file or with %s%s", env_prefix, up);
                const char *cur = opt->env, *b;
                size_t len;
                while (next_item(&cur, &b, &len))
                    if (len > 0)
                        sb_printf(&sb, " or %.*s", (int)len, b);
                sb_printf(&sb, ")");
            }
            return RMR_ECONFIG;
        }
        if (settings != NULL) {
            settings[i].opt = opt;
            settings[i].src = s->src;
            settings[i].text = NULL;
        }
        if (s->text == NULL)
            continue;
        char why[160];
        int rc =
            config_parse_value(store, opt, s->text, (char *)s->base + opt->offset, why, sizeof why);
        if (rc == RMR_ENOMEM)
            return rc;
        if (rc != 0) {
            sb_location(&sb, &s->src);
            sb_section(&sb, s->section, inst);
            sb_printf(&sb, "key '%s': %s", opt->name, why);
            if (!(opt->flags & RMR_OPT_SECRET)) {
                sb_printf(&sb, ", got ");
                sb_value(&sb, s->text);
            }
            if (s->src.origin == CFG_DEFAULT)
                sb_printf(&sb, " (the default)");
            return RMR_ECONFIG;
        }
        if (settings != NULL && (settings[i].text = cfg_store_strdup(store, s->text)) == NULL)
            return RMR_ENOMEM;
    }
    return 0;
}

/* Writes "unknown key 'k'; did you mean 'x'?" (or the known keys) for the slots' options. */
static int unknown_key(struct sbuf *sb, const struct slot *slots, uint32_t n, const char *key)
{
    const char **names = calloc((size_t)n + 1, sizeof *names);
    if (names == NULL)
        return RMR_ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        names[i] = slots[i].opt->name;
    sb_printf(sb, "unknown key ");
    sb_value(sb, key);
    const char *near = config_nearest(key, names);
    if (near != NULL) {
        sb_printf(sb, "; did you mean '%s'?", near);
    } else {
        sb_printf(sb, "; known keys:");
        for (uint32_t i = 0; i < n; i++)
            sb_printf(sb, "%s %s", i ? "," : "", names[i]);
    }
    free(names);
    return RMR_ECONFIG;
}

int config_fill(struct cfg_store *store, const struct rmr_option *opts, void *config,
                const char *const *keys, const char *const *values, uint32_t n, char *err,
                size_t errlen)
{
    struct sbuf sb;
    sb_init(&sb, err, errlen);
    if (store == NULL || config == NULL || (n > 0 && (keys == NULL || values == NULL)))
        return RMR_EINVAL;
    uint32_t nopts = count_options(opts), nslots = 0;
    struct slot *slots = calloc(nopts ? nopts : 1, sizeof *slots);
    if (slots == NULL)
        return RMR_ENOMEM;
    slots_add(slots, &nslots, opts, config);
    int rc = 0;
    const struct cfg_source none = {.origin = CFG_FILE};
    for (uint32_t i = 0; i < n; i++) {
        if (keys[i] == NULL || values[i] == NULL) {
            rc = RMR_EINVAL;
            goto fail;
        }
        if (slots_set(slots, nslots, keys[i], strlen(keys[i]), values[i], &none, NULL, 0) == 0) {
            rc = unknown_key(&sb, slots, nslots, keys[i]);
            goto fail;
        }
    }
    rc = slots_finish(slots, nslots, store, NULL, NULL, NULL, err, errlen);
fail:
    free(slots);
    return rc;
}

/* ---- reading files -------------------------------------------------------------------------- */

/* An entry while files are read: the value grows with continuation lines. */
struct raw {
    struct cfg_entry e;
    char *value; /* malloc'd */
    size_t len;
    size_t cap;
    uint32_t cont_line;
    uint32_t reserved_;
};

struct raws {
    struct raw *v;
    uint32_t n;
    uint32_t cap;
};

enum line_kind { LINE_OTHER = 0, LINE_KEY = 1, LINE_CONT = 2 };

struct parse {
    FILE *f;
    struct cfg_store *store;
    struct raws *raws;
    const char *file;    /* store copy of the path */
    const char *section; /* store copy of the current section, NULL before the first */
    uint32_t line;
    uint32_t kind;     /* enum line_kind of the line just read */
    uint32_t have_key; /* a key line was seen since the last section header (inih's prev_name) */
    uint32_t last;     /* index in raws of the last key line's entry */
    int rc;            /* the first error; 0 while none */
    struct sbuf err;
};

__attribute__((format(printf, 2, 3))) static void parse_fail(struct parse *p, const char *fmt, ...)
{
    if (p->rc != 0)
        return;
    p->rc = RMR_ECONFIG;
    sb_printf(&p->err, "%s:%u: ", p->file, p->line);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sb_printf(&p->err, "%s", msg);
}

static int valid_word(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

/* agent, input.NAME, input.NAME.LABEL, output.NAME, output.NAME.LABEL. */
static int valid_section(const char *s, size_t n)
{
    if (n == 5 && memcmp(s, "agent", 5) == 0)
        return 1;
    size_t pre;
    if (n > 6 && memcmp(s, "input.", 6) == 0)
        pre = 6;
    else if (n > 7 && memcmp(s, "output.", 7) == 0)
        pre = 7;
    else
        return 0;
    const char *name = s + pre;
    size_t rest = n - pre;
    const char *dot = memchr(name, '.', rest);
    if (dot == NULL)
        return valid_word(name, rest);
    size_t nlen = (size_t)(dot - name);
    return valid_word(name, nlen) && valid_word(dot + 1, rest - nlen - 1);
}

/* Suggests a valid section for a bad one: lowercased, with its first word replaced by the
 * nearest of agent/input/output. Writes "" when nothing valid comes out. */
static void suggest_section(char *out, size_t cap, const char *s, size_t n)
{
    static const char *const kinds[] = {"agent", "input", "output", NULL};
    char low[128];
    out[0] = '\0';
    if (n >= sizeof low)
        return;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)s[i]);
    low[n] = '\0';
    char *dot = strchr(low, '.');
    const char *tail = dot != NULL ? dot : "";
    if (dot != NULL)
        *dot = '\0';
    const char *k = config_nearest(low, kinds);
    if (k == NULL)
        return;
    char cand[160];
    int len = snprintf(cand, sizeof cand, "%s%s", k, dot != NULL ? "." : "");
    if (len < 0 || (size_t)len >= sizeof cand)
        return;
    if (dot != NULL)
        snprintf(cand + len, sizeof cand - (size_t)len, "%s", tail + 1);
    if (valid_section(cand, strlen(cand)))
        snprintf(out, cap, "%s", cand);
}

static int raws_push(struct raws *r, struct raw **out)
{
    if (grow((void **)&r->v, &r->cap, r->n + 1, sizeof *r->v) != 0)
        return RMR_ENOMEM;
    *out = &r->v[r->n++];
    memset(*out, 0, sizeof **out);
    return 0;
}

/* Appends text to a raw's value; with comma, a ',' first. */
static int raw_append(struct raw *r, const char *text, size_t len, int comma)
{
    size_t need = r->len + (size_t)comma + len + 1;
    if (need > r->cap) {
        size_t ncap = r->cap ? r->cap : 32;
        while (ncap < need)
            ncap *= 2;
        char *nv = realloc(r->value, ncap);
        if (nv == NULL)
            return RMR_ENOMEM;
        r->value = nv;
        r->cap = ncap;
    }
    if (comma)
        r->value[r->len++] = ',';
    memcpy(r->value + r->len, text, len);
    r->len += len;
    r->value[r->len] = '\0';
    return 0;
}

/* A section header line: records the section (also when it has no keys). */
static void parse_section(struct parse *p, const char *t)
{
    const char *close = strchr(t, ']');
    if (close == NULL) {
        parse_fail(p, "section header has no closing ']'");
        return;
    }
    const char *after = skip_ws(close + 1);
    if (*after != '\0' && *after != ';' && *after != '#') {
        parse_fail(p, "unexpected text after ']' of a section header");
        return;
    }
    const char *b = t + 1, *e = close;
    trim_span(&b, &e);
    size_t n = (size_t)(e - b);
    if (!valid_section(b, n)) {
        char hint[160], what[80];
        suggest_section(hint, sizeof hint, b, n);
        size_t w = 0, shown = n < 64 ? n : 64;
        for (size_t i = 0; i < shown; i++)
            what[w++] = (unsigned char)b[i] < 0x20 || b[i] == 0x7f ? '?' : b[i];
        memcpy(what + w, n > shown ? "..." : "", n > shown ? 4 : 1);
        if (hint[0] != '\0')
            parse_fail(p, "unknown section '[%s]'; did you mean '[%s]'?", what, hint);
        else
            parse_fail(p,
                       "unknown section '[%s]'; sections are [agent], [input.NAME], "
                       "[input.NAME.LABEL], [output.NAME] and [output.NAME.LABEL] "
                       "(lowercase letters, digits and '_')",
                       what);
        return;
    }
    char *sec = store_strndup(p->store, b, n);
    struct raw *r;
    if (sec == NULL || raws_push(p->raws, &r) != 0) {
        p->rc = p->rc ? p->rc : RMR_ENOMEM;
        return;
    }
    /* A section marker: key "" and value "", see config.h. */
    r->e.section = sec;
    r->e.src = (struct cfg_source){.origin = CFG_FILE, .line = p->line, .file = p->file};
    r->e.used = 1;
    p->section = sec;
    p->have_key = 0;
}

/* inih's reader callback: one line per call, like fgets, but counting lines, refusing lines
 * longer than inih's buffer and classifying each line for the handler. */
static char *read_line(char *str, int num, void *stream)
{
    struct parse *p = stream;
    if (p->rc != 0 || num < 2)
        return NULL;
    int c = getc(p->f);
    if (c == EOF)
        return NULL;
    p->line++;
    size_t cap = (size_t)num - 1, len = 0;
    for (; c != EOF && c != '\n'; c = getc(p->f)) {
        if (c == '\r') {
            int d = getc(p->f);
            if (d == '\n' || d == EOF)
                break;
            ungetc(d, p->f);
        }
        if (c == '\0') {
            parse_fail(p, "line contains a NUL byte");
            return NULL;
        }
        if (len == cap) {
            parse_fail(p,
                       "line is longer than %zu characters (the INI parser's limit); split a "
                       "long list over several lines: an indented line continues the previous "
                       "key",
                       cap);
            return NULL;
        }
        str[len++] = (char)c;
    }
    str[len] = '\0';

    const char *s = str;
    if (p->line == 1 && (unsigned char)s[0] == 0xef && (unsigned char)s[1] == 0xbb &&
        (unsigned char)s[2] == 0xbf)
        s += 3;
    const char *t = skip_ws(s);
    /* The same order of tests as inih's ini_parse_stream(). */
    if (*t == '\0' || *t == ';' || *t == '#')
        p->kind = LINE_OTHER;
    else if (p->have_key && t > str)
        p->kind = LINE_CONT;
    else if (*t == '[') {
        p->kind = LINE_OTHER;
        parse_section(p, t);
        if (p->rc != 0)
            return NULL;
    } else
        p->kind = LINE_KEY;
    return str;
}

/* Cuts an inline comment started by '#' after whitespace (inih only knows ';' inline). */
static size_t value_len(const char *v)
{
    size_t n = strlen(v);
    for (size_t i = 1; i < n; i++) {
        if (v[i] == '#' && isspace((unsigned char)v[i - 1])) {
            n = i;
            break;
        }
    }
    while (n > 0 && isspace((unsigned char)v[n - 1]))
        n--;
    return n;
}

static int on_value(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    (void)section; /* the reader tracks the section: inih truncates it at 49 bytes */
    if (p->rc != 0)
        return 0;
    size_t vlen = value != NULL ? value_len(value) : 0;
    if (p->kind == LINE_CONT) {
        struct raw *r = &p->raws->v[p->last];
        if (vlen == 0)
            return 1;
        if (raw_append(r, value, vlen, 1) != 0) {
            p->rc = RMR_ENOMEM;
            return 0;
        }
        if (r->cont_line == 0)
            r->cont_line = p->line;
        return 1;
    }
    if (p->section == NULL) {
        parse_fail(p,
                   "key '%s' is outside of any section; put it under [agent], [input.NAME] "
                   "or [output.NAME]",
                   name);
        return 0;
    }
    if (name[0] == '\0') {
        parse_fail(p, "[%s] a line has a value but no key", p->section);
        return 0;
    }
    struct raw *r;
    char *key = cfg_store_strdup(p->store, name);
    if (key == NULL || raws_push(p->raws, &r) != 0) {
        p->rc = RMR_ENOMEM;
        return 0;
    }
    r->e.section = (char *)p->section;
    r->e.key = key;
    r->e.src = (struct cfg_source){.origin = CFG_FILE, .line = p->line, .file = p->file};
    if (raw_append(r, value != NULL ? value : "", vlen, 0) != 0) {
        p->rc = RMR_ENOMEM;
        return 0;
    }
    p->last = p->raws->n - 1;
    p->have_key = 1;
    return 1;
}

/* Reads one INI file into raws; a file that cannot be opened is an error. */
static int parse_file(struct cfg_store *store, struct raws *raws, const char *path, char *err,
                      size_t errlen)
{
    struct parse p;
    memset(&p, 0, sizeof p);
    sb_init(&p.err, err, errlen);
    p.store = store;
    p.raws = raws;
    if ((p.file = cfg_store_strdup(store, path)) == NULL)
        return RMR_ENOMEM;
    p.f = fopen(path, "r");
    if (p.f == NULL) {
        sb_printf(&p.err, "cannot open '%s': %s", path, strerror(errno));
        return RMR_ECONFIG;
    }
    int bad = ini_parse_stream(read_line, &p, on_value, &p);
    if (p.rc == 0 && ferror(p.f)) {
        sb_printf(&p.err, "cannot read '%s': %s", path, strerror(errno));
        p.rc = RMR_ECONFIG;
    }
    if (p.rc == 0 && bad > 0) {
        p.line = (uint32_t)bad;
        parse_fail(&p, "expected 'key = value', '[section]' or a comment");
    } else if (p.rc == 0 && bad < 0) {
        sb_printf(&p.err, "cannot parse '%s'", path);
        p.rc = bad == -2 ? RMR_ENOMEM : RMR_ECONFIG;
    }
    fclose(p.f);
    return p.rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads DIR/conf.d/ *.conf (DIR: the main file's directory) in strcmp order; no directory is
 * fine. */
static int parse_conf_d(struct cfg_store *store, struct raws *raws, const char *main_path,
                        char *err, size_t errlen)
{
    struct sbuf sb;
    sb_init(&sb, err, errlen);
    const char *slash = strrchr(main_path, '/');
    size_t dlen = slash != NULL ? (size_t)(slash - main_path) + 1 : 0;
    char **names = NULL;
    uint32_t n = 0, cap = 0;
    char *dir = NULL, *path = NULL;
    DIR *d = NULL;
    int rc = RMR_ENOMEM;
    if ((dir = malloc(dlen + sizeof "conf.d")) == NULL)
        goto fail;
    memcpy(dir, main_path, dlen);
    memcpy(dir + dlen, "conf.d", sizeof "conf.d");
    d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT || errno == ENOTDIR) {
            rc = 0;
        } else {
            sb_printf(&sb, "cannot read directory '%s': %s", dir, strerror(errno));
            rc = RMR_ECONFIG;
        }
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".conf") != 0)
            continue;
        if (grow((void **)&names, &cap, n + 1, sizeof *names) != 0)
            goto fail;
        if ((names[n] = strdup(de->d_name)) == NULL)
            goto fail;
        n++;
    }
    if (n > 0)
        qsort(names, n, sizeof *names, cmp_names);
    for (uint32_t i = 0; i < n; i++) {
        size_t len = strlen(dir) + 1 + strlen(names[i]) + 1;
        free(path);
        if ((path = malloc(len)) == NULL)
            goto fail;
        snprintf(path, len, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if ((rc = parse_file(store, raws, path, err, errlen)) != 0)
            goto fail;
    }
    rc = 0;
fail:
    if (d != NULL)
        closedir(d);
    for (uint32_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(path);
    free(dir);
    return rc;
}

/* Moves the raw entries into the store as cfg->entries. */
static int raws_finish(struct config *cfg, struct raws *raws)
{
    if (raws->n == 0)
        return 0;
    struct cfg_entry *entries = store_array(cfg->store, raws->n, sizeof *entries);
    uint32_t *cont = store_array(cfg->store, raws->n, sizeof *cont);
    char *empty = cfg_store_strdup(cfg->store, "");
    if (entries == NULL || cont == NULL || empty == NULL)
        return RMR_ENOMEM;
    for (uint32_t i = 0; i < raws->n; i++) {
        struct raw *r = &raws->v[i];
        entries[i] = r->e;
        if (r->e.key == NULL) {
            entries[i].key = empty;
            entries[i].value = empty;
        } else if ((entries[i].value = store_strndup(cfg->store, r->value, r->len)) == NULL) {
            return RMR_ENOMEM;
        }
        cont[i] = r->cont_line;
    }
    cfg->entries = entries;
    cfg->nentries = raws->n;
    cfg->store->cont_lines = cont;
    cfg->store->ncont_lines = raws->n;
    return 0;
}

static uint32_t entry_cont_line(const struct config *cfg, uint32_t i)
{
    return i < cfg->store->ncont_lines ? cfg->store->cont_lines[i] : 0;
}

/* ---- the agent section ---------------------------------------------------------------------- */

/* Sets env, service and version tags in dd_tags from DD_ENV, DD_SERVICE and DD_VERSION, which
 * replace tags of those keys given in DD_TAGS. */
static int add_dd_tags(struct config *cfg)
{
    struct agent_config *a = &cfg->agent;
    const char *keys[3] = {"env", "service", "version"};
    const char *vals[3] = {a->dd_env, a->dd_service, a->dd_version};
    uint32_t nadd = 0;
    for (int k = 0; k < 3; k++)
        nadd += vals[k] != NULL && vals[k][0] != '\0';
    if (nadd == 0)
        return 0;
    struct rmr_tag *tags = store_array(cfg->store, (size_t)a->dd_tags.count + nadd, sizeof *tags);
    if (tags == NULL)
        return RMR_ENOMEM;
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->dd_tags.count; i++) {
        const struct rmr_tag *t = &a->dd_tags.tags[i];
        int replaced = 0;
        for (int k = 0; k < 3; k++)
            if (vals[k] != NULL && vals[k][0] != '\0' && span_ieq(t->key.ptr, t->key.len, keys[k]))
                replaced = 1;
        if (!replaced)
            tags[n++] = *t;
    }
    for (int k = 0; k < 3; k++) {
        if (vals[k] == NULL || vals[k][0] == '\0')
            continue;
        tags[n].key = rmr_str_c(keys[k]);
        tags[n].value = rmr_str_c(vals[k]);
        n++;
    }
    a->dd_tags.tags = tags;
    a->dd_tags.count = n;
    return 0;
}

static int read_agent(struct config *cfg, char *err, size_t errlen)
{
    struct sbuf sb;
    sb_init(&sb, err, errlen);
    uint32_t nopts = count_options(agent_options), n = 0;
    struct slot *slots = calloc(nopts, sizeof *slots);
    int rc = RMR_ENOMEM;
    if (slots == NULL)
        return rc;
    slots_add(slots, &n, agent_options, &cfg->agent);
    for (uint32_t i = 0; i < cfg->nentries; i++) {
        struct cfg_entry *e = &cfg->entries[i];
        if (e->key[0] == '\0' || strcmp(e->section, "agent") != 0)
            continue;
        if (slots_set(slots, n, e->key, strlen(e->key), e->value, &e->src, e->section,
                      entry_cont_line(cfg, i)) == 0) {
            sb_location(&sb, &e->src);
            sb_printf(&sb, "[agent] ");
            rc = unknown_key(&sb, slots, n, e->key);
            goto fail;
        }
        e->used = 1;
    }
    for (uint32_t i = 0; i < n; i++)
        if (slots[i].opt->env != NULL && (rc = slot_apply_env(cfg->store, cfg->env, &slots[i])))
            goto fail;
    static const char prefix[] = "REMORA_AGENT_";
    for (char *const *e = cfg->env; *e != NULL; e++) {
        if (strncmp(*e, prefix, sizeof prefix - 1) != 0)
            continue;
        const char *key = *e + sizeof prefix - 1;
        const char *eq = strchr(key, '=');
        if (eq == NULL)
            continue;
        char *var = store_strndup(cfg->store, *e, (size_t)(eq - *e));
        if (var == NULL)
            goto fail;
        struct cfg_source src = {.origin = CFG_ENV, .env = var};
        /* Unknown REMORA_AGENT_* variables are warned about by config_resolve(). */
        slots_set(slots, n, key, (size_t)(eq - key), eq + 1, &src, NULL, 0);
    }
    cfg->agent_settings = store_array(cfg->store, n, sizeof *cfg->agent_settings);
    if (cfg->agent_settings == NULL)
        goto fail;
    cfg->nagent_settings = n;
    rc = slots_finish(slots, n, cfg->store, "agent", "REMORA_AGENT_", cfg->agent_settings, err,
                      errlen);
    if (rc != 0)
        goto fail;
    /* The enum index is 0 for "error"; struct agent_config holds the rmr_log_level. */
    cfg->agent.log_level += RMR_LOG_ERROR;
    for (uint32_t i = 0; i < n; i++)
        if (slots[i].opt->offset == AGENT_OFF(enabled_inputs))
            cfg->agent.enabled_inputs_set = slots[i].src.origin != CFG_DEFAULT;
    rc = add_dd_tags(cfg);
fail:
    free(slots);
    return rc;
}

int config_read(struct config *cfg, const char *path, char *const *envp, char *err, size_t errlen)
{
    struct raws raws = {0};
    struct sbuf sb;
    sb_init(&sb, err, errlen);
    memset(cfg, 0, sizeof *cfg);
    int rc = RMR_ENOMEM;
    if ((cfg->store = cfg_store_new()) == NULL)
        goto fail;
    size_t nenv = 0;
    while (envp != NULL && envp[nenv] != NULL)
        nenv++;
    if ((cfg->env = store_array(cfg->store, nenv + 1, sizeof *cfg->env)) == NULL)
        goto fail;
    for (size_t i = 0; i < nenv; i++)
        if ((cfg->env[i] = cfg_store_strdup(cfg->store, envp[i])) == NULL)
            goto fail;
    if (path != NULL) {
        if ((cfg->path = cfg_store_strdup(cfg->store, path)) == NULL)
            goto fail;
        if ((rc = parse_file(cfg->store, &raws, path, err, errlen)) != 0)
            goto fail;
        if ((rc = parse_conf_d(cfg->store, &raws, path, err, errlen)) != 0)
            goto fail;
    }
    if ((rc = raws_finish(cfg, &raws)) != 0)
        goto fail;
    if ((rc = read_agent(cfg, err, errlen)) != 0)
        goto fail;
    for (uint32_t i = 0; i < raws.n; i++)
        free(raws.v[i].value);
    free(raws.v);
    return 0;
fail:
    if (rc == RMR_ENOMEM && sb.len == 0)
        sb_printf(&sb, "out of memory reading the configuration");
    for (uint32_t i = 0; i < raws.n; i++)
        free(raws.v[i].value);
    free(raws.v);
    config_release(cfg);
    return rc;
}

/* ---- resolving instances -------------------------------------------------------------------- */

/* The i-th name of a plugin: 0 is its name, then its aliases. Returns 0 past the last. */
static int plugin_name_at(const struct rmr_plugin *d, uint32_t i, const char **b, size_t *n)
{
    if (i == 0) {
        *b = d->name;
        *n = d->name != NULL ? strlen(d->name) : 0;
        return d->name != NULL;
    }
    const char *cur = d->aliases;
    uint32_t k = 0;
    while (next_item(&cur, b, n))
        if (*n > 0 && ++k == i)
            return 1;
    return 0;
}

static int plugin_has_name(const struct rmr_plugin *d, const char *name, size_t len)
{
    const char *b;
    size_t n;
    for (uint32_t i = 0; plugin_name_at(d, i, &b, &n); i++)
        if (n == len && strncasecmp(b, name, len) == 0)
            return 1;
    return 0;
}

static int usable(const struct cfg_plugin *pl, uint32_t kind)
{
    return pl->desc != NULL && pl->desc->name != NULL && pl->desc->kind == kind;
}

static int find_plugin(const struct cfg_plugin *plugins, uint32_t nplugins, uint32_t kind,
                       const char *name, size_t len)
{
    for (uint32_t i = 0; i < nplugins; i++)
        if (usable(&plugins[i], kind) && plugin_has_name(plugins[i].desc, name, len))
            return (int)i;
    return -1;
}

/* "dk, self, ..." : the names of the loaded plugins of a kind. */
static void sb_known(struct sbuf *sb, const struct cfg_plugin *plugins, uint32_t nplugins,
                     uint32_t kind)
{
    int first = 1;
    for (uint32_t i = 0; i < nplugins; i++) {
        if (!usable(&plugins[i], kind))
            continue;
        sb_printf(sb, "%s%s", first ? "" : ", ", plugins[i].desc->name);
        first = 0;
    }
    if (first)
        sb_printf(sb, "(none loaded)");
}

/* The nearest plugin name or alias of a kind, or NULL. Returns RMR_ENOMEM on failure. */
static int nearest_plugin(const struct cfg_plugin *plugins, uint32_t nplugins, uint32_t kind,
                          const char *word, char *out, size_t cap)
{
    uint32_t total = 0;
    for (uint32_t i = 0; i < nplugins; i++) {
        const char *b;
        size_t n;
        for (uint32_t k = 0;
             usable(&plugins[i], kind) && plugin_name_at(plugins[i].desc, k, &b, &n); k++)
            total++;
    }
    char **names = calloc((size_t)total + 1, sizeof *names);
    if (names == NULL)
        return RMR_ENOMEM;
    uint32_t j = 0;
    int rc = 0;
    for (uint32_t i = 0; i < nplugins && rc == 0; i++) {
        const char *b;
        size_t n;
        for (uint32_t k = 0;
             usable(&plugins[i], kind) && plugin_name_at(plugins[i].desc, k, &b, &n); k++) {
            if ((names[j] = strndup(b, n)) == NULL) {
                rc = RMR_ENOMEM;
                break;
            }
            j++;
        }
    }
    out[0] = '\0';
    const char *near = rc == 0 ? config_nearest(word, (const char *const *)names) : NULL;
    if (near != NULL)
        snprintf(out, cap, "%s", near);
    for (uint32_t i = 0; i < j; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* An instance while resolving. */
struct inst {
    struct cfg_instance ci;
    uint32_t plugin; /* index into plugins */
    uint32_t seq;    /* creation order, for a stable sort */
    int removed;     /* not in ENV_DEFAULT_ENABLED_INPUTS */
};

/* A REMORA_INPUT_* / REMORA_OUTPUT_* variable matched to a plugin and key. */
struct envkey {
    const char *var; /* store copy of the name */
    const char *value;
    const char *key; /* points into var; compared case-insensitively */
    uint32_t kind;
    uint32_t plugin;
};

struct resolve {
    struct config *cfg;
    const struct cfg_plugin *plugins;
    uint32_t nplugins;
    void (*warn)(void *arg, const char *msg);
    void *warn_arg;
    struct inst *v;
    uint32_t n;
    uint32_t cap;
    struct envkey *ek;
    uint32_t nek;
    uint32_t ekcap;
    struct sbuf err;
};

__attribute__((format(printf, 2, 3))) static void warnf(struct resolve *r, const char *fmt, ...)
{
    if (r->warn == NULL)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->warn(r->warn_arg, msg);
}

static int find_inst(const struct resolve *r, uint32_t plugin, const char *label)
{
    for (uint32_t i = 0; i < r->n; i++) {
        const struct inst *in = &r->v[i];
        if (in->plugin != plugin)
            continue;
        if ((label == NULL && in->ci.label == NULL) ||
            (label != NULL && in->ci.label != NULL && strcmp(label, in->ci.label) == 0))
            return (int)i;
    }
    return -1;
}

static int has_inst_of(const struct resolve *r, uint32_t plugin)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (r->v[i].plugin == plugin)
            return 1;
    return 0;
}

/* Finds or creates the instance (plugin, label); *out is its index. */
static int add_inst(struct resolve *r, uint32_t plugin, const char *label, size_t label_len,
                    const struct cfg_source *by, uint32_t *out)
{
    struct cfg_store *store = r->cfg->store;
    char *lab = NULL;
    if (label != NULL && (lab = store_strndup(store, label, label_len)) == NULL)
        return RMR_ENOMEM;
    int found = find_inst(r, plugin, lab);
    if (found >= 0) {
        *out = (uint32_t)found;
        return 0;
    }
    if (grow((void **)&r->v, &r->cap, r->n + 1, sizeof *r->v) != 0)
        return RMR_ENOMEM;
    const struct rmr_plugin *d = r->plugins[plugin].desc;
    size_t len = strlen(kind_word(d->kind)) + 1 + strlen(d->name) + 1 + label_len + 1;
    char *name = store_alloc(store, len);
    if (name == NULL)
        return RMR_ENOMEM;
    snprintf(name, len, "%s.%s%s%s", kind_word(d->kind), d->name, lab ? "." : "", lab ? lab : "");
    struct inst *in = &r->v[r->n];
    memset(in, 0, sizeof *in);
    in->ci.kind = d->kind;
    in->ci.name = name;
    in->ci.label = lab;
    in->ci.plugin = &r->plugins[plugin];
    in->ci.enabled_by = *by;
    in->plugin = plugin;
    in->seq = r->n;
    *out = r->n++;
    return 0;
}

/* Splits "input.NAME[.LABEL]" (validated when read). Returns 0 for other sections. */
static int split_section(const char *s, uint32_t *kind, const char **name, size_t *nlen,
                         const char **label, size_t *llen)
{
    if (strncmp(s, "input.", 6) == 0) {
        *kind = RMR_KIND_INPUT;
        s += 6;
    } else if (strncmp(s, "output.", 7) == 0) {
        *kind = RMR_KIND_OUTPUT;
        s += 7;
    } else {
        return 0;
    }
    const char *dot = strchr(s, '.');
    *name = s;
    *nlen = dot != NULL ? (size_t)(dot - s) : strlen(s);
    *label = dot != NULL ? dot + 1 : NULL;
    *llen = dot != NULL ? strlen(dot + 1) : 0;
    return 1;
}

/* Creates the instances of file sections; entry_inst[i] is the instance of entry i or
 * UINT32_MAX. */
static int instances_from_files(struct resolve *r, uint32_t *entry_inst)
{
    struct config *cfg = r->cfg;
    for (uint32_t i = 0; i < cfg->nentries; i++) {
        const struct cfg_entry *e = &cfg->entries[i];
        uint32_t kind;
        const char *name, *label;
        size_t nlen, llen;
        entry_inst[i] = UINT32_MAX;
        if (!split_section(e->section, &kind, &name, &nlen, &label, &llen))
            continue;
        int p = find_plugin(r->plugins, r->nplugins, kind, name, nlen);
        if (p < 0) {
            char near[128], word[128];
            snprintf(word, sizeof word, "%.*s", (int)nlen, name);
            if (nearest_plugin(r->plugins, r->nplugins, kind, word, near, sizeof near) != 0)
                return RMR_ENOMEM;
            sb_location(&r->err, &e->src);
            sb_printf(&r->err, "[%s] unknown %s plugin '%.*s'", e->section, kind_word(kind),
                      (int)nlen, name);
            if (near[0] != '\0') {
                sb_printf(&r->err, "; did you mean '%s'?", near);
            } else {
                sb_printf(&r->err, "; known %ss: ", kind_word(kind));
                sb_known(&r->err, r->plugins, r->nplugins, kind);
            }
            return RMR_ECONFIG;
        }
        int rc = add_inst(r, (uint32_t)p, label, llen, &e->src, &entry_inst[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Does plugin p's schema, or the common options of its kind, have key [k, k + klen)? */
static int plugin_has_key(const struct rmr_plugin *d, const char *k, size_t klen)
{
    const struct rmr_option *lists[2] = {d->options, common_options(d->kind)};
    for (int l = 0; l < 2; l++)
        for (const struct rmr_option *o = lists[l]; o != NULL && o->name != NULL; o++)
            if (span_ieq(k, klen, o->name))
                return 1;
    return 0;
}

/* Warns about an unknown REMORA_<KIND>_* variable, naming the nearest known one. */
static int warn_unknown_var(struct resolve *r, const char *var, uint32_t kind, int agent)
{
    uint32_t total = 0;
    for (uint32_t i = 0; i < r->nplugins && !agent; i++)
        if (usable(&r->plugins[i], kind))
            total +=
                count_options(r->plugins[i].desc->options) + count_options(common_options(kind));
    if (agent)
        total = count_options(agent_options);
    char **names = calloc((size_t)total + 1, sizeof *names);
    if (names == NULL)
        return RMR_ENOMEM;
    uint32_t j = 0;
    int rc = 0;
    for (uint32_t i = 0; i < (agent ? 1 : r->nplugins) && rc == 0; i++) {
        const struct rmr_option *lists[2] = {agent_options, NULL};
        char up[128] = "";
        if (!agent) {
            if (!usable(&r->plugins[i], kind))
                continue;
            lists[0] = r->plugins[i].desc->options;
            lists[1] = common_options(kind);
            upper_into(up, sizeof up, r->plugins[i].desc->name);
        }
        for (int l = 0; l < 2 && rc == 0; l++) {
            for (const struct rmr_option *o = lists[l]; o != NULL && o->name != NULL; o++) {
                char key[128];
                upper_into(key, sizeof key, o->name);
                size_t len = strlen(up) + strlen(key) + 32;
                if (j >= total || (names[j] = malloc(len)) == NULL) {
                    rc = RMR_ENOMEM;
                    break;
                }
                if (agent)
                    snprintf(names[j], len, "REMORA_AGENT_%s", key);
                else
                    snprintf(names[j], len, "REMORA_%s_%s_%s", kind_upper(kind), up, key);
                j++;
            }
        }
    }
    if (rc == 0) {
        const char *near = config_nearest(var, (const char *const *)names);
        if (near != NULL)
            warnf(r, "ignoring unknown variable '%s'; did you mean '%s'?", var, near);
        else if (agent)
            warnf(r, "ignoring unknown variable '%s': no agent key matches", var);
        else
            warnf(r, "ignoring unknown variable '%s': no %s plugin and key match it", var,
                  kind_word(kind));
    }
    for (uint32_t i = 0; i < j; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Matches REMORA_INPUT_* / REMORA_OUTPUT_* variables to plugins and keys, warns about the rest
 * (and about unknown REMORA_AGENT_* ones). NAME and KEY both may contain '_': every plugin name
 * that prefixes the rest is tried, the longest with a valid key wins. */
static int scan_remora_env(struct resolve *r)
{
    static const struct {
        const char *prefix;
        uint32_t kind;
    } kinds[] = {{"REMORA_INPUT_", RMR_KIND_INPUT}, {"REMORA_OUTPUT_", RMR_KIND_OUTPUT}};
    static const char agent_prefix[] = "REMORA_AGENT_";
    for (char *const *e = r->cfg->env; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL)
            continue;
        size_t varlen = (size_t)(eq - *e);
        if (strncmp(*e, agent_prefix, sizeof agent_prefix - 1) == 0) {
            const char *k = *e + sizeof agent_prefix - 1;
            int known = 0;
            for (const struct rmr_option *o = agent_options; o->name != NULL; o++)
                known |= span_ieq(k, (size_t)(eq - k), o->name);
            if (known)
                continue;
            char *var = strndup(*e, varlen);
            if (var == NULL)
                return RMR_ENOMEM;
            int rc = warn_unknown_var(r, var, 0, 1);
            free(var);
            if (rc != 0)
                return rc;
            continue;
        }
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            size_t plen = strlen(kinds[k].prefix);
            if (strncmp(*e, kinds[k].prefix, plen) != 0)
                continue;
            const char *rest = *e + plen;
            size_t restlen = (size_t)(eq - rest);
            int best = -1;
            size_t bestlen = 0;
            for (uint32_t i = 0; i < r->nplugins; i++) {
                if (!usable(&r->plugins[i], kinds[k].kind))
                    continue;
                const char *b;
                size_t n;
                for (uint32_t a = 0; plugin_name_at(r->plugins[i].desc, a, &b, &n); a++) {
                    if (n == 0 || n + 1 >= restlen || strncasecmp(rest, b, n) != 0 ||
                        rest[n] != '_')
                        continue;
                    if (plugin_has_key(r->plugins[i].desc, rest + n + 1, restlen - n - 1) &&
                        (best < 0 || n > bestlen)) {
                        best = (int)i;
                        bestlen = n;
                    }
                }
            }
            char *var = store_strndup(r->cfg->store, *e, varlen);
            if (var == NULL)
                return RMR_ENOMEM;
            if (best < 0) {
                int rc = warn_unknown_var(r, var, kinds[k].kind, 0);
                if (rc != 0)
                    return rc;
                continue;
            }
            if (grow((void **)&r->ek, &r->ekcap, r->nek + 1, sizeof *r->ek) != 0)
                return RMR_ENOMEM;
            r->ek[r->nek++] = (struct envkey){.var = var,
                                              .value = eq + 1,
                                              .key = var + plen + bestlen + 1,
                                              .kind = kinds[k].kind,
                                              .plugin = (uint32_t)best};
        }
    }
    return 0;
}

/* Instances that variables create: REMORA_* keys, RMR_OPT_ENABLES options' variables and the
 * plugins' enable_env. Each creates the unlabelled instance when the plugin has none. */
static int instances_from_env(struct resolve *r)
{
    char *const *env = r->cfg->env;
    for (uint32_t i = 0; i < r->nek; i++) {
        if (has_inst_of(r, r->ek[i].plugin))
            continue;
        struct cfg_source by = {.origin = CFG_ENV, .env = r->ek[i].var};
        uint32_t idx;
        int rc = add_inst(r, r->ek[i].plugin, NULL, 0, &by, &idx);
        if (rc != 0)
            return rc;
    }
    for (uint32_t p = 0; p < r->nplugins; p++) {
        const struct rmr_plugin *d = r->plugins[p].desc;
        if (!usable(&r->plugins[p], RMR_KIND_INPUT) && !usable(&r->plugins[p], RMR_KIND_OUTPUT))
            continue;
        const char *by_var = NULL;
        size_t by_len = 0;
        for (const struct rmr_option *o = d->options; o != NULL && o->name != NULL && !by_var;
             o++) {
            if (!(o->flags & RMR_OPT_ENABLES))
                continue;
            const char *cur = o->env, *b;
            size_t n;
            while (by_var == NULL && next_item(&cur, &b, &n)) {
                const char *v = n > 0 ? env_getn(env, b, n) : NULL;
                if (v != NULL && v[0] != '\0') {
                    by_var = b;
                    by_len = n;
                }
            }
        }
        const char *cur = d->enable_env, *b;
        size_t n;
        while (by_var == NULL && next_item(&cur, &b, &n)) {
            const char *v = n > 0 ? env_getn(env, b, n) : NULL;
            int32_t on = 0;
            if (v == NULL)
                continue;
            if (config_parse_bool(v, &on) != 0) {
                warnf(r, "ignoring %.*s: expected true or false", (int)n, b);
                continue;
            }
            if (on) {
                by_var = b;
                by_len = n;
            }
        }
        if (by_var == NULL || has_inst_of(r, p))
            continue;
        char *var = store_strndup(r->cfg->store, by_var, by_len);
        if (var == NULL)
            return RMR_ENOMEM;
        struct cfg_source by = {.origin = CFG_ENV, .env = var};
        uint32_t idx;
        int rc = add_inst(r, p, NULL, 0, &by, &idx);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static const struct cfg_setting *agent_setting(const struct config *cfg, const char *key)
{
    for (uint32_t i = 0; i < cfg->nagent_settings; i++) {
        const struct rmr_option *o = cfg->agent_settings[i].opt;
        if (o != NULL && strcmp(o->name, key) == 0)
            return &cfg->agent_settings[i];
    }
    return NULL;
}

static void sb_source(struct sbuf *sb, const struct cfg_source *src)
{
    switch ((enum cfg_origin)src->origin) {
    case CFG_DEFAULT: sb_printf(sb, "default"); return;
    case CFG_FILE: sb_printf(sb, "%s:%u", src->file ? src->file : "?", src->line); return;
    case CFG_ENV: sb_printf(sb, "env %s", src->env ? src->env : "?"); return;
    }
    sb_printf(sb, "?");
}

/* ENV_DEFAULT_ENABLED_INPUTS (or [agent] enabled_inputs): exactly these inputs run. */
static int apply_enabled_inputs(struct resolve *r)
{
    const struct config *cfg = r->cfg;
    const struct cfg_setting *set = agent_setting(cfg, "enabled_inputs");
    struct cfg_source src = set != NULL ? set->src : (struct cfg_source){.origin = CFG_DEFAULT};
    char where[256];
    struct sbuf wsb;
    sb_init(&wsb, where, sizeof where);
    if (src.origin == CFG_ENV)
        sb_printf(&wsb, "%s", src.env);
    else
        sb_printf(&wsb, "[agent] enabled_inputs (%s:%u)", src.file ? src.file : "?", src.line);

    uint8_t *listed = calloc(r->nplugins ? r->nplugins : 1, 1);
    if (listed == NULL)
        return RMR_ENOMEM;
    int rc = 0;
    const struct rmr_strlist *l = &cfg->agent.enabled_inputs;
    for (uint32_t i = 0; i < l->count; i++) {
        int p =
            find_plugin(r->plugins, r->nplugins, RMR_KIND_INPUT, l->items[i], strlen(l->items[i]));
        if (p < 0) {
            char known[256];
            struct sbuf ksb;
            sb_init(&ksb, known, sizeof known);
            sb_known(&ksb, r->plugins, r->nplugins, RMR_KIND_INPUT);
            warnf(r, "unknown input '%s' in %s; known inputs: %s", l->items[i], where, known);
            continue;
        }
        listed[p] = 1;
        uint32_t idx;
        if (!has_inst_of(r, (uint32_t)p) && (rc = add_inst(r, (uint32_t)p, NULL, 0, &src, &idx)))
            goto fail;
    }
    for (uint32_t i = 0; i < r->n; i++) {
        struct inst *in = &r->v[i];
        if (in->ci.kind != RMR_KIND_INPUT || listed[in->plugin])
            continue;
        int first = 1;
        for (uint32_t j = 0; j < i; j++)
            if (r->v[j].plugin == in->plugin)
                first = 0;
        in->removed = 1;
        if (first) {
            char by[256];
            struct sbuf bsb;
            sb_init(&bsb, by, sizeof by);
            sb_source(&bsb, &in->ci.enabled_by);
            warnf(r, "input '%s' is configured (%s) but not listed in %s; it does not run",
                  r->plugins[in->plugin].desc->name, by, where);
        }
    }
fail:
    free(listed);
    return rc;
}

/* With no instance of a kind configured, the plugins named in defaults (comma list) run. */
static int apply_defaults(struct resolve *r, uint32_t kind, const char *defaults)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (r->v[i].ci.kind == kind && !r->v[i].removed)
            return 0;
    const char *cur = defaults, *b;
    size_t n;
    while (next_item(&cur, &b, &n)) {
        if (n == 0)
            continue;
        int p = find_plugin(r->plugins, r->nplugins, kind, b, n);
        if (p < 0) {
            warnf(r, "default %s '%.*s' is not loaded; skipping it", kind_word(kind), (int)n, b);
            continue;
        }
        struct cfg_source by = {.origin = CFG_DEFAULT};
        uint32_t idx;
        int rc = add_inst(r, (uint32_t)p, NULL, 0, &by, &idx);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Checks that a plugin's options lie inside its config struct: a bad descriptor must not make
 * the host write out of bounds. */
static int check_offsets(struct resolve *r, const struct rmr_plugin *d)
{
    for (const struct rmr_option *o = d->options; o != NULL && o->name != NULL; o++) {
        size_t size = option_size(o->type);
        if (size == 0 || (size_t)o->offset + size > d->config_size) {
            sb_printf(&r->err,
                      "plugin '%s': option '%s' has a bad type or lies outside its "
                      "config struct",
                      d->name, o->name);
            return RMR_ECONFIG;
        }
    }
    return 0;
}

/* Fills one instance's config and common options from defaults, files and variables. */
static int fill_instance(struct resolve *r, struct inst *in, uint32_t index,
                         const uint32_t *entry_inst)
{
    struct config *cfg = r->cfg;
    const struct rmr_plugin *d = r->plugins[in->plugin].desc;
    const struct rmr_option *common = common_options(d->kind);
    int rc = check_offsets(r, d);
    if (rc != 0)
        return rc;
    in->ci.config = calloc(1, d->config_size ? d->config_size : 1);
    uint32_t n = 0, total = count_options(d->options) + count_options(common);
    struct slot *slots = calloc(total, sizeof *slots);
    rc = RMR_ENOMEM;
    if (in->ci.config == NULL || slots == NULL)
        goto fail;
    slots_add(slots, &n, d->options, in->ci.config);
    slots_add(slots, &n, common, &in->ci.common);
    for (uint32_t i = 0; i < cfg->nentries; i++) {
        struct cfg_entry *e = &cfg->entries[i];
        if (entry_inst[i] != index || e->key[0] == '\0')
            continue;
        if (slots_set(slots, n, e->key, strlen(e->key), e->value, &e->src, e->section,
                      entry_cont_line(cfg, i)) == 0) {
            sb_location(&r->err, &e->src);
            sb_printf(&r->err, "[%s] ", e->section);
            rc = unknown_key(&r->err, slots, n, e->key);
            goto fail;
        }
        e->used = 1;
    }
    for (uint32_t i = 0; i < n; i++)
        if (slots[i].opt->env != NULL && (rc = slot_apply_env(cfg->store, cfg->env, &slots[i])))
            goto fail;
    for (uint32_t i = 0; i < r->nek; i++) {
        const struct envkey *k = &r->ek[i];
        if (k->plugin != in->plugin)
            continue;
        struct cfg_source src = {.origin = CFG_ENV, .env = k->var};
        slots_set(slots, n, k->key, strlen(k->key), k->value, &src, NULL, 0);
    }
    char prefix[160], up[128];
    upper_into(up, sizeof up, d->name);
    snprintf(prefix, sizeof prefix, "REMORA_%s_%s_", kind_upper(d->kind), up);
    in->ci.settings = store_array(cfg->store, n, sizeof *in->ci.settings);
    if (in->ci.settings == NULL)
        goto fail;
    in->ci.nsettings = n;
    rc = slots_finish(slots, n, cfg->store, in->ci.name, prefix, in->ci.settings, r->err.buf,
                      r->err.cap);
fail:
    free(slots);
    return rc;
}

static int cmp_inst(const void *pa, const void *pb)
{
    const struct inst *a = pa, *b = pb;
    if (a->ci.kind != b->ci.kind)
        return a->ci.kind < b->ci.kind ? -1 : 1;
    int c = strcmp(a->ci.plugin->desc->name, b->ci.plugin->desc->name);
    if (c != 0)
        return c;
    if ((a->ci.label == NULL) != (b->ci.label == NULL))
        return a->ci.label == NULL ? -1 : 1;
    if (a->ci.label != NULL && (c = strcmp(a->ci.label, b->ci.label)) != 0)
        return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

int config_resolve(struct config *cfg, const struct cfg_plugin *plugins, uint32_t nplugins,
                   const char *default_inputs, const char *default_output,
                   void (*warn)(void *arg, const char *msg), void *warn_arg, char *err,
                   size_t errlen)
{
    struct resolve r;
    memset(&r, 0, sizeof r);
    sb_init(&r.err, err, errlen);
    if (cfg == NULL || cfg->store == NULL || cfg->env == NULL || cfg->instances != NULL ||
        (nplugins > 0 && plugins == NULL)) {
        sb_printf(&r.err, "config_resolve() needs a config fresh from config_read()");
        return RMR_EINVAL;
    }
    r.cfg = cfg;
    r.plugins = plugins;
    r.nplugins = nplugins;
    r.warn = warn;
    r.warn_arg = warn_arg;
    int rc = RMR_ENOMEM;
    uint32_t *entry_inst = calloc(cfg->nentries ? cfg->nentries : 1, sizeof *entry_inst);
    if (entry_inst == NULL)
        goto fail;
    if ((rc = instances_from_files(&r, entry_inst)) != 0)
        goto fail;
    if ((rc = scan_remora_env(&r)) != 0)
        goto fail;
    if ((rc = instances_from_env(&r)) != 0)
        goto fail;
    if (cfg->agent.enabled_inputs_set && (rc = apply_enabled_inputs(&r)) != 0)
        goto fail;
    if (!cfg->agent.enabled_inputs_set &&
        (rc = apply_defaults(&r, RMR_KIND_INPUT, default_inputs)) != 0)
        goto fail;
    if ((rc = apply_defaults(&r, RMR_KIND_OUTPUT, default_output)) != 0)
        goto fail;
    for (uint32_t i = 0; i < r.n; i++)
        if (!r.v[i].removed && (rc = fill_instance(&r, &r.v[i], i, entry_inst)) != 0)
            goto fail;

    uint32_t nrun = 0;
    for (uint32_t i = 0; i < r.n; i++)
        nrun += !r.v[i].removed;
    struct inst *sorted = calloc(nrun ? nrun : 1, sizeof *sorted);
    struct cfg_instance *out = store_array(cfg->store, nrun ? nrun : 1, sizeof *out);
    rc = RMR_ENOMEM;
    if (sorted == NULL || out == NULL) {
        free(sorted);
        goto fail;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < r.n; i++)
        if (!r.v[i].removed)
            sorted[k++] = r.v[i];
    qsort(sorted, nrun, sizeof *sorted, cmp_inst);
    for (uint32_t i = 0; i < nrun; i++)
        out[i] = sorted[i].ci;
    free(sorted);
    cfg->instances = out;
    cfg->ninstances = nrun;
    free(entry_inst);
    free(r.v);
    free(r.ek);
    return 0;
fail:
    if (rc == RMR_ENOMEM && r.err.len == 0)
        sb_printf(&r.err, "out of memory resolving the configuration");
    for (uint32_t i = 0; i < r.n; i++)
        free(r.v[i].ci.config);
    free(entry_inst);
    free(r.v);
    free(r.ek);
    return rc;
}

/* ---- printing and release ------------------------------------------------------------------- */

/* Writes a value on one line: control bytes escaped as \xNN. */
static int print_value(FILE *f, const char *v)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            n += fprintf(f, "\\x%02x", *p);
        else
            n += fputc(*p, f) == EOF ? 0 : 1;
    }
    return n;
}

static void print_settings(FILE *f, const struct cfg_setting *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (s[i].opt == NULL)
            continue;
        if (s[i].text == NULL) {
            fprintf(f, "# %s = (unset)\n", s[i].opt->name);
            continue;
        }
        int col = fprintf(f, "%s = ", s[i].opt->name);
        if (s[i].opt->flags & RMR_OPT_SECRET)
            col += fprintf(f, "<redacted>");
        else
            col += print_value(f, s[i].text);
        char src[512];
        struct sbuf sb;
        sb_init(&sb, src, sizeof src);
        sb_source(&sb, &s[i].src);
        fprintf(f, "%*s# %s\n", col < 37 ? 40 - col : 3, "", src);
    }
}

void config_print(const struct config *cfg, void *stream)
{
    FILE *f = stream;
    if (cfg == NULL || f == NULL)
        return;
    fprintf(f, "# remora effective configuration: value   # default, FILE:LINE or env VARIABLE\n");
    if (cfg->path != NULL)
        fprintf(f, "# file: %s\n", cfg->path);
    fprintf(f, "\n[agent]\n");
    print_settings(f, cfg->agent_settings, cfg->nagent_settings);
    for (uint32_t i = 0; i < cfg->ninstances; i++) {
        const struct cfg_instance *in = &cfg->instances[i];
        char by[512];
        struct sbuf sb;
        sb_init(&sb, by, sizeof by);
        sb_source(&sb, &in->enabled_by);
        fprintf(f, "\n# enabled by %s%s\n[%s]\n", by, in->common.enabled ? "" : " (off)", in->name);
        print_settings(f, in->settings, in->nsettings);
    }
}

void config_release(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (uint32_t i = 0; cfg->instances != NULL && i < cfg->ninstances; i++)
        free(cfg->instances[i].config);
    cfg_store_free(cfg->store);
    memset(cfg, 0, sizeof *cfg);
}
