/* loadgen.c: the native load generator of the loopx benchmark harness.
 *
 * One process, one thread, one epoll set driving N connections against the
 * server under test. It is native so that the client is never the bottleneck
 * and never shares an interpreter (or a GIL) with the loop being measured.
 *
 * Every byte the server sends back is checked. A server that corrupts, drops,
 * duplicates, reorders or invents data fails the run with a precise reason, so
 * a broken loop can never post a number.
 *
 * Usage: loadgen MODE ENDPOINT [-c CONNS] [-s SIZE] [-w WARMUP] [-d DURATION]
 *                              [-p PIPELINE] [-m MAX_CONNECTING] [-t IO_TIMEOUT]
 *                              [-S tls]
 *   echo  each connection sends a SIZE-byte message, waits for exactly that
 *         message back, and repeats: one message in flight per connection.
 *   udp   the same over connected UDP sockets, one datagram per message.
 *   connect  each connection sends one SIZE-byte message, waits for the echo
 *         and closes, then a fresh connection takes its place: one operation
 *         is a whole connection (connect, accept, echo, close), timed from
 *         the connect.
 *   http  each connection sends PIPELINE keep-alive GET requests in one write
 *         and checks every response: status 200, a Content-Length, and a body
 *         equal to the request's path (the contract of the benchmark servers).
 *   idle  opens CONNS connections, at most MAX_CONNECTING unproven at a time,
 *         proves each with one echo, prints IDLE_READY and holds them idle
 *         until a line (or EOF) on stdin, proves them all again, then closes.
 *
 * -S tls (echo mode over TCP): each connection is a TLS client (OpenSSL),
 * handshaken before the run starts; what is sent and checked is the
 * plaintext.  The server's certificate is not verified: the benchmark measures
 * the server's data path, and the bytes are checked all the same.
 *
 * Messages are windows into one random pattern, shifted per connection and per
 * message, so a server echoing a stale or another connection's buffer fails.
 *
 * Protocol on stdout (read by benchmarks/network.py), one line each:
 *   MEASURE_START / MEASURE_END   the measured window begins / ends
 *   IDLE_READY                    idle mode: all connections open and proven
 *   RESULT {json}                 last line: {"ok": true, ...} or {"ok": false, "error": ...}
 * Exit status: 0 ok, 1 the server failed verification or I/O, 2 bad usage.
 */
#include "common.h"

#include <sys/epoll.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum mode { MODE_ECHO, MODE_UDP, MODE_HTTP, MODE_IDLE, MODE_CONNECT };

struct conn {
    int fd;
    SSL *ssl;             /* -S tls: the TLS session over fd, else NULL */
    int idx;
    int busy;             /* a message (http: a batch) is in flight */
    int out_armed;        /* EPOLLOUT is registered: the send was partial */
    uint64_t seq;         /* messages (http: requests) started so far */
    uint64_t started_ns;  /* when the in-flight message or batch was started */
    /* What is being sent: the echo message or the batch of http requests. */
    const unsigned char *send_buf;
    size_t send_len, sent;
    /* echo/udp/idle: bytes of the in-flight message echoed back so far. */
    size_t rcvd;
    /* http: the request batch, the unparsed response bytes, the batch state. */
    char *out;
    char *in;
    size_t in_len, in_cap;
    int pending;          /* responses still expected for this batch */
    uint64_t batch_seq;   /* seq of the batch's first request */
};

static struct {
    enum mode mode;
    const char *endpoint_spec;
    struct endpoint ep;
    int conns;
    size_t size;
    double warmup, duration, io_timeout;
    int pipeline;
    int max_connecting;
    int tls;
} opt = {.conns = 10, .size = 1024, .warmup = 0.2, .duration = 1.0,
         .io_timeout = 5.0, .pipeline = 8, .max_connecting = 64};

