"""Chapter 5: continuous time. reelgan's generator draws a frame for any time t, not for frame numbers, so the
model of chapter 1 (trained on 16 frames/s clips) renders the same second of motion at 64 frames/s with
generate.py --fps 64. The chapter renders both, checks that every 4th frame at 64 fps is the 16 fps frame, and
shows 4x slow motion made by repeating frames next to the one made by rendering the times in between.

\b
  python docs/tutorial/05_continuous_time.py            # seconds, after chapter 1 (else it trains it first)
  python docs/tutorial/05_continuous_time.py --short    # seconds: only checks that it runs
"""
from __future__ import annotations

import numpy as np
import torch

import _tutorial as tut
from gan.analysis.measure import centroid_track
from gan.video_io import make_grid, to_uint8, write_gif

SEEDS = "0-7"


@tut.chapter
def main(short, runs, figures):
    """Chapter 5: render a trained model at 4x its frame rate (docs/tutorial/05_continuous_time.md)."""
    runs, figures = tut.folders(short, runs, figures)
    model = runs / "01_dots"
    tut.train_run(model, "configs/dots.yaml", short)                    # chapter 1's run (reused when there)
    ckpt, out = model / "checkpoints" / "latest.pt", runs / "05_time"
    fps = tut.run_config(model).data.fps                                 # the training data's rate: 16
    tut.run("generate.py", "--checkpoint", ckpt, "--outdir", out / "x1", "--seeds", SEEDS, "--frames", 16,
            "--format", "png")
    tut.run("generate.py", "--checkpoint", ckpt, "--outdir", out / "x4", "--seeds", SEEDS, "--frames", 64,
            "--fps", f"{4 * fps:g}", "--format", "png")
    x1 = torch.stack([tut.read_frames(p) for p in sorted((out / "x1").glob("seed*"))])    # [8, 16, C, H, W]
    x4 = torch.stack([tut.read_frames(p) for p in sorted((out / "x4").glob("seed*"))])    # [8, 64, C, H, W]
    repeated = x1.repeat_interleave(4, dim=1)               # 4x the frames by showing each one 4 times

    s = int(torch.tensor([tut.dot_step(c[None]) for c in x1]).nan_to_num(0).argmax())   # the seed that moves most
    sparse = torch.ones_like(x4[s, :13])                                        # 16 fps frames above their times
    sparse[::4] = x1[s, :4]
    tut.strips(figures / "05_frames.png", {f"{fps:g} fps": sparse, f"{4 * fps:g} fps": x4[s, :13]},
               title=f"the first 3/{fps:g} s of seed {s}: 4 frames at {fps:g} fps, 13 at {4 * fps:g} fps")
    t1, t4 = np.arange(16) / fps, np.arange(64) / (4 * fps)
    c1, c4 = centroid_track(x1[s]).numpy(), centroid_track(x4[s]).numpy()
    tut.curves(figures / "05_track.png", {f"x at {fps:g} fps": (t1, c1[:, 0]), f"x at {4 * fps:g} fps": (t4, c4[:, 0]),
                                          f"y at {fps:g} fps": (t1, c1[:, 1]), f"y at {4 * fps:g} fps": (t4, c4[:, 1])},
               ylabel="dot centre (px)", xlabel="time (s)", title=f"seed {s}: where the dot is")
    # 4x slow motion, both played at 16 fps: repeated frames (left) vs rendered in-between times (right).
    side = torch.stack([repeated[s], x4[s], repeated[(s + 1) % 8], x4[(s + 1) % 8]])
    write_gif(figures / "05_slow_motion.gif", make_grid(tut.upscale(to_uint8(side), 96), nrow=4), fps)
    print(f"wrote {figures / '05_slow_motion.gif'}")

    def steps(clips):
        d = tut.dot_steps(clips)
        return {"mean": round(float(d.mean()), 3), "max": round(float(d.max()), 3)}

    tut.save_numbers(figures, "05_continuous_time", {
        "every_4th_frame_vs_16fps_mean_abs_grey_levels": round(float((x4[:, ::4] - x1).abs().mean() * 127.5), 3),
        "dot_step_px": {f"{fps:g} fps": steps(x1), f"{4 * fps:g} fps rendered": steps(x4),
                        f"{4 * fps:g} fps by repeating frames": steps(repeated)},
    })


if __name__ == "__main__":
    main()
