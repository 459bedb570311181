/* The ecs_fargate input: an ECS task's containers as Datadog's ecs_fargate check and
 * Metricbeat's awsfargate.task_stats metricset name them.
 *
 * Every interval it GETs <endpoint>/task and <endpoint>/task/stats through the shared ECS
 * metadata client (plugins/lib/ecsmeta), which also parses both documents and holds every
 * formula. This file only turns one poll into records:
 *  1. a normalized sample per task, per container and per network interface: an array of
 *     typed values indexed by a quantity (enum fg_q), absent ones left RMR_VAL_NONE;
 *  2. one table per schema (dd_rows, es_rows) that names each quantity, with its type, unit
 *     and scope, rendered by one loop each. A schema never branches on a metric.
 * Rates (Datadog's cpu.usage, io.bytes.read, net.bytes_rcvd, ...) are computed between two
 * successive polls from the previous counters, kept per container (keyed by DockerId) and per
 * interface. The Guance schema (Datakit's docker_containers) is the container input's, not
 * this one's.
 *
 * After each poll whose /task answered (its stats may have failed) the task's tags go to the
 * host (global tags and the tagger) through ecs_publish_tags(), so DogStatsD metrics, spans
 * and logs of the task carry them. Which GET failed comes from ecs_poll.failed: /task failing
 * is fargate_check CRITICAL, the stats alone or a /task lacking Cluster, TaskARN or
 * Containers a WARNING (Datadog's check).
 *
 * Thread: everything runs on the instance's loop thread (timer and fetch callbacks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/plugin.h>

#include "ecsmeta/ecsmeta.h"

#define FG_INTERVAL_MIN_MS 1000
#define FG_INTERVAL_MAX_MS 86400000 /* a day */
#define FG_TIMEOUT_MIN_MS  100
#define FG_TIMEOUT_MAX_MS  60000

/* Rate state is kept for at most this many containers; an ECS task definition holds at most
 * 10, so more only comes from a misbehaving endpoint. Containers beyond it get gauges but no
 * rates (counted as rate_state_full). */
#define FG_MAX_CONTAINERS 64u
/* Interfaces handled per container; more are skipped (counted as interfaces_skipped). A
 * Fargate task has one ENI. */
#define FG_MAX_IFACES 8u
/* Longest DockerId kept for rates (Fargate: 43 bytes, EC2: 64). */
#define FG_ID_BYTES 128u
/* Docker labels copied to an Elastic record as container.labels.*; more are left out. */
#define FG_MAX_LABELS 32u
#define FG_MAX_TAGS   64u

#define FG_ES_PREFIX  "awsfargate.task_stats."

struct fg_cfg {
    int64_t interval_ms;
    const char *endpoint;
    int64_t timeout_ms;
};

/* ---- quantities ---------------------------------------------------------------------------
 * What a poll measures, once, independent of any schema. */

enum fg_scope { FS_TASK = 0, FS_CONTAINER = 1, FS_IFACE = 2 };

enum fg_q {
    /* container: CPU */
    FQ_CPU_PERCENT = 0, /* Docker formula with Datadog's guard, x100 */
    FQ_CPU_USAGE_RATE,  /* ns/s of total_usage between polls */
    FQ_CPU_USER_RATE,
    FQ_CPU_SYSTEM_RATE, /* of usage_in_kernelmode, as Datadog names it */
    FQ_CPU_LIMIT,       /* container Limits.CPU, CPU units */
    FQ_CPU_TOTAL_PCT,   /* Metricbeat fractions */
    FQ_CPU_TOTAL_NORM,
    FQ_CPU_KERNEL_TICKS,
    FQ_CPU_KERNEL_PCT,
    FQ_CPU_KERNEL_NORM,
    FQ_CPU_USER_TICKS,
    FQ_CPU_USER_PCT,
    FQ_CPU_USER_NORM,
    FQ_CPU_SYSTEM_TICKS,
    FQ_CPU_SYSTEM_PCT,
    FQ_CPU_SYSTEM_NORM,
    /* container: memory */
    FQ_MEM_USAGE,
    FQ_MEM_MAX_USAGE,
    FQ_MEM_LIMIT,
    FQ_MEM_USAGE_PCT, /* usage / limit, a fraction */
    FQ_MEM_WORKING_SET,
    FQ_MEM_CACHE,
    FQ_MEM_MAPPED_FILE,
    FQ_MEM_RSS,
    FQ_MEM_ACTIVE_ANON,
    FQ_MEM_ACTIVE_FILE,
    FQ_MEM_INACTIVE_FILE,
    FQ_MEM_HIER_LIMIT,
    FQ_MEM_HIER_MEMSW_LIMIT,
    FQ_MEM_PGPGIN_RATE,
    FQ_MEM_PGPGOUT_RATE,
    FQ_MEM_PGFAULT_RATE,
    FQ_MEM_PGMAJFAULT_RATE,
    FQ_MEM_RSS_TOTAL, /* total_rss (v1), else rss, else anon (v2) */
    FQ_MEM_RSS_PCT,
    FQ_MEM_FAILCNT,
    /* container: block I/O */
    FQ_IO_READ_BYTES,
    FQ_IO_WRITE_BYTES,
    FQ_IO_READ_OPS,
    FQ_IO_WRITE_OPS,
    FQ_IO_SUM_BYTES,
    FQ_IO_SUM_OPS,
    FQ_IO_READ_BYTES_RATE,
    FQ_IO_WRITE_BYTES_RATE,
    FQ_IO_READ_OPS_RATE,
    FQ_IO_WRITE_OPS_RATE,
    /* interface */
    FQ_NET_RX_BYTES_RATE,
    FQ_NET_TX_BYTES_RATE,
    FQ_NET_RX_BYTES,
    FQ_NET_RX_PACKETS,
    FQ_NET_RX_ERRORS,
    FQ_NET_RX_DROPPED,
    FQ_NET_TX_BYTES,
    FQ_NET_TX_PACKETS,
    FQ_NET_TX_ERRORS,
    FQ_NET_TX_DROPPED,
    /* task */
    FQ_TASK_CPU_LIMIT, /* Limits.CPU vCPUs x 1e9: nanocores */
    FQ_TASK_MEM_LIMIT, /* Limits.Memory MiB in bytes */
    FQ_EPHEMERAL_UTILIZED,
    FQ_EPHEMERAL_RESERVED,
    FG_NQ
};

/* One scope's measurements. rate_ms is the window the RATE quantities cover. */
struct fg_sample {
    struct rmr_value v[FG_NQ];
    int64_t rate_ms;
};

/* ---- schema tables ---------------------------------------------------------------------- */

/* Datadog: integrations-core ecs_fargate (PROTOCOLS.md 2.1). Each row is one metric. */
struct dd_row {
    enum fg_q q;
    enum fg_scope scope;
    uint32_t type; /* enum rmr_metric_type */
    const char *name;
    const char *unit;
};

