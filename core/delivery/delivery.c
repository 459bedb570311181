#include "delivery/delivery.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <remora/plugin.h>

#include "agent.h"
#include "self/log.h"

void payload_free(struct payload *p)
{
    if (p == NULL)
        return;
    free(p->endpoint);
    free(p->content_type);
    free(p->body);
    free(p);
}

void delivery_init(struct delivery *d, uv_loop_t *loop, struct rmr_instance *ins,
                   size_t limit_bytes)
{
    memset(d, 0, sizeof *d);
    d->loop = loop;
    d->ins = ins;
    d->limit_bytes = limit_bytes;
    d->fd = -1;
}

static void kick(struct delivery *d);

static void pop_head(struct delivery *d, const char *drop_reason)
{
    struct payload *p = d->head;
    d->head = p->next;
    if (d->head == NULL)
        d->tail = NULL;
    d->bytes -= p->len;
    d->count--;
    d->written = 0;
    if (drop_reason == NULL) {
        counter_add(d->ins, "records_out", NULL, NULL, p->nrecords);
        counter_add(d->ins, "payloads_out", NULL, NULL, 1);
        counter_add(d->ins, "bytes_out", NULL, NULL, p->len);
    } else {
        counter_add(d->ins, "records_dropped", drop_reason, NULL, p->nrecords);
    }
    payload_free(p);
}

static void on_write(uv_fs_t *req)
{
    struct delivery *d = req->data;
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    d->busy = 0;
    if (res < 0) {
        log_write(RMR_LOG_ERROR, d->ins->ci->name, "cannot write to '%s': %s",
                  d->file_path ? d->file_path : "-", uv_strerror((int)res));
        /* A local write error (disk full, closed pipe) is not transient enough to retry
         * forever without a spool; the payload is dropped and counted. */
        pop_head(d, "write_error");
    } else {
        d->written += (size_t)res;
        if (d->written >= d->head->len)
            pop_head(d, NULL);
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
        log_write(RMR_LOG_ERROR, d->ins->ci->name, "cannot open '%s': %s", d->file_path,
                  uv_strerror((int)res));
        free(d->file_path);
        d->file_path = NULL;
        pop_head(d, "write_error");
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

static void kick(struct delivery *d)
{
    while (!d->busy && d->head != NULL) {
        struct payload *p = d->head;
        if (strncmp(p->endpoint, "file:", 5) != 0) {
            log_write(RMR_LOG_ERROR, d->ins->ci->name,
                      "cannot deliver to '%s': no transport for this endpoint in this build",
                      p->endpoint);
            pop_head(d, "no_transport");
            continue;
        }
        int rc = open_target(d, p->endpoint + 5);
        if (rc == 0)
            return;
        if (rc < 0) {
            log_write(RMR_LOG_ERROR, d->ins->ci->name, "cannot open '%s': %s", p->endpoint + 5,
                      uv_strerror(rc));
            free(d->file_path);
            d->file_path = NULL;
            pop_head(d, "write_error");
            continue;
        }
        if (p->len == 0) {
            pop_head(d, NULL);
            continue;
        }
        d->buf = uv_buf_init((char *)p->body + d->written, (unsigned)(p->len - d->written));
        d->req.data = d;
        rc = uv_fs_write(d->loop, &d->req, d->fd, &d->buf, 1, -1, on_write);
        if (rc < 0) {
            log_write(RMR_LOG_ERROR, d->ins->ci->name, "cannot write to '%s': %s", d->file_path,
                      uv_strerror(rc));
            pop_head(d, "write_error");
            continue;
        }
        d->busy = 1;
    }
}

int delivery_push(struct delivery *d, struct payload *p)
{
    if (d->limit_bytes != 0 && d->bytes + p->len > d->limit_bytes && d->head != NULL) {
        payload_free(p);
        return RMR_EFULL;
    }
    p->next = NULL;
    if (d->tail != NULL)
        d->tail->next = p;
    else
        d->head = p;
    d->tail = p;
    d->bytes += p->len;
    d->count++;
    kick(d);
    return 0;
}

int delivery_idle(const struct delivery *d)
{
    return d->head == NULL && !d->busy;
}

void delivery_release(struct delivery *d)
{
    while (d->head != NULL)
        pop_head(d, "shutdown");
    if (d->fd_owned && d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    free(d->file_path);
    d->file_path = NULL;
}
