"""Scale-out on a local Ray (2 CPUs), demo model: two Serve replicas serve the same app as
`onepass serve` (exact streams in both protocols, refusals past capacity, REST, health and
metrics through Serve's proxy, drain when a replica stops), and the Ray Data manifest job
equals the in-process one. One Ray for the module; it is stopped at the end."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import websockets
from websockets.asyncio.client import connect

pytest.importorskip("ray.serve")
pytest.importorskip("ray.data")

from onepass.audio import load_for_model  # noqa: E402
from onepass.cli.main import main  # noqa: E402
from onepass.manifest import run_job, run_local  # noqa: E402
from onepass.ray.config import ModelSpec, ReplicaConfig, ScaleConfig  # noqa: E402
from onepass.ray.deployment import deploy, ray_session  # noqa: E402
from onepass.server import ServerConfig  # noqa: E402
from tests.test_server_deepgram import as_int16_float, finals_text, pcm16  # noqa: E402
from tests.test_server_realtime import b64pcm  # noqa: E402

MODEL = ModelSpec(model="demo", backend="torch")  # torch: no ONNX export per replica
STREAMS_PER_REPLICA = 2
SAMPLES = ("en-US", "de-DE", "es-ES")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def asr():
    return MODEL.load()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    import onepass

    root = onepass.__path__[0] + "/assets/samples/"
    parts = []
    for name in SAMPLES:
        parts += [load_for_model(root + name + ".wav")[0], np.zeros(8000, np.float32)]
    return as_int16_float(np.concatenate(parts))


@pytest.fixture(scope="module")
def cluster():
    """Local Ray, two replicas of STREAMS_PER_REPLICA streams each; yields the base URL."""
    port = _free_port()
    replica = ReplicaConfig(MODEL, ServerConfig(max_streams=STREAMS_PER_REPLICA, endpoint_blank_ms=None,
                                                drain_timeout_s=20, retry_after_s=3))
    with ray_session(None, num_cpus=2):
        deploy(replica, ScaleConfig(num_replicas=2, num_cpus=0.5, name="onepass-test"), port=port)
        yield f"http://127.0.0.1:{port}"


async def deepgram_stream(ws_url: str, audio: np.ndarray):
    msgs = []
    async with connect(f"{ws_url}/v1/listen?language=multi&chunk_ms=160&interim_results=true") as ws:
        reader = asyncio.create_task(_collect(ws, msgs))
        data = pcm16(audio)
        for pos in range(0, len(data), 6400):
            await ws.send(data[pos:pos + 6400])
        await ws.send(json.dumps({"type": "CloseStream"}))
        await asyncio.wait_for(reader, 60)
        return msgs, ws.close_code


async def _collect(ws, msgs):
    async for m in ws:
        msgs.append(json.loads(m))


async def realtime_stream(ws_url: str, audio: np.ndarray) -> str:
    session = {"input_audio_format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None,
               "input_audio_transcription": {"model": "demo", "language": "auto"}, "chunk_ms": 160}
    async with connect(f"{ws_url}/v1/realtime?intent=transcription") as ws:
        assert json.loads(await ws.recv())["type"] == "transcription_session.created"
        await ws.send(json.dumps({"type": "transcription_session.update", "session": session}))
        assert json.loads(await ws.recv())["type"] == "transcription_session.updated"
        for piece in b64pcm(audio):
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": piece}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if m["type"] == "conversation.item.input_audio_transcription.completed":
                return m["transcript"]


def test_two_replicas_stream_both_protocols_exactly(cluster, asr, speech):
    expected = asr.transcribe(speech, 16000, language="auto", chunk_ms=160)
    assert len(expected.text.split()) >= 4  # the demo model says something, so equality means something

    async def both():
        ws_url = cluster.replace("http", "ws")
        return await asyncio.gather(deepgram_stream(ws_url, speech), realtime_stream(ws_url, speech))

    (msgs, code), realtime_text = asyncio.run(both())
    assert code == 1000
    assert finals_text(msgs) == expected.text
    assert msgs[-1]["type"] == "Metadata" and msgs[-1]["onepass"]["transcript"] == expected.text
    assert realtime_text == expected.text


async def _try_open(url: str):
    """('open', socket) or ('refused', status, Retry-After), within 10 s (a queued handshake fails)."""
    try:
        ws = await asyncio.wait_for(connect(f"{url}/v1/listen"), 10)
        return ("open", ws)
    except websockets.InvalidStatus as exc:
        return ("refused", exc.response.status_code, exc.response.headers.get("Retry-After"))


def test_past_capacity_new_sockets_get_503_with_retry_after(cluster):
    ws_url = cluster.replace("http", "ws")

    async def fill():
        opened, refused = [], []
        try:
            for _ in range(2 * STREAMS_PER_REPLICA + 2):
                outcome = await _try_open(ws_url)
                (opened if outcome[0] == "open" else refused).append(outcome)
            health = httpx.get(f"{cluster}/health", timeout=10)  # not queued behind full replicas
            # once the streams are closed their places are free again
            for o in opened:
                await o[1].close()
            await asyncio.sleep(0.5)
            again = await _try_open(ws_url)
            if again[0] == "open":
                await again[1].close()
            return opened, refused, health, again
        finally:
            for o in opened:
                await o[1].close()

    opened, refused, health, again = asyncio.run(fill())
    assert STREAMS_PER_REPLICA <= len(opened) <= 2 * STREAMS_PER_REPLICA
    assert len(refused) >= 2
    assert all(r[1:] == ("refused", 503, "3")[1:] for r in refused), refused
    assert health.status_code == 200 and health.json()["capacity"] == STREAMS_PER_REPLICA
    assert again[0] == "open"


def test_rest_health_and_metrics_through_serve(cluster, asr, speech, tmp_path):
    import soundfile

    path = tmp_path / "speech.wav"
    soundfile.write(path, speech, 16000, subtype="PCM_16")
    expected = asr.transcribe(str(path), language="auto")
    with httpx.Client(base_url=cluster, timeout=60) as client:
        with open(path, "rb") as f:
            r = client.post("/v1/audio/transcriptions", files={"file": ("speech.wav", f, "audio/wav")},
                            data={"model": "demo", "language": "auto"})
        assert r.status_code == 200, r.text
        assert r.json()["text"] == expected.text
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["active_streams"] == 0
        assert client.get("/ready").status_code == 200
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "onepass_active_streams" in metrics.text
        assert client.get("/").status_code == 200


def test_a_stopping_replica_drains_its_streams(cluster, asr, speech):
    """The app is deleted while a stream is open: the client still gets the results of all the
    audio the replica received, its closing Metadata, and close code 1001."""
    from ray import serve

    async def stream_then_stop():
        msgs = []
        async with connect(f"{cluster.replace('http', 'ws')}/v1/listen?language=multi&chunk_ms=160") as ws:
            reader = asyncio.create_task(_collect(ws, msgs))
            data = pcm16(speech)
            for pos in range(0, len(data), 6400):
                await ws.send(data[pos:pos + 6400])
            await asyncio.sleep(1.0)  # let the replica read it (what is still in flight at the stop is lost)
            stopper = threading.Thread(target=serve.delete, args=("onepass-test",))
            stopper.start()  # no CloseStream: the replica's drain ends the stream
            await asyncio.wait_for(reader, 60)
            await asyncio.to_thread(stopper.join, 60)
            return msgs, ws.close_code

    t0 = time.monotonic()
    msgs, code = asyncio.run(stream_then_stop())
    assert time.monotonic() - t0 < 20  # drained, not cut after the grace period
    assert code == 1001
    assert msgs[-1]["type"] == "Metadata"
    received = round(msgs[-1]["duration"] * 16000)
    assert received > len(speech) // 2
    expected = asr.transcribe(speech[:received], 16000, language="auto", chunk_ms=160)
    assert expected.text
    assert finals_text(msgs) == expected.text == msgs[-1]["onepass"]["transcript"]


def test_ray_data_job_equals_in_process_job(cluster, asr, tmp_path, capsys):
    import onepass

    root = onepass.__path__[0] + "/assets/samples/"
    for name in SAMPLES:
        shutil.copy(root + name + ".wav", tmp_path / f"{name}.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt not really a wav file")
    lines = [{"audio_filepath": "en-US.wav", "text": "reference"}, {"audio_filepath": "corrupt.wav"},
             {"audio_filepath": "de-DE.wav", "lang": "de-DE"}, {"audio_filepath": "es-ES.wav"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(d) + "\n" for d in lines))

    local = run_job(manifest, tmp_path / "local.jsonl", run_local(asr), progress=False)
    assert (local.done, local.failed) == (3, 1)
    # the command line, on the module's Ray (already running, so the command joins it)
    assert main(["transcribe", "--manifest", str(manifest), "--output", str(tmp_path / "ray.jsonl"), "--ray",
                 "--workers", "2", "--num-cpus", "0.25", "--model", MODEL.model, "--backend", MODEL.backend]) == 1
    assert "3 transcribed, 0 already there, 1 failed (of 4)" in capsys.readouterr().err
    a = [json.loads(x) for x in (tmp_path / "local.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert [d["audio_filepath"] for d in b] == [d["audio_filepath"] for d in lines]  # manifest order
    assert "error" in b[1] and b[1]["error"] == a[1]["error"]
    assert b[0]["manifest_text"] == "reference" and b[2]["language"] == "de-DE"
    for x, y in zip(a, b):
        # confidences are float sums whose order depends on the worker's thread count
        wx, wy = x.pop("words", []), y.pop("words", [])
        assert x == y
        assert [(w["word"], w["start"], w["end"]) for w in wx] == [(w["word"], w["start"], w["end"]) for w in wy]
        assert np.allclose([w["confidence"] for w in wx], [w["confidence"] for w in wy], atol=1e-4)


def test_more_replicas_than_a_local_ray_holds_fail_at_once(cluster):
    from onepass.errors import OnePassError
    from onepass.ray.deployment import check_resources

    check_resources(2, num_cpus=1, num_gpus=0, fixed=True)  # 2 CPUs: fits
    with pytest.raises(OnePassError, match=r"3 replica\(s\) need 3 CPUs \(this Ray has 2\)"):
        check_resources(3, num_cpus=1, num_gpus=0, fixed=True)
    with pytest.raises(OnePassError, match=r"1 worker\(s\) need 1 GPUs \(this Ray has 0\)"):
        check_resources(1, num_cpus=1, num_gpus=1, fixed=True, noun="worker")
    check_resources(3, num_cpus=1, num_gpus=0, fixed=False)  # a cluster may grow: a warning
