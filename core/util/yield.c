/* core/util/yield: see yield.h. */
#include "util/yield.h"

#include <sched.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <time.h>

#define CHECK_EVERY 32u
#define MARKS       64u /* cores beyond share a mark (cpu % MARKS): a nap too many at worst */

static _Thread_local struct {
    uint64_t budget_ns, next_ns, yields;
    uint32_t calls;
    int slack_set;
} y;

/* When a reader last received on each core. */
static _Atomic uint64_t reader_seen_ns[MARKS];

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t mark_of_this_core(void)
{
    int cpu = sched_getcpu();
    return cpu < 0 ? 0 : (uint32_t)cpu % MARKS;
}

void yield_reader_here(uint64_t now_ns)
{
    atomic_store_explicit(&reader_seen_ns[mark_of_this_core()], now_ns, memory_order_relaxed);
}

uint64_t yield_every(uint64_t budget_ns)
{
    uint64_t yields = y.yields;
    if (budget_ns != 0 && !y.slack_set) {
        prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
        y.slack_set = 1;
    }
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
    uint64_t seen =
        atomic_load_explicit(&reader_seen_ns[mark_of_this_core()], memory_order_relaxed);
    if (seen == 0 || now - seen > YIELD_READER_NS)
        return;
    /* A sleep, not sched_yield(): the fair scheduler may hand the core straight back to a
     * thread that yields, while a sleeping one leaves the run queue. */
    struct timespec nap = {0, YIELD_NAP_NS};
    nanosleep(&nap, NULL);
    y.yields++;
    y.next_ns = mono_ns() + y.budget_ns;
}
