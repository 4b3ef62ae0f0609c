"""The shipped demo model loads in onepass and in transformers, with identical token ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

import onepass
from onepass.checkpoints.demo import demo_path

SAMPLES = Path(onepass.__file__).parent / "assets" / "samples"


def test_demo_is_the_default_and_is_shipped():
    assert demo_path() is not None
    asr = onepass.load_model("demo")
    assert asr.config.has_prompt and {"en-US", "es-ES", "de-DE"} <= set(asr.languages())


@pytest.mark.parametrize("r", [0, 13])
def test_demo_matches_transformers(r):
    from transformers import AutoModelForRNNT, AutoProcessor

    asr = onepass.load_model("demo")
    processor = AutoProcessor.from_pretrained(demo_path())
    model = AutoModelForRNNT.from_pretrained(demo_path()).eval()
    meta = json.loads((SAMPLES / "samples.json").read_text())
    items = meta if isinstance(meta, list) else meta.get("samples", meta)
    langs = {item["audio_filepath"]: item["lang"] for item in items}
    for wav in sorted(SAMPLES.glob("*.wav")):
        audio, rate = sf.read(wav, dtype="float32")
        lang = langs[wav.name]  # en-US.wav, ..., en-US-long.wav (issue 35)
        inputs = processor(audio, sampling_rate=rate, language=lang, return_tensors="pt")
        inputs["num_lookahead_tokens"] = r
        with torch.no_grad():
            out = model.generate(**inputs, return_dict_in_generate=True)
        blank = model.config.blank_token_id
        expected = [int(t) for t in out.sequences[0] if int(t) != blank]
        assert asr.transcribe(audio, rate, language=lang, chunk_ms=(r + 1) * 80).token_ids == expected
    assert items


def test_demo_recognises_the_bundled_samples():
    """The shipped model is a working recogniser: on the bundled held-out samples (unseen sentences and
    voices) its word error rate is far from the 100 % of an untrained one (measured when shipped: 25 %,
    4 of 16 words at 1120 ms and 0 at 80 ms, with the language given, see docs/demo_model.md), offline and
    streamed alike."""
    from onepass.evaluation import normalize, word_error_rate

    asr = onepass.load_model("demo")
    meta = json.loads((SAMPLES / "samples.json").read_text())
    refs, hyps = [], []
    for item in meta:
        audio, rate = sf.read(SAMPLES / item["audio_filepath"], dtype="float32")
        offline = asr.transcribe(audio, rate, language=item["lang"])
        session = asr.stream(language=item["lang"], chunk_ms=160)
        session.accept(audio, rate)
        assert session.finish().token_ids == asr.transcribe(audio, rate, language=item["lang"], chunk_ms=160).token_ids
        refs.append(normalize(item["text"]))
        hyps.append(normalize(offline.text))
    assert word_error_rate(refs, hyps) <= 0.3, list(zip(refs, hyps))


# --- training tools (tools/demo_model): the pieces whose bugs would silently ruin a demo-model run ---

# tools/demo_model is a package run from the repository root (tests/conftest.py puts the root on sys.path);
# its RNN-T loss, schedule and augmentation are onepass.training's (tests/test_training_*.py).


def test_output_priors_init():
    """CTC / joint head biases start at the label and blank priors (the fix for the prior collapse)."""
    from transformers import Nemotron3_5AsrConfig, Nemotron3_5AsrForRNNT

    from tools.demo_model import start

    enc = dict(model_type="nemotron_asr_streaming_encoder", hidden_size=16, num_hidden_layers=1,
               num_attention_heads=2, intermediate_size=32, subsampling_conv_channels=4, num_mel_bins=16)
    cfg = Nemotron3_5AsrConfig(encoder_config=enc, num_prompts=128, prompt_intermediate_size=8, vocab_size=6,
                               decoder_hidden_size=8, num_decoder_layers=1, blank_token_id=5, pad_token_id=1)
    model = Nemotron3_5AsrForRNNT(cfg)
    ctc_head = torch.nn.Linear(8, 6)
    labels = [[0, 2, 2], [3], [2, 4]]  # 6 labels
    enc_lengths = [10, 5, 5]  # 20 frames
    start.init_output_priors_(model, ctc_head, labels, enc_lengths)
    p_ctc = ctc_head.bias.detach().softmax(-1)
    p_joint = model.joint.head.bias.detach().softmax(-1)
    counts = torch.tensor([1 + 1, 1, 1 + 3, 1 + 1, 1 + 1, 0.0])  # add-one smoothing, blank excluded
    unigram = counts / counts.sum()
    assert torch.allclose(p_ctc[5], torch.tensor(1 - 6 / 20))
    assert torch.allclose(p_ctc[:5], unigram[:5] * 6 / 20)
    assert torch.allclose(p_joint[5], torch.tensor(20 / 26))
    assert torch.allclose(p_joint[:5], unigram[:5] * 6 / 26)


def _tiny_rnnt(layers: int, ff: int, seed: int):
    from transformers import Nemotron3_5AsrConfig, Nemotron3_5AsrForRNNT

    torch.manual_seed(seed)
    enc = dict(model_type="nemotron_asr_streaming_encoder", hidden_size=16, num_hidden_layers=layers,
               num_attention_heads=2, intermediate_size=ff, subsampling_conv_channels=4, num_mel_bins=16,
               sliding_window=9, default_num_lookahead_tokens=1)
    cfg = Nemotron3_5AsrConfig(encoder_config=enc, num_prompts=128, prompt_intermediate_size=8, vocab_size=6,
                               decoder_hidden_size=8, num_decoder_layers=1, blank_token_id=5, pad_token_id=1)
    return Nemotron3_5AsrForRNNT(cfg).eval()


def test_growing_a_checkpoint_keeps_what_it_computes():
    """grow.py: wider FF blocks are exact (new hidden units start disconnected); inserted layers only add
    a LayerNorm, refit to map its input back onto itself (float tolerance: measured 2e-4 relative here,
    1.3 before the refit)."""
    from tools.demo_model import grow

    old = _tiny_rnnt(2, 32, 0)
    with torch.no_grad():  # trained-looking LayerNorms (a fresh one is the identity affine)
        for layer in old.encoder.layers:
            layer.norm_out.weight.uniform_(0.5, 1.5)
            layer.norm_out.bias.uniform_(-0.3, 0.3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 160, 16, generator=g)
    mask = torch.ones(3, 160, dtype=torch.long)
    mask[1, 100:] = 0
    pid = torch.tensor([0, 2, 9])

    wider = _tiny_rnnt(2, 64, 1)
    wider.load_state_dict(grow.grow_state_dict(old.state_dict(), wider))
    assert grow.growth_error(old, wider, x, mask, pid, r=1) < 1e-6
    assert not torch.equal(wider.encoder.layers[0].feed_forward1.linear1.weight[32:], torch.zeros(32, 16))

    deeper = _tiny_rnnt(4, 64, 2)
    assert grow.layer_placement(2, 4) == [0, 3]
    deeper.load_state_dict(grow.grow_state_dict(old.state_dict(), deeper))
    before = grow.growth_error(old, deeper, x, mask, pid, r=1)
    grow.fit_inserted_norms_(old, deeper, x, mask, pid, r=1)
    after = grow.growth_error(old, deeper, x, mask, pid, r=1)
    assert after < 0.01 < before
    for i in (1, 2):  # inserted: every residual branch's output projection starts at zero
        layer = deeper.encoder.layers[i]
        assert not layer.self_attn.o_proj.weight.any() and not layer.feed_forward2.linear2.weight.any()
    with pytest.raises(ValueError):
        grow.layer_placement(4, 2)


def test_mel_axis_warp():
    """freq_warp augmentation: factor 1 is the identity; 1.1 moves a spectral peak up by 10 %; padded
    (all-zero) frames stay zero."""
    from onepass.training.augment import warp_mel_axis

    x = torch.zeros(2, 5, 128)
    x[:, :4, 40] = 1.0
    same = warp_mel_axis(x, torch.tensor([1.0, 1.1]))
    assert torch.equal(same[0], x[0])
    assert int(same[1, 0].argmax()) == 44 and float(same[1, 0, 44]) == pytest.approx(1.0)
    assert torch.nonzero(same[1, 0]).flatten().tolist() == [43, 44, 45]  # linear interpolation: the neighbours
    assert not same[:, 4].any()


def test_frame_path_puts_each_words_pieces_at_its_end():
    from tools.demo_model import targets
    pieces = ["\u2581Big", "\u2581Re", "pub", "lican", "."]
    ids = [10, 11, 12, 13, 14]
    # words end at mel frames 41 and 100; encoder frame k has heard mel frames up to 8 k: frames 6 and 13
    words = [[0.10, 0.41], [0.45, 1.00]]
    path = targets.frame_targets(pieces, words, 16, blank=99, ids=ids)
    expected = [99] * 16
    expected[6] = 10
    expected[10:14] = [11, 12, 13, 14]  # "Republican." heard by frame 13: its 4 pieces on frames 10-13
    assert path.tolist() == expected
    # a word with more pieces than frames left does not fit: no path rather than a wrong one
    assert targets.frame_targets(pieces, [[0.0, 0.05], [0.06, 0.09]], 3, blank=99, ids=ids) is None
    # pieces that do not split into the words (here 2 words but 3 groups): no path
    assert targets.frame_targets(["\u2581a", "\u2581b", "\u2581c"], words, 16, blank=99, ids=[1, 2, 3]) is None


def test_frame_phones_label_the_centre_of_each_frame():
    from tools.demo_model import targets
    index = {"sil": 0, "k": 1, "a": 2, "t": 3}
    phones = [[0.02, "k"], [0.09, "a"], [0.22, "t"], [0.28, "_:"]]
    words = [[0.02, 0.28]]
    out = targets.frame_phones(phones, words, 6, index)
    # frame k has heard up to 80 k ms: centres of its last 80 ms -0.04, 0.04, 0.12, 0.20, 0.28, 0.36 s
    assert out.tolist() == [0, 1, 2, 2, 0, 0]
    assert targets.frame_phones(None, words, 6, index) is None


def test_corpus_word_times_come_from_espeak(tmp_path):
    """libespeak-ng's word and phoneme events give one voiced span per word, in order, inside the clip."""
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (the CI installs it)")
    from tools.demo_model import make_corpus

    text = "Unter grün, ging Kopf?"
    item = make_corpus.Item(path=str(tmp_path / "a.wav"), text=text, lang="de-DE", voice="de+m3",
                            rate_wpm=170, pitch=50, seed=3)
    dur, words, phones = make_corpus.synthesize(item)
    audio, rate = sf.read(item.path, dtype="float32")
    assert rate == 16000 and abs(len(audio) / rate - dur) < 1e-3
    assert words is not None and len(words) == len(text.split())
    flat = [t for w in words for t in w]
    assert flat == sorted(flat) and 0.0 < flat[0] and flat[-1] < dur
    # speech inside the spans is much louder than the leading silence before the first word
    lead = audio[: int(words[0][0] * rate) - 160]
    speech = audio[int(words[0][0] * rate): int(words[-1][1] * rate)]
    assert speech.std() > 5 * lead.std()
    assert phones and [p[0] for p in phones] == sorted(p[0] for p in phones)
    assert {"g", "k"} <= {p[1] for p in phones}


