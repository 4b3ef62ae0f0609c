"""Push-style cache-aware streaming for one stream.

    session = recognizer.stream(language="de", chunk_ms=560)
    for piece in audio_pieces:            # any length, any sample rate
        update = session.accept(piece, 48000)
        print(update.delta, end="")
    final = session.finish()              # flushes the tail; returns the whole Transcript

Every audio frame is encoded once: chunk k runs the encoder on its own 8*(r+1) mel frames with
cached keys/values, conv and subsampling state. The final partial chunk is flushed exactly as
the offline pass would compute it, so ``finish().token_ids`` equals offline transcription.
"""

from __future__ import annotations

import numpy as np
import torch

from .audio import SAMPLE_RATE, StreamResampler, to_mono_float32
from .decoding.greedy import Emissions
from .decoding.step import StreamBatch, block_mel_frames
from .decoding.text import clean_text, group_words, make_word
from .errors import OnePassError
from .model.frontend import MelStream
from .recognizer import FRAME_S, Recognizer, extend, make_transcript
from .results import StreamUpdate, Transcript

MAX_CHUNKS_PER_STEP = 16  # when audio arrives faster than real time, encode up to this many chunks at once


class StreamingSession:
    def __init__(self, recognizer: Recognizer, language: str | None = None, chunk_ms: int | None = None):
        self.recognizer = recognizer
        model = recognizer.model
        self.language = recognizer.language(language)
        self.right_context = recognizer.config.right_context_for_chunk_ms(chunk_ms)
        self.chunk_ms = (self.right_context + 1) * round(FRAME_S * 1000)
        self._batch = StreamBatch(model, 1, self.right_context, [self.language.prompt])
        self._mel = MelStream(model.frontend)
        self._pending = torch.zeros(0, model.config.frontend.num_mel_bins)
        self._resampler: StreamResampler | None = None
        self._emitted = Emissions()
        self._words_from = 0  # first token index of the word still open
        self._text = ""
        self._samples = 0  # model-rate samples accepted
        self.finished = False

    def accept(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> StreamUpdate:
        """Feed audio (1-D or (n, channels), int or float PCM). Returns what became final."""
        if self.finished:
            raise OnePassError("this stream is finished; open a new one")
        audio = self._resample(samples, sample_rate, last=False)
        return self._advance(audio, final=False)

    def finish(self) -> Transcript:
        """End of audio: flush the resampler, the front end and the last partial chunk."""
        if self.finished:
            raise OnePassError("this stream is already finished")
        tail = self._resampler.process(np.zeros(0, np.float32), last=True) if self._resampler else None
        self.last_update = self._advance(tail if tail is not None else np.zeros(0, np.float32), final=True)
        self.finished = True
        return make_transcript(self.recognizer.tokenizer, self.language, self._emitted,
                               self._samples / SAMPLE_RATE)

    @property
    def transcript_so_far(self) -> Transcript:
        return make_transcript(self.recognizer.tokenizer, self.language, self._emitted,
                               self._samples / SAMPLE_RATE)

    def _resample(self, samples, sample_rate: int, last: bool) -> np.ndarray:
        audio = to_mono_float32(np.asarray(samples))
        if self._resampler is None:
            self._resampler = StreamResampler(sample_rate, SAMPLE_RATE)
        elif self._resampler.in_rate != sample_rate:
            raise OnePassError(f"sample rate changed mid-stream ({self._resampler.in_rate} -> {sample_rate} Hz)")
        return self._resampler.process(audio, last=last)

    def _advance(self, audio: np.ndarray, final: bool) -> StreamUpdate:
        self._samples += len(audio)
        frames = self._mel.accept(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))
        if final:
            frames = torch.cat([frames, self._mel.finish()])
        self._pending = torch.cat([self._pending, frames])
        new = Emissions()
        while True:
            first = not self._batch.started
            n_chunks = self._ready_chunks(first)
            if n_chunks == 0:
                break
            size = block_mel_frames(self.recognizer.model, self.right_context, n_chunks, first)
            extend(new, self._run(self._pending[:size], final=False))
            self._pending = self._pending[size:]
        if final:
            extend(new, self._run(self._pending, final=True))
            self._pending = self._pending[:0]
        return self._update(new, final)

    def _ready_chunks(self, first: bool) -> int:
        model, r = self.recognizer.model, self.right_context
        have = len(self._pending)
        one_first = block_mel_frames(model, r, 1, True)
        per_chunk = block_mel_frames(model, r, 1, False)
        if first:
            n = 1 + (have - one_first) // per_chunk if have >= one_first else 0
        else:
            n = have // per_chunk
        return min(n, MAX_CHUNKS_PER_STEP)

    def _run(self, mel: torch.Tensor, final: bool) -> Emissions:
        valid = torch.tensor([len(mel)])
        out = self._batch.step(mel[None], valid, torch.tensor([final]))[0]
        extend(self._emitted, out)
        return out

    def _update(self, new: Emissions, final: bool) -> StreamUpdate:
        tok = self.recognizer.tokenizer
        e = self._emitted
        text, tags = clean_text(tok.piece_text(e.token_ids))
        delta = text[len(self._text):] if text.startswith(self._text) else text
        self._text = text
        tail_ids = e.token_ids[self._words_from:]
        groups = group_words(tok, tail_ids)
        done = groups if final else groups[:-1]
        words = [make_word(tok, tail_ids, e.frames[self._words_from:], e.probs[self._words_from:], g, FRAME_S)
                 for g in done]
        if done:
            self._words_from += len(tail_ids) if final else groups[-1][0]
        lang = tags[0] if (self.language.auto and tags) else self.language.code
        return StreamUpdate(
            text=text, delta=delta, new_token_ids=list(new.token_ids), new_words=words, language=lang,
            language_detected=self.language.auto, audio_s=self._samples / SAMPLE_RATE,
            decoded_s=int(self._batch.encoder_state.frames[0]) * FRAME_S, final=final)
