/* Tests of the dogstatsd hot path: the parser (parse.c) against every line of the shared
 * fixtures and a table of malformed input, and the aggregator (agg.c) against the fake host
 * with a fake clock (now_ns is an argument), with exact expected values for every type. Ends
 * with a micro-benchmark that is reported, not asserted.
 *
 * argv[1]: the fixture directory (test/fixtures/dogstatsd).
 */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fakehost.h"
#include "tap.h"

#include "../../lib/ddsketch/ddsketch.h"
#include "agg.h"
#include "parse.h"

#define NS 1000000000LL
/* 2026-01-01T00:00:00Z: a multiple of 10 s, so bucket starts are easy to read. */
#define T0 1767225600LL

static const char *fixture_dir = "test/fixtures/dogstatsd";

/* ---- parser: the fixture lines ------------------------------------------------------------- */

struct expect {
    const char *line;
    enum dsd_error err;
    uint32_t kind;
    /* metrics */
    const char *name;
    uint32_t type;
    double value;
    uint32_t nvalues;
    const char *values;
    double rate;
    int64_t ts;
    const char *tags; /* NULL: no "#" field */
    const char *cid;
    const char *card;
    /* events and checks */
    const char *title;
    const char *text; /* unescaped */
    const char *host;
    const char *alert;
    uint32_t priority;
    uint32_t status;
    const char *message;
    uint32_t bad_fields;
};

#define CID "83c0a99c0a54c0c187f461c7980e9b57f3f6a8b0c918c8d93df19a9de6f3fe1d"

static const struct expect fixture_table[] = {
    {"page.views:1|c", DSD_E_NONE, DSD_MSG_METRIC, "page.views", DSD_COUNT, 1, 1, "1", 1, 0},
    {"fuel.level:0.5|g", DSD_E_NONE, DSD_MSG_METRIC, "fuel.level", DSD_GAUGE, 0.5, 1, "0.5", 1},
    {"song.length:240|h|@0.5", DSD_E_NONE, DSD_MSG_METRIC, "song.length", DSD_HISTOGRAM, 240, 1,
     "240", 0.5},
    {"users.uniques:1234|s", DSD_E_NONE, DSD_MSG_METRIC, "users.uniques", DSD_SET, 0, 1, "1234", 1},
    {"users.online:1|c|#country:china", DSD_E_NONE, DSD_MSG_METRIC, "users.online", DSD_COUNT, 1, 1,
     "1", 1, 0, "country:china"},
    {"users.online:1|c|@0.5|#country:china", DSD_E_NONE, DSD_MSG_METRIC, "users.online", DSD_COUNT,
     1, 1, "1", 0.5, 0, "country:china"},
    {"namespace.timing:6.000000|ms|#global:tag,tag:tag", DSD_E_NONE, DSD_MSG_METRIC,
     "namespace.timing", DSD_TIMING, 6, 1, "6.000000", 1, 0, "global:tag,tag:tag"},
    {"namespace.distribution:4|d|#global:tag,tag:tag", DSD_E_NONE, DSD_MSG_METRIC,
     "namespace.distribution", DSD_DISTRIBUTION, 4, 1, "4", 1, 0, "global:tag,tag:tag"},
    {"daemon:666:777|g", DSD_E_NONE, DSD_MSG_METRIC, "daemon", DSD_GAUGE, 666, 2, "666:777", 1},
    {"daemon:21:22|h", DSD_E_NONE, DSD_MSG_METRIC, "daemon", DSD_HISTOGRAM, 21, 2, "21:22", 1},
    {"daemon:3.5:4.5|d", DSD_E_NONE, DSD_MSG_METRIC, "daemon", DSD_DISTRIBUTION, 3.5, 2, "3.5:4.5",
     1},
    {"daemon:abc:def|s", DSD_E_NONE, DSD_MSG_METRIC, "daemon", DSD_SET, 0, 1, "abc:def", 1},
    {"daemon:666|g|#", DSD_E_NONE, DSD_MSG_METRIC, "daemon", DSD_GAUGE, 666, 1, "666", 1, 0, ""},
    {"daemon:666|g|m:test", DSD_E_NONE, DSD_MSG_METRIC, "daemon", DSD_GAUGE, 666, 1, "666", 1},
    {"\xe2\x99\xac\xe2\x80\xa0\xc3\xb8U\xe2\x80\xa0\xc3\xb8U\xc2\xa5\xc2\xbauT0\xe2\x99\xaa:666|g|"
     "#intitul\xc3\xa9:T0\xc2\xb5",
     DSD_E_NONE, DSD_MSG_METRIC,
     "\xe2\x99\xac\xe2\x80\xa0\xc3\xb8U\xe2\x80\xa0\xc3\xb8U\xc2\xa5\xc2\xbauT0\xe2\x99\xaa",
     DSD_GAUGE, 666, 1, "666", 1, 0, "intitul\xc3\xa9:T0\xc2\xb5"},
    {"metric:1234|g|#onetag|T1657100430", DSD_E_NONE, DSD_MSG_METRIC, "metric", DSD_GAUGE, 1234, 1,
     "1234", 1, 1657100430, "onetag"},
    {"metric:1234|g|T1657100540|@0.25|#atag", DSD_E_NONE, DSD_MSG_METRIC, "metric", DSD_GAUGE, 1234,
     1, "1234", 0.25, 1657100540, "atag"},
    {"page.views:1|c|#env:prod|c:" CID, DSD_E_NONE, DSD_MSG_METRIC, "page.views", DSD_COUNT, 1, 1,
     "1", 1, 0, "env:prod", CID},
    {"page.views:1|c|#env:prod|c:ci-" CID, DSD_E_NONE, DSD_MSG_METRIC, "page.views", DSD_COUNT, 1,
     1, "1", 1, 0, "env:prod", CID},
    {"page.views:1|c|#env:prod|c:in-12345", DSD_E_NONE, DSD_MSG_METRIC, "page.views", DSD_COUNT, 1,
     1, "1", 1, 0, "env:prod", ""},
    {"page.views:1|c|e:it-false,cn-web,pu-3f2b7c1a-5d4e-4a8b-9c0d-1e2f3a4b5c6d|card:high",
     DSD_E_NONE, DSD_MSG_METRIC, "page.views", DSD_COUNT, 1, 1, "1", 1, 0, NULL, "", "high"},
    {"http.hits:1|c|#url:http://a:b/c,host:myhost,dd.internal.entity_id:3f2b7c1a-5d4e-4a8b-9c0d-"
     "1e2f3a4b5c6d",
     DSD_E_NONE, DSD_MSG_METRIC, "http.hits", DSD_COUNT, 1, 1, "1", 1, 0,
     "url:http://a:b/c,host:myhost,dd.internal.entity_id:3f2b7c1a-5d4e-4a8b-9c0d-1e2f3a4b5c6d"},
    {"_e{21,36}:An exception occurred|Cannot parse CSV file from 10.0.0.17|t:warning|#err_type:"
     "bad_file",
     DSD_E_NONE, DSD_MSG_EVENT, .tags = "err_type:bad_file", .title = "An exception occurred",
     .text = "Cannot parse CSV file from 10.0.0.17", .alert = "warning", .priority = 0},
    /* The docs' example counts the escaped newline as one byte: the text's length (42) then
     * takes the '|' after it, exactly as the Agent reads it; "p:low" is still found. */
    {"_e{21,42}:An exception occurred|Cannot parse JSON request:\\n{\"foo: \"bar\"}|p:low|#err_"
     "type:bad_request",
     DSD_E_NONE, DSD_MSG_EVENT, .tags = "err_type:bad_request", .title = "An exception occurred",
     .text = "Cannot parse JSON request:\n{\"foo: \"bar\"}|", .alert = "info", .priority = 1},
    {"_e{9,9}:EvenTitle|EventText|d:1471219200|h:hostname|k:aggregationKey|p:priority|s:"
     "SourceTypeName|t:alertType|#tag:global,tag:normal",
     DSD_E_NONE, DSD_MSG_EVENT, .ts = 1471219200, .tags = "tag:global,tag:normal",
     .title = "EvenTitle", .text = "EventText", .host = "hostname", .alert = "info", .priority = 0,
     .bad_fields = 2},
    {"_sc|Redis connection|2|#env:dev|m:Redis connection timed out after 10s", DSD_E_NONE,
     DSD_MSG_CHECK, .name = "Redis connection", .tags = "env:dev", .status = 2,
     .message = "Redis connection timed out after 10s"},
    {"_sc|service.check|0|d:1471219200|h:hostname|#tag2:tag2,tag1:tag1|m:message", DSD_E_NONE,
     DSD_MSG_CHECK, .name = "service.check", .ts = 1471219200, .tags = "tag2:tag2,tag1:tag1",
     .host = "hostname", .status = 0, .message = "message"},
    {"daemon:666", DSD_E_NO_TYPE},
    {"daemon:666|", DSD_E_NO_TYPE},
    {"daemon:|g", DSD_E_NO_VALUE},
    {":666|g", DSD_E_NO_NAME},
    {"abc666|g", DSD_E_NO_VALUE},
    {"daemon:abc|g", DSD_E_BAD_VALUE},
    {"daemon:666|unknown", DSD_E_BAD_TYPE},
    {"daemon:666|g|@abc", DSD_E_BAD_RATE},
};
#define NFIXTURE (sizeof fixture_table / sizeof fixture_table[0])

static int span_is(struct dsd_span s, const char *want)
{
    if (want == NULL)
        want = "";
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.ptr, want, s.len) == 0);
}

#define SPAN_IS(s, want, what)                                                                     \
    do {                                                                                           \
        if (!OK(span_is((s), (want)), what))                                                       \
            printf("#   got \"%.*s\", want \"%s\"\n", (int)(s).len, (s).ptr ? (s).ptr : "",        \
                   (want) ? (want) : "");                                                          \
    } while (0)

