"""Hugging Face directory: config.json, model.safetensors, tokenizer.json, processor_config.json."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import OnePassError
from ..model.config import EncoderConfig, FrontendConfig, ModelConfig
from ..tokenizer import Tokenizer
from .weights import LoadedCheckpoint, to_onepass_names

SUPPORTED_TYPES = ("nemotron3_5_asr", "nemotron_asr_streaming")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise OnePassError(f"cannot parse {path}: {exc}") from None


def config_from_hf(cfg: dict, processor: dict, name: str) -> ModelConfig:
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_TYPES:
        raise OnePassError(f"config.json model_type {model_type!r} is not a Nemotron streaming ASR model "
                           f"(expected one of {', '.join(SUPPORTED_TYPES)})")
    enc = cfg.get("encoder_config") or {}
    fe = processor.get("feature_extractor", processor)
    mel_bins = int(fe.get("feature_size", enc.get("num_mel_bins", 128)))
    if "num_mel_bins" in enc and int(enc["num_mel_bins"]) != mel_bins:
        raise OnePassError(f"encoder expects {enc['num_mel_bins']} mel bins but the feature extractor makes "
                           f"{mel_bins}: config.json and processor_config.json disagree")
    lookaheads = processor.get("supported_num_lookahead_tokens") or [enc.get("default_num_lookahead_tokens", 13)]
    encoder = EncoderConfig(
        input_size=mel_bins,
        hidden_size=int(enc.get("hidden_size", 1024)),
        num_layers=int(enc.get("num_hidden_layers", 24)),
        num_heads=int(enc.get("num_attention_heads", 8)),
        ff_size=int(enc.get("intermediate_size", 4096)),
        conv_kernel_size=int(enc.get("conv_kernel_size", 9)),
        subsampling_factor=int(enc.get("subsampling_factor", 8)),
        subsampling_channels=int(enc.get("subsampling_conv_channels", 256)),
        subsampling_kernel_size=int(enc.get("subsampling_conv_kernel_size", 3)),
        subsampling_stride=int(enc.get("subsampling_conv_stride", 2)),
        left_context=int(enc.get("sliding_window", 57)) - 1,
        right_contexts=tuple(int(r) for r in lookaheads),
        xscaling=bool(enc.get("scale_input", True)),
        attention_bias=bool(enc.get("attention_bias", True)),
        conv_bias=bool(enc.get("convolution_bias", True)),
    )
    frontend = FrontendConfig(
        sample_rate=int(fe.get("sampling_rate", 16000)),
        n_fft=int(fe.get("n_fft", 512)),
        win_length=int(fe.get("win_length", 400)),
        hop_length=int(fe.get("hop_length", 160)),
        num_mel_bins=mel_bins,
        preemphasis=float(fe.get("preemphasis", 0.97) or 0.0),
        mel_dtype=str(fe.get("mel_filters_dtype", "float32")),
    )
    has_prompt = model_type == "nemotron3_5_asr"
    dictionary = processor.get("prompt_dictionary") if has_prompt else None
    if has_prompt and not dictionary:
        from ..languages_table import DEFAULT_PROMPT_DICTIONARY

        dictionary = DEFAULT_PROMPT_DICTIONARY
    vocab = int(cfg.get("vocab_size", 13088))
    default_slot = cfg.get("default_prompt_id", 101)
    default_language = next((k for k, v in (dictionary or {}).items() if v == default_slot), "auto")
    return ModelConfig(
        frontend=frontend, encoder=encoder, vocab_size=vocab,
        blank_id=int(cfg.get("blank_token_id", vocab - 1)),
        pred_hidden=int(cfg.get("decoder_hidden_size", 640)),
        pred_layers=int(cfg.get("num_decoder_layers", 2)),
        num_prompts=int(cfg.get("num_prompts", 128)) if has_prompt else 0,
        prompt_hidden=int(cfg.get("prompt_intermediate_size", 2048)) if has_prompt else 0,
        prompt_dictionary={str(k): int(v) for k, v in (dictionary or {}).items()},
        default_language=default_language if has_prompt else "en",
        max_symbols_per_step=int(cfg.get("max_symbols_per_step", 10)),
        name=name,
    )


def load_hf_dir(path: Path) -> LoadedCheckpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg = _read_json(path / "config.json")
    processor = _read_json(path / "processor_config.json") or _read_json(path / "preprocessor_config.json")
    config = config_from_hf(cfg, processor, path.name)
    weights = path / "model.safetensors"
    if not weights.exists():
        shards = sorted(path.glob("model-*.safetensors"))
        if not shards:
            raise OnePassError(f"{path} has no model.safetensors")
    else:
        shards = [weights]
    state = {}
    for shard in shards:
        try:
            state.update(load_file(str(shard)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise OnePassError(f"cannot read weights {shard} (corrupt or truncated?): {exc}") from None
    tok_path = path / "tokenizer.json"
    if not tok_path.exists():
        raise OnePassError(f"{path} has no tokenizer.json")
    tokenizer = Tokenizer.from_tokenizer_json(tok_path, config.vocab_size, config.blank_id)
    return LoadedCheckpoint(config, to_onepass_names(state, config), tokenizer)
