/* core/self/status: the agent's self-monitoring routes on the shared listener.
 *   GET /v1/ping    200 "pong" while the loop runs
 *   GET /v1/status  JSON: process, loop lag, listeners, and per instance its state, counters,
 *                   drops by reason and, for outputs, the courier (queue, in flight, state
 *                   ok/retrying/halted, last error); `remora status` renders it
 *   GET /metrics    Prometheus text format 0.0.4 of the same numbers
 * Thread: the loop thread. */
#include <ctype.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "net/server/httpd.h"
#include "self/log.h"
#include "util/buf.h"

static const char *phase_name(const struct rmr_instance *ins)
{
    switch (ins->phase) {
    case PHASE_NEW: return "new";
    case PHASE_CREATED: return "created";
    case PHASE_STARTED: return "running";
    case PHASE_STOPPING: return "stopping";
    case PHASE_STOPPED: return "stopped";
    default: return "unknown";
    }
}

static const char *agent_phase_name(uint32_t phase)
{
    switch (phase) {
    case AGENT_RUNNING: return "running";
    case AGENT_STOPPING_INPUTS: return "stopping";
    case AGENT_DRAINING: return "draining";
    case AGENT_DONE: return "done";
    default: return "unknown";
    }
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- /v1/ping ---------------------------------------------------------------------------- */

static void on_ping(void *arg, httpd_req *req)
{
    httpd_respond(req, 200, NULL, 0, "text/plain; charset=utf-8", "pong\n", 5);
}

/* ---- /v1/status -------------------------------------------------------------------------- */

struct status_ctx {
    json_t *counters; /* name -> value, or name -> {reason -> value} */
    json_t *drops;    /* reason -> value */
    double records_in;
    double records_out;
    double dropped;
};

static void status_stat(void *arg, const struct rmr_stat *s)
{
    struct status_ctx *c = arg;
    if (strcmp(s->name, "records_in") == 0)
        c->records_in += s->value;
    else if (strcmp(s->name, "records_out") == 0)
        c->records_out += s->value;
    if (strcmp(s->name, "records_dropped") == 0) {
        c->dropped += s->value;
        char key[160];
        snprintf(key, sizeof key, "%s%s%s", s->reason ? s->reason : "unspecified",
                 s->record_kind ? "/" : "", s->record_kind ? s->record_kind : "");
        json_t *old = json_object_get(c->drops, key);
        double v = s->value + (old != NULL ? json_number_value(old) : 0);
        json_object_set_new(c->drops, key, json_integer((json_int_t)v));
        return;
    }
    if (s->reason == NULL && s->record_kind == NULL) {
        json_object_set_new(c->counters, s->name, json_integer((json_int_t)s->value));
        return;
    }
    json_t *sub = json_object_get(c->counters, s->name);
    if (!json_is_object(sub)) {
        sub = json_object();
        json_object_set_new(c->counters, s->name, sub);
    }
    char key[160];
    snprintf(key, sizeof key, "%s%s%s", s->reason ? s->reason : "",
             s->reason && s->record_kind ? "/" : "", s->record_kind ? s->record_kind : "");
    json_t *old = json_object_get(sub, key);
    double v = s->value + (old != NULL ? json_number_value(old) : 0);
    json_object_set_new(sub, key, json_integer((json_int_t)v));
}

static json_t *delivery_json(const struct rmr_instance *ins)
{
    const struct output *o = ins->out;
    const struct delivery *d = &o->delivery;
    int64_t now = wall_ns();
    json_t *j = json_object();
    json_object_set_new(j, "state", json_string(delivery_state_name(d->state)));
    json_object_set_new(j, "state_seconds",
                        json_integer((json_int_t)((now - d->state_since_ns) / 1000000000)));
    json_object_set_new(j, "queue_bytes", json_integer((json_int_t)pipeline_queued_bytes(o)));
    json_object_set_new(j, "queue_limit_bytes", json_integer((json_int_t)d->limit_bytes));
    json_object_set_new(j, "queue_payloads", json_integer((json_int_t)d->count));
    json_object_set_new(j, "queue_records",
                        json_integer((json_int_t)(o->pending_records + delivery_records(d))));
    json_object_set_new(j, "in_flight", json_integer((json_int_t)d->in_flight));
    json_object_set_new(j, "consecutive_failures", json_integer((json_int_t)d->attempt));
    if (d->last_error_ns != 0) {
        json_object_set_new(j, "last_error", json_string(d->last_error));
        json_object_set_new(j, "last_error_seconds_ago",
                            json_integer((json_int_t)((now - d->last_error_ns) / 1000000000)));
    } else {
        json_object_set_new(j, "last_error", json_null());
    }
    if (d->last_ok_ns != 0)
        json_object_set_new(j, "last_delivery_seconds_ago",
                            json_integer((json_int_t)((now - d->last_ok_ns) / 1000000000)));
    return j;
}

char *status_json(struct agent *a);
char *status_json(struct agent *a)
{
    json_t *root = json_object();
    json_object_set_new(root, "version", json_string(REMORA_VERSION));
    json_object_set_new(root, "hostname", json_string(a->hostname));
    json_object_set_new(root, "pid", json_integer(getpid()));
    json_object_set_new(root, "phase", json_string(agent_phase_name(a->phase)));
    json_object_set_new(root, "uptime_seconds",
                        json_real((double)(uv_hrtime() - a->start_mono_ns) / 1e9));
    struct rmr_process_stats ps = {.struct_size = sizeof ps};
    process_stats_read(a, &ps);
    json_t *proc = json_object();
    json_object_set_new(proc, "rss_bytes", json_integer((json_int_t)ps.rss_bytes));
    json_object_set_new(proc, "cpu_seconds",
                        json_real((double)(ps.cpu_user_ns + ps.cpu_system_ns) / 1e9));
    json_object_set_new(proc, "threads", json_integer(ps.threads));
    json_object_set_new(proc, "open_fds", json_integer((json_int_t)ps.open_fds));
    json_object_set_new(root, "process", proc);
    json_t *lag = json_object();
    json_object_set_new(lag, "last_ms", json_integer((json_int_t)a->lag_last_ms));
    json_object_set_new(lag, "max_ms", json_integer((json_int_t)a->lag_max_ms));
    json_object_set_new(root, "loop_lag", lag);
    json_t *ls = json_array();
    for (struct listener *l = a->listeners; l != NULL; l = l->next) {
        const struct httpd_stats *st = httpd_stats(l->srv);
        json_t *lj = json_object();
        json_object_set_new(lj, "address", json_string(httpd_address(l->srv)));
        json_object_set_new(lj, "owner",
                            json_string(l->owner != NULL ? l->owner->ci->name : "agent"));
        json_object_set_new(lj, "connections_open", json_integer((json_int_t)st->connections_open));
        json_object_set_new(lj, "requests", json_integer((json_int_t)st->requests));
        json_array_append_new(ls, lj);
    }
    json_object_set_new(root, "listeners", ls);

    json_t *list = json_array();
    for (uint32_t i = 0; i < a->ninstances; i++) {
        struct rmr_instance *ins = &a->instances[i];
        json_t *ij = json_object();
        json_object_set_new(ij, "name", json_string(ins->ci->name));
        json_object_set_new(ij, "plugin", json_string(ins->desc->name));
        json_object_set_new(ij, "kind",
                            json_string(ins->kind == RMR_KIND_INPUT ? "input" : "output"));
        json_object_set_new(ij, "state", json_string(phase_name(ins)));
        struct status_ctx c = {.counters = json_object(), .drops = json_object()};
        instance_stats(ins, status_stat, &c);
        json_object_set_new(ij, "records_in", json_integer((json_int_t)c.records_in));
        json_object_set_new(ij, "records_out", json_integer((json_int_t)c.records_out));
        json_object_set_new(ij, "records_dropped", json_integer((json_int_t)c.dropped));
        json_object_set_new(ij, "drops", c.drops);
        json_object_set_new(ij, "counters", c.counters);
        if (ins->out != NULL)
            json_object_set_new(ij, "delivery", delivery_json(ins));
        json_array_append_new(list, ij);
    }
    json_object_set_new(root, "instances", list);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}

static void on_status(void *arg, httpd_req *req)
{
    char *text = status_json(arg);
    if (text == NULL) {
        httpd_respond(req, 500, NULL, 0, "text/plain", "out of memory\n", 14);
        return;
    }
    httpd_respond(req, 200, NULL, 0, "application/json", text, strlen(text));
    free(text);
}

/* ---- /metrics ---------------------------------------------------------------------------- */

/* One sample gathered before printing, so each family is printed together. */
struct sample {
    char family[96]; /* remora_records_dropped_total */
    int gauge;
    char labels[512];
    double value;
};

struct samples {
    struct sample *items;
    size_t count;
    size_t cap;
};

static struct sample *sample_new(struct samples *s)
{
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct sample *items = realloc(s->items, cap * sizeof *items);
        if (items == NULL)
            return NULL;
        s->items = items;
        s->cap = cap;
    }
    struct sample *x = &s->items[s->count++];
    memset(x, 0, sizeof *x);
    return x;
}

