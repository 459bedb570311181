/* Pipeline: routing by schema and record kind, global tags, timestamps, batching by records and
 * age, encode on the thread pool, delivery to a file, counters, the queue bound, emit after
 * stop. An agent is assembled by hand around two plugins defined here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "record/batch.h"
#include "tap.h"

static char out_path[64];
static uint32_t enc_batches[16]; /* batches handed to each encode() call, in order */
static uint32_t nenc;

static int t_create(rmr_instance_t *ins, const void *cfg, void **state)
{
    return 0;
}
static void t_destroy(rmr_instance_t *ins, void *state)
{
}

/* Writes "name|tags|time_set\n" per metric to out_path. */
static int t_encode(rmr_encoder_t *enc, void *state, const rmr_batch_t *const *batches, uint32_t n)
{
    char endpoint[96];
    snprintf(endpoint, sizeof endpoint, "file:%s", out_path);
    struct rmr_payload_spec spec = {.struct_size = sizeof spec, .endpoint = endpoint};
    rmr_payload_t *p = rmr_payload_new(enc, &spec);
    if (p == NULL)
        return RMR_ENOMEM;
    if (nenc < sizeof enc_batches / sizeof enc_batches[0])
        enc_batches[nenc++] = n;
    uint32_t count = 0;
    for (uint32_t b = 0; b < n; b++) {
        for (uint32_t i = 0; i < rmr_batch_count(batches[b]); i++) {
            struct rmr_metric m = {.struct_size = sizeof m};
            if (rmr_metric_get(batches[b], i, &m) != 0)
                continue;
            rmr_payload_write(p, m.name.ptr, m.name.len);
            rmr_payload_puts(p, "|");
            for (uint32_t t = 0; t < m.ntags; t++) {
                if (t > 0)
                    rmr_payload_puts(p, ",");
                rmr_payload_write(p, m.tags[t].key.ptr, m.tags[t].key.len);
                rmr_payload_puts(p, ":");
                rmr_payload_write(p, m.tags[t].value.ptr, m.tags[t].value.len);
            }
            rmr_payload_puts(p, m.time_ns == 123 ? "|kept\n"
                                : m.time_ns > 0  ? "|stamped\n"
                                                 : "|zero\n");
            count++;
        }
    }
    return rmr_payload_commit(p, count);
}

static const char *const sink_schemas[] = {"guance", NULL};

static const struct rmr_plugin src_desc = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .kind = RMR_KIND_INPUT,
    .name = "src",
    .create = t_create,
    .destroy = t_destroy,
};
static const struct rmr_plugin sink_desc = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .kind = RMR_KIND_OUTPUT,
    .name = "sink",
    .accepts = RMR_REC_BIT(RMR_REC_METRIC),
    .schemas = sink_schemas,
    .create = t_create,
    .destroy = t_destroy,
    .encode = t_encode,
};

static struct cfg_plugin src_plug = {&src_desc, "test"};
static struct cfg_plugin sink_plug = {&sink_desc, "test"};

static uint64_t counter(struct rmr_instance *ins, const char *name, const char *reason,
                        const char *kind)
{
    for (uint32_t i = 0; i < ins->counters.count; i++) {
        const struct counter *c = &ins->counters.items[i];
        if (strcmp(c->name, name) == 0 &&
            ((reason == NULL && c->reason == NULL) ||
             (reason && c->reason && strcmp(reason, c->reason) == 0)) &&
            ((kind == NULL && c->record_kind == NULL) ||
             (kind && c->record_kind && strcmp(kind, c->record_kind) == 0)))
            return c->value;
    }
    return 0;
}

static void run_until_idle(struct agent *a)
{
    pipeline_flush_all(a);
    for (int i = 0; i < 1000 && !pipeline_idle(a); i++)
        uv_run(&a->loop, UV_RUN_ONCE);
}

