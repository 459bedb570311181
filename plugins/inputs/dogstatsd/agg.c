/* plugins/inputs/dogstatsd: the aggregator (see agg.h).
 *
 * The hot path, per metric message: parse (parse.c), hash the name and the tag list's bytes as
 * sent, and look that "raw" key up in an open-addressing table of 64-bit keys; then update the
 * context's state in place. Clients send a series the same way every time, so this is the
 * common case: two hashes and one probe, no tag splitting, no allocation.
 *
 * The first time a form is seen, its canonical key is computed: every tag hashed once, the
 * hashes of the distinct tags folded with XOR (order-independent, so no sort), then the name,
 * host and class. It finds or makes the context (whose tags are sorted once, when it is made,
 * and stored with its name in one block), and the raw key is added as a second way in. So
 * "#a,b" and "#b,a,a" are one context, as in the Agent.
 *
 * Like the Datadog Agent (pkg/aggregator/ckey: a 64-bit hash is the context's identity, with
 * no comparison of the strings behind it), two contexts are the same when their keys are: the
 * seeded 64-bit hash makes an accidental collision among 10^5 contexts a 1-in-10^9 event.
 *
 * Contexts with an origin ("|c:" container id, "dd.internal.entity_id:" tag): the raw key
 * (which includes the container id) leads to an alias, and the alias to the context whose key
 * is made from the final tags (the message's tags plus those the tagger gives for the origin),
 * so two origins with the same final tags share one series as in the Agent. The tagger is
 * asked once per new alias; an origin the tagger did not know yet is asked again at most once
 * per bucket until it does.
 *
 * Buckets: samples go to the open bucket (floor(t / bucket) * bucket of the packet's time);
 * when a packet or a flush sees a later bucket, the open one is sealed: each sampled context's
 * value, or its histogram, set or sketch state (moved out: the context makes a fresh one on its
 * next sample), goes with a copy of the context's name/tags pointer to a list (struct sealed),
 * which dsd_agg_detach() takes and dsd_agg_build() turns into records without the glue's lock.
 * The blobs of contexts expired meanwhile are freed only after the next build. Counters are
 * zero-filled in sealed buckets while sampled in the last expiry_s, as the Agent's time
 * sampler does.
 *
 * Bounds: contexts and aliases at most max_contexts each, raw forms at most 2 * max_contexts
 * (beyond, a form takes the slow path each time); histogram samples and set members within
 * state_limit_bytes for the open bucket (beyond: a reservoir, counted; a closed bucket's state
 * leaves the count when it is detached and is freed by the build); held pass-through batches
 * at most PENDING_MAX (beyond, emitted at once); about 350 KiB of scratch per aggregator. Per
 * context: its slot in the two tables, 48 bytes of struct, one block with its name, host and
 * tags, and, while sampled in the open bucket, a histogram's, set's or sketch's state; per
 * sampled context bucket until the flush, a 40-byte struct sealed.
 */
#include "agg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <remora/error.h>

#include "../../lib/ddsketch/ddsketch.h"
#include "parse.h"

#define NS_PER_S             1000000000LL

#define MAX_MSG_TAGS         1024  /* tags of one message; more: refused as too_long */
#define MAX_TAGGER_TAGS      256   /* tags taken from the tagger per lookup */
#define TAGGER_TEXT_BYTES    16384 /* their text */
#define MAX_CTX_TAGS         (MAX_MSG_TAGS + DSD_MAX_EXTRA_TAGS + 2 * MAX_TAGGER_TAGS)
#define RECORDS_PER_BATCH    1024
#define PENDING_MAX          64
#define HIST_MAX_SAMPLES     65536u /* stored samples per histogram per bucket */
#define SET_MAX_MEMBERS      65536u /* members per set per bucket */
#define DEFAULT_STATE_LIMIT  ((uint64_t)1 << 20)
#define HIST_FAIR_MIN        256u /* samples a histogram may always hold, budget permitting */
#define DEFAULT_MAX_CONTEXTS 100000u
#define MAX_PERCENTILES      16
#define LAST_ERROR_BYTES     96
#define PARSE_CHUNK          32 /* metrics of a packet resolved together (see drain()) */

#define ALIAS_BIT            0x80000000u
#define NOT_FOUND            UINT32_MAX

/* ---- hashing ---------------------------------------------------------------------------------
 *
 * A 64-bit hash in the style of wyhash (public domain): 16 bytes per 128-bit multiply-fold
 * round, three lanes for long inputs. Seeded per aggregator. */

static const uint64_t K0 = 0xa0761d6478bd642full;
static const uint64_t K1 = 0xe7037ed1a0b428dbull;
static const uint64_t K2 = 0x8ebc6af09c88c6e3ull;
static const uint64_t K3 = 0x589965cc75374cc3ull;

