"""Training the demo model further from the shipped HF directory (tools/demo_model): the tokenizer is
rebuilt exactly, and the fresh auxiliary heads learn alone first without moving the shipped weights."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools" / "demo_model"
DEMO = REPO / "onepass" / "assets" / "demo"


def tool(name: str) -> list[str]:
    """The command line of a recipe script (a module of the tools.demo_model package, run from the repo root)."""
    return [sys.executable, "-m", f"tools.demo_model.{name}"]


def sh(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, **kw)


def test_rebuilt_tokenizer_is_the_shipped_one(tmp_path):
    pytest.importorskip("faker")
    from tools.demo_model.build import train_sentencepiece
    from tools.demo_model.rebuild_spm import shipped_pieces, spm_pieces, stage1_texts

    assert spm_pieces(train_sentencepiece(stage1_texts(), tmp_path, 640)) == shipped_pieces(DEMO)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Six training clips (two per language) from make_corpus.py."""
    pytest.importorskip("faker")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (the CI installs it)")
    out = tmp_path_factory.mktemp("corpus")
    sh([*tool("make_corpus"), "--out", str(out), "--train-per-lang", "2",
                    "--test-per-lang", "1", "--words-per-lang", "50", "--workers", "1"], check=True,
                   capture_output=True)
    return out


