/* core/host: the host table handed to plugins, the only door into the core. Every function
 * here runs on the loop thread unless it belongs to the reading or encoding side (batch views,
 * payloads), which any thread holding the handle may call. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "net/dgram/dgram.h"
#include "record/batch.h"
#include "self/log.h"
#include "util/payload.h"
#include "util/yield.h"

struct rmr_timer {
    struct rmr_handle h;
    uv_timer_t uv;
    struct rmr_instance *ins;
    rmr_timer_cb cb;
    void *arg;
    struct rmr_timer *next;
    struct rmr_timer *prev;
};

struct work_item {
    uv_work_t req;
    struct rmr_instance *ins;
    rmr_work_cb fn;
    rmr_work_done_cb done;
    void *arg;
};

/* ---- counters ----------------------------------------------------------------------------- */

static int same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

struct counter *counter_get(struct counters *c, const char *name, const char *reason,
                            const char *record_kind)
{
    for (uint32_t i = 0; i < c->count; i++) {
        struct counter *k = &c->items[i];
        if (strcmp(k->name, name) == 0 && same(k->reason, reason) &&
            same(k->record_kind, record_kind))
            return k;
    }
    /* Counter names and reasons come from code, not from traffic, so the set stays small;
     * the bound guards against a plugin passing data-derived reasons. */
    if (c->count >= 1024)
        return NULL;
    if (c->count == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 8;
        struct counter *items = realloc(c->items, cap * sizeof *items);
        if (items == NULL)
            return NULL;
        c->items = items;
        c->cap = cap;
    }
    struct counter *k = &c->items[c->count];
    memset(k, 0, sizeof *k);
    k->name = strdup(name);
    k->reason = reason ? strdup(reason) : NULL;
    k->record_kind = record_kind ? strdup(record_kind) : NULL;
    if (k->name == NULL || (reason && !k->reason) || (record_kind && !k->record_kind)) {
        free(k->name);
        free(k->reason);
        free(k->record_kind);
        return NULL;
    }
    c->count++;
    return k;
}

void counter_add(struct rmr_instance *ins, const char *name, const char *reason,
                 const char *record_kind, uint64_t delta)
{
    struct counter *k = counter_get(&ins->counters, name, reason, record_kind);
    if (k != NULL)
        k->value += delta;
}

void counters_release(struct counters *c)
{
    for (uint32_t i = 0; i < c->count; i++) {
        free(c->items[i].name);
        free(c->items[i].reason);
        free(c->items[i].record_kind);
    }
    free(c->items);
    memset(c, 0, sizeof *c);
}

/* ---- instance functions ---------------------------------------------------------------- */

__attribute__((format(printf, 3, 0))) static void h_logv(rmr_instance_t *ins, uint32_t level,
                                                         const char *fmt, va_list ap)
{
    log_writev(level, ins->ci->name, fmt, ap);
}

static const char *h_instance_name(rmr_instance_t *ins)
{
    return ins->ci->name;
}

static int64_t h_now_ns(rmr_instance_t *ins)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t h_mono_ns(rmr_instance_t *ins)
{
    return (int64_t)uv_hrtime();
}

static void on_timer(uv_timer_t *t)
{
    struct rmr_timer *tm = t->data;
    tm->cb(tm->ins, tm->arg);
}

static void free_timer(uv_handle_t *h)
{
    free(h->data);
}

static int h_timer_start(rmr_instance_t *ins, uint64_t first_ms, uint64_t period_ms,
                         rmr_timer_cb cb, void *arg, rmr_timer_t **out)
{
    if (cb == NULL || out == NULL)
        return RMR_EINVAL;
    if (ins->phase == PHASE_STOPPED)
        return RMR_ESTOPPED;
    struct rmr_timer *t = calloc(1, sizeof *t);
    if (t == NULL)
        return RMR_ENOMEM;
    t->h.host = &host_api;
    t->ins = ins;
    t->cb = cb;
    t->arg = arg;
    uv_timer_init(&ins->agent->loop, &t->uv);
    t->uv.data = t;
    uv_timer_start(&t->uv, on_timer, first_ms, period_ms);
    t->next = ins->timers;
    if (ins->timers != NULL)
        ins->timers->prev = t;
    ins->timers = t;
    *out = t;
    return 0;
}

