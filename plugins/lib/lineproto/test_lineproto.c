/* plugins/lib/lineproto: golden lines for every field type and for hostile strings (quotes,
 * backslashes, line breaks, commas, spaces, '=', UTF-8, empty keys and values), the drops
 * (NaN, infinities, unsigned values above INT64_MAX, string fields of metrics, points left
 * without a field), floats that need 17 digits, integer limits, a round trip of every golden
 * line through lp_parse_line, bad lines for the parser, and buffer growth.
 *
 * With --golden the program prints the hostile points instead, one JSON object a line
 * ({"line", "measurement", "tags", "fields", "time"}), for test/integration/
 * test_lineproto_influx.py to write to a real InfluxDB and compare what it reads back. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/error.h>

#include "lineproto/lineproto.h"
#include "tap.h"

/* ---- building points ------------------------------------------------------------------------ */

#define MAXF 16
#define MAXT 8

struct tcase {
    const char *name;
    const char *measurement;
    const char *tags[MAXT][2];
    struct {
        const char *key;
        struct rmr_value v;
    } fields[MAXF];
    int64_t time_ns;
    const char *want; /* the golden line without its '\n'; NULL: not written */
};

#define S(x)                                                                                       \
    {                                                                                              \
        RMR_VAL_STR, sizeof(x) - 1,                                                                \
        {                                                                                          \
            .str = (x)                                                                             \
        }                                                                                          \
    }
#define I(x)                                                                                       \
    {                                                                                              \
        RMR_VAL_INT, 0,                                                                            \
        {                                                                                          \
            .i = (x)                                                                               \
        }                                                                                          \
    }
#define U(x)                                                                                       \
    {                                                                                              \
        RMR_VAL_UINT, 0,                                                                           \
        {                                                                                          \
            .u = (x)                                                                               \
        }                                                                                          \
    }
#define D(x)                                                                                       \
    {                                                                                              \
        RMR_VAL_DOUBLE, 0,                                                                         \
        {                                                                                          \
            .d = (x)                                                                               \
        }                                                                                          \
    }
#define B(x)                                                                                       \
    {                                                                                              \
        RMR_VAL_BOOL, 0,                                                                           \
        {                                                                                          \
            .i = (x)                                                                               \
        }                                                                                          \
    }
#define T0 1700000000000000000LL

