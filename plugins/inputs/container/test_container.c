/* The container input against the fake host, fed the ECS fixtures (argv[1]: the fixture
 * directory, test/fixtures/ecs): names, tags and fields of docker_containers as metric and
 * object against the vectors of ../shared/fixtures/README.md, the source's edge cases (pause
 * container, null and missing stats, loopback, idle CPU), schema selection, the task tags it
 * publishes, failures and their counters, the idle start without an endpoint, and config.
 *
 * Fixtures used: dd_fargate_v4_task.json + dd_fargate_v4_task_stats_cgroupv1.json (real
 * Fargate), fargate_cgroupv2_task.json + dd_agent_v4_task_stats_cgroupv2.json (real cgroup v2
 * stats, task doc composed to match), aws_doc_ec2_v4_task.json (+ its stats, whose ids match
 * no container of the doc's task) and fargate_ec2_task_stats.json (the same stats keyed by
 * that task's DockerIds), container_edge_stats.json (see below),
 * fargate_cgroupv1_task_stats_idle.json (the real Fargate stats with apmtest-ping idle: its
 * cpu_usage equal to its precpu's while the host's system time moved on). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fakehost.h"
#include "plugin_test.h"
#include "tap.h"

const struct rmr_plugin *rmr_plugin_describe(void);

#define EP      "http://169.254.170.2/v4/67cd8a22b533459696d4ccab5278e009-2860414825"
#define DD_ID   "67cd8a22b533459696d4ccab5278e009-2860414825"
#define PING_ID "67cd8a22b533459696d4ccab5278e009-3344678718"
#define DD_ARN                                                                                     \
    "arn:aws:ecs:ap-northeast-1:601427279990:task/akira-fargate-check-cluster/"                    \
    "67cd8a22b533459696d4ccab5278e009"

static const char *fixdir = "test/fixtures/ecs";
static const char *const guance[] = {"guance", NULL};

static const char *fixture(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", fixdir, name);
    return buf;
}

/* Serves <ep>/task and <ep>/task/stats from fixture files (NULL: leave unserved). */
static void serve(struct rmr_fakehost *fh, const char *ep, const char *task, const char *stats)
{
    char url[512];
    if (task != NULL) {
        snprintf(url, sizeof url, "%s/task", ep);
        if (rmr_fakehost_fetch_serve_file(fh, "GET", url, 200, fixture(task)) != 0)
            printf("# cannot serve %s\n", fixture(task));
    }
    if (stats != NULL) {
        snprintf(url, sizeof url, "%s/task/stats", ep);
        if (rmr_fakehost_fetch_serve_file(fh, "GET", url, 200, fixture(stats)) != 0)
            printf("# cannot serve %s\n", fixture(stats));
    }
}

static void serve_text(struct rmr_fakehost *fh, const char *url, int status, const char *body)
{
    rmr_fakehost_fetch_serve(fh, "GET", url, status, body, strlen(body));
}

/* Creates and starts an instance polling EP with conf appended, wanting guance or not. */
static rmr_instance_t *started(struct rmr_fakehost *fh, const char *extra, int want)
{
    char conf[512];
    snprintf(conf, sizeof conf, "endpoint = " EP "\n%s", extra != NULL ? extra : "");
    if (want)
        rmr_fakehost_want_schemas(fh, guance);
    rmr_instance_t *ins = plugin_make(fh, conf, NULL);
    if (ins != NULL && rmr_fakehost_start(fh, ins) != 0)
        printf("# start failed\n");
    return ins;
}

/* ---- reading records back ---------------------------------------------------------------- */

/* A record of a batch as text: "kind name|tags|fields". Tags "k=v" in the host's order
 * (sorted); fields "k=v" in the plugin's order, integers with an "i", floats to 4 significant
 * digits, the message left out (checked as JSON separately). */
struct rec {
    uint32_t kind;
    char name[128]; /* object: "<class>/<name>" */
    char tags[2048];
    char fields[1024];
    int64_t time_ns;
    char *message; /* object: owned copy, or NULL */
};

/* Appends ",key=value" (no comma first) to buf. */
static void cat(char *buf, size_t cap, const char *k, size_t klen, const char *v, size_t vlen)
{
    size_t n = strlen(buf);
    if (n < cap)
        snprintf(buf + n, cap - n, "%s%.*s=%.*s", n > 0 ? "," : "", (int)klen, k, (int)vlen,
                 v != NULL ? v : "");
}

static void render_tags(struct rec *r, const struct rmr_tag *t, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        cat(r->tags, sizeof r->tags, t[i].key.ptr, t[i].key.len, t[i].value.ptr, t[i].value.len);
}

static void render_fields(struct rec *r, const struct rmr_field *f, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        char v[64];
        const struct rmr_value *x = &f[i].value;
        if (f[i].key.len == 7 && memcmp(f[i].key.ptr, "message", 7) == 0) {
            if (x->type == RMR_VAL_STR)
                r->message = strndup(x->v.str, x->str_len);
            continue;
        }
        switch ((enum rmr_value_type)x->type) {
        case RMR_VAL_INT: snprintf(v, sizeof v, "%lldi", (long long)x->v.i); break;
        case RMR_VAL_DOUBLE: snprintf(v, sizeof v, "%.4g", x->v.d); break;
        case RMR_VAL_UINT: snprintf(v, sizeof v, "%lluu", (unsigned long long)x->v.u); break;
        case RMR_VAL_STR: snprintf(v, sizeof v, "\"%.*s\"", (int)x->str_len, x->v.str); break;
        case RMR_VAL_BOOL: snprintf(v, sizeof v, "%s", x->v.i ? "true" : "false"); break;
        case RMR_VAL_NONE: snprintf(v, sizeof v, "?"); break;
        }
        cat(r->fields, sizeof r->fields, f[i].key.ptr, f[i].key.len, v, strlen(v));
    }
}

