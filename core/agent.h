/* core/agent: the agent process's state: the loop, the configuration, the loaded plugins and
 * the running instances. Everything here is owned by the loop thread unless a member says
 * otherwise. */
#ifndef REMORA_CORE_AGENT_H
#define REMORA_CORE_AGENT_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include <remora/plugin.h>

#include "config/config.h"
#include "delivery/delivery.h"
#include "loader.h"
#include "tagger/tagger.h"

struct agent;

/* A self-monitoring counter or gauge of one instance. */
struct counter {
    char *name;
    char *reason;      /* NULL or a drop reason */
    char *record_kind; /* NULL or "metric", ... */
    uint64_t value;
    uint32_t gauge;
    uint32_t reserved_;
};

struct counters {
    struct counter *items;
    uint32_t count;
    uint32_t cap;
};

enum instance_phase {
    PHASE_NEW = 0,
    PHASE_CREATED = 1,
    PHASE_STARTED = 2,
    PHASE_STOPPING = 3, /* stop() returned RMR_EINPROGRESS */
    PHASE_STOPPED = 4,
};

/* A batch waiting for an output's encoder, with what it counts toward the output's bounds. */
struct pending_batch {
    struct rmr_batch *b;
    uint64_t records; /* of kinds the output accepts */
    size_t bytes;
    uint64_t arrived_ms; /* uv_now() */
};

/* An output's pipeline state: batches waiting to be encoded, and its delivery queue. */
struct output {
    struct pending_batch *pending;
    uint32_t npending;
    uint32_t cap;
    uint64_t pending_records;
    size_t pending_bytes;
    size_t encoding_bytes; /* of the batches the encode job in flight holds */
    uint64_t oldest_ms;    /* uv_now() when the oldest pending batch arrived */
    uv_timer_t flush_timer;
    int encoding; /* one encode job in flight at most, so encode() never runs concurrently */
    uint32_t open_handles; /* while closing: handles whose close callbacks have not run */
    int blocked;           /* when_full = block refused records; inputs' sockets are paused */
    struct delivery delivery;
};

struct route_ctx;
struct fetch_ctx;
struct rmr_dgram_sock;
struct listener;

struct rmr_instance {
    struct rmr_handle h; /* first: the SDK reaches the host table through it */
    struct agent *agent;
    const struct cfg_instance *ci;
    const struct rmr_plugin *desc;
    void *state;
    uint32_t kind;
    uint32_t phase; /* enum instance_phase */
    struct rmr_timer *timers;
    struct counters counters;
    struct rmr_tag *tags; /* instance tags, then global tags whose key they lack */
    uint32_t ntags;
    uint32_t pending_work;
    struct output *out; /* outputs only */
    /* Network services the instance holds (core/host_net.c); released when it stops. */
    struct route_ctx *routes;
    struct fetch_ctx *fetches;
    struct rmr_dgram_sock *dgrams;
    struct tagset published; /* task-wide tags this instance published (ABI 1.2) */
};

/* An HTTP listener: the shared one (owner NULL) or one an instance opened. */
struct listener {
    struct listener *next;
    struct httpd *srv;
    struct rmr_instance *owner;
};

enum agent_phase {
    AGENT_RUNNING = 0,
    AGENT_STOPPING_INPUTS = 1,
    AGENT_DRAINING = 2,
    AGENT_DONE = 3,
};

struct agent {
    uv_loop_t loop;
    struct config cfg;
    struct registry reg;
    struct rmr_instance *instances; /* cfg.instances order: inputs, then outputs */
    uint32_t ninstances;
    uint32_t phase;
    uint32_t signals;
    int exit_code;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_timer_t grace_timer;
    uv_check_t drain_check;
    int64_t start_wall_ns;
    uint64_t start_mono_ns;
    uint64_t deadline_ms;        /* uv_now() when the shutdown grace ends */
    char hostname[256];          /* [agent] hostname, else gethostname() */
    struct rmr_tag *global_tags; /* agent tags, ENV_GLOBAL_*, DD_TAGS, DD_ENV ... */
    uint32_t nglobal_tags;
    uint32_t reserved_;
    struct httpc *http;         /* the HTTP client (host_http_client()), NULL until used */
    struct listener *listeners; /* HTTP listeners; the shared one first when configured */
    struct httpd *shared;       /* the shared listener ([agent] http_listen), or NULL */
    uv_timer_t lag_timer;       /* measures event-loop lag */
    uint64_t lag_expected_ms;
    uint64_t lag_last_ms; /* the last lag measured */
    uint64_t lag_max_ms;  /* the largest since start */
    uint64_t lag_sum_ms;
    uint64_t lag_samples;
    uv_thread_t loop_thread; /* the thread that runs the loop */
    /* Batches emitted by reader threads, handed to the loop (host_net.c). */
    pthread_mutex_t foreign_lock;
    struct foreign *foreign_q;
    uint32_t foreign_n;
    int foreign_open;
    uint64_t foreign_dropped;
    uv_async_t foreign_async;
    uint32_t blocked_outputs; /* outputs refusing records (when_full = block) */
    uint32_t reserved2_;
    /* ABI 1.2: the tagger, and the union of the task-wide tags instances published, added to
     * schema-less batches at emit. */
    struct tagger *tagger;
    struct tagset published_tags;
};

