/* Tests of csrc/dgram_batch.h's lx_recv_datagrams: order, lengths, cutting
 * to the slot, senders, an empty queue on a blocking socket, and a pending
 * error reported once.  Built and run by tests/test_c_helpers.py, once with
 * recvmmsg() and once with the portable code (-DLX_NO_MMSG). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dgram_batch.h"
#include "check.h"

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
    test_receive_in_order_with_senders();
    test_pending_error_reported_once();
#ifdef LX_HAVE_RECVMMSG
    printf("dgram_batch (recvmmsg): %s\n", failures ? "FAILED" : "ok");
#else
    printf("dgram_batch (portable loop): %s\n", failures ? "FAILED" : "ok");
#endif
    return failures != 0;
}
