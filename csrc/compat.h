/* compat.h -- POSIX differences between the platforms loopx builds on. */
#ifndef LOOPX_COMPAT_H
#define LOOPX_COMPAT_H

#include <sys/socket.h>

/* macOS has no MSG_NOSIGNAL.  Python ignores SIGPIPE at startup, so a send to
 * a closed peer fails with EPIPE there as well, which is all we rely on. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#endif
