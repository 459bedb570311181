/* plugins/lib/ddsketch: the key mapping to exact values (the agent's parameters, its zero
 * threshold, infinity keys and round-half-to-even), the value of a key, quantiles against the
 * exact quantiles of sorted data for several distributions, weights, merges, the bin limit
 * against a model of the agent's batched trimLeft, refused input, reuse after reset, the record
 * view, and a micro benchmark (printed, not asserted). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <remora/error.h>

#include "ddsketch/ddsketch.h"
#include "tap.h"

#define EPS   (1.0 / 128.0)
#define SLACK 1e-12
#define N     100000
/* The exponent of the highest finite key, 32766 - bias. */
#define MAX_FINITE_EXP (DDSKETCH_MAX_KEY - 1 - DDSKETCH_BIAS)

/* ---- helpers -------------------------------------------------------------------------------- */

/* splitmix64: a fixed-seed generator, so every run sees the same data. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_uniform(void)
{
    return (double)(rng_next() >> 11) * 0x1p-53;
}

static double rng_normal(void)
{
    double u = 1.0 - rng_uniform(), v = rng_uniform();
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double gamma_pow(double e)
{
    return pow(DDSKETCH_GAMMA, e);
}

static int same_bins(const struct ddsketch *a, const struct ddsketch *b)
{
    return a->nbins == b->nbins && a->count == b->count &&
           (a->nbins == 0 || (memcmp(a->keys, b->keys, a->nbins * sizeof(int32_t)) == 0 &&
                              memcmp(a->counts, b->counts, a->nbins * sizeof(uint32_t)) == 0));
}

/* Keys strictly ascending, counts never 0, and their total equal to count. */
static int well_formed(const struct ddsketch *s)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < s->nbins; i++) {
        if (s->counts[i] == 0 || (i > 0 && s->keys[i - 1] >= s->keys[i]))
            return 0;
        total += s->counts[i];
    }
    return s->nbins <= DDSKETCH_BIN_LIMIT && s->nbins <= s->cap && total == (uint64_t)s->count;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the key mapping ------------------------------------------------------------------------ */

static void test_keys(void)
{
    double norm_min = gamma_pow(1 - DDSKETCH_BIAS);

    IS_INT(ddsketch_key(1.0), 1338, "key(1) is the bias");
    IS_INT(ddsketch_key(DDSKETCH_GAMMA), 1339, "key(gamma) = 1339");
    IS_INT(ddsketch_key(1.0 / DDSKETCH_GAMMA), 1337, "key(1/gamma) = 1337");
    IS_INT(ddsketch_key(2.0), 1383, "key(2)");
    IS_INT(ddsketch_key(3.0), 1409, "key(3)");
    IS_INT(ddsketch_key(10.0), 1487, "key(10)");
    IS_INT(ddsketch_key(100.0), 1635, "key(100)");
    IS_INT(ddsketch_key(1e6), 2229, "key(1e6)");
    IS_INT(ddsketch_key(1e9), 2675, "key(1e9)");
    IS_INT(ddsketch_key(0.5), 1293, "key(0.5)");
    IS_INT(ddsketch_key(0.1), 1189, "key(0.1)");
    IS_INT(ddsketch_key(0.001), 892, "key(0.001)");
    IS_INT(ddsketch_key(1e-6), 447, "key(1e-6)");

    /* The smallest: the agent's bias makes key(norm.min) 1; below it everything is 0. */
    IS_INT(ddsketch_key(DDSKETCH_MIN_VALUE), 1, "key(1e-9) = 1");
    IS_INT(ddsketch_key(-DDSKETCH_MIN_VALUE), -1, "key(-1e-9) = -1");
    OK(norm_min < DDSKETCH_MIN_VALUE && norm_min * DDSKETCH_GAMMA > DDSKETCH_MIN_VALUE,
       "norm.min = gamma^(1-bias) is the power of gamma just below 1e-9");
    IS_INT(ddsketch_key(norm_min), 1, "key(norm.min) = 1");
    IS_INT(ddsketch_key(nextafter(norm_min, 0)), 0, "key just below norm.min = 0");
    IS_INT(ddsketch_key(-nextafter(norm_min, 0)), 0, "key just above -norm.min = 0");
    IS_INT(ddsketch_key(9.95e-10), 1, "key(9.95e-10) = 1 (between norm.min and 1e-9)");
    IS_INT(ddsketch_key(5e-10), 0, "key(5e-10) = 0");
    IS_INT(ddsketch_key(DBL_MIN), 0, "key(DBL_MIN) = 0");
    IS_INT(ddsketch_key(0x1p-1074), 0, "key(smallest subnormal) = 0");
    IS_INT(ddsketch_key(0.0), 0, "key(0) = 0");
    IS_INT(ddsketch_key(-0.0), 0, "key(-0) = 0");
    IS_INT(ddsketch_key(NAN), 0, "key(NaN) = 0");

    /* Negatives mirror. */
    IS_INT(ddsketch_key(-1.0), -1338, "key(-1) = -1338");
    IS_INT(ddsketch_key(-2.5), -1397, "key(-2.5) = -1397");
    IS_INT(ddsketch_key(-1e6), -2229, "key(-1e6) = -2229");

    /* The top: 32766 is the last finite key, 32767 is infinity. */
    IS_INT(ddsketch_key(1e211), 32674, "key(1e211)");
    IS_INT(ddsketch_key(gamma_pow(MAX_FINITE_EXP)), 32766, "key(gamma^31428) = 32766");
    IS_INT(ddsketch_key(gamma_pow(MAX_FINITE_EXP + 0.6)), 32767, "key(gamma^31428.6) = 32767");
    IS_INT(ddsketch_key(4.2e211), 32767, "key(4.2e211) clamps to 32767");
    IS_INT(ddsketch_key(1e300), 32767, "key(1e300) clamps to 32767");
    IS_INT(ddsketch_key(DBL_MAX), 32767, "key(DBL_MAX) clamps to 32767");
    IS_INT(ddsketch_key(INFINITY), 32767, "key(inf) = 32767");
    IS_INT(ddsketch_key(-1e300), -32767, "key(-1e300) clamps to -32767");
    IS_INT(ddsketch_key(-INFINITY), -32767, "key(-inf) = -32767");

    /* Every power of gamma is its own key: the agent's reason for RoundToEven. */
    {
        int bad = 0;
        for (int e = -1337; e <= 31428; e++)
            if (ddsketch_key(gamma_pow(e)) != e + DDSKETCH_BIAS && bad++ < 3)
                printf("#   key(gamma^%d) = %d\n", e, ddsketch_key(gamma_pow(e)));
        OK(bad == 0, "key(gamma^e) = e + bias for every finite key");
    }

    /* Keys never decrease along the values. */
    {
        int bad = 0;
        int32_t prev = ddsketch_key(-1e300);
        for (double x = -1e12; x <= 1e12; x = x < 0 ? x / 1.0021 : x * 1.0021) {
            if (x > -1e-12 && x < 0)
                x = 1e-12;
            int32_t k = ddsketch_key(x);
            if (k < prev)
                bad++;
            prev = k;
        }
        OK(bad == 0, "keys are monotonic in the value");
    }
}