static void check_expect(const struct expect *x, const char *line, size_t len)
{
    struct dsd_msg msg;
    char what[160];
    enum dsd_error e = dsd_parse(line, len, &msg);
    snprintf(what, sizeof what, "fixture '%.60s': %s", x->line, dsd_error_name(x->err));
    IS_INT(e, x->err, what);
    if (e != DSD_E_NONE || x->err != DSD_E_NONE)
        return;
    IS_INT(msg.kind, x->kind, "  kind");
    if (msg.kind == DSD_MSG_METRIC) {
        const struct dsd_metric *m = &msg.u.metric;
        SPAN_IS(m->name, x->name, "  name");
        IS_INT(m->type, x->type, "  type");
        SPAN_IS(m->values, x->values, "  values");
        IS_UINT(m->nvalues, x->nvalues, "  nvalues");
        IS_DBL(m->value, x->value, 0, "  first value");
        IS_DBL(m->rate, x->rate, 0, "  rate");
        IS_INT(m->timestamp, x->ts, "  timestamp");
        IS_INT(m->has_tags, x->tags != NULL, "  has tags");
        SPAN_IS(m->tags, x->tags, "  tags");
        SPAN_IS(m->origin.container_id, x->cid, "  container id");
        SPAN_IS(m->origin.cardinality, x->card, "  cardinality");
        /* Every value of the list, in order. */
        struct dsd_span rest = m->values;
        double v, sum = 0;
        uint32_t n = 0;
        if (m->type != DSD_SET)
            while (dsd_values_next(&rest, &v)) {
                sum += v;
                n++;
            }
        IS_UINT(n, m->type == DSD_SET ? 0 : x->nvalues, "  values walked");
    } else if (msg.kind == DSD_MSG_EVENT) {
        const struct dsd_event *ev = &msg.u.event;
        char buf[256];
        SPAN_IS(ev->title, x->title, "  title");
        size_t n = dsd_unescape(ev->text, buf, 0);
        IS_STRN(buf, n, x->text, "  text (unescaped)");
        IS_INT(ev->timestamp, x->ts, "  timestamp");
        SPAN_IS(ev->host, x->host, "  host");
        SPAN_IS(ev->alert_type, x->alert, "  alert type");
        IS_UINT(ev->priority, x->priority, "  priority");
        SPAN_IS(ev->tags, x->tags, "  tags");
        IS_UINT(ev->bad_fields, x->bad_fields, "  ignored bad fields");
    } else {
        const struct dsd_check *sc = &msg.u.check;
        SPAN_IS(sc->name, x->name, "  name");
        IS_UINT(sc->status, x->status, "  status");
        IS_INT(sc->timestamp, x->ts, "  timestamp");
        SPAN_IS(sc->host, x->host, "  host");
        SPAN_IS(sc->tags, x->tags, "  tags");
        SPAN_IS(sc->message, x->message, "  message");
    }
}

static char *read_file(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

static void test_fixture_lines(void)
{
    size_t len;
    char *text = read_file("datagrams.txt", &len);
    if (!OK(text != NULL, "datagrams.txt readable"))
        return;
    uint32_t lines = 0, matched = 0;
    int seen[NFIXTURE] = {0};
    for (char *p = text; p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(text + len - p);
        if (n > 0 && p[0] != '#') {
            lines++;
            size_t k = 0;
            while (k < NFIXTURE && !(strlen(fixture_table[k].line) == n &&
                                     memcmp(fixture_table[k].line, p, n) == 0))
                k++;
            if (OK(k < NFIXTURE, "fixture line has an expectation")) {
                /* Parse a private copy of exactly n bytes so ASan sees any over-read. */
                char *copy = malloc(n);
                memcpy(copy, p, n);
                check_expect(&fixture_table[k], copy, n);
                free(copy);
                seen[k] = 1;
                matched++;
            } else {
                printf("#   line: %.*s\n", (int)n, p);
            }
        }
        p = nl != NULL ? nl + 1 : text + len;
    }
    uint32_t all_seen = 0;
    for (size_t k = 0; k < NFIXTURE; k++)
        all_seen += seen[k];
    IS_UINT(lines, NFIXTURE, "every fixture line is in the table and no more");
    IS_UINT(all_seen, NFIXTURE, "every table entry was in the fixture");
    free(text);
}

/* ---- parser: malformed and tricky input ---------------------------------------------------- */

struct bad {
    const char *what;
    const char *msg;
    size_t len; /* 0: strlen */
    enum dsd_error err;
};

static void test_parse_bad(void)
{
    static const struct bad table[] = {
        {"truncated event text", "_e{5,10}:hello|wor", 0, DSD_E_BAD_EVENT},
        {"event without body", "_e{5,5}", 0, DSD_E_BAD_EVENT},
        {"event without comma", "_e{5}:hello", 0, DSD_E_BAD_EVENT},
        {"event header too short", "_e{}:x", 0, DSD_E_BAD_EVENT},
        {"event empty title", "_e{0,4}:|text", 0, DSD_E_BAD_EVENT},
        {"event negative title", "_e{-1,4}:x|text", 0, DSD_E_BAD_EVENT},
        {"event negative text", "_e{1,-4}:x|text", 0, DSD_E_BAD_EVENT},
        {"event bad number", "_e{a,1}:x|y", 0, DSD_E_BAD_EVENT},
        {"event length overflow", "_e{99999999999999999999,1}:a|b", 0, DSD_E_BAD_EVENT},
        {"event huge lengths", "_e{9223372036854775807,9223372036854775807}:a|b", 0,
         DSD_E_BAD_EVENT},
        {"event text too long", "_e{1,2}:a|b", 0, DSD_E_BAD_EVENT},
        {"check with one bar", "_sc|name", 0, DSD_E_BAD_CHECK},
        {"check without name", "_sc||0", 0, DSD_E_BAD_CHECK},
        {"check status 4", "_sc|n|4", 0, DSD_E_BAD_CHECK},
        {"check status empty", "_sc|n|", 0, DSD_E_BAD_CHECK},
        {"check status 01", "_sc|n|01", 0, DSD_E_BAD_CHECK},
        {"only separators", "a::|g", 0, DSD_E_NO_VALUE},
        {"bad item in a list", "a:1:x|g", 0, DSD_E_BAD_VALUE},
        {"overflowing value", "a:1e400|g", 0, DSD_E_BAD_VALUE},
        {"hex without exponent", "a:0x1|g", 0, DSD_E_BAD_VALUE},
        {"leading space", "a: 1|g", 0, DSD_E_BAD_VALUE},
        {"signed nan", "a:-nan|g", 0, DSD_E_BAD_VALUE},
        {"lone dot", "a:.|g", 0, DSD_E_BAD_VALUE},
        {"lone sign", "a:-|g", 0, DSD_E_BAD_VALUE},
        {"double underscore", "a:1__0|g", 0, DSD_E_BAD_VALUE},
        {"leading underscore", "a:_1|g", 0, DSD_E_BAD_VALUE},
        {"trailing underscore", "a:1_|g", 0, DSD_E_BAD_VALUE},
        {"NUL in a value", "a:1\0|c", 6, DSD_E_BAD_VALUE},
        {"NUL after the type", "a:1|c\0", 6, DSD_E_BAD_TYPE},
        {"rate 0", "a:1|c|@0", 0, DSD_E_BAD_RATE},
        {"rate -1", "a:1|c|@-1", 0, DSD_E_BAD_RATE},
        {"rate nan", "a:1|c|@nan", 0, DSD_E_BAD_RATE},
        {"rate inf", "a:1|c|@inf", 0, DSD_E_BAD_RATE},
        {"rate empty", "a:1|c|@", 0, DSD_E_BAD_RATE},
        {"timestamp text", "a:1|c|Tabc", 0, DSD_E_BAD_TIMESTAMP},
        {"timestamp 0", "a:1|c|T0", 0, DSD_E_BAD_TIMESTAMP},
        {"timestamp negative", "a:1|c|T-5", 0, DSD_E_BAD_TIMESTAMP},
        {"timestamp empty", "a:1|c|T", 0, DSD_E_BAD_TIMESTAMP},
        {"timestamp beyond int64", "a:1|c|T99999999999999999999", 0, DSD_E_BAD_TIMESTAMP},
        {"timestamp beyond 2262", "a:1|c|T9223372037", 0, DSD_E_BAD_TIMESTAMP},
        {"type empty, more fields", "a:1||#x", 0, DSD_E_NO_TYPE},
        {"type 'msx'", "a:1|msx", 0, DSD_E_BAD_TYPE},
        {"no bar at all", "abc", 0, DSD_E_NO_TYPE},
        {"empty message", "", 0, DSD_E_NO_TYPE},
        {"only a newline's leftover", "\r", 0, DSD_E_NO_TYPE},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t n = table[i].len != 0 ? table[i].len : strlen(table[i].msg);
        char *copy = malloc(n + 1);
        memcpy(copy, table[i].msg, n);
        struct dsd_msg msg;
        enum dsd_error e = dsd_parse(copy, n, &msg);
        char what[128];
        snprintf(what, sizeof what, "bad input: %s -> %s", table[i].what,
                 dsd_error_name(table[i].err));
        IS_INT(e, table[i].err, what);
        free(copy);
    }

    /* Overlong name, overlong message, NUL in a name (accepted, like any byte). */
    char *big = malloc(DSD_MAX_MESSAGE + 16);
    struct dsd_msg msg;
    memset(big, 'a', DSD_MAX_NAME + 1);
    memcpy(big + DSD_MAX_NAME + 1, ":1|c", 4);
    IS_INT(dsd_parse(big, DSD_MAX_NAME + 5, &msg), DSD_E_TOO_LONG, "name of 1025 bytes refused");
    memcpy(big + DSD_MAX_NAME, ":1|c", 4);
    IS_INT(dsd_parse(big, DSD_MAX_NAME + 4, &msg), DSD_E_NONE, "name of 1024 bytes accepted");
    memset(big, 'a', DSD_MAX_MESSAGE + 1);
    memcpy(big, "x:1|c|#", 7);
    IS_INT(dsd_parse(big, DSD_MAX_MESSAGE + 1, &msg), DSD_E_TOO_LONG, "message of 64 KiB refused");
    IS_INT(dsd_parse(big, DSD_MAX_MESSAGE, &msg), DSD_E_NONE, "message of 65535 bytes accepted");
    free(big);
    IS_INT(dsd_parse("a\0b:1|c", 7, &msg), DSD_E_NONE, "NUL in a name accepted");
    IS_UINT(msg.u.metric.name.len, 3, "  name keeps the NUL");

    /* A number of more than DSD_MAX_NUMBER characters (documented limit). */
    char num[DSD_MAX_NUMBER + 8];
    num[0] = '0';
    num[1] = '.';
    memset(num + 2, '0', sizeof num - 3);
    num[sizeof num - 1] = '1';
    double d;
    IS_INT(dsd_parse_double(num, sizeof num, &d), RMR_EINVAL, "1030-digit number refused");
    IS_INT(dsd_parse_double(num, 600, &d), 0, "600-digit number accepted");

    /* Go's float grammar, accepted side. */
    static const struct {
        const char *s;
        double v;
    } good[] = {
        {"1_000", 1000},
        {"0x1p-2", 0.25},
        {".5", 0.5},
        {"+1", 1},
        {"1e3", 1000},
        {"1.", 1},
        {"1e5_0", 1e50},
        {"-0.5", -0.5},
        {"1E+2", 100},
        {"0x1.8P1", 3},
        {"0X_1p0", 1},
        {"00012", 12},
        {"1e-400", 0},
        {"6.000000", 6},
        {"0.1", 0.1},
        {"123456.789", 123456.789},
        {"9007199254740993", 9007199254740992.0},
        {"-9999999999999999", -1e16},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char what[96];
        d = -12345;
        snprintf(what, sizeof what, "value '%s' parses to %.17g", good[i].s, good[i].v);
        int rc = dsd_parse_double(good[i].s, strlen(good[i].s), &d);
        OK(rc == 0 && d == good[i].v, what);
    }
    OK(dsd_parse_double("Inf", 3, &d) == 0 && isinf(d) && d > 0, "value 'Inf'");
    OK(dsd_parse_double("-infinity", 9, &d) == 0 && isinf(d) && d < 0, "value '-infinity'");
    OK(dsd_parse_double("NaN", 3, &d) == 0 && isnan(d), "value 'NaN'");
    OK(dsd_parse_double("-0", 2, &d) == 0 && d == 0 && signbit(d), "value '-0' keeps its sign");

    /* The fast path equals strtod on random decimals. */
    uint32_t seed = 12345, mismatch = 0;
    for (int i = 0; i < 20000; i++) {
        char s[64];
        seed = seed * 1103515245u + 12345u;
        uint32_t ip = seed >> 8;
        seed = seed * 1103515245u + 12345u;
        int fd = (int)(seed >> 28);
        seed = seed * 1103515245u + 12345u;
        int n = snprintf(s, sizeof s, "%s%u.%0*u", (seed & 1) ? "-" : "", ip % 100000000u, fd,
                         (seed >> 4) % 1000000u);
        if (fd == 0)
            n = snprintf(s, sizeof s, "%u", ip);
        double want = strtod(s, NULL);
        if (dsd_parse_double(s, (size_t)n, &d) != 0 || d != want)
            mismatch++;
    }
    IS_UINT(mismatch, 0, "fast path equals strtod on 20000 random decimals");

    /* Integers as Go's ParseInt. */
    int64_t iv;
    OK(dsd_parse_int64("9223372036854775807", 19, &iv) == 0 && iv == INT64_MAX, "int64 max");
    OK(dsd_parse_int64("-9223372036854775808", 20, &iv) == 0 && iv == INT64_MIN, "int64 min");
    IS_INT(dsd_parse_int64("9223372036854775808", 19, &iv), RMR_ERANGE, "int64 max + 1");
    IS_INT(dsd_parse_int64("+", 1, &iv), RMR_EINVAL, "lone sign");
    OK(dsd_parse_int64("+42", 3, &iv) == 0 && iv == 42, "leading plus");

    /* Unescaping. */
    char out[64];
    struct dsd_span src = {"a\\nb m\\: c\\", 11};
    size_t n = dsd_unescape(src, out, 1);
    IS_STRN(out, n, "a\nb m: c\\", "check message: \\n and m\\: unescaped, lone \\ kept");
    n = dsd_unescape(src, out, 0);
    IS_STRN(out, n, "a\nb m\\: c\\", "event text: only \\n unescaped");

    /* Local data forms. */
    static const struct {
        const char *msg, *cid;
    } origins[] = {
        {"a:1|c|c:ci-abc,in-42", "abc"}, {"a:1|c|c:in-42,ci-abc", "abc"},
        {"a:1|c|c:cid-abc", "abc"},      {"a:1|c|c:cid-abc,in-4", ""},
        {"a:1|c|c:abc", "abc"},          {"a:1|c|c:", ""},
        {"a:1|c|c:x|c:y", "y"},
    };
    for (size_t i = 0; i < sizeof origins / sizeof origins[0]; i++) {
        char what[96];
        snprintf(what, sizeof what, "origin of '%s'", origins[i].msg);
        dsd_parse(origins[i].msg, strlen(origins[i].msg), &msg);
        SPAN_IS(msg.u.metric.origin.container_id, origins[i].cid, what);
    }

    /* Service check message with an escaped "m:" and a container id after it. */
    const char *scm = "_sc|c|1|m:a m\\: b\\nc|c:ci-xyz";
    OK(dsd_parse(scm, strlen(scm), &msg) == DSD_E_NONE, "check with m: then c:");
    n = dsd_unescape(msg.u.check.message, out, 1);
    IS_STRN(out, n, "a m: b\nc", "  message unescaped");
    SPAN_IS(msg.u.check.origin.container_id, "xyz", "  container id after m:");

    /* Event: the last repeated field wins; trailing fields without '|' glue. */
    const char *ev = "_e{1,1}:a|bxyz|p:low|p:normal|h:h1|h:h2";
    OK(dsd_parse(ev, strlen(ev), &msg) == DSD_E_NONE, "event with repeated fields");
    IS_UINT(msg.u.event.priority, 0, "  last priority wins");
    SPAN_IS(msg.u.event.host, "h2", "  last host wins");
    SPAN_IS(msg.u.event.text, "b", "  text cut by its length");

    /* Tag walking: empty tags are returned (the aggregator drops them). */
    struct dsd_span tags = {"a,,b:c,", 7}, t;
    uint32_t count = 0;
    while (dsd_tags_next(&tags, &t))
        count++;
    IS_UINT(count, 4, "tag walk gives 4 items for 'a,,b:c,'");
}

/* ---- aggregation ----------------------------------------------------------------------------- */

static int tp_create(rmr_instance_t *ins, const void *config, void **state)
{
    static int dummy;
    *state = &dummy;
    return 0;
}

static void tp_destroy(rmr_instance_t *ins, void *state)
{
}

static const struct rmr_plugin test_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "dsdtest",
    .version = "1.0.0",
    .description = "stands in for the dogstatsd glue in the hot-path tests",
    .create = tp_create,
    .destroy = tp_destroy,
};

