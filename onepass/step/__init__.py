"""The model step: the one path from a batch of streams into the model.

- ``arena.StateArena``: per chunk size, every stream's encoder and prediction-net state,
  preallocated, one row per slot plus a scratch row for padding, updated in place.
- ``batch``: a bucketed batch with static shapes (slots, mel frames, valid lengths, final flags,
  first-chunk lead, prompt ids, frame offsets).
- ``body.step_body``: subsampling, conformer, prompt, greedy RNN-T; labels into fixed-size
  buffers with per-row counts; no host reads with the label-looping decoder.
- ``runner.ModelStep``: runs the body eagerly or replays a captured CUDA graph (``graphs``), and
  reads the result back once.
- ``offline``: whole utterances as blocks of chunks (``Recognizer.transcribe_batch``).
"""

from .arena import StateArena
from .batch import Row, StepBatch, bucket_size, make_batch, mel_frames
from .body import LABEL_LOOPING, WINDOWED, StepOutput, StepResult, read_output, step_body
from .runner import GPU_BUCKETS, ModelStep, StepConfig

__all__ = ["GPU_BUCKETS", "LABEL_LOOPING", "WINDOWED", "ModelStep", "Row", "StateArena", "StepBatch", "StepConfig",
           "StepOutput", "StepResult", "bucket_size", "make_batch", "mel_frames", "read_output", "step_body"]
