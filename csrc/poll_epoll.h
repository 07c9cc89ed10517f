/* poll_epoll.h -- the poller interface of poller.h on Linux: epoll, with an
 * eventfd for the cross-thread wakeup.  Included by poller.h only.
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

static int lx_poller_open(lx_poller *p)
{
    struct epoll_event ev;
    if (lx_poller_init_common(p, sizeof(struct epoll_event)) < 0)
        return -1;
    p->fd = epoll_create1(EPOLL_CLOEXEC);
    if (p->fd < 0)
        return -1;
    p->wake_rfd = p->wake_wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->wake_rfd < 0)
        return -1;
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    ev.data.fd = p->wake_rfd;
    return epoll_ctl(p->fd, EPOLL_CTL_ADD, p->wake_rfd, &ev);
}

static void lx_poller_close(lx_poller *p)
{
    lx_poller_free_common(p);
}

static inline uint32_t lx_epoll_mask(unsigned int state)
{
    return ((state & LX_READ) ? EPOLLIN : 0) | ((state & LX_WRITE) ? EPOLLOUT : 0)
           | ((state & LX_ONESHOT) ? EPOLLONESHOT : 0);
}

/* Change fd's registration from state old to new (poller.h: interest bits
 * and the one-shot states). */
static int lx_poller_modify(lx_poller *p, int fd, unsigned int old, unsigned int new_)
{
    struct epoll_event ev;
    int op, r;
    if (old == new_)
        return 0;
    if (new_ == LX_DISARMED && (old & LX_DISARMED))
        return 0;   /* park: the kernel entry is inert already */
    ev.events = lx_epoll_mask(new_);
    ev.data.u64 = 0;
    ev.data.fd = fd;
    op = old == 0 ? EPOLL_CTL_ADD : new_ == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    r = epoll_ctl(p->fd, op, fd, &ev);
    if (r == 0)
        return 0;
    if (op == EPOLL_CTL_MOD && errno == ENOENT)
        /* The fd was closed and its number reused (or a parked entry went
         * with its file): closing dropped the old registration, so register
         * afresh. */
        return epoll_ctl(p->fd, EPOLL_CTL_ADD, fd, &ev);
    if (op == EPOLL_CTL_ADD && errno == EEXIST)
        return epoll_ctl(p->fd, EPOLL_CTL_MOD, fd, &ev);
    if (op == EPOLL_CTL_DEL && (errno == ENOENT || errno == EBADF))
        /* Only dropping interest in an fd already closed: the kernel has
         * forgotten it, which is what we wanted. */
        return 0;
    if (op == EPOLL_CTL_MOD && errno == EBADF
            && ((new_ & ~old) & (LX_READ | LX_WRITE)) == 0 && !(old & LX_DISARMED))
        return 0;   /* likewise, when only narrowing a live registration */
    return -1;
}

#define LX_POLLER_ONESHOT 1

/* Wait up to timeout_ns (< 0: forever) and translate into p->events. */
static int lx_poller_wait(lx_poller *p, int64_t timeout_ns)
{
    struct epoll_event *raw = (struct epoll_event *)p->raw;
    int n = lx_epoll_wait_ns(p->fd, raw, p->cap, timeout_ns), i;
    for (i = 0; i < n; i++) {
        uint32_t ev = raw[i].events;
        lx_event *out = &p->events[i];
        out->ident = raw[i].data.fd;
        if (out->ident == p->wake_rfd)
            out->events = LX_WAKEUP;
        else if (ev & (EPOLLERR | EPOLLHUP))
            out->events = LX_READ | LX_WRITE;
        else
            out->events = ((ev & EPOLLIN) ? LX_READ : 0) | ((ev & EPOLLOUT) ? LX_WRITE : 0);
    }
    return n;
}

/* Wake a blocking lx_poller_wait from any thread. */
static int lx_poller_wakeup(lx_poller *p)
{
    uint64_t one = 1;
    if (write(p->wake_wfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -1;
    return 0;
}

/* Reset the wakeup after the loop saw LX_WAKEUP. */
static void lx_poller_wakeup_clear(lx_poller *p)
{
    uint64_t value;
    (void)!read(p->wake_rfd, &value, sizeof(value));
}

/* Child exit comes through pidfds watched as ordinary fds on Linux. */
#define LX_POLLER_NAME "epoll"
#define LX_POLLER_WATCHES_PROC 0
static int lx_poller_watch_exit(lx_poller *p, int pid)
{
    (void)p;
    (void)pid;
    errno = ENOSYS;
    return -1;
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