static inline uint64_t fold(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t hash_bytes(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t a, b;
    if (len <= 16) {
        if (len >= 4) {
            size_t q = (len >> 3) << 2;
            a = (rd32(p) << 32) | rd32(p + q);
            b = (rd32(p + len - 4) << 32) | rd32(p + len - 4 - q);
        } else if (len > 0) {
            a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) | p[len - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = len;
        if (i > 48) {
            uint64_t s1 = seed, s2 = seed;
            do {
                seed = fold(rd64(p) ^ K1, rd64(p + 8) ^ seed);
                s1 = fold(rd64(p + 16) ^ K2, rd64(p + 24) ^ s1);
                s2 = fold(rd64(p + 32) ^ K3, rd64(p + 40) ^ s2);
                p += 48;
                i -= 48;
            } while (i > 48);
            seed ^= s1 ^ s2;
        }
        while (i > 16) {
            seed = fold(rd64(p) ^ K1, rd64(p + 8) ^ seed);
            p += 16;
            i -= 16;
        }
        /* The last 16 bytes, overlapping what came before: len > 16 keeps it in bounds. */
        a = rd64(p + i - 16);
        b = rd64(p + i - 8);
    }
    a ^= K1;
    b ^= seed;
    __uint128_t r = (__uint128_t)a * b;
    a = (uint64_t)r;
    b = (uint64_t)(r >> 64);
    return fold(a ^ K0 ^ len, b ^ K1);
}

/* ---- state ------------------------------------------------------------------------------------
 */

enum cls { CLS_GAUGE = 0, CLS_COUNTER, CLS_HIST, CLS_SET, CLS_DIST };

/* A message's tag on the hot path: where it is and its hash. */
struct tagref {
    const char *ptr;
    uint32_t len;
    uint32_t klen; /* key length (to the first ':'), filled when a context is made */
    uint64_t h;
};

/* A histogram's bucket. The samples are kept as the Agent keeps them, for exact medians and
 * percentiles: values in v, 8 bytes each; weights in w only once a weight other than 1 came
 * (a sample rate) or equal values were merged, so the common case costs 8 bytes a sample. */
struct hist {
    double *v;
    uint64_t *w; /* NULL: every weight is 1 */
    uint32_t n, cap;
    int64_t count;  /* total weight, as the Agent's h.count */
    int64_t stored; /* weight of the samples kept */
    uint64_t seen;  /* samples offered this bucket (for the reservoir once full) */
    double sum, min, max;
};

struct set {
    uint64_t *slots; /* member hashes, 0 = empty */
    uint32_t n, cap;
};

/* One context: a series (or, for histograms, a family of series) of one bucket. */
struct ctx {
    uint64_t key;
    int64_t last_ns; /* the last sample's packet time */
    char *blob;      /* name, host, then per tag: u16 key length, u16 value length, key, value */
    uint32_t name_len;
    uint16_t host_len;
    uint16_t ntags;
    uint8_t cls; /* enum cls */
    uint8_t sampled;
    uint8_t live;
    uint32_t next_free;
    union {
        double v; /* counter: sum(value / rate); gauge: the last value */
        struct hist *h;
        struct set *set;
        struct ddsketch *sk;
    } u;
};

/* An origin-keyed entry: leads to the context of the final tags. */
struct alias {
    int64_t last_ns;
    int64_t retry_ns; /* 0: resolved; else when to ask the tagger again */
    uint32_t ctx;
    uint32_t next_free;
    uint8_t live;
};

/* An open-addressing table of 64-bit keys (0 = empty) to a context index (or an alias index
 * with ALIAS_BIT), linear probing, deletion by backward shift (no tombstones). Key and value
 * share a 16-byte slot, so a probe touches one cache line. */
struct slot {
    uint64_t key;
    uint32_t val;
    uint32_t reserved_;
};

struct table {
    struct slot *slots;
    uint32_t cap; /* a power of two */
    uint32_t used;
};

/* A context's closed bucket, detached under the lock (seal_ctx) and built into records
 * without it (dsd_agg_build): the context's metadata is copied, its value or its state (a
 * histogram's samples, a set, a sketch) moved out, so the reader goes on with fresh state. */
struct sealed {
    const char *blob; /* the context's; freed only after the build (see struct outbox) */
    int64_t bucket_s;
    uint32_t name_len;
    uint16_t host_len;
    uint16_t ntags;
    uint8_t cls;
    union {
        double v;
        struct hist *h;
        struct set *set;
        struct ddsketch *sk;
    } u;
};

/* What a flush takes: closed buckets, batches that passed through, and blobs of contexts
 * expired before (which sealed entries may still point at). Filled under the lock as "acc";
 * dsd_agg_detach() moves it to "taken", which dsd_agg_build() uses alone. */
struct outbox {
    struct sealed *recs;
    uint32_t n, cap;
    char **grave;
    uint32_t ngrave, gcap;
    rmr_batch_t *pending[PENDING_MAX];
    uint32_t pending_records[PENDING_MAX];
    uint32_t npending;
    /* Build results (taken only). */
    uint32_t next; /* recs[0, next) are built (dsd_agg_build_some) */
    rmr_batch_t *cur;
    uint32_t cur_records;
    uint64_t emitted, dropped;
    int first_error;
};

/* A parsed metric waiting in the chunk (see drain()). */
struct chunk_msg {
    struct dsd_msg msg;
    const char *line;
    uint32_t len;
    uint32_t ci;
    int with_cid;
    uint64_t name_h, rkey;
};

struct dsd_agg {
    rmr_instance_t *ins;
    struct dsd_agg_config cfg;
    const char *aggs[8]; /* validated histogram aggregates */
    uint32_t naggs;
    int pct[MAX_PERCENTILES]; /* percentiles as the Agent keeps them: int(p * 100 + 0.5) */
    uint32_t npct;
    uint64_t seed;
    uint64_t rng; /* xorshift64 state for the histograms' reservoirs */
    int can_lookup;

    struct table hot;   /* raw keys (see raw_key): the hot path's only table */
    struct table canon; /* canonical keys: looked at when a form is first seen */
    struct ctx *ctxs;
    uint32_t nctx_slots, ctx_cap, ctx_free, nctx;
    struct alias *aliases;
    uint32_t nalias_slots, alias_cap, alias_free, nalias;
    uint64_t nraw;        /* entries of hot pointing straight at contexts (not aliases) */
    uint64_t state_bytes; /* histogram samples, set tables and sketches */
    uint64_t state_limit;

    /* Buckets (unix seconds). */
    int open_set;
    int64_t open_s;
    int64_t zero_through_s; /* the last bucket whose counters were zero-filled */
    int64_t counter_last_s; /* the latest sample of any counter */
    uint32_t ncounters;
    uint32_t nhists; /* histogram contexts, for their fair share of state_limit */

    /* Output. */
    rmr_batch_t *pass; /* events, service checks, timestamped metrics */
    uint32_t pass_records;
    struct outbox acc;    /* under the lock */
    struct outbox taken;  /* the flush's own, between detach and finish */
    uint64_t detach_work; /* test hook: entries moved by the last dsd_agg_detach() */

    struct dsd_agg_stats stats;
    enum dsd_error last_error;
    uint64_t errors_total; /* every stats.errors[] increment, summed */
    char last_msg[LAST_ERROR_BYTES];
    size_t last_len;

    /* dogstatsd_tags as message tags ("key:value" or "key" in extra_text, hashed). */
    struct tagref extra[DSD_MAX_EXTRA_TAGS];
    uint32_t nextra;
    char *extra_text;

    /* Scratch, reused by every message (never on the stack: it is large). */
    struct chunk_msg chunk[PARSE_CHUNK];
    uint32_t nchunk;
    struct tagref tags[MAX_CTX_TAGS];
    uint32_t ntags;
    struct rmr_tag otags[MAX_CTX_TAGS];
    struct rmr_tag ttags[2 * MAX_TAGGER_TAGS]; /* from the tagger, text in ttext */
    uint32_t nttags;
    char ttext[2 * TAGGER_TEXT_BYTES];
    uint32_t ttext_used;
    char name_buf[DSD_MAX_NAME + 32];
    char text_buf[DSD_MAX_MESSAGE];
    char text_buf2[DSD_MAX_MESSAGE];
    /* The builder's scratch (dsd_agg_build, without the lock). */
    struct rmr_tag b_otags[MAX_CTX_TAGS];
    char b_name_buf[DSD_MAX_NAME + 32];
};

/* What scanning a message's tags found. */
struct scan {
    struct dsd_span host;
    int has_host;
    struct dsd_span entity; /* dd.internal.entity_id */
    uint64_t tags_x;        /* XOR of the distinct tags' hashes */
};

/* ---- config ------------------------------------------------------------------------------------
 */

static const char *const default_aggs[] = {"max", "median", "avg", "count", NULL};
static const double default_pcts[] = {0.95};

void dsd_agg_config_default(struct dsd_agg_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bucket_s = 10;
    cfg->expiry_s = 300;
    cfg->max_contexts = DEFAULT_MAX_CONTEXTS;
    cfg->counts_as_count = 0;
    cfg->aggregates = default_aggs;
    cfg->percentiles = default_pcts;
    cfg->npercentiles = 1;
    cfg->origin_detection = 1;
    cfg->state_limit_bytes = 0;
}

static int cmp_int(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

/* ---- table ------------------------------------------------------------------------------------
 */

static uint32_t table_get(const struct table *t, uint64_t key)
{
    uint32_t mask = t->cap - 1;
    for (uint32_t i = (uint32_t)key & mask;; i = (i + 1) & mask) {
        const struct slot *sl = &t->slots[i];
        if (sl->key == key)
            return sl->val;
        if (sl->key == 0)
            return NOT_FOUND;
    }
}

static void table_put_nogrow(struct table *t, uint64_t key, uint32_t val)
{
    uint32_t mask = t->cap - 1;
    uint32_t i = (uint32_t)key & mask;
    while (t->slots[i].key != 0)
        i = (i + 1) & mask;
    t->slots[i].key = key;
    t->slots[i].val = val;
    t->used++;
}

static int table_init(struct table *t, uint32_t cap)
{
    t->slots = calloc(cap, sizeof *t->slots);
    t->cap = cap;
    t->used = 0;
    return t->slots != NULL ? 0 : RMR_ENOMEM;
}

/* Inserts a key known to be absent, growing at 3/4 load. */
static int table_put(struct table *t, uint64_t key, uint32_t val)
{
    if ((uint64_t)(t->used + 1) * 4 > (uint64_t)t->cap * 3) {
        struct table n;
        if (t->cap >= (1u << 30) || table_init(&n, t->cap * 2) != 0)
            return RMR_ENOMEM;
        for (uint32_t i = 0; i < t->cap; i++)
            if (t->slots[i].key != 0)
                table_put_nogrow(&n, t->slots[i].key, t->slots[i].val);
        free(t->slots);
        *t = n;
    }
    table_put_nogrow(t, key, val);
    return 0;
}

/* Removes slot i and shifts the entries after it back, so probing never needs tombstones. */
static void table_delete_slot(struct table *t, uint32_t i)
{
    uint32_t mask = t->cap - 1;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (t->slots[j].key == 0)
            break;
        uint32_t home = (uint32_t)t->slots[j].key & mask;
        /* Entry j may move to i unless its home lies cyclically in (i, j]. */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
            continue;
        t->slots[i] = t->slots[j];
        i = j;
    }
    t->slots[i].key = 0;
    t->used--;
}

/* Drops the entries whose context or alias is dead; returns how many pointed straight at a
 * context. */
static uint32_t table_sweep(struct dsd_agg *a, struct table *t)
{
    uint32_t direct = 0;
    for (uint32_t i = 0; i < t->cap;) {
        uint32_t v = t->slots[i].val;
        int dead = t->slots[i].key != 0 &&
                   ((v & ALIAS_BIT) ? !a->aliases[v & ~ALIAS_BIT].live : !a->ctxs[v].live);
        if (dead) {
            direct += !(v & ALIAS_BIT);
            table_delete_slot(t, i); /* an entry may have moved into i: look again */
        } else {
            i++;
        }
    }
    return direct;
}

/* ---- memory bounded state ----------------------------------------------------------------------
 */

static int state_reserve(struct dsd_agg *a, uint64_t more)
{
    if (a->state_bytes + more > a->state_limit)
        return 0;
    a->state_bytes += more;
    return 1;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static uint64_t hist_w(const struct hist *h, uint32_t i)
{
    return h->w != NULL ? h->w[i] : 1;
}

static void swap_at(struct hist *h, uint32_t i, uint32_t j)
{
    double tv = h->v[i];
    uint64_t tw = h->w[i];
    h->v[i] = h->v[j];
    h->w[i] = h->w[j];
    h->v[j] = tv;
    h->w[j] = tw;
}

static void sift_down(struct hist *h, uint32_t root, uint32_t n)
{
    for (;;) {
        uint32_t c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && h->v[c + 1] > h->v[c])
            c++;
        if (!(h->v[c] > h->v[root]))
            return;
        swap_at(h, root, c);
        root = c;
    }
}

/* Sorts the samples by value: qsort without weights, an in-place heapsort of the two arrays
 * with them (no memory needed). Values are finite, so the order is total. */
static void hist_sort(struct hist *h)
{
    if (h->n < 2)
        return;
    if (h->w == NULL) {
        qsort(h->v, h->n, sizeof *h->v, cmp_double);
        return;
    }
    for (uint32_t i = h->n / 2; i-- > 0;)
        sift_down(h, i, h->n);
    for (uint32_t end = h->n - 1; end > 0; end--) {
        swap_at(h, 0, end);
        sift_down(h, 0, end);
    }
}

/* Gives the histogram a weight array (all 1 so far). Returns 0 when the bound refuses it. */
static int hist_add_weights(struct dsd_agg *a, struct hist *h)
{
    if (h->cap == 0 || !state_reserve(a, (uint64_t)h->cap * sizeof *h->w))
        return 0;
    h->w = malloc((size_t)h->cap * sizeof *h->w);
    if (h->w == NULL) {
        a->state_bytes -= (uint64_t)h->cap * sizeof *h->w;
        return 0;
    }
    for (uint32_t i = 0; i < h->n; i++)
        h->w[i] = 1;
    return 1;
}

/* Makes room for one more sample: grows the arrays, or else sorts them and merges equal
 * values (their weights add, which changes no aggregate). Returns 0 when neither helps. */
static int hist_make_room(struct dsd_agg *a, struct hist *h)
{
    uint32_t ncap = h->cap != 0 ? h->cap * 2 : 8;
    size_t per = sizeof *h->v + (h->w != NULL ? sizeof *h->w : 0);
    /* A fair share of the bound (16 bytes a sample with weights), so that the first busy
     * histograms of a bucket do not leave the others 8 samples each. */
    uint64_t fair = a->state_limit / 16 / (a->nhists != 0 ? a->nhists : 1);
    /* Without weights yet, grow only while the weights could still be added later, so that
     * merging equal values stays possible when the bound is reached. */
    uint64_t headroom = h->w == NULL ? (uint64_t)ncap * sizeof *h->w : 0;
    if (ncap <= HIST_MAX_SAMPLES && (ncap <= HIST_FAIR_MIN || ncap <= fair) &&
        a->state_bytes + headroom <= a->state_limit &&
        state_reserve(a, (uint64_t)(ncap - h->cap) * per + headroom)) {
        a->state_bytes -= headroom;
        double *nv = realloc(h->v, (size_t)ncap * sizeof *nv);
        if (nv != NULL)
            h->v = nv;
        uint64_t *nw = NULL;
        if (nv != NULL && h->w != NULL && (nw = realloc(h->w, (size_t)ncap * sizeof *nw)) != NULL)
            h->w = nw;
        if (nv != NULL && (h->w == NULL || nw != NULL)) {
            h->cap = ncap;
            return 1;
        }
        a->state_bytes -= (uint64_t)(ncap - h->cap) * per; /* realloc failed: old arrays kept */
    }
    if (h->n < 2)
        return 0;
    if (h->w == NULL && !hist_add_weights(a, h))
        return 0;
    hist_sort(h);
    uint32_t k = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        if (k > 0 && h->v[k - 1] == h->v[i]) {
            h->w[k - 1] += h->w[i];
        } else {
            h->v[k] = h->v[i];
            h->w[k] = h->w[i];
            k++;
        }
    }
    h->n = k;
    return (uint64_t)k * 4 <= (uint64_t)h->cap * 3;
}

static void hist_add(struct dsd_agg *a, struct hist *h, double v, uint64_t w, double inv)
{
    if (h->count == 0 || v > h->max)
        h->max = v;
    if (h->count == 0 || v < h->min)
        h->min = v;
    h->sum += v * inv;
    h->count += (int64_t)w;
    h->seen++;
    if ((h->n == h->cap && !hist_make_room(a, h)) ||
        (w != 1 && h->w == NULL && !hist_add_weights(a, h))) {
        /* Beyond the bounds: count, sum, min and max stay exact; the kept samples become a
         * uniform sample of the bucket (reservoir sampling, Vitter's algorithm R), so the
         * median and percentiles stay unbiased estimates. */
        a->stats.samples_capped++;
        a->rng ^= a->rng << 13;
        a->rng ^= a->rng >> 7;
        a->rng ^= a->rng << 17;
        uint64_t j = a->rng % h->seen;
        if (j < h->n && (w == 1 || h->w != NULL)) {
            h->stored += (int64_t)w - (int64_t)hist_w(h, (uint32_t)j);
            h->v[j] = v;
            if (h->w != NULL)
                h->w[j] = w;
        }
        return;
    }
    h->v[h->n] = v;
    if (h->w != NULL)
        h->w[h->n] = w;
    h->n++;
    h->stored += (int64_t)w;
}

static uint64_t hist_bytes(const struct hist *h)
{
    return (uint64_t)h->cap * (sizeof *h->v + (h->w != NULL ? sizeof *h->w : 0));
}

static void hist_reset(struct dsd_agg *a, struct hist *h)
{
    /* Keeps its memory for the next bucket unless it was mostly unused; weights go (the next
     * bucket may not need them). */
    if (h->w != NULL) {
        a->state_bytes -= (uint64_t)h->cap * sizeof *h->w;
        free(h->w);
        h->w = NULL;
    }
    if (h->cap > 64 && h->n < h->cap / 8) {
        a->state_bytes -= (uint64_t)h->cap * sizeof *h->v;
        free(h->v);
        h->v = NULL;
        h->cap = 0;
    }
    h->n = 0;
    h->count = 0;
    h->stored = 0;
    h->seen = 0;
    h->sum = 0;
}

static void set_add(struct dsd_agg *a, struct set *s, uint64_t mh)
{
    if (mh == 0)
        mh = 1;
    if (s->cap != 0) {
        uint32_t mask = s->cap - 1;
        for (uint32_t i = (uint32_t)mh & mask;; i = (i + 1) & mask) {
            if (s->slots[i] == mh)
                return;
            if (s->slots[i] == 0)
                break;
        }
    }
    if ((uint64_t)(s->n + 1) * 2 > s->cap) {
        uint32_t ncap = s->cap != 0 ? s->cap * 2 : 16;
        uint64_t *ns = NULL;
        if (s->n < SET_MAX_MEMBERS && state_reserve(a, (uint64_t)(ncap - s->cap) * 8)) {
            ns = calloc(ncap, 8);
            if (ns == NULL)
                a->state_bytes -= (uint64_t)(ncap - s->cap) * 8;
        }
        if (ns == NULL) {
            a->stats.samples_capped++;
            return;
        }
        for (uint32_t i = 0; i < s->cap; i++) {
            if (s->slots[i] == 0)
                continue;
            uint32_t j = (uint32_t)s->slots[i] & (ncap - 1);
            while (ns[j] != 0)
                j = (j + 1) & (ncap - 1);
            ns[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = ns;
        s->cap = ncap;
    }
    uint32_t mask = s->cap - 1;
    uint32_t i = (uint32_t)mh & mask;
    while (s->slots[i] != 0)
        i = (i + 1) & mask;
    s->slots[i] = mh;
    s->n++;
}

static void set_reset(struct dsd_agg *a, struct set *s)
{
    if (s->cap > 1024 && s->n < s->cap / 16) {
        a->state_bytes -= (uint64_t)s->cap * 8;
        free(s->slots);
        s->slots = NULL;
        s->cap = 0;
    } else if (s->n != 0) {
        memset(s->slots, 0, (size_t)s->cap * 8);
    }
    s->n = 0;
}

/* ---- contexts ----------------------------------------------------------------------------------
 */

static void ctx_release_state(struct dsd_agg *a, struct ctx *c)
{
    switch ((enum cls)c->cls) {
    case CLS_HIST:
        if (c->u.h != NULL) {
            a->state_bytes -= hist_bytes(c->u.h);
            free(c->u.h->v);
            free(c->u.h->w);
            free(c->u.h);
        }
        break;
    case CLS_SET:
        if (c->u.set != NULL) {
            a->state_bytes -= (uint64_t)c->u.set->cap * 8;
            free(c->u.set->slots);
            free(c->u.set);
        }
        break;
    case CLS_DIST:
        if (c->u.sk != NULL) {
            a->state_bytes -= ddsketch_mem_bytes(c->u.sk);
            ddsketch_release(c->u.sk);
            free(c->u.sk);
        }
        break;
    case CLS_GAUGE:
    case CLS_COUNTER: break;
    }
    free(c->blob);
    c->blob = NULL;
}

static int cmp_tag_hash(const void *x, const void *y)
{
    uint64_t a = ((const struct tagref *)x)->h, b = ((const struct tagref *)y)->h;
    return (a > b) - (a < b);
}

/* Drops duplicates (by hash) from tags[0..n) in place; returns the new count and the XOR of
 * the distinct hashes. Small sets compare pairwise; large ones sort by hash first. */
static uint32_t dedup_tags(struct tagref *tags, uint32_t n, uint64_t *x)
{
    uint32_t k = 0;
    uint64_t acc = 0;
    if (n <= 24) {
        for (uint32_t i = 0; i < n; i++) {
            uint32_t j = 0;
            while (j < k && tags[j].h != tags[i].h)
                j++;
            if (j < k)
                continue;
            tags[k++] = tags[i];
            acc ^= tags[i].h;
        }
    } else {
        qsort(tags, n, sizeof *tags, cmp_tag_hash);
        for (uint32_t i = 0; i < n; i++) {
            if (k > 0 && tags[k - 1].h == tags[i].h)
                continue;
            tags[k++] = tags[i];
            acc ^= tags[i].h;
        }
    }
    *x = acc;
    return k;
}

static int has_prefix(const char *p, size_t n, const char *pre, size_t plen)
{
    return n >= plen && memcmp(p, pre, plen) == 0;
}

/* Reads a message's tags into a->tags (distinct, hashed) followed by dogstatsd_tags, which
 * the Agent appends before it keys the context (so "#team:x" sent and team:x added are one
 * tag, and a message with it and one without are one context), taking out the special ones
 * as enrich.go does: "host:" (the record's host, the last one wins), "dd.internal.entity_id:"
 * (an origin), "dd.internal.card:" (unless a "|card:" field was given, then it stays a tag),
 * and "dd.internal.jmx_check_name:". Empty tags are dropped, and "key:" counts as the bare
 * tag "key": the record model renders both the same way. Returns -1 beyond MAX_MSG_TAGS. */
static int scan_tags(struct dsd_agg *a, int has_tags, struct dsd_span tags,
                     const struct dsd_origin *o, struct scan *sc)
{
    /* The Agent reads "|card:" only with origin detection on. */
    int card_field = a->cfg.origin_detection && o->cardinality.len != 0;
    uint32_t n = 0;
    memset(sc, 0, sizeof *sc);
    struct dsd_span rest = tags, t;
    while (has_tags && dsd_tags_next(&rest, &t)) {
        if (t.len == 0)
            continue;
        if (t.ptr[0] == 'h' && has_prefix(t.ptr, t.len, "host:", 5)) {
            sc->host.ptr = t.ptr + 5;
            sc->host.len = t.len - 5;
            sc->has_host = 1;
            continue;
        }
        if (t.ptr[0] == 'd' && has_prefix(t.ptr, t.len, "dd.internal.", 12)) {
            if (has_prefix(t.ptr, t.len, "dd.internal.entity_id:", 22)) {
                sc->entity.ptr = t.ptr + 22;
                sc->entity.len = t.len - 22;
                continue;
            }
            if (has_prefix(t.ptr, t.len, "dd.internal.card:", 17) && !card_field)
                continue;
            if (has_prefix(t.ptr, t.len, "dd.internal.jmx_check_name:", 27))
                continue;
        }
        uint32_t len = t.len;
        if (t.ptr[len - 1] == ':' && memchr(t.ptr, ':', len) == t.ptr + len - 1)
            len--;
        if (len == 0)
            continue; /* ":" alone */
        if (n == MAX_MSG_TAGS)
            return -1;
        a->tags[n].ptr = t.ptr;
        a->tags[n].len = len;
        a->tags[n].h = hash_bytes(t.ptr, len, a->seed);
        n++;
    }
    for (uint32_t i = 0; i < a->nextra; i++)
        a->tags[n++] = a->extra[i];
    a->ntags = dedup_tags(a->tags, n, &sc->tags_x);
    return 0;
}

/* The canonical key of a context: name, the distinct final tags (XOR: order does not matter),
 * host and class. */
static uint64_t make_key(const struct dsd_agg *a, uint64_t name_h, uint64_t tags_x, uint64_t host_h,
                         uint32_t cls)
{
    uint64_t k = fold(name_h ^ a->seed ^ K0, tags_x ^ K1) ^ fold(host_h ^ K2, (cls + 1) ^ K3);
    return k != 0 ? k : 1;
}

static uint64_t host_hash(const struct dsd_agg *a, const struct scan *sc)
{
    /* An empty "host:" and no host tag are the same: the record's host stays the default. */
    return sc->host.len != 0 ? hash_bytes(sc->host.ptr, sc->host.len, a->seed ^ K2) : 0;
}

static enum cls cls_of(uint32_t type)
{
    switch ((enum dsd_mtype)type) {
    case DSD_GAUGE: return CLS_GAUGE;
    case DSD_COUNT: return CLS_COUNTER;
    case DSD_HISTOGRAM:
    case DSD_TIMING: return CLS_HIST;
    case DSD_SET: return CLS_SET;
    case DSD_DISTRIBUTION: return CLS_DIST;
    case DSD_MTYPE_COUNT: break;
    }
    return CLS_GAUGE;
}

/* The tagger's answer for one origin, appended to a->ttags (copied: the callback's memory is
 * borrowed for the call only). Beyond the scratch bounds the rest is left out. */
static void tagger_cb(void *arg, const struct rmr_tag *tags, uint32_t ntags)
{
    struct dsd_agg *a = arg;
    for (uint32_t i = 0; i < ntags && a->nttags < 2 * MAX_TAGGER_TAGS; i++) {
        uint32_t kl = tags[i].key.len, vl = tags[i].value.len;
        if (kl == 0 || kl > 0xffff || vl > 0xffff ||
            (uint64_t)a->ttext_used + kl + vl + 1 > sizeof a->ttext)
            continue;
        char *p = a->ttext + a->ttext_used;
        memcpy(p, tags[i].key.ptr, kl);
        if (vl != 0) {
            p[kl] = ':';
            memcpy(p + kl + 1, tags[i].value.ptr, vl);
        }
        struct rmr_tag *t = &a->ttags[a->nttags++];
        t->key = rmr_str_n(p, kl);
        t->value = rmr_str_n(vl != 0 ? p + kl + 1 : NULL, vl);
        a->ttext_used += kl + (vl != 0 ? vl + 1 : 0);
    }
}

/* Asks the tagger about the message's origins; returns 1 when it knew at least one. */
static int lookup_origin(struct dsd_agg *a, struct dsd_span cid, struct dsd_span entity)
{
    int known = 0;
    a->nttags = 0;
    a->ttext_used = 0;
    if (!a->can_lookup)
        return 0;
    if (cid.len != 0 && rmr_tagger_lookup(a->ins, cid.ptr, cid.len, tagger_cb, a) == 0)
        known = 1;
    if (entity.len != 0 && rmr_tagger_lookup(a->ins, entity.ptr, entity.len, tagger_cb, a) == 0)
        known = 1;
    return known;
}

static int cmp_tag_text(const void *x, const void *y)
{
    const struct tagref *a = x, *b = y;
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(a->ptr, b->ptr, n);
    if (c != 0)
        return c;
    if (a->klen != b->klen)
        return a->klen < b->klen ? -1 : 1;
    /* Same key: compare the values (after the ':'). */
    uint32_t av = a->len > a->klen ? a->len - a->klen - 1 : 0;
    uint32_t bv = b->len > b->klen ? b->len - b->klen - 1 : 0;
    n = av < bv ? av : bv;
    c = n != 0 ? memcmp(a->ptr + a->klen + 1, b->ptr + b->klen + 1, n) : 0;
    if (c != 0)
        return c;
    return (av > bv) - (av < bv);
}

/* Adds the tagger's tags to a->tags (after the message's), dedups them, and returns the
 * final tags' XOR. The tagger's "key:value" text is hashed like a message tag would be. */
static uint64_t merge_tagger_tags(struct dsd_agg *a)
{
    uint32_t n = a->ntags;
    for (uint32_t i = 0; i < a->nttags && n < MAX_CTX_TAGS; i++) {
        const struct rmr_tag *t = &a->ttags[i];
        uint32_t len = t->key.len + (t->value.len != 0 ? t->value.len + 1 : 0);
        a->tags[n].ptr = t->key.ptr; /* key, ':' and value are contiguous in ttext */
        a->tags[n].len = len;
        a->tags[n].h = hash_bytes(t->key.ptr, len, a->seed);
        n++;
    }
    uint64_t x;
    a->ntags = dedup_tags(a->tags, n, &x);
    return x;
}

/* Makes a context for the final tags in a->tags; returns its index or NOT_FOUND. */
static uint32_t ctx_create(struct dsd_agg *a, uint64_t key, const struct dsd_metric *m,
                           const struct scan *sc, enum cls cls)
{
    if (a->nctx >= a->cfg.max_contexts)
        return NOT_FOUND;
    /* Canonical order: by key, then value, as the host's tag sets are. */
    size_t blob_len = m->name.len + sc->host.len;
    for (uint32_t i = 0; i < a->ntags; i++) {
        struct tagref *t = &a->tags[i];
        const char *c = memchr(t->ptr, ':', t->len);
        t->klen = c != NULL ? (uint32_t)(c - t->ptr) : t->len;
        blob_len += 4 + t->klen + (t->len > t->klen ? t->len - t->klen - 1 : 0);
    }
    qsort(a->tags, a->ntags, sizeof a->tags[0], cmp_tag_text);
    if (a->ntags > 0xffff || sc->host.len > 0xffff)
        return NOT_FOUND;

    char *blob = malloc(blob_len != 0 ? blob_len : 1);
    if (blob == NULL)
        return NOT_FOUND;
    char *p = blob;
    memcpy(p, m->name.ptr, m->name.len);
    p += m->name.len;
    if (sc->host.len != 0)
        memcpy(p, sc->host.ptr, sc->host.len);
    p += sc->host.len;
    for (uint32_t i = 0; i < a->ntags; i++) {
        const struct tagref *t = &a->tags[i];
        uint16_t kl = (uint16_t)t->klen;
        uint16_t vl = (uint16_t)(t->len > t->klen ? t->len - t->klen - 1 : 0);
        memcpy(p, &kl, 2);
        memcpy(p + 2, &vl, 2);
        memcpy(p + 4, t->ptr, kl);
        if (vl != 0)
            memcpy(p + 4 + kl, t->ptr + kl + 1, vl);
        p += 4 + kl + vl;
    }

    void *state = NULL;
    switch (cls) {
    case CLS_HIST: state = calloc(1, sizeof(struct hist)); break;
    case CLS_SET: state = calloc(1, sizeof(struct set)); break;
    case CLS_DIST:
        state = malloc(sizeof(struct ddsketch));
        if (state != NULL)
            ddsketch_init(state);
        break;
    case CLS_GAUGE:
    case CLS_COUNTER: break;
    }
    if ((cls == CLS_HIST || cls == CLS_SET || cls == CLS_DIST) && state == NULL) {
        free(blob);
        return NOT_FOUND;
    }

    uint32_t idx;
    if (a->ctx_free != NOT_FOUND) {
        idx = a->ctx_free;
        a->ctx_free = a->ctxs[idx].next_free;
    } else {
        if (a->nctx_slots == a->ctx_cap) {
            uint32_t ncap = a->ctx_cap != 0 ? a->ctx_cap * 2 : 64;
            struct ctx *nc = realloc(a->ctxs, (size_t)ncap * sizeof *nc);
            if (nc == NULL) {
                free(blob);
                free(state);
                return NOT_FOUND;
            }
            a->ctxs = nc;
            a->ctx_cap = ncap;
        }
        idx = a->nctx_slots++;
    }
    if (table_put(&a->canon, key, idx) != 0) {
        memset(&a->ctxs[idx], 0, sizeof a->ctxs[idx]);
        a->ctxs[idx].next_free = a->ctx_free;
        a->ctx_free = idx;
        free(blob);
        if (cls == CLS_DIST)
            ddsketch_release(state);
        free(state);
        return NOT_FOUND;
    }
    struct ctx *c = &a->ctxs[idx];
    memset(c, 0, sizeof *c);
    c->key = key;
    c->blob = blob;
    c->name_len = m->name.len;
    c->host_len = (uint16_t)sc->host.len;
    c->ntags = (uint16_t)a->ntags;
    c->cls = (uint8_t)cls;
    c->live = 1;
    c->next_free = NOT_FOUND;
    switch (cls) {
    case CLS_HIST: c->u.h = state; break;
    case CLS_SET: c->u.set = state; break;
    case CLS_DIST: c->u.sk = state; break;
    case CLS_GAUGE:
    case CLS_COUNTER: c->u.v = 0; break;
    }
    if (cls == CLS_COUNTER)
        a->ncounters++;
    if (cls == CLS_HIST)
        a->nhists++;
    a->nctx++;
    a->stats.contexts_live = a->nctx;
    return idx;
}

static uint32_t alias_create(struct dsd_agg *a, uint64_t key, uint32_t target, int resolved,
                             int64_t now_ns)
{
    if (a->nalias >= a->cfg.max_contexts)
        return NOT_FOUND;
    uint32_t idx;
    if (a->alias_free != NOT_FOUND) {
        idx = a->alias_free;
        a->alias_free = a->aliases[idx].next_free;
    } else {
        if (a->nalias_slots == a->alias_cap) {
            uint32_t ncap = a->alias_cap != 0 ? a->alias_cap * 2 : 16;
            struct alias *na = realloc(a->aliases, (size_t)ncap * sizeof *na);
            if (na == NULL)
                return NOT_FOUND;
            a->aliases = na;
            a->alias_cap = ncap;
        }
        idx = a->nalias_slots++;
    }
    if (table_put(&a->hot, key, idx | ALIAS_BIT) != 0) {
        a->aliases[idx].live = 0;
        a->aliases[idx].ctx = NOT_FOUND;
        a->aliases[idx].next_free = a->alias_free;
        a->alias_free = idx;
        return NOT_FOUND;
    }
    struct alias *al = &a->aliases[idx];
    al->last_ns = now_ns;
    al->ctx = target;
    al->live = 1;
    al->next_free = NOT_FOUND;
    al->retry_ns = resolved ? 0 : now_ns + (int64_t)a->cfg.bucket_s * NS_PER_S;
    a->nalias++;
    a->stats.contexts_aliases = a->nalias;
    return idx;
}

/* The context of the final tags (message tags + the tagger's for the origin): found, or made.
 * a->tags holds the message's tags on entry and the final ones after. */
static uint32_t resolve_final(struct dsd_agg *a, const struct dsd_metric *m, const struct scan *sc,
                              enum cls cls, uint64_t name_h, uint64_t host_h, int *known)
{
    *known = lookup_origin(a, m->origin.container_id, sc->entity);
    uint64_t x = *known ? merge_tagger_tags(a) : sc->tags_x;
    uint64_t fkey = make_key(a, name_h, x, host_h, cls);
    uint32_t v = table_get(&a->canon, fkey);
    if (v == NOT_FOUND)
        return ctx_create(a, fkey, m, sc, cls);
    return v;
}

/* ---- output ------------------------------------------------------------------------------------
 */

static void pending_push(struct dsd_agg *a, rmr_batch_t *b, uint32_t nrecords)
{
    if (b == NULL)
        return;
    struct outbox *o = &a->acc;
    if (o->npending == PENDING_MAX) {
        /* The flush is late: hand the batch over now rather than hold more. */
        a->stats.records_flushed += nrecords;
        (void)rmr_emit(a->ins, b);
        return;
    }
    o->pending[o->npending] = b;
    o->pending_records[o->npending] = nrecords;
    o->npending++;
}

static int batch_add_kind(rmr_batch_t *b, uint32_t kind, const void *rec)
{
    switch ((enum rmr_record_kind)kind) {
    case RMR_REC_METRIC: return rmr_metric_add(b, rec);
    case RMR_REC_EVENT: return rmr_event_add(b, rec);
    case RMR_REC_CHECK: return rmr_check_add(b, rec);
    case RMR_REC_LOG:
    case RMR_REC_SPAN:
    case RMR_REC_OBJECT: break;
    }
    return RMR_EINVAL;
}

/* Adds a record to *bp (made on demand), moving a full batch to the pending list. */
static void add_record(struct dsd_agg *a, rmr_batch_t **bp, uint32_t *count, uint32_t kind,
                       const void *rec)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (*bp == NULL) {
            *bp = rmr_batch_new(a->ins, NULL);
            *count = 0;
            if (*bp == NULL)
                break;
        }
        int rc = batch_add_kind(*bp, kind, rec);
        if (rc == 0) {
            if (++*count >= RECORDS_PER_BATCH) {
                pending_push(a, *bp, *count);
                *bp = NULL;
            }
            return;
        }
        if (rc != RMR_ENOMEM || *count == 0)
            break;
        pending_push(a, *bp, *count); /* full: start another */
        *bp = NULL;
    }
    a->stats.records_dropped++;
}

/* ---- building records (dsd_agg_build: no lock; only the taken outbox, the config and the
 * builder's scratch) --------------------------------------------------------------------------- */

static void build_emit(struct dsd_agg *a)
{
    struct outbox *o = &a->taken;
    if (o->cur == NULL)
        return;
    int rc = rmr_emit(a->ins, o->cur);
    o->emitted += o->cur_records;
    if (rc != 0 && o->first_error == 0)
        o->first_error = rc;
    o->cur = NULL;
    o->cur_records = 0;
}

static void build_add(struct dsd_agg *a, const struct rmr_metric *m)
{
    struct outbox *o = &a->taken;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (o->cur == NULL) {
            o->cur = rmr_batch_new(a->ins, NULL);
            o->cur_records = 0;
            if (o->cur == NULL)
                break;
        }
        int rc = rmr_metric_add(o->cur, m);
        if (rc == 0) {
            if (++o->cur_records >= RECORDS_PER_BATCH)
                build_emit(a);
            return;
        }
        if (rc != RMR_ENOMEM || o->cur_records == 0)
            break;
        build_emit(a); /* full: start another */
    }
    o->dropped++;
}

