"""Encoder exports for the ONNX Runtime backend, made once per model and kept in a cache directory.

``--backend auto`` (the CLI default) runs the encoder in ONNX Runtime on the CPU. Exporting the
real-size encoder takes ~40 s, so the graph is written once into
``$ONEPASS_CACHE_DIR`` (default ``$XDG_CACHE_HOME/onepass`` or ``~/.cache/onepass``) under
``onnx/<key>``, where the key hashes the model's configuration, all of its weights, the export
settings and the onepass version; later runs load it directly. A directory appears only
complete (exported into a temporary name, then renamed), so concurrent processes are safe.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .. import __version__
from ..recognizer import Recognizer
from .export import CORE_FILE, CORE_FORMAT, MANIFEST, ExportSettings, export_onnx

CACHE_ENV = "ONEPASS_CACHE_DIR"


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "onepass" / "onnx"


def export_key(asr: Recognizer, settings: ExportSettings) -> str:
    """Hash of what the exported core depends on: config, every weight byte, settings, version
    (sha256, ~1.3 GB/s here: about 2 s for the real-size model, a sampled hash could miss a changed
    weight and serve a stale graph)."""
    h = hashlib.sha256()
    h.update(f"{__version__}|{CORE_FORMAT}|{asr.config!r}|{settings!r}".encode())
    with torch.no_grad():
        for name, t in sorted(asr.model.state_dict().items()):
            h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
            if t.numel():
                h.update(memoryview(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()[:24]


def cached_export(asr: Recognizer, quantize: str = "none") -> Path:
    """The directory of an encoder-core export of ``asr`` (made now if the cache has none).
    Raises OSError when the cache directory cannot be written."""
    settings = ExportSettings(quantize=quantize, sherpa=False)
    root = cache_root()
    final = root / export_key(asr, settings)
    if (final / CORE_FILE).exists() and (final / MANIFEST).exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    try:
        export_onnx(asr, tmp, settings)
        try:
            tmp.rename(final)
        except OSError:  # another process finished the same export first
            if not (final / CORE_FILE).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
