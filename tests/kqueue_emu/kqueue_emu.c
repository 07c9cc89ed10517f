/* kqueue_emu.c -- the subset of BSD kqueue(2) that loopx uses, over epoll.
 *
 * Lets loopx's kqueue poller be built and run by the test suite on Linux.
 * Exact for what loopx needs, not a general libkqueue; ../README.md lists
 * what differs.
 *
 * Shape of one kqueue:
 *
 *   main epoll (the fd kqueue() returns)   level-triggered registrations:
 *     - each watched fd, mask = union of its enabled non-EV_CLEAR filters
 *     - wake eventfd: EVFILT_USER triggers and cross-thread wakeups
 *     - one pidfd per EVFILT_PROC registration
 *     - up to two inner epolls, one per filter, holding EV_CLEAR
 *       registrations with EPOLLET
 *
 * Why two inner epolls: epoll has one registration per (file, fd) per epoll
 * instance, so READ and WRITE on one fd must share a mask and a trigger
 * mode.  A level READ next to an EV_CLEAR WRITE cannot be one registration;
 * one edge epoll per filter gives each EV_CLEAR knote its own registration,
 * so a wakeup for input never re-reports an unchanged "writable".
 *
 * The trap, once (trio's essay on it is the classic): epoll registers the
 * open file, not the fd number.  close() removes the registration only when
 * the file's last reference goes; a dup kept elsewhere keeps it alive,
 * reporting events under the old fd number.  BSD drops knotes on close(),
 * so a new file at the same number starts with no registrations.  We
 * emulate that by (a) remembering each watched fd's (st_dev, st_ino) and
 * forgetting its knotes when a change finds a different file there, and
 * (b) treating ENOENT from EPOLL_CTL_MOD/DEL as "the file was replaced"
 * (anonymous-inode files share an inode, so (a) alone misses eventfds).
 * Every registration carries a generation in its epoll data; events from a
 * registration we have forgotten are ignored.
 *
 * Delivery: epoll results become "activated" knotes.  Level knotes go on a
 * list local to the call and, if the eventlist is full, are simply dropped:
 * epoll reports them again.  Edge, user and proc knotes go on the kqueue's
 * pending list and stay there until delivered, like BSD's active queue.
 *
 * Locking: g_lock guards the fd -> kqueue table and the reference counts;
 * each kqueue's lock guards everything else in it.  A kevent() call holds
 * its kqueue's lock except while blocked in epoll_wait, so another thread
 * can trigger an EVFILT_USER event meanwhile and wake it.
 */
#define _GNU_SOURCE
#include <sys/event.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __NR_epoll_pwait2
#define __NR_epoll_pwait2 441  /* same on every architecture */
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#define KQE_P_PIDFD ((idtype_t)3)

/* epoll data: tag (8 bits) | generation (24 bits) | fd or pid (32 bits). */
enum { TAG_FD = 1, TAG_EDGE, TAG_WAKE, TAG_PROC };
#define GEN_MASK 0xffffffu

/* Index of READ/WRITE in per-fd arrays. */
enum { F_READ = 0, F_WRITE = 1 };

/* Flags of a change that stay on the knote and come back in its events. */
#define KEEP_FLAGS (EV_ONESHOT | EV_CLEAR)

struct knote;

/* Intrusive doubly linked list; a knote is on at most one list. */
struct kq_list {
    struct knote *head, *tail;
};

struct knote {
    uintptr_t ident;
    short filter;
    unsigned short flags;    /* KEEP_FLAGS of the last EV_ADD */
    unsigned int sfflags;    /* fflags of the last change (user: combined) */
    intptr_t sdata;
    void *udata;
    int enabled;
    struct kq_list *on;      /* list we are queued on, or NULL */
    struct knote *qprev, *qnext;
    uint32_t ready;          /* fd filters: epoll bits seen since delivery */
    int triggered;           /* user */
    int pidfd;               /* proc: -1 once the exit has been collected,
                                or when polled (no pidfd_open) */
    uint32_t serial;         /* proc: generation in the pidfd's epoll data */
    int exited;              /* proc */
    intptr_t status;         /* proc: wait status */
    struct knote *hnext;     /* user/proc hash chain */
};

/* One epoll registration; mask 0 means not registered. */
struct reg {
    uint32_t mask;
    uint32_t gen;
};

struct fdnode {
    struct knote *kn[2];     /* READ, WRITE */
    struct reg main;         /* level filters, in the main epoll */
    struct reg edge[2];      /* EV_CLEAR filter, in edgefd[filter] */
    int first;               /* level filter to report first (fairness) */
    dev_t dev;               /* identity of the file the knotes belong to */
    ino_t ino;
};

