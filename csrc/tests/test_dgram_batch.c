/* Tests of csrc/dgram_batch.h.  lx_send_datagrams: order, a full socket
 * reported as EAGAIN after the datagrams that did go out, and a bad datagram
 * in the middle stopping the batch with its own errno.  lx_recv_datagrams:
 * order, lengths, cutting to the slot, senders, an empty queue on a blocking
 * socket, and a pending error reported once.  Built and run by
 * tests/test_c_helpers.py, once with sendmmsg()/recvmmsg() and once with the
 * portable code (-DLX_NO_MMSG). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dgram_batch.h"
#include "check.h"

static void nonblocking(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* A full socket: whole batches go out until one stops part-way with EAGAIN;
 * the receiver then gets exactly the datagrams reported sent, in order. */
static void test_full_socket_reports_eagain_after_what_went_out(void)
{
    int sv[2], err, sent, total = 0, got = 0, i, size = 4096;
    char payload[LX_DGRAM_BATCH_MAX][64], buf[64];
    lx_dgram d[LX_DGRAM_BATCH_MAX];
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
    nonblocking(sv[0]);
    nonblocking(sv[1]);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    for (;;) {
        for (i = 0; i < LX_DGRAM_BATCH_MAX; i++) {
            snprintf(payload[i], sizeof(payload[i]), "datagram %d", total + i);
            d[i].buf = payload[i];
            d[i].len = strlen(payload[i]);
            d[i].addr = NULL;
            d[i].addrlen = 0;
        }
        sent = lx_send_datagrams(sv[0], d, LX_DGRAM_BATCH_MAX, &err);
        CHECK(sent >= 0 && sent <= LX_DGRAM_BATCH_MAX);
        total += sent;
        if (sent < LX_DGRAM_BATCH_MAX) {
            CHECK(err == EAGAIN || err == EWOULDBLOCK);
            break;
        }
        CHECK(err == 0);
        if (total > 1000000) {
            CHECK(!"the socket never filled up");
            break;
        }
    }
    for (;;) {
        char want[64];
        ssize_t n = recv(sv[1], buf, sizeof(buf) - 1, 0);
        if (n < 0)
            break;
        buf[n] = 0;
        snprintf(want, sizeof(want), "datagram %d", got);
        CHECK(strcmp(buf, want) == 0);
        got++;
    }
    CHECK(got == total);
    close(sv[0]);
    close(sv[1]);
}

/* Addressed datagrams; one with a bad address in the middle stops the batch
 * there with that datagram's errno, and the rest can be sent after it. */
static void test_bad_datagram_stops_the_batch_with_its_errno(void)
{
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0), err, i;
    struct sockaddr_in to;
    socklen_t len = sizeof(to);
    lx_dgram d[4];
    const char *texts[4] = {"zero", "one", "two", "three"};
    char buf[16];
    memset(&to, 0, sizeof(to));
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(b, (struct sockaddr *)&to, sizeof(to)) == 0);
    CHECK(getsockname(b, (struct sockaddr *)&to, &len) == 0);
    nonblocking(a);
    nonblocking(b);
    for (i = 0; i < 4; i++) {
        d[i].buf = texts[i];
        d[i].len = strlen(texts[i]);
        d[i].addr = (struct sockaddr *)&to;
        d[i].addrlen = sizeof(to);
    }
    d[1].addrlen = 3;  /* too short for any address: EINVAL */
    CHECK(lx_send_datagrams(a, d, 4, &err) == 1);
    CHECK(err == EINVAL);
    CHECK(lx_send_datagrams(a, &d[2], 2, &err) == 2);
    CHECK(err == 0);
    for (i = 0; i < 3; i++) {
        ssize_t n = recv(b, buf, sizeof(buf) - 1, 0);
        CHECK(n > 0);
        if (n <= 0)
            break;
        buf[n] = 0;
        CHECK(strcmp(buf, texts[i == 0 ? 0 : i + 1]) == 0);
    }
    CHECK(recv(b, buf, sizeof(buf), 0) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    close(a);
    close(b);
}

static void test_closed_fd_is_ebadf(void)
{
    lx_dgram d = {"x", 1, NULL, 0};
    int err;
    CHECK(lx_send_datagrams(-1, &d, 1, &err) == 0);
    CHECK(err == EBADF);
}

static int udp_socket_on_loopback(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    socklen_t len = sizeof(*addr);
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)addr, sizeof(*addr)) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)addr, &len) == 0);
    return fd;
}

#define SLOT 8
#define STRIDE 16