/* Values whose ln v / ln gamma is exactly a half in double arithmetic: rounding must go to the
 * even integer, as Go's math.RoundToEven. Found by walking the doubles next to gamma^(e+1/2),
 * so the check does not depend on one libm's last bits. */
static void test_half_to_even(void)
{
    const double ln_gamma = log1p(2 * EPS);
    int found = 0, bad = 0, found_up = 0, found_down = 0;

    /* One known on glibc: ln(v)/ln(gamma) == 16.5, which rounds down to 16. */
    if (log(0x1.4aa0fdf13a77ep+0) / ln_gamma == 16.5)
        IS_INT(ddsketch_key(0x1.4aa0fdf13a77ep+0), 1338 + 16, "16.5 rounds to 16 (key 1354)");
    for (int e = -60; e <= 60; e++) {
        double h = e + 0.5, up = exp(h * ln_gamma), down = up;
        for (int step = 0; step < 4000; step++) {
            double v = step % 2 ? up : down;
            if (log(v) / ln_gamma == h) {
                int32_t lo = (int32_t)floor(h), even = lo % 2 == 0 ? lo : lo + 1;
                int32_t want = even + DDSKETCH_BIAS;
                if (ddsketch_key(v) != want || ddsketch_key(-v) != -want) {
                    bad++;
                    printf("#   v=%a: ln/lng=%.1f key %d, want %d\n", v, h, ddsketch_key(v), want);
                }
                found++;
                if (even == lo)
                    found_down++;
                else
                    found_up++;
                break;
            }
            if (step % 2)
                up = nextafter(up, INFINITY);
            else
                down = nextafter(down, 0);
        }
    }
    printf("# %d exact halves found (%d rounded down, %d up)\n", found, found_down, found_up);
    OK(found > 0 && bad == 0, "exact halves round to even (and mirror for negatives)");
}

