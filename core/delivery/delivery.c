#include "delivery/delivery.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <remora/plugin.h>

#include "agent.h"
#include "net/client/httpc.h"
#include "net/server/decode.h"
#include "record/batch.h"
#include "self/log.h"
#include "util/buf.h"
#include "util/payload.h"

/* Rejections are logged at most once per this window, with the count of those not logged. */
#define REJECT_LOG_MS 10000
/* How much of a response body a log line or last_error quotes. */
#define BODY_QUOTE 160
/* Retry-After is honoured up to this many times retry_max. */
#define RETRY_AFTER_CAP 10

const double delivery_lat_bounds[DELIVERY_LAT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                          1,     2.5,  5,     10,   -1 /* +Inf */};

struct send_ctx {
    struct send_ctx *next;
    struct delivery *d;
    struct payload *p;
    struct httpc_xfer *xfer;
    char **headers; /* expanded, NULL-ended */
    char *url;      /* expanded */
};

void payload_free(struct payload *p)
{
    if (p == NULL)
        return;
    free(p->endpoint);
    free(p->content_type);
    free(p->headers);
    free(p->body);
    free(p);
}

const char *delivery_state_name(uint32_t state)
{
    switch (state) {
    case DELIVERY_OK: return "ok";
    case DELIVERY_RETRYING: return "retrying";
    case DELIVERY_HALTED: return "halted";
    default: return "unknown";
    }
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_retry_timer(uv_timer_t *t);

void delivery_init(struct delivery *d, uv_loop_t *loop, struct rmr_instance *ins,
                   const struct instance_common *common)
{
    memset(d, 0, sizeof *d);
    d->loop = loop;
    d->ins = ins;
    d->fd = -1;
    d->limit_bytes = (size_t)common->queue_bytes;
    d->max_in_flight = common->max_in_flight > 0 ? (uint32_t)common->max_in_flight : 1;
    d->request_timeout_ms = (uint64_t)common->request_timeout_ms;
    d->retry_initial_ms = (uint64_t)common->retry_initial_ms;
    d->retry_max_ms = (uint64_t)common->retry_max_ms;
    d->halt_probe_ms = (uint64_t)common->halt_probe_ms;
    d->rng = (uint64_t)wall_ns() ^ (uint64_t)(uintptr_t)d ^ 0x9e3779b97f4a7c15ull;
    d->state_since_ns = wall_ns();
    if (uv_timer_init(loop, &d->retry_timer) == 0) {
        d->retry_timer.data = d;
        d->timer_ready = 1;
    }
}

static const char *name_of(const struct delivery *d)
{
    return d->ins->ci->name;
}

static const char *kind_name(uint32_t record_kind)
{
    return record_kind != 0 ? record_kind_name(record_kind) : NULL;
}

/* ---- the queue ----------------------------------------------------------------------------- */

static void queue_push_back(struct delivery *d, struct payload *p)
{
    p->next = NULL;
    if (d->tail != NULL)
        d->tail->next = p;
    else
        d->head = p;
    d->tail = p;
    d->queued++;
}

static void queue_push_front(struct delivery *d, struct payload *p)
{
    p->next = d->head;
    d->head = p;
    if (d->tail == NULL)
        d->tail = p;
    d->queued++;
}

static struct payload *queue_pop(struct delivery *d)
{
    struct payload *p = d->head;
    if (p == NULL)
        return NULL;
    d->head = p->next;
    if (d->head == NULL)
        d->tail = NULL;
    p->next = NULL;
    d->queued--;
    return p;
}

/* Accounts a payload that leaves the courier: delivered (reason NULL) or dropped. */
static void finish_payload(struct delivery *d, struct payload *p, const char *drop_reason)
{
    d->bytes -= p->len;
    d->count--;
    if (drop_reason == NULL) {
        counter_add(d->ins, "records_out", NULL, NULL, p->nrecords);
        counter_add(d->ins, "payloads_out", NULL, NULL, 1);
        counter_add(d->ins, "bytes_out", NULL, NULL, p->len);
    } else {
        counter_add(d->ins, "records_dropped", drop_reason, kind_name(p->record_kind), p->nrecords);
    }
    payload_free(p);
    if (!d->closing)
        pipeline_output_drained(d->ins);
}

size_t delivery_make_room(struct delivery *d, size_t need)
{
    size_t freed = 0;
    while (d->head != NULL && d->limit_bytes != 0 && d->bytes + need > d->limit_bytes) {
        struct payload *p = queue_pop(d);
        freed += p->len;
        log_write(RMR_LOG_WARN, name_of(d),
                  "queue full at %zu bytes (queue_bytes); dropping the oldest %u records",
                  d->limit_bytes, p->nrecords);
        finish_payload(d, p, "queue_full");
    }
    return freed;
}

static void kick(struct delivery *d);

int delivery_push(struct delivery *d, struct payload *p, int drop_oldest)
{
    if (d->limit_bytes != 0 && d->bytes + p->len > d->limit_bytes && d->count > 0) {
        if (drop_oldest)
            delivery_make_room(d, p->len);
        if (d->bytes + p->len > d->limit_bytes && d->count > 0) {
            payload_free(p);
            return RMR_EFULL;
        }
    }
    p->attempts = 0;
    queue_push_back(d, p);
    d->bytes += p->len;
    d->count++;
    kick(d);
    return 0;
}

int delivery_idle(const struct delivery *d)
{
    if (d->state == DELIVERY_HALTED && d->in_flight == 0 && !d->busy)
        return 1;
    return d->count == 0 && !d->busy && d->in_flight == 0;
}

uint64_t delivery_records(const struct delivery *d)
{
    uint64_t n = 0;
    for (const struct payload *p = d->head; p != NULL; p = p->next)
        n += p->nrecords;
    for (const struct send_ctx *s = d->sending; s != NULL; s = s->next)
        n += s->p->nrecords;
    return n;
}

/* ---- secrets -------------------------------------------------------------------------------- */

static const char *secret_value(const struct rmr_instance *ins, const char *name, size_t len,
                                const char **why)
{
    const struct cfg_instance *ci = ins->ci;
    for (uint32_t i = 0; i < ci->nsettings; i++) {
        const struct cfg_setting *s = &ci->settings[i];
        if (strlen(s->opt->name) != len || strncmp(s->opt->name, name, len) != 0)
            continue;
        if (!(s->opt->flags & RMR_OPT_SECRET)) {
            *why = "a placeholder names an option that is not a secret";
            return NULL;
        }
        return s->text != NULL ? s->text : "";
    }
    *why = "a placeholder names an unknown option";
    return NULL;
}

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* Narrows [*v, *end) to the selector's part of a secret: "#I" is the I-th non-empty
 * comma-separated item (trimmed, from 0), "#I?" that item's query (after its first '?', empty
 * when it has none). Returns 0, or -1 with *why set. */