/* Five datagrams from two senders, one empty and one longer than the slot,
 * all queued before the first call: they come out in order, each with its
 * length (the long one cut to the slot) and its sender, in batches of at
 * most what was asked for; then EAGAIN.  The socket is blocking: the call
 * must not wait for more. */
static void test_receive_in_order_with_senders(void)
{
    struct sockaddr_in to, from1, from2;
    int rx = udp_socket_on_loopback(&to);
    int tx1 = udp_socket_on_loopback(&from1), tx2 = udp_socket_on_loopback(&from2);
    const char *texts[5] = {"zero", "", "two", "a longer one", "four"};
    int senders[5] = {1, 2, 1, 2, 2};
    char buf[LX_DGRAM_BATCH_MAX * STRIDE];
    lx_rdgram d[LX_DGRAM_BATCH_MAX];
    int i, got = 0, calls = 0, r;
    for (i = 0; i < 5; i++)
        CHECK(sendto(senders[i] == 1 ? tx1 : tx2, texts[i], strlen(texts[i]), 0,
                     (struct sockaddr *)&to, sizeof(to)) == (ssize_t)strlen(texts[i]));
    while (got < 5 && calls++ < 10) {
        r = lx_recv_datagrams(rx, buf, STRIDE, SLOT, d, 3);
        CHECK(r >= 1 && r <= 3);
        if (r < 1)
            break;
#ifdef LX_HAVE_RECVMMSG
        CHECK(r == (5 - got < 3 ? 5 - got : 3));
#else
        CHECK(r == 1);
#endif
        for (i = 0; i < r; i++, got++) {
            size_t want = strlen(texts[got]) < SLOT ? strlen(texts[got]) : SLOT;
            struct sockaddr_in *sender = senders[got] == 1 ? &from1 : &from2;
            CHECK(d[i].len == want);
            CHECK(memcmp(buf + i * STRIDE, texts[got], want) == 0);
            CHECK(d[i].addrlen == sizeof(struct sockaddr_in));
            CHECK(memcmp(&d[i].addr, sender, sizeof(*sender)) == 0);
        }
    }
    CHECK(got == 5);
    r = lx_recv_datagrams(rx, buf, STRIDE, SLOT, d, LX_DGRAM_BATCH_MAX);
    CHECK(r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
    CHECK(lx_recv_datagrams(rx, buf, SLOT, STRIDE, d, 1) == -1 && errno == EINVAL);
    CHECK(lx_recv_datagrams(-1, buf, STRIDE, SLOT, d, 1) == -1 && errno == EBADF);
    close(rx);
    close(tx1);
    close(tx2);
}

/* A connected socket with a datagram queued and a pending ICMP error (its
 * peer went away): the datagram and the error each come out exactly once. */
static void test_pending_error_reported_once(void)
{
    struct sockaddr_in a_addr, b_addr;
    int a = udp_socket_on_loopback(&a_addr), b = udp_socket_on_loopback(&b_addr);
    char buf[LX_DGRAM_BATCH_MAX * STRIDE];
    lx_rdgram d[LX_DGRAM_BATCH_MAX];
    int i, r, datagrams = 0, errors = 0, eagain = 0;
    CHECK(connect(a, (struct sockaddr *)&b_addr, sizeof(b_addr)) == 0);
    CHECK(sendto(b, "hi", 2, 0, (struct sockaddr *)&a_addr, sizeof(a_addr)) == 2);
    close(b);
    CHECK(send(a, "x", 1, 0) == 1);  /* answered by ICMP port unreachable */
    usleep(20000);
    for (i = 0; i < 5 && !eagain; i++) {
        r = lx_recv_datagrams(a, buf, STRIDE, SLOT, d, LX_DGRAM_BATCH_MAX);
        if (r > 0) {
            datagrams += r;
            CHECK(d[0].len == 2 && memcmp(buf, "hi", 2) == 0);
        } else if (errno == ECONNREFUSED) {
            errors++;
        } else {
            CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
            eagain = 1;
        }
    }
    CHECK(datagrams == 1);
    CHECK(errors == 1);
    CHECK(eagain);
    close(a);
}

int main(void)
{
    test_full_socket_reports_eagain_after_what_went_out();
    test_bad_datagram_stops_the_batch_with_its_errno();
    test_closed_fd_is_ebadf();
    test_receive_in_order_with_senders();
    test_pending_error_reported_once();
#ifdef LX_HAVE_SENDMMSG
    printf("dgram_batch (sendmmsg): %s\n", failures ? "FAILED" : "ok");
#else
    printf("dgram_batch (portable loop): %s\n", failures ? "FAILED" : "ok");
#endif
    return failures != 0;
}
