"""Run logging: TensorBoard scalars and images, a JSONL log, a text log, sample GIFs. Rank 0 only."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np


class RunLogger:
    def __init__(self, outdir: Path, enabled: bool = True, resume: bool = False, resume_step: int = 0):
        """resume: append to the logs, after dropping every record past `resume_step` (the steps the
        resumed run will redo), so no step is ever logged twice."""
        self.out, self.enabled = Path(outdir), enabled
        self.tb = None
        if not enabled:
            return
        (self.out / "samples").mkdir(parents=True, exist_ok=True)
        if resume:
            drop_records_after(self.out / "log.jsonl", resume_step)
        from torch.utils.tensorboard import SummaryWriter
        self.tb = SummaryWriter(str(self.out / "tensorboard"), purge_step=resume_step + 1 if resume else None)
        self.jsonl = open(self.out / "log.jsonl", "a" if resume else "w")
        self.txt = open(self.out / "log.txt", "a" if resume else "w")
        self.t0 = time.time()

    def save_config(self, cfg, extra: Optional[Dict] = None) -> None:
        if not self.enabled:
            return
        d = cfg.to_dict()
        if extra:
            d["_run"] = extra
        (self.out / "config.json").write_text(json.dumps(d, indent=2, sort_keys=True))

    def text(self, msg: str) -> None:
        if not self.enabled:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.txt.write(f"[{stamp}] {msg}\n")
        self.txt.flush()
        from tqdm.auto import tqdm
        tqdm.write(msg)

    def scalars(self, step: int, seen: int, values: Dict[str, float]) -> None:
        if not self.enabled:
            return
        for k, v in values.items():
            self.tb.add_scalar(k, v, step)
        rec = {"step": step, "seen": seen, "time": round(time.time() - self.t0, 3)}
        rec.update({k: round(float(v), 6) for k, v in values.items()})
        self.jsonl.write(json.dumps(rec) + "\n")
        self.jsonl.flush()

    def video(self, step: int, frames: np.ndarray, fps: float,
              captions: Optional[List[List[str]]] = None) -> Optional[Path]:
        """The sample grid, uint8 [T, H, W, 3]: a GIF in samples/ and the same animated grid in TensorBoard
        (samples/fakes); `captions` (each cell's prompt or class, by grid row) as a table beside it."""
        if not self.enabled:
            return None
        from gan.video_io import write_gif
        path = self.out / "samples" / f"step_{step:07d}.gif"
        write_gif(path, frames, fps)
        self._grid("fakes", step, frames, fps, captions)
        return path

    def reals(self, frames: np.ndarray, fps: float, captions: Optional[List[List[str]]] = None) -> None:
        """The grid of real clips, once at step 0: samples/reals.gif and TensorBoard's samples/reals."""
        if not self.enabled:
            return
        from gan.video_io import write_gif
        write_gif(self.out / "samples" / "reals.gif", frames, fps)
        self._grid("reals", 0, frames, fps, captions)

    def _grid(self, name: str, step: int, frames: np.ndarray, fps: float, captions) -> None:
        from gan.training.media import caption_table, gif_summary
        # torch's add_video writes its GIF summary the same way (it needs moviepy only to encode).
        self.tb._get_file_writer().add_summary(gif_summary(f"samples/{name}", frames, fps), step)
        if captions:
            self.tb.add_text(f"samples/{name}_prompts", caption_table(captions), step)
        self.tb.flush()

    def close(self) -> None:
        if self.enabled:
            self.tb.close()
            self.jsonl.close()
            self.txt.close()


def drop_records_after(path: Path, step: int) -> int:
    """Rewrite the JSONL log at `path` without the records whose step is > `step` (atomically); returns
    how many were dropped. Lines that do not parse are kept as they are."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines(keepends=True):
        try:
            later = int(json.loads(line).get("step", -1)) > step
        except (ValueError, AttributeError, TypeError):
            later = False
        if later:
            dropped += 1
        else:
            kept.append(line if line.endswith("\n") else line + "\n")
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept))
        tmp.replace(path)
    return dropped
