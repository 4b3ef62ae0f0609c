"""Push-style cache-aware streaming for one stream, on the multi-stream engine.

    session = recognizer.stream(language="de", chunk_ms=560)
    for piece in audio_pieces:            # any length, any sample rate
        update = session.accept(piece, 48000)
        print(update.delta, end="")
    session.flush()                       # optional: decode everything so far, keep the stream open
    final = session.finish()              # flushes the tail; returns the whole Transcript

Every audio frame is encoded once: chunk k runs the encoder on its own 8*(r+1) mel frames with
cached keys/values, conv and subsampling state. The final partial chunk is flushed exactly as
the offline pass would compute it, so ``finish().token_ids`` equals offline transcription.
``flush()`` ends a segment the same way without ending the stream (Deepgram's Finalize, a Realtime
commit): the audio after it is decoded with fresh model state, as a separate offline pass would.
This is a one-stream view of ``onepass.engine.Engine``: there is one streaming path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .audio import SAMPLE_RATE
from .decoding.phrases import hotword_settings
from .decoding.text import IncrementalText
from .decoding.transcript import FRAME_S
from .engine import Engine, EngineConfig
from .errors import OnePassError
from .results import StreamUpdate, Transcript

if TYPE_CHECKING:
    from .recognizer import Recognizer


class StreamingSession:
    def __init__(self, recognizer: Recognizer, language: str | None = None, chunk_ms: int | None = None,
                 hotwords=None, hotword_boost: float | None = None):
        self.recognizer = recognizer
        self._hotwords = hotword_settings(hotwords, hotword_boost)
        recognizer.hotwords(self._hotwords)  # a phrase past a limit fails here, not at the first audio
        self._engine = Engine(recognizer, EngineConfig(max_batch=1, max_streams=1, endpoint_blank_ms=None))
        self._language, self._chunk_ms = language, chunk_ms
        self.language = recognizer.language(language)
        self.right_context = recognizer.config.right_context_for_chunk_ms(chunk_ms)
        self.chunk_ms = (self.right_context + 1) * round(FRAME_S * 1000)
        self._id: int | None = None
        self._rate: int | None = None
        self._text = IncrementalText(recognizer.tokenizer, FRAME_S)
        self._transcript: Transcript | None = None
        self.last_update: StreamUpdate | None = None

    @property
    def finished(self) -> bool:
        return self._transcript is not None

    def accept(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> StreamUpdate:
        """Feed audio (1-D or (n, channels), int or float PCM). Returns what became final."""
        if self.finished:
            raise OnePassError("this stream is finished; open a new one")
        self._open(sample_rate)
        if sample_rate != self._rate:
            raise OnePassError(f"sample rate changed mid-stream ({self._rate} -> {sample_rate} Hz)")
        self._engine.accept(self._id, samples)
        return self._collect(final=False)

    def flush(self) -> StreamUpdate:
        """Decode all audio accepted so far, the last partial chunk included (as ``finish`` would), and
        keep the stream open: audio accepted later starts a new segment with fresh model state, its
        times counted from the stream start. Every word of the returned update is final."""
        if self.finished:
            raise OnePassError("this stream is finished; open a new one")
        if self._id is None:  # no audio yet: nothing to decode
            return StreamUpdate(text="", delta="", language=self.language.code,
                                language_detected=self.language.auto)
        self._engine.finalize(self._id, flush=True)
        return self._collect(final=False, words_final=True)

    def finish(self) -> Transcript:
        """End of audio: flush the resampler, the front end and the last partial chunk."""
        if self.finished:
            raise OnePassError("this stream is already finished")
        self._open(SAMPLE_RATE)
        stream = self._engine.stream(self._id)
        if stream.samples_in == 0 and not stream.pending:
            stream.resampler.process(np.zeros(0, np.float32), last=True)
        self._engine.finish(self._id)
        self.last_update = self._collect(final=True)
        return self._transcript

    def _open(self, sample_rate: int) -> None:
        if self._id is None:
            self._id = self._engine.open(self._language, self._chunk_ms, sample_rate, hotwords=self._hotwords)
            self._rate = sample_rate
            self._stream = self._engine.stream(self._id)

    def _collect(self, final: bool, words_final: bool = False) -> StreamUpdate:
        events = self._engine.run_until_idle()
        closed = [e for e in events if e.kind == "closed"]
        if closed:
            self._transcript = closed[-1].transcript
        s = self._stream
        e = s.emitted
        text, delta, words = self._text.update(e.token_ids, e.frames, e.probs, final=final or words_final)
        new_ids = [t for ev in events if ev.kind == "partial" for t in ev.new_token_ids]
        lang = self._text.tags[0] if (self.language.auto and self._text.tags) else self.language.code
        update = StreamUpdate(text=text, delta=delta, new_token_ids=new_ids, new_words=words, language=lang,
                              language_detected=self.language.auto, audio_s=s.samples_in / SAMPLE_RATE,
                              decoded_s=s.frames_decoded * FRAME_S, final=final)
        self.last_update = update
        return update
