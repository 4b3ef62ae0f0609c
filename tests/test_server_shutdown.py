"""Graceful shutdown of a real ``onepass serve`` process: SIGTERM finishes the open streams
(every sample received is decoded and its results sent, then close 1001) before it exits."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
from websockets.asyncio.client import connect

from tests.test_server_deepgram import as_int16_float, finals_text, pcm16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _audio_seconds(http: str) -> float:
    for line in httpx.get(f"{http}/metrics").text.splitlines():
        if line.startswith("onepass_audio_seconds_total"):
            return float(line.split()[1])
    return 0.0


def test_sigterm_finishes_open_streams(hf_dir, asr, clips):
    dg_audio = np.concatenate([clips["normal"], clips["odd_length"]])
    rt_audio = clips["long"]
    dg_want = asr.transcribe(as_int16_float(dg_audio), 16000, chunk_ms=160).text
    rt_want = asr.transcribe(as_int16_float(rt_audio), 16000, chunk_ms=160).text
    assert dg_want and rt_want  # the tiny model emits text, so the comparison means something
    port = _free_port()
    http, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "onepass", "serve", "--model", hf_dir, "--port", str(port),
                             "--chunk-ms", "160", "--endpoint-ms", "0", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "server did not become ready"
            try:
                if httpx.get(f"{http}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)

        async def run():
            dg = await connect(f"{ws_url}/v1/listen?interim_results=true")
            rt = await connect(f"{ws_url}/v1/realtime?intent=transcription")
            await rt.recv()  # session created
            await rt.send(json.dumps({"type": "transcription_session.update", "session": {
                "input_audio_format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None}}))
            await rt.recv()  # session updated
            data = pcm16(dg_audio)
            for pos in range(0, len(data), 3200):
                await dg.send(data[pos:pos + 3200])
            data = pcm16(rt_audio)
            for pos in range(0, len(data), 9600):
                await rt.send(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": base64.b64encode(data[pos:pos + 9600]).decode()}))
            total = (len(dg_audio) + len(rt_audio)) / 16000
            while abs(await asyncio.to_thread(_audio_seconds, http) - total) > 1e-6:  # all audio read
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)  # neither client said it was done

            async def drain(ws):
                msgs = [json.loads(m) async for m in ws]
                return msgs, (ws.close_code, ws.close_reason)
            return await asyncio.gather(drain(dg), drain(rt))

        (dg_msgs, dg_code), (rt_msgs, rt_code) = asyncio.run(asyncio.wait_for(run(), 120))
        assert proc.wait(60) == -signal.SIGTERM  # uvicorn re-raises the signal after its graceful exit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # "going away", after the last results, with a reason that tells the client to reconnect
    assert dg_code[0] == 1001 and rt_code[0] == 1001 and "reconnect" in dg_code[1] and "reconnect" in rt_code[1]
    assert finals_text(dg_msgs) == dg_want
    assert dg_msgs[-1]["type"] == "Metadata" and dg_msgs[-1]["onepass"]["transcript"] == dg_want
    assert abs(dg_msgs[-1]["duration"] - len(dg_audio) / 16000) < 1e-6
    completed = [m for m in rt_msgs if m["type"].endswith("transcription.completed")]
    assert [c["transcript"] for c in completed] == [rt_want]
