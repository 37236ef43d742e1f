"""onnxruntime-web's WebGPU build for the in-browser player, obtained once from the npm registry and cached.

The WebAssembly build is vendored (static/browser/ort/, 11 MB); the WebGPU build adds 22 MB, so it is fetched on
first use instead, the way the pretrained weights are (gan/weights.py): the pinned npm tarball, its sha512 checked
against the registry's published integrity, the three files the page needs read out of it with their SHA-256
checked, written atomically under `cache_root()/ort-web/<version>/`. REELGAN_WEIGHTS_FETCH=0 forbids the download.
"""
from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from gan.errors import ReelganError, one_line
from gan.weights import cache_root, fetching_allowed, sha256_of, write_verified

VERSION = "1.22.0"               # the same release as the vendored WebAssembly build (static/browser/ort/MANIFEST)
TARBALL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{VERSION}.tgz"
INTEGRITY = "sha512-Ud/+EBo6mhuaQWt/OjaOk0iNWjXqJoeeMFr6xQEERZdIZH2OWpGzuujz7lfuOBjUa6TEE/sc4nb7Da5dNL34fg=="
FILES = {                        # package/dist/<name>: SHA-256
    "ort.webgpu.min.mjs": "e131e81c9324807e1e6f9103e8f8e936112827dcc9993cde9407a333b1f07ae0",
    "ort-wasm-simd-threaded.jsep.mjs": "1cbcba8f2c769c1eecbab66a1b1e55ef11704515bf4306373e3db3c37cf6dcd8",
    "ort-wasm-simd-threaded.jsep.wasm": "b45970d0632383a057c27ca5b660b216f8e00c17cf8db9f6207b5e4abc839368",
}
ENTRY = "ort.webgpu.min.mjs"


class OrtWebError(ReelganError):
    """The WebGPU build cannot be had (fetching off, registry unreachable, a file that fails its checksum)."""


def build_dir() -> Path:
    return cache_root() / "ort-web" / VERSION


def cached_build() -> Optional[Path]:
    """The cached build's folder when all its files are there with their pinned SHA-256, else None."""
    folder = build_dir()
    if not all((folder / name).is_file() for name in FILES):
        return None
    for name, digest in FILES.items():
        if sha256_of(folder / name) != digest:
            raise OrtWebError(f"{folder / name} has the wrong SHA-256 (corrupt or tampered): delete {folder} and "
                              f"start the studio with --backend webgpu again")
    return folder


def _download(folder: Path, say: Callable[[str], None]) -> Path:
    """The tarball, by `npm pack` where npm is installed (it honours the user's registry settings), else a plain
    HTTPS GET from the public registry; its sha512 must be the published integrity."""
    target = folder / f"onnxruntime-web-{VERSION}.tgz"
    npm = shutil.which("npm")
    if npm:
        say(f"  npm pack onnxruntime-web@{VERSION} ...")
        res = subprocess.run([npm, "pack", f"onnxruntime-web@{VERSION}", "--silent"], cwd=folder,
                             capture_output=True, text=True)
        if res.returncode != 0 and not target.is_file():
            say(f"  npm pack failed ({(res.stderr.strip().splitlines() or ['?'])[-1]}); trying {TARBALL}")
    if not target.is_file():
        say(f"  downloading {TARBALL} ...")
        with urllib.request.urlopen(TARBALL, timeout=120) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    h = hashlib.sha512()
    with open(target, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if "sha512-" + base64.b64encode(h.digest()).decode() != INTEGRITY:
        raise OrtWebError(f"onnxruntime-web-{VERSION}.tgz does not have the registry's published integrity "
                          f"(corrupt download or another package); nothing was cached")
    return target


def fetch_build(say: Optional[Callable[[str], None]] = None) -> Path:
    """The WebGPU build's folder, fetched and verified first if it is not cached."""
    say = say or (lambda text: None)
    found = cached_build()
    if found is not None:
        return found
    if not fetching_allowed():
        raise OrtWebError(f"onnxruntime-web {VERSION}'s WebGPU build is not cached and fetching is off "
                          f"(REELGAN_WEIGHTS_FETCH=0): allow it once, or use --backend wasm")
    say(f"fetching onnxruntime-web {VERSION}'s WebGPU build (22 MB, once) from the npm registry")
    folder = build_dir()
    try:
        with tempfile.TemporaryDirectory(prefix="reelgan-npm-") as tmp:
            tarball = _download(Path(tmp), say)
            with tarfile.open(tarball, "r:gz") as t:
                for name, digest in FILES.items():
                    member = t.extractfile(f"package/dist/{name}")
                    if member is None:
                        raise OrtWebError(f"{tarball.name} has no package/dist/{name}")
                    write_verified(member, folder / name, digest,
                                   f"onnxruntime-web@{VERSION}:dist/{name}")
    except (OSError, tarfile.TarError, KeyError) as e:
        raise OrtWebError(f"could not fetch onnxruntime-web {VERSION} from the npm registry ({one_line(e)}); "
                          f"use --backend wasm, or retry when the registry is reachable") from None
    except ReelganError as e:
        raise OrtWebError(str(e)) from None
    say(f"  cached in {folder}")
    return folder


def media_type(name: str) -> str:
    return "application/wasm" if name.endswith(".wasm") else "text/javascript"

