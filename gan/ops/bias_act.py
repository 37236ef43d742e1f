"""Fused bias + activation + gain + clamp (stylegan2-ada `bias_act`), reference and compiled.

Activations are scaled by a default gain that keeps the signal's second moment (He-style), so
equalised-learning-rate layers stay at unit scale; see Karras et al. 2020, appendix B.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from gan.ops._compile import check_impl, lazy_compile

# name -> (function(x, alpha), default alpha, default gain)
ACTIVATIONS = {
    "linear": (lambda x, a: x, 0.0, 1.0),
    "relu": (lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": (lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": (lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": (lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "silu": (lambda x, a: F.silu(x), 0.0, math.sqrt(2)),
}


def _bias_act_ref(x: torch.Tensor, b: Optional[torch.Tensor], dim: int, act: str, alpha: float,
                  gain: float, clamp: Optional[float]) -> torch.Tensor:
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape).to(x.dtype)
    x = ACTIVATIONS[act][0](x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


_bias_act_compiled = lazy_compile(_bias_act_ref)


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor] = None, dim: int = 1, act: str = "linear",
             alpha: Optional[float] = None, gain: Optional[float] = None, clamp: Optional[float] = None,
             impl: str = "ref") -> torch.Tensor:
    """y = clamp(act(x + b) * gain). `b` broadcasts along `dim`; None arguments take the activation's
    defaults (lrelu: alpha 0.2, gain sqrt(2)); clamp None disables clamping."""
    check_impl(impl)
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose from {sorted(ACTIVATIONS)}")
    _, def_alpha, def_gain = ACTIVATIONS[act]
    alpha = def_alpha if alpha is None else float(alpha)
    gain = def_gain if gain is None else float(gain)
    fn = _bias_act_compiled if impl == "compiled" else _bias_act_ref
    return fn(x, b, dim, act, alpha, gain, clamp)
