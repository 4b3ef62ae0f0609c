"""sherpa-onnx contract of ``onepass export``: encoder/decoder/joiner/tokens.txt + metadata.

Two facts are checked, and together they say where sherpa-onnx and onepass can differ:

1. The exported files under sherpa-onnx's calling protocol (windows of ``window_size`` frames
   advanced by ``chunk_shift``, caches stacked on the batch axis and fed back, a reset stream
   starting from zero caches), on onepass's log-mel frames, with onepass's greedy rule, give
   exactly onepass's token ids (every frame sherpa-onnx encodes; it never encodes the final
   partial window).
2. sherpa-onnx 2.0.1 itself, running the files, gives exactly the tokens of that protocol with
   the same greedy rule on *its own* features (read back with ``OnlineStream.get_frames``).
   (Its token list leaves out ``<xx-XX>`` language tags; so do the expected tokens here.)

What is left between sherpa-onnx and onepass is the front end (kaldi-native-fbank frames are not
onepass's centred log-mel frames; see docs/onnx.md) and that sherpa-onnx never encodes the
final partial window (pad the tail). Neither is in the exported files.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from onepass.onnx.export import ExportSettings, export_onnx

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(asr, tmp_path_factory):
    out = {}
    for chunk_ms in (80, 560):
        d = tmp_path_factory.mktemp(f"sherpa{chunk_ms}")
        export_onnx(asr, d, ExportSettings(chunk_ms=chunk_ms, core=False))
        out[chunk_ms] = d
    return out


class Files:
    """The three exported graphs in ONNX Runtime, called as sherpa-onnx calls them."""

    def __init__(self, d):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        self.enc = ort.InferenceSession(str(d / "encoder.onnx"), so)
        self.dec = ort.InferenceSession(str(d / "decoder.onnx"), so)
        self.join = ort.InferenceSession(str(d / "joiner.onnx"), so)
        m = self.enc.get_modelmeta().custom_metadata_map
        self.meta = m
        self.window, self.shift = int(m["window_size"]), int(m["chunk_shift"])
        self.blank = int(m["vocab_size"])  # sherpa: vocab_size + 1 tokens, blank last
        self.clc = [int(m[f"cache_last_channel_dim{i}"]) for i in (1, 2, 3)]
        self.clt = [int(m[f"cache_last_time_dim{i}"]) for i in (1, 2, 3)]
        self.layers, self.hidden = int(m["pred_rnn_layers"]), int(m["pred_hidden"])
        self.in_names = [i.name for i in self.enc.get_inputs()]

    def init_states(self):
        return [np.zeros([1, *self.clc], np.float32), np.zeros([1, *self.clt], np.float32), np.zeros(1, np.int64)]

    def encode(self, windows, states, prompts):
        """windows: list of (W, F); states: list of per-stream [clc, clt, len] -> enc (B, T, D), states."""
        b = len(windows)
        feeds = [np.stack(windows).transpose(0, 2, 1).astype(np.float32), np.full(b, self.window, np.int64)]
        feeds += [np.concatenate([s[i] for s in states]) for i in range(3)]
        if "prompt_index" in self.in_names:
            feeds.append(np.asarray(prompts, np.int64))
        out = self.enc.run(None, dict(zip(self.in_names, feeds)))
        new = [[out[2][i:i + 1], out[3][i:i + 1], out[4][i:i + 1]] for i in range(b)]
        return out[0].transpose(0, 2, 1), new

    def decoder(self, token, h, c):
        out = self.dec.run(None, {"targets": np.array([[token]], np.int32), "target_length": np.ones(1, np.int32),
                                  "states_h": h, "states_c": c})
        return out[0], out[2], out[3]

    def logits(self, frame, pred):
        return self.join.run(None, {"encoder_outputs": frame[None, :, None].astype(np.float32),
                                    "decoder_outputs": pred})[0].reshape(-1)


def onepass_greedy(files: Files, frames, max_symbols: int, state):
    """onepass's rule (NeMo/transformers): up to max_symbols tokens per frame."""
    tokens = state.setdefault("tokens", [])
    if "pred" not in state:
        h = np.zeros((files.layers, 1, files.hidden), np.float32)
        state["pred"], state["h"], state["c"] = files.decoder(files.blank, h, h.copy())
    for frame in frames:
        for _ in range(max_symbols):
            k = int(np.argmax(files.logits(frame, state["pred"])))
            if k == files.blank:
                break
            tokens.append(k)
            state["pred"], state["h"], state["c"] = files.decoder(k, state["h"], state["c"])


