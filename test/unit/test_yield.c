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

static int pin(int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof one, &one);
}

/* A job of ms milliseconds that passes a yield point as often as an encoder reading records
 * does; with reader set, a reader keeps marking the core meanwhile (as one on it would, so a
 * job descheduled for long on a loaded machine still finds a fresh mark). Returns the yields
 * it made. */
static uint64_t job(uint64_t budget_ns, uint64_t ms, int reader)
{
    yield_every(budget_ns);
    uint64_t end = mono_ns() + ms * 1000000u;
    for (uint64_t now = mono_ns(); now < end; now = mono_ns()) {
        if (reader)
            yield_reader_here(now);
        yield_point();
    }
    return yield_every(0);
}

int main(void)
{
    cpu_set_t allowed;
    sched_getaffinity(0, sizeof allowed, &allowed);
    int a = -1, b = -1;
    for (int c = 0; c < CPU_SETSIZE && b < 0; c++)
        if (CPU_ISSET(c, &allowed)) {
            if (a < 0)
                a = c;
            else
                b = c;
        }
    /* One core for the whole test, so the reader's mark and the job are on the same one. */
    OK(a >= 0 && pin(a) == 0, "the test runs on one core");

    IS_UINT(job(YIELD_BUDGET_NS, 5, 0), 0, "no reader on the core: a 5 ms job never sleeps");

    uint64_t c0 = thread_cpu_ns(), t0 = mono_ns();
    uint64_t yields = job(YIELD_BUDGET_NS, 5, 1);
    uint64_t took = mono_ns() - t0, cpu_used = thread_cpu_ns() - c0;
    printf("# %llu yields in %.2f ms, %.2f ms of CPU\n", (unsigned long long)yields,
           (double)took / 1e6, (double)cpu_used / 1e6);
    /* At most one yield per budget and nap; at least one in 5 ms even on a loaded machine. */
    OK(yields >= 1 && yields <= took / (YIELD_BUDGET_NS + YIELD_NAP_NS) + 1,
       "a reader on the core: the job sleeps once a budget");
    OK(cpu_used + yields * YIELD_NAP_NS / 2 <= took, "and the naps leave the core (no CPU used)");

    /* The mark is 10 ms old after this: the next job does not sleep. */
    struct timespec wait = {0, (long)YIELD_READER_NS + 2000000};
    nanosleep(&wait, NULL);
    IS_UINT(job(YIELD_BUDGET_NS, 5, 0), 0, "a reader's mark older than 10 ms: no sleep");

    IS_UINT(job(0, 2, 1), 0, "a thread that is not yielding never sleeps");
    IS_UINT(job(YIELD_BUDGET_NS * 100, 2, 1), 0, "a job shorter than its budget never sleeps");

    if (b < 0) {
        OK(1, "# SKIP one core only: a reader on another core");
    } else {
        yield_reader_here(mono_ns()); /* on core a */
        OK(pin(b) == 0, "the job moves to another core");
        IS_UINT(job(YIELD_BUDGET_NS, 5, 0), 0, "a reader on another core: the job never sleeps");
    }
    return tap_done();
}
