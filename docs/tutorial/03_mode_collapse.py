"""Chapter 3: mode collapse. The data: one coloured shape per clip, six colours equally often (the text-to-video
preset's data and networks, trained here without the text). A generator that finds a few colours the
discriminators believe can draw only those. The chapter counts the colours of 96 samples, against 96 real
clips, with and without the minibatch-standard-deviation layer (StyleGAN, Karras et al. 2018), which lets D
see how varied a group of clips is.

\b
  python docs/tutorial/03_mode_collapse.py            # ~5 minutes on 2 cores
  python docs/tutorial/03_mode_collapse.py --short    # seconds: checks that it all runs
"""
from __future__ import annotations

from typing import Dict, List

import click

import _tutorial as tut

STEPS = 1200
UNCONDITIONAL = ["--set", "cond.mode=none", "--set", "data.captions=false", "--set", "G.objects=0"]
COUNT = 96


@tut.chapter
@click.option("--seed", type=int, default=1, show_default=True, help="train.seed of both runs.")
def main(short, runs, figures, seed):
    """Chapter 3: mode collapse, minibatch std on vs off (docs/tutorial/03_mode_collapse.md)."""
    runs, figures = tut.folders(short, runs, figures)
    kinds = {"minibatch std on": runs / f"03_mbstd_on_seed{seed}",
             "minibatch std off": runs / f"03_mbstd_off_seed{seed}"}
    common = [*([] if short else ["--steps", STEPS]), *UNCONDITIONAL, "--set", f"train.seed={seed}"]
    seconds = {"minibatch std on": tut.train_run(kinds["minibatch std on"], "configs/t2v.yaml", short, *common),
               "minibatch std off": tut.train_run(kinds["minibatch std off"], "configs/t2v.yaml", short, *common,
                                                  "--set", "D.mbstd_group=0")}
    cfg = tut.run_config(kinds["minibatch std on"])
    clips = {"real": tut.real(cfg, COUNT, 8)}
    clips.update({label: tut.generated(run, range(COUNT), 8) for label, run in kinds.items()})
    counts = {label: tut.colour_counts(c) for label, c in clips.items()}
    suffix = "" if seed == 1 else f"_seed{seed}"
    tut.strips(figures / f"03_first_frames{suffix}.png", {k: v[:16, 0] for k, v in clips.items()}, size=48,
               title=f"the first frame of 16 clips each (seeds 0-15), runs with train.seed={seed}")
    _colour_bars(figures / f"03_colours{suffix}.png", counts)
    tut.save_numbers(figures, f"03_mode_collapse{suffix}", {
        "train_seed": seed,
        "steps": {label: tut.log_records(run)[-1]["step"] for label, run in kinds.items()},
        "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "colour_counts": counts,
        "effective_colours": {label: tut.effective_colours(c) for label, c in counts.items()},
        "diversity_l1": {label: round(tut.diversity(c), 2) for label, c in clips.items()},
    })


def _colour_bars(path, counts: Dict[str, Dict[str, int]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names: List[str] = list(next(iter(counts.values())))
    fig, ax = plt.subplots(figsize=(7, 3))
    width = 0.8 / len(counts)
    for i, (label, c) in enumerate(counts.items()):
        ax.bar([j + i * width for j in range(len(names))], [c[n] for n in names], width, label=label,
               color=["grey", "tab:green", "tab:red"][i])
    ax.set_xticks([j + width * (len(counts) - 1) / 2 for j in range(len(names))], names, fontsize=8)
    ax.set_ylabel(f"clips of {COUNT}")
    ax.set_title("colour of the moving shape", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
