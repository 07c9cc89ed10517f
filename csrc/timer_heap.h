/* timer_heap.h -- a binary min-heap of timers ordered by (when, seq).
 *
 * Contract:
 *   - Each entry owns a reference to its handle object (push INCREFs).
 *   - seq is a counter given at push time, so timers with equal deadlines pop
 *     in the order they were scheduled (asyncio's heapq gives the same order
 *     because its handles compare by `when` and heapq is not stable; we make
 *     the order an explicit, documented guarantee instead).
 *   - lx_th_pop hands the heap's reference to the caller; call only when len > 0.
 *   - lx_th_compact removes every entry for which `dead(handle)` is true and
 *     re-heapifies in O(n).  `dead` must not run Python code.
 *   - Nothing here runs Python code except the DECREFs in lx_th_compact and
 *     lx_th_free, which happen after the heap is consistent again.
 *   - Handles may be untracked by the GC while only the heap holds them; every
 *     reference the heap drops goes through lx_owned_release (owned.h).
 */
#ifndef LOOPX_TIMER_HEAP_H
#define LOOPX_TIMER_HEAP_H

#include <Python.h>
#include <stdint.h>

#include "owned.h"

typedef struct {
    double when;
    uint64_t seq;
    PyObject *handle;
} lx_timer;

typedef struct {
    lx_timer *items;
    Py_ssize_t len;
    Py_ssize_t cap;
    uint64_t next_seq;
} lx_timer_heap;

static inline int lx_timer_before(const lx_timer *a, const lx_timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static int lx_th_init(lx_timer_heap *h, Py_ssize_t cap)
{
    h->items = (lx_timer *)PyMem_Malloc(sizeof(lx_timer) * (size_t)cap);
    if (h->items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    h->len = 0;
    h->cap = cap;
    h->next_seq = 0;
    return 0;
}

static void lx_th_sift_up(lx_timer_heap *h, Py_ssize_t i)
{
    lx_timer item = h->items[i];
    while (i > 0) {
        Py_ssize_t parent = (i - 1) >> 1;
        if (!lx_timer_before(&item, &h->items[parent]))
            break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = item;
}

static void lx_th_sift_down(lx_timer_heap *h, Py_ssize_t i)
{
    lx_timer item = h->items[i];
    Py_ssize_t n = h->len;
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && lx_timer_before(&h->items[child + 1], &h->items[child]))
            child++;
        if (!lx_timer_before(&h->items[child], &item))
            break;
        h->items[i] = h->items[child];
        i = child;
    }
    h->items[i] = item;
}

static int lx_th_push(lx_timer_heap *h, double when, PyObject *handle)
{
    if (h->len == h->cap) {
        Py_ssize_t newcap = h->cap ? h->cap * 2 : 16;
        lx_timer *items;
        if (newcap > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(lx_timer)) {
            PyErr_NoMemory();
            return -1;
        }
        items = (lx_timer *)PyMem_Realloc(h->items, sizeof(lx_timer) * (size_t)newcap);
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        h->items = items;
        h->cap = newcap;
    }
    Py_INCREF(handle);
    h->items[h->len].when = when;
    h->items[h->len].seq = h->next_seq++;
    h->items[h->len].handle = handle;
    h->len++;
    lx_th_sift_up(h, h->len - 1);
    return 0;
}

static inline PyObject *lx_th_pop(lx_timer_heap *h)
{
    PyObject *handle = h->items[0].handle;
    h->len--;
    if (h->len > 0) {
        h->items[0] = h->items[h->len];
        lx_th_sift_down(h, 0);
    }
    return handle;
}

/* Remove the entries whose handle is dead; returns how many were removed. */
static Py_ssize_t lx_th_compact(lx_timer_heap *h, int (*dead)(PyObject *))
{
    Py_ssize_t i, kept = 0, removed;
    PyObject **garbage;

    garbage = (PyObject **)PyMem_Malloc(sizeof(PyObject *) * (size_t)(h->len ? h->len : 1));
    if (garbage == NULL) {
        /* Not fatal: compaction is an optimisation; cancelled timers are
         * still dropped one by one when they reach the top. */
        return 0;
    }
    removed = 0;
    for (i = 0; i < h->len; i++) {
        if (dead(h->items[i].handle))
            garbage[removed++] = h->items[i].handle;
        else
            h->items[kept++] = h->items[i];
    }
    h->len = kept;
    for (i = (kept >> 1) - 1; i >= 0; i--)
        lx_th_sift_down(h, i);
    /* The heap is consistent before any finalizer can run. */
    for (i = 0; i < removed; i++)
        lx_owned_release(garbage[i]);
    PyMem_Free(garbage);
    return removed;
}

static void lx_th_clear(lx_timer_heap *h)
{
    while (h->len > 0) {
        PyObject *handle = h->items[--h->len].handle;
        lx_owned_release(handle);
    }
}

/* Visit every timer's handle, for the loop's tp_traverse. */
static int lx_th_traverse(lx_timer_heap *h, visitproc visit, void *arg)
{
    Py_ssize_t i;
    for (i = 0; i < h->len; i++) {
        int r = lx_owned_visit(h->items[i].handle, visit, arg);
        if (r)
            return r;
    }
    return 0;
}

/* lx_owned_track_if_shared on every timer's handle (owned.h). */
static void lx_th_track_shared(lx_timer_heap *h)
{
    Py_ssize_t i;
    for (i = 0; i < h->len; i++)
        lx_owned_track_if_shared(h->items[i].handle);
}

static void lx_th_free(lx_timer_heap *h)
{
    if (h->items != NULL) {
        lx_th_clear(h);
        PyMem_Free(h->items);
        h->items = NULL;
    }
    h->cap = 0;
}

#endif
