# Socket addresses between C and Python.  Included into _loop.pyx before the
# transports that use it (stream serving, datagrams).

cdef extern from "Python.h":
    object PyUnicode_DecodeFSDefault(const char *s)

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    int AF_INET
    int AF_INET6
    int AF_UNIX


cdef extern from "<sys/un.h>" nogil:
    struct sockaddr_un:
        char sun_path[1]    # its real size does not matter here

cdef extern from "compat.h" nogil:
    int LX_LINUX


cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        uint32_t s_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in:
        sa_family_t sin_family
        unsigned short sin_port
        in_addr sin_addr
    struct sockaddr_in6:
        sa_family_t sin6_family
        unsigned short sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id
    unsigned short htons(unsigned short)
    unsigned short ntohs(unsigned short)
    uint32_t htonl(uint32_t)
    uint32_t ntohl(uint32_t)


cdef extern from "<arpa/inet.h>" nogil:
    int INET6_ADDRSTRLEN
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
    int inet_pton(int af, const char *src, void *dst)


cdef Py_ssize_t _format_ipv4(const unsigned char *octets, char *text) noexcept:
    """Write the dotted quad of a 4-byte address (network order) into text
    (16 bytes at least); return its length.  glibc's inet_ntop() formats an
    IPv4 address through sprintf(), 1% of a connection's CPU at accept."""
    cdef Py_ssize_t n = 0
    cdef int i
    cdef unsigned char v
    for i in range(4):
        v = octets[i]
        if v >= 100:
            text[n] = c'0' + v // 100
            n += 1
        if v >= 10:
            text[n] = c'0' + (v // 10) % 10
            n += 1
        text[n] = c'0' + v % 10
        n += 1
        if i < 3:
            text[n] = c'.'
            n += 1
    return n


cdef object _sockaddr_to_python(sockaddr *sa, socklen_t salen):
    """The socket module's Python form of an AF_INET, AF_INET6 or AF_UNIX
    address, as socket.accept() or recvfrom() would return it.  An AF_UNIX
    address must sit in a zeroed buffer larger than the address (a
    sockaddr_storage): like the socket module, we read its path up to a NUL."""
    cdef char text[64]   # >= INET6_ADDRSTRLEN
    cdef sockaddr_in *a4
    cdef sockaddr_in6 *a6
    cdef char *path
    cdef Py_ssize_t pathlen
    if salen == 0:
        return None
    if sa.sa_family == AF_INET:
        a4 = <sockaddr_in *>sa
        return (text[:_format_ipv4(<const unsigned char *>&a4.sin_addr, text)].decode("ascii"),
                ntohs(a4.sin_port))
    if sa.sa_family == AF_INET6:
        a6 = <sockaddr_in6 *>sa
        if inet_ntop(AF_INET6, &a6.sin6_addr, text, sizeof(text)) == NULL:
            raise _os_error(errno)
        return (text.decode("ascii"), ntohs(a6.sin6_port),
                ntohl(a6.sin6_flowinfo), a6.sin6_scope_id)
    if sa.sa_family == AF_UNIX:
        path = (<sockaddr_un *>sa).sun_path
        pathlen = <Py_ssize_t>salen - (path - <char *>sa)
        if LX_LINUX and pathlen > 0 and path[0] == 0:
            return path[:pathlen]   # Linux's abstract namespace: bytes
        # A named socket's path, or '' for an unnamed one (pathlen 0).
        return PyUnicode_DecodeFSDefault(path)
    # Not seen on these families; the socket module's generic form.
    return (sa.sa_family, (<char *>sa)[sizeof(sa_family_t):salen])
