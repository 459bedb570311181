/* core/pipeline: inputs -> global tags -> outputs that accept the batch's schema -> per-output
 * batching by records, bytes and age -> encode() on the thread pool -> delivery queue.
 *
 * Batches are immutable once emitted and shared by refcount between outputs. Each output has
 * at most one encode job in flight, so a plugin's encode() never runs concurrently with itself
 * and payloads reach the delivery queue in emit order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "record/batch.h"
#include "self/log.h"
#include "util/payload.h"
#include "util/yield.h"

/* A drop counted by an encoder, reported to the loop thread with the job. */
struct enc_drop {
    uint32_t record_kind;
    char reason[40];
    uint64_t count;
};

struct encode_job {
    uv_work_t req;
    struct rmr_instance *ins;
    struct rmr_batch **batches;
    uint32_t nbatches;
    uint64_t nrecords;
    int rc;
    struct payload *head; /* committed payloads, in order */
    struct payload *tail;
    struct enc_drop drops[8];
    uint32_t ndrops;
    uint64_t drops_overflow; /* drops whose reason did not fit the table */
    uint64_t yields;         /* times the job gave its core away (util/yield.h) */
};

struct rmr_encoder {
    struct rmr_handle h;
    struct encode_job *job;
};

/* ---- payloads (thread pool) ------------------------------------------------------------ */

rmr_payload_t *pipeline_payload_new(rmr_encoder_t *enc, const struct rmr_payload_spec *spec)
{
    return payload_open(&host_api, enc, spec);
}

int pipeline_payload_commit(rmr_payload_t *p, uint32_t nrecords)
{
    struct encode_job *job = p->enc->job;
    uint32_t compression = p->spec.compression, record_kind = p->spec.record_kind;
    uint32_t flags = p->spec.flags;
    struct payload *out = calloc(1, sizeof *out);
    if (out == NULL) {
        payload_discard(p);
        return RMR_ENOMEM;
    }
    out->headers = payload_take_headers(p);
    if (flags & RMR_PAYLOAD_LINES)
        out->nlines = payload_lines(p);
    int rc = payload_seal(p, &out->endpoint, &out->content_type, &out->body, &out->len);
    if (rc < 0) {
        free(out->headers);
        free(out);
        return rc;
    }
    out->flags = flags;
    out->compression = compression;
    out->record_kind = record_kind;
    out->nrecords = nrecords;
    if (job->tail != NULL)
        job->tail->next = out;
    else
        job->head = out;
    job->tail = out;
    return 0;
}

void pipeline_encoder_drop(rmr_encoder_t *enc, uint32_t record_kind, const char *reason,
                           uint64_t count)
{
    struct encode_job *job = enc->job;
    if (reason == NULL)
        reason = "unspecified";
    for (uint32_t i = 0; i < job->ndrops; i++) {
        if (job->drops[i].record_kind == record_kind &&
            strncmp(job->drops[i].reason, reason, sizeof job->drops[i].reason - 1) == 0) {
            job->drops[i].count += count;
            return;
        }
    }
    if (job->ndrops == sizeof job->drops / sizeof job->drops[0]) {
        job->drops_overflow += count;
        return;
    }
    struct enc_drop *d = &job->drops[job->ndrops++];
    d->record_kind = record_kind;
    snprintf(d->reason, sizeof d->reason, "%s", reason);
    d->count = count;
}

/* ---- encode jobs ---------------------------------------------------------------------- */

static void flush_output(struct rmr_instance *ins);

size_t pipeline_queued_bytes(const struct output *o)
{
    return o->pending_bytes + o->encoding_bytes + o->delivery.bytes;
}

/* 1 when a full queue drops its oldest payloads for records of kind (0: mixed), 0 when it
 * blocks (refuses new records). auto blocks logs and spans, which clients resend when refused,
 * and drops the oldest metrics, whose newest values matter most. */
