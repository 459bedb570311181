/* The dk input: remora's self-monitoring, named after Datakit's own `dk` input so that
 * ENV_DEFAULT_ENABLED_INPUTS=dk,... keeps working. Every interval it turns the host's
 * counters and gauges (rmr_stats_foreach) and the process's resource use (rmr_process_stats)
 * into one schema-less batch of remora.* metrics.
 *
 * Counters are shipped as COUNT deltas, which backends sum correctly across restarts and
 * instances, so the plugin remembers each counter's previous value. That table is keyed by
 * (instance, name, reason, record kind) and bounded: the keys come from the host, but reasons
 * and instances can multiply, and self-monitoring must never be what eats the memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/plugin.h>

/* At most this many counters are tracked; more are skipped and counted as stats_overflow. */
#define DK_MAX_KEYS 4096u
/* Longest (instance, name, reason, record kind) key and metric name handled; longer ones are
 * skipped like overflow: the host's names are short words, never data. */
#define DK_KEY_BYTES       1024u
#define DK_NAME_BYTES      256u

#define DK_INTERVAL_MIN_MS 1000
#define DK_INTERVAL_MAX_MS 86400000 /* a day: a longer self-monitoring period shows nothing */

struct dk_cfg {
    int64_t interval_ms;
};

/* One counter's value at the previous tick. key NULL marks an empty slot. */
struct dk_prev {
    char *key; /* see make_key() */
    uint32_t keylen;
    uint32_t seen; /* tick number when last reported */
    double value;
};

struct dk_state {
    rmr_instance_t *ins;
    int64_t interval_ms;
    rmr_timer_t *timer;

    struct dk_prev *slots; /* open addressing, linear probing; cap is a power of two */
    uint32_t cap;
    uint32_t used;
    uint32_t tick; /* ticks so far; 0 before the first */

    /* CPU use at the previous tick, for the percentage over the interval. */
    int have_cpu;
    uint64_t prev_cpu_ns;
    int64_t prev_mono_ns;

    /* Scratch for one tick, filled while the host calls on_stat(). */
    rmr_batch_t *batch;
    int64_t now_ns;
    int add_rc;        /* first failed add in this tick */
    uint64_t overflow; /* stats skipped in this tick */
    uint32_t nadded;   /* metrics added in this tick */
};

static const struct rmr_option dk_options[] = {
    RMR_OPT_FULL("interval", RMR_OPT_DURATION, 0, "10s", NULL, DK_INTERVAL_MIN_MS,
                 DK_INTERVAL_MAX_MS, struct dk_cfg, interval_ms,
                 "how often the self-metrics are collected"),
    RMR_OPT_END,
};

/* ---- the previous-values table ------------------------------------------------------------ */

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

/* Appends one key part: a presence byte, then the string and its NUL, so that NULL, "" and
 * any split of the same characters between parts all give different keys. */
static int key_part(char *buf, size_t *len, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n + 2 > DK_KEY_BYTES - *len)
        return -1;
    buf[(*len)++] = s != NULL ? '\1' : '\0';
    if (n > 0)
        memcpy(buf + *len, s, n);
    *len += n;
    buf[(*len)++] = '\0';
    return 0;
}

static int make_key(char *buf, size_t *len, const struct rmr_stat *s)
{
    *len = 0;
    if (key_part(buf, len, s->instance) < 0 || key_part(buf, len, s->name) < 0 ||
        key_part(buf, len, s->reason) < 0 || key_part(buf, len, s->record_kind) < 0)
        return -1;
    return 0;
}

static struct dk_prev *slot_for(struct dk_prev *slots, uint32_t cap, const char *key, size_t len)
{
    uint32_t i = (uint32_t)fnv1a(key, len) & (cap - 1);
    for (;;) {
        struct dk_prev *p = &slots[i];
        if (p->key == NULL || (p->keylen == len && memcmp(p->key, key, len) == 0))
            return p;
        i = (i + 1) & (cap - 1);
    }
}

/* Rebuilds the table with capacity cap, keeping only the keys seen at tick min_seen or later
 * (0 keeps all). Returns 0 or RMR_ENOMEM (the table is unchanged then). */
static int table_rebuild(struct dk_state *st, uint32_t cap, uint32_t min_seen)
{
    struct dk_prev *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
        return RMR_ENOMEM;
    uint32_t used = 0;
    for (uint32_t i = 0; i < st->cap; i++) {
        struct dk_prev *p = &st->slots[i];
        if (p->key == NULL)
            continue;
        if (p->seen < min_seen) {
            free(p->key);
            continue;
        }
        *slot_for(slots, cap, p->key, p->keylen) = *p;
        used++;
    }
    free(st->slots);
    st->slots = slots;
    st->cap = cap;
    st->used = used;
    return 0;
}

/* Finds or inserts key. Returns the entry and sets *fresh for a new one, or NULL when the
 * table is full (DK_MAX_KEYS) or out of memory. */