/* Decodes a sealed entry's tags into a->b_otags. */
static void sealed_tags(struct dsd_agg *a, const struct sealed *c)
{
    const char *p = c->blob + c->name_len + c->host_len;
    for (uint32_t i = 0; i < c->ntags; i++) {
        uint16_t kl, vl;
        memcpy(&kl, p, 2);
        memcpy(&vl, p + 2, 2);
        a->b_otags[i].key = rmr_str_n(p + 4, kl);
        a->b_otags[i].value = rmr_str_n(vl != 0 ? p + 4 + kl : NULL, vl);
        p += 4 + kl + vl;
    }
}

static void emit_series(struct dsd_agg *a, const struct sealed *c, const char *suffix,
                        uint32_t type, double value, const struct rmr_sketch *sk)
{
    struct rmr_metric m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = type;
    if (suffix != NULL) {
        size_t sl = strlen(suffix);
        memcpy(a->b_name_buf, c->blob, c->name_len);
        memcpy(a->b_name_buf + c->name_len, suffix, sl);
        m.name = rmr_str_n(a->b_name_buf, c->name_len + sl);
    } else {
        m.name = rmr_str_n(c->blob, c->name_len);
    }
    m.value = value;
    m.time_ns = c->bucket_s * NS_PER_S;
    m.interval_ms = (int64_t)a->cfg.bucket_s * 1000;
    if (c->host_len != 0)
        m.host = rmr_str_n(c->blob + c->name_len, c->host_len);
    m.tags = a->b_otags;
    m.ntags = c->ntags;
    m.sketch = sk;
    build_add(a, &m);
}

