/* iocp.c -- see iocp.h for the contract (ownership rule, error codes). */
#include "iocp.h"

#include <mswsock.h>
#include <winternl.h>
#include <limits.h>
#include <string.h>

#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

/* NTSTATUS values we translate ourselves (ntstatus.h clashes with winnt.h
 * under mingw, so they are spelled out). */
#define LX_STATUS_CANCELLED               0xC0000120UL
#define LX_STATUS_HANDLES_CLOSED          0x8000000AUL
#define LX_STATUS_BUFFER_OVERFLOW         0x80000005UL
#define LX_STATUS_CONNECTION_REFUSED      0xC0000236UL
#define LX_STATUS_CONNECTION_RESET        0xC000020DUL
#define LX_STATUS_CONNECTION_ABORTED      0xC0000241UL
#define LX_STATUS_LOCAL_DISCONNECT        0xC000013BUL
#define LX_STATUS_REMOTE_DISCONNECT       0xC000013CUL
#define LX_STATUS_NETWORK_NAME_DELETED    0xC00000C9UL
#define LX_STATUS_NETWORK_UNREACHABLE     0xC000023CUL
#define LX_STATUS_HOST_UNREACHABLE        0xC000023DUL
#define LX_STATUS_PROTOCOL_UNREACHABLE    0xC000023EUL
#define LX_STATUS_PORT_UNREACHABLE        0xC000023FUL
#define LX_STATUS_IO_TIMEOUT              0xC00000B5UL
#define LX_STATUS_INVALID_CONNECTION      0xC0000140UL
#define LX_STATUS_ADDRESS_ALREADY_EXISTS  0xC000020AUL
#define LX_STATUS_INVALID_ADDRESS_COMPONENT 0xC0000207UL
#define LX_STATUS_INSUFFICIENT_RESOURCES  0xC000009AUL
#define LX_STATUS_NO_MEMORY               0xC0000017UL
#define LX_STATUS_INVALID_HANDLE          0xC0000008UL
#define LX_STATUS_ACCESS_DENIED           0xC0000022UL
#define LX_STATUS_NOT_SUPPORTED           0xC00000BBUL

/* Lengths Winsock and ReadFile take are 32-bit; refuse rather than truncate. */
#define LX_MAX_LEN 0x7fffffffu

/* ---- once per process: Winsock and the extension functions ------------ */

static LPFN_ACCEPTEX lx_AcceptEx;
static LPFN_CONNECTEX lx_ConnectEx;
static LPFN_GETACCEPTEXSOCKADDRS lx_GetAcceptExSockaddrs;
static DWORD lx_init_error;
static INIT_ONCE lx_init_once = INIT_ONCE_STATIC_INIT;

static DWORD load_ext(SOCKET s, GUID guid, void *fn, DWORD fn_size)
{
    DWORD got = 0;
    if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid,
                 fn, fn_size, &got, NULL, NULL) == SOCKET_ERROR)
        return (DWORD)WSAGetLastError();
    return got == fn_size ? 0 : ERROR_PROC_NOT_FOUND;
}

/* The pointers come from the base provider, the same for IPv4 and IPv6
 * (CPython's _overlapped relies on this too), so one probe socket will do. */
static BOOL CALLBACK lx_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    WSADATA wsa;
    SOCKET s;
    (void)once; (void)param; (void)ctx;
    int rc = WSAStartup(MAKEWORD(2, 2), &wsa);
    if (rc != 0) {
        lx_init_error = (DWORD)rc;
        return TRUE;
    }
    s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (s == INVALID_SOCKET) {
        lx_init_error = (DWORD)WSAGetLastError();
        return TRUE;
    }
    GUID g_acc = WSAID_ACCEPTEX, g_con = WSAID_CONNECTEX, g_addrs = WSAID_GETACCEPTEXSOCKADDRS;
    DWORD err = load_ext(s, g_acc, &lx_AcceptEx, sizeof lx_AcceptEx);
    if (!err)
        err = load_ext(s, g_con, &lx_ConnectEx, sizeof lx_ConnectEx);
    if (!err)
        err = load_ext(s, g_addrs, &lx_GetAcceptExSockaddrs, sizeof lx_GetAcceptExSockaddrs);
    lx_init_error = err;
    closesocket(s);  /* a probe: nothing to report if closing it fails */
    return TRUE;
}