static struct dk_prev *table_get(struct dk_state *st, const char *key, size_t len, int *fresh)
{
    *fresh = 0;
    if (st->cap > 0) {
        struct dk_prev *p = slot_for(st->slots, st->cap, key, len);
        if (p->key != NULL)
            return p;
    }
    if (st->used >= DK_MAX_KEYS)
        return NULL;
    /* Keep the load at most one half so probes stay short; DK_MAX_KEYS bounds the growth. */
    if ((st->used + 1) * 2 > st->cap && table_rebuild(st, st->cap ? st->cap * 2 : 64, 0) < 0)
        return NULL;
    struct dk_prev *p = slot_for(st->slots, st->cap, key, len);
    if ((p->key = malloc(len)) == NULL)
        return NULL;
    memcpy(p->key, key, len);
    p->keylen = (uint32_t)len;
    p->value = 0;
    st->used++;
    *fresh = 1;
    return p;
}

static void table_free(struct dk_state *st)
{
    for (uint32_t i = 0; i < st->cap; i++)
        free(st->slots[i].key);
    free(st->slots);
    st->slots = NULL;
    st->cap = st->used = 0;
}

/* ---- one tick ----------------------------------------------------------------------------- */

static void add_metric(struct dk_state *st, uint32_t type, const char *name, double value,
                       const char *unit, const struct rmr_tag *tags, uint32_t ntags)
{
    if (st->add_rc < 0)
        return;
    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = type,
        .name = rmr_str_c(name),
        .value = value,
        .time_ns = st->now_ns,
        .interval_ms = type == RMR_METRIC_COUNT ? st->interval_ms : 0,
        .unit = rmr_str_c(unit),
        .tags = tags,
        .ntags = ntags,
    };
    int rc = rmr_metric_add(st->batch, &m);
    if (rc < 0) {
        st->add_rc = rc;
        return;
    }
    st->nadded++;
}

static void on_stat(void *arg, const struct rmr_stat *s)
{
    struct dk_state *st = arg;
    char name[DK_NAME_BYTES];
    if (s == NULL || s->name == NULL)
        return;
    int n = snprintf(name, sizeof name, "remora.%s", s->name);
    if (n < 0 || (size_t)n >= sizeof name) {
        st->overflow++;
        return;
    }

    double value = s->value;
    uint32_t type = RMR_METRIC_GAUGE;
    if (!s->is_gauge) {
        char key[DK_KEY_BYTES];
        size_t keylen;
        int fresh;
        struct dk_prev *p = NULL;
        if (make_key(key, &keylen, s) == 0)
            p = table_get(st, key, keylen, &fresh);
        if (p == NULL) {
            st->overflow++;
            return;
        }
        /* A counter below its previous value was reset (its instance restarted): everything
         * it holds now is new. */
        if (!fresh && s->value >= p->value)
            value = s->value - p->value;
        p->value = s->value;
        p->seen = st->tick;
        type = RMR_METRIC_COUNT;
    }

    struct rmr_tag tags[5];
    uint32_t ntags = 0;
    if (s->instance != NULL)
        tags[ntags++] = (struct rmr_tag){rmr_str_c("instance"), rmr_str_c(s->instance)};
    if (s->plugin != NULL)
        tags[ntags++] = (struct rmr_tag){rmr_str_c("plugin"), rmr_str_c(s->plugin)};
    if (s->kind != NULL)
        tags[ntags++] = (struct rmr_tag){rmr_str_c("kind"), rmr_str_c(s->kind)};
    if (s->reason != NULL)
        tags[ntags++] = (struct rmr_tag){rmr_str_c("reason"), rmr_str_c(s->reason)};
    if (s->record_kind != NULL)
        tags[ntags++] = (struct rmr_tag){rmr_str_c("record_kind"), rmr_str_c(s->record_kind)};
    add_metric(st, type, name, value, NULL, tags, ntags);
}

