"""One rule for every write: nothing a user made is replaced or deleted without --force, a run folder has one
process at a time, a terminated command leaves no temp file, a full disk is one line with the older files intact.
Behaviour that belongs to a process (signals, locks, file-size limits) is tested on real processes."""
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import generate
import train
from gan.data.cli import main as dataset_cli
from gan.watermark_cli import cli as watermark_cli
from tests.conftest import ROOT
from tests.test_bad_input import TINY, _assert_clear, _hashes, _invoke, _train

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _proc(*args, **kw):
    return subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("writes") / "run"
    res = _train(out)
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("name", ["config.json", "log.txt", "log.jsonl"])
def test_a_new_run_never_replaces_a_used_folders_files(tmp_path, name):
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("the user's notes\n")
    before = _hashes(out)
    _assert_clear(_train(out), [name, "--resume", "--force"])
    assert _hashes(out) == before
    res = _train(out, "--force", "--steps", "1")                  # said explicitly: a new run there
    assert res.exit_code == 0, res.output
    assert (out / "checkpoints" / "latest.pt").is_file() and not (out / ".reelgan.lock").exists()


def test_force_and_resume_do_not_combine(run_dir):
    _assert_clear(_train(run_dir, "--resume", "--force"), ["--resume", "--force"])


def test_generate_never_replaces_a_clip(run_dir, tmp_path):
    ckpt = run_dir / "checkpoints" / "latest.pt"
    out = tmp_path / "o"
    out.mkdir()
    (out / "seed0001.mp4").write_bytes(b"the user's clip")
    before = _hashes(out)
    args = ["--checkpoint", ckpt, "--outdir", out, "--seeds", "0-1", "--frames", "2"]
    _assert_clear(_invoke(generate.cli, args), ["seed0001.mp4", "--force"])
    assert _hashes(out) == before and not (out / "seed0000.mp4").exists()   # refused before rendering anything
    res = _invoke(generate.cli, args + ["--force"])
    assert res.exit_code == 0, res.output
    assert (out / "seed0001.mp4").read_bytes() != b"the user's clip"


def test_watermark_embed_never_replaces_out(run_dir, tmp_path):
    from gan.video_io import write_mp4
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_mp4(src, np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8), 8)
    out.write_bytes(b"mine")
    _assert_clear(_invoke(watermark_cli, ["embed", src, out]), ["out.mp4", "--force"])
    assert out.read_bytes() == b"mine"
    assert _invoke(watermark_cli, ["embed", src, out, "--force"]).exit_code == 0
    assert out.read_bytes() != b"mine"
    _assert_clear(_invoke(watermark_cli, ["embed", src, src, "--force"]), ["input"])


def test_prepare_never_deletes_a_users_file_beside_a_prepared_dataset(tmp_path):
    from gan.video_io import write_mp4
    clip = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    for src in ("a", "b"):
        (tmp_path / src).mkdir()
        write_mp4(tmp_path / src / "v.mp4", clip if src == "a" else 255 - clip, 8)
    out = tmp_path / "out"
    assert _invoke(dataset_cli, ["prepare", tmp_path / "a", out, "--resolution", "16"]).exit_code == 0
    (out / "notes.txt").write_text("mine")
    before = _hashes(out)
    _assert_clear(_invoke(dataset_cli, ["prepare", tmp_path / "b", out, "--resolution", "16"]), ["--force"])
    _assert_clear(_invoke(dataset_cli, ["prepare", tmp_path / "b", out, "--resolution", "16", "--force"]),
                  ["notes.txt", "did not write"])
    assert _hashes(out) == before
    (out / "notes.txt").unlink()
    res = _invoke(dataset_cli, ["prepare", tmp_path / "b", out, "--resolution", "16", "--force"])
    assert res.exit_code == 0, res.output