static int get_rec(const rmr_batch_t *b, uint32_t i, struct rec *r)
{
    memset(r, 0, sizeof *r);
    r->kind = rmr_record_kind(b, i);
    if (r->kind == RMR_REC_METRIC) {
        struct rmr_metric m = {.struct_size = sizeof m};
        if (rmr_metric_get(b, i, &m) != 0)
            return -1;
        snprintf(r->name, sizeof r->name, "%.*s", (int)m.name.len, m.name.ptr);
        render_tags(r, m.tags, m.ntags);
        render_fields(r, m.fields, m.nfields);
        r->time_ns = m.time_ns;
        return 0;
    }
    if (r->kind == RMR_REC_OBJECT) {
        struct rmr_object o = {.struct_size = sizeof o};
        if (rmr_object_get(b, i, &o) != 0)
            return -1;
        snprintf(r->name, sizeof r->name, "%.*s/%.*s", (int)o.cls.len, o.cls.ptr, (int)o.name.len,
                 o.name.ptr);
        render_tags(r, o.tags, o.ntags);
        render_fields(r, o.fields, o.nfields);
        r->time_ns = o.time_ns;
        return 0;
    }
    return -1;
}

/* Finds the record of kind whose tags contain container_id=id in the emitted batch bi. */
static int find_rec(struct rmr_fakehost *fh, uint32_t bi, uint32_t kind, const char *id,
                    struct rec *r)
{
    const rmr_batch_t *b = rmr_fakehost_emitted(fh, bi);
    char want[256];
    snprintf(want, sizeof want, "container_id=%s,", id);
    for (uint32_t i = 0; b != NULL && i < rmr_batch_count(b); i++) {
        if (rmr_record_kind(b, i) != kind || get_rec(b, i, r) != 0)
            continue;
        if (strstr(r->tags, want) != NULL)
            return 0;
        free(r->message);
    }
    memset(r, 0, sizeof *r);
    return -1;
}

/* The exact metric fields and tags of one container, then the object: the same tags, the
 * same fields followed by age, and a message that is the JSON of all of them plus "name". */
static void check_container(struct rmr_fakehost *fh, uint32_t bi, const char *id, const char *tags,
                            const char *fields, int64_t time_ns, const char *age, const char *what)
{
    char name[256];
    struct rec r;
    snprintf(name, sizeof name, "%s: metric found", what);
    if (!OK(find_rec(fh, bi, RMR_REC_METRIC, id, &r) == 0, name))
        return;
    snprintf(name, sizeof name, "%s: metric named docker_containers", what);
    IS_STR(r.name, "docker_containers", name);
    snprintf(name, sizeof name, "%s: metric tags", what);
    IS_STR(r.tags, tags, name);
    snprintf(name, sizeof name, "%s: metric fields", what);
    IS_STR(r.fields, fields, name);
    snprintf(name, sizeof name, "%s: metric time is the stats' read time", what);
    IS_INT(r.time_ns, time_ns, name);

    struct rec o;
    snprintf(name, sizeof name, "%s: object found", what);
    if (!OK(find_rec(fh, bi, RMR_REC_OBJECT, id, &o) == 0, name))
        return;
    char want[256];
    snprintf(want, sizeof want, "docker_containers/%s", id);
    snprintf(name, sizeof name, "%s: object class docker_containers, named by the id", what);
    IS_STR(o.name, want, name);
    snprintf(name, sizeof name, "%s: object tags as the metric's", what);
    IS_STR(o.tags, tags, name);
    char ofields[1200];
    if (age != NULL)
        snprintf(ofields, sizeof ofields, "%s,age=%s", fields, age);
    else
        snprintf(ofields, sizeof ofields, "%s", fields);
    snprintf(name, sizeof name, "%s: object fields: the metric's, then age", what);
    IS_STR(o.fields, ofields, name);
    snprintf(name, sizeof name, "%s: object time is the stats' read time", what);
    IS_INT(o.time_ns, time_ns, name);

    /* The message: every tag and field of the object, plus name, as one JSON object. */
    json_error_t jerr;
    json_t *j = o.message != NULL ? json_loads(o.message, 0, &jerr) : NULL;
    snprintf(name, sizeof name, "%s: object message is a JSON object", what);
    if (OK(json_is_object(j), name)) {
        snprintf(name, sizeof name, "%s: message name is the id", what);
        IS_STR(json_string_value(json_object_get(j, "name")), id, name);
        /* Each tag and field of the record appears with its value. */
        size_t want_keys = 1;
        int all = 1;
        char list[4096];
        snprintf(list, sizeof list, "%s,%s", o.tags, o.fields);
        for (char *save = NULL, *kv = strtok_r(list, ",", &save); kv != NULL;
             kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            if (eq == NULL)
                continue;
            *eq = '\0';
            want_keys++;
            json_t *v = json_object_get(j, kv);
            const char *val = eq + 1;
            int good = 0;
            size_t vl = strlen(val);
            if (json_is_string(v))
                good = strcmp(json_string_value(v), val) == 0;
            else if (json_is_integer(v) && vl > 0 && val[vl - 1] == 'i')
                good = json_integer_value(v) == strtoll(val, NULL, 10);
            else if (json_is_real(v)) {
                char d[64];
                snprintf(d, sizeof d, "%.4g", json_real_value(v));
                good = strcmp(d, val) == 0;
            }
            if (!good) {
                printf("#   message key %s: want %s\n", kv, val);
                all = 0;
            }
        }
        snprintf(name, sizeof name, "%s: message holds every tag and field", what);
        OK(all, name);
        snprintf(name, sizeof name, "%s: message holds nothing else", what);
        IS_INT(json_object_size(j), want_keys, name);
    } else {
        printf("#   message: %s\n", o.message != NULL ? o.message : "(none)");
    }
    json_decref(j);
    free(r.message);
    free(o.message);
}

