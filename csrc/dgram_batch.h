/* dgram_batch.h -- send several datagrams with as few syscalls as the
 * platform allows (datagram.pxi's write cork).
 *
 * A syscall costs a few hundred nanoseconds on a machine with the usual
 * speculative-execution mitigations, about as much as the kernel's own work
 * for a small loopback datagram; a UDP server answering a burst of requests
 * halves its syscalls by sending the answers together.  Linux and FreeBSD have
 * sendmmsg(); elsewhere this is a loop of sendto()/send().
 */
#ifndef LOOPX_DGRAM_BATCH_H
#define LOOPX_DGRAM_BATCH_H

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* LX_NO_SENDMMSG forces the portable loop (to test it on Linux). */
#if (defined(__linux__) || defined(__FreeBSD__)) && !defined(LX_NO_SENDMMSG)
#define LX_HAVE_SENDMMSG 1
#endif

#define LX_DGRAM_BATCH_MAX 16

typedef struct {
    const void *buf;
    size_t len;
    const struct sockaddr *addr; /* NULL: the socket's connected peer */
    socklen_t addrlen;
} lx_dgram;

/* Send d[0..n) in order, n <= LX_DGRAM_BATCH_MAX.  Returns how many went out
 * before the first failure (n if none failed); *err is then the failure's
 * errno (EAGAIN when the socket buffer is full), or 0. */
static int lx_send_datagrams(int fd, const lx_dgram *d, int n, int *err)
{
    int i = 0;
    *err = 0;
    if (n > LX_DGRAM_BATCH_MAX)
        n = LX_DGRAM_BATCH_MAX;
#ifdef LX_HAVE_SENDMMSG
    {
        struct mmsghdr msgs[LX_DGRAM_BATCH_MAX];
        struct iovec iov[LX_DGRAM_BATCH_MAX];
        int j, r;
        memset(msgs, 0, sizeof(msgs[0]) * (size_t)n);
        for (j = 0; j < n; j++) {
            iov[j].iov_base = (void *)d[j].buf;
            iov[j].iov_len = d[j].len;
            msgs[j].msg_hdr.msg_iov = &iov[j];
            msgs[j].msg_hdr.msg_iovlen = 1;
            msgs[j].msg_hdr.msg_name = (void *)d[j].addr;
            msgs[j].msg_hdr.msg_namelen = d[j].addr ? d[j].addrlen : 0;
        }
        while (i < n) {
            /* sendmmsg stops at the first datagram that fails and reports
             * only the count before it; sending again from there returns
             * that datagram's error. */
            r = sendmmsg(fd, &msgs[i], (unsigned int)(n - i), 0);
            if (r < 0) {
                *err = errno;
                return i;
            }
            if (r == 0) {  /* not expected; do not spin */
                *err = EAGAIN;
                return i;
            }
            i += r;
        }
        return n;
    }
#else
    for (; i < n; i++) {
        ssize_t r = d[i].addr ? sendto(fd, d[i].buf, d[i].len, 0, d[i].addr, d[i].addrlen)
                              : send(fd, d[i].buf, d[i].len, 0);
        if (r < 0) {
            *err = errno;
            return i;
        }
    }
    return n;
#endif
}

#endif