static void test_key_value(void)
{
    const double rel = (DDSKETCH_GAMMA - 1) / (DDSKETCH_GAMMA + 1);
    int bad_edges = 0, bad_round = 0;

    IS_DBL(ddsketch_key_value(0), 0, 0, "key_value(0) = 0");
    IS_DBL(ddsketch_key_value(1338), 2 * sqrt(DDSKETCH_GAMMA) / (1 + DDSKETCH_GAMMA), 1e-15,
           "key_value(1338) = 2 gamma^(1/2) / (1 + gamma)");
    IS_DBL(ddsketch_key_value(1339), 2 * pow(DDSKETCH_GAMMA, 1.5) / (1 + DDSKETCH_GAMMA), 1e-15,
           "key_value(1339) = 2 gamma^(3/2) / (1 + gamma)");
    IS_DBL(ddsketch_key_value(-1338), -ddsketch_key_value(1338), 0,
           "key_value(-k) = -key_value(k)");
    OK(ddsketch_key_value(32767) == INFINITY, "key_value(32767) = +inf");
    OK(ddsketch_key_value(-32767) == -INFINITY, "key_value(-32767) = -inf");
    OK(isfinite(ddsketch_key_value(32766)), "key_value(32766) is finite");

    /* The midpoint: the same relative distance to both ends of the key's range, and it maps
     * back to its key. */
    for (int32_t k = 1; k <= 32766; k++) {
        double v = ddsketch_key_value(k), e = (double)(k - DDSKETCH_BIAS);
        double lo = gamma_pow(e - 0.5), hi = gamma_pow(e + 0.5);
        if (fabs((v - lo) / lo - rel) > 1e-12 || fabs((hi - v) / hi - rel) > 1e-12) {
            if (bad_edges++ < 3)
                printf("#   key %d: %.17g in [%.17g, %.17g]\n", k, v, lo, hi);
        }
        /* Key 1 only holds [norm.min, gamma^(e + 1/2)): its midpoint is below norm.min. */
        if (k > 1 && (ddsketch_key(v) != k || ddsketch_key(-v) != -k))
            bad_round++;
    }
    OK(bad_edges == 0, "key_value is at relative distance (gamma-1)/(gamma+1) from both ends");
    OK(bad_round == 0, "key(key_value(k)) = k for every finite key but 1");
    OK(ddsketch_key_value(1) < gamma_pow(1 - DDSKETCH_BIAS) &&
           ddsketch_key(ddsketch_key_value(1)) == 0,
       "key 1 is a partial range: its midpoint lies just below norm.min");
    OK(rel < EPS, "(gamma-1)/(gamma+1) < eps");
}

/* ---- quantiles ------------------------------------------------------------------------------ */

static const double qs[] = {0.001, 0.01, 0.05, 0.1,  0.25, 0.4,   0.5,
                            0.6,   0.75, 0.9,  0.95, 0.99, 0.995, 0.999};

/* Checks every q of s against the exact quantile of the same rank in sorted[0, n). */
static void check_quantiles(const struct ddsketch *s, double *sorted, size_t n, const char *name)
{
    char label[128];
    double worst = 0, worst_q = 0, worst_got = 0, worst_want = 0;

    qsort(sorted, n, sizeof *sorted, cmp_double);
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double q = qs[i];
        size_t rank = (size_t)rint(q * (double)(n - 1));
        double want = sorted[rank], got = ddsketch_quantile(s, q);
        double err = want == 0 ? fabs(got) : fabs(got - want) / fabs(want);
        if (!(err <= worst)) {
            worst = err;
            worst_q = q;
            worst_got = got;
            worst_want = want;
        }
    }
    snprintf(label, sizeof label, "%s: quantiles within 1/128 (worst %.5f at q %g)", name, worst,
             worst_q);
    if (!OK(worst <= EPS + SLACK, label))
        printf("#   q %g: got %.17g, want %.17g\n", worst_q, worst_got, worst_want);
    snprintf(label, sizeof label, "%s: q 0 and q 1 are min and max exactly", name);
    OK(ddsketch_quantile(s, 0) == sorted[0] && ddsketch_quantile(s, 1) == sorted[n - 1] &&
           s->min == sorted[0] && s->max == sorted[n - 1],
       label);
}

enum dist { D_UNIFORM, D_EXP, D_LOGNORMAL, D_NEG_LOGNORMAL, D_MIXED_UNIFORM, D_MIXED_NORMAL };

static double draw(enum dist d)
{
    switch (d) {
    case D_UNIFORM: return 1000.0 * rng_uniform();
    case D_EXP: return -log(1.0 - rng_uniform());
    case D_LOGNORMAL: return exp(1.0 + 2.0 * rng_normal());
    case D_NEG_LOGNORMAL: return -exp(3.0 + 1.5 * rng_normal());
    case D_MIXED_UNIFORM: return 2000.0 * rng_uniform() - 1000.0;
    case D_MIXED_NORMAL: return 50.0 + 100.0 * rng_normal();
    }
    return 0;
}

