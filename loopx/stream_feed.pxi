# Feeding asyncio's StreamReader without its Python frames.  Included into
# _loop.pyx.
#
# With asyncio streams (open_connection, start_server) a socket transport's
# protocol is a StreamReaderProtocol whose data_received() calls
# StreamReader.feed_data(), which calls _wakeup_waiter(): three Python frames
# per read, a good part of what a small echo costs.  When the protocol and the
# reader are exactly the standard library's classes with those methods
# unchanged (not subclassed, not patched), the transport does what they would
# do, step for step, from C: append to the reader's buffer, wake its waiter,
# pause reading past twice its limit.  Anything else -- a subclass, a patched
# method, a reader that has seen EOF -- goes through the methods as usual.
# The three methods have been identical from 3.11.7 through 3.13 (their
# private fields too: _stream_reader_wr, _buffer, _waiter, _eof, _transport,
# _paused, _limit); a Python whose classes lack any of them never takes this
# path (_stream_feed_supported).
#
# Subprocess pipes (asyncio.create_subprocess_*) get the same treatment.  Their
# data goes ReadSubprocessPipeProto.data_received -> the subprocess
# transport's _pipe_data_received, which defers it with call_soon ->
# SubprocessStreamProtocol.pipe_data_received -> StreamReader.feed_data: four
# Python frames, a handle and a whole loop iteration per read.  When every one
# of those is exactly the standard library's, the pipe transport feeds the
# reader directly (_subprocess_reader): the data reaches the reader one
# iteration sooner, never out of order -- a later read of the same pipe is
# always behind a deferred one in the ready queue -- and SubprocessStreamProtocol
# does nothing else with it.  Until the subprocess transport has connected
# its pipes (its _pending_calls is a list) the ordinary path keeps the data
# behind connection_made.

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memcpy
from cpython.exc cimport PyErr_Clear

cdef object _SRP = asyncio.StreamReaderProtocol
cdef object _SR = asyncio.StreamReader
cdef object _SRP_DATA_RECEIVED = _SRP.__dict__.get("data_received")
cdef object _SR_FEED_DATA = _SR.__dict__.get("feed_data")
cdef object _SR_WAKEUP_WAITER = _SR.__dict__.get("_wakeup_waiter")


def _probe_stream_feed():
    # The fields this path uses must be the ones these classes really set
    # (attribute stores are named in the constructors' code objects).
    names = set(_SR.__init__.__code__.co_names)
    return ({"_buffer", "_waiter", "_eof", "_transport", "_paused", "_limit"} <= names
            and "_stream_reader_wr" in _SRP.__init__.__code__.co_names)


cdef bint _stream_feed_supported = (_SRP_DATA_RECEIVED is not None
                                    and _SR_FEED_DATA is not None
                                    and _SR_WAKEUP_WAITER is not None
                                    and _probe_stream_feed())


cdef inline bint _stream_reader_unpatched():
    """StreamReader's methods that feeding from C stands in for are still the
    standard library's."""
    return _SR.feed_data is _SR_FEED_DATA and _SR._wakeup_waiter is _SR_WAKEUP_WAITER


cdef inline bint _feeds_stream_reader(protocol):
    """True if data for `protocol` may go through _feed_stream_reader
    (checked when the transport gets its protocol)."""
    return (_stream_feed_supported
            and type(protocol) is _SRP
            and _SRP.data_received is _SRP_DATA_RECEIVED
            and _stream_reader_unpatched())


cdef object _feedable(reader):
    """reader if feeding it from C is exactly what feed_data would do (an
    exact StreamReader, no EOF yet, a bytearray buffer), else None (no
    reader, or one that needs its own methods)."""
    if reader is None or type(reader) is not _SR or reader._eof:
        return None
    if type(reader._buffer) is not bytearray:
        return None
    return reader


cdef object _plain_reader(protocol):
    """A StreamReaderProtocol's reader, if _feedable."""
    wr = protocol._stream_reader_wr
    if wr is None:
        return None
    return _feedable(wr())