static void h_timer_stop(rmr_timer_t *t)
{
    struct rmr_instance *ins = t->ins;
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        ins->timers = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    uv_timer_stop(&t->uv);
    uv_close((uv_handle_t *)&t->uv, free_timer);
}

static rmr_batch_t *h_batch_new(rmr_instance_t *ins, const char *schema)
{
    /* One batch may not take more than this; inputs emit well below it. */
    return batch_new(&host_api, schema, (size_t)64 << 20);
}

static void h_batch_free(rmr_batch_t *b)
{
    batch_unref(b);
}

static int h_batch_add(rmr_batch_t *b, uint32_t kind, const void *rec)
{
    return batch_add(b, kind, rec);
}

static int h_emit(rmr_instance_t *ins, rmr_batch_t *b)
{
    if (b == NULL)
        return RMR_EINVAL;
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &ins->agent->loop_thread))
        return host_emit_foreign(ins, b);
    return pipeline_emit(ins, b);
}

static int h_schema_wanted(rmr_instance_t *ins, const char *schema)
{
    return pipeline_schema_wanted(ins->agent, schema);
}

static uint32_t h_batch_count(const rmr_batch_t *b)
{
    return batch_count(b);
}

static const char *h_batch_schema(const rmr_batch_t *b)
{
    return batch_schema(b);
}

static uint32_t h_record_kind(const rmr_batch_t *b, uint32_t i)
{
    return batch_kind(b, i);
}

/* Encoders read every record through here: the encode job's yield point (util/yield.h). */
static int h_record_get(const rmr_batch_t *b, uint32_t i, uint32_t kind, void *view)
{
    yield_point();
    return batch_get(b, i, kind, view);
}

static void h_counter_add(rmr_instance_t *ins, const char *name, const char *reason, uint64_t delta)
{
    if (name != NULL)
        counter_add(ins, name, reason, NULL, delta);
}

/* ABI 1.4. */
static void h_gauge_set(rmr_instance_t *ins, const char *name, const char *reason, uint64_t value)
{
    if (name == NULL)
        return;
    struct counter *k = counter_get(&ins->counters, name, reason, NULL);
    if (k != NULL) {
        k->gauge = 1;
        k->value = value;
    }
}

static void report(rmr_stats_cb cb, void *arg, const struct rmr_instance *ins, const char *name,
                   const char *reason, const char *rkind, double value, uint32_t gauge)
{
    struct rmr_stat s = {
        .struct_size = sizeof s,
        .is_gauge = gauge,
        .instance = ins->ci->name,
        .plugin = ins->desc->name,
        .kind = ins->kind == RMR_KIND_INPUT ? "input" : "output",
        .name = name,
        .reason = reason,
        .record_kind = rkind,
        .value = value,
    };
    cb(arg, &s);
}

struct dgram_report {
    rmr_stats_cb cb;
    void *arg;
};

static void report_dgram(void *arg, struct rmr_instance *ins, const char *address,
                         const struct dgram_stats *st)
{
    struct dgram_report *r = arg;
    report(r->cb, r->arg, ins, "dgram_packets", address, NULL, (double)st->packets, 0);
    report(r->cb, r->arg, ins, "dgram_bytes", address, NULL, (double)st->bytes, 0);
    report(r->cb, r->arg, ins, "dgram_truncated", address, NULL, (double)st->truncated, 0);
    report(r->cb, r->arg, ins, "dgram_kernel_drops", address, NULL, (double)st->kernel_drops, 0);
    report(r->cb, r->arg, ins, "dgram_rcvbuf_bytes", address, NULL, (double)st->rcvbuf_granted, 1);
    if (!st->stream)
        return;
    report(r->cb, r->arg, ins, "dgram_connections", address, NULL, (double)st->connections, 1);
    report(r->cb, r->arg, ins, "dgram_connections_refused", address, NULL,
           (double)st->connections_refused, 0);
    report(r->cb, r->arg, ins, "dgram_frame_errors", address, NULL, (double)st->frame_errors, 0);
}