struct kq {
    int epfd;
    int refs;                /* guarded by g_lock: table + calls in flight */
    int dead;                /* atomic: fd closed and its number reused */
    pthread_mutex_t lock;
    struct fdnode **fds;     /* indexed by fd, grown on demand */
    size_t nfds;
    struct knote **buckets;  /* user and proc knotes by (ident, filter) */
    size_t nbuckets, nhashed;
    struct kq_list pending;  /* activated edge/user/proc knotes */
    int edgefd[2];           /* inner epolls, -1 until first needed */
    int wakefd;              /* eventfd in the main epoll */
    int waiters;             /* threads blocked in epoll_wait */
    int npolled;             /* proc knotes without a pidfd, still running */
    int wake;                /* a waiter must be woken after unlock */
    uint32_t gen;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kq **g_kqs;
static size_t g_nkqs;
static int g_pwait2 = 1;     /* atomic: epoll_pwait2 is usable */

static int g_pidfd = 1;      /* atomic: try pidfd_open */

/* Test hooks, not BSD: force the fallback paths (epoll_wait in ms; proc
 * exits found by polling instead of pidfds). */
void kqueue_emu_disable_pwait2(void);
void kqueue_emu_disable_pwait2(void)
{
    __atomic_store_n(&g_pwait2, 0, __ATOMIC_RELAXED);
}

void kqueue_emu_disable_pidfd(void);
void kqueue_emu_disable_pidfd(void)
{
    __atomic_store_n(&g_pidfd, 0, __ATOMIC_RELAXED);
}

static uint64_t mkdata(unsigned tag, uint32_t gen, uint32_t id)
{
    return (uint64_t)tag << 56 | (uint64_t)(gen & GEN_MASK) << 32 | id;
}

static uint32_t next_gen(struct kq *kq)
{
    kq->gen = (kq->gen + 1) & GEN_MASK;
    if (kq->gen == 0)
        kq->gen = 1;
    return kq->gen;
}

/* Nothing useful can be done about a failing close() of our own fd: Linux
 * releases the descriptor even then. */
static void close_quietly(int fd)
{
    if (fd >= 0)
        (void)close(fd);
}

/* Return arr (n elements of size elem) grown so that index idx is valid,
 * new slots zeroed, *n updated; NULL (arr untouched) when out of memory. */
static void *grow(void *arr, size_t *n, size_t idx, size_t elem)
{
    size_t want;
    void *p;
    if (idx < *n)
        return arr;
    want = *n ? *n : 16;
    while (want <= idx) {
        if (want > SIZE_MAX / 2 / elem)
            return NULL;
        want *= 2;
    }
    p = realloc(arr, want * elem);
    if (p == NULL)
        return NULL;
    memset((char *)p + *n * elem, 0, (want - *n) * elem);
    *n = want;
    return p;
}

/* ---- lists ------------------------------------------------------------ */

static void list_push(struct kq_list *l, struct knote *kn)
{
    kn->on = l;
    kn->qnext = NULL;
    kn->qprev = l->tail;
    if (l->tail)
        l->tail->qnext = kn;
    else
        l->head = kn;
    l->tail = kn;
}

static void list_unlink(struct knote *kn)
{
    struct kq_list *l = kn->on;
    if (l == NULL)
        return;
    if (kn->qprev)
        kn->qprev->qnext = kn->qnext;
    else
        l->head = kn->qnext;
    if (kn->qnext)
        kn->qnext->qprev = kn->qprev;
    else
        l->tail = kn->qprev;
    kn->on = NULL;
    kn->qprev = kn->qnext = NULL;
}

static struct knote *list_pop(struct kq_list *l)
{
    struct knote *kn = l->head;
    if (kn)
        list_unlink(kn);
    return kn;
}

/* Queue an activated knote for delivery; wake a blocked thread, which may
 * be the only one that will ever look at the pending list. */
static void pend(struct kq *kq, struct knote *kn)
{
    if (kn->on == &kq->pending)
        return;
    list_unlink(kn);
    list_push(&kq->pending, kn);
    if (kq->waiters > 0)
        kq->wake = 1;
}

/* ---- user/proc hash --------------------------------------------------- */

static size_t hash_slot(const struct kq *kq, uintptr_t ident, short filter)
{
    uint64_t h = (uint64_t)ident * 0x9e3779b97f4a7c15ULL ^ (uint16_t)filter;
    return (size_t)(h ^ (h >> 29)) & (kq->nbuckets - 1);
}

static struct knote *hash_find(struct kq *kq, uintptr_t ident, short filter)
{
    struct knote *kn;
    if (kq->nbuckets == 0)
        return NULL;
    for (kn = kq->buckets[hash_slot(kq, ident, filter)]; kn; kn = kn->hnext)
        if (kn->ident == ident && kn->filter == filter)
            return kn;
    return NULL;
}

static int hash_insert(struct kq *kq, struct knote *kn)
{
    size_t slot;
    if (kq->nhashed >= kq->nbuckets) {
        /* Keep the load factor at most 1: rehash into twice the buckets. */
        size_t nb = kq->nbuckets ? kq->nbuckets * 2 : 16, i;
        struct knote **old = kq->buckets, **nbk;
        size_t oldn = kq->nbuckets;
        if (nb > SIZE_MAX / sizeof *nbk)
            return ENOMEM;
        nbk = calloc(nb, sizeof *nbk);
        if (nbk == NULL)
            return ENOMEM;
        kq->buckets = nbk;
        kq->nbuckets = nb;
        for (i = 0; i < oldn; i++) {
            struct knote *k = old[i], *next;
            for (; k; k = next) {
                next = k->hnext;
                slot = hash_slot(kq, k->ident, k->filter);
                k->hnext = nbk[slot];
                nbk[slot] = k;
            }
        }
        free(old);
    }
    slot = hash_slot(kq, kn->ident, kn->filter);
    kn->hnext = kq->buckets[slot];
    kq->buckets[slot] = kn;
    kq->nhashed++;
    return 0;
}

static void hash_remove(struct kq *kq, struct knote *kn)
{
    struct knote **pp = &kq->buckets[hash_slot(kq, kn->ident, kn->filter)];
    for (; *pp; pp = &(*pp)->hnext) {
        if (*pp == kn) {
            *pp = kn->hnext;
            kq->nhashed--;
            return;
        }
    }
}

/* Free a user or proc knote; the pidfd's close removes it from epoll. */
/* What an add or modify change does to an existing knote.  As on BSD, every
 * non-delete change replaces udata, fflags and data; disabling also drops
 * what was seen but not yet delivered. */
static void knote_apply_change(struct knote *kn, const struct kevent *ch)
{
    if (ch->flags & EV_ADD)
        kn->flags = ch->flags & KEEP_FLAGS;
    kn->udata = ch->udata;
    kn->sfflags = ch->fflags;
    kn->sdata = ch->data;
    if (ch->flags & EV_DISABLE) {
        kn->enabled = 0;
        list_unlink(kn);
        kn->ready = 0;
    } else if (ch->flags & EV_ENABLE) {
        kn->enabled = 1;
    }
}

static void hashed_knote_free(struct kq *kq, struct knote *kn)
{
    list_unlink(kn);
    hash_remove(kq, kn);
    if (kn->filter == EVFILT_PROC) {
        if (kn->pidfd < 0 && !kn->exited)
            kq->npolled--;
        close_quietly(kn->pidfd);
    }
    free(kn);
}

/* ---- fd filters --------------------------------------------------------- */

static uint32_t filter_mask(int f)
{
    return f == F_READ ? EPOLLIN | EPOLLRDHUP : EPOLLOUT;
}

static int filter_matches(int f, uint32_t ev)
{
    uint32_t m = f == F_READ ? EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR
                             : EPOLLOUT | EPOLLHUP | EPOLLERR;
    return (ev & m) != 0;
}

/* Drop every knote of fd without touching epoll: called when the file the
 * knotes belonged to is gone, so its registrations are gone with it (or
 * unreachable, if a dup keeps the file alive; their events carry a stale
 * generation and are ignored). */
static void fd_forget(struct kq *kq, int fd)
{
    struct fdnode *node = kq->fds[fd];
    int f;
    for (f = 0; f < 2; f++) {
        if (node->kn[f]) {
            list_unlink(node->kn[f]);
            free(node->kn[f]);
        }
    }
    free(node);
    kq->fds[fd] = NULL;
}

static int edge_open(struct kq *kq, int f)
{
    struct epoll_event ev;
    int efd = epoll_create1(EPOLL_CLOEXEC);
    if (efd < 0)
        return errno;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = mkdata(TAG_EDGE, 0, (uint32_t)f);
    if (epoll_ctl(kq->epfd, EPOLL_CTL_ADD, efd, &ev) < 0) {
        int err = errno;
        close_quietly(efd);
        return err;
    }
    kq->edgefd[f] = efd;
    return 0;
}

/* Bring one registration to mask want.  *probed is set when a syscall
 * touched an existing registration (and so would have seen ENOENT if the
 * file had been replaced).  Returns 0 or an errno. */
static int reg_set(struct kq *kq, int epfd, int fd, struct reg *r,
                   uint32_t want, int *probed)
{
    struct epoll_event ev;
    if (want == r->mask)
        return 0;
    memset(&ev, 0, sizeof ev);
    ev.events = want;
    if (want == 0) {
        *probed = 1;
        r->mask = 0;
        if (epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) < 0)
            return errno;
        return 0;
    }
    if (r->mask == 0) {
        r->gen = next_gen(kq);
        ev.data.u64 = mkdata(TAG_FD, r->gen, (uint32_t)fd);
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            /* EEXIST: our own registration survived a bookkeeping reset
             * (same file); take it over. */
            if (errno != EEXIST || epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
                return errno;
        }
        r->mask = want;
        return 0;
    }
    *probed = 1;
    ev.data.u64 = mkdata(TAG_FD, r->gen, (uint32_t)fd);
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return errno;
    r->mask = want;
    return 0;
}

