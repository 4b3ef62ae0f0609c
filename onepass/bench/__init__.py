"""``onepass bench``: how fast the engine is, measured honestly.

Single-stream streaming RTFx per chunk size, real-time capacity (paced streams with staggered
starts, p95 chunk latency within the chunk), offline RTFx, memory per stream and over open/close
cycles; optionally the same for transformers' implementation on the same weights. Everything runs
through the public API (``Engine``, ``Recognizer.transcribe_batch``). See docs/benchmarks.md.
"""

from .factory import PRESETS, ModelPair, checkpoint_pair, random_pair
from .profile import format_profile, profile_step
from .report import table
from .results import BenchConfig
from .runner import run_bench

__all__ = ["BenchConfig", "ModelPair", "PRESETS", "checkpoint_pair", "format_profile", "profile_step",
           "random_pair", "run_bench", "table"]
