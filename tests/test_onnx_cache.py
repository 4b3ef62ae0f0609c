"""The export cache behind the default CPU backend (onepass.onnx.cache) and ``backend="auto"``."""

from __future__ import annotations

import pytest
import torch

import onepass
from onepass import OnePassError, resolve_backend
from onepass.onnx import cache
from onepass.onnx.export import ExportSettings

pytest.importorskip("onnxruntime")


def test_auto_is_onnxruntime_for_float32_on_the_cpu():
    assert resolve_backend("auto") == "onnxruntime"
    assert resolve_backend("auto", device="cuda:0") == "torch"
    assert resolve_backend("auto", dtype="bfloat16") == "torch"
    assert resolve_backend("torch") == "torch" and resolve_backend("onnxruntime") == "onnxruntime"
    with pytest.raises(OnePassError, match="onnxruntime backend"):
        resolve_backend("auto", device="cuda", quantize="int8")
    with pytest.raises(OnePassError, match="onnxruntime backend"):
        resolve_backend("torch", quantize="int4")
    with pytest.raises(OnePassError, match="unknown backend"):
        resolve_backend("tensorrt")


def test_export_is_made_once_and_reused(hf_dir, tmp_path, monkeypatch):
    export_cache = tmp_path / "cache"  # empty: the session's cache may hold exports of other tests
    monkeypatch.setenv("ONEPASS_CACHE_DIR", str(export_cache))
    first = onepass.load_model(hf_dir, backend="auto", threads=1)
    assert first.backend == "onnxruntime"
    made = [p for p in (export_cache / "onnx").iterdir() if not p.name.startswith(".")]
    assert len(made) == 1 and (made[0] / "onepass_core.onnx").exists()
    assert first.model.core_path == str(made[0] / "onepass_core.onnx")

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(cache, "export_onnx", no_export)
    again = onepass.load_model(hf_dir, backend="onnxruntime", threads=1)
    assert again.model.core_path == first.model.core_path
    assert not [p for p in (export_cache / "onnx").iterdir() if p.name.startswith(".")]  # no leftovers


def test_key_follows_weights_settings_and_model(hf_dir, hf_en_dir):
    asr = onepass.load_model(hf_dir, backend="torch")
    base = cache.export_key(asr, ExportSettings(sherpa=False))
    assert cache.export_key(asr, ExportSettings(sherpa=False)) == base
    assert cache.export_key(asr, ExportSettings(quantize="int8", sherpa=False)) != base
    with torch.no_grad():  # a weight in the middle of the stack, outside the export's own fingerprint
        w = asr.model.encoder.layers[1].conv.pointwise_conv2.weight
        w.view(-1)[w.numel() // 2] += 1.0
    assert cache.export_key(asr, ExportSettings(sherpa=False)) != base
    other = onepass.load_model(hf_en_dir, backend="torch")
    assert cache.export_key(other, ExportSettings(sherpa=False)) != base


def test_unwritable_cache_falls_back_to_a_temporary_export(hf_dir, tmp_path, monkeypatch, clips):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("ONEPASS_CACHE_DIR", str(blocker))
    ort = onepass.load_model(hf_dir, backend="onnxruntime", threads=1)
    assert not str(ort.model.core_path).startswith(str(blocker))
    ref = onepass.load_model(hf_dir, backend="torch")
    audio = clips["normal"]
    got = ort.transcribe(audio, 16000, language="de").token_ids
    assert got == ref.transcribe(audio, 16000, language="de").token_ids and got
