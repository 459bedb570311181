/* core/util/yield: see yield.h. */
#include "util/yield.h"

#include <sched.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <time.h>

#define CHECK_EVERY 32u
#define MARKS       1024u    /* cores beyond share a mark (cpu % MARKS): a nap too many at worst */
#define MARK_FRESH  1000000u /* a mark younger than this is not written again */

static _Thread_local struct {
    uint64_t budget_ns, next_ns, yields;
    uint32_t calls;
    int slack_set;
} y;

/* When a reader last received on each core; a cache line each, so readers on neighbouring
 * cores do not pass one line back and forth (64 KiB in all). */
static struct {
    _Alignas(64) _Atomic uint64_t ns;
} reader_seen[MARKS];

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* This core's mark, or NULL when the core cannot be told. */
static _Atomic uint64_t *this_core_mark(void)
{
    int cpu = sched_getcpu();
    return cpu < 0 ? NULL : &reader_seen[(uint32_t)cpu % MARKS].ns;
}

void yield_reader_here(uint64_t now_ns)
{
    _Atomic uint64_t *mark = this_core_mark();
    if (mark != NULL && atomic_load_explicit(mark, memory_order_relaxed) + MARK_FRESH < now_ns)
        atomic_store_explicit(mark, now_ns, memory_order_relaxed);
}

uint64_t yield_every(uint64_t budget_ns)
{
    uint64_t yields = y.yields;
    y.budget_ns = budget_ns;
    y.next_ns = budget_ns != 0 ? mono_ns() + budget_ns : 0;
    y.yields = 0;
    y.calls = 0;
    return yields;
}

void yield_point(void)
{
    if (y.budget_ns == 0 || ++y.calls % CHECK_EVERY != 0)
        return;
    uint64_t now = mono_ns();
    if (now < y.next_ns)
        return;
    y.next_ns = now + y.budget_ns;
    _Atomic uint64_t *mark = this_core_mark();
    uint64_t seen = mark != NULL ? atomic_load_explicit(mark, memory_order_relaxed) : 0;
    if (seen == 0 || seen + YIELD_READER_NS < now)
        return;
    if (!y.slack_set) {
        prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
        y.slack_set = 1;
    }
    /* A sleep, not sched_yield(): the fair scheduler may hand the core straight back to a
     * thread that yields, while a sleeping one leaves the run queue. */
    struct timespec nap = {0, YIELD_NAP_NS};
    nanosleep(&nap, NULL);
    y.yields++;
    y.next_ns = mono_ns() + y.budget_ns;
}
