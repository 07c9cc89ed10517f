/* Tests of csrc/dgram_batch.h (lx_send_datagrams): order, a full socket
 * reported as EAGAIN after the datagrams that did go out, and a bad datagram
 * in the middle stopping the batch with its own errno.  Built and run by
 * tests/test_c_helpers.py, once with sendmmsg() and once with the portable
 * loop (-DLX_NO_SENDMMSG). */
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

static int failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            failures++;                                                      \
        }                                                                    \
    } while (0)

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

int main(void)
{
    test_full_socket_reports_eagain_after_what_went_out();
    test_bad_datagram_stops_the_batch_with_its_errno();
    test_closed_fd_is_ebadf();
#ifdef LX_HAVE_SENDMMSG
    printf("dgram_batch (sendmmsg): %s\n", failures ? "FAILED" : "ok");
#else
    printf("dgram_batch (portable loop): %s\n", failures ? "FAILED" : "ok");
#endif
    return failures != 0;
}
