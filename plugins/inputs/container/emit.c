/* Datakit's docker_containers, rendered from normalized samples by tables.
 *
 * Datakit sends the same measurement twice per container (container_gather.go): as a metric
 * (tags and resource fields) and as an object (the same tags and fields, plus `age` and a
 * `message` holding the JSON of everything, class docker_containers, named by the container
 * id). The tables below name every tag and field once; the order of the field table is the
 * order Datakit adds them in (buildTopKVs). Which source made a sample does not matter here:
 * a source that cannot measure something leaves its CTR_HAS_* bit clear and the field out. */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"

/* ---- tables --------------------------------------------------------------------------------- */

/* A tag whose value is a string member of struct ctr_info; empty values are left out. */
struct tag_def {
    const char *key;
    size_t off; /* offsetof(struct ctr_info, member), a const char * */
};

static const struct tag_def tag_defs[] = {
    {"container_id", offsetof(struct ctr_info, id)},
    {"container_name", offsetof(struct ctr_info, name)},
    {"container_runtime_name", offsetof(struct ctr_info, runtime_name)},
    {"container_runtime", offsetof(struct ctr_info, runtime)},
    {"container_runtime_version", offsetof(struct ctr_info, runtime_version)},
    {"container_type", offsetof(struct ctr_info, type)},
    {"image", offsetof(struct ctr_info, image)},
    {"image_name", offsetof(struct ctr_info, image_name)},
    {"image_short_name", offsetof(struct ctr_info, image_short_name)},
    {"image_tag", offsetof(struct ctr_info, image_tag)},
    {"state", offsetof(struct ctr_info, state)},
};
#define NTAG_DEFS (sizeof tag_defs / sizeof tag_defs[0])

/* The C type of a struct ctr_stat member a field reads. */
enum field_kind {
    FK_DOUBLE, /* double, sent as a float */
    FK_I64,    /* int64_t, sent as an integer */
    FK_U32,    /* uint32_t, sent as an integer */
    FK_U64,    /* uint64_t, sent as an integer (clamped to INT64_MAX: line protocol's i) */
};

#define FD_NONZERO 0x1u /* left out when 0, as Datakit does for block I/O */

struct field_def {
    const char *key;
    uint32_t need;  /* CTR_HAS_* bits that must all be set */
    uint32_t kind;  /* enum field_kind */
    uint32_t flags; /* FD_* */
    size_t off;     /* offsetof(struct ctr_stat, member) */
};

static const struct field_def field_defs[] = {
    {"cpu_usage", CTR_HAS_CPU, FK_DOUBLE, 0, offsetof(struct ctr_stat, cpu_percent)},
    {"cpu_usage_millicores", CTR_HAS_CPU, FK_I64, 0, offsetof(struct ctr_stat, cpu_millicores)},
    {"cpu_numbers", CTR_HAS_CPUS, FK_U32, 0, offsetof(struct ctr_stat, online_cpus)},
    {"cpu_usage_base100", CTR_HAS_CPU | CTR_HAS_CPUS, FK_DOUBLE, 0,
     offsetof(struct ctr_stat, cpu_base100)},
    {"mem_usage", CTR_HAS_MEM, FK_U64, 0, offsetof(struct ctr_stat, mem_working_set)},
    {"network_bytes_rcvd", CTR_HAS_NET, FK_U64, 0, offsetof(struct ctr_stat, net_rx_bytes)},
    {"network_bytes_sent", CTR_HAS_NET, FK_U64, 0, offsetof(struct ctr_stat, net_tx_bytes)},
    {"block_read_byte", CTR_HAS_BLOCK, FK_U64, FD_NONZERO,
     offsetof(struct ctr_stat, block_read_bytes)},
    {"block_write_byte", CTR_HAS_BLOCK, FK_U64, FD_NONZERO,
     offsetof(struct ctr_stat, block_write_bytes)},
};
#define NFIELD_DEFS (sizeof field_defs / sizeof field_defs[0])

