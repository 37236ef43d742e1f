"""LPIPS wrapper: the missing-weights message, the real loading path, clip handling, frozen."""
import hashlib

import pytest
import torch
import torchvision

from losses.perceptual import ClipLPIPS, MissingWeightsError, ReconstructionLoss, backbone_path


def test_missing_backbone_names_the_file_and_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as e:
        ClipLPIPS("alex")
    msg = str(e.value)
    assert "alexnet-owt-7be5be79.pth" in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert "download.pytorch.org" in msg
    with pytest.raises(MissingWeightsError, match="nope.pth"):
        ClipLPIPS("alex", backbone=str(tmp_path / "nope.pth"))


def test_backbone_file_is_hash_checked_and_loaded(tmp_path):
    # A torchvision AlexNet state dict (random init, saved the way the published file is) under the
    # published name: the hash check rejects it, proving the check runs before anything is used.
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    with pytest.raises(ValueError, match="SHA-256"):
        ClipLPIPS("alex", backbone=str(path))


def test_loading_maps_torchvision_keys_into_lpips(tmp_path, monkeypatch):
    import losses.perceptual as P
    monkeypatch.setattr(P, "check_hash", lambda path, prefix: None)   # accept a locally made file
    net = torchvision.models.alexnet()
    path = tmp_path / "alex.pth"
    torch.save(net.state_dict(), path)
    model = ClipLPIPS("alex", backbone=str(path))
    torch.testing.assert_close(model.model.net.slice1[0].weight, net.features[0].weight)
    torch.testing.assert_close(getattr(model.model.net.slice5, "10").bias, net.features[10].bias)
    assert "pretrained backbone" in repr(model)


def test_clip_lpips_shapes_identity_and_frozen():
    torch.manual_seed(0)
    model = ClipLPIPS("alex", random_backbone=True)
    assert "RANDOM backbone" in repr(model)
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    d = model(x, y)
    assert d.shape == (2,) and (d > 0).all()
    torch.testing.assert_close(model(x, x), torch.zeros(2), atol=1e-6, rtol=0)
    model.train()
    assert not model.model.training                                   # stays in eval mode


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


def test_lpips_net_picks_the_backbone(tmp_path, monkeypatch):
    # cond.lpips_net: which backbone LPIPS runs on (and so which published weights it asks for).
    import warnings

    from gan.config import load_config
    from losses.conditional import build_reconstruction
    from tests.conftest import ROOT
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for net, weights, backbone in (("vgg", "vgg16-397923af.pth", "vgg16"),
                                   ("squeeze", "squeezenet1_1-b8a52dc0.pth", "squeezenet")):
        cond = load_config(str(ROOT / "configs" / "i2v.yaml"), {"cond": {"lpips_net": net}}).cond
        with pytest.raises(MissingWeightsError, match=weights):
            build_reconstruction(cond)
        cond.lpips_random_backbone = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            recon = build_reconstruction(cond)
        lp = next(m for m in recon.modules() if isinstance(m, ClipLPIPS))
        assert lp.net_name == net and type(lp.model.net).__name__ == backbone