struct env {
    struct rmr_fakehost *fh;
    rmr_instance_t *ins;
    struct dsd_agg *a;
    struct dsd_agg_config cfg;
};

static void env_open_cfg(struct env *e, const struct dsd_agg_config *cfg)
{
    char err[128];
    e->fh = rmr_fakehost_new();
    e->ins = NULL;
    if (rmr_fakehost_create(e->fh, &test_plugin, "", &e->ins, err, sizeof err) != 0)
        printf("# create failed: %s\n", err);
    e->cfg = *cfg;
    e->a = dsd_agg_new(e->ins, &e->cfg);
}

static void env_open(struct env *e)
{
    struct dsd_agg_config cfg;
    dsd_agg_config_default(&cfg);
    env_open_cfg(e, &cfg);
}

static void env_close(struct env *e)
{
    dsd_agg_free(e->a);
    rmr_fakehost_free(e->fh);
}

/* Sends one packet (copied into a buffer of exactly its size) at second s (plus ms). */
static void send_at(struct env *e, const char *pkt, int64_t s, int64_t ms)
{
    size_t n = strlen(pkt);
    char *copy = malloc(n + 1);
    memcpy(copy, pkt, n);
    dsd_agg_packet(e->a, copy, n, s * NS + ms * 1000000);
    free(copy);
}

/* An emitted metric, read back from the fake host. */
struct rec {
    char name[128];
    uint32_t type;
    double value;
    int64_t time_ns;
    int64_t interval_ms;
    char host[64];
    char tags[4096];
    uint32_t ntags;
    struct rmr_sketch sk;
    int has_sk;
};

static void tags_text(const struct rmr_tag *tags, uint32_t n, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < n && k + 2 < cap; i++) {
        int w = snprintf(buf + k, cap - k, "%s%.*s%s%.*s", i ? "," : "", (int)tags[i].key.len,
                         tags[i].key.ptr, tags[i].value.len ? ":" : "", (int)tags[i].value.len,
                         tags[i].value.ptr ? tags[i].value.ptr : "");
        if (w < 0 || (size_t)w >= cap - k)
            break;
        k += (size_t)w;
    }
}

/* Reads every metric emitted so far into recs; returns how many. */
static uint32_t collect(struct env *e, struct rec *recs, uint32_t max)
{
    uint32_t n = 0;
    for (uint32_t b = 0; b < rmr_fakehost_emitted_count(e->fh); b++) {
        const rmr_batch_t *batch = rmr_fakehost_emitted(e->fh, b);
        for (uint32_t i = 0; i < rmr_batch_count(batch) && n < max; i++) {
            if (rmr_record_kind(batch, i) != RMR_REC_METRIC)
                continue;
            struct rmr_metric m = {.struct_size = sizeof m};
            rmr_metric_get(batch, i, &m);
            struct rec *r = &recs[n++];
            memset(r, 0, sizeof *r);
            snprintf(r->name, sizeof r->name, "%.*s", (int)m.name.len, m.name.ptr);
            r->type = m.type;
            r->value = m.value;
            r->time_ns = m.time_ns;
            r->interval_ms = m.interval_ms;
            snprintf(r->host, sizeof r->host, "%.*s", (int)m.host.len,
                     m.host.ptr ? m.host.ptr : "");
            tags_text(m.tags, m.ntags, r->tags, sizeof r->tags);
            r->ntags = m.ntags;
            if (m.sketch != NULL) {
                r->sk = *m.sketch;
                r->has_sk = 1;
            }
        }
    }
    return n;
}

