/* remora SDK testing: a fake host for plugin unit tests.
 *
 * It implements the host table without libuv or threads: timers fire only when the test
 * advances the fake clock, emitted batches are kept for inspection, encode() runs inline and
 * its payloads are kept, rmr_work() runs the function and its done callback inline. The network
 * services of ABI 1.1 work without sockets: the test sends HTTP requests and datagrams and
 * serves fetches (see "network services" below). Link with libremora-testing.a.
 * Single-threaded; one fake host per test is typical.
 */
#ifndef REMORA_FAKEHOST_H
#define REMORA_FAKEHOST_H

#include <stddef.h>
#include <stdint.h>

#include <remora/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rmr_fakehost;

/* Starts with wall clock 2026-01-01T00:00:00Z and monotonic clock 1 s. Returns owned, or NULL. */
struct rmr_fakehost *rmr_fakehost_new(void);
/* Destroys every instance still alive, then frees. NULL is a no-op. */
void rmr_fakehost_free(struct rmr_fakehost *fh);

/* Creates an instance of desc from config text in INI key = value lines (the body of its
 * section; '#' and ';' comments). Checks the descriptor like the loader does, fills the config
 * struct from the schema (defaults, types, required keys), and calls create().
 * On error returns RMR_EABI / RMR_ECONFIG / the plugin's error, with a message in err. */
int rmr_fakehost_create(struct rmr_fakehost *fh, const struct rmr_plugin *desc,
                        const char *config_text, rmr_instance_t **out, char *err, size_t errlen);
int rmr_fakehost_start(struct rmr_fakehost *fh, rmr_instance_t *ins);
/* Calls stop(); returns its result (RMR_EINPROGRESS until rmr_stop_done() was called). */
int rmr_fakehost_stop(struct rmr_fakehost *fh, rmr_instance_t *ins);
int rmr_fakehost_stop_finished(struct rmr_fakehost *fh, rmr_instance_t *ins);
/* Calls destroy() and forgets the instance. */
void rmr_fakehost_destroy(struct rmr_fakehost *fh, rmr_instance_t *ins);

/* Moves both clocks forward by ms, firing due timers in time order. Fetch answers are
 * delivered at the start and after each timer callback, and fetch timeouts at their deadline
 * (see "network services" below), so advancing by 0 ms delivers what is ready now. */
void rmr_fakehost_advance(struct rmr_fakehost *fh, uint64_t ms);
void rmr_fakehost_set_wall_ns(struct rmr_fakehost *fh, int64_t wall_ns);
/* What rmr_hostname() answers (copied); "fakehost" by default. */
void rmr_fakehost_set_hostname(struct rmr_fakehost *fh, const char *hostname);

/* Schemas that rmr_schema_wanted() reports as wanted (NULL-terminated; copied). */
void rmr_fakehost_want_schemas(struct rmr_fakehost *fh, const char *const *schemas);
/* Makes the next emits fail with RMR_EFULL (1) or succeed again (0). */
void rmr_fakehost_set_full(struct rmr_fakehost *fh, int full);

/* Batches emitted so far, oldest first; borrowed until clear or free. As in the agent, records
 * emitted with time_ns 0 carry the fake wall clock of the emit. */
uint32_t rmr_fakehost_emitted_count(const struct rmr_fakehost *fh);
const rmr_batch_t *rmr_fakehost_emitted(const struct rmr_fakehost *fh, uint32_t index);
void rmr_fakehost_clear_emitted(struct rmr_fakehost *fh);

/* A fresh batch for feeding an output's encode(); owned by the caller (rmr_batch_free). */
rmr_batch_t *rmr_fakehost_batch_new(struct rmr_fakehost *fh, const char *schema);
/* Runs the output instance's encode() on the batches; payloads are kept (compressed as asked). */
int rmr_fakehost_encode(struct rmr_fakehost *fh, rmr_instance_t *ins,
                        const rmr_batch_t *const *batches, uint32_t nbatches);

struct rmr_fakehost_payload {
    struct rmr_payload_spec spec; /* endpoint and content_type point into the fake host */
    const unsigned char *body;    /* as committed (compressed when the spec asked) */
    size_t len;
    uint32_t nrecords;
};
uint32_t rmr_fakehost_payload_count(const struct rmr_fakehost *fh);
const struct rmr_fakehost_payload *rmr_fakehost_payload(const struct rmr_fakehost *fh,
                                                        uint32_t index);
void rmr_fakehost_clear_payloads(struct rmr_fakehost *fh);

/* A counter of an instance (rmr_counter_add, encoder drops as "records_dropped"), or a gauge's
 * value (rmr_gauge_set, ABI 1.4); reason may be NULL. 0 when never counted or set. */
