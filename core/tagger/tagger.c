/* core/tagger: see tagger.h. */
#include "tagger/tagger.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "record/batch.h"

/* ---- tag sets ---------------------------------------------------------------------------------
 */

static int tags_valid(const struct rmr_tag *tags, uint32_t ntags)
{
    if (ntags > 0 && tags == NULL)
        return 0;
    for (uint32_t i = 0; i < ntags; i++) {
        if (tags[i].key.len == 0 || tags[i].key.ptr == NULL)
            return 0;
        if (tags[i].value.len > 0 && tags[i].value.ptr == NULL)
            return 0;
    }
    return 1;
}

/* Copies tags (already sorted and unique) into one block: the array, then the strings. */
static struct rmr_tag *block_copy(const struct rmr_tag *tags, uint32_t ntags)
{
    size_t bytes = (size_t)ntags * sizeof(struct rmr_tag);
    for (uint32_t i = 0; i < ntags; i++)
        bytes += (size_t)tags[i].key.len + tags[i].value.len + 2;
    struct rmr_tag *out = malloc(bytes);
    if (out == NULL)
        return NULL;
    char *p = (char *)(out + ntags);
    for (uint32_t i = 0; i < ntags; i++) {
        const struct rmr_str *src[2] = {&tags[i].key, &tags[i].value};
        struct rmr_str *dst[2] = {&out[i].key, &out[i].value};
        for (int k = 0; k < 2; k++) {
            if (src[k]->len > 0)
                memcpy(p, src[k]->ptr, src[k]->len);
            p[src[k]->len] = '\0';
            *dst[k] = (struct rmr_str){p, src[k]->len, 0};
            p += src[k]->len + 1;
        }
    }
    return out;
}

int tagset_assign(struct tagset *set, const struct rmr_tag *tags, uint32_t ntags)
{
    if (!tags_valid(tags, ntags))
        return RMR_EINVAL;
    struct rmr_tag *tmp = NULL, *block = NULL;
    uint32_t n = 0;
    if (ntags > 0) {
        tmp = malloc((size_t)ntags * sizeof *tmp);
        if (tmp == NULL)
            return RMR_ENOMEM;
        memcpy(tmp, tags, (size_t)ntags * sizeof *tmp);
        n = tags_sort_unique(tmp, ntags);
        block = block_copy(tmp, n);
        free(tmp);
        if (block == NULL)
            return RMR_ENOMEM;
    }
    free(set->tags);
    set->tags = block;
    set->ntags = n;
    return 0;
}

void tagset_release(struct tagset *set)
{
    free(set->tags);
    set->tags = NULL;
    set->ntags = 0;
}

static int key_in(const struct rmr_tag *tags, uint32_t n, const struct rmr_str *key)
{
    for (uint32_t i = 0; i < n; i++)
        if (tags[i].key.len == key->len && memcmp(tags[i].key.ptr, key->ptr, key->len) == 0)
            return 1;
    return 0;
}

int tagset_union(struct tagset *out, const struct tagset *const *sets, uint32_t nsets)
{
    size_t total = 0;
    for (uint32_t s = 0; s < nsets; s++)
        total += sets[s]->ntags;
    if (total > UINT32_MAX)
        return RMR_ENOMEM;
    struct rmr_tag *tmp = total > 0 ? malloc(total * sizeof *tmp) : NULL;
    if (total > 0 && tmp == NULL)
        return RMR_ENOMEM;
    uint32_t n = 0;
    for (uint32_t s = 0; s < nsets; s++) {
        uint32_t before = n; /* keys of earlier sets win; a set may repeat its own key */
        for (uint32_t i = 0; i < sets[s]->ntags; i++)
            if (!key_in(tmp, before, &sets[s]->tags[i].key))
                tmp[n++] = sets[s]->tags[i];
    }
    int rc = tagset_assign(out, tmp, n);
    free(tmp);
    return rc;
}

/* ---- the tagger -------------------------------------------------------------------------------
 */

struct entry {
    struct entry *next;
    uint64_t hash;
    char *entity; /* NUL-terminated, len bytes */
    size_t len;
    struct tagset tags;
};

struct tagger {
    pthread_rwlock_t lock;
    struct entry **buckets;
    size_t nbuckets; /* a power of two */
    uint32_t count;
};

