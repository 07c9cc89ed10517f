/* poll_kqueue.h -- the poller interface of poller.h on macOS and the BSDs.
 * Included by poller.h only.
 *
 * kqueue watches (ident, filter) pairs: an fd's read and write interest are
 * two independent registrations (EVFILT_READ, EVFILT_WRITE), each reported as
 * its own event.  Both changes of one lx_poller_modify go to the kernel in one
 * kevent() call; EV_RECEIPT makes it answer for each change separately, so we
 * can tell a failed add (an error for the caller) from a failed delete of an
 * fd that was already closed (the kernel dropped its registrations at close,
 * which is what the delete wanted anyway).
 *
 * The cross-thread wakeup is an EVFILT_USER event where the kernel has one
 * (macOS, FreeBSD, NetBSD 10+), else a non-blocking pipe (also chosen by
 * defining LX_KQUEUE_PIPE_WAKEUP, which is how the tests exercise it).
 * Child exit is EVFILT_PROC/NOTE_EXIT: no pidfd, no thread.
 *
 * The timeout is a timespec, so waits have nanosecond precision; a kernel
 * that wakes us a little early only costs the loop another short wait, as the
 * loop never runs a timer before its deadline.
 */
#ifndef LOOPX_POLL_KQUEUE_H
#define LOOPX_POLL_KQUEUE_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#if defined(EVFILT_USER) && !defined(LX_KQUEUE_PIPE_WAKEUP)
#define LX_KQUEUE_USER_WAKEUP 1
#define LX_WAKEUP_IDENT 0   /* EVFILT_USER idents are their own namespace */
#endif

static int lx_kevent_changes(lx_poller *p, struct kevent *changes, int n)
{
#ifdef EV_RECEIPT
    struct kevent results[2];
    int i, got;
    for (i = 0; i < n; i++)
        changes[i].flags |= EV_RECEIPT;
    got = kevent(p->fd, changes, n, results, n, NULL);
    if (got < 0)
        return -1;
    for (i = 0; i < got; i++) {
        int err = (results[i].flags & EV_ERROR) ? (int)results[i].data : 0;
        if (err == 0)
            continue;
        if (err == ENOENT || err == EBADF) {
            /* Dropping interest in an fd already closed: fine.  Adding it
             * is not. */
            int k;
            int was_delete = 0;
            for (k = 0; k < n; k++)
                if (changes[k].ident == results[i].ident && changes[k].filter == results[i].filter)
                    was_delete = (changes[k].flags & EV_DELETE) != 0;
            if (was_delete)
                continue;
        }
        errno = err;
        return -1;
    }
    return 0;
#else
    /* One change per call: a failure is then reported for that change. */
    int i;
    for (i = 0; i < n; i++) {
        if (kevent(p->fd, &changes[i], 1, NULL, 0, NULL) < 0
                && !((changes[i].flags & EV_DELETE) && (errno == ENOENT || errno == EBADF)))
            return -1;
    }
    return 0;
#endif
}

static int lx_set_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    return (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) ? -1 : 0;
}

#ifndef LX_KQUEUE_USER_WAKEUP
static int lx_set_cloexec_nonblock(int fd)
{
    int fl;
    if (lx_set_cloexec(fd) < 0)
        return -1;
    fl = fcntl(fd, F_GETFL);
    return (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) ? -1 : 0;
}
#endif

