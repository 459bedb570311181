/* The container input's sources: where containers and their resource use come from.
 *
 * A source knows one platform (the ECS task metadata endpoint today; the Docker Engine API on
 * EC2 or the kubelet on EKS later) and turns what it reads into normalized samples: one
 * struct ctr_sample per container, with the container's identity (struct ctr_info) and its
 * resource use (struct ctr_stat) in units every source agrees on. emit.c renders samples into
 * Datakit's docker_containers metric and object without knowing which source made them, so a
 * new source is a new source_*.c and one line in container.c, never a change to emit.c.
 *
 * Threads: a source lives on the instance's loop thread; its callback runs there too.
 */
#ifndef REMORA_CONTAINER_SOURCE_H
#define REMORA_CONTAINER_SOURCE_H

#include <stdint.h>

#include <remora/plugin.h>

/* Who a container is. Every string is borrowed from the source for the duration of the poll
 * callback; NULL or "" means unknown, and the tag is left out. */
struct ctr_info {
    const char *id;              /* container_id: the runtime's id (ECS DockerId) */
    const char *name;            /* container_name: the orchestrator's name (ECS task-definition
                                  * Name, the k8s container name) */
    const char *runtime_name;    /* container_runtime_name: the runtime's name for it */
    const char *runtime;         /* container_runtime: "ecsfargate", later "docker", "containerd" */
    const char *runtime_version; /* container_runtime_version, NULL when the runtime has none */
    const char *type;            /* container_type: the runtime, or "kubernetes" for pods */
    const char *image;           /* image: the full reference "registry/repo/name:tag" */
    const char *image_name;      /* image_name: without tag and digest "registry/repo/name" */
    const char *image_short_name; /* image_short_name: the last path part "name" */
    const char *image_tag;        /* image_tag: "tag" */
    const char *state;            /* state: the platform's word ("RUNNING" on ECS) */
    int64_t created_ns;           /* ns since the epoch; 0 when unknown */
    int64_t started_ns;           /* ns since the epoch; 0 when unknown */
    /* Tags only this platform has, already named as Datakit names them (ECS:
     * aws_ecs_cluster_name, task_family, task_version, task_arn; k8s later: pod_name,
     * namespace). Borrowed like the strings. */
    const struct rmr_tag *platform_tags;
    uint32_t nplatform_tags;
};

/* Bits of ctr_stat.has: which groups of values the source could fill. A field whose group is
 * missing is left out of the records, never sent as 0. */
#define CTR_HAS_CPU   0x01u /* cpu_percent and cpu_millicores (0 when not computable, as Datakit) */
#define CTR_HAS_CPUS  0x02u /* online_cpus > 0 and cpu_base100 */
#define CTR_HAS_MEM   0x04u /* mem_working_set */
#define CTR_HAS_NET   0x08u /* net_rx_bytes and net_tx_bytes */
#define CTR_HAS_BLOCK 0x10u /* block_read_bytes and block_write_bytes */

/* What a container uses, as one sample of the runtime. Counters are cumulative since the
 * container started; rates, if ever wanted, are for the renderer to derive. */
struct ctr_stat {
    uint32_t has;         /* CTR_HAS_* */
    uint32_t online_cpus; /* CPUs the container may run on */
    int64_t time_ns;      /* when the runtime took the sample (wall clock); 0: unknown */
    double cpu_percent;   /* CPU use in % of one CPU (2 busy CPUs: 200) */
    int64_t cpu_millicores;
    double cpu_base100;       /* cpu_percent / online_cpus: 100 = every CPU busy */
    uint64_t mem_working_set; /* bytes: usage less inactive file cache */
    uint64_t net_rx_bytes;    /* this container's interfaces, loopback left out */
    uint64_t net_tx_bytes;
    uint64_t block_read_bytes;
    uint64_t block_write_bytes;
};

struct ctr_sample {
    struct ctr_info info;
    struct ctr_stat stat;
};

/* The outcome of one poll, borrowed for the duration of the callback. */
struct ctr_result {
    int error;              /* 0, or the RMR_E* of the failure (RMR_ECANCELED: stopping) */
    const char *error_kind; /* on error: a snake_case word for the poll_errors counter
                             * (timeout, http_error, bad_json, network, too_large, no_memory) */
    const char *reason;     /* on error: one line naming what failed and why */
    const struct ctr_sample *samples; /* containers that have stats, in platform order */
    uint32_t nsamples;
    uint32_t skipped_no_stats; /* containers without stats yet (null entry, not listed) */
    uint32_t bad_entries;      /* stats entries that were not understood */
    const char *incomplete;    /* NULL, or what the platform's answer lacked, one line ("the
                                * task metadata lacks Cluster"): the samples are what could
                                * be read without it */
};

/* Called once per successful ctr_source_ops.poll() on the loop thread. */
typedef void (*ctr_poll_cb)(void *arg, const struct ctr_result *res);

struct ctr_source_cfg {
    const char *endpoint; /* where the platform answers; borrowed for init only */
    uint32_t timeout_ms;  /* bounds each request */
};

struct ctr_source_ops {
    const char *name;    /* the `source` option's value: "ecs" */
    const char *runtime; /* what samples carry as container_runtime: "ecsfargate" */
    /* The endpoint this platform announces in the process environment (ECS:
     * ECS_CONTAINER_METADATA_URI_V4, then ECS_CONTAINER_METADATA_URI), or NULL when the
     * sidecar does not run there. `source = auto` takes the first source that detects one.
     * Borrowed; valid until the environment changes. */
    const char *(*detect)(void);
    /* Makes the source; no I/O. Returns 0 and sets *out (owned, free with free()), or
     * RMR_EINVAL (bad endpoint) or RMR_ENOMEM. */
    int (*init)(rmr_instance_t *ins, const struct ctr_source_cfg *cfg, void **out);
    /* Starts one poll; cb runs once, later (never inside poll). Returns 0, RMR_EAGAIN when a
     * poll is still running (cb not called for this one), or a host error (cb not called). */
    int (*poll)(void *src, ctr_poll_cb cb, void *arg);
    /* Frees the source; a poll in flight is abandoned and its cb never runs. NULL: no-op. */
    void (*free)(void *src);
};

/* ECS task metadata endpoint v4 (and v3) through plugins/lib/ecsmeta. */
extern const struct ctr_source_ops ctr_source_ecs;

#endif
