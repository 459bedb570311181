/* core/record: batches of records in an arena, with per-batch interning and sorted tag sets.
 *
 * Memory layout of a batch: the struct itself (malloc), the record pointer array (realloc,
 * doubling), two lazily created intern tables (malloc, open addressing), and an arena that
 * holds everything a record points to: the record structs, strings, tag arrays, fields and
 * sketches. Strings are interned so that the thousands of records of one batch that carry the
 * same metric name or tag share one copy; tag sets are interned as whole arrays so that records
 * with equal tags share one array, which also lets batch_merge_tags work once per distinct set.
 */
#include "record/batch.h"

#include <stdlib.h>
#include <string.h>

#include <remora/error.h>

/* ---- arena -------------------------------------------------------------------------------- */

/* The first chunk is small so that a batch holding a handful of records stays small; chunks
 * then double up to CHUNK_MAX_BYTES, beyond which doubling would only waste tail space. A
 * request larger than that gets a chunk of its own size. */
#define CHUNK_MIN_BYTES ((size_t)1024)
#define CHUNK_MAX_BYTES ((size_t)64 * 1024)
#define ARENA_ALIGN     ((size_t)8)

/* a * b into *out; 0, or RMR_ENOMEM when the product does not fit a size_t (32-bit targets). */
static int size_mul(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out) ? RMR_ENOMEM : 0;
}

struct arena_chunk {
    struct arena_chunk *next;
    size_t size; /* bytes of data[] */
    size_t used;
    uint64_t data[]; /* uint64_t so that data[] starts 8-byte aligned */
};

void arena_init(struct arena *a, size_t limit_bytes)
{
    a->head = NULL;
    a->used_bytes = 0;
    a->total_bytes = 0;
    a->limit_bytes = limit_bytes;
}

void arena_release(struct arena *a)
{
    struct arena_chunk *c = a->head;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used_bytes = 0;
    a->total_bytes = 0;
}

/* Allocates a chunk able to hold need bytes (a multiple of ARENA_ALIGN) and links it in. */
static struct arena_chunk *arena_grow(struct arena *a, size_t need)
{
    const size_t hdr = sizeof(struct arena_chunk);
    size_t size = CHUNK_MIN_BYTES;
    if (a->head != NULL) {
        size = a->head->size < CHUNK_MAX_BYTES / 2 ? a->head->size * 2 : CHUNK_MAX_BYTES;
        if (size < CHUNK_MIN_BYTES)
            size = CHUNK_MIN_BYTES;
    }
    int exact = need > size;
    if (exact)
        size = need;
    if (size > SIZE_MAX - hdr)
        return NULL;
    if (a->limit_bytes != 0) {
        size_t room = a->limit_bytes > a->total_bytes ? a->limit_bytes - a->total_bytes : 0;
        if (room < hdr + need)
            return NULL;
        /* Near the limit, a smaller chunk that still fits the request beats failing. */
        if (hdr + size > room)
            size = (room - hdr) & ~(ARENA_ALIGN - 1);
    }
    struct arena_chunk *c = malloc(hdr + size);
    if (c == NULL)
        return NULL;
    c->size = size;
    c->used = 0;
    if (exact && a->head != NULL) {
        /* A one-off large chunk goes behind the head, so the head's free space stays in use. */
        c->next = a->head->next;
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
    }
    a->total_bytes += hdr + size;
    return c;
}

void *arena_alloc(struct arena *a, size_t len)
{
    if (len > SIZE_MAX - ARENA_ALIGN)
        return NULL;
    /* A zero-length request still gets a distinct, valid pointer. */
    size_t need = len == 0 ? ARENA_ALIGN : (len + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    struct arena_chunk *c = a->head;
    if (c == NULL || c->size - c->used < need) {
        c = arena_grow(a, need);
        if (c == NULL)
            return NULL;
    }
    void *p = (char *)c->data + c->used;
    c->used += need;
    a->used_bytes += need;
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *p = arena_alloc(a, len + 1);
    if (p == NULL)
        return NULL;
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* ---- hashing ------------------------------------------------------------------------------ */

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* MurmurHash3's finalizer: every input bit affects every output bit, so masking the low bits
 * for a power-of-two table is safe. */
static inline uint64_t fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t hash_step(uint64_t h, uint64_t w)
{
    h ^= rotl64(w * 0x87c37b91114253d5ULL, 31) * 0x4cf5ad432745937fULL;
    return rotl64(h, 27) * 5 + 0x52dce729;
}

/* A word-at-a-time hash in the style of MurmurHash3 (x64), portable to 32-bit targets since
 * it needs no 128-bit multiply. Seeded with the length so that "ab" and "ab\0" differ. */
static uint64_t hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)len;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = hash_step(h, w);
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    if (len > 0)
        memcpy(&w, p, len);
    h = hash_step(h, w);
    return fmix64(h);
}

