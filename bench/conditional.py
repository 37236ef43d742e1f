"""Conditional-generation benchmark: train each mode from its config for a fixed wall-clock budget,
then measure it on held-out (test-split) built-in clips.

- image-to-video: LPIPS / PSNR of the first generated frame against the still (and, as a reference,
  against an unrelated still), and how fast the generated object moves vs the real one;
- continuation: LPIPS / PSNR of predicted vs real future frames, against copying the last context frame;
- text-to-video: the fraction of clips whose object has the prompt's colour and moves in the prompt's
  direction (dominant colour and centroid motion, gan/analysis/measure.py), for the text model,
  the unconditional model trained on the same data (baseline), and real clips (the measurement's ceiling).

\b
  python bench/conditional.py                         # 4 models x 160 s + evaluation: ~12-13 minutes
  python bench/conditional.py --budget 30 --clips 16  # quick smoke run (numbers not meaningful)
Writes bench/results/conditional-<date>.json and the Conditional section of BENCHMARKS.md (only between
<!-- conditional:start --> and <!-- conditional:end -->). LPIPS is the real v0.1 AlexNet (gan/weights.py fetches
it on first use); only where it cannot be obtained do the training term and metric use a RANDOM backbone, and
every LPIPS number is then labelled so.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import click
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START, END = "<!-- conditional:start -->", "<!-- conditional:end -->"
JOBS = [  # (name, config, overrides)
    ("i2v", "configs/i2v.yaml", {}),
    ("continue", "configs/continue.yaml", {}),
    ("t2v", "configs/t2v.yaml", {}),
    ("t2v_uncond", "configs/t2v.yaml", {"name": "t2v_uncond", "cond": {"mode": "none"}}),
]


def _merge(a: Dict, b: Dict) -> Dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def train_steps(config: str, overrides: Dict, outdir: Path, steps: int) -> Dict:
    """Train exactly `steps` steps (ablations: the same work whatever else shares the CPU)."""
    from gan.config import load_config
    from gan.training import train
    over = _merge(overrides, {"train": {"steps": steps, "checkpoint_every": 10 ** 9, "sample_every": 0,
                                        "log_every": 10 ** 9}})
    cfg = load_config(str(ROOT / config), over)
    t0 = time.time()
    train(cfg, str(outdir), progress=False)
    return {"steps": steps, "seconds": round(time.time() - t0, 1), "batch": cfg.train.batch}


def train_for(config: str, overrides: Dict, outdir: Path, budget_s: float, log) -> Dict:
    """Train in resumed chunks until `budget_s` seconds of wall time are used (robust to a shared CPU)."""
    from gan.config import load_config
    from gan.training import train
    t0, target, chunks, prev = time.time(), 20, 0, 0
    while True:
        over = _merge(overrides, {"train": {"steps": target, "checkpoint_every": 10 ** 9, "sample_every": 0,
                                            "log_every": 10 ** 9}})
        cfg = load_config(str(ROOT / config), over)
        c0 = time.time()
        train(cfg, str(outdir), resume=chunks > 0, progress=False)
        chunks += 1
        used, chunk_s = time.time() - t0, time.time() - c0
        done = target
        rate = (done - prev) / max(chunk_s, 1e-3)                   # steps of this chunk per second
        log(f"  {outdir.name}: {done} steps after {used:.0f} s ({rate:.2f} steps/s in the last chunk)")
        if used >= 0.9 * budget_s or chunks >= 4:
            return {"steps": done, "seconds": round(used, 1), "batch": cfg.train.batch}
        prev = done
        target = done + max(10, int(rate * (budget_s - used) * 0.9))


def perceptual(backbone: Optional[str]):
    """(LPIPS model, label): the pretrained backbone when present, else a random one, labelled."""
    from losses.conditional import build_perceptual
    from losses.perceptual import MissingWeightsError
    try:
        return build_perceptual(weights=backbone), "pretrained AlexNet LPIPS"
    except MissingWeightsError:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(0)                      # the same random backbone in every run of this script
            return build_perceptual(random_backbone=True), "RANDOM-backbone LPIPS (not comparable to published LPIPS)"


def builtin_of(cfg) -> str:
    """The built-in dataset a model's data is: its source, or what `reelgan-dataset export` wrote a folder from."""
    if cfg.data.source in ("shapes", "digits"):
        return cfg.data.source
    from gan.data.prepared import DATASET_FILE
    return json.loads((Path(cfg.data.source) / DATASET_FILE).read_text())["source"]