static int epfd = -1;
static SSL_CTX *tls_ctx;
static struct conn *conns;
static unsigned char *pattern;   /* opt.size + 256 random bytes */
static int in_flight;            /* connections with a message in flight */
static int draining;             /* the window is over: start nothing new */
static uint64_t window_start_ns, window_end_ns;
static uint64_t ops_total, ops_in_window, bytes_verified;
static uint64_t last_progress_ns;
static uint64_t *latencies;      /* ns, completions inside the window */
static size_t lat_len, lat_cap;

/* ---- results --------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void sort_latencies(void)
{
    qsort(latencies, lat_len, sizeof *latencies, cmp_u64);
}

/* Nearest-rank percentile; sort_latencies() must have run. */
static double percentile_us(double p)
{
    if (lat_len == 0)
        return 0.0;
    size_t rank = (size_t)(p / 100.0 * (double)(lat_len - 1) + 0.5);
    return (double)latencies[rank] / 1000.0;
}

static void print_counts(void)
{
    printf("\"mode\": \"%s\", \"conns\": %d, \"size\": %zu, \"ops_total\": %llu, "
           "\"bytes_verified\": %llu",
           opt.mode == MODE_ECHO ? "echo" : opt.mode == MODE_UDP ? "udp"
           : opt.mode == MODE_HTTP ? "http" : opt.mode == MODE_CONNECT ? "connect" : "idle",
           opt.conns, opt.size, (unsigned long long)ops_total,
           (unsigned long long)bytes_verified);
}

/* Report a failure of the server (or of the I/O with it) and exit 1.
 * fail_kind classifies it for the table: "verification" (wrong data),
 * "timeout" (no reply) or "connection" (refused, reset, closed, setup). */
static const char *fail_kind = "connection";
#define fail_data(...) do { fail_kind = "verification"; fail(__VA_ARGS__); } while (0)
#define fail_timeout(...) do { fail_kind = "timeout"; fail(__VA_ARGS__); } while (0)

__attribute__((noreturn, format(printf, 1, 2)))
static void fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("RESULT {\"ok\": false, \"kind\": \"%s\", \"error\": ", fail_kind);
    json_string(stdout, msg);
    printf(", ");
    print_counts();
    printf("}\n");
    fflush(stdout);
    exit(1);
}

static void record_latency(uint64_t ns)
{
    if (lat_len == lat_cap) {
        /* A ceiling keeps a very long run bounded (32 MiB of samples). */
        if (lat_cap >= (1u << 22))
            return;
        lat_cap = lat_cap ? lat_cap * 2 : 65536;
        latencies = realloc(latencies, lat_cap * sizeof *latencies);
        if (!latencies)
            fail("out of memory for latency samples");
    }
    latencies[lat_len++] = ns;
}

/* One operation completed at time t; only those inside the window count. */
static void count_op(struct conn *c, uint64_t t)
{
    ops_total++;
    last_progress_ns = t;
    if (t >= window_start_ns && t < window_end_ns) {
        ops_in_window++;
        record_latency(t - c->started_ns);
    }
}

/* ---- sending --------------------------------------------------------- */

static void arm_out(struct conn *c, int on)
{
    if (on == c->out_armed)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
    c->out_armed = on;
}

/* The OpenSSL error queue as one line, for failure messages. */
static const char *tls_error(void)
{
    static char msg[256];
    unsigned long e = ERR_get_error();
    if (e == 0)
        return errno ? strerror(errno) : "no detail";
    ERR_error_string_n(e, msg, sizeof msg);
    ERR_clear_error();
    return msg;
}

/* One SSL_write of what is left of send_buf: 1 when some was written, 0 when
 * the socket is full (the caller waits for an event and calls flush again). */
