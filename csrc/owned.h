/* owned.h -- handles the loop alone owns are invisible to the garbage collector.
 *
 * Why.  A busy loop queues thousands of handles; each one sits in the GC's
 * youngest generation, so every collection (one per 700 allocations) walks
 * all of them, and nothing is ever found there: while a handle is queued the
 * loop holds it, so it cannot be garbage.  The handles the loop schedules
 * (call_soon, call_at) are therefore never tracked while it owns them
 * "privately":
 *
 *   - lx_owned_release: the loop lets go of one (ran, cancelled, cleared).
 *     If anybody else still holds it -- the caller kept the TimerHandle, the
 *     callback stored it -- it is tracked again first, so a cycle through it
 *     (obj -> handle -> obj.method) stays collectable from then on.
 *   - lx_owned_track_if_shared: run on every pending handle when a
 *     collection starts (a gc.callbacks hook, _loop.pyx): a handle somebody
 *     else took hold of while it was queued is tracked again before the
 *     collector looks, so at collection time an untracked handle is held by
 *     its loop alone.
 *   - lx_owned_visit: the loop's tp_traverse reports the fields of those
 *     handles as its own references, so a loop dropped without close() in a
 *     cycle with its pending callbacks is still collected.  (Should a shared
 *     handle still be untracked -- the hook removed from gc.callbacks -- it is
 *     not looked into: that can only keep objects alive, never free a live
 *     one.)
 *
 * Tracked objects (transports, fd handles, signal handles) pass through both
 * unchanged.  No function here runs Python code except through Py_DECREF.
 */
#ifndef LOOPX_OWNED_H
#define LOOPX_OWNED_H

#include <Python.h>

/* Handles are born untracked (handle_freelist.h), owned by the loop's queue
 * or heap from the start.  A handle the loop keeps elsewhere -- the fd table,
 * the signal table, where others may reach it -- is made an ordinary tracked
 * object with this instead. */
static inline void lx_owned_share(PyObject *obj)
{
    PyObject_GC_Track(obj);
}

/* A handle's argument tuple holding no GC object can never be in a cycle;
 * CPython untracks such tuples too, but only when a collection reaches them,
 * which with thousands of queued callbacks is thousands of wasted visits. */
static inline void lx_untrack_atomic_tuple(PyObject *tup)
{
    Py_ssize_t i, n = PyTuple_GET_SIZE(tup);
    for (i = 0; i < n; i++) {
        if (PyObject_IS_GC(PyTuple_GET_ITEM(tup, i)))
            return;
    }
    PyObject_GC_UnTrack(tup);
}

static inline void lx_owned_track_if_shared(PyObject *obj)
{
    if (Py_REFCNT(obj) > 1 && PyObject_IS_GC(obj) && !PyObject_GC_IsTracked(obj))
        PyObject_GC_Track(obj);
}

static inline void lx_owned_release(PyObject *obj)
{
    lx_owned_track_if_shared(obj);
    Py_DECREF(obj);
}

static inline int lx_owned_visit(PyObject *obj, visitproc visit, void *arg)
{
    if (PyObject_IS_GC(obj) && !PyObject_GC_IsTracked(obj)) {
        if (Py_REFCNT(obj) == 1 && Py_TYPE(obj)->tp_traverse != NULL)
            return Py_TYPE(obj)->tp_traverse(obj, visit, arg);
        return 0;
    }
    return visit(obj, arg);
}

#endif /* LOOPX_OWNED_H */
