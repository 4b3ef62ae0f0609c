"""One decoding step for a batch of streams: encode a block of mel frames, decode greedily.

Offline transcription, the streaming session and the engine all advance streams through
``StreamBatch.step``; there is no second path into the model.
"""

from __future__ import annotations

import torch

from ..model.asr import NemotronASR
from ..model.config import check_right_context
from .greedy import DecoderState, Emissions, greedy_decode, initial_decoder_state


def block_mel_frames(model: NemotronASR, right_context: int, chunks: int, first: bool) -> int:
    """Mel frames that make ``chunks`` chunks of r+1 encoder frames: the first block of a
    stream needs 1 + f*(n-1) (its first encoder frame sees one mel frame), later ones f*n."""
    factor = model.config.encoder.subsampling_factor
    n = chunks * (right_context + 1)
    return 1 + factor * (n - 1) if first else factor * n


class StreamBatch:
    """Encoder and prediction-net state of B streams sharing one right context."""

    def __init__(self, model: NemotronASR, batch: int, right_context: int, prompts: list[int | None]):
        check_right_context(model.config, right_context)
        self.model = model
        self.right_context = right_context
        device = model.joint.head.weight.device
        self.prompt = (torch.tensor(prompts, dtype=torch.long, device=device)
                       if model.config.has_prompt else None)
        with torch.no_grad():
            self.encoder_state = model.encoder.initial_state(batch)
            self.decoder_state: DecoderState = initial_decoder_state(model, batch)
        self.started = False  # first block uses the shorter first-chunk size

    @torch.no_grad()
    def step(self, mel: torch.Tensor, valid: torch.Tensor, final: torch.Tensor,
             capture: list | None = None) -> list[Emissions]:
        """mel (B, T, mels): the next block; valid (B,) real frames per row; final (B,) last
        block of a row. Non-final rows must carry a whole number of chunks. ``capture``, if
        given, receives the encoder output (after the prompt MLP) and its valid counts."""
        offsets = self.encoder_state.frames.clone()
        p = self.model.joint.head.weight
        enc, proj, n = self.model.encode(mel.to(p.device, p.dtype), valid.to(p.device), final.to(p.device),
                                         self.encoder_state, self.right_context, self.prompt)
        self.started = True
        if capture is not None:
            capture.append((enc, n))
        return greedy_decode(self.model, proj, n, self.decoder_state, offsets)
