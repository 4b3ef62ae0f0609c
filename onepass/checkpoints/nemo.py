"""NeMo ``.nemo`` archive: model_config.yaml, model_weights.ckpt, SentencePiece tokenizer.

NeMo names are mapped onto the Hugging Face layout first (the two are known to give identical
token ids on the same weights), then onto onepass names. The stored filterbank and window of
the preprocessor are used as they are.
"""

from __future__ import annotations

import io
import math
import re
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import OnePassError
from ..model.config import EncoderConfig, FrontendConfig, ModelConfig
from ..tokenizer import Tokenizer
from .weights import LoadedCheckpoint, to_onepass_names

# NeMo -> Hugging Face parameter names (prefix rewrites, applied in order)
KEY_MAP = [
    (r"^prompt_kernel\.0\.", "prompt_projector.linear_1."),
    (r"^prompt_kernel\.2\.", "prompt_projector.linear_2."),
    (r"^encoder\.pre_encode\.conv\.0\.", "encoder.subsampling.conv_in."),
    (r"^encoder\.pre_encode\.conv\.2\.", "encoder.subsampling.layers.0.depthwise_conv."),
    (r"^encoder\.pre_encode\.conv\.3\.", "encoder.subsampling.layers.0.pointwise_conv."),
    (r"^encoder\.pre_encode\.conv\.5\.", "encoder.subsampling.layers.1.depthwise_conv."),
    (r"^encoder\.pre_encode\.conv\.6\.", "encoder.subsampling.layers.1.pointwise_conv."),
    (r"^encoder\.pre_encode\.out\.", "encoder.subsampling.linear."),
    (r"\.self_attn\.linear_q\.", ".self_attn.q_proj."),
    (r"\.self_attn\.linear_k\.", ".self_attn.k_proj."),
    (r"\.self_attn\.linear_v\.", ".self_attn.v_proj."),
    (r"\.self_attn\.linear_out\.", ".self_attn.o_proj."),
    (r"\.self_attn\.linear_pos\.", ".self_attn.relative_k_proj."),
    (r"\.self_attn\.pos_bias_u$", ".self_attn.bias_u"),
    (r"\.self_attn\.pos_bias_v$", ".self_attn.bias_v"),
    (r"\.conv\.batch_norm\.", ".conv.norm."),
    (r"^decoder\.prediction\.embed\.", "decoder.embedding."),
    (r"^decoder\.prediction\.dec_rnn\.lstm\.", "decoder.lstm."),
    (r"^joint\.pred\.", "decoder.decoder_projector."),
    (r"^joint\.enc\.", "encoder_projector."),
    (r"^joint\.joint_net\.2\.", "joint.head."),
]
IGNORED = re.compile(r"^(preprocessor\.|encoder\.pos_enc\.|.*num_batches_tracked$)")


def nemo_to_hf_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = dict(state)
    shared = {k: state.pop(f"encoder.pos_bias_{k}") for k in ("u", "v") if f"encoder.pos_bias_{k}" in state}
    if shared:  # untie_biases=False: one pair of position biases for every layer
        layers = {int(m.group(1)) for k in state if (m := re.match(r"^encoder\.layers\.(\d+)\.", k))}
        for i in layers:
            for k, value in shared.items():
                state[f"encoder.layers.{i}.self_attn.pos_bias_{k}"] = value
    out = {}
    for key, value in state.items():
        if IGNORED.match(key):
            continue
        for pattern, repl in KEY_MAP:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _get(d: dict, *keys, default=None):
    for k in keys:
        if isinstance(d, dict) and k in d and d[k] is not None:
            return d[k]
    return default


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise OnePassError(f"unsupported NeMo model: {what}")


