"""Small helpers shared by the click commands, and their one error path.

Every reelgan command is built with `command_class=Command` (groups: `cls=Group`): an expected failure
(a ReelganError, an OSError such as a missing file or a read-only outdir, Pillow's decompression-bomb
guard, a click usage error) prints ONE line `error: <message>` to stderr and exits with status 2.
`--debug` or REELGAN_DEBUG=1 re-raises it with its traceback instead.
"""
from __future__ import annotations

import math
import os
import sys
import threading
from typing import Any, Dict, Iterable

import click
import yaml

from gan.errors import EXIT_USER_ERROR, ReelganError, one_line
from gan.writes import Terminated, clean_exit_on_sigterm, redeliver_swallowed_ctrl_c, stop_signal_in


class UsageFailure(ReelganError):
    """A CLI-level failure raised by a command's own checks."""


def fail(message: str) -> None:
    """Stop the command with `error: message` (exit 2)."""
    raise UsageFailure(message)


def _debug_requested(args) -> bool:
    argv = sys.argv[1:] if args is None else list(args)
    return "--debug" in argv or os.environ.get("REELGAN_DEBUG", "").strip() not in ("", "0", "false", "no")


def _expected(e: BaseException) -> bool:
    from PIL import Image
    return isinstance(e, (ReelganError, OSError, click.ClickException, Image.DecompressionBombError))


def _message(e: BaseException) -> str:
    if isinstance(e, click.UsageError) and not isinstance(e, click.BadParameter):
        text = e.format_message()
        cmd = e.ctx.command_path if e.ctx is not None else ""
        return f"{text} (see: {cmd} --help)" if cmd else text
    if isinstance(e, click.ClickException):
        return e.format_message()
    msg = one_line(e)
    if type(e).__name__ == "DecompressionBombError":
        return f"image too large to decode safely: {msg}"
    if isinstance(e, OSError) and e.strerror:                  # a path the command could not use
        return f"{msg} (check that path and its permissions, or choose another)"
    return msg


def _run(command: click.Command, base_main, args, prog_name, complete_var, standalone_mode, extra):
    if not standalone_mode:
        return base_main(command, args, prog_name, complete_var, standalone_mode, **extra)
    debug = _debug_requested(args)
    clean_exit_on_sigterm()
    redeliver_swallowed_ctrl_c()
    if not debug:
        threading.excepthook = _thread_error
    try:
        rv = base_main(command, args, prog_name, complete_var, False, **extra)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:                                     # noqa: BLE001: only expected types are caught
        stop = None if debug else stop_signal_in(e)
        if isinstance(stop, Terminated):                       # a library's cleanup error hid the stop signal
            sys.exit(stop.code)
        if stop is not None:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        if debug or not _expected(e):
            raise
        click.echo(f"error: {_message(e)}", err=True)
        sys.exit(EXIT_USER_ERROR)
    sys.exit(rv if isinstance(rv, int) else 0)


def _thread_error(args) -> None:
    """A background thread's expected failure (TensorBoard's writer on a full or read-only disk) as one line; the
    main thread meets the same fault at its next write and stops there."""
    if args.exc_type is SystemExit:
        return
    if not _expected(args.exc_value):
        sys.__excepthook__(args.exc_type, args.exc_value, args.exc_traceback)
        return
    name = getattr(args.thread, "name", "a background thread")
    click.echo(f"error: {_message(args.exc_value)} (in {name})", err=True)


def _debug_option() -> click.Option:
    return click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True,
                        help="Show the full traceback of an error (also: REELGAN_DEBUG=1).")


class Command(click.Command):
    """A click command with `--debug` and the one-line error path."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.params.append(_debug_option())

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        return _run(self, click.Command.main, args, prog_name, complete_var, standalone_mode, extra)


class Group(click.Group):
    """A click group whose subcommands share Command's error path."""
    command_class = Command

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.params.append(_debug_option())

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        return _run(self, click.Group.main, args, prog_name, complete_var, standalone_mode, extra)


