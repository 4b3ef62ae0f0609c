"""onepass: exact cache-aware streaming speech recognition for NVIDIA Nemotron ASR models.

    import onepass
    asr = onepass.load_model("path/to/model")          # HF dir, .nemo file or hub id
    result = asr.transcribe("speech.wav", language="en-US")
    session = asr.stream(language="de", chunk_ms=560)   # push-style streaming
"""

from .errors import OnePassError
from .results import StreamUpdate, Transcript, Word

__version__ = "0.1.0"


def load_model(source, device="cpu", dtype="float32"):
    """Load a Nemotron streaming ASR model (see ``onepass.checkpoints.load_model``)."""
    from .checkpoints import load_model as _load

    return _load(source, device=device, dtype=dtype)


__all__ = ["load_model", "OnePassError", "Transcript", "Word", "StreamUpdate", "__version__"]
