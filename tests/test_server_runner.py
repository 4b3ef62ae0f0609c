"""The engine runner and the REST stream release every stream, whenever the client goes away:
also in the instants the fuzz test hits only by chance (an open already running on the engine
thread when its caller is cancelled; a streamed response whose client is gone before the first
byte)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from onepass.engine import Engine, EngineConfig
from onepass.server.metrics import Metrics
from onepass.server.rest import _Stream
from onepass.server.runner import EngineRunner


@pytest.fixture
def runner(asr):
    r = EngineRunner(Engine(asr, EngineConfig(max_batch=4, max_streams=4)), Metrics(), capacity=4)
    r.start()
    yield r
    r.stop()


def _hold_open(engine: Engine) -> tuple[threading.Event, threading.Event]:
    """Make the engine's next open wait on the engine thread until released."""
    entered, release = threading.Event(), threading.Event()
    real_open = engine.open

    def slow_open(*args, **kwargs):
        entered.set()
        release.wait(10)
        return real_open(*args, **kwargs)

    engine.open = slow_open
    return entered, release


async def _wait_for(condition, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline
        await asyncio.sleep(0.01)


def test_open_cancelled_while_it_runs_closes_the_stream(runner):
    entered, release = _hold_open(runner.engine)

    async def scenario():
        task = asyncio.create_task(runner.open(None, 160, 16000))
        await asyncio.to_thread(entered.wait, 5)  # the engine thread is inside engine.open
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        await _wait_for(lambda: not runner.engine.streams and not runner._queues)
        sid, _ = await runner.open(None, 160, 16000)  # the runner still works
        await runner.close(sid)

    asyncio.run(scenario())
    assert not runner.engine.streams


def test_open_cancelled_before_it_runs_opens_nothing(runner):
    async def scenario():
        busy = threading.Event()
        blocker = runner.call(lambda e: busy.wait(10))  # the engine thread is busy
        task = asyncio.create_task(runner.open(None, 160, 16000))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        busy.set()
        await blocker
        await runner.call(lambda e: None)  # every queued command has run

    asyncio.run(scenario())
    assert not runner.engine.streams and not runner._queues


def test_streamed_response_releases_when_the_client_is_gone_before_the_first_byte():
    released = []
    started = []

    async def body():
        started.append(True)
        yield "data: never\n\n"

    async def gone(message):
        raise OSError("connection reset")

    async def receive():
        return {"type": "http.disconnect"}

    response = _Stream(body(), lambda: released.append(True), media_type="text/event-stream")
    scope = {"type": "http", "asgi": {"spec_version": "2.4"}}
    with pytest.raises(Exception):
        asyncio.run(response(scope, receive, gone))
    assert released == [True] and not started
