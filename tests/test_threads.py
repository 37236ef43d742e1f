"""The torch thread choice (gan/threads.py): cores from affinity and cgroups, other programs' load, the option and
OMP_NUM_THREADS; and the commands that print it."""
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from gan import threads as T
from tests.conftest import ROOT

NO_ENV = {}


# ---- the decision, from given readings --------------------------------------------------------------------------

@pytest.mark.parametrize("busy, expected", [(0.0, 2), (0.3, 2), (0.6, 1), (1.0, 1), (1.4, 1), (2.0, 1), (None, 2)])
def test_two_cores_lose_a_thread_to_a_busy_core(busy, expected):
    choice = T.decide(0, NO_ENV, cores=2, busy=busy)
    assert (choice.threads, choice.source) == (expected, "auto")


def test_many_cores_keep_the_idle_ones():
    assert T.decide(0, NO_ENV, cores=16, busy=3.2).threads == 13
    assert T.decide(0, NO_ENV, cores=1, busy=0.0).threads == 1


def test_the_line_says_why():
    assert T.decide(0, NO_ENV, cores=2, busy=1.0).describe() == "threads: 1 (2 cores available, 1 busy)"
    assert T.decide(0, NO_ENV, cores=2, busy=0.1).describe() == "threads: 2 (2 cores available, 0 busy)"
    assert T.decide(3, NO_ENV, cores=2, busy=None).describe() == "threads: 3 (--threads 3; 2 cores available)"


def test_the_option_overrides_the_automatic_choice():
    choice = T.decide(2, NO_ENV, cores=2, busy=2.0)
    assert (choice.threads, choice.source) == (2, "option")


def test_omp_num_threads_wins_over_everything_and_says_so():
    choice = T.decide(4, {"OMP_NUM_THREADS": "1"}, cores=2, busy=0.0)
    assert (choice.threads, choice.source) == (1, "env")
    assert choice.describe() == "threads: 1 (OMP_NUM_THREADS=1 from the environment wins over --threads 4)"
    assert T.decide(0, {"OMP_NUM_THREADS": "3"}, cores=2, busy=2.0).threads == 3
    with pytest.raises(T.ThreadsError, match="OMP_NUM_THREADS='two'"):
        T.decide(0, {"OMP_NUM_THREADS": "two"}, cores=2, busy=0.0)
    with pytest.raises(T.ThreadsError, match="--threads must be >= 0"):
        T.decide(-1, NO_ENV, cores=2, busy=0.0)


def test_torchrun_ranks_share_the_cores():
    choice = T.decide(0, NO_ENV, cores=8, busy=None, ranks=2)
    assert choice.threads == 4 and "for 2 ranks" in choice.describe()
    assert T.decide(0, NO_ENV, cores=2, busy=None, ranks=4).threads == 1


# ---- the readings ---------------------------------------------------------------------------------------------

STAT = """cpu  {a} 0 {b} {c} 0 0 0 0 0 0
cpu0 {a0} 0 0 {i0} 3 0 0 0 0 0
cpu1 {a1} 0 0 {i1} 0 0 0 0 0 0
intr 1 2 3
"""


def _stat(a0, i0, a1, i1):
    return STAT.format(a=a0 + a1, b=0, c=i0 + i1, a0=a0, i0=i0, a1=a1, i1=i1)


def test_other_programs_load_from_two_proc_stat_readings():
    before = _stat(100, 1000, 100, 1000)
    after = _stat(100 + 2, 1000 + 98, 100 + 100, 1000)       # 1 s at 100 Hz: cpu1 fully busy, cpu0 idle
    b0, t0 = T.cpu_ticks(before, [0, 1])
    b1, t1 = T.cpu_ticks(after, [0, 1])
    assert T.others_busy((b0, t0, 50), (b1, t1, 50), 2) == pytest.approx(1.02)
    assert T.others_busy((b0, t0, 50), (b1, t1, 150), 2) == pytest.approx(0.02)    # that use was this process's
    assert T.cpu_ticks(after, [1]) == (200, 1200)                                # only the CPUs asked about
    assert T.busy_count(1.02) == 1 and T.busy_count(0.49) == 0 and T.busy_count(0.5) == 1


