/* remora SDK: the plugin ABI.
 *
 * A plugin is a shared object that exports one function, rmr_plugin_describe(), returning a
 * descriptor (struct rmr_plugin). The host calls the descriptor's callbacks with opaque handles;
 * every handle begins with a pointer to the host's function table (struct rmr_host_api), so the
 * inline wrappers below reach the host without any global state in the plugin, and a fake host
 * (sdk/testing) can stand in for the real one.
 *
 * Threads: unless a comment says otherwise, the host calls an instance's callbacks on the one
 * thread that owns the instance (the loop thread), and a plugin calls the host functions that
 * take an rmr_instance_t from that thread only. encode() and work functions run on the host's
 * thread pool and may only use the handles they were given.
 *
 * Versioning: RMR_ABI_MAJOR changes on any breaking change; the host refuses plugins of another
 * major. RMR_ABI_MINOR grows when members are appended to rmr_plugin or rmr_host_api; the host
 * refuses plugins built for a newer minor than its own. Use RMR_HOST_HAS() before calling a
 * host function newer than 1.0.
 */
#ifndef REMORA_PLUGIN_H
#define REMORA_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <remora/error.h>
#include <remora/record.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RMR_ABI_MAJOR 1
#define RMR_ABI_MINOR 4

/* ---- handles ---------------------------------------------------------------------------- */

struct rmr_host_api;

/* The common prefix of every handle. The rest of each handle is private to the host. */
struct rmr_handle {
    const struct rmr_host_api *host;
};

typedef struct rmr_instance rmr_instance_t; /* one configured plugin instance */
typedef struct rmr_batch rmr_batch_t;       /* records with an optional schema label */
typedef struct rmr_timer rmr_timer_t;       /* a repeating timer owned by an instance */
typedef struct rmr_encoder rmr_encoder_t;   /* one run of an output's encode() */
typedef struct rmr_payload rmr_payload_t;   /* one request body being built by encode() */
/* ABI 1.1 */
typedef struct rmr_http_req rmr_http_req_t;     /* one request received on a host HTTP listener */
typedef struct rmr_listener rmr_listener_t;     /* an HTTP listener: the shared one or its own */
typedef struct rmr_dgram_sock rmr_dgram_sock_t; /* a UDP or Unix datagram listener */

#define RMR__HOST(handle) (((const struct rmr_handle *)(const void *)(handle))->host)

/* ---- options ------------------------------------------------------------------------------ */

/* Option types and the C type the host stores at the option's offset in the config struct. */
enum rmr_option_type {
    RMR_OPT_STRING = 1,   /* const char *, NULL when unset without default */
    RMR_OPT_INT = 2,      /* int64_t, checked against min/max when max > min */
    RMR_OPT_BOOL = 3,     /* int32_t, 0 or 1 (true/false, on/off, yes/no, 1/0) */
    RMR_OPT_DOUBLE = 4,   /* double, checked against min/max when max > min */
    RMR_OPT_SIZE = 5,     /* uint64_t bytes: "512", "64KiB", "64MiB", "1GB" */
    RMR_OPT_DURATION = 6, /* int64_t milliseconds: "500ms", "10s", "5m", "1h30m" */
    RMR_OPT_ENUM = 7,     /* int32_t index into choices ("a|b|c") */
    RMR_OPT_LIST = 8,     /* struct rmr_strlist: comma-separated words */
    RMR_OPT_TAGS = 9,     /* struct rmr_taglist: "k:v,k2:v2" or "k=v" (Datakit) */
};

#define RMR_OPT_REQUIRED 0x1u /* no default; startup fails when unset */
#define RMR_OPT_SECRET   0x2u /* redacted in logs, check-config and status */
#define RMR_OPT_ENABLES  0x4u /* setting one of its env variables enables the plugin */

struct rmr_strlist {
    const char *const *items;
    uint32_t count;
    uint32_t reserved_;
};

struct rmr_taglist {
    const struct rmr_tag *tags;
    uint32_t count;
    uint32_t reserved_;
};

/* One option of a plugin's schema; a schema is an array ended by an entry with name NULL. */
struct rmr_option {
    const char *name; /* lowercase [a-z0-9_]; the INI key */
    uint32_t type;    /* enum rmr_option_type */
    uint32_t flags;   /* RMR_OPT_* */
    const char *def;  /* default as text, parsed like a file value; NULL: unset */
    const char *help; /* one sentence for --describe and the docs */
    const char *env;  /* comma-separated ecosystem variables that set it (ENV_DATAWAY), or NULL */
    const char *choices; /* RMR_OPT_ENUM: "block|drop_oldest" */
    double min;          /* INT, DOUBLE, SIZE, DURATION: range, used when max > min */
    double max;
    uint32_t offset; /* offsetof(config struct, member) */
    uint32_t reserved_;
};

#define RMR__OPT(n, t, fl, d, st, m, h)                                                            \
    {                                                                                              \
        (n), (t), (fl), (d), (h), NULL, NULL, 0, 0, (uint32_t)offsetof(st, m), 0                   \
    }