def test_set(cfg, clips: int):
    from gan.data import BouncingShapes, MovingDigits
    cls = {"shapes": BouncingShapes, "digits": MovingDigits}[builtin_of(cfg)]
    return cls(resolution=cfg.data.resolution, num_videos=clips, video_frames=cfg.data.video_frames,
               num_objects=cfg.data.num_objects, seed=cfg.train.seed, split="test")


@torch.no_grad()
def eval_i2v(ckpt: Path, clips: int, lpips, frames: int = 8) -> Dict:
    from gan.conditioning.inputs import frames_to_tensor
    from gan.analysis.measure import mean_speed, psnr
    from gan.sampling import ClipRenderer, load_conditional
    G, info = load_conditional(ckpt)
    r = ClipRenderer(G)

    def animate(still, seeds, n, time_step=1.0):                 # image-to-video through the renderer
        times = torch.arange(n, dtype=torch.float64) * time_step
        return r.whole(r.conditioned_clips(seeds, still[None], torch.zeros(1), times))
    ds = test_set(info["config"], clips)
    ch = info["config"].data.channels                   # the model's: 1 for the built-in digits' luma
    real = [frames_to_tensor(ds.render(i, 0, frames), ch) for i in range(clips)]
    gen = [animate(x[0], [i], frames)[0] for i, x in enumerate(real)]
    # Do objects keep their shape and move plausibly? reelgan-analyze (detector, tracker, shapes classifier) on
    # longer clips (16 frames, 2 data frames apart: several pixels of motion), generated and real alike.
    from gan.analysis.analyzer import AnalysisConfig, ClipAnalyzer, aggregate
    from gan.analysis.classifier import ObjectLabeler
    from gan.video_io import to_uint8
    cfg = info["config"]
    analyzer = ClipAnalyzer(ObjectLabeler(builtin_of(cfg)),
                            config=AnalysisConfig(expected_objects=cfg.data.num_objects, stride=2))
    longer = {"generated": [], "real": []}
    for i in range(clips):
        real_long = frames_to_tensor(ds.render(i, 0, 16, 2), ch)
        longer["real"].append(analyzer.analyze(to_uint8(real_long.float())))
        gen_long = animate(real_long[0], [i], 16, time_step=2)[0]
        longer["generated"].append(analyzer.analyze(to_uint8(gen_long.float())))
    keys = ("identity_consistency", "motion_plausibility", "count_accuracy", "clean_clips")
    analysis = {}
    for name, reports in longer.items():
        summary = aggregate(reports)
        analysis[name] = {m: summary[m] for m in keys}
    first_g = torch.stack([g[0] for g in gen])[:, None]                  # [N, 1, C, H, W]
    first_r = torch.stack([r[0] for r in real])[:, None]
    other_r = first_r.roll(1, dims=0)                                   # an unrelated still
    return {
        "clips": clips, "frames": frames,
        "first_frame_lpips": float(lpips(first_g, first_r).mean()),
        "first_frame_psnr": float(psnr(first_g, first_r).mean()),
        "unrelated_still_lpips": float(lpips(first_g, other_r).mean()),
        "unrelated_still_psnr": float(psnr(first_g, other_r).mean()),
        "gen_speed_px_per_frame": float(np.mean([mean_speed(g) for g in gen])),
        "real_speed_px_per_frame": float(np.mean([mean_speed(r) for r in real])),
        "analysis": analysis, "generator": type(G).__name__,
    }