def test_a_blip_in_one_window_costs_no_thread_a_program_running_throughout_does():
    # (busy, total, own) ticks over 2 CPUs, windows of 25 ticks per CPU: a process that ran only in the first
    # window (exiting as we start) is not busy; one that ran in both windows is
    blip = [(0, 0, 0), (25, 50, 0), (25, 100, 0)]
    steady = [(0, 0, 0), (25, 50, 0), (50, 100, 0)]
    assert T.busy_count(T.least_busy(blip, 2)) == 0
    assert T.busy_count(T.least_busy(steady, 2)) == 1 and T.least_busy(steady, 2) == pytest.approx(1.0)


def test_the_windows_split_at_the_reading_nearest_the_middle_and_stay_long_enough():
    r = (0, 0, 0)
    points = [(0.0, r), (0.05, r), (0.4, r), (0.55, r), (0.9, r), (1.0, r)]
    assert T.middle_index(points, 0.125) == 3                                 # 0.55: the nearest to 0.5
    assert T.middle_index(points[:3], 0.125) == 2                             # none leaves 0.125 s each side:
    assert T.middle_index([(0.0, r), (0.1, r), (0.15, r)], 0.125) == 2         # the last, a second window after it


def test_a_short_body_is_topped_up_to_two_full_windows():
    with T.BusyReading(sorted(T.allowed_cpus()), min_window=0.06) as reading:
        pass
    assert len(reading.windows) == 2 and min(reading.windows) >= 0.06
    assert reading.busy is not None and 0.0 <= reading.busy <= len(T.allowed_cpus())


def test_own_ticks_read_past_a_process_name_with_spaces():
    text = "123 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 70 30 0 0 20 0 4"
    assert T.own_ticks(text) == 100


def test_cgroup_quota_v2_and_v1(tmp_path):
    v2 = tmp_path / "v2"
    (v2 / "user" / "job").mkdir(parents=True)
    (v2 / "user" / "job" / "cpu.max").write_text("150000 100000\n")
    (v2 / "cpu.max").write_text("max 100000\n")
    (tmp_path / "cg2").write_text("0::/user/job\n")
    assert T.cgroup_cpu_limit(v2, tmp_path / "cg2") == pytest.approx(1.5)
    (v2 / "user" / "cpu.max").write_text("50000 100000\n")                   # a parent's limit binds too
    assert T.cgroup_cpu_limit(v2, tmp_path / "cg2") == pytest.approx(0.5)

    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "docker" / "abc").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cg1").write_text("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    assert T.cgroup_cpu_limit(v1, tmp_path / "cg1") == pytest.approx(2.0)
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("-1\n")     # -1: no quota
    assert T.cgroup_cpu_limit(v1, tmp_path / "cg1") is None
    assert T.cgroup_cpu_limit(v1, tmp_path / "missing") is None


def test_smt_siblings_count_as_one_core(tmp_path):
    for cpu, core in ((0, 0), (1, 1), (2, 0), (3, 1)):                      # 2 cores, 2 threads each
        topo = tmp_path / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text("0\n")
        (topo / "core_id").write_text(f"{core}\n")
    assert T.physical_cores([0, 1, 2, 3], tmp_path) == 2
    assert T.physical_cores([0, 2], tmp_path) == 1
    assert T.physical_cores([0, 5], tmp_path) == 2                          # unknown topology: count CPUs


# ---- applied in a process ---------------------------------------------------------------------------------------

def _child(code):
    """Run `code` in a fresh Python without the thread variables of this environment; its stdout lines."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY",
                                                        "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_one_allowed_core_gives_one_thread():
    cpu = min(os.sched_getaffinity(0))
    code = (f"import os; os.sched_setaffinity(0, {{{cpu}}})\n"
            "from gan.threads import configure\n"
            "choice = configure(0)\n"
            "import torch\n"
            "print(choice.threads, torch.get_num_threads(), os.environ.get('GOMP_SPINCOUNT', '-'))\n"
            "print(choice.describe())\n")
    lines = _child(code)
    assert lines[0] == "1 1 -"                       # libgomp's own wait: nothing set
    assert lines[1].startswith("threads: 1 (1 core available, ") and "GOMP" not in lines[1]


ALONE = """
import hashlib, os, threading, time
from gan import threads as T
real = T._reading
tick = os.sysconf("SC_CLK_TCK")