/* Object-only fields. */
#define FIELD_AGE     "age"     /* int seconds since the container started */
#define FIELD_MESSAGE "message" /* JSON of the object's tags and fields */
#define TAG_NAME      "name"    /* the object's name as Datakit's message spells it */

#define MAX_TAGS      (NTAG_DEFS + CTR_MAX_PLATFORM_TAGS)
#define MAX_FIELDS    (NFIELD_DEFS + 2)

/* ---- rendering ------------------------------------------------------------------------------ */

static const char *info_str(const struct ctr_info *ci, size_t off)
{
    const char *s;
    memcpy(&s, (const char *)ci + off, sizeof s);
    return s;
}

static uint32_t build_tags(const struct ctr_info *ci, struct rmr_tag *out)
{
    uint32_t n = 0;
    for (size_t i = 0; i < NTAG_DEFS; i++) {
        const char *v = info_str(ci, tag_defs[i].off);
        if (v == NULL || v[0] == '\0')
            continue;
        out[n++] = (struct rmr_tag){rmr_str_c(tag_defs[i].key), rmr_str_c(v)};
    }
    uint32_t np =
        ci->nplatform_tags < CTR_MAX_PLATFORM_TAGS ? ci->nplatform_tags : CTR_MAX_PLATFORM_TAGS;
    for (uint32_t i = 0; ci->platform_tags != NULL && i < np; i++) {
        const struct rmr_tag *t = &ci->platform_tags[i];
        if (t->key.len == 0 || t->value.len == 0)
            continue;
        out[n++] = *t;
    }
    return n;
}

static int64_t clamp_i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

static uint32_t build_fields(const struct ctr_stat *s, struct rmr_field *out)
{
    uint32_t n = 0;
    for (size_t i = 0; i < NFIELD_DEFS; i++) {
        const struct field_def *d = &field_defs[i];
        if ((s->has & d->need) != d->need)
            continue;
        const char *p = (const char *)s + d->off;
        struct rmr_value v = {.type = RMR_VAL_INT};
        switch ((enum field_kind)d->kind) {
        case FK_DOUBLE: {
            double x;
            memcpy(&x, p, sizeof x);
            if (!isfinite(x))
                continue;
            v.type = RMR_VAL_DOUBLE;
            v.v.d = x;
            break;
        }
        case FK_I64: memcpy(&v.v.i, p, sizeof v.v.i); break;
        case FK_U32: {
            uint32_t x;
            memcpy(&x, p, sizeof x);
            v.v.i = x;
            break;
        }
        case FK_U64: {
            uint64_t x;
            memcpy(&x, p, sizeof x);
            v.v.i = clamp_i64(x);
            break;
        }
        }
        if ((d->flags & FD_NONZERO) && (v.type == RMR_VAL_DOUBLE ? v.v.d == 0 : v.v.i == 0))
            continue;
        out[n++] = (struct rmr_field){rmr_str_c(d->key), v};
    }
    return n;
}

/* The object's message as Datakit builds it (pointutil.PointKVsToJSON): one flat JSON object
 * of every tag (strings, the object name as "name") and field (numbers), keys sorted as Go's
 * encoding/json sorts a map. Returns an owned string, or NULL when out of memory. */
static char *build_message(const char *name, const struct rmr_tag *tags, uint32_t ntags,
                           const struct rmr_field *fields, uint32_t nfields)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, TAG_NAME, json_string(name));
    for (uint32_t i = 0; i < ntags; i++)
        json_object_setn_new(o, tags[i].key.ptr, tags[i].key.len,
                             json_stringn(tags[i].value.ptr, tags[i].value.len));
    for (uint32_t i = 0; i < nfields; i++) {
        const struct rmr_value *v = &fields[i].value;
        json_t *j = NULL;
        switch ((enum rmr_value_type)v->type) {
        case RMR_VAL_INT: j = json_integer(v->v.i); break;
        case RMR_VAL_UINT: j = json_integer(clamp_i64(v->v.u)); break;
        case RMR_VAL_DOUBLE: j = json_real(v->v.d); break;
        case RMR_VAL_BOOL: j = json_boolean(v->v.i); break;
        case RMR_VAL_STR: j = json_stringn(v->v.str, v->str_len); break;
        case RMR_VAL_NONE: break;
        }
        if (j != NULL)
            json_object_setn_new(o, fields[i].key.ptr, fields[i].key.len, j);
    }
    /* 15 significant digits print 0.8690677911646587 as 0.869067791164659: exact enough for
     * a human reading the object, and free of the binary noise %.17g shows. */
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    json_decref(o);
    return s;
}

