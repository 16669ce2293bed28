"""``refocus presets list / show / path``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from refocus.cli import main

BUILTINS = ("portrait", "group", "landscape", "macro", "miniature", "historic", "painting")
PRESET_DIR = Path(__file__).resolve().parents[1] / "core" / "presets"


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    d = tmp_path / "presets"
    d.mkdir()
    monkeypatch.setenv("REFOCUS_PRESETS", str(d))
    return d


def test_list_shows_every_builtin_with_its_description(user_dir):
    res = CliRunner().invoke(main, ["presets", "list"])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines()}
    for name in BUILTINS:
        desc = json.loads((PRESET_DIR / f"{name}.json").read_text())["description"]
        assert name in lines and "built-in" in lines[name] and desc in lines[name]


def test_user_preset_listed_and_shown(user_dir):
    (user_dir / "soft.json").write_text(json.dumps({"refocus_preset": 1, "name": "soft",
                                                    "description": "gentle blur",
                                                    "settings": {"strength": 0.8, "shape": "polygon"}}))
    res = CliRunner().invoke(main, ["presets", "list"])
    assert res.exit_code == 0
    assert any(line.split()[:2] == ["soft", "user"] and "gentle blur" in line for line in res.output.splitlines())
    res = CliRunner().invoke(main, ["presets", "show", "soft"])
    assert res.exit_code == 0, res.output
    assert "name: soft" in res.output and "description: gentle blur" in res.output
    assert "* strength = 0.8" in res.output and "* shape = polygon" in res.output
    assert "  blades = 6" in res.output                   # not in the preset: the default, unmarked


def test_show_builtin_settings_are_the_files(user_dir):
    res = CliRunner().invoke(main, ["presets", "show", "portrait"])
    assert res.exit_code == 0
    start = res.output.index("{")
    end = res.output.index("}", start) + 1
    shown = json.loads(res.output[start:end])
    assert shown == json.loads((PRESET_DIR / "portrait.json").read_text())["settings"]


def test_show_unknown_preset_exits_2_listing_the_available_ones(user_dir):
    res = CliRunner().invoke(main, ["presets", "show", "nosuch"])
    assert res.exit_code == 2
    assert "refocus: error: unknown preset 'nosuch'" in res.output
    for name in BUILTINS:
        assert name in res.output


def test_bad_user_preset_is_named(user_dir):
    (user_dir / "bad.json").write_text(json.dumps({"settings": {"strenght": 2}}))
    res = CliRunner().invoke(main, ["presets", "list"])        # the others are still listed
    assert res.exit_code == 0 and "bad.json" in res.output and "strenght" in res.output
    assert "NOT USABLE" in res.output and "portrait" in res.output
    res = CliRunner().invoke(main, ["presets", "show", "bad"])   # asking for it names the problem
    assert res.exit_code == 2 and "bad.json" in res.output and "strenght" in res.output


def test_path_is_the_user_folder(user_dir):
    res = CliRunner().invoke(main, ["presets", "path"])
    assert res.exit_code == 0 and res.output.strip() == str(user_dir)
