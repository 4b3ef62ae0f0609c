"""Hotwords on the command line: transcribe --hotwords / --hotwords-file / --hotword-boost (offline and
streamed), serve's server-wide list, stream's keyterm query; one-line errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import onepass
from onepass.cli.main import build_parser, main
from onepass.cli.serve import server_config
from onepass.cli.stream import _url
from onepass.decoding.phrases import Phrase

WAV = str(Path(onepass.__file__).parent / "assets" / "samples" / "en-US.wav")
# seven English sentences; the demo model writes "Discribe forget grow" for "Describe forget grow"
WAV_LONG = str(Path(onepass.__file__).parent / "assets" / "samples" / "en-US-long.wav")


@pytest.mark.parametrize("mode", ["offline", "stream"])
def test_transcribe_with_hotwords(capsys, tmp_path, mode):
    base = ["transcribe", "--backend", "torch", "-l", "en-US", "--chunk-ms", "1120", "--mode", mode]
    assert main([*base, WAV_LONG]) == 0
    assert "Discribe forget" in capsys.readouterr().out
    assert main([*base, "--hotwords", "Describe, officer", WAV_LONG]) == 0
    assert "Describe forget" in capsys.readouterr().out
    f = tmp_path / "hw.txt"
    f.write_text("# product words\nDescribe:4\n\nofficer\n", encoding="utf-8")
    assert main([*base, "--hotwords-file", str(f), WAV_LONG]) == 0
    assert "Describe forget" in capsys.readouterr().out
    assert main([*base, "--hotwords", "Describe", "--hotword-boost", "0.01", WAV_LONG]) == 0
    assert "Discribe forget" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--hotwords", "go:-1"], "boost of 'go'"),
    (["--hotwords", "go", "--hotword-boost", "50"], "hotword boost"),
    (["--hotwords-file", "/nonexistent/hw.txt"], "cannot read hotwords file"),
    (["--hotwords", "x" * 120], "longer than"),
])
def test_bad_hotwords_are_one_line_errors(capsys, argv, message):
    assert main(["transcribe", *argv, WAV]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("onepass: error:") and message in err[0]


def test_serve_server_wide_list(tmp_path):
    f = tmp_path / "hw.txt"
    f.write_text("Nemotron\nnew york:2\n", encoding="utf-8")
    args = build_parser().parse_args(["serve", "--hotwords-file", str(f), "--hotword-boost", "4"])
    config = server_config(args, 4)
    assert config.hotwords == (Phrase("Nemotron"), Phrase("new york", 2.0)) and config.hotword_boost == 4.0
    assert server_config(build_parser().parse_args(["serve"]), 4).hotwords == ()


def test_stream_client_sends_keyterms():
    args = argparse.Namespace(url="ws://h:1", file="a.wav", rate=16000, language=None, chunk_ms=None,
                              hotwords="go, new york, west:3")
    url = _url(args)
    assert url.endswith("&keyterm=go&keyterm=new+york&keywords=west%3A3")
