/* The container input's ECS source: the task metadata endpoint (v4, v3) through ecsmeta.
 *
 * Each poll GETs <endpoint>/task and <endpoint>/task/stats (ecs_client_poll) and turns every
 * task-definition container that has stats into a sample, as Datakit's ecsfargate runtime
 * and container collector do (datakit:internal/container/runtime/ecsfargate.go,
 * internal/plugins/inputs/container/container_gather.go). Every formula is ecsmeta's; this
 * file only maps its structs onto struct ctr_sample. After each good poll the task's tags are
 * published for the whole sidecar (ecs_publish_tags), so DogStatsD metrics and traces carry
 * them even when `container` is the only ECS input running. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ecsmeta/ecsmeta.h"
#include "source.h"

#define ECS_RUNTIME "ecsfargate"

/* Image parts per container; ecsmeta truncates longer ones to these sizes. */
#define IMAGE_NAME_BYTES  512
#define IMAGE_SHORT_BYTES 256
#define IMAGE_TAG_BYTES   256

/* Task-wide tags, named as Datakit's buildECSFargateKVs names them. */
enum { PT_CLUSTER, PT_FAMILY, PT_VERSION, PT_ARN, PT_COUNT };

struct image_parts {
    char name[IMAGE_NAME_BYTES];
    char short_name[IMAGE_SHORT_BYTES];
    char tag[IMAGE_TAG_BYTES];
};

struct ecs_source {
    rmr_instance_t *ins;
    struct ecs_client *client;
    /* The task of the previous good poll, for ecs_publish_tags() to forget containers that
     * are gone. */
    struct ecs_task prev;
    int have_prev;
    ctr_poll_cb cb;
    void *arg;
};

/* The poll_errors reason for a failed poll: ecsmeta gives the parser's RMR_EINVAL for a body
 * it cannot read, RMR_EIO with the status for an answer other than 200, else the fetch's
 * error. */
