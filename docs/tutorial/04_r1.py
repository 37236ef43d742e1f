"""Chapter 4: R1, the gradient penalty on real data (Mescheder et al. 2018). Two runs of the dots model, with
R1 (loss.r1_gamma=2, the default) and without (r1_gamma=0), each keeping a checkpoint every 50 steps; for every
checkpoint the chapter measures how steep each discriminator is at real data (the squared gradient norm that R1
penalises) and plots it with the logit gap between real and fake clips from the run's log.

\b
  python docs/tutorial/04_r1.py            # about 5 minutes on 2 cores
  python docs/tutorial/04_r1.py --short    # seconds: only checks that it runs
"""
from __future__ import annotations

from pathlib import Path

import torch

import _tutorial as tut
from gan.checkpoint import load, step_of
from gan.config import Config
from gan.networks import build_discriminators
from losses.adversarial import r1_penalty

STEPS = 600
KEEP = ["--set", "train.checkpoint_every=50", "--set", "train.keep_checkpoints=100",
        "--set", "train.sample_every=0"]


def steepness(ckpt: Path, real: torch.Tensor) -> dict:
    """Mean squared gradient norm of each D's logit with respect to real inputs (what R1 penalises), on the
    fixed clips `real` [N, T, C, H, W]."""
    state = load(ckpt)
    cfg = Config.from_dict(state["config"])
    D_image, D_video = build_discriminators(cfg, int(state.get("c_dim", 0)))
    D_image.load_state_dict(state["D_image"]), D_video.load_state_dict(state["D_video"])
    frames = real[:, 0].clone().requires_grad_(True)                       # [N, C, H, W]
    clip = real.clone().requires_grad_(True)
    gap = torch.arange(real.shape[1], dtype=torch.float32)[None].expand(real.shape[0], -1)
    return {"image": float(r1_penalty(D_image(frames, None), frames).mean().detach()),
            "video": float(r1_penalty(D_video(clip, gap, None), clip).mean().detach())}


@tut.chapter
def main(short, runs, figures):
    """Chapter 4: R1 on vs off (docs/tutorial/04_r1.md)."""
    runs, figures = tut.folders(short, runs, figures)
    kinds = {"R1 gamma 2 (default)": runs / "04_r1", "R1 off (gamma 0)": runs / "04_no_r1"}
    seconds = {}
    for (label, run), gamma in zip(kinds.items(), (2, 0)):
        steps = [] if short else ["--steps", STEPS]
        seconds[label] = round(tut.train_run(run, "configs/dots.yaml", short, *steps, *KEEP,
                                             "--set", f"loss.r1_gamma={gamma}"), 1)
    cfg = tut.run_config(kinds["R1 off (gamma 0)"])
    real = tut.real(cfg, 32, cfg.data.clip_frames)
    grads, gaps = {}, {}
    for label, run in kinds.items():
        ckpts = sorted(run.glob("checkpoints/step_*.pt"), key=step_of)
        grads[label] = ([step_of(p) for p in ckpts], [steepness(p, real) for p in ckpts])
        logs = tut.log_records(run)
        gaps[label] = ([r["step"] for r in logs],
                       [r["real/logit_image"] - r["fake/logit_image_d"] for r in logs])
    tut.curves(figures / "04_gradient_norm.png",
               {f"{label}, {which} D": (x, [g[which] for g in ys])
                for label, (x, ys) in grads.items() for which in ("image", "video")},
               ylabel="mean |dD/dx|^2 on real clips", title="how steep D is at the real data", logy=True)
    tut.curves(figures / "04_logit_gap.png", gaps, ylabel="D(real) - D(fake), image D",
               title="how sure the image D is (logit gap)")
    clips = {label: tut.generated(run, range(32), 16) for label, run in kinds.items()}
    for label, name in zip(kinds, ("04_samples_r1.gif", "04_samples_no_r1.gif")):
        tut.grid_gif(figures / name, clips[label][:8], cfg.data.fps, nrow=4)
    tut.save_numbers(figures, "04_r1", {
        "steps": {label: tut.log_records(run)[-1]["step"] for label, run in kinds.items()},
        "train_seconds": seconds,
        "final_gradient_norm": {label: {k: round(v, 4) for k, v in ys[-1].items()} for label, (_, ys) in grads.items()},
        "final_logit_gap": {label: round(ys[-1], 3) for label, (_, ys) in gaps.items()},
        "frames_with_a_dot": {label: tut.dot_found(c) for label, c in clips.items()},
    })


if __name__ == "__main__":
    main()