void instance_stats(struct rmr_instance *ins, rmr_stats_cb cb, void *arg)
{
    for (uint32_t k = 0; k < ins->counters.count; k++) {
        const struct counter *c = &ins->counters.items[k];
        report(cb, arg, ins, c->name, c->reason, c->record_kind, (double)c->value, c->gauge);
    }
    if (ins->out != NULL) {
        report(cb, arg, ins, "queue_bytes", NULL, NULL, (double)pipeline_queued_bytes(ins->out), 1);
        report(cb, arg, ins, "queue_payloads", NULL, NULL, (double)ins->out->delivery.count, 1);
        report(cb, arg, ins, "in_flight", NULL, NULL, (double)ins->out->delivery.in_flight, 1);
    }
    struct dgram_report r = {cb, arg};
    host_net_dgram_stats(ins, report_dgram, &r);
}

static int h_stats_foreach(rmr_instance_t *self, rmr_stats_cb cb, void *arg)
{
    struct agent *a = self->agent;
    for (uint32_t i = 0; i < a->ninstances; i++)
        instance_stats(&a->instances[i], cb, arg);
    return 0;
}

int process_stats_read(const struct agent *a, struct rmr_process_stats *out)
{
    uint32_t size = out->struct_size;
    struct rmr_process_stats ps;
    memset(&ps, 0, sizeof ps);
    ps.struct_size = size;

    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        ps.cpu_user_ns =
            (uint64_t)ru.ru_utime.tv_sec * 1000000000u + (uint64_t)ru.ru_utime.tv_usec * 1000u;
        ps.cpu_system_ns =
            (uint64_t)ru.ru_stime.tv_sec * 1000000000u + (uint64_t)ru.ru_stime.tv_usec * 1000u;
    }
    /* /proc reads are served from kernel memory and do not block on a disk. */
    FILE *f = fopen("/proc/self/status", "re");
    if (f != NULL) {
        char line[256];
        while (fgets(line, sizeof line, f) != NULL) {
            unsigned long long v;
            if (sscanf(line, "VmRSS: %llu kB", &v) == 1)
                ps.rss_bytes = v * 1024;
            else if (sscanf(line, "Threads: %llu", &v) == 1)
                ps.threads = (uint32_t)v;
        }
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                ps.open_fds++;
        closedir(d);
        if (ps.open_fds > 0)
            ps.open_fds--; /* the directory stream's own descriptor */
    }
    ps.start_time_ns = a->start_wall_ns;
    ps.uptime_ns = (int64_t)(uv_hrtime() - a->start_mono_ns);
    size_t n = size < sizeof ps ? size : sizeof ps;
    memcpy(out, &ps, n);
    return 0;
}

static int h_process_stats(rmr_instance_t *ins, struct rmr_process_stats *out)
{
    if (out == NULL || out->struct_size < sizeof(uint32_t))
        return RMR_EINVAL;
    return process_stats_read(ins->agent, out);
}

static void work_run(uv_work_t *req)
{
    struct work_item *w = req->data;
    w->fn(w->arg);
}

static void work_done(uv_work_t *req, int status)
{
    struct work_item *w = req->data;
    w->ins->pending_work--;
    if (w->done != NULL)
        w->done(w->ins, w->arg, status == UV_ECANCELED ? RMR_ESTOPPED : 0);
    free(w);
}

static int h_work(rmr_instance_t *ins, rmr_work_cb fn, rmr_work_done_cb done, void *arg)
{
    if (fn == NULL)
        return RMR_EINVAL;
    struct work_item *w = calloc(1, sizeof *w);
    if (w == NULL)
        return RMR_ENOMEM;
    w->ins = ins;
    w->fn = fn;
    w->done = done;
    w->arg = arg;
    w->req.data = w;
    int rc = uv_queue_work(&ins->agent->loop, &w->req, work_run, work_done);
    if (rc < 0) {
        free(w);
        return RMR_ENOMEM;
    }
    ins->pending_work++;
    return 0;
}

static const char *h_hostname(rmr_instance_t *ins)
{
    return ins->agent->hostname;
}

