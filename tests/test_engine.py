"""The multi-stream engine: streams joining at random times, mixed languages, chunk sizes and
lengths, batched together, each ending with exactly its single-stream offline transcript."""

from __future__ import annotations

import numpy as np
import pytest

from onepass import OnePassError
from onepass.engine import Engine, EngineConfig
from onepass.engine.events import StreamEvent
from tests.engine_driver import run_random_joins


def test_random_joins_are_exact(asr, clips):
    rng = np.random.default_rng(11)
    names = list(clips)
    languages = ["en-US", "de-DE", "auto", "es", "fr-FR"]
    plan = []  # (join step, clip, language, chunk_ms)
    for i in range(10):
        plan.append((int(rng.integers(0, 30)), names[i % len(names)], languages[i % len(languages)],
                     [160, 560][i % 2]))
    engine = Engine(asr, EngineConfig(max_batch=4, endpoint_blank_ms=None))
    closed, batch_sizes = run_random_joins(
        engine, [(join, clips[name], lang, chunk_ms) for join, name, lang, chunk_ms in plan], rng, max_steps=2000)
    expected = {k: asr.transcribe_batch([clips[name]], language=lang, chunk_ms=chunk_ms)[0]
                for k, (_, name, lang, chunk_ms) in enumerate(plan)}
    for k in closed:
        assert closed[k].token_ids == expected[k].token_ids, plan[k]
        assert closed[k].text == expected[k].text
    assert max(batch_sizes) > 1 and max(batch_sizes) <= 4  # streams really ran together, max_batch held
    assert all(p.in_use == 0 for p in engine.pools.values())


def test_partials_utterances_and_endpointing(asr, clips):
    engine = Engine(asr, EngineConfig(endpoint_blank_ms=240))
    sid = engine.open("en-US", 160)
    audio = np.concatenate([clips["normal"], np.zeros(16000, np.float32), clips["short"]])
    events: list[StreamEvent] = []
    for p in range(0, len(audio), 1600):
        engine.accept(sid, audio[p:p + 1600])
        events += engine.run_until_idle()
    engine.finish(sid)
    events += engine.run_until_idle()
    assert [e.seq for e in events] == list(range(len(events)))
    closed = events[-1]
    assert closed.kind == "closed"
    ends = [e for e in events if e.kind == "utterance_end"]
    assert len(ends) >= 2  # the second of silence ends the first utterance
    assert [e.utterance_id for e in ends] == list(range(len(ends)))
    # random weights split words anywhere, so compare without spaces
    assert "".join(e.text for e in ends).replace(" ", "") == closed.transcript.text.replace(" ", "")
    assert closed.transcript.token_ids == asr.transcribe(audio, 16000, language="en-US", chunk_ms=160).token_ids
    for e in events:
        assert e.lag_s >= 0 and e.latency_s >= 0


def test_finalize_and_capacity(asr, clips):
    engine = Engine(asr, EngineConfig(max_streams=2, endpoint_blank_ms=None))
    a = engine.open("de", 560)
    engine.open("de", 560)
    with pytest.raises(OnePassError, match="capacity"):
        engine.open("de", 560)
    engine.accept(a, clips["long"][:48000])
    engine.run_until_idle()
    forced = engine.finalize(a)
    if engine.stream(a).emitted.token_ids:
        assert forced and forced[0].kind == "utterance_end"
    with pytest.raises(OnePassError, match="unknown language"):
        engine.close(a) or engine.open("xx", 560)


def test_slots_are_reused(asr, clips):
    engine = Engine(asr, EngineConfig(endpoint_blank_ms=None, slot_growth=4))
    for i in range(30):
        sid = engine.open("en", 80)
        engine.accept(sid, clips["short"][:4000])
        if i % 2:
            engine.finish(sid)
            engine.run_until_idle()
        else:
            engine.close(sid)  # client vanished
    assert engine.pools[0].capacity == 4 and engine.pools[0].in_use == 0
    assert not engine.streams


def _segment_tokens(events: list[StreamEvent]) -> list[tuple[list[int], list[str]]]:
    """Token ids of each segment (split at "flushed" events) and its utterance texts."""
    out, ids, texts = [], [], []
    for e in events:
        if e.kind == "partial":
            ids += e.new_token_ids
        elif e.kind == "utterance_end":
            texts.append(e.text)
        elif e.kind in ("flushed", "closed"):
            out.append((ids, texts))
            ids, texts = [], []
    return out


