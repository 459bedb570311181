/* Cost of one ECS poll in plugins/lib/ecsmeta, the work ecs_fargate and container each do every
 * interval once both GETs have answered: parse /task, parse /task/stats, and for every
 * container find its stats entry and compute ecs_cpu_percent, ecs_working_set and
 * ecs_mem_limit. Not included: the HTTP fetches, the records built and emitted (see
 * bench/ecs_poll.py for the whole agent).
 *
 * Documents (test/fixtures/ecs):
 *   v1 fixture  dd_fargate_v4_task.json + dd_fargate_v4_task_stats_cgroupv1.json (2 containers)
 *   v2 fixture  fargate_cgroupv2_task.json + dd_agent_v4_task_stats_cgroupv2.json (2 containers;
 *               every "limit" is 18446744073709551615, so the parser's int64 rewrite copies it)
 *   10 gen.     10 containers (the ECS maximum per task definition) made from the v1 fixture's
 *               containers and stats entries with new ids and names, written compact (as
 *               Go's json.Marshal writes them)
 *
 * Memory per poll: jansson's allocations, counted through json_set_alloc_funcs (calls, bytes,
 * the peak of the live DOM), and the bytes the parsed structs hold until the next poll
 * (glibc mallinfo2() in-use delta, chunk overhead included). The int64 rewrite's copy of the
 * body is a plain malloc: it shows in neither column. Reported, not asserted.
 *
 *   ./build/bench/bench_ecsmeta [POLLS_PER_ROUND (500)] [FIXTURE_DIR]
 */
#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ecsmeta/ecsmeta.h"

#ifndef BENCH_FIXTURES
#define BENCH_FIXTURES "test/fixtures/ecs"
#endif

#define REPEATS 9

struct doc {
    const char *label;
    char *task;
    size_t task_len;
    char *stats;
    size_t stats_len;
};

struct timing {
    double task_us, stats_us, formulas_us, poll_us; /* per poll */
    double poll_med_us;
};

struct allocs {
    size_t calls, bytes, live, peak;
};

/* Only this file's main() and the jansson hooks below touch it: the bench is single-threaded. */
static struct allocs jcount;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A size header in front of each jansson block, so free() knows what leaves the live DOM. */
#define HDR 16

static void *count_malloc(size_t n)
{
    unsigned char *p = malloc(n + HDR);
    if (p == NULL)
        return NULL;
    memcpy(p, &n, sizeof n);
    jcount.calls++;
    jcount.bytes += n;
    jcount.live += n;
    if (jcount.live > jcount.peak)
        jcount.peak = jcount.live;
    return p + HDR;
}

static void count_free(void *ptr)
{
    if (ptr == NULL)
        return;
    unsigned char *p = (unsigned char *)ptr - HDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    jcount.live -= n;
    free(p);
}

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "bench_ecsmeta: cannot open %s (pass the fixture directory)\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "bench_ecsmeta: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static char *dump(json_t *root, size_t *len)
{
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s == NULL) {
        fprintf(stderr, "bench_ecsmeta: json_dumps failed\n");
        exit(2);
    }
    *len = strlen(s);
    return s;
}

/* A task of `count` containers and its stats: the fixture's containers in turn, each with a
 * DockerId and Name of its own, and the stats entry of its source container under the new id. */
