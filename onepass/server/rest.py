"""OpenAI-style REST: ``POST /v1/audio/transcriptions`` and ``GET /v1/models``.

Uploads go through the same engine as live streams (one stream each, batched with the rest),
so a REST transcript is exactly the offline transcript of the file.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from ..audio import load_audio
from ..decoding.phrases import split_phrases
from ..errors import OnePassError
from ..writers import format_transcript
from .auth import authorized
from .gate import error_response, overloaded, unauthorized
from .protocol import Model, ModelList, TextDelta, TextDone, TranscriptionJSON

router = APIRouter()
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
MEDIA = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}


def _state(request: Request):
    return request.app.state.onepass


@router.get("/v1/models")
async def models(request: Request):
    state = _state(request)
    if not authorized(state.config.api_keys, request.headers, request.query_params):
        return unauthorized()
    return ModelList(data=[Model(id=state.config.model_name)]).model_dump()


@router.post("/v1/audio/transcriptions")
async def transcriptions(request: Request, file: UploadFile = File(...), model: Optional[str] = Form(None),
                         language: Optional[str] = Form(None), response_format: str = Form("json"),
                         stream: bool = Form(False), chunk_ms: Optional[int] = Form(None),
                         prompt: Optional[str] = Form(None), temperature: Optional[float] = Form(None)):
    state = _state(request)
    if not authorized(state.config.api_keys, request.headers, request.query_params):
        return unauthorized()
    if response_format not in FORMATS:
        return error_response(400, f"response_format must be one of {', '.join(FORMATS)}",
                              "invalid_request_error", param="response_format")
    try:
        state.recognizer.language(language)
        state.recognizer.config.right_context_for_chunk_ms(chunk_ms)
        hotwords = state.config.stream_hotwords(split_phrases(prompt or ""))  # the prompt: phrases to boost
        state.recognizer.hotwords(hotwords)
        samples, rate = await _read_upload(file, state.config.max_upload_bytes, state.config.max_upload_s)
    except OnePassError as exc:
        return error_response(400, str(exc), "invalid_request_error")
    lease = state.runner.try_lease()
    if lease is None:
        return overloaded(state.config.retry_after_s)
    sid = None
    try:
        sid, events = await state.runner.open(language, chunk_ms, rate, hotwords=hotwords)
        await state.runner.accept(sid, samples, rate)
        await state.runner.finish(sid)
    except BaseException as exc:  # a refusal, or a client gone meanwhile (cancelled): nothing stays held
        lease.release()
        if sid is not None:  # (an open cancelled while it ran is closed by the runner itself)
            state.runner.close_soon(sid)
        if isinstance(exc, OnePassError):
            return error_response(400, str(exc), "invalid_request_error")
        raise
    state.metrics.streams.labels("rest").inc()
    if stream:
        def release() -> None:
            lease.release()
            state.runner.close_soon(sid)

        return _Stream(_sse(events), release, media_type="text/event-stream")
    try:
        transcript = await _collect(events)
    finally:
        lease.release()
        state.runner.close_soon(sid)
    if transcript is None:
        return error_response(500, "internal engine error", "server_error")
    if response_format == "json":
        return JSONResponse(TranscriptionJSON(text=transcript.text, language=transcript.language,
                                              language_detected=transcript.language_detected).model_dump())
    if response_format == "verbose_json":
        return Response(format_transcript(transcript, "verbose_json"), media_type="application/json")
    fmt = "txt" if response_format == "text" else response_format
    return PlainTextResponse(format_transcript(transcript, fmt), media_type=MEDIA[response_format])


async def _read_upload(file: UploadFile, limit: int, max_s: float):
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise OnePassError(f"file is larger than {limit} bytes; split it or raise --max-upload-mb")
    if not data:
        raise OnePassError("the uploaded file is empty")
    name = file.filename or "the upload"
    suffix = "".join(c for c in Path(name).suffix[:16] if c.isalnum() or c == ".")  # ffmpeg guesses by it

    def _decode():
        fd, path = tempfile.mkstemp(suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return load_audio(path, max_s)
        except OnePassError as exc:  # name the client's file, not our temporary one
            raise OnePassError(str(exc).replace(path, repr(name[:200]))) from None
        finally:
            os.unlink(path)

    return await asyncio.to_thread(_decode)


async def _collect(events: asyncio.Queue):
    while True:
        ev = await events.get()
        if isinstance(ev, Exception):
            return None
        if ev.kind == "closed":
            return ev.transcript


class _Stream(StreamingResponse):
    """A streamed response that releases its stream however it ends: also when the client is gone
    before the first byte (starlette then never starts the body generator, so a ``finally`` in it
    would not run)."""

    def __init__(self, content, release, **kwargs):
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # no awaits: this task may be being cancelled
            self._release()


async def _sse(events: asyncio.Queue):
    """``transcript.text.delta`` per new text, then ``transcript.text.done``."""
    sent = ""
    while True:
        ev = await events.get()
        if isinstance(ev, Exception):
            yield f"data: {json.dumps({'type': 'error', 'error': {'message': str(ev)}})}\n\n"
            return
        if ev.kind == "closed":
            t = ev.transcript
            done = TextDone(text=t.text, language=t.language, language_detected=t.language_detected)
            yield f"data: {done.model_dump_json()}\n\n"
            return
        delta = ev.delta
        if delta and sent and not delta[0].isspace() and ev.text == delta:  # a new utterance
            delta = " " + delta
        if delta:
            sent += delta
            yield f"data: {TextDelta(delta=delta).model_dump_json()}\n\n"