static void test_distributions(void)
{
    static const struct {
        enum dist d;
        const char *name;
    } dists[] = {
        {D_UNIFORM, "uniform [0, 1000)"},
        {D_EXP, "exponential (mean 1)"},
        {D_LOGNORMAL, "lognormal (1, 2)"},
        {D_NEG_LOGNORMAL, "negated lognormal (3, 1.5)"},
        {D_MIXED_UNIFORM, "uniform [-1000, 1000)"},
        {D_MIXED_NORMAL, "normal (50, 100), mixed sign"},
    };
    double *vals = malloc(N * sizeof *vals);
    char label[128];

    if (vals == NULL)
        abort();
    for (size_t di = 0; di < sizeof dists / sizeof dists[0]; di++) {
        struct ddsketch s;
        double sum = 0;
        int rc = 0;

        ddsketch_init(&s);
        rng_state = 42 + di;
        for (size_t i = 0; i < N; i++) {
            vals[i] = draw(dists[di].d);
            sum += vals[i];
            rc |= ddsketch_insert(&s, vals[i], 1);
        }
        snprintf(label, sizeof label, "%s: 100k inserts, count, sum, well formed", dists[di].name);
        OK(rc == 0 && s.count == N && s.sum == sum && well_formed(&s), label);
        printf("#   %s: %u bins, %zu bytes\n", dists[di].name, s.nbins, ddsketch_mem_bytes(&s));
        check_quantiles(&s, vals, N, dists[di].name);
        ddsketch_release(&s);
    }
    free(vals);
}

static void test_quantile_rules(void)
{
    struct ddsketch s;
    double four[] = {1, 10, 100, 1000};

    ddsketch_init(&s);
    OK(isnan(ddsketch_quantile(&s, 0.5)), "empty sketch: quantile is NaN");
    OK(isnan(ddsketch_quantile(&s, 0)), "empty sketch: q 0 is NaN");

    ddsketch_insert(&s, 42.0, 1);
    OK(ddsketch_quantile(&s, 0) == 42.0 && ddsketch_quantile(&s, 0.5) == 42.0 &&
           ddsketch_quantile(&s, 1) == 42.0,
       "one value: every quantile is that value (clamped to min and max)");
    OK(isnan(ddsketch_quantile(&s, NAN)), "q NaN gives NaN");
    OK(ddsketch_quantile(&s, -1) == 42.0 && ddsketch_quantile(&s, 2) == 42.0,
       "q outside [0, 1] gives min or max");
    ddsketch_reset(&s);

    /* The agent's rank: round-half-to-even of q (n - 1). With {1, 100}, q 0.5 is rank 0.5 -> 0,
     * the bin of 1, whose value 0.99997 clamps to min. */
    ddsketch_insert(&s, 1.0, 1);
    ddsketch_insert(&s, 100.0, 1);
    IS_DBL(ddsketch_quantile(&s, 0.5), 1.0, 0, "{1, 100}: q 0.5 -> rank 0 (half to even) -> 1");
    IS_DBL(ddsketch_quantile(&s, 0.51), ddsketch_key_value(ddsketch_key(100)), 0,
           "{1, 100}: q 0.51 -> rank 1 -> the value of key(100)");
    ddsketch_reset(&s);
    for (int i = 0; i < 4; i++)
        ddsketch_insert(&s, four[i], 1);
    /* q 0.5: rank 1.5 -> 2 (even), the third value. */
    IS_DBL(ddsketch_quantile(&s, 0.5), ddsketch_key_value(ddsketch_key(100)), 0,
           "{1, 10, 100, 1000}: q 0.5 -> rank 2 (half to even)");
    OK(fabs(ddsketch_quantile(&s, 0.5) - 100) / 100 <= EPS, "... within eps of 100");
    /* q 0.5/3: rank 0.5 -> 0. */
    IS_DBL(ddsketch_quantile(&s, 0.5 / 3), 1.0, 1e-12, "{1, 10, 100, 1000}: rank 0.5 -> 0");

    /* Zeros and values below norm.min count in key 0, valued 0. */
    ddsketch_reset(&s);
    for (int i = 0; i < 10; i++)
        ddsketch_insert(&s, 0.0, 1);
    ddsketch_insert(&s, 1e-12, 1);
    ddsketch_insert(&s, 5.0, 1);
    IS_UINT(s.nbins, 2, "zeros and 1e-12 share key 0");
    IS_DBL(ddsketch_quantile(&s, 0.5), 0.0, 0, "median of mostly zeros is 0");
    ddsketch_release(&s);
}

/* ---- weights, merges, refusals ------------------------------------------------------------ */

