/* core/record: batches of records in an arena, with per-batch interning and sorted tag sets.
 *
 * This module has no libuv dependency: the agent and the fake host (sdk/testing) both use it.
 * A batch is built by one thread, then sealed (batch_seal) and shared read-only by refcount
 * among outputs and worker threads.
 */
#ifndef REMORA_CORE_BATCH_H
#define REMORA_CORE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <remora/plugin.h>

/* A bump allocator. Chunks grow geometrically; memory is freed all at once. */
struct arena {
    struct arena_chunk *head;
    size_t used_bytes;  /* bytes handed out */
    size_t total_bytes; /* bytes of chunks allocated, the figure counted against bounds */
    size_t limit_bytes; /* 0: unbounded; else allocations beyond it fail */
};

void arena_init(struct arena *a, size_t limit_bytes);
void arena_release(struct arena *a);
/* Returns len bytes aligned to 8, or NULL when out of memory or over the limit. */
void *arena_alloc(struct arena *a, size_t len);
/* Copies s[0..len) and a NUL terminator; NULL on failure. */
char *arena_strndup(struct arena *a, const char *s, size_t len);

struct intern_table; /* private to batch.c */

struct batch_rec {
    uint32_t kind; /* enum rmr_record_kind */
    uint32_t reserved_;
    void *data; /* a struct rmr_metric / rmr_log / ... of the host's size, in the arena */
};

struct rmr_batch {
    struct rmr_handle h; /* must stay first: the SDK reaches the host table through it */
    int refcount;        /* atomic: batch_ref/batch_unref */
    uint32_t count;
    uint32_t cap;
    uint32_t sealed;
    const char *schema; /* in the arena, or NULL */
    struct batch_rec *recs;
    struct arena arena;
    struct intern_table *strings;
    struct intern_table *tagsets;
    void *origin; /* the emitting instance (core use); NULL in tests */
};

/* Creates an empty batch whose handle reaches host. schema may be NULL; copied. limit_bytes
 * bounds the arena (0: unbounded). Returns owned (refcount 1) or NULL. */
struct rmr_batch *batch_new(const struct rmr_host_api *host, const char *schema,
                            size_t limit_bytes);
void batch_ref(struct rmr_batch *b);
/* Drops a reference; frees at zero. NULL is a no-op. Thread: any. */
void batch_unref(struct rmr_batch *b);

/* Copies a record of the given kind into the batch: strings interned in the arena, tag sets
 * sorted by (key, value) and deduplicated, fields and attributes copied, sketch bins copied.
 * time_ns 0 is left 0 (the host fills it before). The record struct may be smaller than the
 * host's (older plugin); missing members read as zero.
 * Errors: RMR_EINVAL (unknown kind, struct_size below the 1.0 size, empty metric name,
 * unknown metric type, DISTRIBUTION without sketch, nbins without keys), RMR_ENOMEM,
 * RMR_EPERM (sealed). */
int batch_add(struct rmr_batch *b, uint32_t kind, const void *record);

uint32_t batch_count(const struct rmr_batch *b);
const char *batch_schema(const struct rmr_batch *b);
uint32_t batch_kind(const struct rmr_batch *b, uint32_t index);
/* Fills view (caller sets view's struct_size; the host writes at most that many bytes).
 * Errors: RMR_ENOENT, RMR_EINVAL (other kind or struct_size too small). */
int batch_get(const struct rmr_batch *b, uint32_t index, uint32_t kind, void *view);
/* Bytes the batch holds, for batching and memory bounds. */
size_t batch_bytes(const struct rmr_batch *b);

/* Adds tags to every record's tag set (spans: to meta) unless the record already has a tag
 * with the same key (the record's own tags win). Keeps sets sorted and deduplicated; records
 * sharing a tag set keep sharing the merged one. tags is borrowed. Errors: RMR_ENOMEM
 * (the batch is unchanged for records not yet merged), RMR_EPERM (sealed). */
int batch_merge_tags(struct rmr_batch *b, const struct rmr_tag *tags, uint32_t ntags);

/* Sets time_ns (spans: start_ns) of every record that has 0 to now_ns. Before seal only: the
 * host stamps records at emit. */
void batch_stamp_time(struct rmr_batch *b, int64_t now_ns);

/* Makes the batch read-only; later adds and merges fail with RMR_EPERM. */
void batch_seal(struct rmr_batch *b);

/* Sorts and deduplicates tags in place by (key, value); returns the new count. */
uint32_t tags_sort_unique(struct rmr_tag *tags, uint32_t ntags);

/* Record sizes for the host's own struct versions (the 1.0 sizes are the minimums). */
size_t record_struct_size(uint32_t kind);
size_t record_struct_min_size(uint32_t kind);
/* "metric", "log", "span", "event", "check", "object", or "unknown". */
const char *record_kind_name(uint32_t kind);

#endif
