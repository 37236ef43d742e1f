"""train.precision 'auto': bf16 only where the device runs it natively (emulated bf16 is several times slower)."""
import contextlib

import pytest
import torch

from gan.config import ConfigError, load_config, validate
from gan.precision import auto_precision, cpu_has_bf16
from gan.training import run as run_mod


def test_auto_follows_the_hardware():
    cpu = torch.device("cpu")
    assert auto_precision(cpu) == ("bf16" if cpu_has_bf16() else "fp32")
    assert auto_precision(cpu, fp16=True) == auto_precision(cpu)          # fp16 is for CUDA only
    assert load_config(None).train.precision == "auto"


@pytest.mark.parametrize("native", [True, False])
def test_training_resolves_auto_and_says_so(monkeypatch, native):
    # the hardware query is the one thing a test cannot change: both names of it answer `native`
    import gan.precision
    monkeypatch.setattr(run_mod, "native_bf16", lambda device: native)
    monkeypatch.setattr(gan.precision, "native_bf16", lambda device: native)
    cfg, notes = load_config(None), []
    run_mod._resolve_precision(cfg, torch.device("cpu"), notes)
    assert cfg.train.precision == ("bf16" if native else "fp32")
    assert len(notes) == 1 and notes[0].startswith(f"train.precision auto: {cfg.train.precision}")


def test_explicit_bf16_on_an_emulating_cpu_is_kept_with_its_cost(monkeypatch):
    monkeypatch.setattr(run_mod, "native_bf16", lambda device: False)
    cfg, notes = load_config(None), []
    cfg.train.precision = "bf16"
    run_mod._resolve_precision(cfg, torch.device("cpu"), notes)
    assert cfg.train.precision == "bf16"
    assert len(notes) == 1 and "emulated" in notes[0] and "train.precision=auto" in notes[0]
    cfg.train.precision, notes = "fp32", []
    run_mod._resolve_precision(cfg, torch.device("cpu"), notes)
    assert cfg.train.precision == "fp32" and notes == []


def test_autocast_for_auto_matches_the_resolved_precision():
    ctx = run_mod.autocast_for("auto", torch.device("cpu"))()
    if auto_precision(torch.device("cpu")) == "fp32":
        assert isinstance(ctx, contextlib.nullcontext)
    else:
        assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16


def test_bad_precision_names_the_choices():
    cfg = load_config(None)
    cfg.train.precision = "fp64"
    with pytest.raises(ConfigError, match="'auto'"):
        validate(cfg)
