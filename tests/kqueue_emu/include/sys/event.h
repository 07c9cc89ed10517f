/* sys/event.h -- BSD kqueue declarations for the Linux kqueue emulation.
 *
 * Only the subset loopx's kqueue poller uses is declared; see ../README.md.
 * Layout and constant values follow macOS, so code compiled here sees the
 * same struct kevent as on the platform the poller is written for.  The
 * filter values are negative as on every BSD.
 */
#ifndef KQUEUE_EMU_SYS_EVENT_H
#define KQUEUE_EMU_SYS_EVENT_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kevent {
    uintptr_t ident;      /* fd, pid or user-chosen id, depending on filter */
    short filter;         /* EVFILT_* */
    unsigned short flags; /* EV_* */
    unsigned int fflags;  /* filter-specific NOTE_* */
    intptr_t data;        /* filter-specific data */
    void *udata;          /* opaque, returned unchanged */
};

#define EV_SET(kevp, a, b, c, d, e, f) do {  \
        struct kevent *kev__ = (kevp);       \
        kev__->ident = (a);                  \
        kev__->filter = (b);                 \
        kev__->flags = (c);                  \
        kev__->fflags = (d);                 \
        kev__->data = (e);                   \
        kev__->udata = (f);                  \
    } while (0)

/* Filters. */
#define EVFILT_READ   (-1)
#define EVFILT_WRITE  (-2)
#define EVFILT_PROC   (-5)
#define EVFILT_USER   (-10)

/* Actions and flags of a change. */
#define EV_ADD      0x0001  /* add, or modify an existing registration */
#define EV_DELETE   0x0002
#define EV_ENABLE   0x0004
#define EV_DISABLE  0x0008
#define EV_ONESHOT  0x0010  /* delete after the first delivery */
#define EV_CLEAR    0x0020  /* reset state after delivery (edge-triggered) */
#define EV_RECEIPT  0x0040  /* always report the change's outcome */

/* Flags returned in events. */
#define EV_ERROR    0x4000  /* data holds an errno for a failed change */
#define EV_EOF      0x8000  /* peer hung up / process exited */

/* EVFILT_PROC. */
#define NOTE_EXIT        0x80000000U
#define NOTE_EXITSTATUS  0x04000000U  /* accepted; data always holds the status */

/* EVFILT_USER: the low 24 bits are user flags, combined by the control op. */
#define NOTE_FFNOP       0x00000000U
#define NOTE_FFAND       0x40000000U
#define NOTE_FFOR        0x80000000U
#define NOTE_FFCOPY      0xc0000000U
#define NOTE_FFCTRLMASK  0xc0000000U
#define NOTE_FFLAGSMASK  0x00ffffffU
#define NOTE_TRIGGER     0x01000000U

int kqueue(void);
int kevent(int kq, const struct kevent *changelist, int nchanges,
           struct kevent *eventlist, int nevents,
           const struct timespec *timeout);

/* Not BSD: this header is the emulation's.  Closing an emulated kqueue with
 * close() leaves its internal fds open until kqueue() reuses the number;
 * kqueue_emu_close() frees everything at once. */
#define KQUEUE_EMU 1
int kqueue_emu_close(int kq);

#ifdef __cplusplus
}
#endif

#endif /* KQUEUE_EMU_SYS_EVENT_H */
