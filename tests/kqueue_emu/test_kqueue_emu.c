/* test_kqueue_emu.c -- tests of the kqueue emulation, one function per
 * behaviour, with real pipes, sockets, threads and child processes.
 *
 * Each test counts as passed when all its checks hold.  The last line is
 * "N passed, N failed"; the exit status is non-zero on any failure.
 */
#define _GNU_SOURCE
#include <sys/event.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Test hooks in kqueue_emu.c. */
void kqueue_emu_disable_pwait2(void);
void kqueue_emu_disable_pidfd(void);

static int g_passed, g_failed, g_cur_failed;

#define CHECK(cond) do {                                                    \
        if (!(cond)) {                                                      \
            int e__ = errno;                                                \
            g_cur_failed = 1;                                               \
            fprintf(stderr, "  check failed %s:%d: %s (errno %d: %s)\n",    \
                    __FILE__, __LINE__, #cond, e__, strerror(e__));         \
        }                                                                   \
    } while (0)

/* Setup that must work for the test to mean anything. */
#define MUST(cond) do {                                                     \
        if (!(cond)) {                                                      \
            perror("setup: " #cond);                                        \
            exit(2);                                                        \
        }                                                                   \
    } while (0)

static int64_t now_ns(void)
{
    struct timespec ts;
    MUST(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* One change, no eventlist: returns kevent's result. */
static int change(int kq, uintptr_t ident, short filter, unsigned short flags,
                  unsigned int fflags, void *udata)
{
    struct kevent ch;
    EV_SET(&ch, ident, filter, flags, fflags, 0, udata);
    return kevent(kq, &ch, 1, NULL, 0, NULL);
}

/* The error a single change reports through the eventlist (0 = none), or
 * -1 if kevent did not return exactly one EV_ERROR entry. */
static intptr_t change_err(int kq, uintptr_t ident, short filter,
                           unsigned short flags, unsigned int fflags)
{
    struct kevent ch, out;
    struct timespec zero = {0, 0};
    int n;
    EV_SET(&ch, ident, filter, flags | EV_RECEIPT, fflags, 0, NULL);
    n = kevent(kq, &ch, 1, &out, 1, &zero);
    if (n != 1 || !(out.flags & EV_ERROR))
        return -1;
    return out.data;
}

#define SENTINEL 0xa5

/* Wait up to ms (-1: forever) for at most n events; checks that kevent
 * never writes past n. */
static int wait_events(int kq, struct kevent *out, int n, long ms)
{
    struct kevent buf[n + 4];
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    unsigned char *tail = (unsigned char *)&buf[n];
    size_t i;
    int r;
    memset(buf, SENTINEL, sizeof buf);
    r = kevent(kq, NULL, 0, buf, n, ms < 0 ? NULL : &ts);
    for (i = 0; i < 4 * sizeof *buf; i++)
        CHECK(tail[i] == SENTINEL);
    if (r > 0)
        memcpy(out, buf, (size_t)r * sizeof *buf);
    return r;
}

static struct kevent *find(struct kevent *evs, int n, uintptr_t ident, short filter)
{
    int i;
    for (i = 0; i < n; i++)
        if (evs[i].ident == ident && evs[i].filter == filter)
            return &evs[i];
    return NULL;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    MUST(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
}

static void write_all(int fd, const char *s)
{
    MUST(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
}

static int new_kq(void)
{
    int kq = kqueue();
    MUST(kq >= 0);
    return kq;
}

/* ---- READ / WRITE ------------------------------------------------------- */

static void test_read_level(void)
{
    int kq = new_kq(), p[2], x;
    struct kevent ev[4];
    char buf[16];
    MUST(pipe(p) == 0);
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_ADD, 0, &x) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    write_all(p[1], "hello");
    CHECK(wait_events(kq, ev, 4, 1000) == 1);
    CHECK(ev[0].ident == (uintptr_t)p[0] && ev[0].filter == EVFILT_READ);
    CHECK(ev[0].data == 5 && ev[0].udata == &x && !(ev[0].flags & (EV_EOF | EV_ERROR)));
    /* Level-triggered: still reported while unread. */
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].data == 5);
    CHECK(read(p[0], buf, sizeof buf) == 5);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    close(p[0]);
    close(p[1]);
    close(kq);
}

static void test_write_level(void)
{
    int kq = new_kq(), p[2];
    struct kevent ev[4];
    char buf[4096];
    MUST(pipe(p) == 0);
    set_nonblock(p[1]);
    CHECK(change(kq, (uintptr_t)p[1], EVFILT_WRITE, EV_ADD, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].filter == EVFILT_WRITE);
    memset(buf, 'x', sizeof buf);
    while (write(p[1], buf, sizeof buf) > 0)
        ;
    CHECK(errno == EAGAIN);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    while (read(p[0], buf, sizeof buf) == (ssize_t)sizeof buf && wait_events(kq, ev, 4, 0) == 0)
        ;
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].ident == (uintptr_t)p[1]);
    close(p[0]);
    close(p[1]);
    close(kq);
}