static const struct rec *find(const struct rec *recs, uint32_t n, const char *name,
                              const char *tags, int64_t time_s)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(recs[i].name, name) == 0 && (tags == NULL || strcmp(recs[i].tags, tags) == 0) &&
            (time_s < 0 || recs[i].time_ns == time_s * NS))
            return &recs[i];
    return NULL;
}

static uint32_t count_named(const struct rec *recs, uint32_t n, const char *name)
{
    uint32_t c = 0;
    for (uint32_t i = 0; i < n; i++)
        c += strcmp(recs[i].name, name) == 0;
    return c;
}

#define MAXREC 4096
static struct rec recs[MAXREC];

/* Expects exactly one record named name (tags, at bucket time_s) with type and value. */
static void expect_rec(uint32_t n, const char *name, const char *tags, int64_t time_s,
                       uint32_t type, double value, const char *what)
{
    const struct rec *r = find(recs, n, name, tags, time_s);
    char w[192];
    snprintf(w, sizeof w, "%s: %s found", what, name);
    if (!OK(r != NULL, w)) {
        for (uint32_t i = 0; i < n && i < 40; i++)
            printf("#   have %s {%s} t=%lld %g\n", recs[i].name, recs[i].tags,
                   (long long)(recs[i].time_ns / NS), recs[i].value);
        return;
    }
    snprintf(w, sizeof w, "%s: %s type", what, name);
    IS_UINT(r->type, type, w);
    snprintf(w, sizeof w, "%s: %s value", what, name);
    IS_DBL(r->value, value, 1e-12, w);
}

static void test_counter_gauge_set(void)
{
    struct env e;
    env_open(&e);
    OK(e.a != NULL, "aggregator made with the defaults");
    send_at(&e, "c:1|c\nc:1|c\nc:1|c|#\nc:2|c|@0.5\ng:1|g\ng:5|g\ng2:1:2:3|g\nc2:1:2::3|c", T0 + 1,
            0);
    send_at(&e, "s:a|s\ns:b|s\ns:a|s\ns:a:b|s\ns:b|s|@0.1", T0 + 2, 0);
    IS_INT(dsd_agg_flush(e.a, (T0 + 5) * NS, 0), 0, "nothing emitted before the bucket ends");
    int rc = dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    uint32_t n = collect(&e, recs, MAXREC);
    IS_INT(rc, 5, "five records at the bucket's end");
    IS_UINT(n, 5, "five records read back");
    expect_rec(n, "c", "", T0, RMR_METRIC_RATE, 0.7, "counter: (1+1+1+2/0.5)/10");
    const struct rec *r = find(recs, n, "c", "", T0);
    if (r != NULL) {
        IS_INT(r->interval_ms, 10000, "counter: interval 10 s");
        IS_INT(r->time_ns, T0 * NS, "counter: stamped with the bucket start");
    }
    expect_rec(n, "c2", "", T0, RMR_METRIC_RATE, 0.6, "multi-value counter skips empty items");
    expect_rec(n, "g", "", T0, RMR_METRIC_GAUGE, 5, "gauge: last value");
    expect_rec(n, "g2", "", T0, RMR_METRIC_GAUGE, 3, "multi-value gauge: last value");
    expect_rec(n, "s", "", T0, RMR_METRIC_GAUGE, 3, "set: distinct members a, b, a:b");
    struct dsd_agg_stats st;
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.packets, 2, "stats: packets");
    IS_UINT(st.metrics[DSD_COUNT], 7, "stats: counter samples (multi-value counted each)");
    IS_UINT(st.metrics[DSD_GAUGE], 5, "stats: gauge samples");
    IS_UINT(st.metrics[DSD_SET], 5, "stats: set samples");
    IS_UINT(st.contexts_live, 5, "stats: contexts");
    IS_UINT(st.records_flushed, 5, "stats: records flushed");
    env_close(&e);

    /* counts_as_count: the sum as COUNT over the interval. */
    struct dsd_agg_config cfg;
    dsd_agg_config_default(&cfg);
    cfg.counts_as_count = 1;
    env_open_cfg(&e, &cfg);
    send_at(&e, "c:1|c\nc:2|c|@0.5", T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    n = collect(&e, recs, MAXREC);
    expect_rec(n, "c", "", T0, RMR_METRIC_COUNT, 5, "counts_as_count: 1 + 2/0.5");
    env_close(&e);
}