@pytest.mark.parametrize("chunk_ms,step_between", [(160, True), (560, False)])
def test_flush_segments_equal_offline_pieces(asr, clips, chunk_ms, step_between):
    """finalize(flush=True) ends a segment exactly as finish() would: each segment's tokens are
    the offline tokens of the audio received in it, times continue from the stream start, and
    audio sent after the flush (even before the engine ran it) starts the next segment."""
    audio = np.concatenate([clips["normal"], clips["odd_length"], clips["long"]])
    cuts = [0, 23_456, 23_456 + 1_111, 61_003, len(audio)]  # odd places; a 1111-sample segment
    pieces = [audio[a:b] for a, b in zip(cuts, cuts[1:])]
    expected = [asr.transcribe(p, 16000, language="de-DE", chunk_ms=chunk_ms) for p in pieces]
    engine = Engine(asr, EngineConfig(endpoint_blank_ms=None))
    sid = engine.open("de-DE", chunk_ms)
    rng = np.random.default_rng(3)
    assert [e.kind for e in engine.finalize(sid, flush=True)] == ["flushed"]  # nothing to flush yet
    events: list[StreamEvent] = []
    for k, piece in enumerate(pieces):
        pos = 0
        while pos < len(piece):
            n = int(rng.integers(300, 5000))
            engine.accept(sid, piece[pos:pos + n])
            pos += n
            if step_between:
                events += engine.step()
        if k < len(pieces) - 1:
            assert engine.finalize(sid, flush=True) == []
            if step_between:
                events += engine.run_until_idle()
    engine.finish(sid)
    events += engine.run_until_idle()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.kind for e in events].count("flushed") == len(pieces) - 1 and events[-1].kind == "closed"
    segments = _segment_tokens(events)
    assert len(segments) == len(pieces)
    for (ids, texts), want in zip(segments, expected):
        assert ids == want.token_ids
        assert texts == ([want.text] if want.text else [])
    closed = events[-1].transcript
    assert closed.token_ids == [t for w in expected for t in w.token_ids]
    assert closed.duration_s == len(audio) / 16000  # no sample lost
    times = [t for w, start in zip(expected, cuts) for t in
             [x + round(start / 1280) * 0.08 for x in w.token_times_s]]
    assert closed.token_times_s == pytest.approx(times, abs=1e-9)  # float sums of frame times
    assert not engine.streams


def test_flush_twice_and_after_finish(asr, clips):
    engine = Engine(asr, EngineConfig(endpoint_blank_ms=None))
    sid = engine.open("en-US", 160)
    engine.accept(sid, clips["short"])
    assert engine.finalize(sid, flush=True) == []
    assert engine.finalize(sid, flush=True) == []  # queued behind the first: an empty segment
    events = engine.run_until_idle()
    assert [e.kind for e in events if e.kind != "partial"][-2:] == ["flushed", "flushed"]
    assert [e.kind for e in engine.finalize(sid, flush=True)] == ["flushed"]
    engine.finish(sid)
    with pytest.raises(OnePassError, match="finished"):
        engine.finalize(sid, flush=True)
    closed = engine.run_until_idle()[-1]
    assert closed.transcript.token_ids == asr.transcribe(clips["short"], 16000, language="en-US",
                                                         chunk_ms=160).token_ids


def test_per_stream_endpointing_and_silence(asr, clips):
    # random weights end words anywhere: no hold (test_an_endpoint_waits_for_the_word_to_end has it)
    engine = Engine(asr, EngineConfig(endpoint_blank_ms=None, max_batch=8, word_hold_ms=0))
    audio = np.concatenate([clips["normal"], np.zeros(24000, np.float32), clips["short"],
                            np.zeros(24000, np.float32)])
    off = engine.open("en-US", 160)  # the engine default: never
    on = engine.open("en-US", 160, endpoint_ms=240)
    gaps = engine.open("en-US", 160, endpoint_ms=0, silence_ms=400)
    changed = engine.open("en-US", 160)
    engine.set_endpointing(changed, endpoint_ms=240)
    events = {sid: [] for sid in (off, on, gaps, changed)}
    for p in range(0, len(audio), 3200):
        for sid in events:
            engine.accept(sid, audio[p:p + 3200])
        for e in engine.step():
            events[e.stream_id].append(e)
    for sid in events:
        engine.finish(sid)
    for e in engine.run_until_idle():
        events[e.stream_id].append(e)
    kinds = {sid: [e.kind for e in evs] for sid, evs in events.items()}
    assert kinds[off].count("utterance_end") == 1 and "silence" not in kinds[off]  # only at the end
    assert kinds[on].count("utterance_end") >= 2
    assert kinds[changed] == kinds[on]
    assert kinds[gaps].count("utterance_end") == 1 and kinds[gaps].count("silence") >= 2
    for e in events[gaps]:
        if e.kind == "silence":
            assert e.end_s - e.start_s >= 0.4 - 1e-9 and e.text == ""
    for sid in events:  # endpointing never changes the tokens
        assert events[sid][-1].transcript.token_ids == events[off][-1].transcript.token_ids
    with pytest.raises(OnePassError, match="milliseconds"):
        engine.open("en-US", 160, endpoint_ms="soon")


