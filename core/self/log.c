#include "self/log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Remembered messages for rate limiting: a small direct-mapped table keyed by a hash of the
 * subject and the formatted text. A collision only means a message is not suppressed. */
#define LOG_SLOTS 256

struct log_slot {
    uint64_t hash;
    int64_t last_ms;
    uint64_t suppressed;
};

struct log_state {
    pthread_mutex_t lock;
    uint32_t level;
    int json;
    int64_t rate_limit_ms;
    struct log_slot slots[LOG_SLOTS];
};

static struct log_state g_log = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .level = RMR_LOG_INFO,
    .json = 0,
    .rate_limit_ms = 10000,
};

void log_configure(uint32_t level, int json, int64_t rate_limit_ms)
{
    pthread_mutex_lock(&g_log.lock);
    g_log.level = level;
    g_log.json = json;
    g_log.rate_limit_ms = rate_limit_ms;
    pthread_mutex_unlock(&g_log.lock);
}

int log_enabled(uint32_t level)
{
    return level <= __atomic_load_n(&g_log.level, __ATOMIC_RELAXED);
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static const char *level_name(uint32_t level)
{
    switch (level) {
    case RMR_LOG_ERROR: return "error";
    case RMR_LOG_WARN: return "warn";
    case RMR_LOG_INFO: return "info";
    case RMR_LOG_DEBUG: return "debug";
    default: return "info";
    }
}

static void json_escape(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void log_writev(uint32_t level, const char *subject, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    char msg[2048];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        return;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    int64_t now_ms = (int64_t)mono.tv_sec * 1000 + mono.tv_nsec / 1000000;

    uint64_t h = hash_str(hash_str(14695981039346656037ULL, subject), msg);
    pthread_mutex_lock(&g_log.lock);
    struct log_slot *slot = &g_log.slots[h % LOG_SLOTS];
    uint64_t suppressed = 0;
    if (g_log.rate_limit_ms > 0 && slot->hash == h &&
        now_ms - slot->last_ms < g_log.rate_limit_ms) {
        slot->suppressed++;
        pthread_mutex_unlock(&g_log.lock);
        return;
    }
    if (slot->hash == h)
        suppressed = slot->suppressed;
    slot->hash = h;
    slot->last_ms = now_ms;
    slot->suppressed = 0;

    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (g_log.json) {
        fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"subject\":\"", when,
                level_name(level));
        json_escape(stderr, subject);
        fputs("\",\"msg\":\"", stderr);
        json_escape(stderr, msg);
        fputc('"', stderr);
        if (suppressed > 0)
            fprintf(stderr, ",\"suppressed\":%llu", (unsigned long long)suppressed);
        fputs("}\n", stderr);
    } else {
        fprintf(stderr, "%s %-5s %s: %s", when, level_name(level), subject, msg);
        if (suppressed > 0)
            fprintf(stderr, " (%llu identical messages suppressed)",
                    (unsigned long long)suppressed);
        fputc('\n', stderr);
    }
    fflush(stderr);
    pthread_mutex_unlock(&g_log.lock);
}

void log_write(uint32_t level, const char *subject, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_writev(level, subject, fmt, ap);
    va_end(ap);
}
