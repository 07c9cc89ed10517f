/* raw_server.c: the "raw-c" reference server of the loopx benchmark harness.
 *
 * A plain single-threaded epoll server with no event-loop library at all: it
 * shows what this machine allows, so every loop's numbers can be read as a
 * fraction of that ceiling. It speaks the same contracts as the Python
 * servers in benchmarks/workloads/ so the same load generator checks it.
 *
 * Usage: raw_server tcp|unix|udp|http ENDPOINT
 *   tcp, unix  stream echo
 *   udp        datagram echo
 *   http       HTTP/1.1 keep-alive; each response's body is the request path
 * Prints `READY {json}` (the bound address) once listening and exits when its
 * stdin has a line or reaches EOF, which is how the harness stops it.
 */
#include "common.h"

#include <sys/epoll.h>

enum mode { MODE_ECHO, MODE_UDP, MODE_HTTP };

/* Per-connection state, indexed by fd. Echo connections own no buffer while
 * idle: reads go through one shared buffer and only an unsent remainder is
 * copied out, so idle memory per connection is as low as a server can get. */
struct sconn {
    char *out;          /* bytes still to send */
    size_t out_len, out_off;
    char *in;           /* http: an incomplete request */
    size_t in_len, in_cap;
    int writing;        /* interest is EPOLLOUT (reads paused until flushed) */
};

static enum mode mode;
static int epfd, listen_fd;
static struct sconn *table;
static size_t table_len;
static char shared_buf[1 << 16];

static void die(const char *what)
{
    fprintf(stderr, "raw_server: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void set_interest(int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        die("epoll_ctl");
}

static void drop(int fd)
{
    struct sconn *s = &table[fd];
    free(s->out);
    free(s->in);
    memset(s, 0, sizeof *s);
    close(fd);  /* also removes it from the epoll set */
}

/* Send out[out_off..out_len); on a full socket keep the rest and wait for
 * EPOLLOUT with reads paused, which is the backpressure a server must apply. */
static int flush_out(int fd)
{
    struct sconn *s = &table[fd];
    while (s->out_off < s->out_len) {
        ssize_t n = send(fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            s->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!s->writing) {
                set_interest(fd, EPOLLOUT);
                s->writing = 1;
            }
            return 0;
        } else {
            return -1;
        }
    }
    s->out_len = s->out_off = 0;
    if (s->writing) {
        set_interest(fd, EPOLLIN);
        s->writing = 0;
    }
    return 0;
}

static int queue_out(int fd, const char *data, size_t len)
{
    struct sconn *s = &table[fd];
    char *grown = realloc(s->out, s->out_len + len);
    if (!grown)
        return -1;
    s->out = grown;
    memcpy(s->out + s->out_len, data, len);
    s->out_len += len;
    return 0;
}

static int on_echo_readable(int fd)
{
    for (;;) {
        ssize_t n = recv(fd, shared_buf, sizeof shared_buf, 0);
        if (n == 0)
            return -1;
        if (n < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
        size_t done = 0;
        while (done < (size_t)n) {
            ssize_t w = send(fd, shared_buf + done, (size_t)n - done, MSG_NOSIGNAL);
            if (w > 0) {
                done += (size_t)w;
            } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                /* Keep the remainder, stop reading until it is flushed. */
                if (queue_out(fd, shared_buf + done, (size_t)n - done) < 0)
                    return -1;
                return flush_out(fd);
            } else if (!(w < 0 && errno == EINTR)) {
                return -1;
            }
        }
    }
}