static uint32_t count_kind(const rmr_batch_t *b, uint32_t kind)
{
    uint32_t n = 0;
    for (uint32_t i = 0; b != NULL && i < rmr_batch_count(b); i++)
        n += rmr_record_kind(b, i) == kind;
    return n;
}

static int log_contains(struct rmr_fakehost *fh, const char *needle)
{
    for (uint32_t i = 0; i < rmr_fakehost_log_count(fh); i++)
        if (strstr(rmr_fakehost_log(fh, i), needle) != NULL)
            return 1;
    return 0;
}

struct tagger_seen {
    char text[2048];
};

static void on_tagger(void *arg, const struct rmr_tag *tags, uint32_t ntags)
{
    struct tagger_seen *s = arg;
    for (uint32_t i = 0; i < ntags; i++) {
        size_t n = strlen(s->text);
        snprintf(s->text + n, sizeof s->text - n, "%s%.*s=%.*s", n ? "," : "", (int)tags[i].key.len,
                 tags[i].key.ptr, (int)tags[i].value.len, tags[i].value.ptr);
    }
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_descriptor(void)
{
    const struct rmr_plugin *d = rmr_plugin_describe();
    IS_STR(d->name, "container", "descriptor: named container like Datakit's input");
    IS_INT(d->kind, RMR_KIND_INPUT, "descriptor: an input");
    IS_STR(d->enable_env, "ENV_ECS_FARGATE", "descriptor: ENV_ECS_FARGATE enables it");
    const struct rmr_option *o = d->options;
    IS_STR(o[0].name, "interval", "option 0: interval");
    IS_STR(o[0].def, "10s", "interval: 10s by default");
    IS_STR(o[1].name, "endpoint", "option 1: endpoint");
    IS_STR(o[1].env, "ECS_CONTAINER_METADATA_URI_V4,ECS_CONTAINER_METADATA_URI",
           "endpoint: from the v4 variable, then v3");
    OK(!(o[1].flags & RMR_OPT_ENABLES), "endpoint: being in ECS alone does not enable it");
    IS_STR(o[2].name, "timeout", "option 2: timeout");
    IS_STR(o[2].def, "5s", "timeout: 5s by default");
    IS_STR(o[3].name, "source", "option 3: source");
    IS_STR(o[3].choices, "auto|ecs", "source: auto or ecs");
    IS_STR(o[3].def, "auto", "source: auto by default");
    OK(o[4].name == NULL, "four options");
}

/* Real Fargate, cgroup v1: the vectors of the fixtures README and Datakit's line. */
static void test_fargate_v1(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, EP, "dd_fargate_v4_task.json", "dd_fargate_v4_task_stats_cgroupv1.json");
    rmr_instance_t *ins = started(fh, NULL, 1);
    OK(ins != NULL, "v1: started");
    rmr_fakehost_advance(fh, 0);
    IS_INT(rmr_fakehost_fetch_count(fh), 2, "v1: the first poll runs at start: two GETs");
    const struct rmr_fakehost_fetch *f0 = rmr_fakehost_fetch(fh, 0);
    const struct rmr_fakehost_fetch *f1 = rmr_fakehost_fetch(fh, 1);
    int urls = f0 != NULL && f1 != NULL &&
               ((strcmp(f0->url, EP "/task") == 0 && strcmp(f1->url, EP "/task/stats") == 0) ||
                (strcmp(f1->url, EP "/task") == 0 && strcmp(f0->url, EP "/task/stats") == 0));
    OK(urls, "v1: GET <endpoint>/task and <endpoint>/task/stats");
    IS_INT(f0 ? f0->timeout_ms : 0, 5000, "v1: each GET bounded by the 5s timeout");
    IS_INT(rmr_fakehost_emitted_count(fh), 1, "v1: one batch");
    const rmr_batch_t *b = rmr_fakehost_emitted(fh, 0);
    IS_STR(b ? rmr_batch_schema(b) : NULL, "guance", "v1: labelled guance");
    IS_INT(count_kind(b, RMR_REC_METRIC), 2, "v1: a metric per container");
    IS_INT(count_kind(b, RMR_REC_OBJECT), 2, "v1: an object per container");

    check_container(
        fh, 0, DD_ID,
        "aws_ecs_cluster_name=akira-fargate-check-cluster,container_id=" DD_ID
        ",container_name=dd-agent,container_runtime=ecsfargate,container_runtime_name=dd-agent,"
        "container_type=ecsfargate,image=public.ecr.aws/b1o7r7e0/akira-agent-fgcheck:9,"
        "image_name=public.ecr.aws/b1o7r7e0/akira-agent-fgcheck,"
        "image_short_name=akira-agent-fgcheck,image_tag=9,state=RUNNING,task_arn=" DD_ARN
        ",task_family=akira-fargate-check,task_version=1",
        "cpu_usage=0.8691,cpu_usage_millicores=8i,cpu_numbers=2i,cpu_usage_base100=0.4345,"
        "mem_usage=156966912i,network_bytes_rcvd=781187362i,network_bytes_sent=971750i,"
        "block_read_byte=143360i,block_write_byte=57344i",
        INT64_C(1687223985077342978), "370i", "v1 dd-agent");
    /* apmtest-ping: no block I/O (0 is left out, as Datakit), and its own network counters:
     * the same task ENI as dd-agent, never summed across containers. */
    check_container(
        fh, 0, PING_ID,
        "aws_ecs_cluster_name=akira-fargate-check-cluster,container_id=" PING_ID
        ",container_name=apmtest-ping,container_runtime=ecsfargate,"
        "container_runtime_name=apmtest-ping,container_type=ecsfargate,"
        "image=akirahiiro/apmtest-ping:1.0.3,image_name=akirahiiro/apmtest-ping,"
        "image_short_name=apmtest-ping,image_tag=1.0.3,state=RUNNING,task_arn=" DD_ARN
        ",task_family=akira-fargate-check,task_version=1",
        "cpu_usage=0.06703,cpu_usage_millicores=0i,cpu_numbers=2i,cpu_usage_base100=0.03351,"
        "mem_usage=34865152i,network_bytes_rcvd=781186753i,network_bytes_sent=971042i",
        INT64_C(1687223984895193503), "370i", "v1 apmtest-ping");

    /* Full precision, not Datakit's line rounded to 0.869: Datakit does not round either. */
    struct rmr_metric m = {.struct_size = sizeof m};
    double cpu = -1;
    for (uint32_t i = 0; b != NULL && i < rmr_batch_count(b); i++) {
        if (rmr_record_kind(b, i) != RMR_REC_METRIC || rmr_metric_get(b, i, &m) != 0)
            continue;
        for (uint32_t t = 0; t < m.ntags; t++)
            if (m.tags[t].value.len == strlen(DD_ID) &&
                memcmp(m.tags[t].value.ptr, DD_ID, strlen(DD_ID)) == 0)
                cpu = m.fields[0].value.v.d;
    }
    IS_DBL(cpu, 86559152.0 / 19920000000.0 * 2 * 100, 1e-12, "v1: cpu_usage not rounded");

    /* The task's tags for everything else the sidecar ships. */
    IS_INT(rmr_fakehost_tagger_count(fh), 2, "v1: both containers published to the tagger");
    struct tagger_seen seen = {{0}};
    IS_INT(rmr_tagger_lookup(ins, DD_ID, strlen(DD_ID), on_tagger, &seen), 0,
           "v1: the tagger knows dd-agent");
    CONTAINS(seen.text, "task_family=akira-fargate-check", "v1: with its task family");
    CONTAINS(seen.text, "container_name=dd-agent", "v1: and its name");
    const struct rmr_tag *gt = NULL;
    uint32_t ngt = 0;
    rmr_fakehost_global_tags(fh, &gt, &ngt);
    OK(ngt > 0, "v1: task-wide tags published");

    /* Every interval again. */
    rmr_fakehost_advance(fh, 9999);
    IS_INT(rmr_fakehost_emitted_count(fh), 1, "v1: nothing more before the interval");
    rmr_fakehost_advance(fh, 1);
    IS_INT(rmr_fakehost_emitted_count(fh), 2, "v1: the next batch after 10s");
    IS_INT(rmr_fakehost_fetch_count(fh), 4, "v1: two more GETs");
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", NULL) +
               rmr_fakehost_counter(fh, ins, "containers_skipped", "no_stats"),
           0, "v1: no errors, nothing skipped");
    rmr_fakehost_free(fh);
}

