/* test_iocp.c -- unit tests of csrc/iocp.c; built with mingw-w64 and run
 * under Wine by scripts/test_iocp_wine.sh (or natively on Windows).
 *
 * Every wait has a deadline, so a lost completion fails a test instead of
 * hanging the run.  The last line printed is "N passed, N failed". */
#include "../iocp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 10000  /* per op: generous, Wine under load can be slow */

static int g_fail;     /* set by a failing CHECK in the current test */
static int g_skip;     /* set by a test that cannot run here */

#define CHECK(c) do { if (!(c)) { \
    printf("    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); \
    g_fail = 1; } } while (0)
#define CHECK_EQ(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) { \
        printf("    %s:%d: %s == %s failed: %lld != %lld\n", \
               __FILE__, __LINE__, #a, #b, a_, b_); \
        g_fail = 1; } } while (0)
/* Bail out of a test whose setup failed (the rest would only crash). */
#define REQUIRE(c) do { if (!(c)) { \
    printf("    %s:%d: REQUIRE(%s) failed (error %lu)\n", __FILE__, __LINE__, \
           #c, (unsigned long)GetLastError()); \
    g_fail = 1; goto out; } } while (0)

static HANDLE g_port;

/* Dequeue completions until `op` is no longer in flight; 0 on timeout.
 * Other ops dequeued meanwhile are finished too (their pending flag drops). */
static int wait_done(lx_iocp_op *op, int timeout_ms)
{
    int64_t deadline = lx_iocp_monotonic_ns() + (int64_t)timeout_ms * 1000000;
    lx_iocp_op *out[8];
    while (op->pending) {
        int64_t left = deadline - lx_iocp_monotonic_ns();
        if (left <= 0) {
            printf("    timed out waiting for an op of kind %d\n", (int)op->kind);
            return 0;
        }
        int n = lx_iocp_wait(g_port, out, 8, left);
        if (n < 0) {
            printf("    lx_iocp_wait failed: %d\n", -n);
            return 0;
        }
    }
    return 1;
}

static SOCKET mksock(int family, int type)
{
    SOCKET s = WSASocketW(family, type, type == SOCK_DGRAM ? IPPROTO_UDP : IPPROTO_TCP,
                          NULL, 0, WSA_FLAG_OVERLAPPED);
    if (s != INVALID_SOCKET && lx_iocp_associate(g_port, (HANDLE)s) != 0) {
        closesocket(s);
        return INVALID_SOCKET;
    }
    return s;
}

static void closesock(SOCKET *s)
{
    if (*s != INVALID_SOCKET && closesocket(*s) != 0)
        printf("    closesocket: %d\n", WSAGetLastError());
    *s = INVALID_SOCKET;
}

/* Bound to the loopback address of `family`, port chosen by the OS. */
static int loopback(int family, struct sockaddr_storage *ss, int *len)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *len = (int)sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        *len = (int)sizeof *a;
    }
    return 1;
}

