"""Bench helpers of the ONNX comparison (no timings asserted): token error rate, and both
throughput runs decode every stream to the end on the same exported files."""

from __future__ import annotations

import pytest

from onepass.bench import onnx_runs, sherpa_runs


def test_token_error_rate():
    assert onnx_runs.token_error_rate([1, 2, 3], [1, 2, 3]) == 0.0
    assert onnx_runs.token_error_rate([1, 2, 3], [1, 3]) == pytest.approx(1 / 3)
    assert onnx_runs.token_error_rate([1, 2], [3, 4, 5]) == pytest.approx(3 / 2)
    assert onnx_runs.token_error_rate([], []) == 0.0


def test_throughput_runs_finish_every_stream(asr, clips, tmp_path):
    pytest.importorskip("sherpa_onnx")
    logs = []
    d, files = onnx_runs.export_dir(asr, "none", 160, tmp_path, logs.append)
    assert files["encoder.onnx"] > 0 and sherpa_runs.chunk_ms_of(d) == 160
    again, _ = onnx_runs.export_dir(asr, "none", 160, tmp_path, logs.append)
    assert again == d and "reusing" in logs[-1]  # same weights: the export is reused
    padded = [sherpa_runs.padded(clips["normal"]), sherpa_runs.padded(clips["short"])]
    ours = onnx_runs.throughput(asr, padded, 3, 160, "en-US")
    rec = sherpa_runs.recognizer(d, 1)
    theirs = sherpa_runs.throughput(rec, padded, 3, 160, "en-US")
    audio_s = (2 * len(padded[0]) + len(padded[1])) / 16000
    assert ours["audio_s"] == theirs["audio_s"] == pytest.approx(audio_s)
    assert ours["batches"] > 0 and theirs["batches"] > 0
    single = sherpa_runs.stream_run(rec, padded[0], 160, "en-US")
    assert single["tokens"] > 0
