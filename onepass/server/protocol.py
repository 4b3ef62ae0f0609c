"""Every wire schema the server speaks: Deepgram live, OpenAI REST and Realtime, errors.

One pydantic class per message, ``type`` as a Literal. Handlers build these and send
``model_dump_json()``; incoming JSON is parsed with the ``*_IN`` adapters.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- errors (HTTP and before-upgrade refusals) ---------------------------------------------
class ErrorBody(BaseModel):
    message: str
    type: str  # "invalid_request_error", "authentication_error", "overloaded_error", ...
    code: Optional[str] = None
    param: Optional[str] = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# ---- Deepgram live (/v1/listen) ------------------------------------------------------------
class DGWord(BaseModel):
    word: str  # lower case, no surrounding punctuation
    start: float  # seconds from stream start
    end: float
    confidence: float
    punctuated_word: str  # as written
    language: Optional[str] = None


class DGAlternative(BaseModel):
    transcript: str
    confidence: float
    words: list[DGWord]
    languages: list[str] = Field(default_factory=list)


class DGChannel(BaseModel):
    alternatives: list[DGAlternative]


class DGModelInfo(BaseModel):
    name: str
    version: str = "1"
    arch: str = "nemotron-rnnt"


class DGResultsMetadata(BaseModel):
    request_id: str
    model_info: DGModelInfo
    model_uuid: str


class OnePassInfo(BaseModel):
    """Our additions to a result: the language used and how far behind real time we are."""

    language: Optional[str]
    language_detected: bool  # True when the model chose the language (language=auto)
    lag_s: float  # audio received but not yet decoded
    latency_s: float  # chunk complete -> this result


class DGResults(BaseModel):
    type: Literal["Results"] = "Results"
    channel_index: list[int] = Field(default_factory=lambda: [0, 1])
    duration: float
    start: float
    is_final: bool  # this text will not change
    speech_final: bool  # the speaker paused (endpoint)
    from_finalize: bool = False
    channel: DGChannel
    metadata: DGResultsMetadata
    onepass: OnePassInfo


class DGUtteranceEnd(BaseModel):
    type: Literal["UtteranceEnd"] = "UtteranceEnd"
    channel: list[int] = Field(default_factory=lambda: [0, 1])
    last_word_end: float


class DGMetadata(BaseModel):
    type: Literal["Metadata"] = "Metadata"
    transaction_key: str = "deprecated"
    request_id: str
    sha256: str = ""
    created: str
    duration: float  # audio seconds received
    channels: int
    models: list[str]
    model_info: dict[str, DGModelInfo]
    onepass: Optional["StreamSummary"] = None


class StreamSummary(BaseModel):
    """Ours, in the closing Metadata: the whole transcript, exactly as offline transcription gives it."""

    transcript: str
    language: Optional[str]
    language_detected: bool


class DGError(BaseModel):
    type: Literal["Error"] = "Error"
    variant: str  # "SchemaError" (unparsable message), "DataError" (bad audio), "Timeout", ...
    description: str
    message: Optional[str] = None  # the offending client message, for SchemaError


class DGControl(_In):
    type: Literal["KeepAlive", "Finalize", "CloseStream"]


DG_CONTROL_IN = TypeAdapter(DGControl)


# ---- OpenAI REST ----------------------------------------------------------------------------
class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "onepass"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class TranscriptionJSON(BaseModel):
    text: str
    language: Optional[str] = None  # ours: the language used
    language_detected: bool = False


class TextDelta(BaseModel):
    type: Literal["transcript.text.delta"] = "transcript.text.delta"
    delta: str


class TextDone(BaseModel):
    type: Literal["transcript.text.done"] = "transcript.text.done"
    text: str
    language: Optional[str] = None
    language_detected: bool = False


class Health(BaseModel):
    status: Literal["ok", "loading", "draining"]
    model: Optional[str] = None
    active_streams: int = 0
    capacity: int = 0


# ---- OpenAI Realtime transcription (/v1/realtime?intent=transcription) ----------------------
class RTTranscription(_In):
    model: Optional[str] = None
    language: Optional[str] = None
    prompt: Optional[str] = None  # phrases to boost (``phrases.split_phrases``: commas, semicolons, lines, sentences)


class RTTurnDetection(_In):
    type: str = "server_vad"  # "server_vad" (our endpointing ends items) or "semantic_vad" (the same)
    silence_duration_ms: Optional[int] = Field(default=None, ge=0, le=600_000)  # None: the server's default
    threshold: Optional[float] = None  # accepted, not used (endpoints come from the decoder, not energy)
    prefix_padding_ms: Optional[int] = None  # accepted, not used


class RTSessionConfig(_In):
    input_audio_format: Optional[Union[str, dict]] = None  # "pcm16" (24 kHz) or {"type": "audio/pcm", "rate": N}
    input_audio_transcription: Optional[RTTranscription] = None
    turn_detection: Optional[RTTurnDetection] = Field(default=None)
    chunk_ms: Optional[int] = None  # ours


class RTClientEvent(_In):
    type: str
    event_id: Optional[str] = None
    session: Optional[dict] = None
    audio: Optional[str] = None  # base64 PCM, for input_audio_buffer.append


class RTSession(BaseModel):
    id: str
    object: Literal["realtime.transcription_session"] = "realtime.transcription_session"
    input_audio_format: str
    input_audio_sample_rate: int  # ours: the rate audio is read at
    input_audio_transcription: RTTranscription
    turn_detection: Optional[RTTurnDetection]
    chunk_ms: Optional[int] = None


class RTSessionEvent(BaseModel):
    type: Literal["transcription_session.created", "transcription_session.updated",
                  "session.created", "session.updated"]
    event_id: str
    session: RTSession


class RTSpeechStarted(BaseModel):
    type: Literal["input_audio_buffer.speech_started"] = "input_audio_buffer.speech_started"
    event_id: str
    audio_start_ms: int
    item_id: str


class RTSpeechStopped(BaseModel):
    type: Literal["input_audio_buffer.speech_stopped"] = "input_audio_buffer.speech_stopped"
    event_id: str
    audio_end_ms: int
    item_id: str


class RTCommitted(BaseModel):
    type: Literal["input_audio_buffer.committed"] = "input_audio_buffer.committed"
    event_id: str
    item_id: str
    previous_item_id: Optional[str] = None


class RTCleared(BaseModel):
    type: Literal["input_audio_buffer.cleared"] = "input_audio_buffer.cleared"
    event_id: str


class RTDelta(BaseModel):
    type: Literal["conversation.item.input_audio_transcription.delta"] = \
        "conversation.item.input_audio_transcription.delta"
    event_id: str
    item_id: str
    content_index: int = 0
    delta: str
    language: Optional[str] = None  # ours
    language_detected: bool = False  # ours
    lag_s: float = 0.0  # ours: audio received but not yet decoded


class RTCompleted(BaseModel):
    type: Literal["conversation.item.input_audio_transcription.completed"] = \
        "conversation.item.input_audio_transcription.completed"
    event_id: str
    item_id: str
    content_index: int = 0
    transcript: str
    language: Optional[str] = None  # ours
    language_detected: bool = False  # ours


class RTErrorBody(BaseModel):
    type: str  # "invalid_request_error", "server_error"
    code: Optional[str] = None
    message: str
    param: Optional[str] = None
    event_id: Optional[str] = None  # the client event that caused it


class RTError(BaseModel):
    type: Literal["error"] = "error"
    event_id: str
    error: RTErrorBody


RT_CLIENT_IN = TypeAdapter(RTClientEvent)
RT_SESSION_IN = TypeAdapter(RTSessionConfig)
