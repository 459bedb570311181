/* util/yield: an encode job sleeps after its budget only on a core where a datagram reader
 * has received lately, and counts what it gave away. */
#include <sched.h>
#include <stdint.h>
#include <time.h>

#include "tap.h"
#include "util/yield.h"

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A job of ms milliseconds that passes a yield point as often as an encoder reading records
 * does; returns the yields it made. */
static uint64_t job(uint64_t budget_ns, uint64_t ms)
{
    yield_every(budget_ns);
    uint64_t end = mono_ns() + ms * 1000000u;
    while (mono_ns() < end)
        yield_point();
    return yield_every(0);
}

int main(void)
{
    /* One core for the whole test, so the reader's mark and the job are on the same one. */
    cpu_set_t one;
    CPU_ZERO(&one);
    int cpu = sched_getcpu();
    CPU_SET(cpu < 0 ? 0 : cpu, &one);
    OK(sched_setaffinity(0, sizeof one, &one) == 0, "the test runs on one core");

    IS_UINT(job(YIELD_BUDGET_NS, 5), 0, "no reader on the core: a 5 ms job never sleeps");

    yield_reader_here(mono_ns());
    uint64_t c0 = thread_cpu_ns();
    uint64_t t0 = mono_ns();
    uint64_t yields = job(YIELD_BUDGET_NS, 5);
    uint64_t took = mono_ns() - t0, cpu_used = thread_cpu_ns() - c0;
    /* 5 ms at a 250 us budget: 20 budgets less the naps' time; a loaded machine runs fewer. */
    OK(yields >= 5 && yields <= 20, "a reader on the core: the job sleeps once a budget");
    printf("# %llu yields in %.2f ms, %.2f ms of CPU\n", (unsigned long long)yields,
           (double)took / 1e6, (double)cpu_used / 1e6);
    OK(cpu_used + yields * YIELD_NAP_NS / 2 <= took, "and the naps leave the core (no CPU used)");

    /* The mark is 10 ms old after this: the next job does not sleep. */
    struct timespec wait = {0, (long)YIELD_READER_NS + 2000000};
    nanosleep(&wait, NULL);
    IS_UINT(job(YIELD_BUDGET_NS, 5), 0, "a reader's mark older than 10 ms: no sleep");

    yield_reader_here(mono_ns());
    IS_UINT(job(0, 2), 0, "a thread that is not yielding never sleeps");
    IS_UINT(job(YIELD_BUDGET_NS * 100, 2), 0, "a job shorter than its budget never sleeps");
    return tap_done();
}
