/* iocp_emu.c -- the lx_iocp API of csrc/iocp.h over epoll, for tests on
 * Linux.  It implements that API (not Win32), so code written against
 * iocp.h -- loopx/_proactor.pyx -- builds and runs here unchanged.  See
 * README.md for what is emulated and how it differs from Windows.
 *
 * Design.  A port is an epoll fd, an eventfd for wakeups from other threads,
 * and a list of completed ops ("done", what GetQueuedCompletionStatus would
 * dequeue).  lx_iocp_associate binds an fd to a port (made non-blocking, as
 * an overlapped handle never blocks its caller).  A submit queues the op on
 * its fd, in one of two FIFO queues (read side: recv, recvfrom, accept,
 * read; write side: send, sendto, connect, write), and tries it at once when
 * nothing is ahead of it, as Windows starts the I/O in the call; whatever
 * cannot finish waits for epoll readiness (one-shot registrations, re-armed
 * while ops remain).  A finished op goes on the done list either way, so
 * every completion is reported by lx_iocp_wait, as the header promises.
 *
 * Closed fds.  Windows completes the ops of a closed socket with an error;
 * Linux silently drops a closed fd from epoll, and the number is soon reused
 * by another file.  So each association remembers the file's (st_dev,
 * st_ino); while ops are queued, lx_iocp_wait re-checks it every
 * SCAN_INTERVAL_NS (fstat) and aborts the ops of an fd that was closed or
 * now names another file (ERROR_OPERATION_ABORTED).  Epoll registrations
 * carry (fd, generation), never a pointer, so an event for a file closed
 * meanwhile (or still open through a dup elsewhere) finds no current entry
 * and is ignored.
 *
 * Process waits register a private dup of the handle -- a pidfd, or any fd
 * that becomes readable, our stand-in for a waitable Windows handle -- so
 * the caller's handle only has to stay open until the submit returns.
 */
#define _GNU_SOURCE
#include "iocp.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SCAN_INTERVAL_NS 10000000LL
#define MAX_LEN 0x7fffffffu
/* Epoll data: bit 63 set = an fd entry (generation << 32 | fd); 0 = the
 * wake eventfd; anything else = a process op's emu_op pointer. */
#define FD_TAG (1ULL << 63)

enum { Q_READ = 0, Q_WRITE = 1 };

typedef struct emu_fd emu_fd;
typedef struct emu_port emu_port;

typedef struct emu_op {
    lx_iocp_op *op;
    struct emu_op *next;   /* in its fd queue, the done list or the process list */
    emu_port *port;
    emu_fd *ent;           /* the fd it is queued on (fd ops) */
    int queued;            /* 1 until it is on the done list */
    void *buf;
    size_t len;
    struct iovec iov[LX_IOCP_MAX_BUFS];
    int niov;
    size_t total, done;    /* send/write: all bytes, bytes written so far */
    struct sockaddr_storage to;
    socklen_t tolen;
    int proc_fd;           /* process waits: our dup of the handle */
} emu_op;

struct emu_fd {
    int fd;
    dev_t dev;
    ino_t ino;
    uint32_t gen;
    int sock_type;         /* SO_TYPE, or -1 for a non-socket */
    int registered;        /* added to the port's epoll */
    int stale;             /* closed or replaced: abort its ops, then free it */
    emu_port *port;
    emu_op *head[2], *tail[2];
    emu_fd *next;          /* in port->fds */
};

struct emu_port {
    int ep, wake;
    pthread_mutex_t mu;    /* done list and wakeups: other threads post */
    emu_op *done, *done_tail;
    unsigned wakeups;
    /* The rest belongs to the thread that waits on the port. */
    emu_fd *fds;
    emu_op *procs;
    int nqueued;           /* ops queued on fds: the close scan runs while > 0 */
    int64_t next_scan;
};

/* fd -> its current association, for every port in the process (a handle
 * belongs to one port, and op submits name only the handle). */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static emu_fd **g_tab;
static int g_cap;
static uint32_t g_gen;