static int same_addr(const struct sockaddr_storage *a, int alen,
                     const struct sockaddr_storage *b, int blen)
{
    if (a->ss_family != b->ss_family || alen <= 0 || blen <= 0)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

/* A connected TCP pair through AcceptEx + ConnectEx, both on g_port.
 * Returns 0 and sets g_skip if the family is unavailable here. */
static int tcp_pair(int family, SOCKET *srv, SOCKET *cli)
{
    struct sockaddr_storage la, ca, pa;
    int llen, clen = sizeof ca, plen = sizeof pa;
    lx_iocp_op acc = {0}, con = {0};
    SOCKET l = INVALID_SOCKET;
    *srv = *cli = INVALID_SOCKET;

    l = mksock(family, SOCK_STREAM);
    loopback(family, &la, &llen);
    if (l == INVALID_SOCKET || bind(l, (struct sockaddr *)&la, llen) != 0) {
        if (family == AF_INET6) {
            g_skip = 1;  /* no IPv6 loopback on this machine */
            closesock(&l);
            return 0;
        }
        REQUIRE(0);
    }
    llen = sizeof la;
    REQUIRE(getsockname(l, (struct sockaddr *)&la, &llen) == 0);
    REQUIRE(listen(l, 8) == 0);
    CHECK_EQ(lx_iocp_accept(&acc, l), 0);
    CHECK(acc.pending);

    *cli = mksock(family, SOCK_STREAM);
    REQUIRE(*cli != INVALID_SOCKET);
    /* Unbound on purpose: lx_iocp_connect must bind it for ConnectEx. */
    CHECK_EQ(lx_iocp_connect(&con, *cli, (struct sockaddr *)&la, llen), 0);
    REQUIRE(wait_done(&con, WAIT_MS) && wait_done(&acc, WAIT_MS));
    CHECK_EQ(con.error, 0);
    CHECK_EQ(acc.error, 0);
    REQUIRE(acc.u.accept.sock != INVALID_SOCKET);
    *srv = acc.u.accept.sock;
    REQUIRE(lx_iocp_associate(g_port, (HANDLE)*srv) == 0);

    /* The addresses AcceptEx reported are the two ends of the connection. */
    REQUIRE(getsockname(*cli, (struct sockaddr *)&ca, &clen) == 0);
    CHECK(same_addr(&acc.u.accept.peer, acc.u.accept.peer_len, &ca, clen));
    CHECK(same_addr(&acc.u.accept.local, acc.u.accept.local_len, &la, llen));
    /* The *_CONTEXT updates make the new sockets ordinary connected ones. */
    CHECK_EQ(getpeername(*cli, (struct sockaddr *)&pa, &plen), 0);
    CHECK(same_addr(&pa, plen, &la, llen));
    plen = sizeof pa;
    CHECK_EQ(getpeername(*srv, (struct sockaddr *)&pa, &plen), 0);
    CHECK(same_addr(&pa, plen, &ca, clen));
    CHECK_EQ(acc.u.accept.local.ss_family, family);
out:
    closesock(&l);
    /* On a failed setup the ops may still be in flight: closing their
     * sockets aborts them; they must come back before the stack goes. */
    if (acc.pending || con.pending) {
        closesock(cli);
        wait_done(&acc, WAIT_MS);
        wait_done(&con, WAIT_MS);
    }
    return !g_fail;
}

/* Receive exactly len bytes on s (several recvs if the stream splits). */
static int recv_all(SOCKET s, char *buf, size_t len)
{
    size_t got = 0;
    lx_iocp_op op = {0};
    while (got < len) {
        DWORD err = lx_iocp_recv(&op, s, buf + got, len - got);
        if (err) {
            printf("    recv submit: %lu\n", (unsigned long)err);
            return 0;
        }
        if (!wait_done(&op, WAIT_MS) || op.error || op.bytes == 0) {
            printf("    recv: error %lu, %lu bytes\n", (unsigned long)op.error,
                   (unsigned long)op.bytes);
            return 0;
        }
        got += op.bytes;
    }
    return 1;
}

/* ---- tests ------------------------------------------------------------ */

static void test_clock(void)
{
    int64_t a = lx_iocp_monotonic_ns();
    Sleep(20);
    int64_t b = lx_iocp_monotonic_ns();
    CHECK(a > 0);
    CHECK(b - a >= 10 * 1000000LL);   /* Sleep may round, but not by half */
    CHECK(b - a < 5000 * 1000000LL);
}

static void test_wait_timeout_not_early(void)
{
    static const int64_t timeouts[] = { 1, 999999, 1000000, 2500000, 15000000,
                                        20300000, 31000001 };
    lx_iocp_op *out[4];
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        int64_t t0 = lx_iocp_monotonic_ns();
        int n = lx_iocp_wait(g_port, out, 4, timeouts[i]);
        int64_t dt = lx_iocp_monotonic_ns() - t0;
        CHECK_EQ(n, 0);
        if (dt < timeouts[i])
            printf("    timeout %lld ns returned after %lld ns\n",
                   (long long)timeouts[i], (long long)dt);
        CHECK(dt >= timeouts[i]);
        CHECK(dt < timeouts[i] + 2000 * 1000000LL);
    }
    int64_t t0 = lx_iocp_monotonic_ns();
    CHECK_EQ(lx_iocp_wait(g_port, out, 4, 0), 0);   /* a poll: at once */
    CHECK(lx_iocp_monotonic_ns() - t0 < 1000 * 1000000LL);
    CHECK_EQ(lx_iocp_wait(g_port, out, 0, 0), -(int)ERROR_INVALID_PARAMETER);
}

