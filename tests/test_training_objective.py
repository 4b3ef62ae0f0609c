"""onepass.training.objective: prediction-net input dropout (``drop_history``, ``RNNTObjective``'s
``pred_input_drop``) replaces history tokens only, in training mode only, reproducibly from its state."""

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
