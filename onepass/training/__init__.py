"""Training: fine-tuning a checkpoint from a manifest (``onepass finetune``), and the one training loop
the demo model's recipe (tools/demo_model) runs on as well.

Layers: settings (dataclasses) -> manifest / text / data / augment (inputs) -> loss / objective (the
RNN-T) -> loop (the step loop) -> network / validation (the model and its WER) -> finetune (the command).
"""

from .settings import AugmentSettings, BatchSettings, FinetuneSettings, OptimSettings

__all__ = ["AugmentSettings", "BatchSettings", "FinetuneSettings", "OptimSettings", "finetune"]


def finetune(settings: FinetuneSettings, say=print):
    """Run ``onepass finetune`` from Python (see ``onepass.training.finetuning.finetune``)."""
    from .finetuning import finetune as run

    return run(settings, say)