typedef struct { lx_iocp_op *op; DWORD err; } poster_arg;

static DWORD WINAPI poster(LPVOID p)
{
    poster_arg *a = p;
    Sleep(50);
    a->err = lx_iocp_post(g_port, a->op, 1234);
    return 0;
}

static void test_post_wakeup_from_thread(void)
{
    lx_iocp_op op = {0};
    lx_iocp_op *out[4];
    poster_arg arg = { &op, 0 };
    int value = 7;
    op.user = &value;

    /* A user op: the loop blocks "forever" and the other thread wakes it. */
    HANDLE t = CreateThread(NULL, 0, poster, &arg, 0, NULL);
    REQUIRE(t != NULL);
    int64_t t0 = lx_iocp_monotonic_ns();
    int n = lx_iocp_wait(g_port, out, 4, 10000 * 1000000LL);
    int64_t dt = lx_iocp_monotonic_ns() - t0;
    CHECK_EQ(WaitForSingleObject(t, WAIT_MS), WAIT_OBJECT_0);
    CloseHandle(t);
    CHECK_EQ(arg.err, 0);
    CHECK_EQ(n, 1);
    CHECK(out[0] == &op);
    CHECK_EQ(op.kind, LX_IOCP_POST);
    CHECK_EQ(op.bytes, 1234);
    CHECK_EQ(op.error, 0);
    CHECK(op.user == &value);          /* untouched */
    CHECK(!op.pending);
    CHECK(dt >= 30 * 1000000LL && dt < 5000 * 1000000LL);

    /* A bare wakeup: the wait returns early with nothing to report. */
    arg.op = NULL;
    t = CreateThread(NULL, 0, poster, &arg, 0, NULL);
    REQUIRE(t != NULL);
    t0 = lx_iocp_monotonic_ns();
    n = lx_iocp_wait(g_port, out, 4, 10000 * 1000000LL);
    dt = lx_iocp_monotonic_ns() - t0;
    CHECK_EQ(WaitForSingleObject(t, WAIT_MS), WAIT_OBJECT_0);
    CloseHandle(t);
    CHECK_EQ(n, 0);
    CHECK(dt < 5000 * 1000000LL);

    /* Posting an op still in flight is refused. */
    CHECK_EQ(lx_iocp_post(g_port, &op, 1), 0);
    CHECK_EQ(lx_iocp_post(g_port, &op, 2), ERROR_BUSY);
    CHECK_EQ(lx_iocp_cancel(&op), ERROR_NOT_FOUND);
    CHECK(wait_done(&op, WAIT_MS));
    CHECK_EQ(op.bytes, 1);
out:;
}

static void tcp_roundtrip(int family)
{
    SOCKET srv = INVALID_SOCKET, cli = INVALID_SOCKET;
    if (!tcp_pair(family, &srv, &cli))
        goto out;
    /* writev: three buffers arrive as one stream, in order. */
    lx_iocp_buf bufs[3] = { { "hello ", 6 }, { "iocp ", 5 }, { "world", 5 } };
    lx_iocp_op snd = {0};
    char buf[32] = {0};
    CHECK_EQ(lx_iocp_send(&snd, cli, bufs, 3), 0);
    REQUIRE(wait_done(&snd, WAIT_MS));
    CHECK_EQ(snd.error, 0);
    CHECK_EQ(snd.bytes, 16);
    CHECK(recv_all(srv, buf, 16));
    CHECK(memcmp(buf, "hello iocp world", 16) == 0);
    /* And back the other way. */
    lx_iocp_buf back = { "pong", 4 };
    CHECK_EQ(lx_iocp_send(&snd, srv, &back, 1), 0);
    REQUIRE(wait_done(&snd, WAIT_MS));
    CHECK(recv_all(cli, buf, 4));
    CHECK(memcmp(buf, "pong", 4) == 0);
out:
    closesock(&srv);
    closesock(&cli);
}

static void test_tcp_ipv4(void) { tcp_roundtrip(AF_INET); }
static void test_tcp_ipv6(void) { tcp_roundtrip(AF_INET6); }

