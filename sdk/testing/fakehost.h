/* remora SDK testing: a fake host for plugin unit tests.
 *
 * It implements the host table without libuv or threads: timers fire only when the test
 * advances the fake clock, emitted batches are kept for inspection, encode() runs inline and
 * its payloads are kept, rmr_work() runs the function and its done callback inline. Link with
 * libremora-testing.a. Single-threaded; one fake host per test is typical.
 */
#ifndef REMORA_FAKEHOST_H
#define REMORA_FAKEHOST_H

#include <stddef.h>
#include <stdint.h>

#include <remora/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rmr_fakehost;

/* Starts with wall clock 2026-01-01T00:00:00Z and monotonic clock 1 s. Returns owned, or NULL. */
struct rmr_fakehost *rmr_fakehost_new(void);
/* Destroys every instance still alive, then frees. NULL is a no-op. */
void rmr_fakehost_free(struct rmr_fakehost *fh);

/* Creates an instance of desc from config text in INI key = value lines (the body of its
 * section; '#' and ';' comments). Checks the descriptor like the loader does, fills the config
 * struct from the schema (defaults, types, required keys), and calls create().
 * On error returns RMR_EABI / RMR_ECONFIG / the plugin's error, with a message in err. */
int rmr_fakehost_create(struct rmr_fakehost *fh, const struct rmr_plugin *desc,
                        const char *config_text, rmr_instance_t **out, char *err, size_t errlen);
int rmr_fakehost_start(struct rmr_fakehost *fh, rmr_instance_t *ins);
/* Calls stop(); returns its result (RMR_EINPROGRESS until rmr_stop_done() was called). */
int rmr_fakehost_stop(struct rmr_fakehost *fh, rmr_instance_t *ins);
int rmr_fakehost_stop_finished(struct rmr_fakehost *fh, rmr_instance_t *ins);
/* Calls destroy() and forgets the instance. */
void rmr_fakehost_destroy(struct rmr_fakehost *fh, rmr_instance_t *ins);

/* Moves both clocks forward by ms, firing due timers in time order. */
void rmr_fakehost_advance(struct rmr_fakehost *fh, uint64_t ms);
void rmr_fakehost_set_wall_ns(struct rmr_fakehost *fh, int64_t wall_ns);
/* What rmr_hostname() answers (copied); "fakehost" by default. */
void rmr_fakehost_set_hostname(struct rmr_fakehost *fh, const char *hostname);

/* Schemas that rmr_schema_wanted() reports as wanted (NULL-terminated; copied). */
void rmr_fakehost_want_schemas(struct rmr_fakehost *fh, const char *const *schemas);
/* Makes the next emits fail with RMR_EFULL (1) or succeed again (0). */
void rmr_fakehost_set_full(struct rmr_fakehost *fh, int full);

/* Batches emitted so far, oldest first; borrowed until clear or free. As in the agent, records
 * emitted with time_ns 0 carry the fake wall clock of the emit. */
uint32_t rmr_fakehost_emitted_count(const struct rmr_fakehost *fh);
const rmr_batch_t *rmr_fakehost_emitted(const struct rmr_fakehost *fh, uint32_t index);
void rmr_fakehost_clear_emitted(struct rmr_fakehost *fh);

/* A fresh batch for feeding an output's encode(); owned by the caller (rmr_batch_free). */
rmr_batch_t *rmr_fakehost_batch_new(struct rmr_fakehost *fh, const char *schema);
/* Runs the output instance's encode() on the batches; payloads are kept (compressed as asked). */
int rmr_fakehost_encode(struct rmr_fakehost *fh, rmr_instance_t *ins,
                        const rmr_batch_t *const *batches, uint32_t nbatches);

struct rmr_fakehost_payload {
    struct rmr_payload_spec spec; /* endpoint and content_type point into the fake host */
    const unsigned char *body;    /* as committed (compressed when the spec asked) */
    size_t len;
    uint32_t nrecords;
};
uint32_t rmr_fakehost_payload_count(const struct rmr_fakehost *fh);
const struct rmr_fakehost_payload *rmr_fakehost_payload(const struct rmr_fakehost *fh,
                                                        uint32_t index);
void rmr_fakehost_clear_payloads(struct rmr_fakehost *fh);

/* A counter of an instance (rmr_counter_add, encoder drops as "records_dropped"); reason may
 * be NULL. 0 when never counted. */
uint64_t rmr_fakehost_counter(const struct rmr_fakehost *fh, rmr_instance_t *ins, const char *name,
                              const char *reason);
/* Registers a stat that rmr_stats_foreach() reports (copied; the same instance, name, reason
 * and record kind again replaces the value), for self-monitoring inputs. The fake host reports
 * only registered stats, not the instances' own counters. */
void rmr_fakehost_add_stat(struct rmr_fakehost *fh, const struct rmr_stat *stat);
/* Sets what rmr_process_stats() reports (copied). */
void rmr_fakehost_set_process_stats(struct rmr_fakehost *fh, const struct rmr_process_stats *ps);

/* Log lines so far, formatted "LEVEL message"; borrowed. */
uint32_t rmr_fakehost_log_count(const struct rmr_fakehost *fh);
const char *rmr_fakehost_log(const struct rmr_fakehost *fh, uint32_t index);

#ifdef __cplusplus
}
#endif
#endif