@torch.no_grad()
def eval_continue(ckpt: Path, clips: int, lpips, stride: int = 2, future: int = 8, near: int = 3) -> Dict:
    from gan.conditioning.inputs import frames_to_tensor
    from gan.analysis.measure import psnr
    from gan.sampling import ClipRenderer, load_conditional
    G, info = load_conditional(ckpt)
    r = ClipRenderer(G)
    ds = test_set(info["config"], clips)
    k = G.context_frames
    preds, copies, targets = [], [], []
    for i in range(clips):
        real = frames_to_tensor(ds.render(i, 0, k + future, stride), info["config"].data.channels)
        context, target = real[:k], real[k:]
        context_times = torch.arange(k, dtype=torch.float64) * stride
        times = float(context_times[-1]) + torch.arange(1, future + 1, dtype=torch.float64) * stride
        preds.append(r.whole(r.conditioned_clips([i], context, context_times, times))[0])
        copies.append(context[-1:].expand_as(target))
        targets.append(target)
    P, C, T = torch.stack(preds), torch.stack(copies), torch.stack(targets)   # [N, F, C, H, W]

    def scores(x, lo, hi):
        return {"lpips": float(lpips(x[:, lo:hi], T[:, lo:hi]).mean()),
                "psnr": float(psnr(x[:, lo:hi], T[:, lo:hi]).mean())}
    return {"clips": clips, "context_frames": k, "stride": stride, "future": future, "near": near,
            "model_near": scores(P, 0, near), "copy_last_near": scores(C, 0, near),
            "model_far": scores(P, near, future), "copy_last_far": scores(C, near, future)}


@torch.no_grad()
def eval_text(ckpt: Path, ckpt_uncond: Optional[Path], clips: int, frames: int = 8) -> Dict:
    """Each test caption's clip goes through reelgan-analyze's detector, tracker and object classifier
    (gan.analysis.analyzer); its main object's colour, class and tracked direction are compared with the caption."""
    from gan.conditioning.inputs import frames_to_tensor
    from gan.analysis.measure import prompt_agreement
    from gan.sampling import ClipRenderer, load_conditional, prompt_condition
    from gan.analysis.analyzer import AnalysisConfig, ClipAnalyzer
    from gan.analysis.classifier import ObjectLabeler
    from gan.sampling import load_generator, render
    from gan.video_io import to_uint8
    G, info = load_conditional(ckpt)
    cfg = info["config"]
    ds = test_set(cfg, clips)
    analyzer = ClipAnalyzer(ObjectLabeler(builtin_of(cfg)), config=AnalysisConfig(expected_objects=1))
    Gu = load_generator(ckpt_uncond)[0] if ckpt_uncond is not None else None
    rows = {"text model": [], "unconditional model": [], "real clips": []}
    for i in range(clips):
        obj = ds.factors(i)["objects"][0]
        c = prompt_condition(info["text_encoder"], ds.caption(i), [i])
        clips_i = {"text model": ClipRenderer(G, fused=False).render([i], frames, c=c)[0],
                   "real clips": frames_to_tensor(ds.render(i, 0, frames))}
        if Gu is not None:
            clips_i["unconditional model"] = render(Gu, [i], frames, fused=False)[0]
        for name, clip in clips_i.items():
            rows[name].append(prompt_agreement(analyzer.analyze(to_uint8(clip.float())), obj,
                                               named_colour=obj["color"] in ds.caption(i).split()))
    out = {"clips": clips, "frames": frames, "example_caption": ds.caption(0), "dataset": builtin_of(cfg)}
    if G.objects > 0:               # the layered G: where its w sends the sprite, read off G (no tracking)
        from gan.analysis.measure import direction_matches
        from gan.sampling import seed_z
        hits = []
        for i in range(clips):
            c = info["text_encoder"].encode([ds.caption(i)]).float()
            vel = G.drift(G.mapping_forward(seed_z(G, [i], "cpu"), c))[0, 0]
            hits.append(direction_matches(vel, ds.factors(i)["objects"][0]["direction"]))
        out["drift direction"] = float(np.mean(hits))
    keys = ("colour", "class", "direction", "all")
    for name, r in rows.items():
        if r:
            out[name] = {k: float(np.mean([bool(x[k]) for x in r])) if any(x[k] is not None for x in r) else None
                         for k in keys}
    from gan.data.builtin import PALETTE
    n_cls = len(ds.class_names)
    colours = 1 / len(PALETTE) if builtin_of(cfg) == "shapes" else None
    out["chance"] = {"colour": colours, "class": 1 / n_cls, "direction": 0.25,
                     "all": 0.25 / n_cls * (colours or 1.0)}
    return out


