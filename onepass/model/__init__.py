"""The network as pure tensors: config, front end, encoder, prompt, transducer."""

from .asr import NemotronASR
from .config import EncoderConfig, FrontendConfig, ModelConfig

__all__ = ["NemotronASR", "ModelConfig", "EncoderConfig", "FrontendConfig"]