/* ---- tags (ABI 1.2) ------------------------------------------------------------------------ */

static int h_global_tags_set(rmr_instance_t *ins, const struct rmr_tag *tags, uint32_t ntags)
{
    struct agent *a = ins->agent;
    int rc = tagset_assign(&ins->published, tags, ntags);
    if (rc < 0)
        return rc;
    /* The union in instance order: the first publisher of a key wins. */
    const struct tagset **sets = malloc((a->ninstances + 1) * sizeof *sets);
    if (sets == NULL)
        return RMR_ENOMEM;
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->ninstances; i++)
        if (a->instances[i].published.ntags > 0)
            sets[n++] = &a->instances[i].published;
    rc = tagset_union(&a->published_tags, sets, n);
    free(sets);
    return rc;
}

static int h_tagger_set(rmr_instance_t *ins, const char *entity, size_t len,
                        const struct rmr_tag *tags, uint32_t ntags)
{
    return tagger_put(ins->agent->tagger, entity, len, tags, ntags);
}

static int h_tagger_lookup(rmr_instance_t *ins, const char *entity, size_t len, rmr_tagger_cb cb,
                           void *arg)
{
    return tagger_get(ins->agent->tagger, entity, len, cb, arg);
}

/* ---- outputs (ABI 1.3) --------------------------------------------------------------------- */

static int h_output_halt(rmr_instance_t *ins, const char *reason)
{
    if (ins->out == NULL)
        return RMR_EINVAL;
    delivery_halt(&ins->out->delivery, reason);
    return 0;
}

static void h_stop_done(rmr_instance_t *ins)
{
    agent_instance_stopped(ins);
}

const struct rmr_host_api host_api = {
    .struct_size = sizeof(struct rmr_host_api),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .logv = h_logv,
    .instance_name = h_instance_name,
    .now_ns = h_now_ns,
    .mono_ns = h_mono_ns,
    .timer_start = h_timer_start,
    .timer_stop = h_timer_stop,
    .batch_new = h_batch_new,
    .batch_free = h_batch_free,
    .batch_add = h_batch_add,
    .emit = h_emit,
    .schema_wanted = h_schema_wanted,
    .batch_count = h_batch_count,
    .batch_schema = h_batch_schema,
    .record_kind = h_record_kind,
    .record_get = h_record_get,
    .payload_new = pipeline_payload_new,
    .payload_write = payload_write,
    .payload_json_str = payload_json_str,
    .payload_len = payload_len,
    .payload_commit = pipeline_payload_commit,
    .payload_discard = payload_discard,
    .encoder_drop = pipeline_encoder_drop,
    .counter_add = h_counter_add,
    .stats_foreach = h_stats_foreach,
    .process_stats = h_process_stats,
    .work = h_work,
    .stop_done = h_stop_done,
    .hostname = h_hostname,
    .http_listener = host_http_listener,
    .http_route = host_http_route,
    .http_req_info = host_http_req_info,
    .http_req_header = host_http_req_header,
    .http_respond = host_http_respond,
    .http_fetch = host_http_fetch,
    .dgram_listen = host_dgram_listen,
    .dgram_address = host_dgram_address,
    .dgram_close = host_dgram_close,
    .global_tags_set = h_global_tags_set,
    .tagger_set = h_tagger_set,
    .tagger_lookup = h_tagger_lookup,
    .output_halt = h_output_halt,
    .gauge_set = h_gauge_set,
};

/* A stopped instance: its timers no longer fire, but the handles stay valid until destroy, so
 * a plugin may still rmr_timer_stop() them in destroy(); its network services go now. */
void host_instance_quiesce(struct rmr_instance *ins)
{
    for (struct rmr_timer *t = ins->timers; t != NULL; t = t->next)
        uv_timer_stop(&t->uv);
    host_net_release_instance(ins);
}

/* After destroy: frees the timers the instance left (destroy must not leave callbacks). */
void host_instance_release(struct rmr_instance *ins)
{
    while (ins->timers != NULL)
        h_timer_stop(ins->timers);
    host_net_release_instance(ins);
}