static void test_histogram(void)
{
    struct env e;
    struct dsd_agg_config cfg;
    static const char *const aggs[] = {"max", "median", "avg", "count", "min", "sum", NULL};
    static const double pcts[] = {0.95, 0.5, 0.99, 0.999, 0.95};
    dsd_agg_config_default(&cfg);
    env_open(&e);
    send_at(&e, "h:1|h\nh:2|h\nh:3|h\nh:4|h\nh:5|h", T0 + 1, 0);
    send_at(&e, "h:10:9:8:7|h\nh:6|ms", T0 + 2, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    uint32_t n = collect(&e, recs, MAXREC);
    IS_UINT(n, 5, "histogram: 4 aggregates and 1 percentile by default");
    expect_rec(n, "h.max", "", T0, RMR_METRIC_GAUGE, 10, "histogram 1..10");
    expect_rec(n, "h.median", "", T0, RMR_METRIC_GAUGE, 5, "histogram 1..10 (index (10-1)/2)");
    expect_rec(n, "h.avg", "", T0, RMR_METRIC_GAUGE, 5.5, "histogram 1..10");
    expect_rec(n, "h.count", "", T0, RMR_METRIC_RATE, 1, "histogram 1..10: 10 per 10 s");
    expect_rec(n, "h.95percentile", "", T0, RMR_METRIC_GAUGE, 10,
               "histogram 1..10 (first weight > (95*10-1)/100 = 9)");
    env_close(&e);

    /* Weights from sample rates, all aggregates, several percentiles (sorted, deduplicated,
     * named as the Agent names them: int(p*100+0.5)). */
    cfg.aggregates = aggs;
    cfg.percentiles = pcts;
    cfg.npercentiles = 5;
    env_open_cfg(&e, &cfg);
    OK(e.a != NULL, "aggregator with all aggregates and 5 percentiles");
    send_at(&e, "w:1|h\nw:2|h\nw:3|h|@0.5", T0 + 3, 0);
    send_at(&e, "r:10|h|@0.3", T0 + 3, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    n = collect(&e, recs, MAXREC);
    expect_rec(n, "w.max", "", T0, RMR_METRIC_GAUGE, 3, "weighted");
    expect_rec(n, "w.min", "", T0, RMR_METRIC_GAUGE, 1, "weighted");
    expect_rec(n, "w.sum", "", T0, RMR_METRIC_GAUGE, 9, "weighted: 1 + 2 + 3*2");
    expect_rec(n, "w.avg", "", T0, RMR_METRIC_GAUGE, 2.25, "weighted: 9 / 4");
    expect_rec(n, "w.count", "", T0, RMR_METRIC_RATE, 0.4, "weighted: weight 4 per 10 s");
    expect_rec(n, "w.median", "", T0, RMR_METRIC_GAUGE, 2, "weighted: running 1,2 > (4-1)/2");
    expect_rec(n, "w.50percentile", "", T0, RMR_METRIC_GAUGE, 2, "weighted: (50*4-1)/100 = 1");
    expect_rec(n, "w.95percentile", "", T0, RMR_METRIC_GAUGE, 3, "weighted: (95*4-1)/100 = 3");
    expect_rec(n, "w.99percentile", "", T0, RMR_METRIC_GAUGE, 3, "weighted");
    expect_rec(n, "w.100percentile", "", T0, RMR_METRIC_GAUGE, 3, "weighted: 0.999 -> 100");
    IS_UINT(count_named(recs, n, "w.95percentile"), 1, "a repeated percentile is emitted once");
    /* Rate 0.3: weight int(1/0.3) = 3, sum 10 * (1/0.3). */
    expect_rec(n, "r.count", "", T0, RMR_METRIC_RATE, 0.3, "rate 0.3: weight 3");
    expect_rec(n, "r.sum", "", T0, RMR_METRIC_GAUGE, 10 * (1 / 0.3), "rate 0.3: sum v/rate");
    expect_rec(n, "r.avg", "", T0, RMR_METRIC_GAUGE, 10 * (1 / 0.3) / 3, "rate 0.3: avg");
    env_close(&e);

    /* Unit weights first, then a sampled value: the weights appear on the way. */
    env_open(&e);
    send_at(&e, "x:1|h\nx:1|h\nx:1|h\nx:5|h|@0.25", T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    n = collect(&e, recs, MAXREC);
    expect_rec(n, "x.count", "", T0, RMR_METRIC_RATE, 0.7, "late weight: 3 + 4");
    expect_rec(n, "x.median", "", T0, RMR_METRIC_GAUGE, 5, "late weight: running 1,2,3,7 > 3");
    expect_rec(n, "x.95percentile", "", T0, RMR_METRIC_GAUGE, 5, "late weight: > (95*7-1)/100");
    expect_rec(n, "x.avg", "", T0, RMR_METRIC_GAUGE, 23.0 / 7, "late weight: (3 + 5*4) / 7");
    env_close(&e);

    /* ms and h share one context, as in the Agent (both are histograms). */
    env_open(&e);
    send_at(&e, "t:6.000000|ms\nt:2|h", T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    n = collect(&e, recs, MAXREC);
    expect_rec(n, "t.count", "", T0, RMR_METRIC_RATE, 0.2, "ms and h in one histogram");
    expect_rec(n, "t.max", "", T0, RMR_METRIC_GAUGE, 6, "ms and h in one histogram");
    env_close(&e);

    /* Bounded memory: beyond the state limit count, sum, avg and max stay exact. */
    dsd_agg_config_default(&cfg);
    cfg.aggregates = aggs;
    cfg.state_limit_bytes = 16 * 16; /* 256 bytes: 16 values with their weights */
    env_open_cfg(&e, &cfg);
    char pkt[64];
    for (int i = 1; i <= 100; i++) {
        snprintf(pkt, sizeof pkt, "b:%d|h", i);
        send_at(&e, pkt, T0 + 1, 0);
    }
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    n = collect(&e, recs, MAXREC);
    expect_rec(n, "b.count", "", T0, RMR_METRIC_RATE, 10, "capped histogram: count exact");
    expect_rec(n, "b.sum", "", T0, RMR_METRIC_GAUGE, 5050, "capped histogram: sum exact");
    expect_rec(n, "b.max", "", T0, RMR_METRIC_GAUGE, 100, "capped histogram: max exact");
    expect_rec(n, "b.min", "", T0, RMR_METRIC_GAUGE, 1, "capped histogram: min exact");
    struct dsd_agg_stats st;
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.samples_capped, 84, "capped histogram: 84 samples beyond the room for 16");
    const struct rec *med = find(recs, n, "b.median", "", T0);
    OK(med != NULL && med->value >= 1 && med->value <= 100,
       "capped histogram: median estimated from a uniform sample");
    env_close(&e);

    /* No room at all: the exact aggregates only, no median or percentile (a fuzzer find: the
     * empty sample array reached qsort). */
    cfg.state_limit_bytes = 1;
    env_open_cfg(&e, &cfg);
    send_at(&e, "z:1|h\nz:3|h", T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    n = collect(&e, recs, MAXREC);
    expect_rec(n, "z.avg", "", T0, RMR_METRIC_GAUGE, 2, "no room: avg exact");
    expect_rec(n, "z.max", "", T0, RMR_METRIC_GAUGE, 3, "no room: max exact");
    OK(find(recs, n, "z.median", NULL, -1) == NULL, "no room: no median");
    OK(find(recs, n, "z.95percentile", NULL, -1) == NULL, "no room: no percentile");
    env_close(&e);
    cfg.state_limit_bytes = 16 * 16;

    /* Repeated values compact instead of being capped. */
    env_open_cfg(&e, &cfg);
    for (int i = 0; i < 1000; i++)
        send_at(&e, "rep:7|h\nrep:8|h", T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    n = collect(&e, recs, MAXREC);
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.samples_capped, 0, "repeated values: compacted, none capped");
    expect_rec(n, "rep.median", "", T0, RMR_METRIC_GAUGE, 7, "repeated values: median");
    expect_rec(n, "rep.count", "", T0, RMR_METRIC_RATE, 200, "repeated values: count");
    env_close(&e);

    /* Unknown aggregate: a config error. */
    static const char *const bad_aggs[] = {"max", "p50", NULL};
    cfg.aggregates = bad_aggs;
    struct env e2;
    env_open_cfg(&e2, &cfg);
    OK(e2.a == NULL, "unknown histogram aggregate refused");
    env_close(&e2);
}

/* The flush in three steps: the detach (under the glue's lock) only moves state out of the
 * contexts (it builds and emits nothing), and packets handled between it and the build (which
 * runs without the lock) go to the next bucket without touching what is being built. */
static void test_detach_build(void)
{
    struct env e;
    env_open(&e);
    send_at(&e, "c:1|c\ng:3|g\nh:1|h\nh:2|h\nh:3|h\ns:a|s\nd:1|d", T0 + 1, 0);
    dsd_agg_detach(e.a, (T0 + 10) * NS, 0);
    IS_UINT(rmr_fakehost_emitted_count(e.fh), 0, "detach: nothing emitted");
    IS_UINT(dsd_agg_detach_work(e.a), 5, "detach: five context buckets moved, no records");
    /* The reader goes on meanwhile: the open bucket, a new context, the same histogram. */
    send_at(&e, "c:5|c\ng:9|g\nh:100|h\ns:z|s\ns:y|s\nd:7|d\nnew:1|c", T0 + 11, 0);
    IS_UINT(rmr_fakehost_emitted_count(e.fh), 0, "packets after the detach emit nothing");
    int rc = dsd_agg_build(e.a);
    dsd_agg_finish(e.a, (T0 + 10) * NS);
    uint32_t n = collect(&e, recs, MAXREC);
    IS_INT(rc, 9, "build: the detached bucket's 9 records");
    IS_UINT(n, 9, "build: 9 records read back");
    expect_rec(n, "c", "", T0, RMR_METRIC_RATE, 0.1, "detached counter");
    expect_rec(n, "g", "", T0, RMR_METRIC_GAUGE, 3, "detached gauge");
    expect_rec(n, "h.max", "", T0, RMR_METRIC_GAUGE, 3, "detached histogram");
    expect_rec(n, "h.median", "", T0, RMR_METRIC_GAUGE, 2, "detached histogram");
    expect_rec(n, "h.avg", "", T0, RMR_METRIC_GAUGE, 2, "detached histogram");
    expect_rec(n, "h.count", "", T0, RMR_METRIC_RATE, 0.3, "detached histogram");
    expect_rec(n, "h.95percentile", "", T0, RMR_METRIC_GAUGE, 3, "detached histogram");
    expect_rec(n, "s", "", T0, RMR_METRIC_GAUGE, 1, "detached set");
    const struct rec *r = find(recs, n, "d", "", T0);
    if (OK(r != NULL && r->has_sk, "detached distribution"))
        IS_DBL(r->sk.max, 1, 0, "detached distribution: max");
    OK(find(recs, n, "new", NULL, -1) == NULL, "a context made after the detach is not built");
    struct dsd_agg_stats st;
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.records_flushed, 9, "finish: records counted");
    rmr_fakehost_clear_emitted(e.fh);

    dsd_agg_flush(e.a, (T0 + 20) * NS, 0);
    n = collect(&e, recs, MAXREC);
    IS_UINT(n, 10, "next bucket: 10 records");
    expect_rec(n, "c", "", T0 + 10, RMR_METRIC_RATE, 0.5, "next bucket counter");
    expect_rec(n, "g", "", T0 + 10, RMR_METRIC_GAUGE, 9, "next bucket gauge");
    expect_rec(n, "h.max", "", T0 + 10, RMR_METRIC_GAUGE, 100, "next bucket histogram");
    expect_rec(n, "h.count", "", T0 + 10, RMR_METRIC_RATE, 0.1, "next bucket histogram");
    expect_rec(n, "s", "", T0 + 10, RMR_METRIC_GAUGE, 2, "next bucket set");
    expect_rec(n, "new", "", T0 + 10, RMR_METRIC_RATE, 0.1, "next bucket new counter");
    r = find(recs, n, "d", "", T0 + 10);
    if (OK(r != NULL && r->has_sk, "next bucket distribution"))
        IS_DBL(r->sk.min, 7, 0, "next bucket distribution: min");
    env_close(&e);

    /* A context expired by a finish while buckets sealed by a packet's roll (after the
     * detach) still name it: its name lives until they are built (the sanitizers check). */
    env_open(&e);
    send_at(&e, "c:1|c", T0 + 1, 0);
    dsd_agg_detach(e.a, (T0 + 10) * NS, 0);
    send_at(&e, "g:1|g", T0 + 305, 0); /* rolls: zero-filled c for T0+10 .. T0+290 */
    dsd_agg_build(e.a);
    dsd_agg_finish(e.a, (T0 + 320) * NS); /* c idle 319 s: forgotten */
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.contexts_expired, 1, "the counter expired with its buckets unbuilt");
    rmr_fakehost_clear_emitted(e.fh);
    dsd_agg_flush(e.a, (T0 + 320) * NS, 0);
    n = collect(&e, recs, MAXREC);
    IS_UINT(count_named(recs, n, "c"), 29, "its 29 zero-filled buckets built after it expired");
    r = find(recs, n, "c", "", T0 + 290);
    OK(r != NULL && r->value == 0, "zero-filled bucket T0+290");
    env_close(&e);
}

/* A build step stops at its deadline once it has min_entries contexts (the glue's 250 us,
 * so a reader sharing the core never waits a whole batch of 1,024), and without a deadline
 * goes on to a full batch. */
static int build_steps(struct env *e, uint32_t min_entries, int64_t deadline_ns)
{
    char pkt[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(pkt, sizeof pkt, "g%d:%d|g", i, i);
        send_at(e, pkt, T0 + 1, 0);
    }
    dsd_agg_detach(e->a, (T0 + 10) * NS, 0);
    int steps = 0, done = 0, rc = 0;
    while (!done && steps < 2000) {
        rc = dsd_agg_build_some(e->a, min_entries, deadline_ns, &done);
        steps++;
    }
    IS_INT(rc, 1000, "  the build emitted the 1,000 gauges");
    IS_UINT(rmr_fakehost_emitted_count(e->fh) > 0 ? collect(e, recs, MAXREC) : 0, 1000,
            "  1,000 records read back");
    return steps;
}

static void test_build_deadline(void)
{
    struct env e;
    env_open(&e);
    IS_INT(build_steps(&e, 10, 0), 100, "a passed deadline: 10 contexts a step, 100 steps");
    env_close(&e);
    env_open(&e);
    IS_INT(build_steps(&e, 10, INT64_MAX), 1, "no deadline: one step up to a batch of 1,024");
    env_close(&e);
    env_open(&e);
    IS_INT(build_steps(&e, 300, 0), 4, "min_entries comes first: 300 a step, 4 steps");
    env_close(&e);
}

static void test_distribution(void)
{
    struct env e;
    env_open(&e);
    send_at(&e, "d:1|d\nd:2|d|@0.5\nd:3.5:4.5|d\nd:NaN|d", T0 + 1, 0);
    send_at(&e, "r:10|d|@0.3", T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    uint32_t n = collect(&e, recs, MAXREC);
    const struct rec *r = find(recs, n, "d", "", T0);
    if (OK(r != NULL && r->has_sk, "distribution emitted with a sketch")) {
        IS_UINT(r->type, RMR_METRIC_DISTRIBUTION, "distribution: type");
        IS_INT(r->sk.count, 5, "distribution: count (1 + 2 + 1 + 1; NaN ignored)");
        IS_DBL(r->sk.min, 1, 0, "distribution: min");
        IS_DBL(r->sk.max, 4.5, 0, "distribution: max");
        IS_DBL(r->sk.sum, 1 + 4 + 3.5 + 4.5, 1e-12, "distribution: sum");
        IS_INT(r->interval_ms, 10000, "distribution: interval");
        uint64_t total = 0;
        for (uint32_t i = 0; i < r->sk.nbins; i++)
            total += r->sk.counts[i];
        IS_UINT(total, 5, "distribution: bins hold the count");
    }
    r = find(recs, n, "r", "", T0);
    if (OK(r != NULL && r->has_sk, "distribution with rate 0.3")) {
        IS_INT(r->sk.count, 3, "rate 0.3: count int(1/0.3)");
        IS_DBL(r->sk.sum, 10 * (1 / 0.3), 1e-9, "rate 0.3: sum n*v with n untruncated (Agent)");
    }
    struct dsd_agg_stats st;
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.values_nonfinite, 1, "NaN distribution value counted");
    env_close(&e);
}

static void test_tags_and_host(void)
{
    struct env e;
    env_open(&e);
    send_at(&e,
            "o:1|c|#b:2,a:1\no:1|c|#a:1,b:2,a:1\no:1|c|#a:1,b:2,b:2,b:2\no:1|c|#,a:1,,b:2,\n"
            "k:1|c|#x\nk:1|c|#x:\n"
            "m:1|g|#host:web1,env:prod\nm:2|g|#env:prod,host:web2\nm:3|g|#env:prod\n"
            "m:4|g|#host:,env:prod\n"
            "sp:1|c|#dd.internal.card:high,dd.internal.jmx_check_name:jmx,z\n"
            "sp:1|c|#dd.internal.card:high,z|card:low\n",
            T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    uint32_t n = collect(&e, recs, MAXREC);
    IS_UINT(count_named(recs, n, "o"), 1, "tag order and duplicates: one context");
    expect_rec(n, "o", "a:1,b:2", T0, RMR_METRIC_RATE, 0.4, "tags sorted, deduplicated");
    IS_UINT(count_named(recs, n, "k"), 1, "'x' and 'x:' are one tag");
    expect_rec(n, "k", "x", T0, RMR_METRIC_RATE, 0.2, "bare tag kept");
    IS_UINT(count_named(recs, n, "m"), 3, "host: gives three contexts (web1, web2, none)");
    const struct rec *r = find(recs, n, "m", "env:prod", T0);
    uint32_t hosts = 0;
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(recs[i].name, "m") == 0) {
            hosts += strcmp(recs[i].host, "web1") == 0 && recs[i].value == 1;
            hosts += strcmp(recs[i].host, "web2") == 0 && recs[i].value == 2;
            hosts += recs[i].host[0] == '\0' && recs[i].value == 4;
            OK(strcmp(recs[i].tags, "env:prod") == 0, "host: removed from the tags");
        }
    IS_UINT(hosts, 3, "host: sets the record's host; an empty host: is the default host");
    (void)r;
    IS_UINT(count_named(recs, n, "sp"), 2, "dd.internal.card stays a tag when |card: is given");
    expect_rec(n, "sp", "z", T0, RMR_METRIC_RATE, 0.1, "dd.internal.* tags taken out");
    expect_rec(n, "sp", "dd.internal.card:high,z", T0, RMR_METRIC_RATE, 0.1,
               "dd.internal.card kept beside |card:");
    env_close(&e);

    /* 1000 tags accepted; more than 1024 refused as too long. */
    env_open(&e);
    size_t cap = 32 * 1100;
    char *pkt = malloc(cap);
    size_t k = (size_t)snprintf(pkt, cap, "many:1|c|#");
    for (int i = 0; i < 1000; i++)
        k += (size_t)snprintf(pkt + k, cap - k, "%st%04d:v", i ? "," : "", 999 - i);
    send_at(&e, pkt, T0 + 1, 0);
    k = (size_t)snprintf(pkt, cap, "toomany:1|c|#");
    for (int i = 0; i < 1025; i++)
        k += (size_t)snprintf(pkt + k, cap - k, "%st%d", i ? "," : "", i);
    send_at(&e, pkt, T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    n = collect(&e, recs, MAXREC);
    r = find(recs, n, "many", NULL, T0);
    if (OK(r != NULL, "1000 tags: accepted")) {
        IS_UINT(r->ntags, 1000, "1000 tags: all kept");
        OK(strncmp(r->tags, "t0000:v,t0001:v,", 16) == 0, "1000 tags: sorted");
    }
    OK(find(recs, n, "toomany", NULL, -1) == NULL, "1025 tags: refused");
    struct dsd_agg_stats st;
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.errors[DSD_E_TOO_LONG], 1, "1025 tags: counted as too_long");
    {
        uint64_t total = 0;
        for (int reason = 0; reason < DSD_E_COUNT; reason++)
            total += st.errors[reason];
        IS_UINT(dsd_agg_error_count(e.a), total, "error_count is the sum over reasons");
    }
    const char *lm;
    size_t ll;
    IS_INT(dsd_agg_last_error(e.a, &lm, &ll), DSD_E_TOO_LONG, "last error: too_long");
    OK(ll == 96 && memcmp(lm, "toomany:1|c|#t0", 15) == 0, "last error: its first 96 bytes");
    free(pkt);
    env_close(&e);
}

static void test_buckets_expiry(void)
{
    struct env e;
    struct dsd_agg_config cfg;
    dsd_agg_config_default(&cfg);
    cfg.expiry_s = 30;
    env_open_cfg(&e, &cfg);
    send_at(&e, "c:1|c\ng:1|g", T0 + 1, 0);
    send_at(&e, "c:3|c\ng:2|g", T0 + 15, 0); /* rolls bucket T0 into a pending batch */
    IS_UINT(rmr_fakehost_emitted_count(e.fh), 0, "a roll in the packet path emits nothing");
    dsd_agg_flush(e.a, (T0 + 16) * NS, 0);
    uint32_t n = collect(&e, recs, MAXREC);
    IS_UINT(n, 2, "flush after the roll: bucket T0 only");
    expect_rec(n, "c", "", T0, RMR_METRIC_RATE, 0.1, "bucket T0 counter");
    expect_rec(n, "g", "", T0, RMR_METRIC_GAUGE, 1, "bucket T0 gauge");
    rmr_fakehost_clear_emitted(e.fh);
    /* The clock steps back: the sample joins the open bucket (T0+10). */
    send_at(&e, "c:1|c", T0 + 9, 0);
    dsd_agg_flush(e.a, (T0 + 52) * NS, 0);
    n = collect(&e, recs, MAXREC);
    expect_rec(n, "c", "", T0 + 10, RMR_METRIC_RATE, 0.4, "bucket T0+10 counter");
    expect_rec(n, "g", "", T0 + 10, RMR_METRIC_GAUGE, 2, "bucket T0+10 gauge");
    /* Zero-fill while the counter was sampled in the last 30 s (last sample at T0+15). */
    expect_rec(n, "c", "", T0 + 20, RMR_METRIC_RATE, 0, "zero-filled counter at T0+20");
    expect_rec(n, "c", "", T0 + 30, RMR_METRIC_RATE, 0, "zero-filled counter at T0+30");
    expect_rec(n, "c", "", T0 + 40, RMR_METRIC_RATE, 0, "zero-filled counter at T0+40");
    IS_UINT(count_named(recs, n, "g"), 1, "gauges are not zero-filled");
    struct dsd_agg_stats st;
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.contexts_expired, 1, "gauge idle 37 s forgotten (expiry 30 s)");
    IS_UINT(st.contexts_live, 1, "counter kept until its zero-fill is over (expiry + bucket)");
    rmr_fakehost_clear_emitted(e.fh);
    dsd_agg_flush(e.a, (T0 + 80) * NS, 0);
    n = collect(&e, recs, MAXREC);
    IS_UINT(n, 0, "no zero after expiry (15 + 30 <= 50)");
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.contexts_expired, 2, "counter forgotten after expiry + a bucket");
    IS_UINT(st.contexts_live, 0, "no context left");
    /* A forgotten context comes back as a new one. */
    rmr_fakehost_clear_emitted(e.fh);
    send_at(&e, "g:7|g", T0 + 81, 0);
    dsd_agg_flush(e.a, (T0 + 83) * NS, 1);
    n = collect(&e, recs, MAXREC);
    expect_rec(n, "g", "", T0 + 80, RMR_METRIC_GAUGE, 7, "final flush emits the open bucket");
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.contexts_live, 1, "a returning series is a new context");
    rmr_fakehost_clear_emitted(e.fh);
    IS_INT(dsd_agg_flush(e.a, (T0 + 84) * NS, 1), 0, "a second final flush emits nothing");
    env_close(&e);

    /* Overflow: max_contexts. */
    dsd_agg_config_default(&cfg);
    cfg.max_contexts = 3;
    env_open_cfg(&e, &cfg);
    send_at(&e, "a:1|c\nb:1|c\nc:1|c\nd:1|c\ne:1:2|c\na:1|c", T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    n = collect(&e, recs, MAXREC);
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.contexts_live, 3, "max_contexts: 3 live");
    IS_UINT(st.contexts_dropped, 3, "max_contexts: 3 samples dropped (d, e:1:2)");
    expect_rec(n, "a", "", T0, RMR_METRIC_RATE, 0.2, "max_contexts: known contexts still count");
    env_close(&e);
}