#define RMR_OPT_STR(n, d, fl, st, m, h)     RMR__OPT(n, RMR_OPT_STRING, fl, d, st, m, h)
#define RMR_OPT_INTEGER(n, d, fl, st, m, h) RMR__OPT(n, RMR_OPT_INT, fl, d, st, m, h)
#define RMR_OPT_BOOLEAN(n, d, fl, st, m, h) RMR__OPT(n, RMR_OPT_BOOL, fl, d, st, m, h)
#define RMR_OPT_DBL(n, d, fl, st, m, h)     RMR__OPT(n, RMR_OPT_DOUBLE, fl, d, st, m, h)
#define RMR_OPT_BYTES(n, d, fl, st, m, h)   RMR__OPT(n, RMR_OPT_SIZE, fl, d, st, m, h)
#define RMR_OPT_TIME(n, d, fl, st, m, h)    RMR__OPT(n, RMR_OPT_DURATION, fl, d, st, m, h)
#define RMR_OPT_STRLIST(n, d, fl, st, m, h) RMR__OPT(n, RMR_OPT_LIST, fl, d, st, m, h)
#define RMR_OPT_TAGLIST(n, d, fl, st, m, h) RMR__OPT(n, RMR_OPT_TAGS, fl, d, st, m, h)
/* An enum option: choices "a|b|c"; the member is an int32_t index. */
#define RMR_OPT_CHOICE(n, d, fl, choices, st, m, h)                                                \
    {                                                                                              \
        (n), RMR_OPT_ENUM, (fl), (d), (h), NULL, (choices), 0, 0, (uint32_t)offsetof(st, m), 0     \
    }
/* Any option with a range and ecosystem variables spelled out. */
#define RMR_OPT_FULL(n, t, fl, d, env, lo, hi, st, m, h)                                           \
    {                                                                                              \
        (n), (t), (fl), (d), (h), (env), NULL, (lo), (hi), (uint32_t)offsetof(st, m), 0            \
    }
#define RMR_OPT_END                                                                                \
    {                                                                                              \
        NULL, 0, 0, NULL, NULL, NULL, NULL, 0, 0, 0, 0                                             \
    }

/* ---- outputs: payloads and responses ------------------------------------------------------ */

enum rmr_compression {
    RMR_COMPRESS_NONE = 0,
    RMR_COMPRESS_GZIP = 1,
    RMR_COMPRESS_DEFLATE = 2,
    RMR_COMPRESS_ZSTD = 3,
};

/* Where a payload goes and how. endpoint is a URL: http:// or https:// for the courier,
 * file:PATH for a local file (appended), file:- for standard output. */
struct rmr_payload_spec {
    uint32_t struct_size;
    uint32_t compression; /* enum rmr_compression, applied by the host on commit */
    const char *endpoint;
    const char *content_type; /* may be NULL */
    uint32_t record_kind;     /* enum rmr_record_kind the payload carries, 0 for mixed */
    uint32_t flags;           /* ABI 1.1: RMR_PAYLOAD_* (was reserved, always 0 in 1.0) */
    /* ABI 1.1: extra request headers, "Name: value" lines each ended by "\r\n", or NULL.
     * In endpoint and headers, "{secret:NAME}" stands for the value of the instance's option
     * NAME (flagged RMR_OPT_SECRET): the host substitutes it when it sends, so secrets are
     * never stored in the queue, the spool, logs or status. In an RMR_PAYLOAD_LINES payload,
     * "{lines}" in headers stands for the number of lines of the body as sent, so a count
     * header (dataway's X-Points) stays right for each half of a 413 split. */
    const char *headers;
};

/* The body is one record per line ("\n"-ended): on 413 the host may split it in two at a
 * line boundary and send each half. */
#define RMR_PAYLOAD_LINES 0x1u

/* An answer from a backend, given to an output's classify(). */
struct rmr_response {
    uint32_t struct_size;
    int32_t status; /* HTTP status, or 0 when the request failed below HTTP */
    int32_t error;  /* RMR_E* for network errors (RMR_ETIMEDOUT, RMR_EIO), else 0 */
    int32_t reserved_;
    int64_t retry_after_ms; /* from Retry-After, -1 when absent */
    const char *body;       /* not NUL-terminated */
    size_t body_len;
};

enum rmr_verdict {
    RMR_VERDICT_OK = 1,     /* delivered */
    RMR_VERDICT_RETRY = 2,  /* transient: back off and send again */
    RMR_VERDICT_SPLIT = 3,  /* too large: send in smaller parts if possible, else reject */
    RMR_VERDICT_REJECT = 4, /* permanent: drop, count and log the reason */
    RMR_VERDICT_HALT = 5,   /* credentials or permissions: keep the data, probe slowly */
};

/* ---- the descriptor ------------------------------------------------------------------------- */

enum rmr_plugin_kind { RMR_KIND_INPUT = 1, RMR_KIND_OUTPUT = 2 };

/* A plugin's descriptor. Returned by rmr_plugin_describe(); the host copies struct_size bytes
 * of it and never writes to it. Static storage is expected. */
struct rmr_plugin {
    uint32_t struct_size;    /* sizeof(struct rmr_plugin) as compiled by the plugin */
    uint16_t abi_major;      /* RMR_ABI_MAJOR as compiled */
    uint16_t abi_minor;      /* RMR_ABI_MINOR as compiled */
    uint32_t kind;           /* enum rmr_plugin_kind */
    uint32_t flags;          /* reserved for RMR_PLUGIN_F_* flags; 0 */
    const char *name;        /* [a-z0-9_]+, the config section name */
    const char *version;     /* the plugin's own version */
    const char *description; /* one line */
    const char *aliases;     /* comma-separated other names, or NULL */
    const char *enable_env;  /* comma-separated variables whose true value enables the plugin */
    const struct rmr_option *options; /* schema ended by RMR_OPT_END; NULL for none */
    uint32_t config_size;             /* size of the config struct the options fill */
    uint32_t accepts;                 /* outputs: RMR_REC_BIT mask of record kinds shipped */
    const char *const *schemas;       /* outputs: schema labels accepted, NULL-terminated */

