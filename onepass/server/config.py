"""Server settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..decoding.phrases import HotwordSettings, Phrase, hotword_settings


@dataclass(frozen=True)
class ServerConfig:
    model_name: str = "onepass"  # id reported by /v1/models and in Deepgram metadata
    api_keys: tuple[str, ...] = ()  # accepted keys; empty: no authentication
    max_streams: int = 16  # open streams (WebSocket + REST) the engine admits; more get 503
    max_batch: int = 16  # streams per batched engine step
    endpoint_blank_ms: int | None = 800  # silence (no tokens) that ends an utterance, ms
    word_hold_ms: int | None = 1500  # more silence an endpoint may wait for a word to end (EngineConfig)
    max_message_bytes: int = 1 << 20  # largest WebSocket message accepted, bytes
    max_upload_bytes: int = 100 << 20  # largest REST upload, bytes
    max_upload_s: float = 4 * 3600.0  # longest REST upload, seconds of audio (checked before decoding)
    idle_timeout_s: float = 30.0  # close a WebSocket that sends nothing (audio or KeepAlive) this long
    retry_after_s: int = 2  # Retry-After on 503 when at capacity, seconds
    cors_origins: tuple[str, ...] = field(default_factory=tuple)  # browser origins allowed for REST
    chunk_ms: int | None = None  # chunk size of streams that do not choose one (None: the model's default)
    drain_timeout_s: float = 30.0  # on shutdown, wait this long for open streams to finish
    record_dir: str | None = None  # keep each live stream's received audio here as WAV (None: don't)
    hotwords: tuple[Phrase, ...] = ()  # phrases boosted in every stream (--hotwords-file), before a request's own
    hotword_boost: float | None = None  # default boost of phrases without their own (None: onepass's default)

    def stream_hotwords(self, phrases=()) -> HotwordSettings:
        """A request's phrases after the server's; OnePassError (HTTP 400, a protocol error) past a limit."""
        return hotword_settings(list(self.hotwords) + list(phrases), self.hotword_boost)