/* ---- intern tables ------------------------------------------------------------------------ */

#define TABLE_MIN_SLOTS 16u

struct intern_slot {
    uint64_t hash;
    const void *ptr; /* a string or a tag array in the arena; NULL marks a free slot */
    uint32_t len;    /* bytes of the string, or tags in the set */
    uint32_t reserved_;
};

struct intern_table {
    struct intern_slot *slots;
    uint32_t mask; /* slot count - 1; the slot count is a power of two */
    uint32_t count;
    /* Tag-set table only: where an incoming set is copied, sorted and deduplicated before
     * lookup, reused by every add so that adding a record allocates nothing when its set is
     * already known. */
    struct rmr_tag *scratch;
    uint32_t scratch_cap;
    uint32_t reserved_;
};

/* Every empty string of a batch points here, so views are NUL-terminated and printable. */
static const char empty_str[1] = "";

static size_t table_bytes(const struct intern_table *t)
{
    if (t == NULL)
        return 0;
    return sizeof *t + ((size_t)t->mask + 1) * sizeof(struct intern_slot) +
           (size_t)t->scratch_cap * sizeof(struct rmr_tag);
}

static void table_free(struct intern_table *t)
{
    if (t == NULL)
        return;
    free(t->slots);
    free(t->scratch);
    free(t);
}

/* A batch's limit_bytes bounds all of it, not only its arena: the tables, the scratch array and
 * the record array take their bytes out of the arena's remaining budget. Otherwise a flood of
 * distinct strings would grow the tables to a multiple of the bound, uncounted. The budget
 * stays above total_bytes, so a bounded arena never turns into an unbounded one (0). */
static int budget_take(struct rmr_batch *b, size_t bytes)
{
    struct arena *a = &b->arena;
    if (a->limit_bytes == 0)
        return 0;
    if (a->limit_bytes - a->total_bytes <= bytes)
        return RMR_ENOMEM;
    a->limit_bytes -= bytes;
    return 0;
}

/* Returns bytes taken by budget_take when the allocation they were for failed. */
static void budget_give(struct rmr_batch *b, size_t bytes)
{
    if (b->arena.limit_bytes != 0)
        b->arena.limit_bytes += bytes;
}

static int table_get(struct rmr_batch *b, struct intern_table **tp, struct intern_table **out)
{
    if (*tp == NULL) {
        size_t bytes = sizeof(struct intern_table) + TABLE_MIN_SLOTS * sizeof(struct intern_slot);
        if (budget_take(b, bytes) < 0)
            return RMR_ENOMEM;
        struct intern_table *t = calloc(1, sizeof *t);
        if (t != NULL)
            t->slots = calloc(TABLE_MIN_SLOTS, sizeof *t->slots);
        if (t == NULL || t->slots == NULL) {
            free(t);
            budget_give(b, bytes);
            return RMR_ENOMEM;
        }
        t->mask = TABLE_MIN_SLOTS - 1;
        *tp = t;
    }
    *out = *tp;
    return 0;
}

/* Makes room for one more entry, keeping the load at or below 70%. */
static int table_reserve(struct rmr_batch *b, struct intern_table *t)
{
    size_t nslots = (size_t)t->mask + 1;
    if (((size_t)t->count + 1) * 10 <= nslots * 7)
        return 0;
    if (nslots > UINT32_MAX / 2)
        return RMR_ENOMEM;
    size_t ncap = nslots * 2;
    size_t grow;
    if (size_mul(nslots, sizeof(struct intern_slot), &grow) < 0 || budget_take(b, grow) < 0)
        return RMR_ENOMEM;
    struct intern_slot *slots = calloc(ncap, sizeof *slots);
    if (slots == NULL) {
        budget_give(b, grow);
        return RMR_ENOMEM;
    }
    for (size_t i = 0; i < nslots; i++) {
        const struct intern_slot *s = &t->slots[i];
        if (s->ptr == NULL)
            continue;
        size_t j = (size_t)s->hash & (ncap - 1);
        while (slots[j].ptr != NULL)
            j = (j + 1) & (ncap - 1);
        slots[j] = *s;
    }
    free(t->slots);
    t->slots = slots;
    t->mask = (uint32_t)(ncap - 1);
    return 0;
}

/* The first free slot on hash's probe sequence (after table_reserve, there is one). */
static struct intern_slot *table_free_slot(struct intern_table *t, uint64_t hash)
{
    uint32_t i = (uint32_t)hash & t->mask;
    while (t->slots[i].ptr != NULL)
        i = (i + 1) & t->mask;
    return &t->slots[i];
}