    /* Validates the filled config and allocates state; no I/O. Returns 0 and sets *state, or
     * an error (the host logs it and fails startup). config is borrowed until destroy. */
    int (*create)(rmr_instance_t *ins, const void *config, void **state);
    /* Opens sockets and timers; returns quickly. An error fails startup. */
    int (*start)(rmr_instance_t *ins, void *state);
    /* Stops accepting, flushes partial aggregates with rmr_emit(). Returns 0 when done, or
     * RMR_EINPROGRESS and calls rmr_stop_done() later (the host waits up to its grace). */
    int (*stop)(rmr_instance_t *ins, void *state);
    /* Frees state. Called once after create succeeded, also when start failed. */
    void (*destroy)(rmr_instance_t *ins, void *state);

    /* Outputs. Turns batches into payloads with rmr_payload_*(); pure: no I/O, no instance
     * calls. Runs on the thread pool, never concurrently for one instance. Batches are
     * borrowed, read-only. Returns 0, or an error that drops these batches (counted). */
    int (*encode)(rmr_encoder_t *enc, void *state, const rmr_batch_t *const *batches,
                  uint32_t nbatches);
    /* Optional: judges a backend's answer; NULL uses the host's default classification.
     * Thread: loop. Returns an enum rmr_verdict. */
    int (*classify)(void *state, const struct rmr_response *resp);
};

/* The size of the descriptor in ABI 1.0: the smallest struct_size a host accepts. */
#define RMR_PLUGIN_SIZE_1_0 (offsetof(struct rmr_plugin, classify) + sizeof(void (*)(void)))

/* Declares a plugin's entry point. In a shared build it exports rmr_plugin_describe; with
 * RMR_BUILTIN_NAME defined (the host's -Dbuiltin build) it defines
 * rmr_plugin_describe_<name> instead, so one source file serves both ways. */
#define RMR_EXPORT      __attribute__((visibility("default")))
#define RMR__CAT2(a, b) a##b
#define RMR__CAT(a, b)  RMR__CAT2(a, b)
#ifdef RMR_BUILTIN_NAME
#define RMR_PLUGIN_DEFINE(desc)                                                                    \
    const struct rmr_plugin *RMR__CAT(rmr_plugin_describe_, RMR_BUILTIN_NAME)(void);               \
    const struct rmr_plugin *RMR__CAT(rmr_plugin_describe_, RMR_BUILTIN_NAME)(void)                \
    {                                                                                              \
        return &(desc);                                                                            \
    }
#else
/* The one symbol the loader looks up; declared here so a plugin's own tests can call it. */
RMR_EXPORT const struct rmr_plugin *rmr_plugin_describe(void);
#define RMR_PLUGIN_DEFINE(desc)                                                                    \
    RMR_EXPORT const struct rmr_plugin *rmr_plugin_describe(void)                                  \
    {                                                                                              \
        return &(desc);                                                                            \
    }
#endif
#define RMR_PLUGIN_SYMBOL "rmr_plugin_describe"

/* ---- the host table ------------------------------------------------------------------------ */

enum rmr_log_level {
    RMR_LOG_ERROR = 1,
    RMR_LOG_WARN = 2,
    RMR_LOG_INFO = 3,
    RMR_LOG_DEBUG = 4,
};

typedef void (*rmr_timer_cb)(rmr_instance_t *ins, void *arg);
typedef void (*rmr_work_cb)(void *arg);
typedef void (*rmr_work_done_cb)(rmr_instance_t *ins, void *arg, int status);

/* One self-monitoring counter or gauge, as handed to an rmr_stats_cb. */
struct rmr_stat {
    uint32_t struct_size;
    uint32_t is_gauge;       /* 0: monotonic counter, 1: gauge */
    const char *instance;    /* "input.dk", "output.file.audit" */
    const char *plugin;      /* "dk" */
    const char *kind;        /* "input" or "output" */
    const char *name;        /* "records_in", "records_out", "records_dropped", ... */
    const char *reason;      /* drops: why; otherwise NULL */
    const char *record_kind; /* drops: which kind ("metric", ...), or NULL */
    double value;
};
typedef void (*rmr_stats_cb)(void *arg, const struct rmr_stat *stat);

/* The process's own resource use, for self-monitoring. */
struct rmr_process_stats {
    uint32_t struct_size;
    uint32_t threads;
    uint64_t rss_bytes;
    uint64_t cpu_user_ns;
    uint64_t cpu_system_ns;
    uint64_t open_fds;
    int64_t start_time_ns; /* wall clock */
    int64_t uptime_ns;
};

/* ---- network services (ABI 1.1) ------------------------------------------------------------ */

/* One HTTP header: for requests a plugin sends and responses it gives. */
struct rmr_http_header {
    const char *name;
    const char *value;
};

/* What a route handler needs to know about a request. Every pointer is borrowed from the
 * request and valid until it is answered. */
struct rmr_http_req_info {
    uint32_t struct_size;
    uint32_t reserved_;
    const char *method;       /* "POST" */
    const char *path;         /* "/v0.4/traces", percent-encoding kept, without the query */
    const char *query;        /* after '?', "" when none */
    const char *content_type; /* NULL when absent */
    const char *body;         /* decoded (Content-Encoding undone, chunks joined); NUL-ended */
    size_t body_len;
    const char *remote; /* "127.0.0.1:51234" or "unix" */
};

