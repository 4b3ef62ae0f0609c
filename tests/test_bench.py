"""``onepass bench`` on a tiny random model: the harness runs end to end and reports every field.
No timing assertions (the numbers depend on the machine)."""

from __future__ import annotations

import json

import pytest
import torch

from onepass.bench.capacity import search
from onepass.bench.measure import percentile
from onepass.bench.results import Trial
from onepass.cli.main import main


@pytest.fixture
def one_thread():
    """--threads 1 keeps the smoke runs quick on a busy machine; restore torch's setting after."""
    before = torch.get_num_threads()
    yield ["--threads", "1"]
    torch.set_num_threads(before)


def _trial(n: int, passed: bool) -> Trial:
    return Trial(n, passed, 1.0, 2.0, 3.0, 3.0, 0.1, 10, 10, 1.0, 0.01)


def test_capacity_search_doubles_then_bisects():
    limit = 5
    cap = search(lambda n: _trial(n, n <= limit), "x", 160, "test", max_streams=64, deadline=float("inf"))
    assert cap.streams == limit and cap.complete
    assert [t.streams for t in cap.trials] == [1, 2, 4, 8, 6, 5]
    none = search(lambda n: _trial(n, False), "x", 160, "test", max_streams=64, deadline=float("inf"))
    assert none.streams == 0 and [t.streams for t in none.trials] == [1]
    capped = search(lambda n: _trial(n, True), "x", 160, "test", max_streams=6, deadline=float("inf"))
    assert capped.streams == 6 and [t.streams for t in capped.trials] == [1, 2, 4, 6]
    out_of_time = search(lambda n: _trial(n, True), "x", 160, "test", max_streams=6, deadline=0.0)
    assert not out_of_time.complete and out_of_time.trials == []


def test_percentile_nearest_rank():
    assert percentile([], 95) == 0.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([5.0], 95) == 5.0


def test_bench_cli_json_tiny(capsys, one_thread):
    code = main(["bench", "--random-init", "tiny", "--compare", "transformers", "--quick", "--json",
                 "--seconds", "0.8", "--chunk-ms", "160,320", "--capacity-chunk-ms", "160", "--max-streams", "2",
                 *one_thread])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"model", "machine", "config", "streams", "offline", "capacity", "memory", "ratios",
                           "goals", "wall_s"}
    assert result["model"]["parameters"] > 0 and 0 < result["model"]["emission_rate"] < 3
    assert result["machine"]["threads"] == 1 and result["machine"]["cores"] >= 1
    runs = {(s["impl"], s["chunk_ms"]) for s in result["streams"]}
    assert runs == {(impl, c) for impl in ("onepass", "transformers") for c in (160, 320)}
    for s in result["streams"]:
        assert s["rtfx"] > 0 and s["frames"] > 0 and abs(s["audio_s"] - 0.8) < 1e-6
    offline = {o["impl"]: o for o in result["offline"]}
    assert set(offline) == {"onepass", "transformers"}
    assert offline["onepass"]["tokens"] == offline["transformers"]["tokens"]  # same weights, exact model
    modes = {(c["impl"], c["chunk_ms"], c["mode"]) for c in result["capacity"]}
    assert modes == {("onepass", 160, "engine, staggered starts"), ("onepass", 160, "engine, aligned starts"),
                     ("transformers", 160, "lockstep batch, aligned starts")}
    for c in result["capacity"]:
        assert 0 <= c["streams"] <= 2 and c["trials"]
        for t in c["trials"]:
            assert t["latency_p50_ms"] <= t["latency_p95_ms"] <= t["latency_max_ms"]
            assert t["chunks"] > 0 or t["aborted"]
    mem = result["memory"]
    assert mem["cycles"] == 100 and len(mem["cycle_rss_mb"]) == 11 and mem["state_mb"] > 0
    assert {g["goal"].split(":")[0] for g in result["goals"]} >= {"capacity 560 ms", "single stream 560 ms"}
    assert "stream_160ms" in result["ratios"] and "offline" in result["ratios"]
    assert "capacity_160ms_staggered" in result["ratios"] and "capacity_160ms_aligned" in result["ratios"]


def test_bench_table_tiny(capsys, one_thread):
    code = main(["bench", "--random-init", "tiny", "--quick", "--seconds", "0.8", "--chunk-ms", "160,560",
                 "--capacity-chunk-ms", "160", "--max-streams", "1", *one_thread])
    assert code == 0
    out = capsys.readouterr().out
    assert "Single stream" in out and "| 560 ms |" in out and "Goals:" in out and "Memory:" in out


def test_prepacked_weights_give_the_same_tokens(one_thread):
    """--prepack runs onepass on NemotronASR.prepack(); streamed and offline token ids must not move."""
    from onepass.bench.audio import speech_like
    from onepass.bench.factory import random_pair

    torch.set_num_threads(1)
    asr = random_pair("tiny", with_hf=False).recognizer
    audio = speech_like(3.0, seed=4)

    def tokens():
        out = {}
        for chunk_ms in (160, 560):
            session = asr.stream(language="de-DE", chunk_ms=chunk_ms)
            for pos in range(0, len(audio), 2560):
                session.accept(audio[pos:pos + 2560], 16000)
            out[chunk_ms] = session.finish().token_ids
        out["offline"] = asr.transcribe_batch([audio], language="de-DE", chunk_ms=160)[0].token_ids
        return out

    before = tokens()
    try:
        assert asr.model.prepack() > 0
        assert tokens() == before
        with torch.no_grad():  # editing a weight after packing falls back to the dense path
            layer = asr.model.encoder.layers[0].feed_forward1.linear1
            x = torch.randn(1, 4, layer.in_features)
            layer.weight.mul_(2.0)
            assert torch.allclose(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    finally:
        for m in asr.model.modules():
            if hasattr(m, "unpack"):
                m.unpack()
