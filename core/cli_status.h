/* core/cli_status: `remora status` and `remora health` against a running agent. */
#ifndef REMORA_CORE_CLI_STATUS_H
#define REMORA_CORE_CLI_STATUS_H

/* Prints the agent's /v1/status as tables (or as JSON with json = 1). listen is the agent's
 * http_listen address. Returns 0, or 1 when the agent cannot be reached. */
int cli_status(const char *listen, int json);
/* Prints one line and returns 0 when every output is ok or retrying, 1 otherwise (an output
 * halted, the agent stopping or unreachable). */
int cli_health(const char *listen);

#endif