/* Called on the loop thread with a request for a route the instance registered. The request
 * must be answered exactly once with rmr_http_respond(), now or later (asynchronously). */
typedef void (*rmr_route_cb)(rmr_instance_t *ins, void *arg, rmr_http_req_t *req);

#define RMR_ROUTE_PREFIX 0x1u /* path matches itself and everything below it ("/v1/write/") */

/* An outbound HTTP request for rmr_http_fetch(); copied by the host. */
struct rmr_fetch_spec {
    uint32_t struct_size;
    uint32_t nheaders;
    const char *method; /* NULL: GET, or POST when body is given */
    const char *url;    /* http:// or https://; TLS is verified with the agent's CA settings */
    const struct rmr_http_header *headers;
    const void *body; /* may be NULL */
    size_t body_len;
    uint32_t timeout_ms;         /* whole request; 0: 10 s */
    uint32_t connect_timeout_ms; /* 0: the agent's default */
    size_t max_response_bytes;   /* a longer body fails with RMR_E2BIG; 0: 16 MiB */
};

/* Called on the loop thread with the answer: resp->status is the HTTP status, or 0 with
 * resp->error set (RMR_ETIMEDOUT, RMR_ECONNREFUSED, RMR_EIO, RMR_E2BIG, RMR_ECANCELED when
 * the instance stops first). resp and its body are valid during the call only. */
typedef void (*rmr_fetch_cb)(rmr_instance_t *ins, void *arg, const struct rmr_response *resp);

/* Datagrams as received: an array is handed over per wake-up. */
struct rmr_dgram {
    const char *data; /* borrowed for the duration of the callback */
    uint32_t len;
    uint32_t flags; /* RMR_DGRAM_TRUNCATED when longer than max_datagram */
};
#define RMR_DGRAM_TRUNCATED 0x1u

/* Called by rmr_tagger_lookup() with an entity's tags, sorted by key and value; borrowed for
 * the duration of the call. */
typedef void (*rmr_tagger_cb)(void *arg, const struct rmr_tag *tags, uint32_t ntags);

/* Called with datagrams: on the loop thread, or with RMR_DGRAM_OWN_THREAD on the listener's
 * reader thread, where only the batch functions, the clocks and rmr_emit() may be used. */
typedef void (*rmr_dgram_cb)(rmr_instance_t *ins, void *arg, const struct rmr_dgram *msgs,
                             uint32_t count);

/* The reader runs on a thread of its own, blocked in recvmmsg(), so a busy loop thread never
 * delays reading (for high-rate inputs such as dogstatsd). Its callback may take a lock that
 * the plugin also holds on the loop thread, even around rmr_emit(): the host never waits on
 * the loop for a reader to leave its callback, but in rmr_dgram_close() and at the instance's
 * stop (do not hold that lock there). A unixstream:// listener ignores
 * it: its callback always runs on the loop thread (so a plugin that reads one transport on a
 * reader thread and another on the loop guards its state with a lock of its own). */
#define RMR_DGRAM_OWN_THREAD 0x1u

struct rmr_dgram_spec {
    uint32_t struct_size;
    uint32_t flags; /* RMR_DGRAM_* */
    /* "udp://127.0.0.1:8125", "udp://[::]:8125", "unix:///run/x.sock" (Unix datagrams), or
     * "unixstream:///run/x.sock": a Unix stream socket whose clients prefix each message with
     * its length as 4 bytes little-endian (DogStatsD's unixstream); the host accepts the
     * connections and delivers each message as one datagram. A new scheme is not a new
     * member, so the ABI minor did not change: a host built before it answers RMR_EINVAL. */
    const char *address;
    uint64_t rcvbuf_bytes; /* SO_RCVBUF asked for; 0: the kernel default */
    uint32_t max_datagram; /* bytes; 0: 65535 */
    uint32_t batch;        /* datagrams per recvmmsg() call; 0: 32 */
};

/* The host's function table. Only ever appended to; check RMR_HOST_HAS() for members added
 * after 1.0. Plugins reach it through the wrappers below. */