/* Make fd's epoll registrations match its knotes.  With probe, make sure at
 * least one existing registration was touched, so a replaced file shows up
 * as ENOENT.  Frees the node when it has no knotes left. */
static int fd_sync(struct kq *kq, int fd, int probe)
{
    struct fdnode *node = kq->fds[fd];
    struct reg *regs[3] = {&node->main, &node->edge[0], &node->edge[1]};
    int fds[3] = {kq->epfd, kq->edgefd[0], kq->edgefd[1]};
    uint32_t want[3] = {0, 0, 0};
    int existed[3], f, i, err = 0, probed = 0;

    for (f = 0; f < 2; f++) {
        struct knote *kn = node->kn[f];
        if (kn == NULL || !kn->enabled)
            continue;
        if (kn->flags & EV_CLEAR)
            want[1 + f] = filter_mask(f) | EPOLLET;
        else
            want[0] |= filter_mask(f);
    }
    for (i = 0; i < 3; i++)
        existed[i] = regs[i]->mask != 0;
    for (i = 0; err == 0 && i < 3; i++) {
        if (want[i] == regs[i]->mask)
            continue;
        if (i > 0 && kq->edgefd[i - 1] < 0) {
            if ((err = edge_open(kq, i - 1)) != 0)
                break;
            fds[i] = kq->edgefd[i - 1];
        }
        err = reg_set(kq, fds[i], fd, regs[i], want[i], &probed);
    }
    /* An unchanged registration would not notice a replaced file: ask
     * epoll about one that existed before (a no-op MOD; for EPOLLET it
     * re-arms, as BSD re-evaluates a knote on EV_ADD). */
    for (i = 0; err == 0 && probe && !probed && i < 3; i++) {
        struct epoll_event ev;
        if (!existed[i] || regs[i]->mask == 0)
            continue;
        memset(&ev, 0, sizeof ev);
        ev.events = regs[i]->mask;
        ev.data.u64 = mkdata(TAG_FD, regs[i]->gen, (uint32_t)fd);
        if (epoll_ctl(fds[i], EPOLL_CTL_MOD, fd, &ev) < 0)
            err = errno;
        probed = 1;
    }
    if (err == 0 && node->kn[0] == NULL && node->kn[1] == NULL) {
        free(node);
        kq->fds[fd] = NULL;
    }
    return err;
}

