/* compat.h -- POSIX differences between the platforms loopx builds on. */
#ifndef LOOPX_COMPAT_H
#define LOOPX_COMPAT_H

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

/* macOS has no MSG_NOSIGNAL.  Python ignores SIGPIPE at startup, so a send to
 * a closed peer fails with EPIPE there as well, which is all we rely on. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* Linux's own socket features (the abstract AF_UNIX namespace). */
#ifdef __linux__
#define LX_LINUX 1
#else
#define LX_LINUX 0
#endif

/* Accept a connection as a non-blocking, close-on-exec socket: one accept4()
 * where there is one (Linux, the BSDs), else accept() and two fcntl()s.
 * LX_SOCK_NONBLOCK is SOCK_NONBLOCK where that exists, to tell Python's socket
 * constructor so (without it the caller must setblocking(False)).  Returns the
 * fd, or -1 with errno set. */
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC) && !defined(LX_NO_ACCEPT4)
#define LX_HAVE_ACCEPT4 1
#define LX_SOCK_NONBLOCK SOCK_NONBLOCK
#else
#define LX_SOCK_NONBLOCK 0   /* (LX_NO_ACCEPT4: the C tests' portable variant) */
#endif

static inline int lx_accept_nonblock(int fd, struct sockaddr *sa, socklen_t *salen)
{
#ifdef LX_HAVE_ACCEPT4
    return accept4(fd, sa, salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    int conn = accept(fd, sa, salen), flags, err;
    if (conn < 0)
        return -1;
    flags = fcntl(conn, F_GETFL);
    if (flags < 0 || fcntl(conn, F_SETFL, flags | O_NONBLOCK) < 0
            || fcntl(conn, F_SETFD, FD_CLOEXEC) < 0) {
        err = errno;
        close(conn);
        errno = err;
        return -1;
    }
    return conn;
#endif
}

#endif
