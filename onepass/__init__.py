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
               threads=None, prepack=None, decoder_dtype=None, tf32=False, beam=1):
    """Load a Nemotron streaming ASR model (see ``onepass.checkpoints.load_model``).
    ``backend="onnxruntime"`` runs the encoder in ONNX Runtime (``onepass.onnx.to_onnxruntime``:
    ``onnx_dir`` from ``onepass export``, else exported with ``quantize`` none/int8/int4 once into
    the export cache). ``backend="auto"`` (the CLI default): onnxruntime for float32 on the CPU
    (faster there, same token ids; see docs/benchmarks.md), torch otherwise.
    ``prepack`` (torch backend; default on for float32 on the CPU): oneDNN-prepacked weights.
    ``decoder_dtype``: the prediction net's and joint's dtype (default: float32 next to a 16-bit
    ``dtype``, else ``dtype``). ``tf32``: on CUDA, let float32 matrix products and convolutions use
    TF32 (faster, not bit-exact; off by default). ``beam``: hypotheses per stream; 1 (the default) is
    greedy decoding, NeMo's, token for token; more is beam search (``onepass.decoding.beam``: slower,
    often more accurate, and what makes hotwords work best; docs/hotwords.md)."""
    from .checkpoints import load_model as _load

    backend = resolve_backend(backend, device, dtype, quantize, onnx_dir)
    asr = _load(source, device=device, dtype=dtype, prepack=prepack if backend == "torch" else False,
                decoder_dtype=decoder_dtype, tf32=tf32)
    if backend == "onnxruntime":
        from .onnx import to_onnxruntime

        asr = to_onnxruntime(asr, onnx_dir=onnx_dir, quantize=quantize, threads=threads, release=True)
    if beam != 1:
        from dataclasses import replace

        asr.configure_step(replace(asr.model_step.config, beam=beam))
    return asr


def resolve_backend(backend: str, device: str = "cpu", dtype: str = "float32", quantize: str = "none",
                    onnx_dir=None) -> str:
    """``auto`` -> onnxruntime (float32 on the CPU) or torch; checks the other names."""
    from .onnx import BACKENDS

    if backend not in BACKENDS:
        raise OnePassError(f"unknown backend {backend!r}; use {', '.join(BACKENDS)}")
    on_cpu_fp32 = str(device).split(":")[0] == "cpu" and str(dtype).replace("torch.", "") == "float32"
    if backend == "auto":
        if on_cpu_fp32:
            return "onnxruntime"
        if quantize != "none" or onnx_dir is not None:
            raise OnePassError("--quantize and --onnx-dir need the onnxruntime backend (float32 on the CPU)")
        return "torch"
    if backend == "torch" and (quantize != "none" or onnx_dir is not None):
        raise OnePassError("--quantize and --onnx-dir are for the onnxruntime backend, not torch")
    return backend


__all__ = ["load_model", "resolve_backend", "OnePassError", "Transcript", "Word", "StreamUpdate", "__version__"]