def run_protocol(files: Files, feats: list[np.ndarray], prompts, joins, greedy):
    """sherpa-onnx's DecodeStreams loop over several streams: stream i joins at step joins[i];
    every step encodes one window of each ready stream in one batch. Returns tokens and frames."""
    states = [files.init_states() for _ in feats]
    done = [0] * len(feats)
    dec = [dict() for _ in feats]
    frames = [0] * len(feats)
    step = 0
    while True:
        ready = [i for i in range(len(feats)) if joins[i] <= step and done[i] + files.window < len(feats[i])]
        if not ready and all(joins[i] <= step for i in range(len(feats))):
            break
        if ready:
            enc, new = files.encode([feats[i][done[i]:done[i] + files.window] for i in ready],
                                    [states[i] for i in ready], [prompts[i] for i in ready])
            for row, i in enumerate(ready):
                states[i] = new[row]
                done[i] += files.shift
                frames[i] += enc.shape[1]
                greedy(files, enc[row], dec[i])
        step += 1
    return [d.get("tokens", []) for d in dec], frames


def test_metadata_and_tokens(exported, asr):
    files = Files(exported[560])
    m = files.meta
    assert files.window == files.shift == 56 and m["subsampling_factor"] == "8" and m["feat_dim"] == "128"
    assert int(m["vocab_size"]) + 1 == asr.config.vocab_size
    assert json.loads(m["prompt_dictionary"]) == asr.config.prompt_dictionary
    assert files.in_names == ["audio_signal", "length", "cache_last_channel", "cache_last_time",
                              "cache_last_channel_len", "prompt_index"]
    lines = (exported[560] / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == asr.config.vocab_size and lines[-1] == f"<blk> {asr.config.blank_id}"
    assert [ln.rsplit(" ", 1)[0] for ln in lines[:-1]] == asr.tokenizer.pieces[:-1]


@pytest.mark.parametrize("chunk_ms", [80, 560])
def test_protocol_on_onepass_features_is_exact(exported, asr, clips, chunk_ms):
    files = Files(exported[chunk_ms])
    names = ["normal", "short", "odd_length", "leading_silence"]
    langs = ["en-US", "de-DE", "auto", "es"]
    audio = [clips[n] for n in names]
    feats = []
    for a in audio:
        mel, n = asr.model.frontend(torch.from_numpy(a)[None], torch.tensor([len(a)]))
        feats.append(mel[0, :int(n)].numpy())
    prompts = [asr.language(lang).prompt for lang in langs]
    greedy = (lambda f, fr, st: onepass_greedy(f, fr, asr.config.max_symbols_per_step, st))
    tokens, frames = run_protocol(files, feats, prompts, joins=[0, 3, 1, 5], greedy=greedy)
    for a, lang, got, n in zip(audio, langs, tokens, frames):
        ref = asr.transcribe(a, 16000, language=lang, chunk_ms=chunk_ms)
        want = [k for k, t in zip(ref.token_ids, ref.token_times_s) if round(t / 0.08) < n]
        assert n > 0 and got == want, (lang, n)


def test_sherpa_onnx_runs_the_files(exported, asr, clips):
    sherpa = pytest.importorskip("sherpa_onnx")
    d = exported[560]
    files = Files(d)
    rec = sherpa.OnlineRecognizer.from_transducer(str(d / "tokens.txt"), str(d / "encoder.onnx"),
                                                  str(d / "decoder.onnx"), str(d / "joiner.onnx"), num_threads=1,
                                                  sample_rate=16000, feature_dim=128)
    prompts = json.loads(files.meta["prompt_dictionary"])
    pieces = [line.rsplit(" ", 1)[0] for line in (d / "tokens.txt").read_text(encoding="utf-8").splitlines()]

    def shown(k):  # how sherpa-onnx reports a token: printable ASCII byte pieces as the character, \u2581 as space
        byte = re.match(r"^<0x([0-9A-F]{2})>$", pieces[k])
        return chr(int(byte.group(1), 16)) if byte and 0x20 <= int(byte.group(1), 16) < 0x7F else pieces[k].replace(
            "\u2581", " ")
    greedy = (lambda f, fr, st: onepass_greedy(f, fr, asr.config.max_symbols_per_step, st))
    checked = 0
    for name, lang in [("normal", "en-US"), ("normal", "de-DE"), ("long", "fr-FR"), ("odd_length", "auto")]:
        s = rec.create_stream()
        s.set_option("language", lang)
        audio = np.concatenate([clips[name], np.zeros(8000, np.float32)])  # tail padding, as sherpa advises
        s.accept_waveform(16000, audio)
        s.input_finished()
        ready = (len(audio) + 80) // 160  # kaldi frames without snip_edges; read before decoding drops them
        feats = np.array(s.get_frames(0, ready), np.float32).reshape(ready, 128)
        windows = 0
        while rec.is_ready(s):
            rec.decode_stream(s)
            windows += 1
        got = json.loads(rec.get_result_as_json_string(s))["tokens"]
        tokens, frames = run_protocol(files, [feats], [prompts[lang]], joins=[0], greedy=greedy)
        assert frames[0] == windows * (files.shift // 8)
        assert got == [shown(k) for k in tokens[0] if not re.match(r"^<[a-z]{2}-[A-Z]{2}>$", pieces[k])], (name, lang)
        checked += len(got)
    assert checked > 20


def test_english_model_protocol_and_sherpa(asr_en, clips, tmp_path):
    """The prompt-less layout: no prompt_index input; protocol exact, sherpa-onnx == protocol."""
    export_onnx(asr_en, tmp_path, ExportSettings(chunk_ms=160, core=False))
    files = Files(tmp_path)
    assert "prompt_index" not in files.in_names and "prompt_dictionary" not in files.meta
    greedy = (lambda f, fr, st: onepass_greedy(f, fr, asr_en.config.max_symbols_per_step, st))
    audio = clips["normal"]
    mel, n = asr_en.model.frontend(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
    tokens, frames = run_protocol(files, [mel[0, :int(n)].numpy()], [None], joins=[0], greedy=greedy)
    ref = asr_en.transcribe(audio, 16000, chunk_ms=160)
    assert tokens[0] and tokens[0] == [k for k, t in zip(ref.token_ids, ref.token_times_s) if round(t / 0.08) < frames[0]]
    sherpa = pytest.importorskip("sherpa_onnx")
    rec = sherpa.OnlineRecognizer.from_transducer(str(tmp_path / "tokens.txt"), str(tmp_path / "encoder.onnx"),
                                                  str(tmp_path / "decoder.onnx"), str(tmp_path / "joiner.onnx"),
                                                  num_threads=1, sample_rate=16000, feature_dim=128)
    s = rec.create_stream()
    padded = np.concatenate([audio, np.zeros(8000, np.float32)])
    s.accept_waveform(16000, padded)
    s.input_finished()
    ready = (len(padded) + 80) // 160
    feats = np.array(s.get_frames(0, ready), np.float32).reshape(ready, 128)
    while rec.is_ready(s):
        rec.decode_stream(s)
    got = json.loads(rec.get_result_as_json_string(s))["tokens"]
    want, _ = run_protocol(files, [feats], [None], joins=[0], greedy=greedy)
    pieces = [ln.rsplit(" ", 1)[0] for ln in (tmp_path / "tokens.txt").read_text(encoding="utf-8").splitlines()]
    assert len(got) == len(want[0]) > 0
    assert all(g == p.replace("\u2581", " ") or re.match(r"^<0x[0-9A-F]{2}>$", p) for g, p in
               zip(got, [pieces[k] for k in want[0]]))
