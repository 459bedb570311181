#include "util/httptext.h"

#include <string.h>
#include <strings.h>

int http_is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 32 || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch) != NULL)
            return 0;
    }
    return 1;
}

int http_is_field_value(const char *s)
{
    if (s == NULL)
        return 0;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 32 && ch != '\t') || ch == 127)
            return 0;
    }
    return 1;
}

void http_route_match_init(struct http_route_match *m, char *allow, size_t allow_cap)
{
    memset(m, 0, sizeof *m);
    m->best_score = -1;
    m->allow = allow;
    m->allow_cap = allow_cap;
    if (allow_cap > 0)
        allow[0] = '\0';
}

/* How well a route's path matches: -1 not at all, higher is more specific. */
static long route_score(const char *rpath, size_t rl, uint32_t flags, const char *path, size_t plen)
{
    if (plen == rl && memcmp(path, rpath, rl) == 0)
        return (long)(2 * rl + 1);
    if ((flags & RMR_ROUTE_PREFIX) == 0 || rl == 0)
        return -1;
    if (plen > rl && memcmp(path, rpath, rl) == 0 && (rpath[rl - 1] == '/' || path[rl] == '/'))
        return (long)(2 * rl);
    /* "/v1/write" for the prefix "/v1/write/": the directory itself. */
    if (rl > 1 && rpath[rl - 1] == '/' && plen == rl - 1 && memcmp(path, rpath, plen) == 0)
        return (long)(2 * plen);
    return -1;
}

int http_route_consider(struct http_route_match *m, const char *route_method,
                        const char *route_path, size_t route_len, uint32_t flags,
                        const char *method, const char *path, size_t path_len)
{
    long score = route_score(route_path, route_len, flags, path, path_len);
    if (score < 0)
        return 0;
    m->path_seen = 1;
    if (route_method != NULL && strcmp(route_method, method) != 0) {
        size_t n = strlen(route_method);
        if (m->allow_len + n + 3 < m->allow_cap && strstr(m->allow, route_method) == NULL) {
            if (m->allow_len > 0) {
                memcpy(m->allow + m->allow_len, ", ", 2);
                m->allow_len += 2;
            }
            memcpy(m->allow + m->allow_len, route_method, n + 1);
            m->allow_len += n;
        }
        return 0;
    }
    score = score * 2 + (route_method != NULL);
    if (score <= m->best_score)
        return 0;
    m->best_score = score;
    return 1;
}

int http_route_status(const struct http_route_match *m, int found)
{
    return found ? 200 : m->path_seen ? 405 : 404;
}

int http_answer_header_kept(const struct rmr_http_header *h, const char *content_type)
{
    if (!http_is_token(h->name) || !http_is_field_value(h->value))
        return 0;
    return !(strcasecmp(h->name, "content-length") == 0 || strcasecmp(h->name, "connection") == 0 ||
             strcasecmp(h->name, "transfer-encoding") == 0 ||
             (content_type != NULL && strcasecmp(h->name, "content-type") == 0));
}

int http_answer_adds_retry_after(int status, const struct rmr_http_header *headers,
                                 uint32_t nheaders)
{
    if (status != 429 && status != 503)
        return 0;
    for (uint32_t i = 0; i < nheaders; i++)
        if (http_is_token(headers[i].name) && http_is_field_value(headers[i].value) &&
            strcasecmp(headers[i].name, "retry-after") == 0)
            return 0;
    return 1;
}
