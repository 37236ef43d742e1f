import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

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
    for bad in (4, 24):
        with pytest.raises(ConfigError, match="G.separable_from"):
            load_config(overrides={"G": {"separable_from": bad}})


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


# ---- every field earns its place: set by a preset, or named by a test that shows what it changes ----------

def config_fields(cls=Config, prefix: str = ""):
    """Every leaf field of the config tree, dotted: 'G.warp_max', 'train.steps', 'name'."""
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            yield from config_fields(type(default), f"{prefix}{f.name}.")
        else:
            yield prefix + f.name


def preset_fields():
    """The dotted fields each preset in configs/ sets (its own lines; 'base' is not a field)."""
    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}.")
            elif prefix or k != "base":
                yield prefix + k
    return {p.name: set(walk(yaml.safe_load(p.read_text()) or {})) for p in sorted((ROOT / "configs").glob("*.yaml"))}


def _test_sources():
    """Every test file but this one (naming a field in the check itself would not test it)."""
    return {p.name: p.read_text() for p in sorted((ROOT / "tests").glob("*.py")) if p.name != Path(__file__).name}


def named_by(field: str, text: str, shared: bool) -> bool:
    """Does test source `text` name `field`? Its dotted name (cfg.G.warp_max, --set G.warp_max=...), or, for a
    name no other section uses, the name set as a key or keyword ({"warp_max": ...}, replace(..., warp_max=...))."""
    section, _, name = field.rpartition(".")
    if section and re.search(rf"\b{re.escape(section)}\.{name}\b", text):
        return True
    return not shared and bool(re.search(rf"[\"']{name}[\"']\s*:|\b{name}=(?!=)", text))


def field_coverage():
    """{field: (presets that set it, test files that name it)} for every config field."""
    fields = list(config_fields())
    names = Counter(f.rpartition(".")[2] for f in fields)
    presets, tests = preset_fields(), _test_sources()
    return {f: ([p for p, keys in presets.items() if f in keys],
                [t for t, text in tests.items() if named_by(f, text, names[f.rpartition(".")[2]] > 1)])
            for f in fields}


def test_every_config_field_is_set_by_a_preset_or_named_by_a_test():
    # A field nobody sets or tests is a branch nobody runs: give it a test that shows what it changes, or
    # remove it and the code it drives. `python tests/test_config.py` lists where each field is used.
    coverage = field_coverage()
    assert len(coverage) > 80 and coverage["G.objects"][0] and not coverage["G.warp_max"][0]
    dead = [f for f, (presets, tests) in coverage.items() if not presets and not tests]
    assert not dead, f"config fields set by no preset in configs/ and named by no test: {', '.join(dead)}"


def test_package_version_and_checkpoint_formats_agree():
    import configparser

    import gan
    from gan import checkpoint as ckpt_io
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["version"] == gan.__version__
    assert set(ckpt_io.LAST_RELEASE_READING) == set(range(1, ckpt_io.FORMAT_VERSION))   # each older format


def test_the_field_check_reads_names_the_way_tests_write_them():
    assert named_by("G.warp_max", "cfg = load_config(None, {'G': {'warp_max': 0.1}})", shared=False)
    assert named_by("G.warp_max", "m = tiny_G.cfg.G.warp_max", shared=False)
    assert named_by("G.warp_max", "'--set', 'G.warp_max=0.1'", shared=False)
    assert not named_by("G.warp_max", "warp_max is a bound", shared=False)
    assert not named_by("G.channel_max", "{'channel_max': 8}", shared=True)      # G's or D's? only dotted counts
    assert named_by("D.channel_max", "cfg.D.channel_max = 8", shared=True)
    assert not named_by("G.warp_max", "cfg.D.warp_max", shared=False)


if __name__ == "__main__":                  # the table behind the check
    table = field_coverage()
    for name, (presets, tests) in table.items():
        print(f"{name:28s} presets: {', '.join(presets) or '-':40s} tests: {', '.join(tests) or '-'}")
    print(f"{len(table)} fields; {sum(1 for p, t in table.values() if not p and not t)} set by no preset and "
          f"named by no test")
