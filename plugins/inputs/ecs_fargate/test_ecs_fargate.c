/* The ecs_fargate input against the fake host: the task metadata fixtures served as the
 * endpoint, both schemas' names, values, types and tags, rates across polls, failures and the
 * fargate_check service check, the idle case without an endpoint, and schema filtering.
 *
 * argv[1] is the fixture directory (test/fixtures/ecs in the source tree); without it the
 * tests look for test/fixtures/ecs below the working directory. This input's own fixtures
 * there are derived (synthetic), so that every expected value below is exact:
 *  - fargate_cgroupv1_task_stats_next.json: dd_fargate_v4_task_stats_cgroupv1.json 10 s later
 *    (read and preread moved by 10 s). dd-agent: total_usage +1e8, usermode +6e7, kernelmode
 *    +3e7, system_cpu_usage +2e10, pgpgin +1000, pgpgout +500, pgfault +2000, pgmajfault +10,
 *    Read bytes +40960, Write bytes +81920, Read ops +10, Write ops +20, eth1 rx +1e6 bytes,
 *    tx +20000. apmtest-ping: total_usage dropped to 1e6 (a reset), user and kernel +1e7,
 *    eth1 as dd-agent. network_rate_stats left as they were.
 *  - fargate_cgroupv1_task_stats_null.json: dd-agent's first sample, apmtest-ping null.
 *  - fargate_cgroupv2_task.json: a /task for dd_agent_v4_task_stats_cgroupv2.json's DockerIds
 *    (no shared task document matches them): task limits 0.5 vCPU / 1024 MiB, the app without
 *    container limits, the agent with 256 units / 512 MiB.
 *  - fargate_ec2_task_stats.json: aws_doc_ec2_v4_task_stats.json re-keyed to the DockerIds of
 *    aws_doc_ec2_v4_task.json (pause and curl), which come from another run in the docs.
 *  - fargate_cgroupv1_task_stats_idle.json: dd_fargate_v4_task_stats_cgroupv1.json with
 *    apmtest-ping idle: its cpu_stats.cpu_usage made equal to its precpu_stats.cpu_usage, the
 *    host's system_cpu_usage still 1.991e10 ns on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakehost.h"
#include "plugin_test.h"
#include "tap.h"

const struct rmr_plugin *rmr_plugin_describe(void);

#define EP        "http://169.254.170.2/v4/67cd8a22b533459696d4ccab5278e009-2860414825"
#define DD_AGENT  "67cd8a22b533459696d4ccab5278e009-2860414825"
#define APMTEST   "67cd8a22b533459696d4ccab5278e009-3344678718"
#define TASK_V1   "dd_fargate_v4_task.json"
#define STATS_V1  "dd_fargate_v4_task_stats_cgroupv1.json"
#define STATS_V1N "fargate_cgroupv1_task_stats_next.json"
#define STATS_V1Z "fargate_cgroupv1_task_stats_null.json"
#define STATS_V1I "fargate_cgroupv1_task_stats_idle.json"
#define TASK_V2   "fargate_cgroupv2_task.json"
#define STATS_V2  "dd_agent_v4_task_stats_cgroupv2.json"

static const char *fixdir = "test/fixtures/ecs";
static const char *const both_schemas[] = {RMR_SCHEMA_DATADOG, RMR_SCHEMA_ELASTIC, NULL};

/* ---- helpers ------------------------------------------------------------------------------ */

/* Serves a fixture file at EP + suffix. */
static void serve(struct rmr_fakehost *fh, const char *suffix, const char *file)
{
    char url[256], path[1024];
    snprintf(url, sizeof url, "%s%s", EP, suffix);
    snprintf(path, sizeof path, "%s/%s", fixdir, file);
    int rc = rmr_fakehost_fetch_serve_file(fh, "GET", url, 200, path);
    if (rc != 0)
        printf("# cannot serve '%s': %s\n", path, rmr_strerror(rc));
}

static void serve_body(struct rmr_fakehost *fh, const char *suffix, int status, const char *body)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", EP, suffix);
    rmr_fakehost_fetch_serve(fh, "GET", url, status, body, strlen(body));
}

static void serve_error(struct rmr_fakehost *fh, const char *suffix, int error)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", EP, suffix);
    rmr_fakehost_fetch_serve_error(fh, NULL, url, error);
}

/* A fake host with both schemas wanted and a started instance polling EP. */
static rmr_instance_t *start(struct rmr_fakehost *fh, const char *conf)
{
    rmr_fakehost_want_schemas(fh, both_schemas);
    rmr_instance_t *ins = plugin_make(fh, conf != NULL ? conf : "endpoint = " EP, NULL);
    if (ins != NULL && rmr_fakehost_start(fh, ins) != 0)
        printf("# start failed\n");
    return ins;
}

/* The newest emitted batch with this schema, or NULL. */
static const rmr_batch_t *last_batch(struct rmr_fakehost *fh, const char *schema)
{
    for (uint32_t i = rmr_fakehost_emitted_count(fh); i > 0; i--) {
        const rmr_batch_t *b = rmr_fakehost_emitted(fh, i - 1);
        const char *s = rmr_batch_schema(b);
        if (s != NULL && strcmp(s, schema) == 0)
            return b;
    }
    return NULL;
}

static uint32_t count_schema(struct rmr_fakehost *fh, const char *schema)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < rmr_fakehost_emitted_count(fh); i++) {
        const char *s = rmr_batch_schema(rmr_fakehost_emitted(fh, i));
        if (s != NULL && strcmp(s, schema) == 0)
            n++;
    }
    return n;
}

static int str_eq(struct rmr_str s, const char *c)
{
    return strlen(c) == s.len && (s.len == 0 || memcmp(s.ptr, c, s.len) == 0);
}

/* tag "key:value" (split at the first ':') is in the set. */
static int has_tag(const struct rmr_tag *tags, uint32_t n, const char *tag)
{
    const char *colon = strchr(tag, ':');
    size_t klen = colon != NULL ? (size_t)(colon - tag) : strlen(tag);
    const char *value = colon != NULL ? colon + 1 : "";
    for (uint32_t i = 0; i < n; i++)
        if (tags[i].key.len == klen && memcmp(tags[i].key.ptr, tag, klen) == 0 &&
            str_eq(tags[i].value, value))
            return 1;
    return 0;
}

/* "k:v,k:v" of a tag set, in the order the batch holds it (sorted). Caller frees. */
static char *tags_str(const struct rmr_tag *tags, uint32_t n)
{
    size_t cap = 64, len = 0;
    for (uint32_t i = 0; i < n; i++)
        cap += tags[i].key.len + tags[i].value.len + 2;
    char *s = malloc(cap);
    s[0] = '\0';
    for (uint32_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%.*s:%.*s", i ? "," : "",
                                (int)tags[i].key.len, tags[i].key.ptr, (int)tags[i].value.len,
                                tags[i].value.ptr ? tags[i].value.ptr : "");
    return s;
}

/* Finds metric records named name carrying tags t1 and t2 (each "key:value" or NULL).
 * Returns how many match; *out is the first. */
static int find_metric(const rmr_batch_t *b, const char *name, const char *t1, const char *t2,
                       struct rmr_metric *out)
{
    int found = 0;
    for (uint32_t i = 0; b != NULL && i < rmr_batch_count(b); i++) {
        struct rmr_metric m;
        memset(&m, 0, sizeof m);
        m.struct_size = sizeof m;
        if (rmr_record_kind(b, i) != RMR_REC_METRIC || rmr_metric_get(b, i, &m) != 0)
            continue;
        if (!str_eq(m.name, name) || (t1 && !has_tag(m.tags, m.ntags, t1)) ||
            (t2 && !has_tag(m.tags, m.ntags, t2)))
            continue;
        if (found++ == 0)
            *out = m;
    }
    return found;
}

static uint32_t count_metrics(const rmr_batch_t *b, const char *t1)
{
    uint32_t n = 0;
    for (uint32_t i = 0; b != NULL && i < rmr_batch_count(b); i++) {
        struct rmr_metric m;
        memset(&m, 0, sizeof m);
        m.struct_size = sizeof m;
        if (rmr_record_kind(b, i) == RMR_REC_METRIC && rmr_metric_get(b, i, &m) == 0 &&
            (t1 == NULL || has_tag(m.tags, m.ntags, t1)))
            n++;
    }
    return n;
}

/* The value of the one Datadog metric name with tags t1, t2; NAN when absent or ambiguous. */
static double dd_val(const rmr_batch_t *b, const char *name, const char *t1, const char *t2)
{
    struct rmr_metric m;
    return find_metric(b, name, t1, t2, &m) == 1 ? m.value : NAN;
}

#define DD_IS(b, name, t1, t2, want, eps, label)                                                   \
    IS_DBL(dd_val((b), (name), (t1), (t2)), (want), (eps), (label))
