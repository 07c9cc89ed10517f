/* test_iocp_emu.c -- C tests of the Linux IOCP emulation (iocp_emu.c)
 * against the contract of csrc/iocp.h: exactly one completion per op in
 * flight, whatever happens.  Real sockets, pipes, threads and processes.
 * Ends with "N passed, N failed"; exit status 1 on any failure.
 */
#define _GNU_SOURCE
#include "iocp.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_passed, g_failed, g_cur_failed;

#define CHECK(cond) do {                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__,        \
                    __LINE__, #cond);                                       \
            g_cur_failed = 1;                                               \
        }                                                                   \
    } while (0)

static HANDLE new_port(void)
{
    HANDLE p = lx_iocp_open();
    if (p == NULL) {
        perror("lx_iocp_open");
        exit(2);
    }
    return p;
}

/* Wait for exactly one op, up to ms. */
static lx_iocp_op *wait_one(HANDLE port, int64_t ms)
{
    lx_iocp_op *out[1];
    int n = lx_iocp_wait(port, out, 1, ms * 1000000);
    return n == 1 ? out[0] : NULL;
}

static int listener(struct sockaddr_in *addr)
{
    socklen_t l = sizeof *addr;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)addr, sizeof *addr) < 0 || listen(s, 16) < 0 ||
        getsockname(s, (struct sockaddr *)addr, &l) < 0) {
        perror("listener");
        exit(2);
    }
    return s;
}

/* A connected pair through accept/connect ops; checks both completions. */
static void tcp_pair(HANDLE port, int *client, int *server)
{
    struct sockaddr_in a;
    int l = listener(&a);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    lx_iocp_op acc = {0}, con = {0};
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)l) == 0);
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)c) == 0);
    CHECK(lx_iocp_accept(&acc, l) == 0);
    CHECK(lx_iocp_connect(&con, c, (struct sockaddr *)&a, sizeof a) == 0);
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        lx_iocp_op *op = wait_one(port, 5000);
        CHECK(op == &acc || op == &con);
        if (op)
            seen |= op == &acc ? 1 : 2;
    }
    CHECK(seen == 3 && acc.error == 0 && con.error == 0 && !acc.pending && !con.pending);
    CHECK(acc.u.accept.sock != INVALID_SOCKET && acc.u.accept.peer_len == (int)sizeof(struct sockaddr_in));
    CHECK(acc.u.accept.local_len == (int)sizeof(struct sockaddr_in) &&
          ((struct sockaddr_in *)&acc.u.accept.local)->sin_port == a.sin_port);
    close(l);
    *client = c;
    *server = acc.u.accept.sock;
}

static void test_post_and_wakeup_timeouts(void)
{
    HANDLE port = new_port();
    lx_iocp_op op = {0}, *out[4];
    int64_t t0 = lx_iocp_monotonic_ns();
    CHECK(lx_iocp_wait(port, out, 4, 30000000) == 0);
    CHECK(lx_iocp_monotonic_ns() - t0 >= 30000000);  /* never early */
    CHECK(lx_iocp_wait(port, out, 4, 0) == 0);
    CHECK(lx_iocp_post(port, &op, 42) == 0);
    CHECK(op.pending && lx_iocp_post(port, &op, 1) == ERROR_BUSY);
    CHECK(lx_iocp_cancel(&op) == ERROR_NOT_FOUND);  /* posts are already queued */
    CHECK(lx_iocp_wait(port, out, 4, -1) == 1 && out[0] == &op);
    CHECK(op.kind == LX_IOCP_POST && op.bytes == 42 && op.error == 0 && !op.pending);
    /* A bare wakeup is never reported, and makes a wait return. */
    CHECK(lx_iocp_post(port, NULL, 0) == 0);
    CHECK(lx_iocp_wait(port, out, 4, -1) == 0);
    CHECK(lx_iocp_wait(port, NULL, 4, 0) == -(int)ERROR_INVALID_PARAMETER);
    CHECK(lx_iocp_close(port) == 0);
}

static void *wake_later(void *port)
{
    usleep(50000);
    lx_iocp_post((HANDLE)port, NULL, 0);
    return NULL;
}