/* Appends ,key="value" with Prometheus escaping (\\, \", \n). */
static void label(char *dst, size_t cap, const char *key, const char *value)
{
    size_t n = strlen(dst);
    if (value == NULL || n + 8 >= cap)
        return;
    n += (size_t)snprintf(dst + n, cap - n, "%s%s=\"", n ? "," : "", key);
    for (const char *c = value; *c != '\0' && n + 4 < cap; c++) {
        if (*c == '\\' || *c == '"') {
            dst[n++] = '\\';
            dst[n++] = *c;
        } else if (*c == '\n') {
            dst[n++] = '\\';
            dst[n++] = 'n';
        } else {
            dst[n++] = *c;
        }
    }
    if (n + 1 < cap)
        dst[n++] = '"';
    dst[n] = '\0';
}

/* A counter name as a metric name: [a-z0-9_], never empty. */
static void metric_name(char *dst, size_t cap, const char *name, int gauge)
{
    size_t n = (size_t)snprintf(dst, cap, "remora_");
    for (const char *c = name; *c != '\0' && n + 8 < cap; c++)
        dst[n++] = (char)(isalnum((unsigned char)*c) ? tolower((unsigned char)*c) : '_');
    dst[n] = '\0';
    if (!gauge && (n < 6 || strcmp(dst + n - 6, "_total") != 0))
        snprintf(dst + n, cap - n, "_total");
}

