/* plugins/lib/ecsmeta: the ECS task metadata endpoint (v4, v3) for in-tree plugins.
 *
 * One home for what every ECS plugin needs (ecs_fargate, container):
 *   - parsing /task and /task/stats (jansson) into plain structs, tolerant of what real
 *     responses do (null stats entries, missing networks, blkio arrays that are [] or null or
 *     the string "None", Read/read op names, unlimited-memory sentinels, Revision as a string);
 *   - the formulas, computed once (CPU % with Datadog's guard, working set, block I/O sums,
 *     limits with the task's as fallback, rates between two polls with counter resets skipped);
 *   - a client that GETs /task and /task/stats through the host's HTTP client.
 * Parsing and formulas are pure (no host calls), so they are unit-tested and fuzzed directly.
 * Sources of every rule: ../shared/reference/PROTOCOLS.md sections 1 and 2.
 */
#ifndef REMORA_PLUGINS_ECSMETA_H
#define REMORA_PLUGINS_ECSMETA_H

#include <stddef.h>
#include <stdint.h>

#include <remora/plugin.h>

/* Bounds on what one document may make us hold; entries beyond them are ignored (stats entries
 * are counted in *nbad). ECS allows 10 containers per task definition. */
#define ECS_MAX_CONTAINERS 128 /* "Containers" elements, and /task/stats entries */
#define ECS_MAX_LABELS     256 /* "Labels" per container */
#define ECS_MAX_IFACES     16  /* "networks" per stats entry */
/* The most tags ecs_task_tags() and ecs_container_tags() give. */
#define ECS_TASK_TAGS_MAX      7
#define ECS_CONTAINER_TAGS_MAX 7

/* Parses an RFC 3339 time as the endpoint writes it (Go's RFC3339Nano:
 * "2023-06-20T01:19:45.077342978Z", an offset "+09:00" instead of "Z" allowed; digits past
 * the ninth of the fraction ignored), strictly and without the locale. s is not NUL-terminated.
 * Returns 1 and sets *ns (since the epoch), or 0 and sets *ns to 0 when malformed, and for
 * Docker's zero time "0001-01-01T00:00:00Z" (or anything else int64 ns cannot hold). */
int ecs_time_parse(const char *s, size_t n, int64_t *ns);

/* ---- /task ----------------------------------------------------------------------------------- */

/* Strings are NUL-terminated copies. Those not marked "NULL when absent" are never NULL: ""
 * when the document lacks them (or has another JSON type there); region is NULL when neither
 * the ARN nor the AZ gives one ("us-west-2d" gives "us-west-2"). Containers that are not JSON
 * objects are skipped. */

struct ecs_label {
    char *key;
    char *value;
};

struct ecs_container {
    char *docker_id;          /* "DockerId" */
    char *name;               /* "Name" (task-definition name) */
    char *docker_name;        /* "DockerName" */
    char *image;              /* "Image", full reference */
    char *image_id;           /* "ImageID" */
    char *type;               /* "Type"; NULL when absent */
    char *known_status;       /* "KnownStatus" */
    char *desired_status;     /* "DesiredStatus" */
    int64_t created_ns;       /* "CreatedAt", ns since the epoch; 0 when absent or unparsable */
    int64_t started_ns;       /* "StartedAt" */
    double cpu_units;         /* "Limits.CPU" in CPU units (1024 = 1 vCPU); 0 when absent */
    int64_t mem_mib;          /* "Limits.Memory" in MiB; 0 when absent */
    struct ecs_label *labels; /* "Labels", in document order */
    uint32_t nlabels;
    int normal; /* 1: a task-definition container (Type NORMAL or absent, and not the
                 * "~internal~ecs~pause" container); 0: internal, skipped by every plugin */
};

struct ecs_task {
    char *cluster;           /* "Cluster": an ARN on Fargate, a short name on EC2 */
    char *cluster_name;      /* the part after the last "cluster/" (or cluster itself) */
    char *task_arn;          /* "TaskARN" */
    char *task_id;           /* the part after the last '/' of the ARN */
    char *family;            /* "Family" */
    char *revision;          /* "Revision" as text (a string on the wire; a number tolerated) */
    char *known_status;      /* "KnownStatus" */
    char *desired_status;    /* "DesiredStatus" */
    char *availability_zone; /* "AvailabilityZone"; NULL when absent */
    char *region;            /* from the task ARN (arn:aws:ecs:<region>:...), else from the AZ */
    char *launch_type;       /* "LaunchType"; NULL when absent */
    double cpu_vcpus;        /* task "Limits.CPU" in vCPUs; 0 when absent */
    int64_t mem_mib;         /* task "Limits.Memory" in MiB; 0 when absent */
    int has_ephemeral;       /* "EphemeralStorageMetrics" present */
    int64_t ephemeral_utilized_mib;
    int64_t ephemeral_reserved_mib;
    struct ecs_container *containers;
    uint32_t ncontainers;
    uint32_t missing; /* ECS_TASK_MISSING_* bits: anchors the document lacked */
};