/* cgroup v2 (ECS Managed Instances): lowercase blkio ops, v2 inactive_file, one CPU. */
static void test_cgroup_v2(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, EP, "fargate_cgroupv2_task.json", "dd_agent_v4_task_stats_cgroupv2.json");
    rmr_instance_t *ins = started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    IS_INT(rmr_fakehost_emitted_count(fh), 1, "v2: one batch");
    const char *arn = "arn:aws:ecs:us-east-1:123456789012:task/mi-cluster/"
                      "2207f63945be40abb2d7bca5a2661cfd";
    char tags[2048];
    snprintf(tags, sizeof tags,
             "aws_ecs_cluster_name=mi-cluster,container_id=2207f63945be40abb2d7bca5a2661cfd-"
             "0911415269,container_name=managed-instances-app,container_runtime=ecsfargate,"
             "container_runtime_name=managed-instances-app,container_type=ecsfargate,"
             "image=public.ecr.aws/docker/library/nginx:1.27,"
             "image_name=public.ecr.aws/docker/library/nginx,image_short_name=nginx,"
             "image_tag=1.27,state=RUNNING,task_arn=%s,task_family=mi-app,task_version=3",
             arn);
    check_container(fh, 0, "2207f63945be40abb2d7bca5a2661cfd-0911415269", tags,
                    "cpu_usage=0.007818,cpu_usage_millicores=0i,cpu_numbers=1i,"
                    "cpu_usage_base100=0.007818,mem_usage=36745216i,"
                    "network_bytes_rcvd=163710528i,network_bytes_sent=1103607i,"
                    "block_read_byte=11345920i,block_write_byte=28672i",
                    INT64_C(1761341587765945058), "785i", "v2 app");
    snprintf(tags, sizeof tags,
             "aws_ecs_cluster_name=mi-cluster,container_id=2207f63945be40abb2d7bca5a2661cfd-"
             "2537586469,container_name=datadog-agent,container_runtime=ecsfargate,"
             "container_runtime_name=datadog-agent,container_type=ecsfargate,"
             "image=public.ecr.aws/datadog/agent:7,image_name=public.ecr.aws/datadog/agent,"
             "image_short_name=agent,image_tag=7,state=RUNNING,task_arn=%s,task_family=mi-app,"
             "task_version=3",
             arn);
    check_container(fh, 0, "2207f63945be40abb2d7bca5a2661cfd-2537586469", tags,
                    "cpu_usage=0.5424,cpu_usage_millicores=5i,cpu_numbers=1i,"
                    "cpu_usage_base100=0.5424,mem_usage=249430016i,"
                    "network_bytes_rcvd=163710528i,network_bytes_sent=1103607i,"
                    "block_read_byte=225542144i,block_write_byte=7258112i",
                    INT64_C(1761341593733498695), "789i", "v2 datadog-agent");
    (void)ins;
    rmr_fakehost_free(fh);
}

