"""torchrun with 2 CPU processes (gloo): both ranks train and end with identical weights."""
import json
import subprocess
import sys

from gan.checkpoint import load
from tests.conftest import ROOT


def test_torchrun_two_cpu_processes(tmp_path):
    out, report = tmp_path / "run", tmp_path / "report"
    report.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           str(ROOT / "tests" / "ddp_worker.py"), str(out), str(report)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (json.loads((report / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["g_checksum"] == r1["g_checksum"]
    ckpt = load(out / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 3 and ckpt["seen"] == 12                  # global batch 4 = 2 ranks x 2
    assert "identical G weights" in (out / "log.txt").read_text()