class FiniteFloat(click.FloatRange):
    """click.FloatRange that also refuses nan and inf (a range check alone lets nan through: nan < x is False)."""
    name = "finite float"

    def convert(self, value, param, ctx):
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


def parse_overrides(items: Iterable[str]) -> Dict[str, Any]:
    """['train.batch=8', 'loss.augment=[color]'] -> nested dict; values are parsed as YAML."""
    out: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (e.g. train.batch=8)", param_hint="--set")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise click.BadParameter(f"{item!r}: {p} is set twice, once as a value", param_hint="--set")
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise click.BadParameter(f"{item!r}: the value is not valid YAML (quote strings with spaces "
                                     f"or colons)", param_hint="--set") from None
    return out


def pick_device(device: str) -> str:
    """'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', checked against this machine."""
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise click.BadParameter(f"unknown device {device!r}; use cpu, cuda, cuda:N, mps or auto",
                                 param_hint="--device") from None
    if dev.type == "cpu":
        return device
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise click.BadParameter(f"{device!r} requested but CUDA is not available; use --device cpu",
                                     param_hint="--device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise click.BadParameter(f"{device!r} does not exist: this machine has {torch.cuda.device_count()} "
                                     f"CUDA device(s), cuda:0..cuda:{torch.cuda.device_count() - 1}",
                                     param_hint="--device")
        return device
    if dev.type == "mps" and torch.backends.mps.is_available():
        return device
    raise click.BadParameter(f"device {device!r} is not available here; use cpu, cuda, cuda:N or auto",
                             param_hint="--device")


class ThreadCount(click.ParamType):
    """--threads: a whole number >= 0, or 'auto' (= 0, the automatic choice of gan/threads.py)."""
    name = "N|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        elif str(value).strip().lower() == "auto":
            return 0
        else:
            try:
                n = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a thread count: give a whole number >= 1, or 0 / auto for the "
                          f"automatic choice", param, ctx)
        if n < 0:
            self.fail(f"{n} threads: give a whole number >= 1, or 0 / auto for the automatic choice", param, ctx)
        return n


THREADS_HELP = ("CPU threads for torch: 0 / auto picks the cores this process may use, less those other programs "
                "keep busy; an OMP_NUM_THREADS in the environment wins.")


def threads_option(default=0, extra: str = ""):
    """The --threads option every command shares (default None: the config's train.threads decides)."""
    return click.option("--threads", type=ThreadCount(), default=default, show_default=default is not None,
                        help=THREADS_HELP + extra)


def watermark_options(key_help: str, user_help: str):
    """--watermark-key FILE and --watermark-user ID, as generate.py and the studio share them."""
    def decorate(func):
        func = click.option("--watermark-user", type=click.IntRange(0, 65535), default=None, help=user_help)(func)
        return click.option("--watermark-key", type=click.Path(exists=True, dir_okay=False), default=None,
                            help=key_help)(func)
    return decorate


MAX_CLIPS = 1_000_000     # clips per side: a million at 10 clips/s is a day; papers use 2048 to 10k


def clip_source_options(func):
    """Which clips to read (gan/clip_sources.py) and how, as reelgan-metrics and reelgan-analyze share them."""
    options = [
        click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Generator checkpoint: fake clips are rendered from it."),
        click.option("--videos", type=click.Path(exists=True, file_okay=False), default=None,
                     help="Folder of generated videos (mp4, gif, ...) instead of a checkpoint."),
        click.option("--data", type=str, default=None,
                     help="Real data: 'digits', 'shapes' or a dataset path [default: the checkpoint's training data]."),
        click.option("--data-seed", type=int, default=0, show_default=True,
                     help="Content seed of a built-in --data (training uses train.seed)."),
        click.option("--resolution", type=click.IntRange(min=8, max=4096), default=None,
                     help="Frame size clips are compared at [default: the checkpoint's]."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Real-clip selection seed and first generator seed."),
        click.option("--device", type=str, default="cpu", show_default=True, help="cpu, cuda or auto."),
        threads_option(),
        click.option("--quiet", is_flag=True, help="No progress bars (nor the threads line)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func
