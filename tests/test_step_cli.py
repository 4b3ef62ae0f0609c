"""``--cuda-graphs/--no-cuda-graphs`` and ``--device`` reach the model step (bench and serve)."""

from __future__ import annotations

import pytest
import torch

from onepass import OnePassError
from onepass.cli.main import build_parser
from onepass.cli.serve import step_config


@pytest.mark.parametrize("command", [["serve"], ["bench", "--random-init", "tiny"]])
def test_cuda_graph_flags(command):
    parse = build_parser().parse_args
    assert step_config(parse(command)).cuda_graphs is False  # CPU: never
    assert step_config(parse([*command, "--device", "cuda"])).cuda_graphs is True  # CUDA: on by default
    assert step_config(parse([*command, "--device", "cuda:1", "--no-cuda-graphs"])).cuda_graphs is False
    with pytest.raises(OnePassError, match="CUDA"):
        step_config(parse([*command, "--cuda-graphs"]))


def test_bench_places_onepass_on_the_device():
    from onepass.bench.factory import place
    from onepass.recognizer import ModelInfo, Recognizer
    from onepass.tokenizer import Tokenizer
    from tests.test_step_models import tiny_model

    asr = Recognizer(tiny_model(), Tokenizer([f"p{i}" for i in range(32)], 32), ModelInfo("t", "t", "random", "t"))
    place(asr, "cpu", "bfloat16")
    assert asr.model_step.dtype == asr.model.encoder_dtype == torch.bfloat16  # a new step, new dtype
    assert asr.model.joint.head.weight.dtype == torch.float32  # the decoder stays float32 by default
    assert asr.model.frontend.filterbank.dtype.itemsize == 4  # the front end stays float32
