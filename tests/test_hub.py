"""Sharing models: safetensors export, and save_pretrained / from_pretrained / push_to_hub with a model card,
all on local folders (push_to_hub goes to a stand-in for the Hub API: no network)."""
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from gan.config import load_config
from gan.export import cli as export_cli
from gan.hub import ReelganGenerator
from gan.networks import build_generator
from gan.sampling import load_generator, render
from gan import checkpoint as ckpt_io

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(tmp_path):
    """A training run folder: checkpoints/latest.pt (a tiny layered G, class-conditional) and log.jsonl with
    a logged metric."""
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"G": {"objects": 2}, "data": {"channels": 1}})
    torch.manual_seed(0)
    G = build_generator(cfg, c_dim=3)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.01 * torch.randn_like(p))                  # not the init: a load that failed would show
    ckpt = tmp_path / "run" / "checkpoints" / "latest.pt"
    ckpt_io.save_atomic({"format_version": ckpt_io.FORMAT_VERSION, "config": cfg.to_dict(), "step": 4,
                         "c_dim": 3, "class_names": ["a", "b", "c"], "G": G.state_dict(),
                         "G_ema": G.state_dict()}, ckpt)
    (tmp_path / "run" / "log.jsonl").write_text(json.dumps({"step": 2, "loss/G": 1.0}) + "\n" +
                                                json.dumps({"step": 4, "metrics/fvd-offline": 38.6}) + "\n")
    return ckpt


def _clip(G):
    return render(G, [0, 5], 4, c=torch.tensor([1, 2]), fused=False)


def test_safetensors_export_round_trips(run, tmp_path):
    out = tmp_path / "G.safetensors"
    res = CliRunner().invoke(export_cli, [str(run), str(out), "--format", "safetensors"])
    assert res.exit_code == 0, res.output
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["config"])["G"]["objects"] == 2 and json.loads(meta["class_names"]) == ["a", "b", "c"]
    G0, _ = load_generator(run)
    G1, info = load_generator(out)                              # every reelgan command reads it like a .pt
    assert info["step"] == 4 and info["class_names"] == ["a", "b", "c"]
    torch.testing.assert_close(_clip(G1), _clip(G0), rtol=0, atol=0)
    # bf16 storage loads back as float32, close to the original
    res = CliRunner().invoke(export_cli, [str(run), str(tmp_path / "h.safetensors"), "--dtype", "bf16"])
    assert res.exit_code == 0, res.output
    assert (_clip(load_generator(tmp_path / "h.safetensors")[0]) - _clip(G0)).abs().max() < 0.1


def test_safetensors_without_reelgan_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ckpt_io.CheckpointError, match="no reelgan config"):
        load_generator(tmp_path / "other.safetensors")


def test_save_pretrained_and_from_pretrained_round_trip_with_a_model_card(run, tmp_path):
    model = ReelganGenerator.from_checkpoint(run)
    folder = tmp_path / "hub"
    model.save_pretrained(folder)
    assert {p.name for p in folder.iterdir()} >= {"model.safetensors", "config.json", "README.md"}
    card = (folder / "README.md").read_text()
    for text in ("library_name: reelgan", "license: mit", "Steps: 4", "fvd-offline: 38.6", "bouncing",
                 "watermark", "class-conditional (a, b, c classes)", '"objects": 2'):
        assert text in card, text
    back = ReelganGenerator.from_pretrained(folder)
    assert back.step == 4 and back.class_names == ["a", "b", "c"] and back.metrics["fvd-offline"] == 38.6
    G0, _ = load_generator(run)
    torch.testing.assert_close(_clip(back.G), _clip(G0), rtol=0, atol=0)


def test_push_to_hub_uploads_the_save_pretrained_folder(run, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.hub_mixin as mixin
    uploaded = tmp_path / "remote"

    class FakeApi:                                             # the two calls push_to_hub makes, kept local
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False):
            return type("Repo", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, **kw):
            shutil.copytree(folder_path, uploaded / repo_id)
            return f"local://{repo_id}"

    monkeypatch.setattr(mixin, "HfApi", FakeApi)
    assert ReelganGenerator.from_checkpoint(run).push_to_hub("someone/reelgan-tiny") == "local://someone/reelgan-tiny"
    folder = uploaded / "someone" / "reelgan-tiny"
    assert 'from_pretrained("someone/reelgan-tiny")' in (folder / "README.md").read_text()
    back = ReelganGenerator.from_pretrained(folder)
    torch.testing.assert_close(_clip(back.G), _clip(load_generator(run)[0]), rtol=0, atol=0)


