/* The container input: Datakit's `container` input for a sidecar. Every interval it asks a
 * source (source.h) for the containers next to it and their resource use, and emits Datakit's
 * docker_containers metric and object for each (emit.c), when an output takes the guance
 * schema. Datakit's ENV_ECS_FARGATE=on (or ENV_DEFAULT_ENABLED_INPUTS=...,container) turns
 * it on; in an ECS task it reads the task metadata endpoint.
 *
 * This file owns the lifecycle, the timer and the counting; sources own the platforms and
 * emit.c the names. The only source so far is ECS (source_ecs.c): the Docker Engine API on
 * EC2 and the kubelet on EKS are further entries of `sources` below. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/plugin.h>

#include "emit.h"
#include "source.h"

#define CTR_INTERVAL_MIN_MS 1000
#define CTR_INTERVAL_MAX_MS 86400000 /* a day */
#define CTR_TIMEOUT_MIN_MS  100
#define CTR_TIMEOUT_MAX_MS  300000 /* 5 minutes */

/* The `source` option: index 0 is auto, index i > 0 is sources[i - 1]. */
#define CTR_SOURCE_CHOICES "auto|ecs"
enum { CTR_SOURCE_AUTO = 0 };
static const struct ctr_source_ops *const sources[] = {&ctr_source_ecs};
#define NSOURCES (sizeof sources / sizeof sources[0])

struct ctr_cfg {
    int64_t interval_ms;
    const char *endpoint;
    int64_t timeout_ms;
    int32_t source;
};

struct ctr_state {
    rmr_instance_t *ins;
    const struct ctr_cfg *cfg;        /* borrowed from the host until destroy */
    const struct ctr_source_ops *ops; /* NULL while idle */
    void *src;
    char *endpoint; /* what the source polls, for log lines */
    rmr_timer_t *timer;
    int stopping;
    uint64_t failures; /* polls failed in a row */
    /* What the last poll's answer lacked (ctr_result.incomplete), "" when whole: a platform
     * that stays incomplete is logged once, not at every poll. */
    char incomplete[128];
};

static const struct rmr_option ctr_options[] = {
    RMR_OPT_FULL("interval", RMR_OPT_DURATION, 0, "10s", NULL, CTR_INTERVAL_MIN_MS,
                 CTR_INTERVAL_MAX_MS, struct ctr_cfg, interval_ms,
                 "how often containers are polled and docker_containers is emitted"),
    RMR_OPT_FULL("endpoint", RMR_OPT_STRING, 0, NULL,
                 "ECS_CONTAINER_METADATA_URI_V4,ECS_CONTAINER_METADATA_URI", 0, 0, struct ctr_cfg,
                 endpoint,
                 "the ECS task metadata endpoint (the v4 or v3 base URI); empty: from the "
                 "environment"),
    RMR_OPT_FULL("timeout", RMR_OPT_DURATION, 0, "5s", NULL, CTR_TIMEOUT_MIN_MS, CTR_TIMEOUT_MAX_MS,
                 struct ctr_cfg, timeout_ms, "how long one request to the endpoint may take"),
    RMR_OPT_CHOICE("source", "auto", 0, CTR_SOURCE_CHOICES, struct ctr_cfg, source,
                   "where containers come from: ecs (the task metadata endpoint), or auto (ecs "
                   "when an endpoint is set)"),
    RMR_OPT_END,
};

/* ---- polling -------------------------------------------------------------------------------- */

/* Counts an incomplete answer at every poll, and logs when what it lacks changes. */
static void note_incomplete(struct ctr_state *st, const char *incomplete)
{
    const char *now = incomplete != NULL ? incomplete : "";
    if (now[0] != '\0')
        rmr_counter_add(st->ins, "polls_incomplete", NULL, 1);
    if (strncmp(now, st->incomplete, sizeof st->incomplete - 1) == 0)
        return;
    if (now[0] != '\0')
        rmr_log(st->ins, RMR_LOG_WARN, "'%s' answered incompletely, reporting what it has: %s",
                st->endpoint, now);
    else
        rmr_log(st->ins, RMR_LOG_INFO, "'%s' answers completely again", st->endpoint);
    snprintf(st->incomplete, sizeof st->incomplete, "%s", now);
}