static void test_tcp_large_transfer(void)
{
    const size_t N = 8u << 20;  /* far more than the socket buffers hold */
    SOCKET srv = INVALID_SOCKET, cli = INVALID_SOCKET;
    unsigned char *src = malloc(N), *dst = malloc(N);
    lx_iocp_op snd = {0}, rcv = {0};
    lx_iocp_op *out[8];
    size_t got = 0;
    REQUIRE(src && dst);
    memset(dst, 0, N);
    for (size_t i = 0; i < N; i++)
        src[i] = (unsigned char)(i * 131u + (i >> 12));
    if (!tcp_pair(AF_INET, &srv, &cli))
        goto out;

    /* One send of everything, drained by 64 KiB receives as they complete:
     * the send can only finish because the receiver keeps reading. */
    lx_iocp_buf b = { src, N };
    REQUIRE(lx_iocp_send(&snd, cli, &b, 1) == 0);
    REQUIRE(lx_iocp_recv(&rcv, srv, dst, 65536) == 0);
    int64_t deadline = lx_iocp_monotonic_ns() + 60000 * 1000000LL;
    while (snd.pending || rcv.pending) {
        REQUIRE(lx_iocp_monotonic_ns() < deadline);
        int n = lx_iocp_wait(g_port, out, 8, 1000 * 1000000LL);
        REQUIRE(n >= 0);
        for (int i = 0; i < n; i++) {
            if (out[i] != &rcv)
                continue;
            REQUIRE(rcv.error == 0 && rcv.bytes > 0);
            got += rcv.bytes;
            REQUIRE(got <= N);
            if (got < N) {
                size_t want = N - got < 65536 ? N - got : 65536;
                REQUIRE(lx_iocp_recv(&rcv, srv, dst + got, want) == 0);
            }
        }
    }
    CHECK_EQ(snd.error, 0);
    CHECK_EQ(snd.bytes, N);
    CHECK_EQ(got, N);
    for (size_t i = 0; i < N; i++) {
        if (src[i] != dst[i]) {
            printf("    first difference at byte %zu\n", i);
            g_fail = 1;
            break;
        }
    }
out:
    closesock(&srv);
    closesock(&cli);
    wait_done(&snd, WAIT_MS);   /* aborted by the closes if still out */
    wait_done(&rcv, WAIT_MS);
    free(src);
    free(dst);
}

static void test_peer_close_gives_eof(void)
{
    SOCKET srv = INVALID_SOCKET, cli = INVALID_SOCKET;
    lx_iocp_op rcv = {0};
    char buf[16];
    if (!tcp_pair(AF_INET, &srv, &cli))
        goto out;
    /* Pending first, so the EOF arrives as a completion, not at submit. */
    CHECK_EQ(lx_iocp_recv(&rcv, srv, buf, sizeof buf), 0);
    CHECK_EQ(shutdown(cli, SD_SEND), 0);
    REQUIRE(wait_done(&rcv, WAIT_MS));
    CHECK_EQ(rcv.error, 0);
    CHECK_EQ(rcv.bytes, 0);
    /* After a full close the next recv still reads EOF (or a reset). */
    closesock(&cli);
    CHECK_EQ(lx_iocp_recv(&rcv, srv, buf, sizeof buf), 0);
    REQUIRE(wait_done(&rcv, WAIT_MS));
    CHECK(rcv.bytes == 0);
    CHECK(rcv.error == 0 || rcv.error == WSAECONNRESET);
out:
    closesock(&srv);
    closesock(&cli);
}

