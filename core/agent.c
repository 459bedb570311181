/* core/agent: the lifecycle of the agent process.
 *
 * Startup: read config -> load plugins -> resolve instances -> create every instance ->
 * start outputs, then inputs. Shutdown (SIGTERM/SIGINT): stop inputs (they flush partial
 * aggregates) -> encode what is pending -> let deliveries drain within the grace -> stop and
 * destroy everything -> exit 0. A second signal exits at once. */
#include "agent_run.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "record/batch.h"
#include "self/log.h"

static void warn_cb(void *arg, const char *msg)
{
    log_write(RMR_LOG_WARN, "config", "%s", msg);
}

/* The plugin directory: [agent] plugin_dir (or REMORA_AGENT_PLUGIN_DIR), else "plugins" next
 * to the binary (a build tree or a relocated install), else the built-in default. Returns 1
 * when the directory was configured. */
static int plugin_dir(const struct agent *a, char *out, size_t outlen)
{
    if (a->cfg.agent.plugin_dir != NULL && a->cfg.agent.plugin_dir[0] != '\0') {
        snprintf(out, outlen, "%s", a->cfg.agent.plugin_dir);
        return 1;
    }
    char exe[PATH_MAX - 16];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            struct stat st;
            snprintf(out, outlen, "%s/plugins", exe);
            if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
                return 0;
        }
    }
    snprintf(out, outlen, "%s", REMORA_PLUGINDIR);
    return 0;
}

static int has_key(const struct rmr_tag *tags, uint32_t n, const struct rmr_str *key)
{
    for (uint32_t i = 0; i < n; i++)
        if (tags[i].key.len == key->len && memcmp(tags[i].key.ptr, key->ptr, key->len) == 0)
            return 1;
    return 0;
}

/* Appends the tags of list whose key no earlier source set, so earlier sources win per key
 * while one source may still repeat a key (Datadog allows team:a team:b). */
static int add_source(struct rmr_tag **tags, uint32_t *n, const struct rmr_tag *list,
                      uint32_t count)
{
    uint32_t before = *n;
    for (uint32_t i = 0; i < count; i++) {
        if (has_key(*tags, before, &list[i].key))
            continue;
        struct rmr_tag *t = realloc(*tags, (*n + 1) * sizeof *t);
        if (t == NULL)
            return RMR_ENOMEM;
        *tags = t;
        t[(*n)++] = list[i];
    }
    return 0;
}

static int one_tag(struct rmr_tag *t, const char *key, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return 0;
    *t = (struct rmr_tag){RMR_STR(key), RMR_STR(value)};
    return 1;
}

static int build_global_tags(struct agent *a)
{
    const struct agent_config *ac = &a->cfg.agent;
    struct rmr_tag dd[3];
    uint32_t ndd = 0;
    ndd += (uint32_t)one_tag(&dd[ndd], "env", ac->dd_env);
    ndd += (uint32_t)one_tag(&dd[ndd], "service", ac->dd_service);
    ndd += (uint32_t)one_tag(&dd[ndd], "version", ac->dd_version);
    int rc = add_source(&a->global_tags, &a->nglobal_tags, dd, ndd);
    if (rc == 0)
        rc = add_source(&a->global_tags, &a->nglobal_tags, ac->dd_tags.tags, ac->dd_tags.count);
    if (rc == 0)
        rc = add_source(&a->global_tags, &a->nglobal_tags, ac->global_tags.tags,
                        ac->global_tags.count);
    if (rc == 0)
        rc = add_source(&a->global_tags, &a->nglobal_tags, ac->tags.tags, ac->tags.count);
    return rc;
}

static int instance_tags(struct agent *a, struct rmr_instance *ins)
{
    const struct rmr_taglist *own = &ins->ci->common.tags;
    int rc = add_source(&ins->tags, &ins->ntags, own->tags, own->count);
    if (rc == 0)
        rc = add_source(&ins->tags, &ins->ntags, a->global_tags, a->nglobal_tags);
    return rc;
}

