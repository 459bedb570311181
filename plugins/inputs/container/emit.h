/* The container input's rendering: normalized samples (source.h) into Datakit's
 * docker_containers measurement, as a metric and as an object, labelled RMR_SCHEMA_GUANCE.
 * Names live in tables in emit.c; nothing here knows which platform the samples came from. */
#ifndef REMORA_CONTAINER_EMIT_H
#define REMORA_CONTAINER_EMIT_H

#include <stdint.h>

#include <remora/plugin.h>

#include "source.h"

/* The measurement and object class, as Datakit names them on every runtime. */
#define CTR_MEASUREMENT "docker_containers"

/* Platform tags beyond this many per container are left out (Datakit's ECS and k8s sources
 * have at most a handful). */
#define CTR_MAX_PLATFORM_TAGS 16u
/* An object's message (the JSON of its tags and fields) longer than this is left out and
 * counted as fields_dropped{reason="message_too_long"}. */
#define CTR_MESSAGE_MAX_BYTES 65536u

struct ctr_emit_count {
    uint32_t metrics; /* records added */
    uint32_t objects;
};

/* Renders every sample into one batch labelled RMR_SCHEMA_GUANCE (per sample: the metric,
 * then the object) and emits it. Samples are borrowed. Loop thread.
 * Returns 0, or the first error: RMR_ENOMEM when the batch could not be made, an add's error
 * (the records added before it are still emitted), or rmr_emit()'s error (the host counted
 * the dropped records). *count says what went into the batch. */
int ctr_emit_guance(rmr_instance_t *ins, const struct ctr_sample *samples, uint32_t n,
                    struct ctr_emit_count *count);

#endif
