/* plugins/inputs/dogstatsd: the DogStatsD message parser (see parse.h).
 *
 * Every function reads within [ptr, ptr + len) only: wire data is never NUL-terminated, and
 * numbers that need strtod are copied to a bounded stack buffer first. The field rules are the
 * Agent's (comp/dogstatsd/server/impl/parse*.go); comments point out where they are odd on
 * purpose.
 */
#include "parse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <remora/error.h>

/* ---- names ----------------------------------------------------------------------------------- */

const char *dsd_error_name(enum dsd_error e)
{
    switch (e) {
    case DSD_E_NONE: return "none";
    case DSD_E_NO_NAME: return "no_name";
    case DSD_E_NO_VALUE: return "no_value";
    case DSD_E_NO_TYPE: return "no_type";
    case DSD_E_BAD_TYPE: return "bad_type";
    case DSD_E_BAD_VALUE: return "bad_value";
    case DSD_E_BAD_RATE: return "bad_rate";
    case DSD_E_BAD_TIMESTAMP: return "bad_timestamp";
    case DSD_E_BAD_EVENT: return "bad_event";
    case DSD_E_BAD_CHECK: return "bad_check";
    case DSD_E_TOO_LONG: return "too_long";
    case DSD_E_COUNT: break;
    }
    return "unknown";
}

const char *dsd_mtype_name(enum dsd_mtype t)
{
    switch (t) {
    case DSD_GAUGE: return "gauge";
    case DSD_COUNT: return "count";
    case DSD_HISTOGRAM: return "histogram";
    case DSD_TIMING: return "timing";
    case DSD_SET: return "set";
    case DSD_DISTRIBUTION: return "distribution";
    case DSD_MTYPE_COUNT: break;
    }
    return "unknown";
}

/* Seconds that still fit a record's int64 nanoseconds. */
#define MAX_UNIX_S (INT64_MAX / 1000000000LL)

/* ---- small helpers -----------------------------------------------------------------------------
 */

static struct dsd_span span(const char *p, size_t n)
{
    struct dsd_span s = {p, (uint32_t)n};
    return s;
}

static int has_prefix(const char *p, size_t n, const char *pre, size_t plen)
{
    return n >= plen && memcmp(p, pre, plen) == 0;
}

static int span_eq(struct dsd_span s, const char *lit, size_t n)
{
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static unsigned char lower(unsigned char c)
{
    return c | 0x20;
}

/* Go's bytes-based field walk: the field before the next '|', and the rest after it. The Agent
 * distinguishes a nil rest (no separator: the walk ends) from an empty one (a trailing '|':
 * one more, empty, field); done models the nil. */
struct fields {
    const char *p;
    const char *end;
    int done;
};

static struct dsd_span next_field(struct fields *f)
{
    const char *bar = memchr(f->p, '|', (size_t)(f->end - f->p));
    struct dsd_span s;
    if (bar == NULL) {
        s = span(f->p, (size_t)(f->end - f->p));
        f->p = f->end;
        f->done = 1;
    } else {
        s = span(f->p, (size_t)(bar - f->p));
        f->p = bar + 1;
    }
    return s;
}

/* ---- numbers -----------------------------------------------------------------------------------
 */

static const double pow10_exact[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Go's underscoreOK: '_' only between digits, or between a base prefix and a digit. */
static int underscores_ok(const char *s, size_t n)
{
    char saw = '^';
    size_t i = 0;
    int hex = 0;
    if (n >= 1 && (s[0] == '-' || s[0] == '+')) {
        s++;
        n--;
    }
    if (n >= 2 && s[0] == '0' &&
        (lower((unsigned char)s[1]) == 'b' || lower((unsigned char)s[1]) == 'o' ||
         lower((unsigned char)s[1]) == 'x')) {
        i = 2;
        saw = '0';
        hex = lower((unsigned char)s[1]) == 'x';
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= '0' && c <= '9') || (hex && lower(c) >= 'a' && lower(c) <= 'f')) {
            saw = '0';
            continue;
        }
        if (c == '_') {
            if (saw != '0')
                return 0;
            saw = '_';
            continue;
        }
        if (saw == '_')
            return 0;
        saw = '!';
    }
    return saw != '_';
}

