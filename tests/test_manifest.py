"""`onepass transcribe --manifest` in this process: the same lines as `--format json` plus the
manifest's fields, in manifest order; errors on their line; resumable; longest files first."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from onepass.cli.main import main
from onepass.errors import OnePassError
from onepass.manifest import read_manifest, run_job, run_local


@pytest.fixture()
def corpus(tmp_path, clips):
    """Four wavs of different lengths, a corrupt file, and a manifest naming them (relative paths)."""
    audio = tmp_path / "audio"
    audio.mkdir()
    lengths = {"a": clips["normal"], "b": np.concatenate([clips["long"], clips["normal"]]),
               "c": clips["normal"][:8000], "d": clips["long"]}
    for name, samples in lengths.items():
        soundfile.write(audio / f"{name}.wav", samples, 16000, subtype="FLOAT")
    (audio / "bad.wav").write_bytes(b"RIFF....WAVEnot audio at all")
    entries = [{"audio_filepath": "audio/a.wav", "text": "reference a", "duration": 1.0},
               {"audio_filepath": "audio/bad.wav"},
               {"audio_filepath": "audio/b.wav", "lang": "de-DE", "speaker": 7},
               {"audio_filepath": "audio/c.wav"},
               {"audio_filepath": "audio/d.wav"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries) + "\n")  # a blank line is skipped
    return manifest, entries


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_lines_equal_transcribe_json_plus_manifest_fields(corpus, hf_dir, tmp_path, capsys):
    manifest, entries = corpus
    out = tmp_path / "out.jsonl"
    model = ["--model", hf_dir, "--backend", "torch", "--chunk-ms", "160", "--hotwords", "the,rain:3"]
    assert main(["transcribe", "--manifest", str(manifest), "--output", str(out), *model]) == 1  # one failed
    err = capsys.readouterr().err
    assert "4 transcribed, 0 already there, 1 failed (of 5)" in err
    got = lines(out)
    assert [g["audio_filepath"] for g in got] == [e["audio_filepath"] for e in entries]  # manifest order
    paths = [str(manifest.parent / e["audio_filepath"]) for e in entries]
    singles = {}
    for lang in (None, "de-DE"):  # `onepass transcribe --format json` of the same files, per language
        names = [p for p, e in zip(paths, entries) if e.get("lang") == lang and "bad" not in p]
        assert main(["transcribe", *names, "--format", "json", *model] + (["--language", lang] if lang else [])) == 0
        singles.update((d["file"], d) for d in map(json.loads, capsys.readouterr().out.splitlines()))
    for entry, path, g in zip(entries, paths, got):
        if "bad" in path:
            assert g == {"audio_filepath": entry["audio_filepath"], "file": path, "error": g["error"]}
            assert "cannot read" in g["error"]
            continue
        single = singles[path]
        assert single["text"]
        own = {("manifest_" + k if k in single else k): v for k, v in entry.items()}
        assert g == {**own, **single}
    assert got[0]["manifest_text"] == "reference a" and got[0]["manifest_duration"] == 1.0
    assert got[2]["speaker"] == 7 and got[2]["language"] == "de-DE"


def test_resume_skips_done_lines_and_retries_errors(corpus, asr, tmp_path):
    manifest, entries = corpus
    full = tmp_path / "full.jsonl"
    first = run_job(manifest, full, run_local(asr), progress=False)
    assert (first.total, first.done, first.failed, first.skipped) == (5, 4, 1, 0)

    partial = tmp_path / "partial.jsonl"
    kept = full.read_text().splitlines()
    partial.write_text(kept[3] + "\n" + kept[1] + "\n" + kept[0][:40])  # c, bad (an error), torn a
    asked = []

    def recording(items):
        asked.extend(i.entry["audio_filepath"] for i in items)
        return run_local(asr)(items)

    second = run_job(manifest, partial, recording, progress=False)
    assert sorted(asked) == ["audio/a.wav", "audio/b.wav", "audio/bad.wav", "audio/d.wav"]
    assert (second.skipped, second.done, second.failed) == (1, 3, 1)
    assert partial.read_text() == full.read_text()
    third = run_job(manifest, partial, recording, progress=False)  # only the failed file again
    assert (third.skipped, third.done, third.failed) == (4, 0, 1)
    assert partial.read_text() == full.read_text()


def test_longest_files_go_first(corpus, asr, tmp_path):
    manifest, _ = corpus
    order = []

    def recording(items):
        order.extend((i.entry["audio_filepath"], i.duration_s) for i in items)
        return run_local(asr)(items)

    run_job(manifest, tmp_path / "o.jsonl", recording, progress=False)
    durations = [d for _, d in order]
    assert durations == sorted(durations, reverse=True)
    assert order[0][0] == "audio/b.wav" and order[-1][0] == "audio/bad.wav"  # unreadable: unknown length, last


def test_duplicate_lines_each_get_a_line(corpus, asr, tmp_path):
    manifest, entries = corpus
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries[:1] * 3))
    out = tmp_path / "o.jsonl"
    run_job(manifest, out, run_local(asr), progress=False)
    got = out.read_text().splitlines()
    assert len(got) == 3 and len(set(got)) == 1
    assert run_job(manifest, out, run_local(asr), progress=False).skipped == 3


def test_bad_manifests_are_user_errors(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"audio_filepath": "a.wav"}\n{"audio_filepath": \n')
    with pytest.raises(OnePassError, match=r"m.jsonl:2: not JSON"):
        read_manifest(m)
    m.write_text('{"path": "a.wav"}\n')
    with pytest.raises(OnePassError, match=r"m.jsonl:1: each line needs an \"audio_filepath\""):
        read_manifest(m)
    with pytest.raises(OnePassError, match="cannot read manifest"):
        read_manifest(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("argv, message", [
    (["--manifest", "m.jsonl"], "--manifest needs --output"),
    (["a.wav", "--output", "o.jsonl"], "--output only apply with --manifest"),
    (["a.wav", "--manifest", "m.jsonl", "--output", "o.jsonl"], "either audio FILEs or --manifest"),
    (["--manifest", "m.jsonl", "--output", "o.jsonl", "--workers", "2"], "need --ray"),
    (["--manifest", "m.jsonl", "--output", "o.jsonl", "--format", "srt"], "drop --mode"),
    ([], "give audio FILEs"),
])
def test_option_errors_are_one_line(argv, message, capsys):
    assert main(["transcribe", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("onepass: error:")


RAY_COMMANDS = [["serve", "--ray"], ["serve", "--ray", "auto", "--replicas", "2"],
                ["transcribe", "--manifest", "m.jsonl", "--output", "o.jsonl", "--ray"]]
WITHOUT_RAY = """
import contextlib, io, json, sys
sys.modules["ray"] = None  # as if Ray were not installed
from onepass.cli.main import main
out = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out.append((main(argv), err.getvalue()))
print(json.dumps(out))
"""


def test_ray_missing_says_how_to_install(tmp_path):
    """Without Ray installed, --ray fails at once with one line saying how to install it."""
    r = subprocess.run([sys.executable, "-c", WITHOUT_RAY, json.dumps(RAY_COMMANDS)], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for code, err in json.loads(r.stdout):
        assert code == 2
        assert err.count("\n") == 1 and 'pip install "onepass[ray]"' in err, err