#define DD_ABSENT(b, name, t1, label)                                                              \
    do {                                                                                           \
        struct rmr_metric m_;                                                                      \
        IS_INT(find_metric((b), (name), (t1), NULL, &m_), 0, (label));                             \
    } while (0)

/* The type and interval of the one metric; "type/interval" for exact comparison. */
static char *dd_kind(const rmr_batch_t *b, const char *name, const char *t1, const char *t2)
{
    struct rmr_metric m;
    char buf[96];
    if (find_metric(b, name, t1, t2, &m) != 1)
        return strdup("(none or several)");
    snprintf(buf, sizeof buf, "%u/%lld/%.*s", m.type, (long long)m.interval_ms, (int)m.unit.len,
             m.unit.ptr ? m.unit.ptr : "");
    return strdup(buf);
}

#define DD_KIND(b, name, t1, t2, want, label)                                                      \
    do {                                                                                           \
        char *k_ = dd_kind((b), (name), (t1), (t2));                                               \
        IS_STR(k_, (want), (label));                                                               \
        free(k_);                                                                                  \
    } while (0)

/* The service check of a batch; status -1 when there is none. */
static int check_status(const rmr_batch_t *b, char *msg, size_t msglen)
{
    int status = -1, n = 0;
    for (uint32_t i = 0; b != NULL && i < rmr_batch_count(b); i++) {
        struct rmr_check c;
        memset(&c, 0, sizeof c);
        c.struct_size = sizeof c;
        if (rmr_record_kind(b, i) != RMR_REC_CHECK || rmr_check_get(b, i, &c) != 0)
            continue;
        n++;
        if (!str_eq(c.name, "fargate_check"))
            continue;
        status = (int)c.status;
        if (msg != NULL)
            snprintf(msg, msglen, "%.*s", (int)c.message.len, c.message.ptr ? c.message.ptr : "");
    }
    return n == 1 ? status : -1 - n;
}

/* The Elastic record of a container (by container.id). */
static int es_record(const rmr_batch_t *b, const char *id, struct rmr_metric *out)
{
    char tag[160];
    snprintf(tag, sizeof tag, "container.id:%s", id);
    return find_metric(b, "awsfargate.task_stats", tag, NULL, out);
}

static const struct rmr_value *es_field(const struct rmr_metric *m, const char *key)
{
    for (uint32_t i = 0; i < m->nfields; i++)
        if (str_eq(m->fields[i].key, key))
            return &m->fields[i].value;
    return NULL;
}

/* A field's value as a double; NAN when absent. */
static double es_num(const struct rmr_metric *m, const char *key)
{
    char full[160];
    snprintf(full, sizeof full, "awsfargate.task_stats.%s", key);
    const struct rmr_value *v = es_field(m, full);
    if (v == NULL)
        return NAN;
    switch (v->type) {
    case RMR_VAL_UINT: return (double)v->v.u;
    case RMR_VAL_INT: return (double)v->v.i;
    case RMR_VAL_DOUBLE: return v->v.d;
    default: return NAN;
    }
}

/* A counter field, which must be an unsigned integer; UINT64_MAX when absent or not. */
static uint64_t es_uint(const struct rmr_metric *m, const char *key)
{
    char full[160];
    snprintf(full, sizeof full, "awsfargate.task_stats.%s", key);
    const struct rmr_value *v = es_field(m, full);
    return v != NULL && v->type == RMR_VAL_UINT ? v->v.u : UINT64_MAX;
}