/* Contexts and aliases made, forgotten and made again: slots and table entries are reused
 * without mixing series up. */
static void test_churn(void)
{
    struct env e;
    struct dsd_agg_config cfg;
    dsd_agg_config_default(&cfg);
    cfg.expiry_s = 20;
    env_open_cfg(&e, &cfg);
    static const struct rmr_tag ctags[] = {{{"cn", 2, 0}, {"x", 1, 0}}};
    rmr_tagger_set(e.ins, "cid", 3, ctags, 1);
    char line[128];
    uint32_t bad = 0, total = 0;
    for (int round = 0; round < 4; round++) {
        int64_t t = T0 + round * 100;
        char *pkt = malloc(1000 * 64);
        size_t k = 0;
        for (int i = 0; i < 1000; i++) {
            int id = round % 2 == 0 ? i : 1000 + i; /* rounds 1, 3: other names */
            k += (size_t)snprintf(pkt + k, 64, "ch%d:%d|g|#r:%d%s\n", id, id, i % 3,
                                  i % 10 == 0 ? "|c:ci-cid" : "");
        }
        dsd_agg_packet(e.a, pkt, k, (t + 1) * NS);
        free(pkt);
        rmr_fakehost_clear_emitted(e.fh);
        dsd_agg_flush(e.a, (t + 10) * NS, 0);
        uint32_t n = collect(&e, recs, MAXREC);
        total += n;
        for (uint32_t i = 0; i < n; i++) {
            int id = atoi(recs[i].name + 2);
            snprintf(line, sizeof line, "%sr:%d", id % 10 == 0 ? "cn:x," : "", (id % 1000) % 3);
            bad += recs[i].value != id || strcmp(recs[i].tags, line) != 0;
        }
        struct dsd_agg_stats st;
        dsd_agg_stats(e.a, &st);
        IS_UINT(st.contexts_live, 1000, "churn: 1000 live contexts in each round");
        IS_UINT(st.contexts_aliases, 100, "churn: 100 aliases in each round");
        dsd_agg_flush(e.a, (t + 50) * NS, 0); /* everything idle for 49 s: forgotten */
        dsd_agg_stats(e.a, &st);
        IS_UINT(st.contexts_live, 0, "churn: all forgotten after expiry");
        IS_UINT(st.contexts_aliases, 0, "churn: aliases forgotten with them");
    }
    IS_UINT(total, 4000, "churn: every series emitted once per round");
    IS_UINT(bad, 0, "churn: every record has its own value and tags");
    env_close(&e);
}