def test_a_fifo_in_a_data_folder_is_skipped_not_waited_on(tmp_path):
    from gan.video_io import write_mp4
    src = tmp_path / "src"
    src.mkdir()
    write_mp4(src / "v.mp4", np.zeros((6, 16, 16, 3), np.uint8), 8)
    os.mkfifo(src / "pipe.mp4")
    p = _proc("-m", "gan.data.cli", "prepare", src, tmp_path / "out", "--resolution", "16")
    out, err = p.communicate(timeout=120)                          # before the fix: blocked forever on the FIFO
    assert p.returncode == 0, err
    assert "pipe.mp4" in err and "not a regular file" in err and "Traceback" not in err
    assert "1 videos" in out


def test_two_resumes_of_one_run_folder_the_second_gets_one_line(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    first = _proc("train.py", "--config", TINY, "--outdir", run, "--resume", "--steps", "100000", "--no-progress")
    try:
        deadline = time.time() + 60
        while not (run / ".reelgan.lock").exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.1)
        assert (run / ".reelgan.lock").exists(), first.communicate()[1]
        second = _proc("train.py", "--config", TINY, "--outdir", run, "--resume", "--steps", "8", "--no-progress")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2 and err.count("error:") == 1 and "Traceback" not in err, err
        assert "in use by another reelgan process" in err and f"pid {first.pid}" in err
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
    assert first.returncode == 143 and "Traceback" not in err, err
    assert not (run / ".reelgan.lock").exists() and not list((run / "checkpoints").glob("*.tmp"))


def test_sigterm_removes_the_hidden_temp_file_of_a_long_clip(run_dir, tmp_path):
    out = tmp_path / "o"
    p = _proc("generate.py", "--checkpoint", run_dir / "checkpoints" / "latest.pt", "--outdir", out, "--seeds", "0",
              "--frames", "10000000", "--chunk", "64")
    deadline = time.time() + 60
    while not list(out.glob(".*tmp*")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert list(out.glob(".*tmp*")), p.communicate()[1]              # it is writing
    time.sleep(1.0)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143 and "Traceback" not in err, err
    assert list(out.iterdir()) == []                                 # no temp file, no partial clip


def _limit_file_size(nbytes):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)                # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


def test_a_full_disk_at_checkpoint_time_is_one_line_and_keeps_the_old_checkpoints(run_dir, tmp_path):
    """A file-size limit (EFBIG) fails the write as a full disk (ENOSPC) does, on any machine, without root."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = _hashes(run / "checkpoints")
    size = (run / "checkpoints" / "latest.pt").stat().st_size
    p = _proc("train.py", "--config", TINY, "--outdir", run, "--resume", "--steps", "6", "--no-progress",
              preexec_fn=_limit_file_size(size // 2))
    _, err = p.communicate(timeout=300)
    assert p.returncode == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "cannot write" in lines[0] and "nothing older was replaced" in lines[0], err
    assert _hashes(run / "checkpoints") == before and not list((run / "checkpoints").glob("*.tmp"))


@pytest.mark.parametrize("delay", [0.5, 1.0, 2.0])
def test_ctrl_c_in_the_first_seconds_is_no_traceback(tmp_path, delay):
    """From the first line of train.py on (imports included); Python's own start-up, before it, is not ours."""
    p = _proc("train.py", "--config", TINY, "--outdir", tmp_path / "run", "--no-progress")
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert p.returncode in (1, 130, 0, -signal.SIGINT), (p.returncode, err)


def test_a_pipe_or_device_is_written_into_not_refused(tmp_path):
    # --stream-to /dev/null or a FIFO another program reads: nothing there to lose, so no --force is needed
    from gan.writes import WriteError, refuse_existing
    fifo = tmp_path / "frames.fifo"
    os.mkfifo(fifo)
    refuse_existing([fifo, "/dev/null"], force=False)
    (tmp_path / "clip.mp4").write_bytes(b"mine")
    with pytest.raises(WriteError, match="clip.mp4 already exists"):
        refuse_existing([fifo, tmp_path / "clip.mp4"], force=False)


class _SignalsWhilePickled:
    """Sends `sig` to this process from inside torch.save's pickler, the moment the race in CI hit."""

    def __init__(self, sig):
        self.sig = sig

    def __reduce__(self):
        os.kill(os.getpid(), self.sig)
        return (int, (5,))


