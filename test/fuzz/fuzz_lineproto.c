/* Fuzzes plugins/lib/lineproto two ways.
 *
 * Raw: the input, split at '\n', goes line by line to lp_parse_line, which accepts or refuses
 * each with a reason and never reads outside it.
 *
 * Property: the input is also read as a point (a flags byte, then length-prefixed strings for
 * the measurement, tag keys and values and field keys, a type byte and 8 value bytes per
 * field); the point is encoded, the line parsed back, and what comes back must equal the
 * point exactly, minus what the documented rules change: line breaks in names become spaces,
 * backslash runs before ',', '=', ' ', '"' or at the end of a name vanish, a measurement
 * starting with '#' or a tab starts with '_', empty tags and keys, NaN/Inf, uint > INT64_MAX
 * and (with LP_NO_STRING_FIELDS) string fields are left out. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <remora/error.h>

#include "../../plugins/lib/lineproto/lineproto.h"

struct reader {
    const uint8_t *p;
    size_t n;
};

static uint8_t take_byte(struct reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static struct rmr_str take_str(struct reader *r)
{
    size_t len = take_byte(r) % 24;
    if (len > r->n)
        len = r->n;
    struct rmr_str s = rmr_str_n((const char *)r->p, len);
    r->p += len;
    r->n -= len;
    return s;
}

static uint64_t take_u64(struct reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | take_byte(r);
    return v;
}

/* The rules of README.md, stated again independently of the encoder. */
static size_t expect_name(struct rmr_str s, int measurement, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < s.len;) {
        if (s.ptr[i] == '\\') {
            size_t j = i;
            while (j < s.len && s.ptr[j] == '\\')
                j++;
            char next = j < s.len ? (s.ptr[j] == '\n' ? ' ' : s.ptr[j]) : 0;
            if (!(j == s.len || next == ',' || next == '=' || next == ' ' || next == '"')) {
                memcpy(out + o, s.ptr + i, j - i);
                o += j - i;
            }
            i = j;
            continue;
        }
        char c = s.ptr[i] == '\n' ? ' ' : s.ptr[i];
        if (measurement && o == 0 && (c == '#' || c == '\t'))
            c = '_';
        out[o++] = c;
        i++;
    }
    return o;
}

static void must_equal_name(struct rmr_str got, struct rmr_str raw, int measurement)
{
    char tmp[64];
    size_t n = expect_name(raw, measurement, tmp);
    if (got.len != n || (n > 0 && memcmp(got.ptr, tmp, n) != 0))
        abort();
}

static struct lp_parsed parsed;

