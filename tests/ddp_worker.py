"""Run under torchrun by test_distributed.py: train the tiny config and record this rank's G weights."""
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gan.config import load_config  # noqa: E402
from gan.training import train  # noqa: E402

if __name__ == "__main__":
    outdir, report = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    cfg = load_config(str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"), {"train": {"steps": 3}})
    summary = train(cfg, outdir, progress=False)
    rank = int(os.environ["RANK"])
    (report / f"rank{rank}.json").write_text(json.dumps(summary))