static char *read_file(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static rmr_batch_t *metrics(rmr_instance_t *ins, const char *schema, int n, int64_t time_ns)
{
    rmr_batch_t *b = rmr_batch_new(ins, schema);
    struct rmr_tag tag = {RMR_STR("env"), RMR_STR("dev")};
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "m%d", i);
        struct rmr_metric m = {.struct_size = sizeof m,
                               .type = RMR_METRIC_GAUGE,
                               .name = RMR_STR(name),
                               .value = i,
                               .time_ns = time_ns,
                               .tags = &tag,
                               .ntags = 1};
        if (rmr_metric_add(b, &m) != 0)
            OK(0, "add a metric");
    }
    return b;
}

static void on_wait(uv_timer_t *t)
{
}

/* delivery_expand: whole secrets, the I-th item of a list, and an item's query. */
static void test_expand(void)
{
    static const struct rmr_option opts[] = {
        {.name = "url", .type = RMR_OPT_LIST, .flags = RMR_OPT_SECRET},
        {.name = "token", .type = RMR_OPT_STRING, .flags = RMR_OPT_SECRET},
        {.name = "host", .type = RMR_OPT_STRING},
    };
    struct cfg_setting settings[] = {
        {.opt = &opts[0], .text = "http://a:1?token=tkn_a&x=1 , ,https://b/p?token=t%2Fb,http://c"},
        {.opt = &opts[1], .text = "k 1, k2"},
        {.opt = &opts[2], .text = "h"},
    };
    struct cfg_instance ci = {.settings = settings, .nsettings = 3};
    struct rmr_instance ins = {.ci = &ci};
    const char *why = NULL;
    char *s = delivery_expand(&ins, "x?t={secret:token}", 1, &why);
    IS_STR(s, "x?t=k%201%2C%20k2", "a whole secret is percent-encoded in a URL");
    free(s);
    s = delivery_expand(&ins, "x?t={secret:token#1}&u={secret:token#0}", 1, &why);
    IS_STR(s, "x?t=k2&u=k%201", "#I takes the I-th item, trimmed");
    free(s);
    s = delivery_expand(&ins, "/w?{secret:url#0?}|{secret:url#1?}|{secret:url#2?}.", 1, &why);
    IS_STR(s, "/w?token=tkn_a&x=1|token=t%2Fb|.", "#I? takes the item's query as it is");
    free(s);
    s = delivery_expand(&ins, "H: {secret:url#1}\r\n", 0, &why);
    IS_STR(s, "H: https://b/p?token=t%2Fb\r\n", "#I in a header, empty items skipped");
    free(s);
    OK(delivery_expand(&ins, "{secret:url#3}", 1, &why) == NULL, "an item past the end fails");
    CONTAINS(why, "item the secret does not have", "and says why");
    OK(delivery_expand(&ins, "{secret:url#x}", 1, &why) == NULL, "#x is not an item number");
    OK(delivery_expand(&ins, "{secret:url#}", 1, &why) == NULL, "# alone is refused");
    OK(delivery_expand(&ins, "{secret:host#0}", 1, &why) == NULL, "a non-secret still fails");
    CONTAINS(why, "not a secret", "with the reason");
    settings[1].text = "a?b c";
    OK(delivery_expand(&ins, "{secret:token#0?}", 1, &why) == NULL, "a query with a space fails");
}

