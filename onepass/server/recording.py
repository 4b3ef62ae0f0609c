"""Optional recording of what live streams sent (``onepass serve --record-dir``): the samples
the engine received, bit for bit, as float WAV at the stream's rate, one file per stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


class Recorder:
    def __init__(self, directory: str | None, name: str):
        self.path = Path(directory) / f"{name}.wav" if directory else None
        self._file: sf.SoundFile | None = None

    def write(self, samples: np.ndarray, rate: int) -> None:
        if self.path is None:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = sf.SoundFile(self.path, "w", samplerate=rate, channels=1, subtype="FLOAT")
        self._file.write(np.asarray(samples, dtype=np.float32))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
