"""The shipped demo model loads in onepass and in transformers, with identical token ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

import onepass
from onepass.checkpoints.demo import demo_path

SAMPLES = Path(onepass.__file__).parent / "assets" / "samples"


def test_demo_is_the_default_and_is_shipped():
    assert demo_path() is not None
    asr = onepass.load_model("demo")
    assert asr.config.has_prompt and {"en-US", "es-ES", "de-DE"} <= set(asr.languages())


@pytest.mark.parametrize("r", [0, 13])
def test_demo_matches_transformers(r):
    from transformers import AutoModelForRNNT, AutoProcessor

    asr = onepass.load_model("demo")
    processor = AutoProcessor.from_pretrained(demo_path())
    model = AutoModelForRNNT.from_pretrained(demo_path()).eval()
    meta = json.loads((SAMPLES / "samples.json").read_text())
    items = meta if isinstance(meta, list) else meta.get("samples", meta)
    for wav in sorted(SAMPLES.glob("*.wav")):
        audio, rate = sf.read(wav, dtype="float32")
        lang = wav.stem
        inputs = processor(audio, sampling_rate=rate, language=lang, return_tensors="pt")
        inputs["num_lookahead_tokens"] = r
        with torch.no_grad():
            out = model.generate(**inputs, return_dict_in_generate=True)
        blank = model.config.blank_token_id
        expected = [int(t) for t in out.sequences[0] if int(t) != blank]
        assert asr.transcribe(audio, rate, language=lang, chunk_ms=(r + 1) * 80).token_ids == expected
    assert items