static DWORD lx_ensure_init(void)
{
    if (!InitOnceExecuteOnce(&lx_init_once, lx_init, NULL, NULL))
        return GetLastError();
    return lx_init_error;
}

/* ---- port ------------------------------------------------------------- */

HANDLE lx_iocp_open(void)
{
    DWORD err = lx_ensure_init();
    if (err) {
        SetLastError(err);
        return NULL;
    }
    /* Concurrency 1: only the loop's thread ever waits on the port. */
    return CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
}

DWORD lx_iocp_close(HANDLE port)
{
    return CloseHandle(port) ? 0 : GetLastError();
}

DWORD lx_iocp_associate(HANDLE port, HANDLE h)
{
    /* Key 0: the op pointer already says everything a completion needs. */
    if (CreateIoCompletionPort(h, port, 0, 0) != port)
        return GetLastError();
    return 0;
}

/* ---- submitting ------------------------------------------------------- */

/* Reset an op for a new submission; refuses one still owned by the kernel. */
static DWORD begin(lx_iocp_op *op, lx_iocp_kind kind, HANDLE h)
{
    if (op == NULL)
        return ERROR_INVALID_PARAMETER;
    if (op->pending)
        return ERROR_BUSY;
    memset(&op->ov, 0, sizeof op->ov);
    op->kind = kind;
    op->bytes = 0;
    op->error = 0;
    op->handle = h;
    op->port = NULL;
    op->flags = 0;
    return 0;
}

/* After a socket call: 0 and in flight if a packet will come, else the error.
 * WSAEMSGSIZE is a warning status, so the kernel still queues its packet. */
static DWORD sock_started(lx_iocp_op *op, int rc)
{
    if (rc != SOCKET_ERROR) {
        op->pending = 1;
        return 0;
    }
    DWORD err = (DWORD)WSAGetLastError();
    if (err == WSA_IO_PENDING || err == WSAEMSGSIZE) {
        op->pending = 1;
        return 0;
    }
    return err;
}

/* Same for a BOOL-returning call (AcceptEx, ConnectEx, ReadFile, ...). */
static DWORD bool_started(lx_iocp_op *op, BOOL ok, DWORD err)
{
    if (ok || err == ERROR_IO_PENDING || err == ERROR_MORE_DATA) {
        op->pending = 1;
        return 0;
    }
    return err;
}

DWORD lx_iocp_recv(lx_iocp_op *op, SOCKET s, void *buf, size_t len)
{
    DWORD err = begin(op, LX_IOCP_RECV, (HANDLE)s);
    if (err)
        return err;
    if (len > LX_MAX_LEN || (buf == NULL && len))
        return ERROR_INVALID_PARAMETER;
    WSABUF b = { (ULONG)len, (char *)buf };
    /* Bytes pointer NULL: for overlapped calls the count comes with the
     * completion; the synchronous one may be stale. */
    return sock_started(op, WSARecv(s, &b, 1, NULL, &op->flags, &op->ov, NULL));
}

DWORD lx_iocp_send(lx_iocp_op *op, SOCKET s, const lx_iocp_buf *bufs, int nbufs)
{
    /* Winsock copies the WSABUF array before returning, so it can live on
     * the stack; only the bytes themselves must outlive the call. */
    WSABUF wb[LX_IOCP_MAX_BUFS];
    size_t total = 0;
    DWORD err = begin(op, LX_IOCP_SEND, (HANDLE)s);
    if (err)
        return err;
    if (bufs == NULL || nbufs < 1 || nbufs > LX_IOCP_MAX_BUFS)
        return ERROR_INVALID_PARAMETER;
    for (int i = 0; i < nbufs; i++) {
        if (bufs[i].len > LX_MAX_LEN - total || (bufs[i].base == NULL && bufs[i].len))
            return ERROR_INVALID_PARAMETER;
        total += bufs[i].len;
        wb[i].len = (ULONG)bufs[i].len;
        wb[i].buf = (char *)bufs[i].base;
    }
    return sock_started(op, WSASend(s, wb, (DWORD)nbufs, NULL, 0, &op->ov, NULL));
}