/* Case-insensitive match of the whole of s against lit. */
static int eq_nocase(const char *s, size_t n, const char *lit)
{
    size_t i = 0;
    for (; i < n && lit[i] != '\0'; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return 0;
    return i == n && lit[i] == '\0';
}

/* The slow path: Go's grammar checked exactly (readFloat and special), then strtod on a clean
 * NUL-terminated copy without underscores. */
static int parse_double_slow(const char *s, size_t n, double *out)
{
    size_t i = 0;
    int neg = 0, hex = 0, underscores = 0, sawdot = 0, sawdigits = 0;
    if (n == 0)
        return RMR_EINVAL;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    /* Go's special(): a signed or unsigned "inf"/"infinity", an unsigned "nan". */
    if (eq_nocase(s + i, n - i, "inf") || eq_nocase(s + i, n - i, "infinity")) {
        *out = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (i == 0 && eq_nocase(s, n, "nan")) {
        *out = NAN;
        return 0;
    }
    if (i + 1 < n && s[i] == '0' && lower((unsigned char)s[i + 1]) == 'x') {
        hex = 1;
        i += 2;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '_') {
            underscores = 1;
            continue;
        }
        if (c == '.') {
            if (sawdot)
                break;
            sawdot = 1;
            continue;
        }
        if ((c >= '0' && c <= '9') || (hex && lower(c) >= 'a' && lower(c) <= 'f')) {
            sawdigits = 1;
            continue;
        }
        break;
    }
    if (!sawdigits)
        return RMR_EINVAL;
    if (i < n && lower((unsigned char)s[i]) == (hex ? 'p' : 'e')) {
        i++;
        if (i >= n)
            return RMR_EINVAL;
        if (s[i] == '+' || s[i] == '-')
            i++;
        if (i >= n || s[i] < '0' || s[i] > '9')
            return RMR_EINVAL;
        for (; i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'); i++)
            if (s[i] == '_')
                underscores = 1;
    } else if (hex) {
        return RMR_EINVAL; /* a hexadecimal mantissa needs its 'p' exponent */
    }
    if (i != n)
        return RMR_EINVAL;
    if (underscores && !underscores_ok(s, n))
        return RMR_EINVAL;
    if (n > DSD_MAX_NUMBER)
        return RMR_EINVAL;

    char buf[DSD_MAX_NUMBER + 1];
    size_t k = 0;
    for (i = 0; i < n; i++)
        if (s[i] != '_')
            buf[k++] = s[i];
    buf[k] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    if (end != buf + k)
        return RMR_EINVAL;
    /* Go answers a finite number beyond the double range with +-Inf and ErrRange, which the
     * Agent treats as a parse error; underflow is not an error there. */
    if (isinf(v))
        return RMR_EINVAL;
    *out = v;
    return 0;
}

int dsd_parse_double(const char *s, size_t n, double *out)
{
    /* Fast path (Clinger): an integer or plain decimal whose significant digits fit in 2^53
     * and whose fraction has at most 22 digits converts exactly with one correctly rounded
     * division, so the result equals strtod's. Leading zeros are not significant. */
    size_t i = 0;
    int neg = 0, sawdot = 0, sawdigit = 0, ndig = 0, frac = 0;
    uint64_t mant = 0;
    if (n == 0)
        return RMR_EINVAL;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    for (; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d <= 9) {
            sawdigit = 1;
            if (sawdot)
                frac++;
            if (mant == 0 && d == 0)
                continue;
            if (++ndig > 16)
                return parse_double_slow(s, n, out);
            mant = mant * 10 + d;
        } else if (s[i] == '.' && !sawdot) {
            sawdot = 1;
        } else {
            return parse_double_slow(s, n, out);
        }
    }
    if (!sawdigit || mant > ((uint64_t)1 << 53) || frac > 22)
        return parse_double_slow(s, n, out);
    double v = (double)mant;
    if (frac > 0)
        v /= pow10_exact[frac];
    *out = neg ? -v : v;
    return 0;
}

int dsd_parse_int64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    uint64_t v = 0;
    if (n == 0)
        return RMR_EINVAL;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
        if (n == 1)
            return RMR_EINVAL;
    }
    for (; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9)
            return RMR_EINVAL;
        if (v > (UINT64_MAX - d) / 10)
            return RMR_ERANGE;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return RMR_ERANGE;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return RMR_ERANGE;
        *out = (int64_t)v;
    }
    return 0;
}