/* The AWS doc's EC2 task: the pause container (CNI_PAUSE) is never reported. */
static void test_ec2_doc(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, EP, "aws_doc_ec2_v4_task.json", "fargate_ec2_task_stats.json");
    rmr_instance_t *ins = started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    const rmr_batch_t *b = rmr_fakehost_emitted(fh, 0);
    IS_INT(count_kind(b, RMR_REC_METRIC), 1, "ec2: one metric: the pause container skipped");
    IS_INT(count_kind(b, RMR_REC_OBJECT), 1, "ec2: one object");
    struct rec r;
    OK(find_rec(fh, 0, RMR_REC_METRIC,
                "598cba581fe3f939459eaba1e071d5c93bb2c49b7d1ba7db6bb19deeb70d8e38", &r) != 0,
       "ec2: nothing of the pause container");
    /* A short cluster name (EC2) is used as it is; no block I/O entries: no block fields. */
    check_container(
        fh, 0, "ee08638adaaf009d78c248913f629e38299471d45fe7dc944d1039077e3424ca",
        "aws_ecs_cluster_name=default,container_id="
        "ee08638adaaf009d78c248913f629e38299471d45fe7dc944d1039077e3424ca,container_name=curl,"
        "container_runtime=ecsfargate,container_runtime_name=curl,container_type=ecsfargate,"
        "image=111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest,"
        "image_name=111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest,"
        "image_short_name=curltest,image_tag=latest,state=RUNNING,"
        "task_arn=arn:aws:ecs:us-west-2:111122223333:task/default/"
        "158d1c8083dd49d6b527399fd6414f5c,task_family=curltest,task_version=26",
        "cpu_usage=0.02505,cpu_usage_millicores=0i,cpu_numbers=2i,cpu_usage_base100=0.01252,"
        "mem_usage=1814528i,network_bytes_rcvd=84i,network_bytes_sent=84i",
        INT64_C(1601599892512771349), "505i", "ec2 curl");
    IS_INT(rmr_fakehost_counter(fh, ins, "containers_skipped", "no_stats"), 0,
           "ec2: nothing skipped for stats");
    rmr_fakehost_free(fh);

    /* The doc's own stats are keyed by other ids: no container has stats, nothing is sent,
     * and only the user's container counts as skipped. */
    fh = rmr_fakehost_new();
    serve(fh, EP, "aws_doc_ec2_v4_task.json", "aws_doc_ec2_v4_task_stats.json");
    ins = started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "ec2 doc stats: ids match nothing, no batch");
    IS_INT(rmr_fakehost_counter(fh, ins, "containers_skipped", "no_stats"), 1,
           "ec2 doc stats: curl skipped for want of stats (the pause container not counted)");
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", NULL), 0, "ec2 doc stats: no error");
    rmr_fakehost_free(fh);
}

/* container_edge_stats.json, for the DD Fargate task: dd-agent null (not ready yet),
 * apmtest-ping idle (cpu_stats equal to precpu_stats) with lo, eth1 and eth2 and all-zero
 * block I/O, and an entry of a container the task does not list. */
static void test_edge_stats(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, EP, "dd_fargate_v4_task.json", "container_edge_stats.json");
    rmr_instance_t *ins = started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    const rmr_batch_t *b = rmr_fakehost_emitted(fh, 0);
    IS_INT(count_kind(b, RMR_REC_METRIC), 1, "edge: only the container with stats");
    IS_INT(count_kind(b, RMR_REC_OBJECT), 1, "edge: one object");
    struct rec r;
    if (OK(find_rec(fh, 0, RMR_REC_METRIC, PING_ID, &r) == 0, "edge: apmtest-ping reported")) {
        /* Idle: cpu 0 as Datakit sends it; network: eth1 + eth2, lo left out. */
        IS_STR(r.fields,
               "cpu_usage=0,cpu_usage_millicores=0i,cpu_numbers=2i,cpu_usage_base100=0,"
               "mem_usage=34865152i,network_bytes_rcvd=781186758i,network_bytes_sent=971049i",
               "edge: idle cpu 0, non-lo interfaces summed, zero block I/O left out");
        free(r.message);
    }
    OK(find_rec(fh, 0, RMR_REC_METRIC, "67cd8a22b533459696d4ccab5278e009-0000000000", &r) != 0,
       "edge: stats of a container the task does not list are ignored");
    IS_INT(rmr_fakehost_counter(fh, ins, "containers_skipped", "no_stats"), 1,
           "edge: the null entry counted as no_stats");
    rmr_fakehost_free(fh);
}

/* An idle container over a real window: ecsmeta now says 0 % itself (Datadog, Datakit); the
 * input sent 0 before too, and still sends the same fields. */
static void test_idle(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, EP, "dd_fargate_v4_task.json", "fargate_cgroupv1_task_stats_idle.json");
    started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    struct rec r;
    if (OK(find_rec(fh, 0, RMR_REC_METRIC, PING_ID, &r) == 0, "idle: apmtest-ping reported")) {
        IS_STR(r.fields,
               "cpu_usage=0,cpu_usage_millicores=0i,cpu_numbers=2i,cpu_usage_base100=0,"
               "mem_usage=34865152i,network_bytes_rcvd=781186753i,network_bytes_sent=971042i",
               "idle: cpu 0 over a real window");
        free(r.message);
    }
    if (OK(find_rec(fh, 0, RMR_REC_METRIC, DD_ID, &r) == 0, "idle: dd-agent reported")) {
        CONTAINS(r.fields, "cpu_usage=0.8691,", "idle: the busy one as before");
        free(r.message);
    }
    rmr_fakehost_free(fh);
}

/* A /task that is a JSON object but lacks Cluster, TaskARN or Containers: what it has is
 * emitted, tags without a value left out, no poll error; logged once, counted every poll. */