static void test_cancel_pending_recv(void)
{
    SOCKET srv = INVALID_SOCKET, cli = INVALID_SOCKET;
    lx_iocp_op rcv = {0};
    char buf[16];
    if (!tcp_pair(AF_INET, &srv, &cli))
        goto out;
    CHECK_EQ(lx_iocp_recv(&rcv, srv, buf, sizeof buf), 0);
    CHECK_EQ(lx_iocp_recv(&rcv, srv, buf, sizeof buf), ERROR_BUSY);
    /* Nothing to read: make sure it really is waiting in the kernel. */
    lx_iocp_op *out[4];
    CHECK_EQ(lx_iocp_wait(g_port, out, 4, 50 * 1000000LL), 0);
    CHECK(rcv.pending);
    CHECK_EQ(lx_iocp_cancel(&rcv), 0);
    REQUIRE(wait_done(&rcv, WAIT_MS));
    CHECK_EQ(rcv.error, ERROR_OPERATION_ABORTED);
    CHECK_EQ(rcv.bytes, 0);
    CHECK_EQ(lx_iocp_cancel(&rcv), ERROR_NOT_FOUND);
    /* The connection is still usable after a cancelled recv. */
    lx_iocp_buf b = { "x", 1 };
    lx_iocp_op snd = {0};
    CHECK_EQ(lx_iocp_send(&snd, cli, &b, 1), 0);
    REQUIRE(wait_done(&snd, WAIT_MS));
    CHECK(recv_all(srv, buf, 1));
    CHECK_EQ(buf[0], 'x');

    /* Closing the socket completes what was pending on it, aborted. */
    CHECK_EQ(lx_iocp_recv(&rcv, srv, buf, sizeof buf), 0);
    closesock(&srv);
    REQUIRE(wait_done(&rcv, WAIT_MS));
    CHECK_EQ(rcv.error, ERROR_OPERATION_ABORTED);
out:
    closesock(&srv);
    closesock(&cli);
}

static void test_cancel_accept(void)
{
    struct sockaddr_storage la;
    int llen;
    lx_iocp_op acc = {0};
    SOCKET l = mksock(AF_INET, SOCK_STREAM);
    loopback(AF_INET, &la, &llen);
    REQUIRE(l != INVALID_SOCKET);
    REQUIRE(bind(l, (struct sockaddr *)&la, llen) == 0 && listen(l, 4) == 0);
    CHECK_EQ(lx_iocp_accept(&acc, l), 0);
    CHECK_EQ(lx_iocp_cancel(&acc), 0);
    REQUIRE(wait_done(&acc, WAIT_MS));
    CHECK_EQ(acc.error, ERROR_OPERATION_ABORTED);
    CHECK(acc.u.accept.sock == INVALID_SOCKET);  /* closed for us */
out:
    closesock(&l);
}

static void test_connect_refused(void)
{
    struct sockaddr_storage a;
    int alen;
    lx_iocp_op con = {0};
    SOCKET s = INVALID_SOCKET, probe = mksock(AF_INET, SOCK_STREAM);
    REQUIRE(probe != INVALID_SOCKET);
    /* A port that was just free and has no listener. */
    loopback(AF_INET, &a, &alen);
    REQUIRE(bind(probe, (struct sockaddr *)&a, alen) == 0);
    alen = sizeof a;
    REQUIRE(getsockname(probe, (struct sockaddr *)&a, &alen) == 0);
    closesock(&probe);
    s = mksock(AF_INET, SOCK_STREAM);
    REQUIRE(s != INVALID_SOCKET);
    CHECK_EQ(lx_iocp_connect(&con, s, (struct sockaddr *)&a, alen), 0);
    REQUIRE(wait_done(&con, WAIT_MS));
    CHECK_EQ(con.error, WSAECONNREFUSED);
out:
    closesock(&probe);
    closesock(&s);
}