static int add_sample(rmr_instance_t *ins, rmr_batch_t *b, const struct ctr_sample *smp,
                      struct ctr_emit_count *count)
{
    const struct ctr_info *ci = &smp->info;
    const struct ctr_stat *cs = &smp->stat;
    struct rmr_tag tags[MAX_TAGS];
    struct rmr_field fields[MAX_FIELDS];

    /* Without an id the object has no name and the metric no identity. */
    if (ci->id == NULL || ci->id[0] == '\0')
        return 0;
    uint32_t ntags = build_tags(ci, tags);
    uint32_t nfields = build_fields(cs, fields);
    if (nfields == 0)
        return 0; /* a point needs a field: nothing was measured */

    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = RMR_METRIC_GAUGE,
        .name = rmr_str_c(CTR_MEASUREMENT),
        .time_ns = cs->time_ns,
        .tags = tags,
        .ntags = ntags,
        .nfields = nfields,
        .fields = fields,
    };
    int rc = rmr_metric_add(b, &m);
    if (rc < 0)
        return rc;
    count->metrics++;

    /* The object: the same, plus age and message. Age is measured at the sample's time, so
     * the object's fields all describe one moment. */
    uint32_t nof = nfields;
    int64_t since = ci->started_ns > 0 ? ci->started_ns : ci->created_ns;
    if (since > 0) {
        int64_t at = cs->time_ns > 0 ? cs->time_ns : rmr_now_ns(ins);
        int64_t age_s = at > since ? (at - since) / INT64_C(1000000000) : 0;
        fields[nof++] =
            (struct rmr_field){rmr_str_c(FIELD_AGE), {.type = RMR_VAL_INT, .v.i = age_s}};
    }
    char *msg = build_message(ci->id, tags, ntags, fields, nof);
    if (msg == NULL) {
        rmr_counter_add(ins, "fields_dropped", "no_memory", 1);
    } else if (strlen(msg) > CTR_MESSAGE_MAX_BYTES) {
        rmr_counter_add(ins, "fields_dropped", "message_too_long", 1);
        free(msg);
        msg = NULL;
    } else {
        fields[nof++] = (struct rmr_field){
            rmr_str_c(FIELD_MESSAGE),
            {.type = RMR_VAL_STR, .str_len = (uint32_t)strlen(msg), .v.str = msg}};
    }
    struct rmr_object o = {
        .struct_size = sizeof o,
        .time_ns = cs->time_ns,
        .cls = rmr_str_c(CTR_MEASUREMENT),
        .name = rmr_str_c(ci->id),
        .tags = tags,
        .ntags = ntags,
        .nfields = nof,
        .fields = fields,
    };
    rc = rmr_object_add(b, &o);
    free(msg);
    if (rc < 0)
        return rc;
    count->objects++;
    return 0;
}

int ctr_emit_guance(rmr_instance_t *ins, const struct ctr_sample *samples, uint32_t n,
                    struct ctr_emit_count *count)
{
    memset(count, 0, sizeof *count);
    if (n == 0)
        return 0;
    rmr_batch_t *b = rmr_batch_new(ins, RMR_SCHEMA_GUANCE);
    if (b == NULL)
        return RMR_ENOMEM;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++)
        rc = add_sample(ins, b, &samples[i], count);
    /* What was added before a failed add still goes: one bad container must not take the
     * others down. */
    int erc = rmr_emit(ins, b);
    return rc < 0 ? rc : erc;
}
