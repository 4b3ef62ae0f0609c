"""Prometheus metrics, one registry per app (so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.active = Gauge("onepass_active_streams", "Streams open now", registry=r)
        self.refused = Counter("onepass_refused_streams", "Streams refused at capacity", registry=r)
        self.streams = Counter("onepass_streams", "Streams opened", ["protocol"], registry=r)
        self.latency = Histogram("onepass_chunk_latency_seconds", "Chunk complete -> result",
                                 buckets=LATENCY_BUCKETS_S, registry=r)
        self.lag = Histogram("onepass_lag_seconds", "Audio received but not yet decoded",
                             buckets=LAG_BUCKETS_S, registry=r)
        self.audio_seconds = Counter("onepass_audio_seconds", "Audio received, seconds", registry=r)
        self.step_seconds = Counter("onepass_step_seconds", "Wall time in engine steps", registry=r)
        self.batch_size = Histogram("onepass_batch_size", "Streams per engine step",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.rtf = Gauge("onepass_real_time_factor", "Engine step time / audio received", registry=r)
        self.rtf.set_function(self._rtf)

    def _rtf(self) -> float:
        audio = self.audio_seconds._value.get()
        return self.step_seconds._value.get() / audio if audio else 0.0

    def observe_event(self, ev) -> None:
        self.latency.observe(ev.latency_s)
        self.lag.observe(ev.lag_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
