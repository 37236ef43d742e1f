"""Motion matching (losses/motion.py): the frame-change statistic, its distance, and that descending it moves a
still renderer to the real clips' speed (and slows a fast one), with nothing else pulling."""
import math

import pytest
import torch

from gan.config import ConfigError, load_config
from gan.config_auto import resolved_motion_weight
from losses import Batch
from losses.motion import MotionMatchTerm, clip_change, sorted_log_distance
from tests.conftest import ROOT


def blobs(speed: torch.Tensor, frames: int = 6, size: int = 24, angle: torch.Tensor = None) -> torch.Tensor:
    """Clips [B, T, 1, size, size] in [-1, 1] of one Gaussian blob (sigma 2.5 px) moving `speed` px / frame from
    the centre, each clip in its own direction; differentiable in speed."""
    b = speed.shape[0]
    angle = torch.linspace(0, 2 * math.pi, b + 1)[:b] if angle is None else angle
    t = torch.arange(frames, dtype=torch.float32) - (frames - 1) / 2
    cx = size / 2 + speed[:, None] * t[None] * torch.cos(angle)[:, None]          # [B, T]
    cy = size / 2 + speed[:, None] * t[None] * torch.sin(angle)[:, None]
    u = torch.arange(size, dtype=torch.float32) + 0.5
    d2 = (u[None, None, None, :] - cx[..., None, None]) ** 2 + (u[None, None, :, None] - cy[..., None, None]) ** 2
    return (2 * torch.exp(-d2 / (2 * 2.5 ** 2)) - 1)[:, :, None]


def test_clip_change_of_still_and_moving_clips():
    still = torch.rand(3, 1, 2, 8, 8).expand(-1, 5, -1, -1, -1)
    assert clip_change(still).abs().max() == 0
    ramp = torch.arange(4.0).reshape(1, 4, 1, 1, 1).expand(2, 4, 1, 3, 3)      # +1 per frame everywhere
    torch.testing.assert_close(clip_change(ramp), torch.ones(2))
    with pytest.raises(ValueError, match="T >= 2"):
        clip_change(torch.zeros(2, 1, 1, 4, 4))


def test_the_distance_is_zero_between_a_batch_and_its_shuffle_and_grows_with_stillness():
    real = blobs(torch.full((8,), 1.5))
    change = clip_change(real) * torch.linspace(0.5, 2.0, 8)                    # distinct values
    assert sorted_log_distance(change[torch.randperm(8)], change) < 1e-12        # a distribution, not pairs
    half = sorted_log_distance(0.5 * change, change)
    still = sorted_log_distance(torch.zeros(8), change)
    eps = 0.05 * change.mean()                                                  # the floor: 5% of the real mean
    torch.testing.assert_close(half, ((0.5 * change + eps).log() - (change + eps).log()).square().mean())
    assert 0.5 * math.log(2) ** 2 < half < math.log(2) ** 2                     # log 2 apart, less the floor's share
    assert still > 4 * half and math.isfinite(float(still))                     # the floor keeps it finite


def descend(start: float, real_speed: float = 1.5, steps: int = 150) -> float:
    """The speed of a blob renderer after `steps` of Adam on the motion term alone, from `start`."""
    torch.manual_seed(0)
    speed = torch.full((16,), start, requires_grad=True)
    opt = torch.optim.Adam([speed], lr=0.05)
    term = MotionMatchTerm(1.0)
    for _ in range(steps):
        real = blobs(torch.full((16,), real_speed), angle=torch.rand(16) * 2 * math.pi)
        batch = Batch(real=real, times=torch.zeros(16, 6), real_c=None, z=torch.zeros(16, 1), gen_c=None,
                      gen_times=torch.zeros(16, 6), motion=torch.zeros(16, 1, 1))
        loss, stats = term.g_terms(None, batch, blobs(speed))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert set(stats) == {"G/motion_match", "motion/fake_change", "motion/real_change"}
    return float(speed.detach().abs().mean())


def test_descending_the_term_moves_a_still_renderer_and_slows_a_fast_one():
    # The term's minimum is the real speed (frame change grows monotonically with speed); 25% is a loose margin
    # around that exact optimum, not a fitted number.
    assert abs(descend(0.05) - 1.5) < 0.25 * 1.5
    assert abs(descend(4.0) - 1.5) < 0.25 * 1.5


def test_the_weight_is_on_for_the_scene_G_only():
    base = str(ROOT / "configs" / "tiny.yaml")
    assert resolved_motion_weight(load_config(base, {"G": {"camera": "static"}})) > 0
    assert resolved_motion_weight(load_config(base, {"G": {"camera": "moving"}})) > 0
    assert resolved_motion_weight(load_config(base)) == 0                       # auto camera, data not read: none
    assert resolved_motion_weight(load_config(base, {"G": {"camera": "static"}, "loss": {"motion_weight": 0}})) == 0
    with pytest.raises(ConfigError, match="loss.motion_weight"):
        load_config(base, {"loss": {"motion_weight": -2}})
    assert MotionMatchTerm(0.0).g_terms(None, None, torch.zeros(1, 3, 1, 2, 2)) == (None, {})
