/* windows.h -- the few Win32 types and error codes csrc/iocp.h needs, for
 * the Linux IOCP emulation (tests/iocp_emu).  Not Win32: just enough for
 * iocp.h to compile unchanged and for its callers to read results.
 *
 * Error codes are errno values, so that OSError(code, strerror(code)) in
 * Python picks the same exception subclass Windows' code would have
 * (ERROR_BROKEN_PIPE -> BrokenPipeError, ...).  Codes Windows keeps apart
 * can coincide here (ERROR_MORE_DATA and WSAEMSGSIZE are both EMSGSIZE);
 * callers tell them apart by the op's kind, as they must on Windows too.
 */
#ifndef IOCP_EMU_WINDOWS_H
#define IOCP_EMU_WINDOWS_H

#include <errno.h>
#include <stdint.h>

typedef void *HANDLE;
typedef uint32_t DWORD;
typedef int32_t LONG;
typedef uint32_t ULONG;
typedef int BOOL;
typedef uintptr_t ULONG_PTR;

/* The real OVERLAPPED's fields, plus one pointer the emulation keeps its
 * per-op state behind (as the kernel keeps its own behind Internal). */
typedef struct _OVERLAPPED {
    ULONG_PTR Internal;
    ULONG_PTR InternalHigh;
    DWORD Offset;
    DWORD OffsetHigh;
    HANDLE hEvent;
    void *emu;
} OVERLAPPED;

#define INVALID_HANDLE_VALUE ((HANDLE)(intptr_t)-1)
#define INFINITE 0xFFFFFFFFu

#define ERROR_SUCCESS            0
#define ERROR_INVALID_HANDLE     EBADF
#define ERROR_NOT_ENOUGH_MEMORY  ENOMEM
#define ERROR_INVALID_PARAMETER  EINVAL
#define ERROR_BROKEN_PIPE        EPIPE
#define ERROR_BUSY               EBUSY
#define ERROR_MORE_DATA          EMSGSIZE
#define ERROR_OPERATION_ABORTED  ECANCELED
#define ERROR_NOT_FOUND          ENOENT
#define ERROR_NOT_SUPPORTED      EOPNOTSUPP
#define ERROR_NETNAME_DELETED    ECONNRESET
#define ERROR_PORT_UNREACHABLE   ECONNREFUSED
#define ERROR_GEN_FAILURE        EIO

#endif /* IOCP_EMU_WINDOWS_H */
