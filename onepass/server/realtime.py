"""OpenAI Realtime transcription: ``GET /v1/realtime?intent=transcription`` (WebSocket).

Audio is base64 PCM16 in ``input_audio_buffer.append`` (24 kHz like OpenAI, or the rate set in
the session). With ``turn_detection`` server_vad (default) our endpointing ends items after
``silence_duration_ms`` without new words; with null, items end on ``input_audio_buffer.commit``.
A commit decodes all audio appended so far (the last partial chunk included) and completes the
item; later audio starts a fresh segment. ``clear`` discards what was not yet transcribed.
Text streams as ``...delta`` and each item ends with ``...completed``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import uuid

import numpy as np
from fastapi import WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from ..audio import check_rate, decode_pcm
from ..decoding.phrases import split_phrases
from ..engine import StreamEvent
from ..errors import OnePassError
from .gate import admit
from .protocol import (RT_CLIENT_IN, RT_SESSION_IN, RTCleared, RTCommitted, RTCompleted, RTDelta, RTError,
                       RTErrorBody, RTSession, RTSessionEvent, RTSpeechStarted, RTSpeechStopped, RTTranscription,
                       RTTurnDetection)
from .session import Session

OPENAI_RATE = 24000  # Hz, what "pcm16" means in OpenAI's API
COMMIT, CLEAR = "commit", "clear"


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class RealtimeSession(Session):
    def __init__(self, ws: WebSocket, sid: int, events, rate: int, prefix: str):
        super().__init__(ws, sid, events)
        self.prefix = prefix  # "transcription_session" or "session"
        self.session_id = _id("sess")
        self.rate, self.language, self.chunk_ms = rate, None, None
        self.prompt = None  # input_audio_transcription.prompt: the boosted phrases (after the server's)
        self.hotwords = self.config.stream_hotwords()
        self.vad: RTTurnDetection | None = RTTurnDetection()
        self.model = self.config.model_name
        self.audio_started = False
        self.item_id, self.previous_item = _id("item"), None
        self.item_text, self.item_audio = "", False
        self.speaking = False

    @property
    def endpoint_ms(self) -> int | None:
        """The engine endpointing for the turn detection: off for manual commits."""
        return 0 if self.vad is None else self.vad.silence_duration_ms

    def _session(self) -> RTSession:
        fmt = "pcm16" if self.rate == OPENAI_RATE else f"pcm16_{self.rate}"
        return RTSession(id=self.session_id, input_audio_format=fmt, input_audio_sample_rate=self.rate,
                         input_audio_transcription=RTTranscription(model=self.model, language=self.language,
                                                                   prompt=self.prompt),
                         turn_detection=self.vad, chunk_ms=self.chunk_ms)

    async def on_start(self) -> None:
        await self.send(RTSessionEvent(type=f"{self.prefix}.created", event_id=_id("event"), session=self._session()))

    async def error(self, message: str, code: str, param: str | None = None, event_id: str | None = None) -> None:
        await self.send(RTError(event_id=_id("event"), error=RTErrorBody(
            type="invalid_request_error", code=code, message=message, param=param, event_id=event_id)))

    # ---- client -> engine --------------------------------------------------------------
    async def on_bytes(self, data: bytes) -> None:
        await self.error("binary frames are not part of this protocol; send input_audio_buffer.append "
                         "with base64 audio", "invalid_message")

    async def on_text(self, text: str) -> str | None:
        try:
            ev = RT_CLIENT_IN.validate_python(json.loads(text))
        except (ValueError, ValidationError):
            await self.error("expected a JSON object with a 'type'", "invalid_json")
            return None
        if ev.type == "input_audio_buffer.append":
            await self._append(ev)
        elif ev.type in ("transcription_session.update", "session.update"):
            await self._update(ev)
        elif ev.type == "input_audio_buffer.commit":
            await self.runner.finalize(self.sid, marker=COMMIT)
        elif ev.type == "input_audio_buffer.clear":
            await self.runner.finalize(self.sid, marker=CLEAR, drop=True)
        else:
            await self.error(f"unsupported event type {ev.type!r}", "unknown_event", "type", ev.event_id)
        return None

    async def _append(self, ev) -> None:
        try:
            data = base64.b64decode(ev.audio or "", validate=True)
            samples = np.array(decode_pcm(data, "linear16"))
        except (binascii.Error, ValueError, OnePassError) as exc:
            await self.error(f"audio must be base64 PCM16 little endian: {exc}", "invalid_audio", "audio",
                             ev.event_id)
            return
        if len(samples):
            self.audio_started = self.item_audio = True
            self.recorder.write(samples, self.rate)
            await self.runner.accept(self.sid, samples, self.rate)

    async def _update(self, ev) -> None:
        session = ev.session or {}
        inp = session.get("audio", {}).get("input") if isinstance(session.get("audio"), dict) else None
        inp = inp if isinstance(inp, dict) else session  # GA shape nests the input config under audio.input
        try:
            cfg = RT_SESSION_IN.validate_python(inp)
        except (ValidationError, AttributeError) as exc:
            await self.error(f"bad session: {exc}", "invalid_session", "session", ev.event_id)
            return
        rate, language, chunk_ms = self.rate, self.language, self.chunk_ms
        fmt = cfg.input_audio_format if cfg.input_audio_format is not None else inp.get("format")
        try:
            if isinstance(fmt, dict):
                if fmt.get("type", "audio/pcm") not in ("audio/pcm", "pcm16"):
                    raise ValueError(f"format type {fmt.get('type')!r}")
                rate = fmt.get("rate", OPENAI_RATE)
                if isinstance(rate, bool) or not isinstance(rate, int):
                    raise ValueError(f"rate {rate!r}")
            elif isinstance(fmt, str):
                if not fmt.startswith("pcm16"):
                    raise ValueError(repr(fmt))
                rate = int(fmt.split("_", 1)[1]) if "_" in fmt else OPENAI_RATE
        except ValueError as exc:
            await self.error(f"unsupported input audio format ({exc}); use pcm16 (24 kHz) or "
                             "{\"type\": \"audio/pcm\", \"rate\": 16000}", "invalid_format", "input_audio_format",
                             ev.event_id)
            return
        t = cfg.input_audio_transcription or inp.get("transcription")
        try:
            if t is not None and not isinstance(t, RTTranscription):  # the GA shape, unchecked so far
                t = RTTranscription.model_validate(t)
        except ValidationError as exc:
            await self.error(f"bad transcription settings: {exc}", "invalid_session", "transcription", ev.event_id)
            return
        if t is not None:
            language, self.model = t.language or language, t.model or self.model
        prompt = t.prompt if t is not None and "prompt" in t.model_fields_set else self.prompt
        hotwords = self.hotwords
        if prompt != self.prompt:
            try:
                hotwords = self.config.stream_hotwords(split_phrases(prompt or ""))
                self.ws.app.state.onepass.recognizer.hotwords(hotwords)
            except OnePassError as exc:
                await self.error(f"bad prompt: {exc}", "invalid_session", "prompt", ev.event_id)
                return
        top = session.get("chunk_ms")  # ours; in the GA shape it may sit beside "audio"
        if cfg.chunk_ms is not None or top is not None:
            chunk_ms = cfg.chunk_ms if cfg.chunk_ms is not None else top
            if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, int):
                await self.error(f"chunk_ms must be whole milliseconds, got {chunk_ms!r}", "invalid_session",
                                 "chunk_ms", ev.event_id)
                return
        vad_changed = "turn_detection" in inp and cfg.turn_detection != self.vad
        if "turn_detection" in inp:
            self.vad = cfg.turn_detection
        if (rate, language, chunk_ms) != (self.rate, self.language, self.chunk_ms):
            if self.audio_started:
                await self.error("audio format, language and chunk size cannot change after audio was "
                                 "appended; open a new connection", "session_locked", "session", ev.event_id)
                return
            recognizer = self.ws.app.state.onepass.recognizer
            try:  # check first: the old stream is closed before the new one opens (it holds the place)
                check_rate(rate)
                recognizer.language(language)
                recognizer.config.right_context_for_chunk_ms(chunk_ms)
            except OnePassError as exc:
                await self.error(str(exc), "invalid_session", "session", ev.event_id)
                return
            await self.runner.close(self.sid)
            self.sid, _ = await self.runner.open(language, chunk_ms, rate, self.events, endpoint_ms=self.endpoint_ms,
                                                 hotwords=hotwords)
            self.rate, self.language, self.chunk_ms = rate, language, chunk_ms
        else:
            if vad_changed:
                await self.runner.set_endpointing(self.sid, self.endpoint_ms)
            if prompt != self.prompt:  # new phrases from the next label on, mid-stream too
                await self.runner.set_hotwords(self.sid, hotwords)
        self.prompt, self.hotwords = prompt, hotwords
        await self.send(RTSessionEvent(type=f"{self.prefix}.updated", event_id=_id("event"), session=self._session()))

    async def on_error(self, message: str) -> None:
        await self.error(message, "invalid_request")

    async def on_timeout(self) -> None:
        await self.error(f"no events for {self.config.idle_timeout_s:g} s; closing", "idle_timeout")

    async def on_oversize(self, size: int) -> None:
        await self.error(f"message of {size} bytes exceeds the {self.config.max_message_bytes}-byte limit",
                         "message_too_large")

    # ---- engine -> client --------------------------------------------------------------
    def translate(self, ev: StreamEvent) -> list:
        out = []
        if ev.kind == "partial" and ev.delta:
            if self.vad is not None and not self.speaking:
                self.speaking = True
                out.append(RTSpeechStarted(event_id=_id("event"), audio_start_ms=int(ev.start_s * 1000),
                                           item_id=self.item_id))
            delta = ev.delta
            if self.item_text and ev.text == delta and not delta[0].isspace():
                delta = " " + delta  # manual mode: a new utterance inside the same item
            self.item_text += delta
            out.append(RTDelta(event_id=_id("event"), item_id=self.item_id, delta=delta, language=ev.language,
                               language_detected=ev.language_detected, lag_s=ev.lag_s))
        elif ev.kind == "utterance_end":
            if ev.delta:
                self.item_text += ev.delta
                out.append(RTDelta(event_id=_id("event"), item_id=self.item_id, delta=ev.delta,
                                   language=ev.language, language_detected=ev.language_detected, lag_s=ev.lag_s))
            self.last_language = (ev.language, ev.language_detected)
            if self.vad is not None and ev.reason != "finalize":  # a commit completes at its marker
                out.append(RTSpeechStopped(event_id=_id("event"), audio_end_ms=int(ev.end_s * 1000),
                                           item_id=self.item_id))
                out += self._complete()
        return out

    def _complete(self) -> list:
        lang, detected = getattr(self, "last_language", (None, False))
        out = [RTCommitted(event_id=_id("event"), item_id=self.item_id, previous_item_id=self.previous_item),
               RTCompleted(event_id=_id("event"), item_id=self.item_id, transcript=self.item_text.strip(),
                           language=lang, language_detected=detected)]
        self.previous_item, self.item_id = self.item_id, _id("item")
        self.item_text, self.item_audio, self.speaking = "", False, False
        return out

    async def on_closed(self, ev: StreamEvent) -> None:
        """The stream ended (server shutdown): complete the item still open."""
        if self.item_text:
            for msg in self._complete():
                await self.send(msg)

    async def on_marker(self, marker: object) -> None:
        if marker == CLEAR:
            self.item_text, self.item_audio, self.speaking = "", False, False
            await self.send(RTCleared(event_id=_id("event")))
        elif marker == COMMIT:
            if not (self.item_text or self.item_audio):
                await self.error("the input audio buffer is empty; append audio before committing",
                                 "input_audio_buffer_commit_empty")
                return
            for msg in self._complete():
                await self.send(msg)


def _query_rate(value: str | None) -> int:
    """``?sample_rate=`` (ours; OpenAI's 24 kHz without it)."""
    if value is None or value == "":
        return OPENAI_RATE
    if not (value.isascii() and value.isdigit()):  # "²".isdigit() is True, but int() refuses it
        raise OnePassError(f"sample_rate must be a whole number of Hz, got {value[:100]!r}")
    return check_rate(int(value), "sample_rate")


async def realtime(ws: WebSocket) -> None:
    state = ws.app.state.onepass
    lease = await admit(ws)
    if lease is None:
        return
    try:
        await ws.accept()
        prefix = "transcription_session" if ws.query_params.get("intent") == "transcription" else "session"
        try:
            rate = _query_rate(ws.query_params.get("sample_rate"))
            sid, events = await state.runner.open(None, None, rate, hotwords=state.config.stream_hotwords())
        except OnePassError as exc:
            with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):  # the client may be gone
                await ws.send_text(RTError(event_id=_id("event"), error=RTErrorBody(
                    type="invalid_request_error", code="invalid_session", message=str(exc))).model_dump_json())
                await ws.close(1008)
            return
        state.metrics.streams.labels("realtime").inc()
        await RealtimeSession(ws, sid, events, rate, prefix).run()
    finally:
        lease.release()