int64_t lx_iocp_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  /* what time.monotonic() reads on Linux */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void wake(emu_port *p)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is saturated, so the port is awake anyway. */
    while (write(p->wake, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* ---- port ------------------------------------------------------------- */

HANDLE lx_iocp_open(void)
{
    emu_port *p = calloc(1, sizeof *p);
    if (p == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    p->ep = epoll_create1(EPOLL_CLOEXEC);
    p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
    if (p->ep < 0 || p->wake < 0 || epoll_ctl(p->ep, EPOLL_CTL_ADD, p->wake, &ev) < 0) {
        int err = errno;
        if (p->ep >= 0)
            close(p->ep);
        if (p->wake >= 0)
            close(p->wake);
        free(p);
        errno = err;
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    return (HANDLE)p;
}

/* Closing the port completes nothing (as on Windows): ops still in flight
 * stay pending for ever; only the emulation's own state is freed. */
DWORD lx_iocp_close(HANDLE port)
{
    emu_port *p = (emu_port *)port;
    if (p == NULL)
        return ERROR_INVALID_HANDLE;
    while (p->fds) {
        emu_fd *ent = p->fds;
        p->fds = ent->next;
        pthread_mutex_lock(&g_mu);
        if (ent->fd < g_cap && g_tab[ent->fd] == ent)
            g_tab[ent->fd] = NULL;
        pthread_mutex_unlock(&g_mu);
        for (int d = 0; d < 2; d++)
            while (ent->head[d]) {
                emu_op *e = ent->head[d];
                ent->head[d] = e->next;
                e->op->ov.emu = NULL;
                free(e);
            }
        free(ent);
    }
    while (p->procs) {
        emu_op *e = p->procs;
        p->procs = e->next;
        close(e->proc_fd);
        e->op->ov.emu = NULL;
        free(e);
    }
    while (p->done) {
        emu_op *e = p->done;
        p->done = e->next;
        e->op->ov.emu = NULL;
        free(e);
    }
    close(p->ep);
    close(p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return 0;
}

DWORD lx_iocp_associate(HANDLE port, HANDLE h)
{
    emu_port *p = (emu_port *)port;
    int fd = (int)(intptr_t)h;
    struct stat st;
    if (p == NULL || fd < 0 || fstat(fd, &st) < 0)
        return ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&g_mu);
    if (fd >= g_cap) {
        int cap = g_cap ? g_cap : 64;
        while (cap <= fd)
            cap *= 2;
        emu_fd **t = realloc(g_tab, (size_t)cap * sizeof *t);
        if (t == NULL) {
            pthread_mutex_unlock(&g_mu);
            return ERROR_NOT_ENOUGH_MEMORY;
        }
        memset(t + g_cap, 0, (size_t)(cap - g_cap) * sizeof *t);
        g_tab = t;
        g_cap = cap;
    }
    emu_fd *old = g_tab[fd];
    if (old && old->dev == st.st_dev && old->ino == st.st_ino) {
        pthread_mutex_unlock(&g_mu);
        /* Windows refuses any second association; we accept the same port
         * again (see README) and refuse another, as Windows does. */
        return old->port == p ? 0 : ERROR_INVALID_PARAMETER;
    }
    if (old) {
        /* The number now names another file: the old one was closed.  Its
         * port's next scan aborts its ops and frees it. */
        old->stale = 1;
        g_tab[fd] = NULL;
        if (old->port == p)
            p->next_scan = 0;
    }
    emu_fd *ent = calloc(1, sizeof *ent);
    if (ent == NULL) {
        pthread_mutex_unlock(&g_mu);
        return ERROR_NOT_ENOUGH_MEMORY;
    }
    ent->fd = fd;
    ent->dev = st.st_dev;
    ent->ino = st.st_ino;
    ent->gen = (++g_gen) & 0x7fffffffu;
    ent->port = p;
    g_tab[fd] = ent;
    pthread_mutex_unlock(&g_mu);
    socklen_t tl = sizeof ent->sock_type;
    if (!S_ISSOCK(st.st_mode) ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &ent->sock_type, &tl) < 0)
        ent->sock_type = -1;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    ent->next = p->fds;
    p->fds = ent;
    return 0;
}

/* ---- completing ------------------------------------------------------- */

static void push_done(emu_port *p, emu_op *e)
{
    e->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->done_tail)
        p->done_tail->next = e;
    else
        p->done = e;
    p->done_tail = e;
    pthread_mutex_unlock(&p->mu);
}

/* The op is finished (already unlinked from its fd queue). */
static void complete(emu_op *e, DWORD err, size_t bytes)
{
    if (e->ent)
        e->port->nqueued--;
    e->queued = 0;
    e->op->ov.Internal = err;
    e->op->ov.InternalHigh = bytes;
    push_done(e->port, e);
}

static void unlink_op(emu_fd *ent, int dir, emu_op *e)
{
    emu_op **pp = &ent->head[dir], *prev = NULL;
    while (*pp && *pp != e) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = e->next;
    if (ent->tail[dir] == e)
        ent->tail[dir] = prev;
}

static int is_read_side(lx_iocp_kind k)
{
    return k == LX_IOCP_RECV || k == LX_IOCP_RECVFROM || k == LX_IOCP_ACCEPT ||
           k == LX_IOCP_READ;
}

static int readable_now(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, 0) > 0;
}

static int would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK;
}

