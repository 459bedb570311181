/* remora SDK: the record model.
 *
 * A batch (rmr_batch_t, opaque) is an arena of typed records with one optional schema label.
 * Inputs fill the structs below and add them to a batch through the host (plugin.h); the host
 * copies every string and array into the batch's arena, interns strings per batch, and sorts and
 * deduplicates tag sets, so a plugin's own buffers may be reused as soon as the add returns.
 * Outputs read records back into the same structs ("views"): every pointer in a view points
 * into the batch and stays valid while the output holds the batch.
 *
 * ABI rules: every struct that crosses the ABI starts with uint32_t struct_size, which the
 * caller sets to sizeof(struct ...) as it was compiled. Structs only ever grow at the end;
 * members are fixed-width; enums are stored as uint32_t. A host reading a smaller struct treats
 * the missing members as zero; a host writing a view writes at most struct_size bytes.
 */
#ifndef REMORA_RECORD_H
#define REMORA_RECORD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A string as pointer and length; never assumed to be NUL-terminated. A NULL pointer with
 * length 0 is the empty (absent) string. Strings in views are NUL-terminated as a courtesy
 * (the arena stores a terminator), but wire data a plugin receives never is. */
struct rmr_str {
    const char *ptr;
    uint32_t len;
    uint32_t reserved_;
};

/* Builds an rmr_str from a NUL-terminated literal or string (NULL gives the empty string). */
#define RMR_STR(s) rmr_str_c(s)
static inline struct rmr_str rmr_str_c(const char *s)
{
    struct rmr_str r = {s, 0, 0};
    if (s != NULL)
        while (s[r.len] != '\0')
            r.len++;
    return r;
}
static inline struct rmr_str rmr_str_n(const char *s, size_t n)
{
    struct rmr_str r = {s, (uint32_t)n, 0};
    return r;
}

/* A tag: key and value. A bare tag (DogStatsD "#foo") has an empty value and is rendered as
 * the key alone. Tag sets in views are sorted by key, then value, and hold no duplicate pair. */
struct rmr_tag {
    struct rmr_str key;
    struct rmr_str value;
};

enum rmr_value_type {
    RMR_VAL_NONE = 0,
    RMR_VAL_STR = 1,
    RMR_VAL_INT = 2,    /* int64_t in .i */
    RMR_VAL_UINT = 3,   /* uint64_t in .u */
    RMR_VAL_DOUBLE = 4, /* double in .d */
    RMR_VAL_BOOL = 5,   /* 0 or 1 in .i */
};

/* A typed value for fields and attributes. type is an enum rmr_value_type. */
struct rmr_value {
    uint32_t type;
    uint32_t str_len; /* RMR_VAL_STR only */
    union {
        const char *str; /* RMR_VAL_STR only */
        int64_t i;
        uint64_t u;
        double d;
    } v;
};

/* A named typed value: a field of a metric point or object, a log attribute, a span metric. */
struct rmr_field {
    struct rmr_str key;
    struct rmr_value value;
};

enum rmr_record_kind {
    RMR_REC_METRIC = 1,
    RMR_REC_LOG = 2,
    RMR_REC_SPAN = 3,
    RMR_REC_EVENT = 4,
    RMR_REC_CHECK = 5,  /* a service check */
    RMR_REC_OBJECT = 6, /* an inventory record: container, task, pod */
};
#define RMR_REC_KIND_MAX 6
/* Bit for a kind in masks such as rmr_plugin.accepts. */
#define RMR_REC_BIT(kind) (1u << (kind))
#define RMR_REC_ALL                                                                                \
    (RMR_REC_BIT(RMR_REC_METRIC) | RMR_REC_BIT(RMR_REC_LOG) | RMR_REC_BIT(RMR_REC_SPAN) |          \
     RMR_REC_BIT(RMR_REC_EVENT) | RMR_REC_BIT(RMR_REC_CHECK) | RMR_REC_BIT(RMR_REC_OBJECT))

enum rmr_metric_type {
    RMR_METRIC_GAUGE = 1,        /* last value at time_ns */
    RMR_METRIC_COUNT = 2,        /* delta over the interval ending at time_ns */
    RMR_METRIC_RATE = 3,         /* per-second rate over interval_ms */
    RMR_METRIC_DISTRIBUTION = 4, /* a DDSketch-compatible sketch in .sketch */
};

/* A DDSketch in Datadog's encoding (gamma 1.015625, key offset 1338): bin keys with counts,
 * plus exact count, min, max and sum. keys are ascending and unique. */
