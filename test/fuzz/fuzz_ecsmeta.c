/* Fuzzes the ECS task metadata parsers (plugins/lib/ecsmeta): whatever bytes come in,
 * ecs_task_parse() and ecs_stats_parse() return 0 or an error with a reason, and never crash
 * or leak. What parses goes through the formulas (the sanitizer watches every conversion), the
 * tag builders and the image splitter, as the plugins use them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/lib/ecsmeta/ecsmeta.h"

/* Every tag has a key and a value: empty values are left out. */
static void check_tags(const struct rmr_tag *tags, uint32_t n, uint32_t cap)
{
    if (n > cap)
        abort();
    for (uint32_t i = 0; i < n; i++)
        if (tags[i].key.len == 0 || tags[i].value.len == 0 || tags[i].value.ptr == NULL)
            abort();
}

static void use_task(const struct ecs_task *t)
{
    struct rmr_tag tags[ECS_TASK_TAGS_MAX];
    char buf[512], name[256], short_name[128], tag[128];
    ecs_task_missing_text(t->missing, buf, sizeof buf);
    if (memchr(buf, '\0', sizeof buf) == NULL)
        abort();
    check_tags(tags, ecs_task_tags(t, tags, ECS_TASK_TAGS_MAX), ECS_TASK_TAGS_MAX);
    for (uint32_t i = 0; i < t->ncontainers; i++) {
        const struct ecs_container *c = &t->containers[i];
        check_tags(tags, ecs_container_tags(c, tags, ECS_CONTAINER_TAGS_MAX, buf, sizeof buf),
                   ECS_CONTAINER_TAGS_MAX);
        ecs_image_split(c->image, name, sizeof name, short_name, sizeof short_name, tag,
                        sizeof tag);
        if (c->docker_id[0] != '\0' && ecs_task_container(t, c->docker_id) == NULL)
            abort(); /* every container is found by its own id */
        for (uint32_t l = 0; l < c->nlabels; l++)
            if (ecs_container_label(c, c->labels[l].key) == NULL)
                abort();
        (void)ecs_mem_limit(NULL, c, t);
    }
}

static void use_stats(const struct ecs_stats_set *set)
{
    double a, b;
    for (uint32_t i = 0; i < set->n; i++) {
        const struct ecs_stats *s = &set->v[i];
        const struct ecs_stats *p = i > 0 ? &set->v[i - 1] : s;
        (void)ecs_cpu_percent(s, &a);
        (void)ecs_cpu_fraction(s, &a, &b);
        (void)ecs_cpu_user_fraction(s, &a, &b);
        (void)ecs_cpu_kernel_fraction(s, &a, &b);
        if (ecs_working_set(s) > s->mem_usage)
            abort();
        (void)ecs_mem_limit(s, NULL, NULL);
        (void)ecs_rate(p->cpu_total, s->cpu_total, 1000000000, &a);
        (void)ecs_rate(p->io_read_bytes, s->io_read_bytes, INT64_MAX, &a);
        if (s->nifaces > ECS_MAX_IFACES)
            abort();
        for (uint32_t k = 0; k < s->nifaces; k++)
            if (memchr(s->ifaces[k].name, '\0', sizeof s->ifaces[k].name) == NULL)
                abort();
        if (ecs_stats_find(set, s->docker_id) == NULL)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct ecs_task t;
    struct ecs_stats_set s;
    uint32_t nbad = 0;
    int64_t ns;

    err[0] = '\0';
    if (ecs_task_parse((const char *)data, size, &t, err, sizeof err) == 0) {
        use_task(&t);
        ecs_task_free(&t);
    } else if (err[0] == '\0' || t.containers != NULL || t.task_arn != NULL) {
        abort(); /* a refusal says why and leaves nothing to free */
    }
    err[0] = '\0';
    if (ecs_stats_parse((const char *)data, size, &s, &nbad, err, sizeof err) == 0) {
        if (s.n > ECS_MAX_CONTAINERS)
            abort();
        use_stats(&s);
        ecs_stats_set_free(&s);
    } else if (err[0] == '\0' || s.v != NULL) {
        abort();
    }
    (void)ecs_time_parse((const char *)data, size, &ns);
    return 0;
}
