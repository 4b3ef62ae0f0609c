"""The engine: open/accept/finish streams, and a step loop that batches them."""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING

import numpy as np

from ..audio import SAMPLE_RATE, StreamResampler, check_rate, to_mono_float32
from ..decoding.phrases import compile_phrases, hotword_settings
from ..decoding.text import IncrementalText, ends_word, starts_word
from ..decoding.transcript import FRAME_S, extend, make_transcript
from ..errors import OnePassError
from ..model.frontend import SampleWindows
from ..step import Row, StateArena
from .config import EngineConfig
from .events import StreamEvent
from .scheduler import chunk_frames, schedule, steps_ready
from .stream import EngineStream

if TYPE_CHECKING:
    from ..recognizer import Recognizer

FRAME_SAMPLES = round(FRAME_S * SAMPLE_RATE)  # model-rate samples per encoder frame


def _ms(value: int | None, default: int | None) -> int | None:
    """Per-stream millisecond setting: None takes the default, 0 (or less) switches it off."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise OnePassError(f"expected whole milliseconds, got {value!r}")
    return int(value) if value > 0 else None


class Engine:
    def __init__(self, recognizer: Recognizer, config: EngineConfig | None = None):
        self.recognizer = recognizer
        self.model = recognizer.model
        self.model_step = recognizer.model_step
        self.config = config or EngineConfig()
        self.factor = self.model.config.encoder.subsampling_factor
        self.pools: dict[int, StateArena] = {}  # per right context: the state of its streams
        self.streams: dict[int, EngineStream] = {}
        self.ready: dict[int, dict[int, EngineStream]] = {}  # per right context: streams with a step to run
        self.last_batches: tuple[int, ...] = ()  # streams per batched model call in the last step()
        self.last_streams: tuple[int, ...] = ()  # the streams the last step() ran
        self._ids = itertools.count()

    # ---- stream lifecycle -------------------------------------------------------------
    def open(self, language: str | None = None, chunk_ms: int | None = None,
             sample_rate: int = SAMPLE_RATE, endpoint_ms: int | None = None,
             silence_ms: int | None = None, hotwords=None, hotword_boost: float | None = None) -> int:
        """Open a stream; returns its id. Raises OnePassError when full or on bad options.

        ``endpoint_ms``: audio without tokens that ends an utterance (None: the engine's
        ``endpoint_blank_ms``; 0: never). ``silence_ms``: audio without tokens, after speech,
        that reports a "silence" event (None or 0: never). ``hotwords``: phrases to boost (strings,
        ``Phrase`` with a boost of its own, or ``HotwordSettings``); ``hotword_boost``: the bonus of
        those without one (``onepass.decoding.phrases``)."""
        if len(self.streams) >= self.config.max_streams:
            raise OnePassError(f"engine is at capacity ({self.config.max_streams} streams); try again later")
        lang = self.recognizer.language(language)
        r = self.recognizer.config.right_context_for_chunk_ms(chunk_ms)
        check_rate(sample_rate)
        endpoint, silence = _ms(endpoint_ms, self.config.endpoint_blank_ms), _ms(silence_ms, None)
        phrases = hotword_settings(hotwords, hotword_boost)
        tree = compile_phrases(self.recognizer.tokenizer, phrases, self.model_step.config.beam) if phrases else None
        pool = self.pools.get(r)
        if pool is None:
            # with CUDA graphs, every slot up front: growing moves the state and drops the graphs
            growth = self.config.slot_growth
            pool = self.pools[r] = self.model_step.arena(
                r, self.config.max_streams if self.model_step.graphs is not None else growth, growth)
            self.ready[r] = {}
        sid = next(self._ids)
        self.streams[sid] = EngineStream(
            id=sid, right_context=r, slot=pool.acquire(), language=lang,
            resampler=StreamResampler(sample_rate, SAMPLE_RATE), windows=SampleWindows(self.model.config.frontend),
            text=IncrementalText(self.recognizer.tokenizer, FRAME_S),
            endpoint_ms=endpoint, silence_ms=silence)
        if tree is not None and tree.nodes > 1:
            s = self.streams[sid]
            s.boost = pool.boost.add(tree)
            pool.attach_boost(s.slot, s.boost)
        return sid

    def stream(self, stream_id: int) -> EngineStream:
        s = self.streams.get(stream_id)
        if s is None:
            raise OnePassError(f"no open stream {stream_id}")
        return s

    def set_endpointing(self, stream_id: int, endpoint_ms: int | None = None,
                        silence_ms: int | None = None) -> None:
        """Change a stream's endpointing from now on (same meaning as in ``open``)."""
        s = self.stream(stream_id)
        s.endpoint_ms = _ms(endpoint_ms, self.config.endpoint_blank_ms)
        s.silence_ms = _ms(silence_ms, None)
        s.held = False  # a held endpoint was the old setting's: the new one decides again

    def set_hotwords(self, stream_id: int, hotwords=None, hotword_boost: float | None = None) -> None:
        """Replace a stream's phrases from its next label on (None or []: none); same meaning as in ``open``."""
        s = self.stream(stream_id)
        phrases = hotword_settings(hotwords, hotword_boost)
        tree = compile_phrases(self.recognizer.tokenizer, phrases, self.model_step.config.beam) if phrases else None
        pool = self.pools[s.right_context]
        old, s.boost = s.boost, None
        if tree is not None and tree.nodes > 1:
            s.boost = pool.boost.add(tree)
        pool.attach_boost(s.slot, s.boost)
        if old is not None:
            pool.boost.remove(old)

    def accept(self, stream_id: int, samples: np.ndarray) -> None:
        """Add audio (at the rate given to open()); int or float PCM, mono or (n, channels)."""
        s = self.stream(stream_id)
        if s.input_done:
            raise OnePassError("this stream is finished; open a new one")
        samples = to_mono_float32(np.asarray(samples))
        self._ready(s, lambda: s.push(samples))

    def finish(self, stream_id: int) -> None:
        """No more audio: the next steps encode the rest and report "closed"."""
        s = self.stream(stream_id)
        if s.input_done:
            raise OnePassError("this stream is already finished")

        def _finish():
            s.push(np.zeros(0, np.float32), last=True)
            s.input_done = True

        self._ready(s, _finish)

    def finalize(self, stream_id: int, flush: bool = False) -> list[StreamEvent]:
        """End the current utterance.

        ``flush=False``: at what has been decoded so far; returns its "utterance_end" (if any text).
        ``flush=True``: after all audio received so far, exactly as ``finish`` would end it (the
        last partial chunk is encoded with the offline right padding), but the stream stays
        open: later audio starts a new segment with fresh model state, its times continuing
        from the stream start. The next steps report the segment's last results, its
        "utterance_end" and then one "flushed" event; when there is no audio since the last
        flush, the "flushed" event is returned at once."""
        s = self.stream(stream_id)
        if not flush:
            return [self._end_utterance(s, reason="finalize")] if s.text.has_text(s.emitted.token_ids) else []
        if s.input_done:
            raise OnePassError("this stream is already finished")
        if s.segment_input == 0 and not s.segment_ends:  # nothing new: the stream is already at a boundary
            return [self._event(s, "flushed", "", 0.0)]
        self._ready(s, s.end_segment)
        return []

    def close(self, stream_id: int) -> None:
        """Drop a stream now (client gone); its slot is reused."""
        s = self.streams.pop(stream_id, None)
        if s is not None and not s.closed:
            s.closed = True
            self._release(self.pools[s.right_context], s)
            self.ready[s.right_context].pop(s.id, None)

    @staticmethod
    def _release(pool: StateArena, s: EngineStream) -> None:
        if s.boost is not None:
            pool.boost.remove(s.boost)
        pool.release(s.slot)

    def _ready(self, s: EngineStream, change) -> None:
        """Apply ``change`` and note when the steps it made runnable became ready (latency)."""
        before = steps_ready(s, self.factor)
        change()
        after = steps_ready(s, self.factor)
        s.ready_at.extend([time.monotonic()] * max(0, after - before))
        self._queue(s, after)

    def _queue(self, s: EngineStream, steps: int) -> None:
        """Keep the ready queue of the stream's chunk size in step with its ``steps`` runnable."""
        queue = self.ready[s.right_context]
        if steps > 0 and not s.closed:
            queue[s.id] = s
        else:
            queue.pop(s.id, None)

    # ---- step loop ---------------------------------------------------------------------
    def has_work(self) -> bool:
        return any(self.ready.values())

    def step(self) -> list[StreamEvent]:
        """One batched step per chunk size: schedule -> execute -> update. The batch sizes
        run are in ``last_batches``, the streams in ``last_streams``."""
        events: list[StreamEvent] = []
        sizes, ran = [], []
        for r, pool in list(self.pools.items()):
            batch = schedule(list(self.ready[r].values()), self.config.max_batch)
            if batch:
                sizes.append(len(batch))
                ran += [s.id for s in batch]
                events += self._update(pool, batch, *self._execute(pool, batch))
                for s in batch:
                    self._queue(s, steps_ready(s, self.factor))
        self.last_batches, self.last_streams = tuple(sizes), tuple(ran)
        return events

    def run_until_idle(self) -> list[StreamEvent]:
        events = []
        while self.has_work():
            events += self.step()
        return events

    def _execute(self, pool: StateArena, batch: list[EngineStream]):
        """Each stream's next chunk (the first of a segment with its lead) as one step."""
        r = pool.right_context
        lead0 = self.model_step.first_lead()
        rows = []
        for s in batch:
            need = chunk_frames(not s.started, r, self.factor)
            segment = s.segment_ends[0].frames if s.segment_ends else s.pending
            final = (bool(s.segment_ends) or s.input_done) and segment <= need
            rows.append(Row(s.slot, None, 0 if s.started else lead0, final, s.language.prompt or 0,
                            s.frame_offset, audio=s.take(min(segment, need))))
            s.started = True
        # in slot order: streams that run every step then have consecutive slots (arena views)
        order = sorted(range(len(rows)), key=lambda i: rows[i].slot)
        result = self.model_step.run_rows(pool, [rows[i] for i in order])
        emissions, frames = [None] * len(rows), [0] * len(rows)
        for k, i in enumerate(order):
            emissions[i], frames[i] = result.emissions[k], result.frames[k]
        return emissions, frames, [row.final for row in rows]

    def _update(self, pool: StateArena, batch, emissions, n_frames, final) -> list[StreamEvent]:
        events = []
        now = time.monotonic()
        for s, e, n, is_final in zip(batch, emissions, n_frames, final):
            latency = now - s.ready_at.popleft() if s.ready_at else 0.0
            if s.held and e.token_ids:  # the held endpoint's last piece is decided by this one
                s.held = False
                if starts_word(self.recognizer.tokenizer, e.token_ids[0]):
                    events.append(self._end_utterance(s, latency, "endpoint"))
            if e.token_ids:
                if s.utterance_start_frame is None:
                    s.utterance_start_frame = e.frames[0]
                s.blank_frames = s.frames_decoded + n - 1 - e.frames[-1]
                s.silence_armed = True
            else:
                s.blank_frames += n
            s.frames_decoded += n
            extend(s.emitted, e)
            if e.token_ids:
                events.append(self._partial(s, e.token_ids, latency))
            blank_ms = s.blank_frames * FRAME_S * 1000
            has_text = s.text.has_text(s.emitted.token_ids)
            if has_text and is_final:
                events.append(self._end_utterance(s, latency, "finalize" if s.segment_ends else "end"))
            elif has_text and s.endpoint_ms is not None and blank_ms >= s.endpoint_ms:
                hold = self.config.word_hold_ms
                if (ends_word(self.recognizer.tokenizer, s.emitted.token_ids[-1])
                        or (hold is not None and blank_ms >= s.endpoint_ms + hold)):
                    events.append(self._end_utterance(s, latency, "endpoint"))
                else:
                    s.held = True
            if s.silence_armed and s.silence_ms is not None and blank_ms >= s.silence_ms:
                s.silence_armed = False
                events.append(self._event(s, "silence", "", latency,
                                          start_s=(s.frames_decoded - s.blank_frames) * FRAME_S))
            if is_final and s.segment_ends:
                events.append(self._new_segment(pool, s, latency))
            elif is_final:
                events.append(self._close_event(s, latency))
        return events

    def _new_segment(self, pool: StateArena, s: EngineStream, latency: float) -> StreamEvent:
        """The flushed segment is decoded: report it, then reset the model state of the slot."""
        event = self._event(s, "flushed", "", latency)
        end = s.segment_ends.popleft()
        pool.release(s.slot)
        s.slot = pool.acquire()  # the initial encoder and decoder state
        if s.boost is not None:
            pool.attach_boost(s.slot, s.boost)  # the stream's phrases, from the root
        s.started = False
        s.frame_offset = s.frames_decoded = round(end.samples / FRAME_SAMPLES)
        s.utterance_start_frame = None
        s.text = IncrementalText(self.recognizer.tokenizer, FRAME_S, start=len(s.emitted.token_ids))
        return event

    # ---- events ------------------------------------------------------------------------
    def _event(self, s: EngineStream, kind: str, text: str, latency: float, **kw) -> StreamEvent:
        code = (s.text.tags[0] if s.language.auto and s.text.tags else s.language.code)
        kw.setdefault("start_s", (s.utterance_start_frame or 0) * FRAME_S)
        return StreamEvent(stream_id=s.id, seq=s.next_seq(), kind=kind, utterance_id=s.utterance_id, text=text,
                           end_s=s.frames_decoded * FRAME_S, language=code,
                           language_detected=s.language.auto,
                           lag_s=max(0.0, s.samples_in / SAMPLE_RATE - s.frames_decoded * FRAME_S),
                           latency_s=latency, **kw)

    def _partial(self, s: EngineStream, new_ids: list[int], latency: float) -> StreamEvent:
        e = s.emitted
        text, delta, words = s.text.update(e.token_ids, e.frames, e.probs)
        return self._event(s, "partial", text, latency, delta=delta, new_token_ids=list(new_ids), new_words=words)

    def _end_utterance(self, s: EngineStream, latency: float = 0.0, reason: str = "finalize") -> StreamEvent:
        e = s.emitted
        text, delta, words = s.text.update(e.token_ids, e.frames, e.probs, final=True)
        event = self._event(s, "utterance_end", text, latency, delta=delta, new_words=words, reason=reason)
        s.held = False
        s.utterance_id += 1
        s.utterance_start_frame = None
        s.text = IncrementalText(self.recognizer.tokenizer, FRAME_S, start=len(e.token_ids))
        return event

    def _close_event(self, s: EngineStream, latency: float) -> StreamEvent:
        transcript = make_transcript(self.recognizer.tokenizer, s.language, s.emitted, s.samples_in / SAMPLE_RATE)
        event = self._event(s, "closed", transcript.text, latency, transcript=transcript)
        s.closed = True
        self._release(self.pools[s.right_context], s)
        del self.streams[s.id]
        return event
