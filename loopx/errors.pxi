# The default exception handler's report.  Included into _loop.pyx.
#
# The text follows asyncio's documented format (the message, then one
# "key: value" line per other context key, tracebacks written out) so that
# logs and tools that grep them read loopx's errors like asyncio's.


cdef _log_exception_context(Loop loop, dict context):
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
    logger.error("\n".join(lines), exc_info=exc_info)