int dsd_values_next(struct dsd_span *rest, double *out)
{
    while (rest->len > 0) {
        const char *c = memchr(rest->ptr, ':', rest->len);
        size_t n = c != NULL ? (size_t)(c - rest->ptr) : rest->len;
        const char *p = rest->ptr;
        if (c != NULL) {
            rest->ptr = c + 1;
            rest->len -= (uint32_t)n + 1;
        } else {
            rest->ptr += n;
            rest->len = 0;
        }
        if (n == 0)
            continue; /* "21::22": empty items are skipped */
        if (dsd_parse_double(p, n, out) != 0) {
            rest->len = 0;
            return 0;
        }
        return 1;
    }
    return 0;
}

int dsd_tags_next(struct dsd_span *rest, struct dsd_span *tag)
{
    if (rest->ptr == NULL)
        return 0;
    const char *c = memchr(rest->ptr, ',', rest->len);
    if (c == NULL) {
        *tag = *rest;
        rest->ptr = NULL;
        rest->len = 0;
    } else {
        *tag = span(rest->ptr, (size_t)(c - rest->ptr));
        rest->len -= tag->len + 1;
        rest->ptr = c + 1;
    }
    return 1;
}

size_t dsd_unescape(struct dsd_span src, char *dst, int check_message)
{
    size_t k = 0;
    for (uint32_t i = 0; i < src.len; i++) {
        char c = src.ptr[i];
        if (c == '\\' && i + 1 < src.len && src.ptr[i + 1] == 'n') {
            dst[k++] = '\n';
            i++;
        } else if (check_message && c == 'm' && i + 2 < src.len && src.ptr[i + 1] == '\\' &&
                   src.ptr[i + 2] == ':') {
            dst[k++] = 'm';
            dst[k++] = ':';
            i += 2;
        } else {
            dst[k++] = c;
        }
    }
    return k;
}

/* ---- common optional fields -------------------------------------------------------------------
 */

/* "|c:" local data (comp/core/tagger/origindetection ParseLocalData). A list holds "ci-" and
 * "in-" items; a single item may also be "cid-<id>" or a raw container id. */
static void parse_local_data(struct dsd_span raw, struct dsd_origin *o)
{
    o->container_id = span(NULL, 0);
    if (raw.len == 0)
        return;
    if (memchr(raw.ptr, ',', raw.len) != NULL) {
        struct dsd_span rest = raw, item;
        while (dsd_tags_next(&rest, &item))
            if (has_prefix(item.ptr, item.len, "ci-", 3))
                o->container_id = span(item.ptr + 3, item.len - 3);
        return;
    }
    if (has_prefix(raw.ptr, raw.len, "ci-", 3))
        o->container_id = span(raw.ptr + 3, raw.len - 3);
    else if (has_prefix(raw.ptr, raw.len, "in-", 3))
        return; /* a cgroup v2 inode: resolvable only by a node agent */
    else if (has_prefix(raw.ptr, raw.len, "cid-", 4))
        o->container_id = span(raw.ptr + 4, raw.len - 4);
    else
        o->container_id = raw;
}

/* The origin fields every kind accepts. Returns 1 when f was one of them. */
static int origin_field(struct dsd_span f, struct dsd_origin *o)
{
    if (has_prefix(f.ptr, f.len, "c:", 2)) {
        parse_local_data(span(f.ptr + 2, f.len - 2), o);
        return 1;
    }
    if (has_prefix(f.ptr, f.len, "e:", 2)) {
        o->external = span(f.ptr + 2, f.len - 2);
        return 1;
    }
    if (has_prefix(f.ptr, f.len, "card:", 5)) {
        o->cardinality = span(f.ptr + 5, f.len - 5);
        return 1;
    }
    return 0;
}