def alone(cpus):
    # /proc/stat of a machine where only this process runs: its busy ticks are our CPU time, all threads
    busy, total, own = real(cpus)
    return round(time.process_time() * tick), total, own

T._reading = alone
stop = threading.Event()

def work():                                             # a second thread of ours, busy outside the GIL (sha256)
    data = bytes(1 << 22)
    while not stop.is_set():
        hashlib.sha256(data).digest()

threading.Thread(target=work, daemon=True).start()
choice = T.configure(0)
stop.set()
import torch
print(choice.threads, T.available_cores(), torch.get_num_threads(), os.environ.get("GOMP_SPINCOUNT"))
print(choice.describe())
print(choice.busy)
"""


def test_a_fresh_process_alone_takes_all_cores_its_own_import_and_threads_not_counted_as_busy():
    # configure() in a fresh interpreter reads across torch's import, in which our own threads keep up to two
    # cores busy; on a machine where only we run (/proc/stat's busy ticks = our CPU time), nothing is busy
    lines = _child(ALONE)
    threads, cores, torch_threads, spin = lines[0].split()
    assert threads == cores == torch_threads and spin == "None"          # libgomp's own wait
    assert lines[1].startswith(f"threads: {cores} (") and lines[1].endswith(" 0 busy)")
    assert float(lines[2]) < 0.2                    # ~0: 2 ticks of rounding over windows of >= 12 ticks per CPU


def _pinned_child(code, cpu):
    return _child(f"import os; os.sched_setaffinity(0, {{{cpu}}})\n" + code)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_our_own_import_is_not_read_as_another_programs_use():
    # the real /proc/stat, one CPU: what the reading calls others' use cannot exceed the CPU's time we did not
    # use (a reading that kept our import's ~1 core in would); on a quiet machine it reads ~0
    code = ("from gan import threads as T\n"
            "r = T.BusyReading(sorted(os.sched_getaffinity(0)))\n"
            "with r:\n"
            "    import torch\n"
            "(_, (_, t0, o0)), (_, (_, t1, o1)) = r.points[0], r.points[-1]\n"
            "print(r.busy, (o1 - o0) / (t1 - t0))\n")
    busy, ours = (float(x) for x in _pinned_child(code, min(os.sched_getaffinity(0)))[0].split())
    assert ours > 0.05                                                    # the import ran on that CPU
    assert busy + ours <= 1.1                               # 0.1: two ticks of rounding in >= 25 ticks


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_a_program_busy_throughout_the_import_is_counted():
    # two spinning processes on the CPU our fresh process is pinned to: beside our import they hold ~2/3 of it
    cpu = min(os.sched_getaffinity(0))
    spin = f"import os; os.sched_setaffinity(0, {{{cpu}}}); print('on', flush=True)\nwhile True:\n    pass\n"
    spinners = [subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        assert all(p.stdout.readline().strip() == "on" for p in spinners)
        lines = _pinned_child("from gan import threads as T\nchoice = T.configure(0)\n"
                              "print(choice.busy)\nprint(choice.describe())\n", cpu)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    assert lines[1] == "threads: 1 (1 core available, 1 busy)", lines    # ~2/3 read (or more), 1/2 counts


def test_configure_applies_an_injected_busy_reading(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(T, "_READING", {"reading": (2, 1.0)})               # 2 cores, one held by another program
    choice = T.configure(0)
    assert (choice.threads, torch.get_num_threads()) == (1, 1)
    assert choice.describe() == "threads: 1 (2 cores available, 1 busy)" == T.describe()
    monkeypatch.setattr(T, "_READING", {"reading": (2, 0.0)})
    choice = T.configure(0)
    assert torch.get_num_threads() == 2 and choice.describe() == "threads: 2 (2 cores available, 0 busy)"
    assert "follower" in T._FOLLOWER                                       # the automatic choice follows the load
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    T.configure(0)
    assert "follower" not in T._FOLLOWER and T.follow() is None            # a given count is kept as given


@pytest.mark.skipif(not shutil.which("gcc") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs gcc (bench/gomp_count.c counts OpenMP regions) and 2 CPUs")
def test_a_count_torch_already_runs_keeps_mkls_own_choice_for_small_calls(tmp_path):
    # torch.set_num_threads turns MKL's dynamic choice off: a sin over 2048 floats then opens a parallel region
    shim = tmp_path / "gomp_count.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(shim), str(ROOT / "bench" / "gomp_count.c"), "-ldl"],
                   check=True)
    # n is torch's own starting count (physical cores: under SMT it is not the affinity's CPU count)
    code = ("import ctypes, os, subprocess, sys\n"
            "n = int(subprocess.run([sys.executable, '-c', 'import torch; print(torch.get_num_threads())'],\n"
            "                       capture_output=True, text=True, check=True).stdout)\n"
            "from gan.threads import configure\n"
            "c = configure(n)\n"                                     # the count torch starts with: nothing to set
            "import torch\n"
            "count = ctypes.CDLL(None).gomp_regions\n"
            "x = torch.rand(2048)\n"
            "def regions():\n"
            "    r0 = count(); torch.sin(x); return count() - r0\n"
            "print(c.threads == n == torch.get_num_threads(), regions())\n"
            "torch.set_num_threads(n)\n"
            "print(regions())\n")
    env = {**os.environ, "LD_PRELOAD": str(shim)}
    env = {k: v for k, v in env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, after_set = out.stdout.split()[-3:-1], out.stdout.split()[-1]
    if after_set == "0":
        pytest.skip("this torch build's sin runs on one thread either way (no MKL)")
    assert first == ["True", "0"], out.stdout


def test_the_openmp_wait_is_libgomps_own_and_a_users_wait_is_named():
    code = ("import os, sys\n"
            "from gan import threads as T\n"
            "T._READING['reading'] = (2, 0.0)\n"
            "c = T.configure(0)\n"
            "import torch\n"
            "print(c.threads, torch.get_num_threads(), os.environ.get('GOMP_SPINCOUNT'), c.describe())\n"
            "os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'\n"
            "print(T.configure(0).describe())\n")
    lines = _child(code)
    assert lines[0] == "2 2 None threads: 2 (2 cores available, 0 busy)"
    assert "OMP_WAIT_POLICY='ACTIVE' from the environment" in lines[1]


# ---- following the load mid-run ---------------------------------------------------------------------------

def test_the_follower_changes_the_count_only_when_two_windows_agree():
    N = T.next_threads
    assert N(2, 2, [0.9]) == 2                                  # one window: no change yet
    assert N(2, 2, [0.0, 0.9]) == 2 and N(2, 2, [0.9, 0.0]) == 2  # a blip in one window costs nothing
    assert N(2, 2, [0.7, 1.0]) == 1                             # a program holding a core in both: one thread less
    assert N(4, 4, [1.0, 2.1]) == 3                             # as many fewer as both windows agree on
    assert N(2, 2, [2.0, 2.0]) == 1                             # never fewer than one
    assert N(1, 2, [1.0, 0.1]) == 1 and N(1, 2, [0.1, 0.1]) == 2   # given back when both find it free
    assert N(1, 2, [0.4, 0.35]) == 1                            # under BUSY_FROM but not clearly free: kept
    assert N(3, 4, [1.0, 0.4]) == 3 and N(3, 4, [0.2, 0.1]) == 4


def test_our_children_count_as_ours():
    # a child that used >= 0.4 s of CPU shows in family_ticks while it lives and after it is reaped
    tick = os.sysconf("SC_CLK_TCK")
    code = ("import sys, time\n"
            "while time.process_time() < 0.4:\n    pass\n"
            "print('done', flush=True)\nsys.stdin.readline()\n")
    before = T.family_ticks()
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "done"
        alive = T.family_ticks()
    finally:
        child.communicate("\n", timeout=30)
    reaped = T.family_ticks()
    assert alive - before >= 0.4 * tick - 2                    # 2: rounding of the two readings
    assert reaped >= alive                                     # its ticks moved into our cutime, not lost


FOLLOWING = """
import os, sys, time
from gan import threads as T
T._READING["reading"] = (2, 0.0)                                # two free cores at the start
T.configure(0)
T._FOLLOWER["follower"].every = 0.25
import torch
x = torch.rand(256, 256)
print("ready", torch.get_num_threads(), flush=True)
sys.stdin.readline()                                            # the busy program is running
deadline = time.time() + 30
while time.time() < deadline and torch.get_num_threads() == 2:
    line = T.follow()
    if line:
        print(line, flush=True)
    x @ x
    time.sleep(0.01)
