"""Fused ops: the references against independent formulations, and compiled == reference."""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gan.ops import (bias_act, downsample2d, filter2d, modulated_conv2d, modulated_separable_conv2d, setup_filter,
                     upfirdn2d, upsample2d)


@pytest.mark.numerics
def test_separable_fir_equals_2d_fir_forward_and_backward():
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64, requires_grad=True)
    for up, down, pad in [(1, 1, [1, 2, 2, 1]), (2, 1, [2, 1, 2, 1]), (1, 2, [1, 1, 1, 1])]:
        a = upfirdn2d(x, setup_filter(separable=True).double(), up, down, pad, gain=2.0)
        b = upfirdn2d(x, setup_filter().double(), up, down, pad, gain=2.0)
        assert a.shape == b.shape
        torch.testing.assert_close(a, b)
        ga, = torch.autograd.grad(a.square().sum(), x)
        gb, = torch.autograd.grad(b.square().sum(), x)
        torch.testing.assert_close(ga, gb)


@pytest.mark.numerics
def test_resampling_preserves_a_constant_in_the_interior():
    x = torch.full((1, 2, 8, 8), 3.0)
    f = setup_filter()
    assert upsample2d(x, f).shape == (1, 2, 16, 16)
    torch.testing.assert_close(upsample2d(x, f)[..., 2:-2, 2:-2], torch.full((1, 2, 12, 12), 3.0))
    torch.testing.assert_close(downsample2d(x, f)[..., 1:-1, 1:-1], torch.full((1, 2, 2, 2), 3.0))
    torch.testing.assert_close(filter2d(x, f)[..., 2:-2, 2:-2], torch.full((1, 2, 4, 4), 3.0))


@pytest.mark.numerics
def test_upfirdn2d_matches_conv_transpose_definition():
    # Zero-insertion upsampling + FIR equals a strided transposed conv with the (gain-scaled) filter.
    x = torch.randn(1, 1, 5, 5, dtype=torch.float64)
    f = setup_filter().double()
    y = upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1], gain=4)
    ref = F.conv_transpose2d(x, (f * 4)[None, None], stride=2)[..., 1:11, 1:11]  # full conv, shifted by the padding
    torch.testing.assert_close(y, ref)


@pytest.mark.numerics
def test_bias_act_matches_manual_formula():
    x, b = torch.randn(4, 5, 3, 3), torch.randn(5)
    y = bias_act(x, b, act="lrelu", clamp=0.5)
    ref = (F.leaky_relu(x + b[None, :, None, None], 0.2) * math.sqrt(2)).clamp(-0.5, 0.5)
    torch.testing.assert_close(y, ref)
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(x, act="swishy")


@pytest.mark.numerics
@pytest.mark.parametrize("demodulate", [True, False])
def test_modconv_fused_equals_unfused_and_per_sample_weights(demodulate):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    s = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    a = modulated_conv2d(x, w, s, demodulate=demodulate, fused=False)
    b = modulated_conv2d(x, w, s, demodulate=demodulate, fused=True)
    torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(a.sin().sum(), [x, w, s])
    gb = torch.autograd.grad(b.sin().sum(), [x, w, s])
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)
    # Independent reference: build each sample's weight explicitly.
    for i in range(3):
        wi = w * s[i][None, :, None, None]
        if demodulate:
            wi = wi / wi.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
        torch.testing.assert_close(a[i:i + 1], F.conv2d(x[i:i + 1], wi, padding=1))


@pytest.mark.numerics
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("k", [3, 1])
def test_transposed_up_conv_is_fir_upsampling_then_the_conv(fused, k):
    # The two forms of a 2x up-conv are one linear shift-invariant map; they differ only where the dense conv's
    # zero padding meets the FIR's spill (the outermost ring for k = 3; nowhere for k = 1). float64: the bound is
    # rounding of ~100-term sums (~1e-14), while a one-pixel misalignment moves the interior by O(1).
    torch.manual_seed(2)
    f = setup_filter().double()
    x = torch.randn(3, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 4, k, k, dtype=torch.float64)
    s = torch.randn(3, 4, dtype=torch.float64)
    dense = modulated_conv2d(upsample2d(x, f), w, s, fused=fused)
    tr = modulated_conv2d(x, w, s, fused=fused, up_filter=f)
    assert tr.shape == dense.shape == (3, 7, 12, 10)
    ring = k // 2
    inner = (slice(None), slice(None), slice(ring, 12 - ring), slice(ring, 10 - ring))
    torch.testing.assert_close(tr[inner], dense[inner], rtol=0, atol=1e-12)
    ga = torch.autograd.grad(tr[inner].sum(), x)[0]
    gb = torch.autograd.grad(dense[inner].sum(), x)[0]
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-12)


