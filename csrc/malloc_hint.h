/* malloc_hint.h -- tell glibc's malloc, once, that this process moves large
 * transient buffers (transport_base.pxi calls it on the first read of 32 KiB
 * or more).
 *
 * The trap.  glibc returns free memory at the top of its heap to the kernel
 * as soon as more than M_TRIM_THRESHOLD (128 KiB by default) is free there,
 * and takes it back with brk() on the next allocation, each page faulted in
 * and zeroed anew.  A connection echoing 100 KiB messages through asyncio
 * streams allocates and frees about 200 KiB of buffers per message (the
 * reader's bytearray grows, read() copies out of it into bytes, del shrinks
 * it), right at the top of the heap: one brk() down and ~20 page faults per
 * message, a third of the server's CPU.  Measured with the benchmark's
 * 100 KiB streams echo: 18.6 faults and 0.8 brk() per message.
 *
 * The hint.  glibc tunes itself when a program frees a block it had to mmap
 * (one of M_MMAP_THRESHOLD or more): from then on blocks of that size come
 * from the heap, and the trim threshold is twice that size.  Any program that
 * ever frees one large buffer gets this; a server whose start-up never did
 * keeps the defaults.  lx_malloc_hint_large_buffers() frees one such block of
 * LX_MALLOC_HINT_BLOCK bytes, exactly as such a program would: the heap may
 * then keep up to 2 MiB free at its top instead of 128 KiB.
 *
 * A program that sets any malloc threshold itself (mallopt(), MALLOC_TRIM_
 * THRESHOLD_, GLIBC_TUNABLES=glibc.malloc.*) has switched glibc's self-tuning
 * off, and then this changes nothing: its choice stands.  Where the thresholds
 * are already higher (an earlier large free), the block comes from the heap
 * and changes nothing either.  Other C libraries: nothing to do.
 */
#ifndef LOOPX_MALLOC_HINT_H
#define LOOPX_MALLOC_HINT_H

#include <stdlib.h>

#define LX_MALLOC_HINT_BLOCK (1024 * 1024)

#if defined(__GLIBC__)
/* Volatile, so the compiler cannot drop the malloc()/free() pair. */
static void *volatile lx_malloc_hint_block;

static inline void lx_malloc_hint_large_buffers(void)
{
    /* Never touched: an mmapped block costs an mmap() and a munmap(), no
     * page faults.  If malloc fails there is nothing to hint with. */
    lx_malloc_hint_block = malloc(LX_MALLOC_HINT_BLOCK);
    free(lx_malloc_hint_block);
    lx_malloc_hint_block = NULL;
}
#else
static inline void lx_malloc_hint_large_buffers(void) {}
#endif

#endif /* LOOPX_MALLOC_HINT_H */