static const char *reason_label(const char *name)
{
    if (strcmp(name, "http_responses") == 0 || strcmp(name, "http_fetches") == 0)
        return "code";
    if (strncmp(name, "dgram_", 6) == 0)
        return "address";
    return "reason";
}

static void metrics_stat(void *arg, const struct rmr_stat *s)
{
    struct samples *ss = arg;
    struct sample *x = sample_new(ss);
    if (x == NULL)
        return;
    x->gauge = (int)s->is_gauge;
    metric_name(x->family, sizeof x->family, s->name, x->gauge);
    label(x->labels, sizeof x->labels, "instance", s->instance);
    label(x->labels, sizeof x->labels, "plugin", s->plugin);
    label(x->labels, sizeof x->labels, "kind", s->kind);
    label(x->labels, sizeof x->labels, reason_label(s->name), s->reason);
    label(x->labels, sizeof x->labels, "record_kind", s->record_kind);
    x->value = s->value;
}

static const char *family_help(const char *family)
{
    static const struct {
        const char *family;
        const char *help;
    } helps[] = {
        {"remora_records_in_total", "Records an instance received."},
        {"remora_records_out_total", "Records an output delivered."},
        {"remora_records_dropped_total", "Records dropped, by reason and record kind."},
        {"remora_records_blocked_total", "Records refused because an output's queue was full."},
        {"remora_payloads_out_total", "Payloads an output delivered."},
        {"remora_bytes_out_total", "Bytes an output delivered (as sent, compressed)."},
        {"remora_payloads_split_total", "Payloads split in two after a 413."},
        {"remora_retries_total", "Delivery attempts that failed and were retried."},
        {"remora_encode_yields_total",
         "Times an encode job gave its core to a datagram reader on it."},
        {"remora_http_responses_total", "Backend responses to an output, by status code."},
        {"remora_http_fetches_total", "Responses to an input's requests, by status code."},
        {"remora_http_requests_total", "Requests routed to an input on an HTTP listener."},
        {"remora_queue_bytes", "Bytes waiting in an output's queue (encoded and not)."},
        {"remora_queue_payloads", "Payloads waiting in an output's delivery queue."},
        {"remora_in_flight", "Requests an output has in flight."},
        {"remora_dgram_packets_total", "Datagrams received by a listener."},
        {"remora_dgram_bytes_total", "Datagram bytes received by a listener."},
        {"remora_dgram_truncated_total", "Datagrams longer than the listener's buffer."},
        {"remora_dgram_kernel_drops_total", "Datagrams the kernel dropped for the socket."},
        {"remora_dgram_rcvbuf_bytes", "Receive buffer the kernel granted the socket."},
        {"remora_dgram_connections", "Connections open on a unixstream listener."},
        {"remora_dgram_connections_refused_total",
         "Connections a unixstream listener closed at once: too many were open."},
        {"remora_dgram_frame_errors_total",
         "Connections closed for a frame over the size limit, and frames cut short."},
    };
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++)
        if (strcmp(helps[i].family, family) == 0)
            return helps[i].help;
    return "A plugin instance's own counter or gauge.";
}