def config_from_nemo(cfg: dict, name: str) -> ModelConfig:
    pre, enc = cfg.get("preprocessor", {}), cfg.get("encoder", {})
    dec, joint = cfg.get("decoder", {}), cfg.get("joint", {})
    sr = int(_get(pre, "sample_rate", default=16000))
    win = int(round(float(_get(pre, "window_size", default=0.025)) * sr))
    hop = int(round(float(_get(pre, "window_stride", default=0.01)) * sr))
    n_fft = int(_get(pre, "n_fft", default=2 ** math.ceil(math.log2(win))))
    normalize = str(_get(pre, "normalize", default="NA"))
    _require(normalize.lower() in ("na", "none", "false", ""), f"feature normalization {normalize!r}")
    _require(str(_get(pre, "window", default="hann")) == "hann", "window other than hann")
    _require(str(_get(enc, "self_attention_model", default="rel_pos")) == "rel_pos", "attention other than rel_pos")
    _require(str(_get(enc, "subsampling", default="dw_striding")) == "dw_striding", "subsampling other than dw_striding")
    _require(bool(_get(enc, "causal_downsampling", default=False)), "non-causal subsampling (not cache-aware)")
    _require(str(_get(enc, "att_context_style", default="chunked_limited")) == "chunked_limited",
             "attention context style other than chunked_limited")
    _require(str(_get(enc, "conv_norm_type", default="layer_norm")) == "layer_norm",
             "conv module norm other than layer_norm")
    mels = int(_get(pre, "features", "nfilt", default=128))
    _require(int(_get(enc, "feat_in", default=mels)) == mels, "encoder feat_in != preprocessor features")
    contexts = _get(enc, "att_context_size", default=[56, 13])
    if contexts and not isinstance(contexts[0], (list, tuple)):
        contexts = [contexts]
    lefts = {int(c[0]) for c in contexts}
    _require(len(lefts) == 1, f"several left contexts {sorted(lefts)}")
    d_model = int(_get(enc, "d_model", default=1024))
    channels = int(_get(enc, "subsampling_conv_channels", default=256))
    encoder = EncoderConfig(
        input_size=mels, hidden_size=d_model, num_layers=int(_get(enc, "n_layers", default=24)),
        num_heads=int(_get(enc, "n_heads", default=8)),
        ff_size=int(d_model * float(_get(enc, "ff_expansion_factor", default=4))),
        conv_kernel_size=int(_get(enc, "conv_kernel_size", default=9)),
        subsampling_factor=int(_get(enc, "subsampling_factor", default=8)),
        subsampling_channels=d_model if channels == -1 else channels,
        left_context=lefts.pop(), right_contexts=tuple(int(c[1]) for c in contexts),
        xscaling=bool(_get(enc, "xscaling", default=True)),
    )
    frontend = FrontendConfig(sample_rate=sr, n_fft=n_fft, win_length=win, hop_length=hop, num_mel_bins=mels,
                              preemphasis=float(_get(pre, "preemph", default=0.97) or 0.0))
    prednet = dec.get("prednet", {})
    vocab = int(_get(dec, "vocab_size", default=_get(joint, "num_classes", default=1024)))
    pred_hidden = int(_get(prednet, "pred_hidden", default=640))
    joint_hidden = int(_get(joint.get("jointnet", {}), "joint_hidden", default=pred_hidden))
    _require(joint_hidden == pred_hidden, "joint_hidden != pred_hidden")
    defaults = cfg.get("model_defaults", {}) or {}
    dictionary = _get(cfg, "prompt_dictionary") or _get(defaults, "prompt_dictionary")
    num_prompts = int(_get(cfg, "num_prompts", default=_get(defaults, "num_prompts", default=0)) or 0)
    if dictionary and not num_prompts:
        num_prompts = 128
    greedy = (cfg.get("decoding", {}) or {}).get("greedy", {}) or {}
    return ModelConfig(
        frontend=frontend, encoder=encoder, vocab_size=vocab + 1, blank_id=vocab,
        pred_hidden=pred_hidden, pred_layers=int(_get(prednet, "pred_rnn_layers", default=2)),
        num_prompts=num_prompts, prompt_hidden=0,  # filled from the weights
        prompt_dictionary={str(k): int(v) for k, v in (dictionary or {}).items()},
        default_language="auto" if dictionary and "auto" in dictionary else ("en" if not num_prompts else
                                                                                next(iter(dictionary))),
        max_symbols_per_step=int(_get(greedy, "max_symbols", default=10) or 10), name=name)


def load_nemo(path: Path) -> LoadedCheckpoint:
    import yaml

    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise OnePassError(f"{path} is not a readable .nemo archive: {exc}") from None
    with tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}

        def read(name: str) -> bytes:
            if name not in members:
                raise OnePassError(f"{path} has no {name}: not a NeMo model archive")
            try:
                return tar.extractfile(members[name]).read()
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise OnePassError(f"{path}: cannot read {name} (truncated archive?): {exc}") from None

        try:
            cfg = yaml.safe_load(read("model_config.yaml").decode("utf-8"))
        except yaml.YAMLError as exc:
            raise OnePassError(f"{path}: model_config.yaml is not valid YAML: {exc}") from None
        try:
            raw = torch.load(io.BytesIO(read("model_weights.ckpt")), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types on corrupt pickles/zips
            raise OnePassError(f"{path}: model_weights.ckpt is corrupt: {exc}") from None
        raw = raw.get("state_dict", raw)
        tok_name = _tokenizer_member(cfg, members)
        tok_bytes = read(tok_name)
    config = config_from_nemo(cfg, path.stem)
    w = raw.get("prompt_kernel.0.weight")
    if w is not None:  # NeMo builds the prompt MLP only with model_defaults.initialize_prompt_feature
        config = replace(config, prompt_hidden=int(w.shape[0]),
                         num_prompts=int(w.shape[1]) - config.encoder.hidden_size)
        if not config.prompt_dictionary:
            raise OnePassError(f"{path}: the model has a language prompt but no prompt_dictionary in its config")
    else:
        config = replace(config, num_prompts=0, prompt_dictionary={}, default_language="en")
    with tempfile.NamedTemporaryFile(suffix=".model") as f:
        f.write(tok_bytes)
        f.flush()
        tokenizer = Tokenizer.from_sentencepiece(Path(f.name), config.vocab_size, config.blank_id)
    fb = raw.get("preprocessor.featurizer.fb")
    window = raw.get("preprocessor.featurizer.window")
    state = to_onepass_names(nemo_to_hf_names(raw), config)
    return LoadedCheckpoint(config, state, tokenizer, filterbank=fb, window=window)


def _tokenizer_member(cfg: dict, members: dict) -> str:
    wanted = str((cfg.get("tokenizer", {}) or {}).get("model_path", ""))
    wanted = Path(wanted.replace("nemo:", "")).name
    if wanted in members:
        return wanted
    candidates = [n for n in members if n.endswith("tokenizer.model") or n.endswith(".model")]
    if not candidates:
        raise OnePassError("the .nemo archive has no SentencePiece tokenizer (*.model)")
    return sorted(candidates)[0]
