/* The dk input against the fake host: metric names, types, deltas across ticks, tags, CPU
 * percentage, the key bound, emit failures and config errors. */
#include <stdlib.h>
#include <string.h>

#include "fakehost.h"
#include "plugin_test.h"
#include "tap.h"

const struct rmr_plugin *rmr_plugin_describe(void);

#define T0 INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */
#define NS INT64_C(1000000000)

static void add_stat(struct rmr_fakehost *fh, const char *instance, const char *plugin,
                     const char *kind, const char *name, const char *reason, const char *rkind,
                     int gauge, double value)
{
    struct rmr_stat s = {
        .struct_size = sizeof s,
        .is_gauge = (uint32_t)gauge,
        .instance = instance,
        .plugin = plugin,
        .kind = kind,
        .name = name,
        .reason = reason,
        .record_kind = rkind,
        .value = value,
    };
    rmr_fakehost_add_stat(fh, &s);
}

static void procstats(struct rmr_fakehost *fh, uint64_t user_ns, uint64_t sys_ns, int64_t uptime_ns)
{
    struct rmr_process_stats ps = {
        .struct_size = sizeof ps,
        .threads = 4,
        .rss_bytes = 50u << 20,
        .cpu_user_ns = user_ns,
        .cpu_system_ns = sys_ns,
        .open_fds = 12,
        .start_time_ns = T0,
        .uptime_ns = uptime_ns,
    };
    rmr_fakehost_set_process_stats(fh, &ps);
}

/* Renders metric i of b as "name type value interval unit time|tags" for exact comparison. */
static char *show(const rmr_batch_t *b, uint32_t i)
{
    struct rmr_metric m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    if (rmr_metric_get(b, i, &m) != 0)
        return strdup("(not a metric)");
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%.*s %u %.17g %lld %.*s %lld|", (int)m.name.len, m.name.ptr,
                     m.type, m.value, (long long)m.interval_ms, (int)m.unit.len,
                     m.unit.ptr ? m.unit.ptr : "", (long long)m.time_ns);
    for (uint32_t t = 0; t < m.ntags && n > 0 && (size_t)n < sizeof buf; t++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%.*s:%.*s", t ? "," : "",
                      (int)m.tags[t].key.len, m.tags[t].key.ptr, (int)m.tags[t].value.len,
                      m.tags[t].value.ptr ? m.tags[t].value.ptr : "");
    return strdup(buf);
}

#define IS_METRIC(b, i, want, name)                                                                \
    do {                                                                                           \
        char *s_ = show((b), (i));                                                                 \
        IS_STR(s_, (want), (name));                                                                \
        free(s_);                                                                                  \
    } while (0)

static void test_descriptor(void)
{
    const struct rmr_plugin *d = rmr_plugin_describe();
    IS_STR(d->name, "dk", "descriptor: named dk like Datakit's input");
    IS_STR(d->aliases, "self", "descriptor: alias self");
    IS_INT(d->kind, RMR_KIND_INPUT, "descriptor: an input");
}