static void test_passthrough(void)
{
    struct env e;
    env_open(&e);
    send_at(&e,
            "ts.g:5|g|T1657100430|#a:b,host:h1\nts.c:20:30|c|T1657100430|@0.5\n"
            "ts.h:1|h|T1657100430\nts.d:1|d|T1657100430\nts.s:x|s|T1657100430\n",
            T0 + 1, 0);
    send_at(&e,
            "_e{5,11}:Title|line\\nbreak|k:key|s:src|t:error|p:low|#x:y,host:eh\n"
            "_e{1,1}:a|b|h:evhost|#host:taghost\n"
            "_sc|svc|1|d:1471219200|#env:dev,host:sch|m:down m\\: yes\\nsecond|c:ci-x\n"
            "_sc|svc2|3\n",
            T0 + 2, 0);
    IS_UINT(rmr_fakehost_emitted_count(e.fh), 0, "passthrough waits for the flush");
    dsd_agg_flush(e.a, (T0 + 3) * NS, 0);
    uint32_t n = collect(&e, recs, MAXREC);
    expect_rec(n, "ts.g", "a:b", 1657100430, RMR_METRIC_GAUGE, 5, "|T gauge as is");
    const struct rec *r = find(recs, n, "ts.g", "a:b", 1657100430);
    if (r != NULL)
        IS_STR(r->host, "h1", "|T gauge: host: tag");
    IS_UINT(count_named(recs, n, "ts.c"), 2, "|T count: one record per value");
    uint32_t tsc = 0;
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(recs[i].name, "ts.c") == 0 && recs[i].type == RMR_METRIC_RATE &&
            recs[i].time_ns == 1657100430LL * NS && recs[i].interval_ms == 10000)
            tsc += recs[i].value == 2 ? 1 : recs[i].value == 3 ? 2 : 0;
    IS_UINT(tsc, 3, "|T count: 20/10 and 30/10 as rates, the sample rate not applied");
    OK(find(recs, n, "ts.h", NULL, -1) == NULL, "|T histogram dropped (Agent: unsupported)");
    struct dsd_agg_stats st;
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.timestamped, 2, "stats: timestamped");
    IS_UINT(st.timestamped_unsupported, 3, "stats: timestamped h, d, s dropped");
    IS_UINT(st.events, 2, "stats: events");
    IS_UINT(st.service_checks, 2, "stats: service checks");

    uint32_t nev = 0, nsc = 0;
    for (uint32_t b = 0; b < rmr_fakehost_emitted_count(e.fh); b++) {
        const rmr_batch_t *batch = rmr_fakehost_emitted(e.fh, b);
        for (uint32_t i = 0; i < rmr_batch_count(batch); i++) {
            char tags[256];
            if (rmr_record_kind(batch, i) == RMR_REC_EVENT) {
                struct rmr_event ev = {.struct_size = sizeof ev};
                rmr_event_get(batch, i, &ev);
                tags_text(ev.tags, ev.ntags, tags, sizeof tags);
                if (nev++ == 0) {
                    IS_STRN(ev.title.ptr, ev.title.len, "Title", "event: title");
                    IS_STRN(ev.text.ptr, ev.text.len, "line\nbreak", "event: text unescaped");
                    IS_STRN(ev.aggregation_key.ptr, ev.aggregation_key.len, "key", "event: key");
                    IS_STRN(ev.source_type.ptr, ev.source_type.len, "src", "event: source");
                    IS_STRN(ev.alert_type.ptr, ev.alert_type.len, "error", "event: alert type");
                    IS_UINT(ev.priority, RMR_EVENT_LOW, "event: priority");
                    IS_STRN(ev.host.ptr, ev.host.len, "eh", "event: host from host: tag");
                    IS_STR(tags, "x:y", "event: tags without host:");
                    IS_INT(ev.time_ns, (T0 + 2) * NS, "event without d: stamped when received");
                } else {
                    IS_STRN(ev.host.ptr, ev.host.len, "evhost", "event: h: wins over host:");
                }
            } else if (rmr_record_kind(batch, i) == RMR_REC_CHECK) {
                struct rmr_check sc = {.struct_size = sizeof sc};
                rmr_check_get(batch, i, &sc);
                tags_text(sc.tags, sc.ntags, tags, sizeof tags);
                if (nsc++ == 0) {
                    IS_STRN(sc.name.ptr, sc.name.len, "svc", "check: name");
                    IS_UINT(sc.status, RMR_CHECK_WARNING, "check: status");
                    IS_INT(sc.time_ns, 1471219200LL * NS, "check: d:");
                    IS_STRN(sc.message.ptr, sc.message.len, "down m: yes\nsecond",
                            "check: message unescaped");
                    IS_STRN(sc.host.ptr, sc.host.len, "sch", "check: host from host: tag");
                    IS_STR(tags, "env:dev", "check: tags");
                } else {
                    IS_UINT(sc.status, RMR_CHECK_UNKNOWN, "check: status 3");
                }
            }
        }
    }
    IS_UINT(nev, 2, "two events emitted");
    IS_UINT(nsc, 2, "two service checks emitted");
    env_close(&e);
}

static void test_origin(void)
{
    struct env e;
    env_open(&e);
    static const struct rmr_tag ctags[] = {
        {{"container_name", 14, 0}, {"web", 3, 0}},
        {{"image", 5, 0}, {"nginx", 5, 0}},
    };
    static const struct rmr_tag ptags[] = {{{"pod", 3, 0}, {"p1", 2, 0}}};
    OK(rmr_tagger_set(e.ins, "abc123", 6, ctags, 2) == 0, "tagger knows container abc123");
    OK(rmr_tagger_set(e.ins, "pod-uid-1", 9, ptags, 1) == 0, "tagger knows pod-uid-1");
    send_at(
        &e,
        "ct:1|c|#env:prod|c:ci-abc123\nct:1|c|#env:prod|c:abc123\nct:1|c|#env:prod|c:cid-abc123\n"
        "ct:1|c|#env:prod,container_name:web,image:nginx\n"
        "ct:1|c|#env:prod|c:ci-abc123,in-99\n"
        "ct:1|c|#env:prod|c:in-99\n"
        "pt:1|g|#dd.internal.entity_id:pod-uid-1\n"
        "un:1|c|#env:prod|c:ci-later\n"
        "_e{1,1}:a|b|c:ci-abc123\n",
        T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    uint32_t n = collect(&e, recs, MAXREC);
    expect_rec(n, "ct", "container_name:web,env:prod,image:nginx", T0, RMR_METRIC_RATE, 0.5,
               "container tags joined: ci-, raw, cid-, list and the same tags sent directly");
    expect_rec(n, "ct", "env:prod", T0, RMR_METRIC_RATE, 0.1, "in- only: no origin");
    expect_rec(n, "pt", "pod:p1", T0, RMR_METRIC_GAUGE, 1, "entity_id tag: tagger tags, removed");
    expect_rec(n, "un", "env:prod", T0, RMR_METRIC_RATE, 0.1, "unknown container: no tags");
    uint32_t ev_ok = 0;
    for (uint32_t b = 0; b < rmr_fakehost_emitted_count(e.fh); b++) {
        const rmr_batch_t *batch = rmr_fakehost_emitted(e.fh, b);
        for (uint32_t i = 0; i < rmr_batch_count(batch); i++)
            if (rmr_record_kind(batch, i) == RMR_REC_EVENT) {
                struct rmr_event ev = {.struct_size = sizeof ev};
                char tags[256];
                rmr_event_get(batch, i, &ev);
                tags_text(ev.tags, ev.ntags, tags, sizeof tags);
                ev_ok = strcmp(tags, "container_name:web,image:nginx") == 0;
            }
    }
    OK(ev_ok, "event: container tags from |c:");
    struct dsd_agg_stats st;
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.contexts_live, 4, "contexts: ct (tagged, shared), ct (in-), pt, un");
    IS_UINT(st.contexts_aliases, 3, "aliases: abc123, pod-uid-1, later");

    /* The tagger learns the container later: the next bucket's samples get its tags. */
    rmr_fakehost_clear_emitted(e.fh);
    static const struct rmr_tag ltags[] = {{{"container_name", 14, 0}, {"late", 4, 0}}};
    rmr_tagger_set(e.ins, "later", 5, ltags, 1);
    send_at(&e, "un:1|c|#env:prod|c:ci-later", T0 + 11, 0);
    dsd_agg_flush(e.a, (T0 + 20) * NS, 0);
    n = collect(&e, recs, MAXREC);
    expect_rec(n, "un", "container_name:late,env:prod", T0 + 10, RMR_METRIC_RATE, 0.1,
               "origin asked again a bucket later");
    env_close(&e);

    /* origin_detection off: "|c:" ignored. */
    struct dsd_agg_config cfg;
    dsd_agg_config_default(&cfg);
    cfg.origin_detection = 0;
    env_open_cfg(&e, &cfg);
    rmr_tagger_set(e.ins, "abc123", 6, ctags, 2);
    send_at(&e, "ct:1|c|#env:prod|c:ci-abc123", T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    n = collect(&e, recs, MAXREC);
    expect_rec(n, "ct", "env:prod", T0, RMR_METRIC_RATE, 0.1, "origin detection off");
    env_close(&e);
}

static void test_packets(void)
{
    struct env e;
    env_open(&e);
    size_t len;
    char *bin = read_file("packet_multi_lines.bin", &len);
    if (OK(bin != NULL, "packet_multi_lines.bin readable")) {
        char *copy = malloc(len);
        memcpy(copy, bin, len);
        dsd_agg_packet(e.a, copy, len, (T0 + 1) * NS);
        free(copy);
        free(bin);
    }
    send_at(&e, "\n", T0 + 1, 0);
    send_at(&e, "", T0 + 1, 0);
    send_at(&e, "\r\n\r\n\n", T0 + 1, 0);
    send_at(&e, "bad\nok:1|c\n:1|c\r\nok:2|c\r", T0 + 1, 0);
    dsd_agg_flush(e.a, (T0 + 10) * NS, 0);
    uint32_t n = collect(&e, recs, MAXREC);
    expect_rec(n, "multi.a", "", T0, RMR_METRIC_RATE, 0.1, "packet: line 1 (\\n)");
    expect_rec(n, "multi.b", "t:1", T0, RMR_METRIC_GAUGE, 2, "packet: line 2 (\\r\\n)");
    expect_rec(n, "multi.c.max", "", T0, RMR_METRIC_GAUGE, 3, "packet: line 3 (unterminated)");
    expect_rec(n, "ok", "", T0, RMR_METRIC_RATE, 0.3, "bad lines do not take the packet down");
    struct dsd_agg_stats st;
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.errors[DSD_E_NO_TYPE], 1, "'bad' counted as no_type");
    IS_UINT(st.errors[DSD_E_NO_NAME], 1, "':1|c' counted as no_name");
    IS_UINT(st.packets, 5, "empty packets are packets");
    env_close(&e);
}

