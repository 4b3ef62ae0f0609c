"""Options shared by the commands that load a model."""

from __future__ import annotations

import argparse
import sys
import traceback

from ..onnx import BACKENDS

DEFAULT_MODEL = "demo"


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=DEFAULT_MODEL,
                   help="model directory (HF layout), .nemo file, hub id, or 'demo' (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="weights and activations precision (default: %(default)s)")
    p.add_argument("--decoder-dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="precision of the prediction net and joint (default: float32 next to a bfloat16 or "
                        "float16 --dtype, which keeps token agreement with float32 higher; else --dtype)")
    p.add_argument("--tf32", action="store_true",
                   help="CUDA float32: allow TF32 matrix products and convolutions (faster; not bit-exact, so off "
                        "by default)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="where the encoder runs (default: %(default)s = onnxruntime for float32 on the CPU, "
                        "faster there with the same token ids, its graph exported once into ~/.cache/onepass "
                        "or $ONEPASS_CACHE_DIR; torch otherwise)")
    p.add_argument("--onnx-dir", default=None,
                   help="with --backend onnxruntime: files from `onepass export` (default: the export cache)")
    p.add_argument("--quantize", default="none", choices=["none", "int8", "int4"],
                   help="with --backend onnxruntime and no --onnx-dir: encoder weight format (default: %(default)s)")
    p.add_argument("--beam", type=int, default=1, metavar="K",
                   help="hypotheses per stream: 1 = greedy decoding, NeMo's, token for token (default); 2 to 16 = "
                        "beam search (slower; more accurate, hotwords above all)")


def load(args: argparse.Namespace):
    from .. import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype, backend=getattr(args, "backend", "torch"),
                      onnx_dir=getattr(args, "onnx_dir", None), quantize=getattr(args, "quantize", "none"),
                      decoder_dtype=getattr(args, "decoder_dtype", None), tf32=getattr(args, "tf32", False),
                      beam=getattr(args, "beam", 1))


def report_bug(exc: BaseException, debug: bool, context: str = "") -> None:
    """An unexpected error (not a ``OnePassError``): one line on stderr, the traceback with --debug."""
    where = f"{context}: " if context else ""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    hint = "" if debug else "; run with --debug for the traceback"
    print(f"onepass: error: {where}{type(exc).__name__}: {exc} (this is a bug in onepass{hint})", file=sys.stderr)