static void test_wakeup_from_thread(void)
{
    HANDLE port = new_port();
    lx_iocp_op *out[1];
    pthread_t t;
    pthread_create(&t, NULL, wake_later, port);
    int64_t t0 = lx_iocp_monotonic_ns();
    CHECK(lx_iocp_wait(port, out, 1, -1) == 0);
    CHECK(lx_iocp_monotonic_ns() - t0 >= 40000000);
    pthread_join(t, NULL);
    lx_iocp_close(port);
}

static void test_batch(void)
{
    HANDLE port = new_port();
    static lx_iocp_op ops[200];
    static lx_iocp_op *out[200];
    for (int i = 0; i < 200; i++)
        CHECK(lx_iocp_post(port, &ops[i], (DWORD)i) == 0);
    CHECK(lx_iocp_wait(port, out, 200, 0) == LX_IOCP_MAX_BATCH);
    CHECK(out[0] == &ops[0] && out[127] == &ops[127]);  /* FIFO */
    CHECK(lx_iocp_wait(port, out, 200, 0) == 200 - LX_IOCP_MAX_BATCH);
    CHECK(out[0] == &ops[128] && out[0]->bytes == 128);
    lx_iocp_close(port);
}

static void test_tcp_stream(void)
{
    HANDLE port = new_port();
    int c, s;
    tcp_pair(port, &c, &s);
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)s) == 0);
    /* Three buffers, 5 MiB in all: completes only when all is written. */
    size_t sizes[3] = { 1, 3u << 20, (2u << 20) - 1 + 7 };
    size_t total = sizes[0] + sizes[1] + sizes[2];
    unsigned char *src = malloc(total), *dst = malloc(total + 1);
    for (size_t i = 0; i < total; i++)
        src[i] = (unsigned char)(i * 7 + (i >> 13));
    lx_iocp_buf bufs[3] = { { src, sizes[0] }, { src + sizes[0], sizes[1] },
                            { src + sizes[0] + sizes[1], sizes[2] } };
    lx_iocp_op snd = {0}, rcv = {0};
    CHECK(lx_iocp_send(&snd, c, bufs, 3) == 0);
    size_t got = 0;
    int send_done = 0, eof = 0;
    while (!eof) {
        if (!rcv.pending)
            CHECK(lx_iocp_recv(&rcv, s, dst + got, got < total ? total - got : 1) == 0);
        lx_iocp_op *op = wait_one(port, 5000);
        CHECK(op != NULL);
        if (op == NULL)
            break;
        if (op == &snd) {
            CHECK(snd.error == 0 && snd.bytes == total);
            send_done = 1;
            CHECK(shutdown(c, SHUT_WR) == 0);
        } else {
            CHECK(op == &rcv && rcv.error == 0);
            CHECK(rcv.bytes >= 1 || send_done);  /* >= 1 byte, or 0 at EOF */
            got += rcv.bytes;
            eof = rcv.bytes == 0;
        }
    }
    CHECK(send_done && got == total && memcmp(src, dst, total) == 0);
    free(src);
    free(dst);
    close(c);
    close(s);
    lx_iocp_close(port);
}

static void test_connect_refused_and_reset(void)
{
    HANDLE port = new_port();
    struct sockaddr_in a;
    int l = listener(&a);
    close(l);  /* nobody listens there now */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    lx_iocp_op con = {0};
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)c) == 0);
    CHECK(lx_iocp_connect(&con, c, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(wait_one(port, 5000) == &con && con.error == WSAECONNREFUSED);
    close(c);

    int s;
    tcp_pair(port, &c, &s);
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)s) == 0);
    char buf[16];
    lx_iocp_op rcv = {0};
    CHECK(lx_iocp_recv(&rcv, s, buf, sizeof buf) == 0);
    struct linger lg = { 1, 0 };  /* close with RST */
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c);
    CHECK(wait_one(port, 5000) == &rcv && rcv.error == WSAECONNRESET);
    close(s);
    lx_iocp_close(port);
}

