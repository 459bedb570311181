/* plugins/lib/ecsmeta: the formulas, image references, tags and the environment (see
 * ecsmeta.h; every formula's source is in README.md). */
#include "ecsmeta.h"

#include <stdlib.h>
#include <string.h>

/* ---- formulas ------------------------------------------------------------------------------- */

/* The window of one stats document, from precpu_stats (at preread) to cpu_stats (at read).
 * Returns 1 and sets *sys_delta (> 0) when the document can give CPU shares at all. Without a
 * preread, precpu_stats is the zero sample Docker sends first: the deltas would be the
 * container's whole life, not the last interval. */
static int cpu_window(const struct ecs_stats *s, double *sys_delta)
{
    if (s == NULL || !s->present || !s->has_cpu || s->online_cpus == 0 || s->preread_ns == 0 ||
        s->read_ns <= s->preread_ns || s->system_cpu <= s->pre_system_cpu)
        return 0;
    *sys_delta = (double)(s->system_cpu - s->pre_system_cpu);
    return 1;
}

/* How much a CPU counter grew over the window. Returns 1 and sets *delta (0 for an idle
 * container), or 0 when it went backwards (a reset: no share can be told). */
static int cpu_delta_of(uint64_t cur, uint64_t pre, double *delta)
{
    if (cur < pre)
        return 0;
    *delta = (double)(cur - pre);
    return 1;
}

/* Metricbeat's pair for one counter: delta / system_delta (norm) and that * online (pct). */
static int cpu_share(const struct ecs_stats *s, uint64_t cur, uint64_t pre, double *pct,
                     double *norm)
{
    double sys_delta, delta, n = 0, t = 0;
    int ok = cpu_window(s, &sys_delta) && cpu_delta_of(cur, pre, &delta);
    if (ok) {
        n = delta / sys_delta;
        t = n * (double)s->online_cpus;
    }
    if (pct != NULL)
        *pct = t;
    if (norm != NULL)
        *norm = n;
    return ok;
}

int ecs_cpu_percent(const struct ecs_stats *s, double *pct)
{
    double cpu_delta, sys_delta;
    if (pct == NULL)
        return 0;
    *pct = 0;
    if (!cpu_window(s, &sys_delta) || !cpu_delta_of(s->cpu_total, s->pre_cpu_total, &cpu_delta))
        return 0;
    if (sys_delta > cpu_delta) {
        /* An idle container lands here with cpu_delta 0: 0 %, as Datadog sends it. */
        *pct = cpu_delta / sys_delta * (double)s->online_cpus * 100.0;
        return 1;
    }
    /* Datadog's guard: system_cpu_usage sometimes grows less than the container's own usage,
     * so the interval's length stands in for it, in whole seconds as the check truncates it
     * (int(total_seconds())). The difference is taken unsigned: read > preread, so it fits. */
    uint64_t dt_ns = (uint64_t)s->read_ns - (uint64_t)s->preread_ns;
    uint64_t whole_s = dt_ns / 1000000000u;
    if (whole_s == 0)
        return 0;
    *pct = cpu_delta / ((double)whole_s * 1e9) * 100.0;
    return 1;
}

int ecs_cpu_fraction(const struct ecs_stats *s, double *total, double *norm)
{
    if (s == NULL)
        return cpu_share(NULL, 0, 0, total, norm);
    return cpu_share(s, s->cpu_total, s->pre_cpu_total, total, norm);
}

int ecs_cpu_user_fraction(const struct ecs_stats *s, double *pct, double *norm)
{
    if (s == NULL || !s->has_cpu_modes)
        return cpu_share(NULL, 0, 0, pct, norm);
    return cpu_share(s, s->cpu_user, s->pre_cpu_user, pct, norm);
}

int ecs_cpu_kernel_fraction(const struct ecs_stats *s, double *pct, double *norm)
{
    if (s == NULL || !s->has_cpu_modes)
        return cpu_share(NULL, 0, 0, pct, norm);
    return cpu_share(s, s->cpu_kernel, s->pre_cpu_kernel, pct, norm);
}