static void emit_hist(struct dsd_agg *a, const struct sealed *c, struct hist *h)
{
    char suffix[32];
    hist_sort(h);
    for (uint32_t i = 0; i < a->naggs; i++) {
        const char *ag = a->aggs[i];
        double v = 0;
        uint32_t type = RMR_METRIC_GAUGE;
        if (strcmp(ag, "max") == 0) {
            v = h->max;
        } else if (strcmp(ag, "min") == 0) {
            v = h->min;
        } else if (strcmp(ag, "median") == 0) {
            /* The Agent's rule: the first sample whose running weight passes (count-1)/2. */
            if (h->n == 0)
                continue;
            int64_t target = (h->stored - 1) / 2, w = 0;
            for (uint32_t k = 0; k < h->n; k++) {
                w += (int64_t)hist_w(h, k);
                if (w > target) {
                    v = h->v[k];
                    break;
                }
            }
        } else if (strcmp(ag, "avg") == 0) {
            v = h->sum / (double)h->count;
        } else if (strcmp(ag, "sum") == 0) {
            v = h->sum;
        } else { /* count */
            v = (double)h->count / (double)a->cfg.bucket_s;
            type = RMR_METRIC_RATE;
        }
        suffix[0] = '.';
        strcpy(suffix + 1, ag);
        emit_series(a, c, suffix, type, v, NULL);
    }
    /* Percentiles: the first sample whose running weight passes (p * count - 1) / 100, in
     * the Agent's integer arithmetic (Go's division truncates toward zero, as C's does).
     * Nothing to rank when every sample was beyond the bounds. */
    int64_t w = 0;
    uint32_t idx = 0;
    for (uint32_t k = 0; k < h->n && idx < a->npct; k++) {
        w += (int64_t)hist_w(h, k);
        while (idx < a->npct && w > ((int64_t)a->pct[idx] * h->stored - 1) / 100) {
            snprintf(suffix, sizeof suffix, ".%dpercentile", a->pct[idx]);
            emit_series(a, c, suffix, RMR_METRIC_GAUGE, h->v[k], NULL);
            idx++;
        }
    }
}