static int fd_change(struct kq *kq, const struct kevent *ch, int retried)
{
    struct fdnode *node;
    struct knote *kn;
    struct stat st;
    int fd, f = ch->filter == EVFILT_READ ? F_READ : F_WRITE;
    int err, had_regs, created = 0;

    if (ch->ident > INT_MAX)
        return EBADF;
    fd = (int)ch->ident;
    if (fstat(fd, &st) < 0)
        return errno;
    node = (size_t)fd < kq->nfds ? kq->fds[fd] : NULL;
    if (node && (node->dev != st.st_dev || node->ino != st.st_ino)) {
        /* A different file now has this number: BSD dropped the knotes
         * when the old one was closed. */
        fd_forget(kq, fd);
        node = NULL;
    }
    kn = node ? node->kn[f] : NULL;
    if (kn == NULL && !(ch->flags & EV_ADD))
        return ENOENT;
    had_regs = node && (node->main.mask || node->edge[0].mask || node->edge[1].mask);

    if (node == NULL) {
        struct fdnode **fds = grow(kq->fds, &kq->nfds, (size_t)fd, sizeof *fds);
        if (fds == NULL)
            return ENOMEM;
        kq->fds = fds;
        node = calloc(1, sizeof *node);
        if (node == NULL)
            return ENOMEM;
        node->dev = st.st_dev;
        node->ino = st.st_ino;
        kq->fds[fd] = node;
    }
    if (kn == NULL) {
        kn = calloc(1, sizeof *kn);
        if (kn == NULL) {
            if (node->kn[1 - f] == NULL) {
                free(node);
                kq->fds[fd] = NULL;
            }
            return ENOMEM;
        }
        kn->ident = ch->ident;
        kn->filter = ch->filter;
        kn->pidfd = -1;
        kn->enabled = !(ch->flags & EV_DISABLE);
        node->kn[f] = kn;
        created = 1;
    }

    if (ch->flags & EV_DELETE) {
        list_unlink(kn);
        free(kn);
        node->kn[f] = NULL;
    } else {
        knote_apply_change(kn, ch);
    }

    err = fd_sync(kq, fd, (ch->flags & EV_ADD) != 0);
    if (err == ENOENT && had_regs) {
        /* Our registration vanished: the file was closed (the number may
         * hold a new file with the same identity, e.g. another eventfd). */
        if (kq->fds[fd])
            fd_forget(kq, fd);
        if ((ch->flags & EV_ADD) && !(ch->flags & EV_DELETE) && !retried)
            return fd_change(kq, ch, 1);
        return ENOENT;
    }
    if (err != 0 && created && kq->fds[fd] && kq->fds[fd]->kn[f] == kn) {
        /* E.g. EPERM for a regular file: the knote never existed.  A failed
         * reg_set left the registrations as they were. */
        node->kn[f] = NULL;
        free(kn);
        if (node->kn[1 - f] == NULL && node->main.mask == 0 &&
            node->edge[0].mask == 0 && node->edge[1].mask == 0) {
            free(node);
            kq->fds[fd] = NULL;
        }
    }
    return err;
}

/* Epoll reported `events` for fd on registration (inst: -1 main, else the
 * edge epoll of that filter) with generation gen. */
static void fd_event(struct kq *kq, int fd, uint32_t gen, uint32_t events,
                     int inst, struct kq_list *level)
{
    struct fdnode *node = (size_t)fd < kq->nfds ? kq->fds[fd] : NULL;
    int f;
    if (node == NULL)
        return;
    if (inst < 0) {
        if (node->main.mask == 0 || node->main.gen != gen)
            return;  /* stale: a registration we have forgotten */
        int k;
        for (k = 0; k < 2; k++) {
            struct knote *kn;
            f = (node->first + k) & 1;
            kn = node->kn[f];
            if (kn && kn->enabled && !(kn->flags & EV_CLEAR) &&
                filter_matches(f, events)) {
                kn->ready |= events;
                if (kn->on == NULL)
                    list_push(level, kn);
            }
        }
    } else {
        struct knote *kn = node->kn[inst];
        if (node->edge[inst].mask == 0 || node->edge[inst].gen != gen)
            return;
        if (kn && kn->enabled && (kn->flags & EV_CLEAR) &&
            filter_matches(inst, events)) {
            kn->ready |= events;
            pend(kq, kn);
        }
    }
}

/* Move everything an edge epoll has to the pending list: edge events are
 * reported once, so what we read must be kept until delivered. */
static void edge_harvest(struct kq *kq, int f, struct kq_list *level)
{
    struct epoll_event evs[64];
    int n, i;
    if (kq->edgefd[f] < 0)
        return;
    do {
        n = epoll_wait(kq->edgefd[f], evs, 64, 0);
        /* Failure (EINTR with a zero timeout, in practice): the inner epoll
         * stays readable in the main one and is read next time. */
        for (i = 0; i < n; i++)
            fd_event(kq, (int)(uint32_t)evs[i].data.u64,
                     (uint32_t)(evs[i].data.u64 >> 32) & GEN_MASK,
                     evs[i].events, f, level);
    } while (n == 64);
}

