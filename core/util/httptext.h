/* core/util/httptext: what HTTP allows in a header name or method (RFC 9110 token) and in a
 * field value, shared by the agent's server and the fake host so both refuse the same
 * answers (no libuv). Thread: any. */
#ifndef REMORA_CORE_HTTPTEXT_H
#define REMORA_CORE_HTTPTEXT_H

/* 1 when s is a non-empty token: visible ASCII without delimiters. */
int http_is_token(const char *s);
/* 1 when s holds no control bytes but HTAB (no CR or LF: no header injection). */
int http_is_field_value(const char *s);

#endif
