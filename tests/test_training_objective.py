"""onepass.training.objective: prediction-net input dropout (``drop_history``, ``RNNTObjective``'s
``pred_input_drop``) replaces history tokens only, in training mode only, reproducibly from its state;
FastEmit (``fastemit_weight``) changes the training gradient, not the loss value, and nothing in eval mode."""

import pytest
import torch

from onepass.training.data import collate
from onepass.training.objective import RNNTObjective, drop_history

pytest.importorskip("transformers")


def test_drop_history_replaces_about_p_of_the_tokens_by_blank():
    labels = torch.randint(0, 600, (64, 50), generator=torch.Generator().manual_seed(0))
    before = labels.clone()
    assert torch.equal(drop_history(labels, 0.0, 640, torch.Generator().manual_seed(1)), labels)
    out = drop_history(labels, 0.25, 640, torch.Generator().manual_seed(1))
    assert torch.equal(labels, before)  # the targets are not touched
    dropped = out != labels
    assert torch.all(out[dropped] == 640)
    assert 0.22 < dropped.float().mean() < 0.28
    assert torch.equal(out, drop_history(labels, 0.25, 640, torch.Generator().manual_seed(1)))


def test_dropout_changes_the_training_loss_only_and_its_state_replays_it():
    from onepass.training.network import load_trainable

    model = load_trainable("demo").model
    g = torch.Generator().manual_seed(3)
    batch = collate([torch.randn(120, 128, generator=g) - 5.0 for _ in range(2)],
                    [torch.randint(5, 600, (12,), generator=g).tolist() for _ in range(2)], [0, 0])
    plain = RNNTObjective()
    dropping = RNNTObjective(pred_input_drop=0.5, seed=1)
    with torch.no_grad():
        model.eval()
        assert float(dropping(model, batch, 13, 0).loss) == float(plain(model, batch, 13, 0).loss)
        model.train()
        reference = float(plain(model, batch, 13, 0).loss)
        state = dropping.state_dict()
        first = float(dropping(model, batch, 13, 0).loss)
        second = float(dropping(model, batch, 13, 0).loss)
        assert first != reference and second != first  # a new draw per batch
        again = RNNTObjective(pred_input_drop=0.5, seed=9)
        again.load_state_dict(state)  # a resumed run draws what the interrupted one would have
        assert float(again(model, batch, 13, 0).loss) == first


def test_distillation_holds_what_the_starting_model_knows_and_skips_what_it_does_not():
    """Distillation: zero while the model equals its starting copy; only utterances the starting model
    explains (here: its own transcript of a sample, kept; random labels, not) count; grows when the model
    moves; training mode only."""
    import copy

    from tokenizers import Tokenizer

    import onepass
    from onepass.audio import load_for_model
    from onepass.training.network import load_trainable
    from onepass.training.objective import Distillation

    trainable = load_trainable("demo")
    model = trainable.model
    sample = trainable.source.parent / "samples" / "en-US.wav"
    audio, _ = load_for_model(str(sample))
    fe = trainable.processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
    feats = fe["input_features"][0, : int(fe["attention_mask"][0].sum())]
    text = onepass.load_model("demo").transcribe(audio, 16000, language="en-US").text
    known = Tokenizer.from_file(str(trainable.source / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    noise = torch.randint(5, 600, (len(known),), generator=torch.Generator().manual_seed(0)).tolist()
    batch = collate([feats, feats], [known, noise], [0, 0])

    plain, distilling = RNNTObjective(), RNNTObjective(distill=Distillation(copy.deepcopy(model), 1.0))
    model.train()
    with torch.no_grad():
        ref = plain(model, batch, 13, 0)
        out = distilling(model, batch, 13, 0)
        assert out.metrics["distilled"] == 0.5  # the sample's own transcript, not the random labels
        assert abs(out.metrics["distill"]) < 1e-5 and float(out.loss) == pytest.approx(float(ref.loss), abs=1e-5)
        for p in model.joint.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        moved = distilling(model, batch, 13, 0)
        assert moved.metrics["distill"] > 1e-3
        assert float(moved.loss) == pytest.approx(float(plain(model, batch, 13, 0).loss) + moved.metrics["distill"],
                                                  rel=1e-5)
        model.eval()
        assert "distill" not in distilling(model, batch, 13, 0).metrics


def test_fastemit_changes_the_training_gradient_only():
    from onepass.training.network import load_trainable

    model = load_trainable("demo").model
    g = torch.Generator().manual_seed(4)
    batch = collate([torch.randn(120, 128, generator=g) - 5.0 for _ in range(2)],
                    [torch.randint(5, 600, (12,), generator=g).tolist() for _ in range(2)], [0, 0])
    weight = next(model.joint.parameters())

    def loss_and_grad(objective, training):
        model.train(training)
        model.zero_grad()
        out = objective(model, batch, 13, 0)
        out.loss.backward()
        return float(out.loss.detach()), weight.grad.clone()

    for training in (True, False):
        plain_loss, plain_grad = loss_and_grad(RNNTObjective(), training)
        fe_loss, fe_grad = loss_and_grad(RNNTObjective(fastemit_weight=0.5), training)
        assert fe_loss == pytest.approx(plain_loss, rel=1e-6)
        assert torch.equal(fe_grad, plain_grad) != training
