"""The one loader of sampling: a checkpoint (or exported G file) -> the EMA generator rebuilt from its own
config, the info the writers need, and its watermark. The file is read once; pass `state` when it was."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch

from gan import watermark as wm
from gan.checkpoint import CheckpointError, c_dim_of, generator_key, load, load_modules
from gan.conditioning.inputs import ConditionError
from gan.conditioning.pretrained import pretrained_text_encoder
from gan.conditioning.text import TextEncoder, build_text_encoder
from gan.config import Config
from gan.errors import ReelganError
from gan.networks import build_generator

OPTION_FOR_MODE = {"image": "--image", "continue": "--video", "text": "--prompt"}
MODE_WORDS = {"image": "image-to-video", "continue": "video continuation", "text": "text-to-video",
              "none": "unconditional generation"}


class SamplingError(ReelganError, ValueError):
    pass


def read(path: Union[str, Path], state: Optional[Dict] = None) -> Dict:
    """The checkpoint's contents: `state` when the caller read the file already, else one read."""
    return load(path, map_location="cpu") if state is None else state


def checkpoint_mode(path: Union[str, Path], state: Optional[Dict] = None) -> str:
    """cond.mode of a checkpoint's config ('none' for unconditional and pre-conditioning checkpoints)."""
    return str(read(path, state).get("config", {}).get("cond", {}).get("mode", "none"))


def check_mode(mode: str, wanted: str) -> None:
    """A clear error when the condition given does not match what the checkpoint was trained for."""
    if mode == wanted:
        return
    trained = f"this checkpoint was trained for {MODE_WORDS.get(mode, mode)} (cond.mode '{mode}')"
    if wanted == "none":
        raise ConditionError(f"{trained}: pass {OPTION_FOR_MODE.get(mode, '--image/--video/--prompt')}")
    hint = f"use {OPTION_FOR_MODE[mode]}" if mode in OPTION_FOR_MODE else "leave out --image/--video/--prompt"
    raise ConditionError(f"{trained}, not {MODE_WORDS[wanted]} ({OPTION_FOR_MODE[wanted]}): {hint}")


def load_generator(path: Union[str, Path], device="cpu", state: Optional[Dict] = None,
                   text_encoder: Optional[TextEncoder] = None) -> Tuple[torch.nn.Module, Dict]:
    """The EMA generator of any checkpoint, rebuilt from its own config, plus info: config, mode, c_dim,
    class_names, step and, for 'text', the text encoder (the saved built-in one, or `text_encoder`)."""
    ckpt = read(path, state)
    key = generator_key(ckpt, path)
    cfg = Config.from_checkpoint(ckpt["config"], path)
    mode = cfg.cond.mode
    c_dim = c_dim_of(ckpt, path)
    G = build_generator(cfg, c_dim)
    load_modules(ckpt, {key: G}, path)
    G = G.to(device).eval().requires_grad_(False)
    info = {"config": cfg, "mode": mode, "c_dim": ckpt.get("c_dim", 0), "step": ckpt.get("step"),
            "class_names": list(ckpt.get("class_names", [])), "text_encoder": None,
            "external_text_encoder": (ckpt.get("cond") or {}).get("external_text_encoder"),
            "weightmark": ckpt.get("weightmark")}
    if mode == "text":
        info["text_encoder"] = _text_encoder(ckpt, cfg, device, text_encoder)
    return G, info


def load_conditional(path: Union[str, Path], device="cpu", text_encoder: Optional[TextEncoder] = None,
                     state: Optional[Dict] = None) -> Tuple[torch.nn.Module, Dict]:
    """load_generator for a conditional checkpoint; an unconditional one is a clear error."""
    ckpt = read(path, state)
    if checkpoint_mode(path, ckpt) not in ("image", "continue", "text"):
        raise ConditionError(f"{path} is an unconditional checkpoint: generate without --image/--video/--prompt")
    G, info = load_generator(path, device, ckpt, text_encoder)
    if info["mode"] == "text":
        text_encoder_of(info)
    return G, info


def text_encoder_of(info: Dict) -> TextEncoder:
    """The text encoder a 'text' model samples with; a clear error when it was an external one not given."""
    if info["text_encoder"] is None:
        raise ConditionError(f"this model was trained with an external text encoder "
                             f"({info['external_text_encoder']}); pass the same one: "
                             f"generate(..., text_encoder=...)")
    return info["text_encoder"]


