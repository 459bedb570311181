/* core/cli_status: `remora status` and `remora health`, clients of a running agent's
 * /v1/status on its shared listener ([agent] http_listen / ENV_HTTP_LISTEN, so the same task
 * definition variables find it). health is made for an ECS container healthCheck: exit 0 when
 * every output is ok or retrying, 1 otherwise, with one line saying why.
 * Thread: the main thread; blocking is fine in a CLI. */
#include "cli_status.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/client/curl_api.h"
#include "util/buf.h"

static size_t on_body(char *ptr, size_t size, size_t n, void *arg)
{
    struct dbuf *b = arg;
    return dbuf_append(b, ptr, size * n) == 0 ? size * n : 0;
}

/* The address to connect to for a listen address: a wildcard becomes loopback. */
static void connect_address(const char *listen, char *out, size_t len)
{
    if (strncmp(listen, "0.0.0.0:", 8) == 0)
        snprintf(out, len, "127.0.0.1:%s", listen + 8);
    else if (strncmp(listen, "[::]:", 5) == 0)
        snprintf(out, len, "[::1]:%s", listen + 5);
    else if (strncmp(listen, ":", 1) == 0)
        snprintf(out, len, "127.0.0.1%s", listen);
    else
        snprintf(out, len, "%s", listen);
}

/* GETs /v1/status; returns the parsed document, or NULL with why filled. */
static json_t *fetch_status(const char *listen, long timeout_ms, char *why, size_t whylen)
{
    char addr[300], url[400];
    connect_address(listen, addr, sizeof addr);
    snprintf(url, sizeof url, "http://%s/v1/status", addr);
    const char *load_why = NULL;
    const struct curl_api *cu = curl_api_get(&load_why);
    if (cu == NULL) {
        snprintf(why, whylen, "%s", load_why);
        return NULL;
    }
    cu->global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = cu->easy_init();
    if (c == NULL) {
        snprintf(why, whylen, "cannot start an HTTP client");
        cu->global_cleanup();
        return NULL;
    }
    struct dbuf body;
    dbuf_init(&body, 16u << 20);
    char err[CURL_ERROR_SIZE] = "";
    cu->easy_setopt(c, CURLOPT_URL, url);
    cu->easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    cu->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cu->easy_setopt(c, CURLOPT_NOPROXY, "*");
    cu->easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    cu->easy_setopt(c, CURLOPT_WRITEDATA, &body);
    cu->easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    CURLcode rc = cu->easy_perform(c);
    long status = 0;
    cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    cu->easy_cleanup(c);
    json_t *doc = NULL;
    const char *curl_error = rc != CURLE_OK && err[0] == '\0' ? cu->easy_strerror(rc) : err;
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "cannot reach remora at %s: %s", addr, curl_error);
    } else if (status != 200) {
        snprintf(why, whylen, "remora at %s answered %ld to /v1/status", addr, status);
    } else {
        json_error_t je;
        doc = json_loadb((const char *)body.data, body.len, 0, &je);
        if (doc == NULL)
            snprintf(why, whylen, "remora at %s sent a status that is not JSON: %s", addr, je.text);
    }
    dbuf_release(&body);
    cu->global_cleanup();
    return doc;
}

static long long num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? (long long)json_number_value(v) : 0;
}

static const char *str(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : dflt;
}

static void human_bytes(double v, char *out, size_t len)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%.0f %s", v, units[u]);
    else
        snprintf(out, len, "%.1f %s", v, units[u]);
}

static void human_duration(double s, char *out, size_t len)
{
    long long t = (long long)s;
    if (t < 60)
        snprintf(out, len, "%llds", t);
    else if (t < 3600)
        snprintf(out, len, "%lldm%llds", t / 60, t % 60);
    else if (t < 86400)
        snprintf(out, len, "%lldh%lldm", t / 3600, t % 3600 / 60);
    else
        snprintf(out, len, "%lldd%lldh", t / 86400, t % 86400 / 3600);
}