static int last_log_contains(struct rmr_fakehost *fh, const char *needle)
{
    for (uint32_t i = 0; i < rmr_fakehost_log_count(fh); i++)
        if (strstr(rmr_fakehost_log(fh, i), needle) != NULL)
            return 1;
    return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_descriptor(void)
{
    const struct rmr_plugin *d = rmr_plugin_describe();
    IS_STR(d->name, "ecs_fargate", "descriptor: named ecs_fargate");
    IS_INT(d->kind, RMR_KIND_INPUT, "descriptor: an input");
    IS_STR(d->enable_env, "ECS_FARGATE,ENV_ECS_FARGATE",
           "descriptor: enabled by Datadog's and Datakit's variables");
    const struct rmr_option *o = d->options;
    IS_STR(o[0].name, "interval", "options: interval first");
    IS_STR(o[0].def, "10s", "options: interval defaults to 10s");
    IS_STR(o[1].name, "endpoint", "options: endpoint");
    IS_STR(o[1].env, "ECS_CONTAINER_METADATA_URI_V4,ECS_CONTAINER_METADATA_URI",
           "options: endpoint from the v4 variable, else v3");
    OK(!(o[1].flags & RMR_OPT_ENABLES), "options: the endpoint variable does not enable the input "
                                        "(ECS sets it on EC2 too)");
    IS_STR(o[2].name, "timeout", "options: timeout");
    IS_STR(o[2].def, "5s", "options: timeout defaults to 5s");
    OK(o[3].name == NULL, "options: three");
}

/* cgroup v1, real Fargate: the first poll. */
static void test_cgroupv1_first_poll(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, "/task", TASK_V1);
    serve(fh, "/task/stats", STATS_V1);
    rmr_instance_t *ins = start(fh, NULL);
    OK(ins != NULL, "v1: started");
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "v1: nothing before the first advance");
    rmr_fakehost_advance(fh, 0);
    IS_INT(rmr_fakehost_fetch_count(fh), 2, "v1: first poll at start: two GETs");
    const struct rmr_fakehost_fetch *f0 = rmr_fakehost_fetch(fh, 0);
    const struct rmr_fakehost_fetch *f1 = rmr_fakehost_fetch(fh, 1);
    OK(f0 && f1 &&
           ((strcmp(f0->url, EP "/task") == 0 && strcmp(f1->url, EP "/task/stats") == 0) ||
            (strcmp(f1->url, EP "/task") == 0 && strcmp(f0->url, EP "/task/stats") == 0)),
       "v1: GET <endpoint>/task and <endpoint>/task/stats");
    OK(f0 && f0->timeout_ms == 5000, "v1: each GET bounded by the 5s default timeout");
    IS_INT(rmr_fakehost_emitted_count(fh), 2, "v1: one batch per wanted schema");

    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    const char *A = "container_name:dd-agent", *B = "container_name:apmtest-ping";
    OK(dd != NULL, "v1: a datadog batch");

    /* CPU: PROTOCOLS.md test vectors. */
    DD_IS(dd, "ecs.fargate.cpu.percent", A, NULL, 86559152.0 / 19920000000.0 * 2 * 100, 1e-12,
          "v1 dd-agent: cpu.percent = cpu_delta/system_delta*online*100 (not rounded)");
    IS_DBL(round(dd_val(dd, "ecs.fargate.cpu.percent", A, NULL) * 1e4) / 1e4, 0.8691, 1e-12,
           "v1 dd-agent: cpu.percent 0.8691 to 4 significant digits");
    DD_IS(dd, "ecs.fargate.cpu.percent", B, NULL, 6672562.0 / 19910000000.0 * 2 * 100, 1e-12,
          "v1 apmtest-ping: cpu.percent 0.0670");
    DD_KIND(dd, "ecs.fargate.cpu.percent", A, NULL, "1/0/%", "v1: cpu.percent is a gauge in %");
    DD_IS(dd, "ecs.fargate.cpu.limit", A, NULL, 2, 0, "v1: cpu.limit = container Limits.CPU");
    DD_ABSENT(dd, "ecs.fargate.cpu.usage", A, "v1: no cpu.usage rate before a second poll");
    DD_ABSENT(dd, "ecs.fargate.cpu.user", A, "v1: no cpu.user rate before a second poll");
    DD_ABSENT(dd, "ecs.fargate.mem.pgfault", A, "v1: no pgfault rate before a second poll");
    DD_ABSENT(dd, "ecs.fargate.io.bytes.read", A, "v1: no io rate before a second poll");

    /* Memory. */
    DD_IS(dd, "ecs.fargate.mem.usage", A, NULL, 160886784, 0, "v1: mem.usage raw");
    DD_IS(dd, "ecs.fargate.mem.max_usage", A, NULL, 205619200, 0, "v1: mem.max_usage");
    DD_IS(dd, "ecs.fargate.mem.limit", A, NULL, 922337, 0, "v1: mem.limit from memory_stats");
    DD_IS(dd, "ecs.fargate.mem.working_set", A, NULL, 156966912, 0,
          "v1: mem.working_set = usage - total_inactive_file");
    DD_IS(dd, "ecs.fargate.mem.working_set", B, NULL, 34865152, 0,
          "v1 apmtest-ping: working set = usage");
    DD_IS(dd, "ecs.fargate.mem.cache", A, NULL, 5136384, 0, "v1: mem.cache");
    DD_IS(dd, "ecs.fargate.mem.rss", A, NULL, 147873792, 0, "v1: mem.rss");
    DD_IS(dd, "ecs.fargate.mem.mapped_file", A, NULL, 0, 0, "v1: mem.mapped_file");
    DD_IS(dd, "ecs.fargate.mem.active_anon", A, NULL, 0, 0, "v1: mem.active_anon");
    DD_IS(dd, "ecs.fargate.mem.active_file", A, NULL, 1081344, 0, "v1: mem.active_file");
    DD_IS(dd, "ecs.fargate.mem.inactive_file", A, NULL, 3919872, 0, "v1: mem.inactive_file");
    DD_IS(dd, "ecs.fargate.mem.hierarchical_memory_limit", A, NULL, 3221225472.0, 0,
          "v1: mem.hierarchical_memory_limit");
    DD_IS(dd, "ecs.fargate.mem.hierarchical_memsw_limit", A, NULL, 92233720, 0,
          "v1: mem.hierarchical_memsw_limit");
    DD_KIND(dd, "ecs.fargate.mem.usage", A, NULL, "1/0/By", "v1: mem.usage is a gauge in bytes");

    /* Network: per interface, the ECS agent's rate on the first poll. */
    const char *E = "interface:eth1";
    DD_IS(dd, "ecs.fargate.net.bytes_rcvd", A, E, 1911.331442643617, 1e-9,
          "v1: net.bytes_rcvd from network_rate_stats on the first poll");
    DD_IS(dd, "ecs.fargate.net.bytes_sent", A, E, 2390.9142405361977, 1e-9,
          "v1: net.bytes_sent from network_rate_stats");
    DD_KIND(dd, "ecs.fargate.net.bytes_rcvd", A, E, "3/10000/By/s",
            "v1: net.bytes_rcvd is a rate over read - preread (10.0004 s)");
    DD_IS(dd, "ecs.fargate.net.bytes_rcvd", B, E, 1850.5366907760217, 1e-9,
          "v1 apmtest-ping: its own rate, not summed with dd-agent's");
    DD_IS(dd, "ecs.fargate.net.rcvd_errors", A, E, 0, 0, "v1: net.rcvd_errors");
    DD_IS(dd, "ecs.fargate.net.sent_errors", A, E, 0, 0, "v1: net.sent_errors");
    DD_IS(dd, "ecs.fargate.net.packet.in_dropped", A, E, 0, 0, "v1: net.packet.in_dropped");
    DD_IS(dd, "ecs.fargate.net.packet.out_dropped", A, E, 0, 0, "v1: net.packet.out_dropped");
    DD_ABSENT(dd, "ecs.fargate.mem.usage", "interface:eth1",
              "v1: container metrics carry no interface tag");

    /* Task-wide metrics, with task tags only. */
    const char *T = "task_family:akira-fargate-check";
    DD_IS(dd, "ecs.fargate.cpu.task.limit", T, NULL, 1e9, 0,
          "v1: cpu.task.limit = Limits.CPU vCPUs * 1e9");
    DD_IS(dd, "ecs.fargate.mem.task.limit", T, NULL, 3221225472.0, 0,
          "v1: mem.task.limit = Limits.Memory MiB * 1048576");
    DD_IS(dd, "ecs.fargate.ephemeral_storage.utilized", T, NULL, 2925, 0,
          "v1: ephemeral_storage.utilized (MiB)");
    DD_IS(dd, "ecs.fargate.ephemeral_storage.reserved", T, NULL, 21499, 0,
          "v1: ephemeral_storage.reserved (MiB)");
    struct rmr_metric m;
    if (find_metric(dd, "ecs.fargate.mem.task.limit", NULL, NULL, &m) == 1) {
        char *s = tags_str(m.tags, m.ntags);
        IS_STR(s,
               "availability-zone:ap-northeast-1d,"
               "ecs_cluster:arn:aws:ecs:ap-northeast-1:601427279990:cluster/"
               "akira-fargate-check-cluster,"
               "ecs_cluster_name:akira-fargate-check-cluster,"
               "ecs_task_family:akira-fargate-check,ecs_task_version:1,region:ap-northeast-1,"
               "task_arn:arn:aws:ecs:ap-northeast-1:601427279990:task/"
               "akira-fargate-check-cluster/67cd8a22b533459696d4ccab5278e009,"
               "task_family:akira-fargate-check,task_name:akira-fargate-check,task_version:1",
               "v1: task metrics carry the task's tags and the check's compatibility tags");
        free(s);
    } else {
        OK(0, "v1: one mem.task.limit");
    }
    if (find_metric(dd, "ecs.fargate.mem.usage", A, NULL, &m) == 1) {
        char *s = tags_str(m.tags, m.ntags);
        IS_STR(s,
               "availability-zone:ap-northeast-1d,"
               "container_id:67cd8a22b533459696d4ccab5278e009-2860414825,"
               "container_name:dd-agent,"
               "docker_image:public.ecr.aws/b1o7r7e0/akira-agent-fgcheck:9,"
               "docker_name:dd-agent,"
               "ecs_cluster:arn:aws:ecs:ap-northeast-1:601427279990:cluster/"
               "akira-fargate-check-cluster,"
               "ecs_cluster_name:akira-fargate-check-cluster,ecs_container_name:dd-agent,"
               "ecs_task_family:akira-fargate-check,ecs_task_version:1,"
               "image_name:public.ecr.aws/b1o7r7e0/akira-agent-fgcheck,image_tag:9,"
               "region:ap-northeast-1,short_image:akira-agent-fgcheck,"
               "task_arn:arn:aws:ecs:ap-northeast-1:601427279990:task/"
               "akira-fargate-check-cluster/67cd8a22b533459696d4ccab5278e009,"
               "task_family:akira-fargate-check,task_name:akira-fargate-check,task_version:1",
               "v1: container metrics carry container, task and compatibility tags");
        IS_INT(m.time_ns, INT64_C(1767225600000000000), "v1: datadog metrics stamped at the poll");
        free(s);
    } else {
        OK(0, "v1: one mem.usage of dd-agent");
    }
    char msg[256];
    IS_INT(check_status(dd, msg, sizeof msg), RMR_CHECK_OK, "v1: fargate_check OK");
    /* Per container: cpu.percent, cpu.limit, 12 memory gauges, and per interface 2 rates and
     * 4 gauges; then 4 task metrics and the check. */
    IS_INT(count_metrics(dd, A), 20, "v1 dd-agent: 14 container + 6 interface metrics");
    IS_INT(count_metrics(dd, B), 20, "v1 apmtest-ping: 14 container + 6 interface metrics");
    IS_INT(rmr_batch_count(dd), 4 + 20 + 20 + 1, "v1: 4 task metrics, 40 container, 1 check");

    /* Elastic. */
    const rmr_batch_t *es = last_batch(fh, RMR_SCHEMA_ELASTIC);
    IS_INT(es ? rmr_batch_count(es) : 0, 2, "v1 elastic: one record per container");
    if (es_record(es, DD_AGENT, &m) == 1) {
        IS_INT(m.nfields, 31, "v1 elastic: 31 fields, kernel and user pct on the first poll");
        IS_INT(m.time_ns, INT64_C(1687223985077342978), "v1 elastic: @timestamp = stats read");
        IS_DBL(es_num(&m, "cpu.total.pct"), 86559152.0 * 2 / 19920000000.0, 1e-15,
               "v1 elastic: cpu.total.pct fraction (0.00869)");
        IS_DBL(es_num(&m, "cpu.total.norm.pct"), 86559152.0 / 19920000000.0, 1e-15,
               "v1 elastic: cpu.total.norm.pct (0.004345)");
        IS_UINT(es_uint(&m, "cpu.kernel.ticks"), 540000000, "v1 elastic: cpu.kernel.ticks");
        IS_UINT(es_uint(&m, "cpu.user.ticks"), 2300000000u, "v1 elastic: cpu.user.ticks");
        IS_UINT(es_uint(&m, "cpu.system.ticks"), UINT64_C(1039490000000),
                "v1 elastic: cpu.system.ticks");
        IS_DBL(es_num(&m, "cpu.system.pct"), 2, 0, "v1 elastic: cpu.system.pct = online");
        IS_DBL(es_num(&m, "cpu.system.norm.pct"), 1, 0, "v1 elastic: cpu.system.norm.pct = 1");
        /* Metricbeat's user and kernel shares over the document's own precpu window, as in
         * shared/fixtures/elastic/bulk_request.ndjson (dd-agent): user.pct 0.002008,
         * user.norm.pct 0.001004, kernel.pct 0, kernel.norm.pct 0 (printed to 6 decimals). */
        IS_DBL(es_num(&m, "cpu.user.pct"), 20000000.0 / 19920000000.0 * 2, 1e-15,
               "v1 elastic: cpu.user.pct from usage_in_usermode and its precpu value");
        IS_DBL(es_num(&m, "cpu.user.pct"), 0.002008, 1e-6,
               "v1 elastic: cpu.user.pct as the Elastic fixture (0.002008)");
        IS_DBL(es_num(&m, "cpu.user.norm.pct"), 0.001004, 1e-6,
               "v1 elastic: cpu.user.norm.pct as the Elastic fixture (0.001004)");
        IS_DBL(es_num(&m, "cpu.kernel.pct"), 0, 0,
               "v1 elastic: cpu.kernel.pct 0 (kernel time did not move; the fixture says 0)");
        IS_DBL(es_num(&m, "cpu.kernel.norm.pct"), 0, 0, "v1 elastic: cpu.kernel.norm.pct 0");
        IS_DBL(es_num(&m, "cpu.total.pct"), 0.00869, 1e-6,
               "v1 elastic: cpu.total.pct as the Elastic fixture (0.00869)");
        IS_UINT(es_uint(&m, "memory.usage.total"), 160886784, "v1 elastic: memory.usage.total");
        IS_UINT(es_uint(&m, "memory.usage.max"), 205619200, "v1 elastic: memory.usage.max");
        IS_DBL(es_num(&m, "memory.usage.pct"), 160886784.0 / 922337.0, 1e-9,
               "v1 elastic: memory.usage.pct = usage/limit (174.4, limit redacted upstream)");
        IS_UINT(es_uint(&m, "memory.rss.total"), 147873792, "v1 elastic: memory.rss.total");
        IS_DBL(es_num(&m, "memory.rss.pct"), 147873792.0 / 922337.0, 1e-9,
               "v1 elastic: memory.rss.pct");
        IS_UINT(es_uint(&m, "memory.limit"), 922337, "v1 elastic: memory.limit");
        OK(isnan(es_num(&m, "memory.fail.count")), "v1 elastic: no failcnt in the document");
        IS_UINT(es_uint(&m, "diskio.read.bytes"), 143360, "v1 elastic: diskio.read.bytes");
        IS_UINT(es_uint(&m, "diskio.read.ops"), 2, "v1 elastic: diskio.read.ops");
        IS_UINT(es_uint(&m, "diskio.write.bytes"), 57344, "v1 elastic: diskio.write.bytes");
        IS_UINT(es_uint(&m, "diskio.write.ops"), 14, "v1 elastic: diskio.write.ops");
        IS_DBL(es_num(&m, "diskio.summary.bytes"), 200704, 0, "v1 elastic: diskio.summary.bytes");
        IS_DBL(es_num(&m, "diskio.summary.ops"), 16, 0, "v1 elastic: diskio.summary.ops");
        IS_UINT(es_uint(&m, "network.eth1.inbound.bytes"), 781187362,
                "v1 elastic: network.eth1.inbound.bytes");
        IS_UINT(es_uint(&m, "network.eth1.inbound.packets"), 527514,
                "v1 elastic: network.eth1.inbound.packets");
        IS_UINT(es_uint(&m, "network.eth1.inbound.errors"), 0, "v1 elastic: inbound.errors");
        IS_UINT(es_uint(&m, "network.eth1.inbound.dropped"), 0, "v1 elastic: inbound.dropped");
        IS_UINT(es_uint(&m, "network.eth1.outbound.bytes"), 971750,
                "v1 elastic: network.eth1.outbound.bytes");
        IS_UINT(es_uint(&m, "network.eth1.outbound.packets"), 6117,
                "v1 elastic: network.eth1.outbound.packets");
        char *s = tags_str(m.tags, m.ntags);
        IS_STR(s,
               "awsfargate.task_stats.cluster_name:akira-fargate-check-cluster,"
               "awsfargate.task_stats.identifier:dd-agent/"
               "67cd8a22b533459696d4ccab5278e009-2860414825,"
               "awsfargate.task_stats.task_desired_status:RUNNING,"
               "awsfargate.task_stats.task_known_status:RUNNING,"
               "awsfargate.task_stats.task_name:akira-fargate-check,"
               "cloud.provider:aws,cloud.region:ap-northeast-1,"
               "container.id:67cd8a22b533459696d4ccab5278e009-2860414825,"
               "container.image.name:public.ecr.aws/b1o7r7e0/akira-agent-fgcheck:9,"
               "container.labels.com_amazonaws_ecs_cluster:arn:aws:ecs:ap-northeast-1:"
               "601427279990:cluster/akira-fargate-check-cluster,"
               "container.labels.com_amazonaws_ecs_container-name:dd-agent,"
               "container.labels.com_amazonaws_ecs_task-arn:arn:aws:ecs:ap-northeast-1:"
               "601427279990:task/akira-fargate-check-cluster/67cd8a22b533459696d4ccab5278e009,"
               "container.labels.com_amazonaws_ecs_task-definition-family:akira-fargate-check,"
               "container.labels.com_amazonaws_ecs_task-definition-version:1,"
               "container.name:dd-agent,service.type:awsfargate",
               "v1 elastic: Metricbeat's ECS fields as tags");
        free(s);
    } else {
        OK(0, "v1 elastic: one record of dd-agent");
    }
    IS_INT(es_record(es, APMTEST, &m), 1, "v1 elastic: one record of apmtest-ping");
    IS_UINT(es_uint(&m, "network.eth1.inbound.bytes"), 781186753,
            "v1 elastic apmtest-ping: its own copy of the task ENI counters");
    IS_UINT(es_uint(&m, "diskio.read.bytes"), 0, "v1 elastic apmtest-ping: empty blkio is 0");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", NULL), 0, "v1: no poll errors");
    rmr_fakehost_free(fh);
}

