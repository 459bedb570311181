/* Cost of the datadog output's encode(): one DogStatsD flush of 10,000 contexts (8,000 series
 * of gauges, rates and counts with 5 tags each, 2,000 distributions of ~40 bins) turned into
 * /api/v2/series (or v1) JSON and /api/beta/sketches protobuf payloads, compressed as
 * configured, through the fake host (no HTTP). Reported per record: CPU time of encode, bytes
 * before compression (compression = none), bytes as sent, and payloads per flush. Not
 * included: building the records (the dogstatsd input's flush), sending. Reported, not
 * asserted.
 *
 *   ./build/bench/bench_datadog [FLUSHES (20)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fakehost.h"
#include <remora/plugin.h>

#define SERIES   8000
#define SKETCHES 2000
#define T0       INT64_C(1767225600000000000)

const struct rmr_plugin *rmr_plugin_describe(void);

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One flush's records: the same shapes every run (a fixed xorshift seed). */
static rmr_batch_t *flush_batch(struct rmr_fakehost *fh)
{
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    uint64_t x = 0x9e3779b97f4a7c15u;
    char name[64], svc[32], ep[48], ver[16];
    int32_t keys[64];
    uint32_t counts[64];
    for (int i = 0; i < SERIES + SKETCHES; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        snprintf(name, sizeof name, "app.%s.metric_%03d", i < SERIES ? "request" : "latency",
                 i % 1000);
        snprintf(svc, sizeof svc, "svc-%d", i % 7);
        snprintf(ep, sizeof ep, "/api/v%d/items/%d", i % 3, (i / 1000) % 10);
        snprintf(ver, sizeof ver, "1.%d.0", i % 4);
        struct rmr_tag tags[] = {
            {RMR_STR("env"), RMR_STR("prod")},
            {RMR_STR("service"), RMR_STR(svc)},
            {RMR_STR("endpoint"), RMR_STR(ep)},
            {RMR_STR("version"), RMR_STR(ver)},
            {RMR_STR("task_arn"),
             RMR_STR("arn:aws:ecs:us-east-1:123456789012:task/prod/0123456789abcdef0123456789")},
        };
        struct rmr_metric m = {
            .struct_size = sizeof m,
            .name = RMR_STR(name),
            .time_ns = T0,
            .tags = tags,
            .ntags = 5,
        };
        struct rmr_sketch sk = {.struct_size = sizeof sk};
        if (i < SERIES) {
            m.type = i % 3 == 0   ? RMR_METRIC_GAUGE
                     : i % 3 == 1 ? RMR_METRIC_RATE
                                  : RMR_METRIC_COUNT;
            m.interval_ms = 10000;
            m.value = (double)(x % 100000) / 7.0;
        } else {
            uint32_t n = 30 + (uint32_t)(x % 20);
            int32_t k = 1338 + (int32_t)(x % 300);
            for (uint32_t j = 0; j < n; j++) {
                keys[j] = k + (int32_t)j * 3;
                counts[j] = 1 + (uint32_t)((x >> j) % 50);
                sk.count += counts[j];
            }
            sk.nbins = n;
            sk.keys = keys;
            sk.counts = counts;
            sk.min = 1.5;
            sk.max = 2500.25;
            sk.sum = (double)sk.count * 140.5;
            m.type = RMR_METRIC_DISTRIBUTION;
            m.sketch = &sk;
        }
        if (rmr_metric_add(b, &m) < 0) {
            fprintf(stderr, "bench_datadog: cannot add record %d\n", i);
            exit(1);
        }
    }
    return b;
}

static void run(const char *label, const char *conf, int flushes)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_fakehost_set_hostname(fh, "ip-10-0-1-23.ec2.internal");
    char err[256] = "";
    rmr_instance_t *ins = NULL;
    if (rmr_fakehost_create(fh, rmr_plugin_describe(), conf, &ins, err, sizeof err) != 0) {
        fprintf(stderr, "bench_datadog: %s\n", err);
        exit(1);
    }
    rmr_batch_t *b = flush_batch(fh);
    const rmr_batch_t *batches[] = {b};
    double cpu = 0;
    size_t wire = 0, series_wire = 0;
    uint32_t payloads = 0;
    for (int f = 0; f < flushes; f++) {
        rmr_fakehost_clear_payloads(fh);
        double c0 = cpu_s();
        if (rmr_fakehost_encode(fh, ins, batches, 1) != 0) {
            fprintf(stderr, "bench_datadog: encode failed\n");
            exit(1);
        }
        cpu += cpu_s() - c0;
        payloads = rmr_fakehost_payload_count(fh);
        wire = series_wire = 0;
        for (uint32_t p = 0; p < payloads; p++) {
            const struct rmr_fakehost_payload *pl = rmr_fakehost_payload(fh, p);
            wire += pl->len;
            if (strstr(pl->spec.endpoint, "series") != NULL)
                series_wire += pl->len;
        }
    }
    const double n = SERIES + SKETCHES;
    printf("%-14s %8.3f %9.2f %10.1f %10.1f %9.1f %8u\n", label, cpu / flushes * 1e3,
           cpu / flushes / n * 1e6, (double)series_wire / SERIES,
           (double)(wire - series_wire) / SKETCHES, (double)wire / 1024.0, payloads);
    rmr_batch_free(b);
    rmr_fakehost_destroy(fh, ins);
    rmr_fakehost_free(fh);
}

int main(int argc, char **argv)
{
    int flushes = argc > 1 ? atoi(argv[1]) : 20;
    if (flushes < 1)
        flushes = 1;
    printf("datadog encode: one flush = %d series + %d sketches (5 tags each), %d flushes\n",
           SERIES, SKETCHES, flushes);
    printf("%-14s %8s %9s %10s %10s %9s %8s\n", "config", "ms/flush", "us/record", "B/series",
           "B/sketch", "KiB sent", "payloads");
    static const char base[] = "api_key = 0123456789abcdef0123456789abcdef\nvalidate = false\n";
    char conf[256];
    static const struct {
        const char *label, *extra;
    } configs[] = {
        {"v2 none", "compression = none\n"},
        {"v2 zstd", "compression = zstd\n"},
        {"v2 gzip", "compression = gzip\n"},
        {"v2 deflate", "compression = deflate\n"},
        {"v1 none", "api_version = v1\ncompression = none\n"},
        {"v1 deflate", "api_version = v1\ncompression = deflate\n"},
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        snprintf(conf, sizeof conf, "%s%s", base, configs[i].extra);
        run(configs[i].label, conf, flushes);
    }
    return 0;
}
