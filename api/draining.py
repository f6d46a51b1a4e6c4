"""SIGTERM the way an orchestrator means it: stop being ready at once, go on serving while
the load balancer takes this worker out, then stop.

uvicorn stops taking connections on the first SIGTERM. Before that, this worker answers
`/readyz` with 503 for `TEASER_DRAIN_SECONDS`, serving everything else as usual, and only
then hands the signal on to uvicorn, which closes the sockets (1012, "service restart": the
widget reconnects, to another worker) and runs the lifespan's shutdown. A second SIGTERM,
or SIGINT (Ctrl+C), stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger("teaser.draining")

Handler = Callable[[int, FrameType | None], Any]


class Drain:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = False
        self._handed_on: Handler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Put itself in front of the SIGTERM handler the server installed (uvicorn's),
        from inside the server's event loop. Only the main thread can take signals: a server
        run in a thread (tests) keeps its own handling."""
        if threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if not callable(current) or current == self._on_sigterm:
            return
        self._handed_on, self._loop = current, asyncio.get_running_loop()
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def uninstall(self) -> None:
        if self._handed_on is not None and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            signal.signal(signal.SIGTERM, self._handed_on)

    def _on_sigterm(self, sig: int, frame: FrameType | None) -> None:
        assert self._handed_on is not None and self._loop is not None
        if self.started or self.seconds <= 0:
            self.started = True
            self._handed_on(sig, frame)
            return
        self.started = True
        logger.info("SIGTERM: not ready from now on; serving %gs more, then stopping", self.seconds)
        # A signal handler runs between two bytecodes of whatever the loop was doing: only
        # the thread-safe entry may touch the loop from here.
        self._loop.call_soon_threadsafe(
            self._loop.call_later, self.seconds, self._handed_on, sig, frame
        )