/* Two polls: rates between them, a counter reset, a container that vanishes and returns. */
static void test_rates(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, "/task", TASK_V1);
    serve(fh, "/task/stats", STATS_V1);
    rmr_instance_t *ins = start(fh, NULL);
    rmr_fakehost_advance(fh, 0);
    serve(fh, "/task/stats", STATS_V1N);
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 9999);
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "rates: nothing before the interval");
    rmr_fakehost_advance(fh, 1);
    IS_INT(rmr_fakehost_emitted_count(fh), 2, "rates: second poll after 10s");
    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    const char *A = "container_name:dd-agent", *B = "container_name:apmtest-ping";
    const char *E = "interface:eth1";
    /* dd-agent: every counter advanced over exactly 10 s of stats "read" time. */
    DD_IS(dd, "ecs.fargate.cpu.usage", A, NULL, 1e7, 0, "rates: cpu.usage = 1e8 ns / 10 s");
    DD_KIND(dd, "ecs.fargate.cpu.usage", A, NULL, "3/10000/ns/s",
            "rates: cpu.usage is a RATE over the 10 s between the samples");
    DD_IS(dd, "ecs.fargate.cpu.user", A, NULL, 6e6, 0, "rates: cpu.user (usage_in_usermode)");
    DD_IS(dd, "ecs.fargate.cpu.system", A, NULL, 3e6, 0, "rates: cpu.system (kernelmode)");
    DD_IS(dd, "ecs.fargate.mem.pgpgin", A, NULL, 100, 0, "rates: mem.pgpgin");
    DD_IS(dd, "ecs.fargate.mem.pgpgout", A, NULL, 50, 0, "rates: mem.pgpgout");
    DD_IS(dd, "ecs.fargate.mem.pgfault", A, NULL, 200, 0, "rates: mem.pgfault");
    DD_IS(dd, "ecs.fargate.mem.pgmajfault", A, NULL, 1, 0, "rates: mem.pgmajfault");
    DD_IS(dd, "ecs.fargate.io.bytes.read", A, NULL, 4096, 0, "rates: io.bytes.read");
    DD_IS(dd, "ecs.fargate.io.bytes.write", A, NULL, 8192, 0, "rates: io.bytes.write");
    DD_IS(dd, "ecs.fargate.io.ops.read", A, NULL, 1, 0, "rates: io.ops.read");
    DD_IS(dd, "ecs.fargate.io.ops.write", A, NULL, 2, 0, "rates: io.ops.write");
    DD_IS(dd, "ecs.fargate.net.bytes_rcvd", A, E, 100000, 0,
          "rates: net.bytes_rcvd from counters, not network_rate_stats");
    DD_IS(dd, "ecs.fargate.net.bytes_sent", A, E, 2000, 0, "rates: net.bytes_sent");
    DD_KIND(dd, "ecs.fargate.net.bytes_sent", A, E, "3/10000/By/s", "rates: net window 10 s");
    DD_IS(dd, "ecs.fargate.cpu.percent", A, NULL, 1e8 / 2e10 * 2 * 100, 1e-12,
          "rates: cpu.percent of the second sample (1%)");
    /* apmtest-ping: total_usage went down (reset): that one rate is skipped. */
    DD_ABSENT(dd, "ecs.fargate.cpu.usage", B, "rates: a counter reset skips the sample");
    DD_IS(dd, "ecs.fargate.cpu.user", B, NULL, 1e6, 0, "rates: other counters still rated");
    DD_IS(dd, "ecs.fargate.net.bytes_rcvd", B, E, 100000, 0,
          "rates: apmtest-ping's interface rated on its own");
    const rmr_batch_t *es = last_batch(fh, RMR_SCHEMA_ELASTIC);
    struct rmr_metric m;
    if (es_record(es, DD_AGENT, &m) == 1) {
        IS_INT(m.nfields, 31, "rates elastic: kernel and user pct on every poll");
        IS_DBL(es_num(&m, "cpu.user.pct"), 6e7 / 2e10 * 2, 1e-15,
               "rates elastic: cpu.user.pct over the document's own window");
        IS_DBL(es_num(&m, "cpu.user.norm.pct"), 6e7 / 2e10, 1e-15, "rates elastic: user norm");
        IS_DBL(es_num(&m, "cpu.kernel.pct"), 3e7 / 2e10 * 2, 1e-15, "rates elastic: kernel.pct");
        IS_DBL(es_num(&m, "cpu.kernel.norm.pct"), 3e7 / 2e10, 1e-15, "rates elastic: kernel norm");
        IS_INT(m.time_ns, INT64_C(1687223995077342978), "rates elastic: the new read time");
    } else {
        OK(0, "rates elastic: one dd-agent record");
    }

    /* apmtest-ping not ready (null): skipped, and its rate state forgotten. */
    serve(fh, "/task/stats", STATS_V1Z);
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 10000);
    dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    IS_INT(count_metrics(dd, B), 0, "null entry: no metrics for the container");
    OK(count_metrics(dd, A) > 0, "null entry: the other container still reported");
    IS_INT(check_status(dd, NULL, 0), RMR_CHECK_OK, "null entry: not an error");
    IS_UINT(rmr_fakehost_counter(fh, ins, "containers_skipped", "no_stats"), 1,
            "null entry: counted as containers_skipped{no_stats}");
    /* dd-agent went back in time (the null fixture holds the first sample): a reset. */
    DD_ABSENT(dd, "ecs.fargate.cpu.usage", A, "null entry: counters that went back skipped");
    es = last_batch(fh, RMR_SCHEMA_ELASTIC);
    IS_INT(es ? rmr_batch_count(es) : 0, 1, "null entry: one elastic record");

    serve(fh, "/task/stats", STATS_V1N);
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 10000);
    dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    DD_ABSENT(dd, "ecs.fargate.cpu.user", B, "back: a returning container starts afresh");
    DD_IS(dd, "ecs.fargate.net.bytes_rcvd", B, E, 1850.5366907760217, 1e-9,
          "back: its first-poll network rate comes from network_rate_stats again");
    DD_IS(dd, "ecs.fargate.cpu.usage", A, NULL, 1e7, 0, "back: dd-agent rated against the last");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", NULL), 0, "rates: no poll errors");
    rmr_fakehost_free(fh);
}