/* Frees a sealed entry's moved state (its bytes left state_bytes when it was detached). */
static void sealed_free_state(struct sealed *c)
{
    switch ((enum cls)c->cls) {
    case CLS_HIST:
        free(c->u.h->v);
        free(c->u.h->w);
        free(c->u.h);
        break;
    case CLS_SET:
        free(c->u.set->slots);
        free(c->u.set);
        break;
    case CLS_DIST:
        ddsketch_release(c->u.sk);
        free(c->u.sk);
        break;
    case CLS_GAUGE:
    case CLS_COUNTER: break;
    }
}

/* Builds one sealed entry's records. */
static void build_sealed(struct dsd_agg *a, struct sealed *c)
{
    sealed_tags(a, c);
    switch ((enum cls)c->cls) {
    case CLS_COUNTER:
        if (a->cfg.counts_as_count)
            emit_series(a, c, NULL, RMR_METRIC_COUNT, c->u.v, NULL);
        else
            emit_series(a, c, NULL, RMR_METRIC_RATE, c->u.v / (double)a->cfg.bucket_s, NULL);
        break;
    case CLS_GAUGE: emit_series(a, c, NULL, RMR_METRIC_GAUGE, c->u.v, NULL); break;
    case CLS_SET: emit_series(a, c, NULL, RMR_METRIC_GAUGE, (double)c->u.set->n, NULL); break;
    case CLS_HIST: emit_hist(a, c, c->u.h); break;
    case CLS_DIST: {
        struct rmr_sketch view;
        ddsketch_view(c->u.sk, &view);
        emit_series(a, c, NULL, RMR_METRIC_DISTRIBUTION, 0, &view);
        break;
    }
    }
    sealed_free_state(c);
}

/* ---- sealing (under the lock: copies and pointer moves only) ----------------------------------
 */

static int sealed_push(struct dsd_agg *a, const struct sealed *e)
{
    struct outbox *o = &a->acc;
    if (o->n == o->cap) {
        uint32_t ncap = o->cap != 0 ? o->cap * 2 : 1024;
        struct sealed *nr = realloc(o->recs, (size_t)ncap * sizeof *nr);
        if (nr == NULL)
            return 0;
        o->recs = nr;
        o->cap = ncap;
    }
    o->recs[o->n++] = *e;
    return 1;
}

/* Detaches a context's bucket into acc (its records are built by dsd_agg_build()) and resets
 * the context. zero_fill: a counter that was not sampled is sealed as 0 when it was sampled
 * in the last expiry_s (the Agent's countersSampleZeroValue). */
static void seal_ctx(struct dsd_agg *a, struct ctx *c, int64_t bucket_s, int zero_fill)
{
    struct sealed e;
    int emit = 0;
    uint64_t bytes = 0;
    e.blob = c->blob;
    e.bucket_s = bucket_s;
    e.name_len = c->name_len;
    e.host_len = c->host_len;
    e.ntags = c->ntags;
    e.cls = c->cls;
    switch ((enum cls)c->cls) {
    case CLS_COUNTER:
        emit = c->sampled ||
               (zero_fill && c->last_ns / NS_PER_S + (int64_t)a->cfg.expiry_s > bucket_s);
        e.u.v = c->u.v;
        c->u.v = 0;
        break;
    case CLS_GAUGE:
        emit = c->sampled;
        e.u.v = c->u.v;
        break;
    case CLS_SET:
        emit = c->u.set != NULL && c->u.set->n != 0;
        e.u.set = c->u.set;
        bytes = emit ? (uint64_t)c->u.set->cap * 8 : 0;
        break;
    case CLS_HIST:
        emit = c->u.h != NULL && c->u.h->count != 0;
        e.u.h = c->u.h;
        if (emit)
            bytes = hist_bytes(c->u.h);
        else if (c->u.h != NULL)
            hist_reset(a, c->u.h);
        break;
    case CLS_DIST:
        emit = c->u.sk != NULL && c->u.sk->count != 0;
        e.u.sk = c->u.sk;
        bytes = emit ? ddsketch_mem_bytes(c->u.sk) : 0;
        break;
    }
    c->sampled = 0;
    if (!emit)
        return;
    if (!sealed_push(a, &e)) {
        a->stats.records_dropped++;
        switch ((enum cls)c->cls) {
        case CLS_SET: set_reset(a, c->u.set); break;
        case CLS_HIST: hist_reset(a, c->u.h); break;
        case CLS_DIST: ddsketch_reset(c->u.sk); break;
        case CLS_GAUGE:
        case CLS_COUNTER: break;
        }
        return;
    }
    /* The state went with the entry; the context makes a fresh one on its next sample. */
    a->state_bytes -= bytes;
    switch ((enum cls)c->cls) {
    case CLS_SET: c->u.set = NULL; break;
    case CLS_HIST: c->u.h = NULL; break;
    case CLS_DIST: c->u.sk = NULL; break;
    case CLS_GAUGE:
    case CLS_COUNTER: break;
    }
}

