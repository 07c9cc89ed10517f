/* poller.h -- the one readiness-poller interface the loop is written against.
 *
 * One implementation per OS family, picked at compile time:
 *   poll_epoll.h   Linux (epoll, eventfd wakeup)
 *   poll_kqueue.h  macOS and the BSDs (kqueue, EVFILT_USER wakeup, EVFILT_PROC)
 * (Windows is completion-based, not readiness-based: see iocp.h.)
 *
 * The loop keeps its own fd table and only tells the poller what changed
 * (lx_poller_modify gets the old and the new state: interest bits, plus the
 * one-shot bits below), so each backend can issue the fewest syscalls its
 * kernel allows.  lx_poller_wait() translates
 * what the kernel reports into lx_event records in p->events: an fd with the
 * LX_READ/LX_WRITE bits of what it is ready for (errors and hang-ups set
 * both, as selectors do, so whoever watches the fd gets to see the error),
 * the wakeup, or a child's exit.
 *
 * Every function returns 0 (or a count) on success and -1 with errno set on
 * failure.  lx_poller_wait and lx_poller_wakeup may run without the GIL;
 * lx_poller_wakeup may run in any thread.
 */
#ifndef LOOPX_POLLER_H
#define LOOPX_POLLER_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define LX_READ      1u
#define LX_WRITE     2u
#define LX_WAKEUP    4u   /* lx_poller_wakeup() was called; ident unused */
#define LX_PROC_EXIT 8u   /* child ident exited (poll_kqueue.h only) */

/* Registration states beside the interest bits, where the backend has
 * LX_POLLER_ONESHOT (epoll).  A one-shot read (LX_READ | LX_ONESHOT, never
 * with LX_WRITE) reports one event and then goes inert in the kernel; the
 * loop marks it LX_DISARMED when it sees that event.  Dropping a disarmed
 * registration keeps the inert kernel entry (state LX_DISARMED alone,
 * "parked") instead of deleting it, so the next one-shot read of the fd
 * costs one re-arm instead of an add and a delete.  This is what makes a
 * loop of sock_recv() calls cheap.  An inert entry never reports anything,
 * so it is harmless even when the fd is closed while a duplicate keeps the
 * file open (a parked level-triggered entry would fire forever there). */
#define LX_ONESHOT   16u
#define LX_DISARMED  32u

typedef struct {
    int ident;            /* fd, or pid for LX_PROC_EXIT */
    unsigned int events;
} lx_event;

/* What the loop holds of a poller.  The raw array is the backend's kernel
 * event records, translated into events after each wait. */
typedef struct {
    int fd;               /* the epoll or kqueue fd */
    int wake_rfd;         /* wakeup fd the kernel watches, or -1 (EVFILT_USER) */
    int wake_wfd;         /* where lx_poller_wakeup writes, or -1 */
    lx_event *events;     /* [cap], filled by lx_poller_wait */
    void *raw;            /* [cap] kernel records of raw_size bytes */
    size_t raw_size;
    int cap;
} lx_poller;

#define LX_POLLER_MIN_EVENTS 64
#define LX_POLLER_MAX_EVENTS 4096

/* Double the event arrays after a wait that filled them: more fds may be
 * ready than one wait can report, and bigger arrays mean fewer syscalls for a
 * busy loop.  Failure to grow is harmless (the next wait reports the rest),
 * so this never fails. */
static void lx_poller_grow_events(lx_poller *p)
{
    int cap = p->cap * 2;
    lx_event *ev;
    void *raw;
    if (cap > LX_POLLER_MAX_EVENTS)
        return;
    ev = (lx_event *)realloc(p->events, sizeof(lx_event) * (size_t)cap);
    if (ev == NULL)
        return;
    p->events = ev;
    raw = realloc(p->raw, p->raw_size * (size_t)cap);
    if (raw == NULL)
        return;   /* p->events is merely larger than needed */
    p->raw = raw;
    p->cap = cap;
}

/* Set up the fields every backend shares (its open calls this first), so
 * lx_poller_close works on a poller whatever point its open failed at. */
static int lx_poller_init_common(lx_poller *p, size_t raw_size)
{
    p->fd = p->wake_rfd = p->wake_wfd = -1;
    p->raw_size = raw_size;
    p->cap = LX_POLLER_MIN_EVENTS;
    p->events = (lx_event *)malloc(sizeof(lx_event) * (size_t)p->cap);
    p->raw = malloc(raw_size * (size_t)p->cap);
    if (p->events == NULL || p->raw == NULL) {
        free(p->events);
        free(p->raw);
        p->events = NULL;
        p->raw = NULL;
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

static void lx_poller_free_common(lx_poller *p)
{
    if (p->fd >= 0)
        close(p->fd);
    if (p->wake_rfd >= 0)
        close(p->wake_rfd);
    if (p->wake_wfd >= 0 && p->wake_wfd != p->wake_rfd)
        close(p->wake_wfd);
    p->fd = p->wake_rfd = p->wake_wfd = -1;
    free(p->events);
    free(p->raw);
    p->events = NULL;
    p->raw = NULL;
    p->cap = 0;
}

#if defined(LOOPX_POLL_EPOLL)
#include "poll_epoll.h"
#elif defined(LOOPX_POLL_KQUEUE)
#include "poll_kqueue.h"
#else
#error "loopx: no readiness poller for this platform"
#endif

#endif