def test_corpus_clip_audio_depends_on_its_block_alone(tmp_path):
    """libespeak-ng carries state from one utterance to the next, so make_corpus renders fixed blocks, each
    in a fresh process: a block rendered alone comes out sample for sample as inside the whole split."""
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (the CI installs it)")
    from tools.demo_model import make_corpus
    import numpy as np

    texts = ["Seven green boats.", "Where is the old mill?", "Unter grün, ging Kopf!", "Tres casas rojas.",
             "Go choose trial set west?", "Haare kann Sache."]

    def items(d: str) -> list:
        return [make_corpus.Item(path=str(tmp_path / d / f"{i}.wav"), text=t, lang="en-US",
                                 voice=("en-us+f3", "en-us+m5", "de+m7")[i % 3], rate_wpm=140 + 10 * i,
                                 pitch=30 + 7 * i, seed=i) for i, t in enumerate(texts)]

    whole = make_corpus.render(items("whole"), workers=2, block=2)
    alone = make_corpus.render(items("alone")[2:4], workers=1, block=2)
    assert alone == whole[2:4]  # durations, word and phoneme times
    for i in (2, 3):
        a, _ = sf.read(tmp_path / "whole" / f"{i}.wav", dtype="int16")
        b, _ = sf.read(tmp_path / "alone" / f"{i}.wav", dtype="int16")
        assert np.array_equal(a, b), i