int agent_setup(struct agent *a, const char *config_path, char *const *envp, int want_instances)
{
    char err[1024];
    memset(a, 0, sizeof *a);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    a->start_wall_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    a->start_mono_ns = uv_hrtime();

    int rc = config_read(&a->cfg, config_path, envp, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "remora: %s\n", rc == RMR_ECONFIG ? err : rmr_strerror(rc));
        return rc;
    }
    log_configure((uint32_t)a->cfg.agent.log_level, a->cfg.agent.log_format,
                  a->cfg.agent.log_rate_limit_ms);

    char dir[PATH_MAX];
    int explicit_dir = plugin_dir(a, dir, sizeof dir);
    /* A build with every plugin linked in has no plugin directory; only a configured one must
     * exist. */
    struct stat st;
    int load_dir = explicit_dir || stat(dir, &st) == 0;
    if ((rc = loader_load_builtins(&a->reg)) < 0 ||
        (load_dir && (rc = loader_load_dir(&a->reg, dir)) < 0)) {
        fprintf(stderr, "remora: cannot load plugins: %s\n", rmr_strerror(rc));
        return rc;
    }
    if (!want_instances)
        return 0;

    const struct cfg_plugin *plugins = registry_cfg_plugins(&a->reg);
    if (plugins == NULL)
        return RMR_ENOMEM;
    rc = config_resolve(&a->cfg, plugins, a->reg.count, REMORA_DEFAULT_INPUTS,
                        REMORA_DEFAULT_OUTPUT, warn_cb, NULL, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "remora: %s\n", rc == RMR_ECONFIG ? err : rmr_strerror(rc));
        return rc;
    }
    if ((rc = build_global_tags(a)) < 0)
        return rc;
    if (a->cfg.agent.hostname != NULL)
        snprintf(a->hostname, sizeof a->hostname, "%s", a->cfg.agent.hostname);
    else if (gethostname(a->hostname, sizeof a->hostname - 1) != 0)
        snprintf(a->hostname, sizeof a->hostname, "localhost");

    if ((rc = uv_loop_init(&a->loop)) < 0) {
        fprintf(stderr, "remora: cannot start the event loop: %s\n", uv_strerror(rc));
        return RMR_EIO;
    }
    a->loop_thread = uv_thread_self();
    if ((rc = host_foreign_init(a)) < 0)
        return rc;
    if ((a->tagger = tagger_new()) == NULL)
        return RMR_ENOMEM;
    a->ninstances = a->cfg.ninstances;
    a->instances = calloc(a->ninstances ? a->ninstances : 1, sizeof *a->instances);
    if (a->instances == NULL)
        return RMR_ENOMEM;
    for (uint32_t i = 0; i < a->ninstances; i++) {
        struct rmr_instance *ins = &a->instances[i];
        ins->h.host = &host_api;
        ins->agent = a;
        ins->ci = &a->cfg.instances[i];
        ins->desc = ins->ci->plugin->desc;
        ins->kind = ins->ci->kind;
        if ((rc = instance_tags(a, ins)) < 0)
            return rc;
    }
    /* Outputs exist before inputs are created, so rmr_schema_wanted() answers in create(). */
    for (uint32_t i = 0; i < a->ninstances; i++)
        if (a->instances[i].kind == RMR_KIND_OUTPUT &&
            (rc = pipeline_output_init(a, &a->instances[i])) < 0)
            return rc;
    for (uint32_t i = 0; i < a->ninstances; i++) {
        struct rmr_instance *ins = &a->instances[i];
        rc = ins->desc->create(ins, ins->ci->config, &ins->state);
        if (rc < 0) {
            log_write(RMR_LOG_ERROR, ins->ci->name, "cannot create: %s", rmr_strerror(rc));
            return rc;
        }
        ins->phase = PHASE_CREATED;
    }
    return 0;
}

static void close_cb(uv_handle_t *h)
{
}