static void test_read_write_separate_events(void)
{
    int kq = new_kq(), s[2], r, w;
    struct kevent ev[4], one;
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0);
    write_all(s[1], "abc");
    CHECK(change(kq, (uintptr_t)s[0], EVFILT_READ, EV_ADD, 0, &r) == 0);
    CHECK(change(kq, (uintptr_t)s[0], EVFILT_WRITE, EV_ADD, 0, &w) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 2);
    CHECK(find(ev, 2, (uintptr_t)s[0], EVFILT_READ) && find(ev, 2, (uintptr_t)s[0], EVFILT_READ)->udata == &r);
    CHECK(find(ev, 2, (uintptr_t)s[0], EVFILT_WRITE) && find(ev, 2, (uintptr_t)s[0], EVFILT_WRITE)->udata == &w);
    /* Room for one: the other comes on the next call. */
    CHECK(wait_events(kq, &one, 1, 0) == 1);
    ev[0] = one;
    CHECK(wait_events(kq, &one, 1, 0) == 1);
    CHECK(one.filter != ev[0].filter);
    /* Deleting READ leaves WRITE registered. */
    CHECK(change(kq, (uintptr_t)s[0], EVFILT_READ, EV_DELETE, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].filter == EVFILT_WRITE);
    close(s[0]);
    close(s[1]);
    close(kq);
}

static void test_enable_disable(void)
{
    int kq = new_kq(), p[2];
    struct kevent ev[4];
    MUST(pipe(p) == 0);
    write_all(p[1], "x");
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_ADD | EV_DISABLE, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_ENABLE, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1);
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_DISABLE, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    /* A disabled knote still exists. */
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_DELETE, 0, NULL) == 0);
    close(p[0]);
    close(p[1]);
    close(kq);
}

static void test_modify_replaces_udata(void)
{
    int kq = new_kq(), p[2], a, b;
    struct kevent ev[4];
    MUST(pipe(p) == 0);
    write_all(p[1], "x");
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_ADD, 0, &a) == 0);
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_ADD, 0, &b) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].udata == &b);
    close(p[0]);
    close(p[1]);
    close(kq);
}

static void test_oneshot(void)
{
    int kq = new_kq(), p[2];
    struct kevent ev[4];
    MUST(pipe(p) == 0);
    write_all(p[1], "x");
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && (ev[0].flags & EV_ONESHOT));
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    CHECK(change_err(kq, (uintptr_t)p[0], EVFILT_READ, EV_DELETE, 0) == ENOENT);
    close(p[0]);
    close(p[1]);
    close(kq);
}

static void test_clear_read(void)
{
    int kq = new_kq(), s[2];
    struct kevent ev[4];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0);
    CHECK(change(kq, (uintptr_t)s[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    write_all(s[1], "abc");
    CHECK(wait_events(kq, ev, 4, 1000) == 1 && ev[0].data == 3 && (ev[0].flags & EV_CLEAR));
    /* Unread but not new: edge-triggered reports nothing. */
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    write_all(s[1], "de");
    CHECK(wait_events(kq, ev, 4, 1000) == 1 && ev[0].data == 5);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    close(s[0]);
    close(s[1]);
    close(kq);
}

/* Level READ and EV_CLEAR WRITE on one fd keep their own trigger modes. */
static void test_clear_and_level_on_one_fd(void)
{
    int kq = new_kq(), s[2];
    struct kevent ev[4];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0);
    CHECK(change(kq, (uintptr_t)s[0], EVFILT_READ, EV_ADD, 0, NULL) == 0);
    CHECK(change(kq, (uintptr_t)s[0], EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].filter == EVFILT_WRITE);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    write_all(s[1], "abc");
    CHECK(wait_events(kq, ev, 4, 1000) == 1 && ev[0].filter == EVFILT_READ);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].filter == EVFILT_READ);
    close(s[0]);
    close(s[1]);
    close(kq);
}

