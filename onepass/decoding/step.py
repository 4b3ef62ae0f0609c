"""Moved: the model step is ``onepass.step`` (this name stays for older imports)."""

from ..step.offline import StreamBatch, block_mel_frames

__all__ = ["StreamBatch", "block_mel_frames"]
