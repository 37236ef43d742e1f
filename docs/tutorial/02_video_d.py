"""Chapter 2: what the video discriminator is for. Chapter 1's model learned from an image D (single frames)
and a video D (whole clips); this chapter trains the same model with the video D's vote switched off
(loss.video_weight=0) and measures how the motion changes: the frame-to-frame change (flicker) and how far
the dot moves per frame, against the real clips.

\b
  python docs/tutorial/02_video_d.py            # about 3 minutes on 2 cores (+4 if chapter 1 has not run)
  python docs/tutorial/02_video_d.py --short    # seconds: only checks that it runs
"""
from __future__ import annotations

import _tutorial as tut


@tut.chapter
def main(short, runs, figures):
    """Chapter 2: image D alone vs image + video D (docs/tutorial/02_video_d.md)."""
    runs, figures = tut.folders(short, runs, figures)
    both, image_only = runs / "01_dots", runs / "02_image_d_only"
    tut.train_run(both, "configs/dots.yaml", short)                     # chapter 1's run (reused when there)
    seconds = tut.train_run(image_only, "configs/dots.yaml", short, "--set", "loss.video_weight=0")

    cfg = tut.run_config(both)
    seeds, frames = range(32), 16
    clips = {"real": tut.real(cfg, len(seeds), frames),
             "image + video D": tut.generated(both, seeds, frames),
             "image D only": tut.generated(image_only, seeds, frames)}
    tut.grid_gif(figures / "02_image_d_only.gif", clips["image D only"][:8], cfg.data.fps, nrow=4)
    tut.grid_gif(figures / "02_image_and_video_d.gif", clips["image + video D"][:8], cfg.data.fps, nrow=4)
    tut.strips(figures / "02_strips.png", {"real": clips["real"][0], "image + video D": clips["image + video D"][0],
                                           "image D only": clips["image D only"][0]},
               title="16 consecutive frames of one clip each")
    # Per-frame change over time: a bar per kind, one number each (mean over 32 clips).
    flick = {k: round(tut.flicker(v), 2) for k, v in clips.items()}
    step = {k: round(tut.dot_step(v), 3) for k, v in clips.items()}
    tut.bars(figures / "02_flicker.png", {"mean |frame t+1 - frame t| (grey levels)": flick,
                                          "dot moves per frame (px)": step})
    tut.save_numbers(figures, "02_video_d", {"steps": tut.log_records(image_only)[-1]["step"],
                                             "train_seconds_image_d_only": round(seconds, 1),
                                             "flicker_grey_levels": flick, "dot_step_px": step})


if __name__ == "__main__":
    main()