/* Stores *out: the batch's copy of s[0..len), NUL-terminated. Errors: RMR_ENOMEM. */
static int intern_str(struct rmr_batch *b, const char *s, uint32_t len, const char **out)
{
    if (len == 0) {
        *out = empty_str;
        return 0;
    }
    struct intern_table *t;
    int rc = table_get(b, &b->strings, &t);
    if (rc < 0)
        return rc;
    uint64_t h = hash_bytes(s, len);
    for (uint32_t i = (uint32_t)h & t->mask; t->slots[i].ptr != NULL; i = (i + 1) & t->mask) {
        const struct intern_slot *slot = &t->slots[i];
        if (slot->hash == h && slot->len == len && memcmp(slot->ptr, s, len) == 0) {
            *out = slot->ptr;
            return 0;
        }
    }
    rc = table_reserve(b, t);
    if (rc < 0)
        return rc;
    char *p = arena_strndup(&b->arena, s, len);
    if (p == NULL)
        return RMR_ENOMEM;
    struct intern_slot *slot = table_free_slot(t, h);
    slot->hash = h;
    slot->ptr = p;
    slot->len = len;
    t->count++;
    *out = p;
    return 0;
}

static int str_eq(const struct rmr_str *x, const struct rmr_str *y)
{
    return x->len == y->len && (x->len == 0 || memcmp(x->ptr, y->ptr, x->len) == 0);
}

/* Hashes a set by content, not by string pointers, so a set whose strings still point into a
 * plugin's buffer finds its interned twin without interning each string first. */
static uint64_t tagset_hash(const struct rmr_tag *tags, uint32_t n)
{
    uint64_t h = 0x2545f4914f6cdd1dULL ^ n;
    for (uint32_t i = 0; i < n; i++) {
        h = hash_step(h, hash_bytes(tags[i].key.ptr, tags[i].key.len));
        h = hash_step(h, hash_bytes(tags[i].value.ptr, tags[i].value.len));
    }
    return fmix64(h);
}

/* Stores *out: the batch's array holding tags[0..n) (sorted, unique, n > 0), with interned
 * strings. Errors: RMR_ENOMEM. */
static int intern_tagset(struct rmr_batch *b, const struct rmr_tag *tags, uint32_t n,
                         const struct rmr_tag **out)
{
    struct intern_table *t;
    int rc = table_get(b, &b->tagsets, &t);
    if (rc < 0)
        return rc;
    uint64_t h = tagset_hash(tags, n);
    for (uint32_t i = (uint32_t)h & t->mask; t->slots[i].ptr != NULL; i = (i + 1) & t->mask) {
        const struct intern_slot *slot = &t->slots[i];
        if (slot->hash != h || slot->len != n)
            continue;
        const struct rmr_tag *set = slot->ptr;
        uint32_t j = 0;
        while (j < n && str_eq(&set[j].key, &tags[j].key) && str_eq(&set[j].value, &tags[j].value))
            j++;
        if (j == n) {
            *out = set;
            return 0;
        }
    }
    rc = table_reserve(b, t);
    if (rc < 0)
        return rc;
    size_t bytes;
    if (size_mul(n, sizeof(struct rmr_tag), &bytes) < 0)
        return RMR_ENOMEM;
    struct rmr_tag *set = arena_alloc(&b->arena, bytes);
    if (set == NULL)
        return RMR_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const char *k, *v;
        rc = intern_str(b, tags[i].key.ptr, tags[i].key.len, &k);
        if (rc == 0)
            rc = intern_str(b, tags[i].value.ptr, tags[i].value.len, &v);
        if (rc < 0)
            return rc;
        set[i].key = (struct rmr_str){k, tags[i].key.len, 0};
        set[i].value = (struct rmr_str){v, tags[i].value.len, 0};
    }
    /* intern_str may have grown the string table, never this one: the reserved slot holds. */
    struct intern_slot *slot = table_free_slot(t, h);
    slot->hash = h;
    slot->ptr = set;
    slot->len = n;
    t->count++;
    *out = set;
    return 0;
}

/* Returns the tag-set table's scratch array with room for n tags, or NULL. */
static struct rmr_tag *scratch_get(struct rmr_batch *b, size_t n)
{
    struct intern_table *t;
    if (table_get(b, &b->tagsets, &t) < 0 || n > UINT32_MAX)
        return NULL;
    if (n > t->scratch_cap) {
        size_t cap = (size_t)t->scratch_cap * 2;
        if (cap < n)
            cap = n;
        if (cap < 16)
            cap = 16;
        if (cap > UINT32_MAX)
            cap = UINT32_MAX;
        size_t bytes;
        if (size_mul(cap, sizeof(struct rmr_tag), &bytes) < 0)
            return NULL;
        size_t grow = bytes - (size_t)t->scratch_cap * sizeof(struct rmr_tag);
        if (budget_take(b, grow) < 0)
            return NULL;
        struct rmr_tag *s = realloc(t->scratch, bytes);
        if (s == NULL) {
            budget_give(b, grow);
            return NULL;
        }
        t->scratch = s;
        t->scratch_cap = (uint32_t)cap;
    }
    return t->scratch;
}

