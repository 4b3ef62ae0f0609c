"""Every audio length, every chunk size, every backend, every way in: no exception, torch's offline ids.

The grid: backends {torch, onnxruntime fp32} x models {prompt (Nemotron 3.5 layout), English} x every
chunk size the model allows x lengths that cover 0 and 1 sample, one chunk and one chunk +/- 1, every
residue modulo an encoder frame (1280 samples, 8 mel frames) in steps of 80 samples just past a chunk
boundary (among them the lengths whose last chunk has no new encoder frame: the crash of issue 28),
and a few random lengths x modes {offline, stream in random pieces, stream with ``flush()`` in the
middle}. The reference is always torch offline on the same samples (for a flush: the two parts, each
offline). The servers (REST, Deepgram WebSocket) get a slice of the grid here and all of it under
``-m slow``; int8/int4 graphs must not raise on the same grid (their ids may differ: quantized).
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

import onepass

ENCODER_FRAME = 1280  # samples per encoder frame (8 mel frames of 160)


def chunk_samples(chunk_ms: int) -> int:
    return chunk_ms * 16


def lengths_for(chunk_ms: int, full: bool, seed: int = 0) -> list[int]:
    c = chunk_samples(chunk_ms)
    rng = np.random.default_rng(seed + chunk_ms)
    residues = [2 * c + 80 * k for k in range(ENCODER_FRAME // 80)]  # every residue mod 1280 (80-sample steps)
    if full:
        return sorted(set([0, 1, 159, 161, c - 1, c, c + 1] + residues + [int(x) for x in rng.integers(c + 2, 3 * c, 3)]))
    # the default suite: the edges, 80..320 samples past a chunk boundary (where the last chunk has
    # no new encoder frame) and one random length
    return sorted(set([0, 1, c - 1, c, c + 1] + residues[1:5] + [int(rng.integers(c + 2, 3 * c))]))


def int16_audio(clips) -> np.ndarray:
    """The test audio as int16 steps, so the servers (PCM16 / WAV) see exactly these samples."""
    a = np.concatenate([clips["long"], clips["normal"]])
    return (np.round(np.clip(a, -1, 1) * 32767) / 32768).astype(np.float32)


@pytest.fixture(scope="module")
def audio(clips):
    return int16_audio(clips)


@pytest.fixture(scope="module")
def backends(asr, asr_en, hf_dir, hf_en_dir):
    out = {("torch", "prompt"): asr, ("torch", "en"): asr_en}
    if pytest.importorskip("onnxruntime"):
        out[("onnxruntime", "prompt")] = onepass.load_model(hf_dir, backend="onnxruntime", threads=1)
        out[("onnxruntime", "en")] = onepass.load_model(hf_en_dir, backend="onnxruntime", threads=1)
    return out


def language(model) -> str | None:
    return "en-US" if model.config.has_prompt else None


def stream_ids(model, samples: np.ndarray, chunk_ms: int, seed: int, flush_at: int | None = None) -> list[int]:
    rng = np.random.default_rng(seed)
    session = model.stream(language=language(model), chunk_ms=chunk_ms)
    pos = 0
    cuts = [flush_at] if flush_at is not None else []
    while pos < len(samples) or cuts:
        stop = cuts[0] if cuts else len(samples)
        n = min(stop - pos, int(rng.integers(1, 3000)))
        if n:
            session.accept(samples[pos:pos + n], 16000)
            pos += n
        if cuts and pos == cuts[0]:
            session.flush()
            cuts.pop()
    return session.finish().token_ids


def offline_ids(model, samples: np.ndarray, chunk_ms: int) -> list[int]:
    return model.transcribe(samples, 16000, language=language(model), chunk_ms=chunk_ms).token_ids


def grid(backends, audio, backend: str, kind: str, full: bool):
    ref_model, model = backends[("torch", kind)], backends[(backend, kind)]
    failures, cases = [], 0
    for chunk_ms in ref_model.config.supported_chunk_ms():
        for n in lengths_for(chunk_ms, full):
            x = audio[:n]
            want = offline_ids(ref_model, x, chunk_ms)
            cut = n // 2
            want_flush = offline_ids(ref_model, x[:cut], chunk_ms) + offline_ids(ref_model, x[cut:], chunk_ms)
            for mode, run, expect in [
                ("offline", lambda: offline_ids(model, x, chunk_ms), want),
                ("stream", lambda: stream_ids(model, x, chunk_ms, seed=n), want),
                ("stream+flush", lambda: stream_ids(model, x, chunk_ms, seed=n, flush_at=cut), want_flush),
            ]:
                cases += 1
                try:
                    got = run()
                except Exception as exc:  # the point of the grid: name every case that raises
                    failures.append((chunk_ms, n, mode, repr(exc)[:120]))
                    continue
                if got != expect:
                    failures.append((chunk_ms, n, mode, f"ids differ ({len(got)} vs {len(expect)} tokens)"))
    return cases, failures


FULL = [False, pytest.param(True, marks=pytest.mark.slow, id="every-residue")]


@pytest.mark.parametrize("full", FULL)
@pytest.mark.parametrize("kind", ["prompt", "en"])
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_grid(backends, audio, backend, kind, full):
    cases, failures = grid(backends, audio, backend, kind, full=full)
    print(f"{backend}/{kind}: {cases} cases, {len(failures)} failures")
    assert not failures, failures[:10]


@pytest.mark.parametrize("quantize", ["int8", "int4"])
def test_quantized_graphs_never_raise(hf_dir, audio, quantize):
    model = onepass.load_model(hf_dir, backend="onnxruntime", quantize=quantize, threads=1)
    failures = []
    for chunk_ms in model.config.supported_chunk_ms():
        for n in lengths_for(chunk_ms, full=False)[::2]:
            try:
                offline_ids(model, audio[:n], chunk_ms)
                stream_ids(model, audio[:n], chunk_ms, seed=n, flush_at=n // 2)
            except Exception as exc:
                failures.append((chunk_ms, n, repr(exc)[:120]))
    assert not failures, failures[:10]


# ---- the servers: REST upload and the Deepgram WebSocket, on the same lengths ----------------------------
def wav_bytes(samples: np.ndarray) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, 16000, subtype="PCM_16", format="WAV")
    return buf.getvalue()


async def deepgram_final_text(url: str, samples: np.ndarray, chunk_ms: int, lang: str | None) -> str:
    from websockets.asyncio.client import connect

    pcm = np.round(samples * 32768).astype("<i2").tobytes()
    query = f"encoding=linear16&sample_rate=16000&chunk_ms={chunk_ms}&endpointing=false"
    query += f"&language={lang}" if lang else ""
    parts = []
    async with connect(f"{url}/v1/listen?{query}") as ws:
        for pos in range(0, len(pcm), 3202):  # odd-sized messages: samples split across frames
            await ws.send(pcm[pos:pos + 3202])
        await ws.send(json.dumps({"type": "CloseStream"}))
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("type") == "Results" and msg.get("is_final"):
                parts.append(msg["channel"]["alternatives"][0]["transcript"])
    return " ".join(p for p in parts if p)


def server_grid(model, audio, full: bool):
    import httpx

    from onepass.server import ServerConfig, create_app
    from onepass.server.testing import serve_in_thread

    failures, cases = [], 0
    with serve_in_thread(create_app(model, ServerConfig(max_streams=4, endpoint_blank_ms=None))) as http:
        client = httpx.Client(base_url=http, timeout=60)
        sizes = model.config.supported_chunk_ms()
        for chunk_ms in sizes if full else (sizes[0], sizes[-1]):
            lengths = lengths_for(chunk_ms, full)
            for n in lengths if full else lengths[::2]:
                x = audio[:n]
                want = model.transcribe(x, 16000, language=language(model), chunk_ms=chunk_ms).text
                cases += 2
                form = {"chunk_ms": str(chunk_ms), "response_format": "json"}
                if language(model):
                    form["language"] = language(model)
                r = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(x), "audio/wav")},
                                data=form)
                if n == 0:  # an upload without samples is a user error, in OpenAI's error shape
                    if r.status_code != 400 or "error" not in r.json():
                        failures.append((chunk_ms, n, "rest", r.status_code, r.text[:120]))
                elif r.status_code != 200 or r.json()["text"] != want:
                    failures.append((chunk_ms, n, "rest", r.status_code, r.text[:120], want))
                try:
                    got = asyncio.run(deepgram_final_text(http.replace("http", "ws"), x, chunk_ms, language(model)))
                except Exception as exc:
                    failures.append((chunk_ms, n, "websocket", repr(exc)[:120]))
                    continue
                if got != want:
                    failures.append((chunk_ms, n, "websocket", got, want))
    return cases, failures


@pytest.mark.parametrize("full", FULL)
@pytest.mark.parametrize("kind", ["prompt", "en"])
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_servers_on_the_grid(backends, audio, backend, kind, full):
    cases, failures = server_grid(backends[(backend, kind)], audio, full=full)
    print(f"servers {backend}/{kind}: {cases} cases, {len(failures)} failures")
    assert not failures, failures[:10]
