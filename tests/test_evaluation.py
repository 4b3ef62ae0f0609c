"""``onepass eval``: manifests, normalisation, WER per language."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile as sf

from onepass import OnePassError
from onepass.evaluation import evaluate, normalize, read_manifest


def test_normalize():
    assert normalize("Hello, World! It's  ¿Qué tal?") == "hello world it's qué tal"
    assert normalize("Straße — 'quoted' ") == "straße quoted"


@pytest.fixture
def manifest(asr, clips, tmp_path):
    rows = []
    for name, lang in (("normal", "en-US"), ("short", "de-DE")):
        path = tmp_path / f"{name}.wav"
        sf.write(path, clips[name], 16000)
        hyp = asr.transcribe(clips[name], 16000, language=lang).text
        # one utterance scored against the model's own output, one against a wrong reference
        text = hyp if name == "normal" else "völlig andere Wörter hier"
        rows.append({"audio_filepath": path.name, "text": text, "lang": lang, "duration": len(clips[name]) / 16000})
    m = tmp_path / "manifest.jsonl"
    m.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return m


def test_wer_per_language(asr, manifest):
    report = evaluate(asr, read_manifest(manifest))
    assert report["languages"]["en-US"]["wer"] == 0.0
    assert report["languages"]["de-DE"]["wer"] > 0.5
    assert 0 < report["wer"] < 1.01 and report["utterances"] == 2
    offline = evaluate(asr, read_manifest(manifest), chunk_ms=160)
    for streams in (1, 2):  # one at a time, or both batched through the engine
        streamed = evaluate(asr, read_manifest(manifest), mode="stream", chunk_ms=160, streams=streams)
        assert streamed["languages"] == offline["languages"]  # streaming is exact
        assert streamed["streams"] == streams
    with pytest.raises(OnePassError, match="streams"):
        evaluate(asr, read_manifest(manifest), mode="stream", streams=0)


def test_cli_eval(hf_dir, manifest):
    proc = subprocess.run([sys.executable, "-m", "onepass", "eval", "--model", hf_dir, "--manifest", manifest,
                           "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wer" in json.loads(proc.stdout.splitlines()[-1])


def test_cli_eval_predictions(hf_dir, manifest, tmp_path):
    """--predictions writes each manifest line back with pred_text and its WER; an unwritable path is a
    clear error before any work."""
    out = tmp_path / "pred.jsonl"
    proc = subprocess.run([sys.executable, "-m", "onepass", "eval", "--model", hf_dir, "--manifest", manifest,
                           "--predictions", str(out), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    src = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["text"] for r in rows] == [r["text"] for r in src] and all("pred_text" in r for r in rows)
    by_lang = {r["lang"]: r for r in rows}
    assert by_lang["en-US"]["wer"] == report["languages"]["en-US"]["wer"] == 0.0
    assert by_lang["de-DE"]["wer"] == report["languages"]["de-DE"]["wer"]
    bad = subprocess.run([sys.executable, "-m", "onepass", "eval", "--model", hf_dir, "--manifest", manifest,
                          "--predictions", str(tmp_path / "no" / "such" / "dir.jsonl")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "cannot write predictions" in bad.stderr and "Traceback" not in bad.stderr


def test_bad_manifest(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no audio"}\n')
    with pytest.raises(OnePassError, match="audio_filepath"):
        read_manifest(bad)
    with pytest.raises(OnePassError, match="cannot read manifest"):
        read_manifest(tmp_path / "missing.jsonl")
