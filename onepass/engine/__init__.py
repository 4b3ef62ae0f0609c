"""Multi-stream engine: continuous batching of live streams over one shared model.

The step loop is schedule -> execute -> update: the scheduler picks streams with a ready
chunk, the executor runs one batched encoder step and one batched greedy decode for them, and
the update turns new tokens into partial results, end-of-utterance events and lag figures.
"""

from .config import EngineConfig
from .engine import Engine
from .events import StreamEvent

__all__ = ["Engine", "EngineConfig", "StreamEvent"]
