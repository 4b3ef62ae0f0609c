"""The step as a CUDA graph would run it (label-looping decoder with the fixed bound, batches
padded to buckets) gives the eager CPU step's token ids: streams joining at random steps with
every chunk size, prompt and English models, a flush mid-stream, offline batches."""

from __future__ import annotations

import numpy as np
import pytest

from onepass.engine import Engine, EngineConfig
from onepass.recognizer import Recognizer
from onepass.step import StepConfig
from tests.engine_driver import run_random_joins

GRAPH_LIKE = StepConfig(decoder="label_looping", sync_every=0, buckets=(2, 4, 8))


def _variant(asr: Recognizer, config: StepConfig) -> Recognizer:
    other = Recognizer(asr.model, asr.tokenizer, asr.info)
    other.configure_step(config)
    return other


@pytest.mark.parametrize("which,languages", [("asr", ["de-DE", "auto", "en-US"]), ("asr_en", ["en"])])
def test_graph_like_step_random_joins(request, clips, which, languages):
    asr = request.getfixturevalue(which)
    fixed = _variant(asr, GRAPH_LIKE)
    chunks = list(asr.config.supported_chunk_ms())
    rng = np.random.default_rng(29)
    names = list(clips)
    plan = [(int(rng.integers(0, 12)), names[i % len(names)], languages[i % len(languages)], chunks[i % len(chunks)])
            for i in range(2 * len(chunks))]
    engine = Engine(fixed, EngineConfig(max_batch=3, endpoint_blank_ms=None))
    closed, batches = run_random_joins(engine, [(j, clips[n], lang, c) for j, n, lang, c in plan], rng, max_steps=3000)
    assert max(batches) > 1
    for k, (_, name, lang, chunk_ms) in enumerate(plan):
        want = asr.transcribe_batch([clips[name]], language=lang, chunk_ms=chunk_ms)[0]
        assert closed[k].token_ids == want.token_ids, plan[k]
        assert closed[k].token_times_s == want.token_times_s


def test_graph_like_step_offline_batch_and_flush(asr, clips):
    fixed = _variant(asr, GRAPH_LIKE)
    audios = [clips[n] for n in clips]
    for chunk_ms in (80, 1120):
        want = asr.transcribe_batch(audios, language="fr-FR", chunk_ms=chunk_ms)
        got = fixed.transcribe_batch(audios, language="fr-FR", chunk_ms=chunk_ms)
        assert [t.token_ids for t in got] == [t.token_ids for t in want]
    audio = np.concatenate([clips["normal"], clips["long"]])
    cut = 30_001
    session = fixed.stream(language="de-DE", chunk_ms=320)
    session.accept(audio[:cut])
    session.flush()
    session.accept(audio[cut:])
    final = session.finish()
    pieces = [asr.transcribe(a, 16000, language="de-DE", chunk_ms=320).token_ids for a in (audio[:cut], audio[cut:])]
    assert final.token_ids == pieces[0] + pieces[1]