@pytest.mark.parametrize("sig, raised", [(signal.SIGTERM, "Terminated"), (signal.SIGINT, "KeyboardInterrupt")])
def test_a_stop_signal_inside_a_checkpoint_write_waits_for_the_file(tmp_path, sig, raised):
    from gan.checkpoint import save_atomic
    from gan.writes import Terminated, clean_exit_on_sigterm
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    clean_exit_on_sigterm()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    path = tmp_path / "step.pt"
    try:
        with pytest.raises((Terminated, KeyboardInterrupt)) as info:
            save_atomic({"x": _SignalsWhilePickled(sig)}, path)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    assert type(info.value).__name__ == raised and info.value.__context__ is None
    assert torch_load(path) == {"x": 5} and not list(tmp_path.glob("*.tmp"))   # published whole, then stopped


def torch_load(path):
    import torch
    return torch.load(path, weights_only=False)   # the test wrote it: int(5) by reduce


def test_a_stop_signal_hidden_under_a_cleanup_error_still_exits_as_the_signal():
    from gan.writes import Terminated, stop_signal_in
    try:
        try:
            raise Terminated(143)
        except Terminated:
            raise RuntimeError("unexpected pos 504704 vs 504592")          # torch's zip writer, cleaning up
    except RuntimeError as e:
        assert stop_signal_in(e).code == 143
    assert stop_signal_in(RuntimeError("plain")) is None


def test_a_ctrl_c_inside_a_callback_is_raised_again_not_dropped():
    # Python drops an exception raised in a weakref callback (printing "Exception ignored ... Traceback"); importlib's
    # module-lock callbacks run at any point of an import, so a Ctrl-C there did nothing but print a traceback.
    code = """if True:
        import signal, time, weakref
        signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a terminal, also when run in background
        from gan.writes import redeliver_swallowed_ctrl_c
        redeliver_swallowed_ctrl_c()
        class A: pass
        def cb(ref): raise KeyboardInterrupt
        a = A(); r = weakref.ref(a, cb)
        try:
            del a                               # the callback runs here and its KeyboardInterrupt is swallowed
            t = time.monotonic()                # ... and raised again here, in the main thread
            while time.monotonic() - t < 10: pass
            print("went on")
        except KeyboardInterrupt:
            print("interrupted")
    """
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.stdout.strip() == "interrupted" and "Traceback" not in res.stderr, (res.stdout, res.stderr)


@pytest.fixture
def sigterm_inside_mkstemp(monkeypatch):
    """Every mkstemp raises SIGTERM after it made the file, before it returns its name; SIGTERM raises Terminated."""
    import tempfile
    from gan import writes
    real = tempfile.mkstemp

    def mkstemp_then_sigterm(**kwargs):
        made = real(**kwargs)
        signal.raise_signal(signal.SIGTERM)
        return made
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_sigterm)
    old = signal.signal(signal.SIGTERM, writes._on_sigterm)
    yield writes.Terminated
    signal.signal(signal.SIGTERM, old)


def test_a_stop_signal_inside_mkstemp_leaves_no_temp_file(tmp_path, sigterm_inside_mkstemp):
    # A SIGTERM that lands after mkstemp made the file but before it returned its name (the CI once found a
    # checkpoint's .tmp left so): temp_file_beside holds it until the name is known, then the file goes.
    from gan import writes
    with pytest.raises(sigterm_inside_mkstemp):
        with writes.temp_file_beside(tmp_path / "latest.pt", "latest.pt.", ".tmp"):
            pytest.fail("the held stop signal acts before the body")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["mp4", "gif", "png"])
def test_a_stop_signal_inside_mkstemp_leaves_no_clip_temp_file(tmp_path, sigterm_inside_mkstemp, kind):
    # The same for the clip writers: the mp4 writer's temp file, the gif's and each png frame's.
    from gan import video_io
    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(sigterm_inside_mkstemp):
        if kind == "mp4":
            with video_io.Mp4Writer(tmp_path / "clip.mp4", 8) as w:
                w.write(frames)
        elif kind == "gif":
            video_io.write_gif(tmp_path / "clip.gif", frames, 8)
        else:
            video_io.write_png_frames(tmp_path / "frames", frames)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
