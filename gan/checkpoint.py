"""Checkpoints as plain data: state dicts of unwrapped, uncompiled modules, the config as plain
types, counters, RNG states and a format version. Written atomically (temp file + fsync + rename),
so a kill at any moment leaves the previous checkpoint intact. Loaded with weights_only=True. Exported generators
may also be safetensors files (the config as JSON in the header)."""
from __future__ import annotations

import json
import os
import pickle
import random
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple, Union

import numpy as np
import torch

from gan import __version__
from gan.errors import ReelganError, disk_full, publish
from gan.writes import held_signals, temp_file_beside

# The checkpoint format. 2 (reelgan 0.2.0): the config holds every field of gan/config.py as it is, and nothing
# fills in keys a file lacks with older behaviours. Files of an older format are refused (check_format).
FORMAT_VERSION = 2
LAST_RELEASE_READING = {1: "0.1.0"}      # older format -> the last reelgan release that reads it


class CheckpointError(ReelganError, RuntimeError):
    pass


class OldFormatError(CheckpointError):
    """A checkpoint of an older format, which this release no longer reads."""


def check_format(version: Any, what: Union[str, Path]) -> None:
    """Raise a one-line CheckpointError unless `version` is FORMAT_VERSION: an older format names the last
    release that reads it, a newer one asks for an upgrade."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{what} has no valid format_version ({version!r}): not a reelgan checkpoint")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{what} has format {version}, newer than this reelgan {__version__} "
                              f"(format {FORMAT_VERSION}); upgrade reelgan")
    if version < FORMAT_VERSION:
        release = LAST_RELEASE_READING[version]
        raise OldFormatError(f"{what} has checkpoint format {version}, which reelgan {__version__} no longer reads "
                             f"(it reads format {FORMAT_VERSION}); the last release that reads it is reelgan "
                             f"{release}: use the file there (`pip install reelgan=={release}` in another environment) "
                             f"or train the model again with this release")


class NonFiniteError(CheckpointError):
    """Weights or optimizer moments hold NaN/Inf: such a state is never written, nor loaded to sample."""


def nonfinite(obj: Any, prefix: str = "") -> List[Tuple[str, int]]:
    """(dotted key, count) of every floating-point tensor in `obj` (nested dicts/lists) holding NaN/Inf."""
    if torch.is_tensor(obj):
        if obj.is_floating_point() or obj.is_complex():
            bad = int((~torch.isfinite(obj)).sum())
            return [(prefix, bad)] if bad else []
        return []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    out: List[Tuple[str, int]] = []
    for k, v in items:
        out += nonfinite(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def check_finite(obj: Any, what: str) -> None:
    """Raise NonFiniteError naming how many values of `what` are NaN/Inf and where the first one is."""
    bad = nonfinite(obj)
    if bad:
        total = sum(n for _, n in bad)
        raise NonFiniteError(f"{what} holds {total} non-finite (NaN/Inf) values in {len(bad)} tensors, "
                             f"first in '{bad[0][0]}'")


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The plain module behind DDP / torch.compile wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module


def rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
            "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2])}


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(int(v) for v in state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"]))


def save_atomic(obj: Dict[str, Any], path: Union[str, Path]) -> None:
    """Write `obj` to `path` atomically with the umask's permissions; a non-finite tensor anywhere in it
    raises NonFiniteError before anything is written."""
    path = Path(path)
    check_finite(obj, f"the state to save as {path}")
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(fd: int, tmp: str) -> None:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
    _write_then_publish(path, write, "then run again (a training run: --resume)")


def _write_then_publish(path: Path, write: Callable[[int, str], None], hint: str) -> None:
    """write(fd, tmp) into a temp file beside `path`, then rename it over `path`; on any failure the temp file goes
    and a full disk is one line (ending in `hint`)."""
    try:
        with temp_file_beside(path, path.name + ".", ".tmp") as (fd, tmp), held_signals():
            write(fd, tmp)                         # a stop signal waits for the file: it is published whole
            publish(tmp, path)
    except BaseException as e:
        full = disk_full(e, path, hint)
        if full is not None:
            raise full from None
        raise


# ---- generator files: export, best.pt and the Hub folder hold the same fields ---------------------------

GENERATOR_KIND = "reelgan-generator"
SAFETENSORS_META = ("format_version", "kind", "config", "c_dim", "class_names", "step", "weights_dtype", "cond",
                    "weightmark")
TEXT_PREFIX = "cond.text_encoder."          # a text model's built-in encoder weights beside G's in a tensor file


def no_cond(mode: str = "none") -> Dict[str, Any]:
    """The 'cond' entry of a model without a built-in text encoder."""
    return {"mode": mode, "text_encoder": None, "text_vocab": None, "external_text_encoder": None}


def generator_file(ckpt: Dict[str, Any], path: Union[str, Path] = "the checkpoint", dtype=None,
                   **extra: Any) -> Dict[str, Any]:
    """The generator-only contents of any checkpoint (a run state or a generator file): G_ema (or G), the config,
    c_dim, class names, step, the 'cond' entry (a text model's encoder and vocabulary) and the in-weights mark's
    record (gan/watermark_weights.py), so every file made from it samples as the run does. `dtype` stores
    floating-point weights in it; `extra`: more fields."""
    key = generator_key(ckpt, path)
    cast = (lambda v: v.to(dtype) if v.is_floating_point() else v) if dtype is not None else (lambda v: v)
    cond = dict(ckpt.get("cond") or no_cond(ckpt["config"].get("cond", {}).get("mode", "none")))
    if cond.get("text_encoder") is not None:
        cond["text_encoder"] = {k: v.clone() for k, v in cond["text_encoder"].items()}
    return {"format_version": FORMAT_VERSION, "kind": GENERATOR_KIND, "config": ckpt["config"],
            "c_dim": int(ckpt.get("c_dim", 0)), "class_names": [str(n) for n in ckpt.get("class_names", [])],
            "step": ckpt.get("step"), "cond": cond, "G_ema": {k: cast(v).clone() for k, v in ckpt[key].items()},
            **({"weightmark": dict(ckpt["weightmark"])} if ckpt.get("weightmark") else {}), **extra}


def shareable_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The config of a model file meant to be shared (export, Hub): it names no watermark key file, whose path is
    private and useless elsewhere (the key bytes are never in a config); the model id ignores this section, so the
    mark's payload is unchanged."""
    config = dict(config)
    config["watermark"] = {**config.get("watermark", {}), "key": ""}
    return config


def save_safetensors(payload: Dict[str, Any], path: Union[str, Path]) -> None:
    """A generator file as safetensors: payload['G_ema'] (and a built-in text encoder's weights, under TEXT_PREFIX)
    as the tensors, every other field of SAFETENSORS_META as JSON text in the header metadata (safetensors
    metadata is str -> str). Written atomically."""
    from safetensors.torch import save_file
    path = Path(path)
    check_finite(payload, f"the state to save as {path}")        # as save_atomic: e.g. fp16 overflow to Inf
    path.parent.mkdir(parents=True, exist_ok=True)
    cond = dict(payload.get("cond") or no_cond())
    tensors = {k: v.contiguous() for k, v in payload["G_ema"].items()}
    tensors.update({TEXT_PREFIX + k: v.contiguous() for k, v in (cond.pop("text_encoder", None) or {}).items()})
    meta = {k: json.dumps(cond if k == "cond" else payload[k]) for k in SAFETENSORS_META if k in payload}

    def write(fd: int, tmp: str) -> None:
        os.close(fd)
        save_file(tensors, tmp, metadata=meta)
    _write_then_publish(path, write, "then run again")


def _load_safetensors(path: Path) -> Dict[str, Any]:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"cannot read safetensors file {path}: {e}") from None
    if "config" not in meta or "format_version" not in meta:
        raise CheckpointError(f"{path} has no reelgan config in its metadata (export it with "
                              f"`reelgan-export CKPT OUT --format safetensors`)")
    try:
        ckpt = {k: json.loads(v) for k, v in meta.items() if k in SAFETENSORS_META}
    except ValueError as e:
        raise CheckpointError(f"{path}: its metadata is not the JSON reelgan-export writes ({e}); export the "
                              f"checkpoint again") from None
    text = {k[len(TEXT_PREFIX):]: v for k, v in state.items() if k.startswith(TEXT_PREFIX)}
    ckpt["G_ema"] = {k: v for k, v in state.items() if not k.startswith(TEXT_PREFIX)}
    if text:
        ckpt["cond"] = {**ckpt.get("cond", {}), "text_encoder": text}
    return ckpt