/* ---- user filter -------------------------------------------------------- */

static int user_change(struct kq *kq, const struct kevent *ch)
{
    struct knote *kn = hash_find(kq, ch->ident, EVFILT_USER);
    unsigned int ff = ch->fflags & NOTE_FFLAGSMASK;
    int err;

    if (kn == NULL) {
        if (!(ch->flags & EV_ADD))
            return ENOENT;
        kn = calloc(1, sizeof *kn);
        if (kn == NULL)
            return ENOMEM;
        kn->ident = ch->ident;
        kn->filter = EVFILT_USER;
        kn->pidfd = -1;
        kn->enabled = 1;
        if ((err = hash_insert(kq, kn)) != 0) {
            free(kn);
            return err;
        }
    }
    if (ch->flags & EV_DELETE) {
        hashed_knote_free(kq, kn);
        return 0;
    }
    if (ch->flags & EV_ADD)
        kn->flags = ch->flags & KEEP_FLAGS;
    kn->udata = ch->udata;
    kn->sdata = ch->data;
    switch (ch->fflags & NOTE_FFCTRLMASK) {
    case NOTE_FFAND: kn->sfflags &= ff; break;
    case NOTE_FFOR: kn->sfflags |= ff; break;
    case NOTE_FFCOPY: kn->sfflags = ff; break;
    default: break;  /* NOTE_FFNOP */
    }
    if (ch->fflags & NOTE_TRIGGER)
        kn->triggered = 1;
    if (ch->flags & EV_DISABLE) {
        kn->enabled = 0;
        list_unlink(kn);
    } else if (ch->flags & EV_ENABLE) {
        kn->enabled = 1;
    }
    if (kn->triggered && kn->enabled)
        pend(kq, kn);
    return 0;
}

/* ---- proc filter -------------------------------------------------------- */

static int proc_change(struct kq *kq, const struct kevent *ch)
{
    struct knote *kn = hash_find(kq, ch->ident, EVFILT_PROC);
    int err;

    if (kn == NULL) {
        struct epoll_event ev;
        long pidfd;
        if (!(ch->flags & EV_ADD))
            return ENOENT;
        if (ch->ident == 0 || ch->ident > INT_MAX)
            return ESRCH;
        if (__atomic_load_n(&g_pidfd, __ATOMIC_RELAXED)) {
            pidfd = syscall(__NR_pidfd_open, (pid_t)ch->ident, 0);
        } else {
            pidfd = -1;
            errno = ENOSYS;
        }
        if (pidfd < 0) {
            /* No pidfds (Linux < 5.3, or valgrind): poll the pid instead,
             * see proc_poll. */
            if (errno != ENOSYS)
                return errno;
            if (kill((pid_t)ch->ident, 0) < 0 && errno == ESRCH)
                return ESRCH;
        }
        kn = calloc(1, sizeof *kn);
        if (kn == NULL) {
            close_quietly((int)pidfd);
            return ENOMEM;
        }
        kn->ident = ch->ident;
        kn->filter = EVFILT_PROC;
        kn->pidfd = (int)pidfd;
        kn->serial = next_gen(kq);
        kn->enabled = 1;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;  /* a pidfd is readable once the process exits */
        ev.data.u64 = mkdata(TAG_PROC, kn->serial, (uint32_t)ch->ident);
        if (kn->pidfd >= 0 && epoll_ctl(kq->epfd, EPOLL_CTL_ADD, kn->pidfd, &ev) < 0) {
            err = errno;
            close_quietly(kn->pidfd);
            free(kn);
            return err;
        }
        if ((err = hash_insert(kq, kn)) != 0) {
            close_quietly(kn->pidfd);
            free(kn);
            return err;
        }
        if (kn->pidfd < 0)
            kq->npolled++;
    }
    if (ch->flags & EV_DELETE) {
        hashed_knote_free(kq, kn);
        return 0;
    }
    knote_apply_change(kn, ch);
    if (kn->exited && kn->enabled)
        pend(kq, kn);
    return 0;
}

/* Encode a waitid() result the way waitpid() reports it. */
static intptr_t wait_status(const siginfo_t *si)
{
    switch (si->si_code) {
    case CLD_EXITED: return (si->si_status & 0xff) << 8;
    case CLD_KILLED: return si->si_status & 0x7f;
    case CLD_DUMPED: return (si->si_status & 0x7f) | 0x80;
    default: return 0;
    }
}

static void proc_exited(struct kq *kq, struct knote *kn, intptr_t status)
{
    if (kn->pidfd < 0)
        kq->npolled--;
    close_quietly(kn->pidfd);  /* also removes it from the epoll */
    kn->pidfd = -1;
    kn->status = status;
    kn->exited = 1;
    if (kn->enabled)
        pend(kq, kn);
}

static void proc_event(struct kq *kq, uint32_t pid, uint32_t serial)
{
    struct knote *kn = hash_find(kq, pid, EVFILT_PROC);
    siginfo_t si;
    int r;
    if (kn == NULL || kn->serial != serial || kn->exited || kn->pidfd < 0)
        return;
    memset(&si, 0, sizeof si);
    /* WNOWAIT: the status is read but the child stays a zombie, so the
     * caller's waitpid() still reaps it, as with real kqueue.  P_PIDFD
     * needs Linux 5.4; P_PID is equivalent while we hold the pidfd. */
    r = waitid(KQE_P_PIDFD, (id_t)kn->pidfd, &si, WEXITED | WNOWAIT);
    if (r < 0 && errno == EINVAL)
        r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
    /* ECHILD: not our child, or already reaped; the exit is still real. */
    proc_exited(kq, kn, r == 0 ? wait_status(&si) : 0);
}

