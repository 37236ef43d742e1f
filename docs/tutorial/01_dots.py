"""Chapter 1: a GAN on moving dots. Trains configs/dots.yaml, samples it with generate.py, draws real and
generated clips side by side and the two losses over training.

\b
  python docs/tutorial/01_dots.py            # about 4 minutes on 2 cores
  python docs/tutorial/01_dots.py --short    # seconds: only checks that it runs
"""
from __future__ import annotations

import numpy as np
import torch

import _tutorial as tut
from gan.analysis.measure import mean_speed


@tut.chapter
def main(short, runs, figures):
    """Chapter 1: a GAN on moving dots (docs/tutorial/01_dots.md)."""
    runs, figures = tut.folders(short, runs, figures)
    run = runs / "01_dots"
    seconds = tut.train_run(run, "configs/dots.yaml", short)
    tut.run("generate.py", "--checkpoint", run / "checkpoints" / "latest.pt", "--outdir", run / "out",
            "--seeds", "0-7", "--frames", 32, "--format", "gif")

    cfg = tut.run_config(run)
    fake = tut.generated(run, range(8), 16)                              # [8, 16, C, H, W]
    real = tut.real(cfg, 8, 16)
    tut.grid_gif(figures / "01_real_vs_generated.gif", torch.cat([real[:4], fake[:4]]), cfg.data.fps, nrow=4)
    tut.strips(figures / "01_strips.png", {"real 0": real[0], "real 1": real[1], "seed 0": fake[0],
                                           "seed 1": fake[1], "seed 2": fake[2]}, every=2,
               title="every 2nd frame of 16: two real clips, three generated ones")
    logs = tut.log_records(run)
    steps = [r["step"] for r in logs]
    tut.curves(figures / "01_losses.png", {"D loss (real vs fake)": (steps, [r["D/loss"] for r in logs]),
                                           "G loss (fool both Ds)": (steps, [r["G/loss"] for r in logs])},
               ylabel="loss", title="the two players' losses")

    tut.save_numbers(figures, "01_dots", {
        "steps": logs[-1]["step"], "train_seconds": round(seconds, 1),
        "frames_with_a_dot": {"real": tut.dot_found(real), "generated": tut.dot_found(fake)},
        "dot_speed_px_per_frame": {"real": round(float(np.mean([mean_speed(c) for c in real])), 3),
                                   "generated": round(float(np.mean([mean_speed(c) for c in fake])), 3)},
        "flicker": {"real": round(tut.flicker(real), 2), "generated": round(tut.flicker(fake), 2)},
    })


if __name__ == "__main__":
    main()
