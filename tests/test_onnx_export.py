"""``onepass export --format onnx``: the files, their metadata, and user errors."""

from __future__ import annotations

import json

import pytest
import torch

import onepass
from onepass import OnePassError
from onepass.cli.main import main

ort = pytest.importorskip("onnxruntime")


def test_cli_export_writes_the_sherpa_and_backend_files(hf_dir, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert main(["export", "--model", hf_dir, "--format", "onnx", "--out", str(out), "--chunk-ms", "160"]) == 0
    printed = capsys.readouterr().out
    for name in ("encoder.onnx", "decoder.onnx", "joiner.onnx", "tokens.txt", "onepass_core.onnx"):
        assert (out / name).exists() and name in printed
    meta = ort.InferenceSession(str(out / "encoder.onnx")).get_modelmeta().custom_metadata_map
    assert meta["window_size"] == meta["chunk_shift"] == "16" and meta["chunk_ms"] == "160"
    manifest = json.loads((out / "onepass_onnx.json").read_text())
    assert manifest["quantize"] == "none" and manifest["chunk_ms"] == 160
    # the backend graph serves any chunk size, not only the exported sherpa one
    asr = onepass.load_model(hf_dir, backend="onnxruntime", onnx_dir=out, threads=1)
    ref = onepass.load_model(hf_dir)
    audio = (0.1 * __import__("numpy").random.default_rng(0).standard_normal(20000)).astype("float32")
    assert asr.transcribe(audio, 16000, chunk_ms=1120).token_ids == ref.transcribe(audio, 16000, chunk_ms=1120).token_ids


def test_export_user_errors(hf_dir, hf_en_dir, tmp_path, capsys):
    assert main(["export", "--model", hf_en_dir, "--out", str(tmp_path / "x"), "--chunk-ms", "320"]) == 2
    assert "320" in capsys.readouterr().err
    with pytest.raises(OnePassError, match="no onepass_core.onnx"):
        onepass.load_model(hf_dir, backend="onnxruntime", onnx_dir=tmp_path)
    with pytest.raises(OnePassError, match="unknown backend"):
        onepass.load_model(hf_dir, backend="tensorrt")


def test_backend_refuses_a_graph_of_another_model(hf_dir, hf_en_dir, tmp_path):
    from onepass.onnx.export import ExportSettings, export_onnx

    export_onnx(onepass.load_model(hf_en_dir), tmp_path, ExportSettings(sherpa=False))
    with pytest.raises(OnePassError, match="different model"):
        onepass.load_model(hf_dir, backend="onnxruntime", onnx_dir=tmp_path)


def test_channels_last_depthwise_conv_matches_conv1d(asr):
    """The export's depthwise conv (k shifted multiply-adds over (B, T, D)) computes the conv
    module's Conv1d; float tolerance only because the sums run in another order."""
    conv = asr.model.encoder.layers[0].conv
    d, k = conv.depthwise_conv.in_channels, conv.depthwise_conv.kernel_size[0]
    gen = torch.Generator().manual_seed(0)
    x, cache = torch.randn(3, 5, d, generator=gen), torch.randn(3, d, k - 1, generator=gen)
    row_valid = torch.tensor([[1.0] * 5, [1.0] * 3 + [0.0] * 2, [1.0] * 5])[..., None]
    with torch.no_grad():
        ref, ref_in = conv(x, cache, row_valid)
        conv.channels_last = True
        try:
            got, got_in = conv(x, cache, row_valid)
        finally:
            conv.channels_last = False
    assert torch.equal(got_in.transpose(1, 2), ref_in)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_quantized_export_has_an_int8_sherpa_joiner(asr, tmp_path):
    """int8/int4 exports give sherpa-onnx an int8 joiner (its 13088-wide head is most of the
    decoding cost). Tolerance test: float logits within 10 % of the fp32 joint's."""
    import onnx

    from onepass.onnx.export import ExportSettings, export_onnx

    export_onnx(asr, tmp_path, ExportSettings(quantize="int4", chunk_ms=160))
    ops = {n.op_type for n in onnx.load(str(tmp_path / "joiner.onnx")).graph.node}
    assert "MatMulInteger" in ops and "MatMul" not in ops
    cfg = asr.model.config
    gen = torch.Generator().manual_seed(0)
    enc = torch.randn(4, cfg.encoder.hidden_size, 1, generator=gen)
    pred = torch.randn(4, cfg.pred_hidden, 1, generator=gen)
    out = ort.InferenceSession(str(tmp_path / "joiner.onnx")).run(
        None, {"encoder_outputs": enc.numpy(), "decoder_outputs": pred.numpy()})[0]
    with torch.no_grad():
        ref = asr.model.joint(asr.model.encoder_projector(enc[:, :, 0]), pred[:, :, 0])
    got = torch.from_numpy(out[:, 0, 0])
    assert (got - ref).norm() / ref.norm() < 0.1


def test_int4_block_size_default_follows_the_encoder_width(asr, tmp_path):
    """No block size given: 16 for an encoder narrower than 512 (the tiny and demo models), 32 for the
    real model's width; the manifest records the block size used."""
    import onnx

    from onepass.onnx.export import ExportSettings, default_int4_block, export_onnx

    assert asr.config.encoder.hidden_size < 512
    assert (default_int4_block(144), default_int4_block(1024)) == (16, 32)
    assert ExportSettings(quantize="int4", int4_block_size=64).resolved(144).int4_block_size == 64
    export_onnx(asr, tmp_path, ExportSettings(quantize="int4", sherpa=False))
    assert json.loads((tmp_path / "onepass_onnx.json").read_text())["int4_block_size"] == 16
    nbits = [n for n in onnx.load(str(tmp_path / "onepass_core.onnx")).graph.node if n.op_type == "MatMulNBits"]
    assert nbits and all({a.name: a.i for a in n.attribute}["block_size"] == 16 for n in nbits)