/* ---- metrics ------------------------------------------------------------------------------------
 */

static enum dsd_error parse_type(struct dsd_span t, uint32_t *type)
{
    if (t.len == 1) {
        switch (t.ptr[0]) {
        case 'g': *type = DSD_GAUGE; return DSD_E_NONE;
        case 'c': *type = DSD_COUNT; return DSD_E_NONE;
        case 'h': *type = DSD_HISTOGRAM; return DSD_E_NONE;
        case 'd': *type = DSD_DISTRIBUTION; return DSD_E_NONE;
        case 's': *type = DSD_SET; return DSD_E_NONE;
        default: return DSD_E_BAD_TYPE;
        }
    }
    if (span_eq(t, "ms", 2)) {
        *type = DSD_TIMING;
        return DSD_E_NONE;
    }
    return t.len == 0 ? DSD_E_NO_TYPE : DSD_E_BAD_TYPE;
}

static enum dsd_error parse_metric(const char *s, size_t len, struct dsd_metric *m)
{
    const char *end = s + len;
    enum dsd_error e;

    memset(m, 0, sizeof *m);
    m->rate = 1;
    /* The Agent first asks for at least one '|' ("invalid dogstatsd message format"). */
    const char *bar = memchr(s, '|', len);
    if (bar == NULL)
        return DSD_E_NO_TYPE;
    const char *colon = memchr(s, ':', (size_t)(bar - s));
    if (colon == NULL)
        return DSD_E_NO_VALUE; /* "abc666|g": no name/value separator */
    m->name = span(s, (size_t)(colon - s));
    m->values = span(colon + 1, (size_t)(bar - colon - 1));
    if (m->name.len == 0)
        return DSD_E_NO_NAME;
    if (m->values.len == 0)
        return DSD_E_NO_VALUE;
    if (m->name.len > DSD_MAX_NAME)
        return DSD_E_TOO_LONG;

    /* The type: one or two bytes, read in place; anything else through parse_type() for its
     * reason. */
    const char *t = bar + 1;
    size_t rest = (size_t)(end - t);
    const char *tend;
    if (rest >= 1 && (rest == 1 || t[1] == '|') && t[0] != 'm' && t[0] != '|') {
        tend = t + 1;
        if ((e = parse_type(span(t, 1), &m->type)) != DSD_E_NONE)
            return e;
    } else if (rest >= 2 && t[0] == 'm' && t[1] == 's' && (rest == 2 || t[2] == '|')) {
        tend = t + 2;
        m->type = DSD_TIMING;
    } else {
        tend = memchr(t, '|', rest);
        if (tend == NULL)
            tend = end;
        if ((e = parse_type(span(t, (size_t)(tend - t)), &m->type)) != DSD_E_NONE)
            return e;
    }
    struct fields f = {tend < end ? tend + 1 : end, end, tend >= end};

    if (m->type == DSD_SET) {
        m->nvalues = 1; /* sets are never multi-value: the member is the whole remainder */
    } else if (dsd_parse_double(m->values.ptr, m->values.len, &m->value) == 0) {
        m->nvalues = 1; /* the common case; a ':' never parses as a number */
    } else if (memchr(m->values.ptr, ':', m->values.len) == NULL) {
        return DSD_E_BAD_VALUE;
    } else {
        /* Validates every item now so a bad one refuses the whole message, as in the Agent. */
        struct dsd_span vr = m->values;
        while (vr.len > 0) {
            const char *c = memchr(vr.ptr, ':', vr.len);
            size_t n = c != NULL ? (size_t)(c - vr.ptr) : vr.len;
            double v;
            if (n > 0) {
                if (dsd_parse_double(vr.ptr, n, &v) != 0)
                    return DSD_E_BAD_VALUE;
                if (m->nvalues++ == 0)
                    m->value = v;
            }
            if (c == NULL)
                break;
            vr = span(c + 1, vr.len - n - 1);
        }
        if (m->nvalues == 0)
            return DSD_E_NO_VALUE; /* only separators: "a::|g" */
    }

