/* core/delivery: per output, a queue of encoded payloads bounded in bytes, and the transports
 * that deliver them. This transport writes to local files and standard output with
 * uv_fs (off the loop thread); HTTP joins with the courier.
 * Thread: the loop thread. */
#ifndef REMORA_CORE_DELIVERY_H
#define REMORA_CORE_DELIVERY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct rmr_instance;

/* An encoded payload ready for delivery. Owned by whoever holds it; payload_free releases. */
struct payload {
    struct payload *next;
    char *endpoint;
    char *content_type;
    uint32_t compression;
    uint32_t record_kind;
    uint32_t nrecords;
    uint32_t reserved_;
    unsigned char *body;
    size_t len;
};

void payload_free(struct payload *p);

struct delivery {
    uv_loop_t *loop;
    struct rmr_instance *ins; /* for counters and logs */
    struct payload *head;
    struct payload *tail;
    size_t bytes;
    uint32_t count;
    int busy; /* a write is in flight */
    size_t limit_bytes;
    /* file transport */
    char *file_path; /* the open file, NULL when none */
    uv_file fd;
    int fd_owned;
    size_t written; /* bytes of head already written */
    uv_fs_t req;
    uv_buf_t buf;
};

void delivery_init(struct delivery *d, uv_loop_t *loop, struct rmr_instance *ins,
                   size_t limit_bytes);
/* Queues p (takes ownership, also on failure). Errors: RMR_EFULL when the queue's byte bound
 * would be exceeded (p is freed and its records counted as dropped by the caller). */
int delivery_push(struct delivery *d, struct payload *p);
int delivery_idle(const struct delivery *d);
/* Frees queued payloads (counted as dropped "shutdown") and closes files. Synchronous close:
 * called at exit only. */
void delivery_release(struct delivery *d);

#endif