static int on_http_readable(int fd)
{
    struct sconn *s = &table[fd];
    for (;;) {
        if (s->in_cap - s->in_len < 4096) {
            s->in_cap = s->in_cap ? s->in_cap * 2 : 16384;
            char *grown = realloc(s->in, s->in_cap);
            if (!grown)
                return -1;
            s->in = grown;
        }
        ssize_t n = recv(fd, s->in + s->in_len, s->in_cap - s->in_len, 0);
        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            return -1;
        }
        s->in_len += (size_t)n;
    }
    /* Answer every complete request in the buffer (clients pipeline). */
    size_t off = 0;
    for (;;) {
        char *req = s->in + off;
        char *end = memmem(req, s->in_len - off, "\r\n\r\n", 4);
        if (!end)
            break;
        char *path = memchr(req, ' ', (size_t)(end - req));
        char *path_end = path ? memchr(path + 1, ' ', (size_t)(end - path - 1)) : NULL;
        if (!path_end)
            return -1;
        path++;
        char head[128];
        int head_len = snprintf(head, sizeof head,
                                "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                                "Content-Type: text/plain\r\n\r\n", (int)(path_end - path));
        if (queue_out(fd, head, (size_t)head_len) < 0 ||
            queue_out(fd, path, (size_t)(path_end - path)) < 0)
            return -1;
        off = (size_t)(end + 4 - s->in);
    }
    memmove(s->in, s->in + off, s->in_len - off);
    s->in_len -= off;
    return flush_out(fd);
}

static void on_acceptable(void)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            if (errno == ECONNABORTED)
                continue;
            die("accept4");
        }
        if ((size_t)fd >= table_len) {
            close(fd);  /* beyond RLIMIT_NOFILE: cannot happen, kept defensive */
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            die("epoll_ctl");
    }
}

static void on_datagram(void)
{
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        ssize_t n = recvfrom(listen_fd, shared_buf, sizeof shared_buf, 0,
                             (struct sockaddr *)&peer, &peer_len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            die("recvfrom");
        }
        /* A datagram that cannot be sent now is dropped, as UDP allows; the
         * load generator would report it lost. */
        sendto(listen_fd, shared_buf, (size_t)n, 0, (struct sockaddr *)&peer, peer_len);
    }
}

static void print_ready(const struct endpoint *ep)
{
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    getsockname(listen_fd, (struct sockaddr *)&bound, &len);
    if (ep->family == AF_UNIX) {
        printf("READY {\"family\": \"unix\", \"path\": ");
        json_string(stdout, ((struct sockaddr_un *)&ep->addr)->sun_path);
        printf("}\n");
    } else {
        printf("READY {\"family\": \"%s\", \"host\": \"127.0.0.1\", \"port\": %d}\n",
               ep->socktype == SOCK_DGRAM ? "udp" : "tcp",
               ntohs(((struct sockaddr_in *)&bound)->sin_port));
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct endpoint ep;
    if (argc != 3 || parse_endpoint(argv[2], &ep) < 0) {
        fprintf(stderr, "usage: raw_server tcp|unix|udp|http tcp:HOST:PORT|udp:HOST:PORT|unix:PATH\n");
        return 2;
    }
    mode = strcmp(argv[1], "udp") == 0 ? MODE_UDP : strcmp(argv[1], "http") == 0 ? MODE_HTTP : MODE_ECHO;

    raise_fd_limit();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    table_len = rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : (size_t)rl.rlim_cur;
    table = calloc(table_len, sizeof *table);

    listen_fd = socket(ep.family, ep.socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd < 0)
        die("socket");
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ep.family == AF_UNIX)
        unlink(((struct sockaddr_un *)&ep.addr)->sun_path);
    if (bind(listen_fd, (struct sockaddr *)&ep.addr, ep.addrlen) < 0)
        die("bind");
    if (ep.socktype == SOCK_STREAM && listen(listen_fd, 4096) < 0)
        die("listen");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listen_fd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev);
    ev.data.fd = STDIN_FILENO;
    epoll_ctl(epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
    print_ready(&ep);

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epfd, events, 256, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == STDIN_FILENO)
                goto out;
            if (fd == listen_fd) {
                if (mode == MODE_UDP)
                    on_datagram();
                else
                    on_acceptable();
                continue;
            }
            int rc;
            if (events[i].events & EPOLLOUT)
                rc = flush_out(fd);
            else if (mode == MODE_HTTP)
                rc = on_http_readable(fd);
            else
                rc = on_echo_readable(fd);
            if (rc < 0)
                drop(fd);
        }
    }
out:
    if (ep.family == AF_UNIX)
        unlink(((struct sockaddr_un *)&ep.addr)->sun_path);
    return 0;
}
