"""How many CPU threads torch uses: chosen from the cores this process may run on and how busy they are.

Torch's default is one intra-op thread per core, and its OpenMP threads spin at every barrier. When another
program holds one of those cores (a browser, a second run, a video call), every parallel region waits for the
thread that is not running: on 2 cores beside one busy process the default trains ~12x slower than one thread
(BENCHMARKS.md, "Busy CPU"). So each reelgan command (train.py, generate.py, the studio, reelgan-metrics /
reelgan-analyze) calls `configure(requested)` before it loads torch:

- cores: the CPUs of `os.sched_getaffinity`, counted as physical cores (SMT siblings share one), capped by a
  cgroup v2 `cpu.max` / v1 `cpu.cfs_quota_us` limit;
- busy: other programs' use of those CPUs, in cores, from /proc/stat readings taken across torch's import
  (0.5-2 s, so the reading costs no time of its own; at least 0.25 s) minus this process's own use (no
  /proc/stat: the 1-minute load average); a core counts as busy from half a core's use;
- threads = cores - busy cores, at least 1; under torchrun the cores are shared by the ranks of this machine;
- the OpenMP wait is libgomp's own (its spin keeps a run alone at full speed); what protects a run from a program
  that takes a core later is the follower: for an automatic choice on 2 or more cores a daemon thread re-reads
  the others' use every FOLLOW_EVERY seconds (this process's children, e.g. DataLoader workers, count as
  ours), and `follow()`, called by the loops between steps and chunks, drops a thread when two windows in a
  row find a core taken and gives it back when two in a row find it free (a short fixed spin instead cost 8%
  alone and still lost a share beside a busy core: BENCHMARKS.md, "Busy CPU");
- `--threads N` / train.threads picks N instead; an OMP_NUM_THREADS in the environment wins over both.

Inter-op threads follow the intra-op count (torch starts that pool only for torch.jit.fork-style work, which
reelgan does not do); DataLoader workers already run one torch thread each (torch sets it in every worker).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from gan.errors import ReelganError

ENV_THREADS = "OMP_NUM_THREADS"
ENV_WAIT = "OMP_WAIT_POLICY"
ENV_SPIN = "GOMP_SPINCOUNT"     # libgomp (torch's OpenMP on Linux): spins at a barrier before it sleeps
SAMPLE_SECONDS = 0.25               # the reading where torch is already loaded: two windows of MIN_WINDOW
MIN_WINDOW = 0.125                  # 12.5 clock ticks per CPU (USER_HZ 100): a busy reading's steps are under 8%
EVERY = 0.05                        # how often BusyReading's thread reads /proc/stat while the body runs
BUSY_FROM = 0.5                     # other programs' use of a core (in cores) from which that core counts as busy
FREE_BELOW = BUSY_FROM - 0.2        # the follower gives a taken core back under this use (no flapping at the edge)
FOLLOW_EVERY = 1.0                  # seconds per window of the follower's reading


class ThreadsError(ReelganError, ValueError):
    """A thread count that cannot be used (a negative --threads, an OMP_NUM_THREADS that is not a number)."""


@dataclass(frozen=True)
class ThreadChoice:
    threads: int                    # torch intra-op threads
    source: str                     # 'auto', 'option' (--threads / train.threads) or 'env' (OMP_NUM_THREADS)
    cores: int                      # cores available to this process (affinity, physical cores, cgroup quota)
    busy: Optional[float] = None    # other programs' use of those cores, in cores (None: not read)
    ranks: int = 1                  # processes of this run on this machine (torchrun's LOCAL_WORLD_SIZE)
    overridden: Optional[int] = None  # the --threads value that OMP_NUM_THREADS overrode
    wait_policy: str = ""           # a wait the user set (OMP_WAIT_POLICY, GOMP_SPINCOUNT), named in the line

    def describe(self) -> str:
        """The start line's part, e.g. 'threads: 1 (2 cores available, 1 busy)'."""
        if self.source == "env":
            why = f"{ENV_THREADS}={self.threads} from the environment"
            if self.overridden is not None:
                why += f" wins over --threads {self.overridden}"
        elif self.source == "option":
            why = f"--threads {self.threads}; {self.cores} cores available"
        else:
            why = f"{self.cores} core{'s' if self.cores != 1 else ''} available"
            if self.ranks > 1:
                why += f" for {self.ranks} ranks"
            elif self.busy is not None:
                why += f", {busy_count(self.busy)} busy"
        extra = f"; {self.wait_policy}" if self.wait_policy else ""
        return f"threads: {self.threads} ({why}{extra})"


