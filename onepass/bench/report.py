"""The benchmark's goals, its table and its JSON object."""

from __future__ import annotations

from dataclasses import asdict

# Issue goals (real size, fp32, ratio to transformers in the same run).
STREAM_RATIO_GOALS = {560: 3.0, 80: 1.5}  # single-stream streaming RTFx ratio
CAPACITY_GOALS = {560: 6, 160: 2}  # real-time streams
OFFLINE_RATIO_GOAL = 1.8


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def goals(result: dict) -> list[dict]:
    """Each goal with its target, what was measured and whether it is met (None: not measured)."""
    out = []
    streams = {(s["impl"], s["chunk_ms"]): s for s in result["streams"]}
    for chunk, target in STREAM_RATIO_GOALS.items():
        ours, theirs = streams.get(("onepass", chunk)), streams.get(("transformers", chunk))
        ratio = _ratio(ours and ours["rtfx"], theirs and theirs["rtfx"])
        out.append({"goal": f"single stream {chunk} ms: >= {target}x transformers", "target": target,
                    "measured": ratio, "met": None if ratio is None else ratio >= target})
    caps = {(c["impl"], c["chunk_ms"]): c for c in result["capacity"] if "staggered" in c["mode"]}
    for chunk, target in CAPACITY_GOALS.items():
        ours = caps.get(("onepass", chunk))
        got = ours["streams"] if ours else None
        out.append({"goal": f"capacity {chunk} ms: >= {target} real-time streams", "target": target,
                    "measured": got, "met": None if got is None else got >= target})
    off = {o["impl"]: o for o in result["offline"]}
    ratio = _ratio(off.get("onepass", {}).get("rtfx"), off.get("transformers", {}).get("rtfx"))
    out.append({"goal": f"offline: >= {OFFLINE_RATIO_GOAL}x transformers generate", "target": OFFLINE_RATIO_GOAL,
                "measured": ratio, "met": None if ratio is None else ratio >= OFFLINE_RATIO_GOAL})
    return out


def to_json(model: dict, machine: dict, config, streams, offline, capacity, memory, wall_s: float) -> dict:
    result = {"model": model, "machine": machine, "config": asdict(config),
              "streams": [asdict(s) for s in streams], "offline": [asdict(o) for o in offline],
              "capacity": [asdict(c) for c in capacity], "memory": asdict(memory) if memory else None,
              "wall_s": round(wall_s, 1)}
    result["ratios"] = ratios(result)
    result["goals"] = goals(result)
    return result


def ratios(result: dict) -> dict:
    """onepass / transformers, per measurement."""
    out: dict = {}
    streams = {(s["impl"], s["chunk_ms"]): s["rtfx"] for s in result["streams"]}
    for (impl, chunk), rtfx in streams.items():
        if impl == "onepass" and ("transformers", chunk) in streams:
            out[f"stream_{chunk}ms"] = _ratio(rtfx, streams[("transformers", chunk)])
    off = {o["impl"]: o["rtfx"] for o in result["offline"]}
    if len(off) == 2:
        out["offline"] = _ratio(off["onepass"], off["transformers"])
    caps = {(c["impl"], c["chunk_ms"], c["mode"].split(", ")[-1]): c["streams"] for c in result["capacity"]}
    for (impl, chunk, mode), n in caps.items():
        theirs = caps.get(("transformers", chunk, "aligned starts"))
        if impl == "onepass" and theirs is not None:
            out[f"capacity_{chunk}ms_{mode.split()[0]}"] = f"{n} vs {theirs} (transformers aligned)"
    return out


def table(result: dict) -> str:
    """Plain-text tables (Markdown-compatible)."""
    m, hw = result["model"], result["machine"]
    lines = [f"onepass bench: {m['description']} ({m['parameters'] / 1e6:.1f}M parameters, fp32)",
             f"machine: {hw.get('cpu')}, {hw.get('cores')} cores, {hw.get('threads')} torch threads, "
             f"load average {hw.get('load_average')} (start) -> {hw.get('load_average_end')} (end)"]
    if m.get("emission_rate") is not None:
        lines.append(f"calibrated emission rate: {m['emission_rate']:.2f} tokens per encoder frame")
    has_hf = any(s["impl"] == "transformers" for s in result["streams"])
    streams = {(s["impl"], s["chunk_ms"]): s for s in result["streams"]}
    chunks = sorted({s["chunk_ms"] for s in result["streams"]})
    lines += ["", "Single stream, cache-aware streaming (RTFx = audio s / wall s; higher is better)", ""]
    head = "| chunk | onepass RTFx | step p50 / p95 (ms) |"
    lines += [head + (" transformers RTFx | ratio |" if has_hf else ""),
              "|---|---|---|" + ("---|---|" if has_hf else "")]
    for c in chunks:
        o = streams.get(("onepass", c))
        row = f"| {c} ms | {o['rtfx']:.2f} | {o['step_p50_ms']:.0f} / {o['step_p95_ms']:.0f} |" if o else f"| {c} ms | - | - |"
        if has_hf:
            t = streams.get(("transformers", c))
            row += (f" {t['rtfx']:.2f} | {_ratio(o and o['rtfx'], t['rtfx']) or '-'}x |" if t else " - | - |")
        lines.append(row)
    if result["capacity"]:
        lines += ["", "Capacity: real-time streams (p95 chunk latency <= chunk, no stream > 2 chunks behind)", "",
                  "| chunk | implementation | mode | streams | p95 latency at that N | trials |", "|---|---|---|---|---|---|"]
        for c in result["capacity"]:
            at = next((t for t in c["trials"] if t["streams"] == c["streams"]), None)
            p95 = f"{at['latency_p95_ms']:.0f} ms (last result {at['final_latency_ms']:.0f} ms)" if at else "-"
            tried = ", ".join(f"{t['streams']}{'+' if t['passed'] else '-'}" for t in c["trials"])
            n = f"{c['streams']}" + ("" if c["complete"] else " (budget hit)")
            lines.append(f"| {c['chunk_ms']} ms | {c['impl']} | {c['mode']} | {n} | {p95} | {tried} |")
    if result["offline"]:
        lines += ["", "Offline file (features + encoder + greedy decoding)", "",
                  "| implementation | audio | attention chunk | RTFx | tokens |", "|---|---|---|---|---|"]
        for o in result["offline"]:
            lines.append(f"| {o['impl']} | {o['audio_s']:.0f} s | {o['chunk_ms']} ms | {o['rtfx']:.2f} | {o['tokens']} |")
    mem = result["memory"]
    if mem:
        lines += ["", f"Memory: RSS {mem['base_mb']:.0f} MB with one stream; +{mem['per_stream_mb']:.1f} MB per extra "
                  f"open stream ({mem['streams']} opened; model state {mem['state_mb']:.1f} MB per stream); "
                  f"{mem['cycles']} open/close cycles: {mem['cycle_rss_mb'][0]:.0f} -> {mem['cycle_rss_mb'][-1]:.0f} MB "
                  f"({mem['cycle_growth_mb']:+.0f} MB)"]
    if result.get("ratios"):
        lines += ["", "onepass / transformers: " + ", ".join(f"{k} {v}" for k, v in result["ratios"].items())]
    lines += ["", "Goals:"]
    for g in result["goals"]:
        mark = {True: "met", False: "NOT met", None: "not measured"}[g["met"]]
        lines.append(f"  {g['goal']}: measured {g['measured']} -> {mark}")
    lines.append(f"\nwall time {result['wall_s']:.0f} s")
    return "\n".join(lines)