def test_corpus_held_out_split_does_not_move_with_extra_training_sentences():
    """Sentences come out in a fixed order, so the held-out ones (after --train-per-lang) are the same
    whatever --extra-train-per-lang adds behind them; the wide training variants never include a held-out
    voice, and each of them is a voice espeak-ng renders differently."""
    import shutil
    from tools.demo_model import make_corpus

    short = make_corpus.make_sentences("es_ES", 30, seed=2, words_per_lang=50)
    longer = make_corpus.make_sentences("es_ES", 80, seed=2, words_per_lang=50)
    assert longer[:30] == short and len(set(longer)) == 80
    assert not set(make_corpus.WIDE_TRAIN_VARIANTS) & set(make_corpus.TEST_VARIANTS)
    assert set(make_corpus.TRAIN_VARIANTS) < set(make_corpus.WIDE_TRAIN_VARIANTS)
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (the CI installs it)")
    engine = make_corpus._Espeak()

    def long_term_spectrum(voice: str) -> torch.Tensor:  # espeak-ng output varies by a few samples per call
        audio = torch.tensor(engine.synth(voice, 170, 50, "Seven green boats are sailing home.")[0] / 32768.0)
        return torch.stft(audio.float(), 512, 160, window=torch.hann_window(512), return_complex=True).abs().mean(1)

    plain = long_term_spectrum("en-us").add(1e-3).log()
    for v in ("m3", "klatt2", "Andy", "iven3"):  # a variant espeak-ng does not know renders like the plain voice
        assert (long_term_spectrum("en-us+" + v).add(1e-3).log() - plain).abs().mean() > 0.08, v
