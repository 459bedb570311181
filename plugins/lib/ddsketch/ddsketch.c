/* plugins/lib/ddsketch: Datadog's DDSketch as the Datadog Agent builds it (see ddsketch.h; the
 * source of every parameter and rule is in README.md).
 *
 * The bins are two parallel arrays in one heap block: keys (ascending, unique) and their
 * counts. An insert maps the value to its key, finds the key by a check of the last bin
 * touched and then a binary search, and either bumps the count or opens a bin with one
 * memmove. Memory grows by doubling up to DDSKETCH_BIN_LIMIT bins, so the steady state never
 * allocates; past the limit the two lowest bins are folded together, as the agent's trimLeft
 * does. */
#include "ddsketch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <remora/error.h>

/* ln gamma as the agent computes it, log1p(2 eps) (pkg/util/quantile/config.go refresh). A
 * literal, so that no insert pays for it; test_ddsketch.c checks the keys it gives. */
#define LN_GAMMA 0x1.fc0a8b0fc03e4p-7
/* The agent's norm.min: gamma^(1 - bias) = pow(1.015625, -1337) ~ 9.94e-10, the power of gamma
 * just below DDSKETCH_MIN_VALUE. Smaller magnitudes have key 0. */
#define NORM_MIN 0x1.1147942601311p-30
/* The highest finite key: the agent keeps 32767 for +infinity (key.go: maxKey = uvinf - 1). */
#define MAX_FINITE_KEY (DDSKETCH_MAX_KEY - 1)
/* Bins a sketch starts with at its first insert; doubled from there up to the limit. */
#define FIRST_CAP 8

/* a + b, held at UINT32_MAX: a key's count never wraps. */
static uint32_t sat_add(uint32_t a, uint64_t b)
{
    uint64_t r = (uint64_t)a + b;
    return r > UINT32_MAX ? UINT32_MAX : (uint32_t)r;
}

/* The index of the first key >= k in keys[0, n): a branch-free binary search, whose one
 * unpredictable comparison per step becomes a conditional move. */
static uint32_t lower_bound(const int32_t *keys, uint32_t n, int32_t k)
{
    const int32_t *base = keys;
    if (n == 0)
        return 0;
    while (n > 1) {
        uint32_t half = n / 2;
        base = base[half] < k ? base + half : base;
        n -= half;
    }
    return (uint32_t)(base - keys) + (*base < k);
}

/* Makes room for need bins (need <= DDSKETCH_BIN_LIMIT), doubling the capacity. On failure the
 * sketch is unchanged. Errors: RMR_ENOMEM. */
