/* dgram_batch.h -- receive the datagrams queued at a socket with as few
 * syscalls as the platform allows (datagram.pxi's read batch).
 *
 * A syscall costs a few hundred nanoseconds on a machine with the usual
 * speculative-execution mitigations, about as much as the kernel's own work
 * for a small loopback datagram; a server that finds several requests
 * queued saves as many by taking them in one call.  That is recvmmsg() on
 * Linux only: FreeBSD's is a libc loop that drops an error met after the
 * first datagram (an ICMP error error_received() must see), where Linux
 * keeps it for the next call.  Elsewhere a call takes one datagram.
 * (Sending is not batched: answers leave one sendto() each, at once; see
 * _read_batch.)
 */
#ifndef LOOPX_DGRAM_BATCH_H
#define LOOPX_DGRAM_BATCH_H

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* LX_NO_MMSG forces the portable code (to test it on Linux). */
#if defined(__linux__) && !defined(LX_NO_MMSG)
#define LX_HAVE_RECVMMSG 1
#endif

#define LX_DGRAM_BATCH_MAX 16

/* How many datagrams one lx_recv_datagrams() call can return. */
#ifdef LX_HAVE_RECVMMSG
#define LX_RECV_BATCH_MAX LX_DGRAM_BATCH_MAX
#else
#define LX_RECV_BATCH_MAX 1
#endif

typedef struct {
    struct sockaddr_in6 addr; /* the sender; holds an AF_INET address too */
    socklen_t addrlen;
    size_t len;               /* bytes received */
} lx_rdgram;

/* Receive up to n queued datagrams (n <= LX_DGRAM_BATCH_MAX) without
 * blocking, even on a blocking socket: the i-th goes to buf + i * stride,
 * cut to slot bytes (slot <= stride) as recvfrom() cuts a datagram longer
 * than its buffer, and its sender to d[i].  Returns how many arrived (>= 1),
 * or -1 with errno set (EAGAIN or EWOULDBLOCK: none queued).  At most
 * LX_RECV_BATCH_MAX arrive (one without recvmmsg()); fewer than that, and
 * than asked for, means the queue was emptied. */
static int lx_recv_datagrams(int fd, char *buf, size_t stride, size_t slot,
                             lx_rdgram *d, int n)
{
    if (n > LX_DGRAM_BATCH_MAX)
        n = LX_DGRAM_BATCH_MAX;
    if (n < 1 || slot > stride) {
        errno = EINVAL;
        return -1;
    }
#ifdef LX_HAVE_RECVMMSG
    {
        struct mmsghdr msgs[LX_DGRAM_BATCH_MAX];
        struct iovec iov[LX_DGRAM_BATCH_MAX];
        int j, r;
        memset(msgs, 0, sizeof(msgs[0]) * (size_t)n);
        for (j = 0; j < n; j++) {
            iov[j].iov_base = buf + (size_t)j * stride;
            iov[j].iov_len = slot;
            msgs[j].msg_hdr.msg_iov = &iov[j];
            msgs[j].msg_hdr.msg_iovlen = 1;
            msgs[j].msg_hdr.msg_name = &d[j].addr;
            msgs[j].msg_hdr.msg_namelen = sizeof(d[j].addr);
        }
        /* An error met after the first datagram is kept by the kernel and
         * returned by the next call. */
        r = recvmmsg(fd, msgs, (unsigned int)n, MSG_DONTWAIT, NULL);
        for (j = 0; j < r; j++) {
            d[j].len = msgs[j].msg_len;
            /* The kernel reports the address's full length even when it
             * had to cut it; never claim more than the buffer holds. */
            d[j].addrlen = msgs[j].msg_hdr.msg_namelen < sizeof(d[j].addr)
                               ? msgs[j].msg_hdr.msg_namelen : sizeof(d[j].addr);
        }
        return r;
    }
#else
    {
        socklen_t addrlen = sizeof(d[0].addr);
        ssize_t r = recvfrom(fd, buf, slot, MSG_DONTWAIT,
                             (struct sockaddr *)&d[0].addr, &addrlen);
        if (r < 0)
            return -1;
        d[0].len = (size_t)r;
        d[0].addrlen = addrlen < sizeof(d[0].addr) ? addrlen : sizeof(d[0].addr);
        return 1;
    }
#endif
}

#endif
