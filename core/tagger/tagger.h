/* core/tagger: owned tag sets, the entity -> tags map, and the task-wide tags that platform
 * inputs publish (ABI 1.2).
 *
 * libuv-free (in remora_base), so the agent and the fake host share it. The tagger is read
 * from any thread (a DogStatsD reader thread, the thread pool) and written from the loop, so
 * it holds a read-write lock; a lookup hands the caller the tags under the read lock.
 */
#ifndef REMORA_CORE_TAGGER_H
#define REMORA_CORE_TAGGER_H

#include <stddef.h>
#include <stdint.h>

#include <remora/plugin.h>

/* A tag set in one heap block: tags sorted by (key, value), unique, strings inside the block. */
struct tagset {
    struct rmr_tag *tags; /* the block; NULL when empty */
    uint32_t ntags;
    uint32_t reserved_;
};

/* Replaces *set with a sorted, deduplicated copy of tags. On error *set is unchanged.
 * Errors: RMR_EINVAL (a tag with an empty key, tags NULL with ntags > 0), RMR_ENOMEM. */
int tagset_assign(struct tagset *set, const struct rmr_tag *tags, uint32_t ntags);
void tagset_release(struct tagset *set);

/* The union of sets in order: a key already taken by an earlier set is not added again.
 * Replaces *out. Errors: RMR_ENOMEM (*out unchanged). */
int tagset_union(struct tagset *out, const struct tagset *const *sets, uint32_t nsets);

struct tagger;

/* Returns owned, or NULL when out of memory. */
struct tagger *tagger_new(void);
/* NULL is a no-op. */
void tagger_free(struct tagger *t);
/* Sets entity's tags (copied), replacing any; ntags 0 forgets the entity.
 * Errors: RMR_EINVAL (empty entity, bad tags), RMR_ENOMEM. Any thread. */
int tagger_put(struct tagger *t, const char *entity, size_t len, const struct rmr_tag *tags,
               uint32_t ntags);
/* Calls cb with the entity's tags under the read lock and returns 0, or RMR_ENOENT. */
int tagger_get(struct tagger *t, const char *entity, size_t len, rmr_tagger_cb cb, void *arg);
/* Entities known. */
uint32_t tagger_count(struct tagger *t);

#endif