/* Bits of ecs_task.missing. A JSON object that lacks one of these is still a task (Datadog's
 * check calls a /task without Cluster or Containers a WARNING, not a failure): the string is
 * "" and there are no containers, and each plugin decides how loud to be about it. */
#define ECS_TASK_MISSING_ARN        0x1u /* no "TaskARN" string, or an empty one */
#define ECS_TASK_MISSING_CLUSTER    0x2u /* no "Cluster" string, or an empty one */
#define ECS_TASK_MISSING_CONTAINERS 0x4u /* no "Containers" array ([] is not missing) */

/* Parses a /task (or /taskWithTags) body. Returns 0 (with ecs_task.missing saying what the
 * document lacked), or RMR_EINVAL with a one-line reason in err when the body is not JSON or
 * not a JSON object, or RMR_ENOMEM; on error *out is empty and needs no free. */
int ecs_task_parse(const char *json, size_t len, struct ecs_task *out, char *err, size_t errlen);
void ecs_task_free(struct ecs_task *t);
/* Writes the document's names of the ECS_TASK_MISSING_* bits in missing, in bit order and
 * joined by ", " ("Cluster, Containers"), NUL-terminated; a name that does not fit in len is
 * left out whole (and those after it). "" for none. buf may be NULL (nothing written). */
void ecs_task_missing_text(uint32_t missing, char *buf, size_t len);
/* The container with this DockerId, or NULL. */
const struct ecs_container *ecs_task_container(const struct ecs_task *t, const char *docker_id);
/* The value of a label, or NULL. */
const char *ecs_container_label(const struct ecs_container *c, const char *key);

/* ---- /task/stats ----------------------------------------------------------------------------- */

/* Bits of ecs_stats.mem_has: which memory_stats.stats keys the document had (values at or
 * above the cgroup "no value" mark 0x7FFFFFFFFFFFF000 count as absent). */
enum ecs_mem_key {
    ECS_MEM_CACHE = 0,
    ECS_MEM_RSS,
    ECS_MEM_MAPPED_FILE,
    ECS_MEM_ACTIVE_ANON,
    ECS_MEM_ACTIVE_FILE,
    ECS_MEM_INACTIVE_FILE,       /* cgroup v2 "inactive_file" or v1 "inactive_file" */
    ECS_MEM_TOTAL_INACTIVE_FILE, /* cgroup v1 "total_inactive_file" */
    ECS_MEM_TOTAL_RSS,           /* cgroup v1 "total_rss" */
    ECS_MEM_HIER_LIMIT,          /* "hierarchical_memory_limit" */
    ECS_MEM_HIER_MEMSW_LIMIT,    /* "hierarchical_memsw_limit" */
    ECS_MEM_PGPGIN,
    ECS_MEM_PGPGOUT,
    ECS_MEM_PGFAULT,
    ECS_MEM_PGMAJFAULT,
    ECS_MEM_ANON, /* cgroup v2 */
    ECS_MEM_FILE, /* cgroup v2 */
    ECS_MEM_NKEYS
};
/* The memory_stats.stats key for an enum ecs_mem_key ("cache", "total_inactive_file", ...). */
const char *ecs_mem_key_name(enum ecs_mem_key k);

struct ecs_iface {
    char name[32];
    uint64_t rx_bytes, rx_packets, rx_errors, rx_dropped;
    uint64_t tx_bytes, tx_packets, tx_errors, tx_dropped;
};

/* One container's entry of /task/stats. */
struct ecs_stats {
    char *docker_id;    /* the key in /task/stats */
    int present;        /* 0: the entry was JSON null (container not ready): nothing else is set */
    int64_t read_ns;    /* "read" */
    int64_t preread_ns; /* "preread"; 0 when absent or the zero time */
    /* cpu_stats / precpu_stats: cpu_usage.{total_usage, usage_in_usermode,
     * usage_in_kernelmode} and system_cpu_usage, in ns; 0 when absent */
    uint64_t cpu_total, cpu_user, cpu_kernel, system_cpu;
    uint64_t pre_cpu_total, pre_cpu_user, pre_cpu_kernel, pre_system_cpu;
    uint32_t online_cpus;   /* "online_cpus", else the count of non-zero percpu_usage; 0: none */
    uint32_t has_cpu;       /* cpu_stats.cpu_usage.total_usage present */
    uint32_t has_cpu_modes; /* usage_in_usermode and usage_in_kernelmode present in both
                             * cpu_stats and precpu_stats (absent on some Windows hosts) */
    uint64_t throttled_periods, throttled_time_ns;
    /* memory_stats */
    uint64_t mem_usage;
    uint64_t mem_max_usage; /* 0 when absent (cgroup v2) */
    uint64_t mem_limit;     /* 0 when absent or an unlimited sentinel (>= 2^62) */
    uint64_t mem_failcnt;
    uint32_t has_mem; /* memory_stats.usage present */
    uint32_t has_max_usage;
    uint32_t has_failcnt;
    uint32_t mem_has; /* bit (1u << enum ecs_mem_key) per key present */
    uint64_t mem[ECS_MEM_NKEYS];
    /* blkio_stats, summed over devices; op names compared case-insensitively */
    uint64_t io_read_bytes, io_write_bytes; /* io_service_bytes_recursive Read/Write */
    uint64_t io_read_ops, io_write_ops;     /* io_serviced_recursive Read/Write */
    uint32_t has_io;                        /* either array held at least one entry */
    /* networks, in document order; "lo" left out */
    struct ecs_iface *ifaces;
    uint32_t nifaces;
    uint32_t has_net_rate; /* "network_rate_stats" present */
    double rx_bytes_per_sec, tx_bytes_per_sec;
    uint64_t num_procs;
};

