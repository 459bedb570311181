/* The tagger and tag sets: copies sorted and unique, replace, forget, growth past the first
 * table, the first-wins union, bad input, and lookups racing a writer. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tagger/tagger.h"
#include "tap.h"

/* Renders the tags a lookup sees as "k:v,k:v". */
struct seen {
    char text[512];
    uint32_t n;
};

static void on_tags(void *arg, const struct rmr_tag *tags, uint32_t ntags)
{
    struct seen *s = arg;
    size_t off = 0;
    s->text[0] = '\0';
    s->n = ntags;
    for (uint32_t i = 0; i < ntags && off < sizeof s->text; i++)
        off += (size_t)snprintf(s->text + off, sizeof s->text - off, "%s%.*s:%.*s", i ? "," : "",
                                (int)tags[i].key.len, tags[i].key.ptr, (int)tags[i].value.len,
                                tags[i].value.ptr);
}

static int lookup(struct tagger *t, const char *entity, struct seen *s)
{
    memset(s, 0, sizeof *s);
    return tagger_get(t, entity, strlen(entity), on_tags, s);
}

struct race {
    struct tagger *t;
    int stop;
    uint32_t bad;
};

/* Reads while the main thread rewrites: every answer must be one whole version. */
static void *reader(void *arg)
{
    struct race *r = arg;
    struct seen s;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        if (lookup(r->t, "race", &s) == 0 && strcmp(s.text, "a:1,b:1") != 0 &&
            strcmp(s.text, "a:2,b:2") != 0)
            r->bad++;
    }
    return NULL;
}

int main(void)
{
    struct tagset set = {0};
    struct rmr_tag in[] = {{RMR_STR("z"), RMR_STR("1")},
                           {RMR_STR("a"), RMR_STR("2")},
                           {RMR_STR("z"), RMR_STR("1")},
                           {RMR_STR("bare"), RMR_STR("")}};
    IS_INT(tagset_assign(&set, in, 4), 0, "a set is copied");
    IS_UINT(set.ntags, 3, "duplicates are removed");
    IS_INT(set.tags[0].key.len == 1 && set.tags[0].key.ptr[0] == 'a' &&
               strcmp(set.tags[1].key.ptr, "bare") == 0 && set.tags[1].value.len == 0,
           1, "sorted by key, bare tag kept with an empty value");
    in[0].key.ptr = "y"; /* the copy owns its strings */
    IS_STR(set.tags[2].key.ptr, "z", "the copy does not borrow the caller's strings");
    struct rmr_tag nokey = {RMR_STR(""), RMR_STR("v")};
    IS_INT(tagset_assign(&set, &nokey, 1), RMR_EINVAL, "a tag without key is refused");
    IS_UINT(set.ntags, 3, "a refused assign leaves the set as it was");

    struct tagset other = {0}, u = {0};
    struct rmr_tag o[] = {{RMR_STR("a"), RMR_STR("other")}, {RMR_STR("c"), RMR_STR("3")}};
    tagset_assign(&other, o, 2);
    const struct tagset *sets[] = {&set, &other};
    IS_INT(tagset_union(&u, sets, 2), 0, "union of two sets");
    IS_UINT(u.ntags, 4, "union keeps one tag per key across sets");
    IS_STR(u.tags[0].value.ptr, "2", "the first set's value wins on a shared key");
    tagset_release(&u);
    tagset_release(&other);
    tagset_release(&set);
    IS_INT(set.tags == NULL && set.ntags == 0, 1, "release empties the set");

    struct tagger *t = tagger_new();
    struct seen s;
    struct rmr_tag ct[] = {{RMR_STR("container_name"), RMR_STR("app")},
                           {RMR_STR("container_id"), RMR_STR("abc-1")}};
    IS_INT(tagger_put(t, "abc-1", 5, ct, 2), 0, "an entity is set");
    IS_INT(lookup(t, "abc-1", &s), 0, "the entity is found");
    IS_STR(s.text, "container_id:abc-1,container_name:app", "its tags, sorted");
    IS_INT(lookup(t, "abc", &s), RMR_ENOENT, "a prefix is not a match");
    IS_INT(lookup(t, "abc-12", &s), RMR_ENOENT, "a longer id is not a match");
    IS_INT(tagger_get(t, "", 0, on_tags, &s), RMR_ENOENT, "the empty entity is unknown");

    struct rmr_tag ct2[] = {{RMR_STR("container_name"), RMR_STR("app2")}};
    IS_INT(tagger_put(t, "abc-1", 5, ct2, 1), 0, "an entity is replaced");
    lookup(t, "abc-1", &s);
    IS_STR(s.text, "container_name:app2", "the replacement is what lookups see");
    IS_UINT(tagger_count(t), 1, "replacing does not add an entity");
    IS_INT(tagger_put(t, "abc-1", 5, NULL, 0), 0, "no tags forgets the entity");
    IS_INT(lookup(t, "abc-1", &s), RMR_ENOENT, "a forgotten entity is unknown");
    IS_INT(tagger_put(t, "never", 5, NULL, 0), 0, "forgetting an unknown entity is fine");
    IS_INT(tagger_put(t, NULL, 0, ct, 2), RMR_EINVAL, "an empty entity is refused");
    IS_INT(tagger_put(t, "x", 1, &nokey, 1), RMR_EINVAL, "a tag without key is refused");

    /* Past the first table: 1000 entities, each found with its own tag. */
    uint32_t found = 0;
    for (int i = 0; i < 1000; i++) {
        char id[32], v[32];
        snprintf(id, sizeof id, "c%04d", i);
        snprintf(v, sizeof v, "%d", i);
        struct rmr_tag tg = {RMR_STR("n"), RMR_STR(v)};
        tagger_put(t, id, strlen(id), &tg, 1);
    }
    for (int i = 0; i < 1000; i++) {
        char id[32], want[32];
        snprintf(id, sizeof id, "c%04d", i);
        snprintf(want, sizeof want, "n:%d", i);
        found += lookup(t, id, &s) == 0 && strcmp(s.text, want) == 0;
    }
    IS_UINT(found, 1000, "1000 entities each found with their own tags");
    IS_UINT(tagger_count(t), 1000, "1000 entities counted");

    /* A reader thread never sees a half-written set. */
    struct race r = {.t = t};
    struct rmr_tag v1[] = {{RMR_STR("a"), RMR_STR("1")}, {RMR_STR("b"), RMR_STR("1")}};
    struct rmr_tag v2[] = {{RMR_STR("a"), RMR_STR("2")}, {RMR_STR("b"), RMR_STR("2")}};
    tagger_put(t, "race", 4, v1, 2);
    pthread_t th;
    pthread_create(&th, NULL, reader, &r);
    for (int i = 0; i < 20000; i++)
        tagger_put(t, "race", 4, (i & 1) ? v1 : v2, 2);
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    IS_UINT(r.bad, 0, "lookups racing a writer see whole versions only");

    tagger_free(t);
    tagger_free(NULL);
    return tap_done();
}