static void test_udp_sendto_recvfrom(void)
{
    struct sockaddr_storage ra, sa;
    int ralen, salen;
    lx_iocp_op rcv = {0}, snd = {0};
    char buf[64] = {0}, big[100];
    SOCKET r = mksock(AF_INET, SOCK_DGRAM), s = mksock(AF_INET, SOCK_DGRAM);
    REQUIRE(r != INVALID_SOCKET && s != INVALID_SOCKET);
    loopback(AF_INET, &ra, &ralen);
    loopback(AF_INET, &sa, &salen);
    REQUIRE(bind(r, (struct sockaddr *)&ra, ralen) == 0);
    REQUIRE(bind(s, (struct sockaddr *)&sa, salen) == 0);
    ralen = sizeof ra;
    salen = sizeof sa;
    REQUIRE(getsockname(r, (struct sockaddr *)&ra, &ralen) == 0);
    REQUIRE(getsockname(s, (struct sockaddr *)&sa, &salen) == 0);

    CHECK_EQ(lx_iocp_recvfrom(&rcv, r, buf, sizeof buf), 0);
    CHECK_EQ(lx_iocp_sendto(&snd, s, "datagram", 8, (struct sockaddr *)&ra, ralen), 0);
    REQUIRE(wait_done(&snd, WAIT_MS) && wait_done(&rcv, WAIT_MS));
    CHECK_EQ(snd.error, 0);
    CHECK_EQ(snd.bytes, 8);
    CHECK_EQ(rcv.error, 0);
    CHECK_EQ(rcv.bytes, 8);
    CHECK(memcmp(buf, "datagram", 8) == 0);
    CHECK(same_addr(&rcv.u.from.addr, rcv.u.from.addr_len, &sa, salen));

    /* A datagram larger than the buffer: truncated, reported WSAEMSGSIZE
     * (a warning: the op still completes through the port). */
    memset(big, 'z', sizeof big);
    CHECK_EQ(lx_iocp_sendto(&snd, s, big, sizeof big, (struct sockaddr *)&ra, ralen), 0);
    REQUIRE(wait_done(&snd, WAIT_MS));
    CHECK_EQ(lx_iocp_recvfrom(&rcv, r, buf, 10), 0);
    REQUIRE(wait_done(&rcv, WAIT_MS));
    CHECK_EQ(rcv.error, WSAEMSGSIZE);
    CHECK_EQ(rcv.bytes, 10);
    CHECK(memcmp(buf, "zzzzzzzzzz", 10) == 0);
out:
    closesock(&r);
    closesock(&s);
}

static void test_submit_errors(void)
{
    lx_iocp_op op = {0};
    char buf[4];
    lx_iocp_buf b = { buf, sizeof buf };
    /* Failing at submit: an error code, and no completion will come. */
    CHECK_EQ(lx_iocp_recv(&op, INVALID_SOCKET, buf, sizeof buf), WSAENOTSOCK);
    CHECK(!op.pending);
    CHECK_EQ(lx_iocp_send(&op, INVALID_SOCKET, &b, 0), ERROR_INVALID_PARAMETER);
    CHECK_EQ(lx_iocp_send(&op, INVALID_SOCKET, &b, LX_IOCP_MAX_BUFS + 1),
             ERROR_INVALID_PARAMETER);
    CHECK_EQ(lx_iocp_recv(&op, INVALID_SOCKET, NULL, 5), ERROR_INVALID_PARAMETER);
    CHECK_EQ(lx_iocp_cancel(&op), ERROR_NOT_FOUND);
    lx_iocp_op *out[2];
    CHECK_EQ(lx_iocp_wait(g_port, out, 2, 0), 0);
}