/* Try the op once: 1 if it finished (complete() called), 0 to wait. */
static int attempt(emu_op *e)
{
    lx_iocp_op *op = e->op;
    int fd = e->ent->fd;
    ssize_t n;
    switch (op->kind) {
    case LX_IOCP_RECV:
    case LX_IOCP_READ:
        if (op->kind == LX_IOCP_READ && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY) {
            /* A read on a pipe's write end: it ends when the reader goes
             * away, as on the write side of a Windows pipe (asyncio's write
             * pipe transport keeps one pending to learn just that). */
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & (POLLERR | POLLHUP)))
                return 0;
            complete(e, ERROR_BROKEN_PIPE, 0);
            return 1;
        }
        if (e->len == 0) {
            /* A zero-byte read completes when data (or EOF) is there. */
            if (!readable_now(fd))
                return 0;
            complete(e, 0, 0);
            return 1;
        }
        do {
            n = op->kind == LX_IOCP_RECV ? recv(fd, e->buf, e->len, MSG_DONTWAIT)
                                        : read(fd, e->buf, e->len);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && would_block(errno))
            return 0;
        if (n < 0)
            complete(e, (DWORD)errno, 0);
        else if (n == 0 && op->kind == LX_IOCP_READ)
            complete(e, ERROR_BROKEN_PIPE, 0);  /* ReadFile on a pipe at EOF */
        else
            complete(e, 0, (size_t)n);
        return 1;
    case LX_IOCP_SEND:
    case LX_IOCP_WRITE: {
        while (e->done < e->total) {
            /* The unsent rest of the buffers, from e->done on. */
            struct iovec iov[LX_IOCP_MAX_BUFS];
            int cnt = 0;
            size_t skip = e->done;
            for (int i = 0; i < e->niov; i++) {
                if (skip >= e->iov[i].iov_len) {
                    skip -= e->iov[i].iov_len;
                    continue;
                }
                iov[cnt].iov_base = (char *)e->iov[i].iov_base + skip;
                iov[cnt].iov_len = e->iov[i].iov_len - skip;
                skip = 0;
                cnt++;
            }
            if (op->kind == LX_IOCP_SEND) {
                struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
                n = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
            } else {
                n = writev(fd, iov, cnt);
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && would_block(errno))
                return 0;
            if (n < 0) {
                complete(e, (DWORD)errno, e->done);
                return 1;
            }
            e->done += (size_t)n;
        }
        complete(e, 0, e->total);
        return 1;
    }
    case LX_IOCP_RECVFROM: {
        socklen_t al = sizeof op->u.from.addr;
        int trunc = e->ent->sock_type == SOCK_DGRAM ? MSG_TRUNC : 0;
        do {
            n = recvfrom(fd, e->buf, e->len, MSG_DONTWAIT | trunc,
                         (struct sockaddr *)&op->u.from.addr, &al);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && would_block(errno))
            return 0;
        op->u.from.addr_len = n < 0 ? 0 : (int)al;
        if (n < 0)
            complete(e, (DWORD)errno, 0);
        else if ((size_t)n > e->len)
            complete(e, WSAEMSGSIZE, e->len);  /* the datagram was cut */
        else
            complete(e, 0, (size_t)n);
        return 1;
    }
    case LX_IOCP_SENDTO:
        do {
            n = sendto(fd, e->buf, e->len, MSG_DONTWAIT | MSG_NOSIGNAL,
                       (struct sockaddr *)&e->to, e->tolen);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && would_block(errno))
            return 0;
        complete(e, n < 0 ? (DWORD)errno : 0, n < 0 ? 0 : (size_t)n);
        return 1;
    case LX_IOCP_ACCEPT: {
        for (;;) {
            socklen_t pl = sizeof op->u.accept.peer;
            int a = accept4(fd, (struct sockaddr *)&op->u.accept.peer, &pl,
                            SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (a < 0) {
                /* A connection reset before we took it: wait for the next,
                 * as AcceptEx does. */
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                if (would_block(errno))
                    return 0;
                complete(e, (DWORD)errno, 0);
                return 1;
            }
            op->u.accept.sock = a;
            op->u.accept.peer_len = (int)pl;
            socklen_t ll = sizeof op->u.accept.local;
            if (getsockname(a, (struct sockaddr *)&op->u.accept.local, &ll) < 0)
                ll = 0;
            op->u.accept.local_len = (int)ll;
            complete(e, 0, 0);
            return 1;
        }
    }
    case LX_IOCP_CONNECT: {
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        if (poll(&pfd, 1, 0) <= 0)
            return 0;
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
            err = errno;
        complete(e, (DWORD)err, 0);
        return 1;
    }
    default:
        complete(e, ERROR_INVALID_PARAMETER, 0);
        return 1;
    }
}

