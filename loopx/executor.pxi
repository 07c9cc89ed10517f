# The loop's coroutine methods that wait on threads: executor shutdown, name
# resolution, async generator shutdown.  Included into _loop.pyx.


async def _run_in_default_executor(Loop loop, func, *args):
    return await loop.run_in_executor(None, func, *args)


async def _getaddrinfo(Loop loop, host, port, family, type, proto, flags):
    if loop._debug:
        t0 = _now()
        result = await loop.run_in_executor(
            None, socket.getaddrinfo, host, port, family, type, proto, flags)
        logger.debug("getaddrinfo(%r, %r, family=%r, type=%r, proto=%r, flags=%r) "
                     "took %.3f ms: %r", host, port, family, type, proto, flags,
                     (_now() - t0) * 1e3, result)
        return result
    return await loop.run_in_executor(
        None, socket.getaddrinfo, host, port, family, type, proto, flags)


async def _shutdown_default_executor(Loop loop, timeout):
    loop._executor_shutdown_called = True
    if loop._default_executor is None:
        return
    future = loop.create_future()
    # Joining the pool's threads blocks, so it happens in a thread of its own
    # that reports back through call_soon_threadsafe.
    thread = threading.Thread(target=loop._do_shutdown, args=(future,))
    thread.start()
    try:
        if timeout is None:
            await future
        else:
            async with asyncio.timeout(timeout):
                await future
    except TimeoutError:
        warnings.warn("The executor did not finishing joining "
                      f"its threads within {timeout} seconds.",
                      RuntimeWarning, stacklevel=2)
        loop._default_executor.shutdown(wait=False)
    else:
        thread.join()


async def _shutdown_asyncgens(Loop loop):
    loop._asyncgens_shutdown_called = True
    if not len(loop._asyncgens):
        return
    closing = list(loop._asyncgens)
    loop._asyncgens.clear()
    results = await tasks.gather(*[agen.aclose() for agen in closing],
                                 return_exceptions=True)
    for result, agen in zip(results, closing):
        if isinstance(result, Exception):
            loop.call_exception_handler({
                "message": f"an error occurred during closing of "
                           f"asynchronous generator {agen!r}",
                "exception": result,
                "asyncgen": agen,
            })