cdef _append_to_reader(reader, bytes data):
    """reader.feed_data(data) for a _feedable reader."""
    _append_chars_to_reader(reader, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef _append_chars_to_reader(reader, const char *data, Py_ssize_t n):
    """reader.feed_data(data[:n]) for a _feedable reader."""
    buf = reader._buffer
    # bytearray.extend(): the same growth, the same BufferError if the
    # buffer is exported.
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(buf)
    PyByteArray_Resize(buf, old + n)
    memcpy(PyByteArray_AS_STRING(buf) + old, data, <size_t>n)
    _stream_reader_fed(reader, old + n)


cdef extern from "Python.h":
    # Declared without `except`: a failure here means "take the other path".
    int _lx_bytearray_resize "PyByteArray_Resize"(object, Py_ssize_t)

# _recv_into_stream_reader's "not done here, read into bytes instead".
cdef enum:
    _NOT_DIRECT = -(1 << 30)


cdef ssize_t _recv_into_stream_reader(int fd, protocol, bint big) except? -2:
    """One read from a StreamReaderProtocol's socket into its reader, if it
    is _feedable: straight into the reader's buffer when reads are big
    (_read_into_reader), else through the scratch buffer
    (_read_scratch_into_reader).  Returns as _read_into_reader."""
    reader = _plain_reader(protocol)
    if reader is None:
        return _NOT_DIRECT
    if big:
        return _read_into_reader(fd, True, reader, 0)
    return _read_scratch_into_reader(fd, True, reader, _READ_SCRATCH_SIZE)


cdef ssize_t _read_scratch_into_reader(int fd, bint sock, reader, Py_ssize_t size) except? -2:
    """One recv (sock) or read of up to `size` (<= _READ_SCRATCH_SIZE) bytes
    into the scratch buffer, appended to a _feedable reader's buffer: one
    copy, and no bytes object for feed_data.  For small reads, where sizing
    the buffer for a direct read (FIONREAD) costs more than the copy.
    Returns the bytes read (> 0), 0 at EOF, or -errno."""
    cdef ssize_t n = _read_fd(fd, sock, _read_scratch, size)
    if n > 0:
        _append_chars_to_reader(reader, _read_scratch, n)
    return n


cdef ssize_t _read_into_reader(int fd, bint sock, reader, Py_ssize_t size) except? -2:
    """recv (sock) or read straight into the tail of a _feedable reader's
    buffer, saving feed_data's copy and a bytes object: up to `size` bytes,
    or with size 0 what FIONREAD reports (at most _READ_ALLOC_MAX).  Returns
    the bytes read (> 0), 0 at EOF, -errno, or _NOT_DIRECT when this moment
    needs the ordinary path."""
    cdef int avail = 0
    cdef Py_ssize_t old
    cdef ssize_t n
    if size <= 0:
        if ioctl(fd, FIONREAD, &avail) != 0 or avail <= 0:
            return _NOT_DIRECT  # let the ordinary read tell EOF and errors apart
        size = min(<Py_ssize_t>avail, <Py_ssize_t>_READ_ALLOC_MAX)
    buf = reader._buffer
    old = PyByteArray_GET_SIZE(buf)
    if _lx_bytearray_resize(buf, old + size) < 0:
        PyErr_Clear()  # exported: the ordinary path raises extend()'s BufferError
        return _NOT_DIRECT
    n = _read_fd(fd, sock, PyByteArray_AS_STRING(buf) + old, size)
    # Shrinking a bytearray cannot fail.
    _lx_bytearray_resize(buf, old + (n if n > 0 else 0))
    if n > 0:
        _stream_reader_fed(reader, old + n)
    return n


cdef _stream_reader_fed(reader, Py_ssize_t size):
    """The rest of feed_data once the buffer has grown to `size` bytes."""
    waiter = reader._waiter
    if waiter is not None:
        reader._waiter = None
        if not waiter.cancelled():
            waiter.set_result(None)
    transport = reader._transport
    if transport is not None and not reader._paused and size > 2 * reader._limit:
        try:
            transport.pause_reading()
        except NotImplementedError:
            reader._transport = None
        else:
            reader._paused = True


# -- subprocess pipes (see the top of this file) --

from asyncio import base_subprocess as _base_subprocess
from asyncio import subprocess as _aio_subprocess

cdef object _RSPP = _base_subprocess.ReadSubprocessPipeProto
cdef object _SSP = _aio_subprocess.SubprocessStreamProtocol
cdef object _RSPP_DATA_RECEIVED = _RSPP.__dict__.get("data_received")
cdef object _BST_PIPE_DATA_RECEIVED = _base_subprocess.BaseSubprocessTransport.__dict__.get("_pipe_data_received")
cdef object _SSP_PIPE_DATA_RECEIVED = _SSP.__dict__.get("pipe_data_received")


def _probe_subprocess_feed():
    # The fields this path reads, as these classes' constructors set them.
    return ({"proc", "fd"} <= set(_base_subprocess.WriteSubprocessPipeProto.__init__.__code__.co_names)
            and "_pending_calls" in _base_subprocess.BaseSubprocessTransport.__init__.__code__.co_names
            and {"stdout", "stderr"} <= set(_SSP.__init__.__code__.co_names))


cdef bint _subprocess_feed_supported = (_stream_feed_supported
                                        and _RSPP_DATA_RECEIVED is not None
                                        and _BST_PIPE_DATA_RECEIVED is not None
                                        and _SSP_PIPE_DATA_RECEIVED is not None
                                        and _probe_subprocess_feed())


cdef inline bint _feeds_subprocess_reader(protocol):
    """True if a read pipe's data for `protocol` may go through
    _subprocess_reader (checked when the transport gets its protocol)."""
    return (_subprocess_feed_supported
            and type(protocol) is _RSPP
            and _RSPP.data_received is _RSPP_DATA_RECEIVED
            and _SSP.pipe_data_received is _SSP_PIPE_DATA_RECEIVED
            and _stream_reader_unpatched())


cdef object _subprocess_reader(pipe_protocol):
    """The StreamReader that pipe_protocol.data_received() would (an
    iteration later) feed, if feeding it now from C is the same; else None."""
    proc = pipe_protocol.proc
    if proc is None or proc._pending_calls is not None:
        return None
    if type(proc)._pipe_data_received is not _BST_PIPE_DATA_RECEIVED:
        return None
    protocol = proc._protocol
    if type(protocol) is not _SSP:
        return None
    fd = pipe_protocol.fd
    if fd == 1:
        return _feedable(protocol.stdout)
    if fd == 2:
        return _feedable(protocol.stderr)
    return None
