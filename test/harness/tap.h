/* A small TAP producer for remora's tests: each check prints "ok N - name" or "not ok N - name"
 * with the values that differed; tap_done() prints the plan and returns the exit status.
 * meson runs test programs with protocol 'tap'; test/summary.py counts the lines. */
#ifndef REMORA_TAP_H
#define REMORA_TAP_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int tap_count;
static int tap_failed;

static inline int tap_result(int ok, const char *file, int line, const char *name)
{
    tap_count++;
    if (!ok)
        tap_failed++;
    printf("%sok %d - %s\n", ok ? "" : "not ", tap_count, name);
    if (!ok)
        printf("#   at %s:%d\n", file, line);
    fflush(stdout);
    return ok;
}

#define OK(cond, name) tap_result(!!(cond), __FILE__, __LINE__, (name))

#define IS_INT(got, want, name)                                                                    \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (!tap_result(g_ == w_, __FILE__, __LINE__, (name)))                                     \
            printf("#   got %lld, want %lld\n", g_, w_);                                           \
    } while (0)

#define IS_UINT(got, want, name)                                                                   \
    do {                                                                                           \
        unsigned long long g_ = (unsigned long long)(got), w_ = (unsigned long long)(want);        \
        if (!tap_result(g_ == w_, __FILE__, __LINE__, (name)))                                     \
            printf("#   got %llu, want %llu\n", g_, w_);                                           \
    } while (0)

#define IS_DBL(got, want, eps, name)                                                               \
    do {                                                                                           \
        double g_ = (double)(got), w_ = (double)(want);                                            \
        if (!tap_result(fabs(g_ - w_) <= (eps), __FILE__, __LINE__, (name)))                       \
            printf("#   got %.17g, want %.17g\n", g_, w_);                                         \
    } while (0)

#define IS_STR(got, want, name)                                                                    \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        int eq_ = (g_ == NULL && w_ == NULL) || (g_ && w_ && strcmp(g_, w_) == 0);                 \
        if (!tap_result(eq_, __FILE__, __LINE__, (name)))                                          \
            printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)");       \
    } while (0)

/* Compares a pointer+length string with a C string. */
#define IS_STRN(ptr, len, want, name)                                                              \
    do {                                                                                           \
        const char *p_ = (ptr), *w_ = (want);                                                      \
        size_t n_ = (size_t)(len);                                                                 \
        int eq_ = strlen(w_) == n_ && (n_ == 0 || memcmp(p_, w_, n_) == 0);                        \
        if (!tap_result(eq_, __FILE__, __LINE__, (name)))                                          \
            printf("#   got \"%.*s\", want \"%s\"\n", (int)n_, p_ ? p_ : "", w_);                  \
    } while (0)

#define CONTAINS(hay, needle, name)                                                                \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!tap_result(h_ && strstr(h_, n_) != NULL, __FILE__, __LINE__, (name)))                 \
            printf("#   \"%s\" does not contain \"%s\"\n", h_ ? h_ : "(null)", n_);                \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