/* Destroys every instance and closes the agent's handles; the loop then runs out. */
static void teardown(struct agent *a)
{
    for (uint32_t i = a->ninstances; i-- > 0;) {
        struct rmr_instance *ins = &a->instances[i];
        if (ins->phase == PHASE_STARTED && ins->desc->stop != NULL && ins->kind == RMR_KIND_OUTPUT)
            (void)ins->desc->stop(ins, ins->state);
        host_instance_quiesce(ins); /* fetches cancelled before destroy, as documented */
        if (ins->phase >= PHASE_CREATED)
            ins->desc->destroy(ins, ins->state);
        host_instance_release(ins);
        ins->phase = PHASE_NEW;
        ins->state = NULL;
        pipeline_output_close(ins);
    }
    host_net_stop(a);
    host_foreign_close(a);
    /* Handles are closed only if agent_stop() or agent_run() initialized them (data set). */
    if (a->grace_timer.data != NULL) {
        uv_timer_stop(&a->grace_timer);
        uv_close((uv_handle_t *)&a->grace_timer, close_cb);
        a->grace_timer.data = NULL;
    }
    if (a->drain_check.data != NULL) {
        uv_check_stop(&a->drain_check);
        uv_close((uv_handle_t *)&a->drain_check, close_cb);
        a->drain_check.data = NULL;
    }
    if (a->sig_term.data != NULL) {
        uv_close((uv_handle_t *)&a->sig_term, close_cb);
        uv_close((uv_handle_t *)&a->sig_int, close_cb);
        a->sig_term.data = NULL;
    }
}

void agent_release(struct agent *a)
{
    if (a->instances != NULL) {
        teardown(a);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        for (uint32_t i = 0; i < a->ninstances; i++) {
            counters_release(&a->instances[i].counters);
            free(a->instances[i].tags);
            tagset_release(&a->instances[i].published);
        }
        free(a->instances);
        a->instances = NULL;
        uv_loop_close(&a->loop);
    }
    if (a->foreign_q != NULL) {
        free(a->foreign_q);
        a->foreign_q = NULL;
        pthread_mutex_destroy(&a->foreign_lock);
    }
    free(a->global_tags);
    tagset_release(&a->published_tags);
    tagger_free(a->tagger);
    a->tagger = NULL;
    config_release(&a->cfg);
    registry_release(&a->reg);
}

static uint64_t undelivered(const struct agent *a)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < a->ninstances; i++) {
        const struct output *o = a->instances[i].out;
        if (o == NULL)
            continue;
        n += o->pending_records + delivery_records(&o->delivery);
    }
    return n;
}

static void finish(struct agent *a)
{
    if (a->phase == AGENT_DONE)
        return;
    a->phase = AGENT_DONE;
    /* A halted output counts as drained (waiting cannot help it); say what it still held. */
    uint64_t left = undelivered(a);
    if (left > 0)
        log_warn("stopping with %llu records undelivered (a halted output keeps no spool yet)",
                 (unsigned long long)left);
    log_info("stopped");
    teardown(a);
}

static void on_drain_check(uv_check_t *c)
{
    struct agent *a = c->data;
    if (a->phase == AGENT_DRAINING && pipeline_idle(a))
        finish(a);
}

static void begin_drain(struct agent *a)
{
    a->phase = AGENT_DRAINING;
    pipeline_flush_all(a);
    uv_check_init(&a->loop, &a->drain_check);
    a->drain_check.data = a;
    uv_check_start(&a->drain_check, on_drain_check);
    if (pipeline_idle(a))
        finish(a);
}

/* Drains once every input has finished stopping. */
static void check_inputs_stopped(struct agent *a)
{
    if (a->phase != AGENT_STOPPING_INPUTS)
        return;
    /* An input not asked yet (agent_stop() walks them one by one) counts as busy too, so the
     * first input to stop does not start the drain while others still run. */
    for (uint32_t i = 0; i < a->ninstances; i++)
        if (a->instances[i].kind == RMR_KIND_INPUT &&
            (a->instances[i].phase == PHASE_STOPPING || a->instances[i].phase == PHASE_STARTED))
            return;
    begin_drain(a);
}