# ---- what the machine offers --------------------------------------------------------------------------------------

def allowed_cpus() -> FrozenSet[int]:
    """The logical CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return frozenset(range(os.cpu_count() or 1))


def physical_cores(cpus: Sequence[int], sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """How many physical cores the logical `cpus` sit on (SMT siblings count once); len(cpus) where unknown."""
    seen = set()
    for cpu in cpus:
        topo = sysfs / f"cpu{cpu}" / "topology"
        try:
            seen.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return len(seen) or len(cpus)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")
                     ) -> Optional[float]:
    """The CPU quota of this process's cgroup (and its parents), in cores; None where there is none.

    cgroup v2: `cpu.max` holds 'QUOTA PERIOD' or 'max PERIOD'; v1: cpu.cfs_quota_us (-1: none) / cpu.cfs_period_us.
    Inside a container the cgroup file's path may not exist under the mount: the mount's own root is read too."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":                                           # v2: '0::/path'
            bases, read = [root], _read_v2
        elif "cpu" in controllers.split(","):                            # v1: '4:cpu,cpuacct:/path'
            bases = [root / c for c in ("cpu", "cpu,cpuacct", "cpuacct,cpu") if (root / c).is_dir()]
            read = _read_v1
        else:
            continue
        for base in bases:
            rel = Path(path.lstrip("/"))
            for folder in {base / rel, *[base / p for p in rel.parents], base}:
                limit = read(folder)
                if limit is not None:
                    limits.append(limit)
    return min(limits) if limits else None


def _read_v2(folder: Path) -> Optional[float]:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" or float(period) <= 0 else float(quota) / float(period)


def _read_v1(folder: Path) -> Optional[float]:
    try:
        quota = float((folder / "cpu.cfs_quota_us").read_text())
        period = float((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def available_cores(cpus: Optional[Sequence[int]] = None) -> int:
    """Cores this process can use: physical cores of its affinity set, capped by a cgroup quota (rounded up)."""
    cpus = sorted(allowed_cpus() if cpus is None else cpus)
    cores = physical_cores(cpus)
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota - 1e-6)))
    return max(1, cores)


# ---- how busy the cores are -----------------------------------------------------------------------------------

def cpu_ticks(stat_text: str, cpus: Sequence[int]) -> Tuple[int, int]:
    """(busy, total) clock ticks of the logical `cpus`, summed, from /proc/stat's text (iowait counts as idle)."""
    want = {f"cpu{c}" for c in cpus}
    busy = total = 0
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] in want:
            # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
            ticks = [int(x) for x in fields[1:9]]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            busy += sum(ticks) - idle
            total += sum(ticks)
    return busy, total


def own_ticks(stat_text: str) -> int:
    """utime + stime of a process, in clock ticks, from its /proc/<pid>/stat text (all its threads)."""
    after = stat_text.rsplit(")", 1)[1].split()        # the name in parentheses may hold spaces
    return int(after[11]) + int(after[12])


def others_busy(before: Tuple[int, int, int], after: Tuple[int, int, int], ncpus: int) -> float:
    """Other programs' use of the CPUs between two (busy, total, own) tick readings, in cores (0..ncpus)."""
    busy = (after[0] - before[0]) - (after[2] - before[2])
    elapsed = (after[1] - before[1]) / max(ncpus, 1)                # ticks of wall time per CPU
    if elapsed <= 0:
        return 0.0
    return min(float(ncpus), max(0.0, busy / elapsed))


def least_busy(readings: Sequence[Tuple[int, int, int]], ncpus: int) -> float:
    """Other programs' use over the quietest window between consecutive (busy, total, own) readings, in cores."""
    return min(others_busy(a, b, ncpus) for a, b in zip(readings, readings[1:]))