PRESETS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_presets_exports_sample_exactly_as_the_full_checkpoint(preset, tmp_path):
    # .pt, .safetensors and the Hub folder carry every mode's state (a text model's encoder too): generate()
    # writes the same pixels from each as from the full checkpoint (at 32 px, so that every preset is fast).
    import warnings

    import numpy as np
    from PIL import Image

    from gan.conditioning.text import build_text_encoder
    from gan.export import export_generator
    from gan.sampling import generate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = load_config(str(ROOT / "configs" / f"{preset}.yaml"),
                          {"data": {"resolution": 32, "num_videos": 4}, "cond": {"lpips_random_backbone": True}})
    torch.manual_seed(0)
    mode, option = cfg.cond.mode, {}
    state = {"format_version": ckpt_io.FORMAT_VERSION, "config": cfg.to_dict(), "step": 3, "seen": 6,
             "class_names": [], "cond": ckpt_io.no_cond(mode)}
    if mode == "text" and cfg.cond.text_encoder == "minilm":          # pretrained: named with its SHA-256, not stored
        from gan.conditioning.pretrained import pretrained_text_encoder
        enc = pretrained_text_encoder(cfg.cond)
        state["cond"].update(external_text_encoder=type(enc).__name__, pretrained_text_encoder=enc.record())
        option = {"prompt": "a red circle moving left"}
    elif mode == "text":
        enc = build_text_encoder(cfg.cond, ["a red circle moving left"])
        state["cond"].update(text_encoder=enc.state_dict(), text_vocab=list(enc.tokenizer.vocab))
        option = {"prompt": "a red circle moving left"}
    elif mode != "none":
        still = np.zeros((32, 32, 3), np.uint8)
        still[8:20, 4:14] = 255
        Image.fromarray(still).save(tmp_path / "still.png")
        if mode == "image":
            option = {"image": str(tmp_path / "still.png")}
        else:
            from gan import video_io
            video_io.write_mp4(tmp_path / "in.mp4", np.stack([np.roll(still, k, 1) for k in range(6)]), 8)
            option = {"video": str(tmp_path / "in.mp4")}
    G = build_generator(cfg, cfg.cond.text_dim if mode == "text" else 0)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.01 * torch.randn_like(p))
    state.update(c_dim=G.c_dim, G=G.state_dict(), G_ema=G.state_dict())
    full = tmp_path / "run" / "checkpoints" / "latest.pt"
    ckpt_io.save_atomic(state, full)
    export_generator(full, tmp_path / "G.pt")
    export_generator(full, tmp_path / "G.safetensors", fmt="safetensors")
    ReelganGenerator.from_checkpoint(full).save_pretrained(tmp_path / "hub")

    def frames(source, name):
        (folder,) = generate(str(source), str(tmp_path / name), [5], 3, fmt="png", **option)
        return np.stack([np.asarray(Image.open(f)) for f in sorted(folder.glob("*.png"))])
    expected = frames(full, "full")
    for name in ("G.pt", "G.safetensors", "hub"):
        np.testing.assert_array_equal(frames(tmp_path / name, name.replace(".", "_")), expected, err_msg=name)


def test_hub_folders_of_the_old_format_are_refused_with_the_last_release(run, tmp_path):
    # A folder saved by reelgan 0.1.0 has no format_version in config.json (this release writes it): one clear
    # error naming the last release that reads it, as for a checkpoint file.
    folder = tmp_path / "hub"
    ReelganGenerator.from_checkpoint(run).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["format_version"] == ckpt_io.FORMAT_VERSION
    del config["format_version"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ckpt_io.OldFormatError, match="format 1.*the last release that reads it is reelgan 0.1.0"):
        ReelganGenerator.from_pretrained(folder)