def _text_encoder(ckpt: Dict, cfg: Config, device, given: Optional[TextEncoder]) -> Optional[TextEncoder]:
    """The saved built-in encoder, or `given`; None for a model trained on an external one (see text_encoder_of)."""
    saved = ckpt.get("cond", {}) or {}
    if given is not None:
        if int(given.dim) != cfg.cond.text_dim:
            raise ConditionError(f"the text encoder gives {given.dim}-d embeddings; this model was "
                                 f"trained on {cfg.cond.text_dim}-d ones")
        return given
    pretrained = pretrained_text_encoder(cfg.cond, saved.get("pretrained_text_encoder"), device)   # 'minilm'
    if pretrained is not None:
        return pretrained
    if saved.get("text_encoder") is None:
        return None
    enc = build_text_encoder(cfg.cond, (), vocab=saved["text_vocab"])
    enc.load_state_dict(saved["text_encoder"])
    return enc.to(device).eval().requires_grad_(False)


def resolve_watermark(watermark, G, info: Dict, key_file: Optional[str] = None, user_id: Optional[int] = None,
                      log=None) -> Optional[wm.Watermarker]:
    """`watermark` as the samplers take it: wm.AUTO (the default: the model's mark, key from `key_file`,
    $REELGAN_WATERMARK_KEY or the config, else the public key; `user_id` in the payload), a Watermarker, or None
    (no mark). `log` gets a line saying which mark (or that there is none), and one naming the model's in-weights
    mark when it has one (reelgan-watermark mark-weights: there with --no-watermark too)."""
    inweights = info.get("weightmark")
    if inweights and log is not None:
        log(f"in-weights mark {inweights.get('scheme')}: {'public' if inweights.get('key_public') else 'private'} key "
            f"{inweights.get('key_fingerprint')} (in the model's weights, with or without the post-hoc mark; "
            f"{float(inweights.get('fresh_detected', 0)):.0%} of mark-weights' check clips carried it)")
    if watermark is None:
        if key_file is not None or user_id is not None:
            raise SamplingError("--no-watermark does not combine with --watermark-key / --watermark-user")
        if log is not None:
            log("watermark OFF (--no-watermark): these clips carry no invisible watermark")
        return None
    if isinstance(watermark, str):
        if watermark != wm.AUTO:
            raise SamplingError(f"watermark must be {wm.AUTO!r}, a Watermarker or None, got {watermark!r}")
        watermark = wm.for_generator(G, info["config"], key_file=key_file, user_id=user_id)
    if log is not None:
        log(watermark.describe())
    return watermark


def checkpoint_watermarker(path: Union[str, Path], key_file: Optional[str] = None,
                           user_id: Optional[int] = None, state: Optional[Dict] = None) -> wm.Watermarker:
    """The mark the samplers put on a checkpoint's outputs (wm.for_generator), without building the model."""
    ckpt = read(path, state)
    key = "G_ema" if "G_ema" in ckpt else "G"
    if key not in ckpt:
        raise CheckpointError(f"{path} holds no generator weights")
    return wm.for_generator(ckpt[key], Config.from_checkpoint(ckpt["config"], path), key_file=key_file, user_id=user_id)


MAX_SEEDS = 100_000       # one file per seed: more is a typo, not a request
MAX_SEED = 2 ** 63 - 1    # torch.Generator.manual_seed's range


def parse_seeds(text: str) -> List[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]; at most MAX_SEEDS seeds, each in [0, MAX_SEED]."""
    seeds: List[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                if hi - lo + 1 + len(seeds) > MAX_SEEDS:       # checked before building the list
                    raise SamplingError(f"--seeds {text!r} asks for {hi - lo + 1 + len(seeds)} clips; at most "
                                        f"{MAX_SEEDS} per run (e.g. --seeds 0-99)")
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except SamplingError:
            raise
        except (TypeError, ValueError):
            raise SamplingError(f"bad seed list {text!r}: use numbers and ranges like '0-3,7'") from None
    if not seeds or min(seeds) < 0 or max(seeds) > MAX_SEED:
        raise SamplingError(f"bad seed list {text!r}: need at least one seed, all in [0, 2**63)")
    if len(seeds) > MAX_SEEDS:
        raise SamplingError(f"--seeds {text!r} asks for {len(seeds)} clips; at most {MAX_SEEDS} per run")
    return seeds


def resolve_class(value: Optional[str], info: Dict) -> Optional[int]:
    """A class given as an index or a name -> index; checks it against the checkpoint."""
    c_dim, names = info["c_dim"], info["class_names"]
    if value is None:
        if c_dim > 0:
            raise SamplingError(f"this model is class-conditional: pass --class (0..{c_dim - 1}"
                                + (f" or one of {names}" if names else "") + ")")
        return None
    if c_dim == 0:
        raise SamplingError("--class was given but this model is unconditional")
    if value in names:
        return names.index(value)
    try:
        idx = int(value)
    except ValueError:
        raise SamplingError(f"unknown class {value!r}; choose 0..{c_dim - 1} or one of {names}") from None
    if not 0 <= idx < c_dim:
        raise SamplingError(f"class {idx} out of range 0..{c_dim - 1}")
    return idx
