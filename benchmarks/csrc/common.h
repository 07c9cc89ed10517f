/* common.h: helpers shared by the harness's two C programs, loadgen.c (the
 * load generator) and raw_server.c (the "raw-c" reference server).
 *
 * Header-only on purpose: each program is built by one `cc -O2 file.c`
 * invocation (benchmarks/native.py), with no objects or link steps to manage.
 *
 * Endpoints are written the way benchmarks/network.py passes them:
 *   tcp:HOST:PORT   udp:HOST:PORT   unix:PATH
 */
#ifndef LOOPX_BENCH_COMMON_H
#define LOOPX_BENCH_COMMON_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct endpoint {
    int family;   /* AF_INET or AF_UNIX */
    int socktype; /* SOCK_STREAM or SOCK_DGRAM */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL, 0);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Small messages must not wait for Nagle's algorithm: every loop under test
 * sets TCP_NODELAY on its transports, so both ends of the benchmark do too. */
static inline void set_nodelay(int fd, const struct endpoint *ep)
{
    int one = 1;
    if (ep->family == AF_INET && ep->socktype == SOCK_STREAM)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* The idle-connections workload holds 10,000 sockets in one process; the
 * default soft limit (often 1024) would stop it long before that. */
static inline void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Parse "tcp:HOST:PORT", "udp:HOST:PORT" or "unix:PATH". Returns 0 or -1. */
static inline int parse_endpoint(const char *spec, struct endpoint *ep)
{
    memset(ep, 0, sizeof *ep);
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ep->addr;
        const char *path = spec + 5;
        if (strlen(path) >= sizeof un->sun_path)
            return -1;
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, path);
        ep->family = AF_UNIX;
        ep->socktype = SOCK_STREAM;
        ep->addrlen = sizeof *un;
        return 0;
    }
    int dgram = strncmp(spec, "udp:", 4) == 0;
    if (!dgram && strncmp(spec, "tcp:", 4) != 0)
        return -1;
    char host[64];
    const char *colon = strrchr(spec + 4, ':');
    if (!colon || (size_t)(colon - (spec + 4)) >= sizeof host)
        return -1;
    memcpy(host, spec + 4, (size_t)(colon - (spec + 4)));
    host[colon - (spec + 4)] = '\0';
    struct sockaddr_in *in = (struct sockaddr_in *)&ep->addr;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
        return -1;
    ep->family = AF_INET;
    ep->socktype = dgram ? SOCK_DGRAM : SOCK_STREAM;
    ep->addrlen = sizeof *in;
    return 0;
}

/* Write s as a JSON string literal (our messages are ASCII; anything else is
 * escaped so the Python side can always parse the line). */
static inline void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20 || ch > 0x7e)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

#endif
