/* iocp.h -- the Windows completion core that loopx's proactor loop sits on.
 *
 * Design.  I/O completion ports report *finished* operations, not readiness,
 * so the unit of work here is an operation (lx_iocp_op) rather than a file
 * descriptor.  The caller owns op memory (embed it in a transport, a pool,
 * ...); a submit function starts the kernel operation with the op's
 * OVERLAPPED, and lx_iocp_wait hands the same op pointer back once the kernel
 * is done, with `bytes` and `error` filled in.  OVERLAPPED is the first
 * member, so the pointer the kernel returns *is* the op: no lookup table.
 * Completion keys are not used for the same reason.
 *
 * The one rule, for every kind of op:
 *   - A submit returning 0 puts the op "in flight": exactly one completion
 *     for it will be returned by lx_iocp_wait, whatever happens (success,
 *     error, cancel, the handle closed).  Until then the op, and every buffer
 *     or address handed to the submit, belongs to the kernel: do not free,
 *     move, reuse or resubmit it.  lx_iocp_cancel, or closing the
 *     socket/handle, only makes the completion come sooner, with an error:
 *     ERROR_OPERATION_ABORTED after a cancel; after a close, that too for a
 *     socket (as Windows documents for closesocket; WSAECONNABORTED is also
 *     seen) and ERROR_OPERATION_ABORTED or ERROR_BROKEN_PIPE for a pipe.
 *     Neither gives the memory back early.
 *   - A submit returning non-zero (a Win32/WSA error code) started nothing:
 *     no completion will come and the op is free again at once.
 *   So before freeing op memory whose handle is closing, keep calling
 *   lx_iocp_wait until the op comes back; closing the port completes nothing.
 *
 * Immediate completion.  We never set FILE_SKIP_COMPLETION_PORT_ON_SUCCESS:
 * an overlapped call that succeeds at once still queues its packet, so
 * success is always reported the same way, through lx_iocp_wait (one code
 * path, and no trap with layered service providers that ignore the flag).
 * The few cases where Windows queues nothing although the op "worked"
 * (ConnectNamedPipe's ERROR_PIPE_CONNECTED) are turned into a posted packet
 * so the rule above holds.  Warnings (ERROR_MORE_DATA, WSAEMSGSIZE) do queue
 * a packet and are treated as in flight.
 *
 * Errors.  `error` is 0 or a code Python's OSError(winerror=...) maps to the
 * right exception: WSA codes for socket ops (WSAECONNREFUSED ->
 * ConnectionRefusedError, WSAECONNRESET -> ConnectionResetError, ...), Win32
 * codes for handle ops (ERROR_BROKEN_PIPE -> BrokenPipeError), and
 * ERROR_OPERATION_ABORTED (== WSA_OPERATION_ABORTED) for anything cancelled.
 * They come from the op's NTSTATUS, not from WSAGetOverlappedResult, because
 * the socket may already be closed when a cancelled op is dequeued.
 *
 * Threads.  lx_iocp_post(port, NULL, 0) (a bare wakeup) may be called from
 * any thread at any time.  Everything else on an op, and lx_iocp_wait,
 * belongs to the loop's thread (process waits post from a pool thread, but
 * only through the kernel queue).  No function here touches Python, so the
 * caller may release the GIL around any of them.
 */
#ifndef LOOPX_IOCP_H
#define LOOPX_IOCP_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <stdint.h>
#include <stddef.h>

/* Largest number of buffers lx_iocp_send takes in one call (writev). */
#define LX_IOCP_MAX_BUFS 64
/* Largest number of completions one lx_iocp_wait returns. */
#define LX_IOCP_MAX_BATCH 128
/* AcceptEx wants room for each address plus 16 bytes. */
#define LX_IOCP_ADDR_SLOT (sizeof(struct sockaddr_storage) + 16)

typedef enum {
    LX_IOCP_NONE = 0,
    LX_IOCP_POST,          /* lx_iocp_post: a user packet / wakeup */
    LX_IOCP_RECV,          /* WSARecv */
    LX_IOCP_SEND,          /* WSASend (one or more buffers) */
    LX_IOCP_RECVFROM,      /* WSARecvFrom */
    LX_IOCP_SENDTO,        /* WSASendTo */
    LX_IOCP_ACCEPT,        /* AcceptEx */
    LX_IOCP_CONNECT,       /* ConnectEx */
    LX_IOCP_PIPE_CONNECT,  /* ConnectNamedPipe */
    LX_IOCP_READ,          /* ReadFile (pipes, any overlapped handle) */
    LX_IOCP_WRITE,         /* WriteFile */
    LX_IOCP_PROCESS        /* wait for a process (any waitable handle) */
} lx_iocp_kind;

typedef struct {
    const void *base;
    size_t len;
} lx_iocp_buf;

