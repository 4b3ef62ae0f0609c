"""Multi-stream engine: continuous batching of live streams over one shared model.

The step loop is schedule -> execute -> update: the scheduler picks streams with a ready
chunk, the executor runs them as one model step (``onepass.step``: their rows of the chunk
size's state arena, encoder and greedy decoding), and the update turns new tokens into partial
results, end-of-utterance events and lag figures.
"""

from .config import EngineConfig
from .engine import Engine
from .events import StreamEvent

__all__ = ["Engine", "EngineConfig", "StreamEvent"]