DWORD lx_iocp_recvfrom(lx_iocp_op *op, SOCKET s, void *buf, size_t len)
{
    DWORD err = begin(op, LX_IOCP_RECVFROM, (HANDLE)s);
    if (err)
        return err;
    if (len > LX_MAX_LEN || (buf == NULL && len))
        return ERROR_INVALID_PARAMETER;
    WSABUF b = { (ULONG)len, (char *)buf };
    memset(&op->u.from.addr, 0, sizeof op->u.from.addr);
    /* The address and its length are written at completion: both live in
     * the op, which the kernel owns until then. */
    op->u.from.addr_len = (int)sizeof op->u.from.addr;
    return sock_started(op, WSARecvFrom(s, &b, 1, NULL, &op->flags,
                                        (struct sockaddr *)&op->u.from.addr,
                                        &op->u.from.addr_len, &op->ov, NULL));
}

DWORD lx_iocp_sendto(lx_iocp_op *op, SOCKET s, const void *buf, size_t len,
                     const struct sockaddr *to, int tolen)
{
    DWORD err = begin(op, LX_IOCP_SENDTO, (HANDLE)s);
    if (err)
        return err;
    if (len > LX_MAX_LEN || (buf == NULL && len) || to == NULL ||
        tolen <= 0 || tolen > (int)sizeof(struct sockaddr_storage))
        return ERROR_INVALID_PARAMETER;
    WSABUF b = { (ULONG)len, (char *)buf };
    return sock_started(op, WSASendTo(s, &b, 1, NULL, 0, to, tolen, &op->ov, NULL));
}

