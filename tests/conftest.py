"""Shared fixtures: tiny reference models built with transformers, test clips."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reference import hf as ref  # noqa: E402

RIGHT_CONTEXTS = (0, 1, 3, 6, 13)


@pytest.fixture(scope="session", autouse=True)
def export_cache(tmp_path_factory):
    """The ONNX export cache (onepass.onnx.cache) of this test session, also for CLI subprocesses."""
    path = tmp_path_factory.mktemp("onepass-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ONEPASS_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def clips() -> dict[str, np.ndarray]:
    return ref.test_clips()


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory) -> str:
    """Nemotron 3.5 layout: 128 mel, left context 56, prompt MLP, byte-fallback vocab."""
    return ref.build_hf_model(tmp_path_factory.mktemp("hf35") / "model", seed=0)


@pytest.fixture(scope="session")
def hf_en_dir(tmp_path_factory) -> str:
    """English-sibling layout: left context 70, no prompt."""
    return ref.build_hf_model(tmp_path_factory.mktemp("hfen") / "model", seed=1, with_prompt=False,
                              left_context=70, right_contexts=(13, 6, 1, 0))


@pytest.fixture(scope="session")
def asr(hf_dir):
    import onepass

    return onepass.load_model(hf_dir)


@pytest.fixture(scope="session")
def asr_en(hf_en_dir):
    import onepass

    return onepass.load_model(hf_en_dir)


def stream_in_pieces(asr, audio, language, chunk_ms, seed=0, max_piece=4000, sample_rate=16000):
    """Feed audio to a streaming session in random-sized pieces; return (final transcript, updates)."""
    rng = np.random.default_rng(seed)
    session = asr.stream(language=language, chunk_ms=chunk_ms)
    updates, pos = [], 0
    while pos < len(audio):
        n = int(rng.integers(1, max_piece))
        updates.append(session.accept(audio[pos:pos + n], sample_rate))
        pos += n
    final = session.finish()
    updates.append(session.last_update)
    return final, updates