/* ---- tags ------------------------------------------------------------------------------- */

/* Byte order, and a string sorts before every longer string it is a prefix of. */
static int str_cmp(const struct rmr_str *x, const struct rmr_str *y)
{
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = n > 0 ? memcmp(x->ptr, y->ptr, n) : 0;
    if (c != 0)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

static int tag_cmp(const struct rmr_tag *x, const struct rmr_tag *y)
{
    int c = str_cmp(&x->key, &y->key);
    return c != 0 ? c : str_cmp(&x->value, &y->value);
}

static int tag_qcmp(const void *x, const void *y)
{
    return tag_cmp(x, y);
}

uint32_t tags_sort_unique(struct rmr_tag *tags, uint32_t ntags)
{
    if (ntags < 2)
        return ntags;
    qsort(tags, ntags, sizeof *tags, tag_qcmp);
    uint32_t n = 1;
    for (uint32_t i = 1; i < ntags; i++)
        if (tag_cmp(&tags[n - 1], &tags[i]) != 0)
            tags[n++] = tags[i];
    return n;
}

/* Sorts, deduplicates and interns a caller's tag array; tags must have passed check_tags. */
static int copy_tags(struct rmr_batch *b, const struct rmr_tag **tags, uint32_t *ntags)
{
    if (*ntags == 0) {
        *tags = NULL;
        return 0;
    }
    struct rmr_tag *tmp = scratch_get(b, *ntags);
    if (tmp == NULL)
        return RMR_ENOMEM;
    memcpy(tmp, *tags, (size_t)*ntags * sizeof *tmp); /* scratch_get checked the product */
    uint32_t n = tags_sort_unique(tmp, *ntags);
    int rc = intern_tagset(b, tmp, n, tags);
    if (rc < 0)
        return rc;
    *ntags = n;
    return 0;
}

/* ---- record layouts ----------------------------------------------------------------------- */

#define END_OF(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))

/* Where each kind keeps its strings and arrays, so that one validator and one copier serve
 * every kind, and a member appended in a later ABI minor is one line here. */
struct kind_layout {
    size_t size;     /* this host's struct */
    size_t min_size; /* the 1.0 struct: the end of its last 1.0 member */
    size_t tags, ntags;
    size_t fields, nfields; /* 0: the kind has no fields */
    size_t strs[7];         /* offsets of its struct rmr_str members, ended by 0 */
};

#define M(member) offsetof(struct rmr_metric, member)
#define L(member) offsetof(struct rmr_log, member)
#define S(member) offsetof(struct rmr_span, member)
#define E(member) offsetof(struct rmr_event, member)
#define C(member) offsetof(struct rmr_check, member)
#define O(member) offsetof(struct rmr_object, member)
static const struct kind_layout layouts[RMR_REC_KIND_MAX + 1] = {
    [RMR_REC_METRIC] = {.size = sizeof(struct rmr_metric),
                        .min_size = END_OF(struct rmr_metric, sketch),
                        .tags = M(tags),
                        .ntags = M(ntags),
                        .fields = M(fields),
                        .nfields = M(nfields),
                        .strs = {M(name), M(unit), M(host)}},
    [RMR_REC_LOG] = {.size = sizeof(struct rmr_log),
                     .min_size = END_OF(struct rmr_log, attrs),
                     .tags = L(tags),
                     .ntags = L(ntags),
                     .fields = L(attrs),
                     .nfields = L(nattrs),
                     .strs = {L(message), L(status), L(source), L(service), L(host)}},
    [RMR_REC_SPAN] = {.size = sizeof(struct rmr_span),
                      .min_size = END_OF(struct rmr_span, metrics),
                      .tags = S(meta),
                      .ntags = S(nmeta),
                      .fields = S(metrics),
                      .nfields = S(nmetrics),
                      .strs = {S(name), S(service), S(resource), S(type)}},
    [RMR_REC_EVENT] = {.size = sizeof(struct rmr_event),
                       .min_size = END_OF(struct rmr_event, reserved_),
                       .tags = E(tags),
                       .ntags = E(ntags),
                       .strs = {E(title), E(text), E(host), E(aggregation_key), E(source_type),
                                E(alert_type)}},
    [RMR_REC_CHECK] = {.size = sizeof(struct rmr_check),
                       .min_size = END_OF(struct rmr_check, reserved_),
                       .tags = C(tags),
                       .ntags = C(ntags),
                       .strs = {C(name), C(host), C(message)}},
    [RMR_REC_OBJECT] = {.size = sizeof(struct rmr_object),
                        .min_size = END_OF(struct rmr_object, fields),
                        .tags = O(tags),
                        .ntags = O(ntags),
                        .fields = O(fields),
                        .nfields = O(nfields),
                        .strs = {O(cls), O(name)}},
};
#undef M
#undef L
#undef S
#undef E
#undef C
#undef O

#define SKETCH_MIN_SIZE END_OF(struct rmr_sketch, counts)

/* Large enough for any kind, aligned for all of them. */
union record_buf {
    uint32_t struct_size;
    struct rmr_metric metric;
    struct rmr_log log;
    struct rmr_span span;
    struct rmr_event event;
    struct rmr_check check;
    struct rmr_object object;
};

static const struct kind_layout *layout_of(uint32_t kind)
{
    if (kind < 1 || kind > RMR_REC_KIND_MAX)
        return NULL;
    return &layouts[kind];
}

size_t record_struct_size(uint32_t kind)
{
    const struct kind_layout *l = layout_of(kind);
    return l != NULL ? l->size : 0;
}

size_t record_struct_min_size(uint32_t kind)
{
    const struct kind_layout *l = layout_of(kind);
    return l != NULL ? l->min_size : 0;
}

const char *record_kind_name(uint32_t kind)
{
    switch ((enum rmr_record_kind)kind) {
    case RMR_REC_METRIC: return "metric";
    case RMR_REC_LOG: return "log";
    case RMR_REC_SPAN: return "span";
    case RMR_REC_EVENT: return "event";
    case RMR_REC_CHECK: return "check";
    case RMR_REC_OBJECT: return "object";
    }
    return "unknown";
}

/* Members of a record by offset; rec is a record of the layout's kind. */
static struct rmr_str *rec_str(void *rec, size_t off)
{
    return (struct rmr_str *)(void *)((char *)rec + off);
}
static uint32_t *rec_u32(void *rec, size_t off)
{
    return (uint32_t *)(void *)((char *)rec + off);
}
static const struct rmr_tag **rec_tags(void *rec, size_t off)
{
    return (const struct rmr_tag **)(void *)((char *)rec + off);
}
static const struct rmr_field **rec_fields(void *rec, size_t off)
{
    return (const struct rmr_field **)(void *)((char *)rec + off);
}

/* ---- validation: everything is checked before anything is copied, so a refused record leaves
 * no trace in the batch ---------------------------------------------------------------------- */

static int str_ok(const struct rmr_str *s)
{
    return s->len == 0 || s->ptr != NULL;
}

static int check_tags(const struct rmr_tag *tags, uint32_t n)
{
    if (n > 0 && tags == NULL)
        return RMR_EINVAL;
    for (uint32_t i = 0; i < n; i++)
        if (!str_ok(&tags[i].key) || !str_ok(&tags[i].value))
            return RMR_EINVAL;
    return 0;
}

static int check_fields(const struct rmr_field *fields, uint32_t n)
{
    if (n > 0 && fields == NULL)
        return RMR_EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        const struct rmr_field *f = &fields[i];
        if (!str_ok(&f->key))
            return RMR_EINVAL;
        /* A type from a newer ABI is refused: this host would not know how to copy it. */
        if (f->value.type > RMR_VAL_BOOL)
            return RMR_EINVAL;
        if (f->value.type == RMR_VAL_STR && f->value.str_len > 0 && f->value.v.str == NULL)
            return RMR_EINVAL;
    }
    return 0;
}