struct ecs_stats_set {
    struct ecs_stats *v;
    uint32_t n;
};

/* Parses a /task/stats body: an object of DockerId -> stats or null. A malformed entry (not an
 * object) is kept as not present and counted in *nbad when nbad is non-NULL. Returns 0, or
 * RMR_EINVAL with the reason in err when the body is not a JSON object. */
int ecs_stats_parse(const char *json, size_t len, struct ecs_stats_set *out, uint32_t *nbad,
                    char *err, size_t errlen);
void ecs_stats_set_free(struct ecs_stats_set *s);
const struct ecs_stats *ecs_stats_find(const struct ecs_stats_set *s, const char *docker_id);

/* ---- formulas ------------------------------------------------------------------------------- */

/* Every CPU formula below works within one stats document, over its own window from
 * precpu_stats (at preread) to cpu_stats (at read). None is computed (they return 0 and set
 * their outputs to 0) without CPU data (a null entry, no total_usage), with online_cpus 0
 * (Windows), without a real preread before read (Docker's first sample, whose precpu_stats is
 * all zeros), when system_cpu_usage did not advance, or when the counter went backwards (a
 * reset). A counter that did not move is an idle container: they return 1 with 0, as Datadog's
 * check (cpu_percent starts at 0.0 and is sent as is) and Datakit (0) do. */

/* The Docker CLI formula with Datadog's guard (PROTOCOLS.md 1.5): cpu_delta / system_delta *
 * online * 100 when system_delta > cpu_delta; when system_delta <= cpu_delta, cpu_delta /
 * (whole seconds between preread and read * 1e9) * 100 (not computed under one whole second).
 * Returns 1 and sets *pct, or 0. Not rounded. */
int ecs_cpu_percent(const struct ecs_stats *s, double *pct);
/* Fractions of total_usage as Metricbeat: cpu_delta / system_delta (norm) and that * online
 * (total). Returns 1 and sets them, or 0. Either pointer may be NULL. */
int ecs_cpu_fraction(const struct ecs_stats *s, double *total, double *norm);
/* The same of usage_in_usermode and of usage_in_kernelmode (Metricbeat's cpu.user.pct,
 * cpu.user.norm.pct, cpu.kernel.pct, cpu.kernel.norm.pct). Also 0 without has_cpu_modes. */
int ecs_cpu_user_fraction(const struct ecs_stats *s, double *pct, double *norm);
int ecs_cpu_kernel_fraction(const struct ecs_stats *s, double *pct, double *norm);
/* usage - total_inactive_file (v1) or - inactive_file (v2) when that is below usage, else
 * usage. 0 when has_mem is 0. */
uint64_t ecs_working_set(const struct ecs_stats *s);
/* The memory limit in bytes: memory_stats.limit when set, else the container's Limits.Memory,
 * else the task's Limits.Memory (MiB * 1048576); 0 when none. c and t may be NULL. */
uint64_t ecs_mem_limit(const struct ecs_stats *s, const struct ecs_container *c,
                       const struct ecs_task *t);

/* Per-second rate of a cumulative counter between two samples: (cur - prev) / dt_s. Returns 1
 * and sets *rate, or 0 when dt_ns <= 0 or the counter went backwards (a reset: the sample is
 * skipped). */
int ecs_rate(uint64_t prev, uint64_t cur, int64_t dt_ns, double *rate);

/* ---- tags ------------------------------------------------------------------------------------ */

/* Splits an image reference "registry:5000/repo/name:tag@sha256:..." into image_name (without
 * tag and digest: "registry:5000/repo/name"), short_image (the last path part: "name") and
 * image_tag ("tag", or "latest" when there is no tag and no digest; empty with a digest only).
 * Writes NUL-terminated strings into the buffers (truncated to their size). */