def middle_index(points: Sequence[Tuple[float, Tuple[int, int, int]]], min_window: float = MIN_WINDOW) -> int:
    """Which of the (time, reading) points splits the span into two windows: the one nearest the middle in time of
    those at least `min_window` seconds from both ends; the last where none is (the second window follows it)."""
    start, end = points[0][0], points[-1][0]
    inner = [i for i, (t, _) in enumerate(points[1:-1], 1) if t - start >= min_window and end - t >= min_window]
    return min(inner, key=lambda i: abs(points[i][0] - (start + end) / 2)) if inner else len(points) - 1


def _reading(cpus: Sequence[int]) -> Tuple[int, int, int]:
    busy, total = cpu_ticks(Path("/proc/stat").read_text(), cpus)
    return busy, total, own_ticks(Path("/proc/self/stat").read_text())


class BusyReading:
    """Other programs' use of `cpus`, in cores, while the body of a `with` runs (configure() reads it across torch's
    import, mostly our own CPU, which own_ticks takes out): `busy` after the block, None where it cannot be read.

    Readings are taken when the block starts, every EVERY seconds from a thread (it waits while the body holds the
    GIL in a C call, such as loading libtorch) and when it ends; `busy` is the quieter of the two windows split at
    the middle reading, so a blip (a process exiting as we start, a tab redrawing) does not cost a thread that a
    program running throughout would. It measures others beside our one busy core: where every core is taken,
    they read a little under their demand and count one core short, which still leaves 1 thread."""

    def __init__(self, cpus: Sequence[int], min_window: float = MIN_WINDOW):
        self.cpus = sorted(cpus)
        self.min_window = min_window
        self.points: List[Tuple[float, Tuple[int, int, int]]] = []
        self.busy: Optional[float] = None
        self.windows: Tuple[float, ...] = ()                       # the two windows' lengths in seconds, once read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reelgan-busy-reading", daemon=True)

    def _take(self) -> bool:
        try:
            self.points.append((time.monotonic(), _reading(self.cpus)))
            return True
        except (OSError, ValueError, IndexError):                     # no /proc: the load average instead
            return False

    def _run(self) -> None:
        while not self._stop.wait(EVERY):
            self._take()

    def __enter__(self) -> "BusyReading":
        if self._take():
            self._thread.start()
        return self

    def __exit__(self, kind, value, tb) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if kind is not None:
            return
        ok = bool(self.points)
        if ok:
            # a window under MIN_WINDOW (~12 ticks per CPU at USER_HZ 100) reads in steps over 8%: sleep it full
            time.sleep(max(0.0, self.points[0][0] + self.min_window - time.monotonic()))
            ok = self._take()
        middle = middle_index(self.points, self.min_window) if ok else 0
        if ok and middle == len(self.points) - 1:
            time.sleep(self.min_window)
            ok = self._take()
        if ok:
            bounds = [self.points[i] for i in (0, middle, -1)]
            self.windows = tuple(b[0] - a[0] for a, b in zip(bounds, bounds[1:]))
            self.busy = least_busy([r for _, r in bounds], len(self.cpus))
        elif hasattr(os, "getloadavg"):                             # macOS: runnable processes, 1-minute mean
            self.busy = min(float(len(self.cpus)), os.getloadavg()[0])


def busy_cores(cpus: Optional[Sequence[int]] = None, seconds: float = SAMPLE_SECONDS) -> Optional[float]:
    """Other programs' use of this process's CPUs right now, in cores, read over `seconds` of sleep (two windows,
    the quieter counts; see BusyReading); None where it cannot be read."""
    with BusyReading(allowed_cpus() if cpus is None else cpus, seconds / 2) as reading:
        pass
    return reading.busy


def busy_count(busy: float) -> int:
    """Cores counted as busy for a use of `busy` cores: each half-used core counts."""
    return int(math.floor(busy + 1 - BUSY_FROM))


# ---- following the load mid-run -----------------------------------------------------------------------------