struct rmr_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    void (*logv)(rmr_instance_t *ins, uint32_t level, const char *fmt, va_list ap);
    const char *(*instance_name)(rmr_instance_t *ins);
    int64_t (*now_ns)(rmr_instance_t *ins);
    int64_t (*mono_ns)(rmr_instance_t *ins);

    int (*timer_start)(rmr_instance_t *ins, uint64_t first_ms, uint64_t period_ms, rmr_timer_cb cb,
                       void *arg, rmr_timer_t **out);
    void (*timer_stop)(rmr_timer_t *timer);

    rmr_batch_t *(*batch_new)(rmr_instance_t *ins, const char *schema);
    void (*batch_free)(rmr_batch_t *batch);
    int (*batch_add)(rmr_batch_t *batch, uint32_t kind, const void *record);
    int (*emit)(rmr_instance_t *ins, rmr_batch_t *batch);
    int (*schema_wanted)(rmr_instance_t *ins, const char *schema);

    uint32_t (*batch_count)(const rmr_batch_t *batch);
    const char *(*batch_schema)(const rmr_batch_t *batch);
    uint32_t (*record_kind)(const rmr_batch_t *batch, uint32_t index);
    int (*record_get)(const rmr_batch_t *batch, uint32_t index, uint32_t kind, void *view);

    rmr_payload_t *(*payload_new)(rmr_encoder_t *enc, const struct rmr_payload_spec *spec);
    int (*payload_write)(rmr_payload_t *p, const void *data, size_t len);
    int (*payload_json_str)(rmr_payload_t *p, const char *s, size_t len);
    size_t (*payload_len)(const rmr_payload_t *p);
    int (*payload_commit)(rmr_payload_t *p, uint32_t nrecords);
    void (*payload_discard)(rmr_payload_t *p);
    void (*encoder_drop)(rmr_encoder_t *enc, uint32_t record_kind, const char *reason,
                         uint64_t count);

    void (*counter_add)(rmr_instance_t *ins, const char *name, const char *reason, uint64_t delta);
    int (*stats_foreach)(rmr_instance_t *ins, rmr_stats_cb cb, void *arg);
    int (*process_stats)(rmr_instance_t *ins, struct rmr_process_stats *out);

    int (*work)(rmr_instance_t *ins, rmr_work_cb fn, rmr_work_done_cb done, void *arg);
    void (*stop_done)(rmr_instance_t *ins);
    const char *(*hostname)(rmr_instance_t *ins);

    /* ABI 1.1: network services. */
    int (*http_listener)(rmr_instance_t *ins, const char *address, rmr_listener_t **out);
    int (*http_route)(rmr_instance_t *ins, rmr_listener_t *listener, const char *method,
                      const char *path, uint32_t flags, rmr_route_cb cb, void *arg);
    int (*http_req_info)(rmr_http_req_t *req, struct rmr_http_req_info *out);
    const char *(*http_req_header)(rmr_http_req_t *req, const char *name);
    int (*http_respond)(rmr_http_req_t *req, int status, const struct rmr_http_header *headers,
                        uint32_t nheaders, const char *content_type, const void *body, size_t len);
    int (*http_fetch)(rmr_instance_t *ins, const struct rmr_fetch_spec *spec, rmr_fetch_cb cb,
                      void *arg);
    int (*dgram_listen)(rmr_instance_t *ins, const struct rmr_dgram_spec *spec, rmr_dgram_cb cb,
                        void *arg, rmr_dgram_sock_t **out);
    int (*dgram_address)(rmr_dgram_sock_t *sock, char *buf, size_t len);
    void (*dgram_close)(rmr_dgram_sock_t *sock);

    /* ABI 1.2: task-wide tags and the tagger. */
    int (*global_tags_set)(rmr_instance_t *ins, const struct rmr_tag *tags, uint32_t ntags);
    int (*tagger_set)(rmr_instance_t *ins, const char *entity, size_t entity_len,
                      const struct rmr_tag *tags, uint32_t ntags);
    int (*tagger_lookup)(rmr_instance_t *ins, const char *entity, size_t entity_len,
                         rmr_tagger_cb cb, void *arg);

    /* ABI 1.3: an output halts its own delivery. */
    int (*output_halt)(rmr_instance_t *ins, const char *reason);

    /* ABI 1.4: a self-monitoring gauge. */
    void (*gauge_set)(rmr_instance_t *ins, const char *name, const char *reason, uint64_t value);
};

#define RMR_HOST_HAS(handle, member)                                                               \
    (RMR__HOST(handle)->struct_size >=                                                             \
     offsetof(struct rmr_host_api, member) + sizeof(RMR__HOST(handle)->member))

/* ---- wrappers: instances --------------------------------------------------------------------- */

/* Logs a message prefixed with time, level and the instance's name; identical messages are
 * rate-limited by the host. Style: lowercase, subject in quotes, cause last; never a secret. */
__attribute__((format(printf, 3, 4))) static inline void
rmr_log(rmr_instance_t *ins, uint32_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    RMR__HOST(ins)->logv(ins, level, fmt, ap);
    va_end(ap);
}

/* "input.dk" or "output.file.audit". Borrowed; valid until destroy. */
static inline const char *rmr_instance_name(rmr_instance_t *ins)
{
    return RMR__HOST(ins)->instance_name(ins);
}

/* Wall clock in ns since the epoch, for record timestamps. */
static inline int64_t rmr_now_ns(rmr_instance_t *ins)
{
    return RMR__HOST(ins)->now_ns(ins);
}

/* Monotonic clock in ns, for intervals and timeouts. */
static inline int64_t rmr_mono_ns(rmr_instance_t *ins)
{
    return RMR__HOST(ins)->mono_ns(ins);
}

/* Starts a timer firing first after first_ms, then every period_ms (0: once). cb runs on the
 * instance's thread. *out is owned by the instance until rmr_timer_stop(); timers still running
 * at destroy are stopped by the host. Errors: RMR_ENOMEM, RMR_ESTOPPED; cb never runs then. */
static inline int rmr_timer_start(rmr_instance_t *ins, uint64_t first_ms, uint64_t period_ms,
                                  rmr_timer_cb cb, void *arg, rmr_timer_t **out)
{
    return RMR__HOST(ins)->timer_start(ins, first_ms, period_ms, cb, arg, out);
}

/* Stops and frees a timer; its callback does not run again. NULL is a no-op. */
static inline void rmr_timer_stop(rmr_timer_t *timer)
{
    if (timer != NULL)
        RMR__HOST(timer)->timer_stop(timer);
}