print("end", torch.get_num_threads(), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs os.sched_setaffinity (Linux) and 2 CPUs")
def test_a_program_that_takes_a_core_mid_run_costs_a_thread():
    # real processes, the real /proc/stat: a run that started on two free cores drops to one when a spinning
    # process takes one of them (the way back needs a quiet machine: the in-process test below covers it)
    cpus = sorted(os.sched_getaffinity(0))[:2]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    run = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {set(cpus)})\n" + FOLLOWING],
                           cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    spin = None
    try:
        assert run.stdout.readline().split() == ["ready", "2"]
        spin = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpus[1]}}})\n"
                                 "while True:\n    pass\n"])
        run.stdin.write("go\n")
        run.stdin.flush()
        dropped = run.stdout.readline()
        assert dropped.startswith("threads: 2 -> 1 (other programs now use "), dropped
        assert run.stdout.readline().split() == ["end", "1"]
    finally:
        if spin is not None:
            spin.kill()
            spin.wait()
        run.kill()
        run.wait()


def test_the_follower_thread_drops_and_gives_back_a_thread(monkeypatch):
    # the follower's loop and follow() in this process, fed the readings of a program that takes one of two
    # cores for six windows and then stops (busy, total, ours: ticks; 100 ticks of wall time per CPU a window)
    others = [0.0] + [1.0] * 6 + [0.0] * 200
    ticks = iter([(int(100 * sum(others[:i])), 200 * i, 0) for i in range(len(others))])
    f = T.Follower([0, 1], full=2, threads=2, every=0.05)
    monkeypatch.setattr(f, "_read", lambda: next(ticks))
    monkeypatch.setitem(T._FOLLOWER, "follower", f)
    torch.set_num_threads(2)
    seen, deadline = [], time.time() + 20
    f.start()
    while time.time() < deadline and len(seen) < 2:
        line = T.follow()
        if line:
            seen.append((line, torch.get_num_threads()))
        time.sleep(0.001)
    f.stop()
    assert [n for _, n in seen] == [1, 2], seen
    torch.set_num_threads(1)
    monkeypatch.setitem(T._CURRENT, "choice", T.ThreadChoice(2, "auto", 2, busy=0.0))
    assert T.describe() == "threads: 1 (following the load; threads: 2 (2 cores available, 0 busy) at the start)"
    assert seen[0][0] == "threads: 2 -> 1 (other programs now use 1.0 of 2 cores)"


