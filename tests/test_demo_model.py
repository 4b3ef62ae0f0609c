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


# --- training tools (tools/demo_model): the pieces whose bugs would silently ruin a demo-model run ---

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "demo_model"


def _tools():
    import sys

    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    import rnnt_loss
    import train

    return rnnt_loss, train


def test_rnnt_loss_matches_scalar_dp():
    rnnt_loss, _ = _tools()
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 6, 5, 7, generator=g) * 2
    targets = torch.randint(0, 6, (3, 4), generator=g)
    t_len, u_len = torch.tensor([6, 4, 2]), torch.tensor([4, 1, 3])
    ours = rnnt_loss.rnnt_loss(logits, targets, t_len, u_len, blank=6)
    ref = rnnt_loss._reference(logits, targets, t_len, u_len, blank=6)
    # float32 forward algorithm vs a float64 scalar DP: float tolerance
    assert torch.allclose(ours.double(), ref, atol=1e-4)


def test_output_priors_init():
    """CTC / joint head biases start at the label and blank priors (the fix for the prior collapse)."""
    from transformers import Nemotron3_5AsrConfig, Nemotron3_5AsrForRNNT

    _, train = _tools()
    enc = dict(model_type="nemotron_asr_streaming_encoder", hidden_size=16, num_hidden_layers=1,
               num_attention_heads=2, intermediate_size=32, subsampling_conv_channels=4, num_mel_bins=16)
    cfg = Nemotron3_5AsrConfig(encoder_config=enc, num_prompts=128, prompt_intermediate_size=8, vocab_size=6,
                               decoder_hidden_size=8, num_decoder_layers=1, blank_token_id=5, pad_token_id=1)
    model = Nemotron3_5AsrForRNNT(cfg)
    ctc_head = torch.nn.Linear(8, 6)
    labels = [[0, 2, 2], [3], [2, 4]]  # 6 labels
    enc_lengths = [10, 5, 5]  # 20 frames
    train.init_output_priors_(model, ctc_head, labels, enc_lengths)
    p_ctc = ctc_head.bias.detach().softmax(-1)
    p_joint = model.joint.head.bias.detach().softmax(-1)
    counts = torch.tensor([1 + 1, 1, 1 + 3, 1 + 1, 1 + 1, 0.0])  # add-one smoothing, blank excluded
    unigram = counts / counts.sum()
    assert torch.allclose(p_ctc[5], torch.tensor(1 - 6 / 20))
    assert torch.allclose(p_ctc[:5], unigram[:5] * 6 / 20)
    assert torch.allclose(p_joint[5], torch.tensor(20 / 26))
    assert torch.allclose(p_joint[:5], unigram[:5] * 6 / 26)
