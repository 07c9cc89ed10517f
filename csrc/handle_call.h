/* handle_call.h -- run a handle's callback with its argument tuple.
 *
 * Why not PyObject_Call(callback, args): that goes through tp_call, which for
 * a Python function unpacks the tuple back into a vector, and wraps the call
 * in a second recursion check.  The tuple's items already are the vector a
 * vectorcall takes, so the callback is called on them directly: one callback
 * per handle makes this the loop's hottest call.
 */
#ifndef LOOPX_HANDLE_CALL_H
#define LOOPX_HANDLE_CALL_H

#include <Python.h>

/* callback(*args), args a tuple or None (no arguments); a new reference, or
 * NULL with an exception set. */
static inline PyObject *lx_call_with_args(PyObject *callback, PyObject *args)
{
    if (args == Py_None)
        return PyObject_CallNoArgs(callback);
    return PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(args, 0),
                               (size_t)PyTuple_GET_SIZE(args), NULL);
}

/* What a handle does when it runs: enter ctx, callback(*args), exit ctx.
 * 0, or -1 with the exception set: the callback's, or the RuntimeError of
 * entering a context entered elsewhere (as context.run raises).  In C rather
 * than as Cython try/finally: that saves and restores the thread's exception
 * state around every callback, while only a failing one needs it. */
static inline int lx_run_in_context(PyObject *ctx, PyObject *callback, PyObject *args)
{
    PyObject *res;
    if (PyContext_Enter(ctx) < 0)
        return -1;
    res = lx_call_with_args(callback, args);
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

/* For Cython: -1, declared "except -1", turns the exception already set into
 * a Python-level raise at the call site. */
static inline int lx_raise_pending(void)
{
    return -1;
}

#endif /* LOOPX_HANDLE_CALL_H */