static void add_process_metrics(struct dk_state *st)
{
    struct rmr_process_stats ps;
    memset(&ps, 0, sizeof ps);
    ps.struct_size = sizeof ps;
    int rc = rmr_process_stats(st->ins, &ps);
    if (rc < 0) {
        rmr_log(st->ins, RMR_LOG_WARN, "cannot read the process's resource use: %s",
                rmr_strerror(rc));
        return;
    }
    int64_t mono = rmr_mono_ns(st->ins);
    uint64_t cpu = ps.cpu_user_ns + ps.cpu_system_ns;
    double pct = 0;
    if (st->have_cpu) {
        int64_t dt = mono - st->prev_mono_ns;
        if (dt > 0 && cpu >= st->prev_cpu_ns)
            pct = (double)(cpu - st->prev_cpu_ns) * 100.0 / (double)dt;
    } else if (ps.uptime_ns > 0) {
        /* No previous sample yet: the average since the process started. */
        pct = (double)cpu * 100.0 / (double)ps.uptime_ns;
    }
    st->have_cpu = 1;
    st->prev_cpu_ns = cpu;
    st->prev_mono_ns = mono;

    /* The process is one per host, so its metrics carry the host as Datakit's dk input does. */
    const struct rmr_tag host = {rmr_str_c("host"), rmr_str_c(rmr_hostname(st->ins))};
    add_metric(st, RMR_METRIC_GAUGE, "remora.process.rss_bytes", (double)ps.rss_bytes, "By", &host,
               1);
    add_metric(st, RMR_METRIC_GAUGE, "remora.process.cpu_percent", pct, "%", &host, 1);
    add_metric(st, RMR_METRIC_GAUGE, "remora.process.open_fds", (double)ps.open_fds, NULL, &host,
               1);
    add_metric(st, RMR_METRIC_GAUGE, "remora.process.threads", (double)ps.threads, NULL, &host, 1);
    add_metric(st, RMR_METRIC_GAUGE, "remora.process.uptime_seconds", (double)ps.uptime_ns / 1e9,
               "s", &host, 1);
}

static void dk_tick(rmr_instance_t *ins, void *arg)
{
    struct dk_state *st = arg;
    st->tick++;
    st->now_ns = rmr_now_ns(ins);
    st->add_rc = 0;
    st->overflow = 0;
    st->nadded = 0;
    if ((st->batch = rmr_batch_new(ins, NULL)) == NULL) {
        rmr_log(ins, RMR_LOG_WARN, "cannot collect self-metrics: %s", rmr_strerror(RMR_ENOMEM));
        return;
    }
    rmr_stats_foreach(ins, on_stat, st);
    add_process_metrics(st);

    /* Counters that were not reported this tick belong to instances that are gone; forget
     * them so the bound is spent on live ones. A failed rebuild only delays that. */
    uint32_t seen = 0;
    for (uint32_t i = 0; i < st->cap; i++)
        if (st->slots[i].key != NULL && st->slots[i].seen == st->tick)
            seen++;
    if (seen < st->used)
        (void)table_rebuild(st, st->cap, st->tick);

    if (st->overflow > 0) {
        rmr_counter_add(ins, "records_dropped", "stats_overflow", st->overflow);
        rmr_log(ins, RMR_LOG_WARN,
                "skipped %llu self-metrics: more than %u counters are tracked (stats_overflow)",
                (unsigned long long)st->overflow, DK_MAX_KEYS);
    }
    if (st->add_rc < 0)
        rmr_log(ins, RMR_LOG_WARN, "cannot add self-metrics to a batch after %u of them: %s",
                st->nadded, rmr_strerror(st->add_rc));
    rmr_batch_t *b = st->batch;
    st->batch = NULL;
    int rc = rmr_emit(ins, b);
    if (rc < 0)
        rmr_log(ins, RMR_LOG_WARN, "cannot emit %u self-metrics: %s", st->nadded, rmr_strerror(rc));
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static int dk_create(rmr_instance_t *ins, const void *config, void **state)
{
    const struct dk_cfg *cfg = config;
    /* The schema's range already holds this; the check keeps create() safe on its own. */
    if (cfg->interval_ms < DK_INTERVAL_MIN_MS || cfg->interval_ms > DK_INTERVAL_MAX_MS) {
        rmr_log(ins, RMR_LOG_ERROR, "invalid 'interval': %lld ms is outside 1s..24h",
                (long long)cfg->interval_ms);
        return RMR_ECONFIG;
    }
    struct dk_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->ins = ins;
    st->interval_ms = cfg->interval_ms;
    *state = st;
    return 0;
}

static int dk_start(rmr_instance_t *ins, void *state)
{
    struct dk_state *st = state;
    return rmr_timer_start(ins, (uint64_t)st->interval_ms, (uint64_t)st->interval_ms, dk_tick, st,
                           &st->timer);
}

/* Nothing is aggregated between ticks, so there is nothing to flush. */
static int dk_stop(rmr_instance_t *ins, void *state)
{
    struct dk_state *st = state;
    rmr_timer_stop(st->timer);
    st->timer = NULL;
    return 0;
}

static void dk_destroy(rmr_instance_t *ins, void *state)
{
    struct dk_state *st = state;
    if (st == NULL)
        return;
    rmr_timer_stop(st->timer);
    table_free(st);
    free(st);
}

static const struct rmr_plugin dk_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "dk",
    .version = "1.0.0",
    .description = "remora's own counters and resource use as remora.* metrics",
    .aliases = "self",
    .options = dk_options,
    .config_size = sizeof(struct dk_cfg),
    .create = dk_create,
    .start = dk_start,
    .stop = dk_stop,
    .destroy = dk_destroy,
};

RMR_PLUGIN_DEFINE(dk_plugin)