static int cmp_sample(const void *pa, const void *pb)
{
    const struct sample *a = pa, *b = pb;
    int c = strcmp(a->family, b->family);
    return c != 0 ? c : strcmp(a->labels, b->labels);
}

static void put(struct dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct dbuf *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)dbuf_append(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void family(struct dbuf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_value(struct dbuf *b, const char *name, const char *labels, double v)
{
    put(b, "%s%s%s%s %.17g\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "", v);
}

char *metrics_text(struct agent *a, size_t *len);
char *metrics_text(struct agent *a, size_t *len)
{
    struct dbuf b;
    dbuf_init(&b, 0);
    char lb[256] = "";
    label(lb, sizeof lb, "version", REMORA_VERSION);
    family(&b, "remora_build_info", "gauge", "The running remora's version.");
    put_value(&b, "remora_build_info", lb, 1);

    struct rmr_process_stats ps = {.struct_size = sizeof ps};
    process_stats_read(a, &ps);
    family(&b, "remora_process_resident_memory_bytes", "gauge", "Resident set size.");
    put_value(&b, "remora_process_resident_memory_bytes", "", (double)ps.rss_bytes);
    family(&b, "remora_process_cpu_seconds_total", "counter", "User and system CPU time.");
    put_value(&b, "remora_process_cpu_seconds_total", "",
              (double)(ps.cpu_user_ns + ps.cpu_system_ns) / 1e9);
    family(&b, "remora_process_open_fds", "gauge", "Open file descriptors.");
    put_value(&b, "remora_process_open_fds", "", (double)ps.open_fds);
    family(&b, "remora_process_threads", "gauge", "Threads of the process.");
    put_value(&b, "remora_process_threads", "", (double)ps.threads);
    family(&b, "remora_process_start_time_seconds", "gauge", "Start time, Unix seconds.");
    put_value(&b, "remora_process_start_time_seconds", "", (double)a->start_wall_ns / 1e9);
    family(&b, "remora_event_loop_lag_seconds", "gauge",
           "How late the loop ran its last 500 ms timer.");
    put_value(&b, "remora_event_loop_lag_seconds", "", (double)a->lag_last_ms / 1e3);
    family(&b, "remora_event_loop_lag_max_seconds", "gauge", "The largest loop lag since start.");
    put_value(&b, "remora_event_loop_lag_max_seconds", "", (double)a->lag_max_ms / 1e3);

    /* Listeners. */
    static const char *classes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
    family(&b, "remora_http_server_connections", "gauge", "Open connections of a listener.");
    for (struct listener *l = a->listeners; l != NULL; l = l->next) {
        char ll[256] = "";
        label(ll, sizeof ll, "listener", httpd_address(l->srv));
        put_value(&b, "remora_http_server_connections", ll,
                  (double)httpd_stats(l->srv)->connections_open);
    }
    family(&b, "remora_http_server_responses_total", "counter",
           "Responses a listener sent, by status class.");
    for (struct listener *l = a->listeners; l != NULL; l = l->next)
        for (int c = 1; c <= 5; c++) {
            char ll[256] = "";
            label(ll, sizeof ll, "listener", httpd_address(l->srv));
            label(ll, sizeof ll, "class", classes[c]);
            put_value(&b, "remora_http_server_responses_total", ll,
                      (double)httpd_stats(l->srv)->responses[c]);
        }
    family(&b, "remora_http_server_rejected_total", "counter",
           "Requests or connections a listener refused, by reason.");
    for (struct listener *l = a->listeners; l != NULL; l = l->next) {
        const struct httpd_stats *st = httpd_stats(l->srv);
        const struct {
            const char *reason;
            uint64_t v;
        } r[] = {{"max_connections", st->connections_rejected},
                 {"malformed", st->bad_requests},
                 {"body_too_large", st->too_large},
                 {"header_too_large", st->headers_too_large},
                 {"timeout", st->timeouts}};
        for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
            char ll[256] = "";
            label(ll, sizeof ll, "listener", httpd_address(l->srv));
            label(ll, sizeof ll, "reason", r[i].reason);
            put_value(&b, "remora_http_server_rejected_total", ll, (double)r[i].v);
        }
    }

    /* Instances: every counter, grouped by family. */
    struct samples ss = {0};
    for (uint32_t i = 0; i < a->ninstances; i++)
        instance_stats(&a->instances[i], metrics_stat, &ss);
    qsort(ss.items, ss.count, sizeof *ss.items, cmp_sample);
    for (size_t i = 0; i < ss.count; i++) {
        const struct sample *x = &ss.items[i];
        if (i == 0 || strcmp(x->family, ss.items[i - 1].family) != 0)
            family(&b, x->family, x->gauge ? "gauge" : "counter", family_help(x->family));
        /* Two samples with the same labels (a plugin counter named like a host one) add up. */
        double v = x->value;
        while (i + 1 < ss.count && cmp_sample(x, &ss.items[i + 1]) == 0)
            v += ss.items[++i].value;
        put_value(&b, x->family, x->labels, v);
    }
    free(ss.items);

    /* Outputs: state and request latency. */
    family(&b, "remora_output_state", "gauge", "1 for an output's current delivery state.");
    for (uint32_t i = 0; i < a->ninstances; i++) {
        const struct rmr_instance *ins = &a->instances[i];
        if (ins->out == NULL)
            continue;
        for (uint32_t s = DELIVERY_OK; s <= DELIVERY_HALTED; s++) {
            char ll[256] = "";
            label(ll, sizeof ll, "instance", ins->ci->name);
            label(ll, sizeof ll, "state", delivery_state_name(s));
            put_value(&b, "remora_output_state", ll, ins->out->delivery.state == s ? 1 : 0);
        }
    }
    family(&b, "remora_request_duration_seconds", "histogram",
           "Time from sending a payload to the backend's answer.");
    for (uint32_t i = 0; i < a->ninstances; i++) {
        const struct rmr_instance *ins = &a->instances[i];
        if (ins->out == NULL)
            continue;
        const struct delivery *d = &ins->out->delivery;
        uint64_t cum = 0;
        for (int k = 0; k < DELIVERY_LAT_BUCKETS; k++) {
            cum += d->lat_counts[k];
            char le[32];
            if (delivery_lat_bounds[k] < 0)
                snprintf(le, sizeof le, "+Inf");
            else
                snprintf(le, sizeof le, "%g", delivery_lat_bounds[k]);
            char ll[256] = "";
            label(ll, sizeof ll, "instance", ins->ci->name);
            label(ll, sizeof ll, "le", le);
            put_value(&b, "remora_request_duration_seconds_bucket", ll, (double)cum);
        }
        char ll[256] = "";
        label(ll, sizeof ll, "instance", ins->ci->name);
        put_value(&b, "remora_request_duration_seconds_sum", ll, d->lat_sum_s);
        put_value(&b, "remora_request_duration_seconds_count", ll, (double)d->lat_count);
    }
    *len = b.len;
    if (dbuf_append(&b, "", 1) < 0) {
        dbuf_release(&b);
        return NULL;
    }
    return (char *)b.data;
}

static void on_metrics(void *arg, httpd_req *req)
{
    size_t len = 0;
    char *text = metrics_text(arg, &len);
    if (text == NULL) {
        httpd_respond(req, 500, NULL, 0, "text/plain", "out of memory\n", 14);
        return;
    }
    httpd_respond(req, 200, NULL, 0, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

int status_routes(struct agent *a, struct httpd *srv)
{
    int rc = httpd_route(srv, "GET", "/v1/ping", 0, on_ping, a, a);
    if (rc == 0)
        rc = httpd_route(srv, "HEAD", "/v1/ping", 0, on_ping, a, a);
    if (rc == 0)
        rc = httpd_route(srv, "GET", "/v1/status", 0, on_status, a, a);
    if (rc == 0)
        rc = httpd_route(srv, "GET", "/metrics", 0, on_metrics, a, a);
    return rc;
}
