"""ONNX: export (sherpa-onnx files and onepass's backend graph) and the ONNX Runtime backend."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import OnePassError

BACKENDS = ("auto", "torch", "onnxruntime")


def to_onnxruntime(asr, onnx_dir: str | Path | None = None, quantize: str = "none", threads: int | None = None,
                   release: bool = False):
    """A Recognizer on the same weights whose encoder runs in ONNX Runtime. ``onnx_dir``: a
    directory written by ``onepass export --format onnx`` (its quantization is used); None:
    the encoder graph exported with ``quantize`` (none, int8, int4) into the export cache
    (``onepass.onnx.cache``: once per model), or into a temporary directory where the cache
    cannot be written.
    The torch model is shared with ``asr``; ``release=True`` frees its encoder weights (then
    ``asr`` itself can no longer encode)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise OnePassError("the onnxruntime backend needs `pip install onnxruntime onnx`") from None
    from ..recognizer import Recognizer
    from .backend import OrtModel, OrtSettings, core_path_for
    from .cache import cached_export
    from .export import ExportSettings, export_onnx

    keep = None
    if onnx_dir is None:
        try:
            onnx_dir = cached_export(asr, quantize)
        except OSError:
            keep = tempfile.TemporaryDirectory(prefix="onepass-onnx-")
            export_onnx(asr, keep.name, ExportSettings(quantize=quantize, sherpa=False))
            onnx_dir = keep.name
    model = OrtModel(asr.model, core_path_for(onnx_dir), OrtSettings(threads=threads))
    model.export_dir = keep  # the temporary export lives as long as the model
    if release:
        model.release_encoder_weights()
    return Recognizer(model, asr.tokenizer, asr.info)


__all__ = ["BACKENDS", "to_onnxruntime"]