/* Run the ops at the head of one queue until one has to wait. */
static void progress(emu_fd *ent, int dir)
{
    while (ent->head[dir]) {
        emu_op *e = ent->head[dir];
        ent->head[dir] = e->next;
        if (ent->head[dir] == NULL)
            ent->tail[dir] = NULL;
        if (!attempt(e)) {
            e->next = ent->head[dir];
            ent->head[dir] = e;
            if (ent->tail[dir] == NULL)
                ent->tail[dir] = e;
            return;
        }
    }
}

/* (Re-)register interest in what the queued ops wait for. */
static void arm(emu_fd *ent)
{
    uint32_t want = (ent->head[Q_READ] ? EPOLLIN | EPOLLRDHUP : 0) |
                    (ent->head[Q_WRITE] ? EPOLLOUT : 0);
    if (ent->stale || want == 0)
        return;  /* a stale armed registration only costs one ignored event */
    struct epoll_event ev = {
        .events = want | EPOLLONESHOT,
        .data.u64 = FD_TAG | ((uint64_t)ent->gen << 32) | (uint32_t)ent->fd,
    };
    int rc = epoll_ctl(ent->port->ep, ent->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
                       ent->fd, &ev);
    if (rc == 0) {
        ent->registered = 1;
        return;
    }
    /* The fd was closed under us: let the scan abort the ops now. */
    ent->port->next_scan = 0;
}

/* Abort the ops of fds that were closed (or replaced) since they were
 * associated, and free such entries. */
static void scan(emu_port *p)
{
    emu_fd **pp = &p->fds;
    while (*pp) {
        emu_fd *ent = *pp;
        struct stat st;
        pthread_mutex_lock(&g_mu);
        int dead = ent->stale;
        if (!dead && (ent->head[0] || ent->head[1]))
            dead = fstat(ent->fd, &st) < 0 || st.st_dev != ent->dev || st.st_ino != ent->ino;
        if (dead && ent->fd < g_cap && g_tab[ent->fd] == ent)
            g_tab[ent->fd] = NULL;
        pthread_mutex_unlock(&g_mu);
        if (!dead) {
            pp = &ent->next;
            continue;
        }
        for (int d = 0; d < 2; d++)
            while (ent->head[d]) {
                emu_op *e = ent->head[d];
                ent->head[d] = e->next;
                complete(e, ERROR_OPERATION_ABORTED, e->done);
            }
        *pp = ent->next;
        free(ent);
    }
}

/* ---- submitting ------------------------------------------------------- */

static DWORD begin(lx_iocp_op *op, lx_iocp_kind kind, HANDLE h)
{
    if (op == NULL)
        return ERROR_INVALID_PARAMETER;
    if (op->pending)
        return ERROR_BUSY;
    memset(&op->ov, 0, sizeof op->ov);
    op->kind = kind;
    op->bytes = 0;
    op->error = 0;
    op->handle = h;
    op->port = NULL;
    op->flags = 0;
    return 0;
}

