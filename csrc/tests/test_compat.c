/* Tests of csrc/compat.h's lx_accept_nonblock: the accepted socket is
 * non-blocking and close-on-exec, the peer's address is filled in, an empty
 * queue is EAGAIN, and a bad fd its own errno.  Built and run by
 * tests/test_c_helpers.py, once with accept4() and once with the portable
 * accept() + fcntl() (-DLX_NO_ACCEPT4), the only path on macOS. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "compat.h"
#include "check.h"

static int listener(struct sockaddr_in *addr)
{
    socklen_t len = sizeof *addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)addr, sizeof *addr) == 0);
    CHECK(listen(fd, 8) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)addr, &len) == 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void test_accepted_socket_is_nonblocking_cloexec_with_the_peer(void)
{
    struct sockaddr_in addr, mine, peer;
    socklen_t len = sizeof mine, peerlen = sizeof peer;
    int lfd = listener(&addr), c = socket(AF_INET, SOCK_STREAM, 0), fd;
    CHECK(connect(c, (struct sockaddr *)&addr, sizeof addr) == 0);
    CHECK(getsockname(c, (struct sockaddr *)&mine, &len) == 0);
    fd = lx_accept_nonblock(lfd, (struct sockaddr *)&peer, &peerlen);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        CHECK(peerlen == sizeof peer);
        CHECK(peer.sin_family == AF_INET);
        CHECK(peer.sin_port == mine.sin_port);
        CHECK(peer.sin_addr.s_addr == mine.sin_addr.s_addr);
        /* The socket works: one byte through it (waited for, since the
         * socket does not block). */
        char b = 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        CHECK(write(c, "x", 1) == 1);
        CHECK(poll(&pfd, 1, 5000) == 1);
        CHECK(read(fd, &b, 1) == 1 && b == 'x');
        close(fd);
    }
    close(c);
    close(lfd);
}

static void test_empty_queue_is_eagain(void)
{
    struct sockaddr_in addr, peer;
    socklen_t peerlen = sizeof peer;
    int lfd = listener(&addr);
    errno = 0;
    CHECK(lx_accept_nonblock(lfd, (struct sockaddr *)&peer, &peerlen) == -1);
    CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
    close(lfd);
}

static void test_bad_fds_fail_with_their_errno(void)
{
    struct sockaddr_in peer;
    socklen_t peerlen = sizeof peer;
    int p[2];
    errno = 0;
    CHECK(lx_accept_nonblock(-1, (struct sockaddr *)&peer, &peerlen) == -1);
    CHECK(errno == EBADF);
    CHECK(pipe(p) == 0);
    errno = 0;
    CHECK(lx_accept_nonblock(p[0], (struct sockaddr *)&peer, &peerlen) == -1);
    CHECK(errno == ENOTSOCK);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    test_accepted_socket_is_nonblocking_cloexec_with_the_peer();
    test_empty_queue_is_eagain();
    test_bad_fds_fail_with_their_errno();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
