/* plugins/lib/ecsmeta: parsing the shared fixtures and our edge fixtures to exact values, the
 * fixtures README's test vectors, the formulas, image references, tags, a table of bad input,
 * and the client against the fake host. argv[1]: the fixtures directory (test/fixtures/ecs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ecsmeta/ecsmeta.h"
#include "fakehost.h"
#include "tap.h"

static const char *fixtures;

/* Reads a fixture into a buffer of exactly its length (no NUL), so a parser reading past the
 * length trips the address sanitizer. Returns owned, or NULL. */
static char *slurp(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    *len = 0;
    if (f == NULL) {
        printf("# cannot open '%s'\n", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) != NULL &&
            fread(buf, 1, (size_t)n, f) == (size_t)n) {
            *len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static int load_task(const char *name, struct ecs_task *t)
{
    char err[256] = "";
    size_t len;
    char *buf = slurp(name, &len);
    int rc = ecs_task_parse(buf, len, t, err, sizeof err);
    if (rc != 0)
        printf("# %s: %s\n", name, err);
    free(buf);
    return rc;
}

static int load_stats(const char *name, struct ecs_stats_set *s, uint32_t *nbad)
{
    char err[256] = "";
    size_t len;
    char *buf = slurp(name, &len);
    int rc = ecs_stats_parse(buf, len, s, nbad, err, sizeof err);
    if (rc != 0)
        printf("# %s: %s\n", name, err);
    free(buf);
    return rc;
}

/* A value rounded to 4 decimals, as the fixtures README gives its test vectors. */
static double dec4(double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.4f", v);
    return strtod(buf, NULL);
}

static const struct ecs_stats *must_find(const struct ecs_stats_set *set, const char *id)
{
    static const struct ecs_stats empty;
    const struct ecs_stats *s = ecs_stats_find(set, id);
    if (s == NULL)
        printf("# no stats entry '%s'\n", id);
    return s != NULL ? s : &empty;
}

static const struct ecs_container *must_container(const struct ecs_task *t, const char *id)
{
    static const struct ecs_container empty = {.docker_id = "", .name = "", .image = ""};
    const struct ecs_container *c = ecs_task_container(t, id);
    if (c == NULL)
        printf("# no container '%s'\n", id);
    return c != NULL ? c : &empty;
}

#define DD_AGENT        "67cd8a22b533459696d4ccab5278e009-2860414825"
#define DD_PING         "67cd8a22b533459696d4ccab5278e009-3344678718"
#define V2_APP          "2207f63945be40abb2d7bca5a2661cfd-0911415269"
#define V2_AGENT        "2207f63945be40abb2d7bca5a2661cfd-2537586469"
#define EC2_PAUSE_STATS "01999f2e5c6cf4df3873f28950e6278813408f281c54778efec860d0caad4854"
#define EC2_CURL_STATS  "5fc21e5b015f899d22618f8aede80b6d70d71b2a75465ea49d9462c8f3d2d3af"
#define EC2_PAUSE_ID    "598cba581fe3f939459eaba1e071d5c93bb2c49b7d1ba7db6bb19deeb70d8e38"
#define EC2_CURL_ID     "ee08638adaaf009d78c248913f629e38299471d45fe7dc944d1039077e3424ca"

/* ---- /task ---------------------------------------------------------------------------------- */

static void test_task_fargate(void)
{
    struct ecs_task t;
    IS_INT(load_task("dd_fargate_v4_task.json", &t), 0, "fargate task: parses");
    IS_STR(t.cluster, "arn:aws:ecs:ap-northeast-1:601427279990:cluster/akira-fargate-check-cluster",
           "fargate task: Cluster as given");
    IS_STR(t.cluster_name, "akira-fargate-check-cluster", "fargate task: cluster name from ARN");
    IS_STR(t.task_arn,
           "arn:aws:ecs:ap-northeast-1:601427279990:task/akira-fargate-check-cluster/"
           "67cd8a22b533459696d4ccab5278e009",
           "fargate task: TaskARN");
    IS_STR(t.task_id, "67cd8a22b533459696d4ccab5278e009", "fargate task: task id");
    IS_STR(t.family, "akira-fargate-check", "fargate task: Family");
    IS_STR(t.revision, "1", "fargate task: Revision");
    IS_STR(t.known_status, "RUNNING", "fargate task: KnownStatus");
    IS_STR(t.desired_status, "RUNNING", "fargate task: DesiredStatus");
    IS_STR(t.availability_zone, "ap-northeast-1d", "fargate task: AvailabilityZone");
    IS_STR(t.region, "ap-northeast-1", "fargate task: region from the ARN");
    IS_STR(t.launch_type, "FARGATE", "fargate task: LaunchType");
    IS_DBL(t.cpu_vcpus, 1.0, 0, "fargate task: Limits.CPU in vCPUs");
    IS_INT(t.mem_mib, 3072, "fargate task: Limits.Memory in MiB");
    IS_INT(t.has_ephemeral, 1, "fargate task: EphemeralStorageMetrics present");
    IS_INT(t.ephemeral_utilized_mib, 2925, "fargate task: ephemeral utilized");
    IS_INT(t.ephemeral_reserved_mib, 21499, "fargate task: ephemeral reserved");
    IS_UINT(t.ncontainers, 2, "fargate task: two containers");

    const struct ecs_container *c = must_container(&t, DD_AGENT);
    IS_STR(c->docker_id, DD_AGENT, "fargate dd-agent: DockerId");
    IS_STR(c->name, "dd-agent", "fargate dd-agent: Name");
    IS_STR(c->docker_name, "dd-agent", "fargate dd-agent: DockerName");
    IS_STR(c->image, "public.ecr.aws/b1o7r7e0/akira-agent-fgcheck:9", "fargate dd-agent: Image");
    IS_STR(c->image_id, "sha256:9d285ef4b9bac6f4c58211b711436dd507db7ba1f52605ae463102ee31b0f49b",
           "fargate dd-agent: ImageID");
    IS_STR(c->type, "NORMAL", "fargate dd-agent: Type");
    IS_STR(c->known_status, "RUNNING", "fargate dd-agent: KnownStatus");
    IS_STR(c->desired_status, "RUNNING", "fargate dd-agent: DesiredStatus");
    IS_INT(c->created_ns, INT64_C(1687223615073930071), "fargate dd-agent: CreatedAt in ns");
    IS_INT(c->started_ns, INT64_C(1687223615073930071), "fargate dd-agent: StartedAt in ns");
    IS_DBL(c->cpu_units, 2.0, 0, "fargate dd-agent: Limits.CPU in units");
    IS_INT(c->mem_mib, 0, "fargate dd-agent: no Limits.Memory");
    IS_UINT(c->nlabels, 5, "fargate dd-agent: five labels");
    IS_STR(c->nlabels == 5 ? c->labels[0].key : NULL, "com.amazonaws.ecs.cluster",
           "fargate dd-agent: labels in document order");
    IS_STR(ecs_container_label(c, "com.amazonaws.ecs.task-definition-version"), "1",
           "fargate dd-agent: label lookup");
    IS_STR(ecs_container_label(c, "nope"), NULL, "fargate dd-agent: unknown label");
    IS_INT(c->normal, 1, "fargate dd-agent: normal");
    c = must_container(&t, DD_PING);
    IS_STR(c->name, "apmtest-ping", "fargate apmtest-ping: Name");
    IS_INT(c->created_ns, INT64_C(1687223614891627424), "fargate apmtest-ping: CreatedAt");
    IS_INT(c->normal, 1, "fargate apmtest-ping: normal");
    OK(ecs_task_container(&t, "nope") == NULL, "fargate task: unknown DockerId gives NULL");
    OK(ecs_task_container(&t, "") == NULL, "fargate task: empty DockerId gives NULL");
    ecs_task_free(&t);
    IS_UINT(t.ncontainers, 0, "task free: leaves the struct empty");
    ecs_task_free(&t); /* twice is harmless */
}

static void test_task_ec2(void)
{
    struct ecs_task t;
    IS_INT(load_task("aws_doc_ec2_v4_task.json", &t), 0, "ec2 task: parses");
    IS_STR(t.cluster, "default", "ec2 task: short cluster name");
    IS_STR(t.cluster_name, "default", "ec2 task: cluster name is the cluster itself");
    IS_STR(t.task_id, "158d1c8083dd49d6b527399fd6414f5c", "ec2 task: task id");
    IS_STR(t.revision, "26", "ec2 task: Revision");
    IS_STR(t.region, "us-west-2", "ec2 task: region");
    IS_STR(t.launch_type, "EC2", "ec2 task: LaunchType");
    IS_DBL(t.cpu_vcpus, 0, 0, "ec2 task: no task Limits");
    IS_INT(t.mem_mib, 0, "ec2 task: no task memory limit");
    IS_INT(t.has_ephemeral, 0, "ec2 task: no EphemeralStorageMetrics");
    IS_UINT(t.ncontainers, 2, "ec2 task: two containers");
    const struct ecs_container *p = must_container(&t, EC2_PAUSE_ID);
    IS_STR(p->type, "CNI_PAUSE", "ec2 pause: Type");
    IS_INT(p->normal, 0, "ec2 pause: not normal");
    IS_STR(p->image_id, "", "ec2 pause: empty ImageID kept empty");
    IS_INT(p->created_ns, INT64_C(1601599385602352471), "ec2 pause: CreatedAt");
    const struct ecs_container *c = must_container(&t, EC2_CURL_ID);
    IS_INT(c->normal, 1, "ec2 curl: normal");
    IS_DBL(c->cpu_units, 10, 0, "ec2 curl: Limits.CPU units");
    IS_INT(c->mem_mib, 128, "ec2 curl: Limits.Memory");
    IS_INT(c->started_ns, INT64_C(1601599386767535449), "ec2 curl: StartedAt");
    ecs_task_free(&t);

    IS_INT(load_task("aws_doc_ec2_v4_task_with_tags.json", &t), 0, "ec2 taskWithTags: parses");
    IS_STR(t.family, "curltest", "ec2 taskWithTags: Family");
    IS_UINT(t.ncontainers, 2, "ec2 taskWithTags: two containers");
    IS_INT(must_container(&t, EC2_PAUSE_ID)->normal, 0, "ec2 taskWithTags: pause not normal");
    ecs_task_free(&t);
}

/* The /${URI} document of one container, wrapped into a task of its own. */
static void test_task_container_doc(void)
{
    size_t len;
    char *doc = slurp("aws_doc_ec2_v4_container.json", &len);
    static const char head[] =
        "{\"TaskARN\":\"arn:aws:ecs:us-west-2:111122223333:task/default/x\",\"Containers\":[";
    size_t n = sizeof head - 1 + len + 2;
    char *buf = malloc(n);
    struct ecs_task t;
    char err[256];
    memcpy(buf, head, sizeof head - 1);
    if (doc != NULL)
        memcpy(buf + sizeof head - 1, doc, len);
    memcpy(buf + sizeof head - 1 + len, "]}", 2);
    IS_INT(ecs_task_parse(buf, n, &t, err, sizeof err), 0, "container doc: parses in a task");
    const struct ecs_container *c =
        must_container(&t, "ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66");
    IS_STR(c->name, "curl", "container doc: Name");
    IS_STR(c->docker_name, "ecs-curltest-24-curl-cca48e8dcadd97805600",
           "container doc: DockerName");
    IS_INT(c->mem_mib, 128, "container doc: Limits.Memory");
    IS_UINT(c->nlabels, 5, "container doc: labels");
    IS_INT(c->normal, 1, "container doc: normal");
    IS_INT(c->created_ns, INT64_C(1601597707620912337), "container doc: CreatedAt");
    ecs_task_free(&t);
    free(buf);
    free(doc);
}

static void test_task_edges(void)
{
    struct ecs_task t;
    IS_INT(load_task("edge_task_pause.json", &t), 0, "edge pause: parses");
    IS_INT(must_container(&t, "p1")->normal, 0, "edge pause: Name ~internal~ecs~pause, no Type");
    IS_STR(must_container(&t, "p1")->type, NULL, "edge pause: absent Type is NULL");
    IS_INT(must_container(&t, "p2")->normal, 0, "edge pause: Type CNI_PAUSE");
    IS_INT(must_container(&t, "n1")->normal, 1, "edge pause: Type NORMAL");
    IS_INT(must_container(&t, "n2")->normal, 1, "edge pause: no Type, ordinary name");
    IS_STR(t.cluster_name, "prod", "edge pause: cluster name");
    IS_STR(t.region, "eu-central-1", "edge pause: region");
    IS_STR(t.availability_zone, NULL, "edge pause: no AZ is NULL");
    IS_STR(t.launch_type, NULL, "edge pause: no LaunchType is NULL");
    IS_STR(t.known_status, "", "edge pause: no KnownStatus is empty");
    ecs_task_free(&t);

    IS_INT(load_task("edge_task_revision_number.json", &t), 0, "edge revision: parses");
    IS_STR(t.revision, "7", "edge revision: a number becomes text");
    IS_STR(t.cluster_name, "short-name", "edge revision: short cluster name");
    IS_STR(t.region, "us-east-1", "edge revision: region");
    IS_DBL(t.cpu_vcpus, 0.25, 0, "edge revision: fractional vCPUs");
    IS_INT(t.mem_mib, 512, "edge revision: memory");
    IS_UINT(t.ncontainers, 0, "edge revision: empty Containers");
    OK(t.containers == NULL, "edge revision: no container array");
    ecs_task_free(&t);

    IS_INT(load_task("edge_task_malformed.json", &t), 0, "edge malformed task: still parses");
    IS_STR(t.cluster, "", "edge malformed task: numeric Cluster is empty");
    IS_STR(t.cluster_name, "", "edge malformed task: so is its name");
    IS_STR(t.task_id, "not-an-arn", "edge malformed task: id of an ARN without '/'");
    IS_STR(t.region, "us-west-2", "edge malformed task: region from a local-zone AZ");
    IS_STR(t.family, "", "edge malformed task: array Family is empty");
    IS_STR(t.revision, "", "edge malformed task: object Revision is empty");
    IS_STR(t.known_status, "", "edge malformed task: null KnownStatus is empty");
    IS_STR(t.launch_type, NULL, "edge malformed task: numeric LaunchType is NULL");
    IS_DBL(t.cpu_vcpus, 0, 0, "edge malformed task: string CPU is 0");
    IS_INT(t.mem_mib, 0, "edge malformed task: negative Memory is 0");
    IS_INT(t.has_ephemeral, 1, "edge malformed task: ephemeral object present");
    IS_INT(t.ephemeral_utilized_mib, 0, "edge malformed task: string Utilized is 0");
    IS_INT(t.ephemeral_reserved_mib, 100, "edge malformed task: Reserved");
    IS_UINT(t.ncontainers, 2, "edge malformed task: non-object containers skipped");
    const struct ecs_container *c = must_container(&t, "ok-1");
    IS_STR(c->name, "", "edge malformed container: numeric Name is empty");
    IS_STR(c->image, "", "edge malformed container: object Image is empty");
    IS_STR(c->type, NULL, "edge malformed container: numeric Type is NULL");
    IS_INT(c->normal, 1, "edge malformed container: counts as normal");
    IS_INT(c->created_ns, 0, "edge malformed container: February 30 is 0");
    IS_INT(c->started_ns, 0, "edge malformed container: 'yesterday' is 0");
    IS_UINT(c->nlabels, 2, "edge malformed container: only string labels kept");
    IS_STR(ecs_container_label(c, "good"), "yes", "edge malformed container: label good");
    IS_STR(ecs_container_label(c, "empty"), "", "edge malformed container: empty label value");
    IS_STR(ecs_container_label(c, "num"), NULL, "edge malformed container: numeric label gone");
    if (t.ncontainers == 2) {
        const struct ecs_container *d = &t.containers[1];
        IS_STR(d->docker_id, "", "edge malformed container: no DockerId is empty");
        IS_STR(d->name, "no-docker-id", "edge malformed container: its Name");
        IS_DBL(d->cpu_units, 0, 0, "edge malformed container: negative CPU is 0");
        IS_INT(d->mem_mib, 0, "edge malformed container: absurd Memory is 0");
        IS_UINT(d->nlabels, 0, "edge malformed container: array Labels hold none");
    }
    ecs_task_free(&t);
}

/* A /task that is a JSON object but lacks TaskARN, Cluster or Containers is parsed, and says
 * what it lacked (Datadog's check: WARNING, not a failure). */
static void test_task_missing(void)
{
    static const struct {
        const char *doc;
        uint32_t missing;
        uint32_t ncontainers;
        const char *text;
    } cases[] = {
        {"{}", ECS_TASK_MISSING_ARN | ECS_TASK_MISSING_CLUSTER | ECS_TASK_MISSING_CONTAINERS, 0,
         "TaskARN, Cluster, Containers"},
        {"{\"TaskARN\":1,\"Cluster\":\"c\",\"Containers\":[]}", ECS_TASK_MISSING_ARN, 0, "TaskARN"},
        {"{\"TaskARN\":null,\"Cluster\":\"c\",\"Containers\":[]}", ECS_TASK_MISSING_ARN, 0,
         "TaskARN"},
        {"{\"TaskARN\":\"\",\"Cluster\":\"c\",\"Containers\":[]}", ECS_TASK_MISSING_ARN, 0,
         "TaskARN"},
        {"{\"TaskARN\":\"a\",\"Cluster\":\"c\"}", ECS_TASK_MISSING_CONTAINERS, 0, "Containers"},
        {"{\"TaskARN\":\"a\",\"Cluster\":\"c\",\"Containers\":{}}", ECS_TASK_MISSING_CONTAINERS, 0,
         "Containers"},
        {"{\"TaskARN\":\"a\",\"Cluster\":\"c\",\"Containers\":\"None\"}",
         ECS_TASK_MISSING_CONTAINERS, 0, "Containers"},
        {"{\"TaskARN\":\"a\",\"Cluster\":\"c\",\"Containers\":null}", ECS_TASK_MISSING_CONTAINERS,
         0, "Containers"},
        {"{\"TaskARN\":\"a\",\"Containers\":[{\"DockerId\":\"d\"}]}", ECS_TASK_MISSING_CLUSTER, 1,
         "Cluster"},
        {"{\"TaskARN\":\"a\",\"Cluster\":7,\"Containers\":[]}", ECS_TASK_MISSING_CLUSTER, 0,
         "Cluster"},
        {"{\"Cluster\":\"\",\"Containers\":[{\"DockerId\":\"d\"}]}",
         ECS_TASK_MISSING_ARN | ECS_TASK_MISSING_CLUSTER, 1, "TaskARN, Cluster"},
        {"{\"TaskARN\":\"a\",\"Cluster\":\"c\",\"Containers\":[]}", 0, 0, ""},
    };
    char name[200], err[256], text[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ecs_task t;
        size_t n = strlen(cases[i].doc);
        char *buf = malloc(n); /* exactly n bytes: the sanitizer watches */
        memcpy(buf, cases[i].doc, n);
        snprintf(name, sizeof name, "missing %zu: %s parses", i, cases[i].doc);
        IS_INT(ecs_task_parse(buf, n, &t, err, sizeof err), 0, name);
        snprintf(name, sizeof name, "missing %zu: missing bits", i);
        IS_UINT(t.missing, cases[i].missing, name);
        snprintf(name, sizeof name, "missing %zu: containers", i);
        IS_UINT(t.ncontainers, cases[i].ncontainers, name);
        snprintf(name, sizeof name, "missing %zu: strings are empty, never NULL", i);
        OK(t.task_arn != NULL && t.cluster != NULL && t.cluster_name != NULL && t.task_id != NULL &&
               t.family != NULL && t.revision != NULL,
           name);
        ecs_task_missing_text(t.missing, text, sizeof text);
        snprintf(name, sizeof name, "missing %zu: named", i);
        IS_STR(text, cases[i].text, name);
        ecs_task_free(&t);
        free(buf);
    }
    struct ecs_task t;
    IS_INT(load_task("dd_fargate_v4_task.json", &t), 0, "missing: a whole task parses");
    IS_UINT(t.missing, 0, "missing: a whole task lacks nothing");
    ecs_task_free(&t);
    IS_INT(load_task("edge_task_malformed.json", &t), 0, "missing: malformed task parses");
    IS_UINT(t.missing, ECS_TASK_MISSING_CLUSTER, "missing: a numeric Cluster counts as missing");
    ecs_task_free(&t);

    char small[9];
    ecs_task_missing_text(ECS_TASK_MISSING_ARN | ECS_TASK_MISSING_CLUSTER, small, sizeof small);
    IS_STR(small, "TaskARN", "missing text: cut to the buffer, still terminated");
    ecs_task_missing_text(ECS_TASK_MISSING_CLUSTER, small, 1);
    IS_STR(small, "", "missing text: a one-byte buffer holds the NUL");
    ecs_task_missing_text(0x80u, text, sizeof text);
    IS_STR(text, "", "missing text: unknown bits name nothing");
    ecs_task_missing_text(ECS_TASK_MISSING_ARN, NULL, 5); /* harmless */
}

/* ---- /task/stats ---------------------------------------------------------------------------- */

static void test_stats_v1(void)
{
    struct ecs_stats_set set;
    uint32_t nbad = 99;
    double pct = -1, total = -1, norm = -1;
    IS_INT(load_stats("dd_fargate_v4_task_stats_cgroupv1.json", &set, &nbad), 0, "v1: parses");
    IS_UINT(nbad, 0, "v1: no bad entries");
    IS_UINT(set.n, 2, "v1: two entries");

    const struct ecs_stats *s = must_find(&set, DD_AGENT);
    IS_INT(s->present, 1, "v1 dd-agent: present");
    IS_INT(s->read_ns, INT64_C(1687223985077342978), "v1 dd-agent: read");
    IS_INT(s->preread_ns, INT64_C(1687223975076984286), "v1 dd-agent: preread");
    IS_UINT(s->cpu_total, 4817594472u, "v1 dd-agent: total_usage");
    IS_UINT(s->cpu_user, 2300000000u, "v1 dd-agent: usage_in_usermode");
    IS_UINT(s->cpu_kernel, 540000000u, "v1 dd-agent: usage_in_kernelmode");
    IS_UINT(s->system_cpu, UINT64_C(1039490000000), "v1 dd-agent: system_cpu_usage");
    IS_UINT(s->pre_cpu_total, 4731035320u, "v1 dd-agent: precpu total_usage");
    IS_UINT(s->pre_system_cpu, UINT64_C(1019570000000), "v1 dd-agent: precpu system");
    IS_UINT(s->pre_cpu_user, 2280000000u, "v1 dd-agent: precpu usage_in_usermode");
    IS_UINT(s->pre_cpu_kernel, 540000000u, "v1 dd-agent: precpu usage_in_kernelmode");
    IS_UINT(s->has_cpu_modes, 1, "v1 dd-agent: user and kernel in cpu_stats and precpu_stats");
    IS_UINT(s->online_cpus, 2, "v1 dd-agent: online_cpus");
    IS_UINT(s->has_cpu, 1, "v1 dd-agent: has cpu");
    IS_UINT(s->mem_usage, 160886784, "v1 dd-agent: mem usage raw");
    IS_UINT(s->mem_max_usage, 205619200, "v1 dd-agent: max_usage");
    IS_UINT(s->has_max_usage, 1, "v1 dd-agent: has max_usage");
    IS_UINT(s->mem_limit, 922337, "v1 dd-agent: limit (redacted upstream)");
    IS_UINT(s->has_failcnt, 0, "v1 dd-agent: no failcnt");
    IS_UINT(s->mem[ECS_MEM_CACHE], 5136384, "v1 dd-agent: cache");
    IS_UINT(s->mem[ECS_MEM_RSS], 147873792, "v1 dd-agent: rss");
    IS_UINT(s->mem[ECS_MEM_TOTAL_INACTIVE_FILE], 3919872, "v1 dd-agent: total_inactive_file");
    IS_UINT(s->mem[ECS_MEM_HIER_LIMIT], 3221225472u, "v1 dd-agent: hierarchical_memory_limit");
    IS_UINT(s->mem[ECS_MEM_HIER_MEMSW_LIMIT], 92233720, "v1 dd-agent: hierarchical_memsw_limit");
    IS_UINT(s->mem[ECS_MEM_PGFAULT], 125499, "v1 dd-agent: pgfault");
    IS_UINT(s->mem_has & (1u << ECS_MEM_ANON), 0, "v1 dd-agent: no v2 anon key");
    IS_UINT(s->mem_has & (1u << ECS_MEM_TOTAL_RSS), 1u << ECS_MEM_TOTAL_RSS,
            "v1 dd-agent: total_rss present");
    OK(ecs_cpu_percent(s, &pct), "v1 dd-agent: cpu % computed");
    IS_DBL(dec4(pct), 0.8691, 1e-12, "v1 dd-agent: cpu % 0.8691 (README vector)");
    IS_DBL(pct, 86559152.0 / 19920000000.0 * 2 * 100, 1e-12, "v1 dd-agent: cpu % unrounded");
    OK(ecs_cpu_fraction(s, &total, &norm), "v1 dd-agent: cpu fraction computed");
    IS_DBL(norm, 86559152.0 / 19920000000.0, 1e-15, "v1 dd-agent: norm fraction");
    IS_DBL(total, 86559152.0 / 19920000000.0 * 2, 1e-15, "v1 dd-agent: total fraction");
    /* Metricbeat's user and kernel shares within the document's own window. The Elastic
     * fixture (shared/fixtures/elastic/bulk_request.ndjson, dd-agent) holds user.pct 0.002008,
     * user.norm.pct 0.001004, kernel.pct 0 and kernel.norm.pct 0: 2e7 ns of user time over
     * 1.992e10 ns of system time, times 2 CPUs; the kernel counter did not move. The fixture
     * prints 6 decimals, cut rather than rounded (total.pct 0.0086907 shows as 0.00869), so
     * ours must lie within 1e-6 of it. */
    double upct = -1, unorm = -1, kpct = -1, knorm = -1;
    OK(ecs_cpu_user_fraction(s, &upct, &unorm), "v1 dd-agent: user fraction computed");
    IS_DBL(unorm, 20000000.0 / 19920000000.0, 1e-15, "v1 dd-agent: user norm fraction");
    IS_DBL(upct, 20000000.0 / 19920000000.0 * 2, 1e-15, "v1 dd-agent: user fraction");
    IS_DBL(upct, 0.002008, 1e-6, "v1 dd-agent: user.pct 0.002008 (Elastic fixture)");
    IS_DBL(unorm, 0.001004, 1e-6, "v1 dd-agent: user.norm.pct 0.001004 (Elastic fixture)");
    OK(ecs_cpu_kernel_fraction(s, &kpct, &knorm), "v1 dd-agent: kernel idle is computed");
    IS_DBL(kpct + knorm, 0, 0, "v1 dd-agent: kernel.pct and norm 0 (Elastic fixture)");
    IS_DBL(total, 0.00869, 1e-6, "v1 dd-agent: total.pct 0.00869 (Elastic fixture)");
    IS_DBL(norm, 0.004345, 1e-6, "v1 dd-agent: total.norm.pct 0.004345 (Elastic fixture)");
    IS_UINT(ecs_working_set(s), 156966912, "v1 dd-agent: working set (README vector)");
    IS_UINT(s->io_read_bytes, 143360, "v1 dd-agent: blkio read bytes (README vector)");
    IS_UINT(s->io_write_bytes, 57344, "v1 dd-agent: blkio write bytes (README vector)");
    IS_UINT(s->io_read_ops, 2, "v1 dd-agent: blkio read ops");
    IS_UINT(s->io_write_ops, 14, "v1 dd-agent: blkio write ops");
    IS_UINT(s->has_io, 1, "v1 dd-agent: has io");
    IS_UINT(s->nifaces, 1, "v1 dd-agent: one interface");
    if (s->nifaces == 1) {
        IS_STR(s->ifaces[0].name, "eth1", "v1 dd-agent: eth1");
        IS_UINT(s->ifaces[0].rx_bytes, 781187362, "v1 dd-agent: rx_bytes");
        IS_UINT(s->ifaces[0].rx_packets, 527514, "v1 dd-agent: rx_packets");
        IS_UINT(s->ifaces[0].tx_bytes, 971750, "v1 dd-agent: tx_bytes");
        IS_UINT(s->ifaces[0].tx_packets, 6117, "v1 dd-agent: tx_packets");
        IS_UINT(s->ifaces[0].rx_errors + s->ifaces[0].tx_errors + s->ifaces[0].rx_dropped +
                    s->ifaces[0].tx_dropped,
                0, "v1 dd-agent: no errors or drops");
    }
    IS_UINT(s->has_net_rate, 1, "v1 dd-agent: network_rate_stats present");
    IS_DBL(s->rx_bytes_per_sec, 1911.331442643617, 1e-9, "v1 dd-agent: rx_bytes_per_sec");
    IS_DBL(s->tx_bytes_per_sec, 2390.9142405361977, 1e-9, "v1 dd-agent: tx_bytes_per_sec");
    IS_UINT(s->num_procs, 0, "v1 dd-agent: num_procs");

    s = must_find(&set, DD_PING);
    OK(ecs_cpu_percent(s, &pct), "v1 apmtest-ping: cpu % computed");
    IS_DBL(dec4(pct), 0.0670, 1e-12, "v1 apmtest-ping: cpu % 0.0670 (README vector)");
    IS_UINT(s->mem_usage, 34865152, "v1 apmtest-ping: mem usage raw");
    IS_UINT(ecs_working_set(s), 34865152, "v1 apmtest-ping: working set (README vector)");
    IS_UINT(s->io_read_bytes, 0, "v1 apmtest-ping: blkio read 0");
    IS_UINT(s->io_write_bytes, 0, "v1 apmtest-ping: blkio write 0");
    IS_UINT(s->has_io, 0, "v1 apmtest-ping: empty blkio arrays");
    IS_UINT(s->mem_limit, 92233, "v1 apmtest-ping: limit");
    ecs_stats_set_free(&set);
    IS_UINT(set.n, 0, "stats free: leaves the set empty");
}

static void test_stats_v2(void)
{
    struct ecs_stats_set set;
    double pct = -1;
    IS_INT(load_stats("dd_agent_v4_task_stats_cgroupv2.json", &set, NULL), 0,
           "v2: parses despite limit 18446744073709551615");
    IS_UINT(set.n, 2, "v2: two entries");
    const struct ecs_stats *s = must_find(&set, V2_APP);
    IS_INT(s->present, 1, "v2 app: present");
    IS_UINT(s->mem_limit, 0, "v2 app: unlimited limit sentinel is 0");
    IS_UINT(s->mem_usage, 42827776, "v2 app: mem usage raw");
    IS_UINT(s->has_max_usage, 0, "v2 app: no max_usage");
    IS_UINT(s->mem_has & (1u << ECS_MEM_TOTAL_INACTIVE_FILE), 0, "v2 app: no total_inactive_file");
    IS_UINT(s->mem[ECS_MEM_INACTIVE_FILE], 6082560, "v2 app: inactive_file");
    IS_UINT(s->mem[ECS_MEM_ANON], 22978560, "v2 app: anon");
    IS_UINT(s->mem[ECS_MEM_FILE], 14487552, "v2 app: file");
    IS_UINT(s->mem[ECS_MEM_PGMAJFAULT], 62, "v2 app: pgmajfault");
    OK(ecs_cpu_percent(s, &pct), "v2 app: cpu % computed");
    IS_DBL(dec4(pct), 0.0078, 1e-12, "v2 app: cpu % 0.0078 (README vector)");
    IS_DBL(pct, 781000.0 / 9990000000.0 * 100, 1e-12, "v2 app: cpu % unrounded");
    double upct = -1, unorm = -1;
    OK(ecs_cpu_kernel_fraction(s, &upct, &unorm), "v2 app: kernel fraction (cgroup v2 too)");
    IS_DBL(unorm, 293000.0 / 9990000000.0, 1e-15, "v2 app: kernel norm fraction");
    OK(ecs_cpu_user_fraction(s, &upct, NULL), "v2 app: user fraction, NULL norm allowed");
    IS_DBL(upct, 488000.0 / 9990000000.0, 1e-15, "v2 app: user fraction times 1 CPU");
    IS_UINT(ecs_working_set(s), 36745216, "v2 app: working set (README vector)");
    IS_UINT(s->io_read_bytes, 11345920, "v2 app: blkio read (README vector)");
    IS_UINT(s->io_write_bytes, 28672, "v2 app: blkio write (README vector)");
    IS_UINT(s->io_read_ops + s->io_write_ops, 0, "v2 app: null io_serviced_recursive");
    IS_UINT(s->has_io, 1, "v2 app: has io");
    IS_UINT(s->online_cpus, 1, "v2 app: online_cpus");
    IS_UINT(s->has_net_rate, 0, "v2 app: no network_rate_stats");
    IS_UINT(s->nifaces, 1, "v2 app: eth0");
    IS_UINT(s->nifaces ? s->ifaces[0].rx_bytes : 0, 163710528, "v2 app: rx_bytes");

    s = must_find(&set, V2_AGENT);
    OK(ecs_cpu_percent(s, &pct), "v2 agent: cpu % computed");
    IS_DBL(dec4(pct), 0.5424, 1e-12, "v2 agent: cpu % 0.5424 (README vector)");
    IS_UINT(s->mem_usage, 398942208, "v2 agent: mem usage raw");
    IS_UINT(ecs_working_set(s), 249430016, "v2 agent: working set (README vector)");
    IS_UINT(s->io_read_bytes, 225542144, "v2 agent: blkio read (README vector)");
    IS_UINT(s->io_write_bytes, 7258112, "v2 agent: blkio write (README vector)");
    IS_UINT(s->mem_limit, 0, "v2 agent: unlimited");
    ecs_stats_set_free(&set);
}

static void test_stats_ec2(void)
{
    struct ecs_stats_set set;
    double pct = -1, total = -1, norm = -1;
    IS_INT(load_stats("aws_doc_ec2_v4_task_stats.json", &set, NULL), 0, "ec2 stats: parses");
    const struct ecs_stats *s = must_find(&set, EC2_PAUSE_STATS);
    /* Idle: total_usage did not move while system_cpu_usage did (2e9 ns), as Datadog says. */
    OK(ecs_cpu_percent(s, &pct), "ec2 pause: idle, cpu % computed");
    IS_DBL(pct, 0, 0, "ec2 pause: idle is 0 %");
    OK(ecs_cpu_fraction(s, &total, &norm), "ec2 pause: idle fraction computed");
    IS_DBL(total + norm, 0, 0, "ec2 pause: fractions 0");
    IS_UINT(s->mem_has & (1u << ECS_MEM_HIER_LIMIT), 0,
            "ec2 pause: hierarchical_memory_limit 9223372036854771712 is absent");
    IS_UINT(s->mem_limit, 4073377792u, "ec2 pause: limit");
    IS_UINT(s->has_io, 0, "ec2 pause: empty blkio");
    IS_UINT(s->num_procs, 0, "ec2 pause: num_procs");
    s = must_find(&set, EC2_CURL_STATS);
    OK(ecs_cpu_percent(s, &pct), "ec2 curl: cpu %");
    IS_DBL(pct, 250484.0 / 2000000000.0 * 2 * 100, 1e-12, "ec2 curl: cpu % value");
    IS_UINT(s->mem[ECS_MEM_HIER_LIMIT], 134217728, "ec2 curl: hierarchical_memory_limit");
    IS_UINT(s->has_net_rate, 1, "ec2 curl: network_rate_stats");
    IS_DBL(s->rx_bytes_per_sec, 0, 0, "ec2 curl: rate 0");
    ecs_stats_set_free(&set);

    /* The ${URI}/stats document of one container, wrapped as a /task/stats entry. */
    size_t len;
    char *doc = slurp("aws_doc_ec2_v4_container_stats.json", &len);
    static const char head[] = "{\"me\":";
    size_t n = sizeof head - 1 + len + 1;
    char *buf = malloc(n);
    char err[256];
    memcpy(buf, head, sizeof head - 1);
    if (doc != NULL)
        memcpy(buf + sizeof head - 1, doc, len);
    buf[n - 1] = '}';
    IS_INT(ecs_stats_parse(buf, n, &set, NULL, err, sizeof err), 0, "container stats: parses");
    s = must_find(&set, "me");
    IS_UINT(s->mem_usage, 1806336, "container stats: usage");
    IS_UINT(s->mem_limit, 134217728, "container stats: limit");
    IS_UINT(s->pre_system_cpu, UINT64_C(13937670000000), "container stats: precpu system");
    pct = -1;
    OK(ecs_cpu_percent(s, &pct), "container stats: idle, cpu % computed");
    IS_DBL(pct, 0, 0, "container stats: idle is 0 %");
    IS_UINT(s->nifaces, 1, "container stats: eth0");
    ecs_stats_set_free(&set);
    free(buf);
    free(doc);
}

static void test_stats_edges(void)
{
    struct ecs_stats_set set;
    uint32_t nbad = 99;
    double pct = -1, total, norm;

    IS_INT(load_stats("edge_stats_null_entry.json", &set, &nbad), 0, "edge null: parses");
    IS_UINT(nbad, 0, "edge null: null is not bad");
    IS_UINT(set.n, 2, "edge null: both entries kept");
    const struct ecs_stats *s = must_find(&set, "aaaa-1");
    IS_INT(s->present, 0, "edge null: null entry not present");
    OK(!ecs_cpu_percent(s, &pct), "edge null: no cpu % for it");
    IS_UINT(ecs_working_set(s), 0, "edge null: no working set");
    s = must_find(&set, "bbbb-2");
    OK(ecs_cpu_percent(s, &pct), "edge null: the other computes");
    IS_DBL(pct, 10.0, 1e-12, "edge null: 1e9 / 20e9 * 2 * 100");
    IS_UINT(s->num_procs, 3, "edge null: num_procs");
    ecs_stats_set_free(&set);

    IS_INT(load_stats("edge_stats_unlimited.json", &set, NULL), 0, "edge unlimited: parses");
    s = must_find(&set, "v1-unlimited");
    IS_UINT(s->mem_limit, 0, "edge unlimited: v1 9223372036854771712 limit is 0");
    IS_UINT(s->mem_has & (1u << ECS_MEM_HIER_LIMIT), 0, "edge unlimited: v1 hier limit absent");
    IS_UINT(s->mem_has & (1u << ECS_MEM_HIER_MEMSW_LIMIT), 0,
            "edge unlimited: INT64_MAX memsw absent");
    IS_UINT(s->mem[ECS_MEM_CACHE], 1024, "edge unlimited: ordinary key kept");
    IS_UINT(ecs_working_set(s), 4096, "edge unlimited: inactive above usage not subtracted");
    s = must_find(&set, "v2-unlimited");
    IS_UINT(s->has_mem, 0, "edge unlimited: usage 2^64-1 is absent");
    IS_UINT(s->mem_limit, 0, "edge unlimited: v2 limit 0");
    IS_UINT(s->has_max_usage, 0, "edge unlimited: max_usage INT64_MAX absent");
    IS_UINT(s->has_failcnt, 1, "edge unlimited: failcnt kept");
    IS_UINT(s->mem_failcnt, 3, "edge unlimited: failcnt value");
    IS_UINT(s->mem_has & (1u << ECS_MEM_INACTIVE_FILE), 0,
            "edge unlimited: inactive_file 2^64-2 absent");
    IS_UINT(s->mem[ECS_MEM_ANON], 12, "edge unlimited: anon kept");
    IS_UINT(ecs_working_set(s), 0, "edge unlimited: no usage, no working set");
    IS_UINT(must_find(&set, "at-2-62")->mem_limit, 0, "edge unlimited: 2^62 is unset");
    IS_UINT(must_find(&set, "below-2-62")->mem_limit, UINT64_C(4611686018427387903),
            "edge unlimited: 2^62-1 is a limit");
    IS_UINT(must_find(&set, "beyond-u64")->has_mem, 0, "edge unlimited: 30 digits absent");
    IS_UINT(must_find(&set, "beyond-u64")->mem_limit, 0, "edge unlimited: 1e20 limit unset");
    ecs_stats_set_free(&set);

    IS_INT(load_stats("edge_stats_no_networks.json", &set, NULL), 0, "edge networks: parses");
    s = must_find(&set, "no-networks");
    IS_UINT(s->nifaces, 0, "edge networks: missing networks");
    OK(s->ifaces == NULL, "edge networks: no array");
    IS_UINT(s->has_net_rate, 0, "edge networks: no rate");
    IS_UINT(s->has_mem, 1, "edge networks: the rest parsed");
    IS_UINT(must_find(&set, "lo-only")->nifaces, 0, "edge networks: lo left out");
    s = must_find(&set, "lo-and-eth");
    IS_UINT(s->nifaces, 2, "edge networks: eth0 and the long one, not lo or a string");
    if (s->nifaces == 2) {
        struct ecs_iface *f = &s->ifaces[0];
        IS_STR(f->name, "eth0", "edge networks: eth0 first");
        IS_UINT(f->rx_bytes, 7, "edge networks: rx_bytes");
        IS_UINT(f->tx_bytes, 8, "edge networks: tx_bytes");
        IS_UINT(f->rx_errors, 1, "edge networks: rx_errors");
        IS_UINT(f->tx_errors, 2, "edge networks: tx_errors");
        IS_UINT(f->rx_dropped, 3, "edge networks: rx_dropped");
        IS_UINT(f->tx_dropped, 4, "edge networks: tx_dropped");
        IS_UINT(f->rx_packets, 5, "edge networks: rx_packets");
        IS_UINT(f->tx_packets, 6, "edge networks: tx_packets");
        IS_STR(s->ifaces[1].name, "a-very-long-interface-name-that",
               "edge networks: long name cut to 31 bytes");
    }
    IS_UINT(must_find(&set, "networks-null")->nifaces, 0, "edge networks: null networks");
    IS_UINT(must_find(&set, "networks-null")->has_net_rate, 0, "edge networks: null rate");
    ecs_stats_set_free(&set);

    IS_INT(load_stats("edge_stats_lowercase_blkio.json", &set, NULL), 0, "edge blkio: parses");
    s = must_find(&set, "mixed");
    IS_UINT(s->io_read_bytes, 123, "edge blkio: read, READ and Read summed");
    IS_UINT(s->io_write_bytes, 1200, "edge blkio: write and Write summed, Total not");
    IS_UINT(s->io_read_ops, 4, "edge blkio: read ops");
    IS_UINT(s->io_write_ops, 6, "edge blkio: WRITE ops");
    IS_UINT(s->has_io, 1, "edge blkio: has io");
    IS_UINT(must_find(&set, "empty-arrays")->has_io, 0, "edge blkio: [] has none");
    IS_UINT(must_find(&set, "null-arrays")->has_io, 0, "edge blkio: null has none");
    IS_UINT(must_find(&set, "no-blkio")->has_io, 0, "edge blkio: absent has none");
    IS_INT(must_find(&set, "no-blkio")->present, 1, "edge blkio: {} is present");
    ecs_stats_set_free(&set);

    IS_INT(load_stats("edge_stats_windows.json", &set, NULL), 0, "edge windows: parses");
    s = must_find(&set, "win");
    IS_UINT(s->has_io, 0, "edge windows: blkio \"None\" holds nothing");
    IS_UINT(s->io_read_bytes + s->io_write_bytes, 0, "edge windows: no io bytes");
    IS_UINT(s->online_cpus, 0, "edge windows: no online_cpus");
    IS_UINT(s->has_cpu, 1, "edge windows: total_usage present");
    OK(!ecs_cpu_percent(s, &pct), "edge windows: no cpu % without online cpus (as DD)");
    OK(!ecs_cpu_fraction(s, &total, &norm), "edge windows: no system delta, no fraction");
    IS_UINT(s->has_cpu_modes, 1, "edge windows: user and kernel counters present");
    IS_UINT(s->pre_cpu_user, 3100000000u, "edge windows: precpu usage_in_usermode");
    IS_UINT(s->pre_cpu_kernel, 900000000u, "edge windows: precpu usage_in_kernelmode");
    OK(!ecs_cpu_user_fraction(s, &total, &norm), "edge windows: no user fraction either");
    IS_UINT(s->has_mem, 0, "edge windows: no usage");
    IS_UINT(s->num_procs, 12, "edge windows: num_procs");
    IS_INT(s->read_ns - s->preread_ns, INT64_C(10500000000), "edge windows: fractional read");
    ecs_stats_set_free(&set);

    IS_INT(load_stats("edge_stats_malformed.json", &set, &nbad), 0, "edge malformed: parses");
    IS_UINT(nbad, 4, "edge malformed: number, string, array and bool entries are bad");
    IS_UINT(set.n, 6, "edge malformed: all entries listed");
    IS_INT(must_find(&set, "num")->present, 0, "edge malformed: bad entry not present");
    IS_INT(must_find(&set, "str")->present, 0, "edge malformed: \"None\" entry not present");
    s = must_find(&set, "good");
    IS_INT(s->present, 1, "edge malformed: object entry present");
    IS_INT(s->read_ns, INT64_C(1704060010000000000), "edge malformed: +02:00 offset applied");
    IS_UINT(s->has_cpu, 0, "edge malformed: string total_usage absent");
    IS_UINT(s->online_cpus, 0, "edge malformed: string online_cpus, string percpu");
    IS_UINT(s->system_cpu, 0, "edge malformed: negative system_cpu_usage is 0");
    IS_UINT(s->has_mem, 0, "edge malformed: negative usage absent");
    IS_UINT(s->mem_limit, 0, "edge malformed: string limit");
    IS_UINT(s->mem_has & (1u << ECS_MEM_CACHE), 0, "edge malformed: string cache absent");
    IS_UINT(s->mem[ECS_MEM_RSS], 1500, "edge malformed: 1.5e3 rss read as 1500");
    IS_UINT(s->mem_has & (1u << ECS_MEM_PGFAULT), 0, "edge malformed: negative pgfault absent");
    IS_UINT(s->mem[ECS_MEM_ANON], 7, "edge malformed: anon");
    IS_UINT(s->has_io, 0, "edge malformed: blkio object instead of array");
    IS_UINT(s->nifaces, 0, "edge malformed: networks array");
    IS_UINT(s->has_net_rate, 1, "edge malformed: rate object present");
    IS_DBL(s->rx_bytes_per_sec, 0, 0, "edge malformed: string rate is 0");
    IS_DBL(s->tx_bytes_per_sec, 2.5, 0, "edge malformed: tx rate");
    IS_INT(must_find(&set, "empty")->present, 1, "edge malformed: {} present");
    ecs_stats_set_free(&set);

    IS_INT(load_stats("edge_stats_dd_guard.json", &set, NULL), 0, "edge guard: parses");
    s = must_find(&set, "bogus");
    OK(ecs_cpu_percent(s, &pct), "edge guard: system_delta < cpu_delta computes");
    IS_DBL(pct, 150.0, 1e-9, "edge guard: 15e9 / (10 whole s * 1e9) * 100, not 300");
    OK(ecs_cpu_fraction(s, &total, &norm), "edge guard: fraction has no guard");
    IS_DBL(norm, 1.5, 1e-12, "edge guard: raw fraction");
    s = must_find(&set, "equal");
    OK(ecs_cpu_percent(s, &pct), "edge guard: system_delta == cpu_delta takes the guard");
    IS_DBL(pct, 20.0, 1e-9, "edge guard: 1e9 / 5e9 * 100");
    s = must_find(&set, "under-a-second");
    OK(!ecs_cpu_percent(s, &pct), "edge guard: 0 whole seconds gives nothing");
    s = must_find(&set, "first-sample");
    IS_INT(s->preread_ns, 0, "edge guard: zero-time preread is 0");
    IS_UINT(s->online_cpus, 2, "edge guard: online from non-zero percpu_usage");
    OK(!ecs_cpu_percent(s, &pct), "edge guard: no preread, no cpu %");
    OK(!ecs_cpu_fraction(s, &total, &norm), "edge guard: no preread, no fraction either");
    IS_DBL(total + norm, 0, 0, "edge guard: no preread, fractions 0");
    ecs_stats_set_free(&set);
}

/* edge_stats_idle.json: an idle container gets 0 (as Datadog's check and Datakit), but only
 * where a share can be told at all: CPU data, online CPUs, a real preread, system time that
 * advanced. The user and kernel shares follow the same rules, counter by counter. */
static void test_cpu_idle(void)
{
    struct ecs_stats_set set;
    double pct, total, norm;
    IS_INT(load_stats("edge_stats_idle.json", &set, NULL), 0, "idle: parses");

    const struct ecs_stats *s = must_find(&set, "idle");
    pct = total = norm = -1;
    OK(ecs_cpu_percent(s, &pct), "idle: cpu % computed");
    IS_DBL(pct, 0, 0, "idle: cpu % is 0");
    OK(ecs_cpu_fraction(s, &total, &norm), "idle: fraction computed");
    IS_DBL(total, 0, 0, "idle: total fraction 0");
    IS_DBL(norm, 0, 0, "idle: norm fraction 0");
    total = norm = -1;
    OK(ecs_cpu_user_fraction(s, &total, &norm), "idle: user fraction computed");
    IS_DBL(total + norm, 0, 0, "idle: user 0");
    total = norm = -1;
    OK(ecs_cpu_kernel_fraction(s, &total, &norm), "idle: kernel fraction computed");
    IS_DBL(total + norm, 0, 0, "idle: kernel 0");

    static const char *const cannot[] = {"idle-first-sample", "idle-no-online",
                                         "idle-system-still"};
    static const char *const why[] = {"no preread", "online 0", "system time did not advance"};
    for (size_t i = 0; i < sizeof cannot / sizeof cannot[0]; i++) {
        char name[160];
        s = must_find(&set, cannot[i]);
        pct = total = norm = -1;
        snprintf(name, sizeof name, "idle, %s: no cpu %% (0 returned, pct 0)", why[i]);
        OK(!ecs_cpu_percent(s, &pct) && pct == 0, name);
        snprintf(name, sizeof name, "idle, %s: no fraction (both 0)", why[i]);
        OK(!ecs_cpu_fraction(s, &total, &norm) && total == 0 && norm == 0, name);
        snprintf(name, sizeof name, "idle, %s: no user or kernel fraction", why[i]);
        OK(!ecs_cpu_user_fraction(s, &total, &norm) && !ecs_cpu_kernel_fraction(s, &total, &norm),
           name);
    }

    s = must_find(&set, "user-only");
    OK(ecs_cpu_percent(s, &pct), "user-only: cpu %");
    IS_DBL(pct, 1e9 / 2e10 * 2 * 100, 1e-12, "user-only: 10 %");
    OK(ecs_cpu_user_fraction(s, &total, &norm), "user-only: user fraction");
    IS_DBL(norm, 0.05, 1e-15, "user-only: user norm 1e9 / 2e10");
    IS_DBL(total, 0.1, 1e-15, "user-only: user pct times 2 CPUs");
    total = norm = -1;
    OK(ecs_cpu_kernel_fraction(s, &total, &norm), "user-only: kernel unchanged is computed");
    IS_DBL(total + norm, 0, 0, "user-only: kernel 0");

    s = must_find(&set, "user-reset");
    total = norm = -1;
    OK(!ecs_cpu_user_fraction(s, &total, &norm), "user-reset: a user counter that went back");
    IS_DBL(total + norm, 0, 0, "user-reset: outputs 0");
    OK(ecs_cpu_kernel_fraction(s, &total, &norm), "user-reset: the kernel counter still counts");
    IS_DBL(total, 5e8 / 2e10 * 2, 1e-15, "user-reset: kernel pct");
    OK(ecs_cpu_percent(s, &pct), "user-reset: total_usage grew: cpu %");

    s = must_find(&set, "no-pre-modes");
    IS_UINT(s->has_cpu_modes, 0, "no-pre-modes: precpu_stats lacks user and kernel");
    IS_UINT(s->cpu_user, 4000000000u, "no-pre-modes: cpu_stats user still read (ticks)");
    OK(!ecs_cpu_user_fraction(s, &total, &norm), "no-pre-modes: no user fraction");
    OK(!ecs_cpu_kernel_fraction(s, &total, &norm), "no-pre-modes: no kernel fraction");
    OK(ecs_cpu_fraction(s, &total, &norm), "no-pre-modes: the total fraction is there");
    IS_DBL(norm, 0.05, 1e-15, "no-pre-modes: total norm");

    OK(!ecs_cpu_user_fraction(NULL, &total, &norm), "user fraction: NULL stats");
    OK(!ecs_cpu_kernel_fraction(NULL, NULL, NULL), "kernel fraction: NULL everything");
    ecs_stats_set_free(&set);
}

static void test_rates(void)
{
    struct ecs_stats_set a, b;
    double r = -1;
    IS_INT(load_stats("edge_stats_reset_1.json", &a, NULL), 0, "reset: first parses");
    IS_INT(load_stats("edge_stats_reset_2.json", &b, NULL), 0, "reset: second parses");
    const struct ecs_stats *p = must_find(&a, "c1"), *c = must_find(&b, "c1");
    int64_t dt = c->read_ns - p->read_ns;
    IS_INT(dt, INT64_C(10000000000), "reset: 10 s between the polls");
    OK(p->nifaces == 1 && c->nifaces == 1, "reset: one iface each");
    if (p->nifaces == 1 && c->nifaces == 1) {
        OK(!ecs_rate(p->ifaces[0].rx_bytes, c->ifaces[0].rx_bytes, dt, &r),
           "reset: rx_bytes went backwards, skipped");
        IS_DBL(r, 0, 0, "reset: skipped rate is 0");
        OK(ecs_rate(p->ifaces[0].tx_bytes, c->ifaces[0].tx_bytes, dt, &r), "reset: tx rate");
        IS_DBL(r, 1000.0, 1e-9, "reset: tx 10000 bytes in 10 s");
    }
    OK(!ecs_rate(p->cpu_total, c->cpu_total, dt, &r), "reset: cpu counter reset skipped");
    double pct = -1, norm = -1;
    OK(!ecs_cpu_percent(c, &pct), "reset: cpu % skipped when precpu is larger");
    OK(!ecs_cpu_fraction(c, NULL, &norm), "reset: so is the fraction");
    IS_UINT(c->has_cpu_modes, 0, "reset: precpu_stats without usage_in_usermode");
    OK(!ecs_cpu_user_fraction(c, NULL, &norm), "reset: no user fraction without precpu modes");
    OK(ecs_rate(p->io_read_bytes, c->io_read_bytes, dt, &r), "reset: io read rate");
    IS_DBL(r, 200000.0, 1e-9, "reset: io read 2e6 bytes in 10 s");
    OK(!ecs_rate(p->io_write_bytes, c->io_write_bytes, dt, &r), "reset: io write went backwards");
    OK(ecs_rate(p->mem[ECS_MEM_PGFAULT], c->mem[ECS_MEM_PGFAULT], dt, &r), "reset: pgfault rate");
    IS_DBL(r, 100.0, 1e-9, "reset: pgfault 1000 in 10 s");
    OK(!ecs_rate(1, 2, 0, &r), "rate: dt 0 skipped");
    OK(!ecs_rate(1, 2, -5, &r), "rate: negative dt skipped");
    OK(ecs_rate(5, 5, 1000000000, &r) && r == 0, "rate: unchanged counter is 0/s");
    OK(ecs_rate(0, UINT64_MAX, 1000000000, &r) && r > 1.8e19, "rate: the whole range");
    OK(!ecs_rate(1, 2, 1, NULL), "rate: NULL out");
    ecs_stats_set_free(&a);
    ecs_stats_set_free(&b);
}

static void test_mem_limit(void)
{
    struct ecs_task fargate, ec2;
    struct ecs_stats_set v1, v2;
    load_task("dd_fargate_v4_task.json", &fargate);
    load_task("aws_doc_ec2_v4_task.json", &ec2);
    load_stats("dd_fargate_v4_task_stats_cgroupv1.json", &v1, NULL);
    load_stats("dd_agent_v4_task_stats_cgroupv2.json", &v2, NULL);
    const struct ecs_stats *s1 = must_find(&v1, DD_AGENT), *s2 = must_find(&v2, V2_APP);
    const struct ecs_container *curl = must_container(&ec2, EC2_CURL_ID);
    const struct ecs_container *agent = must_container(&fargate, DD_AGENT);
    IS_UINT(ecs_mem_limit(s1, agent, &fargate), 922337, "mem limit: the stats limit first");
    IS_UINT(ecs_mem_limit(s2, curl, &fargate), UINT64_C(128) * 1048576,
            "mem limit: unlimited stats, the container's 128 MiB");
    IS_UINT(ecs_mem_limit(s2, agent, &fargate), UINT64_C(3072) * 1048576,
            "mem limit: no container limit, the task's 3072 MiB");
    IS_UINT(ecs_mem_limit(s2, NULL, &fargate), UINT64_C(3072) * 1048576,
            "mem limit: no container, the task's");
    IS_UINT(ecs_mem_limit(s2, agent, &ec2), 0, "mem limit: none anywhere is 0");
    IS_UINT(ecs_mem_limit(NULL, NULL, NULL), 0, "mem limit: all NULL is 0");
    IS_UINT(ecs_mem_limit(NULL, curl, NULL), UINT64_C(128) * 1048576, "mem limit: no stats");
    struct ecs_stats absent;
    memset(&absent, 0, sizeof absent);
    absent.mem_limit = 5; /* not present: its numbers do not count */
    IS_UINT(ecs_mem_limit(&absent, NULL, &fargate), UINT64_C(3072) * 1048576,
            "mem limit: a null entry's limit is ignored");
    ecs_stats_set_free(&v1);
    ecs_stats_set_free(&v2);
    ecs_task_free(&fargate);
    ecs_task_free(&ec2);
}

static void test_formula_guards(void)
{
    struct ecs_stats s;
    double pct = -1, total = -1, norm = -1;
    OK(!ecs_cpu_percent(NULL, &pct), "cpu %: NULL stats");
    OK(!ecs_cpu_percent(&s, NULL), "cpu %: NULL out");
    OK(!ecs_cpu_fraction(NULL, &total, &norm), "fraction: NULL stats");
    IS_UINT(ecs_working_set(NULL), 0, "working set: NULL");
    memset(&s, 0, sizeof s);
    s.present = 1;
    s.has_cpu = 1;
    s.online_cpus = 4;
    s.cpu_total = 2000;
    s.pre_cpu_total = 1000;
    s.system_cpu = 100000;
    s.pre_system_cpu = 0;
    s.read_ns = 20;
    s.preread_ns = 10;
    OK(ecs_cpu_percent(&s, &pct), "cpu %: synthetic");
    IS_DBL(pct, 1000.0 / 100000.0 * 4 * 100, 1e-12, "cpu %: times online cpus");
    OK(ecs_cpu_fraction(&s, NULL, &norm), "fraction: NULL total allowed");
    IS_DBL(norm, 0.01, 1e-15, "fraction: norm");
    s.online_cpus = 0;
    OK(!ecs_cpu_percent(&s, &pct), "cpu %: online 0");
    OK(!ecs_cpu_fraction(&s, &total, &norm), "fraction: online 0");
    s.online_cpus = 4;
    s.cpu_total = s.pre_cpu_total; /* idle over the window */
    pct = -1;
    OK(ecs_cpu_percent(&s, &pct), "cpu %: idle is computed");
    IS_DBL(pct, 0, 0, "cpu %: idle is 0");
    s.preread_ns = 0;
    OK(!ecs_cpu_percent(&s, &pct), "cpu %: idle without preread is not");
    s.preread_ns = 10;
    s.system_cpu = s.pre_system_cpu;
    OK(!ecs_cpu_percent(&s, &pct), "cpu %: idle without system time is not");
    s.system_cpu = 100000;
    s.cpu_total = 2000;
    s.has_cpu = 0;
    OK(!ecs_cpu_percent(&s, &pct), "cpu %: no cpu");
    s.has_cpu = 1;
    s.present = 0;
    OK(!ecs_cpu_percent(&s, &pct), "cpu %: not present");
    s.present = 1;
    s.read_ns = 5;
    OK(!ecs_cpu_percent(&s, &pct), "cpu %: read before preread");
    s.read_ns = INT64_MAX;
    s.preread_ns = INT64_MIN + 1;
    s.system_cpu = 500; /* the guard's branch, with a huge interval: no overflow */
    OK(ecs_cpu_percent(&s, &pct), "cpu %: extreme times");
    OK(pct > 0 && pct < 1e-6, "cpu %: extreme interval gives a tiny share");
    s.mem_usage = 100;
    s.has_mem = 1;
    s.mem_has = 1u << ECS_MEM_INACTIVE_FILE;
    s.mem[ECS_MEM_INACTIVE_FILE] = 40;
    IS_UINT(ecs_working_set(&s), 60, "working set: v2 inactive_file");
    s.mem_has |= 1u << ECS_MEM_TOTAL_INACTIVE_FILE;
    s.mem[ECS_MEM_TOTAL_INACTIVE_FILE] = 100;
    IS_UINT(ecs_working_set(&s), 60, "working set: v1 key not below usage, v2 key used");
    s.mem[ECS_MEM_TOTAL_INACTIVE_FILE] = 30;
    IS_UINT(ecs_working_set(&s), 70, "working set: v1 key first");
    s.mem_has = 0;
    IS_UINT(ecs_working_set(&s), 100, "working set: no keys, usage");

    static const char *const names[ECS_MEM_NKEYS] = {"cache",
                                                     "rss",
                                                     "mapped_file",
                                                     "active_anon",
                                                     "active_file",
                                                     "inactive_file",
                                                     "total_inactive_file",
                                                     "total_rss",
                                                     "hierarchical_memory_limit",
                                                     "hierarchical_memsw_limit",
                                                     "pgpgin",
                                                     "pgpgout",
                                                     "pgfault",
                                                     "pgmajfault",
                                                     "anon",
                                                     "file"};
    int same = 1;
    for (int k = 0; k < ECS_MEM_NKEYS; k++)
        same &= strcmp(ecs_mem_key_name((enum ecs_mem_key)k), names[k]) == 0;
    OK(same, "mem key names");
    OK(ecs_mem_key_name(ECS_MEM_NKEYS) == NULL, "mem key name: NKEYS is NULL");
}

/* ---- time ----------------------------------------------------------------------------------- */

static void test_time(void)
{
    static const struct {
        const char *s;
        int ok;
        int64_t ns;
    } cases[] = {
        {"2023-06-20T01:19:45.077342978Z", 1, INT64_C(1687223985077342978)},
        {"2023-06-20T01:19:45Z", 1, INT64_C(1687223985000000000)},
        {"2023-06-20T01:19:45.5Z", 1, INT64_C(1687223985500000000)},
        {"2020-10-02T00:43:06.31288465Z", 1, INT64_C(1601599386312884650)},
        {"2023-06-20T01:19:45.0773429781234Z", 1, INT64_C(1687223985077342978)},
        {"2023-06-20T10:19:45.077342978+09:00", 1, INT64_C(1687223985077342978)},
        {"2023-06-19T20:49:45.077342978-04:30", 1, INT64_C(1687223985077342978)},
        {"2023-06-20t01:19:45z", 1, INT64_C(1687223985000000000)},
        {"1970-01-01T00:00:00Z", 1, 0},
        {"2024-02-29T00:00:00Z", 1, INT64_C(1709164800000000000)},
        {"2000-02-29T12:00:00Z", 1, INT64_C(951825600000000000)},
        {"1969-12-31T23:59:59Z", 1, INT64_C(-1000000000)},
        {"0001-01-01T00:00:00Z", 0, 0},
        {"9999-12-31T23:59:59Z", 0, 0},
        {"2262-04-12T00:00:00Z", 0, 0},
        {"2023-02-29T00:00:00Z", 0, 0},
        {"1900-02-29T00:00:00Z", 0, 0},
        {"2023-13-01T00:00:00Z", 0, 0},
        {"2023-00-01T00:00:00Z", 0, 0},
        {"2023-06-31T00:00:00Z", 0, 0},
        {"2023-06-20T24:00:00Z", 0, 0},
        {"2023-06-20T23:60:00Z", 0, 0},
        {"2023-06-20T23:59:60Z", 0, 0},
        {"2023-06-20T01:19:45", 0, 0},
        {"2023-06-20T01:19:45.Z", 0, 0},
        {"2023-06-20T01:19:45+0900", 0, 0},
        {"2023-06-20T01:19:45+09:0", 0, 0},
        {"2023-06-20T01:19:45+24:00", 0, 0},
        {"2023-06-20T01:19:45Z ", 0, 0},
        {"2023-06-20 01:19:45Z", 0, 0},
        {"2023-6-20T01:19:45Z", 0, 0},
        {"+023-06-20T01:19:45Z", 0, 0},
        {"2023-06-20T01:19:45.07734x978Z", 0, 0},
        {"", 0, 0},
        {"yesterday", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[128];
        int64_t ns = 12345;
        size_t n = strlen(cases[i].s);
        char *copy = malloc(n + 1); /* exactly n bytes read: the sanitizer watches */
        memcpy(copy, cases[i].s, n);
        int ok = ecs_time_parse(copy, n, &ns);
        snprintf(name, sizeof name, "time '%s': %s", cases[i].s,
                 cases[i].ok ? "parsed" : "refused");
        OK(ok == cases[i].ok && ns == cases[i].ns, name);
        if (ok != cases[i].ok || ns != cases[i].ns)
            printf("#   got %d %lld\n", ok, (long long)ns);
        free(copy);
    }
    int64_t ns = 7;
    OK(!ecs_time_parse("2023-06-20T01:19:45Z", 19, &ns) && ns == 0, "time: length bounds it");
}

/* ---- image references and tags ------------------------------------------------------------- */

static void test_image_split(void)
{
    static const struct {
        const char *image, *name, *short_name, *tag;
    } cases[] = {
        {"public.ecr.aws/b1o7r7e0/akira-agent-fgcheck:9",
         "public.ecr.aws/b1o7r7e0/akira-agent-fgcheck", "akira-agent-fgcheck", "9"},
        {"registry:5000/repo/name:tag@sha256:abcd", "registry:5000/repo/name", "name", "tag"},
        {"registry:5000/repo/name", "registry:5000/repo/name", "name", "latest"},
        {"registry:5000/repo/name@sha256:abcd", "registry:5000/repo/name", "name", ""},
        {"nginx", "nginx", "nginx", "latest"},
        {"nginx:1.25", "nginx", "nginx", "1.25"},
        {"library/nginx:1.25-alpine", "library/nginx", "nginx", "1.25-alpine"},
        {"111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest",
         "111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest", "curltest", "latest"},
        {"[::1]:5000/app:v2", "[::1]:5000/app", "app", "v2"},
        {"localhost:5000/app", "localhost:5000/app", "app", "latest"},
        {"name:", "name", "name", "latest"},
        {"repo/", "repo/", "", "latest"},
        {"", "", "", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[256], short_name[128], tag[128], t[320];
        ecs_image_split(cases[i].image, name, sizeof name, short_name, sizeof short_name, tag,
                        sizeof tag);
        snprintf(t, sizeof t, "image '%s': name", cases[i].image);
        IS_STR(name, cases[i].name, t);
        snprintf(t, sizeof t, "image '%s': short", cases[i].image);
        IS_STR(short_name, cases[i].short_name, t);
        snprintf(t, sizeof t, "image '%s': tag", cases[i].image);
        IS_STR(tag, cases[i].tag, t);
    }
    char a[5], b[1], c[3];
    ecs_image_split("registry/longname:longtag", a, sizeof a, b, sizeof b, c, sizeof c);
    IS_STR(a, "regi", "image split: truncated name");
    IS_STR(b, "", "image split: one-byte buffer holds the NUL");
    IS_STR(c, "lo", "image split: truncated tag");
    ecs_image_split(NULL, a, sizeof a, NULL, 0, c, sizeof c);
    IS_STR(a, "", "image split: NULL image");
    IS_STR(c, "", "image split: NULL image has no tag");
}

/* Renders tags as "k:v,k:v" (in the order given). */
static void show_tags(const struct rmr_tag *tags, uint32_t n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < n && o < len; i++) {
        int w = snprintf(buf + o, len - o, "%s%.*s:%.*s", i ? "," : "", (int)tags[i].key.len,
                         tags[i].key.ptr, (int)tags[i].value.len, tags[i].value.ptr);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static void test_tags(void)
{
    struct ecs_task t;
    struct rmr_tag tags[16];
    char buf[512], out[2048];
    load_task("dd_fargate_v4_task.json", &t);
    uint32_t n = ecs_task_tags(&t, tags, 16);
    IS_UINT(n, 7, "task tags: all seven");
    show_tags(tags, n, out, sizeof out);
    IS_STR(out,
           "ecs_cluster_name:akira-fargate-check-cluster,task_arn:arn:aws:ecs:ap-northeast-1:"
           "601427279990:task/akira-fargate-check-cluster/67cd8a22b533459696d4ccab5278e009,"
           "task_family:akira-fargate-check,task_name:akira-fargate-check,task_version:1,"
           "availability-zone:ap-northeast-1d,region:ap-northeast-1",
           "task tags: Datadog's names and values");
    IS_UINT(ecs_task_tags(&t, tags, 3), 3, "task tags: capped");
    IS_UINT(ecs_task_tags(NULL, tags, 16), 0, "task tags: NULL task");
    n = ecs_container_tags(must_container(&t, DD_AGENT), tags, 16, buf, sizeof buf);
    show_tags(tags, n, out, sizeof out);
    IS_STR(out,
           "container_name:dd-agent,ecs_container_name:dd-agent,container_id:" DD_AGENT
           ",docker_image:public.ecr.aws/b1o7r7e0/akira-agent-fgcheck:9,image_name:public.ecr.aws/"
           "b1o7r7e0/akira-agent-fgcheck,short_image:akira-agent-fgcheck,image_tag:9",
           "container tags: Datadog's names and values");
    IS_UINT(ecs_container_tags(must_container(&t, DD_AGENT), tags, 2, buf, sizeof buf), 2,
            "container tags: capped");
    ecs_task_free(&t);

    load_task("edge_task_pause.json", &t);
    n = ecs_task_tags(&t, tags, 16);
    show_tags(tags, n, out, sizeof out);
    IS_STR(out,
           "ecs_cluster_name:prod,task_arn:arn:aws:ecs:eu-central-1:123456789012:task/prod/"
           "0123456789abcdef0123456789abcdef,task_family:web,task_name:web,task_version:12,"
           "region:eu-central-1",
           "task tags: no AZ left out");
    n = ecs_container_tags(must_container(&t, "n2"), tags, 16, NULL, 0);
    show_tags(tags, n, out, sizeof out);
    IS_STR(out,
           "container_name:sidecar,ecs_container_name:sidecar,container_id:n2,docker_image:"
           "localhost:5000/team/sidecar:2.1@sha256:0123,image_name:localhost:5000/team/sidecar,"
           "short_image:sidecar,image_tag:2.1",
           "container tags: registry port and digest");
    ecs_task_free(&t);

    load_task("edge_task_malformed.json", &t);
    n = ecs_container_tags(must_container(&t, "ok-1"), tags, 16, buf, sizeof buf);
    show_tags(tags, n, out, sizeof out);
    IS_STR(out, "container_id:ok-1", "container tags: empty name and image left out");
    ecs_task_free(&t);
}

/* A host table with only the ABI 1.2 tag functions, recording what they get. */
struct tag_host {
    const struct rmr_host_api *host; /* first, as in every handle */
    char log[8192];
    int fail; /* tagger_set answers RMR_ENOMEM */
};

static void th_append(struct tag_host *h, const char *what, const char *entity, size_t elen,
                      const struct rmr_tag *tags, uint32_t n)
{
    char t[2048];
    size_t o = strlen(h->log);
    show_tags(tags, n, t, sizeof t);
    snprintf(h->log + o, sizeof h->log - o, "%s %.*s [%s]\n", what, (int)elen, entity ? entity : "",
             t);
}

static int th_global(rmr_instance_t *ins, const struct rmr_tag *tags, uint32_t n)
{
    th_append((struct tag_host *)(void *)ins, "global", NULL, 0, tags, n);
    return 0;
}

static int th_set(rmr_instance_t *ins, const char *entity, size_t len, const struct rmr_tag *tags,
                  uint32_t n)
{
    struct tag_host *h = (struct tag_host *)(void *)ins;
    th_append(h, "set", entity, len, tags, n);
    return h->fail ? RMR_ENOMEM : 0;
}

static int th_lookup(rmr_instance_t *ins, const char *entity, size_t len, rmr_tagger_cb cb,
                     void *arg)
{
    return RMR_ENOENT;
}

static void test_publish_table(void)
{
    struct rmr_host_api api;
    struct tag_host h;
    struct ecs_task t, prev;
    memset(&api, 0, sizeof api);
    api.struct_size = sizeof api;
    api.abi_major = RMR_ABI_MAJOR;
    api.abi_minor = RMR_ABI_MINOR;
    api.global_tags_set = th_global;
    api.tagger_set = th_set;
    api.tagger_lookup = th_lookup;
    memset(&h, 0, sizeof h);
    h.host = &api;
    rmr_instance_t *ins = (rmr_instance_t *)(void *)&h;

    load_task("edge_task_pause.json", &t);
    load_task("edge_task_pause.json", &prev);
    /* prev had a container "gone" that t no longer has. */
    free(prev.containers[2].docker_id);
    prev.containers[2].docker_id = strdup("gone");
    IS_INT(ecs_publish_tags(ins, &t, &prev), 0, "publish: ok");
    static const char task_tags[] =
        "ecs_cluster_name:prod,task_arn:arn:aws:ecs:eu-central-1:123456789012:task/prod/"
        "0123456789abcdef0123456789abcdef,task_family:web,task_name:web,task_version:12,"
        "region:eu-central-1";
    char want[4096];
    snprintf(want, sizeof want,
             "global  [%s]\n"
             "set n1 [%s,container_name:app,ecs_container_name:app,container_id:n1,"
             "docker_image:nginx,image_name:nginx,short_image:nginx,image_tag:latest]\n"
             "set n2 [%s,container_name:sidecar,ecs_container_name:sidecar,container_id:n2,"
             "docker_image:localhost:5000/team/sidecar:2.1@sha256:0123,image_name:localhost:5000/"
             "team/sidecar,short_image:sidecar,image_tag:2.1]\n"
             "set gone []\n",
             task_tags, task_tags, task_tags);
    IS_STR(h.log, want,
           "publish: task tags globally, normal containers with task + container tags, the gone "
           "one forgotten, pause containers never");

    h.log[0] = '\0';
    h.fail = 1;
    IS_INT(ecs_publish_tags(ins, &t, NULL), RMR_ENOMEM, "publish: the first host error");
    OK(strstr(h.log, "set n2") != NULL, "publish: continues after an error");
    IS_INT(ecs_publish_tags(NULL, &t, NULL), RMR_EINVAL, "publish: NULL instance");
    IS_INT(ecs_publish_tags(ins, NULL, NULL), RMR_EINVAL, "publish: NULL task");

    /* A host of ABI 1.1 has a shorter table: nothing is called. */
    h.log[0] = '\0';
    api.struct_size = (uint32_t)offsetof(struct rmr_host_api, global_tags_set);
    IS_INT(ecs_publish_tags(ins, &t, NULL), 0, "publish: old host skipped silently");
    IS_STR(h.log, "", "publish: old host never called");
    ecs_task_free(&t);
    ecs_task_free(&prev);
}

struct lookup_out {
    char s[2048];
};

static void lookup_cb(void *arg, const struct rmr_tag *tags, uint32_t n)
{
    struct lookup_out *o = arg;
    show_tags(tags, n, o->s, sizeof o->s);
}

/* ---- the client ------------------------------------------------------------------------------ */

static int ti_create(rmr_instance_t *ins, const void *config, void **state)
{
    *state = NULL;
    return 0;
}
static int ti_start(rmr_instance_t *ins, void *state)
{
    return 0;
}
static int ti_stop(rmr_instance_t *ins, void *state)
{
    return 0;
}
static void ti_destroy(rmr_instance_t *ins, void *state)
{
}

/* A test-only input: just an instance for the client's fetches. */
static const struct rmr_plugin ti_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "ecsmeta_test",
    .version = "1.0.0",
    .description = "test input for the ECS metadata client",
    .create = ti_create,
    .start = ti_start,
    .stop = ti_stop,
    .destroy = ti_destroy,
};

static rmr_instance_t *ti_make(struct rmr_fakehost *fh)
{
    char err[256];
    rmr_instance_t *ins = NULL;
    int rc = rmr_fakehost_create(fh, &ti_plugin, "", &ins, err, sizeof err);
    if (rc != 0)
        printf("# create failed: %s (%s)\n", rmr_strerror(rc), err);
    else if ((rc = rmr_fakehost_start(fh, ins)) != 0)
        printf("# start failed: %s\n", rmr_strerror(rc));
    return ins;
}

#define BASE      "http://169.254.170.2/v4/67cd8a22b533459696d4ccab5278e009-2860414825"
#define TASK_URL  BASE "/task"
#define STATS_URL BASE "/task/stats"

struct got {
    int calls;
    int error;
    int http_status;
    char reason[256];
    uint32_t ncontainers, nstats, bad;
    uint32_t failed;
    struct ecs_poll_get task_get, stats_get;
    struct ecs_task task;       /* taken over from the poll */
    struct ecs_client *free_me; /* freed from inside the callback when calls reaches free_at */
    int free_at;
    struct ecs_client *poll_again; /* polled again once from inside the callback */
    int again_rc;
};

static void got_cb(void *arg, struct ecs_poll *poll)
{
    struct got *g = arg;
    g->calls++;
    g->error = poll->error;
    g->http_status = poll->http_status;
    snprintf(g->reason, sizeof g->reason, "%s", poll->reason);
    g->ncontainers = poll->task.ncontainers;
    g->nstats = poll->stats.n;
    g->bad = poll->bad_entries;
    g->failed = poll->failed;
    g->task_get = poll->task_get;
    g->stats_get = poll->stats_get;
    ecs_task_free(&g->task);
    g->task = poll->task; /* ownership taken by zeroing */
    memset(&poll->task, 0, sizeof poll->task);
    if (g->free_me != NULL && g->calls == g->free_at) {
        ecs_client_free(g->free_me);
        g->free_me = NULL;
    } else if (g->poll_again != NULL) {
        g->again_rc = ecs_client_poll(g->poll_again, got_cb, g);
        g->poll_again = NULL;
    }
}

static void serve_fixtures(struct rmr_fakehost *fh)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/dd_fargate_v4_task.json", fixtures);
    rmr_fakehost_fetch_serve_file(fh, "GET", TASK_URL, 200, path);
    snprintf(path, sizeof path, "%s/dd_fargate_v4_task_stats_cgroupv1.json", fixtures);
    rmr_fakehost_fetch_serve_file(fh, "GET", STATS_URL, 200, path);
}

static void test_client_ok(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = ti_make(fh);
    struct got g;
    memset(&g, 0, sizeof g);
    serve_fixtures(fh);

    OK(ecs_client_new(NULL, BASE, 0) == NULL, "client: NULL instance refused");
    OK(ecs_client_new(ins, NULL, 0) == NULL, "client: NULL base refused");
    OK(ecs_client_new(ins, "ftp://x", 0) == NULL, "client: not http refused");
    OK(ecs_client_new(ins, "http://", 0) == NULL, "client: no host refused");
    OK(ecs_client_new(ins, "https:///", 0) == NULL, "client: only slashes refused");
    struct ecs_client *c = ecs_client_new(ins, BASE "//", 2500);
    OK(c != NULL, "client: created (trailing slashes ignored)");
    IS_INT(ecs_client_poll(c, NULL, &g), RMR_EINVAL, "client: poll without cb");
    IS_INT(ecs_client_poll(c, got_cb, &g), 0, "client: poll started");
    IS_INT(ecs_client_poll(c, got_cb, &g), RMR_EAGAIN, "client: second poll while running");
    IS_UINT(rmr_fakehost_fetch_count(fh), 2, "client: both GETs at once");
    const struct rmr_fakehost_fetch *f0 = rmr_fakehost_fetch(fh, 0);
    const struct rmr_fakehost_fetch *f1 = rmr_fakehost_fetch(fh, 1);
    IS_STR(f0 ? f0->url : NULL, TASK_URL, "client: GET base/task");
    IS_STR(f1 ? f1->url : NULL, STATS_URL, "client: GET base/task/stats");
    IS_STR(f0 ? f0->method : NULL, "GET", "client: method GET");
    IS_UINT(f0 ? f0->timeout_ms : 0, 2500, "client: timeout passed on");
    IS_INT(g.calls, 0, "client: cb not inside poll");
    rmr_fakehost_advance(fh, 0);
    IS_INT(g.calls, 1, "client: cb once when both are done");
    IS_INT(g.error, 0, "client: no error");
    IS_UINT(g.failed, 0, "client: nothing failed");
    IS_INT(g.task_get.error + g.stats_get.error, 0, "client: both GETs fine");
    IS_INT(g.task_get.http_status, 200, "client: /task answered 200");
    IS_INT(g.stats_get.http_status, 200, "client: /task/stats answered 200");
    IS_STR(g.reason, "", "client: no reason");
    IS_UINT(g.ncontainers, 2, "client: task parsed");
    IS_UINT(g.nstats, 2, "client: stats parsed");
    IS_STR(g.task.family, "akira-fargate-check", "client: task taken over by the cb");

    /* The callback may poll again right away (the fake host answers that poll at the same
     * moment), and may free the client. */
    g.poll_again = c;
    g.free_me = c;
    g.free_at = 3;
    g.again_rc = -1;
    rmr_fakehost_clear_fetches(fh);
    IS_INT(ecs_client_poll(c, got_cb, &g), 0, "client: poll after a finished one");
    rmr_fakehost_advance(fh, 0);
    IS_INT(g.again_rc, 0, "client: poll from inside the cb");
    IS_INT(g.calls, 3, "client: the cb's poll delivered, and the cb freed the client");
    IS_UINT(rmr_fakehost_fetch_pending(fh), 0, "client: nothing left in flight");

    ecs_task_free(&g.task);
    rmr_fakehost_free(fh);
}

static void test_client_errors(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = ti_make(fh);
    struct ecs_client *c = ecs_client_new(ins, BASE, 2000);
    struct got g;
    memset(&g, 0, sizeof g);
    serve_fixtures(fh);

    rmr_fakehost_fetch_serve(fh, "GET", STATS_URL, 500, "oops", 4);
    ecs_client_poll(c, got_cb, &g);
    rmr_fakehost_advance(fh, 0);
    IS_INT(g.calls, 1, "client 500: cb once");
    IS_INT(g.error, RMR_EIO, "client 500: RMR_EIO");
    IS_INT(g.http_status, 500, "client 500: status");
    IS_STR(g.reason, "GET /task/stats: HTTP 500", "client 500: reason");
    IS_UINT(g.failed, ECS_POLL_STATS, "client 500: failed says /task/stats alone");
    IS_INT(g.stats_get.error, RMR_EIO, "client 500: the stats GET's error");
    IS_INT(g.stats_get.http_status, 500, "client 500: the stats GET's status");
    IS_INT(g.task_get.error, 0, "client 500: /task went well");
    IS_UINT(g.ncontainers, 2, "client 500: the good task is still handed out");
    IS_UINT(g.nstats, 0, "client 500: no stats");

    rmr_fakehost_fetch_serve(fh, "GET", STATS_URL, 200, "[]", 2);
    ecs_client_poll(c, got_cb, &g);
    rmr_fakehost_advance(fh, 0);
    IS_INT(g.error, RMR_EINVAL, "client bad stats: RMR_EINVAL");
    IS_INT(g.http_status, 200, "client bad stats: status 200");
    IS_STR(g.reason, "GET /task/stats: not a JSON object", "client bad stats: reason");
    IS_UINT(g.failed, ECS_POLL_STATS, "client bad stats: failed says /task/stats");
    IS_INT(g.stats_get.http_status, 200, "client bad stats: it answered 200");

    /* A task object without Containers is a task (missing says so), not a failure. */
    serve_fixtures(fh);
    rmr_fakehost_fetch_serve(fh, "GET", TASK_URL, 200, "{\"TaskARN\":\"x\"}", 15);
    ecs_client_poll(c, got_cb, &g);
    rmr_fakehost_advance(fh, 0);
    IS_INT(g.error, 0, "client task without Containers: no error");
    IS_UINT(g.failed, 0, "client task without Containers: nothing failed");
    IS_UINT(g.task.missing, ECS_TASK_MISSING_CLUSTER | ECS_TASK_MISSING_CONTAINERS,
            "client task without Containers: handed out, saying what it lacks");
    IS_UINT(g.nstats, 2, "client task without Containers: stats too");

    rmr_fakehost_fetch_serve(fh, "GET", TASK_URL, 200, "[1]", 3);
    ecs_client_poll(c, got_cb, &g);
    rmr_fakehost_advance(fh, 0);
    IS_INT(g.error, RMR_EINVAL, "client bad task: RMR_EINVAL");
    IS_STR(g.reason, "GET /task: not a JSON object", "client bad task: reason");
    IS_UINT(g.failed, ECS_POLL_TASK, "client bad task: failed says /task");
    IS_INT(g.task_get.http_status, 200, "client bad task: it answered 200");
    IS_UINT(g.ncontainers, 0, "client bad task: no task");
    IS_UINT(g.nstats, 2, "client bad task: the good stats are still handed out");

    /* The stats fail first (500 at once), /task later (its timeout): /task's failure is the
     * poll's error whatever the order, and both are told. */
    rmr_fakehost_fetch_serve(fh, "GET", STATS_URL, 500, "oops", 4);
    rmr_fakehost_fetch_serve_error(fh, "GET", TASK_URL, RMR_ETIMEDOUT);
    int before = g.calls;
    ecs_client_poll(c, got_cb, &g);
    rmr_fakehost_advance(fh, 0);
    IS_INT(g.calls, before, "client both: the stats answered, the poll waits for /task");
    rmr_fakehost_advance(fh, 2000);
    IS_INT(g.calls, before + 1, "client both: cb once");
    IS_UINT(g.failed, ECS_POLL_TASK | ECS_POLL_STATS, "client both: both failed");
    IS_INT(g.error, RMR_ETIMEDOUT, "client both: /task's error, though the stats failed first");
    IS_INT(g.http_status, 0, "client both: /task's status (none)");
    IS_INT(g.task_get.error, RMR_ETIMEDOUT, "client both: task GET timed out");
    IS_INT(g.stats_get.error, RMR_EIO, "client both: stats GET got a 500");
    IS_INT(g.stats_get.http_status, 500, "client both: stats status");
    IS_STR(g.reason, "GET /task: timed out; GET /task/stats: HTTP 500",
           "client both: the reason tells both, /task first");
    serve_fixtures(fh);

    rmr_fakehost_fetch_serve_error(fh, "GET", TASK_URL, RMR_ECONNREFUSED);
    ecs_client_poll(c, got_cb, &g);
    rmr_fakehost_advance(fh, 0);
    IS_INT(g.error, RMR_ECONNREFUSED, "client refused: the network error");
    IS_INT(g.http_status, 0, "client refused: no status");
    IS_STR(g.reason, "GET /task: connection refused", "client refused: reason");

    rmr_fakehost_fetch_serve_error(fh, "GET", TASK_URL, RMR_ETIMEDOUT);
    int calls = g.calls;
    ecs_client_poll(c, got_cb, &g);
    rmr_fakehost_advance(fh, 0);
    IS_INT(g.calls, calls, "client timeout: nothing before the deadline (stats answered)");
    rmr_fakehost_advance(fh, 2000);
    IS_INT(g.calls, calls + 1, "client timeout: cb at the deadline");
    IS_INT(g.error, RMR_ETIMEDOUT, "client timeout: RMR_ETIMEDOUT");
    IS_STR(g.reason, "GET /task: timed out", "client timeout: reason");
    IS_UINT(g.failed, ECS_POLL_TASK, "client timeout: only /task failed");
    IS_UINT(g.nstats, 2, "client timeout: the stats that answered are handed out");

    ecs_client_free(c);
    ecs_task_free(&g.task);
    rmr_fakehost_free(fh);
}

static int hold_fn(void *arg, const struct rmr_fakehost_fetch *fetch, struct rmr_response *resp)
{
    return RMR_EINPROGRESS; /* never answers: fetches stay in flight */
}

static void test_client_free_in_flight(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = ti_make(fh);
    struct got g;
    memset(&g, 0, sizeof g);
    serve_fixtures(fh);

    /* Freed with both GETs in flight: the answers come later and the cb never runs. */
    struct ecs_client *c = ecs_client_new(ins, BASE, 0);
    IS_INT(ecs_client_poll(c, got_cb, &g), 0, "free in flight: poll started");
    ecs_client_free(c);
    rmr_fakehost_advance(fh, 0);
    IS_UINT(rmr_fakehost_fetch_pending(fh), 0, "free in flight: both answered");
    IS_INT(g.calls, 0, "free in flight: cb never ran (the sanitizer checks the free)");

    /* Freed while the host holds the GETs: they end with RMR_ECANCELED when the instance
     * stops, and the poll is freed then. */
    rmr_fakehost_set_fetch_responder(fh, hold_fn, NULL);
    c = ecs_client_new(ins, BASE, 0);
    ecs_client_poll(c, got_cb, &g);
    rmr_fakehost_advance(fh, 0);
    IS_UINT(rmr_fakehost_fetch_pending(fh), 2, "held: two in flight");
    ecs_client_free(c);

    /* Not freed: the instance stopping cancels the GETs and the cb says so. */
    struct got g2;
    memset(&g2, 0, sizeof g2);
    struct ecs_client *c2 = ecs_client_new(ins, BASE, 0);
    ecs_client_poll(c2, got_cb, &g2);
    IS_INT(rmr_fakehost_stop(fh, ins), 0, "held: instance stopped");
    IS_UINT(rmr_fakehost_fetch_pending(fh), 0, "held: all cancelled");
    IS_INT(g.calls, 0, "held: the freed client's cb never ran");
    IS_INT(g2.calls, 1, "held: the live client's cb ran once");
    IS_INT(g2.error, RMR_ECANCELED, "held: with RMR_ECANCELED");
    IS_STR(g2.reason, "GET /task: cancelled; GET /task/stats: cancelled", "held: reason");
    IS_UINT(g2.failed, ECS_POLL_TASK | ECS_POLL_STATS, "held: both cancelled");

    /* After the stop the host refuses fetches: poll fails, cb never runs. */
    IS_INT(ecs_client_poll(c2, got_cb, &g2), RMR_ESTOPPED, "stopped: poll refused");
    IS_INT(g2.calls, 1, "stopped: no cb");
    IS_INT(ecs_client_poll(c2, got_cb, &g2), RMR_ESTOPPED, "stopped: not stuck in EAGAIN");
    ecs_client_free(c2);
    ecs_client_free(NULL);
    rmr_fakehost_free(fh);
}

static void test_publish_fakehost(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = ti_make(fh);
    struct ecs_task t;
    struct lookup_out o;
    load_task("aws_doc_ec2_v4_task.json", &t);
    IS_INT(ecs_publish_tags(ins, &t, NULL), 0, "fakehost publish: ok");
    IS_UINT(rmr_fakehost_tagger_count(fh), 1, "fakehost publish: one normal container");
    memset(&o, 0, sizeof o);
    IS_INT(rmr_tagger_lookup(ins, EC2_CURL_ID, strlen(EC2_CURL_ID), lookup_cb, &o), 0,
           "fakehost publish: curl known");
    CONTAINS(o.s, "container_name:curl", "fakehost publish: container tag");
    CONTAINS(o.s, "task_family:curltest", "fakehost publish: task tag");
    CONTAINS(o.s, "image_tag:latest", "fakehost publish: image tag");
    IS_INT(rmr_tagger_lookup(ins, EC2_PAUSE_ID, strlen(EC2_PAUSE_ID), lookup_cb, &o), RMR_ENOENT,
           "fakehost publish: pause container not tagged");
    const struct rmr_tag *gt;
    uint32_t ng;
    rmr_fakehost_global_tags(fh, &gt, &ng);
    IS_UINT(ng, 7, "fakehost publish: seven task-wide tags");
    struct ecs_task empty;
    memset(&empty, 0, sizeof empty);
    empty.cluster_name = empty.task_arn = empty.family = empty.revision = "";
    IS_INT(ecs_publish_tags(ins, &empty, &t), 0, "fakehost publish: a task without containers");
    IS_UINT(rmr_fakehost_tagger_count(fh), 0, "fakehost publish: the gone container forgotten");
    rmr_fakehost_global_tags(fh, &gt, &ng);
    IS_UINT(ng, 0, "fakehost publish: task tags withdrawn");
    ecs_task_free(&t);
    rmr_fakehost_free(fh);
}

/* ---- bad input ------------------------------------------------------------------------------- */

static int printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

static void test_bad_input(void)
{
    static const char *const bad_both[] = {
        "",
        " ",
        "{",
        "}",
        "[]",
        "[{}]",
        "null",
        "1",
        "\"x\"",
        "true",
        "{\"a\":}",
        "{\"a\":1,}",
        "{'a':1}",
        "{\"a\":01}",
        "{\"a\":1e400}",
        "{\"a\":-1e400}",
        "{\"a\":1}{",
        "{\"a\":\"\\u0000\"}",
        "{\"a\":\"\xff\xfe\"}",
        "{\"a\":NaN}",
        "{\"a\":1} x",
        "\xef\xbb\xbf{}",
        "{\"a\":\"x\ny\"}",
        "{\"a\":\"\xc3\xa9\x01\"}",
        "{\"a\":tru\x80"
        "e}",
    };
    char name[160], err[256];
    for (size_t i = 0; i < sizeof bad_both / sizeof bad_both[0]; i++) {
        size_t n = strlen(bad_both[i]);
        char *buf = malloc(n + 1);
        memcpy(buf, bad_both[i], n);
        struct ecs_task t;
        struct ecs_stats_set s;
        uint32_t nbad = 7;
        err[0] = '\0';
        snprintf(name, sizeof name, "bad input %zu: task RMR_EINVAL", i);
        IS_INT(ecs_task_parse(buf, n, &t, err, sizeof err), RMR_EINVAL, name);
        snprintf(name, sizeof name, "bad input %zu: task reason given, printable", i);
        OK(err[0] != '\0' && printable(err), name);
        if (!printable(err))
            printf("#   reason: %s\n", err);
        OK(t.ncontainers == 0 && t.containers == NULL && t.task_arn == NULL,
           "bad input: task empty");
        err[0] = '\0';
        snprintf(name, sizeof name, "bad input %zu: stats RMR_EINVAL", i);
        IS_INT(ecs_stats_parse(buf, n, &s, &nbad, err, sizeof err), RMR_EINVAL, name);
        snprintf(name, sizeof name, "bad input %zu: stats reason given", i);
        OK(err[0] != '\0', name);
        OK(s.n == 0 && s.v == NULL && nbad == 0, "bad input: stats empty");
        free(buf);
    }
    /* Objects without the anchors are not bad input any more: test_task_missing(). */
    struct ecs_task t;
    struct ecs_stats_set s;
    ecs_task_parse("[]", 2, &t, err, sizeof err);
    IS_STR(err, "not a JSON object", "bad input: array reason");
    ecs_stats_parse("{\"a\":", 5, &s, NULL, err, sizeof err);
    CONTAINS(err, "not JSON: ", "bad input: truncated reason");
    IS_INT(ecs_stats_parse(NULL, 0, &s, NULL, NULL, 0), RMR_EINVAL, "bad input: NULL body, no err");
    IS_INT(ecs_stats_parse(NULL, 5, &s, NULL, err, 1), RMR_EINVAL, "bad input: NULL with length");
    IS_STR(err, "", "bad input: a one-byte err buffer holds the NUL");
    IS_INT(ecs_stats_parse("{}", 2, &s, NULL, err, sizeof err), 0, "stats: {} is fine");
    IS_UINT(s.n, 0, "stats: {} has no entries");
    ecs_stats_set_free(&s);

    /* Every truncation of real fixtures: refused or parsed, never a crash or a leak. */
    const char *files[] = {"dd_fargate_v4_task.json", "dd_agent_v4_task_stats_cgroupv2.json"};
    for (size_t f = 0; f < 2; f++) {
        size_t len;
        char *doc = slurp(files[f], &len);
        int refused = 0, parsed = 0;
        size_t whole = len; /* without trailing whitespace, which a complete document may lack */
        while (whole > 0 && (doc[whole - 1] == '\n' || doc[whole - 1] == ' '))
            whole--;
        for (size_t cut = 0; doc != NULL && cut < whole; cut++) {
            char *part = malloc(cut + 1);
            memcpy(part, doc, cut);
            struct ecs_task tt;
            struct ecs_stats_set ss;
            int a = ecs_task_parse(part, cut, &tt, err, sizeof err);
            int b = ecs_stats_parse(part, cut, &ss, NULL, err, sizeof err);
            refused += a == RMR_EINVAL && b == RMR_EINVAL;
            parsed += a == 0 || b == 0;
            ecs_task_free(&tt);
            ecs_stats_set_free(&ss);
            free(part);
        }
        snprintf(name, sizeof name, "truncated %s: every prefix refused", files[f]);
        IS_INT(refused, (int)whole, name);
        snprintf(name, sizeof name, "truncated %s: none parses", files[f]);
        IS_INT(parsed, 0, name);
        free(doc);
    }
}

static void test_big_integers(void)
{
    struct ecs_stats_set s;
    char err[256];
    /* Integers beyond int64 inside strings are left alone; reals are not rewritten. */
    static const char doc[] =
        "{\"k\\\"18446744073709551615\":{\"memory_stats\":{\"usage\":1999.12345678901234567890123,"
        "\"limit\":18446744073709551616,\"failcnt\":-9223372036854775809,"
        "\"max_usage\":9223372036854775807,\"stats\":{\"cache\":9223372036854775808,"
        "\"rss\":0,\"anon\":12345678901234567890123456789}}},"
        "\"x\":{\"num_procs\":18446744073709551615,\"networks\":{\"eth0\":{\"rx_bytes\":"
        "18446744073709551615,\"tx_bytes\":9223372036854775807}}}}";
    IS_INT(ecs_stats_parse(doc, sizeof doc - 1, &s, NULL, err, sizeof err), 0, "big ints: parse");
    const struct ecs_stats *e = must_find(&s, "k\"18446744073709551615");
    IS_UINT(e->mem_usage, 1999, "big ints: long real kept a real (truncated)");
    IS_UINT(e->mem_limit, 0, "big ints: 2^64 limit unset");
    IS_UINT(e->has_failcnt, 0, "big ints: huge negative absent");
    IS_UINT(e->has_max_usage, 0, "big ints: INT64_MAX is the no-value mark");
    IS_UINT(e->mem_has & (1u << ECS_MEM_CACHE), 0, "big ints: 2^63 cache absent");
    IS_UINT(e->mem_has & (1u << ECS_MEM_RSS), 1u << ECS_MEM_RSS, "big ints: rss 0 present");
    IS_UINT(e->mem_has & (1u << ECS_MEM_ANON), 0, "big ints: 29 digits absent");
    e = must_find(&s, "x");
    IS_UINT(e->num_procs, UINT64_MAX, "big ints: a plain counter clamps to UINT64_MAX");
    IS_UINT(e->nifaces ? e->ifaces[0].rx_bytes : 0, UINT64_MAX, "big ints: rx_bytes 2^64-1");
    IS_UINT(e->nifaces ? e->ifaces[0].tx_bytes : 0, INT64_MAX, "big ints: tx_bytes exact");
    ecs_stats_set_free(&s);
    /* Digits in strings stay as they are, escaped quotes included. */
    static const char task[] =
        "{\"TaskARN\":\"a/99999999999999999999\",\"Revision\":\"18446744073709551616\","
        "\"Family\":\"\\\"99999999999999999999\\\"\",\"Containers\":[{\"DockerId\":\"d\","
        "\"Labels\":{\"n\":\"-99999999999999999999 1e99999 1.99999999999999999999\"},"
        "\"Limits\":{\"CPU\":0.00000000000000000000000000000000000001}}]}";
    struct ecs_task t;
    IS_INT(ecs_task_parse(task, sizeof task - 1, &t, err, sizeof err), 0, "big ints: task parses");
    IS_STR(t.task_id, "99999999999999999999", "big ints: digits in a string kept");
    IS_STR(t.revision, "18446744073709551616", "big ints: a string Revision kept");
    IS_STR(t.family, "\"99999999999999999999\"", "big ints: escaped quotes around digits");
    IS_STR(t.ncontainers ? ecs_container_label(&t.containers[0], "n") : NULL,
           "-99999999999999999999 1e99999 1.99999999999999999999", "big ints: label kept");
    IS_DBL(t.ncontainers ? t.containers[0].cpu_units : 1, 1e-38, 1e-50,
           "big ints: a real with many zeros is a real");
    ecs_task_free(&t);
    static const char reals[] = "{\"x\":{\"num_procs\":3.00000000000000000000001,"
                                "\"networks\":{\"e\":{\"rx_bytes\":5e0,\"tx_bytes\":"
                                "1.5E+3,\"rx_packets\":-0}}}}";
    IS_INT(ecs_stats_parse(reals, sizeof reals - 1, &s, NULL, err, sizeof err), 0,
           "big ints: long reals parse");
    e = must_find(&s, "x");
    IS_UINT(e->num_procs, 3, "big ints: 3.000...1 is 3");
    IS_UINT(e->nifaces ? e->ifaces[0].rx_bytes : 0, 5, "big ints: 5e0");
    IS_UINT(e->nifaces ? e->ifaces[0].tx_bytes : 0, 1500, "big ints: 1.5E+3");
    ecs_stats_set_free(&s);
    static const char exact[] = "{\"x\":{\"num_procs\":9007199254740993}}";
    ecs_stats_parse(exact, sizeof exact - 1, &s, NULL, err, sizeof err);
    IS_UINT(must_find(&s, "x")->num_procs, UINT64_C(9007199254740993),
            "big ints: 2^53+1 exact (no JSON_DECODE_INT_AS_REAL)");
    ecs_stats_set_free(&s);
}

static void test_bounds(void)
{
    /* More entries than ECS_MAX_CONTAINERS: the rest counted as bad, not kept. */
    size_t cap = 64 * (ECS_MAX_CONTAINERS + 10) + 16, o = 0;
    char *doc = malloc(cap);
    char err[256];
    o += (size_t)snprintf(doc + o, cap - o, "{");
    for (int i = 0; i < ECS_MAX_CONTAINERS + 10; i++)
        o += (size_t)snprintf(doc + o, cap - o, "%s\"c%d\":null", i ? "," : "", i);
    o += (size_t)snprintf(doc + o, cap - o, "}");
    struct ecs_stats_set s;
    uint32_t nbad = 0;
    IS_INT(ecs_stats_parse(doc, o, &s, &nbad, err, sizeof err), 0, "bounds: many entries parse");
    IS_UINT(s.n, ECS_MAX_CONTAINERS, "bounds: entries capped");
    IS_UINT(nbad, 10, "bounds: the rest counted");
    ecs_stats_set_free(&s);
    free(doc);
}

static void test_env(void)
{
    unsetenv("ECS_CONTAINER_METADATA_URI_V4");
    unsetenv("ECS_CONTAINER_METADATA_URI");
    IS_STR(ecs_endpoint_from_env(), NULL, "env: none");
    setenv("ECS_CONTAINER_METADATA_URI", "http://169.254.170.2/v3/x", 1);
    IS_STR(ecs_endpoint_from_env(), "http://169.254.170.2/v3/x", "env: v3");
    setenv("ECS_CONTAINER_METADATA_URI_V4", "", 1);
    IS_STR(ecs_endpoint_from_env(), "http://169.254.170.2/v3/x", "env: empty v4 skipped");
    setenv("ECS_CONTAINER_METADATA_URI_V4", "http://169.254.170.2/v4/x", 1);
    IS_STR(ecs_endpoint_from_env(), "http://169.254.170.2/v4/x", "env: v4 first");
    unsetenv("ECS_CONTAINER_METADATA_URI_V4");
    unsetenv("ECS_CONTAINER_METADATA_URI");
    OK(ecs_endpoint_valid("http://169.254.170.2/v4/x") && ecs_endpoint_valid("https://h/x"),
       "endpoint: http:// and https:// are valid");
    OK(!ecs_endpoint_valid("169.254.170.2/v4") && !ecs_endpoint_valid("ftp://h") &&
           !ecs_endpoint_valid("") && !ecs_endpoint_valid(NULL),
       "endpoint: no scheme, another scheme, empty and NULL are not");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("Bail out! usage: test_lib_ecsmeta FIXTURES_DIR\n");
        return 1;
    }
    fixtures = argv[1];
    test_task_fargate();
    test_task_ec2();
    test_task_container_doc();
    test_task_edges();
    test_task_missing();
    test_stats_v1();
    test_stats_v2();
    test_stats_ec2();
    test_stats_edges();
    test_cpu_idle();
    test_rates();
    test_mem_limit();
    test_formula_guards();
    test_time();
    test_image_split();
    test_tags();
    test_publish_table();
    test_client_ok();
    test_client_errors();
    test_client_free_in_flight();
    test_publish_fakehost();
    test_bad_input();
    test_big_integers();
    test_bounds();
    test_env();
    return tap_done();
}