struct rmr_sketch {
    uint32_t struct_size;
    uint32_t nbins;
    int64_t count;
    double min;
    double max;
    double sum;
    const int32_t *keys;
    const uint32_t *counts;
};

/* A metric point. With nfields == 0 it is one value named name. With fields it is a
 * multi-field point (a line-protocol measurement named name, such as Datakit's
 * docker_containers); value is then unused. */
struct rmr_metric {
    uint32_t struct_size;
    uint32_t type; /* enum rmr_metric_type */
    struct rmr_str name;
    double value;
    int64_t time_ns;     /* wall clock, ns since the epoch; 0 = stamped by the host at emit */
    int64_t interval_ms; /* COUNT and RATE: the window the value covers */
    struct rmr_str unit; /* UCUM-style unit ("By", "s", "%"), may be empty */
    struct rmr_str host; /* a per-record hostname override (DogStatsD "host:"), may be empty */
    const struct rmr_tag *tags;
    uint32_t ntags;
    uint32_t nfields;
    const struct rmr_field *fields;
    const struct rmr_sketch *sketch; /* DISTRIBUTION only */
};

/* A log line. status is the level as Datadog and Datakit spell it (info, warn, error, ...). */
struct rmr_log {
    uint32_t struct_size;
    uint32_t reserved_;
    int64_t time_ns;
    struct rmr_str message;
    struct rmr_str status;
    struct rmr_str source;
    struct rmr_str service;
    struct rmr_str host;
    uint64_t trace_id_hi; /* 0 when the log carries no trace */
    uint64_t trace_id_lo;
    uint64_t span_id;
    const struct rmr_tag *tags;
    uint32_t ntags;
    uint32_t nattrs;
    const struct rmr_field *attrs;
};

/* A span: the union of ddtrace v0.4/v0.5 and OpenTelemetry spans. trace_id_hi holds the high
 * 64 bits of a 128-bit id (ddtrace's _dd.p.tid), 0 for 64-bit ids. */
struct rmr_span {
    uint32_t struct_size;
    int32_t error;
    uint64_t trace_id_hi;
    uint64_t trace_id_lo;
    uint64_t span_id;
    uint64_t parent_id;
    struct rmr_str name;
    struct rmr_str service;
    struct rmr_str resource;
    struct rmr_str type;
    int64_t start_ns;
    int64_t duration_ns;
    const struct rmr_tag *meta; /* string attributes; global tags join here, not overriding */
    uint32_t nmeta;
    uint32_t nmetrics;
    const struct rmr_field *metrics; /* numeric attributes (_sampling_priority_v1, ...) */
};

enum rmr_event_priority { RMR_EVENT_NORMAL = 0, RMR_EVENT_LOW = 1 };

/* An event (DogStatsD "_e"). alert_type: info, warning, error or success. */
struct rmr_event {
    uint32_t struct_size;
    uint32_t priority; /* enum rmr_event_priority */
    int64_t time_ns;
    struct rmr_str title;
    struct rmr_str text;
    struct rmr_str host;
    struct rmr_str aggregation_key;
    struct rmr_str source_type;
    struct rmr_str alert_type;
    const struct rmr_tag *tags;
    uint32_t ntags;
    uint32_t reserved_;
};

enum rmr_check_status {
    RMR_CHECK_OK = 0,
    RMR_CHECK_WARNING = 1,
    RMR_CHECK_CRITICAL = 2,
    RMR_CHECK_UNKNOWN = 3,
};

/* A service check (DogStatsD "_sc", ecs_fargate's fargate_check). */
struct rmr_check {
    uint32_t struct_size;
    uint32_t status; /* enum rmr_check_status */
    int64_t time_ns;
    struct rmr_str name;
    struct rmr_str host;
    struct rmr_str message;
    const struct rmr_tag *tags;
    uint32_t ntags;
    uint32_t reserved_;
};

/* An inventory record: a class (docker_containers, ecs_task, kubelet_pod), the object's name,
 * tags and typed fields. */
struct rmr_object {
    uint32_t struct_size;
    uint32_t reserved_;
    int64_t time_ns;
    struct rmr_str cls;
    struct rmr_str name;
    const struct rmr_tag *tags;
    uint32_t ntags;
    uint32_t nfields;
    const struct rmr_field *fields;
};

/* Well-known schema labels (DESIGN.md 4). A batch without a label holds records every output
 * renders its own way; a labelled batch goes only to outputs that accept the label. */
#define RMR_SCHEMA_DATADOG "datadog"
#define RMR_SCHEMA_GUANCE  "guance"
#define RMR_SCHEMA_ELASTIC "elastic"

#ifdef __cplusplus
}
#endif
#endif
