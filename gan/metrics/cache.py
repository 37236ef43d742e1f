"""On-disk cache of real-data feature statistics.

The key is everything the statistics depend on: the dataset's identity (built-in parameters and seed, or a
path plus a hash of its file listing), the clip length, stride and resolution, the number of clips, the
selection protocol and seed, and the feature network's identity (weights hash, input size). It is hashed
into the file name, and the full key is stored in the file and compared on load, so a changed clip length
or resolution can never pick up stale statistics.

Files (`<cache>/stats/<dataset>-<features>-<res>px-<T>f-<hash>.npz`) hold the exact float64 sums and the
raw float32 features, so a cached run gives bit-identical numbers to the run that wrote it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from gan.errors import publish
from gan.metrics.distances import FeatureStats
from gan.metrics.published_weights import cache_root

logger = logging.getLogger(__name__)


def stats_key(dataset: Dict, spec: Dict, num: int, seed: int, features: Dict, protocol: str) -> Dict:
    return {"dataset": dataset, "clips": spec, "num": int(num), "selection_seed": int(seed),
            "features": features, "protocol": protocol}


def _canonical(key: Dict) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def stats_path(key: Dict) -> Path:
    digest = hashlib.sha256(_canonical(key).encode()).hexdigest()[:20]
    ds = key["dataset"]
    tag = ds.get("name") or Path(ds.get("path", "data")).name
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{tag}-{key['features']['name']}")
    return cache_root() / "stats" / f"{tag}-{key['clips']['resolution']}px-{key['clips']['frames']}f-{digest}.npz"


def load_stats(key: Dict) -> Optional[FeatureStats]:
    path = stats_path(key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != _canonical(key):        # a hash collision or a hand-copied file
                logger.warning(f"ignoring {path}: it was made for another configuration")
                return None
            stats = FeatureStats(keep_features=True)
            stats.count = int(z["count"])
            stats._sum, stats._outer = z["sum"].astype(np.float64), z["outer"].astype(np.float64)
            stats._features = [z["features"]]
    except (OSError, KeyError, ValueError) as e:
        logger.warning(f"ignoring unreadable statistics file {path}: {e}")
        return None
    return stats


def save_stats(key: Dict, stats: FeatureStats) -> Path:
    path = stats_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, key=np.array(_canonical(key)), count=np.array(stats.count), sum=stats._sum,
                 outer=stats._outer, features=stats.features())
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