static int tls_write(struct conn *c)
{
    size_t left = c->send_len - c->sent;
    int n = SSL_write(c->ssl, c->send_buf + c->sent, left > INT32_MAX ? INT32_MAX : (int)left);
    if (n > 0) {
        c->sent += (size_t)n;
        return 1;
    }
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_WRITE:
        arm_out(c, 1);
        return 0;
    case SSL_ERROR_WANT_READ:
        /* A post-handshake message must be read first: EPOLLIN is always
         * armed, and on_event retries the write after any read. */
        arm_out(c, 0);
        return 0;
    default:
        fail("connection %d: SSL_write failed: %s", c->idx, tls_error());
    }
}

/* Send what is left of send_buf; wait for EPOLLOUT if the socket is full. */
static void flush(struct conn *c)
{
    while (c->sent < c->send_len) {
        if (c->ssl) {
            if (!tls_write(c))
                return;
            continue;
        }
        ssize_t n = send(c->fd, c->send_buf + c->sent, c->send_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            /* A datagram goes whole or not at all. */
            if (opt.mode == MODE_UDP && (size_t)n != c->send_len)
                fail_data("connection %d: short datagram send (%zd of %zu bytes)",
                          c->idx, n, c->send_len);
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            arm_out(c, 1);
            return;
        } else {
            fail("connection %d: send failed: %s", c->idx, n < 0 ? strerror(errno) : "returned 0");
        }
    }
    arm_out(c, 0);
}

static void start_message(struct conn *c)
{
    size_t shift = (size_t)((c->seq * 31u + (uint64_t)c->idx * 7u) & 255u);
    c->send_buf = pattern + shift;
    c->send_len = opt.size;
    c->sent = c->rcvd = 0;
    c->seq++;
    c->busy = 1;
    in_flight++;
    c->started_ns = now_ns();
    flush(c);
}

static void start_batch(struct conn *c)
{
    size_t len = 0;
    c->batch_seq = c->seq;
    for (int j = 0; j < opt.pipeline; j++)
        len += (size_t)sprintf(c->out + len, "GET /c%d-%llu HTTP/1.1\r\nHost: loopx-bench\r\n\r\n",
                               c->idx, (unsigned long long)(c->seq + (uint64_t)j));
    c->seq += (uint64_t)opt.pipeline;
    c->send_buf = (const unsigned char *)c->out;
    c->send_len = len;
    c->sent = 0;
    c->pending = opt.pipeline;
    c->busy = 1;
    in_flight++;
    c->started_ns = now_ns();
    flush(c);
}

static void start_next(struct conn *c)
{
    if (opt.mode == MODE_HTTP)
        start_batch(c);
    else
        start_message(c);
}

static void open_conn(struct conn *c, int idx);
static void close_conn(struct conn *c, int abortive);

/* Connect mode: the connection is done; a new one takes its slot.  Its
 * messages go on where the old one's stopped (seq), so no two connections of
 * a slot are sent the same bytes. */
static void replace_conn(struct conn *c)
{
    uint64_t seq = c->seq, t = now_ns();
    close_conn(c, 0);
    if (draining)
        return;
    open_conn(c, c->idx);
    c->seq = seq;
    start_message(c);
    c->started_ns = t;   /* the connect is part of the operation */
}

static void finish(struct conn *c)
{
    c->busy = 0;
    in_flight--;
    if (opt.mode == MODE_CONNECT)
        replace_conn(c);
    /* Idle mode proves each connection once per phase; the others keep going
     * until the window is over. */
    else if (opt.mode != MODE_IDLE && !draining)
        start_next(c);
}

/* ---- receiving ------------------------------------------------------- */