def _load_hub_folder(path: Path) -> Dict[str, Any]:
    """A Hub folder (gan/hub.py's save_pretrained: config.json of the wrapper's fields, model.safetensors of its
    modules 'G.*' and 'text_encoder.*') as a generator file's dict."""
    from safetensors.torch import load_file
    try:
        fields = json.loads((path / "config.json").read_text())
        state = load_file(str(path / "model.safetensors"))
    except Exception as e:
        raise CheckpointError(f"cannot read the Hub folder {path}: {e}") from None
    check_format(fields.get("format_version", 1), path)
    cond = dict(fields.get("cond") or no_cond(fields["reelgan_config"].get("cond", {}).get("mode", "none")))
    text = {k[len("text_encoder."):]: v for k, v in state.items() if k.startswith("text_encoder.")}
    if text:
        cond["text_encoder"] = text
    return {"format_version": fields["format_version"], "kind": GENERATOR_KIND, "config": fields["reelgan_config"],
            "c_dim": fields.get("c_dim", 0), "class_names": fields.get("class_names") or [], "step": fields.get("step"),
            "cond": cond, "G_ema": {k[2:]: v for k, v in state.items() if k.startswith("G.")}}


def load(path: Union[str, Path], map_location="cpu") -> Dict[str, Any]:
    """A checkpoint or exported generator file (torch .pt, .safetensors from reelgan-export, or a Hub folder) as
    a dict."""
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return _load_hub_folder(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give a checkpoint file (e.g. {path}/checkpoints/latest.pt) or "
                              f"a Hub folder (config.json + model.safetensors)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        ckpt = _load_safetensors(path)
        check_format(ckpt["format_version"], path)
        return ckpt
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty (0 bytes); it was truncated "
                              f"or never finished writing: use another checkpoint")
    try:
        with warnings.catch_warnings():                        # torch's pickle-protocol notes are not ours
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            raise CheckpointError(f"cannot read checkpoint {path}: it holds Python objects, not plain tensors and "
                                  f"numbers; reelgan never runs code from a file (use a reelgan checkpoint)") from None
        raise CheckpointError(f"cannot read checkpoint {path}: truncated, corrupt or not a PyTorch file") from None
    except Exception:  # truncated zip, random bytes, an OS error on a damaged file
        raise CheckpointError(f"cannot read checkpoint {path}: truncated, corrupt or not a PyTorch file") from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path} is not a reelgan checkpoint (no format_version)")
    check_format(ckpt["format_version"], path)
    return ckpt


