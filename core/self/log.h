/* core/self/log: the agent's log sink (standard error), text or JSON lines, with identical
 * messages rate-limited. A process-wide singleton: the one named mutable global of the core,
 * guarded by a mutex because workers may log. */
#ifndef REMORA_CORE_LOG_H
#define REMORA_CORE_LOG_H

#include <stdarg.h>
#include <stdint.h>

#include <remora/plugin.h>

/* level: enum rmr_log_level; json: 0 text, 1 JSON lines; rate_limit_ms: identical messages
 * (same subject and text) are written at most once per window, then a count of the suppressed. */
void log_configure(uint32_t level, int json, int64_t rate_limit_ms);
int log_enabled(uint32_t level);
/* subject: "input.dk", "agent", ... (borrowed). Thread: any. */
__attribute__((format(printf, 3, 0))) void log_writev(uint32_t level, const char *subject,
                                                      const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4))) void log_write(uint32_t level, const char *subject,
                                                     const char *fmt, ...);

#define log_error(...) log_write(RMR_LOG_ERROR, "agent", __VA_ARGS__)
#define log_warn(...)  log_write(RMR_LOG_WARN, "agent", __VA_ARGS__)
#define log_info(...)  log_write(RMR_LOG_INFO, "agent", __VA_ARGS__)
#define log_debug(...) log_write(RMR_LOG_DEBUG, "agent", __VA_ARGS__)

#endif
