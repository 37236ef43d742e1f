"""The tutorial (docs/tutorial): every chapter's script runs in its --short form, makes the figures its chapter
shows and the numbers its comparison quotes; the chapters name only files that exist."""
import importlib.util
import json
import math
import re
import sys

import pytest
from PIL import Image

from tests.conftest import ROOT

TUTORIAL = ROOT / "docs" / "tutorial"
CHAPTERS = ["01_dots", "02_video_d", "03_mode_collapse", "04_r1", "05_continuous_time", "06_text"]


def _chapter(name):
    if str(TUTORIAL) not in sys.path:
        sys.path.insert(0, str(TUTORIAL))
    spec = importlib.util.spec_from_file_location(f"tutorial_{name}", TUTORIAL / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """Every chapter's --short form, in order (chapters 2, 3 and 5 reuse chapter 1's run), into one folder."""
    runs = tmp_path_factory.mktemp("tutorial")
    for name in CHAPTERS:
        _chapter(name).main.main(["--short", "--runs", str(runs)], standalone_mode=False)
    return runs


def _figures_named(name):
    """The figures the chapter's text shows: every figures/<file> it links."""
    text = (TUTORIAL / f"{name}.md").read_text()
    return sorted(set(re.findall(r"\(figures/([\w.-]+\.(?:png|gif))\)", text)))


def _numbers(runs, name):
    return json.loads((runs / "figures" / f"{name}.json").read_text())


def _finite(d):
    return all(_finite(v) if isinstance(v, dict) else math.isfinite(v) for v in d.values())


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_short_form_makes_its_figures(short_runs, name):
    figures = _figures_named(name)
    assert figures, f"{name}.md shows no figure"
    for fig in figures:
        assert (TUTORIAL / "figures" / fig).is_file(), f"committed figure {fig} is missing"
        made = short_runs / "figures" / fig
        assert made.is_file(), f"the short run of {name} did not make {fig}"
        with Image.open(made) as im:
            assert im.format == {"png": "PNG", "gif": "GIF"}[fig.rsplit(".", 1)[1]]
            assert im.width >= 64 and im.height >= 32
            if im.format == "GIF":
                assert im.n_frames > 1                                  # an animation, not a still
    assert (TUTORIAL / "figures" / f"{name}.json").is_file()           # the full run's numbers, quoted in the text


def test_comparisons_produce_their_numbers(short_runs):
    n = {name: _numbers(short_runs, name) for name in CHAPTERS}
    assert set(n["02_video_d"]["flicker_grey_levels"]) == {"real", "image + video D", "image D only"}
    assert set(n["02_video_d"]["dot_step_px"]) == {"real", "image + video D", "image D only"}
    assert set(n["03_mode_collapse"]["diversity_l1"]) == {"real", "minibatch std on", "minibatch std off"}
    assert set(n["03_mode_collapse"]["effective_colours"]) == {"real", "minibatch std on", "minibatch std off"}
    assert all(sum(c.values()) == 96 for c in n["03_mode_collapse"]["colour_counts"].values())
    assert set(n["04_r1"]["final_gradient_norm"]) == {"R1 gamma 2 (default)", "R1 off (gamma 0)"}
    assert set(n["04_r1"]["final_logit_gap"]) == {"R1 gamma 2 (default)", "R1 off (gamma 0)"}
    assert set(n["04_r1"]["frames_with_a_dot"]) == {"R1 gamma 2 (default)", "R1 off (gamma 0)"}
    assert set(n["06_text"]["follows_prompt"]) == {"generated", "real clips, own captions", "chance"}
    for name in ("02_video_d", "03_mode_collapse", "04_r1"):
        assert _finite({k: v for k, v in n[name].items() if not k.startswith("train_seconds")}), name
    # Continuous time is exact: every 4th frame rendered at 4x the rate IS the frame at the data's rate.
    assert n["05_continuous_time"]["every_4th_frame_vs_16fps_mean_abs_grey_levels"] < 0.5
    # Real clips follow their own captions: the measurement itself works.
    assert n["06_text"]["follows_prompt"]["real clips, own captions"]["colour"] > 0.9
    assert 0 <= n["06_text"]["colours_one_prompt_per_colour"]["effective"] <= 6


def test_a_run_folder_with_other_settings_is_never_reused_or_overwritten(short_runs):
    import click
    before = sorted(p.name for p in (short_runs / "01_dots" / "checkpoints").iterdir())
    with pytest.raises(click.ClickException, match="holds a run with other settings"):
        _chapter("02_video_d").main.main(["--runs", str(short_runs)], standalone_mode=False)   # full form
    assert sorted(p.name for p in (short_runs / "01_dots" / "checkpoints").iterdir()) == before


def test_readme_links_the_tutorial_and_the_index_links_every_chapter():
    readme = (ROOT / "README.md").read_text()
    assert "## Tutorial" in readme and "docs/tutorial/README.md" in readme
    index = (TUTORIAL / "README.md").read_text()
    for name in CHAPTERS:
        assert f"({name}.md)" in index, name
        text = (TUTORIAL / f"{name}.md").read_text()
        assert f"python docs/tutorial/{name}.py" in text and f"python docs/tutorial/{name}.py --short" in text