def step_of(path: Path) -> int:
    """The step in a snapshot's name (step_0000250.pt -> 250); -1 for other names."""
    try:
        return int(path.stem.split("_", 1)[1]) if path.stem.startswith("step_") else -1
    except ValueError:
        return -1


def find_resumable(ckpt_dir: Union[str, Path], map_location="cpu"):
    """The newest checkpoint of a run folder that loads and is finite: (path, state, skipped), where
    `skipped` lists (path, reason) for every newer one passed over. latest.pt is tried first, then the
    step_*.pt snapshots from the newest. Raises CheckpointError when none is usable."""
    ckpt_dir = Path(ckpt_dir)
    candidates = [ckpt_dir / "latest.pt"] if (ckpt_dir / "latest.pt").exists() else []
    candidates += sorted(ckpt_dir.glob("step_*.pt"), key=step_of, reverse=True)
    skipped = []
    for path in candidates:
        try:
            state = load(path, map_location=map_location)
            if "step" not in state or "G" not in state:
                raise CheckpointError(f"{path} is not a training checkpoint (no step / G)")
            check_finite(state, str(path))
        except OldFormatError:                # not damage: the run's older snapshots are of that format too
            raise
        except CheckpointError as e:
            skipped.append((path, str(e)))
            continue
        return path, state, skipped
    if not candidates:
        raise CheckpointError(f"nothing to resume: {ckpt_dir} holds no latest.pt or step_*.pt; drop --resume "
                              f"to start a new run")
    reasons = "; ".join(f"{p.name}: {r}" for p, r in skipped)
    raise CheckpointError(f"nothing to resume: no checkpoint in {ckpt_dir} is usable ({reasons})")


