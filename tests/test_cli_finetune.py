"""`onepass finetune` end to end on the demo model: the output directory loads in onepass and
transformers with the same token ids, streams exactly as it transcribes offline, exports to ONNX,
records a new locale's prompt slot; resume, Ctrl-C, freezing and bad lines behave."""

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import onepass
from onepass.cli.main import main

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "onepass" / "assets" / "demo"
SAMPLES = REPO / "onepass" / "assets" / "samples"
NEW = "szl-PL"  # Silesian: not in the prompt dictionary

pytest.importorskip("transformers")


def _manifests(tmp: Path) -> tuple[Path, Path]:
    rows = [r for r in json.loads((SAMPLES / "samples.json").read_text()) if "long" not in r["audio_filepath"]]
    train = [dict(r, audio_filepath=str(SAMPLES / r["audio_filepath"])) for r in rows]
    no_lang = dict(train[0])
    del no_lang["lang"]  # gets --language
    bad = {"audio_filepath": str(tmp / "missing.wav"), "text": "gone"}
    (tmp / "train.jsonl").write_text("\n".join(json.dumps(r) for r in train + [no_lang, bad]) + "\n")
    (tmp / "val.jsonl").write_text("\n".join(json.dumps(r) for r in train) + "\n")
    return tmp / "train.jsonl", tmp / "val.jsonl"


