"""Upsample -> FIR filter -> downsample on [N, C, H, W] (stylegan2-ada `upfirdn2d`), reference and
compiled. Used for anti-aliased resampling: blur after zero-insertion upsampling, before
strided downsampling."""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from gan.ops._compile import check_impl, lazy_compile

Padding = Union[int, Sequence[int]]


def setup_filter(f: Sequence[float] = (1, 3, 3, 1), normalize: bool = True, separable: bool = False,
                 device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """1D taps -> the 2D outer product [k, k] (one depthwise conv: fastest forward and backward on
    CPU) or, with separable=True, the 1D taps [k] applied along both axes as shifted sums (cheap
    double backward); normalised so the 2D filter sums to 1."""
    f = torch.as_tensor(f, dtype=torch.float32, device=device)
    if f.ndim != 1 or f.numel() == 0:
        raise ValueError(f"filter taps must be a non-empty 1D sequence, got shape {tuple(f.shape)}")
    if normalize:
        f = f / f.sum()
    return f if separable else f[:, None] * f[None, :]


def _parse_padding(padding: Padding) -> Tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) == 4:
        return tuple(padding)
    raise ValueError(f"padding must be an int, [px, py] or [x0, x1, y0, y1], got {padding}")


def _upfirdn2d_ref(x: torch.Tensor, f: torch.Tensor, up: int, down: int, px0: int, px1: int,
                   py0: int, py1: int, flip_filter: bool, gain: float) -> torch.Tensor:
    n, c, h, w = x.shape
    if up > 1:  # zero insertion
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    if not flip_filter:  # correlation below; flip for a true convolution
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 1:
        # Separable: weighted sums of shifted slices along x, then y, striding by `down` directly.
        # Elementwise ops only, so a double backward stays cheap (a grouped conv's runs per group).
        k = f.shape[0]
        f = f.to(x.dtype)
        wo = (x.shape[3] - k) // down + 1
        x = sum(f[j] * x[:, :, :, j: j + (wo - 1) * down + 1: down] for j in range(k))
        ho = (x.shape[2] - k) // down + 1
        x = sum(f[j] * x[:, :, j: j + (ho - 1) * down + 1: down, :] for j in range(k))
        return x * gain if gain != 1 else x
    f = (f * gain).to(x.dtype)
    x = F.conv2d(x, f[None, None].expand(c, 1, f.shape[0], f.shape[1]), groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


_upfirdn2d_compiled = lazy_compile(_upfirdn2d_ref)


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1, padding: Padding = 0,
              flip_filter: bool = False, gain: float = 1.0, impl: str = "ref") -> torch.Tensor:
    """x [N, C, H, W], f [k] (separable) or [k, k] -> [N, C, H', W'], H' = (H*up + py0 + py1 - k) // down + 1."""
    check_impl(impl)
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got shape {tuple(x.shape)}")
    if f.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d expects 1D (separable) or 2D filter taps, got shape {tuple(f.shape)}")
    fn = _upfirdn2d_compiled if impl == "compiled" else _upfirdn2d_ref
    return fn(x, f, int(up), int(down), *_parse_padding(padding), bool(flip_filter), float(gain))


def upsample2d(x, f, up: int = 2, padding: Padding = 0, gain: float = 1.0, impl: str = "ref"):
    """Zero-insertion upsampling by `up` followed by the FIR filter; output is [N, C, H*up, W*up]."""
    px0, px1, py0, py1 = _parse_padding(padding)
    k = f.shape[-1]
    p0, p1 = (k + up - 1) // 2, (k - up) // 2
    return upfirdn2d(x, f, up=up, padding=[px0 + p0, px1 + p1, py0 + p0, py1 + p1],
                     gain=gain * up * up, impl=impl)


def downsample2d(x, f, down: int = 2, padding: Padding = 0, gain: float = 1.0, impl: str = "ref"):
    """FIR filter followed by keeping every `down`-th sample; output is [N, C, H/down, W/down]."""
    px0, px1, py0, py1 = _parse_padding(padding)
    k = f.shape[-1]
    p0, p1 = (k - down + 1) // 2, (k - down) // 2
    return upfirdn2d(x, f, down=down, padding=[px0 + p0, px1 + p1, py0 + p0, py1 + p1],
                     gain=gain, impl=impl)


def filter2d(x, f, padding: Padding = 0, gain: float = 1.0, impl: str = "ref"):
    """Same-size FIR filtering."""
    px0, px1, py0, py1 = _parse_padding(padding)
    k = f.shape[-1]
    p0, p1 = k // 2, (k - 1) // 2
    return upfirdn2d(x, f, padding=[px0 + p0, px1 + p1, py0 + p0, py1 + p1], gain=gain, impl=impl)