void ecs_image_split(const char *image, char *name, size_t name_len, char *short_name,
                     size_t short_len, char *tag, size_t tag_len);

/* Datadog-named task-wide tags (PROTOCOLS.md 2.1): ecs_cluster_name, task_arn, task_family,
 * task_name (the family), task_version, availability-zone, region; those the task lacks are
 * left out. Values point into t. Returns the count (at most cap). */
uint32_t ecs_task_tags(const struct ecs_task *t, struct rmr_tag *out, uint32_t cap);
/* Datadog-named container tags: container_name, ecs_container_name (both the task-definition
 * Name), container_id, docker_image (full reference), image_name, short_image, image_tag.
 * Values point into c or into buf (image parts); buf of 512 bytes is enough for any image
 * reference up to 256 bytes. Returns the count (at most cap). */
uint32_t ecs_container_tags(const struct ecs_container *c, struct rmr_tag *out, uint32_t cap,
                            char *buf, size_t buflen);
/* Publishes a task for every record the sidecar ships: rmr_global_tags_set() with the task
 * tags, rmr_tagger_set() for each normal container (keyed by DockerId) with its container tags
 * plus the task tags, and forgets containers that prev had and t has not (prev may be NULL).
 * A host older than ABI 1.2 is skipped silently. Returns 0 or the first host error. */
int ecs_publish_tags(rmr_instance_t *ins, const struct ecs_task *t, const struct ecs_task *prev);

/* ---- the client ------------------------------------------------------------------------------ */

/* Bits of ecs_poll.failed: which GET failed (unreachable, timed out, cancelled, a status
 * other than 200, or a body its parser refused). */
#define ECS_POLL_TASK  0x1u /* GET <base>/task */
#define ECS_POLL_STATS 0x2u /* GET <base>/task/stats */

/* How one GET of a poll ended. */
struct ecs_poll_get {
    int error;       /* 0, or RMR_E*: the fetch's error (RMR_ETIMEDOUT, RMR_ECANCELED when the
                      * instance stopped first ...), RMR_EIO for a status other than 200, the
                      * parser's RMR_EINVAL (or RMR_ENOMEM) */
    int http_status; /* the answer's status; 0 when none came (network errors) */
};

/* What one poll gives. Each GET is judged on its own: a document is parsed and handed out
 * whenever its own GET went well, whatever became of the other. */
struct ecs_poll {
    int error;            /* 0 when both went well; else /task's error when /task failed, else
                           * /task/stats's (a failed /task outranks the stats, whichever
                           * answered first) */
    int http_status;      /* that GET's status, 0 for network errors */
    char reason[256];     /* when error != 0, one line per failed GET, /task's first, joined by
                           * "; " ("GET /task: timed out; GET /task/stats: HTTP 500") */
    struct ecs_task task; /* valid unless failed has ECS_POLL_TASK (then empty) */
    struct ecs_stats_set stats;    /* valid unless failed has ECS_POLL_STATS (then empty) */
    uint32_t bad_entries;          /* stats entries that were not objects */
    uint32_t failed;               /* ECS_POLL_TASK | ECS_POLL_STATS: the GETs that failed */
    struct ecs_poll_get task_get;  /* how GET /task ended */
    struct ecs_poll_get stats_get; /* how GET /task/stats ended */
};

/* Called on the loop thread when both GETs are done (or failed). The poll is borrowed for the
 * call; ownership of task and stats may be taken by zeroing them (an empty one is harmless
 * to take too). */
typedef void (*ecs_poll_cb)(void *arg, struct ecs_poll *poll);

struct ecs_client;

/* base: the metadata URI (ECS_CONTAINER_METADATA_URI_V4 or _URI); a trailing '/' is ignored.
 * timeout_ms bounds each GET. Returns NULL on bad arguments or no memory. */
struct ecs_client *ecs_client_new(rmr_instance_t *ins, const char *base, uint32_t timeout_ms);
/* GETs base/task and base/task/stats in parallel; cb runs once when both are done. Returns 0,
 * RMR_EAGAIN when a poll is still running, or the host's error (cb not called then). */
int ecs_client_poll(struct ecs_client *c, ecs_poll_cb cb, void *arg);
/* Frees the client. A poll in flight is abandoned: its cb never runs. */
void ecs_client_free(struct ecs_client *c);

/* The endpoint to use: the first non-empty of ECS_CONTAINER_METADATA_URI_V4 and
 * ECS_CONTAINER_METADATA_URI in the process environment, or NULL. Borrowed. */
const char *ecs_endpoint_from_env(void);
/* 1 when url starts with http:// or https:// (a metadata endpoint, configured or from the
 * environment, that the host's fetch can take), else 0. */
int ecs_endpoint_valid(const char *url);

#endif