def test_training_from_the_shipped_directory_trains_the_new_heads_first(tmp_path, corpus):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    cfg = json.loads((TOOLS / "demo_config_stage7.json").read_text())
    cfg.update(heads_only_steps=2, max_batch=3, log_every=1, threads=1)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    train = [*tool("train"), "--corpus", str(corpus), "--out", str(run),
             "--config", str(tmp_path / "cfg.json"), "--init-from", str(DEMO), "--max-steps", "2"]
    missing = sh(train, capture_output=True, text=True)
    assert missing.returncode != 0 and "rebuild_spm" in missing.stderr  # the tokenizer comes first
    sh([*tool("rebuild_spm"), "--out", str(run)], check=True,
                   capture_output=True)
    out = sh(train, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    ck = torch.load(run / "ckpt.pt", weights_only=False)
    shipped = load_file(str(DEMO / "model.safetensors"))
    assert ck["step"] == 2 and set(ck["model"]) == set(shipped)
    assert all(torch.equal(ck["model"][k], v) for k, v in shipped.items())  # heads only: the model untouched
    assert all(torch.equal(ck["ema"][k], v) for k, v in shipped.items())  # and so is its weight average
    assert (run / "hf_ema" / "model.safetensors").exists()
    V, H = cfg["model"]["vocab_size"] + 1, cfg["model"]["decoder_hidden_size"]  # + blank
    assert ck["objective"]["ctc"]["weight"].shape == (V, H) and "phone" in ck["objective"]
    state = ck["optimizer"]["state"].values()  # AdamW state only for the two heads' weights and biases
    assert len(state) == 4 and all(int(s["step"]) == 2 for s in state)

    resumed = sh([*tool("train"), "--corpus", str(corpus), "--out", str(run),
                              "--resume", "--max-steps", "3"], capture_output=True, text=True)
    assert resumed.returncode == 0 and "resumed at step 2" in resumed.stdout, resumed.stderr[-2000:]
    ck3 = torch.load(run / "ckpt.pt", weights_only=False)
    assert ck3["step"] == 3 and any(not torch.equal(ck3["model"][k], v) for k, v in shipped.items())
    moved = [k for k, v in shipped.items() if v.is_floating_point() and not torch.equal(ck3["model"][k], v)]
    assert moved and all(torch.allclose(ck3["ema"][k], 0.999 * shipped[k] + 0.001 * ck3["model"][k], atol=1e-6)
                         for k in moved)  # one averaged step (float tolerance)


def test_weight_average_follows_the_weights_and_copies_integer_buffers():
    from onepass.training.average import WeightAverage

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    ema = WeightAverage(model, decay=0.75)
    with torch.no_grad():
        model[0].weight.add_(4.0)
    model(torch.randn(5, 3))  # training mode: BatchNorm's running stats and counter move
    ema.update(model)
    live = model.state_dict()
    assert torch.allclose(ema.state["0.weight"], start["0.weight"] + 1.0)  # a quarter of the step of 4 (float)
    assert torch.allclose(ema.state["1.running_mean"], 0.75 * start["1.running_mean"] + 0.25 * live["1.running_mean"])
    assert int(ema.state["1.num_batches_tracked"]) == 1
    copy = ema.model_copy(model)
    assert not copy.training and torch.equal(copy[0].weight, ema.state["0.weight"])
    assert torch.equal(model[0].weight, start["0.weight"] + 4.0)  # the live model is untouched


def test_right_context_draw_follows_its_weights_and_keeps_the_uniform_stream(tmp_path):
    from onepass.training.loop import draw_right_context
    from tools.demo_model.train import TrainConfig, load_config

    uniform = TrainConfig()
    g, ref = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    rcs = tuple(uniform.model.right_contexts)
    # no weights: the draw of the earlier stages, random stream and all
    assert [draw_right_context(rcs, (), g) for _ in range(50)] == [
        rcs[int(torch.randint(len(rcs), (1,), generator=ref))] for _ in range(50)]
    cfg = load_config(str(REPO / "tools" / "demo_model" / "demo_config_stage8.json"))
    assert len(cfg.right_context_weights) == len(cfg.model.right_contexts)
    g = torch.Generator().manual_seed(0)
    draws = [draw_right_context(rcs, (0.5, 0.0, 0.0, 0.0, 0.5), g) for _ in range(2000)]
    assert set(draws) == {0, 13}  # a zero weight is never drawn
    assert 900 < draws.count(0) < 1100  # about half (binomial sd 22)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"right_context_weights": [1.0, 1.0]}))
    with pytest.raises(ValueError, match="one non-negative weight per right context"):
        load_config(str(bad))


def test_a_bigger_config_grows_the_shipped_directory(tmp_path, corpus):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    cfg = json.loads((TOOLS / "demo_config_stage7.json").read_text())
    cfg.update(heads_only_steps=1, max_batch=3, log_every=1, threads=1, ema_decay=0.0)
    layers = cfg["model"]["num_layers"]
    cfg["model"]["num_layers"] = layers + 1
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sh([*tool("rebuild_spm"), "--out", str(run)], check=True,
                   capture_output=True)
    out = sh([*tool("train"), "--corpus", str(corpus), "--out", str(run),
                          "--config", str(tmp_path / "cfg.json"), "--init-from", str(DEMO), "--max-steps", "1"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    grown = [line for line in out.stdout.splitlines() if line.startswith("grown from")]
    assert grown and f"{layers} -> {layers + 1} layers" in grown[0]
    assert float(grown[0].split("changed by ")[1].split("%")[0]) < 5.0  # nearly the same function
    ck = torch.load(run / "ckpt.pt", weights_only=False)
    shipped = load_file(str(DEMO / "model.safetensors"))
    first, last = "encoder.layers.0.", f"encoder.layers.{layers - 1}."
    for k, v in shipped.items():  # heads only so far: the kept layers are the shipped ones, moved
        if k.startswith(first):
            assert torch.equal(ck["model"][k], v)
        elif k.startswith(last):
            assert torch.equal(ck["model"][k.replace(last, f"encoder.layers.{layers}.")], v)
        elif not k.startswith("encoder.layers."):
            assert torch.equal(ck["model"][k], v)


def test_random_voice_variants_widen_the_training_split_only(tmp_path, corpus):
    from tools.demo_model.make_corpus import TEST_VARIANTS
    from tools.demo_model.voices import data_dir_with, random_variant, system_data_dir

    assert random_variant(7) == random_variant(7) != random_variant(8)
    with pytest.raises(ValueError, match="at most 349"):  # past the cap espeak-ng would ignore them silently
        data_dir_with([f"rv{k}" for k in range(1, 300)], tmp_path / "too_many")
    out = tmp_path / "rv"
    sh([*tool("make_corpus"), "--out", str(out), "--train-per-lang", "2",
                    "--test-per-lang", "1", "--words-per-lang", "50", "--workers", "1", "--random-variants", "40"],
                   check=True, capture_output=True)
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    variants = out / "espeak" / "espeak-ng-data" / "voices" / "!v"
    random_voices = [r["voice"].split("+")[1] for r in rows if "+rv" in r["voice"]]
    assert random_voices and all((variants / v).exists() for v in random_voices)
    for v in TEST_VARIANTS:  # the held-out voices in the private copy are espeak-ng's own files
        assert (variants / v).read_bytes() == (system_data_dir() / "voices" / "!v" / v).read_bytes()
    assert all(r["words"] is not None for r in rows)  # espeak-ng's word events still cover every word
    # the held-out split is byte for byte the one without random variants
    assert (out / "test.jsonl").read_text().replace(str(out), "X") == \
        (corpus / "test.jsonl").read_text().replace(str(corpus), "X")
    for line in (corpus / "test.jsonl").read_text().splitlines():
        wav = Path(json.loads(line)["audio_filepath"])
        assert (out / wav.relative_to(corpus)).read_bytes() == wav.read_bytes()
    # --variant-seed draws other speakers for the same sentences
    out2 = tmp_path / "rv2"
    sh([*tool("make_corpus"), "--out", str(out2), "--train-per-lang", "2",
                    "--test-per-lang", "1", "--words-per-lang", "50", "--workers", "1", "--random-variants", "40",
                    "--variant-seed", "3"], check=True, capture_output=True)
    rows2 = [json.loads(line) for line in (out2 / "train.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows2] == [r["text"] for r in rows]
    random_voices2 = [r["voice"].split("+")[1] for r in rows2 if "+rv" in r["voice"]]
    assert random_voices2 and not set(random_voices2) & set(random_voices)
    assert all((out2 / "espeak" / "espeak-ng-data" / "voices" / "!v" / v).exists() for v in random_voices2)


def test_long_form_batches_train_from_the_shipped_directory(tmp_path, corpus):
    """Issue 35's recipe (demo_config_longform.json): batches of long-form examples built on the fly from
    the corpus wavs (longform.py) train with finite losses."""
    run = tmp_path / "run"
    cfg = json.loads((TOOLS / "demo_config_longform.json").read_text())
    stage8 = json.loads((TOOLS / "demo_config_stage8.json").read_text())
    # the stage-8 network and right-context draw (every chunk size trained); a short fine-tune: RNN-T alone
    assert cfg["model"] == stage8["model"] and cfg["right_context_weights"] == stage8["right_context_weights"]
    assert 0 < cfg["longform_prob"] < 1  # single clips stay in the mix
    assert cfg["heads_only_steps"] == 0 and cfg["train_decoder_only"]  # RNN-T alone: no fresh heads to train
    cfg.update(max_batch=3, log_every=1, threads=1, longform_prob=1.0)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sh([*tool("rebuild_spm"), "--out", str(run)], check=True,
                   capture_output=True)
    out = sh([*tool("train"), "--corpus", str(corpus), "--out", str(run),
                          "--config", str(tmp_path / "cfg.json"), "--init-from", str(DEMO), "--max-steps", "3"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    losses = [float(line.split(" rnnt ")[1].split()[0]) for line in out.stdout.splitlines()
              if line.startswith("step ")]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses))) and min(losses) > 0


def test_focus_words_are_drawn_more_often_into_long_form_examples():
    """A training config's ``focus`` section (hard_words.py's words): a clip with one of its language's words
    (matched after normalising case and punctuation) is drawn ``weight`` times as often; without the section
    the draws stay uniform."""
    import random
    from collections import Counter

    from tools.demo_model.batches import focus_weights
    from tools.demo_model.longform import LongFormConfig, draw_clips

    texts = ["I know.", "Go there now.", "Set west?", "Eye line, here!", "Trial set."]
    rows = [{"text": t, "lang": "en-US", "duration": 1.0} for t in texts]
    by_lang = {"en-US": list(range(len(rows)))}
    cum = focus_weights(rows, by_lang, {"weight": 4.0, "words": {"en-US": ["know", "line"], "de-DE": ["mehr"]}})
    assert cum == {"en-US": [4.0, 5.0, 6.0, 10.0, 11.0]}
    cfg = LongFormConfig(max_utts=1)
    for weights, expect in ((cum, [4 / 11, 1 / 11, 1 / 11, 4 / 11, 1 / 11]), (None, [0.2] * 5)):
        rng = random.Random(0)
        seen = Counter(i for _ in range(11000) for i in draw_clips(by_lang, [1.0] * 5, rng, cfg, weights))
        assert [seen[i] / 11000 for i in range(5)] == pytest.approx(expect, abs=0.015)


def test_hard_words_are_counted_on_the_alignment_of_whole_streams():
    from collections import Counter

    from tools.demo_model.hard_words import hard, word_errors

    refs = [["i know this", "go now"], ["i know", "set west now"]]
    hyps = ["eye no this go now", "i know set west"]  # stream 1: "i", "know" wrong; stream 2: "now" deleted
    seen, wrong = word_errors(refs, hyps)
    assert seen == Counter({"i": 2, "know": 2, "now": 2, "this": 1, "go": 1, "set": 1, "west": 1})
    assert wrong == Counter({"i": 1, "know": 1, "now": 1})
    # 3 errors in 10 words: a hard word errs at least twice as often (factor 2), seen at least twice
    assert hard(seen, wrong, min_count=2, min_rate=0.1, factor=2.0) == {}
    assert hard(seen, wrong, min_count=2, min_rate=0.1, factor=1.5) == {"i": [2, 0.5], "know": [2, 0.5],
                                                                         "now": [2, 0.5]}
    assert hard(seen, wrong, min_count=3, min_rate=0.1, factor=1.0) == {}
