"""OpenVINO bf16 against reelgan's own fastest CPU path (PyTorch compiled bf16, FastSampler) and ONNX Runtime fp32,
streaming one video: frames/s side by side in one process, interleaved rounds of 2 s, 2 threads each. The runtimes
run the per-frame graph of `reelgan-export --split` with the video's per-video state computed once, as the
PyTorch sampler does. Is OpenVINO worth adding as a runtime? (bench/openvino_int8.py compared it with eager PyTorch
at one thread.) OpenVINO is not a reelgan dependency.

    pip install openvino                                               # 2026.4.1 measured
    PYTHONPATH=$PWD python bench/openvino_compiled.py lite 128         # config name, resolution (RGB)
"""
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.run import machine_info  # noqa: E402
from gan.config import load_config  # noqa: E402
from gan.networks import build_generator  # noqa: E402
from gan.onnx_export import export_onnx  # noqa: E402
from gan.sampling import FastSampler  # noqa: E402
from gan.sampling.onnx_runtime import OnnxGenerator  # noqa: E402


def main(name: str, resolution: int, rounds: int = 7, threads: int = 2) -> None:
    try:
        import openvino as ov
    except ImportError:
        sys.exit("bench/openvino_compiled.py needs OpenVINO: pip install openvino")
    torch.set_num_threads(threads)
    cfg = load_config(str(ROOT / "configs" / f"{name}.yaml"), {"data": {"resolution": resolution, "channels": 3}})
    torch.manual_seed(0)
    G = build_generator(cfg, 0).eval().requires_grad_(False)
    tmp = Path(tempfile.mkdtemp(prefix="reelgan-openvino-"))
    export_onnx(G, cfg, tmp / "G.onnx", split=True)
    og = OnnxGenerator(tmp / "G.onnx", threads=threads)
    video, frames = og.split
    core = ov.Core()
    ov_frames = core.compile_model(core.read_model(str(tmp / "G.frames.onnx")), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"})
    results = {}
    for batch in (1, 4):
        chunks = FastSampler(G, precision="bf16", compile=True, chunk=batch).render_chunks([0], None)
        feed = og.inputs([0], torch.arange(batch, dtype=torch.float64) + 100)
        names = [o.name for o in video.get_outputs()]
        state = dict(zip(names, video.run(names, {k: feed[k] for k in ("z", "psi")})))
        ffeed = {**state, **{k: feed[k] for k in ("codes", "anchor_offset", "t")}}
        calls = {"PyTorch compiled bf16": lambda: next(chunks), "OpenVINO bf16": lambda: ov_frames(ffeed),
                 "ONNX Runtime fp32": lambda: frames.run(["frames"], ffeed)}
        for call in calls.values():
            for _ in range(5):                                   # warm-up (and compile)
                call()
        fps = {k: [] for k in calls}
        for _ in range(rounds):
            for k, call in calls.items():
                t0, n = time.perf_counter(), 0
                while time.perf_counter() - t0 < 2:
                    call()
                    n += batch
                fps[k].append(n / (time.perf_counter() - t0))
        base = fps["PyTorch compiled bf16"]
        for k, v in fps.items():
            ratio = [a / b for a, b in zip(v, base)]
            results[f"b{batch} {k}"] = {"fps": {"median": statistics.median(v), "min": min(v), "max": max(v)},
                                        "x PyTorch compiled bf16": {"median": statistics.median(ratio),
                                                                    "min": min(ratio), "max": max(ratio)}}
            print(f"{batch} frame(s) per call  {k:24s} {statistics.median(v):7.1f} ({min(v):.1f}-{max(v):.1f}) frames/s"
                  f"  x{statistics.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})", flush=True)
    out = ROOT / "bench" / "results" / f"openvino_compiled-{dt.datetime.now().strftime('%Y-%m-%d-%H%M')}.json"
    out.write_text(json.dumps({"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine_info(),
                               "config": name, "resolution": resolution, "threads": threads, "rounds": rounds,
                               "openvino": ov.__version__, "results": results}, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
