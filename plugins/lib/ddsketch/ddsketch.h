/* plugins/lib/ddsketch: Datadog's DDSketch, built the way the Datadog Agent builds it for
 * DogStatsD distributions (datadog-agent pkg/quantile), so the datadog output can ship real
 * sketches and other outputs can read quantiles from the same data.
 *
 * Parameters (PROTOCOLS.md 4.3): relative accuracy eps = 1/128, gamma = 1 + 2 eps = 1.015625,
 * smallest indexable value 1e-9, key(v) = round-half-to-even(ln v / ln gamma) + bias with
 * bias 1338 (0 for |v| < gamma^(1 - bias) ~ 9.94e-10, the power of gamma just below 1e-9 that
 * the agent calls norm.min; -key(-v) for v < 0), keys clamped to [-32767, 32767] (32766 is the
 * highest finite key, +-32767 the agent's infinity keys), at most 4096 bins (the lowest keys
 * are collapsed into one when the limit is passed, as the agent does). A key's count is one
 * uint32 (saturating), where the agent spreads it over uint16 bins of the same key. Exact
 * count, min, max and sum are kept beside the bins. README.md gives every source.
 *
 * Pure and single-threaded; no host calls. Memory: one heap array of bins per sketch, at most
 * DDSKETCH_BIN_LIMIT * 8 bytes (ddsketch_mem_bytes()).
 */
#ifndef REMORA_PLUGINS_DDSKETCH_H
#define REMORA_PLUGINS_DDSKETCH_H

#include <stddef.h>
#include <stdint.h>

#include <remora/error.h>
#include <remora/record.h>

#define DDSKETCH_GAMMA     1.015625
#define DDSKETCH_BIAS      1338
#define DDSKETCH_MAX_KEY   32767
#define DDSKETCH_MIN_VALUE 1e-9
#define DDSKETCH_BIN_LIMIT 4096

struct ddsketch {
    int32_t *keys;    /* ascending, unique */
    uint32_t *counts; /* parallel to keys; never 0 */
    uint32_t nbins;
    uint32_t cap;
    int64_t count; /* total weight */
    double min, max, sum;
    uint32_t hint; /* the bin the last insert touched: repeated values skip the search */
};

/* An empty sketch; no allocation until the first insert. */
void ddsketch_init(struct ddsketch *s);
void ddsketch_release(struct ddsketch *s);
/* Empties the sketch, keeping its memory for reuse. */
void ddsketch_reset(struct ddsketch *s);

/* The key of a value (see above). NaN gives 0. */
int32_t ddsketch_key(double v);
/* The value a key stands for (the midpoint Datadog uses: 2 gamma^(k-bias+1/2) / (1 + gamma),
 * that is sketches-go's Value() under the agent's mapping offset bias + 1/2; negated for
 * negative keys, 0 for key 0, +-infinity for the infinity keys +-32767). Every value of the
 * key is within relative error (gamma-1)/(gamma+1) < eps of it. */
double ddsketch_key_value(int32_t key);

/* Adds v with weight n (n >= 1; a DogStatsD sample rate gives weight int(1/rate)). NaN and
 * infinities are refused with RMR_EINVAL. Errors: RMR_EINVAL, RMR_ENOMEM (sketch unchanged). */
int ddsketch_insert(struct ddsketch *s, double v, uint32_t n);
/* Adds every bin and the summary of src to dst (src borrowed; it may be dst: every count
 * doubles). Past the bin limit the result is the one inserting both would give. Errors:
 * RMR_ENOMEM (dst unchanged). */
int ddsketch_merge(struct ddsketch *dst, const struct ddsketch *src);

/* The q-quantile (0 <= q <= 1) from the bins: the agent's rank (round-half-to-even of
 * q (count - 1), the first bin whose running count passes it), valued as
 * ddsketch_key_value() of that bin, clamped to [min, max]; q 0 is min and q 1 is max exactly.
 * NaN for an empty sketch or a NaN q. Relative error at most eps against the exact quantile of
 * the same rank, for values whose magnitude is above DDSKETCH_MIN_VALUE (and, once bins were
 * collapsed, above the lowest bin). */
double ddsketch_quantile(const struct ddsketch *s, double q);

/* The same quantile read from a record's sketch (a distribution an output received), for
 * outputs that cannot ship a sketch and send quantiles instead. NaN when empty. */
double ddsketch_view_quantile(const struct rmr_sketch *v, double q);

/* Fills a record view of the sketch (struct_size set; keys and counts borrowed from s) for
 * rmr_metric_add() with type RMR_METRIC_DISTRIBUTION, which copies them. */
void ddsketch_view(const struct ddsketch *s, struct rmr_sketch *out);

/* Bytes of heap the sketch holds (its bins' capacity), for memory accounting. */
size_t ddsketch_mem_bytes(const struct ddsketch *s);

#endif
