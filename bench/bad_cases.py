"""A second round of hostile input for bench/bad_inputs.py --processes: each case a real process of the tree under
test, the user's files hashed before and after, a watchdog on time and memory. None of these is in tests/.

Verdicts: clear error (exit 2, one 'error:' line), handled (valid input done), traceback, unclear error, wrong
result (exit 0 on bad input, or a failure on good input), hang (past the time or memory watchdog), data lost
(a user's file changed or gone), security (a file's code ran: the marker file appeared).
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

TIME_LIMIT = 45.0             # seconds a case may run
MEMORY_LIMIT = 3 << 30        # bytes of resident memory a case may hold
TRAIN = ["train.py", "--config", "configs/tiny.yaml", "--no-progress"]
GEN = ["generate.py", "--checkpoint", "{u}/run/checkpoints/latest.pt"]
DS = ["-m", "gan.data.cli"]
WM = ["-m", "gan.watermark_cli"]
EXP = ["-m", "gan.export"]
MET = ["-c", "from gan.metrics.cli import metrics_main; metrics_main()"]     # the module has no __main__


class _Evil:
    """Unpickling this runs code: a checkpoint that does it must never be loaded (weights_only)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def build_world(root: Path, user: Path) -> None:
    """A tiny trained run and a gallery of odd files under `user`, made by the tree at `root`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    subprocess.run([sys.executable, *TRAIN, "--outdir", str(user / "run")], cwd=root, env=env, check=True,
                   capture_output=True)
    sys.path.insert(0, str(root))
    import torch
    from gan.video_io import write_mp4
    good = torch.load(user / "run" / "checkpoints" / "latest.pt", weights_only=True)
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    (user / "clips").mkdir()
    for k in range(3):
        write_mp4(user / "clips" / f"c{k}.mp4", clip, 8)
    from PIL import Image
    Image.fromarray(clip[0]).save(user / "still.png")
    (user / "notes.txt").write_text("the user's notes\n")
    (user / "empty").mkdir()
    (user / "txtonly").mkdir()
    (user / "txtonly" / "a.txt").write_text("hello")
    (user / "zero").mkdir()
    (user / "zero" / "v.mp4").write_bytes(b"")
    (user / "fifo").mkdir()
    os.mkfifo(user / "fifo" / "v.mp4")
    (user / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with zipfile.ZipFile(user / "evil.zip", "w") as z:                   # a member that climbs out
        buf = (user / "still.png").read_bytes()
        z.writestr("../../escaped.png", buf)
        z.writestr("v0/000.png", buf)
        z.writestr("v0/001.png", buf)
    (user / "binary.yaml").write_bytes(bytes(range(256)))
    (user / "list.yaml").write_text("- 1\n- 2\n")
    (user / "loop.yaml").write_text("base: loop.yaml\n")
    (user / "pytag.yaml").write_text(f"train: !!python/object/apply:os.system ['touch {user}/PWNED']\n")
    (user / "text.pt").write_text("not a checkpoint")
    with open(user / "evil.pt", "wb") as f:
        pickle.dump({"format_version": 2, "x": _Evil(user / "PWNED")}, f)
    torch.save([1, 2, 3], user / "list.pt")

    def edited(name, **changes):
        state = {k: v for k, v in good.items()}
        for key, value in changes.items():
            if "." in key:
                section, field = key.split(".")
                state["config"] = json.loads(json.dumps(state["config"]))
                state["config"][section][field] = value
            elif value is None:
                state.pop(key, None)
            else:
                state[key] = value
        torch.save(state, user / name)
    edited("fv_str.pt", format_version="2")
    edited("fv_99.pt", format_version=99)
    edited("no_gema.pt", G_ema=None, G=None)
    edited("cdim_neg.pt", c_dim=-5)
    edited("cdim_huge.pt", c_dim=10 ** 9)
    edited("zdim_huge.pt", **{"G.z_dim": 10 ** 8})
    edited("res_odd.pt", **{"data.resolution": 24})
    edited("fps_neg.pt", **{"data.fps": -16.0})
    edited("warp_huge.pt", **{"G.warp_grid": 10 ** 6})
    edited("key_unknown.pt", **{"G.bogus": 1})
    big = {k: v for k, v in good.items()}
    big["G_ema"] = {k: (v * 0 + 1e6 if v.is_floating_point() else v) for k, v in good["G_ema"].items()}
    torch.save(big, user / "big.pt")
    (user / "zero.key").write_bytes(b"")
    (user / "meta_bad").mkdir()
    write_mp4(user / "meta_bad" / "v.mp4", clip, 8)
    (user / "meta_bad" / "metadata.jsonl").write_text("{not json\n")
    (user / "meta_float").mkdir()
    write_mp4(user / "meta_float" / "v.mp4", clip, 8)
    (user / "meta_float" / "metadata.jsonl").write_text(json.dumps({"file": "v.mp4", "caption": "x", "label": 2.5}))
    (user / "meta_neg").mkdir()
    write_mp4(user / "meta_neg" / "v.mp4", clip, 8)
    (user / "meta_neg" / "metadata.jsonl").write_text(json.dumps({"file": "v.mp4", "caption": "x", "label": -1}))
    (user / "o_used").mkdir()
    (user / "o_used" / "seed0000.gif").write_bytes(b"user gif")
    (user / "o_png" / "seed0000").mkdir(parents=True)
    (user / "o_png" / "seed0000" / "000000.png").write_bytes(b"user frame")
    (user / "o_grid").mkdir()
    (user / "o_grid" / "grid_seeds0-1.mp4").write_bytes(b"user grid")
    (user / "stream.raw").write_bytes(b"user raw")
    (user / "report.json").write_text('{"mine": true}')
    (user / "ana").mkdir()
    (user / "ana" / "analysis.json").write_text('{"mine": true}')
    (user / "proj").mkdir()
    (user / "proj" / "projection.pt").write_bytes(b"user projection")
    (user / "run_samples" / "samples").mkdir(parents=True)
    (user / "run_samples" / "samples" / "reals.gif").write_bytes(b"user gif")
    (user / "run_tb" / "tensorboard").mkdir(parents=True)
    (user / "run_tb" / "tensorboard" / "events.mine").write_bytes(b"user events")
    (user / "marked.mp4").write_bytes((user / "clips" / "c0.mp4").read_bytes())


def _set(*kv):
    out = []
    for item in kv:
        out += ["--set", item]
    return [*TRAIN, "--dry-run", *out]


# (name, argv after the interpreter ({u}: the user folder, {w}: a scratch folder), expect 'error' or 'ok')
CASES = [
    # ---- training config: counts, types, floats --------------------------------------------------------
    ("set-batch-0", _set("train.batch=0"), "error"),
    ("set-batch-neg", _set("train.batch=-5"), "error"),
    ("set-batch-float-str", _set("train.batch=1e3"), "error"),
    ("set-steps-float", _set("train.steps=1e30"), "error"),
    ("set-steps-bigint", _set("train.steps=99999999999999999999999"), "error"),
    ("set-clip-frames-huge", _set("data.clip_frames=1000000"), "error"),
    ("set-strides-0", _set("data.strides=[0]"), "error"),
    ("set-zdim-huge", _set("G.z_dim=100000000"), "error"),
    ("set-wdim-huge", _set("G.w_dim=100000000"), "error"),
    ("set-motion-dim-huge", _set("G.motion_dim=1000000000"), "error"),
    ("set-time-features-huge", _set("G.time_features=1000000000"), "error"),
    ("set-warp-grid-huge", _set("G.warp_grid=1000000"), "error"),
    ("set-ema-nan", _set("train.ema_kimg=.nan"), "error"),
    ("set-ema-inf", _set("train.ema_kimg=.inf"), "error"),
    ("set-max-minutes-0", _set("train.max_minutes=0"), "error"),
    ("set-keep-neg", _set("train.keep_checkpoints=-1"), "error"),
    ("set-log-every-0", _set("train.log_every=0"), "error"),
    ("set-sample-seeds-huge", _set("train.sample_seeds=100000"), "error"),
    ("set-resolution-12", _set("data.resolution=12"), "error"),
    ("set-channels-2", _set("data.channels=2"), "error"),
    ("set-mode-bogus", _set("cond.mode=bogus"), "error"),
    ("set-section-scalar", _set("train=5"), "error"),
    ("set-batch-list", _set("train.batch=[1,2]"), "error"),
    ("set-precision-fp64", _set("train.precision=fp64"), "error"),
    ("set-metrics-no-list", _set("train.metrics_every=5"), "error"),
    ("set-best-not-metric", _set("train.best_metric=fid"), "error"),
    ("set-objects-huge", _set("G.objects=100000"), "error"),
    ("set-num-objects-huge", _set("data.num_objects=1000000"), "error"),
    ("set-text-tokens-huge", _set("cond.text_max_tokens=100000000"), "error"),
    ("set-augment-prob-nan", _set("loss.augment_prob=.nan"), "error"),
    ("set-r1-gamma-inf", _set("loss.r1_gamma=.inf"), "error"),
    ("set-fps-huge", _set("data.fps=1e300"), "error"),
    ("set-betas-nan", _set("train.betas=[.nan,0.9]"), "error"),
    ("set-ok-small", _set("train.batch=2", "data.resolution=16"), "ok"),
    # ---- training: files and folders ------------------------------------------------------------------
    ("config-a-folder", [*TRAIN[:1], "--config", "{u}/empty", "--dry-run"], "error"),
    ("config-binary", [*TRAIN[:1], "--config", "{u}/binary.yaml", "--dry-run"], "error"),
    ("config-a-list", [*TRAIN[:1], "--config", "{u}/list.yaml", "--dry-run"], "error"),
    ("config-base-loop", [*TRAIN[:1], "--config", "{u}/loop.yaml", "--dry-run"], "error"),
    ("config-python-tag", [*TRAIN[:1], "--config", "{u}/pytag.yaml", "--dry-run"], "error"),
    ("data-empty-folder", [*TRAIN, "--outdir", "{w}/t1", "--data", "{u}/empty"], "error"),
    ("data-text-files", [*TRAIN, "--outdir", "{w}/t2", "--data", "{u}/txtonly"], "error"),
    ("data-bad-zip", [*TRAIN, "--outdir", "{w}/t3", "--data", "{u}/bad.zip"], "error"),
    ("data-zero-byte-mp4", [*TRAIN, "--outdir", "{w}/t4", "--data", "{u}/zero"], "error"),
    ("data-only-a-fifo", [*TRAIN, "--outdir", "{w}/t5", "--data", "{u}/fifo"], "error"),
    ("outdir-a-file", [*TRAIN, "--outdir", "{u}/notes.txt"], "error"),
    ("outdir-user-samples", [*TRAIN, "--outdir", "{u}/run_samples"], "error"),
    ("outdir-user-tensorboard", [*TRAIN, "--outdir", "{u}/run_tb"], "error"),
    ("resume-not-a-run", [*TRAIN, "--outdir", "{u}/clips", "--resume"], "error"),
    ("device-cuda", [*TRAIN, "--outdir", "{w}/t6", "--device", "cuda"], "error"),
    ("device-empty", [*TRAIN, "--outdir", "{w}/t7", "--device", ""], "error"),
    ("steps-0-new-run", [*TRAIN, "--outdir", "{w}/t8", "--steps", "0"], "ok"),
    # ---- generate ----------------------------------------------------------------------------------------
    ("seeds-empty", [*GEN, "--outdir", "{w}/g", "--seeds", ""], "error"),
    ("seeds-negative", [*GEN, "--outdir", "{w}/g", "--seeds", "-1"], "error"),
    ("seeds-open-range", [*GEN, "--outdir", "{w}/g", "--seeds", "1-"], "error"),
    ("seeds-2-64", [*GEN, "--outdir", "{w}/g", "--seeds", "18446744073709551616"], "error"),
    ("seeds-spaces", [*GEN, "--outdir", "{w}/g1", "--seeds", "0, 1", "--frames", "2"], "ok"),
    ("frames-0", [*GEN, "--outdir", "{w}/g", "--frames", "0"], "error"),
    ("chunk-0", [*GEN, "--outdir", "{w}/g", "--chunk", "0"], "error"),
    ("chunk-huge", [*GEN, "--outdir", "{w}/g", "--seeds", "0", "--chunk", "100000000", "--frames", "100000000"],
     "error"),
    ("batch-huge", [*GEN, "--outdir", "{w}/g", "--seeds", "0-99999", "--batch", "1000000", "--chunk", "64"],
     "error"),
    ("class-on-unconditional", [*GEN, "--outdir", "{w}/g", "--class", "3"], "error"),
    ("format-webm", [*GEN, "--outdir", "{w}/g", "--format", "webm"], "error"),
    ("gen-outdir-a-file", [*GEN, "--outdir", "{u}/notes.txt", "--frames", "2"], "error"),
    ("ckpt-text-as-pt", ["generate.py", "--checkpoint", "{u}/text.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-pickled-code", ["generate.py", "--checkpoint", "{u}/evil.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-a-list", ["generate.py", "--checkpoint", "{u}/list.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-format-string", ["generate.py", "--checkpoint", "{u}/fv_str.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-format-99", ["generate.py", "--checkpoint", "{u}/fv_99.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-no-generator", ["generate.py", "--checkpoint", "{u}/no_gema.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-cdim-negative", ["generate.py", "--checkpoint", "{u}/cdim_neg.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-cdim-huge", ["generate.py", "--checkpoint", "{u}/cdim_huge.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-zdim-huge", ["generate.py", "--checkpoint", "{u}/zdim_huge.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-resolution-24", ["generate.py", "--checkpoint", "{u}/res_odd.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-fps-negative", ["generate.py", "--checkpoint", "{u}/fps_neg.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-warp-huge", ["generate.py", "--checkpoint", "{u}/warp_huge.pt", "--outdir", "{w}/g"], "error"),
    ("ckpt-unknown-key", ["generate.py", "--checkpoint", "{u}/key_unknown.pt", "--outdir", "{w}/g"], "error"),
    ("image-on-unconditional", [*GEN, "--outdir", "{w}/g", "--image", "{u}/still.png"], "error"),
    ("prompt-on-unconditional", [*GEN, "--outdir", "{w}/g", "--prompt", "a red circle"], "error"),
    ("watermark-key-empty", [*GEN, "--outdir", "{w}/g", "--watermark-key", "{u}/zero.key"], "error"),
    ("watermark-user-big", [*GEN, "--outdir", "{w}/g", "--watermark-user", "70000"], "error"),
    ("stream-to-user-file", [*GEN, "--stream", "--frames", "4", "--stream-to", "{u}/stream.raw"], "error"),
    ("stream-to-new-raw", [*GEN, "--stream", "--frames", "4", "--stream-to", "{w}/s.raw"], "ok"),
    ("labels-on-synthesis-G", [*GEN, "--outdir", "{w}/g", "--labels", "yolo"], "error"),
    ("fps-0", [*GEN, "--outdir", "{w}/g", "--fps", "0"], "error"),
    ("fps-inf", [*GEN, "--outdir", "{w}/g", "--fps", "inf"], "error"),
    ("truncation-negative", [*GEN, "--outdir", "{w}/g", "--truncation", "-1"], "error"),
    ("truncation-inf", [*GEN, "--outdir", "{w}/g", "--truncation", "inf"], "error"),
    ("gif-onto-user-gif", [*GEN, "--outdir", "{u}/o_used", "--seeds", "0", "--frames", "2", "--format", "gif"],
     "error"),
    ("png-onto-user-folder", [*GEN, "--outdir", "{u}/o_png", "--seeds", "0", "--frames", "2", "--format", "png"],
     "error"),
    ("grid-onto-user-grid", [*GEN, "--outdir", "{u}/o_grid", "--seeds", "0-1", "--frames", "2", "--format",
                             "grid"], "error"),
    ("gen-ok-gif", [*GEN, "--outdir", "{w}/g2", "--seeds", "3", "--frames", "3", "--format", "gif"], "ok"),
    # ---- export --------------------------------------------------------------------------------------------
    ("export-nested-new", [*EXP, "{u}/run/checkpoints/latest.pt", "{w}/a/b/G.pt"], "ok"),
    ("export-fp16-overflow-pt", [*EXP, "{u}/big.pt", "{w}/big16.pt", "--dtype", "fp16"], "error"),
    ("export-onto-itself", [*EXP, "{u}/run/checkpoints/latest.pt", "{u}/run/checkpoints/latest.pt", "--force"],
     "error"),
    ("export-pickled-code", [*EXP, "{u}/evil.pt", "{w}/e.pt"], "error"),
    ("export-cdim-huge", [*EXP, "{u}/cdim_huge.pt", "{w}/c.pt"], "error"),
    ("export-zdim-huge", [*EXP, "{u}/zdim_huge.pt", "{w}/z.pt"], "error"),
    # ---- datasets --------------------------------------------------------------------------------------------
    ("ds-export-num-0", [*DS, "export", "--out", "{w}/d0", "--num", "0"], "error"),
    ("ds-export-fps-nan", [*DS, "export", "--out", "{w}/d1", "--fps", "nan", "--num", "1"], "error"),
    ("ds-export-objects-huge", [*DS, "export", "--out", "{w}/d2", "--objects", "100000", "--num", "1"], "error"),
    ("ds-export-frames-huge", [*DS, "export", "--out", "{w}/d3", "--frames", "100000000", "--num", "1"],
     "error"),
    ("ds-export-onto-file", [*DS, "export", "--out", "{u}/notes.txt", "--num", "1"], "error"),
    ("ds-export-ok", [*DS, "export", "--out", "{w}/d4", "--num", "2", "--frames", "4", "--resolution", "16"],
     "ok"),
    ("ds-prepare-res-48", [*DS, "prepare", "{u}/clips", "{w}/p1", "--resolution", "48"], "error"),
    ("ds-prepare-into-src", [*DS, "prepare", "{u}/clips", "{u}/clips", "--resolution", "16"], "error"),
    ("ds-prepare-zip-climbs-out", [*DS, "prepare", "{u}/evil.zip", "{w}/p2", "--resolution", "16"], "ok"),
    ("ds-prepare-meta-not-json", [*DS, "prepare", "{u}/meta_bad", "{w}/p3", "--resolution", "16"], "error"),
    ("ds-prepare-label-float", [*DS, "prepare", "{u}/meta_float", "{w}/p4", "--resolution", "16"], "error"),
    ("ds-prepare-label-negative", [*DS, "prepare", "{u}/meta_neg", "{w}/p5", "--resolution", "16"], "error"),
    ("ds-info-fifo", [*DS, "info", "{u}/fifo"], "error"),
    ("ds-info-empty", [*DS, "info", "{u}/empty"], "error"),
    # ---- watermark -----------------------------------------------------------------------------------------
    ("wm-detect-missing", [*WM, "detect", "{u}/nowhere.mp4"], "error"),
    ("wm-detect-text", [*WM, "detect", "{u}/notes.txt"], "error"),
    ("wm-detect-empty-folder", [*WM, "detect", "{u}/empty"], "error"),
    ("wm-detect-max-frames-0", [*WM, "detect", "{u}/clips/c0.mp4", "--max-frames", "0"], "error"),
    ("wm-detect-threshold-nan", [*WM, "detect", "{u}/clips/c0.mp4", "--threshold", "nan"], "error"),
    ("wm-detect-fifo", [*WM, "detect", "{u}/fifo/v.mp4"], "error"),
    ("wm-embed-payload-hex", [*WM, "embed", "{u}/clips/c0.mp4", "{w}/m1.mp4", "--payload", "zzzz"], "error"),
    ("wm-embed-payload-long", [*WM, "embed", "{u}/clips/c0.mp4", "{w}/m2.mp4", "--payload",
                               "1234567890123456789"], "error"),
    ("wm-embed-onto-user-file", [*WM, "embed", "{u}/clips/c0.mp4", "{u}/marked.mp4"], "error"),
    ("wm-embed-fps-huge", [*WM, "embed", "{u}/clips/c0.mp4", "{w}/m3.mp4", "--fps", "1e308"], "error"),
    ("wm-embed-avi", [*WM, "embed", "{u}/clips/c0.mp4", "{w}/m4.avi"], "error"),
    ("wm-embed-in-is-out", [*WM, "embed", "{u}/clips/c1.mp4", "{u}/clips/c1.mp4", "--force"], "error"),
    ("wm-embed-ok", [*WM, "embed", "{u}/clips/c0.mp4", "{w}/m5.mp4", "--payload", "1234abcd0007"], "ok"),
    # ---- metrics, analysis, projection ---------------------------------------------------------------------
    ("metrics-num-1", [*MET, "--data", "digits", "--resolution", "16", "--metrics", "fvd-offline", "--num", "1"],
     "error"),
    ("metrics-resolution-huge", [*MET, "--data", "digits", "--resolution", "100000", "--metrics",
                                 "fvd-offline", "--num", "4"], "error"),
    ("metrics-out-onto-user-file", [*MET, "--data", "digits", "--resolution", "16", "--metrics", "fvd-offline",
                                    "--num", "4", "--quiet", "--out", "{u}/report.json"], "error"),
    ("analyze-frames-huge", ["-c", "from gan.analysis.cli import analyze_main; analyze_main()", "--data",
                             "digits", "--resolution", "16", "--num", "2", "--frames", "1000000000"], "error"),
    ("analyze-out-onto-user-report", ["-c", "from gan.analysis.cli import analyze_main; analyze_main()", "--data",
                                      "digits", "--resolution", "16", "--num", "2", "--quiet", "--out", "{u}/ana"],
     "error"),
    ("project-missing-video", ["-m", "gan.projector", "{u}/nowhere.mp4", "--checkpoint",
                               "{u}/run/checkpoints/latest.pt", "--outdir", "{w}/pr"], "error"),
    ("project-steps-huge", ["-m", "gan.projector", "{u}/clips/c0.mp4", "--checkpoint",
                            "{u}/run/checkpoints/latest.pt", "--outdir", "{w}/pr", "--steps", "1000000000",
                            "--lpips-weight", "0"], "error"),
    ("project-lr-nan", ["-m", "gan.projector", "{u}/clips/c0.mp4", "--checkpoint", "{u}/run/checkpoints/latest.pt",
                        "--outdir", "{w}/pr", "--lr", "nan", "--lpips-weight", "0"], "error"),
    ("project-onto-user-projection", ["-m", "gan.projector", "{u}/clips/c0.mp4", "--checkpoint",
                                      "{u}/run/checkpoints/latest.pt", "--outdir", "{u}/proj", "--steps", "2",
                                      "--lpips-weight", "0"], "error"),
]


def _rss(pid: int) -> int:
    import psutil
    try:
        p = psutil.Process(pid)
        return sum(c.memory_info().rss for c in [p, *p.children(recursive=True)])
    except psutil.Error:
        return 0


def run_case(root: Path, user: Path, work: Path, argv, expect: str, hashes) -> tuple:
    """(verdict, exit status, last stderr line) of one case as a real process under the watchdog."""
    args = [a.replace("{u}", str(user)).replace("{w}", str(work)) for a in argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(root)}
    before = hashes(user)
    marker = user / "PWNED"
    p = subprocess.Popen([sys.executable, *args], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, stdin=subprocess.DEVNULL)
    t0, killed = time.time(), None
    while p.poll() is None:
        if time.time() - t0 > TIME_LIMIT:
            killed = f"still running after {TIME_LIMIT:.0f} s"
        elif _rss(p.pid) > MEMORY_LIMIT:
            killed = f"over {MEMORY_LIMIT >> 30} GiB of memory"
        if killed:
            import psutil
            for c in psutil.Process(p.pid).children(recursive=True):
                c.kill()
            p.kill()
            break
        time.sleep(0.1)
    out, err = p.communicate()
    after = hashes(user)
    tail = killed or (err.strip().splitlines() or [""])[-1][:160]
    if marker.exists():
        marker.unlink()
        return "security", p.returncode, "a file's code ran"
    if any(after.get(k) != v for k, v in before.items()):
        return "data lost", p.returncode, tail
    if killed:
        return "hang", p.returncode, tail
    if "Traceback" in err or p.returncode not in (0, 1, 2):
        return "traceback", p.returncode, tail
    if expect == "ok":
        return ("handled" if p.returncode == 0 else "wrong result"), p.returncode, tail
    if p.returncode == 0:
        return "wrong result", 0, (out.strip().splitlines() or [""])[-1][:160]
    lines = [ln for ln in err.splitlines() if ln.startswith("error") or ": error: " in ln]   # detect: per file
    if len(lines) != 1 or lines[0].rstrip().endswith(":"):
        return "unclear error", p.returncode, tail
    return "clear error", p.returncode, tail