static void test_weights(void)
{
    struct ddsketch a, b;
    int rc = 0;

    ddsketch_init(&a);
    ddsketch_init(&b);
    rng_state = 7;
    for (int i = 0; i < 2000; i++) {
        double v = floor(exp(4 * rng_normal()) * 1024) / 1024 - 3; /* exact in binary */
        uint32_t n = 1 + (uint32_t)(rng_next() % 9);
        rc |= ddsketch_insert(&a, v, n);
        for (uint32_t j = 0; j < n; j++)
            rc |= ddsketch_insert(&b, v, 1);
    }
    OK(rc == 0, "weighted inserts succeed");
    OK(same_bins(&a, &b), "weight n gives the bins and count of n inserts");
    OK(a.min == b.min && a.max == b.max, "... and min and max");
    IS_DBL(a.sum, b.sum, fabs(b.sum) * 1e-12, "... and the sum");
    for (int i = 1; i < 20; i++)
        IS_DBL(ddsketch_quantile(&a, i / 20.0), ddsketch_quantile(&b, i / 20.0), 0,
               "... and every quantile");

    ddsketch_reset(&a);
    OK(ddsketch_insert(&a, 3.5, 1000000) == 0 && a.count == 1000000 && a.sum == 3.5e6 &&
           a.nbins == 1 && a.counts[0] == 1000000,
       "one insert of weight 1e6 (sample rate 1e-6)");
    ddsketch_release(&a);
    ddsketch_release(&b);
}

static void test_refused(void)
{
    struct ddsketch s;

    ddsketch_init(&s);
    ddsketch_insert(&s, 1.0, 1);
    IS_INT(ddsketch_insert(&s, NAN, 1), RMR_EINVAL, "NaN is refused");
    IS_INT(ddsketch_insert(&s, INFINITY, 1), RMR_EINVAL, "+inf is refused");
    IS_INT(ddsketch_insert(&s, -INFINITY, 1), RMR_EINVAL, "-inf is refused");
    IS_INT(ddsketch_insert(&s, 2.0, 0), RMR_EINVAL, "weight 0 is refused");
    OK(s.count == 1 && s.nbins == 1 && s.sum == 1.0 && s.min == 1.0 && s.max == 1.0,
       "refused inserts leave the sketch unchanged");
    ddsketch_release(&s);

    /* A key's count saturates; count and sum stay exact. */
    ddsketch_init(&s);
    ddsketch_insert(&s, 2.0, UINT32_MAX);
    ddsketch_insert(&s, 2.0, UINT32_MAX);
    ddsketch_insert(&s, 4.0, 1);
    OK(s.count == 2 * (int64_t)UINT32_MAX + 1 && s.counts[0] == UINT32_MAX && s.counts[1] == 1,
       "a bin saturates at UINT32_MAX, count stays exact");
    IS_DBL(ddsketch_quantile(&s, 0.5), ddsketch_key_value(ddsketch_key(2.0)), 0,
           "quantiles still work on a saturated bin");
    ddsketch_release(&s);
}