uint64_t rmr_fakehost_counter(const struct rmr_fakehost *fh, rmr_instance_t *ins, const char *name,
                              const char *reason);
/* Registers a stat that rmr_stats_foreach() reports (copied; the same instance, name, reason
 * and record kind again replaces the value), for self-monitoring inputs. The fake host reports
 * only registered stats, not the instances' own counters. */
void rmr_fakehost_add_stat(struct rmr_fakehost *fh, const struct rmr_stat *stat);
/* Sets what rmr_process_stats() reports (copied). */
void rmr_fakehost_set_process_stats(struct rmr_fakehost *fh, const struct rmr_process_stats *ps);

/* Log lines so far, formatted "LEVEL message"; borrowed. */
uint32_t rmr_fakehost_log_count(const struct rmr_fakehost *fh);
const char *rmr_fakehost_log(const struct rmr_fakehost *fh, uint32_t index);

/* ---- network services (ABI 1.1) ---------------------------------------------------------------
 *
 * The host table's network members work without sockets. The test plays the other side:
 * it sends HTTP requests to the routes plugins registered, serves the answers to their
 * outbound fetches, and sends datagrams to their listeners. Everything runs on the test's
 * thread, at points the test chooses:
 *  - rmr_fakehost_http_request() and rmr_fakehost_dgram_send() call the plugin's callback
 *    before they return (also for listeners opened with RMR_DGRAM_OWN_THREAD);
 *  - a fetch's callback never runs inside rmr_http_fetch(), as in the agent: it runs inside
 *    the next rmr_fakehost_advance() (advancing by 0 ms is enough), at the start of the call
 *    and again after each timer callback, at the fake time of that moment. Fetches that
 *    callbacks make meanwhile (a chain: task metadata, then stats) are answered at the same
 *    moment; a fetch without an answer yet waits, and times out at its deadline.
 *
 * As in the agent, when an instance's stop finishes (stop() returned 0, or it called
 * rmr_stop_done() while stopping), and at the latest just before destroy(), the fake host
 * releases what the instance holds: its routes go (requests to them get 404), unanswered
 * fetches get their callback with RMR_ECANCELED, its datagram listeners and its own HTTP
 * listeners close. Afterwards rmr_http_route(), rmr_http_fetch() and rmr_dgram_listen()
 * return RMR_ESTOPPED (stricter than the agent, so that no callback can outlive destroy()).
 * Requests reaching an instance that was not started, or whose stop() was called, get 503
 * {"error":"the input is stopping"}, as from the agent. Each routed request counts
 * "http_requests" and each answered fetch "http_fetches" (reason: the status, or "error"),
 * like the agent's counters; rmr_fakehost_counter() reads them.
 *
 * The fake host does not log on the agent's behalf ("listening for HTTP on ..."), so a
 * plugin's own last log line stays the last one. */

/* The shared listener's address ("127.0.0.1:9529" by default, as [agent] http_listen), in
 * any form the agent accepts ("9529", ":9529", "localhost:9529", "[::1]:9529"). NULL or "off":
 * no shared listener, so rmr_http_listener(ins, NULL, ...) and routes on it give
 * RMR_ENOTSUP, as in an agent with http_listen = off. Copied. Errors: RMR_EINVAL. */
int rmr_fakehost_set_http_listen(struct rmr_fakehost *fh, const char *address);

/* An answer to a request of rmr_fakehost_http_request(), as a client would read it. Owned by
 * the fake host: valid until rmr_fakehost_http_answer_free() or rmr_fakehost_free(). While the
 * plugin holds the request, status is 0; the fake host fills the answer in place when the
 * plugin answers (typically from a timer: poll status after rmr_fakehost_advance()). */
struct rmr_fakehost_http_answer {
    int status; /* 0 until answered; 200..599 after (other values the plugin gave become 500) */
    uint32_t nheaders;
    /* As the plugin gave them, less those the agent's server drops (invalid names or values;
     * Content-Length, Connection and Transfer-Encoding; Content-Type when content_type is
     * given), then "Allow" on the server's 405, then "Retry-After: 1" for a 429 or 503 that
     * had none. Copies. */
    const struct rmr_http_header *headers;
    const char *content_type; /* NULL when none, and for 204 and 304 */
    const char *body;         /* copy, NUL-ended (the NUL not counted); "" for 204, 304, HEAD */
    size_t len;
};

