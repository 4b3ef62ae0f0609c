"""Admission capacity measured at start (``--max-streams auto``), and refusals at it."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from onepass.server import ServerConfig, create_app
from onepass.server.capacity import calibrate, derive_capacity
from onepass.server.testing import serve_in_thread


def test_derive_capacity():
    budget = 0.08  # 50 % of a 160 ms chunk
    assert derive_capacity([1, 2, 4, 8], [0.01, 0.02, 0.04, 0.07], budget) == (8, True)
    assert derive_capacity([1, 2, 4, 8], [0.01, 0.02, 0.04, 0.12], budget) == (6, False)  # 0.08 at 6 streams
    assert derive_capacity([1], [0.2], budget) == (1, False)  # slower than real time: still one


def test_calibration_on_the_real_engine(asr):
    cal = calibrate(asr, chunk_ms=160, limit=4)
    assert cal.chunk_ms == 160 and cal.batch_sizes[0] == 1
    assert list(cal.batch_sizes) == [1, 2, 4][:len(cal.batch_sizes)]
    assert all(t > 0 for t in cal.step_s) and 1 <= cal.capacity <= 4
    assert cal.limited == (cal.step_s[-1] <= cal.margin * 0.16)
    assert "capacity" in cal.describe()


def test_calibrated_capacity_is_what_is_admitted(asr):
    cal = calibrate(asr, chunk_ms=160, limit=2)
    app = create_app(asr, ServerConfig(max_streams=cal.capacity, chunk_ms=160))
    with serve_in_thread(app) as http:
        url = http.replace("http", "ws")
        assert httpx.get(f"{http}/health").json()["capacity"] == cal.capacity

        async def run():
            held = [await connect(f"{url}/v1/listen") for _ in range(cal.capacity)]
            with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
                await connect(f"{url}/v1/listen")
            assert exc.value.response.status_code == 503 and exc.value.response.headers["Retry-After"]
            for ws in held:
                await ws.close()

        asyncio.run(run())
