"""OpenVINO against ONNX Runtime and PyTorch on one exported generator: frames/s of one 16-frame clip per call,
one intra-op thread each, interleaved per round, and the frame PSNR of each against PyTorch fp32 (random weights).
A probe for the int8 question (is there a runtime whose int8 pays where ONNX Runtime's does not?), not a
reelgan runtime: OpenVINO is not a dependency.

    pip install openvino                                           # 2026.4.1 measured
    PYTHONPATH=$PWD python bench/openvino_int8.py lite 128         # config name, resolution

OpenVINO compiles the exported fp32 graph with its f32 or bf16 inference precision, and the ONNX Runtime QDQ int8
graph (gan/sampling/onnx_runtime.py `quantize`, 4 calibration seeds) as int8, with f32 or bf16 between the int8 ops.
"""
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.onnx_int8 import psnr  # noqa: E402
from gan.config import load_config  # noqa: E402
from gan.networks import build_generator  # noqa: E402
from gan.onnx_export import export_onnx  # noqa: E402
from gan.sampling.onnx_runtime import OnnxGenerator, calibration_feeds, quantize  # noqa: E402
from gan.sampling.render import ClipRenderer  # noqa: E402


def main(name: str, resolution: int, frames: int = 16, rounds: int = 5) -> None:
    try:
        import onnxruntime as ort
        import openvino as ov
    except ImportError:
        sys.exit("bench/openvino_int8.py needs OpenVINO: pip install openvino")
    torch.set_num_threads(1)
    cfg = load_config(str(Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml"),
                      {"data": {"resolution": resolution}})
    torch.manual_seed(0)
    G = build_generator(cfg, 0).eval()
    tmp = Path(tempfile.mkdtemp(prefix="reelgan-openvino-"))
    export_onnx(G, cfg, tmp / "G.onnx")
    og = OnnxGenerator(tmp / "G.onnx", threads=1)
    quantize(tmp / "G.onnx", tmp / "q.onnx", calibration_feeds(og, range(10 ** 6, 10 ** 6 + 4)))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    ort_int8 = ort.InferenceSession(str(tmp / "q.onnx"), so, providers=["CPUExecutionProvider"])
    core = ov.Core()

    def openvino(path: Path, precision: str):
        c = core.compile_model(core.read_model(str(path)), "CPU", {
            "INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"})
        return lambda feed: c(feed)[c.output("frames")]

    def feeds(seed):
        return og.inputs([seed], torch.arange(frames, dtype=torch.float64))
    graphs = {"ort_fp32": lambda f: og.session.run(["frames"], f)[0],
              "ort_int8": lambda f: ort_int8.run(["frames"], f)[0],
              "ov_fp32": openvino(tmp / "G.onnx", "f32"), "ov_bf16": openvino(tmp / "G.onnx", "bf16"),
              "ov_int8": openvino(tmp / "q.onnx", "f32"), "ov_int8_bf16": openvino(tmp / "q.onnx", "bf16")}
    runs = {"torch_fp32": lambda s, r=ClipRenderer(G, chunk=frames, precision="fp32"): r.render([s], frames),
            "torch_bf16": lambda s, r=ClipRenderer(G, chunk=frames, precision="bf16"): r.render([s], frames)}
    runs.update({k: (lambda s, g=g: torch.from_numpy(g(feeds(s)))) for k, g in graphs.items()})
    ref = {s: runs["torch_fp32"](s) for s in (100, 101)}
    quality = {k: statistics.mean(psnr(f(s), ref[s]) for s in ref) for k, f in runs.items()}
    rates = {k: [] for k in runs}
    for f in runs.values():                                              # warm-up
        f(0)
    for r in range(rounds):
        for k, f in runs.items():
            t = time.perf_counter()
            f(r + 1)
            rates[k].append(frames / (time.perf_counter() - t))
    for k, v in rates.items():
        print(f"{name} {resolution} px {k:13s} {statistics.median(v):8.1f} ({min(v):.1f}-{max(v):.1f}) frames/s   "
              f"PSNR vs PyTorch fp32 {quality[k]:.1f} dB", flush=True)
    print(json.dumps({"openvino": ov.__version__, "fps_median_min_max": {
        k: [round(statistics.median(v), 1), round(min(v), 1), round(max(v), 1)] for k, v in rates.items()}}))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python bench/openvino_int8.py CONFIG RESOLUTION   (e.g. lite 128)")
    main(sys.argv[1], int(sys.argv[2]))