static void on_result(void *arg, const struct ctr_result *res)
{
    struct ctr_state *st = arg;
    rmr_instance_t *ins = st->ins;
    /* A poll cut short by stop() is not a failure of the endpoint. */
    if (st->stopping || res->error == RMR_ECANCELED)
        return;
    if (res->error != 0) {
        const char *kind = res->error_kind != NULL ? res->error_kind : "error";
        rmr_counter_add(ins, "poll_errors", kind, 1);
        st->failures++;
        rmr_log(ins, RMR_LOG_WARN, "cannot poll '%s' (%s), retrying at the next interval: %s",
                st->endpoint, kind,
                res->reason != NULL && res->reason[0] != '\0' ? res->reason
                                                              : rmr_strerror(res->error));
        return;
    }
    if (st->failures > 0) {
        rmr_log(ins, RMR_LOG_INFO, "polling '%s' works again after %llu failed polls", st->endpoint,
                (unsigned long long)st->failures);
        st->failures = 0;
    }
    if (res->skipped_no_stats > 0)
        rmr_counter_add(ins, "containers_skipped", "no_stats", res->skipped_no_stats);
    if (res->bad_entries > 0)
        rmr_counter_add(ins, "containers_skipped", "bad_stats", res->bad_entries);
    note_incomplete(st, res->incomplete);

    /* Only Datakit's naming exists for this input: with no output taking it, the poll served
     * the tags the source published and nothing is rendered. */
    if (!rmr_schema_wanted(ins, RMR_SCHEMA_GUANCE))
        return;
    struct ctr_emit_count count;
    int rc = ctr_emit_guance(ins, res->samples, res->nsamples, &count);
    if (rc < 0)
        rmr_log(ins, RMR_LOG_WARN, "cannot emit docker_containers of %u containers (%u added): %s",
                res->nsamples, count.metrics, rmr_strerror(rc));
}

static void on_tick(rmr_instance_t *ins, void *arg)
{
    struct ctr_state *st = arg;
    int rc = st->ops->poll(st->src, on_result, st);
    if (rc == 0)
        return;
    if (rc == RMR_EAGAIN) {
        /* Overlapping polls would pile up on a slow endpoint; the running one still ends,
         * at the latest when its timeout passes. */
        rmr_counter_add(ins, "polls_skipped", "still_running", 1);
        rmr_log(ins, RMR_LOG_WARN,
                "skipped a poll of '%s': the previous one is still running (timeout %lld ms, "
                "interval %lld ms)",
                st->endpoint, (long long)st->cfg->timeout_ms, (long long)st->cfg->interval_ms);
        return;
    }
    rmr_counter_add(ins, "poll_errors", "request_failed", 1);
    rmr_log(ins, RMR_LOG_WARN, "cannot poll '%s': %s", st->endpoint, rmr_strerror(rc));
}

/* ---- lifecycle --------------------------------------------------------------------------------
 */

static int has_url_scheme(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

static int ctr_create(rmr_instance_t *ins, const void *config, void **state)
{
    const struct ctr_cfg *cfg = config;
    /* The schema's ranges already hold these; the checks keep create() safe on its own. */
    if (cfg->interval_ms < CTR_INTERVAL_MIN_MS || cfg->interval_ms > CTR_INTERVAL_MAX_MS) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'interval': %lld ms is outside 1s..24h",
                (long long)cfg->interval_ms);
        return RMR_ECONFIG;
    }
    if (cfg->timeout_ms < CTR_TIMEOUT_MIN_MS || cfg->timeout_ms > CTR_TIMEOUT_MAX_MS) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'timeout': %lld ms is outside 100ms..5m",
                (long long)cfg->timeout_ms);
        return RMR_ECONFIG;
    }
    if (cfg->source < 0 || (uint32_t)cfg->source > NSOURCES) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'source': expected one of %s", CTR_SOURCE_CHOICES);
        return RMR_ECONFIG;
    }
    if (cfg->endpoint != NULL && cfg->endpoint[0] != '\0' && !has_url_scheme(cfg->endpoint)) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'endpoint' '%s': expected an http:// or https:// URL",
                cfg->endpoint);
        return RMR_ECONFIG;
    }
    struct ctr_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->ins = ins;
    st->cfg = cfg;
    *state = st;
    return 0;
}

/* Picks the source and its endpoint: the configured one, else what a source detects in the
 * environment. Returns the source, or NULL (idle) with *endpoint NULL. */
