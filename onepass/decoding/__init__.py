"""Decoding: greedy RNN-T (and beam search) over encoder frames, and tokens -> text, words, language.

Two greedy RNN-T decoders with the same token ids: ``greedy.greedy_decode`` (compacts the batch as
rows finish; host reads every iteration; the faster one on the CPU) and
``label_looping.label_looping_decode`` (masked rows, fixed-size output buffers, no host reads with
``sync_every=0``: for the device step and CUDA graphs; ``emissions_from_buffers`` converts).
The model step (``onepass.step``) runs one of them behind one interface (``StepConfig.decoder``).
Both take per-stream phrase boosting: ``phrases`` (text -> prefix tree over pieces) and ``boosting``
(every stream's tree as device tensors, the per-label bonus and node moves).
``beam.beam_decode``: time-synchronous beam search with the same boosting, its hypotheses kept in the
state arena (``StepConfig.beam`` > 1); it emits the labels every hypothesis agrees on.
"""
