"""``onepass models`` and ``onepass info MODEL``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_model_options, load

KNOWN = [
    ("nvidia/nemotron-3.5-asr-streaming-0.6b", "Nemotron 3.5 ASR: 40 locales + auto, 80-1120 ms chunks"),
    ("nvidia/nemotron-speech-streaming-en-0.6b", "English sibling: no language prompt, 80-1120 ms chunks"),
]


def add_parsers(sub) -> None:
    p = sub.add_parser("models", allow_abbrev=False, help="list models this machine can use")
    p.set_defaults(run=run_models)
    p = sub.add_parser("info", allow_abbrev=False, help="show languages, chunk sizes and size of a model")
    p.add_argument("target", nargs="?", default=None, metavar="MODEL",
                   help="model directory, .nemo file, hub id or 'demo' (same as --model)")
    add_model_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_info)


def run_models(args: argparse.Namespace) -> int:
    from ..checkpoints.demo import demo_path

    demo = demo_path()
    print(f"{'demo':45s} {'shipped' if demo else 'not shipped'}: small model bundled with onepass")
    cached = _hub_cache()
    for repo, desc in KNOWN:
        print(f"{repo:45s} {'cached' if repo in cached else 'not cached'}: {desc}")
    for repo in sorted(cached - {r for r, _ in KNOWN}):
        print(f"{repo:45s} cached")
    return 0


def _hub_cache() -> set[str]:
    try:
        from huggingface_hub import scan_cache_dir

        return {r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model"
                and "nemotron" in r.repo_id.lower()}
    except Exception:  # no cache directory yet, or an unreadable one: nothing cached
        return set()


def run_info(args: argparse.Namespace) -> int:
    if args.target:
        args.model = args.target
    # describes the checkpoint itself (the onnxruntime backend frees the torch encoder weights)
    args.backend, args.quantize, args.onnx_dir = "torch", "none", None
    d = describe(load(args))
    print(json.dumps(d, indent=2) if args.json else _text(d))
    return 0


def describe(asr) -> dict:
    cfg = asr.config
    params = sum(p.numel() for p in asr.model.parameters())
    path = Path(asr.info.path)
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    return {
        "name": cfg.name, "source": asr.info.source, "path": asr.info.path, "format": asr.info.format,
        "parameters": params, "size_bytes": disk, "vocab_size": cfg.vocab_size,
        "languages": asr.languages(), "default_language": cfg.default_language,
        "chunk_ms": list(cfg.supported_chunk_ms()),
        "trained_chunk_ms": sorted((r + 1) * 80 for r in cfg.encoder.right_contexts),
        "left_context_frames": cfg.encoder.left_context,
        "encoder": {"layers": cfg.encoder.num_layers, "hidden": cfg.encoder.hidden_size,
                    "heads": cfg.encoder.num_heads, "mel_bins": cfg.encoder.input_size},
    }


def _text(d: dict) -> str:
    langs = d["languages"]
    return "\n".join([
        f"model:       {d['name']} ({d['format']}, {d['path']})",
        f"parameters:  {d['parameters'] / 1e6:.1f} M, {d['size_bytes'] / 1e6:.1f} MB on disk",
        f"encoder:     {d['encoder']['layers']} layers x {d['encoder']['hidden']}, "
        f"{d['encoder']['mel_bins']} mel bins, left context {d['left_context_frames']} frames",
        f"chunk sizes: {', '.join(f'{c} ms' for c in d['chunk_ms'])} "
        f"(trained: {', '.join(f'{c} ms' for c in d['trained_chunk_ms'])})",
        f"languages:   {len(langs)}: {', '.join(langs)}",
        f"default:     {d['default_language']}",
    ])
