/* The http output against the fake host: the payload spec the courier gets (endpoint,
 * content type, line flag, compression, headers with the token as a placeholder), one record
 * kind per payload, the size bound, and option validation. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fakehost.h"
#include "plugin_test.h"
#include "tap.h"

const struct rmr_plugin *rmr_plugin_describe(void);

#define T0 INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */

static void add_metric(rmr_batch_t *b, const char *name, double v)
{
    struct rmr_metric m = {
        .struct_size = sizeof m,
        .type = RMR_METRIC_GAUGE,
        .name = rmr_str_c(name),
        .value = v,
        .time_ns = T0,
    };
    rmr_metric_add(b, &m);
}

static void add_log(rmr_batch_t *b, const char *msg)
{
    struct rmr_log l = {
        .struct_size = sizeof l,
        .time_ns = T0,
        .message = rmr_str_c(msg),
        .status = RMR_STR("info"),
    };
    rmr_log_add(b, &l);
}

static char *text(const struct rmr_fakehost_payload *p)
{
    char *s = malloc(p->len + 1);
    memcpy(s, p->body, p->len);
    s[p->len] = '\0';
    return s;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_spec(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(fh,
                                      "url = http://127.0.0.1:9/ingest?x=1\n"
                                      "headers = X-Scope-OrgID: tenant-1, X-Source: remora\n"
                                      "bearer_token = s3cr3t-token\n",
                                      NULL);
    OK(ins != NULL, "created with url, headers and a token");
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    add_metric(b, "a", 1);
    add_log(b, "hello");
    add_metric(b, "b", 2.5);
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    IS_UINT(rmr_fakehost_payload_count(fh), 2, "one payload per record kind");
    const struct rmr_fakehost_payload *m = rmr_fakehost_payload(fh, 0);
    const struct rmr_fakehost_payload *l = rmr_fakehost_payload(fh, 1);
    IS_STR(m->spec.endpoint, "http://127.0.0.1:9/ingest?x=1", "endpoint is the url");
    IS_STR(m->spec.content_type, "application/x-ndjson", "content type is NDJSON");
    IS_UINT(m->spec.flags, RMR_PAYLOAD_LINES, "payloads are line-splittable");
    IS_UINT(m->spec.compression, RMR_COMPRESS_NONE, "no compression by default");
    IS_UINT(m->spec.record_kind, RMR_REC_METRIC, "first payload: metrics");
    IS_UINT(m->nrecords, 2, "two metrics");
    IS_UINT(l->spec.record_kind, RMR_REC_LOG, "second payload: logs");
    IS_UINT(l->nrecords, 1, "one log");
    IS_STR(m->spec.headers,
           "X-Scope-OrgID: tenant-1\r\nX-Source: remora\r\n"
           "Authorization: Bearer {secret:bearer_token}\r\n",
           "headers carry the token as a placeholder");
    char *mt = text(m), *lt = text(l);
    OK(strstr(mt, "s3cr3t") == NULL && strstr(m->spec.headers, "s3cr3t") == NULL,
       "the token is in no payload");
    IS_INT((int64_t)count_lines(mt), 2, "one line per metric");
    OK(strncmp(mt, "{\"kind\":\"metric\"", 16) == 0, "lines are the file output's JSON");
    OK(strstr(mt, "\"name\":\"b\"") != NULL && strstr(mt, "\"value\":2.5") != NULL,
       "the second metric's name and value");
    OK(strstr(lt, "\"message\":\"hello\"") != NULL, "the log's message");
    free(mt);
    free(lt);
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_gzip_and_split(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = plugin_make(
        fh, "url = https://example.test/x\ncompression = gzip\nmax_payload_bytes = 4KiB\n", NULL);
    OK(ins != NULL, "created with gzip and a 4 KiB bound");
    rmr_batch_t *b = rmr_fakehost_batch_new(fh, NULL);
    for (int i = 0; i < 200; i++) {
        char name[32];
        snprintf(name, sizeof name, "metric.%d", i);
        add_metric(b, name, i);
    }
    const rmr_batch_t *bs[] = {b};
    IS_INT(rmr_fakehost_encode(fh, ins, bs, 1), 0, "encode succeeds");
    uint32_t n = rmr_fakehost_payload_count(fh), records = 0;
    OK(n > 1, "200 metrics over 4 KiB are split into several payloads");
    int all_ok = 1, lines_ok = 1;
    for (uint32_t i = 0; i < n; i++) {
        const struct rmr_fakehost_payload *p = rmr_fakehost_payload(fh, i);
        records += p->nrecords;
        all_ok &= p->spec.compression == RMR_COMPRESS_GZIP && p->spec.headers == NULL;
        unsigned char out[65536];
        z_stream z = {0};
        inflateInit2(&z, 15 + 16);
        z.next_in = (unsigned char *)p->body;
        z.avail_in = (uInt)p->len;
        z.next_out = out;
        z.avail_out = sizeof out - 1;
        int zr = inflate(&z, Z_FINISH);
        size_t len = sizeof out - 1 - z.avail_out;
        inflateEnd(&z);
        out[len] = '\0';
        lines_ok &=
            zr == Z_STREAM_END && count_lines((char *)out) == p->nrecords && len < 4096 + 512;
    }
    IS_UINT(records, 200, "every record is in some payload");
    OK(all_ok, "every payload is gzip without headers");
    OK(lines_ok, "each payload gunzips to one line per record, near the bound");
    rmr_batch_free(b);
    rmr_fakehost_free(fh);
}

static void test_bad_options(void)
{
    struct rmr_fakehost *fh = rmr_fakehost_new();
    int rc = 0;
    plugin_make(fh, "", &rc);
    IS_INT(rc, RMR_ECONFIG, "url is required");
    plugin_make(fh, "url = ftp://x/\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "a non-http url is refused");
    plugin_make(fh, "url = http://x/\nheaders = NoColon\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "a header without a colon is refused");
    plugin_make(fh, "url = http://x/\nheaders = X-A: {secret:bearer_token}\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "a header cannot smuggle a secret placeholder");
    plugin_make(fh, "url = http://x/\ncompression = brotli\n", &rc);
    IS_INT(rc, RMR_ECONFIG, "an unknown compression is refused");
    const struct rmr_plugin *d = rmr_plugin_describe();
    IS_STR(d->name, "http", "descriptor: name");
    IS_UINT(d->accepts, RMR_REC_ALL, "descriptor: every kind");
    OK(d->classify == NULL, "descriptor: the courier's default classification");
    rmr_fakehost_free(fh);
}

int main(void)
{
    test_spec();
    test_gzip_and_split();
    test_bad_options();
    return tap_done();
}
