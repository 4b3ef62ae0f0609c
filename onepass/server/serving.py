"""Running the app on uvicorn with a graceful shutdown.

On SIGTERM/SIGINT uvicorn would close every WebSocket at once (code 1012), losing the audio
still being decoded. ``Server`` first drains: new streams are refused (503), every open stream
is finished (all audio received is decoded, its last results and closing message are sent and
it is closed with 1001), then uvicorn shuts down as usual. A second Ctrl-C skips the wait.
"""

from __future__ import annotations

import asyncio
import logging
import time

import uvicorn

log = logging.getLogger("onepass.server")


async def drain(state, timeout_s: float, should_stop=lambda: False) -> int:
    """Finish every open stream of the app; returns how many were still open after ``timeout_s``."""
    state.runner.draining = True
    sessions = list(state.sessions)
    if sessions:
        log.info("finishing %d open stream(s) before shutting down", len(sessions))
    for s in sessions:
        s.shutdown()
    deadline = time.monotonic() + timeout_s
    while any(not s.done.is_set() for s in sessions) and time.monotonic() < deadline and not should_stop():
        await asyncio.sleep(0.05)
    return sum(not s.done.is_set() for s in sessions)


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_timeout_s: float = 30.0):
        super().__init__(config)
        self.drain_timeout_s = drain_timeout_s

    async def shutdown(self, sockets=None) -> None:
        state = getattr(getattr(self.config.app, "state", None), "onepass", None)
        if state is not None:
            left = await drain(state, self.drain_timeout_s, lambda: self.force_exit)
            if left:
                log.warning("%d stream(s) did not finish within %g s", left, self.drain_timeout_s)
        await super().shutdown(sockets)


def make_server(app, host: str = "127.0.0.1", port: int = 8000, *, ws_max_size: int = 16 << 20,
                log_level: str = "info", drain_timeout_s: float | None = None) -> Server:
    """A uvicorn server for ``app`` that drains open streams on shutdown (``drain_timeout_s``:
    default the app's ``ServerConfig.drain_timeout_s``)."""
    if drain_timeout_s is None:
        state = getattr(app.state, "onepass", None)
        drain_timeout_s = state.config.drain_timeout_s if state is not None else 30.0
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, ws_max_size=ws_max_size,
                            lifespan="on", timeout_graceful_shutdown=10)
    return Server(config, drain_timeout_s)
