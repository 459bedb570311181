/* plugins/lib/ecsmeta: the client that GETs /task and /task/stats through the host.
 *
 * A poll lives in a heap object of its own (struct ecs_pending) rather than in the client:
 * the host answers every fetch exactly once, possibly after the client is gone (a fetch still
 * running when the plugin frees the client is answered later, at the latest with RMR_ECANCELED
 * when the instance stops). So ecs_client_free() only detaches the poll, and the poll frees
 * itself when its last fetch answers. Loop thread only, like the instance.
 *
 * Each GET is judged on its own and its document parsed whenever it went well, so a plugin
 * can tell a failed /task (nothing to report) from failed stats (the task is still known) by
 * ecs_poll.failed, never by the reason's text.
 */
#include "ecsmeta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct ecs_client;

struct ecs_pending {
    struct ecs_client *client; /* NULL once detached: the cb must never run then */
    ecs_poll_cb cb;
    void *arg;
    uint32_t refs; /* fetches not answered yet, plus one while ecs_client_poll() runs */
    struct ecs_poll poll;
    char task_why[224]; /* "GET /task: ..." when that GET failed */
    char stats_why[224];
};

struct ecs_client {
    rmr_instance_t *ins;
    char *task_url;
    char *stats_url;
    uint32_t timeout_ms;
    struct ecs_pending *pending; /* the poll in flight, or NULL */
};

static void poll_release(struct ecs_poll *poll)
{
    ecs_task_free(&poll->task);
    ecs_stats_set_free(&poll->stats);
}

/* Appends s to the NUL-terminated buf, cut to its capacity. */
static void append(char *buf, size_t cap, const char *s)
{
    size_t used = strlen(buf), n = strlen(s);
    if (used + 1 >= cap)
        return;
    if (n > cap - 1 - used)
        n = cap - 1 - used;
    memcpy(buf + used, s, n);
    buf[used + n] = '\0';
}

/* The poll's summary, from its two GETs: a failed /task outranks failed stats, so the answer
 * does not depend on which came first. */
static void poll_summarize(struct ecs_pending *p)
{
    struct ecs_poll *poll = &p->poll;
    const struct ecs_poll_get *first;
    if (poll->failed & ECS_POLL_TASK)
        first = &poll->task_get;
    else if (poll->failed & ECS_POLL_STATS)
        first = &poll->stats_get;
    else
        return;
    poll->error = first->error;
    poll->http_status = first->http_status;
    poll->reason[0] = '\0';
    append(poll->reason, sizeof poll->reason, p->task_why);
    if (p->task_why[0] != '\0' && p->stats_why[0] != '\0')
        append(poll->reason, sizeof poll->reason, "; ");
    append(poll->reason, sizeof poll->reason, p->stats_why);
}

static void pending_unref(struct ecs_pending *p)
{
    if (--p->refs > 0)
        return;
    struct ecs_client *c = p->client;
    if (c != NULL) {
        c->pending = NULL; /* before cb: it may poll again or free the client */
        poll_summarize(p);
        p->cb(p->arg, &p->poll);
    }
    poll_release(&p->poll);
    free(p);
}

/* Records one GET's answer and parses its body when it went well. A parser that refuses
 * leaves its document empty, so a failed document never needs a free. */