@torch.no_grad()
def eval_text_discriminators(ckpt: Path, clips: int, stride: int = 2) -> Dict:
    """Do the trained Ds read each factor of a caption? For real test clips (the model's clip length, frames
    `stride` apart from frame 0), the fraction whose logit with the right caption beats the logit with the
    caption's word of one group swapped for another word of that group (per Ds and factor; 0.5 is blind)."""
    from gan.conditioning.inputs import frames_to_tensor
    from gan.sampling import load_conditional
    from gan.conditioning.text import CaptionNegatives
    from gan.networks import build_discriminators
    from gan.checkpoint import load
    raw = load(ckpt, map_location="cpu")
    _, info = load_conditional(ckpt)                               # for the saved text encoder
    cfg, enc = info["config"], info["text_encoder"]
    D_image, D_video = build_discriminators(cfg, cfg.cond.text_dim)
    D_image.load_state_dict(raw["D_image"])
    D_video.load_state_dict(raw["D_video"])
    D_image.eval()
    D_video.eval()
    ds = test_set(cfg, clips)
    T = cfg.data.clip_frames
    video = torch.stack([frames_to_tensor(ds.render(i, 0, T, stride), cfg.data.channels) for i in range(clips)])
    times = (torch.arange(T, dtype=torch.float32) * stride)[None].expand(clips, -1)
    captions = [ds.caption(i) for i in range(clips)]

    def logits(caps, idx):
        c = enc.encode(caps).float()
        return D_image(video[idx, 0], c).flatten(), D_video(video[idx], times[idx], c).flatten()
    right_i, right_v = logits(captions, torch.arange(clips))
    groups = type(ds).caption_word_groups()
    names = {"shapes": ["colour", "shape"], "digits": ["digit"]}[builtin_of(cfg)] + ["direction", "speed"]
    out = {"clips": clips, "stride": stride}
    gen = torch.Generator().manual_seed(0)
    for name, group in zip(names, groups["appearance"] + groups["motion"]):
        neg = CaptionNegatives([group], swap=1.0)
        rows = [(k, neg.swapped(c, gen)) for k, c in enumerate(captions)]
        rows = [(k, w) for k, w in rows if w is not None]
        if not rows:
            continue
        idx = torch.tensor([k for k, _ in rows])
        wrong_i, wrong_v = logits([w for _, w in rows], idx)
        out[name] = {"pairs": len(rows), "image_D": float((right_i[idx] > wrong_i).float().mean()),
                     "video_D": float((right_v[idx] > wrong_v).float().mean())}
    return out


