"""onepass: exact cache-aware streaming speech recognition for NVIDIA Nemotron ASR models.

    import onepass
    asr = onepass.load_model("path/to/model")          # HF dir, .nemo file or hub id
    result = asr.transcribe("speech.wav", language="en-US")
    session = asr.stream(language="de", chunk_ms=560)   # push-style streaming
"""

from .errors import OnePassError
from .results import StreamUpdate, Transcript, Word

__version__ = "0.1.0"


def load_model(source, device="cpu", dtype="float32", backend="torch", onnx_dir=None, quantize="none",
               threads=None, prepack=None):
    """Load a Nemotron streaming ASR model (see ``onepass.checkpoints.load_model``).
    ``backend="onnxruntime"`` runs the encoder in ONNX Runtime (``onepass.onnx.to_onnxruntime``:
    ``onnx_dir`` from ``onepass export``, else exported now with ``quantize`` none/int8/int4).
    ``prepack`` (torch backend; default on for float32 on the CPU): oneDNN-prepacked weights."""
    from .checkpoints import load_model as _load

    asr = _load(source, device=device, dtype=dtype, prepack=prepack if backend == "torch" else False)
    if backend == "onnxruntime":
        from .onnx import to_onnxruntime

        return to_onnxruntime(asr, onnx_dir=onnx_dir, quantize=quantize, threads=threads, release=True)
    if backend != "torch":
        raise OnePassError(f"unknown backend {backend!r}; use torch or onnxruntime")
    return asr


__all__ = ["load_model", "OnePassError", "Transcript", "Word", "StreamUpdate", "__version__"]
