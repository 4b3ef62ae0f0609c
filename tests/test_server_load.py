"""Bounded load and fault tests on loopback: concurrent streams stay exact, vanishing and
misbehaving clients cost nothing to the others, capacity is freed, the server stays up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import httpx
import numpy as np
import pytest
import websockets
from websockets.asyncio.client import connect

from onepass.server import ServerConfig, create_app
from onepass.server.testing import serve_in_thread
from tests.test_server_deepgram import as_int16_float, pcm16


async def paced_stream(url, audio, query, piece_s=0.1, speedup=8.0):
    """Stream at ``speedup`` x real time; return the closing Metadata's transcript."""
    data, step = pcm16(audio), int(16000 * piece_s) * 2
    async with connect(f"{url}/v1/listen?{query}") as ws:
        async def reader():
            async for m in ws:
                m = json.loads(m)
                if m["type"] == "Metadata":
                    return m
        task = asyncio.create_task(reader())
        for pos in range(0, len(data), step):
            await ws.send(data[pos:pos + step])
            await asyncio.sleep(piece_s / speedup)
        await ws.send(json.dumps({"type": "CloseStream"}))
        return (await asyncio.wait_for(task, 120))["onepass"]["transcript"]


async def vanish(url, audio):
    """Open, send some audio, drop the TCP connection without a close handshake."""
    ws = await connect(f"{url}/v1/listen")
    await ws.send(pcm16(audio[:16000]))
    ws.transport.abort()


async def slow_reader(url, audio):
    """Sends everything, reads nothing for a while, then closes cleanly."""
    async with connect(f"{url}/v1/listen?interim_results=true") as ws:
        await ws.send(pcm16(audio))
        await asyncio.sleep(1.0)
        await ws.send(json.dumps({"type": "CloseStream"}))
        async for _ in ws:
            pass


def test_concurrent_streams_exact_with_faults(asr, clips):
    names = ["normal", "long", "odd_length", "leading_silence"]
    langs = ["en-US", "auto", "de-DE", "es"]
    expected = [asr.transcribe(as_int16_float(clips[n]), 16000, language=lang, chunk_ms=160).text
                for n, lang in zip(names, langs)]
    assert all(expected)
    app = create_app(asr, ServerConfig(max_streams=8, max_batch=8))
    with serve_in_thread(app) as http:
        url = http.replace("http", "ws")

        async def run():
            good = [paced_stream(url, clips[n], f"language={lang}&chunk_ms=160") for n, lang in zip(names, langs)]
            bad = [vanish(url, clips["long"]), vanish(url, clips["normal"]), slow_reader(url, clips["long"])]
            return await asyncio.gather(*good, *bad)

        got = asyncio.run(run())[:len(names)]
        assert got == expected
        runner = app.state.onepass.runner
        for _ in range(100):  # vanished clients are noticed and their places freed
            if runner.active == 0 and not runner.engine.streams:
                break
            asyncio.run(asyncio.sleep(0.05))
        assert runner.active == 0 and not runner.engine.streams
        assert httpx.get(f"{http}/health").json()["active_streams"] == 0
        # the server still serves after all that
        assert asyncio.run(paced_stream(url, clips["short"], "chunk_ms=160", speedup=100)) == \
            asr.transcribe(as_int16_float(clips["short"]), 16000, chunk_ms=160).text


def test_overload_refused_admitted_finish(asr, clips):
    app = create_app(asr, ServerConfig(max_streams=2))
    with serve_in_thread(app) as http:
        url = http.replace("http", "ws")

        async def run():
            async def refused():
                await asyncio.sleep(0.3)
                try:
                    async with connect(f"{url}/v1/listen"):
                        return False
                except Exception as exc:  # noqa: BLE001
                    return getattr(getattr(exc, "response", None), "status_code", None) == 503
            return await asyncio.gather(paced_stream(url, clips["long"], "chunk_ms=160"),
                                        paced_stream(url, clips["long"], "chunk_ms=160"),
                                        *[refused() for _ in range(3)])

        runner, seen = app.state.onepass.runner, []

        async def watched():
            async def watch():
                while True:  # how many streams the engine holds while clients are refused
                    seen.append(len(runner.engine.streams))
                    await asyncio.sleep(0.02)
            watcher = asyncio.create_task(watch())
            try:
                return await run()
            finally:
                watcher.cancel()

        out = asyncio.run(watched())
        assert max(seen) <= 2  # refused clients never reach the engine: admitted streams keep its compute
        want = asr.transcribe(as_int16_float(clips["long"]), 16000, chunk_ms=160).text
        assert want and out[:2] == [want, want] and out[2:] == [True] * 3
        metrics = httpx.get(f"{http}/metrics").text
        assert "onepass_refused_streams_total 3.0" in metrics


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def garbage(url):
    """Malformed JSON, odd-length audio, an oversize frame: answered, then closed 1009."""
    async with connect(f"{url}/v1/listen?chunk_ms=160") as ws:
        for m in ("{nope", b"\x01\x02\x03", json.dumps({"type": 7})):
            await ws.send(m)
        await ws.send(b"\0" * 70_000)
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            async for _ in ws:
                pass
        return ws.close_code


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc for the resident set size")
def test_memory_flat_over_rounds_of_faults(asr, clips):
    """Rounds of good, vanishing, slow and garbage clients: slots are reused, nothing piles up."""
    app = create_app(asr, ServerConfig(max_streams=8, max_message_bytes=65_536))
    runner = app.state.onepass.runner
    want = asr.transcribe(as_int16_float(clips["short"]), 16000, chunk_ms=160).text
    with serve_in_thread(app) as http:
        url = http.replace("http", "ws")

        async def round_():
            return await asyncio.gather(paced_stream(url, clips["short"], "chunk_ms=160", speedup=100),
                                        paced_stream(url, clips["normal"], "chunk_ms=560", speedup=100),
                                        vanish(url, clips["normal"]), garbage(url), slow_reader(url, clips["short"]))

        rss = []
        for _ in range(6):
            out = asyncio.run(round_())
            assert out[0] == want and out[3] == 1009
            for _ in range(100):
                if runner.active == 0 and not runner.engine.streams:
                    break
                asyncio.run(asyncio.sleep(0.05))
            assert runner.active == 0 and not runner.engine.streams and not app.state.onepass.sessions
            rss.append(_rss_mb())
        pools = {r: p.capacity for r, p in runner.engine.pools.items()}
        assert all(c <= 8 for c in pools.values())  # slots reused, not grown per stream
    # after the first rounds warm the allocator up, memory stays flat (bound: 2 MB per round)
    assert rss[-1] - rss[1] < 8, rss
