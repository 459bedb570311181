/* core/util/yield: a worker thread's long job gives its core to a datagram reader on it.
 *
 * An encode job runs on a libuv worker thread for as long as the output's encoder takes: 1.5
 * to 2.5 ms for a thousand records. A datagram reader that shares the core waits that long:
 * the kernel's fair scheduler lets a running thread go on until its slice ends or the next
 * tick (4 ms at HZ=250) rather than run a woken one of the same priority that has used its
 * share, and a 208 KiB socket buffer holds 1.7 ms of one-metric datagrams at 150,000/s. So a
 * job that has run for its budget, on a core where a UDP reader whose buffer fills in under
 * 20 ms has received in the last 10 ms, sleeps for 20 us (with a timer slack of 1 ns, set at
 * its first sleep, not the default 50 us): the reader runs and drains its socket. A job on a
 * core without such a reader never sleeps, so an output's encoding is slowed only where a
 * reader needs the core. The mark is the core the reader last received on: an unpinned reader
 * gets yields on a new core once it has received there.
 *
 * Thread: each thread has its own budget; the readers' marks are per core, lock-free. */
#ifndef REMORA_CORE_YIELD_H
#define REMORA_CORE_YIELD_H

#include <stdint.h>

/* Time (CLOCK_MONOTONIC) a job may run before it yields: 250 us, where a 208 KiB buffer fills
 * in 1.7 ms at 150,000 datagrams/s. */
#define YIELD_BUDGET_NS 250000u
/* How long a yield sleeps: long enough that the kernel switches to another thread (a 1 us
 * sleep returns on the same thread in a VM whose timer takes that long to arm). The job is
 * away longer when another thread takes the core meanwhile: that is the point. */
#define YIELD_NAP_NS 20000
/* A reader's mark on its core lasts this long. */
#define YIELD_READER_NS 10000000u
/* Readers whose socket buffer fills in less than this at their recent rate mark their core. */
#define YIELD_FILL_NS 20000000u

/* Starts yielding on this thread every budget_ns of running; 0 stops. Returns the number of
 * yields since the last call (what the job just ended gave away). */
uint64_t yield_every(uint64_t budget_ns);

/* Checks the budget once in 32 calls: cheap enough for every record of an encode job. Does
 * nothing on a thread that is not yielding. */
void yield_point(void);

/* A datagram reader marks the core it runs on (now_ns: CLOCK_MONOTONIC) after a receive.
 * Nothing is marked when the core cannot be told (sched_getcpu() fails). */
void yield_reader_here(uint64_t now_ns);

#endif