/* Sends a request to the listener at address (NULL: the shared one; else as given to
 * rmr_http_listener(), in any accepted form) and calls the matching route's callback before
 * returning. Routing is the agent's: the most specific route wins, a path nobody routes gets
 * 404 {"error":"not found"}, a routed path with another method 405 with Allow.
 * path_and_query: "/v1/echo?x=1" (rmr_http_req_info() splits it). headers: names are tokens,
 * values without CR or LF; looked up case-insensitively, repeated ones joined with ", ".
 * body: what the plugin gets as the decoded body (copied, NUL-ended). The agent undoes
 * Content-Encoding before a handler runs, so pass the body decoded: a Content-Encoding header
 * given here is visible to rmr_http_req_header() but not applied. The request's remote
 * address is "127.0.0.1:54321". Nothing of the arguments is kept (all copied).
 * Returns 0 when the answer is there in *out (the plugin answered during the call, or the
 * server did: 404, 405, 503), or RMR_EINPROGRESS when the plugin kept the request to answer
 * later: *out is then set too, with status 0 until it answers. Errors (*out NULL, no callback
 * ran): RMR_ECONNREFUSED (no listener at address, or the shared one is off), RMR_EINVAL
 * (out NULL, a method that is not a token, a path not starting with '/', an invalid header,
 * body NULL with len > 0), RMR_ENOMEM. Not from inside a plugin callback. */
int rmr_fakehost_http_request(struct rmr_fakehost *fh, const char *address, const char *method,
                              const char *path_and_query, const struct rmr_http_header *headers,
                              uint32_t nheaders, const void *body, size_t len,
                              struct rmr_fakehost_http_answer **out);
/* An answer header's value (case-insensitive; the first of repeated ones), or NULL. Borrowed
 * from the answer. */
const char *rmr_fakehost_http_answer_header(const struct rmr_fakehost_http_answer *answer,
                                            const char *name);
/* Frees an answer. When the plugin still holds the request, the client counts as gone: the
 * plugin's later rmr_http_respond() releases the request and returns RMR_ECONNRESET, as in
 * the agent. NULL is a no-op. */
void rmr_fakehost_http_answer_free(struct rmr_fakehost *fh,
                                   struct rmr_fakehost_http_answer *answer);
/* Requests that plugins hold unanswered. A request still held when its instance is destroyed
 * is released by the fake host after destroy(), with the log line "ERROR fakehost: 'NAME' was
 * destroyed holding N unanswered HTTP requests" (in the agent it would leak). */
uint32_t rmr_fakehost_http_pending(const struct rmr_fakehost *fh);

/* An outbound request a plugin made with rmr_http_fetch(), as the agent would send it. */
struct rmr_fakehost_fetch {
    rmr_instance_t *ins; /* who asked; compare only: it may be destroyed by now */
    const char *method;  /* the spec's, else "POST" with a body and "GET" without */
    const char *url;
    const struct rmr_http_header *headers; /* copies, in the plugin's order */
    uint32_t nheaders;
    uint32_t timeout_ms;       /* as the spec gave it: 0 means 10 s */
    const void *body;          /* copy, or NULL when none */
    size_t body_len;           /* 0 when none */
    size_t max_response_bytes; /* as the spec gave it: 0 means 16 MiB */
    int64_t mono_ns;           /* the fake monotonic time it was made */
    int done;                  /* 1 once its callback ran */
    int32_t status;            /* once done: the status given to the callback (0: failed) */
    int32_t error;             /* once done: the error given to the callback, else 0 */
};

/* Fetches made so far, oldest first; borrowed until rmr_fakehost_clear_fetches() or
 * rmr_fakehost_free(). index out of range: NULL. */
uint32_t rmr_fakehost_fetch_count(const struct rmr_fakehost *fh);
const struct rmr_fakehost_fetch *rmr_fakehost_fetch(const struct rmr_fakehost *fh, uint32_t index);
/* A fetch header's value (case-insensitive; the first of repeated ones), or NULL. */
const char *rmr_fakehost_fetch_header(const struct rmr_fakehost_fetch *fetch, const char *name);
/* Fetches whose callback has not run yet. */
uint32_t rmr_fakehost_fetch_pending(const struct rmr_fakehost *fh);
/* Forgets the fetches whose callback ran; pending ones stay listed (indexes shift). */
void rmr_fakehost_clear_fetches(struct rmr_fakehost *fh);

/* Serves fetches of url (exact match, query included) with method (NULL: any): status and a
 * body (copied; may be NULL when len is 0), until served otherwise: serving the same method
 * and url again replaces the answer, so a test changes it between advances. Without an
 * answer for its url (and no responder taking it), a fetch fails with RMR_ECONNREFUSED, as
 * when nobody listens. Errors: RMR_EINVAL, RMR_ENOMEM. */
int rmr_fakehost_fetch_serve(struct rmr_fakehost *fh, const char *method, const char *url,
                             int status, const void *body, size_t len);
/* Serves the contents of the file at path (read now) with status, e.g. a metadata fixture.
 * Errors: RMR_ENOENT (cannot open), RMR_EIO, RMR_EINVAL, RMR_ENOMEM. */
int rmr_fakehost_fetch_serve_file(struct rmr_fakehost *fh, const char *method, const char *url,
                                  int status, const char *path);