int main(void)
{
    test_expand();
    snprintf(out_path, sizeof out_path, "/tmp/remora-pipeline-%d.out", (int)getpid());
    unlink(out_path);

    struct agent *a = calloc(1, sizeof *a);
    uv_loop_init(&a->loop);
    a->loop_thread = uv_thread_self();
    struct rmr_tag itags[] = {{RMR_STR("env"), RMR_STR("prod")},
                              {RMR_STR("team"), RMR_STR("core")}};
    struct cfg_instance ci[2] = {
        {.kind = RMR_KIND_INPUT, .name = "input.src", .plugin = &src_plug},
        {.kind = RMR_KIND_OUTPUT,
         .name = "output.sink",
         .plugin = &sink_plug,
         .common = {.enabled = 1,
                    .batch_records = 3,
                    .batch_bytes = 1 << 20,
                    .batch_timeout_ms = 40,
                    .queue_bytes = 1 << 20,
                    .when_full = WHEN_FULL_DROP_OLDEST,
                    .max_in_flight = 1}},
    };
    a->ninstances = 2;
    a->instances = calloc(2, sizeof *a->instances);
    for (int i = 0; i < 2; i++) {
        struct rmr_instance *ins = &a->instances[i];
        ins->h.host = &host_api;
        ins->agent = a;
        ins->ci = &ci[i];
        ins->desc = ci[i].plugin->desc;
        ins->kind = ci[i].kind;
        ins->phase = PHASE_STARTED;
    }
    struct rmr_instance *src = &a->instances[0], *sink = &a->instances[1];
    src->tags = itags;
    src->ntags = 2;
    IS_INT(pipeline_output_init(a, sink), 0, "output pipeline starts");

    IS_INT(pipeline_schema_wanted(a, "guance"), 1, "guance is wanted");
    IS_INT(pipeline_schema_wanted(a, "datadog"), 0, "datadog is not wanted");

    /* Three records reach batch_records: encoded and written without waiting for the age. */
    IS_INT(rmr_emit(src, metrics(src, NULL, 3, 0)), 0, "emit 3 schema-less metrics");
    run_until_idle(a);
    char *text = read_file(out_path);
    IS_INT(count_lines(text), 3, "three lines delivered");
    CONTAINS(text, "m0|env:dev,team:core|stamped\n",
             "record tag wins over the instance tag; missing keys added; time stamped");
    IS_UINT(counter(src, "records_in", NULL, NULL), 3, "input counted records_in");
    IS_UINT(counter(sink, "records_out", NULL, NULL), 3, "output counted records_out");

    /* Explicit timestamps are kept. */
    rmr_emit(src, metrics(src, "guance", 1, 123));
    run_until_idle(a);
    text = read_file(out_path);
    IS_INT(count_lines(text), 4, "a guance batch reaches the output that accepts guance");
    CONTAINS(text, "m0|env:dev,team:core|kept\n", "an explicit timestamp is kept");

    /* A schema nobody accepts: counted on the input as no_output. */
    rmr_emit(src, metrics(src, "datadog", 2, 0));
    IS_UINT(counter(src, "records_dropped", "no_output", NULL), 2,
            "records of an unwanted schema are counted as no_output");

    /* A kind the output does not ship: counted on the output. */
    rmr_batch_t *b = rmr_batch_new(src, NULL);
    struct rmr_log l = {.struct_size = sizeof l, .message = RMR_STR("hello")};
    rmr_log_add(b, &l);
    rmr_emit(src, b);
    IS_UINT(counter(sink, "records_dropped", "unsupported_kind", "log"), 1,
            "a log sent to a metrics-only output is counted as unsupported_kind");

    /* One record waits for the age limit (40 ms), then goes out. */
    rmr_emit(src, metrics(src, NULL, 1, 0));
    IS_INT(sink->out->npending, 1, "one batch pending below batch_records");
    uv_timer_t wait;
    uv_timer_init(&a->loop, &wait);
    uv_timer_start(&wait, on_wait, 150, 0);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 100 && !pipeline_idle(a); i++)
        uv_run(&a->loop, UV_RUN_ONCE);
    IS_INT(count_lines(read_file(out_path)), 5, "the batch timeout flushed the pending batch");

    /* The queue bound: a pending batch fills it, the next one is dropped and counted. */
    ci[1].common.batch_records = 1000;
    ci[1].common.queue_bytes = 64;
    IS_INT(rmr_emit(src, metrics(src, NULL, 1, 0)), 0, "the first batch is always accepted");
    IS_INT(rmr_emit(src, metrics(src, NULL, 2, 0)), RMR_EFULL, "a full queue answers EFULL");
    IS_UINT(counter(sink, "records_dropped", "queue_full", "metric"), 2,
            "queue_full drops counted by kind");
    run_until_idle(a);
    IS_INT(count_lines(read_file(out_path)), 6, "the accepted batch is still delivered");

    /* Task-wide tags an input published (ABI 1.2) join schema-less records after the
     * configured tags; labelled batches are left alone. */
    ci[1].common.batch_records = 1;
    ci[1].common.queue_bytes = 1 << 20;
    struct rmr_tag task[] = {{RMR_STR("task_arn"), RMR_STR("arn:t/1")},
                             {RMR_STR("team"), RMR_STR("task")},
                             {RMR_STR("region"), RMR_STR("eu-west-3")},
                             {RMR_STR("region"), RMR_STR("eu-west-3")}};
    IS_INT(rmr_global_tags_set(src, task, 4), 0, "an input publishes task tags");
    IS_UINT(a->published_tags.ntags, 3, "published tags are deduplicated");
    IS_INT(rmr_global_tags_set(src, task, 0) == 0 && a->published_tags.ntags == 0, 1,
           "publishing an empty set withdraws the tags");
    IS_INT(rmr_global_tags_set(src, task, 3), 0, "published again");
    struct rmr_tag bad = {RMR_STR(""), RMR_STR("x")};
    IS_INT(rmr_global_tags_set(src, &bad, 1), RMR_EINVAL, "a tag without key is refused");
    IS_UINT(a->published_tags.ntags, 3, "a refused set leaves the published tags as they were");
    rmr_emit(src, metrics(src, NULL, 1, 0));
    rmr_emit(src, metrics(src, "guance", 1, 0));
    run_until_idle(a);
    text = read_file(out_path);
    IS_INT(count_lines(text), 8, "both batches delivered");
    CONTAINS(text, "m0|env:dev,region:eu-west-3,task_arn:arn:t/1,team:core|stamped\n",
             "schema-less: task tags added, the configured team tag wins");
    CONTAINS(text, "\nm0|env:dev,team:core|stamped\n", "the guance batch carries no task tags");

    /* A burst is encoded job after job, each taking batch_records (3) or more, the rest
     * waiting: seven batches of two records emitted while the loop is busy elsewhere go as
     * 2 (the first job, started at once), then 2, 2, and the last batch at its age limit. */
    ci[1].common.batch_records = 3;
    nenc = 0;
    for (int i = 0; i < 7; i++)
        rmr_emit(src, metrics(src, NULL, 2, 0));
    IS_INT(sink->out->encoding, 1, "burst: the first job started");
    IS_UINT(sink->out->npending, 5, "burst: five batches wait for it");
    uv_timer_start(&wait, on_wait, 150, 0);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 100 && !pipeline_idle(a); i++)
        uv_run(&a->loop, UV_RUN_ONCE);
    IS_UINT(nenc, 4, "burst: four encode jobs");
    IS_INT(enc_batches[0] == 2 && enc_batches[1] == 2 && enc_batches[2] == 2 && enc_batches[3] == 1,
           1, "burst: jobs of 2, 2, 2 and 1 batches, not one job for all that waited");
    IS_INT(count_lines(read_file(out_path)), 22, "burst: all 14 records delivered");

    /* An empty batch is fine; after the drain starts, emits are refused and counted. */
    IS_INT(rmr_emit(src, rmr_batch_new(src, NULL)), 0, "an empty batch is accepted");
    a->phase = AGENT_DRAINING;
    IS_INT(rmr_emit(src, metrics(src, NULL, 4, 0)), RMR_ESTOPPED, "emit while draining");
    IS_UINT(counter(src, "records_dropped", "stopped", NULL), 4, "stopped drops counted");

    pipeline_output_close(sink);
    uv_close((uv_handle_t *)&wait, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    IS_INT(uv_loop_close(&a->loop), 0, "every handle closed");
    for (int i = 0; i < 2; i++) {
        counters_release(&a->instances[i].counters);
        tagset_release(&a->instances[i].published);
    }
    tagset_release(&a->published_tags);
    free(a->instances);
    free(a);
    unlink(out_path);
    return tap_done();
}
