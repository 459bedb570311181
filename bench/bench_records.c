/* Throughput of the record model, the path every input takes: batch_add of metrics with tags
 * (interning, tag sorting and set sharing), reading views back, tag merging at emit, and JSON
 * string quoting. Reported, not asserted.
 *
 *   ./build/bench/bench_records [METRICS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record/batch.h"
#include "util/buf.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const struct rmr_host_api host = {.struct_size = sizeof host, .abi_major = RMR_ABI_MAJOR};

int main(int argc, char **argv)
{
    long total = argc > 1 ? strtol(argv[1], NULL, 10) : 2000000;
    const int per_batch = 1000, names = 1000, variants = 10;
    /* Strings prepared beforehand, so the timing is the record model's alone. */
    static char name[1000][48], v1[10][16], v2[3][16];
    for (int i = 0; i < names; i++)
        snprintf(name[i], sizeof name[i], "app.request.latency.%d", i);
    for (int i = 0; i < variants; i++)
        snprintf(v1[i], sizeof v1[i], "endpoint_%d", i);
    for (int i = 0; i < 3; i++)
        snprintf(v2[i], sizeof v2[i], "pod-%d", i);
    struct rmr_tag tags[3];
    struct rmr_tag global[2] = {{RMR_STR("env"), RMR_STR("prod")},
                                {RMR_STR("task_arn"), RMR_STR("arn:aws:ecs:eu-west-1:1:task/x")}};

    double add_s = 0, get_s = 0, merge_s = 0;
    size_t bytes = 0;
    long done = 0;
    double sink = 0;
    while (done < total) {
        struct rmr_batch *b = batch_new(&host, NULL, 0);
        double t0 = now_s();
        for (int i = 0; i < per_batch; i++, done++) {
            long k = done % (names * variants);
            /* Tags arrive unsorted, as clients send them. */
            tags[0] = (struct rmr_tag){RMR_STR("service"), RMR_STR("checkout")};
            tags[1] = (struct rmr_tag){RMR_STR("endpoint"), RMR_STR(v1[k / names])};
            tags[2] = (struct rmr_tag){RMR_STR("pod"), RMR_STR(v2[(k / names) % 3])};
            struct rmr_metric m = {.struct_size = sizeof m,
                                   .type = RMR_METRIC_GAUGE,
                                   .name = RMR_STR(name[k % names]),
                                   .value = (double)i,
                                   .time_ns = 1,
                                   .tags = tags,
                                   .ntags = 3};
            if (batch_add(b, RMR_REC_METRIC, &m) != 0) {
                fprintf(stderr, "batch_add failed\n");
                return 1;
            }
        }
        double t1 = now_s();
        if (batch_merge_tags(b, global, 2) != 0)
            return 1;
        double t2 = now_s();
        for (uint32_t i = 0; i < batch_count(b); i++) {
            struct rmr_metric v = {.struct_size = sizeof v};
            batch_get(b, i, RMR_REC_METRIC, &v);
            sink += v.value + v.ntags;
        }
        double t3 = now_s();
        add_s += t1 - t0;
        merge_s += t2 - t1;
        get_s += t3 - t2;
        bytes += batch_bytes(b);
        batch_unref(b);
    }

    struct dbuf d;
    dbuf_init(&d, 0);
    const char *line = "GET /api/v1/orders?id=42 \"ok\" caf\xc3\xa9 \t latency=12ms";
    size_t len = strlen(line);
    long reps = 2000000;
    double t0 = now_s();
    for (long i = 0; i < reps; i++) {
        d.len = 0;
        dbuf_json_str(&d, line, len);
    }
    double json_s = now_s() - t0;
    dbuf_release(&d);

    printf("records: %ld metrics with 3 tags, %d per batch, %d contexts\n", total, per_batch,
           names * variants);
    printf("batch_add:        %7.1f ns/metric  (%.2f M metrics/s)\n", add_s * 1e9 / (double)total,
           (double)total / add_s / 1e6);
    printf("merge 2 tags:     %7.1f ns/metric\n", merge_s * 1e9 / (double)total);
    printf("read view:        %7.1f ns/metric\n", get_s * 1e9 / (double)total);
    printf("batch memory:     %7.1f bytes/metric\n", (double)bytes / (double)total);
    printf("json quoting:     %7.1f MB/s (%zu-byte strings)\n",
           (double)(len * (size_t)reps) / json_s / 1e6, len);
    return sink < 0;
}