static void property(const uint8_t *data, size_t size, struct lp_buf *buf, struct lp_buf *scratch)
{
    struct reader r = {data, size};
    uint8_t flags = take_byte(&r);
    struct rmr_tag tags[4];
    struct rmr_field fields[4];
    char tmp[64];
    struct lp_point p;
    memset(&p, 0, sizeof(p));
    p.measurement = take_str(&r);
    p.ntags = (flags >> 1) % 5;
    p.nfields = (flags >> 4) % 5;
    for (uint32_t i = 0; i < p.ntags; i++) {
        tags[i].key = take_str(&r);
        tags[i].value = take_str(&r);
    }
    for (uint32_t i = 0; i < p.nfields; i++) {
        fields[i].key = take_str(&r);
        memset(&fields[i].value, 0, sizeof(fields[i].value));
        uint8_t type = take_byte(&r) % 6;
        fields[i].value.type = type;
        if (type == RMR_VAL_STR) {
            struct rmr_str s = take_str(&r);
            fields[i].value.v.str = s.ptr;
            fields[i].value.str_len = s.len;
        } else if (type == RMR_VAL_BOOL) {
            fields[i].value.v.i = take_byte(&r) & 1;
        } else {
            fields[i].value.v.u = take_u64(&r);
        }
    }
    p.tags = tags;
    p.fields = fields;
    p.time_ns = (int64_t)take_u64(&r);
    uint32_t eflags = (flags & 1) ? LP_NO_STRING_FIELDS : 0;

    lp_buf_reset(buf);
    struct lp_drops d;
    memset(&d, 0, sizeof(d));
    int rc = lp_encode(buf, &p, eflags, &d);
    if (expect_name(p.measurement, 1, tmp) == 0) {
        if (rc != RMR_EINVAL || buf->len != 0)
            abort();
        return;
    }
    if (rc == 0) {
        if (buf->len != 0 || d.no_fields != 1)
            abort();
        return;
    }
    if (rc != 1 || buf->len == 0 || buf->data[buf->len - 1] != '\n')
        abort();
    char err[128];
    if (lp_parse_line(buf->data, buf->len - 1, &parsed, scratch, err, sizeof(err)) != 0)
        abort();
    must_equal_name(parsed.measurement, p.measurement, 1);
    uint32_t t = 0;
    for (uint32_t i = 0; i < p.ntags; i++) {
        if (expect_name(tags[i].key, 0, tmp) == 0 || expect_name(tags[i].value, 0, tmp) == 0)
            continue;
        if (t >= parsed.ntags)
            abort();
        must_equal_name(parsed.tags[t].key, tags[i].key, 0);
        must_equal_name(parsed.tags[t].value, tags[i].value, 0);
        t++;
    }
    if (t != parsed.ntags)
        abort();
    uint32_t f = 0;
    for (uint32_t i = 0; i < p.nfields; i++) {
        const struct rmr_value *v = &fields[i].value;
        if (v->type == RMR_VAL_NONE || expect_name(fields[i].key, 0, tmp) == 0)
            continue;
        if (v->type == RMR_VAL_DOUBLE && !isfinite(v->v.d))
            continue;
        if (v->type == RMR_VAL_UINT && v->v.u > (uint64_t)INT64_MAX)
            continue;
        if (v->type == RMR_VAL_STR && eflags)
            continue;
        if (f >= parsed.nfields)
            abort();
        must_equal_name(parsed.fields[f].key, fields[i].key, 0);
        int ok = 0;
        switch ((enum rmr_value_type)v->type) {
        case RMR_VAL_NONE: break;
        case RMR_VAL_STR:
            ok = parsed.fields[f].type == LP_STRING && parsed.fields[f].v.s.len == v->str_len &&
                 (v->str_len == 0 || memcmp(parsed.fields[f].v.s.ptr, v->v.str, v->str_len) == 0);
            break;
        case RMR_VAL_INT:
            ok = parsed.fields[f].type == LP_INT && parsed.fields[f].v.i == v->v.i;
            break;
        case RMR_VAL_UINT:
            ok = parsed.fields[f].type == LP_INT && (uint64_t)parsed.fields[f].v.i == v->v.u;
            break;
        case RMR_VAL_DOUBLE:
            ok = parsed.fields[f].type == LP_FLOAT &&
                 memcmp(&parsed.fields[f].v.f, &v->v.d, sizeof(double)) == 0;
            break;
        case RMR_VAL_BOOL:
            ok = parsed.fields[f].type == LP_BOOL && parsed.fields[f].v.b == (v->v.i != 0);
            break;
        }
        if (!ok)
            abort();
        f++;
    }
    if (f != parsed.nfields || f == 0)
        abort();
    if (parsed.has_time != (p.time_ns != 0) || parsed.time_ns != p.time_ns)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lp_buf buf, scratch;
    lp_buf_init(&buf);
    lp_buf_init(&scratch);
    char err[128];
    const char *s = (const char *)data;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || s[i] == '\n') {
            int rc = lp_parse_line(s + start, i - start, &parsed, &scratch, err, sizeof(err));
            if (rc != 0 && rc != RMR_EINVAL && rc != RMR_ENOENT)
                abort();
            if (rc == RMR_EINVAL && err[0] == '\0')
                abort();
            if (rc == 0 && (parsed.measurement.len == 0 || parsed.nfields == 0))
                abort();
            start = i + 1;
        }
    }
    property(data, size, &buf, &scratch);
    lp_buf_release(&buf);
    lp_buf_release(&scratch);
    return 0;
}
