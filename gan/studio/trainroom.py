"""The training room: a run trained live in the browser, for students (`reelgan-studio --train`).

A `Trainer` thread drives the same loop as train.py (gan/training: `setup`, then `step(run)` and the default
hooks), so the run folder is an ordinary one (checkpoints, log, samples; `--resume` continues it). Between steps it
obeys the page: pause, single step, slow motion (a delay after each step), knobs (`Run.set_knob`). Every few steps,
and never for more than about VISUAL_SHARE of the training time, it renders what the page shows from a fixed batch
of real clips and fixed latents of G_ema: the clips, each D's logit on each clip, frame differences (what the video
D has to tell real motion from flicker by), and a diversity gauge (mean pairwise distance of the fakes over that of
the reals; a low ratio warns of mode collapse).

HTTP (JSON), polled by the page:
  GET  /train/state?since=N&visual=V  status, knobs, the curves' points from index N, the visuals if newer than V
  POST /train/control {"action": "pause" | "resume" | "step" | "delay", "seconds": s}
                      {"action": "knob", "name": <Run.set_knob's>, "value": v}   -> {"ok": true} | {"error": line}
"""
from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gan.errors import ReelganError, one_line
from gan.studio.broadcast import encode_jpeg
from gan.studio.player import reject_constant, read_body
from gan.studio.playback import StudioError, show
from gan.video_io import to_uint8

STATIC = Path(__file__).resolve().parent / "static"
CURVES = ("G/loss", "D/loss", "real/logit_image", "fake/logit_image_d", "real/logit_video", "fake/logit_video_d",
          "D/r1_image", "D/r1_video", "augment/p")
VISUAL_SHARE = 0.03          # at most this share of the wall time goes to the page's visuals
DIVERSITY_WARN = 0.3         # fakes' pairwise distance below this share of the reals': likely mode collapse
MAX_DELAY = 10.0
MAX_CONTROL = 4096           # bytes in one control request


def sheet(clips: np.ndarray) -> np.ndarray:
    """uint8 [B, T, H, W, 3] -> one picture, a row per clip, a column per frame: [B*H, T*W, 3]."""
    b, t, h, w, c = clips.shape
    return clips.transpose(0, 2, 1, 3, 4).reshape(b * h, t * w, c)


def frame_differences(video: torch.Tensor) -> torch.Tensor:
    """|x[t+1] - x[t]| of clips [B, T, C, H, W], scaled from [0, 2] to [-1, 1] for display."""
    return (video[:, 1:] - video[:, :-1]).abs() - 1


def mean_pairwise_distance(video: torch.Tensor) -> float:
    flat = video.detach().float().flatten(1)
    return float(torch.pdist(flat).mean()) if flat.shape[0] > 1 else 0.0


def data_url(picture: np.ndarray) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(picture, 92)).decode()