/* ---- micro-benchmark ------------------------------------------------------------------------- */

static double now_s(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static void bench(void)
{
    enum { NCTX = 10000, PKT = 1432, PASSES = 3, NLINES = NCTX * PASSES };
    struct env e;
    struct dsd_agg_config cfg;
    dsd_agg_config_default(&cfg);
    env_open_cfg(&e, &cfg);
    /* The load of bench/dsd_load's defaults: 1000 names x 10 tag sets, each name one type of
     * the mix c 45, g 35, h 8, ms 7, s 2, d 3 (per cent), values varying as an application's;
     * three passes over the contexts, each in its own order. */
    static const char *const ns[] = {"web.request", "db.query", "cache", "queue.jobs", "rpc"};
    char(*lines)[128] = malloc((size_t)NLINES * 128);
    uint64_t rnd = 0x9e3779b97f4a7c15ull;
    for (int pass = 0; pass < PASSES; pass++) {
        for (int i = 0; i < NCTX; i++) {
            int name = i / 10, ts = i % 10, pct = (name * 37) % 100;
            const char *type = pct < 45   ? "c"
                               : pct < 80 ? "g"
                               : pct < 88 ? "h"
                               : pct < 95 ? "ms"
                               : pct < 97 ? "s"
                                          : "d";
            char value[48];
            rnd ^= rnd << 13;
            rnd ^= rnd >> 7;
            rnd ^= rnd << 17;
            if (type[0] == 'c')
                snprintf(value, sizeof value, "1");
            else if (type[0] == 'g')
                snprintf(value, sizeof value, "%u.%02u", (unsigned)(rnd % 10000),
                         (unsigned)(rnd >> 32) % 100);
            else if (type[0] == 'm')
                snprintf(value, sizeof value, "%u.%06u", (unsigned)(rnd % 500),
                         (unsigned)((rnd >> 32) % 1000000));
            else if (type[0] == 's')
                snprintf(value, sizeof value, "user%u", (unsigned)(rnd % 200));
            else
                snprintf(value, sizeof value, "%u.%u", (unsigned)(rnd % 2000),
                         (unsigned)(rnd >> 40) % 10);
            /* Each pass in its own order: a stride coprime with NCTX. */
            int slot = pass * NCTX + (int)(((uint64_t)i * (7919 + 2 * pass)) % NCTX);
            snprintf(lines[slot], 128, "app.%s.m%04d:%s|%s|#env:prod,service:api,pod:p%03d",
                     ns[name % 5], name, value, type, ts);
        }
    }
    /* Packets of at most 1432 bytes. */
    uint32_t npkt = 0, nmetrics = 0;
    char **pkts = malloc(NLINES * sizeof *pkts);
    size_t *plen = malloc(NLINES * sizeof *plen);
    for (int i = 0; i < NLINES;) {
        char *p = malloc(PKT);
        size_t k = 0;
        while (i < NLINES && k + strlen(lines[i]) + 1 <= PKT) {
            size_t l = strlen(lines[i]);
            memcpy(p + k, lines[i], l);
            p[k + l] = '\n';
            k += l + 1;
            i++;
            nmetrics++;
        }
        pkts[npkt] = p;
        plen[npkt++] = k;
    }

    size_t heap0 = heap_bytes();
    for (uint32_t i = 0; i < npkt; i++)
        dsd_agg_packet(e.a, pkts[i], plen[i], (T0 + 1) * NS);
    size_t heap1 = heap_bytes();
    struct dsd_agg_stats st;
    dsd_agg_stats(e.a, &st);
    IS_UINT(st.contexts_live, NCTX, "bench: 10,000 contexts");

    /* Ten chunks of DSD_BENCH_ROUNDS rounds (default 4) over every packet; the machine is
     * shared, so the best chunk and the median are both reported. */
    const char *env_rounds = getenv("DSD_BENCH_ROUNDS");
    const int rounds = env_rounds != NULL && atoi(env_rounds) > 0 ? atoi(env_rounds) : 4;
    double chunk_ns[10];
    for (int c = 0; c < 10; c++) {
        double c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
        for (int r = 0; r < rounds; r++)
            for (uint32_t i = 0; i < npkt; i++)
                dsd_agg_packet(e.a, pkts[i], plen[i], (T0 + 2) * NS + c * rounds + r);
        double c1 = now_s(CLOCK_PROCESS_CPUTIME_ID);
        chunk_ns[c] = (c1 - c0) * 1e9 / ((double)rounds * nmetrics);
    }
    qsort(chunk_ns, 10, sizeof chunk_ns[0], cmp_double);
    size_t heap2 = heap_bytes();
    double f0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    dsd_agg_detach(e.a, (T0 + 10) * NS, 0);
    double fd = now_s(CLOCK_PROCESS_CPUTIME_ID);
    int emitted = dsd_agg_build(e.a);
    double fb = now_s(CLOCK_PROCESS_CPUTIME_ID);
    dsd_agg_finish(e.a, (T0 + 10) * NS);
    double f1 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    OK(emitted > 0, "bench: flush emitted");
    rmr_fakehost_clear_emitted(e.fh); /* the fake host keeps what was emitted */
    size_t heap3 = heap_bytes();

    printf("# bench: %u packets of <= %d bytes, %.1f metrics per packet, %d contexts (mix c45 g35 "
           "h8 ms7 s2 d3)\n",
           npkt, PKT, (double)nmetrics / npkt, NCTX);
    printf("# bench: %.1f ns per packed metric, best of 10 chunks (median %.1f); parse + "
           "aggregate, CPU time, %d rounds per chunk\n",
           chunk_ns[0], (chunk_ns[4] + chunk_ns[5]) / 2, rounds);
    if (heap1 > heap0)
        printf("# bench: %.0f bytes per context with 3 samples each (heap, incl. malloc "
               "overhead); %.0f with %d samples each in the bucket (histogram samples "
               "within the 4 MiB default bound)\n",
               (double)(heap1 - heap0) / NCTX, (double)(heap2 - heap0) / NCTX,
               PASSES * (1 + 10 * rounds));
    if (heap1 > heap0 && heap3 > heap0)
        printf("# bench: %.0f bytes per context after the flush (closed buckets' samples, sets "
               "and sketches released)\n",
               (double)(heap3 - heap0) / NCTX);
    else
        printf("# bench: bytes per context not measured (the sanitizer's allocator)\n");
    printf("# bench: flush of %d records: %.2f ms (%.0f ns per record, fake host)\n", emitted,
           (f1 - f0) * 1e3, (f1 - f0) * 1e9 / (emitted > 0 ? emitted : 1));
    printf("# bench: of which under the glue's lock: detach %.3f ms + finish %.3f ms; build "
           "and emit without it: %.2f ms\n",
           (fd - f0) * 1e3, (f1 - fb) * 1e3, (fb - fd) * 1e3);

    for (uint32_t i = 0; i < npkt; i++)
        free(pkts[i]);
    free(pkts);
    free(plen);
    free(lines);
    env_close(&e);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        fixture_dir = argv[1];
    test_fixture_lines();
    test_parse_bad();
    test_counter_gauge_set();
    test_histogram();
    test_distribution();
    test_detach_build();
    test_build_deadline();
    test_tags_and_host();
    test_buckets_expiry();
    test_churn();
    test_passthrough();
    test_origin();
    test_packets();
    bench();
    return tap_done();
}