static void generate(const struct doc *src, int count, struct doc *out)
{
    json_error_t jerr;
    json_t *task = json_loadb(src->task, src->task_len, 0, &jerr);
    json_t *stats = json_loadb(src->stats, src->stats_len, 0, &jerr);
    json_t *from = task != NULL ? json_object_get(task, "Containers") : NULL;
    if (stats == NULL || json_array_size(from) == 0) {
        fprintf(stderr, "bench_ecsmeta: cannot generate from the fixture: %s\n", jerr.text);
        exit(2);
    }
    const char *arn = json_string_value(json_object_get(task, "TaskARN"));
    const char *task_id = strrchr(arn, '/') + 1;
    json_t *cs = json_array();
    json_t *st = json_object();
    for (int i = 0; i < count; i++) {
        json_t *c0 = json_array_get(from, (size_t)i % json_array_size(from));
        json_t *s0 = json_object_get(stats, json_string_value(json_object_get(c0, "DockerId")));
        char id[128], name[32], dname[64];
        snprintf(id, sizeof id, "%s-%010d", task_id, 1000000007 + i * 7919);
        snprintf(name, sizeof name, "app-%02d", i);
        snprintf(dname, sizeof dname, "ecs-bench-1-app-%02d-%08x", i, 0x9e3779b9u * (unsigned)i);
        json_t *c = json_deep_copy(c0);
        json_object_set_new(c, "DockerId", json_string(id));
        json_object_set_new(c, "Name", json_string(name));
        json_object_set_new(c, "DockerName", json_string(dname));
        json_t *labels = json_object_get(c, "Labels");
        if (json_is_object(labels))
            json_object_set_new(labels, "com.amazonaws.ecs.container-name", json_string(name));
        json_array_append_new(cs, c);
        json_t *s = json_deep_copy(s0);
        if (json_is_object(s)) {
            json_object_set_new(s, "id", json_string(id));
            json_object_set_new(s, "name", json_string(dname));
        }
        json_object_set_new(st, id, s != NULL ? s : json_null());
    }
    json_object_set_new(task, "Containers", cs);
    out->task = dump(task, &out->task_len);
    out->stats = dump(st, &out->stats_len);
    json_decref(task);
    json_decref(stats);
    json_decref(st);
}

/* One poll. Returns the containers whose CPU % could be computed; *sink keeps the formulas'
 * results alive. The parsed documents are handed back in *t and *s (the caller frees them). */
static int poll_once(const struct doc *d, struct ecs_task *t, struct ecs_stats_set *s, double *sink,
                     double *ts)
{
    char err[256];
    uint32_t nbad = 0;
    ts[0] = now_s();
    if (ecs_task_parse(d->task, d->task_len, t, err, sizeof err) != 0) {
        fprintf(stderr, "bench_ecsmeta: %s: /task: %s\n", d->label, err);
        exit(1);
    }
    ts[1] = now_s();
    if (ecs_stats_parse(d->stats, d->stats_len, s, &nbad, err, sizeof err) != 0) {
        fprintf(stderr, "bench_ecsmeta: %s: /task/stats: %s\n", d->label, err);
        exit(1);
    }
    ts[2] = now_s();
    int cpu = 0;
    for (uint32_t i = 0; i < t->ncontainers; i++) {
        const struct ecs_container *c = &t->containers[i];
        if (!c->normal)
            continue;
        const struct ecs_stats *st = ecs_stats_find(s, c->docker_id);
        if (st == NULL || !st->present)
            continue;
        double pct = 0;
        if (ecs_cpu_percent(st, &pct))
            cpu++;
        *sink += pct + (double)ecs_working_set(st) + (double)ecs_mem_limit(st, c, t);
    }
    ts[3] = now_s();
    return cpu;
}

static int cmp_poll(const void *a, const void *b)
{
    double x = ((const struct timing *)a)->poll_us, y = ((const struct timing *)b)->poll_us;
    return (x > y) - (x < y);
}

/* REPEATS rounds of `polls` polls after one round of warm-up: the fastest round, whose parts
 * are the least disturbed by the rest of the machine, and the median round's whole poll. */
static struct timing time_doc(const struct doc *d, long polls, double *sink)
{
    struct timing round[REPEATS];
    for (int r = -1; r < REPEATS; r++) { /* r == -1: warm-up */
        double a = 0, b = 0, c = 0, t0 = now_s();
        for (long i = 0; i < polls; i++) {
            struct ecs_task t;
            struct ecs_stats_set s;
            double ts[4];
            poll_once(d, &t, &s, sink, ts);
            ecs_task_free(&t);
            ecs_stats_set_free(&s);
            a += ts[1] - ts[0];
            b += ts[2] - ts[1];
            c += ts[3] - ts[2];
        }
        double total = now_s() - t0, k = 1e6 / (double)polls;
        if (r >= 0)
            round[r] = (struct timing){a * k, b * k, c * k, total * k, 0};
    }
    qsort(round, REPEATS, sizeof round[0], cmp_poll);
    struct timing best = round[0];
    best.poll_med_us = round[REPEATS / 2].poll_us;
    return best;
}