/* cgroup v2 (ECS Managed Instances): lowercase blkio ops, no max_usage, unlimited memory. */
static void test_cgroupv2(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, "/task", TASK_V2);
    serve(fh, "/task/stats", STATS_V2);
    start(fh, NULL);
    rmr_fakehost_advance(fh, 0);
    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    const char *A = "container_name:managed-instances-app", *B = "container_name:datadog-agent";
    DD_IS(dd, "ecs.fargate.cpu.percent", A, NULL, 781000.0 / 9990000000.0 * 100, 1e-12,
          "v2 app: cpu.percent 0.0078");
    DD_IS(dd, "ecs.fargate.cpu.percent", B, NULL, 54185000.0 / 9990000000.0 * 100, 1e-12,
          "v2 agent: cpu.percent 0.5424");
    DD_IS(dd, "ecs.fargate.mem.usage", A, NULL, 42827776, 0, "v2 app: mem.usage");
    DD_IS(dd, "ecs.fargate.mem.working_set", A, NULL, 36745216, 0,
          "v2 app: working set = usage - inactive_file");
    DD_IS(dd, "ecs.fargate.mem.working_set", B, NULL, 249430016, 0, "v2 agent: working set");
    DD_ABSENT(dd, "ecs.fargate.mem.max_usage", A, "v2: no max_usage in cgroup v2");
    DD_ABSENT(dd, "ecs.fargate.mem.cache", A, "v2: no cache key in cgroup v2");
    DD_ABSENT(dd, "ecs.fargate.mem.rss", A, "v2: no rss key in cgroup v2");
    DD_IS(dd, "ecs.fargate.mem.active_anon", A, NULL, 20480, 0, "v2: active_anon is there");
    DD_IS(dd, "ecs.fargate.mem.inactive_file", A, NULL, 6082560, 0, "v2: inactive_file");
    DD_IS(dd, "ecs.fargate.mem.limit", A, NULL, 1073741824.0, 0,
          "v2 app: unlimited memory: the task's Limits.Memory");
    DD_IS(dd, "ecs.fargate.mem.limit", B, NULL, 536870912.0, 0,
          "v2 agent: unlimited memory: the container's Limits.Memory");
    DD_ABSENT(dd, "ecs.fargate.cpu.limit", A, "v2 app: Limits.CPU 0: no cpu.limit");
    DD_IS(dd, "ecs.fargate.cpu.limit", B, NULL, 256, 0, "v2 agent: cpu.limit 256 units");
    DD_ABSENT(dd, "ecs.fargate.net.bytes_rcvd", A, "v2: no network_rate_stats: no first rate");
    DD_IS(dd, "ecs.fargate.net.rcvd_errors", A, "interface:eth0", 0, 0, "v2: eth0 gauges");
    DD_IS(dd, "ecs.fargate.cpu.task.limit", "task_family:mi-app", NULL, 5e8, 0,
          "v2: cpu.task.limit 0.5 vCPU");
    DD_ABSENT(dd, "ecs.fargate.ephemeral_storage.utilized", NULL,
              "v2: no EphemeralStorageMetrics: no ephemeral_storage");
    IS_INT(check_status(dd, NULL, 0), RMR_CHECK_OK, "v2: fargate_check OK");
    const rmr_batch_t *es = last_batch(fh, RMR_SCHEMA_ELASTIC);
    struct rmr_metric m;
    if (es_record(es, "2207f63945be40abb2d7bca5a2661cfd-0911415269", &m) == 1) {
        IS_UINT(es_uint(&m, "diskio.read.bytes"), 11345920,
                "v2 elastic: lowercase 'read' ops summed over devices");
        IS_UINT(es_uint(&m, "diskio.write.bytes"), 28672, "v2 elastic: diskio.write.bytes");
        IS_UINT(es_uint(&m, "memory.rss.total"), 22978560, "v2 elastic: rss.total = anon");
        IS_UINT(es_uint(&m, "memory.limit"), 1073741824u, "v2 elastic: limit from the task");
        OK(isnan(es_num(&m, "memory.usage.max")), "v2 elastic: no memory.usage.max");
        IS_INT(m.time_ns, INT64_C(1761341587765945058), "v2 elastic: @timestamp = read");
        OK(has_tag(m.tags, m.ntags, "cloud.region:us-east-1"), "v2 elastic: cloud.region");
    } else {
        OK(0, "v2 elastic: one record of the app");
    }
    rmr_fakehost_free(fh);
}

/* The AWS documentation's EC2 examples: the pause container is skipped. */
static void test_ec2_doc(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, "/task", "aws_doc_ec2_v4_task.json");
    serve(fh, "/task/stats", "aws_doc_ec2_v4_task_stats.json");
    rmr_instance_t *ins = start(fh, NULL);
    rmr_fakehost_advance(fh, 0);
    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    /* The documentation's stats come from another run: no DockerId matches. */
    IS_INT(count_metrics(dd, "container_name:curl"), 0,
           "ec2 doc: a container without a stats entry is skipped");
    IS_INT(check_status(dd, NULL, 0), RMR_CHECK_OK, "ec2 doc: and that is not an error");
    IS_UINT(rmr_fakehost_counter(fh, ins, "containers_skipped", "no_stats"), 1,
            "ec2 doc: counted as containers_skipped{no_stats}");

    serve(fh, "/task/stats", "fargate_ec2_task_stats.json");
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 10000);
    dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    IS_INT(count_metrics(dd, "container_name:~internal~ecs~pause"), 0,
           "ec2 doc: the pause container has stats but is skipped");
    DD_IS(dd, "ecs.fargate.cpu.percent", "container_name:curl", NULL,
          250484.0 / 2000000000.0 * 2 * 100, 1e-12, "ec2 doc: curl's cpu.percent");
    DD_IS(dd, "ecs.fargate.cpu.limit", "container_name:curl", NULL, 10, 0, "ec2 doc: cpu.limit");
    DD_IS(dd, "ecs.fargate.mem.limit", "container_name:curl", NULL, 134217728, 0,
          "ec2 doc: mem.limit");
    DD_IS(dd, "ecs.fargate.mem.usage", "ecs_cluster:default", "ecs_cluster_name:default", 1814528,
          0, "ec2 doc: a short cluster name as it is");
    DD_ABSENT(dd, "ecs.fargate.cpu.task.limit", NULL, "ec2 doc: no task Limits: no task limit");
    const rmr_batch_t *es = last_batch(fh, RMR_SCHEMA_ELASTIC);
    IS_INT(es ? rmr_batch_count(es) : 0, 1, "ec2 doc: one elastic record, curl's");
    IS_INT(check_status(dd, NULL, 0), RMR_CHECK_OK, "ec2 doc: fargate_check OK");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", NULL), 0, "ec2 doc: no poll errors");
    rmr_fakehost_free(fh);
}