static void take(struct ecs_pending *p, const struct rmr_response *resp, int is_stats)
{
    struct ecs_poll *poll = &p->poll;
    struct ecs_poll_get *g = is_stats ? &poll->stats_get : &poll->task_get;
    char *why = is_stats ? p->stats_why : p->task_why;
    size_t whylen = is_stats ? sizeof p->stats_why : sizeof p->task_why;
    const char *path = is_stats ? "/task/stats" : "/task";
    char perr[200];
    if (p->client == NULL)
        return; /* detached: nobody will read it */
    g->http_status = resp->error != 0 ? 0 : resp->status;
    if (resp->error != 0) {
        g->error = resp->error;
        snprintf(why, whylen, "GET %s: %s", path, rmr_strerror(resp->error));
    } else if (resp->status != 200) {
        g->error = RMR_EIO;
        snprintf(why, whylen, "GET %s: HTTP %d", path, (int)resp->status);
    } else {
        perr[0] = '\0';
        if (is_stats)
            g->error = ecs_stats_parse(resp->body, resp->body_len, &poll->stats, &poll->bad_entries,
                                       perr, sizeof perr);
        else
            g->error = ecs_task_parse(resp->body, resp->body_len, &poll->task, perr, sizeof perr);
        if (g->error != 0)
            snprintf(why, whylen, "GET %s: %s", path, perr);
    }
    if (g->error != 0)
        poll->failed |= is_stats ? ECS_POLL_STATS : ECS_POLL_TASK;
}

static void on_task(rmr_instance_t *ins, void *arg, const struct rmr_response *resp)
{
    struct ecs_pending *p = arg;
    take(p, resp, 0);
    pending_unref(p);
}

static void on_stats(rmr_instance_t *ins, void *arg, const struct rmr_response *resp)
{
    struct ecs_pending *p = arg;
    take(p, resp, 1);
    pending_unref(p);
}

static char *url_join(const char *base, size_t len, const char *path)
{
    size_t plen = strlen(path);
    char *u = malloc(len + plen + 1);
    if (u != NULL) {
        memcpy(u, base, len);
        memcpy(u + len, path, plen + 1);
    }
    return u;
}

struct ecs_client *ecs_client_new(rmr_instance_t *ins, const char *base, uint32_t timeout_ms)
{
    if (ins == NULL || base == NULL)
        return NULL;
    if (strncasecmp(base, "http://", 7) != 0 && strncasecmp(base, "https://", 8) != 0)
        return NULL;
    size_t scheme = base[4] == ':' ? 7 : 8;
    size_t len = strlen(base);
    while (len > scheme && base[len - 1] == '/')
        len--;
    if (len == scheme)
        return NULL; /* no host */
    struct ecs_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->ins = ins;
    c->timeout_ms = timeout_ms;
    c->task_url = url_join(base, len, "/task");
    c->stats_url = url_join(base, len, "/task/stats");
    if (c->task_url == NULL || c->stats_url == NULL) {
        ecs_client_free(c);
        return NULL;
    }
    return c;
}

int ecs_client_poll(struct ecs_client *c, ecs_poll_cb cb, void *arg)
{
    if (c == NULL || cb == NULL)
        return RMR_EINVAL;
    if (c->pending != NULL)
        return RMR_EAGAIN;
    struct ecs_pending *p = calloc(1, sizeof *p);
    if (p == NULL)
        return RMR_ENOMEM;
    p->client = c;
    p->cb = cb;
    p->arg = arg;
    p->refs = 1;
    c->pending = p;

    struct rmr_fetch_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.struct_size = sizeof spec;
    spec.method = "GET";
    spec.timeout_ms = c->timeout_ms;
    spec.url = c->task_url;
    p->refs++;
    int rc = rmr_http_fetch(c->ins, &spec, on_task, p);
    if (rc != 0) {
        p->refs--;
        goto fail;
    }
    spec.url = c->stats_url;
    p->refs++;
    rc = rmr_http_fetch(c->ins, &spec, on_stats, p);
    if (rc != 0) {
        p->refs--;
        goto fail;
    }
    pending_unref(p);
    return 0;

fail:
    /* The /task fetch may be running: detached, the poll frees itself when it answers. */
    c->pending = NULL;
    p->client = NULL;
    pending_unref(p);
    return rc;
}

void ecs_client_free(struct ecs_client *c)
{
    if (c == NULL)
        return;
    if (c->pending != NULL)
        c->pending->client = NULL;
    free(c->task_url);
    free(c->stats_url);
    free(c);
}