def render_section(doc: Dict, json_path: str) -> str:
    m, tr = doc["machine"], doc["training"]
    lp = doc["lpips"]
    steps = lambda n: f"{tr[n]['steps']} steps x batch {tr[n]['batch']} in {tr[n]['seconds']:.0f} s" if n in tr else "-"
    cmd = "python bench/conditional.py" + (f" {doc['args']}" if doc["args"] else "")
    out = [f"_`{cmd}` on {doc['date']}: {m['cpu']} ({m['cores']} cores, "
           f"shared; torch threads {m['threads']}), torch {m['torch']}. Each model trained from its config "
           f"(configs/i2v.yaml, continue.yaml, t2v.yaml; 16 px) "
           + (f"for {doc['steps']} steps, " if doc.get("steps") else
              f"for a wall-clock budget of {doc['budget_s']:.0f} s, ")
           + f"then measured on test-split clips the model never saw. LPIPS: **{lp}**"
           + ("; the LPIPS training term used it too (`cond.lpips_random_backbone`)" if "RANDOM" in lp else "")
           + f". Raw results: `{json_path}`. Total time {doc['total_s'] / 60:.1f} min._", ""]
    f3 = lambda v: f"{v:.3f}"
    f1 = lambda v: f"{v:.1f}" if v < 99.995 else "100 (identical: psnr() caps at 100 dB)"
    if "i2v" in doc["results"]:
        r = doc["results"]["i2v"]
        out += [f"**Image-to-video** ({steps('i2v')}; {r['clips']} stills, {r['frames']} frames each)", "",
                "| first generated frame vs | LPIPS (lower is better) | PSNR dB (higher is better) |", "|---|---|---|",
                f"| the still it animates | {f3(r['first_frame_lpips'])} | {f1(r['first_frame_psnr'])} |",
                f"| an unrelated still (reference) | {f3(r['unrelated_still_lpips'])} | {f1(r['unrelated_still_psnr'])} |",
                "", f"Mean object speed: generated {r['gen_speed_px_per_frame']:.2f} px/frame, real "
                f"{r['real_speed_px_per_frame']:.2f} px/frame.", ""]
        if "analysis" in r:
            a = r["analysis"]
            out += [f"Generator: `{r['generator']}`. `reelgan-analyze` on 16-frame clips (2 data frames apart) from "
                    "the same stills: does each tracked object keep its label (identity), move at a steady velocity "
                    "between bounces (motion), and is the right number of objects on screen (count)?", "",
                    "| clips | identity consistency | motion plausibility | count accuracy | clean clips |",
                    "|---|---|---|---|---|"]
            for name in ("generated", "real"):
                v = a[name]
                out.append(f"| {name} | {f3(v['identity_consistency'])} | {f3(v['motion_plausibility'])} | "
                           f"{f3(v['count_accuracy'])} | {v['clean_clips']:.0%} |")
            out.append("")
    if "continue" in doc["results"]:
        r = doc["results"]["continue"]
        out += [f"**Continuation** ({steps('continue')}; {r['clips']} clips: {r['context_frames']} context frames "
                f"{r['stride']} apart, {r['future']} predicted frames at the same stride)", "",
                f"| predictor | LPIPS frames 1-{r['near']} | PSNR frames 1-{r['near']} | LPIPS frames "
                f"{r['near'] + 1}-{r['future']} | PSNR frames {r['near'] + 1}-{r['future']} |", "|---|---|---|---|---|"]
        for label, a, b in (("model", "model_near", "model_far"), ("copy last frame (baseline)", "copy_last_near",
                                                                    "copy_last_far")):
            out.append(f"| {label} | {f3(r[a]['lpips'])} | {f1(r[a]['psnr'])} | {f3(r[b]['lpips'])} | "
                       f"{f1(r[b]['psnr'])} |")
        out.append("")
    if "t2v" in doc["results"]:
        r = doc["results"]["t2v"]
        digits = r.get("dataset") == "digits"
        out += [f"**Text-to-video** (text model {steps('t2v')}; unconditional baseline {steps('t2v_uncond')}; "
                f"{r['clips']} test captions such as \"{r['example_caption']}\", {r['frames']} frames per clip)", "",
                f"| clips | colour matches | {'digit' if digits else 'shape'} matches | "
                "direction matches (within 45 deg) | all named |",
                "|---|---|---|---|---|"]
        pct = lambda v: "n/a" if v is None else f"{v:.0%}"
        for name in ("text model", "unconditional model", "real clips", "chance"):
            if name in r:
                v = r[name]
                label = {"real clips": "real clips (ceiling of the measurement)",
                         "chance": "chance"}.get(name, name)
                out.append(f"| {label} | {pct(v.get('colour'))} | {pct(v.get('class'))} | {pct(v.get('direction'))} | "
                           f"{pct(v.get('all'))} |")
        out += ["", "Measured with `reelgan-analyze`'s pieces (gan/analysis/analyzer.py): the threshold detector and "
                "tracker follow the clip's objects, " + ("the digit classifier names the longest object track"
                if digits else "the shapes classifier names the longest object track (colour + "
                "shape)") + ", and a least-squares fit of that track's centres gives its direction, matched to the "
                "caption's direction at frame 0 within 45 degrees (real clips miss when the object bounces or barely "
                "moves). A clip without a recognised object misses everything, so an undertrained model can score "
                "below chance."]
        if r.get("drift direction") is not None:
            out += ["", f"The text model's sprite drift, read off the layered G (`drift`: the velocity its w gives "
                    f"the sprite, no detection or tracking), points within 45 degrees of the caption's direction "
                    f"in {r['drift direction']:.0%} of the clips (chance 25%)."]
        dd = r.get("discriminators")
        if dd:
            factors = [k for k in dd if isinstance(dd[k], dict)]
            out += ["", f"Do the trained discriminators read each word? Share of {dd['clips']} real test clips whose "
                    "logit with their caption beats the logit with one word swapped for another of its kind "
                    "(0.5: blind to that word; the image D sees one frame, so motion words are not its job):", "",
                    "| D | " + " | ".join(factors) + " |", "|---|" + "---|" * len(factors)]
            for d in ("image_D", "video_D"):
                out.append(f"| {d.replace('_', ' ')} | " + " | ".join(f"{dd[k][d]:.2f}" for k in factors) + " |")
    return "\n".join(out)


