"""The demo model card's tables from eval_all.sh's results.jsonl (markdown), with an earlier run's
numbers in brackets when a second results file is given.

    python -m tools.demo_model.eval_table OUT/results.jsonl [BASELINE/results.jsonl]
"""

from __future__ import annotations

import json
import sys

LANGS = ("en-US", "es-ES", "de-DE")


def load(path: str) -> dict[str, dict]:
    return {r["row"]: r for r in map(json.loads, open(path, encoding="utf-8")) if r.get("row")}


def pct(row: dict | None, lang: str | None = None, key: str = "wer") -> float | None:
    if row is None:
        return None
    src = row if lang is None else row.get("languages", {}).get(lang)
    return None if src is None or key not in src else 100 * src[key]


def cell(now: float | None, then: float | None) -> str:
    if now is None:
        return "-"
    return f"{now:.1f} %" + (f" ({then:.1f})" if then is not None else "")


def main() -> None:
    res = load(sys.argv[1])
    base = load(sys.argv[2]) if len(sys.argv) > 2 else {}
    print("| chunk | mode | all | en-US | es-ES | de-DE | cased, all | RTFx |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    names = [f"{m} {c}" for c in (1120, 560, 160, 80) for m in ("offline", "stream")]
    names += ["auto offline 1120", "auto stream 80", "torch offline 1120", "train50 base", "train50 wide"]
    for name in names:
        r, b = res.get(name), base.get(name)
        if r is None:
            continue
        words = name.split()
        chunk = f"{words[-1]} ms" + (", `auto`" if words[0] == "auto" else "") if words[-1].isdigit() else name
        mode = words[-2] if words[-1].isdigit() else "offline"
        mode += ", torch" if words[0] == "torch" else ""
        cols = [cell(pct(r), pct(b))] + [cell(pct(r, lang), pct(b, lang)) for lang in LANGS]
        cols.append(cell(pct(r, key="wer_cased_punctuated"), pct(b, key="wer_cased_punctuated")))
        print(f"| {chunk} | {mode} | " + " | ".join(cols) + f" | {r['rtfx']:.0f} |")
    if "none offline 1120" in res:
        print()
        print("| encoder weights | onepass_core.onnx | stream 1120 ms | stream 160 ms | offline 1120 ms | delta vs fp32 (worst) |")
        print("|---|---|---|---|---|---|")
        cols = ("stream 1120", "stream 160", "offline 1120")
        ref = [pct(res.get(f"none {c}")) for c in cols]
        for q in ("none", "int8", "int4"):
            vals = [pct(res.get(f"{q} {c}")) for c in cols]
            if None in vals:
                continue
            deltas = [v - r for v, r in zip(vals, ref)]
            size = res.get(f"size {q}", {}).get("bytes", 0) / 1e6
            delta = "-" if q == "none" else f"**{max(deltas):+.2f}** (" + ", ".join(f"{d:+.2f}" for d in deltas) + ")"
            print(f"| {q} | {size:.1f} MB | " + " | ".join(f"{v:.2f} %" for v in vals) + f" | {delta} |")


if __name__ == "__main__":
    main()
