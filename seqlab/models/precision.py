"""Mixed precision (autocast) where reduced precision would be wrong: regions that compute in float32, and LSTM
inputs under CPU autocast.

- ``float32_region(tensor)``: autocast off on the tensor's device type, for computations that must keep
  probability mass (a CRF's forward-backward, log-softmax over a vocabulary, attention and beam scores): inside it,
  matrix products run in the dtype of their inputs, so cast them with ``.float()``.
- ``cast_lstm_inputs_under_cpu_autocast(model)``: under CPU autocast, ``nn.LSTM`` runs in bfloat16 but its oneDNN
  kernel fails ("could not create a primitive descriptor") when the input is still float32 (an embedding's
  output); a pre-hook on each LSTM casts its input and initial state to the autocast dtype first. CUDA autocast
  casts them itself.
"""

from __future__ import annotations

import contextlib
from typing import Any, Optional

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence


def float32_region(tensor: torch.Tensor) -> contextlib.AbstractContextManager:
    """A context with autocast off on ``tensor``'s device type (a no-op context where autocast does not exist)."""
    device_type = tensor.device.type
    if torch.jit.is_tracing() or not torch.amp.is_autocast_available(device_type):  # exported graphs: as written
        return contextlib.nullcontext()
    return torch.autocast(device_type, enabled=False)


def _to_autocast_dtype(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() and value.device.type == "cpu" else value
    if isinstance(value, PackedSequence):
        return value._replace(data=_to_autocast_dtype(value.data, dtype))
    if isinstance(value, tuple):
        return tuple(_to_autocast_dtype(v, dtype) for v in value)
    return value


def _cast_under_cpu_autocast(module: nn.Module, args: tuple) -> Optional[tuple]:
    if not torch.is_autocast_enabled("cpu"):
        return None
    return _to_autocast_dtype(args, torch.get_autocast_dtype("cpu"))


def cast_lstm_inputs_under_cpu_autocast(model: nn.Module) -> nn.Module:
    """Give every ``nn.LSTM`` in ``model`` (once) the pre-hook that casts its inputs while CPU autocast is on;
    without autocast the hook changes nothing. Returns ``model``."""
    for module in model.modules():
        if isinstance(module, nn.LSTM) and _cast_under_cpu_autocast not in module._forward_pre_hooks.values():
            module.register_forward_pre_hook(_cast_under_cpu_autocast)
    return model