static void seal(struct dsd_agg *a, int64_t bucket_s)
{
    int zero_fill = bucket_s > a->zero_through_s;
    for (uint32_t i = 0; i < a->nctx_slots; i++) {
        struct ctx *c = &a->ctxs[i];
        if (c->live && (c->sampled || (zero_fill && c->cls == CLS_COUNTER)))
            seal_ctx(a, c, bucket_s, zero_fill);
    }
    if (zero_fill)
        a->zero_through_s = bucket_s;
}

/* Seals the open bucket and, for counters still within expiry, the empty buckets between it
 * and the bucket starting at b; then opens b. */
static void roll(struct dsd_agg *a, int64_t b)
{
    int64_t step = a->cfg.bucket_s;
    seal(a, a->open_s);
    for (int64_t x = a->open_s + step; x < b; x += step) {
        if (a->ncounters == 0 || a->counter_last_s + (int64_t)a->cfg.expiry_s <= x)
            break;
        seal(a, x);
    }
    a->open_s = b;
}

static int64_t bucket_of(const struct dsd_agg *a, int64_t now_ns)
{
    int64_t s = now_ns / NS_PER_S;
    if (now_ns < 0 && s * NS_PER_S != now_ns)
        s--;
    int64_t b = (int64_t)a->cfg.bucket_s;
    int64_t r = s % b;
    if (r < 0)
        r += b;
    return s - r;
}

static void advance(struct dsd_agg *a, int64_t now_ns)
{
    int64_t b = bucket_of(a, now_ns);
    if (!a->open_set) {
        a->open_set = 1;
        a->open_s = b;
        a->zero_through_s = b - (int64_t)a->cfg.bucket_s;
    } else if (b > a->open_s) {
        roll(a, b);
    }
    /* A clock that stepped back keeps feeding the open bucket. */
}

/* ---- the message handlers ---------------------------------------------------------------------
 */

static void remember_error(struct dsd_agg *a, enum dsd_error e, const char *msg, size_t len)
{
    a->stats.errors[e]++;
    a->errors_total++;
    a->last_error = e;
    a->last_len = len < LAST_ERROR_BYTES ? len : LAST_ERROR_BYTES;
    memcpy(a->last_msg, msg, a->last_len);
}

static uint64_t weight_of(double rate, double *inv)
{
    /* The Agent weighs a histogram or distribution sample int(1/rate); a rate above 1 counts as
     * 1 (the distribution's own rule; the histogram would give weight 0). */
    double r = rate > 1 ? 1 : rate;
    *inv = 1 / r;
    if (*inv >= 4294967295.0)
        return 4294967295u; /* the sketch's bins count in uint32 */
    uint64_t w = (uint64_t)*inv;
    return w != 0 ? w : 1;
}

/* Gives a context whose state went with a sealed bucket a fresh one. Returns 0 without
 * memory. */
static int ctx_state(struct ctx *c)
{
    switch ((enum cls)c->cls) {
    case CLS_HIST:
        if (c->u.h == NULL)
            c->u.h = calloc(1, sizeof *c->u.h);
        return c->u.h != NULL;
    case CLS_SET:
        if (c->u.set == NULL)
            c->u.set = calloc(1, sizeof *c->u.set);
        return c->u.set != NULL;
    case CLS_DIST:
        if (c->u.sk == NULL) {
            c->u.sk = malloc(sizeof *c->u.sk);
            if (c->u.sk != NULL)
                ddsketch_init(c->u.sk);
        }
        return c->u.sk != NULL;
    case CLS_GAUGE:
    case CLS_COUNTER: break;
    }
    return 1;
}

static void apply(struct dsd_agg *a, struct ctx *c, const struct dsd_metric *m, int64_t now_ns)
{
    struct dsd_span rest = m->values;
    double v = m->value, inv;
    uint64_t w;
    if (now_ns > c->last_ns)
        c->last_ns = now_ns; /* a clock stepping back does not age a context */
    if (!ctx_state(c)) {
        a->stats.samples_capped++;
        return;
    }
    switch ((enum cls)c->cls) {
    case CLS_SET:
        set_add(a, c->u.set, hash_bytes(m->values.ptr, m->values.len, a->seed ^ K3));
        c->sampled = 1;
        return;
    case CLS_COUNTER:
        if (now_ns / NS_PER_S > a->counter_last_s)
            a->counter_last_s = now_ns / NS_PER_S;
        break;
    case CLS_GAUGE:
    case CLS_HIST:
    case CLS_DIST: break;
    }
    w = weight_of(m->rate, &inv);
    for (uint32_t i = 0; i < m->nvalues; i++) {
        if (m->nvalues > 1 && !dsd_values_next(&rest, &v))
            break;
        if (!isfinite(v)) {
            a->stats.values_nonfinite++;
            continue;
        }
        switch ((enum cls)c->cls) {
        case CLS_COUNTER: c->u.v += v * (1 / m->rate); break;
        case CLS_GAUGE: c->u.v = v; break;
        case CLS_HIST: hist_add(a, c->u.h, v, w, inv); break;
        case CLS_DIST: {
            struct ddsketch *sk = c->u.sk;
            size_t before = ddsketch_mem_bytes(sk);
            if (ddsketch_insert(sk, v, (uint32_t)w) != 0) {
                a->stats.samples_capped++;
                continue;
            }
            /* The Agent's summary adds n * v with n = 1/rate untruncated. */
            sk->sum += v * (inv - (double)w);
            a->state_bytes += ddsketch_mem_bytes(sk) - before;
            break;
        }
        case CLS_SET: break;
        }
        c->sampled = 1;
    }
}

/* Tags for a record that passes through: the message's with dogstatsd_tags (a->tags) and the
 * tagger's. */
static uint32_t pass_tags(struct dsd_agg *a)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->ntags && n < MAX_CTX_TAGS; i++) {
        const struct tagref *t = &a->tags[i];
        const char *c = memchr(t->ptr, ':', t->len);
        uint32_t kl = c != NULL ? (uint32_t)(c - t->ptr) : t->len;
        a->otags[n].key = rmr_str_n(t->ptr, kl);
        a->otags[n].value = c != NULL ? rmr_str_n(c + 1, t->len - kl - 1) : rmr_str_n(NULL, 0);
        n++;
    }
    for (uint32_t i = 0; i < a->nttags && n < MAX_CTX_TAGS; i++)
        a->otags[n++] = a->ttags[i];
    return n;
}

static void pass_origin(struct dsd_agg *a, const struct dsd_origin *o, const struct scan *sc)
{
    a->nttags = 0;
    if (a->cfg.origin_detection)
        (void)lookup_origin(a, o->container_id, sc->entity);
}

static void handle_timestamped(struct dsd_agg *a, const struct dsd_metric *m, const struct scan *sc)
{
    if (m->type != DSD_GAUGE && m->type != DSD_COUNT) {
        a->stats.timestamped_unsupported++;
        return;
    }
    a->stats.timestamped++;
    pass_origin(a, &m->origin, sc);
    struct rmr_metric r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.name = rmr_str_n(m->name.ptr, m->name.len);
    r.time_ns = m->timestamp * NS_PER_S;
    r.interval_ms = (int64_t)a->cfg.bucket_s * 1000;
    if (sc->host.len != 0)
        r.host = rmr_str_n(sc->host.ptr, sc->host.len);
    r.ntags = pass_tags(a);
    r.tags = a->otags;
    struct dsd_span rest = m->values;
    double v = m->value;
    for (uint32_t i = 0; i < m->nvalues; i++) {
        if (m->nvalues > 1 && !dsd_values_next(&rest, &v))
            break;
        if (!isfinite(v)) {
            a->stats.values_nonfinite++;
            continue;
        }
        /* The Agent's no-aggregation pipeline: a gauge as is, a count as a rate over the
         * bucket (without the sample rate). */
        if (m->type == DSD_GAUGE) {
            r.type = RMR_METRIC_GAUGE;
            r.value = v;
        } else if (a->cfg.counts_as_count) {
            r.type = RMR_METRIC_COUNT;
            r.value = v;
        } else {
            r.type = RMR_METRIC_RATE;
            r.value = v / (double)a->cfg.bucket_s;
        }
        add_record(a, &a->pass, &a->pass_records, RMR_REC_METRIC, &r);
    }
}

/* The key of a series as sent: name, the tag list's bytes as they came (host:, entity id and
 * all), class, container id. A series that is always sent the same way (what clients do) is
 * found with two hashes and one probe, without splitting its tags. */
static uint64_t raw_key(const struct dsd_agg *a, uint64_t name_h, const struct dsd_metric *m,
                        enum cls cls, int with_cid)
{
    uint64_t tags_h = m->has_tags ? hash_bytes(m->tags.ptr, m->tags.len, a->seed ^ K2) : 0;
    uint64_t cid_h =
        with_cid ? hash_bytes(m->origin.container_id.ptr, m->origin.container_id.len, a->seed ^ K1)
                 : 0;
    /* "|card:" decides whether a dd.internal.card tag stays a tag. */
    int card_field = a->cfg.origin_detection && m->origin.cardinality.len != 0;
    uint64_t extra = (uint64_t)cls | (card_field ? 8u : 0u) | 16u;
    uint64_t k = fold(name_h ^ K2, tags_h ^ a->seed ^ K3) ^ fold(cid_h ^ K0, extra ^ K1);
    return k != 0 ? k : 1;
}

/* Remembers a raw key for a context, within the bound of 2 raw forms per context allowed on
 * average (beyond, the form takes the slow path each time). */
static void raw_put(struct dsd_agg *a, uint64_t rkey, uint32_t ci)
{
    if (a->nraw >= 2 * (uint64_t)a->cfg.max_contexts || table_put(&a->hot, rkey, ci) != 0)
        return;
    a->nraw++;
}

/* Finds (or makes) the context of a parsed metric without a timestamp: the raw key first
 * (the fast path), else an alias, else the canonical key. Counts the samples. Returns the
 * context's index, or NOT_FOUND when the message is refused or dropped (counted). */
