# The default exception handler's report.  Included into _loop.pyx.
#
# The text follows asyncio's documented format (the message, then one
# "key: value" line per other context key, tracebacks written out) so that
# logs and tools that grep them read loopx's errors like asyncio's.
#
# Nothing is reported once the interpreter is finalizing.  A loop that was
# never closed can be collected in the last garbage collection, after
# _asyncio has freed its module globals; a pending task's finalizer then
# reports "Task was destroyed but it is pending!", and repr() of that task
# dereferences the freed repr function on 3.11: a crash at exit.  asyncio's
# own handler reports nothing at that point either (its module globals are
# gone, so it fails before it logs).

cdef object _is_finalizing = sys.is_finalizing


cdef _log_exception_context(Loop loop, dict context):
    if _is_finalizing():
        return
    message = context.get("message") or "Unhandled exception in event loop"
    exception = context.get("exception")
    if exception is not None:
        exc_info = (type(exception), exception, exception.__traceback__)
    else:
        exc_info = False

    current = loop._current_handle
    if ("source_traceback" not in context and current is not None
            and (<Handle>current)._traceback):
        context["handle_traceback"] = (<Handle>current)._traceback

    lines = [message]
    for key in sorted(context):
        if key in ("message", "exception"):
            continue
        value = context[key]
        if key == "source_traceback":
            value = ("Object created at (most recent call last):\n"
                     + "".join(traceback.format_list(value)).rstrip())
        elif key == "handle_traceback":
            value = ("Handle created at (most recent call last):\n"
                     + "".join(traceback.format_list(value)).rstrip())
        else:
            value = repr(value)
        lines.append(f"{key}: {value}")
    _report_logger().error("\n".join(lines), exc_info=exc_info)