/* Starts a batch. schema is a label (RMR_SCHEMA_*) or NULL for schema-less records; copied.
 * Returns an owned batch to pass to rmr_emit() or rmr_batch_free(), or NULL when out of
 * memory. */
static inline rmr_batch_t *rmr_batch_new(rmr_instance_t *ins, const char *schema)
{
    return RMR__HOST(ins)->batch_new(ins, schema);
}

/* Frees a batch that was not emitted. NULL is a no-op. */
static inline void rmr_batch_free(rmr_batch_t *batch)
{
    if (batch != NULL)
        RMR__HOST(batch)->batch_free(batch);
}

/* Adds a record; the host copies every string and array it points to. Errors: RMR_EINVAL
 * (empty name, bad type, struct_size too small), RMR_ENOMEM (batch bound reached). */
static inline int rmr_metric_add(rmr_batch_t *b, const struct rmr_metric *m)
{
    return RMR__HOST(b)->batch_add(b, RMR_REC_METRIC, m);
}
static inline int rmr_log_add(rmr_batch_t *b, const struct rmr_log *l)
{
    return RMR__HOST(b)->batch_add(b, RMR_REC_LOG, l);
}
static inline int rmr_span_add(rmr_batch_t *b, const struct rmr_span *s)
{
    return RMR__HOST(b)->batch_add(b, RMR_REC_SPAN, s);
}
static inline int rmr_event_add(rmr_batch_t *b, const struct rmr_event *e)
{
    return RMR__HOST(b)->batch_add(b, RMR_REC_EVENT, e);
}
static inline int rmr_check_add(rmr_batch_t *b, const struct rmr_check *c)
{
    return RMR__HOST(b)->batch_add(b, RMR_REC_CHECK, c);
}
static inline int rmr_object_add(rmr_batch_t *b, const struct rmr_object *o)
{
    return RMR__HOST(b)->batch_add(b, RMR_REC_OBJECT, o);
}

/* Hands a batch to the pipeline. Always takes ownership, also on failure. Errors: RMR_EFULL
 * (the routed outputs' queues are full and drop nothing: push inputs answer 429/503),
 * RMR_ESTOPPED; the dropped records are counted by the host. An empty batch is freed, 0. */
static inline int rmr_emit(rmr_instance_t *ins, rmr_batch_t *batch)
{
    return RMR__HOST(ins)->emit(ins, batch);
}

/* 1 when some configured output accepts batches labelled schema, else 0. Platform inputs use
 * it to emit only the naming schemes somebody ships. */
static inline int rmr_schema_wanted(rmr_instance_t *ins, const char *schema)
{
    return RMR__HOST(ins)->schema_wanted(ins, schema);
}

/* ---- wrappers: reading batches (outputs; any thread holding the batch) ---------------------- */

static inline uint32_t rmr_batch_count(const rmr_batch_t *b)
{
    return RMR__HOST(b)->batch_count(b);
}
/* The schema label, or NULL. Borrowed from the batch. */
static inline const char *rmr_batch_schema(const rmr_batch_t *b)
{
    return RMR__HOST(b)->batch_schema(b);
}
/* The enum rmr_record_kind of record index, 0 when index is out of range. */
static inline uint32_t rmr_record_kind(const rmr_batch_t *b, uint32_t index)
{
    return RMR__HOST(b)->record_kind(b, index);
}
/* Fills a view; set view->struct_size first. Pointers in the view are borrowed from the
 * batch. Errors: RMR_ENOENT (index out of range), RMR_EINVAL (the record is another kind). */
static inline int rmr_metric_get(const rmr_batch_t *b, uint32_t i, struct rmr_metric *v)
{
    return RMR__HOST(b)->record_get(b, i, RMR_REC_METRIC, v);
}
static inline int rmr_log_get(const rmr_batch_t *b, uint32_t i, struct rmr_log *v)
{
    return RMR__HOST(b)->record_get(b, i, RMR_REC_LOG, v);
}
static inline int rmr_span_get(const rmr_batch_t *b, uint32_t i, struct rmr_span *v)
{
    return RMR__HOST(b)->record_get(b, i, RMR_REC_SPAN, v);
}
static inline int rmr_event_get(const rmr_batch_t *b, uint32_t i, struct rmr_event *v)
{
    return RMR__HOST(b)->record_get(b, i, RMR_REC_EVENT, v);
}
static inline int rmr_check_get(const rmr_batch_t *b, uint32_t i, struct rmr_check *v)
{
    return RMR__HOST(b)->record_get(b, i, RMR_REC_CHECK, v);
}
static inline int rmr_object_get(const rmr_batch_t *b, uint32_t i, struct rmr_object *v)
{
    return RMR__HOST(b)->record_get(b, i, RMR_REC_OBJECT, v);
}

/* ---- wrappers: encoding (thread pool, inside encode()) --------------------------------------- */

/* Starts a payload. spec is copied. Returns an owned payload to commit or discard, or NULL
 * when out of memory. */