static void test_cancel(void)
{
    HANDLE port = new_port();
    int c, s;
    char buf[16];
    tcp_pair(port, &c, &s);
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)s) == 0);
    lx_iocp_op r1 = {0}, r2 = {0};
    CHECK(lx_iocp_recv(&r1, s, buf, 8) == 0);
    CHECK(lx_iocp_recv(&r2, s, buf + 8, 8) == 0);
    CHECK(lx_iocp_recv(&r1, s, buf, 8) == ERROR_BUSY);  /* still the kernel's */
    CHECK(lx_iocp_cancel(&r1) == 0);
    CHECK(lx_iocp_cancel(&r1) == ERROR_NOT_FOUND);     /* finished, not yet dequeued */
    CHECK(wait_one(port, 1000) == &r1 && r1.error == ERROR_OPERATION_ABORTED);
    CHECK(lx_iocp_cancel(&r1) == ERROR_NOT_FOUND);     /* not in flight */
    /* The op behind the cancelled one still gets the data. */
    CHECK(write(c, "hello", 5) == 5);
    CHECK(wait_one(port, 5000) == &r2 && r2.error == 0 && r2.bytes == 5);
    /* Completed before the cancel: the cancel finds nothing, the result stands. */
    CHECK(lx_iocp_recv(&r1, s, buf, 8) == 0);
    CHECK(write(c, "x", 1) == 1);
    lx_iocp_op *out[1];
    CHECK(lx_iocp_wait(port, out, 1, 0) == 0 || out[0] == &r1);
    if (r1.pending) {
        usleep(10000);
        CHECK(lx_iocp_cancel(&r1) == 0 || r1.pending);
        CHECK(wait_one(port, 1000) == &r1);
        CHECK(r1.error == 0 || r1.error == ERROR_OPERATION_ABORTED);
    } else {
        CHECK(r1.error == 0 && r1.bytes == 1);
    }
    /* A pending accept, cancelled: no socket. */
    struct sockaddr_in a;
    int l = listener(&a);
    lx_iocp_op acc = {0};
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)l) == 0);
    CHECK(lx_iocp_accept(&acc, l) == 0 && lx_iocp_cancel(&acc) == 0);
    CHECK(wait_one(port, 1000) == &acc && acc.error == ERROR_OPERATION_ABORTED &&
          acc.u.accept.sock == INVALID_SOCKET);
    close(l);
    close(c);
    close(s);
    lx_iocp_close(port);
}

static void test_closed_fd_and_reuse(void)
{
    HANDLE port = new_port();
    int c, s;
    char buf[16];
    tcp_pair(port, &c, &s);
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)s) == 0);
    lx_iocp_op r = {0}, r2 = {0};
    CHECK(lx_iocp_recv(&r, s, buf, sizeof buf) == 0);
    close(s);  /* Windows: the op completes, aborted */
    CHECK(wait_one(port, 2000) == &r && r.error == ERROR_OPERATION_ABORTED);
    /* Op on the closed number: not a socket any more. */
    CHECK(lx_iocp_recv(&r, s, buf, sizeof buf) == WSAENOTSOCK);

    /* Close and reuse the number at once: the old op is aborted, the new
     * file works on its own association. */
    int c2, s2;
    tcp_pair(port, &c2, &s2);
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)s2) == 0);
    CHECK(lx_iocp_recv(&r, s2, buf, sizeof buf) == 0);
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    close(s2);
    CHECK(dup3(p[0], s2, O_CLOEXEC) == s2);  /* the number, now a pipe */
    close(p[0]);
    CHECK(lx_iocp_read(&r2, (HANDLE)(intptr_t)s2, buf, sizeof buf) == ERROR_INVALID_HANDLE);
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)s2) == 0);
    CHECK(wait_one(port, 2000) == &r && r.error == ERROR_OPERATION_ABORTED);
    CHECK(lx_iocp_read(&r2, (HANDLE)(intptr_t)s2, buf, sizeof buf) == 0);
    CHECK(write(p[1], "ab", 2) == 2);
    CHECK(wait_one(port, 2000) == &r2 && r2.error == 0 && r2.bytes == 2);
    close(s2);
    close(p[1]);
    close(c);
    close(c2);
    lx_iocp_close(port);
}