def family_ticks(proc: Path = Path("/proc")) -> int:
    """CPU ticks of this process, its reaped children and its live children (DataLoader workers are ours, not
    another program's)."""
    def ticks(text: str) -> Tuple[int, int]:                         # (utime+stime+cutime+cstime, ppid)
        after = text.rsplit(")", 1)[1].split()
        return sum(int(after[i]) for i in (11, 12, 13, 14)), int(after[1])
    pid = os.getpid()
    total = ticks((proc / str(pid) / "stat").read_text())[0]
    for entry in os.scandir(proc):
        if entry.name.isdigit() and entry.name != str(pid):
            try:
                used, parent = ticks((proc / entry.name / "stat").read_text())
            except (OSError, ValueError, IndexError):                 # gone while we read: its ticks are in ours
                continue
            if parent == pid:
                total += used
    return total


def next_threads(current: int, full: int, recent: Sequence[float]) -> int:
    """The follower's thread count after the others' use (in cores) of the last two windows: fewer threads when
    both find cores taken (as many fewer as both agree on), more when both find them free below FREE_BELOW."""
    if len(recent) < 2:
        return current
    fewer = max(1, full - min(busy_count(b) for b in recent[-2:]))
    if fewer < current:
        return fewer
    more = max(1, full - max(busy_count(b + BUSY_FROM - FREE_BELOW) for b in recent[-2:]))
    return max(more, current)


