"""Two commands timed side by side as whole processes, A B A B ..., with the wall-time ratio A/B pair by pair
(not a test): a comparison that holds while a shared machine's speed drifts. The user CPU seconds of each process
(and the children it waited for) are reported beside the wall time: on a loaded machine, at one thread, they
drift far less than the wall time (time spent waiting for a core is not in them).

    python bench/paired.py -n 5 --a "python generate.py ..." --b "python generate.py ..." [--b-env KEY=VALUE ...]

Prints each command's wall seconds and the ratio A/B as median (min-max), and writes them as JSON with --out.
"""
from __future__ import annotations

import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Sequence, Tuple

import click


def timed(cmd: Sequence[str], env: Dict[str, str], cwd: str) -> Tuple[float, float]:
    """(wall seconds, user CPU seconds) of one run of `cmd`."""
    u0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    user = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - u0
    if done.returncode != 0:
        raise click.ClickException(f"{shlex.join(cmd)} failed (exit {done.returncode}): "
                                   f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return wall, user


def spread(xs: List[float]) -> Dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def _env(pairs: Sequence[str], cwd: str) -> Dict[str, str]:
    env = dict(os.environ)
    for pair in pairs:
        key, _, value = pair.partition("=")
        env[key] = value
    return env


@click.command()
@click.option("--a", "cmd_a", required=True, help="Command A (split as a shell would).")
@click.option("--b", "cmd_b", required=True, help="Command B.")
@click.option("--a-cwd", default=".", show_default=True)
@click.option("--b-cwd", default=".", show_default=True)
@click.option("--a-env", multiple=True, help="KEY=VALUE for A only (repeatable).")
@click.option("--b-env", multiple=True, help="KEY=VALUE for B only (repeatable).")
@click.option("-n", "pairs", type=click.IntRange(1, 100), default=5, show_default=True, help="Counted pairs.")
@click.option("--warmup", type=click.IntRange(0, 10), default=1, show_default=True, help="Uncounted pairs first.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the figures as JSON.")
def main(cmd_a, cmd_b, a_cwd, b_cwd, a_env, b_env, pairs, warmup, out):
    a, b = shlex.split(cmd_a), shlex.split(cmd_b)
    ea, eb = _env(a_env, a_cwd), _env(b_env, b_cwd)
    walls: Dict[str, List[float]] = {"a": [], "b": []}
    users: Dict[str, List[float]] = {"a": [], "b": []}
    load_start = list(os.getloadavg())
    for k in range(warmup + pairs):
        first = k % 2 == 0                                  # alternate which goes first within a pair
        order = [("a", a, ea, a_cwd), ("b", b, eb, b_cwd)] if first else [("b", b, eb, b_cwd), ("a", a, ea, a_cwd)]
        got = {name: timed(cmd, env, cwd) for name, cmd, env, cwd in order}
        if k >= warmup:
            for name in got:
                walls[name].append(got[name][0])
                users[name].append(got[name][1])
    ratios = [x / y for x, y in zip(walls["a"], walls["b"])]
    user_ratios = [x / y for x, y in zip(users["a"], users["b"])]
    doc = {"a": cmd_a, "b": cmd_b, "a_env": list(a_env), "b_env": list(b_env), "pairs": pairs,
           "wall_a": spread(walls["a"]), "wall_b": spread(walls["b"]), "ratio_a_over_b": spread(ratios),
           "user_a": spread(users["a"]), "user_b": spread(users["b"]), "user_ratio_a_over_b": spread(user_ratios),
           "loadavg_start": load_start, "loadavg_end": list(os.getloadavg())}
    for key in ("wall_a", "wall_b", "ratio_a_over_b", "user_a", "user_b", "user_ratio_a_over_b"):
        s = doc[key]
        click.echo(f"{key}: {s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f})")
    if out:
        with open(out, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
