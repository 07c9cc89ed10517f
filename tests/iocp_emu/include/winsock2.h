/* winsock2.h -- Winsock names over BSD sockets for the Linux IOCP emulation
 * (see windows.h here).  SOCKET is a plain fd; WSA error codes are errno
 * values. */
#ifndef IOCP_EMU_WINSOCK2_H
#define IOCP_EMU_WINSOCK2_H

#include "windows.h"
#include <sys/socket.h>
#include <netinet/in.h>

typedef int SOCKET;
#define INVALID_SOCKET (-1)
#define SOCKET_ERROR (-1)

#define WSA_OPERATION_ABORTED  ECANCELED
#define WSAEINVAL              EINVAL
#define WSAEACCES              EACCES
#define WSAEMSGSIZE            EMSGSIZE
#define WSAENOTSOCK            ENOTSOCK
#define WSAEOPNOTSUPP          EOPNOTSUPP
#define WSAEAFNOSUPPORT        EAFNOSUPPORT
#define WSAEADDRINUSE          EADDRINUSE
#define WSAEADDRNOTAVAIL       EADDRNOTAVAIL
#define WSAENETUNREACH         ENETUNREACH
#define WSAECONNABORTED        ECONNABORTED
#define WSAECONNRESET          ECONNRESET
#define WSAENOBUFS             ENOBUFS
#define WSAENOTCONN            ENOTCONN
#define WSAESHUTDOWN           ESHUTDOWN
#define WSAETIMEDOUT           ETIMEDOUT
#define WSAECONNREFUSED        ECONNREFUSED
#define WSAEHOSTUNREACH        EHOSTUNREACH

#endif /* IOCP_EMU_WINSOCK2_H */