def test_resident_batch_is_exact(asr, clips):
    """Streams with all their audio queued run the same slots step after step, so their state
    stays resident in the pool (no gather or scatter); a stream joining and streams ending change
    the batch and write it back. Every transcript is still its offline one."""
    engine = Engine(asr, EngineConfig(max_batch=4, endpoint_blank_ms=None))
    plan = {0: "long", 0.5: "normal", 3: "short"}  # join step -> clip (0.5: right after the first)
    ids, closed, resident = {}, {}, 0
    for step in range(400):
        for join, name in plan.items():
            if int(join) == step and name not in ids.values():
                sid = engine.open("en-US", 160)
                engine.accept(sid, clips[name])
                engine.finish(sid)
                ids[sid] = name
        for event in engine.step():
            if event.kind == "closed":
                closed[ids[event.stream_id]] = event.transcript
        resident += any(p._resident is not None for p in engine.pools.values())
        if len(closed) == len(plan):
            break
    assert resident >= 5  # the path under test really ran
    for name, transcript in closed.items():
        assert transcript.token_ids == asr.transcribe(clips[name], 16000, language="en-US", chunk_ms=160).token_ids
    assert all(p.in_use == 0 for p in engine.pools.values())


def test_ready_queues_hold_only_streams_with_a_step(asr, clips):
    """The step looks at the streams with a chunk ready (per chunk size), not at every open stream."""
    engine = Engine(asr, EngineConfig(max_streams=64, endpoint_blank_ms=None))
    idle = [engine.open("en-US", 160) for _ in range(40)]
    other = engine.open("en-US", 560)
    assert not engine.has_work() and not any(engine.ready.values())
    busy = engine.open("en-US", 160)
    engine.accept(busy, clips["normal"][:16000])
    engine.accept(idle[0], clips["normal"][:100])  # less than a chunk: not ready
    assert set(engine.ready[engine.streams[busy].right_context]) == {busy} and engine.has_work()
    ran = set()
    while engine.has_work():
        engine.step()
        ran |= set(engine.last_streams)
    assert ran == {busy}
    engine.finish(other)  # no audio: one (empty) closing step
    assert set(engine.ready[engine.streams[other].right_context]) == {other}
    engine.close(other)
    assert not engine.has_work()
    engine.finish(busy)
    events = engine.run_until_idle()
    assert [e.kind for e in events][-1] == "closed" and not any(engine.ready.values())


def test_an_endpoint_waits_for_the_word_to_end():
    """A final never ends inside a word: an endpoint after a piece that may go on ("▁a" "er" ...) waits
    for the next piece: the same word goes on ("s"), a new word ("▁a") ends the utterance before it;
    after "." it ends at once; and at most ``word_hold_ms`` more silence. The demo model's real pieces,
    the decoder's output scripted per step (the audio is silence)."""
    import onepass
    from onepass.decoding.greedy import Emissions

    asr = onepass.load_model("demo")
    ids = {p: i for i, p in enumerate(asr.tokenizer.pieces)}
    engine = Engine(asr, EngineConfig(endpoint_blank_ms=240, word_hold_ms=800))
    sid = engine.open("en-US", 160)
    script = [["\u2581a", "er"], [], [], [], [], ["s"], ["."], [], [], [], ["\u2581t", "er"], [], [], [], ["\u2581a"]]
    real = engine._execute

    def scripted(pool, batch):
        emissions, frames, final = real(pool, batch)
        pieces = script.pop(0) if script else []
        at = batch[0].frames_decoded
        return [Emissions([ids[p] for p in pieces], [at] * len(pieces), [1.0] * len(pieces))], frames, final

    engine._execute = scripted
    events = []
    for _ in range(30):  # 30 x 160 ms of silence, a step each
        engine.accept(sid, np.zeros(2560, np.float32))
        events += engine.run_until_idle()
    engine.finish(sid)
    events += engine.run_until_idle()
    ends = [e for e in events if e.kind == "utterance_end"]
    assert [e.text for e in ends] == ["aers.", "ter", "a"]
    assert {e.reason for e in ends} == {"endpoint"}
    # "ter" ends when "a" comes (not before); "a" after 240 + 800 ms without tokens (the hold's limit)
    order = [(e.kind, e.text) for e in events if e.kind in ("partial", "utterance_end")]
    assert order.index(("utterance_end", "ter")) < order.index(("partial", "a"))
    assert round(ends[2].end_s - ends[2].start_s, 2) >= 1.04
    assert events[-1].transcript.text == "aers. ter a"
