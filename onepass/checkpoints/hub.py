"""Hugging Face Hub ids: fetched through huggingface_hub's cache (works offline once cached)."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import OnePassError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HF_FILES = ["config.json", "generation_config.json", "model.safetensors", "model-*.safetensors",
            "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
            "processor_config.json", "preprocessor_config.json"]


def looks_like_hub_id(source: str) -> bool:
    return bool(HUB_ID.match(source))


def fetch_from_hub(repo_id: str) -> Path:
    """Local directory (HF layout) or .nemo file for a hub id, from the cache or the network."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - a declared dependency
        raise OnePassError("huggingface_hub is needed to load models by hub id") from None
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=HF_FILES + ["*.nemo"]))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise OnePassError(
            f"could not get model {repo_id!r} from the Hugging Face Hub or its local cache ({type(exc).__name__}). "
            f"On a machine with internet run `huggingface-cli download {repo_id} --local-dir DIR`, copy DIR "
            f"here and pass --model DIR (or set HF_HOME to a cache that holds it).") from None
    if (path / "config.json").exists() and any(path.glob("*.safetensors")):
        return path
    nemo = sorted(path.glob("*.nemo"))
    if nemo:
        return nemo[0]
    raise OnePassError(f"hub repository {repo_id!r} has neither HF model files nor a .nemo file")