static void test_bad_stats_entry(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, "/task", TASK_V1);
    serve_body(fh, "/task/stats", 200, "{\"" DD_AGENT "\": 42, \"" APMTEST "\": null}");
    rmr_instance_t *ins = start(fh, NULL);
    rmr_fakehost_advance(fh, 0);
    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    char msg[256] = "";
    IS_INT(check_status(dd, msg, sizeof msg), RMR_CHECK_WARNING,
           "bad entry: fargate_check WARNING");
    CONTAINS(msg, "not JSON objects", "bad entry: the check says why");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "bad_stats_entry"), 1,
            "bad entry: counted");
    IS_INT(count_metrics(dd, "container_name:dd-agent"), 0, "bad entry: no container metrics");
    OK(count_metrics(dd, "task_family:akira-fargate-check") > 0,
       "bad entry: the task's metrics still go");
    rmr_fakehost_free(fh);
}

static void test_unreachable(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve_error(fh, "/task", RMR_ECONNREFUSED);
    serve_error(fh, "/task/stats", RMR_ECONNREFUSED);
    rmr_instance_t *ins = start(fh, NULL);
    rmr_fakehost_advance(fh, 0);
    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    char msg[256] = "";
    IS_INT(check_status(dd, msg, sizeof msg), RMR_CHECK_CRITICAL,
           "unreachable: fargate_check CRITICAL");
    OK(msg[0] != '\0', "unreachable: with a message");
    IS_INT(dd ? rmr_batch_count(dd) : 0, 1, "unreachable: the check alone");
    IS_INT(count_schema(fh, RMR_SCHEMA_ELASTIC), 0, "unreachable: nothing for elastic");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "connection_refused"), 1,
            "unreachable: counted as poll_errors{connection_refused}");
    OK(last_log_contains(fh, "cannot poll the task metadata endpoint '" EP "'"),
       "unreachable: logged with the endpoint");
    OK(last_log_contains(fh, "refused"), "unreachable: the log says the cause");

    /* The next poll is retried and succeeds. */
    serve(fh, "/task", TASK_V1);
    serve(fh, "/task/stats", STATS_V1);
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 10000);
    dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    IS_INT(check_status(dd, NULL, 0), RMR_CHECK_OK, "unreachable: next poll OK again");
    rmr_fakehost_free(fh);
}

static void test_timeout_and_skip(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve_error(fh, "/task", RMR_ETIMEDOUT);
    serve_error(fh, "/task/stats", RMR_ETIMEDOUT);
    rmr_instance_t *ins = start(fh, "endpoint = " EP "\ninterval = 2s\ntimeout = 5s");
    rmr_fakehost_advance(fh, 4000);
    IS_UINT(rmr_fakehost_counter(fh, ins, "polls_skipped", "still_running"), 2,
            "timeout: polls at 2s and 4s skipped while the first runs");
    IS_INT(count_schema(fh, RMR_SCHEMA_DATADOG), 0, "timeout: nothing before the timeout");
    OK(last_log_contains(fh, "still running"), "timeout: the skip is logged with its cause");
    rmr_fakehost_advance(fh, 1000);
    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    IS_INT(check_status(dd, NULL, 0), RMR_CHECK_CRITICAL, "timeout: fargate_check CRITICAL");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "timeout"), 1,
            "timeout: counted as poll_errors{timeout}");
    OK(last_log_contains(fh, "timed out"), "timeout: the log says it timed out");
    uint32_t fetches = rmr_fakehost_fetch_count(fh);
    rmr_fakehost_advance(fh, 1000);
    OK(rmr_fakehost_fetch_count(fh) > fetches, "timeout: the next tick polls again");
    rmr_fakehost_free(fh);
}

static void test_bad_json(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve_body(fh, "/task", 200, "<html>not json</html>");
    serve(fh, "/task/stats", STATS_V1);
    rmr_instance_t *ins = start(fh, NULL);
    rmr_fakehost_advance(fh, 0);
    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    IS_INT(check_status(dd, NULL, 0), RMR_CHECK_CRITICAL, "bad json: /task unusable: CRITICAL");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "bad_json"), 1,
            "bad json: counted as poll_errors{bad_json}");
    IS_INT(count_schema(fh, RMR_SCHEMA_ELASTIC), 0, "bad json: no records");
    rmr_fakehost_free(fh);
}

static void test_task_404(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve_body(fh, "/task", 404, "404 page not found");
    serve(fh, "/task/stats", STATS_V1);
    rmr_instance_t *ins = start(fh, NULL);
    rmr_fakehost_advance(fh, 0);
    IS_INT(check_status(last_batch(fh, RMR_SCHEMA_DATADOG), NULL, 0), RMR_CHECK_CRITICAL,
           "task 404: CRITICAL");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "http_404"), 1,
            "task 404: counted as poll_errors{http_404}");
    rmr_fakehost_free(fh);
}

static void test_stats_500(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, "/task", TASK_V1);
    serve_body(fh, "/task/stats", 500, "internal error");
    rmr_instance_t *ins = start(fh, NULL);
    rmr_fakehost_advance(fh, 0);
    char msg[256] = "";
    IS_INT(check_status(last_batch(fh, RMR_SCHEMA_DATADOG), msg, sizeof msg), RMR_CHECK_WARNING,
           "stats 500: the task answered: WARNING");
    CONTAINS(msg, "/task/stats", "stats 500: the message names the stats endpoint");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "http_500"), 1,
            "stats 500: counted as poll_errors{http_500}");
    OK(last_log_contains(fh, "500"), "stats 500: logged with the status");
    /* What the task alone gives still goes (as Datadog's check sends cpu.limit before it asks
     * for the stats): the task's metrics and its tags; no container metrics, nothing for
     * elastic. */
    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    DD_IS(dd, "ecs.fargate.mem.task.limit", "task_family:akira-fargate-check", NULL, 3221225472.0,
          0, "stats 500: task metrics still sent");
    IS_INT(count_metrics(dd, "container_name:dd-agent"), 0, "stats 500: no container metrics");
    IS_INT(count_schema(fh, RMR_SCHEMA_ELASTIC), 0, "stats 500: nothing for elastic");
    IS_INT(rmr_fakehost_tagger_count(fh), 2, "stats 500: the task's tags are published");

    /* The next good poll: OK, container metrics again, and rates against the last good
     * stats (none yet here: the first stats are these). */
    serve(fh, "/task/stats", STATS_V1);
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 10000);
    dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    IS_INT(check_status(dd, NULL, 0), RMR_CHECK_OK, "stats 500: the next good poll is OK");
    OK(count_metrics(dd, "container_name:dd-agent") > 0, "stats 500: container metrics back");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "http_500"), 1,
            "stats 500: the good poll counts no error");
    rmr_fakehost_free(fh);
}

/* The stats fail first (a 500 at once) and /task later (a timeout): the check is CRITICAL,
 * because /task failed, whichever answer came first. */