static void test_incomplete(void)
{
    static const char no_cluster[] =
        "{\"Family\":\"fam\",\"Revision\":\"2\",\"Containers\":[{\"DockerId\":\"" PING_ID
        "\",\"Name\":\"ping\",\"Image\":\"busybox\",\"Type\":\"NORMAL\","
        "\"DesiredStatus\":\"RUNNING\"}]}";
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve_text(fh, EP "/task", 200, no_cluster);
    serve(fh, EP, NULL, "dd_fargate_v4_task_stats_cgroupv1.json");
    rmr_instance_t *ins = started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    IS_INT(rmr_fakehost_emitted_count(fh), 1, "no cluster: emitted");
    struct rec r;
    if (OK(find_rec(fh, 0, RMR_REC_METRIC, PING_ID, &r) == 0, "no cluster: the container")) {
        IS_STR(r.tags,
               "container_id=" PING_ID ",container_name=ping,container_runtime=ecsfargate,"
               "container_runtime_name=ping,container_type=ecsfargate,image=busybox,"
               "image_name=busybox,image_short_name=busybox,image_tag=latest,state=RUNNING,"
               "task_family=fam,task_version=2",
               "no cluster: no aws_ecs_cluster_name or task_arn tag, the rest as usual");
        CONTAINS(r.fields, "cpu_usage=0.06703,", "no cluster: its fields as usual");
        free(r.message);
    }
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "bad_json"), 0, "no cluster: not bad JSON");
    IS_INT(rmr_fakehost_counter(fh, ins, "polls_incomplete", NULL), 1, "no cluster: counted");
    OK(log_contains(fh, "answered incompletely, reporting what it has: the task metadata lacks "
                        "TaskARN, Cluster"),
       "no cluster: logged with what is missing");
    uint32_t nlog = rmr_fakehost_log_count(fh);
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_emitted_count(fh), 2, "no cluster: again at the next interval");
    IS_INT(rmr_fakehost_counter(fh, ins, "polls_incomplete", NULL), 2, "no cluster: every poll");
    IS_INT(rmr_fakehost_log_count(fh), nlog, "no cluster: logged once");

    /* No Containers at all: nothing to render, still no error; the change is logged. */
    serve_text(fh, EP "/task", 200, "{\"Cluster\":\"c\",\"TaskARN\":\"arn:aws:ecs:x:1:task/c/t\"}");
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_emitted_count(fh), 2, "no containers: nothing emitted");
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "bad_json"), 0,
           "no containers: not a poll error");
    OK(log_contains(fh, "the task metadata lacks Containers"), "no containers: logged");

    /* Whole again. */
    serve(fh, EP, "dd_fargate_v4_task.json", NULL);
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_emitted_count(fh), 3, "whole: emitted");
    OK(log_contains(fh, "answers completely again"), "whole: said once");
    IS_INT(rmr_fakehost_counter(fh, ins, "polls_incomplete", NULL), 3, "whole: not counted");
    rmr_fakehost_free(fh);
}

/* An inline task: DesiredStatus is the state (as Datakit), CreatedAt when StartedAt is
 * absent, an image without a tag, a short cluster name, no networks and no blkio. */
static void test_inline(void)
{
    static const char task[] =
        "{\"Cluster\":\"short-cluster\",\"TaskARN\":\"arn:aws:ecs:eu-west-1:1:task/"
        "short-cluster/abc\",\"Family\":\"fam\",\"Revision\":\"7\",\"Containers\":["
        "{\"DockerId\":\"c1\",\"Name\":\"web\",\"Image\":\"nginx\",\"DesiredStatus\":"
        "\"STOPPED\",\"KnownStatus\":\"RUNNING\",\"CreatedAt\":\"2026-01-01T00:00:00Z\","
        "\"Type\":\"NORMAL\"},"
        "{\"DockerId\":\"c2\",\"Name\":\"~internal~ecs~pause\",\"Image\":\"pause\","
        "\"KnownStatus\":\"RUNNING\"}]}";
    static const char stats[] =
        "{\"c1\":{\"read\":\"2026-01-01T00:01:40Z\",\"preread\":\"2026-01-01T00:01:30Z\","
        "\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":2000000000},\"system_cpu_usage\":"
        "20000000000,\"online_cpus\":4},\"precpu_stats\":{\"cpu_usage\":{\"total_usage\":"
        "1000000000},\"system_cpu_usage\":10000000000,\"online_cpus\":4},\"memory_stats\":"
        "{\"usage\":1000,\"stats\":{\"inactive_file\":100}}},"
        "\"c2\":{\"read\":\"2026-01-01T00:01:40Z\",\"memory_stats\":{\"usage\":5}}}";
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve_text(fh, EP "/task", 200, task);
    serve_text(fh, EP "/task/stats", 200, stats);
    started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    const rmr_batch_t *b = rmr_fakehost_emitted(fh, 0);
    IS_INT(count_kind(b, RMR_REC_METRIC), 1, "inline: the internal pause container skipped");
    check_container(fh, 0, "c1",
                    "aws_ecs_cluster_name=short-cluster,container_id=c1,container_name=web,"
                    "container_runtime=ecsfargate,container_runtime_name=web,"
                    "container_type=ecsfargate,image=nginx,image_name=nginx,"
                    "image_short_name=nginx,image_tag=latest,state=STOPPED,"
                    "task_arn=arn:aws:ecs:eu-west-1:1:task/short-cluster/abc,task_family=fam,"
                    "task_version=7",
                    "cpu_usage=40,cpu_usage_millicores=400i,cpu_numbers=4i,cpu_usage_base100=10,"
                    "mem_usage=900i",
                    INT64_C(1767225700000000000), "100i", "inline c1");
    rmr_fakehost_free(fh);
}

