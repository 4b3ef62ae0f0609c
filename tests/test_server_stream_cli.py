"""``onepass stream`` against a real server: printed captions are the offline transcript."""

from __future__ import annotations

import io
import sys

import numpy as np
import soundfile as sf

from onepass.cli.main import main
from onepass.server import ServerConfig, create_app
from onepass.server.testing import serve_in_thread


def test_stream_file_and_stdin(asr, clips, tmp_path, capsys, monkeypatch):
    audio = np.concatenate([clips["normal"], clips["long"]])
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    path = tmp_path / "a.wav"
    sf.write(path, pcm, 16000, subtype="PCM_16")
    expected = asr.transcribe(pcm.astype(np.float32) / 32768, 16000, chunk_ms=320).text
    assert expected
    with serve_in_thread(create_app(asr, ServerConfig(endpoint_blank_ms=None, api_keys=("k",)))) as http:
        url = http.replace("http", "ws")
        assert main(["stream", str(path), "--url", url, "--fast", "--chunk-ms", "320", "--api-key", "k"]) == 0
        assert capsys.readouterr().out.strip() == expected
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm.tobytes())))
        assert main(["stream", "-", "--url", url, "--fast", "--chunk-ms", "320", "--api-key", "k"]) == 0
        assert capsys.readouterr().out.strip() == expected
        assert main(["stream", str(path), "--url", url, "--fast"]) == 2  # no key: refused, clear error
        assert "HTTP 401" in capsys.readouterr().err