static int check_sketch(const struct rmr_sketch *sk)
{
    if (sk == NULL || sk->struct_size < SKETCH_MIN_SIZE)
        return RMR_EINVAL;
    if (sk->nbins == 0)
        return 0;
    if (sk->keys == NULL || sk->counts == NULL)
        return RMR_EINVAL;
    /* Encoders rely on the documented order to emit bins without sorting. */
    for (uint32_t i = 1; i < sk->nbins; i++)
        if (sk->keys[i] <= sk->keys[i - 1])
            return RMR_EINVAL;
    return 0;
}

static int check_record(const struct kind_layout *l, uint32_t kind, void *rec)
{
    for (const size_t *off = l->strs; *off != 0; off++)
        if (!str_ok(rec_str(rec, *off)))
            return RMR_EINVAL;
    int rc = check_tags(*rec_tags(rec, l->tags), *rec_u32(rec, l->ntags));
    if (rc == 0 && l->fields != 0)
        rc = check_fields(*rec_fields(rec, l->fields), *rec_u32(rec, l->nfields));
    if (rc < 0)
        return rc;
    if (kind == RMR_REC_METRIC) {
        const struct rmr_metric *m = rec;
        if (m->name.len == 0)
            return RMR_EINVAL;
        if (m->type < RMR_METRIC_GAUGE || m->type > RMR_METRIC_DISTRIBUTION)
            return RMR_EINVAL;
        if (m->type == RMR_METRIC_DISTRIBUTION)
            return check_sketch(m->sketch);
    }
    return 0;
}

