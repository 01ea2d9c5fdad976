"""torch.compile of the model: a clear refusal without a toolchain (that a compiled model trains
exactly like the eager one is tested with the learner, tests/trainer/test_learner.py)."""

from __future__ import annotations

import pytest
import torch

from streamtune.errors import ConfigurationError
from streamtune.modeling.compilation import compile_model, toolchain_problem

CPU = torch.device("cpu")


def test_compiling_for_cpu_without_a_cpp_compiler_is_refused_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no compiler on PATH
    monkeypatch.delenv("CXX", raising=False)
    assert "C++ compiler" in toolchain_problem(CPU)
    with pytest.raises(ConfigurationError, match="unset STREAMTUNE_COMPILE"):
        compile_model(torch.nn.Linear(2, 1), CPU)
    assert toolchain_problem(CPU, backend="aot_eager") is None