static void test_stats_then_task_fail(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve_body(fh, "/task/stats", 500, "internal error");
    serve_error(fh, "/task", RMR_ETIMEDOUT);
    rmr_instance_t *ins = start(fh, "endpoint = " EP "\ntimeout = 2s");
    rmr_fakehost_advance(fh, 0);
    IS_INT(count_schema(fh, RMR_SCHEMA_DATADOG), 0, "both fail: nothing while /task is pending");
    rmr_fakehost_advance(fh, 2000);
    char msg[256] = "";
    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    IS_INT(check_status(dd, msg, sizeof msg), RMR_CHECK_CRITICAL,
           "both fail: CRITICAL though the stats failed first");
    IS_STR(msg, "GET /task: timed out; GET /task/stats: HTTP 500",
           "both fail: the message tells both");
    IS_INT(dd ? rmr_batch_count(dd) : 0, 1, "both fail: the check alone");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "timeout"), 1,
            "both fail: counted once, by /task's cause");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "http_500"), 0,
            "both fail: not counted a second time for the stats");
    IS_INT(rmr_fakehost_tagger_count(fh), 0, "both fail: no tags published");

    /* A /task failure whose text names the stats endpoint is still a /task failure: the
     * check no longer reads the reason. */
    serve_body(fh, "/task", 200, "{\"x\": \"/task/stats\"");
    serve(fh, "/task/stats", STATS_V1);
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 10000);
    dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    IS_INT(check_status(dd, msg, sizeof msg), RMR_CHECK_CRITICAL,
           "bad task json: CRITICAL whatever its text");
    CONTAINS(msg, "GET /task: not JSON", "bad task json: the parser's reason");
    rmr_fakehost_free(fh);
}

/* An idle container (total_usage unchanged while the host's system time moved on) gets 0,
 * as Datadog's check (cpu_percent starts at 0.0) and Metricbeat do, not no figure at all. */
static void test_idle(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, "/task", TASK_V1);
    serve(fh, "/task/stats", STATS_V1I);
    start(fh, NULL);
    rmr_fakehost_advance(fh, 0);
    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    const char *B = "container_name:apmtest-ping";
    DD_IS(dd, "ecs.fargate.cpu.percent", B, NULL, 0, 0, "idle: cpu.percent 0, not left out");
    DD_IS(dd, "ecs.fargate.cpu.percent", "container_name:dd-agent", NULL,
          86559152.0 / 19920000000.0 * 2 * 100, 1e-12, "idle: the busy one as before");
    const rmr_batch_t *es = last_batch(fh, RMR_SCHEMA_ELASTIC);
    struct rmr_metric m;
    if (es_record(es, APMTEST, &m) == 1) {
        IS_DBL(es_num(&m, "cpu.total.pct"), 0, 0, "idle elastic: cpu.total.pct 0");
        IS_DBL(es_num(&m, "cpu.total.norm.pct"), 0, 0, "idle elastic: cpu.total.norm.pct 0");
        IS_DBL(es_num(&m, "cpu.user.pct"), 0, 0, "idle elastic: cpu.user.pct 0");
        IS_DBL(es_num(&m, "cpu.kernel.pct"), 0, 0, "idle elastic: cpu.kernel.pct 0");
        IS_INT(m.nfields, 31, "idle elastic: every field, as a busy container's");
    } else {
        OK(0, "idle elastic: one apmtest-ping record");
    }
    rmr_fakehost_free(fh);
}

/* A /task that is a JSON object but lacks TaskARN, Cluster or Containers: reported as far as
 * it goes under a WARNING (Datadog: "missing Cluster/Containers"), never CRITICAL; counted at
 * every poll, logged once. */
static void test_task_incomplete(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve_body(fh, "/task", 200,
               "{\"TaskARN\":\"arn:aws:ecs:eu-west-1:1:task/c/abc\",\"Family\":\"fam\","
               "\"Revision\":\"3\",\"Limits\":{\"CPU\":0.5,\"Memory\":1024}}");
    serve(fh, "/task/stats", STATS_V1);
    rmr_instance_t *ins = start(fh, NULL);
    rmr_fakehost_advance(fh, 0);
    const rmr_batch_t *dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    char msg[512] = "";
    IS_INT(check_status(dd, msg, sizeof msg), RMR_CHECK_WARNING,
           "no Cluster, no Containers: WARNING, not CRITICAL");
    IS_STR(msg, "the task metadata of '" EP "' lacks Cluster, Containers",
           "no Cluster, no Containers: the check says what is missing");
    DD_IS(dd, "ecs.fargate.mem.task.limit", "task_family:fam", NULL, 1073741824.0, 0,
          "no Containers: the task's own metrics still go");
    DD_IS(dd, "ecs.fargate.cpu.task.limit", "task_version:3", NULL, 5e8, 0,
          "no Containers: cpu.task.limit too");
    IS_INT(count_metrics(dd, "container_name:dd-agent"), 0, "no Containers: no container metrics");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "missing_cluster"), 1,
            "no Cluster: counted");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "missing_containers"), 1,
            "no Containers: counted");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "bad_json"), 0, "not counted as bad JSON");
    const struct rmr_tag *gt;
    uint32_t ngt;
    rmr_fakehost_global_tags(fh, &gt, &ngt);
    OK(has_tag(gt, ngt, "task_family:fam") && has_tag(gt, ngt, "region:eu-west-1"),
       "no Cluster: the task tags it has are published");
    uint32_t nlog = rmr_fakehost_log_count(fh);
    OK(last_log_contains(fh, "the task metadata of '" EP "' lacks Cluster, Containers"),
       "incomplete: logged with what is missing");
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_log_count(fh), nlog, "incomplete: the same again is not logged again");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "missing_cluster"), 2,
            "incomplete: counted at every poll");
    IS_INT(check_status(last_batch(fh, RMR_SCHEMA_DATADOG), NULL, 0), RMR_CHECK_WARNING,
           "incomplete: WARNING at every poll");

    /* Containers but no Cluster and no TaskARN: the containers are reported. */
    serve_body(fh, "/task", 200,
               "{\"Containers\":[{\"DockerId\":\"" DD_AGENT "\",\"Name\":\"dd-agent\","
               "\"Image\":\"agent:7\",\"Type\":\"NORMAL\"}]}");
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 10000);
    dd = last_batch(fh, RMR_SCHEMA_DATADOG);
    IS_INT(check_status(dd, msg, sizeof msg), RMR_CHECK_WARNING, "no Cluster, no ARN: WARNING");
    CONTAINS(msg, "lacks TaskARN, Cluster", "no Cluster, no ARN: says so");
    DD_IS(dd, "ecs.fargate.cpu.percent", "container_name:dd-agent", NULL,
          86559152.0 / 19920000000.0 * 2 * 100, 1e-12,
          "no Cluster, no ARN: the container's metrics still go");
    struct rmr_metric m;
    if (find_metric(dd, "ecs.fargate.cpu.percent", "container_name:dd-agent", NULL, &m) == 1) {
        char *t = tags_str(m.tags, m.ntags);
        OK(strstr(t, "ecs_cluster") == NULL && strstr(t, "task_arn") == NULL,
           "no Cluster, no ARN: their tags are left out, not sent empty");
        free(t);
    } else {
        OK(0, "no Cluster, no ARN: one cpu.percent of dd-agent");
    }
    IS_INT(count_schema(fh, RMR_SCHEMA_ELASTIC), 1, "no Cluster, no ARN: elastic too");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", "missing_task_arn"), 1, "no ARN: counted");
    OK(rmr_fakehost_log_count(fh) > nlog, "incomplete: a different lack is logged");

    /* Whole again: OK, said once. */
    serve(fh, "/task", TASK_V1);
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 10000);
    IS_INT(check_status(last_batch(fh, RMR_SCHEMA_DATADOG), NULL, 0), RMR_CHECK_OK,
           "whole again: OK");
    OK(last_log_contains(fh, "is complete again"), "whole again: said");
    rmr_fakehost_free(fh);
}

static void test_no_endpoint(void)
{
    unsetenv("ECS_CONTAINER_METADATA_URI_V4");
    unsetenv("ECS_CONTAINER_METADATA_URI");
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_fakehost_want_schemas(fh, both_schemas);
    rmr_instance_t *ins = plugin_make(fh, "", NULL);
    IS_INT(rmr_fakehost_start(fh, ins), 0, "no endpoint: start succeeds (the agent runs on)");
    IS_INT(rmr_fakehost_log_count(fh), 1, "no endpoint: exactly one log line");
    IS_STR(rmr_fakehost_log(fh, 0),
           "WARN not on ECS: neither ECS_CONTAINER_METADATA_URI_V4 nor "
           "ECS_CONTAINER_METADATA_URI is set; the input stays idle",
           "no endpoint: the line says why and what happens");
    rmr_fakehost_advance(fh, 60000);
    IS_INT(rmr_fakehost_fetch_count(fh), 0, "no endpoint: no fetch");
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "no endpoint: nothing emitted");
    IS_INT(rmr_fakehost_log_count(fh), 1, "no endpoint: no more log lines");
    IS_INT(rmr_fakehost_stop(fh, ins), 0, "no endpoint: stops");
    rmr_fakehost_free(fh);
}