static void test_ticks(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "", NULL);
    OK(ins != NULL, "ticks: created with defaults");
    IS_INT(rmr_fakehost_start(fh, ins), 0, "ticks: started");

    add_stat(fh, "input.dogstatsd", "dogstatsd", "input", "records_in", NULL, NULL, 0, 100);
    add_stat(fh, "output.file", "file", "output", "records_dropped", "non_finite", "metric", 0, 3);
    add_stat(fh, "output.file", "file", "output", "queue_bytes", NULL, NULL, 1, 2048);
    procstats(fh, 1000000000, 500000000, 10 * NS);

    rmr_fakehost_advance(fh, 9999);
    IS_INT(rmr_fakehost_emitted_count(fh), 0, "ticks: nothing before the interval");
    rmr_fakehost_advance(fh, 1);
    IS_INT(rmr_fakehost_emitted_count(fh), 1, "ticks: one batch after 10s (default interval)");
    const rmr_batch_t *b = rmr_fakehost_emitted(fh, 0);
    OK(b != NULL && rmr_batch_schema(b) == NULL, "ticks: schema-less batch");
    IS_INT(b ? rmr_batch_count(b) : 0, 8, "ticks: 3 stats + 5 process metrics");
    if (b != NULL && rmr_batch_count(b) == 8) {
        IS_METRIC(b, 0,
                  "remora.records_in 2 100 10000  1767225610000000000|instance:input.dogstatsd,"
                  "kind:input,plugin:dogstatsd",
                  "tick 1: counter as COUNT, full value, interval, tags");
        IS_METRIC(b, 1,
                  "remora.records_dropped 2 3 10000  1767225610000000000|instance:output.file,"
                  "kind:output,plugin:file,reason:non_finite,record_kind:metric",
                  "tick 1: drop counter with reason and record_kind tags");
        IS_METRIC(b, 2,
                  "remora.queue_bytes 1 2048 0  1767225610000000000|instance:output.file,"
                  "kind:output,plugin:file",
                  "tick 1: gauge as GAUGE");
        IS_METRIC(b, 3,
                  "remora.process.rss_bytes 1 52428800 0 By 1767225610000000000|host:fakehost",
                  "tick 1: rss in bytes");
        IS_METRIC(b, 4, "remora.process.cpu_percent 1 15 0 % 1767225610000000000|host:fakehost",
                  "tick 1: cpu percent from uptime (1.5s of 10s)");
        IS_METRIC(b, 5, "remora.process.open_fds 1 12 0  1767225610000000000|host:fakehost",
                  "tick 1: open fds");
        IS_METRIC(b, 6, "remora.process.threads 1 4 0  1767225610000000000|host:fakehost",
                  "tick 1: threads");
        IS_METRIC(b, 7, "remora.process.uptime_seconds 1 10 0 s 1767225610000000000|host:fakehost",
                  "tick 1: uptime");
    }

    /* Second tick: new values; counters become deltas, CPU is measured over the interval. */
    add_stat(fh, "input.dogstatsd", "dogstatsd", "input", "records_in", NULL, NULL, 0, 250);
    add_stat(fh, "output.file", "file", "output", "queue_bytes", NULL, NULL, 1, 4096);
    add_stat(fh, "output.file", "file", "output", "records_out", NULL, NULL, 0, 40);
    procstats(fh, 3000000000u, 1000000000u, 20 * NS);
    rmr_fakehost_advance(fh, 10000);
    IS_INT(rmr_fakehost_emitted_count(fh), 2, "tick 2: second batch");
    b = rmr_fakehost_emitted(fh, 1);
    IS_INT(b ? rmr_batch_count(b) : 0, 9, "tick 2: 4 stats + 5 process metrics");
    if (b != NULL && rmr_batch_count(b) == 9) {
        IS_METRIC(b, 0,
                  "remora.records_in 2 150 10000  1767225620000000000|instance:input.dogstatsd,"
                  "kind:input,plugin:dogstatsd",
                  "tick 2: delta 250 - 100");
        IS_METRIC(b, 1,
                  "remora.records_dropped 2 0 10000  1767225620000000000|instance:output.file,"
                  "kind:output,plugin:file,reason:non_finite,record_kind:metric",
                  "tick 2: unchanged counter gives 0");
        IS_METRIC(b, 2,
                  "remora.queue_bytes 1 4096 0  1767225620000000000|instance:output.file,"
                  "kind:output,plugin:file",
                  "tick 2: gauge is the current value");
        IS_METRIC(b, 3,
                  "remora.records_out 2 40 10000  1767225620000000000|instance:output.file,"
                  "kind:output,plugin:file",
                  "tick 2: a counter new since the last tick gives its full value");
        IS_METRIC(b, 5, "remora.process.cpu_percent 1 25 0 % 1767225620000000000|host:fakehost",
                  "tick 2: cpu percent over the interval (2.5s of 10s)");
    }

    /* A counter that went down was reset: its whole value is new. */
    add_stat(fh, "input.dogstatsd", "dogstatsd", "input", "records_in", NULL, NULL, 0, 50);
    rmr_fakehost_advance(fh, 10000);
    b = rmr_fakehost_emitted(fh, 2);
    if (b != NULL)
        IS_METRIC(b, 0,
                  "remora.records_in 2 50 10000  1767225630000000000|instance:input.dogstatsd,"
                  "kind:input,plugin:dogstatsd",
                  "tick 3: a reset counter gives its new value");
    else
        OK(0, "tick 3: a reset counter gives its new value");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_in", NULL), 8 + 9 + 9,
            "ticks: the host counted every emitted record");

    IS_INT(rmr_fakehost_stop(fh, ins), 0, "stop: returns 0 at once");
    rmr_fakehost_advance(fh, 60000);
    IS_INT(rmr_fakehost_emitted_count(fh), 3, "stop: no tick after stop");
    rmr_fakehost_destroy(fh, ins);
    rmr_fakehost_free(fh);
}