    while (!f.done) {
        struct dsd_span o = next_field(&f);
        if (o.len == 0)
            continue;
        switch (o.ptr[0]) {
        case '#':
            m->has_tags = 1;
            m->tags = span(o.ptr + 1, o.len - 1);
            continue;
        case '@': {
            double r;
            /* The Agent accepts any float; a rate that is not finite and above zero would turn
             * counters into Inf or NaN, so it is refused here. */
            if (dsd_parse_double(o.ptr + 1, o.len - 1, &r) != 0 || !(r > 0) || isinf(r))
                return DSD_E_BAD_RATE;
            m->rate = r;
            continue;
        }
        case 'T': {
            int64_t ts;
            /* Above INT64_MAX / 1e9 (year 2262) it would not fit a record's time_ns. */
            if (dsd_parse_int64(o.ptr + 1, o.len - 1, &ts) != 0 || ts < 1 || ts > MAX_UNIX_S)
                return DSD_E_BAD_TIMESTAMP;
            m->timestamp = ts;
            continue;
        }
        default: (void)origin_field(o, &m->origin); continue;
        }
    }
    return DSD_E_NONE;
}

/* ---- events -------------------------------------------------------------------------------------
 */

static void event_field(struct dsd_span f, struct dsd_event *ev)
{
    int64_t ts;
    if (has_prefix(f.ptr, f.len, "d:", 2)) {
        if (dsd_parse_int64(f.ptr + 2, f.len - 2, &ts) == 0 && ts >= -MAX_UNIX_S &&
            ts <= MAX_UNIX_S)
            ev->timestamp = ts;
        else
            ev->bad_fields++;
    } else if (has_prefix(f.ptr, f.len, "h:", 2)) {
        ev->host = span(f.ptr + 2, f.len - 2);
    } else if (has_prefix(f.ptr, f.len, "k:", 2)) {
        ev->aggregation_key = span(f.ptr + 2, f.len - 2);
    } else if (has_prefix(f.ptr, f.len, "p:", 2)) {
        struct dsd_span p = span(f.ptr + 2, f.len - 2);
        if (span_eq(p, "normal", 6))
            ev->priority = 0; /* RMR_EVENT_NORMAL */
        else if (span_eq(p, "low", 3))
            ev->priority = 1; /* RMR_EVENT_LOW */
        else
            ev->bad_fields++;
    } else if (has_prefix(f.ptr, f.len, "s:", 2)) {
        ev->source_type = span(f.ptr + 2, f.len - 2);
    } else if (has_prefix(f.ptr, f.len, "t:", 2)) {
        struct dsd_span t = span(f.ptr + 2, f.len - 2);
        if (span_eq(t, "error", 5) || span_eq(t, "warning", 7) || span_eq(t, "info", 4) ||
            span_eq(t, "success", 7))
            ev->alert_type = t;
        else
            ev->bad_fields++;
    } else if (f.len >= 1 && f.ptr[0] == '#') {
        ev->has_tags = 1;
        ev->tags = span(f.ptr + 1, f.len - 1);
    } else {
        (void)origin_field(f, &ev->origin);
    }
}

