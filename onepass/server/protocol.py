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
    status: Literal["ok", "loading"]
    model: Optional[str] = None
    active_streams: int = 0
    capacity: int = 0