/* No output takes guance: nothing is rendered, but the task's tags are still published. */
static void test_not_wanted(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, EP, "dd_fargate_v4_task.json", "dd_fargate_v4_task_stats_cgroupv1.json");
    rmr_instance_t *ins = started(fh, NULL, 0);
    rmr_fakehost_advance(fh, 0);
    IS_INT(rmr_fakehost_fetch_count(fh), 2, "not wanted: still polled");
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "not wanted: nothing emitted");
    IS_INT(rmr_fakehost_tagger_count(fh), 2, "not wanted: the tags still published");
    OK(log_contains(fh, "no output takes the guance schema"), "not wanted: said at start");
    rmr_fakehost_want_schemas(fh, (const char *const[]){"datadog", NULL});
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "not wanted: datadog alone gets nothing from us");
    (void)ins;
    rmr_fakehost_free(fh);
}

static int responder_hold(void *arg, const struct rmr_fakehost_fetch *f, struct rmr_response *r)
{
    (void)arg;
    (void)r;
    return strstr(f->url, "/task/stats") != NULL ? RMR_EINPROGRESS : RMR_ENOENT;
}

static void test_errors(void)
{
    /* HTTP 500, then recovery. */
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, EP, "dd_fargate_v4_task.json", NULL);
    serve_text(fh, EP "/task/stats", 500, "{\"error\":\"boom\"}");
    rmr_instance_t *ins = started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "500: nothing emitted");
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "http_error"), 1,
           "500: counted as poll_errors{http_error}");
    OK(log_contains(fh, "cannot poll '" EP "' (http_error)"), "500: logged with the endpoint");
    serve(fh, EP, NULL, "dd_fargate_v4_task_stats_cgroupv1.json");
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_emitted_count(fh), 1, "500: the next poll works");
    OK(log_contains(fh, "works again after 1 failed polls"), "500: recovery logged");
    rmr_fakehost_free(fh);

    /* Not JSON. */
    fh = rmr_fakehost_new();
    serve_text(fh, EP "/task", 200, "<html>not json</html>");
    serve(fh, EP, NULL, "dd_fargate_v4_task_stats_cgroupv1.json");
    ins = started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "bad json: nothing emitted");
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "bad_json"), 1,
           "bad json: counted as poll_errors{bad_json}");
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "bad_json"), 2,
           "bad json: retried at the next interval");
    rmr_fakehost_free(fh);

    /* The stats fail at once (500), /task later (its timeout): the poll failed on /task, so
     * it counts as a timeout, whichever answer came first. */
    fh = rmr_fakehost_new();
    serve_text(fh, EP "/task/stats", 500, "{}");
    rmr_fakehost_fetch_serve_error(fh, "GET", EP "/task", RMR_ETIMEDOUT);
    ins = started(fh, "timeout = 2s\n", 1);
    rmr_fakehost_advance(fh, 2000);
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "timeout"), 1,
           "both fail: counted by /task's cause");
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "http_error"), 0,
           "both fail: not by the stats' that came first");
    OK(log_contains(fh, "GET /task: timed out; GET /task/stats: HTTP 500"),
       "both fail: the log tells both");
    rmr_fakehost_free(fh);

    /* Nobody listens. */
    fh = rmr_fakehost_new();
    ins = started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "network"), 1,
           "refused: counted as poll_errors{network}");
    rmr_fakehost_free(fh);

    /* A timeout arrives after the configured timeout. */
    fh = rmr_fakehost_new();
    serve(fh, EP, "dd_fargate_v4_task.json", NULL);
    rmr_fakehost_fetch_serve_error(fh, "GET", EP "/task/stats", RMR_ETIMEDOUT);
    ins = started(fh, "timeout = 2s\n", 1);
    rmr_fakehost_advance(fh, 1999);
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "timeout"), 0, "timeout: not before 2s");
    rmr_fakehost_advance(fh, 1);
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "timeout"), 1,
           "timeout: counted as poll_errors{timeout} at 2s");
    rmr_fakehost_free(fh);

    /* A poll still running when the timer fires is skipped, not stacked. */
    fh = rmr_fakehost_new();
    serve(fh, EP, "dd_fargate_v4_task.json", "dd_fargate_v4_task_stats_cgroupv1.json");
    rmr_fakehost_set_fetch_responder(fh, responder_hold, NULL);
    ins = started(fh, "interval = 1s\ntimeout = 4500ms\n", 1);
    rmr_fakehost_advance(fh, 0);
    rmr_fakehost_advance(fh, 1000);
    IS_INT(rmr_fakehost_counter(fh, ins, "polls_skipped", "still_running"), 1,
           "busy: the tick at 1s skipped and counted");
    IS_INT(rmr_fakehost_fetch_count(fh), 2, "busy: no new GETs while one runs");
    OK(log_contains(fh, "the previous one is still running"), "busy: logged");
    rmr_fakehost_advance(fh, 3000);
    IS_INT(rmr_fakehost_counter(fh, ins, "polls_skipped", "still_running"), 4,
           "busy: every tick skipped until the timeout");
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "timeout"), 0, "busy: not timed out yet");
    rmr_fakehost_advance(fh, 500);
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", "timeout"), 1,
           "busy: the held poll timed out at 4.5s");
    rmr_fakehost_set_fetch_responder(fh, NULL, NULL);
    rmr_fakehost_advance(fh, 500);
    IS_INT(rmr_fakehost_emitted_count(fh), 1, "busy: the tick at 5s polls afresh and emits");
    IS_INT(rmr_fakehost_counter(fh, ins, "polls_skipped", "still_running"), 4,
           "busy: that tick was not skipped");
    rmr_fakehost_free(fh);

    /* Emit fails (queues full): logged, the next interval tries again. */
    fh = rmr_fakehost_new();
    serve(fh, EP, "dd_fargate_v4_task.json", "dd_fargate_v4_task_stats_cgroupv1.json");
    rmr_fakehost_set_full(fh, 1);
    ins = started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    OK(log_contains(fh, "cannot emit docker_containers of 2 containers"), "full: logged");
    rmr_fakehost_set_full(fh, 0);
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_emitted_count(fh), 1, "full: the next interval emits");
    rmr_fakehost_free(fh);
}