uint64_t ecs_working_set(const struct ecs_stats *s)
{
    if (s == NULL || !s->present || !s->has_mem)
        return 0;
    /* The Docker CLI's calculateMemUsageUnixNoCache: v1's total_inactive_file first, then
     * v2's inactive_file, each only when below usage. */
    if ((s->mem_has & (1u << ECS_MEM_TOTAL_INACTIVE_FILE)) &&
        s->mem[ECS_MEM_TOTAL_INACTIVE_FILE] < s->mem_usage)
        return s->mem_usage - s->mem[ECS_MEM_TOTAL_INACTIVE_FILE];
    if ((s->mem_has & (1u << ECS_MEM_INACTIVE_FILE)) &&
        s->mem[ECS_MEM_INACTIVE_FILE] < s->mem_usage)
        return s->mem_usage - s->mem[ECS_MEM_INACTIVE_FILE];
    return s->mem_usage;
}

static uint64_t mib_bytes(int64_t mib)
{
    if (mib <= 0)
        return 0;
    if ((uint64_t)mib > UINT64_MAX / 1048576u)
        return UINT64_MAX;
    return (uint64_t)mib * 1048576u;
}

uint64_t ecs_mem_limit(const struct ecs_stats *s, const struct ecs_container *c,
                       const struct ecs_task *t)
{
    if (s != NULL && s->present && s->mem_limit > 0)
        return s->mem_limit;
    if (c != NULL && c->mem_mib > 0)
        return mib_bytes(c->mem_mib);
    if (t != NULL && t->mem_mib > 0)
        return mib_bytes(t->mem_mib);
    return 0;
}

int ecs_rate(uint64_t prev, uint64_t cur, int64_t dt_ns, double *rate)
{
    if (rate == NULL)
        return 0;
    *rate = 0;
    if (dt_ns <= 0 || cur < prev)
        return 0;
    *rate = (double)(cur - prev) / ((double)dt_ns / 1e9);
    return 1;
}

/* ---- image references --------------------------------------------------------------------- */

/* The parts of "registry:5000/repo/name:tag@sha256:...", as spans of the reference. */
struct image_parts {
    size_t name_len;  /* image[0..name_len): without tag and digest */
    size_t short_off; /* image[short_off..name_len): the last path part */
    const char *tag;  /* into the reference, or "latest", or "" */
    size_t tag_len;
};

static void image_parts(const char *img, struct image_parts *p)
{
    size_t n = strlen(img);
    const char *at = memchr(img, '@', n);
    size_t ref = at != NULL ? (size_t)(at - img) : n;
    size_t slash = 0; /* just after the last '/', or 0 */
    for (size_t i = 0; i < ref; i++)
        if (img[i] == '/')
            slash = i + 1;
    /* A ':' after the last '/' starts the tag; one before it is a registry's port. */
    const char *colon = memchr(img + slash, ':', ref - slash);
    p->name_len = colon != NULL ? (size_t)(colon - img) : ref;
    p->short_off = slash;
    if (colon != NULL && (size_t)(colon - img) + 1 < ref) {
        p->tag = colon + 1;
        p->tag_len = ref - (size_t)(colon - img) - 1;
    } else if (at != NULL || n == 0) {
        p->tag = "";
        p->tag_len = 0;
    } else {
        p->tag = "latest";
        p->tag_len = 6;
    }
}

static void copy_out(char *buf, size_t cap, const char *s, size_t n)
{
    if (buf == NULL || cap == 0)
        return;
    if (n > cap - 1)
        n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
}

void ecs_image_split(const char *image, char *name, size_t name_len, char *short_name,
                     size_t short_len, char *tag, size_t tag_len)
{
    struct image_parts p;
    const char *img = image != NULL ? image : "";
    image_parts(img, &p);
    copy_out(name, name_len, img, p.name_len);
    copy_out(short_name, short_len, img + p.short_off, p.name_len - p.short_off);
    copy_out(tag, tag_len, p.tag, p.tag_len);
}

/* ---- tags ------------------------------------------------------------------------------------ */

static uint32_t tag_put(struct rmr_tag *out, uint32_t cap, uint32_t n, const char *key,
                        const char *value, size_t len)
{
    if (value == NULL || len == 0 || n >= cap)
        return n;
    out[n].key = rmr_str_c(key);
    out[n].value = rmr_str_n(value, len);
    return n + 1;
}

