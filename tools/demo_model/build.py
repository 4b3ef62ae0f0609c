"""Build the demo model skeleton: SentencePiece tokenizer, HF config, model and processor.

Same steps as ``tests/reference/hf.py`` (and transformers' own Nemotron 3.5 converter): SentencePiece BPE
with ``<unk>`` 0, ``<pad>`` 1, language tags as user-defined symbols, 256 byte-fallback pieces;
``ParakeetConverter`` -> ``ParakeetTokenizer`` with ``<blank>`` appended last; a ``Nemotron3_5AsrProcessor``
with the real prompt dictionary. The model is a ``Nemotron3_5AsrForRNNT`` at demo size.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

SAMPLE_RATE = 16000
HOP = 160
LANGUAGE_TAGS = (
    "<en-US>", "<en-GB>", "<es-ES>", "<es-US>", "<de-DE>", "<fr-FR>", "<it-IT>",
    "<pt-BR>", "<nl-NL>", "<pl-PL>", "<ru-RU>", "<ja-JP>", "<zh-CN>",
)


@dataclass
class ModelConfig:
    vocab_size: int = 640  # SentencePiece pieces (blank comes on top)
    hidden_size: int = 160  # encoder d_model
    num_layers: int = 5
    num_heads: int = 4
    ff_mult: int = 4
    conv_kernel_size: int = 9
    subsampling_channels: int = 64
    decoder_hidden_size: int = 192  # prediction net / joint width
    num_decoder_layers: int = 1
    prompt_intermediate_size: int = 256
    num_mel_bins: int = 128
    left_context: int = 56  # encoder frames (80 ms each)
    right_contexts: list = field(default_factory=lambda: [0, 1, 3, 6, 13])
    default_right_context: int = 13
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


def train_sentencepiece(texts: list[str], out_dir: Path, vocab_size: int) -> str:
    import sentencepiece as spm

    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = str(out_dir / "demo_spm")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=prefix, model_type="bpe", vocab_size=vocab_size,
        character_coverage=1.0, byte_fallback=True, user_defined_symbols=list(LANGUAGE_TAGS),
        unk_id=0, pad_id=1, bos_id=-1, eos_id=-1, num_threads=2, shuffle_input_sentence=False,
        input_sentence_size=0, split_digits=True, minloglevel=2,
    )
    return prefix + ".model"


def build_tokenizer(spm_path: str):
    """SentencePiece -> HF tokenizer, the way transformers' Nemotron 3.5 converter does it."""
    from tokenizers import AddedToken
    from transformers import ParakeetTokenizer
    from transformers.convert_slow_tokenizer import ParakeetConverter

    tok = ParakeetTokenizer(tokenizer_object=ParakeetConverter(spm_path).converted(),
                            clean_up_tokenization_spaces=False)
    tok.add_tokens([AddedToken("<blank>", normalized=False, special=True)])
    tok.add_special_tokens({
        "pad_token": AddedToken("<pad>", normalized=False, special=True),
        "unk_token": AddedToken("<unk>", normalized=False, special=True),
    })
    tag_re = re.compile(r"^<[a-z]{2,3}-[A-Za-z]{2}>$")
    tags = sorted(t for t in tok.get_vocab() if tag_re.match(t))
    tok.add_special_tokens({"additional_special_tokens": [AddedToken(t, normalized=False, special=True)
                                                          for t in tags]})
    return tok


def build_model_and_processor(cfg: ModelConfig, spm_path: str):
    """(model, processor) with fresh weights; blank = number of SentencePiece pieces."""
    import sentencepiece as spm
    import torch
    from transformers import (Nemotron3_5AsrConfig, Nemotron3_5AsrForRNNT, Nemotron3_5AsrProcessor,
                              NemotronAsrStreamingFeatureExtractor)
    from transformers.models.nemotron3_5_asr.processing_nemotron3_5_asr import DEFAULT_PROMPT_DICTIONARY

    tokenizer = build_tokenizer(spm_path)
    n_pieces = spm.SentencePieceProcessor(model_file=spm_path).get_piece_size()
    blank_id = tokenizer.convert_tokens_to_ids("<blank>")
    assert blank_id == n_pieces, (blank_id, n_pieces)
    for r in cfg.right_contexts:
        assert cfg.left_context % (r + 1) == 0, r
    fe = NemotronAsrStreamingFeatureExtractor(
        feature_size=cfg.num_mel_bins, sampling_rate=SAMPLE_RATE, hop_length=HOP, n_fft=512, win_length=400,
        preemphasis=0.97, padding_value=0.0)
    enc = dict(
        model_type="nemotron_asr_streaming_encoder", hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.ff_mult * cfg.hidden_size, conv_kernel_size=cfg.conv_kernel_size,
        subsampling_factor=8, subsampling_conv_channels=cfg.subsampling_channels, num_mel_bins=cfg.num_mel_bins,
        subsampling_conv_kernel_size=3, subsampling_conv_stride=2, max_position_embeddings=5000,
        scale_input=True, attention_bias=True, convolution_bias=True, sliding_window=cfg.left_context + 1,
        default_num_lookahead_tokens=cfg.default_right_context, dropout=cfg.dropout, dropout_positions=0.0,
        layerdrop=0.0, activation_dropout=cfg.dropout, attention_dropout=cfg.dropout)
    config = Nemotron3_5AsrConfig(
        encoder_config=enc, num_prompts=128, prompt_intermediate_size=cfg.prompt_intermediate_size,
        default_prompt_id=101, vocab_size=n_pieces + 1, decoder_hidden_size=cfg.decoder_hidden_size,
        num_decoder_layers=cfg.num_decoder_layers, hidden_act="relu", max_symbols_per_step=10,
        pad_token_id=tokenizer.convert_tokens_to_ids("<pad>"), blank_token_id=blank_id)
    model = Nemotron3_5AsrForRNNT(config)
    with torch.no_grad():
        model.decoder.embedding.weight[blank_id].zero_()  # NeMo: the start symbol embeds to zero
    model.generation_config.decoder_start_token_id = blank_id
    processor = Nemotron3_5AsrProcessor(
        feature_extractor=fe, tokenizer=tokenizer, supported_num_lookahead_tokens=list(cfg.right_contexts),
        default_num_lookahead_tokens=cfg.default_right_context, prompt_dictionary=None, num_prompts=128)
    processor.prompt_dictionary = dict(DEFAULT_PROMPT_DICTIONARY)
    return model, processor


def save_hf(model, processor, out_dir: Path) -> None:
    """save_pretrained of model + processor (the layout onepass and transformers load)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        del model.config._name_or_path
    except AttributeError:
        pass
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
