"""Expected failures and file publishing: a leaf module (imports nothing from gan).

`ReelganError` marks a failure the user can fix (bad input, missing file, config, checkpoint, device);
every CLI prints it as one line `error: <message>` and exits with status 2 (gan/cli_utils.py).
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Union

EXIT_USER_ERROR = 2


class ReelganError(Exception):
    """A failure whose message names the problem and the fix."""


class WeightsError(ReelganError):
    """A network's weights are missing, unobtainable or not the published file; the message says what to do."""


class DiskFullError(ReelganError, OSError):
    """A write that ran out of disk space (or hit a file-size or quota limit); nothing older was replaced."""


_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def disk_full(e: BaseException, path: Union[str, Path], hint: str = "") -> Union["DiskFullError", None]:
    """A DiskFullError for `path` when `e` (or the error it happened in: torch.save re-raises a failed write
    as a RuntimeError) is a full disk, a file-size limit or a quota; else None."""
    seen = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL:
            try:
                free = shutil.disk_usage(Path(path).parent).free
                room = f"{free / 2 ** 20:.1f} MiB free there"
            except OSError:
                room = "free space unknown"
            return DiskFullError(f"cannot write {path}: {os.strerror(seen.errno).lower()} ({room}); nothing older "
                                 f"was replaced or removed. Free some space or choose another folder"
                                 + (f", {hint}" if hint else ""))
        seen = seen.__cause__ or seen.__context__
    return None


def one_line(e: BaseException) -> str:
    """The message of `e` on one line (an OSError as 'what: path'); never empty."""
    if isinstance(e, OSError) and e.strerror:
        names = [str(n) for n in (e.filename, e.filename2) if n is not None]
        text = f"{e.strerror}: {' -> '.join(names)}" if names else e.strerror
    else:
        text = str(e)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Original Traceback" in text and lines:       # re-raised from a DataLoader worker: its own last line
        last = lines[-1]
        return last.split(": ", 1)[1] if last.startswith(type(e).__name__ + ": ") else last
    return "; ".join(lines) or type(e).__name__


def new_file_mode() -> int:
    """The mode open() would give a new file under the current umask (0o644 with the usual 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp: Union[str, Path], path: Union[str, Path]) -> None:
    """Give a finished temp file (mkstemp makes 0600) the umask's mode, then rename it into place."""
    os.chmod(tmp, new_file_mode())
    os.replace(tmp, path)