class Follower:
    """Re-reads other programs' use of `cpus` every `every` seconds from a daemon thread and keeps `target`, the
    thread count next_threads() gives; follow() applies it in the thread that renders or trains."""

    def __init__(self, cpus: Sequence[int], full: int, threads: int, every: float = FOLLOW_EVERY):
        self.cpus, self.full, self.every = list(cpus), full, every
        self.target = threads
        self.recent: List[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reelgan-threads-follower", daemon=True)

    def start(self) -> "Follower":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _read(self) -> Tuple[int, int, int]:
        busy, total = cpu_ticks(Path("/proc/stat").read_text(), self.cpus)
        return busy, total, family_ticks()

    def _run(self) -> None:
        try:
            last = self._read()
        except (OSError, ValueError, IndexError):                    # no /proc: nothing to follow
            return
        while not self._stop.wait(self.every):
            try:
                now = self._read()
            except (OSError, ValueError, IndexError):
                return
            self.recent = (self.recent + [others_busy(last, now, len(self.cpus))])[-2:]
            last = now
            self.target = next_threads(self.target, self.full, self.recent)


_FOLLOWER: Dict[str, Follower] = {}


def stop_following() -> None:
    follower = _FOLLOWER.pop("follower", None)
    if follower is not None:
        follower.stop()


def follow() -> Optional[str]:
    """Apply the follower's count in the calling thread (between training steps, rendered chunks): a line saying
    the change where there was one, else None. Nothing where the count was given (--threads, OMP_NUM_THREADS)."""
    follower = _FOLLOWER.get("follower")
    if follower is None:
        return None
    import torch
    have, want = torch.get_num_threads(), follower.target
    if want == have:
        return None
    torch.set_num_threads(want)
    use = f"{follower.recent[-1]:.1f}" if follower.recent else "?"
    return f"threads: {have} -> {want} (other programs now use {use} of {follower.full} cores)"


# ---- the choice ---------------------------------------------------------------------------------------------

def decide(requested: int, env: Mapping[str, str], cores: int, busy: Optional[float], ranks: int = 1
           ) -> ThreadChoice:
    """The thread count from its inputs (pure: tests give the readings). `requested` 0 = automatic."""
    if requested < 0:
        raise ThreadsError(f"--threads must be >= 0 (0: automatic), got {requested}")
    value = env.get(ENV_THREADS, "").strip()
    if value:
        try:
            n = int(value.split(",")[0])                              # OpenMP allows a list per nesting level
        except ValueError:
            n = 0
        if n < 1:
            raise ThreadsError(f"{ENV_THREADS}={value!r} is not a positive whole number; unset it or set e.g. "
                               f"{ENV_THREADS}=1")
        return ThreadChoice(n, "env", cores, overridden=requested or None)
    if requested:
        return ThreadChoice(requested, "option", cores)
    if ranks > 1:                                                   # the ranks share the cores; no sample needed
        return ThreadChoice(max(1, cores // ranks), "auto", cores, ranks=ranks)
    taken = 0 if busy is None else busy_count(busy)
    return ThreadChoice(max(1, cores - taken), "auto", cores, busy=busy)


def local_ranks(env: Mapping[str, str]) -> int:
    try:
        return max(1, int(env.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


_CURRENT: Dict[str, ThreadChoice] = {}
_READING: Dict[str, Tuple[int, Optional[float]]] = {}


def machine_reading() -> Tuple[int, Optional[float]]:
    """(cores, busy) of this process, read once per process (a command run twice in one process, as the tests
    do, does not read again): configure() reads it across torch's import; where torch was loaded first, a
    SAMPLE_SECONDS sleep here is the window."""
    if "reading" not in _READING:
        cpus = sorted(allowed_cpus())
        _READING["reading"] = (available_cores(cpus), busy_cores(cpus))
    return _READING["reading"]


def reads_machine(requested: int, env: Mapping[str, str]) -> bool:
    """Whether the choice needs the busy reading (the automatic one, outside torchrun)."""
    return not (env.get(ENV_THREADS, "").strip() or requested or local_ranks(env) > 1)


def choose(requested: int = 0, env: Optional[Mapping[str, str]] = None) -> ThreadChoice:
    """The thread count for this process: `requested` (> 0), else OMP_NUM_THREADS, else the automatic choice."""
    env = os.environ if env is None else env
    if reads_machine(requested, env):
        cores, busy = machine_reading()
    else:
        cores, busy = available_cores(), None                       # no reading when nothing uses it
    return decide(requested, env, cores, busy, local_ranks(env))


@contextlib.contextmanager
def _sigint_held():
    """SIGINT held while torch loads: a Ctrl-C that lands inside torch's C++ start-up aborts the process
    (pybind11 terminates on the KeyboardInterrupt); held, it arrives after the import as an ordinary one."""
    if "torch" in sys.modules or not hasattr(signal, "pthread_sigmask") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})   # threads started inside inherit it
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def configure(requested: int = 0) -> ThreadChoice:
    """Choose the threads (see the module's text) and apply them: call it before the command loads torch, so
    the OpenMP wait policy can still be set and the busy reading can run across torch's import. Returns the
    choice; `describe()` gives its line later."""
    loaded = "torch" in sys.modules
    with _sigint_held():
        if not loaded and reads_machine(requested, os.environ) and "reading" not in _READING:
            cpus = sorted(allowed_cpus())
            with BusyReading(cpus) as reading:                      # torch's import is the window
                import torch
            _READING["reading"] = (available_cores(cpus), reading.busy)
        import torch
    choice = choose(requested)
    given = [f"{k}={os.environ[k]!r}" for k in (ENV_WAIT, ENV_SPIN) if k in os.environ]
    if choice.threads > 1 and given:
        choice = dataclasses.replace(choice, wait_policy=f"{' '.join(given)} from the environment")
    if torch.get_num_threads() != choice.threads:
        # only on a change: torch.set_num_threads also turns MKL's dynamic thread choice off, after which MKL's
        # sin / cos / tanh of a few hundred values open a parallel region each (BENCHMARKS.md, "Sampling before
        # and after the front-doors refactor")
        torch.set_num_threads(choice.threads)
    try:
        torch.set_num_interop_threads(choice.threads)
    except RuntimeError:                                             # already set, or inter-op work has started
        pass
    _CURRENT["choice"] = choice
    stop_following()
    if choice.source == "auto" and choice.ranks == 1 and choice.cores > 1 and choice.busy is not None:
        _FOLLOWER["follower"] = Follower(sorted(allowed_cpus()), choice.cores, choice.threads).start()
    return choice


def describe() -> str:
    """The start line's thread part: the configured choice, or torch's own count where no command chose."""
    choice = _CURRENT.get("choice")
    import torch
    if choice is not None and choice.threads == torch.get_num_threads():
        return choice.describe()
    if choice is not None and "follower" in _FOLLOWER:
        return f"threads: {torch.get_num_threads()} (following the load; {choice.describe()} at the start)"
    return f"threads: {torch.get_num_threads()} (set by the caller)"