static const char *error_kind(const struct ecs_poll *p)
{
    switch (p->error) {
    case RMR_EINVAL:
    case RMR_EPARSE: return "bad_json";
    case RMR_ETIMEDOUT: return "timeout";
    case RMR_E2BIG: return "too_large";
    case RMR_ENOMEM: return "no_memory";
    default: return p->http_status != 0 ? "http_error" : "network";
    }
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void fill_stat(struct ctr_stat *cs, const struct ecs_stats *s)
{
    memset(cs, 0, sizeof *cs);
    cs->time_ns = s->read_ns;
    if (s->has_cpu) {
        /* ecs_cpu_percent() gives 0 for an idle container; Datakit also sends 0 when the
         * percentage cannot be computed at all (no previous sample yet, online 0, a reset),
         * and ecs_cpu_percent() leaves pct at 0 then. */
        double pct = 0;
        (void)ecs_cpu_percent(s, &pct);
        if (!isfinite(pct) || pct < 0)
            pct = 0;
        cs->has |= CTR_HAS_CPU;
        cs->cpu_percent = pct;
        /* Datakit: cpu_delta / system_delta * online * 1000, truncated to an integer. */
        cs->cpu_millicores = pct * 10.0 < (double)INT64_MAX ? (int64_t)(pct * 10.0) : INT64_MAX;
        if (s->online_cpus > 0) {
            cs->has |= CTR_HAS_CPUS;
            cs->online_cpus = s->online_cpus;
            cs->cpu_base100 = pct / s->online_cpus;
        }
    }
    if (s->has_mem) {
        cs->has |= CTR_HAS_MEM;
        cs->mem_working_set = ecs_working_set(s);
    }
    /* This container's interfaces only ("lo" is already left out). On Fargate every container
     * reports the task ENI's counters, so these must never be summed across containers. */
    if (s->nifaces > 0) {
        cs->has |= CTR_HAS_NET;
        for (uint32_t i = 0; i < s->nifaces; i++) {
            cs->net_rx_bytes = add_sat(cs->net_rx_bytes, s->ifaces[i].rx_bytes);
            cs->net_tx_bytes = add_sat(cs->net_tx_bytes, s->ifaces[i].tx_bytes);
        }
    }
    if (s->has_io) {
        cs->has |= CTR_HAS_BLOCK;
        cs->block_read_bytes = s->io_read_bytes;
        cs->block_write_bytes = s->io_write_bytes;
    }
}

static void fill_info(struct ctr_info *ci, struct image_parts *img, const struct ecs_container *c,
                      const struct rmr_tag *ptags)
{
    ci->id = c->docker_id;
    /* Datakit: container_name is the k8s label, else the runtime's name, which on ECS is the
     * task-definition Name; container_runtime_name is that Name, or "unknown". */
    ci->name = c->name;
    ci->runtime_name = c->name != NULL && c->name[0] != '\0' ? c->name : "unknown";
    ci->runtime = ECS_RUNTIME;
    ci->runtime_version = NULL;
    ci->type = ECS_RUNTIME;
    ci->image = c->image;
    if (c->image != NULL && c->image[0] != '\0') {
        ecs_image_split(c->image, img->name, sizeof img->name, img->short_name,
                        sizeof img->short_name, img->tag, sizeof img->tag);
        ci->image_name = img->name;
        ci->image_short_name = img->short_name;
        ci->image_tag = img->tag;
    }
    /* Datakit's ecsfargate runtime reports DesiredStatus as the state. */
    ci->state = c->desired_status != NULL && c->desired_status[0] != '\0' ? c->desired_status
                                                                          : c->known_status;
    ci->created_ns = c->created_ns;
    ci->started_ns = c->started_ns;
    ci->platform_tags = ptags;
    ci->nplatform_tags = PT_COUNT;
}

static void deliver_error(struct ecs_source *src, int error, const char *kind, const char *reason)
{
    struct ctr_result res = {.error = error, .error_kind = kind, .reason = reason};
    src->cb(src->arg, &res);
}

static void on_poll(void *arg, struct ecs_poll *p)
{
    struct ecs_source *src = arg;
    /* Either document failing fails the poll: without stats there is nothing to render. */
    if (p->failed != 0) {
        deliver_error(src, p->error, error_kind(p), p->reason);
        return;
    }
    const struct ecs_task *t = &p->task;
    /* A task without Cluster, TaskARN or Containers is rendered as far as it goes (tags without
     * a value are left out); the input says once what it lacks. */
    char missing[64], incomplete[96];
    if (t->missing != 0) {
        ecs_task_missing_text(t->missing, missing, sizeof missing);
        snprintf(incomplete, sizeof incomplete, "the task metadata lacks %s", missing);
    }

    /* Task-wide tags from the task document: on Fargate they equal the labels Datakit reads
     * them from (com.amazonaws.ecs.*), and they are there for containers without labels. */
    struct rmr_tag ptags[PT_COUNT] = {
        [PT_CLUSTER] = {rmr_str_c("aws_ecs_cluster_name"), rmr_str_c(t->cluster_name)},
        [PT_FAMILY] = {rmr_str_c("task_family"), rmr_str_c(t->family)},
        [PT_VERSION] = {rmr_str_c("task_version"), rmr_str_c(t->revision)},
        [PT_ARN] = {rmr_str_c("task_arn"), rmr_str_c(t->task_arn)},
    };

    /* Per poll, not per record: a task holds at most a handful of containers. */
    struct ctr_sample *samples = NULL;
    struct image_parts *images = NULL;
    if (t->ncontainers > 0) {
        samples = calloc(t->ncontainers, sizeof *samples);
        images = calloc(t->ncontainers, sizeof *images);
        if (samples == NULL || images == NULL) {
            free(samples);
            free(images);
            deliver_error(src, RMR_ENOMEM, "no_memory", "cannot hold the task's containers");
            return;
        }
    }
    struct ctr_result res = {.bad_entries = p->bad_entries,
                             .incomplete = t->missing != 0 ? incomplete : NULL};
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->ncontainers; i++) {
        const struct ecs_container *c = &t->containers[i];
        /* The pause container and other ECS internals are not the user's containers. */
        if (!c->normal || c->docker_id == NULL)
            continue;
        const struct ecs_stats *s = ecs_stats_find(&p->stats, c->docker_id);
        if (s == NULL || !s->present) {
            res.skipped_no_stats++;
            continue;
        }
        fill_info(&samples[n].info, &images[n], c, ptags);
        fill_stat(&samples[n].stat, s);
        n++;
    }

    int rc = ecs_publish_tags(src->ins, t, src->have_prev ? &src->prev : NULL);
    if (rc < 0)
        rmr_log(src->ins, RMR_LOG_WARN, "cannot publish the tags of task '%s': %s",
                t->task_arn[0] != '\0' ? t->task_arn : "?", rmr_strerror(rc));

    res.samples = samples;
    res.nsamples = n;
    src->cb(src->arg, &res);
    free(images);
    free(samples);

    /* Keep this task for the next publish; the poll gives up ownership by being zeroed. */
    if (src->have_prev)
        ecs_task_free(&src->prev);
    src->prev = p->task;
    memset(&p->task, 0, sizeof p->task);
    src->have_prev = 1;
}

static int ecs_init(rmr_instance_t *ins, const struct ctr_source_cfg *cfg, void **out)
{
    if (cfg->endpoint == NULL ||
        (strncmp(cfg->endpoint, "http://", 7) != 0 && strncmp(cfg->endpoint, "https://", 8) != 0))
        return RMR_EINVAL;
    struct ecs_source *src = calloc(1, sizeof *src);
    if (src == NULL)
        return RMR_ENOMEM;
    src->ins = ins;
    if ((src->client = ecs_client_new(ins, cfg->endpoint, cfg->timeout_ms)) == NULL) {
        free(src);
        return RMR_ENOMEM;
    }
    *out = src;
    return 0;
}

static int ecs_poll_start(void *arg, ctr_poll_cb cb, void *cb_arg)
{
    struct ecs_source *src = arg;
    src->cb = cb;
    src->arg = cb_arg;
    return ecs_client_poll(src->client, on_poll, src);
}

static const char *ecs_detect(void)
{
    return ecs_endpoint_from_env();
}

static void ecs_free(void *arg)
{
    struct ecs_source *src = arg;
    if (src == NULL)
        return;
    ecs_client_free(src->client);
    if (src->have_prev)
        ecs_task_free(&src->prev);
    free(src);
}

const struct ctr_source_ops ctr_source_ecs = {
    .name = "ecs",
    .runtime = ECS_RUNTIME,
    .detect = ecs_detect,
    .init = ecs_init,
    .poll = ecs_poll_start,
    .free = ecs_free,
};