static size_t in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

int main(int argc, char **argv)
{
    long polls = argc > 1 ? strtol(argv[1], NULL, 10) : 500;
    const char *dir = argc > 2 ? argv[2] : BENCH_FIXTURES;
    if (polls <= 0)
        polls = 500;

    struct doc docs[3] = {{.label = "v1 fixture"}, {.label = "v2 fixture"}, {.label = "10 gen."}};
    docs[0].task = slurp(dir, "dd_fargate_v4_task.json", &docs[0].task_len);
    docs[0].stats = slurp(dir, "dd_fargate_v4_task_stats_cgroupv1.json", &docs[0].stats_len);
    docs[1].task = slurp(dir, "fargate_cgroupv2_task.json", &docs[1].task_len);
    docs[1].stats = slurp(dir, "dd_agent_v4_task_stats_cgroupv2.json", &docs[1].stats_len);
    generate(&docs[0], 10, &docs[2]);

    double sink = 0;
    printf(
        "ecsmeta poll: parse /task + /task/stats + cpu %%, working set, mem limit per "
        "container;\n%d rounds of %ld polls: the fastest round (its parts, poll, polls/s) and the "
        "median round's poll\n\n",
        REPEATS, polls);
    printf("%-11s %5s %5s %7s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %9s\n", "documents", "ctrs",
           "cpu%", "task B", "stats B", "task us", "stats us", "formulas", "poll us", "poll us",
           "polls/s", "jansson", "json B", "peak DOM", "held B");
    printf("%-11s %5s %5s %7s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %9s\n", "", "", "", "", "",
           "", "", "us", "", "median", "", "allocs", "", "B", "");
    for (int i = 0; i < 3; i++) {
        const struct doc *d = &docs[i];
        struct timing tm = time_doc(d, polls, &sink);

        /* One counted poll: jansson through the hooks, the structs through mallinfo2. */
        json_set_alloc_funcs(count_malloc, count_free);
        memset(&jcount, 0, sizeof jcount);
        struct ecs_task t;
        struct ecs_stats_set s;
        double ts[4];
        size_t before = in_use();
        int cpu = poll_once(d, &t, &s, &sink, ts);
        size_t held = in_use() - before;
        json_set_alloc_funcs(malloc, free);
        uint32_t normal = 0;
        for (uint32_t k = 0; k < t.ncontainers; k++)
            normal += (uint32_t)t.containers[k].normal;
        ecs_task_free(&t);
        ecs_stats_set_free(&s);

        printf("%-11s %5u %5d %7zu %8zu %8.2f %8.2f %8.3f %8.2f %8.2f %8.0f %8zu %8zu %8zu "
               "%9zu\n",
               d->label, normal, cpu, d->task_len, d->stats_len, tm.task_us, tm.stats_us,
               tm.formulas_us, tm.poll_us, tm.poll_med_us, 1e6 / tm.poll_us, jcount.calls,
               jcount.bytes, jcount.peak, held);
    }
    printf("\nctrs: normal containers; cpu%%: those with a CPU %% (both deltas > 0). poll us is "
           "the whole loop (parse, formulas, frees);\njansson allocs/json B: one poll's jansson "
           "allocations (both documents); peak DOM: the larger document's live tree;\nheld B: "
           "what the parsed structs keep until the next poll (malloc in-use, overhead "
           "included).\n");
    for (int i = 0; i < 3; i++) {
        free(docs[i].task);
        free(docs[i].stats);
    }
    return sink < 0;
}
