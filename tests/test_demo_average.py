"""tools/demo_model/average.py: the weighted mean of demo models' weights, checked against a by-hand mean,
and refused (nothing written) for models that do not share an architecture and a tokenizer."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tools.demo_model import average

DEMO = Path(__file__).resolve().parents[1] / "onepass" / "assets" / "demo"


def _copy(tmp_path: Path, name: str, scale: float | None = None) -> Path:
    d = tmp_path / name
    shutil.copytree(DEMO, d)
    if scale is not None:
        w = load_file(str(d / "model.safetensors"))
        g = torch.Generator().manual_seed(len(name))
        w = {k: v + scale * torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in w.items()}
        save_file(w, str(d / "model.safetensors"), metadata={"format": "pt"})
    return d


def test_weighted_mean_of_every_float_tensor(tmp_path):
    a, b = _copy(tmp_path, "a", 0.01), _copy(tmp_path, "bb", 0.02)
    out = tmp_path / "out"
    average.main(["--out", str(out), f"{a}=1", f"{b}=3"])
    wa, wb, got = (load_file(str(d / "model.safetensors")) for d in (a, b, out))
    assert set(got) == set(wa)
    for k, v in got.items():
        assert v.dtype == wa[k].dtype
        # float32 tensors averaged in float64 and rounded once: within one float32 rounding of the exact mean
        torch.testing.assert_close(v, 0.25 * wa[k] + 0.75 * wb[k], rtol=1e-6, atol=1e-7)
    for f in ("config.json", "tokenizer.json", "processor_config.json"):
        assert (out / f).read_bytes() == (b / f).read_bytes()


def test_the_mean_of_one_model_with_itself_is_that_model(tmp_path):
    import onepass

    a = _copy(tmp_path, "a")
    out = tmp_path / "out"
    counts = average.average([(a, 1.0), (DEMO, 1.0)], out)
    assert counts["averaged"] == len(load_file(str(DEMO / "model.safetensors")))
    want, got = load_file(str(DEMO / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.equal(want[k], got[k]) for k in want)
    sample = DEMO.parent / "samples" / "en-US.wav"
    averaged, shipped = (onepass.load_model(m).transcribe(str(sample)).text for m in (str(out), "demo"))
    assert averaged == shipped


def test_refuses_other_architectures_tokenizers_and_bad_weights(tmp_path):
    a = _copy(tmp_path, "a")
    other = _copy(tmp_path, "other")
    cfg = json.loads((other / "config.json").read_text())
    cfg["encoder_config"]["num_hidden_layers"] = cfg["encoder_config"].get("num_hidden_layers", 8) + 1
    (other / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="config.json differs"):
        average.average([(a, 1.0), (other, 1.0)], out)
    tok = _copy(tmp_path, "tok")
    (tok / "tokenizer.json").write_text((tok / "tokenizer.json").read_text().replace("▁", "_", 1))
    with pytest.raises(ValueError, match="tokenizer.json differs"):
        average.average([(a, 1.0), (tok, 1.0)], out)
    with pytest.raises(ValueError, match="at least two"):
        average.average([(a, 1.0)], out)
    with pytest.raises(ValueError, match="positive"):
        average.parse_input(f"{a}=0")
    assert average.parse_input(f"{a}=2.5") == (a, 2.5) and average.parse_input(str(a)) == (a, 1.0)
    assert not out.exists()
