"""The command line, run as a user would: exact output, several files, clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile as sf

from tests.reference import hf as ref


def onepass(*args, check=False):
    proc = subprocess.run([sys.executable, "-m", "onepass", *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def wavs(clips, tmp_path_factory):
    d = tmp_path_factory.mktemp("wavs")
    paths = {}
    for name in ("normal", "short"):
        paths[name] = d / f"{name}.wav"
        sf.write(paths[name], clips[name], 16000, subtype="FLOAT")
    return paths


@pytest.mark.parametrize("mode", ["offline", "stream"])
def test_json_output_is_exact(hf_dir, wavs, clips, mode):
    proc = onepass("transcribe", "--model", hf_dir, "--language", "de", "--chunk-ms", 320, "--mode", mode,
                   "--format", "json", wavs["normal"], wavs["short"])
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 2
    for line, name in zip(lines, ("normal", "short")):
        expected = ref.hf_offline(hf_dir, clips[name], language="de-DE", right_context=3)["token_ids"]
        assert line["token_ids"] == expected
        assert line["language"] == "de-DE" and line["language_detected"] is False
        assert set(line) >= {"text", "language", "token_ids", "words", "duration"}


def test_live_captions_and_output_dir(hf_dir, wavs, tmp_path):
    out = tmp_path / "out"
    proc = onepass("transcribe", "--model", hf_dir, "--mode", "stream", "--live", "--chunk-ms", 160,
                   "--format", "srt", "--output-dir", out, wavs["normal"])
    assert proc.returncode == 0, proc.stderr
    srt = (out / "normal.srt").read_text()
    assert "-->" in srt or srt.strip() == ""
    proc = onepass("transcribe", "--model", hf_dir, "--format", "vtt", "--output-dir", out, wavs["normal"])
    assert (out / "normal.vtt").read_text().startswith("WEBVTT")


def test_errors_are_clean(hf_dir, wavs, tmp_path):
    proc = onepass("transcribe", "--model", hf_dir, "--language", "klingon", wavs["short"])
    assert proc.returncode == 2 and "unknown language" in proc.stderr
    proc = onepass("transcribe", "--model", hf_dir, "--chunk-ms", 400, wavs["short"])
    assert proc.returncode == 2 and "not supported" in proc.stderr
    proc = onepass("transcribe", "--model", tmp_path / "missing", wavs["short"])
    assert proc.returncode == 2 and "not found" in proc.stderr
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    empty = tmp_path / "empty.wav"
    sf.write(empty, [], 16000)
    proc = onepass("transcribe", "--model", hf_dir, "--format", "json", bad, wavs["short"], empty)
    assert proc.returncode == 1
    assert len(proc.stdout.splitlines()) == 1  # the good file is still transcribed
    assert "bad.wav" in proc.stderr and "empty.wav" in proc.stderr


def test_mode_is_not_mistaken_for_model(hf_dir, wavs):
    proc = onepass("transcribe", "--mode", "stream", "--model", hf_dir, "--format", "json", wavs["short"])
    assert proc.returncode == 0, proc.stderr
    proc = onepass("transcribe", "--mod", "stream", wavs["short"])
    assert proc.returncode == 2  # abbreviations are refused, not guessed


def test_info_and_models(hf_dir):
    proc = onepass("info", hf_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["chunk_ms"] == [80, 160, 320, 560, 1120]
    assert "de-DE" in info["languages"] and "auto" in info["languages"]
    assert onepass("models").returncode == 0


@pytest.mark.parametrize("debug", [False, True])
def test_a_bug_is_one_line_and_the_other_files_still_run(hf_dir, wavs, monkeypatch, capsys, debug):
    """An unexpected exception (a bug, not a user error) on one file: one line naming the file, the
    error and that it is a bug, the traceback only with --debug; the next file is still transcribed."""
    from onepass.cli.main import main
    from onepass.recognizer import Recognizer

    real = Recognizer.transcribe_batch
    calls = []

    def flaky(self, audios, **kw):
        calls.append(len(audios[0]))
        if len(calls) == 1:
            raise RuntimeError("mat2 must be a matrix")
        return real(self, audios, **kw)

    monkeypatch.setattr(Recognizer, "transcribe_batch", flaky)
    code = main(["transcribe", "--model", hf_dir, "--backend", "torch", *(["--debug"] if debug else []),
                 str(wavs["short"]), str(wavs["normal"])])
    out, err = capsys.readouterr()
    assert code == 1 and len(calls) == 2 and len(out.splitlines()) == 1
    line = next(x for x in err.splitlines() if x.startswith("onepass: error:"))
    assert "short.wav" in line and "RuntimeError" in line and "this is a bug in onepass" in line
    assert ("Traceback" in err) == debug and ("--debug" in line) != debug


def test_a_bug_outside_the_file_loop_is_one_line(hf_dir, wavs, monkeypatch, capsys):
    from onepass.cli import transcribe
    from onepass.cli.main import main

    monkeypatch.setattr(transcribe, "load", lambda args: 1 / 0)
    assert main(["transcribe", "--model", hf_dir, str(wavs["short"])]) == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "this is a bug in onepass" in err and "Traceback" not in err
