"""Deepgram-style live endpoint: ``GET /v1/listen`` (WebSocket).

Binary frames are PCM audio; text frames are KeepAlive / Finalize / CloseStream. Our text never
changes once emitted, so completed words go out at once as ``is_final`` Results; the word still
being spoken goes out as an interim (``interim_results=true``). ``endpointing`` (ms without
new words, or false) ends an utterance with ``speech_final``; ``Finalize`` decodes everything
received and answers with ``from_finalize``; ``utterance_end_ms`` sends ``UtteranceEnd`` after
that long without words.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import string
import uuid
from dataclasses import dataclass

import numpy as np
from fastapi import WebSocket
from pydantic import ValidationError

from ..audio import PCM_ENCODINGS, SAMPLE_RATE, check_rate, decode_pcm
from ..decoding.phrases import Phrase, parse_phrase
from ..engine import StreamEvent
from ..errors import OnePassError
from ..results import Word
from .gate import admit, deny, error_response
from .protocol import (DG_CONTROL_IN, DGAlternative, DGChannel, DGError, DGMetadata, DGModelInfo, DGResults,
                       DGResultsMetadata, DGUtteranceEnd, DGWord, OnePassInfo, StreamSummary)
from .recording import Recorder
from .session import Session

PUNCT = string.punctuation + "¿¡«»…“”‘’„。，、！？"
TRUE = ("true", "1", "yes")


@dataclass(frozen=True)
class ListenOptions:
    encoding: str = "linear16"
    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    language: str | None = None
    chunk_ms: int | None = None
    interim_results: bool = False
    endpointing_ms: int | None = None  # None: the server's default; 0: off (endpointing=false)
    utterance_end_ms: int | None = None  # UtteranceEnd after this long without words (None: never)
    phrases: tuple[Phrase, ...] = ()  # keyterm= (repeatable) and keywords=word[:boost] (repeatable), boosted

    @classmethod
    def parse(cls, q, recognizer) -> "ListenOptions":
        """Query parameters -> options; OnePassError names the bad one."""
        def num(name, default):
            v = q.get(name)
            if v is None or v == "":
                return default
            try:
                return int(v)
            except ValueError:
                raise OnePassError(f"{name} must be a whole number, got {v!r}") from None

        enc = q.get("encoding", "linear16")
        if enc not in PCM_ENCODINGS:
            raise OnePassError(f"encoding {enc!r} is not supported; use one of {', '.join(PCM_ENCODINGS)}")
        lang = q.get("language") or None
        if lang == "multi":  # Deepgram's name for code-switching / auto-detect
            lang = "auto"
        endpointing = q.get("endpointing", "")
        endpointing_ms = (0 if endpointing.lower() == "false" else None if endpointing.lower() in ("", "true")
                          else num("endpointing", None))
        opts = cls(encoding=enc, sample_rate=num("sample_rate", SAMPLE_RATE), channels=num("channels", 1),
                   language=lang, chunk_ms=num("chunk_ms", None),
                   interim_results=q.get("interim_results", "false").lower() in TRUE,
                   endpointing_ms=endpointing_ms, utterance_end_ms=num("utterance_end_ms", None),
                   phrases=tuple([Phrase(t) for t in _all(q, "keyterm")]
                                 + [parse_phrase(k) for k in _all(q, "keywords")]))
        for name in ("endpointing_ms", "utterance_end_ms"):
            value = getattr(opts, name)
            if value is not None and not 0 <= value <= 600_000:
                raise OnePassError(f"{name.removesuffix('_ms')} must be between 0 and 600000 ms, got {value}")
        check_rate(opts.sample_rate, "sample_rate")
        if not 1 <= opts.channels <= 64:
            raise OnePassError(f"channels must be between 1 and 64, got {opts.channels}")
        recognizer.language(opts.language)
        recognizer.config.right_context_for_chunk_ms(opts.chunk_ms)
        return opts


def _all(q, name: str) -> list[str]:
    """Every value of a repeatable query parameter."""
    values = q.getlist(name) if hasattr(q, "getlist") else ([q[name]] if name in q else [])
    return [v for v in values if v.strip()]


def _dg_word(w: Word, language: str | None) -> DGWord:
    plain = w.word.strip(PUNCT).lower() or w.word
    return DGWord(word=plain, start=w.start_s, end=w.end_s, confidence=w.confidence,
                  punctuated_word=w.word, language=language)


class DeepgramSession(Session):
    """Maps engine events of one stream onto Deepgram messages."""

    def __init__(self, ws: WebSocket, opts: ListenOptions, sid: int, events: asyncio.Queue):
        super().__init__(ws, sid, events)
        self.opts = opts
        self.request_id = str(uuid.uuid4())
        self.recorder = Recorder(self.config.record_dir, self.request_id)
        self.cursor_s = 0.0  # end of the audio covered by final results
        self.pending: list[Word] = []  # completed words of this utterance not yet sent as final
        self.sent_chars = 0  # characters of this utterance's text already sent as final
        self.flush_answered = False  # the segment being flushed (Finalize) ended with a result
        self.samples_in = 0

    # ---- client -> engine --------------------------------------------------------------
    async def on_bytes(self, data: bytes) -> None:
        try:
            samples = np.array(decode_pcm(data, self.opts.encoding, self.opts.channels))  # own, writable
        except OnePassError as exc:
            await self.send(DGError(variant="DataError", description=str(exc)))
            return
        if len(samples):
            self.samples_in += len(samples)
            self.recorder.write(samples, self.opts.sample_rate)
            await self.runner.accept(self.sid, samples, self.opts.sample_rate)

    async def on_text(self, text: str) -> str | None:
        try:
            msg = DG_CONTROL_IN.validate_python(json.loads(text))
        except (ValueError, ValidationError):
            await self.send(DGError(variant="SchemaError", message=text[:1000],
                                    description="expected JSON {\"type\": \"KeepAlive\" | \"Finalize\" | "
                                                "\"CloseStream\"} or binary audio"))
            return None
        if msg.type == "Finalize":
            await self.runner.finalize(self.sid)
        elif msg.type == "CloseStream":
            return "close"
        return None

    async def on_error(self, message: str) -> None:
        await self.send(DGError(variant="DataError", description=message))

    async def on_timeout(self) -> None:
        await self.send(DGError(variant="Timeout", description=f"no audio or KeepAlive for "
                                                               f"{self.config.idle_timeout_s:g} s; closing"))

    async def on_oversize(self, size: int) -> None:
        await self.send(DGError(variant="DataError", description=f"message of {size} bytes exceeds the "
                                f"{self.config.max_message_bytes}-byte limit; send smaller chunks"))

    async def on_closed(self, ev: StreamEvent) -> None:
        name, t = self.config.model_name, ev.transcript
        await self.send(DGMetadata(
            request_id=self.request_id, created=datetime.datetime.now(datetime.timezone.utc).isoformat(),
            duration=self.samples_in / self.opts.sample_rate, channels=self.opts.channels, models=[name],
            model_info={name: DGModelInfo(name=name)},
            onepass=StreamSummary(transcript=t.text, language=t.language, language_detected=t.language_detected)))

    # ---- engine -> client --------------------------------------------------------------
    def translate(self, ev: StreamEvent) -> list:
        out = []
        if ev.kind == "partial":
            self.pending += ev.new_words
            k, end = self._commit_point(ev.text)
            if k:
                out.append(self._results(ev, self.pending[:k], True, False, ev.text[self.sent_chars:end].strip()))
                self.pending, self.sent_chars = self.pending[k:], end
            tail = ev.text[self.sent_chars:].strip()
            if self.opts.interim_results and tail:
                out.append(self._results(ev, self.pending, False, False, tail))
        elif ev.kind == "utterance_end":
            words = self.pending + ev.new_words
            finalize = ev.reason == "finalize"
            out.append(self._results(ev, words, True, not finalize, ev.text[self.sent_chars:].strip(),
                                     from_finalize=finalize))
            self.pending, self.sent_chars = [], 0
            self.flush_answered = finalize
        elif ev.kind == "silence":
            out.append(DGUtteranceEnd(last_word_end=ev.start_s))
        elif ev.kind == "flushed":  # a Finalize is done; it always gets a from_finalize result
            if not self.flush_answered:
                out.append(self._results(ev, [], True, False, "", from_finalize=True))
            self.flush_answered = False
        return out

    def _commit_point(self, text: str) -> tuple[int, int]:
        """How many pending words end at a space in ``text``, and where: final results are cut
        only at spaces, so joining them with spaces (as Deepgram clients do) gives the text."""
        best, cur = (0, self.sent_chars), self.sent_chars
        for i, w in enumerate(self.pending):
            p = text.find(w.word, cur)
            if p < 0:
                break
            cur = p + len(w.word)
            if cur < len(text) and text[cur] == " ":
                best = (i + 1, cur)
        return best

    def _results(self, ev: StreamEvent, words: list[Word], is_final: bool, speech_final: bool,
                 text: str, from_finalize: bool = False) -> DGResults:
        start = self.cursor_s
        if is_final:
            self.cursor_s = max(self.cursor_s, ev.end_s)
        conf = sum(w.confidence for w in words) / len(words) if words else 0.0
        name = self.config.model_name
        return DGResults(
            start=start, duration=max(0.0, ev.end_s - start), is_final=is_final, speech_final=speech_final,
            from_finalize=from_finalize,
            channel=DGChannel(alternatives=[DGAlternative(
                transcript=text, confidence=conf, words=[_dg_word(w, ev.language) for w in words],
                languages=[ev.language] if ev.language else [])]),
            metadata=DGResultsMetadata(request_id=self.request_id, model_info=DGModelInfo(name=name),
                                       model_uuid=name),
            onepass=OnePassInfo(language=ev.language, language_detected=ev.language_detected,
                                lag_s=ev.lag_s, latency_s=ev.latency_s))


async def listen(ws: WebSocket) -> None:
    state = ws.app.state.onepass
    try:
        opts = ListenOptions.parse(ws.query_params, state.recognizer)
        hotwords = state.config.stream_hotwords(opts.phrases)
        state.recognizer.hotwords(hotwords)  # too many pieces: refused here, before the upgrade
    except OnePassError as exc:
        await deny(ws, error_response(400, str(exc), "invalid_request_error", "bad_option"))
        return
    lease = await admit(ws)
    if lease is None:
        return
    try:
        await ws.accept()
        sid, events = await state.runner.open(opts.language, opts.chunk_ms, opts.sample_rate,
                                              endpoint_ms=opts.endpointing_ms, silence_ms=opts.utterance_end_ms,
                                              hotwords=hotwords)
        state.metrics.streams.labels("deepgram").inc()
        await DeepgramSession(ws, opts, sid, events).run()
    finally:
        lease.release()
