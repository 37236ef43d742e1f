"""The config fields left to 'auto' (data.channels 0, G.objects / G.backgrounds / loss.motion_weight -1, G.camera
'auto'), resolved where the data is not read. Where it is (a folder of videos), gan.data.infer_settings reads them
off the footage first and these fill what is left; a run saves the concrete values in its config.json."""
from __future__ import annotations

from typing import Any

Config = DataConfig = Any          # gan.config's dataclasses (read by attribute here; that module imports this one)


def is_builtin(source: str) -> bool:
    return source in ("digits", "shapes", "dots")


def resolved_channels(data: DataConfig) -> int:
    """data.channels with 0 (auto) resolved: grey for the grey built-ins ('digits', 'dots'), colour for the rest."""
    if data.channels == 0:
        return 1 if data.source in ("digits", "dots") else 3
    return data.channels


def resolved_camera(cfg: Config) -> str:
    """G.camera with 'auto' resolved where the data is not read: 'none' (infer_settings reads disk data)."""
    return "none" if cfg.G.camera == "auto" else cfg.G.camera


def resolved_backgrounds(cfg: Config) -> int:
    """G.backgrounds with -1 (auto) resolved where the data is not read: 0 for a moving camera, else 1."""
    if cfg.G.backgrounds == -1:
        return 0 if cfg.G.camera == "moving" else 1
    return cfg.G.backgrounds


# The scene G's motion matching weight when loss.motion_weight is -1: without it every clip stood still by step 1000
# on footage whose subject sits in the background's median (losses/motion.py; BENCHMARKS.md, "Camera footage").
SCENE_MOTION_WEIGHT = 1.0


def resolved_motion_weight(cfg: Config) -> float:
    """loss.motion_weight with -1 (auto) resolved: SCENE_MOTION_WEIGHT for the scene G, 0 for the others."""
    if cfg.loss.motion_weight == -1:
        return SCENE_MOTION_WEIGHT if resolved_camera(cfg) in ("static", "subject", "moving") else 0.0
    return float(cfg.loss.motion_weight)


def resolved_objects(cfg: Config) -> int:
    """G.objects with -1 (auto) resolved: the layered G with one sprite per object for the built-in 'digits'
    (separate objects on black), the synthesis G for everything else. Image/continue conditioning picks the
    synthesis G unless a config asks for layers (gan/networks/conditional.py: objects split off a flat background)."""
    if cfg.G.objects == -1:
        if cfg.data.source == "digits" and cfg.cond.mode in ("none", "text"):
            return cfg.data.num_objects
        return 0
    return cfg.G.objects