static void render(const json_t *doc)
{
    const json_t *proc = json_object_get(doc, "process");
    const json_t *lag = json_object_get(doc, "loop_lag");
    char rss[32], up[32];
    human_bytes((double)num(proc, "rss_bytes"), rss, sizeof rss);
    human_duration(json_number_value(json_object_get(doc, "uptime_seconds")), up, sizeof up);
    printf("remora %s on %s, pid %lld, up %s, %s; RSS %s, CPU %.2f s, loop lag %lld ms "
           "(max %lld)\n",
           str(doc, "version", "?"), str(doc, "hostname", "?"), num(doc, "pid"), up,
           str(doc, "phase", "?"), rss, json_number_value(json_object_get(proc, "cpu_seconds")),
           num(lag, "last_ms"), num(lag, "max_ms"));

    const json_t *list = json_object_get(doc, "instances");
    printf("\n%-28s %-9s %12s %12s %10s\n", "INSTANCE", "STATE", "RECORDS IN", "RECORDS OUT",
           "DROPPED");
    size_t i;
    const json_t *ins;
    json_array_foreach(list, i, ins)
    {
        const json_t *dl = json_object_get(ins, "delivery");
        char out[24] = "-";
        if (json_is_object(dl) || num(ins, "records_out") > 0)
            snprintf(out, sizeof out, "%lld", num(ins, "records_out"));
        printf("%-28s %-9s %12lld %12s %10lld\n", str(ins, "name", "?"), str(ins, "state", "?"),
               num(ins, "records_in"), out, num(ins, "records_dropped"));
    }

    int header = 0;
    json_array_foreach(list, i, ins)
    {
        const json_t *dl = json_object_get(ins, "delivery");
        if (!json_is_object(dl))
            continue;
        if (!header) {
            printf("\n%-28s %-9s %11s %9s %9s  %s\n", "OUTPUT", "DELIVERY", "QUEUE", "PAYLOADS",
                   "IN FLIGHT", "LAST ERROR");
            header = 1;
        }
        char q[32], err[320] = "-";
        human_bytes((double)num(dl, "queue_bytes"), q, sizeof q);
        const char *le = json_string_value(json_object_get(dl, "last_error"));
        if (le != NULL) {
            char ago[32];
            human_duration((double)num(dl, "last_error_seconds_ago"), ago, sizeof ago);
            snprintf(err, sizeof err, "%s (%s ago)", le, ago);
        }
        printf("%-28s %-9s %11s %9lld %9lld  %s\n", str(ins, "name", "?"), str(dl, "state", "?"), q,
               num(dl, "queue_payloads"), num(dl, "in_flight"), err);
    }

    header = 0;
    json_array_foreach(list, i, ins)
    {
        const json_t *drops = json_object_get(ins, "drops");
        const char *reason;
        const json_t *v;
        json_object_foreach((json_t *)drops, reason, v)
        {
            if (!header) {
                printf("\n%-28s %-32s %10s\n", "DROPS", "REASON/KIND", "RECORDS");
                header = 1;
            }
            printf("%-28s %-32s %10lld\n", str(ins, "name", "?"), reason,
                   (long long)json_number_value(v));
        }
    }
}

int cli_status(const char *listen, int json)
{
    char why[512];
    json_t *doc = fetch_status(listen, 5000, why, sizeof why);
    int rc = 0;
    if (doc == NULL) {
        fprintf(stderr, "remora: %s\n", why);
        rc = 1;
    } else if (json) {
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text != NULL)
            printf("%s\n", text);
        free(text);
    } else {
        render(doc);
    }
    json_decref(doc);
    return rc;
}

int cli_health(const char *listen)
{
    char why[512];
    json_t *doc = fetch_status(listen, 3000, why, sizeof why);
    int rc = 0;
    if (doc == NULL) {
        printf("unhealthy: %s\n", why);
        rc = 1;
    } else {
        const json_t *list = json_object_get(doc, "instances");
        size_t i, outputs = 0, retrying = 0;
        const json_t *ins;
        json_array_foreach(list, i, ins)
        {
            const json_t *dl = json_object_get(ins, "delivery");
            if (!json_is_object(dl))
                continue;
            outputs++;
            const char *state = str(dl, "state", "?");
            if (strcmp(state, "retrying") == 0) {
                retrying++;
            } else if (strcmp(state, "ok") != 0 && rc == 0) {
                printf("unhealthy: %s is %s: %s\n", str(ins, "name", "?"), state,
                       str(dl, "last_error", "no error recorded"));
                rc = 1;
            }
        }
        const char *phase = str(doc, "phase", "?");
        if (rc == 0 && strcmp(phase, "running") != 0) {
            printf("unhealthy: remora is %s\n", phase);
            rc = 1;
        }
        if (rc == 0)
            printf("healthy: %zu output%s ok%s\n", outputs, outputs == 1 ? "" : "s",
                   retrying ? " or retrying" : "");
    }
    json_decref(doc);
    return rc;
}