/* ---- copying ------------------------------------------------------------------------------ */

static int copy_str(struct rmr_batch *b, struct rmr_str *s)
{
    const char *p;
    int rc = intern_str(b, s->ptr, s->len, &p);
    if (rc < 0)
        return rc;
    s->ptr = p;
    s->reserved_ = 0;
    return 0;
}

static int copy_fields(struct rmr_batch *b, const struct rmr_field **fields, uint32_t n)
{
    if (n == 0) {
        *fields = NULL;
        return 0;
    }
    size_t bytes;
    if (size_mul(n, sizeof(struct rmr_field), &bytes) < 0)
        return RMR_ENOMEM;
    struct rmr_field *out = arena_alloc(&b->arena, bytes);
    if (out == NULL)
        return RMR_ENOMEM;
    memcpy(out, *fields, bytes);
    for (uint32_t i = 0; i < n; i++) {
        int rc = copy_str(b, &out[i].key);
        if (rc == 0 && out[i].value.type == RMR_VAL_STR)
            rc = intern_str(b, out[i].value.v.str, out[i].value.str_len, &out[i].value.v.str);
        if (rc < 0)
            return rc;
    }
    *fields = out;
    return 0;
}

static int copy_sketch(struct rmr_batch *b, const struct rmr_sketch **skp)
{
    const struct rmr_sketch *in = *skp;
    struct rmr_sketch *sk = arena_alloc(&b->arena, sizeof *sk);
    if (sk == NULL)
        return RMR_ENOMEM;
    memset(sk, 0, sizeof *sk);
    memcpy(sk, in, in->struct_size < sizeof *sk ? in->struct_size : sizeof *sk);
    sk->struct_size = sizeof *sk;
    if (sk->nbins == 0) {
        sk->keys = NULL;
        sk->counts = NULL;
    } else {
        /* keys and counts are both 4 bytes wide, so one size serves both. */
        size_t bytes;
        if (size_mul(sk->nbins, sizeof(int32_t), &bytes) < 0)
            return RMR_ENOMEM;
        int32_t *keys = arena_alloc(&b->arena, bytes);
        uint32_t *counts = arena_alloc(&b->arena, bytes);
        if (keys == NULL || counts == NULL)
            return RMR_ENOMEM;
        memcpy(keys, in->keys, bytes);
        memcpy(counts, in->counts, bytes);
        sk->keys = keys;
        sk->counts = counts;
    }
    *skp = sk;
    return 0;
}

/* Replaces every pointer of a checked record with the batch's copy. Errors: RMR_ENOMEM. */
static int copy_record(struct rmr_batch *b, const struct kind_layout *l, uint32_t kind, void *rec)
{
    int rc = 0;
    for (const size_t *off = l->strs; *off != 0 && rc == 0; off++)
        rc = copy_str(b, rec_str(rec, *off));
    if (rc == 0)
        rc = copy_tags(b, rec_tags(rec, l->tags), rec_u32(rec, l->ntags));
    if (rc == 0 && l->fields != 0)
        rc = copy_fields(b, rec_fields(rec, l->fields), *rec_u32(rec, l->nfields));
    if (rc == 0 && kind == RMR_REC_METRIC) {
        struct rmr_metric *m = rec;
        /* A sketch means nothing on other metric types; keeping it would only cost memory. */
        if (m->type == RMR_METRIC_DISTRIBUTION)
            rc = copy_sketch(b, &m->sketch);
        else
            m->sketch = NULL;
    }
    return rc;
}

/* ---- batches ------------------------------------------------------------------------------ */

struct rmr_batch *batch_new(const struct rmr_host_api *host, const char *schema, size_t limit_bytes)
{
    struct rmr_batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->h.host = host;
    b->refcount = 1;
    arena_init(&b->arena, limit_bytes);
    if (schema != NULL) {
        b->schema = arena_strndup(&b->arena, schema, strlen(schema));
        if (b->schema == NULL)
            goto fail;
    }
    return b;

fail:
    arena_release(&b->arena);
    free(b);
    return NULL;
}

void batch_ref(struct rmr_batch *b)
{
    __atomic_add_fetch(&b->refcount, 1, __ATOMIC_RELAXED);
}