static const struct tcase cases[] = {
    {"every field type",
     "lp_types",
     {{"host", "a"}},
     {{"f", D(1.5)},
      {"i", I(-42)},
      {"u", U(42)},
      {"s", S("hello")},
      {"t", B(1)},
      {"n", B(0)},
      {"whole", D(3.0)}},
     T0,
     "lp_types,host=a f=1.5,i=-42i,u=42i,s=\"hello\",t=true,n=false,whole=3 "
     "1700000000000000000"},
    {"escaping as the Datakit example",
     "my measurement",
     {{"tag key", "val,ue"}, {"k=y", "v"}},
     {{"field key", S("quote \" and backslash \\")}, {"n", I(1)}},
     T0,
     "my\\ measurement,tag\\ key=val\\,ue,k\\=y=v field\\ key=\"quote \\\" and backslash \\\\\","
     "n=1i 1700000000000000000"},
    {"trailing backslashes are stripped",
     "lp_bs\\",
     {{"tk\\\\", "abc\\"}, {"t2", "a\\b"}},
     {{"fk\\", I(1)}, {"s", S("ends in \\")}},
     T0 + 1,
     "lp_bs,tk=abc,t2=a\\b fk=1i,s=\"ends in \\\\\" 1700000000000000001"},
    {"a backslash before a byte InfluxDB would eat is left out",
     "lp_eat\\,x\\=y",
     {{"a\\,b", "c\\ d"}, {"e", "f\\=g\\\"h"}},
     {{"k\\\"q", I(2)}, {"x\\\\\\ y", B(1)}},
     T0 + 2,
     "lp_eat\\,x=y,a\\,b=c\\ d,e=f\\=g\"h k\"q=2i,x\\ y=true 1700000000000000002"},
    {"line breaks: spaces in names, kept in strings",
     "lp\nnl",
     {{"t", "line1\nline2"}},
     {{"k\n", S("multi\nline\r\n")}},
     T0 + 3,
     "lp\\ nl,t=line1\\ line2 k\\ =\"multi\nline\r\n\" 1700000000000000003"},
    {"commas, spaces and '=' everywhere",
     "a,b c=d",
     {{",", "="}, {" ", "x y,z"}},
     {{"=,", S(", =")}},
     T0 + 4,
     "a\\,b\\ c=d,\\,=\\=,\\ =x\\ y\\,z \\=\\,=\", =\" 1700000000000000004"},
    {"non-ASCII UTF-8 untouched",
     "温度",
     {{"城市", "北京"}},
     {{"值", S("ü€𝄞")}, {"ø", D(-1.25)}},
     T0 + 5,
     "温度,城市=北京 值=\"ü€𝄞\",ø=-1.25 1700000000000000005"},
    {"empty tag keys and values and field keys are left out",
     "lp_empty",
     {{"", "v"}, {"k", ""}, {"\\", "v"}, {"ok", "1"}},
     {{"", I(1)}, {"\\\\", I(2)}, {"e", S("")}},
     T0 + 6,
     "lp_empty,ok=1 e=\"\" 1700000000000000006"},
    {"NaN, infinities and uint > INT64_MAX are dropped",
     "lp_drop",
     {{"t", "x"}},
     {{"nan", D(NAN)},
      {"inf", D(INFINITY)},
      {"ninf", D(-INFINITY)},
      {"big", U((uint64_t)INT64_MAX + 1)},
      {"umax", U(UINT64_MAX)},
      {"kept", I(7)}},
     T0 + 7,
     "lp_drop,t=x kept=7i 1700000000000000007"},
    {"floats that need 17 digits and exponents",
     "lp_float",
     {{"t", "f"}},
     {{"sum", D(0.1 + 0.2)},
      {"tiny", D(1e-300)},
      {"denorm", D(5e-324)},
      {"negz", D(-0.0)},
      {"huge", D(1e300)},
      {"max", D(DBL_MAX)},
      {"minnorm", D(DBL_MIN)},
      {"tenth", D(0.1)},
      {"third", D(1.0 / 3.0)},
      {"mixed", D(123456789.123)},
      {"big", D(1e21)},
      {"e15", D(1e15)},
      {"e16", D(1e16)},
      {"neg", D(-2.5e-7)}},
     T0 + 8,
     "lp_float,t=f sum=0.30000000000000004,tiny=1e-300,denorm=4.94065645841247e-324,negz=-0,"
     "huge=1e+300,max=1.7976931348623157e+308,minnorm=2.2250738585072014e-308,tenth=0.1,"
     "third=0.3333333333333333,mixed=123456789.123,big=1e+21,e15=1e+15,e16=1e+16,"
     "neg=-2.5e-07 1700000000000000008"},
    {"integer limits",
     "lp_int",
     {{"t", "i"}},
     {{"min", I(INT64_MIN)},
      {"max", I(INT64_MAX)},
      {"zero", I(0)},
      {"umax", U(INT64_MAX)},
      {"uzero", U(0)}},
     T0 + 9,
     "lp_int,t=i min=-9223372036854775808i,max=9223372036854775807i,zero=0i,"
     "umax=9223372036854775807i,uzero=0i 1700000000000000009"},
    {"a measurement that would read as a comment",
     "#comment",
     {{"t", "#"}},
     {{"#f", I(1)}},
     T0 + 10,
     "_comment,t=# #f=1i 1700000000000000010"},
    {"a measurement starting with a tab or space",
     "\tm",
     {{"t", "\tx"}},
     {{"f", I(1)}, {"g", S("\t")}},
     T0 + 11,
     "_m,t=\tx f=1i,g=\"\t\" 1700000000000000011"},
    {"quotes in names",
     "\"q\"",
     {{"\"k", "v\""}},
     {{"a\"b", I(1)}, {"c", S("\"")}},
     T0 + 12,
     "\"q\",\"k=v\" a\"b=1i,c=\"\\\"\" 1700000000000000012"},
    {"backslash runs inside names are kept",
     "m\\\\x",
     {{"t\\a", "\\\\v\\x"}},
     {{"f\\g", S("\\\\")}},
     T0 + 13,
     "m\\\\x,t\\a=\\\\v\\x f\\g=\"\\\\\\\\\" 1700000000000000013"},
    {"a negative timestamp",
     "lp_neg",
     {{0}},
     {{"f", I(1)}},
     -1000000000LL,
     "lp_neg f=1i -1000000000"},
    {"no timestamp", "lp_nots", {{0}}, {{"f", B(0)}}, 0, "lp_nots f=false"},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

struct built {
    struct rmr_tag tags[MAXT];
    struct rmr_field fields[MAXF];
    struct lp_point p;
};

static void build(const struct tcase *c, struct built *b)
{
    memset(b, 0, sizeof(*b));
    uint32_t nt = 0, nf = 0;
    for (int i = 0; i < MAXT && c->tags[i][0] != NULL; i++, nt++) {
        b->tags[nt].key = RMR_STR(c->tags[i][0]);
        b->tags[nt].value = RMR_STR(c->tags[i][1]);
    }
    for (int i = 0; i < MAXF && c->fields[i].key != NULL; i++, nf++) {
        b->fields[nf].key = RMR_STR(c->fields[i].key);
        b->fields[nf].value = c->fields[i].v;
    }
    b->p.measurement = RMR_STR(c->measurement);
    b->p.tags = b->tags;
    b->p.ntags = nt;
    b->p.fields = b->fields;
    b->p.nfields = nf;
    b->p.time_ns = c->time_ns;
}

/* ---- the expected reading: a second, independent statement of the name rules ---------------- */

/* What a name reads back as: line breaks become spaces; a run of backslashes before ',', '=',
 * ' ', '"' (after that mapping) or at the end vanishes; a measurement starting with '#' or a
 * tab starts with '_'. Returns the length written to out (room for n bytes). */
static size_t expect_name(const char *s, size_t n, int measurement, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '\\') {
            size_t j = i;
            while (j < n && s[j] == '\\')
                j++;
            char next = j < n ? (s[j] == '\n' ? ' ' : s[j]) : 0;
            int eaten = j == n || next == ',' || next == '=' || next == ' ' || next == '"';
            if (!eaten) {
                memcpy(out + o, s + i, j - i);
                o += j - i;
            }
            i = j;
            continue;
        }
        char c = s[i] == '\n' ? ' ' : s[i];
        if (measurement && o == 0 && (c == '#' || c == '\t'))
            c = '_';
        out[o++] = c;
        i++;
    }
    return o;
}

