/* core/net/client: the agent's HTTP client: one libcurl multi handle driven by the libuv loop
 * (socket callbacks watched with uv_poll, curl's timer on a uv_timer), so connections are
 * reused across requests, TLS is verified (CA file configurable), proxy variables
 * (http_proxy, https_proxy, no_proxy and their upper-case forms) are honoured by curl, and
 * connect and total timeouts apply. The courier and polling inputs share it.
 * Thread: the loop thread, all of it. */
#ifndef REMORA_CORE_NET_HTTPC_H
#define REMORA_CORE_NET_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct httpc_opts {
    const char *ca_file;          /* NULL: the system's CA bundle */
    int insecure;                 /* 1: do not verify TLS peers (tests against self-signed) */
    const char *user_agent;       /* "remora/0.1.0" */
    uint64_t connect_timeout_ms;  /* default for requests that give 0 (10 s) */
    uint32_t max_connections;     /* total, 0: libcurl's default */
    uint32_t reserved_;
};

struct httpc_request {
    const char *method;               /* NULL: GET, or POST when body != NULL */
    const char *url;
    const char *const *headers;       /* "Name: value" strings, NULL-ended; may be NULL */
    const void *body;                 /* borrowed until done runs */
    size_t body_len;
    uint64_t timeout_ms;              /* whole transfer; 0: 30 s */
    uint64_t connect_timeout_ms;      /* 0: the client's default */
    size_t max_response_bytes;        /* longer bodies fail with RMR_E2BIG; 0: 16 MiB */
};

struct httpc_response {
    int status;             /* HTTP status, 0 when the request failed below HTTP */
    int error;              /* 0, or RMR_ETIMEDOUT, RMR_ECONNREFUSED, RMR_ECONNRESET, RMR_E2BIG,
                               RMR_EIO (other network or TLS errors) */
    const char *error_text; /* curl's sentence for error, else NULL */
    int64_t retry_after_ms; /* Retry-After (seconds or an HTTP date), -1 when absent */
    const char *content_type; /* NULL when absent */
    const char *body;       /* NUL-ended, body_len bytes */
    size_t body_len;
    uint64_t duration_us;   /* request start to completion */
};

struct httpc;
struct httpc_xfer;

/* done runs on the loop thread exactly once per request not cancelled; resp is valid during
 * the call only. */
typedef void (*httpc_done)(void *arg, const struct httpc_response *resp);

int httpc_new(uv_loop_t *loop, const struct httpc_opts *opts, struct httpc **out);
/* Starts a request. headers and url are copied; body is borrowed. *xfer (optional) allows
 * cancelling. Errors: RMR_EINVAL (no URL, unsupported scheme), RMR_ENOMEM. */
int httpc_send(struct httpc *c, const struct httpc_request *req, httpc_done done, void *arg,
               struct httpc_xfer **xfer);
/* Cancels a request; done does not run. */
void httpc_cancel(struct httpc_xfer *x);
/* Requests in flight. */
uint32_t httpc_active(const struct httpc *c);
/* Cancels everything (no callbacks) and frees the client once libuv has closed its handles. */
void httpc_free(struct httpc *c);

/* Parses a Retry-After value: delta-seconds or an IMF-fixdate, relative to now_unix_s.
 * Returns milliseconds (0 for a date in the past), or -1 when unparsable. */
int64_t httpc_retry_after_ms(const char *value, int64_t now_unix_s);

#endif