static uint32_t resolve(struct dsd_agg *a, const struct chunk_msg *p, int64_t now_ns)
{
    const struct dsd_metric *m = &p->msg.u.metric;
    enum cls cls = cls_of(m->type);
    struct scan sc;
    uint32_t v = table_get(&a->hot, p->rkey);
    uint32_t ci;
    if (v != NOT_FOUND && !(v & ALIAS_BIT)) {
        ci = v; /* the fast path */
    } else if (v != NOT_FOUND) {
        struct alias *al = &a->aliases[v & ~ALIAS_BIT];
        al->last_ns = now_ns;
        ci = al->ctx;
        if (al->retry_ns != 0 && now_ns >= al->retry_ns) {
            /* The tagger may know the origin by now (task metadata often arrives after the
             * first metrics): ask again, at most once per bucket. */
            int known = 0;
            uint32_t nci = NOT_FOUND;
            if (scan_tags(a, m->has_tags, m->tags, &m->origin, &sc) == 0)
                nci = resolve_final(a, m, &sc, cls, p->name_h, host_hash(a, &sc), &known);
            if (known && nci != NOT_FOUND) {
                al->ctx = nci;
                al->retry_ns = 0;
                ci = nci;
            } else {
                al->retry_ns = now_ns + (int64_t)a->cfg.bucket_s * NS_PER_S;
            }
        }
    } else {
        /* First sight of this form: the canonical key, from the distinct tags. */
        if (scan_tags(a, m->has_tags, m->tags, &m->origin, &sc) != 0) {
            remember_error(a, DSD_E_TOO_LONG, p->line, p->len);
            return NOT_FOUND;
        }
        uint64_t host_h = host_hash(a, &sc);
        if (p->with_cid || (a->cfg.origin_detection && sc.entity.len != 0)) {
            int known;
            ci = resolve_final(a, m, &sc, cls, p->name_h, host_h, &known);
            if (ci != NOT_FOUND)
                (void)alias_create(a, p->rkey, ci, known, now_ns);
        } else {
            uint64_t key = make_key(a, p->name_h, sc.tags_x, host_h, cls);
            ci = table_get(&a->canon, key);
            if (ci == NOT_FOUND)
                ci = ctx_create(a, key, m, &sc, cls);
            if (ci != NOT_FOUND)
                raw_put(a, p->rkey, ci);
        }
        if (ci == NOT_FOUND)
            a->stats.contexts_dropped += m->nvalues;
    }
    a->stats.metrics[m->type] += m->nvalues;
    return ci;
}

/* The metrics of a packet go through in chunks of three passes, so that the memory they touch
 * is fetched for many at once instead of one miss after the other: hash and prefetch the
 * table slot; look up and prefetch the context; update. Spans point into the packet, which
 * outlives the chunk. */
static void drain(struct dsd_agg *a, int64_t now_ns)
{
    for (uint32_t i = 0; i < a->nchunk; i++) {
        struct chunk_msg *p = &a->chunk[i];
        p->ci = resolve(a, p, now_ns);
        if (p->ci != NOT_FOUND)
            __builtin_prefetch(&a->ctxs[p->ci], 1);
    }
    for (uint32_t i = 0; i < a->nchunk; i++) {
        const struct chunk_msg *p = &a->chunk[i];
        if (p->ci != NOT_FOUND)
            apply(a, &a->ctxs[p->ci], &p->msg.u.metric, now_ns);
    }
    a->nchunk = 0;
}

/* A parsed metric (in a->chunk[a->nchunk]): timestamped ones pass through now, the
 * others join the chunk. */
static void handle_metric(struct dsd_agg *a, const char *line, size_t len, int64_t now_ns)
{
    struct chunk_msg *p = &a->chunk[a->nchunk];
    const struct dsd_metric *m = &p->msg.u.metric;
    if (m->timestamp != 0) {
        struct scan sc;
        if (scan_tags(a, m->has_tags, m->tags, &m->origin, &sc) != 0) {
            remember_error(a, DSD_E_TOO_LONG, line, len);
            return;
        }
        a->stats.metrics[m->type] += m->nvalues;
        handle_timestamped(a, m, &sc);
        return;
    }
    p->line = line;
    p->len = (uint32_t)len;
    p->with_cid = a->cfg.origin_detection && m->origin.container_id.len != 0;
    p->name_h = hash_bytes(m->name.ptr, m->name.len, a->seed);
    p->rkey = raw_key(a, p->name_h, m, cls_of(m->type), p->with_cid);
    __builtin_prefetch(&a->hot.slots[(uint32_t)p->rkey & (a->hot.cap - 1)]);
    if (++a->nchunk == PARSE_CHUNK)
        drain(a, now_ns);
}

static void handle_event(struct dsd_agg *a, const char *line, size_t len,
                         const struct dsd_event *ev, int64_t now_ns)
{
    struct scan sc;
    if (scan_tags(a, ev->has_tags, ev->tags, &ev->origin, &sc) != 0) {
        remember_error(a, DSD_E_TOO_LONG, line, len);
        return;
    }
    a->stats.events++;
    pass_origin(a, &ev->origin, &sc);
    struct rmr_event r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.priority = ev->priority;
    r.time_ns = ev->timestamp != 0 ? ev->timestamp * NS_PER_S : now_ns;
    r.title = rmr_str_n(a->text_buf, dsd_unescape(ev->title, a->text_buf, 0));
    r.text = rmr_str_n(a->text_buf2, dsd_unescape(ev->text, a->text_buf2, 0));
    /* "h:" wins over a "host:" tag (enrichEvent). */
    if (ev->host.len != 0)
        r.host = rmr_str_n(ev->host.ptr, ev->host.len);
    else if (sc.host.len != 0)
        r.host = rmr_str_n(sc.host.ptr, sc.host.len);
    r.aggregation_key = rmr_str_n(ev->aggregation_key.ptr, ev->aggregation_key.len);
    r.source_type = rmr_str_n(ev->source_type.ptr, ev->source_type.len);
    r.alert_type = rmr_str_n(ev->alert_type.ptr, ev->alert_type.len);
    r.ntags = pass_tags(a);
    r.tags = a->otags;
    add_record(a, &a->pass, &a->pass_records, RMR_REC_EVENT, &r);
}

static void handle_check(struct dsd_agg *a, const char *line, size_t len,
                         const struct dsd_check *sc_msg, int64_t now_ns)
{
    struct scan sc;
    if (scan_tags(a, sc_msg->has_tags, sc_msg->tags, &sc_msg->origin, &sc) != 0) {
        remember_error(a, DSD_E_TOO_LONG, line, len);
        return;
    }
    a->stats.service_checks++;
    pass_origin(a, &sc_msg->origin, &sc);
    struct rmr_check r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.status = sc_msg->status;
    r.time_ns = sc_msg->timestamp != 0 ? sc_msg->timestamp * NS_PER_S : now_ns;
    r.name = rmr_str_n(sc_msg->name.ptr, sc_msg->name.len);
    if (sc_msg->host.len != 0)
        r.host = rmr_str_n(sc_msg->host.ptr, sc_msg->host.len);
    else if (sc.host.len != 0)
        r.host = rmr_str_n(sc.host.ptr, sc.host.len);
    r.message = rmr_str_n(a->text_buf, dsd_unescape(sc_msg->message, a->text_buf, 1));
    r.ntags = pass_tags(a);
    r.tags = a->otags;
    add_record(a, &a->pass, &a->pass_records, RMR_REC_CHECK, &r);
}

static void handle_line(struct dsd_agg *a, const char *line, size_t len, int64_t now_ns)
{
    struct dsd_msg *msg = &a->chunk[a->nchunk].msg;
    enum dsd_error e = dsd_parse(line, len, msg);
    if (e != DSD_E_NONE) {
        remember_error(a, e, line, len);
        return;
    }
    switch ((enum dsd_msg_kind)msg->kind) {
    case DSD_MSG_METRIC: handle_metric(a, line, len, now_ns); break;
    case DSD_MSG_EVENT: handle_event(a, line, len, &msg->u.event, now_ns); break;
    case DSD_MSG_CHECK: handle_check(a, line, len, &msg->u.check, now_ns); break;
    }
}

/* ---- the API ------------------------------------------------------------------------------------
 */

/* Writes dogstatsd_tags as the message tags they stand for: "key:value", or "key" when the
 * value is empty (as scan_tags() reads "key:"), hashed with the aggregator's seed. */
static int extra_tags_init(struct dsd_agg *a, const struct dsd_agg_config *cfg)
{
    if (cfg->nextra_tags > DSD_MAX_EXTRA_TAGS || (cfg->nextra_tags != 0 && cfg->extra_tags == NULL))
        return -1;
    size_t bytes = 1;
    for (uint32_t i = 0; i < cfg->nextra_tags; i++)
        bytes += cfg->extra_tags[i].key.len + 1 + cfg->extra_tags[i].value.len;
    if ((a->extra_text = malloc(bytes)) == NULL)
        return -1;
    char *p = a->extra_text;
    for (uint32_t i = 0; i < cfg->nextra_tags; i++) {
        const struct rmr_tag *t = &cfg->extra_tags[i];
        if (t->key.len == 0 || t->key.len > 0xffff || t->value.len > 0xffff)
            return -1;
        struct tagref *r = &a->extra[a->nextra++];
        r->ptr = p;
        memcpy(p, t->key.ptr, t->key.len);
        p += t->key.len;
        if (t->value.len != 0) {
            *p++ = ':';
            memcpy(p, t->value.ptr, t->value.len);
            p += t->value.len;
        }
        r->len = (uint32_t)(p - r->ptr);
        r->h = hash_bytes(r->ptr, r->len, a->seed);
    }
    return 0;
}

