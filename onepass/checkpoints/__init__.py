"""Load a model from an HF directory, a ``.nemo`` archive or a Hugging Face Hub id."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import OnePassError
from ..recognizer import ModelInfo, Recognizer
from .demo import demo_path
from .hf import load_hf_dir
from .hub import fetch_from_hub, looks_like_hub_id
from .nemo import load_nemo
from .weights import build_model

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def load_model(source: str | Path, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32",
               prepack: bool | None = None, decoder_dtype: str | torch.dtype | None = None,
               tf32: bool = False) -> Recognizer:
    """Load a model: a directory (config.json + model.safetensors + tokenizer.json +
    processor_config.json), a ``.nemo`` file, or a hub id such as
    ``nvidia/nemotron-3.5-asr-streaming-0.6b``.

    ``dtype``: the network's weights and state (the front end always computes in float32);
    ``decoder_dtype``: the prediction net's and joint's (default: float32 next to a bfloat16 or
    float16 network, which keeps token agreement with float32 higher; ``NemotronASR.cast``).
    ``tf32``: on CUDA, float32 matrix products and convolutions may use TF32 (faster, not
    bit-exact). Off by default: this sets torch's process-wide switches for both, since cuDNN's
    default lets convolutions use TF32 even where matrix products do not.
    ``prepack`` (default: on for float32 on the CPU) reorders the weights once for oneDNN
    (``NemotronASR.prepack``): faster streaming GEMMs for a second copy of the weights in memory."""
    dtype = _dtype(dtype)
    decoder_dtype = _dtype(decoder_dtype) if decoder_dtype is not None else None
    if str(source) == "demo":
        found = demo_path()
        if found is None:
            raise OnePassError("the demo model is not included in this installation; pass --model with a "
                               "model directory, a .nemo file or a hub id")
        source = found
    path = Path(source).expanduser()
    fmt = None
    if path.is_dir():
        if (path / "config.json").exists():
            fmt = "hf"
        else:
            nemo_files = sorted(path.glob("*.nemo"))
            if len(nemo_files) == 1:
                path, fmt = nemo_files[0], "nemo"
            else:
                raise OnePassError(f"{path} is a directory without config.json (Hugging Face layout) "
                                   "or a single .nemo file")
    elif path.is_file():
        fmt = "nemo"
    elif looks_like_hub_id(str(source)):
        path = fetch_from_hub(str(source))
        fmt = "hf" if path.is_dir() else "nemo"
    else:
        raise OnePassError(f"model {str(source)!r} not found: give a model directory, a .nemo file "
                           "or a Hugging Face Hub id (org/name)")
    loaded = load_hf_dir(path) if fmt == "hf" else load_nemo(path)
    model = build_model(loaded, str(path))
    try:
        model = model.to(device=device).cast(dtype, decoder_dtype)  # the front end stays float32
    except (RuntimeError, AssertionError) as exc:
        raise OnePassError(f"cannot move the model to {device}: {exc}") from None
    model.encoder.clear_tables()
    if model.joint.head.weight.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    if prepack is None:
        prepack = model.joint.head.weight.device.type == "cpu" and dtype == torch.float32
    if prepack:
        model.prepack()
    info = ModelInfo(source=str(source), path=str(path), format=fmt, name=loaded.config.name)
    return Recognizer(model, loaded.tokenizer, info)


def _dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    if name not in DTYPES:
        raise OnePassError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[name]