/* An edge event that did not fit in the eventlist is kept for next call. */
static void test_clear_pending_when_full(void)
{
    int kq = new_kq(), s1[2], s2[2];
    struct kevent ev[4], one;
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s1) == 0);
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s2) == 0);
    CHECK(change(kq, (uintptr_t)s1[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, NULL) == 0);
    CHECK(change(kq, (uintptr_t)s2[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, NULL) == 0);
    write_all(s1[1], "a");
    write_all(s2[1], "b");
    CHECK(wait_events(kq, &one, 1, 1000) == 1);
    ev[0] = one;
    CHECK(wait_events(kq, &one, 1, 1000) == 1);
    CHECK(one.ident != ev[0].ident);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    close(s1[0]);
    close(s1[1]);
    close(s2[0]);
    close(s2[1]);
    close(kq);
}

static void test_eof(void)
{
    int kq = new_kq(), s[2], p[2], q[2];
    struct kevent ev[4];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0);
    MUST(pipe(p) == 0);
    MUST(pipe(q) == 0);
    write_all(s[1], "xyz");
    close(s[1]);
    CHECK(change(kq, (uintptr_t)s[0], EVFILT_READ, EV_ADD, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && (ev[0].flags & EV_EOF) && ev[0].data == 3);
    CHECK(change(kq, (uintptr_t)s[0], EVFILT_READ, EV_DELETE, 0, NULL) == 0);
    /* Pipe whose writer closed: READ with EOF, nothing to read. */
    close(p[1]);
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_ADD, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].ident == (uintptr_t)p[0] &&
          (ev[0].flags & EV_EOF) && ev[0].data == 0);
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_DELETE, 0, NULL) == 0);
    /* Pipe whose reader closed (EPOLLERR): WRITE with EOF. */
    close(q[0]);
    CHECK(change(kq, (uintptr_t)q[1], EVFILT_WRITE, EV_ADD, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].filter == EVFILT_WRITE && (ev[0].flags & EV_EOF));
    close(s[0]);
    close(p[0]);
    close(q[1]);
    close(kq);
}

/* A refused connect reports WRITE with EOF, and leaves the socket error
 * for the caller's getsockopt(SO_ERROR), as on BSD. */
