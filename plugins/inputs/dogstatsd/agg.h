/* plugins/inputs/dogstatsd: parsing and aggregation, the hot path, behind one small API that
 * the plugin glue (dogstatsd.c: config, listeners, threads, timers) uses.
 *
 * A dsd_agg takes whole packets (many messages split on "\n", "\r\n" too), parses every
 * message without a per-metric malloc, canonicalises tags (sorted, deduplicated; the "host:"
 * tag becomes the record's host; a "|c:" container id brings that container's tags from the
 * tagger), and aggregates metrics in 10 s buckets into contexts (name + canonical tags + host)
 * exactly as the Datadog Agent does (PROTOCOLS.md 4.3): counters as RATE sum/interval (or
 * COUNT), gauges last value, sets distinct count, histograms and timers into
 * .max/.median/.avg/.count/.95percentile (configurable), distributions into a DDSketch
 * (plugins/lib/ddsketch). Metrics with "|T" bypass aggregation; events and service checks
 * pass through. dsd_agg_flush() emits closed buckets and what passed through.
 *
 * Threads: dsd_agg_packet(), dsd_agg_flush(), dsd_agg_detach() and dsd_agg_finish() must not
 * run concurrently on one dsd_agg (the glue holds a mutex: the reader thread parses, the loop
 * thread flushes); dsd_agg_build() may run concurrently with dsd_agg_packet(). None blocks.
 */
#ifndef REMORA_DOGSTATSD_AGG_H
#define REMORA_DOGSTATSD_AGG_H

#include <stddef.h>
#include <stdint.h>

#include <remora/plugin.h>

/* Why a message was refused; the names are the counter reasons ("no_type", ...). */
enum dsd_error {
    DSD_E_NONE = 0,
    DSD_E_NO_NAME,       /* ":1|c" */
    DSD_E_NO_VALUE,      /* "a:|c" */
    DSD_E_NO_TYPE,       /* "a:1", "a:1|" */
    DSD_E_BAD_TYPE,      /* "a:1|x" */
    DSD_E_BAD_VALUE,     /* "a:abc|g" */
    DSD_E_BAD_RATE,      /* "|@abc", "|@0", "|@-1" */
    DSD_E_BAD_TIMESTAMP, /* "|Tabc", "|T0" */
    DSD_E_BAD_EVENT,     /* a malformed "_e{...}" */
    DSD_E_BAD_CHECK,     /* a malformed "_sc|..." */
    DSD_E_TOO_LONG,      /* a name, tag set or message beyond the parser's bounds */
    DSD_E_COUNT
};
/* "no_name", "no_value", ... */
const char *dsd_error_name(enum dsd_error e);

/* Metric types as counted in the self-metrics. */
enum dsd_mtype {
    DSD_GAUGE = 0,
    DSD_COUNT,
    DSD_HISTOGRAM,
    DSD_TIMING,
    DSD_SET,
    DSD_DISTRIBUTION,
    DSD_MTYPE_COUNT
};
/* "gauge", "count", "histogram", "timing", "set", "distribution". */
const char *dsd_mtype_name(enum dsd_mtype t);

struct dsd_agg_config {
    uint32_t bucket_s;       /* 10 */
    uint32_t expiry_s;       /* idle contexts forgotten after this; 300 */
    uint32_t max_contexts;   /* live contexts; beyond: the sample is dropped and counted */
    int32_t counts_as_count; /* 0: counters flushed as RATE sum/interval (Datadog); 1: COUNT */
    /* histogram_aggregates: any of "max", "median", "avg", "count", "min", "sum" (Datadog's
     * defaults: max, median, avg, count); NULL-terminated, borrowed until free. */
    const char *const *aggregates;
    /* histogram_percentiles in (0, 1) (default 0.95 -> ".95percentile"), at most 16. */
    const double *percentiles;
    uint32_t npercentiles;
    int32_t origin_detection; /* look "|c:" container ids up in the tagger (default 1) */
    /* Added by the hot path: bytes that histogram samples and set members may hold in all
     * (0: the default, 1 MiB, 65,536 samples of 16 bytes per bucket; each histogram may take
     * its fair share). Up to it medians and percentiles are the Agent's, exact. Beyond it a
     * histogram keeps exact count, sum, avg, min and max, and its median and percentiles come
     * from a uniform sample of the bucket (reservoir sampling); a set stops adding members.
     * Both are counted in samples_capped. */
    uint64_t state_limit_bytes;
    /* dogstatsd_tags (DD_DOGSTATSD_TAGS): added to every message's tags before its context is
     * keyed, as the Agent appends them (a tag sent and added is one tag, so a series sent with
     * it and without it is one context); metrics, events and service checks; at most
     * DSD_MAX_EXTRA_TAGS, copied. */
    const struct rmr_tag *extra_tags;
    uint32_t nextra_tags;
};
#define DSD_MAX_EXTRA_TAGS 64
/* Fills cfg with the Datadog Agent's defaults. */
void dsd_agg_config_default(struct dsd_agg_config *cfg);