/* recv() that treats EOF and errors as failures; returns 0 on EAGAIN. */
static ssize_t recv_some(struct conn *c, void *buf, size_t len)
{
    if (c->ssl) {
        /* Called until it returns 0, so no decrypted data is ever left
         * waiting inside OpenSSL while epoll sees nothing. */
        int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n > 0)
            return n;
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return 0;
        case SSL_ERROR_ZERO_RETURN:
            fail("connection %d: the server closed TLS after %llu messages", c->idx,
                 (unsigned long long)c->seq - (c->busy ? 1 : 0));
        default:
            fail("connection %d: SSL_read failed: %s", c->idx, tls_error());
        }
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n > 0)
            return n;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n == 0)
            fail("connection %d: the server closed it after %llu messages", c->idx,
                 (unsigned long long)c->seq - (c->busy ? 1 : 0));
        fail("connection %d: recv failed: %s", c->idx, strerror(errno));
    }
}

static void check_bytes(struct conn *c, const unsigned char *got, size_t n)
{
    if (memcmp(got, c->send_buf + c->rcvd, n) == 0)
        return;
    size_t i = 0;
    while (got[i] == c->send_buf[c->rcvd + i])
        i++;
    fail_data("connection %d, message %llu: echoed byte %zu is 0x%02x, expected 0x%02x",
              c->idx, (unsigned long long)c->seq, c->rcvd + i, got[i], c->send_buf[c->rcvd + i]);
}

static void read_echo(struct conn *c)
{
    static unsigned char buf[1 << 16];
    ssize_t n;
    while ((n = recv_some(c, buf, sizeof buf)) > 0) {
        uint64_t t = now_ns();
        last_progress_ns = t;
        if (opt.mode == MODE_UDP) {
            if (!c->busy)
                fail_data("connection %d: a datagram arrived that nobody asked for", c->idx);
            if ((size_t)n != opt.size)
                fail_data("connection %d, message %llu: datagram of %zd bytes, expected %zu",
                          c->idx, (unsigned long long)c->seq, n, opt.size);
            check_bytes(c, buf, (size_t)n);
        } else {
            /* Bytes echoed before we sent them were invented by the server. */
            if (!c->busy || c->rcvd + (size_t)n > c->sent)
                fail_data("connection %d, message %llu: the server sent %zd bytes but only "
                          "%zu of the message were sent and %zu already echoed", c->idx,
                          (unsigned long long)c->seq, n, c->busy ? c->sent : 0, c->rcvd);
            check_bytes(c, buf, (size_t)n);
        }
        c->rcvd += (size_t)n;
        bytes_verified += (uint64_t)n;
        if (c->rcvd == opt.size) {
            count_op(c, t);
            finish(c);
            if (opt.mode == MODE_CONNECT)
                return;   /* c is a new connection now (or none): epoll says when to read it */
        }
    }
}

/* The first line of text (up to 60 bytes) with anything unprintable shown as
 * '?', for error messages about what the server sent. */
static const char *printable(const char *text, size_t len)
{
    static char out[64];
    size_t i;
    for (i = 0; i < len && i < 60 && text[i] != '\r' && text[i] != '\n'; i++)
        out[i] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
    out[i] = '\0';
    return out;
}

/* Content-Length of a header block, or -1 when it has none. */
static long content_length(const char *head, size_t len)
{
    const char *end = head + len;
    for (const char *line = head; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        if ((size_t)(eol - line) > 15 && strncasecmp(line, "content-length:", 15) == 0)
            return strtol(line + 15, NULL, 10);
        line = eol + 1;
    }
    return -1;
}