static inline rmr_payload_t *rmr_payload_new(rmr_encoder_t *enc,
                                             const struct rmr_payload_spec *spec)
{
    return RMR__HOST(enc)->payload_new(enc, spec);
}
/* Appends bytes. Errors: RMR_ENOMEM. */
static inline int rmr_payload_write(rmr_payload_t *p, const void *data, size_t len)
{
    return RMR__HOST(p)->payload_write(p, data, len);
}
static inline int rmr_payload_puts(rmr_payload_t *p, const char *s)
{
    return RMR__HOST(p)->payload_write(p, s, rmr_str_c(s).len);
}
/* Appends s as a quoted JSON string, escaping per RFC 8259; invalid UTF-8 becomes U+FFFD. */
static inline int rmr_payload_json_str(rmr_payload_t *p, const char *s, size_t len)
{
    return RMR__HOST(p)->payload_json_str(p, s, len);
}
/* Bytes written so far, before compression. */
static inline size_t rmr_payload_len(const rmr_payload_t *p)
{
    return RMR__HOST(p)->payload_len(p);
}
/* Compresses the payload as its spec asked and queues it for delivery; takes ownership, also
 * on failure. nrecords is how many records it carries (for counters and acknowledgement). */
static inline int rmr_payload_commit(rmr_payload_t *p, uint32_t nrecords)
{
    return RMR__HOST(p)->payload_commit(p, nrecords);
}
/* Frees a payload without sending it. NULL is a no-op. */
static inline void rmr_payload_discard(rmr_payload_t *p)
{
    if (p != NULL)
        RMR__HOST(p)->payload_discard(p);
}
/* Counts records this output cannot ship (an unsupported kind, a NaN value): reason is a
 * short snake_case word, copied. */
static inline void rmr_encoder_drop(rmr_encoder_t *enc, uint32_t record_kind, const char *reason,
                                    uint64_t count)
{
    RMR__HOST(enc)->encoder_drop(enc, record_kind, reason, count);
}

/* ---- wrappers: self-monitoring, work, lifecycle --------------------------------------------- */

/* Adds delta to the instance's counter name (with an optional reason), created on first use.
 * name and reason are copied. Shown in /metrics, status and the dk input. */
static inline void rmr_counter_add(rmr_instance_t *ins, const char *name, const char *reason,
                                   uint64_t delta)
{
    RMR__HOST(ins)->counter_add(ins, name, reason, delta);
}

/* Calls cb synchronously for every counter of every instance. Returns 0. */
static inline int rmr_stats_foreach(rmr_instance_t *ins, rmr_stats_cb cb, void *arg)
{
    return RMR__HOST(ins)->stats_foreach(ins, cb, arg);
}

/* Fills out (set out->struct_size first) with the process's resource use. */
static inline int rmr_process_stats(rmr_instance_t *ins, struct rmr_process_stats *out)
{
    return RMR__HOST(ins)->process_stats(ins, out);
}

/* Runs fn(arg) on the thread pool, then done(ins, arg, 0) on the instance's thread (status
 * RMR_ESTOPPED when the host shut down first). Errors: RMR_ENOMEM; done never runs then. */
static inline int rmr_work(rmr_instance_t *ins, rmr_work_cb fn, rmr_work_done_cb done, void *arg)
{
    return RMR__HOST(ins)->work(ins, fn, done, arg);
}

/* The host name data is reported under: [agent] hostname (DD_HOSTNAME, ENV_HOSTNAME), else the
 * system's host name. Borrowed; valid for the process's life; never NULL. */
static inline const char *rmr_hostname(rmr_instance_t *ins)
{
    return RMR__HOST(ins)->hostname(ins);
}

/* Tells the host that a stop() which returned RMR_EINPROGRESS has finished. */
static inline void rmr_stop_done(rmr_instance_t *ins)
{
    RMR__HOST(ins)->stop_done(ins);
}

/* ---- wrappers: network services (ABI 1.1; check RMR_HOST_HAS(ins, http_route) first when a
 * plugin may run on an older host) ----------------------------------------------------------- */

/* The agent's shared HTTP listener (address NULL, [agent] http_listen / ENV_HTTP_LISTEN), or a
 * listener of the instance's own on address ("127.0.0.1:8126", "0.0.0.0:8126"); asking for the
 * shared listener's address gives the shared listener. Loop thread. Errors: RMR_EADDRINUSE,
 * RMR_EINVAL (a bad address), RMR_ENOTSUP (the agent runs without an HTTP listener). */
static inline int rmr_http_listener(rmr_instance_t *ins, const char *address, rmr_listener_t **out)
{
    return RMR__HOST(ins)->http_listener(ins, address, out);
}
/* Routes method + path on listener (NULL: the shared one) to cb, until the instance stops;
 * method NULL matches every method. Errors: RMR_EEXIST when another instance has the route. */
static inline int rmr_http_route(rmr_instance_t *ins, rmr_listener_t *listener, const char *method,
                                 const char *path, uint32_t flags, rmr_route_cb cb, void *arg)
{
    return RMR__HOST(ins)->http_route(ins, listener, method, path, flags, cb, arg);
}
/* Fills info (set info->struct_size first). */
static inline int rmr_http_req_info(rmr_http_req_t *req, struct rmr_http_req_info *info)
{
    return RMR__HOST(req)->http_req_info(req, info);
}
/* A request header's value (case-insensitive name; repeated headers joined with ", "), or
 * NULL. Borrowed until the request is answered. */
static inline const char *rmr_http_req_header(rmr_http_req_t *req, const char *name)
{
    return RMR__HOST(req)->http_req_header(req, name);
}
/* Answers req and releases it (also on failure, and when the client has gone). headers,
 * content_type and body are copied. A 429 or 503 without a Retry-After header gets one. */