#define FOREIGN_MAX 4096
struct foreign {
    struct rmr_instance *ins;
    struct rmr_batch *b;
};

struct httpd;
struct httpc;

/* The host table of the real agent. */
extern const struct rmr_host_api host_api;

/* Counters (loop thread). counter_get creates the counter on first use; NULL on ENOMEM. */
struct counter *counter_get(struct counters *c, const char *name, const char *reason,
                            const char *record_kind);
void counter_add(struct rmr_instance *ins, const char *name, const char *reason,
                 const char *record_kind, uint64_t delta);
void counters_release(struct counters *c);

/* Reports every counter and gauge of ins: its own counters, queue gauges (outputs) and
 * datagram listener counters (reason = the listener's address). Loop thread (host.c). */
void instance_stats(struct rmr_instance *ins, rmr_stats_cb cb, void *arg);

/* Stops the timers an instance left running (host.c). */
void host_instance_release(struct rmr_instance *ins);
void host_instance_quiesce(struct rmr_instance *ins);

/* Process resource use (host.c). */
int process_stats_read(const struct agent *a, struct rmr_process_stats *out);

/* Pipeline (pipeline.c). */
int pipeline_output_init(struct agent *a, struct rmr_instance *ins);
void pipeline_output_close(struct rmr_instance *ins);
/* Takes ownership of b, also on failure. */
int pipeline_emit(struct rmr_instance *ins, struct rmr_batch *b);
/* Encodes every pending batch now (shutdown). */
void pipeline_flush_all(struct agent *a);
/* 1 when no batch is pending, no encode runs and every delivery queue is empty. */
int pipeline_idle(const struct agent *a);
int pipeline_schema_wanted(const struct agent *a, const char *schema);
/* What an output holds against queue_bytes: pending batches, batches being encoded and the
 * delivery queue. */
size_t pipeline_queued_bytes(const struct output *o);

/* The encoder side of the host table (pipeline.c; the rest is core/util/payload.c); thread
 * pool. */
rmr_payload_t *pipeline_payload_new(rmr_encoder_t *enc, const struct rmr_payload_spec *spec);
int pipeline_payload_commit(rmr_payload_t *p, uint32_t nrecords);
void pipeline_encoder_drop(rmr_encoder_t *enc, uint32_t record_kind, const char *reason,
                           uint64_t count);

/* Called by the courier when an output's queue shrank: an output that blocked inputs lets
 * them go once it is below half its bound (pipeline.c). */
void pipeline_output_drained(struct rmr_instance *ins);

/* Network services (host_net.c): the host-table members of ABI 1.1, the shared listener and
 * the release of what an instance holds. */
int host_net_start(struct agent *a);
/* The agent's HTTP client, created on first use; NULL when it cannot be (logged). */
struct httpc *host_http_client(struct agent *a);
/* Pauses (on = 1) or resumes the datagram sockets of every input: back-pressure from an
 * output with when_full = block; the kernel buffers, then drops (counted). It never waits for
 * a reader thread (dgram_pause_nowait()): it runs inside an emit, which an input may make
 * while holding the lock its reader callback waits for. */
void host_net_pause_inputs(struct agent *a, int on);
void host_net_release_instance(struct rmr_instance *ins);
void host_net_stop(struct agent *a);

struct dgram_stats;
int host_foreign_init(struct agent *a);
void host_foreign_close(struct agent *a);
/* Emit from a thread other than the loop's: queued for the loop. Takes ownership of b. */
int host_emit_foreign(struct rmr_instance *ins, struct rmr_batch *b);
/* Calls fn for each datagram listener of ins with its counters. */
void host_net_dgram_stats(struct rmr_instance *ins,
                          void (*fn)(void *arg, struct rmr_instance *ins, const char *address,
                                     const struct dgram_stats *st),
                          void *arg);
/* The ABI 1.1 host-table members. */
int host_http_listener(rmr_instance_t *ins, const char *address, rmr_listener_t **out);
int host_http_route(rmr_instance_t *ins, rmr_listener_t *listener, const char *method,
                    const char *path, uint32_t flags, rmr_route_cb cb, void *arg);
int host_http_req_info(rmr_http_req_t *req, struct rmr_http_req_info *out);
const char *host_http_req_header(rmr_http_req_t *req, const char *name);
int host_http_respond(rmr_http_req_t *req, int status, const struct rmr_http_header *headers,
                      uint32_t nheaders, const char *content_type, const void *body, size_t len);
int host_http_fetch(rmr_instance_t *ins, const struct rmr_fetch_spec *spec, rmr_fetch_cb cb,
                    void *arg);
int host_dgram_listen(rmr_instance_t *ins, const struct rmr_dgram_spec *spec, rmr_dgram_cb cb,
                      void *arg, rmr_dgram_sock_t **out);
int host_dgram_address(rmr_dgram_sock_t *s, char *buf, size_t len);
void host_dgram_close(rmr_dgram_sock_t *s);

/* Self-monitoring routes (self/status.c): /v1/ping, /v1/status and /metrics on srv. */
int status_routes(struct agent *a, struct httpd *srv);

/* Lifecycle (agent.c). */
void agent_instance_stopped(struct rmr_instance *ins);

#endif