static void read_http(struct conn *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 16384) {
            c->in_cap *= 2;
            c->in = realloc(c->in, c->in_cap);
            if (!c->in)
                fail("out of memory for responses");
        }
        ssize_t n = recv_some(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == 0)
            return;
        uint64_t t = now_ns();
        last_progress_ns = t;
        if (!c->busy)
            fail_data("connection %d: %zd bytes arrived with no request outstanding", c->idx, n);
        c->in_len += (size_t)n;
        bytes_verified += (uint64_t)n;

        size_t off = 0;
        while (c->pending > 0) {
            char *head = c->in + off;
            char *blank = memmem(head, c->in_len - off, "\r\n\r\n", 4);
            if (!blank)
                break;
            size_t head_len = (size_t)(blank + 4 - head);
            if (head_len < 12 || memcmp(head, "HTTP/1.1 200", 12) != 0)
                fail_data("connection %d: bad status line: %s", c->idx, printable(head, head_len));
            long body_len = content_length(head, head_len);
            if (body_len < 0)
                fail_data("connection %d: a response without Content-Length", c->idx);
            if (c->in_len - off < head_len + (size_t)body_len)
                break;
            uint64_t req = c->batch_seq + (uint64_t)(opt.pipeline - c->pending);
            char want[64];
            int want_len = sprintf(want, "/c%d-%llu", c->idx, (unsigned long long)req);
            if (body_len != want_len || memcmp(head + head_len, want, (size_t)want_len) != 0)
                fail_data("connection %d: response to %s has body '%s'", c->idx, want,
                          printable(head + head_len, (size_t)body_len));
            off += head_len + (size_t)body_len;
            c->pending--;
            count_op(c, t);
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        if (c->busy && c->pending == 0) {
            if (c->in_len != 0)
                fail_data("connection %d: %zu bytes after the last response of a batch",
                          c->idx, c->in_len);
            finish(c);
        }
    }
}

static void on_event(struct epoll_event *ev)
{
    struct conn *c = ev->data.ptr;
    /* On EPOLLERR/EPOLLHUP the read reports the precise error or EOF. */
    if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (opt.mode == MODE_HTTP)
            read_http(c);
        else
            read_echo(c);
    }
    if ((ev->events & EPOLLOUT || c->ssl) && c->busy && c->sent < c->send_len)
        flush(c);
}

/* ---- connections ------------------------------------------------------ */

/* Connection churn closes tens of thousands of connections per second from
 * this side, and each leaves its port in TIME_WAIT for a minute: one source
 * address would soon run the ephemeral range dry, and connect() then spends
 * its time searching for a port (rounds collapsed to a third of their rate).
 * Linux routes all of 127.0.0.0/8 to loopback, so to a loopback server each
 * connection comes from the next of 250 source addresses, its port still
 * chosen at connect() (IP_BIND_ADDRESS_NO_PORT).  Elsewhere, or if binding
 * fails, the kernel picks as before. */
static void spread_source_address(int fd)
{
#if defined(__linux__) && defined(IP_BIND_ADDRESS_NO_PORT)
    static unsigned next;
    const struct sockaddr_in *dst = (const struct sockaddr_in *)&opt.ep.addr;
    if (opt.ep.family != AF_INET || (ntohl(dst->sin_addr.s_addr) >> 24) != 127)
        return;
    int one = 1;
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) < 0)
        return;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl((127u << 24) | (1u + next++ % 250u));
    (void)bind(fd, (struct sockaddr *)&src, sizeof src);
#else
    (void)fd;
#endif
}