static void test_named_pipe(void)
{
    char name[64];
    HANDLE srv = INVALID_HANDLE_VALUE, cli = INVALID_HANDLE_VALUE;
    HANDLE srv2 = INVALID_HANDLE_VALUE, cli2 = INVALID_HANDLE_VALUE;
    lx_iocp_op con = {0}, rd = {0}, wr = {0};
    char buf[16] = {0};
    snprintf(name, sizeof name, "\\\\.\\pipe\\loopx-iocp-%lu",
             (unsigned long)GetCurrentProcessId());
    srv = CreateNamedPipeA(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
                           FILE_FLAG_FIRST_PIPE_INSTANCE,
                           PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, 2,
                           4096, 4096, 0, NULL);
    REQUIRE(srv != INVALID_HANDLE_VALUE);
    REQUIRE(lx_iocp_associate(g_port, srv) == 0);

    /* Server waits first: a real pending ConnectNamedPipe. */
    CHECK_EQ(lx_iocp_pipe_connect(&con, g_port, srv), 0);
    CHECK(con.pending);
    cli = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                      FILE_FLAG_OVERLAPPED, NULL);
    REQUIRE(cli != INVALID_HANDLE_VALUE);
    REQUIRE(lx_iocp_associate(g_port, cli) == 0);
    REQUIRE(wait_done(&con, WAIT_MS));
    CHECK_EQ(con.error, 0);

    CHECK_EQ(lx_iocp_read(&rd, srv, buf, sizeof buf), 0);
    CHECK_EQ(lx_iocp_write(&wr, cli, "ping", 4), 0);
    REQUIRE(wait_done(&wr, WAIT_MS) && wait_done(&rd, WAIT_MS));
    CHECK_EQ(wr.error, 0);
    CHECK_EQ(wr.bytes, 4);
    CHECK_EQ(rd.error, 0);
    CHECK_EQ(rd.bytes, 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK_EQ(lx_iocp_write(&wr, srv, "pong!", 5), 0);
    CHECK_EQ(lx_iocp_read(&rd, cli, buf, sizeof buf), 0);
    REQUIRE(wait_done(&wr, WAIT_MS) && wait_done(&rd, WAIT_MS));
    CHECK_EQ(rd.error, 0);
    CHECK_EQ(rd.bytes, 5);
    CHECK(memcmp(buf, "pong!", 5) == 0);

    /* Client goes away while the server reads: ERROR_BROKEN_PIPE, either
     * through the completion or (if it raced ahead) at submit. */
    CHECK_EQ(lx_iocp_read(&rd, srv, buf, sizeof buf), 0);
    CHECK(CloseHandle(cli));
    cli = INVALID_HANDLE_VALUE;
    REQUIRE(wait_done(&rd, WAIT_MS));
    CHECK_EQ(rd.error, ERROR_BROKEN_PIPE);
    DWORD e = lx_iocp_read(&rd, srv, buf, sizeof buf);
    if (e == 0) {
        REQUIRE(wait_done(&rd, WAIT_MS));
        e = rd.error;
    }
    CHECK_EQ(e, ERROR_BROKEN_PIPE);

    /* Client first: ConnectNamedPipe says ERROR_PIPE_CONNECTED and queues
     * nothing; the op must still complete, successfully, through wait. */
    srv2 = CreateNamedPipeA(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
                            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, 2,
                            4096, 4096, 0, NULL);
    REQUIRE(srv2 != INVALID_HANDLE_VALUE);
    REQUIRE(lx_iocp_associate(g_port, srv2) == 0);
    cli2 = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                       FILE_FLAG_OVERLAPPED, NULL);
    REQUIRE(cli2 != INVALID_HANDLE_VALUE);
    CHECK_EQ(lx_iocp_pipe_connect(&con, g_port, srv2), 0);
    REQUIRE(wait_done(&con, WAIT_MS));
    CHECK_EQ(con.error, 0);
    CHECK_EQ(lx_iocp_cancel(&con), ERROR_NOT_FOUND);

    /* Closing a handle completes what is pending on it, with an error
     * (Windows cancels: ERROR_OPERATION_ABORTED; Wine: ERROR_BROKEN_PIPE). */
    REQUIRE(lx_iocp_associate(g_port, cli2) == 0);
    CHECK_EQ(lx_iocp_read(&rd, cli2, buf, sizeof buf), 0);
    CHECK(CloseHandle(cli2));
    cli2 = INVALID_HANDLE_VALUE;
    REQUIRE(wait_done(&rd, WAIT_MS));
    CHECK(rd.error == ERROR_OPERATION_ABORTED || rd.error == ERROR_BROKEN_PIPE);
    CHECK_EQ(rd.bytes, 0);
out:
    if (cli != INVALID_HANDLE_VALUE) CloseHandle(cli);
    if (cli2 != INVALID_HANDLE_VALUE) CloseHandle(cli2);
    if (srv != INVALID_HANDLE_VALUE) CloseHandle(srv);
    if (srv2 != INVALID_HANDLE_VALUE) CloseHandle(srv2);
}