static enum dsd_error parse_event(const char *s, size_t len, struct dsd_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->alert_type = span("info", 4);
    const char *colon = memchr(s, ':', len);
    if (colon == NULL)
        return DSD_E_BAD_EVENT;
    size_t hlen = (size_t)(colon - s);
    const char *raw = colon + 1;
    size_t rawlen = len - hlen - 1;
    if (hlen < 7)
        return DSD_E_BAD_EVENT;
    /* "_e{" then the lengths up to the header's last byte; like the Agent, the closing '}'
     * itself is not checked. */
    const char *lp = s + 3;
    size_t ln = hlen - 4;
    const char *comma = memchr(lp, ',', ln);
    if (comma == NULL)
        return DSD_E_BAD_EVENT;
    int64_t tlen, xlen;
    if (dsd_parse_int64(lp, (size_t)(comma - lp), &tlen) != 0 || tlen <= 0)
        return DSD_E_BAD_EVENT; /* 0: "invalid event: empty title" */
    if (dsd_parse_int64(comma + 1, ln - (size_t)(comma - lp) - 1, &xlen) != 0 || xlen < 0)
        return DSD_E_BAD_EVENT;
    /* Both are below 2^63, so the sum cannot wrap a uint64. */
    uint64_t text_start = (uint64_t)tlen + 1;
    uint64_t content = text_start + (uint64_t)xlen;
    if ((uint64_t)rawlen < content)
        return DSD_E_BAD_EVENT;
    /* Neither is the '|' between title and text: the lengths alone cut them. */
    ev->title = span(raw, (size_t)tlen);
    ev->text = span(raw + text_start, (size_t)xlen);
    if ((uint64_t)rawlen == content)
        return DSD_E_NONE;
    struct fields f = {raw + content, raw + rawlen, 0};
    while (!f.done)
        event_field(next_field(&f), ev);
    return DSD_E_NONE;
}

/* ---- service checks ------------------------------------------------------------------------- */

static enum dsd_error parse_check(const char *s, size_t len, struct dsd_check *sc)
{
    memset(sc, 0, sizeof *sc);
    uint32_t bars = 0;
    for (const char *p = s; (p = memchr(p, '|', (size_t)(s + len - p))) != NULL; p++)
        if (++bars >= 2)
            break;
    if (bars < 2 || len < 4)
        return DSD_E_BAD_CHECK;
    /* "_sc|": the fourth byte is skipped whatever it is, as in the Agent. */
    struct fields f = {s + 4, s + len, 0};
    sc->name = next_field(&f);
    if (sc->name.len == 0)
        return DSD_E_BAD_CHECK;
    if (f.done)
        return DSD_E_BAD_CHECK;
    struct dsd_span st = next_field(&f);
    if (st.len != 1 || st.ptr[0] < '0' || st.ptr[0] > '3')
        return DSD_E_BAD_CHECK;
    sc->status = (uint32_t)(st.ptr[0] - '0');
    while (!f.done) {
        struct dsd_span o = next_field(&f);
        int64_t ts;
        if (has_prefix(o.ptr, o.len, "d:", 2)) {
            if (dsd_parse_int64(o.ptr + 2, o.len - 2, &ts) == 0 && ts >= -MAX_UNIX_S &&
                ts <= MAX_UNIX_S)
                sc->timestamp = ts;
            else
                sc->bad_fields++;
        } else if (has_prefix(o.ptr, o.len, "h:", 2)) {
            sc->host = span(o.ptr + 2, o.len - 2);
        } else if (o.len >= 1 && o.ptr[0] == '#') {
            sc->has_tags = 1;
            sc->tags = span(o.ptr + 1, o.len - 1);
        } else if (has_prefix(o.ptr, o.len, "m:", 2)) {
            /* The docs put "m:" last, but clients append "|c:" and "|e:" after it, so like the
             * Agent the message ends at the next '|' (clients do not escape '|'). */
            sc->message = span(o.ptr + 2, o.len - 2);
        } else {
            (void)origin_field(o, &sc->origin);
        }
    }
    return DSD_E_NONE;
}

/* ---- entry ----------------------------------------------------------------------------------- */

enum dsd_error dsd_parse(const char *msg, size_t len, struct dsd_msg *out)
{
    if (len > DSD_MAX_MESSAGE)
        return DSD_E_TOO_LONG;
    if (len >= 3 && msg[0] == '_') {
        if (msg[1] == 'e' && msg[2] == '{') {
            out->kind = DSD_MSG_EVENT;
            return parse_event(msg, len, &out->u.event);
        }
        if (msg[1] == 's' && msg[2] == 'c') {
            out->kind = DSD_MSG_CHECK;
            return parse_check(msg, len, &out->u.check);
        }
    }
    out->kind = DSD_MSG_METRIC;
    return parse_metric(msg, len, &out->u.metric);
}