static void test_merge(void)
{
    struct ddsketch a, b, all, empty;
    int rc = 0;

    ddsketch_init(&a);
    ddsketch_init(&b);
    ddsketch_init(&all);
    ddsketch_init(&empty);
    rng_state = 99;
    for (int i = 0; i < 50000; i++) {
        double v = (double)(int64_t)(exp(3 + 2 * rng_normal())) - 20; /* integers: exact sums */
        uint32_t n = 1 + (uint32_t)(rng_next() % 3);
        rc |= ddsketch_insert(i % 3 ? &a : &b, v, n);
        rc |= ddsketch_insert(&all, v, n);
    }
    rc |= ddsketch_merge(&a, &b);
    OK(rc == 0 && same_bins(&a, &all) && well_formed(&a), "merge: the bins of inserting both");
    OK(a.min == all.min && a.max == all.max && a.sum == all.sum, "merge: min, max, sum");

    /* Empty on either side. */
    {
        struct ddsketch c;
        ddsketch_init(&c);
        rc = ddsketch_merge(&c, &all);
        OK(rc == 0 && same_bins(&c, &all) && c.min == all.min && c.max == all.max &&
               c.sum == all.sum,
           "merge into an empty sketch copies it");
        rc = ddsketch_merge(&c, &empty);
        OK(rc == 0 && same_bins(&c, &all) && c.min == all.min, "merging an empty sketch: no-op");
        /* Into itself: every count doubles. */
        rc = ddsketch_merge(&c, &c);
        OK(rc == 0 && c.count == 2 * all.count && c.nbins == all.nbins &&
               c.counts[0] == 2 * all.counts[0] && c.sum == 2 * all.sum && well_formed(&c),
           "merging a sketch into itself doubles it");
        ddsketch_release(&c);
    }

    /* Merges past the bin limit fold exactly as inserting everything into one sketch would:
     * interleaved keys, 3000 on each side. */
    ddsketch_reset(&a);
    ddsketch_reset(&b);
    ddsketch_reset(&all);
    rc = 0;
    for (int i = 0; i < 3000; i++) {
        double va = gamma_pow(2 * i), vb = gamma_pow(2 * i + 1);
        rc |= ddsketch_insert(&a, va, 1 + i % 5);
        rc |= ddsketch_insert(&b, vb, 1 + i % 7);
        rc |= ddsketch_insert(&all, va, 1 + i % 5);
        rc |= ddsketch_insert(&all, vb, 1 + i % 7);
    }
    /* Some keys in common too, and negatives on one side. */
    for (int i = 0; i < 500; i++) {
        rc |= ddsketch_insert(&b, gamma_pow(4 * i), 2);
        rc |= ddsketch_insert(&all, gamma_pow(4 * i), 2);
        rc |= ddsketch_insert(&a, -gamma_pow(i), 1);
        rc |= ddsketch_insert(&all, -gamma_pow(i), 1);
    }
    rc |= ddsketch_merge(&a, &b);
    IS_UINT(a.nbins, DDSKETCH_BIN_LIMIT, "merge past the limit keeps 4096 bins");
    OK(rc == 0 && same_bins(&a, &all) && well_formed(&a),
       "merge past the limit: the bins of inserting both");
    /* The other way round gives the same. */
    {
        struct ddsketch c;
        ddsketch_init(&c);
        ddsketch_reset(&a);
        for (int i = 0; i < 3000; i++)
            ddsketch_insert(&a, gamma_pow(2 * i), 1 + i % 5);
        for (int i = 0; i < 500; i++)
            ddsketch_insert(&a, -gamma_pow(i), 1);
        rc = ddsketch_merge(&c, &b);
        rc |= ddsketch_merge(&c, &a);
        OK(rc == 0 && same_bins(&c, &all), "merge order does not matter");
        ddsketch_release(&c);
    }
    ddsketch_release(&a);
    ddsketch_release(&b);
    ddsketch_release(&all);
    ddsketch_release(&empty);
}

/* ---- the bin limit -------------------------------------------------------------------------- */

/* A model of the agent's sparse store: keys buffered (Agent.Insert, agentBufCap 512), then
 * sorted and merged into the bins, then trimLeft: past the limit, the lowest len - limit bins
 * are added to the lowest kept one. Naive on purpose. */
struct model {
    int32_t k[DDSKETCH_BIN_LIMIT + 600];
    uint64_t n[DDSKETCH_BIN_LIMIT + 600];
    uint32_t len;
};

static void model_add(struct model *m, int32_t key, uint64_t n)
{
    uint32_t i = 0;
    while (i < m->len && m->k[i] < key)
        i++;
    if (i < m->len && m->k[i] == key) {
        m->n[i] += n;
        return;
    }
    memmove(m->k + i + 1, m->k + i, (m->len - i) * sizeof m->k[0]);
    memmove(m->n + i + 1, m->n + i, (m->len - i) * sizeof m->n[0]);
    m->k[i] = key;
    m->n[i] = n;
    m->len++;
}

static void model_trim(struct model *m)
{
    uint32_t remove;
    if (m->len <= DDSKETCH_BIN_LIMIT)
        return;
    remove = m->len - DDSKETCH_BIN_LIMIT;
    for (uint32_t i = 0; i < remove; i++)
        m->n[remove] += m->n[i];
    memmove(m->k, m->k + remove, DDSKETCH_BIN_LIMIT * sizeof m->k[0]);
    memmove(m->n, m->n + remove, DDSKETCH_BIN_LIMIT * sizeof m->n[0]);
    m->len = DDSKETCH_BIN_LIMIT;
}

static int model_equal(const struct model *m, const struct ddsketch *s)
{
    if (m->len != s->nbins)
        return 0;
    for (uint32_t i = 0; i < m->len; i++)
        if (m->k[i] != s->keys[i] || m->n[i] != s->counts[i])
            return 0;
    return 1;
}