@pytest.mark.numerics
@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_separable_modconv_is_the_modconv_of_the_composed_kernel(up, fused, demodulate):
    # pw [O, I] then the depthwise dw [O, k, k] is the dense kernel W[o, i] = pw[o, i] * dw[o]: modulation and exact
    # demodulation included, and with up the dense up-conv (FIR upsampling, then the conv) everywhere, borders too
    # (the 1x1 conv commutes with upsampling). float64: the bound is rounding (~1e-14); a wrong demodulation or
    # order moves outputs by O(1).
    torch.manual_seed(3)
    f = setup_filter().double()
    x = torch.randn(3, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    pw = torch.randn(7, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    dw = torch.randn(7, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    s = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    sep = modulated_separable_conv2d(x, pw, dw, s, demodulate=demodulate, fused=fused, up_filter=f if up else None)
    dense = modulated_conv2d(upsample2d(x, f) if up else x, pw * dw, s, demodulate=demodulate)
    assert sep.shape == dense.shape == ((3, 7, 12, 10) if up else (3, 7, 6, 5))
    torch.testing.assert_close(sep, dense, rtol=0, atol=1e-12)
    for ga, gb in zip(torch.autograd.grad(sep.sin().sum(), [x, pw, dw, s]),
                      torch.autograd.grad(dense.sin().sum(), [x, pw, dw, s])):
        torch.testing.assert_close(ga, gb, rtol=0, atol=1e-11)


def test_separable_modconv_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="expected"):
        modulated_separable_conv2d(torch.randn(2, 4, 5, 5), torch.randn(3, 4, 3, 3), torch.randn(3, 1, 3, 3),
                                   torch.randn(2, 4))


def test_transposed_up_conv_rejects_a_1d_filter():
    with pytest.raises(ValueError, match="up_filter"):
        modulated_conv2d(torch.randn(1, 2, 4, 4), torch.randn(3, 2, 3, 3), torch.randn(1, 2),
                         up_filter=setup_filter(separable=True))


def test_modconv_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match"):
        modulated_conv2d(torch.randn(2, 4, 5, 5), torch.randn(3, 4, 3, 3), torch.randn(2, 3))


@pytest.mark.numerics
def test_compiled_paths_equal_reference_forward_and_backward():
    # One tiny graph per op; the CPU compiler needs seconds per graph.
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    s = torch.randn(2, 3, requires_grad=True)
    f = setup_filter()
    cases = [
        lambda impl: bias_act(x, b, act="lrelu", clamp=1.0, impl=impl),
        lambda impl: upsample2d(x, f, impl=impl),
        lambda impl: modulated_conv2d(x, w, s, impl=impl),
        lambda impl: modulated_separable_conv2d(x, w[:, :, :1, :1], w[:, :1], s, impl=impl, up_filter=f),
    ]
    for fn in cases:
        ref, fast = fn("ref"), fn("compiled")
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)
        g_ref = torch.autograd.grad(ref.sin().sum(), [x], retain_graph=False)
        g_fast = torch.autograd.grad(fast.sin().sum(), [x])
        torch.testing.assert_close(g_fast[0], g_ref[0], rtol=1e-4, atol=1e-5)


# One compiled bias_act forward in a fresh process; prints the largest difference from the reference (nan if any).
_PROBE = """
import torch
from gan.ops import bias_act
torch.set_num_threads(2)
torch.manual_seed(0)
x, b = torch.randn(2, 3, 8, 8), torch.randn(3)
y = bias_act(x, b, act="lrelu", clamp=1.0, impl="compiled")
print((y - bias_act(x, b, act="lrelu", clamp=1.0, impl="ref")).abs().max().item())
"""


@pytest.mark.slow
def test_compiled_ops_keep_apart_the_kernels_of_each_cpu_setting_in_one_cache(tmp_path):
    # Inductor's on-disk cache does not key on the CPU vector width: without gan.ops' cpu_compile_options an
    # AVX2 process was served AVX-512 kernels (half of every 16-float step unwritten: NaN, garbage or a crash) and
    # the reverse wrote past the end of its buffers (docs/inductor_vec_isa_cache.md). On an AVX-512 machine this
    # fails without the fix; on an AVX2-only one both runs pick the same width.
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("ATEN_CPU_CAPABILITY", None)
    root = Path(__file__).resolve().parents[1]
    for capability in (None, "avx2"):                       # the machine's own kernels, then AVX2's, one cache
        run_env = dict(env, **({"ATEN_CPU_CAPABILITY": capability} if capability else {}))
        res = subprocess.run([sys.executable, "-c", _PROBE], cwd=root, env=run_env, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, f"{capability or 'native'}: exit {res.returncode}: {res.stderr[-2000:]}"
        diff = float(res.stdout.split()[-1])
        # |y| <= 1 (the clamp): float32 rounding is ~1e-7 there, unwritten memory is anything (or nan).
        assert diff <= 1e-5, f"{capability or 'native'} kernels differ from the reference by {diff}"
