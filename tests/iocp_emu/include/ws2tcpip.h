/* ws2tcpip.h -- for the Linux IOCP emulation: the BSD headers that declare
 * what Windows' ws2tcpip.h does (inet_pton, struct sockaddr_in6, ...). */
#ifndef IOCP_EMU_WS2TCPIP_H
#define IOCP_EMU_WS2TCPIP_H

#include "winsock2.h"
#include <arpa/inet.h>
#include <netinet/in.h>

#endif /* IOCP_EMU_WS2TCPIP_H */
