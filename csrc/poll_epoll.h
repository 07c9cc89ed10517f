/* poll_epoll.h -- the Linux poller syscalls loopx needs, with fallbacks.
 *
 * lx_epoll_wait_ns waits with nanosecond timeout precision through
 * epoll_pwait2 (Linux 5.11+).  Plain epoll_wait only takes milliseconds, which
 * forces a choice between waking up to 1 ms early (and spinning) or late;
 * asyncio rounds up, uvloop truncates.  Where the kernel lacks epoll_pwait2
 * (ENOSYS, or a seccomp filter answering EPERM) we remember that and fall back
 * to epoll_wait with the timeout rounded UP to the next millisecond, so a
 * timer is never reported due before its deadline.
 *
 * Returns what the syscall returns: the event count, or -1 with errno set.
 * timeout_ns < 0 means wait forever.  Called without the GIL.
 */
#ifndef LOOPX_POLL_EPOLL_H
#define LOOPX_POLL_EPOLL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_epoll_pwait2
/* Same number on every architecture: it was added after the syscall tables
 * were unified. */
#define __NR_epoll_pwait2 441
#endif

/* The kernel's timespec for this syscall is always 64-bit. */
typedef struct {
    int64_t tv_sec;
    long long tv_nsec;
} lx_kernel_timespec;

static int lx_epoll_pwait2_works = 1;

static int lx_epoll_wait_ns(int epfd, struct epoll_event *events, int maxevents,
                            int64_t timeout_ns)
{
    if (lx_epoll_pwait2_works) {
        lx_kernel_timespec ts, *tsp = NULL;
        long r;
        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            tsp = &ts;
        }
        r = syscall(__NR_epoll_pwait2, epfd, events, maxevents, tsp, NULL, (size_t)0);
        if (r >= 0 || (errno != ENOSYS && errno != EPERM))
            return (int)r;
        lx_epoll_pwait2_works = 0;
    }
    {
        int timeout_ms;
        if (timeout_ns < 0)
            timeout_ms = -1;
        else if (timeout_ns > (int64_t)INT32_MAX * 1000000)
            timeout_ms = INT32_MAX;
        else
            timeout_ms = (int)((timeout_ns + 999999) / 1000000);  /* round up */
        return epoll_wait(epfd, events, maxevents, timeout_ms);
    }
}

/* CLOCK_MONOTONIC in nanoseconds: the clock time.monotonic() reads on Linux,
 * so loop.time() and time.monotonic() agree. */
static inline int64_t lx_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
