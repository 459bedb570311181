/* core/net/client: the agent's HTTP client: one libcurl multi handle driven by the libuv loop
 * (socket callbacks watched with uv_poll, curl's timer on a uv_timer), so connections are
 * reused across requests, TLS is verified (CA file configurable), proxy variables are honoured
 * by curl, and connect and total timeouts apply. The courier and polling inputs share it.
 *
 * Proxies: curl reads the environment when it opens a connection: http_proxy (lower case
 * only: curl ignores HTTP_PROXY on purpose, because CGI servers put a request's "Proxy:"
 * header there), https_proxy or HTTPS_PROXY, all_proxy or ALL_PROXY, and no_proxy or
 * NO_PROXY. Only http and https are spoken; redirects are not followed; no Accept-Encoding is
 * sent, so bodies arrive as the server sent them. https may negotiate HTTP/2.
 * Thread: the loop thread, all of it. */
#ifndef REMORA_CORE_NET_HTTPC_H
#define REMORA_CORE_NET_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct httpc_opts {
    const char *ca_file;         /* NULL: the system's CA bundle; copied */
    int insecure;                /* 1: do not verify TLS peers (tests against self-signed) */
    const char *user_agent;      /* NULL: "remora/<version>"; copied */
    uint64_t connect_timeout_ms; /* default for requests that give 0 (10 s) */
    uint32_t max_connections;    /* total, 0: libcurl's default */
    uint32_t reserved_;
};

struct httpc_request {
    const char *method;         /* NULL: GET, or POST when body != NULL; an HTTP token */
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* "Name: value" strings, NULL-ended; may be NULL; no CR
                                   or LF. "Expect:" is added unless one is given, so a
                                   body goes at once without waiting for 100 Continue */
    const void *body;           /* borrowed until done runs */
    size_t body_len;
    uint64_t timeout_ms;         /* whole transfer; 0: 30 s */
    uint64_t connect_timeout_ms; /* 0: the client's default */
    size_t max_response_bytes;   /* longer bodies fail with RMR_E2BIG; 0: 16 MiB */
};

/* Of the final response: headers of interim (1xx) responses and trailers are not reported.
 * When error is neither 0 nor RMR_E2BIG, status is 0, content_type NULL and retry_after_ms -1
 * even if some of the response had arrived. */
struct httpc_response {
    int status;               /* HTTP status, 0 when the request failed below HTTP; kept with
                                 RMR_E2BIG, where the status and headers arrived whole */
    int error;                /* 0, or RMR_ETIMEDOUT, RMR_ECONNREFUSED, RMR_ECONNRESET, RMR_E2BIG,
                                 RMR_EIO (other network or TLS errors) */
    const char *error_text;   /* curl's sentence for error, else NULL */
    int64_t retry_after_ms;   /* Retry-After (seconds or an HTTP date), -1 when absent */
    const char *content_type; /* NULL when absent */
    const char *body;         /* NUL-ended, body_len bytes; never NULL ("" when empty). With
                                 RMR_E2BIG, the first max_response_bytes bytes */
    size_t body_len;
    uint64_t duration_us; /* request start to completion */
};

struct httpc;
struct httpc_xfer;

/* done runs on the loop thread exactly once per request not cancelled; resp is valid during
 * the call only. */
typedef void (*httpc_done)(void *arg, const struct httpc_response *resp);

/* Creates a client on loop; opts may be NULL (all defaults). The first call in the process
 * initialises libcurl (once, thread-safe). Returns owned *out. Errors: RMR_EINVAL, RMR_ENOMEM,
 * RMR_EIO (libcurl would not initialise). */
int httpc_new(uv_loop_t *loop, const struct httpc_opts *opts, struct httpc **out);
/* Why libcurl could not be loaded (curl_api.h), or NULL when it was, or was not tried yet. */
const char *httpc_load_error(void);
/* Starts a request. headers and url are copied; body is borrowed. *xfer (optional) allows
 * cancelling; it is valid until done runs or the request is cancelled. done never runs
 * inside httpc_send, only later from the loop. Errors (done is then not called):
 * RMR_EINVAL (no URL, an unparsable URL, a scheme other than http and https, a method that is
 * not a token, a header with CR or LF or without a colon, body_len without a body),
 * RMR_ENOMEM, RMR_ESTOPPED (called from a done callback after httpc_free). */
int httpc_send(struct httpc *c, const struct httpc_request *req, httpc_done done, void *arg,
               struct httpc_xfer **xfer);
/* Cancels a request; done does not run, and the body is no longer borrowed. Safe from any
 * done callback, including for another request; cancelling the request whose done is
 * running does nothing. x NULL: nothing. */
void httpc_cancel(struct httpc_xfer *x);
/* Requests in flight (started, not yet done or cancelled). */
uint32_t httpc_active(const struct httpc *c);
/* Cancels everything (no callbacks) and frees the client once libuv has closed its handles,
 * so the loop must run again. Every httpc_xfer of c is invalid afterwards: cancel yours
 * first, or forget them. Safe from a done callback: the client goes when it returns.
 * c NULL: nothing. */
void httpc_free(struct httpc *c);
/* Releases libcurl's process-wide state at exit, after every client was freed, so leak
 * checkers see nothing; no client may be created afterwards. Thread: the main thread. */
void httpc_global_cleanup(void);

/* Frees a NULL-ended array of malloc'd "Name: value" strings and the array (the form
 * httpc_request.headers takes, as its callers build it). NULL is a no-op. */
void httpc_headers_free(char **headers);

/* Parses a Retry-After value: delta-seconds or an IMF-fixdate ("Wed, 21 Oct 2015 07:28:00
 * GMT", case-sensitive as RFC 9110 writes it; the obsolete RFC 850 and asctime forms are
 * refused), relative to now_unix_s. Surrounding spaces and tabs are ignored. Returns
 * milliseconds (0 for a date in the past), at most 2^31 s (RFC 9111's cap for a delta too
 * large to represent), or -1 when value is NULL or unparsable. Thread: any. */
int64_t httpc_retry_after_ms(const char *value, int64_t now_unix_s);

#endif