static int is_socket_kind(lx_iocp_kind k)
{
    return k == LX_IOCP_RECV || k == LX_IOCP_SEND || k == LX_IOCP_RECVFROM ||
           k == LX_IOCP_SENDTO || k == LX_IOCP_ACCEPT || k == LX_IOCP_CONNECT;
}

/* The fd's current association, after checking it still names its file.
 * Windows would start an op on a handle with no port and never report it;
 * refusing it here catches that bug instead. */
static emu_fd *lookup(int fd, lx_iocp_kind kind, DWORD *err)
{
    struct stat st;
    emu_fd *ent = NULL;
    int sock = is_socket_kind(kind);
    if (fd < 0 || fstat(fd, &st) < 0) {
        *err = sock ? WSAENOTSOCK : ERROR_INVALID_HANDLE;
        return NULL;
    }
    if (sock && !S_ISSOCK(st.st_mode)) {
        *err = WSAENOTSOCK;
        return NULL;
    }
    pthread_mutex_lock(&g_mu);
    if (fd < g_cap)
        ent = g_tab[fd];
    if (ent && (ent->dev != st.st_dev || ent->ino != st.st_ino)) {
        ent->stale = 1;
        g_tab[fd] = NULL;
        ent->port->next_scan = 0;
        ent = NULL;
    }
    pthread_mutex_unlock(&g_mu);
    if (ent == NULL)
        *err = ERROR_INVALID_HANDLE;
    return ent;
}

static emu_op *new_op(lx_iocp_op *op)
{
    emu_op *e = calloc(1, sizeof *e);
    if (e != NULL) {
        e->op = op;
        e->proc_fd = -1;
    }
    return e;
}

/* Queue a prepared op on its fd and start it if nothing is ahead. */
static DWORD submit(lx_iocp_op *op, emu_op *e, int fd)
{
    DWORD err = 0;
    emu_fd *ent = lookup(fd, op->kind, &err);
    if (ent == NULL) {
        free(e);
        return err;
    }
    int dir = is_read_side(op->kind) ? Q_READ : Q_WRITE;
    e->ent = ent;
    e->port = ent->port;
    e->queued = 1;
    e->next = NULL;
    op->ov.emu = e;
    op->pending = 1;
    ent->port->nqueued++;
    if (ent->tail[dir])
        ent->tail[dir]->next = e;
    else
        ent->head[dir] = e;
    ent->tail[dir] = e;
    if (ent->head[dir] == e)
        progress(ent, dir);
    arm(ent);
    return 0;
}

