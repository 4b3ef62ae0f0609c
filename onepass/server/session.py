"""One live WebSocket stream: a reader (client -> engine) and a writer (engine -> client).

Protocol modules subclass Session and fill in the ``on_*`` hooks and ``translate``. Whatever the
client does (vanish, stall, send garbage), ``run`` returns and the engine stream is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from ..engine import StreamEvent
from ..errors import OnePassError
from .recording import Recorder

log = logging.getLogger("onepass.server")
FLUSH_TIMEOUT_S = 120.0  # after the client's close request, wait this long for the last results
# 1001 "going away": the server is shutting down (after the stream's last results)
CLOSE_CODES = {"close": 1000, "shutdown": 1001, "timeout": 1011, "oversize": 1009, "error": 1011, "closed": 1000}
CLOSE_REASONS = {1001: "server going away after the last results; reconnect to continue"}


class ClientGone(Exception):
    """Sending failed: the client has gone (or the connection is already closed)."""


class Session:
    def __init__(self, ws: WebSocket, sid: int, events: asyncio.Queue):
        self.ws, self.sid, self.events = ws, sid, events
        state = ws.app.state.onepass
        self.runner, self.config = state.runner, state.config
        self._send_lock = asyncio.Lock()
        self._shutdown = asyncio.Event()
        self.done = asyncio.Event()  # run() has returned
        self._live = state.sessions
        self.recorder = Recorder(self.config.record_dir, f"stream-{uuid.uuid4().hex[:16]}")

    # ---- hooks -------------------------------------------------------------------------
    async def on_start(self) -> None: ...  # before the first client message (a greeting)
    async def on_bytes(self, data: bytes) -> None: ...
    async def on_text(self, text: str) -> str | None: ...  # "close" ends reading
    async def on_timeout(self) -> None: ...
    async def on_oversize(self, size: int) -> None: ...
    async def on_error(self, message: str) -> None: ...
    async def on_closed(self, ev: StreamEvent) -> None: ...
    async def on_marker(self, marker: object) -> None: ...
    def translate(self, ev: StreamEvent) -> list[BaseModel]: return []

    # ---- plumbing ----------------------------------------------------------------------
    async def send(self, msg: BaseModel) -> None:
        async with self._send_lock:
            try:
                await self.ws.send_text(msg.model_dump_json())
            except (WebSocketDisconnect, OSError, RuntimeError) as exc:  # starlette: RuntimeError once closed
                raise ClientGone from exc

    def shutdown(self) -> None:
        """Server going down: stop reading, decode what was received, send it, close 1001."""
        self._shutdown.set()

    async def run(self) -> None:
        self._live.add(self)
        reader = asyncio.create_task(self._read())
        writer = asyncio.create_task(self._write())
        stopper = asyncio.create_task(self._shutdown.wait())
        code = None
        try:
            done, _ = await asyncio.wait({reader, writer, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if writer in done:
                outcome = writer.result()
            elif reader in done:
                outcome = reader.result()
            else:
                outcome = "shutdown"
            if outcome in ("close", "shutdown"):
                reader.cancel()
                await self.runner.finish(self.sid)
                closed = await asyncio.wait_for(writer, FLUSH_TIMEOUT_S)
                outcome = outcome if closed == "closed" else closed
            code = CLOSE_CODES.get(outcome)
        except Exception:  # noqa: BLE001 - a broken connection ends this stream only
            code = None
        finally:  # bookkeeping first: if this task is being cancelled, the awaits below may not run
            for t in (reader, writer, stopper):
                t.cancel()
            self.runner.close_soon(self.sid)
            self.recorder.close()
            self._live.discard(self)
            try:
                await asyncio.gather(reader, writer, stopper, return_exceptions=True)
                if code is not None:
                    with contextlib.suppress(Exception):
                        await self.ws.close(code, CLOSE_REASONS.get(code, ""))
            finally:
                self.done.set()

    async def _read(self) -> str:
        try:
            await self.on_start()
            return await self._read_messages()
        except ClientGone:  # replying failed: nobody is listening any more
            return "gone"

    async def _read_messages(self) -> str:
        limit = self.config.max_message_bytes
        while True:
            try:
                msg = await asyncio.wait_for(self.ws.receive(), self.config.idle_timeout_s)
            except asyncio.TimeoutError:
                await self.on_timeout()
                return "timeout"
            if msg["type"] == "websocket.disconnect":
                return "gone"
            data, text = msg.get("bytes"), msg.get("text")
            size = len(data) if data is not None else len(text or "")
            if size > limit:
                await self.on_oversize(size)
                return "oversize"
            try:
                if data is not None:
                    await self.on_bytes(data)
                elif text is not None and await self.on_text(text) == "close":
                    return "close"
            except OnePassError as exc:
                await self.on_error(str(exc))
            except ClientGone:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug must not end the stream silently
                log.exception("error handling a client message")
                await self.on_error(f"could not handle the message ({type(exc).__name__}); it was ignored")

    async def _write(self) -> str:
        try:
            return await self._write_events()
        except ClientGone:
            return "gone"

    async def _write_events(self) -> str:
        while True:
            ev = await self.events.get()
            if isinstance(ev, Exception):
                await self.on_error(f"internal engine error: {ev}")
                return "error"
            if not isinstance(ev, StreamEvent):
                await self.on_marker(ev)
                continue
            for msg in self.translate(ev):
                await self.send(msg)
            if ev.kind == "closed":
                await self.on_closed(ev)
                return "closed"