static void test_connect_refused(void)
{
    int kq = new_kq(), l, c, soerr = 0;
    struct sockaddr_in a;
    socklen_t alen = sizeof a, elen = sizeof soerr;
    struct kevent ev[4];
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    MUST((l = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    MUST(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    MUST(getsockname(l, (struct sockaddr *)&a, &alen) == 0);
    close(l);  /* nobody listens on that port now */
    MUST((c = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    set_nonblock(c);
    if (connect(c, (struct sockaddr *)&a, sizeof a) == 0 || errno != EINPROGRESS) {
        CHECK(errno == ECONNREFUSED);  /* refused at once: nothing to wait for */
    } else {
        CHECK(change(kq, (uintptr_t)c, EVFILT_WRITE, EV_ADD, 0, NULL) == 0);
        CHECK(wait_events(kq, ev, 4, 2000) == 1 && (ev[0].flags & EV_EOF));
        CHECK(getsockopt(c, SOL_SOCKET, SO_ERROR, &soerr, &elen) == 0);
        CHECK(soerr == ECONNREFUSED);
    }
    close(c);
    close(kq);
}

/* ---- errors ------------------------------------------------------------- */

static int closed_fd_number(void)
{
    int p[2];
    MUST(pipe(p) == 0);
    close(p[1]);
    close(p[0]);
    return p[0];
}

static void test_errors(void)
{
    int kq = new_kq(), p[2], bad;
    struct kevent ch[3], ev[4];
    struct timespec zero = {0, 0}, badts = {0, 1000000000};
    MUST(pipe(p) == 0);
    bad = closed_fd_number();  /* after pipe(): its number must stay free */
    /* With room: EV_ERROR entries, data = errno. */
    CHECK(change_err(kq, (uintptr_t)p[0], EVFILT_READ, EV_DELETE, 0) == ENOENT);
    CHECK(change_err(kq, (uintptr_t)bad, EVFILT_READ, EV_ADD, 0) == EBADF);
    CHECK(change_err(kq, 1, 99, EV_ADD, 0) == EINVAL);
    CHECK(change_err(kq, 77, EVFILT_USER, 0, NOTE_TRIGGER) == ENOENT);
    /* Without room: -1 and errno. */
    errno = 0;
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_DELETE, 0, NULL) == -1 && errno == ENOENT);
    errno = 0;
    CHECK(change(kq, (uintptr_t)bad, EVFILT_WRITE, EV_ADD, 0, NULL) == -1 && errno == EBADF);
    /* Processing continues after an error; errors are the whole result,
     * even with a ready event and an infinite timeout. */
    write_all(p[1], "x");
    EV_SET(&ch[0], (uintptr_t)bad, EVFILT_READ, EV_ADD, 0, 0, NULL);
    EV_SET(&ch[1], (uintptr_t)p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    EV_SET(&ch[2], 5, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    CHECK(kevent(kq, ch, 3, ev, 4, NULL) == 2);
    CHECK(ev[0].flags & EV_ERROR && ev[0].data == EBADF && ev[0].ident == (uintptr_t)bad);
    CHECK(ev[1].flags & EV_ERROR && ev[1].data == ENOENT && ev[1].filter == EVFILT_USER);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].ident == (uintptr_t)p[0]);
    /* Not a kqueue; bad arguments. */
    errno = 0;
    CHECK(kevent(p[0], NULL, 0, ev, 4, &zero) == -1 && errno == EBADF);
    errno = 0;
    CHECK(kevent(kq, NULL, 0, ev, 4, &badts) == -1 && errno == EINVAL);
    /* No eventlist: returns at once whatever the timeout. */
    CHECK(kevent(kq, NULL, 0, NULL, 0, NULL) == 0);
    close(p[0]);
    close(p[1]);
    close(kq);
}

static void test_receipt(void)
{
    int kq = new_kq(), p[2], bad;
    struct kevent ch[3], ev[4];
    MUST(pipe(p) == 0);
    bad = closed_fd_number();  /* after pipe(): its number must stay free */
    write_all(p[1], "x");
    EV_SET(&ch[0], (uintptr_t)p[0], EVFILT_READ, EV_ADD | EV_RECEIPT, 0, 0, &ch);
    EV_SET(&ch[1], (uintptr_t)bad, EVFILT_READ, EV_ADD | EV_RECEIPT, 0, 0, NULL);
    EV_SET(&ch[2], 9, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);
    /* Receipts only, although READ is ready. */
    CHECK(kevent(kq, ch, 3, ev, 4, NULL) == 3);
    CHECK((ev[0].flags & EV_ERROR) && ev[0].data == 0 && ev[0].udata == &ch);
    CHECK((ev[1].flags & EV_ERROR) && ev[1].data == EBADF);
    CHECK((ev[2].flags & EV_ERROR) && ev[2].data == 0 && ev[2].filter == EVFILT_USER);
    /* Same array as changelist and eventlist, as BSD allows. */
    EV_SET(&ch[0], 9, EVFILT_USER, EV_DELETE | EV_RECEIPT, 0, 0, NULL);
    EV_SET(&ch[1], 9, EVFILT_USER, EV_DELETE | EV_RECEIPT, 0, 0, NULL);
    CHECK(kevent(kq, ch, 2, ch, 2, NULL) == 2);
    CHECK(ch[0].data == 0 && ch[1].data == ENOENT);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].filter == EVFILT_READ);
    close(p[0]);
    close(p[1]);
    close(kq);
}

/* ---- closed and reused fd numbers -------------------------------------- */

static void test_fd_reuse_pipe(void)
{
    int kq = new_kq(), p[2], q[2], num;
    struct kevent ev[4];
    MUST(pipe(p) == 0);
    num = p[0];
    CHECK(change(kq, (uintptr_t)num, EVFILT_READ, EV_ADD, 0, NULL) == 0);
    close(p[0]);
    close(p[1]);
    MUST(pipe(q) == 0);
    if (q[0] != num) {
        MUST(dup2(q[0], num) == num);
        close(q[0]);
    }
    /* close() dropped the knote, as on BSD. */
    CHECK(change_err(kq, (uintptr_t)num, EVFILT_READ, EV_DELETE, 0) == ENOENT);
    CHECK(change(kq, (uintptr_t)num, EVFILT_READ, EV_ADD, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    write_all(q[1], "hi");
    CHECK(wait_events(kq, ev, 4, 1000) == 1 && ev[0].ident == (uintptr_t)num && ev[0].data == 2);
    close(num);
    close(q[1]);
    close(kq);
}

/* eventfds share one anonymous inode, so only epoll can tell them apart. */
static void test_fd_reuse_same_inode(void)
{
    int kq = new_kq(), e1, e2;
    uint64_t one = 1;
    struct kevent ev[4];
    MUST((e1 = eventfd(0, EFD_NONBLOCK)) >= 0);
    CHECK(change(kq, (uintptr_t)e1, EVFILT_READ, EV_ADD, 0, NULL) == 0);
    close(e1);
    MUST((e2 = eventfd(0, EFD_NONBLOCK)) >= 0);
    if (e2 != e1) {
        MUST(dup2(e2, e1) == e1);
        close(e2);
    }
    CHECK(change(kq, (uintptr_t)e1, EVFILT_READ, EV_ADD, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    MUST(write(e1, &one, sizeof one) == sizeof one);
    CHECK(wait_events(kq, ev, 4, 1000) == 1 && ev[0].ident == (uintptr_t)e1);
    close(e1);
    close(kq);
}

/* The old file lives on through a dup: its registration survives in epoll,
 * but its events are not reported under the reused number. */
static void test_fd_reuse_old_file_alive(void)
{
    int kq = new_kq(), s[2], q[2], num, keep;
    struct kevent ev[4];
    char buf[8];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0);
    num = s[0];
    CHECK(change(kq, (uintptr_t)num, EVFILT_READ, EV_ADD, 0, NULL) == 0);
    MUST((keep = dup(num)) >= 0);
    MUST(pipe(q) == 0);
    MUST(dup2(q[0], num) == num);  /* replaces the socket at num */
    close(q[0]);
    CHECK(change(kq, (uintptr_t)num, EVFILT_READ, EV_ADD, 0, NULL) == 0);
    write_all(s[1], "old");        /* readable: the old file */
    CHECK(wait_events(kq, ev, 4, 50) == 0);
    write_all(q[1], "new!");
    CHECK(wait_events(kq, ev, 4, 1000) == 1 && ev[0].ident == (uintptr_t)num && ev[0].data == 4);
    CHECK(read(num, buf, sizeof buf) == 4);
    close(num);
    close(keep);
    close(s[1]);
    close(q[1]);
    close(kq);
}

static void test_kqueue_number_reuse(void)
{
    int kq1 = new_kq(), kq2;
    struct kevent ev[4];
    CHECK(change(kq1, 1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, NULL) == 0);
    close(kq1);
    kq2 = new_kq();
    CHECK(kq2 == kq1);  /* lowest free number: the test relies on it */
    CHECK(wait_events(kq2, ev, 4, 0) == 0);
    CHECK(change_err(kq2, 1, EVFILT_USER, EV_DELETE, 0) == ENOENT);
    close(kq2);
}

/* ---- EVFILT_PROC -------------------------------------------------------- */

/* Fork a child that waits for a byte on a pipe, then exits with code (or
 * kills itself with -code).  *go is the pipe's write end. */
static pid_t spawn_child(int code, int *go)
{
    int p[2];
    pid_t pid;
    char c;
    MUST(pipe(p) == 0);
    pid = fork();
    MUST(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        if (read(p[0], &c, 1) < 0)
            _exit(100);
        if (code < 0)
            raise(-code);
        _exit(code);
    }
    close(p[0]);
    *go = p[1];
    return pid;
}

static void test_proc_exit(void)
{
    int kq = new_kq(), go, status = 0;
    struct kevent ev[4];
    pid_t pid = spawn_child(7, &go);
    CHECK(change(kq, (uintptr_t)pid, EVFILT_PROC, EV_ADD, NOTE_EXIT | NOTE_EXITSTATUS, &go) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    write_all(go, "x");
    CHECK(wait_events(kq, ev, 4, 5000) == 1);
    CHECK(ev[0].ident == (uintptr_t)pid && ev[0].filter == EVFILT_PROC && ev[0].udata == &go);
    CHECK((ev[0].fflags & NOTE_EXIT) && (ev[0].flags & EV_EOF));
    CHECK(WIFEXITED((int)ev[0].data) && WEXITSTATUS((int)ev[0].data) == 7);
    /* Delivered once, then gone. */
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    CHECK(change_err(kq, (uintptr_t)pid, EVFILT_PROC, EV_DELETE, 0) == ENOENT);
    /* Not reaped by the emulation: waitpid still collects it. */
    CHECK(waitpid(pid, &status, WNOHANG) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    close(go);
    close(kq);
}

static void test_proc_signal_and_zombie(void)
{
    int kq = new_kq(), go, status = 0;
    struct kevent ev[4];
    pid_t pid = spawn_child(-SIGKILL, &go);
    write_all(go, "x");
    /* Let it become a zombie before registering: still reported. */
    MUST(waitid(P_PID, (id_t)pid, &(siginfo_t){0}, WEXITED | WNOWAIT) == 0);
    CHECK(change(kq, (uintptr_t)pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 5000) == 1);
    CHECK(WIFSIGNALED((int)ev[0].data) && WTERMSIG((int)ev[0].data) == SIGKILL);
    CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
    /* No such process. */
    CHECK(change_err(kq, 0x3fffffff, EVFILT_PROC, EV_ADD, NOTE_EXIT) == ESRCH);
    close(go);
    close(kq);
}

static void test_proc_pending_when_full(void)
{
    int kq = new_kq(), go1, go2, st, seen = 0;
    struct kevent one;
    pid_t a = spawn_child(1, &go1), b = spawn_child(2, &go2);
    CHECK(change(kq, (uintptr_t)a, EVFILT_PROC, EV_ADD, NOTE_EXIT, NULL) == 0);
    CHECK(change(kq, (uintptr_t)b, EVFILT_PROC, EV_ADD, NOTE_EXIT, NULL) == 0);
    write_all(go1, "x");
    write_all(go2, "x");
    MUST(waitid(P_PID, (id_t)a, &(siginfo_t){0}, WEXITED | WNOWAIT) == 0);
    MUST(waitid(P_PID, (id_t)b, &(siginfo_t){0}, WEXITED | WNOWAIT) == 0);
    while (seen < 3 && wait_events(kq, &one, 1, 1000) == 1) {
        if (one.ident == (uintptr_t)a && WEXITSTATUS((int)one.data) == 1)
            seen |= 1;
        else if (one.ident == (uintptr_t)b && WEXITSTATUS((int)one.data) == 2)
            seen |= 2;
        else
            CHECK(!"unexpected event");
    }
    CHECK(seen == 3);
    CHECK(wait_events(kq, &one, 1, 0) == 0);
    CHECK(waitpid(a, &st, 0) == a && waitpid(b, &st, 0) == b);
    close(go1);
    close(go2);
    close(kq);
}

/* ---- EVFILT_USER -------------------------------------------------------- */

static void test_user_clear(void)
{
    int kq = new_kq(), x;
    struct kevent ev[4];
    CHECK(change(kq, 42, EVFILT_USER, EV_ADD | EV_CLEAR, 0, &x) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    CHECK(change(kq, 42, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFOR | 0x5, &x) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1);
    CHECK(ev[0].ident == 42 && ev[0].filter == EVFILT_USER && ev[0].udata == &x);
    CHECK((ev[0].fflags & NOTE_FFLAGSMASK) == 0x5);
    CHECK(wait_events(kq, ev, 4, 0) == 0);  /* EV_CLEAR: reset */
    CHECK(change(kq, 42, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFAND | 0x4, &x) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && (ev[0].fflags & NOTE_FFLAGSMASK) == 0x4);
    CHECK(change(kq, 42, EVFILT_USER, EV_DELETE, 0, NULL) == 0);
    CHECK(change_err(kq, 42, EVFILT_USER, 0, NOTE_TRIGGER) == ENOENT);
    close(kq);
}

static void test_user_level_and_oneshot(void)
{
    int kq = new_kq();
    struct kevent ev[4];
    CHECK(change(kq, 1, EVFILT_USER, EV_ADD, 0, NULL) == 0);
    CHECK(change(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1);
    CHECK(wait_events(kq, ev, 4, 0) == 1);  /* no EV_CLEAR: stays triggered */
    CHECK(change(kq, 1, EVFILT_USER, EV_DISABLE, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    CHECK(change(kq, 1, EVFILT_USER, EV_ENABLE, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1);
    CHECK(change(kq, 2, EVFILT_USER, EV_ADD | EV_ONESHOT, NOTE_TRIGGER, NULL) == 0);
    CHECK(change(kq, 1, EVFILT_USER, EV_DELETE, 0, NULL) == 0);
    CHECK(wait_events(kq, ev, 4, 0) == 1 && ev[0].ident == 2);
    CHECK(wait_events(kq, ev, 4, 0) == 0);
    CHECK(change_err(kq, 2, EVFILT_USER, EV_DELETE, 0) == ENOENT);
    close(kq);
}

struct trigger_arg {
    int kq;
    long delay_ms;
    int count;
};

/* Triggers ident 7 count times; the last trigger also sets user flag 1,
 * so the waiter can tell it has seen the final one. */
static void *trigger_thread(void *p)
{
    struct trigger_arg *t = p;
    int i;
    sleep_ms(t->delay_ms);
    for (i = 0; i < t->count; i++) {
        unsigned int ff = NOTE_TRIGGER | (i == t->count - 1 ? NOTE_FFCOPY | 1 : NOTE_FFNOP);
        if (change(t->kq, 7, EVFILT_USER, 0, ff, NULL) != 0)
            abort();
    }
    return NULL;
}

static void test_user_from_other_thread(void)
{
    struct trigger_arg t = {new_kq(), 100, 1};
    struct kevent ev[4];
    pthread_t th;
    int64_t t0;
    CHECK(change(t.kq, 7, EVFILT_USER, EV_ADD | EV_CLEAR, 0, NULL) == 0);
    MUST(pthread_create(&th, NULL, trigger_thread, &t) == 0);
    t0 = now_ns();
    CHECK(wait_events(t.kq, ev, 4, -1) == 1 && ev[0].ident == 7);  /* infinite wait */
    CHECK(now_ns() - t0 >= 90 * 1000000LL);
    MUST(pthread_join(th, NULL) == 0);
    close(t.kq);
}

/* Many triggers racing with the waiter: the last one is never lost. */
static void test_user_trigger_stress(void)
{
    struct trigger_arg t = {new_kq(), 0, 20000};
    struct kevent ev[4];
    pthread_t th;
    int wakeups = 0;
    CHECK(change(t.kq, 7, EVFILT_USER, EV_ADD | EV_CLEAR, 0, NULL) == 0);
    MUST(pthread_create(&th, NULL, trigger_thread, &t) == 0);
    for (;;) {
        if (wait_events(t.kq, ev, 4, 10000) != 1) {
            CHECK(!"lost trigger");
            break;
        }
        wakeups++;
        if (ev[0].fflags == 1)
            break;
    }
    CHECK(wakeups >= 1);
    MUST(pthread_join(th, NULL) == 0);
    close(t.kq);
}

/* ---- timeouts and signals ----------------------------------------------- */

static void test_timeouts_not_early(void)
{
    static const long ns[] = {1, 1000, 999999, 1000001, 1500000, 20000000, 50000000};
    int kq = new_kq(), p[2];
    struct kevent ev[4];
    size_t i;
    MUST(pipe(p) == 0);
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_ADD, 0, NULL) == 0);
    for (i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        struct timespec ts = {0, ns[i]};
        int64_t t0 = now_ns(), dt;
        CHECK(kevent(kq, NULL, 0, ev, 4, &ts) == 0);
        dt = now_ns() - t0;
        if (dt < ns[i])
            fprintf(stderr, "  timeout %ld ns returned after %lld ns\n", ns[i], (long long)dt);
        CHECK(dt >= ns[i]);
    }
    {
        struct timespec ts = {1, 0}, zero = {0, 0};
        int64_t t0 = now_ns();
        CHECK(kevent(kq, NULL, 0, ev, 4, &ts) == 0);
        CHECK(now_ns() - t0 >= 1000000000LL);
        t0 = now_ns();
        CHECK(kevent(kq, NULL, 0, ev, 4, &zero) == 0);
        CHECK(now_ns() - t0 < 100000000LL);  /* {0,0} polls */
    }
    close(p[0]);
    close(p[1]);
    close(kq);
}

static void on_usr1(int sig)
{
    (void)sig;
}

struct kill_arg {
    pthread_t target;
};

static void *kill_thread(void *p)
{
    struct kill_arg *k = p;
    sleep_ms(100);
    if (pthread_kill(k->target, SIGUSR1) != 0)
        abort();
    return NULL;
}

static void test_eintr(void)
{
    struct sigaction sa, old;
    struct kill_arg k;
    struct kevent ev[4];
    pthread_t th;
    int kq = new_kq(), r;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;  /* no SA_RESTART: the wait must see EINTR */
    MUST(sigemptyset(&sa.sa_mask) == 0);
    MUST(sigaction(SIGUSR1, &sa, &old) == 0);
    k.target = pthread_self();
    MUST(pthread_create(&th, NULL, kill_thread, &k) == 0);
    errno = 0;
    r = kevent(kq, NULL, 0, ev, 4, NULL);
    CHECK(r == -1 && errno == EINTR);
    MUST(pthread_join(th, NULL) == 0);
    MUST(sigaction(SIGUSR1, &old, NULL) == 0);
    close(kq);
}

/* ---- sizes -------------------------------------------------------------- */

static void test_large_fd_number(void)
{
    int kq = new_kq(), p[2], big = 5000;
    struct kevent ev[4];
    MUST(pipe(p) == 0);
    MUST(dup2(p[0], big) == big);
    CHECK(change(kq, (uintptr_t)big, EVFILT_READ, EV_ADD, 0, NULL) == 0);
    write_all(p[1], "x");
    CHECK(wait_events(kq, ev, 4, 1000) == 1 && ev[0].ident == (uintptr_t)big);
    close(big);
    close(p[0]);
    close(p[1]);
    close(kq);
}

static void test_many_user_events(void)
{
    enum { N = 3000 };
    int kq = new_kq(), i, got = 0, n;
    struct kevent *ch = calloc(N, sizeof *ch), ev[100];
    unsigned char *seen = calloc(N, 1);
    MUST(ch && seen);
    for (i = 0; i < N; i++)
        EV_SET(&ch[i], (uintptr_t)i + 1000, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0, NULL);
    CHECK(kevent(kq, ch, N, NULL, 0, NULL) == 0);
    while ((n = wait_events(kq, ev, 100, 0)) > 0) {
        for (i = 0; i < n; i++) {
            size_t id = ev[i].ident - 1000;
            CHECK(id < N && !seen[id]);
            if (id < N && !seen[id]) {
                seen[id] = 1;
                got++;
            }
        }
    }
    CHECK(n == 0 && got == N);
    free(ch);
    free(seen);
    close(kq);
}

/* Many ready level fds read a few at a time: every one is reported. */
static void test_many_fds_fair(void)
{
    enum { N = 300 };
    int kq = new_kq(), p[N][2], i, round, n, got = 0;
    unsigned char seen[N];
    struct kevent ev[7];
    memset(seen, 0, sizeof seen);
    for (i = 0; i < N; i++) {
        MUST(pipe(p[i]) == 0);
        write_all(p[i][1], "x");
        CHECK(change(kq, (uintptr_t)p[i][0], EVFILT_READ, EV_ADD, 0, (void *)(intptr_t)i) == 0);
    }
    for (round = 0; round < N && got < N; round++) {
        n = wait_events(kq, ev, 7, 0);
        CHECK(n == 7);
        for (i = 0; i < n; i++) {
            intptr_t k = (intptr_t)ev[i].udata;
            if (!seen[k]) {
                seen[k] = 1;
                got++;
            }
        }
    }
    CHECK(got == N);
    for (i = 0; i < N; i++) {
        close(p[i][0]);
        close(p[i][1]);
    }
    close(kq);
}

/* kqueue_emu_close() gives back every fd the kqueue made: its epolls, its
 * wakeup eventfd, the pidfds of watched children. */
static int count_open_fds(void)
{
    int fd, n = 0;
    for (fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static void test_emu_close_frees_everything(void)
{
    int before = count_open_fds(), kq, p[2];
    pid_t pid;
    MUST(pipe(p) == 0);
    before += 2;
    kq = kqueue();
    MUST(kq >= 0);
    CHECK(change(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, NULL) == 0);
    CHECK(change(kq, (uintptr_t)p[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, NULL) == 0);
    CHECK(change(kq, (uintptr_t)p[1], EVFILT_WRITE, EV_ADD, 0, NULL) == 0);
    pid = fork();
    MUST(pid >= 0);
    if (pid == 0) {
        pause();
        _exit(0);
    }
    CHECK(change(kq, (uintptr_t)pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, NULL) == 0);
    CHECK(count_open_fds() > before + 1);
    CHECK(kqueue_emu_close(kq) == 0);
    CHECK(count_open_fds() == before);
    kill(pid, SIGKILL);
    MUST(waitpid(pid, NULL, 0) == pid);
    close(p[0]);
    close(p[1]);
}

/* ---- runner ------------------------------------------------------------- */

static void run(const char *name, void (*fn)(void))
{
    g_cur_failed = 0;
    fn();
    if (g_cur_failed) {
        g_failed++;
        printf("FAIL %s\n", name);
    } else {
        g_passed++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

#define RUN(fn) run(#fn, fn)

int main(void)
{
    /* A hung wait fails the run instead of blocking it. */
    alarm(120);
    /* A write to a pipe whose reader closed must fail, not kill us. */
    MUST(signal(SIGPIPE, SIG_IGN) != SIG_ERR);

    RUN(test_read_level);
    RUN(test_write_level);
    RUN(test_read_write_separate_events);
    RUN(test_enable_disable);
    RUN(test_modify_replaces_udata);
    RUN(test_oneshot);
    RUN(test_clear_read);
    RUN(test_clear_and_level_on_one_fd);
    RUN(test_clear_pending_when_full);
    RUN(test_eof);
    RUN(test_connect_refused);
    RUN(test_errors);
    RUN(test_receipt);
    RUN(test_fd_reuse_pipe);
    RUN(test_fd_reuse_same_inode);
    RUN(test_fd_reuse_old_file_alive);
    RUN(test_kqueue_number_reuse);
    RUN(test_proc_exit);
    RUN(test_proc_signal_and_zombie);
    RUN(test_proc_pending_when_full);
    RUN(test_user_clear);
    RUN(test_user_level_and_oneshot);
    RUN(test_user_from_other_thread);
    RUN(test_user_trigger_stress);
    RUN(test_timeouts_not_early);
    RUN(test_eintr);
    RUN(test_large_fd_number);
    RUN(test_many_user_events);
    RUN(test_many_fds_fair);
    RUN(test_emu_close_frees_everything);
    /* Again through the epoll_wait fallback (ms, rounded up). */
    kqueue_emu_disable_pwait2();
    run("test_timeouts_not_early[epoll_wait]", test_timeouts_not_early);
    run("test_user_from_other_thread[epoll_wait]", test_user_from_other_thread);
    run("test_eintr[epoll_wait]", test_eintr);
    /* Again with proc exits found by polling (no pidfd_open). */
    kqueue_emu_disable_pidfd();
    run("test_proc_exit[polled]", test_proc_exit);
    run("test_proc_signal_and_zombie[polled]", test_proc_signal_and_zombie);
    run("test_proc_pending_when_full[polled]", test_proc_pending_when_full);

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
