"""Modulated / demodulated convolution (StyleGAN2, Karras et al. 2020, eqs. 1-3).

Two algebraically equal forms:
- `fused=False` (training): scale the input activations by the styles, convolve with the shared
  weight, scale the outputs by the demodulation coefficients. One ordinary conv, cheap backward.
- `fused=True` (inference): build per-sample weights and run one grouped convolution.

Given `up_filter` (FIR taps) the conv also doubles the resolution, as StyleGAN2's `conv2d_resample` does: a stride-2
transposed conv, then the FIR filter. The same function as FIR upsampling followed by the conv (both are
linear and shift-invariant, so they commute) except in the outermost ring of pixels, at a quarter of the
multiply-adds, because the transposed conv skips the zeros that upsampling inserts.

`modulated_separable_conv2d` factors the kernel as W[o, i, k] = pw[o, i] * dw[o, k] (a 1x1 conv, then a 3x3
depthwise conv; MobileStyleGAN, Belousov 2021): modulation scales the 1x1 conv's inputs and demodulation is exact
for the composed kernel, sum_{i,k} (s_i W[o, i, k])^2 = sum_k dw[o, k]^2 * sum_i (s_i pw[o, i])^2. Its 2x up-conv
runs the 1x1 conv at the input size (it commutes with upsampling) and the depthwise conv after the FIR upsampling.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from gan.ops._compile import check_impl, lazy_compile
from gan.ops.upfirdn2d import upfirdn2d, upsample2d


def _demod_coefs(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    # sigma_j = sqrt(sum_{i,k} (s_i w_ijk)^2) computed without building per-sample weights: [N, O]
    dt = torch.promote_types(weight.dtype, torch.float32)  # at least float32, even under bf16 autocast
    w2 = weight.to(dt).square().sum(dim=[2, 3])           # [O, I]
    return (styles.to(dt).square() @ w2.t() + 1e-8).rsqrt()


def _conv_up(x: torch.Tensor, weight: torch.Tensor, groups: int, f: torch.Tensor) -> torch.Tensor:
    # 2x up-conv: x [N, G*I, H, W], weight [G*O, I, k, k] -> [N, G*O, 2H, 2W]. The transposed conv takes the
    # weight as [I, O, k, k] per group and flipped (it correlates with the flipped kernel); the FIR then blurs
    # the (2H + k - 2)-sized result back to 2H on upsample2d's grid, with its gain (4 for 2x2 zero insertion).
    o, i, kh, kw = weight.shape
    wt = weight.reshape(groups, o // groups, i, kh, kw).transpose(1, 2).reshape(groups * i, o // groups, kh, kw)
    x = F.conv_transpose2d(x, wt.flip([2, 3]), stride=2, groups=groups)
    p = (f.shape[-1] + 1) // 2 - (kh - 1) // 2
    q = f.shape[-1] + 1 - kh - p
    return upfirdn2d(x, f, padding=[p, q, p, q], gain=4)


def _modconv_ref(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool,
                 padding: int, fused: bool, up_filter: Optional[torch.Tensor] = None) -> torch.Tensor:
    n, i, h, w = x.shape
    o, _, kh, kw = weight.shape
    dcoefs = _demod_coefs(weight, styles) if demodulate else None
    if not fused:
        x = x * styles.to(x.dtype).reshape(n, i, 1, 1)
        if up_filter is None:
            x = F.conv2d(x, weight.to(x.dtype), padding=padding)
        else:
            x = _conv_up(x, weight.to(x.dtype), 1, up_filter)
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype).reshape(n, o, 1, 1)
        return x
    dt = torch.promote_types(weight.dtype, torch.float32)
    wgt = weight[None].to(dt) * styles.to(dt).reshape(n, 1, i, 1, 1)     # [N, O, I, k, k]
    if dcoefs is not None:
        wgt = wgt * dcoefs.reshape(n, o, 1, 1, 1)
    wgt = wgt.to(x.dtype).reshape(n * o, i, kh, kw)
    if up_filter is None:
        x = F.conv2d(x.reshape(1, n * i, h, w), wgt, padding=padding, groups=n)
    else:
        x = _conv_up(x.reshape(1, n * i, h, w), wgt, n, up_filter)
    return x.reshape(n, o, x.shape[2], x.shape[3])


_modconv_compiled = lazy_compile(_modconv_ref)


def _modsep_ref(x: torch.Tensor, pw: torch.Tensor, dw: torch.Tensor, styles: torch.Tensor, demodulate: bool,
                fused: bool, up_filter: Optional[torch.Tensor] = None) -> torch.Tensor:
    n, i, h, w = x.shape
    o = pw.shape[0]
    dt = torch.promote_types(pw.dtype, torch.float32)     # at least float32, even under bf16 autocast
    if demodulate:
        dwn = dw.to(dt).square().sum(dim=[1, 2, 3])                               # [O]
        dcoefs = ((styles.to(dt).square() @ pw.to(dt).reshape(o, i).square().t()) * dwn + 1e-8).rsqrt()
    if not fused:
        x = F.conv2d(x * styles.to(x.dtype).reshape(n, i, 1, 1), pw.to(x.dtype))
    else:
        wgt = pw.to(dt).reshape(1, o, i) * styles.to(dt).reshape(n, 1, i)
        if demodulate:
            wgt = wgt * dcoefs.reshape(n, o, 1)
        # per-sample 1x1 weights as one batched matmul (no grouped conv: its group count would fix the batch size)
        x = torch.bmm(wgt.to(x.dtype), x.reshape(n, i, h * w)).reshape(n, o, h, w)
    if up_filter is not None:               # the 1x1 conv commutes with upsampling: run it at the input size
        x = upsample2d(x, up_filter)
    x = F.conv2d(x, dw.to(x.dtype), padding=dw.shape[-1] // 2, groups=o)
    # unfused: demodulate last (a per-channel scale commutes with the depthwise conv and the FIR), where a compiler
    # fuses it with the bias and activation that follow instead of a pass of its own
    return x * dcoefs.to(x.dtype).reshape(n, o, 1, 1) if demodulate and not fused else x


_modsep_compiled = lazy_compile(_modsep_ref)


def modulated_separable_conv2d(x: torch.Tensor, pw: torch.Tensor, dw: torch.Tensor, styles: torch.Tensor,
                               demodulate: bool = True, fused: bool = False, impl: str = "ref",
                               up_filter: Optional[torch.Tensor] = None) -> torch.Tensor:
    """x [N, I, H, W], pw [O, I, 1, 1], dw [O, 1, k, k], styles [N, I] -> [N, O, H', W'] ('same' padding): the
    modulated conv with the kernel pw[o, i] * dw[o, k]. up_filter (FIR taps [k, k]): FIR upsampling by 2 between the
    1x1 and the depthwise conv: exactly upsample2d, then the modulated conv with the composed kernel."""
    check_impl(impl)
    if x.ndim != 4 or pw.shape[2:] != (1, 1) or dw.ndim != 4 or dw.shape[:2] != (pw.shape[0], 1) or \
            styles.shape != (x.shape[0], x.shape[1]) or pw.shape[1] != x.shape[1]:
        raise ValueError(f"modulated_separable_conv2d shapes: x {tuple(x.shape)}, pw {tuple(pw.shape)}, dw "
                         f"{tuple(dw.shape)}, styles {tuple(styles.shape)}; expected [N,I,H,W], [O,I,1,1], "
                         f"[O,1,k,k], [N,I]")
    if up_filter is not None and up_filter.ndim != 2:
        raise ValueError(f"modulated_separable_conv2d: up_filter must be 2D FIR taps [k, k], got "
                         f"{tuple(up_filter.shape)}")
    fn = _modsep_compiled if impl == "compiled" else _modsep_ref
    return fn(x, pw, dw, styles, bool(demodulate), bool(fused), up_filter)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     padding: Optional[int] = None, fused: bool = False, impl: str = "ref",
                     up_filter: Optional[torch.Tensor] = None) -> torch.Tensor:
    """x [N, I, H, W], weight [O, I, k, k], styles [N, I] -> [N, O, H', W'] ('same' padding by default).
    up_filter (FIR taps [k, k]): a 2x up-conv, [N, O, 2H, 2W], through a transposed conv (padding unused)."""
    check_impl(impl)
    if x.ndim != 4 or weight.ndim != 4 or styles.ndim != 2:
        raise ValueError(f"modulated_conv2d shapes: x {tuple(x.shape)}, weight {tuple(weight.shape)}, "
                         f"styles {tuple(styles.shape)}; expected [N,I,H,W], [O,I,k,k], [N,I]")
    if styles.shape != (x.shape[0], x.shape[1]) or weight.shape[1] != x.shape[1]:
        raise ValueError(f"modulated_conv2d: styles {tuple(styles.shape)} and weight {tuple(weight.shape)} "
                         f"do not match input {tuple(x.shape)}")
    if padding is None:
        padding = weight.shape[-1] // 2
    if up_filter is not None and up_filter.ndim != 2:
        raise ValueError(f"modulated_conv2d: up_filter must be 2D FIR taps [k, k], got {tuple(up_filter.shape)}")
    fn = _modconv_compiled if impl == "compiled" else _modconv_ref
    return fn(x, weight, styles, bool(demodulate), int(padding), bool(fused), up_filter)