static void test_interval_and_emit_failure(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *a = plugin_make(fh, "interval = 2s", NULL);
    rmr_instance_t *b = plugin_make(fh, "interval = 1m", NULL);
    OK(a != NULL && b != NULL, "interval: two instances coexist");
    rmr_fakehost_start(fh, a);
    rmr_fakehost_start(fh, b);
    add_stat(fh, "input.x", "x", "input", "records_in", NULL, NULL, 0, 10);
    rmr_fakehost_advance(fh, 6000);
    IS_INT(rmr_fakehost_emitted_count(fh), 3, "interval: 2s gives three ticks in 6s");

    /* Each instance keeps its own previous values: b's first tick sees the full value. */
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 54000);
    uint32_t n = rmr_fakehost_emitted_count(fh);
    IS_INT(n, 28, "interval: 27 ticks of a and 1 of b by 60s");
    const rmr_batch_t *last = rmr_fakehost_emitted(fh, n - 1);
    const rmr_batch_t *prev = rmr_fakehost_emitted(fh, n - 2);
    if (last != NULL && prev != NULL) {
        /* At 60s both are due; as in libuv, b (armed once at 0s) fires before a, which was
         * re-armed at 58s. */
        IS_METRIC(prev, 0,
                  "remora.records_in 2 10 60000  1767225660000000000|instance:input.x,"
                  "kind:input,plugin:x",
                  "interval: b's first tick has the full value, interval 60000");
        IS_METRIC(last, 0,
                  "remora.records_in 2 0 2000  1767225660000000000|instance:input.x,kind:input,"
                  "plugin:x",
                  "interval: a's delta is 0 with interval 2000");
    }

    rmr_fakehost_set_full(fh, 1);
    uint32_t logs = rmr_fakehost_log_count(fh);
    rmr_fakehost_advance(fh, 2000);
    OK(rmr_fakehost_log_count(fh) > logs, "emit failure: logged");
    CONTAINS(rmr_fakehost_log(fh, rmr_fakehost_log_count(fh) - 1), "WARN cannot emit",
             "emit failure: a warning naming the cause");
    CONTAINS(rmr_fakehost_log(fh, rmr_fakehost_log_count(fh) - 1), "queue full",
             "emit failure: says the queue is full");
    rmr_fakehost_set_full(fh, 0);
    rmr_fakehost_clear_emitted(fh);
    rmr_fakehost_advance(fh, 2000);
    IS_INT(rmr_fakehost_emitted_count(fh), 1, "emit failure: the next tick emits again");
    rmr_fakehost_free(fh);
}

static void test_overflow(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh, "interval = 1s", NULL);
    rmr_fakehost_start(fh, ins);
    char name[32];
    for (int i = 0; i < 4100; i++) {
        snprintf(name, sizeof name, "input.x%d", i);
        add_stat(fh, name, "x", "input", "records_in", NULL, NULL, 0, i);
    }
    add_stat(fh, "input.y", "y", "input", "queue_bytes", NULL, NULL, 1, 1);
    rmr_fakehost_advance(fh, 1000);
    const rmr_batch_t *b = rmr_fakehost_emitted(fh, 0);
    IS_INT(b ? rmr_batch_count(b) : 0, 4096 + 1 + 5,
           "overflow: 4096 counters kept, gauges and process metrics still shipped");
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", "stats_overflow"), 4,
            "overflow: the 4 extra counters counted as stats_overflow");
    CONTAINS(rmr_fakehost_log(fh, 0), "stats_overflow", "overflow: logged");
    rmr_fakehost_advance(fh, 1000);
    IS_UINT(rmr_fakehost_counter(fh, ins, "records_dropped", "stats_overflow"), 8,
            "overflow: counted again on the next tick");
    rmr_fakehost_free(fh);
}

static void test_config_errors(void)
{
    static const char *const bad[] = {"interval = 0s", "interval = abc", "interval = 500ms",
                                      "interval = 2d", "intervl = 5s",   "interval"};
    struct rmr_fakehost *fh = rmr_fakehost_new();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256], name[96];
        rmr_instance_t *ins = NULL;
        int rc = rmr_fakehost_create(fh, rmr_plugin_describe(), bad[i], &ins, err, sizeof err);
        snprintf(name, sizeof name, "config: '%s' is a config error", bad[i]);
        IS_INT(rc, RMR_ECONFIG, name);
        snprintf(name, sizeof name, "config: '%s' message names the key", bad[i]);
        CONTAINS(err, "interval", name);
    }
    rmr_instance_t *ins = NULL;
    char err[256];
    IS_INT(rmr_fakehost_create(fh, rmr_plugin_describe(), "interval = 1s", &ins, err, sizeof err),
           0, "config: 1s is the minimum and allowed");
    rmr_fakehost_free(fh);
}

int main(void)
{
    test_descriptor();
    test_ticks();
    test_interval_and_emit_failure();
    test_overflow();
    test_config_errors();
    return tap_done();
}
