/* ready_queue.h -- the loop's FIFO of handles ready to run.
 *
 * Contract:
 *   - A ring buffer of owned PyObject* references; capacity is a power of two.
 *   - lx_rq_push takes a NEW reference to the object (it INCREFs).
 *   - lx_rq_pop hands the queue's reference to the caller (no INCREF); it must
 *     only be called when len > 0.
 *   - No function here runs Python code, so a push or pop can never be
 *     interleaved with another thread holding the GIL.
 *   - Handles may be untracked by the GC while only the queue holds them;
 *     every reference the queue drops goes through lx_owned_release
 *     (owned.h), and so must the caller's after a pop.
 */
#ifndef LOOPX_READY_QUEUE_H
#define LOOPX_READY_QUEUE_H

#include <Python.h>
#include <string.h>

#include "owned.h"

typedef struct {
    PyObject **items;
    Py_ssize_t cap;   /* power of two */
    Py_ssize_t head;  /* index of the oldest item */
    Py_ssize_t len;
} lx_ready_queue;

static int lx_rq_init(lx_ready_queue *q, Py_ssize_t cap)
{
    q->items = (PyObject **)PyMem_Malloc(sizeof(PyObject *) * (size_t)cap);
    if (q->items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    q->cap = cap;
    q->head = 0;
    q->len = 0;
    return 0;
}

/* Double the capacity, unrolling the ring so that head becomes 0. */
static int lx_rq_grow(lx_ready_queue *q)
{
    Py_ssize_t newcap = q->cap ? q->cap * 2 : 16;
    PyObject **items;
    Py_ssize_t first;

    if (newcap > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *)) {
        PyErr_NoMemory();
        return -1;
    }
    items = (PyObject **)PyMem_Malloc(sizeof(PyObject *) * (size_t)newcap);
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    first = q->cap - q->head;
    if (first > q->len)
        first = q->len;
    memcpy(items, q->items + q->head, sizeof(PyObject *) * (size_t)first);
    memcpy(items + first, q->items, sizeof(PyObject *) * (size_t)(q->len - first));
    PyMem_Free(q->items);
    q->items = items;
    q->cap = newcap;
    q->head = 0;
    return 0;
}

static inline int lx_rq_push(lx_ready_queue *q, PyObject *obj)
{
    if (q->len == q->cap && lx_rq_grow(q) < 0)
        return -1;
    Py_INCREF(obj);
    q->items[(q->head + q->len) & (q->cap - 1)] = obj;
    q->len++;
    return 0;
}

static inline PyObject *lx_rq_pop(lx_ready_queue *q)
{
    PyObject *obj = q->items[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    return obj;
}

/* The i-th oldest queued object (borrowed), for 0 <= i < len. */
static inline PyObject *lx_rq_at(lx_ready_queue *q, Py_ssize_t i)
{
    return q->items[(q->head + i) & (q->cap - 1)];
}

/* Drop every reference.  The references are detached from the queue before
 * any DECREF, because a DECREF can run a finalizer that schedules again. */
static void lx_rq_clear(lx_ready_queue *q)
{
    while (q->len > 0) {
        PyObject *obj = lx_rq_pop(q);
        lx_owned_release(obj);
    }
    q->head = 0;
}

/* Visit every queued object, for the loop's tp_traverse. */
static int lx_rq_traverse(lx_ready_queue *q, visitproc visit, void *arg)
{
    Py_ssize_t i;
    for (i = 0; i < q->len; i++)
    {
        int r = lx_owned_visit(q->items[(q->head + i) & (q->cap - 1)], visit, arg);
        if (r)
            return r;
    }
    return 0;
}

/* lx_owned_track_if_shared on every queued object (owned.h). */
static void lx_rq_track_shared(lx_ready_queue *q)
{
    Py_ssize_t i;
    for (i = 0; i < q->len; i++)
        lx_owned_track_if_shared(q->items[(q->head + i) & (q->cap - 1)]);
}

static void lx_rq_free(lx_ready_queue *q)
{
    if (q->items != NULL) {
        lx_rq_clear(q);
        PyMem_Free(q->items);
        q->items = NULL;
    }
    q->cap = 0;
}

#endif