/* Start this same program as a child that sleeps, then exits with `code`. */
static HANDLE spawn_child(int code, int sleep_ms)
{
    char exe[MAX_PATH], cmd[MAX_PATH + 64];
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    DWORD n = GetModuleFileNameA(NULL, exe, sizeof exe);
    if (n == 0 || n >= sizeof exe)
        return NULL;
    if (snprintf(cmd, sizeof cmd, "\"%s\" --child-exit %d %d", exe, code, sleep_ms)
        >= (int)sizeof cmd)
        return NULL;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    if (!CreateProcessA(exe, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
        return NULL;
    CloseHandle(pi.hThread);
    return pi.hProcess;
}

static void test_process_exit(void)
{
    lx_iocp_op op = {0};
    DWORD code = 0;
    HANDLE p = spawn_child(3, 300);
    REQUIRE(p != NULL);
    CHECK_EQ(lx_iocp_wait_process(&op, g_port, p), 0);
    CHECK_EQ(lx_iocp_wait_process(&op, g_port, p), ERROR_BUSY);
    REQUIRE(wait_done(&op, WAIT_MS));
    CHECK_EQ(op.error, 0);
    CHECK_EQ(op.kind, LX_IOCP_PROCESS);
    CHECK(op.u.proc.wait == NULL);      /* unregistered on completion */
    CHECK(GetExitCodeProcess(p, &code));
    CHECK_EQ(code, 3);
    /* An already exited process completes at once too. */
    CHECK_EQ(lx_iocp_wait_process(&op, g_port, p), 0);
    REQUIRE(wait_done(&op, WAIT_MS));
    CHECK_EQ(op.error, 0);
    CHECK_EQ(lx_iocp_cancel(&op), ERROR_NOT_FOUND);
out:
    if (p != NULL)
        CloseHandle(p);
}

static void test_process_wait_cancel(void)
{
    lx_iocp_op op = {0};
    DWORD code = 0;
    HANDLE p = spawn_child(0, 60000);
    REQUIRE(p != NULL);
    CHECK_EQ(lx_iocp_wait_process(&op, g_port, p), 0);
    CHECK_EQ(lx_iocp_cancel(&op), 0);
    REQUIRE(wait_done(&op, WAIT_MS));
    CHECK_EQ(op.error, ERROR_OPERATION_ABORTED);
    CHECK_EQ(lx_iocp_cancel(&op), ERROR_NOT_FOUND);
    /* Still running; a fresh wait sees the kill. */
    CHECK_EQ(lx_iocp_wait_process(&op, g_port, p), 0);
    CHECK(TerminateProcess(p, 9));
    REQUIRE(wait_done(&op, WAIT_MS));
    CHECK_EQ(op.error, 0);
    CHECK(GetExitCodeProcess(p, &code));
    CHECK_EQ(code, 9);
out:
    if (p != NULL)
        CloseHandle(p);
}

/* ---- harness ---------------------------------------------------------- */

static const struct { const char *name; void (*fn)(void); } tests[] = {
    { "clock", test_clock },
    { "wait_timeout_not_early", test_wait_timeout_not_early },
    { "post_wakeup_from_thread", test_post_wakeup_from_thread },
    { "submit_errors", test_submit_errors },
    { "tcp_ipv4", test_tcp_ipv4 },
    { "tcp_ipv6", test_tcp_ipv6 },
    { "tcp_large_transfer", test_tcp_large_transfer },
    { "peer_close_gives_eof", test_peer_close_gives_eof },
    { "cancel_pending_recv", test_cancel_pending_recv },
    { "cancel_accept", test_cancel_accept },
    { "connect_refused", test_connect_refused },
    { "udp_sendto_recvfrom", test_udp_sendto_recvfrom },
    { "named_pipe", test_named_pipe },
    { "process_exit", test_process_exit },
    { "process_wait_cancel", test_process_wait_cancel },
};

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    if (argc == 4 && strcmp(argv[1], "--child-exit") == 0) {
        Sleep((DWORD)atoi(argv[3]));
        return atoi(argv[2]);
    }
    setvbuf(stdout, NULL, _IONBF, 0);  /* lines appear even if we hang */
    g_port = lx_iocp_open();
    if (g_port == NULL) {
        printf("lx_iocp_open failed: %lu\n0 passed, 1 failed\n",
               (unsigned long)GetLastError());
        return 1;
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        g_fail = g_skip = 0;
        tests[i].fn();
        /* Nothing may be left in the port for the next test. */
        lx_iocp_op *out[8];
        int left = lx_iocp_wait(g_port, out, 8, 0);
        if (left != 0) {
            printf("    %d stray completion(s) left behind\n", left);
            g_fail = 1;
        }
        if (g_fail) {
            failed++;
            printf("FAIL %s\n", tests[i].name);
        } else if (g_skip) {
            skipped++;
            printf("skip %s\n", tests[i].name);
        } else {
            passed++;
            printf("ok   %s\n", tests[i].name);
        }
    }
    if (lx_iocp_close(g_port) != 0) {
        printf("lx_iocp_close failed\n");
        failed++;
    }
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
