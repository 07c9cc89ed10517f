"""loopx: a drop-in asyncio event loop whose hot paths are native code.

    loopx.run(main())
    asyncio.run(main(), loop_factory=loopx.new_event_loop)   # 3.12+
    loopx.install()                                          # policy style
"""
from ._policy import EventLoopPolicy, Loop, install, new_event_loop, run

__version__ = "0.1.0.dev0"
__all__ = ("Loop", "EventLoopPolicy", "new_event_loop", "install", "run", "__version__")
