/* plugins/lib/ecsmeta: the client that GETs /task and /task/stats through the host.
 *
 * A poll lives in a heap object of its own (struct ecs_pending) rather than in the client:
 * the host answers every fetch exactly once, possibly after the client is gone (a fetch still
 * running when the plugin frees the client is answered later, at the latest with RMR_ECANCELED
 * when the instance stops). So ecs_client_free() only detaches the poll, and the poll frees
 * itself when its last fetch answers. Loop thread only, like the instance.
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

static void pending_unref(struct ecs_pending *p)
{
    if (--p->refs > 0)
        return;
    struct ecs_client *c = p->client;
    if (c != NULL) {
        c->pending = NULL; /* before cb: it may poll again or free the client */
        if (p->poll.error != 0)
            poll_release(&p->poll);
        p->cb(p->arg, &p->poll);
    }
    poll_release(&p->poll);
    free(p);
}

/* Records one answer: the first failure wins; a body is parsed only while all went well. */
static void take(struct ecs_pending *p, const char *path, const struct rmr_response *resp,
                 int is_stats)
{
    struct ecs_poll *poll = &p->poll;
    char why[200];
    if (p->client == NULL || poll->error != 0)
        return;
    if (resp->error != 0) {
        poll->error = resp->error;
        poll->http_status = 0;
        snprintf(poll->reason, sizeof poll->reason, "GET %s: %s", path, rmr_strerror(resp->error));
        return;
    }
    if (resp->status != 200) {
        poll->error = RMR_EIO;
        poll->http_status = resp->status;
        snprintf(poll->reason, sizeof poll->reason, "GET %s: HTTP %d", path, (int)resp->status);
        return;
    }
    why[0] = '\0';
    int rc = is_stats ? ecs_stats_parse(resp->body, resp->body_len, &poll->stats,
                                        &poll->bad_entries, why, sizeof why)
                      : ecs_task_parse(resp->body, resp->body_len, &poll->task, why, sizeof why);
    if (rc != 0) {
        poll->error = rc;
        poll->http_status = resp->status;
        snprintf(poll->reason, sizeof poll->reason, "GET %s: %s", path, why);
    }
}

static void on_task(rmr_instance_t *ins, void *arg, const struct rmr_response *resp)
{
    struct ecs_pending *p = arg;
    take(p, "/task", resp, 0);
    pending_unref(p);
}

static void on_stats(rmr_instance_t *ins, void *arg, const struct rmr_response *resp)
{
    struct ecs_pending *p = arg;
    take(p, "/task/stats", resp, 1);
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