typedef struct lx_iocp_op {
    OVERLAPPED ov;      /* first: the kernel hands back &ov, which is the op */
    lx_iocp_kind kind;
    void *user;         /* the caller's; never touched here */
    DWORD bytes;        /* result: bytes transferred (LX_IOCP_POST: as posted) */
    DWORD error;        /* result: 0 or a Win32/WSA error code */
    int pending;        /* 1 while in flight (guards double submit / cancel) */
    HANDLE handle;      /* the socket/handle the op runs on (for cancel) */
    HANDLE port;        /* LX_IOCP_PROCESS: where the waiter posts */
    DWORD flags;        /* WSARecv/WSARecvFrom flags, written by the kernel */
    union {
        struct {                        /* LX_IOCP_ACCEPT */
            SOCKET sock;                /* result: the new socket, now yours */
            struct sockaddr_storage local, peer;   /* result: addresses */
            int local_len, peer_len;
            char buf[2 * LX_IOCP_ADDR_SLOT];       /* AcceptEx writes here */
        } accept;
        struct {                        /* LX_IOCP_RECVFROM */
            struct sockaddr_storage addr;          /* result: the sender */
            int addr_len;
        } from;
        struct {                        /* LX_IOCP_PROCESS */
            HANDLE wait;                /* RegisterWaitForSingleObject's */
            volatile LONG fired;        /* set by the waiter before posting */
        } proc;
    } u;
} lx_iocp_op;

/* The completion port.  open returns NULL on failure (GetLastError tells
 * why); it also starts Winsock and loads the extension functions once per
 * process. */
HANDLE lx_iocp_open(void);
DWORD lx_iocp_close(HANDLE port);

/* Route a socket's or handle's completions to the port (once per handle;
 * a handle can never leave its port). */
DWORD lx_iocp_associate(HANDLE port, HANDLE h);

/* Socket I/O.  Buffers and addresses must stay valid until completion. */
DWORD lx_iocp_recv(lx_iocp_op *op, SOCKET s, void *buf, size_t len);
DWORD lx_iocp_send(lx_iocp_op *op, SOCKET s, const lx_iocp_buf *bufs, int nbufs);
DWORD lx_iocp_recvfrom(lx_iocp_op *op, SOCKET s, void *buf, size_t len);
DWORD lx_iocp_sendto(lx_iocp_op *op, SOCKET s, const void *buf, size_t len,
                     const struct sockaddr *to, int tolen);
/* AcceptEx: creates the accept socket (the listener's family); on success
 * u.accept.sock is a connected socket owned by the caller (not associated
 * with any port yet) and u.accept.local/peer hold its addresses; on failure
 * it is closed and INVALID_SOCKET. */
DWORD lx_iocp_accept(lx_iocp_op *op, SOCKET listener);
/* ConnectEx: binds `s` to the wildcard address first if it is unbound. */
DWORD lx_iocp_connect(lx_iocp_op *op, SOCKET s, const struct sockaddr *to, int tolen);

/* Handle I/O: named pipes (or any handle opened with FILE_FLAG_OVERLAPPED
 * that has no file position; the offset is always 0).  pipe_connect waits
 * for a client on a server pipe; `port` is the pipe's port, used to post the
 * completion when the client was already there (ERROR_PIPE_CONNECTED). */
DWORD lx_iocp_pipe_connect(lx_iocp_op *op, HANDLE port, HANDLE pipe);
DWORD lx_iocp_read(lx_iocp_op *op, HANDLE h, void *buf, size_t len);
DWORD lx_iocp_write(lx_iocp_op *op, HANDLE h, const void *buf, size_t len);

/* Completes (error 0) when `process` (any waitable handle) is signalled.
 * The handle must stay open until completion.  Read the exit code with
 * GetExitCodeProcess afterwards. */
DWORD lx_iocp_wait_process(lx_iocp_op *op, HANDLE port, HANDLE process);

/* Queue a packet.  op == NULL is a bare wakeup, safe from any thread at
 * any time (call_soon_threadsafe): it makes a blocked lx_iocp_wait return,
 * possibly with 0 ops, and is never reported.  A non-NULL op completes as
 * LX_IOCP_POST with `bytes` as given and is in flight until dequeued like
 * any other op; its `pending` flag is not atomic, so a thread other than
 * the loop's may post it only while the caller knows it is not in flight. */
DWORD lx_iocp_post(HANDLE port, lx_iocp_op *op, DWORD bytes);

/* Ask for an in-flight op to end early.  Returns 0 if requested (the op
 * then completes, usually with ERROR_OPERATION_ABORTED, though it may
 * still complete normally if it finished first), ERROR_NOT_FOUND if it is
 * not in flight or already finished, or another error. */
DWORD lx_iocp_cancel(lx_iocp_op *op);

/* Dequeue up to `max` completed ops into out[] (max is capped at
 * LX_IOCP_MAX_BATCH), filling their result fields.  timeout_ns < 0 waits
 * forever; otherwise the call never returns 0 ops before timeout_ns have
 * passed on lx_iocp_monotonic_ns, except after a bare wakeup.  Returns the
 * number of ops, or -(Win32 error) if the wait itself failed. */
int lx_iocp_wait(HANDLE port, lx_iocp_op **out, int max, int64_t timeout_ns);

/* Nanoseconds from QueryPerformanceCounter, scaled exactly as CPython
 * 3.13+ scales it for time.monotonic() (floor(ticks * 1e9 / frequency)),
 * so both read the same clock.  (3.11 and 3.12 read GetTickCount64 there.) */
int64_t lx_iocp_monotonic_ns(void);

#endif /* LOOPX_IOCP_H */