/* Without pidfds, look at each watched pid (the wait is sliced to
 * PROC_POLL_NS meanwhile).  A child is seen exiting through WNOWAIT, so it
 * is not reaped; any other process once it no longer exists. */
#define PROC_POLL_NS 10000000
static void proc_poll(struct kq *kq)
{
    size_t i;
    for (i = 0; kq->npolled > 0 && i < kq->nbuckets; i++) {
        struct knote *kn;
        for (kn = kq->buckets[i]; kn; kn = kn->hnext) {
            siginfo_t si;
            pid_t pid = (pid_t)kn->ident;
            if (kn->filter != EVFILT_PROC || kn->pidfd >= 0 || kn->exited)
                continue;
            memset(&si, 0, sizeof si);
            if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
                if (si.si_pid != 0)
                    proc_exited(kq, kn, wait_status(&si));
            } else if (kill(pid, 0) < 0 && errno == ESRCH) {
                proc_exited(kq, kn, 0);
            }
        }
    }
}

/* ---- delivery ----------------------------------------------------------- */

/* Fill *ev from an activated knote and apply its after-delivery rule.
 * User knotes that stay triggered are put on requeue. */
static void emit(struct kq *kq, struct knote *kn, struct kevent *ev,
                 struct kq_list *requeue)
{
    ev->ident = kn->ident;
    ev->filter = kn->filter;
    ev->flags = kn->flags;
    ev->fflags = 0;
    ev->data = 0;
    ev->udata = kn->udata;

    if (kn->filter == EVFILT_READ || kn->filter == EVFILT_WRITE) {
        int fd = (int)kn->ident, avail;
        if (kn->filter == EVFILT_READ) {
            if (kn->ready & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                ev->flags |= EV_EOF;
            /* Failing is fine (e.g. a listening socket): data stays 0. */
            if (ioctl(fd, FIONREAD, &avail) == 0)
                ev->data = avail;
        } else if (kn->ready & (EPOLLHUP | EPOLLERR)) {
            ev->flags |= EV_EOF;
        }
        kn->ready = 0;
        if (kn->flags & EV_ONESHOT) {
            struct fdnode *node = kq->fds[fd];
            node->kn[kn->filter == EVFILT_READ ? F_READ : F_WRITE] = NULL;
            free(kn);
            /* A failure means the file is gone; forget the rest too. */
            if (fd_sync(kq, fd, 0) != 0 && kq->fds[fd])
                fd_forget(kq, fd);
        }
    } else if (kn->filter == EVFILT_USER) {
        ev->fflags = kn->sfflags;
        ev->data = kn->sdata;
        if (kn->flags & EV_ONESHOT)
            hashed_knote_free(kq, kn);
        else if (kn->flags & EV_CLEAR)
            kn->triggered = 0;
        else
            list_push(requeue, kn);
    } else { /* EVFILT_PROC: the process is gone, so is the knote */
        ev->flags |= EV_EOF | EV_ONESHOT;
        ev->fflags = kn->sfflags & NOTE_EXIT;
        ev->data = kn->status;
        hashed_knote_free(kq, kn);
    }
}

static int deliver(struct kq *kq, struct kevent *out, int nevents,
                   struct kq_list *level)
{
    struct kq_list requeue = {NULL, NULL};
    struct knote *kn;
    int n = 0;