static inline int rmr_http_respond(rmr_http_req_t *req, int status,
                                   const struct rmr_http_header *headers, uint32_t nheaders,
                                   const char *content_type, const void *body, size_t len)
{
    return RMR__HOST(req)->http_respond(req, status, headers, nheaders, content_type, body, len);
}
/* Sends an HTTP request through the agent's client (connection reuse, TLS verification,
 * proxy variables); cb runs once with the answer. Errors: RMR_EINVAL, RMR_ENOMEM; cb never
 * runs then. */
static inline int rmr_http_fetch(rmr_instance_t *ins, const struct rmr_fetch_spec *spec,
                                 rmr_fetch_cb cb, void *arg)
{
    return RMR__HOST(ins)->http_fetch(ins, spec, cb, arg);
}
/* Opens a datagram listener; datagrams reach cb in arrays until rmr_dgram_close() or the
 * instance stops. The host counts packets, bytes and the kernel's drops for the socket, and
 * warns when the kernel grants less receive buffer than asked. On a unixstream:// address
 * each length-prefixed message is one datagram: a length over max_datagram closes that
 * connection (counted, with a warning), a message cut short by the client closing is dropped
 * (counted), and cb runs on the loop thread even with RMR_DGRAM_OWN_THREAD. Errors:
 * RMR_EADDRINUSE, RMR_EINVAL, RMR_EACCES. */
static inline int rmr_dgram_listen(rmr_instance_t *ins, const struct rmr_dgram_spec *spec,
                                   rmr_dgram_cb cb, void *arg, rmr_dgram_sock_t **out)
{
    return RMR__HOST(ins)->dgram_listen(ins, spec, cb, arg, out);
}
/* The bound address as text ("udp://127.0.0.1:40123"), useful with port 0. */
static inline int rmr_dgram_address(rmr_dgram_sock_t *sock, char *buf, size_t len)
{
    return RMR__HOST(sock)->dgram_address(sock, buf, len);
}
/* Closes a listener; cb does not run again after it returns. NULL is a no-op. Loop thread. */
static inline void rmr_dgram_close(rmr_dgram_sock_t *sock)
{
    if (sock != NULL)
        RMR__HOST(sock)->dgram_close(sock);
}

/* ---- wrappers: tags (ABI 1.2; check RMR_HOST_HAS(ins, tagger_lookup) first when a plugin
 * may run on an older host) ---------------------------------------------------------------------
 */

/* Publishes this instance's task-wide tags (an ECS task's cluster, family, ARN ...). The host
 * adds them to every schema-less record every input emits from now on (DogStatsD metrics,
 * spans, logs), after the record's own tags and the configured global tags, which win on a
 * shared key. Labelled (schema) batches are left alone: platform inputs name their own tags.
 * A call replaces the instance's previous set; ntags 0 withdraws it. Copied. Loop thread.
 * Errors: RMR_EINVAL (a tag without key), RMR_ENOMEM. */
static inline int rmr_global_tags_set(rmr_instance_t *ins, const struct rmr_tag *tags,
                                      uint32_t ntags)
{
    return RMR__HOST(ins)->global_tags_set(ins, tags, ntags);
}
/* Sets the tags of an entity (a container id as the platform reports it) in the tagger,
 * replacing what any instance set before; ntags 0 forgets the entity. Copied. Any thread.
 * Errors: RMR_EINVAL (empty entity, a tag without key), RMR_ENOMEM. */
static inline int rmr_tagger_set(rmr_instance_t *ins, const char *entity, size_t entity_len,
                                 const struct rmr_tag *tags, uint32_t ntags)
{
    return RMR__HOST(ins)->tagger_set(ins, entity, entity_len, tags, ntags);
}
/* Calls cb with the entity's tags and returns 0, or returns RMR_ENOENT (cb not called) when
 * the tagger does not know the entity (exact match). Any thread; cb must not call the tagger. */
static inline int rmr_tagger_lookup(rmr_instance_t *ins, const char *entity, size_t entity_len,
                                    rmr_tagger_cb cb, void *arg)
{
    return RMR__HOST(ins)->tagger_lookup(ins, entity, entity_len, cb, arg);
}

/* ---- wrappers: outputs (ABI 1.3; check RMR_HOST_HAS(ins, output_halt) first when a plugin
 * may run on an older host) ---------------------------------------------------------------------
 */

/* Halts this output's delivery as a RMR_VERDICT_HALT answer does: nothing is sent, queued and
 * new payloads are kept (within the queue's bound), and the queue's head is sent again every
 * halt_probe; the first accepted probe resumes delivery. For an output that learns its
 * credentials are refused before it sends anything (a key validation at start). reason is
 * shown in logs and status: never a secret. Loop thread. Errors: RMR_EINVAL (an input). */
static inline int rmr_output_halt(rmr_instance_t *ins, const char *reason)
{
    return RMR__HOST(ins)->output_halt(ins, reason);
}

/* ---- wrappers: self-monitoring gauges (ABI 1.4; check RMR_HOST_HAS(ins, gauge_set) first
 * when a plugin may run on an older host) -------------------------------------------------------
 */

/* Sets the instance's gauge name{reason} (reason may be NULL) to value: a level, not a count
 * (live contexts, open connections), shown without _total on /metrics. A name is a counter or
 * a gauge, never both. name and reason are copied. Loop thread, as rmr_counter_add. */
static inline void rmr_gauge_set(rmr_instance_t *ins, const char *name, const char *reason,
                                 uint64_t value)
{
    RMR__HOST(ins)->gauge_set(ins, name, reason, value);
}

#ifdef __cplusplus
}
#endif
#endif
