import json

import pytest

from gan.config import Config, ConfigError, load_config
from tests.conftest import ROOT


def test_defaults_round_trip_through_plain_types():
    cfg = load_config()
    d = json.loads(cfg.to_json())
    assert Config.from_dict(d) == cfg


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_loads(path):
    cfg = load_config(str(path))
    assert cfg.name == path.stem


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"'train\.stepz'"):
        load_config(overrides={"train": {"stepz": 3}})
    with pytest.raises(ConfigError, match=r"'bogus'"):
        load_config(overrides={"bogus": 1})


def test_wrong_types_and_values_are_rejected():
    with pytest.raises(ConfigError, match="train.batch"):
        load_config(overrides={"train": {"batch": "big"}})
    with pytest.raises(ConfigError, match="power of two"):
        load_config(overrides={"data": {"resolution": 48}})
    with pytest.raises(ConfigError, match="augmentation 'zoom'"):
        load_config(overrides={"loss": {"augment": ["zoom"]}})


def test_base_chain_and_override_order(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\ntrain:\n  batch: 3\n  steps: 9\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\ntrain:\n  batch: 5\n")
    cfg = load_config(str(tmp_path / "b.yaml"), {"train": {"steps": 11}})
    assert (cfg.name, cfg.train.batch, cfg.train.steps) == ("b", 5, 11)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"))
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(tmp_path / "bad.yaml"))


def test_auto_channels_grey_for_digits_colour_otherwise(tmp_path):
    assert load_config().data.channels == 1                                 # the CPU default: grey digits
    assert load_config(overrides={"data": {"source": "shapes"}}).data.channels == 3
    assert load_config(overrides={"data": {"source": str(tmp_path)}}).data.channels == 0   # users' clips: read off
    assert load_config(overrides={"data": {"channels": 3}}).data.channels == 3             # the data; explicit wins


def test_package_version_and_checkpoint_formats_agree():
    import configparser

    import gan
    from gan import checkpoint as ckpt_io
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["version"] == gan.__version__
    assert set(ckpt_io.LAST_RELEASE_READING) == set(range(1, ckpt_io.FORMAT_VERSION))   # each older format
