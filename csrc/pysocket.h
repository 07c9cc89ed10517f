/* pysocket.h -- a socket.socket's fd and timeout, read from the object.
 *
 * Why.  Every loop.sock_* call needs the socket's fd and whether it is
 * non-blocking; asking through sock.fileno() and sock.gettimeout() is two
 * method lookups and calls (and a float) per operation: a quarter of the
 * instructions of a sock_sendall plus a sock_recv when data is there.  The
 * fields sit at the start of CPython's socket object (Modules/socketmodule.h,
 * PySocketSockObject), in this order since Python 3 and up to 3.13; later
 * versions add fields after them.  sockets.pxi checks this mirror (the type
 * too, one more field that must line up) against the methods' answers on
 * real sockets at import (_socket_mirror_agrees), and uses it only if they
 * agree, and only on objects whose type is exactly socket.socket, which
 * overrides neither method.
 */
#ifndef LOOPX_PYSOCKET_H
#define LOOPX_PYSOCKET_H

#include <Python.h>
#include <stdint.h>

#ifdef _WIN32
/* The fd is a SOCKET there; loopx's Windows loop does not use this. */
#define LX_PYSOCKET_MIRRORED 0
#else
#define LX_PYSOCKET_MIRRORED 1
#endif

typedef struct {
    PyObject_HEAD
    int fd;                          /* -1 once closed */
    int family;
    int type;
    int proto;
    PyObject *(*errorhandler)(void);
    int64_t timeout_ns;              /* < 0: blocking; 0: non-blocking */
} lx_pysocket;

static inline int lx_pysocket_fd(PyObject *sock)
{
    return ((lx_pysocket *)sock)->fd;
}

static inline int lx_pysocket_type(PyObject *sock)
{
    return ((lx_pysocket *)sock)->type;
}

static inline int64_t lx_pysocket_timeout_ns(PyObject *sock)
{
    return ((lx_pysocket *)sock)->timeout_ns;
}

/* Whether objects of tp are big enough to hold the mirrored fields. */
static inline int lx_pysocket_fits(PyTypeObject *tp)
{
    return LX_PYSOCKET_MIRRORED && tp->tp_basicsize >= (Py_ssize_t)sizeof(lx_pysocket);
}

#endif
