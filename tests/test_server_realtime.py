"""OpenAI Realtime transcription (/v1/realtime?intent=transcription) over a real uvicorn."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

import numpy as np
import pytest
import websockets
from websockets.asyncio.client import connect

from onepass.audio import resample
from onepass.server import ServerConfig, create_app
from onepass.server.testing import serve_in_thread


def b64pcm(audio: np.ndarray) -> list[str]:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    return [base64.b64encode(pcm[i:i + 9600]).decode() for i in range(0, len(pcm), 9600)]


def int16_float(audio):
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").astype(np.float32) / 32768


async def rt_session(url, session: dict | None, audio, commit=True, extra=()):
    out = []
    async with connect(f"{url}/v1/realtime?intent=transcription") as ws:
        out.append(json.loads(await ws.recv()))
        if session is not None:
            await ws.send(json.dumps({"type": "transcription_session.update", "session": session}))
            out.append(json.loads(await ws.recv()))
        for piece in b64pcm(audio):
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": piece}))
        for e in extra:
            await ws.send(e)
        if commit:
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        while True:
            try:
                m = json.loads(await asyncio.wait_for(ws.recv(), 3 if not commit else 60))
            except asyncio.TimeoutError:
                break
            out.append(m)
            if commit and m["type"] == "conversation.item.input_audio_transcription.completed":
                break
    return out


@pytest.fixture(scope="module")
def urls(asr):
    # random weights end words anywhere: endpoints without the word hold (tests/test_engine.py has it)
    with serve_in_thread(create_app(asr, ServerConfig(endpoint_blank_ms=None, word_hold_ms=0))) as a, \
            serve_in_thread(create_app(asr, ServerConfig(endpoint_blank_ms=240, word_hold_ms=0))) as b:
        yield a.replace("http", "ws"), b.replace("http", "ws")


def test_manual_commit_is_exact_at_16k(urls, asr, clips):
    audio = np.concatenate([clips["normal"], clips["long"]])
    expected = asr.transcribe(int16_float(audio), 16000, language="fr-FR", chunk_ms=320)
    assert expected.text
    session = {"input_audio_format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None,
               "input_audio_transcription": {"model": "x", "language": "fr-FR"}, "chunk_ms": 320}
    msgs = asyncio.run(rt_session(urls[0], session, audio))
    assert msgs[0]["type"] == "transcription_session.created"
    assert msgs[0]["session"]["input_audio_sample_rate"] == 24000
    assert msgs[1]["type"] == "transcription_session.updated"
    assert msgs[1]["session"]["input_audio_sample_rate"] == 16000 and msgs[1]["session"]["turn_detection"] is None
    done = msgs[-1]
    assert done["transcript"] == expected.text and done["language"] == "fr-FR"
    deltas = [m for m in msgs if m["type"].endswith("transcription.delta")]
    assert "".join(m["delta"] for m in deltas) == expected.text
    assert all(m["item_id"] == done["item_id"] for m in deltas)
    assert [m["type"] for m in msgs].count("input_audio_buffer.committed") == 1
    assert not any(m["type"] == "input_audio_buffer.speech_started" for m in msgs)


def test_server_vad_items_at_24k(urls, clips):
    audio = np.concatenate([clips["normal"], np.zeros(16000, np.float32), clips["long"]])
    msgs = asyncio.run(rt_session(urls[1], None, resample(audio, 16000, 24000), commit=False))
    types = [m["type"] for m in msgs]
    completed = [m for m in msgs if m["type"].endswith("transcription.completed")]
    assert len(completed) >= 2
    assert types.count("input_audio_buffer.speech_started") == types.count("input_audio_buffer.speech_stopped")
    for c in completed:  # each item: started, stopped, committed, completed, with its own deltas
        deltas = [m["delta"] for m in msgs if m.get("item_id") == c["item_id"] and m["type"].endswith(".delta")]
        assert "".join(deltas) == c["transcript"]
    assert len({c["item_id"] for c in completed}) == len(completed)


def test_errors_and_clear(urls, clips):
    bad = ["{nope", json.dumps({"type": "input_audio_buffer.append", "audio": "***"}),
           json.dumps({"type": "what.ever"}), json.dumps({"type": "input_audio_buffer.clear"})]
    msgs = asyncio.run(rt_session(urls[0], None, clips["short"], commit=False, extra=bad))
    codes = [m["error"]["code"] for m in msgs if m["type"] == "error"]
    assert codes == ["invalid_json", "invalid_audio", "unknown_event"]
    assert any(m["type"] == "input_audio_buffer.cleared" for m in msgs)

    async def empty_commit():
        async with connect(f"{urls[0]}/v1/realtime?intent=transcription") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            return json.loads(await ws.recv())

    assert asyncio.run(empty_commit())["error"]["code"] == "input_audio_buffer_commit_empty"


def test_commits_mid_stream_are_exact(urls, asr, clips):
    """Each commit decodes all audio appended so far and completes the item with exactly the
    offline transcript of that audio; the next item starts fresh."""
    pieces = [clips["normal"][:33_333], clips["long"]]
    expected = [asr.transcribe(int16_float(p), 16000, chunk_ms=160).text for p in pieces]
    assert all(expected)

    async def run():
        msgs = []
        async with connect(f"{urls[1]}/v1/realtime?intent=transcription") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "transcription_session.update", "session": {
                "input_audio_format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None,
                "chunk_ms": 160}}))
            await ws.recv()
            for p in pieces:
                for b64 in b64pcm(p):
                    await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": b64}))
                await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            while sum(m["type"].endswith("completed") for m in msgs) < len(pieces):
                msgs.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
        return msgs

    msgs = asyncio.run(run())
    completed = [m for m in msgs if m["type"].endswith("transcription.completed")]
    assert [c["transcript"] for c in completed] == expected
    committed = [m for m in msgs if m["type"] == "input_audio_buffer.committed"]
    assert committed[1]["previous_item_id"] == committed[0]["item_id"] == completed[0]["item_id"]
    for c in completed:
        assert "".join(m["delta"] for m in msgs if m["type"].endswith(".delta") and m["item_id"] == c["item_id"]) \
            == c["transcript"]
    assert not any(m["type"] == "error" for m in msgs)


def test_server_vad_silence_duration_per_session(urls, clips):
    """turn_detection.silence_duration_ms reaches the engine: a server with endpointing off splits items."""
    audio = np.concatenate([clips["normal"], np.zeros(16000, np.float32), clips["long"]])
    session = {"input_audio_format": {"type": "audio/pcm", "rate": 16000},
               "turn_detection": {"type": "server_vad", "silence_duration_ms": 240}}
    msgs = asyncio.run(rt_session(urls[0], session, audio, commit=False))
    assert sum(m["type"].endswith("transcription.completed") for m in msgs) >= 2


def test_official_openai_realtime_client(asr, clips):
    """The openai package's realtime client (GA session shape) on a server with one place: the
    session update re-opens the stream in that place; the completed transcript is exact."""
    openai = pytest.importorskip("openai")
    audio = np.concatenate([clips["normal"], clips["odd_length"]])
    expected = asr.transcribe(int16_float(audio), 16000, language="es", chunk_ms=560).text
    assert expected
    with serve_in_thread(create_app(asr, ServerConfig(max_streams=1, api_keys=("sk-rt",)))) as http:
        client = openai.OpenAI(base_url=f"{http}/v1", api_key="sk-rt", max_retries=0)
        with client.realtime.connect(model="onepass", extra_query={"intent": "transcription"}) as conn:
            assert conn.recv().type == "transcription_session.created"
            conn.session.update(session={"type": "transcription", "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None,
                "transcription": {"model": "onepass", "language": "es"}}}, "chunk_ms": 560})
            assert conn.recv().type == "transcription_session.updated"
            for b64 in b64pcm(audio):
                conn.input_audio_buffer.append(audio=b64)
            conn.input_audio_buffer.commit()
            deltas = []
            for ev in conn:
                assert ev.type != "error", ev
                if ev.type == "conversation.item.input_audio_transcription.delta":
                    deltas.append(ev.delta)
                elif ev.type == "conversation.item.input_audio_transcription.completed":
                    break
    assert ev.transcript == expected == "".join(deltas)


def test_bad_session_formats_are_errors(urls):
    async def run():
        codes = []
        async with connect(f"{urls[0]}/v1/realtime?intent=transcription") as ws:
            await ws.recv()
            for session in ({"input_audio_format": {"type": "audio/pcm", "rate": "fast"}},
                            {"input_audio_format": "g711_ulaw"}, {"input_audio_format": "pcm16_x"},
                            {"input_audio_format": {"type": "audio/pcm", "rate": 0}},
                            {"input_audio_transcription": {"language": "xx-XX"}},
                            {"audio": {"input": {"transcription": {"language": 5}}}}):
                await ws.send(json.dumps({"type": "session.update", "session": session}))
                codes.append(json.loads(await ws.recv())["error"]["code"])
            await ws.send(json.dumps({"type": "session.update", "session": {"turn_detection": None}}))
            codes.append(json.loads(await ws.recv())["type"])  # the session still works
        return codes

    assert asyncio.run(run()) == ["invalid_format"] * 3 + ["invalid_session"] * 3 + ["transcription_session.updated"]


def test_transcription_settings_of_any_type_are_errors(urls, caplog):
    """A GA-shape ``transcription`` that is not an object raised AttributeError inside the server
    (a traceback in its log, an unspecific error); now it is an invalid_session error."""
    async def run():
        codes = []
        async with connect(f"{urls[0]}/v1/realtime?intent=transcription") as ws:
            await ws.recv()
            for t in ("en", 5, [], True):
                await ws.send(json.dumps({"type": "session.update", "event_id": "e1",
                                          "session": {"audio": {"input": {"transcription": t}}}}))
                m = json.loads(await ws.recv())
                codes.append((m["error"]["code"], m["error"]["param"], m["error"]["event_id"]))
        return codes

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(run()) == [("invalid_session", "transcription", "e1")] * 4
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("rate", ["²", "x", "0", "99999999999999999999"])
def test_bad_sample_rate_in_the_query_is_an_error_event(urls, rate):
    """``?sample_rate=²`` passed str.isdigit() and then failed int(): the handler crashed and the
    connection dropped without a close frame; "x" was silently ignored."""
    async def run():
        async with connect(f"{urls[0]}/v1/realtime?intent=transcription&sample_rate={rate}") as ws:
            m = json.loads(await ws.recv())
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await ws.recv()
            return m, ws.close_code

    m, code = asyncio.run(run())
    assert m["type"] == "error" and m["error"]["code"] == "invalid_session" and "sample_rate" in m["error"]["message"]
    assert code == 1008


def test_client_vanishing_with_replies_pending(urls, caplog):
    """A client that sends a burst of bad events and vanishes: replying to the queued ones failed
    with a traceback in the server log ("error handling a client message"); now the stream just
    ends and frees its place."""
    import httpx

    async def burst_and_vanish():
        async with connect(f"{urls[0]}/v1/realtime?intent=transcription") as ws:
            await ws.recv()
            for i in range(300):
                await ws.send(json.dumps({"type": "session.update", "event_id": f"e{i}", "session": {"chunk_ms": -80}}))
            ws.transport.abort()

    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            asyncio.run(burst_and_vanish())
        http = urls[0].replace("ws", "http", 1)
        for _ in range(200):
            if httpx.get(f"{http}/health").json()["active_streams"] == 0:
                break
            time.sleep(0.05)
    assert httpx.get(f"{http}/health").json()["active_streams"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
