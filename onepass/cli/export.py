"""``onepass export``: write ONNX files (sherpa-onnx contract + onepass backend graph)."""

from __future__ import annotations

import argparse
import sys

from .common import DEFAULT_MODEL


def add_parser(sub) -> None:
    p = sub.add_parser("export", allow_abbrev=False, help="export the model to ONNX (sherpa-onnx compatible)",
                       description="Export to ONNX: encoder.onnx (one chunk size, explicit caches, dynamic "
                                   "batch), decoder.onnx, joiner.onnx, tokens.txt for sherpa-onnx, and "
                                   "onepass_core.onnx for `--backend onnxruntime`.")
    p.add_argument("--model", "-m", default=DEFAULT_MODEL,
                   help="model directory (HF layout), .nemo file, hub id, or 'demo' (default: %(default)s)")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: %(default)s)")
    p.add_argument("--quantize", choices=["none", "int8", "int4"], default="none",
                   help="encoder weights: none (fp32), int8 (dynamic, per channel), int4 (MatMulNBits)")
    p.add_argument("--int4-block-size", type=int, default=None,
                   help="int4 weights per scale (default: 32, or 16 for encoders narrower than 512)")
    p.add_argument("--int8-weights", choices=["s7", "u8", "s8"], default="s7",
                   help="int8 weight type: s7 (signed in 7 bits, any x86; default), u8 (any x86; more "
                        "accurate, slower) or s8 (VNNI or ARM CPUs only)")
    p.add_argument("--out", "-o", required=True, help="output directory (created)")
    p.add_argument("--chunk-ms", type=int, default=None,
                   help="chunk size of the sherpa-onnx encoder (default: the model's default)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import load_model
    from ..onnx.export import ExportSettings, export_onnx

    asr = load_model(args.model)
    result = export_onnx(asr, args.out, ExportSettings(chunk_ms=args.chunk_ms, quantize=args.quantize,
                                                       int4_block_size=args.int4_block_size,
                                                       int8_weights=args.int8_weights))
    for name, size in result.files.items():
        print(f"{size / 1e6:10.1f} MB  {result.out_dir}/{name}")
    print(f"chunk {result.chunk_ms} ms, quantization {result.quantize}", file=sys.stderr)
    return 0
