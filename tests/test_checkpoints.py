"""Loading: HF directories, bad and mismatched checkpoints, hub ids offline."""

from __future__ import annotations

import json
import shutil

import pytest

import onepass
from onepass import OnePassError


@pytest.fixture
def copy_dir(hf_dir, tmp_path):
    def make():
        dst = tmp_path / "copy"
        shutil.copytree(hf_dir, dst)
        return dst
    return make


def test_truncated_weights(copy_dir):
    d = copy_dir()
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(OnePassError, match="cannot read weights"):
        onepass.load_model(d)


def test_config_that_does_not_match_the_weights(copy_dir):
    d = copy_dir()
    cfg = json.loads((d / "config.json").read_text())
    cfg["encoder_config"]["intermediate_size"] *= 2
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(OnePassError, match="does not match its config"):
        onepass.load_model(d)


def test_wrong_model_type_and_missing_files(copy_dir):
    d = copy_dir()
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "model_type": "whisper"}))
    with pytest.raises(OnePassError, match="model_type"):
        onepass.load_model(d)
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "tokenizer.json").unlink()
    with pytest.raises(OnePassError, match="tokenizer.json"):
        onepass.load_model(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(OnePassError, match="cannot parse"):
        onepass.load_model(d)


def test_mel_bins_disagreement(copy_dir):
    d = copy_dir()
    proc = json.loads((d / "processor_config.json").read_text())
    proc["feature_extractor"]["feature_size"] = 80
    (d / "processor_config.json").write_text(json.dumps(proc))
    with pytest.raises(OnePassError, match="mel bins"):
        onepass.load_model(d)


def test_not_a_nemo_archive(tmp_path):
    bad = tmp_path / "model.nemo"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(OnePassError, match="not a readable .nemo"):
        onepass.load_model(bad)


def test_missing_model_and_offline_hub_id(tmp_path, monkeypatch):
    with pytest.raises(OnePassError, match="not found"):
        onepass.load_model(tmp_path / "nope")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(OnePassError, match="nvidia/nemotron-3.5-asr-streaming-0.6b.*--model DIR"):
        onepass.load_model("nvidia/nemotron-3.5-asr-streaming-0.6b")


def test_hub_id_from_the_local_cache(hf_dir, tmp_path, monkeypatch):
    """A hub id resolves through huggingface_hub's cache layout without the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    snap = tmp_path / "hf" / "hub" / "models--acme--tiny-asr" / "snapshots" / ("0" * 40)
    shutil.copytree(hf_dir, snap)
    refs = snap.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text("0" * 40)
    asr = onepass.load_model("acme/tiny-asr")
    assert asr.info.format == "hf" and asr.config.vocab_size > 0


def test_bad_dtype_and_unsupported_chunk(hf_dir, asr):
    with pytest.raises(OnePassError, match="dtype"):
        onepass.load_model(hf_dir, dtype="int3")
    with pytest.raises(OnePassError, match="not a multiple of 80"):
        asr.stream(chunk_ms=100)
    with pytest.raises(OnePassError, match="240 ms"):
        asr.transcribe_batch([[0.0] * 1600], chunk_ms=240)


def test_bfloat16_loads_and_runs(hf_dir, asr, clips):
    import torch

    bf16 = onepass.load_model(hf_dir, dtype="bfloat16")
    m = bf16.model
    assert m.encoder_dtype == torch.bfloat16 and m.encoder.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    # the prediction net and joint stay float32 by default (token agreement); the front end always
    # does, its window and filterbank equal to the float32 model's (not rounded through bfloat16)
    assert m.joint.head.weight.dtype == torch.float32 and m.decoder.embedding.weight.dtype == torch.float32
    assert torch.equal(m.frontend.window, asr.model.frontend.window)
    assert torch.equal(m.frontend.filterbank, asr.model.frontend.filterbank)
    all16 = onepass.load_model(hf_dir, dtype="bfloat16", decoder_dtype="bfloat16")
    assert all16.model.joint.head.weight.dtype == torch.bfloat16
    for r in (bf16, all16):
        result = r.transcribe(clips["normal"], 16000, language="en-US", chunk_ms=560)
        assert all(0 <= t < r.config.vocab_size for t in result.token_ids)
        stream = r.stream(language="en-US", chunk_ms=560)
        stream.accept(clips["normal"][:5000], 16000)
        stream.accept(clips["normal"][5000:], 16000)
        assert stream.finish().token_ids == result.token_ids


def test_weights_with_more_layers_than_the_config(copy_dir):
    d = copy_dir()
    cfg = json.loads((d / "config.json").read_text())
    cfg["encoder_config"]["num_hidden_layers"] = 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(OnePassError, match="does not use"):
        onepass.load_model(d)