static int secret_select(const char *sel, size_t sel_len, const char **v, const char **end,
                         int *query, const char **why)
{
    size_t idx = 0, i = 0;
    *query = 0;
    if (sel_len > 0 && sel[sel_len - 1] == '?') {
        *query = 1;
        sel_len--;
    }
    if (sel_len == 0 || sel_len > 4) {
        *why = "a placeholder's '#' is not followed by an item number";
        return -1;
    }
    for (; i < sel_len; i++) {
        if (sel[i] < '0' || sel[i] > '9') {
            *why = "a placeholder's '#' is not followed by an item number";
            return -1;
        }
        idx = idx * 10 + (size_t)(sel[i] - '0');
    }
    const char *p = *v;
    for (size_t n = 0;;) {
        const char *comma = strchr(p, ',');
        const char *e = comma != NULL ? comma : p + strlen(p);
        const char *b = p;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b && n++ == idx) {
            if (*query) {
                const char *q = memchr(b, '?', (size_t)(e - b));
                b = q != NULL ? q + 1 : e;
            }
            *v = b;
            *end = e;
            return 0;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *why = "a placeholder names an item the secret does not have";
    return -1;
}

char *delivery_expand(const struct rmr_instance *ins, const char *tmpl, int url_encode,
                      const char **why)
{
    static const char mark[] = "{secret:";
    struct dbuf out;
    dbuf_init(&out, 0);
    const char *s = tmpl;
    for (;;) {
        const char *m = strstr(s, mark);
        if (m == NULL)
            break;
        const char *name = m + sizeof mark - 1;
        const char *end = strchr(name, '}');
        if (end == NULL)
            break;
        const char *hash = memchr(name, '#', (size_t)(end - name));
        const char *name_end = hash != NULL ? hash : end;
        const char *v = secret_value(ins, name, (size_t)(name_end - name), why);
        if (v == NULL) {
            dbuf_release(&out);
            return NULL;
        }
        const char *v_end = v + strlen(v);
        int query = 0;
        if (hash != NULL &&
            secret_select(hash + 1, (size_t)(end - hash - 1), &v, &v_end, &query, why) < 0) {
            dbuf_release(&out);
            return NULL;
        }
        if (dbuf_append(&out, s, (size_t)(m - s)) < 0)
            goto nomem;
        for (const unsigned char *c = (const unsigned char *)v; c < (const unsigned char *)v_end;
             c++) {
            char enc[4];
            if ((!url_encode || query) && (*c == '\r' || *c == '\n')) {
                *why = "a secret holds a line break";
                dbuf_release(&out);
                return NULL;
            }
            /* A query is already encoded: it goes in as it is, but never with a byte that
             * would end the URL or start a fragment. */
            if (query && (*c <= ' ' || *c >= 127 || *c == '#')) {
                *why = "a secret's query holds a space, '#' or a control byte";
                dbuf_release(&out);
                return NULL;
            }
            if (url_encode && !query && !unreserved(*c)) {
                snprintf(enc, sizeof enc, "%%%02X", *c);
                if (dbuf_append(&out, enc, 3) < 0)
                    goto nomem;
            } else if (dbuf_append(&out, c, 1) < 0) {
                goto nomem;
            }
        }
        s = end + 1;
    }
    if (dbuf_append(&out, s, strlen(s) + 1) < 0)
        goto nomem;
    return (char *)out.data;
nomem:
    *why = "out of memory";
    dbuf_release(&out);
    return NULL;
}

/* ---- classification ------------------------------------------------------------------------ */

int delivery_default_verdict(const struct rmr_response *resp)
{
    int s = resp->status;
    if (s == 0)
        return RMR_VERDICT_RETRY;
    if (s >= 200 && s < 300)
        return RMR_VERDICT_OK;
    if (s == 408 || s == 429 || s >= 500)
        return RMR_VERDICT_RETRY;
    if (s == 413)
        return RMR_VERDICT_SPLIT;
    if (s == 401 || s == 403)
        return RMR_VERDICT_HALT;
    return RMR_VERDICT_REJECT;
}

/* A printable, single-line excerpt of a response body. */
static void quote_body(char *dst, size_t cap, const char *body, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < cap; i++) {
        unsigned char c = (unsigned char)body[i];
        dst[j++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    if (len > 0 && j + 4 < cap && j < len) {
        dst[j++] = '.';
        dst[j++] = '.';
        dst[j++] = '.';
    }
    dst[j] = '\0';
}

static void describe(char *dst, size_t cap, const struct rmr_response *r, const char *error_text)
{
    char body[BODY_QUOTE + 4];
    if (r->status == 0) {
        snprintf(dst, cap, "%s%s%s", rmr_strerror(r->error), error_text ? ": " : "",
                 error_text ? error_text : "");
        return;
    }
    quote_body(body, sizeof body, r->body, r->body_len);
    snprintf(dst, cap, "HTTP %d%s%s", r->status, body[0] ? ": " : "", body);
}

/* ---- backoff ------------------------------------------------------------------------------- */

static uint64_t next_random(struct delivery *d)
{
    uint64_t x = d->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    d->rng = x;
    return x;
}

/* Full jitter: a uniform wait in [0, min(retry_max, retry_initial * 2^(attempt-1))], at least
 * 1 ms; a Retry-After wins when given (capped). */
static uint64_t backoff_ms(struct delivery *d, int64_t retry_after_ms)
{
    if (retry_after_ms >= 0) {
        uint64_t cap = d->retry_max_ms * RETRY_AFTER_CAP;
        return (uint64_t)retry_after_ms < cap ? (uint64_t)retry_after_ms : cap;
    }
    uint32_t shift = d->attempt > 0 ? d->attempt - 1 : 0;
    if (shift > 40)
        shift = 40;
    uint64_t ceil = d->retry_initial_ms << shift;
    if (ceil > d->retry_max_ms || (d->retry_initial_ms << shift) >> shift != d->retry_initial_ms)
        ceil = d->retry_max_ms;
    uint64_t wait = next_random(d) % (ceil + 1);
    return wait > 0 ? wait : 1;
}

static void set_state(struct delivery *d, uint32_t state)
{
    if (d->state != state) {
        d->state = state;
        d->state_since_ns = wall_ns();
    }
}

/* Enters (or stays in) the halted state: nothing is sent before halt_probe has passed. */
static void halt(struct delivery *d, const char *cause, const char *what)
{
    if (d->state != DELIVERY_HALTED)
        log_write(RMR_LOG_ERROR, name_of(d),
                  "halted: %s (%s); keeping %u queued payloads and probing every %llu ms", cause,
                  what, d->count, (unsigned long long)d->halt_probe_ms);
    snprintf(d->last_error, sizeof d->last_error, "%s", what);
    d->last_error_ns = wall_ns();
    set_state(d, DELIVERY_HALTED);
    uint64_t until = uv_now(d->loop) + d->halt_probe_ms;
    if (until > d->not_before_ms) /* a longer Retry-After wait stands */
        d->not_before_ms = until;
}

void delivery_halt(struct delivery *d, const char *reason)
{
    halt(d, "the output asked to halt", reason != NULL && reason[0] != '\0' ? reason : "halted");
    kick(d);
}

/* ---- HTTP sending ---------------------------------------------------------------------------- */

static void free_send(struct send_ctx *s)
{
    httpc_headers_free(s->headers);
    free(s->url);
    free(s);
}

static void unlink_send(struct delivery *d, struct send_ctx *s)
{
    for (struct send_ctx **pp = &d->sending; *pp != NULL; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    d->in_flight--;
}

static const char *encoding_name(uint32_t compression)
{
    switch (compression) {
    case RMR_COMPRESS_GZIP: return "gzip";
    case RMR_COMPRESS_DEFLATE: return "deflate";
    case RMR_COMPRESS_ZSTD: return "zstd";
    default: return NULL;
    }
}

/* Builds the expanded header array: the payload's lines, Content-Type, Content-Encoding. */
static char **build_headers(const struct delivery *d, const struct payload *p, const char **why)
{
    size_t n = 3;
    if (p->headers != NULL)
        for (const char *c = p->headers; *c != '\0'; c++)
            n += *c == '\n';
    char **h = calloc(n + 1, sizeof *h);
    if (h == NULL) {
        *why = "out of memory";
        return NULL;
    }
    size_t k = 0;
    if (p->headers != NULL) {
        char *all = delivery_expand(d->ins, p->headers, 0, why);
        if (all == NULL)
            goto fail;
        if ((p->flags & RMR_PAYLOAD_LINES) && strstr(all, "{lines}") != NULL) {
            char *counted = headers_with_lines(all, p->nlines);
            free(all);
            if (counted == NULL) {
                *why = "out of memory";
                goto fail;
            }
            all = counted;
        }
        for (char *line = all, *next; line != NULL && *line != '\0'; line = next) {
            next = strchr(line, '\n');
            size_t len = next != NULL ? (size_t)(next - line) : strlen(line);
            if (next != NULL)
                next++;
            if (len > 0 && line[len - 1] == '\r')
                len--;
            if (len == 0 || k >= n - 2)
                continue;
            h[k] = strndup(line, len);
            if (h[k] == NULL) {
                free(all);
                *why = "out of memory";
                goto fail;
            }
            k++;
        }
        free(all);
    }
    if (p->content_type != NULL) {
        if (asprintf(&h[k], "Content-Type: %s", p->content_type) < 0) {
            h[k] = NULL;
            *why = "out of memory";
            goto fail;
        }
        k++;
    }
    const char *enc = encoding_name(p->compression);
    if (enc != NULL) {
        if (asprintf(&h[k], "Content-Encoding: %s", enc) < 0) {
            h[k] = NULL;
            *why = "out of memory";
            goto fail;
        }
        k++;
    }
    h[k] = NULL;
    return h;
fail:
    for (size_t i = 0; i < k; i++)
        free(h[i]);
    free(h);
    return NULL;
}

static void record_latency(struct delivery *d, uint64_t duration_us)
{
    double s = (double)duration_us / 1e6;
    d->lat_sum_s += s;
    d->lat_count++;
    for (int i = 0; i < DELIVERY_LAT_BUCKETS; i++)
        if (delivery_lat_bounds[i] < 0 || s <= delivery_lat_bounds[i]) {
            d->lat_counts[i]++;
            break;
        }
}

static void reject(struct delivery *d, struct payload *p, const char *reason, const char *what)
{
    uint64_t now = uv_now(d->loop);
    if (d->last_reject_log_ms == 0 || now - d->last_reject_log_ms >= REJECT_LOG_MS) {
        if (d->rejects_unlogged > 0)
            log_write(RMR_LOG_ERROR, name_of(d),
                      "backend rejected %u records (%s); dropped (%llu more rejected payloads "
                      "not logged)",
                      p->nrecords, what, (unsigned long long)d->rejects_unlogged);
        else
            log_write(RMR_LOG_ERROR, name_of(d), "backend rejected %u records (%s); dropped",
                      p->nrecords, what);
        d->last_reject_log_ms = now;
        d->rejects_unlogged = 0;
    } else {
        d->rejects_unlogged++;
    }
    finish_payload(d, p, reason);
}

static void on_response(void *arg, const struct httpc_response *r)
{
    struct send_ctx *s = arg;
    struct delivery *d = s->d;
    struct payload *p = s->p;
    unlink_send(d, s);
    free_send(s);
    p->attempts++;
    record_latency(d, r->duration_us);

    char code[16];
    if (r->status > 0)
        snprintf(code, sizeof code, "%d", r->status);
    else
        snprintf(code, sizeof code, "error");
    counter_add(d->ins, "http_responses", code, NULL, 1);

    struct rmr_response resp = {
        .struct_size = sizeof resp,
        .status = r->status,
        .error = r->error,
        .retry_after_ms = r->retry_after_ms,
        .body = r->body != NULL ? r->body : "",
        .body_len = r->body_len,
    };
    int verdict = d->ins->desc->classify != NULL ? d->ins->desc->classify(d->ins->state, &resp)
                                                 : delivery_default_verdict(&resp);
    char what[BODY_QUOTE + 96];
    if (verdict != RMR_VERDICT_OK)
        describe(what, sizeof what, &resp, r->error_text);

    switch (verdict) {
    case RMR_VERDICT_OK:
        if (d->state != DELIVERY_OK)
            log_write(RMR_LOG_INFO, name_of(d), "delivering again after %u failed attempts",
                      d->attempt);
        d->attempt = 0;
        d->not_before_ms = 0;
        d->last_ok_ns = wall_ns();
        set_state(d, DELIVERY_OK);
        finish_payload(d, p, NULL);
        break;
    case RMR_VERDICT_SPLIT: {
        struct payload *a = NULL, *b = NULL;
        if ((p->flags & RMR_PAYLOAD_LINES) && p->nrecords > 1 && delivery_split(p, &a, &b) == 0) {
            log_write(RMR_LOG_INFO, name_of(d),
                      "backend refused %u records as too large (%s); sending them in two parts",
                      p->nrecords, what);
            counter_add(d->ins, "payloads_split", NULL, NULL, 1);
            d->bytes = d->bytes - p->len + a->len + b->len;
            d->count++;
            payload_free(p);
            queue_push_front(d, b);
            queue_push_front(d, a);
        } else {
            reject(d, p, "too_large", what);
        }
        break;
    }
    case RMR_VERDICT_HALT:
        queue_push_front(d, p);
        halt(d, "the backend refused the credentials", what);
        break;
    case RMR_VERDICT_REJECT:
        snprintf(d->last_error, sizeof d->last_error, "%s", what);
        d->last_error_ns = wall_ns();
        reject(d, p, "rejected", what);
        break;
    case RMR_VERDICT_RETRY:
    default: {
        d->attempt++;
        uint64_t wait = backoff_ms(d, r->retry_after_ms);
        counter_add(d->ins, "retries", NULL, NULL, 1);
        log_write(RMR_LOG_WARN, name_of(d), "delivery failed (%s); retrying %u records in %llu ms",
                  what, p->nrecords, (unsigned long long)wait);
        snprintf(d->last_error, sizeof d->last_error, "%s", what);
        d->last_error_ns = wall_ns();
        if (d->state != DELIVERY_HALTED)
            set_state(d, DELIVERY_RETRYING);
        uint64_t until = uv_now(d->loop) + wait;
        if (until > d->not_before_ms)
            d->not_before_ms = until;
        queue_push_front(d, p);
        break;
    }
    }
    kick(d);
}

/* Starts one request for the queue's head. Returns 1 when sent, 0 when the payload was
 * dropped instead (bad endpoint or secret). */
static int send_head(struct delivery *d)
{
    struct payload *p = queue_pop(d);
    const char *why = NULL;
    struct send_ctx *s = calloc(1, sizeof *s);
    if (s == NULL) {
        queue_push_front(d, p);
        return -1;
    }
    s->d = d;
    s->p = p;
    s->url = delivery_expand(d->ins, p->endpoint, 1, &why);
    if (s->url != NULL)
        s->headers = build_headers(d, p, &why);
    if (s->url == NULL || s->headers == NULL) {
        log_write(RMR_LOG_ERROR, name_of(d), "cannot send to '%s': %s; dropping %u records",
                  p->endpoint, why, p->nrecords);
        free_send(s);
        finish_payload(d, p, "bad_request");
        return 0;
    }
    struct httpc_request req = {
        .method = "POST",
        .url = s->url,
        .headers = (const char *const *)s->headers,
        .body = p->body,
        .body_len = p->len,
        .timeout_ms = d->request_timeout_ms,
        .max_response_bytes = 64 * 1024,
    };
    s->next = d->sending;
    d->sending = s;
    d->in_flight++;
    int rc = httpc_send(d->ins->agent->http, &req, on_response, s, &s->xfer);
    if (rc < 0) {
        unlink_send(d, s);
        log_write(RMR_LOG_ERROR, name_of(d), "cannot send to '%s': %s; dropping %u records",
                  p->endpoint, rmr_strerror(rc), p->nrecords);
        free_send(s);
        finish_payload(d, p, "bad_request");
        return 0;
    }
    return 1;
}

static int is_http(const char *endpoint)
{
    return strncmp(endpoint, "http://", 7) == 0 || strncmp(endpoint, "https://", 8) == 0;
}

static void on_retry_timer(uv_timer_t *t)
{
    kick(t->data);
}

static void kick_http(struct delivery *d)
{
    uint64_t now = uv_now(d->loop);
    /* kick() calls this with an http(s) head; a head of another transport waits for it. */
    while (d->head != NULL && !d->closing && is_http(d->head->endpoint)) {
        if (host_http_client(d->ins->agent) == NULL) {
            struct payload *p = queue_pop(d);
            log_write(RMR_LOG_ERROR, name_of(d), "cannot deliver to '%s': no HTTP client",
                      p->endpoint);
            finish_payload(d, p, "no_transport");
            continue;
        }
        /* While failing, one request probes; otherwise up to max_in_flight. */
        uint32_t limit = d->state == DELIVERY_OK ? d->max_in_flight : 1;
        if (d->in_flight >= limit)
            return;
        if (now < d->not_before_ms) {
            if (d->timer_ready)
                uv_timer_start(&d->retry_timer, on_retry_timer, d->not_before_ms - now, 0);
            return;
        }
        if (send_head(d) < 0)
            return;
    }
}

/* ---- file transport ------------------------------------------------------------------------ */

static void kick_file(struct delivery *d);

static void file_done(struct delivery *d, const char *drop_reason)
{
    struct payload *p = queue_pop(d);
    d->written = 0;
    finish_payload(d, p, drop_reason);
}

static void on_write(uv_fs_t *req)
{
    struct delivery *d = req->data;
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    d->busy = 0;
    if (res < 0) {
        log_write(RMR_LOG_ERROR, name_of(d), "cannot write to '%s': %s",
                  d->file_path ? d->file_path : "-", uv_strerror((int)res));
        /* A local write error (disk full, closed pipe) is not transient enough to retry
         * forever without a spool; the payload is dropped and counted. */
        file_done(d, "write_error");
    } else {
        d->written += (size_t)res;
        if (d->written >= d->head->len)
            file_done(d, NULL);
    }
    kick(d);
}

static void on_open(uv_fs_t *req)
{
    struct delivery *d = req->data;
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    d->busy = 0;
    if (res < 0) {
        log_write(RMR_LOG_ERROR, name_of(d), "cannot open '%s': %s", d->file_path,
                  uv_strerror((int)res));
        free(d->file_path);
        d->file_path = NULL;
        file_done(d, "write_error");
    } else {
        d->fd = (uv_file)res;
        d->fd_owned = 1;
    }
    kick(d);
}

/* Makes path the open target. Returns 1 when it is ready, 0 when an open is in flight (kick
 * runs again from on_open), or an error. */
static int open_target(struct delivery *d, const char *path)
{
    if (d->file_path != NULL && strcmp(d->file_path, path) == 0 && d->fd >= 0)
        return 1;
    if (d->fd_owned && d->fd >= 0)
        close(d->fd); /* not reached in practice: one output writes one path */
    free(d->file_path);
    d->fd = -1;
    d->fd_owned = 0;
    d->file_path = strdup(path);
    if (d->file_path == NULL)
        return RMR_ENOMEM;
    if (strcmp(path, "-") == 0) {
        d->fd = STDOUT_FILENO;
        return 1;
    }
    d->req.data = d;
    int rc = uv_fs_open(d->loop, &d->req, path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640,
                        on_open);
    if (rc < 0)
        return rc;
    d->busy = 1;
    return 0;
}

static void kick_file(struct delivery *d)
{
    while (!d->busy && d->head != NULL && strncmp(d->head->endpoint, "file:", 5) == 0) {
        struct payload *p = d->head;
        int rc = open_target(d, p->endpoint + 5);
        if (rc == 0)
            return;
        if (rc < 0) {
            log_write(RMR_LOG_ERROR, name_of(d), "cannot open '%s': %s", p->endpoint + 5,
                      uv_strerror(rc));
            free(d->file_path);
            d->file_path = NULL;
            file_done(d, "write_error");
            continue;
        }
        if (p->len == 0) {
            file_done(d, NULL);
            continue;
        }
        d->buf = uv_buf_init((char *)p->body + d->written, (unsigned)(p->len - d->written));
        d->req.data = d;
        rc = uv_fs_write(d->loop, &d->req, d->fd, &d->buf, 1, -1, on_write);
        if (rc < 0) {
            log_write(RMR_LOG_ERROR, name_of(d), "cannot write to '%s': %s", d->file_path,
                      uv_strerror(rc));
            file_done(d, "write_error");
            continue;
        }
        d->busy = 1;
    }
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static void kick(struct delivery *d)
{
    /* An output's payloads all go one way in practice; the queue is served in order, so a
     * head of one transport waits for the other's in-flight work to finish. */
    while (d->head != NULL && !d->closing) {
        const char *e = d->head->endpoint;
        if (strncmp(e, "file:", 5) == 0) {
            if (d->in_flight > 0)
                return;
            kick_file(d);
            return;
        }
        if (is_http(e)) {
            if (d->busy)
                return;
            kick_http(d);
            return;
        }
        struct payload *p = queue_pop(d);
        log_write(RMR_LOG_ERROR, name_of(d),
                  "cannot deliver to '%s': no transport for this endpoint", p->endpoint);
        finish_payload(d, p, "no_transport");
    }
}

void delivery_release(struct delivery *d)
{
    d->closing = 1;
    while (d->sending != NULL) {
        struct send_ctx *s = d->sending;
        d->sending = s->next;
        if (s->xfer != NULL)
            httpc_cancel(s->xfer);
        d->in_flight--;
        finish_payload(d, s->p, "shutdown");
        free_send(s);
    }
    while (d->head != NULL) {
        struct payload *p = queue_pop(d);
        finish_payload(d, p, "shutdown");
    }
    if (d->timer_ready)
        uv_timer_stop(&d->retry_timer);
    if (d->fd_owned && d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    free(d->file_path);
    d->file_path = NULL;
}

/* ---- splitting ------------------------------------------------------------------------------ */

static struct payload *half(const struct payload *p, const unsigned char *body, size_t len,
                            uint32_t nrecords, uint32_t nlines)
{
    struct payload *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->endpoint = strdup(p->endpoint);
    h->content_type = p->content_type ? strdup(p->content_type) : NULL;
    h->headers = p->headers ? strdup(p->headers) : NULL;
    h->compression = p->compression;
    h->record_kind = p->record_kind;
    h->flags = p->flags;
    h->nrecords = nrecords;
    h->nlines = nlines;
    if (h->endpoint == NULL || (p->content_type && !h->content_type) ||
        (p->headers && !h->headers) ||
        compress_buf(p->compression, body, len, &h->body, &h->len) < 0) {
        payload_free(h);
        return NULL;
    }
    return h;
}

int delivery_split(const struct payload *p, struct payload **a, struct payload **b)
{
    *a = *b = NULL;
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    int rc =
        body_decode(encoding_name(p->compression), p->body, p->len, (size_t)1 << 31, &raw, &rawlen);
    if (rc < 0)
        return rc;
    /* Count lines, then cut after the line that ends the first half of them. */
    uint32_t lines = 0;
    for (size_t i = 0; i < rawlen; i++)
        lines += raw[i] == '\n';
    if (rawlen > 0 && raw[rawlen - 1] != '\n')
        lines++;
    if (lines < 2) {
        free(raw);
        return RMR_EINVAL;
    }
    uint32_t want = lines / 2, seen = 0;
    size_t cut = 0;
    for (size_t i = 0; i < rawlen; i++)
        if (raw[i] == '\n' && ++seen == want) {
            cut = i + 1;
            break;
        }
    /* Records per half in proportion to lines (a record is a line for RMR_PAYLOAD_LINES). */
    uint32_t na = (uint32_t)((uint64_t)p->nrecords * want / lines);
    if (na == 0)
        na = 1;
    if (na >= p->nrecords)
        na = p->nrecords - 1;
    *a = half(p, raw, cut, na, want);
    *b = half(p, raw + cut, rawlen - cut, p->nrecords - na, lines - want);
    free(raw);
    if (*a == NULL || *b == NULL) {
        payload_free(*a);
        payload_free(*b);
        *a = *b = NULL;
        return RMR_ENOMEM;
    }
    return 0;
}