class Trainer:
    """One run trained in a thread, steered between steps. `start()`, then the controls from any thread;
    `stop()` ends it after the current step with a checkpoint (the thread closes the run)."""

    def __init__(self, cfg, outdir, resume: bool = False, device: str = "cpu",
                 clips: int = 4,                 # real and fake clips shown
                 visual_every: int = 10,         # visuals at most every this many steps (and within VISUAL_SHARE)
                 paused: bool = False, delay: float = 0.0):
        self.cfg, self.outdir, self.resume, self.device = cfg, str(outdir), resume, device
        self.clips, self.visual_every = clips, max(1, visual_every)
        self.paused, self.delay = paused, delay
        self.status, self.message = "starting", ""
        self.run = None
        self.history: List[Dict[str, float]] = []          # one entry per step: 'step', 't' and CURVES' values
        self.visual: Optional[Dict] = None
        self.visual_version = 0
        self._pending = 0                                   # single steps asked for while paused
        self._stop = False
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._visual_cost, self._last_visual = 0.0, 0.0
        self._fixed = None
        self._finished = False

    def prepare(self) -> "Trainer":
        """Set the run up in the calling thread (a bad config or run folder raises here); start() does it if not."""
        from gan.training.run import setup
        if self.run is None:
            self.run = setup(self.cfg, self.outdir, resume=self.resume, device=self.device, progress=False)
        return self

    # ---- controls (any thread) ----------------------------------------------------------------------------------
    def start(self) -> "Trainer":
        self._thread = threading.Thread(target=self._main, name="reelgan-trainer", daemon=True)
        self._thread.start()
        return self

    def pause(self, on: bool = True) -> None:
        with self._cond:
            self.paused, self._pending = on, 0
            self._cond.notify_all()

    def single_step(self) -> None:
        """While paused: train exactly one more step (a running run is paused first)."""
        with self._cond:
            self.paused = True
            self._pending += 1
            self._cond.notify_all()

    def set_delay(self, seconds) -> None:
        try:
            s = float(seconds)
        except (TypeError, ValueError, OverflowError):
            raise StudioError(f"slow motion: {show(seconds)} is not a number of seconds") from None
        if not 0 <= s <= MAX_DELAY:
            raise StudioError(f"slow motion: {show(seconds)} is out of range; choose 0 to {MAX_DELAY:g} s between "
                              f"steps")
        with self._cond:
            self.delay = s
            self._cond.notify_all()

    def set_knob(self, name: str, value) -> None:
        if self.run is None or self.status == "starting":
            raise StudioError("the run is still starting: change knobs once its first step is shown")
        self.run.set_knob(name, value)                      # waits for a running step; KnobError on bad input

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def join(self, timeout: Optional[float] = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def state(self, since: int = 0, visual: int = -1) -> Dict:
        run = self.run
        out = {"status": self.status, "message": self.message, "paused": self.paused, "delay": self.delay,
               "step": run.step if run else 0, "steps": self.cfg.train.steps, "outdir": self.outdir,
               "knobs": run.knobs() if run else None, "history": self.history[max(0, since):],
               "since": max(0, since), "visual_version": self.visual_version,
               "diversity_warn": DIVERSITY_WARN}
        if self.visual is not None and self.visual_version > visual:
            out["visual"] = self.visual
        return out

    # ---- the thread --------------------------------------------------------------------------------------------
    def _wait_turn(self) -> bool:
        """Block while paused (no single step pending); False once stopping."""
        with self._cond:
            while not self._stop and self.paused and self._pending == 0:
                self.status = "finished" if self._finished else "paused"
                self._cond.wait()
            if self._stop:
                return False
            if self.paused:
                self._pending -= 1
            self.status = "training"
            return True

    def _main(self) -> None:
        from gan import checkpoint as ckpt_io
        from gan.training.hooks import call_hooks, default_hooks
        from gan.training.loop import finish, step
        run = None
        try:
            run = self.prepare().run
            hooks = default_hooks(run)
            self._visualize(run)
            t0 = time.perf_counter()
            while self._wait_turn():
                if run.step >= self.cfg.train.steps or run.stop_reason is not None:
                    if not self._finished:          # train()'s end: the last checkpoint and samples
                        finish(run)
                    self._finished, self.status = True, "finished"
                    self.message = (f"reached train.steps={self.cfg.train.steps}" if run.stop_reason is None else
                                    run.stop_reason) + "; restart with --resume and a larger train.steps to go on"
                    with self._cond:
                        self.paused = True
                        self._pending = 0
                    continue
                stats = step(run)
                call_hooks(run, stats, hooks)
                entry = {"step": run.step, "t": time.perf_counter() - t0}
                entry.update({k: float(stats[k]) for k in CURVES if k in stats})
                self.history.append(entry)
                if self._visual_due(run):
                    self._visualize(run)
                if self.delay > 0:
                    with self._cond:
                        self._cond.wait_for(lambda: self._stop, timeout=self.delay)
            self.status = "stopping"
        except (FloatingPointError, ckpt_io.NonFiniteError) as e:
            where = f"the last good checkpoint is {run.last_checkpoint}" if run and run.last_checkpoint else \
                "no checkpoint was written yet"
            self.status, self.message = "error", f"stopped at step {run.step if run else 0}: {e}; {where}"
            if run is not None:
                run.logger.text(self.message)
                run.close()
            return
        except Exception as e:          # shown on the page; the server keeps running so the student can read it
            what = one_line(e) if isinstance(e, ReelganError) else f"{type(e).__name__}: {one_line(e)}"
            self.status, self.message = "error", what
            if run is not None:
                run.close()
            return
        latest = run.ckpt_dir / "latest.pt"
        if run.saved_step != run.step or not latest.exists():
            run.save()                                      # (a finished run saved its last step already)
        run.logger.text(f"training room stopped at step {run.step}; checkpoint {latest}")
        run.close()
        self.status, self.message = "stopped", f"stopped at step {run.step}; checkpoint {latest}"

    def _visual_due(self, run) -> bool:
        if run.step % self.visual_every != 0:
            return False
        # Keep the visuals' share of the time small on slow machines: wait cost / share since the last one.
        return time.perf_counter() - self._last_visual >= self._visual_cost / VISUAL_SHARE

    @torch.no_grad()
    def _visualize(self, run) -> None:
        t0 = time.perf_counter()
        with run.lock:
            if self._fixed is None:
                self._fixed = self._fixed_batch(run)
            batch, real_div = self._fixed
            loss = run.loss
            fake = run.G_ema(batch.z, batch.gen_c, batch.gen_times, batch.motion)
            scores = {}
            for side, video, times in (("real", batch.real, batch.times), ("fake", fake, batch.gen_times)):
                logits = loss.score_clips(video, times, loss.condition(batch, "Dmain", side))
                scores[side] = {k: v.float().cpu().tolist() for k, v in logits.items()}
            diversity = mean_pairwise_distance(fake) / max(real_div, 1e-8)
            diffs = frame_differences(torch.cat([batch.real[:1], fake[:1]]))
            self.visual = {
                "step": run.step, "frames": int(fake.shape[1]), "clips": int(fake.shape[0]),
                "real": data_url(sheet(to_uint8(batch.real))), "fake": data_url(sheet(to_uint8(fake))),
                "diffs": data_url(sheet(to_uint8(diffs))), "scores": scores, "diversity": diversity,
                "video_on": bool(loss.video_on)}
            self.visual_version += 1
        self._visual_cost = time.perf_counter() - t0
        self._last_visual = time.perf_counter()

    def _fixed_batch(self, run):
        """The shown reals (the first clips of the data) and G_ema's latents, fixed for the whole run."""
        ds = run.dataset
        ds.set_epoch(0)
        n = min(self.clips, len(ds))
        data = torch.utils.data.default_collate([ds[i] for i in range(n)])
        data = {k: v.to(run.device) if torch.is_tensor(v) else v for k, v in data.items()}
        gen = torch.Generator().manual_seed(self.cfg.train.seed + 7919)
        batch = run.mode.make_batch(run.G_ema, data, run.device, gen)
        return batch, mean_pairwise_distance(batch.real)


def knob_value(value):
    """A knob's value from the page, bounded before Run.set_knob converts it: None, a number (|v| < 2**64) or
    the text of one (the page sends the input's text)."""
    if value is None or (isinstance(value, str) and len(value) <= 40) or isinstance(value, float) or \
            (isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 64):
        return value
    raise StudioError(f"a knob's value must be a number, got {show(value)}")


class TrainRoom:
    name, title = "train", "reelgan studio: training room"

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def routes(self) -> list:
        return [Route("/train", self.page), Route("/train/state", self.get_state),
                Route("/train/control", self.control, methods=["POST"])]

    async def page(self, request: Request) -> Response:
        return HTMLResponse((STATIC / "train.html").read_text())

    async def get_state(self, request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", 0))
            visual = int(request.query_params.get("visual", -1))
        except ValueError:
            return JSONResponse({"error": "since and visual must be whole numbers"}, status_code=400)
        return JSONResponse(self.trainer.state(since, visual))

    async def control(self, request: Request) -> Response:
        body = await read_body(request, MAX_CONTROL)
        if body is None:
            return JSONResponse({"error": f"a control is at most {MAX_CONTROL} bytes"}, status_code=413)
        try:
            msg = json.loads(bytes(body), parse_constant=reject_constant)
            action = msg.get("action") if isinstance(msg, dict) else None
            t = self.trainer
            if action == "pause":
                t.pause(True)
            elif action == "resume":
                t.pause(False)
            elif action == "step":
                t.single_step()
            elif action == "delay":
                t.set_delay(msg.get("seconds"))
            elif action == "knob":
                # set_knob waits for a running step: off the event loop, so the page stays answered
                await asyncio.get_running_loop().run_in_executor(None, t.set_knob, msg.get("name"),
                                                                 knob_value(msg.get("value")))
            else:
                raise StudioError(f"unknown action {action!r}; choose pause, resume, step, delay or knob")
        except ReelganError as e:
            return JSONResponse({"error": one_line(e)}, status_code=400)
        except (ValueError, RecursionError):
            return JSONResponse({"error": "the control is not JSON with finite numbers"}, status_code=400)
        return JSONResponse({"ok": True})

    async def startup(self) -> None:
        if not self.trainer.alive and self.trainer._thread is None:
            self.trainer.start()

    async def shutdown(self) -> None:
        """Stop after the current step; the thread writes a checkpoint and closes the run before this returns."""
        self.trainer.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.trainer.join)
