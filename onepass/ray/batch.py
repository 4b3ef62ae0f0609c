"""Batch transcription of a manifest on a Ray Data actor pool.

Each actor loads the model once and transcribes one file per call (the same offline path as
``onepass transcribe``, so the same text per file); files go out longest first and results
stream back to the driver as they complete, where ``manifest.run_job`` appends, resumes and
finally orders them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Iterator

from ..manifest import Item, output_line, transcriber
from . import require_ray
from .config import ModelSpec

BLOCKS_PER_WORKER = 64  # more blocks than workers, so no actor waits on another's long tail


class TranscribeActor:
    """A Ray Data callable class: one model load per actor."""

    def __init__(self, model: ModelSpec, chunk_ms: int | None, hotwords=None):
        self.transcribe = transcriber(model.load(), chunk_ms, hotwords)

    def __call__(self, batch: dict) -> dict:
        items = [Item(**json.loads(x)) for x in batch["item"]]
        return {"line": [output_line(item, self.transcribe) for item in items]}


def run_ray(model: ModelSpec, chunk_ms: int | None = None, workers: int = 1, num_cpus: float = 1.0,
            num_gpus: float = 0.0, hotwords=None):
    """The executor (items -> output lines) for ``manifest.run_job`` on ``workers`` actors.
    Ray must be initialized (``deployment.ray_session``)."""
    ray = require_ray("data")
    from ray.data import ActorPoolStrategy, DataContext

    def execute(items: list[Item]) -> Iterator[str]:
        context = DataContext.get_current()
        context.enable_progress_bars = False  # the job has its own
        context.print_on_execution_start = False
        rows = [{"item": json.dumps(dataclasses.asdict(i), ensure_ascii=False)} for i in items]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), workers * BLOCKS_PER_WORKER)))
        ds = ds.map_batches(TranscribeActor, fn_constructor_kwargs={"model": model, "chunk_ms": chunk_ms, "hotwords": hotwords},
                            batch_size=1, compute=ActorPoolStrategy(size=workers), num_cpus=num_cpus,
                            num_gpus=num_gpus)
        for row in ds.iter_rows():
            yield row["line"]

    return execute