static uint32_t tag_put_c(struct rmr_tag *out, uint32_t cap, uint32_t n, const char *key,
                          const char *value)
{
    return tag_put(out, cap, n, key, value, value != NULL ? strlen(value) : 0);
}

uint32_t ecs_task_tags(const struct ecs_task *t, struct rmr_tag *out, uint32_t cap)
{
    uint32_t n = 0;
    if (t == NULL || out == NULL)
        return 0;
    n = tag_put_c(out, cap, n, "ecs_cluster_name", t->cluster_name);
    n = tag_put_c(out, cap, n, "task_arn", t->task_arn);
    n = tag_put_c(out, cap, n, "task_family", t->family);
    n = tag_put_c(out, cap, n, "task_name", t->family);
    n = tag_put_c(out, cap, n, "task_version", t->revision);
    n = tag_put_c(out, cap, n, "availability-zone", t->availability_zone);
    n = tag_put_c(out, cap, n, "region", t->region);
    return n;
}

uint32_t ecs_container_tags(const struct ecs_container *c, struct rmr_tag *out, uint32_t cap,
                            char *buf, size_t buflen)
{
    uint32_t n = 0;
    struct image_parts p;
    (void)buf; /* the image parts are spans of c->image, so they need no buffer */
    (void)buflen;
    if (c == NULL || out == NULL)
        return 0;
    n = tag_put_c(out, cap, n, "container_name", c->name);
    n = tag_put_c(out, cap, n, "ecs_container_name", c->name);
    n = tag_put_c(out, cap, n, "container_id", c->docker_id);
    n = tag_put_c(out, cap, n, "docker_image", c->image);
    if (c->image != NULL && c->image[0] != '\0') {
        image_parts(c->image, &p);
        n = tag_put(out, cap, n, "image_name", c->image, p.name_len);
        n = tag_put(out, cap, n, "short_image", c->image + p.short_off, p.name_len - p.short_off);
        n = tag_put(out, cap, n, "image_tag", p.tag, p.tag_len);
    }
    return n;
}

static int has_normal(const struct ecs_task *t, const char *docker_id)
{
    const struct ecs_container *c = ecs_task_container(t, docker_id);
    return c != NULL && c->normal;
}

int ecs_publish_tags(rmr_instance_t *ins, const struct ecs_task *t, const struct ecs_task *prev)
{
    struct rmr_tag tags[ECS_TASK_TAGS_MAX + ECS_CONTAINER_TAGS_MAX];
    int first = 0, rc;
    if (ins == NULL || t == NULL)
        return RMR_EINVAL;
    if (!RMR_HOST_HAS(ins, tagger_lookup))
        return 0; /* a host older than ABI 1.2 has no tagger */
    uint32_t nt = ecs_task_tags(t, tags, ECS_TASK_TAGS_MAX);
    first = rmr_global_tags_set(ins, tags, nt);
    for (uint32_t i = 0; i < t->ncontainers; i++) {
        const struct ecs_container *c = &t->containers[i];
        if (!c->normal || c->docker_id[0] == '\0')
            continue;
        uint32_t nc = ecs_container_tags(c, tags + nt, ECS_CONTAINER_TAGS_MAX, NULL, 0);
        rc = rmr_tagger_set(ins, c->docker_id, strlen(c->docker_id), tags, nt + nc);
        if (rc != 0 && first == 0)
            first = rc;
    }
    for (uint32_t i = 0; prev != NULL && i < prev->ncontainers; i++) {
        const struct ecs_container *c = &prev->containers[i];
        if (!c->normal || c->docker_id[0] == '\0' || has_normal(t, c->docker_id))
            continue;
        rc = rmr_tagger_set(ins, c->docker_id, strlen(c->docker_id), NULL, 0);
        if (rc != 0 && first == 0)
            first = rc;
    }
    return first;
}

/* ---- the environment ----------------------------------------------------------------------- */

int ecs_endpoint_valid(const char *url)
{
    return url != NULL && (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0);
}

const char *ecs_endpoint_from_env(void)
{
    static const char *const vars[] = {"ECS_CONTAINER_METADATA_URI_V4",
                                       "ECS_CONTAINER_METADATA_URI"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v != NULL && v[0] != '\0')
            return v;
    }
    return NULL;
}
