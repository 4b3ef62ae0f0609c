"""Typed model settings for the Nemotron cache-aware streaming ASR family.

One :class:`ModelConfig` describes both Nemotron 3.5 ASR (128 mel, left context 56,
language prompt MLP, 13088-token vocabulary) and the English sibling (left context 70,
no prompt, 1025 tokens). It is read from a checkpoint (see ``onepass.checkpoints``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import OnePassError

ENCODER_FRAME_MS = 80  # one encoder frame: 8 mel frames of 10 ms
STANDARD_RIGHT_CONTEXTS = (0, 1, 3, 6, 13)  # 80 / 160 / 320 / 560 / 1120 ms chunks


@dataclass(frozen=True)
class FrontendConfig:
    sample_rate: int = 16000  # Hz the model expects
    n_fft: int = 512  # FFT size (samples)
    win_length: int = 400  # Hann window length (samples), zero-padded to n_fft at the centre
    hop_length: int = 160  # samples between mel frames (10 ms)
    num_mel_bins: int = 128
    preemphasis: float = 0.97  # 0 disables the filter
    mel_dtype: str = "float32"  # precision the stored filterbank/window were rounded to
    log_guard: float = 2.0**-24  # added before log


@dataclass(frozen=True)
class EncoderConfig:
    input_size: int = 128  # mel bins in
    hidden_size: int = 1024
    num_layers: int = 24
    num_heads: int = 8
    ff_size: int = 4096
    conv_kernel_size: int = 9  # causal depthwise conv of the conformer conv module
    subsampling_factor: int = 8
    subsampling_channels: int = 256
    subsampling_kernel_size: int = 3
    subsampling_stride: int = 2
    left_context: int = 56  # encoder frames of attention left context
    right_contexts: tuple[int, ...] = (13, 6, 3, 1, 0)  # lookaheads the checkpoint was trained with
    xscaling: bool = True  # multiply subsampling output by sqrt(hidden_size)
    attention_bias: bool = True
    conv_bias: bool = True
    layer_norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def subsampling_layers(self) -> int:
        return self.subsampling_factor.bit_length() - 1

    @property
    def subsampled_freq_bins(self) -> int:
        """Frequency bins left after the causal stride-2 convs (128 -> 65 -> 33 -> 17)."""
        n = self.input_size
        pad = (self.subsampling_kernel_size - 1) + (self.subsampling_stride - 1)
        for _ in range(self.subsampling_layers):
            n = (n + pad - self.subsampling_kernel_size) // self.subsampling_stride + 1
        return n


@dataclass(frozen=True)
class ModelConfig:
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    vocab_size: int = 13088  # SentencePiece pieces + blank
    blank_id: int = 13087  # blank is the last id and the decoder's start symbol
    pred_hidden: int = 640  # LSTM prediction net width (and joint width)
    pred_layers: int = 2
    num_prompts: int = 128  # 0: no language prompt (English sibling)
    prompt_hidden: int = 2048
    prompt_dictionary: dict[str, int] = field(default_factory=dict)  # language code -> prompt slot
    default_language: str = "auto"
    max_symbols_per_step: int = 10  # greedy RNN-T: non-blank symbols per encoder frame
    name: str = "nemotron"

    @property
    def has_prompt(self) -> bool:
        return self.num_prompts > 0

    def supported_right_contexts(self) -> tuple[int, ...]:
        """Right contexts r this checkpoint can stream with: L % (r+1) == 0."""
        left = self.encoder.left_context
        return tuple(r for r in STANDARD_RIGHT_CONTEXTS if left % (r + 1) == 0)

    def supported_chunk_ms(self) -> tuple[int, ...]:
        return tuple((r + 1) * ENCODER_FRAME_MS for r in self.supported_right_contexts())

    @property
    def default_right_context(self) -> int:
        trained = [r for r in self.encoder.right_contexts if r in self.supported_right_contexts()]
        return max(trained) if trained else max(self.supported_right_contexts())

    def right_context_for_chunk_ms(self, chunk_ms: int | None) -> int:
        """Map a chunk duration (80, 160, 320, 560, 1120 ms) to the right context r."""
        if chunk_ms is None:
            return self.default_right_context
        if chunk_ms % ENCODER_FRAME_MS != 0:
            raise OnePassError(
                f"chunk size {chunk_ms} ms is not a multiple of {ENCODER_FRAME_MS} ms; "
                f"this model supports {_ms_list(self.supported_chunk_ms())}"
            )
        r = chunk_ms // ENCODER_FRAME_MS - 1
        check_right_context(self, r)
        return r


def check_right_context(config: ModelConfig, r: int) -> None:
    left = config.encoder.left_context
    if r < 0 or left % (r + 1) != 0 or r not in STANDARD_RIGHT_CONTEXTS:
        raise OnePassError(
            f"chunk size {(r + 1) * ENCODER_FRAME_MS} ms (right context {r}) is not supported by this "
            f"model (left context {left} must be a multiple of the chunk of r+1 frames); "
            f"use one of {_ms_list(config.supported_chunk_ms())}"
        )


def _ms_list(values) -> str:
    return ", ".join(f"{v} ms" for v in values)
