"""Where the time of one engine step goes: wall time per model part (forward hooks) and the
top torch operators (torch.profiler)."""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import torch

from ..engine import Engine, EngineConfig
from ..recognizer import Recognizer
from .engine_runs import packet_samples

PARTS = {  # module path suffix -> part name
    "encoder.subsampling": "subsampling",
    "feed_forward1": "feed-forward (x2)", "feed_forward2": "feed-forward (x2)",
    "self_attn": "attention", "conv": "conv module",
    "prompt_projector": "prompt MLP", "encoder_projector": "encoder projection",
    "decoder": "prediction net", "joint": "joint",
}


def _ready_engine(asr: Recognizer, audio: np.ndarray, chunk_ms: int, batch: int, language: str):
    engine = Engine(asr, EngineConfig(endpoint_blank_ms=None, max_batch=batch))
    size = packet_samples(chunk_ms)
    ids = [engine.open(language, chunk_ms) for _ in range(batch)]
    for k in range(3):  # two warm steps, then one with a full batch ready
        for i, sid in enumerate(ids):
            engine.accept(sid, audio[(k + i) * size:(k + i + 1) * size])
        if k < 2:
            engine.step()
    return engine


def profile_step(asr: Recognizer, audio: np.ndarray, chunk_ms: int, batch: int, language: str,
                 top: int = 12) -> dict:
    """Profile one batched step of ``batch`` streams at ``chunk_ms``; returns parts and operators."""
    model = asr.model
    engine = _ready_engine(asr, audio, chunk_ms, batch, language)
    spent: dict[str, float] = defaultdict(float)
    starts: dict[str, float] = {}
    hooks = []
    for name, module in model.named_modules():
        part = next((p for suffix, p in PARTS.items() if name == suffix or name.endswith("." + suffix)), None)
        if part is None and ".layers." in name and name.split(".")[-1].startswith("norm_"):
            part = "layer norms"
        if part is None:
            continue

        def pre(_m, _a, key=name):
            starts[key] = time.perf_counter()

        def post(_m, _a, _o, key=name, part=part):
            spent[part] += time.perf_counter() - starts.pop(key)

        hooks += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        t = time.perf_counter()
        engine.step()
        step_s = time.perf_counter() - t
    finally:
        for h in hooks:
            h.remove()
    engine = _ready_engine(asr, audio, chunk_ms, batch, language)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        engine.step()
    ops = []
    for e in sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)[:top]:
        ops.append({"op": e.key, "shapes": str(e.input_shapes)[:80], "calls": e.count,
                    "self_ms": round(e.self_cpu_time_total / 1000, 2)})
    total_ops = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1000
    parts = {k: round(1000 * v, 2) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}
    parts["other (engine, gather/scatter, masks, greedy loop)"] = round(1000 * step_s - sum(parts.values()), 2)
    return {"chunk_ms": chunk_ms, "batch": batch, "step_ms": round(1000 * step_s, 2), "parts_ms": parts,
            "profiled_ops_ms": round(total_ops, 2), "top_ops": ops}


def format_profile(p: dict) -> str:
    lines = [f"profile: one step, {p['batch']} stream(s) x {p['chunk_ms']} ms: {p['step_ms']:.1f} ms"]
    lines += [f"  {k:52s} {v:8.1f} ms  {100 * v / p['step_ms']:5.1f}%" for k, v in p["parts_ms"].items()]
    lines.append(f"  top operators (self time, profiled step {p['profiled_ops_ms']:.1f} ms):")
    lines += [f"    {o['self_ms']:8.2f} ms  {o['calls']:4d}x  {o['op']}  {o['shapes']}" for o in p["top_ops"]]
    return "\n".join(lines)