static int when_full_drops(const struct rmr_instance *ins, uint32_t kind)
{
    switch (ins->ci->common.when_full) {
    case WHEN_FULL_BLOCK: return 0;
    case WHEN_FULL_DROP_OLDEST: return 1;
    default: return !(kind == RMR_REC_LOG || kind == RMR_REC_SPAN);
    }
}

static void encode_work(uv_work_t *req)
{
    struct encode_job *job = req->data;
    struct rmr_encoder enc = {.h = {&host_api}, .job = job};
    /* A long job gives its core away every YIELD_BUDGET_NS (record_get is the yield point),
     * so a datagram reader sharing the core never waits a whole job. */
    yield_every(YIELD_BUDGET_NS);
    job->rc = job->ins->desc->encode(&enc, job->ins->state,
                                     (const rmr_batch_t *const *)job->batches, job->nbatches);
    job->yields = yield_every(0);
}

static void encode_done(uv_work_t *req, int status)
{
    struct encode_job *job = req->data;
    struct rmr_instance *ins = job->ins;
    struct output *o = ins->out;
    o->encoding = 0;
    o->encoding_bytes = 0;
    if (job->yields > 0)
        counter_add(ins, "encode_yields", NULL, NULL, job->yields);

    if (status < 0 || job->rc < 0) {
        log_write(RMR_LOG_ERROR, ins->ci->name, "cannot encode %llu records: %s",
                  (unsigned long long)job->nrecords,
                  rmr_strerror(status < 0 ? RMR_ESTOPPED : job->rc));
        counter_add(ins, "records_dropped", "encode_error", NULL, job->nrecords);
        for (struct payload *p = job->head, *next; p != NULL; p = next) {
            next = p->next;
            payload_free(p);
        }
    } else {
        for (uint32_t i = 0; i < job->ndrops; i++)
            counter_add(ins, "records_dropped", job->drops[i].reason,
                        record_kind_name(job->drops[i].record_kind), job->drops[i].count);
        if (job->drops_overflow > 0)
            counter_add(ins, "records_dropped", "encoder", NULL, job->drops_overflow);
        for (struct payload *p = job->head, *next; p != NULL; p = next) {
            next = p->next;
            uint32_t n = p->nrecords, kind = p->record_kind;
            /* Records that passed emit are queued: a blocking output made room by refusing
             * inputs, so only drop_oldest outputs shed here, and then the oldest. */
            int drop_oldest = when_full_drops(ins, kind);
            if (delivery_push(&o->delivery, p, drop_oldest) < 0) {
                log_write(RMR_LOG_WARN, ins->ci->name,
                          "delivery queue full at %zu bytes (queue_bytes); dropping %u records",
                          o->delivery.limit_bytes, n);
                counter_add(ins, "records_dropped", "queue_full",
                            kind ? record_kind_name(kind) : NULL, n);
            }
        }
    }
    for (uint32_t i = 0; i < job->nbatches; i++)
        batch_unref(job->batches[i]);
    free(job->batches);
    free(job);
    /* More may have arrived while encoding. */
    if (o->pending_records >= (uint64_t)ins->ci->common.batch_records ||
        o->pending_bytes >= ins->ci->common.batch_bytes || ins->agent->phase != AGENT_RUNNING)
        flush_output(ins);
}

/* Hands the oldest pending batches to one encode job: up to batch_records records or
 * batch_bytes bytes (one batch at least), not everything pending. A burst (a DogStatsD flush
 * emits 10^4 records at once) is encoded job after job, each job's payloads delivered as it
 * ends, so only one job's batches and payloads are held beyond the batches still waiting. */
