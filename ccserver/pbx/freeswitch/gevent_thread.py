"""One dedicated thread running a gevent hub, bridged to asyncio (gevent never leaves this folder).

greenswitch is written for gevent. ccserver runs on asyncio and must never be monkey-patched, so
the gevent hub lives in its own OS thread: gevent sockets are cooperative inside that thread and
asyncio never sees them. Work crosses in with the hub loop's ``run_callback_threadsafe`` (each call
runs in a fresh greenlet) and results cross back with ``call_soon_threadsafe`` on the asyncio
loop, so no object is ever touched from both threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import gevent
import gevent.event

T = TypeVar("T")


def _settle(fut: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if fut.done():  # the asyncio side stopped waiting (timeout, cancel)
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class GeventThread:
    """A gevent hub in one thread; :meth:`call` runs a function there and awaits its result."""

    def __init__(self, name: str):
        self._name = name
        self._thread: threading.Thread | None = None
        self._hub_loop: Any = None
        self._stop: gevent.event.Event | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        self._hub_loop = gevent.get_hub().loop
        self._stop = gevent.event.Event()
        # A started async watcher holds a reference on the loop: without it, a hub with no
        # sockets open yet would exit ("would block forever") instead of waiting for work.
        keepalive = self._hub_loop.async_()
        keepalive.start(lambda: None)
        self._ready.set()
        try:
            self._stop.wait()
        finally:
            keepalive.stop()
            keepalive.close()

    def post(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in a new greenlet in the hub thread; fire and forget."""
        self._hub_loop.run_callback_threadsafe(gevent.spawn, fn)

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(*args)`` in a greenlet of the hub thread; the future settles on this loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def run() -> None:
            try:
                result = fn(*args)
            except BaseException as e:  # handed to the awaiting coroutine, not swallowed
                loop.call_soon_threadsafe(_settle, fut, None, e)
            else:
                loop.call_soon_threadsafe(_settle, fut, result, None)

        self.post(run)
        return fut

    def stop(self) -> None:
        if self._thread is None:
            return
        stop = self._stop
        self._hub_loop.run_callback_threadsafe(stop.set)
        self._thread.join(timeout=5)
        self._thread = None
