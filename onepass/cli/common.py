"""Options shared by the commands that load a model."""

from __future__ import annotations

import argparse

DEFAULT_MODEL = "demo"


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=DEFAULT_MODEL,
                   help="model directory (HF layout), .nemo file, hub id, or 'demo' (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="weights and activations precision (default: %(default)s)")


def load(args: argparse.Namespace):
    from ..checkpoints import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype)
