/* Fuzzes the dogstatsd hot path (plugins/inputs/dogstatsd parse.c and agg.c): whatever bytes
 * come in, dsd_parse() accepts or refuses each message with a reason and never reads outside
 * it, and the aggregator turns a packet into records that are well formed, without crashing,
 * leaking or growing past its bounds.
 *
 * The input is one packet. The first byte picks the aggregator's options (origin detection,
 * counts_as_count, a tiny state limit, a tiny context limit); the packet goes in twice, in two
 * buckets, then a final flush emits everything. A minimal host stands in for the agent: its
 * batches check every record the way the agent's would (strings readable to their length,
 * sketch keys ascending) and drop it, and its tagger knows the container "abc" and the entity
 * "pod1". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <remora/plugin.h>

#include "../../plugins/inputs/dogstatsd/agg.h"
#include "../../plugins/inputs/dogstatsd/parse.h"

#define NS 1000000000LL

struct fz_batch {
    struct rmr_handle h;
    uint32_t count;
};

struct fz_instance {
    struct rmr_handle h;
};

static volatile uint8_t sink;

/* Touches every byte, so the sanitizer catches a string that is shorter than its length. */
static void touch(const char *p, uint32_t len)
{
    if (len > 0 && p == NULL)
        abort();
    for (uint32_t i = 0; i < len; i++)
        sink ^= (uint8_t)p[i];
}

static void touch_tags(const struct rmr_tag *tags, uint32_t n)
{
    if (n > 0 && tags == NULL)
        abort();
    for (uint32_t i = 0; i < n; i++) {
        touch(tags[i].key.ptr, tags[i].key.len);
        touch(tags[i].value.ptr, tags[i].value.len);
    }
}

static rmr_batch_t *fz_batch_new(rmr_instance_t *ins, const char *schema);
static void fz_batch_free(rmr_batch_t *b);
static int fz_batch_add(rmr_batch_t *b, uint32_t kind, const void *rec);
static int fz_emit(rmr_instance_t *ins, rmr_batch_t *b);
static int fz_tagger_lookup(rmr_instance_t *ins, const char *entity, size_t len, rmr_tagger_cb cb,
                            void *arg);

static const struct rmr_host_api fz_api = {
    .struct_size = sizeof(struct rmr_host_api),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .batch_new = fz_batch_new,
    .batch_free = fz_batch_free,
    .batch_add = fz_batch_add,
    .emit = fz_emit,
    .tagger_lookup = fz_tagger_lookup,
};

static rmr_batch_t *fz_batch_new(rmr_instance_t *ins, const char *schema)
{
    struct fz_batch *b = calloc(1, sizeof *b);
    if (b != NULL)
        b->h.host = &fz_api;
    return (rmr_batch_t *)b;
}

static void fz_batch_free(rmr_batch_t *b)
{
    free(b);
}

static int fz_batch_add(rmr_batch_t *batch, uint32_t kind, const void *rec)
{
    struct fz_batch *b = (struct fz_batch *)batch;
    if (kind == RMR_REC_METRIC) {
        const struct rmr_metric *m = rec;
        if (m->name.len == 0 || m->type < RMR_METRIC_GAUGE || m->type > RMR_METRIC_DISTRIBUTION)
            abort();
        touch(m->name.ptr, m->name.len);
        touch(m->host.ptr, m->host.len);
        touch_tags(m->tags, m->ntags);
        if (m->type == RMR_METRIC_DISTRIBUTION) {
            const struct rmr_sketch *sk = m->sketch;
            if (sk == NULL || sk->count <= 0 || sk->min > sk->max)
                abort();
            for (uint32_t i = 0; i < sk->nbins; i++)
                if (sk->counts[i] == 0 || (i > 0 && sk->keys[i] <= sk->keys[i - 1]))
                    abort();
        } else if (m->value != m->value) {
            abort(); /* NaN never leaves the aggregator */
        }
    } else if (kind == RMR_REC_EVENT) {
        const struct rmr_event *e = rec;
        touch(e->title.ptr, e->title.len);
        touch(e->text.ptr, e->text.len);
        touch(e->host.ptr, e->host.len);
        touch(e->aggregation_key.ptr, e->aggregation_key.len);
        touch(e->source_type.ptr, e->source_type.len);
        touch(e->alert_type.ptr, e->alert_type.len);
        touch_tags(e->tags, e->ntags);
        if (e->title.len == 0)
            abort();
    } else if (kind == RMR_REC_CHECK) {
        const struct rmr_check *c = rec;
        touch(c->name.ptr, c->name.len);
        touch(c->host.ptr, c->host.len);
        touch(c->message.ptr, c->message.len);
        touch_tags(c->tags, c->ntags);
        if (c->status > RMR_CHECK_UNKNOWN || c->name.len == 0)
            abort();
    } else {
        abort();
    }
    /* A small bound, so the aggregator's "batch full" path runs too. */
    if (b->count >= 64)
        return RMR_ENOMEM;
    b->count++;
    return 0;
}

