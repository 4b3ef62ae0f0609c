"""OpenAI-style REST with the official openai client, plus health, readiness and metrics."""

from __future__ import annotations

import io
import json
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from onepass.server import ServerConfig, create_app
from onepass.server.testing import serve_in_thread


@pytest.fixture(scope="module")
def server(asr):
    with serve_in_thread(create_app(asr, ServerConfig(model_name="tiny", max_streams=4,
                                                      api_keys=("sk-test",)))) as url:
        yield url


@pytest.fixture(scope="module")
def wav(tmp_path_factory, clips):
    audio = np.concatenate([clips["normal"], np.zeros(8000, np.float32), clips["long"]])
    path = tmp_path_factory.mktemp("rest") / "clip.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    return path, audio


@pytest.fixture
def client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{server}/v1", api_key="sk-test", max_retries=0)


def test_openai_json_text_and_verbose(client, asr, wav):
    path, audio = wav
    expected = asr.transcribe(audio, 16000, language="de-DE", chunk_ms=560)
    assert expected.text and expected.words
    with open(path, "rb") as f:
        t = client.audio.transcriptions.create(model="tiny", file=f, language="de-DE",
                                               extra_body={"chunk_ms": 560})
    assert t.text == expected.text
    with open(path, "rb") as f:
        text = client.audio.transcriptions.create(model="tiny", file=f, language="de-DE", response_format="text",
                                                  extra_body={"chunk_ms": 560})
    assert text.strip() == expected.text
    with open(path, "rb") as f:
        v = client.audio.transcriptions.create(model="tiny", file=f, language="de-DE",
                                               response_format="verbose_json", timestamp_granularities=["word"],
                                               extra_body={"chunk_ms": 560})
    assert v.text == expected.text and v.language == "de-DE"
    assert [(w.word, w.start, w.end) for w in v.words] == [(w.word, w.start_s, w.end_s) for w in expected.words]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_caption_formats(client, asr, wav, fmt):
    from onepass.writers import format_transcript

    path, audio = wav
    with open(path, "rb") as f:
        out = client.audio.transcriptions.create(model="tiny", file=f, response_format=fmt)
    assert out == format_transcript(asr.transcribe(audio, 16000), fmt)


def test_openai_streaming_sse(client, asr, wav):
    path, audio = wav
    expected = asr.transcribe(audio, 16000, language="auto")
    assert expected.text
    with open(path, "rb") as f:
        events = list(client.audio.transcriptions.create(model="tiny", file=f, language="auto", stream=True))
    assert events[-1].type == "transcript.text.done"
    assert events[-1].text == expected.text
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert deltas.replace(" ", "") == expected.text.replace(" ", "")


def test_models_and_auth(client, server):
    assert [m.id for m in client.models.list()] == ["tiny"]
    r = httpx.get(f"{server}/v1/models")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{server}/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{server}/v1/models?api_key=sk-test").status_code == 200


def test_bad_uploads_are_400(server):
    h = {"Authorization": "Bearer sk-test"}
    url = f"{server}/v1/audio/transcriptions"
    for files, data in [({"file": ("x.wav", b"garbage bytes")}, {}),
                        ({"file": ("x.wav", b"")}, {}),
                        ({"file": ("x.wav", b"RIFF")}, {"response_format": "xml"}),
                        ({"file": ("x.wav", b"RIFF")}, {"language": "xx-XX"})]:
        r = httpx.post(url, files=files, data=data, headers=h)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"]
    r = httpx.post(url, headers=h)  # no file at all
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    assert httpx.get(f"{server}/health").json()["status"] == "ok"


@pytest.mark.parametrize("data", [{"chunk_ms": "abc"}, {"stream": "maybe"}, {"temperature": "hot"},
                                  {"chunk_ms": ["160", "x"]}])