struct dsd_agg_stats {
    uint64_t packets;
    uint64_t metrics[DSD_MTYPE_COUNT]; /* samples accepted by type (a multi-value line: each) */
    uint64_t events, service_checks;
    uint64_t timestamped;         /* metrics with |T, passed through */
    uint64_t errors[DSD_E_COUNT]; /* messages refused by reason */
    uint64_t contexts_live;       /* now */
    uint64_t contexts_dropped;    /* samples dropped because max_contexts was reached */
    uint64_t contexts_expired;
    uint64_t records_flushed;
    /* Added by the hot path. */
    uint64_t timestamped_unsupported; /* "|T" on h, ms, s, d: the Agent drops them too */
    uint64_t values_nonfinite;        /* NaN or Inf values ignored, as the Agent ignores them */
    uint64_t samples_capped;          /* histogram samples or set members beyond the bounds */
    uint64_t records_dropped;         /* records the host refused to take into a batch */
    uint64_t contexts_aliases;        /* now: origin-keyed entries pointing at contexts */
};

struct dsd_agg;

/* Returns owned, or NULL (bad config or no memory). ins is used to build batches, look the
 * tagger up and log; borrowed until free. */
struct dsd_agg *dsd_agg_new(rmr_instance_t *ins, const struct dsd_agg_config *cfg);
void dsd_agg_free(struct dsd_agg *a);

/* Parses and aggregates one packet received at now_ns (wall clock, ns). Bad messages are
 * counted by reason (and logged by the glue, rate-limited); the rest of the packet is still
 * used. */
void dsd_agg_packet(struct dsd_agg *a, const char *data, size_t len, int64_t now_ns);

/* Emits (rmr_emit) every bucket that ended at or before now_ns, the events, service checks
 * and timestamped metrics received since the last flush, and forgets contexts idle for
 * expiry_s. final: the open bucket too (at stop). Returns the records emitted, or an error
 * from the host (records are counted as dropped by the host then). */
int dsd_agg_flush(struct dsd_agg *a, int64_t now_ns, int final);

/* dsd_agg_flush() in three steps, so that the glue holds its lock only where needed:
 *   dsd_agg_detach()  under the lock: closes the buckets that ended at or before now_ns (all
 *                     when final), moving each sampled context's value or state (a
 *                     histogram's samples, a set, a sketch) out of the context into a list,
 *                     and takes that list and the pass-through batches; copies and pointer
 *                     moves only: no record is built and nothing is emitted.
 *   dsd_agg_build()   WITHOUT the lock (dsd_agg_packet() may run meanwhile): builds the
 *                     records of what the detach took and emits them; returns as
 *                     dsd_agg_flush().
 *   dsd_agg_finish()  under the lock: adds the build's counters and forgets idle contexts.
 * One flush at a time (detach, build and finish of one flush before the next detach).
 *
 * dsd_agg_build_some() is dsd_agg_build() in steps: each emits the pass-through batches still
 * held (events, service checks, timestamped metrics: the first step does), then builds the
 * contexts the detach took until it has built min_entries of them and either 1,024 records
 * (records go out as batches of 1,024 fill) or until rmr_mono_ns() reaches deadline_ns (read
 * every 16 contexts past min_entries; INT64_MAX: no deadline); it
 * sets *done to 0 and returns 0 while more is left, and the step that finishes sets *done to 1
 * and returns what dsd_agg_build() returns. The glue yields to the loop between steps, so the
 * output encodes (and frees) what a step emitted before the next is built. dsd_agg_detach_work()
 * is the number of contexts the last detach took. */
void dsd_agg_detach(struct dsd_agg *a, int64_t now_ns, int final);
int dsd_agg_build(struct dsd_agg *a);
int dsd_agg_build_some(struct dsd_agg *a, uint32_t min_entries, int64_t deadline_ns, int *done);
void dsd_agg_finish(struct dsd_agg *a, int64_t now_ns);

/* Test hook: the context buckets the last dsd_agg_detach() took. */
uint64_t dsd_agg_detach_work(const struct dsd_agg *a);

/* Counters so far (copied). */
void dsd_agg_stats(const struct dsd_agg *a, struct dsd_agg_stats *out);

/* Added by the hot path: the last refused message, for the glue's rate-limited log line.
 * Returns its reason (DSD_E_NONE when none was refused yet) and sets *msg and *len to its
 * first bytes (at most 96, as received: not NUL-terminated, may hold any byte), borrowed until
 * the next dsd_agg_packet(). */
enum dsd_error dsd_agg_last_error(const struct dsd_agg *a, const char **msg, size_t *len);
/* Messages refused so far, all reasons: one load, for the reader's per-datagram check. */
uint64_t dsd_agg_error_count(const struct dsd_agg *a);

#endif
