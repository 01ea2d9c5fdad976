"""The weights of a version on disk: safetensors only (no pickle is ever read).

LoRA versions hold the adapter and the classifier head (``adapter.safetensors``, small); full
versions hold every parameter (``model.safetensors``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from streamtune.errors import CheckpointError

ADAPTER_FILE = "adapter.safetensors"
FULL_FILE = "model.safetensors"


def weights_file(tuning: str) -> str:
    return ADAPTER_FILE if tuning == "lora" else FULL_FILE


def trainable_state(model: torch.nn.Module, tuning: str) -> dict[str, torch.Tensor]:
    """The tensors that define a version, detached, contiguous and on the CPU."""
    if tuning == "lora":
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(model)
    else:
        state = model.state_dict()
    return {name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in state.items()}


def save_state(state: dict[str, torch.Tensor], tuning: str, directory: Path) -> Path:
    path = directory / weights_file(tuning)
    save_file(state, str(path))
    return path


def load_state(directory: Path, tuning: str) -> dict[str, torch.Tensor]:
    path = directory / weights_file(tuning)
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path} is not a valid safetensors file: {error}") from error


def apply_state(model: torch.nn.Module, state: dict[str, torch.Tensor], tuning: str) -> None:
    """Load a version's tensors into a model built with the same base and tuning spec."""
    if tuning == "lora":
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, state)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise CheckpointError(f"adapter has tensors the model lacks: {unexpected[:5]}")
        return
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"weights do not match the base model (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