def test_form_fields_of_the_wrong_type_are_openai_errors(server, data):
    """FastAPI answered these with 422 {"detail": [...]}; OpenAI clients expect 400 {"error": {...}}."""
    r = httpx.post(f"{server}/v1/audio/transcriptions", files={"file": ("x.wav", b"")}, data=data,
                   headers={"Authorization": "Bearer sk-test"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == next(iter(data)) and err["message"]


def test_malformed_multipart_and_unknown_routes_are_openai_errors(server):
    h = {"Authorization": "Bearer sk-test", "Content-Type": "multipart/form-data; boundary=xyz"}
    r = httpx.post(f"{server}/v1/audio/transcriptions", content=b"file=1", headers=h)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.get(f"{server}/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["message"]


def wav_bytes(audio, rate: int, **kwargs) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format=kwargs.pop("format", "WAV"), **kwargs)
    return buf.getvalue()


def test_absurd_sample_rate_in_a_header_is_refused(server, clips):
    """A WAV header that says 1 Hz made 0.2 s of samples into 1 hour of 16 kHz audio (16000x)."""
    data = bytearray(wav_bytes(clips["short"][:3200], 16000, subtype="PCM_16"))
    data[24:28], data[28:32] = (1).to_bytes(4, "little"), (2).to_bytes(4, "little")  # rate, bytes per second
    t0 = time.monotonic()
    r = httpx.post(f"{server}/v1/audio/transcriptions", files={"file": ("x.wav", bytes(data))},
                   headers={"Authorization": "Bearer sk-test"}, timeout=60)
    assert r.status_code == 400 and "sample rate" in r.json()["error"]["message"]
    assert time.monotonic() - t0 < 10


def test_upload_longer_than_the_limit_is_refused_before_decoding(asr):
    """A few KB of FLAC silence declare an hour of audio: refused by length, not decoded."""
    bomb = wav_bytes(np.zeros(16000 * 3600, np.int16), 16000, format="FLAC", subtype="PCM_16")
    assert len(bomb) < 1 << 20
    with serve_in_thread(create_app(asr, ServerConfig(max_streams=1, max_upload_s=600))) as url:
        r = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": ("x.flac", bomb)}, timeout=60)
        assert r.status_code == 400
        assert "3600 s long, more than the limit of 600 s" in r.json()["error"]["message"]
        assert "/tmp" not in r.json()["error"]["message"]  # names the upload, not the server's temp file


def test_health_ready_metrics(server, wav):
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    assert httpx.get(f"{server}/ready").status_code == 200
    path, _ = wav
    with open(path, "rb") as f:
        httpx.post(f"{server}/v1/audio/transcriptions", files={"file": f},
                   headers={"Authorization": "Bearer sk-test"}, timeout=60)
    text = httpx.get(f"{server}/metrics").text
    for name in ("onepass_active_streams", "onepass_refused_streams_total", "onepass_chunk_latency_seconds_bucket",
                 "onepass_lag_seconds_bucket", "onepass_audio_seconds_total", "onepass_real_time_factor",
                 "onepass_batch_size_bucket", 'onepass_streams_total{protocol="rest"}'):
        assert name in text, name
    audio_s = [line for line in text.splitlines() if line.startswith("onepass_audio_seconds_total")]
    assert float(audio_s[0].split()[1]) > 0


def test_rest_refused_at_capacity(asr, wav):
    path, _ = wav
    app = create_app(asr, ServerConfig(max_streams=1))
    with serve_in_thread(app) as url:
        lease = app.state.onepass.runner.try_lease()  # someone holds the only place
        r = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": open(path, "rb")})
        assert r.status_code == 503 and r.headers["Retry-After"] == "2"
        lease.release()
        r = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": open(path, "rb")}, timeout=60)
        assert r.status_code == 200 and json.loads(r.text)["text"] is not None


def test_browser_page_served(server):
    r = httpx.get(f"{server}/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/v1/listen" in r.text and 'id="language"' in r.text and 'id="chunk"' in r.text and "lag" in r.text


def test_sse_client_vanishing_frees_its_place(asr, wav):
    """A client that drops an SSE response midway must not keep its admission lease."""
    path, _ = wav
    app = create_app(asr, ServerConfig(max_streams=1, chunk_ms=160))
    with serve_in_thread(app) as url:
        for _ in range(2):
            with open(path, "rb") as f, httpx.stream("POST", f"{url}/v1/audio/transcriptions", files={"file": f},
                                                     data={"stream": "true"}, timeout=60) as r:
                assert r.status_code == 200
                next(line for line in r.iter_lines() if line.startswith("data:"))  # then hang up
            runner = app.state.onepass.runner
            for _ in range(200):
                if httpx.get(f"{url}/health").json()["active_streams"] == 0 and not runner.engine.streams:
                    break
                time.sleep(0.05)
            assert httpx.get(f"{url}/health").json()["active_streams"] == 0
            assert not runner.engine.streams


def test_cors_only_for_configured_origins(asr):
    """Browsers on another origin may call the REST API only when the server names that origin."""
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    with serve_in_thread(create_app(asr, ServerConfig(max_streams=1, cors_origins=("https://app.example",)))) as url:
        r = httpx.options(f"{url}/v1/audio/transcriptions", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
        r = httpx.options(f"{url}/v1/audio/transcriptions", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        assert httpx.get(f"{url}/health", headers={"Origin": "https://app.example"}).headers[
            "access-control-allow-origin"] == "https://app.example"
    with serve_in_thread(create_app(asr, ServerConfig(max_streams=1))) as url:  # default: no CORS headers
        r = httpx.get(f"{url}/health", headers={"Origin": "https://app.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
