"""tools/gpu/check.sh, the prepared GPU check, rehearsed on the CPU in its quick form.

The device run is worth its lease only if the script is known to work before one is lent: the
quick rehearsal runs every section with the tiny models (nothing skipped: the budget is raised so
a busy machine changes timings, not coverage) and must write the device run's JSON shape, with
CPU-vs-CPU token identity on the NeMo reference models and graph-path == eager per bucket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "gpu"))

from agreement import edit_distance, score  # noqa: E402
from paced import bracket  # noqa: E402
from report import SECTIONS  # noqa: E402


def test_quick_rehearsal_writes_the_device_json(tmp_path):
    env = dict(os.environ, ONEPASS_GPU_QUICK="1", ONEPASS_GPU_BUDGET_S="600", OUT=str(tmp_path / "out"),
               PYTHON=sys.executable)
    env.pop("ONEPASS_GPU_SECTIONS", None)
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu" / "check.sh")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    report = json.loads((tmp_path / "out" / "check.json").read_text())
    log = (tmp_path / "out" / "check.log").read_text()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["complete"] and report["profile"] == "quick" and report["failed_sections"] == []
    assert set(report["sections"]) == set(SECTIONS)
    s = report["sections"]
    for name, part in s.items():
        assert part["status"] == "ok" or part["status"].startswith("unavailable:"), (name, part["status"])
        assert "wall_s" in part, name
    assert "summary:" in log
    assert {"gpu", "torch", "step_api"} <= set(s["env"])  # device-only figures are there, as None

    ident = s["identity"]
    assert ident["status"] == "ok" and ident["identical"]
    assert ident["offline_cases"] >= 6 and ident["stream_cases"] >= 6 and ident["tokens_compared"] > 50
    for key in ("offline_target_eq_cpu", "offline_cpu_eq_nemo", "offline_target_eq_nemo"):
        assert ident[key] == ident["offline_cases"], key
    assert ident["stream_target_eq_nemo_offline"] == ident["stream_cases"]

    if s["graphs"]["status"] == "ok":  # the step API exists in this checkout
        assert s["graphs"]["all_equal"] and s["graphs"]["buckets"]
        for row in s["graphs"]["buckets"]:
            assert row["equal"] and row["state_equal"] and not any(row["steps_differing"].values())
        assert {r["bucket"] for r in s["step_times"]["rows"]} == {1, 4}
        assert all(r["eager_ms"] > 0 and r["graph_ms"] > 0 for r in s["step_times"]["rows"])
        assert 0 < s["memory"]["state_bytes_per_stream"] < 2**20  # tiny model
        assert set(s["memory"]["arena_bytes_per_stream_measured"]) == {"160"}

    assert 0.0 <= s["bf16_agreement"]["agreement"] <= 1.0
    assert {r["mode"] for r in s["bf16_agreement"]["runs"]} == {"offline", "engine stream"}

    cap = s["capacity"]
    assert cap["eager"]["status"] == "ok"
    (chunk,) = cap["eager"]["chunks"]
    assert chunk["chunk_ms"] == 560 and chunk["trials"]
    assert chunk["streams"] == max([t["streams"] for t in chunk["trials"] if t["passed"]], default=0)
    assert cap["graphs"]["status"] == "ok" or cap["graphs"]["status"].startswith("unavailable:")


def test_agreement_counts_token_edits():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([1, 2, 3], [3, 2, 1]) == 2
    assert edit_distance([], [4, 5]) == 2
    got = score([[1, 2, 3, 4], [5]], [[1, 2, 4], [5]])
    assert got["edits"] == 1 and got["fp32_tokens"] == 5 and got["identical_clips"] == 1
    assert got["agreement"] == 0.8


def test_capacity_search_brackets_then_bisects():
    for capacity in (0, 1, 5, 37, 100, 4096):
        for guess in (1, 16, 5000):
            tried = []

            def run(n):
                tried.append(n)
                return n <= capacity

            best, worst, complete = bracket(run, guess, max_streams=6144, ratio=1.2)
            assert complete and best == capacity or (best < capacity < worst <= 1.2 * best), (capacity, guess)
            assert worst is None or worst > capacity
            assert len(tried) <= 20
    # out of time: the last pass is a lower bound, and says so
    calls = iter([True, True, None])
    best, worst, complete = bracket(lambda n: next(calls), 8, 6144, 1.2)
    assert (best, worst, complete) == (16, None, False)
