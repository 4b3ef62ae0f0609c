"""Hotwords over every protocol on the demo model (real uvicorn on loopback): Deepgram ``keyterm`` and
``keywords``, OpenAI REST ``prompt`` (with the official client) and Realtime
``input_audio_transcription.prompt``, the server-wide default list; bad lists are refused with
HTTP 400 or an error event, never a dropped stream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import soundfile as sf
import websockets

import onepass
from onepass.decoding.phrases import MAX_PHRASES, Phrase
from onepass.server import ServerConfig, create_app
from onepass.server.testing import serve_in_thread
from tests.test_server_deepgram import as_int16_float, dg_session, finals_text, pcm16
from tests.test_server_realtime import int16_float, rt_session

WAV = Path(onepass.__file__).parent / "assets" / "samples" / "en-US-long.wav"
WORDS = ["Describe"]  # the long en-US sample's fifth sentence starts "Discribe forget" without it


@pytest.fixture(scope="module")
def demo():
    return onepass.load_model("demo")


@pytest.fixture(scope="module")
def audio():
    return sf.read(WAV, dtype="float32")[0]


@pytest.fixture(scope="module")
def server(demo):
    with serve_in_thread(create_app(demo, ServerConfig(max_streams=4, endpoint_blank_ms=None))) as url:
        yield url


def test_deepgram_keyterm_and_keywords(server, demo, audio):
    x = as_int16_float(audio)
    plain = demo.transcribe(x, 16000, language="en-US").text
    boosted = demo.transcribe(x, 16000, language="en-US", hotwords=WORDS).text
    assert plain != boosted
    ws = server.replace("http", "ws")
    for query in ("keyterm=Describe", "keywords=Describe:2", "keywords=Describe"):
        msgs, code = asyncio.run(dg_session(ws, pcm16(audio), f"language=en-US&{query}"))
        assert code == 1000 and finals_text(msgs) == boosted, query
    msgs, _ = asyncio.run(dg_session(ws, pcm16(audio), "language=en-US"))
    assert finals_text(msgs) == plain


def test_deepgram_bad_lists_refused_before_upgrade(server):
    ws = server.replace("http", "ws")
    many = "&".join(f"keyterm=w{i}" for i in range(MAX_PHRASES + 1))
    for query in ("keywords=go:-2", "keywords=go:1000", many, "keyterm=" + "x" * 200):
        with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
            asyncio.run(dg_session(ws, b"", query))
        assert exc.value.response.status_code == 400, query
        body = json.loads(exc.value.response.body)["error"]
        assert body["type"] == "invalid_request_error" and ("hotword" in body["message"] or "boost" in body["message"])


def test_openai_rest_prompt(server, demo, audio, tmp_path):
    openai = pytest.importorskip("openai")
    path = tmp_path / "en.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="none", max_retries=0)
    with open(path, "rb") as f:
        t = client.audio.transcriptions.create(model="onepass", file=f, language="en-US", prompt="Describe")
    assert t.text == demo.transcribe(audio, 16000, language="en-US", hotwords=WORDS).text
    r = httpx.post(f"{server}/v1/audio/transcriptions", files={"file": ("a.wav", path.read_bytes())},
                   data={"prompt": "x" * 300})
    assert r.status_code == 400 and "hotword" in r.json()["error"]["message"]


def test_realtime_prompt_before_and_after_audio(server, demo, audio):
    ws = server.replace("http", "ws")
    x = int16_float(audio)
    boosted = demo.transcribe(x, 16000, language="en-US", hotwords=WORDS).text
    session = {"input_audio_format": "pcm16_16000",
               "input_audio_transcription": {"language": "en-US", "prompt": "Describe"}, "turn_detection": None}
    out = asyncio.run(rt_session(ws, session, audio))
    assert out[1]["session"]["input_audio_transcription"]["prompt"] == "Describe"
    assert out[-1]["transcript"] == boosted
    # a bad prompt is an error event; the session goes on with its phrases
    bad = json.dumps({"type": "transcription_session.update",
                      "session": {"input_audio_transcription": {"prompt": "y" * 300}}})
    out = asyncio.run(rt_session(ws, session, audio, extra=[bad]))
    errors = [m for m in out if m["type"] == "error"]
    assert errors and errors[0]["error"]["param"] == "prompt"
    assert out[-1]["transcript"] == boosted


def test_server_wide_default_list(demo, audio):
    config = ServerConfig(endpoint_blank_ms=None, hotwords=(Phrase("Describe"),))
    with serve_in_thread(create_app(demo, config)) as url:
        msgs, _ = asyncio.run(dg_session(url.replace("http", "ws"), pcm16(audio), "language=en-US"))
    assert finals_text(msgs) == demo.transcribe(as_int16_float(audio), 16000, language="en-US", hotwords=WORDS).text
    assert config.stream_hotwords([Phrase("set", 2.0)]).phrases[-1] == Phrase("set", 2.0)
    assert config.stream_hotwords().boost is None  # the decoder's default (greedy or beam search)
    assert ServerConfig(hotword_boost=3.0).stream_hotwords().boost == 3.0


@pytest.mark.parametrize("endpoint_ms", [None, 800])
def test_deepgram_keyterm_with_beam_search(audio, endpoint_ms):
    """A server on a beam-search recognizer: the stream's finals are the offline beam transcript (with
    endpoints: the same words, cut into utterances)."""
    from onepass.evaluation import normalize

    asr = onepass.load_model("demo", beam=4)
    boosted = asr.transcribe(as_int16_float(audio), 16000, language="en-US", hotwords=WORDS).text
    assert "Describe" in boosted
    with serve_in_thread(create_app(asr, ServerConfig(endpoint_blank_ms=endpoint_ms))) as url:
        msgs, code = asyncio.run(dg_session(url.replace("http", "ws"), pcm16(audio), "language=en-US&keyterm=Describe"))
    assert code == 1000
    finals = [m for m in msgs if m.get("type") == "Results" and m.get("is_final")]
    if endpoint_ms is None:
        assert finals_text(msgs) == boosted
    else:
        assert len(finals) > 1 and normalize(finals_text(msgs)) == normalize(boosted)