static void test_bin_limit(void)
{
    struct ddsketch s;
    double *vals = malloc(6000 * sizeof *vals);
    double sum = 0;
    int rc = 0;

    if (vals == NULL)
        abort();
    /* 6000 distinct keys: the 1904 lowest fold into the 1905th. */
    ddsketch_init(&s);
    for (int i = 0; i < 6000; i++) {
        vals[i] = gamma_pow(i - 300);
        sum += vals[i];
        rc |= ddsketch_insert(&s, vals[i], 1);
    }
    OK(rc == 0, "6000 distinct keys inserted");
    IS_UINT(s.nbins, DDSKETCH_BIN_LIMIT, "nbins stays at the limit");
    OK(s.count == 6000 && s.sum == sum && well_formed(&s), "count and sum exact, bins well formed");
    IS_INT(s.keys[0], DDSKETCH_BIAS - 300 + 1904, "the lowest kept key is the 1905th");
    IS_UINT(s.counts[0], 1905, "it holds the counts of the keys folded into it");
    IS_INT(s.keys[s.nbins - 1], DDSKETCH_BIAS - 300 + 5999, "the highest key is kept");
    IS_UINT(ddsketch_mem_bytes(&s), DDSKETCH_BIN_LIMIT * 8, "memory stops at 4096 bins * 8 bytes");
    {
        double worst = 0;
        for (double q = 0.35; q < 1; q += 0.01) {
            double want = vals[(size_t)rint(q * 5999)], got = ddsketch_quantile(&s, q);
            double err = fabs(got - want) / want;
            if (err > worst)
                worst = err;
        }
        OK(worst <= EPS + SLACK, "quantiles above the folded keys stay within eps");
        printf("#   worst relative error for q >= 0.35: %.6f\n", worst);
    }
    OK(ddsketch_quantile(&s, 0) == vals[0] && ddsketch_quantile(&s, 1) == vals[5999],
       "q 0 and 1 stay exact");
    ddsketch_release(&s);

    /* Where a new key lands at the limit: every other key, so there are gaps. */
    ddsketch_init(&s);
    for (int i = 0; i < DDSKETCH_BIN_LIMIT; i++)
        rc |= ddsketch_insert(&s, gamma_pow(2 * i), 1);
    OK(rc == 0 && s.nbins == DDSKETCH_BIN_LIMIT && s.keys[0] == DDSKETCH_BIAS, "full: 4096 keys");
    ddsketch_insert(&s, gamma_pow(-5), 1); /* below every key: folds into the lowest */
    OK(s.nbins == DDSKETCH_BIN_LIMIT && s.keys[0] == DDSKETCH_BIAS && s.counts[0] == 2,
       "a new lowest key folds into the lowest bin");
    ddsketch_insert(&s, gamma_pow(1), 1); /* between the two lowest: it takes the lowest */
    OK(s.nbins == DDSKETCH_BIN_LIMIT && s.keys[0] == DDSKETCH_BIAS + 1 && s.counts[0] == 3 &&
           s.keys[1] == DDSKETCH_BIAS + 2 && s.counts[1] == 1,
       "a new key above the lowest: the lowest folds into it");
    ddsketch_insert(&s, gamma_pow(3 * DDSKETCH_BIN_LIMIT), 4); /* the highest */
    OK(s.nbins == DDSKETCH_BIN_LIMIT && s.keys[0] == DDSKETCH_BIAS + 2 && s.counts[0] == 4 &&
           s.keys[s.nbins - 1] == DDSKETCH_BIAS + 3 * DDSKETCH_BIN_LIMIT &&
           s.counts[s.nbins - 1] == 4 && well_formed(&s),
       "a new highest key: the two lowest fold together");
    ddsketch_release(&s);

    /* Random keys of both signs (about 8400 possible) against the model of the agent, which
     * buffers 512 keys and trims once per batch: folding one key at a time ends the same. */
    {
        static struct model m;
        int32_t buf[512];
        uint32_t nbuf = 0;
        int bad = 0, checks = 0;

        memset(&m, 0, sizeof m);
        ddsketch_init(&s);
        rng_state = 2024;
        for (int i = 0; i < 200000; i++) {
            /* The range drifts upward, so new lowest keys, inner keys and new highest keys
             * all come. */
            double mag = exp(-15 + 65 * rng_uniform() * (0.5 + i / 400000.0));
            double v = rng_next() & 1 ? mag : -mag;
            rc |= ddsketch_insert(&s, v, 1);
            buf[nbuf++] = ddsketch_key(v);
            if (nbuf == 512) {
                for (uint32_t j = 0; j < nbuf; j++)
                    model_add(&m, buf[j], 1);
                model_trim(&m);
                nbuf = 0;
                checks++;
                if (!model_equal(&m, &s) && bad++ < 1)
                    printf("#   differs after %d values\n", i + 1);
            }
        }
        OK(rc == 0 && bad == 0 && checks > 300 && well_formed(&s),
           "random keys past the limit: the bins of the agent's batched trimLeft");
        ddsketch_release(&s);
    }
    free(vals);
}

/* ---- reuse, view, memory -------------------------------------------------------------------- */

