"""The sampler's compiled path (--compile): it renders what eager renders, and it really is frozen (the conv weights
pre-packed as constants, which torch.compile's freezing *option* silently skipped). One tiny graph (~10 s)."""
import pytest
import torch

from gan.sampling import FastSampler


@pytest.mark.numerics
def test_compiled_sampler_matches_eager_with_prepacked_weights(tiny_G):
    t = torch.arange(4, dtype=torch.float64)
    eager, compiled = FastSampler(tiny_G, chunk=4), FastSampler(tiny_G, chunk=4, compile=True)
    outs = []
    for s in (eager, compiled):
        w, x, img = s.prepare([3, 5])
        outs.append(s.frames((w, x, img), s.motion([3, 5], t, w)))
    with torch.profiler.profile() as prof:
        compiled.frames((w, x, img), compiled.motion([3, 5], t, w))
    # float32 both ways; the compiled graph reorders sums (fused kernels, oneDNN's blocked convs)
    torch.testing.assert_close(outs[1], outs[0], atol=1e-4, rtol=1e-4)
    ops = {e.key for e in prof.key_averages()}
    assert "mkldnn::_convolution_pointwise" in ops, sorted(ops)          # frozen: weights pre-packed