static int fz_emit(rmr_instance_t *ins, rmr_batch_t *b)
{
    free(b);
    return 0;
}

static int fz_tagger_lookup(rmr_instance_t *ins, const char *entity, size_t len, rmr_tagger_cb cb,
                            void *arg)
{
    static const struct rmr_tag ctags[] = {
        {{"container_name", 14, 0}, {"web", 3, 0}},
        {{"env", 3, 0}, {"prod", 4, 0}},
    };
    static const struct rmr_tag ptags[] = {{{"pod", 3, 0}, {"p1", 2, 0}}};
    touch(entity, (uint32_t)len);
    if (len == 3 && memcmp(entity, "abc", 3) == 0) {
        cb(arg, ctags, 2);
        return 0;
    }
    if (len == 4 && memcmp(entity, "pod1", 4) == 0) {
        cb(arg, ptags, 1);
        return 0;
    }
    return RMR_ENOENT;
}

static void fuzz_parser(const uint8_t *data, size_t size)
{
    /* Each line on its own, in a buffer of exactly its length. */
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        char *line = malloc(n > 0 ? n : 1);
        memcpy(line, p, n);
        struct dsd_msg msg;
        enum dsd_error e = dsd_parse(line, n, &msg);
        if (e >= DSD_E_COUNT)
            abort();
        if (e == DSD_E_NONE && msg.kind == DSD_MSG_METRIC) {
            const struct dsd_metric *m = &msg.u.metric;
            if (m->name.len == 0 || m->values.len == 0 || m->nvalues == 0 || !(m->rate > 0))
                abort();
            struct dsd_span rest = m->values, tag;
            double v;
            uint32_t k = 0;
            if (m->type != DSD_SET)
                while (dsd_values_next(&rest, &v))
                    k++;
            if (m->type != DSD_SET && k != m->nvalues)
                abort(); /* what the parser accepted walks to the same count */
            rest = m->tags;
            while (dsd_tags_next(&rest, &tag))
                touch(tag.ptr, tag.len);
        } else if (e == DSD_E_NONE && msg.kind == DSD_MSG_EVENT) {
            char *buf = malloc(msg.u.event.text.len + 1);
            size_t u = dsd_unescape(msg.u.event.text, buf, 0);
            if (u > msg.u.event.text.len)
                abort();
            touch(buf, (uint32_t)u);
            free(buf);
        }
        free(line);
        p = nl != NULL ? nl + 1 : end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t opts = data[0];
    data++;
    size--;
    fuzz_parser(data, size);

    struct fz_instance inst = {{&fz_api}};
    rmr_instance_t *ins = (rmr_instance_t *)&inst;
    struct dsd_agg_config cfg;
    static const char *const aggs[] = {"max", "min", "median", "avg", "sum", "count", NULL};
    static const double pcts[] = {0, 0.5, 0.95, 1};
    dsd_agg_config_default(&cfg);
    cfg.origin_detection = opts & 1;
    cfg.counts_as_count = (opts >> 1) & 1;
    if (opts & 4)
        cfg.state_limit_bytes = 256;
    if (opts & 8)
        cfg.max_contexts = 3;
    if (opts & 16) {
        cfg.aggregates = aggs;
        cfg.percentiles = pcts;
        cfg.npercentiles = 4;
    }
    cfg.expiry_s = (opts & 32) ? 5 : 300;
    struct dsd_agg *a = dsd_agg_new(ins, &cfg);
    if (a == NULL)
        abort();
    char *pkt = malloc(size > 0 ? size : 1);
    memcpy(pkt, data, size);
    int64_t t0 = 1767225600LL * NS;
    dsd_agg_packet(a, pkt, size, t0 + NS);
    dsd_agg_packet(a, pkt, size, t0 + 12 * NS); /* the next bucket: a roll in the packet path */
    (void)dsd_agg_flush(a, t0 + 15 * NS, 0);
    dsd_agg_packet(a, pkt, size, t0 + 200 * NS);
    (void)dsd_agg_flush(a, t0 + 205 * NS, 1);
    struct dsd_agg_stats st;
    dsd_agg_stats(a, &st);
    if (st.contexts_live > cfg.max_contexts)
        abort();
    const char *lm;
    size_t ll;
    (void)dsd_agg_last_error(a, &lm, &ll);
    touch(lm, (uint32_t)ll);
    free(pkt);
    dsd_agg_free(a);
    return 0;
}
