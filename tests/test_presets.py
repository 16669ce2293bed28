"""Presets (refocus.presets): built-ins, user folder, files, bad files, flags over presets."""
from __future__ import annotations

import json

import pytest

from refocus import params, presets
from refocus.errors import BadInputError

BUILTINS = ("portrait", "group", "landscape", "macro", "miniature", "historic", "painting")


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    d = tmp_path / "user_presets"
    d.mkdir()
    monkeypatch.setenv("REFOCUS_PRESETS", str(d))
    return d


def write(path, data):
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_every_builtin_loads_and_resolves(user_dir):
    got = presets.available()
    assert set(BUILTINS) <= set(got)
    for name in BUILTINS:
        p = presets.get(name)
        assert p.source == "built-in" and p.name == name and p.description
        s = p.resolve()
        for k, v in p.settings.items():
            assert getattr(s, k) == params.BY_NAME[k].parse(v)
        raw = json.loads(p.path.read_text())
        assert raw["refocus_preset"] == presets.FORMAT_VERSION and raw["name"] == p.path.stem


def test_builtins_express_their_look(user_dir):
    g = {n: presets.get(n).resolve() for n in BUILTINS}
    assert g["portrait"].focus == "face" and g["portrait"].shape == "circle"
    assert g["group"].focus_range > 0
    assert g["miniature"].focus == "band" and g["miniature"].saturation > 1
    assert g["historic"].grain > 0 and g["historic"].keep_border
    assert g["painting"].texture > 0 and g["painting"].keep_border
    assert g["landscape"].strength < g["portrait"].strength < g["macro"].strength


def test_flags_win_over_preset(user_dir):
    s = presets.get("portrait").resolve({"strength": 0.3, "focus": "point", "focus_point": "0.2,0.3",
                                         "shape": None})
    assert (s.strength, s.focus, s.focus_point) == (0.3, "point", (0.2, 0.3))
    assert s.shape == presets.get("portrait").settings["shape"]


def test_user_dir_overrides_builtin_and_adds(user_dir):
    write(user_dir / "mine.json", {"refocus_preset": 1, "name": "portrait", "settings": {"strength": 0.25}})
    write(user_dir / "soft.json", {"refocus_preset": 1, "settings": {"strength": 0.4}})
    got = presets.available()
    assert got["portrait"].source == "user" and got["portrait"].resolve().strength == 0.25
    assert got["soft"].name == "soft"                         # name defaults to the file's stem
    assert presets.get("soft").resolve().strength == 0.4
    assert presets.user_dir() == user_dir


def test_preset_file_by_path(tmp_path, user_dir):
    f = write(tmp_path / "look.json", {"refocus_preset": 1, "name": "look", "description": "d",
                                       "settings": {"focus": "band", "band_width": 0.3}})
    p = presets.get(str(f))
    assert p.source == str(f) and p.resolve().band_width == 0.3


@pytest.mark.parametrize("content,words", [
    ("{not json", ["not a readable JSON preset"]),
    ([1, 2], ["\"settings\" object"]),
    ({"refocus_preset": 1, "settings": {"strenght": 1}}, ["unknown parameter strenght", "valid:", "strength"]),
    ({"refocus_preset": 1, "settings": {"strength": 50}}, ["strength", "50", "0..20"]),
    ({"refocus_preset": 1, "settings": {"focus": "nose"}}, ["focus", "'nose'"]),
    ({"refocus_preset": 2, "settings": {}}, ["version 2 is newer", "update refocus"]),
    ({"refocus_preset": "1", "settings": {}}, ["positive whole number"]),
    ({"refocus_preset": 1, "settings": {}, "colour": 1}, ["unknown key colour"]),
])
def test_bad_preset_files_name_the_file(tmp_path, user_dir, content, words):
    f = write(tmp_path / "bad.json", content)
    with pytest.raises(presets.PresetError) as e:
        presets.get(str(f))
    msg = str(e.value)
    assert str(f) in msg
    for w in words:
        assert w in msg
    assert isinstance(e.value, BadInputError) and isinstance(e.value, ValueError)


def test_bad_user_preset_is_reported_with_its_path_and_does_not_stop_the_others(user_dir):
    bad = write(user_dir / "broken.json", {"refocus_preset": 1, "settings": {"grain": -1}})
    write(user_dir / "mine.json", {"refocus_preset": 1, "name": "mine", "settings": {"strength": 2.0}})
    found = presets.available()
    assert "broken" not in found and "mine" in found and set(BUILTINS) <= set(found)
    assert str(bad) in str(presets.broken()["broken"])
    assert presets.get("portrait").name == "portrait"
    with pytest.raises(presets.PresetError, match=str(bad)):
        presets.get("broken")
    from click.testing import CliRunner
    from refocus.cli import main
    res = CliRunner().invoke(main, ["presets", "list"])
    assert res.exit_code == 0, res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("broken")]
    assert line and "NOT USABLE" in line[0] and str(bad) in line[0]
    assert any(ln.startswith("mine ") for ln in res.output.splitlines())


def test_missing_and_unknown(tmp_path, user_dir):
    with pytest.raises(presets.PresetError, match="preset file not found"):
        presets.get(str(tmp_path / "nope.json"))
    with pytest.raises(presets.PresetError) as e:
        presets.get("potrait")
    assert "unknown preset 'potrait'" in str(e.value)
    for n in BUILTINS:
        assert n in str(e.value)


def test_describe_lists_the_values(user_dir):
    p = presets.get("historic")
    lines = presets.describe(p)
    assert lines[0] == "historic (built-in)" and lines[1].strip() == p.description
    body = "\n".join(lines[2:])
    assert len(lines) == 2 + len(p.settings)
    assert "--keep-border" in body and "yes" in body and "--grain" in body
    full = presets.describe(presets.get("portrait"), all_values=True)
    assert len(full) == 2 + len(params.PARAMS)
    assert any(line.split()[0] == "--saturation" and "(default)" in line for line in full)
    assert not any(line.split()[0] == "--focus" and "(default)" in line for line in full)