    while (n < nevents && (kn = list_pop(&kq->pending)) != NULL)
        emit(kq, kn, &out[n++], &requeue);
    while (n < nevents && (kn = list_pop(level)) != NULL)
        emit(kq, kn, &out[n++], &requeue);
    /* Level knotes that did not fit: epoll reports them again, and this one
     * goes first then, so READ cannot starve WRITE on one fd. */
    while ((kn = list_pop(level)) != NULL) {
        kn->ready = 0;
        kq->fds[kn->ident]->first = kn->filter == EVFILT_READ ? F_READ : F_WRITE;
    }
    while ((kn = list_pop(&requeue)) != NULL)
        list_push(&kq->pending, kn);
    if (kq->pending.head && kq->waiters > 0)
        kq->wake = 1;
    return n;
}

static void harvest(struct kq *kq, const struct epoll_event *evs, int n,
                    struct kq_list *level)
{
    int i;
    for (i = 0; i < n; i++) {
        uint64_t d = evs[i].data.u64;
        uint32_t id = (uint32_t)d, gen = (uint32_t)(d >> 32) & GEN_MASK;
        switch ((unsigned)(d >> 56)) {
        case TAG_FD:
            fd_event(kq, (int)id, gen, evs[i].events, -1, level);
            break;
        case TAG_EDGE:
            edge_harvest(kq, (int)id, level);
            break;
        case TAG_WAKE: {
            uint64_t v;
            /* Resets the counter.  EAGAIN: another thread drained it. */
            if (read(kq->wakefd, &v, sizeof v) < 0 && errno != EAGAIN) {
                /* Nothing else can fail on an eventfd we own. */
            }
            break;
        }
        case TAG_PROC:
            proc_event(kq, id, gen);
            break;
        }
    }
}

/* ---- kqueue table ------------------------------------------------------- */

static void kq_destroy(struct kq *kq)
{
    size_t i;
    for (i = 0; i < kq->nfds; i++) {
        if (kq->fds[i]) {
            free(kq->fds[i]->kn[0]);
            free(kq->fds[i]->kn[1]);
            free(kq->fds[i]);
        }
    }
    for (i = 0; i < kq->nbuckets; i++) {
        struct knote *kn = kq->buckets[i], *next;
        for (; kn; kn = next) {
            next = kn->hnext;
            if (kn->filter == EVFILT_PROC)
                close_quietly(kn->pidfd);
            free(kn);
        }
    }
    free(kq->fds);
    free(kq->buckets);
    close_quietly(kq->edgefd[0]);
    close_quietly(kq->edgefd[1]);
    close_quietly(kq->wakefd);
    /* kq->epfd is not ours to close any more: the caller closed it, and the
     * number now belongs to someone else. */
    (void)pthread_mutex_destroy(&kq->lock);
    free(kq);
}

static void kq_put(struct kq *kq)
{
    int last;
    (void)pthread_mutex_lock(&g_lock);
    last = --kq->refs == 0;
    (void)pthread_mutex_unlock(&g_lock);
    if (last)
        kq_destroy(kq);
}

static struct kq *kq_get(int fd)
{
    struct kq *kq = NULL;
    (void)pthread_mutex_lock(&g_lock);
    if (fd >= 0 && (size_t)fd < g_nkqs && g_kqs[fd]) {
        kq = g_kqs[fd];
        kq->refs++;
    }
    (void)pthread_mutex_unlock(&g_lock);
    return kq;
}

int kqueue(void)
{
    struct epoll_event ev;
    struct kq *kq, *old = NULL;
    int err;

    kq = calloc(1, sizeof *kq);
    if (kq == NULL) {
        errno = ENOMEM;
        return -1;
    }
    kq->edgefd[0] = kq->edgefd[1] = -1;
    kq->refs = 1;
    if ((err = pthread_mutex_init(&kq->lock, NULL)) != 0) {
        free(kq);
        errno = err;
        return -1;
    }
    kq->epfd = epoll_create1(EPOLL_CLOEXEC);
    kq->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (kq->epfd < 0 || kq->wakefd < 0)
        goto fail;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = mkdata(TAG_WAKE, 0, 0);
    if (epoll_ctl(kq->epfd, EPOLL_CTL_ADD, kq->wakefd, &ev) < 0)
        goto fail;

    (void)pthread_mutex_lock(&g_lock);
    {
        struct kq **tab = grow(g_kqs, &g_nkqs, (size_t)kq->epfd, sizeof *tab);
        err = tab ? 0 : ENOMEM;
        if (tab)
            g_kqs = tab;
    }
    if (err == 0) {
        /* A table under this number belongs to a kqueue the caller closed:
         * drop it, so the new one starts empty. */
        old = g_kqs[kq->epfd];
        g_kqs[kq->epfd] = kq;
        if (old) {
            __atomic_store_n(&old->dead, 1, __ATOMIC_RELAXED);
            if (--old->refs > 0)
                old = NULL;  /* a call in flight frees it */
        }
    }
    (void)pthread_mutex_unlock(&g_lock);
    if (err != 0) {
        errno = err;
        goto fail;
    }
    if (old)
        kq_destroy(old);
    return kq->epfd;

fail:
    err = errno;
    close_quietly(kq->epfd);
    close_quietly(kq->wakefd);
    (void)pthread_mutex_destroy(&kq->lock);
    free(kq);
    errno = err;
    return -1;
}

/* close() for an emulated kqueue: on BSD closing the kqueue frees all it
 * holds, but close() cannot be intercepted here, so a caller that wants its
 * fds back at once (loopx's fd-leak checks) closes through this.  Drops the
 * table entry, then closes the number. */
int kqueue_emu_close(int kq_fd)
{
    struct kq *kq = NULL;
    (void)pthread_mutex_lock(&g_lock);
    if (kq_fd >= 0 && (size_t)kq_fd < g_nkqs && g_kqs[kq_fd]) {
        kq = g_kqs[kq_fd];
        g_kqs[kq_fd] = NULL;
        __atomic_store_n(&kq->dead, 1, __ATOMIC_RELAXED);
        if (--kq->refs > 0)
            kq = NULL;  /* a call in flight frees it */
    }
    (void)pthread_mutex_unlock(&g_lock);
    if (kq)
        kq_destroy(kq);
    return close(kq_fd);
}

/* ---- kevent ------------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid pointer. */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* epoll wait with a nanosecond timeout (< 0: forever).  epoll_pwait2 when
 * the kernel has it (ENOSYS, or EPERM from a seccomp filter, means not);
 * otherwise epoll_wait rounded UP to whole ms, never waking early. */
static int wait_ns(int epfd, struct epoll_event *evs, int n, int64_t ns)
{
    if (__atomic_load_n(&g_pwait2, __ATOMIC_RELAXED)) {
        struct { int64_t tv_sec; long long tv_nsec; } ts, *tsp = NULL;
        long r;
        if (ns >= 0) {
            ts.tv_sec = ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            tsp = &ts;
        }
        r = syscall(__NR_epoll_pwait2, epfd, evs, n, tsp, NULL, (size_t)0);
        if (r >= 0 || (errno != ENOSYS && errno != EPERM))
            return (int)r;
        __atomic_store_n(&g_pwait2, 0, __ATOMIC_RELAXED);
    }
    {
        int ms;
        if (ns < 0)
            ms = -1;
        else if (ns / 1000000 >= INT_MAX)
            ms = INT_MAX;  /* the caller's deadline loop waits the rest */
        else
            ms = (int)((ns + 999999) / 1000000);
        return epoll_wait(epfd, evs, n, ms);
    }
}

/* Unlock, then wake a blocked waiter if a change or delivery asked for it.
 * The write comes after the unlock so the woken thread can take the lock. */
static void kq_unlock(struct kq *kq)
{
    int wake = kq->wake, wfd = kq->wakefd;
    uint64_t one = 1;
    kq->wake = 0;
    (void)pthread_mutex_unlock(&kq->lock);
    /* EAGAIN (counter saturated) still leaves it readable: the wakeup
     * happens either way. */
    if (wake && write(wfd, &one, sizeof one) < 0 && errno != EAGAIN) {
        /* Nothing else can fail on an eventfd we own. */
    }
}

#define STACK_EVENTS 64
#define MAX_EPOLL_BATCH 4096  /* per wait; what is left comes next call */

int kevent(int kqfd, const struct kevent *changelist, int nchanges,
           struct kevent *eventlist, int nevents,
           const struct timespec *timeout)
{
    struct epoll_event stack_evs[STACK_EVENTS], *evs = stack_evs;
    struct kq *kq;
    int64_t timeout_ns = -1, deadline = 0;
    int i, nout = 0, nbuf, err = 0;

    if (nchanges < 0 || nevents < 0) {
        errno = EINVAL;
        return -1;
    }
    if ((nchanges > 0 && changelist == NULL) || (nevents > 0 && eventlist == NULL)) {
        errno = EFAULT;
        return -1;
    }
    if (timeout) {
        if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000) {
            errno = EINVAL;
            return -1;
        }
        /* Beyond ~292 years: as good as forever. */
        if (timeout->tv_sec < INT64_MAX / 1000000000 - 1)
            timeout_ns = (int64_t)timeout->tv_sec * 1000000000 + timeout->tv_nsec;
    }
    kq = kq_get(kqfd);
    if (kq == NULL) {
        errno = EBADF;
        return -1;
    }
    (void)pthread_mutex_lock(&kq->lock);
    if (__atomic_load_n(&kq->dead, __ATOMIC_RELAXED)) {
        err = EBADF;
        goto out_unlock;
    }

