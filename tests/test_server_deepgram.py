"""Deepgram-style /v1/listen against a real uvicorn on loopback: exact finals, controls, limits."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import websockets
from websockets.asyncio.client import connect

from onepass.server import ServerConfig, create_app
from onepass.server.testing import serve_in_thread


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def as_int16_float(audio: np.ndarray) -> np.ndarray:
    """What the server decodes from pcm16(audio): compare offline on exactly these samples."""
    return np.frombuffer(pcm16(audio), "<i2").astype(np.float32) / 32768


@pytest.fixture(scope="module")
def server(asr):
    # random weights end words anywhere: endpoints without the word hold (tests/test_engine.py has it)
    with serve_in_thread(create_app(asr, ServerConfig(max_streams=4, endpoint_blank_ms=240, word_hold_ms=0))) as url:
        yield url.replace("http", "ws")


async def dg_session(url: str, payload: bytes, query: str = "", piece: int = 3200, controls=(), headers=None):
    """Send audio in pieces, then controls (default CloseStream); return (messages, close code)."""
    msgs = []
    async with connect(f"{url}/v1/listen?{query}", additional_headers=headers) as ws:
        async def reader():
            async for m in ws:
                msgs.append(json.loads(m))
        task = asyncio.create_task(reader())
        for pos in range(0, len(payload), piece):
            await ws.send(payload[pos:pos + piece])
        for c in controls or ({"type": "CloseStream"},):
            await ws.send(c if isinstance(c, (bytes, str)) else json.dumps(c))
        await asyncio.wait_for(task, 60)
        return msgs, ws.close_code


def finals_text(msgs) -> str:
    parts = [m["channel"]["alternatives"][0]["transcript"] for m in msgs
             if m["type"] == "Results" and m["is_final"]]
    return " ".join(p for p in parts if p)


def test_final_results_equal_offline(asr, clips):
    """One utterance (no endpointing): the is_final transcripts joined by spaces are the offline text."""
    audio = np.concatenate([clips["normal"], np.zeros(16000, np.float32), clips["long"]])
    expected = asr.transcribe(as_int16_float(audio), 16000, language="auto", chunk_ms=160)
    assert expected.text  # the tiny model emits text, so equality means something
    with serve_in_thread(create_app(asr, ServerConfig(endpoint_blank_ms=None))) as http:
        msgs, code = asyncio.run(dg_session(http.replace("http", "ws"), pcm16(audio),
                                            "language=multi&chunk_ms=160&interim_results=true"))
    assert code == 1000
    assert finals_text(msgs) == expected.text
    assert msgs[-1]["onepass"] == {"transcript": expected.text, "language": expected.language,
                                   "language_detected": True}
    for m in msgs[:-1]:
        assert m["onepass"]["language_detected"] is True
    words = [w for m in msgs if m["type"] == "Results" and m["is_final"]
             for w in m["channel"]["alternatives"][0]["words"]]
    assert [(w["punctuated_word"], w["start"], w["end"]) for w in words] == \
        [(w.word, w.start_s, w.end_s) for w in expected.words]


def test_utterances_words_and_metadata(server, asr, clips):
    audio = np.concatenate([clips["normal"], np.zeros(16000, np.float32), clips["long"]])
    expected = asr.transcribe(as_int16_float(audio), 16000, language="en-US", chunk_ms=160)
    assert expected.text
    msgs, code = asyncio.run(dg_session(server, pcm16(audio), "language=en-US&chunk_ms=160&interim_results=true"
                                                                "&utterance_end_ms=1000"))
    assert code == 1000
    assert msgs[-1]["type"] == "Metadata"
    assert abs(msgs[-1]["duration"] - len(audio) / 16000) < 1e-6
    assert msgs[-1]["onepass"]["transcript"] == expected.text
    # Endpoints split the text into utterances; no token is lost or repeated across them.
    assert finals_text(msgs).replace(" ", "") == expected.text.replace(" ", "")
    results = [m for m in msgs if m["type"] == "Results"]
    assert sum(m["speech_final"] for m in results) >= 2
    assert any(m["type"] == "UtteranceEnd" for m in msgs)
    words = [w for m in results if m["is_final"] for w in m["channel"]["alternatives"][0]["words"]]
    assert "".join(w["punctuated_word"] for w in words) == "".join(w.word for w in expected.words)
    assert all(w["start"] < w["end"] for w in words)
    for m in results:
        assert m["onepass"]["language"] == "en-US" and m["onepass"]["language_detected"] is False
        assert m["channel"]["alternatives"][0]["languages"] == ["en-US"]
    starts = [m["start"] for m in results if m["is_final"]]
    assert starts == sorted(starts)


@pytest.mark.parametrize("rate,encoding", [(16000, "float32"), (8000, "linear16")])
def test_encodings_and_rates(server, asr, clips, rate, encoding):
    from onepass.audio import resample

    audio = resample(clips["normal"], 16000, rate)
    if encoding == "float32":
        payload, offline_in = audio.astype("<f4").tobytes(), audio
    else:
        payload, offline_in = pcm16(audio), as_int16_float(audio)
    msgs, code = asyncio.run(dg_session(server, payload, f"encoding={encoding}&sample_rate={rate}&chunk_ms=560"))
    expected = asr.transcribe(offline_in, rate, chunk_ms=560)
    assert code == 1000 and expected.text
    if rate == 16000:
        assert msgs[-1]["onepass"]["transcript"] == expected.text
    else:  # streaming vs one-shot resampling differ at the edges only; the run must complete
        assert msgs[-1]["type"] == "Metadata"


def test_finalize_and_keepalive(server, clips):
    msgs, code = asyncio.run(dg_session(server, pcm16(clips["long"]), "chunk_ms=160",
                                        controls=({"type": "KeepAlive"}, {"type": "Finalize"},
                                                  {"type": "CloseStream"})))
    assert code == 1000 and msgs[-1]["type"] == "Metadata"
    assert not any(m["type"] == "Error" for m in msgs)


def test_malformed_messages_answered_not_fatal(server, asr, clips):
    audio = clips["normal"]
    garbage = ["not json", json.dumps({"type": "Nope"}), json.dumps([1, 2]), b"\x01\x02\x03"]
    msgs, code = asyncio.run(dg_session(server, pcm16(audio), "chunk_ms=560",
                                        controls=(*garbage, {"type": "CloseStream"})))
    errors = [m for m in msgs if m["type"] == "Error"]
    assert [e["variant"] for e in errors] == ["SchemaError"] * 3 + ["DataError"]
    assert code == 1000
    assert msgs[-1]["onepass"]["transcript"] == asr.transcribe(as_int16_float(audio), 16000, chunk_ms=560).text


def test_bad_options_refused_before_upgrade(server):
    # sample_rate=1 was accepted: every second of it became 16000 s of model audio (one 1 MiB frame: 33 GB)
    for query in ("encoding=mulaw", "sample_rate=abc", "language=xx-XX", "chunk_ms=123", "sample_rate=1",
                  "sample_rate=7999"):
        with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
            asyncio.run(dg_session(server, b"", query))
        assert exc.value.response.status_code == 400
        assert json.loads(exc.value.response.body)["error"]["type"] == "invalid_request_error"


def test_auth_capacity_size_and_idle(asr, clips):
    config = ServerConfig(api_keys=("k1", "secret"), max_streams=1, max_message_bytes=4000, idle_timeout_s=0.5)
    with serve_in_thread(create_app(asr, config)) as http:
        url = http.replace("http", "ws")
        with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
            asyncio.run(dg_session(url, b""))
        assert exc.value.response.status_code == 401
        with pytest.raises(websockets.exceptions.InvalidStatus):
            asyncio.run(dg_session(url, b"", headers={"Authorization": "Token wrong"}))
        msgs, code = asyncio.run(dg_session(url, pcm16(clips["short"]), "api_key=secret"))
        assert code == 1000
        msgs, code = asyncio.run(dg_session(url, pcm16(clips["short"]), headers={"Authorization": "Bearer k1"}))
        assert code == 1000

        async def hold_and_refuse():
            async with connect(f"{url}/v1/listen?token=k1") as ws:  # holds the only place
                with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
                    async with connect(f"{url}/v1/listen?token=k1"):
                        pass
                assert exc.value.response.status_code == 503
                assert exc.value.response.headers["Retry-After"] == "2"
                await ws.send(b"\0" * 5000)  # over max_message_bytes
                msg = json.loads(await ws.recv())
                assert msg["type"] == "Error"
                with pytest.raises(websockets.exceptions.ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 1009
            async with connect(f"{url}/v1/listen?token=k1") as ws:  # the place is free again
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))  # idle timeout
                assert msg["type"] == "Error" and msg["variant"] == "Timeout"
                with pytest.raises(websockets.exceptions.ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 1011

        asyncio.run(hold_and_refuse())


def test_finalize_mid_stream_is_exact(server, asr, clips):
    """Finalize decodes everything received (the last partial chunk too) and the stream goes on:
    the finals of each segment are the offline transcript of the audio sent in it."""
    audio = np.concatenate([clips["normal"], clips["odd_length"], clips["long"]])
    cuts = [0, 30_001, 30_001 + 4_321, len(audio)]
    pieces = [audio[a:b] for a, b in zip(cuts, cuts[1:])]
    expected = [asr.transcribe(as_int16_float(p), 16000, chunk_ms=160).text for p in pieces]
    assert all(expected)  # the tiny model emits text, so the comparison means something
    finalize = json.dumps({"type": "Finalize"})
    payload = [pcm16(pieces[0]), finalize, finalize, pcm16(pieces[1]), finalize, pcm16(pieces[2])]

    async def run():
        msgs = []
        async with connect(f"{server}/v1/listen?chunk_ms=160&endpointing=false&interim_results=true") as ws:
            for item in payload:
                await ws.send(item)
            await ws.send(json.dumps({"type": "CloseStream"}))
            async for m in ws:
                msgs.append(json.loads(m))
        return msgs

    msgs = asyncio.run(run())
    results = [m for m in msgs if m["type"] == "Results"]
    segments, current = [], []
    for m in results:
        if m["is_final"]:
            current.append(m)
        if m["from_finalize"] or m["speech_final"]:
            segments.append(current)
            current = []
    # the second Finalize had nothing new: it is answered with an empty final result
    assert [[m["channel"]["alternatives"][0]["transcript"] for m in seg] for seg in segments][1] == [""]
    segments.pop(1)
    assert [finals_text(seg) for seg in segments] == expected
    assert [m["speech_final"] for m in results if m["is_final"]].count(True) == 1  # endpointing=false: only the end
    words = [w for seg in segments[1:2] for m in seg for w in m["channel"]["alternatives"][0]["words"]]
    assert words[0]["start"] >= cuts[1] / 16000 - 0.08  # times run on from the stream start
    assert msgs[-1]["type"] == "Metadata" and abs(msgs[-1]["duration"] - len(audio) / 16000) < 1e-6


def test_endpointing_and_utterance_end_per_stream(server, asr, clips):
    audio = np.concatenate([clips["normal"], np.zeros(24000, np.float32), clips["short"]])
    want = asr.transcribe(as_int16_float(audio), 16000, chunk_ms=160).text
    msgs, _ = asyncio.run(dg_session(server, pcm16(audio), "chunk_ms=160&endpointing=false&utterance_end_ms=400"
                                                           "&interim_results=true"))
    finals = [m for m in msgs if m["type"] == "Results" and m["is_final"]]
    assert [m["speech_final"] for m in finals].count(True) == 1  # the server's 240 ms is off for this stream
    gaps = [m for m in msgs if m["type"] == "UtteranceEnd"]
    assert gaps and all(g["last_word_end"] <= 5.0 for g in gaps)
    assert finals_text(msgs) == want
    msgs, _ = asyncio.run(dg_session(server, pcm16(audio), "chunk_ms=160&endpointing=100"))
    assert [m["speech_final"] for m in msgs if m["type"] == "Results"].count(True) >= 2
    assert not any(m["type"] == "UtteranceEnd" for m in msgs)  # no utterance_end_ms: none
    for query in ("endpointing=soon", "utterance_end_ms=-5"):
        with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
            asyncio.run(dg_session(server, b"", query))
        assert exc.value.response.status_code == 400
