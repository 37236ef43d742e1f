"""Where feature-network weights come from: the published files of the standard metrics, the cache folder,
downloads with a sha256 check, and the error that says exactly which file to put where.

The published FVD and FID numbers of StyleGAN-V / stylegan2-ada were computed with two TorchScript files:

- `i3d_torchscript.pt`: I3D (Kinetics-400), a TorchScript port of the tf.hub model used by the original
  FVD code. StyleGAN-V (`src/metrics/frechet_video_distance.py`) loads it from Dropbox.
- `inception-2015-12-05.pt`: InceptionV3, a TorchScript port of TensorFlow's `inception-2015-12-05.tgz`,
  used by stylegan2-ada-pytorch / stylegan3 for FID and KID; hosted on nvlabs-fi-cdn.

Neither project publishes a sha256 of these files, so none is hard-coded here (a made-up hash would reject
the genuine file). Instead every result records the sha256 of the file it used, so two runs can be checked
to be comparable. Pass `expected_sha256` (or set it below once you have verified a copy) to enforce one.

Nothing is downloaded unless asked (`download=True`, the CLI's `--download`, or an explicit URL).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from gan.errors import ReelganError, publish
from gan.weights import cache_root, sha256_of  # noqa: F401  (sha256_of: results name the file they used)


class MissingWeightsError(FileNotFoundError):
    """A feature network's weight file is not on disk (and was not downloaded)."""


class WeightsMismatchError(ReelganError, ValueError):
    """A weight file whose sha256 differs from the expected one."""


@dataclass(frozen=True)
class PublishedWeights:
    name: str                      # feature network id: 'i3d' or 'inception'
    filename: str                  # the file name the published code uses
    urls: Tuple[str, ...]          # known download locations, tried in order
    sha256: Optional[str]          # None: not published by the authors (the used file's hash is recorded)
    option: str                    # the CLI option that takes a path or URL
    used_by: str                   # who published numbers with it


I3D_WEIGHTS = PublishedWeights(
    name="i3d",
    filename="i3d_torchscript.pt",
    urls=("https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",),
    sha256=None,                   # unknown: StyleGAN-V publishes no checksum for this file
    option="--i3d-weights",
    used_by="StyleGAN-V FVD (fvd2048_16f / fvd2048_128f)",
)

INCEPTION_WEIGHTS = PublishedWeights(
    name="inception",
    filename="inception-2015-12-05.pt",
    urls=("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",),
    sha256=None,                   # unknown: stylegan2-ada publishes no checksum for this file
    option="--inception-weights",
    used_by="stylegan2-ada / stylegan3 / StyleGAN-V FID and KID",
)

PUBLISHED = {w.name: w for w in (I3D_WEIGHTS, INCEPTION_WEIGHTS)}


def weights_dir() -> Path:
    return cache_root() / "weights"


def _is_url(text: str) -> bool:
    return str(text).startswith(("http://", "https://"))


def missing_message(spec: PublishedWeights) -> str:
    target = weights_dir() / spec.filename
    return (f"{spec.name} weights not found: put {spec.filename} at {target} "
            f"(download it from {spec.urls[0]}; it is the file used by {spec.used_by}), "
            f"or pass {spec.option} PATH_OR_URL, or pass --download to fetch it into the cache now. "
            f"To test the pipeline without it, pass --random-features (numbers are NOT comparable to papers).")


def resolve_weights(spec: PublishedWeights, path: Optional[str] = None, download: bool = False,
                    expected_sha256: Optional[str] = None) -> Path:
    """A local file holding `spec`'s weights: `path` (file or URL), else the cache, else a download.

    Raises MissingWeightsError naming the file and the folder when nothing is found and downloading is off,
    and WeightsMismatchError when a known sha256 does not match.
    """
    expected = expected_sha256 or spec.sha256
    if path is not None and not _is_url(path):
        p = Path(path).expanduser()
        if not p.is_file():
            raise MissingWeightsError(f"{spec.name} weights file {p} does not exist. " + missing_message(spec))
        _check_hash(p, expected)
        return p
    target = weights_dir() / spec.filename
    if path is None and target.is_file():
        _check_hash(target, expected)
        return target
    if path is None and not download:
        raise MissingWeightsError(missing_message(spec))
    urls = (path,) if path is not None else spec.urls
    errors = []
    for url in urls:
        try:
            _download(url, target, expected)
            return target
        except (OSError, WeightsMismatchError) as e:
            errors.append(f"{url}: {e}")
    raise MissingWeightsError(f"could not download {spec.filename} ({'; '.join(errors)}). " + missing_message(spec))


def _check_hash(path: Path, expected: Optional[str]) -> None:
    if expected is None:
        return
    actual = sha256_of(path)
    if actual != expected.lower():
        raise WeightsMismatchError(f"{path} has sha256 {actual}, expected {expected}: the file is corrupt or a "
                                   f"different version; delete it and download it again")


def _download(url: str, target: Path, expected: Optional[str]) -> None:
    """Fetch `url` into `target` atomically (temp file in the same folder, hash check, rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, f)
        _check_hash(Path(tmp), expected)
        publish(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