/* FNV-1a: entities are short ids, looked up rarely enough. */
static uint64_t hash_entity(const char *s, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

struct tagger *tagger_new(void)
{
    struct tagger *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    if (t->buckets == NULL || pthread_rwlock_init(&t->lock, NULL) != 0) {
        free(t->buckets);
        free(t);
        return NULL;
    }
    return t;
}

static void entry_free(struct entry *e)
{
    tagset_release(&e->tags);
    free(e->entity);
    free(e);
}

void tagger_free(struct tagger *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct entry *e = t->buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            entry_free(e);
            e = next;
        }
    }
    free(t->buckets);
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

static struct entry **find(struct tagger *t, uint64_t h, const char *entity, size_t len)
{
    struct entry **pp = &t->buckets[h & (t->nbuckets - 1)];
    while (*pp != NULL &&
           !((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->entity, entity, len) == 0))
        pp = &(*pp)->next;
    return pp;
}

/* Doubles the buckets when the table is fuller than one entry per bucket; a failed grow only
 * makes chains longer. Write lock held. */
static void maybe_grow(struct tagger *t)
{
    if (t->count < t->nbuckets || t->nbuckets > (SIZE_MAX / sizeof(struct entry *)) / 2)
        return;
    size_t n = t->nbuckets * 2;
    struct entry **b = calloc(n, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct entry *e = t->buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

int tagger_put(struct tagger *t, const char *entity, size_t len, const struct rmr_tag *tags,
               uint32_t ntags)
{
    if (entity == NULL || len == 0 || !tags_valid(tags, ntags))
        return RMR_EINVAL;
    uint64_t h = hash_entity(entity, len);
    struct tagset fresh = {0};
    if (ntags > 0) {
        int rc = tagset_assign(&fresh, tags, ntags);
        if (rc < 0)
            return rc;
    }
    struct entry *add = NULL;
    pthread_rwlock_wrlock(&t->lock);
    struct entry **pp = find(t, h, entity, len);
    if (*pp != NULL) {
        struct entry *e = *pp;
        if (ntags == 0) {
            *pp = e->next;
            t->count--;
            pthread_rwlock_unlock(&t->lock);
            entry_free(e);
            return 0;
        }
        struct tagset old = e->tags;
        e->tags = fresh;
        pthread_rwlock_unlock(&t->lock);
        tagset_release(&old);
        return 0;
    }
    pthread_rwlock_unlock(&t->lock);
    if (ntags == 0)
        return 0;

    add = calloc(1, sizeof *add);
    char *name = malloc(len + 1);
    if (add == NULL || name == NULL) {
        free(add);
        free(name);
        tagset_release(&fresh);
        return RMR_ENOMEM;
    }
    memcpy(name, entity, len);
    name[len] = '\0';
    *add = (struct entry){.hash = h, .entity = name, .len = len, .tags = fresh};

    pthread_rwlock_wrlock(&t->lock);
    pp = find(t, h, entity, len); /* another writer may have added it meanwhile */
    if (*pp != NULL) {
        struct tagset old = (*pp)->tags;
        (*pp)->tags = add->tags;
        add->tags = old;
        pthread_rwlock_unlock(&t->lock);
        entry_free(add);
        return 0;
    }
    *pp = add;
    t->count++;
    maybe_grow(t);
    pthread_rwlock_unlock(&t->lock);
    return 0;
}

int tagger_get(struct tagger *t, const char *entity, size_t len, rmr_tagger_cb cb, void *arg)
{
    if (entity == NULL || len == 0)
        return RMR_ENOENT;
    uint64_t h = hash_entity(entity, len);
    pthread_rwlock_rdlock(&t->lock);
    struct entry *e = *find(t, h, entity, len);
    if (e != NULL && cb != NULL)
        cb(arg, e->tags.tags, e->tags.ntags);
    pthread_rwlock_unlock(&t->lock);
    return e != NULL ? 0 : RMR_ENOENT;
}

uint32_t tagger_count(struct tagger *t)
{
    pthread_rwlock_rdlock(&t->lock);
    uint32_t n = t->count;
    pthread_rwlock_unlock(&t->lock);
    return n;
}
