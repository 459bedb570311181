/* plugins/lib/lineproto: the line protocol encoder and parser. The rules, with their sources,
 * are in README.md next to this file; the real-server test is
 * test/integration/test_lineproto_influx.py. */
#include "lineproto.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/error.h>

#include "../numfmt/numfmt.h"

/* ---- buffer --------------------------------------------------------------------------------- */

void lp_buf_init(struct lp_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void lp_buf_release(struct lp_buf *b)
{
    free(b->data);
    lp_buf_init(b);
}

void lp_buf_reset(struct lp_buf *b)
{
    b->len = 0;
}

/* Makes room for extra more bytes; the buffer is unchanged on failure. */
static int buf_reserve(struct lp_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return RMR_ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return RMR_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Writers below run after buf_reserve() made room for the worst case of the whole line. */
static void put_byte(struct lp_buf *b, char c)
{
    b->data[b->len++] = c;
}

static void put_mem(struct lp_buf *b, const char *s, size_t n)
{
    if (n > 0)
        memcpy(b->data + b->len, s, n);
    b->len += n;
}

/* ---- names: measurement, tag keys, tag values, field keys ------------------------------------ */

enum name_kind { NAME_MEASUREMENT, NAME_KEY };

/* A byte a name is written with: line breaks become spaces (Datakit's adjustKV). */
static char name_byte(char c)
{
    return c == '\n' ? ' ' : c;
}

/* Bytes before which InfluxDB 1.x reads a backslash as an escape that it then removes, or
 * which end the token: a literal backslash there cannot be written, so it is left out. */
static int eats_backslash(char c)
{
    return c == ',' || c == '=' || c == ' ' || c == '"';
}

/* Whether a name is left with any byte: only backslashes (all trailing) vanish. */
static int name_empty(struct rmr_str s)
{
    for (uint32_t i = 0; i < s.len; i++)
        if (s.ptr[i] != '\\')
            return 0;
    return 1;
}

static size_t name_bound(struct rmr_str s)
{
    return 2 * (size_t)s.len;
}

/* Writes a non-empty name (name_empty() false). The measurement escapes ',' and ' ', keys and
 * tag values ',', '=' and ' '; a run of backslashes before a byte that would eat it, or at the
 * end, is left out (Datakit strips trailing backslashes the same way); a measurement that would
 * start with '#' (a comment) or a tab (skipped as leading blank) starts with '_' instead. */
static void put_name(struct lp_buf *b, struct rmr_str s, enum name_kind kind)
{
    size_t start = b->len;
    uint32_t i = 0;
    while (i < s.len) {
        char c = name_byte(s.ptr[i]);
        if (c == '\\') {
            uint32_t j = i;
            while (j < s.len && s.ptr[j] == '\\')
                j++;
            if (j < s.len && !eats_backslash(name_byte(s.ptr[j])))
                put_mem(b, s.ptr + i, j - i);
            i = j;
            continue;
        }
        if (c == ',' || c == ' ' || (c == '=' && kind == NAME_KEY))
            put_byte(b, '\\');
        else if (kind == NAME_MEASUREMENT && b->len == start && (c == '#' || c == '\t'))
            c = '_';
        put_byte(b, c);
        i++;
    }
}

/* ---- values --------------------------------------------------------------------------------- */

#define NUM_MAX 32 /* "-9223372036854775808i", "-2.2250738585072014e-308" */

int lp_encode(struct lp_buf *buf, const struct lp_point *p, uint32_t flags, struct lp_drops *drops)
{
    struct lp_drops none;
    if (drops == NULL) {
        memset(&none, 0, sizeof(none));
        drops = &none;
    }
    if (p->measurement.len == 0 || name_empty(p->measurement))
        return RMR_EINVAL;
    if (p->ntags > 0 && p->tags == NULL)
        return RMR_EINVAL;
    if (p->nfields > 0 && p->fields == NULL)
        return RMR_EINVAL;

    /* The worst case of the whole line, so the writes below cannot fail half way. */
    size_t need = name_bound(p->measurement) + 2 + NUM_MAX;
    for (uint32_t i = 0; i < p->ntags; i++) {
        size_t n = name_bound(p->tags[i].key) + name_bound(p->tags[i].value) + 2;
        if (n > SIZE_MAX - need)
            return RMR_ENOMEM;
        need += n;
    }
    for (uint32_t i = 0; i < p->nfields; i++) {
        const struct rmr_field *f = &p->fields[i];
        size_t n = name_bound(f->key) + 2 + NUM_MAX;
        if (f->value.type == RMR_VAL_STR)
            n += 2 * (size_t)f->value.str_len + 2;
        if (n > SIZE_MAX - need)
            return RMR_ENOMEM;
        need += n;
    }
    if (buf_reserve(buf, need) != 0)
        return RMR_ENOMEM;

    size_t line_start = buf->len;
    put_name(buf, p->measurement, NAME_MEASUREMENT);
    for (uint32_t i = 0; i < p->ntags; i++) {
        const struct rmr_tag *t = &p->tags[i];
        if (name_empty(t->key) || name_empty(t->value)) {
            drops->empty_tags++;
            continue;
        }
        put_byte(buf, ',');
        put_name(buf, t->key, NAME_KEY);
        put_byte(buf, '=');
        put_name(buf, t->value, NAME_KEY);
    }

    uint32_t written = 0;
    for (uint32_t i = 0; i < p->nfields; i++) {
        const struct rmr_field *f = &p->fields[i];
        char num[NUM_MAX + 8];
        size_t nlen = 0;
        int is_str = 0;
        switch ((enum rmr_value_type)f->value.type) {
        case RMR_VAL_NONE: continue;
        case RMR_VAL_STR:
            if (flags & LP_NO_STRING_FIELDS) {
                drops->string_field++;
                continue;
            }
            is_str = 1;
            break;
        case RMR_VAL_INT:
            nlen = (size_t)snprintf(num, sizeof(num), "%" PRId64 "i", f->value.v.i);
            break;
        case RMR_VAL_UINT:
            if (f->value.v.u > (uint64_t)INT64_MAX) {
                drops->uint_range++;
                continue;
            }
            nlen = (size_t)snprintf(num, sizeof(num), "%" PRIu64 "i", f->value.v.u);
            break;
        case RMR_VAL_DOUBLE:
            if (!isfinite(f->value.v.d)) {
                drops->non_finite++;
                continue;
            }
            /* Exponent forms (1e-300) are read by InfluxDB 1.x and Datakit. */
            nlen = numfmt_double(num, sizeof(num), f->value.v.d);
            break;
        case RMR_VAL_BOOL:
            nlen = f->value.v.i ? 4 : 5;
            memcpy(num, f->value.v.i ? "true" : "false", nlen);
            break;
        }
        if (!is_str && nlen == 0)
            continue; /* an unknown value type */
        if (name_empty(f->key)) {
            drops->empty_keys++;
            continue;
        }
        put_byte(buf, written == 0 ? ' ' : ',');
        put_name(buf, f->key, NAME_KEY);
        put_byte(buf, '=');
        if (is_str) {
            put_byte(buf, '"');
            const char *s = f->value.v.str;
            for (uint32_t k = 0; k < f->value.str_len; k++) {
                if (s[k] == '"' || s[k] == '\\')
                    put_byte(buf, '\\');
                put_byte(buf, s[k]);
            }
            put_byte(buf, '"');
        } else {
            put_mem(buf, num, nlen);
        }
        written++;
    }
    if (written == 0) {
        buf->len = line_start;
        drops->no_fields++;
        return 0;
    }
    if (p->time_ns != 0) {
        char ts[NUM_MAX];
        int n = snprintf(ts, sizeof(ts), " %" PRId64, p->time_ns);
        put_mem(buf, ts, (size_t)n);
    }
    put_byte(buf, '\n');
    return 1;
}

/* ---- parser --------------------------------------------------------------------------------- */

struct cursor {
    const char *s;
    size_t len;
    size_t i;
    struct lp_buf *scratch;
    char *err;
    size_t errlen;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
fail(struct cursor *c, const char *fmt, ...)
{
    if (c->err != NULL && c->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return RMR_EINVAL;
}

/* Scans to the first unescaped byte of stops (a backslash escapes the byte after it); returns
 * the end of the token. */
static size_t scan_to(const struct cursor *c, size_t i, const char *stops)
{
    while (i < c->len) {
        char ch = c->s[i];
        if (ch == '\\' && i + 1 < c->len) {
            i += 2;
            continue;
        }
        if (strchr(stops, ch) != NULL && ch != '\0')
            break;
        i++;
    }
    return i;
}

/* Copies s[a, b) into scratch, turning "\x" into "x" for x in unesc; the result is
 * NUL-terminated. The scratch has room (reserved per line). */
static struct rmr_str unescape(struct cursor *c, size_t a, size_t b, const char *unesc)
{
    struct lp_buf *sc = c->scratch;
    char *out = sc->data + sc->len;
    size_t n = 0;
    for (size_t i = a; i < b; i++) {
        char ch = c->s[i];
        if (ch == '\\' && i + 1 < b && c->s[i + 1] != '\0' && strchr(unesc, c->s[i + 1]) != NULL) {
            out[n++] = c->s[i + 1];
            i++;
            continue;
        }
        out[n++] = ch;
    }
    out[n] = '\0';
    sc->len += n + 1;
    return rmr_str_n(out, n);
}

static int parse_int_digits(const char *s, size_t n, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return -1;
    for (size_t k = 0; k < n; k++) {
        if (s[k] < '0' || s[k] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[k] - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* -?digits[.digits][(e|E)[+-]digits] with at least one mantissa digit (InfluxDB's scanNumber). */
static int float_syntax(const char *s, size_t n)
{
    size_t k = 0, digits = 0;
    if (k < n && s[k] == '-')
        k++;
    while (k < n && s[k] >= '0' && s[k] <= '9')
        k++, digits++;
    if (k < n && s[k] == '.') {
        k++;
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++, digits++;
    }
    if (digits == 0)
        return 0;
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        size_t e = 0;
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++, e++;
        if (e == 0)
            return 0;
    }
    return k == n;
}

static int token_is(const char *s, size_t n, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strlen(*words) == n && memcmp(*words, s, n) == 0)
            return 1;
    return 0;
}

#define FLOAT_TEXT_MAX 1024

static int parse_value(struct cursor *c, size_t a, size_t b, uint32_t *type, double *f, int64_t *iv,
                       uint64_t *uv, int *bv)
{
    static const char *const trues[] = {"t", "T", "true", "True", "TRUE", NULL};
    static const char *const falses[] = {"f", "F", "false", "False", "FALSE", NULL};
    const char *s = c->s + a;
    size_t n = b - a;
    if (n == 0)
        return fail(c, "missing field value at byte %zu", a);
    if (token_is(s, n, trues) || token_is(s, n, falses)) {
        *type = LP_BOOL;
        *bv = token_is(s, n, trues);
        return 0;
    }
    if (s[n - 1] == 'i') {
        int neg = s[0] == '-';
        uint64_t v;
        uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        if (parse_int_digits(s + neg, n - 1 - (size_t)neg, limit, &v) != 0)
            return fail(c, "invalid integer '%.*s'", (int)(n > 64 ? 64 : n), s);
        *type = LP_INT;
        *iv = neg ? (int64_t)(0 - v) : (int64_t)v;
        return 0;
    }
    if (s[n - 1] == 'u') {
        uint64_t v;
        if (parse_int_digits(s, n - 1, UINT64_MAX, &v) != 0)
            return fail(c, "invalid unsigned integer '%.*s'", (int)(n > 64 ? 64 : n), s);
        *type = LP_UINT;
        *uv = v;
        return 0;
    }
    if (!float_syntax(s, n))
        return fail(c, "invalid number '%.*s'", (int)(n > 64 ? 64 : n), s);
    if (n >= FLOAT_TEXT_MAX)
        return fail(c, "number of %zu bytes is too long", n);
    char text[FLOAT_TEXT_MAX];
    memcpy(text, s, n);
    text[n] = '\0';
    double d = strtod(text, NULL);
    if (!isfinite(d))
        return fail(c, "number '%.*s' out of range", (int)(n > 64 ? 64 : n), s);
    *type = LP_FLOAT;
    *f = d;
    return 0;
}

int lp_parse_line(const char *line, size_t len, struct lp_parsed *out, struct lp_buf *scratch,
                  char *err, size_t errlen)
{
    struct cursor c = {line, len, 0, scratch, err, errlen};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    out->ntags = 0;
    out->nfields = 0;
    out->time_ns = 0;
    out->has_time = 0;
    out->measurement = rmr_str_n(NULL, 0);
    if (c.len > 0 && c.s[c.len - 1] == '\r')
        c.len--;
    while (c.i < c.len && (c.s[c.i] == ' ' || c.s[c.i] == '\t'))
        c.i++;
    if (c.i == c.len || c.s[c.i] == '#')
        return RMR_ENOENT;
    if (c.len > UINT32_MAX)
        return fail(&c, "line of %zu bytes is too long", c.len);
    /* Every unescaped string is at most as long as its text, plus its terminator. */
    lp_buf_reset(scratch);
    if (buf_reserve(scratch, 2 * c.len + 2) != 0)
        return RMR_ENOMEM;

    size_t e = scan_to(&c, c.i, ", ");
    if (e == c.i)
        return fail(&c, "missing measurement");
    out->measurement = unescape(&c, c.i, e, ", =");
    c.i = e;

    while (c.i < c.len && c.s[c.i] == ',') {
        size_t k0 = c.i + 1;
        size_t ke = scan_to(&c, k0, ",= ");
        if (ke == k0)
            return fail(&c, "missing tag key at byte %zu", k0);
        if (ke >= c.len || c.s[ke] != '=')
            return fail(&c, "missing tag value at byte %zu", ke);
        size_t v0 = ke + 1;
        size_t ve = scan_to(&c, v0, ", ");
        if (ve == v0)
            return fail(&c, "missing tag value at byte %zu", v0);
        if (out->ntags >= LP_MAX_TAGS)
            return fail(&c, "more than %d tags", LP_MAX_TAGS);
        out->tags[out->ntags].key = unescape(&c, k0, ke, ", =");
        out->tags[out->ntags].value = unescape(&c, v0, ve, ", =");
        out->ntags++;
        c.i = ve;
    }
    if (c.i >= c.len)
        return fail(&c, "missing fields");
    while (c.i < c.len && c.s[c.i] == ' ')
        c.i++;
    if (c.i >= c.len)
        return fail(&c, "missing fields");

    for (;;) {
        size_t k0 = c.i;
        size_t ke = scan_to(&c, k0, ",= ");
        if (ke == k0)
            return fail(&c, "missing field key at byte %zu", k0);
        if (ke >= c.len || c.s[ke] != '=')
            return fail(&c, "missing field value at byte %zu", ke);
        if (out->nfields >= LP_MAX_FIELDS)
            return fail(&c, "more than %d fields", LP_MAX_FIELDS);
        __typeof__(out->fields[0]) *f = &out->fields[out->nfields];
        memset(f, 0, sizeof(*f));
        size_t v0 = ke + 1;
        size_t ve;
        if (v0 < c.len && c.s[v0] == '"') {
            size_t q = v0 + 1;
            while (q < c.len && c.s[q] != '"') {
                if (c.s[q] == '\\' && q + 1 < c.len)
                    q++;
                q++;
            }
            if (q >= c.len)
                return fail(&c, "unterminated string at byte %zu", v0);
            f->key = unescape(&c, k0, ke, ", =\"");
            f->type = LP_STRING;
            f->v.s = unescape(&c, v0 + 1, q, "\"\\");
            ve = q + 1;
        } else {
            ve = scan_to(&c, v0, ", ");
            uint32_t type = 0;
            int rc = parse_value(&c, v0, ve, &type, &f->v.f, &f->v.i, &f->v.u, &f->v.b);
            if (rc != 0)
                return rc;
            f->key = unescape(&c, k0, ke, ", =\"");
            f->type = type;
        }
        out->nfields++;
        c.i = ve;
        if (c.i >= c.len)
            return 0;
        if (c.s[c.i] == ',') {
            c.i++;
            continue;
        }
        if (c.s[c.i] != ' ')
            return fail(&c, "unexpected byte after field value at byte %zu", c.i);
        break;
    }

    while (c.i < c.len && c.s[c.i] == ' ')
        c.i++;
    if (c.i >= c.len)
        return 0;
    int neg = c.s[c.i] == '-';
    uint64_t v;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (parse_int_digits(c.s + c.i + neg, c.len - c.i - (size_t)neg, limit, &v) != 0)
        return fail(&c, "invalid timestamp at byte %zu", c.i);
    out->time_ns = neg ? (int64_t)(0 - v) : (int64_t)v;
    out->has_time = 1;
    return 0;
}
