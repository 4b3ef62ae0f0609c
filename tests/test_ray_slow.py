"""Slower Ray checks (`-m slow`): `onepass serve --ray` end to end as a user runs it, and the
autoscaler adding and removing a replica on the engines' stream load."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import httpx
import pytest
from websockets.asyncio.client import connect

pytest.importorskip("ray.serve")

from onepass.ray.config import ReplicaConfig, ScaleConfig  # noqa: E402
from onepass.ray.deployment import deploy, ray_session  # noqa: E402
from onepass.server import ServerConfig  # noqa: E402
from tests.test_ray import MODEL, _collect, _free_port, asr, speech  # noqa: E402,F401
from tests.test_server_deepgram import finals_text, pcm16  # noqa: E402

pytestmark = pytest.mark.slow


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_serve_ray_command_drains_on_ctrl_c(asr, speech, tmp_path):
    """`onepass serve --ray --max-streams auto`: health through Serve, then SIGINT with a stream
    open: the stream gets the transcript of all it sent and 1001, and the command exits 0."""
    port = _free_port()
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "onepass", "serve", "--ray", "--replicas", "1", "--port", str(port),
                             "--backend", "torch", "--max-streams", "auto", "--endpoint-ms", "0"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: proc.poll() is not None or "through Ray Serve" in (tmp_path / "serve.log").read_text(),
                  180, "the server")
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["capacity"] >= 1  # measured on the replica

        async def stream_then_interrupt():
            msgs = []
            async with connect(f"ws://127.0.0.1:{port}/v1/listen?language=multi&chunk_ms=160") as ws:
                reader = asyncio.create_task(_collect(ws, msgs))
                await ws.send(pcm16(speech))
                await asyncio.sleep(1.0)
                proc.send_signal(signal.SIGINT)
                await asyncio.wait_for(reader, 60)
                return msgs, ws.close_code

        msgs, code = asyncio.run(stream_then_interrupt())
        assert code == 1001
        expected = asr.transcribe(speech, 16000, language="auto", chunk_ms=160)
        assert msgs[-1]["type"] == "Metadata" and round(msgs[-1]["duration"] * 16000) == len(speech)
        assert finals_text(msgs) == expected.text
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    out = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in out, out


def _replicas(serve, name: str) -> int:
    app = serve.status().applications.get(name)
    if app is None:
        return 0
    states = app.deployments["OnePass"].replica_states
    return states.get("RUNNING", 0)


def test_autoscaling_on_stream_load():
    """One replica, two stream places, target load 0.5: two open streams ask for a second
    replica; when they close, the extra replica is removed after the downscale delay."""
    from ray import serve

    port = _free_port()
    replica = ReplicaConfig(MODEL, ServerConfig(max_streams=2, idle_timeout_s=300))
    scale = ScaleConfig(num_replicas=None, min_replicas=1, max_replicas=2, num_cpus=0.5, target_load=0.5,
                        upscale_delay_s=0, downscale_delay_s=5, look_back_s=12, name="autoscaled")
    with ray_session(None, num_cpus=2):
        deploy(replica, scale, port=port)
        assert _replicas(serve, "autoscaled") == 1

        async def hold_two_streams():
            async with connect(f"ws://127.0.0.1:{port}/v1/listen") as a, \
                    connect(f"ws://127.0.0.1:{port}/v1/listen") as b:
                await asyncio.to_thread(_wait_for, lambda: _replicas(serve, "autoscaled") == 2, 90,
                                        "a second replica")
                for ws in (a, b):
                    await ws.send(json.dumps({"type": "CloseStream"}))

        asyncio.run(hold_two_streams())
        _wait_for(lambda: _replicas(serve, "autoscaled") == 1, 90, "the downscale")