    /* Changes apply in order.  A failed change (or any, with EV_RECEIPT) is
     * reported in the eventlist while there is room; with no room left an
     * error aborts the call.  The change is copied first: BSD lets the two
     * lists be the same array, and output index <= input index. */
    for (i = 0; i < nchanges; i++) {
        struct kevent ch = changelist[i];
        int cerr;
        switch (ch.filter) {
        case EVFILT_READ:
        case EVFILT_WRITE: cerr = fd_change(kq, &ch, 0); break;
        case EVFILT_USER: cerr = user_change(kq, &ch); break;
        case EVFILT_PROC: cerr = proc_change(kq, &ch); break;
        default: cerr = EINVAL; break;
        }
        if (cerr == 0 && !(ch.flags & EV_RECEIPT))
            continue;
        if (nout < nevents) {
            ch.flags |= EV_ERROR;
            ch.data = cerr;
            eventlist[nout++] = ch;
        } else if (cerr != 0) {
            err = cerr;
            goto out_unlock;
        }
    }
    /* As on BSD: reported change outcomes are the whole result. */
    if (nout > 0 || nevents == 0)
        goto out_unlock;

    /* Ask epoll for no more than fit: a level-triggered item it returns
     * moves to the back of its ready list, so taking only what we deliver
     * rotates through ready fds instead of starving the later ones. */
    nbuf = nevents < MAX_EPOLL_BATCH ? nevents : MAX_EPOLL_BATCH;
    if (nbuf > STACK_EVENTS) {
        evs = malloc((size_t)nbuf * sizeof *evs);
        if (evs == NULL) {
            evs = stack_evs;
            nbuf = STACK_EVENTS;
        }
    }
    if (timeout_ns > 0)
        deadline = now_ns() + timeout_ns;

    for (;;) {
        struct kq_list level = {NULL, NULL};
        int64_t wait = timeout_ns;
        int n;
        if (kq->pending.head) {
            wait = 0;  /* something to deliver already: just poll */
        } else if (timeout_ns > 0) {
            wait = deadline - now_ns();
            if (wait < 0)
                wait = 0;
        }
        if (kq->npolled > 0 && (wait < 0 || wait > PROC_POLL_NS))
            wait = PROC_POLL_NS;
        kq->waiters++;
        kq_unlock(kq);
        n = wait_ns(kq->epfd, evs, nbuf, wait);
        err = n < 0 ? errno : 0;
        (void)pthread_mutex_lock(&kq->lock);
        kq->waiters--;
        if (n < 0)
            goto out_unlock;  /* EINTR included: loopx relies on it */
        if (__atomic_load_n(&kq->dead, __ATOMIC_RELAXED)) {
            err = EBADF;
            goto out_unlock;
        }
        harvest(kq, evs, n, &level);
        proc_poll(kq);
        nout = deliver(kq, eventlist, nevents, &level);
        /* Nothing deliverable (stale or drained events, a poll slice):
         * wait the rest. */
        if (nout > 0 || timeout_ns == 0)
            break;
        if (timeout_ns > 0 && now_ns() >= deadline)
            break;
    }

out_unlock:
    kq_unlock(kq);
    if (evs != stack_evs)
        free(evs);
    kq_put(kq);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return nout;
}
