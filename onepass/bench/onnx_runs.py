"""ONNX measurements for ``onepass bench --backend onnxruntime`` / ``--compare sherpa-onnx``:
exported file sizes, token agreement of quantized graphs with fp32, and unpaced batched
throughput of onepass's engine next to sherpa-onnx on the same exported files."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..audio import SAMPLE_RATE
from ..engine import Engine, EngineConfig
from ..recognizer import Recognizer
from . import sherpa_runs
from .audio import speech_like


def export_dir(asr: Recognizer, quantize: str, chunk_ms: int, root: str | Path | None,
               log: Callable[[str], None]) -> tuple[Path, dict[str, int]]:
    """Export (sherpa files for chunk_ms + onepass core) into root/<quantize>-<chunk> or a temp dir;
    an export already there from the same weights (manifest fingerprint) and settings is reused."""
    import json
    from dataclasses import asdict

    from ..onnx.export import MANIFEST, ExportSettings, _size, export_onnx, fingerprint

    base = Path(root) if root else Path(tempfile.mkdtemp(prefix="onepass-bench-onnx-"))
    out = base / f"{quantize}-{chunk_ms}"
    manifest = out / MANIFEST
    settings = ExportSettings(chunk_ms=chunk_ms, quantize=quantize).resolved(asr.model.config.encoder.hidden_size)
    if manifest.exists():
        m = json.loads(manifest.read_text())
        # the manifest records every export setting: reuse only an export made exactly like this one
        same = all(m.get(k) == v for k, v in asdict(settings).items())
        if same and m.get("fingerprint") == fingerprint(asr.model):
            files = {f.name: _size(f) for f in sorted(out.glob("*.onnx"))}
            files["tokens.txt"] = _size(out / "tokens.txt")
            log(f"reusing the {quantize} export in {out}")
            return out, files
    start = time.monotonic()
    result = export_onnx(asr, out, settings)
    log(f"exported {quantize} ({chunk_ms} ms) in {time.monotonic() - start:.0f} s: "
        + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in result.files.items()))
    return out, result.files


def token_error_rate(ref: list[int], hyp: list[int]) -> float:
    """Levenshtein distance of token id sequences / len(ref)."""
    prev = list(range(len(hyp) + 1))
    for i, a in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, b in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a != b))
        prev = cur
    return prev[-1] / max(1, len(ref))


def agreement(ref: Recognizer, other: Recognizer, clips: list[np.ndarray], chunk_ms: int, language: str) -> dict:
    """Token agreement of ``other`` with ``ref`` (offline at chunk_ms): exact-match fraction and
    token error rate over all clips."""
    errors = tokens = exact = 0
    for clip in clips:
        a = ref.transcribe(clip, SAMPLE_RATE, language=language, chunk_ms=chunk_ms).token_ids
        b = other.transcribe(clip, SAMPLE_RATE, language=language, chunk_ms=chunk_ms).token_ids
        errors += token_error_rate(a, b) * max(1, len(a))
        tokens += len(a)
        exact += a == b
    return {"clips": len(clips), "ref_tokens": tokens, "token_error_rate": errors / max(1, tokens),
            "exact_clips": exact, "chunk_ms": chunk_ms}


def throughput(asr: Recognizer, clips: list[np.ndarray], n: int, chunk_ms: int, language: str) -> dict:
    """n engine streams with all their audio available, stepped until done (batch = n).
    Aggregate RTFx = audio seconds / wall seconds; same setting as ``sherpa_runs.throughput``."""
    engine = Engine(asr, EngineConfig(max_batch=n, endpoint_blank_ms=None))
    ids = []
    for i in range(n):
        sid = engine.open(language, chunk_ms)
        engine.accept(sid, clips[i % len(clips)])
        engine.finish(sid)
        ids.append(sid)
    start = time.perf_counter()
    steps = 0
    while engine.has_work():
        engine.step()
        steps += 1
    wall = time.perf_counter() - start
    audio_s = sum(len(clips[i % len(clips)]) for i in range(n)) / SAMPLE_RATE
    return {"impl": "onepass", "chunk_ms": chunk_ms, "streams": n, "audio_s": audio_s, "wall_s": wall,
            "rtfx": audio_s / wall, "batches": steps}


def compare_sherpa(asr: Recognizer, onnx_dir: Path, streams: list[int], seconds: float, language: str,
                   threads: int, seed: int, log: Callable[[str], None]) -> dict:
    """sherpa-onnx and onepass (whatever backend ``asr`` runs) on the same padded clips."""
    chunk_ms = sherpa_runs.chunk_ms_of(onnx_dir)
    rec = sherpa_runs.recognizer(onnx_dir, threads)
    clips = [sherpa_runs.padded(speech_like(seconds, seed + 20 + i)) for i in range(8)]
    warm = sherpa_runs.padded(speech_like(1.5, seed + 2))
    sherpa_runs.stream_run(rec, warm, chunk_ms, language)
    rows = [sherpa_runs.stream_run(rec, clips[0], chunk_ms, language)]
    log(f"sherpa-onnx single stream {chunk_ms} ms: RTFx {rows[-1]['rtfx']:.2f}")
    throughput(asr, [warm], 1, chunk_ms, language)
    for n in streams:
        for impl in ("onepass", "sherpa-onnx"):
            row = (throughput(asr, clips, n, chunk_ms, language) if impl == "onepass"
                   else sherpa_runs.throughput(rec, clips, n, chunk_ms, language))
            rows.append(row)
            log(f"{impl} {n} streams x {seconds:.0f} s at {chunk_ms} ms, unpaced: aggregate RTFx {row['rtfx']:.2f}")
    return {"onnx_dir": str(onnx_dir), "chunk_ms": chunk_ms, "rows": rows}


def format_table(result: dict) -> str:
    lines = []
    if "onnx" in result:
        o = result["onnx"]
        lines.append(f"ONNX backend: quantize {o['quantize']}, files in {o['dir']}")
        for name, size in o.get("files", {}).items():
            lines.append(f"  {name:24s} {size / 1e6:9.1f} MB")
        for a in o.get("agreement", []):
            lines.append(f"  tokens vs fp32 ({a['chunk_ms']} ms offline, {a['clips']} clips, {a['ref_tokens']} tokens): "
                         f"token error rate {100 * a['token_error_rate']:.2f}%, exact clips {a['exact_clips']}")
    if "sherpa_onnx" in result:
        s = result["sherpa_onnx"]
        lines.append(f"sherpa-onnx comparison at {s['chunk_ms']} ms ({s['onnx_dir']}):")
        lines.append(f"  {'impl':12s} {'streams':>7s} {'audio s':>8s} {'wall s':>7s} {'RTFx':>7s}")
        for r in s["rows"]:
            lines.append(f"  {r['impl']:12s} {r.get('streams', 1):7d} {r['audio_s']:8.1f} {r['wall_s']:7.2f} "
                         f"{r['rtfx']:7.2f}")
    return "\n".join(lines)


def prepare(pair, backend: str, quantize: str, export_root: str | None, sherpa: bool, chunk_ms: int,
            threads: int | None, language: str, seed: int, log: Callable[[str], None]) -> tuple[dict, Path | None]:
    """Export what the run needs and, for ``backend="onnxruntime"``, switch ``pair.recognizer``
    to it. Quantized runs also measure token agreement with the fp32 torch model on the same
    weights (fp32 ONNX Runtime is token-identical to it: tests/test_onnx_backend.py)."""
    from ..onnx import to_onnxruntime

    if backend != "onnxruntime" and not sherpa:
        return {}, None
    d, files = export_dir(pair.recognizer, quantize, chunk_ms, export_root, log)
    info = {"quantize": quantize, "dir": str(d), "files": files, "backend": backend}
    if backend == "onnxruntime":
        ref = pair.recognizer
        pair.recognizer = to_onnxruntime(ref, d, threads=threads)
        if quantize != "none":
            clips = [speech_like(6.0, seed + 40 + i) for i in range(4)]
            info["agreement"] = [agreement(ref, pair.recognizer, clips, chunk_ms, language)]
            a = info["agreement"][0]
            log(f"{quantize} vs fp32: token error rate {100 * a['token_error_rate']:.2f}% over {a['ref_tokens']} tokens")
        pair.recognizer.model.release_encoder_weights()  # the torch reference is not used again
    return info, d


def step_breakdown(asr: Recognizer, audio: np.ndarray, chunk_ms: int, batch: int, language: str,
                   steps: int = 6) -> dict:
    """Mean engine step wall time with ``batch`` streams ready, and the share spent inside the
    ONNX Runtime session call (``asr`` on the onnxruntime backend; 0 on torch); the rest is torch."""
    model = asr.model
    spent = [0.0]
    run = None if asr.backend == "torch" else model._run

    def timed(feeds, outs):
        t = time.perf_counter()
        run(feeds, outs)
        spent[0] += time.perf_counter() - t

    if run is not None:
        model._run = timed
    try:
        engine = Engine(asr, EngineConfig(endpoint_blank_ms=None, max_batch=batch))
        for sid in [engine.open(language, chunk_ms) for _ in range(batch)]:
            engine.accept(sid, audio)
        for _ in range(3):
            engine.step()
        spent[0], total = 0.0, 0.0
        for _ in range(steps):
            t = time.perf_counter()
            engine.step()
            total += time.perf_counter() - t
    finally:
        if run is not None:
            del model._run
    return {"chunk_ms": chunk_ms, "streams": batch, "step_ms": 1000 * total / steps,
            "onnxruntime_share": spent[0] / total, "torch_ms": 1000 * (total - spent[0]) / steps}
