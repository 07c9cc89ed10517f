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

#endif /* LOOPX_HANDLE_CALL_H */
