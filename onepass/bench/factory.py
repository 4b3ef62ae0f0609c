"""Models to benchmark: real-size random-init twins (onepass + transformers, same weights), or a
checkpoint loaded by both.

A random transducer emits up to ``max_symbols`` tokens on every frame, which would make decoding
cost nothing like a real model's. ``calibrate`` rewrites a few weights so that greedy decoding
emits a speech-like ~1 token per 3 encoder frames (the target is a setting); both
implementations share the weights, so both decode the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import OnePassError
from ..languages_table import DEFAULT_PROMPT_DICTIONARY
from ..recognizer import ModelInfo, Recognizer
from ..tokenizer import Tokenizer


ATTENTION_GAIN = 0.05  # scale of the random attention output projections (see _random_hf_model)


@dataclass(frozen=True)
class Preset:
    """Architecture of a random-init model (the fields of transformers' configs)."""

    name: str
    with_prompt: bool  # Nemotron 3.5 (language prompt MLP) or the English sibling
    hidden: int = 1024
    layers: int = 24
    heads: int = 8
    ff: int = 4096
    mel_bins: int = 128
    sub_channels: int = 256
    left_context: int = 56
    right_contexts: tuple[int, ...] = (13, 6, 3, 1, 0)
    pred_hidden: int = 640
    vocab: int = 13088  # including blank (last)
    prompt_hidden: int = 2048
    num_prompts: int = 128


PRESETS = {
    "nemotron-3.5": Preset("nemotron-3.5", with_prompt=True),
    "nemotron-en": Preset("nemotron-en", with_prompt=False, left_context=70, right_contexts=(13, 6, 1, 0),
                          vocab=1025, prompt_hidden=0, num_prompts=0),
    "tiny": Preset("tiny", with_prompt=True, hidden=64, layers=2, heads=4, ff=256, sub_channels=32,
                   pred_hidden=64, vocab=512, prompt_hidden=128),
}


@dataclass
class ModelPair:
    """What the benchmark runs: onepass always, transformers when asked for."""

    recognizer: Recognizer
    hf_model: object | None  # transformers *ForRNNT, eval mode
    hf_features: object | None  # transformers feature extractor (log-mel)
    description: str
    parameters: int
    emission_rate: float | None = None  # tokens per encoder frame on the calibration clip (random init)


def hf_config(preset: Preset):
    """transformers config of a preset."""
    from transformers import Nemotron3_5AsrConfig, NemotronAsrStreamingConfig

    enc = dict(hidden_size=preset.hidden, num_hidden_layers=preset.layers, num_attention_heads=preset.heads,
               intermediate_size=preset.ff, conv_kernel_size=9, subsampling_factor=8,
               subsampling_conv_channels=preset.sub_channels, num_mel_bins=preset.mel_bins,
               subsampling_conv_kernel_size=3, subsampling_conv_stride=2, scale_input=True,
               attention_bias=True, convolution_bias=True, sliding_window=preset.left_context + 1,
               default_num_lookahead_tokens=preset.right_contexts[0])
    common = dict(vocab_size=preset.vocab, decoder_hidden_size=preset.pred_hidden, num_decoder_layers=2,
                  hidden_act="relu", max_symbols_per_step=10, pad_token_id=1, blank_token_id=preset.vocab - 1)
    if preset.with_prompt:
        return Nemotron3_5AsrConfig(encoder_config={"model_type": "nemotron_asr_streaming_encoder", **enc},
                                    num_prompts=preset.num_prompts,
                                    prompt_intermediate_size=preset.prompt_hidden, default_prompt_id=101, **common)
    return NemotronAsrStreamingConfig(encoder_config=enc, **common)


def _processor_dict(preset: Preset) -> dict:
    out = {"feature_extractor": {"feature_size": preset.mel_bins, "sampling_rate": 16000, "hop_length": 160,
                                 "n_fft": 512, "win_length": 400, "preemphasis": 0.97},
           "supported_num_lookahead_tokens": list(preset.right_contexts)}
    if preset.with_prompt:
        out["prompt_dictionary"] = dict(DEFAULT_PROMPT_DICTIONARY)
    return out


def _pieces(vocab: int) -> list[str]:
    """A made-up vocabulary: word starts and continuations, blank last."""
    pieces = ["<unk>", "<pad>"] + [("\u2581w" if i % 3 == 0 else "x") + str(i) for i in range(2, vocab - 1)]
    return pieces + ["<blank>"]


def random_pair(preset_name: str, *, with_hf: bool, seed: int = 0, target_rate: float = 1 / 3,
                language: str = "en-US") -> ModelPair:
    """Random-init transformers model and an onepass model on the SAME tensors (no copy), calibrated."""
    from transformers import NemotronAsrStreamingFeatureExtractor

    from ..checkpoints.hf import config_from_hf
    from ..checkpoints.weights import LoadedCheckpoint, build_model, to_onepass_names

    if preset_name not in PRESETS:
        raise OnePassError(f"unknown preset {preset_name!r}; use one of {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    hf = _random_hf_model(preset, seed)
    config = config_from_hf(hf.config.to_dict(), _processor_dict(preset), f"random-{preset.name}")
    tokenizer = Tokenizer(_pieces(preset.vocab), preset.vocab - 1)
    loaded = LoadedCheckpoint(config, to_onepass_names(dict(hf.state_dict()), config), tokenizer)
    model = build_model(loaded, f"random-init {preset.name}")
    asr = Recognizer(model, tokenizer, ModelInfo(preset.name, "(random init)", "random", config.name))
    rate = calibrate(asr, hf, target_rate, language, seed)
    params = sum(p.numel() for p in hf.parameters())
    features = NemotronAsrStreamingFeatureExtractor(feature_size=preset.mel_bins) if with_hf else None
    desc = (f"random-init {preset.name}: {preset.layers} layers d{preset.hidden}, {preset.heads} heads, "
            f"ff {preset.ff}, {preset.mel_bins} mel, left {preset.left_context}, vocab {preset.vocab}")
    return ModelPair(asr, hf if with_hf else None, features, desc, params, rate)


def _random_hf_model(preset: Preset, seed: int):
    from transformers import Nemotron3_5AsrForRNNT, NemotronAsrStreamingForRNNT

    from transformers.initialization import no_init_weights

    torch.manual_seed(seed)
    cls = Nemotron3_5AsrForRNNT if preset.with_prompt else NemotronAsrStreamingForRNNT
    with no_init_weights():  # every parameter is written below
        hf = cls(hf_config(preset)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            # fan-in scaled normals: O(1) activations everywhere (no denormals, no saturation)
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 if "embedding" in name else p[0].numel() ** -0.5))
                if name.endswith("self_attn.o_proj.weight"):
                    # a weak attention path keeps the encoder output (and so the emission rate) nearly
                    # the same for every right context; a random one shifts it by several std
                    p.mul_(ATTENTION_GAIN)
            elif "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        hf.decoder.embedding.weight[hf.config.blank_token_id].zero_()  # NeMo: blank embeds to zero
    hf.generation_config.decoder_start_token_id = hf.config.blank_token_id
    return hf


@torch.no_grad()
def calibrate(asr: Recognizer, hf, target_rate: float, language: str, seed: int) -> float:
    """Standardise both projections into the joint, centre the token logits and bisect a uniform
    blank row so that greedy decoding emits ~target_rate tokens per frame. Returns the rate."""
    from .audio import speech_like

    model = asr.model
    g = torch.Generator().manual_seed(seed + 1)
    audio = torch.from_numpy(speech_like(6.0, seed + 100))[None]
    feats, n_mel = model.frontend(audio, torch.tensor([audio.shape[1]]))
    prompt = torch.tensor([asr.language(language).prompt]) if asr.config.has_prompt else None
    encs = []
    for r in sorted({asr.config.default_right_context, min(asr.config.supported_right_contexts())}):
        state = model.encoder.initial_state(1)
        out, _, _ = model.encode(feats, n_mel, torch.tensor([True]), state, r, prompt)
        encs.append(out[0])
    enc = torch.cat(encs)  # (T, D) after the prompt MLP, at the largest and smallest right context
    _standardize(model.encoder_projector, enc, g)
    lstm = model.decoder.lstm
    h = torch.zeros(lstm.num_layers, 64, lstm.size)
    c, outs = h.clone(), []
    for _ in range(24):  # prediction-net outputs over random token histories
        x, h, c = lstm(model.decoder.embedding(torch.randint(0, asr.config.blank_id, (64,), generator=g)), h, c)
        outs.append(x)
    _standardize(model.decoder.decoder_projector, torch.cat(outs), g)
    e = model.encoder_projector(enc)
    d = model.decoder.decoder_projector(torch.cat(outs))
    head = model.joint.head
    pick = (torch.randint(0, len(e), (4096,), generator=g), torch.randint(0, len(d), (4096,), generator=g))
    z = torch.relu(e[pick[0]] + d[pick[1]])
    head.weight.copy_(torch.randn(head.weight.shape, generator=g) * (3.0 / math.sqrt(head.weight.shape[1])))
    head.bias.copy_(-(z @ head.weight.T).mean(0))
    head.bias[:2] = -1e3  # <unk>, <pad>: a trained model never emits them (transformers pads with <pad>)
    blank = asr.config.blank_id
    ones = torch.full((head.weight.shape[1],), head.weight.shape[1] ** -0.5)
    noise = torch.randn(ones.shape, generator=g) * 0.3 * ones[0]

    def rate(gamma: float) -> float:
        head.weight[blank] = gamma * ones + noise
        head.bias[blank] = 0.0
        return _greedy_rate(model, e, cap=int(3 * target_rate * len(e)) + 1)

    lo, hi = -20.0, 80.0
    best = (float("inf"), hi)
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        got = rate(mid)
        best = min(best, (abs(got - target_rate), mid))
        lo, hi = (mid, hi) if got > target_rate else (lo, mid)
    if hf is not None:  # the rewritten tensors are shared with the transformers model
        assert hf.joint.head.weight.data_ptr() == head.weight.data_ptr()
    return rate(best[1])


def _greedy_rate(model, e: torch.Tensor, cap: int) -> float:
    """Tokens per frame of plain greedy RNN-T over projected frames (T, H), stopping at ``cap`` tokens."""
    cfg = model.config
    h = torch.zeros(cfg.pred_layers, 1, cfg.pred_hidden)
    pred, h, c = model.decoder(torch.tensor([cfg.blank_id]), h, h.clone())
    tokens = 0
    for t in range(len(e)):
        for _ in range(cfg.max_symbols_per_step):
            k = int(model.joint(e[t:t + 1], pred).argmax())
            if k == cfg.blank_id:
                break
            tokens += 1
            if tokens >= cap:
                return tokens / len(e)
            pred, h, c = model.decoder(torch.tensor([k]), h, c)
    return tokens / len(e)


def _standardize(linear: torch.nn.Linear, x: torch.Tensor, g: torch.Generator) -> None:
    """Random weights over standardised inputs: outputs zero-mean, unit-variance per unit."""
    mu, sigma = x.mean(0), x.std(0).clamp_min(1e-3)
    w = torch.randn(linear.weight.shape, generator=g) / math.sqrt(linear.weight.shape[1])
    linear.weight.copy_(w / sigma[None, :])
    linear.bias.copy_(-(linear.weight @ mu))


def checkpoint_pair(source: str, *, with_hf: bool) -> ModelPair:
    """A real checkpoint: onepass loads it; transformers too (HF directory or hub id only)."""
    from .. import load_model

    asr = load_model(source, prepack=False)  # run_bench packs (or not) as BenchConfig.prepack says
    hf = features = None
    if with_hf:
        path = Path(asr.info.path)
        if asr.info.format != "hf":
            raise OnePassError("--compare transformers needs a Hugging Face model directory (config.json); "
                               f"{source} is {asr.info.format}")
        from transformers import AutoModelForRNNT, AutoProcessor

        hf = AutoModelForRNNT.from_pretrained(str(path), dtype=torch.float32).eval()
        features = AutoProcessor.from_pretrained(str(path)).feature_extractor
    params = sum(p.numel() for p in asr.model.parameters())
    return ModelPair(asr, hf, features, f"checkpoint {asr.info.path}", params)


def place(asr: Recognizer, device: str, dtype: str) -> None:
    """Move a recognizer's network to ``device`` in ``dtype`` (the front end stays float32)."""
    model = asr.model
    model.to(device=torch.device(device)).cast(getattr(torch, dtype))
    model.encoder.clear_tables()
    asr.configure_step(asr.model_step.config)