static void open_conn(struct conn *c, int idx)
{
    memset(c, 0, sizeof *c);
    c->idx = idx;
    c->fd = socket(opt.ep.family, opt.ep.socktype, 0);
    if (c->fd < 0)
        fail("socket: %s (connection %d)", strerror(errno), idx);
    if (opt.mode == MODE_CONNECT)
        spread_source_address(c->fd);
    /* A blocking connect is enough on loopback: it completes in the kernel as
     * long as the accept queue has room, and idle mode keeps the number of
     * unaccepted connections far below the backlog. */
    if (connect(c->fd, (struct sockaddr *)&opt.ep.addr, opt.ep.addrlen) < 0)
        fail("connect to %s: %s (connection %d)", opt.endpoint_spec, strerror(errno), idx);
    set_nodelay(c->fd, &opt.ep);
    if (opt.tls) {
        /* Blocking handshake: it happens before the measured window. */
        c->ssl = SSL_new(tls_ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
            fail("SSL_new: %s", tls_error());
        if (SSL_connect(c->ssl) != 1)
            fail("TLS handshake with %s: %s (connection %d)", opt.endpoint_spec, tls_error(), idx);
    }
    if (set_nonblocking(c->fd) < 0)
        fail("fcntl: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
    if (opt.mode == MODE_HTTP) {
        c->out = malloc((size_t)opt.pipeline * 64);
        c->in_cap = 65536;
        c->in = malloc(c->in_cap);
        if (!c->out || !c->in)
            fail("out of memory");
    }
}

static void close_conn(struct conn *c, int abortive)
{
    if (c->fd < 0)
        return;   /* connect mode: closed already, not replaced */
    if (abortive) {
        /* Reset instead of FIN: 10,000 connections per run would otherwise
         * leave 10,000 ports in TIME_WAIT and exhaust the ephemeral range
         * after a few rounds. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (c->ssl) {
        /* Sends close_notify without waiting for the server's. */
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->fd);
    c->fd = -1;
    free(c->out);
    free(c->in);
    c->out = c->in = NULL;
}

/* Wait for events once, at most until deadline_ns; fail if the server has
 * made no progress for io_timeout seconds. */
static void poll_once(uint64_t deadline_ns)
{
    static struct epoll_event events[256];
    uint64_t now = now_ns();
    if (in_flight > 0 && now - last_progress_ns > (uint64_t)(opt.io_timeout * 1e9))
        fail_timeout("no reply from the server for %.1f s (%d connections waiting, %llu "
                     "operations done)", opt.io_timeout, in_flight, (unsigned long long)ops_total);
    int timeout_ms = 50;
    if (deadline_ns > now && (deadline_ns - now) / 1000000u + 1 < (uint64_t)timeout_ms)
        timeout_ms = (int)((deadline_ns - now) / 1000000u + 1);
    int n = epoll_wait(epfd, events, 256, timeout_ms);
    if (n < 0 && errno != EINTR)
        fail("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++)
        on_event(&events[i]);
}

static void run_window(void)
{
    for (int i = 0; i < opt.conns; i++)
        open_conn(&conns[i], i);
    uint64_t t0 = now_ns();
    window_start_ns = t0 + (uint64_t)(opt.warmup * 1e9);
    window_end_ns = window_start_ns + (uint64_t)(opt.duration * 1e9);
    last_progress_ns = t0;
    for (int i = 0; i < opt.conns; i++)
        start_next(&conns[i]);

    int started = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (!started && now >= window_start_ns) {
            puts("MEASURE_START");
            fflush(stdout);
            started = 1;
        }
        if (!draining && now >= window_end_ns) {
            puts("MEASURE_END");
            fflush(stdout);
            draining = 1;
        }
        if (draining && in_flight == 0)
            break;
        poll_once(started ? window_end_ns : window_start_ns);
    }
    for (int i = 0; i < opt.conns; i++)
        close_conn(&conns[i], 0);

    sort_latencies();
    printf("RESULT {\"ok\": true, ");
    print_counts();
    printf(", \"ops\": %llu, \"seconds\": %.6f, \"p50_us\": %.2f, \"p99_us\": %.2f, "
           "\"max_us\": %.2f}\n",
           (unsigned long long)ops_in_window, opt.duration, percentile_us(50),
           percentile_us(99), percentile_us(100));
}

/* Prove every connection by one echo, keeping at most max_connecting busy. */
static void prove_all(int open_new)
{
    int next = 0;
    last_progress_ns = now_ns();
    while (next < opt.conns || in_flight > 0) {
        while (next < opt.conns && in_flight < opt.max_connecting) {
            if (open_new)
                open_conn(&conns[next], next);
            start_message(&conns[next]);
            next++;
        }
        poll_once(0);
    }
}

static void run_idle(void)
{
    uint64_t t0 = now_ns();
    window_start_ns = 0;       /* every proof counts */
    window_end_ns = UINT64_MAX;
    prove_all(1);
    double connect_seconds = (double)(now_ns() - t0) / 1e9;
    puts("IDLE_READY");
    fflush(stdout);

    char line[64];
    if (!fgets(line, sizeof line, stdin)) {
        /* EOF is the same "go on" as a line. */
    }
    prove_all(0);
    for (int i = 0; i < opt.conns; i++)
        close_conn(&conns[i], 1);

    sort_latencies();
    printf("RESULT {\"ok\": true, ");
    print_counts();
    printf(", \"ops\": %d, \"seconds\": %.6f, \"p50_us\": %.2f, \"p99_us\": %.2f, "
           "\"max_us\": %.2f}\n",
           opt.conns, connect_seconds, percentile_us(50), percentile_us(99), percentile_us(100));
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen echo|udp|http|idle|connect tcp:HOST:PORT|udp:HOST:PORT|unix:PATH "
                    "[-c conns] [-s size] [-w warmup] [-d duration] [-p pipeline] "
                    "[-m max_connecting] [-t io_timeout] [-S tls]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    if (strcmp(argv[1], "echo") == 0) opt.mode = MODE_ECHO;
    else if (strcmp(argv[1], "udp") == 0) opt.mode = MODE_UDP;
    else if (strcmp(argv[1], "http") == 0) opt.mode = MODE_HTTP;
    else if (strcmp(argv[1], "idle") == 0) opt.mode = MODE_IDLE;
    else if (strcmp(argv[1], "connect") == 0) opt.mode = MODE_CONNECT;
    else usage();
    opt.endpoint_spec = argv[2];
    if (parse_endpoint(argv[2], &opt.ep) < 0)
        usage();
    if ((opt.mode == MODE_UDP) != (opt.ep.socktype == SOCK_DGRAM))
        usage();
    for (int i = 3; i + 1 < argc; i += 2) {
        const char *v = argv[i + 1];
        if (strcmp(argv[i], "-c") == 0) opt.conns = atoi(v);
        else if (strcmp(argv[i], "-s") == 0) opt.size = (size_t)atol(v);
        else if (strcmp(argv[i], "-w") == 0) opt.warmup = atof(v);
        else if (strcmp(argv[i], "-d") == 0) opt.duration = atof(v);
        else if (strcmp(argv[i], "-p") == 0) opt.pipeline = atoi(v);
        else if (strcmp(argv[i], "-m") == 0) opt.max_connecting = atoi(v);
        else if (strcmp(argv[i], "-t") == 0) opt.io_timeout = atof(v);
        else if (strcmp(argv[i], "-S") == 0 && strcmp(v, "tls") == 0) opt.tls = 1;
        else usage();
    }
    if (opt.conns < 1 || opt.size < 1 || opt.pipeline < 1 || opt.max_connecting < 1 ||
        (opt.mode == MODE_UDP && opt.size > 65507) ||
        (opt.tls && (opt.mode != MODE_ECHO || opt.ep.family == AF_UNIX)))
        usage();
    if (opt.tls) {
        tls_ctx = SSL_CTX_new(TLS_client_method());
        if (!tls_ctx)
            fail("SSL_CTX_new: %s", tls_error());
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
        /* A partial SSL_write leaves the rest of send_buf for later, and
         * send_buf does not move: the same contract as send(). */
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    }

    raise_fd_limit();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)opt.conns, sizeof *conns);
    pattern = malloc(opt.size + 256);
    if (epfd < 0 || !conns || !pattern)
        fail("setup failed: %s", strerror(errno));
    /* xorshift64: a fixed seed keeps runs comparable; the bytes only need to
     * be unlike each other and unlike what a confused server might send. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < opt.size + 256; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pattern[i] = (unsigned char)(x >> 32);
    }

    if (opt.mode == MODE_IDLE)
        run_idle();
    else
        run_window();
    fflush(stdout);
    return 0;
}