void agent_instance_stopped(struct rmr_instance *ins)
{
    if (ins->phase != PHASE_STOPPING)
        return;
    /* Timers of a stopped input must not fire again. */
    host_instance_quiesce(ins);
    ins->phase = PHASE_STOPPED;
    check_inputs_stopped(ins->agent);
}

static void on_grace(uv_timer_t *t)
{
    struct agent *a = t->data;
    uint64_t left = undelivered(a);
    log_warn("shutdown grace of %lld ms ended with %llu records undelivered",
             (long long)a->cfg.agent.shutdown_grace_ms, (unsigned long long)left);
    /* Writes may still be in flight on the thread pool; their buffers must outlive them, so
     * the process ends here rather than tearing down under them. */
    fflush(NULL);
    _exit(a->exit_code);
}

static const char *signal_name(int signum)
{
    return signum == SIGTERM ? "SIGTERM" : signum == SIGINT ? "SIGINT" : "signal";
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct agent *a = s->data;
    a->signals++;
    if (a->signals > 1) {
        log_warn("second signal (%s); exiting now", signal_name(signum));
        fflush(NULL);
        _exit(128 + signum);
    }
    log_info("%s received; stopping inputs, then draining outputs for up to %lld ms",
             signal_name(signum), (long long)a->cfg.agent.shutdown_grace_ms);
    agent_stop(a);
}

void agent_stop(struct agent *a)
{
    if (a->phase != AGENT_RUNNING)
        return;
    a->phase = AGENT_STOPPING_INPUTS;
    uv_timer_init(&a->loop, &a->grace_timer);
    a->grace_timer.data = a;
    uv_timer_start(&a->grace_timer, on_grace, (uint64_t)a->cfg.agent.shutdown_grace_ms, 0);
    for (uint32_t i = 0; i < a->ninstances; i++) {
        struct rmr_instance *ins = &a->instances[i];
        if (ins->kind != RMR_KIND_INPUT || ins->phase != PHASE_STARTED)
            continue;
        ins->phase = PHASE_STOPPING;
        int rc = ins->desc->stop != NULL ? ins->desc->stop(ins, ins->state) : 0;
        if (rc != RMR_EINPROGRESS) {
            if (rc < 0)
                log_write(RMR_LOG_WARN, ins->ci->name, "stop failed: %s", rmr_strerror(rc));
            agent_instance_stopped(ins);
        }
    }
    check_inputs_stopped(a);
}

int agent_run(struct agent *a)
{
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(&a->loop, &a->sig_term);
    uv_signal_init(&a->loop, &a->sig_int);
    a->sig_term.data = a->sig_int.data = a;
    uv_signal_start(&a->sig_term, on_signal, SIGTERM);
    uv_signal_start(&a->sig_int, on_signal, SIGINT);

    /* The shared listener exists before plugins start, so inputs can add routes. */
    if (host_net_start(a) < 0) {
        a->exit_code = 1;
        finish(a);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        return 1;
    }
    /* Outputs first, so inputs have somewhere to send from their first record. */
    for (int pass = 0; pass < 2; pass++) {
        uint32_t kind = pass == 0 ? RMR_KIND_OUTPUT : RMR_KIND_INPUT;
        for (uint32_t i = 0; i < a->ninstances; i++) {
            struct rmr_instance *ins = &a->instances[i];
            if (ins->kind != kind)
                continue;
            int rc = ins->desc->start != NULL ? ins->desc->start(ins, ins->state) : 0;
            if (rc < 0) {
                log_write(RMR_LOG_ERROR, ins->ci->name, "cannot start: %s", rmr_strerror(rc));
                a->exit_code = 1;
                finish(a);
                uv_run(&a->loop, UV_RUN_DEFAULT);
                return 1;
            }
            ins->phase = PHASE_STARTED;
        }
    }
    char names[512] = "";
    size_t used = 0;
    for (uint32_t i = 0; i < a->ninstances && used < sizeof names; i++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                 a->instances[i].ci->name);
    log_info("remora %s started with %s", REMORA_VERSION, names);

    uv_run(&a->loop, UV_RUN_DEFAULT);
    return a->exit_code;
}