static const struct dd_row dd_rows[] = {
    {FQ_CPU_PERCENT, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.cpu.percent", "%"},
    {FQ_CPU_USAGE_RATE, FS_CONTAINER, RMR_METRIC_RATE, "ecs.fargate.cpu.usage", "ns/s"},
    {FQ_CPU_USER_RATE, FS_CONTAINER, RMR_METRIC_RATE, "ecs.fargate.cpu.user", "ns/s"},
    {FQ_CPU_SYSTEM_RATE, FS_CONTAINER, RMR_METRIC_RATE, "ecs.fargate.cpu.system", "ns/s"},
    {FQ_CPU_LIMIT, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.cpu.limit", ""},
    {FQ_MEM_USAGE, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.mem.usage", "By"},
    {FQ_MEM_MAX_USAGE, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.mem.max_usage", "By"},
    {FQ_MEM_LIMIT, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.mem.limit", "By"},
    {FQ_MEM_WORKING_SET, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.mem.working_set", "By"},
    {FQ_MEM_CACHE, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.mem.cache", "By"},
    {FQ_MEM_MAPPED_FILE, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.mem.mapped_file", "By"},
    {FQ_MEM_RSS, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.mem.rss", "By"},
    {FQ_MEM_ACTIVE_ANON, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.mem.active_anon", "By"},
    {FQ_MEM_ACTIVE_FILE, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.mem.active_file", "By"},
    {FQ_MEM_INACTIVE_FILE, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.mem.inactive_file", "By"},
    {FQ_MEM_HIER_LIMIT, FS_CONTAINER, RMR_METRIC_GAUGE, "ecs.fargate.mem.hierarchical_memory_limit",
     "By"},
    {FQ_MEM_HIER_MEMSW_LIMIT, FS_CONTAINER, RMR_METRIC_GAUGE,
     "ecs.fargate.mem.hierarchical_memsw_limit", "By"},
    {FQ_MEM_PGPGIN_RATE, FS_CONTAINER, RMR_METRIC_RATE, "ecs.fargate.mem.pgpgin", "{page}/s"},
    {FQ_MEM_PGPGOUT_RATE, FS_CONTAINER, RMR_METRIC_RATE, "ecs.fargate.mem.pgpgout", "{page}/s"},
    {FQ_MEM_PGFAULT_RATE, FS_CONTAINER, RMR_METRIC_RATE, "ecs.fargate.mem.pgfault", "{fault}/s"},
    {FQ_MEM_PGMAJFAULT_RATE, FS_CONTAINER, RMR_METRIC_RATE, "ecs.fargate.mem.pgmajfault",
     "{fault}/s"},
    {FQ_IO_READ_BYTES_RATE, FS_CONTAINER, RMR_METRIC_RATE, "ecs.fargate.io.bytes.read", "By/s"},
    {FQ_IO_WRITE_BYTES_RATE, FS_CONTAINER, RMR_METRIC_RATE, "ecs.fargate.io.bytes.write", "By/s"},
    {FQ_IO_READ_OPS_RATE, FS_CONTAINER, RMR_METRIC_RATE, "ecs.fargate.io.ops.read",
     "{operation}/s"},
    {FQ_IO_WRITE_OPS_RATE, FS_CONTAINER, RMR_METRIC_RATE, "ecs.fargate.io.ops.write",
     "{operation}/s"},
    {FQ_NET_RX_BYTES_RATE, FS_IFACE, RMR_METRIC_RATE, "ecs.fargate.net.bytes_rcvd", "By/s"},
    {FQ_NET_TX_BYTES_RATE, FS_IFACE, RMR_METRIC_RATE, "ecs.fargate.net.bytes_sent", "By/s"},
    {FQ_NET_RX_ERRORS, FS_IFACE, RMR_METRIC_GAUGE, "ecs.fargate.net.rcvd_errors", "{error}"},
    {FQ_NET_TX_ERRORS, FS_IFACE, RMR_METRIC_GAUGE, "ecs.fargate.net.sent_errors", "{error}"},
    {FQ_NET_RX_DROPPED, FS_IFACE, RMR_METRIC_GAUGE, "ecs.fargate.net.packet.in_dropped",
     "{packet}"},
    {FQ_NET_TX_DROPPED, FS_IFACE, RMR_METRIC_GAUGE, "ecs.fargate.net.packet.out_dropped",
     "{packet}"},
    {FQ_TASK_CPU_LIMIT, FS_TASK, RMR_METRIC_GAUGE, "ecs.fargate.cpu.task.limit", "ns/s"},
    {FQ_TASK_MEM_LIMIT, FS_TASK, RMR_METRIC_GAUGE, "ecs.fargate.mem.task.limit", "By"},
    {FQ_EPHEMERAL_UTILIZED, FS_TASK, RMR_METRIC_GAUGE, "ecs.fargate.ephemeral_storage.utilized",
     "MiBy"},
    {FQ_EPHEMERAL_RESERVED, FS_TASK, RMR_METRIC_GAUGE, "ecs.fargate.ephemeral_storage.reserved",
     "MiBy"},
};

/* Elastic: Metricbeat's awsfargate.task_stats (PROTOCOLS.md 2.2). Each row is one field of
 * the container's record, named FG_ES_PREFIX + key; an interface's fields are named
 * FG_ES_PREFIX "network." <iface> "." key. */
struct es_row {
    enum fg_q q;
    enum fg_scope scope;
    const char *key;
};

static const struct es_row es_rows[] = {
    {FQ_CPU_TOTAL_PCT, FS_CONTAINER, "cpu.total.pct"},
    {FQ_CPU_TOTAL_NORM, FS_CONTAINER, "cpu.total.norm.pct"},
    {FQ_CPU_KERNEL_TICKS, FS_CONTAINER, "cpu.kernel.ticks"},
    {FQ_CPU_KERNEL_PCT, FS_CONTAINER, "cpu.kernel.pct"},
    {FQ_CPU_KERNEL_NORM, FS_CONTAINER, "cpu.kernel.norm.pct"},
    {FQ_CPU_USER_TICKS, FS_CONTAINER, "cpu.user.ticks"},
    {FQ_CPU_USER_PCT, FS_CONTAINER, "cpu.user.pct"},
    {FQ_CPU_USER_NORM, FS_CONTAINER, "cpu.user.norm.pct"},
    {FQ_CPU_SYSTEM_TICKS, FS_CONTAINER, "cpu.system.ticks"},
    {FQ_CPU_SYSTEM_PCT, FS_CONTAINER, "cpu.system.pct"},
    {FQ_CPU_SYSTEM_NORM, FS_CONTAINER, "cpu.system.norm.pct"},
    {FQ_MEM_USAGE, FS_CONTAINER, "memory.usage.total"},
    {FQ_MEM_MAX_USAGE, FS_CONTAINER, "memory.usage.max"},
    {FQ_MEM_USAGE_PCT, FS_CONTAINER, "memory.usage.pct"},
    {FQ_MEM_RSS_TOTAL, FS_CONTAINER, "memory.rss.total"},
    {FQ_MEM_RSS_PCT, FS_CONTAINER, "memory.rss.pct"},
    {FQ_MEM_LIMIT, FS_CONTAINER, "memory.limit"},
    {FQ_MEM_FAILCNT, FS_CONTAINER, "memory.fail.count"},
    {FQ_IO_READ_BYTES, FS_CONTAINER, "diskio.read.bytes"},
    {FQ_IO_READ_OPS, FS_CONTAINER, "diskio.read.ops"},
    {FQ_IO_WRITE_BYTES, FS_CONTAINER, "diskio.write.bytes"},
    {FQ_IO_WRITE_OPS, FS_CONTAINER, "diskio.write.ops"},
    {FQ_IO_SUM_BYTES, FS_CONTAINER, "diskio.summary.bytes"},
    {FQ_IO_SUM_OPS, FS_CONTAINER, "diskio.summary.ops"},
    {FQ_NET_RX_BYTES, FS_IFACE, "inbound.bytes"},
    {FQ_NET_RX_PACKETS, FS_IFACE, "inbound.packets"},
    {FQ_NET_RX_ERRORS, FS_IFACE, "inbound.errors"},
    {FQ_NET_RX_DROPPED, FS_IFACE, "inbound.dropped"},
    {FQ_NET_TX_BYTES, FS_IFACE, "outbound.bytes"},
    {FQ_NET_TX_PACKETS, FS_IFACE, "outbound.packets"},
    {FQ_NET_TX_ERRORS, FS_IFACE, "outbound.errors"},
    {FQ_NET_TX_DROPPED, FS_IFACE, "outbound.dropped"},
};

#define NELEMS(a)         (sizeof(a) / sizeof((a)[0]))

#define ES_CONTAINER_ROWS 24u /* es_rows of scope FS_CONTAINER */
#define ES_IFACE_ROWS     8u  /* es_rows of scope FS_IFACE */
_Static_assert(NELEMS(es_rows) == ES_CONTAINER_ROWS + ES_IFACE_ROWS, "es_rows scopes");
#define FG_MAX_FIELDS (ES_CONTAINER_ROWS + FG_MAX_IFACES * ES_IFACE_ROWS)
/* Field names of one record: the longest is FG_ES_PREFIX "network." + a 31-byte interface +
 * ".outbound.packets", under 96 bytes. */
#define FG_KEY_BYTES (FG_MAX_FIELDS * 96u)

/* Memory gauges straight from memory_stats.stats, present only when the document has them. */
static const struct {
    enum fg_q q;
    enum ecs_mem_key key;
} mem_gauges[] = {
    {FQ_MEM_CACHE, ECS_MEM_CACHE},
    {FQ_MEM_MAPPED_FILE, ECS_MEM_MAPPED_FILE},
    {FQ_MEM_RSS, ECS_MEM_RSS},
    {FQ_MEM_ACTIVE_ANON, ECS_MEM_ACTIVE_ANON},
    {FQ_MEM_ACTIVE_FILE, ECS_MEM_ACTIVE_FILE},
    {FQ_MEM_INACTIVE_FILE, ECS_MEM_INACTIVE_FILE},
    {FQ_MEM_HIER_LIMIT, ECS_MEM_HIER_LIMIT},
    {FQ_MEM_HIER_MEMSW_LIMIT, ECS_MEM_HIER_MEMSW_LIMIT},
};

/* ---- counters kept between polls ------------------------------------------------------- */

enum fg_ctr {
    FC_CPU_TOTAL = 0,
    FC_CPU_USER,
    FC_CPU_KERNEL,
    FC_PGPGIN,
    FC_PGPGOUT,
    FC_PGFAULT,
    FC_PGMAJFAULT,
    FC_IO_READ_BYTES,
    FC_IO_WRITE_BYTES,
    FC_IO_READ_OPS,
    FC_IO_WRITE_OPS,
    FG_NCTR
};

/* The per-second rates computed from counters. */
static const struct {
    enum fg_ctr ctr;
    enum fg_q q;
} ctr_rates[] = {
    {FC_CPU_TOTAL, FQ_CPU_USAGE_RATE},           {FC_CPU_USER, FQ_CPU_USER_RATE},
    {FC_CPU_KERNEL, FQ_CPU_SYSTEM_RATE},         {FC_PGPGIN, FQ_MEM_PGPGIN_RATE},
    {FC_PGPGOUT, FQ_MEM_PGPGOUT_RATE},           {FC_PGFAULT, FQ_MEM_PGFAULT_RATE},
    {FC_PGMAJFAULT, FQ_MEM_PGMAJFAULT_RATE},     {FC_IO_READ_BYTES, FQ_IO_READ_BYTES_RATE},
    {FC_IO_WRITE_BYTES, FQ_IO_WRITE_BYTES_RATE}, {FC_IO_READ_OPS, FQ_IO_READ_OPS_RATE},
    {FC_IO_WRITE_OPS, FQ_IO_WRITE_OPS_RATE},
};

static int mem_value(const struct ecs_stats *s, enum ecs_mem_key k, uint64_t *v)
{
    if (!(s->mem_has & (1u << k)))
        return 0;
    *v = s->mem[k];
    return 1;
}

/* A counter's current value; 0 when the document does not have it. */
static int ctr_value(const struct ecs_stats *s, enum fg_ctr c, uint64_t *v)
{
    switch (c) {
    case FC_CPU_TOTAL: *v = s->cpu_total; return s->has_cpu != 0;
    case FC_CPU_USER: *v = s->cpu_user; return s->has_cpu != 0;
    case FC_CPU_KERNEL: *v = s->cpu_kernel; return s->has_cpu != 0;
    case FC_PGPGIN: return mem_value(s, ECS_MEM_PGPGIN, v);
    case FC_PGPGOUT: return mem_value(s, ECS_MEM_PGPGOUT, v);
    case FC_PGFAULT: return mem_value(s, ECS_MEM_PGFAULT, v);
    case FC_PGMAJFAULT: return mem_value(s, ECS_MEM_PGMAJFAULT, v);
    /* Block I/O sums are always defined: no entry means no I/O (Datadog reports 0 too). */
    case FC_IO_READ_BYTES: *v = s->io_read_bytes; return 1;
    case FC_IO_WRITE_BYTES: *v = s->io_write_bytes; return 1;
    case FC_IO_READ_OPS: *v = s->io_read_ops; return 1;
    case FC_IO_WRITE_OPS: *v = s->io_write_ops; return 1;
    case FG_NCTR: return 0;
    }
    return 0;
}

struct fg_prev_iface {
    char name[sizeof(((struct ecs_iface *)0)->name)];
    uint64_t rx_bytes, tx_bytes;
};

/* One container's counters at the previous poll. id[0] == '\0' marks a free slot. */
struct fg_prev {
    char id[FG_ID_BYTES];
    int64_t read_ns; /* the stats document's "read" */
    int64_t mono_ns; /* when the poll was handled, for documents without "read" */
    uint64_t ctr[FG_NCTR];
    uint32_t has; /* bit (1u << enum fg_ctr) per counter held */
    uint32_t nifaces;
    struct fg_prev_iface ifaces[FG_MAX_IFACES];
    uint32_t seen; /* poll number when last updated */
};

struct fg_state {
    rmr_instance_t *ins;
    int64_t interval_ms;
    int64_t timeout_ms;
    const char *cfg_endpoint; /* borrowed from the config */
    char *endpoint;           /* the one in use, owned; NULL when idle */
    struct ecs_client *client;
    rmr_timer_t *timer;
    int stopping;
    uint32_t npolls; /* polls handled whose stats answered */

    /* The task of the last poll whose /task answered (owned), for ecs_publish_tags() to
     * forget containers. */
    struct ecs_task task;
    int have_task;
    /* ECS_TASK_MISSING_* of the last task read, so a task that stays incomplete is logged
     * once, not at every poll. */
    uint32_t last_missing;

    struct fg_prev prev[FG_MAX_CONTAINERS];

    /* Scratch for one poll, reused. */
    struct fg_sample task_s;
    struct fg_sample ctr_s;
    struct fg_sample if_s[FG_MAX_IFACES];
    const char *if_name[FG_MAX_IFACES];
    uint32_t nif;
    struct rmr_tag tags[FG_MAX_TAGS];
    struct rmr_field fields[FG_MAX_FIELDS];
    char keys[FG_KEY_BYTES];
    char image_buf[512];
    char ident_buf[2 * FG_ID_BYTES + 256];
    char label_buf[FG_MAX_LABELS * 128u];
    /* Records added per schema in this poll and the first add error. */
    uint32_t nadded;
    int add_rc;
};

static const struct rmr_option fg_options[] = {
    RMR_OPT_FULL("interval", RMR_OPT_DURATION, 0, "10s", NULL, FG_INTERVAL_MIN_MS,
                 FG_INTERVAL_MAX_MS, struct fg_cfg, interval_ms,
                 "how often the task metadata endpoint is polled"),
    RMR_OPT_FULL("endpoint", RMR_OPT_STRING, 0, NULL,
                 "ECS_CONTAINER_METADATA_URI_V4,ECS_CONTAINER_METADATA_URI", 0, 0, struct fg_cfg,
                 endpoint,
                 "base URI of the task metadata endpoint (v4, else v3); empty: taken from "
                 "the environment ECS injects"),
    RMR_OPT_FULL("timeout", RMR_OPT_DURATION, 0, "5s", NULL, FG_TIMEOUT_MIN_MS, FG_TIMEOUT_MAX_MS,
                 struct fg_cfg, timeout_ms, "how long each request to the endpoint may take"),
    RMR_OPT_END,
};

/* ---- samples ------------------------------------------------------------------------------ */

static void sample_clear(struct fg_sample *s)
{
    memset(s->v, 0, sizeof s->v); /* RMR_VAL_NONE is 0 */
    s->rate_ms = 0;
}

static void set_u(struct fg_sample *s, enum fg_q q, uint64_t u)
{
    s->v[q].type = RMR_VAL_UINT;
    s->v[q].v.u = u;
}

static void set_d(struct fg_sample *s, enum fg_q q, double d)
{
    s->v[q].type = RMR_VAL_DOUBLE;
    s->v[q].v.d = d;
}

static double value_double(const struct rmr_value *v)
{
    switch ((enum rmr_value_type)v->type) {
    case RMR_VAL_UINT: return (double)v->v.u;
    case RMR_VAL_INT:
    case RMR_VAL_BOOL: return (double)v->v.i;
    case RMR_VAL_DOUBLE: return v->v.d;
    case RMR_VAL_NONE:
    case RMR_VAL_STR: return 0;
    }
    return 0;
}

static int64_t ns_to_ms(int64_t ns)
{
    return (ns + 500000) / 1000000;
}

static void sample_task(struct fg_sample *o, const struct ecs_task *t)
{
    sample_clear(o);
    if (t->cpu_vcpus > 0)
        set_d(o, FQ_TASK_CPU_LIMIT, t->cpu_vcpus * 1e9);
    /* The document is untrusted: a MiB count that would overflow bytes is left out. */
    if (t->mem_mib > 0 && t->mem_mib <= INT64_MAX / 1048576)
        set_u(o, FQ_TASK_MEM_LIMIT, (uint64_t)t->mem_mib * 1048576u);
    if (t->has_ephemeral && t->ephemeral_utilized_mib >= 0 && t->ephemeral_reserved_mib >= 0) {
        set_u(o, FQ_EPHEMERAL_UTILIZED, (uint64_t)t->ephemeral_utilized_mib);
        set_u(o, FQ_EPHEMERAL_RESERVED, (uint64_t)t->ephemeral_reserved_mib);
    }
}

/* CPU figures of one stats document. Metricbeat's fractions (total, user, kernel) come from the
 * document's own precpu_stats window, so a container has them from its first poll; an idle one
 * gets 0, one that cannot be measured (no preread, online 0, a reset) none. */
static void sample_cpu(struct fg_sample *o, const struct ecs_stats *s,
                       const struct ecs_container *c)
{
    double pct, norm;
    if (c->cpu_units > 0)
        set_d(o, FQ_CPU_LIMIT, c->cpu_units);
    if (!s->has_cpu)
        return;
    if (ecs_cpu_percent(s, &pct))
        set_d(o, FQ_CPU_PERCENT, pct);
    if (ecs_cpu_fraction(s, &pct, &norm)) {
        set_d(o, FQ_CPU_TOTAL_PCT, pct);
        set_d(o, FQ_CPU_TOTAL_NORM, norm);
    }
    if (ecs_cpu_user_fraction(s, &pct, &norm)) {
        set_d(o, FQ_CPU_USER_PCT, pct);
        set_d(o, FQ_CPU_USER_NORM, norm);
    }
    if (ecs_cpu_kernel_fraction(s, &pct, &norm)) {
        set_d(o, FQ_CPU_KERNEL_PCT, pct);
        set_d(o, FQ_CPU_KERNEL_NORM, norm);
    }
    set_u(o, FQ_CPU_KERNEL_TICKS, s->cpu_kernel);
    set_u(o, FQ_CPU_USER_TICKS, s->cpu_user);
    if (s->system_cpu > 0)
        set_u(o, FQ_CPU_SYSTEM_TICKS, s->system_cpu);
    /* Metricbeat's "system" is the host's CPU time over itself: online CPUs, and 1 normalized. */
    if (s->online_cpus > 0 && s->system_cpu > s->pre_system_cpu && s->pre_system_cpu > 0) {
        set_d(o, FQ_CPU_SYSTEM_PCT, (double)s->online_cpus);
        set_d(o, FQ_CPU_SYSTEM_NORM, 1.0);
    }
}

static void sample_memory(struct fg_sample *o, const struct ecs_stats *s,
                          const struct ecs_container *c, const struct ecs_task *t)
{
    uint64_t limit = ecs_mem_limit(s, c, t);
    if (limit > 0)
        set_u(o, FQ_MEM_LIMIT, limit);
    for (size_t i = 0; i < NELEMS(mem_gauges); i++) {
        uint64_t v;
        if (mem_value(s, mem_gauges[i].key, &v))
            set_u(o, mem_gauges[i].q, v);
    }
    uint64_t rss;
    if (mem_value(s, ECS_MEM_TOTAL_RSS, &rss) || mem_value(s, ECS_MEM_RSS, &rss) ||
        mem_value(s, ECS_MEM_ANON, &rss)) {
        set_u(o, FQ_MEM_RSS_TOTAL, rss);
        if (limit > 0)
            set_d(o, FQ_MEM_RSS_PCT, (double)rss / (double)limit);
    }
    if (s->has_failcnt)
        set_u(o, FQ_MEM_FAILCNT, s->mem_failcnt);
    if (!s->has_mem)
        return;
    set_u(o, FQ_MEM_USAGE, s->mem_usage);
    set_u(o, FQ_MEM_WORKING_SET, ecs_working_set(s));
    if (limit > 0)
        set_d(o, FQ_MEM_USAGE_PCT, (double)s->mem_usage / (double)limit);
    if (s->has_max_usage)
        set_u(o, FQ_MEM_MAX_USAGE, s->mem_max_usage);
}

static void sample_io(struct fg_sample *o, const struct ecs_stats *s)
{
    set_u(o, FQ_IO_READ_BYTES, s->io_read_bytes);
    set_u(o, FQ_IO_WRITE_BYTES, s->io_write_bytes);
    set_u(o, FQ_IO_READ_OPS, s->io_read_ops);
    set_u(o, FQ_IO_WRITE_OPS, s->io_write_ops);
    /* Sums of two uint64 counters may wrap in theory; a double does not. */
    set_d(o, FQ_IO_SUM_BYTES, (double)s->io_read_bytes + (double)s->io_write_bytes);
    set_d(o, FQ_IO_SUM_OPS, (double)s->io_read_ops + (double)s->io_write_ops);
}

/* The time between the previous sample and this one, or 0 when there is none. */
static int64_t sample_window_ns(const struct ecs_stats *s, const struct fg_prev *p, int64_t mono_ns)
{
    if (p == NULL || p->id[0] == '\0')
        return 0;
    if (s->read_ns > 0 && p->read_ns > 0)
        return s->read_ns - p->read_ns;
    return mono_ns - p->mono_ns;
}

static void sample_rates(struct fg_sample *o, const struct ecs_stats *s, const struct fg_prev *p,
                         int64_t dt_ns)
{
    if (dt_ns <= 0)
        return;
    o->rate_ms = ns_to_ms(dt_ns);
    for (size_t i = 0; i < NELEMS(ctr_rates); i++) {
        enum fg_ctr c = ctr_rates[i].ctr;
        uint64_t cur;
        double rate;
        if (!(p->has & (1u << c)) || !ctr_value(s, c, &cur))
            continue;
        if (ecs_rate(p->ctr[c], cur, dt_ns, &rate))
            set_d(o, ctr_rates[i].q, rate);
    }
}

static const struct fg_prev_iface *prev_iface(const struct fg_prev *p, const char *name)
{
    for (uint32_t i = 0; p != NULL && i < p->nifaces; i++)
        if (strcmp(p->ifaces[i].name, name) == 0)
            return &p->ifaces[i];
    return NULL;
}

/* Fills st->if_s[] for the container's interfaces. Returns how many were skipped. */
static uint32_t sample_ifaces(struct fg_state *st, const struct ecs_stats *s,
                              const struct fg_prev *p, int64_t dt_ns)
{
    int fresh = p == NULL || p->id[0] == '\0';
    st->nif = 0;
    for (uint32_t i = 0; i < s->nifaces; i++) {
        const struct ecs_iface *f = &s->ifaces[i];
        if (st->nif == FG_MAX_IFACES)
            return s->nifaces - i;
        struct fg_sample *o = &st->if_s[st->nif];
        st->if_name[st->nif++] = f->name;
        sample_clear(o);
        set_u(o, FQ_NET_RX_BYTES, f->rx_bytes);
        set_u(o, FQ_NET_RX_PACKETS, f->rx_packets);
        set_u(o, FQ_NET_RX_ERRORS, f->rx_errors);
        set_u(o, FQ_NET_RX_DROPPED, f->rx_dropped);
        set_u(o, FQ_NET_TX_BYTES, f->tx_bytes);
        set_u(o, FQ_NET_TX_PACKETS, f->tx_packets);
        set_u(o, FQ_NET_TX_ERRORS, f->tx_errors);
        set_u(o, FQ_NET_TX_DROPPED, f->tx_dropped);
        const struct fg_prev_iface *pf = prev_iface(p, f->name);
        double rate;
        if (pf != NULL && dt_ns > 0) {
            o->rate_ms = ns_to_ms(dt_ns);
            if (ecs_rate(pf->rx_bytes, f->rx_bytes, dt_ns, &rate))
                set_d(o, FQ_NET_RX_BYTES_RATE, rate);
            if (ecs_rate(pf->tx_bytes, f->tx_bytes, dt_ns, &rate))
                set_d(o, FQ_NET_TX_BYTES_RATE, rate);
        } else if (fresh && s->has_net_rate && s->nifaces == 1) {
            /* No previous poll yet: the ECS agent's own rate, which it computes for the
             * container's one interface between its last two samples. */
            int64_t w = s->read_ns > 0 && s->preread_ns > 0 ? s->read_ns - s->preread_ns : 0;
            o->rate_ms = w > 0 ? ns_to_ms(w) : st->interval_ms;
            set_d(o, FQ_NET_RX_BYTES_RATE, s->rx_bytes_per_sec);
            set_d(o, FQ_NET_TX_BYTES_RATE, s->tx_bytes_per_sec);
        }
    }
    return 0;
}

/* ---- rate state ----------------------------------------------------------------------------- */

/* The slot of a container: its own, else a free one (id still empty). NULL when the id is
 * too long or the table is full. */
static struct fg_prev *prev_slot(struct fg_state *st, const char *id)
{
    size_t len = strlen(id);
    struct fg_prev *free_slot = NULL;
    if (len == 0 || len >= FG_ID_BYTES)
        return NULL;
    for (uint32_t i = 0; i < FG_MAX_CONTAINERS; i++) {
        struct fg_prev *p = &st->prev[i];
        if (p->id[0] == '\0') {
            if (free_slot == NULL)
                free_slot = p;
        } else if (strcmp(p->id, id) == 0) {
            return p;
        }
    }
    return free_slot;
}

static void prev_update(struct fg_prev *p, const char *id, const struct ecs_stats *s,
                        int64_t mono_ns, uint32_t poll)
{
    if (p->id[0] == '\0')
        memcpy(p->id, id, strlen(id) + 1); /* prev_slot() checked the length */
    p->read_ns = s->read_ns;
    p->mono_ns = mono_ns;
    p->has = 0;
    for (uint32_t c = 0; c < FG_NCTR; c++)
        if (ctr_value(s, (enum fg_ctr)c, &p->ctr[c]))
            p->has |= 1u << c;
    p->nifaces = 0;
    for (uint32_t i = 0; i < s->nifaces && p->nifaces < FG_MAX_IFACES; i++) {
        struct fg_prev_iface *f = &p->ifaces[p->nifaces++];
        memcpy(f->name, s->ifaces[i].name, sizeof f->name);
        f->name[sizeof f->name - 1] = '\0';
        f->rx_bytes = s->ifaces[i].rx_bytes;
        f->tx_bytes = s->ifaces[i].tx_bytes;
    }
    p->seen = poll;
}

/* Forgets containers that this poll did not report: they stopped, or are not ready. */
static void prev_forget(struct fg_state *st, uint32_t poll)
{
    for (uint32_t i = 0; i < FG_MAX_CONTAINERS; i++)
        if (st->prev[i].id[0] != '\0' && st->prev[i].seen != poll)
            memset(&st->prev[i], 0, sizeof st->prev[i]);
}

/* ---- tags ----------------------------------------------------------------------------------- */

static uint32_t tag_add(struct rmr_tag *tags, uint32_t n, const char *key, const char *value)
{
    if (value == NULL || value[0] == '\0' || n >= FG_MAX_TAGS)
        return n;
    tags[n].key = rmr_str_c(key);
    tags[n].value = rmr_str_c(value);
    return n + 1;
}

/* Datadog's compatibility tags of the ecs_fargate check, on every metric of the task. */
static uint32_t dd_compat_tags(struct rmr_tag *tags, uint32_t n, const struct ecs_task *t)
{
    n = tag_add(tags, n, "ecs_cluster", t->cluster);
    n = tag_add(tags, n, "ecs_task_family", t->family);
    return tag_add(tags, n, "ecs_task_version", t->revision);
}

static uint32_t dd_task_tags(struct fg_state *st, const struct ecs_task *t)
{
    uint32_t n = ecs_task_tags(t, st->tags, FG_MAX_TAGS);
    return dd_compat_tags(st->tags, n, t);
}

static uint32_t dd_container_tags(struct fg_state *st, const struct ecs_task *t,
                                  const struct ecs_container *c)
{
    uint32_t n = ecs_container_tags(c, st->tags, FG_MAX_TAGS, st->image_buf, sizeof st->image_buf);
    n += ecs_task_tags(t, st->tags + n, FG_MAX_TAGS - n);
    n = dd_compat_tags(st->tags, n, t);
    return tag_add(st->tags, n, "docker_name", c->docker_name);
}

/* Metricbeat's ECS fields of a container's event, as tags. */
static uint32_t es_tags(struct fg_state *st, const struct ecs_task *t,
                        const struct ecs_container *c)
{
    struct rmr_tag *tags = st->tags;
    uint32_t n = 0;
    n = tag_add(tags, n, "container.id", c->docker_id);
    n = tag_add(tags, n, "container.name", c->name);
    n = tag_add(tags, n, "container.image.name", c->image);
    n = tag_add(tags, n, "cloud.provider", "aws");
    n = tag_add(tags, n, "cloud.region", t->region);
    n = tag_add(tags, n, "service.type", "awsfargate");
    n = tag_add(tags, n, FG_ES_PREFIX "cluster_name", t->cluster_name);
    n = tag_add(tags, n, FG_ES_PREFIX "task_name", t->family);
    int len = snprintf(st->ident_buf, sizeof st->ident_buf, "%s/%s", c->name ? c->name : "",
                       c->docker_id ? c->docker_id : "");
    if (len > 0 && (size_t)len < sizeof st->ident_buf)
        n = tag_add(tags, n, FG_ES_PREFIX "identifier", st->ident_buf);
    n = tag_add(tags, n, FG_ES_PREFIX "task_known_status", t->known_status);
    n = tag_add(tags, n, FG_ES_PREFIX "task_desired_status", t->desired_status);
    /* Docker labels as container.labels.<key>, dots made underscores as Metricbeat does. */
    size_t used = 0;
    for (uint32_t i = 0; i < c->nlabels && i < FG_MAX_LABELS && n < FG_MAX_TAGS; i++) {
        const struct ecs_label *l = &c->labels[i];
        if (l->key == NULL || l->key[0] == '\0')
            continue;
        char *k = st->label_buf + used;
        int kl = snprintf(k, sizeof st->label_buf - used, "container.labels.%s", l->key);
        if (kl < 0 || (size_t)kl >= sizeof st->label_buf - used)
            break;
        for (char *d = k + sizeof "container.labels." - 1; *d != '\0'; d++)
            if (*d == '.')
                *d = '_';
        used += (size_t)kl + 1;
        n = tag_add(tags, n, k, l->value);
    }
    return n;
}

/* ---- rendering -------------------------------------------------------------------------- */

static void add_metric(struct fg_state *st, rmr_batch_t *b, const struct rmr_metric *m)
{
    if (st->add_rc < 0)
        return;
    int rc = rmr_metric_add(b, m);
    if (rc < 0)
        st->add_rc = rc;
    else
        st->nadded++;
}

/* Every dd_rows row of scope whose quantity the sample has: one metric each. */
static void dd_render(struct fg_state *st, rmr_batch_t *b, enum fg_scope scope,
                      const struct fg_sample *s, uint32_t ntags, int64_t now_ns)
{
    for (size_t i = 0; i < NELEMS(dd_rows); i++) {
        const struct dd_row *r = &dd_rows[i];
        if (r->scope != scope || s->v[r->q].type == RMR_VAL_NONE)
            continue;
        struct rmr_metric m = {
            .struct_size = sizeof m,
            .type = r->type,
            .name = rmr_str_c(r->name),
            .value = value_double(&s->v[r->q]),
            .time_ns = now_ns,
            .interval_ms = r->type == RMR_METRIC_RATE ? s->rate_ms : 0,
            .unit = rmr_str_c(r->unit),
            .tags = st->tags,
            .ntags = ntags,
        };
        add_metric(st, b, &m);
    }
}

static void dd_container(struct fg_state *st, rmr_batch_t *b, const struct ecs_task *t,
                         const struct ecs_container *c, int64_t now_ns)
{
    uint32_t n = dd_container_tags(st, t, c);
    dd_render(st, b, FS_CONTAINER, &st->ctr_s, n, now_ns);
    if (n >= FG_MAX_TAGS)
        n = FG_MAX_TAGS - 1;
    for (uint32_t i = 0; i < st->nif; i++) {
        /* Per interface, never summed: every container of a Fargate task reports the same
         * task ENI, so a sum would count it once per container. */
        st->tags[n].key = rmr_str_c("interface");
        st->tags[n].value = rmr_str_c(st->if_name[i]);
        dd_render(st, b, FS_IFACE, &st->if_s[i], n + 1, now_ns);
    }
}

/* Appends the fields of es_rows of scope that the sample has. Keys are built into st->keys. */
static void es_fields(struct fg_state *st, enum fg_scope scope, const struct fg_sample *s,
                      const char *iface, uint32_t *nfields, size_t *keys_used)
{
    for (size_t i = 0; i < NELEMS(es_rows); i++) {
        const struct es_row *r = &es_rows[i];
        if (r->scope != scope || s->v[r->q].type == RMR_VAL_NONE || *nfields >= FG_MAX_FIELDS)
            continue;
        char *k = st->keys + *keys_used;
        size_t room = sizeof st->keys - *keys_used;
        int len = iface != NULL ? snprintf(k, room, FG_ES_PREFIX "network.%s.%s", iface, r->key)
                                : snprintf(k, room, FG_ES_PREFIX "%s", r->key);
        if (len < 0 || (size_t)len >= room)
            return;
        *keys_used += (size_t)len + 1;
        struct rmr_field *f = &st->fields[(*nfields)++];
        f->key = rmr_str_n(k, (size_t)len);
        f->value = s->v[r->q];
    }
}

static void es_container(struct fg_state *st, rmr_batch_t *b, const struct ecs_task *t,
                         const struct ecs_container *c, const struct ecs_stats *s, int64_t now_ns)
{
    uint32_t nfields = 0;
    size_t keys_used = 0;
    es_fields(st, FS_CONTAINER, &st->ctr_s, NULL, &nfields, &keys_used);
    for (uint32_t i = 0; i < st->nif; i++)
        es_fields(st, FS_IFACE, &st->if_s[i], st->if_name[i], &nfields, &keys_used);
    if (nfields == 0)
        return;
    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = RMR_METRIC_GAUGE,
        .name = rmr_str_c("awsfargate.task_stats"),
        .time_ns = s->read_ns > 0 ? s->read_ns : now_ns,
        .tags = st->tags,
        .ntags = es_tags(st, t, c),
        .nfields = nfields,
        .fields = st->fields,
    };
    add_metric(st, b, &m);
}

static void add_check(struct fg_state *st, rmr_batch_t *b, uint32_t status, const char *message,
                      int64_t now_ns)
{
    struct rmr_check ck = {
        .struct_size = sizeof ck,
        .status = status,
        .time_ns = now_ns,
        .name = rmr_str_c("fargate_check"),
        .message = rmr_str_c(status == RMR_CHECK_OK ? NULL : message),
    };
    if (st->add_rc < 0)
        return;
    int rc = rmr_check_add(b, &ck);
    if (rc < 0)
        st->add_rc = rc;
    else
        st->nadded++;
}

static void emit(struct fg_state *st, rmr_batch_t *b, const char *schema)
{
    if (b == NULL)
        return;
    if (st->add_rc < 0)
        rmr_log(st->ins, RMR_LOG_WARN, "cannot add '%s' records to a batch: %s", schema,
                rmr_strerror(st->add_rc));
    uint32_t n = rmr_batch_count(b);
    int rc = rmr_emit(st->ins, b);
    if (rc < 0 && rc != RMR_ESTOPPED)
        rmr_log(st->ins, RMR_LOG_WARN, "cannot emit %u '%s' records: %s", n, schema,
                rmr_strerror(rc));
}

/* ---- one poll ----------------------------------------------------------------------------- */

/* The counter reason for a failed poll: timeout, http_<status>, bad_json, ... */
static void poll_error_reason(const struct ecs_poll *p, char *buf, size_t len)
{
    if (p->http_status != 0 && (p->http_status < 200 || p->http_status > 299)) {
        snprintf(buf, len, "http_%d", p->http_status);
        return;
    }
    const char *r;
    switch (p->error) {
    case RMR_ETIMEDOUT: r = "timeout"; break;
    case RMR_ECONNREFUSED: r = "connection_refused"; break;
    case RMR_ECONNRESET: r = "connection_reset"; break;
    case RMR_E2BIG: r = "too_large"; break;
    case RMR_EINVAL:
    case RMR_EPARSE: r = "bad_json"; break;
    case RMR_ENOMEM: r = "no_memory"; break;
    case RMR_ECANCELED: r = "cancelled"; break;
    default: r = "error"; break;
    }
    snprintf(buf, len, "%s", r);
}

/* The counter reasons of the anchors a /task document may lack. */
static const struct {
    uint32_t bit;
    const char *reason;
} missing_reasons[] = {
    {ECS_TASK_MISSING_ARN, "missing_task_arn"},
    {ECS_TASK_MISSING_CLUSTER, "missing_cluster"},
    {ECS_TASK_MISSING_CONTAINERS, "missing_containers"},
};

/* Counts and logs a failed poll. */
static void poll_count_failure(struct fg_state *st, const struct ecs_poll *p)
{
    char reason[32];
    poll_error_reason(p, reason, sizeof reason);
    rmr_counter_add(st->ins, "poll_errors", reason, 1);
    rmr_log(st->ins, RMR_LOG_WARN, "cannot poll the task metadata endpoint '%s': %s", st->endpoint,
            p->reason[0] != '\0' ? p->reason : rmr_strerror(p->error));
}

/* /task failed (unreachable, timed out, not 200, not a JSON object): nothing is known of the
 * task, so only the check goes, CRITICAL as Datadog's check says it. The last published tags
 * stay as they were. */
static void task_failed(struct fg_state *st, const struct ecs_poll *p, int want_dd, int64_t now)
{
    poll_count_failure(st, p);
    if (!want_dd)
        return;
    rmr_batch_t *b = rmr_batch_new(st->ins, RMR_SCHEMA_DATADOG);
    if (b == NULL)
        return;
    st->add_rc = 0;
    st->nadded = 0;
    add_check(st, b, RMR_CHECK_CRITICAL, p->reason[0] != '\0' ? p->reason : rmr_strerror(p->error),
              now);
    emit(st, b, RMR_SCHEMA_DATADOG);
}

/* Appends "; " and the line to a check message (the first line alone when it is empty). */
static void message_add(char *msg, size_t len, const char *line)
{
    size_t used = strlen(msg);
    if (used + 1 >= len)
        return;
    snprintf(msg + used, len - used, "%s%s", used > 0 ? "; " : "", line);
}

/* A /task that lacks an anchor (TaskARN, Cluster, Containers) is still reported as far as it
 * goes, under a WARNING (Datadog's check: "missing Cluster/Containers"). Counted every poll;
 * logged when what is missing changes, not at every poll of a task that stays that way. */
static void task_incomplete(struct fg_state *st, const struct ecs_task *t, char *msg, size_t len)
{
    char what[64], line[256];
    if (t->missing != st->last_missing) {
        if (t->missing != 0) {
            ecs_task_missing_text(t->missing, what, sizeof what);
            rmr_log(st->ins, RMR_LOG_WARN,
                    "the task metadata of '%s' lacks %s; reporting what it has", st->endpoint,
                    what);
        } else {
            rmr_log(st->ins, RMR_LOG_INFO, "the task metadata of '%s' is complete again",
                    st->endpoint);
        }
        st->last_missing = t->missing;
    }
    if (t->missing == 0)
        return;
    for (size_t i = 0; i < NELEMS(missing_reasons); i++)
        if (t->missing & missing_reasons[i].bit)
            rmr_counter_add(st->ins, "poll_errors", missing_reasons[i].reason, 1);
    ecs_task_missing_text(t->missing, what, sizeof what);
    snprintf(line, sizeof line, "the task metadata of '%s' lacks %s", st->endpoint, what);
    message_add(msg, len, line);
}

static void on_poll(void *arg, struct ecs_poll *poll)
{
    struct fg_state *st = arg;
    if (st->stopping)
        return; /* cancelled by the stop */
    rmr_instance_t *ins = st->ins;
    int64_t now = rmr_now_ns(ins);
    int64_t mono = rmr_mono_ns(ins);
    int want_dd = rmr_schema_wanted(ins, RMR_SCHEMA_DATADOG);
    int want_es = rmr_schema_wanted(ins, RMR_SCHEMA_ELASTIC);
    if (poll->failed & ECS_POLL_TASK) {
        task_failed(st, poll, want_dd, now);
        return;
    }
    /* From here the task is known; the stats may have failed on their own. */
    const struct ecs_task *t = &poll->task;
    int have_stats = !(poll->failed & ECS_POLL_STATS);
    uint32_t status = RMR_CHECK_OK;
    char message[512] = "";

    if (!have_stats) {
        /* Datadog's check: the task answered but its stats did not, a WARNING. What the task
         * alone gives (task limits, tags) still goes; the rate state is left alone, so the
         * next good poll rates against the last good one. */
        status = RMR_CHECK_WARNING;
        poll_count_failure(st, poll);
        message_add(message, sizeof message, poll->reason);
    }
    task_incomplete(st, t, message, sizeof message);
    if (t->missing != 0)
        status = RMR_CHECK_WARNING;
    if (have_stats && poll->bad_entries > 0) {
        char line[256];
        status = RMR_CHECK_WARNING;
        snprintf(line, sizeof line, "ignored %u entries of '%s/task/stats': not JSON objects",
                 poll->bad_entries, st->endpoint);
        rmr_counter_add(ins, "poll_errors", "bad_stats_entry", poll->bad_entries);
        rmr_log(ins, RMR_LOG_WARN, "%s", line);
        message_add(message, sizeof message, line);
    }

    rmr_batch_t *bdd = want_dd ? rmr_batch_new(ins, RMR_SCHEMA_DATADOG) : NULL;
    rmr_batch_t *bes = want_es && have_stats ? rmr_batch_new(ins, RMR_SCHEMA_ELASTIC) : NULL;
    st->add_rc = 0;
    st->nadded = 0;
    if (bdd != NULL) {
        sample_task(&st->task_s, t);
        dd_render(st, bdd, FS_TASK, &st->task_s, dd_task_tags(st, t), now);
    }

    uint64_t no_state = 0, no_stats = 0, ifaces_skipped = 0;
    uint32_t npoll = have_stats ? ++st->npolls : 0;
    for (uint32_t i = 0; have_stats && i < t->ncontainers; i++) {
        const struct ecs_container *c = &t->containers[i];
        if (!c->normal || c->docker_id == NULL)
            continue;
        const struct ecs_stats *s = ecs_stats_find(&poll->stats, c->docker_id);
        if (s == NULL || !s->present) {
            no_stats++; /* not running yet, or stopped: nothing to say, not an error */
            continue;
        }
        struct fg_prev *p = prev_slot(st, c->docker_id);
        if (p == NULL)
            no_state++;
        int64_t dt = sample_window_ns(s, p, mono);
        struct fg_sample *o = &st->ctr_s;
        sample_clear(o);
        sample_cpu(o, s, c);
        sample_memory(o, s, c, t);
        sample_io(o, s);
        if (p != NULL)
            sample_rates(o, s, p, dt);
        ifaces_skipped += sample_ifaces(st, s, p, dt);
        if (bdd != NULL)
            dd_container(st, bdd, t, c, now);
        if (bes != NULL)
            es_container(st, bes, t, c, s, now);
        if (p != NULL)
            prev_update(p, c->docker_id, s, mono, npoll);
    }
    if (have_stats)
        prev_forget(st, npoll);
    if (no_stats > 0)
        rmr_counter_add(ins, "containers_skipped", "no_stats", no_stats);
    if (no_state > 0)
        rmr_counter_add(ins, "rate_state_full", NULL, no_state);
    if (ifaces_skipped > 0)
        rmr_counter_add(ins, "interfaces_skipped", NULL, ifaces_skipped);

    if (bdd != NULL)
        add_check(st, bdd, status, message, now);
    emit(st, bdd, RMR_SCHEMA_DATADOG);
    emit(st, bes, RMR_SCHEMA_ELASTIC);

    int rc = ecs_publish_tags(ins, t, st->have_task ? &st->task : NULL);
    if (rc < 0)
        rmr_log(ins, RMR_LOG_WARN, "cannot publish the tags of task '%s': %s",
                t->task_arn[0] != '\0' ? t->task_arn : "?", rmr_strerror(rc));
    /* Keep this task for the next publish, which forgets the containers that went away. */
    ecs_task_free(&st->task);
    st->task = poll->task;
    memset(&poll->task, 0, sizeof poll->task);
    st->have_task = 1;
}

static void on_tick(rmr_instance_t *ins, void *arg)
{
    struct fg_state *st = arg;
    int rc = ecs_client_poll(st->client, on_poll, st);
    if (rc == RMR_EAGAIN) {
        rmr_counter_add(ins, "polls_skipped", "still_running", 1);
        rmr_log(ins, RMR_LOG_WARN,
                "skipped a poll of '%s': the previous one is still running (timeout %lld ms, "
                "interval %lld ms)",
                st->endpoint, (long long)st->timeout_ms, (long long)st->interval_ms);
    } else if (rc < 0) {
        rmr_counter_add(ins, "poll_errors", rc == RMR_ENOMEM ? "no_memory" : "error", 1);
        rmr_log(ins, RMR_LOG_WARN, "cannot poll the task metadata endpoint '%s': %s", st->endpoint,
                rmr_strerror(rc));
    }
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static int fg_create(rmr_instance_t *ins, const void *config, void **state)
{
    const struct fg_cfg *cfg = config;
    /* The schema's ranges already hold these; the checks keep create() safe on its own. */
    if (cfg->interval_ms < FG_INTERVAL_MIN_MS || cfg->interval_ms > FG_INTERVAL_MAX_MS) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'interval': %lld ms is outside 1s..24h",
                (long long)cfg->interval_ms);
        return RMR_ECONFIG;
    }
    if (cfg->timeout_ms < FG_TIMEOUT_MIN_MS || cfg->timeout_ms > FG_TIMEOUT_MAX_MS) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'timeout': %lld ms is outside 100ms..60s",
                (long long)cfg->timeout_ms);
        return RMR_ECONFIG;
    }
    if (cfg->endpoint != NULL && cfg->endpoint[0] != '\0' && !ecs_endpoint_valid(cfg->endpoint)) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'endpoint' '%s': expected an http:// or https:// URL",
                cfg->endpoint);
        return RMR_ECONFIG;
    }
    struct fg_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->ins = ins;
    st->interval_ms = cfg->interval_ms;
    st->timeout_ms = cfg->timeout_ms;
    st->cfg_endpoint = cfg->endpoint;
    *state = st;
    return 0;
}

static int fg_start(rmr_instance_t *ins, void *state)
{
    struct fg_state *st = state;
    /* The option's variables fill it when set; asking the environment again also covers an
     * empty ECS_CONTAINER_METADATA_URI_V4 next to a set ECS_CONTAINER_METADATA_URI. */
    const char *endpoint = st->cfg_endpoint;
    if (endpoint == NULL || endpoint[0] == '\0')
        endpoint = ecs_endpoint_from_env();
    if (endpoint == NULL || endpoint[0] == '\0') {
        rmr_log(ins, RMR_LOG_WARN,
                "not on ECS: neither ECS_CONTAINER_METADATA_URI_V4 nor "
                "ECS_CONTAINER_METADATA_URI is set; the input stays idle");
        return 0;
    }
    if (!ecs_endpoint_valid(endpoint)) {
        rmr_log(ins, RMR_LOG_ERROR,
                "invalid task metadata endpoint '%s': expected an http:// or https:// URL",
                endpoint);
        return RMR_ECONFIG;
    }
    if ((st->endpoint = strdup(endpoint)) == NULL)
        return RMR_ENOMEM;
    st->client = ecs_client_new(ins, st->endpoint, (uint32_t)st->timeout_ms);
    if (st->client == NULL)
        return RMR_ENOMEM;
    /* The first poll right away: tags for DogStatsD and traces should not wait an interval. */
    return rmr_timer_start(ins, 0, (uint64_t)st->interval_ms, on_tick, st, &st->timer);
}

/* Nothing is aggregated between polls, so there is nothing to flush; a poll in flight is
 * cancelled by the host and its answer ignored. */
static int fg_stop(rmr_instance_t *ins, void *state)
{
    struct fg_state *st = state;
    st->stopping = 1;
    rmr_timer_stop(st->timer);
    st->timer = NULL;
    return 0;
}

static void fg_destroy(rmr_instance_t *ins, void *state)
{
    struct fg_state *st = state;
    if (st == NULL)
        return;
    /* The timer is not touched here: stop() stopped it, and a timer still running at destroy
     * has already been stopped (and freed) by the host, so st->timer may be dangling. */
    ecs_client_free(st->client);
    ecs_task_free(&st->task);
    free(st->endpoint);
    free(st);
}

static const struct rmr_plugin fg_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "ecs_fargate",
    .version = "1.0.0",
    .description = "an ECS task's containers from the task metadata endpoint, as Datadog's "
                   "ecs.fargate.* and Elastic's awsfargate.task_stats",
    .enable_env = "ECS_FARGATE,ENV_ECS_FARGATE",
    .options = fg_options,
    .config_size = sizeof(struct fg_cfg),
    .create = fg_create,
    .start = fg_start,
    .stop = fg_stop,
    .destroy = fg_destroy,
};

RMR_PLUGIN_DEFINE(fg_plugin)