static int reserve(struct ddsketch *s, uint32_t need)
{
    uint32_t cap = s->cap != 0 ? s->cap : FIRST_CAP;
    int32_t *block;
    uint32_t *counts;

    if (need <= s->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    if (cap > DDSKETCH_BIN_LIMIT)
        cap = DDSKETCH_BIN_LIMIT;
    block = malloc((size_t)cap * (sizeof(int32_t) + sizeof(uint32_t)));
    if (block == NULL)
        return RMR_ENOMEM;
    counts = (uint32_t *)(block + cap);
    if (s->nbins > 0) {
        memcpy(block, s->keys, s->nbins * sizeof(int32_t));
        memcpy(counts, s->counts, s->nbins * sizeof(uint32_t));
    }
    free(s->keys);
    s->keys = block;
    s->counts = counts;
    s->cap = cap;
    return 0;
}

void ddsketch_init(struct ddsketch *s)
{
    memset(s, 0, sizeof *s);
}

void ddsketch_release(struct ddsketch *s)
{
    free(s->keys);
    ddsketch_init(s);
}

void ddsketch_reset(struct ddsketch *s)
{
    s->nbins = 0;
    s->count = 0;
    s->min = 0;
    s->max = 0;
    s->sum = 0;
    s->hint = 0;
}

int32_t ddsketch_key(double v)
{
    double a = fabs(v), e;
    int32_t k;

    /* Also true for NaN: key 0, as for zero and the magnitudes below norm.min. */
    if (!(a >= NORM_MIN))
        return 0;
    /* rint rounds half to even in the default rounding mode, as Go's math.RoundToEven. */
    e = rint(log(a) / LN_GAMMA);
    if (e > (double)(MAX_FINITE_KEY - DDSKETCH_BIAS)) {
        k = DDSKETCH_MAX_KEY; /* +infinity too */
    } else {
        k = (int32_t)e + DDSKETCH_BIAS;
        if (k < 1) /* cannot happen above norm.min; the agent guards it alike */
            k = 1;
    }
    return v < 0 ? -k : k;
}

double ddsketch_key_value(int32_t key)
{
    int64_t a = key < 0 ? -(int64_t)key : key;
    double x;

    if (key == 0)
        return 0;
    if (a >= DDSKETCH_MAX_KEY)
        return key < 0 ? -INFINITY : INFINITY;
    /* The key covers [gamma^(e - 1/2), gamma^(e + 1/2)] with e = key - bias; this point is at
     * relative distance (gamma - 1) / (gamma + 1) from both ends. */
    x = 2.0 * pow(DDSKETCH_GAMMA, (double)(a - DDSKETCH_BIAS) + 0.5) / (1.0 + DDSKETCH_GAMMA);
    return key < 0 ? -x : x;
}

/* Opens a bin for key k (absent, to go at index pos) with count n. At the bin limit, the two
 * lowest bins of the sketch with k added are folded into the higher of them (the agent's
 * trimLeft with one bin to remove), so the bin count stays at the limit. Errors: RMR_ENOMEM
 * (sketch unchanged). */
static int open_bin(struct ddsketch *s, uint32_t pos, int32_t k, uint32_t n)
{
    uint32_t low;
    int rc;

    if (s->nbins < DDSKETCH_BIN_LIMIT) {
        if ((rc = reserve(s, s->nbins + 1)) != 0)
            return rc;
        memmove(s->keys + pos + 1, s->keys + pos, (s->nbins - pos) * sizeof(int32_t));
        memmove(s->counts + pos + 1, s->counts + pos, (s->nbins - pos) * sizeof(uint32_t));
        s->keys[pos] = k;
        s->counts[pos] = n;
        s->nbins++;
        s->hint = pos;
        return 0;
    }
    if (pos == 0) {
        /* k is the lowest: it folds into the lowest bin, whose key stays. */
        s->counts[0] = sat_add(s->counts[0], n);
        s->hint = 0;
        return 0;
    }
    /* Drop bin 0, add its count to the new lowest bin (k itself when pos is 1). */
    low = s->counts[0];
    memmove(s->keys, s->keys + 1, (pos - 1) * sizeof(int32_t));
    memmove(s->counts, s->counts + 1, (pos - 1) * sizeof(uint32_t));
    s->keys[pos - 1] = k;
    s->counts[pos - 1] = n;
    s->counts[0] = sat_add(s->counts[0], low);
    s->hint = pos - 1;
    return 0;
}

int ddsketch_insert(struct ddsketch *s, double v, uint32_t n)
{
    int32_t k;
    uint32_t i;
    int rc;

    if (n == 0 || !isfinite(v))
        return RMR_EINVAL;
    k = ddsketch_key(v);
    i = s->hint;
    if (i < s->nbins && s->keys[i] == k) {
        s->counts[i] = sat_add(s->counts[i], n);
    } else {
        i = lower_bound(s->keys, s->nbins, k);
        if (i < s->nbins && s->keys[i] == k) {
            s->counts[i] = sat_add(s->counts[i], n);
            s->hint = i;
        } else if ((rc = open_bin(s, i, k, n)) != 0) {
            return rc;
        }
    }
    if (s->count == 0) {
        s->min = v;
        s->max = v;
    } else {
        if (v < s->min)
            s->min = v;
        if (v > s->max)
            s->max = v;
    }
    s->count += n;
    s->sum += v * (double)n;
    return 0;
}

/* Adds the summary of src (count > 0) to dst, as the agent's summary Merge does. */
static void merge_summary(struct ddsketch *dst, const struct ddsketch *src)
{
    if (dst->count == 0) {
        dst->min = src->min;
        dst->max = src->max;
    } else {
        if (src->min < dst->min)
            dst->min = src->min;
        if (src->max > dst->max)
            dst->max = src->max;
    }
    dst->count += src->count;
    dst->sum += src->sum;
}

int ddsketch_merge(struct ddsketch *dst, const struct ddsketch *src)
{
    const int32_t *sk = src->keys;
    const uint32_t *sc = src->counts;
    uint32_t nd = dst->nbins, ns = src->nbins, i = 0, j = 0, u = 0, drop, kept, t;
    int64_t w, a, b;
    uint64_t low = 0;
    int32_t *dk;
    uint32_t *dc;
    int rc;

    if (src->count == 0)
        return 0;
    if (dst == src) {
        /* Every bin doubles: the same keys, no limit to mind. */
        for (t = 0; t < nd; t++)
            dst->counts[t] = sat_add(dst->counts[t], dst->counts[t]);
        dst->count *= 2;
        dst->sum *= 2;
        return 0;
    }

    /* The union's distinct keys, and how many of the lowest the limit folds away: the agent
     * merges both bin lists, then trimLeft keeps the highest DDSKETCH_BIN_LIMIT and adds the
     * counts of the others to the lowest it keeps. */
    while (i < nd && j < ns) {
        if (dst->keys[i] < sk[j]) {
            i++;
        } else if (dst->keys[i] > sk[j]) {
            j++;
        } else {
            i++;
            j++;
        }
        u++;
    }
    u += (nd - i) + (ns - j);
    drop = u > DDSKETCH_BIN_LIMIT ? u - DDSKETCH_BIN_LIMIT : 0;
    kept = u - drop;
    if ((rc = reserve(dst, kept)) != 0)
        return rc;
    dk = dst->keys;
    dc = dst->counts;

    /* Consume the dropped keys from below, summing their counts. */
    i = 0;
    j = 0;
    for (t = 0; t < drop; t++) {
        if (j >= ns || (i < nd && dk[i] < sk[j])) {
            low += dc[i++];
        } else if (i >= nd || sk[j] < dk[i]) {
            low += sc[j++];
        } else {
            low += (uint64_t)dc[i++] + sc[j++];
        }
    }
    if (i > 0) {
        memmove(dk, dk + i, (nd - i) * sizeof(int32_t));
        memmove(dc, dc + i, (nd - i) * sizeof(uint32_t));
        nd -= i;
    }

    /* Merge dst[0, nd) and src[j, ns) from the top down into [0, kept): their union is exactly
     * kept keys, so the write index never passes an unread bin of dst. */
    w = (int64_t)kept - 1;
    a = (int64_t)nd - 1;
    b = (int64_t)ns - 1;
    while (b >= (int64_t)j) {
        if (a >= 0 && dk[a] > sk[b]) {
            dk[w] = dk[a];
            dc[w] = dc[a];
            a--;
        } else if (a >= 0 && dk[a] == sk[b]) {
            dk[w] = dk[a];
            dc[w] = sat_add(dc[a], sc[b]);
            a--;
            b--;
        } else {
            dk[w] = sk[b];
            dc[w] = sc[b];
            b--;
        }
        w--;
    }
    /* What is left of dst is already in place (w == a). */
    if (kept > 0 && low > 0)
        dc[0] = sat_add(dc[0], low);
    dst->nbins = kept;
    dst->hint = 0;
    merge_summary(dst, src);
    return 0;
}

/* The q-quantile of bins (keys ascending), clamped to [min, max]: shared by a live sketch and
 * a record's view of one. */
static double quantile_of(const int32_t *keys, const uint32_t *counts, uint32_t nbins,
                          int64_t count, double min, double max, double q)
{
    uint64_t total = 0, run = 0;
    double rank, v;
    uint32_t i;

    if (count <= 0 || nbins == 0 || keys == NULL || counts == NULL || isnan(q))
        return NAN;
    if (q <= 0)
        return min;
    if (q >= 1)
        return max;
    /* The bins' own total: it is count unless a bin saturated. */
    for (i = 0; i < nbins; i++)
        total += counts[i];
    if (total == 0)
        return NAN;
    /* The agent's rank (sparse.go): round-half-to-even of q (n - 1), 0-based. */
    rank = rint(q * (double)(total - 1));
    for (i = 0; i < nbins; i++) {
        run += counts[i];
        if ((double)run > rank)
            break;
    }
    if (i == nbins)
        return max;
    v = ddsketch_key_value(keys[i]);
    if (v < min)
        v = min;
    if (v > max)
        v = max;
    return v;
}

double ddsketch_quantile(const struct ddsketch *s, double q)
{
    return quantile_of(s->keys, s->counts, s->nbins, s->count, s->min, s->max, q);
}

double ddsketch_view_quantile(const struct rmr_sketch *v, double q)
{
    if (v == NULL)
        return NAN;
    return quantile_of(v->keys, v->counts, v->nbins, v->count, v->min, v->max, q);
}

void ddsketch_view(const struct ddsketch *s, struct rmr_sketch *out)
{
    memset(out, 0, sizeof *out);
    out->struct_size = (uint32_t)sizeof *out;
    out->nbins = s->nbins;
    out->count = s->count;
    out->min = s->min;
    out->max = s->max;
    out->sum = s->sum;
    out->keys = s->nbins > 0 ? s->keys : NULL;
    out->counts = s->nbins > 0 ? s->counts : NULL;
}

size_t ddsketch_mem_bytes(const struct ddsketch *s)
{
    return (size_t)s->cap * (sizeof(int32_t) + sizeof(uint32_t));
}