ARGS = ["--steps", "2", "--batch-seconds", "6", "--lr", "1e-3", "--warmup-steps", "1", "--val-chunk-ms", "80",
        "--checkpoint-every", "0", "--threads", "1", "--no-progress", "--ema", "0.5", "--freq-warp", "0.08"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finetune")
    train, val = _manifests(tmp)
    out = tmp / "out"
    code = main(["finetune", "--model", "demo", "--train", str(train), "--val", str(val), "--out", str(out),
                 "--language", NEW, *ARGS])
    assert code == 0
    return out, train, val


def test_output_is_a_trained_hf_directory_with_the_new_locale(run, capsys):
    out, _, _ = run
    for name in ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json", "state.pt"):
        assert (out / name).exists(), name
    shipped, tuned = load_file(str(DEMO / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(shipped) == set(tuned)
    assert any(not torch.equal(shipped[k], tuned[k]) for k in shipped)
    state = torch.load(out / "state.pt", weights_only=False)  # --ema: the saved weights are the average
    assert all(torch.equal(tuned[k], state["ema"][k]) for k in tuned)
    assert any(not torch.equal(state["ema"][k], state["model"][k]) for k in tuned)
    old = json.loads((DEMO / "processor_config.json").read_text())["prompt_dictionary"]
    new = json.loads((out / "processor_config.json").read_text())["prompt_dictionary"]
    assert NEW not in old and new[NEW] not in old.values() and {k: new[k] for k in old} == old
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "rnnt" in r] and all(r["rnnt"] > 0 for r in log if "rnnt" in r)
    assert any("validation" in r for r in log)
    assert "missing audio file" in (out / "skipped.txt").read_text()
    assert json.loads((out / "finetune.json").read_text())["augment"]["freq_warp"] == 0.08
    asr = onepass.load_model(str(out))
    assert NEW in asr.languages()
    assert asr.transcribe(str(SAMPLES / "en-US.wav"), language=NEW).text is not None


def _hf_tokens(model, processor, audio, lang, r):
    inputs = processor(audio, sampling_rate=16000, language=lang)
    inputs["num_lookahead_tokens"] = r
    with torch.no_grad():
        seq = model.generate(**inputs, return_dict_in_generate=True).sequences[0].tolist()[1:]
    return [int(t) for t in seq if t != model.config.blank_token_id]


def test_onepass_and_transformers_agree_and_streaming_equals_offline(run):
    import soundfile as sf
    from transformers import AutoModelForRNNT, AutoProcessor

    out, _, _ = run
    hf = AutoModelForRNNT.from_pretrained(str(out), dtype=torch.float32).eval()
    proc = AutoProcessor.from_pretrained(str(out))
    asr = onepass.load_model(str(out))
    nonempty = 0
    for lang in ("de-DE", NEW):  # a trained locale and the new one (its audio is the English sample)
        audio = sf.read(SAMPLES / f"{'en-US' if lang == NEW else lang}.wav", dtype="float32")[0]
        for chunk_ms, r in ((1120, 13), (80, 0)):
            offline = asr.transcribe(audio, 16000, language=lang, chunk_ms=chunk_ms)
            assert list(offline.token_ids) == _hf_tokens(hf, proc, audio, lang, r), (lang, chunk_ms)
            session = asr.stream(language=lang, chunk_ms=chunk_ms)
            rng, s = random.Random(chunk_ms), 0
            while s < len(audio):
                n = int(16000 * rng.uniform(0.02, 0.5))
                session.accept(audio[s: s + n], 16000)
                s += n
            assert list(session.finish().token_ids) == list(offline.token_ids), (lang, chunk_ms)
            nonempty += bool(offline.token_ids)
    assert nonempty >= 3


def test_export_works_on_the_output(run, tmp_path):
    out, _, _ = run
    assert main(["export", "--model", str(out), "--out", str(tmp_path / "onnx")]) == 0
    assert (tmp_path / "onnx" / "encoder.onnx").exists() and (tmp_path / "onnx" / "tokens.txt").exists()


def test_existing_run_needs_resume_and_resume_continues(run, tmp_path, capsys):
    out, train, val = run
    assert main(["finetune", "--train", str(train), "--out", str(out), "--language", NEW, *ARGS]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["finetune", "--train", str(train), "--out", str(out), "--language", "el-GR", "--resume", *ARGS]) == 2
    assert "changed: --language 'szl-PL' -> 'el-GR'" in capsys.readouterr().err
    assert main(["finetune", "--train", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "x"), *ARGS]) == 2
    assert "cannot read manifest" in capsys.readouterr().err


def test_ctrl_c_saves_and_resume_picks_up_there(tmp_path, monkeypatch, capsys):
    from onepass.training.loop import Trainer

    train, _ = _manifests(tmp_path)
    out = tmp_path / "out"
    original = Trainer.train_step

    def interrupted(self):
        if self.step == 1:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    args = ["finetune", "--train", str(train), "--out", str(out), "--language", NEW, "--steps", "2",
            "--batch-seconds", "6", "--threads", "1", "--no-progress", "--checkpoint-every", "0"]
    assert main(args) == 130
    assert "interrupted: saved step 1" in capsys.readouterr().err
    state = torch.load(out / "state.pt", weights_only=False)
    assert state["step"] == 1 and (out / "last" / "model.safetensors").exists()
    monkeypatch.setattr(Trainer, "train_step", original)
    assert main(args + ["--resume"]) == 0
    assert "resumed at step 1 of 2" in capsys.readouterr().out
    assert torch.load(out / "state.pt", weights_only=False)["step"] == 2


def _two_clips(tmp_path: Path) -> Path:
    """A training manifest of two clips of the test set (one batch)."""
    rows = [json.loads(x) for x in _manifests(tmp_path)[0].read_text().splitlines()][1:3]
    train = tmp_path / "two.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return train


def test_frozen_layers_do_not_move_and_the_loss_falls(tmp_path):
    from onepass.training import AugmentSettings, FinetuneSettings, OptimSettings, finetune

    train = _two_clips(tmp_path)
    s = FinetuneSettings(model="demo", train=str(train), out=str(tmp_path / "out"), steps=8, language=NEW,
                         freeze="2,decoder", threads=1, progress=False, checkpoint_every=0, log_every=1,
                         optim=OptimSettings(lr=3e-3, warmup_steps=1),
                         augment=AugmentSettings(freq_masks=0, time_masks=0))
    lines: list[str] = []
    result = finetune(s, say=lines.append)
    assert result.steps == 8 and any("frozen: encoder.subsampling, encoder.layers.0, encoder.layers.1, decoder" in x
                                      for x in lines)
    shipped, tuned = load_file(str(DEMO / "model.safetensors")), load_file(str(tmp_path / "out" / "model.safetensors"))
    for k in shipped:
        same = torch.equal(shipped[k], tuned[k])
        if k.startswith(("encoder.subsampling.", "encoder.layers.0.", "encoder.layers.1.", "decoder.")):
            assert same, k
    assert not torch.equal(shipped["encoder.layers.7.feed_forward2.linear2.weight"],
                           tuned["encoder.layers.7.feed_forward2.linear2.weight"])
    losses = [json.loads(x)["rnnt"] for x in (tmp_path / "out" / "log.jsonl").read_text().splitlines()
              if "rnnt" in json.loads(x)]
    assert losses[-1] < 0.7 * losses[0], losses  # it learns the few clips it sees


def test_freeze_joint_trains_the_prediction_network_alone(tmp_path):
    """--freeze encoder,joint,prompt: one step moves the prediction network and nothing of the encoder, the joint
    or the prompt (the encoder's output projection is not part of "encoder" for --freeze)."""
    from onepass.training import AugmentSettings, FinetuneSettings, OptimSettings, finetune

    train = _two_clips(tmp_path)
    s = FinetuneSettings(model="demo", train=str(train), out=str(tmp_path / "out"), steps=1, threads=1,
                         freeze="encoder,joint,prompt", progress=False, checkpoint_every=0, log_every=1,
                         optim=OptimSettings(lr=1e-3, warmup_steps=1),
                         augment=AugmentSettings(freq_masks=0, time_masks=0))
    lines: list[str] = []
    finetune(s, say=lines.append)
    assert any("frozen: encoder, joint, prompt" in x for x in lines), lines
    shipped, tuned = load_file(str(DEMO / "model.safetensors")), load_file(str(tmp_path / "out" / "model.safetensors"))
    moved = {k.split(".")[0] for k in shipped if not torch.equal(shipped[k], tuned[k])}
    assert moved <= {"decoder", "encoder_projector"} and "decoder" in moved, moved


def test_anchor_pulls_each_step_back_toward_the_starting_weights(tmp_path):
    """One step with --anchor A ends (1 - lr A) of the way from the start to where the same step without it
    ends, in every tensor (same seed, same batch, same gradients)."""
    from onepass.training import AugmentSettings, FinetuneSettings, OptimSettings, finetune

    train = _two_clips(tmp_path)
    tuned = {}
    for anchor in (0.0, 200.0):
        out = tmp_path / f"out{anchor:g}"
        s = FinetuneSettings(model="demo", train=str(train), out=str(out), steps=1, threads=1,  # no new slot
                             progress=False, checkpoint_every=0, log_every=1,
                             optim=OptimSettings(lr=1e-3, warmup_steps=1, anchor=anchor),
                             augment=AugmentSettings(freq_masks=0, time_masks=0))
        finetune(s, say=lambda line: None)
        tuned[anchor] = load_file(str(out / "model.safetensors"))
        lr = json.loads((out / "log.jsonl").read_text().splitlines()[0])["lr"]
    start = load_file(str(DEMO / "model.safetensors"))
    moved = 0
    for k, w0 in start.items():
        free, pulled = tuned[0.0][k] - w0, tuned[200.0][k] - w0
        if free.abs().max() > 0:
            moved += 1
            # float32 rounding of the weights: about 1e-7 of a weight; a step moves them about 1e-3
            torch.testing.assert_close(pulled, (1 - lr * 200.0) * free, rtol=1e-3, atol=2e-6)
        else:
            assert torch.equal(pulled, free), k
    assert moved > 50 and 0 < lr * 200.0 < 1


def test_lr_scale_scales_each_parts_first_step(tmp_path):
    """--lr-scale: Adam's first step moves every weight by lr x (its own normalised gradient), so with
    encoder=0.5,joint=2 the encoder's and its projection's steps are half, the joint's twice, and every
    other part's the same as without it (same seed, batch and gradients)."""
    from onepass.training import AugmentSettings, FinetuneSettings, OptimSettings, finetune

    train = _two_clips(tmp_path)
    tuned = {}
    for spec in (None, "encoder=0.5, joint=2"):
        out = tmp_path / ("scaled" if spec else "plain")
        s = FinetuneSettings(model="demo", train=str(train), out=str(out), steps=1, threads=1, lr_scale=spec,
                             progress=False, checkpoint_every=0, log_every=1,
                             optim=OptimSettings(lr=1e-3, warmup_steps=1),
                             augment=AugmentSettings(freq_masks=0, time_masks=0))
        finetune(s, say=lambda line: None)
        tuned[spec] = load_file(str(out / "model.safetensors"))
    start = load_file(str(DEMO / "model.safetensors"))
    factors = {"encoder": 0.5, "encoder_projector": 0.5, "joint": 2.0}
    seen = set()
    for k, w0 in start.items():
        plain, scaled = tuned[None][k] - w0, tuned["encoder=0.5, joint=2"][k] - w0
        f = factors.get(k.split(".")[0], 1.0)
        if plain.abs().max() > 0:
            seen.add(f)
        torch.testing.assert_close(scaled, f * plain, rtol=1e-3, atol=2e-6)  # float32 rounding of the weights
    assert seen == {0.5, 1.0, 2.0}


def test_user_errors(tmp_path, capsys):
    train, _ = _manifests(tmp_path)
    nemo = tmp_path / "m.nemo"
    nemo.write_bytes(b"x")
    cases = [(["--model", str(nemo)], "Hugging Face directory"),
             (["--language", "not a code"], "not a locale code"),  # the last --language wins
             (["--freeze", "99"], "--freeze"),
             (["--freq-warp", "0.7"], "--freq-warp"),
             (["--anchor", "-1"], "--anchor"),
             (["--distill", "-1"], "--distill"),
             (["--anchor", "5000", "--lr", "1e-3"], "below 1 / --lr"),
             (["--pred-input-drop", "1"], "--pred-input-drop"),
             (["--fastemit", "-0.1"], "--fastemit"),
             (["--lr-scale", "encoder=0"], "--lr-scale"),
             (["--lr-scale", "lstm=0.5"], "--lr-scale"),
             (["--lr-scale", "encoder"], "--lr-scale"),
             (["--val-chunk-ms", "100", "--val", str(train)], "not the model's")]
    for extra, message in cases:
        out = tmp_path / f"o{len(message)}"
        assert main(["finetune", "--train", str(train), "--out", str(out), "--steps", "1", "--no-progress",
                     "--language", NEW, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    (tmp_path / "nolang.jsonl").write_text(json.dumps({"audio_filepath": str(SAMPLES / "en-US.wav"),
                                                       "text": "hello"}) + "\n")
    assert main(["finetune", "--train", str(tmp_path / "nolang.jsonl"), "--out", str(tmp_path / "n"),
                 "--steps", "1"]) == 2
    assert "pass --language" in capsys.readouterr().err