def update_markdown(path: Path, doc: Dict, json_path: str) -> None:
    from bench.report import replace_section
    replace_section(path, START, END, "Conditional", render_section(doc, json_path))


@click.command(help=__doc__)
@click.option("--budget", type=click.FloatRange(min=5), default=160.0, show_default=True,
              help="Training wall-clock seconds per model (4 models).")
@click.option("--clips", type=click.IntRange(min=2), default=64, show_default=True, help="Test clips per measurement.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="torch threads (1 is fastest on a CPU shared with other jobs).")
@click.option("--workdir", type=click.Path(file_okay=False), default=str(ROOT / "runs" / "bench_conditional"),
              show_default=True, help="Run folders (replaced).")
@click.option("--lpips-backbone", type=str, default=None, help="LPIPS weights file [default: the weights cache].")
@click.option("--only", type=click.Choice(["i2v", "continue", "t2v"]), multiple=True, help="Run only these modes.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Train each model exactly this many steps instead of for --budget seconds (ablations).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config override for every model, as in train.py (repeatable), e.g. --set D.video_diffs=false.")
@click.option("--tag", type=str, default="", help="Suffix of the results file name (ablations).")
@click.option("--markdown/--no-markdown", default=True, show_default=True, help="Refresh BENCHMARKS.md.")
def cli(budget, clips, threads, workdir, lpips_backbone, only, steps, overrides, tag, markdown):
    from gan.cli_utils import parse_overrides
    import shutil
    torch.set_num_threads(threads)
    t_start = time.time()
    log = lambda m: click.echo(m, err=True)
    lpips, label = perceptual(lpips_backbone)
    random_backbone = "RANDOM" in label
    log(f"LPIPS: {label}")
    wanted = set(only) or {"i2v", "continue", "t2v"}
    jobs = [j for j in JOBS if j[0].split("_")[0] in wanted]
    work = Path(workdir)
    training: Dict[str, Dict] = {}
    for name, config, over in jobs:
        out = work / name
        shutil.rmtree(out, ignore_errors=True)
        over = _merge(parse_overrides(overrides), over)
        over = _merge(over, {"cond": {"lpips_random_backbone": random_backbone, "lpips_backbone": lpips_backbone}})
        if steps:
            log(f"training {name} from {config} for {steps} steps")
            training[name] = train_steps(config, over, out, steps)
        else:
            log(f"training {name} from {config} for {budget:.0f} s")
            training[name] = train_for(config, over, out, budget, log)
    ck = lambda n: work / n / "checkpoints" / "latest.pt"
    results: Dict[str, Dict] = {}
    if "i2v" in training:
        log("measuring image-to-video")
        results["i2v"] = eval_i2v(ck("i2v"), clips, lpips)
    if "continue" in training:
        log("measuring continuation")
        results["continue"] = eval_continue(ck("continue"), clips, lpips)
    if "t2v" in training:
        log("measuring text-to-video")
        results["t2v"] = eval_text(ck("t2v"), ck("t2v_uncond") if "t2v_uncond" in training else None, clips)
        results["t2v"]["discriminators"] = eval_text_discriminators(ck("t2v"), max(clips, 128))
    args = " ".join(sys.argv[1:])
    doc = {"date": dt.date.today().isoformat(), "args": args, "budget_s": budget, "steps": steps, "lpips": label,
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": threads,
                       "torch": torch.__version__, "python": platform.python_version()},
           "training": training, "results": results, "total_s": time.time() - t_start}
    from bench.report import save_results
    path = save_results(doc, f"conditional-{doc['date']}{'-' + tag if tag else ''}", ROOT, render_section,
                        update_markdown if markdown else None)
    log(f"done in {(time.time() - t_start) / 60:.1f} min; wrote {path}")


if __name__ == "__main__":  # `python bench/conditional.py --render RESULTS.json` only re-renders the section
    if len(sys.argv) == 3 and sys.argv[1] == "--render":
        p = Path(sys.argv[2])
        update_markdown(ROOT / "BENCHMARKS.md", json.loads(p.read_text()), str(p.resolve().relative_to(ROOT)))
    else:
        cli()