/* Makes fetches of url fail below HTTP with error: RMR_ECONNREFUSED, RMR_ECONNRESET, RMR_EIO,
 * or RMR_ETIMEDOUT, which (as in the agent's client) arrives only once the fetch's timeout
 * has passed on the fake clock since it was made (timeout_ms, 0: 10 s).
 * Errors: RMR_EINVAL (error not negative), RMR_ENOMEM. */
int rmr_fakehost_fetch_serve_error(struct rmr_fakehost *fh, const char *method, const char *url,
                                   int error);

/* A responder answers fetches in code, for what a table cannot say (Retry-After, a body
 * depending on the request, an answer that changes per call). It is asked at each delivery
 * point (see above) about each pending fetch, in fetch order, at most once per point; resp
 * comes filled as "no answer" (struct_size set, status 0, error 0, retry_after_ms -1, body
 * NULL). It returns:
 *   0: answer with resp (status, or error with status 0; retry_after_ms; body, which is
 *      copied when the responder returns, so it must be valid until then);
 *   RMR_EINPROGRESS: no answer yet; asked again at the next point. A fetch still unanswered
 *      when its timeout passes gets RMR_ETIMEDOUT from the fake host;
 *   RMR_ENOENT: not mine: the fetch is answered from the rmr_fakehost_fetch_serve*() table;
 *   another negative error: the fetch fails with it, as rmr_fakehost_fetch_serve_error().
 * A body longer than the fetch's max_response_bytes gives RMR_E2BIG with the status kept and
 * the first max_response_bytes bytes, as in the agent. Both the table and the responder
 * answer on the fake clock: an answer is never later than the delivery point (but for
 * RMR_ETIMEDOUT). fn NULL: no responder. arg is borrowed until replaced or the free. */
typedef int (*rmr_fakehost_fetch_fn)(void *arg, const struct rmr_fakehost_fetch *fetch,
                                     struct rmr_response *resp);
void rmr_fakehost_set_fetch_responder(struct rmr_fakehost *fh, rmr_fakehost_fetch_fn fn, void *arg);

/* Sends datagrams to the listener at address (NULL: the only one open; else the address as
 * the plugin gave it or as rmr_dgram_address() reports it) and calls its callback before
 * returning, with arrays of at most the spec's batch datagrams (0: 32). A unixstream://
 * listener gets each datagram as one message, as the agent delivers a length-prefixed frame
 * (pass the message, not the prefix; the framing itself is core/net/dgram's, tested there).
 * msgs[i].flags are ignored: a datagram longer than the spec's max_datagram (0: 65535) arrives cut
 * to that length with RMR_DGRAM_TRUNCATED. Each datagram reaches the plugin in a buffer of exactly
 * its length, not NUL-ended (address sanitizers catch reads past it). Datagrams left when the
 * callback closed the listener are dropped, as the kernel would. msgs are borrowed for the
 * call. Errors (no callback ran): RMR_ENOENT (no such listener), RMR_EINVAL (address NULL
 * with several listeners open, msgs NULL with count > 0, data NULL with len > 0),
 * RMR_ENOMEM. Not from inside a plugin callback. */
int rmr_fakehost_dgram_send(struct rmr_fakehost *fh, const char *address,
                            const struct rmr_dgram *msgs, uint32_t count);
/* The spec of the open listener at address (NULL: the only one), as the plugin gave it (its
 * address string copied); NULL when there is none. Borrowed until the listener closes. */
const struct rmr_dgram_spec *rmr_fakehost_dgram_spec(const struct rmr_fakehost *fh,
                                                     const char *address);
/* Datagram listeners open. */
uint32_t rmr_fakehost_dgram_count(const struct rmr_fakehost *fh);

/* ---- task-wide tags and the tagger (ABI 1.2) -------------------------------------------------
 *
 * rmr_global_tags_set(), rmr_tagger_set() and rmr_tagger_lookup() work as in the agent: the
 * union of the tags instances published (first-created instance wins on a key) is added to
 * every schema-less batch emitted afterwards, after the record's own tags. */

/* The union of the published task-wide tags, sorted; borrowed until the next change. */
void rmr_fakehost_global_tags(const struct rmr_fakehost *fh, const struct rmr_tag **tags,
                              uint32_t *ntags);
/* Entities the tagger knows. */
uint32_t rmr_fakehost_tagger_count(const struct rmr_fakehost *fh);

/* ABI 1.3: the reason an output gave rmr_output_halt() (the last call), or NULL when it never
 * halted. The fake host keeps no delivery queue: encoded payloads stay in the payload list. */
const char *rmr_fakehost_halted(const struct rmr_fakehost *fh, const rmr_instance_t *ins);

#ifdef __cplusplus
}
#endif
#endif
