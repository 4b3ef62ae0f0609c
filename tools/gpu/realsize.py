"""Real-size random-weight models (``onepass.bench.factory``), moved to the device under test.

The factory builds on the CPU in float32 (transformers makes the tensors; onepass shares them) and
calibrates the joint to a speech-like emission rate; copies then go to the device in each dtype.
"""

from __future__ import annotations

import copy

import torch


def build(preset: str, seed: int = 0):
    """(CPU float32 Recognizer, description) of a calibrated random-init model."""
    from onepass.bench.factory import random_pair

    pair = random_pair(preset, with_hf=False, seed=seed)
    return pair.recognizer, dict(description=pair.description, parameters=pair.parameters,
                                 emission_rate=pair.emission_rate)


def moved(asr, device: str, dtype: torch.dtype):
    """A copy of ``asr`` on ``device`` in ``dtype`` (``onepass.bench.factory.place``: the front end
    stays float32, encoder tables are rebuilt on the device); the CPU original is kept."""
    from onepass.bench.factory import place
    from onepass.recognizer import Recognizer

    copy_ = Recognizer(copy.deepcopy(asr.model), asr.tokenizer, asr.info)
    place(copy_, device, str(dtype).replace("torch.", ""))
    return copy_
