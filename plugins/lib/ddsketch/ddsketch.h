/* plugins/lib/ddsketch: Datadog's DDSketch, built the way the Datadog Agent builds it for
 * DogStatsD distributions (datadog-agent pkg/quantile), so the datadog output can ship real
 * sketches and other outputs can read quantiles from the same data.
 *
 * Parameters (PROTOCOLS.md 4.3): relative accuracy eps = 1/128, gamma = 1 + 2 eps = 1.015625,
 * smallest indexable value 1e-9, key(v) = round-half-to-even(ln v / ln gamma) + bias with
 * bias 1338 (0 for |v| < 1e-9, -key(-v) for v < 0), keys clamped to [-32767, 32767], at most
 * 4096 bins (the lowest keys are collapsed into one when the limit is passed, as the agent
 * does). Exact count, min, max and sum are kept beside the bins.
 *
 * Pure and single-threaded; no host calls. Memory: one heap array of bins per sketch.
 */
#ifndef REMORA_PLUGINS_DDSKETCH_H
#define REMORA_PLUGINS_DDSKETCH_H

#include <stddef.h>
#include <stdint.h>

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
};

/* An empty sketch; no allocation until the first insert. */
void ddsketch_init(struct ddsketch *s);
void ddsketch_release(struct ddsketch *s);
/* Empties the sketch, keeping its memory for reuse. */
void ddsketch_reset(struct ddsketch *s);

/* The key of a value (see above). NaN gives 0. */
int32_t ddsketch_key(double v);
/* The value a key stands for (the midpoint Datadog uses: 2 gamma^(k-bias) / (1 + gamma),
 * negated for negative keys, 0 for key 0). */
double ddsketch_key_value(int32_t key);

/* Adds v with weight n (n >= 1; a DogStatsD sample rate gives weight int(1/rate)). NaN and
 * infinities are refused with RMR_EINVAL. Errors: RMR_EINVAL, RMR_ENOMEM (sketch unchanged). */
int ddsketch_insert(struct ddsketch *s, double v, uint32_t n);
/* Adds every bin and the summary of src to dst. Errors: RMR_ENOMEM (dst unchanged). */
int ddsketch_merge(struct ddsketch *dst, const struct ddsketch *src);

/* The q-quantile (0 <= q <= 1) as the agent computes it from the bins, clamped to [min, max];
 * q 0 is min and q 1 is max exactly. NaN for an empty sketch. Relative error at most eps for
 * values whose magnitude is above DDSKETCH_MIN_VALUE. */
double ddsketch_quantile(const struct ddsketch *s, double q);

/* Fills a record view of the sketch (struct_size set; keys and counts borrowed from s) for
 * rmr_metric_add() with type RMR_METRIC_DISTRIBUTION, which copies them. */
void ddsketch_view(const struct ddsketch *s, struct rmr_sketch *out);

#endif