static DWORD buf_op(lx_iocp_op *op, lx_iocp_kind kind, int fd, void *buf, size_t len)
{
    DWORD err = begin(op, kind, (HANDLE)(intptr_t)fd);
    if (err)
        return err;
    if (len > MAX_LEN || (buf == NULL && len))
        return ERROR_INVALID_PARAMETER;
    emu_op *e = new_op(op);
    if (e == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    e->buf = buf;
    e->len = len;
    if (kind == LX_IOCP_RECVFROM) {
        memset(&op->u.from.addr, 0, sizeof op->u.from.addr);
        op->u.from.addr_len = 0;
    }
    if (kind == LX_IOCP_WRITE) {
        e->iov[0].iov_base = buf;
        e->iov[0].iov_len = len;
        e->niov = 1;
        e->total = len;
    }
    return submit(op, e, fd);
}

DWORD lx_iocp_recv(lx_iocp_op *op, SOCKET s, void *buf, size_t len)
{
    return buf_op(op, LX_IOCP_RECV, s, buf, len);
}

DWORD lx_iocp_recvfrom(lx_iocp_op *op, SOCKET s, void *buf, size_t len)
{
    return buf_op(op, LX_IOCP_RECVFROM, s, buf, len);
}

DWORD lx_iocp_read(lx_iocp_op *op, HANDLE h, void *buf, size_t len)
{
    return buf_op(op, LX_IOCP_READ, (int)(intptr_t)h, buf, len);
}

DWORD lx_iocp_write(lx_iocp_op *op, HANDLE h, const void *buf, size_t len)
{
    return buf_op(op, LX_IOCP_WRITE, (int)(intptr_t)h, (void *)buf, len);
}

DWORD lx_iocp_send(lx_iocp_op *op, SOCKET s, const lx_iocp_buf *bufs, int nbufs)
{
    size_t total = 0;
    DWORD err = begin(op, LX_IOCP_SEND, (HANDLE)(intptr_t)s);
    if (err)
        return err;
    if (bufs == NULL || nbufs < 1 || nbufs > LX_IOCP_MAX_BUFS)
        return ERROR_INVALID_PARAMETER;
    for (int i = 0; i < nbufs; i++) {
        if (bufs[i].len > MAX_LEN - total || (bufs[i].base == NULL && bufs[i].len))
            return ERROR_INVALID_PARAMETER;
        total += bufs[i].len;
    }
    emu_op *e = new_op(op);
    if (e == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    /* The array is copied (the caller's may live on its stack, as Winsock
     * allows); the bytes are not. */
    for (int i = 0; i < nbufs; i++) {
        e->iov[i].iov_base = (void *)bufs[i].base;
        e->iov[i].iov_len = bufs[i].len;
    }
    e->niov = nbufs;
    e->total = total;
    return submit(op, e, s);
}

DWORD lx_iocp_sendto(lx_iocp_op *op, SOCKET s, const void *buf, size_t len,
                     const struct sockaddr *to, int tolen)
{
    DWORD err = begin(op, LX_IOCP_SENDTO, (HANDLE)(intptr_t)s);
    if (err)
        return err;
    if (len > MAX_LEN || (buf == NULL && len) || to == NULL ||
        tolen <= 0 || tolen > (int)sizeof(struct sockaddr_storage))
        return ERROR_INVALID_PARAMETER;
    emu_op *e = new_op(op);
    if (e == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    e->buf = (void *)buf;
    e->len = len;
    memcpy(&e->to, to, (size_t)tolen);
    e->tolen = (socklen_t)tolen;
    return submit(op, e, s);
}

DWORD lx_iocp_accept(lx_iocp_op *op, SOCKET listener)
{
    DWORD err = begin(op, LX_IOCP_ACCEPT, (HANDLE)(intptr_t)listener);
    if (err)
        return err;
    /* Windows creates the accept socket here; we get it from accept4 at
     * completion, so a cancelled accept never had one. */
    op->u.accept.sock = INVALID_SOCKET;
    op->u.accept.local_len = op->u.accept.peer_len = 0;
    emu_op *e = new_op(op);
    if (e == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    return submit(op, e, listener);
}

DWORD lx_iocp_connect(lx_iocp_op *op, SOCKET s, const struct sockaddr *to, int tolen)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    DWORD err = begin(op, LX_IOCP_CONNECT, (HANDLE)(intptr_t)s);
    if (err)
        return err;
    if (to == NULL || tolen <= 0 || tolen > (int)sizeof(struct sockaddr_storage))
        return ERROR_INVALID_PARAMETER;
    emu_fd *ent = lookup(s, LX_IOCP_CONNECT, &err);
    if (ent == NULL)
        return err;
    /* ConnectEx's rule as iocp.c applies it: an unbound socket (Linux says
     * port 0) is bound to the wildcard address first. */
    if (getsockname(s, (struct sockaddr *)&ss, &sslen) < 0)
        return (DWORD)errno;
    int port = ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
             : ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : -1;
    if (port == 0) {
        memset(&ss, 0, sizeof ss);
        ss.ss_family = to->sa_family;
        if (to->sa_family == AF_INET)
            sslen = sizeof(struct sockaddr_in);
        else if (to->sa_family == AF_INET6)
            sslen = sizeof(struct sockaddr_in6);
        else
            return WSAEAFNOSUPPORT;
        if (bind(s, (struct sockaddr *)&ss, sslen) < 0)
            return (DWORD)errno;
    } else if (port < 0) {
        return WSAEAFNOSUPPORT;  /* ConnectEx is for TCP/IP only */
    }
    int rc;
    do {
        rc = connect(s, to, (socklen_t)tolen);
    } while (rc < 0 && errno == EINTR);
    int cerr = rc < 0 ? errno : 0;
    /* Network outcomes come with the completion, as ConnectEx reports
     * them; argument and state errors fail the submit. */
    int later = cerr == ECONNREFUSED || cerr == ENETUNREACH || cerr == EHOSTUNREACH ||
                cerr == ETIMEDOUT || cerr == ECONNRESET;
    if (cerr && cerr != EINPROGRESS && !later)
        return (DWORD)cerr;
    emu_op *e = new_op(op);
    if (e == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    e->ent = ent;
    e->port = ent->port;
    op->ov.emu = e;
    op->pending = 1;
    if (cerr != EINPROGRESS) {
        ent->port->nqueued++;  /* complete() counts it out again */
        complete(e, (DWORD)cerr, 0);
        return 0;
    }
    /* Queued on the write side: attempt() finishes it on POLLOUT. */
    e->queued = 1;
    ent->port->nqueued++;
    if (ent->tail[Q_WRITE])
        ent->tail[Q_WRITE]->next = e;
    else
        ent->head[Q_WRITE] = e;
    ent->tail[Q_WRITE] = e;
    arm(ent);
    return 0;
}

/* No named pipes on Linux. */
DWORD lx_iocp_pipe_connect(lx_iocp_op *op, HANDLE port, HANDLE pipe)
{
    DWORD err = begin(op, LX_IOCP_PIPE_CONNECT, pipe);
    (void)port;
    return err ? err : ERROR_NOT_SUPPORTED;
}

DWORD lx_iocp_wait_process(lx_iocp_op *op, HANDLE port, HANDLE process)
{
    emu_port *p = (emu_port *)port;
    DWORD err = begin(op, LX_IOCP_PROCESS, process);
    if (err)
        return err;
    if (p == NULL)
        return ERROR_INVALID_HANDLE;
    op->port = port;
    op->u.proc.wait = NULL;
    op->u.proc.fired = 0;
    emu_op *e = new_op(op);
    if (e == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    e->port = p;
    e->proc_fd = fcntl((int)(intptr_t)process, F_DUPFD_CLOEXEC, 0);
    if (e->proc_fd < 0) {
        free(e);
        return ERROR_INVALID_HANDLE;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.ptr = e };
    if (epoll_ctl(p->ep, EPOLL_CTL_ADD, e->proc_fd, &ev) < 0) {
        err = (DWORD)errno;  /* EPERM: not pollable, so not waitable */
        close(e->proc_fd);
        free(e);
        return err;
    }
    e->queued = 1;
    e->next = p->procs;
    p->procs = e;
    op->ov.emu = e;
    op->pending = 1;
    return 0;
}

static void end_process_wait(emu_op *e, DWORD err)
{
    emu_op **pp = &e->port->procs;
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp)
        *pp = e->next;
    epoll_ctl(e->port->ep, EPOLL_CTL_DEL, e->proc_fd, NULL);
    close(e->proc_fd);
    e->proc_fd = -1;
    complete(e, err, 0);
}

/* ---- wakeup, cancel ---------------------------------------------------- */

DWORD lx_iocp_post(HANDLE port, lx_iocp_op *op, DWORD bytes)
{
    emu_port *p = (emu_port *)port;
    if (p == NULL)
        return ERROR_INVALID_HANDLE;
    if (op == NULL) {
        pthread_mutex_lock(&p->mu);
        p->wakeups++;
        pthread_mutex_unlock(&p->mu);
        wake(p);
        return 0;
    }
    DWORD err = begin(op, LX_IOCP_POST, NULL);
    if (err)
        return err;
    emu_op *e = new_op(op);
    if (e == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    e->port = p;
    op->ov.emu = e;
    op->pending = 1;
    op->ov.InternalHigh = bytes;
    push_done(p, e);
    wake(p);
    return 0;
}

DWORD lx_iocp_cancel(lx_iocp_op *op)
{
    if (op == NULL || !op->pending || op->kind == LX_IOCP_POST)
        return ERROR_NOT_FOUND;
    emu_op *e = op->ov.emu;
    if (e == NULL || !e->queued)
        return ERROR_NOT_FOUND;  /* finished, its packet is queued */
    if (op->kind == LX_IOCP_PROCESS) {
        end_process_wait(e, ERROR_OPERATION_ABORTED);
        return 0;
    }
    emu_fd *ent = e->ent;
    int dir = is_read_side(op->kind) ? Q_READ : Q_WRITE;
    int was_head = ent->head[dir] == e;
    unlink_op(ent, dir, e);
    complete(e, ERROR_OPERATION_ABORTED, e->done);
    if (was_head)
        progress(ent, dir);  /* the next op may be able to go now */
    arm(ent);
    return 0;
}

/* ---- completion -------------------------------------------------------- */

static void dispatch(emu_port *p, const struct epoll_event *ev)
{
    uint64_t u = ev->data.u64;
    if (u == 0) {
        uint64_t v;
        while (read(p->wake, &v, sizeof v) < 0 && errno == EINTR)
            ;
        return;
    }
    if (!(u & FD_TAG)) {
        end_process_wait((emu_op *)ev->data.ptr, 0);
        return;
    }
    int fd = (int)(uint32_t)u;
    uint32_t gen = (uint32_t)(u >> 32) & 0x7fffffffu;
    pthread_mutex_lock(&g_mu);
    emu_fd *ent = fd < g_cap ? g_tab[fd] : NULL;
    int ok = ent && ent->gen == gen && ent->port == p && !ent->stale;
    pthread_mutex_unlock(&g_mu);
    if (!ok)
        return;  /* a file closed (or replaced) since it was armed */
    if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        progress(ent, Q_READ);
    if (ev->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        progress(ent, Q_WRITE);
    arm(ent);
}

/* Fill an op's results as it leaves the port. */
static void finish(emu_op *e)
{
    lx_iocp_op *op = e->op;
    op->pending = 0;
    op->bytes = (DWORD)e->op->ov.InternalHigh;
    op->error = op->kind == LX_IOCP_POST ? 0 : (DWORD)op->ov.Internal;
    if (op->kind == LX_IOCP_ACCEPT && op->error) {
        op->u.accept.sock = INVALID_SOCKET;
        op->u.accept.local_len = op->u.accept.peer_len = 0;
    }
    if (op->kind == LX_IOCP_RECVFROM &&
        (op->u.from.addr_len < 0 || op->u.from.addr_len > (int)sizeof op->u.from.addr))
        op->u.from.addr_len = 0;
    op->ov.emu = NULL;
    free(e);
}

int lx_iocp_wait(HANDLE port, lx_iocp_op **out, int max, int64_t timeout_ns)
{
    emu_port *p = (emu_port *)port;
    struct epoll_event evs[64];
    int64_t deadline = 0;
    int polled = 0;
    if (p == NULL)
        return -(int)ERROR_INVALID_HANDLE;
    if (out == NULL || max < 1)
        return -(int)ERROR_INVALID_PARAMETER;
    if (max > LX_IOCP_MAX_BATCH)
        max = LX_IOCP_MAX_BATCH;
    if (timeout_ns > 0) {
        int64_t now = lx_iocp_monotonic_ns();
        deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
    }
    for (;;) {
        int64_t now = lx_iocp_monotonic_ns();
        if (p->nqueued > 0 && now >= p->next_scan) {
            scan(p);
            p->next_scan = now + SCAN_INTERVAL_NS;
        }
        int got = 0, woke = 0;
        pthread_mutex_lock(&p->mu);
        while (got < max && p->done) {
            emu_op *e = p->done;
            p->done = e->next;
            if (p->done == NULL)
                p->done_tail = NULL;
            out[got++] = e->op;
        }
        if (got == 0 && p->wakeups) {
            p->wakeups = 0;
            woke = 1;
        }
        pthread_mutex_unlock(&p->mu);
        if (got) {
            for (int i = 0; i < got; i++)
                finish(out[i]->ov.emu);
            return got;
        }
        if (woke || (timeout_ns == 0 && polled))
            return 0;
        int ms = -1;
        if (timeout_ns == 0) {
            ms = 0;
        } else if (timeout_ns > 0) {
            int64_t left = deadline - now;
            if (left <= 0)
                return 0;
            int64_t m = (left + 999999) / 1000000;  /* never wake early */
            ms = m > 1000000 ? 1000000 : (int)m;
        }
        /* While ops are queued, come back to scan for closed fds. */
        if (p->nqueued > 0 && (ms < 0 || ms > SCAN_INTERVAL_NS / 1000000))
            ms = (int)(SCAN_INTERVAL_NS / 1000000);
        int n = epoll_wait(p->ep, evs, 64, ms);
        polled = 1;
        if (n < 0) {
            if (errno == EINTR)
                continue;  /* GetQueuedCompletionStatus is not interrupted */
            return -errno;
        }
        for (int i = 0; i < n; i++)
            dispatch(p, &evs[i]);
    }
}