static void flush_output(struct rmr_instance *ins)
{
    struct output *o = ins->out;
    if (o->encoding || o->npending == 0)
        return;
    uint64_t max_records = (uint64_t)ins->ci->common.batch_records;
    size_t max_bytes = ins->ci->common.batch_bytes;
    uint32_t n = 0;
    uint64_t records = 0;
    size_t bytes = 0;
    do {
        records += o->pending[n].records;
        bytes += o->pending[n].bytes;
        n++;
    } while (n < o->npending && records < max_records && bytes < max_bytes);
    struct encode_job *job = calloc(1, sizeof *job);
    struct rmr_batch **batches = malloc(n * sizeof *batches);
    if (job == NULL || batches == NULL) {
        free(job);
        free(batches);
        log_write(RMR_LOG_ERROR, ins->ci->name, "cannot encode: out of memory");
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        batches[i] = o->pending[i].b;
    o->npending -= n;
    memmove(o->pending, o->pending + n, o->npending * sizeof *o->pending);
    if (o->npending > 0)
        o->oldest_ms = o->pending[0].arrived_ms;
    job->ins = ins;
    job->batches = batches;
    job->nbatches = n;
    job->nrecords = records;
    job->req.data = job;
    o->pending_records -= records;
    o->encoding_bytes = bytes; /* still held until encode_done() */
    o->pending_bytes -= bytes;
    o->encoding = 1;
    int rc = uv_queue_work(&ins->agent->loop, &job->req, encode_work, encode_done);
    if (rc < 0) {
        /* Cannot happen with a valid loop and callbacks; keep the accounting honest. */
        o->encoding = 0;
        o->encoding_bytes = 0;
        counter_add(ins, "records_dropped", "encode_error", NULL, job->nrecords);
        for (uint32_t i = 0; i < job->nbatches; i++)
            batch_unref(job->batches[i]);
        free(job->batches);
        free(job);
    }
}

static void on_flush_timer(uv_timer_t *t)
{
    struct rmr_instance *ins = t->data;
    struct output *o = ins->out;
    if (o->npending > 0 &&
        uv_now(&ins->agent->loop) - o->oldest_ms >= (uint64_t)ins->ci->common.batch_timeout_ms)
        flush_output(ins);
}

int pipeline_output_init(struct agent *a, struct rmr_instance *ins)
{
    struct output *o = calloc(1, sizeof *o);
    if (o == NULL)
        return RMR_ENOMEM;
    ins->out = o;
    delivery_init(&o->delivery, &a->loop, ins, &ins->ci->common);
    uv_timer_init(&a->loop, &o->flush_timer);
    o->flush_timer.data = ins;
    /* Check age at a quarter of the timeout so a batch waits at most 1.25x batch_timeout. */
    uint64_t tick = (uint64_t)ins->ci->common.batch_timeout_ms / 4;
    if (tick == 0)
        tick = 1;
    uv_timer_start(&o->flush_timer, on_flush_timer, tick, tick);
    /* The timer alone must not keep the loop alive at shutdown. */
    uv_unref((uv_handle_t *)&o->flush_timer);
    return 0;
}

/* The output is freed when the last of its handles has closed (libuv runs close callbacks
 * in no order the code may rely on). */
static void free_output(uv_handle_t *h)
{
    struct rmr_instance *ins = h->data;
    struct output *o = ins != NULL ? ins->out : NULL;
    if (o == NULL || --o->open_handles > 0)
        return;
    ins->out = NULL;
    free(o);
}

void pipeline_output_close(struct rmr_instance *ins)
{
    struct output *o = ins->out;
    if (o == NULL)
        return;
    for (uint32_t i = 0; i < o->npending; i++) {
        counter_add(ins, "records_dropped", "shutdown", NULL, o->pending[i].records);
        batch_unref(o->pending[i].b);
    }
    free(o->pending);
    o->pending = NULL;
    o->npending = 0;
    delivery_release(&o->delivery);
    o->open_handles = 1;
    if (o->delivery.timer_ready) {
        o->open_handles++;
        o->delivery.timer_ready = 0;
        o->delivery.retry_timer.data = ins;
        uv_close((uv_handle_t *)&o->delivery.retry_timer, free_output);
    }
    uv_timer_stop(&o->flush_timer);
    uv_close((uv_handle_t *)&o->flush_timer, free_output);
}

/* ---- emit ------------------------------------------------------------------------------ */

static int accepts_schema(const struct rmr_plugin *desc, const char *schema)
{
    if (schema == NULL)
        return 1;
    if (desc->schemas == NULL)
        return 0;
    for (const char *const *s = desc->schemas; *s != NULL; s++)
        if (strcmp(*s, schema) == 0)
            return 1;
    return 0;
}

int pipeline_schema_wanted(const struct agent *a, const char *schema)
{
    for (uint32_t i = 0; i < a->ninstances; i++) {
        const struct rmr_instance *o = &a->instances[i];
        if (o->kind == RMR_KIND_OUTPUT && o->out != NULL && accepts_schema(o->desc, schema))
            return 1;
    }
    return 0;
}

static void count_kinds(const struct rmr_batch *b, uint64_t kinds[RMR_REC_KIND_MAX + 1])
{
    memset(kinds, 0, sizeof(uint64_t) * (RMR_REC_KIND_MAX + 1));
    for (uint32_t i = 0; i < b->count; i++)
        if (b->recs[i].kind <= RMR_REC_KIND_MAX)
            kinds[b->recs[i].kind]++;
}

int pipeline_emit(struct rmr_instance *ins, struct rmr_batch *b)
{
    struct agent *a = ins->agent;
    uint32_t n = batch_count(b);
    if (n == 0) {
        batch_unref(b);
        return 0;
    }
    if (ins->kind != RMR_KIND_INPUT || ins->phase == PHASE_STOPPED || a->phase >= AGENT_DRAINING) {
        counter_add(ins, "records_dropped", "stopped", NULL, n);
        batch_unref(b);
        return RMR_ESTOPPED;
    }
    counter_add(ins, "records_in", NULL, NULL, n);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    batch_stamp_time(b, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    if (ins->ntags > 0 && batch_merge_tags(b, ins->tags, ins->ntags) < 0) {
        log_write(RMR_LOG_WARN, ins->ci->name,
                  "cannot add global tags to %u records: out of memory; dropping them", n);
        counter_add(ins, "records_dropped", "no_memory", NULL, n);
        batch_unref(b);
        return RMR_ENOMEM;
    }
    /* Task-wide tags that platform inputs published go to schema-less records only: labelled
     * batches name their tags in their own ecosystem's words. Merged after the configured
     * tags, so those (and the record's own) win on a shared key. */
    if (b->schema == NULL && a->published_tags.ntags > 0 &&
        batch_merge_tags(b, a->published_tags.tags, a->published_tags.ntags) < 0) {
        log_write(RMR_LOG_WARN, ins->ci->name,
                  "cannot add task tags to %u records: out of memory; dropping them", n);
        counter_add(ins, "records_dropped", "no_memory", NULL, n);
        batch_unref(b);
        return RMR_ENOMEM;
    }
    batch_seal(b);
    b->origin = ins;

    uint64_t kinds[RMR_REC_KIND_MAX + 1];
    count_kinds(b, kinds);
    size_t bytes = batch_bytes(b);
    uint32_t routed = 0, full = 0;
    for (uint32_t i = 0; i < a->ninstances; i++) {
        struct rmr_instance *oi = &a->instances[i];
        struct output *o = oi->out;
        if (oi->kind != RMR_KIND_OUTPUT || o == NULL || !accepts_schema(oi->desc, b->schema))
            continue;
        routed++;
        uint64_t shipped = 0;
        for (uint32_t k = 1; k <= RMR_REC_KIND_MAX; k++) {
            if (kinds[k] == 0)
                continue;
            if (oi->desc->accepts & RMR_REC_BIT(k))
                shipped += kinds[k];
            else
                counter_add(oi, "records_dropped", "unsupported_kind", record_kind_name(k),
                            kinds[k]);
        }
        if (shipped == 0)
            continue;
        uint64_t limit = oi->ci->common.queue_bytes;
        /* The bound holds everything the output keeps: batches waiting, batches being
         * encoded and encoded payloads. The first batch of an empty output always fits. */
        int holding = o->npending > 0 || o->encoding || o->delivery.count > 0;
        if (pipeline_queued_bytes(o) + bytes > limit && holding) {
            /* The batch's kind decides for auto: logs or spans block, the rest drop. */
            uint32_t kind = kinds[RMR_REC_LOG]    ? RMR_REC_LOG
                            : kinds[RMR_REC_SPAN] ? RMR_REC_SPAN
                                                  : RMR_REC_METRIC;
            if (when_full_drops(oi, kind)) {
                size_t need = o->pending_bytes + o->encoding_bytes + bytes;
                delivery_make_room(&o->delivery, need < limit ? need : limit);
            }
            if (pipeline_queued_bytes(o) + bytes > limit) {
                if (when_full_drops(oi, kind)) {
                    log_write(RMR_LOG_WARN, oi->ci->name,
                              "queue full at %llu bytes (queue_bytes); dropping %llu records",
                              (unsigned long long)limit, (unsigned long long)shipped);
                    for (uint32_t k = 1; k <= RMR_REC_KIND_MAX; k++)
                        if (kinds[k] > 0 && (oi->desc->accepts & RMR_REC_BIT(k)))
                            counter_add(oi, "records_dropped", "queue_full", record_kind_name(k),
                                        kinds[k]);
                } else {
                    log_write(RMR_LOG_WARN, oi->ci->name,
                              "queue full at %llu bytes (queue_bytes); refusing new records "
                              "until it drains (when_full = block)",
                              (unsigned long long)limit);
                    counter_add(oi, "records_blocked", NULL, NULL, shipped);
                    if (!o->blocked) {
                        o->blocked = 1;
                        if (a->blocked_outputs++ == 0) {
                            log_write(RMR_LOG_WARN, oi->ci->name,
                                      "pausing datagram inputs until the queue drains");
                            host_net_pause_inputs(a, 1);
                        }
                    }
                }
                full++;
                continue;
            }
        }
        if (o->npending == o->cap) {
            uint32_t cap = o->cap ? o->cap * 2 : 8;
            struct pending_batch *p = realloc(o->pending, cap * sizeof *p);
            if (p == NULL) {
                counter_add(oi, "records_dropped", "no_memory", NULL, shipped);
                continue;
            }
            o->pending = p;
            o->cap = cap;
        }
        uint64_t now_ms = uv_now(&a->loop);
        if (o->npending == 0)
            o->oldest_ms = now_ms;
        batch_ref(b);
        o->pending[o->npending++] = (struct pending_batch){b, shipped, bytes, now_ms};
        o->pending_records += shipped;
        o->pending_bytes += bytes;
        counter_add(oi, "records_in", NULL, NULL, shipped);
        if (o->pending_records >= (uint64_t)oi->ci->common.batch_records ||
            o->pending_bytes >= oi->ci->common.batch_bytes)
            flush_output(oi);
    }
    if (routed == 0)
        counter_add(ins, "records_dropped", "no_output", NULL, n);
    batch_unref(b);
    return routed > 0 && full == routed ? RMR_EFULL : 0;
}

void pipeline_output_drained(struct rmr_instance *ins)
{
    struct output *o = ins->out;
    struct agent *a = ins->agent;
    if (o == NULL || !o->blocked || pipeline_queued_bytes(o) > ins->ci->common.queue_bytes / 2)
        return;
    o->blocked = 0;
    if (--a->blocked_outputs == 0) {
        log_write(RMR_LOG_INFO, ins->ci->name, "queue drained; resuming datagram inputs");
        host_net_pause_inputs(a, 0);
    }
}

void pipeline_flush_all(struct agent *a)
{
    for (uint32_t i = 0; i < a->ninstances; i++)
        if (a->instances[i].out != NULL)
            flush_output(&a->instances[i]);
}

int pipeline_idle(const struct agent *a)
{
    for (uint32_t i = 0; i < a->ninstances; i++) {
        const struct output *o = a->instances[i].out;
        if (o != NULL && (o->npending > 0 || o->encoding || !delivery_idle(&o->delivery)))
            return 0;
    }
    return 1;
}
