/* sched_call.h -- the argument parsing of call_soon, call_later and call_at.
 *
 * Why not a Cython def: "def call_soon(self, callback, *args, context=None)"
 * packs *args into a new tuple on every call, and the handle then keeps that
 * tuple.  These methods are instead METH_FASTCALL|METH_KEYWORDS functions
 * (installed on the Loop type at import), which read the caller's argument
 * vector and copy up to two arguments into the handle itself: no tuple is
 * allocated for the usual call_soon(cb, arg, context=ctx) of a future
 * callback or task wake-up, nor for asyncio.sleep's call_later.
 *
 * The signatures are asyncio's: npos leading parameters (callback, or
 * delay/when and callback) which may also be passed by keyword, then *args,
 * then the keyword-only context.  Errors are the TypeErrors a Python
 * function of that signature raises.
 */
#ifndef LOOPX_SCHED_CALL_H
#define LOOPX_SCHED_CALL_H

#include <Python.h>

#define LX_SCHED_MAX_POS 2

typedef struct {
    PyObject *pos[LX_SCHED_MAX_POS];  /* borrowed */
    PyObject *context;                /* borrowed; None if not passed */
    PyObject **rest;                  /* the *args: the caller's vector (not to
                                         be written: const dropped for Cython) */
    Py_ssize_t nrest;
} lx_sched_args;

/* Parse args[0:nargs] plus the keywords kwnames (values after the
 * positionals) against (names[0], ..., names[npos-1], *args, context=None).
 * 0, or -1 with TypeError set. */
static inline int lx_parse_sched_call(const char *fname, const char *const *names,
                                      Py_ssize_t npos, PyObject *const *args,
                                      Py_ssize_t nargs, PyObject *kwnames,
                                      lx_sched_args *out)
{
    Py_ssize_t i, j, nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);

    out->context = Py_None;
    for (j = 0; j < npos; j++)
        out->pos[j] = j < nargs ? args[j] : NULL;
    out->rest = (PyObject **)(args + (nargs > npos ? npos : nargs));
    out->nrest = nargs > npos ? nargs - npos : 0;

    for (i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        PyObject *value = args[nargs + i];
        /* CPython's keyword names are str (checked by the call machinery). */
        if (PyUnicode_CompareWithASCIIString(key, "context") == 0) {
            out->context = value;
            continue;
        }
        for (j = 0; j < npos; j++) {
            if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0)
                break;
        }
        if (j == npos) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'", fname, key);
            return -1;
        }
        if (out->pos[j] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'", fname, names[j]);
            return -1;
        }
        out->pos[j] = value;
    }
    for (j = 0; j < npos; j++) {
        if (out->pos[j] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s' (pos %zd)",
                         fname, names[j], j + 1);
            return -1;
        }
    }
    return 0;
}

/* Make fn, a METH_FASTCALL|METH_KEYWORDS function, the method `name` of
 * type t, replacing any attribute of that name; def is its storage, which
 * must outlive the type (static).  doc may start with a text signature.
 * 0, or -1 with an exception set.  For the module's own static extension
 * types, at import, before any instance exists. */
static inline int lx_type_set_fastcall_method(PyTypeObject *t, PyMethodDef *def,
                                              const char *name, void *fn,
                                              const char *doc)
{
    int rc;
    PyObject *descr;
    def->ml_name = name;
    def->ml_meth = (PyCFunction)(void (*)(void))fn;
    def->ml_flags = METH_FASTCALL | METH_KEYWORDS;
    def->ml_doc = doc;
    descr = PyDescr_NewMethod(t, def);
    if (descr == NULL)
        return -1;
    rc = PyDict_SetItemString(t->tp_dict, name, descr);
    Py_DECREF(descr);
    PyType_Modified(t);
    return rc;
}

#endif /* LOOPX_SCHED_CALL_H */