static void test_env_endpoint(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    setenv("ECS_CONTAINER_METADATA_URI_V4", EP, 1);
    setenv("ECS_CONTAINER_METADATA_URI", "http://169.254.170.2/v3/other", 1);
    serve(fh, "/task", TASK_V1);
    serve(fh, "/task/stats", STATS_V1);
    start(fh, "");
    rmr_fakehost_advance(fh, 0);
    const struct rmr_fakehost_fetch *f = rmr_fakehost_fetch(fh, 0);
    OK(f != NULL && strncmp(f->url, EP "/task", strlen(EP "/task")) == 0,
       "env: ECS_CONTAINER_METADATA_URI_V4 wins when the option is empty");
    IS_INT(check_status(last_batch(fh, RMR_SCHEMA_DATADOG), NULL, 0), RMR_CHECK_OK,
           "env: polled fine");
    rmr_fakehost_free(fh);

    fh = rmr_fakehost_new();
    setenv("ECS_CONTAINER_METADATA_URI_V4", "", 1);
    setenv("ECS_CONTAINER_METADATA_URI", "http://169.254.170.2/v3/abc", 1);
    start(fh, "");
    rmr_fakehost_advance(fh, 0);
    f = rmr_fakehost_fetch(fh, 0);
    OK(f != NULL && strncmp(f->url, "http://169.254.170.2/v3/abc/task",
                            strlen("http://169.254.170.2/v3/abc/task")) == 0,
       "env: an empty v4 variable falls back to ECS_CONTAINER_METADATA_URI");
    rmr_fakehost_free(fh);
    unsetenv("ECS_CONTAINER_METADATA_URI_V4");
    unsetenv("ECS_CONTAINER_METADATA_URI");
}

static void test_schemas(void)
{
    static const char *const only_es[] = {RMR_SCHEMA_ELASTIC, NULL};
    static const char *const only_dd[] = {RMR_SCHEMA_DATADOG, NULL};
    static const char *const only_guance[] = {RMR_SCHEMA_GUANCE, NULL};
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, "/task", TASK_V1);
    serve(fh, "/task/stats", STATS_V1);
    rmr_instance_t *ins = plugin_make(fh, "endpoint = " EP, NULL);
    rmr_fakehost_want_schemas(fh, only_es);
    rmr_fakehost_start(fh, ins);
    rmr_fakehost_advance(fh, 0);
    IS_INT(rmr_fakehost_emitted_count(fh), 1, "schemas: elastic only: one batch");
    IS_INT(count_schema(fh, RMR_SCHEMA_ELASTIC), 1, "schemas: and it is elastic");

    rmr_fakehost_want_schemas(fh, only_dd);
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_emitted_count(fh), 1, "schemas: datadog only: one batch");
    IS_INT(count_schema(fh, RMR_SCHEMA_DATADOG), 1, "schemas: and it is datadog");

    rmr_fakehost_want_schemas(fh, only_guance);
    rmr_fakehost_clear_emitted(fh);
    uint32_t fetches = rmr_fakehost_fetch_count(fh);
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_emitted_count(fh), 0,
           "schemas: guance only: nothing (docker_containers is the container input's)");
    OK(rmr_fakehost_fetch_count(fh) > fetches, "schemas: still polls (tags for the tagger)");
    rmr_fakehost_free(fh);
}

static void test_stop_in_flight(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve_error(fh, "/task", RMR_ETIMEDOUT);
    serve_error(fh, "/task/stats", RMR_ETIMEDOUT);
    rmr_instance_t *ins = start(fh, NULL);
    rmr_fakehost_advance(fh, 1000);
    IS_INT(rmr_fakehost_fetch_pending(fh), 2, "stop: a poll in flight");
    IS_INT(rmr_fakehost_stop(fh, ins), 0, "stop: returns 0 at once");
    rmr_fakehost_advance(fh, 20000);
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "stop: the cancelled poll emits nothing");
    IS_UINT(rmr_fakehost_counter(fh, ins, "poll_errors", NULL), 0,
            "stop: the cancel is not a poll error");
    rmr_fakehost_destroy(fh, ins);
    rmr_fakehost_free(fh);
}

static void on_lookup(void *arg, const struct rmr_tag *tags, uint32_t ntags)
{
    char **out = arg;
    *out = tags_str(tags, ntags);
}

/* After each good poll the task's tags go to the host: global tags and the tagger. */
static void test_tags(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, "/task", TASK_V1);
    serve(fh, "/task/stats", STATS_V1);
    rmr_instance_t *ins = start(fh, NULL);
    const struct rmr_tag *tags = NULL;
    uint32_t ntags = 0;
    rmr_fakehost_global_tags(fh, &tags, &ntags);
    IS_INT(ntags, 0, "tags: none before the first poll");
    IS_INT(rmr_fakehost_tagger_count(fh), 0, "tags: the tagger is empty before the first poll");
    rmr_fakehost_advance(fh, 0);
    rmr_fakehost_global_tags(fh, &tags, &ntags);
    char *s = tags_str(tags, ntags);
    IS_STR(s,
           "availability-zone:ap-northeast-1d,ecs_cluster_name:akira-fargate-check-cluster,"
           "region:ap-northeast-1,"
           "task_arn:arn:aws:ecs:ap-northeast-1:601427279990:task/akira-fargate-check-cluster/"
           "67cd8a22b533459696d4ccab5278e009,"
           "task_family:akira-fargate-check,task_name:akira-fargate-check,task_version:1",
           "tags: the task's tags are global after the first poll");
    free(s);
    IS_INT(rmr_fakehost_tagger_count(fh), 2, "tags: both containers in the tagger");
    char *got = NULL;
    IS_INT(rmr_tagger_lookup(ins, DD_AGENT, strlen(DD_AGENT), on_lookup, &got), 0,
           "tags: dd-agent known by its DockerId");
    CONTAINS(got, "container_name:dd-agent", "tags: with its container tags");
    CONTAINS(got, "task_family:akira-fargate-check", "tags: and the task's");
    free(got);

    /* A failed poll leaves the tags as they were. */
    serve_error(fh, "/task", RMR_ECONNREFUSED);
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_tagger_count(fh), 2, "tags: a failed poll changes nothing");

    /* The next task has one container (EC2 doc): the two that went are forgotten. */
    serve(fh, "/task", "aws_doc_ec2_v4_task.json");
    serve(fh, "/task/stats", "fargate_ec2_task_stats.json");
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_tagger_count(fh), 1, "tags: containers gone from the task forgotten");
    IS_INT(rmr_tagger_lookup(ins, DD_AGENT, strlen(DD_AGENT), on_lookup, &got), RMR_ENOENT,
           "tags: dd-agent no longer known");
    rmr_fakehost_global_tags(fh, &tags, &ntags);
    OK(has_tag(tags, ntags, "task_family:curltest") &&
           !has_tag(tags, ntags, "task_family:akira-fargate-check"),
       "tags: the global tags replaced by the new task's");
    rmr_fakehost_free(fh);
}

static void test_config_errors(void)
{
    static const char *const bad[] = {"interval = 0s",      "interval = 500ms",
                                      "interval = 2d",      "timeout = 10ms",
                                      "timeout = 2m",       "endpoint = ftp://169.254.170.2/v4",
                                      "endpont = http://x", "timeout = abc"};
    static const char *const key[] = {"interval", "interval", "interval", "timeout",
                                      "timeout",  "endpoint", "endpoint", "timeout"};
    struct rmr_fakehost *fh = rmr_fakehost_new();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "", name[128];
        rmr_instance_t *ins = NULL;
        int rc = rmr_fakehost_create(fh, rmr_plugin_describe(), bad[i], &ins, err, sizeof err);
        snprintf(name, sizeof name, "config: '%s' is a config error", bad[i]);
        IS_INT(rc, RMR_ECONFIG, name);
        snprintf(name, sizeof name, "config: '%s' is reported naming the key", bad[i]);
        uint32_t nlog = rmr_fakehost_log_count(fh);
        OK(strstr(err, key[i]) != NULL ||
               (nlog > 0 && strstr(rmr_fakehost_log(fh, nlog - 1), key[i]) != NULL),
           name);
    }
    rmr_instance_t *ins = NULL;
    char err[256];
    IS_INT(rmr_fakehost_create(fh, rmr_plugin_describe(),
                               "interval = 1s\ntimeout = 100ms\nendpoint = https://x/v4", &ins, err,
                               sizeof err),
           0, "config: the smallest interval and timeout, an https endpoint");
    rmr_fakehost_free(fh);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixdir = argv[1];
    test_descriptor();
    test_cgroupv1_first_poll();
    test_rates();
    test_cgroupv2();
    test_ec2_doc();
    test_bad_stats_entry();
    test_unreachable();
    test_timeout_and_skip();
    test_bad_json();
    test_task_404();
    test_stats_500();
    test_stats_then_task_fail();
    test_idle();
    test_task_incomplete();
    test_no_endpoint();
    test_env_endpoint();
    test_schemas();
    test_stop_in_flight();
    test_tags();
    test_config_errors();
    return tap_done();
}