static void test_udp(void)
{
    HANDLE port = new_port();
    int a = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), b = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof sa;
    bind(a, (struct sockaddr *)&sa, sizeof sa);
    getsockname(a, (struct sockaddr *)&sa, &l);
    bind(b, (struct sockaddr *)&(struct sockaddr_in){ .sin_family = AF_INET,
         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) }, sizeof sa);
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)a) == 0);
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)b) == 0);
    char buf[4];
    lx_iocp_op rf = {0}, st = {0};
    CHECK(lx_iocp_recvfrom(&rf, a, buf, sizeof buf) == 0);
    CHECK(lx_iocp_sendto(&st, b, "hi", 2, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(lx_iocp_sendto(&st, b, "hi", 2, NULL, 0) == ERROR_BUSY);
    for (int i = 0; i < 2; i++) {
        lx_iocp_op *op = wait_one(port, 2000);
        CHECK(op == &rf || op == &st);
    }
    CHECK(st.error == 0 && st.bytes == 2);
    CHECK(rf.error == 0 && rf.bytes == 2 && memcmp(buf, "hi", 2) == 0);
    CHECK(rf.u.from.addr_len == (int)sizeof(struct sockaddr_in) &&
          ((struct sockaddr_in *)&rf.u.from.addr)->sin_family == AF_INET);
    /* A datagram longer than the buffer: cut, WSAEMSGSIZE. */
    CHECK(lx_iocp_recvfrom(&rf, a, buf, sizeof buf) == 0);
    CHECK(lx_iocp_sendto(&st, b, "toolong", 7, (struct sockaddr *)&sa, sizeof sa) == 0);
    for (int i = 0; i < 2; i++)
        CHECK(wait_one(port, 2000) != NULL);
    CHECK(rf.error == WSAEMSGSIZE && rf.bytes == 4 && memcmp(buf, "tool", 4) == 0);
    CHECK(lx_iocp_sendto(&st, b, "x", 1, NULL, 0) == ERROR_INVALID_PARAMETER);
    close(a);
    close(b);
    lx_iocp_close(port);
}

static void test_pipes(void)
{
    HANDLE port = new_port();
    int p[2];
    char buf[8];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    HANDLE r = (HANDLE)(intptr_t)p[0], w = (HANDLE)(intptr_t)p[1];
    lx_iocp_op rd = {0}, wr = {0};
    CHECK(lx_iocp_read(&rd, r, buf, sizeof buf) == ERROR_INVALID_HANDLE);  /* no port */
    CHECK(lx_iocp_associate(port, r) == 0 && lx_iocp_associate(port, w) == 0);
    CHECK(lx_iocp_associate(port, r) == 0);  /* the same port again: accepted */
    CHECK(lx_iocp_recv(&rd, p[0], buf, sizeof buf) == WSAENOTSOCK);
    /* 1 MiB through a 64 KiB pipe: the write completes once all is in. */
    size_t big = 1u << 20;
    char *data = malloc(big), *back = malloc(big);
    memset(data, 'z', big);
    CHECK(lx_iocp_read(&rd, r, back, big) == 0);
    CHECK(lx_iocp_write(&wr, w, data, big) == 0);
    size_t got = 0;
    int wdone = 0;
    while (got < big || !wdone) {
        lx_iocp_op *op = wait_one(port, 5000);
        CHECK(op != NULL);
        if (op == NULL)
            break;
        if (op == &wr) {
            CHECK(wr.error == 0 && wr.bytes == big);
            wdone = 1;
        } else {
            CHECK(op == &rd && rd.error == 0 && rd.bytes > 0);
            got += rd.bytes;
            if (got < big)
                CHECK(lx_iocp_read(&rd, r, back + got, big - got) == 0);
        }
    }
    CHECK(got == big && wdone && memcmp(data, back, big) == 0);
    /* EOF on a pipe is ERROR_BROKEN_PIPE, as ReadFile reports it. */
    CHECK(lx_iocp_read(&rd, r, buf, sizeof buf) == 0);
    close(p[1]);
    CHECK(wait_one(port, 2000) == &rd && rd.error == ERROR_BROKEN_PIPE && rd.bytes == 0);
    /* And a write with no reader. */
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    CHECK(lx_iocp_associate(port, (HANDLE)(intptr_t)p[1]) == 0);
    /* A read on the write end ends when the reader goes away. */
    CHECK(lx_iocp_read(&rd, (HANDLE)(intptr_t)p[1], buf, sizeof buf) == 0);
    CHECK(wait_one(port, 30) == NULL);
    close(p[0]);
    CHECK(wait_one(port, 2000) == &rd && rd.error == ERROR_BROKEN_PIPE);
    CHECK(lx_iocp_write(&wr, (HANDLE)(intptr_t)p[1], "x", 1) == 0);
    CHECK(wait_one(port, 2000) == &wr && wr.error == ERROR_BROKEN_PIPE);
    close(p[1]);
    close((int)(intptr_t)r);
    CHECK(lx_iocp_pipe_connect(&rd, port, r) == ERROR_NOT_SUPPORTED && !rd.pending);
    free(data);
    free(back);
    lx_iocp_close(port);
}

static void test_process(void)
{
    HANDLE port = new_port();
    int ends[2];
    CHECK(pipe2(ends, O_CLOEXEC) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(50000);
        _exit(3);
    }
    close(ends[1]);
    /* A pidfd; without one (valgrind does not know pidfd_open), the read
     * end of a pipe the child holds open until it exits: any fd that turns
     * readable is a waitable handle to the emulation. */
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        pfd = dup(ends[0]);
    close(ends[0]);
    CHECK(pfd >= 0);
    lx_iocp_op w = {0}, w2 = {0};
    CHECK(lx_iocp_wait_process(&w, port, (HANDLE)(intptr_t)pfd) == 0);
    CHECK(lx_iocp_wait_process(&w2, port, (HANDLE)(intptr_t)pfd) == 0);
    CHECK(lx_iocp_cancel(&w2) == 0);
    CHECK(wait_one(port, 1000) == &w2 && w2.error == ERROR_OPERATION_ABORTED);
    close(pfd);  /* the emulation waits on its own dup */
    CHECK(wait_one(port, 5000) == &w && w.error == 0 && w.kind == LX_IOCP_PROCESS);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
    CHECK(lx_iocp_wait_process(&w, port, (HANDLE)(intptr_t)-1) == ERROR_INVALID_HANDLE);
    lx_iocp_close(port);
}

static void test_close_port_with_ops(void)
{
    /* Closing the port completes nothing; the emulation frees its state
     * (valgrind checks that). */
    HANDLE port = new_port();
    int c, s;
    char buf[4];
    tcp_pair(port, &c, &s);
    lx_iocp_op r = {0}, post = {0};
    CHECK(lx_iocp_recv(&r, c, buf, sizeof buf) == 0);
    CHECK(lx_iocp_post(port, &post, 0) == 0);
    CHECK(lx_iocp_close(port) == 0);
    CHECK(r.pending);
    close(c);
    close(s);
}

int main(void)
{
    static const struct { const char *name; void (*fn)(void); } tests[] = {
        { "post_and_wakeup_timeouts", test_post_and_wakeup_timeouts },
        { "wakeup_from_thread", test_wakeup_from_thread },
        { "batch", test_batch },
        { "tcp_stream", test_tcp_stream },
        { "connect_refused_and_reset", test_connect_refused_and_reset },
        { "cancel", test_cancel },
        { "closed_fd_and_reuse", test_closed_fd_and_reuse },
        { "udp", test_udp },
        { "pipes", test_pipes },
        { "process", test_process },
        { "close_port_with_ops", test_close_port_with_ops },
    };
    signal(SIGPIPE, SIG_IGN);  /* as Python does: EPIPE, not a signal */
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        g_cur_failed = 0;
        tests[i].fn();
        printf("%s %s\n", g_cur_failed ? "FAIL" : "ok  ", tests[i].name);
        if (g_cur_failed)
            g_failed++;
        else
            g_passed++;
    }
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
