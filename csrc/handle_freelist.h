/* handle_freelist.h -- the memory of dead handles, kept for the next ones.
 *
 * Why.  Allocating a garbage-collected object counts toward the next
 * collection (one every 700 allocations); taking one from a freelist does
 * not.  Handles and timer handles are the loop's most allocated objects: one
 * per call_soon, per task step, per asyncio.sleep.  10,000 sleeping tasks are
 * 10,000 timer handles, and without reuse they alone set off a dozen young
 * collections, each walking every young task and coroutine.
 *
 * How.  These are the tp_alloc and tp_free of Handle and TimerHandle
 * (installed once at import).  Cython's @cython.freelist does the same for a
 * base class but cannot for a subclass, so one mechanism here serves both.
 * A handle of the two types is handed out zeroed and initialised as by
 * PyType_GenericAlloc, reused or new, but NOT tracked by the GC: a handle
 * starts out owned by the loop alone (owned.h).  (An untracked handle made
 * from Python with Handle.__new__ is harmless: its fields are all None and
 * Python code cannot set them, so it can be in no cycle.)  Objects of any
 * other type (a Python subclass inherits these slots) are allocated, tracked
 * and freed as usual; so is everything past the cap.  The GIL guards the
 * lists.
 *
 * The cap bounds what a burst leaves behind: LX_HANDLE_FREELIST_MAX handles
 * of 112 and timer handles of 128 bytes, at most ~1.9 MiB.  (Measured on
 * 10,000 concurrent sleeps: young collections per run 179 with Cython's
 * 1,024-handle freelist, 158 with this at 8,192.)
 */
#ifndef LOOPX_HANDLE_FREELIST_H
#define LOOPX_HANDLE_FREELIST_H

#include <Python.h>
#include <string.h>

#ifndef LX_HANDLE_FREELIST_MAX
#define LX_HANDLE_FREELIST_MAX 8192
#endif

typedef struct {
    PyTypeObject *type;
    int count;
    PyObject *items[LX_HANDLE_FREELIST_MAX];
} lx_handle_freelist;

/* [0]: Handle, [1]: TimerHandle. */
static lx_handle_freelist lx_handle_freelists[2];

static inline lx_handle_freelist *lx_freelist_for(PyTypeObject *t)
{
    if (t == lx_handle_freelists[0].type)
        return &lx_handle_freelists[0];
    if (t == lx_handle_freelists[1].type)
        return &lx_handle_freelists[1];
    return NULL;
}

static PyObject *lx_handle_tp_alloc(PyTypeObject *t, Py_ssize_t nitems)
{
    lx_handle_freelist *fl = lx_freelist_for(t);
    PyObject *o;
    if (fl == NULL)
        return PyType_GenericAlloc(t, nitems);
    if (fl->count == 0) {
        o = PyType_GenericAlloc(t, nitems);
        if (o != NULL)
            PyObject_GC_UnTrack(o);
        return o;
    }
    o = fl->items[--fl->count];
    memset(o, 0, (size_t)t->tp_basicsize);
    PyObject_Init(o, t);
    return o;
}

/* Called by the types' tp_dealloc, after every field was cleared and the
 * object untracked. */
static void lx_handle_tp_free(void *p)
{
    PyObject *o = (PyObject *)p;
    lx_handle_freelist *fl = lx_freelist_for(Py_TYPE(o));
    if (fl != NULL && fl->count < LX_HANDLE_FREELIST_MAX) {
        fl->items[fl->count++] = o;
        return;
    }
    PyObject_GC_Del(o);
}

/* Make t (exactly; not its subclasses) allocate through freelist slot i. */
static void lx_handle_freelist_install(int i, PyTypeObject *t)
{
    lx_handle_freelists[i].type = t;
    t->tp_alloc = lx_handle_tp_alloc;
    t->tp_free = lx_handle_tp_free;
}

#endif /* LOOPX_HANDLE_FREELIST_H */