static void test_no_endpoint(void)
{
    unsetenv("ECS_CONTAINER_METADATA_URI_V4");
    unsetenv("ECS_CONTAINER_METADATA_URI");
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_fakehost_want_schemas(fh, guance);
    rmr_instance_t *ins = plugin_make(fh, "", NULL);
    IS_INT(ins ? rmr_fakehost_start(fh, ins) : -1, 0, "idle: start succeeds");
    IS_INT(rmr_fakehost_log_count(fh), 1, "idle: one log line");
    const char *l = rmr_fakehost_log_count(fh) > 0 ? rmr_fakehost_log(fh, 0) : "";
    CONTAINS(l, "idle", "idle: says it is idle");
    CONTAINS(l, "ECS_CONTAINER_METADATA_URI_V4", "idle: names the variable it looked for");
    CONTAINS(l, "Docker and kubelet sources are not built yet", "idle: says what is missing");
    rmr_fakehost_advance(fh, 60000);
    IS_INT(rmr_fakehost_fetch_count(fh), 0, "idle: no fetch");
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "idle: nothing emitted");
    IS_INT(rmr_fakehost_log_count(fh), 1, "idle: still one log line");
    IS_INT(rmr_fakehost_stop(fh, ins), 0, "idle: stops");
    rmr_fakehost_free(fh);

    /* source = ecs without an endpoint is idle the same way. */
    fh = rmr_fakehost_new();
    ins = plugin_make(fh, "source = ecs\n", NULL);
    IS_INT(ins ? rmr_fakehost_start(fh, ins) : -1, 0, "idle ecs: start succeeds");
    IS_INT(rmr_fakehost_log_count(fh), 1, "idle ecs: one log line");
    rmr_fakehost_free(fh);

    /* The environment fills in when the option is empty: v4 first, else v3. */
    fh = rmr_fakehost_new();
    setenv("ECS_CONTAINER_METADATA_URI", "http://169.254.170.2/v3/abc", 1);
    ins = plugin_make(fh, "", NULL);
    rmr_fakehost_start(fh, ins);
    rmr_fakehost_advance(fh, 0);
    const struct rmr_fakehost_fetch *f = rmr_fakehost_fetch(fh, 0);
    OK(f != NULL && strncmp(f->url, "http://169.254.170.2/v3/abc/task", 32) == 0,
       "env: the v3 variable when v4 is unset");
    rmr_fakehost_free(fh);

    fh = rmr_fakehost_new();
    setenv("ECS_CONTAINER_METADATA_URI_V4", "http://169.254.170.2/v4/def", 1);
    ins = plugin_make(fh, "", NULL);
    rmr_fakehost_start(fh, ins);
    rmr_fakehost_advance(fh, 0);
    f = rmr_fakehost_fetch(fh, 0);
    OK(f != NULL && strncmp(f->url, "http://169.254.170.2/v4/def/task", 32) == 0,
       "env: the v4 variable first");
    rmr_fakehost_free(fh);
    unsetenv("ECS_CONTAINER_METADATA_URI_V4");
    unsetenv("ECS_CONTAINER_METADATA_URI");
}

static void test_stop(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    serve(fh, EP, "dd_fargate_v4_task.json", "dd_fargate_v4_task_stats_cgroupv1.json");
    rmr_fakehost_set_fetch_responder(fh, responder_hold, NULL);
    rmr_instance_t *ins = started(fh, NULL, 1);
    rmr_fakehost_advance(fh, 0);
    IS_INT(rmr_fakehost_fetch_pending(fh), 1, "stop: a poll in flight");
    IS_INT(rmr_fakehost_stop(fh, ins), 0, "stop: returns 0 at once");
    rmr_fakehost_advance(fh, 60000);
    IS_INT(rmr_fakehost_fetch_count(fh), 2, "stop: no more polls");
    IS_INT(rmr_fakehost_counter(fh, ins, "poll_errors", NULL), 0,
           "stop: the cancelled poll is not an error");
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "stop: nothing emitted");
    rmr_fakehost_free(fh);
}

static void test_config(void)
{
    char err[256];
    rmr_instance_t *ins = NULL;
    struct rmr_fakehost *fh = rmr_fakehost_new();
    const struct rmr_plugin *d = rmr_plugin_describe();
    IS_INT(rmr_fakehost_create(fh, d, "endpoint = ftp://x/v4\n", &ins, err, sizeof err),
           RMR_ECONFIG, "config: an endpoint that is not http(s) is refused");
    OK(log_contains(fh, "invalid 'endpoint' 'ftp://x/v4'"), "config: the endpoint named");
    IS_INT(rmr_fakehost_create(fh, d, "source = docker\n", &ins, err, sizeof err), RMR_ECONFIG,
           "config: an unknown source is refused");
    IS_INT(rmr_fakehost_create(fh, d, "interval = 100ms\n", &ins, err, sizeof err), RMR_ECONFIG,
           "config: an interval under 1s is refused");
    IS_INT(rmr_fakehost_create(fh, d, "timeout = 10m\n", &ins, err, sizeof err), RMR_ECONFIG,
           "config: a timeout over 5m is refused");
    IS_INT(rmr_fakehost_create(fh, d, "interval = 30s\nsource = ecs\nendpoint = https://x/v4\n",
                               &ins, err, sizeof err),
           0, "config: a full valid section");
    rmr_fakehost_free(fh);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixdir = argv[1];
    unsetenv("ECS_CONTAINER_METADATA_URI_V4");
    unsetenv("ECS_CONTAINER_METADATA_URI");
    test_descriptor();
    test_fargate_v1();
    test_cgroup_v2();
    test_ec2_doc();
    test_edge_stats();
    test_idle();
    test_incomplete();
    test_inline();
    test_not_wanted();
    test_errors();
    test_no_endpoint();
    test_stop();
    test_config();
    return tap_done();
}