DWORD lx_iocp_accept(lx_iocp_op *op, SOCKET listener)
{
    struct sockaddr_storage ss;
    int sslen = (int)sizeof ss;
    DWORD err = begin(op, LX_IOCP_ACCEPT, (HANDLE)listener);
    if (err)
        return err;
    op->u.accept.sock = INVALID_SOCKET;
    /* AcceptEx needs an accept socket of the listener's own family. */
    if (getsockname(listener, (struct sockaddr *)&ss, &sslen) == SOCKET_ERROR)
        return (DWORD)WSAGetLastError();
    SOCKET a = WSASocketW(ss.ss_family, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (a == INVALID_SOCKET)
        return (DWORD)WSAGetLastError();
    op->u.accept.sock = a;
    /* No receive data (0): complete on connect, not on the first bytes. */
    BOOL ok = lx_AcceptEx(listener, a, op->u.accept.buf, 0,
                          (DWORD)LX_IOCP_ADDR_SLOT, (DWORD)LX_IOCP_ADDR_SLOT,
                          NULL, &op->ov);
    err = bool_started(op, ok, ok ? 0 : (DWORD)WSAGetLastError());
    if (err) {
        closesocket(a);  /* never handed out; the AcceptEx error is the news */
        op->u.accept.sock = INVALID_SOCKET;
    }
    return err;
}

DWORD lx_iocp_connect(lx_iocp_op *op, SOCKET s, const struct sockaddr *to, int tolen)
{
    struct sockaddr_storage ss;
    int sslen = (int)sizeof ss;
    DWORD err = begin(op, LX_IOCP_CONNECT, (HANDLE)s);
    if (err)
        return err;
    if (to == NULL || tolen <= 0 || tolen > (int)sizeof(struct sockaddr_storage))
        return ERROR_INVALID_PARAMETER;
    /* ConnectEx refuses an unbound socket (WSAEINVAL); bind it where a
     * plain connect() would have: the wildcard address, any port. */
    if (getsockname(s, (struct sockaddr *)&ss, &sslen) == SOCKET_ERROR) {
        err = (DWORD)WSAGetLastError();
        if (err != WSAEINVAL)
            return err;
        memset(&ss, 0, sizeof ss);
        ss.ss_family = to->sa_family;
        if (to->sa_family == AF_INET)
            sslen = (int)sizeof(struct sockaddr_in);
        else if (to->sa_family == AF_INET6)
            sslen = (int)sizeof(struct sockaddr_in6);
        else
            return WSAEAFNOSUPPORT;
        if (bind(s, (struct sockaddr *)&ss, sslen) == SOCKET_ERROR)
            return (DWORD)WSAGetLastError();
    }
    BOOL ok = lx_ConnectEx(s, to, tolen, NULL, 0, NULL, &op->ov);
    return bool_started(op, ok, ok ? 0 : (DWORD)WSAGetLastError());
}

DWORD lx_iocp_pipe_connect(lx_iocp_op *op, HANDLE port, HANDLE pipe)
{
    DWORD err = begin(op, LX_IOCP_PIPE_CONNECT, pipe);
    if (err)
        return err;
    BOOL ok = ConnectNamedPipe(pipe, &op->ov);
    err = ok ? 0 : GetLastError();
    if (err == ERROR_PIPE_CONNECTED) {
        /* The client came first: success, but the kernel queues nothing.
         * Post the packet ourselves so every op completes through wait. */
        op->ov.Internal = 0;
        op->pending = 1;
        if (!PostQueuedCompletionStatus(port, 0, 0, &op->ov)) {
            op->pending = 0;
            return GetLastError();
        }
        return 0;
    }
    return bool_started(op, ok, err);
}

DWORD lx_iocp_read(lx_iocp_op *op, HANDLE h, void *buf, size_t len)
{
    DWORD err = begin(op, LX_IOCP_READ, h);
    if (err)
        return err;
    if (len > LX_MAX_LEN || (buf == NULL && len))
        return ERROR_INVALID_PARAMETER;
    /* ERROR_MORE_DATA (a message longer than buf) still queues a packet. */
    BOOL ok = ReadFile(h, buf, (DWORD)len, NULL, &op->ov);
    return bool_started(op, ok, ok ? 0 : GetLastError());
}

DWORD lx_iocp_write(lx_iocp_op *op, HANDLE h, const void *buf, size_t len)
{
    DWORD err = begin(op, LX_IOCP_WRITE, h);
    if (err)
        return err;
    if (len > LX_MAX_LEN || (buf == NULL && len))
        return ERROR_INVALID_PARAMETER;
    BOOL ok = WriteFile(h, buf, (DWORD)len, NULL, &op->ov);
    return bool_started(op, ok, ok ? 0 : GetLastError());
}

/* ---- process exit ------------------------------------------------------ */

/* Runs on the thread pool's wait thread.  After the post the op belongs to
 * the loop again, so nothing here may touch it afterwards. */
static VOID CALLBACK process_exited(PVOID ctx, BOOLEAN timed_out)
{
    lx_iocp_op *op = (lx_iocp_op *)ctx;
    (void)timed_out;  /* INFINITE: never */
    op->ov.Internal = 0;
    InterlockedExchange(&op->u.proc.fired, 1);
    /* If this fails the port is gone and so is the loop: nobody to tell. */
    PostQueuedCompletionStatus(op->port, 0, 0, &op->ov);
}

DWORD lx_iocp_wait_process(lx_iocp_op *op, HANDLE port, HANDLE process)
{
    DWORD err = begin(op, LX_IOCP_PROCESS, process);
    if (err)
        return err;
    op->port = port;
    op->u.proc.wait = NULL;
    op->u.proc.fired = 0;
    /* Pending first: the callback may run before Register returns. */
    op->pending = 1;
    /* In the wait thread itself: the callback is one post, no need for a
     * worker thread hop.  Once only: a process exits once. */
    if (!RegisterWaitForSingleObject(&op->u.proc.wait, process, process_exited, op,
                                     INFINITE, WT_EXECUTEINWAITTHREAD | WT_EXECUTEONLYONCE)) {
        op->pending = 0;
        op->u.proc.wait = NULL;
        return GetLastError();
    }
    return 0;
}

/* ---- wakeup, cancel ---------------------------------------------------- */

DWORD lx_iocp_post(HANDLE port, lx_iocp_op *op, DWORD bytes)
{
    if (op != NULL) {
        DWORD err = begin(op, LX_IOCP_POST, NULL);
        if (err)
            return err;
        op->pending = 1;
    }
    if (!PostQueuedCompletionStatus(port, bytes, 0, op ? &op->ov : NULL)) {
        DWORD err = GetLastError();
        if (op != NULL)
            op->pending = 0;
        return err;
    }
    return 0;
}

DWORD lx_iocp_cancel(lx_iocp_op *op)
{
    if (op == NULL || !op->pending)
        return ERROR_NOT_FOUND;
    switch (op->kind) {
    case LX_IOCP_POST:
        return ERROR_NOT_FOUND;  /* already queued; nothing to stop */
    case LX_IOCP_PROCESS: {
        if (op->u.proc.wait == NULL)
            return ERROR_NOT_FOUND;  /* cancelled before */
        /* Blocking unregister: afterwards the callback has either run to
         * the end (fired) or never will, so `fired` can be trusted. */
        if (!UnregisterWaitEx(op->u.proc.wait, INVALID_HANDLE_VALUE))
            return GetLastError();
        op->u.proc.wait = NULL;
        if (op->u.proc.fired)
            return ERROR_NOT_FOUND;  /* its packet is already queued */
        op->ov.Internal = LX_STATUS_CANCELLED;
        if (!PostQueuedCompletionStatus(op->port, 0, 0, &op->ov)) {
            /* No packet will ever come: the op is the caller's again. */
            op->pending = 0;
            return GetLastError();
        }
        return 0;
    }
    default:
        if (!CancelIoEx(op->handle, &op->ov))
            return GetLastError();  /* ERROR_NOT_FOUND: it already finished */
        return 0;
    }
}

/* ---- completion -------------------------------------------------------- */

static int is_socket_kind(lx_iocp_kind k)
{
    return k == LX_IOCP_RECV || k == LX_IOCP_SEND || k == LX_IOCP_RECVFROM ||
           k == LX_IOCP_SENDTO || k == LX_IOCP_ACCEPT || k == LX_IOCP_CONNECT;
}

/* NTSTATUS -> the code Python's OSError wants: WSA codes for sockets (the
 * same ones Winsock's own calls return), Win32 codes otherwise. */
static DWORD status_to_error(ULONG_PTR st, int sock)
{
    ULONG s = (ULONG)st;
    if ((LONG)s >= 0)
        return 0;  /* success or informational */
    /* Cancelled, or (Wine) its handle was closed under it: both mean the
     * caller gave up on the op, which Python spells ERROR_OPERATION_ABORTED
     * (== WSA_OPERATION_ABORTED). */
    if (s == LX_STATUS_CANCELLED || s == LX_STATUS_HANDLES_CLOSED)
        return ERROR_OPERATION_ABORTED;
    if (sock) {
        switch (s) {
        case LX_STATUS_BUFFER_OVERFLOW:          return WSAEMSGSIZE;
        case LX_STATUS_CONNECTION_REFUSED:       return WSAECONNREFUSED;
        case LX_STATUS_CONNECTION_RESET:
        case LX_STATUS_REMOTE_DISCONNECT:
        case LX_STATUS_NETWORK_NAME_DELETED:
        case LX_STATUS_PORT_UNREACHABLE:         return WSAECONNRESET;
        case LX_STATUS_CONNECTION_ABORTED:
        case LX_STATUS_LOCAL_DISCONNECT:         return WSAECONNABORTED;
        case LX_STATUS_NETWORK_UNREACHABLE:
        case LX_STATUS_PROTOCOL_UNREACHABLE:     return WSAENETUNREACH;
        case LX_STATUS_HOST_UNREACHABLE:         return WSAEHOSTUNREACH;
        case LX_STATUS_IO_TIMEOUT:               return WSAETIMEDOUT;
        case LX_STATUS_INVALID_CONNECTION:       return WSAENOTCONN;
        case LX_STATUS_ADDRESS_ALREADY_EXISTS:   return WSAEADDRINUSE;
        case LX_STATUS_INVALID_ADDRESS_COMPONENT: return WSAEADDRNOTAVAIL;
        case LX_STATUS_INSUFFICIENT_RESOURCES:
        case LX_STATUS_NO_MEMORY:                return WSAENOBUFS;
        case LX_STATUS_INVALID_HANDLE:           return WSAENOTSOCK;
        case LX_STATUS_ACCESS_DENIED:            return WSAEACCES;
        case LX_STATUS_NOT_SUPPORTED:            return WSAEOPNOTSUPP;
        default: break;
        }
    }
    DWORD e = RtlNtStatusToDosError((NTSTATUS)s);
    return e ? e : ERROR_GEN_FAILURE;  /* never report a failure as 0 */
}

static void copy_addr(struct sockaddr_storage *dst, int *dst_len,
                      const struct sockaddr *src, int len)
{
    memset(dst, 0, sizeof *dst);
    if (src == NULL || len <= 0 || len > (int)sizeof *dst) {
        *dst_len = 0;
        return;
    }
    memcpy(dst, src, (size_t)len);
    *dst_len = len;
}

/* Fill an op's results once its packet is dequeued. */
static void finish(lx_iocp_op *op, DWORD bytes)
{
    op->pending = 0;
    op->bytes = bytes;
    if (op->kind == LX_IOCP_POST) {
        op->error = 0;
        return;
    }
    op->error = status_to_error(op->ov.Internal, is_socket_kind(op->kind));
    switch (op->kind) {
    case LX_IOCP_ACCEPT: {
        SOCKET listener = (SOCKET)op->handle, a = op->u.accept.sock;
        if (!op->error &&
            setsockopt(a, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                       (const char *)&listener, (int)sizeof listener) == SOCKET_ERROR)
            op->error = (DWORD)WSAGetLastError();
        if (op->error) {
            closesocket(a);  /* never handed out */
            op->u.accept.sock = INVALID_SOCKET;
            op->u.accept.local_len = op->u.accept.peer_len = 0;
            break;
        }
        struct sockaddr *lp = NULL, *rp = NULL;
        int llen = 0, rlen = 0;
        lx_GetAcceptExSockaddrs(op->u.accept.buf, 0, (DWORD)LX_IOCP_ADDR_SLOT,
                                (DWORD)LX_IOCP_ADDR_SLOT, &lp, &llen, &rp, &rlen);
        copy_addr(&op->u.accept.local, &op->u.accept.local_len, lp, llen);
        copy_addr(&op->u.accept.peer, &op->u.accept.peer_len, rp, rlen);
        break;
    }
    case LX_IOCP_CONNECT:
        /* Without this, getpeername/shutdown fail on a ConnectEx socket. */
        if (!op->error &&
            setsockopt((SOCKET)op->handle, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT,
                       NULL, 0) == SOCKET_ERROR)
            op->error = (DWORD)WSAGetLastError();
        break;
    case LX_IOCP_RECVFROM:
        if (op->u.from.addr_len < 0 || op->u.from.addr_len > (int)sizeof op->u.from.addr)
            op->u.from.addr_len = 0;
        break;
    case LX_IOCP_PROCESS:
        if (op->u.proc.wait != NULL) {
            /* Non-blocking: the callback may still be returning from its
             * post (ERROR_IO_PENDING), which is fine, it no longer uses op.
             * Any failure only leaks a finished wait; the result stands. */
            UnregisterWaitEx(op->u.proc.wait, NULL);
            op->u.proc.wait = NULL;
        }
        break;
    default:
        break;
    }
}

int lx_iocp_wait(HANDLE port, lx_iocp_op **out, int max, int64_t timeout_ns)
{
    OVERLAPPED_ENTRY ents[LX_IOCP_MAX_BATCH];
    int64_t deadline = 0;
    if (out == NULL || max < 1)
        return -(int)ERROR_INVALID_PARAMETER;
    if (max > LX_IOCP_MAX_BATCH)
        max = LX_IOCP_MAX_BATCH;
    if (timeout_ns > 0) {
        int64_t now = lx_iocp_monotonic_ns();
        deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
    }
    for (;;) {
        DWORD ms = INFINITE;
        if (timeout_ns == 0) {
            ms = 0;
        } else if (timeout_ns > 0) {
            int64_t left = deadline - lx_iocp_monotonic_ns();
            if (left <= 0)
                return 0;
            /* Round up: a timer must never be woken for before its time. */
            int64_t m = (left + 999999) / 1000000;
            ms = m >= (int64_t)INFINITE ? INFINITE - 1 : (DWORD)m;
        }
        ULONG n = 0;
        if (!GetQueuedCompletionStatusEx(port, ents, (ULONG)max, &n, ms, FALSE)) {
            DWORD err = GetLastError();
            if (err != WAIT_TIMEOUT)
                return -(int)err;
            if (timeout_ns == 0)
                return 0;
            /* Timed out: loop to re-check the deadline on our own clock, in
             * case the kernel's tick-based timeout ended a little early. */
            continue;
        }
        int got = 0;
        for (ULONG i = 0; i < n && i < (ULONG)max; i++) {
            if (ents[i].lpOverlapped == NULL)
                continue;  /* a bare wakeup */
            lx_iocp_op *op = (lx_iocp_op *)ents[i].lpOverlapped;
            finish(op, ents[i].dwNumberOfBytesTransferred);
            out[got++] = op;
        }
        return got;
    }
}

/* ---- clock ------------------------------------------------------------- */

int64_t lx_iocp_monotonic_ns(void)
{
    LARGE_INTEGER f, t;
    /* Both cannot fail on XP and later; the frequency is fixed at boot. */
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&t);
    int64_t q = t.QuadPart / f.QuadPart, r = t.QuadPart % f.QuadPart;
    /* Split so ticks * 1e9 cannot overflow (r * 1e9 fits while the
     * frequency is below 9.2 GHz; it is 10 MHz on current Windows): the
     * same floor(ticks * 1e9 / f) that CPython computes. */
    return q * 1000000000 + r * 1000000000 / f.QuadPart;
}
