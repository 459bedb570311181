/* core/agent_run: what main.c needs of the agent's lifecycle. Loop thread. */
#ifndef REMORA_CORE_AGENT_RUN_H
#define REMORA_CORE_AGENT_RUN_H

#include <stdint.h>

struct agent;

/* Reads the configuration, loads plugins and, with want_instances, resolves and creates every
 * instance (no I/O yet). Errors are printed to stderr; returns 0 or an RMR_E* code. */
int agent_setup(struct agent *a, const char *config_path, char *const *envp, int want_instances);
/* Starts outputs then inputs and runs the loop until shutdown; returns the exit code. */
int agent_run(struct agent *a);
/* Begins a graceful shutdown, as SIGTERM does. */
void agent_stop(struct agent *a);
/* Frees everything; safe after a failed setup. */
void agent_release(struct agent *a);

#endif