def test_train_prints_the_choice_and_the_environment_wins(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MKL_NUM_THREADS"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "train.py", "--config", "configs/tiny.yaml", "--steps", "0", "--threads",
                          "2", "--outdir", str(tmp_path / "run"), "--no-progress"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    start = (tmp_path / "run" / "log.txt").read_text().splitlines()[0]
    assert start.endswith("threads: 1 (OMP_NUM_THREADS=1 from the environment wins over --threads 2)")


def test_the_commands_take_threads_and_reject_bad_counts(monkeypatch):
    import train
    from gan.metrics.cli import metrics_cli
    res = CliRunner().invoke(train.cli, ["--threads", "3", "--dry-run"])
    assert res.exit_code == 0 and '"threads": 3' in res.stdout
    res = CliRunner().invoke(train.cli, ["--threads", "auto", "--set", "train.threads=5", "--dry-run"])
    assert res.exit_code == 0 and '"threads": 0' in res.stdout                # the option over the config field
    res = CliRunner().invoke(train.cli, ["--threads", "-2", "--dry-run"])
    assert res.exit_code == 2 and "0 / auto" in res.output
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    res = CliRunner().invoke(metrics_cli, ["--threads", "1", "--data", "digits", "--metrics", "fvd-offline"])
    assert res.exit_code == 2 and "--resolution is required" in res.output      # a usage error: one line ...
    assert "threads:" not in res.stderr and torch.get_num_threads() == 1         # ... the threads applied all the same
