"""Headless Chromium for the studio's browser tests and benchmarks, driven by selenium.

Only Debian's packaged browser is used (`apt-get install chromium chromium-driver`; .ci/run does it): selenium
gets the driver's path, so its manager never downloads a browser (SE_OFFLINE=1 as well). selenium is a test
extra, imported when a browser is opened.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import time
from typing import Optional, Sequence

from gan.errors import ReelganError

CHROMIUM_NAMES = ("chromium", "chromium-browser")
DRIVER_NAMES = ("chromedriver",)


class BrowserMissing(ReelganError):
    pass


def _which(names) -> Optional[str]:
    for name in names:
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if path:
            return path
    return None


def missing_reason() -> Optional[str]:
    """Why no browser test can run here (None: Chromium, its driver and selenium are all present)."""
    if _which(CHROMIUM_NAMES) is None or _which(DRIVER_NAMES) is None:
        return "Chromium is not installed (Debian: apt-get install chromium chromium-driver; .ci/run does it)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def open_browser(width: int = 900, height: int = 800, extra_args: Sequence[str] = ()):
    """A headless Chromium (selenium WebDriver) with a window of width x height CSS px and any extra command-line
    switches (e.g. --host-resolver-rules to point a name at 127.0.0.1); close_browser() it when done."""
    reason = missing_reason()
    if reason is not None:
        raise BrowserMissing(reason)
    os.environ.setdefault("SE_OFFLINE", "1")             # never let selenium-manager fetch a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = _which(CHROMIUM_NAMES)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows", "--no-first-run", "--mute-audio",
                f"--window-size={width},{height}", *extra_args):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=_which(DRIVER_NAMES)), options=opts)


def close_browser(driver, grace: float = 10.0) -> None:
    """quit() the browser, and kill what is left of it: a page spinning in a long call makes quit() wait for the
    renderer (selenium's read timeout is 120 s) and can leave it busy on a core for every test after it. quit()
    gets `grace` seconds; then chromedriver and everything it started are killed."""
    import threading
    procs = []
    try:
        import psutil
        proc = getattr(getattr(driver, "service", None), "process", None)
        if proc is not None:
            root = psutil.Process(proc.pid)
            procs = [root, *root.children(recursive=True)]
    except Exception:                                   # psutil missing or the driver already gone: quit() alone
        pass

    def quit_quietly():
        try:
            driver.quit()
        except Exception:                               # killed below, or already gone: cleanup goes on
            pass
    closer = threading.Thread(target=quit_quietly, daemon=True)
    closer.start()
    closer.join(grace)
    for p in reversed(procs):
        try:
            p.kill()
        except Exception:                               # exited with quit(): nothing to do
            pass
    closer.join(5.0)


def wait_for(driver, script: str, timeout: float = 30.0, poll: float = 0.1):
    """The first truthy value of `script` (JavaScript run in the page), polled every `poll` s; a TimeoutError that
    names the script and the page's status after `timeout` s."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(poll)
    status = driver.execute_script("return window.studio && window.studio.status")
    raise TimeoutError(f"timed out waiting for: {script}; status: {status}")


def start_studio(*args, cwd=None, env: Optional[dict] = None):
    """`python -m gan.studio.cli --port 0 ARGS` in its own process (the tree at `cwd` first on the path, one torch
    thread, unless `env` is given): (process, base URL, token or None, its start line) once it printed its URL;
    a process that printed none is killed and its error raised."""
    import re
    import subprocess
    import sys
    from pathlib import Path
    cwd = Path(cwd) if cwd is not None else Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(cwd), OMP_NUM_THREADS="1") if env is None else env
    proc = subprocess.Popen([sys.executable, "-m", "gan.studio.cli", "--port", "0", *map(str, args)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()                      # blocks until the server listens (or the process ends)
    m = re.search(r"(http://127\.0\.0\.1:\d+/)(?:\?token=([\w-]+))?", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"the studio did not start: {line!r} {proc.stderr.read()[-2000:]}")
    return proc, m.group(1), m.group(2), line.strip()