static const struct ctr_source_ops *pick_source(const struct ctr_cfg *cfg, const char **endpoint)
{
    const char *ep = cfg->endpoint != NULL && cfg->endpoint[0] != '\0' ? cfg->endpoint : NULL;
    *endpoint = NULL;
    if (cfg->source != CTR_SOURCE_AUTO) {
        const struct ctr_source_ops *ops = sources[cfg->source - 1];
        *endpoint = ep != NULL ? ep : ops->detect();
        return *endpoint != NULL && (*endpoint)[0] != '\0' ? ops : NULL;
    }
    /* auto: an `endpoint` is the ECS metadata URI (its variables fill it); else the first
     * source that finds its platform. */
    if (ep != NULL) {
        *endpoint = ep;
        return &ctr_source_ecs;
    }
    for (size_t i = 0; i < NSOURCES; i++) {
        const char *d = sources[i]->detect();
        if (d != NULL && d[0] != '\0') {
            *endpoint = d;
            return sources[i];
        }
    }
    return NULL;
}

static int ctr_start(rmr_instance_t *ins, void *state)
{
    struct ctr_state *st = state;
    const char *endpoint;
    const struct ctr_source_ops *ops = pick_source(st->cfg, &endpoint);
    if (ops == NULL) {
        /* Enabled but nothing to watch (ENV_ECS_FARGATE=on outside ECS, say): one line, no
         * timer, and the agent runs on. */
        rmr_log(ins, RMR_LOG_WARN,
                "idle: no container platform found: 'endpoint' is empty and neither "
                "ECS_CONTAINER_METADATA_URI_V4 nor ECS_CONTAINER_METADATA_URI is set (the "
                "Docker and kubelet sources are not built yet)");
        return 0;
    }
    if (!has_url_scheme(endpoint)) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid endpoint '%s': expected an http:// or https:// URL",
                endpoint);
        return RMR_ECONFIG;
    }
    if ((st->endpoint = strdup(endpoint)) == NULL)
        return RMR_ENOMEM;
    struct ctr_source_cfg scfg = {.endpoint = endpoint,
                                  .timeout_ms = (uint32_t)st->cfg->timeout_ms};
    int rc = ops->init(ins, &scfg, &st->src);
    if (rc < 0) {
        rmr_log(ins, RMR_LOG_ERROR, "cannot set up the %s source for '%s': %s", ops->name, endpoint,
                rmr_strerror(rc));
        return rc;
    }
    st->ops = ops;
    /* The first poll runs at once: the task's tags reach DogStatsD and traces early, and a
     * short task still gets its containers reported. */
    rc = rmr_timer_start(ins, 0, (uint64_t)st->cfg->interval_ms, on_tick, st, &st->timer);
    if (rc < 0)
        return rc;
    rmr_log(ins, RMR_LOG_INFO, "polling '%s' (%s) every %lld ms%s", endpoint, ops->name,
            (long long)st->cfg->interval_ms,
            rmr_schema_wanted(ins, RMR_SCHEMA_GUANCE)
                ? ""
                : "; no output takes the guance schema, so only the task's tags are published");
    return 0;
}

/* Nothing is aggregated between polls, so there is nothing to flush; a poll in flight is
 * cancelled by the host and its answer ignored. */
static int ctr_stop(rmr_instance_t *ins, void *state)
{
    struct ctr_state *st = state;
    st->stopping = 1;
    rmr_timer_stop(st->timer);
    st->timer = NULL;
    return 0;
}

static void ctr_destroy(rmr_instance_t *ins, void *state)
{
    struct ctr_state *st = state;
    if (st == NULL)
        return;
    rmr_timer_stop(st->timer);
    if (st->ops != NULL)
        st->ops->free(st->src);
    free(st->endpoint);
    free(st);
}

static const struct rmr_plugin ctr_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "container",
    .version = "1.0.0",
    .description = "the task's containers as Datakit's docker_containers metric and object",
    .enable_env = "ENV_ECS_FARGATE",
    .options = ctr_options,
    .config_size = sizeof(struct ctr_cfg),
    .create = ctr_create,
    .start = ctr_start,
    .stop = ctr_stop,
    .destroy = ctr_destroy,
};

RMR_PLUGIN_DEFINE(ctr_plugin)
