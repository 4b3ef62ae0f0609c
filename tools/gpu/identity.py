"""Token identity of the target device against the CPU on the tiny NeMo reference models.

The models and NeMo's own token ids are the committed fixtures of tests/test_exact_nemo.py
(tests/fixtures/nemo: loaded without NeMo or transformers, so nothing extra travels to the device).
Offline: every case is transcribed on the CPU (float32, the load_model default) and on the target
(float32, TF32 off); both must equal each other and NeMo's ids. Streaming: every stream case goes
through one Engine on the target at once (all chunk sizes and languages side by side, so rows of
different streams share batches) and must equal NeMo's offline ids, as on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "nemo"
PIECE = 4000  # samples per accept() in the streaming cases


def exact_float32() -> None:
    """fp32 matrix products in full fp32 (no TF32) on every device: the condition for token identity."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def load_cases(limit: int | None) -> tuple[dict, list[dict], list[dict]]:
    refs = json.loads((FIXTURES / "references.json").read_text())
    offline, stream = [], []
    for name in sorted(refs["models"]):
        cases = [c for c in refs["cases"] if c["model"] == name]
        offline += [c for c in cases if c["mode"] == "offline"][:limit]
        stream += [c for c in cases if c["mode"] == "stream"][:limit]
    return refs, offline, stream


def run(part: dict, device: str, limit: int | None, log) -> None:
    import onepass
    from onepass.audio import load_for_model
    from onepass.engine import Engine, EngineConfig

    exact_float32()
    refs, offline, stream = load_cases(limit)
    audio = {p: load_for_model(str(FIXTURES / p))[0] for p in {c["audio"] for c in offline + stream}}
    offline_ref = {(c["model"], c["audio"], c["language"], c["right_context"]): c["token_ids"] for c in offline}
    part.update(device=device, reference="cpu float32 (load_model defaults)",
                target=f"{device} float32, TF32 off" + ("" if device != "cpu" else ", no prepacked weights"),
                models=sorted(refs["models"]), nemo_version=refs.get("nemo_version"))
    rows, mismatches = [], []
    for name in sorted(refs["models"]):
        path = str(FIXTURES / refs["models"][name]["file"])
        cpu = onepass.load_model(path, backend="torch")
        target = onepass.load_model(path, device=device, backend="torch", prepack=False)
        for c in (c for c in offline if c["model"] == name):
            lang = c["language"] if cpu.config.has_prompt else None
            chunk_ms = (c["right_context"] + 1) * 80
            got_cpu = cpu.transcribe_batch([audio[c["audio"]]], language=lang, chunk_ms=chunk_ms)[0].token_ids
            got = target.transcribe_batch([audio[c["audio"]]], language=lang, chunk_ms=chunk_ms)[0].token_ids
            row = dict(model=name, audio=c["audio"], language=c["language"], chunk_ms=chunk_ms,
                       tokens=len(c["token_ids"]), target_eq_cpu=got == got_cpu,
                       cpu_eq_nemo=got_cpu == c["token_ids"], target_eq_nemo=got == c["token_ids"])
            rows.append(row)
            if not (row["target_eq_cpu"] and row["target_eq_nemo"]):
                mismatches.append(dict(row, mode="offline", target_ids=got, cpu_ids=got_cpu, nemo_ids=c["token_ids"]))
        streamed = _stream_all(target, [c for c in stream if c["model"] == name], audio, Engine, EngineConfig)
        for c, got in streamed:
            want = offline_ref.get((c["model"], c["audio"], c["language"], c["right_context"]))
            if want is None:  # the offline case was cut by ``limit``
                continue
            ok = got == want
            rows.append(dict(model=name, audio=c["audio"], language=c["language"], mode="stream",
                             chunk_ms=(c["right_context"] + 1) * 80, tokens=len(want), target_eq_nemo_offline=ok))
            if not ok:
                mismatches.append(dict(rows[-1], target_ids=got, nemo_offline_ids=want))
        log(f"  {name}: {sum(r['model'] == name for r in rows)} cases")
    off = [r for r in rows if "target_eq_cpu" in r]
    st = [r for r in rows if "target_eq_nemo_offline" in r]
    part.update(offline_cases=len(off), offline_target_eq_cpu=sum(r["target_eq_cpu"] for r in off),
                offline_cpu_eq_nemo=sum(r["cpu_eq_nemo"] for r in off),
                offline_target_eq_nemo=sum(r["target_eq_nemo"] for r in off),
                stream_cases=len(st), stream_target_eq_nemo_offline=sum(r["target_eq_nemo_offline"] for r in st),
                tokens_compared=sum(r["tokens"] for r in rows), mismatches=mismatches[:10],
                identical=not mismatches and bool(off))
    if not off:
        part["status"] = "failed: no cases ran"
    elif mismatches:
        part["status"] = f"failed: {len(mismatches)} of {len(rows)} cases differ"


def _stream_all(asr, cases: list[dict], audio: dict, Engine, EngineConfig) -> list[tuple[dict, list[int]]]:
    """Every case as one stream of one engine, fed in pieces, round robin; closed transcripts' ids."""
    engine = Engine(asr, EngineConfig(endpoint_blank_ms=None, max_streams=len(cases) + 8, max_batch=64))
    ids = [engine.open(c["language"] if asr.config.has_prompt else None, (c["right_context"] + 1) * 80)
           for c in cases]
    pos = [0] * len(cases)
    closed: dict[int, list[int]] = {}

    def collect(events):
        for e in events:
            if e.kind == "closed":
                closed[e.stream_id] = list(e.transcript.token_ids)

    while any(p is not None for p in pos):
        for i, c in enumerate(cases):
            if pos[i] is None:
                continue
            samples = np.asarray(audio[c["audio"]], dtype=np.float32)
            engine.accept(ids[i], samples[pos[i]:pos[i] + PIECE])
            pos[i] += PIECE
            if pos[i] >= len(samples):
                engine.finish(ids[i])
                pos[i] = None
        collect(engine.run_until_idle())
    collect(engine.run_until_idle())
    return [(c, closed.get(sid)) for c, sid in zip(cases, ids)]
