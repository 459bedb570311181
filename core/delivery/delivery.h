/* core/delivery: the courier. Per output, a queue of encoded (compressed) payloads bounded in
 * bytes, and the transports that deliver them: HTTP(S) through the agent's client, with an
 * in-flight limit, retries with exponential backoff and full jitter that honour Retry-After,
 * the output's classify() (or the default table), 413 splits, and a halted state for 401/403
 * that keeps the data and probes slowly; and local files / standard output through uv_fs.
 * Secrets are substituted into endpoints and headers when a request is sent, never stored.
 * Thread: the loop thread. */
#ifndef REMORA_CORE_DELIVERY_H
#define REMORA_CORE_DELIVERY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <remora/plugin.h>

struct rmr_instance;
struct httpc;
struct instance_common;

/* An encoded payload ready for delivery. Owned by whoever holds it; payload_free releases.
 * endpoint and headers may hold "{secret:NAME}" placeholders. */
struct payload {
    struct payload *next;
    char *endpoint;
    char *content_type; /* NULL when none */
    char *headers;      /* "Name: value\r\n" lines, or NULL */
    uint32_t compression;
    uint32_t record_kind;
    uint32_t nrecords;
    uint32_t flags; /* RMR_PAYLOAD_* */
    unsigned char *body;
    size_t len;
    uint32_t attempts;
    uint32_t nlines; /* RMR_PAYLOAD_LINES: lines in the body, for "{lines}" in headers */
};

void payload_free(struct payload *p);

enum delivery_state {
    DELIVERY_OK = 0,       /* the last attempt succeeded, or none failed yet */
    DELIVERY_RETRYING = 1, /* the last attempt failed with a transient error; backing off */
    DELIVERY_HALTED = 2,   /* 401/403: the data is kept; probing every halt_probe */
};
const char *delivery_state_name(uint32_t state);

/* Request latency buckets (seconds), for the /metrics histogram. */
#define DELIVERY_LAT_BUCKETS 12
extern const double delivery_lat_bounds[DELIVERY_LAT_BUCKETS]; /* the last is +Inf */

struct send_ctx;

struct delivery {
    uv_loop_t *loop;
    struct rmr_instance *ins; /* counters, logs, classify and secrets */
    struct payload *head;     /* queued, oldest first */
    struct payload *tail;
    size_t bytes;    /* queued + in flight */
    uint32_t count;  /* queued + in flight */
    uint32_t queued; /* payloads waiting in the queue */
    size_t limit_bytes;

    /* HTTP */
    struct send_ctx *sending; /* requests in flight */
    uint32_t in_flight;
    uint32_t max_in_flight;
    uint32_t state;         /* enum delivery_state */
    uint32_t attempt;       /* consecutive failures */
    uint64_t not_before_ms; /* uv_now() before which nothing is sent (backoff, halt probe) */
    uint64_t request_timeout_ms;
    uint64_t retry_initial_ms;
    uint64_t retry_max_ms;
    uint64_t halt_probe_ms;
    uv_timer_t retry_timer;
    int timer_ready;
    int closing;
    uint64_t rng;           /* xorshift state for jitter */
    char last_error[256];   /* the last failure, as status and reason; never a secret */
    int64_t last_error_ns;  /* wall clock of last_error, 0 when none */
    int64_t state_since_ns; /* wall clock of the last state change */
    int64_t last_ok_ns;     /* wall clock of the last delivery, 0 when none */
    uint64_t last_reject_log_ms;
    uint64_t rejects_unlogged;
    uint64_t lat_counts[DELIVERY_LAT_BUCKETS];
    double lat_sum_s;
    uint64_t lat_count;

    /* file transport: one write at a time */
    int busy;
    char *file_path;
    uv_file fd;
    int fd_owned;
    size_t written; /* bytes of head already written */
    uv_fs_t req;
    uv_buf_t buf;
};

/* Sets d up for ins with the courier settings of common (queue_bytes, max_in_flight,
 * request_timeout, retry_initial, retry_max, halt_probe). HTTP goes through the agent's client
 * (host_http_client()), made when the first request is sent. */
void delivery_init(struct delivery *d, uv_loop_t *loop, struct rmr_instance *ins,
                   const struct instance_common *common);
/* Queues p (takes ownership, also on failure). Errors: RMR_EFULL when the queue's byte bound
 * would be exceeded and drop_oldest is 0 (p is freed; the caller counts its records). With
 * drop_oldest, the oldest queued payloads are dropped (counted "queue_full") to make room. */
int delivery_push(struct delivery *d, struct payload *p, int drop_oldest);
/* Drops queued payloads, oldest first, until need more bytes fit under the bound. Returns the
 * bytes freed. In-flight payloads are never dropped. */
size_t delivery_make_room(struct delivery *d, size_t need);
/* 1 when nothing is queued or in flight, or when the output is halted (draining cannot help). */
int delivery_idle(const struct delivery *d);
/* Records queued and in flight. */
uint64_t delivery_records(const struct delivery *d);
/* Cancels requests in flight, frees queued payloads (counted as dropped "shutdown"), stops
 * the retry timer and closes files. The owner then closes retry_timer (when timer_ready) with
 * uv_close() before freeing d. Called at exit only. */
void delivery_release(struct delivery *d);
/* Halts delivery as a RMR_VERDICT_HALT answer does (rmr_output_halt): reason becomes the last
 * error; the head is probed again after halt_probe, and an accepted probe resumes. */
void delivery_halt(struct delivery *d, const char *reason);

/* The default classification of a response (exposed for tests and the SDK docs). */
int delivery_default_verdict(const struct rmr_response *resp);
/* Expands "{secret:NAME}" in tmpl with the instance's secret option NAME; url_encode
 * percent-encodes the value. "{secret:NAME#I}" takes the I-th non-empty comma-separated item
 * of the value instead (trimmed, from 0), and "{secret:NAME#I?}" that item's query string
 * (after its first '?'), inserted as it is since it is already URL-encoded (a space, '#' or
 * control byte in it is refused). Returns a malloc'd string, or NULL with why set (an unknown or
 * non-secret option, a value with CR/LF in a header, no memory). */
char *delivery_expand(const struct rmr_instance *ins, const char *tmpl, int url_encode,
                      const char **why);
/* Splits a "lines" payload's body in two at a line boundary near the middle, recompressing
 * both halves. Returns 0 and sets *a and *b (p is left untouched), or an error. */
int delivery_split(const struct payload *p, struct payload **a, struct payload **b);

#endif