struct dsd_agg *dsd_agg_new(rmr_instance_t *ins, const struct dsd_agg_config *cfg)
{
    static const char *const known[] = {"max", "min", "median", "avg", "sum", "count"};
    if (ins == NULL || cfg == NULL || cfg->bucket_s == 0 || cfg->bucket_s > 3600 ||
        cfg->max_contexts == 0 || cfg->max_contexts >= ALIAS_BIT / 2 ||
        cfg->npercentiles > MAX_PERCENTILES || (cfg->npercentiles != 0 && cfg->percentiles == NULL))
        return NULL;
    struct dsd_agg *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->ins = ins;
    a->cfg = *cfg;
    for (uint32_t i = 0; cfg->aggregates != NULL && cfg->aggregates[i] != NULL; i++) {
        const char *name = NULL;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strcmp(cfg->aggregates[i], known[k]) == 0)
                name = known[k];
        if (name == NULL || a->naggs == sizeof a->aggs / sizeof a->aggs[0])
            goto fail;
        a->aggs[a->naggs++] = name;
    }
    for (uint32_t i = 0; i < cfg->npercentiles; i++) {
        double p = cfg->percentiles[i];
        if (!(p >= 0 && p <= 1))
            goto fail;
        /* As the Agent: "+0.5 before casting" so 0.29 stays 29. */
        int pi = (int)(p * 100 + 0.5);
        int dup = 0;
        for (uint32_t k = 0; k < a->npct; k++)
            dup |= a->pct[k] == pi;
        if (!dup)
            a->pct[a->npct++] = pi;
    }
    qsort(a->pct, a->npct, sizeof a->pct[0], cmp_int);
    a->state_limit = cfg->state_limit_bytes != 0 ? cfg->state_limit_bytes : DEFAULT_STATE_LIMIT;
    a->can_lookup = cfg->origin_detection && RMR_HOST_HAS(ins, tagger_lookup);
    if (getrandom(&a->seed, sizeof a->seed, GRND_NONBLOCK) != (ssize_t)sizeof a->seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        a->seed = fold((uint64_t)ts.tv_nsec ^ K0, (uint64_t)(uintptr_t)a ^ K1);
    }
    a->rng = a->seed | 1;
    if (extra_tags_init(a, cfg) != 0)
        goto fail;
    a->ctx_free = NOT_FOUND;
    a->alias_free = NOT_FOUND;
    if (table_init(&a->hot, 1024) != 0 || table_init(&a->canon, 1024) != 0)
        goto fail;
    return a;
fail:
    free(a->hot.slots);
    free(a->canon.slots);
    free(a->extra_text);
    free(a);
    return NULL;
}

/* Frees what an outbox holds (its entries not built yet) and leaves it empty. */
static void outbox_clear(struct outbox *o)
{
    for (uint32_t i = o->next; i < o->n; i++)
        sealed_free_state(&o->recs[i]);
    for (uint32_t i = 0; i < o->ngrave; i++)
        free(o->grave[i]);
    for (uint32_t i = 0; i < o->npending; i++)
        rmr_batch_free(o->pending[i]);
    rmr_batch_free(o->cur);
    free(o->recs);
    free(o->grave);
    memset(o, 0, sizeof *o);
}

void dsd_agg_free(struct dsd_agg *a)
{
    if (a == NULL)
        return;
    for (uint32_t i = 0; i < a->nctx_slots; i++)
        if (a->ctxs[i].live)
            ctx_release_state(a, &a->ctxs[i]);
    free(a->ctxs);
    free(a->aliases);
    free(a->hot.slots);
    free(a->canon.slots);
    rmr_batch_free(a->pass);
    outbox_clear(&a->taken);
    outbox_clear(&a->acc);
    free(a->extra_text);
    free(a);
}

void dsd_agg_packet(struct dsd_agg *a, const char *data, size_t len, int64_t now_ns)
{
    const char *p = data, *end = data + len;
    a->stats.packets++;
    advance(a, now_ns);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        size_t n = (size_t)(le - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n > 0)
            handle_line(a, p, n, now_ns);
        p = nl != NULL ? nl + 1 : end;
    }
    drain(a, now_ns);
}

/* Forgets contexts and aliases idle for expiry_s (counters: until their zero-fill is over,
 * expiry_s plus a bucket), then drops their table entries in one pass. */
static void expire(struct dsd_agg *a, int64_t now_ns)
{
    int64_t idle_ns = (int64_t)a->cfg.expiry_s * NS_PER_S;
    int64_t counter_idle_ns = idle_ns + (int64_t)a->cfg.bucket_s * NS_PER_S;
    uint32_t dead_ctx = 0, dead_alias = 0;
    for (uint32_t i = 0; i < a->nctx_slots; i++) {
        struct ctx *c = &a->ctxs[i];
        if (!c->live || c->sampled)
            continue;
        if (now_ns - c->last_ns < (c->cls == CLS_COUNTER ? counter_idle_ns : idle_ns))
            continue;
        /* Sealed entries not built yet may point at the blob: it is freed after the next
         * build. */
        struct outbox *o = &a->acc;
        if (o->ngrave == o->gcap) {
            uint32_t ncap = o->gcap != 0 ? o->gcap * 2 : 64;
            char **ng = realloc(o->grave, (size_t)ncap * sizeof *ng);
            if (ng == NULL)
                continue; /* expired at a later flush */
            o->grave = ng;
            o->gcap = ncap;
        }
        o->grave[o->ngrave++] = c->blob;
        c->blob = NULL;
        ctx_release_state(a, c);
        if (c->cls == CLS_COUNTER)
            a->ncounters--;
        if (c->cls == CLS_HIST)
            a->nhists--;
        c->live = 0;
        dead_ctx++;
    }
    for (uint32_t i = 0; i < a->nalias_slots; i++) {
        struct alias *al = &a->aliases[i];
        if (al->live && (now_ns - al->last_ns >= idle_ns || !a->ctxs[al->ctx].live)) {
            al->live = 0;
            dead_alias++;
        }
    }
    if (dead_ctx == 0 && dead_alias == 0)
        return;
    a->nraw -= table_sweep(a, &a->hot);
    (void)table_sweep(a, &a->canon);
    /* Only now may the slots be reused: no table entry points at them any more. */
    for (uint32_t i = 0; i < a->nctx_slots; i++) {
        struct ctx *c = &a->ctxs[i];
        if (!c->live && c->key != 0) { /* dead in this pass (free ones have key 0) */
            c->key = 0;
            c->next_free = a->ctx_free;
            a->ctx_free = i;
        }
    }
    for (uint32_t i = 0; i < a->nalias_slots; i++) {
        struct alias *al = &a->aliases[i];
        if (!al->live && al->ctx != NOT_FOUND) { /* dead in this pass */
            al->ctx = NOT_FOUND;
            al->next_free = a->alias_free;
            a->alias_free = i;
        }
    }
    a->nctx -= dead_ctx;
    a->nalias -= dead_alias;
    a->stats.contexts_expired += dead_ctx;
    a->stats.contexts_live = a->nctx;
    a->stats.contexts_aliases = a->nalias;
}

void dsd_agg_detach(struct dsd_agg *a, int64_t now_ns, int final)
{
    if (a->open_set) {
        int64_t b = bucket_of(a, now_ns);
        if (b > a->open_s)
            roll(a, b);
        if (final)
            seal(a, a->open_s);
    }
    pending_push(a, a->pass, a->pass_records);
    a->pass = NULL;
    a->pass_records = 0;
    /* The previous flush built what it took: its arrays, empty, go on collecting. */
    struct outbox done = a->taken;
    a->taken = a->acc;
    memset(&a->acc, 0, sizeof a->acc);
    for (uint32_t i = done.next; i < done.n; i++) /* only when a build was not finished */
        sealed_free_state(&done.recs[i]);
    for (uint32_t i = 0; i < done.ngrave; i++)
        free(done.grave[i]);
    for (uint32_t i = 0; i < done.npending; i++)
        rmr_batch_free(done.pending[i]);
    rmr_batch_free(done.cur);
    a->acc.recs = done.recs;
    a->acc.cap = done.cap;
    a->acc.grave = done.grave;
    a->acc.gcap = done.gcap;
    a->detach_work = a->taken.n;
}

/* Emits the pass-through batches (events, service checks, timestamped metrics) the detach
 * took: they need no build, so they go first. */
static void emit_pending(struct dsd_agg *a)
{
    struct outbox *o = &a->taken;
    for (uint32_t i = 0; i < o->npending; i++) {
        int rc = rmr_emit(a->ins, o->pending[i]);
        o->emitted += o->pending_records[i];
        if (rc != 0 && o->first_error == 0)
            o->first_error = rc;
    }
    o->npending = 0;
}

/* The clock is read once every this many contexts past min_entries. */
#define DEADLINE_EVERY 16u

int dsd_agg_build_some(struct dsd_agg *a, uint32_t min_entries, int64_t deadline_ns, int *done)
{
    struct outbox *o = &a->taken;
    emit_pending(a);
    uint64_t before = o->emitted + o->cur_records + o->dropped;
    uint32_t first = o->next;
    if (min_entries == 0)
        min_entries = 1; /* a step always makes progress */
    while (o->next < o->n) {
        uint32_t built = o->next - first;
        if (built >= min_entries &&
            (o->emitted + o->cur_records + o->dropped - before >= RECORDS_PER_BATCH ||
             (deadline_ns != INT64_MAX && (built - min_entries) % DEADLINE_EVERY == 0 &&
              rmr_mono_ns(a->ins) >= deadline_ns)))
            break;
        build_sealed(a, &o->recs[o->next++]);
    }
    *done = o->next == o->n;
    if (!*done)
        return 0;
    o->n = 0;
    o->next = 0;
    if (o->cap > 4096) { /* 40 bytes a context bucket: not kept between flushes */
        free(o->recs);
        o->recs = NULL;
        o->cap = 0;
    }
    build_emit(a);
    for (uint32_t i = 0; i < o->ngrave; i++)
        free(o->grave[i]);
    o->ngrave = 0;
    if (o->first_error != 0)
        return o->first_error;
    return o->emitted > INT32_MAX ? INT32_MAX : (int)o->emitted;
}

int dsd_agg_build(struct dsd_agg *a)
{
    int done = 0;
    struct outbox *o = &a->taken;
    return dsd_agg_build_some(a, o->n - o->next, INT64_MAX, &done);
}

void dsd_agg_finish(struct dsd_agg *a, int64_t now_ns)
{
    struct outbox *o = &a->taken;
    a->stats.records_flushed += o->emitted;
    a->stats.records_dropped += o->dropped;
    o->emitted = 0;
    o->dropped = 0;
    o->first_error = 0;
    expire(a, now_ns);
}

int dsd_agg_flush(struct dsd_agg *a, int64_t now_ns, int final)
{
    dsd_agg_detach(a, now_ns, final);
    int rc = dsd_agg_build(a);
    dsd_agg_finish(a, now_ns);
    return rc;
}

uint64_t dsd_agg_detach_work(const struct dsd_agg *a)
{
    return a->detach_work;
}

void dsd_agg_stats(const struct dsd_agg *a, struct dsd_agg_stats *out)
{
    *out = a->stats;
}

uint64_t dsd_agg_error_count(const struct dsd_agg *a)
{
    return a->errors_total;
}

enum dsd_error dsd_agg_last_error(const struct dsd_agg *a, const char **msg, size_t *len)
{
    *msg = a->last_msg;
    *len = a->last_len;
    return a->last_error;
}