def load_modules(state: Dict[str, Any], modules: Dict[str, torch.nn.Module], path: Union[str, Path]) -> None:
    """load_state_dict for each named module, with a one-line reason when the shapes or names differ."""
    for key, module in modules.items():
        if key not in state:
            raise CheckpointError(f"{path} has no '{key}' weights")
        try:
            module.load_state_dict(state[key])
        except RuntimeError as e:
            first = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e)[:200])
            raise CheckpointError(f"{path}: its '{key}' weights do not fit the model this config builds "
                                  f"({first[:200]}); use the config the checkpoint was trained with") from None


MAX_C_DIM = 100_000     # a condition size (classes, text embedding) no model needs more of


def c_dim_of(ckpt: Dict[str, Any], path: Union[str, Path]) -> int:
    """The checkpoint's condition size, checked (it sizes an embedding before any weight is read)."""
    c_dim = ckpt.get("c_dim", 0)
    if isinstance(c_dim, bool) or not isinstance(c_dim, int) or not 0 <= c_dim <= MAX_C_DIM:
        raise CheckpointError(f"{path}: its c_dim {c_dim!r} is not a condition size (an integer in "
                              f"0..{MAX_C_DIM}); use a checkpoint reelgan wrote")
    return c_dim


def generator_key(ckpt: Dict[str, Any], path: Union[str, Path]) -> str:
    """'G_ema' (or 'G') of a checkpoint to sample from, after checking it has a config and finite weights."""
    key = "G_ema" if "G_ema" in ckpt else "G"
    if key not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} holds no generator weights and config")
    check_finite(ckpt[key], f"{path} (its generator weights; the run diverged: sample from an earlier "
                            f"checkpoint)")
    return key


# ---- a training run: what the loop saves and restores -------------------------------------------


def run_state(config: Dict[str, Any], step: int, seen: int, modules: Dict[str, torch.nn.Module],
              optimizers: Dict[str, torch.optim.Optimizer], **extra: Any) -> Dict[str, Any]:
    """A training checkpoint as plain data: the unwrapped modules' and optimizers' state dicts, the config,
    counters, this process's RNG states, a format version, and `extra` (c_dim, class_names, augment, ...)."""
    state = {"format_version": FORMAT_VERSION, "config": config, "step": step, "seen": seen, **extra}
    state.update({k: unwrap(m).state_dict() for k, m in modules.items()})
    state.update({k: opt.state_dict() for k, opt in optimizers.items()})
    state["rng"] = rng_state()
    return state


def save_run(state: Dict[str, Any], ckpt_dir: Union[str, Path], keep: int) -> Path:
    """Write `state` as latest.pt and as the snapshot step_NNNNNNN.pt; keep the `keep` newest snapshots
    (0: all). Returns latest.pt's path."""
    ckpt_dir = Path(ckpt_dir)
    latest = ckpt_dir / "latest.pt"
    save_atomic(state, latest)
    save_atomic(state, ckpt_dir / f"step_{state['step']:07d}.pt")
    for old in (sorted(ckpt_dir.glob("step_*.pt"))[:-keep] if keep > 0 else []):
        old.unlink(missing_ok=True)
    return latest


def restore_run(state: Dict[str, Any], modules: Dict[str, torch.nn.Module],
                optimizers: Dict[str, torch.optim.Optimizer], path: Union[str, Path]) -> Tuple[int, int]:
    """Load a training checkpoint into the modules and optimizers and restore the RNG states; returns
    (step, seen). Optimizer moments come from the checkpoint, lr and betas from the optimizers as built
    (the config in force), so a resumed run can change them."""
    load_modules(state, modules, path)
    fresh = [(g["lr"], g["betas"]) for opt in optimizers.values() for g in opt.param_groups]
    try:
        for key, opt in optimizers.items():
            opt.load_state_dict(state[key])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: its optimizer state does not fit this model ({e}); use the config the "
                              f"run was trained with") from None
    for g, (lr, betas) in zip([g for opt in optimizers.values() for g in opt.param_groups], fresh):
        g["lr"], g["betas"] = lr, betas
    set_rng_state(state["rng"])
    return state["step"], state["seen"]
