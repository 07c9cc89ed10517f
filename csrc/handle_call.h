/* handle_call.h -- run a handle's callback on its arguments.
 *
 * Why not PyObject_Call(callback, args): that goes through tp_call, which for
 * a Python function unpacks the tuple back into a vector, and wraps the call
 * in a second recursion check.  A handle keeps up to two arguments in its own
 * fields (no tuple at all), more in a tuple whose items already are a vector;
 * either way the callback is vectorcalled on them directly: one callback per
 * handle makes this the loop's hottest call.
 */
#ifndef LOOPX_HANDLE_CALL_H
#define LOOPX_HANDLE_CALL_H

#include <Python.h>

/* What a handle does when it runs: enter ctx, callback(*argv), exit ctx.
 * nargsf as PyObject_Vectorcall takes it; the caller keeps every item of
 * argv alive for the call (a callback may cancel its own handle, which drops
 * the handle's references).  0, or -1 with the exception set: the callback's,
 * or the RuntimeError of entering a context entered elsewhere (as
 * context.run raises).  In C rather than as Cython try/finally: that saves
 * and restores the thread's exception state around every callback, while
 * only a failing one needs it. */
static inline int lx_run_in_context(PyObject *ctx, PyObject *callback,
                                    PyObject *const *argv, size_t nargsf)
{
    PyObject *res;
    if (PyContext_Enter(ctx) < 0)
        return -1;
    res = PyObject_Vectorcall(callback, argv, nargsf, NULL);
    if (res != NULL) {
        Py_DECREF(res);
        return PyContext_Exit(ctx);
    }
    {
        /* Exit with the callback's exception put aside; should exiting fail,
         * its error replaces it, as an exception in a finally clause does. */
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *exc = PyErr_GetRaisedException();
        if (PyContext_Exit(ctx) < 0)
            Py_XDECREF(exc);
        else
            PyErr_SetRaisedException(exc);
#else
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (PyContext_Exit(ctx) < 0) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
        } else {
            PyErr_Restore(type, value, tb);
        }
#endif
    }
    return -1;
}

/* A tuple's items as a vector (for an empty tuple, a pointer not to read). */
#define lx_tuple_items(t) (((PyTupleObject *)(t))->ob_item)

/* A new tuple of the n objects at v (new references). */
static inline PyObject *lx_tuple_from_vector(PyObject *const *v, Py_ssize_t n)
{
    Py_ssize_t i;
    PyObject *t = PyTuple_New(n);
    if (t == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        Py_INCREF(v[i]);
        PyTuple_SET_ITEM(t, i, v[i]);
    }
    return t;
}

/* For Cython: -1, declared "except -1", turns the exception already set into
 * a Python-level raise at the call site. */
static inline int lx_raise_pending(void)
{
    return -1;
}

#endif /* LOOPX_HANDLE_CALL_H */