static int lx_poller_open(lx_poller *p)
{
    struct kevent ch;
    if (lx_poller_init_common(p, sizeof(struct kevent)) < 0)
        return -1;
    p->fd = kqueue();
    if (p->fd < 0 || lx_set_cloexec(p->fd) < 0)
        return -1;
#ifdef LX_KQUEUE_USER_WAKEUP
    EV_SET(&ch, LX_WAKEUP_IDENT, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    return kevent(p->fd, &ch, 1, NULL, 0, NULL) < 0 ? -1 : 0;
#else
    {
        int fds[2];
        if (pipe(fds) < 0)
            return -1;
        p->wake_rfd = fds[0];
        p->wake_wfd = fds[1];
        if (lx_set_cloexec_nonblock(fds[0]) < 0 || lx_set_cloexec_nonblock(fds[1]) < 0)
            return -1;
        EV_SET(&ch, p->wake_rfd, EVFILT_READ, EV_ADD, 0, 0, NULL);
        return kevent(p->fd, &ch, 1, NULL, 0, NULL) < 0 ? -1 : 0;
    }
#endif
}

static void lx_poller_close(lx_poller *p)
{
#ifdef KQUEUE_EMU
    /* Built over tests/kqueue_emu: close() cannot free an emulated kqueue. */
    if (p->fd >= 0) {
        kqueue_emu_close(p->fd);
        p->fd = -1;
    }
#endif
    lx_poller_free_common(p);
}

/* Change what fd is watched for from old to new (LX_READ|LX_WRITE bits). */
static int lx_poller_modify(lx_poller *p, int fd, unsigned int old, unsigned int new_)
{
    struct kevent changes[2];
    int n = 0;
    if ((old ^ new_) & LX_READ) {
        EV_SET(&changes[n], fd, EVFILT_READ, (new_ & LX_READ) ? EV_ADD : EV_DELETE, 0, 0, NULL);
        n++;
    }
    if ((old ^ new_) & LX_WRITE) {
        EV_SET(&changes[n], fd, EVFILT_WRITE, (new_ & LX_WRITE) ? EV_ADD : EV_DELETE, 0, 0, NULL);
        n++;
    }
    return n ? lx_kevent_changes(p, changes, n) : 0;
}

/* Wait up to timeout_ns (< 0: forever) and translate into p->events. */
static int lx_poller_wait(lx_poller *p, int64_t timeout_ns)
{
    struct kevent *raw = (struct kevent *)p->raw;
    struct timespec ts, *tsp = NULL;
    int n, i, out = 0;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    n = kevent(p->fd, NULL, 0, raw, p->cap, tsp);
    for (i = 0; i < n; i++) {
        lx_event *ev = &p->events[out];
        if (raw[i].flags & EV_ERROR)
            continue;   /* answers to changes: none are submitted here */
        ev->ident = (int)raw[i].ident;
        switch (raw[i].filter) {
        case EVFILT_READ:
            ev->events = (p->wake_rfd >= 0 && ev->ident == p->wake_rfd) ? LX_WAKEUP : LX_READ;
            break;
        case EVFILT_WRITE:
            ev->events = LX_WRITE;
            break;
        case EVFILT_PROC:
            ev->events = LX_PROC_EXIT;
            break;
#ifdef LX_KQUEUE_USER_WAKEUP
        case EVFILT_USER:
            ev->events = LX_WAKEUP;
            break;
#endif
        default:
            continue;
        }
        out++;
    }
    return n < 0 ? n : out;
}

/* Wake a blocking lx_poller_wait from any thread. */
static int lx_poller_wakeup(lx_poller *p)
{
#ifdef LX_KQUEUE_USER_WAKEUP
    struct kevent ch;
    EV_SET(&ch, LX_WAKEUP_IDENT, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    return kevent(p->fd, &ch, 1, NULL, 0, NULL) < 0 ? -1 : 0;
#else
    char one = 1;
    if (write(p->wake_wfd, &one, 1) < 0 && errno != EAGAIN)
        return -1;
    return 0;
#endif
}

/* Reset the wakeup after the loop saw LX_WAKEUP. */
static void lx_poller_wakeup_clear(lx_poller *p)
{
    /* EVFILT_USER with EV_CLEAR resets itself once delivered. */
    if (p->wake_rfd >= 0) {
        char buf[64];
        while (read(p->wake_rfd, buf, sizeof(buf)) > 0)
            ;
    }
}

/* Report LX_PROC_EXIT once when child pid exits.  ESRCH: it has already
 * exited (some kernels refuse to watch a zombie); the caller reaps it. */
#define LX_POLLER_NAME "kqueue"
/* No one-shot states here (poller.h): the loop keeps plain registrations.
 * EV_DISPATCH could provide them if sock_recv loops on macOS need it. */
#define LX_POLLER_ONESHOT 0
#define LX_POLLER_WATCHES_PROC 1
static int lx_poller_watch_exit(lx_poller *p, int pid)
{
    struct kevent ch;
    EV_SET(&ch, pid, EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0, NULL);
    return kevent(p->fd, &ch, 1, NULL, 0, NULL) < 0 ? -1 : 0;
}

/* The clock time.monotonic() reads: mach_absolute_time on Apple (the same
 * as CLOCK_UPTIME_RAW), CLOCK_MONOTONIC elsewhere. */
static inline int64_t lx_monotonic_ns(void)
{
#if defined(__APPLE__)
    return (int64_t)clock_gettime_nsec_np(CLOCK_UPTIME_RAW);
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
}

#endif