static void test_reset_and_view(void)
{
    struct ddsketch s;
    struct rmr_sketch v;
    const int32_t *keys;
    uint32_t cap;
    int rc = 0;

    ddsketch_init(&s);
    IS_UINT(ddsketch_mem_bytes(&s), 0, "a fresh sketch holds no heap");
    ddsketch_view(&s, &v);
    OK(v.struct_size == sizeof v && v.nbins == 0 && v.count == 0 && v.keys == NULL &&
           v.counts == NULL,
       "view of an empty sketch");

    ddsketch_insert(&s, 1.0, 1);
    IS_UINT(ddsketch_mem_bytes(&s), 8 * 8, "the first insert takes 8 bins");
    for (int i = 0; i < 3000; i++)
        rc |= ddsketch_insert(&s, (double)i - 1000.0, 1 + (uint32_t)(i % 2));
    keys = s.keys;
    cap = s.cap;
    ddsketch_view(&s, &v);
    OK(v.struct_size == sizeof v && v.nbins == s.nbins && v.count == s.count && v.min == -1000.0 &&
           v.max == 1999.0 && v.sum == s.sum && v.keys == s.keys && v.counts == s.counts,
       "view: every field, keys and counts borrowed");
    {
        int same = 1;
        const double quants[] = {0, 0.01, 0.25, 0.5, 0.75, 0.95, 0.99, 1};
        for (size_t i = 0; i < sizeof quants / sizeof quants[0]; i++)
            same &= ddsketch_view_quantile(&v, quants[i]) == ddsketch_quantile(&s, quants[i]);
        OK(same, "a record's view gives the sketch's own quantiles");
        OK(ddsketch_view_quantile(&v, 0.5) > 450 && ddsketch_view_quantile(&v, 0.5) < 560,
           "and the median of -1000..1999 weighted 1,2 is near 500");
        OK(isnan(ddsketch_view_quantile(NULL, 0.5)), "no view: NaN");
    }

    ddsketch_reset(&s);
    OK(s.nbins == 0 && s.count == 0 && s.sum == 0 && s.min == 0 && s.max == 0 &&
           isnan(ddsketch_quantile(&s, 0.5)),
       "reset empties the sketch");
    OK(s.keys == keys && s.cap == cap, "reset keeps the memory");
    for (int i = 0; i < 3000; i++)
        rc |= ddsketch_insert(&s, (double)i - 1000.0, 1 + (uint32_t)(i % 2));
    OK(rc == 0 && s.keys == keys && s.cap == cap && well_formed(&s),
       "refilling after reset allocates nothing");
    OK(s.min == -1000.0 && s.max == 1999.0, "min and max restart after reset");

    ddsketch_release(&s);
    OK(s.keys == NULL && s.nbins == 0 && s.cap == 0, "release frees and empties");
    ddsketch_release(&s);
    OK(1, "release twice is harmless");
}

/* ---- micro benchmark ------------------------------------------------------------------------ */

static void bench(void)
{
    enum { BN = 1000000 };
    double *vals = malloc(BN * sizeof *vals);
    struct ddsketch s;
    int64_t t0, t1;
    int rc = 0;

    if (vals == NULL)
        abort();
    rng_state = 5;
    for (int i = 0; i < BN; i++)
        vals[i] = exp(3 + rng_normal()); /* latencies in ms, around 20 */
    ddsketch_init(&s);
    ddsketch_insert(&s, 1, 1); /* the first allocation outside the timing */
    t0 = now_ns();
    for (int i = 0; i < BN; i++)
        rc |= ddsketch_insert(&s, vals[i], 1);
    t1 = now_ns();
    printf("# ns per insert: %.1f (lognormal, %u bins)\n", (double)(t1 - t0) / BN, s.nbins);

    t0 = now_ns();
    for (int i = 0; i < BN; i++)
        rc |= ddsketch_insert(&s, 12.5, 1);
    t1 = now_ns();
    printf("# ns per insert: %.1f (one repeated value)\n", (double)(t1 - t0) / BN);

    ddsketch_reset(&s);
    for (int i = 0; i < BN; i++)
        vals[i] = (rng_next() & 1 ? 1 : -1) * exp(-15 + 70 * rng_uniform());
    t0 = now_ns();
    for (int i = 0; i < BN; i++)
        rc |= ddsketch_insert(&s, vals[i], 1);
    t1 = now_ns();
    printf("# ns per insert: %.1f (both signs over 1e-7..1e15: at the bin limit, %u bins)\n",
           (double)(t1 - t0) / BN, s.nbins);
    OK(rc == 0, "benchmark inserts succeed");
    ddsketch_release(&s);
    free(vals);
}

int main(void)
{
    test_keys();
    test_half_to_even();
    test_key_value();
    test_quantile_rules();
    test_distributions();
    test_weights();
    test_refused();
    test_merge();
    test_bin_limit();
    test_reset_and_view();
    bench();
    return tap_done();
}
