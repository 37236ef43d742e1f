"""The command-line contract: --help, --dry-run, errors with clear messages."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import generate
import train
from gan.data.cli import main as dataset_cli
from tests.conftest import ROOT


@pytest.mark.parametrize("cmd, words", [
    (train.cli, ["--config", "--data", "--outdir", "--steps", "--resume", "--device", "--dry-run"]),
    (generate.cli, ["--checkpoint", "--outdir", "--seeds", "--frames", "--fps", "--format", "--truncation",
                    "--class", "--device"]),
    (dataset_cli, ["export", "info"]),
])
def test_help_lists_the_contract(cmd, words):
    res = CliRunner().invoke(cmd, ["--help"])
    assert res.exit_code == 0
    for w in words:
        assert w in res.output


def test_dry_run_prints_the_resolved_config():
    res = CliRunner().invoke(train.cli, ["--config", str(ROOT / "configs" / "tiny.yaml"), "--steps", "7",
                                         "--set", "loss.r1_gamma=0.5", "--dry-run"])
    assert res.exit_code == 0, res.output
    cfg = json.loads(res.output[res.output.index("{"): res.output.rindex("}") + 1])
    assert cfg["train"]["steps"] == 7 and cfg["loss"]["r1_gamma"] == 0.5 and cfg["data"]["resolution"] == 16


def test_no_argument_dry_run_is_the_cpu_default():
    res = CliRunner().invoke(train.cli, ["--dry-run"])
    cfg = json.loads(res.output[res.output.index("{"): res.output.rindex("}") + 1])
    assert cfg["data"]["source"] == "digits" and cfg["data"]["resolution"] == 64


def test_unknown_config_key_fails_with_its_name():
    res = CliRunner().invoke(train.cli, ["--set", "G.widht=3", "--dry-run"])
    assert res.exit_code != 0 and "G.widht" in res.output


def test_console_scripts_run_as_modules():
    for script in ("train.py", "generate.py"):
        res = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True)
        assert res.returncode == 0 and "Examples" in res.stdout


def test_generate_with_a_missing_or_foreign_checkpoint(tmp_path):
    bogus = tmp_path / "x.pt"
    bogus.write_bytes(b"not a checkpoint")
    res = CliRunner().invoke(generate.cli, ["--checkpoint", str(bogus), "--outdir", str(tmp_path)])
    assert res.exit_code == 2 and "cannot read checkpoint" in res.output
    res = CliRunner().invoke(generate.cli, ["--checkpoint", str(tmp_path / "none.pt"), "--outdir", str(tmp_path)])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_resume_continues_a_folder_run_with_its_own_config(tmp_path):
    """`train.py --outdir RUN --resume` and nothing else: the run's config.json (data folder and the settings read off
    it) is what continues, not the built-in default; --steps still overrides it."""
    from gan.checkpoint import load
    from gan.video_io import write_mp4
    from tests.test_scene import street
    data, run = tmp_path / "cam", tmp_path / "run"
    for s in range(3):
        write_mp4(data / f"v{s}.mp4", street(16, 64, seed=s)[0], fps=12, crf=12)
    first = CliRunner().invoke(train.cli, ["--config", str(ROOT / "configs" / "tiny.yaml"), "--data", str(data),
                                           "--outdir", str(run), "--steps", "2", "--no-progress",
                                           "--set", "data.clip_frames=3"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(train.cli, ["--outdir", str(run), "--resume", "--steps", "3", "--no-progress"])
    assert again.exit_code == 0, again.output
    state = load(run / "checkpoints" / "latest.pt")
    assert state["step"] == 3 and state["config"]["G"]["camera"] == "static"
    (run / "config.json").write_text("{ not json")
    broken = CliRunner().invoke(train.cli, ["--outdir", str(run), "--resume", "--steps", "4", "--no-progress"])
    assert broken.exit_code == 2 and "config.json is not a readable run config" in broken.output
    assert "Traceback" not in broken.output