void batch_unref(struct rmr_batch *b)
{
    if (b == NULL)
        return;
    /* Release so this thread's reads finish before another frees; acquire so the freeing
     * thread sees every other thread's last use. */
    if (__atomic_sub_fetch(&b->refcount, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    table_free(b->tagsets);
    table_free(b->strings);
    free(b->recs);
    arena_release(&b->arena);
    free(b);
}

static int recs_reserve(struct rmr_batch *b)
{
    if (b->count < b->cap)
        return 0;
    if (b->cap > UINT32_MAX / 2)
        return RMR_ENOMEM;
    uint32_t cap = b->cap == 0 ? 8 : b->cap * 2;
    size_t bytes;
    if (size_mul(cap, sizeof(struct batch_rec), &bytes) < 0)
        return RMR_ENOMEM;
    size_t grow = bytes - (size_t)b->cap * sizeof(struct batch_rec);
    if (budget_take(b, grow) < 0)
        return RMR_ENOMEM;
    struct batch_rec *recs = realloc(b->recs, bytes);
    if (recs == NULL) {
        budget_give(b, grow);
        return RMR_ENOMEM;
    }
    b->recs = recs;
    b->cap = cap;
    return 0;
}

int batch_add(struct rmr_batch *b, uint32_t kind, const void *record)
{
    if (b == NULL || record == NULL)
        return RMR_EINVAL;
    if (b->sealed)
        return RMR_EPERM;
    const struct kind_layout *l = layout_of(kind);
    if (l == NULL)
        return RMR_EINVAL;
    uint32_t size;
    memcpy(&size, record, sizeof size);
    if (size < l->min_size)
        return RMR_EINVAL;

    /* Work on a local copy of our size: an older plugin's struct reads as zero past its end,
     * and a newer plugin's extra members are not ours to keep. */
    union record_buf rec;
    memset(&rec, 0, sizeof rec);
    memcpy(&rec, record, size < l->size ? size : l->size);
    rec.struct_size = (uint32_t)l->size;

    int rc = check_record(l, kind, &rec);
    if (rc < 0)
        return rc;
    if (b->count == UINT32_MAX)
        return RMR_ENOMEM;
    rc = recs_reserve(b);
    if (rc < 0)
        return rc;
    rc = copy_record(b, l, kind, &rec);
    if (rc < 0)
        return rc;
    void *data = arena_alloc(&b->arena, l->size);
    if (data == NULL)
        return RMR_ENOMEM;
    memcpy(data, &rec, l->size);
    b->recs[b->count].kind = kind;
    b->recs[b->count].reserved_ = 0;
    b->recs[b->count].data = data;
    b->count++;
    return 0;
}

uint32_t batch_count(const struct rmr_batch *b)
{
    return b != NULL ? b->count : 0;
}

const char *batch_schema(const struct rmr_batch *b)
{
    return b != NULL ? b->schema : NULL;
}

uint32_t batch_kind(const struct rmr_batch *b, uint32_t index)
{
    if (b == NULL || index >= b->count)
        return 0;
    return b->recs[index].kind;
}

int batch_get(const struct rmr_batch *b, uint32_t index, uint32_t kind, void *view)
{
    if (b == NULL || view == NULL)
        return RMR_EINVAL;
    if (index >= b->count)
        return RMR_ENOENT;
    const struct batch_rec *r = &b->recs[index];
    const struct kind_layout *l = layout_of(kind);
    if (r->kind != kind || l == NULL)
        return RMR_EINVAL;
    uint32_t size;
    memcpy(&size, view, sizeof size);
    if (size < l->min_size)
        return RMR_EINVAL;
    if (size <= l->size) {
        memcpy(view, r->data, size);
    } else {
        /* A newer plugin's view: the members this host does not know read as zero. */
        memcpy(view, r->data, l->size);
        memset((char *)view + l->size, 0, size - l->size);
    }
    memcpy(view, &size, sizeof size);
    return 0;
}

size_t batch_bytes(const struct rmr_batch *b)
{
    if (b == NULL)
        return 0;
    return sizeof *b + b->arena.total_bytes + (size_t)b->cap * sizeof(struct batch_rec) +
           table_bytes(b->strings) + table_bytes(b->tagsets);
}

void batch_seal(struct rmr_batch *b)
{
    b->sealed = 1;
}

/* ---- merging global tags ------------------------------------------------------------------ */

/* One distinct tag set of the batch and what it becomes. */
struct merge_slot {
    const struct rmr_tag *from; /* NULL: free slot */
    const struct rmr_tag *to;
    uint32_t nto;
    uint32_t reserved_;
};

/* Writes into out the union of rec and glob, both sorted and unique, leaving out every global
 * tag whose key rec has. Returns the count. Since both are sorted by key, a global key equal
 * to one of rec's meets it in the walk. */
static uint32_t merge_sets(struct rmr_tag *out, const struct rmr_tag *rec, uint32_t nrec,
                           const struct rmr_tag *glob, uint32_t nglob)
{
    uint32_t i = 0, j = 0, n = 0;
    while (i < nrec && j < nglob) {
        int c = str_cmp(&rec[i].key, &glob[j].key);
        if (c < 0)
            out[n++] = rec[i++];
        else if (c > 0)
            out[n++] = glob[j++];
        else
            j++; /* the record's own tag wins */
    }
    while (i < nrec)
        out[n++] = rec[i++];
    while (j < nglob)
        out[n++] = glob[j++];
    return n;
}

static void rec_tagset(const struct batch_rec *r, const struct rmr_tag ***tags, uint32_t **ntags)
{
    const struct kind_layout *l = layout_of(r->kind);
    *tags = rec_tags(r->data, l->tags);
    *ntags = rec_u32(r->data, l->ntags);
}

/* Finds from's slot in the memo, or the free slot where it goes. */
static struct merge_slot *memo_slot(struct merge_slot *memo, size_t mask,
                                    const struct rmr_tag *from)
{
    uintptr_t p = (uintptr_t)from;
    size_t i = (size_t)fmix64((uint64_t)p) & mask;
    while (memo[i].from != NULL && memo[i].from != from)
        i = (i + 1) & mask;
    return &memo[i];
}

int batch_merge_tags(struct rmr_batch *b, const struct rmr_tag *tags, uint32_t ntags)
{
    struct merge_slot *memo = NULL;
    if (b->sealed)
        return RMR_EPERM;
    int rc = check_tags(tags, ntags);
    if (rc < 0 || ntags == 0 || b->count == 0)
        return rc;

    /* The global set, sorted, unique and interned like any record's. */
    const struct rmr_tag *glob = tags;
    uint32_t nglob = ntags;
    rc = copy_tags(b, &glob, &nglob);
    if (rc < 0)
        goto fail;

    /* Every record's set is interned, so distinct sets are at most the table's count. */
    size_t nsets = b->tagsets->count;
    size_t nslots = 16;
    while (nslots < nsets * 2)
        nslots *= 2;
    memo = calloc(nslots, sizeof *memo);
    if (memo == NULL) {
        rc = RMR_ENOMEM;
        goto fail;
    }

    /* First build every merged set, then switch records over, so that a failure leaves every
     * record as it was. */
    for (uint32_t i = 0; i < b->count; i++) {
        const struct rmr_tag **rt;
        uint32_t *rn;
        rec_tagset(&b->recs[i], &rt, &rn);
        if (*rn == 0)
            continue;
        struct merge_slot *m = memo_slot(memo, nslots - 1, *rt);
        if (m->from != NULL)
            continue;
        struct rmr_tag *tmp = scratch_get(b, (size_t)*rn + nglob);
        if (tmp == NULL) {
            rc = RMR_ENOMEM;
            goto fail;
        }
        uint32_t n = merge_sets(tmp, *rt, *rn, glob, nglob);
        rc = intern_tagset(b, tmp, n, &m->to);
        if (rc < 0)
            goto fail;
        m->from = *rt;
        m->nto = n;
    }
    for (uint32_t i = 0; i < b->count; i++) {
        const struct rmr_tag **rt;
        uint32_t *rn;
        rec_tagset(&b->recs[i], &rt, &rn);
        if (*rn == 0) {
            *rt = glob;
            *rn = nglob;
        } else {
            const struct merge_slot *m = memo_slot(memo, nslots - 1, *rt);
            *rt = m->to;
            *rn = m->nto;
        }
    }
    free(memo);
    return 0;

fail:
    free(memo);
    return rc;
}

void batch_stamp_time(struct rmr_batch *b, int64_t now_ns)
{
    if (b->sealed)
        return;
    for (uint32_t i = 0; i < b->count; i++) {
        void *r = b->recs[i].data;
        int64_t *t = NULL;
        switch ((enum rmr_record_kind)b->recs[i].kind) {
        case RMR_REC_METRIC: t = &((struct rmr_metric *)r)->time_ns; break;
        case RMR_REC_LOG: t = &((struct rmr_log *)r)->time_ns; break;
        case RMR_REC_SPAN: t = &((struct rmr_span *)r)->start_ns; break;
        case RMR_REC_EVENT: t = &((struct rmr_event *)r)->time_ns; break;
        case RMR_REC_CHECK: t = &((struct rmr_check *)r)->time_ns; break;
        case RMR_REC_OBJECT: t = &((struct rmr_object *)r)->time_ns; break;
        }
        if (t != NULL && *t == 0)
            *t = now_ns;
    }
}
