"""Count how reelgan answers hostile input (issue 18): clear errors, tracebacks, wrong results, data lost.

Runs every case of tests/test_bad_input.py plus the scenarios below against the tree at --root (default:
this one), in-process through click's CliRunner, and prints the counts and one line per case.

\b
  OMP_NUM_THREADS=1 python bench/bad_inputs.py                      # this tree
  OMP_NUM_THREADS=1 python bench/bad_inputs.py --root /tmp/base     # another checkout, same cases
  OMP_NUM_THREADS=1 python bench/bad_inputs.py --processes [--root /tmp/base]   # round 2: real processes
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import click

HERE = Path(__file__).resolve().parents[1]


def _classify(res, expect: str, changed: bool) -> str:
    out = res.output
    if changed:
        return "data lost"
    crashed = res.exception is not None and not isinstance(res.exception, SystemExit)
    if crashed or "Traceback" in out:
        return "traceback"
    if expect == "ok":
        return "handled" if res.exit_code == 0 else "wrong result"
    if res.exit_code == 0:
        return "wrong result"
    lines = [ln for ln in out.splitlines() if ln.lower().startswith("error")]
    if len(lines) != 1 or lines[0].rstrip().endswith(":") or "weights_only=False" in out:
        return "unclear error"
    return "clear error"


def processes(root: Path, only=()) -> None:
    """The second round (bench/bad_cases.py): every case a real process of the tree at `root`."""
    sys.path.insert(0, str(HERE / "bench"))
    import bad_cases
    work = Path(tempfile.mkdtemp(prefix="reelgan_bad2_"))
    user, scratch = work / "user", work / "scratch"
    user.mkdir()
    scratch.mkdir()
    bad_cases.build_world(root, user)
    hashes = lambda d: {str(p): _digest(p) for p in Path(d).rglob("*") if p.is_file()}   # noqa: E731
    results = []
    for name, argv, expect in bad_cases.CASES:
        if only and name not in only:
            continue
        verdict, code, tail = bad_cases.run_case(root, user, scratch, argv, expect, hashes)
        results.append((verdict, name, code, tail))
        print(f"{verdict:14s} {name:30s} exit {code}: {tail}", file=sys.stderr, flush=True)
    counts = {}
    for verdict, *_ in results:
        counts[verdict] = counts.get(verdict, 0) + 1
    click.echo(f"\n{root}: {len(results)} processes; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    shutil.rmtree(work, ignore_errors=True)


def _digest(p: Path) -> str:
    import hashlib
    return hashlib.sha256(p.read_bytes()).hexdigest()


@click.command(help=__doc__)
@click.option("--root", type=click.Path(exists=True, file_okay=False), default=str(HERE), show_default=True)
@click.option("--skip", multiple=True, help="Case names not to run (e.g. seeds-huge on a tree without the seed cap: "
                                            "it allocates ~800 GB); counted as 'skipped'.")
@click.option("--processes", "as_processes", is_flag=True,
              help="Run the second round instead (bench/bad_cases.py: real processes, watchdog on time and memory).")
@click.option("--only", multiple=True, help="--processes: these case names only.")
def main(root, skip, as_processes, only):
    root = Path(root).resolve()
    if as_processes:
        processes(root, only)
        return
    sys.path.insert(0, str(root))
    import torch
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("bad_cases", HERE / "tests" / "test_bad_input.py")
    T = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(T)              # its `import train, generate, gan...` resolve under --root
    work = Path(tempfile.mkdtemp(prefix="reelgan_bad_"))
    user = work / "user"
    user.mkdir()
    warnings.simplefilter("ignore")
    T.build_world(user)
    results = []

    def run(name, cmd, args, expect="error", env=None, watch=(user,)):
        if name in skip:
            results.append(("skipped", name, 0, ""))
            return
        before = T._hashes(*watch)
        res = T._invoke(cmd, [str(a).replace("{u}", str(user)) for a in args], env=env)
        after = T._hashes(*watch)                                   # a user file changed or removed (new outputs
        verdict = _classify(res, expect, any(after.get(k) != v for k, v in before.items()))  # are not loss)
        tail = (res.output.strip().splitlines() or [""])[-1][:150]
        results.append((verdict, name, res.exit_code, tail))
        print(f"{verdict:14s} {name:26s} exit {res.exit_code}: {tail}", file=sys.stderr, flush=True)

    for name, cmd, args, _ in T.CASES:
        run(name, cmd, args)
    # Scenarios: valid input that must work, and faults against a run.
    run("yaml-1e-4", T.train.cli, ["--config", user / "config_1e.yaml", "--dry-run"], expect="ok")
    run("set-1e-4", T.train.cli, ["--config", T.TINY, "--set", "train.g_lr=1e-4", "--dry-run"], expect="ok")
    run("analyze-5-clips", T.analyze_cli, ["--videos", user / "clips", "--dataset", "digits", "--objects", "2",
                                           "--quiet", "--annotate", "0"], expect="ok")
    tmp_torch = work / "torch_home"
    tmp_torch.mkdir()
    run("lpips-missing-train", T.train.cli, ["--config", root / "configs" / "i2v.yaml", "--set",
                                             "data.num_videos=8", "--outdir", work / "o_lp", "--no-progress"],
        env={"TORCH_HOME": str(tmp_torch)})
    run("lpips-0-temporal", T.train.cli, ["--config", root / "configs" / "continue.yaml", "--set",
                                          "cond.lpips_weight=0", "--set", "data.num_videos=8", "--steps", "1",
                                          "--set", "train.batch=2", "--set", "data.resolution=16",
                                          "--set", "train.sample_seeds=1", "--outdir", work / "o_l1",
                                          "--no-progress"], expect="ok", env={"TORCH_HOME": str(tmp_torch)})
    from PIL import Image
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 100                                   # the 32 px frames count as bombs
    run("bomb-dataset-info", T.dataset_cli, ["info", user / "frames"])
    run("bomb-train", T.train.cli, ["--config", T.TINY, "--outdir", work / "o_bomb", "--data", user / "frames",
                                    "--no-progress"])
    run("bomb-image", T.generate.cli, ["--checkpoint", user / "image.pt", "--outdir", work / "o",
                                       "--image", user / "still.png"])
    Image.MAX_IMAGE_PIXELS = old_limit
    # --resume with an empty latest.pt beside good snapshots: must continue from step_0000004.pt.
    run2 = work / "run2"
    shutil.copytree(user / "run", run2)
    (run2 / "checkpoints" / "latest.pt").write_bytes(b"")
    snaps = run2 / "checkpoints"
    T._invoke(T.train.cli, ["--config", T.TINY, "--outdir", run2, "--resume", "--steps", "6", "--no-progress"])
    lost = not (snaps / "step_0000004.pt").exists()             # the newest good snapshot (rotation keeps 2)
    relogged = len({line for line in (run2 / "log.jsonl").read_text().splitlines()}) != \
        len({__import__("json").loads(x)["step"] for x in (run2 / "log.jsonl").read_text().splitlines()})
    from gan.checkpoint import load
    step = load(snaps / "latest.pt")["step"] if (snaps / "latest.pt").stat().st_size else -1
    verdict = "data lost" if lost else "wrong result" if relogged or step != 6 else "handled"
    results.append((verdict, "resume-empty-latest", 0, f"latest step {step}, snapshots kept: {not lost}"))
    # Weights overflow while the losses stay finite (EMA poisoned): the checkpoints must stay byte-identical.
    import gan.training.loop as loop
    run3 = work / "run3"
    shutil.copytree(user / "run", run3)
    real = loop.update_ema

    def poisoned(G_ema, G, beta):
        real(G_ema, G, beta)
        with torch.no_grad():
            next(G_ema.parameters()).fill_(float("inf"))
    loop.update_ema = poisoned
    run("nan-weights-run", T.train.cli, ["--config", T.TINY, "--outdir", run3, "--resume", "--steps", "8",
                                         "--no-progress"], watch=(run3 / "checkpoints",))
    loop.update_ema = real
    # Permissions: a fresh output must be readable by others under umask 022.
    mask = os.umask(0o022)
    T._invoke(T.export_cli, [user / "run" / "checkpoints" / "latest.pt", work / "G.pt"])
    os.umask(mask)
    mode = (work / "G.pt").stat().st_mode & 0o777 if (work / "G.pt").exists() else 0
    results.append(("handled" if mode == 0o644 else "wrong result", "umask-export", 0, f"mode {oct(mode)}"))

    counts = {}
    for verdict, *_ in results:
        counts[verdict] = counts.get(verdict, 0) + 1
    for verdict, name, code, tail in results:
        click.echo(f"{verdict:14s} {name:26s} exit {code}: {tail}")
    click.echo(f"\n{root}: {len(results)} inputs; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
