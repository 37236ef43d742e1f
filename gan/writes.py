"""One rule for every write: nothing a user made is replaced or deleted without an explicit --force, a run folder
has one process at a time, and a terminated command leaves no temp file behind (a leaf: imports only gan.errors).
"""
from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple, Union

from gan.errors import ReelganError

LOCK_NAME = ".reelgan.lock"


class WriteError(ReelganError):
    """A write that would replace or delete something the user has, or a folder another process uses."""


def refuse_existing(paths: Iterable[Union[str, Path]], force: bool, flag: str = "--force") -> None:
    """Raise WriteError naming the first of `paths` that exists (a file, a folder or a link), unless `force`. A
    pipe or a device (a FIFO, /dev/null) holds nothing to lose: writing into it is what the user asked for."""
    if force:
        return
    found = [Path(p) for p in paths if os.path.lexists(p) and not _is_stream(Path(p))]
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise WriteError(f"{found[0]}{more} already exists; pass {flag} to replace it, or choose another "
                         f"output")


def _is_stream(path: Path) -> bool:
    import stat
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


class FolderLock:
    """An exclusive lock on a folder (fcntl on FOLDER/.reelgan.lock), held until release() or process exit.

    A second process asking for the same folder gets one line naming the holder's pid. release() removes the
    lock file (and the folder, when the lock made it and nothing else was written there)."""

    def __init__(self, folder: Union[str, Path], what: str = "run folder"):
        import fcntl
        self.folder = Path(folder)
        self._made = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / LOCK_NAME
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise WriteError(f"the {what} {self.folder} is in use by another reelgan process (pid {holder}); "
                                 f"wait for it to finish or stop it, or choose another folder") from None
            try:                                  # the holder before us may have removed the file: lock anew
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd: Optional[int] = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)                  # while locked: a waiter that opened it re-checks the inode
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        if self._made:
            try:
                self.folder.rmdir()               # only if empty: nothing was written
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class Terminated(SystemExit):
    """SIGTERM as an exception: every `except BaseException` / `finally` on the way out runs (temp files are
    removed, partial outputs aborted), then the process exits with status 143 (128 + SIGTERM)."""


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)           # a second SIGTERM kills at once
    raise Terminated(128 + signum)


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Hold SIGTERM and SIGINT while a short write finishes, then act on the first one that came: a stop signal
    raised inside torch.save's zip writer is masked by the writer's own cleanup error (exit 1 and a traceback instead
    of 143), and the checkpoint is lost besides. Outside the main thread, or nested, this is a no-op."""
    if threading.current_thread() is not threading.main_thread() or getattr(_held, "on", False):
        yield
        return
    pending: List[int] = []
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in old:
        signal.signal(s, lambda signum, frame: pending.append(signum))
    _held.on = True
    try:
        yield
    finally:
        _held.on = False
        for s, handler in old.items():
            signal.signal(s, handler)
    if pending:
        handler = old[pending[0]]
        if callable(handler):
            handler(pending[0], None)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(pending[0])


_held = threading.local()


@contextlib.contextmanager
def temp_file_beside(path: Union[str, Path], prefix: str, suffix: str) -> Iterator[Tuple[int, str]]:
    """(fd, name) of a new temp file in `path`'s folder, removed on the way out unless it was renamed away. Stop
    signals are held while it is made: one that lands inside mkstemp, after the file exists but before its name is
    returned, would leave it behind."""
    tmp = None
    try:
        with held_signals():
            fd, tmp = tempfile.mkstemp(dir=str(Path(path).parent), prefix=prefix, suffix=suffix)
        yield fd, tmp
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def stop_signal_in(e: BaseException) -> Optional[BaseException]:
    """The Terminated or KeyboardInterrupt that `e` was raised while handling, if any (a library's cleanup error
    that replaced the stop signal on its way out)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, (Terminated, KeyboardInterrupt)):
            return e
        seen.add(id(e))
        e = e.__context__
    return None


def _interrupt_main_soon() -> None:
    time.sleep(0.01)                          # after the hook has returned: raised inside it, it is dropped again
    _thread.interrupt_main()


def _unraisable(unraisable) -> None:
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        _thread.start_new_thread(_interrupt_main_soon, ())     # raised again in the main thread's own code
        return
    sys.__unraisablehook__(unraisable)


def redeliver_swallowed_ctrl_c() -> None:
    """A Ctrl-C that lands inside a weakref callback or __del__ (importlib runs its module-lock callbacks at any point
    of an import) is printed by Python as "Exception ignored ... Traceback" and dropped: the command went on. With
    this hook it is raised again in the main thread moments later, as an ordinary KeyboardInterrupt (one that lands
    in a callback again comes back again); other unraisable errors still go to Python's own hook."""
    sys.unraisablehook = _unraisable


def clean_exit_on_sigterm() -> None:
    """Turn SIGTERM into Terminated in the main thread (Ctrl-C is KeyboardInterrupt already)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
