"""A test driver for the engine: streams that join at given steps and feed random-size pieces."""

from __future__ import annotations

import numpy as np

from onepass.engine import Engine


def run_random_joins(engine: Engine, plan: list[tuple[int, np.ndarray, str, int]], rng: np.random.Generator,
                     max_steps: int):
    """``plan``: (join step, 16 kHz audio, language, chunk_ms) per stream. From its join step on,
    each stream gets 800-6000 samples per engine step, then ``finish``. Steps until every stream
    has closed; returns (closing transcript per plan index, batch sizes the engine ran)."""
    ids, pos, closed, batches = {}, {}, {}, []
    step = 0
    while len(closed) < len(plan):
        for k, (join, _, language, chunk_ms) in enumerate(plan):
            if join == step and k not in ids:
                ids[k] = engine.open(language, chunk_ms)
                pos[k] = 0
        for k, sid in ids.items():
            audio = plan[k][1]
            if k in closed or engine.stream(sid).input_done:
                continue
            n = int(rng.integers(800, 6000))
            engine.accept(sid, audio[pos[k]:pos[k] + n])
            pos[k] += n
            if pos[k] >= len(audio):
                engine.finish(sid)
        for event in engine.step():
            if event.kind == "closed":
                closed[next(k for k, s in ids.items() if s == event.stream_id)] = event.transcript
        batches += engine.last_batches
        step += 1
        assert step < max_steps
    return closed, batches