static int str_is(struct rmr_str got, const char *want, size_t wlen)
{
    return got.len == wlen && (wlen == 0 || memcmp(got.ptr, want, wlen) == 0);
}

static int name_is(struct rmr_str got, const char *raw, int measurement)
{
    char tmp[512];
    size_t n = expect_name(raw, strlen(raw), measurement, tmp);
    return str_is(got, tmp, n);
}

/* Compares a parsed line with the point it came from, minus what the encoder leaves out. */
static int same_point(const struct lp_parsed *got, const struct tcase *c, uint32_t flags, char *why,
                      size_t whylen)
{
    char tmp[512];
    if (!name_is(got->measurement, c->measurement, 1)) {
        snprintf(why, whylen, "measurement '%.*s'", (int)got->measurement.len,
                 got->measurement.ptr);
        return 0;
    }
    uint32_t t = 0;
    for (int i = 0; i < MAXT && c->tags[i][0] != NULL; i++) {
        const char *k = c->tags[i][0], *v = c->tags[i][1];
        if (expect_name(k, strlen(k), 0, tmp) == 0 || expect_name(v, strlen(v), 0, tmp) == 0)
            continue;
        if (t >= got->ntags || !name_is(got->tags[t].key, k, 0) ||
            !name_is(got->tags[t].value, v, 0)) {
            snprintf(why, whylen, "tag %u", t);
            return 0;
        }
        t++;
    }
    if (t != got->ntags) {
        snprintf(why, whylen, "%u tags, want %u", got->ntags, t);
        return 0;
    }
    uint32_t f = 0;
    for (int i = 0; i < MAXF && c->fields[i].key != NULL; i++) {
        const char *k = c->fields[i].key;
        const struct rmr_value *v = &c->fields[i].v;
        if (expect_name(k, strlen(k), 0, tmp) == 0)
            continue;
        if (v->type == RMR_VAL_DOUBLE && !isfinite(v->v.d))
            continue;
        if (v->type == RMR_VAL_UINT && v->v.u > (uint64_t)INT64_MAX)
            continue;
        if (v->type == RMR_VAL_STR && (flags & LP_NO_STRING_FIELDS))
            continue;
        if (f >= got->nfields || !name_is(got->fields[f].key, k, 0)) {
            snprintf(why, whylen, "field %u key", f);
            return 0;
        }
        int ok = 0;
        switch ((enum rmr_value_type)v->type) {
        case RMR_VAL_NONE: break;
        case RMR_VAL_STR:
            ok = got->fields[f].type == LP_STRING &&
                 str_is(got->fields[f].v.s, v->v.str, v->str_len);
            break;
        case RMR_VAL_INT: ok = got->fields[f].type == LP_INT && got->fields[f].v.i == v->v.i; break;
        case RMR_VAL_UINT:
            ok = got->fields[f].type == LP_INT && (uint64_t)got->fields[f].v.i == v->v.u;
            break;
        case RMR_VAL_DOUBLE:
            ok = got->fields[f].type == LP_FLOAT &&
                 memcmp(&got->fields[f].v.f, &v->v.d, sizeof(double)) == 0;
            break;
        case RMR_VAL_BOOL:
            ok = got->fields[f].type == LP_BOOL && got->fields[f].v.b == (v->v.i != 0);
            break;
        }
        if (!ok) {
            snprintf(why, whylen, "field %u value", f);
            return 0;
        }
        f++;
    }
    if (f != got->nfields) {
        snprintf(why, whylen, "%u fields, want %u", got->nfields, f);
        return 0;
    }
    if (got->has_time != (c->time_ns != 0) || got->time_ns != c->time_ns) {
        snprintf(why, whylen, "time %" PRId64, got->time_ns);
        return 0;
    }
    return 1;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static struct lp_parsed parsed; /* large: kept off the stack */

static void test_golden(void)
{
    struct lp_buf buf, scratch;
    lp_buf_init(&buf);
    lp_buf_init(&scratch);
    for (size_t i = 0; i < NCASES; i++) {
        const struct tcase *c = &cases[i];
        struct built b;
        build(c, &b);
        lp_buf_reset(&buf);
        int rc = lp_encode(&buf, &b.p, 0, NULL);
        char name[160];
        snprintf(name, sizeof(name), "golden: %s", c->name);
        IS_INT(rc, 1, name);
        char want[1024];
        snprintf(want, sizeof(want), "%s\n", c->want);
        IS_STRN(buf.data, buf.len, want, name);

        char err[128], why[128] = "";
        rc = lp_parse_line(buf.data, buf.len - 1, &parsed, &scratch, err, sizeof(err));
        snprintf(name, sizeof(name), "round trip parses: %s", c->name);
        if (!OK(rc == 0, name))
            printf("#   %d: %s\n", rc, err);
        snprintf(name, sizeof(name), "round trip equal: %s", c->name);
        if (!OK(rc == 0 && same_point(&parsed, c, 0, why, sizeof(why)), name))
            printf("#   %s\n", why);
    }
    lp_buf_release(&buf);
    lp_buf_release(&scratch);
}

static void test_drops(void)
{
    struct lp_buf buf;
    lp_buf_init(&buf);
    struct lp_drops d;
    memset(&d, 0, sizeof(d));
    struct built b;
    build(&cases[8], &b); /* NaN, Inf, -Inf, 2 big uints, one kept */
    IS_INT(lp_encode(&buf, &b.p, 0, &d), 1, "drops: point written");
    IS_UINT(d.non_finite, 3, "drops: NaN and infinities counted");
    IS_UINT(d.uint_range, 2, "drops: uint above INT64_MAX counted");
    build(&cases[7], &b); /* empty tags and keys */
    IS_INT(lp_encode(&buf, &b.p, 0, &d), 1, "drops: empty ones written");
    IS_UINT(d.empty_tags, 3, "drops: empty tag keys and values counted");
    IS_UINT(d.empty_keys, 2, "drops: empty field keys counted");

    /* Only string fields under LP_NO_STRING_FIELDS: nothing is written. */
    size_t before = buf.len;
    struct rmr_field sf = {RMR_STR("s"), S("text")};
    struct lp_point p = {RMR_STR("m"), NULL, 0, 1, &sf, T0};
    IS_INT(lp_encode(&buf, &p, LP_NO_STRING_FIELDS, &d), 0, "no strings: point not written");
    IS_UINT(d.string_field, 1, "no strings: counted");
    IS_UINT(d.no_fields, 1, "no strings: point counted");
    IS_UINT(buf.len, before, "no strings: buffer unchanged");

    struct rmr_field two[2] = {{RMR_STR("s"), S("text")}, {RMR_STR("v"), D(2.5)}};
    p.fields = two;
    p.nfields = 2;
    lp_buf_reset(&buf);
    IS_INT(lp_encode(&buf, &p, LP_NO_STRING_FIELDS, &d), 1, "no strings: others written");
    IS_STRN(buf.data, buf.len, "m v=2.5 1700000000000000000\n", "no strings: line");
    lp_buf_reset(&buf);
    IS_INT(lp_encode(&buf, &p, 0, &d), 1, "strings allowed: written");
    IS_STRN(buf.data, buf.len, "m s=\"text\",v=2.5 1700000000000000000\n", "strings: line");

    /* No field at all, and only dropped ones. */
    p.nfields = 0;
    IS_INT(lp_encode(&buf, &p, 0, &d), 0, "no fields: not written");
    struct rmr_field nan = {RMR_STR("x"), D(NAN)};
    p.fields = &nan;
    p.nfields = 1;
    before = buf.len;
    IS_INT(lp_encode(&buf, &p, 0, NULL), 0, "only NaN: not written (drops NULL)");
    IS_UINT(buf.len, before, "only NaN: buffer unchanged");

    /* Empty measurements. */
    p.fields = two;
    p.nfields = 2;
    p.measurement = RMR_STR("");
    IS_INT(lp_encode(&buf, &p, 0, &d), RMR_EINVAL, "empty measurement: EINVAL");
    p.measurement = RMR_STR("\\\\");
    IS_INT(lp_encode(&buf, &p, 0, &d), RMR_EINVAL, "backslash-only measurement: EINVAL");
    lp_buf_release(&buf);
}

static void test_growth(void)
{
    struct lp_buf buf;
    lp_buf_init(&buf);
    size_t n = 100000;
    char *big = malloc(n);
    memset(big, '"', n);
    struct rmr_field f = {RMR_STR("s"), {RMR_VAL_STR, (uint32_t)n, {.str = big}}};
    struct lp_point p = {RMR_STR("m"), NULL, 0, 1, &f, 0};
    int ok = 1;
    for (int i = 0; i < 20 && ok; i++)
        ok = lp_encode(&buf, &p, 0, NULL) == 1;
    OK(ok, "growth: 20 lines of 200 kB");
    IS_UINT(buf.len, 20 * (2 * n + 7), "growth: length");
    OK(buf.cap >= buf.len && buf.cap < 4 * buf.len, "growth: geometric capacity");
    lp_buf_reset(&buf);
    IS_UINT(buf.len, 0, "reset: empty");
    OK(buf.cap > 0, "reset: memory kept");
    lp_buf_release(&buf);
    OK(buf.data == NULL && buf.cap == 0, "release");
    free(big);
}

static void test_parser(void)
{
    struct lp_buf scratch;
    lp_buf_init(&scratch);
    char err[128];
    static const char *const bad[] = {
        "m",
        "m ",
        "m f",
        "m f=",
        "m =1",
        ",t=v f=1",
        "m,t f=1",
        "m,=v f=1",
        "m,t= f=1",
        "m f=1 x",
        "m f=\"abc",
        "m f=1i2",
        "m f=abc",
        "m f=+1",
        "m f=1e",
        "m f=--1",
        "m f=.",
        "m f=1x",
        "m f=1,",
        "m f=1,g",
        "m f=1 1.5",
        "m f=99999999999999999999i",
        "m f=-9223372036854775809i",
        "m f=18446744073709551616u",
        "m f=-1u",
        "m f=1 99999999999999999999",
        "m f=1e999",
        "m f=nan",
        "m f=inf",
        "m f=0x10",
        "m,t=v",
        "m f=1\"",
        "m f=\"a\"b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[96];
        snprintf(name, sizeof(name), "bad line refused: %s", bad[i]);
        int rc = lp_parse_line(bad[i], strlen(bad[i]), &parsed, &scratch, err, sizeof(err));
        if (!OK(rc == RMR_EINVAL && err[0] != '\0', name))
            printf("#   rc %d\n", rc);
    }
    IS_INT(lp_parse_line("", 0, &parsed, &scratch, err, sizeof(err)), RMR_ENOENT, "empty line");
    IS_INT(lp_parse_line("  \t", 3, &parsed, &scratch, err, sizeof(err)), RMR_ENOENT, "blank");
    IS_INT(lp_parse_line("# x f=1", 7, &parsed, &scratch, err, sizeof(err)), RMR_ENOENT, "comment");
    IS_INT(lp_parse_line("\r", 1, &parsed, &scratch, err, sizeof(err)), RMR_ENOENT, "lone CR");

    /* What the encoder never writes but others do: uint, bool spellings, trailing '\r'. */
    const char *l = "m,a=1 u=5u,b1=t,b2=F,b3=True,b4=FALSE,f=.5,g=1E3,s=\"x\\y\" 42\r";
    int rc = lp_parse_line(l, strlen(l), &parsed, &scratch, err, sizeof(err));
    IS_INT(rc, 0, "others: parsed");
    IS_UINT(parsed.nfields, 8, "others: fields");
    OK(parsed.fields[0].type == LP_UINT && parsed.fields[0].v.u == 5, "others: 5u");
    OK(parsed.fields[1].type == LP_BOOL && parsed.fields[1].v.b == 1, "others: t");
    OK(parsed.fields[2].type == LP_BOOL && parsed.fields[2].v.b == 0, "others: F");
    OK(parsed.fields[3].v.b == 1 && parsed.fields[4].v.b == 0, "others: True, FALSE");
    OK(parsed.fields[5].type == LP_FLOAT && parsed.fields[5].v.f == 0.5, "others: .5");
    OK(parsed.fields[6].type == LP_FLOAT && parsed.fields[6].v.f == 1000.0, "others: 1E3");
    IS_STRN(parsed.fields[7].v.s.ptr, parsed.fields[7].v.s.len, "x\\y", "others: \\y kept");
    OK(parsed.has_time && parsed.time_ns == 42, "others: time");
    rc = lp_parse_line("  m f=1", 7, &parsed, &scratch, err, sizeof(err));
    OK(rc == 0 && parsed.has_time == 0 && parsed.time_ns == 0, "leading blanks, no time");
    rc = lp_parse_line("m f=1 0", 7, &parsed, &scratch, err, sizeof(err));
    OK(rc == 0 && parsed.has_time == 1 && parsed.time_ns == 0, "time 0 present");
    l = "m s=\"a\nb\" 1";
    rc = lp_parse_line(l, strlen(l), &parsed, &scratch, err, sizeof(err));
    OK(rc == 0 && parsed.fields[0].v.s.len == 3, "line break inside a string");

    /* Limits. */
    struct lp_buf big;
    lp_buf_init(&big);
    char part[32];
    memcpy(big.data = malloc(1 << 20), "m", 1);
    big.len = 1;
    big.cap = 1 << 20;
    for (int i = 0; i < LP_MAX_TAGS + 1; i++) {
        int n = snprintf(part, sizeof(part), ",t%d=v", i);
        memcpy(big.data + big.len, part, (size_t)n);
        big.len += (size_t)n;
    }
    memcpy(big.data + big.len, " f=1", 4);
    big.len += 4;
    IS_INT(lp_parse_line(big.data, big.len, &parsed, &scratch, err, sizeof(err)), RMR_EINVAL,
           "too many tags");
    big.len = 1;
    for (int i = 0; i < LP_MAX_FIELDS + 1; i++) {
        int n = snprintf(part, sizeof(part), "%cf%d=1", i ? ',' : ' ', i);
        memcpy(big.data + big.len, part, (size_t)n);
        big.len += (size_t)n;
    }
    IS_INT(lp_parse_line(big.data, big.len, &parsed, &scratch, err, sizeof(err)), RMR_EINVAL,
           "too many fields");
    lp_buf_release(&big);
    lp_buf_release(&scratch);
}

/* ---- --golden: the hostile points as JSON for the InfluxDB test ----------------------------- */

static void json_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_name(const char *raw, int measurement)
{
    char tmp[512];
    json_str(tmp, expect_name(raw, strlen(raw), measurement, tmp));
}

static int golden(void)
{
    struct lp_buf buf;
    lp_buf_init(&buf);
    char tmp[512];
    for (size_t i = 0; i < NCASES; i++) {
        const struct tcase *c = &cases[i];
        struct built b;
        build(c, &b);
        lp_buf_reset(&buf);
        if (lp_encode(&buf, &b.p, 0, NULL) != 1)
            return 1;
        printf("{\"name\": ");
        json_str(c->name, strlen(c->name));
        printf(", \"line\": ");
        json_str(buf.data, buf.len);
        printf(", \"measurement\": ");
        json_name(c->measurement, 1);
        printf(", \"tags\": [");
        int first = 1;
        for (int t = 0; t < MAXT && c->tags[t][0] != NULL; t++) {
            const char *k = c->tags[t][0], *v = c->tags[t][1];
            if (expect_name(k, strlen(k), 0, tmp) == 0 || expect_name(v, strlen(v), 0, tmp) == 0)
                continue;
            printf("%s[", first ? "" : ", ");
            json_name(k, 0);
            printf(", ");
            json_name(v, 0);
            printf("]");
            first = 0;
        }
        printf("], \"fields\": [");
        first = 1;
        for (int f = 0; f < MAXF && c->fields[f].key != NULL; f++) {
            const char *k = c->fields[f].key;
            const struct rmr_value *v = &c->fields[f].v;
            char val[64];
            const char *type = NULL;
            if (expect_name(k, strlen(k), 0, tmp) == 0)
                continue;
            switch ((enum rmr_value_type)v->type) {
            case RMR_VAL_NONE: break;
            case RMR_VAL_STR: type = "string"; break;
            case RMR_VAL_INT:
                type = "integer";
                snprintf(val, sizeof(val), "%" PRId64, v->v.i);
                break;
            case RMR_VAL_UINT:
                if (v->v.u <= (uint64_t)INT64_MAX) {
                    type = "integer";
                    snprintf(val, sizeof(val), "%" PRIu64, v->v.u);
                }
                break;
            case RMR_VAL_DOUBLE:
                if (isfinite(v->v.d)) {
                    type = "float";
                    snprintf(val, sizeof(val), "%.17g", v->v.d);
                }
                break;
            case RMR_VAL_BOOL:
                type = "boolean";
                snprintf(val, sizeof(val), "%s", v->v.i ? "true" : "false");
                break;
            }
            if (type == NULL)
                continue;
            printf("%s[", first ? "" : ", ");
            json_name(k, 0);
            printf(", \"%s\", ", type);
            if (v->type == RMR_VAL_STR)
                json_str(v->v.str, v->str_len);
            else
                json_str(val, strlen(val));
            printf("]");
            first = 0;
        }
        printf("], \"time\": %" PRId64 "}\n", c->time_ns);
    }
    lp_buf_release(&buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--golden") == 0)
        return golden();
    test_golden();
    test_drops();
    test_growth();
    test_parser();
    return tap_done();
}
